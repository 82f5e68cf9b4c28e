//! PyTorch's file format as `torch.save` writes it since PyTorch 1.6 (a zip archive, entries
//! stored uncompressed: `<name>/data.pkl` is the pickled object, `<name>/data/<key>` the raw
//! bytes of each storage, `<name>/byteorder` says `little` or `big`; `torch/serialization.py`
//! `_save`), and the tensors in it: `torch._utils._rebuild_tensor_v2(storage, offset, size,
//! stride, requires_grad, hooks)` calls whose storage is the persistent id `('storage',
//! torch.FloatStorage, key, location, numel)`.
//!
//! Bounded: the file is read once; a storage's bytes are a slice of it, checked to lie inside
//! it; a tensor may address only elements of its storage and may not hold more elements than
//! its storage (a broadcast view could ask for any amount of memory), so what a tensor
//! allocates never exceeds the file's own size.

use std::collections::HashMap;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use super::pickle::{self, kind, Id, Node, Pickle};
use crate::{Error, Result};

/// The largest pickle read (`data.pkl`): a set's pickle is a few kilobytes, its tensors lie in
/// the storages.
const MAX_PICKLE_BYTES: u64 = 64 << 20;

/// A tensor's values, widened: floating types as f32 (what cafe-lab trains on), integer and
/// bool types as i64.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    Float(Vec<f32>),
    Int(Vec<i64>),
}

/// A tensor read from a PyTorch file.
#[derive(Debug, Clone, PartialEq)]
pub struct PtTensor {
    /// PyTorch's dtype name (`float32`, `int64`, ...).
    pub dtype: &'static str,
    pub shape: Vec<usize>,
    pub values: Values,
}

impl PtTensor {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_float(&self) -> bool {
        matches!(self.values, Values::Float(_))
    }

    /// `float32[100, 3, 32, 32]`, for messages.
    pub fn describe(&self) -> String {
        format!("{}{:?}", self.dtype, self.shape)
    }
}

/// An opened `.pt` file: its pickled object graph and its storages.
pub struct PtFile {
    pub path: PathBuf,
    pub pickle: Pickle,
    bytes: Vec<u8>,
    /// Storage key -> byte range in `bytes`.
    storages: HashMap<String, (usize, usize)>,
}

/// True when `path` starts like a zip archive (PyTorch's format) or a legacy PyTorch pickle:
/// how `evaluate --synthetic` tells a `.pt` file from a safetensors one, whatever its name.
pub fn looks_like_torch_file(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 2];
    let read = std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut head));
    read.is_ok() && (head == *b"PK" || head == [0x80, 0x02])
        || path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("pt") || e.eq_ignore_ascii_case("pth"))
}

