#!/usr/bin/env bash
# Installs the WebAssembly component toolchain the example workloads are
# built with, and caches it outside the clone, keyed by this script (the
# versions are pinned below), so a second run takes well under a second.
# Prints the tools directory on stdout:
#
#   bin/wasm-tools      crates.io wasm-tools (component new/embed, parse, wit)
#   bin/wit-bindgen     crates.io wit-bindgen-cli, C generator only
#   adapters/wasi_snapshot_preview1.{command,reactor,proxy}.wasm
#                       the preview-1 adapters of the pinned Wasmtime, taken
#                       from the source of wasi-preview1-component-adapter-provider
#                       (the crate ships them; nothing is built)
#   wit/cli/            the WASI 0.2 WIT of wasmtime-wasi (deps/: cli, clocks,
#                       filesystem, io, random, sockets), the interfaces the
#                       host links
#   wit/http/           the same plus wasi:http, from wasmtime-wasi-http
#   versions            what was installed, one `name version` a line
#
# `tools.sh --if-installed` only prints the directory when it is already
# there and exits 1 otherwise (examples.cmake uses it, so configuring never
# starts a build of the tools).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${WASMLET_CACHE:-$HOME/.cache/wasmlet}

wasmtime_version=48.0.8 # must match deps/wasmtime-capi/Cargo.toml
wasm_tools_version=1.263.0
wit_bindgen_version=0.63.0

wasm_tools_features=component,parse,print,validate,metadata,strip,dump
# The key covers what decides the contents; bump layout when the layout above
# changes.
layout=1
key=$(echo "$layout $wasmtime_version $wasm_tools_version $wasm_tools_features $wit_bindgen_version" |
  sha256sum | cut -c1-16)
dir=$cache/tools/$key
if [ -f "$dir/versions" ]; then
  echo "$dir"
  exit 0
fi
[ "${1:-}" = "--if-installed" ] && exit 1

echo "installing the component toolchain (first time only; cached in $dir)" >&2
start=$(date +%s)
mkdir -p "$cache/tools"
tmp=$(mktemp -d "$cache/tools/.install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# One target dir for every install, so a version bump rebuilds only what changed.
export CARGO_TARGET_DIR=$cache/tools/target

echo "  cargo install wasm-tools $wasm_tools_version" >&2
cargo install --locked -j2 --quiet --root "$tmp" --version "$wasm_tools_version" \
  --no-default-features --features "$wasm_tools_features" \
  wasm-tools >&2
echo "  cargo install wit-bindgen-cli $wit_bindgen_version" >&2
cargo install --locked -j2 --quiet --root "$tmp" --version "$wit_bindgen_version" \
  --no-default-features --features c wit-bindgen-cli >&2

# The adapters and the WIT come from crate sources: a throwaway package that
# depends on the three crates, `cargo fetch`ed (nothing compiled), and
# `cargo metadata` says where each crate's source was unpacked. The
# wrapper's Cargo.lock seeds the resolution, so the crates the wrapper build
# already fetched are reused.
echo "  cargo fetch the adapter provider and the WASI WIT ($wasmtime_version)" >&2
pkg=$tmp/fetch
mkdir -p "$pkg/src"
: > "$pkg/src/lib.rs"
cat > "$pkg/Cargo.toml" <<EOF
[package]
name = "wasmlet-tools-fetch"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
wasi-preview1-component-adapter-provider = "=$wasmtime_version"
wasmtime-wasi = { version = "=$wasmtime_version", default-features = false }
wasmtime-wasi-http = { version = "=$wasmtime_version", default-features = false }
EOF
[ -f "$root/deps/wasmtime-capi/Cargo.lock" ] && cp "$root/deps/wasmtime-capi/Cargo.lock" "$pkg/"
cargo fetch --quiet --manifest-path "$pkg/Cargo.toml" >&2
src_of() { # crate name -> directory of its unpacked source
  cargo metadata --quiet --format-version 1 --manifest-path "$pkg/Cargo.toml" |
    python3 -c '
import json, os, sys
name, version = sys.argv[1], sys.argv[2]
for p in json.load(sys.stdin)["packages"]:
    if p["name"] == name and p["version"] == version:
        print(os.path.dirname(p["manifest_path"]))
        break
' "$1" "$wasmtime_version"
}
adapter=$(src_of wasi-preview1-component-adapter-provider)
wasi=$(src_of wasmtime-wasi)
http=$(src_of wasmtime-wasi-http)
for d in "$adapter/artefacts" "$wasi/src/p2/wit/deps" "$http/wit/deps"; do
  [ -d "$d" ] || { echo "tools.sh: $d is missing" >&2; exit 1; }
done
mkdir -p "$tmp/adapters" "$tmp/wit/cli" "$tmp/wit/http"
for kind in command reactor proxy; do
  cp "$adapter/artefacts/wasi_snapshot_preview1.$kind.wasm" "$tmp/adapters/"
done
cp -r "$wasi/src/p2/wit/deps" "$tmp/wit/cli/deps"
cp -r "$http/wit/deps" "$tmp/wit/http/deps"
rm -rf "$pkg" "$tmp/.crates.toml" "$tmp/.crates2.json"

{
  echo "wasm-tools $("$tmp/bin/wasm-tools" --version | awk '{print $2}')"
  echo "wit-bindgen-cli $("$tmp/bin/wit-bindgen" --version | awk '{print $2}')"
  echo "wasi-preview1-component-adapter-provider $wasmtime_version"
  echo "wasmtime-wasi $wasmtime_version"
  echo "wasmtime-wasi-http $wasmtime_version"
  echo "wasi $(sed -n 's/^package wasi:cli@\(.*\);/\1/p' "$tmp/wit/cli/deps/cli.wit")"
} > "$tmp/versions"
rm -rf "$dir"
mv "$tmp" "$dir"
trap - EXIT
echo "component toolchain installed in $(($(date +%s) - start)) s" >&2
echo "$dir"
