"""Faults a node must survive, against the real control plane (issue 13,
"Hardening"): the API server frozen or gone while pods start and their
statuses are written, a full data dir, and kill -9 of wasmlet mid-write.
Each test asserts the pods' final statuses and, on disk, the integrity of
what the node keeps (check_store):

- every `<data-dir>/pods/<uid>/state.json` is a JSON object (the resume
  record, replaced atomically);
- every blob of the content store (`<data-dir>/modules/blobs/sha256/<hex>`)
  hashes to its name, and `index.json` (when there) is a JSON object whose
  entries name blobs that exist;
- every compiled module (`<data-dir>/modules/compiled/<hex>.cwasm`) is a
  whole ELF file: its section headers end inside the file.

Temporary files (`*.tmp.<pid>`, `modules/tmp/`) may be left by a crash;
they are never read back, and the check says so by ignoring only those
names.
"""
import errno
import hashlib
import json
import os
import signal
import struct
import subprocess
import threading
import time
from pathlib import Path

import pytest

from container_kit import unique_module
from kubetest import (NodeFactory, node_container_log, node_port, restart_node, unique_name,
                      wait_for, wasm_container, wasm_pod)

MI = 1024 * 1024


# -- helpers --------------------------------------------------------------------


def disruptive_allowed():
    return (os.environ.get("WASMLET_E2E_REUSE") != "1"
            or os.environ.get("WASMLET_E2E_DISRUPTIVE") == "1")


def is_temp(name):
    return ".tmp." in name


def elf_whole(path):
    """Whether path is an ELF64 file whose section header table ends inside
    it (a truncated compiled module fails this)."""
    data = path.read_bytes()
    if len(data) < 64 or data[:4] != b"\x7fELF" or data[4] != 2:
        return False
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    return shoff > 0 and shoff + shentsize * shnum <= len(data)


def check_store(data_dir):
    """Asserts the integrity of a node's on-disk state (module docstring);
    returns {"states": n, "blobs": n, "compiled": n, "temps": [names]}."""
    data_dir = Path(data_dir)
    out = {"states": 0, "blobs": 0, "compiled": 0, "temps": []}
    for st in sorted((data_dir / "pods").glob("*/state.json")):
        text = st.read_text()
        obj = json.loads(text)  # a half-written record raises here
        assert isinstance(obj, dict), st
        out["states"] += 1
    for f in (data_dir / "pods").glob("*/*"):
        if is_temp(f.name):
            out["temps"].append(str(f.relative_to(data_dir)))
    store = data_dir / "modules"
    # Downloads in progress (emptied when the store opens).
    for f in (store / "tmp").iterdir() if (store / "tmp").is_dir() else []:
        out["temps"].append(str(f.relative_to(data_dir)))
    blobs = store / "blobs" / "sha256"
    names = set()
    for b in sorted(blobs.iterdir()) if blobs.is_dir() else []:
        if is_temp(b.name):
            out["temps"].append(str(b.relative_to(data_dir)))
            continue
        digest = hashlib.sha256(b.read_bytes()).hexdigest()
        assert digest == b.name, f"content store blob {b.name} holds sha256:{digest}"
        names.add(b.name)
        out["blobs"] += 1
    index = store / "index.json"
    if index.exists():
        obj = json.loads(index.read_text())
        assert isinstance(obj, dict), obj
        for hexes in _digests_in(obj):
            # The index is written after the blob it names exists; GC may
            # remove a blob together with its entries, never one alone.
            assert hexes in names, f"index.json names sha256:{hexes}, not in the store"
    compiled = store / "compiled"
    for c in sorted(compiled.iterdir()) if compiled.is_dir() else []:
        if is_temp(c.name):
            out["temps"].append(str(c.relative_to(data_dir)))
            continue
        if c.suffix == ".cwasm":
            assert elf_whole(c), f"compiled module {c.name} is not a whole ELF file"
            out["compiled"] += 1
    return out


def _digests_in(obj):
    """Module digests (hex) an index.json names: the "module" of each entry
    (image/store.c: refs and manifests, each entry {manifest, module, format})."""
    stack = [obj]
    while stack:
        o = stack.pop()
        if isinstance(o, dict):
            for k, v in o.items():
                if (isinstance(v, str) and v.startswith("sha256:") and len(v) == 71
                        and k == "module"):
                    yield v[7:]
                else:
                    stack.append(v)
        elif isinstance(o, list):
            stack.extend(o)


