//! Training experts: networks trained on the whole real training set with SGD, their
//! parameters kept after every epoch (MTT's `buffer.py`), and a store of them that an
//! interrupted run resumes.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::dist::{agree, gather_f64_tasks, Communicator};
use crate::output::write_json;
use crate::rng::{stream, sub_rng};
use crate::train::{accuracy, train_epoch, StepSchedule};
use crate::traits::architecture::{Architecture, Mode};
use crate::traits::augmenter::Augmenter;
use crate::{Error, Result, Rng};

use super::config::ExpertsConfig;
use super::store::{expert_file, ExpertRecord, ExpertTrajectory, TrajectoryKey};

/// Test batches: large enough to be fast, small enough for any network's activations.
const TEST_BATCH: usize = 500;

/// File name of a store's summary, rewritten after every expert.
pub const SUMMARY_FILE: &str = "experts.json";

/// The random stream of expert `index` under `seed`: its initial weights are drawn first, then
/// its batch orders and augmentations. One stream per expert, so expert `k` is the same
/// whether it is trained alone, after others, or again after an interruption.
pub fn expert_rng(seed: u64, index: usize) -> Rng {
    sub_rng(seed, &[stream::EXPERT, index as u64])
}

/// Everything needed to train experts of one architecture on one dataset.
pub struct ExpertTrainer<'a> {
    pub arch: &'a dyn Architecture,
    pub augmenter: &'a dyn Augmenter,
    /// The resolved settings (plugins with their full configs), stored in every expert file.
    pub config: &'a ExpertsConfig,
    /// What the experts fit: dataset, image shape, classes, architecture, parameter shapes.
    pub key: TrajectoryKey,
    /// The whole training set `[n, c, h, w]` f32 and its labels `[n]` u32, on `device`.
    pub train: (Tensor, Tensor),
    /// The test images and labels, on `device`.
    pub test: (Tensor, Tensor),
    pub device: Device,
}

/// One line of a store's summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExpertEntry {
    pub expert: usize,
    pub file: PathBuf,
    pub epochs: usize,
    /// Test accuracy after the last epoch.
    pub test_accuracy: f64,
    /// False when the expert was already in the store and this run skipped it.
    pub trained: bool,
}

/// A store after an `experts` run: its folder, settings and experts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExpertsSummary {
    pub out: PathBuf,
    pub settings: Value,
    pub experts: Vec<ExpertEntry>,
}

