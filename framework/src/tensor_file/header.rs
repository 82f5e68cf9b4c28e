//! The header of a tensor file, parsed and checked before any tensor is read.
//!
//! A safetensors file is an 8-byte little-endian length N, N bytes of JSON
//! (`{"name": {"dtype", "shape", "data_offsets": [begin, end]}, ..., "__metadata__": {..}}`,
//! offsets relative to the data section), then the data section. Every number of the header
//! is untrusted: the checks here make sure that what is later read or allocated from it lies
//! inside the file. Messages say what was found and what the format asks, without the file's
//! name: the caller's [`FileKind`](super::FileKind) adds the path and what the file should be.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use super::Dtype;

/// The largest header read, as the `safetensors` crate allows (100 MB): a length field above it
/// is refused before anything is allocated, whatever the file's size.
pub const MAX_HEADER_LEN: u64 = 100_000_000;

/// The most dimensions a tensor may have. cafe-lab's tensors have at most 4 and other tools'
/// rarely more than 8; the cap keeps a hostile `"shape": [0, 0, 0, ...]` from growing a vector
/// of eight bytes per two bytes of header.
pub const MAX_RANK: usize = 32;

/// One tensor of the header: its type, shape and byte range in the data section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    /// Byte range `begin..end` in the data section (after the header).
    pub begin: u64,
    pub end: u64,
}

impl TensorInfo {
    /// Number of elements (checked not to overflow when the header was parsed).
    pub fn elements(&self) -> usize {
        self.shape.iter().product()
    }
}

/// A parsed, checked header: the string metadata and every tensor, by name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Header {
    pub metadata: BTreeMap<String, String>,
    pub tensors: BTreeMap<String, TensorInfo>,
}

/// The header length of a file of `file_len` bytes whose first 8 bytes are `prefix`, checked
/// against the cap and the file.
pub(crate) fn header_len(prefix: [u8; 8], file_len: u64) -> Result<u64, String> {
    let n = u64::from_le_bytes(prefix);
    if n > MAX_HEADER_LEN {
        return Err(format!(
            "its first 8 bytes give a header of {n} bytes, more than the {MAX_HEADER_LEN} a \
             safetensors header may have: not a safetensors file, or its start is damaged"
        ));
    }
    let room = file_len.saturating_sub(8);
    if n > room {
        return Err(format!(
            "its first 8 bytes give a header of {n} bytes, but only {room} bytes follow them: \
             the file is truncated, or not a safetensors file"
        ));
    }
    Ok(n)
}

impl Header {
    /// Parses the JSON header `bytes` of a file whose data section holds `data_len` bytes, and
    /// checks that the tensors tile that section exactly.
    pub fn parse(bytes: &[u8], data_len: u64) -> Result<Header, String> {
        let text = std::str::from_utf8(bytes).map_err(|e| {
            format!(
                "its header is not UTF-8 text (invalid byte at offset {} of the header)",
                e.valid_up_to()
            )
        })?;
        // serde_json stops at 128 levels of nesting, and the types below accept no nesting
        // beyond a tensor entry's arrays, so a deeply nested header is refused at its first
        // unexpected bracket, with neither deep recursion nor allocation.
        let header: Header = serde_json::from_str(text)
            .map_err(|e| format!("its header is not the JSON object of a safetensors file: {e}"))?;
        header.check_layout(data_len)?;
        Ok(header)
    }

    /// Every tensor's byte count agrees with its type and shape, and the byte ranges, sorted,
    /// follow one another from 0 to the end of the data section: no overlap, no gap, nothing
    /// outside (the format forbids holes, which would let a file be two formats at once).
    fn check_layout(&self, data_len: u64) -> Result<(), String> {
        let mut ranges: Vec<(u64, u64, &str)> = Vec::with_capacity(self.tensors.len());
        for (name, info) in &self.tensors {
            let (begin, end) = (info.begin, info.end);
            if end < begin {
                return Err(format!(
                    "tensor '{name}' has data_offsets [{begin}, {end}]: its end lies before its start"
                ));
            }
            if end > data_len {
                return Err(format!(
                    "tensor '{name}' has data_offsets [{begin}, {end}], past the {data_len} bytes of \
                     the data section: the file is truncated, or its header is wrong"
                ));
            }
            let bytes = info
                .shape
                .iter()
                .try_fold(info.dtype.size(), |acc, &d| acc.checked_mul(d))
                .ok_or_else(|| {
                    format!(
                        "tensor '{name}' has shape {:?}, whose {} bytes overflow a 64-bit count",
                        info.shape, info.dtype
                    )
                })?;
            if bytes as u64 != end - begin {
                return Err(format!(
                    "tensor '{name}' is {} {:?}, {bytes} bytes, but its data_offsets [{begin}, {end}] \
                     hold {} bytes",
                    info.dtype,
                    info.shape,
                    end - begin
                ));
            }
            ranges.push((begin, end, name));
        }
        ranges.sort_unstable();
        let mut at = 0u64;
        let mut previous = None;
        for (begin, end, name) in ranges {
            if begin != at {
                let problem = match previous {
                    None => "the first tensor must start at byte 0".to_string(),
                    Some(p) if begin < at => format!("it overlaps '{p}', which ends at byte {at}"),
                    Some(p) => format!("it leaves a gap after '{p}', which ends at byte {at}"),
                };
                return Err(format!(
                    "tensor '{name}' starts at byte {begin} of the data section: {problem}; tensors must \
                     follow one another without gaps or overlaps"
                ));
            }
            at = end;
            previous = Some(name);
        }
        if at != data_len {
            return Err(format!(
                "the tensors cover {at} bytes of data but {data_len} bytes follow the header: the \
                 file has bytes no tensor accounts for"
            ));
        }
        Ok(())
    }
}

