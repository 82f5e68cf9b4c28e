#!/usr/bin/env bash
# Tests launch.sh's error paths on a machine without a GPU:
#
#   scripts/cuda/test_launcher.sh [TARGET_DIR]      (default target-cuda)
#   scripts/cuda/test_launcher.sh --fake            (no CUDA build needed; seconds)
#
# With TARGET_DIR it uses the travel pack, stubs and venv that scripts/cuda/build.sh left there.
# With --fake it makes a pack of the same layout without the CUDA build: a tiny C program that
# needs exactly the libraries cafe-lab's CUDA binary needs (libcuda.so.1, libcudart.so.13,
# libcublas.so.13, libcublasLt.so.13, libcurand.so.10, libnvrtc.so.13, libcudnn.so.9,
# libnccl.so.2), linked against link_stub.py's stubs of the driver, cuDNN and NCCL (generated
# from the cudarc bindings cargo resolved, as build.sh does) and against empty libraries with the
# other sonames; stripped, xz-compressed and hashed as build.sh packs the real binary.
# It builds fake Python package trees (site-packages/nvidia/<pkg>/lib as NVIDIA's pip wheels
# lay them out) from those libraries and checks:
#   1. nothing found: exit 3, every missing library named with its pip package or the driver;
#   2. pip libraries complete, no driver: exit 3, only libcuda.so.1 named, as the driver's;
#   3. cuDNN's pip package absent: libcudnn.so.9 named with nvidia-cudnn-cu13;
#   4. cuDNN partial (its libcudnn_cnn.so.9 gone): named as a partial install;
#   5. a damaged cafe-lab.xz: refused by its sha256, nothing run;
#   6. a read-only pack: the binary is unpacked under CAFE_LAB_CACHE;
#   7. the stub driver (CAFE_CUDA_LIBS): --check passes; with the real binary also a tiny
#      --device cpu run succeeds and --device cuda fails with CUDA_ERROR_NO_DEVICE, not a panic
#      (skipped with --fake, which has no cafe-lab to run);
#   8. where a real PyTorch venv with NVIDIA's pip libraries is at hand ($REAL_TORCH_PYTHON,
#      else /work/venv-torch/bin/python), --check finds their real cuDNN, NCCL, cuBLAS, cudart
#      and NVRTC; with the real binary also LD_BIND_NOW=1 --version: every symbol it needs from
#      them exists (cuRAND from the build venv if theirs lacks it).
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
FAKE=0
if [ "${1:-}" = --fake ]; then FAKE=1; shift; fi
TARGET=${1:-$ROOT/target-cuda}
T=$(mktemp -d "${TMPDIR:-/tmp}/cafe-launcher-test.XXXXXX")
trap 'chmod -R u+w "$T" 2>/dev/null; rm -rf "$T"' EXIT
if [ "$FAKE" = 1 ]; then
  # fake_pack: the libraries and the pack under $T/fake, as build.sh lays out target-cuda.
  F="$T/fake"; PACK="$F/travel/cafe-lab-gpu"; LINK="$F/cuda-link"; CU="$F/cu13"
  mkdir -p "$PACK" "$LINK" "$CU"
  for tool in cc strip xz sha256sum python3 cargo; do
    command -v "$tool" >/dev/null || { echo "test_launcher.sh --fake needs $tool" >&2; exit 2; }
  done
  CUDARC=$(cd "$ROOT" && cargo metadata --format-version 1 --features "cafe-cli/cuda" 2>/dev/null \
    | python3 -c 'import json,sys,os; print(next(os.path.dirname(p["manifest_path"]) for p in json.load(sys.stdin)["packages"] if p["name"]=="cudarc"))') \
    || { echo "cargo metadata could not find the cudarc crate" >&2; exit 2; }
  for s in driver:libcuda.so.1 cudnn:libcudnn.so.9 nccl:libnccl.so.2; do
    kind=${s%%:*}; soname=${s#*:}
    python3 "$ROOT/scripts/cuda/link_stub.py" "$kind" "$CUDARC/src/$kind/sys/mod.rs" "$LINK/stub_$kind.c" \
      "$LINK/$kind-symbols.txt" >/dev/null || { echo "link_stub.py $kind failed" >&2; exit 2; }
    cc -shared -fPIC -O1 -w -Wl,-soname,"$soname" -o "$LINK/$soname" "$LINK/stub_$kind.c" || exit 2
  done
  echo 'int cafe_fake_cuda_library;' > "$F/empty.c"
  for soname in libcudart.so.13 libcublas.so.13 libcublasLt.so.13 libcurand.so.10 libnvrtc.so.13; do
    cc -shared -fPIC -Wl,-soname,"$soname" -o "$CU/$soname" "$F/empty.c" || exit 2
  done
  printf '#include <stdio.h>\nint main(void) { puts("fake cafe-lab"); return 0; }\n' > "$F/main.c"
  LIBS=()
  for l in "$LINK/libcuda.so.1" "$LINK/libcudnn.so.9" "$LINK/libnccl.so.2" "$CU"/lib*.so.*; do LIBS+=("$l"); done
  cc -o "$F/cafe-lab" "$F/main.c" -Wl,--no-as-needed "${LIBS[@]}" || exit 2
  strip --strip-all -o "$PACK/cafe-lab" "$F/cafe-lab"
  sha256sum "$PACK/cafe-lab" | cut -d' ' -f1 > "$PACK/cafe-lab.sha256"
  xz -9 "$PACK/cafe-lab"
  cp "$ROOT/scripts/cuda/launch.sh" "$PACK/launch.sh"; chmod +x "$PACK/launch.sh"
  NEEDED=$(objdump -p "$F/cafe-lab" 2>/dev/null | awk '$1 == "NEEDED" {print $2}' | tr '\n' ' ')
  echo "fake pack: a C program needing $NEEDED"
else
  PACK="$TARGET/travel/cafe-lab-gpu"
  LINK="$TARGET/cuda-link"
  VENV="$TARGET/venv"
  [ -f "$PACK/cafe-lab.xz" ] && [ -x "$PACK/launch.sh" ] \
    || { echo "no travel pack at $PACK (run scripts/cuda/build.sh, or test with --fake)" >&2; exit 2; }
  CU=$("$VENV/bin/python" -c 'import nvidia, os; print(os.path.join(list(nvidia.__path__)[0], "cu13", "lib"))') \
    || { echo "no build venv at $VENV" >&2; exit 2; }
fi
FAILS=0
ok() { echo "  ok: $*"; }
bad() { echo "  FAIL: $*"; FAILS=$((FAILS + 1)); }

# A pip tree: site-$1/nvidia/{cu13,cudnn,nccl}/lib; $2 = "nocudnn" or "partialcudnn" to break it.
site() {
  local s="$T/site-$1"
  mkdir -p "$s/nvidia/cu13/lib" "$s/nvidia/cudnn/lib" "$s/nvidia/nccl/lib"
  for l in libcudart.so.13 libcublas.so.13 libcublasLt.so.13 libcurand.so.10 libnvrtc.so.13; do
    ln -sf "$CU/$l" "$s/nvidia/cu13/lib/$l"
  done
  cp "$LINK/libnccl.so.2" "$s/nvidia/nccl/lib/"
  if [ "${2:-}" != nocudnn ]; then
    cp "$LINK/libcudnn.so.9" "$s/nvidia/cudnn/lib/"
    for p in graph ops cnn engines_precompiled heuristic; do cp "$LINK/libcudnn.so.9" "$s/nvidia/cudnn/lib/libcudnn_$p.so.9"; done
    [ "${2:-}" != partialcudnn ] || rm "$s/nvidia/cudnn/lib/libcudnn_cnn.so.9"
  fi
  echo "$s"
}
# launch ENV...: runs a copy of the pack's launcher with a clean library path; sets RC, ERR, OUTPUT.
PACKCOPY="$T/pack"; cp -r "$PACK" "$PACKCOPY"
launch() {
  local envs=()
  while [ $# -gt 0 ] && [[ "$1" == *=* ]]; do envs+=("$1"); shift; done
  OUTPUT=$(cd "$T" && env -u LD_LIBRARY_PATH -u CAFE_CUDA_LIBS -u PYTHONPATH CAFE_PYTHON=python3 \
    "${envs[@]}" "$PACKCOPY/launch.sh" "$@" 2>"$T/err")
  RC=$?
  ERR=$(cat "$T/err")
}
has() { echo "$ERR" | grep -q -- "$1"; }

echo "== 1. nothing found"
launch --check
[ "$RC" = 3 ] && ok "exit 3" || bad "exit $RC"
for want in "libcuda.so.1: the NVIDIA driver" "libcudart.so.13: CUDA runtime: pip install nvidia-cuda-runtime" \
    "libcublas.so.13: cuBLAS" "libcurand.so.10: cuRAND" "libnvrtc.so.13: NVRTC" \
    "libcudnn.so.9: cuDNN 9: pip install nvidia-cudnn-cu13" "libnccl.so.2: NCCL 2"; do
  has "$want" && ok "names '$want'" || bad "does not name '$want'"
done
[ -x "$PACKCOPY/cafe-lab" ] && ok "unpacked the binary beside the launcher" || bad "no unpacked binary"

echo "== 2. pip libraries complete, no driver"
S=$(site full)
launch PYTHONPATH="$S" --check
[ "$RC" = 3 ] && ok "exit 3" || bad "exit $RC"
has "libcuda.so.1: the NVIDIA driver" && ok "names the driver" || bad "does not name the driver"
# The missing libraries are the lines `  libX.so.N: hint` (the report after them lists every one).
if echo "$ERR" | grep -E '^  lib[^ ]*: ' | grep -qv '^  libcuda.so.1: '; then bad "names more than the driver: $ERR"; else ok "names nothing else"; fi

echo "== 3. no cuDNN"
S=$(site nocudnn nocudnn)
launch PYTHONPATH="$S" --check
has "libcudnn.so.9: cuDNN 9: pip install nvidia-cudnn-cu13" && ok "names cuDNN's package" || bad "$ERR"

echo "== 4. cuDNN partial"
S=$(site partial partialcudnn)
launch PYTHONPATH="$S" CAFE_CUDA_LIBS="$LINK" --check
[ "$RC" = 3 ] && has "libcudnn_cnn.so.9" && has "partial install" && ok "names libcudnn_cnn.so.9 as a partial install" || bad "exit $RC: $ERR"

echo "== 5. damaged binary"
BROKEN="$T/broken"; cp -r "$PACK" "$BROKEN"; rm -f "$BROKEN/cafe-lab"
printf 'x' | dd of="$BROKEN/cafe-lab.xz" bs=1 seek=2000 conv=notrunc status=none
OUTPUT=$(env -u LD_LIBRARY_PATH "$BROKEN/launch.sh" --binary 2>&1); RC=$?
[ "$RC" != 0 ] && echo "$OUTPUT" | grep -qE 'damaged in transit|could not unpack' && ok "refused: $(echo "$OUTPUT" | tail -1)" \
  || bad "exit $RC: $OUTPUT"
[ ! -e "$BROKEN/cafe-lab" ] && ok "left no binary" || bad "left a binary"

echo "== 6. read-only pack"
RO="$T/ro"; cp -r "$PACK" "$RO"; rm -f "$RO/cafe-lab"; chmod a-w "$RO"
if [ -w "$RO" ]; then
  ok "skipped: running as a user who can write to read-only folders (root)"
else
  BIN=$(CAFE_LAB_CACHE="$T/cache" "$RO/launch.sh" --binary 2>&1)
  case "$BIN" in "$T/cache/"*) ok "unpacked into the cache: $BIN" ;; *) bad "$BIN" ;; esac
