//! One expert's trajectory on disk: its parameters after every training epoch (epoch 0 = the
//! initialisation) in one safetensors file, with string metadata that says what it is.
//!
//! Tensors are named `epoch_EEEE.param_PPP` (PPP in the order of `Network::parameters()`), f32
//! whatever the network trained in. Metadata keys, all strings (JSON where structured):
//! `format`, `cafe_lab_version`, `expert`, `dataset`, `image_shape`, `classes`, `arch`,
//! `arch_config`, `settings` (every setting of the `experts` run but its `--out`), `seed`,
//! `epochs`, `parameter_shapes`, `train_loss` and `test_accuracy` (one per trained epoch),
//! `test_images`. The file is a [`crate::tensor_file`] with a sorted header, so one trajectory
//! gives the same bytes in any process (files written before that have their keys in another
//! order and load all the same).
//!
//! MTT's reference keeps ten experts per `replay_buffer_N.pt` (mtt-distillation `buffer.py`
//! lines 101-107); one file per expert makes every finished expert durable on its own, which is
//! what lets an interrupted `cafe-lab experts` resume.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::tensor_file::{FileKind, TensorFile, TensorWriter};
use crate::{Error, ImageShape, Result};

/// The value of the `format` key of every expert file this version writes.
pub const FORMAT: &str = "cafe-lab expert trajectory 1";

/// The file of expert `index` in a store folder.
pub fn expert_file(dir: &Path, index: usize) -> PathBuf {
    dir.join(format!("expert_{index:04}.safetensors"))
}

fn tensor_name(epoch: usize, param: usize) -> String {
    format!("epoch_{epoch:04}.param_{param:03}")
}

/// What an expert file says about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExpertRecord {
    pub expert: usize,
    pub dataset: String,
    /// The `eps` of the ZCA whitening the expert trained under (None: per-channel
    /// normalisation; also what files written before whitening existed say).
    #[serde(default)]
    pub zca: Option<f64>,
    pub image_shape: ImageShape,
    pub classes: usize,
    /// Registered architecture name and its fully resolved config.
    pub arch: String,
    pub arch_config: Value,
    /// Every setting of the run that trained it (`ExpertsConfig` as JSON).
    pub settings: Value,
    pub seed: u64,
    /// Trained epochs; the file holds `epochs + 1` parameter sets.
    pub epochs: usize,
    pub parameter_shapes: Vec<Vec<usize>>,
    /// Mean training loss of each epoch.
    pub train_loss: Vec<f64>,
    /// Test accuracy (fraction) after each epoch.
    pub test_accuracy: Vec<f64>,
    pub test_images: usize,
    pub cafe_lab_version: String,
}

/// What a consumer of trajectories needs them to fit: the dataset and the network.
#[derive(Debug, Clone, PartialEq)]
pub struct TrajectoryKey {
    pub dataset: String,
    /// ZCA whitening's `eps`, None without whitening: a network trained on whitened images
    /// follows another trajectory.
    pub zca: Option<f64>,
    pub image_shape: ImageShape,
    pub classes: usize,
    pub arch: String,
    pub arch_config: Value,
    pub parameter_shapes: Vec<Vec<usize>>,
}

/// The record's fields stored as plain strings; every other field is JSON text.
const TEXT_FIELDS: [&str; 3] = ["dataset", "arch", "cafe_lab_version"];

impl ExpertRecord {
    fn to_metadata(&self) -> Result<BTreeMap<String, String>> {
        let Value::Object(fields) =
            serde_json::to_value(self).map_err(|e| Error::Other(format!("expert metadata: {e}")))?
        else {
            return Err(Error::Other("expert metadata: the record is not a JSON object".into()));
        };
        let mut meta: BTreeMap<String, String> = fields
            .into_iter()
            .map(|(key, value)| match value {
                Value::String(text) if TEXT_FIELDS.contains(&key.as_str()) => (key, text),
                other => (key, other.to_string()),
            })
            .collect();
        meta.insert("format".into(), FORMAT.into());
        Ok(meta)
    }

    fn from_metadata(path: &Path, meta: &BTreeMap<String, String>) -> Result<Self> {
        let corrupt = |message: String| FileKind::ExpertTrajectory.corrupt(path, message);
        match meta.get("format") {
            Some(f) if f == FORMAT => {}
            Some(f) => {
                return Err(corrupt(format!(
                    "expert trajectory format '{f}'; this cafe-lab reads '{FORMAT}'"
                )))
            }
            None => return Err(corrupt("not an expert trajectory: no 'format' metadata".into())),
        }
        let mut fields = serde_json::Map::new();
        for (key, text) in meta.iter().filter(|(k, _)| *k != "format") {
            let value = if TEXT_FIELDS.contains(&key.as_str()) {
                Value::String(text.clone())
            } else {
                serde_json::from_str(text).map_err(|e| corrupt(format!("metadata '{key}' = {text}: {e}")))?
            };
            fields.insert(key.clone(), value);
        }
        serde_json::from_value(Value::Object(fields)).map_err(|e| corrupt(format!("expert metadata: {e}")))
    }

