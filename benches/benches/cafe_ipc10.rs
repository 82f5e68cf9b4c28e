//! One CAFE iteration with the `fixed` scheduler (not CAFE's `dynamic`, whose amount of work
//! depends on the probe accuracies) at ipc 10: 10 matching steps on 10 x 256 random real images
//! and 450 inner epochs (9 x 50) on the 100 synthetic images. Long: 11 runs of minutes each.
//!
//! `cargo bench -p cafe-benches --bench cafe_ipc10` (`RAYON_NUM_THREADS=2` to fix the threads).
//! The workload is built in `cafe_benches::workloads`; `scripts/bench/side_by_side.py` times
//! the same work beside PyTorch.

mod common;

use std::time::Duration;

use cafe_benches::workloads::Workload;
use criterion::{criterion_group, criterion_main, Criterion};

fn bench(c: &mut Criterion) {
    common::bench_workload(c, Workload::CafeIpc10, Duration::from_secs(600));
}

criterion_group!(benches, bench);
criterion_main!(benches);
