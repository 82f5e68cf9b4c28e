//! `cafe-lab experts`: resolves the settings, loads the dataset and trains the expert store.

use std::path::PathBuf;

use candle_core::DType;
use serde_json::Value;

use crate::config::PluginChoice;
use crate::data::{self, LoadOptions};
use crate::registry::{find, merge_json, PluginKind};
use crate::rng::rng_from_seed;
use crate::run::parse_device;
use crate::traits::architecture::Architecture;
use crate::traits::augmenter::Augmenter;
use crate::{Error, Result};

use super::config::ExpertsConfig;
use super::store::TrajectoryKey;
use super::train::{ExpertTrainer, ExpertsSummary};

/// A plugin built from its choice, and the choice with every config key filled in.
fn build<T: ?Sized + PluginKind>(choice: &PluginChoice) -> Result<(Box<T>, PluginChoice)> {
    let plugin = find::<T>(&choice.name)?;
    let resolved = plugin.resolve_config(&choice.config_value());
    let built = (plugin.build)(&resolved)?;
    let mut full = serde_json::json!({ "name": plugin.name });
    merge_json(&mut full, &resolved);
    let full = serde_json::from_value(full).map_err(|e| Error::Other(e.to_string()))?;
    Ok((built, full))
}

/// Trains (or completes) the expert store that `config` describes; progress on stderr
/// unless `quiet`.
pub fn run_experts(config: &ExpertsConfig, quiet: bool) -> Result<ExpertsSummary> {
    config.validate()?;
    let (arch, arch_choice) = build::<dyn Architecture>(&config.arch)?;
    let (augmenter, augment_choice) = build::<dyn Augmenter>(&config.augment)?;
    let device = parse_device(&config.device)?;
    let ds = data::load_announced(
        &config.dataset,
        &LoadOptions {
            data_dir: config.data_dir.clone(),
            download: config.download,
            seed: config.seed,
            zca: config.zca,
        },
        quiet,
    )?;
    let out = config
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("experts").join(format!("{}-{}", ds.name, arch_choice.name)));
    let resolved = ExpertsConfig {
        dataset: ds.name.clone(),
        arch: arch_choice.clone(),
        augment: augment_choice,
        out: Some(out.clone()),
        ..config.clone()
    };
    // The parameter shapes, from a throwaway network (its weights do not matter).
    let probe = arch.build(ds.shape(), ds.classes, DType::F32, &device, &mut rng_from_seed(0))?;
    let key = TrajectoryKey {
        dataset: ds.name.clone(),
        zca: config.zca,
        image_shape: ds.shape(),
        classes: ds.classes,
        arch: arch_choice.name.clone(),
        arch_config: Value::Object(arch_choice.config.clone()),
        parameter_shapes: probe.parameters().iter().map(|p| p.dims().to_vec()).collect(),
    };
    drop(probe);
    let all = |n: usize| (0..n).collect::<Vec<usize>>();
    let test_n = config.test_limit.map_or(ds.test.len(), |l| l.min(ds.test.len()));
    let trainer = ExpertTrainer {
        arch: arch.as_ref(),
        augmenter: augmenter.as_ref(),
        config: &resolved,
        key,
        train: ds.train.to_tensor(&all(ds.train.len()), &device)?,
        test: ds.test.to_tensor(&all(test_n), &device)?,
        device,
    };
    let total = config.train_epochs;
    let on_epoch = |k: usize, e: usize, loss: f64, acc: f64| {
        if !quiet {
            eprintln!(
                "expert {k} epoch {e}/{total}: train loss {loss:.4}, test accuracy {:.2} %",
                100.0 * acc
            );
        }
    };
    let on_expert = |entry: &super::train::ExpertEntry| {
        if !quiet {
            let what = if entry.trained {
                "trained"
            } else {
                "already in the store, skipped"
            };
            eprintln!(
                "expert {} ({what}): test accuracy {:.2} %, {}",
                entry.expert,
                100.0 * entry.test_accuracy,
                entry.file.display()
            );
        }
    };
    trainer.train_all(&out, &on_epoch, &on_expert)
}
