"""`wasmlet run -f pod.yaml` with WASI preview 2 components as containers.

The component twins of the core-module tests of test_run.py (exit codes,
traps, OOMKilled, stop of a spinning and of a sleeping component, mounts
read-only and read-write, escape attempts, logs, compile-cache hits), and
the network of a component: TCP to a listener on loopback (allowed only
with the wasmlet.dev/allow-local-network annotation), name lookup of
localhost, an HTTP GET from a test server on loopback, and the
wasmlet.dev/network: none opt-out. Servers are on 127.0.0.1 only.
"""
import http.server
import json
import signal
import socket
import threading
import time

import pytest

from runhelp import EXAMPLES, binaries, stop_with, wait_for_line


def comp(name):
    return str(EXAMPLES / f"{name}.component.wasm")


def pod(tmp_path, name, containers, annotations=None, volumes=None, init=None, deadline=None):
    """Writes a Pod manifest (JSON, which wasmlet run reads as well) and
    returns its path. containers: dicts with name, image (a component name),
    args, and optionally volumeMounts / resources."""

    def c(spec):
        out = {"name": spec["name"], "image": comp(spec.get("image", spec["name"]))}
        for k in ("args", "volumeMounts", "resources", "command"):
            if k in spec:
                out[k] = spec[k]
        return out

    spec = {"restartPolicy": "Never", "containers": [c(x) for x in containers]}
    if init:
        spec["initContainers"] = [c(x) for x in init]
    if volumes:
        spec["volumes"] = volumes
    if deadline:
        spec["activeDeadlineSeconds"] = deadline
    doc = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}
    if annotations:
        doc["metadata"]["annotations"] = annotations
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(doc))
    return path


def test_components_exist():
    for name in ("hello", "exitcode", "trap", "memhog", "spin", "sleeper", "files",
                 "tcp-client", "lookup", "http-get"):
        assert (EXAMPLES / f"{name}.component.wasm").is_file(), name


@pytest.mark.parametrize("binary", binaries())
def test_hello(binary, tmp_path, wasmlet):
    r = wasmlet(pod(tmp_path, "hello", [{"name": "hello"}]), binary=binary)
    r.assert_healthy()
    assert r.rc == 0, r.err
    assert r.out == "[hello] Hello from wasmlet!\n"
    c = r.container("hello")
    assert (c["exit"], c["reason"], c["message"]) == (0, "Completed", "")


@pytest.mark.parametrize("code,want", [("0", 0), ("3", 1)])
def test_exit_codes(code, want, tmp_path, wasmlet):
    """exit(n) through the preview-1 adapter is wasi:cli/exit's exit: ok or err."""
    r = wasmlet(pod(tmp_path, "exitcode", [{"name": "exitcode", "args": [code, "bye"]}]))
    r.assert_healthy()
    c = r.container("exitcode")
    assert c["exit"] == want
    assert c["reason"] == ("Completed" if want == 0 else "Error")
    assert "[exitcode] bye" in r.err_lines
    assert r.rc == (0 if want == 0 else 1)


@pytest.mark.parametrize("code", [0, 3, 255])
def test_exit_with_code(code, tmp_path, wasmlet):
    """A component that calls wasi:cli/exit's exit-with-code ends with that code."""
    r = wasmlet(pod(tmp_path, "exit-code", [{"name": "exit-code", "args": [str(code), "bye"]}]))
    r.assert_healthy()
    c = r.container("exit-code")
    assert c["exit"] == code
    assert c["reason"] == ("Completed" if code == 0 else "Error")
    assert "[exit-code] bye" in r.err_lines
    assert r.rc == (0 if code == 0 else 1)


@pytest.mark.parametrize("binary", binaries())
def test_trap(binary, tmp_path, wasmlet):
    r = wasmlet(pod(tmp_path, "trap", [{"name": "trap"}]), binary=binary)
    r.assert_healthy()
    assert r.rc == 1
    c = r.container("trap")
    assert (c["exit"], c["reason"]) == (134, "Error")
    assert "unreachable" in c["message"]


def test_stack_overflow_keeps_its_cause(tmp_path, wasmlet):
    r = wasmlet(pod(tmp_path, "recurse", [{"name": "recurse"}]))
    r.assert_healthy()
    c = r.container("recurse")
    assert c["exit"] == 134
    assert c["message"].startswith("wasm trap: call stack exhausted"), c["message"]


