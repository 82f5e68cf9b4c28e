#!/usr/bin/env bash
# Writes the fuzz targets' seed corpus (fuzz/seeds/<target>/) again from the tests' fixture
# writers, golden files, protocol files and the example run (framework/tests/fuzz_seeds.rs,
# which otherwise checks that the committed seeds are what the writers make).
set -euo pipefail
cd "$(dirname "$0")/../.."
CAFE_WRITE_FUZZ_SEEDS=1 nice -n 10 cargo test --release --workspace --test fuzz_seeds
