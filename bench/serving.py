"""HTTP: the hello wasi:http component (examples/components/http-hello.c,
path /) served by wasmlet in a pod, through its pod IP (from the host), and
the same component under `wasmtime serve` (the CLI of wasmlet's Wasmtime
version) on loopback, on the same cores, in the same run. The load is
Debian's wrk at 1, 16 and 64 connections; each figure is the median of the
repetitions, which alternate between the two servers so that load from
elsewhere on a shared machine lands on both alike.

wasmlet serves with its defaults, the access log included (one CRI log line
per request); `wasmtime serve` writes none. The per-request instantiation
time comes from wasmlet's own /metrics (wasmlet_served_instantiate_seconds).

Targets (issue 15), at 16 connections: wasmlet >= 1.0x wasmtime serve's
requests per second, and wasmlet's p99 <= 1.2x wasmtime serve's p99.
"""

import http.client
import re
import shutil
import socket
import ssl
import subprocess
import time

import compute
import kit
import kubetest

CONNECTIONS = (1, 16, 64)
TARGET_CONNECTIONS = 16
_UNIT = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def parse_wrk(text):
    """{rps, p50_ms, p99_ms, requests, errors} of `wrk --latency` output."""
    out = {}
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if not m:
        raise RuntimeError(f"no Requests/sec in wrk output: {text[-400:]!r}")
    out["rps"] = float(m.group(1))
    for pct in ("50", "99"):
        m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
        out[f"p{pct}_ms"] = float(m.group(1)) * _UNIT[m.group(2)] if m else None
    m = re.search(r"(\d+) requests in", text)
    out["requests"] = int(m.group(1)) if m else 0
    errs = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                     text)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    out["errors"] = (sum(int(x) for x in errs.groups()) if errs else 0) + (
        int(non2xx.group(1)) if non2xx else 0)
    return out


def wrk(url, conns, seconds):
    threads = min(conns, 2)
    p = subprocess.run(["wrk", f"-t{threads}", f"-c{conns}", f"-d{seconds}s", "--latency",
                        "--timeout", "5s", url], capture_output=True, text=True,
                       timeout=seconds + 30)
    if p.returncode != 0:
        raise RuntimeError(f"wrk failed: {p.stderr.strip()[-300:]}")
    return parse_wrk(p.stdout)


def answers(host, port, timeout=60):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            c = http.client.HTTPConnection(host, port, timeout=2)
            c.request("GET", "/")
            r = c.getresponse()
            body = r.read()
            c.close()
            if r.status == 200 and b"hello" in body:
                return True
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"nothing answered on {host}:{port} within {timeout}s")


def node_metrics(env, node):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    e = env.cluster.env
    ctx.load_cert_chain(e["WASMLET_APISERVER_KUBELET_CLIENT_CERT"],
                        e["WASMLET_APISERVER_KUBELET_CLIENT_KEY"])
    c = http.client.HTTPSConnection("127.0.0.1", node.port, timeout=20, context=ctx)
    try:
        c.request("GET", "/metrics")
        return c.getresponse().read().decode(errors="replace")
    finally:
        c.close()


def instantiate_us(text, ns):
    """Mean instantiation time (µs) of the served requests of namespace ns."""
    total = count = 0.0
    for line in text.splitlines():
        if f'namespace="{ns}"' not in line:
            continue
        if line.startswith("wasmlet_served_instantiate_seconds_sum{"):
            total += float(line.rsplit(" ", 1)[1])
        elif line.startswith("wasmlet_served_instantiate_seconds_count{"):
            count += float(line.rsplit(" ", 1)[1])
    return total / count * 1e6 if count else None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(env, node, quick=False):
    if not shutil.which("wrk"):
        raise RuntimeError("wrk is not installed (Debian package wrk; scripts/setup.sh)")
    component = kit.EXAMPLES / "http-hello.component.wasm"
    seconds = 2 if quick else 5
    reps = 1 if quick else 3
    image = env.push("http-hello", component.read_bytes())
    ns = kit.namespace(env, "http")
    pod = kit.pod("hello", image, node=node.name, restart="Always", lean=True)
    pod["spec"]["containers"][0]["ports"] = [{"containerPort": 8080}]
    wt = compute.wasmtime_cli()
    wt_proc = None
    results = {"wasmlet": {c: [] for c in CONNECTIONS}, "wasmtime serve": {c: [] for c in
                                                                           CONNECTIONS}}
    try:
        _, _, st, obj = env.api.create_pod(ns, pod)
        if st != 201:
            raise RuntimeError(f"create pod: HTTP {st}: {obj}")

        def pod_ip():
            p = env.api.request("GET", f"/api/v1/namespaces/{ns}/pods/hello")[1]
            st = p.get("status") or {}
            return st.get("podIP") if st.get("phase") == "Running" else None

        ip = kubetest.wait_for(pod_ip, 120, 0.1, "the hello pod Running with a podIP")
        answers(ip, 8080)
        servers = {"wasmlet": f"http://{ip}:8080/"}
        wt_version = None
        if wt:
            wt_version = subprocess.run([wt, "--version"], capture_output=True,
                                        text=True).stdout.strip()
            port = free_port()
            wt_proc = subprocess.Popen([wt, "serve", "-S", "cli=y", "--addr",
                                        f"127.0.0.1:{port}", str(component)],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            answers("127.0.0.1", port)
            servers["wasmtime serve"] = f"http://127.0.0.1:{port}/"
        else:
            kit.log("http: wasmtime CLI not found (see bench/README.md); the comparison "
                    "will be missing")
            del results["wasmtime serve"]
        for url in servers.values():  # warm both (compile caches, page cache)
            wrk(url, 4, 1)
        order = list(servers)
        for r in range(reps):
            for conns in CONNECTIONS:
                rot = order if r % 2 == 0 else order[::-1]
                for name in rot:
                    res = wrk(servers[name], conns, seconds)
                    kit.log(f"http: {name} c={conns}: {res['rps']:.0f} req/s, "
                            f"p50 {res['p50_ms']} ms, p99 {res['p99_ms']} ms")
                    results[name][conns].append(res)
        inst = instantiate_us(node_metrics(env, node), ns)
    finally:
        if wt_proc:
            wt_proc.terminate()
            try:
                wt_proc.wait(10)
            except subprocess.TimeoutExpired:
                wt_proc.kill()
        env.api.delete_pods(ns, grace=0)
        env.api.delete_namespace(ns)
    med = {}
    for name, by_c in results.items():
        med[name] = {}
        for conns, runs in by_c.items():
            med[name][conns] = {k: kit.median([x[k] for x in runs if x[k] is not None])
                                for k in ("rps", "p50_ms", "p99_ms")}
            med[name][conns]["errors"] = sum(x["errors"] for x in runs)
    targets = None
    if "wasmtime serve" in med:
        w, t = med["wasmlet"][TARGET_CONNECTIONS], med["wasmtime serve"][TARGET_CONNECTIONS]
        rps_ratio = w["rps"] / t["rps"]
        p99_ratio = w["p99_ms"] / t["p99_ms"]
        targets = {"rps_ratio": rps_ratio, "rps_met": rps_ratio >= 1.0,
                   "p99_ratio": p99_ratio, "p99_met": p99_ratio <= 1.2}
    return {"seconds": seconds, "reps": reps, "connections": list(CONNECTIONS),
            "wasmtime_cli": wt, "wasmtime_version": wt_version, "runs": results,
            "median": med, "targets": targets, "instantiate_us": inst}
