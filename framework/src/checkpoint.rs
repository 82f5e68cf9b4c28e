//! Checkpoints of a condensation: everything needed to continue it bit for bit.
//!
//! Every random draw of an iteration comes from a stream derived from (seed, iteration), so
//! there is no generator state to save: the synthetic set, the image optimiser's momentum, the
//! (possibly halved) image learning rate, the iteration counters, the scheduler's own state and
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
}

/// A checkpoint: the synthetic images, the momentum buffer, and the state.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    pub images: Tensor,
    pub velocity: Option<Tensor>,
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
        let images = f32_bytes(&self.images)?;
        let velocity = self.velocity.as_ref().map(f32_bytes).transpose()?;
        let mut views = vec![(
            "images".to_string(),
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, self.images.dims().to_vec(), &images)
                .map_err(|e| Error::Other(format!("checkpoint images: {e}")))?,
        )];
        if let (Some(v), Some(bytes)) = (&self.velocity, &velocity) {
            views.push((
                "velocity".to_string(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, v.dims().to_vec(), bytes)
                    .map_err(|e| Error::Other(format!("checkpoint velocity: {e}")))?,
            ));
        }
        // One metadata key only: safetensors keeps metadata in a HashMap, and a single key
        // serialises the same way every time.
        let state = serde_json::to_string(&self.state).map_err(|e| Error::Other(e.to_string()))?;
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
        Ok(Self {
            images,
            velocity: tensor("velocity")?,
            state,
        })
    }
}
