//! The condensation engine: the bi-level loop of DESIGN.md's skeleton, driven by a scheduler.

mod bilevel;
mod condense;

pub use bilevel::IterationLoop;

pub use condense::{condense, AfterIteration, Components, CondenseOutcome, CondenseSettings, Progress, RunControl};
