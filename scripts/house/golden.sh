#!/usr/bin/env bash
# Seeded outputs of every evaluation path, as hashes and accuracies, to compare two builds:
#   scripts/house/golden.sh BINARY OUTDIR > golden.txt
# Runs tiny jobs on the embedded `shapes` set (about 3 minutes on 2 cores): condensation with
# the random baseline, DD-Ranking's metrics, KD (trained and loaded teacher), evaluation during
# condensation with best-val, several evaluation architectures, `evaluate --synthetic`,
# `baseline`, `--runs 2`, experts and MTT with learned extras, CAFE's dynamic scheduler, DC.
# Prints, per job, the sha256 of each file that must repeat byte for byte and every
# (set, arch, accuracies) of results.json; timings and paths are left out.
#   scripts/house/golden.sh --summarize OUTDIR   (only the summary of an earlier run)
set -euo pipefail
SUMMARIZE_ONLY=0
if [ "${1:-}" = "--summarize" ]; then SUMMARIZE_ONLY=1; shift; OUT=${1:?output folder}; else
BIN=${1:?binary}; OUT=${2:?output folder}
fi
export RAYON_NUM_THREADS=${RAYON_NUM_THREADS:-2}
T="--ipc 2 --batch-real 8 --eval-nets 2 --eval-epochs 2 --test-limit 200 -q --force"
run() { local name=$1; shift; "$BIN" "$@" --out "$OUT/$name" >/dev/null 2>&1 || { echo "$name: FAILED"; "$BIN" "$@" --out "$OUT/$name.err" 2>&1 | tail -3; }; }
summ() {
  local d=$1
  # The set's metadata names files under OUT (an expert store): hashed with OUT written as
  # OUT. The teacher's tensors only: its header's key order was not fixed before the
  # tensor-file module.
  if [ -f "$d/synthetic.safetensors" ]; then
    echo "$(basename "$d") synthetic.safetensors $(python3 -c "import sys,hashlib;print(hashlib.sha256(open(sys.argv[1],'rb').read().replace(sys.argv[2].encode(),b'OUT')).hexdigest()[:16])" "$d/synthetic.safetensors" "$OUT")"
  fi
  if [ -f "$d/teacher.safetensors" ]; then
    echo "$(basename "$d") teacher.safetensors-tensors $(python3 -c "import sys,struct,hashlib;b=open(sys.argv[1],'rb').read();n=struct.unpack('<Q',b[:8])[0];print(hashlib.sha256(b[8+n:]).hexdigest()[:16])" "$d/teacher.safetensors")"
  fi
  # config.json names its output folder: hash it with that folder written as OUT.
  if [ -f "$d/config.json" ]; then
    echo "$(basename "$d") config.json $(sed "s#$OUT#OUT#g" "$d/config.json" | sha256sum | cut -c1-16)"
  fi
  if [ -f "$d/results.json" ]; then python3 - "$d/results.json" <<'PY'
import json, sys, hashlib
r = json.load(open(sys.argv[1]))
name = sys.argv[1].split('/')[-2]
# Everything but what a clock or the machine decides, and where the files went.
def strip(v):
    if isinstance(v, dict):
        return {k: strip(x) for k, x in v.items() if k not in ("seconds", "seconds_total", "seconds_per_iteration", "seconds_per_iteration_median", "peak_rss_mib", "source", "out", "dir")}
    if isinstance(v, list):
        return [strip(x) for x in v]
    return v
print(name, "results.json-without-timing", hashlib.sha256(json.dumps(strip(r), sort_keys=True).encode()).hexdigest()[:16])
for e in r.get("evaluations", []):
    print(name, e["set"], e["arch"], e["epochs"], e["augment"], e.get("lr"), ["%.6f" % a for a in e["accuracies"]], ["%.6f" % a for a in e.get("per_class", [])])
for m in r.get("metrics", []):
    print(name, "metrics", json.dumps(m, sort_keys=True))
for v in r.get("validation_curve", []):
    print(name, "val", v["iteration"], ["%.6f" % a for a in v["accuracies"]])
if r.get("selection"): print(name, "selection", json.dumps(r["selection"], sort_keys=True))
if r.get("kd"): print(name, "kd", json.dumps(r["kd"], sort_keys=True))
for a in r.get("aggregate", []):
    print(name, "aggregate", a["set"], a["arch"], ["%.6f" % m for m in a["run_means"]])
PY
  fi
}
if [ "$SUMMARIZE_ONLY" = 0 ]; then
rm -rf "$OUT"; mkdir -p "$OUT"
run dm-metrics-kd --iterations 4 --metrics --kd --set eval.kd_teacher_epochs=1 --seed 3 $T
run dc-during --matcher gradient --iterations 3 --eval-every 2 --select best-val --val-per-class 5 --eval-archs convnet,mlp --seed 1 $T
run cafe-dynamic --matcher cafe --iterations 2 --seed 2 $T
run dm-dsa-mode --protocol dm --iterations 2 --eval-mode W --eval-epochs 1 --seed 4 $T
run eval-again evaluate --synthetic "$OUT/dm-metrics-kd/synthetic.safetensors" --kd --kd-teacher "$OUT/dm-metrics-kd/teacher.safetensors" --eval-nets 3 --eval-epochs 2 --test-limit 300 --seed 5 -q --force
run baseline baseline --ipc 3 --eval-nets 2 --eval-epochs 2 --test-limit 200 --seed 6 -q --force
run repeat --iterations 2 --runs 2 --seed 7 $T
"$BIN" experts --dataset shapes --num-experts 2 --train-epochs 3 --decay --test-limit 200 --seed 8 -q --out "$OUT/experts" >/dev/null 2>&1 || echo "experts: FAILED"
for f in "$OUT"/experts/expert_*.safetensors; do
  # The tensors (not the header, whose key order was not fixed before) must repeat.
  echo "experts $(basename "$f") $(python3 -c "import sys,struct;b=open(sys.argv[1],'rb').read();n=struct.unpack('<Q',b[:8])[0];import hashlib;print(hashlib.sha256(b[8+n:]).hexdigest()[:16])" "$f")"
done
run mtt --matcher trajectory --iterations 3 --set matcher.experts="$OUT/experts" --set matcher.expert_epochs=1 --set matcher.max_start_epoch=1 --set matcher.syn_steps=2 --set matcher.soft_labels=true --seed 9 $T
fi
for d in "$OUT"/*/; do summ "${d%/}"; done
for d in "$OUT"/repeat/seed*/; do summ "${d%/}"; done
