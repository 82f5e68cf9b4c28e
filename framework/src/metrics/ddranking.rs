//! DD-Ranking's fair metrics (Li et al., 2025, "DD-Ranking: Rethinking the Evaluation of Dataset
//! Distillation"; NUS-HPC-AI-Lab/DD-Ranking at b8b0966): how much of the whole training set's
//! accuracy a set recovers with hard labels, how far it beats a random subset of the same size,
//! and the two scores that combine them.
//!
//! Accuracies are fractions in [0, 1] here, so that the weighted differences alpha and beta lie
//! in [-1, 1] and the scores in [0, 1], as DD-Ranking's README defines them (README.md:93-95,
//! 103-105: "normalized to [0, 1]"). Its code feeds percentages to the same formula
//! (`hard_label.py:380-383`, `aug_robust.py:577-580`, with `validate` returning percent,
//! `utils/train_and_eval.py:240-262`), which would put exp(alpha) far outside that range; we
//! follow the stated definition and report the scores times 100. Two departures, both on
//! purpose: each accuracy is the protocol's final test accuracy, where DD-Ranking keeps the best
//! test accuracy seen every 10 epochs (`hard_label.py:278-287`), a choice made on the test set;
//! and the random subset is evaluated with the run's recipe, without DD-Ranking's learning-rate
//! search (`hard_label.py:168-195`), so that every set gets the same recipe.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Hard-label recovery: HLR = Acc(real, hard) - Acc(syn, hard), the accuracy the synthetic set
/// leaves unrecovered (DD-Ranking README.md:83; `ddranking/metrics/hard_label.py:380`). Lower
/// is better.
pub fn hard_label_recovery(acc_real_hard: f64, acc_syn_hard: f64) -> f64 {
    acc_real_hard - acc_syn_hard
}

/// Improvement over random: IOR = Acc(syn, any) - Acc(rdm, any), a random subset of the same
/// size evaluated the same way (README.md:85; `hard_label.py:381`). Higher is better.
pub fn improvement_over_random(acc_syn: f64, acc_random: f64) -> f64 {
    acc_syn - acc_random
}

/// (e^x - e^-1) / (e - e^-1): maps x in [-1, 1] onto [0, 1] (README.md:95; `hard_label.py:383`,
/// `aug_robust.py:580`).
pub fn normalise_score(x: f64) -> f64 {
    let e = std::f64::consts::E;
    (x.exp() - (-1.0f64).exp()) / (e - 1.0 / e)
}

/// Label-robust score: alpha = w IOR - (1 - w) HLR, LRS = normalise(alpha) (README.md:92-95;
/// `hard_label.py:382-383`, where w is `lrs_lambda`, 0.5 by default, `hard_label.py:325`).
pub fn label_robust_score(hlr: f64, ior: f64, w: f64) -> f64 {
    normalise_score(w * ior - (1.0 - w) * hlr)
}

/// Augmentation-robust score: beta = g (Acc(syn, aug) - Acc(rdm, aug)) + (1 - g) (Acc(syn,
/// no aug) - Acc(rdm, no aug)), ARS = normalise(beta) (README.md:103-105;
/// `ddranking/metrics/aug_robust.py:577-580`, where g is `ars_lambda`, 0.5 by default,
/// `aug_robust.py:515`).
pub fn augmentation_robust_score(syn_aug: f64, rdm_aug: f64, syn_plain: f64, rdm_plain: f64, g: f64) -> f64 {
    normalise_score(g * (syn_aug - rdm_aug) + (1.0 - g) * (syn_plain - rdm_plain))
}

/// One metric over the evaluation networks: its value for each (DD-Ranking computes each
/// metric once per evaluation run, `hard_label.py:339-388`), their mean and population std
/// (`np.mean`, `np.std`, `hard_label.py:411-416`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MetricSummary {
    pub values: Vec<f64>,
    pub mean: f64,
    pub std: f64,
}

impl MetricSummary {
    pub fn of(values: Vec<f64>) -> Self {
        let (mean, std) = super::stats::mean_std(&values);
        Self { values, mean, std }
    }
}

/// The per-network test accuracies that the metrics of one architecture are computed from.
/// Network k of every set starts from the same initialisation (the evaluation seeds networks
/// by index), so the k-th values form DD-Ranking's k-th evaluation run.
#[derive(Debug, Clone, Default)]
pub struct MetricInputs {
    /// The synthetic set and the random subset under the run's recipe ("syn-any": with the
    /// set's learned step size and soft labels when it has them).
    pub syn: Vec<f64>,
    /// The synthetic set with hard labels ("syn-hard"), when it differs from `syn`; empty:
    /// `syn` is already hard-label.
    pub syn_hard: Vec<f64>,
    pub random: Vec<f64>,
    /// The whole training set under the same recipe: one value per network, or a single value
    /// used for every run (a known accuracy, as DD-Ranking's `REAL_DATA_ACC_CACHE`,
    /// `hard_label.py:363-367`).
    pub whole: Vec<f64>,
    /// Both sets with augmentation and without it (one pair is the recipe's own).
    pub syn_aug: Vec<f64>,
    pub random_aug: Vec<f64>,
    pub syn_plain: Vec<f64>,
    pub random_plain: Vec<f64>,
}

