"""The kubelet HTTPS API of a wasmlet node, through the real API server
(`kubectl logs` and its options, exec/attach) and directly on
the node's port (authentication and authorization of every endpoint,
/metrics through promtool, /stats/summary), plus container log rotation
under a flood of output.

One node serves the whole module (its serving certificate approved, as an
operator would); every test works in a namespace of its own and pins its
pods to that node. Direct requests verify the node's certificate against
the cluster CA, so they also prove the serving certificate is the signed
one.
"""

import datetime
import http.client
import json
import re
import shutil
import socket
import ssl
import subprocess
import time

import pytest

from container_kit import (ModuleNode, attach, container, create_pod, cstatus, pod_manifest,
                           port_free, push, wait_done, wasmlet_bin)
from kubetest import KubectlError, NodeFactory, unique_name, wait_for

# Log rotation of this module's node: small, so a flood rotates many times.
LOG_MAX = 64 * 1024
LOG_FILES = 3
CRI_MAX_LINE = 16384


def api_port():
    """A free port in 10260-10319 (this module's range)."""
    for port in range(10260, 10320):
        if port_free(port):
            return port
    raise RuntimeError("no free port in 10260-10319")


def tls_context(cluster, cert=None, key=None):
    ctx = ssl.create_default_context(cafile=cluster.ca)
    if cert:
        ctx.load_cert_chain(cert, key)
    return ctx


def get(cluster, node, path, method="GET", cert=None, key=None, token=None, timeout=20):
    """(status, body text) of a request to the node's HTTPS API."""
    conn = http.client.HTTPSConnection("127.0.0.1", node.node.port, timeout=timeout,
                                       context=tls_context(cluster, cert, key))
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        conn.request(method, path, headers=headers)
        r = conn.getresponse()
        return r.status, r.read().decode(errors="replace")
    finally:
        conn.close()


def apiserver_client(cluster):
    """The API server's own client certificate towards kubelets."""
    return (cluster.env["WASMLET_APISERVER_KUBELET_CLIENT_CERT"],
            cluster.env["WASMLET_APISERVER_KUBELET_CLIENT_KEY"])


def wait_signed_serving(cluster, node, timeout=60):
    """Approves the node's serving CSR until its HTTPS API presents a
    certificate the cluster CA verifies."""
    def verified():
        cluster.approve_serving(node.name)
        try:
            with socket.create_connection(("127.0.0.1", node.port), timeout=3) as s:
                with tls_context(cluster).wrap_socket(s, server_hostname="127.0.0.1"):
                    return True
        except (ssl.SSLError, OSError):
            return False

    wait_for(verified, timeout, interval=1, desc=f"node {node.name} serving a signed certificate")


@pytest.fixture(scope="module")
def api_node(cluster, tmp_path_factory):
    factory = NodeFactory(cluster, tmp_path_factory.mktemp("api"), wasmlet_bin())
    node = factory.start(name=unique_name("h6-api"), port=api_port(),
                         args=["--backoff-initial", "1000",
                               "--container-log-max-size", str(LOG_MAX),
                               "--container-log-max-files", str(LOG_FILES)])
    mnode = ModuleNode(factory, node)
    try:
        wait_signed_serving(cluster, node)
        yield mnode
    finally:
        factory.teardown()


@pytest.fixture
def node(api_node, request):
    attach(request, api_node)
    return api_node


@pytest.fixture(scope="module")
def images(cluster):
    return {name: push(cluster, name, f"h6-api/{name}") for name in
            ("flood", "ticker", "exitcode", "hello", "spin")}


def logs(cluster, ns, pod, *flags, container=None, check=True):
    args = ["logs", "-n", ns, pod, *flags]
    if container:
        args += ["-c", container]
    return cluster.kubectl(args, json=False, check=check, timeout=60)


def parse_ts(ts):
    """An RFC 3339 time with up to 9 fractional digits, as a UTC datetime."""
    base, _, frac = ts.rstrip("Z").partition(".")
    return datetime.datetime.fromisoformat(f"{base}.{(frac + '000000')[:6]}+00:00")


