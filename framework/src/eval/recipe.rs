//! How the networks of one evaluation train: the narrow recipe that every evaluation reads,
//! resolved once from the run's settings (see [`super::EvalPlan`]): the optimiser, its
//! learning-rate schedule, the batch, the epochs and how many networks.
//!
//! The hard-label recipe of the matching papers is SGD with the reference's step schedule
//! (DatasetCondensation `utils.py:341-355`); the soft-label recipes of the decoupled methods are
//! AdamW on a cosine curve (VILA-Lab/SRe2L `SRe2L/*small_dataset/relabel_cifar.py:104-106`;
//! LINs-lab/RDED `validation/main.py:87-102`). One runner, [`TrainRecipe::run`], serves both.

use candle_core::Var;
use serde::{Deserialize, Serialize};

use crate::train::{Adam, AdamConfig, Decay, LrCurve, Optimizer, StepSchedule};
use crate::Result;

/// The learning-rate schedule of an evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    /// The reference's: E + 1 epochs, the lr / 10 with a fresh optimiser after epoch
    /// E / 2 + 1 (DatasetCondensation `utils.py:341-355`; see [`StepSchedule::evaluation`]).
    #[default]
    ReferenceStep,
    /// E epochs, epoch e at `lr 0.5 (1 + cos(pi e / E))`: `CosineAnnealingLR(T_max=E)` stepped
    /// per epoch (SRe2L `relabel_cifar.py:106,197`).
    Cosine,
    /// E epochs, epoch e at `lr 0.5 (1 + cos(pi e / (2 E)))`: the `LambdaLR` of RDED
    /// (`validation/main.py:95-102`) and DD-Ranking's `cosine`.
    HalfCosine,
}

/// Where AdamW's weight decay applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecayOn {
    /// Every parameter (`torch.optim.AdamW(net.parameters(), ...)`, SRe2L `relabel_cifar.py:104`).
    #[default]
    All,
    /// Only parameters of more than one dimension, the conv kernels and linear weights (RDED's
    /// `get_parameters`, `validation/utils.py:67-84`: names with "weight" and `len(size) > 1`).
    Matrices,
}

/// The optimiser of an evaluation's networks.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "name")]
pub enum OptimizerKind {
    /// SGD with the recipe's momentum and (coupled) weight decay.
    #[default]
    Sgd,
    /// AdamW with the recipe's (decoupled) weight decay; unset keys take `torch.optim.AdamW`'s
    /// defaults (betas (0.9, 0.999), eps 1e-8) and decay on every parameter.
    Adamw {
        #[serde(default = "default_beta1")]
        beta1: f64,
        #[serde(default = "default_beta2")]
        beta2: f64,
        #[serde(default = "default_eps")]
        eps: f64,
        #[serde(default)]
        decay_on: DecayOn,
    },
}

fn default_beta1() -> f64 {
    0.9
}

fn default_beta2() -> f64 {
    0.999
}

fn default_eps() -> f64 {
    1e-8
}

/// Everything about training the networks of an evaluation but the architecture, its
/// augmentation and the set.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TrainRecipe {
    /// Starting learning rate (`eval.lr`, or the step size a set learned).
    pub lr: f64,
    /// SGD's momentum (unused by AdamW, whose betas are in `optimizer`).
    pub momentum: f64,
    pub weight_decay: f64,
    /// Images per batch.
    pub batch: usize,
    /// The reference's `epoch_eval_train` E: E + 1 epochs under `ReferenceStep`, E under the
    /// cosine schedules.
    pub epochs: usize,
    /// Fresh networks trained, each tested on its own.
    pub nets: usize,
    /// How many of them train at the same time (at least 1; results do not depend on it).
    pub parallel: usize,
    pub schedule: Schedule,
    pub optimizer: OptimizerKind,
    /// Which test accuracy each network reports.
    pub report: Report,
}

/// Which test accuracy a network of an evaluation reports.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub enum Report {
    /// After the last epoch (cafe-lab's rule, and the matching papers').
    #[default]
    Final,
    /// The best test accuracy of the epochs e (0-based) with `e % every == every - 1` or the
    /// last, and `e > after x epochs` (RDED `validation/main.py:176-190`: every 10 epochs past
    /// 80 %; a selection on the test set).
    BestTest { every: usize, after: f64 },
}

impl Report {
    /// Whether the network is tested after epoch `e` of `epochs` trained.
    pub fn tests_after(&self, e: usize, epochs: usize) -> bool {
        match *self {
            Report::Final => false,
            Report::BestTest { every, after } => {
                (e % every.max(1) == every.max(1) - 1 || e + 1 == epochs) && e as f64 > after * epochs as f64
            }
        }
    }
}

impl TrainRecipe {
    /// The epochs trained (E + 1 under the reference's step schedule, else E).
    pub fn epochs_trained(&self) -> usize {
        match self.schedule {
            Schedule::ReferenceStep => StepSchedule::evaluation(self.epochs).epochs,
            Schedule::Cosine | Schedule::HalfCosine => self.epochs,
        }
    }

