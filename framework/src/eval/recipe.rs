//! How the networks of one evaluation train: the narrow recipe that every evaluation reads,
//! resolved once from the run's settings (see [`super::EvalPlan`]).

use serde::Serialize;

use crate::train::StepSchedule;

/// The learning-rate schedule of an evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    /// The reference's: E + 1 epochs of SGD, the lr / 10 with a fresh optimiser after epoch
    /// E / 2 + 1 (DatasetCondensation `utils.py:341-355`; see [`StepSchedule::evaluation`]).
    ReferenceStep,
}

/// Everything about training the networks of an evaluation but the architecture, its
/// augmentation and the set.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TrainRecipe {
    /// Starting learning rate of SGD (`eval.lr`, or the step size a set learned).
    pub lr: f64,
    pub momentum: f64,
    pub weight_decay: f64,
    /// Images per batch.
    pub batch: usize,
    /// The reference's `epoch_eval_train` E: each network trains E + 1 epochs.
    pub epochs: usize,
    /// Fresh networks trained, each tested on its own.
    pub nets: usize,
    /// How many of them train at the same time (at least 1; results do not depend on it).
    pub parallel: usize,
    pub schedule: Schedule,
}

impl TrainRecipe {
    /// The epochs and the learning-rate drop, as the training loop runs them.
    pub fn step_schedule(&self) -> StepSchedule {
        match self.schedule {
            Schedule::ReferenceStep => StepSchedule::evaluation(self.epochs),
        }
    }

    /// The same recipe from another learning rate.
    pub fn with_lr(self, lr: f64) -> Self {
        Self { lr, ..self }
    }

    /// The same recipe for E = `epochs`.
    pub fn with_epochs(self, epochs: usize) -> Self {
        Self { epochs, ..self }
    }

    /// The same recipe over `nets` networks.
    pub fn with_nets(self, nets: usize) -> Self {
        Self { nets, ..self }
    }
}
