//! Loads the committed runs a report needs (docs/semantics.md §1, §5), and only the objects their
//! manifests list. Each object is read once and checked against its manifest (size and SHA-256);
//! the reports decode those very bytes (`columns`), so an object changed after it committed makes
//! its run damaged (§1.5), and nothing changed between the check and the report is read.
//! Interrupted runs are invisible. A store written by the seed workflow itself has no manifests:
//! there each day partition is one snapshot, dated by its first write.

use crate::QueryError;
use crate::columns::{Part, RunParts};
use arrow_array::{
    ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use chrono::{DateTime, NaiveDate, Utc};
use futures::{StreamExt, TryStreamExt};
use patchtrail_model::{
    ManifestObject, PatchRecord, RunConfig, RunCounts, StoreFormat, instances_schema,
    patches_schema,
};
use patchtrail_store::{
    Damaged, RowContext, ScopeFilter, SeedDay, Selection, Store, StoredManifest, parse_seed_page,
    rows_to_batch, seed_page_key, sha256_hex,
};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

/// A snapshot in the history.
#[derive(Debug, Clone)]
pub struct RunInfo {
    pub run_id: String,
    pub snapshot_time: DateTime<Utc>,
    /// When its collection was complete (§1.4): it is in force from then (§5.2).
    pub finished_at: DateTime<Utc>,
    /// Whether it collected patch states (false for the seed workflow's snapshots, §4.7).
    pub patch_states: bool,
    pub account_id: String,
    pub region: String,
    pub format: StoreFormat,
    pub counts: RunCounts,
    /// `None` for snapshots of a seed-written store, which has no manifests.
    pub manifest_key: Option<String>,
    /// The manifest's SHA-256, as its chain entry commits it.
    pub manifest_sha256: Option<String>,
    /// What it collected (tag filter, classifications); `None` for the seed workflow's snapshots.
    pub config: Option<RunConfig>,
    /// The tool that wrote it (`patchtrail 0.1.0`); `None` for the seed workflow's snapshots.
    pub tool: Option<String>,
}

impl RunInfo {
    /// Where the run came from: `collected`, `imported`, `imported_seed`, `seed_workflow` (read
    /// in place from a store the seed's workflow wrote), or `unrecorded` (runs written before
    /// patchtrail recorded it).
    pub fn source(&self) -> &'static str {
        match (
            &self.manifest_key,
            self.config.as_ref().and_then(|c| c.origin.as_deref()),
        ) {
            (None, _) => "seed_workflow",
            (Some(_), Some("collect")) => "collected",
            (Some(_), Some("import")) => "imported",
            (Some(_), Some("import-seed")) => "imported_seed",
            _ => "unrecorded",
        }
    }

    /// The configuration in one line: `tag CheckPatch=*; classifications Security,...`.
    pub fn config_line(&self) -> String {
        match &self.config {
            None => {
                "the seed workflow's (tag CheckPatch; Security, CriticalUpdates, SecurityUpdates)"
                    .into()
            }
            Some(c) => format!(
                "tag {}={}; classifications {}; hybrid {}",
                if c.tag_key.is_empty() {
                    "(any)"
                } else {
                    &c.tag_key
                },
                if c.tag_values.is_empty() {
                    "*".into()
                } else {
                    c.tag_values.join("|")
                },
                if c.classifications.is_empty() {
                    "all".into()
                } else {
                    c.classifications.join(",")
                },
                c.hybrid
            ),
        }
    }
}

/// The history, ready to query.
pub struct LoadedHistory {
    /// Snapshots, oldest first.
    pub runs: Vec<RunInfo>,
    /// What was skipped, and why; each names the object.
    pub warnings: Vec<String>,
    /// The day of the first committed run in the store, loaded or not.
    pub first_day: Option<NaiveDate>,
    pub store_url: String,
    /// The language reports built from this history speak (English unless set).
    pub lang: crate::Lang,
    /// The scopes it was restricted to (§5.5).
    pub scopes: ScopeFilter,
    /// Damaged runs left out with `--skip-damaged` (§1.5), one line each: every report says so.
    pub skipped_damaged: Vec<String>,
    /// Each run's checked objects (and the seed workflow's rows), by run id: what the reports
    /// that compute on Arrow arrays decode, column by column.
    pub(crate) parts: HashMap<String, RunParts>,
}

