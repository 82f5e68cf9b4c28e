//! Evaluating sets on one dataset under a plan: one architecture or every one, with progress
//! on stderr. The random baseline, DD-Ranking's metrics, KD and the whole evaluation of a
//! synthetic set build on it (`baseline.rs`, `fair_metrics.rs`, `kd.rs`, `set_evaluations.rs`).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use candle_core::Device;

use crate::data::Dataset;
use crate::dist::Communicator;
use crate::progress::Progress;
use crate::rng::{derive_seed, stream};
use crate::Result;

use super::plan::{ArchPlan, EvalPlan};
use super::trainer::{evaluate_set, EvalJob, Evaluation, TrainingSet};

/// Evaluations of sets on `ds` under `plan`.
pub struct Evaluator<'a> {
    pub plan: &'a EvalPlan,
    pub ds: &'a Dataset,
    pub device: &'a Device,
    /// Images per class of the set evaluated (the random baseline draws as many).
    pub ipc: usize,
    /// No progress on stderr.
    pub quiet: bool,
    /// The ranks sharing the networks of every evaluation (only rank 0 reports progress).
    pub comm: &'a dyn Communicator,
    /// Set (by Ctrl-C) to stop before the next network (see [`EvalJob::interrupt`]).
    pub interrupt: Option<&'a AtomicBool>,
}

impl Evaluator<'_> {
    /// The seed of the final evaluation's networks (also the baseline's, the metrics' and the
    /// KD students').
    pub fn seed(&self) -> u64 {
        derive_seed(self.plan.seed, &[stream::EVAL])
    }

    /// Evaluates `set` on `arch`, with a progress bar and a summary line.
    pub fn on_arch(&self, arch: &ArchPlan, set: &TrainingSet) -> Result<Evaluation> {
        let name = &arch.name;
        let quiet = self.quiet || self.comm.rank() != 0;
        // Rank 0 counts its own networks; the others' arrive with the results.
        let bar = Progress::new(&format!("eval {} on {name}", set.name), arch.recipe.nets, quiet, 1);
        // Networks may finish out of order when they train side by side: count completions.
        let done = AtomicUsize::new(0);
        let report = |_k: usize, acc: f64| {
            let n = done.fetch_add(1, Ordering::Relaxed) + 1;
            bar.step(n, &format!("last test accuracy {:.2} %", 100.0 * acc))
        };
        let job = EvalJob {
            arch,
            classes: self.ds.classes,
            shape: self.ds.train.shape,
            test: &self.ds.test,
            test_limit: self.plan.test_limit,
            device: self.device,
            seed: self.seed(),
            on_network: Some(&report),
            comm: self.comm,
            interrupt: self.interrupt,
        };
        let ev = evaluate_set(&job, set)?;
        bar.finish();
        if !quiet {
            eprintln!(
                "{} on {name}: {} over {} networks",
                set.name,
                ev.summary(),
                ev.accuracies.len()
            );
        }
        Ok(ev)
    }

    /// Evaluates `set` on every evaluation architecture, in order.
    pub fn on_archs(&self, set: &TrainingSet) -> Result<Vec<Evaluation>> {
        self.plan.archs.iter().map(|arch| self.on_arch(arch, set)).collect()
    }
}
