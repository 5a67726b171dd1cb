"""Smoke test of cluster/cluster.sh: bring a cluster up from nothing in a temp
data dir on non-default (free) ports, check what a kubelet relies on against
the real API, then bring it down and check no process is left behind.

The tests in this module run in file order and share one cluster; the last
ones stop and restart it.
"""

import base64
import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from kubetest import (PORT_VARS, Cluster, KubectlError, Registry, condition, free_ports,
                      port_open, unique_name, wait_for)

COMPONENTS = ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler",
              "registry", "registry-auth"]


def expected_components(c):
    """COMPONENTS, and kube-proxy unless another cluster's serves the machine."""
    skipped = (c.data_dir / "run" / "kube-proxy.skipped").exists()
    return COMPONENTS + ([] if skipped else ["kube-proxy"])


def process_running(pid):
    """True while pid is a live (non-zombie) process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def openssl(*args, input=None):
    return subprocess.run(["openssl", *args], input=input, capture_output=True,
                          check=True).stdout


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    data = tmp_path_factory.mktemp("smoke") / "cluster"   # does not exist yet
    ports = dict(zip(PORT_VARS, free_ports(len(PORT_VARS))))
    c = Cluster(data, ports=ports)
    c.smoke = {"ports": ports}
    try:
        yield c
    finally:
        c.down()


def test_up_from_nothing(fresh):
    assert not fresh.data_dir.exists()
    t = time.monotonic()
    p = fresh.up()
    fresh.smoke["up_seconds"] = time.monotonic() - t
    print(p.stdout)
    assert "cluster up in" in p.stdout
    # Really on the ports asked for, not the defaults.
    ports = fresh.smoke["ports"]
    assert fresh.server == f"https://127.0.0.1:{ports['WASMLET_APISERVER_PORT']}"
    assert fresh.registry == f"127.0.0.1:{ports['WASMLET_REGISTRY_PORT']}"
    for var, port in ports.items():
        # kube-proxy listens once it gave up finding a Node of its name (30 s).
        if "KUBE_PROXY" not in var:
            assert port_open(port), f"{var}={port} is not listening"
    st = fresh.status()
    assert st.returncode == 0, st.stdout + st.stderr
    for comp in COMPONENTS:
        line = next(ln for ln in st.stdout.splitlines() if ln.startswith(comp + " "))
        assert "running" in line and "healthy" in line and "unhealthy" not in line, line
    line = next(ln for ln in st.stdout.splitlines() if ln.startswith("kube-proxy "))
    assert "running" in line or "skipped" in line, line
    pids = fresh.pids()
    assert sorted(pids) == sorted(expected_components(fresh))
    assert all(process_running(pid) for pid in pids.values())
    fresh.smoke["pids"] = pids
    for comp in COMPONENTS:
        assert (fresh.data_dir / "logs" / f"{comp}.log").stat().st_size > 0


def test_second_up_is_a_no_op(fresh):
    p = fresh.script("up")
    assert p.returncode == 0
    assert "already running" in p.stdout
    assert fresh.pids() == fresh.smoke["pids"]


def test_env_exports(fresh):
    env = fresh.env
    assert env["KUBECONFIG"] == str(fresh.data_dir / "admin.kubeconfig")
    assert env["WASMLET_K8S_BIN"] in env["PATH"].split(":")[0]
    assert Path(env["WASMLET_BOOTSTRAP_KUBECONFIG"]).is_file()
    assert Path(env["WASMLET_CLUSTER_CA"]).is_file()
    token_id, secret = env["WASMLET_BOOTSTRAP_TOKEN"].split(".")
    assert len(token_id) == 6 and len(secret) == 16
    assert env["WASMLET_AUTH_REGISTRY_USER"] and env["WASMLET_AUTH_REGISTRY_PASSWORD"]
    # The exports are valid shell that a user can eval.
    out = subprocess.run(["bash", "-c", f'eval "$1"; kubectl version -o json',
                          "_", fresh.script("env").stdout],
                         capture_output=True, text=True, check=True).stdout
    assert json.loads(out)["serverVersion"]["gitVersion"].startswith("v1.")


def test_namespace_configmap_and_root_ca(fresh):
    ns = unique_name("smoke")
    fresh.kubectl(["create", "namespace", ns])
    fresh.kubectl(["create", "configmap", "cfg", "-n", ns, "--from-literal=key=value"])
    assert fresh.get("configmap", "cfg", ns)["data"] == {"key": "value"}
    root = wait_for(lambda: fresh.get("configmap", "kube-root-ca.crt", ns), 30,
                    desc="kube-root-ca.crt in the new namespace")
    assert root["data"]["ca.crt"].strip() == Path(fresh.ca).read_text().strip()
    fresh.smoke["namespace"] = ns


def test_token_request(fresh):
    ns = fresh.smoke["namespace"]
    wait_for(lambda: fresh.get("serviceaccount", "default", ns), 30, desc="default SA")
    token = fresh.kubectl(["create", "token", "default", "-n", ns], json=False).strip()
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert claims["iss"] == "https://kubernetes.default.svc.cluster.local"
    user = fresh.whoami(token=token)
    assert user["username"] == f"system:serviceaccount:{ns}:default"
    with pytest.raises(KubectlError, match="(?i)unauthorized"):
        fresh.whoami(token=token[:-4] + "AAAA")  # a forged signature is rejected


def make_csr(tmp_path, name, subject, sans=None):
    key = tmp_path / f"{name}.key"
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-out", str(key))
    cnf = tmp_path / f"{name}.cnf"
    cnf.write_text("[req]\ndistinguished_name = dn\n[dn]\n")
    args = ["req", "-new", "-config", str(cnf), "-key", str(key), "-subj", subject]
    if sans:
        args += ["-addext", f"subjectAltName = {sans}"]
    return key, openssl(*args)


def csr_object(name, pem, signer, usages):
    return {
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"name": name},
        "spec": {"request": base64.b64encode(pem).decode(), "signerName": signer,
                 "usages": usages},
    }


def issued(fresh, name):
    csr = fresh.get("csr", name)
    return csr if csr and csr.get("status", {}).get("certificate") else None


def write_cert_kubeconfig(fresh, path, user, crt, key):
    def b64(p):
        return base64.b64encode(Path(p).read_bytes()).decode()
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": fresh.server,
                                                "certificate-authority-data": b64(fresh.ca)}}],
        "users": [{"name": user, "user": {"client-certificate-data": b64(crt),
                                           "client-key-data": b64(key)}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": user}}],
        "current-context": "c",
    }))
    return path


def test_bootstrap_token_identity(fresh):
    user = fresh.whoami(kubeconfig=fresh.bootstrap_kubeconfig)
    token_id = fresh.env["WASMLET_BOOTSTRAP_TOKEN"].split(".")[0]
    assert user["username"] == f"system:bootstrap:{token_id}"
    assert {"system:bootstrappers", "system:bootstrappers:wasmlet"} <= set(user["groups"])
    # A bootstrap identity can create CSRs and nothing much else.
    assert fresh.can_i("create", "certificatesigningrequests",
                       kubeconfig=fresh.bootstrap_kubeconfig)
    assert not fresh.can_i("list", "pods", kubeconfig=fresh.bootstrap_kubeconfig)
    assert not fresh.can_i("get", "secrets", namespace="kube-system",
                           kubeconfig=fresh.bootstrap_kubeconfig)


def test_bootstrap_csr_is_auto_approved_and_signed(fresh, tmp_path):
    key, pem = make_csr(tmp_path, "node", "/O=system:nodes/CN=system:node:test-node")
    name = unique_name("node-csr")
    fresh.create(csr_object(name, pem, "kubernetes.io/kube-apiserver-client-kubelet",
                            ["digital signature", "client auth"]),
                 kubeconfig=fresh.bootstrap_kubeconfig)
    csr = wait_for(lambda: issued(fresh, name), 60, desc=f"CSR {name} signed")
    approved = condition(csr, "Approved")
    assert approved and approved["status"] == "True"
    assert approved["reason"] == "AutoApproved"
    assert csr["spec"]["username"].startswith("system:bootstrap:")

    crt = tmp_path / "node.crt"
    crt.write_bytes(base64.b64decode(csr["status"]["certificate"]))
    openssl("verify", "-CAfile", fresh.ca, str(crt))
    subject = openssl("x509", "-in", str(crt), "-noout", "-subject", "-nameopt",
                      "RFC2253").decode()
    assert "CN=system:node:test-node" in subject and "O=system:nodes" in subject

    # The signed certificate is a working node identity, subject to the Node
    # authorizer and NodeRestriction: it may create its own Node, not others.
    kc = write_cert_kubeconfig(fresh, tmp_path / "node.kubeconfig", "system:node:test-node",
                               crt, key)
    user = fresh.whoami(kubeconfig=kc)
    assert user["username"] == "system:node:test-node"
    assert "system:nodes" in user["groups"]
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "test-node"}}
    try:
        fresh.create(node, kubeconfig=kc)
        assert fresh.get("node", "test-node")["metadata"]["name"] == "test-node"
        other = dict(node, metadata={"name": "other-node"})
        with pytest.raises(KubectlError, match="(?i)forbidden"):
            fresh.create(other, kubeconfig=kc)
        assert fresh.get("node", "other-node") is None
        # Renewal: as a node, a new client CSR for itself is auto-approved too.
        _, pem2 = make_csr(tmp_path, "renew", "/O=system:nodes/CN=system:node:test-node")
        name2 = unique_name("node-renew")
        fresh.create(csr_object(name2, pem2, "kubernetes.io/kube-apiserver-client-kubelet",
                                ["digital signature", "client auth"]), kubeconfig=kc)
        assert condition(wait_for(lambda: issued(fresh, name2), 60, desc="renewal signed"),
                         "Approved")["status"] == "True"
    finally:
        fresh.delete("node", "test-node")
    fresh.smoke["node_kubeconfig"] = kc


def test_approve_serving(fresh, tmp_path):
    kc = fresh.smoke["node_kubeconfig"]
    _, pem = make_csr(tmp_path, "serving", "/O=system:nodes/CN=system:node:test-node",
                      "DNS:test-node, IP:127.0.0.1")
    mine = unique_name("serving")
    fresh.create(csr_object(mine, pem, "kubernetes.io/kubelet-serving",
                            ["digital signature", "server auth"]), kubeconfig=kc)
    # Same request from a non-node identity (admin): must be left alone.
    theirs = unique_name("serving-admin")
    fresh.create(csr_object(theirs, pem, "kubernetes.io/kubelet-serving",
                            ["digital signature", "server auth"]))
    time.sleep(2)
    assert condition(fresh.get("csr", mine), "Approved") is None  # never auto-approved

    out = fresh.approve_serving()
    assert f"approved {mine} (system:node:test-node)" in out
    assert theirs not in out
    csr = wait_for(lambda: issued(fresh, mine), 60, desc="serving CSR signed")
    crt = tmp_path / "serving.crt"
    crt.write_bytes(base64.b64decode(csr["status"]["certificate"]))
    openssl("verify", "-CAfile", fresh.ca, "-purpose", "sslserver", str(crt))
    text = openssl("x509", "-in", str(crt), "-noout", "-ext", "subjectAltName").decode()
    assert "IP Address:127.0.0.1" in text and "DNS:test-node" in text
    assert condition(fresh.get("csr", theirs), "Approved") is None
    assert "approved 0" in fresh.approve_serving()


def test_bootstrap_signer_signs_cluster_info(fresh):
    token_id = fresh.env["WASMLET_BOOTSTRAP_TOKEN"].split(".")[0]
    cm = wait_for(
        lambda: (fresh.get("configmap", "cluster-info", "kube-public") or {})
        .get("data", {}).get(f"jws-kubeconfig-{token_id}"),
        60, desc="bootstrapsigner signature on cluster-info")
    assert cm.count(".") == 2  # detached JWS: header..signature


def test_apiserver_kubelet_client_identity(fresh):
    crt = fresh.env["WASMLET_APISERVER_KUBELET_CLIENT_CERT"]
    subject = openssl("x509", "-in", crt, "-noout", "-subject", "-nameopt", "RFC2253").decode()
    assert "CN=kube-apiserver-kubelet-client" in subject
    assert "system:masters" not in subject
    user = "kube-apiserver-kubelet-client"
    assert fresh.can_i("get", "nodes/proxy", as_user=user)
    assert fresh.can_i("get", "nodes/log", as_user=user)
    assert not fresh.can_i("get", "secrets", as_user=user, namespace="kube-system")
    # The API server verifies kubelet serving certificates with the cluster CA.
    cmdline = Path(f"/proc/{fresh.pids()['kube-apiserver']}/cmdline").read_bytes().split(b"\0")
    assert f"--kubelet-certificate-authority={fresh.ca}".encode() in cmdline


def test_pki_and_component_identities(fresh):
    apiserver = fresh.data_dir / "pki" / "apiserver.crt"
    sans = openssl("x509", "-in", str(apiserver), "-noout", "-ext", "subjectAltName").decode()
    for name in ["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
                 "kubernetes.default.svc.cluster.local"]:
        assert f"DNS:{name}," in sans + ",", name
    assert "IP Address:127.0.0.1" in sans and "IP Address:198.18.0.1" in sans
    openssl("verify", "-CAfile", fresh.ca, "-purpose", "sslserver", str(apiserver))
    for kc, user, group in [
        ("admin.kubeconfig", "kubernetes-admin", "system:masters"),
        ("controller-manager.kubeconfig", "system:kube-controller-manager", None),
        ("scheduler.kubeconfig", "system:kube-scheduler", None),
        ("kube-proxy.kubeconfig", "system:kube-proxy", None),
    ]:
        info = fresh.whoami(kubeconfig=fresh.data_dir / kc)
        assert info["username"] == user
        assert (group in info.get("groups", [])) if group else \
            "system:masters" not in info.get("groups", [])
    # The controller manager uses per-controller service accounts.
    assert fresh.get("serviceaccount", "namespace-controller", "kube-system")


def test_registries(fresh):
    wasm = b"\0asm\x01\0\0\0" + os.urandom(32)
    open_reg = fresh.registry_client()
    ref, digest = open_reg.push_wasm("smoke/hello", "v1", wasm)
    assert ref == f"{fresh.registry}/smoke/hello:v1"
    st, headers, body = open_reg.get_manifest("smoke/hello", "v1")
    assert st == 200 and headers["Docker-Content-Digest"] == digest
    manifest = json.loads(body)
    assert manifest["layers"][0]["mediaType"] == "application/wasm"
    st, _, blob = open_reg.get_blob("smoke/hello", manifest["layers"][0]["digest"])
    assert st == 200 and blob == wasm
    # Deletion is enabled.
    st, _, _ = open_reg.request("DELETE", f"/v2/smoke/hello/manifests/{digest}")
    assert st == 202
    assert open_reg.get_manifest("smoke/hello", digest)[0] == 404

    private = fresh.registry_client(auth=True)
    anonymous = Registry(fresh.auth_registry)
    st, headers, _ = anonymous.request("GET", "/v2/")
    assert st == 401 and "Basic" in headers.get("WWW-Authenticate", "")
    wrong = Registry(fresh.auth_registry, "wasmlet", "wrong-password")
    assert wrong.request("GET", "/v2/")[0] == 401
    ref, digest = private.push_wasm("private/hello", "v1", wasm)
    assert private.get_manifest("private/hello", "v1")[0] == 200
    assert anonymous.get_manifest("private/hello", "v1")[0] == 401
    # Separate storage: the open registry does not have it.
    assert open_reg.get_manifest("private/hello", "v1")[0] == 404


def test_down_leaves_no_process(fresh):
    pids = fresh.pids()
    assert sorted(pids) == sorted(expected_components(fresh))
    p = fresh.down()
    assert p.returncode == 0, p.stderr
    for comp, pid in pids.items():
        assert not process_running(pid), f"{comp} (pid {pid}) still running after down"
        assert f"stopped {comp} (pid {pid})" in p.stdout
    assert fresh.pids() == {}
    for var, port in fresh.smoke["ports"].items():
        assert not port_open(port), f"{var}={port} still accepts connections"
    st = fresh.status()
    assert st.returncode == 3 and st.stdout.count("stopped") == len(COMPONENTS) + 1
    # down is idempotent.
    assert fresh.down().returncode == 0


def test_restart_keeps_state(fresh):
    t = time.monotonic()
    fresh.up()
    restart = time.monotonic() - t
    print(f"bring-up from nothing {fresh.smoke['up_seconds']:.1f}s, restart {restart:.1f}s")
    ns = fresh.smoke["namespace"]
    assert fresh.get("configmap", "cfg", ns)["data"] == {"key": "value"}
    pids = fresh.pids()
    assert fresh.down().returncode == 0
    assert not any(process_running(pid) for pid in pids.values())
