//! Synthetic sets made elsewhere: another tool's `.pt` file, or images and labels handed over
//! in memory (from Python), turned into a [`SyntheticSet`] of a loaded dataset. What the
//! arrays cannot say comes from [`ImportOptions`] (or the layout's convention, see
//! [`crate::pt::layouts`]), and every assumption becomes a note for results.json.

use std::collections::BTreeMap;

use candle_core::{Device, Tensor, Var};

use crate::data::{unpack, Dataset};
use crate::metrics::Storage;
use crate::pt::{Layout, PtSet, Values};
use crate::synthetic::{class_major_labels, Learned, SyntheticSet, LEARNED_LABELS, LEARNED_LR};
use crate::{Error, ImageShape, Result};

/// How to read a set whose file cannot say it.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// The images are raw pixels in [0, 1] (true) or already in the dataset's normalised (or
    /// ZCA-whitened) space (false); None: the layout's convention, normalised for arrays.
    pub raw_pixels: Option<bool>,
    /// Unpack `factor x factor` images from each stored one (NCFM's multi-formation); None or 1:
    /// none.
    pub factor: Option<usize>,
    /// The step size the evaluation networks train at, when the files hold none (MTT).
    pub lr: Option<f64>,
    /// Train on hard labels even when soft labels are given (their argmax).
    pub hard_labels: bool,
}

/// Labels as handed over.
#[derive(Debug, Clone, PartialEq)]
pub enum ForeignLabels {
    /// None given: class-major order is assumed.
    ClassMajor,
    /// One class index per image.
    Hard(Vec<i64>),
    /// Soft labels `[n, classes]`: logits (DATM), or probabilities (rows of non-negative values
    /// summing to 1, turned into logits by their log).
    Soft { values: Vec<f32>, classes: usize },
}

/// A set made elsewhere, as arrays.
#[derive(Debug, Clone)]
pub struct ForeignSet {
    /// NCHW values, `dims[0]` images of `dims[1..]`.
    pub images: Vec<f32>,
    pub dims: [usize; 4],
    pub labels: ForeignLabels,
    /// A step size the files hold (DATM's `lr_*.pt`).
    pub lr: Option<f64>,
    /// Where it came from (a file, "arrays"), for messages and metadata.
    pub source: String,
    /// The layout it came in, if a file; decides the default pixel space.
    pub layout: Option<Layout>,
    /// The raw-pixel default of its layout.
    pub layout_raw: bool,
    /// Bytes the set takes as it was handed over.
    pub storage: Storage,
    pub notes: Vec<String>,
}

