//! Contract tests over the architecture zoo of DC's `networks.py`
//! (<https://github.com/VICO-UoE/DatasetCondensation>): MLP, LeNet, AlexNet(BN), VGG11(BN),
//! ResNet18(BN)(_AP). Registered names and configs, output shapes at 1x28x28 and 3x32x32 (the
//! expected shapes are worked out from the reference by hand, not from the plugin code), f32
//! against f64, autograd against central finite differences in f64, refused inputs, and
//! BatchNorm's two modes against numbers computed by hand.

mod support;

use cafe_framework::registry::find;
use cafe_framework::rng::rng_from_seed;
use cafe_framework::{Architecture, ImageShape, Mode, Network, Result};
use candle_core::{DType, Device, Tensor, Var};
use rand::Rng as _;
use serde_json::json;
use support::{uniform, Probe};

const CLASSES: usize = 10;
const ZOO: [&str; 10] = [
    "alexnet",
    "alexnetbn",
    "lenet",
    "mlp",
    "resnet18",
    "resnet18_ap",
    "resnet18bn",
    "resnet18bn_ap",
    "vgg11",
    "vgg11bn",
];
const MNIST: ImageShape = ImageShape::new(1, 28, 28);
const CIFAR: ImageShape = ImageShape::new(3, 32, 32);

fn build(name: &str, input: ImageShape, dtype: DType, seed: u64) -> Result<Box<dyn Network>> {
    let arch = find::<dyn Architecture>(name)?.instantiate(&json!({}))?;
    arch.build(input, CLASSES, dtype, &Device::Cpu, &mut rng_from_seed(seed))
}

/// `[c, h, w]` of each block feature and the embedding width, from the reference's layer list.
fn expected_shapes(name: &str, input: ImageShape) -> (Vec<Vec<usize>>, usize) {
    let mnist = input == MNIST;
    let maps = |list: &[(usize, usize)]| list.iter().map(|&(c, s)| vec![c, s, s]).collect::<Vec<_>>();
    match name {
        "mlp" => (vec![vec![128], vec![128]], 128),
        // 28 pad 2 or 32 pad 0 -> 28 -> pool 14 -> 10 -> pool 5.
        "lenet" => (maps(&[(6, 28), (16, 10)]), 84),
        // 28 pad 4 or 32 pad 2 -> 32 -> 16 -> 8 -> 8 -> 8 -> pool 4.
        "alexnet" | "alexnetbn" => (maps(&[(128, 32), (192, 16), (256, 8), (192, 8), (192, 8)]), 192 * 4 * 4),
        // 28 pad 3 or 32 pad 1 -> 32, then five halvings to 1x1.
        "vgg11" | "vgg11bn" => {
            let convs = [
                (64, 32),
                (128, 16),
                (256, 8),
                (256, 8),
                (512, 4),
                (512, 4),
                (512, 2),
                (512, 2),
            ];
            (maps(&convs), 512)
        }
        // Stride 2, pad 1: 28 -> 14 -> 7 -> 4 and 32 -> 16 -> 8 -> 4; avg_pool2d(4) -> 1x1.
        "resnet18" | "resnet18bn" => {
            let sizes = if mnist { [28, 14, 7, 4] } else { [32, 16, 8, 4] };
            (
                maps(&[(64, sizes[0]), (128, sizes[1]), (256, sizes[2]), (512, sizes[3])]),
                512,
            )
        }
        // 2x2 average pooling, floor: 28 -> 14 -> 7 -> 3 and 32 -> 16 -> 8 -> 4; the reference's
        // classifier takes 512 * 3 * 3 (1 channel) or 512 * 4 * 4.
        "resnet18_ap" | "resnet18bn_ap" => {
            let sizes = if mnist { [28, 14, 7, 3] } else { [32, 16, 8, 4] };
            let last = sizes[3];
            (
                maps(&[(64, sizes[0]), (128, sizes[1]), (256, sizes[2]), (512, last)]),
                512 * last * last,
            )
        }
        other => panic!("no expected shapes for '{other}'"),
    }
}

