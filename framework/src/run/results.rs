//! What a run reports: results.json, evaluations.md and the table on stdout.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::eval::{Evaluation, KdSummary, Selection, ValPoint};
use crate::metrics::{FairMetrics, Storage};

use crate::output::{write_atomic, write_json};
use crate::traits::scheduler::IterationReport;
use crate::Result;

/// results.json.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Results {
    pub command: String,
    pub dataset: String,
    pub ipc: usize,
    /// What the run did that its settings do not say (run/notes.rs), e.g. that nothing was
    /// condensed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    pub evaluations: Vec<Evaluation>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub condensation: Option<CondensationSummary>,
    /// DD-Ranking's fair metrics, one entry per evaluation architecture (`--metrics`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<FairMetrics>,
    /// Bytes the synthetic set takes (images, labels, learned extras).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage: Option<Storage>,
    /// Wall time of the whole command (condensation and evaluation), seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
    /// Peak resident memory of the process so far (Linux `VmHWM`), MiB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak_rss_mib: Option<f64>,
    /// Validation accuracy during condensation (`--eval-every`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub validation_curve: Vec<ValPoint>,
    /// Which set was kept (`--select`), when the run evaluated during condensation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selection: Option<Selection>,
    /// The soft-label evaluation's teacher and temperature (`--kd`); its students are the
    /// `synthetic-kd` and `random-kd` evaluations.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kd: Option<KdSummary>,
}

/// The peak resident memory of this process (Linux `/proc/self/status` `VmHWM`) in MiB; None
/// elsewhere.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// What the condensation did, for results.json.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CondensationSummary {
    pub matcher: String,
    pub scheduler: String,
    pub arch: String,
    pub iterations: usize,
    pub seconds_per_iteration_median: f64,
    pub seconds_total: f64,
    pub final_loss: f64,
    pub outer_steps_total: usize,
    pub inner_epochs_total: usize,
    /// Iterations in which a scheduler's hard cap ended a loop.
    pub capped_iterations: usize,
    /// Inner loops in all (between two outer steps), and how many a hard cap ended.
    pub inner_loops_total: usize,
    pub inner_loops_capped_total: usize,
    /// Per iteration: outer steps, inner epochs, capped, last loss.
    pub per_iteration: Vec<IterationReport>,
}

pub(crate) fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len().is_multiple_of(2) {
        (v[m - 1] + v[m]) / 2.0
    } else {
        v[m]
    }
}

/// The evaluations as a markdown table: one row per architecture, one column per set.
pub fn markdown_table(results: &Results) -> String {
    let mut sets: Vec<&str> = Vec::new();
    let mut archs: Vec<&str> = Vec::new();
    for ev in &results.evaluations {
        if !sets.contains(&ev.set.as_str()) {
            sets.push(&ev.set);
        }
        if !archs.contains(&ev.arch.as_str()) {
            archs.push(&ev.arch);
        }
    }
    let mut out = format!(
        "# {} ipc {}: test accuracy (%), mean +- std over networks\n\n| architecture | {} | epochs | augmentation |\n|---|{}---|---|\n",
        results.dataset,
        results.ipc,
        sets.join(" | "),
        "---|".repeat(sets.len())
    );
    for arch in archs {
        let row: Vec<&Evaluation> = results.evaluations.iter().filter(|e| e.arch == arch).collect();
        let cells: Vec<String> = sets
            .iter()
            .map(|s| {
                row.iter()
                    .find(|e| e.set == *s)
                    .map_or("-".to_string(), |e| e.summary().replace(" %", ""))
            })
            .collect();
        let first = row[0];
        out.push_str(&format!(
            "| {arch} | {} | {} | {} |\n",
            cells.join(" | "),
            first.epochs,
            first.augment
        ));
    }
    if !results.metrics.is_empty() {
        out.push_str(&metrics_table(&results.metrics));
    }
    if let Some(kd) = &results.kd {
        out.push_str(&format!(
            "\nSoft labels (-kd sets): teacher {} ({}, {} epochs on {} images), test accuracy {:.2} %, temperature {}.\n",
            kd.teacher.arch,
            kd.teacher.source,
            kd.teacher.epochs,
            kd.teacher.train_images,
            100.0 * kd.teacher.accuracy,
            kd.temperature
        ));
    }
    if let Some(s) = &results.selection {
        let acc = s
            .validation_accuracy
            .map_or(String::new(), |a| format!(", validation accuracy {:.2} %", 100.0 * a));
        out.push_str(&format!(
            "\nKept the set of iteration {} ({}{acc}; validation split of {} images per class).\n",
            s.iteration, s.rule, s.val_per_class
        ));
    }
    if let Some(storage) = &results.storage {
        out.push_str(&format!(
            "\nStorage of the synthetic set: {} bytes.\n",
            storage.total_bytes
        ));
    }
    for note in &results.notes {
        out.push_str(&format!("\nNote: {note}.\n"));
    }
    out
}

/// DD-Ranking's metrics as a markdown table, in percent (mean +- std over networks).
pub fn metrics_table(metrics: &[FairMetrics]) -> String {
    let pct = |m: &crate::metrics::MetricSummary| format!("{:.2} +- {:.2}", 100.0 * m.mean, 100.0 * m.std);
    let mut out = String::from(
        "\nDD-Ranking metrics (%): HLR = whole - synthetic (lower is better), IOR = synthetic - random, \
         LRS and ARS in [0, 100]\n\n| architecture | whole set | HLR | IOR | LRS | ARS | augmentation |\n|---|---|---|---|---|---|---|\n",
    );
    for m in metrics {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            m.arch,
            pct(&m.whole_accuracy),
            pct(&m.hard_label_recovery),
            pct(&m.improvement_over_random),
            pct(&m.label_robust_score),
            pct(&m.augmentation_robust_score),
            m.augmentation
        ));
    }
    out
}

/// Writes results.json and evaluations.md into `out`.
pub(crate) fn write_results(out: &Path, results: &Results) -> Result<()> {
    write_json(&out.join("results.json"), results)?;
    write_atomic(&out.join("evaluations.md"), markdown_table(results).as_bytes())
}

/// Prints the evaluations as a table on stdout.
pub fn print_table(results: &Results) {
    println!("\n{}", markdown_table(results));
}
