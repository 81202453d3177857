//! `report diff` (docs/semantics.md §6.2) on Arrow arrays: the instances of the snapshots in force
//! at each date, matched by scope and instance id; instances that appeared, disappeared, stopped
//! or resumed reporting; and for those reporting on both dates, every patch whose class or
//! version changed (a patch matched by its KB id; one on a single side is compared with "not
//! reported").

use super::states::*;
use super::{FastMap, FastSet};
use crate::QueryError;
use crate::columns::{runs_by, text};
use crate::history::LoadedHistory;
use crate::report::{Report, Table, int_column, table, text_column, time_column};
use chrono::{DateTime, Utc};
use patchtrail_model::patch_version;
use std::collections::BTreeMap;

/// An instance reporting on both dates: its later name and both scan times.
#[derive(Clone, Copy)]
struct BothReporting<'a> {
    name: Option<&'a str>,
    from_last_scan: Option<i64>,
    to_last_scan: Option<i64>,
}

/// A patch row of one side.
#[derive(Clone, Copy)]
struct PatchRow<'a> {
    kb_id: &'a str,
    title: &'a str,
    severity: &'a str,
    classification: &'a str,
    state: &'a str,
}

impl<'a> PatchRow<'a> {
    fn version(self) -> Option<&'a str> {
        patch_version(self.kb_id, self.title)
    }

    /// Its side of a [`patch_change`].
    fn side(self) -> (&'a str, Option<&'a str>) {
        (self.state, self.version())
    }
}

/// One row of the changes table.
struct Change<'a> {
    instance: Scoped<'a>,
    name: Option<&'a str>,
    /// The patch on the later side if it is there, else on the earlier one.
    patch: Option<PatchRow<'a>>,
    change: &'static str,
    from: Option<PatchRow<'a>>,
    to: Option<PatchRow<'a>>,
    from_last_scan: Option<i64>,
    to_last_scan: Option<i64>,
}

fn scoped<'a>(s: &InstanceState<'a>) -> Scoped<'a> {
    (s.text(ACCOUNT), s.text(REGION), s.text(INSTANCE))
}

/// A change of a whole instance (`appeared`, `disappeared`, `stopped_reporting`,
/// `resumed_reporting`): its later name and both scan times, no patch.
fn whole<'a>(
    change: &'static str,
    from: Option<&InstanceState<'a>>,
    to: Option<&InstanceState<'a>>,
) -> Option<Change<'a>> {
    Some(Change {
        instance: scoped(to.or(from)?),
        name: to.or(from).and_then(|s| s.text[NAME]),
        patch: None,
        change,
        from: None,
        to: None,
        from_last_scan: from.and_then(|s| s.last_scan_time),
        to_last_scan: to.and_then(|s| s.last_scan_time),
    })
}

impl<'a> Change<'a> {
    /// By scope and instance (`rank`, its place in that order), change, then KB id (a change of
    /// the whole instance, with none, last).
    fn order(&self, rank: usize) -> (usize, &'static str, bool, Option<&'a str>) {
        let kb = self.patch.map(|p| p.kb_id);
        (rank, self.change, kb.is_none(), kb)
    }
}

