"""Churn: sustained pods per second through the whole life of a short pod:
create, schedule, run to completion (hello), report Succeeded, delete.

Open loop with a bound: at each offered rate, pods are created on a fixed
schedule (i / rate seconds after the step starts) unless 100 are already in
flight, in which case creation waits (the achieved offered rate then drops,
and the report shows it). A watch in this process sees each pod Succeeded
and a pool of 4 threads DELETEs it (a terminal pod is removed at once); a
pod is complete when the watch sees it DELETED. The sustained rate of a
step is its completions per second from the first to the last one: the
pipeline's throughput, whether it kept up with the offered rate or fell
behind and drained a backlog.

Where the limit comes from: every step records CPU seconds of wasmlet, the
API server, etcd, the scheduler, the controller manager, this benchmark
client, and everything else on the machine (the rest of /proc/stat: other
work on a shared box shows up there). A step where the machine's 2 cores
are busy is bound by the machine; one where they are not, and completions
still lag, is bound by a serial step (a queue) somewhere.
"""

import http.client
import json
import os
import queue
import socket
import threading
import time

import kit
import latency


class Tracker:
    """The in-process watch: phase changes and deletions, and the deletes."""

    def __init__(self, env, ns):
        self.env = env
        self.ns = ns
        self.lock = threading.Lock()
        self.created = {}    # name -> send instant
        self.scheduled = {}  # name -> instant
        self.succeeded = {}  # name -> instant
        self.status_writes = []  # instants of events that changed a pod's status
        self.last_status = {}
        self.deleted = {}    # name -> instant
        self.failed = set()
        self.deletes = queue.Queue()
        self.stop = False
        api = env.api
        rv = api.must("GET", f"/api/v1/namespaces/{ns}/pods?limit=1")["metadata"][
            "resourceVersion"]
        self.path = (f"/api/v1/namespaces/{ns}/pods?watch=1&resourceVersion={rv}"
                     f"&timeoutSeconds=3600")
        self.conn = http.client.HTTPSConnection(api.host, api.port, context=api.ctx)
        self.conn.request("GET", self.path, headers={"Accept": "application/json"})
        self.resp = self.conn.getresponse()
        self.thread = threading.Thread(target=self.read, daemon=True)
        self.thread.start()
        self.deleters = [threading.Thread(target=self.delete_loop, daemon=True)
                         for _ in range(4)]
        for t in self.deleters:
            t.start()

    def read(self):
        while not self.stop:
            try:
                line = self.resp.readline()
            except (OSError, http.client.HTTPException):
                return
            if not line:
                return
            now = time.time()
            ev = json.loads(line)
            p = ev.get("object") or {}
            name = (p.get("metadata") or {}).get("name")
            phase = (p.get("status") or {}).get("phase")
            status = json.dumps(p.get("status") or {}, sort_keys=True)
            with self.lock:
                if name not in self.scheduled and (p.get("spec") or {}).get("nodeName"):
                    self.scheduled[name] = now
                if ev.get("type") == "MODIFIED" and self.last_status.get(name) not in (
                        None, status) and (p.get("status") or {}).get("containerStatuses"):
                    self.status_writes.append(now)
                self.last_status[name] = status
                if ev.get("type") == "DELETED":
                    self.last_status.pop(name, None)
                    self.deleted.setdefault(name, now)
                elif phase in ("Succeeded", "Failed") and name not in self.succeeded:
                    self.succeeded[name] = now
                    if phase == "Failed":
                        self.failed.add(name)
                    self.deletes.put(name)

    def delete_loop(self):
        while True:
            name = self.deletes.get()
            if name is None:
                return
            self.env.api.delete_pod(self.ns, name)

    def in_flight(self):
        with self.lock:
            return len(self.created) - len(self.deleted)

    def close(self):
        self.stop = True
        for _ in self.deleters:
            self.deletes.put(None)
        # Shut the socket down rather than close the response: close() would
        # wait for the reader thread's lock on the stream, which it holds
        # while blocked in readline(); a shutdown ends that read.
        try:
            self.conn.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.thread.join(5)
        self.conn.close()


