#!/usr/bin/env python3
"""Side by side for the decoupled methods: SRe2L's and RDED's public code and cafe-lab, with
one teacher, on Fashion-MNIST, in one reduced setting, on the CPU (issue 27 item 5).

1. Converts a cafe-lab teacher (safetensors, ConvNet-3 with BatchNorm) into a PyTorch
   state_dict for RDED's `conv3` ConvNet (synthesize/models.py, net_norm "batch"), the network
   both references get here, and checks it: the converted model's test accuracy on
   Fashion-MNIST (cafe-lab's normalisation) must match the accuracy in the file's metadata.
2. Reference side, on patched scratch copies (patch_decoupled.py; the mirrors are never
   edited):
   - SRe2L (`SRe2L/*small_dataset/`): recover_cifar.py (BN statistics + CE against the
     teacher, Adam, cosine, jitter), then relabel_cifar.py (KD at T 30, AdamW, cosine, mixup)
     once per evaluation network (seeds 0..K-1);
   - RDED: main.py's synthesis (selection + stitching, factor 1) once, then its validation
     (KD at T 20, AdamW, half cosine, CutMix) once per evaluation network (--seed k);
   - the random subset (ipc random real images per class, a new subset per network) through
     both references' relabel/validation.
3. cafe-lab: `--matcher sre2l` and `--matcher rded` with the same teacher file and settings;
   results.json holds synthetic, random (hard labels) and synthetic-kd, random-kd.
4. Prints one table and writes a JSON (and the logs) under --work and --json.

    nice -n 10 /work/venv-torch/bin/python scripts/reference/decoupled_side_by_side.py \\
        --teacher runs/decoupled-grid/teacher-convnetbn-w32.safetensors --ipc 1 \\
        --iterations 200 --epochs 300 --nets 5 --test-limit 2000 \\
        --cafe-bin /tmp/cafe-lab-helper --json scripts/reference/results/sre2l-rded-ipc1.json

Every process runs under `nice -n 10` with one thread (OMP/MKL/RAYON_NUM_THREADS=1).
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

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import patch_decoupled  # noqa: E402

IDX = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
MEAN, STD = 0.2861, 0.3530  # framework/src/data/kind.rs:97,109


def fail(msg):
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(2)


# ---------------------------------------------------------------- data
def prepare_data(data_dir, work):
    """Decompresses the IDX files into WORK/data/FashionMNIST/raw (what torchvision reads) and
    returns (torchvision root, train images uint8 [N,28,28], train labels)."""
    raw = os.path.join(work, "data", "FashionMNIST", "raw")
    os.makedirs(raw, exist_ok=True)
    for name in IDX:
        dst = os.path.join(raw, name)
        if os.path.exists(dst):
            continue
        src = next((p for p in (os.path.join(data_dir, name + ".gz"), os.path.join(data_dir, name))
                    if os.path.exists(p)), None)
        if src is None:
            fail(f"{data_dir} lacks {name}[.gz] (Debian: apt-get install dataset-fashion-mnist)")
        with (gzip.open if src.endswith(".gz") else open)(src, "rb") as fi, open(dst + ".part", "wb") as fo:
            shutil.copyfileobj(fi, fo)
        os.replace(dst + ".part", dst)

    def idx(name, off):
        with open(os.path.join(raw, name), "rb") as fh:
            return np.frombuffer(fh.read(), dtype=np.uint8, offset=off)

    x = idx(IDX[0], 16).reshape(-1, 28, 28)
    y = idx(IDX[1], 8).astype(np.int64)
    return os.path.join(work, "data"), x, y


def write_train_folder(x, y, dst):
    """RDED reads its real images from an ImageFolder (./data/<subset>/train/<class:05d>/...):
    the 60000 training images as lossless 8-bit PNGs (written once)."""
    from PIL import Image
    done = os.path.join(dst, ".complete")
    if os.path.exists(done):
        return
    for c in range(10):
        os.makedirs(os.path.join(dst, f"{c:05d}"), exist_ok=True)
    for i in range(len(y)):
        Image.fromarray(x[i]).save(os.path.join(dst, f"{y[i]:05d}", f"{i:05d}.png"))
    open(done, "w").close()


def write_random_subset(x, y, ipc, seed, dst, fmt):
    """ipc random real training images per class (PNG), folder names `fmt.format(c)`."""
    from PIL import Image
    rng = np.random.default_rng(seed)
    if os.path.exists(dst):
        shutil.rmtree(dst)
    picked = []
    for c in range(10):
        idx = rng.choice(np.flatnonzero(y == c), ipc, replace=False)
        d = os.path.join(dst, fmt.format(c))
        os.makedirs(d)
        for j, i in enumerate(idx):
            Image.fromarray(x[i]).save(os.path.join(d, f"class{c:03d}_id{j:03d}.png"))
        picked.append([int(i) for i in idx])
    return picked


# ---------------------------------------------------------------- teacher
def convert_teacher(path, out):
    """cafe-lab teacher (param.NNNN in parameters() order: per layer conv w, conv b, bn w, bn b;
    then classifier w, b; bn.NNNN.running_mean/var) -> RDED ConvNet state_dict
    (layers.conv.d.*, layers.norm.d.*, classifier.*). Returns (state_dict, metadata)."""
    import torch
    from safetensors import safe_open
    with safe_open(path, "pt") as f:
        meta = f.metadata() or {}
        t = {k: f.get_tensor(k) for k in f.keys()}
    arch = json.loads(meta.get("arch_config", "{}"))
    depth, width = int(arch.get("depth", 3)), int(arch.get("width", 128))
    if arch.get("norm") != "batchnorm" or arch.get("pooling") != "avgpooling" or arch.get("activation") != "relu":
        fail(f"{path}: expected a ConvNet with batchnorm, relu, avgpooling, got {arch}")
    if meta.get("dataset") != "fashion-mnist":
        fail(f"{path}: a {meta.get('dataset')} teacher, not fashion-mnist")
    n_params = len([k for k in t if k.startswith("param.")])
    if n_params != 4 * depth + 2:
        fail(f"{path}: {n_params} parameters, expected {4 * depth + 2} for depth {depth}")
    sd = {}
    for d in range(depth):
        p = lambda i: t[f"param.{4 * d + i:04d}"].clone()  # noqa: E731
        sd[f"layers.conv.{d}.weight"], sd[f"layers.conv.{d}.bias"] = p(0), p(1)
        sd[f"layers.norm.{d}.weight"], sd[f"layers.norm.{d}.bias"] = p(2), p(3)
        sd[f"layers.norm.{d}.running_mean"] = t[f"bn.{d:04d}.running_mean"].clone()
        sd[f"layers.norm.{d}.running_var"] = t[f"bn.{d:04d}.running_var"].clone()
        sd[f"layers.norm.{d}.num_batches_tracked"] = torch.tensor(0)
    sd["classifier.weight"] = t[f"param.{4 * depth:04d}"].clone()
    sd["classifier.bias"] = t[f"param.{4 * depth + 1:04d}"].clone()
    os.makedirs(os.path.dirname(out), exist_ok=True)
    torch.save({"model": sd, "state_dict": sd}, out)
    return sd, meta, width, depth


def verify_teacher(scratch_rded, teacher_pth, width, depth, data_root):
    """Test accuracy of the converted model (RDED's ConvNet class) on the whole test set."""
    import torch
    sys.path.insert(0, scratch_rded)
    import harness_fmnist
    import torchvision.transforms as T
    net = harness_fmnist.load_teacher(teacher_pth, width, depth).eval()
    ds = harness_fmnist.test_set(data_root, 0, T.Compose([T.ToTensor(), T.Normalize([MEAN], [STD])]))
    loader = torch.utils.data.DataLoader(ds, batch_size=1000)
    correct = total = 0
    with torch.no_grad():
        for xb, yb in loader:
            correct += (net(xb).argmax(1) == yb).sum().item()
            total += len(yb)
    sys.path.remove(scratch_rded)
    return correct / total


# ---------------------------------------------------------------- processes
def run_logged(cmd, cwd, env, log, reuse):
    if reuse and os.path.exists(log):
        with open(log) as fh:
            text = fh.read()
        m = re.search(r"^# exit 0, wall ([0-9.]+) s$", text, re.M)
        if text.startswith("$ " + " ".join(cmd) + "\n") and m:
            print(f"    reusing {os.path.relpath(log)}", flush=True)
            return float(m.group(1)), text
    t0 = time.time()
    with open(log, "w") as fh:
        fh.write("$ " + " ".join(cmd) + "\n")
        fh.flush()
        p = subprocess.run(["nice", "-n", "10"] + cmd, cwd=cwd, env=env, stdout=fh, stderr=subprocess.STDOUT)
    wall = time.time() - t0
    with open(log, "a") as fh:
        fh.write(f"# exit {p.returncode}, wall {wall:.1f} s\n")
    with open(log) as fh:
        text = fh.read()
    if p.returncode != 0:
        fail(f"`{' '.join(cmd)}` exited {p.returncode}; log {log}:\n" + "\n".join(text.splitlines()[-20:]))
    return wall, text


def stats(accs):
    m = sum(accs) / len(accs)
    return m, math.sqrt(sum((a - m) ** 2 for a in accs) / len(accs))


def sre2l_relabel_acc(text):
    """Final test accuracy (fraction) of relabel_cifar.py: its last 'Test: Acc@1 X' line (it tests
    every 10 epochs and at the last, relabel_cifar.py:195)."""
    accs = re.findall(r"Test: Acc@1 ([0-9.]+)", text)
    if not accs:
        fail("relabel_cifar.py printed no test accuracy")
    return float(accs[-1]) / 100


def rded_valid_acc(text, epochs):
    """(final, best) test accuracy of RDED's validation: its TEST lines ('TEST:' then a line
    'Iter E: ... Top-1 err = X', after 80 % of training, validation/main.py:176-190, 271-277; the
    'TRAIN Iter' lines are the training epochs) and 'Best accuracy is X@Y'."""
    tests = {int(e): 1 - float(err) / 100 for e, err in
             re.findall(r"^Iter (\d+): loss = [^,]+,\s+Top-1 err = ([0-9.]+)", text, re.M)}
    m = re.search(r"Best accuracy is ([0-9.]+)@(\d+)", text)
    if epochs - 1 not in tests or not m:
        fail("RDED's validation printed no final test / best accuracy")
    return tests[epochs - 1], float(m.group(1)) / 100


# ---------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--teacher", default=os.path.join(ROOT, "runs/decoupled-grid/teacher-convnetbn-w32.safetensors"))
    ap.add_argument("--sre2l-repo", default="/work/.mirror/VILA-Lab+SRe2L/repo")
    ap.add_argument("--rded-repo", default="/work/.mirror/LINs-lab+RDED/repo")
    ap.add_argument("--cafe-bin", default=os.path.join(ROOT, "target/release/cafe-lab"))
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--work", default=os.path.join(ROOT, "runs/reference-decoupled"))
    ap.add_argument("--ipc", type=int, default=1)
    ap.add_argument("--iterations", type=int, default=200, help="SRe2L recover iterations (both sides)")
    ap.add_argument("--epochs", type=int, default=300, help="relabel / validation epochs (both sides)")
    ap.add_argument("--nets", type=int, default=5, help="evaluation networks (students) per set")
    ap.add_argument("--test-limit", type=int, default=2000, help="first N test images (both sides; 0: all)")
    ap.add_argument("--mipc", type=int, default=300, help="RDED's real candidates per class (cr5 script: 300)")
    ap.add_argument("--sre2l-teacher-eval", type=int, default=0,
                    help="1: SRe2L's relabel teacher in eval mode as cafe-lab (upstream: training mode)")
    ap.add_argument("--methods", default="sre2l,rded")
    ap.add_argument("--sides", default="ref,lab")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--reuse", action="store_true", help="read back completed logs of identical commands")
    ap.add_argument("--json")
    a = ap.parse_args()
    import torch
    torch.set_num_threads(1)

    work = os.path.abspath(a.work)
    logs = os.path.join(work, "logs")
    os.makedirs(logs, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", RAYON_NUM_THREADS="1",
               PYTHONUNBUFFERED="1", CUDA_VISIBLE_DEVICES="")
    methods = a.methods.split(",")
    sides = a.sides.split(",")
    tag = f"ipc{a.ipc}"
    out = dict(settings=vars(a), tag=tag)

    print("[data] Fashion-MNIST", flush=True)
    data_root, xtr, ytr = prepare_data(a.data_dir, work)

    scratch = os.path.join(work, "scratch")
    revs = {}
    for kind, repo in (("sre2l", a.sre2l_repo), ("rded", a.rded_repo)):
        revs[kind], applied = patch_decoupled.make_scratch_copy(kind, repo, os.path.join(scratch, kind), a.rded_repo)
        print(f"[patch] {kind} @ {revs[kind]}: {len(applied)} patches -> {os.path.join(scratch, kind)}", flush=True)
    out["reference_revisions"] = revs

    # Teacher
    teacher_pth = os.path.join(work, "teacher", "fashion-mnist_conv3.pth")
    sd, meta, width, depth = convert_teacher(a.teacher, teacher_pth)
    rded_pre = os.path.join(scratch, "rded", "data", "pretrain_models")
    os.makedirs(rded_pre, exist_ok=True)
    shutil.copy(teacher_pth, os.path.join(rded_pre, "fashion-mnist_conv3.pth"))
    file_acc = json.loads(meta.get("teacher", "{}")).get("accuracy")
    conv_acc = verify_teacher(os.path.join(scratch, "rded"), teacher_pth, width, depth, data_root)
    print(f"[teacher] {a.teacher}: ConvNet-{depth} width {width}; metadata accuracy {file_acc}, "
          f"converted PyTorch model {conv_acc:.4f} on the 10000 test images", flush=True)
    out["teacher"] = dict(file=a.teacher, width=width, depth=depth, metadata_accuracy=file_acc,
                          converted_accuracy=conv_acc, converted=teacher_pth)
    if file_acc is not None and abs(conv_acc - file_acc) > 0.002:
        fail(f"the converted teacher's accuracy {conv_acc:.4f} differs from the file's {file_acc}")

    K, E, L = a.nets, a.epochs, a.test_limit
    rows = {}
    # ------------------------------------------------ SRe2L reference
    if "sre2l" in methods and "ref" in sides:
        sdir = os.path.join(scratch, "sre2l")
        syn = os.path.join(work, "sre2l-syn")
        # recover_cifar.sh: --batch-size 100 (= all of CIFAR-100's classes; here all 10), --lr 0.25,
        # --r-bn 0.01, --store-best-images; --iteration reduced; jitter 4 and first-bn-multiplier
        # 10 are the argparse defaults (recover_cifar.py:211,216).
        cmd = [a.python, "recover_cifar.py", "--arch-path", teacher_pth, "--syn-data-path", syn,
               "--exp-name", tag, "--batch-size", "10", "--lr", "0.25", "--iteration", str(a.iterations),
               "--r-bn", "0.01", "--store-best-images", "--ipc-start", "0", "--ipc-end", str(a.ipc),
               "--harness-seed", str(a.seed), "--harness-width", str(width)]
        print(f"[sre2l] reference recover ({a.iterations} iterations) ...", flush=True)
        w_rec, _ = run_logged(cmd, sdir, env, os.path.join(logs, f"sre2l-{tag}-recover.log"), a.reuse)
        res = dict(recover_command=" ".join(cmd), recover_wall_s=round(w_rec, 1), synthetic=[], random=[])
        teval = "-teacher-eval" if a.sre2l_teacher_eval else ""
        for k in range(K):
            rnd = os.path.join(work, "random", f"{tag}-seed{k}-sre2l")
            write_random_subset(xtr, ytr, a.ipc, 1000 + k, rnd, "new{:03d}")
            for which, path in (("synthetic", os.path.join(syn, tag)), ("random", rnd)):
                # relabel_cifar.sh: --batch-size 128 (its --epochs 400 reduced to E).
                cmd = [a.python, "relabel_cifar.py", "--epochs", str(E), "--output-dir",
                       os.path.join(work, "sre2l-relabel", f"{tag}{teval}-{which}-{k}"), "--syn-data-path", path,
                       "--teacher-path", teacher_pth, "--ipc", str(a.ipc), "--batch-size", "128",
                       "--harness-seed", str(k), "--harness-width", str(width), "--harness-data-root", data_root,
                       "--harness-test-limit", str(L), "--harness-teacher-eval", str(a.sre2l_teacher_eval)]
                print(f"[sre2l] reference relabel {which} net {k} ...", flush=True)
                w, text = run_logged(cmd, sdir, env, os.path.join(logs, f"sre2l-{tag}-relabel{teval}-{which}-{k}.log"),
                                     a.reuse)
                res[which].append(sre2l_relabel_acc(text))
                res.setdefault(f"{which}_wall_s", []).append(round(w, 1))
        res["relabel_command_example"] = " ".join(cmd)
        rows.setdefault("sre2l", {})["reference"] = res

    # ------------------------------------------------ RDED reference
    if "rded" in methods and "ref" in sides:
        rdir = os.path.join(scratch, "rded")
        train_dir = os.path.join(rdir, "data", "fashion-mnist", "train")
        cache = os.path.join(work, "fmnist-png", "train")
        print("[rded] real images as an ImageFolder (once) ...", flush=True)
        write_train_folder(xtr, ytr, cache)
        os.makedirs(os.path.dirname(train_dir), exist_ok=True)
        if not os.path.exists(train_dir):
            os.symlink(cache, train_dir)
        syn = os.path.join(work, "rded-syn", tag)
        # scripts/cifar10_10ipc_conv3_to_conv3_cr5.sh: --arch-name conv3 --factor 1 --num-crop 5
        # --mipc 300 --stud-name conv3 --re-epochs 300; --ipc as given.
        base = [a.python, "main.py", "--subset", "fashion-mnist", "--arch-name", "conv3", "--factor", "1",
                "--num-crop", "5", "--mipc", str(a.mipc), "--ipc", str(a.ipc), "--stud-name", "conv3",
                "--re-epochs", str(E), "--harness-width", str(width), "--harness-data-root", data_root,
                "--harness-test-limit", str(L)]
        cmd = base + ["--syn-data-path", syn, "--harness-skip-valid", "1", "--workers", "0"]
        print("[rded] reference synthesis (selection + stitching) ...", flush=True)
        w_syn, _ = run_logged(cmd, rdir, env, os.path.join(logs, f"rded-{tag}-synthesize.log"), a.reuse)
        res = dict(synthesize_command=" ".join(cmd), synthesize_wall_s=round(w_syn, 1),
                   synthetic=[], random=[], synthetic_best=[], random_best=[])
        for k in range(K):
            rnd = os.path.join(work, "random", f"{tag}-seed{k}-rded")
            write_random_subset(xtr, ytr, a.ipc, 1000 + k, rnd, "{:05d}")
            for which, path in (("synthetic", syn), ("random", rnd)):
                cmd = base + ["--syn-data-path", path, "--harness-skip-synth", "1", "--seed", str(k)]
                print(f"[rded] reference validation {which} net {k} ...", flush=True)
                w, text = run_logged(cmd, rdir, env, os.path.join(logs, f"rded-{tag}-valid-{which}-{k}.log"), a.reuse)
                final, best = rded_valid_acc(text, E)
                res[which].append(final)
                res[f"{which}_best"].append(best)
                res.setdefault(f"{which}_wall_s", []).append(round(w, 1))
        res["validation_command_example"] = " ".join(cmd)
        rows.setdefault("rded", {})["reference"] = res

    # ------------------------------------------------ cafe-lab
    if "lab" in sides:
        for method in methods:
            lab_out = os.path.join(work, "cafe-lab", f"{method}-{tag}")
            cmd = [a.cafe_bin, "--matcher", method, "--dataset", "fashion-mnist", "--data-dir", a.data_dir,
                   "--teacher", os.path.abspath(a.teacher), "--arch", "convnetbn", "--set", f"arch.width={width}",
                   "--ipc", str(a.ipc), "--eval-nets", str(K), "--eval-epochs", str(E),
                   "--set", f"eval.kd_recipe.epochs={E}", "--seed", str(a.seed), "--quiet", "--force",
                   "--out", lab_out]
            if method == "sre2l":
                cmd += ["--iterations", str(a.iterations)]
            else:
                cmd += ["--set", f"matcher.mipc={a.mipc}"]
            if L:
                cmd += ["--test-limit", str(L)]
            print(f"[{method}] cafe-lab ...", flush=True)
            w, _ = run_logged(cmd, HERE, env, os.path.join(logs, f"{method}-{tag}-cafe-lab.log"), a.reuse)
            with open(os.path.join(lab_out, "results.json")) as fh:
                r = json.load(fh)
            sets = {e["set"]: [float(x) for x in e["accuracies"]] for e in r["evaluations"]}
            rows.setdefault(method, {})["cafe_lab"] = dict(command=" ".join(cmd), wall_s=round(w, 1), **sets)

    out["rows"] = rows
    print_table(out)
    if a.json:
        os.makedirs(os.path.dirname(os.path.abspath(a.json)), exist_ok=True)
        with open(a.json, "w") as fh:
            json.dump(out, fh, indent=1)
        print(f"wrote {a.json}")


def pct(accs):
    if not accs:
        return "not run"
    m, s = stats(accs)
    return f"{100 * m:.2f} +- {100 * s:.2f}"


def print_table(out):
    s = out["settings"]
    print(f"\nFashion-MNIST ipc {s['ipc']}, one teacher ({out['teacher']['file']}, converted "
          f"{100 * out['teacher']['converted_accuracy']:.2f} % / file {100 * (out['teacher']['metadata_accuracy'] or 0):.2f} %), "
          f"students ConvNet-3 BN width {out['teacher']['width']}, {s['nets']} nets, {s['epochs']} relabel epochs, "
          f"SRe2L recover {s['iterations']} iterations, test on the first {s['test_limit'] or 10000} test images; "
          f"SRe2L's relabel teacher in {'eval' if s['sre2l_teacher_eval'] else 'training (upstream)'} mode; "
          "% mean +- std over networks\n")
    print("| method | reference soft-label (synthetic) | reference random subset (soft) | "
          "cafe-lab synthetic-kd | cafe-lab random-kd | cafe-lab synthetic (hard) | cafe-lab random (hard) |")
    print("|---|---|---|---|---|---|---|")
    for method, row in out["rows"].items():
        ref, lab = row.get("reference", {}), row.get("cafe_lab", {})
        print(f"| {method} | {pct(ref.get('synthetic'))} | {pct(ref.get('random'))} | "
              f"{pct(lab.get('synthetic-kd'))} | {pct(lab.get('random-kd'))} | "
              f"{pct(lab.get('synthetic'))} | {pct(lab.get('random'))} |")
        if ref.get("synthetic_best"):
            print(f"| {method} (reference's best after 80 %) | {pct(ref['synthetic_best'])} | "
                  f"{pct(ref['random_best'])} | | | | |")


if __name__ == "__main__":
    main()
