//! The image geometry of RDED (LINs-lab/RDED `synthesize/utils.py`): square random crops
//! resized with torchvision's antialiased bilinear filter, centred zero padding for scoring a
//! patch on a full-size canvas, and the stitching of `factor x factor` patches into one image.
//!
//! Everything works on host copies of normalised images `[c, h, w]` (row-major `f32`): the
//! selection is a one-time pass without gradients, as the reference runs it under
//! `torch.no_grad()` (`synthesize/main.py:74`). Resizing commutes with the per-channel affine
//! normalisation (both are linear), so cropping after normalising equals the reference's
//! `ToTensor, MultiRandomCrop, normalize` (`synthesize/main.py:30-38`).

use rand::Rng as _;

use cafe_framework::Rng;

/// One image `[c, h, w]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Patch {
    pub pixels: Vec<f32>,
    pub c: usize,
    pub h: usize,
    pub w: usize,
}

/// The weights of torchvision's antialiased bilinear resize along one axis (PyTorch's
/// `_compute_indices_min_size_weights_aa` with the triangle filter, `align_corners=False`):
/// for each output index, the first input index and the normalised weights from there.
fn aa_weights(input: usize, output: usize) -> Vec<(usize, Vec<f64>)> {
    let scale = input as f64 / output as f64;
    let support = if scale >= 1.0 { scale } else { 1.0 };
    let invscale = if scale >= 1.0 { 1.0 / scale } else { 1.0 };
    (0..output)
        .map(|i| {
            let center = scale * (i as f64 + 0.5);
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(input as i64).max(xmin as i64) as usize;
            let mut w: Vec<f64> = (xmin..xmax)
                .map(|j| {
                    let x = (j as f64 - center + 0.5) * invscale;
                    (1.0 - x.abs()).max(0.0)
                })
                .collect();
            let total: f64 = w.iter().sum();
            if total > 0.0 {
                w.iter_mut().for_each(|v| *v /= total);
            }
            (xmin, w)
        })
        .collect()
}

impl Patch {
    /// The window `(top, left, size, size)` of this image.
    pub fn crop(&self, top: usize, left: usize, size: usize) -> Patch {
        let mut pixels = Vec::with_capacity(self.c * size * size);
        for ch in 0..self.c {
            for i in top..top + size {
                let row = (ch * self.h + i) * self.w;
                pixels.extend_from_slice(&self.pixels[row + left..row + left + size]);
            }
        }
        Patch {
            pixels,
            c: self.c,
            h: size,
            w: size,
        }
    }

    /// Resized to `(h, w)` with the antialiased bilinear filter (`antialias=True`), separably:
    /// rows first, then columns, as PyTorch's `_upsample_bilinear2d_aa`.
    pub fn resize_antialiased(&self, h: usize, w: usize) -> Patch {
        let (wy, wx) = (aa_weights(self.h, h), aa_weights(self.w, w));
        let mut rows = vec![0.0f64; self.c * h * self.w];
        for ch in 0..self.c {
            for (i, (start, weights)) in wy.iter().enumerate() {
                for x in 0..self.w {
                    rows[(ch * h + i) * self.w + x] = weights
                        .iter()
                        .enumerate()
                        .map(|(k, wt)| wt * f64::from(self.pixels[(ch * self.h + start + k) * self.w + x]))
                        .sum();
                }
            }
        }
        let mut pixels = Vec::with_capacity(self.c * h * w);
        for ch in 0..self.c {
            for i in 0..h {
                for (start, weights) in &wx {
                    let v: f64 = weights
                        .iter()
                        .enumerate()
                        .map(|(k, wt)| wt * rows[(ch * h + i) * self.w + start + k])
                        .sum();
                    pixels.push(v as f32);
                }
            }
        }
        Patch {
            pixels,
            c: self.c,
            h,
            w,
        }
    }

    /// Resized to `(h, w)` by nearest neighbour, `F.interpolate`'s default mode (source index
    /// `floor(dst * in / out)`), as `mix_images` resizes each patch (`synthesize/utils.py:154-156`).
    pub fn resize_nearest(&self, h: usize, w: usize) -> Patch {
        let mut pixels = Vec::with_capacity(self.c * h * w);
        for ch in 0..self.c {
            for i in 0..h {
                let sy = ((i * self.h) / h).min(self.h - 1);
                for j in 0..w {
                    let sx = ((j * self.w) / w).min(self.w - 1);
                    pixels.push(self.pixels[(ch * self.h + sy) * self.w + sx]);
                }
            }
        }
        Patch {
            pixels,
            c: self.c,
            h,
            w,
        }
    }

