#!/usr/bin/env python3
"""cafe-lab beside PyTorch on the same workloads, on the CPU (the same thread count) or a GPU.

    python scripts/bench/side_by_side.py [--repeats N] [--threads T] [--workloads a,b]
                                         [--cafe-bin PATH] [--json out.json]
    python scripts/bench/side_by_side.py --device cuda [--size gpu] [--precisions fp32,tf32]
                                         [--cafe-cmd 'launch.sh workload'] [--json out.json]

For each workload (benches/src/workloads.rs; the PyTorch twins in torch_workloads.py) it
runs, N times alternately, the cafe-lab binary `cafe-workload` and the PyTorch worker, each
in its own process (so each peak RSS, from os.wait4's rusage, is that side's alone), each
doing `--warmup` untimed runs and `--per-process` timed runs. It prints, per workload, the
median seconds of each side, their ratio (cafe-lab / PyTorch), and the peak RSS of each
side's processes (largest over its processes) with its ratio; `--json` writes the same
with every time. Run it with the Python that has torch (`pip install torch`); the default
binary is built with `cargo build --release -p cafe-benches --bin cafe-workload`.

With `--device cuda` (see `gpu_main`) each side runs its workloads in two processes per
precision and round: `gradient_ipc1` alone (it switches second-order gradients on for its
process) and the others together, since on a GPU each side's peak memory is read from its own
allocator (cafe-lab: the CUDA memory pool's high-water mark; PyTorch:
`torch.cuda.max_memory_allocated`), not from the process. Times are between device
synchronisations, after `--warmup` untimed runs. The JSON file is rewritten after every
process, so a run cut short keeps what it measured.
"""

import argparse
import datetime
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
WORKER = os.path.join(HERE, "torch_workloads.py")
DEFAULT_WORKLOADS = ["convnet_fwd_bwd", "gradient_ipc1", "distribution_ipc10", "cafe_ipc10", "eval_epoch", "expert_epoch"]
LONG_WORKLOADS = {"cafe_ipc10", "expert_epoch"}
ALL_WORKLOADS = [
    "convnet_fwd_bwd",
    "convnet_nonorm_fwd_bwd",
    "gradient_ipc1",
    "distribution_ipc10",
    "cafe_ipc10",
    "cafe_step_ipc10",
    "eval_epoch",
    "expert_epoch",
]


def check_torch(python):
    r = subprocess.run(
        [python, "-c", "import torch; print(torch.__version__)"], capture_output=True, text=True
    )
    if r.returncode != 0:
        print(
            f"PyTorch is not importable by {python}.\n"
            "Install it (CPU wheels are enough) and run this script with that Python:\n"
            "    python3 -m venv ~/torchenv\n"
            "    ~/torchenv/bin/pip install torch --index-url https://download.pytorch.org/whl/cpu\n"
            "    ~/torchenv/bin/python scripts/bench/side_by_side.py\n"
            "(or simply `pip install torch`)",
            file=sys.stderr,
        )
        sys.exit(2)
    return r.stdout.strip()


def locate_cafe_bin(path):
    if path:
        if not os.access(path, os.X_OK):
            sys.exit(f"--cafe-bin {path}: not an executable file")
        return path
    cmd = ["cargo", "build", "--release", "-p", "cafe-benches", "--bin", "cafe-workload"]
    print("building:", " ".join(cmd), file=sys.stderr)
    r = subprocess.run(cmd, cwd=ROOT)
    if r.returncode != 0:
        sys.exit("cargo build failed; pass --cafe-bin PATH to use a built binary")
    return os.path.join(ROOT, "target", "release", "cafe-workload")


