//! The reference's step schedule, written once for evaluation, teachers and experts: a number
//! of epochs, and after one of them the learning rate drops 10x with a fresh SGD, so that the
//! momentum buffer starts again from zero.
//!
//! - Evaluation (DatasetCondensation `utils.py:341-355` `evaluate_synset`, CAFE `utils.py:309-323`):
//!   `for ep in range(Epoch + 1)`, and after epoch `Epoch // 2 + 1` the lr drops with a new
//!   `torch.optim.SGD`: [`StepSchedule::evaluation`].
//! - Experts (mtt-distillation `buffer.py:80-97`): `for e in range(train_epochs)`, the same drop
//!   after epoch `train_epochs // 2 + 1` only with `--decay`: [`StepSchedule::experts`].

use candle_core::Var;

use crate::train::Sgd;
use crate::Result;

/// Learning rate drops once by this factor.
const DROP: f64 = 0.1;

/// How many epochs train, and after which (0-based) the learning rate drops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepSchedule {
    /// Epochs trained.
    pub epochs: usize,
    /// The 0-based epoch after which the lr drops 10x with a fresh optimiser (None: never).
    pub drop_after: Option<usize>,
}

impl StepSchedule {
    /// The evaluation schedule of the reference's `epoch_eval_train` E: E + 1 epochs, the
    /// drop after epoch E / 2 + 1.
    pub fn evaluation(e: usize) -> Self {
        Self {
            epochs: e + 1,
            drop_after: Some(e / 2 + 1),
        }
    }

    /// The experts' schedule: `train_epochs` epochs, the drop after epoch
    /// `train_epochs / 2 + 1` when `decay`.
    pub fn experts(train_epochs: usize, decay: bool) -> Self {
        Self {
            epochs: train_epochs,
            drop_after: decay.then_some(train_epochs / 2 + 1),
        }
    }

    /// Trains `vars` under the schedule with SGD (`lr`, `momentum`, `weight_decay`): calls
    /// `epoch(index, optimiser)` for every epoch, and replaces the optimiser after the drop.
    pub fn run(
        &self,
        vars: Vec<Var>,
        lr: f64,
        momentum: f64,
        weight_decay: f64,
        mut epoch: impl FnMut(usize, &mut Sgd) -> Result<()>,
    ) -> Result<()> {
        let mut opt = Sgd::new(vars.clone(), lr, momentum, weight_decay);
        for e in 0..self.epochs {
            epoch(e, &mut opt)?;
            if self.drop_after == Some(e) {
                opt = Sgd::new(vars.clone(), lr * DROP, momentum, weight_decay);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// The learning rate of every epoch, as the schedule runs them.
    fn rates(schedule: StepSchedule) -> Vec<f64> {
        let var = Var::new(&[0.0f32], &Device::Cpu).unwrap();
        let mut seen = Vec::new();
        schedule
            .run(vec![var], 1.0, 0.9, 0.0, |_, opt| {
                seen.push(opt.lr);
                Ok(())
            })
            .unwrap();
        seen
    }

    #[test]
    fn evaluation_trains_e_plus_one_epochs_and_drops_after_half_plus_one() {
        // range(4 + 1) epochs; the drop after epoch 4 // 2 + 1 = 3 leaves one at lr / 10.
        let r = rates(StepSchedule::evaluation(4));
        assert_eq!(r.len(), 5);
        assert_eq!(r[..4], [1.0; 4]);
        assert!((r[4] - 0.1).abs() < 1e-15);
        // E = 0 and 1: the drop falls after the last epoch, nothing trains at lr / 10.
        assert_eq!(rates(StepSchedule::evaluation(0)), [1.0]);
        assert_eq!(rates(StepSchedule::evaluation(1)), [1.0, 1.0]);
    }

    #[test]
    fn experts_drop_only_with_decay() {
        assert_eq!(rates(StepSchedule::experts(4, false)), [1.0; 4]);
        let r = rates(StepSchedule::experts(6, true));
        // Epochs 0..6, the drop after epoch 6 // 2 + 1 = 4: epoch 5 at lr / 10.
        assert_eq!(r[..5], [1.0; 5]);
        assert!((r[5] - 0.1).abs() < 1e-15);
    }
}
