//! Loads the committed history into a DataFusion session as the tables `patches`, `instances`
//! and `runs`.
//!
//! Only objects listed by a manifest are read, after a size check against it; anything else in
//! the store (interrupted runs, foreign files, unreadable manifests) becomes a warning naming it.
//! A store written by the seed workflow itself has no manifests: there each day partition is one
//! snapshot, dated by its partition.

use crate::QueryError;
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use datafusion::arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::datasource::file_format::json::JsonFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};
use patchtrail_model::{instances_schema, patches_schema, InstanceRecord, PatchRecord, RunCounts, StoreFormat};
use patchtrail_store::{parse_seed_page, rows_to_batch, Store, MANIFEST_PREFIXES};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use url::Url;

/// A snapshot in the history.
#[derive(Debug, Clone)]
pub struct RunInfo {
    pub run_id: String,
    pub snapshot_time: DateTime<Utc>,
    pub account_id: String,
    pub region: String,
    pub format: StoreFormat,
    pub counts: RunCounts,
    /// `None` for snapshots of a seed-written store, which has no manifests.
    pub manifest_key: Option<String>,
}

/// The history, ready to query.
pub struct LoadedHistory {
    pub ctx: SessionContext,
    /// Snapshots, oldest first.
    pub runs: Vec<RunInfo>,
    /// What was skipped, and why; each names the object.
    pub warnings: Vec<String>,
    pub store_url: String,
}

const STORE_URL: &str = "patchtrail://store/";

/// Files of one table in one on-disk format.
#[derive(Default)]
struct Files {
    parquet: Vec<String>,
    jsonl: Vec<String>,
}

fn df(e: impl std::fmt::Display) -> QueryError {
    QueryError::Engine(e.to_string())
}

async fn register_files(
    ctx: &SessionContext,
    store: &Store,
    name: &str,
    schema: SchemaRef,
    files: &Files,
) -> Result<Vec<String>, QueryError> {
    let mut parts = Vec::new();
    for (suffix, keys, parquet) in [("parquet", &files.parquet, true), ("jsonl", &files.jsonl, false)] {
        if keys.is_empty() {
            continue;
        }
        let urls = keys
            .iter()
            .map(|k| ListingTableUrl::parse(format!("{STORE_URL}{}", store.path(k))))
            .collect::<Result<Vec<_>, _>>()
            .map_err(df)?;
        let options = if parquet {
            ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet")
        } else {
            ListingOptions::new(Arc::new(JsonFormat::default())).with_file_extension(".jsonl")
        };
        let config = ListingTableConfig::new_with_multi_paths(urls).with_listing_options(options).with_schema(schema.clone());
        let table = ListingTable::try_new(config).map_err(df)?;
        let table_name = format!("_{name}_{suffix}");
        ctx.register_table(&table_name, Arc::new(table)).map_err(df)?;
        parts.push(table_name);
    }
    Ok(parts)
}

fn register_rows(ctx: &SessionContext, name: &str, batch: RecordBatch) -> Result<String, QueryError> {
    let table = MemTable::try_new(batch.schema(), vec![vec![batch]]).map_err(df)?;
    ctx.register_table(name, Arc::new(table)).map_err(df)?;
    Ok(name.to_string())
}

/// `CREATE VIEW name` over the parts, with the Hive partition columns Athena would show.
async fn create_view(ctx: &SessionContext, name: &str, parts: &[String], schema: &Schema) -> Result<(), QueryError> {
    let parts = if parts.is_empty() {
        vec![register_rows(ctx, &format!("_{name}_empty"), RecordBatch::new_empty(Arc::new(schema.clone())))?]
    } else {
        parts.to_vec()
    };
    let union = parts.iter().map(|p| format!("SELECT * FROM {p}")).collect::<Vec<_>>().join(" UNION ALL ");
    let sql = format!(
        "CREATE VIEW {name} AS SELECT *, CAST(date_part('year', snapshot_time) AS INT) AS year, \
         CAST(date_part('month', snapshot_time) AS INT) AS month, CAST(date_part('day', snapshot_time) AS INT) AS day \
         FROM ({union}) AS t"
    );
    ctx.sql(&sql).await.map_err(df)?;
    Ok(())
}

fn runs_batch(runs: &[RunInfo]) -> Result<RecordBatch, QueryError> {
    let utc = || DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    let schema = Arc::new(Schema::new(vec![
        Field::new("run_id", DataType::Utf8, false),
        Field::new("snapshot_time", utc(), false),
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
    ]));
    let s = |f: fn(&RunInfo) -> String| Arc::new(StringArray::from(runs.iter().map(f).collect::<Vec<_>>())) as ArrayRef;
    let n = |f: fn(&RunCounts) -> u64| Arc::new(Int64Array::from(runs.iter().map(|r| f(&r.counts) as i64).collect::<Vec<_>>())) as ArrayRef;
    let columns: Vec<ArrayRef> = vec![
        s(|r| r.run_id.clone()),
        Arc::new(
            TimestampMicrosecondArray::from(runs.iter().map(|r| r.snapshot_time.timestamp_micros()).collect::<Vec<_>>())
                .with_timezone("UTC"),
        ),
        s(|r| r.account_id.clone()),
        s(|r| r.region.clone()),
        s(|r| r.format.to_string()),
        n(|c| c.instances),
        n(|c| c.unmanaged),
        n(|c| c.errors),
        n(|c| c.patches),
        n(|c| c.missing),
        n(|c| c.failed),
        Arc::new(StringArray::from(runs.iter().map(|r| r.manifest_key.clone()).collect::<Vec<_>>())),
    ];
    RecordBatch::try_new(schema, columns).map_err(df)
}

