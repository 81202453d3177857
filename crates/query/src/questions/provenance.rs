//! Where a report's numbers come from, stated in the report itself: an auditor who is handed a
//! CSV or a workbook months later must be able to tell the instant, the time zone, the rules'
//! parameters, the tool, and exactly which committed runs (by manifest SHA-256) it read, and how
//! those runs were collected. Two tables carry it, last in every report, so that every format
//! has them (a sheet each in XLSX, a table each in HTML and Markdown, `--table provenance` and
//! `--table runs_used` in CSV and JSON) without changing the shape of the main table.

use crate::QueryError;
use crate::history::LoadedHistory;
use crate::report::Report;
use crate::sql::quote;
use chrono::{DateTime, Utc};

impl LoadedHistory {
    /// Appends `provenance` (`item`, `value`: `items`, then the store and the scope filter) and
    /// `runs_used` (the runs the report read: those loaded, in force by `in_force_by` when given)
    /// to `report`.
    pub async fn attach_provenance(
        &self,
        report: &mut Report,
        items: &[(&str, String)],
        in_force_by: Option<DateTime<Utc>>,
    ) -> Result<(), QueryError> {
        let mut all: Vec<(String, String)> = items
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        all.push(("store".into(), self.store_url.clone()));
        if !self.scopes.accounts.is_empty() {
            all.push(("accounts".into(), self.scopes.accounts.join(",")));
        }
        if !self.scopes.regions.is_empty() {
            all.push(("regions".into(), self.scopes.regions.join(",")));
        }
        let rows: Vec<String> = all
            .iter()
            .map(|(k, v)| format!("({}, {})", quote(k), quote(v)))
            .collect();
        let provenance = self
            .query(
                "provenance",
                &format!(
                    "SELECT column1 AS item, column2 AS value FROM (VALUES {})",
                    rows.join(", ")
                ),
            )
            .await?;
        let cut = match in_force_by {
            Some(t) => format!(
                "WHERE finished_at <= to_timestamp_micros({})",
                t.timestamp_micros()
            ),
            None => String::new(),
        };
        let runs = self
            .query(
                "runs_used",
                &format!(
                    "SELECT run_id, account_id, region, snapshot_time, finished_at, source, manifest_key,
                       manifest_sha256, configuration, tool
                     FROM runs {cut} ORDER BY snapshot_time, run_id"
                ),
            )
            .await?;
        report.tables.push(provenance);
        report.tables.push(runs);
        Ok(())
    }
}
