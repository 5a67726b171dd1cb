"""Renders bench/results/report.md and its PNG plots (gnuplot, pngcairo)
from the raw data in bench/results/raw/*.json. Run on its own with
`bench/bench.py --report-only` to re-render without measuring.

Every figure in the report is computed here from the raw data; nothing is
typed in by hand, so a re-run rewrites the whole report, verdicts included.
"""

import shutil
import subprocess
import time

import kit

OUT = kit.RESULTS
STAGE_LABELS = {
    "create": "create (POST)",
    "schedule": "schedule",
    "deliver": "watch to wasmlet",
    "volumes": "volumes (token)",
    "pull": "pull",
    "load": "env + load",
    "status": "status PATCH",
}


# The breakdown of a pod start from wasmlet's own start trace (latency.py);
# "instantiate" runs beside "status write" and is left out of the sums.
TRACE_LABELS = {
    "create": "create (POST)",
    "schedule": "schedule",
    "watch": "watch delivery",
    "admission": "admission",
    "sandbox": "sandbox",
    "volumes": "volumes",
    "pull": "pull",
    "load": "load",
    "other": "other (env, threads, events)",
    "status": "status write",
    "to_watch": "to our watch",
}


def fmt(v, unit="", digits=0):
    if v is None:
        return "n/a"
    return f"{v:.{digits}f}{unit}"


def verdict(ok):
    if ok is None:
        return "not measured"
    return "**met**" if ok else "**not met**"


# -- gnuplot --------------------------------------------------------------------------

def gnuplot(name, script, data):
    """Writes data files and runs a gnuplot script producing OUT/name.png;
    returns the file name or None when gnuplot is missing or fails."""
    if not shutil.which("gnuplot"):
        return None
    kit.RAW.mkdir(parents=True, exist_ok=True)
    for fname, text in data.items():
        (kit.RAW / fname).write_text(text)
    head = (f"set terminal pngcairo size 900,520 font 'Sans,10'\n"
            f"set output '{OUT / (name + '.png')}'\nset datafile separator '\\t'\n"
            f"cd '{kit.RAW}'\nset grid ytics lc rgb '#dddddd'\nset border 3\n"
            "set tics nomirror\nset key noautotitle\n")
    p = subprocess.run(["gnuplot"], input=head + script, capture_output=True, text=True)
    if p.returncode != 0:
        kit.log(f"gnuplot {name}: {p.stderr.strip()[-400:]}")
        return None
    return name + ".png"


def q(s):
    return s.replace("'", "")


def plot_cdf(lat, floor):
    series = []
    cells = (lat or {}).get("cells", {})
    for key, label in (("hello/burst/warm", "wasmlet, hello, warm"),
                       ("ticker/burst/warm", "wasmlet, ticker, warm"),
                       ("ticker/burst/cold", "wasmlet, ticker, first pull"),
                       ("ticker-lean/burst/warm", "wasmlet, ticker in a lean pod, warm")):
        if key in cells:
            vals = [r["e2e_ms"] for rnd in cells[key]["rounds"] for r in rnd
                    if not r.get("missing")]
            series.append((label, vals))
    fcells = (floor or {}).get("cells", {})
    if "burst/scheduled" in fcells:
        vals = [r["e2e_ms"] for rnd in fcells["burst/scheduled"]["rounds"] for r in rnd
                if not r.get("missing")]
        series.append(("control-plane floor (no kubelet work)", vals))
    if "burst/scheduled+token" in fcells:
        vals = [r["e2e_ms"] for rnd in fcells["burst/scheduled+token"]["rounds"] for r in rnd
                if not r.get("missing")]
        series.append(("control-plane floor with a TokenRequest per pod", vals))
    if not series:
        return None
    data, plots = {}, []
    for i, (label, vals) in enumerate(series):
        vals = sorted(vals)
        n = len(vals)
        data[f"cdf{i}.tsv"] = "".join(f"{v:.3f}\t{(k + 1) / n:.5f}\n" for k, v in enumerate(vals))
        plots.append(f"'cdf{i}.tsv' using 1:2 with steps lw 2 title '{q(label)}'")
    burst = (lat or {}).get("burst", 100)
    script = (f"set title 'Pod start latency, {burst} pods created at once (all rounds pooled)'\n"
              "set xlabel 'creation (client send) to all containers started, seen by a watch"
              " (ms)'\nset ylabel 'fraction of pods'\nset key bottom right\n"
              "set yrange [0:1.02]\nset xrange [0:*]\n"
              "set arrow from graph 0, first 0.5 to graph 1, first 0.5 nohead dt 3 "
              "lc rgb '#999999'\n"
              "set arrow from graph 0, first 0.99 to graph 1, first 0.99 nohead dt 3 "
              "lc rgb '#999999'\n"
              "plot " + ", ".join(plots) + "\n")
    return gnuplot("latency_cdf", script, data)


def plot_breakdown(lat):
    cells = (lat or {}).get("cells", {})
    rows = []
    for key, label in (("hello/seq/warm", "hello 1 at a time warm"),
                       ("ticker/seq/warm", "ticker 1 at a time warm"),
                       ("hello/seq/cold", "hello 1 at a time cold"),
                       ("ticker/seq/cold", "ticker 1 at a time cold"),
                       ("hello/burst/warm", "hello burst warm"),
                       ("ticker/burst/warm", "ticker burst warm"),
                       ("hello/burst/cold", "hello burst cold"),
                       ("ticker/burst/cold", "ticker burst cold"),
                       ("ticker-lean/seq/warm", "lean ticker 1 at a time"),
                       ("ticker-lean/burst/warm", "lean ticker burst"),
                       ("ticker-net/seq/warm", "ticker with a sandbox 1 at a time"),
                       ("ticker-net/burst/warm", "ticker with a sandbox burst")):
        if key in cells:
            st = cells[key]["summary"].get("trace_p50") or {}
            rows.append((label, [max(0.0, st.get(s) or 0.0) for s in TRACE_LABELS]))
    if not rows:
        return None
    header = "cell\t" + "\t".join(TRACE_LABELS.values()) + "\n"
    body = "".join(f"{label}\t" + "\t".join(f"{v:.2f}" for v in vals) + "\n"
                   for label, vals in rows)
    ncol = len(TRACE_LABELS)
    script = ("set title 'Where a pod start goes: median of each stage (ms)'\n"
              "set style data histograms\nset style histogram rowstacked\n"
              "set style fill solid 0.85 border -1\nset boxwidth 0.7\n"
              "set key outside right top vertical title 'stage' autotitle columnheader\n"
              "set xtics rotate by -30 left\nset ylabel 'ms (median per stage)'\n"
              "set yrange [0:*]\nset bmargin 7\n"
              f"plot for [i=2:{ncol + 1}] 'breakdown.tsv' using i:xtic(1)\n")
    return gnuplot("latency_breakdown", script, {"breakdown.tsv": header + body})


def plot_density(dens):
    if not dens or not dens.get("levels"):
        return None
    lv = dens["levels"]
    body = "".join(f"{x['pods']}\t{x['rss_kib'] / 1024:.2f}\t{x['threads']}\n" for x in lv)
    lin = dens.get("linear_memory_bytes", 0) / 2**20
    idle = lv[0]["rss_kib"] / 1024
    script = ("set title 'wasmlet resident memory with N idle long-running pods (ticker)'\n"
              "set xlabel 'running pods on the node'\nset ylabel 'wasmlet VmRSS (MiB)'\n"
              "set key top left\nset xrange [0:*]\nset yrange [0:*]\n"
              "set offsets 0, graph 0.1, graph 0.1, 0\n"
              f"plot 'density.tsv' using 1:2 with linespoints lw 2 pt 7 title 'measured RSS', "
              f"{idle:.3f} + x * {lin:.5f} with lines dt 2 lc rgb '#888888' "
              f"title 'idle + linear memory only ({lin * 1024:.0f} KiB/pod)', "
              "'' using 1:2:(sprintf('%.0f MiB', $2)) with labels offset 3,1 notitle\n")
    return gnuplot("density", script, {"density.tsv": body})


