//! A task farm: `n` independent tasks (evaluation networks, KD students, experts), each rank
//! running its contiguous share ([`super::share`]), every task's numbers gathered on every rank
//! in task order. A task's numbers do not depend on which rank ran it (tasks are seeded by
//! their index), so the gathered list is the same at any world size.

use std::ops::Range;

use crate::{Error, Result};

use super::{agree, f64_bytes, f64s, share, Communicator};

/// What one rank did with its share: each task's numbers, in task order.
pub type TaskOutcome = Result<Vec<Vec<f64>>>;

/// Runs `run_share` on this rank's share of `0..n` and gathers every task's numbers, in task
/// order, on every rank. An error on any rank is an error on every rank.
pub fn gather_f64_tasks(
    comm: &dyn Communicator,
    n: usize,
    run_share: impl FnOnce(Range<usize>) -> TaskOutcome,
) -> TaskOutcome {
    let mine = share(n, comm.rank(), comm.size());
    let expected = mine.len();
    let outcome = run_share(mine).and_then(|results| {
        if results.len() == expected {
            Ok(results)
        } else {
            Err(Error::Other(format!(
                "a task share of {expected} returned {} results",
                results.len()
            )))
        }
    });
    if comm.size() == 1 {
        return outcome;
    }
    let results = agree(comm, outcome)?;
    let mut bytes = Vec::new();
    for r in &results {
        bytes.extend_from_slice(&(r.len() as u64).to_le_bytes());
        bytes.extend_from_slice(&f64_bytes(r));
    }
    let mut all = Vec::with_capacity(n);
    for (rank, part) in comm.all_gather_bytes(&bytes)?.iter().enumerate() {
        let mut at = 0;
        for _ in share(n, rank, comm.size()) {
            let len = part
                .get(at..at + 8)
                .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")) as usize)
                .ok_or_else(|| Error::Other(format!("rank {rank} sent a truncated task result")))?;
            let end = at + 8 + len * 8;
            let values = part
                .get(at + 8..end)
                .ok_or_else(|| Error::Other(format!("rank {rank} sent a truncated task result")))?;
            all.push(f64s(values)?);
            at = end;
        }
    }
    Ok(all)
}
