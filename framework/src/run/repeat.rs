//! Repeated condensations (`--runs K` or `--seeds a,b,c`): the whole condensation and its
//! evaluation once per seed, as the papers' `num_exp` (DatasetCondensation `main.py:19`, 5
//! experiments x 20 networks), each in `OUT/seed<S>/`, and the statistics over all networks of
//! all runs in `OUT/results.json` and `OUT/evaluations.md`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::config::RunConfig;
use crate::eval::Evaluation;
use crate::metrics::{FairMetrics, MetricSummary, Storage, Summary};
use crate::output::{write_atomic, write_json};
use crate::{Error, Result};

use super::commands::{on_root, prepare_out, run_condense, RunOptions};
use super::resolve::resolve;
use super::results::{metrics_table, peak_rss_mib, Results};
use crate::dist::{agree, share};

/// The `command` of a repeated run's results.json, which `cafe-lab report` recognises.
pub const REPEAT_COMMAND: &str = "repeat";

/// One condensation of a repeated run.
#[derive(Debug, Clone, Serialize)]
pub struct RunEntry {
    pub seed: u64,
    /// Its folder, relative to the repeated run's.
    pub dir: String,
    /// Its own evaluations (as in its results.json).
    pub evaluations: Vec<Evaluation>,
}

/// One (set, architecture) over all networks of all runs.
#[derive(Debug, Clone, Serialize)]
pub struct Aggregate {
    pub set: String,
    pub arch: String,
    pub runs: usize,
    /// Statistics over every network of every run (n = runs x networks).
    #[serde(flatten)]
    pub summary: Summary,
    /// The mean of each run, in seed order.
    pub run_means: Vec<f64>,
    pub epochs: usize,
    pub augment: String,
    /// Per-class test accuracy averaged over the runs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub per_class: Vec<f64>,
}

/// results.json of a repeated run.
#[derive(Debug, Clone, Serialize)]
pub struct RepeatResults {
    pub command: String,
    pub dataset: String,
    pub ipc: usize,
    pub seeds: Vec<u64>,
    pub runs: Vec<RunEntry>,
    pub aggregate: Vec<Aggregate>,
    /// DD-Ranking's metrics with each metric's values pooled over the runs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<FairMetrics>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage: Option<Storage>,
    pub seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak_rss_mib: Option<f64>,
}

/// The seeds of `--runs K` (the configured seed and the K - 1 after it) or of `--seeds`.
pub fn repeat_seeds(first: u64, runs: Option<usize>, seeds: &[u64]) -> Result<Vec<u64>> {
    let list: Vec<u64> = match (runs, seeds.is_empty()) {
        (Some(_), false) => {
            return Err(Error::invalid(
                "runs",
                format!("{runs:?} with seeds {seeds:?}"),
                "give either --runs K (seeds S..S+K-1 from --seed S) or --seeds a,b,c, not both",
            ))
        }
        (Some(0), true) => return Err(Error::invalid("runs", 0, "repeat at least one condensation")),
        (Some(k), true) => (0..k as u64).map(|i| first + i).collect(),
        (None, false) => seeds.to_vec(),
        (None, true) => vec![first],
    };
    let distinct: BTreeSet<u64> = list.iter().copied().collect();
    if distinct.len() != list.len() {
        return Err(Error::invalid(
            "seeds",
            format!("{list:?}"),
            "each run needs its own seed: the same seed repeats the same run bit for bit",
        ));
    }
    Ok(list)
}

/// The default folder of a repeated run: `runs/<dataset>-<matcher>-<scheduler>-ipc<N>-runs<K>-seed<first>`.
fn default_out(config: &RunConfig, seeds: &[u64]) -> Result<PathBuf> {
    let run = resolve(config)?;
    let name = run
        .out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = name.rsplit_once("-seed").map_or(name.as_str(), |(s, _)| s);
    Ok(run
        .out
        .with_file_name(format!("{stem}-runs{}-seed{}", seeds.len(), seeds[0])))
}

