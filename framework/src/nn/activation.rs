//! Activations, written with candle ops whose backward is itself differentiable (second-order
//! gradients for DC).

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

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

pub fn relu(x: &Tensor) -> Result<Tensor> {
    Ok(x.relu()?)
}

/// candle-nn's sigmoid: numerically stable, and its backward is built from its output so it
/// differentiates again.
pub fn sigmoid(x: &Tensor) -> Result<Tensor> {
    Ok(candle_nn::ops::sigmoid(x)?)
}

/// `x` where `x > 0`, else `0.01 x`. A select rather than `max(x, 0.01 x)`, so that the
/// gradient at exactly 0 is the slope, as in PyTorch.
pub fn leaky_relu(x: &Tensor) -> Result<Tensor> {
    Ok(x.gt(0.0)?.where_cond(x, &(x * LEAKY_RELU_SLOPE)?)?)
}
