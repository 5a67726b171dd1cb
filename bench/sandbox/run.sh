#!/bin/sh
# bench/sandbox/run.sh [BUILD_DIR] [N] [-t]: the cost of a pod's network
# sandbox (namespace + CNI ADD of ptp and its IPAM; portmap runs only for a hostPort), in time
# and in memory, with wasmlet's own net/ code (bench/sandbox/sandbox_bench.c).
# Needs root and Debian's CNI plugins (/usr/lib/cni). N sandboxes (100, at
# most 1000) are made one after the other, held, then destroyed; -t also
# times each plugin call, through wrappers.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
n=${2:-100}
wt=$("$root/scripts/wasmtime.sh")
[ -f "$build/libwasmlet_core.a" ] && [ -n "$wt" ] ||
    { echo "run.sh: $build has no libwasmlet_core.a or WASMTIME_DIR" >&2; exit 1; }
tmp=$(mktemp -d /tmp/wasmlet-sandbox-bench-XXXXXX)
trap 'rm -rf "$tmp"' EXIT INT TERM
libs=$(awk '/^build wasmlet: /{f=1} f && /LINK_LIBRARIES/{sub(/^ *LINK_LIBRARIES = /, "");
    print; exit}' "$build/build.ninja" 2>/dev/null || true)
[ -n "$libs" ] || libs="libwasmlet_core.a $wt/lib/libwasmtime.a $(pkg-config --libs \
    jansson yaml-0.1 libcurl openssl zlib libevent libevent_openssl libevent_pthreads) \
    -lpthread -ldl -lm"
# shellcheck disable=SC2086 # $libs is a list of words
(cd "$build" && ${CC:-cc} -std=c17 -O2 -D_GNU_SOURCE -I"$root/src" -isystem "$wt/include" \
    "$here/sandbox_bench.c" $libs -o "$tmp/sandbox_bench")
"$tmp/sandbox_bench" -n "$n" ${3:+"$3"}
