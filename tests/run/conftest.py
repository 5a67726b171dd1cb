"""Fixtures for the tests of `wasmlet run` (helpers in runhelp.py)."""
import subprocess
import time

import pytest

from runhelp import BIN, EXAMPLES, SOURCE, Run, asan_env


@pytest.fixture
def manifests(tmp_path):
    """A copy of examples/pods/ whose image paths point at $WASMLET_EXAMPLES,
    so the tests run against any build directory."""
    out = tmp_path / "pods"
    out.mkdir()
    for src in sorted((SOURCE / "examples" / "pods").glob("*.yaml")):
        text = src.read_text().replace("../../build/examples/", str(EXAMPLES) + "/")
        (out / src.name).write_text(text)
    return out


@pytest.fixture
def wasmlet(tmp_path):
    """run(manifest, *args, binary=..., timeout=..., data_dir=...) -> Run."""

    def run(manifest, *args, binary=None, timeout=60, data_dir=None, env=None):
        binary = binary or str(BIN)
        e = asan_env(binary)
        e["WASMLET_DATA"] = str(data_dir or (tmp_path / "data"))
        if env:
            e.update(env)
        cmd = [binary, "run"] + (["-f", str(manifest)] if manifest is not None else []) + list(args)
        t0 = time.monotonic()
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=e)
        return Run(p.returncode, p.stdout, p.stderr, time.monotonic() - t0)

    return run


@pytest.fixture
def start_wasmlet(tmp_path):
    """Starts `wasmlet run` in the background; returns the Popen (text mode,
    stdout/stderr piped). Every process is killed at the end of the test."""
    procs = []

    def start(manifest, *args, binary=None):
        binary = binary or str(BIN)
        e = asan_env(binary)
        e["WASMLET_DATA"] = str(tmp_path / "data")
        p = subprocess.Popen(
            [binary, "run", "-f", str(manifest)] + list(args),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=e,
        )
        procs.append(p)
        return p

    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()
