#!/usr/bin/env bash
# cafe-lab distilling from mtt-distillation's own expert trajectories (the README's "decisive
# comparison", ranking items 1 and 3 of shared/MTT_REVIEW.md), at the reduced Fashion-MNIST
# settings of scripts/experiments/mtt_fashion_mnist.sh, with DSA in matching as the reference's
# distill.py runs it (--dsa True is its default, distill.py:446; every student step augmented,
# distill.py:358-359).
#  1. a template expert file (metadata only: dataset, architecture) written by cafe-lab;
#  2. 4 experts trained by the reference's buffer.py (patched scratch copy, CPU, no augmentation,
#     width 32) and converted into a cafe-lab store (scripts/reference/mtt_experts.py). They train
#     4 epochs, not 10: with max_start_epoch 2 and expert_epochs 2 matching reads epochs 0..3 only
#     (no lr decay, so epochs 0..3 of a 10-epoch run are the same process);
#  3. MTT ipc 1, 1000 iterations, lr_img 100, syn_steps 20, expert_epochs 2, max_start_epoch 2,
#     lr_lr 1e-7, DSA in matching; evaluated by 10 ConvNets (300 epochs, DSA, learned lr) on the
#     whole test set, the recipe of the README's 10-network figures.
# The sizes above are the full run's; EXPERTS, EPOCHS, ITERATIONS, EVAL_NETS and EVAL_EPOCHS
# override them for a smaller one (RESULTS.md says which sizes its numbers come from).
#   [EXPERTS=4 EPOCHS=4 ITERATIONS=1000 EVAL_NETS=10 EVAL_EPOCHS=300] \
#   experiments/mtt-reference-experts/run.sh MTT_REPO TORCH_PYTHON [OUT_DIR] [SEEDS...]
set -euo pipefail
cd "$(dirname "$0")/../.."
MTT_REPO=${1:?checkout of GeorgeCazenavette/mtt-distillation}
PY=${2:?a python with torch and torchvision}
OUT=${3:-runs/mtt-reference-experts}
shift 3 || true
SEEDS=${*:-0}
EXPERTS=${EXPERTS:-4}
EPOCHS=${EPOCHS:-4}
ITERATIONS=${ITERATIONS:-1000}
EVAL_NETS=${EVAL_NETS:-10}
EVAL_EPOCHS=${EVAL_EPOCHS:-300}
B=target/release/cafe-lab
mkdir -p "$OUT"
[ -f "$OUT/template/expert_0000.safetensors" ] || nice -n 15 $B experts --dataset fashion-mnist --set arch.width=32 \
  --num-experts 1 --train-epochs 1 --test-limit 100 --augment none --seed 0 --out "$OUT/template"
[ -f "$OUT/ref/store/expert_$(printf %04d $((EXPERTS - 1))).safetensors" ] || nice -n 15 "$PY" scripts/reference/mtt_experts.py \
  --mtt-repo "$MTT_REPO" --python "$PY" --work "$OUT/ref" --num-experts "$EXPERTS" --train-epochs "$EPOCHS" --width 32 \
  --aug 0 --seed 0 --template "$OUT/template/expert_0000.safetensors"
for seed in $SEEDS; do
  nice -n 15 $B --dataset fashion-mnist --set arch.width=32 --matcher trajectory --augment dsa \
    --set matcher.experts="$OUT/ref/store" --set matcher.syn_steps=20 --set matcher.expert_epochs=2 \
    --set matcher.max_start_epoch=2 --set matcher.lr_lr=1e-7 --lr-img 100 --ipc 1 --iterations "$ITERATIONS" \
    --eval-nets "$EVAL_NETS" --eval-epochs "$EVAL_EPOCHS" --eval-augment dsa --test-limit 10000 --no-baseline \
    --checkpoint-every 50 --seed "$seed" -q --out "$OUT/mtt-ipc1-dsa-seed$seed" \
    || { [ -f "$OUT/mtt-ipc1-dsa-seed$seed/checkpoint.safetensors" ] && nice -n 15 $B --resume "$OUT/mtt-ipc1-dsa-seed$seed" -q; }
done
python3 - "$OUT" <<'PY'
import json, pathlib, sys
for r in sorted(pathlib.Path(sys.argv[1]).glob("mtt-ipc1-dsa-seed*/results.json")):
    e = json.loads(r.read_text())["evaluations"][0]
    print(f'{r.parent.name}: {100*e["mean"]:.2f} +- {100*e["std"]:.2f} ({len(e["accuracies"])} nets, '
          f'{e["test_images"]} test images, lr {e.get("lr"):.4g})')
PY
