"""The per-container descriptor cap under `wasmlet run`: a module that opens
one file without end (examples/files.c `hold`) is stopped at the cap with
WASI's "too many open files" (EMFILE, wasi-libc's "No file descriptors
available"), which it sees as an ordinary failed open; the cap is the
default (1024), --max-open-files, or the pod's wasmlet.dev/max-open-files.
The container's one mount (a preopen) counts toward the cap.

Components (WASI 0.2) get the same cap: the component twin of files.c sees
open-at's error-code `quota` (the preview-1 adapter's EDQUOT, wasi-libc's
"Quota exceeded"), and wasi:sockets socket creation is refused with
`new-socket-limit` (examples/components/tcp-client.c `sockets`)."""
import pytest

from runhelp import EXAMPLES, binaries

EMFILE = "open: No file descriptors available"


def pod(tmp_path, annotation=None, count=3000, image="files.wasm", args=None):
    d = tmp_path / "d"
    d.mkdir(exist_ok=True)
    (d / "f").write_text("x")
    ann = f"  annotations: {{wasmlet.dev/max-open-files: \"{annotation}\"}}\n" if annotation else ""
    m = tmp_path / "pod.yaml"
    m.write_text(f"""apiVersion: v1
kind: Pod
metadata:
  name: holder
{ann}spec:
  restartPolicy: Never
  containers:
  - name: app
    image: {EXAMPLES}/{image}
    args: {args or ["hold", "/d/f", str(count), "0"]}
    volumeMounts: [{{name: d, mountPath: /d}}]
  volumes: [{{name: d, hostPath: {{path: {d}, type: Directory}}}}]
""")
    return m


@pytest.mark.parametrize("binary", binaries())
def test_default_cap(wasmlet, tmp_path, binary):
    r = wasmlet(pod(tmp_path), "--no-prefix", binary=binary)
    r.assert_healthy()
    assert r.rc == 0, r.err
    assert r.out_lines == ["held 1023", EMFILE], r.out


def test_annotation_and_flag(wasmlet, tmp_path):
    r = wasmlet(pod(tmp_path, annotation="40"), "--no-prefix", "--max-open-files", "5000")
    assert r.rc == 0, r.err
    assert r.out_lines == ["held 39", EMFILE], r.out
    r = wasmlet(pod(tmp_path), "--no-prefix", "--max-open-files", "100")
    assert r.out_lines == ["held 99", EMFILE], r.out
    # 0: no cap.
    r = wasmlet(pod(tmp_path, count=3000), "--no-prefix", "--max-open-files", "0")
    assert r.out_lines == ["held 3000"], r.out


def test_bad_annotation_is_a_config_error(wasmlet, tmp_path):
    r = wasmlet(pod(tmp_path, annotation="lots"), "--no-prefix")
    assert r.rc == 1
    c = r.container("app")
    assert c["reason"] == "CreateContainerConfigError", r.err
    assert "wasmlet.dev/max-open-files" in r.err, r.err


def test_component_twin(wasmlet, tmp_path):
    r = wasmlet(pod(tmp_path, annotation="40", image="files.component.wasm"), "--no-prefix")
    r.assert_healthy()
    assert r.rc == 0, r.err
    assert r.out_lines == ["held 39", "open: Quota exceeded"], r.out
    # Past the preview-1 adapter's own descriptor table (128 with stdio),
    # the adapter refuses first (ENOMEM), whatever wasmlet's cap.
    r = wasmlet(pod(tmp_path, image="files.component.wasm"), "--no-prefix")
    assert r.out_lines == ["held 124", "open: Out of memory"], r.out


def test_component_sockets(wasmlet, tmp_path):
    r = wasmlet(pod(tmp_path, annotation="6", image="tcp-client.component.wasm",
                    args=["sockets", "50"]), "--no-prefix")
    r.assert_healthy()
    # The mount's preopen is not opened: tcp-client touches no file.
    assert r.out_lines == ["sockets 6"], r.out
    assert "tcp-client: socket: new-socket-limit" in r.err, r.err
    assert r.rc == 1, r.err
    r = wasmlet(pod(tmp_path, image="tcp-client.component.wasm", args=["sockets", "50"]),
                "--no-prefix")
    assert r.rc == 0, r.err
    assert r.out_lines == ["sockets 50"], r.out