fi
chmod u+w "$RO"

echo "== 7. the stub driver"
S=$(site full)
STUB="$T/stub-driver"; mkdir -p "$STUB"; cp "$LINK/libcuda.so.1" "$STUB/"
launch PYTHONPATH="$S" CAFE_CUDA_LIBS="$STUB" --check
[ "$RC" = 0 ] && ok "--check passes" || bad "--check exit $RC: $ERR"
if [ "$FAKE" = 1 ]; then
  ok "skipped the cafe-lab runs: --fake has no cafe-lab binary (they need the pack of scripts/cuda/build.sh)"
else
TINY=(--dataset shapes --ipc 1 --iterations 2 --eval-nets 1 --eval-epochs 2 --quiet --seed 0 --force)
launch PYTHONPATH="$S" CAFE_CUDA_LIBS="$STUB" "${TINY[@]}" --device cpu --out "$T/cpu-run"
[ "$RC" = 0 ] && [ -f "$T/cpu-run/results.json" ] && ok "--device cpu run succeeds" || bad "--device cpu exit $RC: $(echo "$ERR" | tail -5)"
launch PYTHONPATH="$S" CAFE_CUDA_LIBS="$STUB" "${TINY[@]}" --device cuda --out "$T/cuda-run"
if [ "$RC" = 1 ] && has CUDA_ERROR_NO_DEVICE && ! has panicked; then ok "--device cuda: exit 1, $(echo "$ERR" | tail -1 | cut -c1-160)"
else bad "--device cuda exit $RC: $ERR"; fi
launch PYTHONPATH="$S" CAFE_CUDA_LIBS="$STUB" device-check --device cuda --parts ops
[ "$RC" = 2 ] && has CUDA_ERROR_NO_DEVICE && ok "device-check without a GPU: exit 2, $(echo "$ERR" | tail -1 | cut -c1-120)" || bad "device-check exit $RC: $ERR"
fi

