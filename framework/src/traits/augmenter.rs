//! `Augmenter`: a random image transformation whose parameters come from a seed.

use candle_core::Tensor;

use crate::Result;

/// A random augmentation of a batch `[n, c, h, w]`.
///
/// The parameters are drawn from `seed` alone, so calling it twice with one seed applies the
/// same transformation: this is how DSA's siamese augmentation gives the real and the
/// synthetic batch of a class identical transforms.
pub trait Augmenter: Send + Sync {
    /// Transforms `x`. With `siamese` every image of the batch gets the same parameters (those
    /// of the first image); otherwise each image draws its own.
    fn augment(&self, x: &Tensor, seed: u64, siamese: bool) -> Result<Tensor>;

    /// True when the transformation is differentiable w.r.t. the pixels (usable in matching).
    fn is_differentiable(&self) -> bool;

    /// True for the identity, so that callers may skip it.
    fn is_identity(&self) -> bool {
        false
    }
}
