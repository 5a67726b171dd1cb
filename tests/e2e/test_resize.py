"""In-place pod resize (`kubectl patch pod --subresource resize`) on a
wasmlet node, against the real control plane: what the kubelet does, in
its words.

- NotRequired (the default resizePolicy): new cpu and memory limits reach
  the running module without a restart (a module that outgrows its old
  memory limit keeps running), shown in containerStatuses[].resources and
  allocatedResources; a memory limit below what the module holds cannot be
  set (linear memory never shrinks): PodResizeInProgress, reason Error,
  "cannot decrease memory limits: ...", the old limit kept; one above it
  is applied.
- RestartContainer for memory: a memory resize restarts the container
  (restartCount + 1, Killing "Container app resize requires restart"),
  while a cpu resize under NotRequired does not.
- More than the node's allocatable: PodResizePending, reason Infeasible,
  "Node didn't have enough capacity: cpu, requested: ..., capacity: ...",
  nothing allocated; asking for the allocated resources again clears it.
- More than the node has left beside another pod: Deferred (the
  admission's message); allocated once that pod is gone.
- The allocation survives a crash of the node: the pod found again is
  admitted with what it was allocated, and its resize is still Deferred.

One node for the module, pods bound to it by spec.nodeName.
"""

import json
import re
import signal

import pytest

from container_kit import attach, container, create_pod, push, start_module_node
from kubetest import condition, node_container_log, restart_node, wait_for


@pytest.fixture(scope="module")
def rs_node(cluster, tmp_path_factory):
    mnode = start_module_node(cluster, tmp_path_factory, "rsz")
    for name in ("memhog", "ticker"):
        setattr(mnode, name, push(cluster, name, f"rsz/{name}"))
    try:
        yield mnode
    finally:
        mnode.factory.teardown()


@pytest.fixture
def node(rs_node, request):
    attach(request, rs_node)
    return rs_node


def cstatus(pod):
    return (pod.get("status", {}).get("containerStatuses") or [None])[0] or {}


def pod_where(cluster, ns, name, pred, timeout=30, desc=None):
    seen = {}

    def check():
        p = cluster.pod(ns, name)
        seen["status"] = (p or {}).get("status")
        return p if p and pred(p) else None

    try:
        return wait_for(check, timeout, desc=desc or f"pod {ns}/{name}")
    except TimeoutError as e:
        raise TimeoutError(f"{e}; the pod's status: {json.dumps(seen.get('status'))}") from None


def running(pod):
    return bool(cstatus(pod).get("state", {}).get("running"))


def resize(cluster, ns, name, resources, policy=None):
    c = {"name": "app", "resources": resources}
    cluster.kubectl(["patch", "pod", name, "-n", ns, "--subresource", "resize",
                     "-p", json.dumps({"spec": {"containers": [c]}})], json=False)


def cpu_millis(q):
    return int(q[:-1]) if q.endswith("m") else int(float(q) * 1000)


def no_resize_conditions(pod):
    return not condition(pod, "PodResizePending") and not condition(pod, "PodResizeInProgress")


def test_resize_live_cpu_and_memory(cluster, node, namespace):
    """NotRequired: applied to the running module, no restart; a memory
    limit below usage is refused as the kubelet refuses it."""
    # 1 MiB every 150 ms up to 40 MiB, under a 32 MiB limit: without the
    # resize it is OOMKilled after about 5 s.
    app = container("app", node.memhog, args=["1024", "40960", "150"],
                    resources={"requests": {"cpu": "50m", "memory": "16Mi"},
                               "limits": {"cpu": "100m", "memory": "32Mi"}})
    create_pod(cluster, namespace, "live", node, [app], restart="Always")
    pod = pod_where(cluster, namespace, "live", running, 60, desc="container running")
    assert cstatus(pod)["allocatedResources"] == {"cpu": "50m", "memory": "16Mi"}
    assert cstatus(pod)["resources"] == {"requests": {"cpu": "50m", "memory": "16Mi"},
                                         "limits": {"cpu": "100m", "memory": "32Mi"}}

    resize(cluster, namespace, "live", {"limits": {"cpu": "500m", "memory": "64Mi"}})
    pod = pod_where(cluster, namespace, "live",
                    lambda p: cstatus(p).get("resources", {}).get("limits") ==
                    {"cpu": "500m", "memory": "64Mi"} and no_resize_conditions(p),
                    15, desc="new limits in force")
    assert cstatus(pod)["restartCount"] == 0
    assert cstatus(pod)["allocatedResources"] == {"cpu": "50m", "memory": "16Mi"}

    # It grows past its old limit and keeps running.
    wait_for(lambda: "holding 40960 KiB" in "\n".join(
        node_container_log(node, namespace, "live", "app")), 30, desc="memhog holding 40 MiB")
    pod = cluster.pod(namespace, "live")
    assert cstatus(pod)["restartCount"] == 0 and running(pod), cstatus(pod)

    # Below the linear memory it holds: refused, the old limit kept.
    resize(cluster, namespace, "live", {"limits": {"cpu": "500m", "memory": "24Mi"}})
    pod = pod_where(cluster, namespace, "live",
                    lambda p: (condition(p, "PodResizeInProgress") or {}).get("reason") ==
                    "Error", 15, desc="PodResizeInProgress Error")
    cond = condition(pod, "PodResizeInProgress")
    assert cond["status"] == "True"
    assert cond.get("observedGeneration") == pod["metadata"]["generation"], cond
    m = re.fullmatch(r'cannot decrease memory limits: attempting to set container "app" memory '
                     r'limit \(25165824\) below current usage \((\d+)\)', cond["message"])
    assert m, cond["message"]
    assert int(m.group(1)) > 40 << 20
    assert not condition(pod, "PodResizePending")
    assert cstatus(pod)["resources"]["limits"] == {"cpu": "500m", "memory": "64Mi"}
    assert cstatus(pod)["restartCount"] == 0 and running(pod)

    # Lowered, but above what it holds, with a new request: applied.
    resize(cluster, namespace, "live", {"requests": {"cpu": "100m"},
                                        "limits": {"cpu": "500m", "memory": "48Mi"}})
    pod = pod_where(cluster, namespace, "live",
                    lambda p: cstatus(p).get("resources", {}).get("limits", {}).get("memory") ==
                    "48Mi" and no_resize_conditions(p), 15, desc="48Mi in force")
    assert cstatus(pod)["allocatedResources"] == {"cpu": "100m", "memory": "16Mi"}
    assert cstatus(pod)["resources"]["requests"] == {"cpu": "100m", "memory": "16Mi"}
    assert cstatus(pod)["restartCount"] == 0 and running(pod)


