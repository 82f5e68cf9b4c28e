//! The classification losses a network trains with: cross-entropy against hard labels, and
//! against soft labels given as logits (learned soft labels, DATM), chosen by the targets' type;
//! and the distillation loss against a teacher's outputs (KD evaluation).

use candle_core::{DType, Tensor, D};

use crate::{Error, Result};

/// Mean cross-entropy of `logits` `[n, k]` against `labels` `[n]` (u32).
pub fn cross_entropy(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    Ok(candle_nn::loss::cross_entropy(logits, labels)?)
}

/// Mean cross-entropy of `logits` `[n, k]` against the distributions `softmax(target_logits)`
/// `[n, k]`: `sum(-log_softmax(logits) * softmax(target_logits)) / n`, DATM's `SoftCrossEntropy`
/// (NUS-HPC-AI-Lab/DATM `distill/DATM.py:255-260`). Differentiable in both arguments.
pub fn soft_cross_entropy(logits: &Tensor, target_logits: &Tensor) -> Result<Tensor> {
    if logits.dims() != target_logits.dims() {
        return Err(Error::Other(format!(
            "soft cross-entropy: logits {:?} and soft-label logits {:?} differ in shape",
            logits.dims(),
            target_logits.dims()
        )));
    }
    let n = logits.dim(0)? as f64;
    let log_p = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    let q = candle_nn::ops::softmax(target_logits, D::Minus1)?;
    Ok(((log_p * q)?.sum_all()?.neg()? / n)?)
}

/// The training loss for `targets`: hard labels (`[n]`, u32) or soft-label logits (`[n, k]`,
/// float), the two forms a synthetic set's targets take.
pub fn classification_loss(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    match (targets.rank(), targets.dtype()) {
        (1, DType::U32) => cross_entropy(logits, targets),
        (2, DType::F32 | DType::F64) => soft_cross_entropy(logits, &targets.to_dtype(logits.dtype())?),
        (rank, dtype) => Err(Error::Other(format!(
            "training targets must be labels [n] (u32) or soft-label logits [n, classes] (float); found \
             rank {rank} {dtype:?}"
        ))),
    }
}

/// The distillation loss: KL(softmax(teacher / T) || softmax(student / T)), summed over classes
/// and averaged over the batch (`batchmean`), times T^2 when `scale` (`kl.py:12-19`). The
/// teacher's logits carry no gradient.
///
/// # Shapes
/// `student`, `teacher`: `[n, classes]`.
pub fn kd_loss(student: &Tensor, teacher: &Tensor, temperature: f64, scale: bool) -> Result<Tensor> {
    let n = student.dim(0)? as f64;
    let log_q = candle_nn::ops::log_softmax(&(student / temperature)?, D::Minus1)?;
    let log_p = candle_nn::ops::log_softmax(&(teacher.detach() / temperature)?, D::Minus1)?;
    let p = log_p.exp()?;
    let kl = (p * (log_p - log_q)?)?.sum_all()?;
    let factor = if scale { temperature * temperature } else { 1.0 } / n;
    Ok((kl * factor)?)
}
