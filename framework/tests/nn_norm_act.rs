//! The fused block tail `pool(act(GroupNorm(x)))` (`GroupNorm::forward_activated`) against the
//! same layers written with candle tensor ops: values, gradients for the input, weight and bias
//! in both backward forms (the fused first-order kernel and the composed second-order ops),
//! second-order gradients, and central finite differences.
//!
//! Its own test binary, because second-order gradients are a process-wide candle switch.

use cafe_framework::nn::{
    avg_pool2x2_with_tensor_ops, first_order, group_normalize_with_tensor_ops, leaky_relu_with_tensor_ops, Activation,
    GroupNorm,
};
use cafe_framework::rng::rng_from_seed;
use cafe_framework::{Result, Rng};
use candle_core::{DType, Device, Tensor, Var};

mod support;
use support::{assert_close, finite_differences, randn};

/// One configuration of the block tail.
#[derive(Debug, Clone, Copy)]
struct Case {
    dims: [usize; 4],
    groups: usize,
    activation: Activation,
    pool: bool,
}

fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    // Odd sizes (a cropped pooling row and column), a batch of 3, instance and group norm.
    for dims in [[3, 4, 7, 5], [2, 4, 6, 6]] {
        for groups in [4, 2] {
            for activation in [Activation::Relu, Activation::LeakyRelu] {
                for pool in [true, false] {
                    out.push(Case {
                        dims,
                        groups,
                        activation,
                        pool,
                    });
                }
            }
        }
    }
    out
}

/// A GroupNorm with random weight and bias (a fresh one has 1 and 0, which hide mistakes).
fn random_norm(case: Case, dtype: DType, rng: &mut Rng) -> Result<GroupNorm> {
    let c = case.dims[1];
    let norm = GroupNorm::new(case.groups, c, dtype, &Device::Cpu)?;
    for p in norm.parameters() {
        p.set(&(randn(&[c], rng)? + 0.5)?.to_dtype(dtype)?)?;
    }
    Ok(norm)
}

/// The fused path.
fn fused(case: Case, norm: &GroupNorm, x: &Tensor) -> Result<Tensor> {
    norm.forward_activated(x, case.activation, case.pool)
}

/// The same block with candle tensor ops only.
fn reference(case: Case, norm: &GroupNorm, x: &Tensor) -> Result<Tensor> {
    let c = case.dims[1];
    let params = norm.parameters();
    let y = group_normalize_with_tensor_ops(x, case.groups, 1e-5)?
        .broadcast_mul(&params[0].as_tensor().reshape((1, c, 1, 1))?)?
        .broadcast_add(&params[1].as_tensor().reshape((1, c, 1, 1))?)?;
    let y = match case.activation {
        Activation::Relu => y.relu()?,
        Activation::LeakyRelu => leaky_relu_with_tensor_ops(&y)?,
        Activation::Sigmoid => unreachable!("not a fused activation"),
    };
    if case.pool {
        avg_pool2x2_with_tensor_ops(&y)
    } else {
        Ok(y)
    }
}

type Block = fn(Case, &GroupNorm, &Tensor) -> Result<Tensor>;

/// Output, gradients of `L = sum(y^2 r)` for x, weight, bias, and the gradient w.r.t. x of
/// `S = <dL/dx, q> + <dL/dweight, qw>` (second order, as DC differentiates gradients).
struct Derivatives {
    y: Tensor,
    grads: [Tensor; 3],
    second: Option<Tensor>,
}

fn derivatives(
    block: Block,
    case: Case,
    norm: &GroupNorm,
    x: &Tensor,
    r: &Tensor,
    second: Option<(&Tensor, &Tensor)>,
) -> Result<Derivatives> {
    let xv = Var::from_tensor(x)?;
    let y = block(case, norm, &xv)?;
    let params = norm.parameters();
    let loss = (y.sqr()? * r)?.sum_all()?;
    let mut store = if second.is_some() {
        loss.backward()?
    } else {
        first_order(|| loss.backward())?
    };
    let mut take = |t: &Tensor| store.remove(t).expect("gradient");
    let grads = [take(&xv), take(params[0].as_tensor()), take(params[1].as_tensor())];
    let second = match second {
        Some((q, qw)) => {
            let s = ((&grads[0] * q)?.sum_all()? + (&grads[1] * qw)?.sum_all()?)?;
            Some(s.backward()?.remove(&xv).expect("second-order gradient"))
        }
        None => None,
    };
    Ok(Derivatives { y, grads, second })
}

