//! `cafe`: CAFE (Wang et al., "CAFE: Learning to Condense Dataset by Aligning Features",
//! CVPR 2022, <https://arxiv.org/abs/2203.01531>).
//!
//! One forward pass of the real batches and of the synthetic images; two terms:
//! - layer-wise alignment: per class, the summed squared error between the mean real and the
//!   mean synthetic features of every block (after activation, before pooling), weighted per
//!   block, plus the same on the embedding;
//! - discriminant loss: the per-class mean synthetic embeddings act as the weights of a linear
//!   classifier of the real embeddings; cross-entropy (sum) against the real labels, weighted
//!   by `inner_weight`.
//!
//! Layer weights. The reference (ConvNet, depth 3) takes f1, f2, f3 = the blocks' features
//! with weights 0.1, 0.1, 1.0, then f4 = the last block's pooled map (1.0) and f5 = f4
//! flattened, the embedding (1.0). f4 and f5 hold the same numbers, so the embedding counts
//! twice: `embedding_weight` = 2.0 reproduces f4 + f5. For any depth the rule is: the last
//! block 1.0, every earlier block 0.1 (the reference's pattern), the embedding 2.0;
//! `block_weights` overrides the per-block list (its length must match the depth).
//!
//! The reference also adds the network's CE on the real batch; it does not reach the
//! synthetic pixels, so it is left out. The real features are used as values only.

use cafe_framework::nn::with_class_synced_batch_norm;
use cafe_framework::traits::matcher::{
    batch_norm_shares_by_class, Decomposition, Init, MatchContext, MatchOutput, Matcher, MatcherDefaults,
};
use cafe_framework::{register_matcher, Error, Mode, NetworkOutput, Result};
use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CafeConfig {
    /// Weight of each block's alignment; None: 0.1 for every block but the last, 1.0 for it.
    pub block_weights: Option<Vec<f64>>,
    /// Weight of the embedding's alignment (2.0 = the reference's f4 + f5).
    pub embedding_weight: f64,
    /// Weight of the discriminant loss.
    pub inner_weight: f64,
}

impl Default for CafeConfig {
    fn default() -> Self {
        Self {
            block_weights: None,
            embedding_weight: 2.0,
            inner_weight: 0.01,
        }
    }
}

/// The default block weights for a network of `depth` blocks.
pub fn default_block_weights(depth: usize) -> Vec<f64> {
    (0..depth).map(|i| if i + 1 == depth { 1.0 } else { 0.1 }).collect()
}

pub struct Cafe {
    config: CafeConfig,
}

/// Per-class mean over the batch dimension, flattened: `[d]`.
fn class_mean(t: &Tensor) -> Result<Tensor> {
    Ok(t.flatten_from(1)?.mean(0)?)
}

/// Forward of each class; for BatchNorm nets all classes in one batch (shared statistics).
fn forward_classes(net: &dyn cafe_framework::Network, batches: &[Tensor]) -> Result<Vec<NetworkOutput>> {
    if !net.has_batch_norm() {
        return batches.iter().map(|b| net.forward(b, Mode::Train)).collect();
    }
    let all = net.forward(&Tensor::cat(batches, 0)?, Mode::Train)?;
    let mut out = Vec::new();
    let mut start = 0;
    for b in batches {
        let n = b.dim(0)?;
        let take = |t: &Tensor| t.narrow(0, start, n);
        out.push(NetworkOutput {
            logits: take(&all.logits)?,
            embedding: take(&all.embedding)?,
            block_features: all
                .block_features
                .iter()
                .map(take)
                .collect::<candle_core::Result<_>>()?,
        });
        start += n;
    }
    Ok(out)
}

/// What the loss needs of one class's real images: per-block and embedding class means, and the
/// per-image embeddings (for the discriminant term), all detached.
struct RealSummary {
    block_means: Vec<Tensor>,
    embedding_mean: Tensor,
    embedding: Tensor,
}

impl RealSummary {
    fn of(out: &NetworkOutput) -> Result<Self> {
        Ok(Self {
            block_means: out
                .block_features
                .iter()
                .map(|f| Ok(class_mean(f)?.detach()))
                .collect::<Result<_>>()?,
            embedding_mean: class_mean(&out.embedding)?.detach(),
            embedding: out.embedding.detach(),
        })
    }
}

