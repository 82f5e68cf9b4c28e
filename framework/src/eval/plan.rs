//! The evaluation plan: the run's evaluation settings resolved and checked once into values,
//! which the final evaluation, the random baseline, `--eval-every`, `--metrics`, `--kd`, the
//! saved metadata and `evaluate --synthetic` all read. Nothing downstream re-derives a recipe
//! from the raw [`RunConfig`].
//!
//! Per evaluation architecture the plan holds the built network, the augmentation its
//! networks train with (DESIGN.md's rule, [`reference_eval_augment`]) and a [`TrainRecipe`];
//! beside them what the optional evaluations need: the validation split and its networks
//! ([`DuringPlan`]), DD-Ranking's contrast evaluations ([`MetricsPlan`]) and the teacher
//! ([`KdPlan`]).

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value;

use crate::config::{EvalConfig, EvalMode, PluginChoice, ReportRule, RunConfig, Select, TeacherMode};
use crate::data::DatasetKind;
use crate::registry::{build_plugin, find};
use crate::traits::architecture::Architecture;
use crate::traits::augmenter::Augmenter;
use crate::{Error, Result};

use super::recipe::{OptimizerKind, Report, TrainRecipe};
use crate::train::{AdamConfig, Decay};

/// An augmenter with its name for the records (`none`, `dsa:<strategy>`, `dc:<strategy>`).
#[derive(Clone)]
pub struct Augmentation {
    pub augmenter: Arc<dyn Augmenter>,
    pub name: String,
}

impl Augmentation {
    /// Builds `choice` (its config over the plugin's defaults).
    pub fn build(choice: &PluginChoice) -> Result<Self> {
        let built = build_plugin::<dyn Augmenter>(choice)?;
        let name = match built.config.get("strategy").and_then(Value::as_str) {
            Some(strategy) => format!("{}:{strategy}", built.entry.name),
            None => built.entry.name.to_string(),
        };
        Ok(Self {
            augmenter: Arc::from(built.plugin),
            name,
        })
    }

    /// Whether the networks train on the images as they are.
    pub fn is_identity(&self) -> bool {
        self.augmenter.is_identity()
    }
}

/// How the networks of one evaluation architecture are built and trained.
#[derive(Clone)]
pub struct ArchPlan {
    /// The registered name.
    pub name: String,
    pub arch: Arc<dyn Architecture>,
    pub augmentation: Augmentation,
    pub recipe: TrainRecipe,
}

impl ArchPlan {
    /// The same architecture trained with another augmentation.
    pub fn with_augmentation(&self, augmentation: Augmentation) -> Self {
        Self {
            augmentation,
            ..self.clone()
        }
    }

    /// The same architecture and augmentation under another recipe.
    pub fn with_recipe(&self, recipe: TrainRecipe) -> Self {
        Self { recipe, ..self.clone() }
    }
}

/// Evaluation during condensation (`--eval-every`) on a validation split.
#[derive(Clone)]
pub struct DuringPlan {
    /// Every this many iterations, and at the last.
    pub every: usize,
    pub select: Select,
    /// Validation images per class held out of the training set.
    pub val_per_class: usize,
    /// The first evaluation architecture with `during_nets` networks of `during_epochs`.
    pub arch: ArchPlan,
}

/// The whole-training-set reference of DD-Ranking's metrics.
#[derive(Clone, Debug, PartialEq)]
pub enum WholeReference {
    /// A known accuracy (a fraction), as DD-Ranking's `REAL_DATA_ACC_CACHE`.
    Known(f64),
    /// Networks trained on the whole set: `nets` of them, each architecture's recipe epochs
    /// unless `epochs` is set.
    Train { nets: usize, epochs: Option<usize> },
}

/// DD-Ranking's fair metrics (`--metrics`).
#[derive(Clone)]
pub struct MetricsPlan {
    pub lrs_weight: f64,
    pub ars_weight: f64,
    pub whole: WholeReference,
    /// Per evaluation architecture (in the plan's order), the augmentation choice opposite to
    /// its recipe's: none when the recipe augments; DSA with its default strategy when it does
    /// not (DD-Ranking's ARS evaluates "with the data augmentation" of its config,
    /// `aug_robust.py:536-555`; DSA is the one the condensation papers evaluate with).
    pub contrast: Vec<Augmentation>,
}

/// Where the KD teacher comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum TeacherSource {
    /// Trained on the run's training set for E = `epochs` under the first architecture's
    /// recipe and augmentation.
    Train { epochs: usize },
    /// A `teacher.safetensors` of an earlier run.
    File(PathBuf),
}

/// Soft-label evaluation (`--kd`).
#[derive(Clone)]
pub struct KdPlan {
    pub temperature: f64,
    /// How the teacher runs its BatchNorm layers while labelling (`eval.kd_teacher_mode`).
    pub teacher_mode: TeacherMode,
    pub teacher: TeacherSource,
    /// The students' own recipe and augmentation (`eval.kd_recipe`); None: each architecture's
    /// hard-label recipe and augmentation.
    pub students: Option<KdStudents>,
}