/// `year=YYYY/month=MM/day=DD/instanceid=<id>/<name>` → (date, instance id).
fn seed_page_key(key: &str) -> Option<(NaiveDate, String)> {
    let parts: Vec<&str> = key.split('/').collect();
    let [y, m, d, i, _name] = parts.as_slice() else { return None };
    let num = |p: &str, k: &str| p.strip_prefix(k).and_then(|v| v.parse::<u32>().ok());
    let date = NaiveDate::from_ymd_opt(num(y, "year=")? as i32, num(m, "month=")?, num(d, "day=")?)?;
    Some((date, i.strip_prefix("instanceid=")?.to_string()))
}

/// Seed pages of one snapshot, parsed into rows; unreadable pages become warnings.
struct SeedRows {
    patches: Vec<PatchRecord>,
    instances: BTreeMap<String, (i64, i64)>,
}

async fn read_seed_pages(
    store: &Store,
    keys: &[String],
    run_id: &str,
    snapshot_time: DateTime<Utc>,
    account: &str,
    region: &str,
    warnings: &mut Vec<String>,
) -> Result<SeedRows, QueryError> {
    let mut out = SeedRows { patches: Vec::new(), instances: BTreeMap::new() };
    for key in keys {
        let Some((_, instance_id)) = seed_page_key(key) else { continue };
        let bytes = store.get(key).await?;
        let page = match parse_seed_page(&bytes) {
            Ok(p) => p,
            Err(e) => {
                warnings.push(format!("skipped {key}: {e}"));
                continue;
            }
        };
        let entry = out.instances.entry(instance_id.clone()).or_default();
        entry.0 += 1;
        entry.1 += page.len() as i64;
        for p in page {
            out.patches.push(PatchRecord {
                run_id: run_id.to_string(),
                snapshot_time,
                account_id: account.to_string(),
                region: region.to_string(),
                instance_id: instance_id.clone(),
                installed_time: p.installed_at(),
                kb_id: p.kb_id,
                title: p.title,
                classification: p.classification,
                severity: p.severity,
                state: patchtrail_model::normalise_patch_state(&p.state),
                cve_ids: p.cve_ids,
            });
        }
    }
    Ok(out)
}

