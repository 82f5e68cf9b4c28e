//! Soft-label (knowledge-distillation) evaluation, as SRe2L/RDED-style methods are evaluated
//! and as DD-Ranking does it in its soft-label mode 'M': a teacher trained on the real data
//! labels every augmented batch on the fly, and fresh students learn the teacher's
//! temperature-softened outputs on the set instead of its hard labels (`--kd`).
//!
//! References (NUS-HPC-AI-Lab/DD-Ranking at b8b0966): the loss is `KLDivergenceLoss`
//! (`ddranking/loss/kl.py:12-19`: KL(softmax(t / T) || softmax(s / T)) with `batchmean`
//! reduction, times T^2 only with `scale_loss`); the teacher's logits are computed on the same
//! augmented batch the student sees (`ddranking/utils/train_and_eval.py:174-187`); its demo
//! configuration uses T = 1 without scaling (`configs/Demo_LRS_Soft_Label.yaml:53-56`). The
//! students otherwise follow the run's recipe (optimiser, epochs, lr drop) and train side by
//! side like any evaluation's networks ([`super::trainer`]).

use std::path::Path;

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use crate::dist::agree;
use crate::rng::{stream, sub_rng};
use crate::teacher::{load_teacher, save_teacher, Teacher, TeacherArch, TeacherInfo};
use crate::Result;

use super::evaluator::Evaluator;
use super::plan::{ArchPlan, TeacherSource};
use super::trainer::{test_network, test_tensors, train_network, Evaluation, Supervision, TrainingSet};

/// File name of the teacher a run trains.
pub const TEACHER_FILE: &str = "teacher.safetensors";

/// What results.json records of the soft-label evaluation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct KdSummary {
    pub temperature: f64,
    pub teacher: TeacherInfo,
}

/// Trains a teacher of `arch` on the real `images`/`labels` under its recipe for E = `epochs`
/// (augmentation, optimiser, schedule) with hard labels, seeded by the run's `seed`, then
/// tests it on the first `test_limit` images of `test`.
pub fn train_teacher(
    arch: &ArchPlan,
    epochs: usize,
    ev: &Evaluator,
    images: &Tensor,
    labels: &Tensor,
) -> Result<Teacher> {
    let ds = ev.ds;
    let mut rng = sub_rng(ev.plan.seed, &[stream::TEACHER]);
    let recipe = arch.recipe.with_epochs(epochs);
    let net = train_network(
        arch,
        &recipe,
        ds.train.shape,
        ds.classes,
        ev.device,
        images,
        Supervision::Targets(labels),
        &mut rng,
    )?;
    let test = test_tensors(&ds.test, ev.plan.test_limit, ev.device)?;
    let (accuracy, _) = test_network(net.as_ref(), &test, ds.classes)?;
    Ok(Teacher {
        net,
        info: TeacherInfo {
            arch: arch.name.clone(),
            source: "trained".into(),
            epochs,
            train_images: images.dim(0)?,
            accuracy,
        },
    })
}

impl Evaluator<'_> {
    /// The teacher of the plan's KD evaluation: loaded from its file, or trained on the
    /// training set (first evaluation architecture) and saved as `out/teacher.safetensors`.
    fn teacher(&self, source: &TeacherSource, out: &Path) -> Result<Teacher> {
        let (ds, arch) = (self.ds, &self.plan.archs[0]);
        let teacher = match source {
            TeacherSource::File(path) => {
                let target = TeacherArch {
                    arch: arch.arch.as_ref(),
                    name: &arch.name,
                    shape: ds.train.shape,
                    classes: ds.classes,
                };
                load_teacher(&target, &ds.name, path, self.device)?
            }
            TeacherSource::Train { epochs } => {
                if !self.quiet && self.comm.rank() == 0 {
                    eprintln!("training the teacher ({}) on {} real images", arch.name, ds.train.len());
                }
                let all: Vec<usize> = (0..ds.train.len()).collect();
                let (x, y) = ds.train.to_tensor(&all, self.device)?;
                // Every rank trains the same teacher (its seed is the run's); rank 0 saves it.
                let t = train_teacher(arch, *epochs, self, &x, &y)?;
                let saved = if self.comm.rank() == 0 {
                    save_teacher(&t, &ds.name, &out.join(TEACHER_FILE))
                } else {
                    Ok(())
                };
                agree(self.comm, saved)?;
                t
            }
        };
        if !self.quiet && self.comm.rank() == 0 {
            eprintln!(
                "teacher {} ({}): test accuracy {:.2} %",
                teacher.info.arch,
                teacher.info.source,
                100.0 * teacher.info.accuracy
            );
        }
        Ok(teacher)
    }

    /// The soft-label evaluations: students of every evaluation architecture trained on the
    /// synthetic set (`synthetic-kd`) and on the random subset (`random-kd`) with the
    /// teacher's soft labels, at the recipe's lr. Nothing without `--kd`.
    pub fn kd(&self, syn_images: &Tensor, out: &Path) -> Result<(Vec<Evaluation>, Option<KdSummary>)> {
        let Some(plan) = &self.plan.kd else {
            return Ok((Vec::new(), None));
        };
        let teacher = self.teacher(&plan.teacher, out)?;
        let supervision = Supervision::Teacher {
            net: teacher.net.as_ref(),
            temperature: plan.temperature,
        };
        let random = if self.plan.baseline {
            Some(self.random_subset()?.0)
        } else {
            None
        };
        let mut sets = vec![("synthetic-kd", syn_images)];
        if let Some(images) = &random {
            sets.push(("random-kd", images));
        }
        let mut out = Vec::new();
        for arch in &self.plan.archs {
            for (name, images) in &sets {
                let set = TrainingSet {
                    name,
                    images,
                    supervision,
                    lr: None,
                };
                out.push(self.on_arch(arch, &set)?);
            }
        }
        let summary = KdSummary {
            temperature: plan.temperature,
            teacher: teacher.info,
        };
        Ok((out, Some(summary)))
    }
}
