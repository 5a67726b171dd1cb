"""A wasmlet node's identity against the real control plane: TLS bootstrap
from a bootstrap token alone, reuse of what it got after a restart, the
serving certificate (self-signed until an operator approves its CSR),
certificate rotation while a pod runs, losing nothing, and the files and
client CA an operator may give instead.

Rotation is made fast for the test with WASMLET_CERT_ROTATE_AFTER_SECONDS
(each certificate is renewed that many seconds after it was obtained); the
control plane approves client renewals by itself (selfnodeclient) and the
test approves serving ones, as an operator or an approver controller would.
"""

import base64
import http.client
import re
import socket
import ssl
import subprocess
import time

import pytest

from container_kit import container, create_pod, cstatus, port_free, push, wasmlet_bin
from kubetest import NodeFactory, condition, serving_cert_verifies, unique_name, wait_for

CLIENT_SIGNER = "kubernetes.io/kube-apiserver-client-kubelet"
SERVING_SIGNER = "kubernetes.io/kubelet-serving"


def boot_port():
    """A free port in 10280-10319 (this module's range)."""
    for port in range(10280, 10320):
        if port_free(port):
            return port
    raise RuntimeError("no free port in 10280-10319")


def csr_subject(csr):
    pem = base64.b64decode(csr["spec"]["request"])
    return subprocess.run(["openssl", "req", "-noout", "-subject", "-nameopt", "RFC2253"],
                          input=pem, capture_output=True, check=True).stdout.decode()


def node_csrs(cluster, node_name, signer):
    return [c for c in cluster.list("csr")
            if c["spec"]["signerName"] == signer and
            f"CN=system:node:{node_name}" in csr_subject(c)]


def cert_info(pem_bytes):
    p = subprocess.run(["openssl", "x509", "-noout", "-subject", "-issuer", "-serial",
                        "-nameopt", "RFC2253"], input=pem_bytes, capture_output=True, check=True)
    return p.stdout.decode()


