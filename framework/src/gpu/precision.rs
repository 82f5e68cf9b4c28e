//! The arithmetic of f32 convolutions on a GPU, and which implementation runs them.
//!
//! [`Precision`] is a run setting (`--precision`, `precision` in the configuration) applied
//! process-wide when a run is resolved: every convolution of the process follows it, on every
//! thread, because a network's convolutions must not change arithmetic halfway through a run.
//! Matrix products (the classifier) stay FP32 in both modes, as in PyTorch, whose
//! `torch.backends.cuda.matmul.allow_tf32` defaults to false (ATen `Context.h` lines 525-528 in
//! the torch 2.15.0 wheel: `float32_matmul_precision = HIGHEST`) while cuDNN convolutions may
//! use TF32 by default (`allow_tf32_cudnn = true`, line 530 of the same file; PyTorch's notes,
//! "CUDA semantics", section TensorFloat-32,
//! <https://docs.pytorch.org/docs/stable/notes/cuda.html>).

use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// How f32 convolutions may round on a GPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// IEEE FP32 multiply-adds (cuDNN `CUDNN_FMA_MATH`): the CPU's arithmetic up to
    /// summation order. cafe-lab's default.
    #[default]
    Fp32,
    /// TF32 tensor cores allowed (cuDNN `CUDNN_DEFAULT_MATH`): inputs rounded to a 10-bit
    /// mantissa, FP32 accumulation. PyTorch's default for cuDNN convolutions.
    Tf32,
}

impl Precision {
    pub const NAMES: [&'static str; 2] = ["fp32", "tf32"];

    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Tf32 => "tf32",
        }
    }

    /// For `skip_serializing_if`: the default is left out of config.json, so that files of
    /// runs made before this setting existed repeat byte for byte.
    pub fn is_fp32(&self) -> bool {
        *self == Precision::Fp32
    }
}

impl FromStr for Precision {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "fp32" | "f32" | "float32" => Ok(Precision::Fp32),
            "tf32" => Ok(Precision::Tf32),
            _ => Err(Error::invalid(
                "precision",
                s,
                format!("must be one of {}", Precision::NAMES.join(", ")),
            )),
        }
    }
}

static TF32: AtomicBool = AtomicBool::new(false);

/// Sets the precision of every later convolution of the process.
pub fn set_precision(p: Precision) {
    TF32.store(p == Precision::Tf32, Ordering::Relaxed);
}

/// The precision convolutions use now.
pub fn precision() -> Precision {
    if TF32.load(Ordering::Relaxed) {
        Precision::Tf32
    } else {
        Precision::Fp32
    }
}

/// The environment variable that picks the convolution path on a GPU.
pub const CONV_PATH_ENV: &str = "CAFE_CUDA_CONV";

/// Which implementation computes convolutions on a GPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConvPath {
    /// cafe-lab's convolution family on cuDNN (forward, backward-data, backward-filter).
    Cudnn,
    /// candle's own `conv2d` (im2col + cuBLAS) and its autograd (`conv_transpose2d` for the
    /// input gradient): the path of a build without the `cudnn` feature.
    Candle,
}

impl ConvPath {
    pub fn name(self) -> &'static str {
        match self {
            ConvPath::Cudnn => "cudnn",
            ConvPath::Candle => "candle",
        }
    }
}

/// The GPU convolution path: cuDNN in a build with the `cudnn` feature unless
/// `CAFE_CUDA_CONV=candle` (read once; for measuring candle's path with the same binary), else
/// candle's. An unknown value is refused at the first convolution with a warning and cuDNN is
/// used; programs check it at start-up with [`check_conv_path_env`].
pub fn conv_path() -> ConvPath {
    static PATH: OnceLock<ConvPath> = OnceLock::new();
    *PATH.get_or_init(|| {
        if !super::CUDNN_BUILT {
            return ConvPath::Candle;
        }
        match conv_path_from_env() {
            Ok(p) => p,
            Err(e) => {
                eprintln!("warning: {e}; using cudnn");
                ConvPath::Cudnn
            }
        }
    })
}

fn conv_path_from_env() -> Result<ConvPath> {
    match std::env::var(CONV_PATH_ENV) {
        Err(std::env::VarError::NotPresent) => Ok(ConvPath::Cudnn),
        Ok(v) => match v.trim().to_ascii_lowercase().as_str() {
            "" | "cudnn" => Ok(ConvPath::Cudnn),
            "candle" => Ok(ConvPath::Candle),
            _ => Err(Error::invalid(CONV_PATH_ENV, v, "must be cudnn or candle")),
        },
        Err(e) => Err(Error::invalid(CONV_PATH_ENV, format!("{e}"), "must be valid unicode")),
    }
}

/// `CAFE_CUDA_CONV` checked, for start-up: an error names the valid values.
pub fn check_conv_path_env() -> Result<()> {
    conv_path_from_env().map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_typos_are_refused() {
        for p in [Precision::Fp32, Precision::Tf32] {
            assert_eq!(p.name().parse::<Precision>().unwrap(), p);
            assert_eq!(serde_json::to_value(p).unwrap(), serde_json::json!(p.name()));
        }
        let e = "tf16".parse::<Precision>().unwrap_err().to_string();
        assert!(e.contains("fp32, tf32"), "{e}");
    }
}
