"""Density: how many long-running pods one wasmlet node holds, and what
each costs in wasmlet's resident memory.

A fresh node (its own data dir, --max-pods above the target) first runs
one pod and sees it go, so that what any serving node keeps (the module
compiled and loaded, API connections, code paged in) is in the baseline;
then it is filled with idle ticker pods (`ticker 60000`: one line, then a
WASI sleep of a minute) in steps: 0, 100, then the target (5,000; 1,000
with pod networking: 5,000 networked pods take about 7 minutes here with
their deletion, at 50 pods/s at first and 18 past 3,750; BENCH_DENSITY_PODS and
BENCH_DENSITY_NET_PODS set them). At each step, once every pod's
containers are reported running through the watch and the node has been
quiet for a few seconds, wasmlet's VmRSS is sampled (median of 5 samples
over 2 s), with its thread count and the API server's and etcd's RSS for
context.

Per-pod cost = (RSS at the top step - RSS at 100) / (top - 100): the
slope, so wasmlet's fixed costs (engine, compiled module, TLS, buffers) and
the first pods' one-off allocations stay out of it. /proc/<pid>/smaps splits
it by kind (kit.smaps_breakdown): the linear memories' resident pages, the
threads' stacks, files, and the rest (malloc heaps, Wasmtime's instance
data). "Beyond its linear memory" subtracts the linear memory's resident
pages, measured; the figure that subtracts the whole declared initial
memory (the ticker's 2 pages, 128 KiB), as if every page were touched, is
kept too.

With BENCH_DENSITY_NETWORK=1 each pod declares a containerPort, so that
it gets a network sandbox of its own (namespace, veth, lease): the level
records the kernel's slab memory too (/proc/meminfo), where a sandbox's
cost lies, outside wasmlet's RSS.

Pods are created with a bounded concurrency (10 POSTs in flight): on 2
cores, the API server, etcd and the scheduler set the pace of creation, and
the report gives that pace (pods/s) separately from wasmlet's memory.
"""

import os
import statistics
import time

import kit

TICKER_ARGS = ["60000"]


def sample_rss(pid, n=5, interval=0.4):
    vals = []
    for _ in range(n):
        v = kit.rss_kib(pid)
        if v is not None:
            vals.append(v)
        time.sleep(interval)
    return statistics.median(vals) if vals else None


def map_count(pid):
    """The process's memory mappings (vm.max_map_count bounds them)."""
    try:
        with open(f"/proc/{pid}/maps") as f:
            return sum(1 for _ in f)
    except OSError:
        return None


def slab_kib():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("Slab:"):
                return int(line.split()[1])
    return None


def density_pod(name, image, node, network):
    p = kit.pod(name, image, TICKER_ARGS, node=node)
    if network:
        p["spec"]["containers"][0]["ports"] = [{"containerPort": 8080}]
    return p


def wait_node_removed_all(node, timeout):
    """Waits until the node has removed every pod it held: its pods/ dir
    empty (a pod's directory goes with its entry, after its containers
    stopped and its sandbox's CNI DEL ran). The API server forgets a pod
    before that, and a networked pod's DEL takes a turn among eight, so a
    node may still be removing pods many seconds after the last one
    vanished from the API. Then 6 s more: the node asks its threads to
    empty their malloc caches once removals have been quiet for 2 s, on a
    sync pass that runs every second, and trims its heap 1.5 s after.
    Returns whether it finished."""
    pods = node.data_dir / "pods"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            empty = not any(pods.iterdir())
        except FileNotFoundError:
            empty = True
        if empty:
            time.sleep(6)
            return True
        time.sleep(0.5)
    return False


def host_links():
    """The host namespace's network interfaces (a sandbox adds a veth)."""
    try:
        return len(os.listdir("/sys/class/net"))
    except OSError:
        return None


MAP_COUNT_FOR_SCALE = 262144
MAX_MAP_COUNT = "/proc/sys/vm/max_map_count"


def max_map_count():
    """vm.max_map_count, or None when unreadable."""
    try:
        with open(MAX_MAP_COUNT) as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


