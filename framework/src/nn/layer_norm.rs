//! Layer normalisation over (C, H, W) with an elementwise affine of shape (C, H, W), as
//! PyTorch's `nn.LayerNorm([c, h, w])` (DC's `layernorm`).

use candle_core::{DType, Device, Tensor, Var};

use super::group_norm::{group_normalize, NORM_EPS};
use super::init::constant_var;
use super::param_source::ParamSource;
use crate::{Error, Result};

#[derive(Debug, Clone)]
pub struct LayerNorm {
    /// `[c, h, w]`: one scale per element of an image.
    weight: Var,
    bias: Var,
}

impl LayerNorm {
    /// Weight 1 and bias 0 of shape `[channels, height, width]`.
    pub fn new(channels: usize, height: usize, width: usize, dtype: DType, device: &Device) -> Result<Self> {
        let shape = [channels, height, width];
        Ok(Self {
            weight: constant_var(&shape, 1.0, dtype, device)?,
            bias: constant_var(&shape, 0.0, dtype, device)?,
        })
    }

    /// # Shapes
    /// `[n, c, h, w] -> [n, c, h, w]` with `(c, h, w)` the shape it was built for.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_with(x, &mut ParamSource::own())
    }

    /// [`LayerNorm::forward`] with the weight and bias taken from `params`.
    pub fn forward_with(&self, x: &Tensor, params: &mut ParamSource) -> Result<Tensor> {
        let (weight, bias) = (params.take(&self.weight)?, params.take(&self.bias)?);
        if x.rank() != 4 || x.dims()[1..] != *self.weight.dims() {
            return Err(Error::invalid(
                "LayerNorm input",
                format!("{:?}", x.dims()),
                format!("must be [n, {:?}]", self.weight.dims()),
            ));
        }
        // Normalising over (C, H, W) is group norm with a single group.
        let x = group_normalize(x, 1, NORM_EPS)?;
        Ok(x.broadcast_mul(&weight)?.broadcast_add(&bias)?)
    }

    /// Weight, then bias (PyTorch's order).
    pub fn parameters(&self) -> Vec<Var> {
        vec![self.weight.clone(), self.bias.clone()]
    }
}