def plot_churn(ch):
    if not ch or not ch.get("steps"):
        return None
    steps = ch["steps"]
    body = "".join(f"{s['offered_rate']}\t{s['sustained_rate'] or 0:.2f}\t"
                   f"{(s['to_succeeded_ms'].get('p50') or 0):.1f}\n" for s in steps)
    top = max(s["offered_rate"] for s in steps)
    script = ("set title 'Churn: hello pods created, run to completion and deleted'\n"
              "set xlabel 'offered rate (pods/s)'\nset ylabel 'sustained completions (pods/s)'\n"
              "set y2label 'median create to Succeeded (ms, log)'\nset y2tics\nset logscale y2\n"
              f"set xrange [0:{top * 1.1:.0f}]\nset yrange [0:{top * 1.1:.0f}]\n"
              "set key top left\n"
              "plot x with lines dt 2 lc rgb '#888888' title 'keeping up (y = x)', "
              "'churn.tsv' using 1:2 with linespoints lw 2 pt 7 title 'sustained rate', "
              "'' using 1:3 axes x1y2 with linespoints lw 2 pt 5 title 'median latency'\n")
    a = gnuplot("churn", script, {"churn.tsv": body})
    keys = ["wasmlet", "kube-apiserver", "etcd", "kube-scheduler", "kube-controller-manager",
            "bench client", "others"]
    body = "rate\t" + "\t".join(keys) + "\n" + "".join(
        f"{s['offered_rate']}/s\t" + "\t".join(f"{s['cpu']['share'].get(k, 0):.3f}" for k in keys)
        + "\n" for s in steps)
    script = ("set title 'Churn: CPU by process during each step (cores; the machine has "
              f"{steps[0]['cpu'].get('cores', 2)})'\n"
              "set style data histograms\nset style histogram rowstacked\n"
              "set style fill solid 0.85 border -1\nset boxwidth 0.6\n"
              "set key outside right top vertical autotitle columnheader\n"
              "set ylabel 'cores busy'\nset xlabel 'offered rate'\nset yrange [0:*]\n"
              f"plot for [i=2:{len(keys) + 1}] 'churn_cpu.tsv' using i:xtic(1)\n")
    b = gnuplot("churn_cpu", script, {"churn_cpu.tsv": body})
    return a, b


def plot_compute(comp):
    if not comp or not comp.get("median_ms"):
        return None
    med = comp["median_ms"]
    order = [k for k in ("native", "wasmtime", "wasmlet run", "pod") if k in med]
    base = med.get("wasmtime") or med.get("native")
    body = "".join(f"{k}\t{med[k]:.1f}\t{med[k] / base:.2f}x\n" for k in order)
    cpu = comp.get("cpu_net_ms") or {}
    cbase = cpu.get("wasmtime") or cpu.get("native")
    body2 = "".join(f"{k}\t{cpu[k]:.1f}\t{cpu[k] / cbase:.2f}x\n" for k in order if k in cpu)
    ref = "wasmtime run" if "wasmtime" in med else "native"
    script = (f"set title 'sha256 of {comp['mib_hashed']} MiB: median of {comp['reps']} runs, "
              f"ratio to {ref}'\n"
              "set style fill solid 0.8 border -1\nset boxwidth 0.35\n"
              "set ylabel 'ms'\nset yrange [0:*]\nset key top left\n"
              "plot 'compute.tsv' using 0:(NaN):xtic(1) notitle, "
              "'' using ($0-0.2):2 with boxes lc rgb '#4a7ab5' "
              "title 'wall (in-module clock)', '' using ($0-0.2):2:3 with labels offset 0,1, "
              "'compute_cpu.tsv' using ($0+0.2):2 with boxes lc rgb '#e0a030' "
              "title 'CPU time, net of start-up', '' using ($0+0.2):2:3 with labels "
              "offset 0,1\n")
    return gnuplot("compute", script, {"compute.tsv": body, "compute_cpu.tsv": body2})


# -- the report -----------------------------------------------------------------------

def part(name):
    raw = kit.load_raw(name)
    if not raw:
        return None, None
    return raw.get("data"), raw


def sandbox_growth(w, text):
    """bench/sandbox/run.sh N -t: a create's and a destroy's time, and each
    plugin call's, by fifth of N sandboxes held."""
    rows = {}
    n = None
    for line in text.splitlines():
        words = line.split()
        kv = dict(x.split("=", 1) for x in words[1:] if "=" in x)
        if "medians_by_fifth" not in kv:
            continue
        n = int(kv["n"]) if words[0] == "sandbox_create_us" else n
        rows[words[0]] = [int(v) / 1000 for v in kv["medians_by_fifth"].split(",")]
    if "sandbox_create_us" not in rows or not n:
        return
    w("### How a sandbox's cost grows with the sandboxes already there\n")
    w(f"`bench/sandbox/run.sh BUILD {n} -t`, in this report's run: {n} sandboxes made one "
      "after the other and held, then destroyed in the order made; each figure is the "
      "median (ms) over a fifth of them. Every plugin call goes through a timing wrapper "
      "(a shell and two `date` calls, a few ms each, included in all figures of this "
      "table); the IPAM plugin (static, with wasmlet's addresses; host-local before) runs "
      "inside ptp, so ptp's time includes it.\n")
    fifth = n // 5
    w(f"A create in the k-th fifth found (k-1) x {fifth} sandboxes there; a destroy in the "
      f"k-th fifth left (5-k) x {fifth} behind it.\n")
    heads = [f"fifth {k + 1}" for k in range(5)]
    w("| call | " + " | ".join(heads) + " | last / first |")
    w("|---|" + "---|" * 6)
    order = [("sandbox_create_us", "create (namespace + CNI ADD)"),
             ("sandbox_destroy_us", "destroy (CNI DEL + unmount)")]
    for plugin in ("ptp", "static", "host-local", "loopback", "portmap"):
        for cmd in ("ADD", "DEL"):
            order.append((f"plugin_{plugin}_{cmd}_us", f"{plugin} {cmd}"))
    for key, label in order:
        v = rows.get(key)
        if not v or len(v) != 5:
            continue
        ratio = v[4] / v[0] if v[0] else 0
        w(f"| {label} | " + " | ".join(f"{x:.1f}" for x in v) + f" | {ratio:.2f}x |")
    w("")
    hl = rows.get("plugin_host-local_ADD_us")
    if hl and len(hl) == 5:
        per_k = (hl[4] - hl[0]) / (4 * fifth) * 1000
        w(f"host-local's ADD grew by {per_k:.1f} ms per 1,000 leases held: its store keeps "
          "one file per lease, and each ADD and DEL reads every one of them to find the "
          "container's own (its disk store's GetByID and ReleaseByID walk the directory). "
          "At 5,000 pods that alone is about "
          f"{hl[0] + per_k * 5:.0f} ms per ADD, and as much per DEL.\n")
    st, add = rows.get("plugin_static_ADD_us"), rows.get("sandbox_create_us")
    if st and len(st) == 5 and add:
        w(f"The default config's IPAM is the static plugin with addresses wasmlet hands out "
          f"(net/ipam.c): its ADD took {st[0]:.1f} ms with none held and {st[4]:.1f} ms with "
          f"{4 * fifth} held; a whole create {add[0]:.1f} and {add[4]:.1f} ms. host-local, "
          "its IPAM before, read every lease file on each ADD and DEL: 13 ms more per "
          "1,000 pods held when it was measured here.\n")


def burst_cpu(w, cells):
    """CPU in the warm bursts' windows (the first POST to the watch seeing
    every pod started): by process, and wasmlet's by thread name. Medians
    over each cell's rounds, in seconds of CPU per round."""
    rows = [(k, c["cpu"]) for k, c in cells.items() if c.get("cpu")]
    if not rows:
        return
    med = kit.median
    w("### CPU in the burst window\n")
    w("CPU seconds used from a burst's first POST to the watch seeing its last pod started "
      "(wasmlet's threads by the name each has, `top -H` shows them too; *(ended)*: "
      "threads that ended within the window, such as the TokenRequests' own; *ctr:\\**: "
      "the containers' threads). On 2 cores a window of t seconds holds at most 2t CPU "
      "seconds; what the table leaves out went to the bench's own client and the machine's other "
      "processes. Medians over "
      "the cell's rounds.\n")
    comps = ["kube-apiserver", "etcd", "kube-scheduler", "kube-controller-manager"]
    w("| cell | window | " + " | ".join(comps) + " | wasmlet | wasmlet's threads, most first |")
    w("|---|---|" + "---|" * (len(comps) + 2))
    for key, cpus in rows:
        threads = {}
        for c in cpus:
            for name in c["wasmlet_threads"]:
                threads[name] = med([x["wasmlet_threads"].get(name, 0.0) for x in cpus])
        top = sorted(threads.items(), key=lambda kv: -kv[1])[:6]
        w(f"| {key} | {med([c['window_s'] for c in cpus]):.2f} s | "
          + " | ".join(f"{med([c['components'].get(k, 0.0) for c in cpus]):.2f}" for k in comps)
          + f" | {med([c['wasmlet'] or 0.0 for c in cpus]):.2f} | "
          + ", ".join(f"{n} {v:.2f}" for n, v in top) + " |")
    w("")


