//! The entry point: `load(name, options)` picks the dataset, finds its files (downloading them
//! when asked) and returns it normalised.

use std::path::{Path, PathBuf};

use super::locate::{missing_error, Found};
use super::normalise::Normalisation;
use super::zca::{check_eps, Zca};
use super::{cifar, download, mnist, shapes, svhn, Dataset, DatasetKind};
use crate::Result;

/// The data folder used when none is given, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "data";

/// How to load a dataset.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadOptions {
    /// Folder holding (or receiving) the files; [`DEFAULT_DATA_DIR`] when `None`.
    pub data_dir: Option<PathBuf>,
    /// Fetch the canonical files into the data folder when they are not found.
    pub download: bool,
    /// Seed of the procedural `shapes` set (ignored by the file datasets).
    pub seed: u64,
    /// ZCA-whiten train and test with this `eps` (fitted on the train set) instead of the
    /// per-channel normalisation: MTT's `--zca` (mtt-distillation `utils.py:137-165`, eps
    /// 0.1 = [`super::ZCA_EPS`]). `None`: `(x / 255 - mean) / std` per channel.
    pub zca: Option<f64>,
}

impl LoadOptions {
    /// The options of a run's or an `experts` run's data settings.
    pub fn new(data_dir: &Option<PathBuf>, download: bool, seed: u64, zca: Option<f64>) -> Self {
        Self {
            data_dir: data_dir.clone(),
            download,
            seed,
            zca,
        }
    }
}

/// The canonical dataset names, the default (`shapes`) first.
pub fn dataset_names() -> Vec<&'static str> {
    DatasetKind::ALL.iter().map(|k| k.name()).collect()
}

/// Loads dataset `name` (case-insensitive; `-` and `_` ignored).
///
/// Errors: an unknown name is `Error::InvalidSetting` listing the valid names; files that are
/// not found are `Error::DatasetMissing` listing every folder looked at and how to get them; a
/// file that is truncated or malformed is `Error::DatasetCorrupt` naming it.
///
/// With `options.zca`, pixels are `x / 255` (for `shapes`, its values in [0, 1]) and both sets
/// are whitened by a ZCA fitted on the train set; the dataset keeps the fit ([`Dataset::zca`])
/// so that its images can be turned back into pictures.
pub fn load(name: &str, options: &LoadOptions) -> Result<Dataset> {
    let kind = DatasetKind::from_name(name)?;
    if let Some(eps) = options.zca {
        check_eps(eps)?;
    }
    let norm = match options.zca {
        Some(_) => Normalisation::unit(kind),
        None => Normalisation::of(kind),
    };
    let mut ds = load_normalised(kind, options, &norm)?;
    if let Some(eps) = options.zca {
        ds.zca = Some(Zca::fit_and_whiten(&mut ds.train, &mut ds.test, eps)?);
    }
    Ok(ds)
}

fn load_normalised(kind: DatasetKind, options: &LoadOptions, norm: &Normalisation) -> Result<Dataset> {
    if kind == DatasetKind::Shapes {
        return Ok(shapes::generate_normalised(options.seed, &norm.mean, &norm.std));
    }
    let data_dir = options
        .data_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
    let paths = match find(kind, &data_dir) {
        Ok(paths) => paths,
        Err(_) if options.download => {
            download::download(kind, &data_dir)?;
            find(kind, &data_dir).map_err(|report| missing_error(kind, &report, &hint(kind)))?
        }
        Err(report) => return Err(missing_error(kind, &report, &hint(kind))),
    };
    match kind {
        DatasetKind::Mnist | DatasetKind::FashionMnist => mnist::load(kind, &paths, norm),
        DatasetKind::Cifar10 | DatasetKind::Cifar100 => cifar::load(kind, &paths, norm),
        DatasetKind::Svhn => svhn::load(&paths, norm),
        DatasetKind::Shapes => Ok(shapes::generate_normalised(options.seed, &norm.mean, &norm.std)),
    }
}

/// [`load`], then (unless `quiet`) one line on stderr saying what was loaded and how long it
/// took: what every command prints before its work.
pub fn load_announced(name: &str, options: &LoadOptions, quiet: bool) -> Result<Dataset> {
    let start = std::time::Instant::now();
    let ds = load(name, options)?;
    if !quiet {
        let whitened = ds
            .zca
            .as_ref()
            .map(|z| format!(", ZCA-whitened with eps {}", z.eps))
            .unwrap_or_default();
        eprintln!(
            "dataset {}: {} train / {} test images of {}, {} classes{whitened} ({:.1} s)",
            ds.name,
            ds.train.len(),
            ds.test.len(),
            ds.train.shape,
            ds.classes,
            start.elapsed().as_secs_f64()
        );
    }
    Ok(ds)
}

fn find(kind: DatasetKind, data_dir: &Path) -> Found {
    match kind {
        DatasetKind::Mnist | DatasetKind::FashionMnist => mnist::find(kind, data_dir),
        DatasetKind::Cifar10 | DatasetKind::Cifar100 => cifar::find(kind, data_dir),
        DatasetKind::Svhn => svhn::find(data_dir),
        DatasetKind::Shapes => Ok(Vec::new()),
    }
}

fn hint(kind: DatasetKind) -> String {
    match kind {
        DatasetKind::Mnist | DatasetKind::FashionMnist => mnist::hint(kind),
        DatasetKind::Cifar10 | DatasetKind::Cifar100 => cifar::hint(kind),
        DatasetKind::Svhn => svhn::hint(),
        DatasetKind::Shapes => String::new(),
    }
}
