//! `report summary` (docs/semantics.md §6.1) on Arrow arrays, with no SQL engine: the snapshots
//! in force (§5.2), one pass over their patches (the counts per class of each instance, and every
//! missing patch), one over their instances (compliance §4.1, scan age §4.2, AWS's verdict §4.3),
//! then the totals. The rules come from `patchtrail_model`; only the columns used are decoded.

use super::FastMap;
use super::states::*;
use crate::QueryError;
use crate::columns::text;
use crate::history::LoadedHistory;
use crate::report::{Report, Table, int_column, table, text_column, time_column};
use arrow_array::{BooleanArray, Float64Array};
use arrow_schema::{DataType, Field};
use chrono::{DateTime, Utc};
use patchtrail_model::{StateClass, severity_level};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

/// A missing patch (§2.1), for the severity and top-missing tables.
struct Missing<'a> {
    snapshot: usize,
    instance_id: &'a str,
    kb_id: &'a str,
    title: &'a str,
    severity: &'a str,
}

/// Every missing patch of `snapshots` (§2.1).
fn missing_patches<'a>(snapshots: &'a [Snapshot<'_>]) -> Result<Vec<Missing<'a>>, QueryError> {
    let mut missing = Vec::new();
    for (snapshot, s) in snapshots.iter().enumerate() {
        for batch in &s.patches {
            let (ids, states) = (text(batch, "instance_id")?, text(batch, "state")?);
            let (kbs, titles) = (text(batch, "kb_id")?, text(batch, "title")?);
            let severities = text(batch, "severity")?;
            for i in 0..batch.num_rows() {
                if StateClass::of(states.value(i)) == StateClass::Missing {
                    missing.push(Missing {
                        snapshot,
                        instance_id: ids.value(i),
                        kb_id: kbs.value(i),
                        title: titles.value(i),
                        severity: severities.value(i),
                    });
                }
            }
        }
    }
    Ok(missing)
}

/// Fleet totals over rows of the main table (§6.1).
#[derive(Default)]
struct Totals {
    instances: i64,
    by_compliance: BTreeMap<&'static str, i64>,
    stopped: i64,
    hybrid: i64,
    agent_offline: i64,
    disagree_with_aws: i64,
    classes: [i64; StateClass::ALL.len()],
    missing_critical: i64,
    missing_security: i64,
}

impl Totals {
    fn add(&mut self, row: &InstanceState) {
        self.instances += 1;
        *self.by_compliance.entry(row.compliance).or_default() += 1;
        self.stopped += i64::from(row.text[EC2_STATE] == Some("stopped"));
        self.hybrid += i64::from(row.hybrid);
        self.agent_offline += i64::from(matches!(
            row.text[PING_STATUS],
            Some("ConnectionLost" | "Inactive")
        ));
        self.disagree_with_aws +=
            i64::from(row.aws_compliance.is_some_and(|a| a != row.compliance));
        for (sum, n) in self.classes.iter_mut().zip(row.counts.classes) {
            *sum += n;
        }
        self.missing_critical += row.counts.missing_critical;
        self.missing_security += row.counts.missing_security;
    }

    fn compliance(&self, name: &str) -> i64 {
        self.by_compliance.get(name).copied().unwrap_or(0)
    }

    /// The totals' columns, in the order of [`TOTALS_COLUMNS`].
    fn values(&self) -> [i64; TOTALS_COLUMNS.len()] {
        let class = |c: StateClass| self.classes[c as usize];
        [
            self.instances,
            self.compliance("compliant"),
            self.compliance("non_compliant"),
            self.compliance("unknown"),
            self.compliance("unmanaged"),
            self.compliance("error"),
            self.stopped,
            self.hybrid,
            self.agent_offline,
            self.disagree_with_aws,
            class(StateClass::Installed),
            class(StateClass::PendingReboot),
            class(StateClass::Missing),
            class(StateClass::Failed),
            self.missing_critical,
            self.missing_security,
        ]
    }
}

/// The columns of every totals table (§6.1), after its keys.
const TOTALS_COLUMNS: [&str; 16] = [
    "instances",
    "compliant",
    "non_compliant",
    "unknown",
    "unmanaged",
    "error",
    "stopped",
    "hybrid",
    "agent_offline",
    "disagree_with_aws",
    "installed",
    "pending_reboot",
    "missing",
    "failed",
    "missing_critical",
    "missing_security",
];

impl LoadedHistory {
    /// §6.1: the per-instance state as of `instant`, fleet totals, missing patches by severity;
    /// with `platform`, only the instances whose platform contains it (§6.1 filter).
    pub async fn summary(
        &self,
        instant: DateTime<Utc>,
        label: &str,
        stale_days: u32,
        platform: Option<&str>,
    ) -> Result<Report, QueryError> {
        let chosen = self.require_as_of(instant, label)?;
        let snapshots = self.snapshots(&chosen, &PATCH_COLUMNS[..6])?;
        let needle = platform.map(str::to_lowercase);
        let stale = i64::from(stale_days) * MICROS_PER_DAY;
        let rows = instance_states(&snapshots, stale, needle.as_deref())?;
        let missing = missing_patches(&snapshots)?;

        let mut fleet = Totals::default();
        let mut accounts: BTreeMap<&str, (BTreeSet<&str>, Totals)> = BTreeMap::new();
        let mut shown = HashSet::new();
        for row in &rows {
            fleet.add(row);
            let account = accounts.entry(row.text(ACCOUNT)).or_default();
            account.0.insert(row.text(REGION));
            account.1.add(row);
            shown.insert((row.text(RUN_ID), row.text(INSTANCE)));
        }
        let mut by_account: Vec<_> = accounts
            .into_iter()
            .map(|(account, (regions, totals))| (account, regions.len() as i64, totals))
            .collect();
        by_account.sort_by(|a, b| {
            (b.2.compliance("non_compliant"))
                .cmp(&a.2.compliance("non_compliant"))
                .then(a.0.cmp(b.0))
        });

        // Missing patches of the instances shown: by severity level (§3.1), and per patch the
        // instances missing it.
        let mut by_level: BTreeMap<&'static str, i64> = BTreeMap::new();
        let mut by_kb: FastMap<&str, (&str, HashSet<InstanceKey>)> = FastMap::default();
        for m in missing
            .iter()
            .filter(|m| shown.contains(&(snapshots[m.snapshot].run.run_id.as_str(), m.instance_id)))
        {
            *by_level.entry(severity_level(m.severity)).or_default() += 1;
            let kb = by_kb.entry(m.kb_id).or_insert((m.title, HashSet::new()));
            kb.0 = kb.0.max(m.title);
            kb.1.insert((m.snapshot, m.instance_id));
        }
        let mut severity: Vec<_> = by_level.into_iter().collect();
        severity.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let mut top: Vec<_> = by_kb
            .into_iter()
            .map(|(kb, (title, on))| (kb, title, on.len() as i64))
            .collect();
        top.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(b.0)));
        top.truncate(15);

        let instances = instances_table(&rows)?;
        let totals = totals_table("fleet", None, &[&fleet])?;
        let by_account_table = totals_table(
            "by_account",
            Some(
                &by_account
                    .iter()
                    .map(|(a, regions, _)| (*a, *regions))
                    .collect::<Vec<_>>(),
            ),
            &by_account.iter().map(|(_, _, t)| t).collect::<Vec<_>>(),
        )?;
        let severity = table(
            "missing_by_severity",
            vec![
                text_column("severity_level", true, severity.iter().map(|s| Some(s.0))),
                int_column("missing", severity.iter().map(|s| s.1)),
            ],
        )?;
        let top = table(
            "top_missing",
            vec![
                text_column("kb_id", false, top.iter().map(|t| Some(t.0))),
                text_column("title", true, top.iter().map(|t| Some(t.1))),
                int_column("instances", top.iter().map(|t| t.2)),
            ],
        )?;
        let charts =
            super::charts::summary(self.lang, &totals, &severity, &top, &by_account_table)?;
        Ok(Report {
            title: self.lang.summary_title(label),
            subtitle: self
                .lang
                .summary_subtitle(&Self::describe(&chosen), stale_days, platform),
            lang: self.lang,
            as_of: None,
            tables: vec![instances, totals, severity, top, by_account_table],
            charts,
            notes: self.notes(),
        })
    }
}

