//! Whole runs, as the CLI offers them: `condense` (the default), `evaluate` a saved synthetic
//! set, and the `random` `baseline`. Each resolves its configuration once, refuses impossible
//! settings before any work, and writes `config.json` beside its results.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use candle_core::{Device, Tensor};
use serde::Serialize;
use serde_json::Value;

use crate::checkpoint::{Checkpoint, CHECKPOINT_FILE};
use crate::config::RunConfig;
use crate::data::{self, Dataset, LoadOptions};
use crate::engine::{condense, Components, CondenseSettings, RunControl};
use crate::evaluate::{evaluate_set, EvalSetup, Evaluation};
use crate::logging::{FanOut, MetricLogger, TensorBoardLogger};
use crate::output::{save_grid_png, write_json};
use crate::progress::Progress;
use crate::registry::{find, Plugin, PluginKind};
use crate::rng::sub_rng;
use crate::synthetic::{class_major_labels, random_real_subset, SyntheticSet};
use crate::traits::architecture::Architecture;
use crate::traits::augmenter::Augmenter;
use crate::traits::matcher::Matcher;
use crate::traits::scheduler::{IterationReport, Scheduler};
use crate::{Error, Result};

/// How a run talks to the person running it.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// No progress lines.
    pub quiet: bool,
    /// Write into a non-empty output directory.
    pub force: bool,
    /// Set by a Ctrl-C handler: the condensation stops after its current iteration and
    /// writes a checkpoint.
    pub interrupt: Option<&'static AtomicBool>,
}

/// The device named by `--device`.
pub fn parse_device(name: &str) -> Result<Device> {
    let lower = name.to_ascii_lowercase();
    match lower.as_str() {
        "cpu" => Ok(Device::Cpu),
        s if s == "cuda" || s.starts_with("cuda:") => {
            let ordinal = s
                .strip_prefix("cuda:")
                .map_or(Ok(0), |n| n.parse::<usize>())
                .map_err(|_| Error::invalid("device", name, "expected cpu, cuda or cuda:N"))?;
            Device::new_cuda(ordinal).map_err(|e| {
                Error::invalid(
                    "device",
                    name,
                    format!("{e} (build with `--features cuda` on a machine with the CUDA driver)"),
                )
            })
        }
        _ => Err(Error::invalid("device", name, "expected cpu, cuda or cuda:N")),
    }
}

/// A plugin built from a choice, with its fully resolved config.
fn build_plugin<T: ?Sized + PluginKind>(
    choice: &crate::config::PluginChoice,
) -> Result<(Box<T>, Value, &'static Plugin<T>)> {
    let plugin = find::<T>(&choice.name)?;
    let resolved = plugin.resolve_config(&choice.config_value());
    let built = (plugin.build)(&resolved)?;
    Ok((built, resolved, plugin))
}

/// A run whose plugins are built and whose every setting is resolved.
pub struct ResolvedRun {
    pub config: RunConfig,
    pub components: Components,
    pub settings: CondenseSettings,
    /// The fully resolved configuration, as written to config.json.
    pub resolved_json: Value,
    pub out: PathBuf,
    pub device: Device,
}

