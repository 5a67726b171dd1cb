"""Shared helpers of the test_container_*.py suites: what a wasm container
sees (images, env, volumes, limits) on a real wasmlet node.

One wasmlet node per test module (module_node) keeps the suites fast: a
node joins in a few seconds, and every test then works in a namespace of
its own (the `namespace` fixture of conftest.py). Pods are pinned to the
module's node by spec.nodeName and tolerate its taints, so they never wait
for the scheduler and never land on another test's node.

Container output: `kubectl logs` when the node's HTTPS server answers it,
else the node's own CRI-format log files
(<data dir>/logs/<ns>_<pod>_<uid>/<container>/<restart>.log), so the suites
read what the module really wrote either way.

Images: the example modules (build/examples/*.wasm, or beside $WASMLET_BIN)
are pushed with `wasmlet push` itself.
"""

import json
import os
import re
import socket
import subprocess
import time
from pathlib import Path

import pytest

from kubetest import REPO, KubectlError, NodeFactory, unique_name, wait_for


def wasmlet_bin():
    path = os.environ.get("WASMLET_BIN") or str(REPO / "build" / "wasmlet")
    if not os.access(path, os.X_OK):
        pytest.skip(f"wasmlet is not built ({path}); set WASMLET_BIN")
    return path


def examples_dir():
    """build/examples of the build that made $WASMLET_BIN (or of build/)."""
    for d in (Path(wasmlet_bin()).parent / "examples", REPO / "build" / "examples"):
        if (d / "printenv.wasm").is_file():
            return d
    pytest.skip("the example modules are not built (cmake --build ... --target examples)")


def module_path(name):
    return examples_dir() / f"{name}.wasm"


