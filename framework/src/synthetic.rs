//! The synthetic set: learnable images with fixed labels (class c owns rows c*ipc..(c+1)*ipc),
//! the tensors a method learns beside them ([`Learned`]: a step size, soft labels), its
//! initialisation, and its file format (safetensors: `images` f32 [N,C,H,W] in normalised
//! space, `labels` u32 [N], `mean` and `std` f32 [C], one f32 tensor per learned extra under its
//! own name, and string metadata saying how the set was made and how its run evaluated it: see
//! [`crate::run::set_metadata`]).

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};
use rand::seq::index::sample;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use crate::data::{Dataset, ImageSet};
use crate::output::write_atomic;
use crate::tensor_file::{FileKind, TensorFile, TensorWriter};
use crate::{Error, ImageShape, Result, Rng};

/// How the synthetic set is initialised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Init {
    /// Gaussian noise in normalised space.
    Noise,
    /// Randomly chosen real images of each class.
    Real,
}

impl std::str::FromStr for Init {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "noise" => Ok(Init::Noise),
            "real" => Ok(Init::Real),
            other => Err(crate::Error::invalid("init", other, "valid values: real, noise")),
        }
    }
}

/// The name of a learned step size (a scalar): evaluation trains with it as its learning rate,
/// as MTT evaluates with `args.lr_net = syn_lr.item()` (mtt-distillation `distill.py:210`).
pub const LEARNED_LR: &str = "lr";
/// The name of learned soft labels, logits `[N, classes]`: evaluation trains against
/// `softmax(label_logits)` with the soft cross-entropy (DATM `distill/DATM.py:255-262, 370`).
pub const LEARNED_LABELS: &str = "label_logits";
/// Tensor names of the file format that a learned extra cannot take.
const RESERVED: [&str; 4] = ["images", "labels", "mean", "std"];

/// A tensor a method learns beside the pixels, with its name in the file. [`LEARNED_LR`] and
/// [`LEARNED_LABELS`] change how the set is evaluated; any other name is kept and saved.
#[derive(Debug, Clone)]
pub struct Learned {
    pub name: String,
    pub var: Var,
}

/// The learnable synthetic set.
pub struct SyntheticSet {
    pub images: Var,
    pub labels: Tensor,
    /// Learned extras, in the order the matcher declared them.
    pub learned: Vec<Learned>,
    pub ipc: usize,
    pub classes: usize,
    pub shape: ImageShape,
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    /// The file's `__metadata__` (string to string; empty for a set not yet saved by a run, or
    /// a file from before metadata or from another tool).
    pub metadata: BTreeMap<String, String>,
}

/// Checks that `ipc` images per class can be drawn from every class of `set`.
pub fn check_ipc(set: &ImageSet, classes: usize, ipc: usize) -> Result<Vec<Vec<usize>>> {
    if ipc == 0 {
        return Err(Error::invalid("ipc", 0, "images per class must be at least 1"));
    }
    let by_class = set.class_indices(classes);
    let smallest = by_class.iter().map(Vec::len).min().unwrap_or(0);
    if ipc > smallest {
        return Err(Error::invalid(
            "ipc",
            ipc,
            format!("the smallest class of the training set has {smallest} images; choose ipc <= {smallest}"),
        ));
    }
    Ok(by_class)
}

/// `ipc` distinct random training images per class, in class order (the `random` baseline and
/// `init=real`).
pub fn random_real_subset(set: &ImageSet, classes: usize, ipc: usize, rng: &mut Rng) -> Result<Vec<usize>> {
    let by_class = check_ipc(set, classes, ipc)?;
    let mut picked = Vec::with_capacity(classes * ipc);
    for members in &by_class {
        picked.extend(sample(rng, members.len(), ipc).into_iter().map(|i| members[i]));
    }
    Ok(picked)
}

/// Class labels `[classes * ipc]`, class-major.
pub fn class_major_labels(classes: usize, ipc: usize, device: &Device) -> Result<Tensor> {
    let labels: Vec<u32> = (0..classes as u32).flat_map(|c| std::iter::repeat_n(c, ipc)).collect();
    Ok(Tensor::from_vec(labels, classes * ipc, device)?)
}

