"""Shared pieces of wasmlet's benchmarks: a dedicated control plane, wasmlet
nodes, a fast API client, a watch recorder, and process accounting.

Why not kubectl: one kubectl call costs ~0.1 s of CPU, which on a 2-core box
is more than the thing being measured. The client here speaks HTTPS to the
API server directly with the admin client certificate (stdlib http.client,
one keep-alive connection per thread), so 100 creations at once take what
the API server takes.

Why the watch runs in a child process: timestamps must be taken the moment
an event arrives. In the benchmark's own process, a watcher thread competes
for the GIL with the threads creating pods and can be late by a switch
interval (5 ms); a process of its own does nothing but read, stamp and
append to a file, and the parsing happens afterwards.

The cluster and the node helpers come from tests/e2e/kubetest.py (imported,
not copied), so the benchmarks run the very control plane the tests run.

Clocks: every instant recorded here is CLOCK_REALTIME (time.time()), the
clock wasmlet's own log stamps its lines with, so client, watch and wasmlet
times line up on one machine.
"""

import http.client
import json
import multiprocessing
import os
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO / "tests" / "e2e"))

import kubetest  # noqa: E402  (after the path tweak)

WASMLET = Path(os.environ.get("WASMLET_BIN", REPO / "build" / "wasmlet"))
EXAMPLES = Path(os.environ.get("WASMLET_EXAMPLES", REPO / "build" / "examples"))
RESULTS = BENCH / "results"
RAW = RESULTS / "raw"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- statistics ----------------------------------------------------------------

