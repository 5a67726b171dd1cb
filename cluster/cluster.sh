#!/usr/bin/env bash
# cluster.sh -- a local Kubernetes control plane for developing and testing wasmlet.
#
# wasmlet is a kubelet, so it needs what a kubelet meets in production: an API
# server that authenticates nodes by client certificate or bootstrap token,
# authorizes them with the Node authorizer and NodeRestriction, signs and
# auto-approves node client CSRs, and reaches back to the node's HTTPS port with
# its own client certificate, verifying the node's serving certificate against
# the cluster CA. This script runs exactly that: etcd, kube-apiserver,
# kube-controller-manager (which gives each Node a podCIDR) and
# kube-scheduler, one kube-proxy for the whole machine (nftables mode, so
# ClusterIP Services route to pod IPs), plus two OCI registries (one open,
# one with basic auth for pull-secret tests). No DNS and no CNI: each wasmlet
# node brings its own network config (ptp, addresses from its podCIDR).
# Binaries come from scripts/k8s.sh (built once from pinned Go modules, then
# cached).
#
# Addresses: pods and Services take theirs from 198.18.0.0/15, the block
# reserved for benchmarking (RFC 2544), so they can never collide with a real
# network: Services 198.18.0.0/20; pods 198.18.0.0/15 in /19 per node (8,190
# addresses, for the 5,000-pod density goal), the controller-manager leaving
# out the /19 that holds the Service range (15 nodes at once);
# 198.18.16.0/20 (in that /19) is left to tests (net unit tests, client
# namespaces). `up` makes the whole /15 unreachable from the host (a route of
# type unreachable: the per-pod routes ptp adds are more specific), so no
# pod or Service address is ever sent off the machine, and drops forwarded
# traffic between the /15 and any other address.
#
# kube-proxy: its nftables table names are fixed, so one runs per machine.
# The first cluster up takes a machine-wide lock
# (/run/wasmlet/kube-proxy.lock, held by kube-proxy itself); another cluster
# brought up meanwhile runs without one and says so (its Services are not
# routed). kube-proxy listens on loopback only (healthz, metrics).
#
# Everything listens on 127.0.0.1 and lives in one data directory
# ($WASMLET_CLUSTER_DIR, default <repo>/.cluster): PKI, etcd data, registry
# storage, one log per component, one pid file per process. The directory
# remembers its ports (cluster.env), so later commands find the cluster without
# the environment that started it; environment variables override them only at
# `up`. Stopping is by recorded pid, and a pid is trusted only while its
# /proc/<pid>/cmdline still names this data directory, so a recycled pid is
# never killed. etcd speaks plain HTTP: it is bound to loopback and only the
# API server talks to it; TLS there would cost CPU on a 2-core box and test
# nothing wasmlet does.
#
# Trade-off: processes are plain background jobs in their own session, not
# systemd units. That keeps the script portable to containers and CI, at the
# price of no automatic restart; `status` says when something died, and a
# second `up` starts only what is missing.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
dir=$(realpath -m "${WASMLET_CLUSTER_DIR:-$root/.cluster}")
pki=$dir/pki
registry_bin=${WASMLET_DOCKER_REGISTRY:-/usr/bin/docker-registry}
components=(etcd kube-apiserver kube-controller-manager kube-scheduler registry registry-auth
    kube-proxy)
# The address plan (see the top of this file).
pod_cidr=198.18.0.0/15
node_cidr_mask=19
service_cidr=198.18.0.0/20
kubernetes_service_ip=198.18.0.1
machine_dir=/run/wasmlet
kube_proxy_lock=$machine_dir/kube-proxy.lock
export NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost

usage() {
    cat <<EOF
usage: cluster.sh COMMAND

  up                   start the control plane and registries (idempotent)
  down                 stop every process 'up' started, and wait for them
  status               report each component (exit 0 all up, 1 degraded, 3 stopped)
  env                  print shell exports: eval "\$(cluster/cluster.sh env)"
  approve-serving [N]  approve pending kubelet-serving CSRs of nodes (or node N only)
  node-kubeconfig N F  mint a client certificate for node N and write kubeconfig F
  clean                down, then delete the data directory

data dir: $dir   (WASMLET_CLUSTER_DIR)
ports (env, at up): WASMLET_ETCD_PORT=23790 WASMLET_ETCD_PEER_PORT=23800
  WASMLET_APISERVER_PORT=6443 WASMLET_CONTROLLER_MANAGER_PORT=10357
  WASMLET_SCHEDULER_PORT=10359 WASMLET_REGISTRY_PORT=5000 WASMLET_AUTH_REGISTRY_PORT=5001
  WASMLET_KUBE_PROXY_HEALTHZ_PORT=10256 WASMLET_KUBE_PROXY_METRICS_PORT=10249
other: WASMLET_NODE_MONITOR_GRACE_PERIOD (e.g. 20s), WASMLET_VERIFY_KUBELET_TLS=1|0,
  WASMLET_UP_TIMEOUT=180 (seconds)
EOF
}

die() {
    echo "cluster.sh: $*" >&2
    exit 1
}
note() { echo "cluster.sh: $*" >&2; }

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# ---------------------------------------------------------------- configuration

