//! Trajectory matching's gradient (`cafe_framework::trajectory::unroll`): the constant-memory
//! reverse pass against the reference's one-graph unroll (equal to floating-point tolerance),
//! both against central finite differences in f64 (pixels, step size, soft labels), TESLA's
//! gradient shown to differ (it drops the Hessian terms) except where it must agree, and the
//! invariants of the loss as property tests.
//!
//! Every test sets `CANDLE_GRAD_DO_NOT_DETACH=1` before its first backward (candle reads it once
//! per thread).

use cafe_framework::registry::find;
use cafe_framework::rng::rng_from_seed;
use cafe_framework::trajectory::{Student, StudentStep, Targets, Unroll, UnrollGradients};
use cafe_framework::{Architecture, Augmenter, ImageShape, Network, Result, Rng};
use cafe_plugins as _;
use candle_core::{DType, Device, Tensor, Var};
use proptest::prelude::*;
use rand::Rng as _;
use serde_json::{json, Value};

const CLASSES: usize = 4;
/// Two images per class.
const IMAGES: usize = 8;
const CPU: Device = Device::Cpu;

fn uniform(shape: &[usize], scale: f64, rng: &mut Rng) -> Result<Tensor> {
    let n = shape.iter().product();
    let data: Vec<f64> = (0..n).map(|_| (rng.random::<f64>() * 2.0 - 1.0) * scale).collect();
    Ok(Tensor::from_vec(data, shape, &CPU)?)
}

fn augmenter(name: &str, config: Value) -> Box<dyn Augmenter> {
    find::<dyn Augmenter>(name).unwrap().instantiate(&config).unwrap()
}

/// A student problem in f64: a small network, its start parameters, a target a little away,
/// synthetic images, hard labels, soft-label logits and the minibatches of `steps` steps.
struct Problem {
    net: Box<dyn Network>,
    start: Vec<Tensor>,
    target: Vec<Tensor>,
    images: Tensor,
    labels: Tensor,
    label_logits: Tensor,
    steps: Vec<StudentStep>,
}

impl Problem {
    fn new(arch: &str, config: Value, input: ImageShape, steps: usize, batch: usize, seed: u64) -> Result<Self> {
        std::env::set_var("CANDLE_GRAD_DO_NOT_DETACH", "1");
        let mut rng = rng_from_seed(seed);
        let net =
            find::<dyn Architecture>(arch)?
                .instantiate(&config)?
                .build(input, CLASSES, DType::F64, &CPU, &mut rng)?;
        let start: Vec<Tensor> = net.parameters().iter().map(|p| p.as_tensor().detach()).collect();
        let target = start
            .iter()
            .map(|p| {
                let scale = p.abs()?.mean_all()?.to_scalar::<f64>()?.max(0.05);
                Ok((p + uniform(p.dims(), 0.1 * scale, &mut rng)?)?)
            })
            .collect::<Result<Vec<_>>>()?;
        let labels: Vec<u32> = (0..IMAGES as u32).map(|i| i / (IMAGES / CLASSES) as u32).collect();
        // Minibatches as the matcher draws them: a permutation split into chunks.
        let mut plan = Vec::new();
        let mut order: Vec<u32> = Vec::new();
        for k in 0..steps {
            if order.is_empty() {
                order = (0..IMAGES as u32).collect();
                rand::seq::SliceRandom::shuffle(order.as_mut_slice(), &mut rng);
            }
            let take: Vec<u32> = order.drain(..batch.min(order.len())).collect();
            plan.push(StudentStep {
                rows: Tensor::new(take.as_slice(), &CPU)?,
                augment_seed: 1000 + k as u64,
            });
        }
        Ok(Self {
            net,
            start,
            target,
            images: uniform(&input.batch_dims(IMAGES), 1.0, &mut rng)?,
            labels: Tensor::new(labels.as_slice(), &CPU)?,
            label_logits: uniform(&[IMAGES, CLASSES], 1.0, &mut rng)?,
            steps: plan,
        })
    }

