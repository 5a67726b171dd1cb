"""Helpers for the tests of `wasmlet run` (tests/run/test_run.py).

The binary comes from $WASMLET_BIN (default build/wasmlet at the top of the
clone), the example modules from $WASMLET_EXAMPLES (default build/examples).
When $WASMLET_ASAN_BIN names a wasmlet built with -DWASMLET_SANITIZE=ON, the
tests marked for it also run against that binary.

Every run gets a data dir of its own under the test's temporary directory
(so the compile cache of the user is never touched) unless a test asks to
share one.
"""
import os
import pathlib
import re
import selectors
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SOURCE = pathlib.Path(os.environ.get("WASMLET_SOURCE", ROOT))
BIN = pathlib.Path(os.environ.get("WASMLET_BIN", ROOT / "build" / "wasmlet"))
EXAMPLES = pathlib.Path(os.environ.get("WASMLET_EXAMPLES", ROOT / "build" / "examples"))
ASAN_BIN = os.environ.get("WASMLET_ASAN_BIN")

# What a healthy process never prints, whatever the pod did.
SICK = re.compile(
    r"AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|runtime error:|"
    r"panicked at|Segmentation fault|core dumped|double free|stack smashing"
)


def binaries(asan=True):
    """The binaries a test runs against: always the normal one, and the
    sanitizer build when one is given."""
    bins = [pytest.param(str(BIN), id="wasmlet")]
    if asan and ASAN_BIN:
        bins.append(pytest.param(ASAN_BIN, id="asan"))
    return bins


def asan_env(binary):
    env = dict(os.environ)
    if binary == ASAN_BIN:
        # ASan's default handlers are fine: Wasmtime installs its own for
        # SIGSEGV/SIGILL/SIGBUS/SIGFPE when its engine is created (after
        # ASan's) and hands faults that are not wasm traps on to ASan. Leaks
        # are checked at exit; any report makes the exit status 99.
        env["ASAN_OPTIONS"] = "detect_leaks=1:exitcode=99"
        env["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1:exitcode=99"
        env["LSAN_OPTIONS"] = "exitcode=99"
    return env


class Run:
    """A finished `wasmlet run`: rc, stdout, stderr, seconds, and the summary
    lines (what it prints on stderr after the pod ends)."""

    def __init__(self, rc, out, err, seconds):
        self.rc, self.out, self.err, self.seconds = rc, out, err, seconds

    @property
    def out_lines(self):
        return self.out.splitlines()

    @property
    def err_lines(self):
        return self.err.splitlines()

    def pod_line(self):
        """'pod NAME: Phase ...' summary line."""
        lines = [l for l in self.err_lines if l.startswith("pod ")]
        assert len(lines) == 1, self.err
        return lines[0]

    def container_line(self, name):
        """'  [init ]NAME: exit N, Reason, 0.001s, K restarts[: message]'."""
        pat = re.compile(r"^  (init )?%s: exit " % re.escape(name))
        lines = [l for l in self.err_lines if pat.match(l)]
        assert len(lines) == 1, self.err
        return lines[0]

    def container(self, name):
        """The container summary parsed: exit code, reason, restarts, message."""
        line = self.container_line(name)
        m = re.match(
            r"^  (?:init )?\S+: exit (-?\d+), (\S+), ([\d.]+)s, (\d+) restarts?(?:: (.*))?$", line
        )
        assert m, line
        return {
            "exit": int(m.group(1)),
            "reason": m.group(2),
            "seconds": float(m.group(3)),
            "restarts": int(m.group(4)),
            "message": m.group(5) or "",
        }

    def assert_healthy(self):
        assert self.rc >= 0, f"killed by signal {-self.rc}\n{self.err}"
        assert self.rc != 99, f"sanitizer exit\n{self.err}"
        assert not SICK.search(self.err), self.err
        assert not SICK.search(self.out), self.out


def wait_for_line(stream, want, timeout):
    """Reads lines from stream until one contains want; returns the lines read."""
    sel = selectors.DefaultSelector()
    sel.register(stream, selectors.EVENT_READ)
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not sel.select(timeout=max(0.0, deadline - time.monotonic())):
            break
        line = stream.readline()
        if not line:
            break
        seen.append(line)
        if want in line:
            return seen
    raise AssertionError(f"no line with {want!r} within {timeout}s; saw {seen!r}")


def stop_with(proc, sig, timeout):
    """Sends sig and waits; returns (rc, seconds to exit, stdout rest, stderr)."""
    t0 = time.monotonic()
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, time.monotonic() - t0, out, err
