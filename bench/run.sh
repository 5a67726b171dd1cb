#!/usr/bin/env bash
# bench/run.sh [--quick] [--no-build] [bench.py options]: every wasmlet
# benchmark, one command. Sets up what is missing (scripts/setup.sh), builds
# wasmlet and the examples, runs the in-process start-up benchmark
# (bench/startup/run.sh), then bench/bench.py: a dedicated control plane on
# free loopback ports, wasmlet nodes, pod start latency against the control
# plane's floor, compute, churn, density (without and with pod networking)
# and, as root, the network sandbox alone (bench/sandbox/run.sh). Writes bench/results/report.md
# and its PNG plots; raw data in bench/results/raw/. About ten minutes on 2
# cores; --quick is a two-minute smoke run of the same code paths.
#
# WASMLET_BUILD (default build) is the build dir used; --no-build takes what
# is in it as it is (to benchmark a given binary while src/ changes).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
quick=0
build_it=1
args=()
for a in "$@"; do
  case "$a" in
    --quick) quick=1; args+=("$a") ;;
    --no-build) build_it=0 ;;
    *) args+=("$a") ;;
  esac
done
build=${WASMLET_BUILD:-build}

if [ "$build_it" = 1 ]; then
  scripts/setup.sh
  cmake -S . -B "$build" -G Ninja >/dev/null
  ninja -C "$build" -j2 >/dev/null
fi
export WASMLET_BIN=$root/${build#"$root"/}/wasmlet WASMLET_EXAMPLES=$root/${build#"$root"/}/examples
case "$build" in /*) export WASMLET_BIN=$build/wasmlet WASMLET_EXAMPLES=$build/examples ;; esac

mkdir -p bench/results/raw
rm -f bench/results/raw/startup.txt
if [ -x bench/startup/run.sh ]; then
  if [ "$quick" = 1 ]; then
    export RUNS=${RUNS:-100} COLD_RUNS=${COLD_RUNS:-3} E2E_RUNS=${E2E_RUNS:-5}
  fi
  echo "[bench] == startup (bench/startup/run.sh)" >&2
  if ! bench/startup/run.sh "$build" >bench/results/raw/startup.txt; then
    echo "[bench] bench/startup/run.sh failed; the report leaves it out" >&2
    rm -f bench/results/raw/startup.txt
  fi
fi
# The network sandbox alone (namespace + CNI ADD/DEL, wasmlet's net/ code):
# root and Debian's CNI plugins only.
rm -f bench/results/raw/sandbox.txt bench/results/raw/sandbox_growth.txt
if [ "$(id -u)" = 0 ] && [ -x /usr/lib/cni/ptp ]; then
  echo "[bench] == sandbox (bench/sandbox/run.sh)" >&2
  if ! bench/sandbox/run.sh "$build" "$([ "$quick" = 1 ] && echo 20 || echo 100)" \
      >bench/results/raw/sandbox.txt; then
    echo "[bench] bench/sandbox/run.sh failed; the report leaves it out" >&2
    rm -f bench/results/raw/sandbox.txt
  fi
  # How a sandbox's cost grows with the sandboxes already there, plugin by
  # plugin (through timing wrappers): 1,000 held, about two minutes.
  echo "[bench] == sandbox growth (bench/sandbox/run.sh -t)" >&2
  if ! bench/sandbox/run.sh "$build" "$([ "$quick" = 1 ] && echo 20 || echo 1000)" -t \
      >bench/results/raw/sandbox_growth.txt; then
    echo "[bench] bench/sandbox/run.sh -t failed; the report leaves it out" >&2
    rm -f bench/results/raw/sandbox_growth.txt
  fi
fi
exec python3 bench/bench.py "${args[@]}"
