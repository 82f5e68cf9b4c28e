//! How a device result is compared with the CPU's, and the tolerances with their reasons.

use cafe_framework::Result;
use candle_core::{DType, Device, Tensor};

/// A tolerance on the relative error, and what it allows for.
#[derive(Debug, Clone, Copy)]
pub struct Tolerance {
    pub value: f64,
    pub why: &'static str,
}

/// Largest |a - b| over the largest |b| (b the CPU's reference), both read back as f64 on the
/// CPU. 0 when both are all zeros; infinite on a shape mismatch or a non-finite value.
pub fn rel_err(a: &Tensor, b: &Tensor) -> Result<f64> {
    let (diff, scale) = diff_and_scale(a, b)?;
    Ok(if scale == 0.0 { diff } else { diff / scale })
}

/// (largest |a - b|, largest |b|), both read back as f64 on the CPU; the difference is infinite
/// on a shape mismatch or a non-finite value.
pub fn diff_and_scale(a: &Tensor, b: &Tensor) -> Result<(f64, f64)> {
    if a.dims() != b.dims() {
        return Ok((f64::INFINITY, 0.0));
    }
    let read = |t: &Tensor| -> Result<Vec<f64>> {
        Ok(t.to_device(&Device::Cpu)?
            .to_dtype(DType::F64)?
            .flatten_all()?
            .to_vec1::<f64>()?)
    };
    let (a, b) = (read(a)?, read(b)?);
    let scale = b.iter().fold(0.0_f64, |m, v| m.max(v.abs()));
    let mut diff = 0.0_f64;
    for (x, y) in a.iter().zip(&b) {
        let d = (x - y).abs();
        if !d.is_finite() {
            return Ok((f64::INFINITY, scale));
        }
        diff = diff.max(d);
    }
    Ok((diff, scale))
}

/// The largest of several relative errors.
pub fn worst(errors: impl IntoIterator<Item = f64>) -> f64 {
    errors
        .into_iter()
        .fold(0.0, |m: f64, e| if e.is_nan() { f64::INFINITY } else { m.max(e) })
}
