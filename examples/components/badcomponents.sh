#!/bin/sh
# badcomponents.sh OUTDIR WASM_TOOLS VALID_COMPONENT: writes the broken or
# unrunnable components the tests feed to wasmlet, beside badmodules.sh's
# core modules; each must fail the container with a clear reason:
#
#   component-truncated.wasm  the first half of VALID_COMPONENT (the built
#                             hello.component.wasm), cut inside a section
#   component-keyvalue.wasm   bad/keyvalue.wat: a command that imports
#                             wasi:keyvalue/store@0.2.0, which no host here has
#   component-wasi03.wasm     bad/wasi03.wat: a command that imports
#                             wasi:cli/environment@0.3.0, a WASI version the
#                             host cannot link
#
# The library component with no wasi:cli/run is reactor.component.wasm
# (the twin of examples/reactor.c), built by examples.cmake.
set -eu
[ $# -eq 3 ] || { echo "usage: $0 OUTDIR WASM_TOOLS VALID_COMPONENT" >&2; exit 2; }
out=$1 wasm_tools=$2 valid=$3
here=$(dirname "$0")
size=$(wc -c < "$valid")
[ "$size" -gt 1000 ] || { echo "badcomponents.sh: $valid is only $size bytes" >&2; exit 1; }
mkdir -p "$out"
head -c $((size / 2)) "$valid" > "$out/component-truncated.wasm"
"$wasm_tools" parse "$here/bad/keyvalue.wat" -o "$out/component-keyvalue.wasm"
"$wasm_tools" parse "$here/bad/wasi03.wat" -o "$out/component-wasi03.wasm"
