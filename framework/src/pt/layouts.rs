//! The `.pt` layouts in which the method repositories hand out their synthetic sets, and what
//! each one leaves unsaid:
//!
//! - **one image tensor** (mtt-distillation `distill.py:238-243`, DATM `distill/DATM.py:397-404`):
//!   `images_<it>.pt` holds `image_syn` `[N, C, H, W]` in the space it was trained in (the
//!   normalised space, or the ZCA-whitened one under `--zca`); `labels_<it>.pt` beside it holds
//!   the hard labels `[N]` (MTT, class-major by `distill.py:110`) or DATM's learned soft-label
//!   logits `[N, classes]` (`DATM.py:324`); DATM also saves the learned step size as
//!   `lr_<it>.pt` (`DATM.py:399`), MTT does not (it only evaluates at it, `distill.py:210`).
//!   `images_zca_<it>.pt` is the set un-whitened (`distill.py:266-271`): raw pixels, since
//!   MTT's ZCA runs on `ToTensor()` images (`utils.py:58-59`).
//! - **a list `[images, labels]`** (NCFM `utils/ddp.py:99`, `data_<it>.pt`): pixels in [0, 1],
//!   normalised only by the training transform (`condenser/Condenser.py:41`,
//!   `data/transform.py:18-19`), possibly packed several per image (`factor`,
//!   `condenser/decode.py`).
//! - **a dict whose `'data'` holds `[images, labels]` pairs**, one per experiment
//!   (DatasetCondensation `main.py:224-225`, `main_DM.py:203-204`, `res_<method>_..._<ipc>ipc.pt`),
//!   images in the normalised space.

use std::path::{Path, PathBuf};

use super::archive::{PtFile, PtTensor};
use super::pickle::{kind, Node};
use crate::{Error, Result};

/// Which layout a file had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// mtt-distillation / DATM: an image tensor, labels (and DATM's lr) in sibling files.
    ImageTensor,
    /// NCFM: `[images, labels]`.
    ImagesLabelsList,
    /// DatasetCondensation: `{'data': [[images, labels], ...], ...}`.
    ExperimentDict,
}

impl Layout {
    pub fn describe(self) -> &'static str {
        match self {
            Layout::ImageTensor => "one image tensor (mtt-distillation / DATM images_*.pt)",
            Layout::ImagesLabelsList => "a list [images, labels] (NCFM data_*.pt)",
            Layout::ExperimentDict => "a dict whose 'data' holds [images, labels] pairs (DatasetCondensation res_*.pt)",
        }
    }

    /// Whether the layout's images are raw pixels in [0, 1] rather than normalised, as the
    /// repository that writes it saves them (see the module header).
    pub fn raw_pixels(self, path: &Path) -> bool {
        match self {
            Layout::ImagesLabelsList => true,
            Layout::ImageTensor => file_name(path).starts_with("images_zca_"),
            Layout::ExperimentDict => false,
        }
    }
}

/// What to read besides the file itself.
#[derive(Debug, Clone, Default)]
pub struct PtSources {
    /// The labels file of an image-tensor layout (default: `labels_<it>.pt` beside
    /// `images_<it>.pt`).
    pub labels: Option<PathBuf>,
    /// The experiment of a DatasetCondensation results file (default 0).
    pub experiment: Option<usize>,
}

/// The tensors of a synthetic set as a `.pt` layout holds them, before any interpretation.
#[derive(Debug, Clone)]
pub struct PtSet {
    pub layout: Layout,
    pub images: PtTensor,
    /// Hard labels `[N]` or soft-label logits `[N, classes]`; None when the layout had none.
    pub labels: Option<PtTensor>,
    /// A learned step size saved beside the images (DATM's `lr_<it>.pt`).
    pub lr: Option<f64>,
    /// Every file read, and what was assumed about the file, for results.json.
    pub files: Vec<PathBuf>,
    pub notes: Vec<String>,
}

/// The layouts cafe-lab reads, for the error about a file that has none of them.
pub const EXPECTED: &str = "one of: a 4-D image tensor [N, C, H, W] (mtt-distillation / DATM images_*.pt, \
     with labels_*.pt and DATM's lr_*.pt beside it), a list [images, labels] (NCFM's data_*.pt), or a dict \
     whose 'data' holds [images, labels] pairs (DatasetCondensation's res_*.pt)";

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `labels_<it>.pt` and `lr_<it>.pt` beside `images_<it>.pt` (also for `images_zca_<it>.pt`).
fn siblings(path: &Path) -> Option<(PathBuf, PathBuf)> {
    let name = file_name(path);
    let rest = name
        .strip_prefix("images_zca_")
        .or_else(|| name.strip_prefix("images_"))?;
    let dir = path.parent().unwrap_or(Path::new(""));
    Some((dir.join(format!("labels_{rest}")), dir.join(format!("lr_{rest}"))))
}