/// DD-Ranking's metrics of a synthetic set on one evaluation architecture (fractions, scores in
/// [0, 1]).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FairMetrics {
    pub arch: String,
    /// `hard` (the hard-label recipe: DD-Ranking's `LabelRobustScoreHard`) or `soft` (IOR and
    /// ARS from the soft-label students, HLR still from hard labels: `LabelRobustScoreSoft`,
    /// `ddranking/metrics/soft_label.py:516-564`).
    #[serde(default = "hard_labels", skip_serializing_if = "is_hard")]
    pub labels: String,
    /// w of the label-robust score and g of the augmentation-robust score.
    pub lrs_weight: f64,
    pub ars_weight: f64,
    /// The augmentation of the "with augmentation" evaluations (the recipe's, or DSA when the
    /// recipe has none).
    pub augmentation: String,
    pub whole_accuracy: MetricSummary,
    pub hard_label_recovery: MetricSummary,
    pub improvement_over_random: MetricSummary,
    pub label_robust_score: MetricSummary,
    /// Acc(syn, aug) - Acc(rdm, aug) and the same without augmentation.
    pub with_aug_score: MetricSummary,
    pub without_aug_score: MetricSummary,
    pub augmentation_robust_score: MetricSummary,
}

/// The label kind of the metrics of the matching papers.
pub const HARD_LABELS: &str = "hard";
/// The label kind of the soft-label (KD) metrics.
pub const SOFT_LABELS: &str = "soft";

fn hard_labels() -> String {
    HARD_LABELS.to_string()
}

fn is_hard(labels: &str) -> bool {
    labels == HARD_LABELS
}

impl FairMetrics {
    /// The same metrics marked as computed from soft-label (`soft`) or hard-label evaluations.
    pub fn with_labels(self, labels: &str) -> Self {
        Self {
            labels: labels.to_string(),
            ..self
        }
    }

    /// The metrics from per-network accuracies, pairing network k of every set.
    pub fn compute(
        arch: &str,
        augmentation: &str,
        inputs: &MetricInputs,
        lrs_weight: f64,
        ars_weight: f64,
    ) -> Result<Self> {
        let n = inputs.syn.len();
        let lists = [
            ("random", &inputs.random),
            ("synthetic with augmentation", &inputs.syn_aug),
            ("random with augmentation", &inputs.random_aug),
            ("synthetic without augmentation", &inputs.syn_plain),
            ("random without augmentation", &inputs.random_plain),
        ];
        if n == 0 {
            return Err(Error::Other("fair metrics need at least one evaluation network".into()));
        }
        for (name, list) in lists {
            if list.len() != n {
                return Err(Error::Other(format!(
                    "fair metrics pair network k of every set: the {name} set has {} accuracies, the synthetic set {n}",
                    list.len()
                )));
            }
        }
        let whole_k = |k: usize| match inputs.whole.len() {
            len if len == n => inputs.whole[k],
            // A known accuracy, or fewer whole-set networks than the others: their mean for
            // every run.
            _ => super::stats::mean_std(&inputs.whole).0,
        };
        if inputs.whole.is_empty() {
            return Err(Error::Other(
                "fair metrics need the whole training set's accuracy".into(),
            ));
        }
        let per = |f: &dyn Fn(usize) -> f64| MetricSummary::of((0..n).map(f).collect());
        let syn_hard = if inputs.syn_hard.is_empty() {
            &inputs.syn
        } else {
            &inputs.syn_hard
        };
        if syn_hard.len() != n {
            return Err(Error::Other(format!(
                "fair metrics pair network k of every set: the hard-label synthetic set has {} accuracies, the synthetic set {n}",
                syn_hard.len()
            )));
        }
        let hlr = |k: usize| hard_label_recovery(whole_k(k), syn_hard[k]);
        let ior = |k: usize| improvement_over_random(inputs.syn[k], inputs.random[k]);
        let with_aug = |k: usize| inputs.syn_aug[k] - inputs.random_aug[k];
        let without_aug = |k: usize| inputs.syn_plain[k] - inputs.random_plain[k];
        Ok(Self {
            arch: arch.to_string(),
            labels: hard_labels(),
            lrs_weight,
            ars_weight,
            augmentation: augmentation.to_string(),
            whole_accuracy: MetricSummary::of(inputs.whole.clone()),
            hard_label_recovery: per(&hlr),
            improvement_over_random: per(&ior),
            label_robust_score: per(&|k| label_robust_score(hlr(k), ior(k), lrs_weight)),
            with_aug_score: per(&with_aug),
            without_aug_score: per(&without_aug),
            augmentation_robust_score: per(&|k| {
                augmentation_robust_score(
                    inputs.syn_aug[k],
                    inputs.random_aug[k],
                    inputs.syn_plain[k],
                    inputs.random_plain[k],
                    ars_weight,
                )
            }),
        })
    }
}
