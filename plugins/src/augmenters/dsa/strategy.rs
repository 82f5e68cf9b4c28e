//! DSA strategies: the groups named in a strategy string and the ops each group runs.
//!
//! Mirrors the reference's `AUGMENT_FNS` table and `strategy.split('_')` in `DiffAugment`.

use candle_core::Tensor;

use cafe_framework::rng::Rng;
use cafe_framework::{Error, Result};

use super::config::DsaConfig;
use super::{affine, color, geometry};

/// The groups a strategy string may name, as listed in error messages.
pub const VALID_GROUPS: &str = "color, crop, cutout, flip, scale, rotate";

/// One group of a strategy (`AUGMENT_FNS` keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    Color,
    Crop,
    Cutout,
    Flip,
    Scale,
    Rotate,
}

/// One differentiable op (`AUGMENT_FNS` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Brightness,
    Saturation,
    Contrast,
    Crop,
    Cutout,
    Flip,
    Scale,
    Rotate,
}

impl Group {
    /// The group called `name`, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "color" => Group::Color,
            "crop" => Group::Crop,
            "cutout" => Group::Cutout,
            "flip" => Group::Flip,
            "scale" => Group::Scale,
            "rotate" => Group::Rotate,
            _ => return None,
        })
    }

    /// The ops the group runs, in order.
    pub fn ops(self) -> &'static [Op] {
        match self {
            Group::Color => &[Op::Brightness, Op::Saturation, Op::Contrast],
            Group::Crop => &[Op::Crop],
            Group::Cutout => &[Op::Cutout],
            Group::Flip => &[Op::Flip],
            Group::Scale => &[Op::Scale],
            Group::Rotate => &[Op::Rotate],
        }
    }
}

/// Parses a strategy such as `color_crop_cutout_flip_scale_rotate`. `""`, `"none"` and
/// `"None"` mean no augmentation (the reference returns `x` unchanged for them); a group may
/// repeat, as in the reference.
pub fn parse_strategy(strategy: &str) -> Result<Vec<Group>> {
    if matches!(strategy, "" | "none" | "None") {
        return Ok(Vec::new());
    }
    strategy
        .split('_')
        .map(|name| {
            Group::from_name(name).ok_or_else(|| {
                Error::invalid(
                    "augment.strategy",
                    strategy,
                    format!("unknown group '{name}'; valid groups: {VALID_GROUPS} (joined by '_'), or none"),
                )
            })
        })
        .collect()
}

impl Op {
    /// Applies the op to `x` with parameters drawn from `rng` (one draw shared by the batch
    /// when `siamese`).
    pub fn apply(self, x: &Tensor, config: &DsaConfig, rng: &mut Rng, siamese: bool) -> Result<Tensor> {
        match self {
            Op::Brightness => color::rand_brightness(x, config.brightness, rng, siamese),
            Op::Saturation => color::rand_saturation(x, config.saturation, rng, siamese),
            Op::Contrast => color::rand_contrast(x, config.contrast, rng, siamese),
            Op::Crop => geometry::rand_crop(x, config.ratio_crop_pad, rng, siamese),
            Op::Cutout => geometry::rand_cutout(x, config.ratio_cutout, rng, siamese),
            Op::Flip => geometry::rand_flip(x, config.prob_flip, rng, siamese),
            Op::Scale => affine::rand_scale(x, config.ratio_scale, rng, siamese),
            Op::Rotate => affine::rand_rotate(x, config.ratio_rotate, rng, siamese),
        }
    }
}