/// Reads the synthetic set in the `.pt` file at `path` (and the files its layout keeps
/// beside it).
pub fn read_pt_set(path: &Path, sources: &PtSources) -> Result<PtSet> {
    let file = PtFile::open(path)?;
    let fail = |message: String| Error::TorchFile {
        path: path.to_path_buf(),
        message,
    };
    let root = file.pickle.root;
    if let Some(images) = file.tensor(root)? {
        return image_tensor_layout(path, images, sources);
    }
    let pair = |items: &[usize]| -> Result<Option<(PtTensor, PtTensor)>> {
        match items {
            [a, b] => match (file.tensor(*a)?, file.tensor(*b)?) {
                (Some(a), Some(b)) => Ok(Some((a, b))),
                _ => Ok(None),
            },
            _ => Ok(None),
        }
    };
    match file.node(root) {
        Node::List(items) | Node::Tuple(items) => {
            if let Some((images, labels)) = pair(items)? {
                return Ok(PtSet {
                    layout: Layout::ImagesLabelsList,
                    images: check_images(path, images)?,
                    labels: Some(labels),
                    lr: None,
                    files: vec![path.to_path_buf()],
                    notes: Vec::new(),
                });
            }
            Err(fail(format!(
                "it holds a list of {} items that is not [images, labels]; expected {EXPECTED}",
                items.len()
            )))
        }
        Node::Dict(entries) => {
            let key = |k: usize| match file.node(k) {
                Node::Str(s) => s.clone(),
                other => format!("<{}>", kind(other)),
            };
            let Some(&(_, data)) = entries.iter().find(|(k, _)| key(*k) == "data") else {
                let keys: Vec<String> = entries.iter().map(|(k, _)| key(*k)).collect();
                return Err(fail(format!(
                    "it holds a dict with keys [{}] and no 'data'; expected {EXPECTED}",
                    keys.join(", ")
                )));
            };
            let (Node::List(runs) | Node::Tuple(runs)) = file.node(data) else {
                return Err(fail(format!(
                    "its 'data' is {}, not a list of [images, labels] pairs; expected {EXPECTED}",
                    kind(file.node(data))
                )));
            };
            let k = sources.experiment.unwrap_or(0);
            let Some(&run) = runs.get(k) else {
                return Err(fail(format!(
                    "its 'data' holds {} experiments; experiment {k} does not exist (experiments count from 0)",
                    runs.len()
                )));
            };
            let (Node::List(items) | Node::Tuple(items)) = file.node(run) else {
                return Err(fail(format!(
                    "'data'[{k}] is {}, not [images, labels]",
                    kind(file.node(run))
                )));
            };
            let Some((images, labels)) = pair(items)? else {
                return Err(fail(format!("'data'[{k}] is not a pair of tensors [images, labels]")));
            };
            let mut notes = Vec::new();
            if runs.len() > 1 && sources.experiment.is_none() {
                notes.push(format!(
                    "{} holds the sets of {} experiments (DatasetCondensation main.py:224 appends one per \
                     experiment); experiment 0 was evaluated (--experiment K, or experiment=K from Python)",
                    path.display(),
                    runs.len()
                ));
            }
            Ok(PtSet {
                layout: Layout::ExperimentDict,
                images: check_images(path, images)?,
                labels: Some(labels),
                lr: None,
                files: vec![path.to_path_buf()],
                notes,
            })
        }
        other => Err(fail(format!("it holds {}; expected {EXPECTED}", kind(other)))),
    }
}

fn check_images(path: &Path, images: PtTensor) -> Result<PtTensor> {
    if images.shape.len() == 4 && images.is_float() && images.numel() > 0 {
        return Ok(images);
    }
    Err(Error::TorchFile {
        path: path.to_path_buf(),
        message: format!(
            "its images are {}, expected a non-empty floating tensor [N, C, H, W]{}",
            images.describe(),
            if images.shape.len() <= 2 {
                " (is this a labels or lr file? pass the images file instead)"
            } else {
                ""
            }
        ),
    })
}

fn image_tensor_layout(path: &Path, images: PtTensor, sources: &PtSources) -> Result<PtSet> {
    let images = check_images(path, images)?;
    let mut files = vec![path.to_path_buf()];
    let mut notes = Vec::new();
    let (labels_beside, lr_beside) = siblings(path).unzip();
    let labels_path = sources.labels.clone().or(labels_beside.filter(|p| p.is_file()));
    let labels = match &labels_path {
        Some(p) => {
            let file = PtFile::open(p)?;
            let labels = file.tensor(file.pickle.root)?.ok_or_else(|| Error::TorchFile {
                path: p.clone(),
                message: format!(
                    "it holds {}, expected one labels tensor ([N] hard labels or [N, classes] soft labels, \
                     as mtt-distillation's and DATM's labels_*.pt)",
                    kind(file.node(file.pickle.root))
                ),
            })?;
            files.push(p.clone());
            Some(labels)
        }
        None => {
            notes.push(format!(
                "no labels file beside {} (labels_<it>.pt): the images were taken to be class-major, ipc \
                 images per class in class order, as mtt-distillation lays them out (distill.py:110)",
                path.display()
            ));
            None
        }
    };
    let lr = match lr_beside.filter(|p| p.is_file()) {
        Some(p) => {
            let file = PtFile::open(&p)?;
            let value = file
                .tensor(file.pickle.root)?
                .filter(|t| t.numel() == 1 && t.is_float())
                .and_then(|t| match t.values {
                    super::archive::Values::Float(v) => v.first().map(|x| f64::from(*x)),
                    super::archive::Values::Int(_) => None,
                })
                .ok_or_else(|| Error::TorchFile {
                    path: p.clone(),
                    message: "expected one floating number, the learned step size (DATM's lr_*.pt)".into(),
                })?;
            notes.push(format!(
                "the learned step size {value} was read from {} (DATM saves syn_lr there, distill/DATM.py:404); \
                 evaluation trains at it, as DATM and MTT evaluate",
                p.display()
            ));
            files.push(p);
            Some(value)
        }
        None => None,
    };
    Ok(PtSet {
        layout: Layout::ImageTensor,
        images,
        labels,
        lr,
        files,
        notes,
    })
}
