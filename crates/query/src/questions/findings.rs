//! The auditor's questions (docs/semantics.md §8) on Arrow arrays: how long each patch stayed
//! outstanding on each instance, whether that met the SLA, which CVEs that exposed, and which
//! findings are accepted risks.
//!
//! A finding is one patch outstanding on one instance
//! over consecutive reporting snapshots (§8.1), with the snapshots just before and after it, its
//! CVE ids (§8.4), its time open against the policy's limit (§8.2, §8.3) and the waiver that
//! accepts it (§8.6).
//!
//! The snapshots in force by the report's instant are read one at a time, oldest first: each
//! instance's reporting snapshots are numbered as they come, an outstanding patch extends the
//! finding its previous reporting snapshot left open or starts one, and a finding whose patch is
//! no longer outstanding closes there. Memory holds one snapshot and the findings, never the
//! history.

use super::FastMap;
use super::states::*;
use crate::QueryError;
use crate::columns::{micros, opt_i64, opt_text, runs_by, text};
use crate::history::{LoadedHistory, RunInfo};
use crate::judgments::{Clock, SlaPolicy, Waivers};
use crate::kev::Kev;
use crate::report::{Column, Report, Table, int_column, table, text_column, time_column};
use arrow_array::types::TimestampMicrosecondType;
use arrow_array::{
    Array, ArrayRef, Float64Array, Int64Array, PrimitiveArray, RecordBatch, StringArray,
};
use arrow_schema::{DataType, Field};
use chrono::{DateTime, NaiveDate, Utc};
use patchtrail_model::{StateClass, cve_id, severity_level};
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

/// An instance's identity across snapshots: account, region, instance id.
pub(crate) type InstanceId = (String, String, String);

/// Whether a patch of `class` is outstanding (§8.1): applicable and not in effect.
pub(crate) fn outstanding(class: StateClass) -> bool {
    matches!(
        class,
        StateClass::Missing | StateClass::Failed | StateClass::PendingReboot
    )
}

/// Whether a finding resolved this way was fixed (§8.1).
pub(crate) fn fixed(resolution: Option<&str>) -> bool {
    matches!(resolution, Some("installed" | "not_applicable"))
}

/// Seconds from `from` to `to` (microseconds), as the SQL engine's epoch seconds subtract.
pub(crate) fn seconds(from: i64, to: i64) -> f64 {
    to as f64 / 1e6 - from as f64 / 1e6
}

/// `x` rounded to one decimal, as SQL's `ROUND(x, 1)`.
pub(crate) fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// Days, one decimal, from seconds.
pub(crate) fn days(secs: f64) -> f64 {
    round1(secs / 86400.0)
}

/// One finding (§8.1).
#[derive(Debug, Clone)]
pub(crate) struct Finding {
    pub instance: InstanceId,
    /// The instance's name and tags in the last snapshot that saw the patch outstanding.
    pub name: Option<String>,
    pub tags: String,
    /// The patch as the first snapshot that saw it outstanding described it.
    pub kb_id: String,
    pub title: String,
    pub severity_level: &'static str,
    pub classification: String,
    /// Upper-cased, trimmed, sorted and distinct (§8.4).
    pub cves: BTreeSet<String>,
    /// The last `cve_ids` text merged into `cves`: the same text again (the next week's row,
    /// most often) adds nothing and is not parsed again.
    cves_merged: Option<String>,
    pub first_seen: i64,
    pub last_seen: i64,
    pub previous_snapshot: Option<i64>,
    pub next_snapshot: Option<i64>,
    /// How it ended: the class of the patch in the next reporting snapshot,
    /// `no_longer_reported`, `instance_gone`, or None while open.
    pub resolution: Option<&'static str>,
    pub open_secs: f64,
    pub min_secs: f64,
    pub max_secs: Option<f64>,
    /// The earliest AWS release date of its rows (§8.3), if AWS gave one.
    pub released: Option<i64>,
    /// The clock of the limit that gives `due_at`: `first_seen`, `released` or `kev`.
    pub clock: &'static str,
    pub limit_days: Option<i64>,
    pub due_at: Option<i64>,
    pub status: &'static str,
    pub waived_by: Option<String>,
    pub expired_waiver: Option<String>,
    /// The KEV catalog's CVEs it is exposed to, the earliest `dueDate` among them, and whether
    /// one is known to be used in ransomware campaigns (§8.3).
    pub kev_cves: Vec<String>,
    pub kev_due_date: Option<NaiveDate>,
    pub kev_ransomware: Option<bool>,
}

impl Finding {
    /// The CVE ids as one comma-separated text, None when it names none.
    pub fn cve_ids(&self) -> Option<String> {
        (!self.cves.is_empty()).then(|| self.cves.iter().cloned().collect::<Vec<_>>().join(","))
    }

    pub fn resolved_at(&self) -> Option<i64> {
        self.next_snapshot
    }
}

/// An instance's reporting snapshots so far, its name and tags in the latest, and its findings
/// still open.
#[derive(Default)]
struct Tracked {
    reporting: usize,
    last_time: Option<i64>,
    name: Option<String>,
    tags: String,
    /// KB id → the finding it extends.
    open: FastMap<String, usize>,
}

/// An instance's rows in a snapshot: per patch batch, the range of its rows there.
type Ranges = Vec<(usize, std::ops::Range<usize>)>;

/// Each instance's rows in a snapshot.
type RowsOf<'a> = FastMap<Scoped<'a>, Ranges>;

/// An instance's identity as one text (account, region and instance id, NUL-separated),
/// written into `into`.
fn instance_key<'k>(into: &'k mut String, (account, region, id): Scoped) -> &'k str {
    into.clear();
    for (i, part) in [account, region, id].into_iter().enumerate() {
        if i > 0 {
            into.push('\0');
        }
        into.push_str(part);
    }
    into
}

fn scoped_of<'a>(s: &InstanceState<'a>) -> Scoped<'a> {
    (s.text(ACCOUNT), s.text(REGION), s.text(INSTANCE))
}

/// Adds the CVE ids `names` lists to `cves` (§8.4: comma-separated, each trimmed of spaces and
/// upper-cased; an item without a CVE id's shape names none).
fn add_cves(cves: &mut BTreeSet<String>, names: &str) {
    for raw in names.split(',') {
        if let Some(id) = cve_id(raw) {
            cves.insert(id);
        }
    }
}