impl SyntheticSet {
    /// A new set initialised from noise or from random real images.
    pub fn initialise(dataset: &Dataset, ipc: usize, init: Init, device: &Device, rng: &mut Rng) -> Result<Self> {
        let classes = dataset.classes;
        let shape = dataset.train.shape;
        // Check ipc for both inits: a set larger than a class is refused either way.
        check_ipc(&dataset.train, classes, ipc)?;
        let n = classes * ipc;
        let images = match init {
            Init::Real => {
                let idx = random_real_subset(&dataset.train, classes, ipc, rng)?;
                dataset.train.to_tensor(&idx, device)?.0
            }
            Init::Noise => {
                let data: Vec<f32> = (0..n * shape.numel()).map(|_| StandardNormal.sample(rng)).collect();
                Tensor::from_vec(data, shape.batch_dims(n).to_vec(), device)?
            }
        };
        Ok(Self {
            images: Var::from_tensor(&images.to_dtype(DType::F32)?)?,
            labels: class_major_labels(classes, ipc, device)?,
            learned: Vec::new(),
            ipc,
            classes,
            shape,
            mean: dataset.mean.clone(),
            std: dataset.std.clone(),
            metadata: BTreeMap::new(),
        })
    }

    /// Serialises to safetensors bytes ([`crate::tensor_file`]'s sorted layout): the same set
    /// gives the same bytes in any process.
    pub fn to_safetensors(&self) -> Result<Vec<u8>> {
        let mut file = TensorWriter::new("synthetic set");
        let n = self.classes * self.ipc;
        let images = self
            .images
            .as_tensor()
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        file.f32_values("images", &self.shape.batch_dims(n), &images)?
            .u32("labels", &self.labels.reshape(n)?)?
            .f32_values("mean", &[self.shape.channels], &self.mean)?
            .f32_values("std", &[self.shape.channels], &self.std)?;
        for l in &self.learned {
            if RESERVED.contains(&l.name.as_str()) {
                return Err(Error::Other(format!(
                    "a learned tensor cannot be named '{}' (taken by the file format)",
                    l.name
                )));
            }
            file.f32(l.name.clone(), l.var.as_tensor())?;
        }
        for (key, value) in &self.metadata {
            file.metadata(key.clone(), value.clone());
        }
        file.to_bytes()
    }

