"""Containment: one pod can never starve the node or its neighbours.

Against the real control plane (cluster.sh: kube-apiserver, controller-manager
with the node lifecycle controller, scheduler, registry) and real wasmlet
nodes:

- a pod that opens one file of its hostPath mount without end (the failure
  issue 13 describes): it stops at its descriptor cap (the default 1024, or
  its wasmlet.dev/max-open-files) with EMFILE inside the module, while a
  neighbour keeps logging, a new pod with a hostPath mount starts, and
  kubectl logs of the hostile pod answers; /metrics shows the pod holding
  exactly its cap (its files and mounts plus what wasmlet keeps for it:
  the cap counts both), and the neighbour far less;
- a pod that writes one 100 MB line: its log stays bounded by
  --container-log-max-size/--container-log-max-files while it writes (P
  records rotated between), kubectl logs shows what is left of the line as
  one line, and a neighbour keeps logging and a new pod starts meanwhile;
- a pod filling an emptyDir (no sizeLimit) past its containers'
  limits.ephemeral-storage is evicted (Failed, reason Evicted, the kubelet's
  message, a Warning Evicted event), its volumes are reclaimed, while
  another pod keeps logging and a new pod starts and runs;
- disk pressure, for real: a node whose data dir is a 96 MiB tmpfs, with
  --eviction-hard nodefs.available<40%; a pod filling an emptyDir takes the
  file system under the threshold: DiskPressure, the controller's
  node.kubernetes.io/disk-pressure taint, the filler evicted first (kubelet
  ranking), the space given back;
- memory pressure, safely: this machine (24 GiB) is not driven out of
  memory. The node gets a soft threshold above what any host has
  (--eviction-soft memory.available<1000Ti, grace 15s), so memory.available
  (the host's real MemAvailable) is always under it: MemoryPressure, the
  memory-pressure taint, and evictions in the kubelet's order (the
  BestEffort pod before the Burstable one) with the kubelet's message
  quoting the real available figure. Exhausting the host's memory for real
  is NOT tested here (it would take the control plane down with it), and a
  running module's live linear memory is not yet published by the runtime,
  so memory usage in the ranking counts only ended runs.
"""

import http.client
import json
import os
import re
import ssl
import subprocess
import time
from pathlib import Path

import pytest

from kubetest import NodeFactory, unique_name, wait_for
from test_kubelet_api import apiserver_client, get, wait_signed_serving
from container_kit import (attach, container, create_pod, logs, push, start_module_node,
                           wait_event, wasmlet_bin, node_port)

MI = 1024 * 1024


@pytest.fixture(scope="module")
def cnode(cluster, tmp_path_factory):
    mnode = start_module_node(cluster, tmp_path_factory, "contain",
                              args=["--container-log-max-size", "1Mi",
                                    "--container-log-max-files", "3"])
    for name in ("flood", "ticker", "hello", "diskfill", "files"):
        setattr(mnode, name, push(cluster, name, f"contain/{name}"))
    try:
        yield mnode
    finally:
        mnode.factory.teardown()


@pytest.fixture
def node(cnode, request):
    attach(request, cnode)
    return cnode


def mount(name, path):
    return {"name": name, "mountPath": path}


def pod_log_dir(node, namespace, pod_obj):
    uid = pod_obj["metadata"]["uid"]
    return Path(node.data_dir) / "logs" / f"{namespace}_{pod_obj['metadata']['name']}_{uid}"


def dir_bytes(d):
    total = 0
    for root, _, files in os.walk(d):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except FileNotFoundError:
                pass
    return total


def tick_count(cluster, node, namespace, name, container="app"):
    return logs(cluster, node, namespace, name, container).count("tick ")


def start_and_finish_hello(cluster, node, namespace, name):
    create_pod(cluster, namespace, name, node.node, [container("app", node.hello)])
    p = cluster.wait_pod_phase(namespace, name, ["Succeeded", "Failed"], timeout=60)
    assert p["status"]["phase"] == "Succeeded", p["status"]
    return p


