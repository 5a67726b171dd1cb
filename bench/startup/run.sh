#!/bin/sh
# bench/startup/run.sh [BUILD_DIR]: container start-up time of wasmlet
# (issue 2), printed as a small table of medians and ratios.
#
#   in process   bench/startup/startup_bench: engine creation, cold compile,
#                load from the disk cache, load of a loaded module, and
#                wasmrt_run's instantiation and _start..exit (RUNS runs)
#   end to end   `wasmlet run -f hello.yaml` as new processes, through
#                hyperfine: cold (empty compile cache each run) and warm
#                (compiled module in the data dir's cache)
#   reference    `wasmtime run --allow-precompiled hello.cwasm` of the same
#                module precompiled, when a wasmtime CLI is found: first
#                ~/.cache/wasmlet/wasmtime-cli/bin/wasmtime (where
#                `cargo install wasmtime-cli --version 48.0.8 --locked
#                --root ~/.cache/wasmlet/wasmtime-cli` puts it, the same
#                Wasmtime as wasmlet links), else `wasmtime` on PATH.
#
# Targets: a warm `wasmlet run` of hello within 2x of `wasmtime run` of the
# precompiled module, and a warm instantiation under 1 ms.
#
# startup_bench is built by CMake when the top CMakeLists.txt has
# add_subdirectory(bench/startup); otherwise this script compiles it against
# BUILD_DIR's libwasmlet_core.a. Environment: RUNS (in-process runs, 1000),
# COLD_RUNS (10), E2E_RUNS (hyperfine runs, 30), WASMTIME (a CLI to use).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
RUNS=${RUNS:-1000}
COLD_RUNS=${COLD_RUNS:-10}
E2E_RUNS=${E2E_RUNS:-30}

wasmlet=$build/wasmlet
hello=$build/examples/hello.wasm
[ -x "$wasmlet" ] || { echo "run.sh: no $wasmlet (build wasmlet first)" >&2; exit 1; }
[ -f "$hello" ] || { echo "run.sh: no $hello (build the examples first)" >&2; exit 1; }
command -v hyperfine >/dev/null || { echo "run.sh: hyperfine is needed" >&2; exit 1; }

tmp=$(mktemp -d /tmp/wasmlet-startup-XXXXXX)
trap 'rm -rf "$tmp"' EXIT INT TERM

# --- the in-process benchmark ---------------------------------------------
bench=$build/bench/startup/startup_bench
if [ ! -x "$bench" ]; then
    wt=$("$root/scripts/wasmtime.sh")
    [ -f "$build/libwasmlet_core.a" ] && [ -n "$wt" ] ||
        { echo "run.sh: $build has no libwasmlet_core.a or WASMTIME_DIR" >&2; exit 1; }
    bench=$tmp/startup_bench
    # The libraries wasmlet itself links with, from the Ninja build file.
    libs=$(awk '/^build wasmlet: /{f=1} f && /LINK_LIBRARIES/{sub(/^ *LINK_LIBRARIES = /, "");
        print; exit}' "$build/build.ninja" 2>/dev/null || true)
    [ -n "$libs" ] || libs="libwasmlet_core.a $wt/lib/libwasmtime.a $(pkg-config --libs \
        jansson yaml-0.1 libcurl openssl zlib libevent libevent_openssl libevent_pthreads) \
        -lpthread -ldl -lm"
    (cd "$build" && ${CC:-cc} -std=c17 -O2 -D_GNU_SOURCE -I"$root/src" -isystem "$wt/include" \
        "$here/startup_bench.c" $libs -o "$bench")
fi
echo "in process: $bench -n $RUNS -c $COLD_RUNS $hello" >&2
"$bench" -n "$RUNS" -c "$COLD_RUNS" "$hello" > "$tmp/inproc.txt"

# metric NAME FIELD: a number from startup_bench's output, in microseconds.
metric() {
    awk -v m="$1" -v f="$2" '$1 == m { for (i = 2; i <= NF; i++) { split($i, kv, "=");
        if (kv[1] == f) print kv[2] } }' "$tmp/inproc.txt"
}

# --- end to end --------------------------------------------------------------
cat > "$tmp/hello.yaml" <<EOF
apiVersion: v1
kind: Pod
metadata: {name: hello}
spec:
  restartPolicy: Never
  containers: [{name: hello, image: $hello}]
