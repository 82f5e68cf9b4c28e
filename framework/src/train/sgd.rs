//! PyTorch-style SGD with momentum and weight decay (candle-nn has no momentum SGD and its
//! `Optimizer` trait is not object safe; CANDLE_NOTES 5).
//!
//! Update, as `torch.optim.SGD` (dampening 0, no Nesterov):
//! `g' = g + wd * p;  v = mu * v + g'  (v = g' on the first step);  p -= lr * v`.

use candle_core::{Tensor, Var};

use super::optimizer::Optimizer;
use crate::{Error, Result};

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
            // Everything here is detached from the autograd graph: `var * wd` of the variable
            // itself would record an op, and the velocity would then hold the previous
            // velocity (and so every earlier one) alive: memory growing by a few copies of
            // the parameters per step (19 GB after 300 AlexNet epochs, measured).
            let param = var.as_tensor().detach();
            let mut g = g.detach();
            if self.weight_decay != 0.0 {
                g = (g + (&param * self.weight_decay)?)?;
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
            var.set(&(param - (update * self.lr)?)?)?;
        }
        Ok(())
    }

    /// Backpropagates `loss` and steps every variable that received a gradient.
    pub fn backward_step(&mut self, loss: &Tensor) -> Result<()> {
        // A training step never differentiates its gradients: keep no graph of them.
        let grads = crate::nn::first_order(|| loss.backward())?;
        let per_var: Vec<Option<Tensor>> = self.vars.iter().map(|v| grads.get(v.as_tensor()).cloned()).collect();
        self.step_with(&per_var)
    }
}

impl Optimizer for Sgd {
    fn vars(&self) -> &[Var] {
        &self.vars
    }

    fn step_with(&mut self, grads: &[Option<Tensor>]) -> Result<()> {
        Sgd::step_with(self, grads)
    }

    fn lr(&self) -> f64 {
        self.lr
    }

    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }

    fn state(&self) -> Vec<(String, Option<Tensor>)> {
        self.velocity
            .iter()
            .enumerate()
            .map(|(k, v)| (format!("momentum_buffer.{k}"), v.clone()))
            .collect()
    }

    fn load_state(&mut self, state: Vec<(String, Option<Tensor>)>, _steps: usize) -> Result<()> {
        if state.len() != self.vars.len() {
            return Err(Error::Other(format!(
                "SGD state holds {} momentum buffers; an optimiser of {} variables has as many",
                state.len(),
                self.vars.len()
            )));
        }
        self.velocity = state.into_iter().map(|(_, v)| v).collect();
        Ok(())
    }

    fn backward_step(&mut self, loss: &Tensor) -> Result<()> {
        Sgd::backward_step(self, loss)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn steps_follow_torch_sgd_and_keep_no_graph() -> Result<()> {
        let var = Var::new(&[1.0f64, -2.0], &Device::Cpu)?;
        let mut opt = Sgd::new(vec![var.clone()], 0.1, 0.9, 0.5);
        let grad = Tensor::new(&[0.5f64, 1.0], &Device::Cpu)?;
        opt.step_with(&[Some(grad.clone())])?;
        // g' = g + wd p = [1.0, 0.0]; v = g'; p = [0.9, -2.0]
        opt.step_with(&[Some(grad)])?;
        // g' = [0.5 + 0.45, 1.0 - 1.0] = [0.95, 0.0]; v = 0.9 [1, 0] + g' = [1.85, 0]; p = [0.715, -2]
        let p = var.as_tensor().to_vec1::<f64>()?;
        assert!((p[0] - 0.715).abs() < 1e-12 && (p[1] + 2.0).abs() < 1e-12, "{p:?}");
        // A velocity that recorded `var * wd` would keep every earlier velocity alive and would
        // pass a gradient back to the variable.
        let v = opt.velocity()[0].clone().expect("a velocity after a step");
        let grads = v.sum_all()?.backward()?;
        assert!(
            grads.get(var.as_tensor()).is_none(),
            "the velocity is still attached to the graph"
        );
        Ok(())
    }
}
