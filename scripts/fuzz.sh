#!/usr/bin/env bash
# fuzz.sh: builds and runs the libFuzzer harnesses of tests/fuzz (clang).
#
#   scripts/fuzz.sh replay              build, then run every harness over its
#                                       seed corpus and its regressions (no new
#                                       inputs); fails on any crash
#   scripts/fuzz.sh run SECONDS [h...]  fuzz each harness (default: all) for
#                                       SECONDS; prints executions, new corpus
#                                       entries and crashes per harness; crash
#                                       inputs go to tests/fuzz/crashes/<h>/
#   scripts/fuzz.sh ci                  replay, then run FUZZ_SECONDS (default
#                                       15) each, FUZZ_JOBS (default 2) at once
#   scripts/fuzz.sh long SECONDS        run each harness SECONDS in turn under
#                                       nice -n 19, one at a time, and print a
#                                       table (the long runs of the README)
#
# Harness h is build-fuzz/tests/fuzz/fuzz_<h>; its seeds are
# tests/fuzz/corpus/<h>/ (never written by a run: new inputs go to a scratch
# directory, FUZZ_WORK or build-fuzz/fuzz-work/<h>/, to be minimized and
# committed by hand). Environment: BUILD (default build-fuzz), FUZZ_JOBS
# (harnesses run at once, default 1; keep it at most the number of cores).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build-fuzz}
FUZZ_DIR=$ROOT/tests/fuzz
WORK=${FUZZ_WORK:-$BUILD/fuzz-work}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:handle_abort=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

die() { echo "fuzz.sh: $*" >&2; exit 1; }