/// Whether a row's CVE ids (`names`, comma-separated) name `wanted` (a CVE id, upper case):
/// one of them, trimmed of spaces, equal to it without regard to case (§8.4).
fn names_cve(names: &str, wanted: &str) -> bool {
    names
        .split(',')
        .any(|raw| raw.trim_matches(' ').eq_ignore_ascii_case(wanted))
}

/// Whether a snapshot's instance is there only as terminated (§8.1, §4.5): EC2 says
/// `shutting-down` or `terminated`, or SSM refused it because it was. Its findings end as
/// `instance_gone`, like those of an instance the snapshot no longer lists.
fn terminated(s: &InstanceState) -> bool {
    matches!(s.text[EC2_STATE], Some("shutting-down" | "terminated"))
        || s.text[UNMANAGED_REASON] == Some("terminated")
}

/// The columns of one patch batch findings read, looked up once per batch.
struct PatchColumns<'a> {
    account_id: &'a StringArray,
    region: &'a StringArray,
    instance_id: &'a StringArray,
    kb_id: &'a StringArray,
    title: &'a StringArray,
    severity: &'a StringArray,
    classification: &'a StringArray,
    state: &'a StringArray,
    cve_ids: &'a StringArray,
    release_date: &'a PrimitiveArray<TimestampMicrosecondType>,
}

impl<'a> PatchColumns<'a> {
    fn of(batch: &'a RecordBatch) -> Result<Self, QueryError> {
        Ok(PatchColumns {
            account_id: text(batch, "account_id")?,
            region: text(batch, "region")?,
            instance_id: text(batch, "instance_id")?,
            kb_id: text(batch, "kb_id")?,
            title: text(batch, "title")?,
            severity: text(batch, "severity")?,
            classification: text(batch, "classification")?,
            state: text(batch, "state")?,
            cve_ids: text(batch, "cve_ids")?,
            release_date: micros(batch, "release_date")?,
        })
    }

    fn len(&self) -> usize {
        self.kb_id.len()
    }

    fn instance(&self, i: usize) -> Scoped<'a> {
        (
            self.account_id.value(i),
            self.region.value(i),
            self.instance_id.value(i),
        )
    }
}

/// The columns of one instance batch the findings read.
struct InstanceColumns<'a> {
    account_id: &'a StringArray,
    region: &'a StringArray,
    instance_id: &'a StringArray,
    name: &'a StringArray,
    tags: &'a StringArray,
}

impl<'a> InstanceColumns<'a> {
    fn of(batch: &'a RecordBatch) -> Result<Self, QueryError> {
        let column = |c: usize| text(batch, TEXT_COLUMNS[c]);
        Ok(InstanceColumns {
            account_id: column(ACCOUNT)?,
            region: column(REGION)?,
            instance_id: column(INSTANCE)?,
            name: column(NAME)?,
            tags: column(TAGS)?,
        })
    }

    fn scoped(&self, i: usize) -> Scoped<'a> {
        let value = |a: &'a StringArray| opt_text(a, i).unwrap_or_default();
        (
            value(self.account_id),
            value(self.region),
            value(self.instance_id),
        )
    }

    fn name(&self, i: usize) -> Option<&'a str> {
        opt_text(self.name, i)
    }

    fn tags(&self, i: usize) -> &'a str {
        opt_text(self.tags, i).unwrap_or_default()
    }
}

/// What the findings need of one snapshot that depends on it alone, found where it decodes:
/// its reporting instances (most missing critical first, as [`instance_states`] orders them),
/// each with its patch rows, and, for a snapshot in force at the report's instant, the
/// instances it lists that are not terminated.
struct Prepared<'h> {
    snapshot: Snapshot<'h>,
    /// Each reporting instance: its instance batch and row, and its patch rows.
    reporting: Vec<((usize, usize), Ranges)>,
    present: Vec<String>,
}

impl<'h> Prepared<'h> {
    fn of(snapshot: Snapshot<'h>, current: bool, stale: i64) -> Result<Self, QueryError> {
        let (reporting, present) = {
            let snapshot = std::slice::from_ref(&snapshot);
            let states = instance_states(snapshot, stale, None)?;
            let present = if current {
                states
                    .iter()
                    .filter(|s| !terminated(s))
                    .map(|s| instance_key(&mut String::new(), scoped_of(s)).to_string())
                    .collect()
            } else {
                Vec::new()
            };
            let batches = snapshot[0]
                .patches
                .iter()
                .map(PatchColumns::of)
                .collect::<Result<Vec<_>, _>>()?;
            // Each instance's rows: a file holds an instance's rows together, so a run of rows
            // of one instance is found with one lookup.
            let mut rows: RowsOf = FastMap::default();
            for (b, columns) in batches.iter().enumerate() {
                for (instance, range) in runs_by(columns.len(), |i| columns.instance(i)) {
                    rows.entry(instance).or_default().push((b, range));
                }
            }
            let reporting = states
                .iter()
                .filter(|s| s.reporting())
                .map(|s| (s.row, rows.get(&scoped_of(s)).cloned().unwrap_or_default()))
                .collect();
            (reporting, present)
        };
        Ok(Prepared {
            snapshot,
            reporting,
            present,
        })
    }
}

impl LoadedHistory {
    /// The runs a report as of `instant` may read (§8.2): those in force by then.
    pub(crate) fn in_force_by(&self, instant: DateTime<Utc>) -> Vec<&RunInfo> {
        self.runs
            .iter()
            .filter(|r| r.finished_at <= instant)
            .collect()
    }

