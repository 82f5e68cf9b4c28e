#!/usr/bin/env python3
"""Side by side: the public PyTorch reference code and cafe-lab, same method, same data, same
reduced settings, on the CPU; prints both test accuracies (and both random baselines).

For each method it
1. makes a patched scratch copy of the reference checkout (patch_reference.py: a few
   compatibility patches for current PyTorch/SciPy and opt-in --harness_* flags; the checkout
   itself is never touched),
2. runs the reference script (DC/DSA: main.py, DM: main_DM.py, CAFE: distill.py) with
   --num_exp 1 and the reduced settings, evaluating only the final synthetic set,
3. runs the reference's random baseline (ref_random_baseline.py: ipc random real images per
   class, the reference's own evaluate_synset),
4. runs `cafe-lab` with every setting passed explicitly (matcher, scheduler, augmentation,
   init, lr_img, iterations, batch_real, evaluation nets/epochs/augmentation), then
   `cafe-lab baseline` with the same evaluation,
5. prints mean +- std (population std over the evaluation networks) of each, the difference
   and whether it is within noise (|diff| <= 2 * sqrt(std_ref^2 + std_lab^2)), wall times.

The two sides use different random generators (and the reference seeds its networks from the
clock), so only distributions compare: use several evaluation networks.

Requirements: a Python with torch, torchvision, scipy and numpy (CPU wheels are enough):

    python3 -m venv /work/torchenv && /work/torchenv/bin/pip install torch torchvision scipy numpy

and the reference checkouts (any work tree of the two repositories):

    git clone https://github.com/VICO-UoE/DatasetCondensation  # tested at 53f63a6
    git clone https://github.com/kaiwang960112/CAFE             # tested at b718ff5

Example (Fashion-MNIST from the Debian package dataset-fashion-mnist, 2 threads):

    nice python3 scripts/reference/side_by_side.py --method dc --ipc 1 --iterations 50 \\
        --batch-real 64 --eval-nets 3 --eval-epochs 300 --threads 2 \\
        --dc-repo /path/DatasetCondensation --cafe-repo /path/CAFE --json runs/ref/dc.json

The evaluation epochs E go to both sides: the reference's hard-coded 300/600/1000 are replaced
by E (--harness_epoch_eval; DM: its own --epoch_eval_train), cafe-lab gets --eval-epochs E.
"""

import argparse
import gzip
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import patch_reference  # noqa: E402

FULL_DSA = "color_crop_cutout_flip_scale_rotate"
TORCH_INSTALL = "python3 -m venv /work/torchenv && /work/torchenv/bin/pip install torch torchvision scipy numpy"
IDX_FILES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]


