//! Report renderers: a terminal table, CSV, JSON, JSON lines, Markdown, HTML and XLSX.
//!
//! Machine formats (csv, json, jsonl) carry the report's main table only, with snake_case column
//! names that scripts may rely on; the others carry every table.

mod html;
mod shown;
mod xlsx;

#[cfg(test)]
mod tests {
    use super::spreadsheet_safe;

    #[test]
    fn formulas_never_reach_a_spreadsheet() {
        assert_eq!(
            spreadsheet_safe("=HYPERLINK(\"x\")", false),
            "'=HYPERLINK(\"x\")"
        );
        assert_eq!(spreadsheet_safe("-1", true), "-1");
        assert_eq!(spreadsheet_safe("@SUM(A1)", false), "'@SUM(A1)");
        assert_eq!(spreadsheet_safe("KB5034441", false), "KB5034441");
        // Full-width signs, which a Japanese IME types and a spreadsheet may take as the ASCII ones.
        assert_eq!(spreadsheet_safe("＝1+1", false), "'＝1+1");
        assert_eq!(spreadsheet_safe("＠SUM(A1)", false), "'＠SUM(A1)");
        assert_eq!(spreadsheet_safe("－1", false), "'－1");
        assert_eq!(spreadsheet_safe("＋1", false), "'＋1");
    }

    #[test]
    fn markdown_shows_html_and_escapes_as_text() {
        assert_eq!(
            super::markdown_text("<img src=x onerror=alert(1)> & |x|\n\u{1b}[2J"),
            "&lt;img src=x onerror=alert(1)&gt; &amp; \\|x\\| ␛[2J"
        );
    }
}

use crate::QueryError;
use crate::report::{Report, Table, cell_text, column_names, each_cell, is_numeric};
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Table,
    Csv,
    Json,
    Jsonl,
    Markdown,
    Html,
    Xlsx,
}

impl FromStr for OutputFormat {
    type Err = QueryError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "table" => OutputFormat::Table,
            "csv" => OutputFormat::Csv,
            "json" => OutputFormat::Json,
            "jsonl" => OutputFormat::Jsonl,
            "markdown" | "md" => OutputFormat::Markdown,
            "html" => OutputFormat::Html,
            "xlsx" => OutputFormat::Xlsx,
            other => {
                return Err(QueryError::BadInput {
                    input: format!("--format {other}"),
                    fix: "use table, csv, json, jsonl, markdown, html or xlsx".into(),
                });
            }
        })
    }
}

impl OutputFormat {
    /// Whether the output is bytes a terminal should not receive.
    pub fn is_binary(self) -> bool {
        self == OutputFormat::Xlsx
    }
}

fn render_error(e: impl std::fmt::Display) -> QueryError {
    QueryError::Render(e.to_string())
}

/// Column headers as people read them in `lang` (machine formats use `column_names`).
pub fn headers(table: &Table, lang: crate::Lang) -> Vec<String> {
    column_names(table).iter().map(|n| lang.column(n)).collect()
}

/// The columns a string takes on a terminal (CJK characters take two).
fn width(s: &str) -> usize {
    unicode_width::UnicodeWidthStr::width(s)
}

/// `s` cut to at most `w` terminal columns, with `…` when cut.
fn clip(s: &str, w: usize) -> String {
    if width(s) <= w {
        return s.to_string();
    }
    let mut out = String::new();
    for c in s.chars() {
        if width(&out) + unicode_width::UnicodeWidthChar::width(c).unwrap_or(0) + 1 > w {
            break;
        }
        out.push(c);
    }
    out.push('…');
    out
}

fn text_table(table: &Table, lang: crate::Lang) -> Result<String, QueryError> {
    let names = headers(table, lang);
    let rows = cell_text(table)?;
    let mut widths: Vec<usize> = names
        .iter()
        .map(|n| width(&shown::terminal_safe(n)))
        .collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(width(&shown::terminal_safe(cell))).min(60);
        }
    }
    let line = |cells: &[String], numeric: &dyn Fn(usize) -> bool| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let c = clip(&shown::terminal_safe(c), widths[i]);
                let pad = " ".repeat(widths[i].saturating_sub(width(&c)));
                if numeric(i) {
                    format!("{pad}{c}")
                } else {
                    format!("{c}{pad}")
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut out = String::new();
    out.push_str(&line(&names, &|_| false));
    out.push('\n');
    out.push_str(
        &widths
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .join("  "),
    );
    out.push('\n');
    for row in &rows {
        out.push_str(&line(row, &|i| is_numeric(table, i)));
        out.push('\n');
    }
    Ok(out)
}

