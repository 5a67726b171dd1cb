"""WASI preview 2 components as the containers of pods on a real node.

The twins of the core-module e2e behaviours, with the component twins of
the examples (build/examples/<name>.component.wasm) pushed by `wasmlet push`
to the cluster's registry: the CNCF wasm artifact they are published as,
exit codes, traps, OOMKilled, the stop of a spinning and of a blocked
component, mounts read-only and read-write, escape attempts failing, logs
(`kubectl logs`) and compile-cache hits (the node's /metrics, across a
restart of the node).

The network of a component, in its pod's own network namespace: a portless
component pod gets a sandbox of its own (a core module beside it does not),
a component connects over TCP to another component pod's listener, resolves
`localhost` and fetches a URL from a test HTTP server; the
wasmlet.dev/network: none opt-out refuses all three inside the component.

Network safety: the listener is a pod (inside a namespace wasmlet made);
the HTTP server runs inside a namespace this test makes (ClientNamespace of
test_pod_network: a veth to the host, routes only for the cluster's /15),
bounded in time. Nothing else is reached.
"""

import hashlib
import ipaddress
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from container_kit import (attach, container, create_pod, examples_dir, logs, push,
                           start_module_node, terminated, unique_module, wait_done, wait_log)
from kubetest import restart_node, wait_for
from netkit import ClientNamespace, kube_proxy_serves
from test_kubelet_api import apiserver_client, get, samples, wait_signed_serving

COMPONENTS = ("hello", "exitcode", "exit-code", "trap", "recurse", "spin", "sleeper", "files", "ticker",
              "tcp-echo", "tcp-client", "lookup", "http-get")
CLUSTER_CIDR = ipaddress.ip_network("198.18.0.0/15")
WASM_CONFIG = "application/vnd.wasm.config.v0+json"


def component_path(name):
    path = examples_dir() / f"{name}.component.wasm"
    if not path.is_file():
        pytest.skip(f"the component examples are not built ({path})")
    return path


@pytest.fixture(scope="module")
def comp_node(cluster, tmp_path_factory):
    mnode = start_module_node(cluster, tmp_path_factory, "comp")
    try:
        mnode.images = {n: push(cluster, component_path(n), f"comp/{n}") for n in COMPONENTS}
        mnode.images["ticker-module"] = push(cluster, "ticker", "comp/ticker-module")
        wait_signed_serving(cluster, mnode.node)
        yield mnode
    finally:
        mnode.factory.teardown()


@pytest.fixture
def node(comp_node, request):
    attach(request, comp_node)
    return comp_node


def c(node, name, image=None, args=None, **extra):
    return container(name, node.images[image or name], args=args, **extra)


def run(cluster, node, ns, name, containers, timeout=90, **spec):
    """Creates the pod, waits for its end; returns (pod, {container: (exit, reason, output)})."""
    create_pod(cluster, ns, name, node.node, containers, **spec)
    p = wait_done(cluster, ns, name, timeout)
    out = {}
    for key in ("initContainerStatuses", "containerStatuses"):
        for s in p["status"].get(key) or []:
            t = s["state"].get("terminated") or {}
            out[s["name"]] = (t.get("exitCode"), t.get("reason"),
                              logs(cluster, node.node, ns, name, s["name"]))
    return p, out


def pod_ip(cluster, ns, name, timeout=60):
    def check():
        p = cluster.pod(ns, name) or {}
        st = p.get("status", {})
        return st.get("podIP") if st.get("phase") == "Running" else None

    return wait_for(check, timeout, desc=f"{ns}/{name} Running with a podIP")


def metrics(cluster, node):
    cert, key = apiserver_client(cluster)
    st, text = get(cluster, node, "/metrics", cert=cert, key=key)
    assert st == 200, text[:300]
    return samples(text, "wasmlet_module_loads_total")


# --- images -----------------------------------------------------------------------


