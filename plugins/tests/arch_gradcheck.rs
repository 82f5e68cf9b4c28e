//! Contract tests over every registered ConvNet variant: the registered names, output shapes,
//! and autograd against central finite differences in f64 (w.r.t. input pixels and
//! parameters), plus second order through a whole network and BatchNorm's two modes.

mod support;

use std::collections::BTreeMap;

use cafe_framework::nn::first_order;
use cafe_framework::registry::{find, plugins, ArchitecturePlugin};
use cafe_framework::rng::rng_from_seed;
use cafe_framework::{Architecture, ImageShape, Mode, Network, Result};
use cafe_plugins as _;
use candle_core::{DType, Device, Tensor, Var};
use rand::Rng as _;
use serde_json::{json, Value};
use support::{uniform, Probe};

const CLASSES: usize = 10;
/// Small enough for finite differences over many variants, a multiple of groupnorm's 4 groups.
const WIDTH: usize = 8;

fn convnets() -> Result<BTreeMap<&'static str, &'static ArchitecturePlugin>> {
    Ok(plugins::<dyn Architecture>()?
        .iter()
        .filter(|(name, _)| name.starts_with("convnet"))
        .map(|(k, v)| (*k, *v))
        .collect())
}

/// What each variant must be, written from DC's naming (W = width, D = depth, A = activation,
/// N = norm, P = pooling), independently of the plugin code.
fn expected_config(name: &str) -> Value {
    let mut c =
        json!({"width": 128, "depth": 3, "activation": "relu", "norm": "instancenorm", "pooling": "avgpooling"});
    let suffix = &name["convnet".len()..];
    let (key, value): (&str, Value) = match suffix {
        "" => return c,
        "w32" | "w64" | "w128" | "w256" => ("width", json!(suffix[1..].parse::<u64>().unwrap())),
        "d1" | "d2" | "d3" | "d4" => ("depth", json!(suffix[1..].parse::<u64>().unwrap())),
        "as" => ("activation", json!("sigmoid")),
        "ar" => ("activation", json!("relu")),
        "al" => ("activation", json!("leakyrelu")),
        "nn" => ("norm", json!("none")),
        "bn" => ("norm", json!("batchnorm")),
        "ln" => ("norm", json!("layernorm")),
        "in" => ("norm", json!("instancenorm")),
        "gn" => ("norm", json!("groupnorm")),
        "np" => ("pooling", json!("none")),
        "mp" => ("pooling", json!("maxpooling")),
        "ap" => ("pooling", json!("avgpooling")),
        other => panic!("unexpected convnet variant suffix '{other}'"),
    };
    c[key] = value;
    c
}

#[test]
fn every_convnet_variant_is_registered() -> Result<()> {
    let names: Vec<&str> = convnets()?.into_keys().collect();
    let expected = [
        "convnet",
        "convnetal",
        "convnetap",
        "convnetar",
        "convnetas",
        "convnetbn",
        "convnetd1",
        "convnetd2",
        "convnetd3",
        "convnetd4",
        "convnetgn",
        "convnetin",
        "convnetln",
        "convnetmp",
        "convnetnn",
        "convnetnp",
        "convnetw128",
        "convnetw256",
        "convnetw32",
        "convnetw64",
    ];
    assert_eq!(names, expected);
    for (name, plugin) in convnets()? {
        assert_eq!(
            (plugin.default_config)(),
            expected_config(name),
            "{name} default config"
        );
        // A partial override keeps the variant's other settings.
        let resolved = plugin.resolve_config(&json!({"width": WIDTH}));
        let mut want = expected_config(name);
        want["width"] = json!(WIDTH);
        assert_eq!(resolved, want, "{name} with width {WIDTH}");
        let built = (plugin.build)(&json!({"width": WIDTH}))?;
        assert_eq!(built.uses_batch_norm(), want["norm"] == "batchnorm", "{name}");
    }
    Ok(())
}

