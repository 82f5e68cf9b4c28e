//! MNIST and Fashion-MNIST from their four IDX files (plain or `.gz`).

use std::path::{Path, PathBuf};

use super::locate::{corrupt, find_dir_with, Found};
use super::normalise::{image_set_from_bytes, Normalisation};
use super::{idx, Dataset, DatasetKind, ImageSet};
use crate::Result;

/// The four canonical file names, without `.gz`: train images, train labels, test images,
/// test labels.
pub(crate) const FILES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

/// Where Debian's `dataset-fashion-mnist` package installs the four `.gz` files.
pub(crate) const DEBIAN_FASHION_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// The folders searched, in order: `data_dir` itself, then the layouts of torchvision
/// (`MNIST/raw`, `FashionMNIST/raw`) and of the upstream repositories, then for Fashion-MNIST
/// the Debian package's folder.
pub(crate) fn search_dirs(kind: DatasetKind, data_dir: &Path) -> Vec<PathBuf> {
    let mut dirs = vec![data_dir.to_path_buf()];
    if kind == DatasetKind::FashionMnist {
        dirs.push(data_dir.join("FashionMNIST").join("raw"));
        dirs.push(data_dir.join("fashion-mnist"));
        dirs.push(PathBuf::from(DEBIAN_FASHION_DIR));
    } else {
        dirs.push(data_dir.join("MNIST").join("raw"));
        dirs.push(data_dir.join("mnist"));
    }
    dirs
}

/// Finds the four files (see [`search_dirs`]).
pub(crate) fn find(kind: DatasetKind, data_dir: &Path) -> Found {
    find_dir_with(&search_dirs(kind, data_dir), &FILES, true)
}

/// How to get the files, for the "missing" error.
pub(crate) fn hint(kind: DatasetKind) -> String {
    let files = FILES.map(|f| format!("{f}.gz")).join(", ");
    let mut hint = format!("pass --data-dir DIR containing {files} (plain or .gz), or run with --download");
    if kind == DatasetKind::FashionMnist {
        hint.push_str(&format!(
            ", or `apt-get install dataset-fashion-mnist` (installs them in {DEBIAN_FASHION_DIR})"
        ));
    }
    hint
}

/// One split from its image and label files.
fn load_split(kind: DatasetKind, images_path: &Path, labels_path: &Path, norm: &Normalisation) -> Result<ImageSet> {
    let shape = kind.shape();
    let image_bytes = idx::read(images_path, idx::IMAGES_MAGIC, 3)?;
    let (count, pixels) = idx::parse_images(&image_bytes, images_path, shape.height, shape.width)?;
    let label_bytes = idx::read(labels_path, idx::LABELS_MAGIC, 1)?;
    let labels = idx::parse_labels(&label_bytes, labels_path, kind.classes())?;
    if labels.len() != count {
        return Err(corrupt(
            labels_path,
            format!(
                "holds {} labels but {} holds {count} images; the counts must match",
                labels.len(),
                images_path.display()
            ),
        ));
    }
    Ok(image_set_from_bytes(pixels, labels, shape, &norm.mean, &norm.std))
}

/// Loads the dataset from the four resolved paths (in [`FILES`] order).
pub(crate) fn load(kind: DatasetKind, paths: &[PathBuf], norm: &Normalisation) -> Result<Dataset> {
    let [train_x, train_y, test_x, test_y] = paths else {
        return Err(crate::Error::Other(format!(
            "internal: expected 4 IDX paths, got {}",
            paths.len()
        )));
    };
    Ok(Dataset {
        name: kind.name().to_string(),
        train: load_split(kind, train_x, train_y, norm)?,
        test: load_split(kind, test_x, test_y, norm)?,
        classes: kind.classes(),
        class_names: kind.class_names(),
        mean: norm.mean.clone(),
        std: norm.std.clone(),
        zca: None,
    })
}
