"""Integration tests of `wasmlet run -f pod.yaml`, the standalone mode.

Each example manifest in examples/pods/ is run as a user would run it, and
its output, exit status and summary are checked against what the manifest's
comment promises. Bad manifests must be refused with a message naming the
field; signals must stop a pod quickly; and the process must stay healthy
(no crash, no sanitizer report) whatever the module does.

Run: WASMLET_BIN=build/wasmlet WASMLET_EXAMPLES=build/examples pytest tests/run
(plus WASMLET_ASAN_BIN=<asan build>/wasmlet to repeat a subset under ASan).
"""
import json
import re
import signal
import time

import pytest

from runhelp import BIN, EXAMPLES, SOURCE, binaries, stop_with, wait_for_line


def test_binary_and_examples_exist():
    assert BIN.exists(), f"build wasmlet first ({BIN})"
    assert (EXAMPLES / "hello.wasm").exists(), f"build the examples first ({EXAMPLES})"
    assert (EXAMPLES / "bad" / "notwasm.wasm").exists()


# --- the example manifests, as their comments document them -----------------


def check_hello(r):
    assert r.rc == 0
    assert r.out == "[hello] Hello from wasmlet!\n"
    assert r.pod_line().startswith("pod hello: Succeeded in ")
    c = r.container("hello")
    assert (c["exit"], c["reason"], c["restarts"], c["message"]) == (0, "Completed", 0, "")


def check_printenv(r):
    assert r.rc == 0
    assert r.out_lines == [
        "[printenv] arg[0]=printenv",
        "[printenv] arg[1]=hello, world!",
        "[printenv] arg[2]=$(ESCAPED)",
        "[printenv] arg[3]=$(UNDEFINED)",
        "[printenv] arg[4]=plain",
        "[printenv] env GREETING=hello",
        "[printenv] env LITERAL=$(GREETING)",
        "[printenv] env MESSAGE=hello from world",
        "[printenv] env TARGET=world",
    ]
    assert r.pod_line().startswith("pod printenv: Succeeded")


def check_files(r):
    assert r.rc == 0
    # The writer logs nothing; the reader prints what the writer wrote.
    assert r.out == "[reader] hello-from-init\n"
    assert "[writer]" not in r.err
    w, rd = r.container("writer"), r.container("reader")
    assert r.container_line("writer").startswith("  init writer: ")
    assert (w["exit"], w["reason"]) == (0, "Completed")
    assert (rd["exit"], rd["reason"]) == (0, "Completed")
    assert r.pod_line().startswith("pod files: Succeeded")


def check_exitcode(r):
    assert r.rc == 1
    assert r.out == ""
    assert "[exitcode] exiting with code 3" in r.err_lines
    c = r.container("exitcode")
    assert (c["exit"], c["reason"], c["restarts"]) == (3, "Error", 0)
    assert r.pod_line().startswith("pod exitcode: Failed")


def check_trap(r):
    assert r.rc == 1
    assert r.out == "[trap] about to trap\n"
    c = r.container("trap")
    assert (c["exit"], c["reason"]) == (134, "Error")
    assert "unreachable" in c["message"]
    assert r.pod_line().startswith("pod trap: Failed")


def check_spin_deadline(r):
    assert r.rc == 1
    assert r.out == "[spin] spinning\n"
    assert r.pod_line().startswith("pod spin-deadline: Failed (DeadlineExceeded")
    c = r.container("spin")
    assert c["exit"] == 137
    # About 2 s, the deadline; not much more (stopping takes milliseconds).
    assert 1.9 <= r.seconds < 3.5, r.seconds
    assert 1.0 <= c["seconds"] < 3.0  # the deadline counts from the pod's start


def check_memhog(r):
    assert r.rc == 1
    steps = [int(m.group(1)) for m in re.finditer(r"^\[memhog\] allocated (\d+) KiB$", r.out, re.M)]
    # 1 MiB steps, in order, up to about 15 MiB of the 16 MiB limit.
    assert steps == [1024 * (i + 1) for i in range(len(steps))]
    assert 12 * 1024 <= steps[-1] <= 16 * 1024, steps[-1]
    c = r.container("memhog")
    assert (c["exit"], c["reason"]) == (137, "OOMKilled")
    assert "malloc failed" not in r.err
    assert r.pod_line().startswith("pod memhog: Failed")


def check_ticker(r):
    assert r.rc == 0
    assert r.out_lines == [
        "[ticker] tick 1 hello from a pod",
        "[ticker] tick 2 hello from a pod",
        "[ticker] tick 3 hello from a pod",
    ]
    assert "[ticker] ticker started" in r.err_lines
    c = r.container("ticker")
    assert (c["exit"], c["reason"]) == (0, "Completed")
    assert 0.38 <= c["seconds"] < 1.5, c["seconds"]
    assert r.pod_line().startswith("pod ticker: Succeeded")


