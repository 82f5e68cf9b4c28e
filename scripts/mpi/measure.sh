#!/usr/bin/env bash
# The same work on this machine as 1 process x 2 threads and as 2 MPI ranks x 1 thread:
# a 20-network evaluation, DM and DC iterations at ipc 10, 4 experts, on Fashion-MNIST.
#   scripts/mpi/measure.sh OUTDIR > table.md
# Needs target/cafe-lab-mpi (scripts/mpi/build.sh) and dataset-fashion-mnist. Prints a markdown
# table: wall seconds (whole command, and per iteration from results.json for the
# condensations) and peak RSS of each process. Quote it only from a quiet machine.
set -euo pipefail
OUT=${1:?output folder}; mkdir -p "$OUT"
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=${CAFE_LAB_MPI:-$HERE/../../target/cafe-lab-mpi}
FM=(--dataset fashion-mnist -q)
# One line per process: its peak RSS in KiB.
TIME=(/usr/bin/time -a -o "$OUT/rss.txt" -f "%M")

# A set to evaluate: DM, ipc 10, a few iterations (made once, not timed).
[ -f "$OUT/set/synthetic.safetensors" ] || "$BIN" "${FM[@]}" --ipc 10 --iterations 5 --batch-real 64 \
  --eval-nets 1 --eval-epochs 1 --no-baseline --force --out "$OUT/set" >/dev/null

declare -A WORK=(
  [eval20]="evaluate --synthetic $OUT/set/synthetic.safetensors --eval-nets 20 --eval-epochs 50 --no-baseline --eval-augment none --force"
  [dm_ipc10]="--matcher distribution --ipc 10 --iterations 10 --batch-real 256 --eval-nets 1 --eval-epochs 1 --no-baseline --test-limit 100 --force"
  [dc_ipc10]="--matcher gradient --ipc 10 --iterations 1 --batch-real 256 --eval-nets 1 --eval-epochs 1 --no-baseline --test-limit 100 --force"
  [experts4]="experts --num-experts 4 --train-epochs 1 --test-limit 1000"
)
echo "| workload | 1 process x 2 threads: s | peak RSS MiB | 2 ranks x 1 thread: s | peak RSS MiB per rank | speed-up |"
echo "|---|---:|---:|---:|---:|---:|"
# WORKLOADS="..." runs some of them (the table header is printed either way).
for w in ${WORKLOADS:-eval20 dm_ipc10 dc_ipc10 experts4}; do
  # shellcheck disable=SC2206
  args=(${WORK[$w]})
  run() { # $1 = label, rest = launcher prefix
    local label=$1; shift
    # A fresh folder: `experts` trains only the experts its folder lacks.
    rm -rf "$OUT/rss.txt" "$OUT/$w-$label"
    local t0 t1
    t0=$(date +%s.%N)
    "$@" "${args[@]}" "${FM[@]}" --out "$OUT/$w-$label" >/dev/null 2>"$OUT/$w-$label.err"
    t1=$(date +%s.%N)
    local secs rss
    secs=$(python3 -c "print(f'{$t1 - $t0:.1f}')")
    # Per iteration for condensations (the evaluation after them is not the point here).
    if [ -f "$OUT/$w-$label/results.json" ] && python3 -c "import json,sys;sys.exit(0 if json.load(open('$OUT/$w-$label/results.json')).get('condensation') else 1)"; then
      secs="$secs ($(python3 -c "import json;print(f\"{json.load(open('$OUT/$w-$label/results.json'))['condensation']['seconds_per_iteration_median']:.1f} s/it\")"))"
    fi
    rss=$(awk '{printf "%s%d", (NR>1?"/":""), $1/1024}' "$OUT/rss.txt")
    echo "$secs|$rss"
  }
  one=$(RAYON_NUM_THREADS=2 run np1 "${TIME[@]}" "$BIN")
  two=$(RAYON_NUM_THREADS=1 CAFE_LAB_MPI_PREFIX="${TIME[*]}" run np2 "$HERE/run.sh" 2)
  s1=${one%%|*}; s2=${two%%|*}
  speed=$(python3 -c "print(f'{${s1%% *} / ${s2%% *}:.2f}')")
  echo "| $w | $s1 | ${one##*|} | $s2 | ${two##*|} | $speed |"
done
