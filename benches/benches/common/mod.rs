//! The criterion set-up shared by the workload benches: one benchmark per workload of
//! `cafe_benches::workloads`, prepared outside the timing, 10 samples of one run each.
//!
//! Threads: set `RAYON_NUM_THREADS=T` (candle and rayon both read it), e.g. 2 to compare with
//! `scripts/bench/side_by_side.py`'s default.

use std::time::Duration;

use cafe_benches::workloads::Workload;
use criterion::{Criterion, SamplingMode};

/// Benchmarks `workload` with `sample_size` 10 and flat sampling (each sample a fixed number
/// of whole runs, one for the long workloads); `measurement` is the time criterion aims at.
pub fn bench_workload(c: &mut Criterion, workload: Workload, measurement: Duration) {
    // The same allocator settings as the `cafe-lab` binary.
    cafe_framework::memory::keep_freed_memory_for_reuse();
    let mut prepared = workload.prepare().expect("workload setup");
    let mut group = c.benchmark_group("workload");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(measurement);
    group.bench_function(workload.name(), |b| b.iter(|| prepared.run().expect("workload run")));
    group.finish();
}
