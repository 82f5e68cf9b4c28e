#!/bin/bash
# RDED at ipc 1: how much of a side-by-side gap is the selection's draw. Runs the reference's
# selection (the patched scratch copy that decoupled_side_by_side.py left in $WORK/scratch/rded,
# which upstream does not seed: every run is a new draw) N more times, and evaluates every
# reference selection and cafe-lab's selections of the grid's seeds under ONE recipe, cafe-lab's
# soft-label evaluation (RDED's recipe, 5 students, the first 2000 test images), so that only the
# selected images differ. Results: results/rded-selection-spread-ipc1.md.
#   scripts/reference/rded_selection_spread.sh   (after decoupled_side_by_side.py and grid.sh ipc 1)
set -eu
WORK=${WORK:-/tmp/dss/run}
N=${N:-4}
BIN=${BIN:-$PWD/target/release/cafe-lab}
PY=${PYTHON:-/work/venv-torch/bin/python}
T=${TEACHER:-$PWD/runs/decoupled-grid/teacher-convnetbn-w32.safetensors}
OUT=${OUT:-$PWD/runs/rded-selection-spread}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$OUT"
# experiments/decoupled/grid.toml with 5 students, 2000 test images and RDED's ipc-1 batch.
sed -e 's/^nets = 1 .*/nets = 5/' -e 's/^test_limit = 5000/test_limit = 2000/' -e 's/^batch = 50$/batch = 10/' \
  "$here/../../experiments/decoupled/grid.toml" > "$OUT/recipe.toml"
rded=$WORK/scratch/rded
mkdir -p "$rded/data/fashion-mnist" && ln -sfn "$WORK/fmnist-png/train" "$rded/data/fashion-mnist/train"
to_pt() { # folder of class*/ jpgs -> [images in [0, 1], labels] .pt (the NCFM layout `evaluate` reads)
  "$PY" - "$1" "$2" <<'PY'
import sys, glob, torch, numpy as np
from PIL import Image
fs = sorted(glob.glob(sys.argv[1] + '/*/*.jpg'))
x = torch.tensor(np.stack([np.asarray(Image.open(f).convert('L'), dtype=np.float32)[None] / 255 for f in fs]))
torch.save([x, torch.tensor([int(f.split('/')[-2]) for f in fs])], sys.argv[2])
PY
}
evaluate() { # name, set file, extra flags
  [ -f "$OUT/eval-$1/results.json" ] || RAYON_NUM_THREADS=1 nice "$BIN" evaluate --synthetic "$2" ${3:-} \
    --dataset fashion-mnist --config "$OUT/recipe.toml" --kd-teacher "$T" --quiet --no-baseline --out "$OUT/eval-$1"
}
to_pt "$WORK/rded-syn/ipc1" "$OUT/ref-0.pt"
evaluate ref-0 "$OUT/ref-0.pt" "--pixels raw"
for s in $(seq 1 "$N"); do
  if [ ! -f "$OUT/ref-$s.pt" ]; then
    (cd "$rded" && OMP_NUM_THREADS=1 nice "$PY" main.py --subset fashion-mnist --arch-name conv3 --factor 1 \
      --num-crop 5 --mipc 300 --ipc 1 --stud-name conv3 --re-epochs 300 --harness-width 32 \
      --harness-data-root "$WORK/data" --harness-test-limit 2000 --syn-data-path "$OUT/syn-$s" \
      --harness-skip-valid 1 --workers 0 > "$OUT/synth-$s.log" 2>&1)
    to_pt "$OUT/syn-$s" "$OUT/ref-$s.pt"
  fi
  evaluate "ref-$s" "$OUT/ref-$s.pt" "--pixels raw"
done
for s in 0 1 2; do
  evaluate "cafe-$s" "$PWD/runs/decoupled-grid/rded-ipc1-seed$s/synthetic.safetensors"
done
grep -H convnetbn "$OUT"/eval-*/evaluations.md