/// Text in Markdown shows as written: no HTML from AWS text reaches a Markdown viewer as HTML
/// (`<script>`, `<img onerror>`), no `|` ends a cell, no line break or control character
/// reaches a terminal that shows the file.
fn markdown_text(s: &str) -> String {
    shown::terminal_safe(&s.replace(['\n', '\r'], " "))
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('|', "\\|")
}

fn markdown(report: &Report) -> Result<String, QueryError> {
    let esc = markdown_text;
    let mut out = format!("# {}\n\n{}\n", esc(&report.title), esc(&report.subtitle));
    for note in &report.notes {
        out.push_str(&format!("\n> **{}:** {}\n", report.lang.note(), esc(note)));
    }
    for table in &report.tables {
        let names = headers(table, report.lang);
        out.push_str(&format!(
            "\n## {}{}\n\n| {} |\n|",
            report.lang.table(&table.name),
            report.lang.rows(table.rows()),
            names.iter().map(|n| esc(n)).collect::<Vec<_>>().join(" | ")
        ));
        for i in 0..names.len() {
            out.push_str(if is_numeric(table, i) {
                " ---: |"
            } else {
                " --- |"
            });
        }
        out.push('\n');
        for row in cell_text(table)? {
            out.push_str(&format!(
                "| {} |\n",
                row.iter().map(|c| esc(c)).collect::<Vec<_>>().join(" | ")
            ));
        }
    }
    Ok(out)
}

fn main_table(report: &Report) -> Result<&Table, QueryError> {
    report
        .tables
        .first()
        .ok_or_else(|| QueryError::Render("the report has no table".into()))
}

/// §7.1: text that a spreadsheet would evaluate (`=`, `+`, `-`, `@`, their full-width forms,
/// tab, carriage return first) gets a leading `'`; numbers stay numbers.
fn spreadsheet_safe(cell: &str, numeric: bool) -> std::borrow::Cow<'_, str> {
    let risky = cell.starts_with(['=', '+', '-', '@', '\t', '\r', '＝', '＋', '－', '＠']);
    if risky && !numeric {
        format!("'{cell}").into()
    } else {
        cell.into()
    }
}

fn csv_field(cell: &str) -> std::borrow::Cow<'_, str> {
    if cell.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", cell.replace('"', "\"\"")).into()
    } else {
        cell.into()
    }
}

fn csv(table: &Table) -> Result<Vec<u8>, QueryError> {
    let mut out = column_names(table)
        .iter()
        .map(|n| csv_field(n).into_owned())
        .collect::<Vec<_>>()
        .join(",");
    let numeric: Vec<bool> = (0..table.schema.fields().len())
        .map(|i| is_numeric(table, i))
        .collect();
    let last = numeric.len().saturating_sub(1);
    out.push('\n');
    each_cell(table, |column, text| {
        let safe = spreadsheet_safe(text, numeric.get(column).copied().unwrap_or(false));
        out.push_str(&csv_field(&safe));
        out.push(if column == last { '\n' } else { ',' });
    })?;
    Ok(out.into_bytes())
}

fn json(table: &Table, lines: bool) -> Result<Vec<u8>, QueryError> {
    let mut out = Vec::new();
    let builder = arrow_json::WriterBuilder::new().with_explicit_nulls(true);
    let batches: Vec<&arrow_array::RecordBatch> =
        table.batches.iter().filter(|b| b.num_rows() > 0).collect();
    if lines {
        let mut writer = builder.build::<_, arrow_json::writer::LineDelimited>(&mut out);
        writer.write_batches(&batches).map_err(render_error)?;
        writer.finish().map_err(render_error)?;
    } else {
        let mut writer = builder.build::<_, arrow_json::writer::JsonArray>(&mut out);
        writer.write_batches(&batches).map_err(render_error)?;
        writer.finish().map_err(render_error)?;
        if batches.is_empty() {
            out = b"[]".to_vec();
        }
        out.push(b'\n');
    }
    Ok(out)
}