/// Looks up and builds every plugin, fills the matcher's defaults in, validates.
pub fn resolve(config: &RunConfig) -> Result<ResolvedRun> {
    let (matcher, matcher_cfg, matcher_plugin) = build_plugin::<dyn Matcher>(&config.matcher)?;
    let (scheduler, scheduler_cfg, scheduler_plugin) = build_plugin::<dyn Scheduler>(&config.scheduler)?;
    let (arch, arch_cfg, arch_plugin) = build_plugin::<dyn Architecture>(&config.arch)?;
    let (augmenter, augment_cfg, augment_plugin) = build_plugin::<dyn Augmenter>(&config.augment)?;
    if let Some(choice) = &config.eval.augment {
        build_plugin::<dyn Augmenter>(choice)?;
    }
    if !augmenter.is_differentiable() {
        return Err(Error::invalid(
            "augment",
            &config.augment.name,
            "matching needs a differentiable augmenter (dsa or none); use it with --eval-augment instead",
        ));
    }
    let defaults = matcher.defaults();
    let settings = CondenseSettings {
        ipc: config.ipc,
        iterations: config.iterations.unwrap_or(defaults.iterations),
        batch_real: config.batch_real,
        batch_train: config.batch_train,
        lr_img: config.lr_img.unwrap_or(defaults.lr_img),
        momentum_img: config.momentum_img,
        lr_img_halve_at: config.lr_img_halve_at.clone(),
        lr_net: config.lr_net,
        init: config.init.unwrap_or(defaults.init),
        seed: config.seed,
    };
    settings.validate()?;
    validate_eval(config)?;
    check_dataset_name(&config.dataset)?;
    let device = parse_device(&config.device)?;
    let out = config.out.clone().unwrap_or_else(|| {
        PathBuf::from("runs").join(format!(
            "{}-{}-{}-ipc{}-seed{}",
            config.dataset.to_ascii_lowercase(),
            matcher_plugin.name,
            scheduler_plugin.name,
            config.ipc,
            config.seed
        ))
    });
    let mut resolved = config.clone();
    resolved.iterations = Some(settings.iterations);
    resolved.lr_img = Some(settings.lr_img);
    resolved.init = Some(settings.init);
    resolved.out = Some(out.clone());
    let mut resolved_json = serde_json::to_value(&resolved).map_err(|e| Error::Other(e.to_string()))?;
    for (key, name, cfg) in [
        ("matcher", matcher_plugin.name, matcher_cfg),
        ("scheduler", scheduler_plugin.name, scheduler_cfg),
        ("arch", arch_plugin.name, arch_cfg),
        ("augment", augment_plugin.name, augment_cfg),
    ] {
        resolved_json[key] = with_name(name, cfg);
    }
    if let Some(choice) = &config.eval.augment {
        let plugin = find::<dyn Augmenter>(&choice.name)?;
        resolved_json["eval"]["augment"] = with_name(plugin.name, plugin.resolve_config(&choice.config_value()));
    }
    resolved_json["eval"]["archs"] = serde_json::json!(eval_arch_names(config)?);
    resolved_json["second_order_gradients"] = Value::Bool(defaults.needs_second_order);
    Ok(ResolvedRun {
        config: resolved,
        components: Components {
            matcher,
            scheduler,
            arch,
            augmenter,
        },
        settings,
        resolved_json,
        out,
        device,
    })
}

/// Refuses an unknown dataset name before any work, listing the valid ones.
fn check_dataset_name(name: &str) -> Result<()> {
    let canonical = name.to_ascii_lowercase().replace('_', "-");
    let known = data::dataset_names();
    if known
        .iter()
        .any(|k| *k == canonical || k.replace('-', "") == canonical.replace('-', ""))
    {
        return Ok(());
    }
    Err(Error::invalid(
        "dataset",
        name,
        format!("valid names: {}", known.join(", ")),
    ))
}

fn with_name(name: &str, cfg: Value) -> Value {
    let mut v = serde_json::json!({ "name": name });
    crate::registry::merge_json(&mut v, &cfg);
    v
}

fn validate_eval(config: &RunConfig) -> Result<()> {
    let e = &config.eval;
    if e.nets == 0 {
        return Err(Error::invalid(
            "eval.nets",
            0,
            "at least one evaluation network is needed",
        ));
    }
    if e.batch == 0 {
        return Err(Error::invalid(
            "eval.batch",
            0,
            "the batch must hold at least one image",
        ));
    }
    if !(e.lr.is_finite() && e.lr > 0.0) {
        return Err(Error::invalid(
            "eval.lr",
            e.lr,
            "a learning rate must be a positive finite number",
        ));
    }
    if e.test_limit == Some(0) {
        return Err(Error::invalid("eval.test_limit", 0, "test on at least one image"));
    }
    for name in eval_arch_names(config)? {
        find::<dyn Architecture>(&name)?;
    }
    Ok(())
}

