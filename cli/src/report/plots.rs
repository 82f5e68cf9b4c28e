//! The report's plots, drawn by `plotters` as SVG (text stays `<text>`, so the browser sets it
//! in its own fonts and no font file is needed): accuracy against iteration, matching loss
//! against iteration, accuracy per architecture, accuracy per class.

use anyhow::{anyhow, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::load::RunRecord;

/// Colours of the run folders, in order (matplotlib's tab10 without its grey); the random
/// baseline is always grey.
pub const RUN_COLOURS: [RGBColor; 9] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];
pub const RANDOM_COLOUR: RGBColor = RGBColor(127, 127, 127);

const SIZE: (u32, u32) = (760, 380);

pub fn colour(i: usize) -> RGBColor {
    RUN_COLOURS[i % RUN_COLOURS.len()]
}

fn err<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow!("drawing a plot: {e}")
}

/// One line of a line plot.
struct Line {
    name: String,
    colour: RGBColor,
    points: Vec<(f64, f64)>,
}

fn line_plot(title: &str, y_desc: &str, lines: &[Line], y_range: Option<(f64, f64)>) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let all = lines.iter().flat_map(|l| l.points.iter());
        let x_max = all.clone().map(|p| p.0).fold(1.0f64, f64::max);
        let (y_lo, y_hi) = y_range.unwrap_or_else(|| {
            let lo = all.clone().map(|p| p.1).fold(f64::INFINITY, f64::min);
            let hi = all.clone().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
            let pad = ((hi - lo) * 0.05).max(1e-6);
            (lo - pad, hi + pad)
        });
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..x_max, y_lo..y_hi)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("iteration")
            .y_desc(y_desc)
            .draw()
            .map_err(err)?;
        for l in lines {
            let c = l.colour;
            chart
                .draw_series(LineSeries::new(l.points.iter().copied(), c.stroke_width(2)))
                .map_err(err)?
                .label(l.name.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
            chart
                .draw_series(l.points.iter().map(|&p| Circle::new(p, 3, c.filled())))
                .map_err(err)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

fn run_name(r: &RunRecord, k: usize) -> String {
    if r.runs.len() > 1 {
        format!("{} seed {}", r.label, r.runs[k].seed)
    } else {
        r.label.clone()
    }
}

/// Validation accuracy (%) against iteration of every run that recorded it (`--eval-every`).
pub fn curve_svg(records: &[RunRecord]) -> Result<Option<String>> {
    let mut lines = Vec::new();
    for (i, r) in records.iter().enumerate() {
        for (k, run) in r.runs.iter().enumerate().filter(|(_, run)| !run.curve.is_empty()) {
            lines.push(Line {
                name: run_name(r, k),
                colour: colour(i),
                points: run
                    .curve
                    .iter()
                    .map(|p| (p.iteration as f64, 100.0 * p.accuracy))
                    .collect(),
            });
        }
    }
    if lines.is_empty() {
        return Ok(None);
    }
    line_plot(
        "validation accuracy during condensation",
        "accuracy %",
        &lines,
        Some((0.0, 100.0)),
    )
    .map(Some)
}

/// The matching loss against iteration of every condensation.
pub fn loss_svg(records: &[RunRecord]) -> Result<Option<String>> {
    let mut lines = Vec::new();
    for (i, r) in records.iter().enumerate() {
        for (k, run) in r.runs.iter().enumerate().filter(|(_, run)| !run.losses.is_empty()) {
            lines.push(Line {
                name: run_name(r, k),
                colour: colour(i),
                points: run
                    .losses
                    .iter()
                    .enumerate()
                    .filter(|(_, l)| l.is_finite())
                    .map(|(it, &l)| ((it + 1) as f64, l))
                    .collect(),
            });
        }
    }
    if lines.iter().all(|l| l.points.is_empty()) {
        return Ok(None);
    }
    line_plot("matching loss", "loss", &lines, None).map(Some)
}

/// One bar of a grouped bar plot: its group, its series, value and error (in %).
struct Bar {
    group: usize,
    series: usize,
    value: f64,
    err: f64,
}

fn bar_plot(
    title: &str,
    groups: &[String],
    series: &[(String, RGBColor)],
    bars: &[Bar],
    x_desc: &str,
) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let n = groups.len().max(1) as f64;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(60)
            .build_cartesian_2d(-0.5f64..n - 0.5, 0f64..100f64)
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .x_desc(x_desc)
            .y_desc("test accuracy %")
            .draw()
            .map_err(err)?;
        let width = 0.8 / series.len().max(1) as f64;
        for (s, (name, c)) in series.iter().enumerate() {
            let c = *c;
            let mine: Vec<&Bar> = bars.iter().filter(|b| b.series == s).collect();
            let x0 = |b: &Bar| b.group as f64 - 0.4 + s as f64 * width;
            chart
                .draw_series(
                    mine.iter()
                        .map(|b| Rectangle::new([(x0(b), 0.0), (x0(b) + width * 0.9, b.value)], c.filled())),
                )
                .map_err(err)?
                .label(name.clone())
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], c.filled()));
            chart
                .draw_series(mine.iter().filter(|b| b.err > 0.0).map(|b| {
                    let x = x0(b) + width * 0.45;
                    PathElement::new(vec![(x, b.value - b.err), (x, b.value + b.err)], BLACK.stroke_width(1))
                }))
                .map_err(err)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
        label_groups(&root, &chart, groups)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// Writes each group's name under its place on the x axis.