/// How the soft-label students train when they have their own recipe.
#[derive(Clone)]
pub struct KdStudents {
    /// Networks and parallelism as the hard-label recipe's.
    pub recipe: TrainRecipe,
    /// None: each architecture's own.
    pub augmentation: Option<Augmentation>,
}

impl KdPlan {
    /// How the students of architecture `arch` train: its plan under the students' recipe and
    /// augmentation, or as it is.
    pub fn students_of(&self, arch: &ArchPlan) -> ArchPlan {
        match &self.students {
            None => arch.clone(),
            Some(s) => {
                let plan = arch.with_recipe(s.recipe);
                match &s.augmentation {
                    Some(aug) => plan.with_augmentation(aug.clone()),
                    None => plan,
                }
            }
        }
    }
}

/// The resolved evaluation of a run (see the module header).
#[derive(Clone)]
pub struct EvalPlan {
    /// The evaluation architectures, in order (at least one).
    pub archs: Vec<ArchPlan>,
    /// The run's seed; each evaluation derives its own stream from it.
    pub seed: u64,
    /// Test on at most this many test images (None: all).
    pub test_limit: Option<usize>,
    /// Also evaluate a random real subset of the same size.
    pub baseline: bool,
    pub during: Option<DuringPlan>,
    pub metrics: Option<MetricsPlan>,
    pub kd: Option<KdPlan>,
}

/// The reference's choice of augmentation for the evaluation networks of architecture `arch`
/// when `eval.augment` is unset:
/// - DSA with the matching strategy when matching used DSA (DatasetCondensation `main.py:111-115`,
///   `utils.py:309-311`; `main_DM.py` always; CAFE `distill.py:176-181`);
/// - else DC's `crop_noise` for ConvNetBN, and only for it (`utils.py:441-442`);
/// - else DC's `crop_scale_rotate` for MNIST, and only for it, not Fashion-MNIST (`utils.py:438-439`);
/// - else none.
pub fn reference_eval_augment(matching: &PluginChoice, dataset: DatasetKind, arch: &str) -> PluginChoice {
    if matching.name.eq_ignore_ascii_case("dsa") {
        return matching.clone();
    }
    let strategy = if arch.eq_ignore_ascii_case("convnetbn") {
        "crop_noise"
    } else if dataset == DatasetKind::Mnist {
        "crop_scale_rotate"
    } else {
        return PluginChoice::named("none");
    };
    let mut c = PluginChoice::named("dc");
    c.config.insert("strategy".into(), Value::String(strategy.into()));
    c
}

/// The evaluation architectures' names: `eval.archs`, else `eval.mode`'s (S by default) for
/// the condensation architecture.
pub fn eval_arch_names(config: &RunConfig) -> Vec<String> {
    if !config.eval.archs.is_empty() {
        return config.eval.archs.iter().map(|a| a.to_ascii_lowercase()).collect();
    }
    config.eval.mode.unwrap_or(EvalMode::S).archs(&config.arch.name)
}

impl EvalPlan {
    /// Checks the evaluation settings of `config` and resolves them: every architecture and
    /// augmenter built, every epoch count decided. An error names the setting.
    pub fn resolve(config: &RunConfig) -> Result<Self> {
        let e = &config.eval;
        check(e)?;
        let mut archs = Vec::new();
        for name in eval_arch_names(config) {
            archs.push(resolve_arch(config, &name)?);
        }
        let during = (e.every > 0).then(|| DuringPlan {
            every: e.every,
            select: e.select,
            val_per_class: e.val_per_class,
            arch: {
                let first = &archs[0];
                first.with_recipe(
                    first
                        .recipe
                        .with_nets(e.during_nets)
                        .with_epochs(e.during_epochs.unwrap_or(first.recipe.epochs)),
                )
            },
        });
        let metrics = if e.metrics {
            let contrast = archs
                .iter()
                .map(|a| {
                    let other = if a.augmentation.name == "none" { "dsa" } else { "none" };
                    Augmentation::build(&PluginChoice::named(other))
                })
                .collect::<Result<_>>()?;
            Some(MetricsPlan {
                lrs_weight: e.lrs_weight,
                ars_weight: e.ars_weight,
                whole: match e.whole_accuracy {
                    Some(acc) => WholeReference::Known(acc),
                    None => WholeReference::Train {
                        nets: e.whole_nets.unwrap_or(e.nets),
                        epochs: e.whole_epochs,
                    },
                },
                contrast,
            })
        } else {
            None
        };
        let students = match (&e.kd_recipe, e.kd) {
            (Some(k), true) => Some(KdStudents {
                recipe: TrainRecipe {
                    lr: k.lr,
                    momentum: k.momentum,
                    weight_decay: k.weight_decay,
                    batch: k.batch,
                    epochs: k.epochs,
                    nets: e.nets,
                    parallel: e.parallel.unwrap_or(1),
                    schedule: k.schedule,
                    optimizer: k.optimizer,
                    report: match k.report {
                        ReportRule::Final => Report::Final,
                        ReportRule::BestTest => Report::BestTest {
                            every: k.report_every,
                            after: k.report_after,
                        },
                    },
                },
                augmentation: k.augment.as_ref().map(Augmentation::build).transpose()?,
            }),
            _ => None,
        };
        let kd = e.kd.then(|| KdPlan {
            students,
            temperature: e.kd_temperature,
            teacher_mode: e.kd_teacher_mode,
            teacher: match e.kd_teacher.as_ref().or(config.teacher.as_ref()) {
                Some(path) => TeacherSource::File(path.clone()),
                None => TeacherSource::Train {
                    epochs: e.kd_teacher_epochs.unwrap_or(archs[0].recipe.epochs),
                },
            },
        });
        Ok(Self {
            archs,
            seed: config.seed,
            test_limit: e.test_limit,
            baseline: e.baseline,
            during,
            metrics,
            kd,
        })
    }

