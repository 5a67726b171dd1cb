"""Pods through the whole kubelet lifecycle on a wasmlet node (issue 4, "Pods").

Most tests share one node (shared_wasmlet_node, --backoff-initial 500, so
crash loops turn in seconds); each test works in a namespace of its own and
pins its pods to that node with the kubernetes.io/hostname selector, through
the scheduler. The test of the real default back-off starts a node of its own.

Container output is read from the node's log files (node_container_log):
the kubelet HTTPS API that `kubectl logs` goes through is not part of these
tests. Runs are counted in a Ledger, a hostPath directory each run appends a
line to, because a status can hide a second run but a line in a file cannot.
"""

import base64
import json

import pytest

from kubetest import (

    condition,
    node_container_log,
    node_port,
    rfc3339,
    wait_for,
    wasm_container,
    wasm_pod,
)

SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


# -- helpers -----------------------------------------------------------------


def pod_where(cluster, ns, name, pred, timeout=60, desc=None):
    """Poll the pod until pred(pod) is truthy; return the pod."""

    def check():
        p = cluster.pod(ns, name)
        return p if p and pred(p) else None

    return wait_for(check, timeout, desc=desc or f"pod {ns}/{name}")


def cstatus(pod, name=None, init=False):
    key = "initContainerStatuses" if init else "containerStatuses"
    for s in pod.get("status", {}).get(key) or []:
        if name is None or s["name"] == name:
            return s
    return None


def terminated(pod, name=None, init=False):
    s = cstatus(pod, name, init)
    return (s or {}).get("state", {}).get("terminated")


def waiting_reason(pod, name=None, init=False):
    s = cstatus(pod, name, init)
    return ((s or {}).get("state", {}).get("waiting") or {}).get("reason")


def phase(pod):
    return pod.get("status", {}).get("phase")


def event_reasons(cluster, ns, name):
    return {e["reason"] for e in cluster.events(ns, name)}


def wait_events(cluster, ns, name, reasons, timeout=30):
    reasons = set(reasons)
    return wait_for(lambda: reasons <= event_reasons(cluster, ns, name) and
                    cluster.events(ns, name), timeout,
                    desc=f"events {sorted(reasons)} of pod {name}")


# -- status ------------------------------------------------------------------


