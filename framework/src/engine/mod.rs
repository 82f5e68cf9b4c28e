//! The condensation engine: the bi-level loop of DESIGN.md's skeleton, driven by a scheduler.

mod bilevel;
mod condense;

pub use bilevel::IterationLoop;

/// Seed streams of the evaluation and of the random baseline (see `bilevel::stream`).
pub const EVAL_STREAM: u64 = bilevel::stream::EVAL;
pub const BASELINE_STREAM: u64 = bilevel::stream::BASELINE;
pub use condense::{condense, AfterIteration, Components, CondenseOutcome, CondenseSettings, Progress, RunControl};
