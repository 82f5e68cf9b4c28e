//! The evaluations behind DD-Ranking's fair metrics (`--metrics`, `metrics::ddranking`): the
//! whole training set under the run's recipe, and the synthetic set and the random subset
//! again with the other augmentation choice (without it when the recipe augments, with DSA when
//! it does not), each on every evaluation architecture.

use candle_core::Tensor;

use crate::config::{PluginChoice, RunConfig};
use crate::data::Dataset;
use crate::evaluate::Evaluation;
use crate::metrics::ddranking::{FairMetrics, MetricInputs};
use crate::{Error, Result};

use super::evaluation::{eval_recipes, evaluate_on_archs_with, random_subset, EvalTarget, TrainingSet};
use super::resolve::ResolvedRun;

/// Names of the extra sets in results.json and the tables.
pub const WHOLE_SET: &str = "whole";
const PLAIN_SUFFIX: &str = "-noaug";
const AUG_SUFFIX: &str = "-aug";

/// Computes the metrics of the synthetic set `syn` on every evaluation architecture; the extra
/// evaluations it runs are appended to `evaluations`, which must hold the run's `synthetic`
/// (evaluated as `syn` says: with its learned step size and soft labels, DD-Ranking's "any")
/// and `random` evaluations already. A set that learned a step size or soft labels is also
/// evaluated with its hard labels `hard_labels` at `eval.lr` (`synthetic-hard`), which
/// hard-label recovery needs (README.md:83: "syn-hard").
pub(crate) fn fair_metrics(
    run: &ResolvedRun,
    ds: &Dataset,
    syn: &TrainingSet,
    hard_labels: &Tensor,
    evaluations: &mut Vec<Evaluation>,
    quiet: bool,
) -> Result<Vec<FairMetrics>> {
    let e = &run.config.eval;
    if !e.metrics {
        return Ok(Vec::new());
    }
    let (random_images, random_labels) = random_subset(run, ds)?;
    let all: Vec<usize> = (0..ds.train.len()).collect();
    let mut out = Vec::new();
    for recipe in eval_recipes(&run.config)? {
        let find = |set: &str, evs: &[Evaluation]| -> Result<Vec<f64>> {
            evs.iter()
                .find(|ev| ev.set == set && ev.arch.eq_ignore_ascii_case(&recipe.arch))
                .map(|ev| ev.accuracies.clone())
                .ok_or_else(|| Error::Other(format!("fair metrics: no '{set}' evaluation on {}", recipe.arch)))
        };
        let syn_acc = find(syn.name, evaluations)?;
        let random_acc = find("random", evaluations)?;
        // Every variant trains the recipe's number of epochs on this architecture alone.
        let variant = |augment: Option<PluginChoice>, epochs: usize, nets: usize| -> RunConfig {
            let mut c = run.config.clone();
            c.eval.archs = vec![recipe.arch.clone()];
            c.eval.epochs = Some(epochs);
            c.eval.nets = nets;
            if augment.is_some() {
                c.eval.augment = augment;
            }
            c
        };
        let evaluate = |config: &RunConfig, set: &TrainingSet| -> Result<Evaluation> {
            let target = EvalTarget {
                config,
                seed: run.settings.seed,
                device: &run.device,
                quiet,
            };
            let mut evs = evaluate_on_archs_with(&target, ds, set)?;
            evs.pop()
                .ok_or_else(|| Error::Other(format!("fair metrics: no evaluation of {}", set.name)))
        };
        let syn_hard = if syn.lr.is_some() || syn.targets.rank() == 2 {
            let ev = evaluate(
                &variant(None, recipe.epochs, e.nets),
                &TrainingSet::labelled("synthetic-hard", syn.images, hard_labels),
            )?;
            let acc = ev.accuracies.clone();
            evaluations.push(ev);
            acc
        } else {
            syn_acc.clone()
        };
        let whole = match e.whole_accuracy {
            Some(acc) => vec![acc],
            None => {
                let config = variant(
                    None,
                    e.whole_epochs.unwrap_or(recipe.epochs),
                    e.whole_nets.unwrap_or(e.nets),
                );
                let (images, labels) = ds.train.to_tensor(&all, &run.device)?;
                let ev = evaluate(&config, &TrainingSet::labelled(WHOLE_SET, &images, &labels))?;
                let acc = ev.accuracies.clone();
                evaluations.push(ev);
                acc
            }
        };
        let recipe_augments = recipe.augment != "none";
        let (other, suffix) = if recipe_augments {
            (PluginChoice::named("none"), PLAIN_SUFFIX)
        } else {
            // DD-Ranking's ARS evaluates "with the data augmentation" of its config
            // (`aug_robust.py:536-555`); DSA with its default strategy is the one the
            // condensation papers evaluate with.
            (PluginChoice::named("dsa"), AUG_SUFFIX)
        };
        let config = variant(Some(other), recipe.epochs, e.nets);
        let syn_name = format!("synthetic{suffix}");
        let syn_other = evaluate(
            &config,
            &TrainingSet {
                name: &syn_name,
                ..*syn
            },
        )?;
        let random_name = format!("random{suffix}");
        let random_other = evaluate(
            &config,
            &TrainingSet::labelled(&random_name, &random_images, &random_labels),
        )?;
        let augmentation = if recipe_augments {
            recipe.augment.clone()
        } else {
            syn_other.augment.clone()
        };
        let (s_o, r_o) = (syn_other.accuracies.clone(), random_other.accuracies.clone());
        evaluations.push(syn_other);
        evaluations.push(random_other);
        let inputs = if recipe_augments {
            MetricInputs {
                syn: syn_acc.clone(),
                syn_hard: syn_hard.clone(),
                random: random_acc.clone(),
                whole,
                syn_aug: syn_acc,
                random_aug: random_acc,
                syn_plain: s_o,
                random_plain: r_o,
            }
        } else {
            MetricInputs {
                syn: syn_acc.clone(),
                syn_hard: syn_hard.clone(),
                random: random_acc.clone(),
                whole,
                syn_aug: s_o,
                random_aug: r_o,
                syn_plain: syn_acc,
                random_plain: random_acc,
            }
        };
        out.push(FairMetrics::compute(
            &recipe.arch,
            &augmentation,
            &inputs,
            e.lrs_weight,
            e.ars_weight,
        )?);
    }
    Ok(out)
}
