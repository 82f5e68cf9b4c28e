//! The entry point: `load(name, options)` picks the dataset, finds its files (downloading them
//! when asked) and returns it normalised.

use std::path::{Path, PathBuf};

use super::locate::{missing_error, Found};
use super::{cifar, download, mnist, shapes, svhn, Dataset, DatasetKind};
use crate::Result;

/// The data folder used when none is given, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "data";

/// How to load a dataset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Folder holding (or receiving) the files; [`DEFAULT_DATA_DIR`] when `None`.
    pub data_dir: Option<PathBuf>,
    /// Fetch the canonical files into the data folder when they are not found.
    pub download: bool,
    /// Seed of the procedural `shapes` set (ignored by the file datasets).
    pub seed: u64,
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
pub fn load(name: &str, options: &LoadOptions) -> Result<Dataset> {
    let kind = DatasetKind::from_name(name)?;
    if kind == DatasetKind::Shapes {
        return Ok(shapes::generate(options.seed));
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
        DatasetKind::Mnist | DatasetKind::FashionMnist => mnist::load(kind, &paths),
        DatasetKind::Cifar10 | DatasetKind::Cifar100 => cifar::load(kind, &paths),
        DatasetKind::Svhn => svhn::load(&paths),
        DatasetKind::Shapes => Ok(shapes::generate(options.seed)),
    }
}

/// [`load`], then (unless `quiet`) one line on stderr saying what was loaded and how long it
/// took: what every command prints before its work.
pub fn load_announced(name: &str, options: &LoadOptions, quiet: bool) -> Result<Dataset> {
    let start = std::time::Instant::now();
    let ds = load(name, options)?;
    if !quiet {
        eprintln!(
            "dataset {}: {} train / {} test images of {}, {} classes ({:.1} s)",
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