/// The real side, one class at a time where the network allows it, so that only one class's
/// activations (and graph) are alive at once: keeping every class's full features measured
/// 7.2 GB per matching step of the default ConvNet at 256 real images per class.
fn real_summaries(net: &dyn cafe_framework::Network, batches: &[Tensor]) -> Result<Vec<RealSummary>> {
    if net.has_batch_norm() {
        return forward_classes(net, batches)?.iter().map(RealSummary::of).collect();
    }
    batches
        .iter()
        .map(|b| RealSummary::of(&net.forward(b, Mode::Train)?))
        .collect()
}

impl Cafe {
    /// The step from the real side's summaries: the synthetic forward, the loss and its
    /// backward (inside the synthetic batch's class-synchronised scope on a BatchNorm network).
    fn match_synthetic(&self, ctx: &MatchContext, real: &[RealSummary], syn_batches: &[Tensor]) -> Result<MatchOutput> {
        let net = ctx.network;
        let owned = ctx.owned.clone();
        let syn = forward_classes(net, syn_batches)?;
        let depth = syn.first().map_or(0, |o| o.block_features.len());
        let weights = self
            .config
            .block_weights
            .clone()
            .unwrap_or_else(|| default_block_weights(depth));
        if weights.len() != depth {
            return Err(Error::invalid(
                "matcher.block_weights",
                format!("{weights:?}"),
                format!("the network has {depth} blocks; give one weight per block"),
            ));
        }
        // Layer-wise alignment, one weighted term per (class, block) and per class's embedding,
        // added in that order. The logged terms repeat their names once per class: the engine
        // sums them by name.
        let mut parts = Vec::new();
        let mut terms = Vec::new();
        for (r, s) in real.iter().zip(&syn) {
            for (b, w) in weights.iter().enumerate() {
                let d = (&r.block_means[b] - class_mean(&s.block_features[b])?)?
                    .sqr()?
                    .sum_all()?;
                terms.push((format!("block_{}", b + 1), d.to_dtype(DType::F64)?.to_scalar::<f64>()?));
                parts.push((d * *w)?);
            }
            let d = (&r.embedding_mean - class_mean(&s.embedding)?)?.sqr()?.sum_all()?;
            terms.push(("embedding".into(), d.to_dtype(DType::F64)?.to_scalar::<f64>()?));
            parts.push((d * self.config.embedding_weight)?);
        }
        // Discriminant loss: the mean synthetic embeddings of every class classify the real
        // embeddings of every class.
        let own_centres = Tensor::stack(
            &syn.iter()
                .map(|o| o.embedding.mean(0))
                .collect::<candle_core::Result<Vec<_>>>()?,
            0,
        )?;
        let own_real = Tensor::cat(&real.iter().map(|o| o.embedding.clone()).collect::<Vec<_>>(), 0)?;
        let own_counts: Vec<f32> = real
            .iter()
            .map(|o| Ok(o.embedding.dim(0)? as f32))
            .collect::<Result<_>>()?;
        let (centres, real_emb, counts) = if ctx.owns_all() {
            (own_centres, own_real, own_counts)
        } else {
            // The other ranks' centres as values, this rank's as they are (with their graph);
            // every rank's real embeddings: the same matrix on every rank, in class order.
            let all = ctx.exchange.all_gather_rows(&own_centres.detach())?;
            let (lo, hi) = (owned.start, owned.end);
            let mut pieces = Vec::new();
            if lo > 0 {
                pieces.push(all.narrow(0, 0, lo)?);
            }
            pieces.push(own_centres);
            if hi < ctx.classes() {
                pieces.push(all.narrow(0, hi, ctx.classes() - hi)?);
            }
            let counts = Tensor::new(own_counts.as_slice(), own_real.device())?;
            (
                Tensor::cat(&pieces, 0)?,
                ctx.exchange.all_gather_rows(&own_real)?,
                ctx.exchange.all_gather_rows(&counts)?.to_vec1::<f32>()?,
            )
        };
        let mut labels: Vec<u32> = Vec::with_capacity(real_emb.dim(0)?);
        for (c, n) in counts.iter().enumerate() {
            labels.extend(std::iter::repeat_n(c as u32, *n as usize));
        }
        let labels = Tensor::from_vec(labels, real_emb.dim(0)?, real_emb.device())?;
        let logits = real_emb.matmul(&centres.t()?)?;
        let log_probs = candle_nn_free::log_softmax(&logits)?;
        let picked = log_probs.gather(&labels.unsqueeze(1)?, 1)?;
        let discriminant = picked.sum_all()?.neg()?;
        // The shared term, reported once.
        if owned.start == 0 {
            terms.push((
                "discriminant".into(),
                discriminant.to_dtype(DType::F64)?.to_scalar::<f64>()?,
            ));
        }
        let global = (&discriminant * self.config.inner_weight)?;
        MatchOutput::from_parts(parts, Some(global), ctx.synthetic, terms)
    }
}

