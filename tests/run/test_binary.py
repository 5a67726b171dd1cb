"""What a `wasmlet run` process pays for at exec: the shared objects the
binary needs. libcurl (and the ~27 libraries behind it: GnuTLS, Kerberos,
LDAP, ...) is loaded only when HTTP is first used (src/util/curl_dl.c), so
it must not be a NEEDED entry; and a run of a module or component must not
map it either."""
import subprocess

from runhelp import BIN, EXAMPLES


def needed(path):
    out = subprocess.run(["readelf", "-d", str(path)], capture_output=True, text=True,
                         check=True).stdout
    return [line.split("[", 1)[1].rstrip("]") for line in out.splitlines()
            if "(NEEDED)" in line]


def test_libcurl_is_not_linked():
    libs = needed(BIN)
    assert libs, "readelf found no NEEDED entry"
    assert not [lib for lib in libs if "curl" in lib], libs
    assert len(libs) <= 12, libs


def test_a_run_does_not_load_libcurl(tmp_path):
    for image in ("hello.wasm", "hello.component.wasm"):
        manifest = tmp_path / "pod.yaml"
        manifest.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: hello}\nspec:\n"
                            "  restartPolicy: Never\n"
                            f"  containers: [{{name: hello, image: {EXAMPLES / image}}}]\n")
        # LD_DEBUG=files names every object the loader maps, dlopen included.
        p = subprocess.run([str(BIN), "run", "-f", str(manifest), "--data-dir",
                            str(tmp_path / "data")], capture_output=True, text=True,
                           timeout=60, env={"LD_DEBUG": "files", "PATH": "/usr/bin:/bin"})
        assert p.returncode == 0, p.stderr[-2000:]
        assert "Hello from wasmlet!" in p.stdout
        assert "file=libcurl" not in p.stderr
        assert "file=libjansson" in p.stderr  # the trace did record the loads
