//! What a synthetic set carries about its making: the safetensors `__metadata__` (string to
//! string, readable with PyTorch's `safetensors.safe_open(...).metadata()`), and how
//! `cafe-lab evaluate` turns it back into the run's settings.
//!
//! Flat keys say the essentials at a glance (dataset and its preprocessing: `normalise` per
//! channel or `zca(eps=E)`, whose whitened space the pixels live in; ipc, matcher, scheduler, augmenter and
//! its strategy, the evaluation recipe, the cafe-lab version); `config` holds the whole
//! resolved configuration as JSON, from which `evaluate --synthetic FILE` re-evaluates exactly
//! as the run did.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::config::ConfigBuilder;
use crate::synthetic::SyntheticSet;
use crate::Result;

use super::evaluation::eval_recipes;
use super::resolve::ResolvedRun;

/// Value of the `format` key; a reader can tell a cafe-lab set from other safetensors files.
pub const SET_FORMAT: &str = "cafe-lab synthetic set 1";

/// The metadata of the synthetic set `syn` that `run` made. A set with learned extras says so
/// (`learned`), and its evaluation recipe says what they change: `eval_lr` is the learned step
/// size (`eval_lr_source = learned`), `eval_targets = soft_labels` when networks train on its
/// learned soft labels.
pub fn set_metadata(run: &ResolvedRun, syn: &SyntheticSet) -> Result<BTreeMap<String, String>> {
    let c = &run.config;
    let recipes = eval_recipes(c)?;
    let join =
        |f: &dyn Fn(&super::evaluation::EvalRecipe) -> String| recipes.iter().map(f).collect::<Vec<_>>().join(",");
    let strategy = run.resolved_json["augment"]["strategy"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let mut config = run.resolved_json.clone();
    if let Value::Object(m) = &mut config {
        // Where the run wrote is not a setting of the set.
        m.remove("out");
    }
    let learned_lr = syn.learned_lr()?;
    let soft = syn.learned(crate::synthetic::LEARNED_LABELS).is_some();
    let learned: Vec<&str> = syn.learned.iter().map(|l| l.name.as_str()).collect();
    let entries = [
        ("format", SET_FORMAT.to_string()),
        ("cafe_lab_version", env!("CARGO_PKG_VERSION").to_string()),
        ("protocol", c.protocol.clone().unwrap_or_else(|| "none".into())),
        ("dataset", c.dataset.clone()),
        (
            "preprocess",
            c.zca
                .map_or_else(|| "normalise".to_string(), |eps| format!("zca(eps={eps})")),
        ),
        ("ipc", run.settings.ipc.to_string()),
        ("matcher", c.matcher.name.clone()),
        ("scheduler", c.scheduler.name.clone()),
        ("arch", c.arch.name.clone()),
        ("augment", c.augment.name.clone()),
        ("augment_strategy", strategy),
        ("init", format!("{:?}", run.settings.init).to_lowercase()),
        ("iterations", run.settings.iterations.to_string()),
        ("seed", run.settings.seed.to_string()),
        ("eval_archs", join(&|r| r.arch.clone())),
        ("eval_epochs", join(&|r| r.epochs.to_string())),
        ("eval_augment", join(&|r| r.augment.clone())),
        ("eval_lr", learned_lr.unwrap_or(c.eval.lr).to_string()),
        (
            "eval_lr_source",
            if learned_lr.is_some() { "learned" } else { "config" }.to_string(),
        ),
        ("eval_targets", if soft { "soft_labels" } else { "labels" }.to_string()),
        ("learned", learned.join(",")),
        ("eval_batch", c.eval.batch.to_string()),
        ("eval_momentum", c.eval.momentum.to_string()),
        ("eval_weight_decay", c.eval.weight_decay.to_string()),
        ("eval_nets", c.eval.nets.to_string()),
        ("config", config.to_string()),
    ];
    Ok(entries.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

/// The configuration builder that `cafe-lab evaluate --synthetic path` starts from, before the
/// user's flags: the run's own settings when the file carries them; otherwise the defaults
/// (and the protocol the flags choose), with a note saying what was assumed.
///
/// Reads only the file's header, so a missing or broken file is refused before any dataset
/// is loaded.
pub fn evaluation_base(path: &Path) -> Result<(ConfigBuilder, Option<String>)> {
    let metadata = SyntheticSet::read_metadata(path)?;
    match metadata.get("config").map(|text| serde_json::from_str::<Value>(text)) {
        Some(Ok(config)) => Ok((ConfigBuilder::from_saved(&config), None)),
        Some(Err(e)) => Err(crate::Error::SyntheticCorrupt {
            path: path.to_path_buf(),
            message: format!("its 'config' metadata is not valid JSON ({e}); pass --dataset and the evaluation flags, or re-save the set"),
        }),
        None => Ok((
            ConfigBuilder::default(),
            Some(format!(
                "{} carries no cafe-lab metadata (a set from an older run or another tool): its dataset, \
                 matching augmentation and evaluation recipe come from the flags and the chosen protocol's \
                 defaults, not from the run that made it",
                path.display()
            )),
        )),
    }
}