    /// Centred on a zero canvas of `(h, w)` (`pad`, `synthesize/utils.py:16-31`: the extra row or
    /// column goes below and right).
    pub fn pad_to(&self, h: usize, w: usize) -> Patch {
        let (top, left) = ((h - self.h) / 2, (w - self.w) / 2);
        let mut pixels = vec![0.0f32; self.c * h * w];
        for ch in 0..self.c {
            for i in 0..self.h {
                let src = (ch * self.h + i) * self.w;
                let dst = (ch * h + top + i) * w + left;
                pixels[dst..dst + self.w].copy_from_slice(&self.pixels[src..src + self.w]);
            }
        }
        Patch {
            pixels,
            c: self.c,
            h,
            w,
        }
    }
}

/// torchvision's `RandomResizedCrop(size, ratio=(1, 1), antialias=True)` with the default
/// `scale=(0.08, 1)` on a square image (`MultiRandomCrop`, `synthesize/utils.py:61-70`): a
/// square of area `U(0.08, 1)` times the image's (side rounded), at a uniform position,
/// resized to `size`. With the ratio fixed at 1 the first of torchvision's ten attempts always
/// fits a square image.
pub fn random_resized_square_crop(img: &Patch, size: usize, rng: &mut Rng) -> Patch {
    let area = (img.h * img.w) as f64;
    let target = area * rng.random_range(0.08..1.0);
    let side = (target.sqrt().round() as usize).clamp(1, img.h.min(img.w));
    let top = rng.random_range(0..=img.h - side);
    let left = rng.random_range(0..=img.w - side);
    img.crop(top, left, side).resize_antialiased(size, size)
}

/// `mix_images` (`synthesize/utils.py:139-166`): `factor x factor` patches into one image of
/// `size`, row by row; slot `k` (row-major) of output image `m` is `patches[k * n + m]`
/// resized by nearest neighbour to `s` or `s + 1` pixels (`s = size / factor`, the first
/// `size % factor` rows and columns one larger).
pub fn stitch(patches: &[Patch], n: usize, factor: usize, size: usize) -> Vec<Patch> {
    let s = size / factor;
    let remained = size % factor;
    let c = patches.first().map_or(1, |p| p.c);
    let mut out = vec![
        Patch {
            pixels: vec![0.0; c * size * size],
            c,
            h: size,
            w: size
        };
        n
    ];
    let mut k = 0;
    let mut h_loc = 0;
    for i in 0..factor {
        let h_r = if i < remained { s + 1 } else { s };
        let mut w_loc = 0;
        for j in 0..factor {
            let w_r = if j < remained { s + 1 } else { s };
            for (m, image) in out.iter_mut().enumerate() {
                let part = patches[k * n + m].resize_nearest(h_r, w_r);
                for ch in 0..c {
                    for y in 0..h_r {
                        let dst = (ch * size + h_loc + y) * size + w_loc;
                        let src = (ch * h_r + y) * w_r;
                        image.pixels[dst..dst + w_r].copy_from_slice(&part.pixels[src..src + w_r]);
                    }
                }
            }
            w_loc += w_r;
            k += 1;
        }
        h_loc += h_r;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(c: usize, h: usize, w: usize) -> Patch {
        Patch {
            pixels: (0..c * h * w).map(|v| v as f32).collect(),
            c,
            h,
            w,
        }
    }

    #[test]
    fn antialiased_resize_keeps_size_and_halves_by_averaging_pairs() {
        let img = ramp(1, 4, 4);
        assert_eq!(img.resize_antialiased(4, 4), img);
        // Halving: support 2, weights (0.25, 0.75, 0.75, 0.25) normalised over the pixels that
        // exist; the interior output averages 4 inputs symmetrically around its centre.
        let half = ramp(1, 1, 8).resize_antialiased(1, 4);
        // Output 1 (centre 3.0): inputs 1..5 with weights 1/8, 3/8, 3/8, 1/8 -> 2.5.
        assert!((half.pixels[1] - 2.5).abs() < 1e-6, "{:?}", half.pixels);
    }

    #[test]
    fn stitching_two_by_two_places_patch_k_of_image_m_at_slot_k() {
        // Four patches for one image (n = 1), constant values 0..4, stitched into 4x4.
        let patches: Vec<Patch> = (0..4)
            .map(|v| Patch {
                pixels: vec![v as f32; 4],
                c: 1,
                h: 2,
                w: 2,
            })
            .collect();
        let out = stitch(&patches, 1, 2, 4);
        #[rustfmt::skip]
        let expected = [
            0., 0., 1., 1.,
            0., 0., 1., 1.,
            2., 2., 3., 3.,
            2., 2., 3., 3.,
        ];
        assert_eq!(out[0].pixels, expected);
        // Factor 1 keeps the image.
        let one = ramp(1, 3, 3);
        assert_eq!(stitch(std::slice::from_ref(&one), 1, 1, 3)[0], one);
    }

    #[test]
    fn padding_centres_the_patch_with_the_extra_below_and_right() {
        let p = Patch {
            pixels: vec![5.0],
            c: 1,
            h: 1,
            w: 1,
        }
        .pad_to(2, 2);
        assert_eq!(p.pixels, [5.0, 0.0, 0.0, 0.0]);
    }
}
