//! What a synthetic set costs to store: the bytes of every tensor of its file that a user of
//! the set needs (images, labels and any learned extras such as a step size or soft labels),
//! not the dataset's normalisation constants.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::tensor_file::{FileKind, TensorFile};
use crate::Result;

/// Tensors of a set file that describe the dataset rather than the set: they are the same for
/// every set of that dataset and are not counted.
const DATASET_CONSTANTS: [&str; 2] = ["mean", "std"];

/// Storage of a synthetic set, in bytes as stored (f32 images, u32 labels, ...).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Storage {
    pub images_bytes: u64,
    pub labels_bytes: u64,
    /// Every other tensor of the set (a learned step size `lr`, soft labels, ...), by name.
    pub extras_bytes: BTreeMap<String, u64>,
    pub total_bytes: u64,
}

/// The storage of the set in the safetensors file at `path`, read from its header: a
/// safetensors header gives each tensor's byte range (`data_offsets`), so nothing else is read.
pub fn storage_of_safetensors(path: &Path) -> Result<Storage> {
    let file = TensorFile::open(path, FileKind::SyntheticSet)?;
    let mut storage = Storage::default();
    for (name, info) in &file.header().tensors {
        if DATASET_CONSTANTS.contains(&name.as_str()) {
            continue;
        }
        let size = info.end - info.begin;
        match name.as_str() {
            "images" => storage.images_bytes = size,
            "labels" => storage.labels_bytes = size,
            _ => {
                storage.extras_bytes.insert(name.clone(), size);
            }
        }
        storage.total_bytes += size;
    }
    if storage.images_bytes == 0 {
        return Err(file.corrupt("it holds no 'images' tensor"));
    }
    Ok(storage)
}
