//! The named reports, each a few SQL queries over `patches`, `instances` and `runs`.
//!
//! Snapshot choice happens here in Rust ("as of D" = the latest committed snapshot at or before
//! the end of D, per account and region); the SQL then filters by run id, which lets Parquet
//! statistics skip every other snapshot's row groups. Definitions shared by all reports:
//! installed = Installed, InstalledOther, InstalledPendingReboot or InstalledRejected;
//! critical = severity Critical or classification CriticalUpdates; security = classification
//! Security or SecurityUpdates; an instance is compliant when it was collected and has no
//! Missing or Failed patch, non-compliant when it has one, unmanaged or unknown otherwise.

use crate::history::{LoadedHistory, RunInfo};
use crate::QueryError;
use chrono::{DateTime, Utc};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;

/// One table of a report.
#[derive(Debug, Clone)]
pub struct Table {
    pub name: String,
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
}

impl Table {
    pub fn rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }
}

/// A report: its tables (the first is the main one, the one CSV/JSON carry) and what it covers.
#[derive(Debug, Clone)]
pub struct Report {
    pub title: String,
    pub subtitle: String,
    pub tables: Vec<Table>,
}

pub const INSTALLED: &str = "('Installed','InstalledOther','InstalledPendingReboot','InstalledRejected')";
pub const CRITICAL: &str = "(lower(severity) = 'critical' OR classification = 'CriticalUpdates')";
pub const SECURITY: &str = "classification IN ('Security','SecurityUpdates')";

/// A SQL string literal.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn run_list(runs: &[&RunInfo]) -> String {
    let ids: Vec<String> = runs.iter().map(|r| quote(&r.run_id)).collect();
    format!("({})", ids.join(","))
}

/// Per (run, instance) patch counts, for the runs in `runs_sql`.
fn patch_counts(runs_sql: &str) -> String {
    format!(
        "SELECT run_id, instance_id,
           SUM(CASE WHEN state IN {INSTALLED} THEN 1 ELSE 0 END) AS installed,
           SUM(CASE WHEN state = 'Missing' THEN 1 ELSE 0 END) AS missing,
           SUM(CASE WHEN state = 'Failed' THEN 1 ELSE 0 END) AS failed,
           SUM(CASE WHEN state = 'InstalledPendingReboot' THEN 1 ELSE 0 END) AS pending_reboot,
           SUM(CASE WHEN state = 'Missing' AND {CRITICAL} THEN 1 ELSE 0 END) AS missing_critical,
           SUM(CASE WHEN state = 'Missing' AND {SECURITY} THEN 1 ELSE 0 END) AS missing_security
         FROM patches WHERE run_id IN {runs_sql} GROUP BY run_id, instance_id"
    )
}

const COMPLIANCE: &str = "CASE WHEN i.outcome = 'unmanaged' THEN 'unmanaged'
      WHEN i.outcome = 'error' THEN 'unknown'
      WHEN COALESCE(p.missing, 0) + COALESCE(p.failed, 0) > 0 THEN 'non_compliant'
      ELSE 'compliant' END";

impl LoadedHistory {
    pub async fn query(&self, name: &str, sql: &str) -> Result<Table, QueryError> {
        let frame = self.ctx.sql(sql).await.map_err(|e| QueryError::Engine(e.to_string()))?;
        let schema: SchemaRef = frame.schema().inner().clone();
        let batches = frame.collect().await.map_err(|e| QueryError::Engine(e.to_string()))?;
        Ok(Table { name: name.to_string(), schema, batches })
    }

    /// Registers a computed table under `name`, so that a follow-up query reads its rows instead
    /// of computing them again from the store.
    fn keep(&self, name: &str, table: &Table) -> Result<(), QueryError> {
        let engine = |e: datafusion::error::DataFusionError| QueryError::Engine(e.to_string());
        let mem = datafusion::datasource::MemTable::try_new(table.schema.clone(), vec![table.batches.clone()]).map_err(engine)?;
        self.ctx.deregister_table(name).map_err(engine)?;
        self.ctx.register_table(name, std::sync::Arc::new(mem)).map_err(engine)?;
        Ok(())
    }

    fn require_runs(&self) -> Result<(), QueryError> {
        if self.runs.is_empty() {
            return Err(QueryError::EmptyStore { store: self.store_url.clone() });
        }
        Ok(())
    }

    /// The snapshots in force at `instant`, or a message naming the first one.
    pub fn require_as_of(&self, instant: DateTime<Utc>, label: &str) -> Result<Vec<&RunInfo>, QueryError> {
        self.require_runs()?;
        let chosen = self.snapshots_as_of(instant);
        if chosen.is_empty() {
            let first = self.runs.first().map(|r| r.snapshot_time.format("%Y-%m-%d %H:%M UTC").to_string()).unwrap_or_default();
            return Err(QueryError::BeforeFirst { date: label.to_string(), first });
        }
        Ok(chosen)
    }

