//! cafe-lab's errors as Python exceptions, with cafe-lab's own messages (which name the
//! setting or file, what was found and what would be right): a setting or input that cannot
//! work is a `ValueError`, a missing dataset or file a `FileNotFoundError`, other I/O an
//! `OSError`, a run stopped by Ctrl-C a `KeyboardInterrupt`, anything else a
//! `cafe_lab.CafeLabError` (a `RuntimeError`).

use cafe_framework::Error;
use pyo3::exceptions::{PyFileNotFoundError, PyKeyboardInterrupt, PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;

pyo3::create_exception!(
    cafe_lab,
    CafeLabError,
    PyRuntimeError,
    "An error inside cafe-lab that is neither a bad setting nor a missing file."
);

/// The Python exception for `e`.
pub fn to_py(e: &Error) -> PyErr {
    let message = e.to_string();
    match e {
        Error::InvalidSetting { .. }
        | Error::UnknownPlugin { .. }
        | Error::TorchFile { .. }
        | Error::SyntheticCorrupt { .. }
        | Error::DatasetCorrupt { .. }
        | Error::CheckpointCorrupt { .. }
        | Error::ExpertCorrupt { .. }
        | Error::TeacherCorrupt { .. }
        | Error::NonFinite(_) => PyValueError::new_err(message),
        Error::DatasetMissing { .. } => PyFileNotFoundError::new_err(message),
        Error::Io { cause, .. } if cause.kind() == std::io::ErrorKind::NotFound => {
            PyFileNotFoundError::new_err(message)
        }
        Error::Io { .. } => PyOSError::new_err(message),
        Error::Interrupted {
            checkpoint: Some(path), ..
        } => {
            let dir = path.parent().unwrap_or(std::path::Path::new("."));
            PyKeyboardInterrupt::new_err(format!(
                "{message} (from Python: cafe_lab.condense(resume={:?}))",
                dir.display().to_string()
            ))
        }
        Error::Interrupted { .. } | Error::EvaluationInterrupted => PyKeyboardInterrupt::new_err(message),
        _ => CafeLabError::new_err(message),
    }
}

/// `Result<T, cafe_framework::Error>` into `PyResult<T>`.
pub fn py_result<T>(r: cafe_framework::Result<T>) -> PyResult<T> {
    r.map_err(|e| to_py(&e))
}
