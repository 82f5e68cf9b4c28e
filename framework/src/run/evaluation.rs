//! Evaluation of a run's sets: which architectures, which augmentation and how many epochs
//! (DESIGN.md's defaults), the random baseline.

use candle_core::Tensor;
use serde_json::Value;

use crate::config::{PluginChoice, RunConfig};
use crate::data::Dataset;
use crate::evaluate::{evaluate_set, EvalSetup, Evaluation};
use crate::progress::Progress;
use crate::registry::find;
use crate::rng::sub_rng;
use crate::synthetic::{class_major_labels, random_real_subset};
use crate::traits::architecture::Architecture;
use crate::traits::augmenter::Augmenter;
use crate::{Error, Result};

use super::resolve::{build_plugin, ResolvedRun};

/// The architectures of an evaluation mode (DC's `get_eval_pool`), by registered name.
pub fn eval_mode_archs(mode: &str, condensation_arch: &str) -> Result<Vec<String>> {
    let names: &[&str] = match mode.to_ascii_uppercase().as_str() {
        // DatasetCondensation utils.py:463-466: a BatchNorm model is evaluated as the part of
        // its name before "BN" (ConvNetBN -> ConvNet, ResNet18BN_AP -> ResNet18).
        "S" => {
            let arch = condensation_arch.to_ascii_lowercase();
            return Ok(vec![match arch.find("bn") {
                Some(i) => arch[..i].to_string(),
                None => arch,
            }]);
        }
        // utils.py:467-468: the model itself.
        "SS" => return Ok(vec![condensation_arch.to_string()]),
        "M" => &["mlp", "convnet", "lenet", "alexnet", "vgg11", "resnet18"],
        "W" => &["convnetw32", "convnetw64", "convnetw128", "convnetw256"],
        "D" => &["convnetd1", "convnetd2", "convnetd3", "convnetd4"],
        "A" => &["convnetas", "convnetar", "convnetal"],
        "P" => &["convnetnp", "convnetmp", "convnetap"],
        "N" => &["convnetnn", "convnetbn", "convnetln", "convnetin", "convnetgn"],
        _ => {
            return Err(Error::invalid(
                "eval.mode",
                mode,
                "valid modes: S (the condensation architecture, BatchNorm replaced by instance norm), \
                 SS (the condensation architecture as it is), M (MLP, ConvNet, LeNet, AlexNet, VGG11, ResNet18), \
                 W (widths), D (depths), A (activations), P (poolings), N (norms)",
            ))
        }
    };
    Ok(names.iter().map(|s| s.to_string()).collect())
}

/// The evaluation architectures of a run: `eval.archs`, else `eval.mode`'s, else the
/// condensation architecture.
pub(crate) fn eval_arch_names(config: &RunConfig) -> Result<Vec<String>> {
    if !config.eval.archs.is_empty() {
        return Ok(config.eval.archs.iter().map(|a| a.to_ascii_lowercase()).collect());
    }
    eval_mode_archs(
        config.eval.mode.as_deref().unwrap_or("S"),
        &config.arch.name.to_ascii_lowercase(),
    )
}

/// The reference's choice of augmentation for the evaluation networks of architecture `arch`
/// when `eval.augment` is unset:
/// - DSA with the matching strategy when matching used DSA (DatasetCondensation `main.py:111-115`,
///   `utils.py:309-311`; `main_DM.py` always; CAFE `distill.py:176-181`);
/// - else DC's `crop_noise` for ConvNetBN, and only for it (`utils.py:441-442`);
/// - else DC's `crop_scale_rotate` for MNIST, and only for it, not Fashion-MNIST (`utils.py:438-439`);
/// - else none.
pub fn reference_eval_augment(config: &RunConfig, arch: &str) -> PluginChoice {
    if config.augment.name.eq_ignore_ascii_case("dsa") {
        return config.augment.clone();
    }
    let dataset = config.dataset.to_ascii_lowercase().replace(['-', '_'], "");
    let strategy = if arch.eq_ignore_ascii_case("convnetbn") {
        "crop_noise"
    } else if dataset == "mnist" {
        "crop_scale_rotate"
    } else {
        return PluginChoice::named("none");
    };
    let mut c = PluginChoice::named("dc");
    c.config.insert("strategy".into(), Value::String(strategy.into()));
    c
}

/// The augmentation that trains the evaluation networks of `arch`, with a name for the
/// records: `eval.augment` when set, else [`reference_eval_augment`].
pub(crate) fn eval_augmenter_for(config: &RunConfig, arch: &str) -> Result<(Box<dyn Augmenter>, String)> {
    let choice = match &config.eval.augment {
        Some(choice) => choice.clone(),
        None => reference_eval_augment(config, arch),
    };
    let (augmenter, resolved, plugin) = build_plugin::<dyn Augmenter>(&choice)?;
    let name = match resolved.get("strategy").and_then(Value::as_str) {
        Some(strategy) => format!("{}:{strategy}", plugin.name),
        None => plugin.name.to_string(),
    };
    Ok((augmenter, name))
}

/// Evaluation epochs: `eval.epochs`, else `eval.epochs_augmented` when the networks train with
/// augmentation and `eval.epochs_plain` otherwise (DatasetCondensation `main.py:120-123`: 1000 and
/// 300; CAFE `distill.py:189-193`: 1000 and 600).
pub(crate) fn eval_epochs(config: &RunConfig, augmenter: &dyn Augmenter) -> usize {
    config.eval.epochs.unwrap_or(if augmenter.is_identity() {
        config.eval.epochs_plain
    } else {
        config.eval.epochs_augmented
    })
}

