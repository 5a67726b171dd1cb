"""Pod start latency, as SIG Scalability's pod startup SLI defines it: from
the pod's creation to the instant all its containers are reported started,
observed through a watch.

The creation instant is the client's send time of the POST, not the pod's
creationTimestamp: the API server stamps that with 1 s resolution, which is
longer than what is being measured. The send time is earlier than the stamp
by the request's transit and admission, so the figures err on the slow side.
The end instant is when our watch (a process of its own, see kit.Watch)
receives the first version of the pod whose every container is running or
terminated: a hello-world module may finish before the node's first status
write, and then the first status it ever shows is Succeeded.

Cells: {hello (runs to completion), ticker (long-running)} x {one pod at a
time, 100 created at once} x {module cached on the node (warm), never seen
by the node (cold: a new digest, so a pull and a compile)}, plus ticker in
"lean" pods (no service-account token volume, no service links), whose start
needs no API call from the node but the status write, and ticker in pods
that declare a containerPort ("net"), each of which gets a network sandbox
(a namespace and the CNI ADD), so that the sandbox's share of pod start
shows. A cold module is
the same code with one extra custom section, so only the digest differs.

The stage breakdown joins three clocks that are one clock (CLOCK_REALTIME
on one machine): the client, the watch, and wasmlet's own log, whose lines
carry nanosecond timestamps:

  create       POST sent -> 201 received (admission, etcd write)
  schedule     201 -> our watch sees spec.nodeName (scheduler, binding)
  deliver      our watch sees the binding -> wasmlet logs "started" (its
               watch delivered the pod, admission, worker thread started)
  volumes      "started" -> "Pulling" (pod dir, projected token: a
               TokenRequest and the kube-root-ca.crt ConfigMap)
  pull         "Pulling" -> "Pulled" (registry round trips, or a cache hit)
  load         "Pulled" -> "Created" (compile, or the compiled cache, or
               the module already in memory)
  status       "Created" -> our watch sees the pod started (the status
               writer's PATCH and the watch delivering it; instantiation
               runs meanwhile on the container's thread)

The kubelet's share is "status watch event to Running": our watch seeing
the binding -> our watch seeing the started status.

The breakdown of the node's part comes from wasmlet's own start trace: one
line per pod, `pod start trace {json}`, with the stages wasmlet stamps
(src/pod/trace.h; the same figures feed the
wasmlet_pod_start_stage_duration_seconds histograms of /metrics):

  create, schedule   as above (the client and our watch)
  watch delivery     our watch sees the binding -> wasmlet's watch delivered
                     the pod (seen_wall_ns of the trace)
  admission          delivered -> its worker started
  sandbox, volumes   the pod's network sandbox; its volumes (the projected
                     token: a TokenRequest, kube-root-ca.crt from a watch)
  pull, load         the first app container's pull and module load
  other              the rest up to the running state: container
                     environment (service links), thread starts, Events
  status write       running state published -> the status write carrying
                     it acknowledged (the status writer's queue and PATCH)
  to our watch       that acknowledgement -> our watch sees it
instantiate runs beside the status write on the container's thread, so it
is shown but not summed.
"""

import calendar
import json
import os
import re
import time

import kit

STAGES = ["create", "schedule", "deliver", "volumes", "pull", "load", "status"]
# The stages of the breakdown from wasmlet's start trace, in order; they sum
# to the pod's start latency but for "instantiate" (beside "status").
TRACE_STAGES = ["create", "schedule", "watch", "admission", "sandbox", "volumes", "pull", "load",
                "other", "status", "to_watch", "instantiate"]

_TS = r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z)"
# "started" as the pod table logs a new pod's worker started ("new -> running:
# started"; older wasmlets logged "started" alone).
_RE_STARTED = re.compile(_TS + r" I pod ([^/\s]+)/(\S+) \(([^)]*)\): (?:new -> running: )?started$")
_RE_EVENT = re.compile(_TS + r" I pod ([^/\s]+)/(\S+?)(?: container (\S+))?: (\w+): (.*)$")


_RE_TRACE = re.compile(_TS + r" I pod start trace (\{.*\})$")


