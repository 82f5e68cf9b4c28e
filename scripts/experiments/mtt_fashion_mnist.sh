#!/usr/bin/env bash
# Trajectory matching (MTT) on Fashion-MNIST at reduced CPU settings, beside DC, DM, CAFE and the
# random subset, every set evaluated the same way (ConvNet width 32, 3 networks x 300 epochs with
# DSA, the first 2000 test images; each condense run evaluates the random subset with the same
# recipe and network seeds). MTT's sets train their networks at their learned step size, as MTT
# evaluates; the others at 0.01. Needs dataset-fashion-mnist.
#   scripts/experiments/mtt_fashion_mnist.sh [OUT_DIR] [SEEDS...]
#
# Reduced from the reference (distill.py defaults, protocol mtt): 4 experts of 10 epochs, SGD lr
# 0.01 without augmentation, on ConvNet width 32 (buffer.py: 100 x 50 epochs, DSA, width 128);
# matching without DSA (the experts trained without it), lr_img 100, syn_steps 20 (20),
# expert_epochs 2 (3); ipc 1: max_start_epoch 2, lr_lr 1e-7 (MTT's CIFAR-10 ipc-1 values),
# 1000 iterations (200 tied the random subset on one seed of two); ipc 10: max_start_epoch 4, minibatches of 20 images, 150 iterations (5000,
# whole set). The other methods run their protocols with reduced iterations.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --workspace
B=target/release/cafe-lab
OUT=${1:-runs/mtt-fashion-mnist}
shift || true
SEEDS=${*:-0}
mkdir -p "$OUT"

EXPERTS="$OUT/experts-w32"
$B experts --dataset fashion-mnist --num-experts 4 --train-epochs 10 --augment none \
  --set arch.width=32 --test-limit 2000 --seed 0 --out "$EXPERTS"

EVAL="--dataset fashion-mnist --set arch.width=32 --eval-nets 3 --eval-epochs 300 --eval-augment dsa --test-limit 2000 --set log_every=10 --force"
MTT="--matcher trajectory --augment none --set matcher.experts=$EXPERTS --set matcher.syn_steps=20
  --set matcher.expert_epochs=2 --lr-img 100"
DYN="--set scheduler.max_outer_steps=20 --set scheduler.max_inner_epochs=20 --set scheduler.probe_per_class=32"
for seed in $SEEDS; do
  run() { name=$1; shift; $B "$@" $EVAL --seed "$seed" --out "$OUT/$name-seed$seed"; }
  run mtt-ipc1 $MTT --ipc 1 --iterations 1000 --set matcher.max_start_epoch=2 --set matcher.lr_lr=1e-7
  run mtt-ipc10 $MTT --ipc 10 --iterations 150 --set matcher.max_start_epoch=4 --set matcher.batch_syn=20
  run dm-ipc1 --matcher distribution --ipc 1 --iterations 300 --batch-real 64
  run dm-ipc10 --matcher distribution --ipc 10 --iterations 300 --batch-real 64
  run dc-ipc1 --matcher gradient --ipc 1 --iterations 60 --batch-real 32
  run dc-ipc10 --matcher gradient --ipc 10 --iterations 6 --batch-real 32 --set scheduler.inner_loop=10
  run cafe-ipc1 --matcher cafe --ipc 1 --iterations 10 --batch-real 32 $DYN
  run cafe-ipc10 --matcher cafe --ipc 10 --iterations 6 --batch-real 32 $DYN
done

# One table: synthetic and random, mean +- std over the networks of each run.
python3 - "$OUT" <<'PY'
import json, pathlib, sys
rows = []
for r in sorted(pathlib.Path(sys.argv[1]).glob("*-seed*/results.json")):
    res = json.loads(r.read_text())
    ev = {e["set"]: e for e in res["evaluations"]}
    s, b = ev["synthetic"], ev.get("random")
    fmt = lambda e: f'{100*e["mean"]:.2f} +- {100*e["std"]:.2f}' if e else "-"
    rows.append(f'| {r.parent.name} | {fmt(s)} | {fmt(b)} | {s.get("lr") or 0:.4g} |')
print("| run | synthetic % | random % | eval lr |\n|---|---|---|---|")
print("\n".join(rows))
PY