def test_completed_pod_status_and_events(cluster, shared_wasmlet_node, namespace, wasm_images):
    node = shared_wasmlet_node
    image, digest = wasm_images["hello"]
    cluster.create(wasm_pod("hello", [wasm_container("app", image)], node=node.name),
                   namespace)
    created = cluster.pod(namespace, "hello")
    qos = created["status"].get("qosClass")
    pod = cluster.wait_pod_phase(namespace, "hello", {"Succeeded", "Failed"}, timeout=60)
    st = pod["status"]
    assert st["phase"] == "Succeeded", st
    assert pod["spec"]["nodeName"] == node.name

    types = {c["type"]: c for c in st["conditions"]}
    assert {"PodScheduled", "PodReadyToStartContainers", "Initialized", "ContainersReady",
            "Ready"} <= set(types)
    assert types["PodScheduled"]["status"] == "True"
    assert types["Initialized"]["status"] == "True"
    # A completed pod is not ready (the kubelet's PodCompleted).
    assert types["Ready"]["status"] == "False"
    assert types["ContainersReady"]["status"] == "False"
    assert st["hostIP"] == "127.0.0.1"
    assert st["hostIPs"] == [{"ip": "127.0.0.1"}]
    assert rfc3339(st["startTime"]) <= rfc3339(pod["metadata"]["creationTimestamp"]) + 60
    assert qos == "BestEffort" and st.get("qosClass") == qos

    cs = cstatus(pod, "app")
    t = cs["state"]["terminated"]
    assert t["exitCode"] == 0 and t["reason"] == "Completed"
    assert rfc3339(t["startedAt"]) <= rfc3339(t["finishedAt"])
    assert rfc3339(st["startTime"]) <= rfc3339(t["startedAt"]) + 1
    assert cs["restartCount"] == 0
    assert cs["ready"] is False
    assert cs["image"] == image
    assert cs["imageID"].endswith(digest), cs["imageID"]
    assert cs["containerID"] and "://" in cs["containerID"]
    assert t.get("containerID") == cs["containerID"]

    assert node_container_log(node, namespace, "hello", "app") == ["Hello from wasmlet!"]
    events = wait_events(cluster, namespace, "hello", {"Scheduled", "Pulled", "Created",
                                                       "Started"})
    by_reason = {e["reason"]: e for e in events}
    assert by_reason["Started"]["source"].get("host") == node.name or \
        by_reason["Started"].get("reportingInstance") == node.name
    assert by_reason["Pulled"]["involvedObject"].get("fieldPath") == "spec.containers{app}"
    # The kubelet's pair: "Pulling" then "Successfully pulled" when the
    # registry was asked, one "already present on machine" when it was not
    # (this shared node may have the image from an earlier test).
    if "already present on machine" in by_reason["Pulled"]["message"]:
        assert "Pulling" not in by_reason, events
    else:
        assert "Successfully pulled" in by_reason["Pulled"]["message"], events
        assert "Pulling" in by_reason, events

    # Now the image is on the node: a pod allowed to use it (IfNotPresent)
    # is told so, and no Pulling is announced.
    cluster.create(wasm_pod("hello-again", [wasm_container("app", image,
                                                           imagePullPolicy="IfNotPresent")],
                            node=node.name), namespace)
    cluster.wait_pod_phase(namespace, "hello-again", {"Succeeded"}, timeout=60)
    events = wait_events(cluster, namespace, "hello-again", {"Pulled", "Started"})
    by_reason = {e["reason"]: e for e in events}
    assert by_reason["Pulled"]["message"] == \
        f'Container image "{image}" already present on machine', events
    assert "Pulling" not in by_reason, events


def test_exit_codes_and_reasons(cluster, shared_wasmlet_node, namespace, wasm_images):
    """Real exit codes: proc_exit N, a trap (134), OOM under a memory limit
    (137 OOMKilled), with restartPolicy Never: no restart, pod Failed."""
    node = shared_wasmlet_node
    pods = {
        "exit3": wasm_container("app", wasm_images["exitcode"][0], ["3", "three"]),
        "trap": wasm_container("app", wasm_images["trap"][0]),
        "oom": wasm_container("app", wasm_images["memhog"][0],
                              resources={"limits": {"memory": "16Mi"}}),
        "two": None,
    }
    pods["two"] = [wasm_container("ok", wasm_images["hello"][0]),
                   wasm_container("bad", wasm_images["exitcode"][0], ["7"])]
    for name, c in pods.items():
        cluster.create(wasm_pod(name, c if isinstance(c, list) else [c], node=node.name),
                       namespace)
    done = {}
    for name in pods:
        done[name] = cluster.wait_pod_phase(namespace, name, {"Succeeded", "Failed"}, 90)
    for name, pod in done.items():
        assert phase(pod) == "Failed", (name, pod["status"])
        for cs in pod["status"]["containerStatuses"]:
            assert cs["restartCount"] == 0, (name, cs)
    t = terminated(done["exit3"])
    assert (t["exitCode"], t["reason"]) == (3, "Error")
    t = terminated(done["trap"])
    assert (t["exitCode"], t["reason"]) == (134, "Error")
    assert t.get("message"), "a trap's status carries the trap message"
    t = terminated(done["oom"])
    assert (t["exitCode"], t["reason"]) == (137, "OOMKilled")
    assert terminated(done["two"], "ok")["exitCode"] == 0
    assert terminated(done["two"], "ok")["reason"] == "Completed"
    assert terminated(done["two"], "bad")["exitCode"] == 7
    assert node_container_log(node, namespace, "exit3", "app") == ["three"]


