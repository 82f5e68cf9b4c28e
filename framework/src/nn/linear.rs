//! The fully connected `Linear` layer, initialised as PyTorch's `nn.Linear`.

use candle_core::{DType, Device, Tensor, Var};

use super::init::{default_bound, uniform_var};
use super::param_source::ParamSource;
use crate::{Error, Result, Rng};

/// `y = x W^T + b` with `weight` `[out, in]` and `bias` `[out]`.
#[derive(Debug, Clone)]
pub struct Linear {
    weight: Var,
    bias: Var,
}

impl Linear {
    /// Weight and bias from U(-b, b), `b = 1 / sqrt(in)`.
    pub fn new(in_features: usize, out_features: usize, dtype: DType, device: &Device, rng: &mut Rng) -> Result<Self> {
        if in_features == 0 || out_features == 0 {
            return Err(Error::invalid(
                "Linear",
                format!("{in_features} -> {out_features}"),
                "both sizes must be positive",
            ));
        }
        let bound = default_bound(in_features);
        let weight = uniform_var(&[out_features, in_features], bound, dtype, device, rng)?;
        let bias = uniform_var(&[out_features], bound, dtype, device, rng)?;
        Ok(Self { weight, bias })
    }

    /// # Shapes
    /// `[n, in] -> [n, out]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_with(x, &mut ParamSource::own())
    }

    /// [`Linear::forward`] with the weight and bias taken from `params`.
    pub fn forward_with(&self, x: &Tensor, params: &mut ParamSource) -> Result<Tensor> {
        let (weight, bias) = (params.take(&self.weight)?, params.take(&self.bias)?);
        let (_, want) = weight.dims2()?;
        match x.dims() {
            &[_, got] if got == want => {}
            d => {
                return Err(Error::invalid(
                    "Linear input",
                    format!("{d:?}"),
                    format!("must be [n, {want}]"),
                ))
            }
        }
        Ok(x.matmul(&weight.t()?)?.broadcast_add(&bias)?)
    }

    pub fn weight(&self) -> &Var {
        &self.weight
    }

    pub fn bias(&self) -> &Var {
        &self.bias
    }

    /// Weight, then bias (PyTorch's order).
    pub fn parameters(&self) -> Vec<Var> {
        vec![self.weight.clone(), self.bias.clone()]
    }
}
