//! `cafe-lab report RUNS...`: one markdown table and one standalone HTML page with plots across
//! run folders (single or repeated runs), refusing runs that do not compare.

mod html;
mod load;
mod plots;
mod table;

use std::path::PathBuf;

use anyhow::Result;
use cafe_framework::data::DatasetKind;
use cafe_framework::output::write_atomic;
use clap::Args;

pub use html::{base64, escape};
pub use load::{load_record, load_records, RunRecord};
pub use plots::{RANDOM_COLOUR, RUN_COLOURS};
pub use table::{markdown, HEADERS};

#[derive(Debug, Args, Clone)]
pub struct ReportArgs {
    /// Run folders (of condense, evaluate, baseline, or a repeated run with --runs).
    #[arg(required = true, value_name = "RUN")]
    pub runs: Vec<PathBuf>,
    /// Where report.md and report.html go.
    #[arg(long, default_value = "report")]
    pub out: PathBuf,
    /// No lines on stdout.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Writes `report.md` and `report.html` into `args.out`.
pub fn run_report(args: &ReportArgs) -> Result<()> {
    let records = load_records(&args.runs)?;
    let md = markdown(&records);
    let class_names = DatasetKind::from_name(&records[0].dataset)
        .map(|k| k.class_names())
        .unwrap_or_default();
    let plots = vec![
        html::Plot {
            id: "plot-curve",
            title: "Validation accuracy against iteration",
            svg: plots::curve_svg(&records)?,
            missing: "No run recorded a curve: condense with --eval-every N.",
        },
        html::Plot {
            id: "plot-loss",
            title: "Matching loss against iteration",
            svg: plots::loss_svg(&records)?,
            missing: "No condensation among these runs.",
        },
        html::Plot {
            id: "plot-archs",
            title: "Accuracy per architecture",
            svg: plots::arch_bars_svg(&records)?,
            missing: "No evaluation among these runs.",
        },
        html::Plot {
            id: "plot-classes",
            title: "Accuracy per class",
            svg: plots::class_bars_svg(&records, &class_names)?,
            missing: "No per-class accuracy recorded (runs from before cafe-lab recorded it).",
        },
    ];
    let page = html::page(&records, &plots)?;
    write_atomic(&args.out.join("report.md"), md.as_bytes())?;
    write_atomic(&args.out.join("report.html"), page.as_bytes())?;
    if !args.quiet {
        println!("{md}");
        println!(
            "wrote {} and {}",
            args.out.join("report.md").display(),
            args.out.join("report.html").display()
        );
    }
    Ok(())
}