    /// The loss and its gradients at (images, lr, soft labels when `soft`), computed `how`.
    fn run(
        &self,
        images: &Tensor,
        lr: f64,
        logits: &Tensor,
        soft: bool,
        aug: &dyn Augmenter,
        how: Unroll,
    ) -> Result<UnrollGradients> {
        let images = Var::from_tensor(images)?;
        let lr = Var::from_tensor(&Tensor::new(lr, &CPU)?)?;
        let logits = Var::from_tensor(logits)?;
        let student = Student {
            network: self.net.as_ref(),
            images: &images,
            targets: if soft {
                Targets::Soft(&logits)
            } else {
                Targets::Labels(&self.labels)
            },
            lr: &lr,
            augmenter: aug,
        };
        student.match_trajectory(&self.start, &self.target, &self.steps, how)
    }
}

fn values(t: &Tensor) -> Vec<f64> {
    t.flatten_all().unwrap().to_vec1::<f64>().unwrap()
}

/// Largest |a - b| relative to the largest |a|.
fn relative_gap(a: &[f64], b: &[f64]) -> f64 {
    let scale = a.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-300);
    a.iter().zip(b).fold(0.0f64, |m, (x, y)| m.max((x - y).abs())) / scale
}

fn assert_same(name: &str, a: &UnrollGradients, b: &UnrollGradients) {
    assert!(
        (a.loss - b.loss).abs() <= 1e-12 * a.loss.abs(),
        "{name}: loss {} vs {}",
        a.loss,
        b.loss
    );
    for (what, x, y) in [("pixels", &a.images, &b.images), ("lr", &a.lr, &b.lr)] {
        let gap = relative_gap(&values(x), &values(y));
        assert!(gap < 1e-9, "{name}: d/d{what} differ by {gap:e} (relative)");
    }
    if let (Some(x), Some(y)) = (&a.labels, &b.labels) {
        let gap = relative_gap(&values(x), &values(y));
        assert!(gap < 1e-9, "{name}: d/dlabels differ by {gap:e} (relative)");
    }
}

/// The constant-memory reverse pass computes the one-graph unroll's gradient, hard and soft
/// labels, without and with DSA (each image its own transform), minibatches of half the set.
#[test]
fn reverse_pass_equals_the_full_graph_unroll() -> Result<()> {
    let input = ImageShape::new(3, 8, 8);
    let p = Problem::new("convnet", json!({"width": 4, "depth": 2}), input, 4, 4, 11)?;
    let none = augmenter("none", json!({}));
    let dsa = augmenter("dsa", json!({"strategy": "color_crop_cutout_flip_scale_rotate"}));
    for (name, aug) in [("none", none.as_ref()), ("dsa", dsa.as_ref())] {
        for soft in [false, true] {
            let graph = p.run(&p.images, 0.05, &p.label_logits, soft, aug, Unroll::Graph)?;
            let reverse = p.run(&p.images, 0.05, &p.label_logits, soft, aug, Unroll::Reverse)?;
            assert_same(&format!("{name}, soft {soft}"), &graph, &reverse);
            assert!(values(&reverse.images).iter().any(|g| g.abs() > 1e-8));
        }
    }
    Ok(())
}

/// Another family (BatchNorm in train mode couples the images of a minibatch).
#[test]
fn reverse_pass_equals_the_full_graph_unroll_with_batch_norm() -> Result<()> {
    let input = ImageShape::new(3, 8, 8);
    let p = Problem::new("convnetbn", json!({"width": 4, "depth": 2}), input, 3, 8, 12)?;
    let none = augmenter("none", json!({}));
    let graph = p.run(&p.images, 0.05, &p.label_logits, true, none.as_ref(), Unroll::Graph)?;
    let reverse = p.run(&p.images, 0.05, &p.label_logits, true, none.as_ref(), Unroll::Reverse)?;
    assert_same("convnetbn", &graph, &reverse);
    Ok(())
}

