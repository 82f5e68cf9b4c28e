//! The `dsa` augmenter's settings: the reference's `ParamDiffAug`, plus the strategy and the
//! single/multiple mode, checked once when the augmenter is built.

use serde::{Deserialize, Serialize};

use cafe_framework::{Error, Result};

/// How the groups of a strategy are applied on each call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// One group per call, chosen from the seed (the reference's `aug_mode = 'S'`, the
    /// default of `ParamDiffAug` and so of DSA's and DM's scripts).
    #[serde(alias = "S", alias = "s")]
    Single,
    /// Every group, in the strategy's order (`aug_mode = 'M'`, DiffAugment's original).
    #[serde(alias = "M", alias = "m")]
    Multiple,
}

/// Settings of `dsa`; defaults are the reference's `ParamDiffAug` and `--dsa_strategy`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DsaConfig {
    /// Groups joined by '_': color, crop, cutout, flip, scale, rotate; "none" for identity.
    pub strategy: String,
    /// `single` (one group per call) or `multiple` (all groups in order).
    pub mode: Mode,
    /// Scale factors per axis are drawn in [1/ratio_scale, ratio_scale).
    pub ratio_scale: f64,
    /// Rotation angles are drawn in [-ratio_rotate, ratio_rotate) degrees.
    pub ratio_rotate: f64,
    /// Translations reach `round(ratio_crop_pad * size)` pixels.
    pub ratio_crop_pad: f64,
    /// The cutout square's side is `round(ratio_cutout * size)`.
    pub ratio_cutout: f64,
    /// Brightness shift in [-brightness/2, brightness/2).
    pub brightness: f64,
    /// Saturation factor in [0, saturation).
    pub saturation: f64,
    /// Contrast factor in [contrast, contrast + 1).
    pub contrast: f64,
    /// Probability of a horizontal flip.
    pub prob_flip: f64,
}

impl Default for DsaConfig {
    fn default() -> Self {
        Self {
            strategy: "color_crop_cutout_flip_scale_rotate".into(),
            mode: Mode::Single,
            ratio_scale: 1.2,
            ratio_rotate: 15.0,
            ratio_crop_pad: 0.125,
            ratio_cutout: 0.5,
            brightness: 1.0,
            saturation: 2.0,
            contrast: 0.5,
            prob_flip: 0.5,
        }
    }
}

impl DsaConfig {
    /// Checks every numeric setting (the strategy is checked by `parse_strategy`).
    pub fn validate(&self) -> Result<()> {
        let finite = [
            ("ratio_scale", self.ratio_scale),
            ("ratio_rotate", self.ratio_rotate),
            ("ratio_crop_pad", self.ratio_crop_pad),
            ("ratio_cutout", self.ratio_cutout),
            ("brightness", self.brightness),
            ("saturation", self.saturation),
            ("contrast", self.contrast),
            ("prob_flip", self.prob_flip),
        ];
        for (name, value) in finite {
            if !value.is_finite() {
                return Err(Error::invalid(
                    format!("augment.{name}"),
                    value,
                    "must be a finite number",
                ));
            }
        }
        if self.ratio_scale <= 0.0 {
            return Err(Error::invalid(
                "augment.ratio_scale",
                self.ratio_scale,
                "must be > 0 (1 disables scaling; the reference uses 1.2)",
            ));
        }
        if self.ratio_rotate < 0.0 {
            return Err(Error::invalid(
                "augment.ratio_rotate",
                self.ratio_rotate,
                "must be >= 0 degrees (0 disables rotation)",
            ));
        }
        for (name, value) in [
            ("ratio_crop_pad", self.ratio_crop_pad),
            ("ratio_cutout", self.ratio_cutout),
            ("prob_flip", self.prob_flip),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(Error::invalid(format!("augment.{name}"), value, "must lie in [0, 1]"));
            }
        }
        Ok(())
    }
}