def test_resize_restart_container_policy(cluster, node, namespace):
    """RestartContainer for memory: a memory resize restarts the container
    with the new limit; a cpu resize (NotRequired) does not."""
    app = container("app", node.ticker, args=["200"],
                    resources={"requests": {"cpu": "50m", "memory": "16Mi"},
                               "limits": {"cpu": "100m", "memory": "32Mi"}},
                    resizePolicy=[{"resourceName": "cpu", "restartPolicy": "NotRequired"},
                                  {"resourceName": "memory",
                                   "restartPolicy": "RestartContainer"}])
    create_pod(cluster, namespace, "policy", node, [app], restart="Always")
    pod_where(cluster, namespace, "policy", running, 60, desc="container running")

    resize(cluster, namespace, "policy", {"limits": {"cpu": "200m", "memory": "32Mi"}})
    pod = pod_where(cluster, namespace, "policy",
                    lambda p: cstatus(p).get("resources", {}).get("limits", {}).get("cpu") ==
                    "200m" and no_resize_conditions(p), 15, desc="cpu 200m in force")
    assert cstatus(pod)["restartCount"] == 0

    resize(cluster, namespace, "policy", {"limits": {"cpu": "200m", "memory": "64Mi"}})
    pod = pod_where(cluster, namespace, "policy",
                    lambda p: cstatus(p).get("restartCount") == 1 and running(p) and
                    cstatus(p).get("resources", {}).get("limits", {}).get("memory") == "64Mi"
                    and no_resize_conditions(p), 20, desc="restarted with 64Mi")
    assert cstatus(pod)["lastState"]["terminated"]["exitCode"] == 137
    killing = [e for e in cluster.events(namespace, "policy") if e["reason"] == "Killing"]
    assert any(e["message"] == "Container app resize requires restart" for e in killing), killing
    # The second run writes its own log.
    wait_for(lambda: node_container_log(node, namespace, "policy", "app", restart=1), 10,
             desc="the restarted run's log")


def node_to_itself(cluster, node, namespace):
    """Waits until the earlier tests' pods have left the node (their
    namespaces are deleted in the background)."""
    def alone():
        pods = cluster.list("pods", field_selector=f"spec.nodeName={node.name}")
        return not [p for p in pods if p["metadata"]["namespace"] != namespace]

    wait_for(alone, 60, desc="the node without other tests' pods")


