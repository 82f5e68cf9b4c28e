//! `cafe-lab teacher`: trains the frozen teacher that the decoupled methods work against (SRe2L's
//! squeeze) on the whole real training set, tests it and saves it in the one teacher format
//! (`crate::teacher`), by default at `teachers/<dataset>-<arch>.safetensors`, where `sre2l`,
//! `rded` and their soft-label evaluation look for it.
//!
//! The defaults are SRe2L's squeeze on CIFAR (VILA-Lab/SRe2L `SRe2L/*small_dataset/
//! squeeze_cifar.py`): SGD lr 0.1, momentum 0.9, weight decay 5e-4 (lines 15, 85), cosine
//! annealing over the epochs stepped per epoch (:86, :155), batch 128 (:57), 200 epochs
//! (`squeeze_cifar.sh:1`), `RandomCrop(32, padding=4)` and the flip (:40-47). The network is
//! ConvNetBN (RDED's `conv3` teacher, LINs-lab/RDED `synthesize/utils.py:183-192`); SRe2L's own
//! is ResNet-18 (`--arch resnet18bn`). RDED ships its teachers pre-trained
//! (`synthesize/utils.py:237-240`) without their training script, so this recipe stands for both.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::PluginChoice;
use crate::data::{self, DatasetKind, LoadOptions};
use crate::dist::{agree, Communicator};
use crate::eval::{test_network, test_tensors, Augmentation, OptimizerKind, Report, Schedule, TrainRecipe};
use crate::registry::build_plugin;
use crate::rng::{stream, sub_rng};
use crate::teacher::{default_teacher_path, save_teacher_with, Teacher, TeacherInfo};
use crate::train::{train_epoch_with, TargetLoss};
use crate::traits::architecture::Architecture;
use crate::{Error, Result};

use super::resolve::parse_device;

/// Every setting of a `teacher` run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TeacherConfig {
    pub dataset: DatasetKind,
    pub data_dir: Option<PathBuf>,
    pub download: bool,
    #[serde(deserialize_with = "crate::data::deserialize_zca")]
    pub zca: Option<f64>,
    pub device: String,
    /// The teacher network (default ConvNetBN); a method run must use the same, with the same
    /// settings.
    pub arch: PluginChoice,
    /// Augmentation of every training batch: `crop_flip` (pad 4, flip); its padding is black
    /// (`-mean / std` of the dataset, torchvision's fill 0 before `Normalize`) unless `fill` is set.
    pub augment: PluginChoice,
    pub epochs: usize,
    pub lr: f64,
    pub momentum: f64,
    pub weight_decay: f64,
    pub batch: usize,
    /// `cosine` (CosineAnnealingLR over `epochs`), `half_cosine` or `reference_step`.
    pub schedule: Schedule,
    pub optimizer: OptimizerKind,
    /// Test on at most this many test images (None: all).
    pub test_limit: Option<usize>,
    pub seed: u64,
    /// The file (default `teachers/<dataset>-<arch>.safetensors`).
    pub out: Option<PathBuf>,
}

impl Default for TeacherConfig {
    fn default() -> Self {
        Self {
            dataset: DatasetKind::Shapes,
            data_dir: None,
            download: false,
            zca: None,
            device: "cpu".into(),
            arch: PluginChoice::named("convnetbn"),
            augment: PluginChoice::named("crop_flip"),
            epochs: 200,
            lr: 0.1,
            momentum: 0.9,
            weight_decay: 5e-4,
            batch: 128,
            schedule: Schedule::Cosine,
            optimizer: OptimizerKind::Sgd,
            test_limit: None,
            seed: 0,
            out: None,
        }
    }
}

impl TeacherConfig {
    /// The defaults with `flags` (a JSON object) and then each `PATH=VALUE` of `sets` merged
    /// over them, as `experts` merges its settings.
    pub fn from_overrides(flags: &Value, sets: &[String]) -> Result<Self> {
        crate::config::layers::defaults_with_overrides(flags, sets)
    }

