#!/usr/bin/env python3
"""make_corpus.py: writes the seed corpora of tests/fuzz/corpus/<harness>/.

The seeds are committed; this script is how they were made, so they can be
made again or extended. Every seed is small (< 64 KiB) and real: the pod
manifests of examples/pods, manifests of the three wasm image formats,
tar and gzip layers built here, registry challenges, CRI log lines, and PEM
material made with openssl for these tests only (test-only keys: they sign
nothing anyone trusts).

Usage: tests/fuzz/make_corpus.py [--pem-dir DIR]   (DIR: key.pem, cert.pem,
csr.pem, far.pem, rsa.key from openssl; omitted: openssl is run here)
"""
import gzip
import io
import os
import subprocess
import sys
import tarfile
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CORPUS = os.path.join(HERE, "corpus")
HEX = "a" * 64
HEX2 = "b" * 64


def put(harness, name, data):
    if isinstance(data, str):
        data = data.encode()
    assert len(data) < 64 * 1024, (harness, name)
    d = os.path.join(CORPUS, harness)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def pod_manifests():
    pods = os.path.join(ROOT, "examples", "pods")
    for n in sorted(os.listdir(pods)):
        with open(os.path.join(pods, n), "rb") as f:
            put("pod_manifest", n, f.read())
    put("pod_manifest", "json.json",
        '{"apiVersion":"v1","kind":"Pod","metadata":{"name":"j","namespace":"ns"},'
        '"spec":{"restartPolicy":"OnFailure","containers":[{"name":"c","image":"reg/x:1",'
        '"args":["a","b"],"resources":{"limits":{"memory":"64Mi","cpu":"500m"},'
        '"requests":{"memory":"1e6","cpu":"0.1"}},'
        '"volumeMounts":[{"name":"v","mountPath":"/data","subPath":"s","readOnly":true}]}],'
        '"volumes":[{"name":"v","emptyDir":{"sizeLimit":"1Gi"}}]}}')
    put("pod_manifest", "multi.yaml", """\
apiVersion: v1
kind: Pod
metadata: {name: a}
spec:
  initContainers:
  - name: init
    image: ./init.wasm
  - name: side
    image: ./side.wasm
    restartPolicy: Always
  containers:
  - name: app
    image: ./app.wasm
    command: [/app.wasm]
    env:
    - {name: A, value: "1"}
    - name: B
      valueFrom: {fieldRef: {fieldPath: metadata.name}}
    envFrom:
    - configMapRef: {name: cm}
    livenessProbe: {exec: {command: [x]}}
    terminationMessagePolicy: FallbackToLogsOnError
  activeDeadlineSeconds: 30
  terminationGracePeriodSeconds: 5
---
# empty document
---
apiVersion: v1
kind: Pod
metadata:
  name: &n b
  labels: {x: *n}
spec:
  containers: [{name: c, image: "x.wasm"}]
  volumes:
  - name: h
    hostPath: {path: /tmp, type: Directory}
  - name: cm
    configMap: {name: cm, items: [{key: k, path: p}]}
""")


def quantities():
    for i, q in enumerate(["128Mi", "500m", "1.5G", "2e3", "1Ki", "0.1", "-1", "+3E",
                           "9223372036854775807", "1.23456789e-3", "100n", "7u", "12Pi",
                           "0", ".5", "5.", "1E+18", "8Ei"]):
        put("quantity", f"q{i:02d}", q)


KUBECONFIG = """\
apiVersion: v1
kind: Config
current-context: {ctx}
clusters:
- name: c1
  cluster:
    server: https://127.0.0.1:6443/
    {ca}
- name: c2
  cluster:
    server: "https://[::1]:6443"
    insecure-skip-tls-verify: true
users:
- name: u1
  user:
    {cred}
- name: u2
  user:
    token: abc.def
contexts:
- name: one
  context: {{cluster: c1, user: u1, namespace: kube-system}}
- name: two
  context: {{cluster: c2, user: u2}}
"""


