//! How the engine steps the synthetic pixels: DESIGN.md's SGD with momentum (every matching
//! method), or the optimiser, learning-rate curve and pixel range a method brings
//! ([`crate::Matcher::image_update`]; SRe2L recovers with Adam, a cosine curve and clipping to
//! the valid pixel range).

use candle_core::Tensor;

use crate::data::Dataset;
use crate::train::LrCurve;
use crate::{Error, Result};

/// The optimiser of the pixels.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum ImageOptimizerKind {
    /// SGD at the run's `lr_img` with `momentum_img` (DESIGN.md's skeleton).
    #[default]
    Sgd,
    /// `torch.optim.Adam` at the run's `lr_img` (no weight decay).
    Adam { beta1: f64, beta2: f64, eps: f64 },
}

/// Per-channel bounds the pixels are clamped to after every step, in the set's normalised space.
#[derive(Debug, Clone, PartialEq)]
pub struct PixelRange {
    pub low: Vec<f64>,
    pub high: Vec<f64>,
}

impl PixelRange {
    /// The range of real pixels, [0, 1] before normalisation: `[-mean / std, (1 - mean) / std]`
    /// per channel (SRe2L's `clip_cifar`, VILA-Lab/SRe2L `SRe2L/*small_dataset/recover_cifar.py:18-28`).
    ///
    /// # Errors
    /// On a ZCA-whitened dataset, whose channels are mixed: no per-channel range exists.
    pub fn of_real_pixels(dataset: &Dataset) -> Result<Self> {
        if dataset.zca.is_some() {
            return Err(Error::invalid(
                "zca",
                dataset.name.as_str(),
                "clipping to the real pixels' range is per channel, which whitening mixes: run without \
                 --zca, or without the clipping",
            ));
        }
        let (low, high) = dataset
            .mean
            .iter()
            .zip(&dataset.std)
            .map(|(&m, &s)| (-f64::from(m) / f64::from(s), (1.0 - f64::from(m)) / f64::from(s)))
            .unzip();
        Ok(Self { low, high })
    }

    /// `images` `[n, c, h, w]` clamped channel by channel, without a graph.
    pub fn clamp(&self, images: &Tensor) -> Result<Tensor> {
        let c = images.dim(1)?;
        if self.low.len() != c || self.high.len() != c {
            return Err(Error::Other(format!(
                "a pixel range of {} channels for images of {c}",
                self.low.len()
            )));
        }
        let device = images.device();
        let dtype = images.dtype();
        let bound =
            |v: &[f64]| -> Result<Tensor> { Ok(Tensor::from_vec(v.to_vec(), (1, c, 1, 1), device)?.to_dtype(dtype)?) };
        let x = images.detach();
        Ok(x.broadcast_maximum(&bound(&self.low)?)?
            .broadcast_minimum(&bound(&self.high)?)?
            .to_dtype(dtype)?)
    }
}

/// How the engine updates the pixels after each matching step.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ImageUpdate {
    pub optimizer: ImageOptimizerKind,
    /// None: `lr_img`, halved at `lr_img_halve_at`; a curve: `lr_img` times the curve at each
    /// iteration, over the run's iterations (set before the iteration's first step).
    pub curve: Option<LrCurve>,
    /// Clamp the pixels to this range after every step.
    pub pixel_range: Option<PixelRange>,
}

impl ImageUpdate {
    /// True for DESIGN.md's plain SGD, which every matching method uses.
    pub fn is_engine_default(&self) -> bool {
        *self == Self::default()
    }
}
