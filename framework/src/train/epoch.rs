//! One training epoch over an in-memory labelled set, and test accuracy.

use candle_core::{DType, Tensor, D};
use rand::seq::SliceRandom;

use crate::train::{classification_loss, Sgd};
use crate::traits::architecture::{Mode, Network};
use crate::traits::augmenter::Augmenter;
use crate::{Error, Result, Rng};

/// Index batches of at most `batch` over `0..n`, shuffled with `rng` when given.
pub fn batches(n: usize, batch: usize, rng: Option<&mut Rng>) -> Vec<Vec<u32>> {
    let mut order: Vec<u32> = (0..n as u32).collect();
    if let Some(rng) = rng {
        order.shuffle(rng);
    }
    order.chunks(batch.max(1)).map(|c| c.to_vec()).collect()
}

/// Trains `net` for one epoch on `images` `[n, c, h, w]` / `labels` (`[n]` u32 labels, or
/// `[n, classes]` soft-label logits: see [`classification_loss`]), shuffled by `rng`,
/// each batch augmented (independently per image) when an augmenter is given.
/// Returns the mean training loss.
pub fn train_epoch(
    net: &dyn Network,
    opt: &mut Sgd,
    images: &Tensor,
    labels: &Tensor,
    batch: usize,
    augmenter: Option<&dyn Augmenter>,
    rng: &mut Rng,
) -> Result<f64> {
    let n = images.dim(0)?;
    let mut total = 0.0;
    for idx in &batches(n, batch, Some(rng)) {
        let idx_t = Tensor::new(idx.as_slice(), images.device())?;
        let mut x = images.index_select(&idx_t, 0)?;
        let y = labels.index_select(&idx_t, 0)?;
        if let Some(aug) = augmenter.filter(|a| !a.is_identity()) {
            x = aug.augment(&x, rand::Rng::random(rng), false)?;
        }
        let loss = classification_loss(&net.logits(&x, Mode::Train)?, &y)?;
        let value = loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        if !value.is_finite() {
            return Err(Error::NonFinite(format!(
                "training loss became {value}; lower the learning rate or check the training images"
            )));
        }
        total += value * idx.len() as f64;
        opt.backward_step(&loss)?;
    }
    Ok(total / n.max(1) as f64)
}

/// Fraction of `images` that `net` classifies as `labels`, evaluated in batches of `batch`.
pub fn accuracy(net: &dyn Network, images: &Tensor, labels: &Tensor, batch: usize, mode: Mode) -> Result<f64> {
    let n = images.dim(0)?;
    if n == 0 {
        return Err(Error::Other("accuracy of an empty set".into()));
    }
    let mut correct = 0u64;
    let mut start = 0;
    while start < n {
        let len = batch.min(n - start);
        let x = images.narrow(0, start, len)?.detach();
        let y = labels.narrow(0, start, len)?;
        let pred = net.logits(&x, mode)?.detach().argmax(D::Minus1)?;
        correct += pred.eq(&y)?.to_dtype(DType::U32)?.sum_all()?.to_scalar::<u32>()? as u64;
        start += len;
    }
    Ok(correct as f64 / n as f64)
}