impl PtFile {
    /// Reads and parses the file at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        let fail = |message: String| Error::TorchFile {
            path: path.to_path_buf(),
            message,
        };
        if bytes.first() == Some(&0x80) {
            return Err(fail(
                "it is in PyTorch's legacy format (before PyTorch 1.6, or saved with \
                 _use_new_zipfile_serialization=False), which cafe-lab does not read: re-save it with \
                 torch.save(torch.load(f), f) under PyTorch 1.6 or newer"
                    .into(),
            ));
        }
        if !bytes.starts_with(b"PK") {
            return Err(fail(
                "it is not a PyTorch file (torch.save writes a zip archive, starting 'PK')".into(),
            ));
        }
        let mut archive = zip::ZipArchive::new(Cursor::new(&bytes[..]))
            .map_err(|e| fail(format!("not a readable zip archive: {e}")))?;
        let mut pickle_at = None;
        let mut storages = HashMap::new();
        let mut big_endian = false;
        for i in 0..archive.len() {
            let entry = archive
                .by_index_raw(i)
                .map_err(|e| fail(format!("zip entry {i} cannot be read: {e}")))?;
            let name = entry
                .name()
                .map_err(|e| fail(format!("zip entry {i} has no readable name: {e}")))?
                .to_string();
            let start = entry.data_start().unwrap_or(u64::MAX);
            let size = entry.size();
            let range = usize::try_from(start)
                .ok()
                .zip(usize::try_from(size).ok())
                .and_then(|(s, n)| Some((s, s.checked_add(n)?)))
                .filter(|&(_, end)| end <= bytes.len());
            let stored = entry.compression() == zip::CompressionMethod::Stored && entry.compressed_size() == size;
            let Some(range) = range.filter(|_| stored) else {
                if name.ends_with("data.pkl") || name.contains("/data/") {
                    return Err(fail(format!(
                        "zip entry {name} is compressed or lies outside the file; torch.save stores its \
                         entries uncompressed: re-save the tensors with torch.save"
                    )));
                }
                continue;
            };
            let parts: Vec<&str> = name.split('/').collect();
            match parts.as_slice() {
                [_, "data.pkl"] => pickle_at = Some((name.clone(), range)),
                [_, "data", key] => {
                    storages.insert((*key).to_string(), range);
                }
                [_, "byteorder"] => big_endian = &bytes[range.0..range.1] == b"big",
                _ => {}
            }
        }
        if big_endian {
            return Err(fail(
                "its storages are big-endian (byteorder = big); cafe-lab reads little-endian files: \
                 re-save it on a little-endian machine"
                    .into(),
            ));
        }
        let (name, (start, end)) = pickle_at
            .ok_or_else(|| fail("the archive holds no '<name>/data.pkl' entry: not written by torch.save".into()))?;
        if (end - start) as u64 > MAX_PICKLE_BYTES {
            return Err(fail(format!(
                "{name} is {} bytes, above the {MAX_PICKLE_BYTES} cafe-lab reads",
                end - start
            )));
        }
        let pickle = pickle::parse(&bytes[start..end]).map_err(|e| fail(format!("{name}: {e}")))?;
        Ok(Self {
            path: path.to_path_buf(),
            pickle,
            bytes,
            storages,
        })
    }

    pub fn node(&self, id: Id) -> &Node {
        self.pickle.node(id)
    }

    fn fail(&self, message: String) -> Error {
        Error::TorchFile {
            path: self.path.clone(),
            message,
        }
    }

    /// The tensor that node `id` rebuilds, if it is one (None for anything else).
    pub fn tensor(&self, id: Id) -> Result<Option<PtTensor>> {
        let Some(call) = self.tensor_call(id, 0) else {
            return Ok(None);
        };
        self.rebuild(call).map(Some).map_err(|m| self.fail(m))
    }

    /// The arguments of the `_rebuild_tensor[_v2]` call behind node `id`, looking through the
    /// wrappers torch.save writes around it (parameters, tensor subclasses, `BUILD` state).
    fn tensor_call(&self, id: Id, depth: usize) -> Option<&[Id]> {
        if depth > 8 {
            return None;
        }
        match self.node(id) {
            Node::Build { object, .. } => self.tensor_call(*object, depth + 1),
            Node::Call { callable, args } => {
                let Node::Global { module, name } = self.node(*callable) else {
                    return None;
                };
                let Node::Tuple(args) = self.node(*args) else {
                    return None;
                };
                match (module.as_str(), name.as_str()) {
                    ("torch._utils", "_rebuild_tensor_v2" | "_rebuild_tensor") => Some(args),
                    ("torch._utils", "_rebuild_parameter" | "_rebuild_parameter_with_state") => {
                        self.tensor_call(*args.first()?, depth + 1)
                    }
                    // (func, type, func's args, state)
                    ("torch._tensor", "_rebuild_from_type_v2") => {
                        let func = *args.first()?;
                        let inner = *args.get(2)?;
                        match self.node(func) {
                            Node::Global { module, name }
                                if module == "torch._utils" && name.starts_with("_rebuild_tensor") =>
                            {
                                match self.node(inner) {
                                    Node::Tuple(a) => Some(a),
                                    _ => None,
                                }
                            }
                            _ => None,
                        }
                    }
                    _ => None,
                }
            }
            _ => None,
        }
    }

    fn int(&self, id: Id, what: &str) -> std::result::Result<i64, String> {
        match self.node(id) {
            Node::Int(v) => Ok(*v),
            other => Err(format!("a tensor's {what} should be an int, found {}", kind(other))),
        }
    }

    fn ints(&self, id: Id, what: &str) -> std::result::Result<Vec<usize>, String> {
        let Node::Tuple(items) = self.node(id) else {
            return Err(format!(
                "a tensor's {what} should be a tuple, found {}",
                kind(self.node(id))
            ));
        };
        items
            .iter()
            .map(|&i| {
                let v = self.int(i, what)?;
                usize::try_from(v).map_err(|_| format!("a tensor's {what} holds {v}"))
            })
            .collect()
    }

    fn rebuild(&self, args: &[Id]) -> std::result::Result<PtTensor, String> {
        if args.len() < 4 {
            return Err(format!(
                "a tensor is rebuilt from {} arguments, 4 or more expected",
                args.len()
            ));
        }
        let Node::Persistent(pid) = self.node(args[0]) else {
            return Err("a tensor's storage is not a storage reference".into());
        };
        let Node::Tuple(storage) = self.node(*pid) else {
            return Err("a storage reference is not a tuple".into());
        };
        let [tag, storage_type, key, _location, numel, ..] = storage.as_slice() else {
            return Err(format!("a storage reference has {} fields, 5 expected", storage.len()));
        };
        if !matches!(self.node(*tag), Node::Str(s) if s == "storage") {
            return Err("a persistent id is not a 'storage' reference".into());
        }
        let type_name = match self.node(*storage_type) {
            Node::Global { name, .. } => name.clone(),
            other => return Err(format!("a storage type is {}", kind(other))),
        };
        let key = match self.node(*key) {
            Node::Str(k) => k.clone(),
            other => return Err(format!("a storage key is {}", kind(other))),
        };
        let (dtype, width) = storage_dtype(&type_name)
            .ok_or_else(|| format!("storage type {type_name} is not one cafe-lab reads (floating, integer or bool)"))?;
        let numel = usize::try_from(self.int(*numel, "storage size")?).map_err(|_| "negative storage size")?;
        let &(start, end) = self
            .storages
            .get(&key)
            .ok_or_else(|| format!("storage '{key}' is not in the archive (data/{key} missing)"))?;
        let need = numel.checked_mul(width).ok_or("a storage size overflows")?;
        if end - start < need {
            return Err(format!(
                "storage '{key}' should hold {numel} {dtype} values ({need} bytes) but data/{key} has {} bytes",
                end - start
            ));
        }
        let offset = usize::try_from(self.int(args[1], "storage offset")?).map_err(|_| "negative storage offset")?;
        let shape = self.ints(args[2], "size")?;
        let stride = self.ints(args[3], "stride")?;
        if shape.len() != stride.len() {
            return Err(format!(
                "a tensor's size {shape:?} and stride {stride:?} differ in rank"
            ));
        }
        let count = shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .ok_or("a tensor's size overflows")?;
        if count > numel {
            return Err(format!(
                "a tensor of size {shape:?} ({count} values) views a storage of {numel}: cafe-lab reads \
                 tensors that own their values (save t.clone() or t.contiguous())"
            ));
        }
        if count > 0 {
            let last = shape
                .iter()
                .zip(&stride)
                .try_fold(offset, |a, (&d, &s)| a.checked_add((d - 1).checked_mul(s)?))
                .ok_or("a tensor's strides overflow")?;
            if last >= numel {
                return Err(format!(
                    "a tensor (size {shape:?}, stride {stride:?}, offset {offset}) reaches past its storage of {numel}"
                ));
            }
        }
        let data = &self.bytes[start..start + need];
        let element = |i: usize| &data[i * width..(i + 1) * width];
        let indices = strided_indices(&shape, &stride, offset, count);
        let values = if is_float(dtype) {
            Values::Float(indices.map(|i| float_at(dtype, element(i))).collect())
        } else {
            Values::Int(indices.map(|i| int_at(dtype, element(i))).collect())
        };
        Ok(PtTensor { dtype, shape, values })
    }
}

