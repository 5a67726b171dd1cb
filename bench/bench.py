#!/usr/bin/env python3
"""wasmlet's benchmarks, end to end: bring up a dedicated control plane on
free loopback ports in a temp dir, start wasmlet nodes, run the parts, keep
raw data in bench/results/raw/, write bench/results/report.md and its plots,
and take everything down again.

    bench/bench.py [--quick] [--parts floor,latency,compute,churn,http,density,density-net]
    bench/bench.py --report-only      # re-render from the raw data

bench/run.sh is the documented entry point (it builds first). --quick is a
smoke run (~2 min): fewer pods and repetitions, same code paths.
"""

import argparse
import os
import platform
import subprocess
import sys
import time
import traceback

import kit

PARTS = ["floor", "latency", "compute", "churn", "http", "density", "density-net"]
# Runs of their own, outside bench/run.sh's budget: how far one node goes.
# Their raw data stays beside the bench's, and the report quotes it.
SCALE_PARTS = ["scale", "scale-net"]


def machine():
    model = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kib = None
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    except OSError:
        pass
    commit = subprocess.run(["git", "-C", str(kit.REPO), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(kit.REPO), "status", "--porcelain", "--", "src"],
                           capture_output=True, text=True).stdout.strip()
    version = subprocess.run([str(kit.WASMLET), "version"], capture_output=True,
                             text=True).stdout.strip()
    return {"cpu": model, "cores": os.cpu_count(), "mem_gib": round((mem_kib or 0) / 2**20, 1),
            "kernel": platform.release(), "python": platform.python_version(),
            "commit": commit + (" (src/ modified)" if dirty else ""), "wasmlet": version}