def sandbox_share(w, cell):
    """The network sandbox's share of pod start: the ticker-net cells'
    sandbox stage against their start latency and the node's share, and
    against the same pods without a sandbox."""
    lines = []
    for mode, how in (("seq", "one at a time"), ("burst", "at once")):
        net, plain = cell(f"ticker-net/{mode}/warm"), cell(f"ticker/{mode}/warm")
        if not net:
            continue
        tp = net.get("trace_p50") or {}
        sb, node, e2e = tp.get("sandbox"), tp.get("node"), net["e2e"]["p50"]
        if sb is None or not e2e:
            continue
        line = (f"{how}: sandbox {sb:.1f} ms of {e2e:.1f} ms pod start at p50 "
                f"({100 * sb / e2e:.1f}%)")
        if node:
            line += f", {100 * sb / node:.1f}% of the node's share ({node:.1f} ms)"
        if plain:
            line += (f"; the same pods without a port start in {plain['e2e']['p50']:.1f} ms "
                     "at p50")
        lines.append(line)
    if lines:
        w("**The network sandbox's share of pod start** (ticker-net cells, from the trace's "
          "*sandbox* stage: the namespace, its bind mount and the CNI ADD of ptp "
          "and its IPAM; portmap runs only for a hostPort, which these pods lack): " + "; ".join(lines) + ".\n")


def density_section(w, dens, dens_raw, title, img):
    """The density part's section (with pod networking on or off)."""
    w(f"## {title}\n")
    w(f"Part run at {dens_raw['at']}, load average {dens_raw['loadavg_start'][0]:.2f} -> "
      f"{dens_raw['loadavg_end'][0]:.2f}.\n")
    w(f"A fresh node (`--max-pods {dens['steps'][-1] + 100}`) that has run one pod and seen "
      "it go (the baseline of a node in service: its module compiled and loaded, its API "
      "connections open), then filled with idle ticker pods "
      "(`ticker 60000`: a line, then a minute's WASI sleep) in steps; at each step, "
      "once the watch shows every pod running and the node has been quiet 3 s, "
      "wasmlet's VmRSS (median of 5 samples over 2 s). Per-pod cost is the slope "
      f"between {dens['steps'][1]} and {dens['steps'][-1]} pods, so fixed costs stay out. "
      f"The ticker declares {dens['linear_memory_bytes'] // 1024} KiB of initial linear "
      "memory, mapped copy-on-write, so only touched pages are resident; /proc/<pid>/smaps "
      "tells the linear memories' resident pages apart (the read-write pages just below "
      "each of Wasmtime's 4 GiB reservations) from thread stacks, files and the rest.\n")
    if dens.get("network"):
        w("Each pod here declares a containerPort, so each gets a network sandbox of its "
          "own: a network namespace (bind-mounted in the node's data dir), a veth pair "
          "(ptp), an address from the node's podCIDR (a /19 in the bench's cluster; "
          "wasmlet's own IPAM through the static plugin); no portmap, which the default "
          "config runs only for a hostPort. A sandbox's memory is mostly the kernel's "
          "(namespace, devices, routes), outside wasmlet's RSS: the kernel's slab "
          "(/proc/meminfo) is given per level, and its slope per pod below (noisy: other "
          "work on the machine allocates slab too).\n")
    w("| pods | wasmlet RSS | threads | to all Running | rate to Running | kube-apiserver RSS "
      "| etcd RSS | kernel slab |\n|---|---|---|---|---|---|---|---|")
    prev = 0
    for lv in dens["levels"]:
        n_new = lv["pods"] - prev
        rate = n_new / lv["running_s"] if lv["running_s"] else None
        w(f"| {lv['pods']} | {lv['rss_kib'] / 1024:.1f} MiB | {lv['threads']} | "
          f"{fmt(lv['running_s'], ' s', 1) if n_new else '-'} | "
          f"{fmt(rate, ' pods/s', 1) if n_new else '-'} | "
          f"{fmt(lv['apiserver_rss_kib'] and lv['apiserver_rss_kib'] / 1024, ' MiB')} | "
          f"{fmt(lv['etcd_rss_kib'] and lv['etcd_rss_kib'] / 1024, ' MiB')} | "
          f"{fmt(lv.get('slab_kib') and lv['slab_kib'] / 1024, ' MiB')} |")
        prev = lv["pods"]
    w("")
    after = dens.get("rss_after_delete_kib")
    kinds = dens.get("per_pod_by_kind_kib") or {}
    if kinds:
        w("Where each extra pod's memory is (slope per pod, from /proc/<pid>/smaps):\n")
        w("| kind | KiB per pod |\n|---|---|")
        for k, label in (("linear_memory", "linear memory, resident pages"),
                         ("thread_stacks", f"thread stacks "
                          f"({fmt(dens.get('threads_per_pod'), '', 2)} threads per pod)"),
                         ("heap_other", "malloc heaps, Wasmtime instance data, buffers"),
                         ("files", "file-backed (code)")):
            w(f"| {label} | {fmt(kinds.get(k), '', 1)} |")
        if dens.get("network") and dens.get("slab_per_pod_kib") is not None:
            w(f"| kernel slab, outside wasmlet (namespace, veth, routes) | "
              f"{fmt(dens['slab_per_pod_kib'], '', 1)} |")
        w("")
    w(f"Per extra idle pod: **{fmt(dens.get('per_pod_gross_kib'), ' KiB')} gross, "
      f"{fmt(dens.get('per_pod_net_kib'), ' KiB')} beyond its resident linear memory** "
      f"({fmt(dens.get('per_pod_net_declared_kib'), ' KiB')} beyond the whole declared "
      f"{dens['linear_memory_bytes'] // 1024} KiB). "
      f"{dens.get('running_at_end')} of {dens['levels'][-1]['pods']} pods Running at the "
      f"end. Deleting all of them took {fmt(dens.get('delete_all_s'), ' s', 1)} as the API "
      f"server saw it, {fmt(dens.get('node_removed_all_s'), ' s', 1)} until the node had "
      f"removed them all (containers stopped, sandboxes' CNI DEL run, pod directories gone); "
      f"wasmlet's RSS afterwards: "
      f"{fmt(after and after / 1024, ' MiB', 1)}"
      + (f" ({dens['rss_returned_ratio']:.2f}x its RSS before the pods came: "
         f"{dens['idle_rss_kib'] / 1024:.1f} MiB, the node idle after one pod came and went"
         if dens.get("rss_returned_ratio") else "")
      + (f"; {dens['cold_idle_rss_kib'] / 1024:.1f} MiB fresh from start, before any pod)"
         if dens.get("rss_returned_ratio") and dens.get("cold_idle_rss_kib") else
         (")" if dens.get("rss_returned_ratio") else "")) + ".\n")
    sa = dens.get("smaps_after_delete_kib")
    s0 = dens["levels"][0].get("smaps_kib")
    if sa and s0:
        w("Where wasmlet's memory is before the pods and after they are all deleted "
          "(KiB, /proc/<pid>/smaps):\n")
        w("| kind | before | after |\n|---|---|---|")
        for k, label in (("heap_other", "malloc heaps, Wasmtime instance data, buffers"),
                         ("thread_stacks", "thread stacks"), ("files", "file-backed (code)"),
                         ("linear_memory", "linear memory")):
            w(f"| {label} | {s0.get(k, 0):.0f} | {sa.get(k, 0):.0f} |")
        w("")
    if dens.get("network") and dens.get("host_links_after_delete") is not None:
        w(f"The host's network interfaces: {dens.get('host_links_before')} before the pods, "
          f"{dens['levels'][-1].get('host_links')} with all {dens['levels'][-1]['pods']} "
          f"({fmt(dens.get('host_links_per_pod'), '', 2)} per pod: its veth), "
          f"{dens['host_links_after_delete']} after they were deleted.\n")
    if img:
        w(f"![density]({img})\n")
    busy = [lv for lv in dens["levels"] if lv["running_s"]]
    if busy:
        lv = busy[-1]
        sh = lv["cpu"]["share"]
        w(f"While the last step's pods were created and started ({lv['running_s']:.0f} s), "
          "CPU in cores: " + ", ".join(f"{k} {v:.2f}" for k, v in sh.items()) + ".\n")


