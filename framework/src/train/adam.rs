//! Adam and AdamW as `torch.optim.Adam` / `torch.optim.AdamW` compute them (the single-tensor
//! path, no AMSGrad):
//!
//! ```text
//! t += 1
//! AdamW: p *= 1 - lr * wd          Adam with wd: g += wd * p
//! m = m + (1 - b1) (g - m)         (exp_avg.lerp_(grad, 1 - beta1))
//! v = b2 v + (1 - b2) g^2
//! p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
//! ```
//!
//! SRe2L recovers its images with Adam(betas (0.5, 0.9), eps 1e-8) (VILA-Lab/SRe2L
//! `SRe2L/*small_dataset/recover_cifar.py:69`); its and RDED's soft-label evaluations train with
//! AdamW (`relabel_cifar.py:104`; LINs-lab/RDED `validation/main.py:87-92`, weight decay only on
//! the weights of more than one dimension, `validation/utils.py:67-84`).

use candle_core::{Tensor, Var};

use super::optimizer::Optimizer;
use crate::{Error, Result};

/// How weight decay applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decay {
    /// Added to the gradient (`torch.optim.Adam`'s `weight_decay`).
    Coupled,
    /// Applied to the parameter before the step (`torch.optim.AdamW`).
    Decoupled,
}

/// The settings of one [`Adam`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamConfig {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    pub decay: Decay,
}

impl AdamConfig {
    /// Refuses settings PyTorch refuses, naming the setting `what` (e.g. `eval.kd_recipe`).
    pub fn validate(&self, what: &str) -> Result<()> {
        for (name, b) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(0.0..1.0).contains(&b) {
                return Err(Error::invalid(
                    format!("{what}.{name}"),
                    b,
                    "an Adam beta must be in [0, 1)",
                ));
            }
        }
        if !(self.eps.is_finite() && self.eps >= 0.0) {
            return Err(Error::invalid(
                format!("{what}.eps"),
                self.eps,
                "must be a finite number >= 0",
            ));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(Error::invalid(
                format!("{what}.weight_decay"),
                self.weight_decay,
                "must be a finite number >= 0",
            ));
        }
        Ok(())
    }
}

/// Adam or AdamW over a fixed list of variables.
pub struct Adam {
    vars: Vec<Var>,
    /// Whether weight decay applies to each variable (RDED decays only matrices and kernels).
    decays: Vec<bool>,
    m: Vec<Option<Tensor>>,
    v: Vec<Option<Tensor>>,
    steps: usize,
    config: AdamConfig,
}

impl Adam {
    /// Weight decay on every variable.
    pub fn new(vars: Vec<Var>, config: AdamConfig) -> Self {
        let decays = vec![true; vars.len()];
        Self::with_decay_mask(vars, decays, config)
    }

    /// Weight decay only where `decays` is true (one flag per variable).
    pub fn with_decay_mask(vars: Vec<Var>, decays: Vec<bool>, config: AdamConfig) -> Self {
        let n = vars.len();
        Self {
            vars,
            decays,
            m: vec![None; n],
            v: vec![None; n],
            steps: 0,
            config,
        }
    }

    pub fn config(&self) -> &AdamConfig {
        &self.config
    }
}

impl Optimizer for Adam {
    fn vars(&self) -> &[Var] {
        &self.vars
    }

    fn step_with(&mut self, grads: &[Option<Tensor>]) -> Result<()> {
        self.steps += 1;
        let c = self.config;
        let t = self.steps as i32;
        let bias1 = 1.0 - c.beta1.powi(t);
        let bias2_sqrt = (1.0 - c.beta2.powi(t)).sqrt();
        let step_size = c.lr / bias1;
        for (k, g) in grads.iter().enumerate() {
            let (Some(g), Some(var)) = (g, self.vars.get(k)) else {
                continue;
            };
            // Detached throughout, as Sgd::step_with: the state must not keep a graph alive.
            let mut param = var.as_tensor().detach();
            let mut g = g.detach();
            if c.weight_decay != 0.0 && self.decays[k] {
                match c.decay {
                    Decay::Coupled => g = (g + (&param * c.weight_decay)?)?,
                    Decay::Decoupled => param = (&param * (1.0 - c.lr * c.weight_decay))?,
                }
            }
            let m = match self.m[k].take() {
                Some(m) => (&m + ((&g - &m)? * (1.0 - c.beta1))?)?,
                None => (&g * (1.0 - c.beta1))?,
            };
            let g2 = (g.sqr()? * (1.0 - c.beta2))?;
            let v = match self.v[k].take() {
                Some(v) => ((v * c.beta2)? + g2)?,
                None => g2,
            };
            let denom = ((v.sqrt()? / bias2_sqrt)? + c.eps)?;
            let update = ((&m / denom)? * step_size)?;
            var.set(&(param - update)?)?;
            self.m[k] = Some(m);
            self.v[k] = Some(v);
        }
        Ok(())
    }