def run_scale(env, top, network):
    """A run of its own: the node filled in quarters up to top pods (10,000;
    5,000 with pod networking), to see how far one node goes and what
    stops it. Each pod maps about ten regions (its linear memory's
    reservation and guard, its thread's stack and guard, Wasmtime's
    instance data), so vm.max_map_count is raised to 262,144 when it is
    lower (root only), and the run records it."""
    maps = max_map_count()
    if maps is not None and maps < MAP_COUNT_FOR_SCALE and os.geteuid() == 0:
        try:
            with open(MAX_MAP_COUNT, "w") as f:
                f.write(str(MAP_COUNT_FOR_SCALE))
            kit.log(f"scale: vm.max_map_count {maps} -> {MAP_COUNT_FOR_SCALE}")
        except OSError as e:
            kit.log(f"scale: vm.max_map_count: {e}")
    steps = sorted({0, min(100, top // 4)} | {top * k // 4 for k in (1, 2, 3, 4)})
    out = run(env, target=top, network=network, steps=steps)
    out["max_map_count_before"] = maps
    out["max_map_count"] = max_map_count()
    return out


def run(env, quick=False, target=None, network=None, steps=None):
    """target: the top step (default 5000, 1000 with network; BENCH_DENSITY_PODS
    overrides both, BENCH_DENSITY_NET_PODS the networked one).
    network: pods with a containerPort, so each gets a sandbox (default:
    BENCH_DENSITY_NETWORK=1; the density-net part passes True)."""
    target = int(os.environ.get("BENCH_DENSITY_PODS", 0)) or target
    if network is None:
        network = os.environ.get("BENCH_DENSITY_NETWORK") == "1"
    default_top = (int(os.environ.get("BENCH_DENSITY_NET_PODS", 0)) or 1000) if network else 5000
    steps = steps or ([0, 20, 100] if quick else [0, 100, target or default_top])
    top = steps[-1]
    node = env.start_node("bench-density-net" if network else "bench-density",
                          max_pods=top + 100)
    pids = env.component_pids()
    ticker_wasm = (kit.EXAMPLES / "ticker.wasm").read_bytes()
    image = env.push("ticker", ticker_wasm)
    linear = kit.initial_memory_bytes(ticker_wasm)
    ns = kit.namespace(env, "density")
    watch = kit.Watch(env.api_args(), ns, env.workdir)
    levels = []
    created = 0
    out = {"steps": steps, "linear_memory_bytes": linear, "levels": levels, "network": network}
    try:
        time.sleep(3)  # the node settles after registration
        # "Before the pods came" is a node that has run one: what it keeps
        # for that (the module loaded and compiled, the API connections, the
        # code paths paged in) is what any node serving pods has, not a cost
        # of the thousands that follow. The fresh node's RSS is kept too.
        out["cold_idle_rss_kib"] = sample_rss(node.pid)
        res = env.api.create_pod(ns, density_pod("warmup", image, node.name, network))
        if res[2] != 201:
            raise RuntimeError(f"warm-up pod: HTTP {res[2]}: {res[3]}")
        watch.wait(lambda ev: kit.timelines(ev).get("warmup", {}).get("started"), 120,
                   "warm-up pod running")
        env.api.delete_pods(ns, grace=0)
        kit.wait_pods_gone(env, ns, 120)
        out["warmup_removed"] = wait_node_removed_all(node, 120)
        for target_n in steps:
            t0 = time.monotonic()
            cpu = kit.CpuMeter({"wasmlet": node.pid, **{k: pids[k] for k in (
                "kube-apiserver", "etcd", "kube-scheduler", "kube-controller-manager")
                if k in pids}}).start()
            names = [f"t-{i}" for i in range(created, target_n)]
            if names:
                kit.log(f"density: creating {len(names)} pods ({created} -> {target_n})")
                res = kit.run_parallel(
                    lambda n: env.api.create_pod(ns, density_pod(n, image, node.name, network)),
                    names, 10)
                bad = [r for r in res if r[2] != 201]
                if bad:
                    raise RuntimeError(f"{len(bad)} creations failed: {bad[0][3]}")
                t_created = time.monotonic() - t0
                created = target_n

                def running(ev):
                    tls = kit.timelines(ev)
                    return sum(1 for n in tls if tls[n].get("started")) >= target_n

                watch.wait(running, 900, f"{target_n} ticker pods running")
                t_running = time.monotonic() - t0
            else:
                t_created = t_running = 0.0
            usage = cpu.stop()
            time.sleep(3)  # the last status writes and events drain
            rss = sample_rss(node.pid)
            level = {
                "pods": target_n, "rss_kib": rss,
                "smaps_kib": kit.smaps_breakdown(node.pid, linear),
                "hwm_kib": kit.proc_status(node.pid, "VmHWM"),
                "threads": kit.proc_status(node.pid, "Threads"),
                "maps": map_count(node.pid),
                "slab_kib": slab_kib(),
                "host_links": host_links(),
                "apiserver_rss_kib": kit.rss_kib(pids.get("kube-apiserver", 0)),
                "etcd_rss_kib": kit.rss_kib(pids.get("etcd", 0)),
                "create_s": t_created, "running_s": t_running, "cpu": usage,
                "node_alive": node.running(),
            }
            levels.append(level)
            kit.log(f"density: {target_n} pods running, wasmlet RSS {rss / 1024:.1f} MiB, "
                    f"{level['threads']} threads, kernel slab {level['slab_kib']} KiB "
                    f"({t_running:.1f}s)")
        # Did every pod stay up? Count the running ones as the API server has them.
        items = env.api.list_pods(ns)["items"]
        out["running_at_end"] = sum(1 for p in items if (p.get("status") or {}).get("phase")
                                    == "Running")
        first = next((lv for lv in levels if lv["pods"] == steps[1]), None)
        last = levels[-1]
        if first and last["pods"] > first["pods"]:
            n = last["pods"] - first["pods"]
            gross = (last["rss_kib"] - first["rss_kib"]) / n
            out["per_pod_gross_kib"] = gross
            out["per_pod_net_declared_kib"] = gross - linear / 1024
            a, b = first.get("smaps_kib"), last.get("smaps_kib")
            if a and b:
                out["per_pod_by_kind_kib"] = {k: (b[k] - a[k]) / n for k in a
                                              if k != "linear_memories"}
                # Beyond its linear memory, as resident: the target's measure.
                out["per_pod_net_kib"] = gross - out["per_pod_by_kind_kib"]["linear_memory"]
            else:
                out["per_pod_net_kib"] = out["per_pod_net_declared_kib"]
        if first and last["pods"] > first["pods"]:
            n = last["pods"] - first["pods"]
            # Threads each extra idle pod holds (one container each).
            out["threads_per_pod"] = (last["threads"] - first["threads"]) / n
            if last.get("maps") and first.get("maps"):
                # Memory mappings per pod: what vm.max_map_count must allow.
                out["maps_per_pod"] = (last["maps"] - first["maps"]) / n
            if last.get("slab_kib") and first.get("slab_kib"):
                # The kernel's share (namespaces, veths, routes, neighbour
                # entries): outside wasmlet's RSS, noisy (other work on the
                # machine allocates slab too).
                out["slab_per_pod_kib"] = (last["slab_kib"] - first["slab_kib"]) / n
            if last.get("host_links") is not None and first.get("host_links") is not None:
                out["host_links_per_pod"] = (last["host_links"] - first["host_links"]) / n
            kinds = out.get("per_pod_by_kind_kib") or {}
            if kinds and out["threads_per_pod"] > 0:
                # Beyond its resident linear memory and one thread's stack.
                out["per_pod_net_one_thread_kib"] = (
                    out["per_pod_net_kib"] - kinds["thread_stacks"] / out["threads_per_pod"])
        out["idle_rss_kib"] = levels[0]["rss_kib"]
        # Deletion of all of them, timed: the node stops every instance.
        t0 = time.monotonic()
        env.api.delete_pods(ns, grace=0)
        kit.wait_pods_gone(env, ns, 600)
        kit.wait_threads_settle(node.pid, levels[0]["threads"], 120)
        out["delete_all_s"] = time.monotonic() - t0
        out["node_removed_all"] = wait_node_removed_all(node, 600)
        out["node_removed_all_s"] = time.monotonic() - t0
        out["rss_after_delete_kib"] = sample_rss(node.pid)
        out["smaps_after_delete_kib"] = kit.smaps_breakdown(node.pid, linear)
        out["threads_after_delete"] = kit.proc_status(node.pid, "Threads")
        # Leftovers: the host's interfaces against before the pods came
        # (each sandbox's veth goes with its pod).
        out["host_links_before"] = levels[0].get("host_links")
        deadline = time.monotonic() + 60
        while (network and host_links() != out["host_links_before"]
               and time.monotonic() < deadline):
            time.sleep(1)
        out["host_links_after_delete"] = host_links()
        if out["rss_after_delete_kib"] and out["idle_rss_kib"]:
            out["rss_returned_ratio"] = out["rss_after_delete_kib"] / out["idle_rss_kib"]
        return out
    finally:
        watch.close()
        env.api.delete_pods(ns, grace=0)
        env.api.delete_namespace(ns)
        env.stop_node(node)
