//! Whole runs, as the CLI offers them: `condense` (the default, and `--resume`), `evaluate` a
//! saved synthetic set, and the `random` `baseline`. Each resolves its configuration once,
//! refuses impossible settings before any work, and writes `config.json` beside its results.

mod commands;
mod evaluation;
mod metadata;
mod notes;
mod resolve;
mod results;

pub use commands::{resume_condense, run_baseline, run_condense, run_evaluate, RunOptions};
pub use evaluation::{eval_mode_archs, eval_recipes, reference_eval_augment, EvalRecipe};
pub use metadata::{evaluation_base, set_metadata, SET_FORMAT};
pub use resolve::{parse_device, resolve, ResolvedRun};
pub use results::{markdown_table, print_table, CondensationSummary, Results};
