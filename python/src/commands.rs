//! The commands Python calls, each the framework's own (`run_condense`, `resume_condense`,
//! `run_evaluate`, `run_evaluate_pt`, `run_evaluate_foreign`): settings arrive as JSON (the keys
//! of config.json) plus `--set` strings, results leave as results.json's JSON text, which the
//! Python layer parses.

use std::path::PathBuf;

use cafe_framework::config::{ConfigBuilder, RunConfig};
use cafe_framework::metrics::Storage;
use cafe_framework::pt::{looks_like_torch_file, PtSources};
use cafe_framework::run::{
    evaluation_base, resolve, resume_condense, run_condense, run_evaluate, run_evaluate_foreign, run_evaluate_pt,
    ForeignLabels, ForeignSet, ImportOptions, Results, RunOptions,
};
use numpy::{PyReadonlyArray1, PyReadonlyArray2, PyReadonlyArray4, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::errors::py_result;
use crate::watch::run_watched;

/// The settings: `base`, then `settings` (a JSON object of config.json's keys), then each
/// `--set` assignment.
fn settings_over(mut base: ConfigBuilder, settings: &str, set: &[String]) -> PyResult<ConfigBuilder> {
    let json: serde_json::Value =
        serde_json::from_str(settings).map_err(|e| PyValueError::new_err(format!("settings are not JSON: {e}")))?;
    base.merge_from("the Python arguments", &json);
    for s in set {
        py_result(base.set(s).map(|_| ()))?;
    }
    Ok(base)
}

/// [`settings_over`], built and checked.
fn config_over(base: ConfigBuilder, settings: &str, set: &[String]) -> PyResult<RunConfig> {
    py_result(settings_over(base, settings, set)?.build())
}

fn options(quiet: bool, force: bool, interrupt: &'static std::sync::atomic::AtomicBool) -> RunOptions {
    RunOptions {
        quiet,
        force,
        interrupt: Some(interrupt),
        comm: cafe_framework::dist::solo(),
    }
}

fn json(results: &Results) -> PyResult<String> {
    serde_json::to_string(results).map_err(|e| crate::errors::CafeLabError::new_err(e.to_string()))
}

/// Condenses (or resumes the run in `resume`); returns results.json's text and the run folder.
#[pyfunction]
#[pyo3(signature = (settings, set, resume, force, quiet, progress))]
pub fn condense(
    py: Python<'_>,
    settings: &str,
    set: Vec<String>,
    resume: Option<PathBuf>,
    force: bool,
    quiet: bool,
    progress: Option<Py<PyAny>>,
) -> PyResult<(String, PathBuf)> {
    let (results, out) = match resume {
        Some(dir) => {
            let out = dir.clone();
            let r = run_watched(py, progress, move |flag| {
                resume_condense(&dir, options(quiet, true, flag))
            })?;
            (r, out)
        }
        None => {
            let config = config_over(ConfigBuilder::default(), settings, &set)?;
            let out = py_result(resolve(&config))?.out;
            let r = run_watched(py, progress, move |flag| {
                run_condense(&config, options(quiet, force, flag))
            })?;
            (r, out)
        }
    };
    Ok((json(&results)?, out))
}

/// What a file or arrays cannot say, from Python's keyword arguments.
fn import_options(
    raw_pixels: Option<bool>,
    factor: Option<usize>,
    lr: Option<f64>,
    hard_labels: bool,
) -> ImportOptions {
    ImportOptions {
        raw_pixels,
        factor,
        lr,
        hard_labels,
    }
}

/// Evaluates a set file: cafe-lab's safetensors (its own settings under `settings`) or another
/// tool's `.pt`. Returns results.json's text.
#[pyfunction]
#[pyo3(signature = (path, settings, set, labels_file, experiment, raw_pixels, factor, lr, hard_labels, force, quiet, progress))]
#[allow(clippy::too_many_arguments)]
pub fn evaluate_file(
    py: Python<'_>,
    path: PathBuf,
    settings: &str,
    set: Vec<String>,
    labels_file: Option<PathBuf>,
    experiment: Option<usize>,
    raw_pixels: Option<bool>,
    factor: Option<usize>,
    lr: Option<f64>,
    hard_labels: bool,
    force: bool,
    quiet: bool,
    progress: Option<Py<PyAny>>,
) -> PyResult<String> {
    let results = if looks_like_torch_file(&path) {
        let config = settings_over(ConfigBuilder::default(), settings, &set)?;
        let import = import_options(raw_pixels, factor, lr, hard_labels);
        let sources = PtSources {
            labels: labels_file,
            experiment,
        };
        run_watched(py, progress, move |flag| {
            run_evaluate_pt(&config, &path, &sources, &import, options(quiet, force, flag)).map(|e| e.results)
        })?
    } else {
        if labels_file.is_some() || experiment.is_some() || raw_pixels.is_some() || factor.is_some() || lr.is_some() {
            return Err(PyValueError::new_err(format!(
                "labels_file, experiment, raw_pixels, factor and lr describe a .pt file; {} is a cafe-lab set, \
                 whose file says all of that",
                path.display()
            )));
        }
        let (base, note) = py_result(evaluation_base(&path))?;
        if let (Some(note), false) = (note, quiet) {
            eprintln!("note: {note}");
        }
        let config = config_over(base, settings, &set)?;
        run_watched(py, progress, move |flag| {
            run_evaluate(&config, &path, options(quiet, force, flag))
        })?
    };
    json(&results)
}

/// Evaluates images (f32 NCHW) with hard labels (i64 `[N]`), soft labels (f32 `[N, classes]`)
/// or neither (class-major order). Returns results.json's text.
#[pyfunction]
#[pyo3(signature = (images, hard, soft, settings, set, raw_pixels, factor, lr, hard_labels, force, quiet, progress))]
#[allow(clippy::too_many_arguments)]
pub fn evaluate_arrays(
    py: Python<'_>,
    images: PyReadonlyArray4<'_, f32>,
    hard: Option<PyReadonlyArray1<'_, i64>>,
    soft: Option<PyReadonlyArray2<'_, f32>>,
    settings: &str,
    set: Vec<String>,
    raw_pixels: Option<bool>,
    factor: Option<usize>,
    lr: Option<f64>,
    hard_labels: bool,
    force: bool,
    quiet: bool,
    progress: Option<Py<PyAny>>,
) -> PyResult<String> {
    let config = settings_over(ConfigBuilder::default(), settings, &set)?;
    // Refused before the images are copied: an unknown dataset or setting.
    py_result(config.build())?;
    let d = images.shape();
    let dims = [d[0], d[1], d[2], d[3]];
    let values: Vec<f32> = images.as_array().iter().copied().collect();
    let mut storage = Storage {
        images_bytes: (values.len() * 4) as u64,
        ..Storage::default()
    };
    let labels = match (hard, soft) {
        (Some(_), Some(_)) => return Err(PyValueError::new_err("give hard labels or soft labels, not both")),
        (Some(h), None) => {
            storage.labels_bytes = (h.as_array().len() * 8) as u64;
            ForeignLabels::Hard(h.as_array().iter().copied().collect())
        }
        (None, Some(s)) => {
            storage.labels_bytes = (s.as_array().len() * 4) as u64;
            ForeignLabels::Soft {
                classes: s.shape()[1],
                values: s.as_array().iter().copied().collect(),
            }
        }
        (None, None) => ForeignLabels::ClassMajor,
    };
    if lr.is_some() {
        storage.extras_bytes.insert("lr".into(), 4);
    }
    storage.total_bytes = storage.images_bytes + storage.labels_bytes + storage.extras_bytes.values().sum::<u64>();
    let set = ForeignSet {
        images: values,
        dims,
        labels,
        lr: None,
        source: "arrays".into(),
        layout: None,
        layout_raw: false,
        storage,
        notes: Vec::new(),
    };
    let import = import_options(raw_pixels, factor, lr, hard_labels);
    let results = run_watched(py, progress, move |flag| {
        run_evaluate_foreign(&config, set, &import, options(quiet, force, flag)).map(|e| e.results)
    })?;
    json(&results)
}
