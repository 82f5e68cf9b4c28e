//! `Matcher`: the loss that makes the synthetic set look like the real one to a network.

use std::ops::Range;
use std::sync::Arc;

use candle_core::{DType, Device, Tensor, Var};
use serde_json::Value;

use crate::data::Dataset;
pub use crate::synthetic::Init;
use crate::synthetic::Learned;
use crate::teacher::Teacher;
use crate::traits::architecture::{Architecture, Network};
use crate::traits::augmenter::Augmenter;
use crate::traits::image_update::ImageUpdate;
use crate::Result;

/// A matcher's published defaults, used where the run does not set them.
#[derive(Debug, Clone, Copy)]
pub struct MatcherDefaults {
    /// Learning rate of the image optimiser (SGD, momentum 0.5).
    pub lr_img: f64,
    pub init: Init,
    pub iterations: usize,
    /// Whether the loss needs gradients of gradients (DC): the engine then enables candle's
    /// `CANDLE_GRAD_DO_NOT_DETACH` before any backward runs.
    pub needs_second_order: bool,
}

/// What a matcher sees in one outer step.
///
/// The real batches are already augmented, each class with its own siamese seed;
/// [`MatchContext::synthetic_class`] applies the same augmentation to the synthetic images of
/// that class, keeping the graph back to the synthetic pixels.
pub struct MatchContext<'a> {
    /// The current network (fresh for DM; trained on S between steps under bi-level schedulers).
    /// A matcher that brings its own parameters (MTT's experts) uses it through
    /// `Network::forward_with`, as the architecture's structure.
    pub network: &'a dyn Network,
    /// One real batch per class, `[batch_real, c, h, w]`, no graph; empty when the matcher says
    /// it uses none ([`Matcher::uses_real_batches`]).
    pub real: &'a [Tensor],
    /// The synthetic set `[classes * ipc, c, h, w]`; class c owns rows `c*ipc .. (c+1)*ipc`.
    pub synthetic: &'a Var,
    /// The synthetic set's hard labels `[classes * ipc]` (u32), class-major.
    pub labels: &'a Tensor,
    /// The set's learned extras (those the matcher declared in [`Matcher::prepare`]), as `Var`s:
    /// a loss built on them gets their gradients through [`MatchOutput::from_loss_with_learned`].
    pub learned: &'a [Learned],
    pub ipc: usize,
    pub classes: usize,
    /// The condensation iteration (0-based) and a seed for this step's own random draws (which
    /// expert, which start epoch, which minibatches): derived from the run's seed, the
    /// iteration and the outer step, so a resumed run draws the same.
    pub iteration: usize,
    pub step_seed: u64,
    pub augmenter: &'a dyn Augmenter,
    /// One siamese seed per class for this step.
    pub seeds: &'a [u64],
    /// Fresh random real images of a class, un-augmented, drawn apart from `real` (DC's
    /// BatchNorm statistics come from 16 such images per class).
    pub fresh_real: &'a dyn RealSampler,
    /// The classes this rank computes: every class, unless the run has several ranks and the
    /// matcher's loss decomposes over classes ([`Matcher::decomposition`]); then `real` holds
    /// empty batches for the other classes.
    pub owned: Range<usize>,
    /// Gathers what every rank computed for its classes (see [`Exchange`]).
    pub exchange: &'a dyn Exchange,
}

/// How a matcher's loss decomposes over classes: what lets the engine share a matching step
/// among ranks (README "Several processes (MPI)").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decomposition {
    /// A sum of per-class terms, each reading only its class's images (DM, DC): each rank
    /// computes the classes of [`MatchContext::owned`] and returns their terms in
    /// [`MatchOutput::loss_parts`]; the engine gathers every rank's gradient rows and terms.
    PerClass,
    /// Per-class terms plus one term over summaries of every class (CAFE's discriminant over
    /// all class centres): as `PerClass`, the summaries gathered with
    /// [`MatchContext::exchange`] and the shared term in [`MatchOutput::loss_global`].
    PerClassWithSummaries,
    /// Not decomposable (MTT's minibatches mix classes): every rank computes the whole step,
    /// the same on all.
    Global,
}

/// Whether a step on `network` that mixes every class in one BatchNorm batch (DM's and CAFE's
/// on a BatchNorm network) can be shared among ranks by class: the class-synchronised BatchNorm
/// (`nn::with_class_synced_batch_norm`) runs on the CPU.
pub fn batch_norm_shares_by_class(network: &dyn Network) -> bool {
    network.parameters().iter().all(|p| p.device().is_cpu())
}

