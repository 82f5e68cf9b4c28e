//! SVHN (cropped digits) from `train_32x32.mat` and `test_32x32.mat`: variable `X` of uint8
//! with MATLAB dimensions 32x32x3xN, i.e. `X(h, w, c, n)` column-major, and `y` (Nx1) with
//! labels 1..10 where 10 means the digit 0.

use std::path::{Path, PathBuf};

use super::locate::{corrupt, find_dir_with, Found};
use super::mat::{read_mat, MatArray, MatData};
use super::normalise::{tables, Normalisation};
use super::{Dataset, DatasetKind, ImageSet};
use crate::Result;

/// Train file then test file.
pub(crate) const FILES: [&str; 2] = ["train_32x32.mat", "test_32x32.mat"];

/// Searches `data_dir`, then `<data_dir>/svhn` and `<data_dir>/SVHN`.
pub(crate) fn find(data_dir: &Path) -> Found {
    let dirs = [data_dir.to_path_buf(), data_dir.join("svhn"), data_dir.join("SVHN")];
    find_dir_with(&dirs, &FILES, false)
}

/// How to get the files, for the "missing" error.
pub(crate) fn hint() -> String {
    format!(
        "pass --data-dir DIR containing {} (the cropped-digits format of SVHN), or run with \
         --download",
        FILES.join(" and ")
    )
}

fn take(arrays: &mut Vec<MatArray>, name: &str, path: &Path) -> Result<MatArray> {
    let at = arrays.iter().position(|a| a.name == name).ok_or_else(|| {
        corrupt(
            path,
            format!("no numeric variable '{name}' in the file (expected X and y)"),
        )
    })?;
    Ok(arrays.swap_remove(at))
}

/// The labels, with 10 turned into 0.
fn labels(y: &MatArray, path: &Path) -> Result<Vec<u32>> {
    let n = y.data.len();
    let is_vector = y.dims.iter().filter(|&&d| d != 1).count() <= 1;
    if !is_vector {
        return Err(corrupt(path, format!("y has dimensions {:?}, expected Nx1", y.dims)));
    }
    (0..n)
        .map(|i| {
            let v = y.data.get(i).unwrap_or(f64::NAN);
            if v.fract() != 0.0 || !(0.0..=10.0).contains(&v) {
                return Err(corrupt(
                    path,
                    format!("y({}) = {v} is not a digit label: expected 1..10 (10 meaning 0)", i + 1),
                ));
            }
            Ok(v as u32 % 10)
        })
        .collect()
}

fn load_split(path: &Path, norm: &Normalisation) -> Result<ImageSet> {
    split_from_arrays(read_mat(path, &["X", "y"])?, path, norm)
}

/// One split from the variables of its MAT-file at `path`.
pub(crate) fn split_from_arrays(mut arrays: Vec<MatArray>, path: &Path, norm: &Normalisation) -> Result<ImageSet> {
    let kind = DatasetKind::Svhn;
    let shape = kind.shape();
    let x = take(&mut arrays, "X", path)?;
    let y = take(&mut arrays, "y", path)?;
    let labels = labels(&y, path)?;
    let n = labels.len();
    // MATLAB drops trailing singleton dimensions: one image is 32x32x3.
    let dims_ok = match x.dims.as_slice() {
        [h, w, c, count] => [*h, *w, *c] == [32, 32, 3] && *count == n,
        [h, w, c] => [*h, *w, *c] == [32, 32, 3] && n == 1,
        _ => false,
    };
    if !dims_ok {
        return Err(corrupt(
            path,
            format!(
                "X has dimensions {:?}, expected [32, 32, 3, {n}] to match the {n} labels of y",
                x.dims
            ),
        ));
    }
    let (h, w, c) = (shape.height, shape.width, shape.channels);
    let tables = tables(&norm.mean, &norm.std);
    // Column-major X(row, col, ch, n) sits at row + h*col + h*w*ch + h*w*c*n; NCHW wants
    // n*c*h*w + ch*h*w + row*w + col. Each (n, ch) plane is a transpose.
    let mut images = vec![0.0f32; n * shape.numel()];
    for (plane_index, out) in images.chunks_exact_mut(h * w).enumerate() {
        let table = &tables[plane_index % c];
        let base = plane_index * h * w;
        for row in 0..h {
            for col in 0..w {
                let src = base + row + h * col;
                let byte = match &x.data {
                    MatData::U8(v) => v[src],
                    MatData::F64(v) => {
                        let f = v[src];
                        if f.fract() != 0.0 || !(0.0..=255.0).contains(&f) {
                            return Err(corrupt(path, format!("X holds {f}, expected 0..255")));
                        }
                        f as u8
                    }
                };
                out[row * w + col] = table[byte as usize];
            }
        }
    }
    Ok(ImageSet { images, labels, shape })
}

/// Loads the dataset from the resolved paths (train, test).
pub(crate) fn load(paths: &[PathBuf], norm: &Normalisation) -> Result<Dataset> {
    let [train, test] = paths else {
        return Err(crate::Error::Other(format!(
            "internal: expected 2 SVHN paths, got {}",
            paths.len()
        )));
    };
    let kind = DatasetKind::Svhn;
    Ok(Dataset {
        name: kind.name().to_string(),
        train: load_split(train, norm)?,
        test: load_split(test, norm)?,
        classes: kind.classes(),
        class_names: kind.class_names(),
        mean: norm.mean.clone(),
        std: norm.std.clone(),
        zca: None,
    })
}
