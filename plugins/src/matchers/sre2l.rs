//! `sre2l`: SRe2L's recover step (Yin, Xing, Shen, "Squeeze, Recover and Relabel: Dataset
//! Condensation at ImageNet Scale From A New Perspective", NeurIPS 2023;
//! VILA-Lab/SRe2L `SRe2L/*small_dataset/recover_cifar.py`, the 32-pixel version).
//!
//! Squeeze is the frozen teacher (`cafe-lab teacher`, a BatchNorm network); recover is this
//! matcher; relabel is the soft-label evaluation with the same teacher (`eval.kd`, the `sre2l`
//! protocol's recipe). Images start as Gaussian noise (`torch.randn`, `recover_cifar.py:64`);
//! each step rolls them by a random offset in `[0, jitter]` per axis (`:78-81`, `torch.roll`),
//! optionally mirrors them (`flip`: the Tiny-ImageNet and ImageNet recoveries' flip,
//! `recover_tiny.py:49-53`; the CIFAR one has none), runs the teacher in evaluation mode
//! (`:191`), and adds the cross-entropy to each image's class (`:88`) and `r_bn` times the
//! BatchNorm-statistics loss of every BatchNorm layer, the first weighted by
//! `first_bn_multiplier` (`:90-99`; [`cafe_framework::train::bn_statistics_loss`]). The pixels
//! step with Adam(betas (0.5, 0.9), eps 1e-8) at `lr_img` on a cosine curve (`:69-76`) and are
//! clipped to the real pixels' range after each step (`:133`): the engine does both, as this
//! matcher's [`Matcher::image_update`] asks.
//!
//! The reference recovers one image per class at a time (`ipc_id` loop, `:249-252`), each batch
//! of `batch_size` classes (`:60`) optimised alone from a fresh Adam. Here every `ipc` slice
//! (image k of every class) is one such batch, with its own BatchNorm statistics and jitter;
//! the loss is the sum over slices, so each slice's pixels get exactly the gradient they would
//! get alone, and Adam, elementwise, steps them as separate optimisers would.

use std::sync::Arc;

use candle_core::{Tensor, D};
use rand::Rng as _;
use serde::{Deserialize, Serialize};

use cafe_framework::nn::record_batch_norms;
use cafe_framework::rng::rng_from_seed;
use cafe_framework::teacher::Teacher;
use cafe_framework::train::{bn_statistics_loss, cross_entropy, LrCurve};
use cafe_framework::traits::image_update::{ImageOptimizerKind, ImageUpdate, PixelRange};
use cafe_framework::traits::matcher::{
    Init, LearnableSpec, MatchContext, MatchOutput, MatcherDefaults, PrepareContext,
};
use cafe_framework::{register_matcher, Error, Matcher, Mode, Result};

/// Settings of `sre2l`; defaults: `recover_cifar.py`'s argument defaults (lines 208-216, 69).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Sre2lConfig {
    /// Weight of the BatchNorm-statistics loss (`--r-bn`, recover_cifar.py:213: 0.05).
    pub r_bn: f64,
    /// Extra weight of the first BatchNorm layer's term (`--first-bn-multiplier`, :216: 10).
    pub first_bn_multiplier: f64,
    /// Largest random shift per axis, in pixels (`--jitter`, :211: 4).
    pub jitter: usize,
    /// Mirror each batch with probability 0.5 at every step (CIFAR's recovery: no).
    pub flip: bool,
    /// Classes recovered together, sharing BatchNorm statistics (`--batch-size`, :208: 100).
    pub batch_size: usize,
    /// Adam's betas and eps (:69).
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Clip the pixels to the real range after every step (`clip_cifar`, :133).
    pub clip: bool,
}

impl Default for Sre2lConfig {
    fn default() -> Self {
        Self {
            r_bn: 0.05,
            first_bn_multiplier: 10.0,
            jitter: 4,
            flip: false,
            batch_size: 100,
            beta1: 0.5,
            beta2: 0.9,
            eps: 1e-8,
            clip: true,
        }
    }
}

impl Sre2lConfig {
    fn validate(&self) -> Result<()> {
        for (name, v) in [("r_bn", self.r_bn), ("first_bn_multiplier", self.first_bn_multiplier)] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(Error::invalid(
                    format!("matcher.{name}"),
                    v,
                    "must be a finite number >= 0",
                ));
            }
        }
        if self.batch_size == 0 {
            return Err(Error::invalid(
                "matcher.batch_size",
                0,
                "recover at least one class at a time",
            ));
        }
        for (name, b) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(0.0..1.0).contains(&b) {
                return Err(Error::invalid(
                    format!("matcher.{name}"),
                    b,
                    "an Adam beta must be in [0, 1)",
                ));
            }
        }
        if !(self.eps.is_finite() && self.eps >= 0.0) {
            return Err(Error::invalid("matcher.eps", self.eps, "must be a finite number >= 0"));
        }
        Ok(())
    }
}

/// The matcher: its settings and, once prepared, the frozen teacher with its parameters as
/// plain tensors (no gradient is computed for them).
pub struct Sre2l {
    config: Sre2lConfig,
    teacher: Option<(Arc<Teacher>, Vec<Tensor>)>,
}

