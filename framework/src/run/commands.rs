//! The commands: `condense` (and `--resume`), `evaluate`, `baseline`.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;

use crate::checkpoint::{Checkpoint, CHECKPOINT_FILE};
use crate::config::{RunConfig, Select};
use crate::data::{self, Dataset, LoadOptions};
use crate::dist::{agree, Comm, Communicator};
use crate::engine::{condense, RunControl};
use crate::eval::{seal_test_set, DuringEval};
use crate::gpu::compute_info;
use crate::logging::{FanOut, MetricLogger, TensorBoardLogger};
use crate::metrics::storage_of_safetensors;
use crate::output::{save_grid_png, write_json};
use crate::progress::Progress;
use crate::synthetic::SyntheticSet;
use crate::teacher::{load_teacher, Teacher, TeacherArch};
use crate::traits::scheduler::IterationReport;
use crate::{Error, Result};

use super::fit_to_dataset::fit_to_dataset;
use super::metadata::set_metadata;
use super::resolve::{resolve, ResolvedRun};
use super::results::{median, peak_rss_mib, print_table, write_results, CondensationSummary, Results};

/// How a run talks to the person running it, and which processes run it.
#[derive(Clone)]
pub struct RunOptions {
    /// No progress lines.
    pub quiet: bool,
    /// Write into a non-empty output directory.
    pub force: bool,
    /// Set by a Ctrl-C handler: the condensation stops after its current iteration and
    /// writes a checkpoint.
    pub interrupt: Option<&'static AtomicBool>,
    /// The ranks running the command together (see [`crate::dist`]); rank 0 alone writes
    /// files and reports progress.
    pub comm: Comm,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            quiet: false,
            force: false,
            interrupt: None,
            comm: crate::dist::solo(),
        }
    }
}

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("quiet", &self.quiet)
            .field("force", &self.force)
            .field("comm", &self.comm.describe())
            .finish()
    }
}

impl RunOptions {
    /// Quiet on every rank but 0.
    pub(super) fn quiet(&self) -> bool {
        self.quiet || self.comm.rank() != 0
    }
}

/// Runs `write` on rank 0 alone; an error there is an error on every rank.
pub(super) fn on_root<T: Default>(comm: &dyn Communicator, write: impl FnOnce() -> Result<T>) -> Result<T> {
    let outcome = if comm.rank() == 0 { write() } else { Ok(T::default()) };
    agree(comm, outcome)
}

/// Refuses to overwrite a non-empty output directory unless forced. Returns whether the
/// directory was empty (or absent) before: a fresh one, which a run refused before its
/// first iteration leaves as it found it.
pub(super) fn prepare_out(out: &Path, force: bool) -> Result<bool> {
    let mut fresh = true;
    if let Ok(mut entries) = std::fs::read_dir(out) {
        if entries.next().is_some() {
            if !force {
                return Err(Error::invalid(
                    "out",
                    out.display(),
                    "the output directory is not empty; pass --force to overwrite, or choose another --out",
                ));
            }
            fresh = false;
        }
    }
    std::fs::create_dir_all(out).map_err(|e| Error::io(format!("creating output directory {}", out.display()), e))?;
    Ok(fresh)
}

/// Empties the fresh output directory `out` of what a run wrote before it was refused (its
/// config.json, tensorboard/), so that the corrected run needs no `--force`. Best effort: the
/// refusal is what the user must see.
fn release_out(out: &Path) {
    let _ = std::fs::remove_file(out.join("config.json"));
    let _ = std::fs::remove_dir_all(out.join("tensorboard"));
    let _ = std::fs::remove_dir(out);
}

pub(super) fn load_dataset(config: &RunConfig, quiet: bool) -> Result<Dataset> {
    data::load_announced(
        config.dataset.name(),
        &LoadOptions::new(&config.data_dir, config.download, config.seed, config.zca),
        quiet,
    )
}

/// `cafe-lab condense`: condenses, saves the set, evaluates it beside the random baseline.
pub fn run_condense(config: &RunConfig, opts: RunOptions) -> Result<Results> {
    let run = resolve(config)?;
    let comm = opts.comm.clone();
    let fresh = on_root(comm.as_ref(), || {
        let fresh = prepare_out(&run.out, opts.force)?;
        write_json(&run.out.join("config.json"), &run.resolved_json)?;
        Ok(fresh)
    })?;
    let out = run.out.clone();
    let iterated = AtomicBool::new(false);
    let result = condense_and_evaluate(run, opts, None, &iterated);
    // Refused before any iteration (e.g. by the matcher's preparation, which needs the data):
    // nothing of the run is worth keeping.
    if result.is_err() && fresh && comm.rank() == 0 && !iterated.load(Ordering::SeqCst) {
        release_out(&out);
    }
    result
}

