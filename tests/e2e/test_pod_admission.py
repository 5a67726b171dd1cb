"""RuntimeClass on a wasmlet node (issue 10): the local cluster's class
`wasmlet` (handler wasmlet, scheduling with the arch selector and both
tolerations) lets a pod author write one line; a class whose handler
wasmlet does not serve, or a class that does not exist, leaves the pod
Pending with FailedCreatePodSandBox Events, retried as the kubelet does,
until the class can be served.
"""

import pytest

from kubetest import node_container_log, unique_name, wait_for, wasm_container


def pod_where(cluster, ns, name, pred, timeout=60, desc=None):
    def check():
        p = cluster.pod(ns, name)
        return p if p and pred(p) else None

    return wait_for(check, timeout, desc=desc or f"pod {ns}/{name}")


def sandbox_events(cluster, ns, name):
    return [e for e in cluster.events(ns, name) if e.get("reason") == "FailedCreatePodSandBox"]


def runtime_class(name, handler):
    return {"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass",
            "metadata": {"name": name}, "handler": handler}


@pytest.fixture
def classes(cluster):
    """RuntimeClasses a test creates (cluster-scoped), deleted after it."""
    made = []
    yield made
    for name in made:
        cluster.delete("runtimeclass", name)


def one_line_pod(name, image, runtime_class_name, **spec):
    """A pod whose only placement is its runtimeClassName."""
    body = {"restartPolicy": "Never", "runtimeClassName": runtime_class_name,
            "terminationGracePeriodSeconds": 5,
            "containers": [wasm_container("app", image)]}
    body.update(spec)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": body}


def test_runtime_class_wasmlet_is_one_line(cluster, shared_wasmlet_node, namespace, wasm_images):
    """runtimeClassName: wasmlet alone gets the pod scheduled onto a wasm
    node (the class carries the selector and the tolerations) and run."""
    rc = cluster.get("runtimeclass", "wasmlet")
    assert rc and rc["handler"] == "wasmlet", rc
    tolerated = {(t["key"], t.get("value"), t["effect"]) for t in rc["scheduling"]["tolerations"]}
    assert tolerated == {("kubernetes.io/arch", "wasm32-wasi", "NoSchedule"),
                         ("kubernetes.io/arch", "wasm32-wasi", "NoExecute")}
    pod = one_line_pod("oneline", wasm_images["hello"][0], "wasmlet",
                       nodeSelector={"kubernetes.io/hostname": shared_wasmlet_node.name})
    cluster.create(pod, namespace)
    p = cluster.wait_pod_phase(namespace, "oneline", ["Succeeded", "Failed"], 60)
    assert p["status"]["phase"] == "Succeeded", p["status"]
    # The admission plugin merged the class's scheduling into the pod.
    assert p["spec"]["nodeSelector"]["kubernetes.io/arch"] == "wasm32-wasi"
    assert p["spec"]["nodeName"] == shared_wasmlet_node.name
    assert not sandbox_events(cluster, namespace, "oneline")


def test_unserved_handler_stays_pending(cluster, shared_wasmlet_node, namespace, wasm_images,
                                        classes):
    """A class whose handler this node does not serve: Pending, containers
    waiting ContainerCreating, FailedCreatePodSandBox naming the handler,
    retried; nothing runs; deleting the pod works."""
    node = shared_wasmlet_node
    cls = unique_name("gvisor")
    cluster.create(runtime_class(cls, "runsc"))
    classes.append(cls)
    pod = one_line_pod("unserved", wasm_images["hello"][0], cls, nodeName=node.name,
                       tolerations=[{"operator": "Exists"}])
    cluster.create(pod, namespace)

    def retried():
        evs = sandbox_events(cluster, namespace, "unserved")
        return evs if evs and sum(e.get("count", 1) for e in evs) >= 2 else None

    evs = wait_for(retried, 30, desc="FailedCreatePodSandBox, twice")
    msg = evs[0]["message"]
    assert msg == ('Failed to create pod sandbox: failed to get sandbox runtime: no runtime for '
                   '"runsc" is configured'), msg
    assert evs[0]["type"] == "Warning"
    p = cluster.pod(namespace, "unserved")
    assert p["status"]["phase"] == "Pending", p["status"]
    cs = p["status"]["containerStatuses"][0]
    assert cs["state"]["waiting"]["reason"] == "ContainerCreating", cs
    assert not list((node.data_dir / "logs").glob(f"{namespace}_unserved_*"))
    cluster.delete("pod", "unserved", namespace)
    wait_for(lambda: cluster.pod(namespace, "unserved") is None, 30, desc="pod deleted")


def test_missing_class_waits_until_it_exists(cluster, shared_wasmlet_node, namespace,
                                             wasm_images, classes):
    """A class deleted after the pod was admitted by the API server: the
    kubelet's 'not found', retried; once the class exists (handler
    wasmlet) the next attempt runs the pod."""
    node = shared_wasmlet_node
    cls = unique_name("later")
    cluster.create(runtime_class(cls, "wasmlet"))
    classes.append(cls)
    # Held back from the scheduler until the class is gone.
    pod = one_line_pod("later", wasm_images["hello"][0], cls,
                       nodeSelector={"kubernetes.io/hostname": node.name},
                       tolerations=[{"operator": "Exists"}],
                       schedulingGates=[{"name": "e2e.wasmlet.dev/hold"}])
    cluster.create(pod, namespace)
    cluster.delete("runtimeclass", cls, wait=True)
    cluster.kubectl(["patch", "pod", "later", "-n", namespace, "--type=json",
                     "-p", '[{"op":"remove","path":"/spec/schedulingGates"}]'], json=False)
    ev = wait_for(lambda: next(iter(sandbox_events(cluster, namespace, "later")), None), 30,
                  desc="FailedCreatePodSandBox")
    assert ev["message"] == f'Failed to create pod sandbox: runtimeclass.node.k8s.io "{cls}" not found', ev
    assert cluster.pod_phase(namespace, "later") == "Pending"
    cluster.create(runtime_class(cls, "wasmlet"))
    p = cluster.wait_pod_phase(namespace, "later", ["Succeeded", "Failed"], 60)
    assert p["status"]["phase"] == "Succeeded", p["status"]
    assert "Hello from wasmlet!" in node_container_log(node, namespace, "later", "app")