/// What a reader does with a damaged run (docs/semantics.md §1.5).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Damage {
    /// Refuse to answer (the default).
    #[default]
    Refuse,
    /// Answer as if the damaged runs had never committed, and say so.
    Skip,
}

fn engine(e: impl std::fmt::Display) -> QueryError {
    QueryError::Engine(e.to_string())
}

pub(crate) fn runs_batch(runs: &[RunInfo]) -> Result<RecordBatch, QueryError> {
    let utc = || DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    let schema = Arc::new(Schema::new(vec![
        Field::new("run_id", DataType::Utf8, false),
        Field::new("snapshot_time", utc(), false),
        Field::new("finished_at", utc(), false),
        Field::new("account_id", DataType::Utf8, false),
        Field::new("region", DataType::Utf8, false),
        Field::new("format", DataType::Utf8, false),
        Field::new("instances", DataType::Int64, false),
        Field::new("unmanaged", DataType::Int64, false),
        Field::new("errors", DataType::Int64, false),
        Field::new("patches", DataType::Int64, false),
        Field::new("missing", DataType::Int64, false),
        Field::new("failed", DataType::Int64, false),
        Field::new("manifest_key", DataType::Utf8, true),
        Field::new("patch_states", DataType::Boolean, false),
        Field::new("source", DataType::Utf8, false),
        Field::new("manifest_sha256", DataType::Utf8, true),
        Field::new("configuration", DataType::Utf8, false),
        Field::new("tool", DataType::Utf8, true),
    ]));
    let s = |f: fn(&RunInfo) -> String| {
        Arc::new(StringArray::from(runs.iter().map(f).collect::<Vec<_>>())) as ArrayRef
    };
    let n = |f: fn(&RunCounts) -> u64| {
        Arc::new(Int64Array::from(
            runs.iter().map(|r| f(&r.counts) as i64).collect::<Vec<_>>(),
        )) as ArrayRef
    };
    let time = |f: fn(&RunInfo) -> DateTime<Utc>| {
        Arc::new(
            TimestampMicrosecondArray::from(
                runs.iter()
                    .map(|r| f(r).timestamp_micros())
                    .collect::<Vec<_>>(),
            )
            .with_timezone("UTC"),
        ) as ArrayRef
    };
    let columns: Vec<ArrayRef> = vec![
        s(|r| r.run_id.clone()),
        time(|r| r.snapshot_time),
        time(|r| r.finished_at),
        s(|r| r.account_id.clone()),
        s(|r| r.region.clone()),
        s(|r| r.format.to_string()),
        n(|c| c.instances),
        n(|c| c.unmanaged),
        n(|c| c.errors),
        n(|c| c.patches),
        n(|c| c.missing),
        n(|c| c.failed),
        Arc::new(StringArray::from(
            runs.iter()
                .map(|r| r.manifest_key.clone())
                .collect::<Vec<_>>(),
        )),
        Arc::new(BooleanArray::from(
            runs.iter().map(|r| r.patch_states).collect::<Vec<_>>(),
        )),
        s(|r| r.source().to_string()),
        Arc::new(StringArray::from(
            runs.iter()
                .map(|r| r.manifest_sha256.clone())
                .collect::<Vec<_>>(),
        )),
        s(RunInfo::config_line),
        Arc::new(StringArray::from(
            runs.iter().map(|r| r.tool.clone()).collect::<Vec<_>>(),
        )),
    ];
    RecordBatch::try_new(schema, columns).map_err(engine)
}

