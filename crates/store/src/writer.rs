//! Writing one run: data objects as they stream in, then the manifest, last.
//!
//! Both tables' rows go to bounded in-memory parts that are uploaded when full, so the memory
//! they take does not grow with the fleet. Until [`RunWriter::commit`] appends the manifest to the commit chain
//! the run is not part of history. Every run claims a fresh run id, so an interrupted run's
//! objects are never overwritten by another's: they stay, named after their claimed run, until
//! removed, and readers ignore them. A run may also stop half-way and be continued by another
//! process (`checkpoint`): it then commits once, when complete.

use crate::chain::ReadEntry;
use crate::encode::{
    INSTANCE_ROW_GROUP_ROWS, JsonlPart, PATCH_ROW_GROUP_ROWS, ParquetPart, seed_page,
};
use crate::history::sha256_hex;
use crate::ids::InstanceIds;
use crate::layout::{RunLayout, run_id, run_id_stem};
use crate::objects::Created;
use crate::{Store, StoreError};
use arrow_schema::SchemaRef;
use chrono::{DateTime, Utc};
use patchtrail_model::{
    InstanceRecord, InstanceSnapshot, MANIFEST_VERSION, ManifestObject, Outcome, PatchRecord,
    PreviousManifest, RunConfig, RunCounts, RunManifest, StoreFormat, instances_schema,
    patches_schema,
};
use serde::{Deserialize, Serialize};

/// Patch rows per Parquet part. A part is built in memory before it is uploaded (one PUT, so
/// that it is whole or absent), so this bounds the collector's memory: ~5 MB a part.
const PATCH_PART_ROWS: u64 = 250_000;
/// Instance rows per Parquet part (four row groups of the wide `instances` table): ~3 MB.
pub(crate) const INSTANCE_PART_ROWS: u64 = 32 * 1024;
/// Bytes per JSONL part (the same bound).
const JSONL_PART_BYTES: usize = 8 << 20;
/// Run ids tried after the last one claimed, when concurrent writers take them first.
const CLAIM_ATTEMPTS: u32 = 64;
/// The most runs of one scope a day: run ids number them `01` to `9999`, and a claim numbered
/// past it was planted (taking it would wrap the counter or block the day's collects).
const MAX_RUNS_A_DAY: u32 = 9_999;

/// What a run is, known before the first row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunStart {
    pub snapshot_time: DateTime<Utc>,
    pub started_at: DateTime<Utc>,
    pub account_id: String,
    pub region: String,
    pub format: StoreFormat,
    pub config: RunConfig,
}

/// One table of a run as bounded parts: rows fill a part in memory, and a full part is uploaded
/// whole (one PUT), so the memory a table holds does not grow with the fleet.
struct TableParts<T> {
    filling: Filling<T>,
    /// The number the next part taken gets (the parts this attempt has taken so far).
    next_part: u32,
}

/// The tables a run writes in parts.
#[derive(Clone, Copy)]
enum Table {
    Patches,
    Instances,
}

/// How the part being filled is encoded (two of these per run: their size does not matter).
#[allow(clippy::large_enum_variant)]
enum Filling<T> {
    Parquet {
        schema: SchemaRef,
        row_group_rows: usize,
        part_rows: u64,
        part: Option<ParquetPart<T>>,
    },
    Jsonl(JsonlPart),
}

impl<T: Serialize> TableParts<T> {
    fn new(format: StoreFormat, schema: SchemaRef, row_group_rows: usize, part_rows: u64) -> Self {
        let filling = match format {
            StoreFormat::Parquet => Filling::Parquet {
                schema,
                row_group_rows,
                part_rows,
                part: None,
            },
            StoreFormat::Jsonl | StoreFormat::Seed => Filling::Jsonl(JsonlPart::default()),
        };
        TableParts {
            filling,
            next_part: 0,
        }
    }

    fn push(&mut self, row: T) -> Result<(), StoreError> {
        match &mut self.filling {
            Filling::Parquet {
                schema,
                row_group_rows,
                part,
                ..
            } => {
                let part = match part {
                    Some(p) => p,
                    None => part.insert(ParquetPart::new(schema.clone(), *row_group_rows)?),
                };
                part.push(row)
            }
            Filling::Jsonl(part) => part.push(&row),
        }
    }

