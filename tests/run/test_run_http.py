"""`wasmlet run -f pod.yaml` with a wasi:http/proxy component: it serves on
loopback at the container's declared port until interrupted, so a developer
can try it without a cluster. The component is examples/components/http-hello.c.
Every request goes to 127.0.0.1.
"""
import http.client
import json
import signal
import socket
import time

from runhelp import EXAMPLES, stop_with


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pod(tmp_path, port, annotations=None, env=None):
    c = {"name": "web", "image": str(EXAMPLES / "http-hello.component.wasm"),
         "ports": [{"containerPort": port}]}
    if env:
        c["env"] = [{"name": k, "value": v} for k, v in env.items()]
    doc = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "web", "annotations": annotations or {}},
           "spec": {"restartPolicy": "Never", "containers": [c]}}
    path = tmp_path / "web.json"
    path.write_text(json.dumps(doc))
    return path


def get(port, path, timeout=5):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read().decode()
    finally:
        c.close()


def wait_serving(port, proc, timeout=20):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        assert proc.poll() is None, proc.communicate()
        try:
            return get(port, "/")
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing served on 127.0.0.1:{port} within {timeout}s")


def listening_addresses(port):
    """The local addresses of TCP sockets listening on port (from /proc)."""
    out = []
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            addr, p = local.split(":")
            if state == "0A" and int(p, 16) == port:
                out.append(socket.inet_ntoa(bytes.fromhex(addr)[::-1]))
    return out


def test_serves_on_loopback_until_interrupted(tmp_path, start_wasmlet):
    port = free_port()
    proc = start_wasmlet(pod(tmp_path, port, env={"POD_NAME": "dev"}))
    assert wait_serving(port, proc) == (200, "hello from wasmlet\n")
    assert listening_addresses(port) == ["127.0.0.1"]
    assert get(port, "/whoami") == (200, "dev\n")
    status, body = get(port, "/trap")
    assert status == 500 and "trapped" in body
    assert get(port, "/") == (200, "hello from wasmlet\n")  # still serving
    rc, seconds, out, err = stop_with(proc, signal.SIGINT, 20)
    assert rc == 0, err
    assert "[web] http: GET / 200 " in out
    assert "[web] http: GET /trap 500 " in out
    assert "wasmlet: GET /trap trapped: " in err and "unreachable" in err
    assert "web: exit 0, Completed" in err, err


def test_annotations_set_limits_and_turn_the_access_log_off(tmp_path, start_wasmlet):
    port = free_port()
    proc = start_wasmlet(pod(tmp_path, port, annotations={
        "wasmlet.dev/http-request-timeout": "300ms",
        "wasmlet.dev/http-access-log": "false",
    }))
    wait_serving(port, proc)
    t0 = time.monotonic()
    status, body = get(port, "/sleep?ms=10000")
    assert status == 504 and "timed out after 300 ms" in body
    assert time.monotonic() - t0 < 5
    rc, _, out, err = stop_with(proc, signal.SIGINT, 20)
    assert rc == 0, err
    assert "http: GET" not in out
    assert "GET /sleep?ms=10000 timed out" in err


def test_bad_annotation_is_a_config_error(tmp_path, wasmlet):
    r = wasmlet(pod(tmp_path, free_port(), annotations={"wasmlet.dev/http-max-in-flight": "0"}))
    c = r.container("web")
    assert c["reason"] == "CreateContainerConfigError", r.err
    assert "wasmlet.dev/http-max-in-flight" in c["message"]
    assert "not a whole number from 1 to 1000000" in c["message"]


def test_port_in_use_fails_the_start(tmp_path, wasmlet):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        r = wasmlet(pod(tmp_path, port))
    c = r.container("web")
    assert c["reason"] == "StartError", r.err
    assert f"cannot serve on 127.0.0.1:{port}: Address already in use" in c["message"]
