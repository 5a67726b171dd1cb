"""Resource limits of wasm containers: limits.memory caps a module's linear
memory (growing past it ends the container OOMKilled, exit code 137, while
its neighbours keep running), and limits.cpu throttles a CPU-bound module
the way CFS bandwidth control throttles a container."""

import calendar
import os
import threading
import time

import pytest

from kubetest import wait_for
from container_kit import (attach, container, create_pod, cri_lines, logs, push, raw_log,
                           start_module_node, wait_done, wait_event)


@pytest.fixture(scope="module")
def lim_node(cluster, tmp_path_factory):
    mnode = start_module_node(cluster, tmp_path_factory, "lim")
    for name in ("memhog", "ticker", "sha256", "hello"):
        setattr(mnode, name, push(cluster, name, f"lim/{name}"))
    try:
        yield mnode
    finally:
        mnode.factory.teardown()


@pytest.fixture
def node(lim_node, request):
    attach(request, lim_node)
    return lim_node


def cri_time(ts):
    """Seconds since the epoch of an RFC 3339 timestamp with nanoseconds."""
    date, _, rest = ts.partition("T")
    clock = rest.rstrip("Z")
    hms, _, frac = clock.partition(".")
    t = calendar.timegm(time.strptime(f"{date}T{hms}", "%Y-%m-%dT%H:%M:%S"))
    return t + (float("0." + frac) if frac else 0.0)


def test_memory_limit_oom_kills_only_the_hungry_container(cluster, node, namespace):
    create_pod(cluster, namespace, "oom", node.node, [
        container("hog", node.memhog, args=["512"],
                  resources={"limits": {"memory": "16Mi"}}),
        container("neighbour", node.ticker, args=["200"],
                  resources={"limits": {"memory": "16Mi"}}),
    ], restart="Never")

    def hog_ended():
        p = cluster.pod(namespace, "oom")
        for s in p["status"].get("containerStatuses") or []:
            if s["name"] == "hog" and s["state"].get("terminated"):
                return p
        return None

    p = wait_for(hog_ended, 40, desc="the memory hog to end")
    hog = [s for s in p["status"]["containerStatuses"] if s["name"] == "hog"][0]
    t = hog["state"]["terminated"]
    assert t["reason"] == "OOMKilled", t
    assert t["exitCode"] == 137
    out = logs(cluster, node.node, namespace, "oom", "hog")
    allocated = [int(line.split()[1]) for line in out.splitlines()
                 if line.startswith("allocated ")]
    assert allocated, out
    assert max(allocated) <= 16 * 1024, "the module held more than its limit"
    assert max(allocated) >= 8 * 1024, "the module was stopped long before its limit"
    assert "malloc failed" not in out     # the limit ends it, not a NULL from malloc
    wait_event(cluster, namespace, "oom", "OOMKilled")

    # The neighbour keeps running and ticking after the hog's end.
    ticks_then = logs(cluster, node.node, namespace, "oom", "neighbour").count("tick ")
    time.sleep(1.5)
    p = cluster.pod(namespace, "oom")
    nb = [s for s in p["status"]["containerStatuses"] if s["name"] == "neighbour"][0]
    assert "running" in nb["state"], nb
    assert p["status"]["phase"] == "Running"
    assert logs(cluster, node.node, namespace, "oom", "neighbour").count("tick ") > ticks_then
    cluster.delete("pod", "oom", namespace)


class ThreadSampler:
    """Samples the CPU time of every thread of a process (/proc/PID/task)
    in the background. wasmlet runs each container on a thread of its own,
    so a container's CPU use shows as one thread's."""

    def __init__(self, pid, interval=0.05):
        self.pid = pid
        self.interval = interval
        self.before = set(self.tids())
        self.seen = {}   # tid -> [first seen, last seen, cpu seconds]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.tick = os.sysconf("SC_CLK_TCK")
        self.thread.start()

    def tids(self):
        try:
            return [int(t) for t in os.listdir(f"/proc/{self.pid}/task")]
        except OSError:
            return []

    def cpu(self, tid):
        try:
            with open(f"/proc/{self.pid}/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / self.tick   # utime + stime

    def run(self):
        while not self.stop.is_set():
            now = time.monotonic()
            for tid in self.tids():
                if tid in self.before:
                    continue
                c = self.cpu(tid)
                if c is None:
                    continue
                rec = self.seen.setdefault(tid, [now, now, c])
                rec[1], rec[2] = now, c
            time.sleep(self.interval)

    def finish(self):
        self.stop.set()
        self.thread.join()
        return self.seen


def test_cpu_limit_throttles(cluster, node, namespace):
    # Both hash the same 64 MiB side by side (the box has two cores); one
    # may use 200m. The init container's output marks when both started.
    mib = "64"
    sampler = ThreadSampler(node.node.pid)
    create_pod(cluster, namespace, "cpu", node.node, [
        container("limited", node.sha256, args=[mib],
                  resources={"limits": {"cpu": "200m"}}),
        container("free", node.sha256, args=[mib]),
    ], initContainers=[container("mark", node.hello)])
    p = wait_done(cluster, namespace, "cpu", timeout=120)
    threads = sampler.finish()
    assert p["status"]["phase"] == "Succeeded", p["status"]
    digests = {c: logs(cluster, node.node, namespace, "cpu", c).strip()
               for c in ("limited", "free")}
    assert digests["limited"] == digests["free"] and len(digests["free"]) == 64

    def end_of(c):
        lines = cri_lines(raw_log(cluster, node.node, namespace, "cpu", c))
        assert lines, c
        return cri_time(lines[-1][0])

    start = end_of("mark")
    free = end_of("free") - start
    limited = end_of("limited") - start
    ratio = limited / free

    # The two hashing threads: the ones that used the most CPU. The
    # limited one lived longer; its CPU over its life is its rate.
    busy = sorted(threads.values(), key=lambda r: r[2], reverse=True)[:2]
    assert len(busy) == 2 and busy[1][2] > 0.5 * busy[0][2], busy
    (lf, ll, lc), (ff, fl, fc) = sorted(busy, key=lambda r: r[1] - r[0], reverse=True)
    limited_rate = lc / max(ll - lf, 1e-3)
    free_rate = fc / max(fl - ff, 1e-3)
    print(f"free {free:.2f}s at {free_rate:.2f} cores, limited (200m) {limited:.2f}s at "
          f"{limited_rate:.2f} cores, ratio {ratio:.1f}")
    # The limit holds whatever else the machine does: at most 200m (plus
    # one 10 ms epoch tick of overshoot per 100 ms period).
    assert limited_rate <= 0.3, f"the 200m container used {limited_rate:.2f} cores"
    # Wall-clock: ~5x slower than unlimited, when the unlimited one could
    # get most of a core (on a loaded machine neither gets much more than
    # 200m, and the ratio says nothing about the limit).
    if free_rate >= 0.6:
        assert ratio > 2.5, f"200m ran only {ratio:.1f}x slower ({limited:.2f}s vs {free:.2f}s)"
    else:
        print(f"machine busy (unlimited got {free_rate:.2f} cores): wall-clock ratio not checked")