def parse_traces(text, ns=None):
    """{pod name: trace dict} from wasmlet's `pod start trace {json}` lines."""
    out = {}
    for line in text.splitlines():
        m = _RE_TRACE.match(line)
        if not m:
            continue
        try:
            t = json.loads(m.group(2))
        except ValueError:
            continue
        pns, _, name = t.get("pod", "").partition("/")
        if ns and pns != ns:
            continue
        out.setdefault(name, t)
    return out


def trace_stages(sched, started, trace):
    """The node's stages (ms) of one pod from its start trace, joined to our
    watch's view (sched: binding seen, started: started seen; epoch s)."""
    if not trace:
        return {}
    seen = trace["seen_wall_ns"] / 1e9
    st = {k: trace.get(f"{k}_ms") for k in ("admission", "sandbox", "volumes", "pull", "load",
                                              "instantiate", "status")}
    running_at = trace.get("running_at_ms")
    acked_at = trace.get("acked_at_ms")
    known = [v for k, v in st.items() if k not in ("instantiate", "status") and v is not None]
    st["other"] = running_at - sum(known) if running_at is not None else None
    st["watch"] = (seen - sched) * 1000.0 if sched is not None else None
    st["to_watch"] = ((started - seen) * 1000.0 - acked_at
                      if started is not None and acked_at is not None else None)
    st["node"] = trace.get("node_ms")
    return st


def rfc3339(ts):
    """Epoch seconds of wasmlet's log timestamps (nanoseconds, Z)."""
    base, _, frac = ts.rstrip("Z").partition(".")
    secs = calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S"))
    return secs + (float("0." + frac) if frac else 0.0)


def parse_node_log(text, ns=None):
    """{pod name: {"started": t, "Pulling": t, ..., "events": [reasons]}} from
    wasmlet's log: first instant of each mark, per pod."""
    out = {}
    for line in text.splitlines():
        m = _RE_STARTED.match(line)
        if m:
            if ns and m.group(2) != ns:
                continue
            out.setdefault(m.group(3), {}).setdefault("started", rfc3339(m.group(1)))
            continue
        m = _RE_EVENT.match(line)
        if m:
            if ns and m.group(2) != ns:
                continue
            d = out.setdefault(m.group(3), {})
            d.setdefault(m.group(5), rfc3339(m.group(1)))
            d.setdefault("events", []).append(m.group(5))
    return out


def pod_record(name, sent, done, tl, marks, trace=None):
    """Latency and stages (ms) of one pod."""
    r = {"name": name}
    started = tl.get("started")
    if started is None:
        r["missing"] = True
        return r
    ms = lambda a, b: None if a is None or b is None else (b - a) * 1000.0  # noqa: E731
    sched = tl.get("scheduled")
    r["e2e_ms"] = ms(sent, started)
    r["kubelet_ms"] = ms(sched, started)
    r["wasmlet_internal_ms"] = ms(marks.get("started"), marks.get("Started"))
    r["stages"] = {
        "create": ms(sent, done),
        "schedule": ms(done, sched),
        "deliver": ms(sched, marks.get("started")),
        "volumes": ms(marks.get("started"), marks.get("Pulling")),
        "pull": ms(marks.get("Pulling"), marks.get("Pulled")),
        "load": ms(marks.get("Pulled"), marks.get("Created")),
        "status": ms(marks.get("Created"), started),
    }
    r["trace"] = trace_stages(sched, started, trace)
    if r["trace"]:
        r["trace"]["create"] = r["stages"]["create"]
        r["trace"]["schedule"] = r["stages"]["schedule"]
    r["retries"] = [e for e in marks.get("events", []) if e not in
                    ("Pulling", "Pulled", "Created", "Started")]
    return r


