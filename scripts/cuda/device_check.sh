#!/usr/bin/env bash
# cafe-lab's GPU check in one call (issue 24), for a machine with one NVIDIA GPU, its driver and
# a Python with PyTorch and NVIDIA's pip libraries, and nothing else installed: no Rust, no
# network. Run from the repository root, with the travel pack that scripts/cuda/build.sh made
# (target-cuda/travel: the compressed binary, its launcher, Fashion-MNIST's four files):
#
#   scripts/cuda/device_check.sh --out DIR [--travel DIR] [--data DIR] [--python PY]
#                                [--parts env,correctness,bench,condense] [--quick]
#
#   --out DIR      where everything goes (created): summary.md and summary.json first
#   --travel DIR   the folder holding launch.sh and cafe-lab.xz (default target-cuda/travel/cafe-lab-gpu)
#   --data DIR     Fashion-MNIST's four .gz files (default target-cuda/travel/fashion-mnist)
#   --python PY    the Python with torch (default python3); its NVIDIA pip folders also give
#                  cafe-lab its CUDA libraries (launch.sh)
#   --parts LIST   which parts to run, in this order (default all four)
#   --quick        one precision (fp32) and fewer workloads in the benchmark, shorter runs
#
# The parts, each with its own time limit so that the whole stays under 8 minutes on an H200
# (470 s when every part uses all of its time), each writing under DIR/<part>/ and its log:
#   env          (20 s)  nvidia-smi, the libraries launch.sh found, the Python and torch versions
#   correctness (100 s)  `cafe-lab device-check`: each convolution op and its gradients, the
#                        ConvNet forward/backward and DC's second-order gradient, one iteration
#                        of DM, DC, DSA, CAFE and MTT, NCCL in a world of one, all against the
#                        CPU within stated tolerances (f64, f32, TF32)
#   bench       (180 s)  scripts/bench/side_by_side.py --device cuda --size gpu: every workload
#                        on cafe-lab and PyTorch, FP32 and TF32, times between synchronisations
#                        after a warm-up, GPU memory peaks of both; plus cafe-lab with candle's
#                        own convolutions (CAFE_CUDA_CONV=candle) on two workloads
#   condense    (170 s)  one short Fashion-MNIST condensation per method (DM ipc 10, DC, DSA,
#                        CAFE ipc 1 (10 iterations), MTT ipc 1 on 2 fresh experts) with its accuracy
# A part that fails or runs out of time is recorded as such and the next one starts; the
# summary is rewritten after every part, so a run cut short still says what it found.
# Exit status: 0 when every part passed, 1 otherwise.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
OUT=""
TRAVEL="$ROOT/target-cuda/travel/cafe-lab-gpu"
DATA="$ROOT/target-cuda/travel/fashion-mnist"
PY=python3
PARTS=env,correctness,bench,condense
QUICK=0
INTERNAL=""
while [ $# -gt 0 ]; do
  case "$1" in
    --internal-part) INTERNAL=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --travel) TRAVEL=$2; shift 2 ;;
    --data) DATA=$2; shift 2 ;;
    --python) PY=$2; shift 2 ;;
    --parts) PARTS=$2; shift 2 ;;
    --quick) QUICK=1; shift ;;
    -h|--help) sed -n '2,35p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "device_check.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[ -n "$OUT" ] || { echo "device_check.sh: --out DIR is required" >&2; exit 2; }
abs() { if [ -d "$1" ]; then (cd "$1" && pwd); else echo "$1"; fi; }
TRAVEL=$(abs "$TRAVEL"); DATA=$(abs "$DATA")
mkdir -p "$OUT" || exit 2
OUT=$(cd "$OUT" && pwd)
LAUNCH="$TRAVEL/launch.sh"
T0=${T0:-$(date +%s)}
[ -n "$INTERNAL" ] || : > "$OUT/parts.tsv"
export CAFE_PYTHON=$PY
# No Ctrl-C handler races, no colour, quiet progress; every run writes into OUT only.
export RUST_BACKTRACE=1

export T0

log() { echo "[$(( $(date +%s) - T0 )) s] $*" | tee -a "$OUT/device_check.log" >&2; }

# part NAME LIMIT COMMAND...: runs COMMAND under `timeout LIMIT` (which signals the command's
# whole process group, so launch.sh's cafe-lab and Python's children go too), its output in
# OUT/NAME/log, and records "NAME status seconds" in parts.tsv (ok, failed (exit N), timeout).
# A part written as a function of this script runs as `device_check.sh --internal-part NAME`.
part() {
  local name=$1 limit=$2; shift 2
  mkdir -p "$OUT/$name"
  log "part $name (limit $limit s): $*"
  local s; s=$(date +%s)
  timeout --kill-after=10 "$limit" "$@" > "$OUT/$name/log" 2>&1
  local rc=$? status
  case $rc in
    0) status=ok ;;
    124|137) status=timeout ;;
    *) status="failed (exit $rc)" ;;
  esac
  printf '%s\t%s\t%s\n' "$name" "$status" "$(( $(date +%s) - s ))" >> "$OUT/parts.tsv"
  log "part $name: $status after $(( $(date +%s) - s )) s"
  tail -5 "$OUT/$name/log" | sed 's/^/    /' >&2
  summarize
}

summarize() {
  "$PY" "$ROOT/scripts/cuda/device_check_summary.py" "$OUT" > /dev/null 2>> "$OUT/device_check.log" \
    || log "the summary could not be written (see device_check.log)"
}