def check_badmodule(r):
    assert r.rc == 1
    assert r.out == ""
    c = r.container("badmodule")
    assert (c["exit"], c["reason"]) == (128, "StartError")
    assert "not a WebAssembly module" in c["message"]
    assert r.pod_line().startswith("pod badmodule: Failed")


EXPECTED = {
    "hello": check_hello,
    "printenv": check_printenv,
    "files": check_files,
    "exitcode": check_exitcode,
    "trap": check_trap,
    "spin-deadline": check_spin_deadline,
    "memhog": check_memhog,
    "ticker": check_ticker,
    "badmodule": check_badmodule,
    # crashloop never ends by itself: test_crashloop_restarts below.
    "crashloop": None,
}


def test_every_example_is_checked():
    names = {p.stem for p in (SOURCE / "examples" / "pods").glob("*.yaml")}
    assert names == set(EXPECTED), "a manifest in examples/pods has no expectation here"


@pytest.mark.parametrize("binary", binaries())
@pytest.mark.parametrize("name", [n for n, f in EXPECTED.items() if f])
def test_example(name, binary, manifests, wasmlet):
    r = wasmlet(manifests / f"{name}.yaml", binary=binary)
    r.assert_healthy()
    EXPECTED[name](r)


@pytest.mark.parametrize("binary", binaries())
def test_crashloop_restarts(binary, manifests, start_wasmlet):
    p = start_wasmlet(
        manifests / "crashloop.yaml", "--backoff-initial", "100", "--backoff-max", "400",
        binary=binary,
    )
    time.sleep(1.5)
    assert p.poll() is None, "a crash-looping pod under OnFailure must keep running"
    rc, took, out, err = stop_with(p, signal.SIGTERM, 10)
    assert took < 1.0, took
    assert rc == 1
    assert "AddressSanitizer" not in err and "runtime error" not in err, err
    # Restarts after 0, 100, 200, 400, 400 ... ms: about 5 in 1.5 s.
    fails = [l for l in err.splitlines() if l == "[crashloop] failing on purpose"]
    assert len(fails) >= 3, err
    m = re.search(r"^  crashloop: exit (\d+), (\S+), [\d.]+s, (\d+) restarts?", err, re.M)
    assert m, err
    # Stopped while waiting out its back-off (the usual case): the last run's
    # exit 1 stays; stopped while running: 137.
    assert int(m.group(1)) in (1, 137)
    restarts = int(m.group(3))
    assert 2 <= restarts <= 12, restarts
    assert len(fails) in (restarts, restarts + 1)


# --- bad manifests -------------------------------------------------------------


POD = """apiVersion: v1
kind: Pod
metadata:
  name: bad
spec:
  restartPolicy: Never
"""


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


BAD = [
    # (name, manifest text, exit status, strings the message must contain)
    ("not-a-pod", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec: {}\n", 2,
     ["kind", "Deployment"]),
    ("no-containers", POD + "  containers: []\n", 2, ["spec.containers"]),
    ("no-spec", "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n", 2, ["spec"]),
    ("missing-image-field", POD + "  containers:\n    - name: c\n", 2,
     ["spec.containers[0].image"]),
    ("unknown-volume", POD + "  volumes: [{name: v, nfsx: {}}]\n"
     "  containers: [{name: c, image: x.wasm}]\n", 2, ["unknown volume type", "nfsx"]),
    ("bad-quantity", POD + "  containers:\n    - name: c\n      image: x.wasm\n"
     "      resources: {limits: {memory: lots}}\n", 2,
     ["spec.containers[0].resources.limits.memory", "lots"]),
    ("bad-subpath", POD + "  volumes: [{name: v, emptyDir: {}}]\n"
     "  containers:\n    - name: c\n      image: x.wasm\n"
     "      volumeMounts: [{name: v, mountPath: /v, subPath: ../../etc}]\n", 2,
     ["subPath"]),
    ("invalid-yaml", "kind: Pod\nmetadata:\n  name: x\n bad: indent\n", 2, ["YAML line 4"]),
    ("invalid-json", '{"kind": "Pod", "metadata": {', 2, ["JSON"]),
    ("empty", "", 2, ["no document"]),
]


@pytest.mark.parametrize("name,text,rc,words", BAD, ids=[b[0] for b in BAD])
def test_bad_manifest(name, text, rc, words, tmp_path, wasmlet):
    path = write(tmp_path, f"{name}.yaml", text)
    r = wasmlet(path)
    r.assert_healthy()
    assert r.rc == rc, r.err
    assert r.out == ""
    for w in words:
        assert w in r.err, f"{w!r} not in {r.err!r}"
    # Refused before anything ran: no summary.
    assert not any(l.startswith("pod ") for l in r.err_lines), r.err
    # The message names the manifest.
    assert str(path) in r.err


