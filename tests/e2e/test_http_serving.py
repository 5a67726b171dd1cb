"""Serving wasi:http components from wasm pods, end to end (issue 15): a
Deployment of the hello component behind a ClusterIP Service, readiness
taking a pod out of the EndpointSlice and back, liveness restarting a
served container, a startup probe holding readiness back, a trapping
request answered 500 with the pod left Running, and a rollout restart under
a steady request loop that drops nothing.

The component is examples/components/http-hello.c: `/whoami` answers with
$POD_NAME, `/ready` with 200 or 503 as the file $READY_FILE exists or not
(a key of a mounted ConfigMap, so the tests flip it with kubectl), `/trap`
traps.

Network safety: requests go to the Service's ClusterIP only from inside a
client namespace the test makes (netkit.ClientNamespace), and to pod IPs;
every loop is bounded in count and time.
"""

import http.client
import json
import os
import ssl
import time

import pytest

from kubetest import condition, wait_for, wasm_container, wasm_pod, wasm_pod_spec
from netkit import ClientNamespace, kube_proxy_serves

pytestmark = pytest.mark.skipif(os.geteuid() != 0,
                                reason="pod networking needs root (network namespaces)")

IMAGE = "http-hello.component"

# A steady request loop (a fresh connection per request) until the stop
# file appears, max_s seconds pass or max_n requests are made; prints a JSON
# summary. Run inside the client namespace.
LOAD = r"""
import http.client, json, os, sys, time
ip, port, path, stop_file = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
max_s, max_n = float(sys.argv[5]), int(sys.argv[6])
ok = n = 0
failures = []
end = time.time() + max_s
while time.time() < end and n < max_n and not os.path.exists(stop_file):
    n += 1
    try:
        c = http.client.HTTPConnection(ip, port, timeout=5)
        c.request("GET", path)
        r = c.getresponse()
        r.read()
        c.close()
        if r.status == 200:
            ok += 1
        else:
            failures.append("status %d" % r.status)
    except OSError as e:
        failures.append("%s: %s" % (type(e).__name__, e))
    time.sleep(0.02)
print(json.dumps({"requests": n, "ok": ok, "failed": len(failures), "failures": failures[:20]}))
"""


def image(wasm_images):
    if IMAGE not in wasm_images:
        pytest.fail(f"{IMAGE} is not built (build/examples/{IMAGE}.wasm): the component "
                    "toolchain is missing")
    return wasm_images[IMAGE][0]


def hello(img, ready_file="/flags/ready", **extra):
    env = [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
           {"name": "READY_FILE", "value": ready_file}]
    return wasm_container("web", img, env=env, mounts={"/flags": "flags"},
                          ports=[{"containerPort": 8080, "name": "http"}], **extra)


def flags_volume(name="flags"):
    return [{"name": "flags", "configMap": {"name": name}}]


def configmap(name, keys):
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
            "data": {k: "1" for k in keys}}


def set_flag(cluster, ns, cm, key, on):
    patch = ({"data": {key: "1"}} if on else
             [{"op": "remove", "path": f"/data/{key}"}])
    cluster.kubectl(["patch", "configmap", cm, "-n", ns, "--type",
                     "merge" if on else "json", "-p", json.dumps(patch)], json=False)


def service(name, selector):
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": selector,
                     "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}


def ready_probe(path="/ready", **extra):
    p = {"httpGet": {"path": path, "port": "http"}, "periodSeconds": 1, "failureThreshold": 1}
    p.update(extra)
    return p


