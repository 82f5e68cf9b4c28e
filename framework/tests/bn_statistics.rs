//! SRe2L's BatchNorm-statistics loss and the recording of what each BatchNorm layer sees: the
//! value against a computation by hand, the gradient w.r.t. the input pixels against central
//! finite differences in f64 (through two BatchNorm layers in evaluation mode and a conv
//! between them, as a teacher runs in recovery), what a training-mode pass records, and a
//! property over random batches: the loss is never negative, does not depend on the order of
//! the batch, vanishes exactly where the running statistics are the batch's own, and scales
//! with `first_multiplier` on the first layer's term only.

use cafe_framework::nn::{record_batch_norms, relu, BatchNorm2d, Conv2d, Conv2dConfig, RunningStats};
use cafe_framework::rng::rng_from_seed;
use cafe_framework::train::bn_statistics_loss;
use cafe_framework::{Mode, Result};
use candle_core::{DType, Device, Tensor, Var};
use proptest::prelude::*;

mod support;
use support::{finite_differences, randn, values};

/// A BatchNorm layer of `c` channels, f64, with the running statistics `mean` and `var`.
fn batch_norm(c: usize, mean: &[f64], var: &[f64]) -> Result<BatchNorm2d> {
    let bn = BatchNorm2d::new(c, DType::F64, &Device::Cpu)?;
    bn.set_running_stats(RunningStats {
        mean: Tensor::new(mean, &Device::Cpu)?,
        var: Tensor::new(var, &Device::Cpu)?,
    })?;
    Ok(bn)
}

/// Per channel, the mean and biased variance of `x` `[n, c, h, w]` over (n, h, w), by hand.
fn moments(x: &[f64], dims: &[usize]) -> Vec<(f64, f64)> {
    let (n, c, hw) = (dims[0], dims[1], dims[2] * dims[3]);
    (0..c)
        .map(|ch| {
            let vals: Vec<f64> = (0..n)
                .flat_map(|k| x[(k * c + ch) * hw..(k * c + ch + 1) * hw].to_vec())
                .collect();
            let m = vals.iter().sum::<f64>() / vals.len() as f64;
            let v = vals.iter().map(|a| (a - m).powi(2)).sum::<f64>() / vals.len() as f64;
            (m, v)
        })
        .collect()
}

#[test]
fn the_loss_is_the_references_sum_of_l2_norms_with_the_first_layer_weighted() -> Result<()> {
    let mut rng = rng_from_seed(4);
    let x = randn(&[3, 2, 4, 4], &mut rng)?;
    let (rm, rv) = ([0.3, -0.2], [0.5, 1.4]);
    let bn1 = batch_norm(2, &rm, &rv)?;
    let bn2 = batch_norm(2, &[0.0, 0.1], &[0.9, 0.7])?;
    let (_, records) = record_batch_norms(|| {
        let y = bn1.forward(&x, Mode::Eval)?;
        bn2.forward(&(y * 2.0)?, Mode::Eval)
    })?;
    assert_eq!(records.len(), 2, "one record per BatchNorm forward, in order");
    let loss = bn_statistics_loss(&records, 10.0)?.to_scalar::<f64>()?;
    // By hand (utils.py:40-45): ||rv - var||_2 + ||rm - mean||_2 per layer, the first x 10.
    let l2 = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(p, q)| (p - q).powi(2)).sum::<f64>().sqrt();
    let term = |xv: &[f64], dims: &[usize], rm: &[f64], rv: &[f64]| {
        let mo = moments(xv, dims);
        let means: Vec<f64> = mo.iter().map(|m| m.0).collect();
        let vars: Vec<f64> = mo.iter().map(|m| m.1).collect();
        l2(rv, &vars) + l2(rm, &means)
    };
    let xv = values(&x)?;
    let y = values(&(bn1.forward(&x, Mode::Eval)? * 2.0)?)?;
    let want = 10.0 * term(&xv, x.dims(), &rm, &rv) + term(&y, x.dims(), &[0.0, 0.1], &[0.9, 0.7]);
    assert!((loss - want).abs() < 1e-12 * want.max(1.0), "{loss} vs {want}");
    // A network without BatchNorm has nothing to match.
    let err = bn_statistics_loss(&[], 10.0).unwrap_err().to_string();
    assert!(err.contains("BatchNorm"), "{err}");
    Ok(())
}

