//! Plumbing shared by the CPU custom ops of this module: the element types they run on and
//! the dispatch from candle's type-erased storages to typed slices.
//!
//! Each op implements a `KernelN` (one generic `run` over f32 or f64 slices) and calls `runN`
//! from its `cpu_fwd`. Operands are made contiguous before an op is applied, so a kernel
//! always sees plain slices in row-major order.

use candle_core::{CpuStorage, Layout};

use crate::Error;

/// The element types the kernels run on (f32 and f64). Kernels that need arithmetic beyond
/// sums compute in f64 and convert back, which also makes their f32 reductions accurate.
pub(crate) trait Elem: Copy + Send + Sync + std::ops::AddAssign + Into<f64> + 'static {
    const ZERO: Self;
    const ONE: Self;
    fn from_f64(v: f64) -> Self;
    /// The slice of a storage of this type.
    fn slice(s: &CpuStorage) -> Option<&[Self]>;
    fn storage(v: Vec<Self>) -> CpuStorage;
}

impl Elem for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    fn slice(s: &CpuStorage) -> Option<&[Self]> {
        match s {
            CpuStorage::F32(v) => Some(v),
            _ => None,
        }
    }
    fn storage(v: Vec<Self>) -> CpuStorage {
        CpuStorage::F32(v)
    }
}

impl Elem for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    fn from_f64(v: f64) -> Self {
        v
    }
    fn slice(s: &CpuStorage) -> Option<&[Self]> {
        match s {
            CpuStorage::F64(v) => Some(v),
            _ => None,
        }
    }
    fn storage(v: Vec<Self>) -> CpuStorage {
        CpuStorage::F64(v)
    }
}

/// The contiguous data of one operand, typed.
fn typed<'a, T: Elem>(op: &str, s: &'a CpuStorage, l: &Layout) -> candle_core::Result<&'a [T]> {
    let data = T::slice(s)
        .ok_or_else(|| candle_core::Error::Msg(format!("{op}: operands must share one dtype, f32 or f64")))?;
    match l.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("{op}: operands must be contiguous"),
    }
}

/// A kernel of one operand.
pub(crate) trait Kernel1 {
    const NAME: &'static str;
    fn run<T: Elem>(&self, a: &[T]) -> candle_core::Result<Vec<T>>;
}

/// A kernel of two operands of one dtype.
pub(crate) trait Kernel2 {
    const NAME: &'static str;
    fn run<T: Elem>(&self, a: &[T], b: &[T]) -> candle_core::Result<Vec<T>>;
}

/// A kernel of three operands of one dtype.
pub(crate) trait Kernel3 {
    const NAME: &'static str;
    fn run<T: Elem>(&self, a: &[T], b: &[T], c: &[T]) -> candle_core::Result<Vec<T>>;
}

pub(crate) fn run1<K: Kernel1>(k: &K, s: &CpuStorage, l: &Layout) -> candle_core::Result<CpuStorage> {
    match s {
        CpuStorage::F32(_) => Ok(f32::storage(k.run(typed::<f32>(K::NAME, s, l)?)?)),
        CpuStorage::F64(_) => Ok(f64::storage(k.run(typed::<f64>(K::NAME, s, l)?)?)),
        _ => candle_core::bail!("{}: only f32 and f64 are supported", K::NAME),
    }
}

pub(crate) fn run2<K: Kernel2>(
    k: &K,
    s1: &CpuStorage,
    l1: &Layout,
    s2: &CpuStorage,
    l2: &Layout,
) -> candle_core::Result<CpuStorage> {
    match s1 {
        CpuStorage::F32(_) => Ok(f32::storage(
            k.run(typed::<f32>(K::NAME, s1, l1)?, typed(K::NAME, s2, l2)?)?,
        )),
        CpuStorage::F64(_) => Ok(f64::storage(
            k.run(typed::<f64>(K::NAME, s1, l1)?, typed(K::NAME, s2, l2)?)?,
        )),
        _ => candle_core::bail!("{}: only f32 and f64 are supported", K::NAME),
    }
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn run3<K: Kernel3>(
    k: &K,
    s1: &CpuStorage,
    l1: &Layout,
    s2: &CpuStorage,
    l2: &Layout,
    s3: &CpuStorage,
    l3: &Layout,
) -> candle_core::Result<CpuStorage> {
    let n = K::NAME;
    match s1 {
        CpuStorage::F32(_) => Ok(f32::storage(k.run(
            typed::<f32>(n, s1, l1)?,
            typed(n, s2, l2)?,
            typed(n, s3, l3)?,
        )?)),
        CpuStorage::F64(_) => Ok(f64::storage(k.run(
            typed::<f64>(n, s1, l1)?,
            typed(n, s2, l2)?,
            typed(n, s3, l3)?,
        )?)),
        _ => candle_core::bail!("{n}: only f32 and f64 are supported"),
    }
}

/// True when the fast CPU kernels apply to `t`; elsewhere the layers use candle's ops.
pub(crate) fn native(t: &candle_core::Tensor) -> bool {
    t.device().is_cpu() && matches!(t.dtype(), candle_core::DType::F32 | candle_core::DType::F64)
}

/// The ops' backward passes must return candle's error type.
pub(crate) fn to_candle(e: Error) -> candle_core::Error {
    match e {
        Error::Candle(e) => e,
        other => candle_core::Error::Msg(other.to_string()),
    }
}
