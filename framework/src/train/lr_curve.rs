//! Learning-rate curves over the steps (or epochs) of a run, as closed forms of step and total,
//! so that a resumed run sets the same rate without replaying a scheduler.
//!
//! - `Cosine`: `0.5 (1 + cos(pi t / T))`, from 1 at t = 0 towards 0 at t = T. SRe2L's recovery
//!   sets it before each step (VILA-Lab/SRe2L `SRe2L/*small_dataset/utils.py:60-70`
//!   `lr_cosine_policy` without warm-up, `recover_cifar.py:70,76`); its squeeze and relabel use
//!   `torch.optim.lr_scheduler.CosineAnnealingLR(T_max=epochs)` stepped after each epoch
//!   (`squeeze_cifar.py:86,155`, `relabel_cifar.py:106,197`), whose rate at epoch e is the same
//!   closed form with eta_min 0.
//! - `HalfCosine`: `0.5 (1 + cos(pi t / (2 T)))`, from 1 to 0.5 at t = T: the `LambdaLR` that
//!   RDED's evaluation and DD-Ranking's `cosine` use (LINs-lab/RDED `validation/main.py:95-102`;
//!   NUS-HPC-AI-Lab/DD-Ranking `ddranking/utils/train_and_eval.py:121-127`), stepped per epoch.
//!   Its divisor `/ 2` keeps the rate at half its start at the end, a quirk reproduced as is.

use serde::{Deserialize, Serialize};

/// A learning-rate curve (see the module header).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LrCurve {
    Cosine,
    HalfCosine,
}

impl LrCurve {
    /// The factor of the base rate at step `t` (0-based) of `total`.
    pub fn factor(self, t: usize, total: usize) -> f64 {
        let x = t as f64 / total.max(1) as f64;
        match self {
            LrCurve::Cosine => 0.5 * (1.0 + (std::f64::consts::PI * x).cos()),
            LrCurve::HalfCosine => 0.5 * (1.0 + (std::f64::consts::PI * x / 2.0).cos()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curves_start_at_one_and_end_where_the_references_end() {
        assert_eq!(LrCurve::Cosine.factor(0, 10), 1.0);
        assert!((LrCurve::Cosine.factor(5, 10) - 0.5).abs() < 1e-15);
        assert!(LrCurve::Cosine.factor(10, 10).abs() < 1e-15);
        assert_eq!(LrCurve::HalfCosine.factor(0, 10), 1.0);
        // LambdaLR(0.5 * (1 + cos(pi * step / epochs / 2))) at step = epochs: 0.5.
        assert!((LrCurve::HalfCosine.factor(10, 10) - 0.5).abs() < 1e-15);
    }
}