def write():
    OUT.mkdir(parents=True, exist_ok=True)
    meta = kit.load_raw("meta") or {}
    lat, lat_raw = part("latency")
    floor, floor_raw = part("floor")
    dens, dens_raw = part("density")
    dens_net, dens_net_raw = part("density-net")
    sandbox = (kit.RAW / "sandbox.txt").read_text() if (kit.RAW / "sandbox.txt").exists() \
        else None
    growth = (kit.RAW / "sandbox_growth.txt").read_text() \
        if (kit.RAW / "sandbox_growth.txt").exists() else None
    ch, ch_raw = part("churn")
    comp, comp_raw = part("compute")
    startup = (kit.RAW / "startup.txt").read_text() if (kit.RAW / "startup.txt").exists() \
        else None

    imgs = {"cdf": plot_cdf(lat, floor), "breakdown": plot_breakdown(lat),
            "density": plot_density(dens), "compute": plot_compute(comp)}
    churn_imgs = plot_churn(ch) or (None, None)
    imgs["churn"], imgs["churn_cpu"] = churn_imgs

    m = meta.get("machine", {})
    L = []
    w = L.append
    w("# wasmlet benchmarks\n")
    quick = " (**--quick smoke run: few pods, few repetitions; not for quoting**)" \
        if meta.get("quick") else ""
    w(f"Run {meta.get('started', '?')}{quick}, commit `{m.get('commit', '?')}`, "
      f"{m.get('wasmlet', '')}; {m.get('cores', '?')} cores ({m.get('cpu', '?')}), "
      f"{m.get('mem_gib', '?')} GiB, Linux {m.get('kernel', '?')}. Whole run "
      f"{fmt(meta.get('wall_s'), ' s')}; `bench/run.sh`"
      f"{' --quick' if meta.get('quick') else ''}.\n")
    for note in meta.get("notes", []):
        w(f"Note: {note}.\n")
    la = meta.get("loadavg_start")
    if la:
        w(f"Load average at start {la[0]:.2f} / {la[1]:.2f} / {la[2]:.2f} (1/5/15 min), at "
          f"the end {meta['loadavg_end'][0]:.2f}. On {m.get('cores', 2)} cores, anything above "
          f"~{m.get('cores', 2)} means other work competed with the benchmark; the per-part "
          "load is given with each part, and the churn part measures that other work's CPU "
          "directly (\"others\").\n")
    w("Everything runs against a real control plane (`cluster/cluster.sh`: kube-apiserver, "
      "etcd, kube-scheduler, kube-controller-manager v1.37.2) brought up for the run in a "
      "temp dir on free loopback ports, with wasmlet nodes joining it as any kubelet would. "
      "Times are medians of repeated runs unless said otherwise; where this machine and "
      "another differ, quote the ratios.\n")

    # -- targets
    w("## Targets\n")
    w("| target | measured | verdict |\n|---|---|---|")
    cells = (lat or {}).get("cells", {})
    burst = (lat or {}).get("burst", 100)
    fl = (floor or {}).get("cells", {})
    fl_b = fl.get("burst/scheduled", {}).get("summary")

    def cell(key):
        return cells.get(key, {}).get("summary")

    for key, what in (("ticker/burst/warm", "long-running"), ("hello/burst/warm", "hello")):
        s = cell(key)
        if s:
            p50, p99 = s["e2e"]["p50"], s["e2e"]["p99"]
            w(f"| warm pod start p50 < 100 ms, {burst} at once ({what}) | {fmt(p50, ' ms')} "
              f"(control-plane floor {fmt(fl_b and fl_b['e2e']['p50'], ' ms')}) | "
              f"{verdict(p50 < 100) if burst >= 100 else 'n/a (smoke)'} |")
            w(f"| warm pod start p99 < 300 ms, {burst} at once ({what}) | {fmt(p99, ' ms')} "
              f"(floor {fmt(fl_b and fl_b['e2e']['p99'], ' ms')}) | "
              f"{verdict(p99 < 300) if burst >= 100 else 'n/a (smoke)'} |")
    s = cell("ticker/burst/warm")
    if s:
        k = s["kubelet"]["p50"]
        w(f"| kubelet share (binding seen to Running seen) p50 < 10 ms, {burst} at once | "
          f"{fmt(k, ' ms', 1)} (floor: a kubelet doing one PATCH, "
          f"{fmt(fl_b and fl_b['kubelet']['p50'], ' ms', 1)}) | "
          f"{verdict(k < 10) if burst >= 100 else 'n/a (smoke)'} |")
    sl = cell("ticker-lean/burst/warm")
    if sl:
        lean_ok = (sl["e2e"]["p50"] < 100 and sl["e2e"]["p99"] < 300
                   and sl["kubelet"]["p50"] < 10)
        lean_verdict = verdict(lean_ok) if burst >= 100 else "n/a (smoke)"
        w(f"| (for reference) lean pods (no token volume, no service links), {burst} at once:"
          f" p50 / p99 / kubelet share p50 | {fmt(sl['e2e']['p50'], ' ms')} / "
          f"{fmt(sl['e2e']['p99'], ' ms')} / {fmt(sl['kubelet']['p50'], ' ms', 1)} | "
          f"{lean_verdict} |")
    s1 = cell("ticker/seq/warm")
    if s1:
        k = s1["kubelet"]["p50"]
        fs = fl.get("seq/scheduled", {}).get("summary")
        w(f"| (for reference) kubelet share, one pod at a time | {fmt(k, ' ms', 1)} (floor "
          f"{fmt(fs and fs['kubelet']['p50'], ' ms', 1)}) | {verdict(k < 10)} |")
    if dens:
        top = dens["levels"][-1]["pods"]
        ok = dens.get("running_at_end") == top and all(lv["node_alive"] for lv in dens["levels"])
        w(f"| {top} idle pods on one node | {dens.get('running_at_end')} Running | "
          f"{verdict(ok) if top >= 1000 else 'n/a (smoke)'} |")
        net = dens.get("per_pod_net_kib")
        kinds = dens.get("per_pod_by_kind_kib") or {}
        w(f"| < 256 KiB of wasmlet memory per extra idle pod beyond its linear memory | "
          f"{fmt(net, ' KiB')} ({fmt(dens.get('per_pod_gross_kib'), ' KiB')} gross, of which "
          f"{fmt(kinds.get('linear_memory'), ' KiB')} resident linear memory; "
          f"{fmt(dens.get('per_pod_net_declared_kib'), ' KiB')} if all "
          f"{dens['linear_memory_bytes'] // 1024} KiB declared were resident) | "
          f"{verdict(net is not None and net < 256)} |")
        idle = dens.get("cold_idle_rss_kib") or dens.get("idle_rss_kib")
        w(f"| wasmlet idle under 20 MiB resident | {fmt(idle and idle / 1024, ' MiB', 1)} | "
          f"{verdict(idle is not None and idle < 20 * 1024)} |")
    if comp:
        rw = comp["ratios"].get("vs wasmtime", {}).get("pod")
        rc = comp["ratios"].get("cpu vs wasmtime", {}).get("pod")
        run_cpu = comp["ratios"].get("cpu vs wasmtime", {}).get("wasmlet run")
        if rw is None:
            w("| compute within 1.1x of plain wasmtime | wasmtime CLI not found: comparison "
              "missing | not measured |")
        else:
            ok = rc <= 1.1 if rc is not None else rw <= 1.1
            rb = comp["ratios"].get("best vs wasmtime", {}).get("pod")
            w(f"| compute within 1.1x of plain wasmtime | pod {fmt(rc, 'x', 3)} by CPU time; "
              f"wall time {rw:.3f}x median, {fmt(rb, 'x', 3)} best (wasmlet run: "
              f"{fmt(run_cpu, 'x', 3)} CPU, "
              f"{comp['ratios']['vs wasmtime'].get('wasmlet run', 0):.3f}x wall) | "
              f"{verdict(ok)} (by CPU time, which waiting for a busy core does not inflate) |")
    w("")
    if fl_b and burst >= 100:
        p50, p99 = fl_b["e2e"]["p50"], fl_b["e2e"]["p99"]
        if p50 >= 100 or p99 >= 300:
            w(f"On this machine the control plane alone, with a \"kubelet\" that does nothing "
              f"but one status PATCH per pod, takes {p50:.0f} ms p50 and {p99:.0f} ms p99 for "
              f"{burst} pods created at once (see the floor below): the start-latency targets "
              "for a burst are below what any kubelet can reach here, so judge wasmlet there "
              "by its distance from the floor.\n")

    scale, scale_raw = part("scale")
    scale_net, scale_net_raw = part("scale-net")
    issue14_targets(w, lat, floor, dens, ch, dens_net, scale, scale_net)

    # -- latency
    if lat:
        w("## Pod start latency\n")
        w(f"Part run at {lat_raw['at']}, load average {lat_raw['loadavg_start'][0]:.2f} -> "
          f"{lat_raw['loadavg_end'][0]:.2f}.\n")
        other = kit.load_raw("latency-other")
        if other and other.get("data"):
            oc = other["data"]["cells"]
            fo = (kit.load_raw("floor-other") or {}).get("data") or {}
            fob = fo.get("cells", {}).get("burst/scheduled", {}).get("summary")
            figs = "; ".join(
                f"{k} p50 {fmt(oc[k]['summary']['e2e']['p50'], ' ms', 1)}"
                for k in ("ticker/burst/warm", "hello/burst/warm", "ticker/seq/warm") if k in oc)
            if fob:
                figs += f"; floor, {burst} at once, p50 {fmt(fob['e2e']['p50'], ' ms', 1)}"
            w(f"The machine was busy, so this part and the floor ran twice; these are the "
              f"figures of the quieter pair (mean load average "
              f"{lat_raw.get('pair_load', 0):.2f}). The other pair (mean load "
              f"{other.get('pair_load', 0):.2f}): {figs}.\n")
        w("As SIG Scalability defines it: from the pod's creation to all its containers "
          "running, observed through a watch. The creation instant is the client's send "
          "time of the POST (creationTimestamp has 1 s resolution, too coarse here; the send "
          "time is earlier, so these figures err on the slow side); the end instant is when "
          "a watch, in a process of its own, receives the first version of the pod whose "
          "every container is running or terminated (hello may finish before wasmlet's first "
          "status write). hello runs to completion; ticker is long-running (sleeps in WASI). "
          "*warm*: module pulled and compiled on the node before; *cold*: a module the node "
          "has never seen (the same code with one extra custom section, so a new digest: "
          "pull and compile). Burst cells pool their rounds' pods for the CDF; their "
          "p50/p90/p99 are the medians over rounds. Pods carry the defaults the API server "
          "gives them (a projected service-account token volume, service links on), as "
          "pods in the field do.\n")
        w("| cell | pods | p50 | p90 | p99 | kubelet share p50 | wasmlet internal p50 | "
          "pods with a mount retry |\n|---|---|---|---|---|---|---|---|")
        for key in ("hello/seq/warm", "ticker/seq/warm", "hello/seq/cold", "ticker/seq/cold",
                    "ticker-lean/seq/warm", "ticker-net/seq/warm", "hello/burst/warm",
                    "ticker/burst/warm", "hello/burst/cold", "ticker/burst/cold",
                    "ticker-lean/burst/warm", "ticker-net/burst/warm"):
            s = cell(key)
            if not s:
                continue
            mod, mode, cache = key.split("/")
            how = "1 at a time" if mode == "seq" else f"{burst} at once"
            label = f"{mod}, {how}, {cache}"
            missing = f" ({s['missing']} missing)" if s["missing"] else ""
            w(f"| {label} | {s['n']}{missing}"
              f" | {fmt(s['e2e']['p50'], ' ms', 1)} | {fmt(s['e2e']['p90'], ' ms', 1)} | "
              f"{fmt(s['e2e']['p99'], ' ms', 1)} | {fmt(s['kubelet']['p50'], ' ms', 1)} | "
              f"{fmt(s['wasmlet_internal']['p50'], ' ms', 1)} | {s['with_retries']} |")
        w("")
        w("*kubelet share*: our watch seeing the binding (spec.nodeName) to our watch "
          "seeing the containers started: wasmlet's watch delivery, its work, its status "
          "PATCH and that PATCH's way back through the watch. *wasmlet internal*: from "
          "wasmlet's log line \"started\" (pod received, admitted, worker started) to its "
          "\"Started\" event (module loaded, about to instantiate), both stamped by wasmlet. "
          "*ticker-lean*: the same module in pods with `automountServiceAccountToken: false` "
          "and `enableServiceLinks: false`, so the node makes no API call to start them but "
          "the status write: the difference to ticker is what those calls cost. "
          "*ticker-net*: the same module in pods that declare a containerPort, so that each "
          "gets a network sandbox of its own (a namespace and the CNI ADD), which the node "
          "skips for pods without ports (`--skip-sandbox-without-ports`, the default).\n")
        if imgs["cdf"]:
            w(f"![latency CDF]({imgs['cdf']})\n")
        w("### Where the time goes\n")
        w("The node's stages come from wasmlet's own start trace: one `pod start trace "
          "{json}` log line per pod (the same figures feed the "
          "`wasmlet_pod_start_stage_duration_seconds` histograms of its /metrics), joined to "
          "the client's and our watch's view of the same pod on the same clock "
          "(CLOCK_REALTIME). *create*: POST sent to 201. *schedule*: 201 to our watch seeing "
          "the binding (may be slightly negative). *watch delivery*: that to wasmlet's watch "
          "delivering the pod (negative when wasmlet's watch gets the pod before ours does). "
          "*admission*: delivered to its worker started (RuntimeClass, "
          "resume state, Node labels, the admission verdict). *sandbox*: the pod's network "
          "sandbox (none for a pod without ports). *volumes*: the pod's volumes, the "
          "projected service-account token (a TokenRequest; kube-root-ca.crt from a watch) "
          "included, retries too. *pull*, *load*: the first app container's image and "
          "module. *other*: the rest until its running state is published (its environment, "
          "service links from the Services watch, thread starts, Events). *status write*: "
          "that state published to the status write carrying it acknowledged (the status "
          "writers' queue and the PATCH). *to our watch*: the acknowledgement to our watch "
          "receiving the pod. These add up to the start latency; *instantiate* (store, WASI, "
          "instance) runs on the container's thread beside the status write. Medians over "
          "the cell's pods (burst cells: the median over rounds).\n")
        labels = dict(TRACE_LABELS, instantiate="instantiate (beside status)")
        w("| cell | traced | " + " | ".join(labels.values()) + " | node's share |")
        w("|---|---|" + "---|" * (len(labels) + 1))
        for key in cells:
            s = cell(key)
            tp = s.get("trace_p50") or {}
            w(f"| {key} | {s.get('traced', 0)}/{s['n']} | "
              + " | ".join(fmt(tp.get(st), "", 1) for st in labels)
              + f" | {fmt(tp.get('node'), '', 1)} |")
        w("")
        w("*node's share*: wasmlet's watch delivering the pod to the last of its stages "
          "ending (the `node` stage of the trace).\n")
        sandbox_share(w, cell)
        burst_cpu(w, cells)
        if imgs["breakdown"]:
            w(f"![stage breakdown]({imgs['breakdown']})\n")
    if floor:
        w("### The control plane's floor\n")
        if floor_raw.get("loadavg_after"):
            w(f"Measured twice, before the latency part (load average "
              f"{floor_raw['loadavg_start'][0]:.2f}) and after it (load average "
              f"{floor_raw['loadavg_after'][0]:.2f}); the burst figures are medians over both "
              "runs' rounds, so the floor and wasmlet share the machine's ups and downs.\n")
        else:
            w(f"Part run at {floor_raw['at']}, load average "
              f"{floor_raw['loadavg_start'][0]:.2f}.\n")
        w("The same pods, created the same way and watched the same way, scheduled onto a "
          "fake Ready node whose \"kubelet\" (a child process) only PATCHes each pod Running "
          "the moment it sees it bound (4 PATCHes in flight; no pull, no volumes, no Events). "
          "*bound*: spec.nodeName set at creation, so no scheduler either. This is what the "
          "API server, etcd, the scheduler and the watch cost on this machine: the part of "
          "pod start no kubelet can remove. *scheduled+token*, for reference: the same, but "
          "the \"kubelet\" first makes each pod's TokenRequest (bound to the pod, up to 32 at "
          "once, as the cluster admin, so without the Node authorizer's checks) and PATCHes "
          "once it is answered: the two API round trips in a row that any kubelet makes to "
          "start a pod with a projected service-account token, which the bench's pods carry.\n")
        w("| floor cell | pods | p50 | p90 | p99 | \"kubelet\" share p50 | POST p50 | "
          "201 to binding seen p50 |\n|---|---|---|---|---|---|---|---|")
        for key, c in fl.items():
            s = c["summary"]
            mode, how = key.split("/")
            many = "1 at a time" if mode == "seq" else f"{floor.get('burst')} at once"
            label = f"{many}, {how}"
            sched = fmt((s.get("schedule") or {}).get("p50"), " ms", 1) \
                if how.startswith("scheduled") else "-"
            w(f"| {label} | {s['n']} | {fmt(s['e2e']['p50'], ' ms', 1)} | "
              f"{fmt(s['e2e']['p90'], ' ms', 1)} | {fmt(s['e2e']['p99'], ' ms', 1)} | "
              f"{fmt(s['kubelet']['p50'], ' ms', 1)} | {fmt(s['create']['p50'], ' ms', 1)} | "
              f"{sched} |")
        w("")
        sw, fw = cell("ticker/burst/warm"), fl_b
        ss, fs = cell("ticker/seq/warm"), fl.get("seq/scheduled", {}).get("summary")
        if sw and fw and ss and fs:
            w(f"wasmlet over the floor (ticker, warm, p50): one at a time "
              f"{ss['e2e']['p50']:.1f} ms vs {fs['e2e']['p50']:.1f} ms "
              f"({ss['e2e']['p50'] / fs['e2e']['p50']:.2f}x); {burst} at once "
              f"{sw['e2e']['p50']:.1f} ms vs {fw['e2e']['p50']:.1f} ms "
              f"({sw['e2e']['p50'] / fw['e2e']['p50']:.2f}x).\n")

    if startup:
        w("### Start-up in process (bench/startup)\n")
        w("From `bench/startup/run.sh` (the container start-up benchmark), run as part of "
          "this report:\n")
        w("```\n" + startup.strip() + "\n```\n")

    # -- density
    if dens:
        density_section(w, dens, dens_raw, "Density", imgs["density"])
    if dens_net:
        density_section(w, dens_net, dens_net_raw, "Density with pod networking", None)
    for d, raw, title in ((scale, scale_raw, "Beyond the bench: one node, as far as it goes"),
                          (scale_net, scale_net_raw,
                           "Beyond the bench: one node with pod networking")):
        if d:
            density_section(w, d, raw, title, None)
            w(f"This is a run of its own (`bench/bench.py --parts {raw['part']}`), outside "
              f"`bench/run.sh`'s budget, at {raw.get('at', '?')}, {raw.get('wall_s', 0) / 60:.0f} "
              f"min; vm.max_map_count {d.get('max_map_count_before')} raised to "
              f"{d.get('max_map_count')} for it. The node filled in quarters; at each step "
              f"the figures once every pod is running, as in the density part.\n")
    if sandbox:
        w("### The sandbox alone (bench/sandbox)\n")
        w("From `bench/sandbox/run.sh` (wasmlet's own net/ code: namespace and CNI ADD, "
          "held, then CNI DEL; needs root and the CNI plugins), run as part of this "
          "report:\n")
        w("```\n" + sandbox.strip() + "\n```\n")
    if growth:
        sandbox_growth(w, growth)

    # -- churn
    if ch:
        w("## Churn\n")
        w(f"Part run at {ch_raw['at']}, load average {ch_raw['loadavg_start'][0]:.2f} -> "
          f"{ch_raw['loadavg_end'][0]:.2f}.\n")
        w("hello pods through their whole life: created on a fixed schedule at each offered "
          "rate (at most 100 in flight), run to completion, deleted by the benchmark as soon "
          "as the watch shows them Succeeded, complete when the watch shows them gone. "
          "*sustained*: completions per second from the step's first to its last. CPU is "
          "per process over the step (cores); *others* is the rest of the machine.\n")
        w("| offered | sustained | create to Succeeded p50 / p99 | create to scheduled | "
          "scheduled to wasmlet | wasmlet to Started | Started to Succeeded seen | status "
          "writes/s | mount retries | CPU: wasmlet / apiserver / etcd / scheduler / others "
          "(cores) |\n|---|---|---|---|---|---|---|---|---|---|")
        for s in ch["steps"]:
            sh = s["cpu"]["share"]
            st = s.get("stages_p50_ms", {})
            w(f"| {s['offered_rate']}/s | {fmt(s['sustained_rate'], '/s', 1)} | "
              f"{fmt(s['to_succeeded_ms'].get('p50'), ' ms')} / "
              f"{fmt(s['to_succeeded_ms'].get('p99'), ' ms')} | "
              f"{fmt(st.get('create_to_scheduled'), ' ms')} | "
              f"{fmt(st.get('scheduled_to_node'), ' ms')} | "
              f"{fmt(st.get('node_to_started'), ' ms')} | "
              f"{fmt(st.get('started_to_succeeded'), ' ms')} | "
              f"{fmt(s.get('status_writes_per_s'), '', 1)} | "
              f"{s.get('pods_with_mount_retries', 0)}/{s['pods']} | "
              f"{sh.get('wasmlet', 0):.2f} / {sh.get('kube-apiserver', 0):.2f} / "
              f"{sh.get('etcd', 0):.2f} / {sh.get('kube-scheduler', 0):.2f} / "
              f"{sh.get('others', 0):.2f} |")
        w("")
        w(f"Highest sustained rate: **{ch['max_sustained_rate']:.1f} pods/s**. "
          + churn_verdict(ch) + "\n")
        if imgs["churn"]:
            w(f"![churn]({imgs['churn']})\n")
        if imgs["churn_cpu"]:
            w(f"![churn CPU]({imgs['churn_cpu']})\n")

    # -- compute
    if comp:
        w("## Compute\n")
        w(f"Part run at {comp_raw['at']}, load average "
          f"{comp_raw['loadavg_start'][0]:.2f} -> {comp_raw['loadavg_end'][0]:.2f}.\n")
        w(f"`sha256 {' '.join(comp['args'])}` ({comp['mib_hashed']} MiB hashed), the code of "
          "examples/sha256.c timed from inside by bench/compute/kernel.c (CLOCK_MONOTONIC "
          "around the example's main), so exec, compile and instantiation are left out. "
          f"{comp['reps']} interleaved repetitions per variant after one untimed run each. "
          f"Native: `cc -O2`. wasmtime: `{comp.get('wasmtime_version') or 'not found'}`, "
          "`wasmtime run kernel.wasm` with its defaults. wasmlet run: `wasmlet run -f pod.yaml`"
          ". Pod: the same module from the registry, on the node.\n")
        w("| variant | wall median | wall best | wall vs native | wall vs wasmtime | "
          "CPU (net of start-up) | CPU vs native | CPU vs wasmtime |\n"
          "|---|---|---|---|---|---|---|---|")
        for k in ("native", "wasmtime", "wasmlet run", "pod"):
            if k not in comp["median_ms"]:
                continue
            rt = comp["ratios"]
            w(f"| {k} | {comp['median_ms'][k]:.1f} ms | {comp['best_ms'][k]:.1f} ms | "
              f"{fmt(rt.get('vs native', {}).get(k), 'x', 3)} | "
              f"{fmt(rt.get('vs wasmtime', {}).get(k), 'x', 3)} | "
              f"{fmt(comp.get('cpu_net_ms', {}).get(k), ' ms', 1)} | "
              f"{fmt(rt.get('cpu vs native', {}).get(k), 'x', 3)} | "
              f"{fmt(rt.get('cpu vs wasmtime', {}).get(k), 'x', 3)} |")
        w("")
        w("*wall*: the module's own CLOCK_MONOTONIC reading (median, and best, of the "
          "repetitions). *CPU*: median CPU time of a run minus the median of the same "
          "variant's zero-work runs (`0 1`), which removes exec, compile-cache loading, "
          "instantiation and, for the pod, wasmlet's pod machinery; for the pod it is "
          "wasmlet's whole process, so its status writes and events are in it.")
        if not comp.get("wasmtime_cli"):
            w("\n**wasmtime CLI not found**: the comparison with plain wasmtime is missing "
              "(install it as bench/README.md says and run again).")
        w("")
        if imgs["compute"]:
            w(f"![compute]({imgs['compute']})\n")

    http_raw = kit.load_raw("http")
    if http_raw and http_raw.get("data"):
        http_section(w, http_raw["data"], http_raw)

    # -- failures
    failed = [(n, r) for n, r in (("floor", floor_raw), ("latency", lat_raw),
                                  ("density", dens_raw), ("churn", ch_raw),
                                  ("compute", comp_raw), ("http", http_raw))
              if r and r.get("error")]
    if failed:
        w("## Parts that failed\n")
        for n, r in failed:
            w(f"- {n}: `{r['error']}`")
        w("")
    w("## How to run\n")
    w("`bench/run.sh` (about ten minutes on 2 cores) or `bench/run.sh --quick` (a two-minute "
      "smoke run); raw data lands in `bench/results/raw/` (not committed). "
      "`bench/bench.py --report-only` re-renders this file from it. See bench/README.md.\n")
    w(f"_Generated {time.strftime('%Y-%m-%d %H:%M:%S %Z')} by bench/report.py._\n")
    path = OUT / "report.md"
    path.write_text("\n".join(L))
    return path


