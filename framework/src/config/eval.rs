//! The evaluation settings of a run (DESIGN.md "Evaluation protocol"), as the user gives them:
//! the training recipe, the architectures, evaluation during condensation, DD-Ranking's
//! metrics and knowledge distillation. [`crate::eval::EvalPlan`] resolves and checks them
//! once into what every evaluation reads.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::eval::{OptimizerKind, Schedule};
use crate::registry::PluginChoice;

/// `--select`: which synthetic set a run keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Select {
    /// The set after the last iteration.
    #[default]
    #[serde(rename = "final")]
    Final,
    /// The set of the evaluation during condensation with the best validation accuracy.
    #[serde(rename = "best-val")]
    BestVal,
}

impl Select {
    /// The name in settings and results.
    pub fn name(self) -> &'static str {
        match self {
            Select::Final => "final",
            Select::BestVal => "best-val",
        }
    }
}

/// An evaluation mode of the papers (`--eval-mode`, DatasetCondensation `utils.py:448-476`
/// `get_eval_pool`): which architectures a set is evaluated on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvalMode {
    /// The condensation architecture, a BatchNorm one replaced by its instance-norm twin as
    /// `get_eval_pool` does (DC's default).
    S,
    /// The condensation architecture as it is (DM's default).
    SS,
    /// MLP, ConvNet, LeNet, AlexNet, VGG11, ResNet18.
    M,
    /// ConvNet widths.
    W,
    /// ConvNet depths.
    D,
    /// ConvNet activations.
    A,
    /// ConvNet poolings.
    P,
    /// ConvNet norms.
    N,
}

impl EvalMode {
    const ALL: [EvalMode; 8] = [
        EvalMode::S,
        EvalMode::SS,
        EvalMode::M,
        EvalMode::W,
        EvalMode::D,
        EvalMode::A,
        EvalMode::P,
        EvalMode::N,
    ];

    /// Every mode with what it evaluates on, for messages.
    pub const HELP: &'static str = "S (the condensation architecture, BatchNorm replaced by instance norm), \
         SS (the condensation architecture as it is), M (MLP, ConvNet, LeNet, AlexNet, VGG11, ResNet18), \
         W (widths), D (depths), A (activations), P (poolings), N (norms)";

    /// The letter(s) naming the mode.
    pub fn name(self) -> &'static str {
        match self {
            EvalMode::S => "S",
            EvalMode::SS => "SS",
            EvalMode::M => "M",
            EvalMode::W => "W",
            EvalMode::D => "D",
            EvalMode::A => "A",
            EvalMode::P => "P",
            EvalMode::N => "N",
        }
    }

    /// Parses a mode's letters, in any case.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name().eq_ignore_ascii_case(name))
    }

    /// The architectures of the mode, by registered name, for a condensation on `arch`.
    pub fn archs(self, condensation_arch: &str) -> Vec<String> {
        let names: &[&str] = match self {
            // DatasetCondensation utils.py:463-466: a BatchNorm model is evaluated as the part
            // of its name before "BN" (ConvNetBN -> ConvNet, ResNet18BN_AP -> ResNet18).
            EvalMode::S => {
                let arch = condensation_arch.to_ascii_lowercase();
                return vec![match arch.find("bn") {
                    Some(i) => arch[..i].to_string(),
                    None => arch,
                }];
            }
            // utils.py:467-468: the model itself.
            EvalMode::SS => return vec![condensation_arch.to_ascii_lowercase()],
            EvalMode::M => &["mlp", "convnet", "lenet", "alexnet", "vgg11", "resnet18"],
            EvalMode::W => &["convnetw32", "convnetw64", "convnetw128", "convnetw256"],
            EvalMode::D => &["convnetd1", "convnetd2", "convnetd3", "convnetd4"],
            EvalMode::A => &["convnetas", "convnetar", "convnetal"],
            EvalMode::P => &["convnetnp", "convnetmp", "convnetap"],
            EvalMode::N => &["convnetnn", "convnetbn", "convnetln", "convnetin", "convnetgn"],
        };
        names.iter().map(|s| s.to_string()).collect()
    }
}

impl Serialize for EvalMode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for EvalMode {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Self::from_name(&name).ok_or_else(|| {
            serde::de::Error::custom(format!("unknown evaluation mode '{name}'; valid modes: {}", Self::HELP))
        })
    }
}

