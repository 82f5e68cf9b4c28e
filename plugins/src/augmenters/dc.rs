//! `dc`: DC's evaluation-time augmentation (Zhao, Mopuri, Bilen, "Dataset Condensation with
//! Gradient Matching", ICLR 2021), the reference's `augment(images, dc_aug_param, device)` in
//! DC/DSA/DM `utils.py`.
//!
//! Each image gets one op of the strategy, chosen at random: crop (pad with the channel means,
//! crop back at a random offset), scale (nearest-neighbour resize by up to +-20%, centred),
//! rotate (up to +-45 degrees about the centre, filled with the mean) or noise (Gaussian,
//! std 0.001). The reference uses it for MNIST-like data (`crop_scale_rotate`) and for
//! BatchNorm networks (`crop_noise`). It only feeds networks trained on the condensed set, so
//! it works on host copies of the pixels and is not differentiable.

use candle_core::{DType, Tensor};
use rand::Rng as _;
use serde::{Deserialize, Serialize};

use cafe_framework::rng::{sub_rng, Rng};
use cafe_framework::{register_augmenter, Augmenter, Error, Result};

/// The groups a `dc` strategy may name.
pub const VALID_DC_GROUPS: &str = "crop, scale, rotate, noise";

/// Settings of `dc`; defaults are the reference's `get_daparam` (strategy for MNIST).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DcAugmentConfig {
    /// Ops joined by '_' (crop, scale, rotate, noise); one is picked per image. "none" for identity.
    pub strategy: String,
    /// Padding of the crop, in pixels.
    pub crop: usize,
    /// Relative size change of the scale op: sizes in [(1-scale) h, (1+scale) h).
    pub scale: f64,
    /// Rotation angles are whole degrees in [-rotate, rotate).
    pub rotate: u32,
    /// Standard deviation of the noise op.
    pub noise: f64,
}

impl Default for DcAugmentConfig {
    fn default() -> Self {
        Self {
            strategy: "crop_scale_rotate".into(),
            crop: 4,
            scale: 0.2,
            rotate: 45,
            noise: 0.001,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DcOp {
    Crop,
    Scale,
    Rotate,
    Noise,
}

/// The DC augmenter: a validated strategy and its parameters.
#[derive(Debug, Clone)]
pub struct DcAugment {
    config: DcAugmentConfig,
    ops: Vec<DcOp>,
}

impl DcAugment {
    /// Checks `config` and builds the augmenter.
    pub fn new(config: DcAugmentConfig) -> Result<Self> {
        let ops = if matches!(config.strategy.as_str(), "" | "none" | "None") {
            Vec::new()
        } else {
            let parse = |name: &str| match name {
                "crop" => Ok(DcOp::Crop),
                "scale" => Ok(DcOp::Scale),
                "rotate" => Ok(DcOp::Rotate),
                "noise" => Ok(DcOp::Noise),
                _ => Err(Error::invalid(
                    "augment.strategy",
                    &config.strategy,
                    format!("unknown group '{name}'; valid groups: {VALID_DC_GROUPS} (joined by '_'), or none"),
                )),
            };
            config.strategy.split('_').map(parse).collect::<Result<_>>()?
        };
        if !(0.0..1.0).contains(&config.scale) {
            return Err(Error::invalid(
                "augment.scale",
                config.scale,
                "must lie in [0, 1) (the reference uses 0.2)",
            ));
        }
        if !(config.noise.is_finite() && config.noise >= 0.0) {
            return Err(Error::invalid(
                "augment.noise",
                config.noise,
                "must be a finite standard deviation >= 0",
            ));
        }
        Ok(Self { config, ops })
    }
}

/// One image's pixels, `[c, h, w]` row-major, with its geometry.
struct Image<'a> {
    pixels: &'a [f64],
    c: usize,
    h: usize,
    w: usize,
}

impl Image<'_> {
    /// A new `[c, h, w]` image whose pixel `(ch, i, j)` is `value(ch, i, j)`.
    fn map(&self, value: impl Fn(usize, usize, usize) -> f64) -> Vec<f64> {
        let mut out = Vec::with_capacity(self.pixels.len());
        for ch in 0..self.c {
            for i in 0..self.h {
                for j in 0..self.w {
                    out.push(value(ch, i, j));
                }
            }
        }
        out
    }

    /// Pixel `(ch, i, j)`, or `None` outside the image.
    fn get(&self, ch: usize, i: i64, j: i64) -> Option<f64> {
        let inside = i >= 0 && j >= 0 && (i as usize) < self.h && (j as usize) < self.w;
        inside.then(|| self.pixels[(ch * self.h + i as usize) * self.w + j as usize])
    }
}

impl DcAugment {
    /// `cropfun`: pads by `crop` with the channel means, then crops back at offsets drawn in
    /// `[0, 2 crop)` (`np.random.permutation(crop*2)[0]`, so a shift of -crop..crop-1).
    fn crop(&self, img: &Image, means: &[f64], rng: &mut Rng) -> Vec<f64> {
        let pad = self.config.crop as i64;
        if pad == 0 {
            return img.pixels.to_vec();
        }
        let (r, c) = (rng.random_range(0..2 * pad), rng.random_range(0..2 * pad));
        img.map(|ch, i, j| img.get(ch, i as i64 + r - pad, j as i64 + c - pad).unwrap_or(means[ch]))
    }

