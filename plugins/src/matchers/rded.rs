//! `rded`: RDED (Sun, Shi, Peng, Ding, "On the Diversity and Realism of Distilled Dataset: An
//! Efficient Dataset Distillation Paradigm", CVPR 2024; LINs-lab/RDED `synthesize/`).
//!
//! A method that takes no gradient step: the set is made once, in [`Matcher::initialise`], and
//! the run has no iterations. Per class, `mipc` random real images (`ImageFolder(ipc=mipc,
//! shuffle=True)`, `synthesize/main.py:22-28`) each give `num_crop` random square crops
//! resized to `size / factor` (`MultiRandomCrop`, `synthesize/utils.py:54-70`); the frozen
//! teacher, in evaluation mode (`synthesize/main.py:89`), scores each crop centred on a zero
//! canvas by its cross-entropy to the class (the realism score: lower is more realistic,
//! `synthesize/utils.py:97-99,116-120`); each image keeps its best crop, the class keeps its
//! `ipc * factor^2` best images (`selector`, `:102-136`), and `factor x factor` of them are
//! stitched into each of its `ipc` images (`mix_images`, `:139-166`). The soft labels come at
//! evaluation: the same teacher labels every augmented batch (the `rded` protocol's `eval.kd`,
//! `validation/main.py:207-226`).

use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use cafe_framework::rng::{stream, sub_rng};
use cafe_framework::teacher::Teacher;
use cafe_framework::traits::matcher::{
    Init, LearnableSpec, MatchContext, MatchOutput, MatcherDefaults, PrepareContext,
};
use cafe_framework::{register_matcher, Error, Matcher, Mode, Result};

use super::rded_patches::{random_resized_square_crop, stitch, Patch};

/// Teacher forwards per batch when scoring (the reference forwards `mipc` at a time,
/// `synthesize/utils.py:116`; the scores do not depend on it in evaluation mode).
const SCORE_BATCH: usize = 256;

/// Settings of `rded`; defaults: `argument.py`'s (lines 31-58).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RdedConfig {
    /// Patches per side of each image (`--factor`, argument.py:54-58: 2; the CIFAR and
    /// Tiny-ImageNet scripts set 1).
    pub factor: usize,
    /// Random crops scored per real image (`--num-crop`, argument.py:42-47: 1; the scripts: 5).
    pub num_crop: usize,
    /// Real images per class considered (`--mipc`, argument.py:30-35: 600; the scripts: 300).
    pub mipc: usize,
}

impl Default for RdedConfig {
    fn default() -> Self {
        Self {
            factor: 2,
            num_crop: 1,
            mipc: 600,
        }
    }
}

impl RdedConfig {
    fn validate(&self) -> Result<()> {
        for (name, v) in [
            ("factor", self.factor),
            ("num_crop", self.num_crop),
            ("mipc", self.mipc),
        ] {
            if v == 0 {
                return Err(Error::invalid(format!("matcher.{name}"), 0, "must be at least 1"));
            }
        }
        Ok(())
    }
}

/// The matcher: its settings and, once prepared, the frozen teacher.
pub struct Rded {
    config: RdedConfig,
    teacher: Option<Arc<Teacher>>,
}

/// `-log softmax(logits)[label]` of every row (the reference's `cross_entropy`,
/// `synthesize/utils.py:97-99`), in f64.
fn realism_scores(logits: &Tensor, label: usize) -> Result<Vec<f64>> {
    Ok(logits
        .to_dtype(DType::F64)?
        .to_vec2::<f64>()?
        .iter()
        .map(|row| {
            let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let log_sum = max + row.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
            log_sum - row[label]
        })
        .collect())
}

impl Rded {
    /// The realism score of each crop (lower: the teacher is surer of the class).
    fn score(
        &self,
        teacher: &Teacher,
        crops: &[Patch],
        size: (usize, usize),
        label: usize,
        device: &Device,
    ) -> Result<Vec<f64>> {
        let mut scores = Vec::with_capacity(crops.len());
        for batch in crops.chunks(SCORE_BATCH) {
            let c = batch[0].c;
            let mut pixels = Vec::with_capacity(batch.len() * c * size.0 * size.1);
            for p in batch {
                pixels.extend(p.pad_to(size.0, size.1).pixels);
            }
            let x = Tensor::from_vec(pixels, (batch.len(), c, size.0, size.1), device)?;
            let logits = teacher.net.logits(&x, Mode::Eval)?.detach();
            scores.extend(realism_scores(&logits, label)?);
        }
        Ok(scores)
    }