/// Rows that each rank computed for its own classes, put together in class order.
pub trait Exchange {
    /// Every rank's `rows` (`[n_rank, ...]`, f32, no graph) concatenated along the first
    /// dimension in rank order, which is class order.
    fn all_gather_rows(&self, rows: &Tensor) -> Result<Tensor>;
    /// Every rank's `values` concatenated in rank order, exactly (the per-class sums of a
    /// class-synchronised BatchNorm, `nn::with_class_synced_batch_norm`).
    fn all_gather_f64(&self, values: &[f64]) -> Result<Vec<f64>>;
}

/// The exchange of a single process: its rows are all the rows.
pub struct NoExchange;

impl Exchange for NoExchange {
    fn all_gather_rows(&self, rows: &Tensor) -> Result<Tensor> {
        Ok(rows.clone())
    }
    fn all_gather_f64(&self, values: &[f64]) -> Result<Vec<f64>> {
        Ok(values.to_vec())
    }
}

/// Draws random real training images of one class.
pub trait RealSampler {
    /// `n` distinct random images of class `class` (the whole class, shuffled, if smaller),
    /// `[n, c, h, w]`, without augmentation.
    fn sample(&self, class: usize, n: usize) -> Result<Tensor>;
}

/// Per-class tensors as a sampler that hands out the first `n` images of each: for tests and
/// benches, where the draw does not matter.
impl RealSampler for Vec<Tensor> {
    fn sample(&self, class: usize, n: usize) -> Result<Tensor> {
        let t = &self[class];
        Ok(t.narrow(0, 0, n.min(t.dim(0)?))?)
    }
}

impl MatchContext<'_> {
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// Whether this rank computes every class.
    pub fn owns_all(&self) -> bool {
        self.owned == (0..self.classes)
    }

    /// The learned extra called `name`.
    pub fn learned(&self, name: &str) -> Option<&Var> {
        self.learned.iter().find(|l| l.name == name).map(|l| &l.var)
    }

    /// The synthetic images of class `c`, augmented with the class's seed, differentiable.
    pub fn synthetic_class(&self, c: usize) -> Result<Tensor> {
        let images = self.synthetic.as_tensor().narrow(0, c * self.ipc, self.ipc)?;
        if self.augmenter.is_identity() {
            return Ok(images);
        }
        self.augmenter.augment(&images, self.seeds[c], true)
    }

    /// Labels `[n]` (u32) all equal to `c`, on the synthetic set's device.
    pub fn labels(&self, c: usize, n: usize) -> Result<Tensor> {
        Ok(Tensor::full(c as u32, n, self.synthetic.device())?)
    }
}

/// The result of one matching step.
#[derive(Debug, Clone)]
pub struct MatchOutput {
    /// The loss value (summed over classes).
    pub loss: f64,
    /// Named parts of the loss, for logging (e.g. `layer_0`, `discriminant`).
    pub terms: Vec<(String, f64)>,
    /// d loss / d synthetic pixels, the shape of the synthetic set.
    pub gradient: Tensor,
    /// d loss / d each learned extra, by name. A learned tensor without an entry is not
    /// stepped this time (its optimiser's momentum does not move either), as PyTorch's SGD skips
    /// a parameter whose gradient is `None`.
    pub learned: Vec<(String, Tensor)>,
    /// For a matcher whose loss decomposes over classes: the scalar terms of the classes it
    /// computed, in class order, whose sum from left to right (in their dtype) is the loss but
    /// for `loss_global`. The engine adds every rank's parts in that order, so the loss is the
    /// same at any number of ranks. Empty for other matchers.
    pub loss_parts: Vec<Tensor>,
    /// The term over every class's summaries (the same on every rank), added after the parts.
    pub loss_global: Option<Tensor>,
    /// True: the engine takes no step this time, neither the pixels nor any learned extra (no
    /// optimiser's momentum moves either); the loss is still logged and the step counted in
    /// results.json (`skipped_steps`). DATM skips all three of its steps when the matching loss
    /// is above its threshold (NUS-HPC-AI-Lab/DATM `distill/DATM.py:556-561`).
    pub skip: bool,
    /// Learned extras whose new value the matcher computed itself instead of a gradient (TESLA's
    /// soft labels, the target parameters' predictions, recomputed every iteration): the engine
    /// sets them, skipped step or not, and their optimisers never step.
    pub assign: Vec<(String, Tensor)>,
    /// Values the matcher wants kept per iteration in results.json (`per_iteration[i].record`,
    /// those of the iteration's last outer step), e.g. DATM's start-epoch window.
    pub record: Vec<(String, f64)>,
}

