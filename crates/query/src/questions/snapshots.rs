//! The state of the fleet as of a date, the changes between two dates, the history of one
//! instance or one patch, and the trend: each a few SQL queries over `patches`, `instances` and
//! `runs`.
//!
//! Every number follows `docs/semantics.md` (rule numbers are cited); the rules themselves are
//! SQL functions backed by `patchtrail_model` (see [`crate::sql::functions`]). Snapshot choice happens
//! in Rust (§5.2); the SQL then filters by run id, which lets Parquet statistics skip every other
//! snapshot's row groups.

use crate::QueryError;
use crate::history::{LoadedHistory, RunInfo};
use crate::report::Report;
use crate::sql::{quote, run_list};
use chrono::{DateTime, Utc};
use patchtrail_model::StateClass;

/// Per (run, instance): patches per class (§2.1), missing critical and security (§6.1), and
/// patches that make the instance non-compliant. Each row's class is computed once (in the
/// inner select), not once per count.
fn patch_counts(runs_sql: &str) -> String {
    let classes: Vec<String> = StateClass::ALL
        .iter()
        .map(|c| {
            format!(
                "SUM(CASE WHEN class = '{c}' THEN 1 ELSE 0 END) AS {c}",
                c = c.as_str()
            )
        })
        .collect();
    format!(
        "SELECT run_id, instance_id, {classes},
           SUM(CASE WHEN class = 'missing' AND is_critical(severity, classification) THEN 1 ELSE 0 END) AS missing_critical,
           SUM(CASE WHEN class = 'missing' AND is_security(classification) THEN 1 ELSE 0 END) AS missing_security,
           SUM(CASE WHEN makes_noncompliant(state) THEN 1 ELSE 0 END) AS noncompliant_patches
         FROM (SELECT run_id, instance_id, state, state_class(state) AS class, severity, classification
               FROM patches WHERE run_id IN {runs_sql})
         GROUP BY run_id, instance_id",
        classes = classes.join(", ")
    )
}

/// Every instance of the runs in `runs_sql` with its counts and its compliance (§4.1, §4.7 where
/// the run collected no patch states), scan age (§4.2, at the run's `finished_at`), AWS's own
/// verdict (§4.3), and whether it is reporting (§6.2).
pub(crate) fn instance_states(runs_sql: &str, stale_days: u32) -> String {
    let stale = i64::from(stale_days) * 86_400;
    let counts: Vec<String> = StateClass::ALL
        .iter()
        .map(|c| format!("COALESCE(p.{c}, 0) AS {c}", c = c.as_str()))
        .collect();
    format!(
        "SELECT *,
           compliance IN ('compliant', 'non_compliant') OR listed AS reporting,
           CASE WHEN compliance NOT IN ('compliant', 'non_compliant') OR listed THEN NULL
                WHEN COALESCE(critical_non_compliant_count, 0) + COALESCE(security_non_compliant_count, 0) + COALESCE(other_non_compliant_count, 0) > 0 THEN 'non_compliant'
                WHEN critical_non_compliant_count IS NOT NULL AND security_non_compliant_count IS NOT NULL AND other_non_compliant_count IS NOT NULL THEN 'compliant'
           END AS aws_compliance
         FROM (
           SELECT i.account_id, i.region, i.instance_id, i.name, i.tags, i.ec2_state, i.platform, i.last_scan_time,
             CASE WHEN i.resource_type = 'ManagedInstance' OR i.instance_id LIKE 'mi-%' THEN 'hybrid' ELSE 'ec2' END AS node_type,
             i.platform_type, i.platform_name, i.platform_version, i.ping_status, i.last_ping_time, i.agent_version,
             i.unmanaged_reason,
             ROUND((date_part('epoch', r.finished_at) - date_part('epoch', i.last_scan_time)) / 86400.0, 1) AS scan_age_days,
             {counts},
             COALESCE(p.missing_critical, 0) AS missing_critical, COALESCE(p.missing_security, 0) AS missing_security,
             NOT r.patch_states AND i.patch_pages > 0 AS listed,
             CASE WHEN i.outcome = 'error' THEN 'error'
                  WHEN i.outcome = 'unmanaged' THEN 'unmanaged'
                  WHEN NOT r.patch_states THEN
                    CASE WHEN COALESCE(p.noncompliant_patches, 0) > 0 THEN 'non_compliant' ELSE 'unknown' END
                  WHEN i.last_scan_time IS NULL THEN 'unknown'
                  WHEN date_part('epoch', r.finished_at) - date_part('epoch', i.last_scan_time) > {stale} THEN 'unknown'
                  WHEN COALESCE(p.noncompliant_patches, 0) > 0 THEN 'non_compliant'
                  ELSE 'compliant' END AS compliance,
             i.critical_non_compliant_count, i.security_non_compliant_count, i.other_non_compliant_count,
             i.outcome, i.error_code, i.snapshot_time, i.run_id
           FROM instances i JOIN runs r ON r.run_id = i.run_id
             LEFT JOIN ({patch_counts}) p ON p.run_id = i.run_id AND p.instance_id = i.instance_id
           WHERE i.run_id IN {runs_sql}) AS s",
        counts = counts.join(", "),
        patch_counts = patch_counts(runs_sql),
    )
}

