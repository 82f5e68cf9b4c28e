//! cafe-lab's tensor files: one reader and one writer of the safetensors format for
//! checkpoints, synthetic sets, expert trajectories and teachers (f32 and u32 tensors, string
//! metadata).
//!
//! Written by hand rather than through the `safetensors` crate, which checks offsets, shape
//! overflow and the 100 MB header cap but (0.4) needs the whole file in memory even to read a
//! header, keeps the last of two tensors with one name, orders metadata by a `HashMap` (so two
//! processes could write one content as two byte strings) and reports "InvalidHeaderDeserialization"
//! without saying what was wrong. Here:
//! - [`TensorWriter`] writes a sorted header, so the same content gives the same bytes;
//! - [`TensorFile::open`] reads the header alone from the file and checks it against the file's
//!   size: length within the file and under 100 MB, UTF-8, JSON of the expected shape only (no
//!   nesting beyond it), no duplicate tensor or metadata key, known dtypes, at most
//!   [`MAX_RANK`] dimensions, element counts that do not overflow and match each byte range,
//!   ranges inside the data section that tile it without gap or overlap. Then a tensor's buffer
//!   is never larger than the file, and reading a tensor touches only its own bytes.
//!
//! Every error names the file and what it should have been ([`FileKind`]), so a broken
//! synthetic set is called a synthetic set.

mod dtype;
mod header;
mod read;
mod write;

use std::path::Path;

pub use dtype::Dtype;
pub use header::{Header, TensorInfo, MAX_HEADER_LEN, MAX_RANK};
pub use read::TensorFile;
pub use write::TensorWriter;

use crate::Error;

/// What a tensor file is meant to be: named in its errors, which say how to get a good one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Checkpoint,
    SyntheticSet,
    ExpertTrajectory,
    Teacher,
}

impl FileKind {
    /// The kind in words ("synthetic set").
    pub fn describe(self) -> &'static str {
        match self {
            FileKind::Checkpoint => "checkpoint",
            FileKind::SyntheticSet => "synthetic set",
            FileKind::ExpertTrajectory => "expert trajectory",
            FileKind::Teacher => "teacher",
        }
    }

    /// The error for a `path` that is not a readable file of this kind.
    pub fn corrupt(self, path: &Path, message: impl Into<String>) -> Error {
        let (path, message) = (path.to_path_buf(), message.into());
        match self {
            FileKind::Checkpoint => Error::CheckpointCorrupt { path, message },
            FileKind::SyntheticSet => Error::SyntheticCorrupt { path, message },
            FileKind::ExpertTrajectory => Error::ExpertCorrupt { path, message },
            FileKind::Teacher => Error::TeacherCorrupt { path, message },
        }
    }
}
