#!/usr/bin/env python3
"""The summary of scripts/cuda/device_check.sh: reads what its parts left in OUT and writes
OUT/summary.md and OUT/summary.json. Any part may be missing or partial (failed, timed out,
not run): the summary says so and shows the rest.

    device_check_summary.py OUT
"""

import glob
import json
import os
import sys


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def read_jsonl(path):
    out = []
    try:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line.startswith("{"):
                    try:
                        out.append(json.loads(line))
                    except ValueError:
                        pass
    except OSError:
        pass
    return out


def fmt(x, spec):
    return "-" if x is None else format(x, spec)


def parts(out):
    rows = []
    try:
        with open(os.path.join(out, "parts.tsv")) as f:
            for line in f:
                name, status, seconds = (line.rstrip("\n").split("\t") + ["", ""])[:3]
                rows.append({"part": name, "status": status, "seconds": int(seconds or 0)})
    except OSError:
        pass
    return rows


def env(out):
    try:
        with open(os.path.join(out, "env", "log")) as f:
            text = f.read()
    except OSError:
        return {}
    info = {}
    for line in text.splitlines():
        if line.startswith("torch "):
            info["torch"] = line
        if line.startswith("GPU ") and "gpu_list" not in info:
            info["gpu_list"] = line
        if "all libraries found" in line or "libraries missing" in line:
            info["libraries"] = line.strip()
    return info


def condensations(out):
    rows = []
    for path in sorted(glob.glob(os.path.join(out, "condense", "*", "results.json"))):
        name = os.path.basename(os.path.dirname(path))
        r = read_json(path) or {}
        row = {"method": name, "ipc": r.get("ipc"), "seconds": r.get("seconds")}
        cond = r.get("condensation") or {}
        row["iterations"] = cond.get("iterations")
        row["seconds_per_iteration"] = cond.get("seconds_per_iteration_median")
        for ev in r.get("evaluations", []):
            if ev.get("set") in ("synthetic", "random"):
                row[ev["set"]] = {"mean": ev.get("mean"), "std": ev.get("std"), "nets": len(ev.get("accuracies", []))}
        row["compute"] = r.get("compute")
        rows.append(row)
    return rows


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    summary = {
        "parts": parts(out),
        "env": env(out),
        "correctness": read_json(os.path.join(out, "correctness", "device_check.json")),
        "bench": read_json(os.path.join(out, "bench", "side_by_side.json")),
        "bench_candle_conv": read_jsonl(os.path.join(out, "bench", "candle_conv.jsonl")),
        "condense": condensations(out),
    }
    md = ["# cafe-lab device check", ""]
    for k in ("gpu_list", "torch", "libraries"):
        if summary["env"].get(k):
            md.append(f"- {summary['env'][k]}")
    md += ["", "| part | status | seconds |", "|---|---|---:|"]
    md += [f"| {p['part']} | {p['status']} | {p['seconds']} |" for p in summary["parts"]]

    c = summary["correctness"]
    md += ["", "## Correctness (device against the CPU)", ""]
    if c:
        failed = [x for x in c["checks"] if not x["passed"]]
        compute = c.get("compute") or {}
        md.append(f"{len(c['checks'])} checks, {len(failed)} failed ({compute.get('gpu') or compute.get('device')}). "
                  "Relative error: largest |device - cpu| over the largest |cpu|; per part and precision the "
                  "check closest to its tolerance:")
        md += ["", "| part | precision | check | relative error | its tolerance | failed |",
               "|---|---|---|---:|---:|---:|"]
        groups = {}
        for x in c["checks"]:
            prec = next((p for p in ("f32-tf32", "f64", "f32") if f" {p}:" in x["name"]), "-")
            groups.setdefault((x["part"], prec), []).append(x)
        def closeness(x):
            # A check that erred (no error) ranks first; else its error as a share of its tolerance.
            if x["rel_err"] is None:
                return float("inf")
            tol = x["tolerance"] or 0.0
            return x["rel_err"] / tol if tol > 0 else (float("inf") if x["rel_err"] > 0 else 0.0)
        for (part, prec), xs in groups.items():
            worst = max(xs, key=closeness)
            name = worst["name"].replace("|", "/")
            md.append(f"| {part} | {prec} | {name} | {fmt(worst['rel_err'], '.2e')} | "
                      f"{fmt(worst['tolerance'], '.0e')} | {sum(not x['passed'] for x in xs)} |")
        for x in failed:
            md.append(f"- FAILED {x['part']}/{x['name']}: {fmt(x['rel_err'], '.2e')} ({x['note']})")
    else:
        md.append("no result (see correctness/log)")

    b = summary["bench"]
    md += ["", "## Speed and memory beside PyTorch (GPU sizes)", ""]
    if b and b.get("rows"):
        meta = b.get("meta", {})
        md.append(f"PyTorch {meta.get('torch')}, {meta.get('per_process')} timed run(s) after {meta.get('warmup')} "
                  "warm-up per process; ratio = cafe-lab / PyTorch.")
        md += ["", "| precision | workload | one run | cafe-lab s | PyTorch s | time ratio | cafe-lab GPU peak MiB | "
                   "PyTorch GPU peak MiB | memory ratio |", "|---|---|---|---:|---:|---:|---:|---:|---:|"]
        for r in b["rows"]:
            md.append(f"| {r['precision']} | {r['workload']} | {r.get('shape', '-')} | {fmt(r['cafe_median_s'], '.4f')} | "
                      f"{fmt(r['torch_median_s'], '.4f')} | {fmt(r['time_ratio'], '.2f')} | "
                      f"{fmt(r['cafe_gpu_peak_mib'], '.0f')} | {fmt(r['torch_gpu_peak_mib'], '.0f')} | "
                      f"{fmt(r['memory_ratio'], '.2f')} |")
        for e in b.get("errors", []):
            md.append(f"- ERROR {e['side']} {e['precision']} {e['workloads']}: {e['error'][-300:]}")
    elif b and b.get("runs"):
        md.append(f"partial: {len(b['runs'])} runs recorded, no table (see bench/side_by_side.json)")
    else:
        md.append("no result (see bench/log)")
    if summary["bench_candle_conv"]:
        md += ["", "cafe-lab with candle's own convolutions (CAFE_CUDA_CONV=candle, fp32):", ""]
        for r in summary["bench_candle_conv"]:
            md.append(f"- {r.get('workload')}: {fmt(r.get('median_s'), '.4f')} s, GPU peak {r.get('gpu_peak_mib')} MiB "
                      f"({r.get('convolutions')})")

    md += ["", "## One short Fashion-MNIST condensation per method", ""]
    if summary["condense"]:
        md += ["| method | ipc | iterations | s / iteration | synthetic accuracy % | random baseline % | total s |",
               "|---|---:|---:|---:|---|---|---:|"]
        for r in summary["condense"]:
            acc = lambda e: "-" if not e else f"{100 * e['mean']:.2f} ± {100 * e['std']:.2f} ({e['nets']} nets)"  # noqa: E731
            md.append(f"| {r['method']} | {r['ipc']} | {r['iterations']} | {fmt(r['seconds_per_iteration'], '.3f')} | "
                      f"{acc(r.get('synthetic'))} | {acc(r.get('random'))} | {fmt(r['seconds'], '.1f')} |")
    else:
        md.append("no result (see condense/log)")
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
        f.write("\n")
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