/// The evaluation protocol's settings (DESIGN.md "Evaluation protocol").
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct EvalConfig {
    /// Number of freshly initialised networks trained on the set (`--eval-nets`).
    pub nets: usize,
    /// Training epochs of each (`--eval-epochs`): the reference's `epoch_eval_train` E, which
    /// trains E + 1 epochs and drops the learning rate 10x, with a fresh optimiser, after epoch
    /// E/2 + 1 (DatasetCondensation `utils.py:341-355`). None: `epochs_augmented` when the
    /// networks train with augmentation, else `epochs_plain` (DC `main.py:120-123`).
    pub epochs: Option<usize>,
    /// Epochs without augmentation when `epochs` is unset (300 DC/DSA, 600 CAFE).
    pub epochs_plain: usize,
    /// Epochs with augmentation (DSA or DC's) when `epochs` is unset (1000).
    pub epochs_augmented: usize,
    pub lr: f64,
    pub momentum: f64,
    pub weight_decay: f64,
    pub batch: usize,
    /// The networks' optimiser: `{ name = "sgd" }` (the papers', with `momentum`) or
    /// `{ name = "adamw", beta1, beta2, eps, decay_on }` (weight decay decoupled).
    #[serde(skip_serializing_if = "is_default")]
    pub optimizer: OptimizerKind,
    /// `reference_step` (the papers': E + 1 epochs, lr / 10 after E / 2 + 1), `cosine` or
    /// `half_cosine` (E epochs; see [`crate::eval::Schedule`]).
    #[serde(skip_serializing_if = "is_default")]
    pub schedule: Schedule,
    /// Augmentation while training evaluation networks (`--eval-augment`), for every
    /// evaluation architecture. None: the reference's rule (see
    /// [`crate::eval::reference_eval_augment`]): DSA when matching used DSA; else DC's
    /// `crop_noise` for ConvNetBN; else DC's `crop_scale_rotate` for MNIST; else none.
    pub augment: Option<PluginChoice>,
    /// Architectures to evaluate on; empty means the condensation architecture (or `mode`'s).
    pub archs: Vec<String>,
    /// An evaluation mode of the papers (`--eval-mode`, see [`EvalMode`]); None means S.
    /// Ignored when `archs` is given.
    pub mode: Option<EvalMode>,
    /// Test on at most this many test images (None: the whole test set, as the papers do).
    pub test_limit: Option<usize>,
    /// Also evaluate a random real subset of the same size (the `random` baseline).
    pub baseline: bool,
    /// How many of the `nets` networks train at the same time, each on its share of the
    /// threads (None: one; each network's layers already spread over the threads). Results do
    /// not depend on it; memory grows with it. Measured on 2 cores (ConvNet, 100 images, 2
    /// networks): one at a time used 1.74 cores; two side by side took 1.2x longer (allocator
    /// contention: 8x the system time) and 2.2x the peak memory.
    pub parallel: Option<usize>,
    /// DD-Ranking's fair metrics (`--metrics`, see `metrics::ddranking`): also evaluates the
    /// whole training set, and both sets with and without augmentation.
    pub metrics: bool,
    /// w of the label-robust score (DD-Ranking's `lrs_lambda`, 0.5).
    pub lrs_weight: f64,
    /// g of the augmentation-robust score (DD-Ranking's `ars_lambda`, 0.5).
    pub ars_weight: f64,
    /// Networks trained on the whole training set for the metrics (None: `nets`); with fewer
    /// than `nets`, their mean stands for every run.
    pub whole_nets: Option<usize>,
    /// Epochs of the whole-set networks (None: the recipe's, as DD-Ranking's "same recipe").
    pub whole_epochs: Option<usize>,
    /// A known whole-set accuracy (a fraction) instead of training on the whole set, as
    /// DD-Ranking's `REAL_DATA_ACC_CACHE` (`hard_label.py:363-367`).
    pub whole_accuracy: Option<f64>,
    /// Evaluate the set on the validation split every this many iterations and at the last
    /// (`--eval-every`; 0: never).
    pub every: usize,
    /// Which set is kept (`--select`): `final`, or `best-val` (best validation accuracy).
    pub select: Select,
    /// Images per class held out of the training set as the validation split when `every` > 0
    /// (`--val-per-class`).
    pub val_per_class: usize,
    /// Networks trained at each evaluation during condensation.
    pub during_nets: usize,
    /// Their epochs (None: the recipe's).
    pub during_epochs: Option<usize>,
    /// Soft-label evaluation (`--kd`): students trained on the set with a teacher's
    /// temperature-softened outputs (`evaluate_kd`).
    pub kd: bool,
    /// The temperature T (`--kd-temperature`; DD-Ranking's demo configuration: 1).
    pub kd_temperature: f64,
    /// A teacher file (`teacher.safetensors` of an earlier run) instead of training one.
    pub kd_teacher: Option<PathBuf>,
    /// Epochs of the teacher trained on the real training set (None: the recipe's).
    pub kd_teacher_epochs: Option<usize>,
    /// How the teacher labels each batch (`eval.kd_teacher_mode`): `eval` (BatchNorm with its
    /// running statistics, as RDED's `validation/main.py:69,203` and DD-Ranking) or `train`
    /// (BatchNorm with the statistics of the student's batch, as SRe2L's `relabel_cifar.py`,
    /// which never calls `.eval()` on its teacher, lines 85-92 and 138); the teacher's running
    /// statistics are never changed either way.
    #[serde(skip_serializing_if = "is_default")]
    pub kd_teacher_mode: TeacherMode,
    /// The students' own recipe (the soft-label recipes of SRe2L and RDED: AdamW, a cosine
    /// curve, their epochs, batch and augmentation); None: the hard-label recipe above.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kd_recipe: Option<KdRecipeConfig>,
}

