//! The tensor-file targets: the module itself and each format read through it.

use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};

use super::scratch_file;
use crate::checkpoint::Checkpoint;
use crate::metrics::storage_of_safetensors;
use crate::nn::ParamSource;
use crate::run::evaluation_base;
use crate::synthetic::SyntheticSet;
use crate::teacher::{load_teacher, TeacherArch};
use crate::tensor_file::{Dtype, FileKind, TensorFile};
use crate::trajectory::{ExpertRecord, ExpertTrajectory};
use crate::{Architecture, Error, ImageShape, Mode, Network, NetworkOutput, Result, Rng};

/// An architecture whose networks only hold zero parameters of the given shapes and have no
/// forward pass: what a teacher file is loaded into without an architecture plugin.
pub struct ParamHolder(pub Vec<Vec<usize>>);

struct Held(Vec<Var>);

impl Network for Held {
    fn forward_from(&self, _: &mut ParamSource, _: &Tensor, _: Mode) -> Result<NetworkOutput> {
        Err(Error::Other("a parameter holder has no forward pass".into()))
    }

    fn parameters(&self) -> Vec<Var> {
        self.0.clone()
    }
}

impl Architecture for ParamHolder {
    fn build(&self, _: ImageShape, _: usize, dtype: DType, device: &Device, _: &mut Rng) -> Result<Box<dyn Network>> {
        let vars = self
            .0
            .iter()
            .map(|shape| Ok(Var::zeros(shape.as_slice(), dtype, device)?))
            .collect::<Result<_>>()?;
        Ok(Box::new(Held(vars)))
    }
}

/// The first error of several reads (the caller runs each, whatever the others gave: more
/// code reached per input).
fn first_error(results: impl IntoIterator<Item = Result<()>>) -> Result<()> {
    results.into_iter().try_for_each(|r| r)
}

pub(super) fn tensor_file(input: &[u8], scratch: &Path) -> Result<()> {
    let path = scratch_file(scratch, "any.safetensors", input)?;
    let storage = storage_of_safetensors(&path).map(drop);
    let mut file = TensorFile::open(&path, FileKind::SyntheticSet)?;
    let entries: Vec<(String, Dtype)> = file
        .header()
        .tensors
        .iter()
        .map(|(name, info)| (name.clone(), info.dtype))
        .collect();
    for (name, dtype) in entries {
        match dtype {
            Dtype::F32 => drop(file.tensor_f32(&name, &Device::Cpu)?),
            Dtype::U32 | Dtype::I64 => drop(file.read_labels(&name)?),
            _ => {}
        }
    }
    storage
}

pub(super) fn checkpoint(input: &[u8], scratch: &Path) -> Result<()> {
    let path = scratch_file(scratch, "checkpoint.safetensors", input)?;
    Checkpoint::load(&path, &Device::Cpu).map(drop)
}

pub(super) fn synthetic_set(input: &[u8], scratch: &Path) -> Result<()> {
    let path = scratch_file(scratch, "synthetic.safetensors", input)?;
    first_error([
        SyntheticSet::read_metadata(&path).map(drop),
        SyntheticSet::load(&path, &Device::Cpu).map(drop),
        evaluation_base(&path)
            .and_then(|(builder, _)| builder.build())
            .map(drop),
    ])
}

pub(super) fn expert(input: &[u8], scratch: &Path) -> Result<()> {
    let path = scratch_file(scratch, "expert.safetensors", input)?;
    first_error([
        ExpertRecord::read(&path).map(drop),
        ExpertTrajectory::load(&path, &Device::Cpu).map(drop),
        ExpertTrajectory::load_through(&path, &Device::Cpu, 1).map(drop),
    ])
}

pub(super) fn teacher(input: &[u8], scratch: &Path) -> Result<()> {
    let path = scratch_file(scratch, "teacher.safetensors", input)?;
    let arch = ParamHolder(vec![vec![2, 3], vec![2], vec![]]);
    let target = TeacherArch {
        arch: &arch,
        name: "params",
        shape: ImageShape::new(1, 2, 3),
        classes: 2,
    };
    load_teacher(&target, "shapes", &path, &Device::Cpu).map(drop)
}
