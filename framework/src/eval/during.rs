//! Evaluation during condensation (`--eval-every N`) on a validation split held out of the
//! training set, and the choice of the set that is kept (`--select final|best-val`).
//!
//! The split is taken out of the training set before anything else sees it, so the
//! condensation, the random baseline and the whole-set reference never train on it. The
//! curve and the choice are made on it alone: the test set is sealed (emptied) for the whole
//! condensation and handed back only to the final evaluation. MTT, TESLA and DATM keep
//! `images_best.pt` chosen by test accuracy; this is the honest version of that choice.

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::config::Select;
use crate::data::{Dataset, ImageSet};
use crate::dist::Comm;
use crate::logging::MetricLogger;
use crate::rng::{derive_seed, stream, sub_rng};
use crate::synthetic::SyntheticSet;
use crate::{Error, Result};

use super::plan::{DuringPlan, EvalPlan};
use super::trainer::{evaluate_set, EvalJob, Supervision, TrainingSet};

/// One evaluation during condensation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ValPoint {
    /// Iterations done when it was taken.
    pub iteration: usize,
    /// Validation accuracy of each network, its mean and population std.
    pub accuracies: Vec<f64>,
    pub mean: f64,
    pub std: f64,
}

/// Which set was kept, and why.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Selection {
    /// `final` or `best-val`.
    pub rule: String,
    /// The iteration whose set was kept.
    pub iteration: usize,
    /// Its validation accuracy (None when no evaluation ran before the end).
    pub validation_accuracy: Option<f64>,
    /// Validation images per class and in all.
    pub val_per_class: usize,
    pub val_images: usize,
}

/// Takes `per_class` random images of every class out of `ds.train` (a seeded draw) and
/// returns them as the validation set.
pub fn split_validation(ds: &mut Dataset, per_class: usize, ipc: usize, seed: u64) -> Result<ImageSet> {
    let by_class = ds.train.class_indices(ds.classes);
    for (c, idx) in by_class.iter().enumerate() {
        if per_class + ipc.max(1) > idx.len() {
            let name = ds.class_names.get(c).cloned().unwrap_or_else(|| c.to_string());
            return Err(Error::invalid(
                "eval.val_per_class",
                per_class,
                format!(
                    "class '{name}' of {} has {} training images: a validation split of {per_class} per class \
                     would leave fewer than ipc {ipc} to train on; use at most {}",
                    ds.name,
                    idx.len(),
                    idx.len().saturating_sub(ipc.max(1))
                ),
            ));
        }
    }
    let mut rng = sub_rng(seed, &[stream::SPLIT]);
    let mut held = vec![false; ds.train.len()];
    for idx in &by_class {
        for i in rand::seq::index::sample(&mut rng, idx.len(), per_class) {
            held[idx[i]] = true;
        }
    }
    let (val_idx, train_idx): (Vec<usize>, Vec<usize>) = (0..ds.train.len()).partition(|&i| held[i]);
    let (images, labels) = ds.train.gather(&val_idx);
    let val = ImageSet {
        images,
        labels,
        shape: ds.train.shape,
    };
    let (images, labels) = ds.train.gather(&train_idx);
    ds.train = ImageSet {
        images,
        labels,
        shape: ds.train.shape,
    };
    Ok(val)
}

/// Empties `ds.test` for the condensation and returns it for the final evaluation.
pub fn seal_test_set(ds: &mut Dataset) -> ImageSet {
    let empty = ImageSet {
        images: Vec::new(),
        labels: Vec::new(),
        shape: ds.test.shape,
    };
    std::mem::replace(&mut ds.test, empty)
}

/// A copy of the set at one iteration: its pixels and its learned extras (step size, soft
/// labels), so that `best-val` keeps all of what made its accuracy.
struct Snapshot {
    accuracy: f64,
    iteration: usize,
    images: Tensor,
    learned: Vec<(String, Tensor)>,
}

