//! The one evaluation trainer: fresh networks trained on a set only (hard labels, soft labels
//! or a teacher's outputs), each tested on the real test set, as the papers evaluate
//! (DatasetCondensation `utils.py:341-355` `evaluate_synset`).

use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::{DType, Device, Tensor};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::data::ImageSet;
use crate::dist::{gather_f64_tasks, Communicator};
use crate::metrics::{class_accuracies, mean_std};
use crate::rng::{stream, sub_rng};
use crate::train::{train_epoch_with, BatchLoss, TargetLoss, TeacherLoss};
use crate::traits::architecture::{Mode, Network};
use crate::{Error, ImageShape, Result, Rng};

use super::plan::ArchPlan;
use super::recipe::{Report, TrainRecipe};

/// Test images per forward pass: large enough to be fast, small enough for any network.
const TEST_BATCH: usize = 500;

/// The evaluation of one training set on one architecture.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Evaluation {
    /// Which training set: `synthetic`, `random` (baseline), or a file name.
    pub set: String,
    pub arch: String,
    /// Test accuracy of each network, as fractions in [0, 1].
    pub accuracies: Vec<f64>,
    pub mean: f64,
    /// Population standard deviation (numpy's default, as the reference code reports).
    pub std: f64,
    pub train_images: usize,
    pub test_images: usize,
    /// The reference's `epoch_eval_train` E (each network trained E + 1 epochs).
    pub epochs: usize,
    /// The augmentation used while training the networks (e.g. `dc:crop_noise`, `none`).
    pub augment: String,
    /// Test accuracy of each class (fractions), averaged over the networks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub per_class: Vec<f64>,
    /// The networks' starting learning rate: `eval.lr`, or the step size the set learned (MTT).
    #[serde(default)]
    pub lr: Option<f64>,
    /// True when the networks trained against the set's learned soft labels.
    #[serde(default)]
    pub soft_labels: bool,
    /// `best_test` when each accuracy is the best of the network's late tests (RDED's rule,
    /// `eval.kd_recipe.report`); absent for the final accuracy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<String>,
}

impl Evaluation {
    /// `"84.12 +- 0.53 %"`.
    pub fn summary(&self) -> String {
        format!("{:.2} +- {:.2} %", 100.0 * self.mean, 100.0 * self.std)
    }
}

/// What the networks of an evaluation learn from.
#[derive(Clone, Copy)]
pub enum Supervision<'a> {
    /// Hard labels `[n]` (u32), or soft-label logits `[n, classes]` (float) trained with the
    /// soft cross-entropy (`train::soft_cross_entropy`).
    Targets(&'a Tensor),
    /// A frozen teacher's outputs on each augmented batch, softened at `temperature`
    /// (knowledge distillation, see [`super::kd`] and [`crate::train::kd_loss`]).
    Teacher {
        net: &'a dyn Network,
        temperature: f64,
        /// `Mode::Eval` (running statistics) or `Mode::Train` (the student batch's; the
        /// teacher's running statistics stay as they are).
        mode: Mode,
    },
}

/// What the evaluation networks train on: images in normalised space `[n, c, h, w]`, what
/// they learn from and, for a set that learned one, its step size, which replaces the
/// recipe's lr as MTT evaluates (mtt-distillation `distill.py:210`).
#[derive(Clone, Copy)]
pub struct TrainingSet<'a> {
    pub name: &'a str,
    pub images: &'a Tensor,
    pub supervision: Supervision<'a>,
    pub lr: Option<f64>,
}

impl<'a> TrainingSet<'a> {
    /// Images with hard labels `[n]`, trained at the recipe's lr.
    pub fn labelled(name: &'a str, images: &'a Tensor, labels: &'a Tensor) -> Self {
        Self {
            name,
            images,
            supervision: Supervision::Targets(labels),
            lr: None,
        }
    }

    /// The same set under another name.
    pub fn named(self, name: &'a str) -> Self {
        Self { name, ..self }
    }
}

/// One evaluation of one set: the architecture with its augmentation and recipe, the data's
/// shape, the test it ends with, the device, the seed and the ranks that share the networks.
pub struct EvalJob<'a> {
    pub arch: &'a ArchPlan,
    pub classes: usize,
    pub shape: ImageShape,
    pub test: &'a ImageSet,
    /// Test on at most this many images of `test` (None: all).
    pub test_limit: Option<usize>,
    pub device: &'a Device,
    /// Network `k` draws everything from `sub_rng(seed, [stream::EVAL_NETWORK, k])`, so every
    /// set evaluated under one seed meets the same initialisations.
    pub seed: u64,
    /// Called after each network this rank trained, with (index, accuracy).
    pub on_network: Option<&'a (dyn Fn(usize, f64) + Sync)>,
    /// The ranks among which the networks are shared out (a task farm: network `k` is the same
    /// whichever rank trains it).
    pub comm: &'a dyn Communicator,
    /// Set (by Ctrl-C) to stop before the next network: [`Error::EvaluationInterrupted`].
    pub interrupt: Option<&'a AtomicBool>,
}

