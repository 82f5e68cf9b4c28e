//! Activations whose backward is itself differentiable (second-order gradients for DC).

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use super::activation_op::rectify;
use super::cpu_op::native;
use crate::Result;

/// Negative slope of [`leaky_relu`]: PyTorch's default, which DC's `nn.LeakyReLU` uses.
pub const LEAKY_RELU_SLOPE: f64 = 0.01;

/// The activations DC's networks choose from; names as in DC's `net_act`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    #[default]
    Relu,
    Sigmoid,
    LeakyRelu,
}

impl Activation {
    pub fn forward(self, x: &Tensor) -> Result<Tensor> {
        match self {
            Activation::Relu => relu(x),
            Activation::Sigmoid => sigmoid(x),
            Activation::LeakyRelu => leaky_relu(x),
        }
    }
}

/// `max(x, 0)`; the gradient at 0 is 0, as in PyTorch. A fused op on the CPU in f32/f64.
pub fn relu(x: &Tensor) -> Result<Tensor> {
    if native(x) {
        return rectify(x, 0.0);
    }
    Ok(x.relu()?)
}

/// candle-nn's sigmoid: numerically stable, and its backward is built from its output so it
/// differentiates again.
pub fn sigmoid(x: &Tensor) -> Result<Tensor> {
    Ok(candle_nn::ops::sigmoid(x)?)
}

/// `x` where `x > 0`, else `0.01 x`; the gradient at exactly 0 is the slope, as in PyTorch.
/// A fused op on the CPU in f32/f64, otherwise [`leaky_relu_with_tensor_ops`].
pub fn leaky_relu(x: &Tensor) -> Result<Tensor> {
    if native(x) {
        return rectify(x, LEAKY_RELU_SLOPE);
    }
    leaky_relu_with_tensor_ops(x)
}

/// [`leaky_relu`] as a select (not `max(x, 0.01 x)`, whose gradient at 0 would be split).
pub fn leaky_relu_with_tensor_ops(x: &Tensor) -> Result<Tensor> {
    Ok(x.gt(0.0)?.where_cond(x, &(x * LEAKY_RELU_SLOPE)?)?)
}
