#!/usr/bin/env bash
# Build the CUDA cafe-lab on a Debian machine with no system CUDA toolkit and no GPU, and pack it
# twice: a bundle (folder + tar.gz with the CUDA libraries, runs where only the NVIDIA driver is
# installed) and a travel pack (one stripped, xz-compressed binary and its launcher, small enough
# to carry with Fashion-MNIST inside 64 MiB to a GPU machine whose Python has NVIDIA's pip
# libraries). See README "CUDA" and CANDLE_NOTES 9.
#
#   scripts/cuda/build.sh [--features LIST] [--venv DIR] [--target-dir DIR] [--compute-cap N]
#                         [--data DIR] [--keep-debug] [--no-tar]
#
#   --features LIST    cargo features of cafe-cli (default cuda,cudnn,nccl,workloads: cuDNN
#                      convolutions, NCCL, and the benchmark workloads that device_check.sh runs)
#   --venv DIR         Python venv for the toolkit pieces from PyPI (default TARGET/venv)
#   --target-dir DIR   cargo target dir (default target-cuda/ in the repository; never target/)
#   --compute-cap N    GPU compute capability the kernels are built for (default $CUDA_COMPUTE_CAP,
#                      else 90): 80 A100, 86 A10/RTX 30xx, 89 L4/L40/RTX 4090, 90 H100/H200.
#                      Below 90 the PTX also loads (JIT) on newer GPUs; 90 and up build
#                      arch-specific PTX (sm_90a), which loads on that architecture only.
#   --data DIR         Fashion-MNIST's four .gz files to put in TARGET/travel/fashion-mnist
#                      (default /usr/share/datasets/fashion-mnist when it is there)
#   --keep-debug       keep the debug info in the bundled binary (default: strip it, keep symbols)
#   --no-tar           make the bundle folder only
#
# Needs: python3 with venv (Debian: python3-venv), pip access to PyPI, cargo, gcc/g++ (nvcc's host
# compiler), binutils, tar/gzip, xz. Writes only under the target dir (and the venv).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE="$ROOT/scripts/cuda"
TARGET="$ROOT/target-cuda"
VENV=""
CAP="${CUDA_COMPUTE_CAP:-90}"
KEEP_DEBUG=0
MAKE_TAR=1
FEATURES=cuda,cudnn,nccl,workloads
DATA=""
[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] && DATA=/usr/share/datasets/fashion-mnist
while [ $# -gt 0 ]; do
  case "$1" in
    --features) FEATURES=$2; shift 2 ;;
    --data) DATA=$2; shift 2 ;;
    --venv) VENV=$2; shift 2 ;;
    --target-dir) TARGET=$2; shift 2 ;;
    --compute-cap) CAP=$2; shift 2 ;;
    --keep-debug) KEEP_DEBUG=1; shift ;;
    --no-tar) MAKE_TAR=0; shift ;;
    -h|--help) sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
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
TRAVEL_PARENT="$TARGET/travel"
TRAVEL="$TRAVEL_PARENT/cafe-lab-gpu"
# What travels with one command to a GPU machine (the device tool's limit), working tree included.
TRAVEL_LIMIT=$((64 * 1024 * 1024))
has_feature() { case ",$FEATURES," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }

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

step "1/7 prerequisites"
for tool in python3 cargo cc g++ nm strip ldd tar gzip xz sha256sum; do
  command -v "$tool" >/dev/null || die "'$tool' not found (Debian: apt-get install python3-venv build-essential binutils; Rust from rustup)"
done
case "$CAP" in ''|*[!0-9a-z]*) die "--compute-cap '$CAP' is not like 80, 89, 90" ;; esac
has_feature cuda || die "--features '$FEATURES' lacks cuda"
echo "target dir $TARGET, venv $VENV, CUDA_COMPUTE_CAP=$CAP, features $FEATURES"
step_done

step "2/7 CUDA toolkit pieces from PyPI into $VENV"
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

step "3/7 link folder $LINK (unversioned symlinks + stub libraries)"
rm -rf "$LINK"; mkdir -p "$LINK"
for f in "${LINK_LIBS[@]}"; do ln -s "$CU/lib/${f#*:}" "$LINK/lib${f%%:*}.so"; done
# Stand-ins for the libraries that are not on this machine, generated from the cudarc bindings
# that cargo resolved (every function returns that library's "not here" error): the driver's
# libcuda.so.1 (the CUDA toolkit ships such a stub for the same reason), and cuDNN's and NCCL's,
# which are hundreds of MB on PyPI and never travel (the GPU machine's pip packages provide them).
CUDARC=$(cd "$ROOT" && cargo metadata --format-version 1 --features "cafe-cli/cuda" 2>/dev/null \
  | python3 -c 'import json,sys,os; print(next(os.path.dirname(p["manifest_path"]) for p in json.load(sys.stdin)["packages"] if p["name"]=="cudarc"))') \
  || die "cargo metadata could not find the cudarc crate (is the network/registry reachable?)"