impl Matcher for Cafe {
    fn compute(&self, ctx: &MatchContext) -> Result<MatchOutput> {
        let net = ctx.network;
        let real_batches = &ctx.real[ctx.owned.clone()];
        let syn_batches: Vec<Tensor> = ctx
            .owned
            .clone()
            .map(|c| ctx.synthetic_class(c))
            .collect::<Result<_>>()?;
        if !(net.has_batch_norm() && batch_norm_shares_by_class(net)) {
            let real = real_summaries(net, real_batches)?;
            return self.match_synthetic(ctx, &real, &syn_batches);
        }
        // A BatchNorm network sees every class in one batch (`forward_classes`); this rank
        // forwards its classes and the class-synchronised BatchNorm gathers the statistics of
        // the whole batch, for the real batch and then the synthetic one (whose backward runs
        // inside its scope).
        let gather = |v: &[f64]| ctx.exchange.all_gather_f64(v);
        let rows = |batches: &[Tensor]| batches.iter().map(|b| Ok(b.dim(0)?)).collect::<Result<Vec<usize>>>();
        let real = with_class_synced_batch_norm(&gather, &rows(real_batches)?, || real_summaries(net, real_batches))?;
        with_class_synced_batch_norm(&gather, &rows(&syn_batches)?, || {
            self.match_synthetic(ctx, &real, &syn_batches)
        })
    }

    /// Per class with shared summaries: the alignment of each class reads its own images; the
    /// discriminant reads every class's synthetic centre and real embeddings, gathered from the
    /// ranks. On a BatchNorm network the batch statistics mix the classes: a class-synchronised
    /// BatchNorm gathers them on the CPU; elsewhere the step is computed whole on every rank.
    fn decomposition(&self, network: &dyn cafe_framework::Network) -> Decomposition {
        if network.has_batch_norm() && !batch_norm_shares_by_class(network) {
            Decomposition::Global
        } else {
            Decomposition::PerClassWithSummaries
        }
    }

    fn defaults(&self) -> MatcherDefaults {
        // kaiwang960112/CAFE distill.py:70-75 (also the `cafe` protocol, which sets them).
        MatcherDefaults {
            lr_img: 0.1,
            init: Init::Noise,
            iterations: 2000,
            needs_second_order: false,
        }
    }
}

mod candle_nn_free {
    //! A numerically stable log-softmax over the last dimension.
    use candle_core::{Tensor, D};

    pub fn log_softmax(x: &Tensor) -> candle_core::Result<Tensor> {
        let max = x.max_keepdim(D::Minus1)?.detach();
        let shifted = x.broadcast_sub(&max)?;
        let lse = shifted.exp()?.sum_keepdim(D::Minus1)?.log()?;
        shifted.broadcast_sub(&lse)
    }
}

register_matcher!(
    "cafe",
    "CAFE (CVPR 2022): align per-class mean features layer by layer, plus a discriminant loss",
    CafeConfig,
    |config: CafeConfig| -> Result<Box<dyn Matcher>> {
        for (name, v) in [
            ("embedding_weight", config.embedding_weight),
            ("inner_weight", config.inner_weight),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(Error::invalid(
                    format!("matcher.{name}"),
                    v,
                    "must be a non-negative number",
                ));
            }
        }
        if let Some(w) = &config.block_weights {
            if w.iter().any(|v| !(v.is_finite() && *v >= 0.0)) {
                return Err(Error::invalid(
                    "matcher.block_weights",
                    format!("{w:?}"),
                    "weights must be non-negative numbers",
                ));
            }
        }
        Ok(Box::new(Cafe { config }))
    }
);
