//! Helpers shared by the framework's tests: random tensors, comparisons, central differences
//! (the layer tests), the golden tensor files, an allocation counter, and the dataset
//! fixture writers (IDX, CIFAR, MAT v5, gzip/zlib).

// Every test binary that declares `mod support` uses some of these helpers, not all.
#![allow(dead_code)]

pub mod alloc;
pub mod cifar;
pub mod data;
pub mod golden;
pub mod idx;
pub mod mat;

use cafe_framework::{Result, Rng};
use candle_core::{DType, Device, Tensor};
use rand::Rng as _;

/// Uniform values in [-1, 1), f64, from `rng`.
pub fn randn(shape: &[usize], rng: &mut Rng) -> Result<Tensor> {
    let n = shape.iter().product();
    let data: Vec<f64> = (0..n).map(|_| rng.random::<f64>() * 2.0 - 1.0).collect();
    Ok(Tensor::from_vec(data, shape, &Device::Cpu)?)
}

pub fn values(t: &Tensor) -> Result<Vec<f64>> {
    Ok(t.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?)
}

/// Every value of `a` within `tol` of `b`'s, relative to the largest magnitude of `b` (at least 1).
pub fn assert_close(a: &Tensor, b: &Tensor, tol: f64, what: &str) -> Result<()> {
    assert_eq!(a.dims(), b.dims(), "{what}: shapes");
    let (a, b) = (values(a)?, values(b)?);
    let scale = b.iter().fold(1.0_f64, |m, v| m.max(v.abs()));
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert!((x - y).abs() <= tol * scale, "{what}[{i}]: {x} vs {y}");
    }
    Ok(())
}

/// Central differences of `f` at every coordinate of `x`.
pub fn finite_differences(f: &dyn Fn(&Tensor) -> Result<f64>, x: &Tensor) -> Result<Vec<f64>> {
    let base = values(x)?;
    (0..base.len())
        .map(|i| {
            let at = |d: f64| -> Result<f64> {
                let mut v = base.clone();
                v[i] += d;
                f(&Tensor::from_vec(v, x.dims(), x.device())?)
            };
            Ok((at(1e-6)? - at(-1e-6)?) / 2e-6)
        })
        .collect()
}