def test_one_100mb_line_is_bounded_and_the_node_keeps_working(cluster, node, namespace):
    create_pod(cluster, namespace, "steady", node.node,
               [container("app", node.ticker, args=["100"])], restart="Always")
    cluster.wait_pod_phase(namespace, "steady", ["Running"], timeout=60)
    create_pod(cluster, namespace, "bigline", node.node,
               [container("app", node.flood, args=["--partial", str(100 * 1000 * 1000)])])
    p = wait_for(lambda: cluster.pod(namespace, "bigline")
                 if (cluster.pod(namespace, "bigline") or {}).get("metadata", {}).get("uid")
                 else None, 30, desc="bigline created")
    logdir = pod_log_dir(node, namespace, p)
    # While it writes, the log never passes 3 files of 1 MiB (+ one record
    # of slack per file for the write in flight).
    worst = 0
    deadline = time.monotonic() + 120
    ticks_before = tick_count(cluster, node, namespace, "steady")
    while time.monotonic() < deadline:
        worst = max(worst, dir_bytes(logdir))
        phase = (cluster.pod(namespace, "bigline") or {}).get("status", {}).get("phase")
        if phase in ("Succeeded", "Failed"):
            break
        time.sleep(0.2)
    p = cluster.pod(namespace, "bigline")
    assert p["status"]["phase"] == "Succeeded", p["status"]
    final = dir_bytes(logdir)
    assert worst <= 3 * MI + 3 * 17 * 1024, f"log reached {worst} bytes"
    assert final <= 3 * MI, final
    files = sorted(os.listdir(logdir / "app"))
    assert len(files) == 3, files
    # kubectl logs: what is left of the line is one line of x's, cut only at
    # its beginning (the rotated-away part).
    out = cluster.kubectl(["logs", "-n", namespace, "bigline"], json=False, timeout=60)
    assert out.count("\n") <= 1, "the long line came back as several lines"
    body = out.rstrip("\n")
    assert 2 * MI < len(body) <= 3 * MI, len(body)
    assert set(body) == {"x"}
    # The neighbour logged all along, and the node still starts pods.
    assert tick_count(cluster, node, namespace, "steady") > ticks_before
    start_and_finish_hello(cluster, node, namespace, "after-bigline")
    assert cluster.pod(namespace, "steady")["status"]["phase"] == "Running"


def test_emptydir_past_ephemeral_storage_limit_is_evicted(cluster, node, namespace):
    create_pod(cluster, namespace, "steady", node.node,
               [container("app", node.ticker, args=["200"])], restart="Always")
    cluster.wait_pod_phase(namespace, "steady", ["Running"], timeout=60)
    # 48 MiB at 1 MiB per 100 ms into an emptyDir without sizeLimit; the
    # container's limits.ephemeral-storage is 16Mi.
    create_pod(cluster, namespace, "filler", node.node,
               [container("app", node.diskfill, args=["/scratch/fill", "48", "1024", "100"],
                          volumeMounts=[mount("scratch", "/scratch")],
                          resources={"limits": {"ephemeral-storage": "16Mi"}})],
               restart="Always", volumes=[{"name": "scratch", "emptyDir": {}}])
    ticks_before = tick_count(cluster, node, namespace, "steady")
    p = cluster.wait_pod_phase(namespace, "filler", ["Failed"], timeout=60)
    st = p["status"]
    assert st["reason"] == "Evicted", st
    assert st["message"] == ("Pod ephemeral local storage usage exceeds the total limit of "
                             "containers 16Mi. "), st
    t = st["containerStatuses"][0]["state"]["terminated"]
    assert t["exitCode"] == 137, t
    # restartPolicy Always, yet it stays down: an evicted pod is not restarted.
    time.sleep(2)
    assert cluster.pod(namespace, "filler")["status"]["containerStatuses"][0][
        "restartCount"] == 0
    wait_event(cluster, namespace, "filler", "Evicted", r"exceeds the total limit of containers")
    # The evicted pod's volumes are given back.
    vol = Path(node.data_dir) / "pods" / p["metadata"]["uid"] / "volumes"
    wait_for(lambda: not vol.exists(), 30, desc="the evicted pod's volumes removed")
    # The neighbour kept logging, and a new pod starts and runs.
    assert tick_count(cluster, node, namespace, "steady") > ticks_before
    start_and_finish_hello(cluster, node, namespace, "after-filler")
    assert cluster.pod(namespace, "steady")["status"]["phase"] == "Running"


def condition(cluster, node_name, ctype):
    n = cluster.node(node_name)
    for c in n["status"].get("conditions") or []:
        if c["type"] == ctype:
            return c
    return None


def has_taint(cluster, node_name, key):
    n = cluster.node(node_name)
    return any(t.get("key") == key and t.get("effect") == "NoSchedule"
               for t in (n.get("spec", {}).get("taints") or []))


