//! The parameters-as-tensors forward (`Network::forward_with`, `logits_with`,
//! `embedding_with`) of every registered architecture: the same numbers and gradients as the
//! forward on the network's own parameters, the given tensors really used, the network left
//! untouched (BatchNorm's running statistics), and a list that does not fit refused.

use cafe_framework::registry::{plugins, ArchitecturePlugin};
use cafe_framework::rng::rng_from_seed;
use cafe_framework::{Architecture, ImageShape, Mode, Network, NetworkOutput, Result, Rng};
use cafe_plugins as _;
use candle_core::{DType, Device, Tensor, Var};
use rand::Rng as _;
use serde_json::json;

const CLASSES: usize = 10;
/// 1-channel 28x28: every family accepts it (VGG and AlexNet pad it to 32x32).
const INPUT: ImageShape = ImageShape::new(1, 28, 28);

fn randn(shape: &[usize], rng: &mut Rng) -> Result<Tensor> {
    let n = shape.iter().product();
    let data: Vec<f32> = (0..n).map(|_| rng.random::<f32>() * 2.0 - 1.0).collect();
    Ok(Tensor::from_vec(data, shape, &Device::Cpu)?)
}

fn bits(t: &Tensor) -> Result<Vec<u32>> {
    Ok(t.flatten_all()?.to_vec1::<f32>()?.iter().map(|v| v.to_bits()).collect())
}

fn assert_same(a: &Tensor, b: &Tensor, what: &str) -> Result<()> {
    assert_eq!(a.dims(), b.dims(), "{what}: shapes");
    assert!(bits(a)? == bits(b)?, "{what}: values differ");
    Ok(())
}

fn assert_same_output(a: &NetworkOutput, b: &NetworkOutput, what: &str) -> Result<()> {
    assert_same(&a.logits, &b.logits, &format!("{what} logits"))?;
    assert_same(&a.embedding, &b.embedding, &format!("{what} embedding"))?;
    assert_eq!(a.block_features.len(), b.block_features.len(), "{what}: block features");
    for (i, (f, g)) in a.block_features.iter().zip(&b.block_features).enumerate() {
        assert_same(f, g, &format!("{what} block feature {i}"))?;
    }
    Ok(())
}

/// Every registered architecture, ConvNets at width 8 (the others have fixed widths).
fn networks() -> Result<Vec<(&'static str, Box<dyn Network>)>> {
    let all: Vec<(&'static str, &'static ArchitecturePlugin)> =
        plugins::<dyn Architecture>()?.iter().map(|(k, v)| (*k, *v)).collect();
    assert!(all.len() >= 30, "{} architectures registered", all.len());
    all.into_iter()
        .enumerate()
        .map(|(seed, (name, plugin))| {
            let config = if name.starts_with("convnet") {
                json!({"width": 8})
            } else {
                json!({})
            };
            let net = plugin.instantiate(&config)?.build(
                INPUT,
                CLASSES,
                DType::F32,
                &Device::Cpu,
                &mut rng_from_seed(seed as u64),
            )?;
            Ok((name, net))
        })
        .collect()
}

/// Copies of the parameters in fresh storage, so that a pass on them cannot be reading the
/// network's own `Var`s.
fn copies(net: &dyn Network) -> Result<Vec<Var>> {
    net.parameters()
        .iter()
        .map(|p| Ok(Var::from_tensor(&p.as_tensor().copy()?)?))
        .collect()
}

