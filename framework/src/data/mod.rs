//! Datasets: the in-memory image sets, the loaders of the canonical files, `--download`, and
//! the embedded default set `shapes` (DESIGN.md "Datasets").
//!
//! Everything is normalised once at load time, per channel: `x_norm = (x / 255 - mean) / std`,
//! or ZCA-whitened when asked (MTT's `--zca`, [`Zca`]), and kept as contiguous NCHW `f32`.

mod bounded;
pub(crate) mod cifar;
mod dataset;
pub mod download;
pub(crate) mod idx;
mod image_set;
mod kind;
mod load;
mod locate;
pub mod mat;
mod mnist;
pub(crate) mod normalise;
pub mod shapes;
pub(crate) mod svhn;
mod zca;

pub use dataset::Dataset;
pub use image_set::ImageSet;
pub use kind::DatasetKind;
pub use load::{dataset_names, load, load_announced, LoadOptions, DEFAULT_DATA_DIR};
pub use zca::{check_eps as check_zca_eps, deserialize_zca, Zca, ZCA_EPS};