def port_free(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def node_port():
    """A free port from 10320 up (this suite's range) for a node's HTTPS API."""
    for port in range(10320, 10400):
        if port_free(port):
            return port
    raise RuntimeError("no free port in 10320-10399")


# --- one node per module ------------------------------------------------------


class ModuleNode:
    """The node of a test module and its factory (for the failure report)."""

    def __init__(self, factory, node):
        self.factory = factory
        self.node = node

    @property
    def name(self):
        return self.node.name

    @property
    def data_dir(self):
        return self.node.data_dir


def start_module_node(cluster, tmp_path_factory, prefix, args=()):
    factory = NodeFactory(cluster, tmp_path_factory.mktemp(prefix), wasmlet_bin())
    node = factory.start(name=unique_name(prefix), port=node_port(),
                         args=["--backoff-initial", "1000", *args])
    return ModuleNode(factory, node)


def attach(request, mnode):
    """Let conftest's failure report show this node's log tail."""
    request.node.wasmlet_node_factory = mnode.factory


# --- images -------------------------------------------------------------------


def leb128(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def unique_module(name, directory, note=None):
    """The example module with a custom section of random bytes appended:
    the same program under a digest no store has seen yet. Returns its path."""
    payload = (note or os.urandom(16).hex()).encode()
    sec_name = b"wasmlet-e2e"
    body = leb128(len(sec_name)) + sec_name + payload
    data = module_path(name).read_bytes() + b"\x00" + leb128(len(body)) + body
    path = Path(directory) / f"{name}-{payload[:8].decode()}.wasm"
    path.write_bytes(data)
    return path


def push(cluster, module, repo, tag="v1", fmt="wasm", registry=None, config=None):
    """`wasmlet push` the example module (a name or a path) to the open
    registry (or registry); returns the reference pushed."""
    path = module if isinstance(module, Path) or "/" in str(module) else module_path(module)
    ref = f"{registry or cluster.registry}/{repo}:{tag}"
    cmd = [wasmlet_bin(), "push", "--format", fmt]
    if config:
        cmd += ["--registry-config", str(config)]
    p = subprocess.run([*cmd, str(path), ref], capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        raise RuntimeError(f"wasmlet push {ref}: exit {p.returncode}: {p.stderr.strip()}")
    return ref


# --- pods ---------------------------------------------------------------------

TOLERATE_ALL = [{"operator": "Exists"}]


def container(name, image, command=None, args=None, **extra):
    c = {"name": name, "image": image}
    if command is not None:
        c["command"] = command
    if args is not None:
        c["args"] = args
    c.update(extra)
    return c


def pod_manifest(name, node, containers, restart="Never", **spec):
    body = {"nodeName": node.name, "restartPolicy": restart, "tolerations": TOLERATE_ALL,
            "containers": containers}
    labels = spec.pop("labels", None)
    annotations = spec.pop("annotations", None)
    body.update(spec)
    meta = {"name": name}
    if labels:
        meta["labels"] = labels
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": body}


def create_pod(cluster, namespace, name, node, containers, **spec):
    return cluster.create(pod_manifest(name, node, containers, **spec), namespace)


def wait_done(cluster, namespace, name, timeout=60):
    """Waits for Succeeded or Failed; returns the pod."""
    return cluster.wait_pod_phase(namespace, name, ["Succeeded", "Failed"], timeout)


def cstatus(pod, container=None, init=False):
    key = "initContainerStatuses" if init else "containerStatuses"
    for s in pod.get("status", {}).get(key) or []:
        if container is None or s["name"] == container:
            return s
    return None


def terminated(pod, container=None):
    s = cstatus(pod, container)
    return (s or {}).get("state", {}).get("terminated")


def waiting_with(cluster, namespace, name, reasons, container=None, timeout=60):
    """Waits until the container is waiting with one of reasons; returns
    that waiting state ({reason, message})."""
    reasons = {reasons} if isinstance(reasons, str) else set(reasons)

    def check():
        s = cstatus(cluster.pod(namespace, name) or {}, container) or {}
        w = s.get("state", {}).get("waiting")
        return w if w and w.get("reason") in reasons else None

    return wait_for(check, timeout, desc=f"{namespace}/{name} waiting in {sorted(reasons)}")


def events_of(cluster, namespace, name):
    return cluster.events(namespace, name)


def wait_event(cluster, namespace, name, reason, pattern=None, timeout=60):
    def check():
        for e in events_of(cluster, namespace, name):
            if e.get("reason") == reason and (pattern is None or
                                               re.search(pattern, e.get("message", ""))):
                return e
        return None

    return wait_for(check, timeout, desc=f"event {reason} {pattern or ''} on {namespace}/{name}")


# --- container output ---------------------------------------------------------


def parse_cri(text):
    """The bytes a container wrote, from CRI log lines
    `<time> <stream> <P|F> <text>` (P: part of a longer line)."""
    out = []
    for line in text.splitlines():
        parts = line.split(" ", 3)
        if len(parts) < 3:
            continue
        tag = parts[2]
        out.append(parts[3] if len(parts) > 3 else "")
        if tag.startswith("F"):
            out.append("\n")
    return "".join(out)


def cri_lines(text):
    """[(timestamp string, stream, text)] of complete lines."""
    lines, part = [], ""
    for line in text.splitlines():
        parts = line.split(" ", 3)
        if len(parts) < 3:
            continue
        part += parts[3] if len(parts) > 3 else ""
        if parts[2].startswith("F"):
            lines.append((parts[0], parts[1], part))
            part = ""
    return lines


def cri_log_path(node, namespace, pod_obj, container, restart=None):
    uid = pod_obj["metadata"]["uid"]
    name = pod_obj["metadata"]["name"]
    if restart is None:
        restart = (cstatus(pod_obj, container) or cstatus(pod_obj, container, init=True)
                   or {}).get("restartCount", 0)
    return Path(node.data_dir) / "logs" / f"{namespace}_{name}_{uid}" / container / f"{restart}.log"


def raw_log(cluster, node, namespace, name, container):
    pod_obj = cluster.pod(namespace, name)
    path = cri_log_path(node, namespace, pod_obj, container)
    return path.read_text(errors="replace") if path.exists() else ""


# Set once `kubectl logs` showed that nodes do not serve logs (nothing
# listens on the kubelet port, or it does not speak the API): from then on
# the suites read the log files directly.
_NO_LOG_SERVER = ("connection refused", "error dialing backend", "dial tcp", "proxy error",
                  "tls:", "x509", "EOF", "404")
_kubectl_logs_unavailable = False


def logs(cluster, node, namespace, name, container):
    """What the container wrote (stdout and stderr): `kubectl logs` when the
    node serves it, else the node's CRI log file."""
    global _kubectl_logs_unavailable
    if not _kubectl_logs_unavailable:
        try:
            return cluster.kubectl(["logs", "-n", namespace, name, "-c", container], json=False,
                                   timeout=15)
        except subprocess.TimeoutExpired:
            _kubectl_logs_unavailable = True
        except KubectlError as e:
            if any(s in e.stderr for s in _NO_LOG_SERVER):
                _kubectl_logs_unavailable = True
    return parse_cri(raw_log(cluster, node, namespace, name, container))


def wait_log(cluster, node, namespace, name, container, pattern, timeout=30):
    """Waits until the container's output matches pattern; returns the output."""
    def check():
        text = logs(cluster, node, namespace, name, container)
        return text if re.search(pattern, text, re.M) else None

    return wait_for(check, timeout, desc=f"{namespace}/{name}/{container} output /{pattern}/")


def printenv_vars(text):
    """{NAME: value} from printenv's `env NAME=value` lines."""
    env = {}
    for line in text.splitlines():
        if line.startswith("env "):
            k, _, v = line[4:].partition("=")
            env[k] = v
    return env


def printenv_args(text):
    return [line.split("=", 1)[1] for line in text.splitlines() if line.startswith("arg[")]


def run_to_end(cluster, node, namespace, name, containers, timeout=60, **spec):
    """Creates a pod, waits for it to end; returns (pod, {container: output})."""
    create_pod(cluster, namespace, name, node, containers, **spec)
    p = wait_done(cluster, namespace, name, timeout)
    outs = {c["name"]: logs(cluster, node, namespace, name, c["name"]) for c in containers}
    return p, outs


def json_dump(obj):
    return json.dumps(obj, indent=1, sort_keys=True)


def now():
    return time.monotonic()