fn uses_batch_norm(name: &str) -> bool {
    name.contains("bn")
}

#[test]
fn the_zoo_is_registered_with_empty_configs() -> Result<()> {
    cafe_plugins::link();
    for name in ZOO {
        let plugin = find::<dyn Architecture>(name)?;
        assert_eq!((plugin.default_config)(), json!({}), "{name}");
        assert_eq!(
            plugin.instantiate(&json!({}))?.uses_batch_norm(),
            uses_batch_norm(name),
            "{name}"
        );
        assert!(
            plugin.instantiate(&json!({"width": 3})).is_err(),
            "{name} accepts an unknown key"
        );
        // Lookups are case-insensitive (DC's names are capitalised: "ResNet18BN_AP").
        assert_eq!(find::<dyn Architecture>(&name.to_uppercase())?.name, name);
    }
    Ok(())
}

#[test]
fn output_shapes_and_f32_against_f64() -> Result<()> {
    cafe_plugins::link();
    for name in ZOO {
        for input in [MNIST, CIFAR] {
            let x = uniform(&input.batch_dims(2), &mut rng_from_seed(1))?;
            let net = build(name, input, DType::F32, 7)?;
            assert_eq!(net.has_batch_norm(), uses_batch_norm(name), "{name}");
            let out = net.forward(&x.to_dtype(DType::F32)?, Mode::Train)?;
            let (features, d) = expected_shapes(name, input);
            assert_eq!(out.logits.dims(), [2, CLASSES], "{name} {input}");
            assert_eq!(out.embedding.dims(), [2, d], "{name} {input}");
            let got: Vec<Vec<usize>> = out.block_features.iter().map(|f| f.dims()[1..].to_vec()).collect();
            assert_eq!(got, features, "{name} {input} block features");
            assert!(
                out.block_features.iter().all(|f| f.dim(0).unwrap() == 2),
                "{name} {input} batch size"
            );
            // One seed gives the same network in both dtypes (weights are drawn in f64).
            let logits64 = build(name, input, DType::F64, 7)?.logits(&x, Mode::Train)?;
            let diff = (out.logits.to_dtype(DType::F64)? - &logits64)?
                .abs()?
                .max_all()?
                .to_scalar::<f64>()?;
            let scale = logits64.abs()?.max_all()?.to_scalar::<f64>()?.max(1.0);
            assert!(
                diff < 1e-4 * scale,
                "{name} {input}: f32 and f64 logits differ by {diff}"
            );
        }
    }
    Ok(())
}

#[test]
fn unusable_inputs_are_errors() -> Result<()> {
    cafe_plugins::link();
    let arch = |name: &str| find::<dyn Architecture>(name)?.instantiate(&json!({}));
    let build = |name: &str, input: ImageShape, classes: usize| {
        arch(name)?.build(input, classes, DType::F64, &Device::Cpu, &mut rng_from_seed(0))
    };
    // Too small: LeNet's second conv, VGG's fifth pooling, ResNet's final 4x4 pooling (24 ends
    // at 3x3), ResNet_AP's last halving (4 -> 2 -> 1 -> 0).
    for (name, input) in [
        ("lenet", ImageShape::new(3, 12, 12)),
        ("alexnet", ImageShape::new(3, 6, 6)),
        ("vgg11", ImageShape::new(3, 16, 16)),
        ("resnet18", ImageShape::new(3, 24, 24)),
        ("resnet18_ap", ImageShape::new(3, 4, 4)),
        ("mlp", ImageShape::new(3, 0, 4)),
    ] {
        let err = build(name, input, CLASSES)
            .err()
            .unwrap_or_else(|| panic!("{name} builds for {input}"));
        assert!(err.to_string().contains(name), "{name}: {err}");
    }
    for name in ZOO {
        assert!(build(name, CIFAR, 0).is_err(), "{name} with 0 classes");
    }
    // A batch of the wrong image shape is an error, not a panic.
    for name in ["mlp", "lenet", "resnet18_ap"] {
        let net = build(name, CIFAR, CLASSES)?;
        assert!(
            net.forward(&Tensor::zeros((2, 1, 28, 28), DType::F64, &Device::Cpu)?, Mode::Eval)
                .is_err(),
            "{name}"
        );
    }
    Ok(())
}

