//! Trajectory matching's gradient (MTT) through the reference's one graph
//! (`trajectory::Unroll::Graph`), for several architecture families: two SGD steps unrolled
//! through `Network::logits_with` on parameters given as tensors,
//! `theta_{k+1} = theta_k - lr * dCE(logits(x; theta_k), y)/dtheta_k`, and the loss
//! `||theta_2 - target||^2 / ||theta_0 - target||^2` differentiated w.r.t. synthetic pixels `x`
//! and the step size `lr` (second order through both steps), against central finite
//! differences in f64. (`trajectory_gradcheck.rs` checks the constant-memory reverse pass
//! against this one.)
//!
//! Every test here runs its backward passes with `CANDLE_GRAD_DO_NOT_DETACH=1`, which candle
//! reads once per thread at its first backward: each test sets it before any backward.

use cafe_framework::registry::find;
use cafe_framework::rng::rng_from_seed;
use cafe_framework::trajectory::{Student, StudentStep, Targets, Unroll as UnrollHow, UnrollGradients};
use cafe_framework::{Architecture, Augmenter, ImageShape, Network, Result, Rng};
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

/// One unroll: the network, its start parameters, the labels and the target parameters.
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

    /// The loss after two whole-set SGD steps of size `lr` on `x`, and its gradients w.r.t.
    /// `x` and `lr`, through one graph.
    fn run(&self, x: &Tensor, lr: f64) -> Result<UnrollGradients> {
        let images = Var::from_tensor(x)?;
        let lr = Var::new(lr, &Device::Cpu)?;
        let none = find::<dyn Augmenter>("none")?.instantiate(&json!({}))?;
        let student = Student {
            network: self.net.as_ref(),
            images: &images,
            targets: Targets::Labels(&self.labels),
            lr: &lr,
            augmenter: none.as_ref(),
        };
        let all: Vec<u32> = (0..IMAGES as u32).collect();
        let steps = (0..2)
            .map(|k| {
                Ok(StudentStep {
                    rows: Tensor::new(all.as_slice(), &Device::Cpu)?,
                    augment_seed: k,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let start: Vec<Tensor> = self.start.iter().map(|v| v.as_tensor().detach()).collect();
        student.match_trajectory(&start, &self.target, &steps, UnrollHow::Graph)
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
    let grads = unroll.run(&x0, lr0)?;
    let gx: Vec<f64> = grads.images.flatten_all()?.to_vec1()?;
    let glr = grads.lr.to_scalar::<f64>()?;
    let tolerance = |auto: f64, fd: &Difference| 1e-5 * auto.abs().max(fd.value.abs()) + fd.noise;

    let lr_at = |d: f64| -> Result<f64> { Ok(unroll.run(&x0, lr0 + d)?.loss) };
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
    let mut skipped = 0;
    for _ in 0..pixels {
        let i = rng.random_range(0..base.len());
        let at = |d: f64| -> Result<f64> {
            let mut v = base.clone();
            v[i] += d;
            Ok(unroll.run(&Tensor::from_vec(v, x0.dims(), &Device::Cpu)?, lr0)?.loss)
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
