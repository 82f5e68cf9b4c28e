//! Multi-formation unpacking: a stored image holding `factor x factor` smaller images, each
//! cut out and resized back to the full size, as NCFM (and IDC before it) decode their sets
//! before training on them (gszfwsb/NCFM `condenser/decode.py` `decode_zoom`, `decode_type:
//! 'single'`, factor 2 in `config/ipc10/cifar10.yaml:69`).
//!
//! `decode_zoom` pads the image's right and bottom with 0.5 up to a multiple of `factor` (in
//! the [0, 1] pixel space NCFM stores), cuts `factor^2` squares of `ceil(w / factor)` pixels
//! in row-major order, and resizes them with `nn.Upsample(size, mode='bilinear')`
//! (`align_corners=False`); the result holds every image's first crop, then every image's
//! second, ... (`torch.cat(cropped)`), with the labels repeated the same way.

use crate::{Error, ImageShape, Result};

/// Unpacks `images` (`n` images of `shape`, NCHW, raw pixels) with `factor`; returns `n *
/// factor^2` images of `shape` and, for each, the index of the stored image it came from.
pub fn unpack(images: &[f32], shape: ImageShape, factor: usize) -> Result<(Vec<f32>, Vec<usize>)> {
    let (c, h, w) = (shape.channels, shape.height, shape.width);
    let per = shape.numel();
    if factor == 0 || factor > h.min(w) {
        return Err(Error::invalid(
            "factor",
            factor,
            format!("images of {h}x{w} can be unpacked with a factor from 1 to {}", h.min(w)),
        ));
    }
    let n = images.len() / per.max(1);
    if factor == 1 {
        return Ok((images.to_vec(), (0..n).collect()));
    }
    // decode.py pads with the width's remainder on both axes (it reads `img.shape[-1]` only).
    let padded = w.div_ceil(factor) * factor;
    let crop = padded / factor;
    let pixel = |img: &[f32], ch: usize, y: usize, x: usize| -> f32 {
        if y < h && x < w {
            img[(ch * h + y) * w + x]
        } else {
            0.5
        }
    };
    let (ys, xs) = (axis(crop, h), axis(crop, w));
    let mut out = Vec::with_capacity(n * factor * factor * per);
    let mut source = Vec::with_capacity(n * factor * factor);
    for i in 0..factor {
        for j in 0..factor {
            for k in 0..n {
                let img = &images[k * per..(k + 1) * per];
                for ch in 0..c {
                    for &(y0, y1, ly) in &ys {
                        for &(x0, x1, lx) in &xs {
                            let at = |y: usize, x: usize| pixel(img, ch, i * crop + y, j * crop + x);
                            let top = (1.0 - lx) * at(y0, x0) + lx * at(y0, x1);
                            let bottom = (1.0 - lx) * at(y1, x0) + lx * at(y1, x1);
                            out.push((1.0 - ly) * top + ly * bottom);
                        }
                    }
                }
                source.push(k);
            }
        }
    }
    Ok((out, source))
}

