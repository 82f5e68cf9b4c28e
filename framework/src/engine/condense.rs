//! The condensation run: initialise the synthetic set, then `iterations` times build a fresh
//! network and let the scheduler run outer and inner steps on it.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use candle_core::{DType, Device};
use serde::Serialize;
use serde_json::Value;

use crate::checkpoint::{Checkpoint, CheckpointState, LearnedCheckpoint};
use crate::data::Dataset;
use crate::dist::Communicator;
use crate::engine::bilevel::{stream, IterationLoop};
use crate::logging::MetricLogger;
use crate::output::image_grid;
use crate::rng::sub_rng;
use crate::synthetic::{check_ipc, Init, SyntheticSet};
use crate::teacher::Teacher;
use crate::train::{Adam, AdamConfig, Decay, Optimizer, Sgd};
use crate::traits::architecture::Architecture;
use crate::traits::augmenter::Augmenter;
use crate::traits::image_update::{ImageOptimizerKind, ImageUpdate};
use crate::traits::matcher::{Matcher, PrepareContext};
use crate::traits::scheduler::{IterationReport, Scheduler};
use crate::{Error, Result};

/// The plugins of a run.
pub struct Components {
    pub matcher: Box<dyn Matcher>,
    pub scheduler: Box<dyn Scheduler>,
    pub arch: Box<dyn Architecture>,
    /// The architecture's registered name and resolved settings (what a matcher's prepared
    /// resources, e.g. an expert store, are checked against).
    pub arch_name: String,
    pub arch_config: Value,
    pub augmenter: Box<dyn Augmenter>,
    /// The run's frozen teacher, loaded when the matcher needs one
    /// ([`Matcher::needs_teacher`]); None otherwise.
    pub teacher: Option<Arc<Teacher>>,
}

/// The resolved numeric settings of a condensation (no `Option`s left).
#[derive(Debug, Clone, Serialize)]
pub struct CondenseSettings {
    pub ipc: usize,
    pub iterations: usize,
    pub batch_real: usize,
    pub batch_train: usize,
    pub lr_img: f64,
    pub momentum_img: f64,
    pub lr_img_halve_at: Vec<usize>,
    pub lr_net: f64,
    pub init: Init,
    pub seed: u64,
}

impl CondenseSettings {
    /// Refuses impossible settings before any work.
    pub fn validate(&self) -> Result<()> {
        if self.ipc == 0 {
            return Err(Error::invalid("ipc", 0, "images per class must be at least 1"));
        }
        if self.batch_real == 0 {
            return Err(Error::invalid(
                "batch_real",
                0,
                "at least one real image per class is needed",
            ));
        }
        if self.batch_train == 0 {
            return Err(Error::invalid(
                "batch_train",
                0,
                "the inner batch must hold at least one image",
            ));
        }
        for (name, v) in [("lr_img", self.lr_img), ("lr_net", self.lr_net)] {
            if !(v.is_finite() && v > 0.0) {
                return Err(Error::invalid(
                    name,
                    v,
                    "a learning rate must be a positive finite number",
                ));
            }
        }
        if !(0.0..1.0).contains(&self.momentum_img) {
            return Err(Error::invalid(
                "momentum_img",
                self.momentum_img,
                "momentum must be in [0, 1)",
            ));
        }
        Ok(())
    }
}

/// Called after every iteration with (iteration index, its report, seconds it took).
pub type Progress<'a> = &'a mut dyn FnMut(usize, &IterationReport, f64);

/// Called after every iteration with (iterations done, the synthetic set, the logger):
/// evaluation during condensation (`--eval-every`) hooks in here.
pub type AfterIteration<'a> = dyn FnMut(usize, &SyntheticSet, &mut dyn MetricLogger) -> Result<()> + 'a;

