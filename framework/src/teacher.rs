//! A teacher network: trained once on the real training set, then frozen; its file format and
//! what is known of it. One format serves the KD evaluation's teacher (`teacher.safetensors`
//! of a `--kd` run) and the frozen teacher of the decoupled methods (`cafe-lab teacher`, read
//! by SRe2L's recovery and RDED's selection, and by their soft-label evaluation).
//!
//! The file: the parameters in the network's order as `param.NNNN`, f32; the running
//! statistics of its BatchNorm layers, in forward order, as `bn.NNNN.running_mean` and
//! `bn.NNNN.running_var` (buffers, not parameters, but what a BatchNorm network computes with in
//! evaluation mode, and what SRe2L matches); metadata `format`, `dataset`, the `teacher` record
//! and `arch_config` (the architecture's resolved settings, so that a teacher of another
//! configuration is refused by name). Files from before the running statistics were kept have
//! the same `format`: a network without BatchNorm reads them as before, and a BatchNorm one is
//! refused, since its running statistics would be PyTorch's initial mean 0 and variance 1.

use std::path::Path;

use candle_core::{DType, Device};
use serde::{Deserialize, Serialize};

use crate::nn::RunningStats;
use crate::rng::sub_rng;
use crate::tensor_file::{FileKind, TensorFile, TensorWriter};
use crate::traits::architecture::{Architecture, Network};
use crate::{Error, ImageShape, Result};

/// Value of a teacher file's `format` key.
pub const TEACHER_FORMAT: &str = "cafe-lab teacher 1";

/// Where `cafe-lab teacher` saves a teacher of `arch` on `dataset` unless told otherwise, and
/// where a method that needs one looks (`teachers/<dataset>-<arch>.safetensors`).
pub fn default_teacher_path(dataset: &str, arch: &str) -> std::path::PathBuf {
    std::path::PathBuf::from("teachers").join(format!(
        "{}-{}.safetensors",
        dataset.to_ascii_lowercase(),
        arch.to_ascii_lowercase()
    ))
}

/// The network a teacher file is loaded into: its architecture, registered name, resolved
/// settings (None: not checked), input shape and classes.
pub struct TeacherArch<'a> {
    pub arch: &'a dyn Architecture,
    pub name: &'a str,
    pub config: Option<&'a serde_json::Value>,
    pub shape: ImageShape,
    pub classes: usize,
}

/// What the results record of a teacher.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TeacherInfo {
    pub arch: String,
    /// `trained` (on the run's training set) or the file it was loaded from.
    pub source: String,
    /// Epochs it was trained (E + 1 under the recipe's schedule).
    pub epochs: usize,
    pub train_images: usize,
    /// Its test accuracy (a fraction).
    pub accuracy: f64,
}

/// A teacher network and what is known of it.
pub struct Teacher {
    pub net: Box<dyn Network>,
    pub info: TeacherInfo,
}

/// The name of parameter `i` in a teacher file.
fn param_name(i: usize) -> String {
    format!("param.{i:04}")
}

/// The name of BatchNorm layer `k`'s running statistic `what` (`running_mean`, `running_var`).
fn bn_key(k: usize, what: &str) -> String {
    format!("bn.{k:04}.{what}")
}

/// Saves the teacher's parameters (in the network's order) and its BatchNorm layers' running
/// statistics, with its record as metadata.
pub fn save_teacher(teacher: &Teacher, dataset: &str, path: &Path) -> Result<()> {
    save_teacher_with(teacher, dataset, None, path)
}

/// [`save_teacher`], recording the architecture's resolved settings `arch_config`.
pub fn save_teacher_with(
    teacher: &Teacher,
    dataset: &str,
    arch_config: Option<&serde_json::Value>,
    path: &Path,
) -> Result<()> {
    let mut file = TensorWriter::new("the teacher");
    for (i, v) in teacher.net.parameters().iter().enumerate() {
        file.f32(param_name(i), v.as_tensor())?;
    }
    for (k, bn) in teacher.net.batch_norms().iter().enumerate() {
        let stats = bn.running_stats()?;
        file.f32(bn_key(k, "running_mean"), &stats.mean)?;
        file.f32(bn_key(k, "running_var"), &stats.var)?;
    }
    let info = serde_json::to_string(&teacher.info).map_err(|e| Error::Other(format!("the teacher's record: {e}")))?;
    file.metadata("format", TEACHER_FORMAT)
        .metadata("dataset", dataset)
        .metadata("teacher", info);
    if let Some(config) = arch_config {
        file.metadata("arch_config", config.to_string());
    }
    file.write(path)
}