/// For each output position along an axis of `out` pixels, the two input positions (of `input`)
/// and the weight of the second: PyTorch's bilinear rule without corner alignment (source
/// `(dst + 0.5) * input / out - 0.5`, clamped at 0; `aten/src/ATen/native/UpSample.h`
/// `area_pixel_compute_source_index`).
fn axis(input: usize, out: usize) -> Vec<(usize, usize, f32)> {
    let scale = input as f32 / out as f32;
    (0..out)
        .map(|d| {
            let src = ((d as f32 + 0.5) * scale - 0.5).max(0.0);
            let i0 = (src.floor() as usize).min(input - 1);
            let i1 = (i0 + 1).min(input - 1);
            (i0, i1, src - i0 as f32)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn factor_one_is_the_identity() {
        let shape = ImageShape::new(1, 2, 2);
        let (out, src) = unpack(&[1.0, 2.0, 3.0, 4.0], shape, 1).unwrap();
        assert_eq!(out, vec![1.0, 2.0, 3.0, 4.0]);
        assert_eq!(src, vec![0]);
    }

    #[test]
    fn a_constant_quadrant_stays_constant_and_crops_come_crop_major() {
        // Two 1x4x4 images whose quadrants hold 1, 2, 3, 4 (image 0) and 10x that (image 1).
        let shape = ImageShape::new(1, 4, 4);
        let quad = |y: usize, x: usize| (1 + 2 * (y / 2) + x / 2) as f32;
        let img: Vec<f32> = (0..16).map(|p| quad(p / 4, p % 4)).collect();
        let images: Vec<f32> = img.iter().copied().chain(img.iter().map(|v| v * 10.0)).collect();
        let (out, src) = unpack(&images, shape, 2).unwrap();
        assert_eq!(src, vec![0, 1, 0, 1, 0, 1, 0, 1]);
        for (k, chunk) in out.chunks(16).enumerate() {
            let expected = (1 + k / 2) as f32 * if k % 2 == 1 { 10.0 } else { 1.0 };
            assert!(chunk.iter().all(|v| (v - expected).abs() < 1e-6), "crop {k}: {chunk:?}");
        }
    }

    #[test]
    fn upsampling_matches_pytorch_bilinear() {
        // torch.nn.Upsample(size=4, mode='bilinear')(torch.tensor([[[[0., 1.], [2., 3.]]]]))
        // row 0: [0.0, 0.25, 0.75, 1.0]
        let a = axis(2, 4);
        let row: Vec<f32> = a
            .iter()
            .map(|&(i0, i1, l)| (1.0 - l) * i0 as f32 + l * i1 as f32)
            .collect();
        assert_eq!(row, vec![0.0, 0.25, 0.75, 1.0]);
    }

    #[test]
    fn an_uneven_image_matches_ncfms_decode_zoom() {
        // Two 1x3x3 images of k/17, factor 2 (padded with 0.5 to 4x4, 2x2 crops resized to
        // 3x3): the numbers NCFM's decode_zoom gives under PyTorch 2.15.
        let images: Vec<f32> = (0..18).map(|k| k as f32 / 17.0).collect();
        let (out, src) = unpack(&images, ImageShape::new(1, 3, 3), 2).unwrap();
        #[rustfmt::skip]
        let torch = [
            0.0, 0.029412, 0.058824, 0.088235, 0.117647, 0.147059, 0.176471, 0.205882, 0.235294,
            0.529412, 0.558824, 0.588235, 0.617647, 0.647059, 0.676471, 0.705882, 0.735294, 0.764706,
            0.117647, 0.308824, 0.5, 0.205882, 0.352941, 0.5, 0.294118, 0.397059, 0.5,
            0.647059, 0.573529, 0.5, 0.735294, 0.617647, 0.5, 0.823529, 0.661765, 0.5,
            0.352941, 0.382353, 0.411765, 0.426471, 0.441176, 0.455882, 0.5, 0.5, 0.5,
            0.882353, 0.911765, 0.941176, 0.691176, 0.705882, 0.720588, 0.5, 0.5, 0.5,
            0.470588, 0.485294, 0.5, 0.485294, 0.492647, 0.5, 0.5, 0.5, 0.5,
            1.0, 0.75, 0.5, 0.75, 0.625, 0.5, 0.5, 0.5, 0.5,
        ];
        assert_eq!(src, vec![0, 1, 0, 1, 0, 1, 0, 1]);
        for (k, (a, b)) in out.iter().zip(torch).enumerate() {
            assert!((a - b).abs() < 1e-5, "value {k}: {a} vs PyTorch's {b}");
        }
    }

    #[test]
    fn a_factor_larger_than_the_image_is_refused() {
        assert!(unpack(&[0.0; 4], ImageShape::new(1, 2, 2), 3).is_err());
    }
}