/// Checkpointing, resuming and interruption of a condensation.
#[derive(Default)]
pub struct RunControl<'a> {
    /// Write a checkpoint to this file every `checkpoint_every` iterations (and when
    /// interrupted).
    pub checkpoint_path: Option<PathBuf>,
    /// 0: only when interrupted.
    pub checkpoint_every: usize,
    /// Continue from this checkpoint.
    pub resume: Option<Checkpoint>,
    /// Set (e.g. by Ctrl-C) to stop after the current iteration, with a checkpoint.
    pub interrupt: Option<&'a AtomicBool>,
    /// Log the synthetic set as an image every this many iterations (0: never here).
    pub log_images_every: usize,
    /// Called after every iteration (see [`AfterIteration`]).
    pub after_iteration: Option<&'a mut AfterIteration<'a>>,
    /// The ranks running this condensation together (None: this process alone). Every rank
    /// runs every iteration; a matcher whose loss decomposes over classes shares each matching
    /// step among them. Only rank 0 writes checkpoints.
    pub comm: Option<&'a dyn Communicator>,
}

/// What a condensation produced.
pub struct CondenseOutcome {
    pub synthetic: SyntheticSet,
    pub reports: Vec<IterationReport>,
    pub seconds_per_iteration: Vec<f64>,
}

/// The optimiser of the pixels that `update` asks for, at the run's `lr_img`.
fn image_optimizer(update: &ImageUpdate, synthetic: &SyntheticSet, settings: &CondenseSettings) -> Box<dyn Optimizer> {
    let vars = vec![synthetic.images.clone()];
    match update.optimizer {
        ImageOptimizerKind::Sgd => Box::new(Sgd::new(vars, settings.lr_img, settings.momentum_img, 0.0)),
        ImageOptimizerKind::Adam { beta1, beta2, eps } => Box::new(Adam::new(
            vars,
            AdamConfig {
                lr: settings.lr_img,
                beta1,
                beta2,
                eps,
                weight_decay: 0.0,
                decay: Decay::Coupled,
            },
        )),
    }
}

