"""A wasm container never reaches host files outside its mounts: not with
`..`, not with absolute paths, not through symlinks planted inside a
volume (by the module itself, or on the host side of a hostPath), and not
through a subPath that a planted symlink leads out of its volume.

Every attempt runs in the `files` module on a real node, and the host file
it aims at is checked unchanged afterwards."""

import os
from pathlib import Path

import pytest

from container_kit import (attach, container, create_pod, logs, push, start_module_node,
                           wait_done, wait_event, waiting_with)


@pytest.fixture(scope="module")
def sec_node(cluster, tmp_path_factory):
    mnode = start_module_node(cluster, tmp_path_factory, "sec")
    mnode.files = push(cluster, "files", "sec/files")
    try:
        yield mnode
    finally:
        mnode.factory.teardown()


@pytest.fixture
def node(sec_node, request):
    attach(request, sec_node)
    return sec_node


def files(node, name, *args, mounts=()):
    return container(name, node.files, args=list(args), volumeMounts=list(mounts))


def run(cluster, node, ns, name, containers, **spec):
    create_pod(cluster, ns, name, node.node, containers, **spec)
    p = wait_done(cluster, ns, name)
    out = {}
    for key in ("initContainerStatuses", "containerStatuses"):
        for s in p["status"].get(key) or []:
            t = s["state"].get("terminated") or {}
            out[s["name"]] = (t.get("exitCode"), logs(cluster, node.node, ns, name, s["name"]))
    return p, out


def probe_results(text):
    """{path: "ok" | error} from `files probe` lines."""
    res = {}
    for line in text.splitlines():
        if line.startswith("open "):
            path, _, what = line[5:].rpartition(": ")
            res[path] = what
    return res


@pytest.fixture
def secret_file(tmp_path):
    """A host file no container may read or change."""
    f = tmp_path / "host-secret.txt"
    f.write_text("host secret\n")
    return f


def test_nothing_outside_the_mounts_is_visible(cluster, node, namespace, tmp_path, secret_file):
    host = tmp_path / "hp"
    host.mkdir()
    (host / "inside.txt").write_text("inside\n")
    vols = [{"name": "scratch", "emptyDir": {}},
            {"name": "hp", "hostPath": {"path": str(host)}}]
    mounts = [{"name": "scratch", "mountPath": "/data"}, {"name": "hp", "mountPath": "/hp"}]
    targets = ["/hp/inside.txt", "/etc/passwd", "/", "/proc/self/environ", str(secret_file),
               "/data/../etc/passwd", "/data/../../../../etc/passwd", "/hp/../../etc/passwd",
               f"/hp/../{secret_file.name}", "../etc/passwd", "etc/passwd", "/tmp", "."]
    p, out = run(cluster, node, namespace, "probe",
                 [files(node, "probe", "probe", *targets, mounts=mounts),
                  files(node, "ls-root", "ls", "/", mounts=mounts),
                  files(node, "write-out", "write", "/data/../../escaped.txt", "x",
                        mounts=mounts)],
                 volumes=vols)
    res = probe_results(out["probe"][1])
    assert res["/hp/inside.txt"] == "ok"
    for t in targets[1:]:
        assert res[t] != "ok", f"{t} opened from inside the module"
    assert out["ls-root"][0] == 1
    assert out["write-out"][0] == 1
    pod_dir = Path(node.data_dir) / "pods" / p["metadata"]["uid"]
    assert not list(pod_dir.rglob("escaped.txt"))
    assert not (tmp_path / "escaped.txt").exists()