/// A central difference and whether a kink (ReLU, pooling) spoils it: the differences at eps and
/// eps/2 disagree by more than a smooth function allows.
fn central(f: &dyn Fn(f64) -> f64, eps: f64) -> (f64, bool, f64) {
    let (plus, minus) = (f(eps), f(-eps));
    let value = (plus - minus) / (2.0 * eps);
    let half = (f(eps / 2.0) - f(-eps / 2.0)) / eps;
    let noise = 64.0 * f64::EPSILON * (plus.abs() + minus.abs()) / (2.0 * eps);
    let kink = (value - half).abs() > 1e-6 * value.abs().max(half.abs()) + 3.0 * noise;
    (value, kink, noise)
}

/// The reverse pass against central finite differences of the loss: d/dlr, d/dpixel at random
/// pixels, d/dlogit at random soft-label entries.
#[test]
fn reverse_pass_matches_finite_differences() -> Result<()> {
    let input = ImageShape::new(3, 8, 8);
    let p = Problem::new("convnet", json!({"width": 4, "depth": 2}), input, 3, 4, 13)?;
    let none = augmenter("none", json!({}));
    let lr0 = 0.05;
    let g = p.run(&p.images, lr0, &p.label_logits, true, none.as_ref(), Unroll::Reverse)?;
    let loss_at = |images: &Tensor, lr: f64, logits: &Tensor| {
        p.run(images, lr, logits, true, none.as_ref(), Unroll::Reverse)
            .unwrap()
            .loss
    };
    let close = |auto: f64, fd: f64, noise: f64| (auto - fd).abs() <= 1e-5 * auto.abs().max(fd.abs()) + noise;

    let (fd, kink, noise) = central(&|d| loss_at(&p.images, lr0 + d, &p.label_logits), 1e-5);
    let glr = values(&g.lr)[0];
    assert!(!kink && fd.abs() > 1e-6, "d/dlr at a kink or zero: {fd}");
    assert!(close(glr, fd, noise), "d/dlr: reverse {glr} vs finite differences {fd}");

    let mut rng = rng_from_seed(14);
    let base = values(&p.images);
    let gx = values(&g.images);
    let mut checked = 0;
    for _ in 0..8 {
        let i = rng.random_range(0..base.len());
        let at = |d: f64| {
            let mut v = base.clone();
            v[i] += d;
            loss_at(
                &Tensor::from_vec(v, p.images.dims(), &CPU).unwrap(),
                lr0,
                &p.label_logits,
            )
        };
        let (fd, kink, noise) = central(&at, 1e-5);
        if kink {
            continue;
        }
        checked += 1;
        assert!(
            close(gx[i], fd, noise),
            "d/dx[{i}]: reverse {} vs finite differences {fd}",
            gx[i]
        );
    }
    assert!(checked >= 6, "only {checked} of 8 pixels away from kinks");

    let base = values(&p.label_logits);
    let gy = values(g.labels.as_ref().expect("soft labels get a gradient"));
    for i in [0, 5, 13, 30] {
        let at = |d: f64| {
            let mut v = base.clone();
            v[i] += d;
            loss_at(
                &p.images,
                lr0,
                &Tensor::from_vec(v, p.label_logits.dims(), &CPU).unwrap(),
            )
        };
        let (fd, kink, noise) = central(&at, 1e-5);
        assert!(!kink, "d/dlogit[{i}] at a kink");
        assert!(
            close(gy[i], fd, noise),
            "d/dlogit[{i}]: reverse {} vs finite differences {fd}",
            gy[i]
        );
    }
    Ok(())
}