def test_resize_infeasible_and_deferred(cluster, node, namespace):
    """Past the node's allocatable: Infeasible; past what is left beside
    another pod: Deferred until that pod is gone."""
    node_to_itself(cluster, node, namespace)
    alloc = cpu_millis(cluster.node(node.name)["status"]["allocatable"]["cpu"])
    small = container("app", node.ticker, args=["500"],
                      resources={"requests": {"cpu": "50m", "memory": "16Mi"}})
    create_pod(cluster, namespace, "small", node, [small], restart="Always")
    pod_where(cluster, namespace, "small", running, 60, desc="container running")

    resize(cluster, namespace, "small", {"requests": {"cpu": "1000"}})
    pod = pod_where(cluster, namespace, "small",
                    lambda p: condition(p, "PodResizePending"), 15, desc="PodResizePending")
    cond = condition(pod, "PodResizePending")
    assert cond["status"] == "True" and cond["reason"] == "Infeasible", cond
    assert cond.get("observedGeneration") == pod["metadata"]["generation"], cond
    assert cond["message"] == (f"Node didn't have enough capacity: cpu, requested: 1000000, "
                               f"capacity: {alloc}"), cond
    assert cstatus(pod)["allocatedResources"] == {"cpu": "50m", "memory": "16Mi"}
    assert cstatus(pod)["resources"]["requests"]["cpu"] == "50m"
    assert cstatus(pod)["restartCount"] == 0

    # Back to what is allocated: nothing pending any more.
    resize(cluster, namespace, "small", {"requests": {"cpu": "50m"}})
    pod_where(cluster, namespace, "small", no_resize_conditions, 15, desc="pending cleared")

    # Another pod holds most of the node: fits the node, not beside it.
    big = container("app", node.ticker, args=["500"],
                    resources={"requests": {"cpu": f"{alloc - 300}m"}})
    create_pod(cluster, namespace, "big", node, [big], restart="Always")
    pod_where(cluster, namespace, "big", running, 60, desc="big running")
    resize(cluster, namespace, "small", {"requests": {"cpu": "400m"}})
    pod = pod_where(cluster, namespace, "small",
                    lambda p: condition(p, "PodResizePending"), 15, desc="PodResizePending")
    cond = condition(pod, "PodResizePending")
    assert cond["reason"] == "Deferred", cond
    m = re.fullmatch(r"Node didn't have enough resource: cpu, requested: 400, used: (\d+), "
                     r"capacity: (\d+)", cond["message"])
    assert m and int(m.group(1)) >= alloc - 300 and int(m.group(2)) == alloc, cond
    assert cstatus(pod)["allocatedResources"]["cpu"] == "50m"

    # Once the other pod is gone the resize is allocated.
    cluster.delete("pod", "big", namespace, wait=True)
    pod = pod_where(cluster, namespace, "small",
                    lambda p: cstatus(p).get("allocatedResources", {}).get("cpu") == "400m"
                    and no_resize_conditions(p), 30, desc="deferred resize allocated")
    assert cstatus(pod)["resources"]["requests"]["cpu"] == "400m"
    assert cstatus(pod)["restartCount"] == 0


def test_resize_allocation_survives_a_restart(cluster, node, namespace):
    """The node crashes (SIGKILL) while a resize is Deferred: the pod found
    again is admitted with what it was allocated (not the resize), and the
    resize is still Deferred, then allocated once there is room. Last in
    the module: it restarts the module's node."""
    node_to_itself(cluster, node, namespace)
    alloc = cpu_millis(cluster.node(node.name)["status"]["allocatable"]["cpu"])
    # "big" sorts first: a restarted node admits it before "keep".
    big = container("app", node.ticker, args=["500"],
                    resources={"requests": {"cpu": f"{alloc - 300}m"}})
    create_pod(cluster, namespace, "big", node, [big], restart="Always")
    keep = container("app", node.ticker, args=["500"],
                     resources={"requests": {"cpu": "50m", "memory": "16Mi"}})
    create_pod(cluster, namespace, "keep", node, [keep], restart="Always")
    pod_where(cluster, namespace, "big", running, 60, desc="big running")
    pod_where(cluster, namespace, "keep", running, 60, desc="keep running")
    resize(cluster, namespace, "keep", {"requests": {"cpu": "400m"}})
    pod_where(cluster, namespace, "keep",
              lambda p: (condition(p, "PodResizePending") or {}).get("reason") == "Deferred",
              15, desc="Deferred")
    # Let the status writer's resume state file follow the verdict.
    wait_for(lambda: list(node.data_dir.glob("pods/*/state.json")), 10, desc="state files")

    node.node.signal(signal.SIGKILL)
    node.node.proc.wait(10)
    restart_node(node.factory, node.node)

    # Its lost run counts as a restart; it was not rejected (OutOfcpu).
    pod = pod_where(cluster, namespace, "keep",
                    lambda p: running(p) and cstatus(p).get("restartCount") == 1, 60,
                    desc="keep running again after the restart")
    assert pod["status"]["phase"] == "Running"
    assert cstatus(pod)["allocatedResources"]["cpu"] == "50m"
    pod = pod_where(cluster, namespace, "keep",
                    lambda p: (condition(p, "PodResizePending") or {}).get("reason") ==
                    "Deferred", 15, desc="still Deferred after the restart")
    assert cluster.pod(namespace, "big")["status"]["phase"] == "Running"

    cluster.delete("pod", "big", namespace, wait=True)
    pod = pod_where(cluster, namespace, "keep",
                    lambda p: cstatus(p).get("allocatedResources", {}).get("cpu") == "400m"
                    and no_resize_conditions(p), 30, desc="deferred resize allocated")
    assert cstatus(pod)["restartCount"] == 1