    /// The registered names of the evaluation architectures, in order.
    pub fn arch_names(&self) -> Vec<String> {
        self.archs.iter().map(|a| a.name.clone()).collect()
    }

    /// The recipe of the first architecture: `eval.lr`, momentum, weight decay, batch and
    /// networks, which every architecture shares (only the epochs may differ).
    pub fn recipe(&self) -> TrainRecipe {
        self.archs[0].recipe
    }
}

/// Builds the evaluation architecture `name` as the final evaluation trains it: the
/// condensation architecture keeps its configuration (e.g. a set width); any other takes its
/// defaults. Its augmentation is `eval.augment`, else the reference's rule; its epochs
/// `eval.epochs`, else `epochs_augmented` or `epochs_plain` (DatasetCondensation
/// `main.py:120-123`: 1000 and 300; CAFE `distill.py:189-193`: 1000 and 600).
fn resolve_arch(config: &RunConfig, name: &str) -> Result<ArchPlan> {
    let e = &config.eval;
    let (arch, registered): (Box<dyn Architecture>, &str) = if name == config.arch.name.to_ascii_lowercase() {
        let built = build_plugin::<dyn Architecture>(&config.arch)?;
        (built.plugin, built.entry.name)
    } else {
        let entry = find::<dyn Architecture>(name)?;
        (entry.instantiate(&Value::Null)?, entry.name)
    };
    let choice = match &e.augment {
        Some(choice) => choice.clone(),
        None => reference_eval_augment(&config.augment, config.dataset, registered),
    };
    let augmentation = Augmentation::build(&choice)?;
    let epochs = e.epochs.unwrap_or(if augmentation.is_identity() {
        e.epochs_plain
    } else {
        e.epochs_augmented
    });
    Ok(ArchPlan {
        name: registered.to_string(),
        arch: Arc::from(arch),
        augmentation,
        recipe: TrainRecipe {
            lr: e.lr,
            momentum: e.momentum,
            weight_decay: e.weight_decay,
            batch: e.batch,
            epochs,
            nets: e.nets,
            parallel: e.parallel.unwrap_or(1),
            schedule: e.schedule,
            optimizer: e.optimizer,
            report: Report::Final,
        },
    })
}

/// Refuses a recipe's optimiser settings that cannot work, naming `what` (the recipe's key).
fn check_optimizer(what: &str, lr: f64, weight_decay: f64, optimizer: OptimizerKind) -> Result<()> {
    if !(lr.is_finite() && lr > 0.0) {
        return Err(Error::invalid(
            format!("{what}.lr"),
            lr,
            "a learning rate must be a positive finite number",
        ));
    }
    if let OptimizerKind::Adamw { beta1, beta2, eps, .. } = optimizer {
        AdamConfig {
            lr,
            beta1,
            beta2,
            eps,
            weight_decay,
            decay: Decay::Decoupled,
        }
        .validate(&format!("{what}.optimizer"))?;
    }
    Ok(())
}

/// Refuses evaluation settings that cannot work, naming the setting (linfa's checked params).
fn check(e: &EvalConfig) -> Result<()> {
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
    check_optimizer("eval", e.lr, e.weight_decay, e.optimizer)?;
    if let Some(k) = &e.kd_recipe {
        check_optimizer("eval.kd_recipe", k.lr, k.weight_decay, k.optimizer)?;
        if k.epochs == 0 || k.batch == 0 {
            return Err(Error::invalid(
                "eval.kd_recipe.epochs / eval.kd_recipe.batch",
                0,
                "the students train at least one epoch of batches of at least one image",
            ));
        }
    }
    if e.select == Select::BestVal && e.every == 0 {
        return Err(Error::invalid(
            "eval.select",
            "best-val",
            "choosing by validation accuracy needs evaluations during condensation: add --eval-every N",
        ));
    }
    if e.every > 0 && (e.val_per_class == 0 || e.during_nets == 0 || e.during_epochs == Some(0)) {
        return Err(Error::invalid(
            "eval.val_per_class / eval.during_nets / eval.during_epochs",
            0,
            "evaluation during condensation needs validation images and at least one network trained one epoch",
        ));
    }
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
    Ok(())
}
