//! The framework's error type. Every message says what was wrong and how to fix it.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Candle(#[from] candle_core::Error),

    /// An I/O operation failed. The cause is part of the message and deliberately not
    /// `source()`: chain printers (anyhow's `{:#}`, the CLI's) would print it a second time.
    #[error("{context}: {cause}")]
    Io { context: String, cause: std::io::Error },

    /// A dataset file or directory is missing.
    #[error("dataset {dataset}: {message}")]
    DatasetMissing { dataset: String, message: String },

    /// A dataset file exists but is not what it should be (truncated, corrupt, wrong shape).
    #[error("dataset file {}: {message}", path.display())]
    DatasetCorrupt { path: PathBuf, message: String },

    /// A checkpoint that cannot be read back. It is written atomically, so it was damaged or
    /// changed after cafe-lab wrote it.
    #[error(
        "checkpoint {} is corrupt ({message}); the run cannot continue from it: delete it and \
         start over (the original command with --force), or resume a copy of the run whose \
         checkpoint is intact",
        path.display()
    )]
    CheckpointCorrupt { path: PathBuf, message: String },

    /// A synthetic set file (`evaluate --synthetic`) that is not one `condense` wrote.
    #[error(
        "synthetic set {} cannot be read ({message}): pass a synthetic.safetensors written by \
         `cafe-lab condense`",
        path.display()
    )]
    SyntheticCorrupt { path: PathBuf, message: String },

    /// An expert trajectory file that cannot be read. Each is written atomically when its
    /// expert finishes, so it was damaged afterwards; `cafe-lab experts` trains only the
    /// experts whose files are missing.
    #[error(
        "expert trajectory {} cannot be read ({message}): delete it and run the same          `cafe-lab experts` command again, which trains the missing experts only",
        path.display()
    )]
    ExpertCorrupt { path: PathBuf, message: String },

    /// A teacher file (`--kd-teacher`, `eval.kd_teacher`) that is not one a `--kd` run wrote.
    #[error(
        "teacher {} cannot be read ({message}): pass the teacher.safetensors written by a run          with --kd, or leave --kd-teacher out to train a teacher",
        path.display()
    )]
    TeacherCorrupt { path: PathBuf, message: String },

    /// A plugin name that is not registered; lists the valid names.
    #[error("unknown {kind} '{name}'; valid names: {}", valid.join(", "))]
    UnknownPlugin {
        kind: &'static str,
        name: String,
        valid: Vec<String>,
    },

    /// Two plugins of one kind registered under one name.
    #[error("{kind} '{name}' is registered twice; plugin names must be unique")]
    DuplicatePlugin { kind: &'static str, name: String },

    /// A setting that cannot work, found before any work starts.
    #[error("invalid setting {setting} = {value}: {reason}")]
    InvalidSetting {
        setting: String,
        value: String,
        reason: String,
    },

    /// A loss or the synthetic set stopped being finite.
    #[error("non-finite value: {0}")]
    NonFinite(String),

    /// The run was interrupted (Ctrl-C) after writing a checkpoint.
    #[error("interrupted before iteration {next_iteration}{}", match checkpoint {
        Some(p) => format!("; checkpoint written to {}; continue with --resume {}", p.display(),
            p.parent().map(|d| d.display().to_string()).unwrap_or_default()),
        None => String::new(),
    })]
    Interrupted {
        next_iteration: usize,
        checkpoint: Option<PathBuf>,
    },

    #[error("{0}")]
    Other(String),
}

impl Error {
    /// Shorthand for [`Error::InvalidSetting`].
    pub fn invalid(setting: impl Into<String>, value: impl ToString, reason: impl Into<String>) -> Self {
        Error::InvalidSetting {
            setting: setting.into(),
            value: value.to_string(),
            reason: reason.into(),
        }
    }

    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>, cause: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            cause,
        }
    }
}