    /// What this trajectory fits.
    pub fn key(&self) -> TrajectoryKey {
        TrajectoryKey {
            dataset: self.dataset.clone(),
            zca: self.zca,
            image_shape: self.image_shape,
            classes: self.classes,
            arch: self.arch.clone(),
            arch_config: self.arch_config.clone(),
            parameter_shapes: self.parameter_shapes.clone(),
        }
    }

    /// Refuses a trajectory that does not fit `want`, naming what differs and how to get one
    /// that fits.
    pub fn check_fits(&self, path: &Path, want: &TrajectoryKey) -> Result<()> {
        let have = self.key();
        let mut differences = Vec::new();
        if have.dataset != want.dataset {
            differences.push(format!("dataset {} (wanted {})", have.dataset, want.dataset));
        }
        if have.zca != want.zca {
            let describe = |zca: Option<f64>| {
                zca.map_or_else(
                    || "per-channel normalisation".to_string(),
                    |eps| format!("ZCA whitening (eps {eps})"),
                )
            };
            differences.push(format!("{} (wanted {})", describe(have.zca), describe(want.zca)));
        }
        if have.image_shape != want.image_shape || have.classes != want.classes {
            differences.push(format!(
                "images {} in {} classes (wanted {} in {})",
                have.image_shape, have.classes, want.image_shape, want.classes
            ));
        }
        if have.arch != want.arch || have.arch_config != want.arch_config {
            differences.push(format!(
                "architecture {} {} (wanted {} {})",
                have.arch, have.arch_config, want.arch, want.arch_config
            ));
        }
        if differences.is_empty() && have.parameter_shapes != want.parameter_shapes {
            differences.push(format!(
                "parameter shapes {:?} (wanted {:?})",
                have.parameter_shapes, want.parameter_shapes
            ));
        }
        if differences.is_empty() {
            return Ok(());
        }
        Err(Error::invalid(
            "expert trajectory",
            path.display(),
            format!(
                "it does not fit this run: {}; train experts for it with `cafe-lab experts --dataset {}{} --arch {}` \
                 (and the same --set arch.KEY=VALUE settings)",
                differences.join("; "),
                want.dataset,
                want.zca.map(|eps| format!(" --zca {eps}")).unwrap_or_default(),
                want.arch
            ),
        ))
    }

    /// Reads only the metadata of the expert file at `path` (its header, not its tensors).
    pub fn read(path: &Path) -> Result<Self> {
        Self::from_metadata(path, TensorFile::open(path, FileKind::ExpertTrajectory)?.metadata())
    }
}

/// One expert: its record and its parameters after every epoch.
#[derive(Debug, Clone)]
pub struct ExpertTrajectory {
    pub record: ExpertRecord,
    /// `epochs[e][p]`: parameter `p` after epoch `e` (0: initialisation).
    epochs: Vec<Vec<Tensor>>,
}

impl ExpertTrajectory {
    /// A trajectory of `epochs` parameter sets (the first the initialisation), each with the
    /// record's parameter shapes.
    pub fn new(record: ExpertRecord, epochs: Vec<Vec<Tensor>>) -> Result<Self> {
        if record.epochs.checked_add(1) != Some(epochs.len()) {
            return Err(Error::Other(format!(
                "expert {}: {} parameter sets for {} epochs (want epochs + 1, the first the initialisation)",
                record.expert,
                epochs.len(),
                record.epochs
            )));
        }
        Self::held(record, epochs)
    }

    /// A trajectory holding the first `epochs.len()` parameter sets of the expert `record`
    /// describes (trajectory matching needs only the epochs up to its last target).
    fn held(record: ExpertRecord, epochs: Vec<Vec<Tensor>>) -> Result<Self> {
        if epochs.is_empty() || epochs.len() - 1 > record.epochs {
            return Err(Error::Other(format!(
                "expert {}: {} parameter sets for {} epochs (want epochs + 1, the first the initialisation)",
                record.expert,
                epochs.len(),
                record.epochs
            )));
        }
        for (e, set) in epochs.iter().enumerate() {
            let shapes: Vec<Vec<usize>> = set.iter().map(|t| t.dims().to_vec()).collect();
            if shapes != record.parameter_shapes {
                return Err(Error::Other(format!(
                    "expert {}: epoch {e} has parameter shapes {shapes:?}, the record says {:?}",
                    record.expert, record.parameter_shapes
                )));
            }
        }
        Ok(Self { record, epochs })
    }

    /// The last epoch held (`epoch(0..=epochs())` exist): the trained epochs, unless loaded
    /// with [`ExpertTrajectory::load_through`].
    pub fn epochs(&self) -> usize {
        self.epochs.len() - 1
    }

