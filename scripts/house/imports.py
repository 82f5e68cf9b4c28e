#!/usr/bin/env python3
"""Import graph of the framework crate at file level: every `crate::...` and `super::...` path
resolved to the file that defines its module, the edges between files, and the import
circles (strongly connected components of more than one file).

    python3 scripts/house/imports.py [framework/src]

Prints the number of files and edges, then each circle. Exit status 1 when there is one.
"""
import os
import re
import sys

ROOT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "../../framework/src")
ROOT = os.path.normpath(ROOT)


def module_of(path):
    """Module path (list of names) of a source file."""
    rel = os.path.relpath(path, ROOT)[:-3].split(os.sep)
    if rel[-1] in ("mod", "lib"):
        rel = rel[:-1]
    return rel


def file_of(mod):
    """The file defining the longest prefix of `mod` that is a file module."""
    for n in range(len(mod), 0, -1):
        base = os.path.join(ROOT, *mod[:n])
        for cand in (base + ".rs", os.path.join(base, "mod.rs")):
            if os.path.isfile(cand):
                return cand
    return os.path.join(ROOT, "lib.rs")


files = []
for d, _, fs in os.walk(ROOT):
    files += [os.path.join(d, f) for f in fs if f.endswith(".rs")]

PATH = re.compile(r"\b(crate|super)((?:::\w+)+)")
edges = {}
for f in files:
    text = re.sub(r"//.*", "", open(f).read())
    # Tests inside a file import freely.
    text = text.split("#[cfg(test)]")[0]
    here = module_of(f)
    is_dir_mod = os.path.basename(f) in ("mod.rs", "lib.rs")
    out = set()
    # `use crate::a::{b, c::D}` braces: expand the first level.
    for m in re.finditer(r"\buse\s+(crate|super)((?:::\w+)*)::\{([^;]*)\};", text, re.S):
        for item in re.split(r",", m.group(3)):
            item = item.strip().split("::")[0].split(" as ")[0].strip("{} \n")
            if item and item != "self":
                text += f"\n{m.group(1)}{m.group(2)}::{item}\n"
    for m in PATH.finditer(text):
        parts = m.group(2).split("::")[1:]
        if m.group(1) == "crate":
            mod = parts
        else:
            parent = here if is_dir_mod else here[:-1]
            mod = parent[:-1] + parts if False else parent + parts
            k = 0
            while k < len(parts) and parts[k] == "super":
                k += 1
            mod = (parent[: len(parent) - k] if k else parent) + parts[k:]
        target = file_of(mod)
        if target != f and not target.endswith("lib.rs"):
            out.add(target)
    edges[f] = out

# Tarjan's strongly connected components.
index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]
sys.setrecursionlimit(10000)


def strong(v):
    index[v] = low[v] = counter[0]
    counter[0] += 1
    stack.append(v)
    on.add(v)
    for w in edges.get(v, ()):
        if w not in index:
            strong(w)
            low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = stack.pop()
            on.discard(w)
            comp.append(w)
            if w == v:
                break
        sccs.append(comp)


for v in edges:
    if v not in index:
        strong(v)
circles = [sorted(os.path.relpath(x, ROOT) for x in c) for c in sccs if len(c) > 1]
print(f"{len(files)} files, {sum(len(v) for v in edges.values())} import edges, {len(circles)} circles")
for c in circles:
    print("circle:", " <-> ".join(c))
sys.exit(1 if circles else 0)
