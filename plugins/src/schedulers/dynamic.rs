//! `dynamic`: CAFE's accuracy watchers (Wang et al., "CAFE: Learning to Condense Dataset by
//! Aligning Features", CVPR 2022, <https://arxiv.org/abs/2203.01531>).
//!
//! The scheduler keeps a window of the last `window` accuracies of the current network on a
//! probe of real images. After each outer step, the probe accuracy joins the outer window; when
//! the window is full and its range `max - min` is below `lambda_1`, the network has stopped
//! reacting to the synthetic set and the iteration ends. Otherwise the network trains on S one
//! epoch at a time, each epoch's probe accuracy joining a fresh inner window, until that
//! window is full with a range above `lambda_2` (the network has moved enough). Each loop thus
//! runs at least `window` times before it can end.
//!
//! Neither rule need ever fire (a network that keeps wobbling by less than lambda_2 never
//! leaves the inner loop), so `max_outer_steps` and `max_inner_epochs` cap both loops; the
//! report says when a cap ended one.
//!
//! What is watched follows the reference (kaiwang960112/CAFE `distill.py:236-352`) by default:
//! - `probe = "fresh"`: 128 new random real images per class at every probe (`get_images(c,
//!   128)` inside both watcher loops, 301 and 333). `"fixed"` draws them once per iteration;
//!   a network fitted to S then stops moving on them and the inner loop runs to its cap.
//! - `probe_value = "reference"`: the watched value is the reference's recurrence
//!   `a = (a + sum_c acc_c) / classes` (304-305, 336-337), with two accumulators: the outer
//!   one reset at every iteration start (239) and when its window fires (312), the inner one
//!   reset at every inner-loop start (326) and when its window fires (345). `"accuracy"`
//!   watches the plain probe accuracy.

use std::collections::VecDeque;

use cafe_framework::traits::scheduler::{BilevelLoop, IterationReport, ProbeDraw, Scheduler};
use cafe_framework::{register_scheduler, Error, Result};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DynamicConfig {
    /// The outer loop ends when the outer window's range falls below this.
    pub lambda_1: f64,
    /// The inner loop ends when the inner window's range rises above this.
    pub lambda_2: f64,
    /// Window length.
    pub window: usize,
    /// Real images per class in the probe.
    pub probe_per_class: usize,
    /// Hard cap on outer steps per iteration.
    pub max_outer_steps: usize,
    /// Hard cap on inner epochs per inner loop.
    pub max_inner_epochs: usize,
    /// Draw the probe anew at every probe (`fresh`, the reference) or once per iteration.
    pub probe: ProbeDraw,
    /// What the windows watch: the reference's accumulated value or the plain accuracy.
    pub probe_value: ProbeValue,
}

/// The value a watcher window records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbeValue {
    /// `a = (a + sum_c acc_c) / classes`, one accumulator per loop (CAFE `distill.py:304-305`).
    Reference,
    /// The probe accuracy itself.
    Accuracy,
}

impl Default for DynamicConfig {
    fn default() -> Self {
        Self {
            lambda_1: 0.04,
            lambda_2: 0.03,
            window: 10,
            probe_per_class: 128,
            max_outer_steps: 100,
            max_inner_epochs: 100,
            probe: ProbeDraw::Fresh,
            probe_value: ProbeValue::Reference,
        }
    }
}

impl DynamicConfig {
    fn validate(&self) -> Result<()> {
        for (name, v) in [("lambda_1", self.lambda_1), ("lambda_2", self.lambda_2)] {
            if !(0.0..=1.0).contains(&v) {
                return Err(Error::invalid(format!("scheduler.{name}"), v, "must be in [0, 1]"));
            }
        }
        for (name, v) in [
            ("window", self.window),
            ("probe_per_class", self.probe_per_class),
            ("max_outer_steps", self.max_outer_steps),
            ("max_inner_epochs", self.max_inner_epochs),
        ] {
            if v == 0 {
                return Err(Error::invalid(format!("scheduler.{name}"), 0, "must be at least 1"));
            }
        }
        Ok(())
    }
}

