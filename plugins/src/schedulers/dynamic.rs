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
//! The reference accumulates its probe value as `a_k = a_(k-1) / 10 + accuracy` and never
//! resets it; `reference_probe = true` reproduces that, the default watches plain accuracy.

use std::collections::VecDeque;

use cafe_framework::traits::scheduler::{BilevelLoop, IterationReport, Scheduler};
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
    /// Watch the reference's accumulated value `a_k = a_(k-1)/10 + acc` instead of accuracy.
    pub reference_probe: bool,
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
            reference_probe: false,
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
    /// The reference's accumulated probe value, kept across iterations as it does.
    accumulated: f64,
}

impl Dynamic {
    pub fn new(config: DynamicConfig) -> Result<Self> {
        config.validate()?;
        Ok(Self {
            config,
            accumulated: 0.0,
        })
    }

    fn watch(&mut self, bilevel: &mut dyn BilevelLoop, report: &mut IterationReport) -> Result<f64> {
        let acc = bilevel.probe_accuracy(self.config.probe_per_class)?;
        report.probe_accuracies.push(acc);
        if self.config.reference_probe {
            self.accumulated = self.accumulated / 10.0 + acc;
            Ok(self.accumulated)
        } else {
            Ok(acc)
        }
    }
}

impl Scheduler for Dynamic {
    fn run_iteration(&mut self, bilevel: &mut dyn BilevelLoop) -> Result<IterationReport> {
        let cfg = self.config.clone();
        let mut report = IterationReport::default();
        let mut outer_window = Window::new(cfg.window);
        loop {
            report.last_loss = bilevel.outer_step()?;
            report.outer_steps += 1;
            let v = self.watch(bilevel, &mut report)?;
            outer_window.push(v);
            if outer_window.range().is_some_and(|r| r < cfg.lambda_1) {
                break;
            }
            if report.outer_steps >= cfg.max_outer_steps {
                report.capped = true;
                break;
            }
            let mut inner_window = Window::new(cfg.window);
            let mut epochs = 0;
            loop {
                bilevel.inner_epoch()?;
                report.inner_epochs += 1;
                epochs += 1;
                let v = self.watch(bilevel, &mut report)?;
                inner_window.push(v);
                if inner_window.range().is_some_and(|r| r > cfg.lambda_2) {
                    break;
                }
                if epochs >= cfg.max_inner_epochs {
                    report.capped = true;
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
