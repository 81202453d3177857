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
//! complete, then its manifest; continuing a complete run commits it if that was not done yet
//! (the process died in between) or answers the committed run.

use crate::history::sha256_hex;
use crate::ids::InstanceIds;
use crate::layout::RunLayout;
use crate::writer::{InstanceError, RunStart, RunWriter, commit_manifest};
use crate::{CommittedRun, Store, StoreError};
use chrono::{DateTime, Utc};
use patchtrail_model::{ManifestObject, RunCounts};
use serde::{Deserialize, Serialize};

pub const CHECKPOINTS_PREFIX: &str = "_patchtrail/checkpoints/";
const CHECKPOINT_VERSION: u32 = 1;
/// Attempt numbers tried after the last one claimed.
const ATTEMPT_CLAIMS: u32 = 64;

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

pub fn checkpoint_key(run_id: &str, sequence: u32) -> String {
    format!("{CHECKPOINTS_PREFIX}{run_id}/{sequence:04}.json")
}

fn attempt_key(run_id: &str, attempt: u32) -> String {
    format!("{CHECKPOINTS_PREFIX}{run_id}/attempt-{attempt:03}.json")
}

/// `(checkpoint sequence, attempt)` of a key under one run's checkpoint folder.
fn parse_name(name: &str) -> (Option<u32>, Option<u32>) {
    let stem = name.strip_suffix(".json").unwrap_or(name);
    match stem.strip_prefix("attempt-") {
        Some(n) => (None, n.parse().ok()),
        None => (stem.parse().ok(), None),
    }
}

/// The latest checkpoint of `run_id` among a store's keys, if it has one.
pub fn suspended_at(keys: &[&str], run_id: &str) -> Option<u32> {
    let folder = format!("{CHECKPOINTS_PREFIX}{run_id}/");
    keys.iter()
        .filter_map(|k| k.strip_prefix(&folder))
        .filter_map(|name| parse_name(name).0)
        .max()
}

impl RunWriter {
    /// Stops the run where it is: uploads what this process holds and records a checkpoint that
    /// [`Store::continue_run`] continues from. The run is not history until it commits.
    pub async fn suspend(mut self) -> Result<Checkpoint, StoreError> {
        self.write_held().await?;
        self.checkpoint(None).await
    }

    /// Records the next checkpoint of the run; another process having recorded it first means
    /// this one's work is not part of the run.
    pub(crate) async fn checkpoint(
        &self,
        finished_at: Option<DateTime<Utc>>,
    ) -> Result<Checkpoint, StoreError> {
        let checkpoint = Checkpoint {
            checkpoint_version: CHECKPOINT_VERSION,
            run_id: self.layout.run_id.clone(),
            sequence: self.continues + 1,
            attempt: self.layout.attempt(),
            written_at: Utc::now(),
            start: self.start.clone(),
            finished_at,
            counts: self.counts.clone(),
            objects: self.objects.clone(),
            done: self.done.clone(),
            errors: self.errors.clone(),
        };
        let bytes = serde_json::to_vec(&checkpoint).map_err(|e| StoreError::Encode {
            what: "checkpoint".into(),
            reason: e.to_string(),
        })?;
        let key = checkpoint_key(&checkpoint.run_id, checkpoint.sequence);
        if !self.store.put_if_absent(&key, bytes).await? {
            return Err(StoreError::Superseded {
                run_id: checkpoint.run_id,
                sequence: self.continues,
            });
        }
        Ok(checkpoint)
    }
}

