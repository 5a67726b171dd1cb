"""A wasmlet node joins the cluster: the first test that needs the binary
(skipped until $WASMLET_BIN or build/wasmlet exists)."""

import base64
import subprocess

import pytest

from kubetest import condition


def csr_subject(csr):
    pem = base64.b64decode(csr["spec"]["request"])
    return subprocess.run(["openssl", "req", "-noout", "-subject", "-nameopt", "RFC2253"],
                          input=pem, capture_output=True, check=True).stdout.decode()


@pytest.mark.parametrize("auth", ["cert", "bootstrap"])
def test_node_registers_and_heartbeats(cluster, wasmlet_nodes, auth):
    node = wasmlet_nodes(auth=auth)
    obj = cluster.node(node.name)
    assert condition(obj, "Ready")["status"] == "True"
    assert obj["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"] == node.port
    lease = cluster.get("lease", node.name, "kube-node-lease")
    assert lease is not None and lease["spec"]["holderIdentity"] == node.name
    if auth == "bootstrap":
        # The token cannot create Nodes; the node got its identity through a
        # client CSR filed with the token, auto-approved and signed.
        token_id = cluster.env["WASMLET_BOOTSTRAP_TOKEN"].split(".")[0]
        mine = [c for c in cluster.list("csr")
                if c["spec"]["signerName"] == "kubernetes.io/kube-apiserver-client-kubelet"
                and c["spec"]["username"] == f"system:bootstrap:{token_id}"
                and f"CN=system:node:{node.name}" in csr_subject(c)]
        assert mine, "no client CSR filed with the bootstrap token"
        assert any(condition(c, "Approved") and c["status"].get("certificate") for c in mine)