    /// Refuses settings that cannot train, before any work.
    pub fn validate(&self) -> Result<()> {
        if self.epochs == 0 {
            return Err(Error::invalid("epochs", 0, "train the teacher at least one epoch"));
        }
        if self.batch == 0 {
            return Err(Error::invalid("batch", 0, "a batch holds at least one image"));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(Error::invalid(
                "lr",
                self.lr,
                "a learning rate must be a positive finite number",
            ));
        }
        if self.test_limit == Some(0) {
            return Err(Error::invalid("test_limit", 0, "test on at least one image"));
        }
        Ok(())
    }
}

/// What a `teacher` run made.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TeacherSummary {
    pub file: PathBuf,
    pub info: TeacherInfo,
}

/// Trains the teacher `config` describes (every rank the same, rank 0 saves it); progress on
/// stderr unless `quiet`.
pub fn run_teacher(config: &TeacherConfig, quiet: bool, comm: &dyn Communicator) -> Result<TeacherSummary> {
    config.validate()?;
    let quiet = quiet || comm.rank() != 0;
    let arch = build_plugin::<dyn Architecture>(&config.arch)?;
    let device = parse_device(&config.device)?;
    let ds = data::load_announced(
        config.dataset.name(),
        &LoadOptions::new(&config.data_dir, config.download, config.seed, config.zca),
        quiet,
    )?;
    let mut augment = config.augment.clone();
    if augment.name.eq_ignore_ascii_case("crop_flip") && !augment.config.contains_key("fill") && ds.zca.is_none() {
        let black: Vec<f64> = ds
            .mean
            .iter()
            .zip(&ds.std)
            .map(|(&m, &s)| -f64::from(m) / f64::from(s))
            .collect();
        augment.config.insert("fill".into(), serde_json::json!(black));
    }
    let augmentation = Augmentation::build(&augment)?;
    let out = config
        .out
        .clone()
        .unwrap_or_else(|| default_teacher_path(&ds.name, arch.entry.name));
    let recipe = TrainRecipe {
        lr: config.lr,
        momentum: config.momentum,
        weight_decay: config.weight_decay,
        batch: config.batch,
        epochs: config.epochs,
        nets: 1,
        parallel: 1,
        schedule: config.schedule,
        optimizer: config.optimizer,
        report: Report::Final,
    };
    let all: Vec<usize> = (0..ds.train.len()).collect();
    let (x, y) = ds.train.to_tensor(&all, &device)?;
    let test = test_tensors(&ds.test, config.test_limit, &device)?;
    let mut rng = sub_rng(config.seed, &[stream::TEACHER]);
    let net = arch
        .plugin
        .build(ds.train.shape, ds.classes, candle_core::DType::F32, &device, &mut rng)?;
    if !quiet {
        eprintln!(
            "training the teacher ({}) on {} real images for {} epochs -> {}",
            arch.entry.name,
            ds.train.len(),
            recipe.epochs_trained(),
            out.display()
        );
    }
    let aug: Option<&dyn crate::Augmenter> = Some(augmentation.augmenter.as_ref());
    recipe.run(net.parameters(), |e, opt| {
        let loss = train_epoch_with(net.as_ref(), opt, &x, recipe.batch, aug, &mut rng, &TargetLoss(&y))?;
        if !quiet {
            let (acc, _) = test_network(net.as_ref(), &test, ds.classes)?;
            eprintln!(
                "teacher epoch {}/{}: train loss {loss:.4}, test accuracy {:.2} %",
                e + 1,
                recipe.epochs_trained(),
                100.0 * acc
            );
        }
        Ok(())
    })?;
    let (accuracy, _) = test_network(net.as_ref(), &test, ds.classes)?;
    let teacher = Teacher {
        net,
        info: TeacherInfo {
            arch: arch.entry.name.to_string(),
            source: "trained".into(),
            epochs: recipe.epochs_trained(),
            train_images: ds.train.len(),
            accuracy,
        },
    };
    let saved = if comm.rank() == 0 {
        if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        }
        save_teacher_with(&teacher, &ds.name, Some(&arch.config), &out)
    } else {
        Ok(())
    };
    agree(comm, saved)?;
    if !quiet {
        eprintln!(
            "teacher saved: {} (test accuracy {:.2} %)",
            out.display(),
            100.0 * accuracy
        );
    }
    Ok(TeacherSummary {
        file: out,
        info: teacher.info,
    })
}