env_part() {
  echo "== nvidia-smi"; nvidia-smi || echo "nvidia-smi failed"
  echo; echo "== launch.sh --check"; "$LAUNCH" --check
  local rc=$?
  echo; echo "== python"; "$PY" -c 'import sys, torch; print(sys.version); print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version(), "gpu", torch.cuda.get_device_name() if torch.cuda.is_available() else None)'
  echo; echo "== travel pack"; cat "$TRAVEL/BUILD-INFO.txt" 2>/dev/null | head -12
  echo; echo "== data"; ls -l "$DATA" 2>&1
  return $rc
}

bench_part() {
  local workloads=convnet_fwd_bwd,convnet_nonorm_fwd_bwd,gradient_ipc1,distribution_ipc10,cafe_step_ipc10,eval_epoch,expert_epoch
  local precisions=fp32,tf32 per=3
  if [ "$QUICK" = 1 ]; then workloads=convnet_fwd_bwd,gradient_ipc1,distribution_ipc10; precisions=fp32; per=2; fi
  "$PY" "$ROOT/scripts/bench/side_by_side.py" --device cuda --size gpu --precisions "$precisions" \
    --repeats 1 --per-process "$per" --warmup 1 --timeout 90 --python "$PY" \
    --cafe-cmd "$LAUNCH workload" --workloads "$workloads" --json "$OUT/bench/side_by_side.json" \
    | tee "$OUT/bench/table.md"
  local rc=${PIPESTATUS[0]}
  # candle's own convolutions (im2col + cuBLAS, conv_transpose2d) on the same workloads: what
  # cuDNN inside cafe-lab's ops gains.
  echo; echo "== cafe-lab with CAFE_CUDA_CONV=candle (fp32)"
  for w in convnet_fwd_bwd gradient_ipc1; do
    CAFE_CUDA_CONV=candle timeout 60 "$LAUNCH" workload "$w" --device cuda --size gpu --precision fp32 \
      --repeats "$per" --warmup 1 | tee -a "$OUT/bench/candle_conv.jsonl"
  done
  return $rc
}

# condense_one NAME LIMIT FLAGS...: one Fashion-MNIST condensation into OUT/condense/NAME.
condense_one() {
  local name=$1 limit=$2; shift 2
  echo "== $name: $*"
  timeout --kill-after=5 "$limit" "$LAUNCH" condense --device cuda --dataset fashion-mnist --data-dir "$DATA" \
    --eval-nets 2 --quiet --force --out "$OUT/condense/$name" "$@"
  local rc=$?
  echo "== $name: exit $rc"
  return $rc
}

condense_part() {
  # CAFE's own scheduler trains the network between matching steps (one ipc-1 iteration took
  # 294 s on 2 busy CPU cores): fewer iterations than DC to fit its 30 s (unmeasured on a GPU).
  local fails=0 it_dm=200 it_dc=40 it_cafe=10 it_mtt=100
  if [ "$QUICK" = 1 ]; then it_dm=50; it_dc=10; it_cafe=3; it_mtt=20; fi
  condense_one dm 30 --matcher distribution --ipc 10 --iterations $it_dm || fails=$((fails + 1))
  condense_one dc 30 --matcher gradient --ipc 1 --iterations $it_dc || fails=$((fails + 1))
  condense_one dsa 30 --protocol dsa --ipc 1 --iterations $it_dc || fails=$((fails + 1))
  condense_one cafe 30 --matcher cafe --ipc 1 --iterations $it_cafe || fails=$((fails + 1))
  echo "== mtt experts"
  if timeout --kill-after=5 20 "$LAUNCH" experts --device cuda --dataset fashion-mnist --data-dir "$DATA" \
      --num-experts 2 --train-epochs 3 --test-limit 1000 --set augment.name=none --quiet \
      --out "$OUT/condense/experts"; then
    condense_one mtt 25 --set matcher=trajectory --ipc 1 --iterations $it_mtt \
      --set "matcher.experts=$OUT/condense/experts" --set matcher.max_start_epoch=2 \
      --set matcher.expert_epochs=1 --set matcher.syn_steps=20 || fails=$((fails + 1))
  else
    echo "== mtt experts failed"; fails=$((fails + 1))
  fi
  return $fails
}

if [ -n "$INTERNAL" ]; then
  case "$INTERNAL" in
    env) env_part ;;
    bench) bench_part ;;
    condense) condense_part ;;
    *) echo "unknown internal part $INTERNAL" >&2; exit 2 ;;
  esac
  exit $?
fi
SELF=("$ROOT/scripts/cuda/device_check.sh" --out "$OUT" --travel "$TRAVEL" --data "$DATA" --python "$PY")
[ "$QUICK" = 1 ] && SELF+=(--quick)
[ -x "$LAUNCH" ] || { log "no launcher at $LAUNCH: build the travel pack with scripts/cuda/build.sh and carry target-cuda/travel"; }
log "cafe-lab device check: out $OUT, travel $TRAVEL, data $DATA, python $PY, parts $PARTS"
for p in ${PARTS//,/ }; do
  case "$p" in
    env) part env 20 "${SELF[@]}" --internal-part env ;;
    correctness) part correctness 100 "$LAUNCH" device-check --device cuda --out "$OUT/correctness" ;;
    bench) part bench 180 "${SELF[@]}" --internal-part bench ;;
    condense) part condense 170 "${SELF[@]}" --internal-part condense ;;
    *) log "unknown part '$p' (env, correctness, bench, condense)"; printf '%s\tunknown\t0\n' "$p" >> "$OUT/parts.tsv" ;;
  esac
done
summarize
log "done in $(( $(date +%s) - T0 )) s: $OUT/summary.md"
cat "$OUT/summary.md" 2>/dev/null | head -80 >&2
! grep -qv $'\tok\t' "$OUT/parts.tsv"