def evicted_at(cluster, namespace, name):
    """When the pod's Evicted event was first seen (its firstTimestamp or
    eventTime), or None."""
    for e in cluster.events(namespace, name):
        if e.get("reason") == "Evicted":
            return e.get("firstTimestamp") or e.get("eventTime") or e["metadata"][
                "creationTimestamp"]
    return None


def test_memory_pressure_sets_condition_and_evicts_in_kubelet_order(cluster, tmp_path_factory,
                                                                    namespace, request):
    mnode = start_module_node(cluster, tmp_path_factory, "mempress", args=[
        "--eviction-soft", "memory.available<1000Ti",
        "--eviction-soft-grace-period", "memory.available=15s",
        "--eviction-pressure-transition-period", "30s"])
    attach(request, mnode)
    try:
        ticker = push(cluster, "ticker", "mempress/ticker")
        create_pod(cluster, namespace, "burstable", mnode.node,
                   [container("app", ticker, args=["200"],
                              resources={"requests": {"memory": "64Mi"}})], restart="Always")
        create_pod(cluster, namespace, "besteffort", mnode.node,
                   [container("app", ticker, args=["200"])], restart="Always")
        c = wait_for(lambda: (condition(cluster, mnode.name, "MemoryPressure") or {}).get(
            "status") == "True" and condition(cluster, mnode.name, "MemoryPressure"), 40,
            desc="MemoryPressure True")
        assert c["reason"] == "KubeletHasInsufficientMemory", c
        wait_for(lambda: has_taint(cluster, mnode.name, "node.kubernetes.io/memory-pressure"), 60,
                 desc="the memory-pressure taint from the node lifecycle controller")
        p = cluster.wait_pod_phase(namespace, "besteffort", ["Failed"], timeout=60)
        st = p["status"]
        assert st["reason"] == "Evicted", st
        # The kubelet's message, with its sentence for each container using
        # more than it requested (the ticker's live linear memory, 128 KiB).
        m = re.fullmatch(r"The node was low on resource: memory\. Threshold quantity: 1000Ti, "
                         r"available: (\d+)(Ki|Mi|Gi)?\. Container app was using (\d+)Ki, "
                         r"request is 0, has larger consumption of memory\. ", st["message"])
        assert m, st["message"]
        assert int(m.group(3)) >= 128, st["message"]
        # The available figure is the host's: within what /proc/meminfo says.
        avail = int(m.group(1)) * {"Ki": 1024, "Mi": MI, "Gi": 1024 * MI, None: 1}[m.group(2)]
        total = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text())
                    .group(1)) * 1024
        assert 0 < avail < total
        # The burstable pod is still running when the BestEffort one went
        # (it ranks after it), and goes next, under the same pressure.
        b = cluster.pod(namespace, "burstable")["status"]
        assert b["phase"] in ("Running", "Failed"), b
        p2 = cluster.wait_pod_phase(namespace, "burstable", ["Failed"], timeout=60)
        assert p2["status"]["reason"] == "Evicted"
        first, second = evicted_at(cluster, namespace, "besteffort"), evicted_at(
            cluster, namespace, "burstable")
        assert first and second and first <= second, (first, second)
        # The node itself stays Ready and serves its API throughout.
        assert cluster.node_ready(mnode.name)
        out = cluster.kubectl(["logs", "-n", namespace, "besteffort"], json=False)
        assert "tick " in out
    finally:
        mnode.factory.teardown()


def test_memory_pressure_ranks_running_pods_by_their_live_linear_memory(
        cluster, tmp_path_factory, namespace, request):
    """Two BestEffort pods, same priority: the one whose running module holds
    32 MiB of linear memory is evicted before the one holding the ticker's
    128 KiB, because a running container's memory is sampled live (and the
    summary shows it while it runs)."""
    mnode = start_module_node(cluster, tmp_path_factory, "memlive", args=[
        "--eviction-soft", "memory.available<1000Ti",
        "--eviction-soft-grace-period", "memory.available=20s",
        "--eviction-pressure-transition-period", "30s"])
    attach(request, mnode)
    try:
        ticker = push(cluster, "ticker", "memlive/ticker")
        sha = push(cluster, "sha256", "memlive/sha256")
        # The small one first, so that creation order would pick it.
        create_pod(cluster, namespace, "small", mnode.node,
                   [container("app", ticker, args=["200"])], restart="Always")
        cluster.wait_pod_phase(namespace, "small", "Running", 60)
        create_pod(cluster, namespace, "big", mnode.node,
                   [container("app", sha, args=["32", "100000"])], restart="Always")
        p = cluster.wait_pod_phase(namespace, "big", "Running", 60)
        uid = p["metadata"]["uid"]
        wait_signed_serving(cluster, mnode.node)
        cert, key = apiserver_client(cluster)

        def big_memory():
            st, body = get(cluster, mnode, "/stats/summary", cert=cert, key=key)
            if st != 200:
                return None
            for ps in json.loads(body)["pods"]:
                if ps["podRef"]["uid"] == uid and ps["containers"]:
                    mem = (ps["containers"][0].get("memory") or {}).get("workingSetBytes", 0)
                    return mem if mem >= 32 * MI else None
            return None

        mem = wait_for(big_memory, 30, desc="the running module's 32 MiB in /stats/summary")
        assert mem < 64 * MI, mem
        big = cluster.wait_pod_phase(namespace, "big", ["Failed"], timeout=90)
        assert big["status"]["reason"] == "Evicted", big["status"]
        assert cluster.pod(namespace, "small")["status"]["phase"] == "Running"
        small = cluster.wait_pod_phase(namespace, "small", ["Failed"], timeout=60)
        assert small["status"]["reason"] == "Evicted"
        first, second = evicted_at(cluster, namespace, "big"), evicted_at(
            cluster, namespace, "small")
        assert first and second and first <= second, (first, second)
    finally:
        mnode.factory.teardown()


