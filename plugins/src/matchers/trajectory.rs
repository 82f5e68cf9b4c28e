//! `trajectory`: matching training trajectories (MTT; Cazenavette, Wang, Torralba, Efros, Zhu,
//! "Dataset Distillation by Matching Training Trajectories", CVPR 2022; public code
//! GeorgeCazenavette/mtt-distillation, cited below as `distill.py:LINE`), with TESLA's
//! constant-memory gradient and DATM's learned soft labels as options.
//!
//! Each step: take an expert (trained by `cafe-lab experts`) and a start epoch below
//! `max_start_epoch`; a student starts at the expert's parameters of that epoch and takes
//! `syn_steps` SGD steps of the learned size `lr` on minibatches of the synthetic set (DSA on
//! each when the run augments); the loss is its distance to the expert `expert_epochs` later,
//! relative to the expert's own move (`cafe_framework::trajectory::unroll`). Gradients reach
//! the pixels, the step size (learned with `lr_lr`, momentum 0.5) and, with `soft_labels`, the
//! label logits (learned with `lr_labels`, momentum 0.9).
//!
//! The method uses no real batch and no fresh network of the engine's beyond its structure
//! (the student's parameters come from the experts); everything it needs beyond the pixels is
//! declared in `prepare`, so this file is the whole method.

use std::path::PathBuf;

use cafe_framework::rng::{derive_seed, rng_from_seed};
use cafe_framework::synthetic::{LEARNED_LABELS, LEARNED_LR};
use cafe_framework::traits::matcher::{
    Init, LearnableSpec, MatchContext, MatchOutput, Matcher, MatcherDefaults, PrepareContext,
};
use cafe_framework::trajectory::{
    default_store_dir, load_experts, probe_network, run_key, ExpertTrajectory, Student, StudentStep, Targets, Unroll,
};
use cafe_framework::{register_matcher, Error, Mode, Result};
use candle_core::{DType, Tensor, Var};
use rand::seq::SliceRandom;
use rand::Rng as _;
use serde::{Deserialize, Serialize};

/// The matcher's settings; defaults are `distill.py`'s argument defaults (lines 417-471).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrajectoryConfig {
    /// The expert store (what `cafe-lab experts` wrote). Unset: `experts/<dataset>-<arch>`,
    /// where `cafe-lab experts` writes by default.
    pub experts: Option<PathBuf>,
    /// Use only the first this many experts (`--max_experts`, `distill.py:471`); unset: all.
    pub max_experts: Option<usize>,
    /// Student steps per matching step (`--syn_steps 20`, `distill.py:456`).
    pub syn_steps: usize,
    /// How many expert epochs after the start the target is (`--expert_epochs 3`, `distill.py:455`).
    pub expert_epochs: usize,
    /// The start epoch is drawn from `0..max_start_epoch` (`--max_start_epoch 25`,
    /// `distill.py:457`; `np.random.randint(0, max_start_epoch)`, `distill.py:324`, never the
    /// bound itself).
    pub max_start_epoch: usize,
    /// Images per student step; unset: the whole set (`--batch_syn None` ->
    /// `num_classes * ipc`, `distill.py:74-75`).
    pub batch_syn: Option<usize>,
    /// The step size's initial value (`syn_lr = lr_teacher`, `distill.py:118`; `--lr_teacher
    /// 0.01`, `distill.py:435`. The reference's `--lr_init` is never read).
    pub lr_teacher: f64,
    /// Learn the step size (MTT). False keeps `lr_teacher` fixed and evaluation uses `eval.lr`.
    pub learn_lr: bool,
    /// The step size's learning rate (`--lr_lr 1e-5`, `distill.py:434`).
    pub lr_lr: f64,
    /// The step size optimiser's momentum (`SGD([syn_lr], lr=lr_lr, momentum=0.5)`,
    /// `distill.py:139`).
    pub momentum_lr: f64,
    /// How the gradient through the unroll is computed: `reverse` (exact, memory constant in
    /// syn_steps; the default), `graph` (exact, the reference's one graph), `tesla` (TESLA's
    /// code, without the Hessian terms: not exact).
    pub unroll: Unroll,
    /// Learn soft labels (DATM, Guo et al., ICLR 2024): logits initialised from an expert's
    /// predictions on the initial images, trained with the soft cross-entropy, used by
    /// evaluation.
    pub soft_labels: bool,
    /// Their learning rate (`lr_y`; DATM `configs/CIFAR-10/ConvIN/IPC10.yaml`: 2.0).
    pub lr_labels: f64,
    /// Their optimiser's momentum (`Momentum_y: 0.9`, same file; `DATM.py:329`).
    pub momentum_labels: f64,
    /// Step the soft labels only when the matching loss is at most this (`threshold`,
    /// `DATM.py:556`); unset: always.
    pub label_loss_threshold: Option<f64>,
    /// Which epoch of the first expert initialises the soft labels; unset: its last
    /// (`buffer[0][-1]`, `DATM.py:315`).
    pub label_expert_epoch: Option<usize>,
}