#[test]
fn bad_configs_are_errors() -> Result<()> {
    let plugin = find::<dyn Architecture>("convnet")?;
    for bad in [
        json!({"width": 0}),
        json!({"depth": 0}),
        json!({"norm": "groupnorm", "width": 6}),
        json!({"widht": 3}),
    ] {
        assert!(plugin.instantiate(&bad).is_err(), "{bad}");
    }
    // Depth 6 pools a 28x28 input below 2x2 (32 16 8 4 2 1): refused at build time.
    let arch = plugin.instantiate(&json!({"depth": 6, "width": WIDTH}))?;
    assert!(arch
        .build(
            ImageShape::new(1, 28, 28),
            CLASSES,
            DType::F64,
            &Device::Cpu,
            &mut rng_from_seed(0)
        )
        .is_err());
    // A wrongly shaped batch is an error, not a panic.
    let net = plugin.instantiate(&json!({"width": WIDTH}))?.build(
        ImageShape::new(3, 32, 32),
        CLASSES,
        DType::F64,
        &Device::Cpu,
        &mut rng_from_seed(0),
    )?;
    assert!(net
        .forward(&Tensor::zeros((2, 1, 28, 28), DType::F64, &Device::Cpu)?, Mode::Train)
        .is_err());
    Ok(())
}

/// Builds `name` with width [`WIDTH`] in f64.
fn build(name: &str, input: ImageShape, seed: u64) -> Result<Box<dyn Network>> {
    let arch = find::<dyn Architecture>(name)?.instantiate(&json!({"width": WIDTH}))?;
    arch.build(input, CLASSES, DType::F64, &Device::Cpu, &mut rng_from_seed(seed))
}

/// Spatial size after each block, computed from DC's rules: pad 3 for the first conv of a
/// 1-channel 28x28 input, else 1 (3x3 kernels keep the size), then floor halving when pooling.
fn block_sizes(config: &Value, input: ImageShape) -> Vec<(usize, usize)> {
    let mut h = input.height;
    let mut w = input.width;
    if input.channels == 1 && h == 28 && w == 28 {
        (h, w) = (32, 32);
    }
    let pool = config["pooling"] != "none";
    (0..config["depth"].as_u64().unwrap())
        .map(|_| {
            let before = (h, w);
            if pool {
                (h, w) = (h / 2, w / 2);
            }
            before
        })
        .collect()
}

const SHAPES: [ImageShape; 2] = [ImageShape::new(1, 28, 28), ImageShape::new(3, 32, 32)];

#[test]
fn output_shapes() -> Result<()> {
    for name in convnets()?.into_keys() {
        let mut config = expected_config(name);
        config["width"] = json!(WIDTH);
        for input in SHAPES {
            let net = build(name, input, 1)?;
            let out = net.forward(&uniform(&input.batch_dims(2), &mut rng_from_seed(2))?, Mode::Train)?;
            let sizes = block_sizes(&config, input);
            let (h, w) = *sizes.last().unwrap();
            let (h, w) = if config["pooling"] == "none" {
                (h, w)
            } else {
                (h / 2, w / 2)
            };
            assert_eq!(out.logits.dims(), [2, CLASSES], "{name} {input}");
            assert_eq!(out.embedding.dims(), [2, WIDTH * h * w], "{name} {input}");
            let feature_dims: Vec<Vec<usize>> = out.block_features.iter().map(|f| f.dims().to_vec()).collect();
            let want: Vec<Vec<usize>> = sizes.iter().map(|&(h, w)| vec![2, WIDTH, h, w]).collect();
            assert_eq!(feature_dims, want, "{name} {input}");
            assert_eq!(net.has_batch_norm(), config["norm"] == "batchnorm", "{name}");
        }
    }
    Ok(())
}

/// A central difference, whether a kink spoils it, and its rounding noise.
struct Difference {
    value: f64,
    /// A ReLU or max-pool kink lies within eps of the point, where a central difference does
    /// not estimate the derivative. Seen as the differences at eps and eps/2 disagreeing: for
    /// a smooth function they differ by O(eps^2), for a kink by a fraction of the slope jump.
    kink: bool,
    /// What rounding in the function values alone can make of the difference (it matters where
    /// the true derivative is ~0, e.g. a conv bias followed by a norm).
    noise: f64,
}

/// Central difference of `f` around a point moved by `f(+-eps)`.
fn central(f: &mut dyn FnMut(f64) -> Result<f64>, eps: f64) -> Result<Difference> {
    let (plus, minus) = (f(eps)?, f(-eps)?);
    let (half_plus, half_minus) = (f(eps / 2.0)?, f(-eps / 2.0)?);
    let value = (plus - minus) / (2.0 * eps);
    let half = (half_plus - half_minus) / eps;
    let noise = 64.0 * f64::EPSILON * (plus.abs() + minus.abs()) / (2.0 * eps);
    let kink = (value - half).abs() > 0.25 * REL_TOL * value.abs().max(half.abs()) + 3.0 * noise;
    Ok(Difference { value, kink, noise })
}

const EPS: f64 = 1e-5;
const REL_TOL: f64 = 1e-5;

