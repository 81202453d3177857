//! The HTML dashboard `patchtrail demo` ends with (and `report summary --format html` extends):
//! fleet totals, the trend, missing patches by severity, a heat map of missing patches per
//! instance and snapshot, and the auditor's questions: SLA status and CVE exposure (§8).

use crate::QueryError;
use crate::columns::{Stored, opt_text, text};
use crate::history::{LoadedHistory, RunInfo};
use crate::judgments::{SlaPolicy, Waivers};
use crate::report::{
    Chart, Report, Table, column, int_column, numbers, table, text_column, time_column,
};
use chrono::{DateTime, Utc};
use patchtrail_model::StateClass;
use std::collections::{HashMap, HashSet};

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
    let severity = &summary.tables[2];
    charts.push(Chart::Bars {
        title: format!("{} ({label})", lang.chart_missing_by_severity()),
        labels: column(severity, "severity_level")?
            .iter()
            .map(|v| lang.value(v))
            .collect(),
        values: numbers(severity, "missing")?,
    });

    let heat = heat_cells(history, &chosen, instant)?;
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
            &crate::Kev::default(),
        )
        .await?;
    let exposure = history
        .exposure(
            instant,
            label,
            crate::DEFAULT_STALE_DAYS,
            &[],
            waivers,
            &crate::Kev::default(),
        )
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
        as_of: None,
        tables,
        charts,
        notes,
    })
}

/// The heat map's cells: the [`HEAT_ROWS`] instances missing the most patches in the snapshots
/// `chosen`, and per snapshot up to `instant` that lists patches of one of them, its missing
/// patches there; each labelled with the instance's name in that snapshot.
fn heat_cells(
    history: &LoadedHistory,
    chosen: &[&RunInfo],
    instant: DateTime<Utc>,
) -> Result<Table, QueryError> {
    let none = Default::default();
    let parts = |run: &RunInfo| history.parts.get(&run.run_id).unwrap_or(&none);
    let missing_per_instance = |run: &RunInfo, counts: &mut HashMap<String, i64>| {
        for batch in parts(run).read(Stored::Patches, &["instance_id", "state"])? {
            let (ids, states) = (text(&batch, "instance_id")?, text(&batch, "state")?);
            for i in 0..batch.num_rows() {
                let missing = StateClass::of(states.value(i)) == StateClass::Missing;
                *counts.entry(ids.value(i).to_string()).or_default() += i64::from(missing);
            }
        }
        Ok::<_, QueryError>(())
    };
    let mut now = HashMap::new();
    for run in chosen {
        missing_per_instance(run, &mut now)?;
    }
    let mut worst: Vec<(String, i64)> = now.into_iter().filter(|(_, n)| *n > 0).collect();
    worst.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    worst.truncate(HEAT_ROWS);
    let worst: HashSet<String> = worst.into_iter().map(|(id, _)| id).collect();

    // (label, snapshot time, missing)
    let mut cells: Vec<(String, i64, i64)> = Vec::new();
    for run in history.runs.iter().filter(|r| r.snapshot_time <= instant) {
        let mut counts = HashMap::new();
        missing_per_instance(run, &mut counts)?;
        counts.retain(|id, _| worst.contains(id));
        if counts.is_empty() {
            continue;
        }
        let mut names: HashMap<String, String> = HashMap::new();
        for batch in parts(run).read(Stored::Instances, &["instance_id", "name"])? {
            let (ids, name) = (text(&batch, "instance_id")?, text(&batch, "name")?);
            for i in (0..batch.num_rows()).filter(|&i| counts.contains_key(ids.value(i))) {
                let name = opt_text(name, i).unwrap_or_default();
                names.insert(ids.value(i).to_string(), name.to_string());
            }
        }
        for (id, missing) in counts {
            let name = names.get(&id).map_or("", String::as_str);
            cells.push((
                format!("{name} {id}"),
                run.snapshot_time.timestamp_micros(),
                missing,
            ));
        }
    }
    cells.sort();
    table(
        "heat",
        vec![
            text_column(
                "instance_id",
                false,
                cells.iter().map(|c| Some(c.0.as_str())),
            ),
            time_column("snapshot_time", false, cells.iter().map(|c| Some(c.1))),
            int_column("missing", cells.iter().map(|c| c.2)),
        ],
    )
}