impl Default for TrajectoryConfig {
    fn default() -> Self {
        Self {
            experts: None,
            max_experts: None,
            syn_steps: 20,
            expert_epochs: 3,
            max_start_epoch: 25,
            batch_syn: None,
            lr_teacher: 0.01,
            learn_lr: true,
            lr_lr: 1e-5,
            momentum_lr: 0.5,
            unroll: Unroll::Reverse,
            soft_labels: false,
            lr_labels: 2.0,
            momentum_labels: 0.9,
            label_loss_threshold: None,
            label_expert_epoch: None,
        }
    }
}

impl TrajectoryConfig {
    fn validate(&self) -> Result<()> {
        for (key, v) in [
            ("syn_steps", self.syn_steps),
            ("expert_epochs", self.expert_epochs),
            ("max_start_epoch", self.max_start_epoch),
        ] {
            if v == 0 {
                return Err(Error::invalid(format!("matcher.{key}"), 0, "must be at least 1"));
            }
        }
        if self.batch_syn == Some(0) || self.max_experts == Some(0) {
            return Err(Error::invalid(
                "matcher.batch_syn / matcher.max_experts",
                0,
                "must be at least 1 (leave unset for the whole set / every expert)",
            ));
        }
        for (key, v) in [
            ("lr_teacher", self.lr_teacher),
            ("lr_lr", self.lr_lr),
            ("lr_labels", self.lr_labels),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(Error::invalid(
                    format!("matcher.{key}"),
                    v,
                    "a learning rate must be a positive finite number",
                ));
            }
        }
        for (key, v) in [
            ("momentum_lr", self.momentum_lr),
            ("momentum_labels", self.momentum_labels),
        ] {
            if !(0.0..1.0).contains(&v) {
                return Err(Error::invalid(
                    format!("matcher.{key}"),
                    v,
                    "momentum must be in [0, 1)",
                ));
            }
        }
        Ok(())
    }
}

/// Seed-stream tag of the experts' visiting order.
const EXPERT_ORDER: u64 = 0x4D54_5458;

pub struct Trajectory {
    config: TrajectoryConfig,
    /// Loaded by `prepare`, each holding epochs `0..=max_start_epoch - 1 + expert_epochs`.
    experts: Vec<ExpertTrajectory>,
    /// The run's seed (the experts' visiting order derives from it).
    seed: u64,
    /// The step size when it is not learned.
    fixed_lr: Option<Var>,
}

impl Trajectory {
    /// The expert of `iteration`: the reference walks its buffer in a shuffled order and
    /// reshuffles after each pass (`distill.py:307-322`); here each pass over the store has its
    /// own order drawn from the run's seed, so a resumed run visits the same experts.
    fn expert_for(&self, iteration: usize) -> &ExpertTrajectory {
        let n = self.experts.len();
        let mut order: Vec<usize> = (0..n).collect();
        let pass = (iteration / n) as u64;
        order.shuffle(&mut rng_from_seed(derive_seed(self.seed, &[EXPERT_ORDER, pass])));
        &self.experts[order[iteration % n]]
    }

    /// The minibatches of one unroll: `randperm(N)` split into `batch_syn` chunks, taken from
    /// the end of the list and redrawn when it runs out (`distill.py:343-348`); each with an
    /// augmentation seed.
    fn steps(&self, n: usize, rng: &mut cafe_framework::Rng, device: &candle_core::Device) -> Result<Vec<StudentStep>> {
        let batch = self.config.batch_syn.unwrap_or(n).min(n);
        let mut chunks: Vec<Vec<u32>> = Vec::new();
        let mut steps = Vec::with_capacity(self.config.syn_steps);
        for _ in 0..self.config.syn_steps {
            if chunks.is_empty() {
                let mut perm: Vec<u32> = (0..n as u32).collect();
                perm.shuffle(rng);
                chunks = perm.chunks(batch).map(<[u32]>::to_vec).collect();
            }
            let rows = chunks.pop().expect("refilled above");
            steps.push(StudentStep {
                rows: Tensor::new(rows.as_slice(), device)?,
                augment_seed: rng.random(),
            });
        }
        Ok(steps)
    }

    /// The soft labels' initial logits: the first expert's predictions on the initial images,
    /// in eval mode (DATM `DATM.py:309-319`, the `pix_init == "real"` branch).
    fn initial_label_logits(
        &self,
        ctx: &PrepareContext,
        key: &cafe_framework::trajectory::TrajectoryKey,
    ) -> Result<Tensor> {
        let dir = self.store_dir(ctx);
        let first = cafe_framework::trajectory::expert_files(&dir)?[0].clone();
        let record = cafe_framework::trajectory::ExpertRecord::read(&first)?;
        record.check_fits(&first, key)?;
        let epoch = self.config.label_expert_epoch.unwrap_or(record.epochs);
        let expert = ExpertTrajectory::load_through(&first, ctx.device, epoch)?;
        let params = expert.epoch(epoch)?;
        let net = probe_network(ctx.arch, ctx.dataset, ctx.device)?;
        let n = ctx.images.dim(0)?;
        let mut parts = Vec::new();
        let mut at = 0;
        while at < n {
            let len = 256.min(n - at);
            let x = ctx.images.narrow(0, at, len)?.detach();
            parts.push(net.logits_with(params, &x, Mode::Eval)?.detach());
            at += len;
        }
        Ok(Tensor::cat(&parts, 0)?)
    }