# Defaults, then what the data dir recorded at its last `up`, then the
# environment: always for a data dir that has never been up, otherwise only
# when `up` passes "override" (a running cluster keeps its ports).
load_config() {
    etcd_port=23790
    etcd_peer_port=23800
    apiserver_port=6443
    kcm_port=10357
    scheduler_port=10359
    registry_port=5000
    auth_registry_port=5001
    kube_proxy_healthz_port=10256
    kube_proxy_metrics_port=10249
    node_monitor_grace_period=
    verify_kubelet_tls=1
    k8s_bin=
    if [ -f "$dir/cluster.env" ]; then
        # shellcheck source=/dev/null
        . "$dir/cluster.env"
    fi
    if [ "${1:-}" = override ] || [ ! -f "$dir/cluster.env" ]; then
        etcd_port=${WASMLET_ETCD_PORT:-$etcd_port}
        etcd_peer_port=${WASMLET_ETCD_PEER_PORT:-$etcd_peer_port}
        apiserver_port=${WASMLET_APISERVER_PORT:-$apiserver_port}
        kcm_port=${WASMLET_CONTROLLER_MANAGER_PORT:-$kcm_port}
        scheduler_port=${WASMLET_SCHEDULER_PORT:-$scheduler_port}
        registry_port=${WASMLET_REGISTRY_PORT:-$registry_port}
        auth_registry_port=${WASMLET_AUTH_REGISTRY_PORT:-$auth_registry_port}
        kube_proxy_healthz_port=${WASMLET_KUBE_PROXY_HEALTHZ_PORT:-$kube_proxy_healthz_port}
        kube_proxy_metrics_port=${WASMLET_KUBE_PROXY_METRICS_PORT:-$kube_proxy_metrics_port}
        node_monitor_grace_period=${WASMLET_NODE_MONITOR_GRACE_PERIOD-$node_monitor_grace_period}
        verify_kubelet_tls=${WASMLET_VERIFY_KUBELET_TLS:-$verify_kubelet_tls}
    fi
    apiserver_url=https://127.0.0.1:$apiserver_port
}

save_config() {
    cat >"$dir/cluster.env.tmp" <<EOF
# written by cluster.sh up; read by every other command
etcd_port=$etcd_port
etcd_peer_port=$etcd_peer_port
apiserver_port=$apiserver_port
kcm_port=$kcm_port
scheduler_port=$scheduler_port
registry_port=$registry_port
auth_registry_port=$auth_registry_port
kube_proxy_healthz_port=$kube_proxy_healthz_port
kube_proxy_metrics_port=$kube_proxy_metrics_port
node_monitor_grace_period=$node_monitor_grace_period
verify_kubelet_tls=$verify_kubelet_tls
k8s_bin=$k8s_bin
EOF
    mv "$dir/cluster.env.tmp" "$dir/cluster.env"
}

find_k8s_bin() {
    if [ -z "$k8s_bin" ] || [ ! -x "$k8s_bin/kube-apiserver" ]; then
        k8s_bin=$("$root/scripts/k8s.sh")
    fi
}

kubectl_admin() { "$k8s_bin/kubectl" --kubeconfig "$dir/admin.kubeconfig" "$@"; }

# ---------------------------------------------------------------- processes

pid_of() { cat "$dir/run/$1.pid" 2>/dev/null; }

# A component is alive while its recorded pid runs a command line naming this
# data directory (a zombie's cmdline is empty, a recycled pid names another).
alive() {
    local pid cmd
    pid=$(pid_of "$1") || return 1
    [ -n "$pid" ] || return 1
    cmd=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") || return 1
    [[ $cmd == *"$dir/"* ]]
}

# exited PID: true once PID is gone or a zombie.
exited() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
    stat=${stat##*) }
    [ "${stat%% *}" = Z ]
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

port_of() {
    case $1 in
    etcd) echo "$etcd_port" ;;
    kube-apiserver) echo "$apiserver_port" ;;
    kube-controller-manager) echo "$kcm_port" ;;
    kube-scheduler) echo "$scheduler_port" ;;
    registry) echo "$registry_port" ;;
    registry-auth) echo "$auth_registry_port" ;;
    kube-proxy) echo "$kube_proxy_healthz_port" ;;
    esac
}

# Refuse to start anything when a port a stopped component needs is taken,
# rather than failing halfway through.
check_ports() {
    local c port
    for c in "${components[@]}"; do
        alive "$c" && continue
        [ "$c" = kube-proxy ] && ! kube_proxy_slot_free && continue
        port=$(port_of "$c")
        if port_busy "$port"; then
            die "$c: port 127.0.0.1:$port is already in use (set its WASMLET_*_PORT)"
        fi
    done
    if ! alive etcd && port_busy "$etcd_peer_port"; then
        die "etcd: peer port 127.0.0.1:$etcd_peer_port is already in use (WASMLET_ETCD_PEER_PORT)"
    fi
}

started=()
start() {
    local name=$1 exe=$2
    shift 2
    if alive "$name"; then
        return 0
    fi
    echo "=== $(date -u +%FT%TZ) cluster.sh starting $name" >>"$dir/logs/$name.log"
    # Own session: a Ctrl-C aimed at whoever ran `up` does not reach the
    # cluster. fd 9 is the lock; children must not hold it.
    setsid "$exe" "$@" </dev/null >>"$dir/logs/$name.log" 2>&1 9>&- &
    echo $! >"$dir/run/$name.pid"
    started+=("$name")
}