/// The rows of the seed pages a committed run lists (read and checked already); unreadable
/// pages become warnings.
fn seed_page_rows(
    pages: &[(String, impl AsRef<[u8]>)],
    context: &RowContext<'_>,
    warnings: &mut Vec<String>,
) -> Vec<PatchRecord> {
    let mut rows = Vec::new();
    for (key, bytes) in pages {
        let Some((_, instance_id)) = seed_page_key(key) else {
            continue;
        };
        match parse_seed_page(bytes.as_ref()) {
            Ok(page) => rows.extend(context.patch_rows(&instance_id, page)),
            Err(e) => warnings.push(format!("skipped {key}: {e}")),
        }
    }
    rows
}

/// Why an object read for a run is not what its manifest committed, if it is not.
fn object_damage(object: &ManifestObject, held: Option<&[u8]>) -> Option<String> {
    let Some(bytes) = held else {
        return Some(format!("{} is missing", object.key));
    };
    if bytes.len() as u64 != object.size {
        return Some(format!(
            "{} has {} bytes where its manifest says {}",
            object.key,
            bytes.len(),
            object.size
        ));
    }
    (sha256_hex(bytes) != object.sha256).then(|| {
        format!(
            "{}'s SHA-256 differs from its manifest (it was changed after it committed)",
            object.key
        )
    })
}

/// What the committed runs of a selection hold, ready to register: their tables' files (checked,
/// in `verified`), and the rows of their seed pages.
struct Gathered {
    runs: Vec<RunInfo>,
    /// Each run's checked objects and seed-page rows.
    parts: HashMap<String, RunParts>,
    warnings: Vec<String>,
}

impl Gathered {
    /// Reads and checks the objects of `runs`; an object that is gone, or whose size or SHA-256
    /// differs from its manifest, makes its run damaged (pushed onto `damaged`).
    async fn read(
        store: &Store,
        runs: &[StoredManifest],
        damaged: &mut Vec<Damaged>,
    ) -> Result<Gathered, QueryError> {
        let mut out = Gathered {
            runs: Vec::new(),
            parts: HashMap::new(),
            warnings: Vec::new(),
        };
        // Every run's objects in one stream, so that the reads overlap across runs (a trend
        // reads a few objects from each of many runs).
        let mut fetched = futures::stream::iter(runs.iter().flat_map(|r| &r.manifest.objects))
            .map(|o| store.get_opt(&o.key))
            .buffered(16)
            .try_collect::<Vec<_>>()
            .await?
            .into_iter();
        for stored in runs {
            let m = &stored.manifest;
            let held: Vec<_> = fetched.by_ref().take(m.objects.len()).collect();
            let mut seed_pages = Vec::new();
            let mut parts = RunParts::default();
            for (object, held) in m.objects.iter().zip(held) {
                if let Some(why) = object_damage(object, held.as_deref()) {
                    damaged.push(Damaged {
                        run_id: Some(m.run_id.clone()),
                        why,
                    });
                    continue;
                }
                let Some(bytes) = held else { continue };
                let k = object.key.clone();
                if seed_page_key(&k).is_some() {
                    seed_pages.push((k, bytes));
                    continue;
                }
                let is_instances =
                    k.starts_with("instances/") || k.starts_with("_patchtrail/instances/");
                let run_parts = if is_instances {
                    &mut parts.instances
                } else {
                    &mut parts.patches
                };
                if k.ends_with(".parquet") {
                    run_parts.push(Part::Parquet { key: k, bytes });
                } else if k.ends_with(".jsonl") {
                    run_parts.push(Part::Jsonl { key: k, bytes });
                }
            }
            if !seed_pages.is_empty() {
                let context = RowContext {
                    run_id: &m.run_id,
                    snapshot_time: m.snapshot_time,
                    account_id: &m.account_id,
                    region: &m.region,
                };
                let rows = seed_page_rows(&seed_pages, &context, &mut out.warnings);
                parts
                    .patches
                    .push(Part::Rows(rows_to_batch(patches_schema(), &rows)?));
            }
            out.parts.insert(m.run_id.clone(), parts);
            out.runs.push(RunInfo {
                run_id: m.run_id.clone(),
                snapshot_time: m.snapshot_time,
                finished_at: m.finished_at,
                patch_states: m.config.patch_states,
                account_id: m.account_id.clone(),
                region: m.region.clone(),
                format: m.format,
                counts: m.counts.clone(),
                manifest_key: Some(stored.key.clone()),
                manifest_sha256: Some(stored.sha256.clone()),
                config: Some(m.config.clone()),
                tool: Some(m.tool.clone()),
            });
        }
        Ok(out)
    }
}