    fn describe(runs: &[&RunInfo]) -> String {
        runs.iter().map(|r| format!("{} ({})", r.snapshot_time.format("%Y-%m-%d %H:%M UTC"), r.run_id)).collect::<Vec<_>>().join(", ")
    }

    /// The per-instance state as of `instant`, and fleet totals.
    pub async fn summary(&self, instant: DateTime<Utc>, label: &str) -> Result<Report, QueryError> {
        let chosen = self.require_as_of(instant, label)?;
        let runs = run_list(&chosen);
        let per_instance = format!(
            "WITH p AS ({counts})
             SELECT i.instance_id, i.name, i.ec2_state, i.platform, i.last_scan_time,
               ROUND((CAST({asof} AS DOUBLE) - date_part('epoch', i.last_scan_time)) / 86400.0, 1) AS scan_age_days,
               COALESCE(p.installed, 0) AS installed, COALESCE(p.missing, 0) AS missing, COALESCE(p.failed, 0) AS failed,
               COALESCE(p.pending_reboot, 0) AS pending_reboot, COALESCE(p.missing_critical, 0) AS missing_critical,
               COALESCE(p.missing_security, 0) AS missing_security,
               {COMPLIANCE} AS compliance,
               i.outcome, i.error_code, i.account_id, i.region, i.snapshot_time, i.run_id
             FROM instances i LEFT JOIN p ON p.run_id = i.run_id AND p.instance_id = i.instance_id
             WHERE i.run_id IN {runs}",
            counts = patch_counts(&runs),
            asof = instant.timestamp(),
        );
        let instances = self
            .query("instances", &format!("SELECT * FROM ({per_instance}) ORDER BY missing_critical DESC, missing DESC, failed DESC, instance_id"))
            .await?;
        self.keep("_summary", &instances)?;
        let totals = self
            .query(
                "fleet",
                &format!(
                    "SELECT COUNT(*) AS instances,
                       SUM(CASE WHEN compliance = 'compliant' THEN 1 ELSE 0 END) AS compliant,
                       SUM(CASE WHEN compliance = 'non_compliant' THEN 1 ELSE 0 END) AS non_compliant,
                       SUM(CASE WHEN compliance = 'unmanaged' THEN 1 ELSE 0 END) AS unmanaged,
                       SUM(CASE WHEN compliance = 'unknown' THEN 1 ELSE 0 END) AS unknown,
                       SUM(CASE WHEN ec2_state = 'stopped' THEN 1 ELSE 0 END) AS stopped,
                       SUM(installed) AS installed, SUM(missing) AS missing, SUM(failed) AS failed,
                       SUM(pending_reboot) AS pending_reboot, SUM(missing_critical) AS missing_critical,
                       SUM(missing_security) AS missing_security
                     FROM _summary"
                ),
            )
            .await?;
        Ok(Report {
            title: format!("Patch compliance as of {label}"),
            subtitle: format!("Snapshot {}", Self::describe(&chosen)),
            tables: vec![instances, totals],
        })
    }

