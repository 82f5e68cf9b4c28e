//! A small reader of MATLAB level-5 MAT-files (the format of SVHN's `*_32x32.mat`), enough for
//! numeric, real, full arrays. No maintained crate reads v5 files, so it is done by hand here,
//! following "MATLAB 5.0 MAT-File Format" (MathWorks):
//!
//! - a 128-byte header: 116 bytes of text, 8 bytes of subsystem offset, a 2-byte version
//!   (0x0100) and the 2-byte endian indicator `IM` (little-endian file) or `MI` (big-endian);
//! - then data elements, each an 8-byte tag (data type u32, byte count u32) and its data padded
//!   to 8 bytes, or in the "small element" format a 4-byte tag whose upper 16 bits hold the byte
//!   count (at most 4) followed by the data in the same 8 bytes;
//! - a variable is an `miMATRIX` element (type 14) holding sub-elements: array flags (class in
//!   the low byte, complex bit 0x0800), dimensions (`miINT32`), name (`miINT8`), real part (any
//!   numeric storage type, which may be narrower than the class: MATLAB stores a double array
//!   of small integers as `miUINT8`), then an imaginary part if complex;
//! - `miCOMPRESSED` (type 15) wraps a zlib stream holding such elements; it is not padded. It is
//!   inflated no further than the tag inside declares (plus a margin).
//!
//! Every length is checked against the bytes that remain before it is used, and every error
//! names the file, the offset and what was expected.

use std::io::Read;
use std::path::Path;

use flate2::read::ZlibDecoder;

use super::bounded::{read_capped, MARGIN};
use super::locate::{corrupt, read_file};
use crate::{Error, Result};

const MI_INT8: u32 = 1;
const MI_UINT8: u32 = 2;
const MI_INT32: u32 = 5;
const MI_UINT32: u32 = 6;
const MI_MATRIX: u32 = 14;
const MI_COMPRESSED: u32 = 15;
const MI_UTF8: u32 = 16;

/// Size of the fixed header.
pub const HEADER_LEN: usize = 128;

/// The numeric values of an array, in MATLAB's column-major order.
#[derive(Debug, Clone, PartialEq)]
pub enum MatData {
    /// Stored as `miUINT8`: kept as bytes (SVHN's images are 240 MB of them).
    U8(Vec<u8>),
    /// Any other numeric storage type, converted to `f64`.
    F64(Vec<f64>),
}

impl MatData {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            MatData::U8(v) => v.len(),
            MatData::F64(v) => v.len(),
        }
    }

    /// True when there is no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element `i` as `f64`.
    pub fn get(&self, i: usize) -> Option<f64> {
        match self {
            MatData::U8(v) => v.get(i).map(|&x| f64::from(x)),
            MatData::F64(v) => v.get(i).copied(),
        }
    }
}

/// One numeric variable of a MAT-file.
#[derive(Debug, Clone, PartialEq)]
pub struct MatArray {
    pub name: String,
    /// MATLAB class (6 double, 7 single, 8 int8, 9 uint8, 10 int16, 11 uint16, 12 int32,
    /// 13 uint32, 14 int64, 15 uint64).
    pub class: u8,
    /// Dimensions, first one varying fastest (column-major).
    pub dims: Vec<usize>,
    pub data: MatData,
}

/// Reads the variables named in `wanted` from the MAT-file at `path` (other variables are
/// skipped without being converted).
pub fn read_mat(path: &Path, wanted: &[&str]) -> Result<Vec<MatArray>> {
    let bytes = read_file(path)?;
    parse_mat(&bytes, path, wanted)
}

