//! DATM's `samples_predicted_correctly` initialisation, used by every published DATM config but
//! one (NUS-HPC-AI-Lab/DATM `configs/*/ConvIN/*.yaml`; CIFAR-100 IPC50 uses `real`):
//!
//! - **images** (`distill/DATM.py:185-236`): per class, the real images in a random order, in
//!   batches of 256, keep the first `ipc` that an expert's network (eval mode, at the label
//!   epoch `Label_Model_Timestamp`, the last by default, `utils/cfg.py:136`) classifies as
//!   their class. The first expert starts; when a class runs out of images, the next expert
//!   takes over (`cur += 1`, expert `cur`; the reference counts `cur` from 0 in each class but
//!   keeps the expert in use from the class before, `:210,221`), keeping what was found.
//! - **labels** (`DATM.py:270-307`): every expert's logits on those images (eval mode, label
//!   epoch); each image's soft-label logits are the mean of the logits of the experts that
//!   classify it correctly.

use std::collections::BTreeSet;
use std::path::PathBuf;

use candle_core::{Device, Tensor};
use rand::seq::SliceRandom;

use crate::data::Dataset;
use crate::synthetic::check_ipc;
use crate::traits::architecture::{Mode, Network};
use crate::{Error, Result, Rng};

use super::store::ExpertTrajectory;

/// The reference's batch size for both passes (`DATM.py:213,281`).
const BATCH: usize = 256;

/// The experts a DATM initialisation reads, in store order, and the epoch it reads of each.
pub struct LabelExperts<'a> {
    pub files: &'a [PathBuf],
    /// None: each expert's last epoch (`Label_Model_Timestamp = -1`).
    pub epoch: Option<usize>,
    /// A network of the run's architecture (only its structure is used).
    pub network: &'a dyn Network,
    pub device: &'a Device,
}

impl LabelExperts<'_> {
    fn params(&self, k: usize) -> Result<Vec<Tensor>> {
        ExpertTrajectory::load_epoch(&self.files[k], self.device, self.epoch)
    }

    /// Predicted classes of `x` (no graph), in batches of [`BATCH`].
    fn logits(&self, params: &[Tensor], x: &Tensor) -> Result<Tensor> {
        let n = x.dim(0)?;
        let mut parts = Vec::new();
        let mut at = 0;
        while at < n {
            let len = BATCH.min(n - at);
            let batch = x.narrow(0, at, len)?.detach();
            parts.push(self.network.logits_with(params, &batch, Mode::Eval)?.detach());
            at += len;
        }
        Ok(Tensor::cat(&parts, 0)?)
    }

    /// The initial images `[classes * ipc, c, h, w]`, class-major (`DATM.py:185-236`).
    pub fn select_images(&self, dataset: &Dataset, ipc: usize, rng: &mut Rng) -> Result<Tensor> {
        if self.files.is_empty() {
            return Err(Error::Other("DATM's initialisation needs at least one expert".into()));
        }
        let by_class = check_ipc(&dataset.train, dataset.classes, ipc)?;
        let mut expert = 0;
        let mut params = self.params(expert)?;
        let mut chosen = Vec::with_capacity(dataset.classes);
        for (c, indices) in by_class.iter().enumerate() {
            // get_images(c, len(indices_class[c])): the whole class in a random order.
            let mut order = indices.clone();
            order.shuffle(rng);
            let (images, _) = dataset.train.to_tensor(&order, self.device)?;
            let mut found = BTreeSet::new();
            let mut cur = 0;
            let mut start = 0;
            while found.len() < ipc {
                if start > order.len() {
                    // DATM.py:218-225: the class ran out; the next expert takes over.
                    cur += 1;
                    if cur > self.files.len() {
                        return Err(Error::Other(format!(
                            "DATM's samples_predicted_correctly: the {} expert(s) classify only {} image(s) of \
                             class {c} correctly at the label epoch, {ipc} are needed (use init real, or \
                             better-trained experts)",
                            self.files.len(),
                            found.len()
                        )));
                    }
                    expert = cur % self.files.len();
                    params = self.params(expert)?;
                    start = 0;
                    continue;
                }
                let len = BATCH.min(order.len() - start);
                if len > 0 {
                    let predicted = self.logits(&params, &images.narrow(0, start, len)?)?.argmax(1)?;
                    for (i, p) in predicted.to_vec1::<u32>()?.into_iter().enumerate() {
                        if p as usize == c && found.len() < ipc {
                            found.insert(start + i);
                        }
                    }
                }
                start += BATCH;
            }
            let rows: Vec<u32> = found.into_iter().map(|i| i as u32).collect();
            chosen.push(images.index_select(&Tensor::new(rows.as_slice(), self.device)?, 0)?);
        }
        Ok(Tensor::cat(&chosen, 0)?)
    }

    /// The soft-label logits `[n, classes]` of `images` with class-major `labels`: per image
    /// the mean of the logits of the experts that classify it correctly (`DATM.py:282-307`).
    pub fn average_correct_logits(&self, images: &Tensor, labels: &Tensor) -> Result<Tensor> {
        let labels: Vec<u32> = labels.to_vec1::<u32>()?;
        let mut sum: Option<Tensor> = None;
        let mut count = vec![0f32; labels.len()];
        for k in 0..self.files.len() {
            let logits = self.logits(&self.params(k)?, images)?;
            let predicted = logits.argmax(1)?.to_vec1::<u32>()?;
            let mask: Vec<f32> = predicted
                .iter()
                .zip(&labels)
                .map(|(p, y)| f32::from(u8::from(p == y)))
                .collect();
            for (c, m) in count.iter_mut().zip(&mask) {
                *c += m;
            }
            let mask = Tensor::from_vec(mask, (labels.len(), 1), self.device)?.to_dtype(logits.dtype())?;
            let correct = logits.broadcast_mul(&mask)?;
            sum = Some(match sum {
                Some(s) => (s + correct)?,
                None => correct,
            });
        }
        if let Some(i) = count.iter().position(|&c| c == 0.0) {
            return Err(Error::Other(format!(
                "DATM's label initialisation: no expert classifies synthetic image {i} (class {}) correctly, \
                 so its soft label is undefined (the reference divides by zero, DATM.py:306)",
                labels[i]
            )));
        }
        let sum = sum.ok_or_else(|| Error::Other("DATM's initialisation needs at least one expert".into()))?;
        let count = Tensor::from_vec(count, (labels.len(), 1), self.device)?.to_dtype(sum.dtype())?;
        Ok(sum.broadcast_div(&count)?)
    }
}
