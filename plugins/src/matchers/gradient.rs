//! `gradient`: gradient matching (DC; Zhao, Mopuri & Bilen, "Dataset Condensation with
//! Gradient Matching", ICLR 2021, <https://arxiv.org/abs/2006.05929>).
//!
//! For each class c: `g_real = dCE(net(real_c), c)/dtheta` (detached) and `g_syn` the same for
//! the synthetic images of c, kept differentiable; `loss = sum_c distance(g_syn, g_real)`.
//! Its derivative w.r.t. the synthetic pixels is second order. Two ways to get it:
//! - `hvp = "exact"`: candle keeps the gradients in the graph (CANDLE_NOTES 1) and the loss is
//!   backpropagated through them;
//! - `hvp = "finite_difference"`: with `v = dD/dg_syn` (first order), the pixel gradient is the
//!   Hessian-vector product `d/dx <grad_theta L(theta, x), v>`, approximated by
//!   `(grad_x L(theta + eps v, x) - grad_x L(theta - eps v, x)) / 2 eps`, with
//!   `eps = fd_epsilon / ||v||` (two extra first-order backward passes per class).
//!
//! BatchNorm networks: running statistics are first estimated on `bn_real_per_class` real
//! images per class, then frozen (evaluation mode) for the matching step, as the reference does.

use cafe_framework::nn::first_order;
use cafe_framework::train::cross_entropy;
use cafe_framework::traits::matcher::{Decomposition, Init, MatchContext, MatchOutput, Matcher, MatcherDefaults};
use cafe_framework::{register_matcher, Error, Mode, Network, Result};
use candle_core::{DType, Tensor, Var};
use serde::{Deserialize, Serialize};

use super::gradient_distance::{gradient_distance, DisMetric};

/// How the second-order pixel gradient is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Hvp {
    #[default]
    Exact,
    FiniteDifference,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct GradientConfig {
    pub dis_metric: DisMetric,
    pub hvp: Hvp,
    /// Relative step of the finite-difference HVP: `eps = fd_epsilon / ||v||`.
    pub fd_epsilon: f64,
    /// Real images per class used to estimate BatchNorm statistics before matching.
    pub bn_real_per_class: usize,
}

impl Default for GradientConfig {
    fn default() -> Self {
        Self {
            dis_metric: DisMetric::Ours,
            hvp: Hvp::Exact,
            fd_epsilon: 1e-2,
            bn_real_per_class: 16,
        }
    }
}

pub struct Gradient {
    config: GradientConfig,
}

/// Gradients of the mean cross-entropy of `x` (all labelled `c`) w.r.t. `params`, one per
/// parameter (zeros for a parameter the loss does not reach).
pub fn parameter_gradients(net: &dyn Network, params: &[Var], x: &Tensor, c: usize, mode: Mode) -> Result<Vec<Tensor>> {
    let labels = Tensor::full(c as u32, x.dim(0)?, x.device())?;
    let loss = cross_entropy(&net.logits(x, mode)?, &labels)?;
    let grads = loss.backward()?;
    params
        .iter()
        .map(|p| match grads.get(p.as_tensor()) {
            Some(g) => Ok(g.clone()),
            None => Ok(p.as_tensor().zeros_like()?),
        })
        .collect()
}

impl Gradient {
    /// Estimates BatchNorm running statistics on a few real images per class (train-mode
    /// forward) and returns the mode in which matching runs.
    fn prepare_batch_norm(&self, ctx: &MatchContext) -> Result<Mode> {
        if !ctx.network.has_batch_norm() {
            return Ok(Mode::Train);
        }
        // DatasetCondensation main.py:164-174: BNSizePC = 16 fresh real images per class, not
        // augmented, in one train-mode forward; then the BatchNorm layers are frozen (eval).
        let parts = (0..ctx.classes())
            .map(|c| ctx.fresh_real.sample(c, self.config.bn_real_per_class))
            .collect::<Result<Vec<_>>>()?;
        ctx.network.forward(&Tensor::cat(&parts, 0)?, Mode::Train)?;
        Ok(Mode::Eval)
    }

    fn exact(&self, ctx: &MatchContext, params: &[Var], mode: Mode) -> Result<MatchOutput> {
        let mut total: Option<Tensor> = None;
        let mut parts = Vec::new();
        let mut terms = Vec::new();
        for c in ctx.owned.clone() {
            // Only g_syn is differentiated again: g_real keeps no graph of its backward pass.
            let g_real: Vec<Tensor> = first_order(|| parameter_gradients(ctx.network, params, &ctx.real[c], c, mode))?
                .iter()
                .map(Tensor::detach)
                .collect();
            let g_syn = parameter_gradients(ctx.network, params, &ctx.synthetic_class(c)?, c, mode)?;
            let d = gradient_distance(self.config.dis_metric, &g_real, &g_syn)?;
            terms.push((format!("class_{c}"), d.to_dtype(DType::F64)?.to_scalar::<f64>()?));
            parts.push(d.detach());
            total = Some(match total {
                Some(t) => (t + d)?,
                None => d,
            });
        }
        let loss = total.ok_or_else(|| Error::Other("gradient matching needs at least one class".into()))?;
        let value = loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        if !value.is_finite() {
            return Err(Error::NonFinite(format!(
                "gradient matching loss is {value}; lower --lr-img"
            )));
        }
        // Without second-order gradients candle detaches g_syn and no path reaches the pixels:
        // say so instead of returning a zero gradient.
        // The pixel gradient is only read; the graph it goes through was built with g_syn.
        let grads = first_order(|| loss.backward())?;
        let gradient = grads
            .get(ctx.synthetic.as_tensor())
            .map(Tensor::detach)
            .ok_or_else(|| {
                Error::Other(
                    "exact gradient matching needs second-order gradients, which this thread did not \
                 enable: call cafe_framework::enable_second_order_gradients() before any backward \
                 pass, or set matcher.hvp=finite_difference"
                        .into(),
                )
            })?;
        Ok(MatchOutput {
            loss: value,
            terms,
            gradient,
            learned: Vec::new(),
            loss_parts: parts,
            loss_global: None,
            skip: false,
            assign: Vec::new(),
            record: Vec::new(),
        })
    }

