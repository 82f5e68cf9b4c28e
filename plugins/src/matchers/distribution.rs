//! `distribution`: distribution matching (DM; Zhao & Bilen, "Dataset Condensation with
//! Distribution Matching", WACV 2023, <https://arxiv.org/abs/2110.04181>).
//!
//! A fresh random network embeds the real and the synthetic images of each class; the loss is
//! the squared distance between the per-class mean embeddings,
//! `sum_c || mean_i embed(real_c,i) - mean_j embed(syn_c,j) ||^2`, with the real side computed
//! without gradient. The network is never trained (use it with the `none` scheduler).

use cafe_framework::nn::with_class_synced_batch_norm;
use cafe_framework::traits::matcher::{
    batch_norm_shares_by_class, Decomposition, Init, MatchContext, MatchOutput, Matcher, MatcherDefaults,
};
use cafe_framework::{register_matcher, Mode, Network, Result};
use candle_core::{Tensor, D};
use serde::{Deserialize, Serialize};

/// DM has no hyper-parameters of its own beyond the run's (lr_img 1.0, init real).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DistributionConfig {}

pub struct Distribution;

impl Matcher for Distribution {
    fn compute(&self, ctx: &MatchContext) -> Result<MatchOutput> {
        let net = ctx.network;
        let mean_distance = |r: &Tensor, s: &Tensor| -> Result<Tensor> {
            let diff = (r.mean(0)? - s.mean(0)?)?;
            Ok(diff.sqr()?.sum(D::Minus1)?)
        };
        if net.has_batch_norm() {
            return batch_norm_step(ctx, mean_distance);
        }
        let parts: Vec<Tensor> = ctx
            .owned
            .clone()
            .map(|c| {
                let syn_c = ctx.synthetic_class(c)?;
                let r = net.embedding(&ctx.real[c], Mode::Train)?.detach();
                mean_distance(&r, &net.embedding(&syn_c, Mode::Train)?)
            })
            .collect::<Result<_>>()?;
        MatchOutput::from_parts(parts, None, ctx.synthetic, Vec::new())
    }

    /// Per class: each class's term reads its own images. On a BatchNorm network the batch
    /// statistics mix the classes; they are gathered by a class-synchronised BatchNorm, on the
    /// CPU (elsewhere the step is computed whole on every rank).
    fn decomposition(&self, network: &dyn Network) -> Decomposition {
        if !network.has_batch_norm() || batch_norm_shares_by_class(network) {
            Decomposition::PerClass
        } else {
            Decomposition::Global
        }
    }

    fn defaults(&self) -> MatcherDefaults {
        MatcherDefaults {
            lr_img: 1.0,
            init: Init::Real,
            iterations: 20_000,
            needs_second_order: false,
        }
    }
}

/// DM's step on a BatchNorm network: every class in one batch, as the reference
/// (DatasetCondensation `main_DM.py:165-174`, "for ConvNetBN": the real images of all classes
/// concatenated in one forward, the synthetic ones in another), so that the batch statistics
/// are those of the mixed batch. This rank forwards its classes only; the class-synchronised
/// BatchNorm gathers the statistics of the whole batch (one process: the same numbers).
fn batch_norm_step(
    ctx: &MatchContext,
    mean_distance: impl Fn(&Tensor, &Tensor) -> Result<Tensor>,
) -> Result<MatchOutput> {
    let net = ctx.network;
    let owned: Vec<usize> = ctx.owned.clone().collect();
    let gather = |v: &[f64]| ctx.exchange.all_gather_f64(v);
    let real: Vec<Tensor> = owned.iter().map(|&c| ctx.real[c].clone()).collect();
    let synthetic: Vec<Tensor> = owned.iter().map(|&c| ctx.synthetic_class(c)).collect::<Result<_>>()?;
    let rows = |batches: &[Tensor]| batches.iter().map(|b| Ok(b.dim(0)?)).collect::<Result<Vec<usize>>>();
    let (real_rows, syn_rows) = (rows(&real)?, rows(&synthetic)?);
    // Off the CPU the step is whole on every rank (`decomposition`) and the layers are plain.
    let synced = batch_norm_shares_by_class(net);
    let scoped = |rows: &[usize], f: &dyn Fn() -> Result<MatchOutput>| {
        if synced {
            with_class_synced_batch_norm(&gather, rows, f)
        } else {
            f()
        }
    };
    let real_all = if synced {
        with_class_synced_batch_norm(&gather, &real_rows, || {
            net.embedding(&Tensor::cat(&real, 0)?, Mode::Train)
        })?
    } else {
        net.embedding(&Tensor::cat(&real, 0)?, Mode::Train)?
    }
    .detach();
    scoped(&syn_rows, &|| {
        let syn_all = net.embedding(&Tensor::cat(&synthetic, 0)?, Mode::Train)?;
        let (mut ro, mut so) = (0, 0);
        let mut parts = Vec::new();
        for (&nr, &ns) in real_rows.iter().zip(&syn_rows) {
            parts.push(mean_distance(
                &real_all.narrow(0, ro, nr)?,
                &syn_all.narrow(0, so, ns)?,
            )?);
            ro += nr;
            so += ns;
        }
        // Inside the scope: the backward gathers the BatchNorm layers' gradient sums.
        MatchOutput::from_parts(parts, None, ctx.synthetic, Vec::new())
    })
}

register_matcher!(
    "distribution",
    "DM (WACV 2023): match per-class mean embeddings of a fresh random network",
    DistributionConfig,
    |_config: DistributionConfig| -> Result<Box<dyn Matcher>> { Ok(Box::new(Distribution)) }
);