impl ForeignSet {
    /// The set read from a `.pt` file.
    pub fn from_pt(set: PtSet, path: &std::path::Path) -> Result<Self> {
        let fail = |message: String| Error::TorchFile {
            path: path.to_path_buf(),
            message,
        };
        let dims: [usize; 4] = set
            .images
            .shape
            .clone()
            .try_into()
            .map_err(|_| fail("images are not 4-D".into()))?;
        let width = |dtype: &str| match dtype {
            "float64" | "int64" => 8,
            "float16" | "bfloat16" | "int16" => 2,
            "int8" | "uint8" | "bool" => 1,
            _ => 4,
        };
        let mut storage = Storage {
            images_bytes: (set.images.numel() * width(set.images.dtype)) as u64,
            ..Storage::default()
        };
        let Values::Float(images) = set.images.values else {
            return Err(fail("images are not floating-point".into()));
        };
        let labels = match set.labels {
            None => ForeignLabels::ClassMajor,
            Some(t) => {
                storage.labels_bytes = (t.numel() * width(t.dtype)) as u64;
                match (t.shape.as_slice(), t.values) {
                    ([_], Values::Int(v)) => ForeignLabels::Hard(v),
                    ([_], Values::Float(v)) if v.iter().all(|x| x.fract() == 0.0) => {
                        ForeignLabels::Hard(v.iter().map(|&x| x as i64).collect())
                    }
                    ([_, k], Values::Float(v)) => ForeignLabels::Soft { values: v, classes: *k },
                    (shape, _) => {
                        return Err(fail(format!(
                            "its labels are {}{shape:?}; expected [N] class indices or [N, classes] soft labels",
                            t.dtype
                        )))
                    }
                }
            }
        };
        if set.lr.is_some() {
            storage.extras_bytes.insert(LEARNED_LR.into(), 4);
        }
        storage.total_bytes = storage.images_bytes + storage.labels_bytes + storage.extras_bytes.values().sum::<u64>();
        let mut notes = set.notes;
        notes.insert(
            0,
            format!(
                "{} was read as {} ({})",
                path.display(),
                set.layout.describe(),
                set.files
                    .iter()
                    .map(|f| f.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
        Ok(Self {
            images,
            dims,
            labels,
            lr: set.lr,
            source: path.display().to_string(),
            layout: Some(set.layout),
            layout_raw: set.layout.raw_pixels(path),
            storage,
            notes,
        })
    }
}

/// Turns `set` into a synthetic set of `ds`: unpacked, moved into the dataset's space, rows
/// put class-major, soft labels and step size attached. Returns it with the notes that say
/// what was assumed, and the images per class as stored (the random baseline's budget).
pub fn import_set(
    set: ForeignSet,
    ds: &Dataset,
    options: &ImportOptions,
    device: &Device,
) -> Result<(SyntheticSet, Vec<String>, usize)> {
    let mut notes = set.notes.clone();
    let [n, c, h, w] = set.dims;
    let shape = ImageShape::new(c, h, w);
    let wrong = |message: String| Error::invalid("synthetic", &set.source, message);
    if n == 0 || set.images.len() != n * shape.numel() {
        return Err(wrong(format!(
            "{} values do not make {n} images of {c}x{h}x{w}",
            set.images.len()
        )));
    }
    if shape != ds.shape() {
        return Err(wrong(format!(
            "its images are {c}x{h}x{w} but dataset {} has {}x{}x{} images: choose the dataset the set was \
             condensed on (images are NCHW)",
            ds.name,
            ds.shape().channels,
            ds.shape().height,
            ds.shape().width
        )));
    }
    if let Some(bad) = set.images.iter().find(|v| !v.is_finite()) {
        return Err(wrong(format!("its images hold a non-finite value ({bad})")));
    }
    let classes = ds.classes;
    // Soft labels first become logits, or hard labels when asked.
    let (mut hard, mut soft): (Option<Vec<i64>>, Option<Vec<f32>>) = match set.labels.clone() {
        ForeignLabels::ClassMajor => (None, None),
        ForeignLabels::Hard(v) => (Some(v), None),
        ForeignLabels::Soft { values, classes: k } => {
            if k != classes || values.len() != n * k {
                return Err(wrong(format!(
                    "its soft labels are [{}, {k}] but the set has {n} images and dataset {} has {classes} classes",
                    values.len() / k.max(1),
                    ds.name
                )));
            }
            if options.hard_labels {
                notes.push("soft labels were replaced by their argmax (hard labels asked for)".into());
                let argmax = values
                    .chunks_exact(k)
                    .map(|r| r.iter().enumerate().fold(0, |b, (i, v)| if *v > r[b] { i } else { b }) as i64)
                    .collect();
                (Some(argmax), None)
            } else {
                (None, Some(logits(values, k, &mut notes)))
            }
        }
    };
    // Unpacking (in the stored pixel space, as NCFM decodes before its transform).
    let factor = options.factor.unwrap_or(1);
    let raw = options.raw_pixels.unwrap_or(set.layout_raw);
    let (mut images, from) = unpack::unpack(&set.images, shape, factor)?;
    if factor > 1 {
        notes.push(format!(
            "each stored image was unpacked into {factor}x{factor} images (NCFM's multi-formation, \
             condenser/decode.py decode_zoom); the random baseline keeps the stored images per class"
        ));
        hard = hard.map(|v| from.iter().map(|&k| v[k]).collect());
        soft = soft.map(|v| {
            from.iter()
                .flat_map(|&k| v[k * classes..(k + 1) * classes].to_vec())
                .collect()
        });
    }
    let m = from.len();
    if raw {
        let plane = h * w;
        for (i, v) in images.iter_mut().enumerate() {
            let ch = (i / plane) % c;
            *v = (*v - ds.mean[ch]) / ds.std[ch];
        }
        if let Some(zca) = &ds.zca {
            zca.whiten(&mut images);
        }
        notes.push(format!(
            "the images were taken as raw pixels in [0, 1] and {} like dataset {}",
            if ds.zca.is_some() { "ZCA-whitened" } else { "normalised" },
            ds.name
        ));
    } else {
        notes.push(format!(
            "the images were taken to be in the {} space of dataset {} already (raw pixels in [0, 1] \
             would need --pixels raw, or raw_pixels=True from Python)",
            if ds.zca.is_some() { "ZCA-whitened" } else { "normalised" },
            ds.name
        ));
    }
    // Rows class-major: by hard label (stable), else as given.
    let order: Vec<usize> = match &hard {
        Some(labels) => {
            if labels.len() != m {
                return Err(wrong(format!("{} labels for {m} images", labels.len())));
            }
            if let Some(bad) = labels.iter().find(|&&l| l < 0 || l as usize >= classes) {
                return Err(wrong(format!(
                    "label {bad} is outside the {classes} classes of dataset {}",
                    ds.name
                )));
            }
            let mut order: Vec<usize> = (0..m).collect();
            order.sort_by_key(|&i| labels[i]);
            order
        }
        None => (0..m).collect(),
    };
    let per_class = match &hard {
        Some(labels) => {
            let mut counts = vec![0usize; classes];
            labels.iter().for_each(|&l| counts[l as usize] += 1);
            if counts.iter().any(|&k| k != counts[0]) {
                return Err(wrong(format!(
                    "classes hold different numbers of images ({counts:?}); a synthetic set holds the same \
                     number per class"
                )));
            }
            if order.iter().enumerate().any(|(i, &j)| i != j) {
                notes.push("the rows were put in class order (class c owns rows c*ipc..(c+1)*ipc)".into());
            }
            counts[0]
        }
        None => {
            if m % classes != 0 {
                return Err(wrong(format!(
                    "{m} images without labels cannot be split into the {classes} classes of dataset {}",
                    ds.name
                )));
            }
            notes.push(format!(
                "the {m} images were taken to be class-major ({} per class, class order){}",
                m / classes,
                if soft.is_some() {
                    ", the order DATM's soft labels keep (distill/DATM.py:133, 324)"
                } else {
                    ""
                }
            ));
            m / classes
        }
    };
    let per = shape.numel();
    let images: Vec<f32> = order
        .iter()
        .flat_map(|&i| images[i * per..(i + 1) * per].to_vec())
        .collect();
    let mut learned = Vec::new();
    if let Some(soft) = soft {
        let rows: Vec<f32> = order
            .iter()
            .flat_map(|&i| soft[i * classes..(i + 1) * classes].to_vec())
            .collect();
        let t = Tensor::from_vec(rows, (m, classes), device)?;
        learned.push(Learned {
            name: LEARNED_LABELS.into(),
            var: Var::from_tensor(&t)?,
        });
    }
    match (set.lr, options.lr) {
        (_, Some(lr)) | (Some(lr), None) => {
            if !(lr.is_finite() && lr > 0.0) {
                return Err(Error::invalid(
                    "lr",
                    lr,
                    "a learned step size must be positive and finite",
                ));
            }
            let t = Tensor::new(&[lr as f32], device)?;
            learned.push(Learned {
                name: LEARNED_LR.into(),
                var: Var::from_tensor(&t)?,
            });
        }
        (None, None) if set.layout == Some(Layout::ImageTensor) => notes.push(
            "no learned step size: the networks train at eval.lr; MTT evaluates at the step size it learned \
             (distill.py:210) but does not save it: pass it (--learned-lr, or lr= from Python)"
                .into(),
        ),
        (None, None) => {}
    }
    let ipc = m / classes;
    let stored_ipc = per_class / (factor * factor).max(1);
    let metadata = BTreeMap::from([
        ("format".to_string(), "imported synthetic set".to_string()),
        ("source".to_string(), set.source.clone()),
        ("dataset".to_string(), ds.name.clone()),
        (
            "preprocess".to_string(),
            ds.zca
                .as_ref()
                .map_or("normalise".into(), |z| format!("zca(eps={})", z.eps)),
        ),
        ("ipc".to_string(), ipc.to_string()),
        ("import_notes".to_string(), notes.join("\n")),
    ]);
    let syn = SyntheticSet {
        images: Var::from_tensor(&Tensor::from_vec(images, shape.batch_dims(m).to_vec(), device)?)?,
        labels: class_major_labels(classes, ipc, device)?,
        learned,
        ipc,
        classes,
        shape,
        mean: ds.mean.clone(),
        std: ds.std.clone(),
        metadata,
    };
    Ok((syn, notes, stored_ipc.max(1)))
}

/// Soft labels as logits: probabilities (every row non-negative, summing to 1) become their
/// log, so that the softmax the trainer takes gives them back; logits stay.
fn logits(values: Vec<f32>, k: usize, notes: &mut Vec<String>) -> Vec<f32> {
    let probabilities = values
        .chunks_exact(k)
        .all(|r| r.iter().all(|&v| v >= 0.0) && (r.iter().sum::<f32>() - 1.0).abs() < 1e-3);
    if probabilities {
        notes.push("the soft labels are probabilities (rows sum to 1): the networks train against them".into());
        values.iter().map(|&p| p.max(1e-12).ln()).collect()
    } else {
        notes.push(
            "the soft labels were taken as logits: the networks train against their softmax, as DATM does \
             (distill/DATM.py:255-262)"
                .into(),
        );
        values
    }
}