def step(env, tracker, image, node, label, rate, seconds, cap=100):
    """One offered rate; returns its throughput, latencies, stage medians
    and CPU split."""
    ns = tracker.ns
    pids = env.component_pids()
    meter = kit.CpuMeter({"wasmlet": node.pid, "bench client": os.getpid(),
                          **{k: pids[k] for k in ("kube-apiserver", "etcd", "kube-scheduler",
                                                  "kube-controller-manager") if k in pids}})
    n_total = int(rate * seconds)
    names = [f"{label}-{i}" for i in range(n_total)]
    lock = threading.Lock()
    nxt = [0]
    t0 = time.time()
    waited = [0.0]

    def creator():
        while True:
            with lock:
                i = nxt[0]
                nxt[0] += 1
            if i >= n_total:
                return
            due = t0 + i / rate
            now = time.time()
            if due > now:
                time.sleep(due - now)
            w0 = time.time()
            while tracker.in_flight() >= cap:
                time.sleep(0.005)
            waited[0] += time.time() - w0
            p = kit.pod(names[i], image, (), node=node.name, labels={"churn": label})
            with tracker.lock:
                tracker.created[names[i]] = time.time()
            sent, done, st, obj = env.api.create_pod(ns, p)
            if st != 201:
                with tracker.lock:
                    tracker.deleted[names[i]] = time.time()  # never in flight
                    tracker.failed.add(names[i])

    meter.start()
    threads = [threading.Thread(target=creator) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    t_created = time.time()
    # Drain: the step's pods finish and go.
    deadline = time.time() + 60
    while time.time() < deadline:
        with tracker.lock:
            left = [n for n in names if n not in tracker.deleted]
        if not left:
            break
        time.sleep(0.1)
    t_end = time.time()
    usage = meter.stop()  # CPU over the whole step, drain included
    with tracker.lock:
        created = {n: tracker.created[n] for n in names if n in tracker.created}
        succ = {n: tracker.succeeded[n] for n in names if n in tracker.succeeded}
        dele = {n: tracker.deleted[n] for n in names if n in tracker.deleted}
        failed = [n for n in names if n in tracker.failed]
        sched = {n: tracker.scheduled[n] for n in names if n in tracker.scheduled}
        writes = [t for t in tracker.status_writes if t0 <= t <= t_end]
    marks = latency.parse_node_log(node.log_text(), ns)
    done_at = sorted(dele.values())
    sustained = ((len(done_at) - 1) / (done_at[-1] - done_at[0])
                 if len(done_at) > 2 and done_at[-1] > done_at[0] else None)
    lat_succ = [(succ[n] - created[n]) * 1000 for n in succ if n in created]
    lat_del = [(dele[n] - created[n]) * 1000 for n in dele if n in created]
    def med(pairs):
        v = [(b - a) * 1000 for a, b in pairs if a is not None and b is not None]
        return kit.pct(v, 50) if v else None

    m = {n: marks.get(n, {}) for n in names}
    stages = {
        "create_to_scheduled": med((created.get(n), sched.get(n)) for n in names),
        "scheduled_to_node": med((sched.get(n), m[n].get("started")) for n in names),
        "node_to_started": med((m[n].get("started"), m[n].get("Started")) for n in names),
        "started_to_succeeded": med((m[n].get("Started"), succ.get(n)) for n in names),
        "succeeded_to_deleted": med((succ.get(n), dele.get(n)) for n in names),
    }
    retries = sum(1 for n in names if any(e not in ("Pulling", "Pulled", "Created", "Started")
                                          for e in m[n].get("events", [])))
    return {
        "stages_p50_ms": stages, "pods_with_mount_retries": retries,
        "status_writes_per_s": len(writes) / max(1e-9, t_end - t0),
        "offered_rate": rate, "seconds": seconds, "pods": n_total,
        "achieved_create_rate": len(created) / max(1e-9, t_created - t0),
        "sustained_rate": sustained,
        "overall_rate": len(dele) / max(1e-9, t_end - t0),
        "completed": len(dele), "failed": len(failed),
        "drain_s": t_end - t_created, "cap_wait_s": waited[0],
        "to_succeeded_ms": kit.summary(lat_succ), "to_deleted_ms": kit.summary(lat_del),
        "cpu": usage,
    }


def run(env, node, quick=False):
    image = env.push_example("hello")
    # 60/s is the target rate; the lower steps show where a limit sets in.
    rates = [5, 20] if quick else [5, 10, 20, 40, 60]
    seconds = 5 if quick else 12
    ns = kit.namespace(env, "churn")
    tracker = Tracker(env, ns)
    steps = []
    try:
        # One pod first: the module is pulled and compiled before measuring.
        steps_warm = step(env, tracker, image, node, "warm", 2, 1)
        kit.log(f"churn: warm-up {steps_warm['completed']} pods")
        for r in rates:
            kit.log(f"churn: offered {r} pods/s for {seconds}s")
            s = step(env, tracker, image, node, f"r{r}", r, seconds)
            steps.append(s)
            sh = s["cpu"]["share"]
            kit.log(f"churn: {r}/s offered -> {s['sustained_rate'] or 0:.1f}/s sustained, "
                    f"p50 to Succeeded {s['to_succeeded_ms'].get('p50') or 0:.0f} ms, "
                    f"CPU wasmlet {sh.get('wasmlet', 0):.2f} apiserver "
                    f"{sh.get('kube-apiserver', 0):.2f} etcd {sh.get('etcd', 0):.2f} others "
                    f"{sh.get('others', 0):.2f}")
            if s["failed"] or s["completed"] < s["pods"] * 0.5:
                kit.log("churn: step saturated badly; stopping here")
                break
    finally:
        tracker.close()
        env.api.delete_pods(ns, grace=0)
        env.api.delete_namespace(ns)
    best = max((s["sustained_rate"] or 0 for s in steps), default=0)
    return {"steps": steps, "max_sustained_rate": best}
