//! ConvNet (width 128, depth 3, instance norm, ReLU, average pooling) on 256 Fashion-MNIST-sized
//! images in f32: forward + backward and forward alone, with cafe-lab's fast convolution and
//! fused layers against candle's built-in convolution (and against candle's ops throughout).
//!
//! `cargo bench -p cafe-benches --bench convnet -- --sample-size 10`

use std::time::Duration;

use cafe_benches::{max_difference, Path, Setup};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

fn convnet(c: &mut Criterion) {
    // Network and images are built once, outside the timed closures, from fixed seeds.
    let setup = Setup::new().expect("benchmark setup");
    for path in [Path::CandleConv, Path::CandleAll] {
        let d = max_difference(&setup, Path::Fast, path).expect("logits of both paths");
        assert!(
            d < 1e-3,
            "{} computes other logits than the fast path (max difference {d})",
            path.name()
        );
    }

    let mut group = c.benchmark_group("convnet_w128_d3_fmnist_b256_fwd_bwd");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(20));
    for path in Path::ALL {
        group.bench_with_input(BenchmarkId::from_parameter(path.name()), &path, |b, &path| {
            b.iter(|| setup.forward_backward(path).expect("forward + backward"))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("convnet_w128_d3_fmnist_b256_fwd");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10));
    for path in Path::ALL {
        group.bench_with_input(BenchmarkId::from_parameter(path.name()), &path, |b, &path| {
            b.iter(|| setup.forward(path).expect("forward"))
        });
    }
    group.finish();
}

criterion_group!(benches, convnet);
criterion_main!(benches);
