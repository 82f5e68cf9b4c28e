//! `distribution`: distribution matching (DM; Zhao & Bilen, "Dataset Condensation with
//! Distribution Matching", WACV 2023, <https://arxiv.org/abs/2110.04181>).
//!
//! A fresh random network embeds the real and the synthetic images of each class; the loss is
//! the squared distance between the per-class mean embeddings,
//! `sum_c || mean_i embed(real_c,i) - mean_j embed(syn_c,j) ||^2`, with the real side computed
//! without gradient. The network is never trained (use it with the `none` scheduler).

use cafe_framework::traits::matcher::{Decomposition, Init, MatchContext, MatchOutput, Matcher, MatcherDefaults};
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
        let parts: Vec<Tensor> = if net.has_batch_norm() {
            // BatchNorm networks see all classes in one batch, as the reference does, so that
            // the batch statistics are those of a mixed batch (and the step is not shared
            // among ranks: see `decomposition`).
            let classes = ctx.classes();
            let synthetic: Vec<Tensor> = (0..classes).map(|c| ctx.synthetic_class(c)).collect::<Result<_>>()?;
            let real_all = net.embedding(&Tensor::cat(ctx.real, 0)?, Mode::Train)?.detach();
            let syn_all = net.embedding(&Tensor::cat(&synthetic, 0)?, Mode::Train)?;
            let (mut ro, mut so) = (0, 0);
            let mut parts = Vec::new();
            for (c, syn_c) in synthetic.iter().enumerate() {
                let (nr, ns) = (ctx.real[c].dim(0)?, syn_c.dim(0)?);
                parts.push(mean_distance(
                    &real_all.narrow(0, ro, nr)?,
                    &syn_all.narrow(0, so, ns)?,
                )?);
                ro += nr;
                so += ns;
            }
            parts
        } else {
            ctx.owned
                .clone()
                .map(|c| {
                    let syn_c = ctx.synthetic_class(c)?;
                    let r = net.embedding(&ctx.real[c], Mode::Train)?.detach();
                    mean_distance(&r, &net.embedding(&syn_c, Mode::Train)?)
                })
                .collect::<Result<_>>()?
        };
        MatchOutput::from_parts(parts, None, ctx.synthetic, Vec::new())
    }

    /// Per class (each class's term reads its own images), except on a BatchNorm network,
    /// whose statistics mix every class of the batch.
    fn decomposition(&self, network: &dyn Network) -> Decomposition {
        if network.has_batch_norm() {
            Decomposition::Global
        } else {
            Decomposition::PerClass
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

register_matcher!(
    "distribution",
    "DM (WACV 2023): match per-class mean embeddings of a fresh random network",
    DistributionConfig,
    |_config: DistributionConfig| -> Result<Box<dyn Matcher>> { Ok(Box::new(Distribution)) }
);
