//! `trajectory`: matching training trajectories (MTT; Cazenavette, Wang, Torralba, Efros, Zhu,
//! "Dataset Distillation by Matching Training Trajectories", CVPR 2022; public code
//! GeorgeCazenavette/mtt-distillation, cited below as `distill.py:LINE`), with TESLA's
//! constant-memory gradient and teacher labels (justincui03/tesla) and DATM's learned soft
//! labels, difficulty-aligned start window, initialisation and loss threshold
//! (NUS-HPC-AI-Lab/DATM, cited as `DATM.py:LINE`) as options (settings: `config.rs`).
//!
//! Each step: take an expert (trained by `cafe-lab experts`) and a start epoch in the window
//! (`cafe_framework::trajectory::window`); a student starts at the expert's parameters of that epoch and takes
//! `syn_steps` SGD steps of the learned size `lr` on minibatches of the synthetic set (DSA on
//! each when the run augments); the loss is its distance to the expert `expert_epochs` later,
//! relative to the expert's own move (`cafe_framework::trajectory::unroll`). Gradients reach
//! the pixels, the step size (learned with `lr_lr`, momentum 0.5) and, with `soft_labels`, the
//! label logits (learned with `lr_labels`, momentum 0.9).
//!
//! The method uses no real batch and no fresh network of the engine's beyond its structure
//! (the student's parameters come from the experts); everything it needs beyond the pixels is
//! declared in `prepare`, so this file is the whole method.

mod config;

use std::path::PathBuf;

use cafe_framework::rng::{derive_seed, rng_from_seed, stream, sub_rng};
use cafe_framework::synthetic::{LEARNED_LABELS, LEARNED_LR};
use cafe_framework::traits::matcher::{
    Init, LearnableSpec, MatchContext, MatchOutput, Matcher, MatcherDefaults, PrepareContext,
};
use cafe_framework::trajectory::{
    default_store_dir, expert_files, load_experts, probe_network, run_key, ExpertRecord, ExpertTrajectory,
    LabelExperts, Student, StudentStep, Targets,
};
use cafe_framework::{register_matcher, Error, Mode, Result};
use candle_core::{DType, Tensor, Var};
use rand::seq::SliceRandom;
use rand::Rng as _;

