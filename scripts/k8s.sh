#!/usr/bin/env bash
# Builds the control plane that cluster/cluster.sh runs (etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, kubectl, and the one kube-proxy of
# the machine, in nftables mode, for Services) from their Go modules, as
# pinned in cluster/build/go.mod, and caches the binaries outside the clone,
# keyed by go.mod and go.sum. Prints the bin directory on stdout.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${WASMLET_CACHE:-$HOME/.cache/wasmlet}
mod=$root/cluster/build
export GOTOOLCHAIN=local GOFLAGS=-mod=mod
key=$(cat "$mod/go.mod" "$mod/go.sum" "$0" | sha256sum | cut -c1-16)
kver=$(awk '$1=="k8s.io/kubernetes" && $2 ~ /^v/ {print $2; exit}' "$mod/go.mod")
bin=$cache/k8s/$kver-$key/bin
tools=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kube-proxy)
have=1
for t in "${tools[@]}"; do [ -x "$bin/$t" ] || have=0; done
if [ $have = 1 ]; then echo "$bin"; exit 0; fi

echo "building Kubernetes $kver control plane (first time only; cached in $bin)" >&2
start=$(date +%s)
tmp=$(mktemp -d "$cache/k8s.XXXXXX" 2>/dev/null || { mkdir -p "$cache"; mktemp -d "$cache/k8s.XXXXXX"; })
minor=$(echo "$kver" | cut -d. -f2)
vpkg=k8s.io/component-base/version
cpkg=k8s.io/client-go/pkg/version
date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
ld="-s -w"
for p in $vpkg $cpkg; do
  ld="$ld -X $p.gitVersion=$kver -X $p.gitMajor=1 -X $p.gitMinor=$minor"
  ld="$ld -X $p.gitTreeState=clean -X $p.buildDate=$date"
done
cd "$mod"
for t in kube-apiserver kube-controller-manager kube-scheduler kubectl kube-proxy; do
  echo "  go build $t" >&2
  CGO_ENABLED=0 go build -trimpath -ldflags "$ld" -o "$tmp/$t" "k8s.io/kubernetes/cmd/$t" >&2
done
echo "  go build etcd" >&2
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$tmp/etcd" go.etcd.io/etcd/server/v3 >&2
mkdir -p "$(dirname "$bin")"
rm -rf "$bin"
mv "$tmp" "$bin"
echo "control plane built in $(( $(date +%s) - start )) s" >&2
echo "$bin"
