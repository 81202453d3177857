//! Where a report's numbers come from, stated in the report itself: an auditor who is handed a
//! CSV or a workbook months later must be able to tell the instant, the time zone, the rules'
//! parameters, the tool, and exactly which committed runs (by manifest SHA-256) it read, and how
//! those runs were collected. Two tables carry it, last in every report, so that every format
//! has them (a sheet each in XLSX, a table each in HTML and Markdown, `--table provenance` and
//! `--table runs_used` in CSV and JSON) without changing the shape of the main table.

use crate::QueryError;
use crate::history::LoadedHistory;
use crate::history::{RunInfo, runs_batch};
use crate::report::{Report, Table, table, text_column};
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
        let provenance = table(
            "provenance",
            vec![
                text_column("item", true, all.iter().map(|(k, _)| Some(k.as_str()))),
                text_column("value", true, all.iter().map(|(_, v)| Some(v.as_str()))),
            ],
        )?;
        let used: Vec<RunInfo> = self
            .runs
            .iter()
            .filter(|r| in_force_by.is_none_or(|t| r.finished_at <= t))
            .cloned()
            .collect();
        let batch = runs_batch(&used)?;
        let columns = [
            "run_id",
            "account_id",
            "region",
            "snapshot_time",
            "finished_at",
            "source",
            "manifest_key",
            "manifest_sha256",
            "configuration",
            "tool",
        ]
        .map(|name| batch.schema().index_of(name));
        let columns = columns
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
            .and_then(|c| batch.project(&c))
            .map_err(|e| QueryError::Engine(format!("runs_used: {e}")))?;
        let runs = Table {
            name: "runs_used".into(),
            schema: columns.schema(),
            batches: vec![columns],
        };
        report.as_of = in_force_by.or_else(|| used.iter().map(|r| r.finished_at).max());
        report.tables.push(provenance);
        report.tables.push(runs);
        Ok(())
    }
}
