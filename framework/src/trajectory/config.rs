//! The settings of `cafe-lab experts`, with the defaults of MTT's `buffer.py`
//! (GeorgeCazenavette/mtt-distillation, the argparse block at lines 111-131).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::PluginChoice;
use crate::data::DatasetKind;
use crate::{Error, Result};

/// Every setting of an `experts` run. Saved whole in each expert file's `settings` metadata.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ExpertsConfig {
    /// `shapes` (embedded), `mnist`, `fashion-mnist`, `cifar10`, `cifar100`, `svhn`. The
    /// reference defaults to CIFAR10 (`buffer.py` line 112); cafe-lab's commands default to
    /// the embedded set, which needs no download.
    pub dataset: DatasetKind,
    pub data_dir: Option<PathBuf>,
    pub download: bool,
    /// ZCA whitening with this `eps` (`buffer.py --zca`, line 127; `utils.py:137-165` fits it
    /// with eps 0.1). The reference's CIFAR experts use it; without it they are its
    /// `_NO_ZCA` experts (`buffer.py:27-28`). Part of the trajectory key: a store trained one
    /// way refuses runs of the other.
    /// `true` means eps 0.1, `false` none (see [`crate::data::deserialize_zca`]).
    #[serde(deserialize_with = "crate::data::deserialize_zca")]
    pub zca: Option<f64>,
    /// `cpu` or `cuda[:N]`.
    pub device: String,
    /// How f32 convolutions round on a GPU (`fp32` or `tf32`, [`crate::gpu::Precision`]); like
    /// the device, not part of what a trajectory is. Left out of the files when fp32.
    #[serde(skip_serializing_if = "crate::gpu::Precision::is_fp32")]
    pub precision: crate::gpu::Precision,
    /// The expert network: `ConvNet` (`buffer.py` line 114), i.e. DC's default ConvNet.
    pub arch: PluginChoice,
    /// Augmentation of every training batch: DSA with `color_crop_cutout_flip_scale_rotate`,
    /// each image its own parameters (`--dsa True`, `--dsa_strategy`, lines 120-123; `utils.py`
    /// `epoch` lines 320-322 call `DiffAugment` without a seed, i.e. not siamese). `none`
    /// trains unaugmented.
    pub augment: PluginChoice,
    /// `--num_experts 100` (line 116).
    pub num_experts: usize,
    /// `--train_epochs 50` (line 126).
    pub train_epochs: usize,
    /// `--lr_teacher 0.01` (line 117).
    pub lr_teacher: f64,
    /// `--mom 0` (line 129): plain SGD unless asked.
    pub momentum: f64,
    /// `--l2 0` (line 130): no weight decay unless asked.
    pub l2: f64,
    /// `--batch_train 256` (line 118).
    pub batch_train: usize,
    /// `--decay` (line 128, off): after epoch `train_epochs / 2 + 1` (0-based, lines 80 and
    /// 94-97) the learning rate drops 10x and a new optimiser starts (momentum reset).
    pub decay: bool,
    /// Test on at most this many test images (None: the whole test set after every epoch, as
    /// `buffer.py` lines 87-88).
    pub test_limit: Option<usize>,
    /// Seeds the dataset (`shapes`), each expert's initialisation, batch order and
    /// augmentation. The reference seeds every network from the clock (`utils.py` line 195).
    pub seed: u64,
    /// The store folder (default `experts/<dataset>-<arch>`; the reference's
    /// `buffers/<dataset>/<model>`, lines 24-29).
    pub out: Option<PathBuf>,
}

impl Default for ExpertsConfig {
    fn default() -> Self {
        Self {
            dataset: DatasetKind::Shapes,
            data_dir: None,
            download: false,
            zca: None,
            device: "cpu".into(),
            precision: crate::gpu::Precision::Fp32,
            arch: PluginChoice::named("convnet"),
            augment: PluginChoice::named("dsa"),
            num_experts: 100,
            train_epochs: 50,
            lr_teacher: 0.01,
            momentum: 0.0,
            l2: 0.0,
            batch_train: 256,
            decay: false,
            test_limit: None,
            seed: 0,
            out: None,
        }
    }
}

impl ExpertsConfig {
    /// The defaults with `flags` (a JSON object of settings) merged over them, then each
    /// `PATH=VALUE` of `sets` (e.g. `arch.width=8`, `augment.strategy=crop`), merged as a run's
    /// `--set` is ([`crate::config::UserLayers`]): a plugin named anew (`"arch": "mlp"`) drops the previous
    /// plugin's keys; an unknown key or a value of the wrong type is an error naming the key
    /// and the flag or `--set` that gave it.
    pub fn from_overrides(flags: &Value, sets: &[String]) -> Result<Self> {
        crate::config::layers::defaults_with_overrides(flags, sets)
    }

    /// Refuses settings that cannot train, before any work.
    pub fn validate(&self) -> Result<()> {
        if self.num_experts == 0 {
            return Err(Error::invalid("num_experts", 0, "train at least one expert"));
        }
        if self.train_epochs == 0 {
            return Err(Error::invalid("train_epochs", 0, "train for at least one epoch"));
        }
        if !(self.lr_teacher.is_finite() && self.lr_teacher > 0.0) {
            return Err(Error::invalid(
                "lr_teacher",
                self.lr_teacher,
                "a learning rate must be a positive finite number",
            ));
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return Err(Error::invalid("momentum", self.momentum, "must be in [0, 1)"));
        }
        if !(self.l2.is_finite() && self.l2 >= 0.0) {
            return Err(Error::invalid("l2", self.l2, "weight decay must be zero or positive"));
        }
        if self.batch_train == 0 {
            return Err(Error::invalid("batch_train", 0, "a batch holds at least one image"));
        }
        if let Some(eps) = self.zca {
            crate::data::check_zca_eps(eps)?;
        }
        if self.test_limit == Some(0) {
            return Err(Error::invalid("test_limit", 0, "test on at least one image"));
        }
        Ok(())
    }

    /// The settings that shape a trajectory: all but how many experts there are, where they
    /// live, where the data comes from, the device and its precision and how much is tested. Two runs that agree
    /// on these produce the same expert `k`, so a store can be resumed or extended with more
    /// experts.
    pub fn trajectory_settings(&self) -> Result<Value> {
        let mut value = serde_json::to_value(self).map_err(|e| Error::Other(e.to_string()))?;
        if let Value::Object(m) = &mut value {
            for key in [
                "num_experts",
                "test_limit",
                "out",
                "data_dir",
                "download",
                "device",
                "precision",
            ] {
                m.remove(key);
            }
        }
        Ok(value)
    }
}
