#!/usr/bin/env bash
# Runs cafe-lab on N MPI ranks of this machine: scripts/mpi/run.sh N [cafe-lab arguments]
# The environment is what Open MPI needs on small machines and in containers: ranks may
# outnumber cores (oversubscribe), no binding, shared memory without CMA (open-mpi/ompi#4948),
# and one compute thread per rank (RAYON_NUM_THREADS; set it yourself to give ranks more).
# CAFE_LAB_MPI_PREFIX (e.g. "/usr/bin/time -f %M") runs before the binary in every rank.
set -euo pipefail
N=${1:?number of ranks}; shift
BIN=${CAFE_LAB_MPI:-$(dirname "$0")/../../target/cafe-lab-mpi}
ROOT=()
[ "$(id -u)" = 0 ] && ROOT=(--allow-run-as-root)
export OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
export PRTE_MCA_rmaps_default_mapping_policy=:oversubscribe
# shellcheck disable=SC2206
PREFIX=(${CAFE_LAB_MPI_PREFIX:-})
exec mpirun "${ROOT[@]}" --bind-to none -x RAYON_NUM_THREADS="${RAYON_NUM_THREADS:-1}" \
  -x OMPI_MCA_btl_vader_single_copy_mechanism -np "$N" "${PREFIX[@]}" "$BIN" "$@"
