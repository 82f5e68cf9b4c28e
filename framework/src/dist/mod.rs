//! Processes working on one run: a communicator (rank, size and the collectives cafe-lab
//! needs), with a single-process implementation ([`Solo`], the default), in-process ranks on
//! threads ([`LocalWorld`], for tests and for trying a decomposition without MPI) and MPI ranks
//! (the `cafe-mpi` crate, behind the CLI's `mpi` feature).
//!
//! Everything cafe-lab distributes is decomposed so that the result does not depend on the
//! number of ranks: work is split by task index or class, never seeded from a rank, and what
//! ranks compute is exchanged whole (gathered, then used in index order), not reduced in an
//! order that depends on the world size. See README "Several processes (MPI)".

mod farm;
mod local;
#[cfg(feature = "nccl")]
mod nccl;
mod solo;

use std::ops::Range;
use std::sync::Arc;

use candle_core::{DType, Tensor};

use crate::{Error, Result};

pub use farm::{gather_f64_tasks, TaskOutcome};
pub use local::LocalWorld;
#[cfg(feature = "nccl")]
pub use nccl::NcclWorld;
pub use solo::Solo;

/// The collectives of a group of ranks. Every rank must call the same collectives in the same
/// order; an error on one rank must reach the others through a collective (see
/// [`agree`]), never by returning early, or they wait forever.
pub trait Communicator: Send + Sync {
    /// This rank, `0..size`.
    fn rank(&self) -> usize;
    /// Number of ranks.
    fn size(&self) -> usize;
    /// Waits until every rank has arrived.
    fn barrier(&self) -> Result<()>;
    /// Every rank's bytes (of any length), in rank order, on every rank.
    fn all_gather_bytes(&self, mine: &[u8]) -> Result<Vec<Vec<u8>>>;
    /// `root`'s bytes on every rank (the others' `bytes` are replaced).
    fn broadcast_bytes(&self, root: usize, bytes: &mut Vec<u8>) -> Result<()> {
        let all = self.all_gather_bytes(if self.rank() == root { bytes } else { &[] })?;
        *bytes = all
            .into_iter()
            .nth(root)
            .ok_or_else(|| Error::Other(format!("broadcast from rank {root} of {}", self.size())))?;
        Ok(())
    }
    /// Element-wise sum over ranks, in place on every rank. The order in which an MPI library
    /// adds is its own: cafe-lab uses it only where every rank but one contributes zeros.
    fn all_reduce_sum_f32(&self, values: &mut [f32]) -> Result<()> {
        let all = self.all_gather_bytes(&f32_bytes(values))?;
        values.iter_mut().for_each(|v| *v = 0.0);
        for bytes in &all {
            for (v, x) in values.iter_mut().zip(f32s(bytes)?) {
                *v += x;
            }
        }
        Ok(())
    }
    /// Element-wise sum over ranks, in place on every rank (see [`Self::all_reduce_sum_f32`]).
    fn all_reduce_sum_f64(&self, values: &mut [f64]) -> Result<()> {
        let all = self.all_gather_bytes(&f64_bytes(values))?;
        values.iter_mut().for_each(|v| *v = 0.0);
        for bytes in &all {
            for (v, x) in values.iter_mut().zip(f64s(bytes)?) {
                *v += x;
            }
        }
        Ok(())
    }
    /// Every rank's `rows` (`[n_rank, ...]`, any float dtype, no graph) concatenated along the
    /// first dimension in rank order, as f32 on `rows`' device. This default moves host bytes
    /// (through [`Self::all_gather_bytes`]); a communicator with a device data plane (NCCL)
    /// gathers device buffers instead.
    fn all_gather_rows(&self, rows: &Tensor) -> Result<Tensor> {
        gather_rows_via_bytes(self, rows)
    }
    /// A name for messages: `solo`, `local 2/3`, `mpi 1/4`.
    fn describe(&self) -> String;
}

/// [`Communicator::all_gather_rows`] through host bytes: the rows as f32 values, gathered,
/// rebuilt on `rows`' device.
pub(crate) fn gather_rows_via_bytes<C: Communicator + ?Sized>(comm: &C, rows: &Tensor) -> Result<Tensor> {
    let dims = rows.dims().to_vec();
    let mine = rows.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    let mut values = Vec::new();
    let mut n = 0;
    for part in comm.all_gather_bytes(&f32_bytes(&mine))? {
        let v = f32s(&part)?;
        let row: usize = dims[1..].iter().product();
        n += v.len().checked_div(row).unwrap_or(0);
        values.extend(v);
    }
    let mut shape = dims;
    if let Some(first) = shape.first_mut() {
        *first = n;
    }
    Ok(Tensor::from_vec(values, shape, rows.device())?)
}

/// A shared communicator.
pub type Comm = Arc<dyn Communicator>;

/// The single-process communicator.
pub fn solo() -> Comm {
    Arc::new(Solo)
}

/// The contiguous share of `n` items (classes, tasks) that `rank` of `size` owns: the first
/// `n % size` ranks own one more. Empty when there are more ranks than items.
pub fn share(n: usize, rank: usize, size: usize) -> Range<usize> {
    let (base, extra) = (n / size, n % size);
    let start = rank * base + rank.min(extra);
    start..start + base + usize::from(rank < extra)
}

/// Whether every rank succeeded: each rank's outcome is exchanged, and an error on any rank
/// becomes an error on all (the first failing rank's message), so that no rank goes on to a
/// collective the others will never reach.
pub fn agree<T>(comm: &dyn Communicator, outcome: Result<T>) -> Result<T> {
    if comm.size() == 1 {
        return outcome;
    }
    let mine = match &outcome {
        Ok(_) => Vec::new(),
        Err(e) => {
            let mut m = b"E".to_vec();
            m.extend_from_slice(e.to_string().as_bytes());
            m
        }
    };
    let all = comm.all_gather_bytes(&mine)?;
    if let Some((rank, message)) = all.iter().enumerate().find(|(_, m)| !m.is_empty()) {
        return match outcome {
            Err(e) => Err(e),
            Ok(_) => Err(Error::Other(format!(
                "rank {rank} of {} failed: {}",
                comm.size(),
                String::from_utf8_lossy(&message[1..])
            ))),
        };
    }
    outcome
}

/// Little-endian bytes of f32 values.
pub fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Little-endian bytes of f64 values.
pub fn f64_bytes(values: &[f64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// f32 values from little-endian bytes.
pub fn f32s(bytes: &[u8]) -> Result<Vec<f32>> {
    if !bytes.len().is_multiple_of(4) {
        return Err(Error::Other(format!("{} bytes are not whole f32 values", bytes.len())));
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

/// f64 values from little-endian bytes.
pub fn f64s(bytes: &[u8]) -> Result<Vec<f64>> {
    if !bytes.len().is_multiple_of(8) {
        return Err(Error::Other(format!("{} bytes are not whole f64 values", bytes.len())));
    }
    Ok(bytes
        .chunks_exact(8)
        .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_cover_every_item_once_in_order() {
        for n in 0..12 {
            for size in 1..6 {
                let all: Vec<usize> = (0..size).flat_map(|r| share(n, r, size)).collect();
                assert_eq!(all, (0..n).collect::<Vec<_>>(), "n {n} size {size}");
            }
        }
        assert_eq!(share(10, 0, 3), 0..4);
        assert_eq!(share(10, 2, 3), 7..10);
    }
}
