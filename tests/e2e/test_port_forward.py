"""`kubectl port-forward pod/NAME LOCAL:REMOTE` to a pod on a wasmlet node,
through the real API server (kubectl -> API server -> the node's
/portForward, SPDY/3.1 with the portforward.k8s.io stream pairs).

Where the pod's listener is, for now. WASI preview 1 modules cannot listen,
and pods have no network namespace of their own yet, so the node reaches a
pod's port at 127.0.0.1:PORT in the host's namespace (src/pod/dial.c). The
"pod's listener" here is therefore a TCP server this test runs on a loopback
port of the host, and the pod (a long-running module) only makes the pod
exist and run on the node. Once pods have their own namespaces (CNI
sandboxes) and components can listen, this listener moves into the pod's
namespace: a component in the pod serves the port, and dial.c connects
inside that namespace.

All traffic stays on loopback: kubectl's local port, the API server, the
node's HTTPS port and the test's listener.
"""

import hashlib
import os
import re
import socket
import ssl
import subprocess
import threading
import time

import pytest

from container_kit import ModuleNode, attach, container, create_pod, push, wasmlet_bin
from kubetest import NodeFactory, free_ports, unique_name, wait_for


def wait_signed_serving(cluster, node, timeout=60):
    """Approves the node's serving CSR until its HTTPS API presents a
    certificate the cluster CA verifies (the API server checks it)."""
    ctx = ssl.create_default_context(cafile=cluster.ca)

    def verified():
        cluster.approve_serving(node.name)
        try:
            with socket.create_connection(("127.0.0.1", node.port), timeout=3) as s:
                with ctx.wrap_socket(s, server_hostname="127.0.0.1"):
                    return True
        except (ssl.SSLError, OSError):
            return False

    wait_for(verified, timeout, interval=1, desc=f"node {node.name} serving a signed certificate")


@pytest.fixture(scope="module")
def pf_node(cluster, tmp_path_factory):
    factory = NodeFactory(cluster, tmp_path_factory.mktemp("pf"), wasmlet_bin())
    node = factory.start(name=unique_name("pf"), args=["--backoff-initial", "1000"])
    mnode = ModuleNode(factory, node)
    try:
        wait_signed_serving(cluster, node)
        yield mnode
    finally:
        factory.teardown()


@pytest.fixture
def node(pf_node, request):
    attach(request, pf_node)
    return pf_node


@pytest.fixture(scope="module")
def ticker(cluster):
    return push(cluster, "ticker", "pf/ticker")


class Listener:
    """The pod's port (see the module docstring): on each connection, reads
    a header line "<n>\\n" and then n bytes, answers "sha256 <hex>\\n"
    followed by the n bytes reversed, and closes."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(60)
        self.port = self.sock.getsockname()[1]
        self.served = 0
        self.errors = []
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            try:
                with conn:
                    conn.settimeout(30)
                    with conn.makefile("rb") as f:  # holds the socket open until closed
                        n = int(f.readline())
                        data = f.read(n)
                    if len(data) != n:
                        raise RuntimeError(f"got {len(data)} of {n} bytes")
                    conn.sendall(b"sha256 " + hashlib.sha256(data).hexdigest().encode() + b"\n")
                    conn.sendall(data[::-1])
                    conn.shutdown(socket.SHUT_WR)
                    self.served += 1
            except Exception as e:  # reported by the test
                self.errors.append(repr(e))

    def close(self):
        self.sock.close()
        self.thread.join(5)


class PortForward:
    """`kubectl port-forward` running in the background."""

    def __init__(self, cluster, namespace, pod, local, remote):
        self.local = local
        self.proc = subprocess.Popen(
            [cluster.kubectl_bin, "--kubeconfig", cluster.kubeconfig, "port-forward",
             "-n", namespace, f"pod/{pod}", f"{local}:{remote}", "--address", "127.0.0.1"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        self.out = []
        self.err = []
        threading.Thread(target=self._drain, args=(self.proc.stdout, self.out), daemon=True).start()
        threading.Thread(target=self._drain, args=(self.proc.stderr, self.err), daemon=True).start()
        wait_for(lambda: self.ready() or self.proc.poll() is not None, 30, interval=0.2,
                 desc="kubectl port-forward listening")
        if not self.ready():
            raise RuntimeError(f"kubectl port-forward did not start: {self.stderr()}")

    @staticmethod
    def _drain(stream, into):
        for line in stream:
            into.append(line)

    def ready(self):
        return any(f"Forwarding from 127.0.0.1:{self.local}" in x for x in self.out)

    def stderr(self):
        return "".join(self.err)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def exchange(port, payload, timeout=30):
    """Sends payload to the listener through the forwarded port; returns
    (header line, rest) of the answer, read to EOF."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(str(len(payload)).encode() + b"\n" + payload)
        chunks = []
        while True:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
    answer = b"".join(chunks)
    head, _, rest = answer.partition(b"\n")
    return head.decode(errors="replace"), rest


def running_pod(cluster, namespace, node, ticker, name):
    create_pod(cluster, namespace, name, node.node,
               [container("app", ticker, args=["1000", "0"])])
    cluster.wait_pod_phase(namespace, name, "Running", 60)


def test_port_forward_carries_request_and_answer(cluster, node, namespace, ticker):
    """Bytes round-trip both ways, for several connections in a row on one
    kubectl session, small and large (2 MiB, many SPDY frames each way)."""
    running_pod(cluster, namespace, node, ticker, "web")
    listener = Listener()
    local = free_ports(1)[0]
    pf = PortForward(cluster, namespace, "web", local, listener.port)
    try:
        for size in (5, 100_000, 2 * 1024 * 1024):
            payload = os.urandom(size)
            try:
                head, rest = exchange(local, payload)
            except OSError as e:
                raise AssertionError(f"{size} bytes: {e!r}; listener served {listener.served}, "
                                     f"errors {listener.errors}; kubectl: {pf.stderr()}") from e
            assert head == "sha256 " + hashlib.sha256(payload).hexdigest(), (head, pf.stderr())
            assert len(rest) == size
            assert rest == payload[::-1]
        assert listener.served == 3, listener.errors
        assert listener.errors == []
        assert pf.proc.poll() is None, pf.stderr()
    finally:
        pf.stop()
        listener.close()


def test_port_forward_to_a_closed_port_gives_the_kubelet_error(cluster, node, namespace, ticker):
    """Nobody listens on the remote port: kubectl reports the node's error
    from the error stream, worded as the kubelet words it."""
    running_pod(cluster, namespace, node, ticker, "quiet")
    pod = cluster.pod(namespace, "quiet")
    uid = pod["metadata"]["uid"]
    # A port nobody listens on: bound to find it free, then closed.
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    dead = s.getsockname()[1]
    s.close()
    local = free_ports(1)[0]
    pf = PortForward(cluster, namespace, "quiet", local, dead)
    try:
        with socket.create_connection(("127.0.0.1", local), timeout=30) as c:
            c.settimeout(30)
            try:
                assert c.recv(1024) == b""  # closed without an answer
            except ConnectionResetError:
                pass
        want = re.compile(
            rf"error forwarding port {dead} to pod {namespace}/quiet, uid {uid}: "
            rf"dial tcp 127\.0\.0\.1:{dead}: Connection refused")
        wait_for(lambda: want.search(pf.stderr()), 20, interval=0.2,
                 desc="kubectl showing the node's error")
    finally:
        pf.stop()
