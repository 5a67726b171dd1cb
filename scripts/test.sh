#!/usr/bin/env bash
# The test command of the README: everything a change must pass.
#
#   1. set-up (Debian packages, the Wasmtime C API, the control plane),
#      each skipped when already there;
#   2. build with gcc (warnings are errors) and run the unit tests (ctest);
#   3. the same unit tests in an ASan + UBSan build;
#   4. a clang build (warnings are errors), the clang-format check and the
#      include-layering check (scripts/check-layering.sh);
#   4b. fuzz: every libFuzzer harness of tests/fuzz built with clang
#      -fsanitize=fuzzer,address,undefined, its seed corpus and regressions
#      replayed, then each fuzzed for a short fixed time (scripts/fuzz.sh ci;
#      FUZZ_SECONDS per harness, default 8, two at a time);
#   5. `wasmlet run` integration tests (pytest, tests/run), also against the
#      sanitizer build's binary;
#   6. the local control plane: its smoke test (tests/cluster) and the
#      end-to-end tests of wasmlet nodes (tests/e2e), against the real
#      kube-apiserver, controllers, scheduler and registry.
# Stages can be picked: scripts/test.sh unit asan clang fuzz run e2e (default: all).
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
stages=${*:-setup unit asan clang fuzz run e2e}
jobs=${WASMLET_JOBS:-2}
failed=()
passed=()

stage() { printf '\n==== %s ====\n' "$*"; }
record() { if [ "$2" -eq 0 ]; then passed+=("$1"); else failed+=("$1"); fi; }
has() { [[ " $stages " == *" $1 "* ]]; }

if has setup; then
  stage "set-up"
  scripts/setup.sh || { echo "set-up failed"; exit 1; }
fi

build() { # dir, extra cmake args...
  local dir=$1; shift
  mkdir -p "$dir"
  cmake -S . -B "$dir" -G Ninja -DWASMLET_WERROR=ON "$@" >"$dir/configure.log" 2>&1 ||
    { cat "$dir/configure.log"; return 1; }
  ninja -C "$dir" -j"$jobs"
}

if has unit; then
  stage "gcc build + unit tests"
  mkdir -p build
  build build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=gcc
  rc=$?
  if [ $rc -eq 0 ]; then ctest --test-dir build --output-on-failure -j"$jobs"; rc=$?; fi
  record unit $rc
fi

if has asan; then
  stage "ASan + UBSan build + unit tests"
  mkdir -p build-asan
  build build-asan -DCMAKE_BUILD_TYPE=Debug -DWASMLET_SANITIZE=ON -DCMAKE_C_COMPILER=gcc
  rc=$?
  # Wasmtime handles SIGSEGV itself (guard pages for linear memory): ASan
  # must leave that signal alone.
  export ASAN_OPTIONS=${ASAN_OPTIONS:-handle_segv=0:allow_user_segv_handler=1:detect_leaks=1}
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
  if [ $rc -eq 0 ]; then ctest --test-dir build-asan --output-on-failure -j"$jobs"; rc=$?; fi
  record asan $rc
fi

if has clang; then
  stage "clang build + format check"
  mkdir -p build-clang
  build build-clang -DCMAKE_C_COMPILER=clang -DWASMLET_TESTS=ON
  rc=$?
  if [ $rc -eq 0 ]; then ninja -C build-clang format-check; rc=$?; fi
  # The house stays as drawn: no include against the folder order, no cycle.
  if [ $rc -eq 0 ]; then scripts/check-layering.sh; rc=$?; fi
  record clang $rc
fi

if has fuzz; then
  stage "fuzz: build, replay corpora and regressions, short runs"
  FUZZ_JOBS=$jobs FUZZ_SECONDS=${FUZZ_SECONDS:-8} scripts/fuzz.sh ci
  record fuzz $?
fi

if has run; then
  stage "wasmlet run integration tests"
  WASMLET_BIN=$root/build/wasmlet WASMLET_EXAMPLES=$root/build/examples \
    WASMLET_ASAN_BIN=$root/build-asan/wasmlet python3 -m pytest -q tests/run
  record run $?
fi

if has e2e; then
  stage "control plane smoke test"
  python3 -m pytest -q tests/cluster
  record cluster $?
  stage "end-to-end tests"
  WASMLET_BIN=$root/build/wasmlet WASMLET_EXAMPLES=$root/build/examples \
    python3 -m pytest -q tests/e2e
  record e2e $?
fi

echo
echo "stages passed: ${passed[*]:-none}"
echo "stages failed: ${failed[*]:-none}"
echo "${#passed[@]} passed, ${#failed[@]} failed"
[ ${#failed[@]} -eq 0 ]