def pct(values, p):
    """The p-th percentile (0..100) by linear interpolation, None if empty."""
    v = sorted(values)
    if not v:
        return None
    if len(v) == 1:
        return v[0]
    k = (len(v) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def summary(values):
    """p50/p90/p99/min/max/n of a list of numbers."""
    if not values:
        return {"n": 0}
    return {"n": len(values), "p50": pct(values, 50), "p90": pct(values, 90),
            "p99": pct(values, 99), "min": min(values), "max": max(values),
            "mean": statistics.fmean(values)}


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


# -- the API client ----------------------------------------------------------------

class Api:
    """HTTPS to the API server with a client certificate; one keep-alive
    connection per thread. Every call returns (status, parsed body)."""

    def __init__(self, server, ca, cert, key):
        host = server.split("://", 1)[1].rstrip("/")
        self.host, _, port = host.partition(":")
        self.port = int(port or 443)
        self.ctx = ssl.create_default_context(cafile=ca)
        self.ctx.load_cert_chain(cert, key)
        self.local = threading.local()

    @classmethod
    def admin(cls, cluster):
        pki = Path(cluster.data_dir) / "pki"
        return cls(cluster.server, cluster.ca, pki / "admin.crt", pki / "admin.key")

    def conn(self):
        c = getattr(self.local, "conn", None)
        if c is None:
            c = http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=60)
            self.local.conn = c
        return c

    def request(self, method, path, body=None, content_type="application/json"):
        data = None if body is None else (body if isinstance(body, bytes)
                                          else json.dumps(body).encode())
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = content_type
        for attempt in (1, 2):
            c = self.conn()
            try:
                c.request(method, path, body=data, headers=headers)
                r = c.getresponse()
                raw = r.read()
                break
            except (http.client.HTTPException, OSError):
                c.close()
                self.local.conn = None
                if attempt == 2:
                    raise
        try:
            obj = json.loads(raw) if raw else None
        except ValueError:
            obj = {"raw": raw[:300].decode(errors="replace")}
        return r.status, obj

    def must(self, method, path, body=None, ok=(200, 201), **kw):
        st, obj = self.request(method, path, body, **kw)
        if st not in ok:
            raise RuntimeError(f"{method} {path}: HTTP {st}: {json.dumps(obj)[:400]}")
        return obj

    # -- objects --
    def create_namespace(self, name):
        self.must("POST", "/api/v1/namespaces",
                  {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
                  ok=(201, 409))

    def delete_namespace(self, name):
        self.request("DELETE", f"/api/v1/namespaces/{name}")

    def create_pod(self, ns, pod):
        """Creates pod; returns (send instant, response instant, status, body)."""
        t0 = time.time()
        st, obj = self.request("POST", f"/api/v1/namespaces/{ns}/pods", pod)
        return t0, time.time(), st, obj

    def delete_pod(self, ns, name, grace=None):
        q = "" if grace is None else f"?gracePeriodSeconds={grace}"
        return self.request("DELETE", f"/api/v1/namespaces/{ns}/pods/{name}{q}")

    def delete_pods(self, ns, grace=0, selector=None):
        q = f"?gracePeriodSeconds={grace}"
        if selector:
            q += f"&labelSelector={selector}"
        return self.request("DELETE", f"/api/v1/namespaces/{ns}/pods{q}")

    def list_pods(self, ns, selector=None):
        q = f"?labelSelector={selector}" if selector else ""
        return self.must("GET", f"/api/v1/namespaces/{ns}/pods{q}")


def run_parallel(fn, items, workers):
    """fn(item) for every item on `workers` threads; results in item order."""
    out = [None] * len(items)
    nxt = [0]
    lock = threading.Lock()

    def loop():
        while True:
            with lock:
                i = nxt[0]
                nxt[0] += 1
            if i >= len(items):
                return
            out[i] = fn(items[i])

    threads = [threading.Thread(target=loop) for _ in range(min(workers, len(items)))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


# -- the watch recorder ------------------------------------------------------------

def _watch_main(server, ca, cert, key, path, out_path, ready):
    """Child process: stream a watch, write '<recv time> <json line>' per
    event, reconnecting if the stream ends. It runs until terminated."""
    api = Api(server, ca, cert, key)
    with open(out_path, "w") as out:
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
                    out.write(f"{time.time():.6f} {line.decode().strip()}\n")
                    out.flush()
            except (http.client.HTTPException, OSError):
                time.sleep(0.05)
            finally:
                c.close()


class Watch:
    """Records the events of a namespace's pods from now on, in a child
    process. events() parses them: [(recv instant, type, pod)]."""

    def __init__(self, api_args, ns, workdir):
        self.out = Path(workdir) / f"watch-{ns}-{time.time_ns()}.log"
        self._offset = 0
        self._events = []
        server, ca, cert, key = api_args
        api = Api(server, ca, cert, key)
        rv = api.must("GET", f"/api/v1/namespaces/{ns}/pods?limit=1")["metadata"]["resourceVersion"]
        path = (f"/api/v1/namespaces/{ns}/pods?watch=1&resourceVersion={rv}"
                f"&allowWatchBookmarks=false&timeoutSeconds=3600")
        mpctx = multiprocessing.get_context("fork")
        self.ready = mpctx.Event()
        self.proc = mpctx.Process(target=_watch_main,
                                  args=(server, ca, str(cert), str(key), path, str(self.out),
                                        self.ready), daemon=True)
        self.proc.start()
        if not self.ready.wait(30):
            raise RuntimeError("watch did not start")

    @property
    def pid(self):
        return self.proc.pid

    def events(self):
        """Every event so far, parsed incrementally (the file only grows)."""
        try:
            with open(self.out, "rb") as f:
                f.seek(self._offset)
                chunk = f.read()
        except FileNotFoundError:
            return self._events
        end = chunk.rfind(b"\n") + 1  # a partly written last line waits
        for line in chunk[:end].decode().splitlines():
            t, _, js = line.partition(" ")
            try:
                ev = json.loads(js)
            except ValueError:
                continue
            self._events.append((float(t), ev.get("type"), ev.get("object") or {}))
        self._offset += end
        return self._events

    def wait(self, predicate, timeout, desc):
        """Polls events() until predicate(events) is truthy; returns it."""
        deadline = time.monotonic() + timeout
        while True:
            v = predicate(self.events())
            if v:
                return v
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout}s waiting for {desc}")
            time.sleep(0.1)

    def close(self):
        self.proc.terminate()
        self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()


def api_args(cluster):
    pki = Path(cluster.data_dir) / "pki"
    return (cluster.server, cluster.ca, pki / "admin.crt", pki / "admin.key")


# -- pods ------------------------------------------------------------------------------

def pod(name, image, args=(), labels=None, node=None, node_name=None, restart="Never",
        lean=False, port=None):
    """A wasm pod: tolerations and the arch selector, one container.
    lean: no service-account token volume and no service links, so that
    starting it needs no API call from the node besides the status.
    port: a containerPort, which gives the pod a network sandbox of its own
    (namespace, veth, lease: the CNI ADD) on a node that skips the sandbox
    for pods without ports."""
    container = {"name": "main", "image": image}
    if port:
        container["ports"] = [{"containerPort": port}]
    if args:
        container["args"] = [str(a) for a in args]
    spec = kubetest.wasm_pod_spec([container], node=node, node_name=node_name,
                                  restart_policy=restart)
    spec["terminationGracePeriodSeconds"] = 1
    if lean:
        spec["automountServiceAccountToken"] = False
        spec["enableServiceLinks"] = False
    meta = {"name": name, "labels": dict(labels or {"bench": "1"})}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


def containers_started(p):
    """True when every container of pod p has started: running, or already
    terminated (a run-to-completion module may finish before its first
    status write). This is the "all containers Running" instant of the pod
    startup SLI, extended to modules that end within milliseconds."""
    st = (p.get("status") or {}).get("containerStatuses") or []
    n = len((p.get("spec") or {}).get("containers") or [])
    if len(st) < n or n == 0:
        return False
    for cs in st:
        state = cs.get("state") or {}
        if "running" not in state and "terminated" not in state:
            return False
    return True


def timelines(events):
    """{name: timeline} for every pod in events, one pass."""
    tls = {}
    for t, typ, p in events:
        name = (p.get("metadata") or {}).get("name")
        if not name:
            continue
        tl = tls.setdefault(name, {})
        if "scheduled" not in tl and (p.get("spec") or {}).get("nodeName"):
            tl["scheduled"] = t
        if "started" not in tl and containers_started(p):
            tl["started"] = t
        phase = (p.get("status") or {}).get("phase")
        if phase and f"phase_{phase}" not in tl:
            tl[f"phase_{phase}"] = t
        if typ == "DELETED" and "deleted" not in tl:
            tl["deleted"] = t
    return tls


# -- wasm modules -------------------------------------------------------------------------

def _leb(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def with_custom_section(wasm, name, payload=b""):
    """The module plus one custom section: same code, a new digest, so
    pushing it makes an image no node has pulled or compiled yet."""
    nm = name.encode()
    body = _leb(len(nm)) + nm + payload
    return wasm + b"\x00" + _leb(len(body)) + body


def _read_leb(b, i):
    n = shift = 0
    while True:
        byte = b[i]
        i += 1
        n |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return n, i


def initial_memory_bytes(wasm):
    """Initial linear memory of a module (its memory section, or the one it
    imports), in bytes; 0 when it has none."""
    if wasm[:4] != b"\0asm":
        raise ValueError("not a wasm module")
    i = 8
    while i < len(wasm):
        sid = wasm[i]
        size, j = _read_leb(wasm, i + 1)
        body = wasm[j:j + size]
        if sid == 5:  # memory section: count, then limits
            count, k = _read_leb(body, 0)
            if count:
                initial, _ = _read_leb(body, k + 1)
                return initial * 65536
        if sid == 2:  # imports: look for a memory import (kind 2)
            count, k = _read_leb(body, 0)
            for _ in range(count):
                ln, k = _read_leb(body, k)
                k += ln
                ln, k = _read_leb(body, k)
                k += ln
                kind = body[k]
                k += 1
                if kind == 0:
                    _, k = _read_leb(body, k)
                elif kind == 1:
                    k += 1
                    fl = body[k]
                    k += 1
                    _, k = _read_leb(body, k)
                    if fl & 1:
                        _, k = _read_leb(body, k)
                elif kind == 2:
                    fl = body[k]
                    initial, k = _read_leb(body, k + 1)
                    return initial * 65536
                elif kind == 3:
                    k += 2
                else:
                    break
        i = j + size
    return 0


# -- processes ------------------------------------------------------------------------------

def proc_cpu(pid):
    """utime + stime of a process (all its threads) in seconds, or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return None


def proc_status(pid, key):
    """A /proc/<pid>/status field as an int (kB for VmRSS), or None."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def smaps_breakdown(pid, linear_bytes):
    """wasmlet's resident memory by kind, from /proc/<pid>/smaps (KiB):

    linear_memory  the accessible part of each wasm linear memory: Wasmtime
                   reserves a large PROT_NONE region per memory (4 GiB and
                   a guard) and maps the accessible pages just below it
                   (the copy-on-write image, then anonymous pages), so the
                   read-write mappings adjacent below each reservation of
                   1 GiB or more, up to linear_bytes, are a memory's pages
    thread_stacks  anonymous read-write mappings of 1 MiB or more directly
                   above a one-page PROT_NONE guard: what pthread_create
                   maps for a stack, of any size (the default RLIMIT_STACK
                   of 8 MiB, and container threads' stacks, sized for the
                   maximum wasm stack; Wasmtime's signal stacks are smaller)
    files          file-backed mappings (wasmlet's code, libraries)
    heap_other     everything else: malloc arenas and [heap], Wasmtime's
                   per-instance data, buffers
    """
    maps = []
    try:
        with open(f"/proc/{pid}/smaps") as f:
            cur = None
            for line in f:
                parts = line.split()
                if not parts:
                    continue
                if "-" in parts[0] and not parts[0].endswith(":") and len(parts) >= 5:
                    lo, hi = (int(x, 16) for x in parts[0].split("-"))
                    cur = {"lo": lo, "hi": hi, "perms": parts[1],
                           "file": parts[5] if len(parts) > 5 else "", "rss": 0}
                    maps.append(cur)
                elif parts[0] == "Rss:" and cur is not None:
                    cur["rss"] = int(parts[1])
    except OSError:
        return None
    out = {"linear_memory": 0, "thread_stacks": 0, "files": 0, "heap_other": 0,
           "linear_memories": 0}
    linear = set()
    for i, m in enumerate(maps):
        if m["hi"] - m["lo"] >= 1 << 30 and m["perms"].startswith("---"):
            out["linear_memories"] += 1
            j, size = i - 1, 0
            while (j >= 0 and maps[j]["hi"] == maps[j + 1]["lo"]
                   and maps[j]["perms"].startswith("rw") and size < linear_bytes):
                linear.add(j)
                size += maps[j]["hi"] - maps[j]["lo"]
                j -= 1
    for i, m in enumerate(maps):
        size_kib = (m["hi"] - m["lo"]) // 1024
        if i in linear:
            out["linear_memory"] += m["rss"]
        elif m["file"].startswith("/") and not m["file"].startswith("/memfd"):
            out["files"] += m["rss"]
        elif (m["perms"].startswith("rw") and size_kib >= 1024 and not m["file"] and i > 0
              and maps[i - 1]["hi"] == m["lo"] and maps[i - 1]["perms"].startswith("---")
              and maps[i - 1]["hi"] - maps[i - 1]["lo"] == 4096):
            out["thread_stacks"] += m["rss"]
        else:
            out["heap_other"] += m["rss"]
    return out


def rss_kib(pid):
    return proc_status(pid, "VmRSS")


def machine_cpu():
    """(busy seconds, total seconds) of all CPUs from /proc/stat."""
    with open("/proc/stat") as f:
        parts = f.readline().split()[1:]
    v = [int(x) for x in parts]
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    total = sum(v[:8])
    return (total - idle) / CLK_TCK, total / CLK_TCK


class CpuMeter:
    """CPU seconds used by named processes between start() and stop(), and
    by the whole machine; 'others' is the machine minus the named ones."""

    def __init__(self, pids):
        self.pids = dict(pids)

    def start(self):
        self.t0 = time.monotonic()
        self.c0 = {k: proc_cpu(p) for k, p in self.pids.items()}
        self.m0 = machine_cpu()
        return self

    def stop(self):
        wall = time.monotonic() - self.t0
        used = {}
        for k, p in self.pids.items():
            c = proc_cpu(p)
            if c is not None and self.c0.get(k) is not None:
                used[k] = c - self.c0[k]
        m1 = machine_cpu()
        busy = m1[0] - self.m0[0]
        used["others"] = max(0.0, busy - sum(used.values()))
        return {"wall": wall, "cpu_s": used, "machine_busy_s": busy,
                "cores": os.cpu_count(),
                "share": {k: v / wall for k, v in used.items()}}


def loadavg():
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


# -- the bench environment: one cluster, a node, images -----------------------------------

class Env:
    """A dedicated cluster in a temp dir on free ports, and the nodes and
    images the benchmarks use. close() stops everything it started."""

    def __init__(self, workdir=None, keep=False, cluster_dir=None):
        """cluster_dir: use that (running) cluster and leave it up, instead
        of a new one (for working on the benchmarks themselves)."""
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="wasmlet-bench-"))
        self.keep = keep
        self.own_cluster = cluster_dir is None
        if cluster_dir:
            self.cluster = kubetest.Cluster(cluster_dir)
        else:
            self.cluster = kubetest.Cluster(
                self.workdir / "cluster",
                ports=dict(zip(kubetest.PORT_VARS,
                               kubetest.free_ports(len(kubetest.PORT_VARS)))))
        self.factory = None
        self.api = None
        self.images = {}

    def up(self):
        t0 = time.monotonic()
        if self.own_cluster:
            self.cluster.up()
            log(f"cluster up in {time.monotonic() - t0:.1f}s ({self.workdir})")
        else:
            self.cluster.load_env()
        self.api = Api.admin(self.cluster)
        self.factory = kubetest.NodeFactory(self.cluster, self.workdir / "nodes", str(WASMLET))
        (self.workdir / "nodes").mkdir(exist_ok=True)
        return self

    def api_args(self):
        return api_args(self.cluster)

    def component_pids(self):
        return self.cluster.pids()

    def start_node(self, name, max_pods=110, extra=()):
        args = ["--max-pods", str(max_pods), "--insecure-registry", self.cluster.registry,
                *extra]
        t0 = time.monotonic()
        node = self.factory.start(name=name, port=kubetest.free_ports(1)[0], args=args)
        log(f"node {name} Ready in {time.monotonic() - t0:.1f}s (pid {node.pid})")
        return node

    def stop_node(self, node):
        node.stop()
        self.factory.nodes.remove(node)
        self.api.request("DELETE", f"/api/v1/nodes/{node.name}")

    def push(self, name, wasm_bytes, tag="v1"):
        """Pushes a module as bench/<name>:<tag>; returns the reference."""
        ref, _ = self.cluster.registry_client().push_wasm(f"bench/{name}", tag, wasm_bytes)
        self.images[(name, tag)] = ref
        return ref

    def push_example(self, name, tag="v1"):
        return self.push(name, (EXAMPLES / f"{name}.wasm").read_bytes(), tag)

    def close(self):
        if self.factory:
            try:
                self.factory.teardown(delete_nodes=False)
            except Exception as e:  # noqa: BLE001 - keep going down
                log(f"node teardown: {e}")
        if self.own_cluster:
            p = self.cluster.down()
            if p.returncode != 0:
                log(f"cluster.sh down failed: {p.stderr.strip()[-300:]}")
        if not self.keep:
            subprocess.run(["rm", "-rf", str(self.workdir)], check=False)


