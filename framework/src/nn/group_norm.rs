//! Group normalisation (Wu & He 2018) with a per-channel affine transform, as PyTorch's
//! `nn.GroupNorm`; instance norm is the case `groups == channels` (DC's `instancenorm`).

use candle_core::{DType, Device, Tensor, Var};

use super::activation::{Activation, LEAKY_RELU_SLOPE};
use super::channel_op;
use super::cpu_op::native;
use super::group_norm_op;
use super::init::constant_var;
use super::norm::activate_then_pool;
use super::norm_act_op;
use super::param_source::ParamSource;
use crate::{Error, Result};

/// PyTorch's default epsilon for GroupNorm, LayerNorm and BatchNorm.
pub const NORM_EPS: f64 = 1e-5;

/// `(x - mean) / sqrt(var + eps)` over each group of `channels / groups` channels and all
/// pixels of one image, with the biased variance. Differentiable to second order. On the CPU
/// in f32/f64 a fused op; elsewhere [`group_normalize_with_tensor_ops`].
///
/// # Shapes
/// `[n, c, h, w] -> [n, c, h, w]`, `c` divisible by `groups`.
pub fn group_normalize(x: &Tensor, groups: usize, eps: f64) -> Result<Tensor> {
    let (_, c, _, _) = x.dims4()?;
    if groups == 0 || !c.is_multiple_of(groups) {
        return Err(Error::invalid(
            "group norm groups",
            groups,
            format!("must divide the {c} channels"),
        ));
    }
    if native(x) && x.elem_count() > 0 {
        return group_norm_op::normalize(x, groups, eps);
    }
    group_normalize_with_tensor_ops(x, groups, eps)
}

/// [`group_normalize`] written with candle tensor ops: what runs off the CPU, and the
/// reference the fused op is tested against.
pub fn group_normalize_with_tensor_ops(x: &Tensor, groups: usize, eps: f64) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    if groups == 0 || !c.is_multiple_of(groups) {
        return Err(Error::invalid(
            "group norm groups",
            groups,
            format!("must divide the {c} channels"),
        ));
    }
    let xg = x.reshape((n, groups, (c / groups) * h * w))?;
    let mean = xg.mean_keepdim(2)?;
    let centered = xg.broadcast_sub(&mean)?;
    let var = centered.sqr()?.mean_keepdim(2)?;
    // The reciprocal is taken on the small [n, groups, 1] tensor: one multiply per pixel
    // instead of one divide.
    let inv_std = (var + eps)?.sqrt()?.recip()?;
    Ok(centered.broadcast_mul(&inv_std)?.reshape((n, c, h, w))?)
}

/// Scales and shifts each channel: `x * weight[c] + bias[c]` (a fused op on the CPU).
pub(crate) fn channel_affine(x: &Tensor, weight: &Tensor, bias: &Tensor) -> Result<Tensor> {
    if native(x) {
        return channel_op::channel_affine(x, Some(weight), Some(bias));
    }
    let c = weight.dim(0)?;
    let x = x.broadcast_mul(&weight.reshape((1, c, 1, 1))?)?;
    Ok(x.broadcast_add(&bias.reshape((1, c, 1, 1))?)?)
}

/// `nn.GroupNorm(groups, channels, eps=1e-5, affine=True)`: weight 1, bias 0 at start.
#[derive(Debug, Clone)]
pub struct GroupNorm {
    groups: usize,
    weight: Var,
    bias: Var,
}

impl GroupNorm {
    pub fn new(groups: usize, channels: usize, dtype: DType, device: &Device) -> Result<Self> {
        if groups == 0 || !channels.is_multiple_of(groups) {
            return Err(Error::invalid(
                "GroupNorm groups",
                groups,
                format!("must divide the {channels} channels"),
            ));
        }
        Ok(Self {
            groups,
            weight: constant_var(&[channels], 1.0, dtype, device)?,
            bias: constant_var(&[channels], 0.0, dtype, device)?,
        })
    }

    /// Instance norm: one group per channel.
    pub fn instance(channels: usize, dtype: DType, device: &Device) -> Result<Self> {
        Self::new(channels, channels, dtype, device)
    }

    /// # Shapes
    /// `[n, channels, h, w] -> [n, channels, h, w]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_with(x, &mut ParamSource::own())
    }

    /// [`GroupNorm::forward`] with the weight and bias taken from `params`.
    pub fn forward_with(&self, x: &Tensor, params: &mut ParamSource) -> Result<Tensor> {
        let (weight, bias) = (params.take(&self.weight)?, params.take(&self.bias)?);
        let c = self.weight.dim(0)?;
        if x.rank() != 4 || x.dim(1)? != c {
            return Err(Error::invalid(
                "GroupNorm input",
                format!("{:?}", x.dims()),
                format!("must be [n, {c}, h, w]"),
            ));
        }
        channel_affine(&group_normalize(x, self.groups, NORM_EPS)?, &weight, &bias)
    }

    /// `activation(self.forward(x))`, then 2x2 average pooling when `avg_pool`: one fused op
    /// (`norm_act_op`) for (leaky) ReLU on the CPU in f32/f64, which keeps a quarter of the
    /// activations alive for the backward pass; the layers one after another otherwise.
    ///
    /// # Shapes
    /// `[n, channels, h, w] -> [n, channels, h, w]`, or `[n, channels, h/2, w/2]` pooled.
    pub fn forward_activated(&self, x: &Tensor, activation: Activation, avg_pool: bool) -> Result<Tensor> {
        self.forward_activated_with(x, activation, avg_pool, &mut ParamSource::own())
    }

    /// [`GroupNorm::forward_activated`] with the weight and bias taken from `params`; the
    /// fused op differentiates to second order, so an unrolled student keeps it.
    pub fn forward_activated_with(
        &self,
        x: &Tensor,
        activation: Activation,
        avg_pool: bool,
        params: &mut ParamSource,
    ) -> Result<Tensor> {
        let slope = match activation {
            Activation::Relu => Some(0.0),
            Activation::LeakyRelu => Some(LEAKY_RELU_SLOPE),
            Activation::Sigmoid => None,
        };
        // The fused op needs `[n, channels, h, w]`, and a map that 2x2 pooling can halve; any
        // other input goes the unfused way, whose layers give the errors.
        let fits = match *x.dims() {
            [_, c, h, w] => c == self.weight.dim(0)? && (!avg_pool || (h >= 2 && w >= 2)),
            _ => false,
        };
        match slope {
            Some(slope) if native(x) && x.elem_count() > 0 && fits => {
                let (weight, bias) = (params.take(&self.weight)?, params.take(&self.bias)?);
                norm_act_op::norm_act(x, &weight, &bias, self.groups, NORM_EPS, slope, avg_pool)
            }
            _ => activate_then_pool(&self.forward_with(x, params)?, activation, avg_pool),
        }
    }

    pub fn groups(&self) -> usize {
        self.groups
    }

    /// Weight, then bias (PyTorch's order).
    pub fn parameters(&self) -> Vec<Var> {
        vec![self.weight.clone(), self.bias.clone()]
    }
}
