//! A dataset: its train and test sets, class names and the normalisation applied to them.

use super::ImageSet;
use crate::ImageShape;

/// A loaded, normalised dataset. `mean` and `std` hold one value per channel: the pixels were
/// turned into `(x / 255 - mean) / std` (for `shapes`, `(x - mean) / std` of values in [0, 1]).
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
}

impl Dataset {
    /// The shape of one image.
    pub fn shape(&self) -> ImageShape {
        self.train.shape
    }

    /// Undoes the normalisation of NCHW `images` of this dataset's shape: values in [0, 1]
    /// (up to rounding), e.g. to write them as a picture.
    pub fn denormalise(&self, images: &[f32]) -> Vec<f32> {
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
