"""Probes and lifecycle hooks on a wasmlet node, against the real control
plane (issue 15, "Probes, as the kubelet runs them").

The containers are core modules (ticker): they cannot listen, so every
network probe here goes to a closed port on the pod's IP (today the node's,
127.0.0.1) and fails as any probe of a closed port does. Probes that pass
need a listener (components, pod networking): the unit tests
(tests/unit/test_probe.c) cover them against in-process listeners.

The tests share one node (--backoff-initial 500, so restarts turn in
seconds) and each works in a namespace of its own.
"""

import time

from kubetest import condition, free_ports, wait_for, wasm_container, wasm_pod


def pod_where(cluster, ns, name, pred, timeout=60, desc=None):
    def check():
        p = cluster.pod(ns, name)
        return p if p and pred(p) else None

    return wait_for(check, timeout, desc=desc or f"pod {ns}/{name}")


def cstatus(pod):
    return (pod.get("status", {}).get("containerStatuses") or [None])[0] or {}


def cond(pod, ctype):
    return (condition(pod, ctype) or {}).get("status")


def events(cluster, ns, name, reason):
    return [e for e in cluster.events(ns, name) if e["reason"] == reason]


def closed_port():
    """A loopback port nothing listens on."""
    return free_ports(1)[0]


def ticker(**extra):
    return wasm_container("app", TICKER, ["1000"], **extra)


TICKER = None


def image(wasm_images):
    global TICKER
    TICKER = wasm_images["ticker"][0]


def test_liveness_failure_restarts_with_events_and_backoff(cluster, shared_wasmlet_node,
                                                            namespace, wasm_images):
    image(wasm_images)
    node = shared_wasmlet_node
    port = closed_port()
    c = ticker(livenessProbe={"httpGet": {"path": "/healthz", "port": port},
                              "periodSeconds": 1, "failureThreshold": 2})
    cluster.create(wasm_pod("live", [c], node=node.name, restart_policy="Always"), namespace)
    pod = pod_where(cluster, namespace, "live", lambda p: cstatus(p).get("restartCount", 0) >= 2,
                    90, "restartCount >= 2")
    last = cstatus(pod)["lastState"].get("terminated") or {}
    assert last.get("exitCode") == 137
    unhealthy = events(cluster, namespace, "live", "Unhealthy")
    killing = wait_for(lambda: events(cluster, namespace, "live", "Killing"), 30)
    assert unhealthy, "no Unhealthy event"
    u = unhealthy[0]
    assert u["type"] == "Warning"
    assert u["message"].startswith("Liveness probe failed: Get \"http://127.0.0.1:")
    assert "connection refused" in u["message"]
    assert u["involvedObject"].get("fieldPath") == "spec.containers{app}"
    k = [e for e in killing if "failed liveness probe" in e["message"]]
    assert k, [e["message"] for e in killing]
    assert k[0]["message"] == "Container app failed liveness probe, will be restarted"
    assert k[0]["type"] == "Normal"
    # Unhealthy came first (the failures that reached the threshold).
    assert u["firstTimestamp"] <= k[0]["firstTimestamp"]
    # Back-off: the second restart waited in CrashLoopBackOff.
    backoff = wait_for(lambda: events(cluster, namespace, "live", "BackOff"), 60)
    assert "back-off" in backoff[0]["message"]
    # Every run got its own Unhealthy failures: the count grows with restarts.
    assert sum(e.get("count", 1) for e in unhealthy) >= 2


def test_failing_readiness_keeps_pod_not_ready(cluster, shared_wasmlet_node, namespace,
                                               wasm_images):
    image(wasm_images)
    node = shared_wasmlet_node
    c = ticker(readinessProbe={"tcpSocket": {"port": closed_port()}, "periodSeconds": 1})
    cluster.create(wasm_pod("unready", [c], node=node.name, restart_policy="Always"), namespace)
    wait_for(lambda: events(cluster, namespace, "unready", "Unhealthy"), 60)
    pod = pod_where(cluster, namespace, "unready",
                    lambda p: p["status"].get("phase") == "Running", 30)
    time.sleep(3)
    pod = cluster.pod(namespace, "unready")
    s = cstatus(pod)
    assert "running" in s["state"]
    assert s["ready"] is False
    assert s["started"] is True
    assert s["restartCount"] == 0  # readiness never restarts
    assert cond(pod, "Ready") == "False"
    assert cond(pod, "ContainersReady") == "False"
    ev = events(cluster, namespace, "unready", "Unhealthy")[0]
    assert ev["message"].startswith("Readiness probe failed: dial tcp 127.0.0.1:")
    assert ev["message"].endswith("connect: connection refused")