/// The first damage found, and how many more: one line.
fn describe_damage(damaged: &[Damaged]) -> String {
    let first = match &damaged[0].run_id {
        Some(run) => format!("run {run}: {}", damaged[0].why),
        None => damaged[0].why.clone(),
    };
    match damaged.len() {
        1 => first,
        n => format!("{first} (and {} more)", n - 1),
    }
}

impl LoadedHistory {
    /// Reads the committed runs `selection` asks for (and, for seed-written stores, the day
    /// partitions no patchtrail run wrote): only their manifests and objects are fetched.
    pub async fn load(store: &Store, selection: &Selection) -> Result<LoadedHistory, QueryError> {
        Self::load_scopes(store, selection, &ScopeFilter::default()).await
    }

    /// [`LoadedHistory::load`], keeping only the scopes (accounts, regions) `scopes` admits.
    /// Pages the seed workflow wrote name no account or region: a filter leaves them out.
    pub async fn load_scopes(
        store: &Store,
        selection: &Selection,
        scopes: &ScopeFilter,
    ) -> Result<LoadedHistory, QueryError> {
        Self::load_with(store, selection, scopes, Damage::Refuse).await
    }

    /// [`LoadedHistory::load_scopes`], doing with damaged runs what `damage` says (§1.5): by
    /// default a run that would be read but is damaged fails the load.
    pub async fn load_with(
        store: &Store,
        selection: &Selection,
        scopes: &ScopeFilter,
        damage: Damage,
    ) -> Result<LoadedHistory, QueryError> {
        // Skipping damaged runs changes which runs are in force: select again without them.
        let mut exclude = BTreeSet::new();
        let mut skipped_damaged = Vec::new();
        let (history, gathered) = loop {
            let history = store.select_history(selection, scopes, &exclude).await?;
            let mut damaged = history.damaged.clone();
            let gathered = Gathered::read(store, &history.runs, &mut damaged).await?;
            if damaged.is_empty() {
                break (history, gathered);
            }
            damaged.sort();
            damaged.dedup();
            if damage == Damage::Refuse {
                return Err(QueryError::Damaged {
                    store: store.url().to_string(),
                    what: describe_damage(&damaged),
                });
            }
            let before = exclude.len();
            for d in damaged {
                skipped_damaged.push(match &d.run_id {
                    Some(run) => format!("run {run}: {}", d.why),
                    None => d.why.clone(),
                });
                exclude.extend(d.run_id);
            }
            if exclude.len() == before {
                break (history, gathered);
            }
        };
        skipped_damaged.sort();
        skipped_damaged.dedup();
        let Gathered {
            mut runs,
            mut parts,
            mut warnings,
        } = gathered;
        warnings.extend(
            history
                .unreadable
                .iter()
                .map(|(k, why)| format!("skipped {k}: {why}")),
        );
        warnings.extend(
            store
                .skipped_names()
                .into_iter()
                .map(|name| format!("skipped an object whose name cannot be read: {name}")),
        );

        // The seed workflow's own pages: no manifest, one snapshot per day partition, dated by
        // the first write (docs/semantics.md §1.2). Pages of patchtrail's own runs carry their
        // run's tag and are never taken for these.
        let days = if scopes.is_empty() {
            store.seed_workflow_days().await?
        } else {
            Vec::new()
        };
        let days_seen: Vec<NaiveDate> = days.iter().map(|d| d.date).collect();
        for day in select_seed_days(days, selection) {
            let run_id = day.run_id();
            let context = RowContext {
                run_id: &run_id,
                snapshot_time: day.started,
                account_id: "",
                region: "",
            };
            let snapshots = store.read_seed_day(&day, &context, &mut warnings).await?;
            let mut counts = RunCounts {
                instances: snapshots.len() as u64,
                managed: snapshots.len() as u64,
                ..Default::default()
            };
            let (mut day_patches, mut day_instances) = (Vec::new(), Vec::new());
            for snapshot in snapshots {
                for p in snapshot.pages.into_iter().flatten() {
                    counts.patches += 1;
                    counts.missing += u64::from(p.state == "Missing");
                    counts.failed += u64::from(p.state == "Failed");
                    day_patches.push(p);
                }
                day_instances.push(snapshot.instance);
            }
            let (day_patches, day_instances) = (
                rows_to_batch(patches_schema(), &day_patches)?,
                rows_to_batch(instances_schema(), &day_instances)?,
            );
            parts.insert(
                run_id.clone(),
                RunParts {
                    patches: vec![Part::Rows(day_patches)],
                    instances: vec![Part::Rows(day_instances)],
                },
            );
            runs.push(RunInfo {
                run_id,
                snapshot_time: day.started,
                finished_at: day.finished,
                patch_states: false,
                account_id: String::new(),
                region: String::new(),
                format: StoreFormat::Seed,
                counts,
                manifest_key: None,
                manifest_sha256: None,
                config: None,
                tool: None,
            });
        }
        runs.sort_by(|a, b| (a.snapshot_time, &a.run_id).cmp(&(b.snapshot_time, &b.run_id)));

        let first_day = history.refs.iter().map(|r| r.date).chain(days_seen).min();
        Ok(LoadedHistory {
            runs,
            warnings,
            first_day,
            store_url: store.url().to_string(),
            lang: crate::Lang::En,
            scopes: scopes.clone(),
            skipped_damaged,
            parts,
        })
    }

