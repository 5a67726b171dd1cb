"""The WASI preview 2 component workloads were built, and are components.

examples/examples.cmake builds a component twin of every example and the
preview-2 programs of examples/components/ when the component toolchain
(scripts/tools.sh) is installed; scripts/test.sh runs set-up first, so in CI
a missing component is a build failure, not something to skip. Each file must
start with the component preamble (the wasm magic, then version 0x0d 0x00
and layer 0x01 0x00); a core module (layer 0) or a truncated write fails.
"""
import pytest

from runhelp import EXAMPLES, SOURCE

COMPONENT_PREAMBLE = b"\0asm\x0d\x00\x01\x00"

# Every examples/*.c but imports.c (a core import module cannot be adapted).
TWINS = sorted(p.stem for p in (SOURCE / "examples").glob("*.c") if p.stem != "imports")
PROGRAMS = sorted(p.stem for p in (SOURCE / "examples" / "components").glob("*.c"))
BAD = ["component-truncated", "component-keyvalue", "component-wasi03"]


def test_the_lists_are_not_empty():
    assert "hello" in TWINS and "reactor" in TWINS
    assert {"tcp-echo", "tcp-client", "udp-echo", "lookup", "http-get", "http-hello"} <= set(PROGRAMS)


@pytest.mark.parametrize("name", TWINS + PROGRAMS)
def test_component_built(name):
    path = EXAMPLES / f"{name}.component.wasm"
    assert path.is_file(), f"{path} was not built (is the component toolchain installed?)"
    data = path.read_bytes()
    assert data[:8] == COMPONENT_PREAMBLE, f"{path} is not a component: {data[:8]!r}"
    # More than the preamble: a real component carries its core module.
    assert len(data) > 1000


@pytest.mark.parametrize("name", TWINS)
def test_twin_core_module_is_a_module(name):
    """The twin's core module beside it stays a core module (version 1)."""
    data = (EXAMPLES / f"{name}.wasm").read_bytes()
    assert data[:8] == b"\0asm\x01\x00\x00\x00"


@pytest.mark.parametrize("name", BAD)
def test_bad_component_built(name):
    path = EXAMPLES / "bad" / f"{name}.wasm"
    assert path.is_file(), f"{path} was not built"
    assert path.read_bytes()[:8] == COMPONENT_PREAMBLE


def test_truncated_component_is_shorter_than_hello():
    whole = (EXAMPLES / "hello.component.wasm").stat().st_size
    cut = (EXAMPLES / "bad" / "component-truncated.wasm").stat().st_size
    assert 0 < cut < whole
