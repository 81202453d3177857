//! Suspended runs: a run that must stop before it is complete (a Lambda invocation's deadline)
//! uploads what it holds and records a checkpoint; another process continues it from there, and
//! the run commits once, when complete, as if one process had written it.
//!
//! Checkpoints `_patchtrail/checkpoints/<run_id>/<sequence>.json` are created, never overwritten,
//! numbered 1, 2, …. Each lists the objects written so far (as the manifest will), the counts and
//! the instances done. A process that continues a run claims an attempt number first
//! (`…/attempt-<n>.json`, create-only) and names its objects after it (`<run_id>-r<n>…`), so two
//! continuations of one checkpoint never write the same object: the first to create the next
//! checkpoint wins, the other stops with [`StoreError::Superseded`] and its objects stay unlisted,
//! like an interrupted run's. A continued run commits by creating a last checkpoint marked
//! complete (with the chain's head read before it: the floor its commit walks from), then commits;
//! continuing a complete run commits it if that was not done yet (the process died in between) or
//! answers the committed run. Every number read back is checked (a hostile or damaged checkpoint
//! is refused, never wrapped around), and a run is continued only within [`RESUME_WINDOW`] of its
//! snapshot time (docs/semantics.md §1.4).

use crate::chain::{ReadEntry, encode};
use crate::history::{Checked, sha256_hex};
use crate::ids::InstanceIds;
use crate::layout::RunLayout;
use crate::objects::Created;
use crate::writer::{InstanceError, RunStart, RunWriter, commit_manifest};
use crate::{CommittedRun, Store, StoreError};
use chrono::{DateTime, TimeDelta, Utc};
use patchtrail_model::{ManifestObject, RunCounts};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

pub const CHECKPOINTS_PREFIX: &str = "_patchtrail/checkpoints/";
/// 2: a complete run's last checkpoint records the chain's head before it (`chain_floor`).
const CHECKPOINT_VERSION: u32 = 2;
/// Attempt numbers tried after the last one claimed.
const ATTEMPT_CLAIMS: u32 = 64;
/// The most checkpoints and attempts a run may have: far beyond any real run (a Lambda
/// invocation per checkpoint), and small enough that no count can wrap.
pub const MAX_CHECKPOINTS: u32 = 9_999;
/// How long after its snapshot time a suspended run may still be continued (docs/semantics.md
/// §1.4): a snapshot's values must have been observed close together.
pub const RESUME_WINDOW: TimeDelta = TimeDelta::hours(24);

/// Where a run stood when one of its processes stopped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub checkpoint_version: u32,
    pub run_id: String,
    /// 1 for the first checkpoint of the run, then 2, 3, …
    pub sequence: u32,
    /// The attempt that wrote it (0: the process that began the run).
    pub attempt: u32,
    pub written_at: DateTime<Utc>,
    pub start: RunStart,
    /// Set on the last checkpoint of a complete run: the time its manifest gives.
    pub finished_at: Option<DateTime<Utc>>,
    /// Set with `finished_at`: the chain's head sequence read before this checkpoint was
    /// created. No entry up to it can name the run, so committing it walks the chain from there
    /// (docs/commit-protocol.md). Absent in version 1: from the chain's start.
    #[serde(default)]
    pub chain_floor: Option<u64>,
    pub counts: RunCounts,
    pub objects: Vec<ManifestObject>,
    /// Instances in the run so far.
    pub done: InstanceIds,
    pub errors: Vec<InstanceError>,
}

/// What continuing a suspended run finds (one per continued run: its size does not matter).
#[allow(clippy::large_enum_variant)]
pub enum Continued {
    /// A writer holding everything written so far; add the instances not in [`RunWriter::done`].
    Writer(RunWriter),
    /// The run was complete: it is committed (now, or by an earlier process); `errors` are its
    /// instances that failed.
    Committed {
        run: CommittedRun,
        errors: Vec<InstanceError>,
    },
}

/// A suspended run's latest checkpoint, read and checked, before anything is written: what a
/// caller checks (its scope) before it takes the run over with [`Store::take_over`].
#[derive(Debug, Clone)]
pub struct Suspended {
    pub checkpoint: Checkpoint,
    /// The highest attempt number claimed so far (0: none).
    last_attempt: u32,
}

pub fn checkpoint_key(run_id: &str, sequence: u32) -> String {
    format!("{CHECKPOINTS_PREFIX}{run_id}/{sequence:04}.json")
}

fn attempt_key(run_id: &str, attempt: u32) -> String {
    format!("{CHECKPOINTS_PREFIX}{run_id}/attempt-{attempt:03}.json")
}

/// What a name under one run's checkpoint folder is.
#[derive(Debug, PartialEq, Eq)]
enum Name {
    Checkpoint(u32),
    Attempt(u32),
    /// Not a name patchtrail writes, or a number out of range.
    Other,
}

