//! One epoch of an expert trajectory, as `cafe-lab experts` trains them (MTT's buffer.py): a
//! fresh default ConvNet, plain SGD (lr 0.01), 60 000 random Fashion-MNIST-shaped images in
//! shuffled batches of 256, no augmentation, then a copy of the parameters. Long: 11 runs of
//! minutes each on 2 cores.
//!
//! `cargo bench -p cafe-benches --bench expert_epoch` (`RAYON_NUM_THREADS=2` to fix the
//! threads). The workload is built in `cafe_benches::workloads`; `scripts/bench/side_by_side.py`
//! times the same work beside PyTorch.

mod common;

use std::time::Duration;

use cafe_benches::workloads::Workload;
use criterion::{criterion_group, criterion_main, Criterion};

fn bench(c: &mut Criterion) {
    common::bench_workload(c, Workload::ExpertEpoch, Duration::from_secs(3000));
}

criterion_group!(benches, bench);
criterion_main!(benches);