/// Loads a teacher written by [`save_teacher`] into a fresh network of `arch`; refuses a file
/// of another dataset, architecture or configuration, or one that lacks the running statistics
/// of a BatchNorm network, naming `setting` (the setting that gave the file).
pub fn load_teacher(arch: &TeacherArch, dataset: &str, path: &Path, device: &Device, setting: &str) -> Result<Teacher> {
    let mut file = TensorFile::open(path, FileKind::Teacher)?;
    let meta = file.metadata().clone();
    if meta.get("format").map(String::as_str) != Some(TEACHER_FORMAT) {
        return Err(file.corrupt(format!(
            "its 'format' metadata is {:?}, a cafe-lab teacher (written by `cafe-lab teacher`, or by \
             a run with --kd as teacher.safetensors) says '{TEACHER_FORMAT}'",
            meta.get("format")
        )));
    }
    let mut info: TeacherInfo = serde_json::from_str(meta.get("teacher").map_or("", String::as_str))
        .map_err(|e| file.corrupt(format!("its 'teacher' metadata does not fit: {e}")))?;
    // A readable teacher that does not fit this run: the setting is what should change.
    let misfit = |message: String| Error::invalid(setting, path.display(), message);
    let file_dataset = meta.get("dataset").cloned().unwrap_or_default();
    if !file_dataset.eq_ignore_ascii_case(dataset) {
        return Err(misfit(format!(
            "it was trained on {file_dataset}, this run is on {dataset}"
        )));
    }
    if !info.arch.eq_ignore_ascii_case(arch.name) {
        return Err(misfit(format!(
            "it is a {}; this run needs a {} teacher: give one of that architecture, or run on {}",
            info.arch, arch.name, info.arch
        )));
    }
    if let (Some(want), Some(have)) = (arch.config, meta.get("arch_config")) {
        let have: serde_json::Value = serde_json::from_str(have)
            .map_err(|e| file.corrupt(format!("its 'arch_config' metadata is not JSON: {e}")))?;
        if &have != want {
            return Err(misfit(format!(
                "it is a {} with settings {have}, this run's {} has {want}: train a teacher of this \
                 configuration (`cafe-lab teacher`), or run with the teacher's settings",
                info.arch, arch.name
            )));
        }
    }
    let mut rng = sub_rng(0, &[0x7EAC_4E12]);
    let net = arch
        .arch
        .build(arch.shape, arch.classes, DType::F32, device, &mut rng)?;
    let names: std::collections::BTreeSet<String> = file.names().map(str::to_string).collect();
    let mut read = |name: &str, want: &[usize], what: &str| -> Result<candle_core::Tensor> {
        let Some(found) = file.info(name) else {
            return Err(misfit(format!("it has no {what}")));
        };
        if found.shape != want {
            return Err(misfit(format!(
                "its {what} has shape {:?}, the network's is {want:?} (another architecture configuration?)",
                found.shape
            )));
        }
        file.tensor_f32(name, device)
    };
    let vars = net.parameters();
    for (i, var) in vars.iter().enumerate() {
        if !names.contains(&param_name(i)) {
            return Err(misfit(format!(
                "it has no parameter {i}; the network has {}",
                vars.len()
            )));
        }
        var.set(&read(&param_name(i), var.dims(), &format!("parameter {i}"))?)?;
    }
    let bns = net.batch_norms();
    for (k, bn) in bns.iter().enumerate() {
        let c = bn.running_stats()?.mean.dims().to_vec();
        if !names.contains(&bn_key(k, "running_mean")) {
            return Err(misfit(format!(
                "it holds no running statistics for the network's {} BatchNorm layers (a file from \
                 before cafe-lab kept them): evaluation mode would normalise with mean 0 and variance \
                 1; train the teacher again",
                bns.len()
            )));
        }
        let what = |s: &str| format!("BatchNorm layer {k}'s {s}");
        bn.set_running_stats(RunningStats {
            mean: read(&bn_key(k, "running_mean"), &c, &what("running mean"))?,
            var: read(&bn_key(k, "running_var"), &c, &what("running variance"))?,
        })?;
    }
    if names.contains(&param_name(vars.len())) {
        return Err(misfit(format!(
            "it holds more than the network's {} parameters (another architecture configuration?)",
            vars.len()
        )));
    }
    if names.contains(&bn_key(bns.len(), "running_mean")) {
        return Err(misfit(format!(
            "it holds running statistics of more BatchNorm layers than the network's {} (another \
             architecture?)",
            bns.len()
        )));
    }
    info.source = path.display().to_string();
    Ok(Teacher { net, info })
}
