#!/usr/bin/env bash
# Installs the wasmtime CLI of the Wasmtime wasmlet links (the reference the
# Go standard-library tests and the benchmarks compare against) into
# ~/.cache/wasmlet/wasmtime-cli, outside the clone, and prints the path of
# the binary on stdout. Skipped when that version is already there (built
# with these features or with all of them); the first install compiles for
# a while (cargo, -j2).
#
# Only the features the tests and benchmarks use are built: `run` (the Go
# standard-library tests, bench/startup), `compile` (bench/startup),
# `serve` (bench/serving; it needs component-model-async), Cranelift, the
# pooling allocator and the compile cache. The CLI's defaults add winch,
# pulley, wasi-nn, wasi-tls, wizer, the explorer, objdump and more, which
# roughly double a first install on 2 cores for nothing used here.
set -euo pipefail
cache=${WASMLET_CACHE:-$HOME/.cache/wasmlet}
version=48.0.8 # must match deps/wasmtime-capi/Cargo.toml
features=run,compile,serve,cranelift,parallel-compilation,pooling-allocator,component-model,component-model-async,cache,wat,clap/default
dir=$cache/wasmtime-cli
bin=$dir/bin/wasmtime
if [ -x "$bin" ] && [ "$("$bin" --version | awk '{print $2}')" = "$version" ]; then
  echo "$bin"
  exit 0
fi
echo "installing the wasmtime CLI $version (first time only; in $dir)" >&2
start=$(date +%s)
mkdir -p "$dir"
CARGO_TARGET_DIR=$dir/target cargo install --locked -j2 --quiet --force \
  --root "$dir" --version "$version" --no-default-features --features "$features" \
  wasmtime-cli >&2
rm -rf "$dir/target"
echo "wasmtime CLI installed in $(($(date +%s) - start)) s" >&2
echo "$bin"