    fn is_full(&self) -> bool {
        match &self.filling {
            Filling::Parquet {
                part_rows, part, ..
            } => part.as_ref().is_some_and(|p| p.rows() >= *part_rows),
            Filling::Jsonl(part) => part.len() >= JSONL_PART_BYTES,
        }
    }

    /// The part being filled, finished (bytes and rows), and its number; `None` when it holds no
    /// rows.
    fn take(&mut self) -> Result<Option<(u32, Vec<u8>, u64)>, StoreError> {
        let finished = match &mut self.filling {
            Filling::Parquet { part, .. } => match part.take() {
                Some(p) if p.rows() > 0 => {
                    let rows = p.rows();
                    Some((p.finish()?, rows))
                }
                _ => None,
            },
            Filling::Jsonl(part) if !part.is_empty() => {
                let p = std::mem::take(part);
                let rows = p.rows();
                Some((p.finish(), rows))
            }
            Filling::Jsonl(_) => None,
        };
        Ok(finished.map(|(bytes, rows)| {
            self.next_part += 1;
            (self.next_part - 1, bytes, rows)
        }))
    }

    /// Like [`TableParts::take`], but an attempt that uploaded no part yet gets an empty one, so
    /// that every attempt lists its table (a run of no instances still has an instances table).
    fn take_last(&mut self) -> Result<Option<(u32, Vec<u8>, u64)>, StoreError> {
        if let Some(part) = self.take()? {
            return Ok(Some(part));
        }
        if self.next_part > 0 {
            return Ok(None);
        }
        self.next_part = 1;
        let bytes = match &self.filling {
            Filling::Parquet {
                schema,
                row_group_rows,
                ..
            } => ParquetPart::<T>::new(schema.clone(), *row_group_rows)?.finish()?,
            Filling::Jsonl(_) => Vec::new(),
        };
        Ok(Some((0, bytes, 0)))
    }
}

pub struct RunWriter {
    pub(crate) store: Store,
    pub(crate) layout: RunLayout,
    pub(crate) start: RunStart,
    pub(crate) objects: Vec<ManifestObject>,
    pub(crate) counts: RunCounts,
    /// Patch rows; `None` in the seed's format, whose pages are uploaded as they come.
    patches: Option<TableParts<PatchRecord>>,
    instances: TableParts<InstanceRecord>,
    /// The checkpoint this writer continues from (0: it began the run).
    pub(crate) continues: u32,
    /// Instances added so far, in every attempt: what a continuation skips.
    pub(crate) done: InstanceIds,
    /// Instances whose collection failed, in every attempt.
    pub(crate) errors: Vec<InstanceError>,
}

/// An instance whose collection failed after retries, as its record says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceError {
    pub instance_id: String,
    pub code: String,
    pub message: String,
}

/// A committed run.
#[derive(Debug, Clone)]
pub struct CommittedRun {
    pub manifest_key: String,
    pub manifest_sha256: String,
    pub manifest: RunManifest,
    /// The chain entry that commits it: its witness (`<sequence>:<sha256>`) is what a user keeps
    /// elsewhere to detect a truncated chain later (`verify --expect-head`).
    pub entry: ReadEntry,
}

impl Store {
    /// Starts a run: claims the next free run id for its day, account and region (a claim is
    /// created, never overwritten, so concurrent writers never share object names).
    pub async fn begin_run(&self, start: RunStart) -> Result<RunWriter, StoreError> {
        let date = start.snapshot_time.date_naive();
        let stem = run_id_stem(date, &start.account_id, &start.region);
        let mut last = 0;
        for id in self.claimed_runs_from(&stem).await? {
            let Some(seq) = id.strip_prefix(&stem).and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            if seq > MAX_RUNS_A_DAY {
                return Err(self.damaged(format!(
                    "the claim {} numbers a run {seq} of its day and scope, past the {MAX_RUNS_A_DAY} patchtrail ever numbers: it is not patchtrail's; move it out of the store and collect again",
                    crate::chain::claim_key(&id)
                )));
            }
            last = last.max(seq);
        }
        let candidates = (last + 1..=(last + CLAIM_ATTEMPTS).min(MAX_RUNS_A_DAY))
            .map(|seq| run_id(date, &start.account_id, &start.region, seq));
        let id = self.claim(candidates).await?;
        let layout = RunLayout::new(&id, start.snapshot_time, start.format);
        Ok(RunWriter::new(self.clone(), layout, start))
    }
}