def kubeconfigs(pem):
    import base64
    b64 = base64.b64encode(pem["cert.pem"]).decode()
    kb64 = base64.b64encode(pem["key.pem"]).decode()
    put("kubeconfig", "files", b"\0" + KUBECONFIG.format(
        ctx="one", ca="certificate-authority: ca.crt",
        cred="client-certificate: client.crt\n    client-key: client.key").encode())
    put("kubeconfig", "data", b"\0" + KUBECONFIG.format(
        ctx="one", ca=f"certificate-authority-data: {b64}",
        cred=f"client-certificate-data: {b64}\n    client-key-data: {kb64}").encode())
    put("kubeconfig", "tokenfile", b"\0" + KUBECONFIG.format(
        ctx="one", ca="certificate-authority: ./ca.crt", cred="tokenFile: token").encode())
    put("kubeconfig", "context", b"\1two\n" + KUBECONFIG.format(
        ctx="one", ca="", cred="exec: {command: aws}").encode())
    put("kubeconfig", "exec", b"\0" + KUBECONFIG.format(
        ctx="one", ca="", cred="exec: {command: aws}").encode())


def oci():
    def desc(mt, dg, size, platform=None):
        s = f'{{"mediaType":"{mt}","digest":"sha256:{dg}","size":{size}'
        if platform:
            s += f',"platform":{{"os":"{platform[0]}","architecture":"{platform[1]}"}}'
        return s + "}"
    # byte 0 picks the Content-Type (see fuzz_oci_manifest.c): 0 none, 2 json,
    # 5 OCI manifest, 6 OCI index, 7 Docker manifest, 8 Docker list
    wasm = ('{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",'
            '"config":' + desc("application/vnd.wasm.config.v0+json", HEX, 2) +
            ',"layers":[' + desc("application/wasm", HEX2, 1234) + "]}")
    put("oci_manifest", "wasm_oci", b"\5" + wasm.encode())
    w2o = ('{"schemaVersion":2,"config":' + desc("application/vnd.wasm.config.v1+json", HEX, 2) +
           ',"layers":[' + desc("application/vnd.wasm.content.layer.v1+wasm", HEX2, 99) + "]}")
    put("oci_manifest", "wasm_to_oci", b"\2" + w2o.encode())
    img = ('{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",'
           '"config":' + desc("application/vnd.docker.container.image.v1+json", HEX, 700) +
           ',"layers":[' + desc("application/vnd.docker.image.rootfs.diff.tar.gzip", HEX2, 10) +
           "," + desc("application/vnd.oci.image.layer.v1.tar", HEX, 20) + "]}")
    put("oci_manifest", "oci_image", b"\7" + img.encode())
    idx = ('{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[' +
           desc("application/vnd.oci.image.manifest.v1+json", HEX, 10, ("linux", "amd64")) + "," +
           desc("application/vnd.oci.image.manifest.v1+json", HEX2, 12, ("wasip1", "wasm")) + "," +
           desc("application/vnd.oci.image.manifest.v1+json", HEX2, 12, ("unknown", "unknown")) +
           "]}")
    put("oci_manifest", "index", b"\0" + idx.encode())
    lst = ('{"schemaVersion":2,"manifests":[' +
           desc("application/vnd.docker.distribution.manifest.v2+json", HEX, 10, ("wasi", "wasm32")) +
           "]}")
    put("oci_manifest", "docker_list", b"\x08" + lst.encode())
    put("oci_manifest", "v1", b"\x0b" + b'{"schemaVersion":1,"name":"x","fsLayers":[]}')


def tar_bytes(entries, fmt=tarfile.USTAR_FORMAT):
    bio = io.BytesIO()
    with tarfile.open(fileobj=bio, mode="w", format=fmt) as t:
        for e in entries:
            ti = tarfile.TarInfo(e[0])
            ti.mtime = 1700000000
            kind = e[1]
            if kind == "file":
                ti.size = len(e[2])
                t.addfile(ti, io.BytesIO(e[2]))
            elif kind == "dir":
                ti.type = tarfile.DIRTYPE
                t.addfile(ti)
            elif kind == "sym":
                ti.type = tarfile.SYMTYPE
                ti.linkname = e[2]
                t.addfile(ti)
            elif kind == "hard":
                ti.type = tarfile.LNKTYPE
                ti.linkname = e[2]
                t.addfile(ti)
    return bio.getvalue()


