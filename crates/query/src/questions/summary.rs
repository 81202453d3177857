//! `report summary` (docs/semantics.md §6.1) on Arrow arrays, with no SQL engine: the snapshots
//! in force (§5.2), one pass over their patches (the counts per class of each instance, and every
//! missing patch), one over their instances (compliance §4.1, scan age §4.2, AWS's verdict §4.3),
//! then the totals. The rules come from `patchtrail_model`; only the columns used are decoded.

use crate::QueryError;
use crate::columns::{Stored, count, micros, opt_i64, opt_text, text};
use crate::history::{LoadedHistory, RunInfo};
use crate::report::{Report, Table};
use arrow_array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use chrono::{DateTime, Utc};
use patchtrail_model::{StateClass, is_critical, is_security, severity_level};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

/// The patch columns the summary reads.
const PATCH_COLUMNS: [&str; 6] = [
    "instance_id",
    "kb_id",
    "title",
    "classification",
    "severity",
    "state",
];

/// The instance text columns the summary reads, and their places in [`Row::text`].
const TEXT_COLUMNS: [&str; 16] = [
    "account_id",
    "region",
    "instance_id",
    "name",
    "ec2_state",
    "platform",
    "platform_name",
    "platform_version",
    "ping_status",
    "agent_version",
    "outcome",
    "error_code",
    "unmanaged_reason",
    "run_id",
    "platform_type",
    "resource_type",
];
const ACCOUNT: usize = 0;
const REGION: usize = 1;
const INSTANCE: usize = 2;
const NAME: usize = 3;
const EC2_STATE: usize = 4;
const PLATFORM: usize = 5;
const PLATFORM_NAME: usize = 6;
const PLATFORM_VERSION: usize = 7;
const PING_STATUS: usize = 8;
const AGENT_VERSION: usize = 9;
const OUTCOME: usize = 10;
const ERROR_CODE: usize = 11;
const UNMANAGED_REASON: usize = 12;
const RUN_ID: usize = 13;
const PLATFORM_TYPE: usize = 14;
const RESOURCE_TYPE: usize = 15;

/// The instance columns the summary reads besides [`TEXT_COLUMNS`].
const VALUE_COLUMNS: [&str; 7] = [
    "snapshot_time",
    "last_ping_time",
    "last_scan_time",
    "critical_non_compliant_count",
    "security_non_compliant_count",
    "other_non_compliant_count",
    "patch_pages",
];

/// The default of `--stale-days` (§4.1 rule 4).
pub const DEFAULT_STALE_DAYS: u32 = 14;

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// One snapshot in force: its run and the columns the summary reads.
struct Snapshot<'h> {
    run: &'h RunInfo,
    patches: Vec<RecordBatch>,
    instances: Vec<RecordBatch>,
}

/// Patches per class (§2.1) of one instance in one snapshot, and what the summary counts beside.
#[derive(Default, Clone, Copy)]
struct Counts {
    classes: [i64; StateClass::ALL.len()],
    missing_critical: i64,
    missing_security: i64,
    noncompliant: i64,
}

impl Counts {
    fn of(&self, class: StateClass) -> i64 {
        self.classes[class as usize]
    }
}

/// An instance in one snapshot: the snapshot's place in the list, and the instance id.
type InstanceKey<'a> = (usize, &'a str);

/// One row of the main table.
struct Row<'a> {
    text: [Option<&'a str>; TEXT_COLUMNS.len()],
    last_ping_time: Option<i64>,
    last_scan_time: Option<i64>,
    snapshot_time: Option<i64>,
    scan_age_days: Option<f64>,
    hybrid: bool,
    counts: Counts,
    compliance: &'static str,
    aws_compliance: Option<&'static str>,
}

impl Row<'_> {
    fn text(&self, column: usize) -> &str {
        self.text[column].unwrap_or_default()
    }
}