    /// Writes the set to `path` atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        write_atomic(path, &self.to_safetensors()?)
    }

    /// Reads a set written by [`SyntheticSet::save`] (or by Python with the same tensor names;
    /// labels may be i64 there).
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let mut file = TensorFile::open(path, FileKind::SyntheticSet)?;
        if let Some(name) = RESERVED.iter().find(|name| file.info(name).is_none()) {
            return Err(file.corrupt(format!("missing tensor '{name}' (expected {})", RESERVED.join(", "))));
        }
        let dims = file.info("images").map(|i| i.shape.clone()).unwrap_or_default();
        if dims.len() != 4 {
            return Err(file.corrupt(format!("images must be [N,C,H,W], found shape {dims:?}")));
        }
        let n = dims[0];
        let (_, labels) = file.read_labels("labels")?;
        if labels.len() != n {
            return Err(file.corrupt(format!("{} labels for {n} images", labels.len())));
        }
        let classes = labels.iter().max().map_or(0, |m| *m as usize + 1);
        if classes == 0 || n % classes != 0 {
            return Err(file.corrupt(format!("{n} images do not split evenly into {classes} classes")));
        }
        let ipc = n / classes;
        let expected = class_major_labels(classes, ipc, &Device::Cpu)?.to_vec1::<u32>()?;
        if labels != expected {
            return Err(file.corrupt("labels must be class-major: class c owns rows c*ipc..(c+1)*ipc"));
        }
        let shape = ImageShape::new(dims[1], dims[2], dims[3]);
        let images = file.tensor_f32("images", device)?;
        let names: Vec<String> = file
            .names()
            .filter(|k| !RESERVED.contains(k))
            .map(String::from)
            .collect();
        let mut learned = Vec::with_capacity(names.len());
        for name in names {
            let t = file.tensor_f32(&name, device)?;
            check_learned(&name, &t, n, classes).map_err(|e| file.corrupt(e))?;
            learned.push(Learned {
                name,
                var: Var::from_tensor(&t)?,
            });
        }
        let (_, mean) = file.read_f32("mean")?;
        let (_, std) = file.read_f32("std")?;
        if mean.len() != shape.channels || std.len() != shape.channels {
            return Err(file.corrupt(format!(
                "mean and std must hold one value per channel ({}), found {} and {}",
                shape.channels,
                mean.len(),
                std.len()
            )));
        }
        Ok(Self {
            images: Var::from_tensor(&images)?,
            labels: Tensor::from_vec(labels, n, device)?,
            learned,
            ipc,
            classes,
            shape,
            mean,
            std,
            metadata: file.take_metadata(),
        })
    }

    /// Reads only the metadata of a saved set (the file's header, checked against the file's
    /// size; no tensor data is read): cheap, so that a command can check the file and learn
    /// the run's settings before it loads a dataset.
    pub fn read_metadata(path: &Path) -> Result<BTreeMap<String, String>> {
        Ok(TensorFile::open(path, FileKind::SyntheticSet)?.take_metadata())
    }

    /// The images without graph, `[N, C, H, W]`.
    pub fn images_detached(&self) -> Tensor {
        self.images.as_tensor().detach()
    }

    /// The learned extra called `name`, if the set has one.
    pub fn learned(&self, name: &str) -> Option<&Var> {
        self.learned.iter().find(|l| l.name == name).map(|l| &l.var)
    }

    /// The learned step size ([`LEARNED_LR`]), if the set has one.
    pub fn learned_lr(&self) -> Result<Option<f64>> {
        self.learned(LEARNED_LR)
            .map(|v| Ok(v.as_tensor().flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?[0]))
            .transpose()
    }

    /// What networks train against: the soft-label logits ([`LEARNED_LABELS`], `[N, classes]`)
    /// when the set learned them, else the hard labels `[N]`. No graph.
    pub fn training_targets(&self) -> Tensor {
        match self.learned(LEARNED_LABELS) {
            Some(v) => v.as_tensor().detach(),
            None => self.labels.clone(),
        }
    }

    /// Adds a learned extra, checking its name and, for the names evaluation reads, its shape.
    pub fn add_learned(&mut self, name: &str, initial: &Tensor) -> Result<()> {
        if RESERVED.contains(&name) || self.learned(name).is_some() {
            return Err(Error::Other(format!(
                "a learned tensor cannot be named '{name}': taken by the file format ({}) or by another \
                 learned tensor",
                RESERVED.join(", ")
            )));
        }
        check_learned(name, initial, self.classes * self.ipc, self.classes).map_err(Error::Other)?;
        let t = initial.to_dtype(DType::F32)?.to_device(self.images.device())?;
        self.learned.push(Learned {
            name: name.to_string(),
            var: Var::from_tensor(&t)?,
        });
        Ok(())
    }
}

/// The shapes evaluation relies on: the step size holds one positive finite number, the soft
/// labels are `[n, classes]`.
fn check_learned(name: &str, t: &Tensor, n: usize, classes: usize) -> std::result::Result<(), String> {
    match name {
        LEARNED_LR => {
            let v = t
                .flatten_all()
                .and_then(|t| t.to_dtype(DType::F64))
                .and_then(|t| t.to_vec1::<f64>())
                .map_err(|e| e.to_string())?;
            if v.len() != 1 || !(v[0].is_finite() && v[0] > 0.0) {
                return Err(format!(
                    "learned step size '{LEARNED_LR}' must be one positive finite number, found {v:?}"
                ));
            }
        }
        LEARNED_LABELS if t.dims() != [n, classes] => {
            return Err(format!(
                "soft labels '{LEARNED_LABELS}' must be [{n}, {classes}] (images x classes), found {:?}",
                t.dims()
            ))
        }
        _ => {}
    }
    Ok(())
}