    /// The parameters after epoch `e` (0: initialisation), in the order of
    /// `Network::parameters()`, f32.
    pub fn epoch(&self, e: usize) -> Result<&[Tensor]> {
        self.epochs.get(e).map(Vec::as_slice).ok_or_else(|| {
            Error::invalid(
                "expert epoch",
                e,
                format!(
                    "expert {} holds epochs 0..={} (0 is the initialisation)",
                    self.record.expert,
                    self.epochs()
                ),
            )
        })
    }

    /// Writes the trajectory to `path` atomically (a crash leaves no partial expert file).
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut file = TensorWriter::new(format!("expert {}", self.record.expert));
        for (e, set) in self.epochs.iter().enumerate() {
            for (p, t) in set.iter().enumerate() {
                file.f32(tensor_name(e, p), t)?;
            }
        }
        for (key, value) in self.record.to_metadata()? {
            file.metadata(key, value);
        }
        file.write(path)
    }

    /// Reads an expert file written by [`ExpertTrajectory::save`], its tensors on `device`.
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let file = TensorFile::open(path, FileKind::ExpertTrajectory)?;
        let record = ExpertRecord::from_metadata(path, file.metadata())?;
        let last = record.epochs;
        Self::load_epochs(file, record, device, last)
    }

    /// Reads the epochs `0..=last` of an expert file (an error names the epochs it has); the
    /// later epochs' bytes are not read.
    pub fn load_through(path: &Path, device: &Device, last: usize) -> Result<Self> {
        let file = TensorFile::open(path, FileKind::ExpertTrajectory)?;
        let record = ExpertRecord::from_metadata(path, file.metadata())?;
        if last > record.epochs {
            return Err(Error::invalid(
                "expert trajectory",
                path.display(),
                format!(
                    "it holds epochs 0..={} but epoch {last} is needed; train longer experts \
                     (`cafe-lab experts --train-epochs {last}` or more) or lower max_start_epoch / expert_epochs",
                    record.epochs
                ),
            ));
        }
        Self::load_epochs(file, record, device, last)
    }

    /// The parameters after epoch `epoch` of an expert file (None: its last), alone: the
    /// other epochs' bytes are not read.
    pub fn load_epoch(path: &Path, device: &Device, epoch: Option<usize>) -> Result<Vec<Tensor>> {
        let mut file = TensorFile::open(path, FileKind::ExpertTrajectory)?;
        let record = ExpertRecord::from_metadata(path, file.metadata())?;
        if record.parameter_shapes.is_empty() {
            return Err(file.corrupt("its metadata lists no parameters"));
        }
        let e = epoch.unwrap_or(record.epochs);
        if e > record.epochs {
            return Err(Error::invalid(
                "expert epoch",
                e,
                format!("{} holds epochs 0..={}", path.display(), record.epochs),
            ));
        }
        record
            .parameter_shapes
            .iter()
            .enumerate()
            .map(|(p, shape)| {
                let name = tensor_name(e, p);
                match file.info(&name) {
                    None => Err(file.corrupt(format!("it holds no tensor {name}, which its metadata promises"))),
                    Some(info) if info.shape != *shape => Err(file.corrupt(format!(
                        "tensor {name} is {} {:?}, the metadata says F32 {shape:?}",
                        info.dtype, info.shape
                    ))),
                    Some(_) => file.tensor_f32(&name, device),
                }
            })
            .collect()
    }

    fn load_epochs(mut file: TensorFile, record: ExpertRecord, device: &Device, last: usize) -> Result<Self> {
        // Every tensor named before any is read: the record's epochs and shapes come from the
        // header and may promise more than the file holds. With at least one parameter per
        // epoch, the loops below end at the first epoch the file lacks, however many it claims.
        if record.parameter_shapes.is_empty() {
            return Err(file.corrupt("its metadata lists no parameters"));
        }
        for e in 0..=last {
            for (p, shape) in record.parameter_shapes.iter().enumerate() {
                let name = tensor_name(e, p);
                match file.info(&name) {
                    None => {
                        return Err(file.corrupt(format!(
                            "it holds no tensor {name}, which its metadata ({} epochs of {} parameters) promises",
                            record.epochs,
                            record.parameter_shapes.len()
                        )))
                    }
                    Some(info) if info.shape != *shape => {
                        return Err(file.corrupt(format!(
                            "tensor {name} is {} {:?}, the metadata says F32 {shape:?}",
                            info.dtype, info.shape
                        )))
                    }
                    Some(_) => {}
                }
            }
        }
        let epochs = (0..=last)
            .map(|e| {
                (0..record.parameter_shapes.len())
                    .map(|p| file.tensor_f32(&tensor_name(e, p), device))
                    .collect::<Result<Vec<_>>>()
            })
            .collect::<Result<Vec<_>>>()?;
        Self::held(record, epochs)
    }
}
