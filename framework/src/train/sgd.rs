//! PyTorch-style SGD with momentum and weight decay (candle-nn has no momentum SGD and its
//! `Optimizer` trait is not object safe; CANDLE_NOTES 5).
//!
//! Update, as `torch.optim.SGD` (dampening 0, no Nesterov):
//! `g' = g + wd * p;  v = mu * v + g'  (v = g' on the first step);  p -= lr * v`.

use candle_core::{Tensor, Var};

use crate::Result;

/// SGD over a fixed list of variables.
pub struct Sgd {
    vars: Vec<Var>,
    velocity: Vec<Option<Tensor>>,
    pub lr: f64,
    pub momentum: f64,
    pub weight_decay: f64,
}

impl Sgd {
    pub fn new(vars: Vec<Var>, lr: f64, momentum: f64, weight_decay: f64) -> Self {
        let velocity = vec![None; vars.len()];
        Self {
            vars,
            velocity,
            lr,
            momentum,
            weight_decay,
        }
    }

    pub fn vars(&self) -> &[Var] {
        &self.vars
    }

    /// The momentum buffers (None before the first step), for checkpoints.
    pub fn velocity(&self) -> &[Option<Tensor>] {
        &self.velocity
    }

    /// Restores momentum buffers saved by [`Sgd::velocity`].
    pub fn set_velocity(&mut self, velocity: Vec<Option<Tensor>>) {
        self.velocity = velocity;
    }

    /// One step with explicit gradients, one per variable (None: no gradient, no update).
    pub fn step_with(&mut self, grads: &[Option<Tensor>]) -> Result<()> {
        for ((var, v), g) in self.vars.iter().zip(self.velocity.iter_mut()).zip(grads) {
            let Some(g) = g else { continue };
            let mut g = g.detach();
            if self.weight_decay != 0.0 {
                g = (g + (var.as_tensor() * self.weight_decay)?)?;
            }
            let update = if self.momentum != 0.0 {
                let new_v = match v.take() {
                    Some(old) => ((old * self.momentum)? + g)?,
                    None => g,
                };
                *v = Some(new_v.clone());
                new_v
            } else {
                g
            };
            var.set(&(var.as_tensor() - (update * self.lr)?)?)?;
        }
        Ok(())
    }

    /// Backpropagates `loss` and steps every variable that received a gradient.
    pub fn backward_step(&mut self, loss: &Tensor) -> Result<()> {
        let grads = loss.backward()?;
        let per_var: Vec<Option<Tensor>> = self.vars.iter().map(|v| grads.get(v.as_tensor()).cloned()).collect();
        self.step_with(&per_var)
    }
}
