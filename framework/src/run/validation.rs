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

use crate::config::RunConfig;
use crate::data::{Dataset, ImageSet};
use crate::evaluate::{evaluate_set, EvalSetup};
use crate::logging::MetricLogger;
use crate::registry::find;
use crate::rng::{derive_seed, sub_rng};
use crate::synthetic::SyntheticSet;
use crate::traits::architecture::Architecture;
use crate::{Error, Result};

use super::evaluation::{eval_arch_names, eval_augmenter_for, eval_epochs};
use super::resolve::{build_plugin, ResolvedRun};

/// Seed streams of the split and of the networks trained during condensation (apart from the
/// engine's streams, so that a run without `--eval-every` draws exactly as before).
const SPLIT_STREAM: u64 = 0x7A1_5917;
const DURING_STREAM: u64 = 0x7A1_E7A1;

/// `--select`: which synthetic set is kept.
pub const SELECT_RULES: [&str; 2] = ["final", "best-val"];

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

/// Refuses `--eval-every`/`--select` settings that cannot work, before any work.
pub(crate) fn validate_during(config: &RunConfig) -> Result<()> {
    let e = &config.eval;
    if !SELECT_RULES.contains(&e.select.as_str()) {
        return Err(Error::invalid(
            "eval.select",
            &e.select,
            format!("valid rules: {}", SELECT_RULES.join(", ")),
        ));
    }
    if e.select == "best-val" && e.every == 0 {
        return Err(Error::invalid(
            "eval.select",
            "best-val",
            "choosing by validation accuracy needs evaluations during condensation: add --eval-every N",
        ));
    }
    if e.every > 0 && (e.val_per_class == 0 || e.during_nets == 0 || e.during_epochs == Some(0)) {
        return Err(Error::invalid(
            "eval.val_per_class / eval.during_nets / eval.during_epochs",
            0,
            "evaluation during condensation needs validation images and at least one network trained one epoch",
        ));
    }
    Ok(())
}

/// Takes `per_class` random images of every class out of `ds.train` (a seeded draw) and
/// returns them as the validation set.
pub(crate) fn split_validation(ds: &mut Dataset, per_class: usize, ipc: usize, seed: u64) -> Result<ImageSet> {
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
    let mut rng = sub_rng(seed, &[SPLIT_STREAM]);
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
pub(crate) fn seal_test_set(ds: &mut Dataset) -> ImageSet {
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
pub(crate) struct DuringEval {
    config: RunConfig,
    arch: Box<dyn Architecture>,
    arch_name: String,
    device: Device,
    seed: u64,
    classes: usize,
    val: ImageSet,
    val_per_class: usize,
    every: usize,
    total: usize,
    keep_best: bool,
    quiet: bool,
    pub curve: Vec<ValPoint>,
    /// The best set so far.
    best: Option<Snapshot>,
}

impl DuringEval {
    /// Splits the validation set off `ds.train` when the run evaluates during condensation.
    pub(crate) fn prepare(run: &ResolvedRun, ds: &mut Dataset, quiet: bool) -> Result<Option<Self>> {
        let e = &run.config.eval;
        if e.every == 0 {
            return Ok(None);
        }
        let val = split_validation(ds, e.val_per_class, run.settings.ipc, run.settings.seed)?;
        // The first evaluation architecture, as the final evaluation builds it.
        let name = eval_arch_names(&run.config)?.remove(0);
        let (arch, arch_name) = if name == run.config.arch.name.to_ascii_lowercase() {
            let (arch, _, plugin) = build_plugin::<dyn Architecture>(&run.config.arch)?;
            (arch, plugin.name.to_string())
        } else {
            let plugin = find::<dyn Architecture>(&name)?;
            (plugin.instantiate(&serde_json::Value::Null)?, plugin.name.to_string())
        };
        let mut config = run.config.clone();
        config.eval.nets = e.during_nets;
        config.eval.test_limit = None;
        Ok(Some(Self {
            config,
            arch,
            arch_name,
            device: run.device.clone(),
            seed: run.settings.seed,
            classes: ds.classes,
            val,
            val_per_class: e.val_per_class,
            every: e.every,
            total: run.settings.iterations,
            keep_best: e.select == "best-val",
            quiet,
            curve: Vec::new(),
            best: None,
        }))
    }

    /// After iteration `done` (1-based): every `every` iterations and at the last, trains
    /// `during_nets` networks on the set and tests them on the validation split.
    pub(crate) fn after_iteration(
        &mut self,
        done: usize,
        syn: &SyntheticSet,
        logger: &mut dyn MetricLogger,
    ) -> Result<()> {
        if !(done.is_multiple_of(self.every) || done == self.total) {
            return Ok(());
        }
        let (augmenter, augment_name) = eval_augmenter_for(&self.config, &self.arch_name.to_ascii_lowercase())?;
        let epochs = self
            .config
            .eval
            .during_epochs
            .unwrap_or_else(|| eval_epochs(&self.config, augmenter.as_ref()));
        // As the final evaluation trains on the set: its soft labels and step size if learned.
        let targets = syn.training_targets();
        let eval_config = crate::config::EvalConfig {
            lr: syn.learned_lr()?.unwrap_or(self.config.eval.lr),
            ..self.config.eval.clone()
        };
        let setup = EvalSetup {
            arch: self.arch.as_ref(),
            arch_name: &self.arch_name,
            classes: self.classes,
            shape: self.val.shape,
            test: &self.val,
            config: &eval_config,
            augmenter: augmenter.as_ref(),
            augment_name: &augment_name,
            epochs,
            device: &self.device,
            // The same initialisations at every point, so that the curve compares sets.
            seed: derive_seed(self.seed, &[DURING_STREAM]),
            on_network: None,
        };
        let images = syn.images_detached().copy()?;
        let ev = evaluate_set(&setup, "synthetic", &images, &targets)?;
        logger.scalar("validation/accuracy", done, ev.mean);
        if !self.quiet {
            eprintln!(
                "validation at iteration {done}: {} over {} networks",
                ev.summary(),
                ev.accuracies.len()
            );
        }
        if self.keep_best && self.best.as_ref().is_none_or(|b| ev.mean > b.accuracy) {
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
    pub(crate) fn select(&mut self, syn: &SyntheticSet, iterations_done: usize) -> Result<Selection> {
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
            val_per_class: self.val_per_class,
            val_images: self.val.len(),
        })
    }
}