def issue14_targets(w, lat, floor, dens, ch, dens_net=None, scale=None, scale_net=None):
    """The scale targets (issue 14), each met or not with its figure from this
    run, beside the control-plane floor measured in the same run."""
    cells = (lat or {}).get("cells", {})
    burst = (lat or {}).get("burst", 100)
    fl = (floor or {}).get("cells", {})
    fb = fl.get("burst/scheduled", {}).get("summary")
    smoke = burst < 100
    w("## Scale targets (issue 14)\n")
    w("Each figure is from this run; the floor is the control plane's own (a \"kubelet\" "
      "that only PATCHes, see below), measured in the same run.\n")
    w("| target | measured | floor (same run) | verdict |\n|---|---|---|---|")
    s = cells.get("ticker/burst/warm", {}).get("summary")
    if s and fb:
        for q in ("p50", "p99"):
            v, f = s["e2e"][q], fb["e2e"][q]
            ok = v <= 1.3 * f
            w(f"| burst: {burst} pods at once, warm, {q} within 1.3x of the floor | "
              f"{fmt(v, ' ms')} ({v / f:.2f}x) | {fmt(f, ' ms')} | "
              f"{'n/a (smoke)' if smoke else verdict(ok)} |")
        k, fk = s["kubelet"]["p50"], fb["kubelet"]["p50"]
        w(f"| burst: the kubelet's share at p50 within 2x of the floor's \"kubelet\" share | "
          f"{fmt(k, ' ms', 1)} ({k / fk:.2f}x) | {fmt(fk, ' ms', 1)} | "
          f"{'n/a (smoke)' if smoke else verdict(k <= 2 * fk)} |")
        ft = fl.get("burst/scheduled+token", {}).get("summary")
        if ft and ft["e2e"].get("p50"):
            v50, v99 = s["e2e"]["p50"], s["e2e"]["p99"]
            f50, f99 = ft["e2e"]["p50"], ft["e2e"]["p99"]
            w(f"| (for reference, not a target) burst p50, p99 against a floor whose "
              f"\"kubelet\" also makes each pod's TokenRequest | {fmt(v50, ' ms')} "
              f"({v50 / f50:.2f}x), {fmt(v99, ' ms')} ({v99 / f99:.2f}x) | "
              f"{fmt(f50, ' ms')}, {fmt(f99, ' ms')} | reference |")
            w(f"| (for reference, not a target) the floor that makes the TokenRequest against "
              f"the plain floor: what a pod's projected token costs any kubelet here | "
              f"{f50 / fb['e2e']['p50']:.2f}x, {f99 / fb['e2e']['p99']:.2f}x | - | reference |")
        sl = cells.get("ticker-lean/burst/warm", {}).get("summary")
        if sl:
            l50, l99, lk = sl["e2e"]["p50"], sl["e2e"]["p99"], sl["kubelet"]["p50"]
            lean_ok = l50 <= 1.3 * fb["e2e"]["p50"] and l99 <= 1.3 * fb["e2e"]["p99"] \
                and lk <= 2 * fk
            w(f"| (for reference, not a target) the same burst of pods that make no API call "
              f"but their status write (no token volume, no service links): p50, p99, "
              f"kubelet share against the plain floor | {fmt(l50, ' ms')} "
              f"({l50 / fb['e2e']['p50']:.2f}x), {fmt(l99, ' ms')} "
              f"({l99 / fb['e2e']['p99']:.2f}x), {fmt(lk, ' ms', 1)} ({lk / fk:.2f}x) | "
              f"{fmt(fb['e2e']['p50'], ' ms')}, {fmt(fb['e2e']['p99'], ' ms')}, "
              f"{fmt(fk, ' ms', 1)} | "
              f"{'n/a (smoke)' if smoke else ('within the targets' if lean_ok else 'outside the targets')} |")
    else:
        w("| burst: p50, p99 within 1.3x, kubelet share within 2x of the floor | latency or "
          "floor part not run | - | not measured |")
    if dens:
        top = dens["levels"][-1]["pods"]
        running = dens.get("running_at_end")
        w(f"| density: 5,000 idle pods Running, pods that skip the sandbox | {running} of "
          f"{top} Running (this run's top step) | - | "
          + (verdict(running == top) if top >= 5000 else
             f"**not met**: only {top} tried (BENCH_DENSITY_PODS=5000 asks for 5,000)") + " |")
        if dens_net:
            top_n = dens_net["levels"][-1]["pods"]
            run_n = dens_net.get("running_at_end")
            w(f"| density: 5,000 idle pods Running, pod networking on | {run_n} of {top_n} "
              f"Running (this run's top step, a sandbox each); "
              f"{fmt(dens_net.get('per_pod_net_kib'), ' KiB')} of wasmlet per pod, "
              f"{fmt(dens_net.get('slab_per_pod_kib'), ' KiB')} of kernel slab | - | "
              + (verdict(run_n == top_n) if top_n >= 5000 else
                 f"**not met** in the bench: only {top_n} tried (BENCH_DENSITY_NET_PODS=5000 "
                 f"asks for 5,000: about 7 minutes here with their deletion, 50 pods/s at "
                 f"first, 18 past 3,750)")
              + " |")
        else:
            w("| density: 5,000 idle pods Running, pod networking on | density-net part not "
              "run (needs root and the CNI plugins) | - | not measured |")
        net1 = dens.get("per_pod_net_one_thread_kib")
        w(f"| at most 96 KiB per extra idle pod beyond its resident linear memory and its one "
          f"thread | {fmt(net1, ' KiB')} ({fmt(dens.get('per_pod_net_kib'), ' KiB')} with "
          f"all its threads' stacks) | - | {verdict(net1 is not None and net1 <= 96)} |")
        tpp = dens.get("threads_per_pod")
        mpp = dens.get("maps_per_pod")
        w(f"| no thread per pod beyond its running containers' (one each here) | "
          f"{fmt(tpp, ' threads per pod', 2)}"
          + (f"; {mpp:.1f} memory mappings per pod (vm.max_map_count)" if mpp else "")
          + " | - | "
          f"{verdict(tpp is not None and tpp <= 1.05)} |")
        for d, what in ((dens, "pods that skip the sandbox"), (dens_net, "pod networking on")):
            if not d:
                continue
            ratio = d.get("rss_returned_ratio")
            cold = d.get("cold_idle_rss_kib")
            w(f"| memory returned: RSS after all {d['levels'][-1]['pods']} are deleted within "
              f"1.25x of before, {what} | "
              f"{fmt(d.get('rss_after_delete_kib') and d['rss_after_delete_kib'] / 1024, ' MiB', 1)}"
              f" vs {fmt(d.get('idle_rss_kib') and d['idle_rss_kib'] / 1024, ' MiB', 1)} "
              f"({fmt(ratio, 'x', 2)}); before: the node idle after one pod came and went"
              + (f" (fresh from start: {cold / 1024:.1f} MiB)" if cold else "")
              + (", the node not yet done removing" if d.get("node_removed_all") is False
                 else "")
              + f" | - | {verdict(ratio is not None and ratio <= 1.25)} |")
    else:
        w("| density, memory per pod, threads, memory returned | density part not run | - | "
          "not measured |")
    if ch:
        best = ch["max_sustained_rate"]
        sat = [x for x in ch["steps"] if x["sustained_rate"] and
               x["sustained_rate"] < 0.9 * x["offered_rate"]]
        top_step = sat[0] if sat else ch["steps"][-1]
        sh = top_step["cpu"]["share"]
        wl = sh.get("wasmlet", 0)
        per10 = wl / (top_step["sustained_rate"] / 10) if top_step["sustained_rate"] else None
        cp = sum(sh.get(k, 0) for k in ("kube-apiserver", "etcd", "kube-scheduler",
                                        "kube-controller-manager"))
        cores = top_step["cpu"].get("cores", 2)
        busy = sum(sh.values())
        others = sh.get("others", 0)
        # The control plane's CPU is the limit when the machine is saturated
        # and the control plane, not other work, holds most of it.
        cp_bound = bool(sat) and busy >= 0.9 * cores and cp >= max(wl, others) and \
            cp >= 0.5 * busy
        ok = best >= 60 or (cp_bound and per10 is not None and per10 <= 0.2)
        if best >= 60:
            how = "at least 60/s"
        elif ok:
            how = ("below 60/s, limited by the control plane's CPU with wasmlet within 0.2 "
                   "cores per 10 pods/s")
        elif bool(sat) and others >= cp:
            how = (f"below 60/s on a machine saturated by other work ({others:.2f} cores), "
                   "so the control plane's limit is not shown")
        else:
            how = ("below 60/s, and not shown to be the control plane's limit within 0.2 "
                   "wasmlet cores per 10 pods/s")
        w(f"| churn: create, run, delete at 60 pods/s (or the control plane's CPU the limit, "
          f"wasmlet at most 0.2 cores per 10 pods/s) | {best:.1f} pods/s; wasmlet "
          f"{fmt(per10, ' cores', 2)} per 10 pods/s at {top_step['offered_rate']}/s offered "
          f"| control plane {cp:.2f} cores, other work {others:.2f}, of {busy:.2f} busy | "
          f"{verdict(ok)} ({how}) |")
    else:
        w("| churn at 60 pods/s | churn part not run | - | not measured |")
    for d, what in ((scale, "pods that skip the sandbox"), (scale_net, "pod networking on")):
        if not d:
            w(f"| beyond the bench: how far one node goes, {what} | no run of its own on "
              f"record (`bench/bench.py --parts scale` or `scale-net`) | - | not measured |")
            continue
        lv = d["levels"][-1]
        w(f"| beyond the bench: how far one node goes, {what} | {d.get('running_at_end')} of "
          f"{lv['pods']} Running, {lv['rss_kib'] / 1024:.0f} MiB, {lv['threads']} threads, "
          f"{lv.get('maps')} mappings; the node "
          f"{'alive' if lv.get('node_alive') else 'gone'} (see its section) | - | "
          f"{'measured' if d.get('running_at_end') == lv['pods'] else '**stopped short**'} |")
    if scale_net and dens_net and dens_net["levels"][-1]["pods"] < 5000:
        run_n = scale_net.get("running_at_end")
        top_n = scale_net["levels"][-1]["pods"]
        w(f"| density: 5,000 idle pods Running, pod networking on, in a run of its own | "
          f"{run_n} of {top_n} Running | - | {verdict(top_n >= 5000 and run_n == top_n)} "
          f"(outside the bench's budget) |")
    w("")


