//! Trajectory matching's gradient (MTT), checked before any matcher exists: two SGD steps
//! unrolled through `Network::logits_with` on parameters given as tensors,
//! `theta_{k+1} = theta_k - lr * dCE(logits(x; theta_k), y)/dtheta_k`, and the loss
//! `||theta_2 - target||^2 / ||theta_0 - target||^2` differentiated w.r.t. synthetic pixels `x`
//! and the step size `lr` (second order through both steps), against central finite
//! differences in f64, for several architecture families.
//!
//! Every test here runs its backward passes with `CANDLE_GRAD_DO_NOT_DETACH=1`, which candle
//! reads once per thread at its first backward: each test sets it before any backward.

use cafe_framework::registry::find;
use cafe_framework::rng::rng_from_seed;
use cafe_framework::train::cross_entropy;
use cafe_framework::{Architecture, ImageShape, Mode, Network, Result, Rng};
use cafe_plugins as _;
use candle_core::{DType, Device, Tensor, Var};
use rand::Rng as _;
use serde_json::{json, Value};

const CLASSES: usize = 4;
/// Two synthetic images per class.
const IMAGES: usize = 8;

fn uniform(shape: &[usize], scale: f64, rng: &mut Rng) -> Result<Tensor> {
    let n = shape.iter().product();
    let data: Vec<f64> = (0..n).map(|_| (rng.random::<f64>() * 2.0 - 1.0) * scale).collect();
    Ok(Tensor::from_vec(data, shape, &Device::Cpu)?)
}

/// One unroll: the start parameters (`Var`s, as an expert's epoch would be loaded: candle
/// differentiates only what derives from a `Var`), the labels and the target parameters.
struct Unroll {
    net: Box<dyn Network>,
    start: Vec<Var>,
    labels: Tensor,
    target: Vec<Tensor>,
}

impl Unroll {
    fn new(arch: &str, config: Value, input: ImageShape, seed: u64) -> Result<Self> {
        let mut rng = rng_from_seed(seed);
        let net = find::<dyn Architecture>(arch)?.instantiate(&config)?.build(
            input,
            CLASSES,
            DType::F64,
            &Device::Cpu,
            &mut rng,
        )?;
        let start = net.parameters();
        // A target a few "epochs" away: the start moved by noise of a tenth of its own scale.
        let target = start
            .iter()
            .map(|p| {
                let scale = p.as_tensor().abs()?.mean_all()?.to_scalar::<f64>()?.max(0.05);
                Ok((p.as_tensor() + uniform(p.dims(), 0.1 * scale, &mut rng)?)?)
            })
            .collect::<Result<Vec<_>>>()?;
        let labels: Vec<u32> = (0..IMAGES as u32).map(|i| i % CLASSES as u32).collect();
        Ok(Self {
            net,
            start,
            labels: Tensor::new(labels.as_slice(), &Device::Cpu)?,
            target,
        })
    }

    /// `||theta_2 - target||^2 / ||theta_0 - target||^2` after two SGD steps of size `lr` on
    /// `x`, the whole unroll one graph.
    fn loss(&self, x: &Tensor, lr: &Tensor) -> Result<Tensor> {
        let mut theta: Vec<Tensor> = self.start.iter().map(|v| v.as_tensor().clone()).collect();
        for _ in 0..2 {
            // candle keeps the gradients of `Var`s only (its backward drops an intermediate's
            // gradient once consumed), and theta_1 is an intermediate: the gradient at theta_k
            // is read at a zero `Var` added to it (theta_k + 0 == theta_k exactly), and stays
            // a function of theta_k, x and lr because the switch keeps the backward's graph.
            let probes = theta
                .iter()
                .map(|t| Ok(Var::from_tensor(&t.zeros_like()?)?))
                .collect::<Result<Vec<_>>>()?;
            let at = theta
                .iter()
                .zip(&probes)
                .map(|(t, z)| Ok((t + z.as_tensor())?))
                .collect::<Result<Vec<_>>>()?;
            let logits = self.net.logits_with(&at, x, Mode::Train)?;
            let grads = cross_entropy(&logits, &self.labels)?.backward()?;
            theta = theta
                .iter()
                .zip(&probes)
                .map(|(t, z)| {
                    let g = grads.get(z).expect("every parameter gets a gradient");
                    Ok((t - g.broadcast_mul(lr)?)?)
                })
                .collect::<Result<_>>()?;
        }
        let distance = |from: &[Tensor]| -> Result<Tensor> {
            let mut total = Tensor::new(0.0f64, &Device::Cpu)?;
            for (t, target) in from.iter().zip(&self.target) {
                total = (total + (t - target)?.sqr()?.sum_all()?)?;
            }
            Ok(total)
        };
        let start: Vec<Tensor> = self.start.iter().map(|v| v.as_tensor().detach()).collect();
        Ok((distance(&theta)? / distance(&start)?)?)
    }
}

/// A central difference of `f` at eps, whether a kink (ReLU, max pooling) spoils it, and the
/// part of it that rounding in the values of `f` alone can make.
struct Difference {
    value: f64,
    /// The differences at eps and eps/2 disagree by far more than the O(eps^2) of a smooth `f`.
    kink: bool,
    noise: f64,
}