def gz(data):
    return gzip.compress(data, mtime=0)


def tars():
    wasm = b"\0asm\1\0\0\0"
    long = "d/" + "x" * 120 + "/app.wasm"
    simple = tar_bytes([("app", "dir"), ("app/app.wasm", "file", wasm)])
    gnu = tar_bytes([(long, "file", wasm), ("l" * 110, "sym", long)], tarfile.GNU_FORMAT)
    pax = tar_bytes([(long, "file", wasm), ("big", "file", b"z" * 600),
                     ("p/link", "sym", "../" + long)], tarfile.PAX_FORMAT)
    links = tar_bytes([("bin", "sym", "usr/bin"), ("usr/bin/app.wasm", "file", wasm),
                       ("hard.wasm", "hard", "usr/bin/app.wasm"), ("./a/./b//c", "file", b"c")])
    wh = tar_bytes([("usr/bin/.wh.old.wasm", "file", b""), ("etc/.wh..wh..opq", "file", b"")])
    # stream mode: byte 0 even, byte 1 the read chunk
    put("image_tar", "s_simple", b"\0\x05" + simple)
    put("image_tar", "s_gnu", b"\0\xff" + gnu)
    put("image_tar", "s_pax", b"\0\x01" + pax)
    put("image_tar", "s_links", b"\0\x40" + links)
    # extract mode: byte 0 odd, path '\n', layers split by "\n--layer--\n"
    sep = b"\n--layer--\n"
    put("image_tar", "x_simple", b"\1/app/app.wasm\n" + simple)
    put("image_tar", "x_gzip", b"\1app/app.wasm\n" + gz(simple))
    put("image_tar", "x_links", b"\1/bin/app.wasm\n" + gz(links) + sep + wh)
    put("image_tar", "x_hard", b"\1hard.wasm\n" + links)
    put("image_tar", "x_whiteout", b"\1usr/bin/old.wasm\n" +
        tar_bytes([("usr/bin/old.wasm", "file", wasm)]) + sep + wh)
    put("image_tar", "x_long", b"\1" + long.encode() + b"\n" + gnu + sep + gz(pax))


def challenges():
    for i, h in enumerate([
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/hello:pull"',
        'Basic realm="Registry Realm"',
        'Basic realm="x", Bearer realm="http://127.0.0.1:5000/token",service=reg',
        'bearer REALM=https://r/t , scope="a\\"b"',
        'Negotiate, NTLM',
        'Bearer service="no realm"',
        'Bearer realm="unterminated',
        '',
    ]):
        put("www_authenticate", f"c{i}", h)


def crilogs():
    sep = "\n--rotate--\n"
    t = "2026-11-26T14:21:1"
    base = (f"{t}1.123456789Z stdout F hello\n"
            f"{t}2.000000000Z stderr P par\n"
            f"{t}2.500000000Z stdout F mid\n"
            f"{t}3.000000000Z stderr F tial\n"
            f"{t}4.000000000Z stdout F last")
    put("crilog", "plain", b"\0" + base.encode())
    put("crilog", "tail_ts", b"\x09\x02" + base.encode())
    put("crilog", "limit_stdout", b"\x12\x00\x07" + base.encode())
    # since 2026-11-26T14:21:12Z = 1795616472
    put("crilog", "since_stderr", b"\x24" + (1795616472).to_bytes(4, "big") + base.encode())
    put("crilog", "rotated", b"\x0b\x03" + (f"{t}0.000000000Z stdout F one\n" + sep +
                                          f"{t}0.500000000Z stdout P a" + sep + base + "\n").encode())
    put("crilog", "malformed", b"\0" + (f"{t}1Z stdout F short time\n"
                                        f"{t}1.000000000Z stdin F bad stream\n"
                                        f"{t}1.000000000Z stdout FP bad tag\n"
                                        f"{t}1.000000000Z stdout F\n"
                                        "garbage\n\n").encode())


