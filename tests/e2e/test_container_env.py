"""A wasm container's environment and argv, exactly as Kubernetes defines
them (https://kubernetes.io/docs/tasks/inject-data-application/), checked
through the printenv module's own output on a real wasmlet node.

printenv prints `arg[i]=...` for argv, then `env NAME=value` sorted by name,
so each test asserts the whole environment a source produces."""

import base64

import pytest

from kubetest import wait_for
from container_kit import (attach, container, create_pod, logs, printenv_args, printenv_vars,
                           push, run_to_end, start_module_node, terminated, waiting_with,
                           wait_done, wait_event)


@pytest.fixture(scope="module")
def env_node(cluster, tmp_path_factory):
    mnode = start_module_node(cluster, tmp_path_factory, "env")
    mnode.printenv = push(cluster, "printenv", "env/printenv")
    try:
        yield mnode
    finally:
        mnode.factory.teardown()


@pytest.fixture
def node(env_node, request):
    attach(request, env_node)
    return env_node


def run_printenv(cluster, node, ns, name, timeout=60, **cfields):
    spec = {k: cfields.pop(k) for k in list(cfields) if k in (
        "labels", "annotations", "enableServiceLinks", "serviceAccountName", "initContainers")}
    c = container("app", node.printenv, **cfields)
    p, out = run_to_end(cluster, node.node, ns, name, [c], timeout=timeout, **spec)
    t = terminated(p, "app")
    assert p["status"]["phase"] == "Succeeded", (p["status"], out)
    assert t["exitCode"] == 0
    return p, out["app"]


def parse_quantity(q):
    """A Kubernetes quantity as a number of units (float)."""
    suffixes = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
                "n": 1e-9, "u": 1e-6, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
                "P": 1e15, "E": 1e18}
    for s in sorted(suffixes, key=len, reverse=True):
        if q.endswith(s):
            return float(q[: -len(s)]) * suffixes[s]
    return float(q)


def test_value_and_expansion_in_env_command_and_args(cluster, node, namespace):
    # https://kubernetes.io/docs/tasks/inject-data-application/define-interdependent-environment-variables/
    env = [
        {"name": "GREETING", "value": "hello"},
        {"name": "NAME", "value": "world"},
        {"name": "MESSAGE", "value": "$(GREETING), $(NAME)!"},
        {"name": "LATER_REF", "value": "[$(DEFINED_LATER)]"},   # not defined yet: kept
        {"name": "UNDEFINED", "value": "[$(NO_SUCH_VAR)]"},
        {"name": "ESCAPED", "value": "$$(GREETING) costs $$5"},
        {"name": "DOLLAR", "value": "$GREETING $ $( unterminated"},
        {"name": "SERVICE", "value": "api=$(KUBERNETES_SERVICE_HOST)"},
        {"name": "DEFINED_LATER", "value": "late"},
        {"name": "EMPTY", "value": ""},
        {"name": "NAME", "value": "again"},                     # replaces the first NAME
    ]
    pod, out = run_printenv(
        cluster, node, namespace, "expand",
        command=["printenv", "$(GREETING)", "$$(GREETING)"],
        args=["$(MESSAGE)", "$(DEFINED_LATER)", "$(NO_SUCH_VAR)", "a$$b", "$(NAME)"],
        env=env)
    vars_ = printenv_vars(out)
    assert printenv_args(out) == ["printenv", "hello", "$(GREETING)", "hello, world!", "late",
                                  "$(NO_SUCH_VAR)", "a$b", "again"]
    kube_host = vars_["KUBERNETES_SERVICE_HOST"]
    expect = {
        "GREETING": "hello",
        "NAME": "again",
        "MESSAGE": "hello, world!",
        "LATER_REF": "[$(DEFINED_LATER)]",
        "UNDEFINED": "[$(NO_SUCH_VAR)]",
        "ESCAPED": "$(GREETING) costs $5",
        "DOLLAR": "$GREETING $ $( unterminated",
        "SERVICE": f"api={kube_host}",
        "DEFINED_LATER": "late",
        "EMPTY": "",
    }
    assert {k: vars_.get(k) for k in expect} == expect
    svc = cluster.get("service", "kubernetes", "default")
    assert kube_host == svc["spec"]["clusterIP"]


