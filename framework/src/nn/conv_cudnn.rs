//! The convolution family of [`conv`](super::conv) on NVIDIA GPUs: cuDNN's forward,
//! backward-data and backward-filter calls (through cudarc 0.19.10's safe API,
//! `cudarc::cudnn::safe::{ConvForward, ConvBackwardData, ConvBackwardFilter}`) for the ops `A`,
//! `B` and `C`. Each op keeps its own backward, written with the other two, so the family stays
//! closed under differentiation on the GPU as on the CPU: DC's second-order gradients and MTT's
//! unrolled students differentiate through cuDNN calls and nothing else.
//!
//! cuDNN needs per shape: tensor, filter and convolution descriptors, an algorithm and a
//! workspace. All are cached per thread and device (the cuDNN handle is not thread-safe, and
//! candle runs each thread's kernels on its own per-thread stream): descriptors and algorithm by
//! the full geometry, batch, dtype, op and math type; one workspace per thread and device,
//! grown to the largest any plan asked for and reused, as PyTorch's caching allocator reuses
//! its workspace. The algorithm is cuDNN's heuristic first choice (the legacy
//! `cudnnGetConvolution*Algorithm_v7`, the one cudarc 0.19.10 wraps), never a timed search:
//! PyTorch too takes cuDNN's heuristic choice by default (`benchmark_cudnn = false`, ATen
//! `Context.h` line 523 in the torch 2.15.0 wheel), but through the cuDNN frontend's graph API
//! (libtorch_cuda's `generate_and_filter_plans`, `cudnn_frontend::OperationGraph_v8`), whose
//! engine may differ from the legacy API's for the same shape. Unmeasured: the device check's
//! benchmark part is where a difference would show.
//!
//! Math: FP32 is the default (`CUDNN_FMA_MATH`: no tensor-core rounding). With
//! [`Precision::Tf32`](crate::gpu::Precision) f32 convolutions may use TF32 tensor cores
//! (`CUDNN_DEFAULT_MATH`), which is what PyTorch does by default: its
//! `ConvolutionDescriptor::set` (ATen `cudnn/Descriptors.h` lines 204-215 in the torch 2.15.0
//! wheel) sets `CUDNN_DEFAULT_MATH` and switches to `CUDNN_FMA_MATH` only when `allow_tf32` is
//! false, and `allow_tf32_cudnn` defaults to true (`Context.h` line 530; at run time
//! `torch.backends.cudnn.allow_tf32` is True and `torch.backends.cudnn.conv.fp32_precision` is
//! "tf32"). f64 always runs in f64.

use std::cell::RefCell;
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::Arc;

use candle_core::backend::BackendStorage;
use candle_core::cuda::{CudaDType, DeviceId};
use candle_core::{CudaDevice, CudaStorage, DType, Layout};
use cudarc::cudnn::safe::{
    ConvBackwardData, ConvBackwardFilter, ConvDescriptor, ConvForward, Cudnn, CudnnDataType, FilterDescriptor,
    TensorDescriptor,
};
use cudarc::cudnn::sys::{
    cudnnConvolutionBwdDataAlgo_t, cudnnConvolutionBwdFilterAlgo_t, cudnnConvolutionFwdAlgo_t, cudnnConvolutionMode_t,
    cudnnMathType_t, cudnnTensorFormat_t,
};
use cudarc::driver::{CudaSlice, CudaView, DeviceRepr, ValidAsZeroBits};

use super::conv_geometry::Geometry;
use crate::gpu::Precision;

/// Which op of the family a plan computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Op {
    /// `A(x, w)`: cuDNN forward.
    Forward,
    /// `B(g, w)`: cuDNN backward-data.
    InputGrad,
    /// `C(g, x)`: cuDNN backward-filter.
    WeightGrad,
}

/// What a plan depends on: everything the descriptors and the algorithm are built from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct PlanKey {
    op: Op,
    geometry: Geometry,
    batch: usize,
    tf32: bool,
}

