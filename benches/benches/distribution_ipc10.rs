//! One DM iteration: `distribution` with the `none` scheduler at ipc 10, i.e. one matching step
//! of a fresh ConvNet on 10 x 256 random real images and 100 synthetic ones.
//!
//! `cargo bench -p cafe-benches --bench distribution_ipc10` (`RAYON_NUM_THREADS=2` to fix the threads).
//! The workload is built in `cafe_benches::workloads`; `scripts/bench/side_by_side.py` times
//! the same work beside PyTorch.

mod common;

use std::time::Duration;

use cafe_benches::workloads::Workload;
use criterion::{criterion_group, criterion_main, Criterion};

fn bench(c: &mut Criterion) {
    common::bench_workload(c, Workload::DistributionIpc10, Duration::from_secs(40));
}

criterion_group!(benches, bench);
criterion_main!(benches);
