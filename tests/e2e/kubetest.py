"""Helpers for wasmlet's end-to-end tests: a handle on a cluster.sh cluster,
kubectl through subprocess with JSON output, polling, wasmlet node processes,
and a minimal OCI registry client for pushing wasm images.

Why subprocess + kubectl rather than a Python Kubernetes client: kubectl is
built from the same pinned Kubernetes as the API server (scripts/k8s.sh), so
the tests need nothing from pip, and every call a test makes can be pasted into
a shell to reproduce it. The cost is ~0.1 s per call, which polling loops
absorb by sleeping between attempts anyway.

Every wait is explicit (wait_for with a timeout and a description), so a
failing test says what it was waiting for and what it last saw instead of
hanging.
"""

import base64
import hashlib
import json as jsonlib
import os
import shlex
import signal
import socket
import subprocess
import time
import ssl
import urllib.error
import urllib.request
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CLUSTER_SH = REPO / "cluster" / "cluster.sh"

# Port variables of cluster.sh, in the order free_ports hands them out.
PORT_VARS = (
    "WASMLET_ETCD_PORT",
    "WASMLET_ETCD_PEER_PORT",
    "WASMLET_APISERVER_PORT",
    "WASMLET_CONTROLLER_MANAGER_PORT",
    "WASMLET_SCHEDULER_PORT",
    "WASMLET_REGISTRY_PORT",
    "WASMLET_AUTH_REGISTRY_PORT",
    "WASMLET_KUBE_PROXY_HEALTHZ_PORT",
    "WASMLET_KUBE_PROXY_METRICS_PORT",
)


class KubectlError(Exception):
    def __init__(self, args, returncode, stdout, stderr):
        super().__init__(f"kubectl {shlex.join(args)} exited {returncode}: {stderr.strip()}")
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr

    @property
    def not_found(self):
        return "NotFound" in self.stderr or "not found" in self.stderr


def free_ports(n):
    """n distinct loopback ports that were free a moment ago (all bound at once,
    so they differ). Another process may take one before we use it; cluster.sh
    then fails with a clear "port in use" message rather than misbehaving."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def port_open(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


class StopWaiting(Exception):
    """Raised by a wait_for predicate that knows waiting longer is pointless
    (the process it waits on died); wait_for lets it through at once."""


def wait_for(predicate, timeout=60.0, interval=0.5, desc=None):
    """Call predicate() until it returns something truthy and return that.
    Exceptions from predicate count as "not yet" (a transient kubectl error),
    except StopWaiting. On timeout, raise TimeoutError naming desc and the
    last value or exception seen."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            value = predicate()
            if value:
                return value
            last = value
        except StopWaiting:
            raise
        except Exception as e:  # noqa: BLE001 - "not yet", reported on timeout
            last = e
        if time.monotonic() >= deadline:
            what = desc or getattr(predicate, "__name__", "condition")
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}")
        time.sleep(interval)


def condition(obj, ctype):
    """The status.conditions entry of type ctype, or None."""
    for c in (obj or {}).get("status", {}).get("conditions") or []:
        if c.get("type") == ctype:
            return c
    return None