    /// Every finding first seen by `instant` (§8.1, §8.2, §8.3, §8.6).
    pub(crate) fn findings<'h>(
        &'h self,
        instant: DateTime<Utc>,
        label: &str,
        stale_days: u32,
        policy: &SlaPolicy,
        waivers: &Waivers,
        kev: &Kev,
    ) -> Result<Vec<Finding>, QueryError> {
        let current: HashSet<&str> = self
            .require_as_of(instant, label)?
            .iter()
            .map(|r| r.run_id.as_str())
            .collect();
        let stale = i64::from(stale_days) * MICROS_PER_DAY;
        let mut findings: Vec<Finding> = Vec::new();
        let mut tracked: FastMap<String, Tracked> = FastMap::default();
        // The instances of the snapshots in force at `instant`, reporting or not, but not
        // terminated.
        let mut present: HashSet<String> = HashSet::new();
        let mut key = String::new();
        let runs = self.in_force_by(instant);
        // What depends on one snapshot alone is found where it decodes, on every core; the
        // findings, which carry from snapshot to snapshot, are followed here, in order.
        let prepare = |run: &'h RunInfo| {
            let snapshot = self.snapshot_of(run, &PATCH_COLUMNS, None)?;
            Prepared::of(snapshot, current.contains(run.run_id.as_str()), stale)
        };
        super::in_order(&runs, prepare, |one| {
            let Prepared {
                snapshot,
                reporting,
                present: here_present,
            } = one;
            present.extend(here_present);
            let run = snapshot.run;
            let batches = snapshot
                .patches
                .iter()
                .map(PatchColumns::of)
                .collect::<Result<Vec<_>, _>>()?;
            let instances = snapshot
                .instances
                .iter()
                .map(InstanceColumns::of)
                .collect::<Result<Vec<_>, _>>()?;
            let at = run.snapshot_time.timestamp_micros();
            // KB id → (class, the batch and row of its first row here); reused per instance.
            let mut here: FastMap<&str, (StateClass, usize, usize)> = FastMap::default();
            for ((batch, row), rows) in &reporting {
                let listed = &instances[*batch];
                let scoped = listed.scoped(*row);
                instance_key(&mut key, scoped);
                let t = match tracked.get_mut(key.as_str()) {
                    Some(t) => t,
                    None => tracked.entry(key.clone()).or_default(),
                };
                here.clear();
                for (b, range) in rows {
                    let columns = &batches[*b];
                    for i in range.clone() {
                        let class = StateClass::of(columns.state.value(i));
                        here.entry(columns.kb_id.value(i)).or_insert((class, *b, i));
                    }
                }
                // Open findings whose patch is no longer outstanding end here, named as the
                // instance was when it last saw them.
                let ended: Vec<(String, usize)> = t
                    .open
                    .iter()
                    .filter(|(kb, _)| !here.get(kb.as_str()).is_some_and(|h| outstanding(h.0)))
                    .map(|(kb, f)| (kb.clone(), *f))
                    .collect();
                for (kb, f) in ended {
                    t.open.remove(&kb);
                    let finding = &mut findings[f];
                    finding.next_snapshot = Some(at);
                    finding.resolution = Some(
                        here.get(kb.as_str())
                            .map_or("no_longer_reported", |h| h.0.as_str()),
                    );
                    finding.name = t.name.clone();
                    finding.tags = t.tags.clone();
                }
                for (kb, (class, b, i)) in &here {
                    if !outstanding(*class) {
                        continue;
                    }
                    let columns = &batches[*b];
                    let f = match t.open.get(*kb) {
                        Some(&f) => f,
                        None => {
                            findings.push(Finding {
                                instance: (scoped.0.into(), scoped.1.into(), scoped.2.into()),
                                name: None,
                                tags: String::new(),
                                kb_id: kb.to_string(),
                                title: columns.title.value(*i).into(),
                                severity_level: severity_level(columns.severity.value(*i)),
                                classification: columns.classification.value(*i).into(),
                                cves: BTreeSet::new(),
                                cves_merged: None,
                                first_seen: at,
                                last_seen: at,
                                previous_snapshot: t.last_time,
                                next_snapshot: None,
                                resolution: None,
                                open_secs: 0.0,
                                min_secs: 0.0,
                                max_secs: None,
                                released: None,
                                clock: Clock::FirstSeen.as_str(),
                                limit_days: None,
                                due_at: None,
                                status: "open",
                                waived_by: None,
                                expired_waiver: None,
                                kev_cves: Vec::new(),
                                kev_due_date: None,
                                kev_ransomware: None,
                            });
                            t.open.insert(kb.to_string(), findings.len() - 1);
                            findings.len() - 1
                        }
                    };
                    findings[f].last_seen = at;
                }
                // The CVE ids and the earliest release date of every outstanding row (a KB
                // listed twice: of both rows).
                for (b, range) in rows {
                    let columns = &batches[*b];
                    for i in range.clone() {
                        let names = opt_text(columns.cve_ids, i);
                        let released = opt_i64(columns.release_date, i);
                        if (names.is_none() && released.is_none())
                            || !outstanding(StateClass::of(columns.state.value(i)))
                        {
                            continue;
                        }
                        if let Some(&f) = t.open.get(columns.kb_id.value(i)) {
                            let finding = &mut findings[f];
                            if let Some(names) = names
                                && finding.cves_merged.as_deref() != Some(names)
                            {
                                add_cves(&mut finding.cves, names);
                                finding.cves_merged = Some(names.to_string());
                            }
                            if let Some(r) = released {
                                finding.released = Some(finding.released.map_or(r, |e| e.min(r)));
                            }
                        }
                    }
                }
                t.reporting += 1;
                t.last_time = Some(at);
                let (name, tags) = (listed.name(*row), listed.tags(*row));
                if t.name.as_deref() != name {
                    t.name = name.map(str::to_string);
                }
                if t.tags != tags {
                    t.tags = tags.to_string();
                }
            }
            Ok(())
        })?;
        // Findings still open were last seen in their instance's last reporting snapshot.
        for t in tracked.values() {
            for &f in t.open.values() {
                findings[f].name = t.name.clone();
                findings[f].tags = t.tags.clone();
            }
        }
        let t = instant.timestamp_micros();
        for f in &mut findings {
            let (account, region, id) = &f.instance;
            if f.next_snapshot.is_none()
                && !present.contains(instance_key(&mut key, (account, region, id)))
            {
                f.resolution = Some("instance_gone");
            }
            f.open_secs = match (f.next_snapshot, f.resolution) {
                (Some(next), _) => seconds(f.first_seen, next),
                (None, Some(_)) => seconds(f.first_seen, f.last_seen),
                (None, None) => seconds(f.first_seen, t),
            };
            // Certainly outstanding: from the first snapshot that saw it to the last, open or not.
            f.min_secs = seconds(f.first_seen, f.last_seen);
            f.max_secs = match (f.previous_snapshot, f.resolution) {
                (None, _) | (_, Some("instance_gone")) => None,
                (Some(previous), _) => Some(seconds(previous, f.next_snapshot.unwrap_or(t))),
            };
            due(f, policy, kev);
            // Fixed: compared at the snapshot that saw it fixed; open: at T.
            let end = f.next_snapshot.unwrap_or(t);
            let late = f.due_at.is_some_and(|due| end > due);
            f.status = match f.resolution {
                r if fixed(r) => {
                    if late {
                        "fixed_late"
                    } else {
                        "fixed_in_time"
                    }
                }
                None if late => "breached",
                None => "open",
                Some(_) => "resolved_other",
            };
            let cve_ids = f.cve_ids();
            f.waived_by = waivers
                .first_match(
                    instant,
                    true,
                    &f.instance.2,
                    &f.tags,
                    &f.kb_id,
                    cve_ids.as_deref(),
                )
                .map(str::to_string);
            if f.waived_by.is_none() {
                f.expired_waiver = waivers
                    .first_match(
                        instant,
                        false,
                        &f.instance.2,
                        &f.tags,
                        &f.kb_id,
                        cve_ids.as_deref(),
                    )
                    .map(str::to_string);
            }
        }
        Ok(findings)
    }
}