impl Sre2l {
    /// Rolls `x` `[n, c, h, w]` by `(dy, dx)` along (H, W), as `torch.roll`: the pixel at `i`
    /// moves to `i + shift` mod the size.
    fn roll(x: &Tensor, dy: usize, dx: usize) -> Result<Tensor> {
        let (_, _, h, w) = x.dims4()?;
        let x = if dy.is_multiple_of(h) {
            x.clone()
        } else {
            x.roll(dy as i32, 2)?
        };
        Ok(if dx.is_multiple_of(w) { x } else { x.roll(dx as i32, 3)? })
    }

    /// `x` mirrored along its width.
    fn flip(x: &Tensor) -> Result<Tensor> {
        let w = x.dim(D::Minus1)?;
        let idx: Vec<u32> = (0..w as u32).rev().collect();
        Ok(x.index_select(&Tensor::new(idx.as_slice(), x.device())?, 3)?)
    }
}

impl Matcher for Sre2l {
    fn compute(&self, ctx: &MatchContext) -> Result<MatchOutput> {
        let Some((teacher, params)) = &self.teacher else {
            return Err(Error::Other("sre2l: compute before prepare (no teacher)".into()));
        };
        let images = ctx.synthetic.as_tensor();
        let mut rng = rng_from_seed(ctx.step_seed);
        let (mut total, mut ce_sum, mut bn_sum): (Option<Tensor>, f64, f64) = (None, 0.0, 0.0);
        for k in 0..ctx.ipc {
            let classes: Vec<usize> = (0..ctx.classes).collect();
            for chunk in classes.chunks(self.config.batch_size) {
                let rows: Vec<u32> = chunk.iter().map(|&c| (c * ctx.ipc + k) as u32).collect();
                let x = images.index_select(&Tensor::new(rows.as_slice(), images.device())?, 0)?;
                let (dy, dx) = (
                    rng.random_range(0..=self.config.jitter),
                    rng.random_range(0..=self.config.jitter),
                );
                let mut x = Self::roll(&x, dy, dx)?;
                if self.config.flip && rng.random::<f64>() < 0.5 {
                    x = Self::flip(&x)?;
                }
                let (logits, records) = record_batch_norms(|| teacher.net.logits_with(params, &x, Mode::Eval))?;
                let labels: Vec<u32> = chunk.iter().map(|&c| c as u32).collect();
                let ce = cross_entropy(&logits, &Tensor::new(labels.as_slice(), images.device())?)?;
                let bn = bn_statistics_loss(&records, self.config.first_bn_multiplier)?;
                ce_sum += ce.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?;
                bn_sum += bn.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?;
                let loss = (ce + (bn * self.config.r_bn)?)?;
                total = Some(match total {
                    Some(t) => (t + loss)?,
                    None => loss,
                });
            }
        }
        let loss = total.ok_or_else(|| Error::Other("sre2l: a set without images".into()))?;
        let terms = vec![("ce".to_string(), ce_sum), ("bn".to_string(), bn_sum)];
        MatchOutput::from_loss(&loss, ctx.synthetic, terms)
    }

    fn defaults(&self) -> MatcherDefaults {
        MatcherDefaults {
            lr_img: 0.1,       // recover_cifar.py:210 --lr
            init: Init::Noise, // recover_cifar.py:64 torch.randn
            iterations: 1000,  // recover_cifar.py:209 --iteration
            needs_second_order: false,
        }
    }

    fn needs_teacher(&self) -> bool {
        true
    }

    fn prepare(&mut self, ctx: &PrepareContext) -> Result<Vec<LearnableSpec>> {
        let Some(teacher) = ctx.teacher else {
            return Err(Error::invalid(
                "teacher",
                "none",
                "sre2l recovers images from a frozen BatchNorm teacher: train one with `cafe-lab teacher`",
            ));
        };
        if !teacher.net.has_batch_norm() {
            return Err(Error::invalid(
                "teacher",
                &teacher.info.arch,
                "sre2l matches BatchNorm statistics: its teacher must have BatchNorm layers (convnetbn, \
                 resnet18bn, ...)",
            ));
        }
        let params = teacher
            .net
            .parameters()
            .iter()
            .map(|v| v.as_tensor().detach())
            .collect();
        self.teacher = Some((Arc::clone(teacher), params));
        Ok(Vec::new())
    }

    fn image_update(&self, ctx: &PrepareContext) -> Result<ImageUpdate> {
        Ok(ImageUpdate {
            optimizer: ImageOptimizerKind::Adam {
                beta1: self.config.beta1,
                beta2: self.config.beta2,
                eps: self.config.eps,
            },
            curve: Some(LrCurve::Cosine),
            pixel_range: if self.config.clip {
                Some(PixelRange::of_real_pixels(ctx.dataset)?)
            } else {
                None
            },
        })
    }

    fn uses_real_batches(&self) -> bool {
        false
    }
}

register_matcher!(
    "sre2l",
    "SRe2L (NeurIPS 2023): recover images from noise against a frozen BatchNorm teacher (BN statistics + CE)",
    Sre2lConfig,
    |config: Sre2lConfig| -> Result<Box<dyn Matcher>> {
        config.validate()?;
        Ok(Box::new(Sre2l { config, teacher: None }))
    }
);
