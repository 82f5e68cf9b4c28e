//! The class-synchronised BatchNorm (`nn::with_class_synced_batch_norm`): its values and
//! gradients are those of an ordinary BatchNorm over the whole batch (checked against the
//! unsynchronised layer and against central finite differences in f64), and a batch split by
//! class over 2 or 3 in-process ranks gives every rank's rows the bytes of one process.

use cafe_framework::dist::{f64_bytes, f64s, share, Comm, LocalWorld};
use cafe_framework::nn::{with_class_synced_batch_norm, BatchNorm2d};
use cafe_framework::Mode;
use candle_core::{DType, Device, Tensor, Var};

const CPU: Device = Device::Cpu;
/// Images per class of the whole batch: unequal, as real batches of small classes are.
const ROWS: [usize; 4] = [2, 3, 1, 2];
const CHANNELS: usize = 3;
const SIDE: usize = 3;

fn values(n: usize, seed: u64) -> Vec<f64> {
    (0..n as u64)
        .map(|i| {
            let z = (i + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ seed.wrapping_mul(0xBF58_476D_1CE4_E5B9);
            let z = (z ^ (z >> 29)).wrapping_mul(0x94D0_49BB_1331_11EB);
            ((z >> 11) as f64 / (1u64 << 53) as f64) * 4.0 - 1.5
        })
        .collect()
}

/// The whole batch `[8, 3, 3, 3]`, and a fixed weight on the layer's output, in `dtype`.
fn batch(dtype: DType) -> (Tensor, Tensor) {
    let n: usize = ROWS.iter().sum();
    let shape = (n, CHANNELS, SIDE, SIDE);
    let len = n * CHANNELS * SIDE * SIDE;
    let x = Tensor::from_vec(values(len, 1), shape, &CPU)
        .unwrap()
        .to_dtype(dtype)
        .unwrap();
    let w = Tensor::from_vec(values(len, 2), shape, &CPU)
        .unwrap()
        .to_dtype(dtype)
        .unwrap();
    (x, w)
}

/// A layer whose affine weight and bias are not 1 and 0, so that they take part.
fn layer(dtype: DType) -> BatchNorm2d {
    let bn = BatchNorm2d::new(CHANNELS, dtype, &CPU).unwrap();
    let p = bn.parameters();
    p[0].set(
        &Tensor::new(&[1.5f64, 0.5, -2.0], &CPU)
            .unwrap()
            .to_dtype(dtype)
            .unwrap(),
    )
    .unwrap();
    p[1].set(
        &Tensor::new(&[0.1f64, -0.3, 0.7], &CPU)
            .unwrap()
            .to_dtype(dtype)
            .unwrap(),
    )
    .unwrap();
    bn
}

/// `sum(w * y^2 + 0.3 y^3)`, `y = bn(x)`, for the rows of `classes` (a per-class loss, as DM's and CAFE's):
/// the loss, and its gradient to those rows of `x`.
fn loss_and_grad(
    x_all: &Tensor,
    w_all: &Tensor,
    classes: std::ops::Range<usize>,
    gather: &dyn Fn(&[f64]) -> cafe_framework::Result<Vec<f64>>,
    synced: bool,
) -> (f64, Tensor) {
    let start: usize = ROWS[..classes.start].iter().sum();
    let n: usize = ROWS[classes.clone()].iter().sum();
    let x = Var::from_tensor(&x_all.narrow(0, start, n).unwrap()).unwrap();
    let w = w_all.narrow(0, start, n).unwrap();
    let bn = layer(x_all.dtype());
    let run = || {
        let y = bn.forward(x.as_tensor(), Mode::Train).unwrap();
        let cube = (y.sqr().unwrap() * &y).unwrap();
        let loss = ((y.sqr().unwrap() * &w).unwrap() + (cube * 0.3).unwrap())
            .unwrap()
            .sum_all()
            .unwrap();
        let grads = loss.backward().unwrap();
        let value = loss.to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap();
        (value, grads.get(x.as_tensor()).unwrap().clone())
    };
    if synced {
        with_class_synced_batch_norm(gather, &ROWS[classes], run)
    } else {
        run()
    }
}

fn solo_gather(v: &[f64]) -> cafe_framework::Result<Vec<f64>> {
    Ok(v.to_vec())
}

fn flat(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap()
}

fn max_rel(a: &[f64], b: &[f64]) -> f64 {
    let scale = b.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-30);
    a.iter().zip(b).fold(0.0f64, |m, (x, y)| m.max((x - y).abs())) / scale
}

