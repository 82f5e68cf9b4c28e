#!/usr/bin/env bash
# Build the CUDA cafe-lab on a Debian machine with no system CUDA toolkit and no GPU, and pack it
# as a folder + tar.gz that runs on a GPU machine with only the NVIDIA driver (no Rust, no
# network, no toolkit). See README "CUDA" and CANDLE_NOTES 9.
#
#   scripts/cuda/build.sh [--venv DIR] [--target-dir DIR] [--compute-cap N] [--keep-debug] [--no-tar]
#
#   --venv DIR         Python venv for the toolkit pieces from PyPI (default TARGET/venv)
#   --target-dir DIR   cargo target dir (default target-cuda/ in the repository; never target/)
#   --compute-cap N    GPU compute capability the kernels are built for (default $CUDA_COMPUTE_CAP,
#                      else 90): 80 A100, 86 A10/RTX 30xx, 89 L4/L40/RTX 4090, 90 H100/H200.
#                      Below 90 the PTX also loads (JIT) on newer GPUs; 90 and up build
#                      arch-specific PTX (sm_90a), which loads on that architecture only.
#   --keep-debug       keep the debug info in the bundled binary (default: strip it, keep symbols)
#   --no-tar           make the bundle folder only
#
# Needs: python3 with venv (Debian: python3-venv), pip access to PyPI, cargo, gcc/g++ (nvcc's host
# compiler), binutils, tar/gzip. Writes only under the target dir (and the venv).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE="$ROOT/scripts/cuda"
TARGET="$ROOT/target-cuda"
VENV=""
CAP="${CUDA_COMPUTE_CAP:-90}"
KEEP_DEBUG=0
MAKE_TAR=1
while [ $# -gt 0 ]; do
  case "$1" in
    --venv) VENV=$2; shift 2 ;;
    --target-dir) TARGET=$2; shift 2 ;;
    --compute-cap) CAP=$2; shift 2 ;;
    --keep-debug) KEEP_DEBUG=1; shift ;;
    --no-tar) MAKE_TAR=0; shift ;;
    -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
mkdir -p "$TARGET"
TARGET=$(cd "$TARGET" && pwd)
VENV=${VENV:-$TARGET/venv}
LINK="$TARGET/cuda-link"          # unversioned .so symlinks + the stub libcuda, for the linker only
BUNDLE_PARENT="$TARGET/bundle"
NAME=cafe-lab-cuda
BUNDLE="$BUNDLE_PARENT/$NAME"

# The toolkit pieces, pinned. nvcc, nvvm and crt must be the same release: a newer nvvm emits PTX
# the 13.0 ptxas rejects (unpinned, pip picks nvvm/crt 13.5). CUDA 13.0 runs on 580+ drivers.
# curand 10.4.0.35 is the one cuda-toolkit==13.0.2 pins; cublas 13.0.2.14 is the newest 13.0.*.
PIP_PACKAGES=(
  nvidia-cuda-nvcc==13.0.88 nvidia-nvvm==13.0.88 nvidia-cuda-crt==13.0.88
  nvidia-cuda-runtime==13.0.96 nvidia-cuda-cccl==13.0.85 nvidia-cuda-nvrtc==13.0.88
  nvidia-cublas==13.0.2.14 nvidia-curand==10.4.0.35
)
# What the linker is asked for (cudarc: -lcuda -lnvrtc -lcurand -lcublas -lcublasLt;
# candle-kernels: -lcudart), as library name = file in the venv.
LINK_LIBS=(cudart:libcudart.so.13 cublas:libcublas.so.13 cublasLt:libcublasLt.so.13
  curand:libcurand.so.10 nvrtc:libnvrtc.so.13)

die() { echo "build.sh: error: $*" >&2; exit 1; }
step() { STEP_T0=$(date +%s); echo; echo "== $* =="; }
step_done() { echo "   ($(( $(date +%s) - STEP_T0 )) s)"; }
T0=$(date +%s)
trap 'rc=$?; [ $rc -eq 0 ] || echo "build.sh: failed (exit $rc) after $(( $(date +%s) - T0 )) s" >&2' EXIT

step "1/6 prerequisites"
for tool in python3 cargo cc g++ nm strip ldd tar gzip; do
  command -v "$tool" >/dev/null || die "'$tool' not found (Debian: apt-get install python3-venv build-essential binutils; Rust from rustup)"
done
case "$CAP" in ''|*[!0-9a-z]*) die "--compute-cap '$CAP' is not like 80, 89, 90" ;; esac
echo "target dir $TARGET, venv $VENV, CUDA_COMPUTE_CAP=$CAP"
step_done

step "2/6 CUDA toolkit pieces from PyPI into $VENV"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
fi
"$VENV/bin/pip" install --disable-pip-version-check -q "${PIP_PACKAGES[@]}" \
  || die "pip install of the CUDA toolkit pieces failed (needs PyPI access)"
CU=$("$VENV/bin/python" -c 'import nvidia, os; print(os.path.join(list(nvidia.__path__)[0], "cu13"))') \
  || die "cannot locate the nvidia package in $VENV"
