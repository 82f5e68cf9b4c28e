//! Plumbing shared by the CPU custom ops of this module: the element types they run on and
//! the dispatch from candle's type-erased storages to typed slices.
//!
//! Each op implements a `KernelN` (one generic `run` over f32 or f64 slices) and calls `runN`
//! from its `cpu_fwd`. Operands are made contiguous before an op is applied, so a kernel
//! always sees plain slices in row-major order.

use candle_core::{CpuStorage, Layout};
use rayon::prelude::*;

use crate::Error;

/// The element types the kernels run on (f32 and f64). Kernels that need arithmetic beyond
/// sums compute in f64 and convert back, which also makes their f32 reductions accurate.
pub(crate) trait Elem:
    Copy
    + Send
    + Sync
    + PartialOrd
    + std::ops::AddAssign
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + Into<f64>
    + 'static
{
    const ZERO: Self;
    const ONE: Self;
    fn from_f64(v: f64) -> Self;
    /// 1 or 0: multiplying by it selects without a branch, which vectorises.
    fn from_bool(b: bool) -> Self;
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
    fn from_bool(b: bool) -> Self {
        b as u8 as f32
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
    fn from_bool(b: bool) -> Self {
        b as u8 as f64
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
pub(crate) fn typed<'a, T: Elem>(op: &str, s: &'a CpuStorage, l: &Layout) -> candle_core::Result<&'a [T]> {
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

/// Elements per rayon task of an elementwise kernel: large enough to amortise scheduling,
/// small enough to balance two threads.
pub(crate) const ELEMENTWISE_CHUNK: usize = 1 << 15;

/// `out[i] = f(a[i], b[i])` in parallel chunks. A plain loop per chunk, so that the compiler
/// vectorises `f` (rayon's `map().collect()` measured 3x slower here).
pub(crate) fn zip_map<T: Elem>(a: &[T], b: &[T], f: impl Fn(T, T) -> T + Sync + Send) -> Vec<T> {
    let mut out = vec![T::ZERO; a.len()];
    out.par_chunks_mut(ELEMENTWISE_CHUNK)
        .zip(a.par_chunks(ELEMENTWISE_CHUNK).zip(b.par_chunks(ELEMENTWISE_CHUNK)))
        .for_each(|(o, (a, b))| {
            for ((o, &a), &b) in o.iter_mut().zip(a).zip(b) {
                *o = f(a, b);
            }
        });
    out
}

/// `sum f(a[i], b[i])` in f64 with eight independent accumulators: one running sum would wait
/// on the latency of every addition; eight let the additions overlap and vectorise.
#[inline]
pub(crate) fn sum2<A: Elem, B: Elem>(a: &[A], b: &[B], f: impl Fn(f64, f64) -> f64) -> f64 {
    const LANES: usize = 8;
    let mut acc = [0.0_f64; LANES];
    let (a_main, a_tail) = a.split_at(a.len() - a.len() % LANES);
    let b_main = &b[..a_main.len()];
    for (ca, cb) in a_main.chunks_exact(LANES).zip(b_main.chunks_exact(LANES)) {
        for k in 0..LANES {
            acc[k] += f(ca[k].into(), cb[k].into());
        }
    }
    let tail: f64 = a_tail
        .iter()
        .zip(&b[a_main.len()..])
        .map(|(&x, &y)| f(x.into(), y.into()))
        .sum();
    acc.iter().sum::<f64>() + tail
}
