//! The two algorithms of the CPU convolution on the 3x3 stride-1 layers of a ConvNet: Winograd
//! F(2x2, 3x3) against im2col, forward + backward (input and weight gradients) of one layer,
//! for input channels from 1 to 128. Where Winograd wins decides `WINOGRAD_MIN_CHANNELS`
//! (framework/src/nn/conv_algorithm.rs): its 16 matrix products have the input channels as
//! their inner dimension, 9x shorter than im2col's.
//!
//! `cargo bench -p cafe-benches --bench conv_algorithms -- --sample-size 10`

use std::time::Duration;

use cafe_framework::nn::{conv2d, with_conv_algorithm, ConvAlgorithm};
use candle_core::{Device, Tensor, Var};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

/// Images per batch, output channels and image side: a ConvNet's first layer on Fashion-MNIST
/// (1 channel, 28x28) up to its second (128 channels, 14x14).
const BATCH: usize = 64;
const OUT: usize = 128;

fn layer(in_c: usize) -> (Var, Var, Tensor) {
    let side = if in_c >= 128 { 14 } else { 28 };
    let dev = Device::Cpu;
    let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (BATCH, in_c, side, side), &dev).expect("x")).expect("var");
    let w = Var::from_tensor(&Tensor::randn(0f32, 0.1, (OUT, in_c, 3, 3), &dev).expect("w")).expect("var");
    let r = Tensor::randn(0f32, 1.0, (BATCH, OUT, side, side), &dev).expect("r");
    (x, w, r)
}

fn conv_algorithms(c: &mut Criterion) {
    let mut group = c.benchmark_group("conv3x3_b64_o128_fwd_bwd");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    for in_c in [1, 3, 8, 16, 32, 64, 128] {
        let (x, w, r) = layer(in_c);
        for algorithm in [ConvAlgorithm::Winograd, ConvAlgorithm::Im2col] {
            let id = BenchmarkId::new(format!("{algorithm:?}").to_lowercase(), in_c);
            group.bench_with_input(id, &algorithm, |b, &algorithm| {
                b.iter(|| {
                    with_conv_algorithm(algorithm, || {
                        let y = conv2d(&x, &w, 1, 1).expect("conv");
                        (y * &r)
                            .expect("mul")
                            .sum_all()
                            .expect("sum")
                            .backward()
                            .expect("backward")
                    })
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, conv_algorithms);
criterion_main!(benches);
