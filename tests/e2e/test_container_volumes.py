"""What a wasm container's volumes look like from inside: emptyDir (and its
sizeLimit eviction), hostPath, configMap, secret, downwardAPI and projected
(serviceAccountToken included), with items, modes, subPath and readOnly,
the atomic ..data layout, live updates, and unsupported types.

The `files` example module is the container: it cats, writes, lists and
watches paths, and its output (and exit code) is what the tests assert on,
together with the files wasmlet wrote on the host."""

import base64
import json
import os
import stat
import time
from pathlib import Path

import pytest

from kubetest import wait_for
from container_kit import (attach, container, create_pod, logs, push, start_module_node,
                           wait_done, wait_event, waiting_with)


@pytest.fixture(scope="module")
def vol_node(cluster, tmp_path_factory):
    mnode = start_module_node(cluster, tmp_path_factory, "vol")
    mnode.files = push(cluster, "files", "vol/files")
    mnode.ticker = push(cluster, "ticker", "vol/ticker")
    try:
        yield mnode
    finally:
        mnode.factory.teardown()


@pytest.fixture
def node(vol_node, request):
    attach(request, vol_node)
    return vol_node


def files(node, name, *args, mounts=(), **extra):
    return container(name, node.files, args=list(args),
                     volumeMounts=[dict(m) for m in mounts], **extra)


def mount(name, path, **kw):
    m = {"name": name, "mountPath": path}
    m.update(kw)
    return m


def run(cluster, node, ns, name, containers, timeout=60, **spec):
    """Runs the pod to its end; returns (pod, {container: (exit code, output)})."""
    create_pod(cluster, ns, name, node.node, containers, **spec)
    p = wait_done(cluster, ns, name, timeout)
    result = {}
    for key in ("initContainerStatuses", "containerStatuses"):
        for s in p["status"].get(key) or []:
            t = s["state"].get("terminated") or {}
            result[s["name"]] = (t.get("exitCode"), logs(cluster, node.node, ns, name, s["name"]))
    return p, result


def volume_dir(node, pod, vol):
    return Path(node.data_dir) / "pods" / pod["metadata"]["uid"] / "volumes" / vol


# --- emptyDir ---------------------------------------------------------------------


def test_empty_dir_shared_sub_path_and_read_only(cluster, node, namespace):
    vols = [{"name": "scratch", "emptyDir": {}}]
    inits = [
        files(node, "writer", "write", "/data/msg.txt", "from the init container",
              mounts=[mount("scratch", "/data")]),
        files(node, "sub-writer", "write", "/sub/inner.txt", "through a subPath",
              mounts=[mount("scratch", "/sub", subPath="nested/dir")]),
    ]
    apps = [
        files(node, "reader", "cat", "/data/msg.txt", mounts=[mount("scratch", "/data")]),
        files(node, "lister", "ls", "/data/nested/dir", mounts=[mount("scratch", "/data")]),
        files(node, "ro-writer", "write", "/ro/new.txt", "x",
              mounts=[mount("scratch", "/ro", readOnly=True)]),
        files(node, "ro-reader", "cat", "/ro/msg.txt",
              mounts=[mount("scratch", "/ro", readOnly=True)]),
    ]
    p, r = run(cluster, node, namespace, "empty", apps, initContainers=inits, volumes=vols)
    assert r["writer"][0] == 0 and r["sub-writer"][0] == 0, r
    assert r["reader"] == (0, "from the init container\n")
    assert r["lister"] == (0, "inner.txt\n")
    assert r["ro-reader"] == (0, "from the init container\n")
    code, out = r["ro-writer"]
    assert code == 1 and "files: write /ro/new.txt:" in out, r["ro-writer"]
    assert not (volume_dir(node, p, "scratch") / "new.txt").exists()