/// Reporting = a fresh patch state, or a listed patch list where no states were collected
/// (§6.2, §4.7); a column of [`instance_states`].
const REPORTING: &str = "reporting";

/// The change of one patch between two of its rows `a` and `b` (§6.2, including versions).
const PATCH_CHANGE: &str = "COALESCE(change_name(state_class(a.state), state_class(b.state)),
       CASE WHEN patch_version(a.kb_id, a.title) IS NOT NULL AND patch_version(b.kb_id, b.title) IS NOT NULL
             AND patch_version(a.kb_id, a.title) <> patch_version(b.kb_id, b.title) THEN 'version_changed' END)";

/// Columns describing a patch change of rows `a` → `b`.
const PATCH_COLUMNS: &str = "COALESCE(b.kb_id, a.kb_id) AS kb_id, COALESCE(b.title, a.title) AS title,
       COALESCE(b.severity, a.severity) AS severity, COALESCE(b.classification, a.classification) AS classification";

fn version_columns() -> &'static str {
    "a.state AS from_state, b.state AS to_state, patch_version(a.kb_id, a.title) AS from_version, patch_version(b.kb_id, b.title) AS to_version"
}

impl LoadedHistory {
    pub(crate) fn require_runs(&self) -> Result<(), QueryError> {
        if self.first_day.is_none() && !self.scopes.is_empty() {
            let mut filter = Vec::new();
            if !self.scopes.accounts.is_empty() {
                filter.push(format!("--account {}", self.scopes.accounts.join(",")));
            }
            if !self.scopes.regions.is_empty() {
                filter.push(format!("--region {}", self.scopes.regions.join(",")));
            }
            return Err(QueryError::NoScope {
                store: self.store_url.clone(),
                filter: filter.join(" "),
            });
        }
        if self.first_day.is_none() {
            return Err(QueryError::EmptyStore {
                store: self.store_url.clone(),
            });
        }
        Ok(())
    }

    /// The snapshots in force at `instant` (§5.2), or a message naming the first one.
    pub fn require_as_of(
        &self,
        instant: DateTime<Utc>,
        label: &str,
    ) -> Result<Vec<&RunInfo>, QueryError> {
        self.require_runs()?;
        let chosen = self.snapshots_as_of(instant);
        if chosen.is_empty() {
            let first = self.first_day.map(|d| d.to_string()).unwrap_or_default();
            return Err(QueryError::BeforeFirst {
                date: label.to_string(),
                first,
            });
        }
        Ok(chosen)
    }