def run_part(name, fn, quick):
    kit.log(f"== {name}")
    t0 = time.monotonic()
    load0 = kit.loadavg()
    try:
        data = fn()
        err = None
    except Exception as e:  # noqa: BLE001 - one failed part must not lose the others
        data, err = None, f"{type(e).__name__}: {e}"
        kit.log(f"{name} failed: {err}\n{traceback.format_exc()}")
    out = {"part": name, "quick": quick, "error": err, "data": data,
           "loadavg_start": load0, "loadavg_end": kit.loadavg(),
           "wall_s": time.monotonic() - t0, "at": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    kit.save_raw(name, out)
    kit.log(f"== {name} done in {out['wall_s']:.0f}s (load {load0[0]:.1f} -> "
            f"{out['loadavg_end'][0]:.1f})")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run, ~2 min")
    ap.add_argument("--parts", default=",".join(PARTS), help="comma-separated subset")
    ap.add_argument("--report-only", action="store_true", help="re-render the report")
    ap.add_argument("--cluster-dir", help="use this running cluster.sh cluster (development)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (logs)")
    a = ap.parse_args()

    import report  # noqa: PLC0415 - only needed at the end

    if a.report_only:
        report.write()
        return 0
    parts = [p for p in a.parts.split(",") if p]
    for p in parts:
        if p not in PARTS + SCALE_PARTS:
            ap.error(f"unknown part {p!r} (parts: {', '.join(PARTS + SCALE_PARTS)})")
    for p in ("density-net", "scale-net"):
        if p in parts and os.geteuid() != 0:
            kit.log(f"{p} left out: pod networking needs root")
            parts.remove(p)
    scale_only = bool(parts) and set(parts) <= set(SCALE_PARTS)
    if not os.access(kit.WASMLET, os.X_OK):
        ap.error(f"{kit.WASMLET} is not built (cmake --build build, or bench/run.sh)")

    t_start = time.monotonic()
    meta = {"machine": machine(), "quick": a.quick, "parts": parts,
            "loadavg_start": kit.loadavg(), "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    kit.RAW.mkdir(parents=True, exist_ok=True)
    for p in parts:  # stale data of a part not run now must not reach the report
        (kit.RAW / f"{p}.json").unlink(missing_ok=True)
        (kit.RAW / f"{p}-other.json").unlink(missing_ok=True)
    kit.log(f"load average at start: {meta['loadavg_start']}")
    env = kit.Env(keep=a.keep, cluster_dir=a.cluster_dir)
    try:
        env.up()
        node = None
        if {"latency", "compute", "churn", "http"} & set(parts):
            node = env.start_node("bench-node", max_pods=1100)
        import apifloor  # noqa: PLC0415
        import latency  # noqa: PLC0415

        def pair(suffix):
            """The floor, the latency part, then the floor once more, so that
            the floor and wasmlet's figures share the machine's ups and downs
            (a shared machine's load moves within minutes). Saved as
            floor<suffix> and latency<suffix>; returns the mean load."""
            loads = []
            if "floor" in parts:
                f = run_part("floor" + suffix, lambda: apifloor.run(env, quick=a.quick),
                             a.quick)
                loads += [f["loadavg_start"][0], f["loadavg_end"][0]]
            if "latency" in parts:
                lt = run_part("latency" + suffix,
                              lambda: latency.run(env, node, quick=a.quick), a.quick)
                loads += [lt["loadavg_start"][0], lt["loadavg_end"][0]]
            first = kit.load_raw("floor" + suffix)
            if "floor" in parts and "latency" in parts and not a.quick and first["data"]:
                after = run_part("floor-after", lambda: apifloor.run(
                    env, quick=a.quick, rounds=2, tag="a" + suffix), a.quick)
                loads += [after["loadavg_end"][0]]
                if after["data"]:
                    first["data"] = apifloor.merge(first["data"], after["data"])
                    first["loadavg_after"] = after["loadavg_start"]
                    kit.save_raw("floor" + suffix, first)
                (kit.RAW / "floor-after.json").unlink(missing_ok=True)
            return sum(loads) / len(loads) if loads else 0.0

        load1 = None
        if {"floor", "latency"} & set(parts):
            load1 = pair("")
        if "compute" in parts:
            import compute  # noqa: PLC0415
            run_part("compute", lambda: compute.run(env, node, quick=a.quick), a.quick)
        if "churn" in parts:
            import churn  # noqa: PLC0415
            run_part("churn", lambda: churn.run(env, node, quick=a.quick), a.quick)
        if "http" in parts:
            import serving  # noqa: PLC0415
            run_part("http", lambda: serving.run(env, node, quick=a.quick), a.quick)
        if load1 is not None and not a.quick and load1 > 1.5 * (os.cpu_count() or 2):
            # A busy machine makes start latency the noisiest figure: measure
            # the pair once more at the end; the report takes the quieter one
            # and quotes the other.
            kit.log(f"latency and floor ran at load {load1:.1f}: running them again")
            load2 = pair("-2")
            keep, other = ("-2", "") if load2 < load1 else ("", "-2")
            for p in ("floor", "latency"):
                k, o = kit.load_raw(p + keep), kit.load_raw(p + other)
                for raw, load in ((k, min(load1, load2)), (o, max(load1, load2))):
                    if raw:
                        raw["pair_load"] = load
                if k:
                    kit.save_raw(p, k)
                if o:
                    kit.save_raw(p + "-other", o)
                (kit.RAW / f"{p}-2.json").unlink(missing_ok=True)
        if node:
            env.stop_node(node)
        if {"density", "density-net", *SCALE_PARTS} & set(parts):
            import density  # noqa: PLC0415
        if "density" in parts:
            run_part("density", lambda: density.run(env, quick=a.quick), a.quick)
        if "density-net" in parts:
            run_part("density-net", lambda: density.run(env, quick=a.quick, network=True),
                     a.quick)
        if "scale" in parts:
            top = int(os.environ.get("BENCH_SCALE_PODS", 10000))
            run_part("scale", lambda: density.run_scale(env, top, network=False), a.quick)
        if "scale-net" in parts:
            top_net = int(os.environ.get("BENCH_SCALE_NET_PODS", 5000))
            run_part("scale-net", lambda: density.run_scale(env, top_net, network=True),
                     a.quick)
    finally:
        env.close()
    meta["wall_s"] = time.monotonic() - t_start
    meta["loadavg_end"] = kit.loadavg()
    if not scale_only:  # the report's header describes the bench run, not a scale run
        kit.save_raw("meta", meta)
    path = report.write()
    kit.log(f"done in {meta['wall_s']:.0f}s: {path}")
    failed = [p for p in parts if (kit.load_raw(p) or {}).get("error")]
    if failed:
        kit.log(f"parts that failed: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