def churn_verdict(ch):
    """Says where the churn limit comes from: the saturated step's CPU split
    and the stage that grew."""
    steps = ch["steps"]
    sat = [s for s in steps if s["sustained_rate"] and s["sustained_rate"] <
           0.9 * s["offered_rate"]]
    if not sat:
        return "No step saturated: the limit is above the highest offered rate."
    s = sat[0]
    sh = s["cpu"]["share"]
    cores = s["cpu"].get("cores", 2)
    busy = sum(sh.values())
    others = sh.get("others", 0)
    own = busy - others
    top = max((k for k in sh if k != "others"), key=lambda k: sh[k])
    txt = (f"It first fell behind at {s['offered_rate']}/s offered "
           f"({s['sustained_rate']:.1f}/s sustained). Then {busy:.2f} of {cores} cores were "
           f"busy: {own:.2f} for the cluster, wasmlet and this client (most: {top}, "
           f"{sh[top]:.2f}; wasmlet {sh.get('wasmlet', 0):.2f}) and {others:.2f} for other "
           "work on the machine. ")
    st = {k: v for k, v in (s.get("stages_p50_ms") or {}).items() if v is not None}
    base = {k: v for k, v in (steps[0].get("stages_p50_ms") or {}).items() if v is not None}
    if st:
        grew = max(st, key=lambda k: st[k] - base.get(k, 0))
        txt += (f"The stage that grew most is *{grew.replace('_', ' ')}*: "
                f"{base.get(grew, 0):.0f} ms median at {steps[0]['offered_rate']}/s, "
                f"{st[grew]:.0f} ms here. ")
        if grew == "started_to_succeeded":
            txt += ("That is the time from wasmlet starting a module (which runs in about a "
                    "millisecond) to the API server having its status: pods wait in wasmlet's "
                    "status path, which writes one pod's status at a time (a state file with "
                    "fsync, then a PATCH), while wasmlet itself uses "
                    f"{sh.get('wasmlet', 0):.2f} cores. ")
    if busy >= 0.9 * cores:
        txt += (f"The CPUs were saturated too ({others:.2f} cores of it other work on this "
                "shared machine): with a status path that keeps up, the next limit here is "
                f"the machine, first of all {top}'s CPU.")
    else:
        txt += "The CPUs were not saturated: a serial step sets this limit, not the machine."
    return txt


