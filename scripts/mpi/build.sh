#!/usr/bin/env bash
# Builds cafe-lab with MPI support (the CLI's `mpi` feature, rsmpi over the system's MPI) and
# keeps the binary as target/cafe-lab-mpi, where tests/mpi.rs looks for it (a later
# `cargo build` without the feature replaces target/release/cafe-lab).
# Needs: apt-get install libopenmpi-dev openmpi-bin libclang-dev pkgconf
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -p cafe-cli --features mpi
cp target/release/cafe-lab target/cafe-lab-mpi
echo "target/cafe-lab-mpi: $(target/cafe-lab-mpi --version)"