/// The end (UTC) of `date`: the last microsecond of that day.
fn end_of_day(date: NaiveDate) -> i64 {
    date.and_hms_opt(0, 0, 0)
        .map_or(i64::MAX, |d| d.and_utc().timestamp_micros())
        .saturating_add(MICROS_PER_DAY - 1)
}

/// §8.3: a finding's due instant, the limit and clock that give it, and its KEV columns. Each
/// limit that applies counts from its clock (`released` without a release date counts from
/// `first_seen`); the earliest wins, the level's on a tie; a KEV `dueDate` earlier than that wins
/// over the policy.
fn due(f: &mut Finding, policy: &SlaPolicy, kev: &Kev) {
    let mut best: Option<(i64, i64, Clock)> = None;
    for limit in policy.limits(f.severity_level, &f.classification) {
        let (start, clock) = match (limit.from, f.released) {
            (Clock::Released, Some(released)) => (released, Clock::Released),
            _ => (f.first_seen, Clock::FirstSeen),
        };
        let due = start.saturating_add(i64::from(limit.days) * MICROS_PER_DAY);
        if best.is_none_or(|(d, _, _)| due < d) {
            best = Some((due, i64::from(limit.days), clock));
        }
    }
    f.due_at = best.map(|b| b.0);
    f.limit_days = best.map(|b| b.1);
    f.clock = best.map_or(Clock::FirstSeen, |b| b.2).as_str();
    let listed: Vec<(&String, &crate::kev::KevEntry)> = f
        .cves
        .iter()
        .filter_map(|c| kev.get(c).map(|e| (c, e)))
        .collect();
    f.kev_cves = listed.iter().map(|(c, _)| (*c).clone()).collect();
    f.kev_due_date = listed.iter().map(|(_, e)| e.due_date).min();
    f.kev_ransomware = (!listed.is_empty()).then(|| listed.iter().any(|(_, e)| e.ransomware));
    if let Some(kev_due) = f.kev_due_date.map(end_of_day)
        && f.due_at.is_none_or(|d| kev_due < d)
    {
        f.due_at = Some(kev_due);
        f.clock = "kev";
    }
}

/// A row of `cve_history`'s instances: an outstanding patch naming the CVE on a reporting
/// instance.
struct Exposed<'h> {
    snapshot_time: i64,
    run_id: &'h str,
    instance: InstanceId,
    name: Option<String>,
    kb_id: String,
    state: String,
}

/// The order of the SLA table: breached first, then fixed late, open, fixed in time, the rest.
fn status_rank(status: &str) -> u8 {
    match status {
        "breached" => 0,
        "fixed_late" => 1,
        "open" => 2,
        "fixed_in_time" => 3,
        _ => 4,
    }
}

/// §8.5: the count, and the nearest-rank median and 90th percentile of `values` (days), one
/// decimal: the smallest value with at least that share of the values at or below it.
fn nearest_rank(mut values: Vec<f64>) -> (i64, Option<f64>, Option<f64>) {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    let at = |share: f64| {
        let rank = (share * n as f64).ceil().max(1.0) as usize;
        values.get(rank - 1).copied().map(round1)
    };
    (n as i64, at(0.5), at(0.9))
}

/// The columns of a [`nearest_rank`]: the count (named `count`), median and 90th percentile.
fn rank_columns<'r>(
    count: &str,
    ranks: impl Iterator<Item = &'r (i64, Option<f64>, Option<f64>)> + Clone,
) -> [Column; 3] {
    [
        int_column(count, ranks.clone().map(|r| r.0)),
        float_column("median_days", ranks.clone().map(|r| r.1)),
        float_column("p90_days", ranks.map(|r| r.2)),
    ]
}

fn float_column(name: &str, values: impl Iterator<Item = Option<f64>>) -> Column {
    (
        Field::new(name, DataType::Float64, true),
        Arc::new(values.collect::<Float64Array>()),
    )
}

