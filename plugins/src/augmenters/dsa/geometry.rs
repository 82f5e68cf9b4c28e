//! DSA's whole-pixel geometric ops: "crop" (a random translation with zero padding), "cutout"
//! (a zeroed square) and "flip" (horizontal mirror).
//!
//! They move or mask pixels without interpolation, so each is an exact linear map of the
//! pixels: crop and flip go through [`resample`] (a gather), cutout multiplies by a constant
//! 0/1 mask. All stay differentiable w.r.t. the pixels.

use candle_core::Tensor;

use cafe_framework::rng::Rng;
use cafe_framework::Result;

use super::draws::{per_image, randint, uniform};
use super::sampling::{resample, SampleMap};

/// `int(size * ratio + 0.5)`: the reference's rounding of a ratio of the image size.
fn ratio_of(size: usize, ratio: f64) -> i64 {
    (size as f64 * ratio + 0.5).floor() as i64
}

/// `rand_crop`: translates each image by up to `ratio * size` pixels along each axis (integer
/// shifts drawn uniformly in `[-shift, shift]`), filling with zeros. The reference pads by one
/// zero pixel and clamps indices into the padded image, which is exactly this translation.
pub fn rand_crop(x: &Tensor, ratio: f64, rng: &mut Rng, siamese: bool) -> Result<Tensor> {
    let (n, _, h, w) = x.dims4()?;
    let (shift_h, shift_w) = (ratio_of(h, ratio), ratio_of(w, ratio));
    let shifts = per_image(n, siamese, rng, |r| {
        (randint(r, -shift_h, shift_h + 1), randint(r, -shift_w, shift_w + 1))
    });
    translate(x, &shifts)
}

/// Output pixel `(i, j)` of image `k` is input pixel `(i + dy, j + dx)`, zero outside, for
/// `shifts[k] = (dy, dx)` (one shift broadcasts to the whole batch).
///
/// # Shapes
/// `x`: `[n, c, h, w]` -> `[n, c, h, w]`; `shifts`: `n` or 1 pairs.
pub fn translate(x: &Tensor, shifts: &[(i64, i64)]) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    if shifts.iter().all(|&s| s == (0, 0)) {
        return Ok(x.clone());
    }
    let maps: Vec<SampleMap> = shifts
        .iter()
        .map(|&(dy, dx)| SampleMap::nearest(h, w, |i, j| Some((i as i64 + dy, j as i64 + dx))))
        .collect();
    resample(x, &maps)
}

/// `rand_cutout`: zeroes a `ratio * h` by `ratio * w` square per image. Its centre row is
/// drawn in `[0, h)` for an odd side and `[0, h]` for an even one (likewise for columns), and
/// the square is clipped to the image, as in the reference.
pub fn rand_cutout(x: &Tensor, ratio: f64, rng: &mut Rng, siamese: bool) -> Result<Tensor> {
    let (n, _, h, w) = x.dims4()?;
    let (size_h, size_w) = (ratio_of(h, ratio), ratio_of(w, ratio));
    let centres = per_image(n, siamese, rng, |r| {
        (
            randint(r, 0, h as i64 + (1 - size_h % 2)),
            randint(r, 0, w as i64 + (1 - size_w % 2)),
        )
    });
    let squares: Vec<_> = centres
        .iter()
        .map(|&(cy, cx)| (cy - size_h / 2, cx - size_w / 2, size_h, size_w))
        .collect();
    cutout(x, &squares)
}

/// Zeroes, in image `k`, rows `top..top + rows` and columns `left..left + cols` (clipped to
/// the image) for `squares[k] = (top, left, rows, cols)`; one square broadcasts to the batch.
///
/// # Shapes
/// `x`: `[n, c, h, w]` -> `[n, c, h, w]`; `squares`: `n` or 1 entries.
pub fn cutout(x: &Tensor, squares: &[(i64, i64, i64, i64)]) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    let mut mask = vec![1.0f64; squares.len() * h * w];
    for (k, &(top, left, rows, cols)) in squares.iter().enumerate() {
        let plane = &mut mask[k * h * w..(k + 1) * h * w];
        for i in top.max(0)..(top + rows).min(h as i64) {
            for j in left.max(0)..(left + cols).min(w as i64) {
                plane[i as usize * w + j as usize] = 0.0;
            }
        }
    }
    // The mask is a constant, so the product is linear in the pixels (gradient masked too).
    let mask = Tensor::from_vec(mask, (squares.len(), 1, h, w), x.device())?.to_dtype(x.dtype())?;
    Ok(x.broadcast_mul(&mask)?)
}

/// `rand_flip`: mirrors each image horizontally (along the width) with probability `prob`.
pub fn rand_flip(x: &Tensor, prob: f64, rng: &mut Rng, siamese: bool) -> Result<Tensor> {
    let flipped = per_image(x.dim(0)?, siamese, rng, |r| uniform(r) < prob);
    flip(x, &flipped)
}

/// Mirrors image `k` along its width where `flipped[k]` (one flag broadcasts to the batch).
///
/// # Shapes
/// `x`: `[n, c, h, w]` -> `[n, c, h, w]`; `flipped`: `n` or 1 flags.
pub fn flip(x: &Tensor, flipped: &[bool]) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    match flipped {
        f if !f.iter().any(|&b| b) => Ok(x.clone()),
        // One shared flip: candle's `flip` is an index_select, differentiable and cheap.
        [true] => Ok(x.flip(&[3])?),
        _ => {
            let maps: Vec<SampleMap> = flipped
                .iter()
                .map(|&f| {
                    SampleMap::nearest(h, w, |i, j| {
                        Some((i as i64, if f { (w - 1 - j) as i64 } else { j as i64 }))
                    })
                })
                .collect();
            resample(x, &maps)
        }
    }
}
