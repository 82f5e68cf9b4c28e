//! `none`: one outer step per iteration and no inner loop (DM's schedule: the network is
//! fresh every iteration and never trained).

use cafe_framework::traits::scheduler::{BilevelLoop, IterationReport, Scheduler};
use cafe_framework::{register_scheduler, Result};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NoneSchedulerConfig {}

pub struct NoneScheduler;

impl Scheduler for NoneScheduler {
    fn run_iteration(&mut self, bilevel: &mut dyn BilevelLoop) -> Result<IterationReport> {
        let loss = bilevel.outer_step()?;
        Ok(IterationReport {
            outer_steps: 1,
            last_loss: loss,
            ..Default::default()
        })
    }

    fn trains_network(&self) -> bool {
        false
    }
}

register_scheduler!(
    "none",
    "one matching step per iteration, no network training (DM)",
    NoneSchedulerConfig,
    |_c: NoneSchedulerConfig| -> Result<Box<dyn Scheduler>> { Ok(Box::new(NoneScheduler)) }
);