def pkis(pem):
    put("pki", "info_cert", b"\0" + pem["cert.pem"])
    put("pki", "select_chain", b"\1" + pem["cert.pem"] + pem["key.pem"] + pem["csr.pem"] +
        pem["cert.pem"])
    put("pki", "match", b"\2" + pem["cert.pem"] + b"\n--key--\n" + pem["key.pem"])
    put("pki", "key_ec", b"\3" + pem["key.pem"])
    put("pki", "key_rsa", b"\3" + pem["rsa.key"])
    put("pki", "names", b"\4cn=system:node:n1\no=system:nodes\ndns=n1\ndns=n1.local\n"
        b"ip=127.0.0.1\nip=::1\n")
    put("pki", "csr", b"\0" + pem["csr.pem"])


SPDY_WORDS = [
    "options", "head", "post", "put", "delete", "trace", "accept", "accept-charset",
    "accept-encoding", "accept-language", "accept-ranges", "age", "allow", "authorization",
    "cache-control", "connection", "content-base", "content-encoding", "content-language",
    "content-length", "content-location", "content-md5", "content-range", "content-type",
    "date", "etag", "expect", "expires", "from", "host", "if-match", "if-modified-since",
    "if-none-match", "if-range", "if-unmodified-since", "last-modified", "location",
    "max-forwards", "pragma", "proxy-authenticate", "proxy-authorization", "range", "referer",
    "retry-after", "server", "te", "trailer", "transfer-encoding", "upgrade", "user-agent",
    "vary", "via", "warning", "www-authenticate", "method", "get", "status", "200 OK",
    "version", "HTTP/1.1", "url", "public", "set-cookie", "keep-alive", "origin"]
SPDY_TAIL = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 "
    "Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 "
    "Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, "
    "Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,application/"
    "xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age=gzip,deflate,"
    "sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.")