def unique_name(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def parse_env_exports(text):
    """Parse `export NAME=VALUE` lines as cluster.sh env prints them."""
    env = {}
    for line in text.splitlines():
        if not line.startswith("export "):
            continue
        name, _, value = line[len("export "):].partition("=")
        words = shlex.split(value) if value else [""]
        env[name] = words[0] if words else ""
    return env


class Cluster:
    """One cluster.sh cluster, identified by its data directory.

    ports: optional {PORT_VAR: port} used when `up` creates it."""

    def __init__(self, data_dir, ports=None, extra_env=None):
        self.data_dir = Path(data_dir)
        self.ports = dict(ports or {})
        self.extra_env = dict(extra_env or {})
        self.env = {}

    # -- cluster.sh ------------------------------------------------------

    def script_env(self):
        env = dict(os.environ)
        env["WASMLET_CLUSTER_DIR"] = str(self.data_dir)
        env.update({k: str(v) for k, v in self.ports.items()})
        env.update(self.extra_env)
        return env

    def script(self, *args, check=True, timeout=600):
        """Run cluster.sh with this cluster's environment; CompletedProcess."""
        p = subprocess.run(
            [str(CLUSTER_SH), *args],
            env=self.script_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and p.returncode != 0:
            raise RuntimeError(
                f"cluster.sh {' '.join(args)} exited {p.returncode}\n"
                f"--- stdout\n{p.stdout}\n--- stderr\n{p.stderr}"
            )
        return p

    def up(self):
        p = self.script("up")
        self.load_env()
        return p

    def down(self):
        return self.script("down", check=False)

    def status(self):
        return self.script("status", check=False)

    def load_env(self):
        self.env = parse_env_exports(self.script("env").stdout)
        return self.env

    def pids(self):
        """{component: pid} from the pid files of running components."""
        out = {}
        run = self.data_dir / "run"
        for f in sorted(run.glob("*.pid")) if run.is_dir() else []:
            out[f.stem] = int(f.read_text().strip())
        return out

    # -- paths and addresses ---------------------------------------------

    @property
    def kubeconfig(self):
        return self.env["KUBECONFIG"]

    @property
    def bootstrap_kubeconfig(self):
        return self.env["WASMLET_BOOTSTRAP_KUBECONFIG"]

    @property
    def ca(self):
        return self.env["WASMLET_CLUSTER_CA"]

    @property
    def server(self):
        return self.env["WASMLET_APISERVER"]

    @property
    def registry(self):
        return self.env["WASMLET_REGISTRY"]

    @property
    def auth_registry(self):
        return self.env["WASMLET_AUTH_REGISTRY"]

    @property
    def auth_registry_credentials(self):
        return self.env["WASMLET_AUTH_REGISTRY_USER"], self.env["WASMLET_AUTH_REGISTRY_PASSWORD"]

    @property
    def kubectl_bin(self):
        return str(Path(self.env["WASMLET_K8S_BIN"]) / "kubectl")

    # -- kubectl -----------------------------------------------------------

    def kubectl(self, args, json=True, check=True, input=None, kubeconfig=None, timeout=60):
        """Run kubectl against this cluster (admin unless kubeconfig is given,
        or kubeconfig=False to pass no kubeconfig at all, e.g. with --token).
        json=True adds -o json and returns the parsed object; otherwise returns
        stdout. Raises KubectlError on failure when check is set."""
        args = [str(a) for a in args]
        cmd = [self.kubectl_bin]
        if kubeconfig is not False:
            cmd += ["--kubeconfig", str(kubeconfig or self.kubeconfig)]
        cmd += args
        if json:
            cmd += ["-o", "json"]
        p = subprocess.run(cmd, input=input, capture_output=True, text=True,
                           errors="surrogateescape", timeout=timeout)
        if p.returncode != 0:
            if check:
                raise KubectlError(args, p.returncode, p.stdout, p.stderr)
            return None
        if json:
            return jsonlib.loads(p.stdout) if p.stdout.strip() else None
        return p.stdout

    def apply(self, yaml_text, namespace=None, kubeconfig=None):
        """kubectl apply -f - ; returns the applied object(s) as JSON."""
        args = ["apply", "-f", "-"]
        if namespace:
            args += ["-n", namespace]
        return self.kubectl(args, input=yaml_text, kubeconfig=kubeconfig)

    def create(self, obj, namespace=None, kubeconfig=None):
        """kubectl create -f - from a dict; returns the created object."""
        args = ["create", "-f", "-"]
        if namespace:
            args += ["-n", namespace]
        return self.kubectl(args, input=jsonlib.dumps(obj), kubeconfig=kubeconfig)

    def get(self, kind, name, namespace=None, kubeconfig=None):
        """The object as a dict, or None when it does not exist."""
        args = ["get", kind, name]
        if namespace:
            args += ["-n", namespace]
        try:
            return self.kubectl(args, kubeconfig=kubeconfig)
        except KubectlError as e:
            if e.not_found:
                return None
            raise

    def list(self, kind, namespace=None, selector=None, field_selector=None):
        args = ["get", kind]
        args += ["-n", namespace] if namespace else ["-A"]
        if selector:
            args += ["-l", selector]
        if field_selector:
            args += ["--field-selector", field_selector]
        return self.kubectl(args)["items"]

    def create_namespace(self, name, timeout=30):
        """Creates the namespace and returns once its default ServiceAccount
        exists: the API server refuses a pod in a namespace whose "default"
        ServiceAccount the controller manager has not made yet."""
        self.kubectl(["create", "namespace", name], json=False)
        wait_for(lambda: self.get("serviceaccount", "default", name), timeout,
                 desc=f"the default ServiceAccount of namespace {name}")

    def delete(self, kind, name, namespace=None, wait=False, timeout=60):
        args = ["delete", kind, name, "--ignore-not-found", f"--wait={str(wait).lower()}"]
        if namespace:
            args += ["-n", namespace]
        self.kubectl(args, json=False, timeout=timeout + 10)

    def whoami(self, kubeconfig=None, token=None):
        """The user info the API server authenticates these credentials as."""
        if token:
            args = ["--server", self.server, "--certificate-authority", self.ca,
                    "--token", token, "auth", "whoami"]
            return self.kubectl(args, kubeconfig=False)["status"]["userInfo"]
        return self.kubectl(["auth", "whoami"], kubeconfig=kubeconfig)["status"]["userInfo"]

    def can_i(self, verb, resource, as_user=None, namespace=None, kubeconfig=None):
        args = ["auth", "can-i", verb, resource]
        if as_user:
            args += ["--as", as_user]
        if namespace:
            args += ["-n", namespace]
        out = self.kubectl(args, json=False, check=False, kubeconfig=kubeconfig)
        return (out or "").strip() == "yes"

    # -- pods and nodes ----------------------------------------------------

    def pod(self, namespace, name):
        return self.get("pod", name, namespace)

    def pod_phase(self, namespace, name):
        p = self.pod(namespace, name)
        return p and p.get("status", {}).get("phase")

    def wait_pod_phase(self, namespace, name, phases, timeout=60):
        phases = {phases} if isinstance(phases, str) else set(phases)
        return wait_for(
            lambda: self.pod_phase(namespace, name) in phases and self.pod(namespace, name),
            timeout,
            desc=f"pod {namespace}/{name} phase in {sorted(phases)}",
        )

    def container_status(self, namespace, pod, container=None):
        p = self.pod(namespace, pod) or {}
        for s in p.get("status", {}).get("containerStatuses") or []:
            if container is None or s["name"] == container:
                return s
        return None

    def logs(self, namespace, pod, container=None, *flags):
        args = ["logs", "-n", namespace, pod]
        if container:
            args += ["-c", container]
        return self.kubectl([*args, *flags], json=False)

    def events(self, namespace, involved_name=None):
        fs = f"involvedObject.name={involved_name}" if involved_name else None
        return self.list("events", namespace=namespace, field_selector=fs)

    def node(self, name):
        return self.get("node", name)

    def node_ready(self, name):
        c = condition(self.node(name), "Ready")
        return bool(c and c.get("status") == "True")

    def node_kubeconfig(self, node, path):
        """A kubeconfig for node with a CA-signed client certificate
        (CN system:node:<node>, O system:nodes), as TLS bootstrap would give."""
        self.script("node-kubeconfig", node, str(path))
        return Path(path)

    def approve_serving(self, node=None):
        """Approve pending kubelet-serving CSRs of nodes (or of node only)."""
        args = ["approve-serving"] + ([node] if node else [])
        return self.script(*args).stdout

    # -- registry ----------------------------------------------------------

    def registry_client(self, auth=False):
        if auth:
            return Registry(self.auth_registry, *self.auth_registry_credentials)
        return Registry(self.registry)


class Registry:
    """Just enough of the OCI distribution API to push and fetch test images
    (monolithic blob upload, manifest put/get), with optional basic auth."""

    OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
    WASM_CONFIG = "application/vnd.wasm.config.v0+json"
    WASM_LAYER = "application/wasm"

    def __init__(self, host, user=None, password=None):
        self.host = host
        self.auth = None
        if user is not None:
            self.auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    def request(self, method, path, data=None, headers=None, auth=True):
        url = path if path.startswith("http") else f"http://{self.host}{path}"
        req = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
        if auth and self.auth:
            req.add_header("Authorization", self.auth)
        handler = urllib.request.ProxyHandler({})
        try:
            with urllib.request.build_opener(handler).open(req, timeout=30) as r:
                return r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read()

    def push_blob(self, repo, data):
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        st, h, body = self.request("POST", f"/v2/{repo}/blobs/uploads/")
        if st != 202:
            raise RuntimeError(f"blob upload start: HTTP {st} {body[:200]!r}")
        loc = h["Location"]
        if loc.startswith("/"):
            loc = f"http://{self.host}{loc}"
        sep = "&" if "?" in loc else "?"
        st, _, body = self.request(
            "PUT", f"{loc}{sep}digest={digest}", data,
            {"Content-Type": "application/octet-stream"},
        )
        if st != 201:
            raise RuntimeError(f"blob upload: HTTP {st} {body[:200]!r}")
        return digest

    def push_manifest(self, repo, ref, manifest, media_type=OCI_MANIFEST):
        data = manifest if isinstance(manifest, bytes) else jsonlib.dumps(manifest).encode()
        st, h, body = self.request(
            "PUT", f"/v2/{repo}/manifests/{ref}", data, {"Content-Type": media_type}
        )
        if st != 201:
            raise RuntimeError(f"manifest put: HTTP {st} {body[:300]!r}")
        return h.get("Docker-Content-Digest") or "sha256:" + hashlib.sha256(data).hexdigest()

    def push_wasm(self, repo, tag, wasm, config=None):
        """Push a wasm module as an OCI artifact (config + one application/wasm
        layer); returns (image reference with tag, manifest digest)."""
        cfg = jsonlib.dumps(config or {"architecture": "wasm", "os": "wasip1"}).encode()
        manifest = {
            "schemaVersion": 2,
            "mediaType": self.OCI_MANIFEST,
            "config": {"mediaType": self.WASM_CONFIG, "digest": self.push_blob(repo, cfg),
                       "size": len(cfg)},
            "layers": [{"mediaType": self.WASM_LAYER, "digest": self.push_blob(repo, wasm),
                        "size": len(wasm)}],
        }
        digest = self.push_manifest(repo, tag, manifest)
        return f"{self.host}/{repo}:{tag}", digest

    def get_manifest(self, repo, ref, accept=OCI_MANIFEST):
        return self.request("GET", f"/v2/{repo}/manifests/{ref}", headers={"Accept": accept})

    def get_blob(self, repo, digest):
        return self.request("GET", f"/v2/{repo}/blobs/{digest}")


class WasmletNode:
    """A running `wasmlet node` process and where its things are."""

    def __init__(self, name, port, data_dir, log_path, cmd, proc, log_file):
        self.name = name
        self.port = port
        self.data_dir = Path(data_dir)
        self.log_path = Path(log_path)
        self.cmd = cmd
        self.proc = proc
        self._log_file = log_file

    @property
    def pid(self):
        return self.proc.pid

    def running(self):
        return self.proc.poll() is None

    def log_text(self):
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines=60):
        return "\n".join(self.log_text().splitlines()[-lines:])

    def signal(self, sig):
        if self.running():
            os.killpg(self.proc.pid, sig)

    def stop(self, timeout=15):
        """SIGTERM (the whole process group), then SIGKILL after timeout;
        returns the exit status."""
        if self.running():
            try:
                self.signal(signal.SIGTERM)
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.proc.wait(10)
            except ProcessLookupError:
                pass
        self.proc.wait()
        if not self._log_file.closed:
            self._log_file.close()
        return self.proc.returncode


def serving_cert_verifies(ca, port):
    """Whether 127.0.0.1:port presents a certificate for 127.0.0.1 that ca
    signed (only loopback: the node's own HTTPS port)."""
    ctx = ssl.create_default_context(cafile=ca)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            with ctx.wrap_socket(s, server_hostname="127.0.0.1"):
                return True
    except (ssl.SSLError, OSError):
        return False


class NodeFactory:
    """Starts wasmlet nodes for one test and stops all of them afterwards."""

    def __init__(self, cluster, workdir, binary):
        self.cluster = cluster
        self.workdir = Path(workdir)
        self.binary = binary
        self.nodes = []

    def start(self, name=None, auth=None, args=(), env=None, wait_ready=True, timeout=90,
              approve_serving=True, port=None):
        """Start `wasmlet node` and (by default) wait until its Node is Ready.

        auth: "cert" (kubeconfig with a CA-signed node certificate, the
        default, or $WASMLET_E2E_NODE_AUTH), "bootstrap" (only
        --bootstrap-kubeconfig: wasmlet does TLS bootstrap and keeps what it
        gets under its data dir) or "admin" (the admin kubeconfig).
        approve_serving: approve the node's kubelet-serving CSR while waiting,
        as an operator would (Kubernetes never auto-approves those)."""
        name = name or unique_name("node")
        auth = auth or os.environ.get("WASMLET_E2E_NODE_AUTH", "cert")
        port = port or free_ports(1)[0]
        data = self.workdir / name
        data.mkdir(parents=True, exist_ok=True)
        if auth == "cert":
            kubeconfig = self.workdir / f"{name}.kubeconfig"
            self.cluster.node_kubeconfig(name, kubeconfig)
            kube_args = ["--kubeconfig", str(kubeconfig)]
        elif auth == "bootstrap":
            kube_args = ["--bootstrap-kubeconfig", self.cluster.bootstrap_kubeconfig]
        elif auth == "admin":
            kube_args = ["--kubeconfig", self.cluster.kubeconfig]
        else:
            raise ValueError(f"unknown node auth {auth!r}")
        cmd = [self.binary, "node", *kube_args, "--node-name", name,
               "--data-dir", str(data), "--port", str(port), *map(str, args)]
        log_path = self.workdir / f"{name}.log"
        log = open(log_path, "ab")
        log.write(f"+ {shlex.join(cmd)}\n".encode())
        log.flush()
        penv = dict(os.environ)
        penv.update(env or {})
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, env=penv, start_new_session=True)
        node = WasmletNode(name, port, data, log_path, cmd, proc, log)
        self.nodes.append(node)
        if wait_ready:
            self.wait_ready(node, timeout, approve_serving)
        return node

    def wait_ready(self, node, timeout=90, approve_serving=True):
        last_approve = 0.0

        def ready():
            nonlocal last_approve
            if not node.running():
                raise StopWaiting(
                    f"wasmlet node {node.name} exited with {node.proc.returncode} before "
                    f"becoming Ready; log {node.log_path}:\n{node.log_tail()}"
                )
            if approve_serving and time.monotonic() - last_approve > 2:
                last_approve = time.monotonic()
                self.cluster.approve_serving(node.name)
            return self.cluster.node_ready(node.name)

        try:
            wait_for(ready, timeout, desc=f"node {node.name} Ready")
        except TimeoutError as e:
            raise TimeoutError(f"{e}\nlog {node.log_path}:\n{node.log_tail()}") from None
        if approve_serving:
            # Ready can come before the node has asked for its serving
            # certificate: approve until the API server can verify it, as
            # kubectl logs will.
            def serving_verified():
                self.cluster.approve_serving(node.name)
                return serving_cert_verifies(self.cluster.ca, node.port)
            wait_for(serving_verified, 60, interval=1.0,
                     desc=f"node {node.name} serving a certificate the cluster CA signed")
        return node

    def teardown(self, delete_nodes=True):
        errors = []
        for node in self.nodes:
            try:
                node.stop()
            except Exception as e:  # noqa: BLE001 - keep tearing down the rest
                errors.append(f"{node.name}: {e}")
            if delete_nodes:
                try:
                    self.cluster.delete("node", node.name)
                except Exception as e:  # noqa: BLE001
                    errors.append(f"delete node {node.name}: {e}")
        if errors:
            raise RuntimeError("node teardown: " + "; ".join(errors))