#[test]
fn forward_with_equals_forward_bit_for_bit_with_the_same_gradients() -> Result<()> {
    let mut rng = rng_from_seed(11);
    for (name, net) in networks()? {
        let net = net.as_ref();
        let x = randn(&INPUT.batch_dims(2), &mut rng)?;
        let given = copies(net)?;
        let tensors: Vec<Tensor> = given.iter().map(|v| v.as_tensor().clone()).collect();

        // Train first on given parameters: a BatchNorm network's running statistics must not
        // move, so that Eval below sees the same statistics on both paths.
        let with = net.forward_with(&tensors, &x, Mode::Train)?;
        let own = net.forward(&x, Mode::Train)?;
        assert_same_output(&own, &with, &format!("{name} train"))?;
        assert_same_output(
            &net.forward(&x, Mode::Eval)?,
            &net.forward_with(&tensors, &x, Mode::Eval)?,
            &format!("{name} eval"),
        )?;
        assert_same(
            &net.logits(&x, Mode::Train)?,
            &net.logits_with(&tensors, &x, Mode::Train)?,
            &format!("{name} logits"),
        )?;
        assert_same(
            &net.embedding(&x, Mode::Train)?,
            &net.embedding_with(&tensors, &x, Mode::Train)?,
            &format!("{name} embedding"),
        )?;

        // The same gradients reach the given tensors as the network's own parameters.
        let r = randn(&[2, CLASSES], &mut rng)?;
        let g_own = (net.logits(&x, Mode::Train)? * &r)?.sum_all()?.backward()?;
        let g_with = (net.logits_with(&tensors, &x, Mode::Train)? * &r)?
            .sum_all()?
            .backward()?;
        for (i, (p, t)) in net.parameters().iter().zip(&tensors).enumerate() {
            assert!(
                g_with.get(p).is_none(),
                "{name}: the network's own parameter {i} got a gradient"
            );
            let (a, b) = (g_own.get(p), g_with.get(t));
            assert_eq!(
                a.is_some(),
                b.is_some(),
                "{name}: parameter {i} reached by one path only"
            );
            if let (Some(a), Some(b)) = (a, b) {
                assert_same(a, b, &format!("{name} gradient of parameter {i}"))?;
            }
        }
    }
    Ok(())
}

#[test]
fn given_parameters_are_used_and_leave_the_network_untouched() -> Result<()> {
    let mut rng = rng_from_seed(12);
    for (name, net) in networks()? {
        let net = net.as_ref();
        let x = randn(&INPUT.batch_dims(2), &mut rng)?;
        let before = net.forward(&x, Mode::Eval)?;
        let scaled: Vec<Tensor> = net
            .parameters()
            .iter()
            .map(|p| Ok((p.as_tensor() * 1.5)?))
            .collect::<Result<_>>()?;
        let moved = net.forward_with(&scaled, &x, Mode::Eval)?.logits;
        assert!(
            bits(&moved)? != bits(&before.logits)?,
            "{name}: given parameters ignored"
        );
        net.forward_with(&scaled, &x, Mode::Train)?;
        // Neither the parameters nor BatchNorm's running statistics changed.
        assert_same_output(
            &before,
            &net.forward(&x, Mode::Eval)?,
            &format!("{name} after passes on given parameters"),
        )?;
    }
    Ok(())
}

#[test]
fn parameter_lists_that_do_not_fit_are_errors() -> Result<()> {
    let mut rng = rng_from_seed(13);
    for (name, net) in networks()? {
        let net = net.as_ref();
        let x = randn(&INPUT.batch_dims(2), &mut rng)?;
        let tensors: Vec<Tensor> = net.parameters().iter().map(|p| p.as_tensor().clone()).collect();
        let n = tensors.len();
        let message = |params: &[Tensor]| match net.forward_with(params, &x, Mode::Train) {
            Ok(_) => panic!("{name}: {} tensors for {n} parameters accepted", params.len()),
            Err(e) => e.to_string(),
        };
        assert!(message(&tensors[..n - 1]).contains("has more"), "{name}");
        let mut longer = tensors.clone();
        longer.push(tensors[0].clone());
        assert!(message(&longer).contains(&format!("the network has {n}")), "{name}");
        // The classifier's weight where its bias belongs (shapes differ in every family).
        let mut swapped = tensors.clone();
        swapped.swap(n - 2, n - 1);
        assert!(
            message(&swapped).contains(&format!("parameter tensor {}", n - 2)),
            "{name}"
        );
        let f64s: Vec<Tensor> = tensors
            .iter()
            .map(|t| Ok(t.to_dtype(DType::F64)?))
            .collect::<Result<_>>()?;
        assert!(message(&f64s).contains("F64"), "{name}");
    }
    Ok(())
}
