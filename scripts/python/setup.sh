#!/usr/bin/env bash
# The Python side of cafe-lab's tests, in one venv (target/python-venv, or $CAFE_LAB_VENV):
# maturin, pytest, numpy, tqdm, safetensors and PyTorch from PyPI, and the `cafe_lab` wheel built
# from python/ with maturin into the workspace's own target dir (so it reuses what `cargo test
# --workspace --release` compiles). tests/python.rs runs pytest over the installed wheel and
# tests/pt_files.rs writes .pt files with PyTorch from this venv; both skip loudly without it.
# Run it again after changing Rust code: the tests use the wheel installed here.
#
# PyTorch: PyPI's only Linux x86-64 wheel is the CUDA build (torch 2.15.0: a 539 MB wheel that
# needs ~3 GB of nvidia-* libraries to import; `--no-deps` fails at `import torch` with
# "libcudart.so.13: cannot open shared object file"). The whole install took 2 min 53 s and 5.4 GB
# here; it is skipped when the venv already imports torch. `CAFE_LAB_REUSE_SITE=DIR` (a
# site-packages folder that has PyTorch, e.g. another venv's) makes the new venv see DIR's
# packages through a .pth file instead of downloading them again; the wheel is still installed
# into this venv only. Without it (CI, a fresh machine) everything comes from PyPI.
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=${CAFE_LAB_VENV:-target/python-venv}
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if [ -n "${CAFE_LAB_REUSE_SITE:-}" ]; then
  [ -d "$CAFE_LAB_REUSE_SITE" ] || { echo "CAFE_LAB_REUSE_SITE=$CAFE_LAB_REUSE_SITE is not a folder" >&2; exit 1; }
  site=$("$venv/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
  # Compiled packages (torch, numpy) only import into the Python version they were built for.
  version=$("$venv/bin/python" -c "import sys; print(f'python{sys.version_info[0]}.{sys.version_info[1]}')")
  case "$(realpath "$CAFE_LAB_REUSE_SITE")" in
    */"$version"/*) ;;
    *) echo "CAFE_LAB_REUSE_SITE=$CAFE_LAB_REUSE_SITE is not a $version site-packages folder" >&2; exit 1 ;;
  esac
  realpath "$CAFE_LAB_REUSE_SITE" >"$site/cafe-lab-reuse.pth"
fi
pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check)
"${pip[@]}" "maturin==1.16.0" pytest numpy tqdm safetensors
# maturin's binary must be in this venv's bin/ (a reused site-packages has only its Python half).
if [ ! -x "$venv/bin/maturin" ]; then
  "${pip[@]}" --ignore-installed --no-deps "maturin==1.16.0"
fi
if ! "$venv/bin/python" -c "import torch" 2>/dev/null; then
  "${pip[@]}" torch
fi
rm -rf target/wheels
"$venv/bin/maturin" build --release --manifest-path python/Cargo.toml --interpreter "$venv/bin/python" \
  --out target/wheels
"${pip[@]}" --force-reinstall --no-deps target/wheels/cafe_lab-*.whl
"$venv/bin/python" -c "import cafe_lab; print('cafe_lab', cafe_lab.__version__, 'installed in $venv')"