def cstatus(pod, name, init=False):
    key = "initContainerStatuses" if init else "containerStatuses"
    for s in pod.get("status", {}).get(key) or []:
        if s["name"] == name:
            return s
    return None


class PodWatch:
    """`kubectl get pod -w -o json` in the background: every version of the
    pod the API server stored, in order. ordered() checks that no status
    went backwards: the phase never leaves Succeeded/Failed or returns to
    Pending, and a container that terminated never runs again (restartPolicy
    Never) - what a lost or reordered status write would show."""

    RANK = {"Pending": 0, "Running": 1, "Succeeded": 2, "Failed": 2}

    def __init__(self, cluster, namespace, name):
        self.proc = subprocess.Popen(
            [cluster.kubectl_bin, "--kubeconfig", cluster.kubeconfig, "get", "pod", name,
             "-n", namespace, "-w", "-o", "json", "--request-timeout=0"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.versions = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        dec = json.JSONDecoder()
        buf = ""
        for chunk in iter(lambda: self.proc.stdout.read(1), ""):
            buf += chunk
            if chunk != "}":
                continue
            try:
                obj, end = dec.raw_decode(buf.lstrip())
            except ValueError:
                continue
            self.versions.append(obj)
            buf = ""

    def stop(self):
        self.proc.kill()
        self.proc.wait(5)
        self.thread.join(5)

    def summary(self):
        """One line per version: phase and each container's state."""
        out = []
        for v in self.versions:
            st = v.get("status", {})
            cs = [f"{c['name']}={next(iter(c.get('state') or {'?': 0}))}"
                  for key in ("initContainerStatuses", "containerStatuses")
                  for c in st.get(key) or []]
            out.append(f"{st.get('phase')}: {' '.join(cs)}")
        return "\n".join(out)

    def ordered(self):
        rank, done = -1, set()
        for v in self.versions:
            st = v.get("status", {})
            r = self.RANK.get(st.get("phase"), -1)
            assert r >= rank or r == -1, \
                f"phase went back to {st.get('phase')}:\n{self.summary()}"
            rank = max(rank, r)
            for key in ("initContainerStatuses", "containerStatuses"):
                for cs in st.get(key) or []:
                    state = cs.get("state", {})
                    if "terminated" in state:
                        done.add((key, cs["name"]))
                    elif (key, cs["name"]) in done:
                        raise AssertionError(f"{cs['name']} ran again after it terminated: {cs}")
        return len(self.versions)


# -- the API server frozen or gone while a pod starts --------------------------


def start_pod_across_outage(cluster, namespace, node, images, ledger, name):
    """A pod whose start spans an outage: init containers (a ledger line,
    then a 4 s sleep), then containers that read a ConfigMap through env and
    a volume and write a ledger line."""
    cluster.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"{name}-cfg"},
                    "data": {"greeting": "hello-from-configmap"}}, namespace)
    env = [{"name": "GREETING", "valueFrom": {"configMapKeyRef": {"name": f"{name}-cfg",
                                                                  "key": "greeting"}}}]
    pod = wasm_pod(name, [
        wasm_container("env", images["printenv"][0], env=env),
        ledger.container("mark", images["files"][0], "app"),
    ], init_containers=[
        ledger.container("init", images["files"][0], "init"),
        wasm_container("wait", images["sleeper"][0], ["4"]),
    ], node=node.name, volumes=[ledger.volume()])
    cluster.create(pod, namespace)


@pytest.mark.skipif(not disruptive_allowed(), reason="stops the shared cluster's API server; "
                    "set WASMLET_E2E_DISRUPTIVE=1 to run it against a reused cluster")
