//! `Optimizer`: what the training loops need of an optimiser, so that one epoch, one
//! evaluation schedule and the condensation engine run SGD (the matching methods and DC's
//! evaluation) and Adam/AdamW (SRe2L's recovery and the soft-label recipes of SRe2L and RDED)
//! alike.

use candle_core::{Tensor, Var};

use crate::Result;

/// An optimiser over a fixed list of variables.
pub trait Optimizer: Send {
    /// The variables it steps, in order.
    fn vars(&self) -> &[Var];

    /// One step with explicit gradients, one per variable (None: no gradient, no update, as
    /// PyTorch skips a parameter whose `.grad` is None).
    fn step_with(&mut self, grads: &[Option<Tensor>]) -> Result<()>;

    /// The learning rate of the next step.
    fn lr(&self) -> f64;

    /// Sets the learning rate of the next steps (a schedule's `param_group["lr"] = ...`).
    fn set_lr(&mut self, lr: f64);

    /// The optimiser's state buffers by name (None before the first step), for checkpoints.
    fn state(&self) -> Vec<(String, Option<Tensor>)>;

    /// Steps taken (Adam's bias correction counts them; 0 for SGD, which needs no count).
    fn steps(&self) -> usize {
        0
    }

    /// Restores what [`Optimizer::state`] and [`Optimizer::steps`] returned.
    fn load_state(&mut self, state: Vec<(String, Option<Tensor>)>, steps: usize) -> Result<()>;

    /// Backpropagates `loss` and steps every variable that received a gradient.
    fn backward_step(&mut self, loss: &Tensor) -> Result<()> {
        // A training step never differentiates its gradients: keep no graph of them.
        let grads = crate::nn::first_order(|| loss.backward())?;
        let per_var: Vec<Option<Tensor>> = self.vars().iter().map(|v| grads.get(v.as_tensor()).cloned()).collect();
        self.step_with(&per_var)
    }
}
