//! The GPU's memory pool as candle uses it: cudarc allocates every tensor with
//! `cuMemAllocAsync` from the device's current memory pool (cudarc 0.19.10
//! `CudaStream::alloc`, when the device supports pools, as every GPU since Pascal does).
//!
//! - By default that pool gives freed memory back to the driver at every synchronisation
//!   (`CU_MEMPOOL_ATTR_RELEASE_THRESHOLD` 0), so a training step re-maps the memory its
//!   previous step freed. [`keep_freed_memory`] raises the threshold to "never", the GPU
//!   counterpart of [`crate::memory::keep_freed_memory_for_reuse`] and of what PyTorch's
//!   caching allocator does (it keeps freed blocks until `torch.cuda.empty_cache()`).
//! - [`PoolStats`] reads the pool's high-water marks: bytes in tensors at their peak
//!   (`USED_MEM_HIGH`, the counterpart of `torch.cuda.max_memory_allocated`) and bytes the pool
//!   held from the driver (`RESERVED_MEM_HIGH`, of `torch.cuda.max_memory_reserved`). cuBLAS's
//!   and cuDNN's own buffers and the CUDA context are outside the pool, as PyTorch's context
//!   and library workspaces are outside its counters.

use candle_core::Device;
use serde::Serialize;

use crate::Result;

/// The pool's counters in MiB.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PoolStats {
    /// Bytes in live allocations now.
    pub used_mib: f64,
    /// Peak of `used_mib` since the last [`reset_peak`].
    pub used_high_mib: f64,
    /// Peak of what the pool held from the driver since the last [`reset_peak`].
    pub reserved_high_mib: f64,
}

#[cfg(feature = "cuda")]
mod imp {
    use cudarc::driver::result::{device, mem_pool};
    use cudarc::driver::sys::{CUmemPool_attribute, CUmemoryPool};

    use super::*;
    use crate::Error;

    fn gpu_err(what: &str, e: impl std::fmt::Display) -> Error {
        Error::Other(format!("GPU memory pool: {what}: {e}"))
    }

    /// The current pool of `device`'s GPU, or None on the CPU.
    fn pool(device: &Device) -> Result<Option<CUmemoryPool>> {
        let Device::Cuda(dev) = device else {
            return Ok(None);
        };
        let ctx = dev.cuda_stream().context().clone();
        ctx.bind_to_thread().map_err(|e| gpu_err("bind context", e))?;
        // SAFETY: the device handle comes from a live context.
        let pool = unsafe { device::get_mem_pool(ctx.cu_device()) }.map_err(|e| gpu_err("get pool", e))?;
        Ok(Some(pool))
    }

    fn get(pool: CUmemoryPool, attr: CUmemPool_attribute) -> Result<u64> {
        let mut v: u64 = 0;
        // SAFETY: these attributes are `cuuint64_t` (CUDA driver API, cuMemPoolGetAttribute).
        unsafe { mem_pool::get_attribute(pool, attr, (&mut v as *mut u64).cast()) }
            .map_err(|e| gpu_err("read attribute", e))?;
        Ok(v)
    }

    fn set(pool: CUmemoryPool, attr: CUmemPool_attribute, mut v: u64) -> Result<()> {
        // SAFETY: as in `get`; the threshold takes any value, the high marks only 0 (a reset).
        unsafe { mem_pool::set_attribute(pool, attr, (&mut v as *mut u64).cast()) }
            .map_err(|e| gpu_err("set attribute", e))
    }

    pub fn keep_freed_memory(device: &Device) -> Result<()> {
        if let Some(p) = pool(device)? {
            set(p, CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD, u64::MAX)?;
        }
        Ok(())
    }

    pub fn reset_peak(device: &Device) -> Result<()> {
        if let Some(p) = pool(device)? {
            set(p, CUmemPool_attribute::CU_MEMPOOL_ATTR_USED_MEM_HIGH, 0)?;
            set(p, CUmemPool_attribute::CU_MEMPOOL_ATTR_RESERVED_MEM_HIGH, 0)?;
        }
        Ok(())
    }

    pub fn stats(device: &Device) -> Result<Option<PoolStats>> {
        let Some(p) = pool(device)? else {
            return Ok(None);
        };
        let mib = |b: u64| (b as f64 / (1u64 << 20) as f64 * 10.0).round() / 10.0;
        Ok(Some(PoolStats {
            used_mib: mib(get(p, CUmemPool_attribute::CU_MEMPOOL_ATTR_USED_MEM_CURRENT)?),
            used_high_mib: mib(get(p, CUmemPool_attribute::CU_MEMPOOL_ATTR_USED_MEM_HIGH)?),
            reserved_high_mib: mib(get(p, CUmemPool_attribute::CU_MEMPOOL_ATTR_RESERVED_MEM_HIGH)?),
        }))
    }
}

#[cfg(not(feature = "cuda"))]
mod imp {
    use super::*;

    pub fn keep_freed_memory(_: &Device) -> Result<()> {
        Ok(())
    }

    pub fn reset_peak(_: &Device) -> Result<()> {
        Ok(())
    }

    pub fn stats(_: &Device) -> Result<Option<PoolStats>> {
        Ok(None)
    }
}

/// Keeps memory freed on `device`'s GPU in its pool for reuse (no-op on the CPU). Called for
/// every CUDA device a run opens ([`crate::run::open_device`]).
pub fn keep_freed_memory(device: &Device) -> Result<()> {
    imp::keep_freed_memory(device)
}

/// Starts the pool's high-water marks again from what is in use now (no-op on the CPU).
pub fn reset_peak(device: &Device) -> Result<()> {
    imp::reset_peak(device)
}

/// The pool's counters, None on the CPU. Synchronise first to count finished work only.
pub fn stats(device: &Device) -> Result<Option<PoolStats>> {
    imp::stats(device)
}