/// Storage indices of a strided tensor's elements, in row-major order.
fn strided_indices<'a>(
    shape: &'a [usize],
    stride: &'a [usize],
    offset: usize,
    count: usize,
) -> impl Iterator<Item = usize> + 'a {
    let mut index = vec![0usize; shape.len()];
    (0..count).map(move |n| {
        if n > 0 {
            for d in (0..shape.len()).rev() {
                index[d] += 1;
                if index[d] < shape[d] {
                    break;
                }
                index[d] = 0;
            }
        }
        offset + index.iter().zip(stride).map(|(i, s)| i * s).sum::<usize>()
    })
}

/// PyTorch's dtype name and element size of a storage class (`torch/storage.py`).
fn storage_dtype(class: &str) -> Option<(&'static str, usize)> {
    Some(match class {
        "FloatStorage" => ("float32", 4),
        "DoubleStorage" => ("float64", 8),
        "HalfStorage" => ("float16", 2),
        "BFloat16Storage" => ("bfloat16", 2),
        "LongStorage" => ("int64", 8),
        "IntStorage" => ("int32", 4),
        "ShortStorage" => ("int16", 2),
        "CharStorage" => ("int8", 1),
        "ByteStorage" => ("uint8", 1),
        "BoolStorage" => ("bool", 1),
        _ => return None,
    })
}

fn is_float(dtype: &str) -> bool {
    dtype.starts_with("float") || dtype == "bfloat16"
}

fn float_at(dtype: &str, b: &[u8]) -> f32 {
    match dtype {
        "float32" => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        "float64" => f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32,
        "float16" => half::f16::from_le_bytes([b[0], b[1]]).to_f32(),
        _ => half::bf16::from_le_bytes([b[0], b[1]]).to_f32(),
    }
}

fn int_at(dtype: &str, b: &[u8]) -> i64 {
    match dtype {
        "int64" => i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
        "int32" => i32::from_le_bytes([b[0], b[1], b[2], b[3]]).into(),
        "int16" => i16::from_le_bytes([b[0], b[1]]).into(),
        "int8" => i8::from_le_bytes([b[0]]).into(),
        _ => b[0].into(),
    }
}