def test_field_ref_every_path(cluster, node, namespace):
    paths = {
        "NAME": "metadata.name",
        "NAMESPACE": "metadata.namespace",
        "UID": "metadata.uid",
        "LABEL": "metadata.labels['app.kubernetes.io/name']",
        "LABEL_MISSING": "metadata.labels['absent']",
        "ANNOTATION": "metadata.annotations['example.com/note']",
        "NODE": "spec.nodeName",
        "SA": "spec.serviceAccountName",
        "HOST_IP": "status.hostIP",
        "HOST_IPS": "status.hostIPs",
        "POD_IP": "status.podIP",
        "POD_IPS": "status.podIPs",
    }
    env = [{"name": k, "valueFrom": {"fieldRef": {"fieldPath": v}}} for k, v in paths.items()]
    pod, out = run_printenv(cluster, node, namespace, "fields", env=env,
                            labels={"app.kubernetes.io/name": "fields-app"},
                            annotations={"example.com/note": "a note, with: punctuation"})
    v = printenv_vars(out)
    st = pod["status"]
    assert {k: v.get(k) for k in paths} == {
        "NAME": "fields",
        "NAMESPACE": namespace,
        "UID": pod["metadata"]["uid"],
        "LABEL": "fields-app",
        "LABEL_MISSING": "",
        "ANNOTATION": "a note, with: punctuation",
        "NODE": node.name,
        "SA": "default",
        "HOST_IP": st["hostIP"],
        "HOST_IPS": ",".join(i["ip"] for i in st["hostIPs"]),
        "POD_IP": st["podIP"],
        "POD_IPS": ",".join(i["ip"] for i in st["podIPs"]),
    }
    node_obj = cluster.node(node.name)
    internal = [a["address"] for a in node_obj["status"]["addresses"] if a["type"] == "InternalIP"]
    assert v["HOST_IP"] == internal[0]


def test_resource_field_ref_with_divisors(cluster, node, namespace):
    def ref(resource, divisor=None, container_name=None):
        r = {"resource": resource}
        if divisor:
            r["divisor"] = divisor
        if container_name:
            r["containerName"] = container_name
        return {"resourceFieldRef": r}

    env = {
        "CPU_LIMIT": ref("limits.cpu"),                  # 250m rounds up to 1
        "CPU_LIMIT_M": ref("limits.cpu", "1m"),
        "CPU_REQUEST_M": ref("requests.cpu", "1m"),
        "MEM_LIMIT": ref("limits.memory"),
        "MEM_LIMIT_MI": ref("limits.memory", "1Mi"),
        "MEM_LIMIT_K": ref("limits.memory", "1k"),
        "MEM_REQUEST_MI": ref("requests.memory", "1Mi"),
        "MEM_REQUEST_GI": ref("requests.memory", "1Gi"),  # 24Mi rounds up to 1
        "EPH_LIMIT_MI": ref("limits.ephemeral-storage", "1Mi"),
        "EPH_REQUEST": ref("requests.ephemeral-storage"),
        "OTHER_CPU_M": ref("limits.cpu", "1m", "app"),
    }
    resources = {"limits": {"cpu": "250m", "memory": "64Mi", "ephemeral-storage": "2Gi"},
                 "requests": {"cpu": "100m", "memory": "24Mi", "ephemeral-storage": "1Mi"}}
    pod, out = run_printenv(
        cluster, node, namespace, "resources",
        env=[{"name": k, "valueFrom": v} for k, v in env.items()], resources=resources)
    v = printenv_vars(out)
    assert {k: v.get(k) for k in env} == {
        "CPU_LIMIT": "1",
        "CPU_LIMIT_M": "250",
        "CPU_REQUEST_M": "100",
        "MEM_LIMIT": str(64 * 2**20),
        "MEM_LIMIT_MI": "64",
        "MEM_LIMIT_K": str(-(-64 * 2**20 // 1000)),
        "MEM_REQUEST_MI": "24",
        "MEM_REQUEST_GI": "1",
        "EPH_LIMIT_MI": "2048",
        "EPH_REQUEST": str(2**20),
        "OTHER_CPU_M": "250",
    }


def test_resource_field_ref_without_limits_is_node_allocatable(cluster, node, namespace):
    # "If CPU and memory limits are not specified for a container ... the
    # kubelet defaults to exposing the maximum allocatable value for CPU and
    # memory based on the node allocatable calculation."
    env = [
        {"name": "CPU_M", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu",
                                                             "divisor": "1m"}}},
        {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory"}}},
        {"name": "REQ_CPU", "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu"}}},
    ]
    pod, out = run_printenv(cluster, node, namespace, "allocatable", env=env)
    v = printenv_vars(out)
    alloc = cluster.node(node.name)["status"]["allocatable"]
    assert int(v["CPU_M"]) == round(parse_quantity(alloc["cpu"]) * 1000)
    assert int(v["MEM"]) == int(parse_quantity(alloc["memory"]))
    assert v["REQ_CPU"] == "0"