    pub(crate) fn describe(runs: &[&RunInfo]) -> String {
        runs.iter()
            .map(|r| {
                format!(
                    "{} ({})",
                    r.snapshot_time.format("%Y-%m-%d %H:%M UTC"),
                    r.run_id
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// §6.3: the timeline of one instance, and every change of its patches.
    pub async fn instance_history(
        &self,
        instance_id: &str,
        stale_days: u32,
    ) -> Result<Report, QueryError> {
        self.require_runs()?;
        let id = quote(instance_id);
        let all = run_list(&self.runs.iter().collect::<Vec<_>>());
        let states = format!(
            "SELECT * FROM ({}) WHERE instance_id = {id}",
            instance_states(&all, stale_days)
        );
        let timeline = self
            .query(
                "snapshots",
                &format!(
                    "SELECT snapshot_time, run_id, ec2_state, last_scan_time, outcome, installed, pending_reboot, missing, failed,
                       missing_critical, missing_security, compliance
                     FROM ({states}) ORDER BY snapshot_time, run_id"
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
                    "WITH rep AS (SELECT run_id, snapshot_time, ROW_NUMBER() OVER (ORDER BY snapshot_time, run_id) AS n
                                  FROM ({states}) WHERE {REPORTING}),
                          ip AS (SELECT rep.n, p.* FROM patches p JOIN rep ON p.run_id = rep.run_id WHERE p.instance_id = {id}),
                          last AS (SELECT MAX(n) AS n FROM rep)
                     SELECT snapshot_time, kb_id, title, severity, classification, change, from_state, to_state, from_version, to_version FROM (
                       SELECT rep.snapshot_time, b.kb_id, b.title, b.severity, b.classification, 'first_seen' AS change,
                              CAST(NULL AS VARCHAR) AS from_state, b.state AS to_state, CAST(NULL AS VARCHAR) AS from_version,
                              patch_version(b.kb_id, b.title) AS to_version
                       FROM ip b JOIN rep ON rep.n = b.n WHERE b.n = 1
                       UNION ALL
                       SELECT rep.snapshot_time, {PATCH_COLUMNS}, {PATCH_CHANGE} AS change, {versions}
                       FROM ip a FULL OUTER JOIN ip b ON a.kb_id = b.kb_id AND a.n + 1 = b.n
                       JOIN rep ON rep.n = COALESCE(b.n, a.n + 1)
                       WHERE COALESCE(b.n, a.n + 1) > 1) AS t
                     WHERE change IS NOT NULL
                     ORDER BY snapshot_time, kb_id",
                    versions = version_columns(),
                ),
            )
            .await?;
        let charts = super::charts::over_time(
            self.lang,
            &timeline,
            self.lang.chart_instance_over_time(),
            &["missing", "missing_critical", "failed"],
        )?;
        Ok(Report {
            title: self.lang.history_title(instance_id),
            subtitle: self.lang.snapshot_count(timeline.rows()),
            lang: self.lang,
            tables: vec![timeline, changes],
            charts,
            notes: self.notes(),
        })
    }

    /// §6.4: one patch across the fleet: where and when it was installed, where it is still missing.
    pub async fn kb_history(&self, kb_id: &str) -> Result<Report, QueryError> {
        self.require_runs()?;
        let kb = quote(kb_id);
        let instances = self
            .query(
                "instances",
                &format!(
                    "WITH k AS (SELECT account_id, region, instance_id, snapshot_time, run_id, state, state_class(state) AS class,
                                  ROW_NUMBER() OVER (PARTITION BY account_id, region, instance_id ORDER BY snapshot_time DESC, run_id DESC) AS newest
                                FROM patches WHERE kb_id = {kb})
                     SELECT account_id, region, instance_id,
                       MAX(CASE WHEN newest = 1 THEN state END) AS latest_state,
                       MAX(CASE WHEN newest = 1 THEN snapshot_time END) AS latest_snapshot,
                       MIN(snapshot_time) AS first_seen,
                       MIN(CASE WHEN class = 'missing' THEN snapshot_time END) AS first_seen_missing,
                       MIN(CASE WHEN class = 'installed' THEN snapshot_time END) AS first_seen_installed
                     FROM k GROUP BY account_id, region, instance_id
                     ORDER BY latest_state, account_id, region, instance_id"
                ),
            )
            .await?;
        if instances.rows() == 0 {
            return Err(QueryError::BadInput {
                input: format!("--kb {kb_id}"),
                fix: "no snapshot holds this patch id (ids are case-sensitive, e.g. KB5034441 or kernel.x86_64)".into(),
            });
        }
        let timeline = self
            .query(
                "snapshots",
                &format!(
                    "SELECT snapshot_time, run_id, COUNT(*) AS instances,
                       SUM(CASE WHEN state_class(state) = 'installed' THEN 1 ELSE 0 END) AS installed,
                       SUM(CASE WHEN state_class(state) = 'pending_reboot' THEN 1 ELSE 0 END) AS pending_reboot,
                       SUM(CASE WHEN state_class(state) = 'missing' THEN 1 ELSE 0 END) AS missing,
                       SUM(CASE WHEN state_class(state) = 'failed' THEN 1 ELSE 0 END) AS failed
                     FROM patches WHERE kb_id = {kb} GROUP BY snapshot_time, run_id ORDER BY snapshot_time, run_id"
                ),
            )
            .await?;
        let charts = super::charts::over_time(
            self.lang,
            &timeline,
            &self.lang.chart_kb_over_time(kb_id),
            &["installed", "pending_reboot", "missing", "failed"],
        )?;
        Ok(Report {
            title: self.lang.history_title(kb_id),
            subtitle: self.lang.reporting_instances(instances.rows()),
            lang: self.lang,
            tables: vec![instances, timeline],
            charts,
            notes: self.notes(),
        })
    }
}
