//! `report trend` (docs/semantics.md §6.4) on Arrow arrays: per snapshot in the range, its
//! instances by compliance and its outstanding patches. The snapshots are decoded one after the
//! other (the next while this one is counted), so the memory a trend needs is that of its largest
//! snapshots, whatever the range.

use super::states::*;
use crate::QueryError;
use crate::history::{LoadedHistory, RunInfo};
use crate::report::{Report, int_column, table};
use chrono::{DateTime, Utc};
use patchtrail_model::StateClass;

/// The counted columns of a trend row, in order.
const TREND_COUNTS: [&str; 11] = [
    "instances",
    "compliant_instances",
    "noncompliant_instances",
    "unknown_instances",
    "unmanaged_instances",
    "error_instances",
    "installed",
    "missing",
    "missing_critical",
    "missing_security",
    "failed",
];

/// One snapshot's row: [`TREND_COUNTS`] of its instances.
fn tally(states: &[InstanceState]) -> [i64; TREND_COUNTS.len()] {
    let mut row = [0; TREND_COUNTS.len()];
    for s in states {
        let compliance = match s.compliance {
            "compliant" => 1,
            "non_compliant" => 2,
            "unknown" => 3,
            "unmanaged" => 4,
            _ => 5,
        };
        row[0] += 1;
        row[compliance] += 1;
        row[6] += s.counts.of(StateClass::Installed);
        row[7] += s.counts.of(StateClass::Missing);
        row[8] += s.counts.missing_critical;
        row[9] += s.counts.missing_security;
        row[10] += s.counts.of(StateClass::Failed);
    }
    row
}

impl LoadedHistory {
    /// §6.4: per snapshot in the range, the fleet's compliance over time.
    pub async fn trend(
        &self,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        stale_days: u32,
    ) -> Result<Report, QueryError> {
        self.require_runs()?;
        let runs: Vec<&RunInfo> = self
            .runs
            .iter()
            .filter(|r| {
                from.is_none_or(|f| r.snapshot_time >= f) && to.is_none_or(|t| r.snapshot_time <= t)
            })
            .collect();
        if runs.is_empty() {
            return Err(QueryError::BadInput {
                input: "--from/--to".into(),
                fix: "no snapshot lies in that range (docs/semantics.md §5.4); widen it".into(),
            });
        }
        let stale = i64::from(stale_days) * MICROS_PER_DAY;
        // Each snapshot's row is its own, counted on every core as it decodes; a run that found
        // no instance is a row of zeros, not a gap.
        let mut rows = Vec::with_capacity(runs.len());
        let count = |run| {
            let snapshot = self.snapshot_of(run, &COUNT_COLUMNS, None)?;
            Ok(tally(&instance_states(&[snapshot], stale, None)?))
        };
        super::in_order(&runs, count, |row| {
            rows.push(row);
            Ok(())
        })?;
        let mut columns = super::run_columns(&runs);
        for (i, name) in TREND_COUNTS.iter().enumerate() {
            columns.push(int_column(name, rows.iter().map(|row| row[i])));
        }
        let trend = table("trend", columns)?;
        let charts = super::charts::over_time(
            self.lang,
            &trend,
            self.lang.chart_over_time(),
            &[
                "noncompliant_instances",
                "unknown_instances",
                "missing_critical",
                "missing_security",
                "failed",
            ],
        )?;
        Ok(Report {
            title: self.lang.trend_title().into(),
            subtitle: self.lang.snapshot_count(runs.len()),
            lang: self.lang,
            as_of: None,
            tables: vec![trend],
            charts,
            notes: self.notes(),
        })
    }
}
