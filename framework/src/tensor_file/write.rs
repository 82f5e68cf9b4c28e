//! Writing a tensor file whose bytes depend on its content alone.
//!
//! The header's keys are sorted (tensor names and `__metadata__` together, bytewise; each
//! tensor's fields as `data_offsets`, `dtype`, `shape`; metadata keys), the JSON is compact and
//! padded with spaces to a multiple of 8 bytes as the format asks, and the data section holds
//! the tensors by type then name, as the `safetensors` crate lays them out. These are exactly
//! the bytes the synthetic set has been written with since it sorted its header
//! (`framework/tests/golden/`), so sets keep their bytes and checkpoints, expert trajectories
//! and teachers gain the same reproducibility.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{DType, Tensor};
use serde::Serialize;

use super::Dtype;
use crate::output::write_atomic;
use crate::{Error, Result};

/// One tensor to write: its type, shape and little-endian bytes.
struct Entry {
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

/// A tensor file being put together: tensors and string metadata, written in one go.
#[derive(Default)]
pub struct TensorWriter {
    /// What is written, for messages ("checkpoint", "expert 3").
    what: String,
    tensors: BTreeMap<String, Entry>,
    metadata: BTreeMap<String, String>,
}

/// A tensor's entry in the header; the field order is the sorted one.
#[derive(Serialize)]
struct InfoOut<'a> {
    data_offsets: [u64; 2],
    dtype: &'static str,
    shape: &'a [usize],
}

/// A value of the header object: the metadata or a tensor.
#[derive(Serialize)]
#[serde(untagged)]
enum HeaderValue<'a> {
    Metadata(&'a BTreeMap<String, String>),
    Tensor(InfoOut<'a>),
}

impl TensorWriter {
    /// An empty file; `what` names it in errors.
    pub fn new(what: impl Into<String>) -> Self {
        Self {
            what: what.into(),
            ..Self::default()
        }
    }

    /// Adds `t` as an f32 tensor `name` (converted from its dtype).
    pub fn f32(&mut self, name: impl Into<String>, t: &Tensor) -> Result<&mut Self> {
        let values = t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        self.f32_values(name, t.dims(), &values)
    }

    /// Adds an f32 tensor `name` of `shape` from its values.
    pub fn f32_values(&mut self, name: impl Into<String>, shape: &[usize], values: &[f32]) -> Result<&mut Self> {
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.add(name.into(), Dtype::F32, shape, values.len(), bytes)
    }

    /// Adds `t` as a u32 tensor `name` (it must be u32 already: labels are not converted).
    pub fn u32(&mut self, name: impl Into<String>, t: &Tensor) -> Result<&mut Self> {
        let values = t.flatten_all()?.to_vec1::<u32>()?;
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.add(name.into(), Dtype::U32, t.dims(), values.len(), bytes)
    }

    /// Sets the metadata `key` to `value`.
    pub fn metadata(&mut self, key: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    fn add(&mut self, name: String, dtype: Dtype, shape: &[usize], count: usize, bytes: Vec<u8>) -> Result<&mut Self> {
        if name == "__metadata__" || self.tensors.contains_key(&name) {
            return Err(Error::Other(format!(
                "writing {}: the tensor name '{name}' is {}",
                self.what,
                if name == "__metadata__" {
                    "the format's metadata key"
                } else {
                    "given twice"
                }
            )));
        }
        if shape.iter().product::<usize>() != count {
            return Err(Error::Other(format!(
                "writing {}: tensor '{name}' has shape {shape:?} but {count} values",
                self.what
            )));
        }
        self.tensors.insert(
            name,
            Entry {
                dtype,
                shape: shape.to_vec(),
                bytes,
            },
        );
        Ok(self)
    }

    /// The file's bytes: the same content gives the same bytes, in any process.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut order: Vec<(&String, &Entry)> = self.tensors.iter().collect();
        order.sort_by(|(a, x), (b, y)| y.dtype.layout_rank().cmp(&x.dtype.layout_rank()).then_with(|| a.cmp(b)));
        let mut header: BTreeMap<&str, HeaderValue> = BTreeMap::new();
        let mut at = 0u64;
        for (name, entry) in &order {
            let end = at + entry.bytes.len() as u64;
            header.insert(
                name.as_str(),
                HeaderValue::Tensor(InfoOut {
                    data_offsets: [at, end],
                    dtype: entry.dtype.name(),
                    shape: &entry.shape,
                }),
            );
            at = end;
        }
        if !self.metadata.is_empty() {
            header.insert("__metadata__", HeaderValue::Metadata(&self.metadata));
        }
        let mut text = serde_json::to_string(&header)
            .map_err(|e| Error::Other(format!("writing {}: its header: {e}", self.what)))?;
        while text.len() % 8 != 0 {
            text.push(' ');
        }
        let mut out = Vec::with_capacity(8 + text.len() + at as usize);
        out.extend_from_slice(&(text.len() as u64).to_le_bytes());
        out.extend_from_slice(text.as_bytes());
        for (_, entry) in order {
            out.extend_from_slice(&entry.bytes);
        }
        Ok(out)
    }

    /// Writes the file to `path` atomically: a crash leaves the old file or the new one.
    pub fn write(&self, path: &Path) -> Result<()> {
        write_atomic(path, &self.to_bytes()?)
    }
}
