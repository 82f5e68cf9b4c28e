//! The dataset targets: IDX, CIFAR records, MAT-files, and the bounded gunzip and inflate in
//! front of them. They call the loaders' own parsing functions on bytes (the loaders read the
//! file, then call the same functions).

use std::path::Path;

use crate::data::normalise::{tables, Normalisation};
use crate::data::{cifar, idx, mat, svhn, DatasetKind};
use crate::Result;

/// The name errors give the input.
const PATH: &str = "fuzz-input";

/// Ok when the input is one of the files tried (an image file or a label file, a CIFAR-10 or a
/// CIFAR-100 batch), else the first refusal. Every reading runs, whatever the others gave.
fn one_of(results: impl IntoIterator<Item = Result<()>>) -> Result<()> {
    let mut first = None;
    for r in results {
        match r {
            Ok(()) => first = Some(Ok(())),
            Err(e) => {
                first.get_or_insert(Err(e));
            }
        }
    }
    first.unwrap_or(Ok(()))
}

pub(super) fn idx(input: &[u8]) -> Result<()> {
    let path = Path::new(PATH);
    let images = idx::decode(input.to_vec(), path, idx::IMAGES_MAGIC, 3)
        .and_then(|bytes| idx::parse_images(&bytes, path, 28, 28).map(drop));
    let labels = idx::decode(input.to_vec(), path, idx::LABELS_MAGIC, 1)
        .and_then(|bytes| idx::parse_labels(&bytes, path, 10).map(drop));
    one_of([images, labels])
}

pub(super) fn cifar(input: &[u8]) -> Result<()> {
    one_of([DatasetKind::Cifar10, DatasetKind::Cifar100].map(|kind| {
        let norm = Normalisation::of(kind);
        let (mut images, mut labels) = (Vec::new(), Vec::new());
        let tables = tables(&norm.mean, &norm.std);
        cifar::parse_records(input, Path::new(PATH), kind, &tables, &mut images, &mut labels)
    }))
}

pub(super) fn mat(input: &[u8]) -> Result<()> {
    let path = Path::new(PATH);
    let arrays = mat::parse_mat(input, path, &["X", "y"])?;
    svhn::split_from_arrays(arrays, path, &Normalisation::of(DatasetKind::Svhn)).map(drop)
}

pub(super) fn gzip(input: &[u8]) -> Result<()> {
    // Always a gzip stream: the magic bytes first, then the input (unless it has them).
    let mut raw = Vec::with_capacity(input.len() + 2);
    if !input.starts_with(&[0x1f, 0x8b]) {
        raw.extend_from_slice(&[0x1f, 0x8b]);
    }
    raw.extend_from_slice(input);
    idx(&raw)
}

pub(super) fn zlib(input: &[u8]) -> Result<()> {
    // A little-endian MAT-file holding one miCOMPRESSED element whose zlib stream is the input.
    let mut file = b"MATLAB 5.0 MAT-file, fuzz".to_vec();
    file.resize(124, b' ');
    file.extend_from_slice(&[0x00, 0x01, b'I', b'M']);
    file.extend_from_slice(&15u32.to_le_bytes());
    file.extend_from_slice(&u32::try_from(input.len()).unwrap_or(u32::MAX).to_le_bytes());
    file.extend_from_slice(input);
    mat(&file)
}