def test_empty_dir_size_limit_evicts_the_pod(cluster, node, namespace):
    big = "x" * (150 * 1024)
    over = [{"name": "cache", "emptyDir": {"sizeLimit": "100Ki"}}]
    under = [{"name": "cache", "emptyDir": {"sizeLimit": "1Mi"}}]
    for name, vols in (("over", over), ("under", under)):
        create_pod(cluster, namespace, name, node.node,
                   [container("app", node.ticker, args=["500"],
                              volumeMounts=[mount("cache", "/cache")])],
                   initContainers=[files(node, "fill", "write", "/cache/big", big,
                                         mounts=[mount("cache", "/cache")])],
                   volumes=vols)
    p = cluster.wait_pod_phase(namespace, "over", "Failed", timeout=40)
    assert p["status"]["reason"] == "Evicted"
    assert p["status"]["message"] == 'Usage of EmptyDir volume "cache" exceeds the limit "100Ki".'
    t = p["status"]["containerStatuses"][0]["state"]["terminated"]
    assert t["exitCode"] == 137
    wait_event(cluster, namespace, "over", "Evicted", r'Usage of EmptyDir volume "cache"')
    # Its neighbour, well within its limit, was checked too and keeps running.
    under_pod = cluster.pod(namespace, "under")
    assert under_pod["status"]["phase"] == "Running", under_pod["status"]


# --- hostPath ---------------------------------------------------------------------


def test_host_path(cluster, node, namespace, tmp_path):
    host = tmp_path / "shared"
    host.mkdir()
    (host / "from-host.txt").write_text("written by the host\n")
    created = tmp_path / "made" / "by" / "wasmlet"
    vols = [{"name": "shared", "hostPath": {"path": str(host), "type": "Directory"}},
            {"name": "made", "hostPath": {"path": str(created), "type": "DirectoryOrCreate"}}]
    apps = [
        files(node, "reader", "cat", "/host/from-host.txt",
              mounts=[mount("shared", "/host", readOnly=True)]),
        files(node, "ro-writer", "write", "/host/x", "nope",
              mounts=[mount("shared", "/host", readOnly=True)]),
        files(node, "writer", "write", "/rw/from-module.txt", "written by the module",
              mounts=[mount("shared", "/rw")]),
        files(node, "creator", "write", "/made/f", "in a created dir",
              mounts=[mount("made", "/made")]),
    ]
    p, r = run(cluster, node, namespace, "hostpath", apps, volumes=vols)
    assert r["reader"] == (0, "written by the host\n")
    assert r["ro-writer"][0] == 1
    assert not (host / "x").exists()
    assert r["writer"][0] == 0 and r["creator"][0] == 0, r
    assert (host / "from-module.txt").read_text() == "written by the module"
    assert (created / "f").read_text() == "in a created dir"
    # A missing Directory is a mount error, retried (it may appear).
    create_pod(cluster, namespace, "nodir", node.node,
               [files(node, "app", "ls", "/x", mounts=[mount("gone", "/x")])],
               volumes=[{"name": "gone", "hostPath": {"path": str(tmp_path / "absent"),
                                                      "type": "Directory"}}])
    ev = wait_event(cluster, namespace, "nodir", "FailedMount", r"absent")
    assert "gone" in ev["message"]
    (tmp_path / "absent").mkdir()
    (tmp_path / "absent" / "late").write_text("")
    p = wait_done(cluster, namespace, "nodir", timeout=40)
    assert logs(cluster, node.node, namespace, "nodir", "app") == "late\n"


# --- configMap, secret, downwardAPI, projected --------------------------------------


