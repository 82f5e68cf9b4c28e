//! Which expert epochs a trajectory-matching step may start from.
//!
//! MTT draws the start epoch uniformly from `0..max_start_epoch` (mtt-distillation
//! `distill.py:324`, `np.random.randint(0, max_start_epoch)`). DATM (Guo et al., ICLR 2024,
//! "Towards Lossless Dataset Distillation via Difficulty-Aligned Trajectory Matching") draws it
//! from `min_start_epoch..upper`, where with `Sequential_Generation` the upper bound grows
//! linearly from `current_max_start_epoch` at iteration 0 to `max_start_epoch` at iteration
//! `expansion_end_epoch` and stays there (NUS-HPC-AI-Lab/DATM `distill/DATM.py:484-491`):
//! early iterations match the easy, early part of the trajectories, later ones the whole.

use rand::Rng as _;

use crate::{Error, Result, Rng};

/// DATM's growing upper bound (`Sequential_Generation`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Expansion {
    /// The upper bound at iteration 0 (`current_max_start_epoch`).
    pub current_max_start_epoch: usize,
    /// The iteration at which it reaches `max_start_epoch` (`expansion_end_epoch`).
    pub expansion_end_epoch: usize,
}

/// The range start epochs are drawn from, per iteration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StartWindow {
    pub min_start_epoch: usize,
    pub max_start_epoch: usize,
    /// None: a fixed window (MTT).
    pub expansion: Option<Expansion>,
}

impl StartWindow {
    /// Refuses a window that would be empty at some iteration (`np.random.randint(low, high)`
    /// raises when `low >= high`).
    pub fn validate(&self) -> Result<()> {
        let smallest = match self.expansion {
            Some(e) => {
                if e.expansion_end_epoch == 0 {
                    return Err(Error::invalid(
                        "matcher.expansion_end_epoch",
                        0,
                        "the window must grow over at least one iteration (DATM divides by it, DATM.py:486)",
                    ));
                }
                e.current_max_start_epoch.min(self.max_start_epoch)
            }
            None => self.max_start_epoch,
        };
        if self.min_start_epoch >= smallest {
            return Err(Error::invalid(
                "matcher.min_start_epoch",
                self.min_start_epoch,
                format!(
                    "start epochs are drawn from min_start_epoch..upper and the upper bound can be {smallest} \
                     (max_start_epoch, or current_max_start_epoch with sequential_generation): make \
                     min_start_epoch smaller"
                ),
            ));
        }
        Ok(())
    }

    /// The exclusive upper bound at 0-based `iteration`:
    /// `min(current + int((max - current) * it / expansion_end), max)` (`DATM.py:486-487`),
    /// Python's `int()` truncating toward zero.
    pub fn upper_bound(&self, iteration: usize) -> usize {
        let Some(e) = self.expansion else {
            return self.max_start_epoch;
        };
        let current = e.current_max_start_epoch as f64;
        let grown = (self.max_start_epoch as f64 - current) * iteration as f64 / e.expansion_end_epoch as f64;
        let upper = (current + grown.trunc()).max(0.0) as usize;
        upper.min(self.max_start_epoch)
    }

    /// The start epoch of `iteration`, uniform in `min_start_epoch..upper_bound(iteration)`
    /// (`DATM.py:491`). With the MTT window (min 0, no expansion) this is exactly the draw
    /// `random_range(0..max_start_epoch)` that seeded runs made before the window existed.
    pub fn draw(&self, rng: &mut Rng, iteration: usize) -> usize {
        rng.random_range(self.min_start_epoch..self.upper_bound(iteration))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn datm(current: usize, max: usize, end: usize) -> StartWindow {
        StartWindow {
            min_start_epoch: 0,
            max_start_epoch: max,
            expansion: Some(Expansion {
                current_max_start_epoch: current,
                expansion_end_epoch: end,
            }),
        }
    }

    #[test]
    fn grows_as_datm_computes_it() {
        // configs/CIFAR-10/ConvIN/IPC10.yaml: current 10, max 20, expansion_end 1000.
        let w = datm(10, 20, 1000);
        // Python: 10 + int(10 * it / 1000), capped at 20.
        for (it, want) in [
            (0, 10),
            (99, 10),
            (100, 11),
            (150, 11),
            (999, 19),
            (1000, 20),
            (5000, 20),
        ] {
            assert_eq!(w.upper_bound(it), want, "iteration {it}");
        }
        // A window that shrinks (current above max) is capped at max from the start.
        assert_eq!(datm(30, 20, 100).upper_bound(0), 20);
    }

    #[test]
    fn refuses_empty_windows() {
        let mut w = datm(10, 20, 1000);
        w.min_start_epoch = 10;
        assert!(w.validate().is_err());
        w.min_start_epoch = 9;
        assert!(w.validate().is_ok());
        assert!(datm(10, 20, 0).validate().is_err());
    }
}
