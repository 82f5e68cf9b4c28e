//! The layers of `cafe_framework::nn`: the fused CPU ops against the same functions written
//! with candle tensor ops (values, first- and second-order gradients), odd-size pooling
//! against finite differences, and norms and initialisation against numbers computed by hand.

use cafe_framework::nn::{
    avg_pool2x2, avg_pool2x2_with_tensor_ops, conv2d_with_bias, group_normalize, group_normalize_with_tensor_ops,
    leaky_relu, leaky_relu_with_tensor_ops, max_pool2x2, max_pool2x2_with_tensor_ops, relu, BatchNorm2d, Conv2d,
    Conv2dConfig, GroupNorm, LayerNorm, Linear, RunningStats,
};
use cafe_framework::rng::rng_from_seed;
use cafe_framework::{Mode, Result};
use candle_core::{DType, Device, Tensor, Var};

mod support;
use support::{assert_close, finite_differences, randn, values};

type Op = fn(&Tensor) -> Result<Tensor>;

/// Each fused op with its tensor-op twin.
fn pairs() -> Vec<(&'static str, Op, Op)> {
    vec![
        (
            "instance norm",
            |x| group_normalize(x, 4, 1e-5),
            |x| group_normalize_with_tensor_ops(x, 4, 1e-5),
        ),
        (
            "group norm",
            |x| group_normalize(x, 2, 1e-5),
            |x| group_normalize_with_tensor_ops(x, 2, 1e-5),
        ),
        (
            "layer norm",
            |x| group_normalize(x, 1, 1e-5),
            |x| group_normalize_with_tensor_ops(x, 1, 1e-5),
        ),
        ("avg pool", avg_pool2x2, avg_pool2x2_with_tensor_ops),
        ("max pool", max_pool2x2, max_pool2x2_with_tensor_ops),
        ("relu", relu, |x| Ok(x.relu()?)),
        ("leaky relu", leaky_relu, leaky_relu_with_tensor_ops),
    ]
}

/// `L = sum(f(x)^2 * r)`, its gradient, and `S = <dL/dx, q>`: S's gradient w.r.t. x is a
/// second-order quantity, as in DC.
fn first_and_second(f: Op, x: &Tensor, r: &Tensor, q: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
    let xv = Var::from_tensor(x)?;
    let y = f(&xv)?;
    let g = (y.sqr()? * r)?
        .sum_all()?
        .backward()?
        .remove(&xv)
        .expect("first-order gradient");
    let s = (&g * q)?.sum_all()?;
    let h = s.backward()?.remove(&xv).expect("second-order gradient");
    Ok((y, g, h))
}

#[test]
fn fused_ops_match_tensor_ops_to_second_order() -> Result<()> {
    // Read by candle once per thread at its first backward: set before any backward here.
    std::env::set_var("CANDLE_GRAD_DO_NOT_DETACH", "1");
    let mut rng = rng_from_seed(1);
    // Odd sizes, several groups, and a batch of 3: the shapes that break naive kernels.
    for dims in [[3, 4, 7, 5], [2, 4, 6, 6]] {
        for (name, fused, reference) in pairs() {
            let x = randn(&dims, &mut rng)?;
            let r = randn(fused(&x)?.dims(), &mut rng)?;
            let q = randn(&dims, &mut rng)?;
            let (y1, g1, h1) = first_and_second(fused, &x, &r, &q)?;
            let (y2, g2, h2) = first_and_second(reference, &x, &r, &q)?;
            assert_close(&y1, &y2, 1e-12, &format!("{name} {dims:?} value"))?;
            assert_close(&g1, &g2, 1e-11, &format!("{name} {dims:?} gradient"))?;
            assert_close(&h1, &h2, 1e-10, &format!("{name} {dims:?} second order"))?;
            // And in f32, within f32 accuracy.
            let (y32, g32, _) = first_and_second(
                fused,
                &x.to_dtype(DType::F32)?,
                &r.to_dtype(DType::F32)?,
                &q.to_dtype(DType::F32)?,
            )?;
            assert_close(&y32, &y2, 1e-5, &format!("{name} {dims:?} f32 value"))?;
            assert_close(&g32, &g2, 1e-4, &format!("{name} {dims:?} f32 gradient"))?;
        }
    }
    Ok(())
}