/// A table of `findings` with `columns`, each its name in the table and the finding's value it
/// shows; `cve_id` shows `cves` (one per finding row), `fixed_at` the resolution time of a fixed
/// finding.
fn findings_table(
    name: &str,
    findings: &[&Finding],
    columns: &[(&str, &str)],
    cves: &[&str],
) -> Result<Table, QueryError> {
    let mut out = Vec::with_capacity(columns.len());
    for (column, source) in columns {
        // Borrowed where the finding holds the text: no copy per cell.
        let text = |f: for<'f> fn(&'f Finding) -> Option<Cow<'f, str>>| {
            let values: Vec<Option<Cow<str>>> = findings.iter().map(|x| f(x)).collect();
            text_column(column, true, values.iter().map(|v| v.as_deref()))
        };
        let time = |f: fn(&Finding) -> Option<i64>| {
            time_column(column, true, findings.iter().map(|x| f(x)))
        };
        let float =
            |f: fn(&Finding) -> Option<f64>| float_column(column, findings.iter().map(|x| f(x)));
        out.push(match *source {
            "account_id" => text(|f| Some(Cow::Borrowed(&f.instance.0))),
            "region" => text(|f| Some(Cow::Borrowed(&f.instance.1))),
            "instance_id" => text(|f| Some(Cow::Borrowed(&f.instance.2))),
            "name" => text(|f| f.name.as_deref().map(Cow::Borrowed)),
            "cve_id" => text_column(column, true, cves.iter().map(|c| Some(*c))),
            "kb_id" => text(|f| Some(Cow::Borrowed(&f.kb_id))),
            "title" => text(|f| Some(Cow::Borrowed(&f.title))),
            "severity_level" => text(|f| Some(Cow::Borrowed(f.severity_level))),
            "classification" => text(|f| Some(Cow::Borrowed(&f.classification))),
            "cve_ids" => text(|f| f.cve_ids().map(Cow::Owned)),
            "first_seen" => time(|f| Some(f.first_seen)),
            "last_seen" => time(|f| Some(f.last_seen)),
            "previous_snapshot" => time(|f| f.previous_snapshot),
            "resolved_at" => time(Finding::resolved_at),
            "fixed_at" => time(|f| f.resolved_at().filter(|_| fixed(f.resolution))),
            "resolution" => text(|f| f.resolution.map(Cow::Borrowed)),
            "days_open" => float(|f| Some(days(f.open_secs))),
            "days_open_min" => float(|f| Some(days(f.min_secs))),
            "days_open_max" => float(|f| f.max_secs.map(days)),
            "limit_days" => {
                let limits: Int64Array = findings.iter().map(|f| f.limit_days).collect();
                let limits: ArrayRef = Arc::new(limits);
                (Field::new(*column, DataType::Int64, true), limits)
            }
            "release_date" => time(|f| f.released),
            "clock" => text(|f| Some(Cow::Borrowed(f.clock))),
            "due_at" => time(|f| f.due_at),
            "kev_cves" => {
                text(|f| (!f.kev_cves.is_empty()).then(|| Cow::Owned(f.kev_cves.join(","))))
            }
            "kev_due_date" => text(|f| f.kev_due_date.map(|d| Cow::Owned(d.to_string()))),
            "kev_ransomware" => text(|f| {
                f.kev_ransomware
                    .map(|known| Cow::Borrowed(if known { "Known" } else { "Unknown" }))
            }),
            "status" => text(|f| Some(Cow::Borrowed(f.status))),
            "waived_by" => text(|f| f.waived_by.as_deref().map(Cow::Borrowed)),
            "expired_waiver" => text(|f| f.expired_waiver.as_deref().map(Cow::Borrowed)),
            other => {
                return Err(QueryError::Engine(format!("no finding column {other}")));
            }
        });
    }
    table(name, out)
}

/// The SLA table's columns.
const SLA_COLUMNS: [&str; 27] = [
    "account_id",
    "region",
    "instance_id",
    "name",
    "kb_id",
    "title",
    "severity_level",
    "classification",
    "cve_ids",
    "first_seen",
    "last_seen",
    "previous_snapshot",
    "resolved_at",
    "resolution",
    "days_open",
    "days_open_min",
    "days_open_max",
    "release_date",
    "clock",
    "limit_days",
    "due_at",
    "status",
    "waived_by",
    "expired_waiver",
    "kev_cves",
    "kev_due_date",
    "kev_ransomware",
];

/// The statuses `by_scope` counts (unwaived findings), in its column order.
const COUNTED_STATUSES: [&str; 5] = [
    "breached",
    "fixed_late",
    "open",
    "fixed_in_time",
    "resolved_other",
];

impl LoadedHistory {
    /// Notes every §8 report carries: the policy and waivers it applied.
    /// The notes of a report over findings as of `instant`: first how far `instant` lies past
    /// the newest snapshot in force (§8.2: open findings are measured to it), then the history's
    /// notes, the policy and the waivers.
    fn judgment_notes(
        &self,
        instant: DateTime<Utc>,
        label: &str,
        policy: Option<&SlaPolicy>,
        waivers: &Waivers,
        kev: &Kev,
    ) -> Vec<String> {
        let newest = self
            .in_force_by(instant)
            .into_iter()
            .map(|r| r.snapshot_time)
            .max();
        let mut notes: Vec<String> = newest
            .map(|at| {
                self.lang.measured_past_snapshot(
                    label,
                    &at.format("%Y-%m-%d %H:%M UTC").to_string(),
                    days(seconds(at.timestamp_micros(), instant.timestamp_micros())),
                )
            })
            .into_iter()
            .collect();
        notes.extend(self.notes());
        notes.extend(policy.map(SlaPolicy::describe));
        notes.extend(waivers.describe());
        notes.extend(kev.describe());
        notes
    }

    /// `waivers` (§8.6): every entry with the findings it matches and its state at `instant`.
    fn waiver_table(
        &self,
        instant: DateTime<Utc>,
        waivers: &Waivers,
        findings: &[Finding],
    ) -> Result<Table, QueryError> {
        let matched: Vec<i64> = waivers
            .entries
            .iter()
            .map(|w| {
                findings
                    .iter()
                    .filter(|f| w.matches(&f.instance.2, &f.tags, &f.kb_id, f.cve_ids().as_deref()))
                    .count() as i64
            })
            .collect();
        let entries = &waivers.entries;
        let text = |name: &str, f: fn(&crate::judgments::Waiver) -> Option<String>| {
            let values: Vec<Option<String>> = entries.iter().map(f).collect();
            text_column(
                name,
                true,
                values
                    .iter()
                    .map(Option::as_deref)
                    .collect::<Vec<_>>()
                    .into_iter(),
            )
        };
        table(
            "waivers",
            vec![
                text("id", |w| Some(w.id.clone())),
                text("instance", |w| w.instance.clone()),
                text("tag", |w| w.tag.as_ref().map(|(k, v)| format!("{k}={v}"))),
                text("kb", |w| w.kb.clone()),
                text("cve", |w| w.cve.clone()),
                text("reason", |w| Some(w.reason.clone())),
                text("approver", |w| Some(w.approver.clone())),
                text("expires", |w| Some(w.expires.to_string())),
                int_column("findings", matched.iter().copied()),
                text_column(
                    "state",
                    true,
                    entries.iter().zip(&matched).map(|(w, n)| {
                        Some(if *n == 0 {
                            "unused"
                        } else if w.holds_at(instant) {
                            "active"
                        } else {
                            "expired"
                        })
                    }),
                ),
            ],
        )
    }

