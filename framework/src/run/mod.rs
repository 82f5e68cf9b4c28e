//! Whole runs, as the CLI offers them: `condense` (the default, and `--resume`), `evaluate` a
//! saved synthetic set, and the `random` `baseline`. Each resolves its configuration once,
//! refuses impossible settings before any work, and writes `config.json` beside its results.

mod commands;
mod evaluation;
mod fair_metrics;
mod kd;
mod metadata;
mod notes;
mod repeat;
mod resolve;
mod results;
mod validation;

pub use commands::{resume_condense, run_baseline, run_condense, run_evaluate, RunOptions};
pub use evaluation::{eval_mode_archs, eval_recipes, reference_eval_augment, EvalRecipe};
pub use fair_metrics::WHOLE_SET;
pub use kd::{KdSummary, TEACHER_FILE};
pub use metadata::{evaluation_base, set_metadata, SET_FORMAT};
pub use repeat::{
    aggregate, is_repeated_run, repeat_seeds, repeat_table, run_repeated, Aggregate, RepeatResults, RunEntry,
    REPEAT_COMMAND,
};
pub use resolve::{parse_device, resolve, ResolvedRun};
pub use results::{markdown_table, metrics_table, peak_rss_mib, print_table, CondensationSummary, Results};
pub use validation::{Selection, ValPoint, SELECT_RULES};