/// The key of the metadata in a header.
const METADATA_KEY: &str = "__metadata__";

impl<'de> Deserialize<'de> for Header {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(HeaderVisitor)
    }
}

struct HeaderVisitor;

impl<'de> Visitor<'de> for HeaderVisitor {
    type Value = Header;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object of tensor entries and an optional \"__metadata__\"")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Header, A::Error> {
        let mut header = Header::default();
        let mut seen_metadata = false;
        while let Some(key) = map.next_key::<String>()? {
            if key == METADATA_KEY {
                if seen_metadata {
                    return Err(de::Error::custom("\"__metadata__\" appears twice"));
                }
                seen_metadata = true;
                header.metadata = map.next_value::<StringMap>()?.0;
                continue;
            }
            let info: RawInfo = map
                .next_value()
                .map_err(|e| de::Error::custom(format!("tensor '{key}': {e}")))?;
            let entry = TensorInfo {
                dtype: info.dtype.0,
                shape: info.shape.0,
                begin: info.data_offsets[0],
                end: info.data_offsets[1],
            };
            if header.tensors.contains_key(&key) {
                return Err(de::Error::custom(format!(
                    "tensor '{key}' appears twice; names must be unique"
                )));
            }
            header.tensors.insert(key, entry);
        }
        Ok(header)
    }
}

/// A tensor entry as written (`data_offsets` checked against the file later).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInfo {
    dtype: DtypeName,
    shape: Shape,
    data_offsets: [u64; 2],
}

/// A dtype given by its name; an unknown name lists the known ones.
struct DtypeName(Dtype);

impl<'de> Deserialize<'de> for DtypeName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = DtypeName;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "a dtype name ({})", Dtype::names())
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<DtypeName, E> {
                Dtype::from_name(s)
                    .map(DtypeName)
                    .ok_or_else(|| E::custom(format!("unknown dtype '{s}'; the format has {}", Dtype::names())))
            }
        }
        deserializer.deserialize_str(V)
    }
}

/// A shape of at most [`MAX_RANK`] dimensions.
struct Shape(Vec<usize>);

impl<'de> Deserialize<'de> for Shape {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Shape;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "a list of at most {MAX_RANK} dimensions")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Shape, A::Error> {
                let mut dims = Vec::new();
                while let Some(d) = seq.next_element::<u64>()? {
                    if dims.len() == MAX_RANK {
                        return Err(de::Error::custom(format!("a shape of more than {MAX_RANK} dimensions")));
                    }
                    let d = usize::try_from(d)
                        .map_err(|_| de::Error::custom(format!("dimension {d} does not fit this machine")))?;
                    dims.push(d);
                }
                Ok(Shape(dims))
            }
        }
        deserializer.deserialize_seq(V)
    }
}

/// The metadata: strings to strings, each key once.
struct StringMap(BTreeMap<String, String>);

impl<'de> Deserialize<'de> for StringMap {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StringMap;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of strings (the safetensors metadata)")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StringMap, A::Error> {
                let mut out = BTreeMap::new();
                while let Some(key) = map.next_key::<String>()? {
                    let value: String = map
                        .next_value()
                        .map_err(|e| de::Error::custom(format!("metadata '{key}': {e}")))?;
                    if out.insert(key.clone(), value).is_some() {
                        return Err(de::Error::custom(format!("metadata key '{key}' appears twice")));
                    }
                }
                Ok(StringMap(out))
            }
        }
        deserializer.deserialize_map(V)
    }
}