/// TESLA's code drops the Hessian terms: its pixel gradient differs from the exact one after
/// several steps, and equals it after one (where there are no later steps to drop).
#[test]
fn tesla_gradient_is_exact_only_for_one_step() -> Result<()> {
    let input = ImageShape::new(3, 8, 8);
    let none = augmenter("none", json!({}));
    let one = Problem::new("convnet", json!({"width": 4, "depth": 2}), input, 1, 8, 15)?;
    let exact = one.run(
        &one.images,
        0.05,
        &one.label_logits,
        false,
        none.as_ref(),
        Unroll::Reverse,
    )?;
    let tesla = one.run(
        &one.images,
        0.05,
        &one.label_logits,
        false,
        none.as_ref(),
        Unroll::Tesla,
    )?;
    assert_same("one step", &exact, &tesla);
    let many = Problem::new("convnet", json!({"width": 4, "depth": 2}), input, 5, 8, 15)?;
    let exact = many.run(
        &many.images,
        0.5,
        &many.label_logits,
        false,
        none.as_ref(),
        Unroll::Reverse,
    )?;
    let tesla = many.run(
        &many.images,
        0.5,
        &many.label_logits,
        false,
        none.as_ref(),
        Unroll::Tesla,
    )?;
    assert_eq!(exact.loss, tesla.loss, "the loss itself is the same");
    let gap = relative_gap(&values(&exact.images), &values(&tesla.images));
    assert!(
        gap > 1e-4,
        "TESLA's gradient equals the exact one after 5 steps ({gap:e})"
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, .. ProptestConfig::default() })]

    /// The loss is a ratio of squared distances: never negative; exactly 1 when the student does
    /// not move (step size 0); 0 with zero gradients when the target is where the student lands;
    /// and with whole-set minibatches, the same for any order of the images (labels moving
    /// with them).
    #[test]
    fn loss_invariants(seed in 0u64..1000, steps in 1usize..4) {
        let input = ImageShape::new(1, 6, 6);
        let p = Problem::new("convnet", json!({"width": 3, "depth": 1}), input, steps, IMAGES, seed).unwrap();
        let none = augmenter("none", json!({}));
        let g = p.run(&p.images, 0.05, &p.label_logits, false, none.as_ref(), Unroll::Reverse).unwrap();
        prop_assert!(g.loss >= 0.0);

        let still = p.run(&p.images, 0.0, &p.label_logits, false, none.as_ref(), Unroll::Reverse).unwrap();
        prop_assert!((still.loss - 1.0).abs() < 1e-12, "lr 0: loss {}", still.loss);

        let images = Var::from_tensor(&p.images).unwrap();
        let lr = Var::from_tensor(&Tensor::new(0.05f64, &CPU).unwrap()).unwrap();
        let student = Student { network: p.net.as_ref(), images: &images, targets: Targets::Labels(&p.labels), lr: &lr, augmenter: none.as_ref() };
        let landed = student.parameters_along(&p.start, &p.steps).unwrap().pop().unwrap();
        let on_target = student.match_trajectory(&p.start, &landed, &p.steps, Unroll::Reverse).unwrap();
        prop_assert!(on_target.loss < 1e-20, "student on its target: loss {}", on_target.loss);
        prop_assert!(values(&on_target.images).iter().all(|v| v.abs() < 1e-9));

        let perm: Vec<u32> = (0..IMAGES as u32).rev().collect();
        let perm_t = Tensor::new(perm.as_slice(), &CPU).unwrap();
        let shuffled = Problem {
            net: find::<dyn Architecture>("convnet").unwrap().instantiate(&json!({"width": 3, "depth": 1})).unwrap()
                .build(input, CLASSES, DType::F64, &CPU, &mut rng_from_seed(0)).unwrap(),
            start: p.start.clone(),
            target: p.target.clone(),
            images: p.images.index_select(&perm_t, 0).unwrap(),
            labels: p.labels.index_select(&perm_t, 0).unwrap(),
            label_logits: p.label_logits.index_select(&perm_t, 0).unwrap(),
            steps: p.steps.clone(),
        };
        let h = shuffled.run(&shuffled.images, 0.05, &shuffled.label_logits, false, none.as_ref(), Unroll::Reverse).unwrap();
        prop_assert!((h.loss - g.loss).abs() <= 1e-12 * g.loss.max(1e-300), "order changed the loss: {} vs {}", h.loss, g.loss);
    }
}
