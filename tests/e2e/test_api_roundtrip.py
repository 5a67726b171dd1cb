"""End-to-end checks of the cluster itself, through the same fixtures and
helpers the node tests use; none of them needs a wasmlet binary."""

import base64
import json

import pytest

from kubetest import KubectlError, condition, unique_name, wait_for


def test_namespace_round_trip(cluster):
    name = unique_name("e2e-roundtrip")
    created = cluster.apply(
        f"""
apiVersion: v1
kind: Namespace
metadata:
  name: {name}
  labels:
    wasmlet.dev/e2e: "true"
"""
    )
    assert created["metadata"]["name"] == name
    ns = cluster.get("namespace", name)
    assert ns["metadata"]["labels"]["wasmlet.dev/e2e"] == "true"
    assert ns["status"]["phase"] == "Active"
    assert name in {n["metadata"]["name"] for n in cluster.list("namespaces",
                                                                selector="wasmlet.dev/e2e")}

    # A namespaced object inside it, then deletion: the namespace controller
    # has to empty it before the namespace disappears.
    cluster.apply(
        """
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  greeting: hello
""",
        namespace=name,
    )
    assert cluster.get("configmap", "settings", name)["data"] == {"greeting": "hello"}
    cluster.delete("namespace", name)
    wait_for(lambda: cluster.get("namespace", name) is None, 60,
             desc=f"namespace {name} to be deleted")
    assert cluster.get("configmap", "settings", name) is None


def test_namespace_fixture_and_service_account(cluster, namespace):
    # The serviceaccount controller gives every namespace its default SA and
    # the root-CA publisher its kube-root-ca.crt.
    wait_for(lambda: cluster.get("serviceaccount", "default", namespace), 30,
             desc="default ServiceAccount")
    cm = wait_for(lambda: cluster.get("configmap", "kube-root-ca.crt", namespace), 30,
                  desc="kube-root-ca.crt")
    with open(cluster.ca) as f:
        assert cm["data"]["ca.crt"].strip() == f.read().strip()

    token = cluster.kubectl(["create", "token", "default", "-n", namespace,
                             "--duration", "10m"], json=False).strip()
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert claims["sub"] == f"system:serviceaccount:{namespace}:default"
    user = cluster.whoami(token=token)
    assert user["username"] == f"system:serviceaccount:{namespace}:default"
    assert "system:serviceaccounts" in user["groups"]


def test_kubectl_errors_are_reported(cluster, namespace):
    assert cluster.get("configmap", "does-not-exist", namespace) is None
    with pytest.raises(KubectlError) as e:
        cluster.kubectl(["get", "configmap", "does-not-exist", "-n", namespace])
    assert e.value.not_found
    with pytest.raises(TimeoutError, match="never"):
        wait_for(lambda: False, timeout=0.5, interval=0.1, desc="never")


def test_pod_is_scheduled_only_when_a_node_exists(cluster, namespace):
    # Without a node the scheduler leaves the pod Pending with a
    # PodScheduled=False condition: proof the scheduler is running.
    cluster.apply(
        """
apiVersion: v1
kind: Pod
metadata:
  name: waits
spec:
  nodeSelector:
    wasmlet.dev/no-such-label: "true"
  containers:
  - name: app
    image: example.invalid/app:1
""",
        namespace=namespace,
    )
    assert cluster.pod_phase(namespace, "waits") == "Pending"
    c = wait_for(
        lambda: condition(cluster.pod(namespace, "waits"), "PodScheduled"), 30,
        desc="PodScheduled condition",
    )
    assert c["status"] == "False"
    assert c["reason"] == "Unschedulable"