    /// What changed between the snapshots in force at `from` and at `to`.
    pub async fn diff(
        &self,
        from: DateTime<Utc>,
        from_label: &str,
        to: DateTime<Utc>,
        to_label: &str,
        stale_days: u32,
    ) -> Result<Report, QueryError> {
        if from > to {
            return Err(QueryError::BadInput { input: format!("--from {from_label} --to {to_label}"), fix: "--from must not be after --to".into() });
        }
        let a = self.require_as_of(from, from_label)?;
        let b = self.require_as_of(to, to_label)?;
        let (ra, rb) = (run_list(&a), run_list(&b));
        let stale = i64::from(stale_days) * 86_400;
        let sql = format!(
            "WITH a AS (SELECT instance_id, kb_id, state FROM patches WHERE run_id IN {ra}),
                  b AS (SELECT instance_id, kb_id, state, title, severity, classification FROM patches WHERE run_id IN {rb}),
                  ia AS (SELECT instance_id, name, last_scan_time, snapshot_time FROM instances WHERE run_id IN {ra}),
                  ib AS (SELECT instance_id, name, last_scan_time, snapshot_time FROM instances WHERE run_id IN {rb})
             SELECT b.instance_id, ib.name, b.kb_id, b.title, b.severity, b.classification,
                    CASE b.state WHEN 'Missing' THEN 'newly_missing' WHEN 'Installed' THEN 'newly_installed' ELSE 'newly_failed' END AS change,
                    a.state AS from_state, b.state AS to_state,
                    CAST(NULL AS TIMESTAMP) AS from_last_scan, CAST(NULL AS TIMESTAMP) AS to_last_scan
             FROM b LEFT JOIN a ON a.instance_id = b.instance_id AND a.kb_id = b.kb_id
                    LEFT JOIN ib ON ib.instance_id = b.instance_id
             WHERE b.state IN ('Missing', 'Installed', 'Failed') AND (a.state IS NULL OR a.state <> b.state)
             UNION ALL
             SELECT ib.instance_id, ib.name, NULL, NULL, NULL, NULL, 'appeared', NULL, NULL, NULL, CAST(ib.last_scan_time AS TIMESTAMP)
             FROM ib LEFT JOIN ia ON ia.instance_id = ib.instance_id WHERE ia.instance_id IS NULL
             UNION ALL
             SELECT ia.instance_id, ia.name, NULL, NULL, NULL, NULL, 'disappeared', NULL, NULL, CAST(ia.last_scan_time AS TIMESTAMP), NULL
             FROM ia LEFT JOIN ib ON ib.instance_id = ia.instance_id WHERE ib.instance_id IS NULL
             UNION ALL
             SELECT ib.instance_id, ib.name, NULL, NULL, NULL, NULL, 'stopped_reporting', NULL, NULL,
                    CAST(ia.last_scan_time AS TIMESTAMP), CAST(ib.last_scan_time AS TIMESTAMP)
             FROM ib JOIN ia ON ia.instance_id = ib.instance_id
             WHERE date_part('epoch', ib.snapshot_time) - date_part('epoch', ib.last_scan_time) > {stale}
               AND date_part('epoch', ia.snapshot_time) - date_part('epoch', ia.last_scan_time) <= {stale}"
        );
        let changes = self.query("changes", &format!("SELECT * FROM ({sql}) ORDER BY instance_id, change, kb_id")).await?;
        self.keep("_changes", &changes)?;
        let counts = self.query("counts", "SELECT change, COUNT(*) AS count FROM _changes GROUP BY change ORDER BY change").await?;
        Ok(Report {
            title: format!("Changes from {from_label} to {to_label}"),
            subtitle: format!("From {} to {}", Self::describe(&a), Self::describe(&b)),
            tables: vec![changes, counts],
        })
    }

