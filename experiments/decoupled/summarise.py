#!/usr/bin/env python3
"""The table of experiments/decoupled/grid.sh: test accuracy (%) mean +- std over the seeds
found, per ipc and method, under the hard-label recipe (`synthetic`) and the soft-label recipe
(`synthetic-kd`), the random subset (RDED's runs evaluate it: `random`, `random-kd`) beside.

    python3 experiments/decoupled/summarise.py runs/decoupled-grid
"""
import json
import re
import statistics
import sys
from pathlib import Path

METHODS = ["sre2l", "rded", "dm", "mtt"]
NAMES = {"sre2l": "SRe2L", "rded": "RDED", "dm": "DM", "mtt": "MTT", "random": "random subset"}


def cell(values):
    if not values:
        return "-"
    mean = 100 * statistics.mean(values)
    std = 100 * statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.2f} +- {std:.2f} (n={len(values)})"


def main(root):
    found = {}  # (method, ipc) -> {set: [accuracy per seed]}
    for results in sorted(Path(root).glob("*-ipc*-seed*/results.json")):
        m = re.fullmatch(r"(\w+)-ipc(\d+)-seed(\d+)", results.parent.name)
        if not m:
            continue
        method, ipc = m.group(1), int(m.group(2))
        for e in json.loads(results.read_text())["evaluations"]:
            # One network per seed (grid.toml): its accuracy is the seed's number.
            key = (method, ipc) if e["set"].startswith("synthetic") else ("random", ipc)
            kind = "soft" if e["set"].endswith("-kd") else "hard"
            found.setdefault(key, {}).setdefault(kind, []).append(e["mean"])
    ipcs = sorted({ipc for _, ipc in found})
    print("| ipc | method | hard labels | soft labels (KD) |")
    print("|---|---|---|---|")
    for ipc in ipcs:
        for method in METHODS + ["random"]:
            sets = found.get((method, ipc))
            if sets:
                print(f"| {ipc} | {NAMES[method]} | {cell(sets.get('hard', []))} | {cell(sets.get('soft', []))} |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/decoupled-grid")
