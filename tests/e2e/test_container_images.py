"""Where a wasm container's module comes from: OCI images in the three wasm
layouts, private registries (Basic and Bearer token auth, from
imagePullSecrets or the node's own --registry-config), imagePullPolicy, and
every way a pull can fail ending as a clear pod status (ErrImagePull /
ImagePullBackOff with the registry's words), never a crash or a corrupt
store entry.

Registries: the cluster's open registry, its htpasswd registry (Basic), and
RegistryFront below: an in-process front of the open registry that can ask
for the Docker token dance, count requests and corrupt chosen blobs."""

import base64
import gzip
import hashlib
import http.server
import io
import json
import re
import secrets
import tarfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from kubetest import Registry, wait_for
from container_kit import (attach, unique_module, container, create_pod, logs, module_path, node_port, port_free,
                           printenv_args, push, start_module_node, terminated, wait_done,
                           wait_event, waiting_with, wasmlet_bin)

PULL_FAILED = ("ErrImagePull", "ImagePullBackOff")


class RegistryFront:
    """An HTTP front of an upstream registry on 127.0.0.1.

    token_auth: every /v2/ request needs `Authorization: Bearer <token>`; a
    request without one gets a 401 with a Bearer challenge whose realm is our
    /token endpoint, which hands out tokens for Basic credentials
    user:password (the Docker token flow). corrupt: blob digests whose bytes
    are served with one byte flipped. requests: (method, path) seen."""

    def __init__(self, upstream, token_auth=False, user=None, password=None):
        self.upstream = upstream
        self.token_auth = token_auth
        self.user, self.password = user, password
        self.tokens = set()
        self.corrupt = set()
        self.requests = []
        self.token_requests = []
        self.lock = threading.Lock()
        front = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def send(self, status, headers, body, head=False):
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if not head:
                    self.wfile.write(body)

            def handle_token(self):
                auth = self.headers.get("Authorization", "")
                want = "Basic " + base64.b64encode(
                    f"{front.user}:{front.password}".encode()).decode()
                with front.lock:
                    front.token_requests.append((self.path, auth.startswith("Basic ")))
                if auth != want:
                    body = b'{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}'
                    return self.send(401, {"Content-Type": "application/json"}, body)
                tok = secrets.token_hex(16)
                with front.lock:
                    front.tokens.add(tok)
                body = json.dumps({"token": tok, "access_token": tok, "expires_in": 300}).encode()
                return self.send(200, {"Content-Type": "application/json"}, body)

            def proxy(self, head):
                if self.path.startswith("/token"):
                    return self.handle_token()
                with front.lock:
                    front.requests.append((self.command, self.path))
                if front.token_auth:
                    auth = self.headers.get("Authorization", "")
                    ok = auth.startswith("Bearer ") and auth[7:] in front.tokens
                    if not ok:
                        parts = self.path.split("/")
                        repo = "/".join(parts[2:-2]) if len(parts) > 4 else ""
                        challenge = (f'Bearer realm="http://127.0.0.1:{front.port}/token",'
                                     f'service="wasmlet-e2e"')
                        if repo:
                            challenge += f',scope="repository:{repo}:pull"'
                        body = (b'{"errors":[{"code":"UNAUTHORIZED","message":'
                                b'"authentication required"}]}')
                        return self.send(401, {"WWW-Authenticate": challenge,
                                               "Content-Type": "application/json"}, body, head)
                req = urllib.request.Request(f"http://{front.upstream}{self.path}",
                                             method=self.command)
                if self.headers.get("Accept"):
                    req.add_header("Accept", self.headers["Accept"])
                opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
                try:
                    with opener.open(req, timeout=30) as r:
                        status, headers, body = r.status, r.headers, r.read()
                except urllib.error.HTTPError as e:
                    status, headers, body = e.code, e.headers, e.read()
                out = {k: headers[k] for k in ("Content-Type", "Docker-Content-Digest",
                                               "Docker-Distribution-Api-Version") if headers.get(k)}
                digest = self.path.rsplit("/", 1)[-1]
                if "/blobs/" in self.path and digest in front.corrupt and body:
                    body = bytes([body[0] ^ 0xFF]) + body[1:]
                if head and headers.get("Content-Length"):
                    # A HEAD answer has no body but the GET's length.
                    self.send_response(status)
                    for k, v in out.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", headers["Content-Length"])
                    self.end_headers()
                    return None
                return self.send(status, out, body, head)

            def do_GET(self):
                self.proxy(False)

            def do_HEAD(self):
                self.proxy(True)

        self.port = node_port_after(10340)
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def host(self):
        return f"127.0.0.1:{self.port}"

    def manifest_requests(self, repo):
        with self.lock:
            return [r for r in self.requests if f"/v2/{repo}/manifests/" in r[1]]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def node_port_after(start):
    for port in range(start, 10400):
        if port_free(port):
            return port
    raise RuntimeError("no free port")


