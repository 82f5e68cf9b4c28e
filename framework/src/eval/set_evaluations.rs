//! The whole evaluation of a synthetic set, as `condense` and `evaluate` run it: the final
//! evaluation (with its learned step size and soft labels), the random baseline, DD-Ranking's
//! metrics and the KD evaluations, in that order.

use std::path::Path;

use crate::metrics::FairMetrics;
use crate::synthetic::SyntheticSet;
use crate::Result;

use super::evaluator::Evaluator;
use super::kd::KdSummary;
use super::trainer::{Evaluation, Supervision, TrainingSet};

/// Everything the evaluation of a synthetic set produced.
#[derive(Default)]
pub struct SetEvaluations {
    pub evaluations: Vec<Evaluation>,
    pub metrics: Vec<FairMetrics>,
    pub kd: Option<KdSummary>,
}

impl Evaluator<'_> {
    /// Everything the plan asks of a synthetic set: the final evaluation (with its learned
    /// step size and soft labels), the random baseline, DD-Ranking's metrics and the KD
    /// evaluations; a trained teacher is saved in `out`.
    pub fn synthetic_set(&self, syn: &SyntheticSet, out: &Path) -> Result<SetEvaluations> {
        let images = syn.images_detached();
        let targets = syn.training_targets();
        let set = TrainingSet {
            name: "synthetic",
            images: &images,
            supervision: Supervision::Targets(&targets),
            lr: syn.learned_lr()?,
        };
        let mut evaluations = self.on_archs(&set)?;
        if self.plan.baseline {
            evaluations.extend(self.random_baseline()?);
        }
        let mut metrics = self.fair_metrics(&set, &syn.labels, &mut evaluations)?;
        let kd = self.kd(&images, out, &evaluations)?;
        evaluations.extend(kd.evaluations);
        metrics.extend(kd.metrics);
        Ok(SetEvaluations {
            evaluations,
            metrics,
            kd: kd.summary,
        })
    }
}
