//! DC's distances between two lists of per-parameter gradients (`dis_metric`), as in the
//! reference's `match_loss` / `distance_wb` (DC, ICLR 2021).
//!
//! - `ours`: per parameter tensor, rows compared by cosine: a conv weight `(out, in, h, w)` as
//!   `(out, in*h*w)`, a `(C, h, w)` tensor as `(C, h*w)`, a linear weight as is; the distance
//!   sums `1 - cos(row_real, row_syn)` with 1e-6 added to the norm product. 1-D tensors
//!   (biases, norm scales) count 0.
//! - `mse`: squared L2 between the flattened, concatenated gradient vectors (sum).
//! - `cos`: `1 - cos` between the flattened, concatenated vectors (1e-6 in the denominator).

use cafe_framework::{Error, Result};
use candle_core::{Tensor, D};
use serde::{Deserialize, Serialize};

/// Which distance compares the gradients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DisMetric {
    #[default]
    Ours,
    Mse,
    Cos,
}

/// `sqrt(x + tiny)`: the norm's derivative stays finite (0, not NaN) on all-zero rows, where
/// PyTorch's norm backward also gives 0. The value moves by less than 1e-10.
fn safe_norm(sum_sq: &Tensor) -> Result<Tensor> {
    Ok((sum_sq + 1e-20)?.sqrt()?)
}

/// The `ours` distance of one parameter's gradients; `None` for 1-D tensors.
fn layer_distance(real: &Tensor, syn: &Tensor) -> Result<Option<Tensor>> {
    let dims = real.dims().to_vec();
    let (r, s) = match dims.len() {
        1 | 0 => return Ok(None),
        2 => (real.clone(), syn.clone()),
        n => {
            let rows = dims[0];
            let cols: usize = dims[1..n].iter().product();
            (real.reshape((rows, cols))?, syn.reshape((rows, cols))?)
        }
    };
    let dot = (&r * &s)?.sum(D::Minus1)?;
    let norms = (safe_norm(&r.sqr()?.sum(D::Minus1)?)? * safe_norm(&s.sqr()?.sum(D::Minus1)?)?)?;
    let cos = dot.div(&(norms + 1e-6)?)?;
    Ok(Some(cos.affine(-1.0, 1.0)?.sum_all()?))
}

/// The distance between `real` and `syn`, each one gradient per parameter tensor, in the same
/// order. Returns a scalar tensor that keeps the graph of `syn`.
pub fn gradient_distance(metric: DisMetric, real: &[Tensor], syn: &[Tensor]) -> Result<Tensor> {
    if real.len() != syn.len() || real.is_empty() {
        return Err(Error::Other(format!(
            "gradient_distance needs one real and one synthetic gradient per parameter, got {} and {}",
            real.len(),
            syn.len()
        )));
    }
    let device = syn[0].device();
    let dtype = syn[0].dtype();
    match metric {
        DisMetric::Ours => {
            let mut total = Tensor::zeros((), dtype, device)?;
            for (r, s) in real.iter().zip(syn) {
                if let Some(d) = layer_distance(r, s)? {
                    total = (total + d)?;
                }
            }
            Ok(total)
        }
        DisMetric::Mse | DisMetric::Cos => {
            let r = Tensor::cat(
                &real
                    .iter()
                    .map(|t| t.flatten_all())
                    .collect::<candle_core::Result<Vec<_>>>()?,
                0,
            )?;
            let s = Tensor::cat(
                &syn.iter()
                    .map(|t| t.flatten_all())
                    .collect::<candle_core::Result<Vec<_>>>()?,
                0,
            )?;
            if metric == DisMetric::Mse {
                Ok((r - s)?.sqr()?.sum_all()?)
            } else {
                let dot = (&r * &s)?.sum_all()?;
                let norms = (safe_norm(&r.sqr()?.sum_all()?)? * safe_norm(&s.sqr()?.sum_all()?)?)?;
                Ok(dot.div(&(norms + 1e-6)?)?.affine(-1.0, 1.0)?)
            }
        }
    }
}