const EPS: f64 = 1e-5;
const REL_TOL: f64 = 1e-5;

/// What a finite-difference check of one coordinate found.
#[derive(Debug, PartialEq)]
enum Verdict {
    Agrees,
    /// No difference quotient agrees and the central differences at the two steps disagree with
    /// each other too: ReLU or max-pool kinks lie on both sides within a step, so finite
    /// differences estimate nothing there. (In a ResNet every stem weight and every pixel moves
    /// a million units through instance norm, and some lie within 1e-6 of 0.)
    Kink,
}

/// Compares `auto` with difference quotients of `f(d)` = the probe with the coordinate moved by
/// `d` (`f(0) = f0`), at steps `EPS` and `EPS / 10`.
///
/// It agrees when the central difference does, or one of the one-sided ones: a kink on one side
/// within the step spoils the central difference and that side's quotient, while the other side's
/// still measures the derivative at the point. Where nothing agrees but the two central
/// differences agree with each other, the function is smooth on these scales and the autograd is
/// wrong: panic.
fn compare(what: &str, auto: f64, f0: f64, f: &mut dyn FnMut(f64) -> Result<f64>) -> Result<Verdict> {
    // Rounding of `f` (relative ~1e-13 after a deep net's sums) divided by the step.
    let close =
        |a: f64, b: f64, eps: f64| (a - b).abs() <= REL_TOL * a.abs().max(b.abs()) + 1e-13 * f0.abs().max(1.0) / eps;
    let mut centrals = Vec::with_capacity(2);
    for eps in [EPS, EPS / 10.0] {
        let (plus, minus) = (f(eps)?, f(-eps)?);
        let central = (plus - minus) / (2.0 * eps);
        if [central, (plus - f0) / eps, (f0 - minus) / eps]
            .into_iter()
            .any(|q| close(auto, q, eps))
        {
            return Ok(Verdict::Agrees);
        }
        centrals.push((eps, central));
    }
    let [(coarse_eps, coarse), (fine_eps, fine)] = centrals[..] else {
        unreachable!("two steps")
    };
    assert!(
        !close(coarse, fine, fine_eps),
        "{what}: autograd {auto} vs central differences {coarse} (step {coarse_eps:e}) and {fine} (step {fine_eps:e})"
    );
    eprintln!("{what}: skipped at kinks: autograd {auto}, central differences {coarse} and {fine}");
    Ok(Verdict::Kink)
}

