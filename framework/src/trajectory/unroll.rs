//! Trajectory matching's loss and its gradient (MTT, Cazenavette et al., CVPR 2022): a student
//! starts from an expert's parameters `w_0` at some epoch, takes `T` SGD steps of a learned size
//! `a` on minibatches of the synthetic set,
//! `w_{i+1} = w_i - a * grad_w CE(f(w_i, x_i), y_i)`, and the loss is how far it lands from the
//! expert `M` epochs later, relative to how far the expert itself moved:
//! `L = ||w_T - w*||^2 / ||w_0 - w*||^2` (mtt-distillation `distill.py:324-386`; the reference
//! divides both by the parameter count, which cancels). Its gradient reaches the pixels, the
//! step size and (when the set learns them) the soft labels through every step.
//!
//! Three ways to get that gradient, one result:
//! - [`Unroll::Graph`]: the reference's way, one autograd graph through all `T` steps
//!   (`create_graph=True` at each, `distill.py:368`). Memory grows with `T`, and candle's
//!   backward re-walks the whole history at every step's gradient, so time grows as `T^2`.
//! - [`Unroll::Reverse`]: the same exact gradient with memory constant in `T`, by reverse-mode
//!   by hand. Keep only `w_0..w_T` (parameter-sized, as TESLA does); then for `i = T-1..0`, with
//!   the adjoint `l_{i+1} = dL/dw_{i+1}` (starting at `2 (w_T - w*) / ||w_0 - w*||^2`), rebuild
//!   step `i`'s graph alone and differentiate `s_i = g_i . l_{i+1}` once more:
//!   `dL/dx_i += -a ds_i/dx_i`, `dL/da += -s_i`, and `l_i = l_{i+1} - a ds_i/dw_i` (a
//!   Hessian-vector product). One step's graph lives at a time. Checked equal to `Graph` to
//!   floating-point tolerance (`plugins/tests/trajectory_gradcheck.rs`).
//! - [`Unroll::Tesla`]: what TESLA's public code computes (justincui03/tesla `distill.py:404-428`):
//!   the reverse pass with the adjoint held at `l_T` (no Hessian-vector products), i.e. the
//!   exact gradient without the terms through later steps' dependence on earlier ones. TESLA
//!   (Cui et al., ICML 2023) presents this as the exact gradient; it is not (the dropped terms
//!   are the Hessian products), so it is kept as a named option and never the default.

use candle_core::{DType, Tensor, Var};
use serde::{Deserialize, Serialize};

use crate::nn::first_order;
use crate::train::classification_loss;
use crate::traits::architecture::{Mode, Network};
use crate::traits::augmenter::Augmenter;
use crate::{Error, Result};

/// How the gradient of the unrolled loss is computed (module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Unroll {
    /// One graph through every step, as the reference (memory and candle's time grow with T).
    Graph,
    /// The same exact gradient, memory constant in T, time linear.
    #[default]
    Reverse,
    /// TESLA's public code: the reverse pass without Hessian-vector products (not exact).
    Tesla,
}

