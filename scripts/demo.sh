#!/usr/bin/env bash
# The README's main command: a local Kubernetes control plane, a wasmlet
# node joined to it with only a bootstrap token, and sample pods (a Job, a
# Deployment, a pod reading a mounted ConfigMap and Secret, a wasi:http
# component served behind a Service), shown with kubectl and a request
# through the Service from inside a pod's network namespace. The cluster and node keep running afterwards;
# `scripts/demo.sh down` stops them.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
node=${WASMLET_NODE_NAME:-wasm-node-1}
data=${WASMLET_DEMO_DIR:-$root/.demo}

if [ "${1:-}" = down ]; then
  [ -f "$data/wasmlet.pid" ] && kill "$(cat "$data/wasmlet.pid")" 2>/dev/null || true
  cluster/cluster.sh down
  exit 0
fi

scripts/setup.sh
cmake -S . -B build -G Ninja >/dev/null
ninja -C build -j2 >/dev/null
cluster/cluster.sh up
eval "$(cluster/cluster.sh env)"

mkdir -p "$data"
if [ -f "$data/wasmlet.pid" ] && kill -0 "$(cat "$data/wasmlet.pid")" 2>/dev/null; then
  echo "wasmlet node already running (pid $(cat "$data/wasmlet.pid"))"
else
  echo "starting wasmlet node $node (log: $data/wasmlet.log)"
  build/wasmlet node --bootstrap-kubeconfig "$WASMLET_BOOTSTRAP_KUBECONFIG" \
    --node-name "$node" --data-dir "$data/node" --port 10250 \
    --client-ca-file "$WASMLET_CLUSTER_CA" >"$data/wasmlet.log" 2>&1 &
  echo $! >"$data/wasmlet.pid"
fi
# The Node object appears once the bootstrap certificate is signed.
for _ in $(seq 60); do kubectl get "node/$node" >/dev/null 2>&1 && break; sleep 1; done
kubectl wait --for=condition=Ready "node/$node" --timeout=60s
cluster/cluster.sh approve-serving "$node" >/dev/null 2>&1 || true

for m in hello ticker files; do
  build/wasmlet push "build/examples/$m.wasm" "$WASMLET_REGISTRY/$m:v1" >/dev/null
done
build/wasmlet push build/examples/http-hello.component.wasm "$WASMLET_REGISTRY/http-hello:v1" \
  >/dev/null
for f in examples/cluster/*.yaml; do
  sed "s|REGISTRY|$WASMLET_REGISTRY|g" "$f" | kubectl apply -f -
done
kubectl wait --for=condition=complete job/hello-job --timeout=120s
kubectl rollout status deployment/ticker --timeout=120s
kubectl wait --for=jsonpath='{.status.phase}'=Succeeded pod/config-reader --timeout=60s
kubectl rollout status deployment/hello-http --timeout=120s

echo
kubectl get nodes,pods -o wide
echo
echo "--- kubectl logs job/hello-job"
kubectl logs job/hello-job
echo "--- kubectl logs deployment/ticker --tail=3"
kubectl logs deployment/ticker --tail=3
echo "--- kubectl logs config-reader -c show-config"
kubectl logs config-reader -c show-config
echo "--- kubectl logs config-reader -c show-secret"
kubectl logs config-reader -c show-secret
# A request through the Service's ClusterIP, made from inside the network
# namespace of one of the hello-http pods (a Service IP is reached only from
# a pod's namespace, never from the host's own).
svc=$(kubectl get service hello-http -o jsonpath='{.spec.clusterIP}')
uid=$(kubectl get pods -l app=hello-http -o jsonpath='{.items[0].metadata.uid}')
echo "--- curl http://$svc/whoami, from inside pod $uid's network namespace (twice)"
answered=0
for _ in $(seq 20); do
  if nsenter --net="$data/node/net/netns/$uid" curl -sf --max-time 2 "http://$svc/whoami"; then
    nsenter --net="$data/node/net/netns/$uid" curl -sf --max-time 2 "http://$svc/whoami" || true
    answered=1
    break
  fi
  sleep 1 # kube-proxy programs the Service's rules
done
[ "$answered" = 1 ] || echo "no answer through $svc within 20 s (is kube-proxy running? cluster/cluster.sh status)"
echo "--- kubectl logs deployment/hello-http --tail=2"
kubectl logs deployment/hello-http --tail=2
echo
echo "The cluster and node keep running: eval \"\$(cluster/cluster.sh env)\" to use kubectl;"
echo "scripts/demo.sh down stops them."