/// Evaluation during condensation: owns the validation set and what it has seen.
pub struct DuringEval {
    plan: DuringPlan,
    device: Device,
    seed: u64,
    classes: usize,
    val: ImageSet,
    total: usize,
    quiet: bool,
    comm: Comm,
    pub curve: Vec<ValPoint>,
    /// The best set so far.
    best: Option<Snapshot>,
}

impl DuringEval {
    /// Splits the validation set off `ds.train` when the plan evaluates during condensation
    /// of `iterations` iterations of a set of `ipc` images per class.
    pub fn prepare(
        plan: &EvalPlan,
        ds: &mut Dataset,
        ipc: usize,
        iterations: usize,
        device: &Device,
        quiet: bool,
        comm: Comm,
    ) -> Result<Option<Self>> {
        let Some(during) = &plan.during else {
            return Ok(None);
        };
        let val = split_validation(ds, during.val_per_class, ipc, plan.seed)?;
        Ok(Some(Self {
            plan: during.clone(),
            device: device.clone(),
            seed: plan.seed,
            classes: ds.classes,
            val,
            total: iterations,
            quiet: quiet || comm.rank() != 0,
            comm,
            curve: Vec::new(),
            best: None,
        }))
    }

    /// After iteration `done` (1-based): every `every` iterations and at the last, trains
    /// `during_nets` networks on the set and tests them on the validation split.
    pub fn after_iteration(&mut self, done: usize, syn: &SyntheticSet, logger: &mut dyn MetricLogger) -> Result<()> {
        if !(done.is_multiple_of(self.plan.every) || done == self.total) {
            return Ok(());
        }
        // As the final evaluation trains on the set: its soft labels and step size if learned.
        let targets = syn.training_targets();
        let images = syn.images_detached().copy()?;
        let set = TrainingSet {
            name: "synthetic",
            images: &images,
            supervision: Supervision::Targets(&targets),
            lr: syn.learned_lr()?,
        };
        let job = EvalJob {
            arch: &self.plan.arch,
            classes: self.classes,
            shape: self.val.shape,
            test: &self.val,
            test_limit: None,
            device: &self.device,
            // The same initialisations at every point, so that the curve compares sets.
            seed: derive_seed(self.seed, &[stream::DURING]),
            on_network: None,
            comm: self.comm.as_ref(),
            // The condensation stops at its own iteration boundary (engine::condense).
            interrupt: None,
        };
        let ev = evaluate_set(&job, &set)?;
        logger.scalar("validation/accuracy", done, ev.mean);
        if !self.quiet {
            eprintln!(
                "validation at iteration {done}: {} over {} networks",
                ev.summary(),
                ev.accuracies.len()
            );
        }
        if self.plan.select == Select::BestVal && self.best.as_ref().is_none_or(|b| ev.mean > b.accuracy) {
            let learned = syn
                .learned
                .iter()
                .map(|l| Ok((l.name.clone(), l.var.as_tensor().detach().copy()?)))
                .collect::<Result<_>>()?;
            self.best = Some(Snapshot {
                accuracy: ev.mean,
                iteration: done,
                images,
                learned,
            });
        }
        self.curve.push(ValPoint {
            iteration: done,
            accuracies: ev.accuracies,
            mean: ev.mean,
            std: ev.std,
        });
        Ok(())
    }

    /// Puts the chosen set into `syn` (the best by validation accuracy under `best-val`) and
    /// says which it is.
    pub fn select(&mut self, syn: &SyntheticSet, iterations_done: usize) -> Result<Selection> {
        let last = self.curve.last().filter(|p| p.iteration == iterations_done);
        let (rule, iteration, acc) = match self.best.take() {
            Some(best) => {
                syn.images.set(&best.images)?;
                for (name, value) in &best.learned {
                    if let Some(var) = syn.learned(name) {
                        var.set(value)?;
                    }
                }
                ("best-val", best.iteration, Some(best.accuracy))
            }
            None => ("final", iterations_done, last.map(|p| p.mean)),
        };
        Ok(Selection {
            rule: rule.into(),
            iteration,
            validation_accuracy: acc,
            val_per_class: self.plan.val_per_class,
            val_images: self.val.len(),
        })
    }
}
