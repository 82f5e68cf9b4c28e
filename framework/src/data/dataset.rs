//! A dataset: its train and test sets, class names and the normalisation applied to them.

use super::{ImageSet, Zca};
use crate::ImageShape;

/// A loaded, normalised dataset. `mean` and `std` hold one value per channel: the pixels were
/// turned into `(x / 255 - mean) / std` (for `shapes`, `(x - mean) / std` of values in [0, 1]).
/// A ZCA-whitened dataset (`zca` set) has mean 0 and std 1, then the whitening on top.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// Canonical name (`shapes`, `mnist`, `fashion-mnist`, `cifar10`, `cifar100`, `svhn`).
    pub name: String,
    pub train: ImageSet,
    pub test: ImageSet,
    pub classes: usize,
    pub class_names: Vec<String>,
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    /// The ZCA whitening fitted on the train set and applied to both sets, if any
    /// ([`super::LoadOptions::zca`]).
    pub zca: Option<Zca>,
}

impl Dataset {
    /// The shape of one image.
    pub fn shape(&self) -> ImageShape {
        self.train.shape
    }

    /// Undoes the normalisation (and the whitening) of NCHW `images` of this dataset's shape:
    /// values in [0, 1] (up to rounding), e.g. to write them as a picture.
    pub fn denormalise(&self, images: &[f32]) -> Vec<f32> {
        let unwhitened;
        let images = match &self.zca {
            Some(zca) => {
                unwhitened = zca.unwhiten(images);
                &unwhitened[..]
            }
            None => images,
        };
        let plane = self.shape().height * self.shape().width;
        let channels = self.shape().channels.max(1);
        images
            .iter()
            .enumerate()
            .map(|(k, &v)| {
                let c = (k / plane.max(1)) % channels;
                let (m, s) = (
                    self.mean.get(c).copied().unwrap_or(0.0),
                    self.std.get(c).copied().unwrap_or(1.0),
                );
                v * s + m
            })
            .collect()
    }
}
