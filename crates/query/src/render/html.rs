//! One self-contained HTML page: inline CSS and SVG charts, no script, no network; prints well.

use super::{cell_text, column_names, is_numeric};
use crate::QueryError;
use crate::reports::Report;
use std::fmt::Write;

/// A named series of values, one per x label.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub values: Vec<f64>,
}

/// Charts the HTML page can draw.
#[derive(Debug, Clone)]
pub enum Chart {
    /// Lines over time (x labels are snapshot dates).
    Lines {
        title: String,
        labels: Vec<String>,
        series: Vec<Series>,
    },
    /// Horizontal bars.
    Bars {
        title: String,
        labels: Vec<String>,
        values: Vec<f64>,
    },
    /// A grid of cells shaded by value: rows × columns.
    Heat {
        title: String,
        rows: Vec<String>,
        columns: Vec<String>,
        values: Vec<Vec<f64>>,
    },
}

pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const COLOURS: [&str; 6] = [
    "#c0392b", "#e67e22", "#2874a6", "#27ae60", "#7d3c98", "#566573",
];

const STYLE: &str = "
body { font-family: -apple-system, 'Segoe UI', 'Hiragino Sans', 'Noto Sans JP', sans-serif; margin: 2rem; color: #1c2833; }
h1 { font-size: 1.5rem; margin-bottom: 0.2rem; } h2 { font-size: 1.15rem; margin-top: 2rem; }
.subtitle { color: #566573; margin-top: 0; }
table { border-collapse: collapse; font-size: 0.85rem; margin-top: 0.5rem; }
th, td { border: 1px solid #d5d8dc; padding: 0.25rem 0.5rem; text-align: left; }
th { background: #eaecee; position: sticky; top: 0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.compliant { background: #d5f5e3; } td.non_compliant { background: #fadbd8; }
td.unmanaged, td.unknown { background: #fcf3cf; }
.charts { display: flex; flex-wrap: wrap; gap: 1.5rem; }
figure { margin: 0; } figcaption { font-weight: 600; margin-bottom: 0.3rem; }
svg text { font-size: 11px; fill: #1c2833; }
.legend span { display: inline-block; margin-right: 1rem; font-size: 0.8rem; }
.legend i { display: inline-block; width: 0.8rem; height: 0.8rem; margin-right: 0.3rem; vertical-align: middle; }
@media print { body { margin: 0.5cm; } th { position: static; } .charts { display: block; } figure { page-break-inside: avoid; } }
";

fn lines(out: &mut String, title: &str, labels: &[String], series: &[Series]) {
    let (w, h, left, bottom) = (640.0, 260.0, 50.0, 40.0);
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .fold(1.0_f64, f64::max);
    let n = labels.len().max(2) as f64 - 1.0;
    let x = |i: usize| left + (w - left - 40.0) * i as f64 / n;
    let y = |v: f64| (h - bottom) - (h - bottom - 10.0) * v / max;
    let _ = write!(
        out,
        "<figure><figcaption>{}</figcaption><svg role=\"img\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\">",
        escape(title)
    );
    for k in 0..=4 {
        let v = max * k as f64 / 4.0;
        let _ = write!(
            out,
            "<line x1=\"{left}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#eaecee\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{v:.0}</text>",
            w - 10.0,
            left - 4.0,
            y(v) + 4.0,
            y = y(v)
        );
    }
    let step = (labels.len() / 8).max(1);
    for (i, label) in labels.iter().enumerate().step_by(step) {
        let _ = write!(
            out,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            x(i),
            h - bottom + 16.0,
            escape(label)
        );
    }
    for (k, s) in series.iter().enumerate() {
        let points: Vec<String> = s
            .values
            .iter()
            .enumerate()
            .map(|(i, v)| format!("{:.1},{:.1}", x(i), y(*v)))
            .collect();
        let colour = COLOURS[k % COLOURS.len()];
        let _ = write!(
            out,
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>",
            points.join(" ")
        );
        for (i, v) in s.values.iter().enumerate() {
            let _ = write!(
                out,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.5\" fill=\"{colour}\"><title>{} {}: {v}</title></circle>",
                x(i),
                y(*v),
                escape(&s.name),
                escape(&labels[i])
            );
        }
    }
    out.push_str("</svg><div class=\"legend\">");
    for (k, s) in series.iter().enumerate() {
        let _ = write!(
            out,
            "<span><i style=\"background:{}\"></i>{}</span>",
            COLOURS[k % COLOURS.len()],
            escape(&s.name)
        );
    }
    out.push_str("</div></figure>");
}

fn bars(out: &mut String, title: &str, labels: &[String], values: &[f64]) {
    let row = 22.0;
    let (w, label_w) = (420.0, 120.0);
    let h = row * labels.len().max(1) as f64 + 10.0;
    let max = values.iter().copied().fold(1.0_f64, f64::max);
    let _ = write!(
        out,
        "<figure><figcaption>{}</figcaption><svg role=\"img\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\">",
        escape(title)
    );
    for (i, (label, v)) in labels.iter().zip(values).enumerate() {
        let y = 5.0 + row * i as f64;
        let len = (w - label_w - 60.0) * v / max;
        let _ = write!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text><rect x=\"{label_w}\" y=\"{:.1}\" width=\"{len:.1}\" height=\"{:.1}\" fill=\"{}\"/><text x=\"{:.1}\" y=\"{:.1}\">{v}</text>",
            label_w - 6.0,
            y + 14.0,
            escape(label),
            y + 2.0,
            row - 6.0,
            COLOURS[i % COLOURS.len()],
            label_w + len + 4.0,
            y + 14.0
        );
    }
    out.push_str("</svg></figure>");
}

fn heat(out: &mut String, title: &str, rows: &[String], columns: &[String], values: &[Vec<f64>]) {
    let (cell, label_w, top) = (16.0, 300.0, 70.0);
    let w = label_w + cell * columns.len() as f64 + 10.0;
    let h = top + cell * rows.len() as f64 + 10.0;
    let max = values.iter().flatten().copied().fold(1.0_f64, f64::max);
    let _ = write!(
        out,
        "<figure><figcaption>{}</figcaption><svg role=\"img\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\">",
        escape(title)
    );
    for (j, c) in columns.iter().enumerate() {
        let x = label_w + cell * j as f64 + cell / 2.0;
        let _ = write!(
            out,
            "<text transform=\"translate({x:.1},{}) rotate(-60)\">{}</text>",
            top - 4.0,
            escape(c)
        );
    }
    for (i, r) in rows.iter().enumerate() {
        let y = top + cell * i as f64;
        let _ = write!(
            out,
            "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            label_w - 4.0,
            y + 12.0,
            escape(r)
        );
        for (j, v) in values.get(i).into_iter().flatten().enumerate() {
            let shade = (v / max).clamp(0.0, 1.0);
            let (red, green) = (250.0 - 58.0 * shade, 250.0 - 200.0 * shade);
            let _ = write!(
                out,
                "<rect x=\"{:.1}\" y=\"{y:.1}\" width=\"{}\" height=\"{}\" fill=\"rgb({red:.0},{green:.0},{green:.0})\" stroke=\"#fff\"><title>{} {}: {v} missing</title></rect>",
                label_w + cell * j as f64,
                cell,
                cell,
                escape(r),
                escape(&columns[j])
            );
        }
    }
    out.push_str("</svg></figure>");
}

pub fn page(report: &Report, charts: &[Chart]) -> Result<String, QueryError> {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{}</title><style>{STYLE}</style></head><body><h1>{}</h1><p class=\"subtitle\">{}</p>",
        escape(&report.title),
        escape(&report.title),
        escape(&report.subtitle)
    );
    if !charts.is_empty() {
        out.push_str("<div class=\"charts\">");
        for chart in charts {
            match chart {
                Chart::Lines {
                    title,
                    labels,
                    series,
                } => lines(&mut out, title, labels, series),
                Chart::Bars {
                    title,
                    labels,
                    values,
                } => bars(&mut out, title, labels, values),
                Chart::Heat {
                    title,
                    rows,
                    columns,
                    values,
                } => heat(&mut out, title, rows, columns, values),
            }
        }
        out.push_str("</div>");
    }
    for table in &report.tables {
        let names = column_names(table);
        let _ = write!(
            out,
            "<h2>{} <small>({} rows)</small></h2><table><thead><tr>",
            escape(&table.name),
            table.rows()
        );
        for n in &names {
            let _ = write!(out, "<th>{}</th>", escape(n));
        }
        out.push_str("</tr></thead><tbody>");
        for row in cell_text(table)? {
            out.push_str("<tr>");
            for (i, cell) in row.iter().enumerate() {
                let class = if is_numeric(table, i) {
                    "num"
                } else if names[i] == "compliance" {
                    cell.as_str()
                } else {
                    ""
                };
                let _ = write!(out, "<td class=\"{class}\">{}</td>", escape(cell));
            }
            out.push_str("</tr>");
        }
        out.push_str("</tbody></table>");
    }
    out.push_str("<p class=\"subtitle\">Generated by patchtrail.</p></body></html>\n");
    Ok(out)
}