stop() {
    local name=$1 pid i
    if ! alive "$name"; then
        rm -f "$dir/run/$name.pid"
        return 0
    fi
    pid=$(pid_of "$name")
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 150; i++)); do
        alive "$name" || break
        sleep 0.1
    done
    if alive "$name"; then
        note "$name (pid $pid) ignored SIGTERM for 15s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do
            alive "$name" || break
            sleep 0.1
        done
        alive "$name" && die "$name (pid $pid) did not exit"
    fi
    # An exiting process reads an empty cmdline once its memory is gone,
    # while its threads may still be ending (longer on a busy machine):
    # wait until it is gone or a zombie, so that "stopped" means stopped.
    for ((i = 0; i < 100; i++)); do
        exited "$pid" && break
        sleep 0.1
    done
    rm -f "$dir/run/$name.pid"
    echo "stopped $name (pid $pid)"
}

# wait_until DESCRIPTION COMMAND...: poll until COMMAND succeeds; fail early,
# with the log's tail, when a component started by this `up` has died.
wait_until() {
    local what=$1 name
    shift
    until "$@" >/dev/null 2>&1; do
        for name in "${started[@]}"; do
            if ! alive "$name"; then
                tail -n 30 "$dir/logs/$name.log" >&2 || true
                die "$name exited during start-up (log: $dir/logs/$name.log)"
            fi
        done
        if (($(date +%s) > deadline)); then
            die "timed out after ${WASMLET_UP_TIMEOUT:-180}s waiting for $what (logs: $dir/logs)"
        fi
        sleep 0.2
    done
    echo "  $what ($(elapsed "$t0")s)"
}

# ---------------------------------------------------------------- health probes

curl_q() { curl -fsS --noproxy '*' --max-time 3 "$@"; }
etcd_healthy() { curl_q "http://127.0.0.1:$etcd_port/health" | grep -q '"health":"true"'; }
apiserver_ready() {
    curl_q --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" \
        "$apiserver_url/readyz" | grep -qx ok
}
# kube-controller-manager and kube-scheduler serve a self-signed certificate
# made in memory, so the probe cannot verify it; /healthz needs no identity.
kcm_healthy() { curl_q -k "https://127.0.0.1:$kcm_port/healthz" | grep -qx ok; }
scheduler_healthy() { curl_q -k "https://127.0.0.1:$scheduler_port/healthz" | grep -qx ok; }
registry_healthy() { curl_q -o /dev/null "http://127.0.0.1:$registry_port/v2/"; }
auth_registry_healthy() {
    curl_q -o /dev/null -u "wasmlet:$(cat "$dir/registry-auth/password")" \
        "http://127.0.0.1:$auth_registry_port/v2/"
}
default_sa_exists() { kubectl_admin get serviceaccount default -n default -o name; }

# ---------------------------------------------------------------- PKI

# openssl, quiet unless it fails (then its messages go to stderr).
openssl_q() {
    local out
    out=$(openssl "$@" 2>&1) || {
        echo "$out" >&2
        return 1
    }
}

pki_key() {
    [ -f "$1" ] && return 0
    openssl_q genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.tmp"
    mv "$1.tmp" "$1"
}

# pki_cert NAME SUBJECT EXTENSIONS: an ECDSA P-256 key and a one-year
# certificate signed by the cluster CA, made once and kept across restarts.
pki_cert() {
    local name=$1 subj=$2 ext=$3 tmp
    [ -f "$pki/$name.crt" ] && return 0
    pki_key "$pki/$name.key"
    tmp=$(mktemp -d "$pki/.tmp.XXXXXX")
    printf '[req]\ndistinguished_name = dn\n[dn]\n' >"$tmp/req.cnf"
    printf '[v3]\n%s\nsubjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid\n' \
        "$ext" >"$tmp/ext.cnf"
    openssl_q req -new -config "$tmp/req.cnf" -key "$pki/$name.key" -subj "$subj" \
        -out "$tmp/req.csr"
    openssl_q x509 -req -in "$tmp/req.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" \
        -set_serial "0x$(openssl rand -hex 16)" -days 365 -sha256 \
        -extfile "$tmp/ext.cnf" -extensions v3 -out "$tmp/cert.crt"
    mv "$tmp/cert.crt" "$pki/$name.crt"
    rm -rf "$tmp"
}

client_ext='basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth'

apiserver_sans="DNS:localhost, DNS:kubernetes, DNS:kubernetes.default"
apiserver_sans+=", DNS:kubernetes.default.svc, DNS:kubernetes.default.svc.cluster.local"
apiserver_sans+=", IP:127.0.0.1, IP:$kubernetes_service_ip" # the `kubernetes` Service

