"""The control plane's floor: the pod start latency of the same pods, created
the same way and observed through the same watch, when the "kubelet" does
nothing but the one status PATCH a start needs.

A fake Node (bench-floor) carries the labels and taints of a wasmlet node
and reports Ready; the scheduler places the pods there as it places them on
wasmlet. A fake kubelet, a child process, watches the pods bound to that
node and, the moment one arrives, PATCHes its status to Running with a body
shaped like wasmlet's (phase, five conditions, one running container), from
a pool of PATCH_THREADS (4) threads. Nothing is pulled, mounted or run, no
Events are posted and no token is requested: what remains is the API
server, etcd, the scheduler and the watch fan-out, plus a Python client's
own cost.

Also measured: bound pods (spec.nodeName set at creation, no scheduler), to
split the floor into scheduling and the rest; and, for reference, a burst
whose "kubelet" first makes the TokenRequest each pod's projected
service-account token volume needs (bound to the pod, as a kubelet's is;
up to TOKEN_THREADS at once) and then PATCHes: the two API round trips in
a row that any kubelet's start of such a pod makes, where the floor makes
one. It asks as the cluster admin, so the Node authorizer's checks (and the
retries they cause right after binding) are not in it.
"""

import http.client
import json
import multiprocessing
import queue
import threading
import time

import kit

NODE = "bench-floor"
PATCH_THREADS = 4
TOKEN_THREADS = 32


def rfc3339_now():
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + "Z"


def running_status(uid_name, container_names, image):
    now = rfc3339_now()
    conds = [{"type": t, "status": "True", "lastProbeTime": None, "lastTransitionTime": now}
             for t in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady",
                       "PodScheduled")]
    return {
        "phase": "Running", "conditions": conds, "hostIP": "127.0.0.1",
        "hostIPs": [{"ip": "127.0.0.1"}], "podIP": "127.0.0.1", "podIPs": [{"ip": "127.0.0.1"}],
        "startTime": now,
        "containerStatuses": [{
            "name": c, "ready": True, "restartCount": 0, "started": True, "image": image,
            "imageID": image, "containerID": f"floor://{uid_name}-{c}",
            "state": {"running": {"startedAt": now}}} for c in container_names],
    }


def node_object():
    labels = {"kubernetes.io/arch": "wasm32-wasi", "kubernetes.io/os": "wasip1",
              "kubernetes.io/hostname": NODE, "beta.kubernetes.io/arch": "wasm32-wasi"}
    taints = [{"key": "kubernetes.io/arch", "value": "wasm32-wasi", "effect": e}
              for e in ("NoSchedule", "NoExecute")]
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": NODE, "labels": labels}, "spec": {"taints": taints}}


def node_status():
    now = rfc3339_now()
    res = {"cpu": "2", "memory": "8Gi", "pods": "1100", "ephemeral-storage": "10Gi"}
    conds = [{"type": "Ready", "status": "True", "reason": "KubeletReady",
              "message": "bench floor", "lastHeartbeatTime": now, "lastTransitionTime": now}]
    for t in ("MemoryPressure", "DiskPressure", "PIDPressure"):
        conds.append({"type": t, "status": "False", "reason": "KubeletHasNo" + t,
                      "lastHeartbeatTime": now, "lastTransitionTime": now})
    return {"status": {"capacity": res, "allocatable": res, "conditions": conds,
                       "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                       "nodeInfo": {"architecture": "wasm32-wasi", "operatingSystem": "wasip1",
                                    "kubeletVersion": "v1.37.2-floor"}}}


