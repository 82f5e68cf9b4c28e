//! `Scheduler`: how many outer (matching) and inner (network training) steps one iteration of
//! the bi-level loop takes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Result;

/// The operations of one iteration that a scheduler composes; implemented by the engine.
pub trait BilevelLoop {
    /// One matching step: compute the matcher's loss and step the image optimiser.
    /// Returns the loss.
    fn outer_step(&mut self) -> Result<f64>;
    /// One epoch of training the current network on the synthetic set.
    fn inner_epoch(&mut self) -> Result<()>;
    /// Accuracy in [0, 1] of the current network on a probe of `per_class` random real
    /// images per class: the mean over classes of each class's accuracy, each class's images
    /// forwarded as one batch in train mode, as CAFE's reference probes
    /// (kaiwang960112/CAFE `distill.py:300-305`). `draw` says whether the images are drawn anew
    /// for this probe (the reference) or once per iteration and reused.
    fn probe_accuracy(&mut self, per_class: usize, draw: ProbeDraw) -> Result<f64>;
    /// Images per class of the synthetic set.
    fn ipc(&self) -> usize;
    /// Number of classes.
    fn classes(&self) -> usize;
}

/// How the real images of a probe are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbeDraw {
    /// New random images at every probe (CAFE's `get_images(c, 128)` inside both watcher loops).
    Fresh,
    /// One draw per iteration, reused by every probe of that iteration.
    Fixed,
}

/// What one iteration did, for results.json and the logs.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct IterationReport {
    pub outer_steps: usize,
    pub inner_epochs: usize,
    /// True when a hard cap ended a loop instead of its stopping rule.
    pub capped: bool,
    /// Inner loops run (a loop is the epochs between two outer steps).
    #[serde(default)]
    pub inner_loops: usize,
    /// Inner loops that a hard cap ended instead of their stopping rule (dynamic scheduler).
    #[serde(default)]
    pub inner_loops_capped: usize,
    /// Probe accuracies recorded during the iteration (dynamic scheduler).
    pub probe_accuracies: Vec<f64>,
    /// Last matching loss of the iteration.
    pub last_loss: f64,
    /// Outer steps whose update the matcher declined: no optimiser stepped (DATM's loss
    /// threshold, `MatchOutput::skip`). Filled by the engine.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub skipped_steps: usize,
    /// Outer steps whose matching was shared among ranks by class (each rank computing its
    /// classes, `Matcher::decomposition`); 0 in one process or when computed whole on every
    /// rank. Filled by the engine.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub shared_steps: usize,
    /// What the matcher recorded at the iteration's last outer step (`MatchOutput::record`:
    /// DATM's start epoch and its window). Filled by the engine.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub record: BTreeMap<String, f64>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// Decides the outer/inner step pattern of each iteration.
pub trait Scheduler: Send {
    /// Runs one iteration on `bilevel`, starting from a fresh network.
    fn run_iteration(&mut self, bilevel: &mut dyn BilevelLoop) -> Result<IterationReport>;

    /// Whether the network is ever trained (false for DM's `none`): the engine skips
    /// building the probe when it is never needed.
    fn trains_network(&self) -> bool {
        true
    }

    /// State that carries from one iteration to the next, for checkpoints (None: stateless).
    fn save_state(&self) -> serde_json::Value {
        serde_json::Value::Null
    }

    /// Restores what [`Scheduler::save_state`] returned.
    fn load_state(&mut self, _state: &serde_json::Value) -> Result<()> {
        Ok(())
    }
}