/// Condenses and evaluates once per seed into `OUT/seed<S>/`, then writes the statistics over
/// all runs into `OUT`.
pub fn run_repeated(config: &RunConfig, seeds: &[u64], opts: RunOptions) -> Result<RepeatResults> {
    if seeds.is_empty() {
        return Err(Error::invalid("seeds", "[]", "repeat at least one condensation"));
    }
    let started = std::time::Instant::now();
    let out = match &config.out {
        Some(out) => out.clone(),
        None => default_out(config, seeds)?,
    };
    let comm = opts.comm.clone();
    let quiet = opts.quiet || comm.rank() != 0;
    on_root(comm.as_ref(), || prepare_out(&out, opts.force))?;
    let all = if comm.size() > 1 && seeds.len() >= comm.size() {
        farm_runs(config, seeds, &out, &opts)?
    } else {
        let mut all = Vec::new();
        for (i, &seed) in seeds.iter().enumerate() {
            if !quiet {
                eprintln!(
                    "run {} of {} (seed {seed}) -> {}",
                    i + 1,
                    seeds.len(),
                    out.join(format!("seed{seed}")).display()
                );
            }
            let results = run_condense(
                &seed_config(config, seed, &out),
                RunOptions {
                    force: true,
                    ..opts.clone()
                },
            )?;
            all.push(results);
        }
        all
    };
    let runs = seeds
        .iter()
        .zip(&all)
        .map(|(&seed, results)| RunEntry {
            seed,
            dir: format!("seed{seed}"),
            evaluations: results.evaluations.clone(),
        })
        .collect();
    let first = &all[0];
    let results = RepeatResults {
        command: REPEAT_COMMAND.into(),
        dataset: first.dataset.clone(),
        ipc: first.ipc,
        seeds: seeds.to_vec(),
        aggregate: aggregate(&all),
        metrics: pooled_metrics(&all),
        storage: first.storage.clone(),
        runs,
        seconds: started.elapsed().as_secs_f64(),
        peak_rss_mib: peak_rss_mib(),
    };
    let table = repeat_table(&results);
    on_root(comm.as_ref(), || {
        write_json(&out.join("results.json"), &results)?;
        write_atomic(&out.join("evaluations.md"), table.as_bytes())
    })?;
    if !quiet {
        println!("\n{table}");
    }
    Ok(results)
}

/// The configuration of the run of `seed`, in `out/seed<S>`.
fn seed_config(config: &RunConfig, seed: u64, out: &Path) -> RunConfig {
    let mut c = config.clone();
    c.seed = seed;
    c.out = Some(out.join(format!("seed{seed}")));
    c
}

/// The runs as a task farm when there are at least as many as ranks: each rank runs its share
/// of the seeds alone, from the first step to the last (a run is the same whichever process
/// runs it), writing its own `seed<S>/` folders; every run's results are gathered in seed
/// order. Fewer runs than ranks run one after another on the whole world instead.
fn farm_runs(config: &RunConfig, seeds: &[u64], out: &Path, opts: &RunOptions) -> Result<Vec<Results>> {
    let comm = opts.comm.as_ref();
    let mine = share(seeds.len(), comm.rank(), comm.size());
    let outcome = seeds[mine]
        .iter()
        .map(|&seed| {
            if !opts.quiet {
                eprintln!(
                    "rank {} of {}: run of seed {seed} -> {}",
                    comm.rank(),
                    comm.size(),
                    out.join(format!("seed{seed}")).display()
                );
            }
            let results = run_condense(
                &seed_config(config, seed, out),
                RunOptions {
                    force: true,
                    quiet: true,
                    comm: crate::dist::solo(),
                    ..opts.clone()
                },
            )?;
            serde_json::to_vec(&results).map_err(|e| Error::Other(format!("results of seed {seed}: {e}")))
        })
        .collect::<Result<Vec<Vec<u8>>>>();
    let mine = agree(comm, outcome)?;
    // One message per rank: its runs' results.json texts, each preceded by its length.
    let mut bytes = Vec::new();
    for m in &mine {
        bytes.extend_from_slice(&(m.len() as u64).to_le_bytes());
        bytes.extend_from_slice(m);
    }
    let mut all = Vec::with_capacity(seeds.len());
    for part in comm.all_gather_bytes(&bytes)? {
        let mut at = 0;
        while at < part.len() {
            let broken = || Error::Other("a rank sent broken run results".into());
            let len =
                u64::from_le_bytes(part.get(at..at + 8).ok_or_else(broken)?.try_into().expect("8 bytes")) as usize;
            let text = part.get(at + 8..at + 8 + len).ok_or_else(broken)?;
            all.push(serde_json::from_slice(text).map_err(|e| Error::Other(format!("a rank's run results: {e}")))?);
            at += 8 + len;
        }
    }
    Ok(all)
}

