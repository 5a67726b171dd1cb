#!/usr/bin/env bash
# One set-up path for a brand-new machine: installs the Debian packages
# wasmlet builds and tests with, then builds (or reuses from the cache
# outside the clone) the Wasmtime C API, the Kubernetes control plane (with
# kube-proxy), the WebAssembly component toolchain (scripts/tools.sh), the
# wasmtime CLI (scripts/wasmtime-cli.sh) and the Go standard-library test
# binaries for wasip1 (scripts/go-stdlib.sh).
# Safe to run again: every step is skipped when its result is already there.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

packages=(
  # build
  cmake ninja-build pkg-config gcc clang lld clang-format
  # the fuzz stage: libFuzzer and the ASan/UBSan runtimes of clang 14
  # (clang -fsanitize=fuzzer,address,undefined links them; libFuzzer is C++,
  # so it also needs libstdc++'s development files)
  libclang-rt-14-dev libstdc++-12-dev
  # pod networking: the CNI plugins (ptp, static, portmap, and the others;
  # Debian installs them in /usr/lib/cni), portmap's iptables, and
  # kube-proxy's nftables mode
  containernetworking-plugins iptables nftables
  # wasm32-wasi test workloads
  wasi-libc libclang-rt-14-dev-wasm32
  # libraries wasmlet links
  libcurl4-openssl-dev libssl-dev libyaml-dev libjansson-dev libevent-dev zlib1g-dev
  # tests
  libcmocka-dev valgrind openssl docker-registry python3 python3-pytest curl procps iproute2
  prometheus  # promtool checks /metrics in the end-to-end tests
  # benchmarks
  gnuplot-nox hyperfine wrk
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  # The Debian registry package starts a system service; the tests run
  # their own registry on a loopback port instead.
  if systemctl is-active --quiet docker-registry 2>/dev/null; then
    systemctl stop docker-registry >&2 || true
  fi
fi

if [ "${1:-}" != "--no-cluster" ]; then
  "$root/scripts/k8s.sh" >/dev/null
fi
"$root/scripts/wasmtime.sh" >/dev/null
# The component workloads' toolchain (wasm-tools, wit-bindgen, the preview-1
# adapters, the WASI WIT): examples.cmake builds the components with it.
"$root/scripts/tools.sh" >/dev/null
# The reference runtime of the Go standard-library tests and the benchmarks
# (the wasmtime CLI of the same Wasmtime), and those tests' binaries, built
# with the Go on the machine.
"$root/scripts/wasmtime-cli.sh" >/dev/null
if command -v go >/dev/null; then "$root/scripts/go-stdlib.sh" >/dev/null; fi
echo "setup: done" >&2