/// How the networks of one evaluation architecture are trained: what a synthetic set's
/// metadata records and what [`evaluate_on_archs`] runs.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalRecipe {
    pub arch: String,
    /// The reference's `epoch_eval_train` (E + 1 epochs are trained).
    pub epochs: usize,
    /// `none`, `dsa:<strategy>`, `dc:<strategy>`.
    pub augment: String,
}

/// The recipe of every evaluation architecture of the run, in order.
pub fn eval_recipes(config: &RunConfig) -> Result<Vec<EvalRecipe>> {
    eval_arch_names(config)?
        .into_iter()
        .map(|arch| {
            let (augmenter, augment) = eval_augmenter_for(config, &arch)?;
            Ok(EvalRecipe {
                epochs: eval_epochs(config, augmenter.as_ref()),
                arch,
                augment,
            })
        })
        .collect()
}

/// What the evaluation networks train on: images, their targets (hard labels `[n]`, or
/// soft-label logits `[n, classes]`) and, for a set that learned one, its step size, which
/// replaces `eval.lr` as MTT evaluates (mtt-distillation `distill.py:210`).
pub(crate) struct TrainingSet<'a> {
    pub name: &'a str,
    pub images: &'a Tensor,
    pub targets: &'a Tensor,
    pub lr: Option<f64>,
}

impl<'a> TrainingSet<'a> {
    /// Images with hard labels, trained at `eval.lr`.
    pub fn labelled(name: &'a str, images: &'a Tensor, labels: &'a Tensor) -> Self {
        Self {
            name,
            images,
            targets: labels,
            lr: None,
        }
    }
}

/// Evaluates `set` on every evaluation architecture of the run.
pub(crate) fn evaluate_on_archs(
    run: &ResolvedRun,
    ds: &Dataset,
    set: &TrainingSet,
    quiet: bool,
) -> Result<Vec<Evaluation>> {
    let target = EvalTarget {
        config: &run.config,
        seed: run.settings.seed,
        device: &run.device,
        quiet,
    };
    evaluate_on_archs_with(&target, ds, set)
}

/// Where and how [`evaluate_on_archs_with`] evaluates: a configuration (possibly a variant of
/// the run's, e.g. another augmentation), the run's seed and device.
pub(crate) struct EvalTarget<'a> {
    pub config: &'a RunConfig,
    pub seed: u64,
    pub device: &'a candle_core::Device,
    pub quiet: bool,
}

/// Evaluates `set` on every evaluation architecture of `target.config`.
pub(crate) fn evaluate_on_archs_with(target: &EvalTarget, ds: &Dataset, set: &TrainingSet) -> Result<Vec<Evaluation>> {
    let (config, quiet) = (target.config, target.quiet);
    let set_name = set.name;
    let eval_config = crate::config::EvalConfig {
        lr: set.lr.unwrap_or(config.eval.lr),
        ..config.eval.clone()
    };
    let mut archs: Vec<(String, Box<dyn Architecture>)> = Vec::new();
    for name in eval_arch_names(config)? {
        if name == config.arch.name.to_ascii_lowercase() {
            // The condensation architecture keeps its configuration (e.g. a set width).
            let (arch, _, plugin) = build_plugin::<dyn Architecture>(&config.arch)?;
            archs.push((plugin.name.to_string(), arch));
        } else {
            let plugin = find::<dyn Architecture>(&name)?;
            archs.push((plugin.name.to_string(), plugin.instantiate(&Value::Null)?));
        }
    }
    let mut out = Vec::new();
    for (name, arch) in &archs {
        let bar = Progress::new(&format!("eval {set_name} on {name}"), config.eval.nets, quiet, 1);
        // Networks may finish out of order when they train side by side: count completions.
        let done = std::sync::atomic::AtomicUsize::new(0);
        let report = |_k: usize, acc: f64| {
            let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            bar.step(n, &format!("last test accuracy {:.2} %", 100.0 * acc))
        };
        let (augmenter, augment_name) = eval_augmenter_for(config, name)?;
        let setup = EvalSetup {
            arch: arch.as_ref(),
            arch_name: name,
            classes: ds.classes,
            shape: ds.train.shape,
            test: &ds.test,
            config: &eval_config,
            augmenter: augmenter.as_ref(),
            augment_name: &augment_name,
            epochs: eval_epochs(config, augmenter.as_ref()),
            device: target.device,
            seed: crate::rng::derive_seed(target.seed, &[crate::engine::EVAL_STREAM]),
            on_network: Some(&report),
        };
        let ev = evaluate_set(&setup, set_name, set.images, set.targets)?;
        bar.finish();
        if !quiet {
            eprintln!(
                "{set_name} on {name}: {} over {} networks",
                ev.summary(),
                ev.accuracies.len()
            );
        }
        out.push(ev);
    }
    Ok(out)
}

/// The `random` baseline: `ipc` random real images per class, evaluated like a synthetic set.
pub(crate) fn random_baseline(run: &ResolvedRun, ds: &Dataset, quiet: bool) -> Result<Vec<Evaluation>> {
    let (images, labels) = random_subset(run, ds)?;
    evaluate_on_archs(run, ds, &TrainingSet::labelled("random", &images, &labels), quiet)
}

/// The baseline's images and labels: `ipc` random real images per class, class-major.
pub(crate) fn random_subset(run: &ResolvedRun, ds: &Dataset) -> Result<(Tensor, Tensor)> {
    let mut rng = sub_rng(run.settings.seed, &[crate::engine::BASELINE_STREAM]);
    let idx = random_real_subset(&ds.train, ds.classes, run.settings.ipc, &mut rng)?;
    let (images, _) = ds.train.to_tensor(&idx, &run.device)?;
    let labels = class_major_labels(ds.classes, run.settings.ipc, &run.device)?;
    Ok((images, labels))
}
