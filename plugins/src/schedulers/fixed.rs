//! `fixed`: DC's schedule (Zhao et al., ICLR 2021). Each iteration repeats `outer_loop` times
//! { one matching step; unless it was the last, `inner_loop` epochs of training on S }.
//!
//! `(outer_loop, inner_loop)` by ipc, from the reference: 1 -> (1, 1), 10 -> (10, 50),
//! 20 -> (20, 25), 30 -> (30, 20), 40 -> (40, 15), 50 -> (50, 10). The reference exits on any
//! other ipc; here every ipc works, by this documented rule:
//! - `outer_loop = ipc` (the table's own pattern);
//! - `inner_loop`: for 1 < ipc < 10, 50 (the ipc-10 value); between two table entries, linear
//!   interpolation of their inner values, rounded; above 50, `max(1, round(500 / ipc))`
//!   (the table's ~500/ipc trend).
//!
//! Both can be set explicitly in the config.

use cafe_framework::traits::scheduler::{BilevelLoop, IterationReport, Scheduler};
use cafe_framework::{register_scheduler, Error, Result};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FixedConfig {
    /// Outer (matching) steps per iteration; None follows the ipc rule.
    pub outer_loop: Option<usize>,
    /// Inner epochs after each outer step but the last; None follows the ipc rule.
    pub inner_loop: Option<usize>,
}

/// DC's published (ipc, outer_loop, inner_loop) table.
const TABLE: [(usize, usize, usize); 6] = [
    (1, 1, 1),
    (10, 10, 50),
    (20, 20, 25),
    (30, 30, 20),
    (40, 40, 15),
    (50, 50, 10),
];

/// `(outer_loop, inner_loop)` for `ipc` by the rule in the module docs.
pub fn loops_for_ipc(ipc: usize) -> (usize, usize) {
    if let Some(&(_, o, i)) = TABLE.iter().find(|(k, _, _)| *k == ipc) {
        return (o, i);
    }
    let inner = if ipc < 10 {
        50
    } else if ipc > 50 {
        ((500.0 / ipc as f64).round() as usize).max(1)
    } else {
        let hi = TABLE
            .iter()
            .position(|(k, _, _)| *k > ipc)
            .expect("ipc < 50 has a larger entry");
        let (k0, _, i0) = TABLE[hi - 1];
        let (k1, _, i1) = TABLE[hi];
        let t = (ipc - k0) as f64 / (k1 - k0) as f64;
        (i0 as f64 + t * (i1 as f64 - i0 as f64)).round() as usize
    };
    (ipc, inner)
}

pub struct Fixed {
    config: FixedConfig,
}

impl Scheduler for Fixed {
    fn run_iteration(&mut self, bilevel: &mut dyn BilevelLoop) -> Result<IterationReport> {
        let (outer_rule, inner_rule) = loops_for_ipc(bilevel.ipc());
        let outer = self.config.outer_loop.unwrap_or(outer_rule);
        let inner = self.config.inner_loop.unwrap_or(inner_rule);
        let mut report = IterationReport::default();
        for step in 0..outer {
            report.last_loss = bilevel.outer_step()?;
            report.outer_steps += 1;
            if step + 1 == outer {
                break;
            }
            report.inner_loops += 1;
            for _ in 0..inner {
                bilevel.inner_epoch()?;
                report.inner_epochs += 1;
            }
        }
        Ok(report)
    }
}

register_scheduler!(
    "fixed",
    "DC's fixed outer/inner loop counts by ipc (any ipc, by a documented rule)",
    FixedConfig,
    |config: FixedConfig| -> Result<Box<dyn Scheduler>> {
        if config.outer_loop == Some(0) {
            return Err(Error::invalid(
                "scheduler.outer_loop",
                0,
                "at least one outer step per iteration",
            ));
        }
        Ok(Box::new(Fixed { config }))
    }
);
