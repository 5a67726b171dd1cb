"""A wasmlet node in a real cluster (issue 4, "Being a node" and the
robustness items of "Done when"): the Node object it registers or adopts,
the Lease heartbeat and NotReady detection, admission against allocatable,
graceful shutdown, two nodes sharing scheduled pods, kill -9 and an API
server outage without losing or repeating work, static pods.

Each test starts the nodes it needs (ports from 10280 up) because it stops,
pauses or kills them; the Node objects are deleted at teardown.
"""

import json
import os
import re
import signal
import time

import pytest

from kubetest import (
    condition,
    node_container_log,
    node_port,
    restart_node,
    rfc3339,
    unique_name,
    wait_for,
    wasm_container,
    wasm_pod,
    wasm_pod_spec,
)

ARCH_TAINTS = [
    {"key": "kubernetes.io/arch", "value": "wasm32-wasi", "effect": "NoSchedule"},
    {"key": "kubernetes.io/arch", "value": "wasm32-wasi", "effect": "NoExecute"},
]


# -- helpers -----------------------------------------------------------------


def quantity(q):
    """A Kubernetes quantity as a number (bytes, cores, count)."""
    m = re.fullmatch(r"([0-9.]+)([a-zA-Z]*)", str(q))
    n, unit = float(m.group(1)), m.group(2)
    mult = {"": 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "Ki": 1024,
            "Mi": 1024**2, "Gi": 1024**3, "Ti": 1024**4}[unit]
    return n * mult


def meminfo(key):
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(key)


def read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def taints(node_obj):
    return [{k: t[k] for k in ("key", "value", "effect")}
            for t in node_obj["spec"].get("taints") or []]


def ready_status(cluster, name):
    return (condition(cluster.node(name), "Ready") or {}).get("status")


def cstatus(pod, name=None):
    for s in pod.get("status", {}).get("containerStatuses") or []:
        if name is None or s["name"] == name:
            return s
    return None


def running(pod, name=None):
    return bool((cstatus(pod, name) or {}).get("state", {}).get("running"))


def pod_where(cluster, ns, name, pred, timeout=60, desc=None):
    def check():
        p = cluster.pod(ns, name)
        return p if p and pred(p) else None

    return wait_for(check, timeout, desc=desc or f"pod {ns}/{name}")


def lease_renew_time(cluster, node):
    lease = cluster.get("lease", node, "kube-node-lease")
    return lease and lease["spec"].get("renewTime")


def disruptive_allowed():
    return (os.environ.get("WASMLET_E2E_REUSE") != "1"
            or os.environ.get("WASMLET_E2E_DISRUPTIVE") == "1")


# -- the Node object -------------------------------------------------------------