def test_config_map_and_secret_volumes(cluster, node, namespace):
    cluster.apply("""
apiVersion: v1
kind: ConfigMap
metadata: {name: app-config}
data:
  app.properties: "color=blue\\nsize=10\\n"
  other: "second key"
binaryData:
  blob.bin: AAEC/w==
---
apiVersion: v1
kind: Secret
metadata: {name: app-secret}
data:
  password: czNjcjN0
  api-key: a2V5LTEyMw==
""", namespace=namespace)
    vols = [
        {"name": "all", "configMap": {"name": "app-config"}},
        {"name": "picked", "configMap": {
            "name": "app-config", "defaultMode": 0o440,
            "items": [{"key": "app.properties", "path": "conf/app.props"},
                      {"key": "other", "path": "other.txt", "mode": 0o600}]}},
        {"name": "secret", "secret": {"secretName": "app-secret", "defaultMode": 0o400}},
        {"name": "absent", "configMap": {"name": "no-such-map", "optional": True}},
    ]
    m_all = mount("all", "/etc/all")
    m_picked = mount("picked", "/etc/picked")
    m_secret = mount("secret", "/etc/secret")
    apps = [
        files(node, "ls-all", "ls", "/etc/all", mounts=[m_all]),
        files(node, "cat-binary", "cat", "/etc/all/blob.bin", mounts=[m_all]),
        files(node, "cat-item", "cat", "/etc/picked/conf/app.props", mounts=[m_picked]),
        files(node, "ls-picked", "ls", "/etc/picked", mounts=[m_picked]),
        files(node, "cat-secret", "cat", "/etc/secret/password", mounts=[m_secret]),
        files(node, "ls-absent", "ls", "/etc/absent", mounts=[mount("absent", "/etc/absent")]),
        # API data volumes are read-only even without readOnly: true.
        files(node, "write-cm", "write", "/etc/all/other", "changed", mounts=[m_all]),
        files(node, "sub", "cat", "/etc/conf/app.props",
              mounts=[mount("picked", "/etc/conf", subPath="conf")]),
    ]
    p, r = run(cluster, node, namespace, "cmsecret", apps, volumes=vols)
    version = os.readlink(volume_dir(node, p, "all") / "..data")
    assert r["ls-all"] == (0, f"{version}\n..data\napp.properties\nblob.bin\nother\n")
    assert r["cat-binary"][0] == 0
    assert r["cat-item"] == (0, "color=blue\nsize=10\n")
    version = os.readlink(volume_dir(node, p, "picked") / "..data")
    assert r["ls-picked"] == (0, f"{version}\n..data\nconf\nother.txt\n")
    assert r["cat-secret"] == (0, "s3cr3t\n")
    # An optional ConfigMap that is absent: an empty volume (the writer's
    # own ..data entries only).
    assert r["ls-absent"][0] == 0
    assert [x for x in r["ls-absent"][1].split("\n") if x and not x.startswith("..")] == []
    assert r["write-cm"][0] == 1, r["write-cm"]
    assert r["sub"] == (0, "color=blue\nsize=10\n")

    # On the host: the atomic writer's layout and the modes asked for.
    picked = volume_dir(node, p, "picked")
    data = picked / "..data"
    assert data.is_symlink() and os.readlink(data).startswith("..")
    assert os.readlink(picked / "other.txt") == "..data/other.txt"
    assert os.readlink(picked / "conf") == "..data/conf"
    assert stat.S_IMODE((data / "conf" / "app.props").stat().st_mode) == 0o440
    assert stat.S_IMODE((data / "other.txt").stat().st_mode) == 0o600
    sec = volume_dir(node, p, "secret") / "..data"
    assert stat.S_IMODE((sec / "api-key").stat().st_mode) == 0o400
    assert (sec / "api-key").read_text() == "key-123"
    assert (volume_dir(node, p, "all") / "..data" / "blob.bin").read_bytes() == b"\x00\x01\x02\xff"


def test_missing_config_map_volume_waits_then_mounts(cluster, node, namespace):
    create_pod(cluster, namespace, "waitcm", node.node,
               [files(node, "app", "cat", "/cfg/k", mounts=[mount("cfg", "/cfg")])],
               volumes=[{"name": "cfg", "configMap": {"name": "later"}}])
    ev = wait_event(cluster, namespace, "waitcm", "FailedMount", r'"later" not found')
    assert 'volume "cfg"' in ev["message"]
    assert cluster.pod_phase(namespace, "waitcm") == "Pending"
    cluster.apply("""
apiVersion: v1
kind: ConfigMap
metadata: {name: later}
data: {k: arrived}
""", namespace=namespace)
    p = wait_done(cluster, namespace, "waitcm", timeout=40)
    assert p["status"]["phase"] == "Succeeded"
    assert logs(cluster, node.node, namespace, "waitcm", "app") == "arrived\n"