/// The main table: one row per instance of the snapshots in force.
fn instances_table(rows: &[InstanceState]) -> Result<Table, QueryError> {
    let t = |name: &str, column: usize, nullable: bool| {
        text_column(name, nullable, rows.iter().map(|r| r.text[column]))
    };
    let class = |name: &str, c: StateClass| int_column(name, rows.iter().map(|r| r.counts.of(c)));
    table(
        "instances",
        vec![
            t("account_id", ACCOUNT, false),
            t("region", REGION, false),
            t("instance_id", INSTANCE, false),
            t("name", NAME, true),
            text_column(
                "node_type",
                false,
                rows.iter()
                    .map(|r| Some(if r.hybrid { "hybrid" } else { "ec2" })),
            ),
            t("ec2_state", EC2_STATE, true),
            t("platform", PLATFORM, true),
            t("platform_name", PLATFORM_NAME, true),
            t("platform_version", PLATFORM_VERSION, true),
            t("ping_status", PING_STATUS, true),
            time_column(
                "last_ping_time",
                true,
                rows.iter().map(|r| r.last_ping_time),
            ),
            t("agent_version", AGENT_VERSION, true),
            time_column(
                "last_scan_time",
                true,
                rows.iter().map(|r| r.last_scan_time),
            ),
            (
                Field::new("scan_age_days", DataType::Float64, true),
                Arc::new(
                    rows.iter()
                        .map(|r| r.scan_age_days)
                        .collect::<Float64Array>(),
                ),
            ),
            class("installed", StateClass::Installed),
            class("pending_reboot", StateClass::PendingReboot),
            class("rejected", StateClass::Rejected),
            class("missing", StateClass::Missing),
            class("failed", StateClass::Failed),
            class("not_applicable", StateClass::NotApplicable),
            class(
                "available_security_update",
                StateClass::AvailableSecurityUpdate,
            ),
            int_column(
                "missing_critical",
                rows.iter().map(|r| r.counts.missing_critical),
            ),
            int_column(
                "missing_security",
                rows.iter().map(|r| r.counts.missing_security),
            ),
            text_column("compliance", false, rows.iter().map(|r| Some(r.compliance))),
            text_column(
                "aws_compliance",
                true,
                rows.iter().map(|r| r.aws_compliance),
            ),
            (
                Field::new("agrees_with_aws", DataType::Boolean, true),
                Arc::new(
                    rows.iter()
                        .map(|r| r.aws_compliance.map(|a| a == r.compliance))
                        .collect::<BooleanArray>(),
                ),
            ),
            t("outcome", OUTCOME, false),
            t("error_code", ERROR_CODE, true),
            t("unmanaged_reason", UNMANAGED_REASON, true),
            time_column("snapshot_time", false, rows.iter().map(|r| r.snapshot_time)),
            t("run_id", RUN_ID, false),
        ],
    )
}

/// A totals table: one row per [`Totals`], after `keys` (an account and its region count).
fn totals_table(
    name: &str,
    keys: Option<&[(&str, i64)]>,
    totals: &[&Totals],
) -> Result<Table, QueryError> {
    let mut columns = Vec::new();
    if let Some(keys) = keys {
        columns.push(text_column(
            "account_id",
            false,
            keys.iter().map(|k| Some(k.0)),
        ));
        columns.push(int_column("regions", keys.iter().map(|k| k.1)));
    }
    let values: Vec<_> = totals.iter().map(|t| t.values()).collect();
    for (i, column) in TOTALS_COLUMNS.iter().enumerate() {
        columns.push(int_column(column, values.iter().map(|v| v[i])));
    }
    table(name, columns)
}
