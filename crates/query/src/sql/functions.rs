//! The rules of `docs/semantics.md` as SQL functions, so that every report (and every user's
//! `patchtrail sql`) classifies states and severities with the one implementation in
//! `patchtrail_model`, never with CASE lists copied into SQL:
//!
//! | function | rule |
//! |---|---|
//! | `state_class(state)` | §2.1 |
//! | `makes_noncompliant(state)` | §2.1 |
//! | `severity_level(severity)` | §3.1 |
//! | `is_critical(severity, classification)`, `is_security(classification)` | §3.3 |
//! | `patch_version(kb_id, title)` | §6.5 |
//! | `change_name(from_class, to_class)` (null = not reported) | §6.2 |

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanBuilder, StringBuilder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::logical_expr::{ColumnarValue, Volatility, create_udf};
use datafusion::prelude::SessionContext;
use patchtrail_model::{
    StateClass, change_name, is_critical, is_security, patch_version, severity_level,
};
use std::sync::Arc;

/// The arguments as arrays of text, as they come (`Utf8`, `LargeUtf8`, `Utf8View`: read in
/// place, not copied), anything else cast to text.
fn text_arrays(args: &[ColumnarValue]) -> Result<Vec<ArrayRef>> {
    ColumnarValue::values_to_arrays(args)?
        .into_iter()
        .map(|a| match a.data_type() {
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Ok(a),
            _ => Ok(cast(&a, &DataType::Utf8)?),
        })
        .collect()
}

/// The values of a text array, row by row.
fn texts(a: &ArrayRef) -> Vec<Option<&str>> {
    match a.data_type() {
        DataType::Utf8 => a.as_string::<i32>().iter().collect(),
        DataType::LargeUtf8 => a.as_string::<i64>().iter().collect(),
        DataType::Utf8View => a.as_string_view().iter().collect(),
        _ => vec![None; a.len()],
    }
}

/// Registers a function of `arity` strings computed row by row. Results borrow from the
/// arguments or are static, so no row allocates.
fn register<F>(ctx: &SessionContext, name: &str, arity: usize, returns: DataType, f: F)
where
    F: for<'a> Fn(&[Option<&'a str>]) -> Option<Cell<'a>> + Send + Sync + 'static,
{
    let out = returns.clone();
    let fun = Arc::new(move |args: &[ColumnarValue]| -> Result<ColumnarValue> {
        let arrays = text_arrays(args)?;
        let columns: Vec<Vec<Option<&str>>> = arrays.iter().map(texts).collect();
        let rows = columns.first().map_or(0, Vec::len);
        let mut row = vec![None; columns.len()];
        let mut cell = |i: usize| {
            for (slot, column) in row.iter_mut().zip(&columns) {
                *slot = column[i];
            }
            f(&row)
        };
        let array: ArrayRef = match out {
            DataType::Boolean => {
                let mut flags = BooleanBuilder::with_capacity(rows);
                for i in 0..rows {
                    flags.append_option(cell(i).and_then(|c| c.flag()));
                }
                Arc::new(flags.finish())
            }
            _ => {
                let mut text = StringBuilder::with_capacity(rows, rows * 8);
                for i in 0..rows {
                    text.append_option(cell(i).and_then(|c| c.text()));
                }
                Arc::new(text.finish())
            }
        };
        Ok(ColumnarValue::Array(array))
    });
    ctx.register_udf(create_udf(
        name,
        vec![DataType::Utf8; arity],
        returns,
        Volatility::Immutable,
        fun,
    ));
}

/// A function result: text (static, or borrowed from an argument) or a flag.
pub enum Cell<'a> {
    Text(&'a str),
    Flag(bool),
}

impl<'a> Cell<'a> {
    fn text(self) -> Option<&'a str> {
        match self {
            Cell::Text(s) => Some(s),
            Cell::Flag(_) => None,
        }
    }
    fn flag(self) -> Option<bool> {
        match self {
            Cell::Flag(b) => Some(b),
            Cell::Text(_) => None,
        }
    }
}

impl<'a> From<&'a str> for Cell<'a> {
    fn from(s: &'a str) -> Cell<'a> {
        Cell::Text(s)
    }
}

impl From<bool> for Cell<'_> {
    fn from(b: bool) -> Self {
        Cell::Flag(b)
    }
}

pub fn register_all(ctx: &SessionContext) {
    register(ctx, "state_class", 1, DataType::Utf8, |a| {
        a[0].map(|s| StateClass::of(s).as_str().into())
    });
    register(ctx, "makes_noncompliant", 1, DataType::Boolean, |a| {
        a[0].map(|s| StateClass::of(s).makes_noncompliant().into())
    });
    register(ctx, "severity_level", 1, DataType::Utf8, |a| {
        Some(severity_level(a[0].unwrap_or("")).into())
    });
    register(ctx, "is_critical", 2, DataType::Boolean, |a| {
        Some(is_critical(a[0].unwrap_or(""), a[1].unwrap_or("")).into())
    });
    register(ctx, "is_security", 1, DataType::Boolean, |a| {
        Some(is_security(a[0].unwrap_or("")).into())
    });
    register(ctx, "patch_version", 2, DataType::Utf8, |a| {
        patch_version(a[0]?, a[1]?).map(Cell::Text)
    });
    register(ctx, "change_name", 2, DataType::Utf8, |a| {
        let class = |s: Option<&str>| s.and_then(StateClass::parse);
        change_name(class(a[0]), class(a[1])).map(Cell::Text)
    });
    // §8.6: whether an instance's tags (a JSON object string, the `tags` column) hold key=value.
    register(ctx, "has_tag", 3, DataType::Boolean, |a| {
        let tags: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(a[0].unwrap_or("{}")).unwrap_or_default();
        let found = tags.get(a[1].unwrap_or_default()).and_then(|v| v.as_str());
        Some((found.is_some() && found == a[2]).into())
    });
}
