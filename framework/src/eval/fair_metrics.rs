//! The evaluations behind DD-Ranking's fair metrics (`--metrics`, `metrics::ddranking`): the
//! whole training set under the run's recipe, and the synthetic set and the random subset
//! again with the other augmentation choice (without it when the recipe augments, with DSA when
//! it does not), each on every evaluation architecture.

use candle_core::Tensor;

use crate::metrics::ddranking::{FairMetrics, MetricInputs};
use crate::{Error, Result};

use super::evaluator::Evaluator;
use super::plan::WholeReference;
use super::trainer::{Evaluation, Supervision, TrainingSet};

/// Names of the extra sets in results.json and the tables.
pub const WHOLE_SET: &str = "whole";
const PLAIN_SUFFIX: &str = "-noaug";
const AUG_SUFFIX: &str = "-aug";

impl Evaluator<'_> {
    /// Computes the metrics of the synthetic set `syn` on every evaluation architecture; the
    /// extra evaluations it runs are appended to `evaluations`, which must hold the run's
    /// `synthetic` (evaluated as `syn` says: with its learned step size and soft labels,
    /// DD-Ranking's "any") and `random` evaluations already. A set that learned a step size or
    /// soft labels is also evaluated with its hard labels `hard_labels` at `eval.lr`
    /// (`synthetic-hard`), which hard-label recovery needs (README.md:83: "syn-hard").
    /// Nothing without `--metrics`.
    pub fn fair_metrics(
        &self,
        syn: &TrainingSet,
        hard_labels: &Tensor,
        evaluations: &mut Vec<Evaluation>,
    ) -> Result<Vec<FairMetrics>> {
        let Some(plan) = &self.plan.metrics else {
            return Ok(Vec::new());
        };
        let (random_images, random_labels) = self.random_subset()?;
        let random = TrainingSet::labelled("random", &random_images, &random_labels);
        let all: Vec<usize> = (0..self.ds.train.len()).collect();
        let mut out = Vec::new();
        for (arch, contrast) in self.plan.archs.iter().zip(&plan.contrast) {
            let find = |set: &str, evs: &[Evaluation]| -> Result<Vec<f64>> {
                evs.iter()
                    .find(|ev| ev.set == set && ev.arch.eq_ignore_ascii_case(&arch.name))
                    .map(|ev| ev.accuracies.clone())
                    .ok_or_else(|| Error::Other(format!("fair metrics: no '{set}' evaluation on {}", arch.name)))
            };
            let syn_acc = find(syn.name, evaluations)?;
            let random_acc = find("random", evaluations)?;
            let learned_something =
                syn.lr.is_some() || matches!(syn.supervision, Supervision::Targets(t) if t.rank() == 2);
            let syn_hard = if learned_something {
                let ev = self.on_arch(arch, &TrainingSet::labelled("synthetic-hard", syn.images, hard_labels))?;
                let acc = ev.accuracies.clone();
                evaluations.push(ev);
                acc
            } else {
                syn_acc.clone()
            };
            let whole = match plan.whole {
                WholeReference::Known(acc) => vec![acc],
                WholeReference::Train { nets, epochs } => {
                    let recipe = arch
                        .recipe
                        .with_epochs(epochs.unwrap_or(arch.recipe.epochs))
                        .with_nets(nets);
                    let (images, labels) = self.ds.train.to_tensor(&all, self.device)?;
                    let ev = self.on_arch(
                        &arch.with_recipe(recipe),
                        &TrainingSet::labelled(WHOLE_SET, &images, &labels),
                    )?;
                    let acc = ev.accuracies.clone();
                    evaluations.push(ev);
                    acc
                }
            };
            // Every contrast evaluation trains the recipe's epochs on this architecture.
            let recipe_augments = arch.augmentation.name != "none";
            let suffix = if recipe_augments { PLAIN_SUFFIX } else { AUG_SUFFIX };
            let other = arch.with_augmentation(contrast.clone());
            let syn_name = format!("synthetic{suffix}");
            let syn_other = self.on_arch(&other, &syn.named(&syn_name))?;
            let random_name = format!("random{suffix}");
            let random_other = self.on_arch(&other, &random.named(&random_name))?;
            let augmentation = if recipe_augments {
                arch.augmentation.name.clone()
            } else {
                syn_other.augment.clone()
            };
            let (s_o, r_o) = (syn_other.accuracies.clone(), random_other.accuracies.clone());
            evaluations.push(syn_other);
            evaluations.push(random_other);
            let (aug, plain) = if recipe_augments {
                ((syn_acc.clone(), random_acc.clone()), (s_o, r_o))
            } else {
                ((s_o, r_o), (syn_acc.clone(), random_acc.clone()))
            };
            let inputs = MetricInputs {
                syn: syn_acc,
                syn_hard,
                random: random_acc,
                whole,
                syn_aug: aug.0,
                random_aug: aug.1,
                syn_plain: plain.0,
                random_plain: plain.1,
            };
            out.push(FairMetrics::compute(
                &arch.name,
                &augmentation,
                &inputs,
                plan.lrs_weight,
                plan.ars_weight,
            )?);
        }
        Ok(out)
    }
}
