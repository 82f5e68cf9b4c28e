//! The soft-label evaluation of a run (`--kd`, `evaluate_kd`): a teacher trained on the run's
//! training set under the recipe (or loaded with `--kd-teacher`), saved as
//! `teacher.safetensors`, then students of every evaluation architecture trained on the
//! synthetic set (`synthetic-kd`) and on the random subset (`random-kd`) with its soft labels.

use candle_core::Tensor;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::data::Dataset;
use crate::evaluate::{EvalSetup, Evaluation};
use crate::evaluate_kd::{evaluate_set_kd, train_teacher};
use crate::registry::find;
use crate::rng::derive_seed;
use crate::teacher::{load_teacher, save_teacher, TeacherArch, TeacherInfo};
use crate::traits::architecture::Architecture;
use crate::Result;

use super::evaluation::{eval_arch_names, eval_augmenter_for, eval_epochs, random_subset};
use super::resolve::{build_plugin, ResolvedRun};

/// File name of the teacher a run trains.
pub const TEACHER_FILE: &str = "teacher.safetensors";

/// What results.json records of the soft-label evaluation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct KdSummary {
    pub temperature: f64,
    pub teacher: TeacherInfo,
}

/// An evaluation architecture built as the hard-label evaluation builds it.
fn eval_arch(run: &ResolvedRun, name: &str) -> Result<(Box<dyn Architecture>, String)> {
    if name == run.config.arch.name.to_ascii_lowercase() {
        let (arch, _, plugin) = build_plugin::<dyn Architecture>(&run.config.arch)?;
        Ok((arch, plugin.name.to_string()))
    } else {
        let plugin = find::<dyn Architecture>(name)?;
        Ok((plugin.instantiate(&Value::Null)?, plugin.name.to_string()))
    }
}

/// Runs the soft-label evaluations; nothing without `eval.kd`.
pub(crate) fn kd_evaluations(
    run: &ResolvedRun,
    ds: &Dataset,
    syn_images: &Tensor,
    quiet: bool,
) -> Result<(Vec<Evaluation>, Option<KdSummary>)> {
    let e = &run.config.eval;
    if !e.kd {
        return Ok((Vec::new(), None));
    }
    let seed = derive_seed(run.settings.seed, &[crate::engine::EVAL_STREAM]);
    let names = eval_arch_names(&run.config)?;
    let mut teacher = None;
    let mut out = Vec::new();
    for name in &names {
        let (arch, arch_name) = eval_arch(run, name)?;
        let (augmenter, augment_name) = eval_augmenter_for(&run.config, name)?;
        let epochs = eval_epochs(&run.config, augmenter.as_ref());
        let setup = |epochs: usize| EvalSetup {
            arch: arch.as_ref(),
            arch_name: &arch_name,
            classes: ds.classes,
            shape: ds.train.shape,
            test: &ds.test,
            config: e,
            augmenter: augmenter.as_ref(),
            augment_name: &augment_name,
            epochs,
            device: &run.device,
            seed,
            on_network: None,
        };
        if teacher.is_none() {
            // The teacher is of the first evaluation architecture.
            let t = match &e.kd_teacher {
                Some(path) => {
                    let arch = TeacherArch {
                        arch: arch.as_ref(),
                        name: &arch_name,
                        shape: ds.train.shape,
                        classes: ds.classes,
                    };
                    load_teacher(&arch, &ds.name, path, &run.device)?
                }
                None => {
                    if !quiet {
                        eprintln!("training the teacher ({arch_name}) on {} real images", ds.train.len());
                    }
                    let all: Vec<usize> = (0..ds.train.len()).collect();
                    let (x, y) = ds.train.to_tensor(&all, &run.device)?;
                    let t = train_teacher(&setup(e.kd_teacher_epochs.unwrap_or(epochs)), &x, &y, run.settings.seed)?;
                    save_teacher(&t, &ds.name, &run.out.join(TEACHER_FILE))?;
                    t
                }
            };
            if !quiet {
                eprintln!(
                    "teacher {} ({}): test accuracy {:.2} %",
                    t.info.arch,
                    t.info.source,
                    100.0 * t.info.accuracy
                );
            }
            teacher = Some(t);
        }
        let t = teacher.as_ref().expect("set above");
        let mut sets = vec![("synthetic-kd", syn_images.clone())];
        if e.baseline {
            sets.push(("random-kd", random_subset(run, ds)?.0));
        }
        for (set, images) in sets {
            let ev = evaluate_set_kd(&setup(epochs), t.net.as_ref(), e.kd_temperature, set, &images)?;
            if !quiet {
                eprintln!(
                    "{set} on {arch_name}: {} over {} networks",
                    ev.summary(),
                    ev.accuracies.len()
                );
            }
            out.push(ev);
        }
    }
    let summary = teacher.map(|t| KdSummary {
        temperature: e.kd_temperature,
        teacher: t.info,
    });
    Ok((out, summary))
}