    /// One class's `ipc` images: the best crop of each of `mipc` random images, the best
    /// `ipc * factor^2` of those, stitched.
    fn class_images(
        &self,
        ctx: &PrepareContext,
        teacher: &Teacher,
        class: usize,
        members: &[usize],
    ) -> Result<Vec<Patch>> {
        let ds = ctx.dataset;
        let shape = ds.train.shape;
        let (factor, m) = (self.config.factor, self.config.num_crop);
        let patch = shape.height / factor;
        let mut rng = sub_rng(ctx.seed, &[stream::RDED, class as u64]);
        let mut chosen = members.to_vec();
        chosen.shuffle(&mut rng);
        chosen.truncate(self.config.mipc);
        let need = ctx.ipc * factor * factor;
        if chosen.len() < need {
            return Err(Error::invalid(
                "matcher.mipc",
                self.config.mipc,
                format!(
                    "class {class} offers {} candidate images but ipc {} x factor {factor}^2 = {need} are kept: \
                     raise mipc (or the class is too small)",
                    chosen.len(),
                    ctx.ipc
                ),
            ));
        }
        // The reference crops every image m times and stacks [mipc, m, ...] (crop j of image i);
        // the draws here go image by image, crop by crop.
        let mut crops = Vec::with_capacity(chosen.len() * m);
        for &i in &chosen {
            let img = Patch {
                pixels: ds.train.image(i).to_vec(),
                c: shape.channels,
                h: shape.height,
                w: shape.width,
            };
            for _ in 0..m {
                crops.push(random_resized_square_crop(&img, patch, &mut rng));
            }
        }
        let scores = self.score(teacher, &crops, (shape.height, shape.width), class, ctx.device)?;
        // Per image its best crop (`torch.argmin` over the m crops: the first of equal ones).
        let mut best: Vec<(f64, usize)> = (0..chosen.len())
            .map(|i| {
                (0..m)
                    .map(|j| (scores[i * m + j], i * m + j))
                    .fold((f64::INFINITY, usize::MAX), |a, b| if b.0 < a.0 { b } else { a })
            })
            .collect();
        // Ascending score, ties in image order (`torch.argsort` on the GPU does not promise an
        // order for ties; a stable one is the reproducible choice).
        best.sort_by(|a, b| a.0.total_cmp(&b.0));
        let kept: Vec<Patch> = best[..need].iter().map(|&(_, k)| crops[k].clone()).collect();
        Ok(stitch(&kept, ctx.ipc, factor, shape.height))
    }
}

impl Matcher for Rded {
    fn compute(&self, _ctx: &MatchContext) -> Result<MatchOutput> {
        Err(Error::invalid(
            "iterations",
            "> 0",
            "rded selects and stitches real patches once and takes no gradient step: run it with 0 \
             iterations (its default)",
        ))
    }

    fn defaults(&self) -> MatcherDefaults {
        MatcherDefaults {
            // Unused: no step is taken.
            lr_img: 1.0,
            // Replaced by the selection (`initialise`).
            init: Init::Real,
            iterations: 0,
            needs_second_order: false,
        }
    }

    fn needs_teacher(&self) -> bool {
        true
    }

    fn prepare(&mut self, ctx: &PrepareContext) -> Result<Vec<LearnableSpec>> {
        if ctx.iterations > 0 {
            return Err(Error::invalid(
                "iterations",
                ctx.iterations,
                "rded selects and stitches real patches once and takes no gradient step: drop --iterations \
                 (its default is 0)",
            ));
        }
        let Some(teacher) = ctx.teacher else {
            return Err(Error::invalid(
                "teacher",
                "none",
                "rded scores real patches with a frozen teacher: train one with `cafe-lab teacher`",
            ));
        };
        let shape = ctx.dataset.train.shape;
        if shape.height != shape.width || shape.height < self.config.factor {
            return Err(Error::invalid(
                "matcher.factor",
                self.config.factor,
                format!("rded stitches square images of at least factor pixels; these are {shape}"),
            ));
        }
        self.teacher = Some(Arc::clone(teacher));
        Ok(Vec::new())
    }

    fn initialise(&mut self, ctx: &PrepareContext) -> Result<Option<Tensor>> {
        let Some(teacher) = self.teacher.clone() else {
            return Err(Error::Other("rded: initialise before prepare (no teacher)".into()));
        };
        let ds = ctx.dataset;
        let by_class = ds.train.class_indices(ds.classes);
        let mut pixels = Vec::with_capacity(ds.classes * ctx.ipc * ds.train.shape.numel());
        for (class, members) in by_class.iter().enumerate() {
            for img in self.class_images(ctx, &teacher, class, members)? {
                pixels.extend(img.pixels);
            }
        }
        Ok(Some(Tensor::from_vec(
            pixels,
            ds.train.shape.batch_dims(ds.classes * ctx.ipc).to_vec(),
            ctx.device,
        )?))
    }

    fn uses_real_batches(&self) -> bool {
        false
    }
}

register_matcher!(
    "rded",
    "RDED (CVPR 2024): teacher-scored real crops, the most realistic kept and stitched; no gradient steps",
    RdedConfig,
    |config: RdedConfig| -> Result<Box<dyn Matcher>> {
        config.validate()?;
        Ok(Box::new(Rded { config, teacher: None }))
    }
);
