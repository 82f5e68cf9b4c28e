#!/usr/bin/env bash
# Every cell of the published table (../shared/DESIGN.md, the papers' ConvNet results) as one
# exact cafe-lab command under that paper's protocol (plugins/protocols/*.toml).
#
#   scripts/reproduce/published.sh --list            # every cell: name, published %, where it runs
#   scripts/reproduce/published.sh dc-fashion-mnist-1 [--data-dir DIR] [--bin PATH]
#
# A cell condenses once (seed 0; the papers report 5 condensations x 20 networks, cafe-lab one
# condensation x 20 networks per seed: add --seed N for more), writes a checkpoint every 10
# iterations (continue with `cafe-lab --resume runs/reproduce/CELL`), evaluates 20 networks with
# the protocol's recipe, and then the random baseline under the same recipe.
# "CPU" cells take hours on 2 cores (DC/DSA at ipc 1: ~10 s per iteration, 1000 iterations);
# "GPU" cells take days on a CPU: run them with a CUDA build (README "CUDA").
set -euo pipefail

# cell protocol dataset ipc published(%) where
CELLS="
dc-mnist-1          dc   mnist         1  91.7 CPU
dc-mnist-10         dc   mnist        10  97.4 GPU
dc-mnist-50         dc   mnist        50  98.8 GPU
dc-fashion-mnist-1  dc   fashion-mnist 1  70.5 CPU
dc-fashion-mnist-10 dc   fashion-mnist 10 82.3 GPU
dc-fashion-mnist-50 dc   fashion-mnist 50 83.6 GPU
dc-svhn-1           dc   svhn          1  31.2 CPU
dc-svhn-10          dc   svhn         10  76.1 GPU
dc-svhn-50          dc   svhn         50  82.3 GPU
dc-cifar10-1        dc   cifar10       1  28.3 CPU
dc-cifar10-10       dc   cifar10      10  44.9 GPU
dc-cifar10-50       dc   cifar10      50  53.9 GPU
dsa-mnist-1         dsa  mnist         1  88.7 CPU
dsa-mnist-10        dsa  mnist        10  97.8 GPU
dsa-mnist-50        dsa  mnist        50  99.2 GPU
dsa-fashion-mnist-1 dsa  fashion-mnist 1  70.6 CPU
dsa-fashion-mnist-10 dsa fashion-mnist 10 84.6 GPU
dsa-fashion-mnist-50 dsa fashion-mnist 50 88.7 GPU
dsa-svhn-1          dsa  svhn          1  27.5 CPU
dsa-svhn-10         dsa  svhn         10  79.2 GPU
dsa-svhn-50         dsa  svhn         50  84.4 GPU
dsa-cifar10-1       dsa  cifar10       1  28.8 CPU
dsa-cifar10-10      dsa  cifar10      10  52.1 GPU
dsa-cifar10-50      dsa  cifar10      50  60.6 GPU
dm-cifar10-1        dm   cifar10       1  26.0 GPU
dm-cifar10-10       dm   cifar10      10  48.9 GPU
dm-cifar10-50       dm   cifar10      50  63.0 GPU
cafe-cifar10-1      cafe cifar10       1  30.3 GPU
cafe-cifar10-10     cafe cifar10      10  46.3 GPU
cafe-cifar10-50     cafe cifar10      50  55.5 GPU
cafe-dsa-cifar10-1  cafe-dsa cifar10   1  31.6 GPU
cafe-dsa-cifar10-10 cafe-dsa cifar10  10  50.9 GPU
cafe-dsa-cifar10-50 cafe-dsa cifar10  50  62.3 GPU
"

die() { echo "published.sh: $*" >&2; exit 2; }

if [ "${1:-}" = "--list" ] || [ $# -eq 0 ]; then
  printf '%-22s %-9s %-14s %4s %9s %s\n' cell protocol dataset ipc published runs-on
  echo "$CELLS" | awk 'NF { printf "%-22s %-9s %-14s %4s %8s%% %s\n", $1, $2, $3, $4, $5, $6 }'
  exit 0
fi

cell=$1; shift
data_dir=""
bin="cargo run --release --"
while [ $# -gt 0 ]; do
  case $1 in
    --data-dir) data_dir=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    *) die "unknown option $1 (use --data-dir DIR, --bin PATH)" ;;
  esac
done
line=$(echo "$CELLS" | awk -v c="$cell" '$1 == c')
[ -n "$line" ] || die "unknown cell '$cell'; --list shows them"
read -r _ protocol dataset ipc published where <<<"$line"
data=()
[ -n "$data_dir" ] && data=(--data-dir "$data_dir")
device=()
[ "$where" = GPU ] && device=(--device cuda)
out="runs/reproduce/$cell"
echo "$cell: protocol $protocol, $dataset, ipc $ipc; published $published %; runs on $where" >&2
$bin --protocol "$protocol" --dataset "$dataset" --ipc "$ipc" "${data[@]}" "${device[@]}" \
  --checkpoint-every 10 --no-baseline --out "$out"
$bin baseline --protocol "$protocol" --dataset "$dataset" --ipc "$ipc" "${data[@]}" "${device[@]}" \
  --out "$out-random"