#[test]
fn fused_block_matches_the_separate_layers_in_both_backward_forms() -> Result<()> {
    // Read by candle once per thread at its first backward: set before any backward here.
    std::env::set_var("CANDLE_GRAD_DO_NOT_DETACH", "1");
    let mut rng = rng_from_seed(7);
    for case in cases() {
        let norm = random_norm(case, DType::F64, &mut rng)?;
        let x = randn(&case.dims, &mut rng)?;
        let out_dims = reference(case, &norm, &x)?.dims().to_vec();
        let r = randn(&out_dims, &mut rng)?;
        let (q, qw) = (randn(&case.dims, &mut rng)?, randn(&[case.dims[1]], &mut rng)?);
        let want = derivatives(reference, case, &norm, &x, &r, Some((&q, &qw)))?;
        let composed = derivatives(fused, case, &norm, &x, &r, Some((&q, &qw)))?;
        let kernel = derivatives(fused, case, &norm, &x, &r, None)?;
        let what = format!("{case:?}");
        assert_close(&composed.y, &want.y, 1e-12, &format!("{what} value"))?;
        for (i, name) in ["dx", "dweight", "dbias"].iter().enumerate() {
            assert_close(
                &composed.grads[i],
                &want.grads[i],
                1e-11,
                &format!("{what} composed {name}"),
            )?;
            assert_close(
                &kernel.grads[i],
                &want.grads[i],
                1e-11,
                &format!("{what} fused kernel {name}"),
            )?;
        }
        assert_close(
            composed.second.as_ref().expect("second"),
            want.second.as_ref().expect("second"),
            1e-10,
            &format!("{what} second order"),
        )?;
        // The first-order kernel hands back plain tensors: nothing of the graph stays alive.
        assert!(!kernel.grads[0].track_op(), "{what}: first-order dx carries a graph");

        // f32 runs the same kernels, within f32 accuracy.
        let norm32 = random_norm(case, DType::F32, &mut rng_from_seed(7))?;
        let norm64 = random_norm(case, DType::F64, &mut rng_from_seed(7))?;
        let (x32, r32) = (x.to_dtype(DType::F32)?, r.to_dtype(DType::F32)?);
        let got = derivatives(fused, case, &norm32, &x32, &r32, None)?;
        let want64 = derivatives(reference, case, &norm64, &x, &r, None)?;
        assert_close(&got.y, &want64.y, 1e-5, &format!("{what} f32 value"))?;
        for i in 0..3 {
            assert_close(
                &got.grads[i],
                &want64.grads[i],
                1e-4,
                &format!("{what} f32 gradient {i}"),
            )?;
        }
    }
    Ok(())
}

#[test]
fn fused_kernel_gradients_match_finite_differences() -> Result<()> {
    let mut rng = rng_from_seed(11);
    for case in cases().into_iter().filter(|c| c.dims == [3, 4, 7, 5]) {
        let norm = random_norm(case, DType::F64, &mut rng)?;
        let x = randn(&case.dims, &mut rng)?;
        let r = randn(fused(case, &norm, &x)?.dims(), &mut rng)?;
        let got = derivatives(fused, case, &norm, &x, &r, None)?;
        let loss_at =
            |x: &Tensor| -> Result<f64> { Ok((fused(case, &norm, x)?.sqr()? * &r)?.sum_all()?.to_scalar::<f64>()?) };
        let fd = finite_differences(&loss_at, &x)?;
        assert_close(
            &got.grads[0],
            &Tensor::new(fd, &Device::Cpu)?.reshape(&case.dims[..])?,
            1e-6,
            &format!("{case:?} dx vs FD"),
        )?;
        for (i, p) in norm.parameters().iter().enumerate() {
            let original = p.as_tensor().copy()?;
            let loss_at_param = |v: &Tensor| -> Result<f64> {
                p.set(v)?;
                loss_at(&x)
            };
            let fd = finite_differences(&loss_at_param, &original)?;
            p.set(&original)?;
            assert_close(
                &got.grads[i + 1],
                &Tensor::new(fd, &Device::Cpu)?,
                1e-6,
                &format!("{case:?} param {i} vs FD"),
            )?;
        }
    }
    Ok(())
}