/// `cafe-lab --resume DIR`: continues an interrupted condensation from its checkpoint, with
/// the configuration saved beside it; ends byte-identical to an uninterrupted run.
pub fn resume_condense(dir: &Path, opts: RunOptions) -> Result<Results> {
    let config_path = dir.join("config.json");
    let text = std::fs::read_to_string(&config_path).map_err(|e| {
        Error::io(
            format!(
                "reading {} (is {} a run directory?)",
                config_path.display(),
                dir.display()
            ),
            e,
        )
    })?;
    let mut json: Value = serde_json::from_str(&text).map_err(|e| {
        Error::invalid(
            "resume",
            config_path.display(),
            format!("config.json is not valid JSON: {e}"),
        )
    })?;
    if let Value::Object(m) = &mut json {
        m.remove("second_order_gradients");
    }
    let mut config: RunConfig = serde_json::from_value(json).map_err(|e| {
        Error::invalid(
            "resume",
            config_path.display(),
            format!("config.json does not fit: {e}"),
        )
    })?;
    config.out = Some(dir.to_path_buf());
    let checkpoint_path = dir.join(CHECKPOINT_FILE);
    if !checkpoint_path.exists() {
        return Err(Error::invalid(
            "resume",
            dir.display(),
            format!("no {CHECKPOINT_FILE} there; the run wrote no checkpoint yet (see --checkpoint-every)"),
        ));
    }
    let run = resolve(&config)?;
    let checkpoint = Checkpoint::load(&checkpoint_path, &run.device)?;
    if !opts.quiet() {
        eprintln!(
            "resuming {} at iteration {}",
            dir.display(),
            checkpoint.state.next_iteration
        );
    }
    condense_and_evaluate(run, opts, Some(checkpoint), &AtomicBool::new(true))
}

