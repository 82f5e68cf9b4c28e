//! Ranks as threads of one process: the same collectives as MPI's, through shared memory.
//! Tests use it to check that a decomposition gives the same bytes at any world size without
//! an MPI installation; it is also a way to try one on a single machine.

use std::sync::{Arc, Barrier, Mutex};

use crate::{Error, Result};

use super::{Comm, Communicator};

/// What the ranks of one local world share.
struct Shared {
    barrier: Barrier,
    slots: Mutex<Vec<Vec<u8>>>,
}

/// One rank of a world of threads.
pub struct LocalWorld {
    rank: usize,
    shared: Arc<Shared>,
}

impl LocalWorld {
    /// The `size` communicators of a new world, rank 0 first.
    pub fn ranks(size: usize) -> Vec<Comm> {
        let shared = Arc::new(Shared {
            barrier: Barrier::new(size.max(1)),
            slots: Mutex::new(vec![Vec::new(); size.max(1)]),
        });
        (0..size.max(1))
            .map(|rank| {
                Arc::new(LocalWorld {
                    rank,
                    shared: shared.clone(),
                }) as Comm
            })
            .collect()
    }

    /// Runs `f` on `size` ranks, each on its own thread, and returns their results in rank
    /// order.
    pub fn run<T: Send>(size: usize, f: impl Fn(Comm) -> T + Sync) -> Vec<T> {
        let comms = Self::ranks(size);
        std::thread::scope(|s| {
            let handles: Vec<_> = comms.into_iter().map(|c| s.spawn(|| f(c))).collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .collect()
        })
    }
}

impl Communicator for LocalWorld {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.shared.slots.lock().map(|s| s.len()).unwrap_or(1)
    }

    fn barrier(&self) -> Result<()> {
        self.shared.barrier.wait();
        Ok(())
    }

    fn all_gather_bytes(&self, mine: &[u8]) -> Result<Vec<Vec<u8>>> {
        let poisoned = |_| Error::Other("a local rank panicked during a collective".into());
        self.shared.slots.lock().map_err(poisoned)?[self.rank] = mine.to_vec();
        // Every rank has written before any reads, and every rank has read before the next
        // collective writes again.
        self.shared.barrier.wait();
        let all = self.shared.slots.lock().map_err(poisoned)?.clone();
        self.shared.barrier.wait();
        Ok(all)
    }

    fn describe(&self) -> String {
        format!("local {}/{}", self.rank, self.size())
    }
}