def test_termination_message_fallback_to_logs(cluster, shared_wasmlet_node, namespace,
                                              wasm_images):
    node = shared_wasmlet_node
    c = wasm_container("app", wasm_images["exitcode"][0], ["5", "it broke"],
                       terminationMessagePolicy="FallbackToLogsOnError")
    cluster.create(wasm_pod("last-words", [c], node=node.name), namespace)
    pod = cluster.wait_pod_phase(namespace, "last-words", {"Succeeded", "Failed"}, 60)
    t = terminated(pod)
    assert t["exitCode"] == 5
    assert "it broke" in (t.get("message") or ""), t


# -- restart policies ----------------------------------------------------------


def test_restart_policies(cluster, shared_wasmlet_node, namespace, wasm_images):
    node = shared_wasmlet_node
    fail = wasm_images["exitcode"][0]
    hello = wasm_images["hello"][0]
    specs = {
        "onfailure-fails": ("OnFailure", wasm_container("app", fail, ["1", "bye"])),
        "onfailure-ok": ("OnFailure", wasm_container("app", hello)),
        "always-ok": ("Always", wasm_container("app", hello)),
        "never-fails": ("Never", wasm_container("app", fail, ["1"])),
    }
    for name, (policy, c) in specs.items():
        cluster.create(wasm_pod(name, [c], node=node.name, restart_policy=policy), namespace)

    # OnFailure + failing: restarted with growing back-off, CrashLoopBackOff.
    pod = pod_where(
        cluster, namespace, "onfailure-fails",
        lambda p: cstatus(p) and cstatus(p)["restartCount"] >= 3
        and waiting_reason(p) == "CrashLoopBackOff", 60,
        desc="onfailure-fails in CrashLoopBackOff after 3 restarts")
    cs = cstatus(pod)
    assert phase(pod) == "Running"
    assert "back-off" in cs["state"]["waiting"]["message"]
    last = cs["lastState"]["terminated"]
    assert (last["exitCode"], last["reason"]) == (1, "Error")
    assert rfc3339(last["startedAt"]) <= rfc3339(last["finishedAt"])
    runs = node_container_log(node, namespace, "onfailure-fails", "app")
    assert runs.count("bye") >= cs["restartCount"]
    # Always + exit 0: restarted too, and crash-loops the same way.
    pod = pod_where(cluster, namespace, "always-ok",
                    lambda p: cstatus(p) and cstatus(p)["restartCount"] >= 2, 60)
    assert phase(pod) == "Running"
    assert cstatus(pod)["lastState"]["terminated"]["reason"] == "Completed"
    # OnFailure + success, and Never + failure: one run, terminal phase.
    pod = cluster.wait_pod_phase(namespace, "onfailure-ok", {"Succeeded", "Failed"}, 30)
    assert phase(pod) == "Succeeded" and cstatus(pod)["restartCount"] == 0
    pod = cluster.wait_pod_phase(namespace, "never-fails", {"Succeeded", "Failed"}, 30)
    assert phase(pod) == "Failed" and cstatus(pod)["restartCount"] == 0
    assert terminated(pod)["exitCode"] == 1

    events = cluster.events(namespace, "onfailure-fails")
    backoff = [e for e in events if e["reason"] == "BackOff"]
    assert backoff and backoff[0]["type"] == "Warning"
    assert "Back-off" in backoff[0]["message"] or "back-off" in backoff[0]["message"]
    started = [e for e in events if e["reason"] == "Started"]
    assert started and max(e.get("count", 1) for e in started) >= 2 or len(started) >= 2


