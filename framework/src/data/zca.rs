//! ZCA whitening of a dataset, as MTT runs it on CIFAR (`--zca`).
//!
//! The reference (GeorgeCazenavette/mtt-distillation `utils.py:137-165`) keeps pixels in
//! [0, 1] (with `--zca` the per-channel `Normalize` is left out, `utils.py:58-61`), fits
//! `kornia.enhance.ZCAWhitening(eps=0.1, compute_inv=True)` on the whole train set and applies
//! it to the train and the test images; distill.py turns saved images back with its
//! `inverse_transform` (`distill.py:266-268`). kornia (`kornia/enhance/zca.py`, `zca_mean` and
//! `linear_transform`) flattens every image to one row of `D` features and computes
//!
//! - the mean `mu` of the rows and the covariance `C = (X - mu)^T (X - mu) / (N - 1)`
//!   (`unbiased=True`, the class default);
//! - `U S U^T` = the SVD of `C`; `T = U diag(1 / sqrt(S + eps)) U^T` and
//!   `T_inv = U diag(sqrt(S + eps)) U^T`;
//! - whitened rows `(x - mu) T`; the inverse `y T_inv + mu`.
//!
//! `C` is symmetric positive semi-definite, so its SVD is its eigendecomposition with the
//! eigenvalues' absolute values as singular values; `T` does not depend on how `U` is chosen
//! inside an eigenspace. cafe-lab accumulates `C` and decomposes it in f64 (faer's
//! self-adjoint eigensolver; the reference works in f32), then applies `T` in f32 as the
//! reference does.

use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, MatRef, Par, Side};

use super::ImageSet;
use crate::{Error, Result};

/// The reference's `eps` (`utils.py:147`, `ZCAWhitening(eps=0.1, ...)`).
pub const ZCA_EPS: f64 = 0.1;

/// Rows per matrix product while fitting and applying: bounds the temporary copies to
/// `ROWS x D` values (12 MiB of f32 for CIFAR) whatever the dataset's size.
const ROWS: usize = 1024;

/// A fitted ZCA whitening: the mean image, the whitening matrix and its inverse (`D x D`,
/// row-major, `D` = values per image).
#[derive(Debug, Clone, PartialEq)]
pub struct Zca {
    /// The `eps` added to every eigenvalue before the square root.
    pub eps: f64,
    mean: Vec<f32>,
    transform: Vec<f32>,
    inverse: Vec<f32>,
}

/// Reads a configuration's `zca` key: a number is the `eps`, `true` the reference's
/// [`ZCA_EPS`], `false` or `null` no whitening. `false` exists because a layer's `null` leaves
/// the layer below in place: `--set zca=false` turns off what a protocol turned on.
pub fn deserialize_zca<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Option<f64>, D::Error> {
    use serde::Deserialize;
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Setting {
        Eps(f64),
        On(bool),
    }
    Ok(match Option::<Setting>::deserialize(d)? {
        Some(Setting::Eps(eps)) => Some(eps),
        Some(Setting::On(true)) => Some(ZCA_EPS),
        Some(Setting::On(false)) | None => None,
    })
}

/// Refuses an `eps` the whitening cannot use: zero or negative would divide by a zero
/// eigenvalue (every dataset with a constant pixel, MNIST's borders for one, has one).
pub fn check_eps(eps: f64) -> Result<()> {
    if eps.is_finite() && eps > 0.0 {
        Ok(())
    } else {
        Err(Error::invalid(
            "zca",
            eps,
            format!("ZCA's eps must be a positive finite number (the reference uses {ZCA_EPS})"),
        ))
    }
}

