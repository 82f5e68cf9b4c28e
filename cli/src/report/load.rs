//! Reading run folders for a report: a single run (condense, evaluate, baseline) or a repeated
//! one (`--runs`, whose seeds are read from their own folders), and refusing runs that do not
//! compare (other dataset, test set or evaluation recipe).

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use cafe_framework::eval::Evaluation;
use cafe_framework::metrics::{FairMetrics, MetricSummary, Storage, Summary};
use cafe_framework::run::REPEAT_COMMAND;
use serde_json::Value;

/// One point of a validation curve (`--eval-every`).
#[derive(Debug, Clone, PartialEq)]
pub struct CurvePoint {
    pub iteration: usize,
    pub accuracy: f64,
}

/// One condensation (or evaluation) and what it recorded.
#[derive(Debug, Clone)]
pub struct SingleRun {
    pub dir: PathBuf,
    pub seed: u64,
    pub evaluations: Vec<Evaluation>,
    pub metrics: Vec<FairMetrics>,
    pub storage: Option<Storage>,
    pub seconds: Option<f64>,
    pub peak_rss_mib: Option<f64>,
    /// The matching loss after each iteration.
    pub losses: Vec<f64>,
    /// Validation accuracy during condensation.
    pub curve: Vec<CurvePoint>,
    /// synthetic.png, when the run wrote one.
    pub grid: Option<PathBuf>,
}

/// A folder given to the report: one run, or the seeds of a repeated run.
#[derive(Debug, Clone)]
pub struct RunRecord {
    /// How the report names it: the folder's name (its path when two names clash).
    pub label: String,
    pub dir: PathBuf,
    pub command: String,
    pub dataset: String,
    pub ipc: usize,
    pub method: String,
    pub protocol: String,
    pub runs: Vec<SingleRun>,
}

/// Pooled numbers of one (set, architecture) of a record.
#[derive(Debug, Clone)]
pub struct Row {
    pub set: String,
    pub arch: String,
    pub summary: Summary,
    pub epochs: usize,
    pub augment: String,
    pub test_images: usize,
    pub per_class: Vec<f64>,
}

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", path.display()))
}

fn field<T: serde::de::DeserializeOwned + Default>(v: &Value, key: &str, path: &Path) -> Result<T> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(T::default()),
        Some(x) => serde_json::from_value(x.clone())
            .with_context(|| format!("{}: '{key}' does not have the expected form", path.display())),
    }
}

