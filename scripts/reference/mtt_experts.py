#!/usr/bin/env python3
"""Trains expert trajectories with mtt-distillation's own `buffer.py` on Fashion-MNIST (CPU,
reduced settings) and converts them into a cafe-lab expert store.

This is the "decisive comparison" of the README's MTT section: cafe-lab distilling from the
reference's own experts. No reference buffers exist on this machine, so the harness trains
them with a patched scratch copy of the reference (`patch_reference.py`, repository `mtt`:
a Fashion-MNIST branch copied from DC, the CPU aliasing fix `.clone()`, an opt-in width and
`--harness_aug 0`), then `mtt_buffer_to_store.py` writes one `expert_NNNN.safetensors` per
reference expert.

    python3 scripts/reference/mtt_experts.py --mtt-repo /tmp/mttref --work runs/reference/mtt \\
        --num-experts 4 --train-epochs 10 --width 32 --aug 0 --template TEMPLATE.safetensors

TEMPLATE is any expert file that cafe-lab wrote for the same dataset and architecture (it gives
the metadata a run checks: dataset, image shape, architecture and its resolved settings); e.g.
`cafe-lab experts --dataset fashion-mnist --set arch.width=32 --num-experts 1 --train-epochs 1
--test-limit 100 --out runs/template`. The store lands in WORK/store.
"""

import argparse
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import patch_reference  # noqa: E402
from side_by_side import prepare_data  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mtt-repo", required=True, help="checkout of GeorgeCazenavette/mtt-distillation")
    ap.add_argument("--work", default="runs/reference/mtt")
    ap.add_argument("--python", default=os.environ.get("TORCH_PYTHON", sys.executable),
                    help="a Python with torch, torchvision, scipy")
    ap.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--num-experts", type=int, default=4)
    ap.add_argument("--train-epochs", type=int, default=10)
    ap.add_argument("--width", type=int, default=32, help="ConvNet width (reference 128)")
    ap.add_argument("--aug", type=int, default=0, help="1: buffer.py's augmentation (upstream), 0: none")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--template", help="a cafe-lab expert file of the same dataset/arch (for the store's metadata)")
    args = ap.parse_args()

    work = os.path.abspath(args.work)
    scratch = os.path.join(work, "scratch", "mtt")
    rev, applied = patch_reference.make_scratch_copy("mtt", args.mtt_repo, scratch)
    print(f"mtt-distillation {rev}: {len(applied)} patches -> {scratch}", flush=True)
    data_root = prepare_data(args.data_dir, work)
    buffers = os.path.join(work, "buffers")
    out_dir = os.path.join(buffers, "FashionMNIST", "ConvNet")
    existing = os.path.join(out_dir, "replay_buffer_0.pt")
    log_path = os.path.join(work, "buffer.log")
    if os.path.exists(existing):
        print(f"{existing} exists: not training again (delete it to retrain)", flush=True)
    else:
        cmd = [args.python, "buffer.py", "--dataset", "FashionMNIST", "--model", "ConvNet",
               "--num_experts", str(args.num_experts), "--train_epochs", str(args.train_epochs),
               "--save_interval", str(args.num_experts), "--buffer_path", buffers, "--data_path", data_root,
               "--harness_aug", str(args.aug), "--harness_seed", str(args.seed)]
        env = dict(os.environ, HARNESS_NET_WIDTH=str(args.width), PYTHONUNBUFFERED="1", OMP_NUM_THREADS=str(args.threads),
                   MKL_NUM_THREADS=str(args.threads))
        start = time.time()
        with open(log_path, "w") as log:
            log.write("$ " + " ".join(cmd) + f"  (HARNESS_NET_WIDTH={args.width})\n")
            log.flush()
            proc = subprocess.run(cmd, cwd=scratch, env=env, stdout=log, stderr=subprocess.STDOUT)
        with open(log_path, "a") as log:
            log.write(f"# exit {proc.returncode}, wall {time.time() - start:.1f} s\n")
        if proc.returncode != 0:
            print(f"error: buffer.py exited {proc.returncode}; see {log_path}", file=sys.stderr)
            return 2
    if args.template:
        conv = [args.python, os.path.join(os.path.dirname(os.path.abspath(__file__)), "mtt_buffer_to_store.py"),
                "--template", args.template, "--out", os.path.join(work, "store"), "--log", log_path,
                "--note", f"mtt-distillation {rev} buffer.py, width {args.width}, aug {args.aug}", existing]
        return subprocess.run(conv).returncode
    print("no --template: the buffers are not converted (run mtt_buffer_to_store.py)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