def docker_config(host, user, password):
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    return json.dumps({"auths": {host: {"username": user, "password": password, "auth": auth}}})


def pull_secret(cluster, namespace, name, host, user, password):
    cluster.create({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
        "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": base64.b64encode(
            docker_config(host, user, password).encode()).decode()},
    }, namespace)


# --- fixtures -------------------------------------------------------------------


@pytest.fixture(scope="module")
def img_node(cluster, tmp_path_factory):
    mnode = start_module_node(cluster, tmp_path_factory, "img")
    try:
        yield mnode
    finally:
        mnode.factory.teardown()


@pytest.fixture
def node(img_node, request):
    attach(request, img_node)
    return img_node


@pytest.fixture(scope="module")
def front(cluster):
    f = RegistryFront(cluster.registry)
    yield f
    f.close()


@pytest.fixture(scope="module")
def token_front(cluster):
    f = RegistryFront(cluster.registry, token_auth=True, user="tok-user",
                      password=secrets.token_hex(8))
    yield f
    f.close()


def run_ok(cluster, node, ns, name, image, args=None, spec=None, **extra):
    c = container("app", image, args=args, **extra)
    create_pod(cluster, ns, name, node.node, [c], **(spec or {}))
    p = wait_done(cluster, ns, name)
    out = logs(cluster, node.node, ns, name, "app")
    assert p["status"]["phase"] == "Succeeded", (p["status"], out)
    return p, out


def store_is_clean(node):
    """Every module in the node's store is named by the digest of its bytes,
    and no download is left half-done."""
    store = Path(node.data_dir) / "modules"
    blobs = store / "blobs" / "sha256"
    for f in blobs.iterdir() if blobs.is_dir() else []:
        assert hashlib.sha256(f.read_bytes()).hexdigest() == f.name, f"corrupt store entry {f}"
    tmp = store / "tmp"
    assert not tmp.is_dir() or not any(tmp.iterdir()), list(tmp.iterdir())
    return True


# --- formats and push -----------------------------------------------------------


def oci_image_with_layers(reg, repo, tag):
    """An ordinary OCI image built here (not by wasmlet push): two gzip tar
    layers, the second replacing usr/bin/tool.wasm of the first, and an
    Entrypoint naming it relative to WorkingDir."""
    def layer(files):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as t:
            for name, data in files.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                info.mode = 0o755
                t.addfile(info, io.BytesIO(data))
        raw = buf.getvalue()
        return gzip.compress(raw), "sha256:" + hashlib.sha256(raw).hexdigest()

    hello = module_path("hello").read_bytes()
    printenv = module_path("printenv").read_bytes()
    l1, d1 = layer({"app.wasm": hello, "usr/bin/tool.wasm": hello, "etc/motd": b"hi\n"})
    l2, d2 = layer({"usr/bin/tool.wasm": printenv})
    cfg = json.dumps({"architecture": "wasm", "os": "wasip1",
                      "config": {"Entrypoint": ["bin/tool.wasm"], "WorkingDir": "/usr"},
                      "rootfs": {"type": "layers", "diff_ids": [d1, d2]}}).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": reg.push_blob(repo, cfg), "size": len(cfg)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": reg.push_blob(repo, data), "size": len(data)} for data in (l1, l2)],
    }
    digest = reg.push_manifest(repo, tag, manifest)
    return f"{reg.host}/{repo}:{tag}", digest


