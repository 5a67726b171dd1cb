#!/usr/bin/env bash
# check-layering.sh: keeps src/ layered as drawn in src/README.md.
#
# Reads every #include "..." of src/**/*.[ch] and fails (exit 1) when
#   - a file includes a folder above its own (the order is LAYERS below,
#     lowest first: a folder may include itself and the folders under it;
#     src/main.c sits on top of them all), or a folder not in LAYERS;
#   - an include names a file that does not exist under src/;
#   - files include each other in a cycle (a.h -> b.h -> a.h).
# One line per violation, then "layering: ok" or "layering: N violations".
# Run from anywhere: scripts/check-layering.sh [src-dir].
set -euo pipefail

# The allowed order, lowest first. A new folder gets its place here.
LAYERS="util metrics kube log wasm image volume net probe serve server pod node run cli"

src=${1:-"$(cd "$(dirname "$0")/.." && pwd)/src"}
[ -d "$src" ] || { echo "check-layering: no such directory: $src" >&2; exit 2; }

exec python3 - "$src" "$LAYERS" <<'PY'
import os, re, sys

src, layers = sys.argv[1], sys.argv[2].split()
rank = {name: i for i, name in enumerate(layers)}
rank["main.c"] = len(layers)  # src/main.c: the top
include = re.compile(r'^\s*#\s*include\s+"([^"]+)"')

def folder(rel):
    """The layer a file under src/ belongs to ("main.c" for files at the top)."""
    return rel.split("/", 1)[0] if "/" in rel else rel

files = []
for root, dirs, names in os.walk(src):
    dirs.sort()
    for n in sorted(names):
        if n.endswith((".c", ".h")):
            files.append(os.path.relpath(os.path.join(root, n), src))

violations = []
graph = {}
for rel in files:
    here = folder(rel)
    edges = graph.setdefault(rel, [])
    with open(os.path.join(src, rel), encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            m = include.match(line)
            if not m:
                continue
            inc = m.group(1)
            where = f"src/{rel}:{lineno}"
            there = folder(inc)
            if not os.path.isfile(os.path.join(src, inc)):
                violations.append(f'{where}: includes "{inc}", which is not a file under src/')
                continue
            edges.append(inc)
            if here not in rank:
                violations.append(f'{where}: folder {here}/ is not in the layering order')
            elif there not in rank:
                violations.append(f'{where}: includes "{inc}": folder {there}/ is not in '
                                  'the layering order')
            elif rank[there] > rank[here]:
                violations.append(f'{where}: includes "{inc}": {here} may not include '
                                  f'{there} (it sits above)')

# Include cycles: strongly connected components of the file graph (Tarjan,
# iterative so that deep include chains cannot hit Python's recursion limit).
index, low, on_stack, stack, sccs, counter = {}, {}, set(), [], [], [0]
for start in files:
    if start in index:
        continue
    work = [(start, iter(graph.get(start, [])))]
    index[start] = low[start] = counter[0]
    counter[0] += 1
    stack.append(start)
    on_stack.add(start)
    while work:
        node, it = work[-1]
        advanced = False
        for nxt in it:
            if nxt not in index:
                index[nxt] = low[nxt] = counter[0]
                counter[0] += 1
                stack.append(nxt)
                on_stack.add(nxt)
                work.append((nxt, iter(graph.get(nxt, []))))
                advanced = True
                break
            if nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if advanced:
            continue
        work.pop()
        if work:
            low[work[-1][0]] = min(low[work[-1][0]], low[node])
        if low[node] == index[node]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == node:
                    break
            if len(comp) > 1 or node in graph.get(node, []):
                sccs.append(sorted(comp))

for comp in sccs:
    # Show one concrete cycle through the component, in include order.
    members, path, seen = set(comp), [comp[0]], {comp[0]}
    while True:
        nxt = next((n for n in graph[path[-1]] if n in members), None)
        if nxt is None or nxt in seen:
            if nxt is not None:
                path = path[path.index(nxt):] + [nxt]
            break
        path.append(nxt)
        seen.add(nxt)
    violations.append("include cycle: " + " -> ".join("src/" + p for p in path))

for v in violations:
    print("layering: " + v)
if violations:
    print(f"layering: {len(violations)} violation{'s' if len(violations) != 1 else ''}")
    sys.exit(1)
print("layering: ok")
PY