    /// Trains `vars` under the recipe: calls `epoch(index, optimiser)` for every epoch, the
    /// optimiser at that epoch's learning rate. SGD under the step schedule is exactly
    /// [`StepSchedule::run`] (a fresh SGD after the drop).
    pub fn run(&self, vars: Vec<Var>, mut epoch: impl FnMut(usize, &mut dyn Optimizer) -> Result<()>) -> Result<()> {
        let mut opt: Box<dyn Optimizer> = match self.optimizer {
            OptimizerKind::Sgd => {
                if self.schedule == Schedule::ReferenceStep {
                    return StepSchedule::evaluation(self.epochs).run(
                        vars,
                        self.lr,
                        self.momentum,
                        self.weight_decay,
                        |e, opt| epoch(e, opt),
                    );
                }
                Box::new(crate::train::Sgd::new(vars, self.lr, self.momentum, self.weight_decay))
            }
            OptimizerKind::Adamw {
                beta1,
                beta2,
                eps,
                decay_on,
            } => {
                let decays = vars.iter().map(|v| decay_on == DecayOn::All || v.rank() > 1).collect();
                let config = AdamConfig {
                    lr: self.lr,
                    beta1,
                    beta2,
                    eps,
                    weight_decay: self.weight_decay,
                    decay: Decay::Decoupled,
                };
                Box::new(Adam::with_decay_mask(vars, decays, config))
            }
        };
        let curve = match self.schedule {
            Schedule::ReferenceStep => None,
            Schedule::Cosine => Some(LrCurve::Cosine),
            Schedule::HalfCosine => Some(LrCurve::HalfCosine),
        };
        let total = self.epochs_trained();
        for e in 0..total {
            if let Some(curve) = curve {
                opt.set_lr(self.lr * curve.factor(e, self.epochs));
            }
            epoch(e, opt.as_mut())?;
        }
        Ok(())
    }

    /// The same recipe from another learning rate.
    pub fn with_lr(self, lr: f64) -> Self {
        Self { lr, ..self }
    }

    /// The same recipe for E = `epochs`.
    pub fn with_epochs(self, epochs: usize) -> Self {
        Self { epochs, ..self }
    }

    /// The same recipe over `nets` networks.
    pub fn with_nets(self, nets: usize) -> Self {
        Self { nets, ..self }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// RDED's rule at its 300 epochs: tests after epochs 249, 259, ..., 299 (0-based, every
    /// 10th and the last, only past 240).
    #[test]
    fn best_test_tests_every_tenth_epoch_past_eighty_percent() {
        let rule = Report::BestTest { every: 10, after: 0.8 };
        let tested: Vec<usize> = (0..300).filter(|&e| rule.tests_after(e, 300)).collect();
        assert_eq!(tested, [249, 259, 269, 279, 289, 299]);
        let odd: Vec<usize> = (0..25).filter(|&e| rule.tests_after(e, 25)).collect();
        assert_eq!(odd, [24], "the last epoch is tested even off the tenth");
        assert!((0..300).all(|e| !Report::Final.tests_after(e, 300)));
    }

    fn rates(recipe: TrainRecipe) -> Vec<f64> {
        let var = Var::new(&[0.0f32, 1.0], &Device::Cpu).unwrap();
        let mut seen = Vec::new();
        recipe
            .run(vec![var], |_, opt| {
                seen.push(opt.lr());
                Ok(())
            })
            .unwrap();
        seen
    }

    fn recipe(schedule: Schedule, optimizer: OptimizerKind) -> TrainRecipe {
        TrainRecipe {
            lr: 1.0,
            momentum: 0.9,
            weight_decay: 0.0,
            batch: 1,
            epochs: 4,
            nets: 1,
            parallel: 1,
            report: Report::Final,
            schedule,
            optimizer,
        }
    }

    #[test]
    fn schedules_set_each_epochs_rate_as_the_references_do() {
        // The step schedule: E + 1 epochs, the drop after epoch E / 2 + 1.
        assert_eq!(
            rates(recipe(Schedule::ReferenceStep, OptimizerKind::Sgd)),
            [1.0, 1.0, 1.0, 1.0, 0.1f64 * 1.0]
        );
        let adamw = OptimizerKind::Adamw {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            decay_on: DecayOn::All,
        };
        // CosineAnnealingLR(T_max=4): 1, 0.854, 0.5, 0.146 over 4 epochs.
        let r = rates(recipe(Schedule::Cosine, adamw));
        assert_eq!(r.len(), 4);
        for (got, want) in r
            .iter()
            .zip([1.0, 0.853_553_390_593_273_8, 0.5, 0.146_446_609_406_726_24])
        {
            assert!((got - want).abs() < 1e-12, "{r:?}");
        }
        // LambdaLR(0.5 (1 + cos(pi e / 4 / 2))): 1, 0.962, 0.854, 0.691.
        let r = rates(recipe(Schedule::HalfCosine, OptimizerKind::Sgd));
        for (got, want) in r.iter().zip([
            1.0,
            0.961_939_766_255_643_4,
            0.853_553_390_593_273_8,
            0.691_341_716_182_544_9,
        ]) {
            assert!((got - want).abs() < 1e-12, "{r:?}");
        }
    }
}
