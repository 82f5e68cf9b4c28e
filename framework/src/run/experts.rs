//! `cafe-lab experts`: resolves the settings, loads the dataset and trains the expert store
//! (see [`crate::trajectory`]).

use crate::config::PluginChoice;
use crate::data::{self, LoadOptions};
use crate::dist::Communicator;
use crate::registry::{build_plugin, BuiltPlugin, PluginKind};
use crate::traits::architecture::Architecture;
use crate::traits::augmenter::Augmenter;
use crate::trajectory::{default_store_dir, ExpertEntry, ExpertTrainer, ExpertsConfig, ExpertsSummary, TrajectoryKey};
use crate::{Error, Result};

use super::resolve::open_device;

/// A plugin built from its choice, and the choice with every config key filled in.
fn build<T: ?Sized + PluginKind>(choice: &PluginChoice) -> Result<(BuiltPlugin<T>, PluginChoice)> {
    let built = build_plugin::<T>(choice)?;
    let full = serde_json::from_value(built.resolved_choice()).map_err(|e| Error::Other(e.to_string()))?;
    Ok((built, full))
}

/// Trains (or completes) the expert store that `config` describes, the experts shared out among
/// the ranks of `comm`; progress on stderr unless `quiet`.
pub fn run_experts(config: &ExpertsConfig, quiet: bool, comm: &dyn Communicator) -> Result<ExpertsSummary> {
    config.validate()?;
    let (arch, arch_choice) = build::<dyn Architecture>(&config.arch)?;
    let (augmenter, augment_choice) = build::<dyn Augmenter>(&config.augment)?;
    let device = open_device(&config.device, config.precision)?;
    let ds = data::load_announced(
        config.dataset.name(),
        &LoadOptions::new(&config.data_dir, config.download, config.seed, config.zca),
        quiet || comm.rank() != 0,
    )?;
    let out = config
        .out
        .clone()
        .unwrap_or_else(|| default_store_dir(&ds.name, &arch_choice.name));
    let resolved = ExpertsConfig {
        arch: arch_choice.clone(),
        augment: augment_choice,
        out: Some(out.clone()),
        ..config.clone()
    };
    let key = TrajectoryKey::for_network(&ds, arch.plugin.as_ref(), &arch_choice.name, &arch.config, &device)?;
    let all = |n: usize| (0..n).collect::<Vec<usize>>();
    let test_n = config.test_limit.map_or(ds.test.len(), |l| l.min(ds.test.len()));
    let trainer = ExpertTrainer {
        arch: arch.plugin.as_ref(),
        augmenter: augmenter.plugin.as_ref(),
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
    let on_expert = |entry: &ExpertEntry| {
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
    trainer.train_all(&out, comm, &on_epoch, &on_expert)
}