/// The architectures of an evaluation mode (DC's `get_eval_pool`), by registered name.
pub fn eval_mode_archs(mode: &str, condensation_arch: &str) -> Result<Vec<String>> {
    let names: &[&str] =
        match mode.to_ascii_uppercase().as_str() {
            "S" => return Ok(vec![condensation_arch.to_string()]),
            "M" => &["mlp", "convnet", "lenet", "alexnet", "vgg11", "resnet18"],
            "W" => &["convnetw32", "convnetw64", "convnetw128", "convnetw256"],
            "D" => &["convnetd1", "convnetd2", "convnetd3", "convnetd4"],
            "A" => &["convnetas", "convnetar", "convnetal"],
            "P" => &["convnetnp", "convnetmp", "convnetap"],
            "N" => &["convnetnn", "convnetbn", "convnetln", "convnetin", "convnetgn"],
            _ => return Err(Error::invalid(
                "eval.mode",
                mode,
                "valid modes: S (the condensation architecture), M (MLP, ConvNet, LeNet, AlexNet, VGG11, ResNet18), \
                 W (widths), D (depths), A (activations), P (poolings), N (norms)",
            )),
        };
    Ok(names.iter().map(|s| s.to_string()).collect())
}

/// The evaluation architectures of a run: `eval.archs`, else `eval.mode`'s, else the
/// condensation architecture.
fn eval_arch_names(config: &RunConfig) -> Result<Vec<String>> {
    if !config.eval.archs.is_empty() {
        return Ok(config.eval.archs.iter().map(|a| a.to_ascii_lowercase()).collect());
    }
    eval_mode_archs(
        config.eval.mode.as_deref().unwrap_or("S"),
        &config.arch.name.to_ascii_lowercase(),
    )
}

/// The augmentation that trains the evaluation networks of `arch`, with a name for the
/// records: `eval.augment` when set, else DESIGN.md's defaults (DSA when matching used DSA;
/// DC `crop_noise` for BatchNorm networks; DC `crop_scale_rotate` for MNIST-like data; none).
fn eval_augmenter_for(config: &RunConfig, arch: &dyn Architecture) -> Result<(Box<dyn Augmenter>, String)> {
    let choice = match &config.eval.augment {
        Some(choice) => choice.clone(),
        None if config.augment.name.eq_ignore_ascii_case("dsa") => config.augment.clone(),
        None => {
            let dataset = config.dataset.to_ascii_lowercase().replace(['-', '_'], "");
            let strategy = if arch.uses_batch_norm() {
                "crop_noise"
            } else if dataset == "mnist" || dataset == "fashionmnist" {
                "crop_scale_rotate"
            } else {
                return Ok((
                    build_plugin::<dyn Augmenter>(&crate::config::PluginChoice::named("none"))?.0,
                    "none".into(),
                ));
            };
            let mut c = crate::config::PluginChoice::named("dc");
            c.config.insert("strategy".into(), Value::String(strategy.into()));
            c
        }
    };
    let (augmenter, resolved, plugin) = build_plugin::<dyn Augmenter>(&choice)?;
    let name = match resolved.get("strategy").and_then(Value::as_str) {
        Some(strategy) => format!("{}:{strategy}", plugin.name),
        None => plugin.name.to_string(),
    };
    Ok((augmenter, name))
}

/// Evaluation epochs: `eval.epochs`, else 1000 with DSA and 300 otherwise (DESIGN.md).
fn eval_epochs(config: &RunConfig, augment_name: &str) -> usize {
    config
        .eval
        .epochs
        .unwrap_or(if augment_name.starts_with("dsa") { 1000 } else { 300 })
}

/// Refuses to overwrite a non-empty output directory unless forced.
fn prepare_out(out: &Path, force: bool) -> Result<()> {
    if let Ok(mut entries) = std::fs::read_dir(out) {
        if entries.next().is_some() && !force {
            return Err(Error::invalid(
                "out",
                out.display(),
                "the output directory is not empty; pass --force to overwrite, or choose another --out",
            ));
        }
    }
    std::fs::create_dir_all(out).map_err(|e| Error::io(format!("creating output directory {}", out.display()), e))
}

