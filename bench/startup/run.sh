#!/bin/sh
# bench/startup/run.sh [BUILD_DIR]: container start-up time of wasmlet, for
# a core module (examples/hello.c, hello.wasm) and its WASI preview 2
# component twin (hello.component.wasm) side by side, printed as a small
# table of medians and ratios.
#
#   in process   bench/startup/startup_bench: engine creation, cold compile,
#                load from the disk cache, load of a loaded module, and
#                wasmrt_run's instantiation and _start..exit (RUNS runs)
#   end to end   `wasmlet run -f hello.yaml` as new processes, through
#                hyperfine: cold (empty compile cache each run) and warm
#                (compiled module in the data dir's cache)
#   reference    the same binary under the wasmtime CLI, in the same run:
#                `wasmtime compile` (the cold compile as a process) and
#                `wasmtime run --allow-precompiled hello*.cwasm` (the warm
#                run), when a wasmtime CLI is found: first
#                ~/.cache/wasmlet/wasmtime-cli/bin/wasmtime (where
#                `cargo install wasmtime-cli --version 48.0.8 --locked
#                --root ~/.cache/wasmlet/wasmtime-cli` puts it, the same
#                Wasmtime as wasmlet links), else `wasmtime` on PATH.
#
# Targets, for both kinds: a warm `wasmlet run` within 2x of `wasmtime run`
# of the same precompiled binary, and a warm instantiation under 1 ms.
# Wall times on a busy machine mostly measure the other processes; the CPU
# time (user + system, mean) of each process is printed beside it and the
# ratio is given for both.
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
module=$build/examples/hello.wasm
component=$build/examples/hello.component.wasm
[ -x "$wasmlet" ] || { echo "run.sh: no $wasmlet (build wasmlet first)" >&2; exit 1; }
[ -f "$module" ] || { echo "run.sh: no $module (build the examples first)" >&2; exit 1; }
command -v hyperfine >/dev/null || { echo "run.sh: hyperfine is needed" >&2; exit 1; }
kinds="module"
if [ -f "$component" ]; then
    kinds="module component"
else
    echo "run.sh: no $component (the component toolchain is not installed): module only" >&2
fi

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
        jansson yaml-0.1 openssl zlib libevent libevent_openssl libevent_pthreads) \
        -lpthread -ldl -lm"
    (cd "$build" && ${CC:-cc} -std=c17 -O2 -D_GNU_SOURCE -I"$root/src" -isystem "$wt/include" \
        "$here/startup_bench.c" $libs -o "$bench")
fi

# file KIND: the binary of a kind.
file() { if [ "$1" = module ]; then echo "$module"; else echo "$component"; fi; }

for kind in $kinds; do
    echo "in process: $bench -n $RUNS -c $COLD_RUNS $(file "$kind")" >&2
    "$bench" -n "$RUNS" -c "$COLD_RUNS" "$(file "$kind")" > "$tmp/$kind.inproc"
done

# metric KIND NAME FIELD: a number from startup_bench's output, in microseconds.
metric() {
    awk -v m="$2" -v f="$3" '$1 == m { for (i = 2; i <= NF; i++) { split($i, kv, "=");
        if (kv[1] == f) print kv[2] } }' "$tmp/$1.inproc"
}

# hf NAME ARGS...: runs hyperfine; writes $tmp/NAME.ms (median wall time)
# and $tmp/NAME.cpu (mean user + system time), in milliseconds.
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

# --- end to end --------------------------------------------------------------
for kind in $kinds; do
    cat > "$tmp/$kind.yaml" <<EOF
apiVersion: v1
kind: Pod
metadata: {name: hello}
spec:
  restartPolicy: Never
  containers: [{name: hello, image: $(file "$kind")}]
EOF
    data=$tmp/data-$kind
    echo "end to end: $wasmlet run -f $kind.yaml (hyperfine)" >&2
    export WASMLET_DATA=$data
    hf "$kind-cold" --runs "$COLD_RUNS" --prepare "rm -rf $data/modules" \
        "$wasmlet run -f $tmp/$kind.yaml"
    "$wasmlet" run -f "$tmp/$kind.yaml" >/dev/null 2>&1 # compile once
    hf "$kind-warm" --warmup 3 --runs "$E2E_RUNS" "$wasmlet run -f $tmp/$kind.yaml"
done
# The floor of any wasmlet process: exec, shared libraries, exit.
hf floor --warmup 3 --runs "$E2E_RUNS" "$wasmlet version"