/// The algorithm cuDNN chose for one op.
#[derive(Debug, Clone, Copy)]
enum Algorithm {
    Forward(cudnnConvolutionFwdAlgo_t),
    InputGrad(cudnnConvolutionBwdDataAlgo_t),
    WeightGrad(cudnnConvolutionBwdFilterAlgo_t),
}

/// The descriptors of one convolution (`x` the input, `w` the kernel, `y` the output; the
/// gradient ops use the same three), its algorithm and the workspace bytes that needs.
struct Plan<T: CudnnDataType> {
    conv: ConvDescriptor<T>,
    x: TensorDescriptor<T>,
    w: FilterDescriptor<T>,
    y: TensorDescriptor<T>,
    algorithm: Algorithm,
    workspace: usize,
}

/// One thread's plans on one device, by element type.
#[derive(Default)]
struct Plans {
    f32: HashMap<PlanKey, Plan<f32>>,
    f64: HashMap<PlanKey, Plan<f64>>,
}

/// The element types the cuDNN path runs (f32, f64), and where each keeps its plans.
trait CudnnElem: CudnnDataType<Scalar = Self> + CudaDType + DeviceRepr + ValidAsZeroBits + Copy + 'static {
    const ONE: Self;
    const ZERO: Self;
    fn plans(plans: &mut Plans) -> &mut HashMap<PlanKey, Plan<Self>>;
}

impl CudnnElem for f32 {
    const ONE: Self = 1.0;
    const ZERO: Self = 0.0;
    fn plans(plans: &mut Plans) -> &mut HashMap<PlanKey, Plan<Self>> {
        &mut plans.f32
    }
}

impl CudnnElem for f64 {
    const ONE: Self = 1.0;
    const ZERO: Self = 0.0;
    fn plans(plans: &mut Plans) -> &mut HashMap<PlanKey, Plan<Self>> {
        &mut plans.f64
    }
}

/// One thread's cuDNN state on one device.
struct DeviceState {
    cudnn: Arc<Cudnn>,
    plans: Plans,
    workspace: Option<CudaSlice<u8>>,
}

impl Drop for DeviceState {
    fn drop(&mut self) {
        // The descriptors and the workspace go (host memory, and a stream-ordered free); the
        // handle is kept alive on purpose: this runs at thread exit, possibly after the CUDA
        // driver has begun shutting down at process exit, where cudnnDestroy could fail and
        // cudarc's Drop would panic. A thread that used the GPU and ended leaks one handle.
        self.plans = Plans::default();
        self.workspace = None;
        std::mem::forget(self.cudnn.clone());
    }
}

thread_local! {
    static STATES: RefCell<HashMap<DeviceId, DeviceState>> = RefCell::new(HashMap::new());
}

fn cudnn_err(what: &str, e: impl std::fmt::Display) -> candle_core::Error {
    candle_core::Error::Cuda(format!("cuDNN {what}: {e}").into())
}

fn i32_of(v: usize, what: &str) -> candle_core::Result<i32> {
    i32::try_from(v).map_err(|_| candle_core::Error::Msg(format!("conv2d on cuDNN: {what} {v} exceeds i32")))
}

