//! DSA's "scale" and "rotate" groups: random affine warps resampled bilinearly with zero
//! padding.
//!
//! They mirror the reference's `rand_scale` and `rand_rotate`, which build a 2x3 matrix per
//! image and call `F.affine_grid(theta, x.shape)` then `F.grid_sample(x, grid)`. The reference
//! pinned torch 1.2, whose (only) behaviour is what later versions call `align_corners=True`,
//! and later DSA code says so explicitly; both are reproduced here. The sampling grid depends
//! on the drawn parameters only, so the warp is a fixed linear map of the pixels
//! ([`SampleMap::bilinear`]) and differentiable w.r.t. them.

use std::f64::consts::PI;

use candle_core::Tensor;

use cafe_framework::rng::Rng;
use cafe_framework::Result;

use super::draws::{per_image, uniform};
use super::sampling::{resample, SampleMap};

/// A 2x3 affine matrix in `affine_grid`'s convention: it maps output coordinates, normalised
/// to [-1, 1] as (x = column, y = row), to input coordinates.
pub type Theta = [[f64; 3]; 2];

/// `rand_scale`: independent scales `sx, sy ~ U[1/ratio, ratio)` of the sampling grid (a
/// factor above 1 samples a larger area, shrinking the content).
pub fn rand_scale(x: &Tensor, ratio: f64, rng: &mut Rng, siamese: bool) -> Result<Tensor> {
    let low = 1.0 / ratio;
    let thetas = per_image(x.dim(0)?, siamese, rng, |r| {
        let sx = uniform(r) * (ratio - low) + low;
        let sy = uniform(r) * (ratio - low) + low;
        [[sx, 0.0, 0.0], [0.0, sy, 0.0]]
    });
    warp(x, &thetas)
}

/// `rand_rotate`: a rotation by an angle drawn uniformly in `[-degrees, degrees)`.
pub fn rand_rotate(x: &Tensor, degrees: f64, rng: &mut Rng, siamese: bool) -> Result<Tensor> {
    let thetas = per_image(x.dim(0)?, siamese, rng, |r| {
        rotation((uniform(r) - 0.5) * 2.0 * degrees / 180.0 * PI)
    });
    warp(x, &thetas)
}

/// The reference's rotation matrix `[[cos, sin(-a), 0], [sin, cos, 0]]` for `angle` radians.
pub fn rotation(angle: f64) -> Theta {
    let (sin, cos) = angle.sin_cos();
    [[cos, -sin, 0.0], [sin, cos, 0.0]]
}

/// Warps image `k` by `thetas[k]` (one matrix broadcasts to the batch), as
/// `grid_sample(x, affine_grid(theta, x.shape, align_corners=True), mode="bilinear",
/// padding_mode="zeros", align_corners=True)`.
///
/// # Shapes
/// `x`: `[n, c, h, w]` -> `[n, c, h, w]`; `thetas`: `n` or 1 matrices.
pub fn warp(x: &Tensor, thetas: &[Theta]) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    let maps: Vec<SampleMap> = thetas.iter().map(|theta| affine_map(h, w, theta)).collect();
    resample(x, &maps)
}

/// The bilinear sample map of `theta` on an `h x w` image.
pub fn affine_map(h: usize, w: usize, theta: &Theta) -> SampleMap {
    SampleMap::bilinear(h, w, |i, j| {
        // affine_grid: the base grid is linspace(-1, 1, size) per axis (align_corners=True).
        let (xn, yn) = (normalised(j, w), normalised(i, h));
        let gx = theta[0][0] * xn + theta[0][1] * yn + theta[0][2];
        let gy = theta[1][0] * xn + theta[1][1] * yn + theta[1][2];
        // grid_sample, align_corners=True: -1 and 1 are the centres of the corner pixels.
        (unnormalised(gy, h), unnormalised(gx, w))
    })
}

/// `linspace(-1, 1, size)[k]`; PyTorch's `affine_grid` uses 0 for a size of 1.
fn normalised(k: usize, size: usize) -> f64 {
    if size <= 1 {
        0.0
    } else {
        -1.0 + 2.0 * k as f64 / (size - 1) as f64
    }
}

/// Pixel position of the normalised coordinate `g` (align_corners=True).
fn unnormalised(g: f64, size: usize) -> f64 {
    (g + 1.0) / 2.0 * (size as f64 - 1.0)
}