STUBS="driver:libcuda.so.1:cuda"
has_feature cudnn && STUBS="$STUBS cudnn:libcudnn.so.9:cudnn"
has_feature nccl && STUBS="$STUBS nccl:libnccl.so.2:nccl"
for s in $STUBS; do
  IFS=: read -r kind soname lname <<< "$s"
  BINDINGS="$CUDARC/src/$kind/sys/mod.rs"
  [ -f "$BINDINGS" ] || die "cudarc $kind bindings not found at $BINDINGS"
  python3 "$HERE/link_stub.py" "$kind" "$BINDINGS" "$LINK/stub_$kind.c" "$LINK/$kind-symbols.txt" \
    || die "generating the $soname stub failed"
  cc -shared -fPIC -O1 -w -Wl,-soname,"$soname" -o "$LINK/$soname" "$LINK/stub_$kind.c" \
    || die "compiling the $soname stub failed"
  ln -s "$soname" "$LINK/lib$lname.so"
done
step_done

step "4/7 cargo build --release -p cafe-cli --features $FEATURES (CARGO_TARGET_DIR=$TARGET)"
export CARGO_TARGET_DIR="$TARGET" CUDA_COMPUTE_CAP="$CAP"
export RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }-L native=$LINK"
(cd "$ROOT" && cargo build --release -p cafe-cli --features "$FEATURES") \
  || die "cargo build failed (see above; nvcc errors mean a toolkit problem, 'undefined reference' a link-folder problem)"
BIN="$TARGET/release/cafe-lab"
[ -x "$BIN" ] || die "no binary at $BIN"
# Every symbol the binary needs from a stubbed library must be one its stub defines (else the
# stub's list is wrong and the binary would not have linked against the real library either).
nm -D --undefined-only "$BIN" | awk '{print $NF}' | sed 's/@.*//' | sort -u > "$LINK/undefined-symbols.txt"
for s in $STUBS; do
  IFS=: read -r kind soname lname <<< "$s"
  case "$kind" in driver) re='^cu[A-Z]' ;; cudnn) re='^cudnn[A-Z]' ;; nccl) re='^p?nccl[A-Z]' ;; esac
  grep -E "$re" "$LINK/undefined-symbols.txt" > "$LINK/$kind-symbols-used.txt" || true
  MISSING=$(comm -23 "$LINK/$kind-symbols-used.txt" "$LINK/$kind-symbols.txt")
  [ -z "$MISSING" ] || die "the binary needs $soname symbols its stub lacks: $MISSING"
  echo "needs $(wc -l < "$LINK/$kind-symbols-used.txt") $soname symbols"
done
echo "binary $(du -h "$BIN" | cut -f1)"
step_done

step "5/7 bundle $BUNDLE"
rm -rf "$BUNDLE"; mkdir -p "$BUNDLE/lib" "$BUNDLE/stub"
cp "$BIN" "$BUNDLE/cafe-lab"
[ "$KEEP_DEBUG" = 1 ] || strip --strip-debug "$BUNDLE/cafe-lab"
# The runtime libraries: whatever ldd resolves inside the venv. libcuda.so.1 must come from the
# GPU machine's driver, libcudnn.so.9 and libnccl.so.2 from its pip packages (launch.sh finds
# them); the system's libc/libm/libgcc_s/libstdc++ from its OS.
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
for s in $STUBS; do
  IFS=: read -r kind soname lname <<< "$s"
  [ ! -e "$BUNDLE/lib/$soname" ] || die "$soname must not be bundled"
  cp "$LINK/$soname" "$BUNDLE/stub/$soname"
