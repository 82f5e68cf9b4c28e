//! The papers' evaluation protocol: train freshly initialised networks on a (synthetic or
//! baseline) training set only, test each on the real test set, report mean and std.

use candle_core::{DType, Device, Tensor};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::config::EvalConfig;
use crate::data::ImageSet;
use crate::metrics::class_accuracies;
use crate::rng::sub_rng;
use crate::train::{train_epoch, Sgd};
use crate::traits::architecture::{Architecture, Mode};
use crate::traits::augmenter::Augmenter;
use crate::{Error, ImageShape, Result};

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
    /// The reference's `epoch_eval_train` E (each network trained E + 1 epochs, see
    /// [`EvalSetup::epochs`]).
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
}

impl Evaluation {
    /// `"84.12 +- 0.53 %"`.
    pub fn summary(&self) -> String {
        format!("{:.2} +- {:.2} %", 100.0 * self.mean, 100.0 * self.std)
    }
}

/// Mean and population standard deviation.
pub fn mean_std(values: &[f64]) -> (f64, f64) {
    if values.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

/// Everything an evaluation needs besides the training set.
pub struct EvalSetup<'a> {
    pub arch: &'a dyn Architecture,
    pub arch_name: &'a str,
    pub classes: usize,
    pub shape: ImageShape,
    pub test: &'a ImageSet,
    pub config: &'a EvalConfig,
    pub augmenter: &'a dyn Augmenter,
    /// How `augmenter` was chosen, recorded in the evaluation.
    pub augment_name: &'a str,
    /// The reference's `epoch_eval_train` E: each network trains E + 1 epochs.
    pub epochs: usize,
    pub device: &'a Device,
    pub seed: u64,
    /// Called after each trained network with (index, accuracy).
    pub on_network: Option<&'a (dyn Fn(usize, f64) + Sync)>,
}

/// Trains one fresh network (number `k`, seeded from it) on `images` and returns its test
/// accuracy, overall and per class.
fn train_and_test_network(
    setup: &EvalSetup,
    k: usize,
    images: &Tensor,
    labels: &Tensor,
    test_x: &Tensor,
    test_y: &Tensor,
) -> Result<(f64, Vec<f64>)> {
    let cfg = setup.config;
    // One seed per (set, network) so the baseline and the synthetic set see the same
    // initialisations.
    let mut rng = sub_rng(setup.seed, &[0xE7A1, k as u64]);
    let net = setup
        .arch
        .build(setup.shape, setup.classes, DType::F32, setup.device, &mut rng)?;
    let mut opt = Sgd::new(net.parameters(), cfg.lr, cfg.momentum, cfg.weight_decay);
    // The reference's schedule (DatasetCondensation `utils.py:341-355`, CAFE `utils.py:309-323`):
    // `for ep in range(Epoch + 1)`, and after epoch `Epoch // 2 + 1` the lr drops 10x with a new
    // SGD, so the momentum buffer starts again from zero.
    let decay_after = setup.epochs / 2 + 1;
    for epoch in 0..=setup.epochs {
        train_epoch(
            net.as_ref(),
            &mut opt,
            images,
            labels,
            cfg.batch,
            Some(setup.augmenter),
            &mut rng,
        )?;
        if epoch == decay_after {
            opt = Sgd::new(net.parameters(), cfg.lr * 0.1, cfg.momentum, cfg.weight_decay);
        }
    }
    class_accuracies(net.as_ref(), test_x, test_y, setup.classes, 500, Mode::Eval)
}

/// Trains `config.nets` fresh networks (`config.parallel` at a time) on `images`/`labels` and tests them.
///
/// # Shapes
/// `images`: `[n, c, h, w]` f32 in normalised space; `labels`: `[n]` u32, or soft-label logits
/// `[n, classes]` (trained with the soft cross-entropy, `train::soft_cross_entropy`).
pub fn evaluate_set(setup: &EvalSetup, set_name: &str, images: &Tensor, labels: &Tensor) -> Result<Evaluation> {
    let cfg = setup.config;
    if cfg.nets == 0 {
        return Err(Error::invalid(
            "eval.nets",
            0,
            "at least one evaluation network is needed",
        ));
    }
    let test_n = cfg.test_limit.map_or(setup.test.len(), |l| l.min(setup.test.len()));
    let test_idx: Vec<usize> = (0..test_n).collect();
    let (test_x, test_y) = setup.test.to_tensor(&test_idx, setup.device)?;
    let images = images.detach().to_dtype(DType::F32)?;
    let train_and_test = |k: usize| -> Result<(f64, Vec<f64>)> {
        let (acc, per_class) = train_and_test_network(setup, k, &images, labels, &test_x, &test_y)?;
        if let Some(cb) = setup.on_network {
            cb(k, acc);
        }
        Ok((acc, per_class))
    };
    let parallel = cfg.parallel.unwrap_or(1).clamp(1, cfg.nets);
    let results = if parallel == 1 || !setup.device.is_cpu() {
        (0..cfg.nets).map(train_and_test).collect::<Result<Vec<_>>>()?
    } else {
        // Every network draws from its own seed and every CPU kernel gives the same result on
        // any number of threads, so the accuracies equal those of the sequential loop.
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(parallel)
            .build()
            .map_err(|e| Error::Other(format!("could not start {parallel} evaluation threads: {e}")))?;
        pool.install(|| {
            (0..cfg.nets)
                .into_par_iter()
                .map(train_and_test)
                .collect::<Result<Vec<_>>>()
        })?
    };
    let accuracies: Vec<f64> = results.iter().map(|r| r.0).collect();
    let per_class = (0..setup.classes)
        .map(|c| results.iter().map(|r| r.1[c]).sum::<f64>() / results.len() as f64)
        .collect();
    let (mean, std) = mean_std(&accuracies);
    Ok(Evaluation {
        set: set_name.to_string(),
        arch: setup.arch_name.to_string(),
        accuracies,
        mean,
        std,
        train_images: images.dim(0)?,
        test_images: test_n,
        epochs: setup.epochs,
        augment: setup.augment_name.to_string(),
        per_class,
        lr: Some(cfg.lr),
        soft_labels: labels.rank() == 2,
    })
}