fn central(f: &dyn Fn(f64) -> Result<f64>, eps: f64) -> Result<Difference> {
    let (plus, minus) = (f(eps)?, f(-eps)?);
    let value = (plus - minus) / (2.0 * eps);
    let half = (f(eps / 2.0)? - f(-eps / 2.0)?) / eps;
    // The loss sums thousands of rounded terms: allow 64 ulps of error in each value.
    let noise = 64.0 * f64::EPSILON * (plus.abs() + minus.abs()) / (2.0 * eps);
    let kink = (value - half).abs() > 1e-6 * value.abs().max(half.abs()) + 3.0 * noise;
    Ok(Difference { value, kink, noise })
}

/// Checks d loss / d lr and d loss / d x at `pixels` random pixels; returns the points skipped
/// at kinks.
fn check(name: &str, unroll: &Unroll, input: ImageShape, seed: u64, pixels: usize) -> Result<usize> {
    std::env::set_var("CANDLE_GRAD_DO_NOT_DETACH", "1");
    let mut rng = rng_from_seed(seed);
    let x0 = uniform(&input.batch_dims(IMAGES), 1.0, &mut rng)?;
    let lr0 = 0.05;
    let x = Var::from_tensor(&x0)?;
    let lr = Var::new(lr0, &Device::Cpu)?;
    let grads = unroll.loss(&x, &lr)?.backward()?;
    let gx: Vec<f64> = grads
        .get(&x)
        .expect("the loss reaches the pixels")
        .flatten_all()?
        .to_vec1()?;
    let glr = grads
        .get(&lr)
        .expect("the loss reaches the step size")
        .to_scalar::<f64>()?;
    let tolerance = |auto: f64, fd: &Difference| 1e-5 * auto.abs().max(fd.value.abs()) + fd.noise;

    let lr_at = |d: f64| -> Result<f64> { Ok(unroll.loss(&x0, &Tensor::new(lr0 + d, &Device::Cpu)?)?.to_scalar()?) };
    let fd = central(&lr_at, 1e-5)?;
    assert!(!fd.kink, "{name}: d/dlr at a kink");
    assert!(
        fd.value.abs() > 1e-6,
        "{name}: the loss does not depend on lr ({})",
        fd.value
    );
    assert!(
        (glr - fd.value).abs() <= tolerance(glr, &fd),
        "{name} d/dlr: autograd {glr} vs finite differences {}",
        fd.value
    );

    let base: Vec<f64> = x0.flatten_all()?.to_vec1()?;
    let lr_t = Tensor::new(lr0, &Device::Cpu)?;
    let mut skipped = 0;
    for _ in 0..pixels {
        let i = rng.random_range(0..base.len());
        let at = |d: f64| -> Result<f64> {
            let mut v = base.clone();
            v[i] += d;
            Ok(unroll
                .loss(&Tensor::from_vec(v, x0.dims(), &Device::Cpu)?, &lr_t)?
                .to_scalar()?)
        };
        let fd = central(&at, 1e-5)?;
        if fd.kink {
            skipped += 1;
            continue;
        }
        assert!(
            (gx[i] - fd.value).abs() <= tolerance(gx[i], &fd),
            "{name} d/dx[{i}]: autograd {} vs finite differences {}",
            gx[i],
            fd.value
        );
    }
    assert!(
        gx.iter().any(|g| g.abs() > 1e-8),
        "{name}: no gradient reaches the pixels"
    );
    eprintln!("{name}: {skipped} of {pixels} pixels skipped at kinks");
    Ok(skipped)
}

/// ConvNet with instance norm and average pooling: `logits_with` runs the fused
/// norm-activation-pooling op, whose second-order backward the unroll differentiates.
#[test]
fn two_unrolled_steps_through_a_convnet() -> Result<()> {
    let input = ImageShape::new(3, 8, 8);
    let unroll = Unroll::new("convnet", json!({"width": 4, "depth": 2}), input, 1)?;
    let skipped = check("convnet", &unroll, input, 2, 6)?;
    assert!(skipped <= 1, "{skipped} points at kinks");
    Ok(())
}

/// BatchNorm in train mode: batch statistics couple the images, inside both steps.
#[test]
fn two_unrolled_steps_through_a_batch_norm_convnet() -> Result<()> {
    let input = ImageShape::new(3, 8, 8);
    let unroll = Unroll::new("convnetbn", json!({"width": 4, "depth": 2}), input, 3)?;
    let skipped = check("convnetbn", &unroll, input, 4, 6)?;
    assert!(skipped <= 1, "{skipped} points at kinks");
    Ok(())
}

/// LeNet: another family, with max pooling and three linear layers.
#[test]
fn two_unrolled_steps_through_lenet() -> Result<()> {
    let input = ImageShape::new(1, 12, 12);
    let unroll = Unroll::new("lenet", json!({}), input, 5)?;
    let skipped = check("lenet", &unroll, input, 6, 6)?;
    assert!(skipped <= 2, "{skipped} points at kinks");
    Ok(())
}

/// MLP: the dense family.
#[test]
fn two_unrolled_steps_through_an_mlp() -> Result<()> {
    let input = ImageShape::new(1, 6, 6);
    let unroll = Unroll::new("mlp", json!({}), input, 7)?;
    let skipped = check("mlp", &unroll, input, 8, 6)?;
    assert!(skipped <= 1, "{skipped} points at kinks");
    Ok(())
}
