//! What a run does on an NVIDIA GPU beyond candle's defaults: the arithmetic of the f32
//! convolutions ([`Precision`], a run setting recorded in results.json), which convolution path
//! runs ([`ConvPath`]: cafe-lab's ops on cuDNN, or candle's own), and the device's memory pool
//! (kept for reuse, its peak read for benchmarks: [`memory`]). Everything here is inert on the
//! CPU and in builds without the `cuda` feature.

mod info;
pub mod memory;
mod precision;

pub use info::{compute_info, ComputeInfo};
pub use precision::{check_conv_path_env, conv_path, precision, set_precision, ConvPath, Precision, CONV_PATH_ENV};

/// Whether this binary computes convolutions with cuDNN on a GPU (the `cudnn` feature).
pub const CUDNN_BUILT: bool = cfg!(feature = "cudnn");

/// Whether this binary can use a GPU at all (the `cuda` feature).
pub const CUDA_BUILT: bool = cfg!(feature = "cuda");
