#!/usr/bin/env bash
# The reduced-CPU Fashion-MNIST experiments behind the numbers in the issue notes (session 1).
# Each condense run also evaluates the `random` baseline with the same evaluation settings and
# the same networks' seeds, so every results.json holds both. Needs dataset-fashion-mnist.
#   scripts/experiments/fashion_mnist_reduced.sh [OUT_DIR]
# Since session 4 every matcher brings its paper's protocol (plugins/protocols/): DM matches
# and evaluates with DSA, CAFE's probes are fresh, evaluation follows the reference's recipe.
# The numbers of sessions 1-3 were made before that; add `--protocol none` to a command to
# repeat its old defaults.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --workspace
B=target/release/cafe-lab
OUT=${1:-runs/experiments}
mkdir -p "$OUT"

# Issue 2: DM, ipc 10, init real, standard ConvNet (width 128), 3 nets x 200 epochs, full test set.
$B --dataset fashion-mnist --matcher distribution --scheduler none --ipc 10 --init real \
  --iterations 300 --batch-real 64 --eval-nets 3 --eval-epochs 200 --seed 0 --out "$OUT/dm-ipc10" --force

# Issue 3: the methods and schedulers at reduced settings: ConvNet width 32, batch_real 32,
# 2 nets x 150 epochs, first 2000 test images; dynamic-scheduler caps 20/20, probe 32 per class.
COMMON="--dataset fashion-mnist --batch-real 32 --eval-nets 2 --eval-epochs 150 --test-limit 2000 --set arch.width=32 --seed 0 --force"
DYN="--set scheduler.max_outer_steps=20 --set scheduler.max_inner_epochs=20 --set scheduler.probe_per_class=32"
run() { name=$1; shift; $B "$@" $COMMON --out "$OUT/$name"; }
run cafe-dynamic-ipc1 --matcher cafe --scheduler dynamic --ipc 1 --iterations 10 $DYN
run gradient-fixed-ipc1 --matcher gradient --scheduler fixed --ipc 1 --iterations 60
run cafe-dynamic-ipc10 --matcher cafe --scheduler dynamic --ipc 10 --iterations 6 $DYN
run gradient-fixed-ipc10 --matcher gradient --scheduler fixed --ipc 10 --iterations 6 --set scheduler.inner_loop=10
run cafe-fixed-ipc10 --matcher cafe --scheduler fixed --ipc 10 --iterations 3 --set scheduler.inner_loop=10
run gradient-dynamic-ipc10 --matcher gradient --scheduler dynamic --ipc 10 --iterations 2 $DYN
run distribution-dynamic-ipc10 --matcher distribution --scheduler dynamic --ipc 10 --iterations 2 $DYN

# Issue 4 (session 2): cross-architecture evaluation (--eval-mode M: MLP, ConvNet, LeNet,
# AlexNet, VGG11, ResNet18) of the CAFE ipc-1 set above, 2 nets x 300 epochs (the default), full
# test set, beside the random subset evaluated identically.
$B evaluate --synthetic "$OUT/cafe-dynamic-ipc1/synthetic.safetensors" --dataset fashion-mnist \
  --eval-mode M --eval-nets 2 --seed 0 --out "$OUT/eval-M-cafe-ipc1" --force

# Issue 4 (session 2): DM without and with DSA (its default strategy), same reduced settings,
# both evaluated identically (DSA, 3 nets x 500 epochs, ConvNet width 32, full test set).
DM="--dataset fashion-mnist --matcher distribution --scheduler none --ipc 10 --init real --iterations 300
  --batch-real 64 --arch convnetw32 --eval-nets 3 --eval-epochs 500 --eval-augment dsa --seed 0 --force"
$B $DM --augment none --out "$OUT/dm-none-w32"
$B $DM --augment dsa --out "$OUT/dm-dsa-w32" --no-baseline