#[test]
fn one_process_matches_the_plain_layer_in_value_and_gradient() {
    let (x, w) = batch(DType::F64);
    let (plain_loss, plain_grad) = loss_and_grad(&x, &w, 0..ROWS.len(), &solo_gather, false);
    let (loss, grad) = loss_and_grad(&x, &w, 0..ROWS.len(), &solo_gather, true);
    assert!(
        (loss - plain_loss).abs() <= 1e-12 * plain_loss.abs(),
        "{loss} vs {plain_loss}"
    );
    let e = max_rel(&flat(&grad), &flat(&plain_grad));
    assert!(e < 1e-12, "gradient differs from the plain layer's by {e:e}");
}

#[test]
fn gradient_matches_central_finite_differences_in_f64() {
    let (x, w) = batch(DType::F64);
    let (_, grad) = loss_and_grad(&x, &w, 0..ROWS.len(), &solo_gather, true);
    let grad = flat(&grad);
    let x0 = flat(&x);
    let h = 1e-6;
    let at = |v: Vec<f64>| {
        let t = Tensor::from_vec(v, x.dims(), &CPU).unwrap();
        loss_and_grad(&t, &w, 0..ROWS.len(), &solo_gather, true).0
    };
    // Measured against the largest coordinate: near-zero ones carry the differences' round-off.
    let scale = grad.iter().fold(0.0f64, |m, g| m.max(g.abs()));
    let mut worst = 0.0f64;
    for i in (0..x0.len()).step_by(7) {
        let (mut up, mut down) = (x0.clone(), x0.clone());
        up[i] += h;
        down[i] -= h;
        let fd = (at(up) - at(down)) / (2.0 * h);
        worst = worst.max((fd - grad[i]).abs() / scale);
    }
    assert!(worst < 1e-8, "finite differences differ by {worst:e}");
}

/// Each rank's rows of the gradient, and its loss, on `size` in-process ranks.
fn on_ranks(size: usize, dtype: DType) -> (Vec<f64>, Vec<f64>) {
    let (x, w) = batch(dtype);
    let outcomes = LocalWorld::run(size, |comm: Comm| {
        let classes = share(ROWS.len(), comm.rank(), comm.size());
        let gather = |v: &[f64]| -> cafe_framework::Result<Vec<f64>> {
            let mut all = Vec::new();
            for part in comm.all_gather_bytes(&f64_bytes(v))? {
                all.extend(f64s(&part)?);
            }
            Ok(all)
        };
        let (loss, grad) = loss_and_grad(&x, &w, classes, &gather, true);
        (loss, flat(&grad))
    });
    let losses = outcomes.iter().map(|(l, _)| *l).collect();
    let grads = outcomes.into_iter().flat_map(|(_, g)| g).collect();
    (losses, grads)
}

#[test]
fn a_batch_split_by_class_over_ranks_gives_the_bytes_of_one_process() {
    for dtype in [DType::F32, DType::F64] {
        let (_, one) = on_ranks(1, dtype);
        for size in [2, 3] {
            let (losses, grads) = on_ranks(size, dtype);
            assert_eq!(losses.len(), size);
            assert!(
                grads.iter().zip(&one).all(|(a, b)| a.to_bits() == b.to_bits()),
                "{dtype:?}: the gradient on {size} ranks differs from one process's (max rel {:e})",
                max_rel(&grads, &one)
            );
        }
    }
}

#[test]
fn a_backward_outside_the_scope_is_refused_clearly() {
    let (x, _) = batch(DType::F64);
    let v = Var::from_tensor(&x).unwrap();
    let bn = layer(DType::F64);
    let y = with_class_synced_batch_norm(&solo_gather, &ROWS, || bn.forward(v.as_tensor(), Mode::Train)).unwrap();
    let e = y.sum_all().unwrap().backward().unwrap_err().to_string();
    assert!(e.contains("outside with_class_synced_batch_norm"), "{e}");
    let wrong = with_class_synced_batch_norm(&solo_gather, &[1, 1], || bn.forward(v.as_tensor(), Mode::Train));
    let e = wrong.unwrap_err().to_string();
    assert!(e.contains("must hold the 2 images of its classes"), "{e}");
}