def test_push_publishes_the_cncf_wasm_artifact(cluster):
    ref = push(cluster, "printenv", "img/pushed", "v1")
    reg = cluster.registry_client()
    st, _, body = reg.get_manifest("img/pushed", "v1")
    assert st == 200
    m = json.loads(body)
    wasm = module_path("printenv").read_bytes()
    assert m["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert m["config"]["mediaType"] == "application/vnd.wasm.config.v0+json"
    assert [(lay["mediaType"], lay["digest"], lay["size"]) for lay in m["layers"]] == [
        ("application/wasm", "sha256:" + hashlib.sha256(wasm).hexdigest(), len(wasm))]
    st, _, cfg = reg.get_blob("img/pushed", m["config"]["digest"])
    cfg = json.loads(cfg)
    assert cfg["architecture"] == "wasm" and cfg["os"] == "wasip1"
    assert cfg["layerDigests"] == [m["layers"][0]["digest"]]
    st, _, blob = reg.get_blob("img/pushed", m["layers"][0]["digest"])
    assert blob == wasm
    assert ref == f"{cluster.registry}/img/pushed:v1"


@pytest.mark.parametrize("fmt", ["wasm", "wasm-to-oci", "oci-image", "layered-oci-image"])
def test_each_format_runs(cluster, node, namespace, fmt):
    reg = cluster.registry_client()
    repo = f"img/fmt-{fmt}"
    if fmt == "layered-oci-image":
        ref, digest = oci_image_with_layers(reg, repo, "v1")
    else:
        ref = push(cluster, "printenv", repo, "v1", fmt=fmt)
        st, h, body = reg.get_manifest(repo, "v1")
        digest = h["Docker-Content-Digest"]
        layer_types = [lay["mediaType"] for lay in json.loads(body)["layers"]]
        assert layer_types == {
            "wasm": ["application/wasm"],
            "wasm-to-oci": ["application/vnd.wasm.content.layer.v1+wasm"],
            "oci-image": ["application/vnd.oci.image.layer.v1.tar+gzip"],
        }[fmt]
    p, out = run_ok(cluster, node, namespace, "fmt", ref, args=["x", fmt])
    assert printenv_args(out)[1:] == ["x", fmt]
    s = p["status"]["containerStatuses"][0]
    assert s["imageID"] == f"{reg.host}/{repo}@{digest}"
    assert s["image"] == ref
    assert store_is_clean(node)


# --- credentials ----------------------------------------------------------------


def test_basic_auth_through_image_pull_secrets(cluster, node, namespace, tmp_path):
    user, password = cluster.auth_registry_credentials
    host = cluster.auth_registry
    cfg = tmp_path / "config.json"
    cfg.write_text(docker_config(host, user, password))
    ref = push(cluster, "printenv", "img/private", "v1", registry=host, config=cfg)

    # Without credentials (the secret named does not exist): ErrImagePull
    # with the registry's own words.
    create_pod(cluster, namespace, "nocreds", node.node, [container("app", ref)],
               imagePullSecrets=[{"name": "not-created"}])
    ev = wait_event(cluster, namespace, "nocreds", "FailedToRetrieveImagePullSecret")
    assert ev["message"] == ("Unable to retrieve some image pull secrets (not-created); "
                             "attempting to pull the image may not succeed."), ev
    w = waiting_with(cluster, namespace, "nocreds", PULL_FAILED)
    ev = wait_event(cluster, namespace, "nocreds", "Failed", r"Failed to pull image")
    assert "401" in ev["message"] or "authentication required" in ev["message"].lower(), ev
    assert ref in ev["message"]
    w = waiting_with(cluster, namespace, "nocreds", "ImagePullBackOff")
    assert "authentication required" in w["message"].lower() or "401" in w["message"], w

    # Wrong password in the secret: still refused.
    pull_secret(cluster, namespace, "wrong", host, user, "not-the-password")
    create_pod(cluster, namespace, "wrongcreds", node.node, [container("app", ref)],
               imagePullSecrets=[{"name": "wrong"}])
    waiting_with(cluster, namespace, "wrongcreds", PULL_FAILED)

    # The right secret: pulled and run.
    pull_secret(cluster, namespace, "regcred", host, user, password)
    p, out = run_ok(cluster, node, namespace, "withcreds", ref, args=["basic"],
                    spec={"imagePullSecrets": [{"name": "regcred"}]})
    assert printenv_args(out)[1:] == ["basic"]


def test_token_auth_through_image_pull_secrets(cluster, node, namespace, token_front):
    push(cluster, "printenv", "img/token", "v1")
    ref = f"{token_front.host}/img/token:v1"
    create_pod(cluster, namespace, "notoken", node.node, [container("app", ref)])
    w = waiting_with(cluster, namespace, "notoken", PULL_FAILED)
    assert "401" in w["message"] or "bad credentials" in w["message"] or \
        "authentication" in w["message"].lower(), w

    pull_secret(cluster, namespace, "tokcred", token_front.host, token_front.user,
                token_front.password)
    spec = {"imagePullSecrets": [{"name": "tokcred"}]}
    c = container("app", ref, args=["token"])
    create_pod(cluster, namespace, "withtoken", node.node, [c], **spec)
    p = wait_done(cluster, namespace, "withtoken")
    out = logs(cluster, node.node, namespace, "withtoken", "app")
    assert p["status"]["phase"] == "Succeeded", p["status"]
    assert printenv_args(out)[1:] == ["token"]
    # The credentials went to the token endpoint, with the pull scope.
    assert any("scope=repository%3Aimg%2Ftoken%3Apull" in path or
               "scope=repository:img/token:pull" in path
               for path, basic in token_front.token_requests if basic)


def test_node_level_registry_config(cluster, namespace, tmp_path, tmp_path_factory, request):
    user, password = cluster.auth_registry_credentials
    host = cluster.auth_registry
    cfg = tmp_path / "node-config.json"
    cfg.write_text(docker_config(host, user, password))
    ref = push(cluster, "printenv", "img/node-creds", "v1", registry=host, config=cfg)
    mnode = start_module_node(cluster, tmp_path_factory, "imgcfg",
                              args=["--registry-config", str(cfg)])
    attach(request, mnode)
    try:
        p, out = run_ok(cluster, mnode, namespace, "nodecreds", ref, args=["node"])
        assert printenv_args(out)[1:] == ["node"]
    finally:
        mnode.factory.teardown()


# --- pull policy ----------------------------------------------------------------


def test_pull_policies(cluster, node, namespace, front):
    repo = "img/policy"
    push(cluster, "printenv", repo, "v1")
    ref = f"{front.host}/{repo}:v1"
    _, out = run_ok(cluster, node, namespace, "first", ref, args=["one"],
                    imagePullPolicy="IfNotPresent")
    assert printenv_args(out)[1:] == ["one"]

    # A new module under the same tag.
    push(cluster, "hello", repo, "v1")
    before = len(front.manifest_requests(repo))
    _, out = run_ok(cluster, node, namespace, "cached", ref, args=["two"],
                    imagePullPolicy="IfNotPresent")
    assert printenv_args(out)[1:] == ["two"], "IfNotPresent must reuse the module it has"
    assert len(front.manifest_requests(repo)) == before, "IfNotPresent asked the registry"

    _, out = run_ok(cluster, node, namespace, "always", ref, imagePullPolicy="Always")
    assert out.strip() == "Hello from wasmlet!", "Always must re-resolve the tag"
    assert len(front.manifest_requests(repo)) > before

    # Never: only what the store has; an absent image never pulls.
    _, out = run_ok(cluster, node, namespace, "never", ref, imagePullPolicy="Never")
    assert out.strip() == "Hello from wasmlet!"
    absent = f"{front.host}/img/never-pushed:v1"
    n0 = len(front.requests)
    create_pod(cluster, namespace, "neverabsent", node.node,
               [container("app", absent, imagePullPolicy="Never")])
    # The kubelet's own reason and words, and it stays so (no pull back-off).
    w = waiting_with(cluster, namespace, "neverabsent", "ErrImageNeverPull")
    assert w["message"] == f'Container image "{absent}" is not present with pull policy of Never', w
    time.sleep(2)
    w = waiting_with(cluster, namespace, "neverabsent", "ErrImageNeverPull", timeout=5)
    assert cluster.pod(namespace, "neverabsent")["status"]["phase"] == "Pending"
    assert not [r for r in front.requests[n0:] if "never-pushed" in r[1]]


def test_invalid_image_name(cluster, node, namespace):
    """A reference that does not parse is InvalidImageName (not a pull
    failure), with the kubelet's message; no registry is asked and the pod
    stays Pending."""
    bad = "127.0.0.1:5000/img/app:-v1"  # a tag cannot start with "-"
    create_pod(cluster, namespace, "badname", node.node, [container("app", bad)])
    w = waiting_with(cluster, namespace, "badname", "InvalidImageName")
    assert w["message"] == (f'Failed to apply default image tag "{bad}": couldn\'t parse image '
                            f'name "{bad}": invalid reference format'), w
    ev = wait_event(cluster, namespace, "badname", "Failed", re.escape(bad))
    assert "ErrImagePull" not in ev["message"], ev
    assert cluster.pod(namespace, "badname")["status"]["phase"] == "Pending"
    assert node.node.running()


# --- failures -------------------------------------------------------------------


def wait_pull_failure(cluster, node, ns, name, image, pattern):
    create_pod(cluster, ns, name, node.node, [container("app", image)])
    ev = wait_event(cluster, ns, name, "Failed", pattern)
    assert f'Failed to pull image "{image}"' in ev["message"], ev
    w = waiting_with(cluster, ns, name, "ImagePullBackOff")
    assert image in w["message"] or "back-off" in w["message"].lower(), w
    p = cluster.pod(ns, name)
    assert p["status"]["phase"] == "Pending"
    assert node.node.running()
    return ev


def test_registry_down(cluster, node, namespace):
    port = node_port_after(10390)
    ev = wait_pull_failure(cluster, node, namespace, "down", f"127.0.0.1:{port}/img/x:v1",
                           r"(?i)connect|refused")
    assert store_is_clean(node)


def test_tag_does_not_exist(cluster, node, namespace):
    push(cluster, "hello", "img/exists", "v1")
    ev = wait_pull_failure(cluster, node, namespace, "notag", f"{cluster.registry}/img/exists:v9",
                           r"(?i)manifest unknown|not found")
    assert store_is_clean(node)


def test_manifest_of_the_wrong_media_type(cluster, node, namespace):
    reg = cluster.registry_client()
    cfg = b'{"name": "chart", "version": "1.0.0"}'
    layer = gzip.compress(b"not a wasm module")
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.cncf.helm.config.v1+json",
                   "digest": reg.push_blob("img/chart", cfg), "size": len(cfg)},
        "layers": [{"mediaType": "application/vnd.cncf.helm.chart.content.v1.tar+gzip",
                    "digest": reg.push_blob("img/chart", layer), "size": len(layer)}],
    }
    reg.push_manifest("img/chart", "v1", manifest)
    ev = wait_pull_failure(cluster, node, namespace, "chart", f"{reg.host}/img/chart:v1",
                           r"not a wasm module")
    assert "application/vnd.cncf.helm.config.v1+json" in ev["message"]
    assert store_is_clean(node)


