//! `crop_flip`: torchvision's `RandomCrop(size, padding)` then `RandomHorizontalFlip()`, the
//! training augmentation of SRe2L's squeeze and relabel on CIFAR (VILA-Lab/SRe2L
//! `SRe2L/*small_dataset/squeeze_cifar.py:40-47`, `relabel_cifar.py:49-56`) and, with no
//! padding, of RDED's evaluation at factor 1 (LINs-lab/RDED `validation/main.py:115-126`:
//! `RandomResizedCrop(scale=(1, 1))` keeps the whole image, then the flip).
//!
//! The crop pads every side by `pad` with `fill`, then cuts the original size back out at a
//! random offset in `[0, 2 pad]` per axis (`torch.randint(0, h - th + 1)`); the flip mirrors
//! the width with probability 0.5. torchvision pads the image before `Normalize` with 0, that
//! is black: in cafe-lab's normalised space that is `-mean / std` per channel, which a
//! protocol gives as `fill` for its dataset (the default 0 is the normalised mean, DSA's
//! padding). Per image draws; the siamese flag gives every image the first image's draws.

use candle_core::{DType, Tensor};
use rand::Rng as _;
use serde::{Deserialize, Serialize};

use cafe_framework::rng::sub_rng;
use cafe_framework::{register_augmenter, Augmenter, Error, Result};

/// Settings of `crop_flip`; defaults: SRe2L's `RandomCrop(32, padding=4)` and the flip.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CropFlipConfig {
    /// Padding of the random crop, in pixels (0: no crop).
    pub pad: usize,
    /// The padding's value in normalised space: one value for every channel, or one per
    /// channel (black is `-mean / std`).
    pub fill: Vec<f64>,
    /// Mirror the width with probability 0.5.
    pub flip: bool,
}

impl Default for CropFlipConfig {
    fn default() -> Self {
        Self {
            pad: 4,
            fill: vec![0.0],
            flip: true,
        }
    }
}

/// The augmenter.
pub struct CropFlip {
    config: CropFlipConfig,
}

impl CropFlip {
    pub fn new(config: CropFlipConfig) -> Result<Self> {
        if config.fill.is_empty() || config.fill.iter().any(|v| !v.is_finite()) {
            return Err(Error::invalid(
                "augment.fill",
                format!("{:?}", config.fill),
                "give one finite value, or one per channel",
            ));
        }
        Ok(Self { config })
    }

    fn fill(&self, ch: usize, channels: usize) -> Result<f64> {
        match self.config.fill.as_slice() {
            [v] => Ok(*v),
            all if all.len() == channels => Ok(all[ch]),
            all => Err(Error::invalid(
                "augment.fill",
                format!("{all:?}"),
                format!("images have {channels} channels: give one value or {channels}"),
            )),
        }
    }
}

impl Augmenter for CropFlip {
    fn augment(&self, x: &Tensor, seed: u64, siamese: bool) -> Result<Tensor> {
        let (n, c, h, w) = x.dims4().map_err(|_| {
            Error::Other(format!(
                "crop_flip augments image batches [n, c, h, w], got {:?}",
                x.dims()
            ))
        })?;
        if self.is_identity() || n == 0 {
            return Ok(x.clone());
        }
        let fills = (0..c).map(|ch| self.fill(ch, c)).collect::<Result<Vec<f64>>>()?;
        let data = x.detach().to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
        let plane = c * h * w;
        let pad = self.config.pad as i64;
        let mut out = Vec::with_capacity(data.len());
        for k in 0..n {
            let mut rng = sub_rng(seed, &[if siamese { 0 } else { k as u64 }]);
            let (top, left) = if pad > 0 {
                (rng.random_range(0..=2 * pad), rng.random_range(0..=2 * pad))
            } else {
                (pad, pad)
            };
            let flip = self.config.flip && rng.random::<f64>() < 0.5;
            let img = &data[k * plane..(k + 1) * plane];
            for (ch, &fill) in fills.iter().enumerate() {
                for i in 0..h as i64 {
                    for j in 0..w as i64 {
                        // The output column j reads the cropped column w-1-j when flipped.
                        let jj = if flip { w as i64 - 1 - j } else { j };
                        let (y, x) = (i + top - pad, jj + left - pad);
                        let inside = y >= 0 && x >= 0 && y < h as i64 && x < w as i64;
                        out.push(if inside {
                            img[(ch * h + y as usize) * w + x as usize]
                        } else {
                            fill
                        });
                    }
                }
            }
        }
        Ok(Tensor::from_vec(out, (n, c, h, w), x.device())?.to_dtype(x.dtype())?)
    }

    fn is_differentiable(&self) -> bool {
        false
    }

    fn is_identity(&self) -> bool {
        self.config.pad == 0 && !self.config.flip
    }
}

register_augmenter!(
    "crop_flip",
    "torchvision's RandomCrop(padding) and RandomHorizontalFlip (SRe2L, RDED; not differentiable)",
    CropFlipConfig,
    |config: CropFlipConfig| -> Result<Box<dyn Augmenter>> { Ok(Box::new(CropFlip::new(config)?)) }
);
