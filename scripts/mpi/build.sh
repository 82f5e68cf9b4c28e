#!/usr/bin/env bash
# Builds cafe-lab with MPI support (the CLI's `mpi` feature, rsmpi over the system's MPI) and
# keeps the binary as target/cafe-lab-mpi, where tests/mpi.rs looks for it (a later
# `cargo build` without the feature replaces target/release/cafe-lab).
# Needs: apt-get install libopenmpi-dev openmpi-bin libclang-dev pkgconf
set -euo pipefail
cd "$(dirname "$0")/../.."
# The whole workspace with the feature, not `-p cafe-cli`: cargo unifies dependency features over
# the packages it builds (tests with their dev-dependencies: --all-targets), so `-p cafe-cli`
# alone would compile candle and the framework a second time with other features; this way
# `cargo test --workspace --release` afterwards reuses every dependency and only rebuilds the
# CLI (and what links it) without the feature.
cargo build --release --workspace --all-targets --features cafe-cli/mpi
cp target/release/cafe-lab target/cafe-lab-mpi
echo "target/cafe-lab-mpi: $(target/cafe-lab-mpi --version)"