/// Every (set, architecture) over all runs, in the first run's order.
pub fn aggregate(all: &[Results]) -> Vec<Aggregate> {
    let Some(first) = all.first() else {
        return Vec::new();
    };
    first
        .evaluations
        .iter()
        .map(|ev| {
            let same: Vec<&Evaluation> = all
                .iter()
                .filter_map(|r| r.evaluations.iter().find(|e| e.set == ev.set && e.arch == ev.arch))
                .collect();
            let pooled: Vec<f64> = same.iter().flat_map(|e| e.accuracies.iter().copied()).collect();
            let per_class = if same.iter().all(|e| e.per_class.len() == ev.per_class.len()) {
                (0..ev.per_class.len())
                    .map(|c| same.iter().map(|e| e.per_class[c]).sum::<f64>() / same.len() as f64)
                    .collect()
            } else {
                Vec::new()
            };
            Aggregate {
                set: ev.set.clone(),
                arch: ev.arch.clone(),
                runs: same.len(),
                summary: Summary::of(&pooled),
                run_means: same.iter().map(|e| e.mean).collect(),
                epochs: ev.epochs,
                augment: ev.augment.clone(),
                per_class,
            }
        })
        .collect()
}

/// Each DD-Ranking metric with its per-network values pooled over the runs.
fn pooled_metrics(all: &[Results]) -> Vec<FairMetrics> {
    let Some(first) = all.first() else {
        return Vec::new();
    };
    first
        .metrics
        .iter()
        .map(|m| {
            let same: Vec<&FairMetrics> = all
                .iter()
                .filter_map(|r| r.metrics.iter().find(|x| x.arch == m.arch))
                .collect();
            let pool = |f: fn(&FairMetrics) -> &MetricSummary| {
                MetricSummary::of(same.iter().flat_map(|x| f(x).values.iter().copied()).collect())
            };
            FairMetrics {
                arch: m.arch.clone(),
                lrs_weight: m.lrs_weight,
                ars_weight: m.ars_weight,
                augmentation: m.augmentation.clone(),
                whole_accuracy: pool(|x| &x.whole_accuracy),
                hard_label_recovery: pool(|x| &x.hard_label_recovery),
                improvement_over_random: pool(|x| &x.improvement_over_random),
                label_robust_score: pool(|x| &x.label_robust_score),
                with_aug_score: pool(|x| &x.with_aug_score),
                without_aug_score: pool(|x| &x.without_aug_score),
                augmentation_robust_score: pool(|x| &x.augmentation_robust_score),
            }
        })
        .collect()
}

/// The statistics as markdown: mean +- std and the 95 % confidence interval over all networks
/// of all runs, then each run's mean.
pub fn repeat_table(r: &RepeatResults) -> String {
    let mut out = format!(
        "# {} ipc {}: test accuracy (%) over {} runs (seeds {})\n\n\
         | set | architecture | mean +- std | 95 % CI | networks | per-run means | epochs | augmentation |\n\
         |---|---|---|---|---|---|---|---|\n",
        r.dataset,
        r.ipc,
        r.seeds.len(),
        r.seeds.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
    );
    for a in &r.aggregate {
        let s = &a.summary;
        let ci = if s.ci95_low.is_nan() {
            "-".to_string()
        } else {
            format!("[{:.2}, {:.2}]", 100.0 * s.ci95_low, 100.0 * s.ci95_high)
        };
        let means: Vec<String> = a.run_means.iter().map(|m| format!("{:.2}", 100.0 * m)).collect();
        out.push_str(&format!(
            "| {} | {} | {:.2} +- {:.2} | {ci} | {} | {} | {} | {} |\n",
            a.set,
            a.arch,
            100.0 * s.mean,
            100.0 * s.std,
            s.n,
            means.join(", "),
            a.epochs,
            a.augment
        ));
    }
    if !r.metrics.is_empty() {
        out.push_str(&metrics_table(&r.metrics));
    }
    out
}

/// Whether `dir` holds a repeated run (its results.json says so).
pub fn is_repeated_run(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("results.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .is_some_and(|v| v["command"] == REPEAT_COMMAND)
}