def test_oom_killed(tmp_path, wasmlet):
    """A limit below the component's initial memories (all of them together)."""
    r = wasmlet(pod(tmp_path, "small", [{"name": "hello",
                                         "resources": {"limits": {"memory": "64Ki"}}}]))
    r.assert_healthy()
    c = r.container("hello")
    assert (c["exit"], c["reason"]) == (137, "OOMKilled")
    assert r.out == ""


def test_deadline_stops_a_spinning_component(tmp_path, wasmlet):
    r = wasmlet(pod(tmp_path, "spin", [{"name": "spin"}], deadline=1))
    r.assert_healthy()
    assert r.out == "[spin] spinning\n"
    assert r.pod_line().startswith("pod spin: Failed (DeadlineExceeded")
    assert r.container("spin")["exit"] == 137
    assert r.seconds < 5


@pytest.mark.parametrize("binary", binaries())
def test_signal_stops_a_sleeping_component(binary, tmp_path, start_wasmlet):
    p = start_wasmlet(pod(tmp_path, "sleeper", [{"name": "sleeper", "args": ["3600"]}]),
                      binary=binary)
    wait_for_line(p.stdout, "sleeping 3600", 30)
    rc, took, out, err = stop_with(p, signal.SIGTERM, 10)
    assert rc == 1, err
    assert took < 2, took
    assert "  sleeper: exit 137" in err


def test_mounts_and_escapes(tmp_path, wasmlet):
    host = tmp_path / "host"
    host.mkdir()
    (host / "given.txt").write_text("from the host")
    secret = tmp_path / "secret.txt"
    secret.write_text("host secret")
    (tmp_path / "rw").mkdir()
    (tmp_path / "rw" / "link").symlink_to(secret)
    volumes = [{"name": "ro", "hostPath": {"path": str(host)}},
               {"name": "rw", "hostPath": {"path": str(tmp_path / "rw")}},
               {"name": "scratch", "emptyDir": {}}]
    mounts = [{"name": "ro", "mountPath": "/ro", "readOnly": True},
              {"name": "rw", "mountPath": "/rw"},
              {"name": "scratch", "mountPath": "/scratch"}]
    init = [{"name": "writer", "image": "files", "args": ["write", "/scratch/x", "from-init"],
             "volumeMounts": mounts}]
    containers = [
        {"name": "reader", "image": "files", "args": ["cat", "/scratch/x"], "volumeMounts": mounts},
        {"name": "roread", "image": "files", "args": ["cat", "/ro/given.txt"],
         "volumeMounts": mounts},
        {"name": "rowrite", "image": "files", "args": ["write", "/ro/new.txt", "x"],
         "volumeMounts": mounts},
        {"name": "escape", "image": "files", "args": ["write", "/rw/link", "pwned"],
         "volumeMounts": mounts},
        {"name": "climb", "image": "files", "args": ["cat", "/rw/../../etc/passwd"],
         "volumeMounts": mounts},
        {"name": "rwwrite", "image": "files", "args": ["write", "/rw/out.txt", "ok"],
         "volumeMounts": mounts},
    ]
    r = wasmlet(pod(tmp_path, "files", containers, volumes=volumes, init=init))
    r.assert_healthy()
    assert "[reader] from-init" in r.out_lines
    assert "[roread] from the host" in r.out_lines
    assert r.container("reader")["exit"] == 0
    assert r.container("rwwrite")["exit"] == 0
    for name in ("rowrite", "escape", "climb"):
        assert r.container(name)["exit"] != 0, r.err
    assert not (host / "new.txt").exists()
    assert secret.read_text() == "host secret"
    assert (tmp_path / "rw" / "out.txt").read_text() == "ok"


def test_logs_and_compile_cache(tmp_path, wasmlet):
    logs = tmp_path / "logs"
    data = tmp_path / "data"
    manifest = pod(tmp_path, "hello", [{"name": "hello"}])
    r = wasmlet(manifest, "--logs-dir", str(logs), data_dir=data)
    assert r.rc == 0, r.err
    files = list(logs.rglob("*.log"))
    assert len(files) == 1
    assert " stdout F Hello from wasmlet!" in files[0].read_text()
    cached = list((data / "modules" / "compiled").glob("*.cwasm"))
    assert len(cached) == 1
    mtime = cached[0].stat().st_mtime_ns
    r = wasmlet(manifest, data_dir=data)
    assert r.rc == 0
    assert cached[0].stat().st_mtime_ns == mtime  # read, not rewritten


