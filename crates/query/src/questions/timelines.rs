//! `report history` (docs/semantics.md §6.3, §6.4) on Arrow arrays: the timeline of one instance
//! with every change of its patches, and one patch across the fleet. Every snapshot is read, one
//! at a time, keeping only the rows of that instance or patch.

use super::states::*;
use crate::QueryError;
use crate::columns::{RunParts, Stored, micros, opt_i64, text};
use crate::history::{LoadedHistory, RunInfo};
use crate::report::{Report, int_column, table, text_column, time_column};
use patchtrail_model::{StateClass, patch_version};
use std::collections::BTreeMap;

/// A patch row of one snapshot.
#[derive(Debug, Clone, PartialEq)]
struct PatchRow {
    kb_id: String,
    title: String,
    severity: String,
    classification: String,
    state: String,
}

impl PatchRow {
    fn version(&self) -> Option<&str> {
        patch_version(&self.kb_id, &self.title)
    }

    /// Its side of a [`patch_change`].
    fn side(&self) -> (&str, Option<&str>) {
        (&self.state, self.version())
    }
}

/// One snapshot of the instance: its state there, and (when reporting) its patches.
struct Seen<'h> {
    run: &'h RunInfo,
    ec2_state: Option<String>,
    last_scan_time: Option<i64>,
    outcome: Option<String>,
    counts: Counts,
    compliance: &'static str,
    reporting: bool,
    patches: Vec<PatchRow>,
}

/// A row of the patch changes table.
struct PatchChange {
    snapshot_time: i64,
    change: &'static str,
    from: Option<PatchRow>,
    to: Option<PatchRow>,
}

impl PatchChange {
    /// The patch as the later row describes it, else the earlier.
    fn patch(&self) -> Option<&PatchRow> {
        self.to.as_ref().or(self.from.as_ref())
    }
}

/// A snapshot's patches by KB id.
fn by_kb(patches: &[PatchRow]) -> Keyed<&str, &PatchRow> {
    let mut out = Keyed::new();
    for p in patches {
        out.push(p.kb_id.as_str(), p);
    }
    out
}

/// The changes from `before` to `after` at `at`, each pair of a patch's rows compared.
fn changes_between(before: &[PatchRow], after: &[PatchRow], at: i64) -> Vec<PatchChange> {
    let mut changes = Vec::new();
    full_outer_pairs(&by_kb(before), &by_kb(after), |_, from, to| {
        if let Some(change) = patch_change(from.map(PatchRow::side), to.map(PatchRow::side)) {
            changes.push(PatchChange {
                snapshot_time: at,
                change,
                from: from.cloned(),
                to: to.cloned(),
            });
        }
    });
    changes
}