    /// What every report of this history must say (§1.5): the damaged runs it left out.
    pub fn notes(&self) -> Vec<String> {
        self.skipped_damaged
            .iter()
            .map(|d| self.lang.skipped_damaged(d))
            .collect()
    }

    /// The snapshots in force at `instant`, per account and region (§5.2): collected by then,
    /// the latest by snapshot time.
    pub fn snapshots_as_of(&self, instant: DateTime<Utc>) -> Vec<&RunInfo> {
        let mut latest: BTreeMap<(&str, &str), &RunInfo> = BTreeMap::new();
        for run in self.runs.iter().filter(|r| r.finished_at <= instant) {
            latest.insert((run.account_id.as_str(), run.region.as_str()), run);
        }
        latest.into_values().collect()
    }
}

/// The seed-workflow days a selection needs: those in force at its instants (§5.2), or in its
/// range.
fn select_seed_days(days: Vec<SeedDay>, selection: &Selection) -> Vec<SeedDay> {
    match selection {
        Selection::All => days,
        Selection::Range(from, to) => days
            .into_iter()
            .filter(|d| from.is_none_or(|f| d.started >= f) && to.is_none_or(|t| d.started <= t))
            .collect(),
        Selection::AsOf(instants) => {
            let wanted: BTreeSet<NaiveDate> = instants
                .iter()
                .filter_map(|t| {
                    days.iter()
                        .filter(|d| d.finished <= *t)
                        .max_by_key(|d| d.started)
                        .map(|d| d.date)
                })
                .collect();
            days.into_iter()
                .filter(|d| wanted.contains(&d.date))
                .collect()
        }
    }
}