def cell_summary(records):
    ok = [r for r in records if not r.get("missing")]
    out = {
        "n": len(records),
        "missing": len(records) - len(ok),
        "e2e": kit.summary([r["e2e_ms"] for r in ok]),
        "kubelet": kit.summary([r["kubelet_ms"] for r in ok if r["kubelet_ms"] is not None]),
        "wasmlet_internal": kit.summary([r["wasmlet_internal_ms"] for r in ok
                                         if r["wasmlet_internal_ms"] is not None]),
        "stages_p50": {},
        "with_retries": sum(1 for r in ok if r["retries"]),
    }
    for s in STAGES:
        vals = [r["stages"][s] for r in ok if r["stages"].get(s) is not None]
        out["stages_p50"][s] = kit.pct(vals, 50) if vals else None
    traced = [r for r in ok if r.get("trace")]
    out["traced"] = len(traced)
    out["trace_p50"] = {}
    out["trace_p99"] = {}
    for s in TRACE_STAGES + ["node"]:
        vals = [r["trace"][s] for r in traced if r["trace"].get(s) is not None]
        out["trace_p50"][s] = kit.pct(vals, 50) if vals else None
        out["trace_p99"][s] = kit.pct(vals, 99) if vals else None
    return out


def thread_cpu(pid):
    """{thread name: CPU seconds} over a process's live threads (wasmlet
    names each by its role: api-mux, status-writer, ctr:<name>...), from
    each thread's schedstat (nanoseconds; /proc's utime and stime count
    10 ms ticks, too coarse for a thread that ran 1 ms)."""
    out = {}
    task = f"/proc/{pid}/task"
    try:
        tids = os.listdir(task)
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"{task}/{tid}/comm") as f:
                name = f.read().strip()
            with open(f"{task}/{tid}/schedstat") as f:
                ns = int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
        out[name] = out.get(name, 0.0) + ns / 1e9
    return out


class CpuWindow:
    """CPU used from the first POST of a burst to the watch seeing every pod
    started: by the control plane's components, by wasmlet in all, and by
    wasmlet's threads per name. Threads that ended within the window (a
    pod's start thread, a TokenRequest's) count in the total only, as
    "(ended)": the total (utime + stime, sampled by the tick) less the live
    threads' exact time, so it carries the tick's sampling noise."""

    def __init__(self, env, node):
        self.pids = dict(env.component_pids())
        self.node = node
        self.t0 = time.monotonic()
        self.c0 = {k: kit.proc_cpu(p) for k, p in self.pids.items()}
        self.w0 = kit.proc_cpu(node.pid)
        self.th0 = thread_cpu(node.pid)

    def end(self):
        window = time.monotonic() - self.t0
        c1 = {k: kit.proc_cpu(p) for k, p in self.pids.items()}
        w1 = kit.proc_cpu(self.node.pid)
        th1 = thread_cpu(self.node.pid)
        comps = {k: c1[k] - self.c0[k] for k in self.pids
                 if c1.get(k) is not None and self.c0.get(k) is not None}
        threads = {}
        for name, v in th1.items():
            # ctr:<container> threads are per pod: one role, "ctr:*".
            role = "ctr:*" if name.startswith("ctr:") else name
            threads[role] = threads.get(role, 0.0) + v - self.th0.get(name, 0.0)
        total = (w1 - self.w0) if w1 is not None and self.w0 is not None else None
        if total is not None:
            threads["(ended)"] = max(0.0, total - sum(threads.values()))
        return {"window_s": window, "components": comps, "wasmlet": total,
                "wasmlet_threads": {k: v for k, v in threads.items() if v > 0.0}}


