#!/usr/bin/env bash
# Type-checks (cargo clippy) the CUDA features of cafe-lab on a machine without the CUDA
# toolkit (14 minutes from an empty target dir on 2 busy cores, under a minute after; build.sh
# takes 40): a stand-in `nvcc` answers candle-kernels'
# and cudarc's build scripts (its version, empty PTX and object files), so that rustc checks
# every line behind `cuda`, `cudnn` and `nccl` against the real cudarc and candle APIs.
# Nothing is linked or run: a clean result says the code compiles, not that it works on a GPU
# (scripts/cuda/device_check.sh says that).
#
#   scripts/cuda/typecheck.sh [FEATURES]     (default cuda,cudnn,nccl,workloads; also try cuda)
#
# Uses its own target dir, target/cuda-typecheck: the stand-in's empty PTX must never reach a
# build that runs (build.sh builds in target-cuda/). Exits with clippy's status.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
FEATURES=${1:-cuda,cudnn,nccl,workloads}
FAKE=$(mktemp -d "${TMPDIR:-/tmp}/cafe-fake-nvcc.XXXXXX")
trap 'rm -rf "$FAKE"' EXIT
mkdir -p "$FAKE/bin" "$FAKE/include" "$FAKE/lib64"
cat > "$FAKE/bin/nvcc" <<'NVCC'
#!/usr/bin/env bash
# Stand-in nvcc (scripts/cuda/typecheck.sh): empty outputs, for `cargo check` only.
out=""; outdir=""; mode=""; src=""; objs=()
while [ $# -gt 0 ]; do
  case "$1" in
    --version) echo "Cuda compilation tools, release 13.0, V13.0.88 (cafe-lab typecheck stand-in)"; exit 0 ;;
    --list-gpu-code) printf 'sm_80\nsm_90\n'; exit 0 ;;
    --ptx) mode=ptx ;;
    -c) mode=obj ;;
    --lib) mode=lib ;;
    -o) out=$2; shift ;;
    --output-directory) outdir=$2; shift ;;
    -ccbin|--default-stream|-Xcompiler) shift ;;
    *.cu) src=$1 ;;
    *.o) objs+=("$1") ;;
  esac
  shift
done
case "$mode" in
  ptx) echo "// stand-in PTX" > "${out:-$outdir/$(basename "$src" .cu).ptx}" ;;
  obj) cc -c -x c /dev/null -o "$out" ;;
  lib) ar rcs "$out" "${objs[@]}" ;;
esac
NVCC
chmod +x "$FAKE/bin/nvcc"
cd "$ROOT"
# CUDARC_CUDA_VERSION: cudarc's bindings for CUDA 13.0, what build.sh's pinned nvcc reports.
CARGO_TARGET_DIR="$ROOT/target/cuda-typecheck" PATH="$FAKE/bin:$PATH" CUDARC_CUDA_VERSION=13000 CUDA_COMPUTE_CAP=90 NVCC="$FAKE/bin/nvcc" \
  cargo clippy --release -p cafe-cli --features "$FEATURES" -- -D warnings