harnesses() {
    local f
    for f in "$FUZZ_DIR"/fuzz_*.c; do
        f=${f##*/fuzz_}
        echo "${f%.c}"
    done
}

build() {
    command -v clang >/dev/null || die "clang is needed"
    # libFuzzer and the sanitizer runtimes (Debian: libclang-rt-<ver>-dev).
    local rt
    rt=$(clang -print-runtime-dir 2>/dev/null || true)
    if [ -n "$rt" ] && ! ls "$rt"/libclang_rt.fuzzer*.a >/dev/null 2>&1; then
        local ver
        ver=$(clang -dumpversion | cut -d. -f1)
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            echo "fuzz.sh: installing libclang-rt-$ver-dev (libFuzzer)" >&2
            apt-get install -y -q "libclang-rt-$ver-dev" >/dev/null ||
                { apt-get update -q >/dev/null && apt-get install -y -q "libclang-rt-$ver-dev" >/dev/null; }
        else
            die "libFuzzer is missing: install libclang-rt-$ver-dev"
        fi
    fi
    if [ ! -f "$BUILD/build.ninja" ]; then
        cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_C_COMPILER=clang \
            -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWASMLET_FUZZ=ON -DWASMLET_TESTS=OFF \
            -DWASMLET_WERROR=ON >/dev/null
    fi
    ninja -C "$BUILD" -j"$(nproc)" fuzz >/dev/null || ninja -C "$BUILD" -j1 fuzz
}

bin_of() { echo "$BUILD/tests/fuzz/fuzz_$1"; }

# Runs harness $1 over every file of its corpus and regressions.
replay_one() {
    local h=$1 dirs=() n=0 d
    for d in "$FUZZ_DIR/corpus/$h" "$FUZZ_DIR/regressions/$h"; do
        [ -d "$d" ] && [ -n "$(ls -A "$d")" ] && dirs+=("$d") && n=$((n + $(ls -A "$d" | wc -l)))
    done
    [ ${#dirs[@]} -gt 0 ] || die "$h: no corpus in tests/fuzz/corpus/$h"
    local log="$WORK/$h.replay.log"
    mkdir -p "$WORK"
    if (cd "$WORK" && "$(bin_of "$h")" -runs=0 -rss_limit_mb=2048 -timeout=25 "${dirs[@]}") >"$log" 2>&1; then
        printf '%-18s replayed %4d inputs: ok\n' "$h" "$n"
    else
        printf '%-18s replayed %4d inputs: FAILED (log: %s)\n' "$h" "$n" "$log"
        grep -m5 -E "ERROR|runtime error|SUMMARY|Running:" "$log" >&2 || tail -20 "$log" >&2
        return 1
    fi
}

replay() {
    build
    local h failed=0
    for h in $(harnesses); do
        replay_one "$h" || failed=1
    done
    [ $failed = 0 ] || die "replay: a harness crashed"
}

# Fuzzes harness $1 for $2 seconds.
run_one() {
    local h=$1 secs=$2 bin scratch crashes log
    bin=$(bin_of "$h")
    [ -x "$bin" ] || die "no harness $h"
    scratch="$WORK/$h"
    crashes="$FUZZ_DIR/crashes/$h"
    log="$WORK/$h.run.log"
    mkdir -p "$scratch" "$crashes" "$WORK/$h.artifacts"
    local before
    before=$(ls -A "$scratch" | wc -l)
    local dict=()
    [ -f "$FUZZ_DIR/$h.dict" ] && dict=("-dict=$FUZZ_DIR/$h.dict")
    local rc=0
    (cd "$WORK" && "$bin" -max_total_time="$secs" -print_final_stats=1 -rss_limit_mb=2048 \
        -timeout=25 -max_len=65536 -close_fd_mask=3 "${dict[@]}" \
        -artifact_prefix="$WORK/$h.artifacts/" "$scratch" "$FUZZ_DIR/corpus/$h") >"$log" 2>&1 || rc=$?
    local execs new found=0 a
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    new=$(( $(ls -A "$scratch" | wc -l) - before ))
    for a in "$WORK/$h.artifacts"/*; do
        [ -e "$a" ] || continue
        mv "$a" "$crashes/"
        found=$((found + 1))
    done
    [ "$(ls -A "$crashes")" ] || rmdir "$crashes" 2>/dev/null || true
    printf '%-18s executions %10s  new entries %5d  crashes %d%s\n' "$h" "${execs:-?}" "$new" \
        "$found" "$([ $rc != 0 ] && echo "  (exit $rc, log: $log)")"
    if [ $found -gt 0 ] || [ $rc != 0 ]; then
        grep -m6 -E "ERROR|runtime error|SUMMARY|#[0-9] 0x" "$log" >&2 || true
        return 1
    fi
}

run() {
    local secs=${1:-}
    [[ $secs =~ ^[0-9]+$ ]] || die "usage: fuzz.sh run SECONDS [harness...]"
    shift
    build
    local list=("$@")
    [ ${#list[@]} -gt 0 ] || mapfile -t list < <(harnesses)
    local jobs=${FUZZ_JOBS:-1} failed=0 h pids=()
    if [ "$jobs" -le 1 ]; then
        for h in "${list[@]}"; do run_one "$h" "$secs" || failed=1; done
    else
        local out="$WORK/parallel" i=0
        mkdir -p "$out"
        for h in "${list[@]}"; do
            (run_one "$h" "$secs" >"$out/$h.out" 2>&1) &
            pids+=($!)
            i=$((i + 1))
            if [ $((i % jobs)) = 0 ]; then
                for p in "${pids[@]}"; do wait "$p" || failed=1; done
                pids=()
            fi
        done
        for p in "${pids[@]}"; do wait "$p" || failed=1; done
        for h in "${list[@]}"; do cat "$out/$h.out"; done
    fi
    [ $failed = 0 ] || die "run: crashes found (inputs in tests/fuzz/crashes/)"
}

case ${1:-} in
replay) replay ;;
run) shift; run "$@" ;;
ci) replay; FUZZ_JOBS=${FUZZ_JOBS:-2} run "${FUZZ_SECONDS:-15}" ;;
long) shift; secs=${1:-600}; shift || true; FUZZ_JOBS=1 nice -n 19 "$0" run "$secs" "$@" ;;
*) die "usage: fuzz.sh replay | run SECONDS [harness...] | ci | long SECONDS [harness...]" ;;
esac