[ -x "$CU/bin/nvcc" ] || die "nvcc not found at $CU/bin/nvcc"
export PATH="$CU/bin:$PATH"
NVCC_RELEASE=$(nvcc --version | sed -n 's/.*release \([0-9.]*\),.*/\1/p')
[ "$NVCC_RELEASE" = "13.0" ] || die "nvcc reports release '$NVCC_RELEASE', expected 13.0"
for f in "${LINK_LIBS[@]}"; do [ -f "$CU/lib/${f#*:}" ] || die "missing $CU/lib/${f#*:}"; done
echo "nvcc $(nvcc --version | tail -1) at $CU/bin"
step_done

step "3/6 link folder $LINK (unversioned symlinks + stub libcuda.so)"
rm -rf "$LINK"; mkdir -p "$LINK"
for f in "${LINK_LIBS[@]}"; do ln -s "$CU/lib/${f#*:}" "$LINK/lib${f%%:*}.so"; done
# The driver symbols: every cu[A-Z]* function of cudarc's driver bindings (a superset of what the
# build leaves undefined; all return CUresult), taken from the cudarc source that cargo resolved.
CUDARC=$(cd "$ROOT" && cargo metadata --format-version 1 --features cafe-cli/cuda 2>/dev/null \
  | python3 -c 'import json,sys,os; print(next(os.path.dirname(p["manifest_path"]) for p in json.load(sys.stdin)["packages"] if p["name"]=="cudarc"))') \
  || die "cargo metadata could not find the cudarc crate (is the network/registry reachable?)"
BINDINGS="$CUDARC/src/driver/sys/mod.rs"
[ -f "$BINDINGS" ] || die "cudarc driver bindings not found at $BINDINGS"
grep -oE '^pub unsafe fn cu[A-Z][A-Za-z0-9_]*' "$BINDINGS" | sed 's/^pub unsafe fn //' | sort -u > "$LINK/driver-symbols.txt"
NSYM=$(wc -l < "$LINK/driver-symbols.txt")
[ "$NSYM" -gt 300 ] || die "only $NSYM driver symbols found in $BINDINGS; the bindings' layout changed"
{
  echo '/* Generated by scripts/cuda/build.sh from cudarc'"'"'s driver bindings: a stand-in for the NVIDIA'
  echo ' * driver'"'"'s libcuda.so.1, to link against and to smoke-test on machines without a driver. Every'
  echo ' * function returns CUDA_ERROR_NO_DEVICE (100). Never put it on a GPU machine'"'"'s library path. */'
  echo 'typedef int CUresult;'
  echo 'static const char *stub_text(CUresult e, int name) {'
  echo '  if (e == 100) return name ? "CUDA_ERROR_NO_DEVICE" : "no CUDA-capable device is detected (cafe-lab stub libcuda.so.1: no NVIDIA driver loaded)";'
  echo '  return name ? "CUDA_ERROR_UNKNOWN" : "unknown error (cafe-lab stub libcuda.so.1)";'
  echo '}'
  echo 'CUresult cuGetErrorName(CUresult e, const char **s) { if (s) *s = stub_text(e, 1); return 0; }'
  echo 'CUresult cuGetErrorString(CUresult e, const char **s) { if (s) *s = stub_text(e, 0); return 0; }'
  grep -vxE 'cuGetErrorName|cuGetErrorString' "$LINK/driver-symbols.txt" | sed 's/.*/CUresult &(void) { return 100; }/'
} > "$LINK/libcuda_stub.c"
cc -shared -fPIC -O1 -w -Wl,-soname,libcuda.so.1 -o "$LINK/libcuda.so.1" "$LINK/libcuda_stub.c" \
  || die "compiling the stub libcuda failed"
ln -s libcuda.so.1 "$LINK/libcuda.so"
echo "stub libcuda.so.1: $NSYM functions from $(basename "$CUDARC"), each returns CUDA_ERROR_NO_DEVICE"
step_done

step "4/6 cargo build --release -p cafe-cli --features cuda (CARGO_TARGET_DIR=$TARGET)"
export CARGO_TARGET_DIR="$TARGET" CUDA_COMPUTE_CAP="$CAP"
export RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }-L native=$LINK"
(cd "$ROOT" && cargo build --release -p cafe-cli --features cuda) \
  || die "cargo build failed (see above; nvcc errors mean a toolkit problem, 'undefined reference' a link-folder problem)"
BIN="$TARGET/release/cafe-lab"
[ -x "$BIN" ] || die "no binary at $BIN"
# Every driver symbol the binary needs must be one the stub defines (else the stub list is wrong).
nm -D --undefined-only "$BIN" | awk '{print $NF}' | grep -E '^cu[A-Z]' | sed 's/@.*//' | sort -u > "$LINK/driver-symbols-used.txt" || true
MISSING=$(comm -23 "$LINK/driver-symbols-used.txt" "$LINK/driver-symbols.txt")
[ -z "$MISSING" ] || die "the binary needs driver symbols the stub lacks: $MISSING"
echo "binary $(du -h "$BIN" | cut -f1), needs $(wc -l < "$LINK/driver-symbols-used.txt") driver symbols"
step_done

