//! The state of each instance in a snapshot (docs/semantics.md §4), computed on Arrow arrays:
//! the patch counts per class of every instance (§2.1, §6.1), its compliance (§4.1, §4.7), scan
//! age (§4.2), AWS's own verdict (§4.3) and whether it is reporting (§6.2). Every question that
//! reads instances starts here; the rules come from `patchtrail_model`.

use super::FastMap;
use crate::QueryError;
use crate::columns::{RunParts, Stored, count, micros, opt_i64, opt_text, runs_by, text};
use crate::history::{LoadedHistory, RunInfo};
use arrow_array::RecordBatch;
use patchtrail_model::{StateClass, change_name, is_critical, is_security};
use std::hash::Hash;

/// The patch columns questions read, in an order where each reads a prefix: the summary and the
/// timelines the first 6, the diff 8, the findings all 9.
pub(crate) const PATCH_COLUMNS: [&str; 10] = [
    "instance_id",
    "kb_id",
    "title",
    "classification",
    "severity",
    "state",
    "account_id",
    "region",
    "cve_ids",
    "release_date",
];

/// The patch columns an instance's [`Counts`] come from.
pub(crate) const COUNT_COLUMNS: [&str; 4] = ["instance_id", "classification", "severity", "state"];

/// The instance text columns an [`InstanceState`] holds, and their places in its `text`.
pub(crate) const TEXT_COLUMNS: [&str; 17] = [
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
    "tags",
];
pub(crate) const ACCOUNT: usize = 0;
pub(crate) const REGION: usize = 1;
pub(crate) const INSTANCE: usize = 2;
pub(crate) const NAME: usize = 3;
pub(crate) const EC2_STATE: usize = 4;
pub(crate) const PLATFORM: usize = 5;
pub(crate) const PLATFORM_NAME: usize = 6;
pub(crate) const PLATFORM_VERSION: usize = 7;
pub(crate) const PING_STATUS: usize = 8;
pub(crate) const AGENT_VERSION: usize = 9;
pub(crate) const OUTCOME: usize = 10;
pub(crate) const ERROR_CODE: usize = 11;
pub(crate) const UNMANAGED_REASON: usize = 12;
pub(crate) const RUN_ID: usize = 13;
pub(crate) const PLATFORM_TYPE: usize = 14;
pub(crate) const RESOURCE_TYPE: usize = 15;
pub(crate) const TAGS: usize = 16;

/// The instance columns read besides [`TEXT_COLUMNS`].
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

pub(crate) const MICROS_PER_DAY: i64 = 86_400_000_000;

/// One snapshot: its run and the columns its questions read.
pub(crate) struct Snapshot<'h> {
    pub run: &'h RunInfo,
    pub patches: Vec<RecordBatch>,
    pub instances: Vec<RecordBatch>,
}

impl LoadedHistory {
    /// `runs` with their instances (every column an [`InstanceState`] needs) and the patch
    /// columns `patch_columns` decoded.
    pub(crate) fn snapshots<'h>(
        &self,
        runs: &[&'h RunInfo],
        patch_columns: &[&str],
    ) -> Result<Vec<Snapshot<'h>>, QueryError> {
        runs.iter()
            .map(|run| self.snapshot_of(run, patch_columns, None))
            .collect()
    }

    /// One run decoded, as [`LoadedHistory::snapshots`] decodes each, holding only the rows of
    /// `instance` when given (an instance's state depends on its own rows alone).
    pub(crate) fn snapshot_of<'h>(
        &self,
        run: &'h RunInfo,
        patch_columns: &[&str],
        instance: Option<&str>,
    ) -> Result<Snapshot<'h>, QueryError> {
        let instance_columns: Vec<&str> =
            TEXT_COLUMNS.iter().chain(&VALUE_COLUMNS).copied().collect();
        let only = instance.map(|i| ("instance_id", i));
        let none = RunParts::default();
        let parts = self.parts.get(&run.run_id).unwrap_or(&none);
        Ok(Snapshot {
            run,
            patches: parts.read_where(Stored::Patches, patch_columns, only)?,
            instances: parts.read_where(Stored::Instances, &instance_columns, only)?,
        })
    }
}

