#!/bin/sh
# badmodules.sh OUTDIR [VALID_WASM]: writes the broken or unrunnable modules
# the tests feed to wasmlet, each of which must fail the container with a
# clear reason (and never crash or hang wasmlet):
#
#   notwasm.wasm         a line of text, no wasm magic
#   truncated.wasm       the first 100 bytes of VALID_WASM (default: the built
#                        hello.wasm next to this script's build dir), cut in
#                        the middle of a section
#   empty.wasm           0 bytes
#   component.wasm       the smallest valid WebAssembly component: the preamble
#                        alone (magic, version 0x0d 0x00, layer 0x01 0x00, per
#                        the component model's Binary.md), no sections.
#                        wasmlet runs core modules only.
#   nostart.wasm         the smallest valid core module (magic, version 1): no
#                        imports, no exports, so no _start
#   nostart-export.wasm  a valid core module whose only export is a function
#                        `main_not_start` of type [] -> [] with an empty body
#
# Bytes are written with printf octal escapes (POSIX sh has no \x). The layout
# of nostart-export.wasm, section by section (id, byte length, contents):
#   00 61 73 6d 01 00 00 00                 magic, version 1
#   01 04  01 60 00 00                      type: 1 type, func [] -> []
#   03 02  01 00                            function: 1 func, type 0
#   07 12  01 0e "main_not_start" 00 00     export: 1 export, name (14 bytes),
#                                           kind func, index 0
#   0a 04  01 02 00 0b                      code: 1 body of 2 bytes: 0 locals, end
set -eu
[ $# -ge 1 ] && [ $# -le 2 ] || { echo "usage: $0 OUTDIR [VALID_WASM]" >&2; exit 2; }
out=$1
valid=${2:-$(dirname "$0")/../build/examples/hello.wasm}
[ -f "$valid" ] || { echo "badmodules.sh: $valid: no such module (build the examples first)" >&2; exit 1; }
size=$(wc -c < "$valid")
[ "$size" -gt 100 ] || { echo "badmodules.sh: $valid is only $size bytes" >&2; exit 1; }
mkdir -p "$out"

printf 'this is not a WebAssembly module\n' > "$out/notwasm.wasm"
head -c 100 "$valid" > "$out/truncated.wasm"
: > "$out/empty.wasm"
printf '\000asm\015\000\001\000' > "$out/component.wasm"
printf '\000asm\001\000\000\000' > "$out/nostart.wasm"
{
    printf '\000asm\001\000\000\000'
    printf '\001\004\001\140\000\000'
    printf '\003\002\001\000'
    printf '\007\022\001\016main_not_start\000\000'
    printf '\012\004\001\002\000\013'
} > "$out/nostart-export.wasm"
