#!/bin/bash
# A small SRe2L and RDED measurement on Fashion-MNIST (CPU, minutes): one ConvNetBN teacher of
# width 32 (2 epochs of the squeeze recipe), then each method at ipc 1 under its protocol with the
# sizes reduced as below, evaluated with hard labels (cafe-lab's recipe) and with the teacher's
# soft labels (the protocol's recipe), the random subset beside both. Not the full
# experiment (ipc 1/10/50, 3 seeds, full epochs): see README.md here.
set -eu
BIN=${BIN:-./target/release/cafe-lab}
OUT=${OUT:-runs/decoupled}
mkdir -p "$OUT"
T="$OUT/teacher-fashion-mnist-convnetbn-w${WIDTH:-32}.safetensors"
[ -f "$T" ] || $BIN teacher --dataset fashion-mnist --epochs ${EPOCHS:-2} --set arch.width=${WIDTH:-32} --out "$T"
small="--dataset fashion-mnist --arch convnetbn --set arch.width=${WIDTH:-32} --teacher $T --ipc 1 --seed 0
       --eval-nets 3 --eval-epochs 300 --test-limit 2000 --quiet"
# The soft-label students keep the protocols' epochs (sre2l 400: relabel_cifar.sh:2; rded 300:
# the cr5 script's --re-epochs 300).
$BIN --matcher sre2l $small --iterations 200 --out "$OUT/sre2l-ipc1"
$BIN --matcher rded $small --set matcher.mipc=100 --out "$OUT/rded-ipc1"