impl MatchOutput {
    /// Backpropagates a scalar `loss` to the synthetic set; the usual way to finish `compute`.
    pub fn from_loss(loss: &Tensor, synthetic: &Var, terms: Vec<(String, f64)>) -> Result<Self> {
        Self::reading(loss, synthetic, &[], terms)
    }

    /// The way to finish a per-class matcher's `compute` ([`Decomposition`]): the loss is
    /// `parts` added left to right, then `global`; backpropagated to the synthetic set.
    pub fn from_parts(
        parts: Vec<Tensor>,
        global: Option<Tensor>,
        synthetic: &Var,
        terms: Vec<(String, f64)>,
    ) -> Result<Self> {
        let mut total: Option<Tensor> = None;
        for part in parts.iter().chain(&global) {
            total = Some(match total {
                Some(t) => (t + part)?,
                None => part.clone(),
            });
        }
        let loss = total.ok_or_else(|| crate::Error::Other("a matching loss needs at least one term".into()))?;
        let mut out = Self::reading(&loss, synthetic, &[], terms)?;
        out.loss_parts = parts.iter().map(Tensor::detach).collect();
        out.loss_global = global.map(|g| g.detach());
        Ok(out)
    }

    /// [`MatchOutput::from_loss`] that also reads the gradient of every learned extra of `ctx`
    /// (zero for one the loss does not reach).
    pub fn from_loss_with_learned(loss: &Tensor, ctx: &MatchContext, terms: Vec<(String, f64)>) -> Result<Self> {
        Self::reading(loss, ctx.synthetic, ctx.learned, terms)
    }

    /// Backpropagates `loss` and reads the gradients of the pixels and of `learned`.
    fn reading(loss: &Tensor, synthetic: &Var, learned: &[Learned], terms: Vec<(String, f64)>) -> Result<Self> {
        let value = loss.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?;
        if !value.is_finite() {
            return Err(crate::Error::NonFinite(format!(
                "matching loss is {value}; lower the image learning rate (--lr-img) or check the data"
            )));
        }
        // The gradient is only read: no graph of the backward pass is needed, even when the
        // loss itself is written in gradients (those were built with theirs).
        let grads = crate::nn::first_order(|| loss.backward())?;
        let read = |v: &Var| -> Result<Tensor> {
            Ok(match grads.get(v.as_tensor()) {
                Some(g) => g.detach(),
                None => v.as_tensor().zeros_like()?,
            })
        };
        Ok(Self {
            loss: value,
            terms,
            gradient: read(synthetic)?,
            learned: learned
                .iter()
                .map(|l| Ok((l.name.clone(), read(&l.var)?)))
                .collect::<Result<_>>()?,
            loss_parts: Vec::new(),
            loss_global: None,
            skip: false,
            assign: Vec::new(),
            record: Vec::new(),
        })
    }
}

/// A tensor a matcher learns beside the pixels, with its own SGD optimiser (e.g. MTT's step
/// size with `lr_lr` and momentum 0.5; soft labels with `lr_y` and momentum 0.9).
#[derive(Debug, Clone)]
pub struct LearnableSpec {
    /// Its name in the synthetic set and its file (see `synthetic::LEARNED_LR`,
    /// `synthetic::LEARNED_LABELS` for the names evaluation reads).
    pub name: String,
    pub initial: Tensor,
    pub lr: f64,
    pub momentum: f64,
}

/// What a matcher may look at before condensation starts ([`Matcher::prepare`]).
pub struct PrepareContext<'a> {
    pub dataset: &'a Dataset,
    /// The condensation architecture, its registered name and its resolved settings (what an
    /// expert store records, to check that it fits).
    pub arch: &'a dyn Architecture,
    pub arch_name: &'a str,
    pub arch_config: &'a Value,
    /// The initial synthetic images `[classes * ipc, c, h, w]` and their labels.
    pub images: &'a Tensor,
    pub labels: &'a Tensor,
    pub ipc: usize,
    /// The run's iteration count (a method that takes no step refuses more than 0).
    pub iterations: usize,
    pub device: &'a Device,
    pub seed: u64,
    /// The run's frozen teacher, when the matcher asked for one ([`Matcher::needs_teacher`]):
    /// loaded once from its file (`cafe-lab teacher`), shared with the soft-label evaluation.
    pub teacher: Option<&'a Arc<Teacher>>,
}