/// Patches per class (§2.1) of one instance in one snapshot, missing critical and security
/// (§6.1), and patches that make it non-compliant.
#[derive(Default, Clone, Copy)]
pub(crate) struct Counts {
    pub classes: [i64; StateClass::ALL.len()],
    pub missing_critical: i64,
    pub missing_security: i64,
    pub noncompliant: i64,
}

impl Counts {
    pub fn of(&self, class: StateClass) -> i64 {
        self.classes[class as usize]
    }
}

/// An instance's identity across snapshots: account, region, instance id.
pub(crate) type Scoped<'a> = (&'a str, &'a str, &'a str);

/// An instance in one snapshot: the snapshot's place in the list, and the instance id.
pub(crate) type InstanceKey<'a> = (usize, &'a str);

/// One instance in one snapshot: its compliance (§4.1, §4.7 where the run collected no patch
/// states), scan age (§4.2, at the run's `finished_at`), AWS's own verdict (§4.3), and whether it
/// is reporting (§6.2).
pub(crate) struct InstanceState<'a> {
    /// Where its row is in its snapshot's instances: the batch and the row.
    pub row: (usize, usize),
    pub text: [Option<&'a str>; TEXT_COLUMNS.len()],
    pub last_ping_time: Option<i64>,
    pub last_scan_time: Option<i64>,
    pub snapshot_time: Option<i64>,
    pub scan_age_days: Option<f64>,
    pub hybrid: bool,
    pub counts: Counts,
    pub compliance: &'static str,
    pub aws_compliance: Option<&'static str>,
    /// A listed patch list where no states were collected (§4.7).
    pub listed: bool,
}

impl<'a> InstanceState<'a> {
    pub fn text(&self, column: usize) -> &'a str {
        self.text[column].unwrap_or_default()
    }

    /// A fresh patch state, or a listed patch list where no states were collected (§6.2, §4.7).
    pub fn reporting(&self) -> bool {
        matches!(self.compliance, "compliant" | "non_compliant") || self.listed
    }
}

/// Per (snapshot, instance): its [`Counts`].
fn patch_counts<'a>(
    snapshots: &'a [Snapshot<'_>],
) -> Result<FastMap<InstanceKey<'a>, Counts>, QueryError> {
    let mut counts: FastMap<InstanceKey, Counts> = FastMap::default();
    for (snapshot, s) in snapshots.iter().enumerate() {
        for batch in &s.patches {
            let (ids, states) = (text(batch, "instance_id")?, text(batch, "state")?);
            let (severities, classifications) =
                (text(batch, "severity")?, text(batch, "classification")?);
            for (id, rows) in runs_by(batch.num_rows(), |i| ids.value(i)) {
                let c = counts.entry((snapshot, id)).or_default();
                for i in rows {
                    let class = StateClass::of(states.value(i));
                    c.classes[class as usize] += 1;
                    c.noncompliant += i64::from(class.makes_noncompliant());
                    if class == StateClass::Missing {
                        let (severity, classification) =
                            (severities.value(i), classifications.value(i));
                        c.missing_critical += i64::from(is_critical(severity, classification));
                        c.missing_security += i64::from(is_security(classification));
                    }
                }
            }
        }
    }
    Ok(counts)
}

/// The state of every instance of `snapshots` (their patches decoded with at least
/// [`COUNT_COLUMNS`]; with `platform`, only the instances whose platform, type or name contains
/// it, lower case), most missing critical first (then missing, failed, and by scope and instance
/// id).
pub(crate) fn instance_states<'a>(
    snapshots: &'a [Snapshot<'_>],
    stale: i64,
    platform: Option<&str>,
) -> Result<Vec<InstanceState<'a>>, QueryError> {
    let counts = patch_counts(snapshots)?;
    let mut rows = Vec::new();
    for (snapshot, s) in snapshots.iter().enumerate() {
        let finished_at = s.run.finished_at.timestamp_micros();
        for (b, batch) in s.instances.iter().enumerate() {
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
                rows.push(InstanceState {
                    row: (b, i),
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
                    listed,
                });
            }
        }
    }
    let key = |r: &InstanceState<'a>| {
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