/// The condensation and evaluation of a resolved run; sets `iterated` once an iteration is done.
fn condense_and_evaluate(
    mut run: ResolvedRun,
    opts: RunOptions,
    resume: Option<Checkpoint>,
    iterated: &AtomicBool,
) -> Result<Results> {
    if run.components.matcher.defaults().needs_second_order {
        crate::enable_second_order_gradients();
    }
    let comm = opts.comm.clone();
    let (quiet, root) = (opts.quiet(), comm.rank() == 0);
    let mut ds = load_dataset(&run.config, quiet)?;
    // The validation split leaves the training set before anything else reads it.
    let mut during = DuringEval::prepare(
        &run.eval,
        &mut ds,
        run.settings.ipc,
        run.settings.iterations,
        &run.device,
        quiet,
        comm.clone(),
    )?;
    if run.components.matcher.needs_teacher() {
        run.components.teacher = Some(Arc::new(load_run_teacher(&run, &ds, quiet)?));
    }
    let (notes, refitted) = fit_to_dataset(&mut run, &ds);
    if refitted {
        on_root(comm.as_ref(), || {
            write_json(&run.out.join("config.json"), &run.resolved_json)
        })?;
    }
    if !quiet {
        notes.iter().for_each(|n| eprintln!("note: {n}"));
    }
    let mut logger = FanOut(if root {
        vec![Box::new(TensorBoardLogger::new(&run.out.join("tensorboard"))) as Box<dyn MetricLogger>]
    } else {
        Vec::new()
    });
    let total = run.settings.iterations;
    let started = Instant::now();
    let resumed_at = resume.as_ref().map_or(0, |ck| ck.state.next_iteration);
    let bar = Progress::new("condense", total, quiet, run.config.log_every).resumed_after(resumed_at);
    let mut progress = |it: usize, r: &IterationReport, secs: f64| {
        let capped = if r.capped { " (capped)" } else { "" };
        let message = format!(
            "loss {:.4}, outer {} inner {}{capped}, {secs:.2} s/it",
            r.last_loss, r.outer_steps, r.inner_epochs
        );
        bar.step(it + 1, &message);
        iterated.store(true, Ordering::SeqCst);
    };
    if !quiet {
        let ranks = match comm.size() {
            1 => String::new(),
            n => format!(" on {n} ranks"),
        };
        eprintln!(
            "condensing {} with {} / {} on {}: ipc {}, {} iterations{ranks} -> {}",
            ds.name,
            run.config.matcher.name,
            run.config.scheduler.name,
            run.config.arch.name,
            run.settings.ipc,
            total,
            run.out.display()
        );
    }
    let mut hook = |done: usize, syn: &SyntheticSet, logger: &mut dyn MetricLogger| match during.as_mut() {
        Some(d) => d.after_iteration(done, syn, logger),
        None => Ok(()),
    };
    let control = RunControl {
        checkpoint_path: Some(run.out.join(CHECKPOINT_FILE)),
        checkpoint_every: run.config.checkpoint_every,
        resume,
        interrupt: opts.interrupt,
        log_images_every: run.config.log_images_every,
        after_iteration: Some(&mut hook),
        comm: Some(comm.as_ref()),
    };
    let config_text = serde_json::to_string_pretty(&run.resolved_json).unwrap_or_default();
    logger.text("config", 0, &format!("```\n{config_text}\n```"));
    // Nothing reads the test set until the final evaluation: it is sealed (emptied) for the
    // condensation and the evaluations during it (tests/selection.rs proves it).
    let test = seal_test_set(&mut ds);
    let mut outcome = condense(
        &ds,
        &mut run.components,
        &run.settings,
        &run.device,
        &mut logger,
        &mut progress,
        control,
    )?;
    ds.test = test;
    bar.finish();
    let selection = match during.as_mut() {
        Some(d) => Some(d.select(&outcome.synthetic, outcome.reports.len())?),
        None => None,
    };
    if let (Some(s), false) = (&selection, quiet) {
        eprintln!(
            "keeping the set of iteration {} ({}{})",
            s.iteration,
            s.rule,
            s.validation_accuracy
                .map_or(String::new(), |a| format!(", validation accuracy {:.2} %", 100.0 * a))
        );
    }
    let seconds_total = started.elapsed().as_secs_f64();
    outcome.synthetic.metadata = set_metadata(&run, &outcome.synthetic)?;
    let syn = &outcome.synthetic;
    let set_file = run.out.join("synthetic.safetensors");
    let storage = on_root(comm.as_ref(), || {
        syn.save(&set_file)?;
        save_grid_png(&run.out.join("synthetic.png"), &syn.images_detached(), &ds, syn.ipc)?;
        Ok(Some(storage_of_safetensors(&set_file)?))
    })?;
    let reports = &outcome.reports;
    let summary = CondensationSummary {
        matcher: run.config.matcher.name.clone(),
        scheduler: run.config.scheduler.name.clone(),
        arch: run.config.arch.name.clone(),
        iterations: reports.len(),
        seconds_per_iteration_median: median(&outcome.seconds_per_iteration),
        seconds_total,
        final_loss: reports.last().map_or(f64::NAN, |r| r.last_loss),
        outer_steps_total: reports.iter().map(|r| r.outer_steps).sum(),
        inner_epochs_total: reports.iter().map(|r| r.inner_epochs).sum(),
        capped_iterations: reports.iter().filter(|r| r.capped).count(),
        inner_loops_total: reports.iter().map(|r| r.inner_loops).sum(),
        inner_loops_capped_total: reports.iter().map(|r| r.inner_loops_capped).sum(),
        per_iteration: reports.clone(),
    };
    let mut evaluator = run.evaluator(&ds, run.settings.ipc, quiet, comm.as_ref());
    evaluator.interrupt = opts.interrupt;
    let evaluated = evaluator.synthetic_set(syn, &run.out)?;
    let evaluations = evaluated.evaluations;
    for ev in &evaluations {
        logger.scalar(&format!("eval/{}/{}", ev.set, ev.arch), 0, ev.mean);
    }
    logger.flush();
    let results = Results {
        command: "condense".into(),
        dataset: ds.name.clone(),
        ipc: run.settings.ipc,
        notes,
        evaluations,
        condensation: Some(summary),
        metrics: evaluated.metrics,
        storage,
        seconds: Some(started.elapsed().as_secs_f64()),
        peak_rss_mib: peak_rss_mib(),
        compute: Some(compute_info(&run.device)),
        validation_curve: during.map(|d| d.curve).unwrap_or_default(),
        selection,
        kd: evaluated.kd,
    };
    publish(&run.out, results, &opts)
}

/// The frozen teacher of a method that needs one (resolve found its file): a network of the
/// run's architecture and settings, with the teacher's parameters and running statistics.
fn load_run_teacher(run: &ResolvedRun, ds: &Dataset, quiet: bool) -> Result<Teacher> {
    let path = run
        .config
        .teacher
        .as_ref()
        .ok_or_else(|| Error::Other("a method that needs a teacher was resolved without a teacher file".into()))?;
    let target = TeacherArch {
        arch: run.components.arch.as_ref(),
        name: &run.components.arch_name,
        config: Some(&run.components.arch_config),
        shape: ds.train.shape,
        classes: ds.classes,
    };
    let teacher = load_teacher(&target, &ds.name, path, &run.device, "teacher")?;
    if !quiet {
        eprintln!(
            "teacher {} ({}): test accuracy {:.2} %",
            teacher.info.arch,
            path.display(),
            100.0 * teacher.info.accuracy
        );
    }
    Ok(teacher)
}