def test_downward_api_volume(cluster, node, namespace):
    items = [
        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
        {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}},
        {"path": "meta/name", "fieldRef": {"fieldPath": "metadata.name"}},
        {"path": "meta/uid", "fieldRef": {"fieldPath": "metadata.uid"}, "mode": 0o600},
        {"path": "mem_mi", "resourceFieldRef": {"containerName": "app",
                                                "resource": "limits.memory", "divisor": "1Mi"}},
        {"path": "cpu_m", "resourceFieldRef": {"containerName": "app",
                                               "resource": "requests.cpu", "divisor": "1m"}},
    ]
    vols = [{"name": "info", "downwardAPI": {"items": items, "defaultMode": 0o444}}]
    m = [mount("info", "/info")]
    apps = [files(node, n, "cat", f"/info/{path}", mounts=m,
                  resources={"limits": {"memory": "48Mi", "cpu": "300m"},
                             "requests": {"cpu": "150m"}} if n == "app" else None)
            for n, path in (("app", "labels"), ("annotations", "annotations"),
                            ("name", "meta/name"), ("uid", "meta/uid"), ("mem", "mem_mi"),
                            ("cpu", "cpu_m"))]
    for a in apps:
        if a.get("resources") is None:
            a.pop("resources", None)
    p, r = run(cluster, node, namespace, "downward", apps, volumes=vols,
               labels={"tier": "web", "app": "shop"},
               annotations={"note": 'say "hi"\n\tthen go', "build": "42"})
    # The kubelet's format: key=%q lines, sorted by key, no final newline.
    assert r["app"] == (0, 'app="shop"\ntier="web"\n')
    assert r["annotations"][1].startswith('build="42"\n')
    assert 'note="say \\"hi\\"\\n\\tthen go"' in r["annotations"][1]
    assert r["name"] == (0, "downward\n")
    assert r["uid"] == (0, p["metadata"]["uid"] + "\n")
    assert r["mem"] == (0, "48\n")
    assert r["cpu"] == (0, "150\n")
    d = volume_dir(node, p, "info") / "..data"
    assert stat.S_IMODE((d / "meta" / "uid").stat().st_mode) == 0o600
    assert stat.S_IMODE((d / "labels").stat().st_mode) == 0o444


def jwt_claims(token):
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_projected_volume_with_service_account_token(cluster, node, namespace):
    cluster.apply("""
apiVersion: v1
kind: ConfigMap
metadata: {name: proj-cm}
data: {settings.json: '{"a": 1}'}
---
apiVersion: v1
kind: Secret
metadata: {name: proj-secret}
stringData: {user: alice}
""", namespace=namespace)
    vols = [{"name": "all-in-one", "projected": {"defaultMode": 0o440, "sources": [
        {"configMap": {"name": "proj-cm", "items": [{"key": "settings.json",
                                                      "path": "config/settings.json"}]}},
        {"secret": {"name": "proj-secret"}},
        {"downwardAPI": {"items": [{"path": "podname",
                                    "fieldRef": {"fieldPath": "metadata.name"}}]}},
        {"serviceAccountToken": {"path": "token", "audience": "wasmlet-e2e",
                                 "expirationSeconds": 600}},
    ]}}]
    m = [mount("all-in-one", "/projected")]
    apps = [files(node, "ls", "ls", "/projected", mounts=m),
            files(node, "settings", "cat", "/projected/config/settings.json", mounts=m),
            files(node, "user", "cat", "/projected/user", mounts=m),
            files(node, "podname", "cat", "/projected/podname", mounts=m),
            files(node, "token", "cat", "/projected/token", mounts=m)]
    t0 = time.time()
    p, r = run(cluster, node, namespace, "projected", apps, volumes=vols)
    version = os.readlink(volume_dir(node, p, "all-in-one") / "..data")
    assert r["ls"] == (0, f"{version}\n..data\nconfig\npodname\ntoken\nuser\n")
    assert r["settings"] == (0, '{"a": 1}\n')
    assert r["user"] == (0, "alice\n")
    assert r["podname"] == (0, "projected\n")
    code, token = r["token"]
    assert code == 0
    token = token.rstrip("\n")
    claims = jwt_claims(token)
    assert claims["aud"] == ["wasmlet-e2e"]
    assert claims["sub"] == f"system:serviceaccount:{namespace}:default"
    k8s = claims["kubernetes.io"]
    assert k8s["pod"] == {"name": "projected", "uid": p["metadata"]["uid"]}
    assert k8s["node"]["name"] == node.name
    assert claims["exp"] - claims["iat"] == 600
    assert t0 - 60 <= claims["iat"] <= time.time() + 60
    # A real token: the API server's TokenReview accepts it for its audience.
    review = cluster.create({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                             "spec": {"token": token, "audiences": ["wasmlet-e2e"]}})
    assert review["status"]["authenticated"] is True, review["status"]
    assert review["status"]["user"]["username"] == f"system:serviceaccount:{namespace}:default"
    d = volume_dir(node, p, "all-in-one") / "..data"
    assert stat.S_IMODE((d / "token").stat().st_mode) == 0o440

    # The pod's automatic kube-api-access volume is a projected one too.
    auto = [v for v in p["spec"]["volumes"] if v["name"].startswith("kube-api-access-")]
    assert auto, "the ServiceAccount admission plugin added no token volume"
    tok = (volume_dir(node, p, auto[0]["name"]) / "token").read_text()
    assert jwt_claims(tok)["kubernetes.io"]["pod"]["name"] == "projected"
    user = cluster.whoami(token=tok)
    assert user["username"] == f"system:serviceaccount:{namespace}:default"
    ca = (volume_dir(node, p, auto[0]["name"]) / "ca.crt").read_text()
    assert ca.strip() == Path(cluster.ca).read_text().strip()
    ns_file = (volume_dir(node, p, auto[0]["name"]) / "namespace").read_text()
    assert ns_file == namespace