fn load_single(dir: &Path) -> Result<(SingleRun, Value, Value)> {
    let results_path = dir.join("results.json");
    if !results_path.exists() {
        bail!(
            "{}: no results.json there; a report reads finished run folders (of condense, evaluate, \
             baseline, or a repeated run)",
            dir.display()
        );
    }
    let results = read_json(&results_path)?;
    let config = if dir.join("config.json").exists() {
        read_json(&dir.join("config.json"))?
    } else {
        Value::Null
    };
    let losses = results["condensation"]["per_iteration"]
        .as_array()
        .map(|a| a.iter().filter_map(|r| r["last_loss"].as_f64()).collect())
        .unwrap_or_default();
    let curve = results["validation_curve"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| {
                    Some(CurvePoint {
                        iteration: p["iteration"].as_u64()? as usize,
                        accuracy: p["mean"].as_f64()?,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let grid = dir.join("synthetic.png");
    let run = SingleRun {
        dir: dir.to_path_buf(),
        seed: config["seed"].as_u64().unwrap_or(0),
        evaluations: field(&results, "evaluations", &results_path)?,
        metrics: field(&results, "metrics", &results_path)?,
        storage: field(&results, "storage", &results_path)?,
        seconds: results["seconds"]
            .as_f64()
            .or_else(|| results["condensation"]["seconds_total"].as_f64()),
        peak_rss_mib: results["peak_rss_mib"].as_f64(),
        losses,
        curve,
        grid: grid.exists().then_some(grid),
    };
    Ok((run, results, config))
}

/// Reads a run folder.
pub fn load_record(dir: &Path) -> Result<RunRecord> {
    let (first, results, config) = load_single(dir)?;
    let command = results["command"].as_str().unwrap_or("").to_string();
    let (runs, config) = if command == REPEAT_COMMAND {
        let entries = results["runs"]
            .as_array()
            .ok_or_else(|| anyhow!("{}: a repeated run's results.json lists no 'runs'", dir.display()))?;
        let mut runs = Vec::new();
        let mut config = Value::Null;
        for e in entries {
            let sub = e["dir"]
                .as_str()
                .ok_or_else(|| anyhow!("{}: a run entry has no 'dir'", dir.display()))?;
            let (run, _, c) = load_single(&dir.join(sub))
                .with_context(|| format!("reading seed folder '{sub}' of the repeated run {}", dir.display()))?;
            if config.is_null() {
                config = c;
            }
            runs.push(run);
        }
        (runs, config)
    } else {
        (vec![first], config)
    };
    let text = |v: &Value| v.as_str().map(str::to_string);
    Ok(RunRecord {
        label: dir
            .file_name()
            .map_or_else(|| dir.display().to_string(), |n| n.to_string_lossy().into_owned()),
        dir: dir.to_path_buf(),
        method: match command.as_str() {
            "baseline" => "random".into(),
            _ => text(&config["matcher"]["name"]).unwrap_or_else(|| "?".into()),
        },
        protocol: text(&config["protocol"]).unwrap_or_else(|| "none".into()),
        dataset: text(&results["dataset"]).unwrap_or_default(),
        ipc: results["ipc"].as_u64().unwrap_or(0) as usize,
        command,
        runs,
    })
}

impl RunRecord {
    /// Every (set, architecture) of the first run, pooled over all runs.
    pub fn rows(&self) -> Vec<Row> {
        self.runs[0]
            .evaluations
            .iter()
            .map(|ev| {
                let same: Vec<&Evaluation> = self
                    .runs
                    .iter()
                    .filter_map(|r| r.evaluations.iter().find(|e| e.set == ev.set && e.arch == ev.arch))
                    .collect();
                let pooled: Vec<f64> = same.iter().flat_map(|e| e.accuracies.iter().copied()).collect();
                let per_class =
                    if !ev.per_class.is_empty() && same.iter().all(|e| e.per_class.len() == ev.per_class.len()) {
                        (0..ev.per_class.len())
                            .map(|c| same.iter().map(|e| e.per_class[c]).sum::<f64>() / same.len() as f64)
                            .collect()
                    } else {
                        Vec::new()
                    };
                Row {
                    set: ev.set.clone(),
                    arch: ev.arch.clone(),
                    summary: Summary::of(&pooled),
                    epochs: ev.epochs,
                    augment: ev.augment.clone(),
                    test_images: ev.test_images,
                    per_class,
                }
            })
            .collect()
    }

    /// The row of `set` on `arch`.
    pub fn row(&self, set: &str, arch: &str) -> Option<Row> {
        self.rows().into_iter().find(|r| r.set == set && r.arch == arch)
    }

    /// DD-Ranking's metric `pick` on `arch`, pooled over the runs.
    pub fn metric(&self, arch: &str, pick: fn(&FairMetrics) -> &MetricSummary) -> Option<MetricSummary> {
        let values: Vec<f64> = self
            .runs
            .iter()
            .filter_map(|r| r.metrics.iter().find(|m| m.arch == arch))
            .flat_map(|m| pick(m).values.iter().copied())
            .collect();
        (!values.is_empty()).then(|| MetricSummary::of(values))
    }

    /// Seconds per run (mean over runs).
    pub fn seconds(&self) -> Option<f64> {
        let s: Vec<f64> = self.runs.iter().filter_map(|r| r.seconds).collect();
        (!s.is_empty()).then(|| s.iter().sum::<f64>() / s.len() as f64)
    }

    /// The largest peak memory of its runs.
    pub fn peak_rss_mib(&self) -> Option<f64> {
        self.runs.iter().filter_map(|r| r.peak_rss_mib).reduce(f64::max)
    }
}

/// Reads every folder and checks that they compare: the same dataset, the same test set size,
/// and, for each set and architecture they share, the same evaluation recipe (epochs,
/// augmentation).
pub fn load_records(dirs: &[PathBuf]) -> Result<Vec<RunRecord>> {
    if dirs.is_empty() {
        bail!("a report needs at least one run folder");
    }
    let mut records: Vec<RunRecord> = Vec::new();
    for dir in dirs {
        if let Some(same) = records.iter().find(|r| r.dir == *dir) {
            bail!("{} is given twice; each run folder once", same.dir.display());
        }
        records.push(load_record(dir)?);
    }
    // Labels: folder names, or whole paths where names clash.
    let names: Vec<String> = records.iter().map(|r| r.label.clone()).collect();
    for r in &mut records {
        if names.iter().filter(|n| **n == r.label).count() > 1 {
            r.label = r.dir.display().to_string();
        }
    }
    check_compatible(&records)?;
    Ok(records)
}

fn check_compatible(records: &[RunRecord]) -> Result<()> {
    let first = &records[0];
    for r in &records[1..] {
        if !r.dataset.eq_ignore_ascii_case(&first.dataset) {
            bail!(
                "runs on different datasets do not compare: {} is on {}, {} on {}; make one report per dataset",
                first.label,
                first.dataset,
                r.label,
                r.dataset
            );
        }
    }
    let mut seen: Vec<(String, Row, String)> = Vec::new();
    for r in records {
        for row in r.rows() {
            let key = format!("{} on {}", row.set, row.arch);
            if let Some((_, other, label)) = seen.iter().find(|(k, _, _)| *k == key) {
                if other.test_images != row.test_images {
                    bail!(
                        "{label} tests on {} images and {} on {} (--test-limit): accuracies on different test \
                         sets do not compare; re-evaluate one with `cafe-lab evaluate`",
                        other.test_images,
                        r.label,
                        row.test_images
                    );
                }
                if other.epochs != row.epochs || other.augment != row.augment {
                    bail!(
                        "{label} evaluates {key} with {} epochs and augmentation {}, {} with {} epochs and {}: \
                         different evaluation recipes do not compare; re-evaluate one with `cafe-lab evaluate \
                         --synthetic ... --eval-epochs N --eval-augment A`",
                        other.epochs,
                        other.augment,
                        r.label,
                        row.epochs,
                        row.augment
                    );
                }
            } else {
                seen.push((key, row.clone(), r.label.clone()));
            }
        }
    }
    Ok(())
}