def test_default_crashloop_backoff_is_10s(cluster, wasmlet_nodes, namespace, wasm_images):
    """The real default: first restart at once, then a 10 s gap, then 20 s
    (measured between the status timestamps of consecutive runs)."""
    node = wasmlet_nodes(port=node_port())
    cluster.create(wasm_pod("crash", [wasm_container("app", wasm_images["exitcode"][0], ["1"])],
                            node=node.name, restart_policy="Always"), namespace)
    seen = {}

    def two_backoffs():
        p = cluster.pod(namespace, "crash")
        cs = cstatus(p)
        if cs and waiting_reason(p) == "CrashLoopBackOff" and cs["lastState"].get("terminated"):
            seen[cs["restartCount"]] = (cs["lastState"]["terminated"],
                                        cs["state"]["waiting"]["message"])
        return 1 in seen and 2 in seen

    wait_for(two_backoffs, 45, interval=0.3, desc="back-off after restarts 1 and 2")
    run1, msg1 = seen[1]
    run2, msg2 = seen[2]
    gap = rfc3339(run2["startedAt"]) - rfc3339(run1["finishedAt"])
    assert 9 <= gap <= 12.5, f"gap between runs 1 and 2 is {gap}s, want 10s"
    assert "10s" in msg1 and "20s" in msg2, (msg1, msg2)


# -- init containers, sidecars, deadlines ---------------------------------------


def test_init_containers_run_in_order(cluster, shared_wasmlet_node, namespace, wasm_images,
                                      ledger):
    node = shared_wasmlet_node
    files = wasm_images["files"][0]
    inits = [ledger.container(f"init{i}", files, f"init{i}") for i in (1, 2, 3)]
    app = ledger.container("app", files, "app")
    cluster.create(wasm_pod("ordered", [app], node=node.name, init_containers=inits,
                            volumes=[ledger.volume()]), namespace)
    pod = cluster.wait_pod_phase(namespace, "ordered", {"Succeeded", "Failed"}, 60)
    assert phase(pod) == "Succeeded"
    assert ledger.lines(pod["metadata"]["uid"]) == ["init1", "init2", "init3", "app"]
    ends = []
    for i in (1, 2, 3):
        t = terminated(pod, f"init{i}", init=True)
        assert (t["exitCode"], t["reason"]) == (0, "Completed")
        ends.append((rfc3339(t["startedAt"]), rfc3339(t["finishedAt"])))
    assert ends == sorted(ends)
    assert condition(pod, "Initialized")["status"] == "True"

    # A failing init container under Never fails the pod; the app never runs.
    fail = wasm_container("init-fails", wasm_images["exitcode"][0], ["4"])
    cluster.create(wasm_pod("init-never", [ledger.container("app", files, "app")],
                            node=node.name, init_containers=[fail],
                            volumes=[ledger.volume()]), namespace)
    # Under OnFailure it is retried with back-off and the pod stays Pending.
    cluster.create(wasm_pod("init-retry", [ledger.container("app", files, "app")],
                            node=node.name, init_containers=[fail], restart_policy="OnFailure",
                            volumes=[ledger.volume()]), namespace)
    pod = cluster.wait_pod_phase(namespace, "init-never", {"Succeeded", "Failed"}, 60)
    assert phase(pod) == "Failed"
    assert terminated(pod, "init-fails", init=True)["exitCode"] == 4
    assert condition(pod, "Initialized")["status"] == "False"
    assert ledger.lines(pod["metadata"]["uid"]) == []
    assert not (cstatus(pod, "app") or {}).get("state", {}).get("running")
    pod = pod_where(cluster, namespace, "init-retry",
                    lambda p: (cstatus(p, "init-fails", True) or {}).get("restartCount", 0) >= 2,
                    60)
    assert phase(pod) == "Pending"
    assert condition(pod, "Initialized")["status"] == "False"
    assert ledger.lines(pod["metadata"]["uid"]) == []