def _fake_kubelet(api_args, ready, token):
    """Child process: watch pods bound to NODE, PATCH each one Running once
    (after its TokenRequest when token is set), and keep the Node's
    heartbeat fresh."""
    api = kit.Api(*api_args)
    work = queue.Queue()
    tokens = queue.Queue()

    def requester():
        while True:
            item = tokens.get()
            ns, name, uid, sa = item[0], item[1], item[2], item[5]
            body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                    "spec": {"expirationSeconds": 3607,
                             "boundObjectRef": {"apiVersion": "v1", "kind": "Pod",
                                                "name": name, "uid": uid}}}
            api.request("POST", f"/api/v1/namespaces/{ns}/serviceaccounts/{sa}/token", body)
            work.put(item[:5])

    def patcher():
        while True:
            ns, name, uid, containers, image = work.get()
            body = {"metadata": {"uid": uid},
                    "status": running_status(uid, containers, image)}
            api.request("PATCH", f"/api/v1/namespaces/{ns}/pods/{name}/status", body,
                        content_type="application/merge-patch+json")

    def heartbeat():
        while True:
            time.sleep(5)
            api.request("PATCH", f"/api/v1/nodes/{NODE}/status", node_status(),
                        content_type="application/merge-patch+json")

    for _ in range(PATCH_THREADS):
        threading.Thread(target=patcher, daemon=True).start()
    for _ in range(TOKEN_THREADS if token else 0):
        threading.Thread(target=requester, daemon=True).start()
    threading.Thread(target=heartbeat, daemon=True).start()
    seen = set()
    path = (f"/api/v1/pods?watch=1&fieldSelector=spec.nodeName%3D{NODE}"
            f"&allowWatchBookmarks=false&timeoutSeconds=3600")
    while True:
        c = http.client.HTTPSConnection(api.host, api.port, context=api.ctx)
        try:
            c.request("GET", path, headers={"Accept": "application/json"})
            r = c.getresponse()
            ready.set()
            while True:
                line = r.readline()
                if not line:
                    break
                ev = json.loads(line)
                p = ev.get("object") or {}
                md = p.get("metadata") or {}
                if ev.get("type") not in ("ADDED", "MODIFIED") or md.get("uid") in seen:
                    continue
                if md.get("deletionTimestamp") or (p.get("status") or {}).get("phase") in (
                        "Running", "Succeeded", "Failed"):
                    continue
                seen.add(md["uid"])
                spec = p.get("spec") or {}
                cs = spec.get("containers") or []
                item = (md["namespace"], md["name"], md["uid"], [x["name"] for x in cs],
                        cs[0].get("image", "") if cs else "",
                        spec.get("serviceAccountName") or "default")
                (tokens if token else work).put(item if token else item[:5])
        except (http.client.HTTPException, OSError, ValueError):
            time.sleep(0.05)
        finally:
            c.close()


class Floor:
    def __init__(self, env, token=False):
        self.env = env
        self.token = token
        self.proc = None

    def __enter__(self):
        api = self.env.api
        api.request("DELETE", f"/api/v1/nodes/{NODE}")
        api.must("POST", "/api/v1/nodes", node_object(), ok=(201,))
        api.must("PATCH", f"/api/v1/nodes/{NODE}/status", node_status(),
                 content_type="application/merge-patch+json")
        mp = multiprocessing.get_context("fork")
        ready = mp.Event()
        args = tuple(str(a) for a in self.env.api_args())
        self.proc = mp.Process(target=_fake_kubelet, args=(args, ready, self.token),
                               daemon=True)
        self.proc.start()
        if not ready.wait(30):
            raise RuntimeError("fake kubelet did not start")
        return self

    def __exit__(self, *exc):
        self.proc.terminate()
        self.proc.join(5)
        self.env.api.request("DELETE", f"/api/v1/nodes/{NODE}")


def _record(name, sent, done, tl):
    r = {"name": name}
    if tl.get("started") is None:
        r["missing"] = True
        return r
    r["e2e_ms"] = (tl["started"] - sent) * 1000.0
    r["kubelet_ms"] = ((tl["started"] - tl["scheduled"]) * 1000.0
                       if tl.get("scheduled") else None)
    r["create_ms"] = (done - sent) * 1000.0
    r["schedule_ms"] = (tl["scheduled"] - done) * 1000.0 if tl.get("scheduled") else None
    return r


def _summ(records):
    ok = [r for r in records if not r.get("missing")]
    return {"n": len(records), "missing": len(records) - len(ok),
            "e2e": kit.summary([r["e2e_ms"] for r in ok]),
            "kubelet": kit.summary([r["kubelet_ms"] for r in ok if r["kubelet_ms"] is not None]),
            "create": kit.summary([r["create_ms"] for r in ok]),
            "schedule": kit.summary([r["schedule_ms"] for r in ok
                                     if r["schedule_ms"] is not None])}


