//! Text that reaches a person. Whoever can name an instance, a tag or a patch writes into our
//! reports, so that text must not change what a reader sees around it (docs/semantics.md §7.1).
//!
//! - Bidirectional embedding, override and isolate controls (U+202A–U+202E, U+2066–U+2069)
//!   reorder the text around them on screen (Trojan Source, CVE-2021-42574): `i-0bad` could read
//!   as another instance. Every format shows each as `[U+202E]`; JSON and JSON lines keep the
//!   exact value, written as `\u202e` escapes that a program decodes and a person sees.
//! - A terminal never receives a control character: ESC starts the sequences that clear the
//!   screen or retitle the window. The table and Markdown show each as its Unicode control
//!   picture (ESC as `␛`).

use crate::QueryError;
use crate::report::{Chart, Report, Series, Table};
use arrow_array::cast::AsArray;
use arrow_array::{ArrayRef, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use std::borrow::Cow;
use std::sync::Arc;

fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// `s` with each bidirectional control written as `shown(c)`; borrowed when it has none.
fn bidi_rewritten(s: &str, shown: impl Fn(u32) -> String) -> Cow<'_, str> {
    if !has_bidi(s) {
        return s.into();
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if is_bidi_control(c) {
            out.push_str(&shown(c as u32));
        } else {
            out.push(c);
        }
    }
    out.into()
}

/// `s` with each bidirectional control written as `[U+XXXX]`.
pub(super) fn bidi_visible(s: &str) -> Cow<'_, str> {
    bidi_rewritten(s, |n| format!("[U+{n:04X}]"))
}

/// `s` for a terminal: bidirectional controls as `[U+XXXX]`, and every C0 and C1 control and DEL
/// as a visible picture (U+2400–U+2421 for C0 and DEL, U+FFFD for C1), so nothing in it is an
/// escape sequence.
pub(super) fn terminal_safe(s: &str) -> Cow<'_, str> {
    let s = bidi_visible(s);
    if !s.contains(char::is_control) {
        return s;
    }
    s.chars()
        .map(|c| match c as u32 {
            n @ 0..=0x1F => char::from_u32(0x2400 + n).unwrap_or('\u{FFFD}'),
            0x7F => '\u{2421}',
            0x80..=0x9F => '\u{FFFD}',
            _ => c,
        })
        .collect::<String>()
        .into()
}

/// JSON text with each bidirectional control written as a `\uXXXX` escape. They can only stand
/// inside JSON strings, where the escape decodes to the same character.
pub(super) fn json_escaped(bytes: Vec<u8>) -> Vec<u8> {
    match std::str::from_utf8(&bytes) {
        Ok(text) if has_bidi(text) => bidi_rewritten(text, |n| format!("\\u{n:04x}"))
            .into_owned()
            .into_bytes(),
        _ => bytes,
    }
}

fn has_bidi(s: &str) -> bool {
    s.contains(is_bidi_control)
}