/// A fixed-length window of recent values.
struct Window {
    values: VecDeque<f64>,
    len: usize,
}

impl Window {
    fn new(len: usize) -> Self {
        Self {
            values: VecDeque::with_capacity(len),
            len,
        }
    }
    fn push(&mut self, v: f64) {
        if self.values.len() == self.len {
            self.values.pop_front();
        }
        self.values.push_back(v);
    }
    /// `max - min` once full, None before.
    fn range(&self) -> Option<f64> {
        (self.values.len() == self.len).then(|| {
            let max = self.values.iter().copied().fold(f64::MIN, f64::max);
            let min = self.values.iter().copied().fold(f64::MAX, f64::min);
            max - min
        })
    }
}

pub struct Dynamic {
    config: DynamicConfig,
}

/// One watcher: its window and, for the reference's value, its accumulator.
struct Watcher {
    window: Window,
    accumulated: f64,
}

impl Watcher {
    fn new(len: usize) -> Self {
        Self {
            window: Window::new(len),
            accumulated: 0.0,
        }
    }
}

impl Dynamic {
    pub fn new(config: DynamicConfig) -> Result<Self> {
        config.validate()?;
        Ok(Self { config })
    }

    /// Probes the network and records the watched value in `watcher`; returns the window's
    /// range once it is full.
    fn watch(
        &self,
        bilevel: &mut dyn BilevelLoop,
        watcher: &mut Watcher,
        report: &mut IterationReport,
    ) -> Result<Option<f64>> {
        let acc = bilevel.probe_accuracy(self.config.probe_per_class, self.config.probe)?;
        report.probe_accuracies.push(acc);
        let value = match self.config.probe_value {
            ProbeValue::Accuracy => acc,
            ProbeValue::Reference => {
                // distill.py:304-305: acc_test += per-class accuracy for every class, then
                // acc_test /= num_classes, so the previous value is divided by the classes too.
                let classes = bilevel.classes() as f64;
                watcher.accumulated = (watcher.accumulated + acc * classes) / classes;
                watcher.accumulated
            }
        };
        watcher.window.push(value);
        Ok(watcher.window.range())
    }
}

impl Scheduler for Dynamic {
    fn run_iteration(&mut self, bilevel: &mut dyn BilevelLoop) -> Result<IterationReport> {
        let cfg = self.config.clone();
        let mut report = IterationReport::default();
        // distill.py:237-239: a fresh outer watcher (and accumulator) every iteration.
        let mut outer = Watcher::new(cfg.window);
        loop {
            report.last_loss = bilevel.outer_step()?;
            report.outer_steps += 1;
            if self
                .watch(bilevel, &mut outer, &mut report)?
                .is_some_and(|r| r < cfg.lambda_1)
            {
                // distill.py:309-313: the window fires and the iteration ends (the reference's
                // reset of its accumulator is the fresh watcher of the next iteration).
                break;
            }
            if report.outer_steps >= cfg.max_outer_steps {
                report.capped = true;
                break;
            }
            // distill.py:323-326: a fresh inner watcher (and accumulator) at every inner loop.
            let mut inner = Watcher::new(cfg.window);
            let mut epochs = 0;
            report.inner_loops += 1;
            loop {
                bilevel.inner_epoch()?;
                report.inner_epochs += 1;
                epochs += 1;
                // distill.py:340-346: the window fires, the inner loop ends (its reset is the
                // fresh watcher of the next inner loop).
                if self
                    .watch(bilevel, &mut inner, &mut report)?
                    .is_some_and(|r| r > cfg.lambda_2)
                {
                    break;
                }
                if epochs >= cfg.max_inner_epochs {
                    report.capped = true;
                    report.inner_loops_capped += 1;
                    break;
                }
            }
        }
        Ok(report)
    }
}

register_scheduler!(
    "dynamic",
    "CAFE's accuracy watchers: loops end when probe accuracy settles (lambda_1) or moves (lambda_2)",
    DynamicConfig,
    |config: DynamicConfig| -> Result<Box<dyn Scheduler>> { Ok(Box::new(Dynamic::new(config)?)) }
);
