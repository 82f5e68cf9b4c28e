//! One DC iteration: `gradient` (exact second order, `ours` distance) with the `fixed`
//! scheduler at ipc 1, i.e. one matching step on 10 x 256 random real images and no inner
//! epoch (DC skips the inner loop after the last outer step). Runs in its own process because
//! it switches candle's second-order gradients on.
//!
//! `cargo bench -p cafe-benches --bench gradient_ipc1` (`RAYON_NUM_THREADS=2` to fix the threads).
//! The workload is built in `cafe_benches::workloads`; `scripts/bench/side_by_side.py` times
//! the same work beside PyTorch.

mod common;

use std::time::Duration;

use cafe_benches::workloads::Workload;
use criterion::{criterion_group, criterion_main, Criterion};

fn bench(c: &mut Criterion) {
    common::bench_workload(c, Workload::GradientIpc1, Duration::from_secs(120));
}

criterion_group!(benches, bench);
criterion_main!(benches);
