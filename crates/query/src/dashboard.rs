//! The HTML dashboard `patchtrail demo` ends with (and `report summary --format html` extends):
//! fleet totals, the trend, missing patches by severity, and a heat map of missing patches per
//! instance and snapshot.

use crate::QueryError;
use crate::charts::{column, numbers};
use crate::history::LoadedHistory;
use crate::render::{Chart, Series, render_html_with_charts};
use crate::reports::{Report, quote};
use chrono::{DateTime, Utc};

/// Instances shown in the heat map.
const HEAT_ROWS: usize = 40;

pub async fn dashboard(
    history: &LoadedHistory,
    instant: DateTime<Utc>,
    label: &str,
) -> Result<String, QueryError> {
    let summary = history
        .summary(instant, label, crate::DEFAULT_STALE_DAYS)
        .await?;
    let trend = history
        .trend(None, Some(instant), crate::DEFAULT_STALE_DAYS)
        .await?;
    let trend_table = &trend.tables[0];
    let dates: Vec<String> = column(trend_table, "snapshot_time")?
        .iter()
        .map(|t| t.chars().take(10).collect())
        .collect();
    let mut charts = vec![Chart::Lines {
        title: "Compliance over time".into(),
        labels: dates.clone(),
        series: vec![
            Series {
                name: "non-compliant instances".into(),
                values: numbers(trend_table, "noncompliant_instances")?,
            },
            Series {
                name: "missing critical patches".into(),
                values: numbers(trend_table, "missing_critical")?,
            },
            Series {
                name: "missing security patches".into(),
                values: numbers(trend_table, "missing_security")?,
            },
        ],
    }];

    let chosen = history.require_as_of(instant, label)?;
    let runs = chosen
        .iter()
        .map(|r| quote(&r.run_id))
        .collect::<Vec<_>>()
        .join(",");
    let severity = &summary.tables[2];
    charts.push(Chart::Bars {
        title: format!("Missing patches by severity ({label})"),
        labels: column(severity, "severity_level")?,
        values: numbers(severity, "missing")?,
    });

    let heat = history
        .query(
            "heat",
            &format!(
                "WITH worst AS (SELECT instance_id FROM patches WHERE run_id IN ({runs}) AND state_class(state) = 'missing'
                                GROUP BY instance_id ORDER BY COUNT(*) DESC, instance_id LIMIT {HEAT_ROWS}),
                      cells AS (SELECT instance_id, run_id, SUM(CASE WHEN state_class(state) = 'missing' THEN 1 ELSE 0 END) AS missing
                                FROM patches WHERE instance_id IN (SELECT instance_id FROM worst) AND snapshot_time <= to_timestamp_micros({micros})
                                GROUP BY instance_id, run_id)
                 SELECT COALESCE(i.name, '') || ' ' || c.instance_id AS instance_id, r.snapshot_time, c.missing
                 FROM cells c JOIN runs r ON r.run_id = c.run_id
                 LEFT JOIN instances i ON i.run_id = c.run_id AND i.instance_id = c.instance_id
                 ORDER BY instance_id, r.snapshot_time",
                micros = instant.timestamp_micros()
            ),
        )
        .await?;
    let (ids, times, missing) = (
        column(&heat, "instance_id")?,
        column(&heat, "snapshot_time")?,
        numbers(&heat, "missing")?,
    );
    let mut rows: Vec<String> = ids.clone();
    rows.dedup();
    let values: Vec<Vec<f64>> = rows
        .iter()
        .map(|id| {
            dates
                .iter()
                .map(|d| {
                    ids.iter()
                        .zip(&times)
                        .zip(&missing)
                        .find(|((i, t), _)| *i == id && t.starts_with(d.as_str()))
                        .map(|(_, m)| *m)
                        .unwrap_or(0.0)
                })
                .collect()
        })
        .collect();
    charts.push(Chart::Heat {
        title: format!("Missing patches per instance (the {} worst)", rows.len()),
        rows,
        columns: dates,
        values,
    });

    let mut tables = summary.tables.clone();
    tables.swap(0, 1);
    tables.insert(1, trend_table.clone());
    let report = Report {
        title: format!("Patch compliance report as of {label}"),
        subtitle: summary.subtitle,
        tables,
        charts: Vec::new(),
    };
    render_html_with_charts(&report, &charts)
}