fn load_dataset(config: &RunConfig, quiet: bool) -> Result<Dataset> {
    let start = Instant::now();
    let ds = data::load(
        &config.dataset,
        &LoadOptions {
            data_dir: config.data_dir.clone(),
            download: config.download,
            seed: config.seed,
        },
    )?;
    if !quiet {
        eprintln!(
            "dataset {}: {} train / {} test images of {}, {} classes ({:.1} s)",
            ds.name,
            ds.train.len(),
            ds.test.len(),
            ds.train.shape,
            ds.classes,
            start.elapsed().as_secs_f64()
        );
    }
    Ok(ds)
}

/// results.json.
#[derive(Debug, Clone, Serialize)]
pub struct Results {
    pub command: String,
    pub dataset: String,
    pub ipc: usize,
    pub evaluations: Vec<Evaluation>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub condensation: Option<CondensationSummary>,
}

/// What the condensation did, for results.json.
#[derive(Debug, Clone, Serialize)]
pub struct CondensationSummary {
    pub matcher: String,
    pub scheduler: String,
    pub arch: String,
    pub iterations: usize,
    pub seconds_per_iteration_median: f64,
    pub seconds_total: f64,
    pub final_loss: f64,
    pub outer_steps_total: usize,
    pub inner_epochs_total: usize,
    /// Iterations in which a scheduler's hard cap ended a loop.
    pub capped_iterations: usize,
    /// Per iteration: outer steps, inner epochs, capped, last loss.
    pub per_iteration: Vec<IterationReport>,
}

fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len().is_multiple_of(2) {
        (v[m - 1] + v[m]) / 2.0
    } else {
        v[m]
    }
}

/// Evaluates `images` on every evaluation architecture of the run.
fn evaluate_on_archs(
    run: &ResolvedRun,
    ds: &Dataset,
    set_name: &str,
    images: &Tensor,
    labels: &Tensor,
    quiet: bool,
) -> Result<Vec<Evaluation>> {
    let mut archs: Vec<(String, Box<dyn Architecture>)> = Vec::new();
    for name in eval_arch_names(&run.config)? {
        if name == run.config.arch.name.to_ascii_lowercase() {
            // The condensation architecture keeps its configuration (e.g. a set width).
            let (arch, _, plugin) = build_plugin::<dyn Architecture>(&run.config.arch)?;
            archs.push((plugin.name.to_string(), arch));
        } else {
            let plugin = find::<dyn Architecture>(&name)?;
            archs.push((plugin.name.to_string(), plugin.instantiate(&Value::Null)?));
        }
    }
    let mut out = Vec::new();
    for (name, arch) in &archs {
        let bar = Progress::new(&format!("eval {set_name} on {name}"), run.config.eval.nets, quiet, 1);
        let report = |k: usize, acc: f64| bar.step(k + 1, &format!("last test accuracy {:.2} %", 100.0 * acc));
        let (augmenter, augment_name) = eval_augmenter_for(&run.config, arch.as_ref())?;
        let setup = EvalSetup {
            arch: arch.as_ref(),
            arch_name: name,
            classes: ds.classes,
            shape: ds.train.shape,
            test: &ds.test,
            config: &run.config.eval,
            augmenter: augmenter.as_ref(),
            augment_name: &augment_name,
            epochs: eval_epochs(&run.config, &augment_name),
            device: &run.device,
            seed: crate::rng::derive_seed(run.settings.seed, &[crate::engine::EVAL_STREAM]),
            on_network: Some(&report),
        };
        let ev = evaluate_set(&setup, set_name, images, labels)?;
        bar.finish();
        if !quiet {
            eprintln!(
                "{set_name} on {name}: {} over {} networks",
                ev.summary(),
                ev.accuracies.len()
            );
        }
        out.push(ev);
    }
    Ok(out)
}

