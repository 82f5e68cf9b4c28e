//! DSA's "color" group: brightness, saturation and contrast jitter, applied in that order.
//!
//! Each is an affine function of the pixels with a per-image factor, so plain tensor ops keep
//! them differentiable. They mirror the reference's `rand_brightness`, `rand_saturation` and
//! `rand_contrast` (DC/DSA/DM `utils.py`).

use candle_core::Tensor;

use cafe_framework::rng::Rng;
use cafe_framework::Result;

use super::draws::{per_image, per_image_tensor, uniform};

/// `rand_brightness`: `x + (u - 0.5) * ratio`, `u ~ U[0, 1)` per image.
pub fn rand_brightness(x: &Tensor, ratio: f64, rng: &mut Rng, siamese: bool) -> Result<Tensor> {
    let shift = per_image(x.dim(0)?, siamese, rng, |r| (uniform(r) - 0.5) * ratio);
    brightness(x, &shift)
}

/// `rand_saturation`: `(x - mean_c) * (u * ratio) + mean_c`, the mean taken over channels.
pub fn rand_saturation(x: &Tensor, ratio: f64, rng: &mut Rng, siamese: bool) -> Result<Tensor> {
    let factor = per_image(x.dim(0)?, siamese, rng, |r| uniform(r) * ratio);
    saturation(x, &factor)
}

/// `rand_contrast`: `(x - mean) * (u + ratio) + mean`, the mean taken over (c, h, w).
pub fn rand_contrast(x: &Tensor, ratio: f64, rng: &mut Rng, siamese: bool) -> Result<Tensor> {
    let factor = per_image(x.dim(0)?, siamese, rng, |r| uniform(r) + ratio);
    contrast(x, &factor)
}

/// Adds `shift[i]` to every pixel of image `i` (one shift broadcasts to the whole batch).
///
/// # Shapes
/// `x`: `[n, c, h, w]`, `shift`: `n` or 1 values.
pub fn brightness(x: &Tensor, shift: &[f64]) -> Result<Tensor> {
    Ok(x.broadcast_add(&per_image_tensor(shift, x)?)?)
}

/// Scales each pixel's deviation from its mean over channels by `factor[i]` (grey for 0).
///
/// # Shapes
/// `x`: `[n, c, h, w]`, `factor`: `n` or 1 values.
pub fn saturation(x: &Tensor, factor: &[f64]) -> Result<Tensor> {
    let mean = x.mean_keepdim(1)?;
    scale_about(x, &mean, factor)
}

/// Scales each pixel's deviation from its image's mean (over c, h, w) by `factor[i]`.
///
/// # Shapes
/// `x`: `[n, c, h, w]`, `factor`: `n` or 1 values.
pub fn contrast(x: &Tensor, factor: &[f64]) -> Result<Tensor> {
    let mean = x.mean_keepdim((1, 2, 3))?;
    scale_about(x, &mean, factor)
}

/// `(x - mean) * factor + mean`, with the mean kept in the graph as the reference does (the
/// gradient flows through it too).
fn scale_about(x: &Tensor, mean: &Tensor, factor: &[f64]) -> Result<Tensor> {
    let factor = per_image_tensor(factor, x)?;
    Ok(x.broadcast_sub(mean)?.broadcast_mul(&factor)?.broadcast_add(mean)?)
}
