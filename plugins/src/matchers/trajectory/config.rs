//! The `trajectory` matcher's settings: MTT's (mtt-distillation `distill.py` argument
//! defaults, lines 417-471, cited as `distill.py:LINE`), with TESLA's and DATM's options,
//! each defaulting to what MTT does. The `datm` protocol (plugins/protocols/datm.toml) sets
//! DATM's values per dataset and ipc.

use std::path::PathBuf;

use cafe_framework::trajectory::{Expansion, ExpertSelection, StartWindow, Unroll};
use cafe_framework::{Error, Result};
use serde::{Deserialize, Serialize};

/// Where the initial images (and, with soft labels, their logits) come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PixInit {
    /// The run's `init` (real or noise); soft labels are the first expert's logits on them
    /// (DATM's `pix_init: real`, `DATM.py:309-319`).
    #[default]
    Run,
    /// Real images that an expert classifies correctly; soft labels are the mean logits of the
    /// experts that classify each correctly (DATM `DATM.py:185-236,270-307`;
    /// `cafe_framework::trajectory::correct_init`).
    SamplesPredictedCorrectly,
}

/// The matcher's settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrajectoryConfig {
    /// The expert store (what `cafe-lab experts` wrote). Unset: `experts/<dataset>-<arch>`,
    /// where `cafe-lab experts` writes by default.
    pub experts: Option<PathBuf>,
    /// Read the first this many reference buffer files (`--max_files`, `distill.py:470`); a
    /// file is `experts_per_file` consecutive experts of the store. Unset: all.
    pub max_files: Option<usize>,
    /// Read the first this many experts of each file (`--max_experts`, "number of experts to
    /// read per file", `distill.py:471`, used at `:177-178,320-321`). Unset: all.
    pub max_experts: Option<usize>,
    /// Experts per reference buffer file (`buffer.py --save_interval 10`, `buffer.py:131`).
    pub experts_per_file: usize,
    /// Student steps per matching step (`--syn_steps 20`, `distill.py:456`).
    pub syn_steps: usize,
    /// How many expert epochs after the start the target is (`--expert_epochs 3`, `distill.py:455`).
    pub expert_epochs: usize,
    /// The start epoch is drawn from `min_start_epoch..max_start_epoch` (`--max_start_epoch
    /// 25`, `distill.py:457`; `np.random.randint(0, max_start_epoch)`, `distill.py:324`, never
    /// the bound itself).
    pub max_start_epoch: usize,
    /// The smallest start epoch (DATM `min_start_epoch`, `utils/cfg.py:74`, `DATM.py:491`; MTT: 0).
    pub min_start_epoch: usize,
    /// DATM's difficulty-aligned window (`Sequential_Generation`, `DATM.py:485-489`; on by
    /// default in DATM, `utils/cfg.py:116`; MTT: off): the start epoch's upper bound grows from
    /// `current_max_start_epoch` to `max_start_epoch` by iteration `expansion_end_epoch`.
    pub sequential_generation: bool,
    /// The upper bound at iteration 0 (`current_max_start_epoch 20`, `utils/cfg.py:118`).
    pub current_max_start_epoch: usize,
    /// The iteration at which the bound reaches `max_start_epoch` (`expansion_end_epoch 3000`,
    /// `utils/cfg.py:117`).
    pub expansion_end_epoch: usize,
    /// Images per student step; unset: the whole set (`--batch_syn None` ->
    /// `num_classes * ipc`, `distill.py:74-75`).
    pub batch_syn: Option<usize>,
    /// The step size's initial value (`syn_lr = lr_teacher`, `distill.py:118`; `--lr_teacher
    /// 0.01`, `distill.py:435`. The reference's `--lr_init` is never read).
    pub lr_teacher: f64,
    /// Learn the step size (MTT). False keeps `lr_teacher` fixed and evaluation uses `eval.lr`.
    pub learn_lr: bool,
    /// The step size's learning rate (`--lr_lr 1e-5`, `distill.py:434`).
    pub lr_lr: f64,
    /// The step size optimiser's momentum (`SGD([syn_lr], lr=lr_lr, momentum=0.5)`,
    /// `distill.py:139`).
    pub momentum_lr: f64,
    /// How the gradient through the unroll is computed: `reverse` (exact, memory constant in
    /// syn_steps; the default), `graph` (exact, the reference's one graph), `tesla` (TESLA's
    /// code, without the Hessian terms: not exact).
    pub unroll: Unroll,
    /// Learn soft labels (DATM, Guo et al., ICLR 2024): logits initialised from the experts'
    /// predictions on the initial images (see `pix_init`), trained with the soft cross-entropy,
    /// used by evaluation.
    pub soft_labels: bool,
    /// TESLA's `--teacher_label` (justincui03/tesla `distill.py:342-362`): every iteration the
    /// labels are the softmax of the *target* parameters' logits on the current images (eval
    /// mode, no gradient), and the set keeps the last ones for evaluation (`:205-211`).
    pub teacher_label: bool,
    /// Where the initial images come from (DATM `pix_init`, `utils/cfg.py:58`).
    pub pix_init: PixInit,
    /// The soft labels' learning rate (`lr_y`; DATM `utils/cfg.py:102`: 2.0).
    pub lr_labels: f64,
    /// Their optimiser's momentum (`Momentum_y: 0.9`, `utils/cfg.py:104`; `DATM.py:329`).
    pub momentum_labels: f64,
    /// When the matching loss is above this, no optimiser steps: neither the pixels, the step
    /// size nor the labels (DATM `threshold`, `DATM.py:556-561`; `utils/cfg.py:110`: 1.0).
    /// Unset: always step (MTT).
    pub threshold: Option<f64>,
    /// Which expert epoch initialises the soft labels (and, with `pix_init =
    /// samples_predicted_correctly`, selects the images); unset: the last (`buffer[0][-1]`,
    /// `DATM.py:315`; `Label_Model_Timestamp = -1`, `utils/cfg.py:136`).
    pub label_expert_epoch: Option<usize>,
}

