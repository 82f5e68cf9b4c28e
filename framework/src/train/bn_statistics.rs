//! SRe2L's BatchNorm-statistics loss: how far the batch statistics that every BatchNorm layer
//! of a frozen teacher sees are from the running statistics it learned on the real data.
//!
//! VILA-Lab/SRe2L `SRe2L/*small_dataset/utils.py:40-45` (`BNFeatureHook.hook_fn`): per layer
//! `||running_var - var||_2 + ||running_mean - mean||_2`, with `mean` and the biased `var` of
//! the layer's input over (N, H, W); `recover_cifar.py:90-97`: the layers' terms summed, the
//! first one times `first_bn_multiplier` (10). The recovery multiplies the sum by `r_bn`
//! (`recover_cifar.py:99`), which the caller does.

use candle_core::Tensor;

use crate::nn::BatchNormRecord;
use crate::{Error, Result};

/// `sum_l m_l (||running_var_l - var_l||_2 + ||running_mean_l - mean_l||_2)` over the
/// `records` of one forward pass, `m_0 = first_multiplier` and `m_l = 1` after; the gradient
/// reaches whatever the records' `mean` and `var` came from (the input images).
///
/// # Errors
/// When there is no record: a network without BatchNorm has no statistics to match.
pub fn bn_statistics_loss(records: &[BatchNormRecord], first_multiplier: f64) -> Result<Tensor> {
    if records.is_empty() {
        return Err(Error::Other(
            "the BatchNorm-statistics loss needs a network with BatchNorm layers (convnetbn, resnet18bn, \
             vgg11bn, alexnetbn); this one has none"
                .into(),
        ));
    }
    let mut total: Option<Tensor> = None;
    for (l, r) in records.iter().enumerate() {
        let dtype = r.mean.dtype();
        let l2 = |running: &Tensor, batch: &Tensor| -> Result<Tensor> {
            Ok((running.to_dtype(dtype)? - batch)?.sqr()?.sum_all()?.sqrt()?)
        };
        let term = (l2(&r.running_var, &r.var)? + l2(&r.running_mean, &r.mean)?)?;
        let term = if l == 0 { (term * first_multiplier)? } else { term };
        total = Some(match total {
            Some(t) => (t + term)?,
            None => term,
        });
    }
    Ok(total.expect("at least one record"))
}
