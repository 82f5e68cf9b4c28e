#!/usr/bin/env bash
# Runs the CUDA cafe-lab on the machine it lands on: finds the libraries the binary needs there
# and says clearly what is missing. Made by scripts/cuda/build.sh, as launch.sh in the travel
# pack (beside cafe-lab.xz, unpacked on first use) and as run.sh in the bundle (beside cafe-lab
# and lib/).
#
#   launch.sh ARGS...       cafe-lab ARGS with the libraries found here
#   launch.sh --check       what cafe-lab needs and where each library was found (exit 3: missing)
#   launch.sh --print-env   the LD_LIBRARY_PATH it would use, as one shell assignment
#   launch.sh --binary      the path of the (unpacked) binary
#
# Where libraries are looked for, in this order:
#   1. $CAFE_CUDA_LIBS: folders separated by ':' (a CUDA toolkit's lib64, a copy of some .so);
#   2. lib/ beside this script (the bundle's cuBLAS, cuRAND, cudart, NVRTC);
#   3. the system loader's own path (/etc/ld.so.conf, $LD_LIBRARY_PATH): the NVIDIA driver's
#      libcuda.so.1 is found there when the driver is installed;
#   4. the NVIDIA pip packages of this machine's Python ($CAFE_PYTHON, else python3, else
#      python): every folder holding libraries under site-packages/nvidia/ (nvidia-cublas,
#      nvidia-cuda-runtime, nvidia-curand, nvidia-cuda-nvrtc, nvidia-cudnn-cu13,
#      nvidia-nccl-cu13; the packages PyTorch's CUDA wheels install) and torch/lib;
#   5. the driver's usual folders, for libcuda.so.1 (/usr/lib/x86_64-linux-gnu, /usr/lib64,
#      /usr/local/nvidia/lib64, /usr/lib/wsl/lib, /run/opengl-driver/lib).
# The unpacked binary goes beside this script, or under $CAFE_LAB_CACHE (default
# ~/.cache/cafe-lab) when this folder is read-only. Needs bash, ldd (glibc) and xz or Python.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MODE=run
case "${1:-}" in
  --check) MODE=check; shift ;;
  --print-env) MODE=env; shift ;;
  --binary) MODE=binary; shift ;;
esac
say() { echo "cafe-lab launcher: $*" >&2; }
die() { say "$*"; exit "${CODE:-2}"; }

# ---- the binary ------------------------------------------------------------------------------
sha256_of() {
  if command -v sha256sum >/dev/null 2>&1; then sha256sum "$1" | cut -d' ' -f1
  else "$PY" -c 'import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest())' "$1"
  fi
}
find_python() {
  PY=""
  for p in "${CAFE_PYTHON:-}" python3 python; do
    if [ -n "$p" ] && command -v "$p" >/dev/null 2>&1; then PY=$(command -v "$p"); return 0; fi
  done
  return 1
}
find_python || true
if [ -f "$HERE/cafe-lab.xz" ]; then
  WANT=$(cat "$HERE/cafe-lab.sha256" 2>/dev/null || true)
  [ -n "$WANT" ] || die "$HERE/cafe-lab.sha256 is missing: the travel pack is incomplete (rebuild with scripts/cuda/build.sh)"
  if [ -w "$HERE" ]; then DIR=$HERE; else DIR=${CAFE_LAB_CACHE:-$HOME/.cache/cafe-lab}/$WANT; fi
  BIN=$DIR/cafe-lab
  if [ ! -x "$BIN" ] || [ "$(sha256_of "$BIN")" != "$WANT" ]; then
    mkdir -p "$DIR" || die "cannot create $DIR to unpack the binary into (set CAFE_LAB_CACHE)"
    TMP=$(mktemp "$DIR/.cafe-lab.XXXXXX")
    if command -v xz >/dev/null 2>&1; then
      xz -dc "$HERE/cafe-lab.xz" > "$TMP" || { rm -f "$TMP"; die "xz could not unpack $HERE/cafe-lab.xz"; }
    elif [ -n "$PY" ]; then
      "$PY" -c 'import lzma,shutil,sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2],"wb"))' \
        "$HERE/cafe-lab.xz" "$TMP" || { rm -f "$TMP"; die "Python's lzma could not unpack $HERE/cafe-lab.xz"; }
    else
      rm -f "$TMP"; die "neither xz nor Python is here to unpack $HERE/cafe-lab.xz"
    fi
    GOT=$(sha256_of "$TMP")
    [ "$GOT" = "$WANT" ] || { rm -f "$TMP"; die "$HERE/cafe-lab.xz unpacks to sha256 $GOT, not $WANT: damaged in transit"; }
    chmod +x "$TMP" && mv -f "$TMP" "$BIN"
  fi
elif [ -x "$HERE/cafe-lab" ]; then
  BIN=$HERE/cafe-lab
else
  die "no cafe-lab or cafe-lab.xz beside $0"
fi
if [ "$MODE" = binary ]; then echo "$BIN"; exit 0; fi

