//! A teacher network: trained once on the real training set, then frozen; its file format
//! (`teacher.safetensors`: the parameters in the network's order as `param.NNNN`, f32, with
//! `format`, `dataset` and the `teacher` record as metadata) and what is known of it.

use std::path::Path;

use candle_core::{DType, Device};
use serde::{Deserialize, Serialize};

use crate::rng::sub_rng;
use crate::tensor_file::{FileKind, TensorFile, TensorWriter};
use crate::traits::architecture::{Architecture, Network};
use crate::{Error, ImageShape, Result};

/// Value of a teacher file's `format` key.
pub const TEACHER_FORMAT: &str = "cafe-lab teacher 1";

/// The network a teacher file is loaded into: its architecture, registered name, input shape
/// and classes.
pub struct TeacherArch<'a> {
    pub arch: &'a dyn Architecture,
    pub name: &'a str,
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

/// Saves the teacher's parameters (in the network's order) with its record as metadata.
pub fn save_teacher(teacher: &Teacher, dataset: &str, path: &Path) -> Result<()> {
    let mut file = TensorWriter::new("the teacher");
    for (i, v) in teacher.net.parameters().iter().enumerate() {
        file.f32(param_name(i), v.as_tensor())?;
    }
    let info = serde_json::to_string(&teacher.info).map_err(|e| Error::Other(format!("the teacher's record: {e}")))?;
    file.metadata("format", TEACHER_FORMAT)
        .metadata("dataset", dataset)
        .metadata("teacher", info)
        .write(path)
}

/// Loads a teacher written by [`save_teacher`] into a fresh network of `arch`; refuses
/// a file of another dataset or architecture.
pub fn load_teacher(arch: &TeacherArch, dataset: &str, path: &Path, device: &Device) -> Result<Teacher> {
    let mut file = TensorFile::open(path, FileKind::Teacher)?;
    let meta = file.metadata();
    if meta.get("format").map(String::as_str) != Some(TEACHER_FORMAT) {
        return Err(file.corrupt(format!(
            "its 'format' metadata is {:?}, a cafe-lab teacher says '{TEACHER_FORMAT}'",
            meta.get("format")
        )));
    }
    let mut info: TeacherInfo = serde_json::from_str(meta.get("teacher").map_or("", String::as_str))
        .map_err(|e| file.corrupt(format!("its 'teacher' metadata does not fit: {e}")))?;
    // A readable teacher that does not fit this run: the setting is what should change.
    let misfit = |message: String| Error::invalid("eval.kd_teacher", path.display(), message);
    let file_dataset = meta.get("dataset").cloned().unwrap_or_default();
    if !file_dataset.eq_ignore_ascii_case(dataset) {
        return Err(misfit(format!(
            "it was trained on {file_dataset}, this run is on {dataset}"
        )));
    }
    if !info.arch.eq_ignore_ascii_case(arch.name) {
        return Err(misfit(format!(
            "it is a {}, the students are {}: give --eval-archs {} or another teacher",
            info.arch, arch.name, info.arch
        )));
    }
    let mut rng = sub_rng(0, &[0x7EAC_4E12]);
    let net = arch
        .arch
        .build(arch.shape, arch.classes, DType::F32, device, &mut rng)?;
    let vars = net.parameters();
    for (i, var) in vars.iter().enumerate() {
        let name = param_name(i);
        let Some(found) = file.info(&name) else {
            return Err(misfit(format!(
                "it has no parameter {i}; the network has {}",
                vars.len()
            )));
        };
        if found.shape != var.dims() {
            return Err(misfit(format!(
                "parameter {i} has shape {:?}, the network's is {:?} (another architecture configuration?)",
                found.shape,
                var.dims()
            )));
        }
        var.set(&file.tensor_f32(&name, device)?)?;
    }
    info.source = path.display().to_string();
    Ok(Teacher { net, info })
}
