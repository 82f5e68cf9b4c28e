//! Forward + mean cross-entropy + backward (to every weight) of the default ConvNet (width 128,
//! depth 3, instance norm, ReLU, average pooling) on 256 random 1x28x28 images.
//!
//! `cargo bench -p cafe-benches --bench convnet_fwd_bwd` (`RAYON_NUM_THREADS=2` to fix the threads).
//! The workload is built in `cafe_benches::workloads`; `scripts/bench/side_by_side.py` times
//! the same work beside PyTorch.

mod common;

use std::time::Duration;

use cafe_benches::workloads::Workload;
use criterion::{criterion_group, criterion_main, Criterion};

fn bench(c: &mut Criterion) {
    common::bench_workload(c, Workload::ConvnetFwdBwd, Duration::from_secs(15));
}

criterion_group!(benches, bench);
criterion_main!(benches);
