//! CIFAR-10 and CIFAR-100 in their binary versions: fixed-size records of label byte(s) then
//! 3072 pixel bytes (1024 red, 1024 green, 1024 blue, each plane row-major), i.e. already CHW.
//!
//! CIFAR-10: `cifar-10-batches-bin/data_batch_{1..5}.bin` and `test_batch.bin`, one label byte.
//! CIFAR-100: `cifar-100-binary/train.bin` and `test.bin`, two label bytes (coarse, fine); the
//! fine label (100 classes) is used.

use std::path::{Path, PathBuf};

use super::locate::{corrupt, find_dir_with, read_file, Found};
use super::normalise::{tables, Normalisation};
use super::{Dataset, DatasetKind, ImageSet};
use crate::{Error, Result};

const PIXELS: usize = 3 * 32 * 32;

/// The folder the archive extracts to.
pub(crate) fn subdir(kind: DatasetKind) -> &'static str {
    if kind == DatasetKind::Cifar100 {
        "cifar-100-binary"
    } else {
        "cifar-10-batches-bin"
    }
}

/// Train files then the test file (the last one).
pub(crate) fn files(kind: DatasetKind) -> Vec<&'static str> {
    if kind == DatasetKind::Cifar100 {
        vec!["train.bin", "test.bin"]
    } else {
        vec![
            "data_batch_1.bin",
            "data_batch_2.bin",
            "data_batch_3.bin",
            "data_batch_4.bin",
            "data_batch_5.bin",
            "test_batch.bin",
        ]
    }
}

/// Searches `<data_dir>/<canonical subfolder>` then `data_dir` itself.
pub(crate) fn find(kind: DatasetKind, data_dir: &Path) -> Found {
    let dirs = [data_dir.join(subdir(kind)), data_dir.to_path_buf()];
    find_dir_with(&dirs, &files(kind), false)
}

/// How to get the files, for the "missing" error.
pub(crate) fn hint(kind: DatasetKind) -> String {
    let archive = if kind == DatasetKind::Cifar100 {
        "cifar-100-binary.tar.gz"
    } else {
        "cifar-10-binary.tar.gz"
    };
    format!(
        "pass --data-dir DIR containing {}/ ({}, extracted from the binary version {archive}), \
         or run with --download",
        subdir(kind),
        files(kind).join(", ")
    )
}

/// Parses one binary file, appending its normalised pixels (through the per-channel `tables`)
/// and its labels. Normalising record by record avoids holding a second copy of the bytes.
pub(crate) fn parse_records(
    bytes: &[u8],
    path: &Path,
    kind: DatasetKind,
    tables: &[[f32; 256]],
    images: &mut Vec<f32>,
    labels: &mut Vec<u32>,
) -> Result<()> {
    // CIFAR-100 records start with the coarse then the fine label.
    let label_bytes = if kind == DatasetKind::Cifar100 { 2 } else { 1 };
    let record = label_bytes + PIXELS;
    if bytes.is_empty() {
        return Err(corrupt(
            path,
            format!("file is empty; expected records of {record} bytes"),
        ));
    }
    if !bytes.len().is_multiple_of(record) {
        return Err(corrupt(
            path,
            format!(
                "file is {} bytes, not a multiple of the {record}-byte record \
                 ({label_bytes} label byte(s) + {PIXELS} pixels): truncated or not a {} binary batch",
                bytes.len(),
                kind.name()
            ),
        ));
    }
    let classes = kind.classes();
    let plane = PIXELS / 3;
    images.reserve(bytes.len() / record * PIXELS);
    for (i, rec) in bytes.chunks_exact(record).enumerate() {
        let label = rec[label_bytes - 1];
        if label as usize >= classes {
            return Err(corrupt(
                path,
                format!("record {i} has label {label}, expected 0..{classes}"),
            ));
        }
        labels.push(u32::from(label));
        for (channel, table) in rec[label_bytes..].chunks_exact(plane).zip(tables) {
            images.extend(channel.iter().map(|&v| table[v as usize]));
        }
    }
    Ok(())
}

fn load_split(kind: DatasetKind, paths: &[PathBuf], norm: &Normalisation) -> Result<ImageSet> {
    let tables = tables(&norm.mean, &norm.std);
    let mut images = Vec::new();
    let mut labels = Vec::new();
    for path in paths {
        let bytes = read_file(path)?;
        parse_records(&bytes, path, kind, &tables, &mut images, &mut labels)?;
    }
    Ok(ImageSet {
        images,
        labels,
        shape: kind.shape(),
    })
}

/// Loads the dataset from the resolved paths (in [`files`] order: train files, test file).
pub(crate) fn load(kind: DatasetKind, paths: &[PathBuf], norm: &Normalisation) -> Result<Dataset> {
    let Some((test, train)) = paths.split_last() else {
        return Err(Error::Other("internal: no CIFAR paths".to_string()));
    };
    Ok(Dataset {
        name: kind.name().to_string(),
        train: load_split(kind, train, norm)?,
        test: load_split(kind, std::slice::from_ref(test), norm)?,
        classes: kind.classes(),
        class_names: kind.class_names(),
        mean: norm.mean.clone(),
        std: norm.std.clone(),
        zca: None,
    })
}
