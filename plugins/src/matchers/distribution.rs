//! `distribution`: distribution matching (DM; Zhao & Bilen, "Dataset Condensation with
//! Distribution Matching", WACV 2023, <https://arxiv.org/abs/2110.04181>).
//!
//! A fresh random network embeds the real and the synthetic images of each class; the loss is
//! the squared distance between the per-class mean embeddings,
//! `sum_c || mean_i embed(real_c,i) - mean_j embed(syn_c,j) ||^2`, with the real side computed
//! without gradient. The network is never trained (use it with the `none` scheduler).

use cafe_framework::traits::matcher::{Init, MatchContext, MatchOutput, Matcher, MatcherDefaults};
use cafe_framework::{register_matcher, Mode, Result};
use candle_core::{Tensor, D};
use serde::{Deserialize, Serialize};

/// DM has no hyper-parameters of its own beyond the run's (lr_img 1.0, init real).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DistributionConfig {}

pub struct Distribution;

impl Matcher for Distribution {
    fn compute(&self, ctx: &MatchContext) -> Result<MatchOutput> {
        let classes = ctx.classes();
        let net = ctx.network;
        let synthetic: Vec<Tensor> = (0..classes).map(|c| ctx.synthetic_class(c)).collect::<Result<_>>()?;
        // BatchNorm networks see all classes in one batch, as the reference does, so that the
        // batch statistics are those of a mixed batch.
        let (real_emb, syn_emb): (Vec<Tensor>, Vec<Tensor>) = if net.has_batch_norm() {
            let real_all = net.embedding(&Tensor::cat(ctx.real, 0)?, Mode::Train)?.detach();
            let syn_all = net.embedding(&Tensor::cat(&synthetic, 0)?, Mode::Train)?;
            let mut r = Vec::new();
            let mut s = Vec::new();
            let (mut ro, mut so) = (0, 0);
            for (c, syn_c) in synthetic.iter().enumerate() {
                let (nr, ns) = (ctx.real[c].dim(0)?, syn_c.dim(0)?);
                r.push(real_all.narrow(0, ro, nr)?);
                s.push(syn_all.narrow(0, so, ns)?);
                ro += nr;
                so += ns;
            }
            (r, s)
        } else {
            let mut r = Vec::new();
            let mut s = Vec::new();
            for (c, syn_c) in synthetic.iter().enumerate() {
                r.push(net.embedding(&ctx.real[c], Mode::Train)?.detach());
                s.push(net.embedding(syn_c, Mode::Train)?);
            }
            (r, s)
        };
        let mut total: Option<Tensor> = None;
        for (r, s) in real_emb.iter().zip(&syn_emb) {
            let diff = (r.mean(0)? - s.mean(0)?)?;
            let term = diff.sqr()?.sum(D::Minus1)?;
            total = Some(match total {
                Some(t) => (t + term)?,
                None => term,
            });
        }
        let loss = total.expect("at least one class");
        MatchOutput::from_loss(&loss, ctx.synthetic, Vec::new())
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
