//! One evaluation epoch: a fresh ConvNet trained for one epoch (SGD lr 0.01, momentum 0.9, weight
//! decay 5e-4, batch 256) on 500 random images (ipc 50), no augmentation, then tested on 10.
//!
//! `cargo bench -p cafe-benches --bench eval_epoch` (`RAYON_NUM_THREADS=2` to fix the threads).
//! The workload is built in `cafe_benches::workloads`; `scripts/bench/side_by_side.py` times
//! the same work beside PyTorch.

mod common;

use std::time::Duration;

use cafe_benches::workloads::Workload;
use criterion::{criterion_group, criterion_main, Criterion};

fn bench(c: &mut Criterion) {
    common::bench_workload(c, Workload::EvalEpoch, Duration::from_secs(30));
}

criterion_group!(benches, bench);
criterion_main!(benches);
