//! Synthetic sets between Rust and numpy: a cafe-lab set file read into numpy arrays that own
//! the values read (no second copy; `torch.from_numpy` shares them in turn), and numpy arrays
//! written back as a set file in cafe-lab's format (`cafe_framework::synthetic`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use cafe_framework::synthetic::{class_major_labels, SyntheticSet};
use cafe_framework::ImageShape;
use candle_core::{Device, Tensor, Var};
use numpy::ndarray::{ArrayD, IxDyn};
use numpy::{PyArrayDyn, PyReadonlyArray1, PyReadonlyArray4, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::errors::{py_result, CafeLabError};

fn array<'py, T: numpy::Element>(
    py: Python<'py>,
    values: Vec<T>,
    dims: &[usize],
) -> PyResult<Bound<'py, PyArrayDyn<T>>> {
    let a = ArrayD::from_shape_vec(IxDyn(dims), values)
        .map_err(|e| CafeLabError::new_err(format!("array of shape {dims:?}: {e}")))?;
    Ok(PyArrayDyn::from_owned_array(py, a))
}

fn candle(e: candle_core::Error) -> PyErr {
    CafeLabError::new_err(e.to_string())
}

/// Reads the set file at `path` into a dict: `images` (f32 NCHW), `labels` (i64), `learned`
/// (name -> f32 array: `lr`, `label_logits`, ...), `mean`, `std`, `ipc`, `classes`, `metadata`.
#[pyfunction]
pub fn load_set<'py>(py: Python<'py>, path: PathBuf) -> PyResult<Bound<'py, PyDict>> {
    let syn = py.detach(|| SyntheticSet::load(&path, &Device::Cpu));
    let syn = py_result(syn)?;
    let out = PyDict::new(py);
    let images = syn
        .images_detached()
        .flatten_all()
        .and_then(|t| t.to_vec1::<f32>())
        .map_err(candle)?;
    out.set_item("images", array(py, images, syn.images.dims())?)?;
    let labels: Vec<i64> = syn
        .labels
        .to_vec1::<u32>()
        .map_err(candle)?
        .into_iter()
        .map(i64::from)
        .collect();
    let n = labels.len();
    out.set_item("labels", array(py, labels, &[n])?)?;
    let learned = PyDict::new(py);
    for l in &syn.learned {
        let t = l.var.as_tensor();
        let values = t.flatten_all().and_then(|t| t.to_vec1::<f32>()).map_err(candle)?;
        learned.set_item(&l.name, array(py, values, t.dims())?)?;
    }
    out.set_item("learned", learned)?;
    out.set_item("mean", syn.mean.clone())?;
    out.set_item("std", syn.std.clone())?;
    out.set_item("ipc", syn.ipc)?;
    out.set_item("classes", syn.classes)?;
    out.set_item("metadata", syn.metadata.clone().into_iter().collect::<BTreeMap<_, _>>())?;
    Ok(out)
}

/// Writes images (f32 NCHW, class-major), labels and learned extras as a cafe-lab set file.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
pub fn save_set(
    py: Python<'_>,
    path: PathBuf,
    images: PyReadonlyArray4<'_, f32>,
    labels: PyReadonlyArray1<'_, i64>,
    learned: BTreeMap<String, PyReadonlyArrayDyn<'_, f32>>,
    mean: Vec<f32>,
    std: Vec<f32>,
    metadata: BTreeMap<String, String>,
) -> PyResult<()> {
    let dims = images.shape().to_vec();
    let values = images.as_array().iter().copied().collect::<Vec<f32>>();
    let labels: Vec<i64> = labels.as_array().iter().copied().collect();
    let learned: Vec<(String, Vec<usize>, Vec<f32>)> = learned
        .into_iter()
        .map(|(k, v)| (k, v.shape().to_vec(), v.as_array().iter().copied().collect()))
        .collect();
    let n = dims[0];
    let classes = labels.iter().max().map_or(0, |m| *m as usize + 1);
    if labels.len() != n || classes == 0 || n % classes != 0 {
        return Err(pyo3::exceptions::PyValueError::new_err(format!(
            "{} labels for {n} images in {classes} classes: a set file holds the same number of images per class",
            labels.len()
        )));
    }
    let ipc = n / classes;
    let expected: Vec<i64> = (0..classes as i64).flat_map(|c| std::iter::repeat_n(c, ipc)).collect();
    if labels != expected {
        return Err(pyo3::exceptions::PyValueError::new_err(
            "labels must be class-major (class c owns rows c*ipc..(c+1)*ipc) to be saved as a cafe-lab set",
        ));
    }
    py.detach(move || -> cafe_framework::Result<()> {
        let device = Device::Cpu;
        let mut syn = SyntheticSet {
            images: Var::from_tensor(&Tensor::from_vec(values, dims.clone(), &device)?)?,
            labels: class_major_labels(classes, ipc, &device)?,
            learned: Vec::new(),
            ipc,
            classes,
            shape: ImageShape::new(dims[1], dims[2], dims[3]),
            mean,
            std,
            metadata,
        };
        for (name, shape, values) in learned {
            let t = Tensor::from_vec(values, shape, &device)?;
            syn.add_learned(&name, &t)?;
        }
        syn.save(&path)
    })
    .map_err(|e| crate::errors::to_py(&e))
}