    fn lr(&self) -> f64 {
        self.config.lr
    }

    fn set_lr(&mut self, lr: f64) {
        self.config.lr = lr;
    }

    fn state(&self) -> Vec<(String, Option<Tensor>)> {
        let named = |prefix: &str, list: &[Option<Tensor>]| -> Vec<(String, Option<Tensor>)> {
            list.iter()
                .enumerate()
                .map(|(k, t)| (format!("{prefix}.{k}"), t.clone()))
                .collect()
        };
        let mut out = named("exp_avg", &self.m);
        out.extend(named("exp_avg_sq", &self.v));
        out
    }

    fn steps(&self) -> usize {
        self.steps
    }

    fn load_state(&mut self, state: Vec<(String, Option<Tensor>)>, steps: usize) -> Result<()> {
        let n = self.vars.len();
        if state.len() != 2 * n {
            return Err(Error::Other(format!(
                "Adam state holds {} buffers; an optimiser of {n} variables has {}",
                state.len(),
                2 * n
            )));
        }
        let mut buffers = state.into_iter().map(|(_, t)| t);
        self.m = buffers.by_ref().take(n).collect();
        self.v = buffers.collect();
        self.steps = steps;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// Two steps of `torch.optim.Adam([p], lr=0.1, betas=(0.5, 0.9), eps=1e-8)` and of
    /// `torch.optim.AdamW([p], lr=0.1, weight_decay=0.01)` from p = [1, -2] with the gradient
    /// [0.5, 1.0] both times, computed by hand from the update rule in the module header.
    #[test]
    fn two_steps_follow_torch() -> Result<()> {
        let grad = Tensor::new(&[0.5f64, 1.0], &Device::Cpu)?;
        let run = |config: AdamConfig| -> Result<Vec<f64>> {
            let var = Var::new(&[1.0f64, -2.0], &Device::Cpu)?;
            let mut opt = Adam::new(vec![var.clone()], config);
            opt.step_with(&[Some(grad.clone())])?;
            opt.step_with(&[Some(grad.clone())])?;
            Ok(var.as_tensor().to_vec1::<f64>()?)
        };
        let adam = AdamConfig {
            lr: 0.1,
            beta1: 0.5,
            beta2: 0.9,
            eps: 1e-8,
            weight_decay: 0.0,
            decay: Decay::Coupled,
        };
        // A constant gradient makes m_hat = g and v_hat = g^2 at every step: each step moves
        // by lr * g / (|g| + eps) = lr * sign(g).
        let p = run(adam)?;
        assert!((p[0] - 0.8).abs() < 1e-7 && (p[1] + 2.2).abs() < 1e-7, "{p:?}");
        let adamw = AdamConfig {
            beta1: 0.9,
            beta2: 0.999,
            weight_decay: 0.01,
            decay: Decay::Decoupled,
            ..adam
        };
        // Decay first: p0 = 1 * (1 - 0.001) - 0.1 = 0.899, then 0.899 * 0.999 - 0.1.
        let p = run(adamw)?;
        let p0 = (1.0 * 0.999 - 0.1) * 0.999 - 0.1;
        let p1 = (-2.0 * 0.999 - 0.1) * 0.999 - 0.1;
        assert!((p[0] - p0).abs() < 1e-7 && (p[1] - p1).abs() < 1e-7, "{p:?}");
        Ok(())
    }
}