def spdy():
    """Connections of SPDY/3 frames as kubectl port-forward sends them (a
    leading byte picks the read size in fuzz_spdy.c)."""
    import struct
    import zlib
    dictionary = b"".join(struct.pack(">I", len(w)) + w.encode() for w in SPDY_WORDS)
    dictionary += SPDY_TAIL.encode()
    assert len(dictionary) == 1423

    def conn():
        z = zlib.compressobj(9, zlib.DEFLATED, 15, 8, zlib.Z_DEFAULT_STRATEGY, dictionary)

        def block(headers):
            raw = struct.pack(">I", len(headers))
            for k, v in headers:
                raw += struct.pack(">I", len(k)) + k + struct.pack(">I", len(v)) + v
            return z.compress(raw) + z.flush(zlib.Z_SYNC_FLUSH)
        return block

    def control(kind, flags, body):
        return struct.pack(">HHI", 0x8003, kind, flags << 24 | len(body)) + body

    def syn(block, sid, headers, flags=0):
        return control(1, flags, struct.pack(">IIBB", sid, 0, 0, 0) + block(headers))

    def data(sid, payload, flags=0):
        return struct.pack(">II", sid, flags << 24 | len(payload)) + payload

    def pair(block, rid, sid, port=b"8080"):
        return (syn(block, sid, [(b"port", port), (b"requestid", rid), (b"streamtype", b"error")])
                + data(sid, b"", 1)
                + syn(block, sid + 2, [(b"port", port), (b"requestid", rid),
                                       (b"streamtype", b"data")]))

    b = conn()
    put("spdy", "pair", b"\x00" + pair(b, b"0", 1))
    b = conn()
    put("spdy", "request", b"\x10" + pair(b, b"0", 1)
        + data(3, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n") + data(3, b"", 1))
    b = conn()
    put("spdy", "two_pairs", b"\x03" + pair(b, b"0", 1) + pair(b, b"1", 5, b"9")
        + control(3, 0, struct.pack(">II", 5, 5)))
    b = conn()
    put("spdy", "legacy", b"\x01" + syn(b, 1, [(b"port", b"80"), (b"streamtype", b"error")])
        + syn(b, 3, [(b"port", b"80"), (b"streamtype", b"data")]))
    put("spdy", "control", b"\x02" + control(6, 0, struct.pack(">I", 1))
        + control(4, 0, struct.pack(">IBBHI", 1, 1, 0, 7, 65536))
        + control(9, 0, struct.pack(">II", 0, 65536))
        + control(7, 0, struct.pack(">II", 3, 0)))
    b = conn()
    put("spdy", "headers", b"\x05" + syn(b, 1, [(b"port", b"1"), (b"streamtype", b"data"),
                                                 (b"x", b"a\x00b")])
        + control(8, 1, struct.pack(">I", 1) + b([(b"trailer", b"")]))
        + control(2, 0, struct.pack(">I", 1) + b([])))


def kubelet_paths():
    # first byte: the method (0 GET, 2 POST, 5 DELETE); then the target
    for name, m, t in [
        ("logs", 0, "/containerLogs/default/web/app"),
        ("logs_follow", 0, "/containerLogs/ns/p/c?follow=true&timestamps=1&tailLines=10"),
        ("logs_since", 0, "/containerLogs/ns/p/c?sinceSeconds=30&limitBytes=4096&stream=Stderr"),
        ("logs_since_time", 0, "/containerLogs/ns/p/c?sinceTime=2026-12-06T10%3A00%3A00Z&previous=true"),
        ("logs_escaped", 0, "/containerLogs/ns%2Fx/p%20q/c?stream=All&follow=false"),
        ("logs_bad", 0, "/containerLogs//p/c?tailLines=-1&sinceSeconds=1&sinceTime=x"),
        ("pods", 0, "/pods/"),
        ("stats", 0, "/stats/summary?only_cpu_and_memory=true"),
        ("metrics", 0, "/metrics/resource"),
        ("exec", 2, "/exec/ns/p/c?command=sh&stdin=1&stdout=1&tty=1"),
        ("portforward", 2, "/portForward/ns/p?port=8080"),
        ("healthz", 5, "/healthz"),
        ("abs", 0, "http://node:10250/containerLogs/a/b/c?x=%zz&&=&follow"),
    ]:
        put("kubelet_path", name, bytes([m]) + t.encode())



def wasm_infos():
    """Components and modules for the reader of `wasmlet push`: a small
    component with every import and export form, a core module header, and
    the built component twin of hello.c when it is there."""
    def sec(i, body):
        return bytes([i, len(body)]) + body

    def name(n, kind=0, version=b""):
        out = bytes([kind, len(n)]) + n
        return out + (bytes([len(version)]) + version if kind == 1 else b"")

    pre = b"\0asm\x0d\x00\x01\x00"
    imports = (b"\x03" + name(b"a:b/c@1.0.0") + b"\x05\x00" + name(b"f", 1, b"@1") +
               b"\x01\x01" + name(b"v") + b"\x02\x01\x7f")
    exports = (b"\x02" + name(b"x:y/run@0.2.0") + b"\x05\x00\x00" + name(b"g") +
               b"\x00\x11\x02\x01\x00\x11\x00")
    put("wasm_info", "component", pre + sec(1, b"\0asm\x01\0\0\0") + sec(10, imports) +
        sec(11, exports) + sec(0, b"\x04name"))
    put("wasm_info", "module", b"\0asm\x01\0\0\0")
    built = os.path.join(ROOT, "build", "examples", "hello.component.wasm")
    if os.path.exists(built) and os.path.getsize(built) < 64 * 1024:
        with open(built, "rb") as f:
            put("wasm_info", "hello_component", f.read())

def registry_tokens():
    put("registry_token", "token", '{"token":"abc.def.ghi","expires_in":300,"issued_at":"2026-12-06T10:00:00Z"}')
    put("registry_token", "access_token", '{"access_token":"eyJhbGciOi","token_type":"Bearer","expires_in":60,"refresh_token":"r"}')
    put("registry_token", "both", '{"token":"","access_token":"x"}')
    put("registry_token", "crlf", '{"token":"a\\r\\nX-Injected: 1"}')
    put("registry_token", "nul", '{"token":"a\\u0000b"}')
    put("registry_token", "array", '[{"token":"t"}]')
    put("registry_token", "number", '{"token":5}')


def image_configs():
    cfg = ('{"architecture":"wasm","os":"wasip1","config":{"Entrypoint":["/app.wasm"],'
           '"Env":["PATH=/"],"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' % HEX)
    put("image_config", "oci_entrypoint", b"\0" + cfg.encode())
    put("image_config", "docker_cmd", b"\1" + b'{"architecture":"amd64","os":"linux","config":{"Cmd":["bin/hello.wasm","x"],"WorkingDir":"/srv"}}')
    put("image_config", "no_entry", b"\0" + b'{"os":"linux","config":{}}')
    put("image_config", "not_wasm", b"\0" + b'{"config":{"Entrypoint":["/bin/sh"],"Cmd":["a.wasm"]}}')
    put("image_config", "wasm_config", b"\2" + b'{"created":"2026-01-01T00:00:00Z","author":"x","architecture":"wasm","os":"wasip1","layerDigests":["sha256:%s"],"component":{"exports":[],"imports":[],"target":null}}' % HEX.encode())
    put("image_config", "short", b"\3" + b'{"config":{"Entrypoint":[".wasm"]}}')


def pod_specs():
    # JSON Pods as the API server sends them (the watch's objects)
    pod = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "default", "uid": "1234-5678",
                     "labels": {"app": "web"}, "annotations": {"a": "b"}},
        "spec": {
            "nodeName": "wasm-1", "priority": 1000, "priorityClassName": "high",
            "restartPolicy": "Always", "activeDeadlineSeconds": 60,
            "containers": [{
                "name": "app", "image": "127.0.0.1:5000/hello:1",
                "args": ["a", "b"], "env": [{"name": "X", "value": "1"}],
                "resources": {"requests": {"cpu": "100m", "memory": "64Mi", "ephemeral-storage": "1Mi"},
                              "limits": {"cpu": "1", "memory": "128Mi", "ephemeral-storage": "10Mi"}},
                "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}]}],
            "initContainers": [{"name": "init", "image": "i", "resources": {"requests": {"memory": "1Gi"}}}],
            "volumes": [{"name": "scratch", "emptyDir": {"sizeLimit": "5Mi"}}],
        },
        "status": {"phase": "Pending", "qosClass": "Burstable"},
    }
    import json
    put("pod_spec", "burstable", json.dumps(pod))
    pod["spec"]["containers"][0]["resources"] = {}
    del pod["spec"]["priority"]
    put("pod_spec", "besteffort", json.dumps(pod))
    pod["spec"]["containers"].append({"name": "side", "image": "s", "resources": {"limits": {"ephemeral-storage": "1e3", "memory": "1.5Gi"}}})
    pod["spec"]["volumes"] = [{"name": "scratch", "emptyDir": {}}, {"name": "h", "hostPath": {"path": "/tmp"}}]
    put("pod_spec", "two", json.dumps(pod))
    put("pod_spec", "minimal", '{"metadata":{"name":"m","namespace":"n","uid":"u"},"spec":{"containers":[{"name":"c","image":"i"}]}}')


def main():
    pem_dir = None
    if len(sys.argv) == 3 and sys.argv[1] == "--pem-dir":
        pem_dir = sys.argv[2]
    tmp = None
    if not pem_dir:
        tmp = tempfile.TemporaryDirectory()
        pem_dir = tmp.name
        def ossl(*a):
            subprocess.run(["openssl", *a], cwd=pem_dir, check=True, capture_output=True)
        ossl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "key.pem")
        ossl("req", "-new", "-key", "key.pem", "-subj", "/O=system:nodes/CN=system:node:fuzz",
             "-out", "csr.pem")
        ossl("req", "-x509", "-key", "key.pem", "-subj", "/CN=fuzz-ca", "-days", "30",
             "-out", "cert.pem")
        ossl("genrsa", "-out", "rsa.key", "1024")
    pem = {n: open(os.path.join(pem_dir, n), "rb").read()
           for n in ("key.pem", "cert.pem", "csr.pem", "rsa.key")}
    pod_manifests()
    quantities()
    kubeconfigs(pem)
    oci()
    tars()
    challenges()
    crilogs()
    pkis(pem)
    spdy()
    kubelet_paths()
    registry_tokens()
    wasm_infos()
    image_configs()
    pod_specs()


if __name__ == "__main__":
    main()