def test_push_publishes_a_component_as_the_cncf_wasm_artifact(cluster, node):
    reg = cluster.registry_client()
    st, _, body = reg.get_manifest("comp/hello", "v1")
    assert st == 200
    m = json.loads(body)
    wasm = component_path("hello").read_bytes()
    assert m["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert m["config"]["mediaType"] == WASM_CONFIG
    assert [(lay["mediaType"], lay["digest"], lay["size"]) for lay in m["layers"]] == [
        ("application/wasm", "sha256:" + hashlib.sha256(wasm).hexdigest(), len(wasm))]
    st, _, cfg = reg.get_blob("comp/hello", m["config"]["digest"])
    cfg = json.loads(cfg)
    assert cfg["architecture"] == "wasm" and cfg["os"] == "wasip2"
    assert cfg["layerDigests"] == [m["layers"][0]["digest"]]
    comp = cfg["component"]
    assert [e.rpartition("@")[0] for e in comp["exports"]] == ["wasi:cli/run"]
    # The world, from the entry point it exports, at that export's version.
    assert comp["target"] == "wasi:cli/command@" + comp["exports"][0].rpartition("@")[2]
    imports = {i.rpartition("@")[0] for i in comp["imports"]}
    assert {"wasi:cli/exit", "wasi:cli/stdout", "wasi:filesystem/preopens"} <= imports, imports
    assert all(i.startswith("wasi:") and "@0.2." in i for i in comp["imports"])
    # The core module twin stays wasip1, with no component field.
    st, _, body = reg.get_manifest("comp/ticker-module", "v1")
    m = json.loads(body)
    st, _, cfg = reg.get_blob("comp/ticker-module", m["config"]["digest"])
    cfg = json.loads(cfg)
    assert cfg["os"] == "wasip1" and "component" not in cfg


# --- what a component container gets ---------------------------------------------


def test_exit_codes_traps_and_oom(cluster, node, namespace):
    pods = {
        "ok": c(node, "app", "hello"),
        "exit3": c(node, "app", "exitcode", ["3", "three"]),
        "code42": c(node, "app", "exit-code", ["42", "forty-two"]),
        "trap": c(node, "app", "trap"),
        "deep": c(node, "app", "recurse"),
        "oom": c(node, "app", "hello", resources={"limits": {"memory": "64Ki"}}),
    }
    for name, ctr in pods.items():
        create_pod(cluster, namespace, name, node.node, [ctr])
    done = {name: wait_done(cluster, namespace, name, 90) for name in pods}
    for name, p in done.items():
        assert p["status"]["containerStatuses"][0]["restartCount"] == 0, name
    t = terminated(done["ok"])
    assert (t["exitCode"], t["reason"]) == (0, "Completed")
    assert done["ok"]["status"]["phase"] == "Succeeded"
    assert logs(cluster, node.node, namespace, "ok", "app") == "Hello from wasmlet!\n"
    # exit(3) through the preview-1 adapter is wasi:cli/exit's err: 1.
    t = terminated(done["exit3"])
    assert (t["exitCode"], t["reason"]) == (1, "Error")
    assert "three" in logs(cluster, node.node, namespace, "exit3", "app")
    # wasi:cli/exit's exit-with-code carries the component's own code.
    t = terminated(done["code42"])
    assert (t["exitCode"], t["reason"]) == (42, "Error")
    assert "forty-two" in logs(cluster, node.node, namespace, "code42", "app")
    t = terminated(done["trap"])
    assert (t["exitCode"], t["reason"]) == (134, "Error")
    assert "unreachable" in t.get("message", ""), t
    t = terminated(done["deep"])
    assert t["exitCode"] == 134
    assert t.get("message", "").startswith("wasm trap: call stack exhausted"), t
    # A limit below the component's memories (all of them together).
    t = terminated(done["oom"])
    assert (t["exitCode"], t["reason"]) == (137, "OOMKilled")
    assert logs(cluster, node.node, namespace, "oom", "app") == ""
    for name in ("exit3", "code42", "trap", "deep", "oom"):
        assert done[name]["status"]["phase"] == "Failed", name


def test_stop_of_a_spinning_and_a_blocked_component(cluster, node, namespace):
    # Spinning: the deadline stops it.
    create_pod(cluster, namespace, "spin", node.node, [c(node, "app", "spin")],
               activeDeadlineSeconds=2)
    p = wait_done(cluster, namespace, "spin", 30)
    assert p["status"]["phase"] == "Failed"
    assert p["status"].get("reason") == "DeadlineExceeded", p["status"]
    assert terminated(p)["exitCode"] == 137
    assert "spinning" in logs(cluster, node.node, namespace, "spin", "app")

    # Blocked in a sleep (a wait inside the host): deletion stops it well
    # inside the 30 s grace period.
    create_pod(cluster, namespace, "sleeper", node.node, [c(node, "app", "sleeper", ["3600"])])
    wait_log(cluster, node.node, namespace, "sleeper", "app", r"^sleeping 3600$", 60)
    t0 = time.monotonic()
    cluster.kubectl(["delete", "pod", "sleeper", "-n", namespace, "--wait=false"], json=False)
    wait_for(lambda: cluster.pod(namespace, "sleeper") is None, 25, interval=0.1,
             desc="the sleeping component's pod removed")
    took = time.monotonic() - t0
    assert took < 10, f"deletion of a blocked component took {took:.1f} s"
    killing = [e for e in cluster.events(namespace, "sleeper") if e["reason"] == "Killing"]
    assert killing


def test_mounts_and_escapes(cluster, node, namespace, tmp_path):
    host = tmp_path / "host"
    host.mkdir()
    (host / "given.txt").write_text("from the host")
    secret = tmp_path / "secret.txt"
    secret.write_text("host secret")
    rw = tmp_path / "rw"
    rw.mkdir()
    (rw / "link").symlink_to(secret)
    os.chmod(tmp_path, 0o755)
    volumes = [{"name": "ro", "hostPath": {"path": str(host)}},
               {"name": "rw", "hostPath": {"path": str(rw)}},
               {"name": "scratch", "emptyDir": {}}]
    mounts = [{"name": "ro", "mountPath": "/ro", "readOnly": True},
              {"name": "rw", "mountPath": "/rw"},
              {"name": "scratch", "mountPath": "/scratch"}]

    def files(name, *args):
        return c(node, name, "files", list(args), volumeMounts=mounts)

    p, out = run(cluster, node, namespace, "files", [
        files("reader", "cat", "/scratch/x"),
        files("roread", "cat", "/ro/given.txt"),
        files("rowrite", "write", "/ro/new.txt", "x"),
        files("escape", "write", "/rw/link", "pwned"),
        files("climb", "cat", "/rw/../../etc/passwd"),
        files("absolute", "cat", "/etc/passwd"),
        files("rwwrite", "write", "/rw/out.txt", "ok"),
    ], volumes=volumes, initContainers=[files("writer", "write", "/scratch/x", "from-init")])
    assert out["writer"][0] == 0, out["writer"]
    assert out["reader"][0] == 0 and out["reader"][2].rstrip("\n") == "from-init", out["reader"]
    assert out["roread"][0] == 0 and out["roread"][2].rstrip("\n") == "from the host", out["roread"]
    assert out["rwwrite"][0] == 0, out["rwwrite"]
    for name in ("rowrite", "escape", "climb", "absolute"):
        assert out[name][0] != 0, (name, out[name])
        assert "root:" not in out[name][2]
    assert not (host / "new.txt").exists()
    assert secret.read_text() == "host secret"
    assert (rw / "out.txt").read_text() == "ok"


def test_logs_and_compile_cache_hits(cluster, node, namespace, tmp_path):
    # A digest no store has seen: compiled once, then loaded from memory,
    # then (after a restart of the node) from the disk cache.
    unique = unique_module("ticker.component", tmp_path)
    image = push(cluster, unique, "comp/ticker-unique")
    before = metrics(cluster, node)

    def ticker(name):
        create_pod(cluster, namespace, name, node.node,
                   [container("app", image, args=["100", "3"])])
        p = wait_done(cluster, namespace, name, 60)
        assert terminated(p)["exitCode"] == 0
        text = logs(cluster, node.node, namespace, name, "app")
        lines = text.splitlines()
        assert "ticker started" in lines, text
        assert [ln for ln in lines if ln.startswith("tick ")] == [
            "tick 1 alive", "tick 2 alive", "tick 3 alive"], text
        return p

    ticker("first")
    after = metrics(cluster, node)
    assert after['{source="compiler"}'] == before['{source="compiler"}'] + 1, (before, after)
    digest = hashlib.sha256(unique.read_bytes()).hexdigest()
    cached = node.data_dir / "modules" / "compiled" / f"{digest}.cwasm"
    assert cached.is_file(), sorted(p.name for p in cached.parent.iterdir())
    mtime = cached.stat().st_mtime_ns
    # kubectl logs, through the node's API, shows both streams of the run.
    out = cluster.kubectl(["logs", "-n", namespace, "first", "-c", "app"], json=False)
    assert "tick 3 alive" in out and "ticker started" in out

    # A restart of the node: the compiled component comes back from disk.
    node.node.signal(signal.SIGTERM)
    node.node.proc.wait(30)
    restart_node(node.factory, node.node)
    wait_signed_serving(cluster, node.node)
    ticker("second")
    loads = metrics(cluster, node)
    assert loads['{source="disk"}'] >= 1, loads
    assert loads['{source="compiler"}'] == 0, loads  # counters restart with the process
    assert cached.stat().st_mtime_ns == mtime  # read, not rewritten


# --- the network ---------------------------------------------------------------------

root_only = pytest.mark.skipif(os.geteuid() != 0,
                               reason="pod networking needs root (network namespaces)")


@root_only
def test_portless_component_pod_gets_its_own_network(cluster, node, namespace):
    """--skip-sandbox-without-ports (the default) skips a portless core
    module's sandbox, never a component's: a component has sockets."""
    create_pod(cluster, namespace, "comp", node.node, [c(node, "app", "ticker", ["500"])],
               restart="Always")
    create_pod(cluster, namespace, "mod", node.node,
               [c(node, "app", "ticker-module", ["500"])], restart="Always")
    comp_ip = pod_ip(cluster, namespace, "comp")
    mod_ip = pod_ip(cluster, namespace, "mod")
    assert ipaddress.ip_address(comp_ip) in CLUSTER_CIDR, comp_ip
    assert mod_ip == "127.0.0.1"
    uid = cluster.pod(namespace, "comp")["metadata"]["uid"]
    assert (node.data_dir / "net" / "sandboxes" / uid / "sandbox.json").is_file()
    mod_uid = cluster.pod(namespace, "mod")["metadata"]["uid"]
    assert not (node.data_dir / "net" / "sandboxes" / mod_uid).exists()


HTTP_SERVER = r"""
import http.server, sys, threading, time
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"hello from the pod network\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        print("served", self.path, flush=True)
srv = http.server.HTTPServer(("0.0.0.0", int(sys.argv[1])), H)
threading.Timer(float(sys.argv[2]), srv.shutdown).start()
print("listening", flush=True)
srv.serve_forever()
"""


@root_only
def test_tcp_name_lookup_and_http_from_a_pod(cluster, node, namespace):
    # The listener: a component in a pod of its own, serving up to eight
    # connections (a try through the Service before kube-proxy has its
    # rules may take one).
    create_pod(cluster, namespace, "echo", node.node,
               [c(node, "app", "tcp-echo", ["7000", "8"],
                  ports=[{"containerPort": 7000}])])
    echo_ip = pod_ip(cluster, namespace, "echo")
    assert ipaddress.ip_address(echo_ip) in CLUSTER_CIDR
    wait_log(cluster, node.node, namespace, "echo", "app", r"listening on 0\.0\.0\.0:7000", 30)

    with ClientNamespace() as ns:
        server = subprocess.Popen(["ip", "netns", "exec", ns.name, sys.executable, "-c",
                                   HTTP_SERVER, "8080", "120"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert server.stdout.readline().strip() == "listening", server.stderr.read()
            url = f"http://{ns.ip}:8080/fetch"

            def clients():
                return [c(node, "tcp", "tcp-client", [echo_ip, "7000", "over tcp"]),
                        c(node, "lookup", "lookup", ["localhost"]),
                        c(node, "http", "http-get", [url])]

            p, out = run(cluster, node, namespace, "client", clients())
            assert p["status"]["phase"] == "Succeeded", (p["status"], out)
            client_ip = p["status"]["podIP"]
            assert ipaddress.ip_address(client_ip) in CLUSTER_CIDR and client_ip != echo_ip
            assert out["tcp"][2] == "over tcp\n", out["tcp"]
            assert set(out["lookup"][2].split()) & {"127.0.0.1", "::1"}, out["lookup"]
            assert out["http"][2] == "status: 200\nhello from the pod network\n", out["http"]
            wait_log(cluster, node.node, namespace, "echo", "app", r"^connection 1: 9 bytes$", 10)

            # The same through a ClusterIP Service in front of the echo pod.
            via_service = kube_proxy_serves(cluster)
            if via_service:
                svc_ip = echo_service(cluster, namespace, echo_ip)
                # Bounded: until kube-proxy has the rules. A kube-proxy just
                # started waits up to 30 s for a Node of its own name (the
                # local cluster has none) before it programs anything, so
                # run first in a fresh cluster this takes that long.
                deadline = time.monotonic() + 75
                attempt = 0
                while True:
                    p, out = run(cluster, node, namespace, f"viasvc-{attempt}",
                                 [c(node, "tcp", "tcp-client", [svc_ip, "7000", "via service"])])
                    attempt += 1
                    if p["status"]["phase"] == "Succeeded" or time.monotonic() > deadline:
                        break
                    time.sleep(2)
                assert p["status"]["phase"] == "Succeeded", (p["status"], out)
                # The echo came back from the echo pod, the Service's one
                # endpoint.
                assert out["tcp"][2] == "via service\n", out["tcp"]

            # The opt-out: no sockets, no lookup, no HTTP, each refused inside
            # the component with the WASI error that says so.
            p, out = run(cluster, node, namespace, "none", clients(),
                         annotations={"wasmlet.dev/network": "none"})
            assert p["status"]["phase"] == "Failed"
            for name in ("tcp", "lookup", "http"):
                assert out[name][:2] == (1, "Error"), (name, out[name])
            assert out["tcp"][2].startswith("tcp-client: "), out["tcp"]
            assert out["lookup"][2].startswith("lookup: localhost: "), out["lookup"]
            assert "HTTP-request-denied" in out["http"][2], out["http"]
        finally:
            server.terminate()
            try:
                served = server.communicate(timeout=10)[0]
            except subprocess.TimeoutExpired:
                server.kill()
                served = server.communicate()[0]
    # One GET reached the server: the refused one never left its pod.
    assert served.count("served /fetch") == 1, served
    if not via_service:
        # Not counted as a pass: the Service part did not run.
        pytest.skip("another cluster's kube-proxy serves this machine: the ClusterIP part "
                    "was not checked")


def echo_service(cluster, ns, echo_ip):
    """A ClusterIP Service (port 7000) in front of the echo pod, once its
    EndpointSlice lists the pod; returns the ClusterIP."""
    cluster.kubectl(["label", "pod", "echo", "-n", ns, "app=echo"], json=False)
    cluster.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "echo"},
                    "spec": {"selector": {"app": "echo"},
                             "ports": [{"port": 7000, "targetPort": 7000}]}}, ns)

    def listed():
        items = cluster.list("endpointslices", ns, selector="kubernetes.io/service-name=echo")
        return [a for s in items for e in s.get("endpoints") or [] for a in e["addresses"]
                if (e.get("conditions") or {}).get("ready")] == [echo_ip]

    wait_for(listed, 60, desc="the echo pod in the Service's EndpointSlice")
    return cluster.get("service", "echo", ns)["spec"]["clusterIP"]
