//! Checkpoints of a condensation: everything needed to continue it bit for bit.
//!
//! Every random draw of an iteration comes from a stream derived from (seed, iteration), so
//! there is no generator state to save: the synthetic set, the image optimiser's momentum, the
//! (possibly halved) image learning rate, the learned extras with their momentum, the iteration counters, the scheduler's own state and
//! the per-iteration records are enough. One tensor file ([`crate::tensor_file`]) holds it all
//! (the tensors, and the rest as JSON in its metadata), written atomically, so a crash leaves either the old or
//! the new checkpoint, never half of one.

use std::path::Path;

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::tensor_file::{FileKind, TensorFile, TensorWriter};
use crate::traits::scheduler::IterationReport;
use crate::{Error, Result};

/// File name of the checkpoint inside a run's output directory.
pub const CHECKPOINT_FILE: &str = "checkpoint.safetensors";

/// The non-tensor part of a checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CheckpointState {
    /// The iteration to run next.
    pub next_iteration: usize,
    pub lr_img: f64,
    pub global_step: usize,
    pub reports: Vec<IterationReport>,
    pub seconds_per_iteration: Vec<f64>,
    pub scheduler_state: serde_json::Value,
    /// Names of the learned extras, in order (their tensors are `learned.<name>` and
    /// `learned_velocity.<name>`). Absent in checkpoints from before learned extras.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub learned: Vec<String>,
}

/// A learned extra of the synthetic set (e.g. MTT's step size) and its optimiser's momentum.
#[derive(Debug, Clone)]
pub struct LearnedCheckpoint {
    pub name: String,
    pub value: Tensor,
    pub velocity: Option<Tensor>,
}

/// A checkpoint: the synthetic images, the momentum buffer, and the state.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    pub images: Tensor,
    pub velocity: Option<Tensor>,
    pub learned: Vec<LearnedCheckpoint>,
    pub state: CheckpointState,
}

impl Checkpoint {
    /// Writes the checkpoint to `path` atomically. Tensors: `images`, `velocity` (when there is
    /// momentum), `learned.<name>` and `learned_velocity.<name>`; the state as JSON under the
    /// `state` metadata key.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut file = TensorWriter::new("checkpoint");
        file.f32("images", &self.images)?;
        if let Some(v) = &self.velocity {
            file.f32("velocity", v)?;
        }
        for l in &self.learned {
            file.f32(format!("learned.{}", l.name), &l.value)?;
            if let Some(v) = &l.velocity {
                file.f32(format!("learned_velocity.{}", l.name), v)?;
            }
        }
        let mut state = self.state.clone();
        state.learned = self.learned.iter().map(|l| l.name.clone()).collect();
        let state = serde_json::to_string(&state).map_err(|e| Error::Other(format!("checkpoint state: {e}")))?;
        file.metadata("state", state).write(path)
    }

    /// Reads a checkpoint written by [`Checkpoint::save`].
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let mut file = TensorFile::open(path, FileKind::Checkpoint)?;
        let state_json = file
            .metadata()
            .get("state")
            .ok_or_else(|| file.corrupt("it has no 'state' metadata"))?;
        let state: CheckpointState =
            serde_json::from_str(state_json).map_err(|e| file.corrupt(format!("its state is not valid: {e}")))?;
        if file.info("images").is_none() {
            return Err(file.corrupt("it has no 'images' tensor"));
        }
        if let Some(name) = state
            .learned
            .iter()
            .find(|n| file.info(&format!("learned.{n}")).is_none())
        {
            return Err(file.corrupt(format!("it names learned tensor '{name}' but does not hold it")));
        }
        let images = file.tensor_f32("images", device)?;
        let velocity = file.optional_f32("velocity", device)?;
        let learned = state
            .learned
            .iter()
            .map(|name| {
                Ok(LearnedCheckpoint {
                    name: name.clone(),
                    value: file.tensor_f32(&format!("learned.{name}"), device)?,
                    velocity: file.optional_f32(&format!("learned_velocity.{name}"), device)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            images,
            velocity,
            learned,
            state,
        })
    }
}