impl<T: CudnnElem> Plan<T> {
    /// Descriptors, math type and cuDNN's heuristic choice of algorithm for `key`.
    fn new(cudnn: &Arc<Cudnn>, key: PlanKey) -> candle_core::Result<Self> {
        let g = key.geometry;
        let nchw = cudnnTensorFormat_t::CUDNN_TENSOR_NCHW;
        let (pad, stride) = (i32_of(g.padding, "padding")?, i32_of(g.stride, "stride")?);
        let mut conv = cudnn
            .create_conv2d::<T>(
                [pad, pad],
                [stride, stride],
                [1, 1],
                cudnnConvolutionMode_t::CUDNN_CROSS_CORRELATION,
            )
            .map_err(|e| cudnn_err("convolution descriptor", e))?;
        // FMA math for f32 unless TF32 is asked for (PyTorch's rule, see the module header);
        // f64 has no tensor-core mode to choose.
        let math = if T::DATA_TYPE == cudarc::cudnn::sys::cudnnDataType_t::CUDNN_DATA_FLOAT && !key.tf32 {
            cudnnMathType_t::CUDNN_FMA_MATH
        } else {
            cudnnMathType_t::CUDNN_DEFAULT_MATH
        };
        conv.set_math_type(math).map_err(|e| cudnn_err("math type", e))?;
        let n = i32_of(key.batch, "batch")?;
        let dims = |c: usize, h: usize, w: usize| -> candle_core::Result<[i32; 4]> {
            Ok([n, i32_of(c, "channels")?, i32_of(h, "height")?, i32_of(w, "width")?])
        };
        let x = cudnn
            .create_4d_tensor::<T>(nchw, dims(g.c, g.h, g.w)?)
            .map_err(|e| cudnn_err("input descriptor", e))?;
        let y = cudnn
            .create_4d_tensor::<T>(nchw, dims(g.o, g.out_h, g.out_w)?)
            .map_err(|e| cudnn_err("output descriptor", e))?;
        let k = i32_of(g.k, "kernel")?;
        let w = cudnn
            .create_4d_filter::<T>(nchw, [i32_of(g.o, "channels")?, i32_of(g.c, "channels")?, k, k])
            .map_err(|e| cudnn_err("filter descriptor", e))?;
        let (algorithm, workspace) = match key.op {
            Op::Forward => {
                let op = ConvForward {
                    conv: &conv,
                    x: &x,
                    w: &w,
                    y: &y,
                };
                let a = op.pick_algorithm().map_err(|e| cudnn_err("forward algorithm", e))?;
                (
                    Algorithm::Forward(a),
                    op.get_workspace_size(a).map_err(|e| cudnn_err("workspace", e))?,
                )
            }
            Op::InputGrad => {
                let op = ConvBackwardData {
                    conv: &conv,
                    dx: &x,
                    w: &w,
                    dy: &y,
                };
                let a = op
                    .pick_algorithm()
                    .map_err(|e| cudnn_err("backward-data algorithm", e))?;
                (
                    Algorithm::InputGrad(a),
                    op.get_workspace_size(a).map_err(|e| cudnn_err("workspace", e))?,
                )
            }
            Op::WeightGrad => {
                let op = ConvBackwardFilter {
                    conv: &conv,
                    x: &x,
                    dw: &w,
                    dy: &y,
                };
                let a = op
                    .pick_algorithm()
                    .map_err(|e| cudnn_err("backward-filter algorithm", e))?;
                (
                    Algorithm::WeightGrad(a),
                    op.get_workspace_size(a).map_err(|e| cudnn_err("workspace", e))?,
                )
            }
        };
        Ok(Self {
            conv,
            x,
            w,
            y,
            algorithm,
            workspace,
        })
    }
}

/// The contiguous data of one operand of type `T`.
fn view<'a, T: CudnnElem>(s: &'a CudaStorage, l: &Layout, what: &str) -> candle_core::Result<CudaView<'a, T>> {
    let (start, end) = l
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg(format!("conv2d on cuDNN: the {what} must be contiguous")))?;
    Ok(s.as_cuda_slice::<T>()?.slice(start..end))
}

/// Runs `op` of `geometry` on `batch` images: `a` and `b` are the op's operands in the order
/// [`conv`](super::conv) applies them (`A(x, w)`, `B(g, w)`, `C(g, x)`), the result has
/// `out_len` elements.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run(
    op: Op,
    geometry: Geometry,
    batch: usize,
    a: (&CudaStorage, &Layout),
    b: (&CudaStorage, &Layout),
    out_len: usize,
    precision: Precision,
) -> candle_core::Result<CudaStorage> {
    let key = PlanKey {
        op,
        geometry,
        batch,
        tf32: precision == Precision::Tf32,
    };
    match a.0.dtype() {
        DType::F32 => run_typed::<f32>(key, a, b, out_len),
        DType::F64 => run_typed::<f64>(key, a, b, out_len),
        other => candle_core::bail!("conv2d on cuDNN: {other:?} is not supported, only f32 and f64"),
    }
}