    /// `scalefun`: resizes to `(U(1-s, 1+s) h, U(1-s, 1+s) w)` with nearest neighbours
    /// (`F.interpolate`'s default), centres it on a zero canvas and crops the centre back.
    /// The reference draws both sizes from `shape[2]`; here the width uses the width (the
    /// same for the square images DC uses).
    fn scale(&self, img: &Image, rng: &mut Rng) -> Vec<f64> {
        let s = self.config.scale;
        let (h, w) = (img.h, img.w);
        let mut size = |n: usize| {
            (((1.0 - s) + 2.0 * s * rng.random::<f64>()) * n as f64)
                .floor()
                .max(1.0) as usize
        };
        let (sh, sw) = (size(h), size(w));
        let side = sh.max(sw).max(h).max(w);
        // Offsets of the resized image in the canvas, and of the crop window.
        let (top, left) = ((side - sh) / 2, (side - sw) / 2);
        let (crop_top, crop_left) = ((side - h) / 2, (side - w) / 2);
        img.map(|ch, i, j| {
            let (y, x) = ((i + crop_top) as i64 - top as i64, (j + crop_left) as i64 - left as i64);
            if y < 0 || x < 0 || y as usize >= sh || x as usize >= sw {
                return 0.0;
            }
            // PyTorch's nearest: source = floor(dst * in / out), clamped.
            let sy = ((y as f64 * h as f64 / sh as f64).floor() as usize).min(h - 1);
            let sx = ((x as f64 * w as f64 / sw as f64).floor() as usize).min(w - 1);
            img.pixels[(ch * h + sy) * w + sx]
        })
    }

    /// `rotatefun`: `scipy.ndimage.rotate(angle, reshape=True, cval=mean)` then the centre
    /// crop. The enlarged canvas and its centre are computed as scipy does, so the geometry
    /// matches; the interpolation is bilinear where scipy's default is a cubic spline.
    fn rotate(&self, img: &Image, fill: f64, rng: &mut Rng) -> Vec<f64> {
        let limit = self.config.rotate as i64;
        let degrees = if limit == 0 { 0 } else { rng.random_range(-limit..limit) };
        let (sin, cos) = (degrees as f64).to_radians().sin_cos();
        let (h, w) = (img.h as f64, img.w as f64);
        // scipy: rot = [[cos, sin], [-sin, cos]] on (row, col); the output plane is the extent
        // (ptp) of the rotated corners (0,0), (0,w), (h,0), (h,w), plus 0.5, truncated.
        let rows = [0.0, sin * w, cos * h, cos * h + sin * w];
        let cols = [0.0, cos * w, -sin * h, -sin * h + cos * w];
        let ptp = |v: [f64; 4]| v.iter().copied().fold(f64::MIN, f64::max) - v.iter().copied().fold(f64::MAX, f64::min);
        let (out_h, out_w) = ((ptp(rows) + 0.5) as i64, (ptp(cols) + 0.5) as i64);
        let (oc_r, oc_c) = ((out_h - 1) as f64 / 2.0, (out_w - 1) as f64 / 2.0);
        let (ic_r, ic_c) = ((h - 1.0) / 2.0, (w - 1.0) / 2.0);
        let (top, left) = ((out_h - img.h as i64) / 2, (out_w - img.w as i64) / 2);
        img.map(|ch, i, j| {
            let (dr, dc) = ((i as i64 + top) as f64 - oc_r, (j as i64 + left) as f64 - oc_c);
            let (sr, sc) = (cos * dr + sin * dc + ic_r, -sin * dr + cos * dc + ic_c);
            bilinear_or(img, ch, sr, sc, fill)
        })
    }

