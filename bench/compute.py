"""Compute: the same CPU-bound kernel (examples/sha256.c, timed from inside
by bench/compute/kernel.c) as a native build, under a plain `wasmtime run`,
under `wasmlet run` (one pod, in-process, no cluster) and in a pod on the
wasmlet node. The kernel reports its own elapsed CLOCK_MONOTONIC time, so
every variant is timed on the same instructions, without exec, compile,
instantiation or pod machinery (those are the start-up benchmarks' job).

Runs are interleaved (native, wasmtime, wasmlet run, pod, native, ...) so
that a burst of load from elsewhere on a shared machine lands on all
variants alike; each figure is the median of the repetitions, and the
ratios divide medians. The best (minimum) run of each is kept too: on a
noisy box it is the figure least disturbed by other work.

Wall time on a shared 2-core machine measures the neighbours as much as
the code, so each run's CPU time is taken too: the process's rusage for
native, wasmtime and wasmlet run, and wasmlet's own CPU across the pod's
life for the pod. The same run with nothing to hash (`0 1`) gives each
variant's start-up CPU, which is subtracted. CPU time is not inflated by
waiting for a core, so its ratios hold when wall times are noisy; the
report gives both.

The native build uses `cc -O2`; the wasm one the flags of
examples/examples.cmake (clang --target=wasm32-wasi -O2). `wasmtime` is
the CLI of the same Wasmtime version as wasmlet's, found on PATH or in
~/.cache/wasmlet/wasmtime-cli/bin (see bench/README.md); without it, that
comparison is reported missing.
"""

import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import kit
import kubetest

BUILD = kit.EXAMPLES.parent / "bench"  # beside the build's examples/
SRC = kit.BENCH / "compute" / "kernel.c"
_NS = re.compile(r"kernel_ns (\d+)")


def wasmtime_cli():
    for cand in (shutil.which("wasmtime"),
                 Path.home() / ".cache" / "wasmlet" / "wasmtime-cli" / "bin" / "wasmtime"):
        if cand and os.access(cand, os.X_OK):
            return str(cand)
    return None