# -- wasm workloads: images, pods, logs, ledgers ---------------------------
#
# Added for the node and pod tests (test_node_*.py, test_pods_*.py). Every
# wasm pod must tolerate the taints a wasmlet node puts on itself and select
# its architecture, or the scheduler (and the taint manager, for NoExecute)
# keeps it away.

EXAMPLES = Path(os.environ.get("WASMLET_EXAMPLES", REPO / "build" / "examples"))
WASM_ARCH = "wasm32-wasi"
WASM_TOLERATIONS = [
    {"key": "kubernetes.io/arch", "operator": "Equal", "value": WASM_ARCH, "effect": effect}
    for effect in ("NoSchedule", "NoExecute")
]

_next_node_port = int(os.environ.get("WASMLET_E2E_NODE_PORT_BASE", "10280"))


def node_port():
    """The next port from 10280 up that nothing listens on, for a node's
    --port (each node of a run gets its own)."""
    global _next_node_port
    while True:
        port = _next_node_port
        _next_node_port += 1
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            s.close()


def push_examples(cluster, names=None, tag="v1"):
    """Push build/examples/<name>.wasm (and bad/<name>.wasm, prefixed
    "bad-") to the cluster's open registry as e2e/<name>:<tag>. Returns
    {name: (image reference, manifest digest)}."""
    reg = cluster.registry_client()
    out = {}
    files = sorted(EXAMPLES.glob("*.wasm")) + sorted((EXAMPLES / "bad").glob("*.wasm"))
    for f in files:
        name = f.stem if f.parent == EXAMPLES else f"bad-{f.stem}"
        if names is not None and name not in names:
            continue
        out[name] = reg.push_wasm(f"e2e/{name}", tag, f.read_bytes())
    return out


