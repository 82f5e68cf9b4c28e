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
    let names: &[&str] =
        match mode.to_ascii_uppercase().as_str() {
            "S" => return Ok(vec![condensation_arch.to_string()]),
            "M" => &["mlp", "convnet", "lenet", "alexnet", "vgg11", "resnet18"],
            "W" => &["convnetw32", "convnetw64", "convnetw128", "convnetw256"],
            "D" => &["convnetd1", "convnetd2", "convnetd3", "convnetd4"],
            "A" => &["convnetas", "convnetar", "convnetal"],
            "P" => &["convnetnp", "convnetmp", "convnetap"],
            "N" => &["convnetnn", "convnetbn", "convnetln", "convnetin", "convnetgn"],
            _ => return Err(Error::invalid(
                "eval.mode",
                mode,
                "valid modes: S (the condensation architecture), M (MLP, ConvNet, LeNet, AlexNet, VGG11, ResNet18), \
                 W (widths), D (depths), A (activations), P (poolings), N (norms)",
            )),
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

/// The augmentation that trains the evaluation networks of `arch`, with a name for the
/// records: `eval.augment` when set, else DESIGN.md's defaults (DSA when matching used DSA;
/// DC `crop_noise` for BatchNorm networks; DC `crop_scale_rotate` for MNIST-like data; none).
fn eval_augmenter_for(config: &RunConfig, arch: &dyn Architecture) -> Result<(Box<dyn Augmenter>, String)> {
    let choice = match &config.eval.augment {
        Some(choice) => choice.clone(),
        None if config.augment.name.eq_ignore_ascii_case("dsa") => config.augment.clone(),
        None => {
            let dataset = config.dataset.to_ascii_lowercase().replace(['-', '_'], "");
            let strategy = if arch.uses_batch_norm() {
                "crop_noise"
            } else if dataset == "mnist" || dataset == "fashionmnist" {
                "crop_scale_rotate"
            } else {
                return Ok((
                    build_plugin::<dyn Augmenter>(&PluginChoice::named("none"))?.0,
                    "none".into(),
                ));
            };
            let mut c = PluginChoice::named("dc");
            c.config.insert("strategy".into(), Value::String(strategy.into()));
            c
        }
    };
    let (augmenter, resolved, plugin) = build_plugin::<dyn Augmenter>(&choice)?;
    let name = match resolved.get("strategy").and_then(Value::as_str) {
        Some(strategy) => format!("{}:{strategy}", plugin.name),
        None => plugin.name.to_string(),
    };
    Ok((augmenter, name))
}

/// Evaluation epochs: `eval.epochs`, else 1000 with DSA and 300 otherwise (DESIGN.md).
fn eval_epochs(config: &RunConfig, augment_name: &str) -> usize {
    config
        .eval
        .epochs
        .unwrap_or(if augment_name.starts_with("dsa") { 1000 } else { 300 })
}

/// Evaluates `images` on every evaluation architecture of the run.
pub(crate) fn evaluate_on_archs(
    run: &ResolvedRun,
    ds: &Dataset,
    set_name: &str,
    images: &Tensor,
    labels: &Tensor,
    quiet: bool,
) -> Result<Vec<Evaluation>> {
    let mut archs: Vec<(String, Box<dyn Architecture>)> = Vec::new();
    for name in eval_arch_names(&run.config)? {
        if name == run.config.arch.name.to_ascii_lowercase() {
            // The condensation architecture keeps its configuration (e.g. a set width).
            let (arch, _, plugin) = build_plugin::<dyn Architecture>(&run.config.arch)?;
            archs.push((plugin.name.to_string(), arch));
        } else {
            let plugin = find::<dyn Architecture>(&name)?;
            archs.push((plugin.name.to_string(), plugin.instantiate(&Value::Null)?));
        }
    }
    let mut out = Vec::new();
    for (name, arch) in &archs {
        let bar = Progress::new(&format!("eval {set_name} on {name}"), run.config.eval.nets, quiet, 1);
        // Networks may finish out of order when they train side by side: count completions.
        let done = std::sync::atomic::AtomicUsize::new(0);
        let report = |_k: usize, acc: f64| {
            let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            bar.step(n, &format!("last test accuracy {:.2} %", 100.0 * acc))
        };
        let (augmenter, augment_name) = eval_augmenter_for(&run.config, arch.as_ref())?;
        let setup = EvalSetup {
            arch: arch.as_ref(),
            arch_name: name,
            classes: ds.classes,
            shape: ds.train.shape,
            test: &ds.test,
            config: &run.config.eval,
            augmenter: augmenter.as_ref(),
            augment_name: &augment_name,
            epochs: eval_epochs(&run.config, &augment_name),
            device: &run.device,
            seed: crate::rng::derive_seed(run.settings.seed, &[crate::engine::EVAL_STREAM]),
            on_network: Some(&report),
        };
        let ev = evaluate_set(&setup, set_name, images, labels)?;
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
    let mut rng = sub_rng(run.settings.seed, &[crate::engine::BASELINE_STREAM]);
    let idx = random_real_subset(&ds.train, ds.classes, run.settings.ipc, &mut rng)?;
    let (images, _) = ds.train.to_tensor(&idx, &run.device)?;
    let labels = class_major_labels(ds.classes, run.settings.ipc, &run.device)?;
    evaluate_on_archs(run, ds, "random", &images, &labels, quiet)
}