/// Checks autograd against finite differences at `pixels` input pixels and `params` parameter
/// scalars (in parameter tensors drawn at random, always including the first and the last);
/// returns how many points were skipped for lying among kinks.
fn gradcheck(name: &str, input: ImageShape, pixels: usize, params: usize, seed: u64) -> Result<usize> {
    let net = build(name, input, DType::F64, seed)?;
    let net = net.as_ref();
    let mut rng = rng_from_seed(seed + 1000);
    let x = uniform(&input.batch_dims(2), &mut rng)?;
    let probe = Probe::new(net, &x, &mut rng)?;
    let xv = Var::from_tensor(&x)?;
    let at_x = probe.value(net, &xv)?;
    let f0 = at_x.to_scalar::<f64>()?;
    let grads = at_x.backward()?;
    let mut kinks = 0;

    let gx: Vec<f64> = grads
        .get(&xv)
        .expect("gradient reaches the pixels")
        .flatten_all()?
        .to_vec1()?;
    let base: Vec<f64> = x.flatten_all()?.to_vec1()?;
    for _ in 0..pixels {
        let i = rng.random_range(0..base.len());
        let mut at = |d: f64| -> Result<f64> {
            let mut v = base.clone();
            v[i] += d;
            Ok(probe
                .value(net, &Tensor::from_vec(v, x.dims(), &Device::Cpu)?)?
                .to_scalar::<f64>()?)
        };
        kinks += (compare(&format!("{name} {input} d/dx[{i}]"), gx[i], f0, &mut at)? == Verdict::Kink) as usize;
    }

    let all = net.parameters();
    for k in 0..params {
        let p_index = match k {
            0 => 0,
            1 => all.len() - 1,
            _ => rng.random_range(0..all.len()),
        };
        let p = &all[p_index];
        let g: Vec<f64> = grads
            .get(p)
            .expect("gradient reaches every parameter")
            .flatten_all()?
            .to_vec1()?;
        let original = p.as_tensor().copy()?;
        let values: Vec<f64> = original.flatten_all()?.to_vec1()?;
        let i = rng.random_range(0..values.len());
        let mut at = |d: f64| -> Result<f64> {
            let mut v = values.clone();
            v[i] += d;
            p.set(&Tensor::from_vec(v, p.dims(), &Device::Cpu)?)?;
            Ok(probe.value(net, &x)?.to_scalar::<f64>()?)
        };
        let verdict = compare(&format!("{name} {input} d/dparam{p_index}[{i}]"), g[i], f0, &mut at);
        p.set(&original)?;
        kinks += (verdict? == Verdict::Kink) as usize;
    }
    Ok(kinks)
}

/// MLP and LeNet at both inputs (LeNet pads 1-channel input, not 3-channel); AlexNet at the
/// 1-channel input it pads by 4, AlexNetBN at the 3-channel one.
#[test]
fn small_nets_pass_gradcheck() -> Result<()> {
    cafe_plugins::link();
    let cases = [
        ("mlp", MNIST),
        ("mlp", CIFAR),
        ("lenet", MNIST),
        ("lenet", CIFAR),
        ("alexnet", MNIST),
        ("alexnetbn", CIFAR),
    ];
    let mut kinks = 0;
    for (seed, (name, input)) in cases.into_iter().enumerate() {
        kinks += gradcheck(name, input, 10, 10, seed as u64)?;
    }
    // Points among kinks on both sides are rare; many would mean the check checks little.
    assert!(kinks <= 2, "{kinks} points skipped among kinks");
    Ok(())
}

/// VGG11 at 1x28x28 (padding 3 on the first conv); its maps stay even.
#[test]
fn vgg_passes_gradcheck() -> Result<()> {
    cafe_plugins::link();
    let mut kinks = 0;
    for (seed, name) in ["vgg11", "vgg11bn"].into_iter().enumerate() {
        kinks += gradcheck(name, MNIST, 10, 10, 10 + seed as u64)?;
    }
    assert!(kinks <= 2, "{kinks} points skipped among kinks");
    Ok(())
}

/// ResNet18 at 1x25x25, the smallest input its final 4x4 average pooling takes: every stride-2
/// conv meets an odd map (25 -> 13 -> 7 -> 4). The largest check here, so fewer points.
#[test]
fn strided_resnets_pass_gradcheck() -> Result<()> {
    cafe_plugins::link();
    let mut kinks = 0;
    for (seed, name) in ["resnet18", "resnet18bn"].into_iter().enumerate() {
        kinks += gradcheck(name, ImageShape::new(1, 25, 25), 8, 8, 20 + seed as u64)?;
    }
    assert!(kinks <= 2, "{kinks} points skipped among kinks");
    Ok(())
}

/// ResNet18_AP at 1x14x14, the smallest input whose average poolings meet odd maps twice
/// (14 -> 14 -> 7 -> 3 -> 1), where candle's own pooling has wrong gradients (CANDLE_NOTES 2).
#[test]
fn avg_pool_resnets_pass_gradcheck() -> Result<()> {
    cafe_plugins::link();
    let mut kinks = 0;
    for (seed, name) in ["resnet18_ap", "resnet18bn_ap"].into_iter().enumerate() {
        kinks += gradcheck(name, ImageShape::new(1, 14, 14), 10, 10, 30 + seed as u64)?;
    }
    assert!(kinks <= 2, "{kinks} points skipped among kinks");
    Ok(())
}