def wasm_container(name, image, args=(), command=None, env=None, mounts=None, **extra):
    """A container dict. env: {NAME: value} or a list of EnvVar dicts;
    mounts: {mountPath: volumeName} or a list of VolumeMount dicts."""
    c = {"name": name, "image": image}
    if command is not None:
        c["command"] = [str(a) for a in command]
    if args:
        c["args"] = [str(a) for a in args]
    if env:
        c["env"] = ([{"name": k, "value": str(v)} for k, v in env.items()]
                    if isinstance(env, dict) else list(env))
    if mounts:
        c["volumeMounts"] = ([{"name": v, "mountPath": p} for p, v in mounts.items()]
                             if isinstance(mounts, dict) else list(mounts))
    c.update(extra)
    return c


def wasm_pod_spec(containers, node=None, node_name=None, restart_policy="Never",
                  init_containers=None, volumes=None, **extra):
    """A pod spec for wasm containers: tolerations and the arch selector,
    plus kubernetes.io/hostname=node (scheduled there) or spec.nodeName
    (bound directly, bypassing the scheduler)."""
    selector = {"kubernetes.io/arch": WASM_ARCH}
    if node:
        selector["kubernetes.io/hostname"] = node
    spec = {
        "restartPolicy": restart_policy,
        "nodeSelector": selector,
        "tolerations": [dict(t) for t in WASM_TOLERATIONS],
        "terminationGracePeriodSeconds": 5,
        "containers": list(containers),
    }
    if node_name:
        spec["nodeName"] = node_name
    if init_containers:
        spec["initContainers"] = list(init_containers)
    if volumes:
        spec["volumes"] = list(volumes)
    spec.update(extra)
    return spec


