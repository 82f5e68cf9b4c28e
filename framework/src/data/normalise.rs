//! Turning 8-bit pixels into normalised `f32`: `(x / 255 - mean) / std` per channel.
//!
//! A 256-entry table per channel does the arithmetic once per possible byte value, so that
//! converting 50 000 CIFAR images costs one lookup per pixel, and every loader produces
//! bit-identical values for the same byte.

use super::{DatasetKind, ImageSet};
use crate::ImageShape;

/// The per-channel `mean` and `std` a loader normalises with.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Normalisation {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl Normalisation {
    /// The dataset's own statistics (DESIGN.md "Datasets").
    pub fn of(kind: DatasetKind) -> Self {
        Self {
            mean: kind.mean().to_vec(),
            std: kind.std().to_vec(),
        }
    }

    /// Plain `x / 255` (mean 0, std 1): what ZCA whitening starts from (torchvision's
    /// `ToTensor` alone, mtt-distillation `utils.py:58-59`).
    pub fn unit(kind: DatasetKind) -> Self {
        let channels = kind.shape().channels;
        Self {
            mean: vec![0.0; channels],
            std: vec![1.0; channels],
        }
    }
}

/// One lookup table per channel: `table[c][v] = (v / 255 - mean[c]) / std[c]`.
pub(crate) fn tables(mean: &[f32], std: &[f32]) -> Vec<[f32; 256]> {
    mean.iter()
        .zip(std)
        .map(|(&m, &s)| {
            let mut t = [0.0f32; 256];
            for (v, slot) in t.iter_mut().enumerate() {
                *slot = (v as f32 / 255.0 - m) / s;
            }
            t
        })
        .collect()
}

/// Normalises NCHW bytes (`labels.len()` images of `shape`) into an [`ImageSet`]. The caller
/// has checked that `pixels.len() == labels.len() * shape.numel()` and that `mean`/`std` hold
/// one value per channel.
pub(crate) fn image_set_from_bytes(
    pixels: &[u8],
    labels: Vec<u32>,
    shape: ImageShape,
    mean: &[f32],
    std: &[f32],
) -> ImageSet {
    let tables = tables(mean, std);
    let plane = shape.height * shape.width;
    let mut images = Vec::with_capacity(pixels.len());
    for image in pixels.chunks_exact(shape.numel()) {
        for (channel, table) in image.chunks_exact(plane).zip(&tables) {
            images.extend(channel.iter().map(|&v| table[v as usize]));
        }
    }
    ImageSet { images, labels, shape }
}