/// candle's own pooling backward spreads gradient into row and column 6 of a 7x7 map, which no
/// 2x2 window covers (CANDLE_NOTES 2); ours gives them exactly 0 and matches finite differences.
#[test]
fn pooling_odd_maps_crops_like_pytorch() -> Result<()> {
    let mut rng = rng_from_seed(2);
    let x = randn(&[2, 3, 7, 7], &mut rng)?;
    let r = randn(&[2, 3, 3, 3], &mut rng)?;
    for (name, pool) in [("avg", avg_pool2x2 as Op), ("max", max_pool2x2 as Op)] {
        let xv = Var::from_tensor(&x)?;
        let y = pool(&xv)?;
        assert_eq!(y.dims(), [2, 3, 3, 3], "{name}: floor of 7 / 2");
        let g = (y * &r)?.sum_all()?.backward()?.remove(&xv).expect("gradient");
        let gv = values(&g)?;
        for plane in gv.chunks(49) {
            for k in 0..7 {
                assert_eq!(plane[6 * 7 + k], 0.0, "{name}: row 6 must get no gradient");
                assert_eq!(plane[k * 7 + 6], 0.0, "{name}: column 6 must get no gradient");
            }
        }
        let fd = finite_differences(&|x| Ok((pool(x)? * &r)?.sum_all()?.to_scalar::<f64>()?), &x)?;
        for (i, (a, f)) in values(&g)?.iter().zip(&fd).enumerate() {
            assert!((a - f).abs() < 1e-8, "{name} pool d/dx[{i}]: {a} vs {f}");
        }
    }
    // Values by hand: the window of output (0, 0) is x[0..2, 0..2].
    let plane = Tensor::arange(0.0, 49.0, &Device::Cpu)?.reshape((1, 1, 7, 7))?;
    assert_eq!(values(&avg_pool2x2(&plane)?)?[..3], [4.0, 6.0, 8.0]);
    assert_eq!(values(&max_pool2x2(&plane)?)?[..3], [8.0, 10.0, 12.0]);
    Ok(())
}

#[test]
fn norms_match_hand_computed() -> Result<()> {
    let dev = Device::Cpu;
    // One image, 2 channels of 2 pixels: [1, 3] and [2, 6].
    let x = Tensor::from_vec(vec![1.0, 3.0, 2.0, 6.0], (1, 2, 1, 2), &dev)?;
    let eps = 1e-5_f64;
    // Instance norm: each channel to (-1, 1) scaled by sqrt(var / (var + eps)).
    let inst = GroupNorm::instance(2, DType::F64, &dev)?.forward(&x)?;
    let (a, b) = ((1.0 / (1.0 + eps)).sqrt(), (4.0 / (4.0 + eps)).sqrt());
    assert_close(
        &inst,
        &Tensor::from_vec(vec![-a, a, -b, b], (1, 2, 1, 2), &dev)?,
        1e-12,
        "instance norm",
    )?;
    // One group (= layer norm over C, H, W): mean 3, var (4 + 0 + 1 + 9) / 4 = 3.5.
    let s = (3.5 + eps).sqrt();
    let want = Tensor::from_vec(vec![-2.0 / s, 0.0, -1.0 / s, 3.0 / s], (1, 2, 1, 2), &dev)?;
    assert_close(
        &GroupNorm::new(1, 2, DType::F64, &dev)?.forward(&x)?,
        &want,
        1e-12,
        "group norm, 1 group",
    )?;
    assert_close(
        &LayerNorm::new(2, 1, 2, DType::F64, &dev)?.forward(&x)?,
        &want,
        1e-12,
        "layer norm",
    )?;
    assert!(
        GroupNorm::new(3, 2, DType::F64, &dev).is_err(),
        "groups must divide channels"
    );
    assert!(
        LayerNorm::new(2, 2, 2, DType::F64, &dev)?.forward(&x).is_err(),
        "layer norm of another shape"
    );
    Ok(())
}

/// PyTorch semantics: training normalises with the biased batch variance and moves the running
/// statistics toward the unbiased one by momentum 0.1; evaluation uses them.
#[test]
fn batch_norm_matches_hand_computed() -> Result<()> {
    let dev = Device::Cpu;
    // Channel 0 holds 1, 2, 3, 6 over (n, h, w); channel 1 holds 0, 0, 4, 4.
    let x = Tensor::from_vec(vec![1.0, 2.0, 0.0, 0.0, 3.0, 6.0, 4.0, 4.0], (2, 2, 1, 2), &dev)?;
    let bn = BatchNorm2d::new(2, DType::F64, &dev)?;
    let y = bn.forward(&x, Mode::Train)?;
    // Channel 0: mean 3, biased var 3.5, unbiased 14/3. Channel 1: mean 2, var 4, unbiased 16/3.
    let (s0, s1) = ((3.5_f64 + 1e-5).sqrt(), (4.0_f64 + 1e-5).sqrt());
    let want = vec![
        -2.0 / s0,
        -1.0 / s0,
        -2.0 / s1,
        -2.0 / s1,
        0.0,
        3.0 / s0,
        2.0 / s1,
        2.0 / s1,
    ];
    assert_close(&y, &Tensor::from_vec(want, (2, 2, 1, 2), &dev)?, 1e-12, "train")?;
    let RunningStats { mean, var } = bn.running_stats()?;
    assert_close(&mean, &Tensor::new(&[0.3, 0.2], &dev)?, 1e-12, "running mean")?;
    assert_close(
        &var,
        &Tensor::new(&[0.9 + 0.1 * 14.0 / 3.0, 0.9 + 0.1 * 16.0 / 3.0], &dev)?,
        1e-12,
        "running var",
    )?;
    let e = bn.forward(&x, Mode::Eval)?;
    let (m, v) = (values(&mean)?, values(&var)?);
    let want: Vec<f64> = values(&x)?
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            let c = (i / 2) % 2;
            (x - m[c]) / (v[c] + 1e-5).sqrt()
        })
        .collect();
    assert_close(&e, &Tensor::from_vec(want, (2, 2, 1, 2), &dev)?, 1e-12, "eval")?;
    // Evaluation leaves the running statistics alone; a single value per channel cannot train.
    assert_close(&bn.running_stats()?.mean, &mean, 0.0, "eval does not update")?;
    assert!(bn.forward(&x.narrow(0, 0, 1)?.narrow(3, 0, 1)?, Mode::Train).is_err());
    Ok(())
}