def test_node_object(cluster, wasmlet_nodes):
    ncpu = os.cpu_count()
    reserved_cpu = 500
    reserved_mem = 256 * 1024 * 1024
    node = wasmlet_nodes(port=node_port(), args=[
        "--node-labels", "e2e.wasmlet.dev/tier=edge,e2e.wasmlet.dev/team=wasm",
        "--max-pods", "17", "--reserved-cpu", reserved_cpu, "--reserved-memory", reserved_mem])
    obj = cluster.node(node.name)
    labels = obj["metadata"]["labels"]
    assert labels["kubernetes.io/arch"] == "wasm32-wasi"
    assert labels["kubernetes.io/os"]
    assert labels["kubernetes.io/hostname"] == node.name
    assert labels["e2e.wasmlet.dev/tier"] == "edge" and labels["e2e.wasmlet.dev/team"] == "wasm"
    assert sorted(settled_taints(cluster, node.name), key=str) == sorted(ARCH_TAINTS, key=str)

    st = obj["status"]
    cap, alloc = st["capacity"], st["allocatable"]
    assert quantity(cap["cpu"]) == ncpu
    assert quantity(alloc["cpu"]) == pytest.approx(ncpu - reserved_cpu / 1000)
    mem_total = meminfo("MemTotal")
    assert quantity(cap["memory"]) == pytest.approx(mem_total, abs=1024)
    # Allocatable memory: capacity less the reservation and the kubelet's
    # default 100Mi hard-eviction threshold.
    assert quantity(alloc["memory"]) == pytest.approx(
        mem_total - reserved_mem - 100 * 1024**2, abs=2048)
    vfs = os.statvfs(node.data_dir)
    assert quantity(cap["ephemeral-storage"]) == pytest.approx(vfs.f_blocks * vfs.f_frsize,
                                                               rel=0.01)
    assert 0 < quantity(alloc["ephemeral-storage"]) < quantity(cap["ephemeral-storage"])
    assert quantity(cap["pods"]) == 17 and quantity(alloc["pods"]) == 17

    addrs = {a["type"]: a["address"] for a in st["addresses"]}
    assert addrs["InternalIP"] == "127.0.0.1"
    assert addrs.get("Hostname")
    info = st["nodeInfo"]
    assert re.match(r"v\d+\.\d+\.\d+", info["kubeletVersion"]), info
    assert re.search(r"wasmtime.*\d+\.\d+\.\d+", info["containerRuntimeVersion"]), info
    assert info["architecture"]
    assert info["bootID"] == read("/proc/sys/kernel/random/boot_id")
    machine_id = read("/etc/machine-id") or read("/var/lib/dbus/machine-id")
    if machine_id:
        assert info["machineID"] == machine_id
    assert info["kernelVersion"] == os.uname().release
    assert st["daemonEndpoints"]["kubeletEndpoint"]["Port"] == node.port

    conds = {c["type"]: c for c in st["conditions"]}
    assert conds["Ready"]["status"] == "True"
    assert conds["Ready"]["reason"] == "KubeletReady"
    for t, healthy in (("MemoryPressure", meminfo("MemAvailable") >= 100 * 1024**2),
                       ("DiskPressure", vfs.f_bavail >= vfs.f_blocks / 10),
                       ("PIDPressure", True)):
        assert conds[t]["status"] == ("False" if healthy else "True"), conds[t]
        assert conds[t]["lastHeartbeatTime"] and conds[t]["lastTransitionTime"]


def settled_taints(cluster, name):
    """The node's taints once the control plane's own are gone: the node
    lifecycle controller puts node.kubernetes.io/not-ready on a new node
    until it has seen the node Ready, and takes it off after."""
    def settled():
        return not any(t["key"].startswith("node.kubernetes.io/")
                       for t in cluster.node(name)["spec"].get("taints") or [])
    wait_for(settled, 30, 0.2, f"the control plane's taints gone from {name}")
    return taints(cluster.node(name))


def test_taint_options(cluster, wasmlet_nodes):
    no_taints = wasmlet_nodes(port=node_port(), args=["--no-taints"])
    no_exec = wasmlet_nodes(port=node_port(), args=["--no-execute-taint"])
    assert settled_taints(cluster, no_taints.name) == []
    assert settled_taints(cluster, no_exec.name) == [ARCH_TAINTS[0]]


