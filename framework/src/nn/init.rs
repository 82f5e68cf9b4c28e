//! Random initialisation of parameters from our seeded [`Rng`] (candle's CPU RNG cannot be
//! seeded, CANDLE_NOTES 3).

use candle_core::{DType, Device, Tensor, Var};
use rand::Rng as _;

use crate::{Result, Rng};

/// A tensor of `shape` drawn from U(-bound, bound), as PyTorch's default init of `Conv2d` and
/// `Linear` (`kaiming_uniform_(a=sqrt(5))`, which comes to `bound = 1 / sqrt(fan_in)`, and the
/// same bound for the bias).
///
/// Draws in f64 whatever `dtype` is, so one seed gives the same network in f32 and f64.
pub fn uniform(shape: &[usize], bound: f64, dtype: DType, device: &Device, rng: &mut Rng) -> Result<Tensor> {
    let len = shape.iter().product();
    let data: Vec<f64> = (0..len).map(|_| (rng.random::<f64>() * 2.0 - 1.0) * bound).collect();
    Ok(Tensor::from_vec(data, shape, &Device::Cpu)?
        .to_dtype(dtype)?
        .to_device(device)?)
}

/// A trainable `Var` drawn as [`uniform`].
pub fn uniform_var(shape: &[usize], bound: f64, dtype: DType, device: &Device, rng: &mut Rng) -> Result<Var> {
    Ok(Var::from_tensor(&uniform(shape, bound, dtype, device, rng)?)?)
}

/// PyTorch's default bound for a layer whose every output sums `fan_in` inputs.
pub fn default_bound(fan_in: usize) -> f64 {
    1.0 / (fan_in.max(1) as f64).sqrt()
}

/// A trainable `Var` filled with `value` (norm scales start at 1, shifts at 0).
pub fn constant_var(shape: &[usize], value: f64, dtype: DType, device: &Device) -> Result<Var> {
    Ok(Var::from_tensor(&(Tensor::ones(shape, dtype, device)? * value)?)?)
}
