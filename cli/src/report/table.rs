//! The report's table: one row per run folder and evaluation architecture, with the synthetic
//! set's accuracy pooled over every network of every run, its 95 % confidence interval, the
//! baselines, DD-Ranking's metrics, storage, time and memory.

use cafe_framework::eval::WHOLE_SET;
use cafe_framework::metrics::{FairMetrics, MetricSummary};

use super::load::RunRecord;

/// Column headers of the table.
pub const HEADERS: [&str; 17] = [
    "run",
    "method",
    "protocol",
    "ipc",
    "runs x nets",
    "architecture",
    "accuracy %",
    "95 % CI",
    "random %",
    "whole set %",
    "HLR",
    "IOR",
    "LRS",
    "ARS",
    "storage (bytes)",
    "seconds per run",
    "peak MiB",
];

fn pct(m: f64, s: f64) -> String {
    format!("{:.2} +- {:.2}", 100.0 * m, 100.0 * s)
}

/// The table's cells, one row per (run folder, architecture of its main set).
pub fn table_rows(records: &[RunRecord]) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for r in records {
        // The set the run is about: `synthetic`, or `random` for a baseline run.
        let main = if r.command == "baseline" { "random" } else { "synthetic" };
        for row in r.rows().into_iter().filter(|x| x.set == main) {
            let s = &row.summary;
            let ci = if s.ci95_low.is_nan() {
                "-".to_string()
            } else {
                format!("[{:.2}, {:.2}]", 100.0 * s.ci95_low, 100.0 * s.ci95_high)
            };
            let other = |set: &str| {
                r.row(set, &row.arch)
                    .map_or("-".into(), |x| pct(x.summary.mean, x.summary.std))
            };
            let metric = |pick: fn(&FairMetrics) -> &MetricSummary| {
                r.metric(&row.arch, pick).map_or("-".into(), |m| pct(m.mean, m.std))
            };
            let whole = r
                .metric(&row.arch, |m| &m.whole_accuracy)
                .map_or_else(|| other(WHOLE_SET), |m| pct(m.mean, m.std));
            rows.push(vec![
                r.label.clone(),
                r.method.clone(),
                r.protocol.clone(),
                r.ipc.to_string(),
                format!("{} x {}", r.runs.len(), s.n / r.runs.len().max(1)),
                row.arch.clone(),
                pct(s.mean, s.std),
                ci,
                if main == "random" { "-".into() } else { other("random") },
                whole,
                metric(|m| &m.hard_label_recovery),
                metric(|m| &m.improvement_over_random),
                metric(|m| &m.label_robust_score),
                metric(|m| &m.augmentation_robust_score),
                r.runs[0]
                    .storage
                    .as_ref()
                    .map_or("-".into(), |st| st.total_bytes.to_string()),
                r.seconds().map_or("-".into(), |x| format!("{x:.1}")),
                r.peak_rss_mib().map_or("-".into(), |x| format!("{x:.0}")),
            ]);
        }
    }
    rows
}

/// The table as markdown, with a line saying what the numbers are.
pub fn markdown(records: &[RunRecord]) -> String {
    let mut out = format!(
        "# cafe-lab report: {} on {}\n\nTest accuracy (%), mean +- std over all networks of all runs; 95 % CI of \
         the mean (Student's t). HLR, IOR, LRS, ARS: DD-Ranking's metrics (%), where measured (`--metrics`).\n\n| {} |\n|{}\n",
        records.len(),
        records.first().map_or("", |r| r.dataset.as_str()),
        HEADERS.join(" | "),
        "---|".repeat(HEADERS.len())
    );
    for row in table_rows(records) {
        out.push_str(&format!("| {} |\n", row.join(" | ")));
    }
    out
}