# ---- the libraries ---------------------------------------------------------------------------
command -v ldd >/dev/null 2>&1 || die "ldd (glibc) is not here: cannot resolve the CUDA libraries"
hint() {
  case "$1" in
    libcuda.so.1) echo "the NVIDIA driver's library: install the driver (580 series or newer for CUDA 13.0); nvidia-smi should list the GPU" ;;
    libcudart.so.*) echo "CUDA runtime: pip install nvidia-cuda-runtime (CUDA 13)" ;;
    libcublas.so.*|libcublasLt.so.*) echo "cuBLAS: pip install nvidia-cublas (CUDA 13)" ;;
    libcurand.so.*) echo "cuRAND: pip install nvidia-curand" ;;
    libnvrtc.so.*) echo "NVRTC: pip install nvidia-cuda-nvrtc (CUDA 13)" ;;
    libcudnn*.so.*) echo "cuDNN 9: pip install nvidia-cudnn-cu13" ;;
    libnccl.so.*) echo "NCCL 2: pip install nvidia-nccl-cu13" ;;
    *) echo "a system library: install it with the OS's package manager" ;;
  esac
}
# missing PATH-LIST: the libraries ldd cannot resolve with PATH-LIST before the loader's own.
missing() {
  LD_LIBRARY_PATH="$1${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ldd "$BIN" 2>/dev/null | awk '/=> not found/ {print $1}' | sort -u
}
SEARCH=""
add() { case ":$SEARCH:" in *":$1:"*) ;; *) SEARCH=${SEARCH:+$SEARCH:}$1 ;; esac; }
IFS=: read -r -a USER_DIRS <<< "${CAFE_CUDA_LIBS:-}"
for d in "${USER_DIRS[@]}"; do [ -n "$d" ] && [ -d "$d" ] && add "$(cd "$d" && pwd)"; done
[ -d "$HERE/lib" ] && add "$HERE/lib"
# Library folders of the pip packages, found without importing them (importing torch takes seconds).
PIP_DIRS=""
if [ -n "$PY" ]; then
  PIP_DIRS=$("$PY" - <<'EOF' 2>/dev/null || true
import importlib.util, os
roots = []
for name in ("nvidia", "torch"):
    try:
        spec = importlib.util.find_spec(name)
    except Exception:
        continue
    if spec is not None and spec.submodule_search_locations:
        roots += list(spec.submodule_search_locations)
seen = set()
for root in roots:
    for d, subdirs, files in os.walk(root):
        if d[len(root):].count(os.sep) >= 3:
            subdirs[:] = []
        if any(".so" in f for f in files) and d not in seen:
            seen.add(d)
            print(d)
EOF
)
fi
DRIVER_DIRS="/usr/lib/x86_64-linux-gnu /usr/lib64 /usr/local/nvidia/lib64 /usr/lib/wsl/lib /run/opengl-driver/lib"
# Each library ldd misses: the first folder that holds it.
for lib in $(missing "$SEARCH"); do
  found=""
  for d in $PIP_DIRS $DRIVER_DIRS; do
    if [ -e "$d/$lib" ]; then found=$d; break; fi
  done
  [ -n "$found" ] && add "$found"
done
STILL=$(missing "$SEARCH")
FULL="$SEARCH${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

# cuDNN 9 loads its convolution, operation and graph libraries with dlopen from the folder of
# libcudnn.so.9: ldd cannot see them, so check them here.
CUDNN=$(LD_LIBRARY_PATH="$FULL" ldd "$BIN" 2>/dev/null | awk '$1 == "libcudnn.so.9" && $3 ~ /^\// {print $3}')
CUDNN_PARTS=""
if [ -n "$CUDNN" ]; then
  for part in libcudnn_graph.so.9 libcudnn_ops.so.9 libcudnn_cnn.so.9 libcudnn_engines_precompiled.so.9 libcudnn_heuristic.so.9; do
    [ -e "$(dirname "$CUDNN")/$part" ] || CUDNN_PARTS="$CUDNN_PARTS $part"
  done
fi

report() {
  echo "binary: $BIN"
  echo "python: ${PY:-none} (its NVIDIA pip folders: $(echo "$PIP_DIRS" | grep -c . || true))"
  LD_LIBRARY_PATH="$FULL" ldd "$BIN" 2>/dev/null | awk '$2 == "=>" {print $1, $3 == "not" ? "MISSING" : $3}' \
    | grep -E '^lib(cuda|cudart|cublas|cublasLt|curand|nvrtc|cudnn|nccl)\.so' | sed 's/^/  /'
}
if [ -n "$STILL" ] || [ -n "$CUDNN_PARTS" ]; then
  {
    echo "cafe-lab launcher: cannot run $BIN: libraries missing on this machine"
    for lib in $STILL; do echo "  $lib: $(hint "$lib")"; done
    for part in $CUDNN_PARTS; do echo "  $part (beside $CUDNN): cuDNN is a partial install; $(hint "$part")"; done
    echo "  looked in: ${SEARCH:-(no extra folders)}, the loader's path, the pip folders of ${PY:-(no Python found; set CAFE_PYTHON)}, $DRIVER_DIRS"
    echo "  or name a folder holding them in CAFE_CUDA_LIBS=DIR[:DIR...]"
  } >&2
  [ "$MODE" = check ] && report >&2
  exit 3
fi
case "$MODE" in
  check) report; echo "all libraries found"; exit 0 ;;
  env) printf 'LD_LIBRARY_PATH=%q\n' "$FULL"; exit 0 ;;
esac
LD_LIBRARY_PATH="$FULL" exec "$BIN" "$@"