@pytest.mark.parametrize("fault", ["stall", "down"])
def test_api_server_fault_during_pod_start_and_status_writes(cluster, wasmlet_nodes, namespace,
                                                             wasm_images, ledger, fault):
    """stall: the API server frozen (SIGSTOP, 20 s) - requests hang. down:
    the API server process killed (15 s) and started again by cluster.sh -
    connections refused. Either way one pod is mid-start (its init sleeping,
    its containers still to start, which needs their ConfigMap) and a second
    one was created just before: both end Succeeded, each container ran once,
    the statuses the API server stored never went backwards, and the node's
    state on disk is whole."""
    node = wasmlet_nodes(port=node_port(), args=["--backoff-initial", "500"])
    start_pod_across_outage(cluster, namespace, node, wasm_images, ledger, "starter")
    watch = PodWatch(cluster, namespace, "starter")
    try:
        wait_for(lambda: ((cstatus(cluster.pod(namespace, "starter"), "wait", init=True) or {})
                          .get("state", {}).get("running")), 60, interval=0.2,
                 desc="starter's init container running")
        cluster.create(wasm_pod("late", [wasm_container("app", wasm_images["hello"][0])],
                                node=node.name), namespace)
        late_uid = cluster.pod(namespace, "late")["metadata"]["uid"]
        apiserver = cluster.pids()["kube-apiserver"]
        t0 = time.monotonic()
        if fault == "stall":
            os.kill(apiserver, signal.SIGSTOP)
            try:
                time.sleep(20)
                assert node.running(), node.log_tail()
            finally:
                os.kill(apiserver, signal.SIGCONT)
        else:
            # SIGKILL: a graceful stop would keep the process (not the
            # port) around while it drains its watches.
            os.kill(apiserver, signal.SIGKILL)
            try:
                wait_for(lambda: not _alive(apiserver), 30, interval=0.2,
                         desc="kube-apiserver exited")
                time.sleep(15)
                assert node.running(), node.log_tail()
            finally:
                # cluster.sh starts only what is missing: the API server.
                cluster.script("up", timeout=240)
        wait_for(lambda: cluster.kubectl(["get", "--raw", "/readyz"], json=False,
                                         check=False), 90, desc="API server ready again")
        outage = time.monotonic() - t0

        starter = cluster.wait_pod_phase(namespace, "starter", {"Succeeded", "Failed"}, 90)
        late = cluster.wait_pod_phase(namespace, "late", {"Succeeded", "Failed"}, 90)
    finally:
        time.sleep(1)  # the last watch events
        watch.stop()
    assert starter["status"]["phase"] == "Succeeded", starter["status"]
    assert late["status"]["phase"] == "Succeeded", late["status"]
    for name, init in (("init", True), ("wait", True), ("env", False), ("mark", False)):
        cs = cstatus(starter, name, init)
        t = cs["state"]["terminated"]
        assert (t["exitCode"], t["reason"], cs["restartCount"]) == (0, "Completed", 0), cs
    # Each container ran once, in order; the ConfigMap reached the env.
    suid = starter["metadata"]["uid"]
    assert ledger.lines(suid) == ["init", "app"]
    assert "env GREETING=hello-from-configmap" in node_container_log(node, namespace, "starter",
                                                                 "env")
    assert watch.ordered() >= 2, watch.versions
    assert node.running(), node.log_tail()
    store = check_store(node.data_dir)
    assert store["states"] >= 2 and store["blobs"] >= 1, store
    assert (node.data_dir / "pods" / late_uid / "state.json").is_file()
    assert outage >= 15
    # The node is Ready again and still starts pods.
    wait_for(lambda: cluster.node_ready(node.name), 60, interval=1, desc="node Ready")
    cluster.create(wasm_pod("after", [wasm_container("app", wasm_images["hello"][0])],
                            node=node.name), namespace)
    assert cluster.wait_pod_phase(namespace, "after", {"Succeeded", "Failed"}, 60)[
        "status"]["phase"] == "Succeeded"
    # The controller manager's informers reconnect with their own back-off
    # (up to 30 s after an outage): the test leaves once a new namespace
    # gets its default ServiceAccount again, so the tests after it find the
    # control plane whole.
    probe_ns = unique_name("after-outage")
    cluster.create_namespace(probe_ns, timeout=120)
    cluster.delete("namespace", probe_ns)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie of cluster.sh's is gone for our purpose.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


# -- a full data dir -------------------------------------------------------------


@pytest.fixture
def small_tmpfs(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs data dir needs root")
    d = tmp_path / unique_name("full")
    d.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(d)], check=True)
    try:
        yield d
    finally:
        subprocess.run(["umount", "-l", str(d)], check=False)


def fill(path):
    """Writes path until the file system is full (ENOSPC); returns bytes."""
    n = 0
    with open(path, "wb", buffering=0) as f:
        for size in (MI, 64 * 1024, 4096, 512, 1):
            chunk = b"\0" * size
            while True:
                try:
                    n += f.write(chunk)
                except OSError as e:
                    if e.errno != errno.ENOSPC:
                        raise
                    break
    return n


def waiting_reason(pod, name):
    return ((cstatus(pod, name) or {}).get("state", {}).get("waiting") or {})


