//! Accuracy per class of a network on a labelled set: which classes a synthetic set teaches
//! and which it does not (the report's per-class plot).

use candle_core::{DType, Tensor, D};

use crate::traits::architecture::{Mode, Network};
use crate::{Error, Result};

/// The overall accuracy of `net` on `images` and, for each class `0..classes`, the fraction of
/// that class's images it labels right (NaN for a class with no image), in batches of `batch`.
///
/// # Shapes
/// `images`: `[n, c, h, w]`; `labels`: `[n]` u32.
pub fn class_accuracies(
    net: &dyn Network,
    images: &Tensor,
    labels: &Tensor,
    classes: usize,
    batch: usize,
    mode: Mode,
) -> Result<(f64, Vec<f64>)> {
    let n = images.dim(0)?;
    if n == 0 {
        return Err(Error::Other("accuracy of an empty set".into()));
    }
    let mut correct = vec![0u64; classes];
    let mut total = vec![0u64; classes];
    let mut start = 0;
    while start < n {
        let len = batch.max(1).min(n - start);
        let x = images.narrow(0, start, len)?.detach();
        let y = labels.narrow(0, start, len)?;
        let pred = net.logits(&x, mode)?.detach().argmax(D::Minus1)?.to_dtype(DType::U32)?;
        let (pred, y) = (pred.to_vec1::<u32>()?, y.to_vec1::<u32>()?);
        for (p, t) in pred.iter().zip(&y) {
            if let Some(slot) = total.get_mut(*t as usize) {
                *slot += 1;
                if p == t {
                    correct[*t as usize] += 1;
                }
            }
        }
        start += len;
    }
    let overall = correct.iter().sum::<u64>() as f64 / n as f64;
    let per_class = correct
        .iter()
        .zip(&total)
        .map(|(&c, &t)| if t == 0 { f64::NAN } else { c as f64 / t as f64 })
        .collect();
    Ok((overall, per_class))
}