/// A number of at most 4 digits (at most [`MAX_CHECKPOINTS`]), or nothing.
fn small_number(digits: &str) -> Option<u32> {
    (!digits.is_empty() && digits.len() <= 4 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

fn parse_name(name: &str) -> Name {
    let Some(stem) = name.strip_suffix(".json") else {
        return Name::Other;
    };
    match stem.strip_prefix("attempt-") {
        Some(n) => small_number(n).map_or(Name::Other, Name::Attempt),
        None => small_number(stem)
            .filter(|&n| n > 0)
            .map_or(Name::Other, Name::Checkpoint),
    }
}

/// The latest checkpoint of `run_id` among a store's keys, if it has one.
pub fn suspended_at(keys: &[&str], run_id: &str) -> Option<u32> {
    let folder = format!("{CHECKPOINTS_PREFIX}{run_id}/");
    keys.iter()
        .filter_map(|k| k.strip_prefix(&folder))
        .filter_map(|name| match parse_name(name) {
            Name::Checkpoint(n) => Some(n),
            _ => None,
        })
        .max()
}

impl RunWriter {
    /// Stops the run where it is: uploads what this process holds and records a checkpoint that
    /// [`Store::continue_run`] continues from. The run is not history until it commits.
    pub async fn suspend(mut self) -> Result<Checkpoint, StoreError> {
        self.write_held().await?;
        self.checkpoint(None).await
    }

    /// Records the next checkpoint of the run (`complete`: its finish time and the chain floor);
    /// another process having recorded it first means this one's work is not part of the run.
    pub(crate) async fn checkpoint(
        &self,
        complete: Option<(DateTime<Utc>, u64)>,
    ) -> Result<Checkpoint, StoreError> {
        let sequence = self
            .continues
            .checked_add(1)
            .filter(|&n| n <= MAX_CHECKPOINTS)
            .ok_or_else(|| {
                self.store.damaged(format!(
                    "run {} has {} checkpoints, the most a run may have: collect a new run",
                    self.layout.run_id, self.continues
                ))
            })?;
        let checkpoint = Checkpoint {
            checkpoint_version: CHECKPOINT_VERSION,
            run_id: self.layout.run_id.clone(),
            sequence,
            attempt: self.layout.attempt(),
            written_at: Utc::now(),
            start: self.start.clone(),
            finished_at: complete.map(|c| c.0),
            chain_floor: complete.map(|c| c.1),
            counts: self.counts.clone(),
            objects: self.objects.clone(),
            done: self.done.clone(),
            errors: self.errors.clone(),
        };
        let bytes = encode("checkpoint", &checkpoint)?;
        let key = checkpoint_key(&checkpoint.run_id, sequence);
        // Equal bytes found are this process's own earlier try, whose answer was lost.
        if let Created::Exists(_) = self.store.create(&key, bytes).await? {
            return Err(StoreError::Superseded {
                run_id: checkpoint.run_id,
                sequence: self.continues,
            });
        }
        Ok(checkpoint)
    }
}

impl Suspended {
    /// What the run collects: its scope and options, kept from start to commit.
    pub fn start(&self) -> &RunStart {
        &self.checkpoint.start
    }

    /// Whether the run was complete (only its commit remains).
    pub fn is_complete(&self) -> bool {
        self.checkpoint.finished_at.is_some()
    }
}

impl Store {
    /// Reads the latest checkpoint of `run_id` and checks it: what a continuation would start
    /// from. Nothing is written.
    pub async fn suspended_run(&self, run_id: &str) -> Result<Suspended, StoreError> {
        let folder = format!("{CHECKPOINTS_PREFIX}{run_id}/");
        let mut latest = None;
        let mut last_attempt = 0;
        for (key, _) in self.list_keys(&folder).await? {
            let name = key.strip_prefix(&folder).unwrap_or(&key);
            match parse_name(name) {
                Name::Checkpoint(n) => latest = latest.max(Some(n)),
                Name::Attempt(n) => last_attempt = last_attempt.max(n),
                Name::Other => {
                    return Err(self.damaged(format!(
                        "{key} is not a checkpoint patchtrail writes (or its number is out of range): run {run_id} cannot be continued safely; collect a new run"
                    )));
                }
            }
        }
        let Some(sequence) = latest else {
            return Err(StoreError::NoCheckpoint {
                url: self.url().to_string(),
                run_id: run_id.to_string(),
            });
        };
        let key = checkpoint_key(run_id, sequence);
        let bytes = self.get(&key).await?;
        let refuse = |reason: String| {
            self.damaged(format!(
                "checkpoint {key} (SHA-256 {}) {reason}: continue the run with the patchtrail version that suspended it, or collect a new run",
                sha256_hex(&bytes)
            ))
        };
        let checkpoint: Checkpoint = serde_json::from_slice(&bytes)
            .map_err(|e| refuse(format!("is not a checkpoint ({e})")))?;
        if !(1..=CHECKPOINT_VERSION).contains(&checkpoint.checkpoint_version)
            || checkpoint.run_id != run_id
            || checkpoint.sequence != sequence
        {
            return Err(refuse(format!(
                "is version {} of run {} numbered {}, where version {CHECKPOINT_VERSION} of run {run_id} numbered {sequence} was expected",
                checkpoint.checkpoint_version, checkpoint.run_id, checkpoint.sequence
            )));
        }
        check_contents(&checkpoint, last_attempt).map_err(refuse)?;
        Ok(Suspended {
            checkpoint,
            last_attempt,
        })
    }

    /// Continues a suspended run from its latest checkpoint at `now` (see the module docs).
    pub async fn continue_run(
        &self,
        run_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Continued, StoreError> {
        let suspended = self.suspended_run(run_id).await?;
        self.take_over(suspended, now).await
    }

    /// Takes over a suspended run at `now`: commits it if it was complete (or answers its
    /// commit), else claims the next attempt and hands back a writer holding what it has.
    pub async fn take_over(
        &self,
        suspended: Suspended,
        now: DateTime<Utc>,
    ) -> Result<Continued, StoreError> {
        let Suspended {
            checkpoint,
            last_attempt,
        } = suspended;
        let run_id = checkpoint.run_id.clone();
        let layout = RunLayout::new(
            &run_id,
            checkpoint.start.snapshot_time,
            checkpoint.start.format,
        );
        if let Some(finished_at) = checkpoint.finished_at {
            let errors = checkpoint.errors;
            if let Checked::Committed(stored) =
                self.checked_manifest(&layout.manifest(), u64::MAX).await?
                && let Some(entry) = self.chain_entry(stored.manifest.sequence).await?
            {
                let run = CommittedRun {
                    manifest_key: stored.key,
                    manifest_sha256: stored.sha256,
                    manifest: stored.manifest,
                    entry,
                };
                return Ok(Continued::Committed { run, errors });
            }
            let floor = self
                .floor_entry(checkpoint.chain_floor.unwrap_or(0))
                .await?;
            let run = commit_manifest(
                self,
                &layout,
                &checkpoint.start,
                checkpoint.counts,
                checkpoint.objects,
                finished_at,
                floor,
            )
            .await?;
            return Ok(Continued::Committed { run, errors });
        }
        let started = checkpoint.start.snapshot_time;
        if now - started > RESUME_WINDOW {
            return Err(StoreError::ResumeTooLate {
                run_id,
                snapshot_time: started,
            });
        }
        let first = last_attempt + 1;
        let mut claimed = None;
        for attempt in first..(first + ATTEMPT_CLAIMS).min(MAX_CHECKPOINTS + 1) {
            let claim = self.claim_bytes(&format!("{run_id} attempt {attempt}"))?;
            if self.create(&attempt_key(&run_id, attempt), claim).await? == Created::Written {
                claimed = Some(attempt);
                break;
            }
        }
        let attempt = claimed.ok_or_else(|| StoreError::Contended {
            url: self.url().to_string(),
            what: format!("an attempt number to continue run {run_id}"),
        })?;
        let mut writer =
            RunWriter::new(self.clone(), layout.with_attempt(attempt), checkpoint.start);
        writer.objects = checkpoint.objects;
        writer.counts = checkpoint.counts;
        writer.done = checkpoint.done;
        writer.errors = checkpoint.errors;
        writer.continues = checkpoint.sequence;
        Ok(Continued::Writer(writer))
    }

    /// The chain entry a commit walks from (`None`: the chain's start).
    async fn floor_entry(&self, sequence: u64) -> Result<Option<ReadEntry>, StoreError> {
        if sequence == 0 {
            return Ok(None);
        }
        match self.chain_entry(sequence).await? {
            Some(entry) => Ok(Some(entry)),
            None => Err(self.damaged(format!(
                "chain entry {sequence}, which a checkpoint names as the chain's head before it, is missing"
            ))),
        }
    }
}

/// What a checkpoint may hold: only its own run's objects, once each, and counts that agree.
fn check_contents(c: &Checkpoint, last_attempt: u32) -> Result<(), String> {
    if c.attempt > last_attempt {
        return Err(format!(
            "was written by attempt {} but only {last_attempt} were claimed",
            c.attempt
        ));
    }
    let layout = RunLayout::new(&c.run_id, c.start.snapshot_time, c.start.format);
    let mut keys = BTreeSet::new();
    for object in &c.objects {
        if !layout.owns(&object.key) {
            return Err(format!(
                "lists {}, which is not an object of run {}",
                object.key, c.run_id
            ));
        }
        if !keys.insert(object.key.as_str()) {
            return Err(format!("lists {} twice", object.key));
        }
    }
    let done = c.done.len() as u64;
    let n = &c.counts;
    let by_outcome = n
        .managed
        .checked_add(n.unmanaged)
        .and_then(|s| s.checked_add(n.errors));
    if n.instances != done || by_outcome != Some(done) || c.errors.len() as u64 > n.errors {
        return Err(format!(
            "counts {} instances ({} managed, {} unmanaged, {} failed) but holds {done}",
            n.instances, n.managed, n.unmanaged, n.errors
        ));
    }
    // Patch counts go on growing from the checkpoint's: they must agree with each other and stay
    // far below where adding to them could wrap (no run holds 2^48 rows).
    const MAX_COUNT: u64 = 1 << 48;
    let agree = n.missing_critical <= n.missing
        && n.missing_security <= n.missing
        && n.missing
            .checked_add(n.failed)
            .is_some_and(|s| s <= n.patches)
        && n.patches < MAX_COUNT
        && n.pages < MAX_COUNT;
    if !agree {
        return Err(format!(
            "counts {} patches ({} missing, {} critical, {} security, {} failed) on {} pages, which cannot be",
            n.patches, n.missing, n.missing_critical, n.missing_security, n.failed, n.pages
        ));
    }
    if c.checkpoint_version >= 2 && c.chain_floor.is_some() != c.finished_at.is_some() {
        return Err("is complete without a chain floor, or has one without being complete".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::chain_key;
    use chrono::TimeZone;
    use patchtrail_model::{
        InstanceRecord, InstanceSnapshot, Outcome, PatchRecord, RunConfig, StoreFormat,
    };

    fn start(format: StoreFormat) -> RunStart {
        let at = Utc
            .with_ymd_and_hms(2026, 3, 1, 9, 0, 0)
            .single()
            .expect("time");
        RunStart {
            snapshot_time: at,
            started_at: at,
            account_id: "123456789012".into(),
            region: "ap-northeast-1".into(),
            format,
            config: RunConfig {
                tag_key: "CheckPatch".into(),
                tag_values: vec![],
                classifications: vec![],
                hybrid: false,
                patch_states: true,
                origin: None,
            },
        }
    }

    /// Instance `n` with `n` missing patches; instance 3 failed.
    fn snapshot(writer: &RunWriter, n: usize) -> InstanceSnapshot {
        let s = writer.start();
        let instance_id = format!("i-{n:017}");
        let patch = |k: usize| PatchRecord {
            run_id: writer.run_id().into(),
            snapshot_time: s.snapshot_time,
            account_id: s.account_id.clone(),
            region: s.region.clone(),
            instance_id: instance_id.clone(),
            kb_id: format!("KB{k}"),
            title: "t".into(),
            classification: "Security".into(),
            severity: "Critical".into(),
            state: "Missing".into(),
            installed_time: None,
            cve_ids: None,
            release_date: None,
            installed_time_sent: None,
        };
        let failed = n == 3;
        InstanceSnapshot {
            instance: InstanceRecord {
                run_id: writer.run_id().into(),
                snapshot_time: s.snapshot_time,
                instance_id: instance_id.clone(),
                tags: "{}".into(),
                outcome: if failed { Outcome::Error } else { Outcome::Ok },
                error_code: failed.then(|| "ThrottlingException".into()),
                error_message: failed.then(|| "Rate exceeded".into()),
                ..InstanceRecord::default()
            },
            pages: vec![(0..n).map(patch).collect()],
        }
    }

    fn continued(found: Continued) -> RunWriter {
        match found {
            Continued::Writer(w) => w,
            Continued::Committed { run, .. } => panic!("run {} was committed", run.manifest.run_id),
        }
    }

    fn committed(found: Continued) -> CommittedRun {
        match found {
            Continued::Committed { run, .. } => run,
            Continued::Writer(w) => panic!("run {} is not complete", w.run_id()),
        }
    }

    /// A Parquet run of instance `n` alone, suspended at its first checkpoint: its id.
    async fn suspended_run(dir: &tempfile::TempDir, n: usize) -> String {
        let mut first = store(dir)
            .begin_run(start(StoreFormat::Parquet))
            .await
            .expect("begin");
        let run_id = first.run_id().to_string();
        first.add(snapshot(&first, n)).await.expect("add");
        first.suspend().await.expect("suspend");
        run_id
    }

    /// An hour after the runs' snapshot time: within the resume window.
    fn soon() -> DateTime<Utc> {
        start(StoreFormat::Parquet).snapshot_time + chrono::TimeDelta::hours(1)
    }

    fn store(dir: &tempfile::TempDir) -> Store {
        Store::open(dir.path().to_str().expect("utf8"), &Default::default()).expect("store")
    }

    /// Instance `n` with no patches.
    fn bare(writer: &RunWriter, n: usize) -> InstanceSnapshot {
        let mut s = snapshot(writer, 0);
        s.instance.instance_id = format!("i-{n:017}");
        s
    }

    /// Issue 31, item 11: a planted claim numbered past what patchtrail writes neither wraps the
    /// run-id counter nor blocks the day with an "other writers" error: it is named.
    #[tokio::test]
    async fn a_planted_claim_is_named_not_wrapped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = store(&dir)
            .begin_run(start(StoreFormat::Parquet))
            .await
            .expect("begin");
        let stem = first
            .run_id()
            .rsplit_once('-')
            .expect("run id")
            .0
            .to_string();
        let planted = dir
            .path()
            .join(crate::chain::claim_key(&format!("{stem}-4294967295")));
        std::fs::write(&planted, b"{}").expect("plant");
        let Err(e) = store(&dir).begin_run(start(StoreFormat::Parquet)).await else {
            panic!("a run was begun past a planted claim")
        };
        let text = e.to_string();
        assert!(
            text.contains("4294967295") && text.contains("not patchtrail's"),
            "{text}"
        );
        std::fs::remove_file(&planted).expect("remove");
        std::fs::write(
            dir.path()
                .join(crate::chain::claim_key(&format!("{stem}-9998"))),
            b"{}",
        )
        .expect("plant");
        let next = store(&dir)
            .begin_run(start(StoreFormat::Parquet))
            .await
            .expect("begin after 9998");
        assert_eq!(next.run_id(), format!("{stem}-9999"));
    }

    #[tokio::test]
    async fn a_fleet_larger_than_a_part_writes_bounded_instance_parts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut first = store(&dir)
            .begin_run(start(StoreFormat::Parquet))
            .await
            .expect("begin");
        let run_id = first.run_id().to_string();
        let part = crate::writer::INSTANCE_PART_ROWS as usize;
        for n in 0..part + 10 {
            first.add(bare(&first, n)).await.expect("add");
        }
        first.suspend().await.expect("suspend");
        let mut second = continued(
            store(&dir)
                .continue_run(&run_id, soon())
                .await
                .expect("continue"),
        );
        second.add(bare(&second, part + 10)).await.expect("add");
        let run = second.commit(Utc::now()).await.expect("commit");

        let folder = "instances/year=2026/month=03/day=01";
        let parts: Vec<(String, u64)> = run
            .manifest
            .objects
            .iter()
            .filter(|o| o.key.starts_with("instances/"))
            .map(|o| (o.key.clone(), o.rows))
            .collect();
        assert_eq!(
            parts,
            [
                (format!("{folder}/{run_id}.parquet"), part as u64),
                (format!("{folder}/{run_id}-0001.parquet"), 10),
                (format!("{folder}/{run_id}-r001.parquet"), 1),
            ]
        );
        // What the parts hold, read back by the Parquet reader: every instance once, in order.
        let mut ids = Vec::new();
        for (key, _) in &parts {
            let file = std::fs::File::open(dir.path().join(key)).expect("part");
            let reader =
                parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
                    .expect("parquet")
                    .build()
                    .expect("reader");
            for batch in reader {
                let batch = batch.expect("batch");
                let column = batch.column_by_name("instance_id").expect("instance_id");
                let column = arrow_array::cast::AsArray::as_string::<i32>(column);
                ids.extend(column.iter().map(|id| id.expect("an id").to_string()));
            }
        }
        let want: Vec<String> = (0..=part + 10).map(|n| format!("i-{n:017}")).collect();
        assert_eq!(ids, want);
        let report = store(&dir).verify(None).await.expect("verify");
        assert!(report.findings.is_empty(), "{:?}", report.findings);
    }

    #[tokio::test]
    async fn a_suspended_run_continues_in_another_process_and_commits_once() {
        for format in [StoreFormat::Parquet, StoreFormat::Jsonl, StoreFormat::Seed] {
            let dir = tempfile::tempdir().expect("tempdir");
            let mut first = store(&dir).begin_run(start(format)).await.expect("begin");
            let run_id = first.run_id().to_string();
            for n in 1..=2 {
                first.add(snapshot(&first, n)).await.expect("add");
            }
            let checkpoint = first.suspend().await.expect("suspend");
            assert_eq!((checkpoint.sequence, checkpoint.done.len()), (1, 2));
            let report = store(&dir).verify(None).await.expect("verify");
            assert_eq!(report.runs, 0, "a suspended run is not history");
            assert!(
                report.notes[0].contains("suspended at its checkpoint 1"),
                "{:?}",
                report.notes
            );

            // A new process (a new Store on the same folder) continues, then a third finishes.
            let mut second = continued(
                store(&dir)
                    .continue_run(&run_id, soon())
                    .await
                    .expect("continue"),
            );
            assert_eq!(second.done().len(), 2);
            for n in 3..=4 {
                second.add(snapshot(&second, n)).await.expect("add");
            }
            second.suspend().await.expect("suspend again");
            let mut third = continued(
                store(&dir)
                    .continue_run(&run_id, soon())
                    .await
                    .expect("continue"),
            );
            assert_eq!(third.done().len(), 4);
            assert_eq!(third.errors().len(), 1, "instance 3's error travels");
            third.add(snapshot(&third, 5)).await.expect("add");
            let run = third.commit(Utc::now()).await.expect("commit");

            let m = &run.manifest;
            assert_eq!((m.counts.instances, m.counts.patches), (5, 15), "{format}");
            assert_eq!(m.counts.errors, 1);
            let keys: Vec<&str> = m.objects.iter().map(|o| o.key.as_str()).collect();
            assert!(
                keys.iter().any(|k| k.contains(&format!("{run_id}-r002"))),
                "{keys:?}"
            );
            let report = store(&dir).verify(None).await.expect("verify");
            assert_eq!(report.runs, 1);
            assert!(report.findings.is_empty(), "{:?}", report.findings);
            assert!(report.notes.is_empty(), "{:?}", report.notes);

            // Continuing a committed run answers it; it is never committed twice.
            let again = committed(
                store(&dir)
                    .continue_run(&run_id, soon())
                    .await
                    .expect("again"),
            );
            assert_eq!(again.manifest_sha256, run.manifest_sha256);
            assert_eq!(store(&dir).chain_sequences().await.expect("chain"), vec![1]);
        }
    }

    #[tokio::test]
    async fn of_two_continuations_of_one_checkpoint_the_first_to_record_wins() {
        let dir = tempfile::tempdir().expect("tempdir");
        let run_id = suspended_run(&dir, 1).await;
        let mut a = continued(store(&dir).continue_run(&run_id, soon()).await.expect("a"));
        let mut b = continued(store(&dir).continue_run(&run_id, soon()).await.expect("b"));
        a.add(snapshot(&a, 2)).await.expect("add");
        b.add(snapshot(&b, 7)).await.expect("add");
        a.suspend().await.expect("a records checkpoint 2");
        let lost = b.commit(Utc::now()).await.expect_err("b lost the race");
        assert!(
            matches!(lost, StoreError::Superseded { sequence: 1, .. }),
            "{lost}"
        );
        assert!(lost.is_retryable());

        let last = continued(
            store(&dir)
                .continue_run(&run_id, soon())
                .await
                .expect("continue"),
        );
        assert_eq!(
            last.done().iter().collect::<Vec<_>>(),
            ["i-00000000000000001", "i-00000000000000002"]
        );
        let run = last.commit(Utc::now()).await.expect("commit");
        assert_eq!(
            run.manifest.counts.patches, 3,
            "b's 7 patches are not in the run"
        );
        let report = store(&dir).verify(None).await.expect("verify");
        assert!(report.findings.is_empty(), "{:?}", report.findings);
        assert_eq!(
            report.notes.len(),
            1,
            "b's objects are noted: {:?}",
            report.notes
        );
        assert!(
            report.notes[0].contains(&format!("run {run_id} is committed;")),
            "{:?}",
            report.notes
        );
    }

    #[tokio::test]
    async fn a_complete_run_whose_process_died_before_its_manifest_is_committed_by_the_next() {
        let dir = tempfile::tempdir().expect("tempdir");
        let run_id = suspended_run(&dir, 2).await;
        let mut second = continued(
            store(&dir)
                .continue_run(&run_id, soon())
                .await
                .expect("continue"),
        );
        second.add(snapshot(&second, 4)).await.expect("add");
        // What `commit` does up to its manifest, then the process dies.
        second.write_held().await.expect("write");
        second
            .checkpoint(Some((Utc::now(), 0)))
            .await
            .expect("complete");
        drop(second);
        assert_eq!(store(&dir).verify(None).await.expect("verify").runs, 0);

        // Two processes find it complete at once: one commit between them.
        let (a, b) = (store(&dir), store(&dir));
        let (ra, rb) = tokio::join!(
            a.continue_run(&run_id, soon()),
            b.continue_run(&run_id, soon())
        );
        let (ra, rb) = (committed(ra.expect("a")), committed(rb.expect("b")));
        assert_eq!(ra.manifest_sha256, rb.manifest_sha256);
        assert_eq!(store(&dir).chain_sequences().await.expect("chain"), vec![1]);
        let run = committed(
            store(&dir)
                .continue_run(&run_id, soon())
                .await
                .expect("finish"),
        );
        assert_eq!(run.manifest.counts.patches, 6);
        let again = committed(
            store(&dir)
                .continue_run(&run_id, soon())
                .await
                .expect("again"),
        );
        assert_eq!(again.manifest_sha256, run.manifest_sha256);
        let report = store(&dir).verify(None).await.expect("verify");
        assert_eq!(report.runs, 1);
        assert!(report.findings.is_empty(), "{:?}", report.findings);
    }

    #[tokio::test]
    async fn only_a_suspended_run_can_be_continued() {
        let dir = tempfile::tempdir().expect("tempdir");
        let e = store(&dir)
            .continue_run("20260301-123456789012-ap-northeast-1-01", soon())
            .await
            .err()
            .expect("no checkpoint");
        assert!(matches!(e, StoreError::NoCheckpoint { .. }), "{e}");
        assert!(e.to_string().contains("only a suspended run"), "{e}");
    }

    /// Every file under the store, for "nothing was written" checks.
    fn files(dir: &tempfile::TempDir) -> Vec<String> {
        fn walk(base: &std::path::Path, dir: &std::path::Path, out: &mut Vec<String>) {
            for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(base, &p, out);
                } else {
                    out.push(p.strip_prefix(base).expect("under").display().to_string());
                }
            }
        }
        let mut out = Vec::new();
        walk(dir.path(), dir.path(), &mut out);
        out.sort();
        out
    }

    /// A run that began, added instance `n`, completed its last checkpoint and died before its
    /// commit (what `commit` does before the chain).
    async fn completed_uncommitted(dir: &tempfile::TempDir, n: usize) -> (String, Checkpoint) {
        let run_id = suspended_run(dir, n).await;
        let mut second = continued(
            store(dir)
                .continue_run(&run_id, soon())
                .await
                .expect("continue"),
        );
        second.add(bare(&second, n + 100)).await.expect("add");
        second.write_held().await.expect("write");
        let floor = store(dir).chain_head().await.expect("head");
        let complete = second
            .checkpoint(Some((Utc::now(), floor.map_or(0, |f| f.entry.sequence))))
            .await
            .expect("complete");
        (run_id, complete)
    }

    /// An unrelated run of instance `n`, committed.
    async fn unrelated_commit(dir: &tempfile::TempDir, n: usize) -> CommittedRun {
        let mut other = store(dir)
            .begin_run(start(StoreFormat::Parquet))
            .await
            .expect("begin");
        other.add(bare(&other, n)).await.expect("add");
        other.commit(Utc::now()).await.expect("commit")
    }

    /// Issue 21, observation 3: two processes finish one complete run, an unrelated run commits in
    /// between, and the second process had read the run's checkpoint before the first committed
    /// (so it does not see the manifest): the run is still committed once, at its first entry.
    #[tokio::test]
    async fn a_complete_run_finished_twice_around_an_unrelated_commit_commits_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (run_id, complete) = completed_uncommitted(&dir, 2).await;
        let first = committed(
            store(&dir)
                .continue_run(&run_id, soon())
                .await
                .expect("first"),
        );
        assert_eq!(first.entry.entry.sequence, 1);
        let other = unrelated_commit(&dir, 7).await;
        assert_eq!(other.entry.entry.sequence, 2);
        // The second process, from the checkpoint it had read: it walks from the floor.
        let layout = RunLayout::new(&run_id, complete.start.snapshot_time, complete.start.format);
        let floor = store(&dir)
            .floor_entry(complete.chain_floor.expect("a floor"))
            .await
            .expect("floor");
        let second = commit_manifest(
            &store(&dir),
            &layout,
            &complete.start,
            complete.counts.clone(),
            complete.objects.clone(),
            complete.finished_at.expect("finished"),
            floor,
        )
        .await
        .expect("second");
        assert_eq!(second.entry, first.entry, "the first commit, answered");
        assert_eq!(second.manifest_sha256, first.manifest_sha256);
        assert_eq!(store(&dir).chain_sequences().await.expect("chain"), [1, 2]);
        let report = store(&dir).verify(None).await.expect("verify");
        assert!(report.findings.is_empty(), "{:?}", report.findings);
        assert_eq!(report.runs, 2);
    }

    /// A committer that dies between its entry and its manifest leaves the pending copy; the next
    /// commit recreates the manifest byte for byte, and until then verify names the repair.
    #[tokio::test]
    async fn a_manifest_its_committer_did_not_write_is_recreated_by_the_next_commit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = unrelated_commit(&dir, 1).await;
        // The state the death leaves: the entry, the pending copy, no manifest.
        let manifest = dir.path().join(&first.manifest_key);
        let bytes = std::fs::read(&manifest).expect("manifest");
        let pending = dir
            .path()
            .join(crate::chain::pending_key(&first.manifest.run_id, 1));
        std::fs::create_dir_all(pending.parent().expect("dir")).expect("mkdir");
        std::fs::write(&pending, &bytes).expect("pending");
        std::fs::remove_file(&manifest).expect("die");
        let report = store(&dir).verify(None).await.expect("verify");
        assert_eq!(report.findings.len(), 1, "{:?}", report.findings);
        assert!(report.findings[0].to_string().contains("verify --repair"));
        // Young, it looks like a commit in flight: readers take the chain before it.
        let history = store(&dir).history().await.expect("history");
        assert!(history.damaged.is_empty(), "{:?}", history.damaged);
        assert!(history.runs.is_empty() && history.head.is_none());
        // Older than a commit takes, it is a committer's death: readers refuse.
        let entry_file = dir.path().join(crate::chain::chain_key(1));
        let mut entry: crate::chain::ChainEntry =
            serde_json::from_slice(&std::fs::read(&entry_file).expect("entry")).expect("json");
        entry.committed_at -= chrono::TimeDelta::hours(1);
        std::fs::write(&entry_file, serde_json::to_vec(&entry).expect("encode")).expect("age");
        let history = store(&dir).history().await.expect("history");
        assert_eq!(history.damaged.len(), 1, "readers refuse meanwhile");

        let second = unrelated_commit(&dir, 2).await;
        assert_eq!(second.entry.entry.sequence, 2);
        assert_eq!(std::fs::read(&manifest).expect("recreated"), bytes);
        assert!(
            !pending.exists(),
            "the pending copy is removed once settled"
        );
        let report = store(&dir).verify(None).await.expect("verify");
        assert!(report.findings.is_empty(), "{:?}", report.findings);
    }

    /// Issue 21, observation 4: a wrapped attempt counter or a checkpoint that is not the run's
    /// own is refused in one line, and nothing is written.
    #[tokio::test]
    async fn hostile_checkpoints_and_counters_are_refused_and_nothing_is_written() {
        let dir = tempfile::tempdir().expect("tempdir");
        let run_id = suspended_run(&dir, 3).await;
        let folder = dir.path().join(CHECKPOINTS_PREFIX).join(&run_id);
        let refused = |e: StoreError| {
            assert!(matches!(e, StoreError::Damaged { .. }), "{e}");
            let text = e.to_string();
            assert!(!text.contains('\n'), "one line: {text}");
            text
        };

        std::fs::write(folder.join("attempt-4294967295.json"), b"").expect("hostile");
        let before = files(&dir);
        let Err(e) = store(&dir).continue_run(&run_id, soon()).await else {
            panic!("a wrapped counter was taken")
        };
        assert!(refused(e).contains("attempt-4294967295.json"));
        assert_eq!(files(&dir), before, "nothing written");
        std::fs::remove_file(folder.join("attempt-4294967295.json")).expect("rm");

        // A checkpoint listing another run's object, and one whose counts disagree.
        let latest = folder.join("0001.json");
        let good = std::fs::read_to_string(&latest).expect("checkpoint");
        let mut c: Checkpoint = serde_json::from_str(&good).expect("parse");
        c.objects[0].key = c.objects[0]
            .key
            .replace(&run_id, "20260301-123456789012-ap-northeast-1-99");
        std::fs::write(&latest, serde_json::to_vec(&c).expect("json")).expect("hostile");
        let before = files(&dir);
        let Err(e) = store(&dir).continue_run(&run_id, soon()).await else {
            panic!("another run's object was taken")
        };
        assert!(refused(e).contains("is not an object of run"));
        assert_eq!(files(&dir), before, "nothing written");

        let mut c: Checkpoint = serde_json::from_str(&good).expect("parse");
        c.counts.instances = u64::MAX;
        std::fs::write(&latest, serde_json::to_vec(&c).expect("json")).expect("hostile");
        let Err(e) = store(&dir).continue_run(&run_id, soon()).await else {
            panic!("wrapped counts were taken")
        };
        assert!(refused(e).contains("counts"));
        // Issue 31, item 11: patch counts at 2^64-1 would wrap once the run goes on counting.
        for forge in [
            |c: &mut Checkpoint| c.counts.patches = u64::MAX,
            |c: &mut Checkpoint| c.counts.missing = u64::MAX,
            |c: &mut Checkpoint| c.counts.pages = u64::MAX,
        ] {
            let mut c: Checkpoint = serde_json::from_str(&good).expect("parse");
            forge(&mut c);
            std::fs::write(&latest, serde_json::to_vec(&c).expect("json")).expect("hostile");
            let Err(e) = store(&dir).continue_run(&run_id, soon()).await else {
                panic!("counts that wrap were taken")
            };
            assert!(refused(e).contains("cannot be"));
        }
        std::fs::write(&latest, good).expect("restore");
        continued(
            store(&dir)
                .continue_run(&run_id, soon())
                .await
                .expect("a sound checkpoint continues"),
        );
    }

    /// Issue 21, observation 9: a run is continued only within 24 hours of its snapshot time
    /// (docs/semantics.md §1.4); later, nothing is written and the run stays suspended.
    #[tokio::test]
    async fn a_run_is_continued_only_within_a_day_of_its_snapshot_time() {
        let dir = tempfile::tempdir().expect("tempdir");
        let run_id = suspended_run(&dir, 2).await;
        let before = files(&dir);
        let late =
            start(StoreFormat::Parquet).snapshot_time + RESUME_WINDOW + TimeDelta::seconds(1);
        let Err(e) = store(&dir).continue_run(&run_id, late).await else {
            panic!("continued a day later")
        };
        assert!(matches!(e, StoreError::ResumeTooLate { .. }), "{e}");
        assert_eq!(files(&dir), before, "nothing written");
        let in_time = start(StoreFormat::Parquet).snapshot_time + RESUME_WINDOW;
        continued(
            store(&dir)
                .continue_run(&run_id, in_time)
                .await
                .expect("in time"),
        );
    }

    /// Issue 21, observation 6, and issue 31, item 1: an empty newest entry stops commits and
    /// readers; in a folder with hard links (every create whole) no crash can leave it, so
    /// `repair` keeps it, names why and how to restore it, and changes nothing. (A folder that
    /// creates exclusively, where a crash can, is tried at the command line under strace:
    /// crates/cli/tests/faults.rs.)
    #[tokio::test]
    async fn an_empty_newest_entry_in_a_folder_with_hard_links_is_kept_not_set_aside() {
        let dir = tempfile::tempdir().expect("tempdir");
        let kept = [
            unrelated_commit(&dir, 1).await,
            unrelated_commit(&dir, 2).await,
        ];
        std::fs::write(dir.path().join(chain_key(3)), b"").expect("damage");
        let Err(e) = unrelated_commit_result(&dir, 3).await else {
            panic!("committed past an unreadable entry")
        };
        assert!(matches!(e, StoreError::Damaged { .. }), "{e}");
        assert!(
            !store(&dir)
                .history()
                .await
                .expect("history")
                .damaged
                .is_empty()
        );
        let before = files(&dir);
        let done = store(&dir).repair().await.expect("repair");
        assert_eq!(done.len(), 1, "{done:?}");
        assert!(
            done[0].starts_with("kept chain entry 3")
                && done[0].contains("creates every object whole"),
            "{done:?}"
        );
        assert_eq!(files(&dir), before, "repair changed nothing");
        let report = store(&dir).verify(None).await.expect("verify");
        assert_eq!(report.findings.len(), 1, "{:?}", report.findings);
        let finding = report.findings[0].to_string();
        assert!(
            finding.contains("restore it") && !finding.contains("sets it aside"),
            "{finding}"
        );
        for run in &kept {
            let held = std::fs::read(dir.path().join(&run.manifest_key)).expect("manifest");
            assert_eq!(crate::sha256_hex(&held), run.manifest_sha256, "unchanged");
        }
    }

    async fn unrelated_commit_result(
        dir: &tempfile::TempDir,
        n: usize,
    ) -> Result<CommittedRun, StoreError> {
        let mut other = store(dir).begin_run(start(StoreFormat::Parquet)).await?;
        other.add(bare(&other, n)).await?;
        other.commit(Utc::now()).await
    }

    /// Issue 21, observation 5: the newest entry removed, or a whole newest run, is found by
    /// verify and refused by readers; with the hint lowered too only a kept witness finds it.
    #[tokio::test]
    async fn truncation_is_found_and_a_kept_witness_finds_what_the_hint_cannot() {
        let dir = tempfile::tempdir().expect("tempdir");
        for n in 1..=3 {
            unrelated_commit(&dir, n).await;
        }
        let witness: crate::Witness = store(&dir)
            .chain_head()
            .await
            .expect("head")
            .expect("a head")
            .witness()
            .parse()
            .expect("witness");
        assert!(
            store(&dir)
                .verify(Some(&witness))
                .await
                .expect("verify")
                .findings
                .is_empty()
        );

        std::fs::remove_file(dir.path().join(chain_key(3))).expect("truncate");
        let report = store(&dir).verify(None).await.expect("verify");
        assert!(
            report
                .findings
                .iter()
                .any(|f| f.to_string().contains("truncation")),
            "{:?}",
            report.findings
        );
        let history = store(&dir).history().await.expect("history");
        assert!(
            !history.damaged.is_empty(),
            "readers refuse a truncated chain"
        );

        // The hint lowered as well: only the witness kept elsewhere tells.
        std::fs::write(dir.path().join(crate::HEAD_HINT), b"2").expect("lower the hint");
        let report = store(&dir).verify(None).await.expect("verify");
        assert!(
            report.findings.is_empty(),
            "documented limit (docs/commit-protocol.md): {:?}",
            report.findings
        );
        let report = store(&dir).verify(Some(&witness)).await.expect("verify");
        assert!(
            report
                .findings
                .iter()
                .any(|f| f.to_string().contains("the head you kept")),
            "{:?}",
            report.findings
        );
    }
}
