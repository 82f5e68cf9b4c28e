//! The synthetic set: learnable images with fixed labels (class c owns rows c*ipc..(c+1)*ipc),
//! the tensors a method learns beside them ([`Learned`]: a step size, soft labels), its
//! initialisation, and its file format (safetensors: `images` f32 [N,C,H,W] in normalised
//! space, `labels` u32 [N], `mean` and `std` f32 [C], one f32 tensor per learned extra under its
//! own name, and string metadata saying how the set was made and how its run evaluated it: see
//! [`crate::run::set_metadata`]).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};
use rand::seq::index::sample;
use rand_distr::{Distribution, StandardNormal};

use crate::data::{Dataset, ImageSet};
use crate::output::write_atomic;
use crate::traits::matcher::Init;
use crate::{Error, ImageShape, Result, Rng};

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

    /// Serialises to safetensors bytes. Deterministic: same values, same bytes.
    pub fn to_safetensors(&self) -> Result<Vec<u8>> {
        let images = self
            .images
            .as_tensor()
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let labels = self.labels.to_vec1::<u32>()?;
        let n = self.classes * self.ipc;
        let dims = self.shape.batch_dims(n).to_vec();
        let c = self.shape.channels;
        let bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        let tensors: BTreeMap<String, (safetensors::Dtype, Vec<usize>, Vec<u8>)> = BTreeMap::from([
            ("images".to_string(), (safetensors::Dtype::F32, dims, bytes(&images))),
            (
                "labels".to_string(),
                (
                    safetensors::Dtype::U32,
                    vec![n],
                    labels.iter().flat_map(|x| x.to_le_bytes()).collect(),
                ),
            ),
            (
                "mean".to_string(),
                (safetensors::Dtype::F32, vec![c], bytes(&self.mean)),
            ),
            ("std".to_string(), (safetensors::Dtype::F32, vec![c], bytes(&self.std))),
        ]);
        let mut tensors = tensors;
        for l in &self.learned {
            if RESERVED.contains(&l.name.as_str()) || tensors.contains_key(&l.name) {
                return Err(Error::Other(format!(
                    "a learned tensor cannot be named '{}' (taken by the file format or another learned tensor)",
                    l.name
                )));
            }
            let values = l
                .var
                .as_tensor()
                .to_dtype(DType::F32)?
                .flatten_all()?
                .to_vec1::<f32>()?;
            tensors.insert(
                l.name.clone(),
                (safetensors::Dtype::F32, l.var.dims().to_vec(), bytes(&values)),
            );
        }
        let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
            .iter()
            .map(|(k, (dt, shape, data))| {
                safetensors::tensor::TensorView::new(*dt, shape.clone(), data)
                    .map(|v| (k.clone(), v))
                    .map_err(|e| Error::Other(format!("building safetensors view {k}: {e}")))
            })
            .collect::<Result<_>>()?;
        let metadata: HashMap<String, String> = self.metadata.clone().into_iter().collect();
        let bytes = safetensors::serialize(views, &(!metadata.is_empty()).then_some(metadata))
            .map_err(|e| Error::Other(format!("serialising synthetic set: {e}")))?;
        with_sorted_header(bytes)
    }

    /// Writes the set to `path` atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        write_atomic(path, &self.to_safetensors()?)
    }

    /// Reads a set written by [`SyntheticSet::save`].
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let bytes =
            std::fs::read(path).map_err(|e| Error::io(format!("reading synthetic set {}", path.display()), e))?;
        let corrupt = |message: String| Error::SyntheticCorrupt {
            path: path.to_path_buf(),
            message,
        };
        let st = safetensors::SafeTensors::deserialize(&bytes)
            .map_err(|e| corrupt(format!("not a safetensors file: {e}")))?;
        let metadata = read_metadata_bytes(&bytes).map_err(|e| corrupt(format!("not a safetensors file: {e}")))?;
        let get = |name: &str| {
            st.tensor(name)
                .map_err(|_| corrupt(format!("missing tensor '{name}' (expected images, labels, mean, std)")))
        };
        let f32s = |v: &safetensors::tensor::TensorView| -> Result<Vec<f32>> {
            if v.dtype() != safetensors::Dtype::F32 {
                return Err(corrupt(format!("expected f32 data, found {:?}", v.dtype())));
            }
            Ok(v.data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect())
        };
        let images_v = get("images")?;
        let labels_v = get("labels")?;
        let dims = images_v.shape().to_vec();
        if dims.len() != 4 {
            return Err(corrupt(format!("images must be [N,C,H,W], found shape {dims:?}")));
        }
        let n = dims[0];
        let labels: Vec<u32> = match labels_v.dtype() {
            safetensors::Dtype::U32 => labels_v
                .data()
                .chunks_exact(4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            safetensors::Dtype::I64 => labels_v
                .data()
                .chunks_exact(8)
                .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")) as u32)
                .collect(),
            other => return Err(corrupt(format!("labels must be u32 or i64, found {other:?}"))),
        };
        if labels.len() != n {
            return Err(corrupt(format!("{} labels for {n} images", labels.len())));
        }
        let classes = labels.iter().max().map_or(0, |m| *m as usize + 1);
        if classes == 0 || n % classes != 0 {
            return Err(corrupt(format!(
                "{n} images do not split evenly into {classes} classes"
            )));
        }
        let ipc = n / classes;
        let expected = class_major_labels(classes, ipc, &Device::Cpu)?.to_vec1::<u32>()?;
        if labels != expected {
            return Err(corrupt(
                "labels must be class-major: class c owns rows c*ipc..(c+1)*ipc".into(),
            ));
        }
        let shape = ImageShape::new(dims[1], dims[2], dims[3]);
        let images = Tensor::from_vec(f32s(&images_v)?, dims, device)?;
        let mut names: Vec<String> = st
            .names()
            .into_iter()
            .filter(|k| !RESERVED.contains(&k.as_str()))
            .cloned()
            .collect();
        names.sort();
        let mut learned = Vec::with_capacity(names.len());
        for name in names {
            let view = get(&name)?;
            let values = f32s(&view).map_err(|_| corrupt(format!("learned tensor '{name}' must be f32")))?;
            let t = Tensor::from_vec(values, view.shape().to_vec(), device)?;
            check_learned(&name, &t, n, classes).map_err(corrupt)?;
            learned.push(Learned {
                name,
                var: Var::from_tensor(&t)?,
            });
        }
        Ok(Self {
            images: Var::from_tensor(&images)?,
            labels: Tensor::from_vec(labels, n, device)?,
            learned,
            ipc,
            classes,
            shape,
            mean: f32s(&get("mean")?)?,
            std: f32s(&get("std")?)?,
            metadata,
        })
    }

    /// Reads only the metadata of a saved set (the file's header): cheap, so that a command
    /// can check the file and learn the run's settings before it loads a dataset.
    pub fn read_metadata(path: &Path) -> Result<BTreeMap<String, String>> {
        let bytes =
            std::fs::read(path).map_err(|e| Error::io(format!("reading synthetic set {}", path.display()), e))?;
        safetensors::SafeTensors::deserialize(&bytes).map_err(|e| Error::DatasetCorrupt {
            path: path.to_path_buf(),
            message: format!("not a safetensors file: {e}"),
        })?;
        read_metadata_bytes(&bytes).map_err(|e| Error::DatasetCorrupt {
            path: path.to_path_buf(),
            message: format!("not a safetensors file: {e}"),
        })
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

/// The `__metadata__` of safetensors bytes (empty when there is none).
fn read_metadata_bytes(bytes: &[u8]) -> std::result::Result<BTreeMap<String, String>, safetensors::SafeTensorError> {
    let (_, meta) = safetensors::SafeTensors::read_metadata(bytes)?;
    Ok(meta
        .metadata()
        .as_ref()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default())
}

/// The same safetensors file with its JSON header's keys sorted. The safetensors crate keeps
/// metadata in a `HashMap`, whose order changes from process to process; sorted, one seed gives
/// the same bytes every time. The header stays padded with spaces to a multiple of 8 bytes, as
/// the format asks.
fn with_sorted_header(bytes: Vec<u8>) -> Result<Vec<u8>> {
    let broken = || Error::Other("serialising synthetic set: unexpected safetensors header".into());
    let len_bytes: [u8; 8] = bytes.get(..8).and_then(|b| b.try_into().ok()).ok_or_else(broken)?;
    let len = u64::from_le_bytes(len_bytes) as usize;
    let header = bytes.get(8..8 + len).ok_or_else(broken)?;
    let mut parsed: BTreeMap<String, serde_json::Value> = serde_json::from_slice(header).map_err(|_| broken())?;
    if let Some(meta) = parsed.get("__metadata__") {
        let sorted: BTreeMap<String, String> = serde_json::from_value(meta.clone()).map_err(|_| broken())?;
        parsed.insert(
            "__metadata__".into(),
            serde_json::to_value(sorted).map_err(|_| broken())?,
        );
    }
    let mut text = serde_json::to_string(&parsed).map_err(|_| broken())?;
    while text.len() % 8 != 0 {
        text.push(' ');
    }
    let mut out = Vec::with_capacity(8 + text.len() + bytes.len() - 8 - len);
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(&bytes[8 + len..]);
    Ok(out)
}
