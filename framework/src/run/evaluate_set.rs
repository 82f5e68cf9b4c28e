//! Evaluating a set that no cafe-lab run saved: another tool's `.pt` file (`cafe-lab evaluate
//! --synthetic FILE.pt`) or images and labels held in memory (Python's `cafe_lab.evaluate`).
//! Both go through the same plan and [`Evaluator`](crate::eval::Evaluator) as `evaluate` of a
//! saved set; results.json's `notes` say what was assumed about the set.

use std::path::Path;
use std::time::Instant;

use serde_json::json;

use crate::config::{ConfigBuilder, RunConfig, Select};
use crate::metrics::Storage;
use crate::output::write_json;
use crate::pt::{read_pt_set, PtSources};
use crate::synthetic::SyntheticSet;
use crate::Result;

use super::commands::{load_dataset, on_root, prepare_out, publish, RunOptions};
use super::foreign::{import_set, ForeignSet, ImportOptions};
use super::resolve::resolve;
use super::results::{peak_rss_mib, Results};

/// What an evaluation of a foreign set returns: the results (also in results.json) and the
/// set as cafe-lab holds it (class-major, in the dataset's space), e.g. to save it.
pub struct ForeignEvaluation {
    pub results: Results,
    pub set: SyntheticSet,
}

/// `cafe-lab evaluate --synthetic FILE.pt`: reads the set in one of the layouts of
/// [`crate::pt::layouts`] and evaluates it. Without an `out`, the results go beside the file,
/// in `evaluate-seed<S>/`.
pub fn run_evaluate_pt(
    settings: &ConfigBuilder,
    path: &Path,
    sources: &PtSources,
    import: &ImportOptions,
    opts: RunOptions,
) -> Result<ForeignEvaluation> {
    // The file first: a missing or malformed one is refused before the dataset is loaded.
    let set = ForeignSet::from_pt(read_pt_set(path, sources)?, path)?;
    let mut config = config_for(settings, &set)?;
    if config.out.is_none() {
        let dir = path.parent().unwrap_or(Path::new("."));
        config.out = Some(dir.join(format!("evaluate-seed{}", config.seed)));
    }
    evaluate_foreign(config, set, import, opts)
}

/// Evaluates `set` on the dataset `settings` name under their protocol, as `evaluate`
/// evaluates a saved set; `out` receives config.json and results.json.
pub fn run_evaluate_foreign(
    settings: &ConfigBuilder,
    set: ForeignSet,
    import: &ImportOptions,
    opts: RunOptions,
) -> Result<ForeignEvaluation> {
    let config = config_for(settings, &set)?;
    evaluate_foreign(config, set, import, opts)
}

/// The settings with `ipc` the set's stored images per class, so that a protocol's variants
/// for that ipc apply (as for a set whose file says its ipc).
fn config_for(settings: &ConfigBuilder, set: &ForeignSet) -> Result<RunConfig> {
    let classes = settings.build()?.dataset.classes();
    let ipc = (set.dims[0] / classes.max(1)).max(1);
    let mut settings = settings.clone();
    settings.merge_from("the set's images per class", &json!({ "ipc": ipc }));
    settings.build()
}

fn evaluate_foreign(
    mut config: RunConfig,
    set: ForeignSet,
    import: &ImportOptions,
    opts: RunOptions,
) -> Result<ForeignEvaluation> {
    let started = Instant::now();
    config.eval.every = 0;
    config.eval.select = Select::Final;
    let run = resolve(&config)?;
    let ds = load_dataset(&run.config, opts.quiet())?;
    let storage: Storage = set.storage.clone();
    let (syn, notes, stored_ipc) = import_set(set, &ds, import, &run.device)?;
    if !opts.quiet() {
        notes.iter().for_each(|n| eprintln!("note: {n}"));
    }
    let comm = opts.comm.as_ref();
    on_root(comm, || {
        prepare_out(&run.out, opts.force)?;
        write_json(&run.out.join("config.json"), &run.resolved_json)
    })?;
    let mut evaluator = run.evaluator(&ds, stored_ipc, opts.quiet(), comm);
    evaluator.interrupt = opts.interrupt;
    let evaluated = evaluator.synthetic_set(&syn, &run.out)?;
    let results = Results {
        command: "evaluate".into(),
        dataset: ds.name.clone(),
        ipc: stored_ipc,
        notes,
        evaluations: evaluated.evaluations,
        condensation: None,
        metrics: evaluated.metrics,
        storage: Some(storage),
        seconds: Some(started.elapsed().as_secs_f64()),
        peak_rss_mib: peak_rss_mib(),
        kd: evaluated.kd,
        ..Results::default()
    };
    let results = publish(&run.out, results, &opts)?;
    Ok(ForeignEvaluation { results, set: syn })
}