/// Notes (§1.5) ahead of CSV rows, as `#` comment lines that readers such as DuckDB
/// (`comment='#'`) and pandas (`comment='#'`) skip; none when there are none.
fn with_notes_csv(notes: &[String], rows: Vec<u8>) -> Vec<u8> {
    let mut out = Vec::new();
    for note in notes {
        out.extend_from_slice(format!("# {}\n", note.replace(['\n', '\r'], " ")).as_bytes());
    }
    out.extend(rows);
    out
}

/// With notes, the JSON array becomes `{"notes": [...], "rows": [...]}`, so that no program
/// reads the rows without seeing them; without, it stays the bare array.
fn with_notes_json(notes: &[String], rows: Vec<u8>) -> Result<Vec<u8>, QueryError> {
    if notes.is_empty() {
        return Ok(rows);
    }
    // The rows' bytes go in as rendered, so each row keeps its columns' order.
    let mut out = b"{\"notes\":".to_vec();
    out.extend(serde_json::to_vec(notes).map_err(render_error)?);
    out.extend_from_slice(b",\"rows\":");
    out.extend_from_slice(rows.trim_ascii_end());
    out.extend_from_slice(b"}\n");
    Ok(out)
}

/// With notes, JSON lines start with one `{"notes": [...]}` line.
fn with_notes_jsonl(notes: &[String], rows: Vec<u8>) -> Result<Vec<u8>, QueryError> {
    if notes.is_empty() {
        return Ok(rows);
    }
    let mut out =
        serde_json::to_vec(&serde_json::json!({ "notes": notes })).map_err(render_error)?;
    out.push(b'\n');
    out.extend(rows);
    Ok(out)
}

/// Renders `report` in `format`; machine formats carry the table named `table` (default: the
/// main one).
pub fn render_table(
    report: &Report,
    format: OutputFormat,
    table: Option<&str>,
) -> Result<Vec<u8>, QueryError> {
    let Some(name) = table else {
        return render(report, format);
    };
    let chosen = report
        .tables
        .iter()
        .find(|t| t.name == name)
        .ok_or_else(|| QueryError::BadInput {
            input: format!("--table {name}"),
            fix: format!(
                "this report has the tables {}",
                report
                    .tables
                    .iter()
                    .map(|t| t.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })?;
    let single = Report {
        title: report.title.clone(),
        subtitle: report.subtitle.clone(),
        lang: report.lang,
        as_of: report.as_of,
        tables: vec![chosen.clone()],
        charts: Vec::new(),
        notes: report.notes.clone(),
    };
    render(&single, format)
}

/// Renders `report` in `format`.
pub fn render(report: &Report, format: OutputFormat) -> Result<Vec<u8>, QueryError> {
    // JSON keeps every value exact (bidirectional controls as escapes); the other formats are
    // read by people and render the report as shown (controls visible).
    let shown = || shown::report_shown(report);
    Ok(match format {
        OutputFormat::Table => terminal_text(&*shown()?)?.into_bytes(),
        OutputFormat::Csv => {
            let report = shown()?;
            with_notes_csv(&report.notes, csv(main_table(&report)?)?)
        }
        OutputFormat::Json => {
            let rows = json(main_table(report)?, false)?;
            shown::json_escaped(with_notes_json(&report.notes, rows)?)
        }
        OutputFormat::Jsonl => {
            let rows = json(main_table(report)?, true)?;
            shown::json_escaped(with_notes_jsonl(&report.notes, rows)?)
        }
        OutputFormat::Markdown => markdown(&*shown()?)?.into_bytes(),
        OutputFormat::Html => html::page(&*shown()?)?.into_bytes(),
        OutputFormat::Xlsx => xlsx::workbook(&*shown()?)?,
    })
}

/// The terminal table: titles, notes and every table, no control character in any of it.
fn terminal_text(report: &Report) -> Result<String, QueryError> {
    let terminal = shown::terminal_safe;
    let mut out = format!(
        "{}\n{}\n",
        terminal(&report.title),
        terminal(&report.subtitle)
    );
    for note in &report.notes {
        out.push_str(&format!("{}: {}\n", report.lang.note(), terminal(note)));
    }
    for table in &report.tables {
        out.push_str(&format!(
            "\n{}{}\n",
            report.lang.table(&table.name),
            report.lang.rows(table.rows())
        ));
        out.push_str(&text_table(table, report.lang)?);
    }
    Ok(out)
}