/// Trains one fresh network of `arch` under `recipe` on `images`, each batch scored by
/// `supervision`, all draws from `rng` (its initialisation first), calling `after_epoch(e,
/// network)` after each epoch `e`.
#[allow(clippy::too_many_arguments)]
pub fn train_network(
    arch: &ArchPlan,
    recipe: &TrainRecipe,
    shape: ImageShape,
    classes: usize,
    device: &Device,
    images: &Tensor,
    supervision: Supervision,
    rng: &mut Rng,
    after_epoch: &mut dyn FnMut(usize, &dyn Network) -> Result<()>,
) -> Result<Box<dyn Network>> {
    let net = arch.arch.build(shape, classes, DType::F32, device, rng)?;
    let loss: Box<dyn BatchLoss + '_> = match supervision {
        Supervision::Targets(targets) => Box::new(TargetLoss(targets)),
        Supervision::Teacher { net, temperature, mode } => Box::new(TeacherLoss { net, temperature, mode }),
    };
    let augmenter = Some(arch.augmentation.augmenter.as_ref());
    recipe.run(net.parameters(), |e, opt| {
        train_epoch_with(net.as_ref(), opt, images, recipe.batch, augmenter, rng, loss.as_ref())?;
        after_epoch(e, net.as_ref())
    })?;
    Ok(net)
}

/// The first `limit` images of `test` (all without a limit) as tensors on `device`.
pub fn test_tensors(test: &ImageSet, limit: Option<usize>, device: &Device) -> Result<(Tensor, Tensor)> {
    let n = limit.map_or(test.len(), |l| l.min(test.len()));
    test.to_tensor(&(0..n).collect::<Vec<_>>(), device)
}

/// Test accuracy of `net`, overall and per class.
pub fn test_network(net: &dyn Network, test: &(Tensor, Tensor), classes: usize) -> Result<(f64, Vec<f64>)> {
    class_accuracies(net, &test.0, &test.1, classes, TEST_BATCH, Mode::Eval)
}

/// Trains `recipe.nets` fresh networks (`recipe.parallel` at a time) on `set` and tests each.
pub fn evaluate_set(job: &EvalJob, set: &TrainingSet) -> Result<Evaluation> {
    let recipe = match set.lr {
        Some(lr) => job.arch.recipe.with_lr(lr),
        None => job.arch.recipe,
    };
    if recipe.nets == 0 {
        return Err(Error::invalid(
            "eval.nets",
            0,
            "at least one evaluation network is needed",
        ));
    }
    let test = test_tensors(job.test, job.test_limit, job.device)?;
    let images = set.images.detach().to_dtype(DType::F32)?;
    let train_and_test = |k: usize| -> Result<(f64, Vec<f64>)> {
        if job.interrupt.is_some_and(|f| f.load(Ordering::SeqCst)) {
            return Err(Error::EvaluationInterrupted);
        }
        let mut rng = sub_rng(job.seed, &[stream::EVAL_NETWORK, k as u64]);
        // Under `Report::BestTest`, the best of the late tests (RDED's rule): strictly better
        // than the best so far, starting from 0, as `validation/main.py:188-190`.
        let epochs = recipe.epochs_trained();
        let mut best: Option<(f64, Vec<f64>)> = None;
        let mut late_test = |e: usize, net: &dyn Network| -> Result<()> {
            if recipe.report.tests_after(e, epochs) {
                let (acc, per_class) = test_network(net, &test, job.classes)?;
                if best.as_ref().is_none_or(|(b, _)| acc > *b) {
                    best = Some((acc, per_class));
                }
            }
            Ok(())
        };
        let net = train_network(
            job.arch,
            &recipe,
            job.shape,
            job.classes,
            job.device,
            &images,
            set.supervision,
            &mut rng,
            &mut late_test,
        )?;
        let (acc, per_class) = match best {
            Some(b) => b,
            None => test_network(net.as_ref(), &test, job.classes)?,
        };
        if let Some(cb) = job.on_network {
            cb(k, acc);
        }
        Ok((acc, per_class))
    };
    // This rank's networks, each as [accuracy, per-class accuracies..]; every rank's gathered
    // in network order.
    let results = gather_f64_tasks(job.comm, recipe.nets, |mine| {
        let flat = |k: usize| -> Result<Vec<f64>> {
            let (acc, per_class) = train_and_test(k)?;
            Ok(std::iter::once(acc).chain(per_class).collect())
        };
        let parallel = recipe.parallel.clamp(1, mine.len().max(1));
        if parallel == 1 || !job.device.is_cpu() {
            return mine.map(flat).collect();
        }
        // Every network draws from its own seed and every CPU kernel gives the same result on
        // any number of threads, so the accuracies equal those of the sequential loop.
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(parallel)
            .build()
            .map_err(|e| Error::Other(format!("could not start {parallel} evaluation threads: {e}")))?;
        pool.install(|| mine.into_par_iter().map(flat).collect())
    })?;
    let results: Vec<(f64, Vec<f64>)> = results
        .iter()
        .map(|r| match r.split_first() {
            Some((acc, per_class)) if per_class.len() == job.classes => Ok((*acc, per_class.to_vec())),
            _ => Err(Error::Other(format!(
                "an evaluation network returned {} numbers",
                r.len()
            ))),
        })
        .collect::<Result<_>>()?;
    let accuracies: Vec<f64> = results.iter().map(|r| r.0).collect();
    let per_class = (0..job.classes)
        .map(|c| results.iter().map(|r| r.1[c]).sum::<f64>() / results.len() as f64)
        .collect();
    let (mean, std) = mean_std(&accuracies);
    Ok(Evaluation {
        set: set.name.to_string(),
        arch: job.arch.name.clone(),
        accuracies,
        mean,
        std,
        train_images: images.dim(0)?,
        test_images: test.1.dim(0)?,
        epochs: recipe.epochs,
        augment: job.arch.augmentation.name.clone(),
        per_class,
        lr: Some(recipe.lr),
        // Soft labels learned with the set; a teacher's outputs are not.
        soft_labels: matches!(set.supervision, Supervision::Targets(t) if t.rank() == 2),
        report: match recipe.report {
            Report::Final => None,
            Report::BestTest { .. } => Some("best_test".into()),
        },
    })
}