/// Runs the whole condensation.
pub fn condense(
    dataset: &Dataset,
    components: &mut Components,
    settings: &CondenseSettings,
    device: &Device,
    logger: &mut dyn MetricLogger,
    progress: Progress,
    control: RunControl,
) -> Result<CondenseOutcome> {
    settings.validate()?;
    let solo = crate::dist::Solo;
    let comm = control.comm.unwrap_or(&solo);
    let by_class = check_ipc(&dataset.train, dataset.classes, settings.ipc)?;
    let mut init_rng = sub_rng(settings.seed, &[stream::INIT]);
    let mut synthetic = SyntheticSet::initialise(dataset, settings.ipc, settings.init, device, &mut init_rng)?;
    // The method's own starting images that its prepare() must see (DATM's
    // `samples_predicted_correctly`: its soft labels start from these images' logits).
    let engine_images = synthetic.images_detached();
    let own = components.matcher.initial_images(&PrepareContext {
        dataset,
        arch: components.arch.as_ref(),
        arch_name: &components.arch_name,
        arch_config: &components.arch_config,
        images: &engine_images,
        labels: &synthetic.labels,
        ipc: settings.ipc,
        iterations: settings.iterations,
        device,
        seed: settings.seed,
        teacher: components.teacher.as_ref(),
    })?;
    if let Some(images) = own {
        if images.dims() != synthetic.images.dims() {
            return Err(Error::Other(format!(
                "the matcher's initial images are {:?}, the synthetic set is {:?}",
                images.dims(),
                synthetic.images.dims()
            )));
        }
        synthetic.images.set(&images.to_dtype(synthetic.images.dtype())?)?;
    }
    let initial = synthetic.images_detached();
    let prepare = PrepareContext {
        dataset,
        arch: components.arch.as_ref(),
        arch_name: &components.arch_name,
        arch_config: &components.arch_config,
        images: &initial,
        labels: &synthetic.labels,
        ipc: settings.ipc,
        iterations: settings.iterations,
        device,
        seed: settings.seed,
        teacher: components.teacher.as_ref(),
    };
    let specs = components.matcher.prepare(&prepare)?;
    let update = components.matcher.image_update(&prepare)?;
    if update.curve.is_some() && !settings.lr_img_halve_at.is_empty() {
        return Err(Error::invalid(
            "lr_img_halve_at",
            format!("{:?}", settings.lr_img_halve_at),
            "this method sets its own learning-rate curve for the pixels: leave lr_img_halve_at empty",
        ));
    }
    // The method's own images (RDED's selection); a resumed run's come from its checkpoint.
    let made = if control.resume.is_none() {
        components.matcher.initialise(&prepare)?
    } else {
        None
    };
    if let Some(images) = made {
        if images.dims() != initial.dims() {
            return Err(Error::Other(format!(
                "the matcher made a set of shape {:?}; the run's is {:?}",
                images.dims(),
                initial.dims()
            )));
        }
        synthetic
            .images
            .set(&images.to_dtype(initial.dtype())?.to_device(device)?)?;
    }
    // One SGD per learned extra, in the order of `synthetic.learned`.
    let mut learned_opts = Vec::with_capacity(specs.len());
    for spec in &specs {
        synthetic.add_learned(&spec.name, &spec.initial)?;
        let var = synthetic.learned(&spec.name).expect("added above").clone();
        learned_opts.push(Sgd::new(vec![var], spec.lr, spec.momentum, 0.0));
    }
    let mut image_opt = image_optimizer(&update, &synthetic, settings);
    let mut reports = Vec::with_capacity(settings.iterations);
    let mut seconds = Vec::with_capacity(settings.iterations);
    let mut global_step = 0usize;
    let mut first = 0;
    if let Some(ck) = control.resume {
        if ck.images.dims() != synthetic.images.dims() {
            return Err(Error::invalid(
                "resume",
                format!("{:?}", ck.images.dims()),
                format!(
                    "the checkpoint's synthetic set does not fit this run's {:?}",
                    synthetic.images.dims()
                ),
            ));
        }
        synthetic.images.set(&ck.images.to_device(device)?)?;
        match update.optimizer {
            ImageOptimizerKind::Sgd => image_opt.load_state(vec![("momentum_buffer.0".into(), ck.velocity)], 0)?,
            ImageOptimizerKind::Adam { .. } => image_opt.load_state(ck.image_state, ck.state.image_steps)?,
        }
        let have: Vec<&str> = ck.learned.iter().map(|l| l.name.as_str()).collect();
        let want: Vec<&str> = synthetic.learned.iter().map(|l| l.name.as_str()).collect();
        if have != want {
            return Err(Error::invalid(
                "resume",
                format!("learned tensors {have:?}"),
                format!("this run's matcher learns {want:?}; resume with the run's own config.json"),
            ));
        }
        for ((l, opt), saved) in synthetic.learned.iter().zip(&mut learned_opts).zip(ck.learned) {
            l.var.set(&saved.value.to_device(device)?)?;
            opt.set_velocity(vec![saved.velocity]);
        }
        image_opt.set_lr(ck.state.lr_img);
        global_step = ck.state.global_step;
        first = ck.state.next_iteration;
        reports = ck.state.reports;
        seconds = ck.state.seconds_per_iteration;
        components.scheduler.load_state(&ck.state.scheduler_state)?;
    }
    let save_checkpoint = |next: usize,
                           image_opt: &dyn Optimizer,
                           learned_opts: &[Sgd],
                           reports: &[IterationReport],
                           seconds: &[f64],
                           global_step: usize,
                           scheduler: &dyn Scheduler|
     -> Result<()> {
        let Some(path) = control.checkpoint_path.as_ref().filter(|_| comm.rank() == 0) else {
            return Ok(());
        };
        // SGD's one momentum buffer where checkpoints always kept it; any other optimiser's
        // state under its own names.
        let (velocity, image_state) = match update.optimizer {
            ImageOptimizerKind::Sgd => (image_opt.state().swap_remove(0).1, Vec::new()),
            ImageOptimizerKind::Adam { .. } => (None, image_opt.state()),
        };
        Checkpoint {
            images: synthetic.images_detached(),
            velocity,
            image_state,
            learned: synthetic
                .learned
                .iter()
                .zip(learned_opts)
                .map(|(l, opt)| LearnedCheckpoint {
                    name: l.name.clone(),
                    value: l.var.as_tensor().detach(),
                    velocity: opt.velocity()[0].clone(),
                })
                .collect(),
            state: CheckpointState {
                next_iteration: next,
                lr_img: image_opt.lr(),
                image_steps: image_opt.steps(),
                global_step,
                reports: reports.to_vec(),
                seconds_per_iteration: seconds.to_vec(),
                scheduler_state: scheduler.save_state(),
                // `Checkpoint::save` names them from `learned` and `image_state` above.
                learned: Vec::new(),
                image_state: Vec::new(),
            },
        }
        .save(path)
    };
    let mut after_iteration = control.after_iteration;
    for it in first..settings.iterations {
        match update.curve {
            Some(curve) => image_opt.set_lr(settings.lr_img * curve.factor(it, settings.iterations)),
            None if settings.lr_img_halve_at.contains(&it) => image_opt.set_lr(image_opt.lr() * 0.5),
            None => {}
        }
        let start = Instant::now();
        let mut net_rng = sub_rng(settings.seed, &[stream::NETWORK, it as u64]);
        let network = components
            .arch
            .build(dataset.train.shape, dataset.classes, DType::F32, device, &mut net_rng)?;
        let network_opt = Sgd::new(network.parameters(), settings.lr_net, 0.0, 0.0);
        let mut lp = IterationLoop {
            dataset,
            by_class: &by_class,
            matcher: components.matcher.as_ref(),
            augmenter: components.augmenter.as_ref(),
            network,
            network_opt,
            synthetic: &synthetic,
            image_opt: image_opt.as_mut(),
            pixel_range: update.pixel_range.as_ref(),
            learned_opts: &mut learned_opts,
            settings,
            device,
            rng: sub_rng(settings.seed, &[stream::SAMPLING, it as u64]),
            iteration: it,
            outer_steps: 0,
            probe: None,
            logger: &mut *logger,
            global_step: &mut global_step,
            comm,
            skipped_steps: 0,
            shared_steps: 0,
            record: Vec::new(),
        };
        let mut report = match components.scheduler.run_iteration(&mut lp) {
            Ok(r) => r,
            Err(e @ Error::NonFinite(_)) => {
                let kept = match &control.checkpoint_path {
                    Some(p) if p.exists() => format!("; the last good checkpoint is kept in {}", p.display()),
                    _ => String::new(),
                };
                return Err(Error::NonFinite(format!("{e} (iteration {it}){kept}")));
            }
            Err(e) => return Err(e),
        };
        report.skipped_steps = lp.skipped_steps;
        report.shared_steps = lp.shared_steps;
        report.record = lp.record.into_iter().collect();
        let secs = start.elapsed().as_secs_f64();
        logger.scalar("iteration/loss", it, report.last_loss);
        logger.scalar("scheduler/outer_steps", it, report.outer_steps as f64);
        logger.scalar("scheduler/inner_epochs", it, report.inner_epochs as f64);
        logger.scalar("scheduler/capped", it, if report.capped { 1.0 } else { 0.0 });
        logger.scalar("time/seconds_per_iteration", it, secs);
        if let Some(acc) = report.probe_accuracies.last() {
            logger.scalar("probe/accuracy", it, *acc);
        }
        progress(it, &report, secs);
        reports.push(report);
        seconds.push(secs);
        let done = it + 1;
        if control.log_images_every > 0
            && (done.is_multiple_of(control.log_images_every) || done == settings.iterations)
        {
            let s = &synthetic;
            logger.image("synthetic", it, &image_grid(&s.images_detached(), dataset, s.ipc)?);
        }
        if let Some(hook) = after_iteration.as_mut() {
            hook(done, &synthetic, &mut *logger)?;
        }
        let interrupted = control.interrupt.is_some_and(|f| f.load(Ordering::SeqCst));
        // A Ctrl-C may reach the ranks at different iterations: stop where any of them saw it.
        let interrupted = if comm.size() > 1 {
            let mut flag = [f64::from(u8::from(interrupted))];
            comm.all_reduce_sum_f64(&mut flag)?;
            flag[0] > 0.0
        } else {
            interrupted
        };
        let due = control.checkpoint_every > 0 && done.is_multiple_of(control.checkpoint_every);
        if interrupted || due {
            save_checkpoint(
                done,
                image_opt.as_ref(),
                &learned_opts,
                &reports,
                &seconds,
                global_step,
                components.scheduler.as_ref(),
            )?;
        }
        if interrupted && done < settings.iterations {
            logger.flush();
            return Err(Error::Interrupted {
                next_iteration: done,
                checkpoint: control.checkpoint_path.clone(),
            });
        }
    }
    logger.flush();
    Ok(CondenseOutcome {
        synthetic,
        reports,
        seconds_per_iteration: seconds,
    })
}