make_pki() {
    mkdir -p "$pki"
    if [ ! -f "$pki/ca.crt" ]; then
        # A new CA invalidates everything signed by the old one.
        rm -f "$pki"/*.crt "$pki"/*.key "$pki"/*.pub
        pki_key "$pki/ca.key"
        printf '%s\n' '[req]' 'distinguished_name = dn' 'x509_extensions = v3' 'prompt = no' \
            '[dn]' 'CN = wasmlet-cluster-ca' '[v3]' \
            'basicConstraints = critical, CA:TRUE' \
            'keyUsage = critical, keyCertSign, cRLSign, digitalSignature' \
            'subjectKeyIdentifier = hash' >"$pki/ca.cnf"
        openssl_q req -x509 -new -config "$pki/ca.cnf" -key "$pki/ca.key" -days 3650 \
            -sha256 -out "$pki/ca.crt.tmp"
        chmod 644 "$pki/ca.crt.tmp"
        mv "$pki/ca.crt.tmp" "$pki/ca.crt"
        rm -f "$pki/ca.cnf"
    fi
    pki_cert apiserver /CN=kube-apiserver 'basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = '"$apiserver_sans"
    # The API server's identity towards kubelets: not system:masters, only
    # what RBAC grants it (system:kubelet-api-admin, see bootstrap.yaml).
    pki_cert apiserver-kubelet-client /CN=kube-apiserver-kubelet-client "$client_ext"
    pki_cert admin /O=system:masters/CN=kubernetes-admin "$client_ext"
    pki_cert controller-manager /CN=system:kube-controller-manager "$client_ext"
    pki_cert scheduler /CN=system:kube-scheduler "$client_ext"
    # kube-proxy's identity: the default system:node-proxier binding names it.
    pki_cert kube-proxy /CN=system:kube-proxy "$client_ext"
    pki_key "$pki/sa.key"
    [ -f "$pki/sa.pub" ] || openssl_q pkey -in "$pki/sa.key" -pubout -out "$pki/sa.pub"
    # Bootstrap token: [a-z0-9]{6}.[a-z0-9]{16}, kept with the cluster.
    [ -f "$pki/bootstrap-token" ] ||
        echo "$(openssl rand -hex 3).$(openssl rand -hex 8)" >"$pki/bootstrap-token"
}

b64() { base64 -w0 <"$1"; }

# write_kubeconfig FILE USER (cert CRT KEY | token TOKEN)
write_kubeconfig() {
    local out=$1 user=$2 kind=$3 cred
    if [ "$kind" = cert ]; then
        cred="    client-certificate-data: $(b64 "$4")
    client-key-data: $(b64 "$5")"
    else
        cred="    token: \"$4\""
    fi
    cat >"$out.tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: wasmlet
  cluster:
    server: $apiserver_url
    certificate-authority-data: $(b64 "$pki/ca.crt")
users:
- name: $user
  user:
$cred
contexts:
- name: wasmlet
  context:
    cluster: wasmlet
    user: $user
current-context: wasmlet
EOF
    chmod 600 "$out.tmp"
    mv "$out.tmp" "$out"
}

make_kubeconfigs() {
    write_kubeconfig "$dir/admin.kubeconfig" kubernetes-admin cert "$pki/admin.crt" "$pki/admin.key"
    write_kubeconfig "$dir/controller-manager.kubeconfig" system:kube-controller-manager cert \
        "$pki/controller-manager.crt" "$pki/controller-manager.key"
    write_kubeconfig "$dir/scheduler.kubeconfig" system:kube-scheduler cert \
        "$pki/scheduler.crt" "$pki/scheduler.key"
    write_kubeconfig "$dir/kube-proxy.kubeconfig" system:kube-proxy cert \
        "$pki/kube-proxy.crt" "$pki/kube-proxy.key"
    write_kubeconfig "$dir/bootstrap.kubeconfig" "system:bootstrap:${token%%.*}" token "$token"
}

# ---------------------------------------------------------------- registries

# docker-registry accepts only bcrypt in htpasswd files. Python's crypt module
# does bcrypt through libxcrypt; python3-bcrypt and htpasswd are fallbacks.
# Cost 5, not the usual 10-12: the registry checks the hash on every request,
# and this password guards test images on loopback, not people's secrets.
bcrypt_hash() {
    # shellcheck disable=SC2016 # a Python program; "$2" is bcrypt's prefix
    python3 -W ignore -c '
import sys
pw = sys.argv[1]
try:
    import crypt
    h = crypt.crypt(pw, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1 << 5))
    if not h or not h.startswith("$2"):
        raise ImportError
except ImportError:
    import bcrypt
    h = bcrypt.hashpw(pw.encode(), bcrypt.gensalt(5)).decode()
print(h)' "$1" 2>/dev/null || htpasswd -nbB -C 5 x "$1" | cut -d: -f2
}

make_registry_config() {
    local name=$1 port=$2 auth=$3 secret
    mkdir -p "$dir/$name/data"
    [ -f "$dir/$name/http-secret" ] || openssl rand -hex 16 >"$dir/$name/http-secret"
    secret=$(cat "$dir/$name/http-secret")
    cat >"$dir/$name/config.yml" <<EOF
version: 0.1
log:
  level: info
  formatter: text
storage:
  filesystem:
    rootdirectory: $dir/$name/data
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
http:
  addr: 127.0.0.1:$port
  secret: $secret
  headers:
    X-Content-Type-Options: [nosniff]
$auth
EOF
}

make_registries() {
    make_registry_config registry "$registry_port" ""
    mkdir -p "$dir/registry-auth"
    if [ ! -f "$dir/registry-auth/htpasswd" ]; then
        openssl rand -hex 12 >"$dir/registry-auth/password"
        echo "wasmlet:$(bcrypt_hash "$(cat "$dir/registry-auth/password")")" \
            >"$dir/registry-auth/htpasswd"
    fi
    make_registry_config registry-auth "$auth_registry_port" "auth:
  htpasswd:
    realm: wasmlet-registry
    path: $dir/registry-auth/htpasswd"
}

# ---------------------------------------------------------------- bootstrap objects

write_bootstrap_manifest() {
    local id=${token%%.*} secret=${token#*.}
    cat >"$dir/bootstrap.yaml" <<EOF
# Applied by cluster.sh up after the API server is ready.
apiVersion: v1
kind: Secret
metadata:
  name: bootstrap-token-$id
  namespace: kube-system
type: bootstrap.kubernetes.io/token
stringData:
  description: wasmlet node bootstrap token (cluster.sh)
  token-id: "$id"
  token-secret: "$secret"
  usage-bootstrap-authentication: "true"
  usage-bootstrap-signing: "true"
  auth-extra-groups: system:bootstrappers:wasmlet
---
# Nodes holding the bootstrap token may create CSRs ...
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: wasmlet:node-bootstrapper
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: system:node-bootstrapper
subjects:
- apiGroup: rbac.authorization.k8s.io
  kind: Group
  name: system:bootstrappers
---
# ... whose node client certificates csrapproving approves,
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: wasmlet:node-autoapprove-bootstrap
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: system:certificates.k8s.io:certificatesigningrequests:nodeclient
subjects:
- apiGroup: rbac.authorization.k8s.io
  kind: Group
  name: system:bootstrappers
---
# ... as it approves a node renewing its own client certificate.
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: wasmlet:node-autoapprove-certificate-rotation
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: system:certificates.k8s.io:certificatesigningrequests:selfnodeclient
subjects:
- apiGroup: rbac.authorization.k8s.io
  kind: Group
  name: system:nodes
---
# The API server's client identity towards kubelets (logs, exec, proxy).
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: wasmlet:apiserver-kubelet-client
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: system:kubelet-api-admin
subjects:
- apiGroup: rbac.authorization.k8s.io
  kind: User
  name: kube-apiserver-kubelet-client
---
# Discovery document the bootstrapsigner controller signs with the token.
apiVersion: v1
kind: ConfigMap
metadata:
  name: cluster-info
  namespace: kube-public
data:
  kubeconfig: |
    apiVersion: v1
    kind: Config
    clusters:
    - name: ""
      cluster:
        server: $apiserver_url
        certificate-authority-data: $(b64 "$pki/ca.crt")
    contexts: []
    users: []
---
# The runtime of wasm nodes: a pod that says runtimeClassName: wasmlet gets
# the node selector and both tolerations of the taints wasmlet nodes carry
# (the RuntimeClass admission plugin adds them), and wasmlet serves its
# handler.
apiVersion: node.k8s.io/v1
kind: RuntimeClass
metadata:
  name: wasmlet
handler: wasmlet
scheduling:
  nodeSelector:
    kubernetes.io/arch: wasm32-wasi
  tolerations:
  - {key: kubernetes.io/arch, operator: Equal, value: wasm32-wasi, effect: NoSchedule}
  - {key: kubernetes.io/arch, operator: Equal, value: wasm32-wasi, effect: NoExecute}
EOF
}

# ---------------------------------------------------------------- kube-proxy and the host

# Whether the machine's kube-proxy slot is free (no cluster's kube-proxy
# holds the lock).
kube_proxy_slot_free() {
    mkdir -p "$machine_dir"
    flock -n "$kube_proxy_lock" true
}

# What keeps pod and Service addresses on this machine: an unreachable route
# for the whole /15 (more specific pod routes win; an address no pod holds
# gets "unreachable" instead of the default route), and a forward filter
# that drops traffic between the /15 and any other address. Both are
# machine-wide and idempotent; `down` leaves them, as another cluster on the
# machine may rely on them, and they reach nothing but the benchmarking
# block.
host_network_guard() {
    ip route replace unreachable "$pod_cidr" metric 4000 2>/dev/null ||
        note "could not add the unreachable route for $pod_cidr (not root?)"
    nft -f - 2>/dev/null <<EOF || note "could not install the nftables guard for $pod_cidr"
table ip wasmlet-guard
delete table ip wasmlet-guard
table ip wasmlet-guard {
    chain forward {
        type filter hook forward priority filter; policy accept;
        ip saddr $pod_cidr ip daddr != $pod_cidr drop
        ip daddr $pod_cidr ip saddr != $pod_cidr drop
    }
}
EOF
}

kube_proxy_healthy() { curl_q "http://127.0.0.1:$kube_proxy_healthz_port/livez" >/dev/null; }

# One kube-proxy for the machine, holding the machine-wide lock for as long
# as it runs (fd 8, inherited across its exec). When another cluster's holds
# it, this cluster runs without one and its status says so.
start_kube_proxy() {
    rm -f "$dir/run/kube-proxy.skipped"
    alive kube-proxy && return 0
    if ! kube_proxy_slot_free; then
        note "kube-proxy: another cluster's kube-proxy serves this machine ($kube_proxy_lock);" \
            "the Services of this cluster are not routed"
        echo "$kube_proxy_lock held by another cluster" >"$dir/run/kube-proxy.skipped"
        return 0
    fi
    host_network_guard
    # nftables mode; conntrack sysctls left as they are; NodePorts are not
    # served on a loopback node address (README: known limits). It finds
    # no Node of its name and, after 30 s, assumes loopback as the node IP.
    # shellcheck disable=SC2016 # a script for the child bash
    start kube-proxy bash -c 'exec 8>>"$1" && flock -n 8 ||
        { echo "kube-proxy: $1 is held by another cluster" >&2; exit 75; }
        shift; exec "$@"' kube-proxy-lock "$kube_proxy_lock" \
        "$k8s_bin/kube-proxy" --kubeconfig="$dir/kube-proxy.kubeconfig" \
        --proxy-mode=nftables --cluster-cidr="$pod_cidr" \
        --hostname-override="wasmlet-kube-proxy" --bind-address=127.0.0.1 \
        --healthz-bind-address="127.0.0.1:$kube_proxy_healthz_port" \
        --metrics-bind-address="127.0.0.1:$kube_proxy_metrics_port" \
        --conntrack-max-per-core=0 --conntrack-tcp-timeout-established=0 \
        --conntrack-tcp-timeout-close-wait=0 --profiling=false
}

# After kube-proxy stopped: its tables go, unless another cluster's
# kube-proxy took the slot meanwhile.
kube_proxy_cleanup() {
    [ -d "$machine_dir" ] || return 0
    # shellcheck disable=SC2016
    flock -n "$kube_proxy_lock" sh -c '
        for f in ip ip6; do nft delete table $f kube-proxy 2>/dev/null || true; done' ||
        true
}

# ---------------------------------------------------------------- commands

take_lock() {
    mkdir -p "$dir"
    exec 9>"$dir/.lock"
    flock -w 300 9 || die "another cluster.sh holds $dir/.lock"
}

# EXIT trap of a failing `up`: stop what it started, keep the data and logs.
up_failed() {
    local c
    for c in "${started[@]}"; do stop "$c" >/dev/null || true; done
}

cmd_up() {
    local c missing=() running=()
    t0=$(now)
    take_lock
    for c in "${components[@]}"; do
        if alive "$c"; then running+=("$c"); else missing+=("$c"); fi
    done
    if [ ${#missing[@]} = 0 ]; then
        load_config
        echo "cluster already running in $dir ($apiserver_url); nothing to do"
        return 0
    fi
    if [ ${#running[@]} = 0 ]; then
        load_config override
        echo "starting wasmlet cluster in $dir"
    else
        # Part of it runs: keep its ports, start only what is missing.
        load_config
        echo "cluster in $dir partly running; starting ${missing[*]}"
    fi
    umask 077
    find_k8s_bin
    mkdir -p "$dir/run" "$dir/logs" "$dir/etcd"
    touch "$dir/.wasmlet-cluster"
    save_config
    make_pki
    token=$(cat "$pki/bootstrap-token")
    make_kubeconfigs
    make_registries
    write_bootstrap_manifest
    check_ports
    echo "  pki and config ($(elapsed "$t0")s)"
    deadline=$(($(date +%s) + ${WASMLET_UP_TIMEOUT:-180}))
    # On any failure below, stop what this invocation started.
    trap up_failed EXIT

    start etcd "$k8s_bin/etcd" \
        --name=wasmlet --data-dir="$dir/etcd" \
        --listen-client-urls="http://127.0.0.1:$etcd_port" \
        --advertise-client-urls="http://127.0.0.1:$etcd_port" \
        --listen-peer-urls="http://127.0.0.1:$etcd_peer_port" \
        --initial-advertise-peer-urls="http://127.0.0.1:$etcd_peer_port" \
        --initial-cluster="wasmlet=http://127.0.0.1:$etcd_peer_port" \
        --initial-cluster-state=new --log-level=warn
    start registry "$registry_bin" serve "$dir/registry/config.yml"
    start registry-auth "$registry_bin" serve "$dir/registry-auth/config.yml"
    wait_until "etcd healthy" etcd_healthy

    local kubelet_ca=()
    if [ "$verify_kubelet_tls" = 1 ]; then
        kubelet_ca=(--kubelet-certificate-authority="$pki/ca.crt")
    fi
    # The API server refuses to publish a loopback address as the endpoints
    # of the `kubernetes` Service; nothing here routes service IPs anyway, so
    # the endpoint reconciler is off (the Service itself still exists).
    # Light for a 2-core box: default (dynamically sized) watch cache, no
    # profiling endpoints, no leader election anywhere (single instance).
    # --enable-admission-plugins adds NodeRestriction to the default set
    # (NamespaceLifecycle, LimitRanger, ServiceAccount, ...), which stays on.
    # PodResizeValidator is turned off: it refuses every in-place resize
    # (`kubectl patch pod --subresource resize`) of a pod on a node whose
    # kubernetes.io/os label is not "linux", and wasmlet nodes say "wasi";
    # without it a resize reaches the node, which decides it as the kubelet
    # does (a resize past the node's allocatable becomes PodResizePending
    # Infeasible there instead of a Forbidden answer here).
    start kube-apiserver "$k8s_bin/kube-apiserver" \
        --advertise-address=127.0.0.1 --bind-address=127.0.0.1 \
        --endpoint-reconciler-type=none \
        --secure-port="$apiserver_port" \
        --etcd-servers="http://127.0.0.1:$etcd_port" \
        --client-ca-file="$pki/ca.crt" \
        --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
        --authorization-mode=Node,RBAC \
        --enable-admission-plugins=NodeRestriction \
        --disable-admission-plugins=PodResizeValidator \
        --enable-bootstrap-token-auth=true \
        --kubelet-client-certificate="$pki/apiserver-kubelet-client.crt" \
        --kubelet-client-key="$pki/apiserver-kubelet-client.key" \
        "${kubelet_ca[@]}" \
        --kubelet-preferred-address-types=InternalIP,Hostname,InternalDNS,ExternalIP,ExternalDNS \
        --service-account-issuer=https://kubernetes.default.svc.cluster.local \
        --service-account-key-file="$pki/sa.pub" \
        --service-account-signing-key-file="$pki/sa.key" \
        --service-cluster-ip-range="$service_cidr" \
        --profiling=false --watch-cache=true
    wait_until "kube-apiserver ready" apiserver_ready
    kubectl_admin apply -f "$dir/bootstrap.yaml" >"$dir/logs/bootstrap-apply.log"

    local grace=()
    if [ -n "$node_monitor_grace_period" ]; then
        grace=(--node-monitor-grace-period="$node_monitor_grace_period")
    fi
    # Both serve /healthz and /metrics over TLS, authenticating clients by
    # the cluster CA and by TokenReview. They skip the lookup of the API
    # server's front-proxy settings: there is no front proxy, and looking for
    # its CA would only fill their logs with errors.
    start kube-controller-manager "$k8s_bin/kube-controller-manager" \
        --kubeconfig="$dir/controller-manager.kubeconfig" \
        --authentication-kubeconfig="$dir/controller-manager.kubeconfig" \
        --authorization-kubeconfig="$dir/controller-manager.kubeconfig" \
        --authentication-skip-lookup=true --client-ca-file="$pki/ca.crt" \
        --bind-address=127.0.0.1 --secure-port="$kcm_port" --leader-elect=false \
        --controllers='*,bootstrapsigner,tokencleaner' \
        --cluster-name=wasmlet \
        --cluster-signing-cert-file="$pki/ca.crt" --cluster-signing-key-file="$pki/ca.key" \
        --root-ca-file="$pki/ca.crt" \
        --service-account-private-key-file="$pki/sa.key" \
        --use-service-account-credentials=true \
        --service-cluster-ip-range="$service_cidr" \
        --allocate-node-cidrs=true --cluster-cidr="$pod_cidr" \
        --node-cidr-mask-size-ipv4="$node_cidr_mask" \
        --profiling=false "${grace[@]}"
    start kube-scheduler "$k8s_bin/kube-scheduler" \
        --kubeconfig="$dir/scheduler.kubeconfig" \
        --authentication-kubeconfig="$dir/scheduler.kubeconfig" \
        --authorization-kubeconfig="$dir/scheduler.kubeconfig" \
        --authentication-skip-lookup=true --client-ca-file="$pki/ca.crt" \
        --bind-address=127.0.0.1 --secure-port="$scheduler_port" --leader-elect=false \
        --profiling=false
    wait_until "registries answer /v2/" registry_healthy
    wait_until "authenticated registry answers /v2/" auth_registry_healthy
    wait_until "kube-scheduler healthy" scheduler_healthy
    wait_until "kube-controller-manager healthy" kcm_healthy
    wait_until "default ServiceAccount exists" default_sa_exists
    start_kube_proxy
    trap - EXIT
    echo "cluster up in $(elapsed "$t0")s: $apiserver_url, registry 127.0.0.1:$registry_port" \
        "(auth 127.0.0.1:$auth_registry_port)"
    echo "  eval \"\$($here/cluster.sh env)\""
}

cmd_down() {
    local c i
    [ -d "$dir" ] || {
        echo "no cluster in $dir"
        return 0
    }
    take_lock
    # Reverse start order: clients before the servers they talk to.
    for ((i = ${#components[@]} - 1; i >= 0; i--)); do
        c=${components[i]}
        if [ "$c" = kube-proxy ] && alive kube-proxy; then
            stop kube-proxy
            kube_proxy_cleanup
            continue
        fi
        stop "$c"
    done
    rm -f "$dir/run/kube-proxy.skipped"
}

cmd_status() {
    local c up=0 down=0 health url pid probe
    load_config
    echo "cluster dir $dir"
    for c in "${components[@]}"; do
        case $c in
        etcd) url=http://127.0.0.1:$etcd_port probe=etcd_healthy ;;
        kube-apiserver) url=$apiserver_url probe=apiserver_ready ;;
        kube-controller-manager) url=https://127.0.0.1:$kcm_port probe=kcm_healthy ;;
        kube-scheduler) url=https://127.0.0.1:$scheduler_port probe=scheduler_healthy ;;
        registry) url=http://127.0.0.1:$registry_port probe=registry_healthy ;;
        registry-auth) url=http://127.0.0.1:$auth_registry_port probe=auth_registry_healthy ;;
        kube-proxy) url=http://127.0.0.1:$kube_proxy_healthz_port probe=kube_proxy_healthy ;;
        esac
        if [ "$c" = kube-proxy ] && [ -f "$dir/run/kube-proxy.skipped" ]; then
            up=$((up + 1))
            printf '%-24s skipped: %s\n' "$c" "$(cat "$dir/run/kube-proxy.skipped")"
            continue
        fi
        if alive "$c"; then
            pid=$(pid_of "$c")
            if $probe >/dev/null 2>&1; then health=healthy; else health=unhealthy; fi
            # kube-proxy answers only after its 30 s wait for a Node of its
            # name (there is none): "starting" counts as up for 90 s.
            if [ "$c" = kube-proxy ] && [ $health = unhealthy ] &&
                (($(date +%s) - $(stat -c %Y "$dir/run/kube-proxy.pid") < 90)); then
                health=starting up=$((up + 1))
            fi
            [ $health = healthy ] && up=$((up + 1))
            printf '%-24s running pid %-7s %-9s %s\n' "$c" "$pid" "$health" "$url"
        else
            down=$((down + 1))
            if [ -f "$dir/run/$c.pid" ]; then
                printf '%-24s DEAD (pid %s gone; see %s)\n' "$c" "$(pid_of "$c")" \
                    "$dir/logs/$c.log"
            else
                printf '%-24s stopped\n' "$c"
            fi
        fi
    done
    [ $up = ${#components[@]} ] && return 0
    [ $down = ${#components[@]} ] && return 3
    return 1
}

cmd_env() {
    local token='' pw=''
    load_config
    find_k8s_bin
    [ -f "$pki/bootstrap-token" ] && token=$(cat "$pki/bootstrap-token")
    [ -f "$dir/registry-auth/password" ] && pw=$(cat "$dir/registry-auth/password")
    e() { printf 'export %s=%q\n' "$1" "$2"; }
    e WASMLET_CLUSTER_DIR "$dir"
    e KUBECONFIG "$dir/admin.kubeconfig"
    e PATH "$k8s_bin:$PATH"
    e WASMLET_K8S_BIN "$k8s_bin"
    e WASMLET_APISERVER "$apiserver_url"
    e WASMLET_CLUSTER_CA "$pki/ca.crt"
    e WASMLET_CLUSTER_CA_KEY "$pki/ca.key"
    e WASMLET_BOOTSTRAP_KUBECONFIG "$dir/bootstrap.kubeconfig"
    e WASMLET_BOOTSTRAP_TOKEN "$token"
    e WASMLET_APISERVER_KUBELET_CLIENT_CERT "$pki/apiserver-kubelet-client.crt"
    e WASMLET_APISERVER_KUBELET_CLIENT_KEY "$pki/apiserver-kubelet-client.key"
    e WASMLET_REGISTRY "127.0.0.1:$registry_port"
    e WASMLET_AUTH_REGISTRY "127.0.0.1:$auth_registry_port"
    e WASMLET_AUTH_REGISTRY_USER wasmlet
    e WASMLET_AUTH_REGISTRY_PASSWORD "$pw"
}

# Kubernetes never auto-approves kubelet serving certificates, because the
# approver cannot check that the node owns the names it asks for. This helper
# stands in for a cluster operator: it approves a pending kubernetes.io/
# kubelet-serving CSR only when it was requested by a node identity
# (system:node:NAME) for that same name (subject CN equal to the username).
cmd_approve_serving() {
    local only=${1:-} name user cn n=0 pending
    pending='{{range .items}}{{if and (eq .spec.signerName "kubernetes.io/kubelet-serving")'
    pending+=' (not .status.conditions)}}{{.metadata.name}} {{.spec.username}}{{"\n"}}'
    pending+='{{end}}{{end}}'
    load_config
    find_k8s_bin
    while read -r name user; do
        [ -n "$name" ] || continue
        [[ $user == system:node:* ]] || continue
        [ -z "$only" ] || [ "$user" = "system:node:$only" ] || continue
        cn=$(kubectl_admin get csr "$name" -o 'jsonpath={.spec.request}' | base64 -d |
            openssl req -noout -subject -nameopt multiline 2>/dev/null |
            sed -n 's/^ *commonName *= *//p') || cn=
        if [ "$cn" != "$user" ]; then
            note "not approving $name: subject CN '$cn' is not requester '$user'"
            continue
        fi
        kubectl_admin certificate approve "$name" >/dev/null
        echo "approved $name ($user)"
        n=$((n + 1))
    done < <(kubectl_admin get csr -o go-template="$pending")
    echo "approved $n kubelet-serving CSR(s)"
}

