//! NCCL as the GPU data plane of a communicator (the `nccl` feature): [`NcclWorld`] wraps a
//! host communicator (MPI across processes, or [`super::Solo`]) and moves GPU tensors with
//! NCCL collectives on the device's stream, without a copy through the host; the host
//! communicator keeps carrying the small byte messages (agreements, loss terms, task results)
//! and, once, NCCL's unique id from rank 0 to every rank.
//!
//! The collectives: [`Communicator::all_gather_rows`] (what the engine's class sharding
//! gathers: each rank's gradient rows, in rank order; ranks may own different row counts, so
//! every rank pads to the largest count and one `ncclAllGather` moves them, the padding cut
//! away after), and on equal shapes [`NcclWorld::all_reduce_sum`] and
//! [`NcclWorld::broadcast`]. NCCL refuses two ranks on one GPU, so a machine with one GPU can
//! only check a world of size 1 (scripts/cuda/device_check.sh does).

use std::sync::{Arc, Mutex};

use candle_core::op::BackpropOp;
use candle_core::{CudaStorage, DType, Device, Storage, Tensor};
use cudarc::driver::{CudaSlice, CudaView};
use cudarc::nccl::safe::{Comm as NcclComm, Id, ReduceOp};

use super::{gather_rows_via_bytes, Comm, Communicator};
use crate::{Error, Result};

/// The NCCL communicator; every use holds [`NcclWorld`]'s lock.
struct Handle(NcclComm);

// SAFETY: an NCCL communicator may be used from any thread as long as no two threads use it
// at once (NCCL user guide, "Thread safety"); every use is under the Mutex of `NcclWorld`.
unsafe impl Send for Handle {}

/// A host communicator plus NCCL on one GPU per rank.
pub struct NcclWorld {
    host: Comm,
    device: Device,
    nccl: Mutex<Handle>,
}

fn nccl_err(what: &str) -> impl Fn(cudarc::nccl::result::NcclError) -> Error + '_ {
    move |e| Error::Other(format!("NCCL {what}: {e:?}"))
}

