#!/usr/bin/env bash
# Builds the test binaries of a selection of Go standard-library packages for
# GOOS=wasip1 GOARCH=wasm (`go test -c`) with the Go on the machine, and
# caches them outside the clone, keyed by the Go version and the package list,
# so a second run takes well under a second. Prints the directory on stdout:
#
#   <pkg with / as _>.test.wasm   one test binary per package
#   packages                      the packages, one a line, in build order
#   version                       `go version`
#
# tests/run/test_go_stdlib.py runs each binary the way Go's own
# lib/wasm/go_wasip1_wasm_exec runs it under wasmtime (host root preopened,
# PWD and PATH passed, an 8 MiB WebAssembly stack), from the package's
# source directory, under `wasmtime run` and under `wasmlet run`.
#
# `go-stdlib.sh --packages` prints the package list and exits.
set -euo pipefail
cache=${WASMLET_CACHE:-$HOME/.cache/wasmlet}

# Packages whose tests are quick (seconds with -test.short) and between them
# cover what a module does through WASI: files and directories (os, io/fs,
# path/filepath, archive/*), clocks and timers (time, context), goroutines
# and the scheduler (sync), and a broad sample of pure computation.
packages=(
  archive/tar
  archive/zip
  bufio
  bytes
  compress/gzip
  container/list
  context
  crypto/sha256
  encoding/base64
  encoding/hex
  encoding/json
  errors
  fmt
  hash/crc32
  io
  io/fs
  math
  os
  path
  path/filepath
  regexp
  sort
  strconv
  strings
  sync
  text/template
  time
  unicode/utf8
)
if [ "${1:-}" = "--packages" ]; then
  printf '%s\n' "${packages[@]}"
  exit 0
fi

command -v go >/dev/null || { echo "go-stdlib.sh: no go on PATH" >&2; exit 1; }
version=$(go version)
layout=1
key=$(printf '%s\n' "$layout" "$version" "${packages[@]}" | sha256sum | cut -c1-16)
dir=$cache/go-stdlib/$key
if [ -f "$dir/version" ]; then
  echo "$dir"
  exit 0
fi

echo "building ${#packages[@]} Go standard-library test binaries for wasip1" \
  "(first time only; cached in $dir)" >&2
start=$(date +%s)
mkdir -p "$cache/go-stdlib"
tmp=$(mktemp -d "$cache/go-stdlib/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
for p in "${packages[@]}"; do
  echo "  go test -c $p" >&2
  GOOS=wasip1 GOARCH=wasm GOFLAGS= go test -c -o "$tmp/${p//\//_}.test.wasm" "$p" >&2
done
printf '%s\n' "${packages[@]}" > "$tmp/packages"
echo "$version" > "$tmp/version"
rm -rf "$dir"
mv "$tmp" "$dir"
trap - EXIT
echo "Go test binaries built in $(($(date +%s) - start)) s" >&2
echo "$dir"