impl Zca {
    /// Fits the whitening on `images` (kornia `ZCAWhitening.fit`).
    pub fn fit(images: &ImageSet, eps: f64) -> Result<Zca> {
        check_eps(eps)?;
        let (n, d) = (images.len(), images.shape.numel());
        if n < 2 {
            return Err(Error::invalid(
                "zca",
                format!("{n} image(s)"),
                "fitting a covariance needs at least two images",
            ));
        }
        let mut mean = vec![0.0f64; d];
        for row in images.images.chunks_exact(d) {
            for (m, &v) in mean.iter_mut().zip(row) {
                *m += v as f64;
            }
        }
        mean.iter_mut().for_each(|m| *m /= n as f64);

        let mut cov = Mat::<f64>::zeros(d, d);
        for block in images.images.chunks(ROWS * d) {
            let rows = block.len() / d;
            let centred = Mat::<f64>::from_fn(rows, d, |i, j| block[i * d + j] as f64 - mean[j]);
            matmul(
                cov.as_mut(),
                Accum::Add,
                centred.transpose(),
                centred.as_ref(),
                1.0,
                Par::rayon(0),
            );
        }
        let unbiased = (n - 1) as f64;
        let cov = Mat::<f64>::from_fn(d, d, |i, j| cov[(i, j)] / unbiased);
        let eigen = cov.self_adjoint_eigen(Side::Lower).map_err(|e| {
            Error::Other(format!(
                "ZCA: the covariance's eigendecomposition did not converge ({e:?})"
            ))
        })?;
        let (u, s) = (eigen.U(), eigen.S().column_vector());
        let scaled = |f: &dyn Fn(f64) -> f64| {
            let us = Mat::<f64>::from_fn(d, d, |i, j| u[(i, j)] * f(s[j].abs() + eps));
            let mut out = Mat::<f64>::zeros(d, d);
            matmul(
                out.as_mut(),
                Accum::Replace,
                us.as_ref(),
                u.transpose(),
                1.0,
                Par::rayon(0),
            );
            (0..d * d).map(|k| out[(k / d, k % d)] as f32).collect::<Vec<f32>>()
        };
        Ok(Zca {
            eps,
            mean: mean.iter().map(|&m| m as f32).collect(),
            transform: scaled(&|v| 1.0 / v.sqrt()),
            inverse: scaled(&|v| v.sqrt()),
        })
    }

    /// Values per image.
    pub fn features(&self) -> usize {
        self.mean.len()
    }

    /// Whitens `images` (whole images, one after the other) in place: `(x - mu) T`.
    pub fn whiten(&self, images: &mut [f32]) {
        let (mean, transform) = (&self.mean, &self.transform);
        apply(images, self.features(), transform, &|v, j| v - mean[j]);
    }

    /// Undoes [`Zca::whiten`]: `y T_inv + mu` (kornia's `inverse_transform`).
    pub fn unwhiten(&self, images: &[f32]) -> Vec<f32> {
        let mut out = images.to_vec();
        apply(&mut out, self.features(), &self.inverse, &|v, _| v);
        for row in out.chunks_exact_mut(self.features()) {
            for (v, m) in row.iter_mut().zip(&self.mean) {
                *v += m;
            }
        }
        out
    }

    /// Fits on the train set and whitens both sets (`utils.py:137-165`).
    pub fn fit_and_whiten(train: &mut ImageSet, test: &mut ImageSet, eps: f64) -> Result<Zca> {
        let zca = Self::fit(train, eps)?;
        zca.whiten(&mut train.images);
        zca.whiten(&mut test.images);
        Ok(zca)
    }
}

/// `rows <- prepare(rows) M` for every block of [`ROWS`] rows of `d` values, `M` row-major.
fn apply(values: &mut [f32], d: usize, matrix: &[f32], prepare: &dyn Fn(f32, usize) -> f32) {
    let m = MatRef::from_row_major_slice(matrix, d, d);
    for block in values.chunks_mut(ROWS * d) {
        let rows = block.len() / d;
        let input = Mat::<f32>::from_fn(rows, d, |i, j| prepare(block[i * d + j], j));
        let mut out = Mat::<f32>::zeros(rows, d);
        matmul(out.as_mut(), Accum::Replace, input.as_ref(), m, 1.0, Par::rayon(0));
        for (k, v) in block.iter_mut().enumerate() {
            *v = out[(k / d, k % d)];
        }
    }
}