/// Checks autograd w.r.t. ~20 input pixels and ~30 parameter scalars of `net` at a random
/// batch of 2; returns how many points were skipped for lying at a kink.
fn gradcheck(name: &str, net: &dyn Network, input: ImageShape, seed: u64) -> Result<usize> {
    let mut rng = rng_from_seed(seed);
    let x = uniform(&input.batch_dims(2), &mut rng)?;
    let probe = Probe::new(net, &x, &mut rng)?;
    let xv = Var::from_tensor(&x)?;
    let grads = probe.value(net, &xv)?.backward()?;
    let params = net.parameters();
    // The function values carry rounding from summing many terms, so a difference whose true
    // value is ~0 (a conv bias followed by a norm) reads as ~1e-9; gradients are compared
    // relative to their size, with this floor from the largest gradient of the network.
    let mut largest = 0.0_f64;
    for t in std::iter::once(xv.as_tensor()).chain(params.iter().map(|p| p.as_tensor())) {
        let g = grads.get(t).expect("gradient reaches the pixels and every parameter");
        largest = largest.max(g.abs()?.flatten_all()?.max(0)?.to_scalar::<f64>()?);
    }
    let floor = 1e-7 * largest;
    let mut skipped = 0;
    let mut check = |what: String, auto: f64, fd: Difference| {
        if fd.kink {
            skipped += 1;
            return;
        }
        let err = (auto - fd.value).abs();
        let tol = REL_TOL * auto.abs().max(fd.value.abs()) + fd.noise + floor;
        assert!(
            err <= tol,
            "{name} {input} {what}: autograd {auto} vs finite differences {}",
            fd.value
        );
    };

    let gx: Vec<f64> = grads.get(&xv).expect("pixel gradient").flatten_all()?.to_vec1()?;
    let base: Vec<f64> = x.flatten_all()?.to_vec1()?;
    for _ in 0..20 {
        let i = rng.random_range(0..base.len());
        let fd = central(
            &mut |d| {
                let mut v = base.clone();
                v[i] += d;
                Ok(probe
                    .value(net, &Tensor::from_vec(v, x.dims(), &Device::Cpu)?)?
                    .to_scalar::<f64>()?)
            },
            EPS,
        )?;
        check(format!("d/dx[{i}]"), gx[i], fd);
    }

    for (p_index, p) in params.iter().enumerate() {
        let g: Vec<f64> = grads.get(p).expect("parameter gradient").flatten_all()?.to_vec1()?;
        let original = p.as_tensor().copy()?;
        let values: Vec<f64> = original.flatten_all()?.to_vec1()?;
        for _ in 0..3 {
            let i = rng.random_range(0..values.len());
            let fd = central(
                &mut |d| {
                    let mut v = values.clone();
                    v[i] += d;
                    p.set(&Tensor::from_vec(v, p.dims(), &Device::Cpu)?)?;
                    Ok(probe.value(net, &x)?.to_scalar::<f64>()?)
                },
                EPS,
            )?;
            p.set(&original)?;
            check(format!("d/dparam{p_index}[{i}]"), g[i], fd);
        }
    }
    Ok(skipped)
}

#[test]
fn every_convnet_variant_passes_gradcheck() -> Result<()> {
    let mut cases: Vec<(&str, ImageShape)> = vec![];
    for name in convnets()?.into_keys() {
        for input in SHAPES {
            cases.push((name, input));
        }
    }
    // 30 -> 15 -> 7 -> 3 -> 1: every pooling of depth 4 sees an odd map.
    cases.push(("convnetd4", ImageShape::new(3, 30, 30)));
    cases.push(("convnetmp", ImageShape::new(2, 15, 13)));
    let mut skipped = 0;
    for (seed, (name, input)) in cases.iter().enumerate() {
        let net = build(name, *input, seed as u64)?;
        skipped += gradcheck(name, net.as_ref(), *input, 100 + seed as u64)?;
    }
    // Kinks within 1e-5 of a sample point are rare; many would mean the check checks little.
    eprintln!("{skipped} of about {} points skipped at kinks", cases.len() * 80);
    assert!(skipped <= cases.len(), "{skipped} points skipped at kinks");
    Ok(())
}