def method_spec(method, args):
    """What each side runs for `method`: the published settings of the reference scripts
    (README commands), which cafe-lab gets as explicit flags.

    Returns dict(repo, script, ref_args, lab_args, eval_augment).
    """
    common_ref = ["--dataset", "FashionMNIST", "--model", "ConvNet", "--ipc", str(args.ipc),
                  "--num_exp", "1", "--num_eval", str(args.eval_nets), "--Iteration", str(args.iterations),
                  "--batch_real", str(args.batch_real), "--harness_final_eval_only", "1"]
    if args.seed is not None:
        common_ref += ["--harness_seed", str(args.seed)]
    common_lab = ["--dataset", "fashion-mnist", "--arch", "convnet", "--ipc", str(args.ipc),
                  "--iterations", str(args.iterations), "--batch-real", str(args.batch_real),
                  "--eval-nets", str(args.eval_nets), "--eval-epochs", str(args.eval_epochs),
                  "--lr-net", "0.01"]
    if args.seed is not None:
        common_lab += ["--seed", str(args.seed)]
    E = ["--harness_epoch_eval", str(args.eval_epochs)]

    def init_for(published):
        return published if args.init == "default" else args.init

    if method == "dc":
        # main.py --method DC (init noise, lr_img 0.1 are its defaults); evaluation: get_daparam
        # gives 'none' for FashionMNIST + ConvNet.
        return dict(repo="dc", script="main.py", eval_augment="none",
                    ref_args=common_ref + E + ["--method", "DC", "--init", init_for("noise"), "--lr_img", "0.1"],
                    lab_args=common_lab + ["--matcher", "gradient", "--scheduler", "fixed", "--augment", "none",
                                           "--init", init_for("noise"), "--lr-img", "0.1", "--eval-augment", "none"])
    if method == "dsa":
        # README: --init real --method DSA --dsa_strategy color_crop_cutout_flip_scale_rotate.
        return dict(repo="dc", script="main.py", eval_augment="dsa",
                    ref_args=common_ref + E + ["--method", "DSA", "--init", init_for("real"), "--lr_img", "0.1",
                                               "--dsa_strategy", FULL_DSA],
                    lab_args=common_lab + ["--matcher", "gradient", "--scheduler", "fixed", "--augment", "dsa",
                                           "--init", init_for("real"), "--lr-img", "0.1", "--eval-augment", "dsa"])
    if method == "dm":
        # README: main_DM.py --dsa_strategy color_crop_cutout_flip_scale_rotate --init real --lr_img 1.
        # DM evaluates with DSA (args.dsa) for --epoch_eval_train epochs.
        return dict(repo="dc", script="main_DM.py", eval_augment="dsa",
                    ref_args=common_ref + ["--epoch_eval_train", str(args.eval_epochs), "--init", init_for("real"),
                                           "--lr_img", "1", "--dsa_strategy", FULL_DSA],
                    lab_args=common_lab + ["--matcher", "distribution", "--scheduler", "none", "--augment", "dsa",
                                           "--init", init_for("real"), "--lr-img", "1", "--eval-augment", "dsa"])
    if method in ("cafe", "cafe-dsa"):
        # run.sh: distill.py --dataset CIFAR10 --model ConvNet --ipc 10 (init noise, lr_img 0.1,
        # lambda_1 0.04, lambda_2 0.03 are its defaults). The watchers' probe: --cafe-probe per class.
        dsa = method == "cafe-dsa"
        probe = str(args.cafe_probe)
        lab_sched = ["--set", f"scheduler.probe_per_class={probe}", "--set", "scheduler.probe=fresh",
                     "--set", "scheduler.probe_value=reference",
                     "--set", f"scheduler.max_outer_steps={args.cafe_max_steps}",
                     "--set", f"scheduler.max_inner_epochs={args.cafe_max_steps}"]
        return dict(repo="cafe", script="distill.py", eval_augment="dsa" if dsa else "none",
                    ref_args=common_ref + E + ["--method", "DSA" if dsa else "DC", "--init", init_for("noise"),
                                               "--lr_img", "0.1", "--harness_probe", probe,
                                               "--harness_max_steps", str(args.cafe_max_steps)]
                    + (["--dsa_strategy", FULL_DSA] if dsa else []),
                    lab_args=common_lab + ["--matcher", "cafe", "--scheduler", "dynamic",
                                           "--augment", "dsa" if dsa else "none", "--init", init_for("noise"),
                                           "--lr-img", "0.1", "--eval-augment", "dsa" if dsa else "none"]
                    + lab_sched)
    raise ValueError(method)


def fail(msg):
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(2)


def check_python(python):
    try:
        out = subprocess.run([python, "-c", "import torch, torchvision, scipy, numpy; "
                              "print(torch.__version__, torchvision.__version__, scipy.__version__, numpy.__version__)"],
                             capture_output=True, text=True)
    except OSError as e:
        fail(f"cannot run {python} ({e}). Install PyTorch (CPU is enough): {TORCH_INSTALL}")
    if out.returncode != 0:
        fail(f"{python} cannot import torch/torchvision/scipy/numpy:\n{out.stderr.strip()}\n"
             f"Install them: {TORCH_INSTALL} (then pass --python /work/torchenv/bin/python)")
    torch_v, tv_v, scipy_v, np_v = out.stdout.split()
    return dict(torch=torch_v, torchvision=tv_v, scipy=scipy_v, numpy=np_v)