/// Parses MAT-file `bytes` (read from `path`, used in error messages); returns the variables
/// named in `wanted` that it holds, in file order.
pub fn parse_mat(bytes: &[u8], path: &Path, wanted: &[&str]) -> Result<Vec<MatArray>> {
    let big_endian = check_header(bytes, path)?;
    let mut out = Vec::new();
    let mut top = Reader {
        bytes,
        pos: HEADER_LEN,
        big_endian,
        path,
        context: "file".to_string(),
    };
    while top.remaining() > 0 {
        if top.only_padding_left() {
            break;
        }
        let start = top.pos;
        let element = top.element("a variable")?;
        match element.data_type {
            MI_MATRIX => {
                let mut inner = top.sub(element.data, format!("variable at byte {start}"));
                if let Some(array) = inner.matrix(wanted)? {
                    out.push(array);
                }
            }
            MI_COMPRESSED => {
                let inflated = top.inflate(element.data, start)?;
                let mut stream = top.sub(&inflated, format!("compressed element at byte {start}"));
                while stream.remaining() > 0 && !stream.only_padding_left() {
                    let inner = stream.element("a variable")?;
                    if inner.data_type != MI_MATRIX {
                        return Err(stream.error(format!(
                            "expected an miMATRIX element (type 14), found type {}",
                            inner.data_type
                        )));
                    }
                    let context = format!("{} variable", stream.context);
                    if let Some(array) = stream.sub(inner.data, context).matrix(wanted)? {
                        out.push(array);
                    }
                }
            }
            // Other top-level elements carry nothing we read; skip them.
            _ => {}
        }
    }
    Ok(out)
}

/// Validates the 128-byte header; returns whether the file is big-endian.
fn check_header(bytes: &[u8], path: &Path) -> Result<bool> {
    if bytes.len() < HEADER_LEN {
        return Err(corrupt(
            path,
            format!(
                "file is {} bytes, shorter than the {HEADER_LEN}-byte MAT-file header",
                bytes.len()
            ),
        ));
    }
    let text: String = String::from_utf8_lossy(&bytes[..20])
        .chars()
        .filter(|c| !c.is_control())
        .collect();
    if bytes.starts_with(b"MATLAB 7.3") {
        return Err(corrupt(
            path,
            "this is a MAT v7.3 file (HDF5), which is not supported: re-save it in MATLAB with \
             save(..., '-v7')",
        ));
    }
    let big_endian = match &bytes[126..128] {
        b"IM" => false,
        b"MI" => true,
        other => {
            return Err(corrupt(
                path,
                format!(
                    "not a MATLAB v5 MAT-file: expected the endian indicator 'IM' or 'MI' at byte \
                     126, found {other:?} (file starts with {text:?})"
                ),
            ))
        }
    };
    let v = [bytes[124], bytes[125]];
    let version = if big_endian {
        u16::from_be_bytes(v)
    } else {
        u16::from_le_bytes(v)
    };
    if version != 0x0100 {
        return Err(corrupt(
            path,
            format!("unsupported MAT-file version 0x{version:04x}, expected 0x0100 (level 5)"),
        ));
    }
    Ok(big_endian)
}

/// One data element: its type and its data (without tag or padding).
struct Element<'a> {
    data_type: u32,
    data: &'a [u8],
}

/// A cursor over a run of data elements, with what is needed to report errors.
struct Reader<'a, 'p> {
    bytes: &'a [u8],
    pos: usize,
    big_endian: bool,
    path: &'p Path,
    /// Where this run of bytes lives, for messages ("file", "compressed element at byte 128").
    context: String,
}