/// DC differentiates the weight gradients w.r.t. the synthetic pixels: here
/// `S = sum_p <dL/dp, q_p>` for `L = <logits, r> + <embedding, s> + ...`, and dS/dx must match
/// finite differences of S through whole networks (conv, norms, activations, pooling).
#[test]
fn second_order_through_convnets_matches_finite_differences() -> Result<()> {
    // candle reads the switch once per thread, at its first backward: set before any here.
    std::env::set_var("CANDLE_GRAD_DO_NOT_DETACH", "1");
    let input = ImageShape::new(1, 28, 28);
    let mut skipped = 0;
    for (seed, name) in [
        "convnet",
        "convnetbn",
        "convnetln",
        "convnetmp",
        "convnetas",
        "convnetal",
    ]
    .into_iter()
    .enumerate()
    {
        let net = build(name, input, seed as u64)?;
        let mut rng = rng_from_seed(200 + seed as u64);
        let x = uniform(&input.batch_dims(2), &mut rng)?;
        let probe = Probe::new(net.as_ref(), &x, &mut rng)?;
        let params = net.parameters();
        let q: Vec<Tensor> = params
            .iter()
            .map(|p| uniform(p.dims(), &mut rng))
            .collect::<Result<_>>()?;
        let s_of = |x: &Tensor| -> Result<Tensor> {
            let g = probe.value(net.as_ref(), x)?.backward()?;
            let mut s = Tensor::new(0.0, &Device::Cpu)?;
            for (p, q) in params.iter().zip(&q) {
                s = (s + (g.get(p).expect("parameter gradient") * q)?.sum_all()?)?;
            }
            Ok(s)
        };
        let xv = Var::from_tensor(&x)?;
        let auto: Vec<f64> = s_of(&xv)?
            .backward()?
            .get(&xv)
            .expect("second order reaches x")
            .flatten_all()?
            .to_vec1()?;
        let base: Vec<f64> = x.flatten_all()?.to_vec1()?;
        for _ in 0..8 {
            let i = rng.random_range(0..base.len());
            let fd = central(
                &mut |d| {
                    let mut v = base.clone();
                    v[i] += d;
                    Ok(s_of(&Tensor::from_vec(v, x.dims(), &Device::Cpu)?)?.to_scalar::<f64>()?)
                },
                EPS,
            )?;
            if fd.kink {
                skipped += 1;
                continue;
            }
            let err = (auto[i] - fd.value).abs();
            let tol = 1e-5 * auto[i].abs().max(fd.value.abs()) + fd.noise;
            assert!(
                err <= tol,
                "{name} d2/dx[{i}]: autograd {} vs finite differences {}",
                auto[i],
                fd.value
            );
        }
    }
    eprintln!("{skipped} of 48 points skipped at kinks");
    assert!(skipped <= 6, "{skipped} points skipped at kinks");
    Ok(())
}

/// BatchNorm in a ConvNet against numbers computed by hand: a depth-1 `batchnorm` net with
/// sigmoid and no pooling exposes sigmoid(BN(conv(x))) as its block feature; the conv is
/// recomputed with candle's own `conv2d` from the network's parameters.
#[test]
fn batch_norm_train_and_eval_match_hand_computed() -> Result<()> {
    let config = json!({"width": 3, "depth": 1, "norm": "batchnorm", "activation": "sigmoid", "pooling": "none"});
    let arch = find::<dyn Architecture>("convnet")?.instantiate(&config)?;
    assert!(arch.uses_batch_norm());
    let input = ImageShape::new(2, 5, 4);
    let net = arch.build(input, CLASSES, DType::F64, &Device::Cpu, &mut rng_from_seed(7))?;
    let x = uniform(&input.batch_dims(3), &mut rng_from_seed(8))?;
    let p = net.parameters();
    let conv = x
        .conv2d(&p[0], 1, 1, 1, 1)?
        .broadcast_add(&p[1].reshape((1, 3, 1, 1))?)?;
    let z: Vec<Vec<Vec<f64>>> = conv.flatten_from(2)?.to_vec3()?;
    // Per channel over (n, h, w): mean, biased and unbiased variance.
    let count = (3 * 5 * 4) as f64;
    let stats: Vec<(f64, f64, f64)> = (0..3)
        .map(|c| {
            let vals: Vec<f64> = z.iter().flat_map(|img| img[c].iter().copied()).collect();
            let mean = vals.iter().sum::<f64>() / count;
            let ss = vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>();
            (mean, ss / count, ss / (count - 1.0))
        })
        .collect();
    let sigmoid = |v: f64| 1.0 / (1.0 + (-v).exp());
    let expect = |norm: &dyn Fn(usize, f64) -> f64| -> Vec<f64> {
        z.iter()
            .flat_map(|img| (0..3).flat_map(move |c| img[c].iter().map(move |&v| sigmoid(norm(c, v)))))
            .collect()
    };
    let feature =
        |mode: Mode| -> Result<Vec<f64>> { Ok(net.forward(&x, mode)?.block_features[0].flatten_all()?.to_vec1()?) };
    let close = |a: &[f64], b: &[f64], what: &str| {
        let d = a.iter().zip(b).fold(0.0_f64, |m, (a, b)| m.max((a - b).abs()));
        assert!(d < 1e-12, "{what}: max difference {d}");
    };
    // Fresh running statistics are mean 0, variance 1.
    close(
        &feature(Mode::Eval)?,
        &expect(&|_, v| v / (1.0 + 1e-5_f64).sqrt()),
        "eval before training",
    );
    close(
        &feature(Mode::Train)?,
        &expect(&|c, v| (v - stats[c].0) / (stats[c].1 + 1e-5).sqrt()),
        "train",
    );
    // One training pass moved the running statistics by momentum 0.1 toward the batch's mean
    // and unbiased variance.
    let eval = expect(&|c, v| {
        let (mean, var) = (0.1 * stats[c].0, 0.9 + 0.1 * stats[c].2);
        (v - mean) / (var + 1e-5).sqrt()
    });
    close(&feature(Mode::Eval)?, &eval, "eval after one training pass");
    // Eval does not move them again.
    close(&feature(Mode::Eval)?, &eval, "eval twice");
    Ok(())
}

