//! Fixed linear resampling of images: every output pixel is a weighted sum of a few input
//! pixels, with indices and weights known before the pixels are.
//!
//! DSA's geometric ops (crop, flip, scale, rotate) are all of this form once their random
//! parameters are drawn: the sampling grid is a constant, so the output is a linear function
//! of the pixels. Expressing them as `gather` / `index_select` plus a weighted sum keeps them
//! differentiable through candle's autograd (their backward passes are `scatter_add` and
//! `index_add`), with no custom op and on any device.

use candle_core::Tensor;

use cafe_framework::{Error, Result};

/// For each of the `h * w` output pixels, `taps` (flat source index, weight) pairs: the output
/// pixel is `sum_k weight[p, k] * input[index[p, k]]` over the flattened `h * w` input plane.
/// A tap that falls outside the image has weight 0 (zero padding) and index 0.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleMap {
    pub height: usize,
    pub width: usize,
    pub taps: usize,
    pub index: Vec<u32>,
    pub weight: Vec<f64>,
}

impl SampleMap {
    /// A one-tap map: output `(i, j)` copies input `source(i, j)`, or 0 where it is `None`.
    pub fn nearest(height: usize, width: usize, source: impl Fn(usize, usize) -> Option<(i64, i64)>) -> Self {
        let mut index = Vec::with_capacity(height * width);
        let mut weight = Vec::with_capacity(height * width);
        for i in 0..height {
            for j in 0..width {
                match source(i, j) {
                    Some((si, sj)) if inside(si, sj, height, width) => {
                        index.push((si as usize * width + sj as usize) as u32);
                        weight.push(1.0);
                    }
                    _ => {
                        index.push(0);
                        weight.push(0.0);
                    }
                }
            }
        }
        Self {
            height,
            width,
            taps: 1,
            index,
            weight,
        }
    }

    /// A four-tap bilinear map with zero padding: output `(i, j)` samples the input at the
    /// real-valued pixel position `source(i, j) = (row, col)`, exactly as PyTorch's
    /// `grid_sample(mode="bilinear", padding_mode="zeros")` does after unnormalising the grid:
    /// each of the four neighbours outside the image contributes nothing.
    pub fn bilinear(height: usize, width: usize, source: impl Fn(usize, usize) -> (f64, f64)) -> Self {
        let n = height * width * 4;
        let mut index = Vec::with_capacity(n);
        let mut weight = Vec::with_capacity(n);
        for i in 0..height {
            for j in 0..width {
                let (iy, ix) = source(i, j);
                let (y0, x0) = (iy.floor(), ix.floor());
                let (ty, tx) = (iy - y0, ix - x0);
                // Order: north-west, north-east, south-west, south-east (grid_sample's order).
                let corners = [
                    (y0, x0, (1.0 - ty) * (1.0 - tx)),
                    (y0, x0 + 1.0, (1.0 - ty) * tx),
                    (y0 + 1.0, x0, ty * (1.0 - tx)),
                    (y0 + 1.0, x0 + 1.0, ty * tx),
                ];
                for (cy, cx, w) in corners {
                    // Far-away samples (huge or NaN coordinates) simply fall outside.
                    let (cy, cx) = (cy as i64, cx as i64);
                    if w.is_finite() && inside(cy, cx, height, width) {
                        index.push((cy as usize * width + cx as usize) as u32);
                        weight.push(w);
                    } else {
                        index.push(0);
                        weight.push(0.0);
                    }
                }
            }
        }
        Self {
            height,
            width,
            taps: 4,
            index,
            weight,
        }
    }
}

fn inside(i: i64, j: i64, height: usize, width: usize) -> bool {
    i >= 0 && j >= 0 && (i as usize) < height && (j as usize) < width
}

/// Applies `maps` to `x`: one map shared by the whole batch (`maps.len() == 1`, the siamese
/// case, done with one `index_select`), or one map per image (`maps.len() == n`, done with
/// `gather`). Differentiable w.r.t. `x`.
///
/// # Shapes
/// `x`: `[n, c, h, w]` -> `[n, c, h, w]`; every map is `h x w`.
pub fn resample(x: &Tensor, maps: &[SampleMap]) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    let Some(first) = maps.first() else {
        return Err(Error::Other("resample: no sample map given".into()));
    };
    let taps = first.taps;
    if maps.len() != 1 && maps.len() != n {
        return Err(Error::Other(format!(
            "resample: {} sample maps for a batch of {n}",
            maps.len()
        )));
    }
    if maps.iter().any(|m| m.height != h || m.width != w || m.taps != taps) {
        return Err(Error::Other(format!(
            "resample: sample maps do not all fit {h}x{w} images with {taps} taps"
        )));
    }
    let device = x.device();
    let plane = h * w;
    let flat = x.reshape((n, c, plane))?;
    let (picked, weight) = if maps.len() == 1 {
        let index = Tensor::from_vec(first.index.clone(), plane * taps, device)?;
        let picked = flat.index_select(&index, 2)?.reshape((n, c, plane, taps))?;
        let weight = Tensor::from_vec(first.weight.clone(), (1, 1, plane, taps), device)?;
        (picked, weight)
    } else {
        let index: Vec<u32> = maps.iter().flat_map(|m| m.index.iter().copied()).collect();
        let index = Tensor::from_vec(index, (n, 1, plane * taps), device)?
            .broadcast_as((n, c, plane * taps))?
            .contiguous()?;
        let picked = flat.contiguous()?.gather(&index, 2)?.reshape((n, c, plane, taps))?;
        let weight: Vec<f64> = maps.iter().flat_map(|m| m.weight.iter().copied()).collect();
        (picked, Tensor::from_vec(weight, (n, 1, plane, taps), device)?)
    };
    // Weights are computed in f64 and rounded once to the pixels' type.
    let weight = weight.to_dtype(x.dtype())?;
    let out = picked.broadcast_mul(&weight)?;
    let out = if taps == 1 { out } else { out.sum(3)? };
    Ok(out.reshape((n, c, h, w))?)
}
