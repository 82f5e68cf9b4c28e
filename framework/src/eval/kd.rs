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

use crate::config::TeacherMode;
use crate::dist::agree;
use crate::metrics::ddranking::{FairMetrics, MetricInputs, SOFT_LABELS};
use crate::registry::PluginChoice;
use crate::rng::{stream, sub_rng};
use crate::teacher::{load_teacher, save_teacher, Teacher, TeacherArch, TeacherInfo};
use crate::traits::architecture::Mode;
use crate::Error;
use crate::Result;

use super::evaluator::Evaluator;
use super::fair_metrics::WHOLE_SET;
use super::plan::{ArchPlan, Augmentation, KdPlan, TeacherSource, WholeReference};
use super::trainer::{test_network, test_tensors, train_network, Evaluation, Supervision, TrainingSet};

/// File name of the teacher a run trains.
pub const TEACHER_FILE: &str = "teacher.safetensors";

/// Everything the soft-label evaluation produced.
#[derive(Default)]
pub struct KdOutcome {
    pub evaluations: Vec<Evaluation>,
    pub summary: Option<KdSummary>,
    /// DD-Ranking's soft-label metrics (`--metrics`), one per architecture.
    pub metrics: Vec<FairMetrics>,
}

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
        &mut |_, _| Ok(()),
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
                    config: None,
                    shape: ds.train.shape,
                    classes: ds.classes,
                };
                load_teacher(&target, &ds.name, path, self.device, "eval.kd_teacher")?
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
    /// teacher's soft labels, under the students' recipe (`eval.kd_recipe`, else the
    /// architecture's); with `--metrics`, DD-Ranking's soft-label metrics too (see
    /// [`Evaluator::soft_metrics`]), from the hard-label evaluations `hard` already made.
    /// Nothing without `--kd`.
    pub fn kd(&self, syn_images: &Tensor, out: &Path, hard: &[Evaluation]) -> Result<KdOutcome> {
        let Some(plan) = &self.plan.kd else {
            return Ok(KdOutcome::default());
        };
        let teacher = self.teacher(&plan.teacher, out)?;
        let supervision = Supervision::Teacher {
            net: teacher.net.as_ref(),
            temperature: plan.temperature,
            mode: match plan.teacher_mode {
                TeacherMode::Eval => Mode::Eval,
                TeacherMode::Train => Mode::Train,
            },
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
            let students = plan.students_of(arch);
            for (name, images) in &sets {
                let set = TrainingSet {
                    name,
                    images,
                    supervision,
                    lr: None,
                };
                out.push(self.on_arch(&students, &set)?);
            }
        }
        let metrics = match &random {
            Some(random) => self.soft_metrics(plan, supervision, syn_images, random, hard, &mut out)?,
            None => Vec::new(),
        };
        let summary = KdSummary {
            temperature: plan.temperature,
            teacher: teacher.info,
        };
        Ok(KdOutcome {
            evaluations: out,
            summary: Some(summary),
            metrics,
        })
    }

    /// DD-Ranking's soft-label metrics (`LabelRobustScoreSoft`, `ddranking/metrics/
    /// soft_label.py:495-566`, and the soft branch of `aug_robust.py`) per evaluation
    /// architecture: HLR = whole - synthetic with hard labels, IOR = synthetic - random both
    /// with the teacher's soft labels, ARS from the students with their augmentation and
    /// without it (with DSA when their recipe has none). The extra students are appended to
    /// `evaluations` (`synthetic-kd-noaug`, `random-kd-noaug`, or `-aug`). Nothing without
    /// `--metrics`.
    fn soft_metrics(
        &self,
        plan: &KdPlan,
        supervision: Supervision,
        syn_images: &Tensor,
        random_images: &Tensor,
        hard: &[Evaluation],
        evaluations: &mut Vec<Evaluation>,
    ) -> Result<Vec<FairMetrics>> {
        let Some(metrics) = &self.plan.metrics else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for arch in &self.plan.archs {
            let find = |set: &str, evs: &[Evaluation]| -> Option<Vec<f64>> {
                evs.iter()
                    .find(|ev| ev.set == set && ev.arch.eq_ignore_ascii_case(&arch.name))
                    .map(|ev| ev.accuracies.clone())
            };
            let missing =
                |set: &str| Error::Other(format!("soft-label metrics: no '{set}' evaluation on {}", arch.name));
            let syn = find("synthetic-kd", evaluations).ok_or_else(|| missing("synthetic-kd"))?;
            let random = find("random-kd", evaluations).ok_or_else(|| missing("random-kd"))?;
            let syn_hard = find("synthetic-hard", hard)
                .or_else(|| find("synthetic", hard))
                .ok_or_else(|| missing("synthetic"))?;
            let whole = match metrics.whole {
                WholeReference::Known(acc) => vec![acc],
                WholeReference::Train { .. } => find(WHOLE_SET, hard).ok_or_else(|| missing(WHOLE_SET))?,
            };
            let students = plan.students_of(arch);
            let augments = !students.augmentation.is_identity();
            let (other, suffix) = if augments { ("none", "-noaug") } else { ("dsa", "-aug") };
            let contrast = students.with_augmentation(Augmentation::build(&PluginChoice::named(other))?);
            let mut other_of = |name: &str, images: &Tensor| -> Result<Vec<f64>> {
                let label = format!("{name}{suffix}");
                let set = TrainingSet {
                    name: &label,
                    images,
                    supervision,
                    lr: None,
                };
                let ev = self.on_arch(&contrast, &set)?;
                let acc = ev.accuracies.clone();
                evaluations.push(ev);
                Ok(acc)
            };
            let syn_other = other_of("synthetic-kd", syn_images)?;
            let random_other = other_of("random-kd", random_images)?;
            let ((syn_aug, random_aug), (syn_plain, random_plain)) = if augments {
                ((syn.clone(), random.clone()), (syn_other, random_other))
            } else {
                ((syn_other, random_other), (syn.clone(), random.clone()))
            };
            let augmentation = if augments {
                students.augmentation.name.clone()
            } else {
                contrast.augmentation.name.clone()
            };
            let inputs = MetricInputs {
                syn,
                syn_hard,
                random,
                whole,
                syn_aug,
                random_aug,
                syn_plain,
                random_plain,
            };
            out.push(
                FairMetrics::compute(
                    &arch.name,
                    &augmentation,
                    &inputs,
                    metrics.lrs_weight,
                    metrics.ars_weight,
                )?
                .with_labels(SOFT_LABELS),
            );
        }
        Ok(out)
    }
}