def test_config_map_and_secret_key_refs(cluster, node, namespace):
    cluster.apply("""
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {color: blue, size: "10", multi: "line one\\nline two"}
---
apiVersion: v1
kind: Secret
metadata: {name: creds}
stringData: {password: "p@ss w0rd=!", token: abc123}
""", namespace=namespace)

    def cm(key, name="settings", optional=None):
        r = {"name": name, "key": key}
        if optional is not None:
            r["optional"] = optional
        return {"configMapKeyRef": r}

    def sec(key, name="creds", optional=None):
        r = {"name": name, "key": key}
        if optional is not None:
            r["optional"] = optional
        return {"secretKeyRef": r}

    env = {
        "COLOR": cm("color"),
        "SIZE": cm("size", optional=False),
        "MISSING_KEY_OPT": cm("nope", optional=True),
        "MISSING_CM_OPT": cm("color", name="no-such-cm", optional=True),
        "PASSWORD": sec("password"),
        "MISSING_SECRET_OPT": sec("x", name="no-such-secret", optional=True),
        "MISSING_SKEY_OPT": sec("nope", optional=True),
    }
    pod, out = run_printenv(cluster, node, namespace, "keyrefs",
                            env=[{"name": k, "valueFrom": v} for k, v in env.items()]
                            + [{"name": "DERIVED", "value": "$(COLOR)/$(MISSING_KEY_OPT)"}])
    v = printenv_vars(out)
    assert v["COLOR"] == "blue"
    assert v["SIZE"] == "10"
    assert v["PASSWORD"] == "p@ss w0rd=!"
    # An optional source that is absent leaves the variable unset.
    for k in ("MISSING_KEY_OPT", "MISSING_CM_OPT", "MISSING_SECRET_OPT", "MISSING_SKEY_OPT"):
        assert k not in v
    assert v["DERIVED"] == "blue/$(MISSING_KEY_OPT)"


def test_env_from_with_prefix_and_precedence(cluster, node, namespace):
    cluster.apply("""
apiVersion: v1
kind: ConfigMap
metadata: {name: base}
data: {HOST: db.local, PORT: "5432", SHARED: from-configmap}
---
apiVersion: v1
kind: Secret
metadata: {name: dbcreds}
data: {USER: YWRtaW4=, SHARED: ZnJvbS1zZWNyZXQ=}
""", namespace=namespace)
    env_from = [
        {"configMapRef": {"name": "base"}, "prefix": "DB_"},
        {"configMapRef": {"name": "base"}},
        {"secretRef": {"name": "dbcreds"}},                       # SHARED: later source wins
        {"configMapRef": {"name": "absent", "optional": True}},   # ignored
        {"secretRef": {"name": "absent-secret", "optional": True}},
    ]
    env = [{"name": "PORT", "value": "6000"},                      # env beats envFrom
           {"name": "URL", "value": "$(DB_HOST):$(PORT)"}]
    pod, out = run_printenv(cluster, node, namespace, "envfrom", envFrom=env_from, env=env)
    v = printenv_vars(out)
    assert base64.b64decode("YWRtaW4=").decode() == "admin"
    expect = {"DB_HOST": "db.local", "DB_PORT": "5432", "DB_SHARED": "from-configmap",
              "HOST": "db.local", "PORT": "6000", "SHARED": "from-secret", "USER": "admin",
              "URL": "db.local:6000"}
    assert {k: v.get(k) for k in expect} == expect


def service_vars(v, prefix):
    return {k: val for k, val in v.items() if k.startswith(prefix)}