def test_node_adopts_existing_node_object(cluster, wasmlet_nodes):
    """A Node of that name already exists (left by an earlier run, or made
    by an admin): wasmlet adopts it and reconciles labels and status."""
    name = unique_name("adopt")
    cluster.create({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/arch": "amd64",
                                              "kubernetes.io/os": "linux",
                                              "e2e.wasmlet.dev/kept": "yes"}},
        "spec": {"taints": ARCH_TAINTS},
    })
    old_uid = cluster.node(name)["metadata"]["uid"]
    node = wasmlet_nodes(name=name, port=node_port(),
                         args=["--node-labels", "e2e.wasmlet.dev/run=one"])
    obj = cluster.node(name)
    assert obj["metadata"]["uid"] == old_uid, "the Node was replaced, not adopted"
    labels = obj["metadata"]["labels"]
    assert labels["kubernetes.io/arch"] == "wasm32-wasi"
    assert labels["kubernetes.io/os"] != "linux"
    assert labels["kubernetes.io/hostname"] == name
    assert labels["e2e.wasmlet.dev/run"] == "one"
    assert obj["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("wasmtime")
    assert condition(obj, "Ready")["status"] == "True"

    # Restarted with other labels: the same Node, the labels updated.
    node.stop()
    node2 = wasmlet_nodes(name=name, port=node.port,
                          args=["--node-labels", "e2e.wasmlet.dev/run=two"])
    obj = cluster.node(node2.name)
    assert obj["metadata"]["uid"] == old_uid
    assert obj["metadata"]["labels"]["e2e.wasmlet.dev/run"] == "two"
    assert condition(obj, "Ready")["status"] == "True"


# -- heartbeat -------------------------------------------------------------------


def test_lease_heartbeat_not_ready_and_back(cluster, wasmlet_nodes):
    node = wasmlet_nodes(port=node_port())
    lease = cluster.get("lease", node.name, "kube-node-lease")
    assert lease["spec"]["holderIdentity"] == node.name
    assert lease["spec"]["leaseDurationSeconds"] == 40
    owners = lease["metadata"].get("ownerReferences") or []
    assert owners and owners[0]["kind"] == "Node" and owners[0]["name"] == node.name

    # Renewed every 10 s.
    t0 = lease_renew_time(cluster, node.name)
    t1 = wait_for(lambda: (lambda t: t if t != t0 else None)(lease_renew_time(cluster, node.name)),
                  15, interval=0.5, desc="lease renewed")
    t2 = wait_for(lambda: (lambda t: t if t != t1 else None)(lease_renew_time(cluster, node.name)),
                  15, interval=0.5, desc="lease renewed again")
    assert 8 <= rfc3339(t2) - rfc3339(t1) <= 12

    # Heartbeat paused: the node lifecycle controller marks it NotReady
    # (Unknown) once the grace period has passed without a renewal.
    node.signal(signal.SIGUSR1)
    wait_for(lambda: ready_status(cluster, node.name) != "True", 90, interval=1,
             desc="node NotReady after the heartbeat stopped")
    cond = condition(cluster.node(node.name), "Ready")
    assert cond["status"] == "Unknown", cond
    assert cond["reason"] == "NodeStatusUnknown"
    # Not before the grace period (20 s in these tests' cluster, more by
    # default) has passed since the last renewal, which did not move since.
    stale = lease_renew_time(cluster, node.name)
    assert time.time() - rfc3339(stale) >= 15, "the lease was renewed while paused"

    # Resumed: Ready again, promptly (the next tick renews the Lease and
    # posts a Ready status over the controller's Unknown).
    node.signal(signal.SIGUSR2)
    resumed = time.monotonic()
    wait_for(lambda: ready_status(cluster, node.name) == "True", 15, interval=0.5,
             desc="node Ready again after the heartbeat resumed")
    assert time.monotonic() - resumed < 15
    cond = condition(cluster.node(node.name), "Ready")
    assert rfc3339(cond["lastTransitionTime"]) >= time.time() - 40, \
        "Ready's lastTransitionTime should mark the return from Unknown"
    assert node.running()


# -- admission ---------------------------------------------------------------------


def test_admission_rejects_pods_that_do_not_fit(cluster, wasmlet_nodes, namespace, wasm_images):
    """Pods bound straight to the node (spec.nodeName, no scheduler) are
    admitted against allocatable: OutOfcpu, OutOfmemory, OutOfpods."""
    ncpu = os.cpu_count()
    node = wasmlet_nodes(port=node_port(), args=[
        "--max-pods", "2", "--reserved-cpu", ncpu * 1000 - 1000])
    ticker = wasm_images["ticker"][0]

    def make(name, requests=None, image=ticker):
        c = wasm_container("app", image, ["1000"])
        if requests:
            c["resources"] = {"requests": requests}
        cluster.create(wasm_pod(name, [c], node_name=node.name, restart_policy="Always"),
                       namespace)

    def settled(name):
        return pod_where(cluster, namespace, name,
                         lambda p: running(p) or p["status"].get("phase") == "Failed", 30,
                         desc=f"{name} running or rejected")

    make("fits", {"cpu": "600m"})
    assert running(settled("fits"))
    make("too-much-cpu", {"cpu": "600m"})
    make("too-much-memory", {"memory": "100Ti"})
    rejected = {}
    for name, resource in (("too-much-cpu", "cpu"), ("too-much-memory", "memory")):
        p = settled(name)
        st = p["status"]
        assert st["phase"] == "Failed", st
        assert st["reason"] == f"OutOf{resource}", st
        assert "Node didn't have enough resource: " + resource in st["message"]
        rejected[name] = st
    assert "requested: 600, used: 600, capacity: 1000" in rejected["too-much-cpu"]["message"]
    make("second")
    assert running(settled("second"))
    make("third")
    st = settled("third")["status"]
    assert (st["phase"], st["reason"]) == ("Failed", "OutOfpods"), st
    # Rejected pods never ran and hold nothing.
    for name in ("too-much-cpu", "too-much-memory", "third"):
        assert not node_container_log(node, namespace, name, "app")
        reasons = {e["reason"] for e in cluster.events(namespace, name)}
        assert any(r.startswith("OutOf") for r in reasons), (name, reasons)
    # A slot freed is a slot to use: delete one, a new pod fits again.
    cluster.delete("pod", "second", namespace)
    wait_for(lambda: cluster.pod(namespace, "second") is None, 20)
    make("fourth")
    assert running(settled("fourth"))
    assert running(cluster.pod(namespace, "fits"))


def test_admission_rejects_pods_whose_node_selector_does_not_match(cluster, shared_wasmlet_node,
                                                                   namespace, wasm_images):
    """The kubelet re-checks a pod's nodeSelector against its own labels
    (the scheduler may have been bypassed): rejected with NodeAffinity."""
    node = shared_wasmlet_node
    pod = wasm_pod("elsewhere", [wasm_container("app", wasm_images["hello"][0])],
                   node_name=node.name)
    pod["spec"]["nodeSelector"] = {"kubernetes.io/arch": "amd64"}
    cluster.create(pod, namespace)
    p = pod_where(cluster, namespace, "elsewhere",
                  lambda q: q["status"].get("phase") in ("Failed", "Succeeded"), 15)
    assert (p["status"]["phase"], p["status"].get("reason")) == ("Failed", "NodeAffinity"), \
        p["status"]
    msg = "Predicate NodeAffinity failed: node(s) didn't match Pod's node affinity/selector"
    assert p["status"]["message"] == "Pod was rejected: " + msg, p["status"]
    assert not node_container_log(node, namespace, "elsewhere", "app")
    assert any(e["reason"] == "NodeAffinity" and e["message"] == msg
               for e in cluster.events(namespace, "elsewhere"))


def test_admission_checks_required_node_affinity(cluster, shared_wasmlet_node, namespace,
                                                 wasm_images):
    """The required node affinity is checked too, and against the Node's
    labels as they are now: a label added with kubectl label counts."""
    node = shared_wasmlet_node
    key = "e2e.wasmlet.dev/" + unique_name("aff")
    hello = wasm_images["hello"][0]

    def affine(name, exprs=None, fields=None):
        term = {}
        if exprs:
            term["matchExpressions"] = exprs
        if fields:
            term["matchFields"] = fields
        pod = wasm_pod(name, [wasm_container("app", hello)], node_name=node.name)
        pod["spec"]["affinity"] = {"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}}
        cluster.create(pod, namespace)

    def outcome(name):
        p = pod_where(cluster, namespace, name,
                      lambda q: q["status"].get("phase") in ("Failed", "Succeeded"), 30)
        return p["status"]["phase"], p["status"].get("reason")

    affine("missing-label", [{"key": key, "operator": "In", "values": ["yes"]}])
    assert outcome("missing-label") == ("Failed", "NodeAffinity")
    affine("absent-ok", [{"key": key, "operator": "DoesNotExist"}])
    assert outcome("absent-ok")[0] == "Succeeded"
    affine("by-name", fields=[{"key": "metadata.name", "operator": "In", "values": [node.name]}])
    assert outcome("by-name")[0] == "Succeeded"
    affine("other-name", fields=[{"key": "metadata.name", "operator": "In", "values": ["x"]}])
    assert outcome("other-name") == ("Failed", "NodeAffinity")
    cluster.kubectl(["label", "node", node.name, f"{key}=7"], json=False)
    try:
        affine("labelled", [{"key": key, "operator": "Gt", "values": ["5"]},
                            {"key": "kubernetes.io/arch", "operator": "In",
                             "values": ["wasm32-wasi"]}])
        assert outcome("labelled")[0] == "Succeeded"
        affine("too-small", [{"key": key, "operator": "Lt", "values": ["5"]}])
        assert outcome("too-small") == ("Failed", "NodeAffinity")
    finally:
        cluster.kubectl(["label", "node", node.name, f"{key}-"], json=False)


# -- graceful shutdown -------------------------------------------------------------


def start_shutdown_pods(cluster, node, namespace, wasm_images):
    images = wasm_images
    cluster.create(wasm_pod("svc", [wasm_container("app", images["ticker"][0], ["200"])],
                            node=node.name, restart_policy="Always"), namespace)
    cluster.create(wasm_pod("long", [wasm_container("app", images["sleeper"][0], ["600"])],
                            node=node.name), namespace)
    cluster.create(wasm_pod("done", [wasm_container("app", images["hello"][0])],
                            node=node.name), namespace)
    for name in ("svc", "long"):
        pod_where(cluster, namespace, name, running, 60, desc=f"{name} running")
    cluster.wait_pod_phase(namespace, "done", "Succeeded", 60)


def test_graceful_shutdown_on_sigterm(cluster, wasmlet_nodes, namespace, wasm_images):
    """SIGTERM: running pods are stopped and reported as the kubelet's
    graceful node shutdown reports them (Failed, reason Terminated); finished
    pods are left alone; the Node stays."""
    node = wasmlet_nodes(port=node_port())
    start_shutdown_pods(cluster, node, namespace, wasm_images)
    done_before = cluster.pod(namespace, "done")["status"]
    node.signal(signal.SIGTERM)
    t0 = time.monotonic()
    node.proc.wait(40)
    assert node.proc.returncode == 0, node.log_tail()
    assert time.monotonic() - t0 < 35
    for name in ("svc", "long"):
        p = cluster.pod(namespace, name)
        cs = cstatus(p)
        assert not running(p), (name, cs)
        t = cs["state"].get("terminated")
        assert t and t["exitCode"] == 137, (name, cs)
        st = p["status"]
        assert st["phase"] == "Failed", (name, st)
        assert st.get("reason") == "Terminated", st
        assert "node shutdown" in st.get("message", ""), st
        assert condition(p, "Ready")["status"] == "False"
    assert cluster.pod(namespace, "done")["status"] == done_before
    # The Node stays (a shutdown is not a decommission).
    assert cluster.node(node.name) is not None


def test_graceful_shutdown_sets_disruption_target(cluster, wasmlet_nodes, namespace,
                                                  wasm_images):
    """The kubelet also adds DisruptionTarget (reason TerminationByKubelet)
    to each pod its graceful node shutdown stops."""
    node = wasmlet_nodes(port=node_port())
    start_shutdown_pods(cluster, node, namespace, wasm_images)
    node.signal(signal.SIGTERM)
    node.proc.wait(40)
    for name in ("svc", "long"):
        p = cluster.pod(namespace, name)
        dt = condition(p, "DisruptionTarget")
        assert dt and dt["status"] == "True" and dt["reason"] == "TerminationByKubelet", \
            p["status"]


# -- two nodes ----------------------------------------------------------------------


def test_two_nodes_share_scheduled_pods(cluster, wasmlet_nodes, namespace, wasm_images):
    pool = unique_name("pool")
    nodes = [wasmlet_nodes(port=node_port(), args=["--node-labels", f"e2e.wasmlet.dev/pool={pool}"])
             for _ in range(2)]
    spec = wasm_pod_spec([wasm_container("app", wasm_images["ticker"][0], ["1000"])],
                         restart_policy="Always")
    spec["nodeSelector"]["e2e.wasmlet.dev/pool"] = pool
    spec["topologySpreadConstraints"] = [{
        "maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
        "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": {"app": "spread"}}}]
    cluster.create({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "spread"},
        "spec": {"replicas": 6, "selector": {"matchLabels": {"app": "spread"}},
                 "template": {"metadata": {"labels": {"app": "spread"}}, "spec": spec}},
    }, namespace)

    def available():
        d = cluster.get("deployment", "spread", namespace)
        return d if d.get("status", {}).get("availableReplicas") == 6 else None

    wait_for(available, 90, interval=1, desc="deployment spread: 6 available")
    pods = cluster.list("pods", namespace, selector="app=spread")
    per_node = {}
    for p in pods:
        assert p["status"]["phase"] == "Running"
        per_node.setdefault(p["spec"]["nodeName"], []).append(p)
    assert set(per_node) == {n.name for n in nodes}, {k: len(v) for k, v in per_node.items()}
    for n in nodes:
        assert len(per_node[n.name]) == 3
        for p in per_node[n.name]:
            ticks = wait_for(lambda: node_container_log(n, namespace, p["metadata"]["name"],
                                                        "app"), 10)
            assert ticks, f"{p['metadata']['name']} left no log on {n.name}"
            # Each node runs only its own pods.
            other = nodes[1] if n is nodes[0] else nodes[0]
            assert not node_container_log(other, namespace, p["metadata"]["name"], "app")


