//! One self-contained HTML page: inline CSS and SVG charts, no script, no network; prints well.
//! Built with maud, whose templates escape every interpolated value, so no text from AWS can
//! become markup, an attribute or a script.

use super::headers;
use crate::QueryError;
use crate::report::{Chart, Report, Series, cell_text, column_names, is_numeric};
use maud::{DOCTYPE, Markup, PreEscaped, html};

const COLOURS: [&str; 6] = [
    "#c0392b", "#e67e22", "#2874a6", "#27ae60", "#7d3c98", "#566573",
];

const STYLE: &str = "
body { font-family: -apple-system, 'Segoe UI', 'Hiragino Sans', 'Yu Gothic', Meiryo, 'Noto Sans JP', 'IPAGothic', sans-serif; margin: 2rem; color: #1c2833; }
h1 { font-size: 1.5rem; margin-bottom: 0.2rem; } h2 { font-size: 1.15rem; margin-top: 2rem; }
h1, p { overflow-wrap: anywhere; }
.subtitle { color: #566573; margin-top: 0; }
.note { background: #FDEDEC; border-left: 4px solid #C0392B; padding: 6px 10px; }
.scroll { overflow: auto; max-width: 100%; max-height: 80vh; margin-top: 0.5rem; }
table { border-collapse: collapse; font-size: 0.85rem; }
th, td { border: 1px solid #d5d8dc; padding: 0.25rem 0.5rem; text-align: left; white-space: nowrap; }
th { background: #eaecee; position: sticky; top: 0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.wrap { white-space: normal; min-width: 18rem; }
td.compliant { background: #d5f5e3; } td.non_compliant { background: #fadbd8; }
td.unmanaged, td.unknown { background: #fcf3cf; }
.charts { display: flex; flex-wrap: wrap; gap: 1.5rem; }
figure { margin: 0; max-width: 100%; min-width: 0; } figcaption { font-weight: 600; margin-bottom: 0.3rem; }
figure svg { display: block; width: 100%; height: auto; }
svg text { font-size: 11px; fill: #1c2833; }
.legend span { display: inline-block; margin-right: 1rem; font-size: 0.8rem; }
.legend i { display: inline-block; width: 0.8rem; height: 0.8rem; margin-right: 0.3rem; vertical-align: middle; }
@media (max-width: 600px) { body { margin: 0.75rem; } .charts { gap: 1rem; } }
@media print { body { margin: 0.5cm; } th { position: static; } .scroll { overflow: visible; max-height: none; } .charts { display: block; } figure { page-break-inside: avoid; } }
";

/// The font size of chart text, in SVG units (see `svg text` in STYLE).
const FONT: f64 = 11.0;

/// The width `s` takes in chart text, estimated on the generous side: 0.62 em per terminal
/// column (CJK characters take two), wider than the Latin letters of the usual sans-serif fonts.
/// Layout reserves this much room, so no label is drawn past its chart's edge.
fn text_width(s: &str) -> f64 {
    unicode_width::UnicodeWidthStr::width(s) as f64 * FONT * 0.62
}

/// `s` shortened to at most `max` wide with `…`, keeping its last word (an instance or patch
/// id) whole when it can: `None` when it fits as it is. The chart then shows the full text as
/// the label's tooltip.
fn shorten(s: &str, max: f64) -> Option<String> {
    if text_width(s) <= max {
        return None;
    }
    let room = |kept: &str| max - text_width(kept) - text_width("…");
    let (head, tail) = match s.rsplit_once(' ') {
        Some((head, tail)) if room(tail) >= text_width("head") => (head, format!(" {tail}")),
        _ => (s, String::new()),
    };
    let mut out = String::new();
    for c in head.chars() {
        let mut next = out.clone();
        next.push(c);
        if text_width(&next) > room(&tail) {
            break;
        }
        out = next;
    }
    Some(format!("{}…{tail}", out.trim_end()))
}

/// A label, shortened to `max` wide if it must be, with its full text as a tooltip then.
fn label(text: &str, max: f64) -> Markup {
    match shorten(text, max) {
        None => html! { (text) },
        Some(short) => html! { title { (text) } (short) },
    }
}

/// The widest of `labels` (as `text_width` estimates it).
fn widest<S: AsRef<str>>(labels: impl IntoIterator<Item = S>) -> f64 {
    labels
        .into_iter()
        .map(|l| text_width(l.as_ref()))
        .fold(0.0, f64::max)
}

/// A chart value as it is printed: integers without decimals.
fn number(v: f64) -> String {
    format!("{v}")
}

/// Axis ticks from 0 to at least `max` at a round step (1, 2 or 5 × 10ⁿ, at least 1, so that
/// counts get whole numbers), about four intervals.
fn ticks(max: f64) -> Vec<f64> {
    let raw = (max.max(1.0) / 4.0).max(1.0);
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude);
    let n = (max.max(1.0) / step).ceil() as usize;
    (0..=n).map(|k| step * k as f64).collect()
}

/// The `svg` element of a chart `w` × `h` (in chart units): it scales to the width it gets, up
/// to `w` CSS pixels, and never beyond the page.
fn figure(title: &str, w: f64, h: f64, body: Markup, after: Markup) -> Markup {
    html! {
        figure style=(format!("width:{w:.0}px")) {
            figcaption { (title) }
            svg role="img" viewBox=(format!("0 0 {w:.0} {h:.0}")) preserveAspectRatio="xMinYMin meet" {
                (body)
            }
            (after)
        }
    }
}

/// Every number in a chart is formatted by us; every text (titles, labels, AWS-sourced names)
/// goes through maud, which escapes it for the element or attribute it lands in.
///
/// Axis labels carry the class `xl` (x axis) or `yl` (y axis), so that a layout check can tell
/// the labels of one axis apart.
fn lines(title: &str, labels: &[String], series: &[Series]) -> Markup {
    let (w, h, top, bottom) = (560.0, 250.0, 10.0, 28.0);
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .fold(0.0_f64, f64::max);
    let ticks = ticks(max);
    let top_value = ticks.last().copied().unwrap_or(1.0);
    let tick_w = widest(ticks.iter().map(|t| number(*t)));
    let label_w = widest(labels);
    let left = (tick_w + 10.0).max(label_w / 2.0 + 4.0);
    let right = (label_w / 2.0 + 4.0).max(10.0);
    let n = labels.len().max(2) as f64 - 1.0;
    let spacing = (w - left - right) / n;
    let x = |i: usize| left + spacing * i as f64;
    let y = |v: f64| (h - bottom) - (h - bottom - top) * v / top_value;
    // Every `step`-th date, so that no two overlap (and the last one always, when it has room).
    let step = ((label_w + 8.0) / spacing).ceil().max(1.0) as usize;
    let last = labels.len().saturating_sub(1);
    let mut shown: Vec<usize> = (0..labels.len()).step_by(step).collect();
    if let Some(&l) = shown.last()
        && l != last
    {
        if last - l < step {
            shown.pop();
        }
        shown.push(last);
    }
    let body = html! {
        @for v in &ticks {
            line x1=(format!("{left:.1}")) x2=(format!("{:.1}", w - right)) y1=(format!("{:.1}", y(*v))) y2=(format!("{:.1}", y(*v))) stroke="#eaecee" {}
            text class="yl" x=(format!("{:.1}", left - 6.0)) y=(format!("{:.1}", y(*v) + 4.0)) text-anchor="end" { (number(*v)) }
        }
        @for i in &shown {
            text class="xl" x=(format!("{:.1}", x(*i))) y=(format!("{:.1}", h - bottom + 16.0)) text-anchor="middle" { (labels[*i]) }
        }
        @for (k, s) in series.iter().enumerate() {
            @let colour = COLOURS[k % COLOURS.len()];
            @let points = s.values.iter().enumerate().map(|(i, v)| format!("{:.1},{:.1}", x(i), y(*v))).collect::<Vec<_>>().join(" ");
            polyline fill="none" stroke=(colour) stroke-width="2" points=(points) {}
            @for (i, v) in s.values.iter().enumerate() {
                circle cx=(format!("{:.1}", x(i))) cy=(format!("{:.1}", y(*v))) r="2.5" fill=(colour) {
                    title { (s.name) " " (labels.get(i).map(String::as_str).unwrap_or("")) ": " (number(*v)) }
                }
            }
        }
    };
    let legend = html! {
        div class="legend" {
            @for (k, s) in series.iter().enumerate() {
                span { i style=(format!("background:{}", COLOURS[k % COLOURS.len()])) {} (s.name) }
            }
        }
    };
    figure(title, w, h, body, legend)
}

/// Bar labels wider than this are shortened (with the full text as a tooltip).
const BAR_LABEL_MAX: f64 = 220.0;

fn bars(title: &str, labels: &[String], values: &[f64]) -> Markup {
    let row = 22.0;
    let label_w = widest(labels).min(BAR_LABEL_MAX) + 10.0;
    let value_w = widest(values.iter().map(|v| number(*v))) + 8.0;
    let bar_w = 240.0;
    let w = label_w + bar_w + value_w;
    let h = row * labels.len().max(1) as f64 + 10.0;
    let max = values.iter().copied().fold(0.0_f64, f64::max).max(1.0);
    let body = html! {
        @for (i, (name, v)) in labels.iter().zip(values).enumerate() {
            @let y = 5.0 + row * i as f64;
            @let len = bar_w * v / max;
            text class="yl" x=(format!("{:.1}", label_w - 6.0)) y=(format!("{:.1}", y + 14.0)) text-anchor="end" { (label(name, BAR_LABEL_MAX)) }
            rect x=(format!("{label_w:.1}")) y=(format!("{:.1}", y + 2.0)) width=(format!("{len:.1}")) height=(row - 6.0) fill=(COLOURS[i % COLOURS.len()]) {}
            text class="v" x=(format!("{:.1}", label_w + len + 4.0)) y=(format!("{:.1}", y + 14.0)) { (number(*v)) }
        }
    };
    figure(title, w, h, body, html! {})
}

/// Heat map row labels wider than this are shortened (their last word, the id, kept whole).
const HEAT_LABEL_MAX: f64 = 440.0;

fn heat(title: &str, rows: &[String], columns: &[String], values: &[Vec<f64>]) -> Markup {
    let cell = 16.0;
    let label_w = widest(rows).min(HEAT_LABEL_MAX) + 8.0;
    // Column labels stand upright (rotated a quarter turn): one line height each, so they
    // never overlap while a cell is at least that wide; narrower cells label every n-th column.
    let top = widest(columns) + 8.0;
    let step = ((FONT * 1.2) / cell).ceil().max(1.0) as usize;
    let w = label_w + cell * columns.len() as f64 + 10.0;
    let h = top + cell * rows.len() as f64 + 10.0;
    let max = values.iter().flatten().copied().fold(1.0_f64, f64::max);
    let body = html! {
        @for (j, c) in columns.iter().enumerate().step_by(step) {
            text class="xl" transform=(format!("translate({:.1},{:.1}) rotate(-90)", label_w + cell * j as f64 + cell / 2.0 + FONT * 0.35, top - 4.0)) { (c) }
        }
        @for (i, r) in rows.iter().enumerate() {
            @let y = top + cell * i as f64;
            text class="yl" x=(format!("{:.1}", label_w - 4.0)) y=(format!("{:.1}", y + 12.0)) text-anchor="end" { (label(r, HEAT_LABEL_MAX)) }
            @for (j, v) in values.get(i).into_iter().flatten().enumerate() {
                @let shade = (v / max).clamp(0.0, 1.0);
                @let fill = format!("rgb({:.0},{:.0},{:.0})", 250.0 - 58.0 * shade, 250.0 - 200.0 * shade, 250.0 - 200.0 * shade);
                rect x=(format!("{:.1}", label_w + cell * j as f64)) y=(format!("{y:.1}")) width=(cell) height=(cell) fill=(fill) stroke="#fff" {
                    title { (r) " " (columns.get(j).map(String::as_str).unwrap_or("")) ": " (number(*v)) " missing" }
                }
            }
        }
    };
    figure(title, w, h, body, html! {})
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

/// Text columns with a cell longer than this (in characters) wrap.
const LONG_TEXT: usize = 48;

pub fn page(report: &Report) -> Result<String, QueryError> {
    let mut tables = Vec::with_capacity(report.tables.len());
    for table in &report.tables {
        let rows = cell_text(table)?;
        // Columns of long text (patch titles, reasons) wrap; every other cell keeps to one line
        // (ids, dates and versions are never broken at their hyphens or dots).
        let wrap: Vec<bool> = (0..table.schema.fields().len())
            .map(|i| {
                !is_numeric(table, i)
                    && rows
                        .iter()
                        .any(|r| r.get(i).is_some_and(|c| c.chars().count() > LONG_TEXT))
            })
            .collect();
        tables.push((
            table,
            column_names(table),
            headers(table, report.lang),
            rows,
            wrap,
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
                @if !report.charts.is_empty() {
                    div class="charts" { @for c in &report.charts { (chart(c)) } }
                }
                @for (table, names, labels, rows, wrap) in &tables {
                    h2 { (report.lang.table(&table.name)) small { (report.lang.rows(table.rows())) } }
                    // A wide table scrolls inside its box, never the page.
                    div class="scroll" {
                        table {
                            thead { tr { @for n in labels { th { (n) } } } }
                            tbody {
                                @for row in rows {
                                    tr {
                                        @for (i, cell) in row.iter().enumerate() {
                                            td class=(if wrap[i] { "wrap" } else { cell_class(is_numeric(table, i), &names[i], cell) }) { (cell) }
                                        }
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

    #[test]
    fn axes_tick_at_round_numbers() {
        assert_eq!(ticks(46.0), vec![0.0, 20.0, 40.0, 60.0]);
        assert_eq!(ticks(258.0), vec![0.0, 100.0, 200.0, 300.0]);
        assert_eq!(ticks(0.0), vec![0.0, 1.0]);
        assert_eq!(ticks(3.0), vec![0.0, 1.0, 2.0, 3.0]);
    }

    /// A label too long for its room keeps its id (the last word) whole; one that fits is kept.
    #[test]
    fn long_labels_keep_their_id() {
        let hybrid = "staging-onprem-batch-0121.corp.example mi-0c4c6d1c9d2936253";
        assert_eq!(shorten(hybrid, text_width(hybrid)), None);
        let short = shorten(hybrid, 240.0).expect("shortened");
        assert!(short.ends_with("… mi-0c4c6d1c9d2936253"), "{short}");
        assert!(short.starts_with("staging-"), "{short}");
        assert!(text_width(&short) <= 240.0, "{short}");
        let out = label(hybrid, 200.0).into_string();
        assert!(out.contains(&format!("<title>{hybrid}</title>")), "{out}");
    }

    /// A year of weekly snapshots: the dates drawn on the x axis are far enough apart not to
    /// overlap, and the newest is among them.
    #[test]
    fn dates_on_a_long_axis_are_thinned() {
        let labels: Vec<String> = (0..52)
            .map(|i| format!("2026-{:02}-{:02}", i / 4 + 1, i % 4 * 7 + 1))
            .collect();
        let series = [Series {
            name: "missing".into(),
            values: vec![1.0; 52],
        }];
        let out = lines("t", &labels, &series).into_string();
        let xs: Vec<f64> = out
            .split("<text class=\"xl\" x=\"")
            .skip(1)
            .map(|s| s.split('"').next().unwrap_or("").parse().expect("x"))
            .collect();
        assert!(xs.len() > 3 && xs.len() < 52, "{xs:?}");
        let room = text_width(&labels[0]);
        assert!(xs.windows(2).all(|w| w[1] - w[0] >= room), "{xs:?}");
        assert!(out.contains(&format!(">{}</text>", labels[51])));
    }
}