def prepare_data(data_dir, work):
    """torchvision's FashionMNIST reads <root>/FashionMNIST/raw/<name> (uncompressed; with
    download=True it only downloads when these are missing). Decompress the IDX files there."""
    raw = os.path.join(work, "data", "FashionMNIST", "raw")
    os.makedirs(raw, exist_ok=True)
    for name in IDX_FILES:
        dst = os.path.join(raw, name)
        if os.path.exists(dst):
            continue
        for src in (os.path.join(data_dir, name + ".gz"), os.path.join(data_dir, name)):
            if os.path.exists(src):
                break
        else:
            fail(f"{data_dir} lacks {name}[.gz]: give --data-dir the folder of the Fashion-MNIST IDX files "
                 "(Debian: apt-get install dataset-fashion-mnist -> /usr/share/datasets/fashion-mnist)")
        opener = gzip.open if src.endswith(".gz") else open
        with opener(src, "rb") as fi, open(dst + ".part", "wb") as fo:
            shutil.copyfileobj(fi, fo)
        os.replace(dst + ".part", dst)
    return os.path.join(work, "data")


REUSE = False  # set by --reuse


def reusable(cmd, log_path, done_marker):
    """(wall seconds or None, text) of an earlier run of exactly `cmd` that completed, else None."""
    if not (REUSE and os.path.exists(log_path)):
        return None
    with open(log_path) as fh:
        text = fh.read()
    lines = text.splitlines()
    if not lines or lines[0] != "$ " + " ".join(cmd):
        return None
    m = re.search(r"^# exit (\d+), wall ([0-9.]+) s$", text, re.M)
    if m:
        return (float(m.group(2)), text) if m.group(1) == "0" else None
    # A log written before the exit line existed: complete if it reached its last output.
    return (None, text) if done_marker and re.search(done_marker, text) else None