/// A dataset-condensation loss.
pub trait Matcher: Send + Sync {
    /// Computes the loss of the current step and its gradient w.r.t. the synthetic pixels (and
    /// the learned extras, if any).
    fn compute(&self, ctx: &MatchContext) -> Result<MatchOutput>;

    /// The published defaults of this method.
    fn defaults(&self) -> MatcherDefaults;

    /// Called once before the first iteration (and again when a run resumes, before the
    /// checkpoint's values replace the initial ones): load what the method needs (MTT's expert
    /// trajectories) and declare the tensors it learns beside the pixels. The default needs
    /// nothing and learns only the pixels.
    fn prepare(&mut self, _ctx: &PrepareContext) -> Result<Vec<LearnableSpec>> {
        Ok(Vec::new())
    }

    /// The matcher's own initial images, when its [`Matcher::prepare`] must see them `[classes * ipc, c, h, w]`, replacing those of the
    /// run's `init` (DATM's `samples_predicted_correctly`: real images that an expert
    /// classifies correctly), or None (the default): the engine's. Called once before
    /// [`Matcher::prepare`], whose `images` are then these; `ctx.images` here are the engine's.
    fn initial_images(&mut self, _ctx: &PrepareContext) -> Result<Option<Tensor>> {
        Ok(None)
    }

    /// Whether the method works against the run's frozen teacher (SRe2L, RDED): the run then
    /// loads the teacher file (`--teacher`, else the default of `cafe-lab teacher` for the
    /// dataset and architecture) and hands it to [`Matcher::prepare`] in
    /// [`PrepareContext::teacher`]; the soft-label evaluation uses the same file.
    fn needs_teacher(&self) -> bool {
        false
    }

    /// The synthetic set's starting images when the method makes its own, called once after
    /// [`Matcher::prepare`] (not on resume: the checkpoint holds the images). RDED selects and
    /// stitches real patches here and takes no gradient step (0 iterations); a method that
    /// starts a gradient recovery from them (EDC) would iterate after. None: the engine's
    /// `init` (noise or real images) stays.
    ///
    /// # Shapes
    /// `[classes * ipc, c, h, w]`, class-major as the set.
    fn initialise(&mut self, _ctx: &PrepareContext) -> Result<Option<Tensor>> {
        Ok(None)
    }

    /// How the engine steps the pixels after each matching step: DESIGN.md's SGD by default;
    /// a method with its own optimiser, learning-rate curve or pixel range (SRe2L: Adam, cosine,
    /// clipped to the real pixels' range) says so here. Called once, after [`Matcher::prepare`].
    fn image_update(&self, _ctx: &PrepareContext) -> Result<ImageUpdate> {
        Ok(ImageUpdate::default())
    }

    /// Whether [`MatchContext::real`] is needed: false spares the engine drawing (and
    /// augmenting) a real batch per class every step for a method that never reads them.
    fn uses_real_batches(&self) -> bool {
        true
    }

    /// How the loss decomposes over classes on `network` (a BatchNorm network couples the
    /// classes of a batch through its statistics). The default, `Global`, is always right:
    /// every rank then computes the whole step.
    fn decomposition(&self, _network: &dyn Network) -> Decomposition {
        Decomposition::Global
    }
}

/// The sum of per-class loss terms from left to right, as [`MatchOutput::from_parts`] adds
/// them: in f32 for f32 terms (candle's addition of two f32 scalars is the IEEE one), in f64
/// otherwise. `values` are the terms as f64 (exact for f32 terms), `dtype` theirs.
pub fn sum_parts(values: &[f64], dtype: DType) -> f64 {
    match dtype {
        DType::F32 => values
            .iter()
            .fold(None, |acc: Option<f32>, v| {
                Some(acc.map_or(*v as f32, |a| a + *v as f32))
            })
            .map_or(0.0, f64::from),
        _ => values
            .iter()
            .fold(None, |acc: Option<f64>, v| Some(acc.map_or(*v, |a| a + v)))
            .unwrap_or(0.0),
    }
}