# -- static pods ----------------------------------------------------------------------


def test_static_pods(cluster, wasmlet_nodes, namespace, wasm_images, tmp_path):
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    pod = wasm_pod("static-ticker", [wasm_container("app", wasm_images["ticker"][0], ["500"])],
                   restart_policy="Always")
    pod["metadata"]["namespace"] = namespace
    (manifests / "ticker.json").write_text(json.dumps(pod))
    node = wasmlet_nodes(port=node_port(), args=["--pod-manifest-path", manifests])
    mirror = f"static-ticker-{node.name}"
    p = pod_where(cluster, namespace, mirror, running, 60, desc="mirror pod of the static pod")
    assert p["metadata"]["annotations"].get("kubernetes.io/config.mirror")
    assert p["spec"]["nodeName"] == node.name
    owners = p["metadata"].get("ownerReferences") or []
    assert owners and owners[0]["kind"] == "Node" and owners[0]["name"] == node.name
    wait_for(lambda: len(node_container_log(node, namespace, mirror, "app")) >= 3, 15,
             desc="static pod ticking")
    # A deleted mirror pod is recreated; the static pod itself keeps running.
    first_uid = p["metadata"]["uid"]
    cluster.kubectl(["delete", "pod", mirror, "-n", namespace, "--wait=false"], json=False)
    p = pod_where(cluster, namespace, mirror,
                  lambda q: q["metadata"]["uid"] != first_uid and running(q)
                  and not q["metadata"].get("deletionTimestamp"), 60,
                  desc="mirror pod recreated")
    # Removing the manifest removes the pod.
    (manifests / "ticker.json").unlink()
    wait_for(lambda: cluster.pod(namespace, mirror) is None, 60, desc="mirror pod removed")