def run_logged(cmd, cwd, env, log_path, threads, done_marker=None):
    """Runs `cmd` under nice, output to `log_path`; returns (wall seconds, output text).
    With --reuse, a completed earlier run of the same command is read back instead."""
    earlier = reusable(cmd, log_path, done_marker)
    if earlier:
        print(f"  reusing {log_path}", flush=True)
        return earlier
    start = time.time()
    with open(log_path, "w") as log:
        log.write("$ " + " ".join(cmd) + "\n")
        log.flush()
        proc = subprocess.run(["nice", "-n", "10"] + cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
    wall = time.time() - start
    with open(log_path, "a") as log:
        log.write(f"# exit {proc.returncode}, wall {wall:.1f} s\n")
    with open(log_path) as fh:
        text = fh.read()
    if proc.returncode != 0:
        tail = "\n".join(text.splitlines()[-25:])
        fail(f"`{' '.join(cmd)}` (in {cwd}) exited {proc.returncode}; log {log_path}:\n{tail}")
    return wall, text


def stats(accs):
    n = len(accs)
    mean = sum(accs) / n
    return mean, math.sqrt(sum((a - mean) ** 2 for a in accs) / n)


def ref_evaluations(text, expected):
    """The reference's evaluations, by iteration: {iteration: [test accuracy of each network]}.
    Each evaluation block starts with '... iteration = I' and holds one 'Evaluate_NN: ... test
    acc = X' line per network."""
    blocks = {}
    current = None
    for line in text.splitlines():
        m = re.search(r"model_eval = \S+, iteration = (\d+)", line)
        if m:
            current = int(m.group(1))
            blocks[current] = []
            continue
        m = re.search(r"Evaluate_\d+: .*test acc = ([0-9.]+)", line)
        if m and current is not None:
            blocks[current].append(float(m.group(1)))
    for it, accs in blocks.items():
        if len(accs) != expected:
            fail(f"expected {expected} evaluation lines from the reference at iteration {it}, found {len(accs)}")
    if not blocks:
        fail("the reference printed no evaluation")
    return blocks


def load_cache(path):
    if os.path.exists(path):
        with open(path) as fh:
            return json.load(fh)
    return {}


def save_cache(path, cache):
    with open(path, "w") as fh:
        json.dump(cache, fh, indent=1)


def lab_eval(results_path, set_name):
    with open(results_path) as fh:
        res = json.load(fh)
    for ev in res["evaluations"]:
        if ev["set"] == set_name:
            return [float(a) for a in ev["accuracies"]], res
    fail(f"{results_path} has no evaluation of the {set_name} set")


def run_method(method, args, env, data_root, work, baselines):
    spec = method_spec(method, args)
    repo_path = args.dc_repo if spec["repo"] == "dc" else args.cafe_repo
    if not repo_path:
        fail(f"--method {method} needs --{spec['repo']}-repo (a checkout of "
             f"{'VICO-UoE/DatasetCondensation' if spec['repo'] == 'dc' else 'kaiwang960112/CAFE'})")
    logs = os.path.join(work, "logs")
    os.makedirs(logs, exist_ok=True)
    tag = f"{method}-ipc{args.ipc}"
    row = dict(method=method, ipc=args.ipc, reference_command=None, cafe_lab_command=None)
    if args.sides == "lab":
        run_lab_side(spec, args, env, work, baselines, tag, logs, row)
        return None
    # A fresh patched copy, unless --reuse reads back a run whose copy must stay as it is (a
    # reference process may still be running in it).
    scratch = os.path.join(work, "scratch", f"{method}-ipc{args.ipc}")
    try:
        if REUSE and os.path.isdir(scratch):
            revision = patch_reference._revision(repo_path)
        else:
            revision, _ = patch_reference.make_scratch_copy(spec["repo"], repo_path, scratch)
    except patch_reference.PatchError as e:
        fail(str(e))
    row["reference_revision"] = revision
    # Reference: condensation + evaluation of the final set. With --init real the reference
    # also evaluates iteration 0, its initial set: a random real subset, i.e. the random baseline
    # with the reference's own sampling and evaluation (no second process, no second data load).
    init = spec["ref_args"][spec["ref_args"].index("--init") + 1]
    ref_args = list(spec["ref_args"])
    if init == "real":
        ref_args[ref_args.index("--harness_final_eval_only") + 1] = "2"
    ref_cmd = [args.python, spec["script"], "--data_path", data_root, "--save_path", "result"] + ref_args
    row["reference_command"] = " ".join(ref_cmd)
    print(f"[{tag}] reference {spec['script']} ...", flush=True)
    wall, text = run_logged(ref_cmd, scratch, env, os.path.join(logs, f"{tag}-reference.log"), args.threads,
                            done_marker=r"Final Results")
    blocks = ref_evaluations(text, args.eval_nets)
    if args.iterations not in blocks:
        fail(f"the reference did not evaluate iteration {args.iterations}")
    row["reference"] = dict(accuracies=blocks[args.iterations], wall_s=None if wall is None else round(wall, 1))
    loops = [(int(o), int(i)) for o, i in re.findall(r"harness: iteration \d+ outer (\d+) inner (\d+)", text)]
    if loops:
        # CAFE's dynamic loops (distill.py runs Iteration+1 iterations; the last one after the
        # final evaluation, so it is left out as cafe-lab does not run it).
        loops = loops[: args.iterations]
        row["reference"]["outer_steps"] = [o for o, _ in loops]
        row["reference"]["inner_epochs"] = [i for _, i in loops]

    # Reference: random baseline. From iteration 0 with --init real; else ref_random_baseline.py,
    # cached on disk per evaluation settings (evaluate_synset is the same code in both repos).
    key = f"ref|{spec['eval_augment']}|ipc{args.ipc}|nets{args.eval_nets}|ep{args.eval_epochs}|seed{args.seed}"
    if init == "real" and 0 in blocks:
        baselines[key] = dict(accuracies=blocks[0], wall_s=None, source=f"{spec['script']} iteration 0")
    elif key not in baselines and args.no_reference_baseline:
        baselines[key] = None
    elif key not in baselines:
        cmd = [args.python, os.path.join(HERE, "ref_random_baseline.py"), "--dataset", "FashionMNIST",
               "--data_path", data_root, "--ipc", str(args.ipc), "--num_eval", str(args.eval_nets),
               "--epoch_eval_train", str(args.eval_epochs), "--aug", spec["eval_augment"]]
        if args.seed is not None:
            cmd += ["--seed", str(args.seed)]
        print(f"[{tag}] reference random baseline ...", flush=True)
        wall, text = run_logged(cmd, scratch, env, os.path.join(logs, f"{tag}-reference-random.log"), args.threads)
        last = json.loads(text.strip().splitlines()[-1])
        baselines[key] = dict(accuracies=last["accuracies"], wall_s=round(wall, 1), source="ref_random_baseline.py")
        save_cache(os.path.join(work, "baselines.json"), baselines)
    row["reference_random"] = baselines[key] and dict(baselines[key])

    run_lab_side(spec, args, env, work, baselines, tag, logs, row)

    for side in ("reference", "reference_random", "cafe_lab", "cafe_lab_random"):
        if row[side] is None:
            continue
        m, s = stats(row[side]["accuracies"])
        row[side]["mean"], row[side]["std"] = m, s
    diff = row["cafe_lab"]["mean"] - row["reference"]["mean"]
    noise = 2 * math.sqrt(row["cafe_lab"]["std"] ** 2 + row["reference"]["std"] ** 2)
    row["difference"] = diff
    row["within_noise"] = abs(diff) <= noise
    return row


def run_lab_side(spec, args, env, work, baselines, tag, logs, row):
    """cafe-lab: condensation + evaluation of the synthetic set, then its random baseline."""
    out = os.path.join(work, "cafe-lab", tag)
    lab_cmd = [args.cafe_bin] + spec["lab_args"] + ["--data-dir", args.data_dir, "--out", out, "--force",
                                                    "--no-baseline", "-q"]
    row["cafe_lab_command"] = " ".join(lab_cmd)
    print(f"[{tag}] cafe-lab ...", flush=True)
    wall, _ = run_logged(lab_cmd, HERE, env, os.path.join(logs, f"{tag}-cafe-lab.log"), args.threads)
    accs, res = lab_eval(os.path.join(out, "results.json"), "synthetic")
    row["cafe_lab"] = dict(accuracies=accs, wall_s=round(wall, 1), condensation=res.get("condensation"))

    key = f"lab|{spec['eval_augment']}|ipc{args.ipc}|nets{args.eval_nets}|ep{args.eval_epochs}|seed{args.seed}"
    if key not in baselines:
        bout = os.path.join(work, "cafe-lab", f"random-{spec['eval_augment']}-ipc{args.ipc}-"
                            f"{args.eval_nets}x{args.eval_epochs}-seed{args.seed}")
        cmd = [args.cafe_bin, "baseline", "--dataset", "fashion-mnist", "--arch", "convnet",
               "--data-dir", args.data_dir, "--ipc", str(args.ipc), "--eval-nets", str(args.eval_nets),
               "--eval-epochs", str(args.eval_epochs), "--eval-augment", spec["eval_augment"],
               "--out", bout, "--force", "-q"]
        if args.seed is not None:
            cmd += ["--seed", str(args.seed)]
        print(f"[{tag}] cafe-lab random baseline ...", flush=True)
        wall, _ = run_logged(cmd, HERE, env, os.path.join(logs, f"{tag}-cafe-lab-random.log"), args.threads)
        baselines[key] = dict(accuracies=lab_eval(os.path.join(bout, "results.json"), "random")[0],
                              wall_s=round(wall, 1), source="cafe-lab baseline")
        save_cache(os.path.join(work, "baselines.json"), baselines)
    row["cafe_lab_random"] = dict(baselines[key])


def pct(side):
    if side is None:
        return "not run"
    return f"{100 * side['mean']:.2f} +- {100 * side['std']:.2f}"


def row_settings(row, settings):
    """A row's settings: the ones saved with it, else those of its --json file."""
    keys = ("iterations", "batch_real", "eval_nets", "eval_epochs", "threads", "seed", "init",
            "cafe_probe", "cafe_max_steps")
    return {k: row.get("settings", {}).get(k, settings.get(k)) for k in keys}


def loops(row):
    """CAFE's dynamic loops: total outer steps / inner epochs of the reference and of cafe-lab."""
    ref = row["reference"]
    cond = row["cafe_lab"].get("condensation") or {}
    if "outer_steps" not in ref:
        return ""
    return (f"outer {sum(ref['outer_steps'])} / {cond.get('outer_steps_total', '?')}, "
            f"inner {sum(ref['inner_epochs'])} / {cond.get('inner_epochs_total', '?')}")


def wall(side):
    return "-" if side.get("wall_s") is None else f"{side['wall_s']:.0f}"


def print_table(rows, settings_list):
    """Markdown table of `rows`, each with its settings (a list of the same length)."""
    print("| method | ipc | iterations | batch_real | eval nets x epochs | reference % | cafe-lab % | "
          "diff (pp) | within noise | reference random % | cafe-lab random % | wall ref / lab (s) | "
          "CAFE loops, ref / lab |")
    print("|" + "---|" * 13)
    for r, st in zip(rows, settings_list):
        st = row_settings(r, st)
        extra = loops(r)
        print(f"| {r['method']} | {r['ipc']} | {st['iterations']} | {st['batch_real']} | "
              f"{st['eval_nets']} x {st['eval_epochs']} | {pct(r['reference'])} | {pct(r['cafe_lab'])} | "
              f"{100 * r['difference']:+.2f} | {'yes' if r['within_noise'] else 'NO'} | "
              f"{pct(r['reference_random'])} | {pct(r['cafe_lab_random'])} | "
              f"{wall(r['reference'])} / {wall(r['cafe_lab'])} | {extra or '-'} |")


def report(paths):
    """Prints the table of the rows saved by earlier runs (--json files)."""
    rows, settings = [], []
    for p in paths:
        with open(p) as fh:
            data = json.load(fh)
        for r in data["rows"]:
            rows.append(r)
            settings.append(data["settings"])
    print_table(rows, settings)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--method", default="all", choices=["dc", "dsa", "dm", "cafe", "cafe-dsa", "all"],
                    help="all = dc, dm, cafe, dsa (in that order)")
    ap.add_argument("--ipc", type=int, default=1, help="images per class (the reference's DC/CAFE loops "
                    "are defined for 1, 10, 20, 30, 40, 50)")
    ap.add_argument("--iterations", type=int, default=50)
    ap.add_argument("--batch-real", type=int, default=64)
    ap.add_argument("--eval-nets", type=int, default=3)
    ap.add_argument("--eval-epochs", type=int, default=300,
                    help="evaluation epochs E for both sides (the reference then trains E+1 epochs)")
    ap.add_argument("--threads", type=int, default=2, help="CPU threads of each side (OMP/MKL/RAYON)")
    ap.add_argument("--seed", type=int, default=0, help="seed of both sides (the RNGs differ)")
    ap.add_argument("--init", default="default", choices=["default", "real", "noise"],
                    help="initialisation of the synthetic set, both sides (default: the published one: "
                         "DC noise, DSA real, DM real, CAFE noise)")
    ap.add_argument("--cafe-probe", type=int, default=128,
                    help="CAFE: real images per class in the accuracy-watcher probe (reference 128)")
    ap.add_argument("--cafe-max-steps", type=int, default=100,
                    help="CAFE: cap on the outer steps of an iteration and on the epochs of an inner loop, "
                         "both sides (cafe-lab's scheduler.max_outer_steps / max_inner_epochs, default 100; "
                         "the reference gets it through --harness_max_steps, upstream has no cap)")
    ap.add_argument("--dc-repo", help="checkout of VICO-UoE/DatasetCondensation (DC, DSA, DM)")
    ap.add_argument("--cafe-repo", help="checkout of kaiwang960112/CAFE")
    ap.add_argument("--cafe-bin", default=os.path.join(HERE, "..", "..", "target", "release", "cafe-lab"),
                    help="the cafe-lab binary (default: target/release/cafe-lab; cargo build --release)")
    ap.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist",
                    help="folder of the Fashion-MNIST IDX files (*-ubyte[.gz])")
    ap.add_argument("--python", default=os.environ.get("TORCH_PYTHON", "/work/torchenv/bin/python"),
                    help=f"a Python with torch, torchvision, scipy, numpy ({TORCH_INSTALL})")
    ap.add_argument("--work", default=os.path.join(HERE, "..", "..", "runs", "reference"),
                    help="scratch copies, data layout, logs and cafe-lab outputs")
    ap.add_argument("--json", help="write the rows (accuracies, commands, wall times, versions) here")
    ap.add_argument("--reuse", action="store_true",
                    help="read back the logs of completed earlier runs of exactly the same commands "
                         "(in --work/logs) instead of running them again")
    ap.add_argument("--no-reference-baseline", action="store_true",
                    help="skip ref_random_baseline.py (needed only with --init noise) when CPU time is short")
    ap.add_argument("--sides", default="both", choices=["both", "lab"],
                    help="lab: run only cafe-lab's side (logs for a later --reuse run), e.g. while the "
                         "slower reference runs elsewhere")
    ap.add_argument("--report", nargs="+", metavar="JSON",
                    help="only print the table of earlier runs' --json files, and exit")
    args = ap.parse_args()
    if args.report:
        report(args.report)
        return

    global REUSE
    REUSE = args.reuse
    args.cafe_bin = os.path.abspath(args.cafe_bin)
    args.work = os.path.abspath(args.work)
    args.data_dir = os.path.abspath(args.data_dir)
    if not os.access(args.cafe_bin, os.X_OK):
        fail(f"no cafe-lab binary at {args.cafe_bin}: run `cargo build --release` or pass --cafe-bin")
    for name in ("dc_repo", "cafe_repo"):
        p = getattr(args, name)
        if p and not os.path.isdir(p):
            fail(f"--{name.replace('_', '-')} {p} is not a directory")
    versions = check_python(args.python)
    os.makedirs(args.work, exist_ok=True)
    data_root = prepare_data(args.data_dir, args.work)

    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "RAYON_NUM_THREADS"):
        env[var] = str(args.threads)
    env["PYTHONWARNINGS"] = "ignore"

    methods = ["dc", "dm", "cafe", "dsa"] if args.method == "all" else [args.method]
    rows, baselines = [], load_cache(os.path.join(args.work, "baselines.json"))
    settings = {k: v for k, v in vars(args).items()}
    for m in methods:
        row = run_method(m, args, env, data_root, args.work, baselines)
        if row is None:
            continue
        row["settings"] = row_settings({}, settings)
        rows.append(row)
        print()
        print_table(rows[-1:], [settings])
    if len(rows) > 1:
        print()
        print_table(rows, [settings] * len(rows))
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as fh:
            json.dump(dict(settings=settings, versions=versions, rows=rows), fh, indent=2)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