fn is_text(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

/// Whether any text cell of `table` holds a bidirectional control (one pass over the bytes).
fn table_has_bidi(table: &Table) -> Result<bool, QueryError> {
    for batch in &table.batches {
        for column in batch.columns() {
            if !is_text(column.data_type()) {
                continue;
            }
            let text = as_utf8(column)?;
            let strings = text.as_string::<i32>();
            if std::str::from_utf8(strings.value_data()).is_ok_and(has_bidi) {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

fn as_utf8(column: &ArrayRef) -> Result<ArrayRef, QueryError> {
    arrow_cast::cast(column, &DataType::Utf8).map_err(|e| QueryError::Render(e.to_string()))
}

/// `table` with every text cell shown by `bidi_visible` (text columns become Utf8).
fn table_shown(table: &Table) -> Result<Table, QueryError> {
    let fields: Vec<Field> = table
        .schema
        .fields()
        .iter()
        .map(|f| {
            let t = if is_text(f.data_type()) {
                DataType::Utf8
            } else {
                f.data_type().clone()
            };
            Field::new(f.name(), t, f.is_nullable())
        })
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let mut batches = Vec::with_capacity(table.batches.len());
    for batch in &table.batches {
        let mut columns = Vec::with_capacity(batch.num_columns());
        for column in batch.columns() {
            if !is_text(column.data_type()) {
                columns.push(column.clone());
                continue;
            }
            let text = as_utf8(column)?;
            let shown: StringArray = text
                .as_string::<i32>()
                .iter()
                .map(|v| v.map(bidi_visible))
                .collect();
            columns.push(Arc::new(shown) as ArrayRef);
        }
        batches.push(
            RecordBatch::try_new(schema.clone(), columns)
                .map_err(|e| QueryError::Render(e.to_string()))?,
        );
    }
    Ok(Table {
        name: table.name.clone(),
        schema,
        batches,
    })
}

fn texts_shown(texts: &[String]) -> Vec<String> {
    texts.iter().map(|t| bidi_visible(t).into_owned()).collect()
}

fn chart_shown(chart: &Chart) -> Chart {
    let text = |s: &String| bidi_visible(s).into_owned();
    match chart {
        Chart::Lines {
            title,
            labels,
            series,
        } => Chart::Lines {
            title: text(title),
            labels: texts_shown(labels),
            series: series
                .iter()
                .map(|s| Series {
                    name: text(&s.name),
                    values: s.values.clone(),
                })
                .collect(),
        },
        Chart::Bars {
            title,
            labels,
            values,
        } => Chart::Bars {
            title: text(title),
            labels: texts_shown(labels),
            values: values.clone(),
        },
        Chart::Heat {
            title,
            rows,
            columns,
            values,
        } => Chart::Heat {
            title: text(title),
            rows: texts_shown(rows),
            columns: texts_shown(columns),
            values: values.clone(),
        },
    }
}

fn chart_texts(chart: &Chart) -> Box<dyn Iterator<Item = &String> + '_> {
    match chart {
        Chart::Lines {
            title,
            labels,
            series,
        } => Box::new(
            std::iter::once(title)
                .chain(labels)
                .chain(series.iter().map(|s| &s.name)),
        ),
        Chart::Bars { title, labels, .. } => Box::new(std::iter::once(title).chain(labels)),
        Chart::Heat {
            title,
            rows,
            columns,
            ..
        } => Box::new(std::iter::once(title).chain(rows).chain(columns)),
    }
}

/// `report` as a person sees it in every format but JSON: each bidirectional control in its
/// titles, notes, charts and cells written as `[U+XXXX]`. Borrowed when there is none, which is
/// nearly always, so a large report costs one scan of its text.
pub(super) fn report_shown(report: &Report) -> Result<Cow<'_, Report>, QueryError> {
    let in_text = [&report.title, &report.subtitle]
        .into_iter()
        .chain(&report.notes)
        .chain(report.charts.iter().flat_map(chart_texts))
        .any(|s| has_bidi(s));
    let mut in_tables = Vec::with_capacity(report.tables.len());
    for table in &report.tables {
        in_tables.push(table_has_bidi(table)?);
    }
    if !in_text && !in_tables.contains(&true) {
        return Ok(Cow::Borrowed(report));
    }
    let mut tables = Vec::with_capacity(report.tables.len());
    for (table, shown) in report.tables.iter().zip(in_tables) {
        tables.push(if shown {
            table_shown(table)?
        } else {
            table.clone()
        });
    }
    Ok(Cow::Owned(Report {
        title: bidi_visible(&report.title).into_owned(),
        subtitle: bidi_visible(&report.subtitle).into_owned(),
        lang: report.lang,
        tables,
        charts: report.charts.iter().map(chart_shown).collect(),
        notes: texts_shown(&report.notes),
        as_of: report.as_of,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_never_reach_a_reader_as_controls() {
        assert_eq!(
            bidi_visible("i-0abc\u{202E}exe.txt"),
            "i-0abc[U+202E]exe.txt"
        );
        assert_eq!(bidi_visible("web-01"), "web-01");
        assert_eq!(
            terminal_safe("\u{1b}]0;pwned\u{7}\u{1b}[2Jweb\u{2066}"),
            "␛]0;pwned␇␛[2Jweb[U+2066]"
        );
        assert_eq!(terminal_safe("\u{9b}31m"), "\u{FFFD}31m");
        assert_eq!(
            json_escaped("[\"a\u{202D}b\"]".as_bytes().to_vec()),
            b"[\"a\\u202db\"]".to_vec()
        );
        let decoded: Vec<String> =
            serde_json::from_slice(&json_escaped("[\"a\u{2069}\"]".as_bytes().to_vec()))
                .expect("still JSON");
        assert_eq!(decoded, ["a\u{2069}"]);
    }
}
