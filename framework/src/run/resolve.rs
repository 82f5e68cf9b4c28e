//! Resolving a run: plugins looked up and built, the matcher's defaults filled in, every
//! setting validated once, before any work.

use std::path::PathBuf;

use candle_core::Device;
use serde_json::Value;

use crate::config::RunConfig;
use crate::data::Dataset;
use crate::dist::Communicator;
use crate::engine::{Components, CondenseSettings};
use crate::eval::{EvalPlan, Evaluator};
use crate::registry::build_plugin;
use crate::teacher::default_teacher_path;
use crate::traits::architecture::Architecture;
use crate::traits::augmenter::Augmenter;
use crate::traits::matcher::Matcher;
use crate::traits::scheduler::Scheduler;
use crate::{Error, Result};

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
                let hint = if cfg!(feature = "cuda") {
                    "no usable NVIDIA GPU: check `nvidia-smi`; the driver must support CUDA 13.0 (580 series or newer)"
                } else {
                    "this binary has no CUDA support: build it with `--features cuda`, see README \"CUDA\""
                };
                Error::invalid("device", name, format!("{e} ({hint})"))
            })
        }
        _ => Err(Error::invalid("device", name, "expected cpu, cuda or cuda:N")),
    }
}

/// The device named by `--device`, set up for a run: on a GPU, freed memory stays in the
/// device's pool for reuse ([`crate::gpu::memory::keep_freed_memory`]) and every later
/// convolution of the process rounds as `precision` says ([`crate::gpu::set_precision`]).
/// TF32 is refused off a GPU: the CPU computes f32 in FP32 only, and a results.json saying
/// `tf32` for a CPU run would misreport it.
pub fn open_device(name: &str, precision: crate::gpu::Precision) -> Result<Device> {
    let device = parse_device(name)?;
    if precision == crate::gpu::Precision::Tf32 && !device.is_cuda() {
        return Err(Error::invalid(
            "precision",
            precision.name(),
            format!(
                "tf32 applies to convolutions on an NVIDIA GPU (--device cuda), not on {name}, which computes fp32"
            ),
        ));
    }
    crate::gpu::set_precision(precision);
    crate::gpu::memory::keep_freed_memory(&device)?;
    Ok(device)
}

/// A run whose plugins are built and whose every setting is resolved.
pub struct ResolvedRun {
    pub config: RunConfig,
    pub components: Components,
    pub settings: CondenseSettings,
    /// How every set of the run is evaluated.
    pub eval: EvalPlan,
    /// The fully resolved configuration, as written to config.json.
    pub resolved_json: Value,
    pub out: PathBuf,
    pub device: Device,
}

impl ResolvedRun {
    /// The evaluations of sets of `ipc` images per class on `ds` under the run's plan, their
    /// networks shared among the ranks of `comm`.
    pub fn evaluator<'a>(
        &'a self,
        ds: &'a Dataset,
        ipc: usize,
        quiet: bool,
        comm: &'a dyn Communicator,
    ) -> Evaluator<'a> {
        Evaluator {
            plan: &self.eval,
            ds,
            device: &self.device,
            ipc,
            quiet,
            comm,
            interrupt: None,
        }
    }
}

/// Looks up and builds every plugin, fills the matcher's defaults in, resolves the evaluation
/// plan, validates.
pub fn resolve(config: &RunConfig) -> Result<ResolvedRun> {
    let matcher = build_plugin::<dyn Matcher>(&config.matcher)?;
    let scheduler = build_plugin::<dyn Scheduler>(&config.scheduler)?;
    let arch = build_plugin::<dyn Architecture>(&config.arch)?;
    let augment = build_plugin::<dyn Augmenter>(&config.augment)?;
    if let Some(choice) = &config.eval.augment {
        build_plugin::<dyn Augmenter>(choice)?;
    }
    if !augment.plugin.is_differentiable() {
        return Err(Error::invalid(
            "augment",
            &config.augment.name,
            "matching needs a differentiable augmenter (dsa or none); use it with --eval-augment instead",
        ));
    }
    let defaults = matcher.plugin.defaults();
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
    // The frozen teacher of a method that needs one: its file must exist before any work; the
    // soft-label evaluation reads the same file unless told otherwise.
    let teacher = if matcher.plugin.needs_teacher() {
        let path = config
            .teacher
            .clone()
            .unwrap_or_else(|| default_teacher_path(config.dataset.name(), arch.entry.name));
        if !path.is_file() {
            return Err(Error::invalid(
                "teacher",
                path.display(),
                format!(
                    "{} works against a frozen teacher and there is none here: train it with `cafe-lab \
                     teacher --dataset {} --arch {}` (add the same --set arch.KEY=VALUE), or give --teacher FILE",
                    matcher.entry.name,
                    config.dataset.name(),
                    arch.entry.name
                ),
            ));
        }
        Some(path)
    } else {
        config.teacher.clone()
    };
    let mut with_teacher = config.clone();
    with_teacher.teacher = teacher.clone();
    let eval = EvalPlan::resolve(&with_teacher)?;
    if let Some(eps) = config.zca {
        crate::data::check_zca_eps(eps)?;
    }
    let device = open_device(&config.device, config.precision)?;
    let out = config.out.clone().unwrap_or_else(|| {
        PathBuf::from("runs").join(format!(
            "{}-{}-{}-ipc{}-seed{}",
            config.dataset.name(),
            matcher.entry.name,
            scheduler.entry.name,
            config.ipc,
            config.seed
        ))
    });
    let mut resolved = config.clone();
    resolved.iterations = Some(settings.iterations);
    resolved.lr_img = Some(settings.lr_img);
    resolved.init = Some(settings.init);
    resolved.teacher = teacher;
    resolved.out = Some(out.clone());
    let mut resolved_json = serde_json::to_value(&resolved).map_err(|e| Error::Other(e.to_string()))?;
    resolved_json["matcher"] = matcher.resolved_choice();
    resolved_json["scheduler"] = scheduler.resolved_choice();
    resolved_json["arch"] = arch.resolved_choice();
    resolved_json["augment"] = augment.resolved_choice();
    if let Some(choice) = &config.eval.augment {
        resolved_json["eval"]["augment"] = build_plugin::<dyn Augmenter>(choice)?.resolved_choice();
    }
    resolved_json["eval"]["archs"] = serde_json::json!(eval.arch_names());
    resolved_json["second_order_gradients"] = Value::Bool(defaults.needs_second_order);
    Ok(ResolvedRun {
        config: resolved,
        components: Components {
            matcher: matcher.plugin,
            scheduler: scheduler.plugin,
            arch: arch.plugin,
            arch_name: arch.entry.name.to_string(),
            arch_config: arch.config,
            augmenter: augment.plugin,
            teacher: None,
        },
        settings,
        eval,
        resolved_json,
        out,
        device,
    })
}