def test_failing_startup_holds_readiness_back(cluster, shared_wasmlet_node, namespace,
                                             wasm_images):
    image(wasm_images)
    node = shared_wasmlet_node
    # The readiness probe (exec) would post Unhealthy events if it ran: it
    # must not while the startup probe has not passed.
    c = ticker(startupProbe={"tcpSocket": {"port": closed_port()}, "periodSeconds": 1,
                             "failureThreshold": 1000},
               readinessProbe={"exec": {"command": ["true"]}, "periodSeconds": 1})
    cluster.create(wasm_pod("starting", [c], node=node.name, restart_policy="Always"), namespace)
    wait_for(lambda: len(events(cluster, namespace, "starting", "Unhealthy")) >= 1, 60)
    time.sleep(4)
    pod = cluster.pod(namespace, "starting")
    s = cstatus(pod)
    assert "running" in s["state"]
    assert s["started"] is False
    assert s["ready"] is False
    assert cond(pod, "Ready") == "False"
    msgs = [e["message"] for e in events(cluster, namespace, "starting", "Unhealthy")]
    assert all(m.startswith("Startup probe failed: ") for m in msgs), msgs
    assert sum(e.get("count", 1) for e in events(cluster, namespace, "starting",
                                                 "Unhealthy")) >= 3


def test_exec_probe_is_reported_impossible(cluster, shared_wasmlet_node, namespace, wasm_images):
    image(wasm_images)
    node = shared_wasmlet_node
    c = ticker(readinessProbe={"exec": {"command": ["cat", "/tmp/ready"]}, "periodSeconds": 2})
    cluster.create(wasm_pod("execd", [c], node=node.name, restart_policy="Always"), namespace)
    ev = wait_for(lambda: events(cluster, namespace, "execd", "Unhealthy"), 60)[0]
    assert ev["type"] == "Warning"
    assert ev["message"].startswith("Readiness probe failed: ")
    assert "no process to exec in" in ev["message"]
    pod = cluster.pod(namespace, "execd")
    assert cstatus(pod)["ready"] is False
    assert not events(cluster, namespace, "execd", "ProbeUnsupported")


def deletion_seconds(cluster, namespace, name):
    t0 = time.monotonic()
    cluster.delete("pod", name, namespace)
    wait_for(lambda: cluster.pod(namespace, name) is None, 60, interval=0.2,
             desc=f"pod {name} gone")
    return time.monotonic() - t0


def test_prestop_sleep_delays_termination(cluster, shared_wasmlet_node, namespace, wasm_images):
    image(wasm_images)
    node = shared_wasmlet_node
    slow = ticker(lifecycle={"preStop": {"sleep": {"seconds": 4}}})
    fast = ticker()
    cluster.create(wasm_pod("slow", [slow], node=node.name, restart_policy="Always",
                            terminationGracePeriodSeconds=20), namespace)
    cluster.create(wasm_pod("fast", [fast], node=node.name, restart_policy="Always",
                            terminationGracePeriodSeconds=20), namespace)
    for name in ("slow", "fast"):
        pod_where(cluster, namespace, name, lambda p: cond(p, "Ready") == "True", 60)
    t_slow = deletion_seconds(cluster, namespace, "slow")
    t_fast = deletion_seconds(cluster, namespace, "fast")
    print(f"deletion: with a 4 s preStop sleep {t_slow:.1f} s, without {t_fast:.1f} s")
    assert t_slow >= 3.8
    assert t_slow < 15
    assert t_fast < t_slow - 2.5


def test_failing_poststart_http_hook(cluster, shared_wasmlet_node, namespace, wasm_images):
    image(wasm_images)
    node = shared_wasmlet_node
    c = ticker(lifecycle={"postStart": {"httpGet": {"path": "/started", "port": closed_port()}}})
    cluster.create(wasm_pod("hooked", [c], node=node.name, restart_policy="Always"), namespace)
    ev = wait_for(lambda: events(cluster, namespace, "hooked", "FailedPostStartHook"), 60)[0]
    assert ev["type"] == "Warning"
    assert "connection refused" in ev["message"]
    killing = wait_for(lambda: [e for e in events(cluster, namespace, "hooked", "Killing")
                                if e["message"] == "FailedPostStartHook"], 30)
    assert ev["firstTimestamp"] <= killing[0]["firstTimestamp"]
    pod_where(cluster, namespace, "hooked", lambda p: cstatus(p).get("restartCount", 0) >= 1, 60,
              "restartCount >= 1")


def test_failing_exec_prestop_hook_still_stops(cluster, shared_wasmlet_node, namespace,
                                               wasm_images):
    image(wasm_images)
    node = shared_wasmlet_node
    c = ticker(lifecycle={"preStop": {"exec": {"command": ["true"]}}})
    cluster.create(wasm_pod("execstop", [c], node=node.name, restart_policy="Always"), namespace)
    pod_where(cluster, namespace, "execstop", lambda p: cond(p, "Ready") == "True", 60)
    assert deletion_seconds(cluster, namespace, "execstop") < 10
    evs = wait_for(lambda: events(cluster, namespace, "execstop", "FailedPreStopHook"), 30)
    assert "no process to exec in" in evs[0]["message"]
