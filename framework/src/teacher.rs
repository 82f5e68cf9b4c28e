//! A teacher network: trained once on the real training set, then frozen; its file format
//! (`teacher.safetensors`: the parameters in the network's order as `param.NNNN`, f32, with
//! `format`, `dataset` and the `teacher` record as metadata) and what is known of it.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::output::write_atomic;
use crate::rng::sub_rng;
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

/// Saves the teacher's parameters (in the network's order) with its record as metadata.
pub fn save_teacher(teacher: &Teacher, dataset: &str, path: &Path) -> Result<()> {
    let params: Vec<(String, Vec<usize>, Vec<u8>)> = teacher
        .net
        .parameters()
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let t = v.as_tensor().to_dtype(DType::F32)?;
            let data: Vec<u8> = t
                .flatten_all()?
                .to_vec1::<f32>()?
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect();
            Ok((format!("param.{i:04}"), t.dims().to_vec(), data))
        })
        .collect::<Result<_>>()?;
    let views: Vec<(String, safetensors::tensor::TensorView)> = params
        .iter()
        .map(|(k, shape, data)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), data)
                .map(|v| (k.clone(), v))
                .map_err(|e| Error::Other(format!("building safetensors view {k}: {e}")))
        })
        .collect::<Result<_>>()?;
    let metadata: HashMap<String, String> = HashMap::from([
        ("format".to_string(), TEACHER_FORMAT.to_string()),
        ("dataset".to_string(), dataset.to_string()),
        (
            "teacher".to_string(),
            serde_json::to_string(&teacher.info).map_err(|e| Error::Other(e.to_string()))?,
        ),
    ]);
    let bytes = safetensors::serialize(views, &Some(metadata))
        .map_err(|e| Error::Other(format!("serialising the teacher: {e}")))?;
    write_atomic(path, &bytes)
}

/// Loads a teacher written by [`save_teacher`] into a fresh network of `arch`; refuses
/// a file of another dataset or architecture.
pub fn load_teacher(arch: &TeacherArch, dataset: &str, path: &Path, device: &Device) -> Result<Teacher> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(format!("reading teacher {}", path.display()), e))?;
    let bad = |message: String| Error::invalid("eval.kd_teacher", path.display(), message);
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| bad(format!("not a safetensors file: {e}")))?;
    let (_, meta) =
        safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| bad(format!("not a safetensors file: {e}")))?;
    let meta = meta.metadata().clone().unwrap_or_default();
    if meta.get("format").map(String::as_str) != Some(TEACHER_FORMAT) {
        return Err(bad(
            "not a cafe-lab teacher (written by a run with --kd, as teacher.safetensors)".into(),
        ));
    }
    let mut info: TeacherInfo = serde_json::from_str(meta.get("teacher").map_or("", String::as_str))
        .map_err(|e| bad(format!("its 'teacher' metadata does not fit: {e}")))?;
    let file_dataset = meta.get("dataset").cloned().unwrap_or_default();
    if !file_dataset.eq_ignore_ascii_case(dataset) {
        return Err(bad(format!(
            "it was trained on {file_dataset}, this run is on {dataset}"
        )));
    }
    if !info.arch.eq_ignore_ascii_case(arch.name) {
        return Err(bad(format!(
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
        let view = st
            .tensor(&format!("param.{i:04}"))
            .map_err(|_| bad(format!("it has no parameter {i}; the network has {}", vars.len())))?;
        if view.shape() != var.dims() {
            return Err(bad(format!(
                "parameter {i} has shape {:?}, the network's is {:?} (another architecture configuration?)",
                view.shape(),
                var.dims()
            )));
        }
        let values: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        var.set(&Tensor::from_vec(values, view.shape(), device)?)?;
    }
    info.source = path.display().to_string();
    Ok(Teacher { net, info })
}
