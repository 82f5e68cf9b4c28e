//! Which processes run this command: this one alone, or one rank of an MPI launch
//! (`mpirun -np N cafe-lab ...`, `srun`), with the `mpi` feature.

use anyhow::Result;
use cafe_framework::dist::{solo, Comm};

/// The world of this process: the MPI world when an MPI launcher started it (with the `mpi`
/// feature), else this process alone. A launch of several ranks of a binary without MPI
/// support is refused: each rank would run the whole command into the same folder.
pub fn world() -> Result<Comm> {
    #[cfg(feature = "mpi")]
    {
        if let Some(comm) = cafe_mpi::world_if_launched()? {
            return Ok(comm);
        }
    }
    #[cfg(not(feature = "mpi"))]
    {
        if let Some(n) = launched_size().filter(|&n| n > 1) {
            anyhow::bail!(
                "started as one of {n} MPI ranks, but this cafe-lab has no MPI support: build it with \
                 `cargo build --release -p cafe-cli --features mpi` (needs `apt-get install libopenmpi-dev \
                 openmpi-bin libclang-dev pkgconf`), see README \"Several processes (MPI)\""
            );
        }
    }
    Ok(solo())
}

/// The rank count an MPI launcher put in the environment (Open MPI, PMIx, MPICH, a SLURM job step).
#[cfg(not(feature = "mpi"))]
fn launched_size() -> Option<usize> {
    ["OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "PMI_SIZE", "SLURM_STEP_NUM_TASKS"]
        .iter()
        .find_map(|v| std::env::var(v).ok()?.parse::<usize>().ok())
}