def test_sidecar_init_container(cluster, shared_wasmlet_node, namespace, wasm_images):
    """An init container with restartPolicy Always runs beside the app and
    ends when the app has completed; the pod then Succeeds."""
    node = shared_wasmlet_node
    sidecar = wasm_container("sidecar", wasm_images["ticker"][0], ["200"], restartPolicy="Always",
                             env={"TICK_MESSAGE": "side"})
    app = wasm_container("app", wasm_images["sleeper"][0], ["2"])
    cluster.create(wasm_pod("with-sidecar", [app], node=node.name, init_containers=[sidecar]),
                   namespace)
    pod = pod_where(cluster, namespace, "with-sidecar",
                    lambda p: (cstatus(p, "app") or {}).get("state", {}).get("running"), 60)
    side = cstatus(pod, "sidecar", init=True)
    assert side["state"].get("running"), side
    assert side.get("started") is True
    assert condition(pod, "Initialized")["status"] == "True"
    assert condition(pod, "Ready")["status"] == "True"
    assert rfc3339(side["state"]["running"]["startedAt"]) <= \
        rfc3339(cstatus(pod, "app")["state"]["running"]["startedAt"])
    pod = cluster.wait_pod_phase(namespace, "with-sidecar", {"Succeeded", "Failed"}, 30)
    assert phase(pod) == "Succeeded", pod["status"]
    assert terminated(pod, "app")["exitCode"] == 0
    assert terminated(pod, "sidecar", init=True) is not None
    ticks = node_container_log(node, namespace, "with-sidecar", "sidecar")
    assert len([t for t in ticks if t.endswith(" side")]) >= 5


def test_active_deadline_seconds(cluster, shared_wasmlet_node, namespace, wasm_images):
    node = shared_wasmlet_node
    cluster.create(wasm_pod("deadline", [wasm_container("app", wasm_images["spin"][0])],
                            node=node.name, restart_policy="Always", activeDeadlineSeconds=3),
                   namespace)
    pod = cluster.wait_pod_phase(namespace, "deadline", {"Succeeded", "Failed"}, 30)
    st = pod["status"]
    assert st["phase"] == "Failed"
    assert st.get("reason") == "DeadlineExceeded", st
    t = terminated(pod)
    assert t["exitCode"] == 137
    assert 2 <= rfc3339(t["finishedAt"]) - rfc3339(st["startTime"]) <= 8
    assert cstatus(pod)["restartCount"] == 0
    assert "DeadlineExceeded" in event_reasons(cluster, namespace, "deadline")


def test_graceful_deletion(cluster, shared_wasmlet_node, namespace, wasm_images):
    node = shared_wasmlet_node
    cluster.create(wasm_pod("victim", [wasm_container("app", wasm_images["ticker"][0], ["200"])],
                            node=node.name, restart_policy="Always"), namespace)
    pod = pod_where(cluster, namespace, "victim",
                    lambda p: (cstatus(p) or {}).get("state", {}).get("running"), 60)
    uid = pod["metadata"]["uid"]
    wait_for(lambda: len(node_container_log(node, namespace, "victim", "app")) >= 2, 10)
    cluster.delete("pod", "victim", namespace)  # graceful: deletionTimestamp, 5 s grace
    # The node stops the container, reports it and removes the object well
    # before the grace period would run out.
    wait_for(lambda: cluster.pod(namespace, "victim") is None, 20, interval=0.2,
             desc="pod removed by the node after graceful deletion")
    events = cluster.events(namespace, "victim")
    killing = [e for e in events if e["reason"] == "Killing"]
    assert killing, sorted(e["reason"] for e in events)
    assert killing[0]["involvedObject"]["uid"] == uid
    # The ticker is stopped: its log (if still there) stops growing, and the
    # node forgets the pod's files.
    wait_for(lambda: not list((node.data_dir / "logs").glob(f"{namespace}_victim_*")), 15,
             desc="the pod's log directory removed")
    wait_for(lambda: not (node.data_dir / "pods" / uid).exists(), 15,
             desc="the pod's directory removed")

    # Forced (grace 0): the object is gone at once; the node still stops
    # the container when the deletion reaches it.
    cluster.create(wasm_pod("forced", [wasm_container("app", wasm_images["ticker"][0], ["200"])],
                            node=node.name, restart_policy="Always"), namespace)
    pod = pod_where(cluster, namespace, "forced",
                    lambda p: (cstatus(p) or {}).get("state", {}).get("running"), 60)
    wait_for(lambda: len(node_container_log(node, namespace, "forced", "app")) >= 2, 10)
    cluster.kubectl(["delete", "pod", "forced", "-n", namespace, "--grace-period=0", "--force"],
                    json=False)
    wait_for(lambda: not (node.data_dir / "pods" / pod["metadata"]["uid"]).exists(), 15,
             desc="force-deleted pod's directory removed")


