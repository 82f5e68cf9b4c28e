//! `mix`: a batch augmentation after a per-image one: CutMix or Mixup across the batch, as the
//! soft-label evaluations of SRe2L and RDED run it (the teacher labels the mixed batch, so no
//! label mixing is needed: `Supervision::Teacher` scores the batch as the student sees it).
//!
//! - Mixup (VILA-Lab/SRe2L `SRe2L/*small_dataset/relabel_cifar.py:111-121`; DD-Ranking
//!   `ddranking/aug/mixup.py:10-15`): `lam ~ Beta(alpha, alpha)`, a random permutation `p` of
//!   the batch, `x = lam x + (1 - lam) x[p]`.
//! - CutMix (LINs-lab/RDED `validation/utils.py:119-144`; DD-Ranking `ddranking/aug/cutmix.py`):
//!   `lam ~ Beta(alpha, alpha)`, a box of side `int(size sqrt(1 - lam))` centred uniformly
//!   (clipped to the image), filled from `x[p]`. The reference names the first image axis `W`
//!   and the second `H` (`rand_bbox`: `W = size[2]`); both are 32 or 28 here, so it is the same.
//!
//! The draws (lam, permutation, box centre) come from the augmentation seed, after those of the
//! per-image augmentation `base` (which gets its own sub-seed).

use candle_core::{DType, Tensor};
use rand::seq::SliceRandom;
use rand::Rng as _;
use rand_distr::{Beta, Distribution};
use serde::{Deserialize, Serialize};

use cafe_framework::registry::{build_plugin, PluginChoice};
use cafe_framework::rng::{derive_seed, sub_rng};
use cafe_framework::{register_augmenter, Augmenter, Error, Result};

/// Which batch mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MixKind {
    Cutmix,
    Mixup,
}

/// Settings of `mix`; defaults: RDED's CutMix with beta 1.0 (`argument.py:68-73,130-135`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MixConfig {
    pub kind: MixKind,
    /// The Beta distribution's parameter (RDED's `--cutmix` 1.0; SRe2L's mixup 0.8).
    pub alpha: f64,
    /// The per-image augmentation applied first.
    pub base: PluginChoice,
}

impl Default for MixConfig {
    fn default() -> Self {
        Self {
            kind: MixKind::Cutmix,
            alpha: 1.0,
            base: PluginChoice::named("none"),
        }
    }
}

/// The augmenter: `base`, then the mix.
pub struct Mix {
    kind: MixKind,
    beta: Beta<f64>,
    base: Box<dyn Augmenter>,
}

impl Mix {
    pub fn new(config: MixConfig) -> Result<Self> {
        if config.base.name.eq_ignore_ascii_case("mix") {
            return Err(Error::invalid(
                "augment.base",
                "mix",
                "a mix cannot be the base of another",
            ));
        }
        let beta = Beta::new(config.alpha, config.alpha).map_err(|e| {
            Error::invalid(
                "augment.alpha",
                config.alpha,
                format!("must be a positive number ({e})"),
            )
        })?;
        let base = build_plugin::<dyn Augmenter>(&config.base)?.plugin;
        Ok(Self {
            kind: config.kind,
            beta,
            base,
        })
    }
}

impl Augmenter for Mix {
    fn augment(&self, x: &Tensor, seed: u64, siamese: bool) -> Result<Tensor> {
        let x = self.base.augment(x, derive_seed(seed, &[0]), siamese)?;
        let (n, c, h, w) = x
            .dims4()
            .map_err(|_| Error::Other(format!("mix augments image batches [n, c, h, w], got {:?}", x.dims())))?;
        if n == 0 {
            return Ok(x);
        }
        let mut rng = sub_rng(seed, &[1]);
        let lam = self.beta.sample(&mut rng);
        let mut perm: Vec<usize> = (0..n).collect();
        perm.shuffle(&mut rng);
        let data = x.detach().to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
        let plane = c * h * w;
        let mut out = data.clone();
        match self.kind {
            MixKind::Mixup => {
                for (k, &p) in perm.iter().enumerate() {
                    for i in 0..plane {
                        out[k * plane + i] = lam * data[k * plane + i] + (1.0 - lam) * data[p * plane + i];
                    }
                }
            }
            MixKind::Cutmix => {
                let cut = (1.0 - lam).sqrt();
                let (cut_h, cut_w) = ((h as f64 * cut) as i64, (w as f64 * cut) as i64);
                let (cy, cx) = (rng.random_range(0..h as i64), rng.random_range(0..w as i64));
                let (y1, y2) = ((cy - cut_h / 2).clamp(0, h as i64), (cy + cut_h / 2).clamp(0, h as i64));
                let (x1, x2) = ((cx - cut_w / 2).clamp(0, w as i64), (cx + cut_w / 2).clamp(0, w as i64));
                for (k, &p) in perm.iter().enumerate() {
                    for ch in 0..c {
                        for y in y1 as usize..y2 as usize {
                            for xx in x1 as usize..x2 as usize {
                                let at = (ch * h + y) * w + xx;
                                out[k * plane + at] = data[p * plane + at];
                            }
                        }
                    }
                }
            }
        }
        Ok(Tensor::from_vec(out, (n, c, h, w), x.device())?.to_dtype(x.dtype())?)
    }

    fn is_differentiable(&self) -> bool {
        false
    }
}

register_augmenter!(
    "mix",
    "CutMix or Mixup across the batch after a per-image augmentation (soft-label evaluation; not differentiable)",
    MixConfig,
    |config: MixConfig| -> Result<Box<dyn Augmenter>> { Ok(Box::new(Mix::new(config)?)) }
);