#[test]
fn layers_initialise_like_pytorch_from_the_seed() -> Result<()> {
    let dev = Device::Cpu;
    let conv = |seed| {
        Conv2d::new(
            3,
            8,
            3,
            Conv2dConfig {
                stride: 1,
                padding: 1,
                bias: true,
            },
            DType::F32,
            &dev,
            &mut rng_from_seed(seed),
        )
    };
    let (a, b, c) = (conv(1)?, conv(1)?, conv(2)?);
    assert_eq!(values(a.weight())?, values(b.weight())?, "same seed, same weights");
    assert_ne!(values(a.weight())?, values(c.weight())?, "another seed, other weights");
    // U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with fan_in = 3 * 3 * 3, for weight and bias.
    let bound = 1.0 / 27.0_f64.sqrt();
    for v in values(a.weight())?.iter().chain(&values(a.bias().expect("bias"))?) {
        assert!(v.abs() <= bound, "{v} outside +-{bound}");
    }
    assert!(
        values(a.weight())?.iter().any(|v| v.abs() > 0.8 * bound),
        "the whole range is used"
    );
    assert_eq!(a.parameters().len(), 2);
    let lin = Linear::new(20, 5, DType::F64, &dev, &mut rng_from_seed(3))?;
    assert!(values(lin.weight())?.iter().all(|v| v.abs() <= 1.0 / 20.0_f64.sqrt()));
    let x = randn(&[4, 20], &mut rng_from_seed(4))?;
    let want = x
        .matmul(&lin.weight().as_tensor().t()?)?
        .broadcast_add(lin.bias().as_tensor())?;
    assert_close(&lin.forward(&x)?, &want, 1e-12, "linear")?;
    assert!(lin.forward(&randn(&[4, 19], &mut rng_from_seed(4))?).is_err());
    Ok(())
}

#[test]
fn conv_bias_matches_candle_with_gradients() -> Result<()> {
    let mut rng = rng_from_seed(5);
    for (stride, padding) in [(1, 1), (2, 0), (1, 3)] {
        let x = Var::from_tensor(&randn(&[3, 2, 7, 7], &mut rng)?)?;
        let w = Var::from_tensor(&randn(&[4, 2, 3, 3], &mut rng)?)?;
        let b = Var::from_tensor(&randn(&[4], &mut rng)?)?;
        let ours = conv2d_with_bias(&x, &w, Some(&b), stride, padding)?;
        let theirs = x
            .conv2d(&w, padding, stride, 1, 1)?
            .broadcast_add(&b.reshape((1, 4, 1, 1))?)?;
        assert_close(&ours, &theirs, 1e-12, "conv + bias")?;
        let r = randn(ours.dims(), &mut rng)?;
        let g1 = (ours * &r)?.sum_all()?.backward()?;
        let g2 = (theirs * &r)?.sum_all()?.backward()?;
        for (name, v) in [("x", &x), ("w", &w), ("b", &b)] {
            assert_close(
                g1.get(v).expect("ours"),
                g2.get(v).expect("candle's"),
                1e-11,
                &format!("d{name} s{stride} p{padding}"),
            )?;
        }
    }
    assert!(conv2d_with_bias(
        &randn(&[1, 2, 5, 5], &mut rng)?,
        &randn(&[4, 2, 3, 3], &mut rng)?,
        Some(&randn(&[3], &mut rng)?),
        1,
        1
    )
    .is_err());
    Ok(())
}

#[test]
fn relu_propagates_nan_and_has_pytorch_gradient_at_zero() -> Result<()> {
    let x = Var::from_tensor(&Tensor::new(&[f64::NAN, -1.0, 0.0, 2.0], &Device::Cpu)?)?;
    let y = values(&relu(&x)?)?;
    assert!(y[0].is_nan(), "NaN must stay visible");
    assert_eq!(y[1..], [0.0, 0.0, 2.0]);
    let g = relu(&x)?.sum_all()?.backward()?.remove(&x).expect("gradient");
    assert_eq!(
        values(&g)?[1..],
        [0.0, 0.0, 1.0],
        "PyTorch: the gradient of relu at 0 is 0"
    );
    let g = leaky_relu(&x)?.sum_all()?.backward()?.remove(&x).expect("gradient");
    assert_eq!(
        values(&g)?[1..],
        [0.01, 0.01, 1.0],
        "PyTorch: the gradient of leaky relu at 0 is the slope"
    );
    Ok(())
}