    /// §8.3: every finding first seen by `instant` against the policy's limit, and per scope.
    pub async fn sla(
        &self,
        instant: DateTime<Utc>,
        label: &str,
        stale_days: u32,
        policy: &SlaPolicy,
        waivers: &Waivers,
        kev: &Kev,
    ) -> Result<Report, QueryError> {
        let all = self.findings(instant, label, stale_days, policy, waivers, kev)?;
        let mut sorted: Vec<&Finding> = all.iter().collect();
        sorted.sort_by(|a, b| {
            status_rank(a.status)
                .cmp(&status_rank(b.status))
                .then(days(b.open_secs).total_cmp(&days(a.open_secs)))
                .then_with(|| a.instance.cmp(&b.instance))
                .then_with(|| a.kb_id.cmp(&b.kb_id))
                .then(a.first_seen.cmp(&b.first_seen))
        });
        let columns = SLA_COLUMNS.map(|c| (c, c));
        let findings = findings_table("findings", &sorted, &columns, &[])?;

        // Per scope: unwaived findings per status, and the waived ones.
        let mut scopes: BTreeMap<(&str, &str), [i64; 6]> = BTreeMap::new();
        for f in &all {
            let row = scopes.entry((&f.instance.0, &f.instance.1)).or_default();
            if f.waived_by.is_some() {
                row[5] += 1;
            } else if let Some(k) = COUNTED_STATUSES.iter().position(|s| *s == f.status) {
                row[k] += 1;
            }
        }
        let mut scopes: Vec<_> = scopes.into_iter().collect();
        scopes.sort_by(|a, b| b.1[0].cmp(&a.1[0]).then(a.0.cmp(&b.0)));
        let mut columns = vec![
            text_column("account_id", false, scopes.iter().map(|s| Some(s.0.0))),
            text_column("region", false, scopes.iter().map(|s| Some(s.0.1))),
        ];
        for (k, status) in COUNTED_STATUSES.iter().chain(&["waived"]).enumerate() {
            columns.push(int_column(status, scopes.iter().map(|s| s.1[k])));
        }
        let by_scope = table("by_scope", columns)?;
        let (remediation, open_age) = self.remediation(instant, &all)?;
        let mut charts = super::charts::sla(self.lang, &by_scope)?;
        charts.extend(super::charts::remediation(self.lang, &remediation)?);
        let mut tables = vec![findings, by_scope, remediation, open_age];
        if waivers.source.is_some() {
            tables.push(self.waiver_table(instant, waivers, &all)?);
        }
        Ok(Report {
            title: self.lang.sla_title(label),
            subtitle: Self::describe(&self.require_as_of(instant, label)?),
            lang: self.lang,
            as_of: None,
            tables,
            charts,
            notes: self.judgment_notes(instant, label, Some(policy), waivers, kev),
        })
    }

    /// §8.5: days to remediate per month and severity level, and the age of what was open at
    /// each snapshot in force by `instant`.
    fn remediation(
        &self,
        instant: DateTime<Utc>,
        findings: &[Finding],
    ) -> Result<(Table, Table), QueryError> {
        let mut fixed_by: BTreeMap<(String, &str), Vec<f64>> = BTreeMap::new();
        for f in findings.iter().filter(|f| fixed(f.resolution)) {
            let Some(month) = f
                .resolved_at()
                .and_then(DateTime::from_timestamp_micros)
                .map(|t| t.format("%Y-%m").to_string())
            else {
                continue;
            };
            fixed_by
                .entry((month, f.severity_level))
                .or_default()
                .push(f.open_secs / 86400.0);
        }
        let fixed_rows: Vec<_> = fixed_by
            .into_iter()
            .map(|(k, v)| (k, nearest_rank(v)))
            .collect();
        let remediation = table(
            "remediation",
            vec![
                text_column(
                    "month",
                    true,
                    fixed_rows.iter().map(|r| Some(r.0.0.as_str())),
                ),
                text_column(
                    "severity_level",
                    true,
                    fixed_rows.iter().map(|r| Some(r.0.1)),
                ),
            ]
            .into_iter()
            .chain(rank_columns("fixed", fixed_rows.iter().map(|r| &r.1)))
            .collect(),
        )?;

        // Per snapshot in force by `instant`: the findings of its scope open at it. A finding is
        // open at the snapshots of its scope from the first that saw it until the one that saw
        // it resolved (an instance gone: until the last that saw it), so each finding finds its
        // first and last snapshot in its scope's by binary search, and the work is what the table
        // counts, not every finding at every snapshot.
        let mut runs = self.in_force_by(instant);
        runs.sort_by(|a, b| {
            (a.snapshot_time, &a.run_id, &a.account_id, &a.region).cmp(&(
                b.snapshot_time,
                &b.run_id,
                &b.account_id,
                &b.region,
            ))
        });
        let at = |r: usize| runs[r].snapshot_time.timestamp_micros();
        let mut of_scope: FastMap<(&str, &str), Vec<usize>> = FastMap::default();
        for (r, run) in runs.iter().enumerate() {
            of_scope
                .entry((&run.account_id, &run.region))
                .or_default()
                .push(r);
        }
        let mut open_by: Vec<BTreeMap<&str, Vec<f64>>> = vec![BTreeMap::new(); runs.len()];
        for f in findings {
            let Some(scope) = of_scope.get(&(f.instance.0.as_str(), f.instance.1.as_str())) else {
                continue;
            };
            let from = scope.partition_point(|&r| at(r) < f.first_seen);
            let to = match (f.resolved_at(), f.resolution) {
                (Some(resolved), _) => scope.partition_point(|&r| at(r) < resolved),
                (None, Some("instance_gone")) => scope.partition_point(|&r| at(r) <= f.last_seen),
                _ => scope.len(),
            };
            for &r in scope.get(from..to).unwrap_or_default() {
                open_by[r]
                    .entry(f.severity_level)
                    .or_default()
                    .push(seconds(f.first_seen, at(r)) / 86400.0);
            }
        }
        let open_by = open_by.into_iter().enumerate().flat_map(|(r, levels)| {
            let run = runs[r];
            levels.into_iter().map(move |(level, ages)| {
                (
                    (
                        run.snapshot_time.timestamp_micros(),
                        run.run_id.as_str(),
                        run.account_id.as_str(),
                        run.region.as_str(),
                        level,
                    ),
                    ages,
                )
            })
        });
        let open_rows: Vec<_> = open_by
            .into_iter()
            .map(|(k, v)| (k, nearest_rank(v)))
            .collect();
        let open_age = table(
            "open_age",
            vec![
                time_column("snapshot_time", true, open_rows.iter().map(|r| Some(r.0.0))),
                text_column("run_id", true, open_rows.iter().map(|r| Some(r.0.1))),
                text_column("account_id", true, open_rows.iter().map(|r| Some(r.0.2))),
                text_column("region", true, open_rows.iter().map(|r| Some(r.0.3))),
                text_column(
                    "severity_level",
                    true,
                    open_rows.iter().map(|r| Some(r.0.4)),
                ),
            ]
            .into_iter()
            .chain(rank_columns("open", open_rows.iter().map(|r| &r.1)))
            .collect(),
        )?;
        Ok((remediation, open_age))
    }