def namespace(env, prefix):
    name = kubetest.unique_name(prefix)
    env.api.create_namespace(name)
    # The ServiceAccount admission plugin refuses pods until the namespace's
    # default ServiceAccount exists.
    kubetest.wait_for(lambda: env.api.request(
        "GET", f"/api/v1/namespaces/{name}/serviceaccounts/default")[0] == 200,
        30, 0.05, f"default ServiceAccount in {name}")
    return name


def wait_pods_gone(env, ns, timeout=120, selector=None):
    """Waits until the namespace's pods are gone. A DELETE of the collection
    ends at the API server's request timeout (60 s), which thousands of pods
    can outlast, leaving some never deleted: those are deleted again."""
    def gone():
        items = env.api.list_pods(ns, selector)["items"]
        if any(not (p.get("metadata") or {}).get("deletionTimestamp") for p in items):
            env.api.delete_pods(ns, grace=0, selector=selector)
        return not items
    kubetest.wait_for(gone, timeout, 0.5, f"pods of {ns} gone")


def wait_threads_settle(pid, baseline, timeout=60):
    """Waits until wasmlet's thread count is back to baseline (its stopped
    pods' threads have exited), or has not changed for 2 s (some threads
    start lazily, with the first pod, and stay)."""
    deadline = time.monotonic() + timeout
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        n = proc_status(pid, "Threads")
        if n is None or n <= baseline:
            return True
        if n != last:
            last, since = n, time.monotonic()
        elif time.monotonic() - since >= 2.0:
            return True
        time.sleep(0.1)
    return False


def save_raw(name, data):
    RAW.mkdir(parents=True, exist_ok=True)
    path = RAW / f"{name}.json"
    path.write_text(json.dumps(data, indent=1, sort_keys=True))
    return path


def load_raw(name):
    path = RAW / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None