/// A missing patch, for the severity and top-missing tables.
struct Missing<'a> {
    snapshot: usize,
    instance_id: &'a str,
    kb_id: &'a str,
    title: &'a str,
    severity: &'a str,
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
    fn add(&mut self, row: &Row) {
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
        let mut snapshots = Vec::with_capacity(chosen.len());
        for run in &chosen {
            let parts = self.parts.get(&run.run_id).cloned().unwrap_or_default();
            let instance_columns: Vec<&str> =
                TEXT_COLUMNS.iter().chain(&VALUE_COLUMNS).copied().collect();
            snapshots.push(Snapshot {
                run,
                patches: parts.read(Stored::Patches, &PATCH_COLUMNS)?,
                instances: parts.read(Stored::Instances, &instance_columns)?,
            });
        }
        let needle = platform.map(str::to_lowercase);
        let stale = i64::from(stale_days) * MICROS_PER_DAY;
        let (counts, missing) = patch_counts(&snapshots)?;
        let rows = instance_rows(&snapshots, &counts, stale, needle.as_deref())?;

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
        let mut by_kb: HashMap<&str, (&str, HashSet<InstanceKey>)> = HashMap::new();
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
            tables: vec![instances, totals, severity, top, by_account_table],
            charts,
            notes: self.notes(),
        })
    }
}

/// Per (snapshot, instance): its patches per class and what the summary counts beside; and
/// every missing patch.
fn patch_counts<'a>(
    snapshots: &'a [Snapshot<'_>],
) -> Result<(HashMap<InstanceKey<'a>, Counts>, Vec<Missing<'a>>), QueryError> {
    let mut counts: HashMap<InstanceKey, Counts> = HashMap::new();
    let mut missing = Vec::new();
    for (snapshot, s) in snapshots.iter().enumerate() {
        for batch in &s.patches {
            let (ids, states) = (text(batch, "instance_id")?, text(batch, "state")?);
            let (severities, classifications) =
                (text(batch, "severity")?, text(batch, "classification")?);
            let (kbs, titles) = (text(batch, "kb_id")?, text(batch, "title")?);
            for i in 0..batch.num_rows() {
                let class = StateClass::of(states.value(i));
                let c = counts.entry((snapshot, ids.value(i))).or_default();
                c.classes[class as usize] += 1;
                c.noncompliant += i64::from(class.makes_noncompliant());
                if class == StateClass::Missing {
                    let (severity, classification) =
                        (severities.value(i), classifications.value(i));
                    c.missing_critical += i64::from(is_critical(severity, classification));
                    c.missing_security += i64::from(is_security(classification));
                    missing.push(Missing {
                        snapshot,
                        instance_id: ids.value(i),
                        kb_id: kbs.value(i),
                        title: titles.value(i),
                        severity,
                    });
                }
            }
        }
    }
    Ok((counts, missing))
}