def spawn_and_wait(cmd, env, timeout, all_lines=False):
    """Runs `cmd`, returns (parsed last JSON line, peak RSS MiB, wall s). The child is reaped
    with os.wait4, whose rusage is that child's alone (ru_maxrss in KiB on Linux). With
    `all_lines`, the first item is the list of every JSON line."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # Read the pipes on threads so that a chatty child cannot block on a full pipe.
    chunks = {"out": [], "err": []}

    def drain(stream, key):
        for line in stream:
            chunks[key].append(line)

    threads = [
        threading.Thread(target=drain, args=(proc.stdout, "out"), daemon=True),
        threading.Thread(target=drain, args=(proc.stderr, "err"), daemon=True),
    ]
    for t in threads:
        t.start()
    deadline = None if timeout is None else start + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            break
        if deadline is not None and time.perf_counter() > deadline:
            proc.kill()
            os.wait4(proc.pid, 0)
            raise RuntimeError(f"timed out after {timeout} s: {shlex.join(cmd)}")
        time.sleep(0.05)
    proc.returncode = os.waitstatus_to_exitcode(status)
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    out, err = "".join(chunks["out"]), "".join(chunks["err"])
    if proc.returncode != 0:
        raise RuntimeError(f"exit {proc.returncode}: {shlex.join(cmd)}\n{err[-2000:]}")
    lines = [l for l in out.splitlines() if l.startswith("{")]
    if not lines:
        raise RuntimeError(f"no JSON line from {shlex.join(cmd)}\n{out[-2000:]}\n{err[-2000:]}")
    parsed = [json.loads(l) for l in lines] if all_lines else json.loads(lines[-1])
    return parsed, usage.ru_maxrss / 1024.0, wall


def side_env(threads):
    env = dict(os.environ)
    for k in ("RAYON_NUM_THREADS", "CANDLE_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[k] = str(threads)
    return env


def fmt(x, spec):
    return "-" if x is None else format(x, spec)


def gpu_main(args, workloads, torch_version):
    """The GPU comparison: per precision and round, each side's workloads in two processes
    (`gradient_ipc1` alone, the rest together), alternating sides; the tables per precision."""
    cafe_cmd = shlex.split(args.cafe_cmd) if args.cafe_cmd else [locate_cafe_bin(args.cafe_bin)]
    precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    if any(p not in ("fp32", "tf32") for p in precisions):
        sys.exit(f"--precisions {args.precisions}: fp32 and/or tf32")
    warm = 1 if args.warmup is None else args.warmup
    groups = [g for g in ([w for w in workloads if w == "gradient_ipc1"], [w for w in workloads if w != "gradient_ipc1"]) if g]
    env = dict(os.environ)
    started = time.time()
    results = {"meta": {}, "runs": [], "errors": [], "rows": []}

    def save():
        results["meta"] = {
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "host": platform.node(),
            "device": args.device,
            "size": args.size,
            "precisions": precisions,
            "repeats": args.repeats,
            "per_process": args.per_process,
            "warmup": warm,
            "torch": torch_version,
            "cafe_cmd": cafe_cmd,
            "seconds_total": round(time.time() - started, 1),
        }
        if args.json:
            tmp = args.json + ".tmp"
            with open(tmp, "w") as f:
                json.dump(results, f, indent=2)
                f.write("\n")
            os.replace(tmp, args.json)

    for precision in precisions:
        for r in range(args.repeats):
            for group in groups:
                for side in ("cafe", "torch"):
                    flags = ["--repeats", str(args.per_process), "--warmup", str(warm), "--device", args.device,
                             "--size", args.size, "--precision", precision]
                    cmd = ([*cafe_cmd, ",".join(group), *flags] if side == "cafe"
                           else [args.python, WORKER, ",".join(group), *flags])
                    try:
                        recs, rss, wall = spawn_and_wait(cmd, env, args.timeout, all_lines=True)
                    except Exception as e:  # keep going: a partial table beats none
                        results["errors"].append({"side": side, "precision": precision, "round": r + 1,
                                                  "workloads": group, "error": str(e)[-3000:]})
                        print(f"  ERROR {side} {precision} {group}: {str(e)[-500:]}", file=sys.stderr, flush=True)
                        save()
                        continue
                    for rec in recs:
                        rec.update(side=side, round=r + 1, precision_asked=precision,
                                   process_wall_s=round(wall, 3), process_peak_rss_mib=round(rss, 1))
                        results["runs"].append(rec)
                        print(f"  {precision} round {r + 1} {side:5} {rec['workload']}: "
                              f"{', '.join(f'{t:.4f}' for t in rec['times_s'])} s, "
                              f"GPU peak {rec.get('gpu_peak_mib')} MiB", file=sys.stderr, flush=True)
                    save()
    rows = []
    for precision in precisions:
        for w in workloads:
            row = {"workload": w, "precision": precision}
            for side in ("cafe", "torch"):
                recs = [x for x in results["runs"] if x["side"] == side and x["workload"] == w and x["precision_asked"] == precision]
                times = [t for x in recs for t in x["times_s"]]
                row[f"{side}_median_s"] = statistics.median(times) if times else None
                peaks = [x.get("gpu_peak_mib") for x in recs if x.get("gpu_peak_mib") is not None]
                row[f"{side}_gpu_peak_mib"] = max(peaks) if peaks else None
                reserved = [x.get("gpu_reserved_peak_mib") for x in recs if x.get("gpu_reserved_peak_mib") is not None]
                row[f"{side}_gpu_reserved_peak_mib"] = max(reserved) if reserved else None
                row[f"{side}_loops"] = [(x.get("outer_steps"), x.get("inner_epochs")) for x in recs][:1]
                if recs:
                    row["shape"] = recs[0].get("shape")
            ok = row["cafe_median_s"] and row["torch_median_s"]
            row["time_ratio"] = row["cafe_median_s"] / row["torch_median_s"] if ok else None
            ok = row["cafe_gpu_peak_mib"] and row["torch_gpu_peak_mib"]
            row["memory_ratio"] = row["cafe_gpu_peak_mib"] / row["torch_gpu_peak_mib"] if ok else None
            row["same_loop_counts"] = row["cafe_loops"] == row["torch_loops"]
            rows.append(row)
    results["rows"] = rows
    save()
    print(f"\n{args.device}, size {args.size}, {args.repeats} round(s), {warm} warm-up + {args.per_process} timed "
          f"run(s) per process; PyTorch {torch_version}\n")
    print("| precision | workload | one run | cafe-lab s | PyTorch s | time ratio | cafe-lab GPU peak MiB | "
          "PyTorch GPU peak MiB | memory ratio | reserved MiB (cafe / torch) |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---|")
    for row in rows:
        print(f"| {row['precision']} | {row['workload']} | {row.get('shape', '-')} | {fmt(row['cafe_median_s'], '.4f')} | "
              f"{fmt(row['torch_median_s'], '.4f')} | {fmt(row['time_ratio'], '.2f')} | "
              f"{fmt(row['cafe_gpu_peak_mib'], '.0f')} | {fmt(row['torch_gpu_peak_mib'], '.0f')} | "
              f"{fmt(row['memory_ratio'], '.2f')} | {fmt(row['cafe_gpu_reserved_peak_mib'], '.0f')} / "
              f"{fmt(row['torch_gpu_reserved_peak_mib'], '.0f')} |"
              + ("" if row["same_loop_counts"] else " LOOP COUNTS DIFFER"))
    print("\nratio = cafe-lab / PyTorch (below 1: cafe-lab is faster / smaller). GPU peak: bytes in tensors at "
          "their peak (cafe-lab: the CUDA memory pool's USED_MEM_HIGH; PyTorch: max_memory_allocated); "
          "reserved: what each allocator held from the driver.")
    if results["errors"]:
        print(f"\n{len(results['errors'])} process(es) failed: see 'errors' in {args.json or 'the log above'}")
    if args.json:
        print(f"wrote {args.json}")
    return 1 if results["errors"] else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3, help="alternating cafe/torch rounds (default 3)")
    ap.add_argument("--per-process", type=int, default=1, help="timed runs inside each process (default 1)")
    ap.add_argument(
        "--warmup",
        type=int,
        default=None,
        help="untimed runs inside each process first (default 1; 0 for cafe_ipc10, whose one run "
        "is already 10 matching steps and 450 epochs)",
    )
    ap.add_argument("--threads", type=int, default=2, help="threads of both sides (default 2)")
    ap.add_argument(
        "--workloads",
        default=",".join(DEFAULT_WORKLOADS),
        help=f"comma-separated, from {','.join(ALL_WORKLOADS)} (default: all but cafe_step_ipc10)",
    )
    ap.add_argument("--cafe-bin", default=None, help="cafe-workload binary (default: build it)")
    ap.add_argument("--python", default=sys.executable, help="Python with torch (default: this one)")
    ap.add_argument("--timeout", type=float, default=None, help="seconds per process (default none)")
    ap.add_argument("--json", default=None, help="also write the table and every time to this file")
    ap.add_argument("--device", default="cpu", help="cpu (default) or cuda[:N]: see gpu_main")
    ap.add_argument("--size", choices=["cpu", "gpu"], default=None, help="workload sizes (default: the device's)")
    ap.add_argument("--precisions", default="fp32,tf32", help="GPU only: fp32 and/or tf32 (default both)")
    ap.add_argument("--cafe-cmd", default=None,
                    help="GPU only: the cafe-lab side as a command prefix taking the workload arguments, "
                         "e.g. 'target-cuda/travel/cafe-lab-gpu/launch.sh workload' (default: --cafe-bin)")
    args = ap.parse_args()
    if args.size is None:
        args.size = "cpu" if args.device == "cpu" else "gpu"

    workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    unknown = [w for w in workloads if w not in ALL_WORKLOADS]
    if unknown:
        sys.exit(f"unknown workloads {unknown}; valid: {','.join(ALL_WORKLOADS)}")
    if min(args.repeats, args.per_process, args.threads) < 1 or (args.warmup or 0) < 0:
        sys.exit("--repeats, --per-process and --threads must be at least 1, --warmup at least 0")
    torch_version = check_torch(args.python)
    if args.device != "cpu":
        sys.exit(gpu_main(args, workloads, torch_version))
    cafe_bin = locate_cafe_bin(args.cafe_bin)
    env = side_env(args.threads)
    def warmup(w):
        if args.warmup is not None:
            return args.warmup
        return 0 if w in LONG_WORKLOADS else 1

    def common(w):
        return ["--repeats", str(args.per_process), "--warmup", str(warmup(w)), "--threads", str(args.threads)]

    sides = {
        "cafe": lambda w: [cafe_bin, w, *common(w)],
        "torch": lambda w: [args.python, WORKER, w, *common(w)],
    }
    load_before = os.getloadavg()
    started = time.time()
    rows = []
    for w in workloads:
        runs = {"cafe": [], "torch": []}
        for r in range(args.repeats):
            for side in ("cafe", "torch"):
                rec, rss, wall = spawn_and_wait(sides[side](w), env, args.timeout)
                rec["peak_rss_mib"] = round(rss, 1)
                rec["process_wall_s"] = round(wall, 3)
                rec["loadavg_1m"] = os.getloadavg()[0]
                runs[side].append(rec)
                print(
                    f"  {w} round {r + 1}/{args.repeats} {side:5}: "
                    f"{', '.join(f'{t:.3f}' for t in rec['times_s'])} s, peak RSS {rss:.0f} MiB",
                    file=sys.stderr,
                    flush=True,
                )
        row = {"workload": w, "warmup": warmup(w)}
        for side in ("cafe", "torch"):
            times = [t for rec in runs[side] for t in rec["times_s"]]
            row[f"{side}_times_s"] = times
            row[f"{side}_median_s"] = statistics.median(times)
            row[f"{side}_peak_rss_mib"] = max(rec["peak_rss_mib"] for rec in runs[side])
            row[f"{side}_runs"] = runs[side]
        row["time_ratio"] = row["cafe_median_s"] / row["torch_median_s"]
        row["rss_ratio"] = row["cafe_peak_rss_mib"] / row["torch_peak_rss_mib"]
        same = all(
            runs["cafe"][0].get(k) == runs["torch"][0].get(k) for k in ("outer_steps", "inner_epochs")
        )
        row["same_loop_counts"] = same
        if not same:
            print(
                f"WARNING {w}: loop counts differ: cafe {runs['cafe'][0]} torch {runs['torch'][0]}",
                file=sys.stderr,
            )
        rows.append(row)

    header = (
        "| workload | cafe-lab s (median) | PyTorch s (median) | ratio | "
        "cafe-lab peak RSS MiB | PyTorch peak RSS MiB | ratio |"
    )
    print(
        f"\n{len(workloads)} workloads, {args.threads} threads each side, {args.repeats} alternating rounds, "
        f"{'per-workload' if args.warmup is None else args.warmup} warm-up + {args.per_process} timed run(s) "
        f"per process; PyTorch {torch_version}; "
        f"load average {load_before[0]:.2f} at start, {os.getloadavg()[0]:.2f} at end\n"
    )
    print(header)
    print("|---|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print(
            f"| {row['workload']} | {row['cafe_median_s']:.3f} | {row['torch_median_s']:.3f} | "
            f"{row['time_ratio']:.2f} | {row['cafe_peak_rss_mib']:.0f} | {row['torch_peak_rss_mib']:.0f} | "
            f"{row['rss_ratio']:.2f} |"
        )
    torch_base = min((rec.get("import_rss_mib") or 0) for row in rows for rec in row["torch_runs"])
    print(
        f"\nratio = cafe-lab / PyTorch (below 1: cafe-lab is faster / smaller). PyTorch's peak RSS "
        f"includes the interpreter and the torch libraries ({torch_base:.0f} MiB after `import torch`)."
    )
    if args.json:
        meta = {
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "host": platform.node(),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "threads": args.threads,
            "repeats": args.repeats,
            "per_process": args.per_process,
            "warmup": args.warmup,
            "torch": torch_version,
            "torch_import_rss_mib": torch_base,
            "cafe_bin": cafe_bin,
            "loadavg_start": load_before,
            "loadavg_end": os.getloadavg(),
            "seconds_total": round(time.time() - started, 1),
        }
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "rows": rows}, f, indent=2)
            f.write("\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