def wasm_pod(name, containers, labels=None, **spec_args):
    """A v1 Pod dict; spec_args go to wasm_pod_spec."""
    meta = {"name": name}
    if labels:
        meta["labels"] = dict(labels)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": wasm_pod_spec(containers, **spec_args)}


def host_path_volume(name, path):
    return {"name": name, "hostPath": {"path": str(path), "type": "Directory"}}


# The downward API variables a ledger container names its file with.
POD_IDENTITY_ENV = [
    {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
    {"name": "POD_UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
]


class Ledger:
    """A host directory shared with pods through a hostPath volume, where
    every container run appends one line (files append), so a test counts
    runs even after their pods and logs are gone."""

    MOUNT = "/ledger"

    def __init__(self, path):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        os.chmod(self.path, 0o777)

    def volume(self, name="ledger"):
        return host_path_volume(name, self.path)

    def container(self, name, image, line, file="$(POD_UID)", volume="ledger"):
        """A files.wasm container that appends line + newline to file."""
        return wasm_container(name, image, ["append", f"{self.MOUNT}/{file}", line + "\n"],
                              env=POD_IDENTITY_ENV, mounts={self.MOUNT: volume})

    def lines(self, file):
        try:
            return (self.path / file).read_text().splitlines()
        except FileNotFoundError:
            return []

    def files(self):
        return {f.name: f.read_text().splitlines() for f in self.path.iterdir() if f.is_file()}


def parse_cri_log(text):
    """(stream, line) pairs from CRI log records, partial records joined."""
    out, partial = [], {}
    for rec in text.splitlines():
        parts = rec.split(" ", 3)
        if len(parts) < 3:
            continue
        stream, tag = parts[1], parts[2]
        content = parts[3] if len(parts) == 4 else ""
        partial[stream] = partial.get(stream, "") + content
        if tag == "F":
            out.append((stream, partial.pop(stream)))
    return out


def _log_file_order(f):
    # <restart>.log.<seq> (rotated, older) before <restart>.log (current).
    parts = f.name.split(".")
    restart = int(parts[0]) if parts[0].isdigit() else -1
    seq = int(parts[2]) if len(parts) > 2 and parts[2].isdigit() else 1 << 30
    return restart, seq


def node_container_log(node, namespace, pod, container, restart=None, uid="*"):
    """The lines a container wrote (both streams, in order) as the wasmlet
    node keeps them under <data dir>/logs; only run `restart` when given.
    Works without the kubelet HTTPS API (kubectl logs)."""
    lines = []
    for d in sorted((node.data_dir / "logs").glob(f"{namespace}_{pod}_{uid}/{container}")):
        for f in sorted(d.glob("*.log*"), key=_log_file_order):
            if restart is not None and _log_file_order(f)[0] != restart:
                continue
            try:
                lines += [line for _, line in parse_cri_log(f.read_text(errors="replace"))]
            except FileNotFoundError:
                continue
    return lines


def rfc3339(ts):
    """Seconds since the epoch of an RFC 3339 timestamp as the API server
    writes them (Z, optional fraction)."""
    from datetime import datetime

    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def restart_node(factory, node, wait_ready=True, timeout=90):
    """Run an exited node's command again: same name, data dir, port and
    flags (what a supervisor does after a crash)."""
    if node.running():
        raise RuntimeError(f"node {node.name} is still running")
    if not node._log_file.closed:
        node._log_file.close()
    log = open(node.log_path, "ab")
    log.write(f"+ (restart) {shlex.join(node.cmd)}\n".encode())
    log.flush()
    node._log_file = log
    node.proc = subprocess.Popen(node.cmd, stdin=subprocess.DEVNULL, stdout=log,
                                 stderr=subprocess.STDOUT, start_new_session=True)
    if wait_ready:
        factory.wait_ready(node, timeout)
    return node
