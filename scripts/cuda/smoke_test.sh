#!/usr/bin/env bash
# Check a CUDA bundle made by scripts/cuda/build.sh, on any Linux x86-64 machine.
#
#   smoke_test.sh [BUNDLE_DIR]
#
# BUNDLE_DIR defaults to the folder holding this script when it is the bundle's copy, else
# target-cuda/bundle/cafe-lab-cuda in the repository. Needs no network and no dataset files (it
# uses the embedded `shapes` dataset); takes under a minute on 2 CPU cores.
#  1. run.sh --check (the launcher): every library resolves, the bundled ones from lib/, except
#     where this machine has no NVIDIA driver (libcuda.so.1) or no cuDNN/NCCL pip packages.
#  2. Without a driver: with the bundle's stubs (stub/, through CAFE_CUDA_LIBS for this test
#     only) a tiny `--device cpu` condensation must succeed and `--device cuda` must fail with an
#     error message, not a panic or a crash.
#     With a driver: the same tiny condensation with `--device cpu` and with `--device cuda`.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [ $# -ge 1 ]; then B=$1
elif [ -x "$HERE/cafe-lab" ] && [ -x "$HERE/run.sh" ]; then B=$HERE
else B="$HERE/../../target-cuda/bundle/cafe-lab-cuda"
fi
[ -d "$B" ] || { echo "smoke_test.sh: no bundle at $B (run scripts/cuda/build.sh first)" >&2; exit 2; }
B=$(cd "$B" && pwd)
for f in cafe-lab run.sh lib stub; do
  [ -e "$B/$f" ] || { echo "smoke_test.sh: $B/$f missing: not a bundle from build.sh" >&2; exit 2; }
done
T=$(mktemp -d "${TMPDIR:-/tmp}/cafe-cuda-smoke.XXXXXX")
trap 'rm -rf "$T"' EXIT
FAILS=0
ok() { echo "  ok: $*"; }
bad() { echo "  FAIL: $*"; FAILS=$((FAILS + 1)); }
TINY=(--dataset shapes --ipc 1 --iterations 2 --eval-nets 1 --eval-epochs 2 --quiet --seed 0)
echo "bundle: $B"

echo "== 1. run.sh --check =="
set +e
CHECK_ERR=$("$B/run.sh" --check 2>&1 >/dev/null); CHECK_RC=$?
set -e
MISSING=$(echo "$CHECK_ERR" | awk '/^  lib[^ ]*:/ {sub(":", "", $1); print $1}' | sort -u | tr '\n' ' ')
echo "  launcher: exit $CHECK_RC${MISSING:+, missing: $MISSING}"
STUBPATH=""
case " $MISSING " in
  *" libcuda.so.1 "*)
    DRIVER=0
    [ -f "$B/stub/libcuda.so.1" ] || { bad "no driver and no stub at $B/stub/libcuda.so.1"; exit 1; }
    ok "no driver here: using the bundle's stubs (stub/) for this test only"
    STUBPATH="$B/stub" ;;
  *)
    if [ "$CHECK_RC" = 0 ]; then DRIVER=1; ok "driver and every library found"
      command -v nvidia-smi >/dev/null && nvidia-smi -L | sed 's/^/  /' || true
    else DRIVER=1; bad "the driver is here but libraries are missing: $MISSING (see run.sh --check)"; echo "$CHECK_ERR" | sed 's/^/    /'
    fi ;;
esac
REPORT=$(CAFE_CUDA_LIBS="$STUBPATH" "$B/run.sh" --check 2>&1) || { echo "$REPORT" | sed 's/^/    /'; bad "run.sh --check fails even with the stubs"; }
for lib in libcudart.so.13 libcublas.so.13 libcublasLt.so.13 libcurand.so.10; do
  where=$(echo "$REPORT" | awk -v l="$lib" '$1 == l {print $2}')
  case "$where" in "$B/lib/"*) ;; *) bad "$lib resolves to '$where', not the bundle's lib/" ;; esac
done

# run NAME DEVICE: the tiny condensation; sets RC and OUTPUT.
run() {
  set +e
  OUTPUT=$(cd "$T" && CAFE_CUDA_LIBS="$STUBPATH" \
    timeout 900 "$B/run.sh" "${TINY[@]}" --device "$2" --out "$T/$1" 2>&1)
  RC=$?
  set -e
}
check_run() {
  if [ "$RC" -eq 0 ] && [ -f "$T/$1/synthetic.safetensors" ] && [ -f "$T/$1/results.json" ]; then
    ok "--device $2: exit 0, synthetic.safetensors and results.json written (${SECONDS_TAKEN} s)"
    if [ -f "$T/$1/evaluations.md" ]; then sed 's/^/    /' "$T/$1/evaluations.md"; fi
  else
    bad "--device $2: exit $RC"; echo "$OUTPUT" | tail -20 | sed 's/^/    /'
  fi
}

echo "== 2. --device cpu =="
S=$(date +%s); run cpu cpu; SECONDS_TAKEN=$(( $(date +%s) - S )); check_run cpu cpu

echo "== 3. --device cuda =="
S=$(date +%s); run cuda cuda; SECONDS_TAKEN=$(( $(date +%s) - S ))
if [ "$DRIVER" = 1 ]; then
  check_run cuda cuda
else
  echo "$OUTPUT" | sed 's/^/    /'
  if [ "$RC" -eq 0 ]; then bad "--device cuda succeeded with the stub driver?"
  elif [ "$RC" -ge 124 ]; then bad "--device cuda: exit $RC (killed by a signal or timed out)"
  elif echo "$OUTPUT" | grep -q 'panicked'; then bad "--device cuda: panicked"
  elif ! echo "$OUTPUT" | grep -q 'CUDA_ERROR_NO_DEVICE'; then bad "--device cuda: error does not name CUDA_ERROR_NO_DEVICE"
  else ok "--device cuda: exit $RC with an error message (expected without a GPU)"
  fi
fi

echo
if [ "$FAILS" -eq 0 ]; then
  echo "smoke test PASSED ($([ "$DRIVER" = 1 ] && echo 'with the NVIDIA driver: CPU and GPU runs' || echo 'no driver: CPU run + clean CUDA error, via the stub'))"
else
  echo "smoke test FAILED ($FAILS checks)"; exit 1
fi
