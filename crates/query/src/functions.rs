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

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::logical_expr::{ColumnarValue, Volatility, create_udf};
use datafusion::prelude::SessionContext;
use patchtrail_model::{
    StateClass, change_name, is_critical, is_security, patch_version, severity_level,
};
use std::sync::Arc;

/// The arguments as string arrays of one length.
fn strings(args: &[ColumnarValue]) -> Result<Vec<StringArray>> {
    ColumnarValue::values_to_arrays(args)?
        .iter()
        .map(|a| {
            let a = cast(a, &DataType::Utf8)?;
            Ok(a.as_any()
                .downcast_ref::<StringArray>()
                .cloned()
                .unwrap_or_else(|| StringArray::new_null(a.len())))
        })
        .collect()
}

fn value(a: &StringArray, i: usize) -> Option<&str> {
    (!a.is_null(i)).then(|| a.value(i))
}

/// Registers a function of `arity` strings computed row by row.
fn register<T, F>(ctx: &SessionContext, name: &str, arity: usize, returns: DataType, f: F)
where
    F: Fn(&[Option<&str>]) -> Option<T> + Send + Sync + 'static,
    T: Into<Cell>,
{
    let out = returns.clone();
    let fun = Arc::new(move |args: &[ColumnarValue]| -> Result<ColumnarValue> {
        let columns = strings(args)?;
        let rows = columns.first().map_or(0, Array::len);
        let cells: Vec<Option<Cell>> = (0..rows)
            .map(|i| {
                let row: Vec<Option<&str>> = columns.iter().map(|c| value(c, i)).collect();
                f(&row).map(Into::into)
            })
            .collect();
        let array: ArrayRef = match out {
            DataType::Boolean => Arc::new(
                cells
                    .iter()
                    .map(|c| c.as_ref().and_then(Cell::flag))
                    .collect::<BooleanArray>(),
            ),
            _ => Arc::new(
                cells
                    .iter()
                    .map(|c| c.as_ref().and_then(Cell::text))
                    .collect::<StringArray>(),
            ),
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

/// A function result: text or a flag.
pub enum Cell {
    Text(String),
    Flag(bool),
}

impl Cell {
    fn text(&self) -> Option<&str> {
        match self {
            Cell::Text(s) => Some(s),
            Cell::Flag(_) => None,
        }
    }
    fn flag(&self) -> Option<bool> {
        match self {
            Cell::Flag(b) => Some(*b),
            Cell::Text(_) => None,
        }
    }
}

impl From<&str> for Cell {
    fn from(s: &str) -> Cell {
        Cell::Text(s.to_string())
    }
}

impl From<bool> for Cell {
    fn from(b: bool) -> Cell {
        Cell::Flag(b)
    }
}

pub fn register_all(ctx: &SessionContext) {
    register(ctx, "state_class", 1, DataType::Utf8, |a| {
        a[0].map(|s| StateClass::of(s).as_str())
    });
    register(ctx, "makes_noncompliant", 1, DataType::Boolean, |a| {
        a[0].map(|s| StateClass::of(s).makes_noncompliant())
    });
    register(ctx, "severity_level", 1, DataType::Utf8, |a| {
        Some(severity_level(a[0].unwrap_or("")))
    });
    register(ctx, "is_critical", 2, DataType::Boolean, |a| {
        Some(is_critical(a[0].unwrap_or(""), a[1].unwrap_or("")))
    });
    register(ctx, "is_security", 1, DataType::Boolean, |a| {
        Some(is_security(a[0].unwrap_or("")))
    });
    register(ctx, "patch_version", 2, DataType::Utf8, |a| {
        patch_version(a[0]?, a[1]?).map(|v| Cell::Text(v.to_string()))
    });
    register(ctx, "change_name", 2, DataType::Utf8, |a| {
        let class = |s: Option<&str>| s.and_then(StateClass::parse);
        change_name(class(a[0]), class(a[1]))
    });
}
