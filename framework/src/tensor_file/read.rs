//! Reading a tensor file: the header alone, then whichever tensors the caller asks for.
//!
//! Opening reads the 8-byte length and the header, and checks them against the file's real
//! size (see [`Header::parse`]); no tensor data is read until asked for, so a command can look
//! at a file's metadata cheaply and an expert trajectory can load only the epochs it needs. A
//! tensor's buffer is sized from its byte range only after that range was found to lie inside
//! the file.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};

use super::header::{header_len, Header, TensorInfo};
use super::{Dtype, FileKind};
use crate::{Error, Result};

/// Bytes read from the file at a time while converting tensor data.
const CHUNK: usize = 1 << 16;

/// An open tensor file whose header has been read and checked.
pub struct TensorFile {
    path: PathBuf,
    kind: FileKind,
    file: File,
    header: Header,
    /// Where the data section starts in the file.
    data_start: u64,
}

impl TensorFile {
    /// Opens `path`, which should be a `kind` file, and reads its header (not its data).
    pub fn open(path: &Path, kind: FileKind) -> Result<Self> {
        let io = |e| Error::io(format!("reading {} {}", kind.describe(), path.display()), e);
        let mut file = File::open(path).map_err(io)?;
        let file_len = file.metadata().map_err(io)?.len();
        let corrupt = |message: String| kind.corrupt(path, message);
        let mut prefix = [0u8; 8];
        if file_len < 8 {
            return Err(corrupt(format!(
                "the file is {file_len} bytes, shorter than the 8-byte length that starts a safetensors file"
            )));
        }
        file.read_exact(&mut prefix).map_err(io)?;
        let n = header_len(prefix, file_len).map_err(corrupt)?;
        // n <= file_len - 8, checked above: this allocation is no larger than the file.
        let mut bytes = vec![0u8; n as usize];
        file.read_exact(&mut bytes).map_err(io)?;
        let header = Header::parse(&bytes, file_len - 8 - n).map_err(corrupt)?;
        Ok(Self {
            path: path.to_path_buf(),
            kind,
            file,
            header,
            data_start: 8 + n,
        })
    }

    /// The checked header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The string metadata (`__metadata__`; empty when the file has none).
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.header.metadata
    }

    /// Takes the metadata out of the file's header (for a caller that keeps it).
    pub fn take_metadata(&mut self) -> BTreeMap<String, String> {
        std::mem::take(&mut self.header.metadata)
    }

    /// The tensor `name`'s entry, if the file holds one.
    pub fn info(&self, name: &str) -> Option<&TensorInfo> {
        self.header.tensors.get(name)
    }

    /// The tensor names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.header.tensors.keys().map(String::as_str)
    }

    /// The error "this file is a broken `kind` file": for the callers' own checks of the
    /// content (a missing tensor, a shape that does not fit).
    pub fn corrupt(&self, message: impl Into<String>) -> Error {
        self.kind.corrupt(&self.path, message)
    }

    /// The f32 tensor `name`: its shape and values. Any other dtype is refused.
    pub fn read_f32(&mut self, name: &str) -> Result<(Vec<usize>, Vec<f32>)> {
        let info = self.entry(name, &[Dtype::F32])?;
        let values = self.read_values(&info, f32::from_le_bytes)?;
        Ok((info.shape, values))
    }

    /// The f32 tensor `name` as a candle tensor on `device`.
    pub fn tensor_f32(&mut self, name: &str, device: &Device) -> Result<Tensor> {
        let (shape, values) = self.read_f32(name)?;
        Ok(Tensor::from_vec(values, shape, device)?)
    }

    /// The f32 tensor `name` on `device`, or `None` when the file has no tensor of that name.
    pub fn optional_f32(&mut self, name: &str, device: &Device) -> Result<Option<Tensor>> {
        match self.info(name) {
            Some(_) => self.tensor_f32(name, device).map(Some),
            None => Ok(None),
        }
    }

    /// The u32 tensor `name`: its shape and values.
    pub fn read_u32(&mut self, name: &str) -> Result<(Vec<usize>, Vec<u32>)> {
        let info = self.entry(name, &[Dtype::U32])?;
        let values = self.read_values(&info, u32::from_le_bytes)?;
        Ok((info.shape, values))
    }

    /// Class labels `name`: u32 as cafe-lab writes them, or i64 as PyTorch keeps labels (a
    /// set made in Python). An i64 label outside u32 is refused, not wrapped.
    pub fn read_labels(&mut self, name: &str) -> Result<(Vec<usize>, Vec<u32>)> {
        let info = self.entry(name, &[Dtype::U32, Dtype::I64])?;
        if info.dtype == Dtype::U32 {
            return self.read_u32(name);
        }
        let wide = self.read_values(&info, i64::from_le_bytes)?;
        let labels = wide
            .iter()
            .enumerate()
            .map(|(i, &l)| {
                u32::try_from(l).map_err(|_| self.corrupt(format!("label {i} of '{name}' is {l}, not a class index")))
            })
            .collect::<Result<Vec<u32>>>()?;
        Ok((info.shape, labels))
    }

    /// The entry of tensor `name`, which must have one of the types `want`.
    fn entry(&self, name: &str, want: &[Dtype]) -> Result<TensorInfo> {
        let info = self
            .info(name)
            .ok_or_else(|| self.corrupt(format!("it holds no tensor '{name}'")))?;
        if !want.contains(&info.dtype) {
            let want: Vec<&str> = want.iter().map(|d| d.name()).collect();
            return Err(self.corrupt(format!(
                "tensor '{name}' is {}, expected {}",
                info.dtype,
                want.join(" or ")
            )));
        }
        Ok(info.clone())
    }

    /// The elements of `info`, `N` bytes each, converted by `convert`. The header check made
    /// sure that `info`'s range lies inside the file, so the buffer is no larger than it.
    fn read_values<T, const N: usize>(&mut self, info: &TensorInfo, convert: fn([u8; N]) -> T) -> Result<Vec<T>> {
        let context = format!("reading {} {}", self.kind.describe(), self.path.display());
        let io = |e| Error::io(context.clone(), e);
        let total = (info.end - info.begin) as usize;
        let mut values = Vec::with_capacity(total / N);
        self.file
            .seek(SeekFrom::Start(self.data_start + info.begin))
            .map_err(io)?;
        let mut chunk = vec![0u8; CHUNK.min(total)];
        let mut left = total;
        while left > 0 {
            let n = chunk.len().min(left);
            // The chunk size is a multiple of 8, so no element straddles two chunks.
            self.file.read_exact(&mut chunk[..n]).map_err(io)?;
            values.extend(chunk[..n].chunks_exact(N).map(|b| {
                let mut a = [0u8; N];
                a.copy_from_slice(b);
                convert(a)
            }));
            left -= n;
        }
        Ok(values)
    }
}