done
cp "$HERE/smoke_test.sh" "$BUNDLE/smoke_test.sh"
# run.sh is the launcher: it finds the driver and the libraries the bundle lacks (cuDNN, NCCL)
# on this machine, and says what is missing.
cp "$HERE/launch.sh" "$BUNDLE/run.sh"
chmod +x "$BUNDLE/run.sh" "$BUNDLE/smoke_test.sh"
GLIBC_MAX=$(objdump -T "$BUNDLE/cafe-lab" | grep -oE 'GLIBC_[0-9.]+' | sort -uV | tail -1)
GLIBCXX_MAX=$(objdump -T "$BUNDLE/cafe-lab" | grep -oE 'GLIBCXX_[0-9.]+' | sort -uV | tail -1 || true)
NEEDED=$(objdump -p "$BIN" | awk '$1 == "NEEDED" {print $2}' | tr '\n' ' ')
# build_info WHAT: the description of the build shared by the bundle and the travel pack.
build_info() {
  echo "cafe-lab CUDA $1, built $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(. /etc/os-release && echo "$PRETTY_NAME")"
  echo "commit: $(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)$( [ -z "$(git -C "$ROOT" status --porcelain 2>/dev/null)" ] || echo ' (with uncommitted changes)')"
  echo "features: $FEATURES"
  if [ "${CAP%%[a-z]*}" -ge 90 ]; then
    echo "CUDA_COMPUTE_CAP=$CAP (arch-specific PTX: loads only on GPUs of exactly this architecture)"
  else
    echo "CUDA_COMPUTE_CAP=$CAP (PTX: loads on GPUs of this compute capability or newer)"
  fi
  echo "needs: NVIDIA driver supporting CUDA 13.0 (580 series or newer), glibc >= ${GLIBC_MAX#GLIBC_}${GLIBCXX_MAX:+, libstdc++ with $GLIBCXX_MAX}"
  echo "needed libraries: $NEEDED"
  echo; echo "toolkit pieces (PyPI):"; "$VENV/bin/pip" freeze 2>/dev/null | grep -i '^nvidia' | sed 's/^/  /'
  echo; echo "ldd at build time (libcuda.so.1, libcudnn.so.9, libnccl.so.2 = build stubs):"; echo "$LDD_OUT"
}
{
  build_info bundle
  echo "run:   ./run.sh --device cuda --dataset fashion-mnist --data-dir DIR ...   check: ./smoke_test.sh"
} > "$BUNDLE/BUILD-INFO.txt"
echo "$LDD_OUT"
step_done

if [ "$MAKE_TAR" = 1 ]; then
  step "6/7 tar.gz"
  rm -f "$BUNDLE_PARENT/$NAME.tar.gz"
  tar -C "$BUNDLE_PARENT" -czf "$BUNDLE_PARENT/$NAME.tar.gz" "$NAME"
  step_done
fi

step "7/7 travel pack $TRAVEL (binary stripped and xz-compressed, launcher; no libraries)"
rm -rf "$TRAVEL"; mkdir -p "$TRAVEL"
# Symbols go too: a panic's message survives, its backtrace has no names.
strip --strip-all -o "$TRAVEL/cafe-lab" "$BIN"
sha256sum "$TRAVEL/cafe-lab" | cut -d' ' -f1 > "$TRAVEL/cafe-lab.sha256"
STRIPPED=$(stat -c %s "$TRAVEL/cafe-lab")
xz -9e -T1 "$TRAVEL/cafe-lab"
cp "$HERE/launch.sh" "$TRAVEL/launch.sh"; chmod +x "$TRAVEL/launch.sh"
{
  build_info "travel pack"
  echo "run:   ./launch.sh --device cuda --dataset fashion-mnist --data-dir DIR ...   libraries: ./launch.sh --check"
} > "$TRAVEL/BUILD-INFO.txt"
if [ -n "$DATA" ]; then
  mkdir -p "$TRAVEL_PARENT/fashion-mnist"
  for f in train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz; do
    [ -f "$DATA/$f" ] || die "--data $DATA lacks $f"
    cp "$DATA/$f" "$TRAVEL_PARENT/fashion-mnist/$f"
  done
fi
PACK=$(du -sb "$TRAVEL_PARENT" | cut -f1)
TREE=$(cd "$ROOT" && git ls-files -z | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
echo "binary $STRIPPED bytes stripped, $(stat -c %s "$TRAVEL/cafe-lab.xz") compressed;" \
  "$TRAVEL_PARENT holds $PACK bytes$( [ -n "$DATA" ] && echo ' with Fashion-MNIST'), the working tree $TREE"
[ $((PACK + TREE)) -le $TRAVEL_LIMIT ] \
  || die "$TRAVEL_PARENT ($PACK bytes) and the working tree ($TREE) exceed the $TRAVEL_LIMIT bytes that travel with one command"
step_done

echo
echo "binary:  $BIN ($(du -h "$BIN" | cut -f1); bundled copy $(du -h "$BUNDLE/cafe-lab" | cut -f1))"
echo "bundle:  $BUNDLE ($(du -sh "$BUNDLE" | cut -f1))"
[ "$MAKE_TAR" = 0 ] || echo "tarball: $BUNDLE_PARENT/$NAME.tar.gz ($(du -h "$BUNDLE_PARENT/$NAME.tar.gz" | cut -f1))"
echo "travel:  $TRAVEL_PARENT ($PACK bytes: launch.sh, cafe-lab.xz$( [ -n "$DATA" ] && echo ', fashion-mnist/'))"
echo "total:   $(( $(date +%s) - T0 )) s"