def test_unrunnable_components(tmp_path, wasmlet):
    cases = {
        "reactor": "exports neither wasi:cli/run",
    }
    for name, want in cases.items():
        r = wasmlet(pod(tmp_path, name, [{"name": name}]))
        r.assert_healthy()
        c = r.container(name)
        assert c["reason"] == "StartError", r.err
        assert want in c["message"], c["message"]
    bad = tmp_path / "kv.json"
    doc = json.loads(pod(tmp_path, "kv", [{"name": "kv"}]).read_text())
    doc["spec"]["containers"][0]["image"] = str(EXAMPLES / "bad" / "component-keyvalue.wasm")
    bad.write_text(json.dumps(doc))
    r = wasmlet(bad)
    c = r.container("kv")
    assert c["reason"] == "StartError"
    assert "wasi:keyvalue/store@0.2.0" in c["message"]


# --- the network ------------------------------------------------------------------


class Listener:
    """A TCP echo on 127.0.0.1 for one connection at most (20 s)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.sock.settimeout(20)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        self.accepted += 1
        with conn:
            conn.settimeout(20)
            while True:
                data = conn.recv(4096)
                if not data:
                    break
                conn.sendall(data)

    def close(self):
        self.sock.close()
        self.thread.join(timeout=25)


LOCAL = {"wasmlet.dev/allow-local-network": "true"}


def test_tcp_to_loopback_needs_the_annotation(tmp_path, wasmlet):
    lst = Listener()
    try:
        args = ["127.0.0.1", str(lst.port), "over tcp"]
        r = wasmlet(pod(tmp_path, "denied", [{"name": "tcp-client", "args": args}]))
        r.assert_healthy()
        assert r.container("tcp-client")["exit"] == 1
        assert "access-denied" in r.err
        assert lst.accepted == 0
        r = wasmlet(pod(tmp_path, "allowed", [{"name": "tcp-client", "args": args}],
                        annotations=LOCAL))
        r.assert_healthy()
        assert r.rc == 0, r.err
        assert "[tcp-client] over tcp" in r.out_lines
    finally:
        lst.close()
    assert lst.accepted == 1


def test_name_lookup(tmp_path, wasmlet):
    r = wasmlet(pod(tmp_path, "lookup", [{"name": "lookup", "args": ["localhost"]}]))
    r.assert_healthy()
    assert r.rc == 0, r.err
    assert "[lookup] 127.0.0.1" in r.out_lines or "[lookup] ::1" in r.out_lines


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"hello over http\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_http_get_from_loopback(tmp_path, wasmlet):
    srv = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        url = f"http://127.0.0.1:{srv.server_port}/"
        r = wasmlet(pod(tmp_path, "get", [{"name": "http-get", "args": [url]}],
                        annotations=LOCAL))
        r.assert_healthy()
        assert r.rc == 0, r.err
        assert r.out_lines == ["[http-get] status: 200", "[http-get] hello over http"]
        # An allow-list without 127.0.0.1: denied inside the component.
        ann = dict(LOCAL, **{"wasmlet.dev/http-allowed-hosts": "example.com"})
        r = wasmlet(pod(tmp_path, "listed", [{"name": "http-get", "args": [url]}],
                        annotations=ann))
        assert r.container("http-get")["exit"] == 1
        assert "HTTP-request-denied" in r.err
        # Without the annotation, loopback is the node's: denied.
        r = wasmlet(pod(tmp_path, "plain", [{"name": "http-get", "args": [url]}]))
        assert r.container("http-get")["exit"] == 1
        assert "HTTP-request-denied" in r.err
    finally:
        srv.shutdown()
        srv.server_close()


def test_network_none(tmp_path, wasmlet):
    lst = Listener()
    try:
        ann = dict(LOCAL, **{"wasmlet.dev/network": "none"})
        containers = [
            {"name": "tcp", "image": "tcp-client", "args": ["127.0.0.1", str(lst.port)]},
            {"name": "lookup", "args": ["localhost"]},
            {"name": "http", "image": "http-get", "args": [f"http://127.0.0.1:{lst.port}/"]},
        ]
        r = wasmlet(pod(tmp_path, "none", containers, annotations=ann))
        r.assert_healthy()
        for name in ("tcp", "lookup", "http"):
            assert r.container(name)["exit"] == 1, r.err
        assert "[tcp] tcp-client: " in r.err
        assert "[lookup] lookup: localhost: " in r.err
        assert "HTTP-request-denied" in r.err
        assert lst.accepted == 0
    finally:
        lst.close()


def test_bad_annotation_is_a_config_error(tmp_path, wasmlet):
    r = wasmlet(pod(tmp_path, "bad", [{"name": "hello"}],
                    annotations={"wasmlet.dev/network": "sometimes"}))
    c = r.container("hello")
    assert c["reason"] == "CreateContainerConfigError"
    assert "wasmlet.dev/network" in c["message"]
