//! One training epoch over an in-memory labelled set, and test accuracy.

use candle_core::{DType, Tensor, D};
use rand::seq::SliceRandom;

use crate::train::{classification_loss, Optimizer};
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

/// What a training batch is scored against: labels, soft labels, a teacher's outputs.
pub trait BatchLoss: Sync {
    /// The loss of `logits` (the network's on the batch) for the batch `x` (augmented, as the
    /// network saw it) made of the rows `idx` of the epoch's images.
    fn loss(&self, logits: &Tensor, x: &Tensor, idx: &Tensor) -> Result<Tensor>;
    /// What to say when the loss became `value`, not a finite number.
    fn non_finite(&self, value: f64) -> String;
}

/// Cross-entropy against hard labels `[n]` (u32) or soft-label logits `[n, classes]` (see
/// [`classification_loss`]).
pub struct TargetLoss<'a>(pub &'a Tensor);

impl BatchLoss for TargetLoss<'_> {
    fn loss(&self, logits: &Tensor, _x: &Tensor, idx: &Tensor) -> Result<Tensor> {
        classification_loss(logits, &self.0.index_select(idx, 0)?)
    }

    fn non_finite(&self, value: f64) -> String {
        format!("training loss became {value}; lower the learning rate or check the training images")
    }
}

/// A batch scored against a frozen teacher's outputs on the same augmented images.
pub struct TeacherLoss<'a> {
    pub net: &'a dyn Network,
    pub temperature: f64,
    /// `Mode::Eval`, or `Mode::Train`: BatchNorm with the batch's statistics, run on the
    /// teacher's parameters as given values so that its running statistics do not move.
    pub mode: Mode,
}

impl BatchLoss for TeacherLoss<'_> {
    fn loss(&self, logits: &Tensor, x: &Tensor, _idx: &Tensor) -> Result<Tensor> {
        let x = x.detach();
        let target = match self.mode {
            Mode::Eval => self.net.logits(&x, Mode::Eval)?,
            Mode::Train => {
                let params: Vec<Tensor> = self.net.parameters().iter().map(|v| v.as_tensor().detach()).collect();
                self.net.logits_with(&params, &x, Mode::Train)?
            }
        }
        .detach();
        super::loss::kd_loss(logits, &target, self.temperature, false)
    }

    fn non_finite(&self, value: f64) -> String {
        format!("distillation loss became {value}; lower the learning rate or the temperature")
    }
}

/// Trains `net` for one epoch on `images` `[n, c, h, w]` / `labels` (`[n]` u32 labels, or
/// `[n, classes]` soft-label logits: see [`classification_loss`]), shuffled by `rng`,
/// each batch augmented (independently per image) when an augmenter is given.
/// Returns the mean training loss.
pub fn train_epoch(
    net: &dyn Network,
    opt: &mut dyn Optimizer,
    images: &Tensor,
    labels: &Tensor,
    batch: usize,
    augmenter: Option<&dyn Augmenter>,
    rng: &mut Rng,
) -> Result<f64> {
    train_epoch_with(net, opt, images, batch, augmenter, rng, &TargetLoss(labels))
}

/// One epoch as [`train_epoch`], each batch scored by `loss`: the batch order is drawn from
/// `rng`, then each batch's augmentation seed, so every loss sees the same batches.
pub fn train_epoch_with(
    net: &dyn Network,
    opt: &mut dyn Optimizer,
    images: &Tensor,
    batch: usize,
    augmenter: Option<&dyn Augmenter>,
    rng: &mut Rng,
    loss: &dyn BatchLoss,
) -> Result<f64> {
    let n = images.dim(0)?;
    let mut total = 0.0;
    for idx in &batches(n, batch, Some(rng)) {
        let idx_t = Tensor::new(idx.as_slice(), images.device())?;
        let mut x = images.index_select(&idx_t, 0)?;
        if let Some(aug) = augmenter.filter(|a| !a.is_identity()) {
            x = aug.augment(&x, rand::Rng::random(rng), false)?;
        }
        let value_t = loss.loss(&net.logits(&x, Mode::Train)?, &x, &idx_t)?;
        let value = value_t.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        if !value.is_finite() {
            return Err(Error::NonFinite(loss.non_finite(value)));
        }
        total += value * idx.len() as f64;
        opt.backward_step(&value_t)?;
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
