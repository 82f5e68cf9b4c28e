#!/usr/bin/env bash
# The accuracy of the initial images of each cafe-lab MTT ipc-1 run (seeds 0-2 of
# scripts/experiments/mtt_fashion_mnist.sh): the INIT-stream draw of random real images that the
# MTT run started from (framework/src/engine/condense.rs, sub_rng(seed, [stream::INIT]); it
# depends only on the dataset, ipc, init = real and the seed, not on the matcher, so a
# 0-iteration run of any matcher evaluates exactly those images), evaluated with the recipe of
# the README's 10-network figures of the condensed sets: 10 ConvNets of width 32, 300 epochs
# with DSA, lr 0.01 (the step size the reference's iteration-0 evaluation uses: syn_lr =
# lr_teacher), the whole test set.
#   experiments/mtt-init-accuracy/run.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
B=target/release/cafe-lab
OUT=${1:-runs/mtt-init-accuracy}
for seed in 0 1 2; do
  nice -n 15 $B --dataset fashion-mnist --matcher distribution --set arch.width=32 --ipc 1 --init real \
    --iterations 0 --seed "$seed" --eval-nets 10 --eval-epochs 300 --eval-augment dsa --lr-net 0.01 \
    --test-limit 10000 --no-baseline -q --force --out "$OUT/init-seed$seed"
done
python3 - "$OUT" <<'PY'
import json, pathlib, sys
for r in sorted(pathlib.Path(sys.argv[1]).glob("init-seed*/results.json")):
    e = json.loads(r.read_text())["evaluations"][0]
    print(f'{r.parent.name}: {100*e["mean"]:.2f} +- {100*e["std"]:.2f} ({len(e["accuracies"])} nets, {e["test_images"]} test images, {e["epochs"]} epochs, lr {e.get("lr")})')
PY