    /// §8.4: per snapshot, the instances exposed to `cve` (a reporting instance with an
    /// outstanding patch whose row names it), and which.
    pub async fn cve_history(&self, cve: &str, stale_days: u32) -> Result<Report, QueryError> {
        let wanted = cve_id(cve).ok_or_else(|| QueryError::BadInput {
            input: format!("--cve {cve}"),
            fix: "give a CVE id, e.g. CVE-2024-38063".into(),
        })?;
        let wanted = wanted.as_str();
        let stale = i64::from(stale_days) * MICROS_PER_DAY;
        // (snapshot time, run, account, region, instance, name, kb, state)
        let mut exposed: Vec<Exposed> = Vec::new();
        let mut per_run: Vec<i64> = Vec::with_capacity(self.runs.len());
        let runs: Vec<&RunInfo> = self.runs.iter().collect();
        self.each_snapshot(&runs, &PATCH_COLUMNS[..9], |one| {
            let run = one.run;
            let snapshot = [one];
            let states = instance_states(&snapshot, stale, None)?;
            let reporting: HashMap<(&str, &str, &str), Option<&str>> = states
                .iter()
                .filter(|s| s.reporting())
                .map(|s| {
                    (
                        (s.text(ACCOUNT), s.text(REGION), s.text(INSTANCE)),
                        s.text[NAME],
                    )
                })
                .collect();
            let mut instances = HashSet::new();
            for batch in &snapshot[0].patches {
                let (accounts, regions, ids) = (
                    text(batch, "account_id")?,
                    text(batch, "region")?,
                    text(batch, "instance_id")?,
                );
                let (kbs, states, cve_ids) = (
                    text(batch, "kb_id")?,
                    text(batch, "state")?,
                    text(batch, "cve_ids")?,
                );
                for i in 0..batch.num_rows() {
                    let key = (accounts.value(i), regions.value(i), ids.value(i));
                    let Some(name) = reporting.get(&key) else {
                        continue;
                    };
                    let names = opt_text(cve_ids, i).unwrap_or_default();
                    if !outstanding(StateClass::of(states.value(i))) || !names_cve(names, wanted) {
                        continue;
                    }
                    instances.insert(key);
                    exposed.push(Exposed {
                        snapshot_time: run.snapshot_time.timestamp_micros(),
                        run_id: &run.run_id,
                        instance: (key.0.into(), key.1.into(), key.2.into()),
                        name: name.map(str::to_string),
                        kb_id: kbs.value(i).into(),
                        state: states.value(i).into(),
                    });
                }
            }
            per_run.push(instances.len() as i64);
            Ok(())
        })?;
        exposed.sort_by(|a, b| {
            (a.snapshot_time, a.run_id, &a.instance, &a.kb_id).cmp(&(
                b.snapshot_time,
                b.run_id,
                &b.instance,
                &b.kb_id,
            ))
        });
        let mut columns = super::run_columns(&runs);
        columns.push(int_column("exposed_instances", per_run.iter().copied()));
        let timeline = table("snapshots", columns)?;
        let exposed = table(
            "instances",
            vec![
                time_column(
                    "snapshot_time",
                    true,
                    exposed.iter().map(|e| Some(e.snapshot_time)),
                ),
                text_column("run_id", true, exposed.iter().map(|e| Some(e.run_id))),
                text_column(
                    "account_id",
                    true,
                    exposed.iter().map(|e| Some(e.instance.0.as_str())),
                ),
                text_column(
                    "region",
                    true,
                    exposed.iter().map(|e| Some(e.instance.1.as_str())),
                ),
                text_column(
                    "instance_id",
                    true,
                    exposed.iter().map(|e| Some(e.instance.2.as_str())),
                ),
                text_column("name", true, exposed.iter().map(|e| e.name.as_deref())),
                text_column(
                    "kb_id",
                    true,
                    exposed.iter().map(|e| Some(e.kb_id.as_str())),
                ),
                text_column(
                    "state",
                    true,
                    exposed.iter().map(|e| Some(e.state.as_str())),
                ),
            ],
        )?;
        let charts = super::charts::over_time(
            self.lang,
            &timeline,
            &self.lang.history_title(cve),
            &["exposed_instances"],
        )?;
        let mut notes = self.notes();
        if exposed.rows() == 0 {
            notes.push(self.lang.cve_never_named(wanted, self.lang.now()));
        }
        Ok(Report {
            title: self.lang.history_title(wanted),
            subtitle: self.lang.snapshot_count(timeline.rows()),
            lang: self.lang,
            as_of: None,
            tables: vec![timeline, exposed],
            charts,
            notes,
        })
    }