def flood_line(n, size=40):
    head = f"{n:08d} "
    return head + "x" * (size - len(head) - 1)


# --- kubectl logs -------------------------------------------------------------


def test_logs_options(cluster, node, namespace, images):
    """Every `kubectl logs` option gives the lines the container wrote."""
    create_pod(cluster, namespace, "lines", node.node,
               [container("count", images["flood"], args=["50", "40"]),
                container("other", images["hello"])])
    p = wait_done(cluster, namespace, "lines")
    assert p["status"]["phase"] == "Succeeded", p["status"]
    want = [flood_line(n) for n in range(1, 51)]

    assert logs(cluster, namespace, "lines", container="count").splitlines() == want
    assert logs(cluster, namespace, "lines", container="other") == "Hello from wasmlet!\n"
    assert logs(cluster, namespace, "lines", "--tail=5", container="count").splitlines() == \
        want[-5:]
    assert logs(cluster, namespace, "lines", "--tail=0", container="count") == ""
    text = logs(cluster, namespace, "lines", "--limit-bytes=100", container="count")
    assert text == "\n".join(want)[:100]
    stamped = logs(cluster, namespace, "lines", "--timestamps", "--tail=3",
                   container="count").splitlines()
    assert len(stamped) == 3
    for line, expect in zip(stamped, want[-3:]):
        ts, _, rest = line.partition(" ")
        assert rest == expect
        parsed = parse_ts(ts)
        assert abs((datetime.datetime.now(datetime.timezone.utc) - parsed).total_seconds()) < 600
    assert logs(cluster, namespace, "lines", "--since=1h", container="count").splitlines() == want
    # --since-time after the last line: nothing; before the first: all.
    last_ts = stamped[-1].split(" ")[0]
    after = (parse_ts(last_ts) + datetime.timedelta(seconds=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert logs(cluster, namespace, "lines", f"--since-time={after}", container="count") == ""
    assert logs(cluster, namespace, "lines", "--since-time=2020-01-01T00:00:00Z",
                container="count").splitlines() == want
    # Nothing ran before: --previous says so.
    with pytest.raises(KubectlError) as e:
        logs(cluster, namespace, "lines", "--previous", container="count")
    assert "previous terminated container" in e.value.stderr


def test_logs_previous(cluster, node, namespace, images):
    """--previous shows the run before the current one."""
    create_pod(cluster, namespace, "crash", node.node,
               [container("app", images["exitcode"], args=["3", "run failed"])],
               restart="OnFailure")

    def restarted_twice():
        s = cstatus(cluster.pod(namespace, "crash") or {}, "app") or {}
        return s.get("restartCount", 0) >= 2 and s

    wait_for(restarted_twice, 60, desc="two restarts")
    prev = logs(cluster, namespace, "crash", "--previous", "--timestamps").splitlines()
    assert len(prev) == 1 and prev[0].endswith(" run failed")
    # The previous run's line is older than the newest run's.
    def current_line():
        out = logs(cluster, namespace, "crash", "--timestamps", check=False) or ""
        return out.strip() and out.splitlines()[0]

    cur = wait_for(current_line, 30, desc="a line of the current run")
    t_prev = prev[0].split(" ")[0]
    t_cur = cur.split(" ")[0]
    assert t_prev < t_cur or cur == prev[0]


def test_logs_follow_is_prompt_and_ends_with_the_container(cluster, node, namespace, images):
    """`kubectl logs -f` shows each line within a second of its write and
    ends when the container ends."""
    create_pod(cluster, namespace, "tick", node.node,
               [container("app", images["ticker"], args=["500", "20"])])
    cluster.wait_pod_phase(namespace, "tick", ["Running", "Succeeded"], 60)
    cmd = [cluster.kubectl_bin, "--kubeconfig", cluster.kubeconfig, "logs", "-f",
           "--timestamps", "-n", namespace, "tick"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lags, seen = [], []
    try:
        for line in proc.stdout:
            arrived = datetime.datetime.now(datetime.timezone.utc)
            ts, _, text = line.rstrip("\n").partition(" ")
            written = parse_ts(ts)
            if not text.startswith("tick "):
                continue  # "ticker started", on stderr
            seen.append(text)
            # Lines written before the follow began arrive in a burst.
            if len(seen) > 3:
                lags.append((arrived - written).total_seconds())
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, proc.stderr.read()
    assert seen == [f"tick {n} alive" for n in range(1, 21)]
    assert lags and max(lags) < 1.0, lags
    assert cluster.pod_phase(namespace, "tick") == "Succeeded"


def test_logs_follow_of_a_flood(cluster, node, namespace, images):
    """A follow keeps up with a container writing megabytes (through log
    rotation) and gets every line, in order."""
    n = 60000
    create_pod(cluster, namespace, "flood", node.node,
               [container("app", images["flood"], args=[str(n), "100"])])
    cluster.wait_pod_phase(namespace, "flood", ["Running", "Succeeded"], 60)
    out = logs(cluster, namespace, "flood", "-f")
    lines = out.splitlines()
    # Rotation keeps only a few 64 KiB files, so a follow that falls that
    # far behind loses what was removed (as the kubelet's does); what it
    # sends is whole lines, in order, up to the last one.
    assert lines and lines[-1] == f"{n:08d} " + "x" * 90
    numbers = [int(x[:8]) for x in lines]
    assert all(len(x) == 99 and x[8:] == " " + "x" * 90 for x in lines)
    assert numbers == sorted(set(numbers))


# --- exec, attach (port-forward: test_port_forward.py) ---------------------


def test_exec_attach_say_why(cluster, node, namespace, images):
    create_pod(cluster, namespace, "svc", node.node,
               [container("app", images["ticker"], args=["1000", "0"])])
    cluster.wait_pod_phase(namespace, "svc", "Running", 60)
    cases = [
        (["exec", "-n", namespace, "svc", "--", "ls"], "exec is not supported"),
        (["exec", "-n", namespace, "svc", "-i", "--", "sh"], "exec is not supported"),
        (["attach", "-n", namespace, "svc"], "attach is not supported"),
    ]
    for args, want in cases:
        t0 = time.monotonic()
        p = subprocess.run([cluster.kubectl_bin, "--kubeconfig", cluster.kubeconfig, *args],
                           capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        assert p.returncode != 0
        assert want in p.stderr and "WASI" in p.stderr, p.stderr
        assert time.monotonic() - t0 < 20


# --- authentication and authorization -----------------------------------------

ENDPOINTS = ["/healthz", "/pods", "/stats/summary", "/metrics", "/metrics/resource",
             "/containerLogs/{ns}/reader/app"]


@pytest.fixture
def identities(cluster, namespace):
    """Tokens of a ServiceAccount without RBAC and of one allowed to read
    nodes' proxy, stats, metrics and log subresources."""
    role = unique_name("h6-node-reader")
    cluster.kubectl(["create", "serviceaccount", "nobody", "-n", namespace], json=False)
    cluster.kubectl(["create", "serviceaccount", "reader", "-n", namespace], json=False)
    cluster.kubectl(["create", "clusterrole", role, "--verb=get",
                     "--resource=nodes/proxy,nodes/stats,nodes/metrics,nodes/log"], json=False)
    cluster.kubectl(["create", "clusterrolebinding", role, f"--clusterrole={role}",
                     f"--serviceaccount={namespace}:reader"], json=False)
    try:
        tok = {sa: cluster.kubectl(["create", "token", sa, "-n", namespace],
                                   json=False).strip() for sa in ("nobody", "reader")}
        yield tok
    finally:
        cluster.delete("clusterrolebinding", role)
        cluster.delete("clusterrole", role)


def test_every_endpoint_authenticates_and_authorizes(cluster, node, namespace, images,
                                                     identities):
    create_pod(cluster, namespace, "reader", node.node,
               [container("app", images["hello"])])
    wait_done(cluster, namespace, "reader")
    cert, key = apiserver_client(cluster)
    for ep in ENDPOINTS:
        path = ep.format(ns=namespace)
        st, body = get(cluster, node, path)
        assert (st, body) == (401, "Unauthorized\n"), (path, st, body)
        st, body = get(cluster, node, path, token="not-a-token")
        assert st == 401, (path, st, body)
        st, body = get(cluster, node, path, token=identities["nobody"])
        assert st == 403, (path, st, body)
        assert f"user=system:serviceaccount:{namespace}:nobody" in body
        st, body = get(cluster, node, path, token=identities["reader"])
        assert st == 200, (path, st, body)
        st, body = get(cluster, node, path, cert=cert, key=key)
        assert st == 200, (path, st, body)
        if "containerLogs" in path:
            assert body == "Hello from wasmlet!\n"
    # The fine-grained subresource of /stats: a role with only nodes/stats
    # reads stats and nothing else.
    role = unique_name("h6-stats-only")
    cluster.kubectl(["create", "serviceaccount", "stats", "-n", namespace], json=False)
    cluster.kubectl(["create", "clusterrole", role, "--verb=get", "--resource=nodes/stats"],
                    json=False)
    cluster.kubectl(["create", "clusterrolebinding", role, f"--clusterrole={role}",
                     f"--serviceaccount={namespace}:stats"], json=False)
    try:
        tok = cluster.kubectl(["create", "token", "stats", "-n", namespace], json=False).strip()
        assert get(cluster, node, "/stats/summary", token=tok)[0] == 200
        assert get(cluster, node, "/pods", token=tok)[0] == 403
        assert get(cluster, node, "/metrics", token=tok)[0] == 403
        assert get(cluster, node, f"/containerLogs/{namespace}/reader/app", token=tok)[0] == 403
    finally:
        cluster.delete("clusterrolebinding", role)
        cluster.delete("clusterrole", role)


# --- metrics and stats -----------------------------------------------------------


def promtool_check(text):
    promtool = shutil.which("promtool")
    if not promtool:
        pytest.fail("promtool is not installed (Debian package prometheus)")
    p = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr


def samples(text, name):
    """{labels text: value} of the samples of one metric."""
    out = {}
    for line in text.splitlines():
        m = re.match(rf"^{re.escape(name)}(\{{[^}}]*\}})?\s+(\S+)", line)
        if m:
            out[m.group(1) or ""] = float(m.group(2))
    return out


def test_metrics_parse_and_count(cluster, node, namespace, images):
    create_pod(cluster, namespace, "m1", node.node, [container("app", images["hello"])])
    wait_done(cluster, namespace, "m1")
    cert, key = apiserver_client(cluster)
    st, text = get(cluster, node, "/metrics", cert=cert, key=key)
    assert st == 200
    promtool_check(text)
    assert samples(text, "kubelet_pod_start_duration_seconds_count")[""] >= 1
    loads = samples(text, "wasmlet_module_loads_total")
    assert sum(loads.values()) >= 1 and set(loads) == {
        '{source="memory"}', '{source="disk"}', '{source="compiler"}'}
    assert samples(text, "kubelet_started_pods_total")[""] >= 1
    assert any(k.startswith('{code="2xx"') for k in samples(text, "rest_client_requests_total"))
    assert samples(text, "rest_client_request_duration_seconds_count")
    assert samples(text, "wasmlet_http_requests_total")
    assert "kubelet_running_pods" in text and "kubelet_running_containers" in text
    assert "wasmlet_image_manifest_requests_total" in text
    st, text = get(cluster, node, "/metrics/resource", cert=cert, key=key)
    assert st == 200
    promtool_check(text)
    assert samples(text, "node_cpu_usage_seconds_total")[""] > 0
    assert samples(text, "resource_scrape_error")[""] == 0


STAGES = ["watch", "admission", "sandbox", "volumes", "pull", "load", "instantiate", "status",
          "node"]


def test_api_requests_share_a_connection(cluster, node, namespace, images):
    """A burst of pod starts (a TokenRequest, Events and status writes each)
    runs as HTTP/2 streams of the node's one connection to the API server:
    many requests, almost no new connections (a watch reconnecting meanwhile
    is one), and no status write of a Pending pod that was about to run."""
    cert, key = apiserver_client(cluster)

    def counters():
        st, text = get(cluster, node, "/metrics", cert=cert, key=key)
        assert st == 200
        by_method = samples(text, "rest_client_requests_total")
        reqs = sum(v for k, v in by_method.items() if 'method="WATCH"' not in k)
        patches = sum(v for k, v in by_method.items() if 'method="PATCH"' in k)
        return reqs, samples(text, "wasmlet_api_connections_opened_total")[""], patches

    # One pod first: the namespace's kube-root-ca.crt watch is then open.
    create_pod(cluster, namespace, "conn-warm", node.node, [container("app", images["hello"])])
    wait_done(cluster, namespace, "conn-warm")
    reqs0, conns0, patches0 = counters()
    n = 30
    pods = [pod_manifest(f"conn-{i}", node.node,
                         [container("app", images["ticker"], args=["60000"])],
                         labels={"burst": "conn"})
            for i in range(n)]
    cluster.kubectl(["create", "-f", "-", "-n", namespace], json=False,
                    input=json.dumps({"apiVersion": "v1", "kind": "List", "items": pods}))
    for i in range(n):
        cluster.wait_pod_phase(namespace, f"conn-{i}", ["Running"], 60)
    time.sleep(1)  # the last status writes acknowledged
    reqs1, conns1, patches1 = counters()
    print(f"{reqs1 - reqs0:.0f} requests ({patches1 - patches0:.0f} PATCHes), "
          f"{conns1 - conns0:.0f} connections opened")
    assert reqs1 - reqs0 >= 2 * n  # a TokenRequest and a status write per pod at least
    assert conns1 - conns0 <= 2
    # A pod that starts within a second has no Pending status written: one
    # status write each (Running), not two; a few more for the Node's own.
    assert patches1 - patches0 <= n + 5
    cluster.kubectl(["delete", "pods", "-l", "burst=conn", "-n", namespace, "--wait=false"],
                    json=False)


def stage_counts(cluster, node):
    cert, key = apiserver_client(cluster)
    st, text = get(cluster, node, "/metrics", cert=cert, key=key)
    assert st == 200
    counts = samples(text, "wasmlet_pod_start_stage_duration_seconds_count")
    return {stage: counts.get(f'{{stage="{stage}"}}', 0) for stage in STAGES}, text


def test_pod_start_trace(cluster, node, namespace, images):
    """A pod start is traced: one structured log line with every stage,
    and one more observation in each stage's histogram in /metrics."""
    before, _ = stage_counts(cluster, node)
    pod = create_pod(cluster, namespace, "traced", node.node,
                     [container("app", images["ticker"], args=["60000"])])
    uid = pod["metadata"]["uid"]
    lines = []

    def traced():
        lines[:] = [ln for ln in node.node.log_text().splitlines()
                    if "pod start trace " in ln and uid in ln]
        return bool(lines)

    wait_for(traced, 60, interval=0.2, desc="the pod's start trace in the node's log")
    assert len(lines) == 1, lines
    trace = json.loads(lines[0].split("pod start trace ", 1)[1])
    assert trace["pod"] == f"{namespace}/traced" and trace["uid"] == uid
    for stage in STAGES:
        assert trace[f"{stage}_ms"] >= 0, (stage, trace)
    # node: delivered to the last stage's end, so it covers what the worker did.
    assert trace["node_ms"] >= trace["admission_ms"] + trace["volumes_ms"]
    assert trace["node_ms"] >= trace["status_ms"]
    assert trace["watch_ms"] < 60000  # creationTimestamp's 1 s resolution, not a clock mix-up
    assert abs(trace["seen_wall_ns"] / 1e9 - time.time()) < 120
    after, text = stage_counts(cluster, node)
    for stage in STAGES:
        assert after[stage] >= before[stage] + 1, (stage, before, after)
    promtool_check(text)
    # The trace is emitted once, not again on later status writes.
    time.sleep(1.5)
    traced()
    assert len(lines) == 1, lines


def test_stats_summary(cluster, node, namespace, images):
    """A busy container's CPU shows in the summary, rising, with its logs."""
    create_pod(cluster, namespace, "busy", node.node, [container("app", images["spin"])],
               restart="Always")
    p = cluster.wait_pod_phase(namespace, "busy", "Running", 60)
    uid = p["metadata"]["uid"]
    cert, key = apiserver_client(cluster)

    def pod_stats():
        st, body = get(cluster, node, "/stats/summary", cert=cert, key=key)
        assert st == 200
        s = json.loads(body)
        for ps in s["pods"]:
            if ps["podRef"]["uid"] == uid and ps["containers"]:
                return s, ps
        return None

    s, ps = wait_for(pod_stats, 30, desc="the pod in /stats/summary")
    assert s["node"]["nodeName"] == node.name
    assert s["node"]["cpu"]["usageCoreNanoSeconds"] > 0
    assert s["node"]["memory"]["workingSetBytes"] > 0
    assert s["node"]["fs"]["capacityBytes"] > s["node"]["fs"]["availableBytes"] > 0
    assert s["node"]["systemContainers"][0]["name"] == "kubelet"
    assert ps["podRef"] == {"name": "busy", "namespace": namespace, "uid": uid}
    c = ps["containers"][0]
    assert c["name"] == "app"
    first = c["cpu"]["usageCoreNanoSeconds"]
    assert c["logs"]["usedBytes"] > 0
    assert ps["ephemeral-storage"]["usedBytes"] > 0
    time.sleep(2)
    s2, ps2 = pod_stats()
    # A busy loop: most of a core, on a machine others share.
    assert ps2["containers"][0]["cpu"]["usageCoreNanoSeconds"] > first + 2e8

    def rate():
        _, p3 = pod_stats()
        return p3["cpu"].get("usageNanoCores", 0) > 1e8

    wait_for(rate, 30, desc="usageNanoCores of a busy container")
    cluster.delete("pod", "busy", namespace)


# --- log rotation ------------------------------------------------------------------


def test_flood_is_held_to_the_rotation_limits(cluster, node, namespace, images):
    """20 MB of output leaves at most containerLogMaxFiles files of at most
    containerLogMaxSize each, and the newest lines are still readable."""
    n = 200000
    create_pod(cluster, namespace, "deluge", node.node,
               [container("app", images["flood"], args=[str(n), "100"])])
    p = cluster.wait_pod_phase(namespace, "deluge", ["Running", "Succeeded"], 60)
    logdir = (node.data_dir / "logs" / f"{namespace}_deluge_{p['metadata']['uid']}" / "app")
    worst, deadline = 0, time.monotonic() + 120
    while cluster.pod_phase(namespace, "deluge") == "Running" or worst == 0:
        assert time.monotonic() < deadline, "the flood did not end"
        sizes = []
        for f in logdir.iterdir() if logdir.is_dir() else []:
            try:
                sizes.append(f.stat().st_size)
            except FileNotFoundError:  # rotated away while we looked
                pass
        assert len(sizes) <= LOG_FILES, sizes
        worst = max(worst, sum(sizes))
        time.sleep(0.05)
    assert cluster.pod_phase(namespace, "deluge") == "Succeeded"
    files = [f for f in logdir.iterdir() if f.is_file()]
    assert 1 <= len(files) <= LOG_FILES
    for f in files:
        assert f.stat().st_size <= LOG_MAX + CRI_MAX_LINE + 200, (f.name, f.stat().st_size)
    assert worst <= LOG_FILES * (LOG_MAX + CRI_MAX_LINE + 200)
    tail = logs(cluster, namespace, "deluge", "--tail=2").splitlines()
    assert [int(x[:8]) for x in tail] == [n - 1, n]
