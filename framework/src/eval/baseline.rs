//! The `random` baseline: `ipc` random real images per class, evaluated like a synthetic set
//! under the same networks.

use candle_core::{Device, Tensor};

use crate::data::Dataset;
use crate::rng::{stream, sub_rng};
use crate::synthetic::{class_major_labels, random_real_subset};
use crate::Result;

use super::evaluator::Evaluator;
use super::trainer::{Evaluation, TrainingSet};

/// The baseline's images and labels: `ipc` random real images per class, class-major, drawn
/// from the run seed's baseline stream (the same subset for every evaluation of a run).
pub fn random_subset(ds: &Dataset, ipc: usize, seed: u64, device: &Device) -> Result<(Tensor, Tensor)> {
    let mut rng = sub_rng(seed, &[stream::BASELINE]);
    let idx = random_real_subset(&ds.train, ds.classes, ipc, &mut rng)?;
    let (images, _) = ds.train.to_tensor(&idx, device)?;
    let labels = class_major_labels(ds.classes, ipc, device)?;
    Ok((images, labels))
}

impl Evaluator<'_> {
    /// The random subset's images and labels (see [`random_subset`]).
    pub fn random_subset(&self) -> Result<(Tensor, Tensor)> {
        random_subset(self.ds, self.ipc, self.plan.seed, self.device)
    }

    /// The random subset evaluated on every evaluation architecture.
    pub fn random_baseline(&self) -> Result<Vec<Evaluation>> {
        let (images, labels) = self.random_subset()?;
        self.on_archs(&TrainingSet::labelled("random", &images, &labels))
    }
}