    /// §8.4: instances exposed to CVEs (all, or those of `cves`) and CVEs ranked by exposure.
    pub async fn exposure(
        &self,
        instant: DateTime<Utc>,
        label: &str,
        stale_days: u32,
        cves: &[String],
        waivers: &Waivers,
        kev: &Kev,
    ) -> Result<Report, QueryError> {
        let policy = SlaPolicy::default();
        let all = self.findings(instant, label, stale_days, &policy, waivers, kev)?;
        let only: Vec<String> = cves
            .iter()
            .map(|c| {
                cve_id(c).ok_or_else(|| QueryError::BadInput {
                    input: format!("--cve {c}"),
                    fix: "give CVE ids, e.g. --cve CVE-2024-38063,CVE-2021-44228".into(),
                })
            })
            .collect::<Result<_, _>>()?;
        // One row per finding and CVE id it names, by CVE id, open first, longest exposed
        // first (days as shown), then instance and KB id. Sorted on integer keys: each finding's
        // place by instance and KB id, each CVE id's place, computed once (a comparison of
        // texts per step showed in profiles at 300,000 rows).
        let mut by_instance: Vec<usize> = (0..all.len()).collect();
        by_instance.sort_by(|&a, &b| {
            (&all[a].instance, &all[a].kb_id).cmp(&(&all[b].instance, &all[b].kb_id))
        });
        let mut place = vec![0u32; all.len()];
        for (p, &f) in by_instance.iter().enumerate() {
            place[f] = p as u32;
        }
        let cve_place: HashMap<&str, u32> = all
            .iter()
            .flat_map(|f| f.cves.iter().map(String::as_str))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .enumerate()
            .map(|(p, c)| (c, p as u32))
            .collect();
        // (CVE id's place, closed, days exposed in tenths, longest first, finding's place).
        type RowKey = (u32, bool, std::cmp::Reverse<i64>, u32);
        let mut keyed: Vec<(RowKey, (&str, &Finding))> = all
            .iter()
            .enumerate()
            .flat_map(|(i, f)| f.cves.iter().map(move |c| (i, c.as_str(), f)))
            .filter(|(_, c, _)| only.is_empty() || only.iter().any(|o| o == c))
            .map(|(i, c, f)| {
                let tenths = (f.open_secs / 86400.0 * 10.0).round() as i64;
                let key = (
                    cve_place.get(c).copied().unwrap_or_default(),
                    f.resolution.is_some(),
                    std::cmp::Reverse(tenths),
                    place[i],
                );
                (key, (c, f))
            })
            .collect();
        keyed.sort_unstable_by_key(|(key, _)| *key);
        let rows: Vec<(&str, &Finding)> = keyed.into_iter().map(|(_, row)| row).collect();
        let findings: Vec<&Finding> = rows.iter().map(|r| r.1).collect();
        let cve_ids: Vec<&str> = rows.iter().map(|r| r.0).collect();
        let exposure = findings_table(
            "exposure",
            &findings,
            &[
                ("account_id", "account_id"),
                ("region", "region"),
                ("instance_id", "instance_id"),
                ("name", "name"),
                ("cve_id", "cve_id"),
                ("kb_id", "kb_id"),
                ("title", "title"),
                ("severity_level", "severity_level"),
                ("first_seen_exposed", "first_seen"),
                ("last_seen_exposed", "last_seen"),
                ("fixed_at", "fixed_at"),
                ("resolution", "resolution"),
                ("days_exposed", "days_open"),
                ("waived_by", "waived_by"),
            ],
            &cve_ids,
        )?;

        // CVEs ranked by instance-days exposed.
        #[derive(Default)]
        struct Ranked<'a> {
            instances: HashSet<&'a InstanceId>,
            findings: i64,
            secs: f64,
            still: HashSet<&'a InstanceId>,
            waived: i64,
        }
        let mut by_cve: BTreeMap<&str, Ranked> = BTreeMap::new();
        for (cve, f) in &rows {
            let r = by_cve.entry(cve).or_default();
            r.instances.insert(&f.instance);
            r.findings += 1;
            r.secs += f.open_secs;
            if f.resolution.is_none() {
                r.still.insert(&f.instance);
            }
            r.waived += i64::from(f.waived_by.is_some());
        }
        let mut ranked: Vec<_> = by_cve.into_iter().collect();
        ranked.sort_by(|a, b| {
            b.1.secs
                .total_cmp(&a.1.secs)
                .then(b.1.instances.len().cmp(&a.1.instances.len()))
                .then(a.0.cmp(b.0))
        });
        let ranked = table(
            "cves",
            vec![
                text_column("cve_id", true, ranked.iter().map(|r| Some(r.0))),
                int_column(
                    "instances",
                    ranked.iter().map(|r| r.1.instances.len() as i64),
                ),
                int_column("findings", ranked.iter().map(|r| r.1.findings)),
                float_column("instance_days", ranked.iter().map(|r| Some(days(r.1.secs)))),
                int_column(
                    "still_exposed",
                    ranked.iter().map(|r| r.1.still.len() as i64),
                ),
                int_column("waived", ranked.iter().map(|r| r.1.waived)),
                text_column(
                    "kev_due_date",
                    true,
                    ranked
                        .iter()
                        .map(|r| kev.get(r.0).map(|e| e.due_date.to_string()))
                        .collect::<Vec<_>>()
                        .iter()
                        .map(Option::as_deref),
                ),
                text_column(
                    "kev_ransomware",
                    true,
                    ranked.iter().map(|r| {
                        kev.get(r.0)
                            .map(|e| if e.ransomware { "Known" } else { "Unknown" })
                    }),
                ),
            ],
        )?;

        // Findings that name no CVE, per severity level.
        let mut blind_by: BTreeMap<&str, (i64, BTreeSet<&InstanceId>, i64)> = BTreeMap::new();
        for f in all.iter().filter(|f| f.cves.is_empty()) {
            let b = blind_by.entry(f.severity_level).or_default();
            b.0 += 1;
            b.1.insert(&f.instance);
            b.2 += i64::from(f.resolution.is_none());
        }
        let mut blind: Vec<_> = blind_by.into_iter().collect();
        blind.sort_by(|a, b| b.1.0.cmp(&a.1.0).then(a.0.cmp(b.0)));
        let blind = table(
            "without_cve_ids",
            vec![
                text_column("severity_level", true, blind.iter().map(|b| Some(b.0))),
                int_column("findings", blind.iter().map(|b| b.1.0)),
                int_column("instances", blind.iter().map(|b| b.1.1.len() as i64)),
                int_column("open", blind.iter().map(|b| b.1.2)),
            ],
        )?;
        let charts = super::charts::exposure(self.lang, &ranked)?;
        let mut tables = vec![exposure, ranked, blind];
        if waivers.source.is_some() {
            tables.push(self.waiver_table(instant, waivers, &all)?);
        }
        let mut notes = self.judgment_notes(instant, label, None, waivers, kev);
        notes.extend(
            only.iter()
                .filter(|c| !all.iter().any(|f| f.cves.contains(*c)))
                .map(|c| self.lang.cve_never_named(c, label)),
        );
        Ok(Report {
            title: self.lang.exposure_title(label, &only),
            subtitle: Self::describe(&self.require_as_of(instant, label)?),
            lang: self.lang,
            as_of: None,
            tables,
            charts,
            notes,
        })
    }
}