impl Store {
    /// Continues a suspended run from its latest checkpoint (see the module docs).
    pub async fn continue_run(&self, run_id: &str) -> Result<Continued, StoreError> {
        let folder = format!("{CHECKPOINTS_PREFIX}{run_id}/");
        let names: Vec<String> = self
            .list_keys(&folder)
            .await?
            .into_iter()
            .filter_map(|(k, _)| k.strip_prefix(&folder).map(str::to_string))
            .collect();
        let latest = names.iter().filter_map(|n| parse_name(n).0).max();
        let last_attempt = names.iter().filter_map(|n| parse_name(n).1).max();
        let Some(sequence) = latest else {
            return Err(StoreError::NoCheckpoint {
                url: self.url().to_string(),
                run_id: run_id.to_string(),
            });
        };
        let key = checkpoint_key(run_id, sequence);
        let bytes = self.get(&key).await?;
        let unreadable = |reason: String| StoreError::Object {
            url: self.url().to_string(),
            operation: "read",
            key: key.clone(),
            reason: format!(
                "{reason} (SHA-256 {}): continue it with the patchtrail version that suspended it, or collect a new run",
                sha256_hex(&bytes)
            ),
        };
        let checkpoint: Checkpoint = serde_json::from_slice(&bytes)
            .map_err(|e| unreadable(format!("not a checkpoint of run {run_id}: {e}")))?;
        if checkpoint.checkpoint_version != CHECKPOINT_VERSION
            || checkpoint.run_id != run_id
            || checkpoint.sequence != sequence
        {
            return Err(unreadable(format!(
                "checkpoint version {} of run {} numbered {}, where version {CHECKPOINT_VERSION} of run {run_id} numbered {sequence} was expected",
                checkpoint.checkpoint_version, checkpoint.run_id, checkpoint.sequence
            )));
        }
        let layout = RunLayout::new(
            run_id,
            checkpoint.start.snapshot_time,
            checkpoint.start.format,
        );
        if let Some(finished_at) = checkpoint.finished_at {
            let errors = checkpoint.errors;
            if let Ok(Some(stored)) = self.checked_manifest(&layout.manifest()).await? {
                let run = CommittedRun {
                    manifest_key: stored.key,
                    manifest_sha256: stored.sha256,
                    manifest: stored.manifest,
                };
                return Ok(Continued::Committed { run, errors });
            }
            let run = commit_manifest(
                self,
                &layout,
                &checkpoint.start,
                checkpoint.counts,
                checkpoint.objects,
                finished_at,
            )
            .await?;
            return Ok(Continued::Committed { run, errors });
        }
        let first = last_attempt.map_or(1, |a| a + 1);
        let mut claimed = None;
        for attempt in first..first + ATTEMPT_CLAIMS {
            let claim = self.claim_bytes(&format!("{run_id} attempt {attempt}"))?;
            if self
                .put_if_absent(&attempt_key(run_id, attempt), claim)
                .await?
            {
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
        writer.continues = sequence;
        Ok(Continued::Writer(writer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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

    fn store(dir: &tempfile::TempDir) -> Store {
        Store::open(dir.path().to_str().expect("utf8"), &Default::default()).expect("store")
    }

    /// Instance `n` with no patches.
    fn bare(writer: &RunWriter, n: usize) -> InstanceSnapshot {
        let mut s = snapshot(writer, 0);
        s.instance.instance_id = format!("i-{n:017}");
        s
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
        let mut second = continued(store(&dir).continue_run(&run_id).await.expect("continue"));
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
        let report = store(&dir).verify().await.expect("verify");
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
            let report = store(&dir).verify().await.expect("verify");
            assert_eq!(report.runs, 0, "a suspended run is not history");
            assert!(
                report.notes[0].contains("suspended at its checkpoint 1"),
                "{:?}",
                report.notes
            );

            // A new process (a new Store on the same folder) continues, then a third finishes.
            let mut second = continued(store(&dir).continue_run(&run_id).await.expect("continue"));
            assert_eq!(second.done().len(), 2);
            for n in 3..=4 {
                second.add(snapshot(&second, n)).await.expect("add");
            }
            second.suspend().await.expect("suspend again");
            let mut third = continued(store(&dir).continue_run(&run_id).await.expect("continue"));
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
            let report = store(&dir).verify().await.expect("verify");
            assert_eq!(report.runs, 1);
            assert!(report.findings.is_empty(), "{:?}", report.findings);
            assert!(report.notes.is_empty(), "{:?}", report.notes);

            // Continuing a committed run answers it; it is never committed twice.
            let again = committed(store(&dir).continue_run(&run_id).await.expect("again"));
            assert_eq!(again.manifest_sha256, run.manifest_sha256);
            assert_eq!(store(&dir).chain_sequences().await.expect("chain"), vec![1]);
        }
    }

    #[tokio::test]
    async fn of_two_continuations_of_one_checkpoint_the_first_to_record_wins() {
        let dir = tempfile::tempdir().expect("tempdir");
        let run_id = suspended_run(&dir, 1).await;
        let mut a = continued(store(&dir).continue_run(&run_id).await.expect("a"));
        let mut b = continued(store(&dir).continue_run(&run_id).await.expect("b"));
        a.add(snapshot(&a, 2)).await.expect("add");
        b.add(snapshot(&b, 7)).await.expect("add");
        a.suspend().await.expect("a records checkpoint 2");
        let lost = b.commit(Utc::now()).await.expect_err("b lost the race");
        assert!(
            matches!(lost, StoreError::Superseded { sequence: 1, .. }),
            "{lost}"
        );
        assert!(lost.is_retryable());

        let last = continued(store(&dir).continue_run(&run_id).await.expect("continue"));
        assert_eq!(
            last.done().iter().collect::<Vec<_>>(),
            ["i-00000000000000001", "i-00000000000000002"]
        );
        let run = last.commit(Utc::now()).await.expect("commit");
        assert_eq!(
            run.manifest.counts.patches, 3,
            "b's 7 patches are not in the run"
        );
        let report = store(&dir).verify().await.expect("verify");
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
        let mut second = continued(store(&dir).continue_run(&run_id).await.expect("continue"));
        second.add(snapshot(&second, 4)).await.expect("add");
        // What `commit` does up to its manifest, then the process dies.
        second.write_held().await.expect("write");
        second.checkpoint(Some(Utc::now())).await.expect("complete");
        drop(second);
        assert_eq!(store(&dir).verify().await.expect("verify").runs, 0);

        // Two processes find it complete at once: one commit between them.
        let (a, b) = (store(&dir), store(&dir));
        let (ra, rb) = tokio::join!(a.continue_run(&run_id), b.continue_run(&run_id));
        let (ra, rb) = (committed(ra.expect("a")), committed(rb.expect("b")));
        assert_eq!(ra.manifest_sha256, rb.manifest_sha256);
        assert_eq!(store(&dir).chain_sequences().await.expect("chain"), vec![1]);
        let run = committed(store(&dir).continue_run(&run_id).await.expect("finish"));
        assert_eq!(run.manifest.counts.patches, 6);
        let again = committed(store(&dir).continue_run(&run_id).await.expect("again"));
        assert_eq!(again.manifest_sha256, run.manifest_sha256);
        let report = store(&dir).verify().await.expect("verify");
        assert_eq!(report.runs, 1);
        assert!(report.findings.is_empty(), "{:?}", report.findings);
    }

    #[tokio::test]
    async fn only_a_suspended_run_can_be_continued() {
        let dir = tempfile::tempdir().expect("tempdir");
        let e = store(&dir)
            .continue_run("20260301-123456789012-ap-northeast-1-01")
            .await
            .err()
            .expect("no checkpoint");
        assert!(matches!(e, StoreError::NoCheckpoint { .. }), "{e}");
        assert!(e.to_string().contains("only a suspended run"), "{e}");
    }
}