/// The soft-label students' recipe (`eval.kd_recipe`), every key as in the hard-label recipe.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct KdRecipeConfig {
    pub optimizer: OptimizerKind,
    pub lr: f64,
    pub momentum: f64,
    pub weight_decay: f64,
    pub schedule: Schedule,
    /// E (E + 1 epochs under `reference_step`).
    pub epochs: usize,
    pub batch: usize,
    /// The students' augmentation (None: the hard-label recipe's), e.g. `mix` (CutMix or Mixup
    /// over `crop_flip`).
    pub augment: Option<PluginChoice>,
    /// Which test accuracy a student reports: `final` (after the last epoch) or `best_test`
    /// (the best of the tests after every `report_every`-th epoch and the last, once past
    /// `report_after` of training: RDED's `validation/main.py:176-190`, a selection on the
    /// test set).
    #[serde(skip_serializing_if = "is_default")]
    pub report: ReportRule,
    /// `best_test`: test after every this many epochs (RDED: 10, `epoch % 10 == 9`).
    #[serde(skip_serializing_if = "is_default_every")]
    pub report_every: usize,
    /// `best_test`: only epochs e (0-based) with e > `report_after` x E are tested (RDED: 0.8).
    #[serde(skip_serializing_if = "is_default_after")]
    pub report_after: f64,
}

fn is_default_every(v: &usize) -> bool {
    *v == 10
}

fn is_default_after(v: &f64) -> bool {
    *v == 0.8
}

/// How the soft-label students' KD teacher runs its BatchNorm layers (`eval.kd_teacher_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TeacherMode {
    /// Running statistics.
    #[default]
    Eval,
    /// The statistics of each (augmented, mixed) student batch.
    Train,
}

/// Which test accuracy a soft-label student reports (`eval.kd_recipe.report`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportRule {
    /// After the last epoch.
    #[default]
    Final,
    /// The best of the late tests (see `report_every`, `report_after`).
    BestTest,
}

impl Default for KdRecipeConfig {
    /// The hard-label recipe's defaults (`EvalConfig::default`), 300 epochs.
    fn default() -> Self {
        let e = EvalConfig::default();
        Self {
            optimizer: e.optimizer,
            lr: e.lr,
            momentum: e.momentum,
            weight_decay: e.weight_decay,
            schedule: e.schedule,
            epochs: e.epochs_plain,
            batch: e.batch,
            augment: None,
            report: ReportRule::Final,
            report_every: 10,
            report_after: 0.8,
        }
    }
}

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            nets: 20,
            epochs: None,
            epochs_plain: 300,
            epochs_augmented: 1000,
            lr: 0.01,
            momentum: 0.9,
            weight_decay: 5e-4,
            batch: 256,
            optimizer: OptimizerKind::Sgd,
            schedule: Schedule::ReferenceStep,
            augment: None,
            archs: Vec::new(),
            mode: None,
            test_limit: None,
            baseline: true,
            parallel: None,
            metrics: false,
            lrs_weight: 0.5,
            ars_weight: 0.5,
            whole_nets: None,
            whole_epochs: None,
            whole_accuracy: None,
            every: 0,
            select: Select::Final,
            val_per_class: 50,
            during_nets: 2,
            during_epochs: None,
            kd: false,
            kd_temperature: 1.0,
            kd_teacher: None,
            kd_teacher_epochs: None,
            kd_teacher_mode: TeacherMode::Eval,
            kd_recipe: None,
        }
    }
}