impl LoadedHistory {
    /// §6.3: the timeline of one instance, and every change of its patches.
    pub async fn instance_history(
        &self,
        instance_id: &str,
        stale_days: u32,
    ) -> Result<Report, QueryError> {
        self.require_runs()?;
        let stale = i64::from(stale_days) * MICROS_PER_DAY;
        let mut seen: Vec<Seen> = Vec::new();
        let runs: Vec<&RunInfo> = self.runs.iter().collect();
        // Only this instance's rows are decoded (a row filter on instance_id in Parquet).
        self.each_snapshot_of(&runs, &PATCH_COLUMNS[..6], Some(instance_id), |one| {
            let run = one.run;
            let snapshot = [one];
            for state in instance_states(&snapshot, stale, None)?
                .iter()
                .filter(|s| s.text(INSTANCE) == instance_id)
            {
                let mut patches = Vec::new();
                if state.reporting() {
                    for batch in &snapshot[0].patches {
                        let ids = text(batch, "instance_id")?;
                        let column = |name: &str| text(batch, name);
                        let (kbs, titles, severities, classifications, states) = (
                            column("kb_id")?,
                            column("title")?,
                            column("severity")?,
                            column("classification")?,
                            column("state")?,
                        );
                        for i in (0..batch.num_rows()).filter(|&i| ids.value(i) == instance_id) {
                            patches.push(PatchRow {
                                kb_id: kbs.value(i).into(),
                                title: titles.value(i).into(),
                                severity: severities.value(i).into(),
                                classification: classifications.value(i).into(),
                                state: states.value(i).into(),
                            });
                        }
                    }
                }
                seen.push(Seen {
                    run,
                    ec2_state: state.text[EC2_STATE].map(str::to_string),
                    last_scan_time: state.last_scan_time,
                    outcome: state.text[OUTCOME].map(str::to_string),
                    counts: state.counts,
                    compliance: state.compliance,
                    reporting: state.reporting(),
                    patches,
                });
            }
            Ok(())
        })?;
        if seen.is_empty() {
            return Err(QueryError::BadInput {
                input: format!("--instance {instance_id}"),
                fix: "no snapshot holds this instance; list instances with `patchtrail report summary`".into(),
            });
        }
        seen.sort_by(|a, b| {
            (a.run.snapshot_time, &a.run.run_id).cmp(&(b.run.snapshot_time, &b.run.run_id))
        });
        let class =
            |c: StateClass| int_column(c.as_str(), seen.iter().map(move |s| s.counts.of(c)));
        let timeline = table(
            "snapshots",
            vec![
                time_column(
                    "snapshot_time",
                    false,
                    seen.iter()
                        .map(|s| Some(s.run.snapshot_time.timestamp_micros())),
                ),
                text_column(
                    "run_id",
                    false,
                    seen.iter().map(|s| Some(s.run.run_id.as_str())),
                ),
                text_column(
                    "ec2_state",
                    true,
                    seen.iter().map(|s| s.ec2_state.as_deref()),
                ),
                time_column(
                    "last_scan_time",
                    true,
                    seen.iter().map(|s| s.last_scan_time),
                ),
                text_column("outcome", false, seen.iter().map(|s| s.outcome.as_deref())),
                class(StateClass::Installed),
                class(StateClass::PendingReboot),
                class(StateClass::Missing),
                class(StateClass::Failed),
                int_column(
                    "missing_critical",
                    seen.iter().map(|s| s.counts.missing_critical),
                ),
                int_column(
                    "missing_security",
                    seen.iter().map(|s| s.counts.missing_security),
                ),
                text_column("compliance", false, seen.iter().map(|s| Some(s.compliance))),
            ],
        )?;

        // The reporting snapshots in order: the first one's patches are first seen; after it,
        // each patch against its row in the reporting snapshot before (§6.3).
        let reporting: Vec<&Seen> = seen.iter().filter(|s| s.reporting).collect();
        let mut changes = Vec::new();
        if let Some(first) = reporting.first() {
            changes.extend(first.patches.iter().map(|p| PatchChange {
                snapshot_time: first.run.snapshot_time.timestamp_micros(),
                change: "first_seen",
                from: None,
                to: Some(p.clone()),
            }));
        }
        for pair in reporting.windows(2) {
            let at = pair[1].run.snapshot_time.timestamp_micros();
            changes.extend(changes_between(&pair[0].patches, &pair[1].patches, at));
        }
        changes.sort_by(|x, y| {
            (x.snapshot_time, x.patch().map(|p| &p.kb_id))
                .cmp(&(y.snapshot_time, y.patch().map(|p| &p.kb_id)))
        });
        let patch = |f: fn(&PatchRow) -> &str| changes.iter().map(move |c| c.patch().map(f));
        let from = |f: fn(&PatchRow) -> Option<&str>| {
            changes.iter().map(move |c| c.from.as_ref().and_then(f))
        };
        let to = |f: fn(&PatchRow) -> Option<&str>| {
            changes.iter().map(move |c| c.to.as_ref().and_then(f))
        };
        let changes_table = table(
            "patch_changes",
            vec![
                time_column(
                    "snapshot_time",
                    false,
                    changes.iter().map(|c| Some(c.snapshot_time)),
                ),
                text_column("kb_id", true, patch(|p| &p.kb_id)),
                text_column("title", true, patch(|p| &p.title)),
                text_column("severity", true, patch(|p| &p.severity)),
                text_column("classification", true, patch(|p| &p.classification)),
                text_column("change", false, changes.iter().map(|c| Some(c.change))),
                text_column("from_state", true, from(|p| Some(&p.state))),
                text_column("to_state", true, to(|p| Some(&p.state))),
                text_column("from_version", true, from(PatchRow::version)),
                text_column("to_version", true, to(PatchRow::version)),
            ],
        )?;
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
            as_of: None,
            tables: vec![timeline, changes_table],
            charts,
            notes: self.notes(),
        })
    }

    /// §6.4: one patch across the fleet: where and when it was installed, where it is still missing.
    pub async fn kb_history(&self, kb_id: &str) -> Result<Report, QueryError> {
        self.require_runs()?;
        /// One instance's rows of the patch.
        #[derive(Default)]
        struct OnInstance {
            /// (snapshot time, run id, state) of its newest row.
            latest: Option<(i64, String, String)>,
            first_seen: Option<i64>,
            first_seen_missing: Option<i64>,
            first_seen_installed: Option<i64>,
        }
        let earliest = |at: &mut Option<i64>, t: i64| *at = Some(at.map_or(t, |a| a.min(t)));
        let mut instances: BTreeMap<(String, String, String), OnInstance> = BTreeMap::new();
        // Per (snapshot time, run id): rows, then per class.
        let mut per_snapshot: BTreeMap<(i64, String), [i64; 5]> = BTreeMap::new();
        let columns = [
            "run_id",
            "snapshot_time",
            "account_id",
            "region",
            "instance_id",
            "kb_id",
            "state",
        ];
        let runs: Vec<&RunInfo> = self.runs.iter().collect();
        let none = RunParts::default();
        // Only this KB's rows are decoded (a row filter on kb_id in Parquet), on every core.
        let decode = |run: &RunInfo| {
            let parts = self.parts.get(&run.run_id).unwrap_or(&none);
            parts.read_where(Stored::Patches, &columns, Some(("kb_id", kb_id)))
        };
        super::in_order(&runs, decode, |batches| {
            for batch in batches {
                let kbs = text(&batch, "kb_id")?;
                let (runs, times) = (text(&batch, "run_id")?, micros(&batch, "snapshot_time")?);
                let (accounts, regions, ids) = (
                    text(&batch, "account_id")?,
                    text(&batch, "region")?,
                    text(&batch, "instance_id")?,
                );
                let states = text(&batch, "state")?;
                for i in (0..batch.num_rows()).filter(|&i| kbs.value(i) == kb_id) {
                    let Some(at) = opt_i64(times, i) else {
                        continue;
                    };
                    let (state, run_id) = (states.value(i), runs.value(i));
                    let class = StateClass::of(state);
                    let on = instances
                        .entry((
                            accounts.value(i).into(),
                            regions.value(i).into(),
                            ids.value(i).into(),
                        ))
                        .or_default();
                    if on
                        .latest
                        .as_ref()
                        .is_none_or(|(t, r, _)| (at, run_id) > (*t, r.as_str()))
                    {
                        on.latest = Some((at, run_id.into(), state.into()));
                    }
                    earliest(&mut on.first_seen, at);
                    if class == StateClass::Missing {
                        earliest(&mut on.first_seen_missing, at);
                    }
                    if class == StateClass::Installed {
                        earliest(&mut on.first_seen_installed, at);
                    }
                    let row = per_snapshot.entry((at, run_id.into())).or_default();
                    row[0] += 1;
                    let counted = [
                        StateClass::Installed,
                        StateClass::PendingReboot,
                        StateClass::Missing,
                        StateClass::Failed,
                    ];
                    if let Some(k) = counted.iter().position(|c| *c == class) {
                        row[k + 1] += 1;
                    }
                }
            }
            Ok(())
        })?;
        if instances.is_empty() {
            return Err(QueryError::BadInput {
                input: format!("--kb {kb_id}"),
                fix: "no snapshot holds this patch id (ids are case-sensitive, e.g. KB5034441 or kernel.x86_64)".into(),
            });
        }
        let mut rows: Vec<_> = instances.into_iter().collect();
        // By latest state, then scope and instance (the map's order).
        rows.sort_by(|a, b| {
            let state = |r: &((String, String, String), OnInstance)| {
                r.1.latest.as_ref().map(|l| l.2.clone())
            };
            state(a).cmp(&state(b))
        });
        let key = |f: fn(&(String, String, String)) -> &String| {
            rows.iter().map(move |(k, _)| Some(f(k).as_str()))
        };
        let instances = table(
            "instances",
            vec![
                text_column("account_id", false, key(|k| &k.0)),
                text_column("region", false, key(|k| &k.1)),
                text_column("instance_id", false, key(|k| &k.2)),
                text_column(
                    "latest_state",
                    true,
                    rows.iter()
                        .map(|(_, o)| o.latest.as_ref().map(|l| l.2.as_str())),
                ),
                time_column(
                    "latest_snapshot",
                    true,
                    rows.iter().map(|(_, o)| o.latest.as_ref().map(|l| l.0)),
                ),
                time_column("first_seen", true, rows.iter().map(|(_, o)| o.first_seen)),
                time_column(
                    "first_seen_missing",
                    true,
                    rows.iter().map(|(_, o)| o.first_seen_missing),
                ),
                time_column(
                    "first_seen_installed",
                    true,
                    rows.iter().map(|(_, o)| o.first_seen_installed),
                ),
            ],
        )?;
        let mut columns = vec![
            time_column(
                "snapshot_time",
                true,
                per_snapshot.keys().map(|(t, _)| Some(*t)),
            ),
            text_column(
                "run_id",
                false,
                per_snapshot.keys().map(|(_, r)| Some(r.as_str())),
            ),
        ];
        for (k, name) in [
            "instances",
            "installed",
            "pending_reboot",
            "missing",
            "failed",
        ]
        .iter()
        .enumerate()
        {
            columns.push(int_column(name, per_snapshot.values().map(|row| row[k])));
        }
        let timeline = table("snapshots", columns)?;
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
            as_of: None,
            tables: vec![instances, timeline],
            charts,
            notes: self.notes(),
        })
    }
}
