//! The report value: what a question answers (tables, notes, chart specifications) and what every
//! renderer consumes. Questions build it, renderers read it; neither imports the other.

use crate::QueryError;
use arrow_array::builder::StringBuilder;
use arrow_array::cast::AsArray;
use arrow_array::types::TimestampMicrosecondType;
use arrow_array::{
    Array, ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use std::sync::Arc;

/// One table of a report.
#[derive(Debug, Clone)]
pub struct Table {
    pub name: String,
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
}

impl Table {
    pub fn rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }
}

/// A report: its tables (the first is the main one, the one CSV/JSON carry by default) and what
/// it covers.
#[derive(Debug, Clone)]
pub struct Report {
    pub title: String,
    pub subtitle: String,
    /// The language of its human-facing text (titles, headers, chart labels).
    pub lang: crate::Lang,
    pub tables: Vec<Table>,
    /// What the HTML page draws above the tables.
    pub charts: Vec<Chart>,
    /// What a reader must know to trust the tables (damaged runs left out, §1.5): every format
    /// shows them.
    pub notes: Vec<String>,
    /// The instant the report describes, set with its provenance: the as-of, or the newest run
    /// it read. The workbook's creation time, so that the same question asked of the same store
    /// gives the same bytes (an evidence pack is reproducible).
    pub as_of: Option<chrono::DateTime<chrono::Utc>>,
}

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

fn render_error(e: impl std::fmt::Display) -> QueryError {
    QueryError::Render(e.to_string())
}

/// Every cell of a table as display text (`""` for null), row by row.
pub fn cell_text(table: &Table) -> Result<Vec<Vec<String>>, QueryError> {
    let mut rows: Vec<Vec<String>> = Vec::with_capacity(table.rows());
    each_cell(table, |column, text| {
        if column == 0 {
            rows.push(Vec::new());
        }
        if let Some(row) = rows.last_mut() {
            row.push(text.to_string());
        }
    })?;
    Ok(rows)
}

/// Calls `f(column, text)` for every cell as the reports display it (nulls empty), row by row;
/// one text buffer serves every cell, so a large table costs no allocation per cell.
pub fn each_cell(table: &Table, mut f: impl FnMut(usize, &str)) -> Result<(), QueryError> {
    use std::fmt::Write;
    let options = FormatOptions::default().with_null("");
    let mut text = String::new();
    for batch in &table.batches {
        let formatters = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()
            .map_err(render_error)?;
        // A text cell is shown as it is, without formatting; a time is formatted once per run
        // of equal values (a table's snapshot times repeat row after row).
        let texts: Vec<Option<&StringArray>> = batch
            .columns()
            .iter()
            .map(|c| c.as_string_opt::<i32>())
            .collect();
        let times: Vec<Option<&TimestampMicrosecondArray>> = batch
            .columns()
            .iter()
            .map(|c| c.as_primitive_opt::<TimestampMicrosecondType>())
            .collect();
        let mut last_time: Vec<Option<(i64, String)>> = vec![None; formatters.len()];
        for row in 0..batch.num_rows() {
            for (column, formatter) in formatters.iter().enumerate() {
                if let Some(texts) = texts[column] {
                    f(
                        column,
                        if texts.is_valid(row) {
                            texts.value(row)
                        } else {
                            ""
                        },
                    );
                    continue;
                }
                if let Some(times) = times[column].filter(|t| t.is_valid(row)) {
                    let at = times.value(row);
                    let last = &mut last_time[column];
                    if last.as_ref().is_none_or(|(t, _)| *t != at) {
                        let mut shown = String::new();
                        write!(shown, "{}", formatter.value(row)).map_err(render_error)?;
                        *last = Some((at, shown));
                    }
                    if let Some((_, shown)) = last {
                        f(column, shown);
                    }
                    continue;
                }
                text.clear();
                write!(text, "{}", formatter.value(row)).map_err(render_error)?;
                f(column, &text);
            }
        }
    }
    Ok(())
}

/// Whether column `i` holds numbers (right-aligned, written as numbers in XLSX).
pub fn is_numeric(table: &Table, i: usize) -> bool {
    table.schema.field(i).data_type().is_numeric()
}

pub fn column_names(table: &Table) -> Vec<String> {
    table
        .schema
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect()
}

/// The text of column `name` of `table`, row by row.
pub fn column(table: &Table, name: &str) -> Result<Vec<String>, QueryError> {
    let i = column_names(table)
        .iter()
        .position(|n| n == name)
        .ok_or_else(|| QueryError::Render(format!("column {name} missing from {}", table.name)))?;
    Ok(cell_text(table)?
        .into_iter()
        .map(|mut row| row.swap_remove(i))
        .collect())
}

pub fn numbers(table: &Table, name: &str) -> Result<Vec<f64>, QueryError> {
    Ok(column(table, name)?
        .iter()
        .map(|v| v.parse().unwrap_or(0.0))
        .collect())
}

/// A column of a table being built: its field and its values.
pub(crate) type Column = (Field, ArrayRef);

/// A table of one batch from `columns`.
pub(crate) fn table(name: &str, columns: Vec<Column>) -> Result<Table, QueryError> {
    let (fields, arrays): (Vec<Field>, Vec<ArrayRef>) = columns.into_iter().unzip();
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(schema.clone(), arrays)
        .map_err(|e| QueryError::Engine(format!("{name}: {e}")))?;
    Ok(Table {
        name: name.into(),
        schema,
        batches: vec![batch],
    })
}

pub(crate) fn text_column<'a>(
    name: &str,
    nullable: bool,
    values: impl Iterator<Item = Option<&'a str>>,
) -> Column {
    // Sized once: a large table's text would otherwise be copied each time its buffer grows.
    let values: Vec<Option<&str>> = values.collect();
    let bytes = values.iter().flatten().map(|v| v.len()).sum();
    let mut column = StringBuilder::with_capacity(values.len(), bytes);
    for value in values {
        column.append_option(value);
    }
    (
        Field::new(name, DataType::Utf8, nullable),
        Arc::new(column.finish()),
    )
}

pub(crate) fn int_column(name: &str, values: impl Iterator<Item = i64>) -> Column {
    (
        Field::new(name, DataType::Int64, false),
        Arc::new(Int64Array::from_iter_values(values)),
    )
}

pub(crate) fn time_column(
    name: &str,
    nullable: bool,
    values: impl Iterator<Item = Option<i64>>,
) -> Column {
    (
        Field::new(
            name,
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            nullable,
        ),
        Arc::new(
            values
                .collect::<TimestampMicrosecondArray>()
                .with_timezone("UTC"),
        ),
    )
}
