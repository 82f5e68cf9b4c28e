//! cafe-lab's [`Communicator`] over MPI, through rsmpi (the `mpi` crate) on the system's MPI
//! library (Debian: `libopenmpi-dev openmpi-bin libclang-dev pkgconf`). The CLI's `mpi` feature
//! uses it when the process was started by an MPI launcher (`mpirun`, `srun`).
//!
//! MPI is initialised once, with `MPI_THREAD_FUNNELED`: cafe-lab's worker threads (rayon's)
//! never call MPI, only the thread that started it. It is finalised when the last handle to the
//! [`MpiWorld`] is dropped, which the CLI does before it exits.

use std::sync::{Arc, Mutex};

use cafe_framework::dist::{Comm, Communicator};
use cafe_framework::{Error, Result};
use mpi::collective::SystemOperation;
use mpi::datatype::PartitionMut;
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::{Communicator as _, CommunicatorCollectives as _};
use mpi::Threading;

/// Environment variables an MPI launcher sets in every rank (Open MPI, PMIx, MPICH/Hydra's PMI,
/// SLURM), with the rank count.
const LAUNCHER_SIZE_VARS: [&str; 4] = ["OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "PMI_SIZE", "SLURM_STEP_NUM_TASKS"];

/// The world of an MPI launch.
pub struct MpiWorld {
    // Dropped first: the communicator before the universe that finalises MPI.
    world: SimpleCommunicator,
    _universe: Universe,
    /// Collectives one at a time, whatever thread asks (MPI is initialised FUNNELED).
    lock: Mutex<()>,
    rank: usize,
    size: usize,
}

// SAFETY: the communicator handle is only used under `lock`, so no two threads call MPI at once;
// cafe-lab calls collectives from the thread that initialised MPI.
unsafe impl Send for MpiWorld {}
// SAFETY: as above.
unsafe impl Sync for MpiWorld {}

/// How many ranks the launcher says this job has, if it was started by one.
pub fn launched_size() -> Option<usize> {
    LAUNCHER_SIZE_VARS
        .iter()
        .find_map(|v| std::env::var(v).ok()?.parse::<usize>().ok())
}

impl MpiWorld {
    /// Initialises MPI and returns the world. Fails when MPI is already initialised or the
    /// library refuses.
    pub fn init() -> Result<Arc<Self>> {
        let (universe, threading) = mpi::initialize_with_threading(Threading::Funneled).ok_or_else(|| {
            Error::Other("MPI could not be initialised (already initialised in this process?)".into())
        })?;
        if threading < Threading::Funneled {
            return Err(Error::Other(format!(
                "the MPI library offers threading level {threading:?}; cafe-lab needs FUNNELED"
            )));
        }
        let world = universe.world();
        let (rank, size) = (world.rank() as usize, world.size() as usize);
        Ok(Arc::new(Self {
            world,
            _universe: universe,
            lock: Mutex::new(()),
            rank,
            size,
        }))
    }

    fn locked<T>(&self, f: impl FnOnce(&SimpleCommunicator) -> T) -> Result<T> {
        let _guard = self
            .lock
            .lock()
            .map_err(|_| Error::Other("an MPI collective panicked on another thread".into()))?;
        Ok(f(&self.world))
    }
}

/// The world when started by an MPI launcher, else None (a plain run needs no MPI).
pub fn world_if_launched() -> Result<Option<Comm>> {
    if launched_size().is_none() {
        return Ok(None);
    }
    let world: Comm = MpiWorld::init()?;
    Ok(Some(world))
}

impl Communicator for MpiWorld {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.size
    }

    fn barrier(&self) -> Result<()> {
        self.locked(|w| w.barrier())
    }

    fn all_gather_bytes(&self, mine: &[u8]) -> Result<Vec<Vec<u8>>> {
        self.locked(|w| {
            let mut counts = vec![0i32; self.size];
            let len = i32::try_from(mine.len())
                .map_err(|_| Error::Other(format!("{} bytes exceed one MPI message", mine.len())))?;
            w.all_gather_into(&len, &mut counts[..]);
            let displs: Vec<i32> = counts
                .iter()
                .scan(0i32, |at, &c| {
                    let d = *at;
                    *at += c;
                    Some(d)
                })
                .collect();
            let total: usize = counts.iter().map(|&c| c as usize).sum();
            if total == 0 {
                // Nothing to move (an agreement where every rank succeeded): Open MPI refuses an
                // empty receive buffer (MPI_ERR_ARG).
                return Ok(vec![Vec::new(); self.size]);
            }
            let mut all = vec![0u8; total];
            {
                let mut partition = PartitionMut::new(&mut all[..], &counts[..], &displs[..]);
                w.all_gather_varcount_into(mine, &mut partition);
            }
            Ok(counts
                .iter()
                .zip(&displs)
                .map(|(&c, &d)| all[d as usize..(d + c) as usize].to_vec())
                .collect())
        })?
    }

    fn all_reduce_sum_f32(&self, values: &mut [f32]) -> Result<()> {
        self.locked(|w| {
            let mine = values.to_vec();
            w.all_reduce_into(&mine[..], values, SystemOperation::sum());
        })
    }

    fn all_reduce_sum_f64(&self, values: &mut [f64]) -> Result<()> {
        self.locked(|w| {
            let mine = values.to_vec();
            w.all_reduce_into(&mine[..], values, SystemOperation::sum());
        })
    }

    fn describe(&self) -> String {
        format!("mpi {}/{}", self.rank, self.size)
    }
}