def served_cert(port):
    """The DER certificate the node presents, unverified."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        with ctx.wrap_socket(s) as t:
            return t.getpeercert(binary_form=True)


def verifies(cluster, port):
    return serving_cert_verifies(cluster.ca, port)


@pytest.fixture
def factory(cluster, tmp_path, request):
    f = NodeFactory(cluster, tmp_path, wasmlet_bin())
    request.node.wasmlet_node_factory = f
    try:
        yield f
    finally:
        f.teardown()


def test_bootstrap_token_alone_makes_a_ready_node(cluster, factory):
    name = unique_name("h6-boot")
    node = factory.start(name=name, auth="bootstrap", port=boot_port(), approve_serving=False)
    assert cluster.node_ready(name)
    # One client CSR, filed with the token, approved, signed.
    token_id = cluster.env["WASMLET_BOOTSTRAP_TOKEN"].split(".")[0]
    mine = node_csrs(cluster, name, CLIENT_SIGNER)
    assert len(mine) == 1, mine
    assert mine[0]["spec"]["username"] == f"system:bootstrap:{token_id}"
    assert condition(mine[0], "Approved") and mine[0]["status"]["certificate"]
    assert set(mine[0]["spec"]["usages"]) == {"digital signature", "client auth"}
    assert "O=system:nodes" in csr_subject(mine[0])
    # The node acts as itself from then on.
    data = node.data_dir
    current = data / "pki" / "kubelet-client-current.pem"
    assert current.is_symlink() and (current.stat().st_mode & 0o777) == 0o600
    info = cert_info(current.read_bytes())
    assert f"subject=CN=system:node:{name},O=system:nodes" in info
    assert "issuer=CN=wasmlet-cluster-ca" in info
    kubeconfig = data / "kubeconfig"
    assert kubeconfig.exists()
    assert cluster.whoami(kubeconfig=kubeconfig)["username"] == f"system:node:{name}"
    lease = cluster.get("lease", name, "kube-node-lease")
    assert lease and lease["spec"]["holderIdentity"] == name

    # A restart reuses the certificate: no new client CSR, Ready again.
    node.stop()
    again = factory.start(name=name, auth="bootstrap", port=node.port, approve_serving=False)
    assert cluster.node_ready(name)
    assert len(node_csrs(cluster, name, CLIENT_SIGNER)) == 1
    assert "client certificate from" in again.log_text()


def test_serving_certificate_self_signed_until_approved(cluster, factory, namespace):
    name = unique_name("h6-serve")
    node = factory.start(name=name, port=boot_port(), approve_serving=False)
    # Serving before approval, with a self-signed certificate, and saying so.
    der = served_cert(node.port)
    pem = ssl.DER_cert_to_PEM_cert(der).encode()
    info = cert_info(pem)
    subject = [x for x in info.splitlines() if x.startswith("subject=")][0][8:]
    issuer = [x for x in info.splitlines() if x.startswith("issuer=")][0][7:]
    assert subject == issuer
    assert not verifies(cluster, node.port)
    pending = wait_for(lambda: node_csrs(cluster, name, SERVING_SIGNER), 30,
                       desc="a kubelet-serving CSR")
    csr = pending[0]
    assert csr["spec"]["username"] == f"system:node:{name}"
    assert set(csr["spec"]["usages"]) == {"digital signature", "server auth"}
    text = subprocess.run(["openssl", "req", "-noout", "-text"],
                          input=base64.b64decode(csr["spec"]["request"]),
                          capture_output=True, check=True).stdout.decode()
    assert "IP Address:127.0.0.1" in text and "DNS:" in text
    assert "self-signed" in node.log_text()
    # Approved: the signed certificate replaces it within seconds.
    cluster.approve_serving(name)
    wait_for(lambda: verifies(cluster, node.port), 20, desc="a CA-signed serving certificate")
    info = cert_info(ssl.DER_cert_to_PEM_cert(served_cert(node.port)).encode())
    assert f"subject=CN=system:node:{name},O=system:nodes" in info
    # ... so the API server now reaches it for logs.
    img = push(cluster, "hello", "h6-boot/hello")
    create_pod(cluster, namespace, "hi", node, [container("app", img)])
    cluster.wait_pod_phase(namespace, "hi", "Succeeded", 60)
    assert cluster.logs(namespace, "hi") == "Hello from wasmlet!\n"


def test_rotation_during_a_running_pod_loses_nothing(cluster, factory, namespace):
    name = unique_name("h6-rot")
    node = factory.start(name=name, auth="bootstrap", port=boot_port(),
                         env={"WASMLET_CERT_ROTATE_AFTER_SECONDS": "6"})
    img = push(cluster, "ticker", "h6-boot/ticker")
    create_pod(cluster, namespace, "steady", node, [container("app", img, args=["300", "0"])])
    cluster.wait_pod_phase(namespace, "steady", "Running", 60)
    # A follow started before any rotation keeps streaming through them.
    cmd = [cluster.kubectl_bin, "--kubeconfig", cluster.kubeconfig, "logs", "-f", "-n",
           namespace, "steady"]
    follow = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # Two client renewals (auto-approved) and a serving renewal the test
        # approves, while the pod ticks.
        def rotations():
            cluster.approve_serving(name)
            text = node.log_text()
            # "... certificate from CSR <name> in use": a renewal (the
            # first serving one replaces the self-signed certificate).
            return (len(re.findall(r"client certificate from CSR \S+ in use", text)) >= 2 and
                    len(re.findall(r"serving certificate from CSR \S+ in use", text)) >= 2)

        wait_for(rotations, 90, interval=1, desc="two client and two serving rotations")
        assert len(node_csrs(cluster, name, CLIENT_SIGNER)) >= 3
        pem = (node.data_dir / "pki" / "kubelet-client-current.pem").read_bytes()
        first = node_csrs(cluster, name, CLIENT_SIGNER)
        assert any(base64.b64decode(c["status"].get("certificate", "")).strip() in pem
                   for c in first if c["status"].get("certificate"))
        # Nothing was lost: the pod never restarted, the node stayed Ready,
        # its Lease and the pod's status keep being written, and a new pod
        # (a watch event, a status write, a log read) works.
        s = cstatus(cluster.pod(namespace, "steady"), "app")
        assert s["restartCount"] == 0 and "running" in s["state"]
        assert cluster.node_ready(name)
        renew = cluster.get("lease", name, "kube-node-lease")["spec"]["renewTime"]
        wait_for(lambda: cluster.get("lease", name, "kube-node-lease")["spec"]["renewTime"]
                 != renew, 30, desc="a Lease renewal after the rotations")
        create_pod(cluster, namespace, "after", node, [container("app", img, args=["10", "3"])])
        cluster.wait_pod_phase(namespace, "after", "Succeeded", 60)
        assert cluster.logs(namespace, "after").splitlines() == [
            "ticker started", "tick 1 alive", "tick 2 alive", "tick 3 alive"]
    finally:
        cluster.delete("pod", "steady", namespace)
        try:
            out, err = follow.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            follow.kill()
            out, err = follow.communicate()
    ticks = [int(line.split()[1]) for line in out.splitlines() if line.startswith("tick ")]
    assert len(ticks) > 30, (out[-500:], err)
    assert ticks == list(range(1, len(ticks) + 1)), "the follow lost or repeated lines"
    assert "client certificate: renewing" in node.log_text()


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(cluster, d):
    """In d: a serving pair for 127.0.0.1 signed by the cluster CA, a CA of
    our own, and a client pair that CA issued (CN h6-admin, O system:masters)."""
    ext = d / "ext.cnf"
    ext.write_text("[s]\nsubjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"
                   "[c]\nextendedKeyUsage=clientAuth\n")
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "serve.key", "-subj", "/CN=h6-files", "-out", "serve.csr", cwd=d)
    openssl("x509", "-req", "-in", "serve.csr", "-CA", cluster.ca,
            "-CAkey", cluster.env["WASMLET_CLUSTER_CA_KEY"], "-CAcreateserial",
            "-CAserial", str(d / "ca.srl"), "-days", "1", "-extfile", str(ext),
            "-extensions", "s", "-out", "serve.crt", cwd=d)
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "own-ca.key", "-subj", "/CN=h6-own-ca", "-days", "1",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign", "-out", "own-ca.crt", cwd=d)
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "client.key", "-subj", "/O=system:masters/CN=h6-admin",
            "-out", "client.csr", cwd=d)
    openssl("x509", "-req", "-in", "client.csr", "-CA", "own-ca.crt", "-CAkey", "own-ca.key",
            "-CAcreateserial", "-days", "1", "-extfile", str(ext), "-extensions", "c",
            "-out", "client.crt", cwd=d)


def status_of(cluster, port, path, cert=None, key=None):
    ctx = ssl.create_default_context(cafile=cluster.ca)
    if cert:
        ctx.load_cert_chain(cert, key)
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=20, context=ctx)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    finally:
        conn.close()


def test_tls_files_and_client_ca_override(cluster, factory, tmp_path):
    """--tls-cert-file/--tls-private-key-file replace both the self-signed
    and the CSR-signed certificate; --client-ca-file decides which client
    certificates count."""
    d = tmp_path / "pki"
    d.mkdir()
    make_pki(cluster, d)
    name = unique_name("h6-files")
    node = factory.start(name=name, port=boot_port(), approve_serving=False,
                         args=["--tls-cert-file", d / "serve.crt",
                               "--tls-private-key-file", d / "serve.key",
                               "--client-ca-file", d / "own-ca.crt"])
    # Our certificate, from the first connection on, and no serving CSR.
    assert verifies(cluster, node.port)
    served = ssl.DER_cert_to_PEM_cert(served_cert(node.port)).strip()
    assert served == (d / "serve.crt").read_text().strip()
    time.sleep(2)
    assert node_csrs(cluster, name, SERVING_SIGNER) == []
    assert "self-signed" not in node.log_text()
    # A certificate of our CA authenticates (and system:masters may);
    # the API server's, from the cluster CA, no longer does.
    assert status_of(cluster, node.port, "/pods", d / "client.crt", d / "client.key") == 200
    api_cert = cluster.env["WASMLET_APISERVER_KUBELET_CLIENT_CERT"]
    api_key = cluster.env["WASMLET_APISERVER_KUBELET_CLIENT_KEY"]
    assert status_of(cluster, node.port, "/pods", api_cert, api_key) == 401
