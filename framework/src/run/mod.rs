//! Whole runs, as the CLI offers them: `condense` (the default, and `--resume`), `evaluate` a
//! saved synthetic set (or another tool's `.pt` file, or arrays from Python), the `random`
//! `baseline`, repeated runs, `experts` and `teacher`. Each resolves its
//! configuration once (the evaluation plan included), refuses impossible settings before any
//! work, and writes `config.json` beside its results.

mod commands;
mod evaluate_set;
mod experts;
mod fit_to_dataset;
mod foreign;
mod metadata;
mod repeat;
mod resolve;
mod results;
mod teacher;

pub use commands::{resume_condense, run_baseline, run_condense, run_evaluate, RunOptions};
pub use evaluate_set::{run_evaluate_foreign, run_evaluate_pt, ForeignEvaluation};
pub use experts::run_experts;
pub use foreign::{import_set, ForeignLabels, ForeignSet, ImportOptions};
pub use metadata::{evaluation_base, set_metadata, SET_FORMAT};
pub use repeat::{
    aggregate, is_repeated_run, repeat_seeds, repeat_table, run_repeated, Aggregate, RepeatResults, RunEntry,
    REPEAT_COMMAND,
};
pub use resolve::{open_device, parse_device, resolve, ResolvedRun};
pub use results::{markdown_table, metrics_table, peak_rss_mib, print_table, CondensationSummary, Results};
pub use teacher::{run_teacher, TeacherConfig, TeacherSummary};