impl ExpertTrainer<'_> {
    /// Trains expert `index` from scratch; `on_epoch(epoch, train_loss, test_accuracy)` after
    /// every epoch (1-based).
    pub fn train_expert(&self, index: usize, on_epoch: &dyn Fn(usize, f64, f64)) -> Result<ExpertTrajectory> {
        let cfg = self.config;
        let mut rng = expert_rng(cfg.seed, index);
        let key = &self.key;
        let net = self
            .arch
            .build(key.image_shape, key.classes, DType::F32, &self.device, &mut rng)?;
        // `Var::set` overwrites a parameter's storage in place: keep copies.
        let snapshot = || -> Result<Vec<Tensor>> {
            net.parameters()
                .iter()
                .map(|p| Ok(p.as_tensor().copy()?.to_device(&Device::Cpu)?))
                .collect()
        };
        let mut epochs = vec![snapshot()?];
        let (mut train_loss, mut test_accuracy) = (Vec::new(), Vec::new());
        let (x, y) = &self.train;
        // buffer.py lines 80-97: SGD for `train_epochs` epochs; with `--decay`, a new optimiser
        // at a tenth of the rate (momentum reset) after epoch train_epochs / 2 + 1.
        StepSchedule::experts(cfg.train_epochs, cfg.decay).run(
            net.parameters(),
            cfg.lr_teacher,
            cfg.momentum,
            cfg.l2,
            |epoch, opt| {
                let loss = train_epoch(net.as_ref(), opt, x, y, cfg.batch_train, Some(self.augmenter), &mut rng)?;
                let acc = accuracy(net.as_ref(), &self.test.0, &self.test.1, TEST_BATCH, Mode::Eval)?;
                epochs.push(snapshot()?);
                train_loss.push(loss);
                test_accuracy.push(acc);
                on_epoch(epoch + 1, loss, acc);
                Ok(())
            },
        )?;
        let record = ExpertRecord {
            expert: index,
            dataset: key.dataset.clone(),
            zca: key.zca,
            image_shape: key.image_shape,
            classes: key.classes,
            arch: key.arch.clone(),
            arch_config: key.arch_config.clone(),
            // Without `out`: the store is wherever the file is, and the same expert trained into
            // another folder (or by another world size into a copy) must be the same bytes.
            settings: serde_json::to_value(ExpertsConfig {
                out: None,
                ..cfg.clone()
            })
            .map_err(|e| Error::Other(e.to_string()))?,
            seed: cfg.seed,
            epochs: cfg.train_epochs,
            parameter_shapes: key.parameter_shapes.clone(),
            train_loss,
            test_accuracy,
            test_images: self.test.1.dim(0)?,
            cafe_lab_version: env!("CARGO_PKG_VERSION").to_string(),
        };
        ExpertTrajectory::new(record, epochs)
    }

    /// The expert already stored at `path`, when it fits these settings; an error when a file
    /// is there but was trained for something else (another dataset, network or setting).
    fn stored(&self, path: &Path) -> Result<Option<ExpertRecord>> {
        if !path.exists() {
            return Ok(None);
        }
        let record = ExpertRecord::read(path)?;
        record.check_fits(path, &self.key)?;
        let stored: ExpertsConfig = serde_json::from_value(record.settings.clone()).map_err(|e| {
            Error::invalid(
                "expert trajectory",
                path.display(),
                format!("its settings are not this version's: {e}"),
            )
        })?;
        let (have, want) = (stored.trajectory_settings()?, self.config.trajectory_settings()?);
        if have != want || record.epochs != self.config.train_epochs {
            return Err(Error::invalid(
                "expert trajectory",
                path.display(),
                format!(
                    "it was trained with other settings ({have}, this run: {want}); use another --out, \
                     the same settings, or delete the file"
                ),
            ));
        }
        Ok(Some(record))
    }

    /// Trains experts `0..num_experts` into `dir`, one file each, skipping those already there
    /// (an interrupted run leaves no partial file: each is written atomically once its expert
    /// is done, so the unfinished one starts again). The experts are shared out among the
    /// ranks of `comm` (expert `k` is the same whichever rank trains it); rank 0 rewrites
    /// [`SUMMARY_FILE`] (after each expert when alone, once at the end otherwise).
    pub fn train_all(
        &self,
        dir: &Path,
        comm: &dyn Communicator,
        on_epoch: &dyn Fn(usize, usize, f64, f64),
        on_expert: &dyn Fn(&ExpertEntry),
    ) -> Result<ExpertsSummary> {
        let root = comm.rank() == 0;
        agree(
            comm,
            std::fs::create_dir_all(dir).map_err(|e| Error::io(format!("creating store folder {}", dir.display()), e)),
        )?;
        let mut summary = ExpertsSummary {
            out: dir.to_path_buf(),
            settings: serde_json::to_value(self.config).map_err(|e| Error::Other(e.to_string()))?,
            experts: Vec::new(),
        };
        let numbers = gather_f64_tasks(comm, self.config.num_experts, |mine| {
            let mut numbers = Vec::new();
            for index in mine {
                let entry = self.expert(dir, index, on_epoch)?;
                on_expert(&entry);
                numbers.push(vec![
                    entry.epochs as f64,
                    entry.test_accuracy,
                    f64::from(u8::from(entry.trained)),
                ]);
                if comm.size() == 1 {
                    summary.experts.push(entry);
                    write_json(&dir.join(SUMMARY_FILE), &summary)?;
                }
            }
            Ok(numbers)
        })?;
        summary.experts = numbers
            .iter()
            .enumerate()
            .map(|(index, n)| ExpertEntry {
                expert: index,
                file: expert_file(dir, index),
                epochs: n.first().copied().unwrap_or(0.0) as usize,
                test_accuracy: n.get(1).copied().unwrap_or(f64::NAN),
                trained: n.get(2).is_some_and(|t| *t > 0.0),
            })
            .collect();
        if comm.size() > 1 {
            let written = if root {
                write_json(&dir.join(SUMMARY_FILE), &summary)
            } else {
                Ok(())
            };
            agree(comm, written)?;
        }
        Ok(summary)
    }

    /// Expert `index` of the store `dir`: the one there when it fits, else trained and saved.
    fn expert(&self, dir: &Path, index: usize, on_epoch: &dyn Fn(usize, usize, f64, f64)) -> Result<ExpertEntry> {
        let path = expert_file(dir, index);
        Ok(match self.stored(&path)? {
            Some(record) => ExpertEntry {
                expert: index,
                file: path,
                epochs: record.epochs,
                test_accuracy: record.test_accuracy.last().copied().unwrap_or(f64::NAN),
                trained: false,
            },
            None => {
                let trajectory = self.train_expert(index, &|e, loss, acc| on_epoch(index, e, loss, acc))?;
                trajectory.save(&path)?;
                ExpertEntry {
                    expert: index,
                    file: path,
                    epochs: trajectory.epochs(),
                    test_accuracy: trajectory.record.test_accuracy.last().copied().unwrap_or(f64::NAN),
                    trained: true,
                }
            }
        })
    }
}