def test_blob_digest_mismatch_then_recovery(cluster, node, namespace, front, tmp_path):
    repo = "img/corrupt"
    # A module the node's store cannot already hold under its digest.
    push(cluster, unique_module("printenv", tmp_path), repo, "v1")
    st, _, body = cluster.registry_client().get_manifest(repo, "v1")
    layer = json.loads(body)["layers"][0]["digest"]
    front.corrupt.add(layer)
    image = f"{front.host}/{repo}:v1"
    ev = wait_pull_failure(cluster, node, namespace, "corrupt", image, r"digest mismatch")
    assert layer in ev["message"]
    assert store_is_clean(node)
    assert not (Path(node.data_dir) / "modules" / "blobs" / "sha256" / layer[7:]).exists() or \
        hashlib.sha256((Path(node.data_dir) / "modules" / "blobs" / "sha256" /
                        layer[7:]).read_bytes()).hexdigest() == layer[7:]

    # The registry serves the right bytes again: the next retry succeeds.
    front.corrupt.discard(layer)
    p = wait_done(cluster, namespace, "corrupt", timeout=90)
    assert p["status"]["phase"] == "Succeeded"
    assert printenv_args(logs(cluster, node.node, namespace, "corrupt", "app"))[0] == "corrupt"
    assert store_is_clean(node)