class Runner:
    """Runs latency cells against one node."""

    def __init__(self, env, node, workdir):
        self.env = env
        self.node = node
        self.workdir = workdir
        self.baseline_threads = None
        self.cpu = {}  # label -> CpuWindow.end() of each burst
    def settle(self):
        """Waits for the node to have stopped every pod (thread count back
        to its idle level) so the next cell starts from the same place."""
        if self.baseline_threads is not None:
            if not kit.wait_threads_settle(self.node.pid, self.baseline_threads, 90):
                kit.log(f"node threads did not settle to {self.baseline_threads}: "
                        f"{kit.proc_status(self.node.pid, 'Threads')}")
        time.sleep(0.5)

    def cleanup(self, ns):
        self.env.api.delete_pods(ns, grace=0)
        kit.wait_pods_gone(self.env, ns, 180)
        self.settle()

    def collect(self, ns, sends, watch):
        events = watch.events()
        tls = kit.timelines(events)
        text = self.node.log_text()
        marks = parse_node_log(text, ns)
        traces = parse_traces(text, ns)
        return [pod_record(n, s, d, tls.get(n, {}), marks.get(n, {}), traces.get(n))
                for n, (s, d) in sends.items()]

    def sequential(self, label, images, args, count, lean=False, port=None):
        """count pods one after the other; images[i % len] for pod i."""
        ns = kit.namespace(self.env, f"lat-{label}")
        watch = kit.Watch(self.env.api_args(), ns, self.workdir)
        sends = {}
        try:
            for i in range(count):
                name = f"{label}-{i}"
                p = kit.pod(name, images[i % len(images)], args, node=self.node.name, lean=lean,
                            port=port)
                sent, done, st, obj = self.env.api.create_pod(ns, p)
                if st != 201:
                    raise RuntimeError(f"create {name}: HTTP {st}: {obj}")
                sends[name] = (sent, done)
                watch.wait(lambda ev, n=name: kit.timelines(ev).get(n, {}).get("started"), 120,
                           f"{name} started")
                time.sleep(0.05)  # let the node's log and status writer finish
            time.sleep(0.3)
            return self.collect(ns, sends, watch)
        finally:
            watch.close()
            self.cleanup(ns)
            self.env.api.delete_namespace(ns)

    def at_once(self, label, image, args, count, workers=25, lean=False, port=None):
        """count pods created at once (workers concurrent POSTs)."""
        ns = kit.namespace(self.env, f"lat-{label}")
        watch = kit.Watch(self.env.api_args(), ns, self.workdir)
        try:
            pods = [kit.pod(f"{label}-{i}", image, args, node=self.node.name, lean=lean,
                            port=port)
                    for i in range(count)]
            cpu = CpuWindow(self.env, self.node)
            res = kit.run_parallel(lambda p: self.env.api.create_pod(ns, p), pods, workers)
            sends = {}
            for p, (sent, done, st, obj) in zip(pods, res):
                if st != 201:
                    raise RuntimeError(f"create {p['metadata']['name']}: HTTP {st}: {obj}")
                sends[p["metadata"]["name"]] = (sent, done)

            def all_started(ev):
                tls = kit.timelines(ev)
                return all(tls.get(n, {}).get("started") for n in sends)

            watch.wait(all_started, 180, f"{count} pods of {label} started")
            self.cpu[label] = cpu.end()
            time.sleep(0.3)
            return self.collect(ns, sends, watch)
        finally:
            watch.close()
            self.cleanup(ns)
            self.env.api.delete_namespace(ns)


