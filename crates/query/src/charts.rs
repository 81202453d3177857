//! The charts each report draws in HTML, built from the report's own tables (never from a
//! second query), so a chart always shows the numbers printed below it.

use crate::QueryError;
use crate::render::{Chart, Series, cell_text, column_names};
use crate::reports::Table;

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

/// `summary`: instances by compliance, missing patches by severity, the most missed patches.
pub fn summary(fleet: &Table, severity: &Table, top: &Table) -> Result<Vec<Chart>, QueryError> {
    let classes = [
        "compliant",
        "non_compliant",
        "unknown",
        "unmanaged",
        "error",
    ];
    let mut counts = Vec::with_capacity(classes.len());
    for c in classes {
        counts.push(numbers(fleet, c)?.first().copied().unwrap_or(0.0));
    }
    let kb = column(top, "kb_id")?;
    Ok(vec![
        Chart::Bars {
            title: "Instances by compliance".into(),
            labels: classes.iter().map(|c| c.to_string()).collect(),
            values: counts,
        },
        Chart::Bars {
            title: "Missing patches by severity".into(),
            labels: column(severity, "severity_level")?,
            values: numbers(severity, "missing")?,
        },
        Chart::Bars {
            title: "Most missed patches (instances)".into(),
            labels: kb,
            values: numbers(top, "instances")?,
        },
    ])
}

/// `diff`: changes by kind.
pub fn diff(counts: &Table) -> Result<Vec<Chart>, QueryError> {
    Ok(vec![Chart::Bars {
        title: "Changes by kind".into(),
        labels: column(counts, "change")?,
        values: numbers(counts, "count")?,
    }])
}

/// Lines of `series` columns over the table's `snapshot_time` (dates as labels).
pub fn over_time(table: &Table, title: &str, series: &[&str]) -> Result<Vec<Chart>, QueryError> {
    let labels = column(table, "snapshot_time")?
        .iter()
        .map(|t| t.chars().take(10).collect())
        .collect();
    let mut lines = Vec::with_capacity(series.len());
    for name in series {
        lines.push(Series {
            name: name.replace('_', " "),
            values: numbers(table, name)?,
        });
    }
    Ok(vec![Chart::Lines {
        title: title.to_string(),
        labels,
        series: lines,
    }])
}
