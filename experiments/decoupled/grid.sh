#!/bin/bash
# Issue 27's experiment: SRe2L, RDED, DM and MTT on Fashion-MNIST at ipc 1, 10 and 50, 3 seeds,
# each set under the hard-label and the soft-label recipe, the random subset under both beside
# them. Every run shares grid.toml (one architecture, one hard and one soft recipe); the sizes a
# 2-core CPU allows are below and in README.md here. Resumable: a run whose results.json exists is
# skipped, an interrupted one resumes from its checkpoint; rerun the same command.
#   experiments/decoupled/grid.sh                 # everything (IPCS="1 10 50", SEEDS="0 1 2")
#   IPCS="1 10" experiments/decoupled/grid.sh     # what fits one session
#   python3 experiments/decoupled/summarise.py runs/decoupled-grid   # the table
set -eu
here=$(cd "$(dirname "$0")" && pwd)
BIN=${BIN:-./target/release/cafe-lab}
OUT=${OUT:-runs/decoupled-grid}
IPCS=${IPCS:-1 10 50}
SEEDS=${SEEDS:-0 1 2}
METHODS=${METHODS:-rded sre2l dm mtt}
mkdir -p "$OUT"
T="$OUT/teacher-convnetbn-w32.safetensors"
E="$OUT/experts-convnetbn-w32"
data="--dataset fashion-mnist --config $here/grid.toml --quiet --checkpoint-every 25"

# The teacher (SRe2L's squeeze, RDED's observer, every soft label): the squeeze recipe
# (`cafe-lab teacher`: SGD 0.1, momentum 0.9, wd 5e-4, cosine, crop + flip), 3 epochs.
[ -f "$T" ] || $BIN teacher --dataset fashion-mnist --epochs 3 --set arch.width=32 --seed 0 --quiet --out "$T"
# MTT's experts (buffer.py, DSA), on the same architecture: 2 experts of 3 epochs.
$BIN experts --dataset fashion-mnist --arch convnetbn --set arch.width=32 --num-experts 2 --train-epochs 3 \
  --test-limit 2000 --seed 0 --quiet --out "$E"

# RDED's students' batch by ipc (argument.py:234-246), for every soft-label evaluation.
kd_batch() { case $1 in 1) echo 10 ;; 10) echo 50 ;; *) echo 100 ;; esac; }

run() { # method ipc seed
  local m=$1 ipc=$2 seed=$3 dir="$OUT/$1-ipc$2-seed$3"
  [ -f "$dir/results.json" ] && return 0
  local common="$data --ipc $ipc --seed $seed --set eval.kd_recipe.batch=$(kd_batch "$ipc") --out $dir"
  echo "$(date +%T) $m ipc $ipc seed $seed"
  case $m in
    # RDED's protocol as it is (mipc 300, factor 1, no steps); this run also evaluates the
    # random subset under both recipes (eval.baseline).
    rded) $BIN --matcher rded --teacher "$T" $common --set eval.baseline=true ;;
    # SRe2L's protocol (r_bn, Adam, cosine, jitter, lr 0.25) with 300 of its 1000 iterations.
    sre2l) $BIN --matcher sre2l --teacher "$T" $common --iterations 300 ;;
    # DM's protocol (lr_img 1, real init) with 200 of its 20000 iterations, 64 real images per
    # class and iteration (256 in the reference).
    dm) $BIN --matcher distribution --kd-teacher "$T" $common --iterations 200 --set batch_real=64 ;;
    # MTT's protocol (syn_steps 20, learned lr, DSA) against the 2 experts above: expert_epochs 2,
    # start epochs 0-1, 100 iterations, lr_img 100 (the reduced run of
    # experiments/mtt-fashion-mnist-reduced), at most 20 images per student step.
    mtt) $BIN --matcher trajectory --protocol mtt --kd-teacher "$T" $common --iterations 100 \
          --set matcher.experts="$E" --set matcher.expert_epochs=2 --set matcher.max_start_epoch=1 \
          --set lr_img=100 --set matcher.batch_syn=$((ipc * 10 < 20 ? ipc * 10 : 20)) ;;
  esac
}

for ipc in $IPCS; do
  for seed in $SEEDS; do
    for m in $METHODS; do run "$m" "$ipc" "$seed"; done
  done
done
echo "$(date +%T) done"
