//! What every BatchNorm layer saw in one forward pass: the batch mean and (biased) variance of
//! its input, differentiable, beside the running statistics it holds.
//!
//! SRe2L's recovery (Yin et al., NeurIPS 2023) matches these to the running statistics of a
//! frozen teacher. The reference reads them with a PyTorch forward hook on every
//! `nn.BatchNorm2d` (VILA-Lab/SRe2L `SRe2L/*small_dataset/utils.py:36-45` `BNFeatureHook`:
//! `input[0].mean([0, 2, 3])` and `.var(1, unbiased=False)` of the input, and the module's
//! `running_mean` / `running_var`). Here [`record_batch_norms`] plays the hook: while its
//! closure runs, every [`super::BatchNorm2d`] forward on this thread appends a
//! [`BatchNormRecord`], in forward order, which is the order of the networks' `parameters()`
//! and of PyTorch's `modules()` for every registered network. No network needs to know.

use std::cell::RefCell;

use candle_core::Tensor;

use crate::Result;

/// One BatchNorm layer's view of one forward pass.
///
/// # Shapes
/// Every tensor is `[channels]`.
#[derive(Debug, Clone)]
pub struct BatchNormRecord {
    /// Mean of the layer's input over (N, H, W), with its graph back to the input.
    pub mean: Tensor,
    /// Biased variance of the input over (N, H, W), with its graph.
    pub var: Tensor,
    /// The layer's running mean and (unbiased) running variance, no graph.
    pub running_mean: Tensor,
    pub running_var: Tensor,
}

thread_local! {
    /// `Some` while [`record_batch_norms`] runs on this thread.
    static RECORDS: RefCell<Option<Vec<BatchNormRecord>>> = const { RefCell::new(None) };
}

/// Whether a BatchNorm forward on this thread must record what it sees.
pub(crate) fn recording() -> bool {
    RECORDS.with(|r| r.borrow().is_some())
}

/// Appends `record` when recording (nothing otherwise).
pub(crate) fn push(record: BatchNormRecord) {
    RECORDS.with(|r| {
        if let Some(list) = r.borrow_mut().as_mut() {
            list.push(record);
        }
    });
}

/// Runs `pass` (usually one forward) and returns its result with one record per BatchNorm
/// forward it made on this thread, in order. Nests: an outer recording gets nothing of an inner
/// one's layers, and is restored after it, also when `pass` panics.
pub fn record_batch_norms<T>(pass: impl FnOnce() -> Result<T>) -> Result<(T, Vec<BatchNormRecord>)> {
    struct Restore(Option<Option<Vec<BatchNormRecord>>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            if let Some(previous) = self.0.take() {
                RECORDS.with(|r| *r.borrow_mut() = previous);
            }
        }
    }
    let mut restore = Restore(Some(RECORDS.with(|r| r.borrow_mut().replace(Vec::new()))));
    let out = pass();
    let records = RECORDS.with(|r| r.borrow_mut().take()).unwrap_or_default();
    if let Some(previous) = restore.0.take() {
        RECORDS.with(|r| *r.borrow_mut() = previous);
    }
    Ok((out?, records))
}