fn label_groups<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    chart: &ChartContext<
        DB,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
    >,
    groups: &[String],
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let style = ("sans-serif", 13)
        .into_font()
        .color(&BLACK)
        .pos(Pos::new(HPos::Center, VPos::Top));
    for (i, g) in groups.iter().enumerate() {
        let (px, py) = chart.backend_coord(&(i as f64, 0.0));
        root.draw(&Text::new(g.clone(), (px, py + 6), style.clone()))
            .map_err(|e| anyhow!("drawing a plot: {e:?}"))?;
    }
    Ok(())
}

/// The main set of each folder (and the random baseline) on every evaluation architecture.
pub fn arch_bars_svg(records: &[RunRecord]) -> Result<Option<String>> {
    let mut groups: Vec<String> = Vec::new();
    let mut series: Vec<(String, RGBColor)> = Vec::new();
    let mut bars = Vec::new();
    for (i, r) in records.iter().enumerate() {
        let main = if r.command == "baseline" { "random" } else { "synthetic" };
        let s = series.len();
        series.push((r.label.clone(), colour(i)));
        for row in r.rows().into_iter().filter(|x| x.set == main) {
            if !groups.contains(&row.arch) {
                groups.push(row.arch.clone());
            }
            let group = groups.iter().position(|g| *g == row.arch).unwrap_or(0);
            bars.push(Bar {
                group,
                series: s,
                value: 100.0 * row.summary.mean,
                err: 100.0 * row.summary.std,
            });
        }
    }
    // The random baseline once, from the first folder that evaluated it on each architecture.
    let random_series = series.len();
    let mut any_random = false;
    for (g, arch) in groups.iter().enumerate() {
        if let Some(row) = records
            .iter()
            .filter(|r| r.command != "baseline")
            .find_map(|r| r.row("random", arch))
        {
            any_random = true;
            bars.push(Bar {
                group: g,
                series: random_series,
                value: 100.0 * row.summary.mean,
                err: 100.0 * row.summary.std,
            });
        }
    }
    if any_random {
        series.push(("random subset".into(), RANDOM_COLOUR));
    }
    if bars.is_empty() {
        return Ok(None);
    }
    bar_plot(
        "test accuracy per architecture (mean +- std)",
        &groups,
        &series,
        &bars,
        "architecture",
    )
    .map(Some)
}

/// Per-class test accuracy of each folder's main set on its first architecture.
pub fn class_bars_svg(records: &[RunRecord], class_names: &[String]) -> Result<Option<String>> {
    let mut series = Vec::new();
    let mut bars = Vec::new();
    let mut classes = 0;
    for (i, r) in records.iter().enumerate() {
        let main = if r.command == "baseline" { "random" } else { "synthetic" };
        let Some(row) = r.rows().into_iter().find(|x| x.set == main && !x.per_class.is_empty()) else {
            continue;
        };
        let s = series.len();
        series.push((format!("{} ({})", r.label, row.arch), colour(i)));
        classes = classes.max(row.per_class.len());
        for (c, &a) in row.per_class.iter().enumerate() {
            bars.push(Bar {
                group: c,
                series: s,
                value: if a.is_finite() { 100.0 * a } else { 0.0 },
                err: 0.0,
            });
        }
    }
    if bars.is_empty() {
        return Ok(None);
    }
    let groups: Vec<String> = (0..classes)
        .map(|c| class_names.get(c).cloned().unwrap_or_else(|| c.to_string()))
        .collect();
    bar_plot("test accuracy per class", &groups, &series, &bars, "class").map(Some)
}
