//! The HTML dashboard `patchtrail demo` ends with (and `report summary --format html` extends):
//! fleet totals, the trend, missing patches by severity, a heat map of missing patches per
//! instance and snapshot, and the auditor's questions: SLA status and CVE exposure (§8).

use crate::QueryError;
use crate::history::LoadedHistory;
use crate::judgments::{SlaPolicy, Waivers};
use crate::report::{Chart, Report};
use crate::report::{column, numbers};
use crate::sql::quote;
use chrono::{DateTime, Utc};

/// Instances shown in the heat map.
const HEAT_ROWS: usize = 40;

pub async fn dashboard(
    history: &LoadedHistory,
    instant: DateTime<Utc>,
    label: &str,
    waivers: &Waivers,
) -> Result<Report, QueryError> {
    let summary = history
        .summary(instant, label, crate::DEFAULT_STALE_DAYS, None)
        .await?;
    let trend = history
        .trend(None, Some(instant), crate::DEFAULT_STALE_DAYS)
        .await?;
    let trend_table = &trend.tables[0];
    let dates = super::charts::dates(trend_table)?;
    let lang = history.lang;
    // One unit per chart: instances, then patches.
    let line = |column: &str| super::charts::series(lang, trend_table, column);
    let mut charts = vec![
        Chart::Lines {
            title: lang.chart_over_time().into(),
            labels: dates.clone(),
            series: vec![line("noncompliant_instances")?, line("unknown_instances")?],
        },
        Chart::Lines {
            title: lang.chart_instance_over_time().into(),
            labels: dates.clone(),
            series: vec![
                line("missing_critical")?,
                line("missing_security")?,
                line("failed")?,
            ],
        },
    ];

    let chosen = history.require_as_of(instant, label)?;
    let runs = chosen
        .iter()
        .map(|r| quote(&r.run_id))
        .collect::<Vec<_>>()
        .join(",");
    let severity = &summary.tables[2];
    charts.push(Chart::Bars {
        title: format!("{} ({label})", lang.chart_missing_by_severity()),
        labels: column(severity, "severity_level")?
            .iter()
            .map(|v| lang.value(v))
            .collect(),
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
        title: lang.chart_worst_instances(rows.len()),
        rows,
        columns: dates,
        values,
    });

    let sla = history
        .sla(
            instant,
            label,
            crate::DEFAULT_STALE_DAYS,
            &SlaPolicy::default(),
            waivers,
        )
        .await?;
    let exposure = history
        .exposure(instant, label, crate::DEFAULT_STALE_DAYS, &[], waivers)
        .await?;
    charts.extend(sla.charts.iter().cloned());
    charts.extend(exposure.charts.iter().cloned());

    let mut tables = summary.tables.clone();
    tables.swap(0, 1);
    tables.insert(1, trend_table.clone());
    // SLA per scope, CVEs by exposure, and the waivers applied, after the fleet's own tables.
    tables.extend(sla.tables.iter().skip(1).cloned());
    tables.extend(exposure.tables.get(1).cloned());
    let mut notes = summary.notes;
    notes.extend(sla.notes.into_iter().skip(history.notes().len()));
    Ok(Report {
        title: lang.dashboard_title(label),
        subtitle: summary.subtitle,
        lang,
        tables,
        charts,
        notes,
    })
}