impl<'a, 'p> Reader<'a, 'p> {
    fn sub<'b>(&self, bytes: &'b [u8], context: String) -> Reader<'b, 'p> {
        Reader {
            bytes,
            pos: 0,
            big_endian: self.big_endian,
            path: self.path,
            context,
        }
    }

    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    /// Fewer than 8 bytes left, all zero: padding after the last element, not an element.
    fn only_padding_left(&self) -> bool {
        self.remaining() < 8 && self.bytes[self.pos..].iter().all(|&b| b == 0)
    }

    fn error(&self, message: String) -> Error {
        corrupt(self.path, format!("{}, offset {}: {message}", self.context, self.pos))
    }

    fn u32_at(&self, at: usize) -> u32 {
        let b = [
            self.bytes[at],
            self.bytes[at + 1],
            self.bytes[at + 2],
            self.bytes[at + 3],
        ];
        if self.big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    }

    /// Reads the next element (tag, data, padding). `what` says what was expected, for errors.
    fn element(&mut self, what: &str) -> Result<Element<'a>> {
        if self.remaining() < 8 {
            return Err(self.error(format!(
                "expected the 8-byte tag of {what}, only {} bytes remain",
                self.remaining()
            )));
        }
        let first = self.u32_at(self.pos);
        if first >> 16 != 0 {
            // Small element: 2 bytes count, 2 bytes type, then up to 4 data bytes.
            let (data_type, count) = (first & 0xffff, (first >> 16) as usize);
            if count > 4 {
                return Err(self.error(format!(
                    "small data element of {what} claims {count} bytes, at most 4 fit"
                )));
            }
            let data = &self.bytes[self.pos + 4..self.pos + 4 + count];
            self.pos += 8;
            return Ok(Element { data_type, data });
        }
        let data_type = first;
        let count = self.u32_at(self.pos + 4) as usize;
        if count > self.remaining() - 8 {
            return Err(self.error(format!(
                "{what} (element type {data_type}) claims {count} bytes, only {} remain",
                self.remaining() - 8
            )));
        }
        let data = &self.bytes[self.pos + 8..self.pos + 8 + count];
        self.pos += 8 + count;
        if data_type != MI_COMPRESSED {
            // Pad to 8 bytes; tolerate a missing pad at the very end.
            let pad = (8 - count % 8) % 8;
            self.pos += pad.min(self.remaining());
        }
        Ok(Element { data_type, data })
    }

    /// Inflates the zlib stream of the miCOMPRESSED element at byte `start`. MATLAB compresses
    /// one variable per element, so the stream should hold one element of the size its tag
    /// declares (plus padding); inflating stops a [`MARGIN`] past that.
    fn inflate(&self, data: &[u8], start: usize) -> Result<Vec<u8>> {
        let invalid = |e: std::io::Error| {
            corrupt(
                self.path,
                format!("compressed element at byte {start}: invalid zlib stream: {e}"),
            )
        };
        let mut stream = ZlibDecoder::new(data);
        let mut inflated = Vec::new();
        (&mut stream).take(8).read_to_end(&mut inflated).map_err(invalid)?;
        // A tag cut short, or in the small-element format, declares nothing more: the parser
        // then reports what is wrong with it.
        let tag = self.sub(&inflated, String::new());
        let declared = if inflated.len() == 8 && tag.u32_at(0) >> 16 == 0 {
            8 + u64::from(tag.u32_at(4))
        } else {
            inflated.len() as u64
        };
        let cap = declared.saturating_add(MARGIN);
        if !read_capped(&mut stream, cap - inflated.len() as u64, &mut inflated).map_err(invalid)? {
            return Err(corrupt(
                self.path,
                format!(
                    "compressed element at byte {start}: the zlib stream inflates past {cap} bytes \
                     while the element inside declares {declared} bytes (tag included); the file \
                     is damaged or was made to exhaust memory: delete it and fetch the canonical \
                     file again (e.g. with --download)"
                ),
            ));
        }
        Ok(inflated)
    }

    /// Parses the body of an miMATRIX element. Returns `None` for variables not in `wanted`,
    /// for empty elements and for non-numeric classes (cells, structs, chars, sparse).
    fn matrix(&mut self, wanted: &[&str]) -> Result<Option<MatArray>> {
        if self.remaining() == 0 {
            return Ok(None); // MATLAB writes empty arrays as empty miMATRIX elements
        }
        let flags = self.element("the array flags")?;
        if flags.data_type != MI_UINT32 || flags.data.len() != 8 {
            return Err(self.error(format!(
                "expected array flags (miUINT32, 8 bytes), found type {} with {} bytes",
                flags.data_type,
                flags.data.len()
            )));
        }
        let flag_word = self.sub(flags.data, String::new()).u32_at(0);
        let class = (flag_word & 0xff) as u8;
        let complex = flag_word & 0x0800 != 0;

        let dims_el = self.element("the dimensions")?;
        if dims_el.data_type != MI_INT32 || !dims_el.data.len().is_multiple_of(4) || dims_el.data.len() < 8 {
            return Err(self.error(format!(
                "expected dimensions (miINT32, at least 2), found type {} with {} bytes",
                dims_el.data_type,
                dims_el.data.len()
            )));
        }
        let dim_reader = self.sub(dims_el.data, String::new());
        let mut dims = Vec::with_capacity(dims_el.data.len() / 4);
        for k in 0..dims_el.data.len() / 4 {
            let d = dim_reader.u32_at(4 * k) as i32;
            if d < 0 {
                return Err(self.error(format!("negative dimension {d}")));
            }
            dims.push(d as usize);
        }

        let name_el = self.element("the array name")?;
        if name_el.data_type != MI_INT8 && name_el.data_type != MI_UTF8 {
            return Err(self.error(format!(
                "expected the array name (miINT8), found type {}",
                name_el.data_type
            )));
        }
        let name = String::from_utf8_lossy(name_el.data).into_owned();
        // Numeric classes are 6 (double) ..= 15 (uint64); others are skipped.
        if !wanted.contains(&name.as_str()) || !(6..=15).contains(&class) {
            return Ok(None);
        }
        if complex {
            return Err(self.error(format!("variable '{name}' is complex; expected real values")));
        }
        let count = dims
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| self.error(format!("variable '{name}': dimensions {dims:?} overflow")))?;
        let real = self.element(&format!("the values of '{name}'"))?;
        let size = element_size(real.data_type).ok_or_else(|| {
            self.error(format!(
                "variable '{name}': values stored as unsupported type {}",
                real.data_type
            ))
        })?;
        if real.data.len() != count.saturating_mul(size) {
            return Err(self.error(format!(
                "variable '{name}' has dimensions {dims:?} ({count} values of {size} bytes) but its \
                 data holds {} bytes",
                real.data.len()
            )));
        }
        let data = if real.data_type == MI_UINT8 {
            MatData::U8(real.data.to_vec())
        } else {
            MatData::F64(
                real.data
                    .chunks_exact(size)
                    .map(|c| self.decode(real.data_type, c))
                    .collect(),
            )
        };
        Ok(Some(MatArray {
            name,
            class,
            dims,
            data,
        }))
    }

    /// One value of storage type `t` (its size checked by the caller) as `f64`.
    fn decode(&self, t: u32, c: &[u8]) -> f64 {
        let be = self.big_endian;
        macro_rules! num {
            ($ty:ty, $n:expr) => {{
                let mut a = [0u8; $n];
                a.copy_from_slice(c);
                (if be {
                    <$ty>::from_be_bytes(a)
                } else {
                    <$ty>::from_le_bytes(a)
                }) as f64
            }};
        }
        match t {
            1 => num!(i8, 1),
            2 => num!(u8, 1),
            3 => num!(i16, 2),
            4 => num!(u16, 2),
            5 => num!(i32, 4),
            6 => num!(u32, 4),
            7 => num!(f32, 4),
            9 => num!(f64, 8),
            12 => num!(i64, 8),
            13 => num!(u64, 8),
            _ => f64::NAN,
        }
    }
}

/// Byte size of a numeric storage type, `None` for the others.
fn element_size(t: u32) -> Option<usize> {
    match t {
        1 | 2 => Some(1),
        3 | 4 => Some(2),
        5..=7 => Some(4),
        9 | 12 | 13 => Some(8),
        _ => None,
    }
}