fn run_typed<T: CudnnElem>(
    key: PlanKey,
    a: (&CudaStorage, &Layout),
    b: (&CudaStorage, &Layout),
    out_len: usize,
) -> candle_core::Result<CudaStorage> {
    let dev: &CudaDevice = &a.0.device;
    if key.batch == 0 {
        // cuDNN refuses empty tensors: no images give an empty output or a zero weight gradient.
        return Ok(CudaStorage::wrap_cuda_slice(
            dev.alloc_zeros::<T>(out_len)?,
            dev.clone(),
        ));
    }
    let (a_view, b_view) = (
        view::<T>(a.0, a.1, "first operand")?,
        view::<T>(b.0, b.1, "second operand")?,
    );
    // SAFETY: every element is written by cuDNN (beta = 0 never reads the destination).
    let mut out = unsafe { dev.alloc::<T>(out_len) }?;
    STATES.with(|states| -> candle_core::Result<()> {
        let mut states = states.borrow_mut();
        let state = match states.entry(dev.id()) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => e.insert(DeviceState {
                cudnn: Cudnn::new(dev.cuda_stream()).map_err(|e| cudnn_err("handle", e))?,
                plans: Plans::default(),
                workspace: None,
            }),
        };
        let DeviceState {
            cudnn,
            plans,
            workspace,
        } = state;
        let plan = match T::plans(plans).entry(key) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => e.insert(Plan::new(cudnn, key)?),
        };
        if plan.workspace == 0 {
            return launch(plan, None, &a_view, &b_view, &mut out);
        }
        if workspace.as_ref().is_none_or(|w| w.len() < plan.workspace) {
            // Free the old one first: its bytes may be what the new one needs.
            *workspace = None;
            // SAFETY: scratch memory, written by cuDNN before it reads it.
            *workspace = Some(unsafe { dev.alloc::<u8>(plan.workspace) }?);
        }
        launch(plan, workspace.as_mut(), &a_view, &b_view, &mut out)
    })?;
    Ok(CudaStorage::wrap_cuda_slice(out, dev.clone()))
}

/// One cuDNN call. `a`, `b` are the op's operands (see [`run`]), `out` its result.
fn launch<T: CudnnElem>(
    plan: &Plan<T>,
    workspace: Option<&mut CudaSlice<u8>>,
    a: &CudaView<'_, T>,
    b: &CudaView<'_, T>,
    out: &mut CudaSlice<T>,
) -> candle_core::Result<()> {
    let scale = (T::ONE, T::ZERO);
    let Plan { conv, x, w, y, .. } = plan;
    // SAFETY: the descriptors were built from the geometry and batch these buffers were
    // checked against by the ops' shape checks (conv.rs `expect`), in the buffers' dtype, NCHW
    // contiguous; the workspace holds at least the bytes cuDNN asked for this algorithm.
    let result = unsafe {
        match plan.algorithm {
            Algorithm::Forward(algo) => ConvForward { conv, x, w, y }.launch(algo, workspace, scale, a, b, out),
            // B(g, w): dy = a, w = b, dx = out.
            Algorithm::InputGrad(algo) => {
                ConvBackwardData { conv, dx: x, w, dy: y }.launch(algo, workspace, scale, out, b, a)
            }
            // C(g, x): dy = a, x = b, dw = out.
            Algorithm::WeightGrad(algo) => {
                ConvBackwardFilter { conv, x, dw: w, dy: y }.launch(algo, workspace, scale, b, out, a)
            }
        }
    };
    result.map_err(|e| cudnn_err("convolution", e))
}
