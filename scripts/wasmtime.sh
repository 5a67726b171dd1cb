#!/usr/bin/env bash
# Builds the Wasmtime C API static library through deps/wasmtime-capi and
# caches it outside the clone, keyed by the wrapper's Cargo.toml and
# Cargo.lock, so a second run (or CI on a machine that already built it)
# takes seconds. Prints the install prefix (lib/ and include/) on stdout.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${WASMLET_CACHE:-$HOME/.cache/wasmlet}
crate=$root/deps/wasmtime-capi
# The key covers every file of the crate: a change to any of its sources
# rebuilds the library.
key=$(cat "$crate/Cargo.toml" "$crate/Cargo.lock" "$crate"/src/*.rs 2>/dev/null | sha256sum | cut -c1-16)
version=$(sed -n 's/^version = "=\{0,1\}\(48[^"]*\)"/\1/p' "$crate/Cargo.toml" | tail -n1)
prefix=$cache/wasmtime/$version-$key
if [ -f "$prefix/lib/libwasmtime.a" ] && [ -f "$prefix/include/wasmtime/conf.h" ]; then
  echo "$prefix"
  exit 0
fi
target=$cache/wasmtime/target
mkdir -p "$target"
echo "building Wasmtime C API $version (first time only; cached in $prefix)" >&2
start=$(date +%s)
# --locked once Cargo.lock is committed: the build is the one we tested.
locked=()
[ -f "$crate/Cargo.lock" ] && locked=(--locked)
CARGO_TARGET_DIR=$target cargo build --release "${locked[@]}" \
  --manifest-path "$crate/Cargo.toml" >&2
out=$(ls -td "$target"/release/build/wasmtime-c-api-impl-*/out 2>/dev/null | head -n1)
[ -f "$out/include/wasmtime/conf.h" ] || { echo "wasmtime.sh: conf.h was not generated" >&2; exit 1; }
tmp=$(mktemp -d "$cache/wasmtime/.install.XXXXXX")
mkdir -p "$tmp/lib"
cp "$target/release/libwasmtime.a" "$tmp/lib/"
cp -r "$out/include" "$tmp/include"
rm -rf "$prefix"
mv "$tmp" "$prefix"
echo "Wasmtime C API built in $(( $(date +%s) - start )) s" >&2
echo "$prefix"
