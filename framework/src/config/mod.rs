//! The run configuration: every setting of a run, with defaults, merged from (lowest first)
//! the built-in defaults, a TOML file, command-line flags and `--set path=value` overrides
//! ([`ConfigBuilder`]), then resolved and validated once, before any work starts
//! ([`crate::run::resolve`], [`crate::eval::EvalPlan`]).

mod builder;
mod eval;
pub(crate) mod layers;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::data::DatasetKind;
pub use crate::json_merge::merge_layer;
pub use crate::registry::PluginChoice;
use crate::synthetic::Init;
pub use builder::ConfigBuilder;
pub use eval::{EvalConfig, EvalMode, KdRecipeConfig, ReportRule, Select, TeacherMode};
pub use layers::UserLayers;

/// Every setting of a condensation run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RunConfig {
    /// The published protocol whose settings lie under the user's (`--protocol`; see
    /// [`crate::protocol`]). None: the chosen matcher's default protocol; `none`: no protocol.
    pub protocol: Option<String>,
    /// Dataset: `shapes` (embedded, no files), `mnist`, `fashion-mnist`, `cifar10`, `cifar100`,
    /// `svhn` (any spelling [`DatasetKind::from_name`] accepts).
    pub dataset: DatasetKind,
    pub data_dir: Option<PathBuf>,
    pub download: bool,
    /// ZCA-whiten the dataset with this `eps` instead of normalising it per channel: MTT's
    /// `--zca` (mtt-distillation `utils.py:137-165`, eps 0.1), which its CIFAR commands use.
    /// The experts a trajectory-matching run reads must have been trained the same way.
    /// `true` means eps 0.1, `false` none (see [`crate::data::deserialize_zca`]).
    #[serde(deserialize_with = "crate::data::deserialize_zca")]
    pub zca: Option<f64>,
    pub matcher: PluginChoice,
    pub scheduler: PluginChoice,
    pub arch: PluginChoice,
    /// Augmenter applied (siamese) in matching and, without the shared seed, in inner training.
    pub augment: PluginChoice,
    /// Synthetic images per class.
    pub ipc: usize,
    /// Outer iterations; None takes the matcher's published default.
    pub iterations: Option<usize>,
    /// Real images per class in each matching step.
    pub batch_real: usize,
    /// Batch size when training the network on the synthetic set (inner loop).
    pub batch_train: usize,
    /// Image learning rate; None takes the matcher's default (DM 1.0, DC/CAFE 0.1).
    pub lr_img: Option<f64>,
    pub momentum_img: f64,
    /// Iterations at which the image learning rate is halved (CAFE uses 1200, 1600, 1800 of 2000).
    pub lr_img_halve_at: Vec<usize>,
    /// Learning rate of the network in the inner loop (plain SGD).
    pub lr_net: f64,
    /// None takes the matcher's default (DM: real, others: noise).
    pub init: Option<Init>,
    /// The frozen teacher file of a method that needs one (SRe2L, RDED; `--teacher`), also the
    /// soft-label evaluation's teacher unless `eval.kd_teacher` names another. None: the default
    /// file of `cafe-lab teacher` for the dataset and architecture
    /// (`teachers/<dataset>-<arch>.safetensors`), for such a method only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub teacher: Option<PathBuf>,
    pub seed: u64,
    /// Output directory; None derives `runs/<dataset>-<matcher>-<scheduler>-ipc<N>-seed<S>`.
    pub out: Option<PathBuf>,
    /// `cpu` (default) or `cuda[:N]` (needs the `cuda` build feature).
    pub device: String,
    /// How f32 convolutions round on a GPU: `fp32` (default) or `tf32` (PyTorch's default for
    /// cuDNN convolutions; see [`crate::gpu::Precision`]). Left out of config.json when fp32.
    #[serde(skip_serializing_if = "crate::gpu::Precision::is_fp32")]
    pub precision: crate::gpu::Precision,
    pub eval: EvalConfig,
    /// Log a line every this many iterations (0: only at the end).
    pub log_every: usize,
    /// Write a checkpoint every this many iterations (0: only on Ctrl-C).
    pub checkpoint_every: usize,
    /// Log the synthetic grid to TensorBoard every this many iterations (0: only at the end).
    pub log_images_every: usize,
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            protocol: None,
            dataset: DatasetKind::Shapes,
            data_dir: None,
            download: false,
            zca: None,
            matcher: PluginChoice::named("distribution"),
            scheduler: PluginChoice::named("none"),
            arch: PluginChoice::named("convnet"),
            augment: PluginChoice::named("none"),
            ipc: 10,
            iterations: None,
            batch_real: 256,
            batch_train: 256,
            lr_img: None,
            momentum_img: 0.5,
            lr_img_halve_at: Vec::new(),
            lr_net: 0.01,
            init: None,
            teacher: None,
            seed: 0,
            out: None,
            device: "cpu".into(),
            precision: crate::gpu::Precision::Fp32,
            eval: EvalConfig::default(),
            log_every: 10,
            checkpoint_every: 50,
            log_images_every: 100,
        }
    }
}