@pytest.fixture
def tmpfs_dir(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs data dir needs root")
    d = tmp_path / unique_name("diskp")
    d.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96m", "tmpfs", str(d)], check=True)
    try:
        yield d
    finally:
        subprocess.run(["umount", "-l", str(d)], check=False)


def test_disk_pressure_on_a_small_data_dir(cluster, tmpfs_dir, namespace, request):
    factory = NodeFactory(cluster, tmpfs_dir.parent, wasmlet_bin())
    request.node.wasmlet_node_factory = factory
    try:
        # The data dir is <workdir>/<node name>: the tmpfs mount.
        node = factory.start(name=tmpfs_dir.name, port=node_port(),
                             args=["--backoff-initial", "1000",
                                   "--eviction-hard", "nodefs.available<40%",
                                   "--eviction-pressure-transition-period", "20s"])
        assert os.path.ismount(node.data_dir)
        ticker = push(cluster, "ticker", "diskp/ticker")
        diskfill = push(cluster, "diskfill", "diskp/diskfill")
        create_pod(cluster, namespace, "steady", node,
                   [container("app", ticker, args=["200"])], restart="Always")
        cluster.wait_pod_phase(namespace, "steady", ["Running"], timeout=60)
        assert (condition(cluster, node.name, "DiskPressure") or {}).get("status") == "False"
        # 64 MiB of a 96 MiB file system: under 40% (38.4 MiB) available.
        create_pod(cluster, namespace, "filler", node,
                   [container("app", diskfill, args=["/scratch/fill", "64", "1024", "20"],
                              volumeMounts=[mount("scratch", "/scratch")])],
                   restart="Always", volumes=[{"name": "scratch", "emptyDir": {}}])
        wait_for(lambda: (condition(cluster, node.name, "DiskPressure") or {}).get(
            "status") == "True", 60, desc="DiskPressure True")
        wait_for(lambda: has_taint(cluster, node.name, "node.kubernetes.io/disk-pressure"), 60,
                 desc="the disk-pressure taint")
        p = cluster.wait_pod_phase(namespace, "filler", ["Failed"], timeout=60)
        st = p["status"]
        assert st["reason"] == "Evicted", st
        assert re.fullmatch(r"The node was low on resource: ephemeral-storage\. Threshold "
                            r"quantity: \d+, available: \d+(Ki|Mi)?\. Container app was using "
                            r"\d+(Ki|Mi)?, request is 0, has larger consumption of "
                            r"ephemeral-storage\. ", st["message"]), st["message"]
        # Its space comes back (volumes reclaimed), the neighbour was not
        # evicted (the filler ranked first), and pressure ends.
        wait_for(lambda: os.statvfs(node.data_dir).f_bavail * os.statvfs(node.data_dir).f_frsize
                 > 60 * MI, 40, desc="the filler's space given back")
        assert cluster.pod(namespace, "steady")["status"]["phase"] == "Running"
        wait_for(lambda: (condition(cluster, node.name, "DiskPressure") or {}).get(
            "status") == "False", 90, desc="DiskPressure False again")
        ticks = logs(cluster, node, namespace, "steady", "app").count("tick ")
        time.sleep(1)
        assert logs(cluster, node, namespace, "steady", "app").count("tick ") > ticks
    finally:
        factory.teardown()


def test_descriptor_hog_is_capped_and_the_node_keeps_working(cluster, node, namespace, tmp_path):
    d = tmp_path / "hog"
    d.mkdir()
    (d / "f").write_text("x")
    vol = [{"name": "d", "hostPath": {"path": str(d), "type": "Directory"}}]
    create_pod(cluster, namespace, "steady", node.node,
               [container("app", node.ticker, args=["200"])], restart="Always")
    cluster.wait_pod_phase(namespace, "steady", ["Running"], timeout=60)
    ticks_before = tick_count(cluster, node, namespace, "steady")
    # Asks for 100000 and holds what it got for a minute.
    create_pod(cluster, namespace, "hog", node.node,
               [container("app", node.files, args=["hold", "/d/f", "100000", "60"],
                          volumeMounts=[mount("d", "/d")])], volumes=vol)
    out = wait_for(lambda: (lambda t: t if "open:" in t else None)(
        logs(cluster, node, namespace, "hog", "app")), 60, desc="the hog at its cap")
    # The cap counts the container's mounts too (its hostPath, and the
    # service-account token volume when mounted).
    held = held_count(out)
    assert 1018 <= held <= 1023, out
    # /metrics: the hog holds its whole cap (files, mounts, and wasmlet's
    # own for it: the log file, the saved network namespace), sampled when
    # it went to sleep holding them; the ticker next to it holds a few.
    hog = f'namespace="{namespace}",pod="hog",container="app"'
    steady = f'namespace="{namespace}",pod="steady",container="app"'
    text = wait_for(lambda: (lambda t: t if gauge(t, "wasmlet_container_open_descriptors", hog)
                             == 1024 else None)(node_metrics(cluster, node)), 15,
                    desc="the hog's descriptors on /metrics")
    assert gauge(text, "wasmlet_container_open_descriptors_limit", hog) == 1024
    assert gauge(text, "wasmlet_pod_open_descriptors",
                 f'namespace="{namespace}",pod="hog"') == 1024
    assert 1 <= gauge(text, "wasmlet_container_open_descriptors", steady) <= 8, text
    # While it holds them: another pod with a hostPath mount starts and
    # reads, the neighbour logs, the node is Ready.
    create_pod(cluster, namespace, "reader", node.node,
               [container("app", node.files, args=["cat", "/d/f"],
                          volumeMounts=[mount("d", "/d")])], volumes=vol)
    p = cluster.wait_pod_phase(namespace, "reader", ["Succeeded", "Failed"], timeout=60)
    assert p["status"]["phase"] == "Succeeded", p["status"]
    assert logs(cluster, node, namespace, "reader", "app").strip() == "x"
    assert cluster.pod(namespace, "hog")["status"]["phase"] == "Running"
    assert tick_count(cluster, node, namespace, "steady") > ticks_before
    assert cluster.node_ready(node.name)
    # A smaller cap by annotation.
    create_pod(cluster, namespace, "small", node.node,
               [container("app", node.files, args=["hold", "/d/f", "100000", "0"],
                          volumeMounts=[mount("d", "/d")])], volumes=vol,
               annotations={"wasmlet.dev/max-open-files": "16"})
    p = cluster.wait_pod_phase(namespace, "small", ["Succeeded", "Failed"], timeout=60)
    assert p["status"]["phase"] == "Succeeded", p["status"]
    out = logs(cluster, node, namespace, "small", "app")
    assert 10 <= held_count(out) <= 15, out


def node_metrics(cluster, node):
    """The node's /metrics, asked for as the API server asks (its kubelet
    client certificate)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.load_cert_chain(cluster.env["WASMLET_APISERVER_KUBELET_CLIENT_CERT"],
                        cluster.env["WASMLET_APISERVER_KUBELET_CLIENT_KEY"])
    conn = http.client.HTTPSConnection("127.0.0.1", node.node.port, timeout=20, context=ctx)
    try:
        conn.request("GET", "/metrics")
        r = conn.getresponse()
        body = r.read().decode(errors="replace")
        assert r.status == 200, (r.status, body[:200])
        return body
    finally:
        conn.close()


def gauge(text, name, labels):
    """The value of one sample, or None."""
    m = re.search(rf"^{re.escape(name)}\{{{re.escape(labels)}\}} (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


def held_count(out):
    lines = out.splitlines()
    assert len(lines) == 2 and lines[1] == "open: No file descriptors available", out
    m = re.fullmatch(r"held (\d+)", lines[0])
    assert m, out
    return int(m.group(1))
