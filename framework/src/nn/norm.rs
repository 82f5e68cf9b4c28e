//! The normalisation layers DC's networks choose from, by name, behind one type.

use candle_core::{DType, Device, Tensor, Var};
use serde::{Deserialize, Serialize};

use super::param_source::ParamSource;
use super::{avg_pool2x2, Activation, BatchNorm2d, GroupNorm, LayerNorm};
use crate::{Mode, Result};

/// Groups of DC's `groupnorm`: `nn.GroupNorm(4, channels)` in its `_get_normlayer`.
pub const DC_GROUP_NORM_GROUPS: usize = 4;

/// Names as in DC's `net_norm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NormKind {
    None,
    BatchNorm,
    LayerNorm,
    /// GroupNorm with one group per channel, affine.
    #[default]
    InstanceNorm,
    /// GroupNorm with [`DC_GROUP_NORM_GROUPS`] groups, affine.
    GroupNorm,
}

/// `activation(y)`, then 2x2 average pooling when `avg_pool`: the unfused tail of a block.
pub(crate) fn activate_then_pool(y: &Tensor, activation: Activation, avg_pool: bool) -> Result<Tensor> {
    let y = activation.forward(y)?;
    if avg_pool {
        avg_pool2x2(&y)
    } else {
        Ok(y)
    }
}

/// One built normalisation layer.
#[derive(Debug)]
pub enum Norm {
    None,
    Batch(BatchNorm2d),
    Layer(LayerNorm),
    Group(GroupNorm),
}

impl Norm {
    /// The layer of `kind` for feature maps `[n, channels, height, width]`.
    pub fn new(
        kind: NormKind,
        channels: usize,
        height: usize,
        width: usize,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        Ok(match kind {
            NormKind::None => Norm::None,
            NormKind::BatchNorm => Norm::Batch(BatchNorm2d::new(channels, dtype, device)?),
            NormKind::LayerNorm => Norm::Layer(LayerNorm::new(channels, height, width, dtype, device)?),
            NormKind::InstanceNorm => Norm::Group(GroupNorm::instance(channels, dtype, device)?),
            NormKind::GroupNorm => Norm::Group(GroupNorm::new(DC_GROUP_NORM_GROUPS, channels, dtype, device)?),
        })
    }

    pub fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        self.forward_with(x, mode, &mut ParamSource::own())
    }

    /// [`Norm::forward`] with the weight and bias taken from `params` (see
    /// [`BatchNorm2d::forward_with`] for the running statistics).
    pub fn forward_with(&self, x: &Tensor, mode: Mode, params: &mut ParamSource) -> Result<Tensor> {
        match self {
            Norm::None => Ok(x.clone()),
            Norm::Batch(bn) => bn.forward_with(x, mode, params),
            Norm::Layer(ln) => ln.forward_with(x, params),
            Norm::Group(gn) => gn.forward_with(x, params),
        }
    }

    /// `activation(self.forward(x))`, then 2x2 average pooling when `avg_pool`. Group and
    /// instance norm fuse the three into one op where they can ([`GroupNorm::forward_activated`]);
    /// the result is the same either way.
    pub fn forward_activated(&self, x: &Tensor, mode: Mode, activation: Activation, avg_pool: bool) -> Result<Tensor> {
        self.forward_activated_with(x, mode, activation, avg_pool, &mut ParamSource::own())
    }

    /// [`Norm::forward_activated`] with the weight and bias taken from `params`.
    pub fn forward_activated_with(
        &self,
        x: &Tensor,
        mode: Mode,
        activation: Activation,
        avg_pool: bool,
        params: &mut ParamSource,
    ) -> Result<Tensor> {
        if let Norm::Group(gn) = self {
            return gn.forward_activated_with(x, activation, avg_pool, params);
        }
        activate_then_pool(&self.forward_with(x, mode, params)?, activation, avg_pool)
    }

    /// Weight, then bias; none for `Norm::None`.
    pub fn parameters(&self) -> Vec<Var> {
        match self {
            Norm::None => vec![],
            Norm::Batch(bn) => bn.parameters(),
            Norm::Layer(ln) => ln.parameters(),
            Norm::Group(gn) => gn.parameters(),
        }
    }

    pub fn is_batch_norm(&self) -> bool {
        matches!(self, Norm::Batch(_))
    }

    /// The BatchNorm layer, if this is one (for `Network::batch_norms`).
    pub fn as_batch_norm(&self) -> Option<&BatchNorm2d> {
        match self {
            Norm::Batch(bn) => Some(bn),
            _ => None,
        }
    }
}