def test_full_data_dir_fails_cleanly_and_recovers(cluster, small_tmpfs, namespace, ledger,
                                                   request, tmp_path):
    """The node's data dir (content store, compiled modules, pod state, logs)
    on a 48 MiB tmpfs the test fills to the last byte. Eviction is off for
    the disk (--eviction-hard names only memory), so what is tested is each
    writer meeting ENOSPC: a pull of a module not yet stored fails with a
    clear waiting reason (ErrImagePull), a service-account token volume
    fails FailedMount, state records stay the last whole ones, a running
    pod keeps running while its log cannot grow, the node keeps serving;
    nothing half-written is kept; once the space is back both pods start
    and the logs resume."""
    factory = NodeFactory(cluster, small_tmpfs.parent, os.environ.get("WASMLET_BIN")
                          or str(Path(__file__).resolve().parents[2] / "build" / "wasmlet"))
    request.node.wasmlet_node_factory = factory
    reg = cluster.registry_client()
    try:
        node = factory.start(name=small_tmpfs.name, port=node_port(),
                             args=["--backoff-initial", "500",
                                   "--eviction-hard", "memory.available<1Mi"])
        assert os.path.ismount(node.data_dir)
        ticker = reg.push_wasm(f"full/ticker-{unique_name('t')}", "v1",
                               unique_module("ticker", tmp_path).read_bytes())[0]
        cluster.create(wasm_pod("steady", [wasm_container("app", ticker, ["100"])],
                                node=node.name, restart_policy="Always"), namespace)
        cluster.wait_pod_phase(namespace, "steady", {"Running"}, 60)
        wait_for(lambda: len(node_container_log(node, namespace, "steady", "app")) >= 3, 20,
                 desc="steady ticking")

        ballast = node.data_dir / "ballast"
        filled = fill(ballast)
        assert os.statvfs(node.data_dir).f_bavail == 0
        # A module no store has seen: its pull must write a blob. No
        # service-account token, so the pull is the first write of its start.
        fresh = unique_module("hello", tmp_path)
        image = reg.push_wasm(f"full/hello-{unique_name('h')}", "v1", fresh.read_bytes())[0]
        cluster.create(wasm_pod("during", [wasm_container("app", image)], node=node.name,
                                restart_policy="Never", automountServiceAccountToken=False),
                       namespace)
        # With the token: its projected volume is written first, and fails
        # as the kubelet's does (FailedMount, the pod waits).
        cluster.create(wasm_pod("mounting", [wasm_container("app", image)], node=node.name,
                                restart_policy="Never"), namespace)

        def pull_failed():
            w = waiting_reason(cluster.pod(namespace, "during"), "app")
            return w if w.get("reason") in ("ErrImagePull", "ImagePullBackOff") else None
        w = wait_for(pull_failed, 60, interval=0.5, desc="the pull failing on the full disk")
        ev = " ".join(e.get("message", "") for e in cluster.events(namespace, "during"))
        assert "No space left on device" in (w.get("message", "") + ev), (w, ev)

        def mount_failed():
            return [e for e in cluster.events(namespace, "mounting")
                    if e.get("reason") == "FailedMount"
                    and "No space left on device" in e.get("message", "")]
        wait_for(mount_failed, 60, interval=0.5, desc="FailedMount on the full disk")
        assert cluster.pod(namespace, "mounting")["status"]["phase"] == "Pending"
        # The node is alive and Ready, the ticker still runs, and nothing
        # half-written is in the store.
        time.sleep(3)
        assert node.running(), node.log_tail()
        assert cluster.node_ready(node.name)
        steady = cluster.pod(namespace, "steady")
        assert cstatus(steady, "app")["state"].get("running"), steady["status"]
        full = check_store(node.data_dir)
        assert hashlib.sha256(fresh.read_bytes()).hexdigest() not in {
            b.name for b in (node.data_dir / "modules" / "blobs" / "sha256").iterdir()}

        # Space comes back: the pull succeeds on a retry, the pod runs, the
        # ticker's log grows again.
        ticks = len(node_container_log(node, namespace, "steady", "app"))
        ballast.unlink()
        for name in ("during", "mounting"):
            p = cluster.wait_pod_phase(namespace, name, {"Succeeded", "Failed"}, 90)
            assert p["status"]["phase"] == "Succeeded", p["status"]
            assert node_container_log(node, namespace, name, "app"), f"{name}: no output"
        wait_for(lambda: len(node_container_log(node, namespace, "steady", "app")) > ticks + 3,
                 20, desc="steady's log growing again")
        assert cstatus(cluster.pod(namespace, "steady"), "app")["restartCount"] == 0
        after = check_store(node.data_dir)
        assert after["blobs"] > full["blobs"], (full, after)
        assert filled > 0
    finally:
        factory.teardown()