# -- volumes, probes ------------------------------------------------------------


def test_kube_api_access_volume(cluster, shared_wasmlet_node, namespace, wasm_images):
    node = shared_wasmlet_node
    files = wasm_images["files"][0]
    wait_for(lambda: cluster.get("serviceaccount", "default", namespace), 30)
    containers = [
        wasm_container("ns", files, ["cat", f"{SA_DIR}/namespace"]),
        wasm_container("token", files, ["cat", f"{SA_DIR}/token"]),
        wasm_container("ca", files, ["cat", f"{SA_DIR}/ca.crt"]),
        wasm_container("ls", files, ["ls", SA_DIR]),
    ]
    cluster.create(wasm_pod("sa", containers, node=node.name), namespace)
    pod = cluster.wait_pod_phase(namespace, "sa", {"Succeeded", "Failed"}, 60)
    assert phase(pod) == "Succeeded", pod["status"]
    vols = [v for v in pod["spec"]["volumes"] if v["name"].startswith("kube-api-access-")]
    assert vols and "projected" in vols[0]
    log = lambda c: node_container_log(node, namespace, "sa", c)  # noqa: E731
    assert log("ns") == [namespace]
    assert {"ca.crt", "namespace", "token"} <= set(log("ls"))
    token = "".join(log("token"))
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert claims["sub"] == f"system:serviceaccount:{namespace}:default"
    k8s = claims["kubernetes.io"]
    assert k8s["pod"]["name"] == "sa" and k8s["pod"]["uid"] == pod["metadata"]["uid"]
    assert k8s.get("node", {}).get("name") in (None, node.name)
    with open(cluster.ca) as f:
        assert "\n".join(log("ca")).strip() == f.read().strip()


# -- list + watch ---------------------------------------------------------------


def test_rapid_create_delete_runs_each_pod_at_most_once(cluster, shared_wasmlet_node, namespace,
                                                        wasm_images, ledger):
    """Pods created and deleted in quick succession, names reused: every
    incarnation (uid) starts at most once, every deletion is carried out
    (no pod left Terminating, nothing left running)."""
    node = shared_wasmlet_node
    files, sleeper = wasm_images["files"][0], wasm_images["sleeper"][0]

    def pod(name):
        return wasm_pod(name, [wasm_container("app", sleeper, ["600"])], node=node.name,
                        init_containers=[ledger.container("mark", files, "start")],
                        volumes=[ledger.volume()], labels={"e2e": "churn"})

    names = [f"churn-{i}" for i in range(12)]
    items = json.dumps({"apiVersion": "v1", "kind": "List", "items": [pod(n) for n in names]})
    create_all = ["create", "-n", namespace, "-f", "-"]
    cluster.kubectl(create_all, json=False, input=items)
    # Delete them while they start: some have run their init container,
    # some are starting, some have not reached the node yet.
    wait_for(lambda: len(ledger.files()) >= 3, 30, interval=0.1, desc="first pods starting")
    cluster.kubectl(["delete", "pods", "-n", namespace, "-l", "e2e=churn", "--wait=false"],
                    json=False)
    # The same names again, while the first ones may still be terminating.
    wait_for(lambda: not cluster.list("pods", namespace), 30, interval=0.2,
             desc="first incarnations deleted")
    cluster.kubectl(create_all, json=False, input=items)
    keep = names[:6]
    for n in names[6:]:
        cluster.delete("pod", n, namespace)
    for n in keep:
        pod_where(cluster, namespace, n,
                  lambda p: (cstatus(p) or {}).get("state", {}).get("running"), 60,
                  desc=f"{n} running")
    wait_for(lambda: {p["metadata"]["name"] for p in cluster.list("pods", namespace)} == set(keep),
             30, desc="deleted pods gone")
    live = {p["metadata"]["uid"]: p["metadata"]["name"] for p in cluster.list("pods", namespace)}
    runs = ledger.files()
    for uid, lines in runs.items():
        assert len(lines) <= 1, f"pod incarnation {uid} started {len(lines)} times"
    for uid in live:
        assert runs.get(uid) == ["start"], f"running pod {live[uid]} ({uid}) did not start once"
    # Nothing of the deleted incarnations keeps running on the node.
    wait_for(lambda: {d.name for d in (node.data_dir / "pods").iterdir()} & set(runs) <= set(live),
             20, desc="deleted pods' directories removed")

    assert len(runs) >= len(keep)


