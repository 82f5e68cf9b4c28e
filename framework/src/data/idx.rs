//! The IDX format of MNIST and Fashion-MNIST: a big-endian header (magic, dimensions) followed
//! by unsigned bytes.
//!
//! Magic 2051 (`0x00000803`: ubyte, 3 dimensions) = images `[n, rows, cols]`; magic 2049
//! (`0x00000801`: ubyte, 1 dimension) = labels `[n]`. Every size in the header is checked
//! against the real byte length before anything is allocated from it, and a gzipped file is
//! inflated no further than its header announces.

use std::path::Path;

use super::locate::{corrupt, inflate_maybe_gz, read_file};
use crate::Result;

/// Magic number of an IDX file of unsigned-byte images with 3 dimensions.
pub(crate) const IMAGES_MAGIC: u32 = 2051;
/// Magic number of an IDX file of unsigned-byte labels with 1 dimension.
pub(crate) const LABELS_MAGIC: u32 = 2049;

fn be_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at + 4)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

fn describe_magic(magic: u32) -> String {
    match magic {
        IMAGES_MAGIC => "2051 (an image file)".to_string(),
        LABELS_MAGIC => "2049 (a label file)".to_string(),
        m => format!("{m} (0x{m:08x}, not an IDX ubyte file)"),
    }
}

/// Reads the magic and `dims` dimensions and checks the payload length: returns the
/// dimensions and the payload.
fn header<'a>(bytes: &'a [u8], path: &Path, magic: u32, what: &str, dims: usize) -> Result<(Vec<u32>, &'a [u8])> {
    let header_len = 4 + 4 * dims;
    let too_short = || {
        corrupt(
            path,
            format!(
                "file is {} bytes, too short for the {header_len}-byte IDX header of {what}",
                bytes.len()
            ),
        )
    };
    // The magic first (it tells a label file from an image file), then the rest of the header.
    let found = be_u32(bytes, 0).ok_or_else(too_short)?;
    if found != magic {
        return Err(corrupt(
            path,
            format!(
                "bad magic number: expected {} for {what}, found {}",
                describe_magic(magic),
                describe_magic(found)
            ),
        ));
    }
    if bytes.len() < header_len {
        return Err(too_short());
    }
    let (sizes, expected) = announced(bytes, dims);
    let actual = bytes.len() as u64;
    if actual != expected {
        let problem = if actual < expected { "truncated" } else { "too long" };
        return Err(corrupt(
            path,
            format!(
                "{problem}: the header announces {what} of dimensions {}, i.e. {expected} bytes, \
                 but the file holds {actual} bytes",
                dims_text(&sizes)
            ),
        ));
    }
    Ok((sizes, &bytes[header_len..]))
}

/// The `dims` sizes of a header that is known to be complete, and the file length they
/// announce (header included).
fn announced(bytes: &[u8], dims: usize) -> (Vec<u32>, u64) {
    let sizes: Vec<u32> = (0..dims).map(|d| be_u32(bytes, 4 + 4 * d).unwrap_or(0)).collect();
    // Saturating: a product of three u32 can exceed u64, and a huge claim must still compare
    // as "larger than the file" rather than wrap around.
    let payload = sizes.iter().fold(1u64, |acc, &s| acc.saturating_mul(u64::from(s)));
    (sizes, payload.saturating_add(4 + 4 * dims as u64))
}

fn dims_text(sizes: &[u32]) -> String {
    let text: Vec<String> = sizes.iter().map(|s| s.to_string()).collect();
    format!("[{}]", text.join(", "))
}

/// The bytes of an IDX file with `magic` and `dims` dimensions, plain or gzipped. A gzip stream
/// may inflate only to what its header announces (plus a margin, see
/// [`inflate_maybe_gz`]); a header that is short or has another magic announces only itself,
/// and [`parse_images`] / [`parse_labels`] then say what is wrong with it.
pub(crate) fn read(path: &Path, magic: u32, dims: usize) -> Result<Vec<u8>> {
    decode(read_file(path)?, path, magic, dims)
}

/// [`read`] of a file's content `raw`.
pub(crate) fn decode(raw: Vec<u8>, path: &Path, magic: u32, dims: usize) -> Result<Vec<u8>> {
    let header_len = 4 + 4 * dims as u64;
    inflate_maybe_gz(raw, path, header_len, |head| {
        if head.len() as u64 == header_len && be_u32(head, 0) == Some(magic) {
            let (sizes, size) = announced(head, dims);
            (
                size,
                format!("its IDX header announces dimensions {}", dims_text(&sizes)),
            )
        } else {
            (head.len() as u64, "its IDX header is not valid".to_string())
        }
    })
}

/// Parses an image file; checks every image is `rows` x `cols`. Returns the image count and
/// the pixels (`count * rows * cols` bytes, row-major).
pub(crate) fn parse_images<'a>(bytes: &'a [u8], path: &Path, rows: usize, cols: usize) -> Result<(usize, &'a [u8])> {
    let (dims, pixels) = header(bytes, path, IMAGES_MAGIC, "images", 3)?;
    if dims[1] as usize != rows || dims[2] as usize != cols {
        return Err(corrupt(
            path,
            format!("images are {}x{}, expected {rows}x{cols}", dims[1], dims[2]),
        ));
    }
    Ok((dims[0] as usize, pixels))
}

/// Parses a label file; checks every label is below `classes`.
pub(crate) fn parse_labels(bytes: &[u8], path: &Path, classes: usize) -> Result<Vec<u32>> {
    let (_, labels) = header(bytes, path, LABELS_MAGIC, "labels", 1)?;
    if let Some((i, &bad)) = labels.iter().enumerate().find(|(_, &l)| l as usize >= classes) {
        return Err(corrupt(
            path,
            format!("label {bad} at index {i} is out of range: expected 0..{classes}"),
        ));
    }
    Ok(labels.iter().map(|&l| u32::from(l)).collect())
}