impl RunWriter {
    /// A writer with nothing written yet.
    pub(crate) fn new(store: Store, layout: RunLayout, start: RunStart) -> RunWriter {
        let format = start.format;
        let patches = (format != StoreFormat::Seed).then(|| {
            TableParts::new(
                format,
                patches_schema(),
                PATCH_ROW_GROUP_ROWS,
                PATCH_PART_ROWS,
            )
        });
        let instances = TableParts::new(
            format,
            instances_schema(),
            INSTANCE_ROW_GROUP_ROWS,
            INSTANCE_PART_ROWS,
        );
        RunWriter {
            store,
            layout,
            start,
            objects: Vec::new(),
            counts: RunCounts::default(),
            patches,
            instances,
            continues: 0,
            done: InstanceIds::default(),
            errors: Vec::new(),
        }
    }

    pub fn run_id(&self) -> &str {
        &self.layout.run_id
    }

    pub fn start(&self) -> &RunStart {
        &self.start
    }

    pub fn counts(&self) -> &RunCounts {
        &self.counts
    }

    /// Instances already in the run (a continuation's earlier attempts' too).
    pub fn done(&self) -> &InstanceIds {
        &self.done
    }

    /// Instances of the run whose collection failed (earlier attempts' too).
    pub fn errors(&self) -> &[InstanceError] {
        &self.errors
    }

    async fn put_object(
        &mut self,
        key: String,
        bytes: Vec<u8>,
        rows: u64,
    ) -> Result<(), StoreError> {
        let object = ManifestObject {
            size: bytes.len() as u64,
            sha256: sha256_hex(&bytes),
            rows,
            key: key.clone(),
        };
        // Names derive from the claimed run and attempt, so the name is free unless another
        // process writes under them: never overwrite what it wrote.
        if let Created::Exists(_) = self.store.create(&key, bytes).await? {
            return Err(StoreError::Contended {
                url: self.store.url().to_string(),
                what: format!(
                    "the object {key}, which another process wrote first under this run's names"
                ),
            });
        }
        self.objects.push(object);
        Ok(())
    }

    fn count(&mut self, snapshot: &InstanceSnapshot) {
        let c = &mut self.counts;
        c.instances += 1;
        match snapshot.instance.outcome {
            Outcome::Ok => c.managed += 1,
            Outcome::Unmanaged => c.unmanaged += 1,
            Outcome::Error => c.errors += 1,
        }
        c.pages += snapshot.pages.len() as u64;
        for p in snapshot.patches() {
            c.patches += 1;
            match p.state.as_str() {
                "Missing" => {
                    c.missing += 1;
                    c.missing_critical += u64::from(p.is_critical());
                    c.missing_security += u64::from(p.is_security());
                }
                "Failed" => c.failed += 1,
                _ => {}
            }
        }
    }

    /// Adds one instance's rows; uploads a table's part when it is full.
    pub async fn add(&mut self, snapshot: InstanceSnapshot) -> Result<(), StoreError> {
        self.count(&snapshot);
        let InstanceSnapshot { instance, pages } = snapshot;
        self.done.push(&instance.instance_id);
        if let Some(code) = &instance.error_code {
            self.errors.push(InstanceError {
                instance_id: instance.instance_id.clone(),
                code: code.clone(),
                message: instance.error_message.clone().unwrap_or_default(),
            });
        }
        match &mut self.patches {
            None => {
                for (i, page) in pages.iter().enumerate() {
                    let key = self.layout.seed_page(&instance.instance_id, i);
                    self.put_object(key, seed_page(page), page.len() as u64)
                        .await?;
                }
            }
            Some(table) => {
                for row in pages.into_iter().flatten() {
                    table.push(row)?;
                }
                if table.is_full() {
                    self.upload(Table::Patches, false).await?;
                }
            }
        }
        self.instances.push(instance)?;
        if self.instances.is_full() {
            self.upload(Table::Instances, false).await?;
        }
        Ok(())
    }

