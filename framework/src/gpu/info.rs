//! What computed a run, for results.json (`compute`): the device, the GPU, the convolutions'
//! path and precision.

use candle_core::Device;
use serde::{Deserialize, Serialize};

use super::precision::{conv_path, precision, ConvPath, Precision};

/// The `compute` block of results.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComputeInfo {
    /// `cpu` or `cuda:N`.
    pub device: String,
    /// The GPU's name and compute capability, e.g. `NVIDIA H200 (sm_90)`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu: Option<String>,
    /// The CUDA version the driver supports, e.g. `13.0`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver_cuda: Option<String>,
    /// How the f32 convolutions round: `fp32` or `tf32` on a GPU, always `fp32` on the CPU
    /// (`--precision tf32` is refused there). None only in files written before this existed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub precision: Option<Precision>,
    /// Which code computed the convolutions: `cpu (CAFE_CONV=auto)`, `cudnn 9.27.0`, `candle`.
    pub convolutions: String,
}

/// The `compute` block of a run on `device`, as the process is set up now.
pub fn compute_info(device: &Device) -> ComputeInfo {
    match device {
        Device::Cuda(_) => {
            let path = conv_path();
            let convolutions = match path {
                ConvPath::Cudnn => format!("cudnn {}", cudnn_version().unwrap_or_else(|| "?".into())),
                ConvPath::Candle => "candle".into(),
            };
            let (gpu, driver_cuda, ordinal) = gpu_description(device);
            ComputeInfo {
                device: format!("cuda:{ordinal}"),
                gpu,
                driver_cuda,
                precision: Some(precision()),
                convolutions,
            }
        }
        _ => ComputeInfo {
            device: if device.is_cpu() {
                "cpu".into()
            } else {
                format!("{:?}", device.location())
            },
            gpu: None,
            driver_cuda: None,
            precision: Some(Precision::Fp32),
            convolutions: format!(
                "cpu ({}={})",
                crate::nn::conv_algorithm::ENV_VAR,
                crate::nn::conv_algorithm::current_name()
            ),
        },
    }
}

/// The version of the cuDNN library loaded (cuDNN 9 encodes it as major * 10000 + minor * 100
/// + patch).
#[cfg(feature = "cudnn")]
fn cudnn_version() -> Option<String> {
    let v = cudarc::cudnn::result::get_version();
    Some(format!("{}.{}.{}", v / 10000, v / 100 % 100, v % 100))
}

#[cfg(not(feature = "cudnn"))]
fn cudnn_version() -> Option<String> {
    None
}

/// (name and compute capability, driver's CUDA version, ordinal) of a CUDA device.
#[cfg(feature = "cuda")]
fn gpu_description(device: &Device) -> (Option<String>, Option<String>, usize) {
    let Device::Cuda(dev) = device else {
        return (None, None, 0);
    };
    let ctx = dev.cuda_stream().context().clone();
    let name = ctx.name().ok();
    let cc = ctx.compute_capability().ok();
    let gpu = name.map(|n| match cc {
        Some((major, minor)) => format!("{n} (sm_{major}{minor})"),
        None => n,
    });
    let mut v: std::ffi::c_int = 0;
    // SAFETY: writes one int.
    let driver = unsafe { cudarc::driver::sys::cuDriverGetVersion(&mut v) }
        .result()
        .ok()
        .map(|()| format!("{}.{}", v / 1000, v % 1000 / 10));
    (gpu, driver, ctx.ordinal())
}

#[cfg(not(feature = "cuda"))]
fn gpu_description(_: &Device) -> (Option<String>, Option<String>, usize) {
    (None, None, 0)
}