def _batch(env, label, count, bound, sequential, workdir, image):
    ns = kit.namespace(env, f"floor-{label}")
    watch = kit.Watch(env.api_args(), ns, workdir)
    try:
        pods = [kit.pod(f"{label}-{i}", image, ["3600000"],
                        node=None if bound else NODE, node_name=NODE if bound else None)
                for i in range(count)]
        sends = {}
        if sequential:
            for p in pods:
                n = p["metadata"]["name"]
                sent, done, st, obj = env.api.create_pod(ns, p)
                if st != 201:
                    raise RuntimeError(f"create {n}: HTTP {st}: {obj}")
                sends[n] = (sent, done)
                watch.wait(lambda ev, n=n: kit.timelines(ev).get(n, {}).get("started"), 60,
                           f"{n} Running")
                time.sleep(0.05)
        else:
            res = kit.run_parallel(lambda p: env.api.create_pod(ns, p), pods, 25)
            for p, (sent, done, st, obj) in zip(pods, res):
                if st != 201:
                    raise RuntimeError(f"create: HTTP {st}: {obj}")
                sends[p["metadata"]["name"]] = (sent, done)
            watch.wait(lambda ev: all(kit.timelines(ev).get(n, {}).get("started")
                                      for n in sends), 120, f"{count} floor pods Running")
        time.sleep(0.3)
        tls = kit.timelines(watch.events())
        return [_record(n, s, d, tls.get(n, {})) for n, (s, d) in sends.items()]
    finally:
        watch.close()
        env.api.delete_pods(ns, grace=0)
        kit.wait_pods_gone(env, ns, 120)
        env.api.delete_namespace(ns)


def run(env, quick=False, burst=100, rounds=None, tag=""):
    """The floor cells; rounds: burst rounds per cell (default 3, quick 1).
    tag keeps pod names apart when the floor is measured twice in a run."""
    image = f"{env.cluster.registry}/bench/floor:v1"  # never pulled
    seq_n = 5 if quick else 20
    rounds = rounds or (1 if quick else 3)
    burst = 30 if quick else burst
    cells = {}
    with Floor(env):
        kit.log(f"floor: {seq_n} pods one at a time, scheduled")
        cells["seq/scheduled"] = {"rounds": [_batch(env, f"fs{tag}", seq_n, False, True,
                                                    env.workdir, image)]}
        kit.log(f"floor: {seq_n} pods one at a time, bound (no scheduler)")
        cells["seq/bound"] = {"rounds": [_batch(env, f"fb{tag}", seq_n, True, True,
                                                env.workdir, image)]}
        for kind, bound in (("burst/scheduled", False), ("burst/bound", True)):
            cells[kind] = {"rounds": []}
            for r in range(rounds):
                kit.log(f"floor: {kind} round {r + 1}/{rounds} ({burst} at once)")
                cells[kind]["rounds"].append(
                    _batch(env, f"f{'b' if bound else 's'}{tag}{r}", burst, bound, False,
                           env.workdir, image))
    with Floor(env, token=True):
        kind = "burst/scheduled+token"
        cells[kind] = {"rounds": []}
        for r in range(rounds):
            kit.log(f"floor: {kind} round {r + 1}/{rounds} ({burst} at once)")
            cells[kind]["rounds"].append(
                _batch(env, f"ft{tag}{r}", burst, False, False, env.workdir, image))
    return summarize({"burst": burst, "cells": cells})


def merge(a, b):
    """One floor result from two runs (before and after the latency part):
    their rounds together, summaries recomputed."""
    cells = {}
    for key in a["cells"]:
        rounds = a["cells"][key]["rounds"] + b["cells"].get(key, {}).get("rounds", [])
        cells[key] = {"rounds": rounds}
    return summarize({"burst": a["burst"], "cells": cells, "runs": 2})


def summarize(res):
    for cell in res["cells"].values():
        sums = [_summ(r) for r in cell["rounds"]]
        cell["round_summaries"] = sums
        cell["summary"] = {
            "n": sum(s["n"] for s in sums), "missing": sum(s["missing"] for s in sums),
            **{m: {q: kit.median([s[m].get(q) for s in sums]) for q in ("p50", "p90", "p99",
                                                                        "max")}
               for m in ("e2e", "kubelet", "create", "schedule")}}
    return res