    /// `noisefun`: adds Gaussian noise of std `noise` to every pixel.
    fn noise(&self, img: &Image, rng: &mut Rng) -> Vec<f64> {
        img.pixels
            .iter()
            .map(|&p| p + self.config.noise * standard_normal(rng))
            .collect()
    }
}

/// Bilinear sample of channel `ch` at `(r, c)`; `fill` outside `[0, h-1] x [0, w-1]` (scipy's
/// `mode="constant"`: no interpolation beyond the edges).
fn bilinear_or(img: &Image, ch: usize, r: f64, c: f64, fill: f64) -> f64 {
    const EDGE: f64 = 1e-9;
    if r < -EDGE || c < -EDGE || r > img.h as f64 - 1.0 + EDGE || c > img.w as f64 - 1.0 + EDGE {
        return fill;
    }
    let (r, c) = (r.clamp(0.0, img.h as f64 - 1.0), c.clamp(0.0, img.w as f64 - 1.0));
    let (r0, c0) = (r.floor() as i64, c.floor() as i64);
    let (tr, tc) = (r - r0 as f64, c - c0 as f64);
    // A neighbour past the last row/column only occurs with weight 0.
    let px = |i: i64, j: i64| img.get(ch, i, j).unwrap_or(0.0);
    (1.0 - tr) * ((1.0 - tc) * px(r0, c0) + tc * px(r0, c0 + 1))
        + tr * ((1.0 - tc) * px(r0 + 1, c0) + tc * px(r0 + 1, c0 + 1))
}

/// A standard normal draw (Box-Muller), so that only `rand` is needed.
fn standard_normal(rng: &mut Rng) -> f64 {
    let u1 = 1.0 - rng.random::<f64>(); // in (0, 1]: ln is finite
    let u2 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

impl Augmenter for DcAugment {
    fn augment(&self, x: &Tensor, seed: u64, siamese: bool) -> Result<Tensor> {
        let (n, c, h, w) = x.dims4().map_err(|_| {
            Error::Other(format!(
                "dc augments image batches [n, c, h, w], got shape {:?}",
                x.dims()
            ))
        })?;
        if self.ops.is_empty() || n == 0 {
            return Ok(x.clone());
        }
        let data = x.detach().to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
        let plane = c * h * w;
        // The reference fills with the channel means of the whole batch, taken before any op.
        let means: Vec<f64> = (0..c)
            .map(|ch| {
                (0..n)
                    .map(|k| {
                        data[k * plane + ch * h * w..k * plane + (ch + 1) * h * w]
                            .iter()
                            .sum::<f64>()
                    })
                    .sum::<f64>()
                    / (n * h * w) as f64
            })
            .collect();
        let fill = means.iter().sum::<f64>() / c as f64;
        let mut out = Vec::with_capacity(data.len());
        for k in 0..n {
            // Siamese: every image replays the first image's stream, so all get its draws.
            let mut rng = sub_rng(seed, &[if siamese { 0 } else { k as u64 }]);
            let img = Image {
                pixels: &data[k * plane..(k + 1) * plane],
                c,
                h,
                w,
            };
            let op = self.ops[rng.random_range(0..self.ops.len())];
            out.extend(match op {
                DcOp::Crop => self.crop(&img, &means, &mut rng),
                DcOp::Scale => self.scale(&img, &mut rng),
                DcOp::Rotate => self.rotate(&img, fill, &mut rng),
                DcOp::Noise => self.noise(&img, &mut rng),
            });
        }
        Ok(Tensor::from_vec(out, (n, c, h, w), x.device())?.to_dtype(x.dtype())?)
    }

    fn is_differentiable(&self) -> bool {
        false
    }

    fn is_identity(&self) -> bool {
        self.ops.is_empty()
    }
}

register_augmenter!(
    "dc",
    "DC's evaluation augmentation (one of crop, scale, rotate, noise per image; not differentiable)",
    DcAugmentConfig,
    |config: DcAugmentConfig| -> Result<Box<dyn Augmenter>> { Ok(Box::new(DcAugment::new(config)?)) }
);