def test_config_map_update_reaches_a_running_module(cluster, node, namespace):
    cluster.apply("""
apiVersion: v1
kind: ConfigMap
metadata: {name: live}
data: {greeting: v1, gone-later: x}
---
apiVersion: v1
kind: Secret
metadata: {name: live-secret}
stringData: {password: one}
""", namespace=namespace)
    vols = [{"name": "cfg", "configMap": {"name": "live"}},
            {"name": "sec", "secret": {"secretName": "live-secret"}},
            {"name": "proj", "projected": {"sources": [{"configMap": {"name": "live"}}]}}]
    apps = [
        files(node, "watch-cm", "watch", "/cfg/greeting", "200", "1",
              mounts=[mount("cfg", "/cfg")]),
        files(node, "watch-secret", "watch", "/sec/password", "200", "1",
              mounts=[mount("sec", "/sec")]),
        files(node, "watch-projected", "watch", "/proj/greeting", "200", "1",
              mounts=[mount("proj", "/proj")]),
    ]
    create_pod(cluster, namespace, "live", node.node, apps, volumes=vols)
    p = cluster.wait_pod_phase(namespace, "live", "Running", timeout=30)
    wait_for(lambda: logs(cluster, node.node, namespace, "live", "watch-cm") == "v1\n", 20,
             desc="first version printed")
    old_version = os.readlink(volume_dir(node, p, "cfg") / "..data")
    t = time.monotonic()
    cluster.kubectl(["patch", "configmap", "live", "-n", namespace, "--type", "merge", "-p",
                     '{"data": {"greeting": "v2", "gone-later": null, "added": "new"}}'],
                    json=False)
    cluster.kubectl(["patch", "secret", "live-secret", "-n", namespace, "--type", "merge", "-p",
                     '{"stringData": {"password": "two"}}'], json=False)
    p = wait_done(cluster, namespace, "live", timeout=45)
    elapsed = time.monotonic() - t
    assert p["status"]["phase"] == "Succeeded", p["status"]
    assert elapsed < 30, f"the update took {elapsed:.1f}s to reach the module"
    assert logs(cluster, node.node, namespace, "live", "watch-cm") == "v1\nv2\n"
    assert logs(cluster, node.node, namespace, "live", "watch-secret") == "one\ntwo\n"
    assert logs(cluster, node.node, namespace, "live", "watch-projected") == "v1\nv2\n"
    vol = volume_dir(node, p, "cfg")
    if vol.exists():   # (the pod may already be cleaned up)
        assert os.readlink(vol / "..data") != old_version
        assert not (vol / old_version).exists(), "the old version was not removed"
        assert sorted(x.name for x in vol.iterdir() if not x.name.startswith("..")) == \
            ["added", "greeting"]


def test_unsupported_volume_types_fail_the_pod(cluster, node, namespace):
    for name, vol in (("pvc", {"persistentVolumeClaim": {"claimName": "data"}}),
                      ("nfs", {"nfs": {"server": "nfs.example", "path": "/export"}})):
        create_pod(cluster, namespace, name, node.node,
                   [files(node, "app", "ls", "/data", mounts=[mount("data", "/data")])],
                   volumes=[{"name": "data", **vol}])
    for name, type_ in (("pvc", "persistentVolumeClaim"), ("nfs", "nfs")):
        p = cluster.wait_pod_phase(namespace, name, "Failed", timeout=30)
        ev = wait_event(cluster, namespace, name, "FailedMount", type_)
        assert 'volume "data"' in ev["message"] and type_ in ev["message"], ev
        assert type_ in p["status"].get("message", ""), p["status"]