# -- bad input --------------------------------------------------------------------


def test_bad_input_ends_as_a_clear_status(cluster, shared_wasmlet_node, namespace, wasm_images):
    """Each bad input ends as a pod status or event, while a healthy pod on
    the same node keeps running undisturbed."""
    node = shared_wasmlet_node
    reg = cluster.registry
    ticker = wasm_images["ticker"][0]
    cluster.create(wasm_pod("healthy", [wasm_container("app", ticker, ["200"])], node=node.name,
                            restart_policy="Always"), namespace)
    pod_where(cluster, namespace, "healthy",
              lambda p: (cstatus(p) or {}).get("state", {}).get("running"), 60)
    missing_cm = wasm_container("app", ticker, env=[
        {"name": "GREETING", "valueFrom": {"configMapKeyRef": {"name": "later", "key": "g"}}}])
    bad = {
        "no-such-image": [wasm_container("app", f"{reg}/e2e/does-not-exist:v1")],
        "bad-ref": [wasm_container("app", f"{reg}/e2e/UPPER_case::v1")],
        "no-configmap": [missing_cm],
        "not-wasm": [wasm_container("app", wasm_images["bad-notwasm"][0])],
    }
    for name, cs in bad.items():
        cluster.create(wasm_pod(name, cs, node=node.name, restart_policy="Always"), namespace)

    pod = pod_where(cluster, namespace, "no-such-image",
                    lambda p: waiting_reason(p) in ("ErrImagePull", "ImagePullBackOff"), 60,
                    desc="no-such-image waiting on the image")
    assert phase(pod) == "Pending"
    assert (cstatus(pod)["state"]["waiting"].get("message") or "")
    pod_where(cluster, namespace, "no-such-image",
              lambda p: waiting_reason(p) == "ImagePullBackOff", 30,
              desc="no-such-image in ImagePullBackOff")
    reasons = event_reasons(cluster, namespace, "no-such-image")
    assert "Failed" in reasons, reasons
    # A reference that does not parse is the kubelet's InvalidImageName, not
    # a pull failure: no back-off, the pod stays Pending.
    pod = pod_where(cluster, namespace, "bad-ref",
                    lambda p: waiting_reason(p) == "InvalidImageName", 60,
                    desc="bad-ref waiting as InvalidImageName")
    assert phase(pod) == "Pending"
    assert "invalid reference format" in cstatus(pod)["state"]["waiting"]["message"]
    assert "Failed" in event_reasons(cluster, namespace, "bad-ref")
    pod = pod_where(cluster, namespace, "no-configmap",
                    lambda p: waiting_reason(p) == "CreateContainerConfigError", 60)
    assert "later" in cstatus(pod)["state"]["waiting"]["message"]
    assert phase(pod) == "Pending"
    pod = pod_where(cluster, namespace, "not-wasm",
                    lambda p: (cstatus(p) or {}).get("restartCount", 0) >= 1 or terminated(p)
                    or (cstatus(p)["lastState"] or {}).get("terminated"), 60,
                    desc="not-wasm failed to start")
    cs = cstatus(pod)
    t = cs["state"].get("terminated") or cs["lastState"].get("terminated")
    assert t["reason"] == "StartError", cs
    assert t["exitCode"] == 128, cs
    assert t.get("message")
    assert "Failed" in event_reasons(cluster, namespace, "not-wasm")

    # The ConfigMap appears: the container starts (no restart of the pod needed).
    cluster.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "later"},
                    "data": {"g": "hi"}}, namespace)
    pod_where(cluster, namespace, "no-configmap",
              lambda p: (cstatus(p) or {}).get("state", {}).get("running"), 60,
              desc="no-configmap running once the ConfigMap exists")
    # A pod stuck in back-off is deleted as promptly as any other.
    cluster.delete("pod", "no-such-image", namespace)
    wait_for(lambda: cluster.pod(namespace, "no-such-image") is None, 15, interval=0.3,
             desc="pod in ImagePullBackOff deleted")
    healthy = cluster.pod(namespace, "healthy")
    assert cstatus(healthy)["state"].get("running")
    assert cstatus(healthy)["restartCount"] == 0
    ticks = node_container_log(node, namespace, "healthy", "app")
    assert len(ticks) >= 5 and ticks[-1].startswith("tick ")



