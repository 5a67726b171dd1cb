"""pytest fixtures for wasmlet's end-to-end tests.

cluster (session): a cluster.sh control plane. By default a fresh one in a
    temporary data dir on free loopback ports, brought up once per run and
    stopped at the end, even when tests fail or the run is interrupted. With
    WASMLET_E2E_REUSE=1 the tests use the cluster of $WASMLET_CLUSTER_DIR
    (default <repo>/.cluster), starting it if needed and leaving it running.
wasmlet_nodes (function): a factory; wasmlet_nodes(...) starts a
    `wasmlet node` process (binary $WASMLET_BIN, default <repo>/build/wasmlet)
    and waits for its Node to be Ready. Every node a test started is stopped
    and its Node object deleted afterwards. A failing test's report carries
    the tail of each node's log.
wasmlet_node (function): one node from that factory, with the defaults.
namespace (function): a fresh namespace, deleted afterwards.
shared_wasmlet_node (session): one node (--backoff-initial 500) that tests
    which only run pods share, to keep the suite fast; stopped and its Node
    deleted at the end of the run.
wasm_images (session): every build/examples module pushed to the cluster's
    registry; {name: (reference, manifest digest)}.
ledger (function): a Ledger (kubetest.py) in a temp dir, for counting runs.

Helpers (kubectl with JSON, apply, wait_for, pod_phase, registry pushes) live
in kubetest.py; tests import them from there.
"""

import os
import re

import pytest

from kubetest import (PORT_VARS, REPO, Cluster, Ledger, NodeFactory, WasmletNode, free_ports,
                      node_port, push_examples, unique_name)

DEFAULT_BIN = REPO / "build" / "wasmlet"


def start_cluster(tmp_path_factory, extra_env=None):
    """Bring up a fresh cluster in a temp dir on free ports (or reuse one)."""
    if os.environ.get("WASMLET_E2E_REUSE") == "1":
        c = Cluster(os.environ.get("WASMLET_CLUSTER_DIR", REPO / ".cluster"))
        c.up()
        return c, False
    data = tmp_path_factory.mktemp("cluster")
    c = Cluster(data, ports=dict(zip(PORT_VARS, free_ports(len(PORT_VARS)))),
                extra_env=extra_env)
    return c, True


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    # Nodes in these tests stop on purpose; a short grace period lets tests
    # observe NotReady without minutes of waiting.
    c, owned = start_cluster(
        tmp_path_factory,
        {"WASMLET_NODE_MONITOR_GRACE_PERIOD":
         os.environ.get("WASMLET_NODE_MONITOR_GRACE_PERIOD", "20s")},
    )
    if not owned:
        yield c
        return
    try:
        c.up()
        yield c
    finally:
        p = c.down()
        if p.returncode != 0:
            print(f"cluster.sh down failed:\n{p.stdout}\n{p.stderr}")


def wasmlet_binary():
    path = os.environ.get("WASMLET_BIN")
    if path:
        if not os.access(path, os.X_OK):
            pytest.fail(f"WASMLET_BIN={path} is not an executable file")
        return path
    if not os.access(DEFAULT_BIN, os.X_OK):
        pytest.skip(f"wasmlet is not built ({DEFAULT_BIN}); set WASMLET_BIN")
    return str(DEFAULT_BIN)


@pytest.fixture
def wasmlet_nodes(cluster, tmp_path, request):
    factory = NodeFactory(cluster, tmp_path, wasmlet_binary())
    request.node.wasmlet_node_factory = factory
    try:
        yield factory.start
    finally:
        factory.teardown()


@pytest.fixture
def wasmlet_node(wasmlet_nodes):
    return wasmlet_nodes()


@pytest.fixture
def namespace(cluster, request):
    base = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = unique_name(f"e2e-{base}" if base else "e2e")
    cluster.create_namespace(name)
    try:
        yield name
    finally:
        cluster.delete("namespace", name)


@pytest.fixture(scope="session")
def shared_wasmlet_node(cluster, tmp_path_factory):
    factory = NodeFactory(cluster, tmp_path_factory.mktemp("shared-node"), wasmlet_binary())
    try:
        yield factory.start(name=unique_name("shared"), port=node_port(),
                            args=["--backoff-initial", "500"])
    finally:
        factory.teardown()


@pytest.fixture(scope="session")
def wasm_images(cluster):
    images = push_examples(cluster)
    if "hello" not in images:
        pytest.skip("the example modules are not built (build/examples/*.wasm)")
    return images


@pytest.fixture
def ledger(tmp_path):
    return Ledger(tmp_path / "ledger")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Attach the tail of every wasmlet node log to a failing test's report."""
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    factory = getattr(item, "wasmlet_node_factory", None)
    nodes = list(factory.nodes) if factory is not None else []
    # Nodes a test got from other fixtures (shared_wasmlet_node) too.
    for value in getattr(item, "funcargs", {}).values():
        if isinstance(value, WasmletNode) and value not in nodes:
            nodes.append(value)
    for node in nodes:
        report.sections.append(
            (f"wasmlet node {node.name} log ({node.log_path})", node.log_tail(120))
        )


def pytest_report_header(config):
    bin_path = os.environ.get("WASMLET_BIN") or DEFAULT_BIN
    mode = "reuse" if os.environ.get("WASMLET_E2E_REUSE") == "1" else "fresh temp cluster"
    return [f"wasmlet e2e: cluster={mode}, WASMLET_BIN={bin_path}"]