def test_service_links(cluster, node, namespace):
    cluster.apply("""
apiVersion: v1
kind: Service
metadata: {name: my-db}
spec:
  selector: {app: db}
  ports:
  - {name: sql, port: 5432, targetPort: 5432, protocol: TCP}
  - {name: metrics-udp, port: 9125, targetPort: 9125, protocol: UDP}
---
apiVersion: v1
kind: Service
metadata: {name: headless}
spec:
  clusterIP: None
  selector: {app: x}
  ports: [{port: 80}]
""", namespace=namespace)
    ip = cluster.get("service", "my-db", namespace)["spec"]["clusterIP"]
    kube = cluster.get("service", "kubernetes", "default")["spec"]
    kip, kport = kube["clusterIP"], kube["ports"][0]["port"]

    _, out = run_printenv(cluster, node, namespace, "links")
    v = printenv_vars(out)
    assert service_vars(v, "MY_DB_") == {
        "MY_DB_SERVICE_HOST": ip,
        "MY_DB_SERVICE_PORT": "5432",
        "MY_DB_SERVICE_PORT_SQL": "5432",
        "MY_DB_SERVICE_PORT_METRICS_UDP": "9125",
        "MY_DB_PORT": f"tcp://{ip}:5432",
        "MY_DB_PORT_5432_TCP": f"tcp://{ip}:5432",
        "MY_DB_PORT_5432_TCP_PROTO": "tcp",
        "MY_DB_PORT_5432_TCP_PORT": "5432",
        "MY_DB_PORT_5432_TCP_ADDR": ip,
        "MY_DB_PORT_9125_UDP": f"udp://{ip}:9125",
        "MY_DB_PORT_9125_UDP_PROTO": "udp",
        "MY_DB_PORT_9125_UDP_PORT": "9125",
        "MY_DB_PORT_9125_UDP_ADDR": ip,
    }
    assert not service_vars(v, "HEADLESS_")   # no cluster IP, no variables
    assert v["KUBERNETES_SERVICE_HOST"] == kip
    assert v["KUBERNETES_SERVICE_PORT"] == str(kport)

    # enableServiceLinks: false drops the namespace's services, keeps the
    # API server's, and a pod's own variable overrides a link variable.
    _, out = run_printenv(cluster, node, namespace, "nolinks", enableServiceLinks=False,
                          env=[{"name": "KUBERNETES_SERVICE_PORT", "value": "override"}])
    v = printenv_vars(out)
    assert not service_vars(v, "MY_DB_")
    assert v["KUBERNETES_SERVICE_HOST"] == kip
    assert v["KUBERNETES_SERVICE_PORT"] == "override"
    assert v["KUBERNETES_PORT"] == f"tcp://{kip}:{kport}"


def test_missing_required_source_waits_then_starts(cluster, node, namespace):
    c = container("app", node.printenv,
                  env=[{"name": "LATE", "valueFrom": {"configMapKeyRef": {"name": "late",
                                                                          "key": "value"}}}],
                  envFrom=[{"secretRef": {"name": "late-secret"}}])
    create_pod(cluster, namespace, "waits", node.node, [c])
    w = waiting_with(cluster, namespace, "waits", "CreateContainerConfigError", timeout=30)
    # The kubelet's own words (wasmlet's worker puts its back-off note in front).
    assert w["message"].endswith('secret "late-secret" not found'), w
    wait_event(cluster, namespace, "waits", "Failed", r'secret "late-secret" not found')
    assert cluster.pod_phase(namespace, "waits") == "Pending"

    cluster.apply("""
apiVersion: v1
kind: Secret
metadata: {name: late-secret}
stringData: {FROM_SECRET: "yes"}
""", namespace=namespace)
    # The ConfigMap exists but lacks the key: still a config error, now about the key.
    cluster.apply("""
apiVersion: v1
kind: ConfigMap
metadata: {name: late}
data: {other: x}
""", namespace=namespace)
    def key_message():
        s = waiting_with(cluster, namespace, "waits", "CreateContainerConfigError", timeout=5)
        return "couldn't find key" in s["message"] and s

    s = wait_for(key_message, 40, desc="the missing-key message")
    assert s["message"].endswith(f"couldn't find key value in ConfigMap {namespace}/late"), s

    cluster.kubectl(["patch", "configmap", "late", "-n", namespace, "--type", "merge",
                     "-p", '{"data": {"value": "arrived"}}'], json=False)
    p = wait_done(cluster, namespace, "waits", timeout=60)
    assert p["status"]["phase"] == "Succeeded"
    v = printenv_vars(logs(cluster, node.node, namespace, "waits", "app"))
    assert v["LATE"] == "arrived"
    assert v["FROM_SECRET"] == "yes"