# -- pod updates and deadlines ---------------------------------------------------------


def test_active_deadline_covers_init_containers(cluster, shared_wasmlet_node, namespace,
                                                wasm_images):
    """activeDeadlineSeconds counts from the pod's start, init containers
    included: a hanging init container is stopped at the deadline."""
    node = shared_wasmlet_node
    cluster.create(wasm_pod("slow-init", [wasm_container("app", wasm_images["hello"][0])],
                            init_containers=[wasm_container("init", wasm_images["spin"][0])],
                            node=node.name, activeDeadlineSeconds=3), namespace)
    pod = cluster.wait_pod_phase(namespace, "slow-init", {"Succeeded", "Failed"}, 10)
    st = pod["status"]
    assert st["phase"] == "Failed" and st.get("reason") == "DeadlineExceeded", st
    t = terminated(pod, "init", init=True)
    assert t and t["exitCode"] == 137, st


def test_active_deadline_shortened_on_a_running_pod(cluster, shared_wasmlet_node, namespace,
                                                    wasm_images):
    """activeDeadlineSeconds may be lowered on a running pod; the node
    applies the new deadline."""
    node = shared_wasmlet_node
    cluster.create(wasm_pod("shortened", [wasm_container("app", wasm_images["spin"][0])],
                            node=node.name, activeDeadlineSeconds=600), namespace)
    pod_where(cluster, namespace, "shortened",
              lambda p: (cstatus(p) or {}).get("state", {}).get("running"), 60)
    cluster.kubectl(["patch", "pod", "shortened", "-n", namespace, "--type", "merge",
                     "-p", '{"spec": {"activeDeadlineSeconds": 2}}'], json=False)
    pod = cluster.wait_pod_phase(namespace, "shortened", {"Succeeded", "Failed"}, 10)
    assert pod["status"].get("reason") == "DeadlineExceeded", pod["status"]


def test_container_image_update_restarts_the_container(cluster, shared_wasmlet_node, namespace,
                                                       wasm_images):
    """A container's image is mutable on a running pod: the kubelet stops
    the container and starts it again from the new image."""
    node = shared_wasmlet_node
    cluster.create(wasm_pod("swap", [wasm_container("app", wasm_images["ticker"][0], ["200"])],
                            node=node.name, restart_policy="Always"), namespace)
    pod_where(cluster, namespace, "swap",
              lambda p: (cstatus(p) or {}).get("state", {}).get("running"), 60)
    new_image, digest = wasm_images["spin"]
    patch = [{"op": "replace", "path": "/spec/containers/0/image", "value": new_image}]
    cluster.kubectl(["patch", "pod", "swap", "-n", namespace, "--type", "json",
                     "-p", json.dumps(patch)], json=False)
    pod = pod_where(cluster, namespace, "swap",
                    lambda p: cstatus(p)["image"] == new_image
                    and cstatus(p)["imageID"].endswith(digest)
                    and cstatus(p)["state"].get("running"), 10,
                    desc="container running the new image")
    assert cstatus(pod)["restartCount"] == 1
    assert "Killing" in event_reasons(cluster, namespace, "swap")