# A node client certificate straight from the CA, for nodes started without
# TLS bootstrap (tests, demos): CN system:node:NAME, O system:nodes.
cmd_node_kubeconfig() {
    local node=${1:-} out=${2:-}
    if [ -z "$node" ] || [ -z "$out" ]; then
        die "usage: cluster.sh node-kubeconfig NODE FILE"
    fi
    load_config
    [ -f "$pki/ca.key" ] || die "no cluster PKI in $dir (run up first)"
    node_tmp=$(mktemp -d) # global: the EXIT trap outlives this function
    trap 'rm -rf "$node_tmp"' EXIT
    umask 077
    cp "$pki/ca.crt" "$pki/ca.key" "$node_tmp/"
    pki=$node_tmp
    pki_cert node "/O=system:nodes/CN=system:node:$node" "$client_ext"
    write_kubeconfig "$out" "system:node:$node" cert "$node_tmp/node.crt" "$node_tmp/node.key"
    echo "$out"
}

cmd_clean() {
    cmd_down
    [ -d "$dir" ] || return 0
    [ -f "$dir/.wasmlet-cluster" ] || die "$dir is not a cluster.sh data dir; not deleting it"
    rm -rf "$dir"
    echo "removed $dir"
}

case ${1:-} in
up) cmd_up ;;
down) cmd_down ;;
status) cmd_status ;;
env) cmd_env ;;
approve-serving) cmd_approve_serving "${2:-}" ;;
node-kubeconfig) cmd_node_kubeconfig "${2:-}" "${3:-}" ;;
clean) cmd_clean ;;
-h | --help | help) usage ;;
*)
    usage >&2
    exit 2
    ;;
esac
