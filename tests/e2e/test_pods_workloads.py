"""Controllers' workloads on a wasmlet node (issue 4, "Done when"): a Job of
20 completions, a Deployment of 10 replicas that becomes Available and
survives a rolling update, a DaemonSet that tolerates the wasm taint, and a
container pod that must never land on a wasm node. All on the shared node.
"""

import json

from kubetest import (
    WASM_ARCH,
    condition,
    node_container_log,
    wait_for,
    wasm_container,
    wasm_pod_spec,
)


def test_job_of_20_completions(cluster, shared_wasmlet_node, namespace, wasm_images, ledger):
    node = shared_wasmlet_node
    template = {
        "metadata": {"labels": {"app": "batch"}},
        "spec": wasm_pod_spec([ledger.container("work", wasm_images["files"][0], "done")],
                              node=node.name, volumes=[ledger.volume()]),
    }
    cluster.create({
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "batch"},
        "spec": {"completions": 20, "parallelism": 5, "backoffLimit": 0, "template": template},
    }, namespace)
    job = wait_for(lambda: (lambda j: j if (condition(j, "Complete") or {}).get("status") == "True"
                            or condition(j, "Failed") else None)(
        cluster.get("job", "batch", namespace)), 150, interval=1, desc="job batch complete")
    assert (condition(job, "Complete") or {}).get("status") == "True", job["status"]
    assert job["status"]["succeeded"] == 20
    assert not job["status"].get("failed")
    runs = ledger.files()
    assert len(runs) == 20, f"{len(runs)} pods ran"
    assert all(lines == ["done"] for lines in runs.values()), runs
    pods = cluster.list("pods", namespace, selector="app=batch")
    assert len(pods) == 20
    for p in pods:
        assert p["status"]["phase"] == "Succeeded"
        assert p["spec"]["nodeName"] == node.name
        cs = p["status"]["containerStatuses"][0]
        assert cs["restartCount"] == 0 and cs["state"]["terminated"]["exitCode"] == 0


def deployment_rolled_out(cluster, namespace, name, replicas):
    d = cluster.get("deployment", name, namespace)
    st = d.get("status", {})
    done = (st.get("observedGeneration", 0) >= d["metadata"]["generation"]
            and st.get("updatedReplicas") == replicas
            and st.get("readyReplicas") == replicas
            and st.get("availableReplicas") == replicas
            and st.get("replicas") == replicas
            and (condition(d, "Available") or {}).get("status") == "True")
    return d if done else None


def test_deployment_of_10_available_and_rolling_update(cluster, shared_wasmlet_node, namespace,
                                                       wasm_images):
    node = shared_wasmlet_node
    template = {
        "metadata": {"labels": {"app": "web"}},
        "spec": wasm_pod_spec(
            [wasm_container("app", wasm_images["ticker"][0], ["1000"],
                            env={"TICK_MESSAGE": "v1"})],
            node=node.name, restart_policy="Always"),
    }
    cluster.create({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 10, "selector": {"matchLabels": {"app": "web"}},
                 "template": template},
    }, namespace)
    wait_for(lambda: deployment_rolled_out(cluster, namespace, "web", 10), 120, interval=1,
             desc="deployment web available with 10 ready replicas")
    first = {p["metadata"]["uid"] for p in cluster.list("pods", namespace, selector="app=web")}
    assert len(first) == 10

    patch = [{"op": "replace", "path": "/spec/template/spec/containers/0/env/0/value",
              "value": "v2"}]
    cluster.kubectl(["patch", "deployment", "web", "-n", namespace, "--type", "json",
                     "-p", json.dumps(patch)], json=False)
    d = wait_for(lambda: deployment_rolled_out(cluster, namespace, "web", 10)
                 and not ({p["metadata"]["uid"] for p in
                           cluster.list("pods", namespace, selector="app=web")} & first)
                 and cluster.get("deployment", "web", namespace),
                 180, interval=1, desc="rolling update of web complete, old pods gone")
    assert d["metadata"]["generation"] == 2
    pods = cluster.list("pods", namespace, selector="app=web")
    assert len(pods) == 10
    for p in pods:
        assert p["status"]["phase"] == "Running"
        assert p["status"]["containerStatuses"][0]["restartCount"] == 0
    p = pods[0]
    ticks = wait_for(lambda: [line for line in
                              node_container_log(node, namespace, p["metadata"]["name"], "app")
                              if line.startswith("tick ")], 10, desc="a new pod's ticks")
    assert all(t.endswith(" v2") for t in ticks), ticks


def test_daemonset_runs_on_wasm_node_and_container_pod_stays_off(cluster, shared_wasmlet_node,
                                                                 namespace, wasm_images):
    node = shared_wasmlet_node
    template = {
        "metadata": {"labels": {"app": "agent"}},
        "spec": wasm_pod_spec([wasm_container("agent", wasm_images["ticker"][0], ["1000"])],
                              restart_policy="Always"),
    }
    cluster.create({
        "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
        "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": template},
    }, namespace)
    # A plain container pod, without the toleration. It selects this node by
    # name only so that nodes of other runs sharing the cluster (some may
    # be untainted) do not take it; what keeps it off is the taint.
    cluster.create({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "container-pod"},
        "spec": {"containers": [{"name": "c", "image": "registry.invalid/nginx:1"}],
                 "nodeSelector": {"kubernetes.io/hostname": node.name}},
    }, namespace)

    def agent_on_node():
        for p in cluster.list("pods", namespace, selector="app=agent"):
            if p["spec"].get("nodeName") == node.name and p["status"].get("phase") == "Running":
                return p
        return None

    wait_for(agent_on_node, 60, desc=f"DaemonSet pod running on {node.name}")
    wasm_nodes = [n for n in cluster.list("nodes")
                  if n["metadata"]["labels"].get("kubernetes.io/arch") == WASM_ARCH]
    ds = cluster.get("daemonset", "agent", namespace)
    # One pod per wasm node (other runs' nodes may come and go meanwhile).
    assert 1 <= ds["status"]["desiredNumberScheduled"] <= len(wasm_nodes) + 1

    sched = wait_for(lambda: (lambda c: c if c and c.get("reason") == "Unschedulable" else None)(
        condition(cluster.pod(namespace, "container-pod"), "PodScheduled")), 30,
        desc="container pod unschedulable")
    assert sched["status"] == "False"
    # "N node(s) had untolerated taint(s)" (older releases name the taint).
    assert "untolerated taint" in sched["message"], sched["message"]
    pod = cluster.pod(namespace, "container-pod")
    assert pod["status"]["phase"] == "Pending" and not pod["spec"].get("nodeName")