# -- kill -9 mid-write -------------------------------------------------------------


def test_kill9_mid_write_keeps_the_store_whole(cluster, wasmlet_nodes, namespace, wasm_images,
                                               ledger, tmp_path):
    """Rounds of: pods on modules no store has seen (each start pulls a blob,
    writes the index, compiles and writes a .cwasm, saves state records),
    wasmlet killed -9 a moment later - at a different moment each round - and
    restarted on the same data dir. After each kill the on-disk state is
    whole; at the end every pod is finished, none ran twice (ledger), the
    ones that were not caught mid-run Succeeded, and the node still starts
    pods. A last round kills wasmlet while a 48 MiB module downloads: the
    partial download stays in tmp/, never reaches blobs/, and the pull
    starts over after the restart."""
    node = wasmlet_nodes(port=node_port(), args=["--backoff-initial", "500"])
    reg = cluster.registry_client()
    files = wasm_images["files"][0]
    pods = []
    temps = 0
    for rnd, delay in enumerate((0.3, 0.8, 1.5, 2.5)):
        for i in range(3):
            name = f"r{rnd}-p{i}"
            mod = unique_module("files", tmp_path, note=f"{name}-{os.urandom(4).hex()}")
            image = reg.push_wasm(f"crash/{name}", "v1", mod.read_bytes())[0]
            c = ledger.container("app", image, "ran")
            cluster.create(wasm_pod(name, [c], node=node.name, volumes=[ledger.volume()]),
                           namespace)
            pods.append(name)
        time.sleep(delay)
        node.signal(signal.SIGKILL)
        node.proc.wait(10)
        temps += len(check_store(node.data_dir)["temps"])
        restart_node(wasmlet_nodes.__self__, node)

    # Mid-pull: a 48 MiB module, wasmlet killed as soon as its download
    # appears in the store's tmp/. The partial download is never read back:
    # after the restart the pull starts over and the blob hashes to its name.
    big = unique_module("files", tmp_path, note=os.urandom(24 * MI).hex())
    image = reg.push_wasm("crash/big", "v1", big.read_bytes())[0]
    cluster.create(wasm_pod("big", [ledger.container("app", image, "ran")], node=node.name,
                            volumes=[ledger.volume()]), namespace)
    pods.append("big")
    downloads = node.data_dir / "modules" / "tmp"
    wait_for(lambda: downloads.is_dir() and any(downloads.iterdir()), 60, interval=0.002,
             desc="the big download in progress")
    node.signal(signal.SIGKILL)
    node.proc.wait(10)
    mid_pull = check_store(node.data_dir)["temps"]
    assert any(t.startswith("modules/tmp/") for t in mid_pull), mid_pull  # caught mid-pull
    temps += len(mid_pull)
    restart_node(wasmlet_nodes.__self__, node)

    uids = {}
    outcomes = {}
    for name in pods:
        p = cluster.wait_pod_phase(namespace, name, {"Succeeded", "Failed"}, 120)
        uids[name] = p["metadata"]["uid"]
        cs = cstatus(p, "app")
        outcomes[name] = (p["status"]["phase"], (cs or {}).get("state", {})
                          .get("terminated", {}).get("reason"))
    for name in pods:
        lines = ledger.lines(uids[name])
        phase, reason = outcomes[name]
        assert len(lines) <= 1, f"{name} ran {len(lines)} times"
        if phase == "Succeeded":
            assert lines == ["ran"], (name, lines)
        else:
            # Caught mid-run: restartPolicy Never cannot run it again.
            assert reason == "ContainerStatusUnknown", (name, outcomes[name])
    assert sum(1 for ph, _ in outcomes.values() if ph == "Succeeded") >= len(pods) // 2, outcomes
    store = check_store(node.data_dir)
    assert store["blobs"] >= len(pods), store
    assert outcomes["big"] == ("Succeeded", "Completed"), outcomes["big"]
    big_hex = hashlib.sha256(big.read_bytes()).hexdigest()
    assert (node.data_dir / "modules" / "blobs" / "sha256" / big_hex).is_file()
    print(f"kill -9 rounds: outcomes {outcomes}; temp files left by crashes: {temps}; "
          f"left by the mid-pull kill: {mid_pull}")
    cluster.create(wasm_pod("after", [wasm_container("app", wasm_images["hello"][0])],
                            node=node.name), namespace)
    assert cluster.wait_pod_phase(namespace, "after", {"Succeeded", "Failed"}, 60)[
        "status"]["phase"] == "Succeeded"
