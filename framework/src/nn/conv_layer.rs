//! The `Conv2d` layer: a square kernel, optional bias, PyTorch's default initialisation, run
//! through the fast differentiable [`conv2d`](super::conv::conv2d).

use candle_core::{DType, Device, Tensor, Var};

use super::conv::conv2d_with_bias;
use super::init::{default_bound, uniform_var};
use super::param_source::ParamSource;
use crate::{Error, Result, Rng};

/// Stride, padding and bias of a [`Conv2d`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv2dConfig {
    pub stride: usize,
    pub padding: usize,
    pub bias: bool,
}

impl Default for Conv2dConfig {
    fn default() -> Self {
        Self {
            stride: 1,
            padding: 0,
            bias: true,
        }
    }
}

/// A 2-D convolution layer with `weight` `[out, in, k, k]` and `bias` `[out]`.
#[derive(Debug, Clone)]
pub struct Conv2d {
    weight: Var,
    bias: Option<Var>,
    config: Conv2dConfig,
}

impl Conv2d {
    /// A layer initialised as PyTorch's `nn.Conv2d`: weight and bias from U(-b, b) with
    /// `b = 1 / sqrt(in * k * k)`.
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        config: Conv2dConfig,
        dtype: DType,
        device: &Device,
        rng: &mut Rng,
    ) -> Result<Self> {
        if in_channels == 0 || out_channels == 0 || kernel == 0 || config.stride == 0 {
            return Err(Error::invalid(
                "Conv2d",
                format!(
                    "in {in_channels}, out {out_channels}, kernel {kernel}, stride {}",
                    config.stride
                ),
                "channels, kernel size and stride must be positive",
            ));
        }
        let bound = default_bound(in_channels * kernel * kernel);
        let weight = uniform_var(&[out_channels, in_channels, kernel, kernel], bound, dtype, device, rng)?;
        let bias = config
            .bias
            .then(|| uniform_var(&[out_channels], bound, dtype, device, rng))
            .transpose()?;
        Ok(Self { weight, bias, config })
    }

    /// A layer from given parameters (e.g. loaded ones).
    ///
    /// # Shapes
    /// `weight` `[out, in, k, k]`, `bias` `[out]`.
    pub fn from_vars(weight: Var, bias: Option<Var>, stride: usize, padding: usize) -> Result<Self> {
        let out = match weight.dims() {
            &[o, _, k, k2] if k == k2 => o,
            d => {
                return Err(Error::invalid(
                    "Conv2d weight",
                    format!("{d:?}"),
                    "must be [out, in, k, k]",
                ))
            }
        };
        if let Some(b) = &bias {
            if b.dims() != [out] {
                return Err(Error::invalid(
                    "Conv2d bias",
                    format!("{:?}", b.dims()),
                    format!("must be [{out}]"),
                ));
            }
        }
        let config = Conv2dConfig {
            stride,
            padding,
            bias: bias.is_some(),
        };
        Ok(Self { weight, bias, config })
    }

    /// # Shapes
    /// `[n, in, h, w] -> [n, out, h', w']`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_with(x, &mut ParamSource::own())
    }

    /// [`Conv2d::forward`] with the weight (and bias) taken from `params`.
    pub fn forward_with(&self, x: &Tensor, params: &mut ParamSource) -> Result<Tensor> {
        let weight = params.take(&self.weight)?;
        let bias = self.bias.as_ref().map(|b| params.take(b)).transpose()?;
        conv2d_with_bias(x, &weight, bias.as_ref(), self.config.stride, self.config.padding)
    }

    pub fn weight(&self) -> &Var {
        &self.weight
    }

    pub fn bias(&self) -> Option<&Var> {
        self.bias.as_ref()
    }

    pub fn config(&self) -> Conv2dConfig {
        self.config
    }

    /// Weight, then bias (PyTorch's order).
    pub fn parameters(&self) -> Vec<Var> {
        std::iter::once(self.weight.clone()).chain(self.bias.clone()).collect()
    }
}