pub use config::{PixInit, TrajectoryConfig};

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

    /// The experts DATM's initialisation reads: every expert of the first `max_files` files
    /// (not cut to `max_experts`, `DATM.py:200,282-284`), each checked against the run.
    fn label_files(&self, ctx: &PrepareContext) -> Result<Vec<PathBuf>> {
        let key = run_key(ctx)?;
        let all = expert_files(&self.store_dir(ctx))?;
        let files = self.config.selection().files(&all).to_vec();
        for f in &files {
            ExpertRecord::read(f)?.check_fits(f, &key)?;
        }
        Ok(files)
    }

    /// The soft labels' initial logits (`DATM.py:270-319`): with `pix_init = run`, the first
    /// expert's predictions on the initial images (`buffer[0][-1]`, the `pix_init == "real"`
    /// branch); with `samples_predicted_correctly`, the mean logits of the experts that
    /// classify each image correctly. Eval mode, the label epoch (default: the last).
    fn initial_label_logits(&self, ctx: &PrepareContext) -> Result<Tensor> {
        let mut files = self.label_files(ctx)?;
        if self.config.pix_init == PixInit::Run {
            files.truncate(1);
        }
        let net = probe_network(ctx.arch, ctx.dataset, ctx.device)?;
        let experts = LabelExperts {
            files: &files,
            epoch: self.config.label_expert_epoch,
            network: net.as_ref(),
            device: ctx.device,
        };
        match self.config.pix_init {
            PixInit::Run => {
                let params = ExpertTrajectory::load_epoch(&files[0], ctx.device, self.config.label_expert_epoch)?;
                let n = ctx.images.dim(0)?;
                let mut parts = Vec::new();
                let mut at = 0;
                while at < n {
                    let len = 256.min(n - at);
                    let x = ctx.images.narrow(0, at, len)?.detach();
                    parts.push(net.logits_with(&params, &x, Mode::Eval)?.detach());
                    at += len;
                }
                Ok(Tensor::cat(&parts, 0)?)
            }
            PixInit::SamplesPredictedCorrectly => experts.average_correct_logits(ctx.images, ctx.labels),
        }
    }

    /// TESLA's teacher labels (`tesla:distill.py:343-359`): the target parameters' logits on
    /// the current images, eval mode, no graph (the soft cross-entropy takes their softmax, as
    /// `CrossEntropyLoss` takes TESLA's `softmax(label_syn)`).
    fn teacher_logits(&self, ctx: &MatchContext, target: &[Tensor]) -> Result<Tensor> {
        let images = ctx.synthetic.as_tensor().detach();
        let n = images.dim(0)?;
        let mut parts = Vec::new();
        let mut at = 0;
        while at < n {
            let len = 256.min(n - at);
            parts.push(
                ctx.network
                    .logits_with(target, &images.narrow(0, at, len)?, Mode::Eval)?
                    .detach(),
            );
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
    fn initial_images(&mut self, ctx: &PrepareContext) -> Result<Option<Tensor>> {
        if self.config.pix_init != PixInit::SamplesPredictedCorrectly {
            return Ok(None);
        }
        let files = self.label_files(ctx)?;
        let net = probe_network(ctx.arch, ctx.dataset, ctx.device)?;
        let experts = LabelExperts {
            files: &files,
            epoch: self.config.label_expert_epoch,
            network: net.as_ref(),
            device: ctx.device,
        };
        let mut rng = sub_rng(ctx.seed, &[stream::MATCHER_INIT]);
        Ok(Some(experts.select_images(ctx.dataset, ctx.ipc, &mut rng)?))
    }

    fn prepare(&mut self, ctx: &PrepareContext) -> Result<Vec<LearnableSpec>> {
        let key = run_key(ctx)?;
        let last = self.config.max_start_epoch - 1 + self.config.expert_epochs;
        self.experts = load_experts(&self.store_dir(ctx), &key, last, self.config.selection(), ctx.device)?;
        if self.experts.is_empty() {
            return Err(Error::invalid(
                "matcher.max_files / matcher.max_experts",
                format!("{:?} / {:?}", self.config.max_files, self.config.max_experts),
                "they select no expert of the store",
            ));
        }
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
        if self.config.soft_labels || self.config.teacher_label {
            // Teacher labels are set, never stepped: the set carries the last ones for
            // evaluation; before the first iteration, the first expert's (as DATM's).
            learned.push(LearnableSpec {
                name: LEARNED_LABELS.into(),
                initial: self.initial_label_logits(ctx)?,
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
        let window = self.config.window();
        let start_epoch = window.draw(&mut rng, ctx.iteration);
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
        let teacher = if self.config.teacher_label {
            Some(self.teacher_logits(ctx, target)?)
        } else {
            None
        };
        let targets = match (&teacher, ctx.learned(LEARNED_LABELS)) {
            (Some(t), _) => Targets::Fixed(t),
            (None, Some(v)) if self.config.soft_labels => Targets::Soft(v),
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
            learned.push((LEARNED_LABELS.to_string(), g));
        }
        // DATM.py:556-561: above the threshold none of the three optimisers steps.
        let skip = self.config.threshold.is_some_and(|t| out.loss > t);
        let mut record = Vec::new();
        if self.config.sequential_generation || self.config.min_start_epoch > 0 || self.config.threshold.is_some() {
            record.push(("start_epoch".into(), start_epoch as f64));
            record.push(("upper_bound".into(), window.upper_bound(ctx.iteration) as f64));
        }
        if self.config.threshold.is_some() {
            record.push(("skipped".into(), f64::from(u8::from(skip))));
        }
        Ok(MatchOutput {
            loss: out.loss,
            terms: vec![("start_epoch".into(), start_epoch as f64), ("syn_lr".into(), lr_value)],
            gradient: out.images,
            learned,
            loss_parts: Vec::new(),
            loss_global: None,
            skip,
            assign: teacher.map(|t| (LEARNED_LABELS.to_string(), t)).into_iter().collect(),
            record,
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