# --- the reference ----------------------------------------------------------
cli=${WASMTIME:-}
if [ -z "$cli" ] && [ -x "$HOME/.cache/wasmlet/wasmtime-cli/bin/wasmtime" ]; then
    cli=$HOME/.cache/wasmlet/wasmtime-cli/bin/wasmtime
fi
if [ -z "$cli" ]; then cli=$(command -v wasmtime || true); fi
ref_version=
if [ -n "$cli" ]; then
    ref_version=$("$cli" --version 2>/dev/null || true)
    for kind in $kinds; do
        f=$(file "$kind")
        echo "reference: $cli compile / run --allow-precompiled $(basename "$f") ($ref_version)" >&2
        hf "$kind-refcold" --runs "$COLD_RUNS" "$cli compile $f -o $tmp/$kind.cwasm"
        hf "$kind-ref" --warmup 3 --runs "$E2E_RUNS" \
            "$cli run --allow-precompiled $tmp/$kind.cwasm"
    done
else
    echo "reference: no wasmtime CLI (install it with: cargo install wasmtime-cli" \
        "--version 48.0.8 --locked --root ~/.cache/wasmlet/wasmtime-cli)" >&2
fi

# --- the table ---------------------------------------------------------------
# val NAME: "<wall> ms" of a hyperfine result, or n/a; cpu NAME likewise.
val() { if [ -f "$tmp/$1.ms" ]; then echo "$(cat "$tmp/$1.ms") ms"; else echo n/a; fi; }
cpu() { if [ -f "$tmp/$1.cpu" ]; then echo "$(cat "$tmp/$1.cpu") ms"; else echo n/a; fi; }
# verdict KIND: instantiation and the two warm ratios, with their verdicts.
verdict() {
    python3 -c 'import os, sys
tmp, kind, inst = sys.argv[1], sys.argv[2], sys.argv[3]
def num(name, ext):
    p = os.path.join(tmp, name + ext)
    return float(open(p).read()) if os.path.exists(p) else None
out = ["< 1000 us: " + ("OK" if float(inst) < 1000 else "MISSED")]
for ext in (".ms", ".cpu"):
    a, b = num(kind + "-warm", ext), num(kind + "-ref", ext)
    out.append("n/a" if b is None else "%.2f (%s)" % (a / b, "OK" if a / b <= 2 else "MISSED"))
print("\n".join(out))' "$tmp" "$1" "$(metric "$1" instantiate median_us)"
}
for kind in $kinds; do verdict "$kind" > "$tmp/$kind.verdict"; done
line() { sed -n "$2p" "$tmp/$1.verdict"; }
has_component() { [ "$kinds" != module ]; }

printf '\nstart-up of hello.wasm and hello.component.wasm: %s; reference: %s\n' \
    "$("$wasmlet" version)" "${ref_version:-no wasmtime CLI}"
fmt='%-46s %22s %22s\n'
# row LABEL MODULE_VALUE COMPONENT_VALUE
row() { printf "$fmt" "$1" "$2" "$(if has_component; then echo "$3"; else echo -; fi)"; }
# both LABEL METRIC: an in-process metric of each kind.
both() {
    row "$1" "$(metric module "$2" median_us) us" \
        "$(has_component && echo "$(metric component "$2" median_us) us")"
}
# proc LABEL NAME: wall (cpu) of a process of each kind.
proc() {
    row "$1" "$(val "module-$2") ($(cpu "module-$2"))" \
        "$(has_component && echo "$(val "component-$2") ($(cpu "component-$2"))")"
}
printf "$fmt" "measure (median; processes: wall (cpu))" "core module" "component"
both "engine + linkers (wasmrt_open)" open
both "cold load: compile + cache write" cold
proc "  wasmtime compile, process" refcold
both "warm load from the disk cache (new runtime)" disk
both "load of one already loaded" memory
both "instantiate (store, WASI, instance)" instantiate
row "  target" "$(line module 1)" "$(has_component && line component 1)"
both "run to exit" run
both "wasmrt_run total" total
row "wasmlet version, process (exec + libraries)" "$(val floor) ($(cpu floor))" \
    "$(val floor) ($(cpu floor))"
proc "wasmlet run, cold (empty cache), process" cold
proc "wasmlet run, warm (disk cache), process" warm
proc "wasmtime run --allow-precompiled, process" ref
row "ratio warm wasmlet run / wasmtime run, wall" "$(line module 2)" \
    "$(has_component && line component 2)"
row "ratio warm wasmlet run / wasmtime run, cpu" "$(line module 3)" \
    "$(has_component && line component 3)"
printf 'targets: instantiate < 1000 us; warm wasmlet run <= 2x wasmtime run\n'
printf 'load average: %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