#[test]
fn the_gradient_on_the_pixels_matches_finite_differences_through_two_layers() -> Result<()> {
    let mut rng = rng_from_seed(7);
    let shape = [2, 2, 5, 5];
    let x0 = randn(&shape, &mut rng)?;
    let conv = Conv2d::new(
        2,
        3,
        3,
        Conv2dConfig {
            stride: 1,
            padding: 1,
            bias: true,
        },
        DType::F64,
        &Device::Cpu,
        &mut rng,
    )?;
    let bn1 = batch_norm(2, &[0.1, -0.3], &[0.6, 1.2])?;
    let bn2 = batch_norm(3, &[0.05, 0.0, -0.1], &[0.4, 0.8, 1.1])?;
    let loss_of = |x: &Tensor| -> Result<Tensor> {
        let (_, records) = record_batch_norms(|| {
            let y = bn1.forward(x, Mode::Eval)?;
            bn2.forward(&conv.forward(&relu(&y)?)?, Mode::Eval)
        })?;
        bn_statistics_loss(&records, 10.0)
    };
    let var = Var::from_tensor(&x0)?;
    let grads = loss_of(var.as_tensor())?.backward()?;
    let autograd = values(grads.get(var.as_tensor()).expect("a gradient on the pixels"))?;
    let numeric = finite_differences(&|x| Ok(loss_of(x)?.to_scalar::<f64>()?), &x0)?;
    let scale = numeric.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    for (i, (a, n)) in autograd.iter().zip(&numeric).enumerate() {
        assert!(
            (a - n).abs() <= 1e-6 * scale,
            "pixel {i}: autograd {a} vs finite differences {n}"
        );
    }
    Ok(())
}

#[test]
fn a_training_pass_records_the_running_statistics_before_it_moves_them() -> Result<()> {
    let mut rng = rng_from_seed(9);
    let x = randn(&[4, 2, 3, 3], &mut rng)?;
    let bn = batch_norm(2, &[0.2, 0.4], &[2.0, 3.0])?;
    let (_, records) = record_batch_norms(|| bn.forward(&x, Mode::Train))?;
    assert_eq!(values(&records[0].running_mean)?, [0.2, 0.4]);
    assert_eq!(values(&records[0].running_var)?, [2.0, 3.0]);
    let moved = bn.running_stats()?;
    assert_ne!(
        values(&moved.mean)?,
        [0.2, 0.4],
        "the pass still updates the running mean"
    );
    // Nothing is recorded outside a recording, and a nested one does not leak into the outer.
    let (_, outer) = record_batch_norms(|| {
        let (_, inner) = record_batch_norms(|| bn.forward(&x, Mode::Eval))?;
        assert_eq!(inner.len(), 1);
        Ok(())
    })?;
    assert!(outer.is_empty());
    Ok(())
}

/// The loss of one Eval pass through `bn1` then `bn2` (times 2 between them) on `x`.
fn two_layer_loss(x: &Tensor, bn1: &BatchNorm2d, bn2: &BatchNorm2d, first: f64) -> Result<f64> {
    let (_, records) = record_batch_norms(|| {
        let y = bn1.forward(x, Mode::Eval)?;
        bn2.forward(&(y * 2.0)?, Mode::Eval)
    })?;
    Ok(bn_statistics_loss(&records, first)?.to_scalar::<f64>()?)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn the_loss_is_nonnegative_order_free_zero_at_the_batch_moments_and_weights_the_first_layer(
        seed in 0u64..1_000_000, n in 1usize..5, c in 1usize..4, hw in 1usize..4,
        running in proptest::collection::vec((-1.0f64..1.0, 0.1f64..2.0), 3),
        first in 0.0f64..20.0,
    ) {
        let mut rng = rng_from_seed(seed);
        let dims = [n, c, hw, hw];
        let x = randn(&dims, &mut rng)?;
        let (rm, rv): (Vec<f64>, Vec<f64>) = running[..c].iter().copied().unzip();
        let bn1 = batch_norm(c, &rm, &rv)?;
        let bn2 = batch_norm(c, &rv, &rm.iter().map(|m| m.abs() + 0.5).collect::<Vec<_>>())?;
        let loss = two_layer_loss(&x, &bn1, &bn2, first)?;
        prop_assert!(loss >= 0.0 && loss.is_finite(), "loss {loss}");
        // The batch in reverse order: the same moments, the same loss up to rounding.
        let rows: Vec<u32> = (0..n as u32).rev().collect();
        let reversed = x.index_select(&Tensor::new(rows.as_slice(), &Device::Cpu)?, 0)?;
        let again = two_layer_loss(&reversed, &bn1, &bn2, first)?;
        prop_assert!((loss - again).abs() <= 1e-12 * loss.max(1.0), "{loss} vs {again}");
        // Running statistics set to the batch's own moments: that layer's term is 0.
        let mo = moments(&values(&x)?, &dims);
        let own = batch_norm(
            c,
            &mo.iter().map(|m| m.0).collect::<Vec<_>>(),
            &mo.iter().map(|m| m.1).collect::<Vec<_>>(),
        )?;
        let (_, records) = record_batch_norms(|| own.forward(&x, Mode::Eval))?;
        let zero = bn_statistics_loss(&records, first)?.to_scalar::<f64>()?;
        prop_assert!(zero.abs() < 1e-7, "own moments give {zero}");
        // The multiplier acts on the first layer's term only: loss(m) = m a + b.
        let (l0, l1) = (two_layer_loss(&x, &bn1, &bn2, 0.0)?, two_layer_loss(&x, &bn1, &bn2, 1.0)?);
        let want = first * (l1 - l0) + l0;
        prop_assert!((loss - want).abs() <= 1e-10 * loss.max(1.0), "{loss} vs {want}");
    }
}