impl Default for TrajectoryConfig {
    fn default() -> Self {
        Self {
            experts: None,
            max_files: None,
            max_experts: None,
            experts_per_file: 10,
            syn_steps: 20,
            expert_epochs: 3,
            max_start_epoch: 25,
            min_start_epoch: 0,
            sequential_generation: false,
            current_max_start_epoch: 20,
            expansion_end_epoch: 3000,
            batch_syn: None,
            lr_teacher: 0.01,
            learn_lr: true,
            lr_lr: 1e-5,
            momentum_lr: 0.5,
            unroll: Unroll::Reverse,
            soft_labels: false,
            teacher_label: false,
            pix_init: PixInit::Run,
            lr_labels: 2.0,
            momentum_labels: 0.9,
            threshold: None,
            label_expert_epoch: None,
        }
    }
}

impl TrajectoryConfig {
    /// The start-epoch window these settings describe.
    pub fn window(&self) -> StartWindow {
        StartWindow {
            min_start_epoch: self.min_start_epoch,
            max_start_epoch: self.max_start_epoch,
            expansion: self.sequential_generation.then_some(Expansion {
                current_max_start_epoch: self.current_max_start_epoch,
                expansion_end_epoch: self.expansion_end_epoch,
            }),
        }
    }

    /// Which experts of the store are read.
    pub fn selection(&self) -> ExpertSelection {
        ExpertSelection {
            experts_per_file: self.experts_per_file,
            max_files: self.max_files,
            max_experts: self.max_experts,
        }
    }

    pub fn validate(&self) -> Result<()> {
        for (key, v) in [
            ("syn_steps", self.syn_steps),
            ("expert_epochs", self.expert_epochs),
            ("max_start_epoch", self.max_start_epoch),
            ("experts_per_file", self.experts_per_file),
        ] {
            if v == 0 {
                return Err(Error::invalid(format!("matcher.{key}"), 0, "must be at least 1"));
            }
        }
        for (key, v) in [
            ("batch_syn", self.batch_syn),
            ("max_experts", self.max_experts),
            ("max_files", self.max_files),
        ] {
            if v == Some(0) {
                return Err(Error::invalid(
                    format!("matcher.{key}"),
                    0,
                    "must be at least 1 (leave unset for the whole set / every expert / every file)",
                ));
            }
        }
        self.window().validate()?;
        for (key, v) in [
            ("lr_teacher", self.lr_teacher),
            ("lr_lr", self.lr_lr),
            ("lr_labels", self.lr_labels),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(Error::invalid(
                    format!("matcher.{key}"),
                    v,
                    "a learning rate must be a positive finite number",
                ));
            }
        }
        for (key, v) in [
            ("momentum_lr", self.momentum_lr),
            ("momentum_labels", self.momentum_labels),
        ] {
            if !(0.0..1.0).contains(&v) {
                return Err(Error::invalid(
                    format!("matcher.{key}"),
                    v,
                    "momentum must be in [0, 1)",
                ));
            }
        }
        if let Some(t) = self.threshold.filter(|t| !(t.is_finite() && *t > 0.0)) {
            return Err(Error::invalid(
                "matcher.threshold",
                t,
                "the matching loss is a positive ratio: give a positive threshold (DATM uses 1.0-1.1) or leave it unset",
            ));
        }
        if self.soft_labels && self.teacher_label {
            return Err(Error::invalid(
                "matcher.teacher_label",
                true,
                "TESLA's teacher labels replace the labels every iteration, DATM's soft_labels learn them: \
                 choose one",
            ));
        }
        Ok(())
    }
}