# -- crash and outage -------------------------------------------------------------------


def test_kill9_and_restart_loses_nothing(cluster, wasmlet_nodes, namespace, wasm_images, ledger):
    """kill -9 mid-run, then a restart on the same data dir: completed work
    is not redone, running pods continue as their restartPolicy says."""
    node = wasmlet_nodes(port=node_port(), args=["--backoff-initial", "500"])
    files, ticker = wasm_images["files"][0], wasm_images["ticker"][0]
    vol = [ledger.volume()]
    cluster.create({
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "batch"},
        "spec": {"completions": 3, "parallelism": 3, "backoffLimit": 0, "template": {
            "metadata": {"labels": {"app": "batch"}},
            "spec": wasm_pod_spec([ledger.container("work", files, "done")], node=node.name,
                                  volumes=vol)}},
    }, namespace)
    cluster.create(wasm_pod("svc", [wasm_container("app", ticker, ["200"])], node=node.name,
                            restart_policy="Always"), namespace)
    # OnFailure: an init container and a container that completed must not
    # run again; the ticker beside them is restarted.
    cluster.create(wasm_pod("mixed", [ledger.container("once", files, "once"),
                                      wasm_container("tick", ticker, ["200"])],
                            init_containers=[ledger.container("init", files, "init")],
                            node=node.name, restart_policy="OnFailure", volumes=vol), namespace)
    # Never: a container that was running cannot run again.
    sleeper = wasm_images["sleeper"][0]
    cluster.create(wasm_pod("never", [wasm_container("app", sleeper, ["600"])],
                            init_containers=[ledger.container("init", files, "init")],
                            node=node.name, volumes=vol), namespace)
    # Never, killed during its init container: the init cannot run again, so
    # the pod fails and its app container never starts.
    cluster.create(wasm_pod("init-lost", [ledger.container("app", files, "app")],
                            init_containers=[wasm_container("slow-init", sleeper, ["600"])],
                            node=node.name, volumes=vol), namespace)
    # Deleted while the node is down.
    cluster.create(wasm_pod("doomed", [wasm_container("app", ticker, ["200"])],
                            init_containers=[ledger.container("init", files, "init")],
                            node=node.name, restart_policy="Always", volumes=vol), namespace)

    wait_for(lambda: (cluster.get("job", "batch", namespace).get("status", {})
                      .get("succeeded") == 3), 60, desc="job batch: 3 succeeded")
    pod_where(cluster, namespace, "svc", running, 60)
    pod_where(cluster, namespace, "mixed",
              lambda p: running(p, "tick") and (cstatus(p, "once") or {}).get("state", {})
              .get("terminated"), 60)
    pod_where(cluster, namespace, "never", running, 60)
    pod_where(cluster, namespace, "doomed", running, 60)
    pod_where(cluster, namespace, "init-lost",
              lambda p: (p["status"].get("initContainerStatuses") or [{}])[0]
              .get("state", {}).get("running"), 60)
    wait_for(lambda: len(node_container_log(node, namespace, "svc", "app")) >= 3, 10)
    before = {p["metadata"]["name"]: p for p in cluster.list("pods", namespace)}
    job_pods = [n for n, p in before.items() if p["metadata"].get("labels", {}).get("app")
                == "batch"]
    assert len(job_pods) == 3
    uid = {n: p["metadata"]["uid"] for n, p in before.items()}

    node.signal(signal.SIGKILL)
    node.proc.wait(10)
    # While it is down: a deletion (stays Terminating: only the node may
    # finish it) and a new pod.
    cluster.delete("pod", "doomed", namespace)
    cluster.create(wasm_pod("newcomer", [wasm_container("app", wasm_images["hello"][0])],
                            init_containers=[ledger.container("init", files, "init")],
                            node=node.name, volumes=vol), namespace)
    assert cluster.pod(namespace, "doomed")["metadata"].get("deletionTimestamp")
    restart_node(node_factory(wasmlet_nodes), node)

    # Running pods come back per their policy.
    svc = pod_where(cluster, namespace, "svc",
                    lambda p: running(p) and cstatus(p)["restartCount"]
                    == cstatus(before["svc"])["restartCount"] + 1, 60,
                    desc="svc running again, its lost run counted as a restart")
    restart = cstatus(svc)["restartCount"]
    wait_for(lambda: len([t for t in node_container_log(node, namespace, "svc", "app",
                                                         restart=restart)
                          if t.startswith("tick ")]) >= 3, 15, desc="svc ticking again")
    mixed = pod_where(cluster, namespace, "mixed",
                      lambda p: running(p, "tick") and cstatus(p, "tick")["restartCount"]
                      == cstatus(before["mixed"], "tick")["restartCount"] + 1, 60)
    never = cluster.wait_pod_phase(namespace, "never", {"Failed", "Succeeded"}, 60)
    assert never["status"]["phase"] == "Failed"
    assert cstatus(never)["state"]["terminated"]["reason"] == "ContainerStatusUnknown"
    wait_for(lambda: cluster.pod(namespace, "doomed") is None, 30,
             desc="pod deleted while the node was down: removed after the restart")
    newcomer = cluster.wait_pod_phase(namespace, "newcomer", {"Failed", "Succeeded"}, 60)
    assert newcomer["status"]["phase"] == "Succeeded"
    lost = cluster.wait_pod_phase(namespace, "init-lost", {"Failed", "Succeeded"}, 60)
    assert lost["status"]["phase"] == "Failed", lost["status"]
    assert not running(lost, "app") and not (cstatus(lost, "app") or {}).get("restartCount")

    # Nothing that had completed ran again.
    assert ledger.lines(uid["mixed"]) == ["init", "once"]
    assert ledger.lines(uid["never"]) == ["init"]
    once = cstatus(mixed, "once")
    assert once["restartCount"] == 0
    assert once["state"]["terminated"] == cstatus(before["mixed"], "once")["state"]["terminated"]
    assert mixed["status"]["phase"] == "Running"
    for n in job_pods:
        p = cluster.pod(namespace, n)
        assert p["status"]["phase"] == "Succeeded"
        assert cstatus(p) == cstatus(before[n]), n
        assert ledger.lines(uid[n]) == ["done"]
    assert ledger.lines(uid["doomed"]) == ["init"]
    assert ledger.lines(newcomer["metadata"]["uid"]) == ["init"]
    assert ledger.lines(uid["init-lost"]) == [], "an app container ran without its init"
    # 3 job pods, mixed, never, doomed, newcomer: nothing else ran.
    assert len(ledger.files()) == 7, ledger.files()

    # The node still takes new work.
    cluster.create(wasm_pod("after", [wasm_container("app", wasm_images["hello"][0])],
                            node=node.name), namespace)
    assert cluster.wait_pod_phase(namespace, "after", {"Succeeded", "Failed"}, 60)[
        "status"]["phase"] == "Succeeded"


