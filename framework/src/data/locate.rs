//! Finding a dataset's files among candidate folders, reading them (gunzipping when needed),
//! and the errors that say where we looked.

use std::io::Read;
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

use super::bounded::{read_capped, MARGIN};
use super::DatasetKind;
use crate::{Error, Result};

/// The outcome of a search: the resolved path of every wanted file, or one line per folder
/// saying what was wrong with it (for the "looked at" list of the error).
pub(crate) type Found = std::result::Result<Vec<PathBuf>, Vec<String>>;

/// The first folder of `dirs` that holds all of `files`; each file may also be present as
/// `<file>.gz` when `gz_ok` (the plain file wins when both exist). Folders are tried in order
/// and a folder counts only when it is complete, so one dataset's files never come from two
/// places.
pub(crate) fn find_dir_with(dirs: &[PathBuf], files: &[&str], gz_ok: bool) -> Found {
    let mut report = Vec::new();
    for dir in dirs {
        if !dir.is_dir() {
            report.push(format!("{}: no such directory", dir.display()));
            continue;
        }
        let mut paths = Vec::with_capacity(files.len());
        let mut missing = Vec::new();
        for file in files {
            let plain = dir.join(file);
            let gz = dir.join(format!("{file}.gz"));
            if plain.is_file() {
                paths.push(plain);
            } else if gz_ok && gz.is_file() {
                paths.push(gz);
            } else if gz_ok {
                missing.push(format!("{file}[.gz]"));
            } else {
                missing.push(file.to_string());
            }
        }
        if missing.is_empty() {
            return Ok(paths);
        }
        report.push(format!("{}: missing {}", dir.display(), missing.join(", ")));
    }
    Err(report)
}

/// `Error::DatasetMissing` listing every folder looked at and how to get the files.
pub(crate) fn missing_error(kind: DatasetKind, report: &[String], hint: &str) -> Error {
    let mut message = format!("the {} files were not found. Looked at:", kind.name());
    for line in report {
        message.push_str("\n  ");
        message.push_str(line);
    }
    message.push_str("\nTo get them: ");
    message.push_str(hint);
    Error::DatasetMissing {
        dataset: kind.name().to_string(),
        message,
    }
}

/// `Error::DatasetCorrupt` for `path`.
pub(crate) fn corrupt(path: &Path, message: impl Into<String>) -> Error {
    Error::DatasetCorrupt {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// `raw`, the content of `path`, gunzipped when it starts with the gzip magic bytes (the name
/// is not trusted: some mirrors serve `.gz` names with plain content and vice versa).
///
/// A gzip stream is inflated in two steps: its first `head_len` bytes, from which
/// `expected(head)` gives the size the content should have and where that size comes from
/// (e.g. "its IDX header announces ..."), then the rest, refused past that size plus
/// [`MARGIN`]. Memory grows as data arrives, so it follows the real content up to that bound.
pub(crate) fn inflate_maybe_gz(
    raw: Vec<u8>,
    path: &Path,
    head_len: u64,
    expected: impl FnOnce(&[u8]) -> (u64, String),
) -> Result<Vec<u8>> {
    if !raw.starts_with(&[0x1f, 0x8b]) {
        return Ok(raw);
    }
    let invalid = |e: std::io::Error| corrupt(path, format!("not a valid gzip stream: {e}"));
    let mut stream = MultiGzDecoder::new(raw.as_slice());
    let mut out = Vec::new();
    (&mut stream).take(head_len).read_to_end(&mut out).map_err(invalid)?;
    let (size, origin) = expected(&out);
    let cap = size.saturating_add(MARGIN);
    let fitted = read_capped(&mut stream, cap.saturating_sub(out.len() as u64), &mut out).map_err(invalid)?;
    if !fitted {
        return Err(corrupt(
            path,
            format!(
                "the gzip stream inflates past {cap} bytes while {origin}, {size} bytes; the file \
                 is damaged or was made to exhaust memory: delete it and fetch the canonical file \
                 again (e.g. with --download)"
            ),
        ));
    }
    Ok(out)
}

/// The content of `path` (no decompression).
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io(format!("reading {}", path.display()), e))
}
