//! Resolving a run: plugins looked up and built, the matcher's defaults filled in, every
//! setting validated once, before any work.

use std::path::PathBuf;

use candle_core::Device;
use serde_json::Value;

use crate::config::{PluginChoice, RunConfig};
use crate::data;
use crate::engine::{Components, CondenseSettings};
use crate::registry::{find, Plugin, PluginKind};
use crate::traits::architecture::Architecture;
use crate::traits::augmenter::Augmenter;
use crate::traits::matcher::Matcher;
use crate::traits::scheduler::Scheduler;
use crate::{Error, Result};

use super::evaluation::eval_arch_names;

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

/// A plugin built from a choice, with its fully resolved config.
pub(crate) fn build_plugin<T: ?Sized + PluginKind>(
    choice: &PluginChoice,
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
    if let Some(eps) = config.zca {
        crate::data::check_zca_eps(eps)?;
    }
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
    let mut arch_config = resolved_json["arch"].clone();
    if let Some(map) = arch_config.as_object_mut() {
        map.remove("name");
    }
    Ok(ResolvedRun {
        config: resolved,
        components: Components {
            matcher,
            scheduler,
            arch,
            arch_name: arch_plugin.name.to_string(),
            arch_config,
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
    if e.epochs == Some(0) {
        return Err(Error::invalid(
            "eval.epochs",
            0,
            "an untrained network is not an evaluation: train for at least 1 epoch (leave it \
             unset for the papers' 300, or 1000 with DSA)",
        ));
    }
    if e.parallel == Some(0) {
        return Err(Error::invalid(
            "eval.parallel",
            0,
            "at least one network must train at a time (leave it unset to use every thread)",
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
    super::validation::validate_during(config)?;
    if e.metrics && !e.baseline {
        return Err(Error::invalid(
            "eval.metrics",
            true,
            "DD-Ranking's metrics compare the set with the random subset: drop --no-baseline",
        ));
    }
    for (name, w) in [("eval.lrs_weight", e.lrs_weight), ("eval.ars_weight", e.ars_weight)] {
        if !(0.0..=1.0).contains(&w) {
            return Err(Error::invalid(
                name,
                w,
                "a weight of DD-Ranking's scores must be in [0, 1]",
            ));
        }
    }
    if let Some(a) = e.whole_accuracy {
        if !(0.0..=1.0).contains(&a) {
            return Err(Error::invalid(
                "eval.whole_accuracy",
                a,
                "an accuracy is a fraction in [0, 1] (e.g. 0.935 for 93.5 %)",
            ));
        }
    }
    if e.whole_nets == Some(0) || e.whole_epochs == Some(0) {
        return Err(Error::invalid(
            "eval.whole_nets / eval.whole_epochs",
            0,
            "the whole-set reference needs at least one network trained at least one epoch",
        ));
    }
    if e.kd && !(e.kd_temperature.is_finite() && e.kd_temperature > 0.0) {
        return Err(Error::invalid(
            "eval.kd_temperature",
            e.kd_temperature,
            "a distillation temperature must be a positive finite number (DD-Ranking's demo: 1)",
        ));
    }
    if e.kd_teacher_epochs == Some(0) {
        return Err(Error::invalid(
            "eval.kd_teacher_epochs",
            0,
            "train the teacher at least one epoch",
        ));
    }
    if let Some(t) = e.kd_teacher.as_ref().filter(|t| !t.is_file()) {
        return Err(Error::invalid(
            "eval.kd_teacher",
            t.display(),
            "no such file; give the teacher.safetensors of a run made with --kd",
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