def build():
    """Builds the kernel for wasm32-wasi and natively; returns the paths."""
    BUILD.mkdir(parents=True, exist_ok=True)
    wasm, native = BUILD / "kernel.wasm", BUILD / "kernel"
    clang = shutil.which("clang") or shutil.which("clang-14")
    cc = shutil.which("cc") or shutil.which("gcc")
    subprocess.run([clang, "--target=wasm32-wasi", "-O2", "-Wall", "-Wextra", "-Werror",
                    "-Wl,--strip-all", "-o", str(wasm), str(SRC)], check=True)
    subprocess.run([cc, "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(native), str(SRC)],
                   check=True)
    return wasm, native


def kernel_ns(text):
    m = _NS.search(text)
    if not m:
        raise RuntimeError(f"no kernel_ns in output: {text[-300:]!r}")
    return int(m.group(1))


def run_process(cmd):
    """Runs cmd; returns (kernel ms as it reports, CPU ms of the process)."""
    with tempfile.TemporaryFile() as out:
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode(errors="replace")
    if p.returncode != 0:
        raise RuntimeError(f"{cmd[0]} exited {p.returncode}: {text[-300:]}")
    return kernel_ns(text) / 1e6, (ru.ru_utime + ru.ru_stime) * 1000.0


def pod_manifest(wasm, args):
    return ("apiVersion: v1\nkind: Pod\nmetadata: {name: kernel}\nspec:\n"
            "  restartPolicy: Never\n  containers:\n  - name: main\n"
            f"    image: {wasm}\n    args: [{', '.join(repr(str(a)) for a in args)}]\n")


def run(env, node, quick=False):
    wasm, native = build()
    args = ["8", "1"] if quick else ["16", "4"]
    zero = ["0", "1"]  # the same run with nothing to hash: start-up only
    reps = 3 if quick else 7
    base_reps = 1 if quick else 3
    wt = wasmtime_cli()
    wt_version = None
    if wt:
        wt_version = subprocess.run([wt, "--version"], capture_output=True,
                                    text=True).stdout.strip()
    else:
        kit.log("compute: wasmtime CLI not found (see bench/README.md); that comparison "
                "will be missing")
    manifests = {}
    for key, a in (("work", args), ("zero", zero)):
        manifests[key] = env.workdir / f"kernel-{key}.yaml"
        manifests[key].write_text(pod_manifest(wasm, a))
    run_data = env.workdir / "wasmlet-run-data"

    image = env.push("kernel", wasm.read_bytes())
    ns = kit.namespace(env, "compute")
    seq = [0]

    def in_pod(a):
        """The kernel in a pod; CPU is wasmlet's whole process over the
        pod's life (its other threads are idle meanwhile, bar the status
        writes), so the zero-work baseline subtracts the pod machinery."""
        seq[0] += 1
        name = f"kernel-{seq[0]}"
        c0 = kit.proc_cpu(node.pid)
        sent, _, st, obj = env.api.create_pod(ns, kit.pod(name, image, a, node=node.name))
        if st != 201:
            raise RuntimeError(f"create {name}: HTTP {st}: {obj}")
        kubetest.wait_for(lambda: (env.api.request(
            "GET", f"/api/v1/namespaces/{ns}/pods/{name}")[1].get("status") or {}).get(
            "phase") in ("Succeeded", "Failed"), 300, 0.02, f"{name} finished")
        c1 = kit.proc_cpu(node.pid)
        lines = kubetest.node_container_log(node, ns, name, "main")
        return kernel_ns("\n".join(lines)) / 1e6, (c1 - c0) * 1000.0

    variants = {
        "native": lambda a: run_process([str(native), *a]),
        "wasmtime": (lambda a: run_process([wt, "run", str(wasm), *a])) if wt else None,
        "wasmlet run": lambda a: run_process(
            [str(kit.WASMLET), "run", "-f", str(manifests["work" if a == args else "zero"]),
             "--data-dir", str(run_data)]),
        "pod": in_pod,
    }
    variants = {k: f for k, f in variants.items() if f}
    wall = {k: [] for k in variants}
    cpu = {k: [] for k in variants}
    base = {k: [] for k in variants}
    try:
        # One untimed run of each: compiles and caches land outside the figures.
        for f in variants.values():
            f(args)
        order = list(variants)
        for r in range(base_reps):
            for k in order:
                base[k].append(variants[k](zero)[1])
        for r in range(reps):
            kit.log(f"compute: repetition {r + 1}/{reps}")
            rot = order[r % len(order):] + order[:r % len(order)]
            for k in rot:
                w_ms, c_ms = variants[k](args)
                wall[k].append(w_ms)
                cpu[k].append(c_ms)
                time.sleep(0.1)
    finally:
        env.api.delete_pods(ns, grace=0)
        env.api.delete_namespace(ns)
    med = {k: kit.median(v) for k, v in wall.items()}
    best = {k: min(v) for k, v in wall.items()}
    base_med = {k: kit.median(v) for k, v in base.items()}
    cpu_net = {k: kit.median(v) - base_med[k] for k, v in cpu.items()}
    ratios = {}
    for ref in ("native", "wasmtime"):
        if ref in med:
            ratios[f"vs {ref}"] = {k: med[k] / med[ref] for k in med}
            ratios[f"best vs {ref}"] = {k: best[k] / best[ref] for k in best}
            ratios[f"cpu vs {ref}"] = {k: cpu_net[k] / cpu_net[ref] for k in cpu_net}
    return {"args": args, "reps": reps, "mib_hashed": int(args[0]) * int(args[1]),
            "wasmtime_cli": wt, "wasmtime_version": wt_version,
            "samples_ms": wall, "cpu_samples_ms": cpu, "cpu_baseline_ms": base_med,
            "median_ms": med, "best_ms": best, "cpu_net_ms": cpu_net, "ratios": ratios}
