//! The stored rows of one run as Arrow arrays, decoding only the columns a report asks for: the
//! reports that compute on arrays (no SQL engine) read the checked bytes the history holds, in
//! whichever format the run was written (Parquet, JSON lines, or the seed workflow's pages).
//!
//! A file written before a column existed decodes with that column null, as the SQL tables read
//! it, so every report sees every run with the current schema.

use crate::QueryError;
use arrow_array::cast::AsArray;
use arrow_array::types::{Int64Type, TimestampMicrosecondType};
use arrow_array::{
    Array, ArrayRef, BooleanArray, Int64Array, PrimitiveArray, RecordBatch, StringArray,
    new_null_array,
};
use arrow_schema::{DataType, Schema, SchemaRef};
use bytes::Bytes;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ArrowPredicateFn, ParquetRecordBatchReaderBuilder, RowFilter};
use patchtrail_model::{instances_schema, patches_schema};
use std::sync::Arc;

/// The two stored tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stored {
    Patches,
    Instances,
}

impl Stored {
    fn schema(self) -> SchemaRef {
        match self {
            Stored::Patches => patches_schema(),
            Stored::Instances => instances_schema(),
        }
    }
}

/// One stored piece of a run's table: an object's checked bytes, or rows built in memory (the
/// seed workflow's pages).
#[derive(Debug, Clone)]
pub(crate) enum Part {
    Parquet { key: String, bytes: Bytes },
    Jsonl { key: String, bytes: Bytes },
    Rows(RecordBatch),
}

/// A run's stored pieces, per table.
#[derive(Debug, Clone, Default)]
pub(crate) struct RunParts {
    pub patches: Vec<Part>,
    pub instances: Vec<Part>,
}

impl RunParts {
    /// The rows of `table`, with exactly the columns `names` (in that order, current types).
    pub fn read(&self, table: Stored, names: &[&str]) -> Result<Vec<RecordBatch>, QueryError> {
        self.read_where(table, names, None)
    }

    /// [`RunParts::read`], keeping only the rows whose text column `only.0` is `only.1` when
    /// given (an instance's rows, a KB's): in Parquet that column is decoded first and the others
    /// only for its rows (a row filter, as DuckDB's late materialisation does); elsewhere the rows
    /// are sliced out, each run of them one zero-copy slice.
    pub fn read_where(
        &self,
        table: Stored,
        names: &[&str],
        only: Option<(&str, &str)>,
    ) -> Result<Vec<RecordBatch>, QueryError> {
        let full = table.schema();
        let wanted = Arc::new(
            full.project(
                &names
                    .iter()
                    .map(|n| full.index_of(n))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| QueryError::Engine(format!("{table:?}: {e}")))?,
            )
            .map_err(|e| QueryError::Engine(e.to_string()))?,
        );
        let parts = match table {
            Stored::Patches => &self.patches,
            Stored::Instances => &self.instances,
        };
        let mut out = Vec::new();
        for part in parts {
            let unreadable =
                |key: &str, e: &dyn std::fmt::Display| QueryError::Engine(format!("{key}: {e}"));
            match part {
                Part::Parquet { key, bytes } => {
                    let mut builder = ParquetRecordBatchReaderBuilder::try_new(bytes.clone())
                        .map_err(|e| unreadable(key, &e))?;
                    let mask = ProjectionMask::columns(builder.parquet_schema(), names.to_vec());
                    if let Some((name, value)) = only {
                        let filtered = ProjectionMask::columns(builder.parquet_schema(), [name]);
                        let value = value.to_string();
                        let predicate =
                            ArrowPredicateFn::new(filtered, move |batch: RecordBatch| {
                                let column = batch.column(0).as_string::<i32>();
                                Ok(column
                                    .iter()
                                    .map(|v| Some(v == Some(value.as_str())))
                                    .collect::<BooleanArray>())
                            });
                        builder =
                            builder.with_row_filter(RowFilter::new(vec![Box::new(predicate)]));
                    }
                    for batch in builder
                        .with_projection(mask)
                        .build()
                        .map_err(|e| unreadable(key, &e))?
                    {
                        let batch = batch.map_err(|e| unreadable(key, &e))?;
                        out.push(conform(&batch, &wanted).map_err(|e| unreadable(key, &e))?);
                    }
                }
                Part::Jsonl { key, bytes } => {
                    // Not strict: members outside the projection are skipped, not refused.
                    let reader = arrow_json::ReaderBuilder::new(wanted.clone())
                        .build(std::io::Cursor::new(bytes.as_ref()))
                        .map_err(|e| unreadable(key, &e))?;
                    for batch in reader {
                        let batch = batch.map_err(|e| unreadable(key, &e))?;
                        out.extend(rows_of(&batch, only).map_err(|e| unreadable(key, &e))?);
                    }
                }
                Part::Rows(batch) => {
                    let batch =
                        conform(batch, &wanted).map_err(|e| unreadable("seed pages", &e))?;
                    out.extend(rows_of(&batch, only).map_err(|e| unreadable("seed pages", &e))?)
                }
            }
        }
        Ok(out)
    }
}