/// The `random` baseline: `ipc` random real images per class, evaluated like a synthetic set.
fn random_baseline(run: &ResolvedRun, ds: &Dataset, quiet: bool) -> Result<Vec<Evaluation>> {
    let mut rng = sub_rng(run.settings.seed, &[crate::engine::BASELINE_STREAM]);
    let idx = random_real_subset(&ds.train, ds.classes, run.settings.ipc, &mut rng)?;
    let (images, _) = ds.train.to_tensor(&idx, &run.device)?;
    let labels = class_major_labels(ds.classes, run.settings.ipc, &run.device)?;
    evaluate_on_archs(run, ds, "random", &images, &labels, quiet)
}

/// `cafe-lab condense`: condenses, saves the set, evaluates it beside the random baseline.
pub fn run_condense(config: &RunConfig, opts: RunOptions) -> Result<Results> {
    let run = resolve(config)?;
    prepare_out(&run.out, opts.force)?;
    write_json(&run.out.join("config.json"), &run.resolved_json)?;
    condense_and_evaluate(run, opts, None)
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
    if !opts.quiet {
        eprintln!(
            "resuming {} at iteration {}",
            dir.display(),
            checkpoint.state.next_iteration
        );
    }
    condense_and_evaluate(run, opts, Some(checkpoint))
}

fn condense_and_evaluate(mut run: ResolvedRun, opts: RunOptions, resume: Option<Checkpoint>) -> Result<Results> {
    if run.components.matcher.defaults().needs_second_order {
        crate::enable_second_order_gradients();
    }
    let ds = load_dataset(&run.config, opts.quiet)?;
    let mut logger = FanOut(vec![
        Box::new(TensorBoardLogger::new(&run.out.join("tensorboard"))) as Box<dyn MetricLogger>
    ]);
    let total = run.settings.iterations;
    let started = Instant::now();
    let bar = Progress::new("condense", total, opts.quiet, run.config.log_every);
    let mut progress = |it: usize, r: &IterationReport, secs: f64| {
        let capped = if r.capped { " (capped)" } else { "" };
        let message = format!(
            "loss {:.4}, outer {} inner {}{capped}, {secs:.2} s/it",
            r.last_loss, r.outer_steps, r.inner_epochs
        );
        bar.step(it + 1, &message);
    };
    if !opts.quiet {
        eprintln!(
            "condensing {} with {} / {} on {}: ipc {}, {} iterations -> {}",
            ds.name,
            run.config.matcher.name,
            run.config.scheduler.name,
            run.config.arch.name,
            run.settings.ipc,
            total,
            run.out.display()
        );
    }
    let control = RunControl {
        checkpoint_path: Some(run.out.join(CHECKPOINT_FILE)),
        checkpoint_every: run.config.checkpoint_every,
        resume,
        interrupt: opts.interrupt,
        log_images_every: run.config.log_images_every,
    };
    let config_text = serde_json::to_string_pretty(&run.resolved_json).unwrap_or_default();
    logger.text("config", 0, &format!("```\n{config_text}\n```"));
    let outcome = condense(
        &ds,
        &mut run.components,
        &run.settings,
        &run.device,
        &mut logger,
        &mut progress,
        control,
    )?;
    bar.finish();
    let seconds_total = started.elapsed().as_secs_f64();
    let syn = &outcome.synthetic;
    syn.save(&run.out.join("synthetic.safetensors"))?;
    save_grid_png(
        &run.out.join("synthetic.png"),
        &syn.images_detached(),
        &syn.mean,
        &syn.std,
        syn.ipc,
    )?;
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
        per_iteration: reports.clone(),
    };
    let mut evaluations = evaluate_on_archs(&run, &ds, "synthetic", &syn.images_detached(), &syn.labels, opts.quiet)?;
    if run.config.eval.baseline {
        evaluations.extend(random_baseline(&run, &ds, opts.quiet)?);
    }
    for ev in &evaluations {
        logger.scalar(&format!("eval/{}/{}", ev.set, ev.arch), 0, ev.mean);
    }
    logger.flush();
    let results = Results {
        command: "condense".into(),
        dataset: ds.name.clone(),
        ipc: run.settings.ipc,
        evaluations,
        condensation: Some(summary),
    };
    write_results(&run.out, &results)?;
    if !opts.quiet {
        print_table(&results);
    }
    Ok(results)
}