/// AlexNetBN's first block feature is `relu(BN(conv5x5(x)))`; it is recomputed here from the
/// network's own parameters with candle's `conv2d`: Train mode normalises with the batch mean
/// and biased variance and moves the running statistics (momentum 0.1, unbiased variance, as
/// PyTorch), Eval mode uses those.
#[test]
fn batch_norm_train_and_eval_match_hand_computed() -> Result<()> {
    cafe_plugins::link();
    let input = ImageShape::new(3, 8, 8);
    let net = build("alexnetbn", input, DType::F64, 3)?;
    let p = net.parameters();
    let (c, n, pixels) = (128, 3, 64);
    // A non-trivial affine so that it is checked too.
    let gamma = uniform(&[c], &mut rng_from_seed(4))?;
    let beta = uniform(&[c], &mut rng_from_seed(5))?;
    p[2].set(&gamma)?;
    p[3].set(&beta)?;
    let (gamma, beta): (Vec<f64>, Vec<f64>) = (gamma.to_vec1()?, beta.to_vec1()?);
    let x = uniform(&input.batch_dims(n), &mut rng_from_seed(6))?;
    let y = uniform(&input.batch_dims(n), &mut rng_from_seed(8))?;
    let conv = |x: &Tensor| -> Result<Vec<Vec<Vec<f64>>>> {
        let z = x
            .conv2d(&p[0], 2, 1, 1, 1)?
            .broadcast_add(&p[1].reshape((1, c, 1, 1))?)?;
        Ok(z.flatten_from(2)?.to_vec3()?)
    };
    let (zx, zy) = (conv(&x)?, conv(&y)?);
    let count = (n * pixels) as f64;
    let stats: Vec<(f64, f64, f64)> = (0..c)
        .map(|ch| {
            let vals: Vec<f64> = zx.iter().flat_map(|img| img[ch].iter().copied()).collect();
            let mean = vals.iter().sum::<f64>() / count;
            let ss = vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>();
            (mean, ss / count, ss / (count - 1.0))
        })
        .collect();
    let expect = |z: &[Vec<Vec<f64>>], mean_var: &dyn Fn(usize) -> (f64, f64)| -> Vec<f64> {
        let mut out = Vec::with_capacity(n * c * pixels);
        for img in z {
            for (ch, values) in img.iter().enumerate() {
                let (mean, var) = mean_var(ch);
                out.extend(
                    values
                        .iter()
                        .map(|&v| ((v - mean) / (var + 1e-5).sqrt() * gamma[ch] + beta[ch]).max(0.0)),
                );
            }
        }
        out
    };
    let feature = |x: &Tensor, mode: Mode| -> Result<Vec<f64>> {
        Ok(net.forward(x, mode)?.block_features[0].flatten_all()?.to_vec1()?)
    };
    let close = |a: &[f64], b: &[f64], what: &str| {
        let d = a.iter().zip(b).fold(0.0_f64, |m, (a, b)| m.max((a - b).abs()));
        assert!(d < 1e-10, "{what}: max difference {d}");
    };
    // Fresh running statistics are mean 0, variance 1.
    close(
        &feature(&y, Mode::Eval)?,
        &expect(&zy, &|_| (0.0, 1.0)),
        "eval before training",
    );
    close(
        &feature(&x, Mode::Train)?,
        &expect(&zx, &|ch| (stats[ch].0, stats[ch].1)),
        "train",
    );
    let moved = |ch: usize| (0.1 * stats[ch].0, 0.9 + 0.1 * stats[ch].2);
    close(
        &feature(&y, Mode::Eval)?,
        &expect(&zy, &moved),
        "eval after one training pass",
    );
    // Eval leaves them where they are.
    close(&feature(&y, Mode::Eval)?, &expect(&zy, &moved), "eval twice");
    Ok(())
}