/// The rows of `batch` whose text column `only.0` is `only.1` (all of them without a filter), as
/// slices: each run of them one zero-copy slice.
fn rows_of(
    batch: &RecordBatch,
    only: Option<(&str, &str)>,
) -> Result<Vec<RecordBatch>, arrow_schema::ArrowError> {
    let Some((name, wanted)) = only else {
        return Ok(vec![batch.clone()]);
    };
    let column = batch
        .column_by_name(name)
        .and_then(|c| c.as_string_opt::<i32>())
        .ok_or_else(|| arrow_schema::ArrowError::SchemaError(format!("no text column {name}")))?;
    Ok(runs_by(batch.num_rows(), |i| {
        column.is_valid(i) && column.value(i) == wanted
    })
    .filter(|(matches, _)| *matches)
    .map(|(_, range)| batch.slice(range.start, range.len()))
    .collect())
}

/// `batch` with the columns of `wanted`: a column the file lacks is all null, one stored with
/// another type is cast (a column added after the file was written, or widened since).
fn conform(
    batch: &RecordBatch,
    wanted: &SchemaRef,
) -> Result<RecordBatch, arrow_schema::ArrowError> {
    let columns = wanted
        .fields()
        .iter()
        .map(|f| match batch.column_by_name(f.name()) {
            Some(c) if c.data_type() == f.data_type() => Ok(c.clone()),
            Some(c) => arrow_cast::cast(c, f.data_type()),
            None => Ok(new_null_array(f.data_type(), batch.num_rows())),
        })
        .collect::<Result<Vec<ArrayRef>, _>>()?;
    let relaxed = Schema::new(
        wanted
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect::<Vec<_>>(),
    );
    RecordBatch::try_new(Arc::new(relaxed), columns)
}

fn missing(name: &str, kind: &str) -> QueryError {
    QueryError::Engine(format!("column {name} is missing or not {kind}"))
}

/// Column `name` of `batch` as text.
pub(crate) fn text<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a StringArray, QueryError> {
    batch
        .column_by_name(name)
        .filter(|c| c.data_type() == &DataType::Utf8)
        .map(|c| c.as_string::<i32>())
        .ok_or_else(|| missing(name, "text"))
}

/// Column `name` of `batch` as a count.
pub(crate) fn count<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a Int64Array, QueryError> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_primitive_opt::<Int64Type>())
        .ok_or_else(|| missing(name, "a count"))
}

/// Column `name` of `batch` as UTC microseconds.
pub(crate) fn micros<'a>(
    batch: &'a RecordBatch,
    name: &str,
) -> Result<&'a PrimitiveArray<TimestampMicrosecondType>, QueryError> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>())
        .ok_or_else(|| missing(name, "a time"))
}

/// Row `i` of a text column, None when null.
pub(crate) fn opt_text(a: &StringArray, i: usize) -> Option<&str> {
    a.is_valid(i).then(|| a.value(i))
}

/// Row `i` of a count or time column, None when null.
pub(crate) fn opt_i64<T>(a: &PrimitiveArray<T>, i: usize) -> Option<i64>
where
    T: arrow_array::ArrowPrimitiveType<Native = i64>,
{
    a.is_valid(i).then(|| a.value(i))
}

/// The runs of consecutive rows among `0..len` with an equal `key`, each with its key: a file
/// holds an instance's rows together, so work per instance is done once per run of rows, not once
/// per row.
pub(crate) fn runs_by<T: PartialEq>(
    len: usize,
    key: impl Fn(usize) -> T,
) -> impl Iterator<Item = (T, std::ops::Range<usize>)> {
    let mut start = 0;
    std::iter::from_fn(move || {
        if start >= len {
            return None;
        }
        let first = key(start);
        let mut end = start + 1;
        while end < len && key(end) == first {
            end += 1;
        }
        let range = start..end;
        start = end;
        Some((first, range))
    })
}