/// The targets of the student's cross-entropy.
#[derive(Clone, Copy)]
pub enum Targets<'a> {
    /// Hard labels `[N]` (u32).
    Labels(&'a Tensor),
    /// Learned soft-label logits `[N, classes]`: the gradient reaches them.
    Soft(&'a Var),
    /// Soft-label logits `[N, classes]` that are not learned (TESLA's labels from the target
    /// parameters): the same soft cross-entropy, no gradient to them.
    Fixed(&'a Tensor),
}

/// One student step: the rows of the synthetic set it trains on and its augmentation's seed.
#[derive(Debug, Clone)]
pub struct StudentStep {
    /// Row indices into the synthetic set, `[b]` (u32).
    pub rows: Tensor,
    pub augment_seed: u64,
}

/// The student of one matching step: a network (its structure; the parameters are given), the
/// synthetic set, its targets, the step size and the augmentation of each minibatch.
pub struct Student<'a> {
    pub network: &'a dyn Network,
    /// The synthetic pixels `[N, c, h, w]`.
    pub images: &'a Var,
    pub targets: Targets<'a>,
    /// The step size, a one-element tensor (`[]` or `[1]`).
    pub lr: &'a Var,
    /// Applied to each minibatch with the step's seed, each image its own parameters (MTT's
    /// `DiffAugment(x, strategy, param)` with `Siamese=False`, `distill.py:359`).
    pub augmenter: &'a dyn Augmenter,
}

/// The loss and its gradients.
#[derive(Debug, Clone)]
pub struct UnrollGradients {
    pub loss: f64,
    /// dL/dimages, the shape of the synthetic set.
    pub images: Tensor,
    /// dL/dlr, the shape of the step size.
    pub lr: Tensor,
    /// dL/dsoft-label logits, when the targets are soft.
    pub labels: Option<Tensor>,
}

/// `sum_p ||a_p - b_p||^2`, a scalar tensor.
fn squared_distance(a: &[Tensor], b: &[Tensor]) -> Result<Tensor> {
    let mut total: Option<Tensor> = None;
    for (x, y) in a.iter().zip(b) {
        let d = (x - y)?.sqr()?.sum_all()?;
        total = Some(match total {
            Some(t) => (t + d)?,
            None => d,
        });
    }
    total.ok_or_else(|| Error::Other("trajectory matching of a network without parameters".into()))
}

fn scalar(t: &Tensor) -> Result<f64> {
    Ok(t.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?[0])
}

fn grad_or_zero(grads: &candle_core::backprop::GradStore, t: &Tensor) -> Result<Tensor> {
    Ok(match grads.get(t) {
        Some(g) => g.detach(),
        None => t.zeros_like()?,
    })
}

impl Student<'_> {
    /// The minibatch of `step`: its images augmented (a graph back to the pixels when
    /// `differentiable`) and its targets (a graph back to soft labels when `differentiable`).
    fn batch(&self, step: &StudentStep, differentiable: bool) -> Result<(Tensor, Tensor)> {
        let images = if differentiable {
            self.images.as_tensor().clone()
        } else {
            self.images.as_tensor().detach()
        };
        let mut x = images.index_select(&step.rows, 0)?;
        if !self.augmenter.is_identity() {
            x = self.augmenter.augment(&x, step.augment_seed, false)?;
        }
        let y = match self.targets {
            Targets::Labels(labels) => labels.index_select(&step.rows, 0)?,
            Targets::Soft(var) if differentiable => var.as_tensor().index_select(&step.rows, 0)?,
            Targets::Soft(var) => var.as_tensor().detach().index_select(&step.rows, 0)?,
            Targets::Fixed(logits) => logits.detach().index_select(&step.rows, 0)?,
        };
        Ok((x, y))
    }

    /// The cross-entropy of the student at parameters `params` on a minibatch, in train mode
    /// (`student_net.train()`, `distill.py:301`).
    fn loss(&self, params: &[Tensor], x: &Tensor, y: &Tensor) -> Result<Tensor> {
        classification_loss(&self.network.logits_with(params, x, Mode::Train)?, y)
    }

    /// The matching loss after the `steps` from `start`, and its gradients, computed as `how`.
    /// `start` and `target` are in the order of `Network::parameters()`.
    pub fn match_trajectory(
        &self,
        start: &[Tensor],
        target: &[Tensor],
        steps: &[StudentStep],
        how: Unroll,
    ) -> Result<UnrollGradients> {
        if steps.is_empty() {
            return Err(Error::invalid(
                "matcher.syn_steps",
                0,
                "the student must take at least one step",
            ));
        }
        let start: Vec<Tensor> = start.iter().map(Tensor::detach).collect();
        let target: Vec<Tensor> = target.iter().map(Tensor::detach).collect();
        let expert_distance = squared_distance(&start, &target)?;
        if scalar(&expert_distance)? <= 0.0 {
            return Err(Error::Other(
                "the expert did not move between the start and target epochs (zero distance): the \
                 trajectory matching loss is undefined; check the expert store"
                    .into(),
            ));
        }
        match how {
            Unroll::Graph => self.through_graph(&start, &target, &expert_distance, steps),
            Unroll::Reverse => self.in_reverse(&start, &target, &expert_distance, steps, true),
            Unroll::Tesla => self.in_reverse(&start, &target, &expert_distance, steps, false),
        }
    }

    /// The reference's way: one graph through every step.
    fn through_graph(
        &self,
        start: &[Tensor],
        target: &[Tensor],
        expert_distance: &Tensor,
        steps: &[StudentStep],
    ) -> Result<UnrollGradients> {
        let lr = self.lr.as_tensor();
        let mut theta: Vec<Tensor> = start.to_vec();
        for step in steps {
            // candle keeps the gradients of `Var`s only: the gradient at theta_i (a result, not a
            // `Var`) is read at a zero `Var` added to it, and stays a function of theta_i, the
            // pixels and the step size because the backward keeps its graph.
            let probes = theta
                .iter()
                .map(|t| Ok(Var::from_tensor(&t.zeros_like()?)?))
                .collect::<Result<Vec<_>>>()?;
            let at = theta
                .iter()
                .zip(&probes)
                .map(|(t, z)| Ok((t + z.as_tensor())?))
                .collect::<Result<Vec<_>>>()?;
            let (x, y) = self.batch(step, true)?;
            let grads = self.loss(&at, &x, &y)?.backward()?;
            theta = theta
                .iter()
                .zip(&probes)
                .map(|(t, z)| {
                    let g = grads
                        .get(z.as_tensor())
                        .ok_or_else(|| Error::Other("a student parameter got no gradient".into()))?;
                    Ok((t - g.broadcast_mul(lr)?)?)
                })
                .collect::<Result<_>>()?;
        }
        let loss = (squared_distance(&theta, target)? / expert_distance)?;
        let value = scalar(&loss)?;
        let grads = first_order(|| loss.backward())?;
        Ok(UnrollGradients {
            loss: value,
            images: grad_or_zero(&grads, self.images.as_tensor())?,
            lr: grad_or_zero(&grads, lr)?,
            labels: match self.targets {
                Targets::Soft(v) => Some(grad_or_zero(&grads, v.as_tensor())?),
                Targets::Labels(_) | Targets::Fixed(_) => None,
            },
        })
    }

    /// The gradient of one step's loss at `params` (`Var`s): tensors of a graph back to
    /// `params`, `x` and `y` under candle's second-order switch (what the Hessian-vector product
    /// differentiates), plain values inside `first_order`.
    fn step_gradient(&self, params: &[Var], x: &Tensor, y: &Tensor) -> Result<Vec<Tensor>> {
        let tensors: Vec<Tensor> = params.iter().map(|v| v.as_tensor().clone()).collect();
        let grads = self.loss(&tensors, x, y)?.backward()?;
        params
            .iter()
            .map(|v| {
                grads
                    .get(v.as_tensor())
                    .cloned()
                    .ok_or_else(|| Error::Other("a student parameter got no gradient".into()))
            })
            .collect()
    }

    /// The student's parameters `w_0 = start, w_1, ..., w_T` after each of `steps`, values only
    /// (no graph).
    pub fn parameters_along(&self, start: &[Tensor], steps: &[StudentStep]) -> Result<Vec<Vec<Tensor>>> {
        let lr = self.lr.as_tensor().detach();
        let mut trajectory: Vec<Vec<Tensor>> = Vec::with_capacity(steps.len() + 1);
        trajectory.push(start.iter().map(Tensor::detach).collect());
        for step in steps {
            let w = trajectory.last().expect("holds the start");
            let vars = w
                .iter()
                .map(Var::from_tensor)
                .collect::<candle_core::Result<Vec<_>>>()?;
            let (x, y) = self.batch(step, false)?;
            let g = first_order(|| self.step_gradient(&vars, &x, &y))?;
            let next = w
                .iter()
                .zip(&g)
                .map(|(w, g)| Ok((w - g.detach().broadcast_mul(&lr)?)?))
                .collect::<Result<Vec<_>>>()?;
            trajectory.push(next);
        }
        Ok(trajectory)
    }

    /// Reverse-mode by hand, one step's graph at a time (module docs); `hessian: false` is
    /// TESLA's code.
    fn in_reverse(
        &self,
        start: &[Tensor],
        target: &[Tensor],
        expert_distance: &Tensor,
        steps: &[StudentStep],
        hessian: bool,
    ) -> Result<UnrollGradients> {
        let lr_value = scalar(self.lr.as_tensor())?;
        let trajectory = self.parameters_along(start, steps)?;
        let last = trajectory.last().expect("holds the start");
        let loss = scalar(&(squared_distance(last, target)? / expert_distance)?)?;
        // dL/dw_T = 2 (w_T - w*) / ||w_0 - w*||^2.
        let scale = 2.0 / scalar(expert_distance)?;
        let mut adjoint: Vec<Tensor> = last
            .iter()
            .zip(target)
            .map(|(w, t)| Ok(((w - t)? * scale)?))
            .collect::<Result<_>>()?;
        let mut d_images = self.images.as_tensor().zeros_like()?;
        let mut d_lr = 0.0f64;
        let mut d_labels = match self.targets {
            Targets::Soft(v) => Some(v.as_tensor().zeros_like()?),
            Targets::Labels(_) | Targets::Fixed(_) => None,
        };
        for (i, step) in steps.iter().enumerate().rev() {
            let vars = trajectory[i]
                .iter()
                .map(Var::from_tensor)
                .collect::<candle_core::Result<Vec<_>>>()?;
            let (x, y) = self.batch(step, true)?;
            let g = self.step_gradient(&vars, &x, &y)?;
            // s_i = g_i . l_{i+1}: its gradient is a Hessian-vector product in w_i and the
            // pixels' (and soft labels') share of the step in x_i.
            let s = dot_with_constant(&g, &adjoint)?;
            d_lr -= scalar(&s)?;
            let grads = first_order(|| s.backward())?;
            d_images = (d_images - (grad_or_zero(&grads, self.images.as_tensor())? * lr_value)?)?;
            if let (Some(d), Targets::Soft(v)) = (&mut d_labels, self.targets) {
                *d = (&*d - (grad_or_zero(&grads, v.as_tensor())? * lr_value)?)?;
            }
            if hessian {
                adjoint = adjoint
                    .iter()
                    .zip(&vars)
                    .map(|(l, v)| Ok((l - (grad_or_zero(&grads, v.as_tensor())? * lr_value)?)?))
                    .collect::<Result<_>>()?;
            }
        }
        Ok(UnrollGradients {
            loss,
            images: d_images,
            lr: Tensor::full(d_lr, self.lr.dims(), self.lr.device())?.to_dtype(self.lr.dtype())?,
            labels: d_labels,
        })
    }
}

/// `sum_p (a_p . b_p)` with `b` constant, a scalar tensor (differentiable in `a`).
fn dot_with_constant(a: &[Tensor], b: &[Tensor]) -> Result<Tensor> {
    let mut total: Option<Tensor> = None;
    for (x, y) in a.iter().zip(b) {
        let d = (x * y.detach())?.sum_all()?;
        total = Some(match total {
            Some(t) => (t + d)?,
            None => d,
        });
    }
    total.ok_or_else(|| Error::Other("trajectory matching of a network without parameters".into()))
}