/// `cafe-lab evaluate --synthetic FILE`: evaluates a saved synthetic set.
pub fn run_evaluate(config: &RunConfig, synthetic: &Path, opts: RunOptions) -> Result<Results> {
    let run = resolve(config)?;
    let ds = load_dataset(&run.config, opts.quiet)?;
    let syn = SyntheticSet::load(synthetic, &run.device)?;
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
    let mut run = run;
    run.settings.ipc = syn.ipc;
    prepare_out(&run.out, opts.force)?;
    write_json(&run.out.join("config.json"), &run.resolved_json)?;
    let mut evaluations = evaluate_on_archs(&run, &ds, "synthetic", &syn.images_detached(), &syn.labels, opts.quiet)?;
    if run.config.eval.baseline {
        evaluations.extend(random_baseline(&run, &ds, opts.quiet)?);
    }
    let results = Results {
        command: "evaluate".into(),
        dataset: ds.name.clone(),
        ipc: syn.ipc,
        evaluations,
        condensation: None,
    };
    write_results(&run.out, &results)?;
    if !opts.quiet {
        print_table(&results);
    }
    Ok(results)
}

/// `cafe-lab baseline`: the random real subset alone.
pub fn run_baseline(config: &RunConfig, opts: RunOptions) -> Result<Results> {
    let run = resolve(config)?;
    prepare_out(&run.out, opts.force)?;
    write_json(&run.out.join("config.json"), &run.resolved_json)?;
    let ds = load_dataset(&run.config, opts.quiet)?;
    let evaluations = random_baseline(&run, &ds, opts.quiet)?;
    let results = Results {
        command: "baseline".into(),
        dataset: ds.name.clone(),
        ipc: run.settings.ipc,
        evaluations,
        condensation: None,
    };
    write_results(&run.out, &results)?;
    if !opts.quiet {
        print_table(&results);
    }
    Ok(results)
}

/// The evaluations as a markdown table: one row per architecture, one column per set.
pub fn markdown_table(results: &Results) -> String {
    let mut sets: Vec<&str> = Vec::new();
    let mut archs: Vec<&str> = Vec::new();
    for ev in &results.evaluations {
        if !sets.contains(&ev.set.as_str()) {
            sets.push(&ev.set);
        }
        if !archs.contains(&ev.arch.as_str()) {
            archs.push(&ev.arch);
        }
    }
    let mut out = format!(
        "# {} ipc {}: test accuracy (%), mean +- std over networks\n\n| architecture | {} | epochs | augmentation |\n|---|{}---|---|\n",
        results.dataset,
        results.ipc,
        sets.join(" | "),
        "---|".repeat(sets.len())
    );
    for arch in archs {
        let row: Vec<&Evaluation> = results.evaluations.iter().filter(|e| e.arch == arch).collect();
        let cells: Vec<String> = sets
            .iter()
            .map(|s| {
                row.iter()
                    .find(|e| e.set == *s)
                    .map_or("-".to_string(), |e| e.summary().replace(" %", ""))
            })
            .collect();
        let first = row[0];
        out.push_str(&format!(
            "| {arch} | {} | {} | {} |\n",
            cells.join(" | "),
            first.epochs,
            first.augment
        ));
    }
    out
}

/// Writes results.json and evaluations.md into `out`.
fn write_results(out: &Path, results: &Results) -> Result<()> {
    write_json(&out.join("results.json"), results)?;
    crate::output::write_atomic(&out.join("evaluations.md"), markdown_table(results).as_bytes())
}

/// Prints the evaluations as a table on stdout.
pub fn print_table(results: &Results) {
    println!("\n{}", markdown_table(results));
}