/// The change of one patch between two rows, each given as its state and version (§6.5) or
/// absent ("not reported"), if any (§6.2: a change of class, else of version).
pub(crate) fn patch_change(
    from: Option<(&str, Option<&str>)>,
    to: Option<(&str, Option<&str>)>,
) -> Option<&'static str> {
    let class = |row: Option<(&str, Option<&str>)>| row.map(|(state, _)| StateClass::of(state));
    change_name(class(from), class(to)).or_else(|| {
        let (a, b) = (from.and_then(|r| r.1), to.and_then(|r| r.1));
        (a.is_some() && b.is_some() && a != b).then_some("version_changed")
    })
}

/// Rows by key, the rows of one key chained in the order they came (a key rarely holds more
/// than one): one hash entry per key and no allocation per key.
pub(crate) struct Keyed<K, T> {
    /// Per key, its first and last row.
    ends: FastMap<K, (usize, usize)>,
    rows: Vec<(T, Option<usize>)>,
}

impl<K: Eq + Hash + Copy, T: Copy> Keyed<K, T> {
    pub fn new() -> Self {
        Keyed {
            ends: FastMap::default(),
            rows: Vec::new(),
        }
    }

    pub fn push(&mut self, key: K, row: T) {
        let new = self.rows.len();
        self.rows.push((row, None));
        match self.ends.get_mut(&key) {
            Some((_, last)) => {
                self.rows[*last].1 = Some(new);
                *last = new;
            }
            None => {
                self.ends.insert(key, (new, new));
            }
        }
    }

    /// The rows of one key, from its first.
    fn chain(&self, first: usize) -> impl Iterator<Item = T> + '_ {
        std::iter::successors(Some(first), |&i| self.rows[i].1).map(|i| self.rows[i].0)
    }
}

/// Calls `visit` with every pair of rows with the same key on the two sides, and with each row
/// whose key the other side lacks paired with none: what a full outer join on the key makes.
pub(crate) fn full_outer_pairs<K: Eq + Hash + Copy, T: Copy>(
    a: &Keyed<K, T>,
    b: &Keyed<K, T>,
    mut visit: impl FnMut(K, Option<T>, Option<T>),
) {
    for (key, &(first, _)) in &a.ends {
        let other = b.ends.get(key).map(|e| e.0);
        for x in a.chain(first) {
            match other {
                Some(first) => b.chain(first).for_each(|y| visit(*key, Some(x), Some(y))),
                None => visit(*key, Some(x), None),
            }
        }
    }
    for (key, &(first, _)) in &b.ends {
        if !a.ends.contains_key(key) {
            b.chain(first).for_each(|y| visit(*key, None, Some(y)));
        }
    }
}

impl LoadedHistory {
    /// Calls `visit` with each of `runs` decoded (as [`LoadedHistory::snapshots`] does), in
    /// order, while the next ones decode on the other cores ([`super::in_order`]): a question that
    /// reads many snapshots holds a few at a time, and its own work overlaps the decoding.
    pub(crate) fn each_snapshot<'h>(
        &'h self,
        runs: &[&'h RunInfo],
        patch_columns: &[&str],
        visit: impl FnMut(Snapshot<'h>) -> Result<(), QueryError>,
    ) -> Result<(), QueryError> {
        self.each_snapshot_of(runs, patch_columns, None, visit)
    }

    /// [`LoadedHistory::each_snapshot`] over the rows of `instance` only, when given.
    pub(crate) fn each_snapshot_of<'h>(
        &'h self,
        runs: &[&'h RunInfo],
        patch_columns: &[&str],
        instance: Option<&str>,
        visit: impl FnMut(Snapshot<'h>) -> Result<(), QueryError>,
    ) -> Result<(), QueryError> {
        super::in_order(
            runs,
            |run| self.snapshot_of(run, patch_columns, instance),
            visit,
        )
    }
}
