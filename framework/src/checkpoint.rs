//! Checkpoints of a condensation: everything needed to continue it bit for bit.
//!
//! Every random draw of an iteration comes from a stream derived from (seed, iteration), so
//! there is no generator state to save: the synthetic set, the image optimiser's momentum, the
//! (possibly halved) image learning rate, the learned extras with their momentum, the iteration counters, the scheduler's own state and
//! the per-iteration records are enough. One safetensors file holds it all (the tensors, and
//! the rest as JSON in its metadata), written atomically, so a crash leaves either the old or
//! the new checkpoint, never half of one.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::output::write_atomic;
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
    /// Steps the image optimiser took (Adam's bias correction counts them); absent for SGD.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub image_steps: usize,
    /// Names of the image optimiser's state buffers other than SGD's momentum (their tensors
    /// are `image_opt.<name>`), in order; absent for SGD.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_state: Vec<String>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
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
    /// The state of an image optimiser other than SGD (Adam's moments), by name; None entries
    /// (before its first step) are left out of the file and come back as None.
    pub image_state: Vec<(String, Option<Tensor>)>,
    pub learned: Vec<LearnedCheckpoint>,
    pub state: CheckpointState,
}

fn f32_bytes(t: &Tensor) -> Result<Vec<u8>> {
    Ok(t.to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect())
}

impl Checkpoint {
    /// Writes the checkpoint to `path` atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut named: Vec<(String, &Tensor)> = vec![("images".to_string(), &self.images)];
        if let Some(v) = &self.velocity {
            named.push(("velocity".to_string(), v));
        }
        for (name, t) in &self.image_state {
            if let Some(t) = t {
                named.push((format!("image_opt.{name}"), t));
            }
        }
        for l in &self.learned {
            named.push((format!("learned.{}", l.name), &l.value));
            if let Some(v) = &l.velocity {
                named.push((format!("learned_velocity.{}", l.name), v));
            }
        }
        let data = named.iter().map(|(_, t)| f32_bytes(t)).collect::<Result<Vec<_>>>()?;
        let views = named
            .iter()
            .zip(&data)
            .map(|((name, t), bytes)| {
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, t.dims().to_vec(), bytes)
                    .map(|v| (name.clone(), v))
                    .map_err(|e| Error::Other(format!("checkpoint {name}: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let mut state = self.state.clone();
        state.learned = self.learned.iter().map(|l| l.name.clone()).collect();
        state.image_state = self.image_state.iter().map(|(n, _)| n.clone()).collect();
        // One metadata key only: safetensors keeps metadata in a HashMap, and a single key
        // serialises the same way every time.
        let state = serde_json::to_string(&state).map_err(|e| Error::Other(e.to_string()))?;
        let metadata = HashMap::from([("state".to_string(), state)]);
        let bytes = safetensors::serialize(views, &Some(metadata))
            .map_err(|e| Error::Other(format!("serialising checkpoint: {e}")))?;
        write_atomic(path, &bytes)
    }

    /// Reads a checkpoint written by [`Checkpoint::save`].
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let corrupt = |message: String| Error::CheckpointCorrupt {
            path: path.to_path_buf(),
            message,
        };
        let bytes = std::fs::read(path).map_err(|e| Error::io(format!("reading checkpoint {}", path.display()), e))?;
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes)
            .map_err(|e| corrupt(format!("its safetensors header does not parse: {e}")))?;
        let st = safetensors::SafeTensors::deserialize(&bytes)
            .map_err(|e| corrupt(format!("its tensors do not parse: {e}")))?;
        let state_json = meta
            .metadata()
            .as_ref()
            .and_then(|m| m.get("state"))
            .ok_or_else(|| corrupt("it has no 'state' metadata".into()))?;
        let state: CheckpointState =
            serde_json::from_str(state_json).map_err(|e| corrupt(format!("its state is not valid: {e}")))?;
        let tensor = |name: &str| -> Result<Option<Tensor>> {
            match st.tensor(name) {
                Ok(v) => {
                    let data: Vec<f32> = v
                        .data()
                        .chunks_exact(4)
                        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                        .collect();
                    Ok(Some(Tensor::from_vec(data, v.shape().to_vec(), device)?))
                }
                Err(_) => Ok(None),
            }
        };
        let images = tensor("images")?.ok_or_else(|| corrupt("it has no 'images' tensor".into()))?;
        let learned = state
            .learned
            .iter()
            .map(|name| {
                Ok(LearnedCheckpoint {
                    name: name.clone(),
                    value: tensor(&format!("learned.{name}"))?
                        .ok_or_else(|| corrupt(format!("it names learned tensor '{name}' but does not hold it")))?,
                    velocity: tensor(&format!("learned_velocity.{name}"))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let image_state = state
            .image_state
            .iter()
            .map(|name| Ok((name.clone(), tensor(&format!("image_opt.{name}"))?)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            images,
            velocity: tensor("velocity")?,
            image_state,
            learned,
            state,
        })
    }
}