    /// The timeline of one instance: a row per snapshot, and every patch state change.
    pub async fn instance_history(&self, instance_id: &str) -> Result<Report, QueryError> {
        self.require_runs()?;
        let id = quote(instance_id);
        let timeline = self
            .query(
                "snapshots",
                &format!(
                    "WITH p AS (SELECT * FROM ({counts}) WHERE instance_id = {id})
                     SELECT i.snapshot_time, i.run_id, i.ec2_state, i.last_scan_time, i.outcome,
                       COALESCE(p.installed, 0) AS installed, COALESCE(p.missing, 0) AS missing, COALESCE(p.failed, 0) AS failed,
                       COALESCE(p.missing_critical, 0) AS missing_critical, COALESCE(p.missing_security, 0) AS missing_security,
                       {COMPLIANCE} AS compliance
                     FROM instances i LEFT JOIN p ON p.run_id = i.run_id
                     WHERE i.instance_id = {id} ORDER BY i.snapshot_time, i.run_id",
                    counts = patch_counts("(SELECT run_id FROM runs)"),
                ),
            )
            .await?;
        if timeline.rows() == 0 {
            return Err(QueryError::BadInput {
                input: format!("--instance {instance_id}"),
                fix: "no snapshot holds this instance; list instances with `patchtrail report summary`".into(),
            });
        }
        let changes = self
            .query(
                "patch_changes",
                &format!(
                    "SELECT snapshot_time, kb_id, title, severity, classification, from_state, state AS to_state, installed_time FROM (
                       SELECT snapshot_time, kb_id, title, severity, classification, state, installed_time,
                              LAG(state) OVER (PARTITION BY kb_id ORDER BY snapshot_time, run_id) AS from_state
                       FROM patches WHERE instance_id = {id}) AS t
                     WHERE from_state IS NULL OR from_state <> state
                     ORDER BY snapshot_time, kb_id"
                ),
            )
            .await?;
        Ok(Report { title: format!("History of {instance_id}"), subtitle: format!("{} snapshots", timeline.rows()), tables: vec![timeline, changes] })
    }

    /// One patch across the fleet: where and when it was installed, where it is still missing.
    pub async fn kb_history(&self, kb_id: &str) -> Result<Report, QueryError> {
        self.require_runs()?;
        let kb = quote(kb_id);
        let instances = self
            .query(
                "instances",
                &format!(
                    "WITH k AS (SELECT instance_id, snapshot_time, run_id, state, installed_time,
                                  ROW_NUMBER() OVER (PARTITION BY instance_id ORDER BY snapshot_time DESC, run_id DESC) AS newest
                                FROM patches WHERE kb_id = {kb})
                     SELECT instance_id,
                       MAX(CASE WHEN newest = 1 THEN state END) AS latest_state,
                       MAX(CASE WHEN newest = 1 THEN snapshot_time END) AS latest_snapshot,
                       MAX(installed_time) AS installed_time,
                       MIN(snapshot_time) AS first_seen,
                       MIN(CASE WHEN state = 'Missing' THEN snapshot_time END) AS first_seen_missing,
                       MIN(CASE WHEN state IN {INSTALLED} THEN snapshot_time END) AS first_seen_installed
                     FROM k GROUP BY instance_id
                     ORDER BY latest_state, instance_id"
                ),
            )
            .await?;
        if instances.rows() == 0 {
            return Err(QueryError::BadInput {
                input: format!("--kb {kb_id}"),
                fix: "no snapshot holds this patch id (ids are case-sensitive, e.g. KB5034441 or ALAS2-2024-1234)".into(),
            });
        }
        let timeline = self
            .query(
                "snapshots",
                &format!(
                    "SELECT snapshot_time, run_id, COUNT(*) AS instances,
                       SUM(CASE WHEN state IN {INSTALLED} THEN 1 ELSE 0 END) AS installed,
                       SUM(CASE WHEN state = 'Missing' THEN 1 ELSE 0 END) AS missing,
                       SUM(CASE WHEN state = 'Failed' THEN 1 ELSE 0 END) AS failed
                     FROM patches WHERE kb_id = {kb} GROUP BY snapshot_time, run_id ORDER BY snapshot_time, run_id"
                ),
            )
            .await?;
        Ok(Report { title: format!("History of {kb_id}"), subtitle: format!("{} instances report it", instances.rows()), tables: vec![instances, timeline] })
    }

    /// Per snapshot between the two instants: the fleet's compliance over time.
    pub async fn trend(&self, from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>) -> Result<Report, QueryError> {
        self.require_runs()?;
        let runs: Vec<&RunInfo> = self
            .runs
            .iter()
            .filter(|r| from.is_none_or(|f| r.snapshot_time >= f) && to.is_none_or(|t| r.snapshot_time <= t))
            .collect();
        if runs.is_empty() {
            return Err(QueryError::BadInput { input: "--from/--to".into(), fix: "no snapshot lies in that range; widen it".into() });
        }
        let list = run_list(&runs);
        let trend = self
            .query(
                "trend",
                &format!(
                    "WITH p AS ({counts})
                     SELECT i.snapshot_time, i.run_id, COUNT(*) AS instances,
                       SUM(CASE WHEN {COMPLIANCE} = 'compliant' THEN 1 ELSE 0 END) AS compliant_instances,
                       SUM(CASE WHEN {COMPLIANCE} = 'non_compliant' THEN 1 ELSE 0 END) AS noncompliant_instances,
                       SUM(CASE WHEN i.outcome = 'unmanaged' THEN 1 ELSE 0 END) AS unmanaged_instances,
                       SUM(COALESCE(p.installed, 0)) AS installed,
                       SUM(COALESCE(p.missing, 0)) AS missing,
                       SUM(COALESCE(p.missing_critical, 0)) AS missing_critical,
                       SUM(COALESCE(p.missing_security, 0)) AS missing_security,
                       SUM(COALESCE(p.failed, 0)) AS failed
                     FROM instances i LEFT JOIN p ON p.run_id = i.run_id AND p.instance_id = i.instance_id
                     WHERE i.run_id IN {list}
                     GROUP BY i.snapshot_time, i.run_id ORDER BY i.snapshot_time, i.run_id",
                    counts = patch_counts(&list),
                ),
            )
            .await?;
        Ok(Report { title: "Compliance trend".into(), subtitle: format!("{} snapshots", runs.len()), tables: vec![trend] })
    }

    /// Ad-hoc SQL over `patches`, `instances` and `runs`.
    pub async fn sql(&self, sql: &str) -> Result<Report, QueryError> {
        let frame = self.ctx.sql(sql).await.map_err(|e| QueryError::BadInput { input: "SQL".into(), fix: e.to_string() })?;
        let schema: SchemaRef = frame.schema().inner().clone();
        let batches = frame.collect().await.map_err(|e| QueryError::Engine(e.to_string()))?;
        Ok(Report { title: "Query".into(), subtitle: sql.to_string(), tables: vec![Table { name: "result".into(), schema, batches }] })
    }
}