def test_missing_image_file(tmp_path, wasmlet):
    path = write(tmp_path, "nofile.yaml",
                 POD + "  containers: [{name: c, image: does/not/exist.wasm}]\n")
    r = wasmlet(path)
    r.assert_healthy()
    assert r.rc == 1
    c = r.container("c")
    assert c["reason"] == "ErrImagePull"
    assert "does/not/exist.wasm" in c["message"]
    assert r.pod_line().startswith("pod bad: Failed")


def test_missing_manifest_and_usage(tmp_path, wasmlet):
    r = wasmlet(tmp_path / "nope.yaml")
    assert r.rc == 2
    assert "nope.yaml" in r.err
    r = wasmlet(None)  # no -f
    assert r.rc == 2
    assert "usage" in r.err
    r = wasmlet(tmp_path / "x.yaml", "--no-such-option")
    assert r.rc == 2
    r = wasmlet(None, "--help")
    assert r.rc == 0
    assert "--filename" in r.out


# --- signals ---------------------------------------------------------------------


SLEEPER = """apiVersion: v1
kind: Pod
metadata: {name: sleepy}
spec:
  restartPolicy: Always
  containers:
    - name: s
      image: %s/sleeper.wasm
      args: ["3600"]
"""


@pytest.mark.parametrize("binary", binaries())
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_signal_stops_pod(sig, binary, tmp_path, start_wasmlet):
    path = write(tmp_path, "sleepy.yaml", SLEEPER % EXAMPLES)
    p = start_wasmlet(path, binary=binary)
    wait_for_line(p.stdout, "[s] sleeping 3600", timeout=30)
    rc, took, out, err = stop_with(p, sig, timeout=10)
    assert took < 1.0, f"took {took:.3f}s to stop"
    assert rc == 1, err
    assert f"signal {int(sig)}" in err
    assert re.search(r"^  s: exit 137, ", err, re.M), err
    assert "0 restarts" in err  # a stop is not a restart
    assert "AddressSanitizer" not in err and "runtime error" not in err, err


# --- options and formats -----------------------------------------------------------


def test_json_manifest_and_multi_document(tmp_path, wasmlet):
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "js"},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "h", "image": f"{EXAMPLES}/hello.wasm"}],
        },
    }
    r = wasmlet(write(tmp_path, "pod.json", json.dumps(pod)))
    assert r.rc == 0, r.err
    assert r.out == "[h] Hello from wasmlet!\n"
    # The first document of a multi-document file is the pod.
    second = POD.replace("name: bad", "name: second") + "  containers: [{name: x, image: y}]\n"
    text = "---\n" + json.dumps(pod) + "\n---\n" + second
    r = wasmlet(write(tmp_path, "multi.yaml", text))
    assert r.rc == 0, r.err
    assert r.pod_line().startswith("pod js: Succeeded")


def test_no_prefix_and_relative_images(manifests, wasmlet, tmp_path):
    r = wasmlet(manifests / "hello.yaml", "--no-prefix")
    assert r.rc == 0
    assert r.out == "Hello from wasmlet!\n"
    # A relative image path starts at the manifest's directory, and
    # file:// works too.
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "m.wasm").write_bytes((EXAMPLES / "hello.wasm").read_bytes())
    r = wasmlet(write(tmp_path / "sub", "rel.yaml",
                      POD + "  containers:\n    - {name: a, image: m.wasm}\n"
                      f"    - {{name: b, image: 'file://{EXAMPLES}/hello.wasm'}}\n"))
    assert r.rc == 0, r.err
    assert sorted(r.out_lines) == ["[a] Hello from wasmlet!", "[b] Hello from wasmlet!"]


def test_logs_dir_and_compile_cache(manifests, wasmlet, tmp_path):
    logs, data = tmp_path / "logs", tmp_path / "shared-data"
    r = wasmlet(manifests / "hello.yaml", "--logs-dir", str(logs), data_dir=data)
    assert r.rc == 0, r.err
    log = logs / "default_hello_local" / "hello" / "0.log"
    text = log.read_text()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z stdout F Hello from wasmlet!\n",
                        text), text
    # The compiled module was cached in the data dir; the next run uses it.
    cached = list((data / "modules" / "compiled").glob("*.cwasm"))
    assert len(cached) == 1
    mtime = cached[0].stat().st_mtime_ns
    r = wasmlet(manifests / "hello.yaml", data_dir=data)
    assert r.rc == 0
    assert cached[0].stat().st_mtime_ns == mtime  # read, not rewritten


def test_cold_and_warm_start_times(manifests, wasmlet, tmp_path):
    """A warm start (module compiled before) is much faster than a cold one."""
    data = tmp_path / "timing"
    cold = wasmlet(manifests / "hello.yaml", data_dir=data)
    warm = min(wasmlet(manifests / "hello.yaml", data_dir=data).seconds for _ in range(3))
    assert cold.rc == 0
    print(f"wasmlet run hello: cold {cold.seconds * 1000:.1f} ms, warm {warm * 1000:.1f} ms")
    assert warm < cold.seconds