def node_factory(nodes_fixture):
    """The NodeFactory behind the wasmlet_nodes fixture (its start method)."""
    return nodes_fixture.__self__


@pytest.mark.skipif(not disruptive_allowed(), reason="stops the shared cluster's API server; "
                    "set WASMLET_E2E_DISRUPTIVE=1 to run it against a reused cluster")
def test_api_server_outage(cluster, wasmlet_nodes, namespace, wasm_images, ledger):
    """The API server frozen (SIGSTOP) for a minute: pods keep running and
    finishing on the node, and statuses catch up when it is back."""
    node = wasmlet_nodes(port=node_port(), args=["--backoff-initial", "500"])
    files = wasm_images["files"][0]
    cluster.create(wasm_pod("svc", [wasm_container("app", wasm_images["ticker"][0], ["500"])],
                            node=node.name, restart_policy="Always"), namespace)
    cluster.create(wasm_pod("finisher", [wasm_container("app", wasm_images["sleeper"][0],
                                                        ["20"])],
                            init_containers=[ledger.container("init", files, "init")],
                            node=node.name, volumes=[ledger.volume()]), namespace)
    pod_where(cluster, namespace, "svc", running, 60)
    finisher = pod_where(cluster, namespace, "finisher", running, 60)
    fuid = finisher["metadata"]["uid"]

    apiserver = cluster.pids()["kube-apiserver"]
    ticks_before = len(node_container_log(node, namespace, "svc", "app"))
    os.kill(apiserver, signal.SIGSTOP)
    try:
        time.sleep(30)
        assert node.running(), node.log_tail()
        ticks_mid = len(node_container_log(node, namespace, "svc", "app"))
        assert ticks_mid >= ticks_before + 40, "the ticker stalled during the outage"
        time.sleep(30)
        assert node.running(), node.log_tail()
    finally:
        os.kill(apiserver, signal.SIGCONT)
    wait_for(lambda: cluster.kubectl(["get", "--raw", "/readyz"], json=False), 60,
             desc="API server ready again")

    # Statuses catch up: the finisher ended during the outage.
    p = cluster.wait_pod_phase(namespace, "finisher", {"Succeeded", "Failed"}, 60)
    assert p["status"]["phase"] == "Succeeded", p["status"]
    t = cstatus(p)["state"]["terminated"]
    assert t["exitCode"] == 0
    assert ledger.lines(fuid) == ["init"]
    svc = cluster.pod(namespace, "svc")
    assert running(svc) and cstatus(svc)["restartCount"] == 0
    assert len(node_container_log(node, namespace, "svc", "app")) > ticks_mid
    wait_for(lambda: ready_status(cluster, node.name) == "True", 60, interval=1,
             desc="node Ready after the outage")
    # The pod watch is back: new pods run, deleted pods go.
    cluster.create(wasm_pod("after", [wasm_container("app", wasm_images["hello"][0])],
                            node=node.name), namespace)
    p = cluster.wait_pod_phase(namespace, "after", {"Succeeded", "Failed"}, 60)
    assert p["status"]["phase"] == "Succeeded"
    cluster.delete("pod", "svc", namespace)
    wait_for(lambda: cluster.pod(namespace, "svc") is None, 30, desc="svc deleted after outage")