def http_section(w, h, raw):
    """Serving wasi:http: wasmlet in a pod against `wasmtime serve`."""
    w("## Serving HTTP\n")
    load = f"{raw['loadavg_start'][0]:.1f} to {raw['loadavg_end'][0]:.1f}"
    w("The hello wasi:http component (`examples/components/http-hello.c`, path `/`) served by "
      "wasmlet in a pod through its pod IP, and by `wasmtime serve` on loopback, on the same "
      f"cores; wrk for {h['seconds']} s per run, median of {h['reps']} alternating runs "
      f"(bench/serving.py), measured {raw['at']} at load {load}.\n")
    med = h["median"]
    w("| connections | server | requests/s | p50 | p99 | errors |")
    w("|---|---|---|---|---|---|")
    for conns in h["connections"]:
        for name, by_c in med.items():
            m = by_c.get(str(conns)) or by_c.get(conns)
            if not m:
                continue
            w(f"| {conns} | {name} | {m['rps']:.0f} | {fmt(m['p50_ms'], ' ms', 2)} | "
              f"{fmt(m['p99_ms'], ' ms', 2)} | {m['errors']} |")
    w("")
    if h.get("instantiate_us") is not None:
        w(f"Per-request instantiation in wasmlet: {h['instantiate_us']:.1f} µs on average "
          "(`wasmlet_served_instantiate_seconds`).\n")
    t = h.get("targets")
    if t:
        w(f"- requests/s at 16 connections: {t['rps_ratio']:.2f}x `wasmtime serve` "
          f"(target >= 1.0x): {verdict(t['rps_met'])}")
        w(f"- p99 at 16 connections: {t['p99_ratio']:.2f}x `wasmtime serve` "
          f"(target <= 1.2x): {verdict(t['p99_met'])}\n")
    else:
        w("**wasmtime CLI not found**: the comparison with `wasmtime serve` is missing.\n")