/// `logits` (and `embedding`) alone skip the block features, and where the pooling is average it joins the
/// fused norm-activation op: a different code path from `forward`, which the finite-difference
/// checks above go through. Both must give the same logits and the same gradients, for every
/// variant and at the odd map sizes.
#[test]
fn logits_alone_match_the_full_forward_with_gradients() -> Result<()> {
    let mut cases: Vec<(&str, ImageShape)> = convnets()?
        .into_keys()
        .flat_map(|name| SHAPES.map(|input| (name, input)))
        .collect();
    cases.push(("convnetd4", ImageShape::new(3, 30, 30)));
    let mut rng = rng_from_seed(21);
    for (seed, (name, input)) in cases.into_iter().enumerate() {
        let net = build(name, input, seed as u64)?;
        let x = Var::from_tensor(&uniform(&input.batch_dims(3), &mut rng)?)?;
        let r = uniform(&[3, CLASSES], &mut rng)?;
        let full_out = net.forward(&x, Mode::Train)?;
        let embedding: Vec<f64> = net.embedding(&x, Mode::Train)?.flatten_all()?.to_vec1()?;
        for (u, v) in full_out
            .embedding
            .flatten_all()?
            .to_vec1::<f64>()?
            .iter()
            .zip(&embedding)
        {
            assert!(
                (u - v).abs() <= 1e-12 * u.abs().max(1.0),
                "{name} {input}: embedding {u} vs {v}"
            );
        }
        let full = full_out.logits;
        let alone = net.logits(&x, Mode::Train)?;
        let (a, b): (Vec<f64>, Vec<f64>) = (full.flatten_all()?.to_vec1()?, alone.flatten_all()?.to_vec1()?);
        for (u, v) in a.iter().zip(&b) {
            assert!(
                (u - v).abs() <= 1e-12 * u.abs().max(1.0),
                "{name} {input}: logits {u} vs {v}"
            );
        }
        let grads_full = first_order(|| (&full * &r)?.sum_all()?.backward())?;
        let grads_alone = first_order(|| (&alone * &r)?.sum_all()?.backward())?;
        let mut wrt: Vec<Tensor> = net.parameters().iter().map(|p| p.as_tensor().clone()).collect();
        wrt.push(x.as_tensor().clone());
        for (i, t) in wrt.iter().enumerate() {
            let (g1, g2) = (grads_full.get(t), grads_alone.get(t));
            assert_eq!(
                g1.is_some(),
                g2.is_some(),
                "{name} {input}: tensor {i} reached by one path only"
            );
            let (Some(g1), Some(g2)) = (g1, g2) else { continue };
            let (g1, g2): (Vec<f64>, Vec<f64>) = (g1.flatten_all()?.to_vec1()?, g2.flatten_all()?.to_vec1()?);
            let scale = g1.iter().fold(1.0_f64, |m, v| m.max(v.abs()));
            for (u, v) in g1.iter().zip(&g2) {
                assert!(
                    (u - v).abs() <= 1e-10 * scale,
                    "{name} {input}: gradient {i}: {u} vs {v}"
                );
            }
        }
    }
    Ok(())
}