    fn store_dir(&self, ctx: &PrepareContext) -> PathBuf {
        self.config
            .experts
            .clone()
            .unwrap_or_else(|| default_store_dir(&ctx.dataset.name, ctx.arch_name))
    }
}

impl Matcher for Trajectory {
    fn prepare(&mut self, ctx: &PrepareContext) -> Result<Vec<LearnableSpec>> {
        let key = run_key(ctx)?;
        let last = self.config.max_start_epoch - 1 + self.config.expert_epochs;
        self.experts = load_experts(&self.store_dir(ctx), &key, last, self.config.max_experts, ctx.device)?;
        self.seed = ctx.seed;
        let lr = Tensor::new(self.config.lr_teacher as f32, ctx.device)?;
        let mut learned = Vec::new();
        if self.config.learn_lr {
            learned.push(LearnableSpec {
                name: LEARNED_LR.into(),
                initial: lr,
                lr: self.config.lr_lr,
                momentum: self.config.momentum_lr,
            });
        } else {
            self.fixed_lr = Some(Var::from_tensor(&lr)?);
        }
        if self.config.soft_labels {
            learned.push(LearnableSpec {
                name: LEARNED_LABELS.into(),
                initial: self.initial_label_logits(ctx, &key)?,
                lr: self.config.lr_labels,
                momentum: self.config.momentum_labels,
            });
        }
        Ok(learned)
    }

    fn compute(&self, ctx: &MatchContext) -> Result<MatchOutput> {
        if self.experts.is_empty() {
            return Err(Error::Other(
                "the trajectory matcher has no experts: prepare() loads them before the first step".into(),
            ));
        }
        let expert = self.expert_for(ctx.iteration);
        let mut rng = rng_from_seed(ctx.step_seed);
        let start_epoch = rng.random_range(0..self.config.max_start_epoch);
        let start = expert.epoch(start_epoch)?;
        let target = expert.epoch(start_epoch + self.config.expert_epochs)?;
        let n = ctx.synthetic.dim(0)?;
        let steps = self.steps(n, &mut rng, ctx.synthetic.device())?;
        let lr = match (&self.fixed_lr, ctx.learned(LEARNED_LR)) {
            (Some(fixed), _) => fixed,
            (None, Some(learned)) => learned,
            (None, None) => {
                return Err(Error::Other(format!(
                    "the synthetic set has no learned '{LEARNED_LR}' (prepare() declares it)"
                )))
            }
        };
        let targets = match ctx.learned(LEARNED_LABELS) {
            Some(v) if self.config.soft_labels => Targets::Soft(v),
            _ => Targets::Labels(ctx.labels),
        };
        let student = Student {
            network: ctx.network,
            images: ctx.synthetic,
            targets,
            lr,
            augmenter: ctx.augmenter,
        };
        let out = student.match_trajectory(start, target, &steps, self.config.unroll)?;
        if !out.loss.is_finite() {
            return Err(Error::NonFinite(format!(
                "trajectory matching loss is {}; lower --lr-img or matcher.lr_lr",
                out.loss
            )));
        }
        let lr_value = lr.as_tensor().to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?[0];
        let mut learned = Vec::new();
        if self.config.learn_lr {
            learned.push((LEARNED_LR.to_string(), out.lr));
        }
        if let Some(g) = out.labels {
            if self.config.label_loss_threshold.is_none_or(|t| out.loss <= t) {
                learned.push((LEARNED_LABELS.to_string(), g));
            }
        }
        Ok(MatchOutput {
            loss: out.loss,
            terms: vec![("start_epoch".into(), start_epoch as f64), ("syn_lr".into(), lr_value)],
            gradient: out.images,
            learned,
            loss_parts: Vec::new(),
            loss_global: None,
        })
    }

    fn defaults(&self) -> MatcherDefaults {
        MatcherDefaults {
            lr_img: 1000.0,   // distill.py:433 --lr_img 1000
            init: Init::Real, // distill.py:443 --pix_init real
            iterations: 5000, // distill.py:431 --Iteration 5000
            needs_second_order: true,
        }
    }

    fn uses_real_batches(&self) -> bool {
        false
    }
}

register_matcher!(
    "trajectory",
    "MTT (CVPR 2022): match the parameters an expert reaches, after unrolled student steps on S",
    TrajectoryConfig,
    |config: TrajectoryConfig| -> Result<Box<dyn Matcher>> {
        config.validate()?;
        Ok(Box::new(Trajectory {
            config,
            experts: Vec::new(),
            seed: 0,
            fixed_lr: None,
        }))
    }
);