def test_module_planted_symlinks_do_not_lead_out(cluster, node, namespace, secret_file):
    vols = [{"name": "scratch", "emptyDir": {}}]
    m = [{"name": "scratch", "mountPath": "/data"}]
    inits = [
        files(node, "plant-rel", "symlink", "../../../../../../etc/passwd", "/data/rel", mounts=m),
        files(node, "plant-dir", "symlink", "../../../../../../tmp", "/data/tmpdir", mounts=m),
        files(node, "plant-ok", "symlink", "target.txt", "/data/inside", mounts=m),
        files(node, "target", "write", "/data/target.txt", "reachable", mounts=m),
    ]
    apps = [
        files(node, "plant-abs", "symlink", "/etc/passwd", "/data/link", mounts=m),
        files(node, "plant-secret", "symlink", str(secret_file), "/data/secret", mounts=m),
        files(node, "cat-abs", "cat", "/data/link", mounts=m),
        files(node, "cat-rel", "cat", "/data/rel", mounts=m),
        files(node, "cat-secret", "cat", "/data/secret", mounts=m),
        files(node, "ls-dir", "ls", "/data/tmpdir", mounts=m),
        files(node, "cat-inside", "cat", "/data/inside", mounts=m),
    ]
    p, out = run(cluster, node, namespace, "planted", apps, initContainers=inits, volumes=vols)
    # A symlink inside the volume to a file inside it works ...
    assert out["plant-ok"][0] == 0, out["plant-ok"]
    # ... one with an absolute target is refused when planted (WASI has
    # no absolute paths), a relative one that leads out may be planted ...
    for name in ("plant-abs", "plant-secret"):
        assert out[name][0] == 1 and "symlink" in out[name][1], out[name]
    assert out["plant-rel"][0] == 0 and out["plant-dir"][0] == 0
    # ... and following any of them out is not possible.
    for name in ("cat-abs", "cat-rel", "cat-secret", "ls-dir"):
        code, text = out[name]
        assert code == 1, f"{name}: {text!r}"
        assert "root:" not in text and "host secret" not in text
    assert out["cat-inside"] == (0, "reachable\n")
    assert secret_file.read_text() == "host secret\n"


def test_host_side_symlink_in_a_host_path(cluster, node, namespace, tmp_path, secret_file):
    host = tmp_path / "hp"
    host.mkdir()
    (host / "to-secret").symlink_to(secret_file)
    (host / "to-etc").symlink_to("/etc")
    (host / "rel-out").symlink_to(Path("..") / secret_file.name)
    vols = [{"name": "hp", "hostPath": {"path": str(host)}}]
    m = [{"name": "hp", "mountPath": "/hp"}]
    p, out = run(cluster, node, namespace, "hostlinks",
                 [files(node, "cat", "cat", "/hp/to-secret", mounts=m),
                  files(node, "write", "write", "/hp/to-secret", "changed", mounts=m),
                  files(node, "append", "append", "/hp/rel-out", "more", mounts=m),
                  files(node, "etc", "cat", "/hp/to-etc/passwd", mounts=m)],
                 volumes=vols)
    for name in ("cat", "write", "append", "etc"):
        code, text = out[name]
        assert code == 1, f"{name}: {text!r}"
        assert "host secret" not in text and "root:" not in text
    assert secret_file.read_text() == "host secret\n"


def test_sub_path_through_a_planted_symlink_is_refused(cluster, node, namespace, tmp_path):
    # The module plants a symlink in an emptyDir; a later container mounts
    # it as a subPath. The kubelet refuses such a subPath, and so do we.
    vols = [{"name": "scratch", "emptyDir": {}}]
    create_pod(cluster, namespace, "subpath", node.node,
               [files(node, "app", "ls", "/mnt",
                      mounts=[{"name": "scratch", "mountPath": "/mnt", "subPath": "escape"}])],
               initContainers=[files(node, "plant", "symlink", "../../../../../../../etc",
                                     "/data/escape",
                                     mounts=[{"name": "scratch", "mountPath": "/data"}])],
               volumes=vols)
    w = waiting_with(cluster, namespace, "subpath", "CreateContainerConfigError", timeout=30)
    assert "subPath escape" in w["message"] and "outside" in w["message"], w
    ev = wait_event(cluster, namespace, "subpath", "Failed", r"resolves outside its volume")
    assert cluster.pod_phase(namespace, "subpath") == "Pending"

    # The same from the host side of a hostPath.
    host = tmp_path / "hp"
    host.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "private.txt").write_text("private\n")
    (host / "sub").symlink_to(outside)
    for name, sub in (("hostsub", "sub"), ("hostsub-new", "sub/created/below")):
        create_pod(cluster, namespace, name, node.node,
                   [files(node, "app", "ls", "/mnt",
                          mounts=[{"name": "hp", "mountPath": "/mnt", "subPath": sub}])],
                   volumes=[{"name": "hp", "hostPath": {"path": str(host)}}])
    for name in ("hostsub", "hostsub-new"):
        w = waiting_with(cluster, namespace, name, "CreateContainerConfigError", timeout=30)
        assert "outside" in w["message"], w
    assert (outside / "private.txt").read_text() == "private\n"
    # A missing subPath directory is not created through the link either.
    assert sorted(os.listdir(outside)) == ["private.txt"]