impl LoadedHistory {
    /// Reads the manifests (and, for seed-written stores, the day partitions) of `store`.
    pub async fn load(store: &Store) -> Result<LoadedHistory, QueryError> {
        let config = SessionConfig::new().with_information_schema(true);
        let ctx = SessionContext::new_with_config(config);
        let (objects, _) = store.object_store();
        let url = Url::parse(STORE_URL).map_err(df)?;
        ctx.register_object_store(&url, objects);

        let history = store.history().await?;
        let mut warnings: Vec<String> =
            history.unreadable.iter().map(|(k, why)| format!("skipped {k}: {why}")).collect();
        let present: BTreeMap<String, u64> = store.list_keys("").await?.into_iter().collect();
        let mut listed: BTreeSet<String> = BTreeSet::new();
        let mut runs = Vec::new();
        let (mut patch_files, mut instance_files) = (Files::default(), Files::default());
        let mut seed_patches: Vec<PatchRecord> = Vec::new();
        let mut seed_instances: Vec<InstanceRecord> = Vec::new();

        for stored in &history.runs {
            let m = &stored.manifest;
            let mut seed_pages = Vec::new();
            for object in &m.objects {
                listed.insert(object.key.clone());
                match present.get(&object.key) {
                    None => {
                        warnings.push(format!("skipped {} (run {}): it is missing; run patchtrail verify", object.key, m.run_id));
                        continue;
                    }
                    Some(size) if *size != object.size => {
                        warnings.push(format!(
                            "skipped {} (run {}): {size} bytes where the manifest says {}; run patchtrail verify",
                            object.key, m.run_id, object.size
                        ));
                        continue;
                    }
                    Some(_) => {}
                }
                let k = object.key.clone();
                let is_instances = k.starts_with("instances/") || k.starts_with("_patchtrail/instances/");
                let files = if is_instances { &mut instance_files } else { &mut patch_files };
                if k.ends_with(".parquet") {
                    files.parquet.push(k);
                } else if k.ends_with(".jsonl") {
                    files.jsonl.push(k);
                } else if m.format == StoreFormat::Seed {
                    seed_pages.push(k);
                }
            }
            if !seed_pages.is_empty() {
                let rows = read_seed_pages(store, &seed_pages, &m.run_id, m.snapshot_time, &m.account_id, &m.region, &mut warnings).await?;
                seed_patches.extend(rows.patches);
            }
            runs.push(RunInfo {
                run_id: m.run_id.clone(),
                snapshot_time: m.snapshot_time,
                account_id: m.account_id.clone(),
                region: m.region.clone(),
                format: m.format,
                counts: m.counts.clone(),
                manifest_key: Some(stored.key.clone()),
            });
        }

        // The seed workflow's own objects: no manifest, one snapshot per day partition.
        let mut seed_days: BTreeMap<NaiveDate, Vec<String>> = BTreeMap::new();
        let mut foreign = Vec::new();
        for key in present.keys().filter(|k| !listed.contains(*k)) {
            if MANIFEST_PREFIXES.iter().any(|p| key.starts_with(p)) {
                continue;
            }
            if let Some((date, _)) = seed_page_key(key) {
                seed_days.entry(date).or_default().push(key.clone());
            } else if key.starts_with("patches/") || key.starts_with("instances/") || key.starts_with("_patchtrail/") {
                foreign.push(key.clone());
            }
        }
        if let Some(first) = foreign.first() {
            warnings.push(format!(
                "ignored {} object(s) that no committed run lists, e.g. {first} (an interrupted run's leftovers, or foreign files); run patchtrail verify",
                foreign.len()
            ));
        }
        for (date, keys) in seed_days {
            let run_id = format!("seed-{}", date.format("%Y%m%d"));
            let at = Utc.from_utc_datetime(&date.and_hms_opt(0, 0, 0).unwrap_or_default());
            let rows = read_seed_pages(store, &keys, &run_id, at, "", "", &mut warnings).await?;
            let mut counts = RunCounts { instances: rows.instances.len() as u64, managed: rows.instances.len() as u64, ..Default::default() };
            for p in &rows.patches {
                counts.patches += 1;
                counts.missing += u64::from(p.state == "Missing");
                counts.failed += u64::from(p.state == "Failed");
            }
            for (instance_id, (pages, patch_rows)) in rows.instances {
                seed_instances.push(InstanceRecord {
                    run_id: run_id.clone(),
                    snapshot_time: at,
                    instance_id,
                    tags: "{}".into(),
                    patch_pages: pages,
                    patch_rows,
                    ..InstanceRecord::default()
                });
            }
            seed_patches.extend(rows.patches);
            runs.push(RunInfo {
                run_id,
                snapshot_time: at,
                account_id: String::new(),
                region: String::new(),
                format: StoreFormat::Seed,
                counts,
                manifest_key: None,
            });
        }
        runs.sort_by(|a, b| (a.snapshot_time, &a.run_id).cmp(&(b.snapshot_time, &b.run_id)));

        let mut patch_parts = register_files(&ctx, store, "patches", patches_schema(), &patch_files).await?;
        if !seed_patches.is_empty() {
            patch_parts.push(register_rows(&ctx, "_patches_seed", rows_to_batch(patches_schema(), &seed_patches)?)?);
        }
        let mut instance_parts = register_files(&ctx, store, "instances", instances_schema(), &instance_files).await?;
        if !seed_instances.is_empty() {
            instance_parts.push(register_rows(&ctx, "_instances_seed", rows_to_batch(instances_schema(), &seed_instances)?)?);
        }
        create_view(&ctx, "patches", &patch_parts, &patches_schema()).await?;
        create_view(&ctx, "instances", &instance_parts, &instances_schema()).await?;
        let runs_batch = runs_batch(&runs)?;
        let runs_schema = runs_batch.schema();
        let runs_part = register_rows(&ctx, "_runs", runs_batch)?;
        create_view(&ctx, "runs", &[runs_part], &runs_schema).await?;
        Ok(LoadedHistory { ctx, runs, warnings, store_url: store.url().to_string() })
    }

    /// The latest snapshot at or before `instant`, per account and region.
    pub fn snapshots_as_of(&self, instant: DateTime<Utc>) -> Vec<&RunInfo> {
        let mut latest: BTreeMap<(&str, &str), &RunInfo> = BTreeMap::new();
        for run in self.runs.iter().filter(|r| r.snapshot_time <= instant) {
            latest.insert((run.account_id.as_str(), run.region.as_str()), run);
        }
        latest.into_values().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::seed_page_key;

    #[test]
    fn seed_keys_parse() {
        let (d, id) = seed_page_key("year=2026/month=03/day=01/instanceid=i-0123456789abcdef0/3f1c").expect("seed key");
        assert_eq!(d.to_string(), "2026-03-01");
        assert_eq!(id, "i-0123456789abcdef0");
        assert!(seed_page_key("patches/year=2026/month=03/day=01/x.parquet").is_none());
        assert!(seed_page_key("year=2026/month=13/day=01/instanceid=i-1/x").is_none());
    }
}