/// The main table's rows, most missing critical first (then missing, failed, and by scope and
/// instance id).
fn instance_rows<'a>(
    snapshots: &'a [Snapshot<'_>],
    counts: &HashMap<InstanceKey, Counts>,
    stale: i64,
    platform: Option<&str>,
) -> Result<Vec<Row<'a>>, QueryError> {
    let mut rows = Vec::new();
    for (snapshot, s) in snapshots.iter().enumerate() {
        let finished_at = s.run.finished_at.timestamp_micros();
        for batch in &s.instances {
            let mut texts = Vec::with_capacity(TEXT_COLUMNS.len());
            for name in TEXT_COLUMNS {
                texts.push(text(batch, name)?);
            }
            let patch_pages = count(batch, "patch_pages")?;
            let (last_ping, last_scan) = (
                micros(batch, "last_ping_time")?,
                micros(batch, "last_scan_time")?,
            );
            let snapshot_time = micros(batch, "snapshot_time")?;
            let aws_counts = [
                count(batch, "critical_non_compliant_count")?,
                count(batch, "security_non_compliant_count")?,
                count(batch, "other_non_compliant_count")?,
            ];
            for i in 0..batch.num_rows() {
                let text: [Option<&str>; TEXT_COLUMNS.len()] =
                    std::array::from_fn(|c| opt_text(texts[c], i));
                if let Some(p) = platform {
                    let has = |c: usize| text[c].unwrap_or_default().to_lowercase().contains(p);
                    if !(has(PLATFORM) || has(PLATFORM_TYPE) || has(PLATFORM_NAME)) {
                        continue;
                    }
                }
                let instance_id = text[INSTANCE].unwrap_or_default();
                let c = counts
                    .get(&(snapshot, instance_id))
                    .copied()
                    .unwrap_or_default();
                let last_scan_time = opt_i64(last_scan, i);
                let age = last_scan_time.map(|t| finished_at - t);
                // A listed patch list where no states were collected (§4.7).
                let listed = !s.run.patch_states && opt_i64(patch_pages, i) > Some(0);
                let compliance = match text[OUTCOME] {
                    Some("error") => "error",
                    Some("unmanaged") => "unmanaged",
                    _ if !s.run.patch_states => {
                        if c.noncompliant > 0 {
                            "non_compliant"
                        } else {
                            "unknown"
                        }
                    }
                    _ => match age {
                        None => "unknown",
                        Some(age) if age > stale => "unknown",
                        _ if c.noncompliant > 0 => "non_compliant",
                        _ => "compliant",
                    },
                };
                let fresh = matches!(compliance, "compliant" | "non_compliant");
                let aws: [Option<i64>; 3] = aws_counts.map(|a| opt_i64(a, i));
                let aws_compliance = if !fresh || listed {
                    None
                } else if aws.iter().map(|n| n.unwrap_or(0)).sum::<i64>() > 0 {
                    Some("non_compliant")
                } else if aws.iter().all(Option::is_some) {
                    Some("compliant")
                } else {
                    None
                };
                rows.push(Row {
                    text,
                    last_ping_time: opt_i64(last_ping, i),
                    last_scan_time,
                    snapshot_time: opt_i64(snapshot_time, i),
                    scan_age_days: age.map(|a| (a as f64 / 8_640_000_000.0).round() / 10.0),
                    hybrid: text[RESOURCE_TYPE] == Some("ManagedInstance")
                        || instance_id.starts_with("mi-"),
                    counts: c,
                    compliance,
                    aws_compliance,
                });
            }
        }
    }
    let key = |r: &Row<'a>| {
        (
            std::cmp::Reverse(r.counts.missing_critical),
            std::cmp::Reverse(r.counts.of(StateClass::Missing)),
            std::cmp::Reverse(r.counts.of(StateClass::Failed)),
            [r.text[ACCOUNT], r.text[REGION], r.text[INSTANCE]],
        )
    };
    rows.sort_by(|a, b| key(a).cmp(&key(b)));
    Ok(rows)
}

type Column = (Field, ArrayRef);

fn table(name: &str, columns: Vec<Column>) -> Result<Table, QueryError> {
    let (fields, arrays): (Vec<Field>, Vec<ArrayRef>) = columns.into_iter().unzip();
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(schema.clone(), arrays)
        .map_err(|e| QueryError::Engine(format!("{name}: {e}")))?;
    Ok(Table {
        name: name.into(),
        schema,
        batches: vec![batch],
    })
}

fn text_column<'a>(
    name: &str,
    nullable: bool,
    values: impl Iterator<Item = Option<&'a str>>,
) -> Column {
    (
        Field::new(name, DataType::Utf8, nullable),
        Arc::new(values.collect::<StringArray>()),
    )
}

fn int_column(name: &str, values: impl Iterator<Item = i64>) -> Column {
    (
        Field::new(name, DataType::Int64, false),
        Arc::new(Int64Array::from_iter_values(values)),
    )
}

fn time_column(name: &str, nullable: bool, values: impl Iterator<Item = Option<i64>>) -> Column {
    (
        Field::new(
            name,
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            nullable,
        ),
        Arc::new(
            values
                .collect::<TimestampMicrosecondArray>()
                .with_timezone("UTC"),
        ),
    )
}

/// The main table: one row per instance of the snapshots in force.
fn instances_table(rows: &[Row]) -> Result<Table, QueryError> {
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