def node_api(cluster, node, path="/metrics"):
    """A path of the node's HTTPS API, as the API server asks for it (its
    kubelet client certificate)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.load_cert_chain(cluster.env["WASMLET_APISERVER_KUBELET_CLIENT_CERT"],
                        cluster.env["WASMLET_APISERVER_KUBELET_CLIENT_KEY"])
    conn = http.client.HTTPSConnection("127.0.0.1", node.port, timeout=20, context=ctx)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        body = r.read().decode(errors="replace")
        assert r.status == 200, (r.status, body[:200])
        return body
    finally:
        conn.close()


def cstatus(pod):
    return (pod.get("status", {}).get("containerStatuses") or [None])[0] or {}


def is_ready(pod):
    return (condition(pod, "Ready") or {}).get("status") == "True"


def ready_endpoints(cluster, ns, svc):
    items = cluster.list("endpointslices", ns, selector=f"kubernetes.io/service-name={svc}")
    return sorted(a for s in items for e in s.get("endpoints") or []
                  for a in e["addresses"] if (e.get("conditions") or {}).get("ready"))


def events(cluster, ns, name, reason):
    return [e for e in cluster.events(ns, name) if e.get("reason") == reason]


def who_answers(client, ip, want, tries=300, seconds=120):
    """The replicas answering /whoami through ip:80, until want (a set) is
    seen or the bounds run out."""
    seen = {}
    end = time.monotonic() + seconds
    for _ in range(tries):
        if want <= set(seen) or time.monotonic() > end:
            break
        status, body = client.http_get(ip, 80, "/whoami")
        if status == 200:
            seen[body] = seen.get(body, 0) + 1
        else:
            time.sleep(0.3)  # Service rules not programmed yet
    return seen


@pytest.fixture
def proxy(cluster):
    if not kube_proxy_serves(cluster):
        pytest.skip("another cluster's kube-proxy serves this machine: Services cannot be "
                    "checked here")


def test_deployment_behind_service_trap_and_rollout_without_drops(
        cluster, shared_wasmlet_node, namespace, wasm_images, proxy, tmp_path):
    node = shared_wasmlet_node
    img = image(wasm_images)
    cluster.create(configmap("flags", ["ready"]), namespace)
    c = hello(img, readinessProbe=ready_probe(),
              lifecycle={"preStop": {"sleep": {"seconds": 3}}})
    spec = wasm_pod_spec([c], node=node.name, restart_policy="Always",
                         volumes=flags_volume(), terminationGracePeriodSeconds=15)
    labels = {"app": "hello"}
    cluster.create({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "hello"},
                    "spec": {"replicas": 3, "selector": {"matchLabels": labels},
                             "template": {"metadata": {"labels": labels}, "spec": spec}}},
                   namespace)
    cluster.create(service("hello", labels), namespace)

    def three_ready():
        pods = cluster.list("pods", namespace, selector="app=hello")
        live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
        if len(live) != 3 or not all(is_ready(p) for p in live):
            return None
        return {p["metadata"]["name"]: p["status"]["podIP"] for p in live}

    pods = wait_for(three_ready, 120, desc="3 replicas Ready")
    wait_for(lambda: ready_endpoints(cluster, namespace, "hello") == sorted(pods.values()), 60,
             desc="EndpointSlice with the 3 ready pod IPs")
    # The serving mode and port are in the events.
    first = next(iter(pods))
    serving = wait_for(lambda: events(cluster, namespace, first, "Serving"), 30)
    assert "Serving wasi:http on 0.0.0.0:8080" in serving[0]["message"]
    started = events(cluster, namespace, first, "Started")
    assert "a wasi:http component, served on port 8080" in started[0]["message"]

    svc_ip = cluster.get("service", "hello", namespace)["spec"]["clusterIP"]
    with ClientNamespace() as client:
        # Each pod IP answers, and the ClusterIP reaches all three.
        for name, ip in pods.items():
            assert client.http_get(ip, 8080, "/whoami") == (200, name)
        seen = who_answers(client, svc_ip, set(pods))
        assert set(seen) == set(pods), f"through {svc_ip}:80 answered only {seen}"

        # A trapping request: 500, and the pod keeps Running, never restarted.
        status, body = client.http_get(svc_ip, 80, "/trap")
        assert status == 500 and "trapped" in body, (status, body)
        time.sleep(2)
        for name in pods:
            p = cluster.pod(namespace, name)
            assert p["status"]["phase"] == "Running"
            assert cstatus(p)["restartCount"] == 0 and is_ready(p)

        # A rollout restart under a steady request loop drops nothing.
        stop_file = tmp_path / "stop-load"
        load = client.popen("python3", "-c", LOAD, svc_ip, 80, "/whoami", stop_file, 240, 20000)
        try:
            time.sleep(2)
            cluster.kubectl(["rollout", "restart", "deployment/hello", "-n", namespace],
                            json=False)
            cluster.kubectl(["rollout", "status", "deployment/hello", "-n", namespace,
                             "--timeout=180s"], json=False, timeout=200)
            # The old pods are gone, not only replaced in the Deployment.
            wait_for(lambda: len(cluster.list("pods", namespace, selector="app=hello")) == 3,
                     90, desc="old replicas gone")
            time.sleep(3)
        finally:
            stop_file.write_text("stop")
            out, err = load.communicate(timeout=30)
        result = json.loads(out.strip().splitlines()[-1]) if out.strip() else {"err": err}
        print(f"rollout restart under load: {result}")
        assert result.get("requests", 0) >= 100, result
        assert result["failed"] == 0 and result["ok"] == result["requests"], result
        new = three_ready()
        assert new and not set(new) & set(pods), (new, pods)
        seen = who_answers(client, svc_ip, set(new))
        assert set(seen) == set(new), seen

    # The served requests are counted per pod in /metrics.
    metrics = node_api(cluster, node)
    new_pod = next(iter(new))
    ours = [line for line in metrics.splitlines()
            if line.startswith("wasmlet_served_requests_total{")
            and f'namespace="{namespace}"' in line and f'pod="{new_pod}"' in line]
    assert ours and any('code="2xx"' in line for line in ours), ours
    errors = [line for line in metrics.splitlines()
              if line.startswith("wasmlet_served_request_errors_total{")
              and f'namespace="{namespace}"' in line]
    assert errors, "no wasmlet_served_request_errors_total series"
    # ... and in /stats/summary, as user-defined metrics of the container.
    summary = json.loads(node_api(cluster, node, "/stats/summary"))
    pod = next(p for p in summary["pods"] if p["podRef"]["name"] == new_pod)
    udm = {m["name"]: m for c in pod["containers"] for m in c.get("userDefinedMetrics") or []}
    assert udm["served_requests"]["value"] >= 1, udm
    assert udm["served_requests"]["type"] == "cumulative"
    assert "served_request_errors" in udm and "served_request_seconds" in udm


def test_readiness_flip_moves_a_pod_out_of_the_service_and_back(
        cluster, shared_wasmlet_node, namespace, wasm_images, proxy):
    node = shared_wasmlet_node
    img = image(wasm_images)
    cluster.create(configmap("flags", ["flip-a", "flip-b"]), namespace)
    for name in ("flip-a", "flip-b"):
        c = hello(img, ready_file=f"/flags/{name}", readinessProbe=ready_probe())
        cluster.create(wasm_pod(name, [c], labels={"app": "flip"}, node=node.name,
                                restart_policy="Always", volumes=flags_volume()), namespace)
    cluster.create(service("flip", {"app": "flip"}), namespace)

    def ready_ips():
        out = {}
        for n in ("flip-a", "flip-b"):
            p = cluster.pod(namespace, n)
            if not p or not is_ready(p):
                return None
            out[n] = p["status"]["podIP"]
        return out

    ips = wait_for(ready_ips, 120, desc="both pods Ready")
    wait_for(lambda: ready_endpoints(cluster, namespace, "flip") == sorted(ips.values()), 60)
    svc_ip = cluster.get("service", "flip", namespace)["spec"]["clusterIP"]
    with ClientNamespace() as client:
        assert set(who_answers(client, svc_ip, {"flip-a", "flip-b"})) == {"flip-a", "flip-b"}

        # flip-a's flag goes: its readiness fails, it leaves the EndpointSlice,
        # and only flip-b answers through the Service.
        set_flag(cluster, namespace, "flags", "flip-a", False)
        wait_for(lambda: not is_ready(cluster.pod(namespace, "flip-a")), 60,
                 desc="flip-a not Ready")
        wait_for(lambda: ready_endpoints(cluster, namespace, "flip") == [ips["flip-b"]], 60,
                 desc="only flip-b in the EndpointSlice")
        unhealthy = events(cluster, namespace, "flip-a", "Unhealthy")
        assert any("Readiness probe failed: HTTP probe failed with statuscode: 503" in e["message"]
                   for e in unhealthy), [e["message"] for e in unhealthy]
        time.sleep(3)  # kube-proxy catches up
        answers = {}
        for _ in range(20):
            status, body = client.http_get(svc_ip, 80, "/whoami")
            answers[body] = answers.get(body, 0) + 1
        assert answers == {"flip-b": 20}, answers
        assert cluster.pod(namespace, "flip-a")["status"]["phase"] == "Running"

        # The flag comes back: so does flip-a.
        set_flag(cluster, namespace, "flags", "flip-a", True)
        wait_for(lambda: is_ready(cluster.pod(namespace, "flip-a")), 60, desc="flip-a Ready")
        seen = who_answers(client, svc_ip, {"flip-a", "flip-b"})
        assert set(seen) == {"flip-a", "flip-b"}, seen
    assert cstatus(cluster.pod(namespace, "flip-a"))["restartCount"] == 0


def test_liveness_restarts_a_served_container_with_backoff(cluster, shared_wasmlet_node,
                                                           namespace, wasm_images):
    node = shared_wasmlet_node
    img = image(wasm_images)
    cluster.create(configmap("flags", ["live"]), namespace)
    c = hello(img, ready_file="/flags/live", livenessProbe=ready_probe(failureThreshold=2))
    cluster.create(wasm_pod("live", [c], node=node.name, restart_policy="Always",
                            volumes=flags_volume()), namespace)
    wait_for(lambda: cstatus(cluster.pod(namespace, "live")).get("state", {}).get("running"), 60,
             desc="live Running")
    time.sleep(5)  # the probe passes: no restart
    assert cstatus(cluster.pod(namespace, "live"))["restartCount"] == 0
    assert not events(cluster, namespace, "live", "Killing")

    set_flag(cluster, namespace, "flags", "live", False)
    pod = wait_for(lambda: (lambda p: p if cstatus(p).get("restartCount", 0) >= 2 else None)(
        cluster.pod(namespace, "live")), 120, desc="restartCount >= 2")
    assert (cstatus(pod)["lastState"].get("terminated") or {}).get("exitCode") in (0, 137)
    unhealthy = events(cluster, namespace, "live", "Unhealthy")
    killing = [e for e in events(cluster, namespace, "live", "Killing")
               if "failed liveness probe" in e["message"]]
    assert unhealthy and killing
    # (A probe may also have found the port not yet listening at the start.)
    failed = [e for e in unhealthy
              if "Liveness probe failed: HTTP probe failed with statuscode: 503" in e["message"]]
    assert failed, [e["message"] for e in unhealthy]
    assert killing[0]["message"] == "Container web failed liveness probe, will be restarted"
    assert failed[0]["firstTimestamp"] <= killing[0]["firstTimestamp"]
    backoff = wait_for(lambda: events(cluster, namespace, "live", "BackOff"), 60)
    assert "back-off" in backoff[0]["message"]


def test_startup_probe_holds_readiness_back(cluster, shared_wasmlet_node, namespace,
                                            wasm_images):
    node = shared_wasmlet_node
    img = image(wasm_images)
    cluster.create(configmap("flags", ["ready"]), namespace)
    c = hello(img, ready_file="/flags/started",
              startupProbe=ready_probe(failureThreshold=120),
              readinessProbe=ready_probe(path="/whoami"))
    cluster.create(wasm_pod("slow", [c], node=node.name, restart_policy="Always",
                            volumes=flags_volume()), namespace)
    wait_for(lambda: cstatus(cluster.pod(namespace, "slow")).get("state", {}).get("running"), 60,
             desc="slow Running")
    time.sleep(5)
    p = cluster.pod(namespace, "slow")
    assert cstatus(p).get("started") is False and not is_ready(p)
    set_flag(cluster, namespace, "flags", "started", True)
    p = wait_for(lambda: (lambda p: p if is_ready(p) else None)(cluster.pod(namespace, "slow")),
                 60, desc="slow Ready once started")
    assert cstatus(p)["started"] is True and cstatus(p)["restartCount"] == 0