step "5/6 bundle $BUNDLE"
rm -rf "$BUNDLE"; mkdir -p "$BUNDLE/lib" "$BUNDLE/stub"
cp "$BIN" "$BUNDLE/cafe-lab"
[ "$KEEP_DEBUG" = 1 ] || strip --strip-debug "$BUNDLE/cafe-lab"
# The runtime libraries: whatever ldd resolves inside the venv (libcuda.so.1 must come from the
# GPU machine's driver; the system's libc/libm/libgcc_s/libstdc++ from its OS).
LDD_OUT=$(LD_LIBRARY_PATH="$CU/lib:$LINK" ldd "$BIN") || die "ldd $BIN failed"
if echo "$LDD_OUT" | grep -q 'not found'; then echo "$LDD_OUT" >&2; die "ldd: unresolved libraries"; fi
echo "$LDD_OUT" | awk '$2 == "=>" {print $3}' | while read -r lib; do
  case "$lib" in "$CU"/*) cp -L "$lib" "$BUNDLE/lib/" ;; esac
done
# libnvrtc loads its builtins with dlopen when it compiles; ldd does not see that.
if [ -f "$BUNDLE/lib/libnvrtc.so.13" ]; then cp -L "$CU/lib/libnvrtc-builtins.so.13.0" "$BUNDLE/lib/"; fi
for lib in libcudart.so.13 libcublas.so.13 libcublasLt.so.13 libcurand.so.10; do
  [ -f "$BUNDLE/lib/$lib" ] || die "$lib is not in the bundle (ldd did not list it?)"
done
[ ! -e "$BUNDLE/lib/libcuda.so.1" ] || die "libcuda.so.1 must not be bundled"
cp "$LINK/libcuda.so.1" "$BUNDLE/stub/libcuda.so.1"
cp "$HERE/smoke_test.sh" "$BUNDLE/smoke_test.sh"
cat > "$BUNDLE/run.sh" <<'EOF'
#!/bin/sh
# cafe-lab with the bundled CUDA libraries; the driver (libcuda.so.1) comes from this machine.
here=$(cd "$(dirname "$0")" && pwd)
LD_LIBRARY_PATH="$here/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" exec "$here/cafe-lab" "$@"
EOF
chmod +x "$BUNDLE/run.sh" "$BUNDLE/smoke_test.sh"
GLIBC_MAX=$(objdump -T "$BUNDLE/cafe-lab" | grep -oE 'GLIBC_[0-9.]+' | sort -uV | tail -1)
GLIBCXX_MAX=$(objdump -T "$BUNDLE/cafe-lab" | grep -oE 'GLIBCXX_[0-9.]+' | sort -uV | tail -1 || true)
{
  echo "cafe-lab CUDA bundle, built $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(. /etc/os-release && echo "$PRETTY_NAME")"
  echo "commit: $(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)$( [ -z "$(git -C "$ROOT" status --porcelain 2>/dev/null)" ] || echo ' (with uncommitted changes)')"
  if [ "${CAP%%[a-z]*}" -ge 90 ]; then
    echo "CUDA_COMPUTE_CAP=$CAP (arch-specific PTX: loads only on GPUs of exactly this architecture)"
  else
    echo "CUDA_COMPUTE_CAP=$CAP (PTX: loads on GPUs of this compute capability or newer)"
  fi
  echo "needs: NVIDIA driver supporting CUDA 13.0 (580 series or newer), glibc >= ${GLIBC_MAX#GLIBC_}${GLIBCXX_MAX:+, libstdc++ with $GLIBCXX_MAX}"
  echo "run:   ./run.sh --device cuda --dataset fashion-mnist --data-dir DIR ...   check: ./smoke_test.sh"
  echo; echo "toolkit pieces (PyPI):"; "$VENV/bin/pip" freeze 2>/dev/null | grep -i '^nvidia' | sed 's/^/  /'
  echo; echo "ldd at build time (libcuda.so.1 = build stub):"; echo "$LDD_OUT"
} > "$BUNDLE/BUILD-INFO.txt"
echo "$LDD_OUT"
step_done

if [ "$MAKE_TAR" = 1 ]; then
  step "6/6 tar.gz"
  rm -f "$BUNDLE_PARENT/$NAME.tar.gz"
  tar -C "$BUNDLE_PARENT" -czf "$BUNDLE_PARENT/$NAME.tar.gz" "$NAME"
  step_done
fi

echo
echo "binary:  $BIN ($(du -h "$BIN" | cut -f1); bundled copy $(du -h "$BUNDLE/cafe-lab" | cut -f1))"
echo "bundle:  $BUNDLE ($(du -sh "$BUNDLE" | cut -f1))"
[ "$MAKE_TAR" = 0 ] || echo "tarball: $BUNDLE_PARENT/$NAME.tar.gz ($(du -h "$BUNDLE_PARENT/$NAME.tar.gz" | cut -f1))"
echo "total:   $(( $(date +%s) - T0 )) s"
