//! The report as one standalone HTML page: the table, the plots inline as SVG, the synthetic
//! grids inline as PNG data URIs, nothing fetched from anywhere. A small script at the end
//! writes what the browser laid out into `#render-check` (how many plots have a size, how many
//! grids decoded), which the browser test reads back.

use anyhow::{Context, Result};

use super::load::RunRecord;
use super::table::{table_rows, HEADERS};

/// Escapes text for HTML.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Standard base64 (RFC 4648, with padding), for the PNG data URIs.
pub fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(A[((n >> (18 - 6 * k)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A plot section: the SVG, or a line saying why there is none.
pub struct Plot {
    pub id: &'static str,
    pub title: &'static str,
    pub svg: Option<String>,
    pub missing: &'static str,
}

const STYLE: &str = "body{font-family:sans-serif;margin:2em;color:#222;max-width:1200px}\
table{border-collapse:collapse;font-size:13px}th,td{border:1px solid #bbb;padding:3px 6px;text-align:right}\
th{background:#eee}td{white-space:nowrap}td:nth-child(-n+3),td:nth-child(6){text-align:left}figure{margin:1em 0}\
.grids{display:flex;flex-wrap:wrap;gap:1.5em}.grids img{image-rendering:pixelated;border:1px solid #ccc}\
.missing{color:#888;font-style:italic}";

const SCRIPT: &str = "window.addEventListener('load',function(){\
var plots=document.querySelectorAll('figure.plot svg');var shown=0;\
plots.forEach(function(s){var b=s.getBoundingClientRect();if(b.width>100&&b.height>100)shown++;});\
var imgs=document.querySelectorAll('.grids img');var decoded=0;\
imgs.forEach(function(i){if(i.complete&&i.naturalWidth>0)decoded++;});\
var rows=document.querySelectorAll('#runs tbody tr').length;\
document.getElementById('render-check').textContent='rendered: '+shown+' of '+plots.length+' plots, '+decoded+' of '+imgs.length+' grids, '+rows+' table rows';});";

/// The whole page.
pub fn page(records: &[RunRecord], plots: &[Plot]) -> Result<String> {
    let dataset = records.first().map_or("", |r| r.dataset.as_str());
    let mut h = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>cafe-lab report: {}</title>\
         <style>{STYLE}</style></head><body>\n<h1>cafe-lab report</h1>\n<p id=\"summary\">{} run folder(s) on {}: \
         test accuracy (%), mean +- std over all networks of all runs, 95 % CI of the mean.</p>\n",
        escape(dataset),
        records.len(),
        escape(dataset)
    );
    h.push_str("<table id=\"runs\"><thead><tr>");
    for head in HEADERS {
        h.push_str(&format!("<th>{}</th>", escape(head)));
    }
    h.push_str("</tr></thead><tbody>\n");
    for row in table_rows(records) {
        h.push_str("<tr>");
        for cell in row {
            h.push_str(&format!("<td>{}</td>", escape(&cell)));
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</tbody></table>\n");
    for p in plots {
        h.push_str(&format!("<h2>{}</h2>\n", escape(p.title)));
        match &p.svg {
            Some(svg) => h.push_str(&format!("<figure class=\"plot\" id=\"{}\">{svg}</figure>\n", p.id)),
            None => h.push_str(&format!(
                "<p class=\"missing\" id=\"{}\">{}</p>\n",
                p.id,
                escape(p.missing)
            )),
        }
    }
    h.push_str("<h2>Synthetic sets</h2>\n<div class=\"grids\">\n");
    for r in records {
        for run in &r.runs {
            let Some(grid) = &run.grid else { continue };
            let bytes = std::fs::read(grid).with_context(|| format!("reading {}", grid.display()))?;
            let caption = if r.runs.len() > 1 {
                format!("{} seed {}", r.label, run.seed)
            } else {
                r.label.clone()
            };
            h.push_str(&format!(
                "<figure><img src=\"data:image/png;base64,{}\" alt=\"synthetic set of {}\"><figcaption>{}</figcaption></figure>\n",
                base64(&bytes),
                escape(&caption),
                escape(&caption)
            ));
        }
    }
    h.push_str("</div>\n<p id=\"render-check\">not rendered</p>\n");
    h.push_str(&format!("<script>{SCRIPT}</script>\n</body></html>\n"));
    Ok(h)
}
