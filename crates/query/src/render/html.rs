//! One self-contained HTML page: inline CSS and SVG charts, no script, no network; prints well.
//! Built with maud, whose templates escape every interpolated value, so no text from AWS can
//! become markup, an attribute or a script.

use super::{cell_text, column_names, headers, is_numeric};
use crate::QueryError;
use crate::reports::Report;
use maud::{DOCTYPE, Markup, PreEscaped, html};

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

const COLOURS: [&str; 6] = [
    "#c0392b", "#e67e22", "#2874a6", "#27ae60", "#7d3c98", "#566573",
];

const STYLE: &str = "
body { font-family: -apple-system, 'Segoe UI', 'Hiragino Sans', 'Yu Gothic', Meiryo, 'Noto Sans JP', 'IPAGothic', sans-serif; margin: 2rem; color: #1c2833; }
h1 { font-size: 1.5rem; margin-bottom: 0.2rem; } h2 { font-size: 1.15rem; margin-top: 2rem; }
.subtitle { color: #566573; margin-top: 0; }
.note { background: #FDEDEC; border-left: 4px solid #C0392B; padding: 6px 10px; }
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

/// Every number in a chart is formatted by us; every text (titles, labels, AWS-sourced names)
/// goes through maud, which escapes it for the element or attribute it lands in.
fn lines(title: &str, labels: &[String], series: &[Series]) -> Markup {
    let (w, h, left, bottom) = (640.0, 260.0, 50.0, 40.0);
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .fold(1.0_f64, f64::max);
    let n = labels.len().max(2) as f64 - 1.0;
    let x = |i: usize| left + (w - left - 40.0) * i as f64 / n;
    let y = |v: f64| (h - bottom) - (h - bottom - 10.0) * v / max;
    let step = (labels.len() / 8).max(1);
    html! {
        figure {
            figcaption { (title) }
            svg role="img" width=(w) height=(h) viewBox=(format!("0 0 {w} {h}")) {
                @for k in 0..=4 {
                    @let v = max * k as f64 / 4.0;
                    line x1=(left) x2=(w - 10.0) y1=(format!("{:.1}", y(v))) y2=(format!("{:.1}", y(v))) stroke="#eaecee" {}
                    text x=(left - 4.0) y=(format!("{:.1}", y(v) + 4.0)) text-anchor="end" { (format!("{v:.0}")) }
                }
                @for (i, label) in labels.iter().enumerate().step_by(step) {
                    text x=(format!("{:.1}", x(i))) y=(h - bottom + 16.0) text-anchor="middle" { (label) }
                }
                @for (k, s) in series.iter().enumerate() {
                    @let colour = COLOURS[k % COLOURS.len()];
                    @let points = s.values.iter().enumerate().map(|(i, v)| format!("{:.1},{:.1}", x(i), y(*v))).collect::<Vec<_>>().join(" ");
                    polyline fill="none" stroke=(colour) stroke-width="2" points=(points) {}
                    @for (i, v) in s.values.iter().enumerate() {
                        circle cx=(format!("{:.1}", x(i))) cy=(format!("{:.1}", y(*v))) r="2.5" fill=(colour) {
                            title { (s.name) " " (labels.get(i).map(String::as_str).unwrap_or("")) ": " (v) }
                        }
                    }
                }
            }
            div class="legend" {
                @for (k, s) in series.iter().enumerate() {
                    span { i style=(format!("background:{}", COLOURS[k % COLOURS.len()])) {} (s.name) }
                }
            }
        }
    }
}

fn bars(title: &str, labels: &[String], values: &[f64]) -> Markup {
    let row = 22.0;
    let (w, label_w) = (420.0, 140.0);
    let h = row * labels.len().max(1) as f64 + 10.0;
    let max = values.iter().copied().fold(1.0_f64, f64::max);
    html! {
        figure {
            figcaption { (title) }
            svg role="img" width=(w) height=(h) viewBox=(format!("0 0 {w} {h}")) {
                @for (i, (label, v)) in labels.iter().zip(values).enumerate() {
                    @let y = 5.0 + row * i as f64;
                    @let len = (w - label_w - 60.0) * v / max;
                    text x=(label_w - 6.0) y=(format!("{:.1}", y + 14.0)) text-anchor="end" { (label) }
                    rect x=(label_w) y=(format!("{:.1}", y + 2.0)) width=(format!("{len:.1}")) height=(row - 6.0) fill=(COLOURS[i % COLOURS.len()]) {}
                    text x=(format!("{:.1}", label_w + len + 4.0)) y=(format!("{:.1}", y + 14.0)) { (v) }
                }
            }
        }
    }
}

fn heat(title: &str, rows: &[String], columns: &[String], values: &[Vec<f64>]) -> Markup {
    let (cell, label_w, top) = (16.0, 300.0, 70.0);
    let w = label_w + cell * columns.len() as f64 + 10.0;
    let h = top + cell * rows.len() as f64 + 10.0;
    let max = values.iter().flatten().copied().fold(1.0_f64, f64::max);
    html! {
        figure {
            figcaption { (title) }
            svg role="img" width=(w) height=(h) viewBox=(format!("0 0 {w} {h}")) {
                @for (j, c) in columns.iter().enumerate() {
                    text transform=(format!("translate({:.1},{}) rotate(-60)", label_w + cell * j as f64 + cell / 2.0, top - 4.0)) { (c) }
                }
                @for (i, r) in rows.iter().enumerate() {
                    @let y = top + cell * i as f64;
                    text x=(label_w - 4.0) y=(format!("{:.1}", y + 12.0)) text-anchor="end" { (r) }
                    @for (j, v) in values.get(i).into_iter().flatten().enumerate() {
                        @let shade = (v / max).clamp(0.0, 1.0);
                        @let fill = format!("rgb({:.0},{:.0},{:.0})", 250.0 - 58.0 * shade, 250.0 - 200.0 * shade, 250.0 - 200.0 * shade);
                        rect x=(format!("{:.1}", label_w + cell * j as f64)) y=(format!("{y:.1}")) width=(cell) height=(cell) fill=(fill) stroke="#fff" {
                            title { (r) " " (columns.get(j).map(String::as_str).unwrap_or("")) ": " (v) " missing" }
                        }
                    }
                }
            }
        }
    }
}

fn chart(c: &Chart) -> Markup {
    match c {
        Chart::Lines {
            title,
            labels,
            series,
        } => lines(title, labels, series),
        Chart::Bars {
            title,
            labels,
            values,
        } => bars(title, labels, values),
        Chart::Heat {
            title,
            rows,
            columns,
            values,
        } => heat(title, rows, columns, values),
    }
}

/// The CSS class of a cell: numbers align right; compliance values are coloured (only the
/// known values become classes).
fn cell_class(numeric: bool, column: &str, cell: &str) -> &'static str {
    const COMPLIANCE: [&str; 5] = [
        "compliant",
        "non_compliant",
        "unknown",
        "unmanaged",
        "error",
    ];
    if numeric {
        "num"
    } else if column == "compliance" || column == "aws_compliance" {
        COMPLIANCE.into_iter().find(|c| *c == cell).unwrap_or("")
    } else {
        ""
    }
}

pub fn page(report: &Report, charts: &[Chart]) -> Result<String, QueryError> {
    let mut tables = Vec::with_capacity(report.tables.len());
    for table in &report.tables {
        tables.push((
            table,
            column_names(table),
            headers(table, report.lang),
            cell_text(table)?,
        ));
    }
    let markup = html! {
        (DOCTYPE)
        html lang=(report.lang.code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (report.title) }
                style { (PreEscaped(STYLE)) }
            }
            body {
                h1 { (report.title) }
                p class="subtitle" { (report.subtitle) }
                @for note in &report.notes {
                    p class="note" { strong { (report.lang.note()) ": " } (note) }
                }
                @if !charts.is_empty() {
                    div class="charts" { @for c in charts { (chart(c)) } }
                }
                @for (table, names, labels, rows) in &tables {
                    h2 { (report.lang.table(&table.name)) small { (report.lang.rows(table.rows())) } }
                    table {
                        thead { tr { @for n in labels { th { (n) } } } }
                        tbody {
                            @for row in rows {
                                tr {
                                    @for (i, cell) in row.iter().enumerate() {
                                        td class=(cell_class(is_numeric(table, i), &names[i], cell)) { (cell) }
                                    }
                                }
                            }
                        }
                    }
                }
                p class="subtitle" { (report.lang.generated_by()) }
            }
        }
    };
    let mut out = markup.into_string();
    out.push('\n');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AWS-sourced text lands in elements and attributes escaped.
    #[test]
    fn hostile_text_is_escaped() {
        let evil = "\"><script>alert(1)</script><x a=\"";
        let out = bars(evil, &[evil.to_string()], &[1.0]).into_string();
        assert!(!out.contains("<script>"), "{out}");
        assert!(out.contains("&lt;script&gt;"));
        assert_eq!(cell_class(false, "compliance", evil), "");
    }
}