    fn finite_difference(&self, ctx: &MatchContext, params: &[Var], mode: Mode) -> Result<MatchOutput> {
        let theta: Vec<Tensor> = params
            .iter()
            .map(|p| p.as_tensor().copy())
            .collect::<candle_core::Result<_>>()?;
        let mut gradient = ctx.synthetic.as_tensor().zeros_like()?;
        let mut loss_total = 0.0;
        let mut parts = Vec::new();
        let mut terms = Vec::new();
        for c in ctx.owned.clone() {
            let g_real: Vec<Tensor> = first_order(|| parameter_gradients(ctx.network, params, &ctx.real[c], c, mode))?
                .iter()
                .map(Tensor::detach)
                .collect();
            let syn_c = ctx.synthetic_class(c)?;
            let g_syn: Vec<Var> = first_order(|| parameter_gradients(ctx.network, params, &syn_c.detach(), c, mode))?
                .iter()
                .map(|g| Var::from_tensor(&g.detach()))
                .collect::<candle_core::Result<_>>()?;
            let g_syn_t: Vec<Tensor> = g_syn.iter().map(|v| v.as_tensor().clone()).collect();
            let d = gradient_distance(self.config.dis_metric, &g_real, &g_syn_t)?;
            let value = d.to_dtype(DType::F64)?.to_scalar::<f64>()?;
            terms.push((format!("class_{c}"), value));
            loss_total += value;
            // The loss adds the terms in f64: so do the parts.
            parts.push(Tensor::new(value, ctx.synthetic.device())?);
            // v = dD/dg_syn: first order.
            let dgrads = first_order(|| d.backward())?;
            let v: Vec<Tensor> = g_syn
                .iter()
                .map(|g| {
                    dgrads
                        .get(g.as_tensor())
                        .cloned()
                        .map_or_else(|| g.as_tensor().zeros_like(), Ok)
                })
                .collect::<candle_core::Result<_>>()?;
            let v_norm = v
                .iter()
                .map(|t| t.sqr()?.sum_all()?.to_dtype(DType::F64)?.to_scalar::<f64>())
                .sum::<candle_core::Result<f64>>()?
                .sqrt();
            if v_norm == 0.0 {
                continue;
            }
            let eps = self.config.fd_epsilon / v_norm;
            let pixel_grad = |sign: f64| -> Result<Tensor> {
                for ((p, t), vi) in params.iter().zip(&theta).zip(&v) {
                    p.set(&(t + (vi * (sign * eps))?)?)?;
                }
                let syn_c = ctx.synthetic_class(c)?;
                let labels = Tensor::full(c as u32, syn_c.dim(0)?, syn_c.device())?;
                let loss = cross_entropy(&ctx.network.logits(&syn_c, mode)?, &labels)?;
                let grads = first_order(|| loss.backward())?;
                Ok(grads
                    .get(ctx.synthetic.as_tensor())
                    .map_or_else(|| ctx.synthetic.as_tensor().zeros_like(), |g| Ok(g.detach()))?)
            };
            let plus = pixel_grad(1.0)?;
            let minus = pixel_grad(-1.0)?;
            for (p, t) in params.iter().zip(&theta) {
                p.set(t)?;
            }
            gradient = (gradient + ((plus - minus)? / (2.0 * eps))?)?;
        }
        if !loss_total.is_finite() {
            return Err(Error::NonFinite(format!("gradient matching loss is {loss_total}")));
        }
        Ok(MatchOutput {
            loss: loss_total,
            terms,
            gradient,
            learned: Vec::new(),
            loss_parts: parts,
            loss_global: None,
            skip: false,
            assign: Vec::new(),
            record: Vec::new(),
        })
    }
}

impl Matcher for Gradient {
    fn compute(&self, ctx: &MatchContext) -> Result<MatchOutput> {
        let mode = self.prepare_batch_norm(ctx)?;
        let params = ctx.network.parameters();
        match self.config.hvp {
            Hvp::Exact => self.exact(ctx, &params, mode),
            Hvp::FiniteDifference => self.finite_difference(ctx, &params, mode),
        }
    }

    /// Per class: each class's gradients come from its own images. On a BatchNorm network too:
    /// the statistics are estimated on every class's fresh images on every rank, then frozen.
    fn decomposition(&self, _network: &dyn Network) -> Decomposition {
        Decomposition::PerClass
    }

    fn defaults(&self) -> MatcherDefaults {
        MatcherDefaults {
            lr_img: 0.1,
            init: Init::Noise,
            iterations: 1000,
            needs_second_order: self.config.hvp == Hvp::Exact,
        }
    }
}

register_matcher!(
    "gradient",
    "DC (ICLR 2021): match per-class gradients of the CE loss w.r.t. the network weights",
    GradientConfig,
    |config: GradientConfig| -> Result<Box<dyn Matcher>> {
        if !(config.fd_epsilon.is_finite() && config.fd_epsilon > 0.0) {
            return Err(Error::invalid(
                "matcher.fd_epsilon",
                config.fd_epsilon,
                "must be a positive number",
            ));
        }
        if config.bn_real_per_class == 0 {
            return Err(Error::invalid("matcher.bn_real_per_class", 0, "must be at least 1"));
        }
        Ok(Box::new(Gradient { config }))
    }
);