EOF
data=$tmp/data
# hf NAME ARGS...: runs hyperfine; writes $tmp/NAME.ms (median wall time)
# and $tmp/NAME.cpu (mean user + system time), in milliseconds. On a busy
# machine the wall time mostly measures the other processes; CPU time is
# the steadier of the two.
hf() {
    name=$1
    shift
    hyperfine -N --style none "$@" --export-json "$tmp/hf.json" >/dev/null 2>"$tmp/hf.err" ||
        { cat "$tmp/hf.err" >&2; return 1; }
    python3 -c 'import json, sys
r = json.load(open(sys.argv[1]))["results"][0]
open(sys.argv[2] + ".ms", "w").write("%.2f\n" % (r["median"] * 1000))
open(sys.argv[2] + ".cpu", "w").write("%.2f\n" % ((r["user"] + r["system"]) * 1000))' \
        "$tmp/hf.json" "$tmp/$name"
}
echo "end to end: $wasmlet run -f hello.yaml (hyperfine)" >&2
export WASMLET_DATA=$data
hf cold --runs "$COLD_RUNS" --prepare "rm -rf $data/modules" \
    "$wasmlet run -f $tmp/hello.yaml"
"$wasmlet" run -f "$tmp/hello.yaml" >/dev/null 2>&1 # compile once
hf warm --warmup 3 --runs "$E2E_RUNS" "$wasmlet run -f $tmp/hello.yaml"
# The floor of any wasmlet process: exec, shared libraries, exit.
hf floor --warmup 3 --runs "$E2E_RUNS" "$wasmlet version"

# --- the reference ----------------------------------------------------------
cli=${WASMTIME:-}
if [ -z "$cli" ] && [ -x "$HOME/.cache/wasmlet/wasmtime-cli/bin/wasmtime" ]; then
    cli=$HOME/.cache/wasmlet/wasmtime-cli/bin/wasmtime
fi
if [ -z "$cli" ]; then cli=$(command -v wasmtime || true); fi
ref=n/a
ref_cpu=n/a
ref_version=
if [ -n "$cli" ]; then
    ref_version=$("$cli" --version 2>/dev/null || true)
    echo "reference: $cli run --allow-precompiled hello.cwasm ($ref_version)" >&2
    "$cli" compile "$hello" -o "$tmp/hello.cwasm"
    hf ref --warmup 3 --runs "$E2E_RUNS" \
        "$cli run --allow-precompiled $tmp/hello.cwasm"
    ref=$(cat "$tmp/ref.ms")
    ref_cpu=$(cat "$tmp/ref.cpu")
else
    echo "reference: no wasmtime CLI (install it with: cargo install wasmtime-cli" \
        "--version 48.0.8 --locked --root ~/.cache/wasmlet/wasmtime-cli)" >&2
fi

# --- the table ---------------------------------------------------------------
cold=$(cat "$tmp/cold.ms")
warm=$(cat "$tmp/warm.ms")
inst=$(metric instantiate median_us)
warm_cpu=$(cat "$tmp/warm.cpu")
python3 -c 'import sys
print("OK" if float(sys.argv[1]) < 1000 else "MISSED")
for a, b in ((sys.argv[2], sys.argv[3]), (sys.argv[4], sys.argv[5])):
    if b == "n/a":
        print("n/a\nn/a")
    else:
        r = float(a) / float(b)
        print("%.2f\n%s" % (r, "OK" if r <= 2 else "MISSED"))' \
    "$inst" "$warm" "$ref" "$warm_cpu" "$ref_cpu" > "$tmp/verdict"
inst_ok=$(sed -n 1p "$tmp/verdict")
ratio=$(sed -n 2p "$tmp/verdict")
ratio_ok=$(sed -n 3p "$tmp/verdict")
ratio_cpu=$(sed -n 4p "$tmp/verdict")
ratio_cpu_ok=$(sed -n 5p "$tmp/verdict")

printf '\nstart-up of %s: %s; reference: %s\n' "$(basename "$hello")" \
    "$("$wasmlet" version)" "${ref_version:-no wasmtime CLI}"
printf '%-44s %12s %12s   %s\n' "measure" "median" "cpu (mean)" "target"
row() { printf '%-44s %12s %12s   %s\n' "$1" "$2" "${4:-}" "${3:-}"; }
row "engine + linker (wasmrt_open)" "$(metric open median_us) us"
row "cold load: compile + cache write" "$(metric cold median_us) us"
row "warm load from the disk cache (new runtime)" "$(metric disk median_us) us"
row "load of a module already loaded" "$(metric memory median_us) us"
row "instantiate (store, WASI, instance)" "$inst us" "< 1000 us: $inst_ok"
row "_start to exit" "$(metric run median_us) us"
row "wasmrt_run total" "$(metric total median_us) us"
row "wasmlet version, process (exec + libraries)" "$(cat "$tmp/floor.ms") ms" "" \
    "$(cat "$tmp/floor.cpu") ms"
row "wasmlet run, cold (empty cache), process" "$cold ms" "" "$(cat "$tmp/cold.cpu") ms"
row "wasmlet run, warm (disk cache), process" "$warm ms" "" "$warm_cpu ms"
row "wasmtime run --allow-precompiled, process" "$ref ms" "" "$ref_cpu ms"
row "ratio warm wasmlet run / wasmtime run" "$ratio" "<= 2: $ratio_ok (wall), $ratio_cpu_ok (cpu)" \
    "$ratio_cpu"
printf 'load average: %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