/// The patches of one side's snapshots by instance (its place in `wanted`) and KB id, for the
/// instances in `wanted` only.
fn patches_by_kb<'a>(
    snapshots: &'a [Snapshot<'_>],
    wanted: &FastMap<Scoped<'a>, usize>,
) -> Result<Keyed<(usize, &'a str), PatchRow<'a>>, QueryError> {
    let mut out = Keyed::new();
    for s in snapshots {
        for batch in &s.patches {
            let column = |name: &str| text(batch, name);
            let (accounts, regions, ids) = (
                column("account_id")?,
                column("region")?,
                column("instance_id")?,
            );
            let (kbs, titles, severities, classifications, states) = (
                column("kb_id")?,
                column("title")?,
                column("severity")?,
                column("classification")?,
                column("state")?,
            );
            let instance = |i: usize| (accounts.value(i), regions.value(i), ids.value(i));
            for (instance, rows) in runs_by(batch.num_rows(), instance) {
                let Some(&place) = wanted.get(&instance) else {
                    continue;
                };
                for i in rows {
                    out.push(
                        (place, kbs.value(i)),
                        PatchRow {
                            kb_id: kbs.value(i),
                            title: titles.value(i),
                            severity: severities.value(i),
                            classification: classifications.value(i),
                            state: states.value(i),
                        },
                    );
                }
            }
        }
    }
    Ok(out)
}

/// Runs `a` and `b` at once, on two threads.
fn both_at_once<A: Send, B: Send>(
    a: impl FnOnce() -> Result<A, QueryError> + Send,
    b: impl FnOnce() -> Result<B, QueryError> + Send,
) -> Result<(A, B), QueryError> {
    std::thread::scope(|scope| {
        let first = scope.spawn(a);
        let second = b()?;
        let first = first
            .join()
            .map_err(|_| QueryError::Engine("a diff side stopped".into()))??;
        Ok((first, second))
    })
}

impl LoadedHistory {
    /// §6.2: what changed between the snapshots in force at `from` and at `to`.
    pub async fn diff(
        &self,
        from: DateTime<Utc>,
        from_label: &str,
        to: DateTime<Utc>,
        to_label: &str,
        stale_days: u32,
    ) -> Result<Report, QueryError> {
        if from > to {
            return Err(QueryError::BadInput {
                input: format!("--from {from_label} --to {to_label}"),
                fix: "--from must not be after --to".into(),
            });
        }
        let a = self.require_as_of(from, from_label)?;
        let b = self.require_as_of(to, to_label)?;
        let stale = i64::from(stale_days) * MICROS_PER_DAY;
        let (side_a, side_b) = both_at_once(
            || self.snapshots(&a, &PATCH_COLUMNS[..8]),
            || self.snapshots(&b, &PATCH_COLUMNS[..8]),
        )?;
        let (states_a, states_b) = both_at_once(
            || instance_states(&side_a, stale, None),
            || instance_states(&side_b, stale, None),
        )?;
        let before: FastMap<Scoped, &InstanceState> =
            states_a.iter().map(|s| (scoped(s), s)).collect();
        let after: FastMap<Scoped, &InstanceState> =
            states_b.iter().map(|s| (scoped(s), s)).collect();

        let mut changes = Vec::new();
        // Reporting on both dates: name (the later one) and both scan times.
        let mut both = Vec::new();
        for s in &states_b {
            let instance = scoped(s);
            match before.get(&instance) {
                None => changes.extend(whole("appeared", None, Some(s))),
                Some(was) if was.reporting() != s.reporting() => {
                    let change = if was.reporting() {
                        "stopped_reporting"
                    } else {
                        "resumed_reporting"
                    };
                    changes.extend(whole(change, Some(was), Some(s)));
                }
                Some(was) if s.reporting() => both.push((
                    instance,
                    BothReporting {
                        name: s.text[NAME],
                        from_last_scan: was.last_scan_time,
                        to_last_scan: s.last_scan_time,
                    },
                )),
                Some(_) => {}
            }
        }
        for s in &states_a {
            if !after.contains_key(&scoped(s)) {
                changes.extend(whole("disappeared", Some(s), None));
            }
        }

        // Every pair of a patch's rows on the two dates (a row alone is paired with none).
        let places: FastMap<Scoped, usize> = both
            .iter()
            .enumerate()
            .map(|(place, (instance, _))| (*instance, place))
            .collect();
        let (pa, pb) = both_at_once(
            || patches_by_kb(&side_a, &places),
            || patches_by_kb(&side_b, &places),
        )?;
        full_outer_pairs(&pa, &pb, |(place, _), from, to| {
            let Some(change) = patch_change(from.map(PatchRow::side), to.map(PatchRow::side))
            else {
                return;
            };
            let (instance, reporting) = both[place];
            changes.push(Change {
                instance,
                name: reporting.name,
                patch: to.or(from),
                change,
                from,
                to,
                from_last_scan: reporting.from_last_scan,
                to_last_scan: reporting.to_last_scan,
            });
        });
        // The instances ranked once, so that the sort compares integers before KB ids.
        let distinct: FastSet<Scoped> = changes.iter().map(|c| c.instance).collect();
        let mut instances: Vec<Scoped> = distinct.into_iter().collect();
        instances.sort_unstable();
        let rank: FastMap<Scoped, usize> = instances.into_iter().zip(0..).collect();
        changes.sort_by_cached_key(|c| c.order(rank[&c.instance]));

        let mut per_change: BTreeMap<&str, i64> = BTreeMap::new();
        for c in &changes {
            *per_change.entry(c.change).or_default() += 1;
        }
        let counts = table(
            "counts",
            vec![
                text_column("change", false, per_change.keys().map(|c| Some(*c))),
                int_column("count", per_change.values().copied()),
            ],
        )?;
        let changes = changes_table(&changes)?;
        let charts = super::charts::diff(self.lang, &counts)?;
        // Runs collected under other settings (tags, classifications) differ by more than the
        // fleet: say so for each scope where they do (§6.2).
        let mut notes = self.notes();
        for before in &a {
            if let Some(after) = b.iter().find(|r| {
                (&r.account_id, &r.region) == (&before.account_id, &before.region)
                    && r.config_line() != before.config_line()
            }) {
                notes.push(self.lang.configuration_differs(before, after));
            }
        }
        Ok(Report {
            title: self.lang.diff_title(from_label, to_label),
            subtitle: self
                .lang
                .diff_subtitle(&Self::describe(&a), &Self::describe(&b)),
            lang: self.lang,
            as_of: None,
            tables: vec![changes, counts],
            charts,
            notes,
        })
    }
}

fn changes_table<'a>(changes: &[Change<'a>]) -> Result<Table, QueryError> {
    let patch = |f: fn(PatchRow<'a>) -> &'a str| changes.iter().map(move |c| c.patch.map(f));
    let from =
        |f: fn(PatchRow<'a>) -> Option<&'a str>| changes.iter().map(move |c| c.from.and_then(f));
    let to = |f: fn(PatchRow<'a>) -> Option<&'a str>| changes.iter().map(move |c| c.to.and_then(f));
    table(
        "changes",
        vec![
            text_column(
                "account_id",
                false,
                changes.iter().map(|c| Some(c.instance.0)),
            ),
            text_column("region", false, changes.iter().map(|c| Some(c.instance.1))),
            text_column(
                "instance_id",
                false,
                changes.iter().map(|c| Some(c.instance.2)),
            ),
            text_column("name", true, changes.iter().map(|c| c.name)),
            text_column("kb_id", true, patch(|p| p.kb_id)),
            text_column("title", true, patch(|p| p.title)),
            text_column("severity", true, patch(|p| p.severity)),
            text_column("classification", true, patch(|p| p.classification)),
            text_column("change", false, changes.iter().map(|c| Some(c.change))),
            text_column("from_state", true, from(|p| Some(p.state))),
            text_column("to_state", true, to(|p| Some(p.state))),
            text_column("from_version", true, from(PatchRow::version)),
            text_column("to_version", true, to(PatchRow::version)),
            time_column(
                "from_last_scan",
                true,
                changes.iter().map(|c| c.from_last_scan),
            ),
            time_column("to_last_scan", true, changes.iter().map(|c| c.to_last_scan)),
        ],
    )
}