/// The end of every command: results.json and evaluations.md in `out` and the table on
/// stdout, from rank 0.
pub(super) fn publish(out: &Path, results: Results, opts: &RunOptions) -> Result<Results> {
    on_root(opts.comm.as_ref(), || write_results(out, &results))?;
    if !opts.quiet() {
        print_table(&results);
    }
    Ok(results)
}

/// `cafe-lab evaluate --synthetic FILE`: evaluates a saved synthetic set. `config` comes from
/// [`evaluation_base`](super::metadata::evaluation_base) and the user's flags; without an
/// `out`, the results go beside the file, in `evaluate-seed<S>/`.
pub fn run_evaluate(config: &RunConfig, synthetic: &Path, opts: RunOptions) -> Result<Results> {
    let mut config = config.clone();
    // Evaluation during condensation belongs to the run that made the set (its saved
    // settings may carry it); there is no condensation here.
    config.eval.every = 0;
    config.eval.select = Select::Final;
    if config.out.is_none() {
        let dir = synthetic.parent().unwrap_or(Path::new("."));
        config.out = Some(dir.join(format!("evaluate-seed{}", config.seed)));
    }
    let started = Instant::now();
    let run = resolve(&config)?;
    // The set first: a missing or broken file is refused before the dataset is loaded.
    let syn = SyntheticSet::load(synthetic, &run.device)?;
    let ds = load_dataset(&run.config, opts.quiet())?;
    if syn.shape != ds.train.shape || syn.classes != ds.classes {
        return Err(Error::invalid(
            "synthetic",
            synthetic.display(),
            format!(
                "the set holds {} classes of {} images but dataset {} has {} classes of {}",
                syn.classes, syn.shape, ds.name, ds.classes, ds.train.shape
            ),
        ));
    }
    let comm = opts.comm.as_ref();
    on_root(comm, || {
        prepare_out(&run.out, opts.force)?;
        write_json(&run.out.join("config.json"), &run.resolved_json)
    })?;
    let mut evaluator = run.evaluator(&ds, syn.ipc, opts.quiet(), comm);
    evaluator.interrupt = opts.interrupt;
    let evaluated = evaluator.synthetic_set(&syn, &run.out)?;
    let mut notes = Vec::new();
    if !syn.metadata.contains_key("config") {
        notes.push(format!(
            "{} carries no cafe-lab metadata: the dataset, matching augmentation and evaluation recipe \
             came from the flags and the protocol's defaults",
            synthetic.display()
        ));
    }
    let results = Results {
        command: "evaluate".into(),
        dataset: ds.name.clone(),
        ipc: syn.ipc,
        notes,
        evaluations: evaluated.evaluations,
        condensation: None,
        metrics: evaluated.metrics,
        storage: Some(storage_of_safetensors(synthetic)?),
        seconds: Some(started.elapsed().as_secs_f64()),
        peak_rss_mib: peak_rss_mib(),
        compute: Some(compute_info(&run.device)),
        kd: evaluated.kd,
        ..Results::default()
    };
    publish(&run.out, results, &opts)
}

/// `cafe-lab baseline`: the random real subset alone.
pub fn run_baseline(config: &RunConfig, opts: RunOptions) -> Result<Results> {
    let started = Instant::now();
    let mut config = config.clone();
    config.eval.every = 0;
    config.eval.select = Select::Final;
    let run = resolve(&config)?;
    let comm = opts.comm.as_ref();
    on_root(comm, || {
        prepare_out(&run.out, opts.force)?;
        write_json(&run.out.join("config.json"), &run.resolved_json)
    })?;
    let ds = load_dataset(&run.config, opts.quiet())?;
    let mut evaluator = run.evaluator(&ds, run.settings.ipc, opts.quiet(), comm);
    evaluator.interrupt = opts.interrupt;
    let evaluations = evaluator.random_baseline()?;
    let results = Results {
        command: "baseline".into(),
        dataset: ds.name.clone(),
        ipc: run.settings.ipc,
        notes: Vec::new(),
        evaluations,
        seconds: Some(started.elapsed().as_secs_f64()),
        peak_rss_mib: peak_rss_mib(),
        compute: Some(compute_info(&run.device)),
        ..Results::default()
    };
    publish(&run.out, results, &opts)
}