/// The contiguous f32/f64 data of a CUDA tensor, as a view of its storage.
fn with_view<T: candle_core::cuda::CudaDType, R>(
    t: &Tensor,
    f: impl FnOnce(&CudaView<'_, T>) -> Result<R>,
) -> Result<R> {
    let (storage, layout) = t.storage_and_layout();
    let Storage::Cuda(cuda) = &*storage else {
        return Err(Error::Other(format!(
            "NCCL: a tensor on {:?}, not on a GPU",
            t.device()
        )));
    };
    let (start, end) = layout
        .contiguous_offsets()
        .ok_or_else(|| Error::Other("NCCL: the tensor must be contiguous".into()))?;
    f(&cuda.as_cuda_slice::<T>()?.slice(start..end))
}

impl NcclWorld {
    /// This rank's NCCL communicator on `device` (a CUDA device; one GPU per rank). Rank 0 of
    /// `host` makes NCCL's unique id and `host` carries it to every rank; every rank of `host`
    /// must call this together.
    pub fn new(host: Comm, device: &Device) -> Result<Arc<Self>> {
        let Device::Cuda(dev) = device else {
            return Err(Error::invalid(
                "device",
                format!("{device:?}"),
                "NCCL needs a CUDA device",
            ));
        };
        // Rank 0 sends nothing when it cannot make an id, so that the others fail too instead
        // of waiting.
        let made = (host.rank() == 0).then(Id::new).transpose();
        let mut bytes: Vec<u8> = match &made {
            Ok(Some(id)) => id.internal().iter().map(|&c| c as u8).collect(),
            _ => Vec::new(),
        };
        host.broadcast_bytes(0, &mut bytes)?;
        made.map_err(nccl_err("ncclGetUniqueId"))?;
        let internal: [std::ffi::c_char; 128] = bytes
            .iter()
            .map(|&b| b as std::ffi::c_char)
            .collect::<Vec<_>>()
            .try_into()
            .map_err(|_| {
                Error::Other(format!(
                    "NCCL: rank 0 sent a unique id of {} bytes, not 128 (it could not make one)",
                    bytes.len()
                ))
            })?;
        let stream = dev.cuda_stream();
        // ncclCommInitRank uses the current device.
        stream
            .context()
            .bind_to_thread()
            .map_err(|e| Error::Other(format!("NCCL: binding the CUDA context: {e}")))?;
        let comm = NcclComm::from_rank(stream, host.rank(), host.size(), Id::uninit(internal))
            .map_err(nccl_err("ncclCommInitRank"))?;
        Ok(Arc::new(Self {
            host,
            device: device.clone(),
            nccl: Mutex::new(Handle(comm)),
        }))
    }

    fn locked<R>(&self, f: impl FnOnce(&NcclComm) -> Result<R>) -> Result<R> {
        let guard = self
            .nccl
            .lock()
            .map_err(|_| Error::Other("an NCCL collective panicked on another thread".into()))?;
        f(&guard.0)
    }

    /// A fresh tensor of `shape` on this rank's GPU holding `data`.
    fn tensor<T: candle_core::cuda::CudaDType>(&self, data: CudaSlice<T>, shape: &[usize]) -> Result<Tensor> {
        let Device::Cuda(dev) = &self.device else {
            return Err(Error::Other("NCCL world without a GPU".into()));
        };
        let storage = Storage::Cuda(CudaStorage::wrap_cuda_slice(data, dev.clone()));
        Ok(Tensor::from_storage(storage, shape.to_vec(), BackpropOp::none(), false))
    }

    fn alloc<T: cudarc::driver::DeviceRepr + cudarc::driver::ValidAsZeroBits>(&self, n: usize) -> Result<CudaSlice<T>> {
        let Device::Cuda(dev) = &self.device else {
            return Err(Error::Other("NCCL world without a GPU".into()));
        };
        Ok(dev.alloc_zeros::<T>(n)?)
    }

    /// The element-wise sum over ranks of `t` (f32 or f64, the same shape on every rank), on
    /// this rank's GPU. NCCL's order of summation is its own.
    pub fn all_reduce_sum(&self, t: &Tensor) -> Result<Tensor> {
        let t = t.to_device(&self.device)?.contiguous()?;
        match t.dtype() {
            DType::F32 => self.reduce_typed::<f32>(&t),
            DType::F64 => self.reduce_typed::<f64>(&t),
            other => Err(Error::invalid(
                "NCCL all-reduce dtype",
                format!("{other:?}"),
                "f32 or f64",
            )),
        }
    }

    fn reduce_typed<T>(&self, t: &Tensor) -> Result<Tensor>
    where
        T: candle_core::cuda::CudaDType
            + cudarc::nccl::safe::NcclType
            + cudarc::driver::DeviceRepr
            + cudarc::driver::ValidAsZeroBits,
    {
        let mut out = self.alloc::<T>(t.elem_count())?;
        with_view::<T, _>(t, |send| {
            self.locked(|c| {
                c.all_reduce(send, &mut out, &ReduceOp::Sum)
                    .map(|_| ())
                    .map_err(nccl_err("ncclAllReduce"))
            })
        })?;
        self.tensor(out, t.dims())
    }

    /// `root`'s `t` on every rank (f32 or f64; every rank passes a tensor of the same shape,
    /// whose values are ignored off the root).
    pub fn broadcast(&self, root: usize, t: &Tensor) -> Result<Tensor> {
        let t = t.to_device(&self.device)?.contiguous()?;
        match t.dtype() {
            DType::F32 => self.broadcast_typed::<f32>(root, &t),
            DType::F64 => self.broadcast_typed::<f64>(root, &t),
            other => Err(Error::invalid(
                "NCCL broadcast dtype",
                format!("{other:?}"),
                "f32 or f64",
            )),
        }
    }

    fn broadcast_typed<T>(&self, root: usize, t: &Tensor) -> Result<Tensor>
    where
        T: candle_core::cuda::CudaDType
            + cudarc::nccl::safe::NcclType
            + cudarc::driver::DeviceRepr
            + cudarc::driver::ValidAsZeroBits,
    {
        if root >= self.host.size() {
            return Err(Error::invalid(
                "NCCL broadcast root",
                root,
                format!("a rank below {}", self.host.size()),
            ));
        }
        let mut out = self.alloc::<T>(t.elem_count())?;
        let root_i = root as i32;
        with_view::<T, _>(t, |send| {
            let send = (self.host.rank() == root).then_some(send);
            self.locked(|c| {
                c.broadcast(send, &mut out, root_i)
                    .map(|_| ())
                    .map_err(nccl_err("ncclBroadcast"))
            })
        })?;
        self.tensor(out, t.dims())
    }
}

impl Communicator for NcclWorld {
    fn rank(&self) -> usize {
        self.host.rank()
    }

    fn size(&self) -> usize {
        self.host.size()
    }

    fn barrier(&self) -> Result<()> {
        self.host.barrier()
    }

    fn all_gather_bytes(&self, mine: &[u8]) -> Result<Vec<Vec<u8>>> {
        self.host.all_gather_bytes(mine)
    }

    fn broadcast_bytes(&self, root: usize, bytes: &mut Vec<u8>) -> Result<()> {
        self.host.broadcast_bytes(root, bytes)
    }

    fn all_reduce_sum_f32(&self, values: &mut [f32]) -> Result<()> {
        self.host.all_reduce_sum_f32(values)
    }

    fn all_reduce_sum_f64(&self, values: &mut [f64]) -> Result<()> {
        self.host.all_reduce_sum_f64(values)
    }

    /// On the GPU: row counts through the host, the rows through one `ncclAllGather` of
    /// `max count` rows per rank (zero-padded), the padding cut away. Tensors elsewhere go
    /// through the host's bytes.
    fn all_gather_rows(&self, rows: &Tensor) -> Result<Tensor> {
        if !rows.device().same_device(&self.device) {
            return gather_rows_via_bytes(self, rows);
        }
        let dims = rows.dims().to_vec();
        let Some((&mine, rest)) = dims.split_first() else {
            return Err(Error::Other("all_gather_rows of a scalar".into()));
        };
        let counts: Vec<usize> = self
            .host
            .all_gather_bytes(&(mine as u64).to_le_bytes())?
            .iter()
            .map(|b| {
                let b: [u8; 8] = b
                    .as_slice()
                    .try_into()
                    .map_err(|_| Error::Other("a rank sent a broken row count".into()))?;
                Ok(u64::from_le_bytes(b) as usize)
            })
            .collect::<Result<_>>()?;
        let most = counts.iter().copied().max().unwrap_or(0);
        let row: usize = rest.iter().product();
        let mut padded = rows.to_dtype(DType::F32)?.contiguous()?;
        if mine < most {
            let mut pad_dims = dims.clone();
            pad_dims[0] = most - mine;
            padded = Tensor::cat(&[padded, Tensor::zeros(pad_dims, DType::F32, &self.device)?], 0)?;
        }
        let mut all = self.alloc::<f32>(most * row * counts.len())?;
        if most * row > 0 {
            with_view::<f32, _>(&padded, |send| {
                self.locked(|c| {
                    c.all_gather(send, &mut all)
                        .map(|_| ())
                        .map_err(nccl_err("ncclAllGather"))
                })
            })?;
        }
        let mut all_dims = dims.clone();
        all_dims[0] = most * counts.len();
        let all = self.tensor(all, &all_dims)?;
        let parts = counts
            .iter()
            .enumerate()
            .map(|(r, &n)| all.narrow(0, r * most, n))
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Tensor::cat(&parts, 0)?)
    }

    fn describe(&self) -> String {
        format!("nccl over {}", self.host.describe())
    }
}