    /// Uploads the part of `table` being filled, if it holds rows; the `last` instances part of
    /// an attempt is uploaded even when empty if it is the attempt's only one.
    async fn upload(&mut self, table: Table, last: bool) -> Result<(), StoreError> {
        let part = match (table, &mut self.patches) {
            (Table::Patches, Some(patches)) => patches.take()?,
            (Table::Patches, None) => None,
            (Table::Instances, _) if last => self.instances.take_last()?,
            (Table::Instances, _) => self.instances.take()?,
        };
        let Some((number, bytes, rows)) = part else {
            return Ok(());
        };
        let key = match table {
            Table::Patches => self.layout.patches_part(number),
            Table::Instances => self.layout.instances_part(number),
        };
        self.put_object(key, bytes, rows).await
    }

    /// Uploads everything this attempt still holds: the parts being filled (an empty instances
    /// part if the attempt uploaded none, so that every attempt lists its table).
    pub(crate) async fn write_held(&mut self) -> Result<(), StoreError> {
        self.upload(Table::Patches, true).await?;
        self.upload(Table::Instances, true).await
    }

    /// Writes the remaining data, then commits the run: from here on it is history. A continued
    /// run first records that it is complete (see `checkpoint`), so that it commits once even when
    /// another process finishes the commit.
    pub async fn commit(mut self, finished_at: DateTime<Utc>) -> Result<CommittedRun, StoreError> {
        self.write_held().await?;
        // No entry up to the present head can name this run: it has never been committed, and
        // only this process (or, once a complete checkpoint exists, one continuing from it) can.
        let floor = self.store.chain_head().await?;
        if self.continues > 0 {
            self.checkpoint(Some((
                finished_at,
                floor.as_ref().map_or(0, |f| f.entry.sequence),
            )))
            .await?;
        }
        commit_manifest(
            &self.store,
            &self.layout,
            &self.start,
            self.counts,
            self.objects,
            finished_at,
            floor,
        )
        .await
    }
}

/// Commits a run's manifest to the chain, walking from `floor` (see `chain`).
pub(crate) async fn commit_manifest(
    store: &Store,
    layout: &RunLayout,
    start: &RunStart,
    counts: RunCounts,
    objects: Vec<ManifestObject>,
    finished_at: DateTime<Utc>,
    floor: Option<ReadEntry>,
) -> Result<CommittedRun, StoreError> {
    let manifest = RunManifest {
        manifest_version: MANIFEST_VERSION,
        run_id: layout.run_id.clone(),
        sequence: 0,
        snapshot_time: start.snapshot_time,
        started_at: start.started_at,
        finished_at,
        tool: format!("patchtrail {}", env!("CARGO_PKG_VERSION")),
        account_id: start.account_id.clone(),
        region: start.region.clone(),
        format: start.format,
        config: start.config.clone(),
        counts,
        objects,
        previous: None,
    };
    let manifest_key = layout.manifest();
    let (entry, bytes) = store
        .commit_to_chain(&manifest.run_id, &manifest_key, floor, |sequence, head| {
            let mut m = manifest.clone();
            m.sequence = sequence;
            m.previous = head.map(|h| PreviousManifest {
                key: h.manifest_key.clone(),
                sha256: h.manifest_sha256.clone(),
            });
            // One line, so that Athena's JSON SerDe (one object per line) can read the runs table.
            let mut bytes = serde_json::to_vec(&m).map_err(|e| StoreError::Encode {
                what: "manifest".into(),
                reason: e.to_string(),
            })?;
            bytes.push(b'\n');
            Ok(bytes)
        })
        .await?;
    let manifest: RunManifest = serde_json::from_slice(&bytes).map_err(|e| StoreError::Encode {
        what: "manifest".into(),
        reason: e.to_string(),
    })?;
    Ok(CommittedRun {
        manifest_key,
        manifest_sha256: sha256_hex(&bytes),
        manifest,
        entry,
    })
}