def run(env, node, quick=False):
    """All latency cells; returns the raw data (records and summaries)."""
    workdir = env.workdir
    runner = Runner(env, node, workdir)
    modules = {"hello": ((kit.EXAMPLES / "hello.wasm").read_bytes(), []),
               "ticker": ((kit.EXAMPLES / "ticker.wasm").read_bytes(), ["3600000"])}
    warm_images = {m: env.push(m, wasm) for m, (wasm, _) in modules.items()}

    # Warm the node: one pod per module pulls and compiles it.
    for m, (_, args) in modules.items():
        runner.sequential(f"warmup-{m}", [warm_images[m]], args, 1)
    runner.baseline_threads = kit.proc_status(node.pid, "Threads")
    kit.log(f"latency: node warmed, {runner.baseline_threads} threads idle")

    seq_warm = 5 if quick else 20
    seq_cold = 2 if quick else 5
    burst = 30 if quick else 100
    burst_rounds_warm = 1 if quick else 3
    burst_rounds_cold = 1 if quick else 2
    variant = [0]

    def cold_image(m):
        variant[0] += 1
        wasm = kit.with_custom_section(modules[m][0], f"bench-cold-{time.time_ns()}-{variant[0]}")
        return env.push(f"{m}-cold", wasm, tag=f"c{variant[0]}")

    cells = {}
    for m, (_, args) in modules.items():
        key = f"{m}/seq/warm"
        kit.log(f"latency: {key} ({seq_warm} pods)")
        cells[key] = {"rounds": [runner.sequential(f"{m}-sw", [warm_images[m]], args, seq_warm)]}

        key = f"{m}/seq/cold"
        kit.log(f"latency: {key} ({seq_cold} pods, each a new module)")
        imgs = [cold_image(m) for _ in range(seq_cold)]
        cells[key] = {"rounds": [runner.sequential(f"{m}-sc", imgs, args, seq_cold)]}

        key = f"{m}/burst/warm"
        cells[key] = {"rounds": []}
        for r in range(burst_rounds_warm):
            kit.log(f"latency: {key} round {r + 1}/{burst_rounds_warm} ({burst} pods at once)")
            cells[key]["rounds"].append(
                runner.at_once(f"{m}-bw{r}", warm_images[m], args, burst))

        key = f"{m}/burst/cold"
        cells[key] = {"rounds": []}
        for r in range(burst_rounds_cold):
            kit.log(f"latency: {key} round {r + 1}/{burst_rounds_cold} ({burst} pods at once, "
                    f"one new module)")
            cells[key]["rounds"].append(
                runner.at_once(f"{m}-bc{r}", cold_image(m), args, burst))

    # The long-running module once more, in lean pods (no token volume, no
    # service links): what pod start costs when the node needs no API call
    # but the status write, i.e. wasmlet's own share.
    args = modules["ticker"][1]
    key = "ticker-lean/seq/warm"
    kit.log(f"latency: {key} ({seq_warm} pods)")
    cells[key] = {"rounds": [runner.sequential("lean-sw", [warm_images["ticker"]], args,
                                               seq_warm, lean=True)]}
    key = "ticker-lean/burst/warm"
    cells[key] = {"rounds": []}
    for r in range(burst_rounds_warm):
        kit.log(f"latency: {key} round {r + 1}/{burst_rounds_warm} ({burst} pods at once)")
        cells[key]["rounds"].append(runner.at_once(f"lean-bw{r}", warm_images["ticker"], args,
                                                   burst, lean=True))

    # The long-running module in pods that declare a port: each gets a
    # network sandbox (a namespace, the CNI ADD: ptp with its IPAM; no
    # portmap, which runs only for a hostPort), so the trace's sandbox stage is that cost within pod start.
    if os.geteuid() == 0:  # pod networking needs root
        key = "ticker-net/seq/warm"
        kit.log(f"latency: {key} ({seq_warm} pods)")
        cells[key] = {"rounds": [runner.sequential("net-sw", [warm_images["ticker"]], args,
                                                   seq_warm, port=8080)]}
        key = "ticker-net/burst/warm"
        cells[key] = {"rounds": []}
        for r in range(burst_rounds_warm):
            kit.log(f"latency: {key} round {r + 1}/{burst_rounds_warm} ({burst} pods at once)")
            cells[key]["rounds"].append(runner.at_once(f"net-bw{r}", warm_images["ticker"],
                                                       args, burst, port=8080))

    # CPU in each warm burst's window, by process and by wasmlet's threads.
    labels = {f"{m}/burst/warm": f"{m}-bw" for m in modules}
    labels.update({"ticker-lean/burst/warm": "lean-bw", "ticker-net/burst/warm": "net-bw"})
    for key, prefix in labels.items():
        if key in cells:
            cells[key]["cpu"] = [runner.cpu[f"{prefix}{r}"] for r in range(burst_rounds_warm)
                                 if f"{prefix}{r}" in runner.cpu]

    for key, cell in cells.items():
        cell["round_summaries"] = [cell_summary(r) for r in cell["rounds"]]
        cell["summary"] = merge_rounds(cell["round_summaries"])
    return {"burst": burst, "cells": cells}


def merge_rounds(sums):
    """The median over rounds of each figure (p50, p90, p99 per metric)."""
    out = {"rounds": len(sums), "n": sum(s["n"] for s in sums),
           "missing": sum(s["missing"] for s in sums),
           "with_retries": sum(s["with_retries"] for s in sums)}
    for metric in ("e2e", "kubelet", "wasmlet_internal"):
        out[metric] = {}
        for q in ("p50", "p90", "p99", "max"):
            out[metric][q] = kit.median([s[metric].get(q) for s in sums])
    out["stages_p50"] = {st: kit.median([s["stages_p50"].get(st) for s in sums])
                         for st in STAGES}
    out["traced"] = sum(s.get("traced", 0) for s in sums)
    for key in ("trace_p50", "trace_p99"):
        out[key] = {st: kit.median([(s.get(key) or {}).get(st) for s in sums])
                    for st in TRACE_STAGES + ["node"]}
    return out