echo "== 8. the real pip libraries"
REAL=${REAL_TORCH_PYTHON:-/work/venv-torch/bin/python}
if [ -x "$REAL" ] && "$REAL" -c 'import importlib.util as u; assert u.find_spec("nvidia")' 2>/dev/null; then
  # cuRAND from the build venv when that Python's packages lack it (PyTorch 2.15's wheels do).
  EXTRA="$STUB"
  "$REAL" -c 'import nvidia,glob,os,sys; sys.exit(0 if any(glob.glob(os.path.join(p,"**","libcurand.so.10"),recursive=True) for p in nvidia.__path__) else 1)' \
    || { mkdir -p "$T/curand"; ln -s "$CU/libcurand.so.10" "$T/curand/"; EXTRA="$STUB:$T/curand"; }
  launch CAFE_PYTHON="$REAL" CAFE_CUDA_LIBS="$EXTRA" --check
  echo "$OUTPUT" | sed 's/^/    /'
  [ "$RC" = 0 ] && ok "--check with $REAL's packages" || bad "--check exit $RC: $ERR"
  if [ "$FAKE" = 1 ]; then
    ok "skipped LD_BIND_NOW=1 --version: the fake binary needs no symbols from them"
  else
    launch CAFE_PYTHON="$REAL" CAFE_CUDA_LIBS="$EXTRA" LD_BIND_NOW=1 --version
    [ "$RC" = 0 ] && ok "LD_BIND_NOW=1 --version: every symbol resolves in the real libraries ($OUTPUT)" || bad "exit $RC: $ERR"
  fi
else
  ok "skipped: no Python with NVIDIA's pip packages at $REAL (set REAL_TORCH_PYTHON)"
fi

echo
if [ "$FAILS" = 0 ]; then echo "launcher test PASSED"; else echo "launcher test FAILED ($FAILS checks)"; exit 1; fi
