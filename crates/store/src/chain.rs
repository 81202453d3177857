//! Claims and the commit chain: how several writers share one store, and a run commits exactly
//! once (docs/commit-protocol.md has the protocol, its invariants and why each write is safe).
//!
//! Everything here is created, never overwritten ([`Store::create`]):
//! - a **claim** `_patchtrail/claims/<run_id>.json` reserves a run id before any data is written,
//!   so two collects never write the same object names;
//! - a **chain entry** `_patchtrail/chain/<sequence>.json` commits a run: entries are numbered
//!   1, 2, 3…, and entry N+1 is created only by a writer that has read entry N, so the chain is
//!   linear and has no gaps;
//! - the run's **manifest**, created only after its entry, holding its place (`sequence`) and the
//!   previous entry's manifest (`previous`), so the manifests form a hash chain; a *pending* copy
//!   `_patchtrail/pending/<run_id>/<sequence>.json` is created before the entry, so that whoever
//!   finds the entry without its manifest (the committer died in between) can recreate it.
//!
//! A writer walks the chain forward from a *floor* (an entry it knows does not name its run) and
//! reads each entry by key: one that names its run means the run is committed already (by an
//! earlier try whose answer was lost, or by another process finishing the same suspended run);
//! the first free place is where it commits. Hence a run is committed at most once, whatever the
//! interleaving. Only `_patchtrail/chain-head`, a hint of where the chain ends, is overwritten.

use crate::history::sha256_hex;
use crate::objects::Created;
use crate::{Store, StoreError};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub const CHAIN_PREFIX: &str = "_patchtrail/chain/";
pub const CLAIMS_PREFIX: &str = "_patchtrail/claims/";
pub const PENDING_PREFIX: &str = "_patchtrail/pending/";
/// The sequence of the newest commit a writer knows of: where the search for the head starts,
/// and how `verify` tells that entries at the end were removed.
pub const HEAD_HINT: &str = "_patchtrail/chain-head";
/// Where the create-only probe races its pair of creates: in the chain's own folder, so that a
/// store honouring `If-None-Match` on some keys only is caught (never a chain entry's name).
pub const CREATE_ONLY_PROBE_PREFIX: &str = "_patchtrail/chain/create-only-probe-";

/// Places in the chain a writer may find taken, one after another, before it gives up.
const LOST_PLACES: u32 = 100_000;

/// One link of the commit chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainEntry {
    pub sequence: u64,
    pub run_id: String,
    pub manifest_key: String,
    pub manifest_sha256: String,
    pub committed_at: DateTime<Utc>,
}

impl ChainEntry {
    fn names(&self, run_id: &str, manifest_key: &str) -> bool {
        self.run_id == run_id && self.manifest_key == manifest_key
    }
}

/// What a claim records: who reserved the run id, and when.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claim {
    pub run_id: String,
    pub claimed_at: DateTime<Utc>,
    pub host: String,
    pub pid: u32,
}

/// A chain entry as read: the entry and the SHA-256 of its bytes (the head witness, when it is
/// the newest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadEntry {
    pub entry: ChainEntry,
    pub sha256: String,
}

impl ReadEntry {
    /// `<sequence>:<sha256>`: what a user keeps elsewhere and gives `verify --expect-head`.
    pub fn witness(&self) -> String {
        format!("{}:{}", self.entry.sequence, self.sha256)
    }
}

pub fn chain_key(sequence: u64) -> String {
    format!("{CHAIN_PREFIX}{sequence:012}.json")
}

/// The sequence number of a chain key, if it is one.
pub fn chain_sequence(key: &str) -> Option<u64> {
    let digits = key.strip_prefix(CHAIN_PREFIX)?.strip_suffix(".json")?;
    (digits.len() == 12 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
        .filter(|&s| s > 0)
}

/// Where a committer keeps the manifest it builds for place `sequence` while it creates the
/// entry: what a manifest is recreated from when its committer dies between the two writes.
pub fn pending_key(run_id: &str, sequence: u64) -> String {
    format!("{PENDING_PREFIX}{run_id}/{sequence:012}.json")
}

pub fn claim_key(run_id: &str) -> String {
    format!("{CLAIMS_PREFIX}{run_id}.json")
}

/// The run id a claim key reserves.
pub fn claimed_run_id(key: &str) -> Option<&str> {
    key.strip_prefix(CLAIMS_PREFIX)?.strip_suffix(".json")
}

impl Store {
    /// Reserves the first free run id among `candidates` (tried in order).
    pub(crate) async fn claim(
        &self,
        candidates: impl IntoIterator<Item = String>,
    ) -> Result<String, StoreError> {
        for run_id in candidates {
            let bytes = self.claim_bytes(&run_id)?;
            if self.create(&claim_key(&run_id), bytes).await? == Created::Written {
                return Ok(run_id);
            }
            tracing::debug!(
                run_id,
                "run id already claimed by another writer; trying the next"
            );
        }
        Err(StoreError::Contended {
            url: self.url().to_string(),
            what: "a free run id".into(),
        })
    }

    /// What a claim of `name` records: who made it, and when (to the nanosecond, so that no two
    /// claims hold equal bytes).
    pub(crate) fn claim_bytes(&self, name: &str) -> Result<Vec<u8>, StoreError> {
        let claim = Claim {
            run_id: name.to_string(),
            claimed_at: Utc::now(),
            host: std::env::var("HOSTNAME").unwrap_or_default(),
            pid: std::process::id(),
        };
        encode("claim", &claim)
    }

    /// Run ids ever claimed in this store.
    pub async fn claimed_runs(&self) -> Result<Vec<String>, StoreError> {
        self.claimed_runs_from("").await
    }

    /// Run ids claimed that sort at or after `from` (run ids start with their day, so a stem
    /// lists only that day's claims and later ones: a listing that does not grow with history).
    pub async fn claimed_runs_from(&self, from: &str) -> Result<Vec<String>, StoreError> {
        let offset = format!("{CLAIMS_PREFIX}{from}");
        Ok(self
            .list(CLAIMS_PREFIX, Some(&offset))
            .await?
            .into_iter()
            .filter_map(|o| claimed_run_id(&o.key).map(str::to_string))
            .filter(|id| id.as_str() >= from)
            .collect())
    }

    /// Sequence numbers of the chain entries present, sorted (gaps are `verify`'s business).
    pub async fn chain_sequences(&self) -> Result<Vec<u64>, StoreError> {
        let mut seqs: Vec<u64> = self
            .list_keys(CHAIN_PREFIX)
            .await?
            .into_iter()
            .filter_map(|(k, _)| chain_sequence(&k))
            .collect();
        seqs.sort_unstable();
        Ok(seqs)
    }

    /// Entry `sequence`, if present; an entry that is not readable as one (empty, cut short, not
    /// JSON) is [`StoreError::Damaged`].
    pub async fn chain_entry(&self, sequence: u64) -> Result<Option<ReadEntry>, StoreError> {
        let key = chain_key(sequence);
        let Some(bytes) = self.get_opt(&key).await? else {
            return Ok(None);
        };
        parse_entry(&bytes, sequence)
            .map(Some)
            .map_err(|why| self.damaged(format!("chain entry {key} {why}")))
    }

    /// The sequence the head hint names (0 when there is none or it is not a number).
    pub async fn head_hint(&self) -> Result<u64, StoreError> {
        Ok(self
            .get_opt(HEAD_HINT)
            .await?
            .and_then(|b| std::str::from_utf8(&b).ok()?.trim().parse().ok())
            .unwrap_or(0))
    }

    /// The newest chain entry, if any. The listing starts just before the sequence the head hint
    /// names, so it reads a few names however long the chain is. A hint past the end means that
    /// entries at the end were removed: the chain is truncated, and that is [`StoreError::Damaged`].
    pub async fn chain_head(&self) -> Result<Option<ReadEntry>, StoreError> {
        let hint = self.head_hint().await?;
        let offset = chain_key(hint.saturating_sub(1));
        let newest = self
            .list(CHAIN_PREFIX, (hint > 1).then_some(offset.as_str()))
            .await?
            .iter()
            .filter_map(|o| chain_sequence(&o.key))
            .max();
        match newest {
            Some(seq) if seq >= hint => self.chain_entry(seq).await,
            _ if hint > 0 => Err(self.damaged(format!(
                "{HEAD_HINT} names entry {hint}, but the chain ends before it (entries were removed: the chain is truncated)"
            ))),
            _ => Ok(None),
        }
    }

    /// Raises the head hint to `sequence` (a later commit may have raised it further already;
    /// a shortcut only, so failing to write it is not an error).
    async fn raise_head_hint(&self, sequence: u64) {
        match self.head_hint().await {
            Ok(hint) if hint >= sequence => {}
            _ => {
                if let Err(e) = self.put(HEAD_HINT, sequence.to_string().into_bytes()).await {
                    tracing::debug!(error = %e, "could not update the chain head hint (only a shortcut)");
                }
            }
        }
    }

    /// Commits run `run_id` as `manifest_key`: walks the chain forward from `floor` (an entry,
    /// or the chain's start, at or after which no entry names the run), and at the first free
    /// place creates the manifest `build` makes for it as a pending copy, the entry naming it,
    /// then the manifest. Finding the run already committed on the way answers that commit; an
    /// entry walked over whose manifest is missing (its committer died between the two writes)
    /// gets it back from its pending copy. See the module docs.
    pub(crate) async fn commit_to_chain(
        &self,
        run_id: &str,
        manifest_key: &str,
        floor: Option<ReadEntry>,
        build: impl Fn(u64, Option<&ChainEntry>) -> Result<Vec<u8>, StoreError>,
    ) -> Result<(ReadEntry, Vec<u8>), StoreError> {
        let mut previous = floor.map(|f| f.entry);
        if let Some(floor) = &previous {
            self.heal_manifest(floor).await?;
        }
        let mut lost = 0;
        loop {
            let sequence = next_sequence(previous.as_ref())?;
            let manifest = build(sequence, previous.as_ref())?;
            let found = match self.chain_entry(sequence).await? {
                Some(found) => found,
                None => {
                    let pending = pending_key(run_id, sequence);
                    let manifest = match self.create(&pending, manifest.clone()).await? {
                        Created::Written => manifest.clone(),
                        Created::Exists(held) => {
                            self.adopt_pending(&pending, held, run_id, sequence)?
                        }
                    };
                    let entry = ChainEntry {
                        sequence,
                        run_id: run_id.to_string(),
                        manifest_key: manifest_key.to_string(),
                        manifest_sha256: sha256_hex(&manifest),
                        committed_at: Utc::now(),
                    };
                    let entry_bytes = encode("chain entry", &entry)?;
                    let created = self
                        .create_confirmed(&chain_key(sequence), entry_bytes.clone())
                        .await?;
                    if created == Created::Written {
                        self.create_manifest(&entry, manifest.clone()).await?;
                        self.raise_head_hint(sequence).await;
                    }
                    self.forget_pending(&pending).await;
                    match created {
                        Created::Written => {
                            let sha256 = sha256_hex(&entry_bytes);
                            return Ok((ReadEntry { entry, sha256 }, manifest));
                        }
                        Created::Exists(bytes) => parse_entry(&bytes, sequence).map_err(|why| {
                            self.damaged(format!("chain entry {} {why}", chain_key(sequence)))
                        })?,
                    }
                }
            };
            if found.entry.names(run_id, manifest_key) {
                // Committed already: by an earlier try of this process whose answer was lost, or
                // by another process completing the same run. Its manifest is made for this place.
                self.create_manifest(&found.entry, manifest.clone()).await?;
                let bytes = self.get(manifest_key).await?;
                return Ok((found, bytes.to_vec()));
            }
            self.heal_manifest(&found.entry).await?;
            lost += 1;
            if lost >= LOST_PLACES {
                return Err(StoreError::Contended {
                    url: self.url().to_string(),
                    what: "a place in the commit chain".into(),
                });
            }
            tracing::debug!(
                run_id,
                sequence,
                "another run committed at this place; chaining after it"
            );
            previous = Some(found.entry);
        }
    }

    /// The manifest to commit when this run's pending copy for a place exists already with
    /// other bytes: an earlier try of the run built it (its answer lost, or its process gone
    /// before the entry) and may yet have an entry created naming it, so those bytes are the
    /// ones to commit; a copy of another run or place is damage.
    fn adopt_pending(
        &self,
        pending: &str,
        held: bytes::Bytes,
        run_id: &str,
        sequence: u64,
    ) -> Result<Vec<u8>, StoreError> {
        match serde_json::from_slice::<patchtrail_model::RunManifest>(&held) {
            Ok(m) if m.run_id == run_id && m.sequence == sequence => Ok(held.to_vec()),
            _ => Err(self.damaged(format!(
                "the pending copy {pending} holds bytes that are not run {run_id}'s manifest for that place (not patchtrail's: move it out of the store and commit again)"
            ))),
        }
    }

    /// Removes a pending manifest once its place is settled (a shortcut only: a bucket that
    /// refuses deletes keeps it, harmlessly).
    async fn forget_pending(&self, key: &str) {
        if let Err(e) = self.delete(key).await {
            tracing::debug!(key, error = %e, "could not remove a pending manifest");
        }
    }

    /// Creates the manifest `entry` commits if it is missing, from the pending copy its
    /// committer wrote before the entry (the committer died between the entry and the
    /// manifest). Returns whether the manifest is there now.
    pub(crate) async fn heal_manifest(&self, entry: &ChainEntry) -> Result<bool, StoreError> {
        if self.size_of(&entry.manifest_key).await?.is_some() {
            return Ok(true);
        }
        let pending = pending_key(&entry.run_id, entry.sequence);
        match self.get_opt(&pending).await? {
            Some(bytes) if sha256_hex(&bytes) == entry.manifest_sha256 => {
                self.create_manifest(entry, bytes.to_vec()).await?;
                tracing::info!(
                    run_id = entry.run_id,
                    sequence = entry.sequence,
                    "recreated the manifest a committer did not live to write"
                );
                self.forget_pending(&pending).await;
                Ok(true)
            }
            _ => {
                tracing::warn!(
                    run_id = entry.run_id,
                    sequence = entry.sequence,
                    "a committed run's manifest is missing and has no pending copy: run patchtrail verify"
                );
                Ok(false)
            }
        }
    }

    /// Creates the manifest `entry` commits, unless it is there with the SHA-256 the entry names.
    async fn create_manifest(&self, entry: &ChainEntry, bytes: Vec<u8>) -> Result<(), StoreError> {
        let key = &entry.manifest_key;
        let held = if sha256_hex(&bytes) == entry.manifest_sha256 {
            match self.create(key, bytes).await? {
                Created::Written => return Ok(()),
                Created::Exists(other) => Some(other),
            }
        } else {
            // Committed by a process that built other bytes (another patchtrail version): its
            // manifest is there already, or its pending copy is.
            match self.get_opt(key).await? {
                Some(held) => Some(held),
                None => match self
                    .get_opt(&pending_key(&entry.run_id, entry.sequence))
                    .await?
                {
                    Some(p) if sha256_hex(&p) == entry.manifest_sha256 => {
                        return Box::pin(self.create_manifest(entry, p.to_vec())).await;
                    }
                    _ => None,
                },
            }
        };
        match held {
            Some(b) if sha256_hex(&b) == entry.manifest_sha256 => Ok(()),
            Some(_) => Err(self.damaged(format!(
                "manifest {key} does not hash to what chain entry {} commits",
                entry.sequence
            ))),
            None => Err(self.damaged(format!(
                "chain entry {} commits run {} but its manifest {key} is missing and has no pending copy this patchtrail can use",
                entry.sequence, entry.run_id
            ))),
        }
    }

    pub(crate) fn damaged(&self, what: String) -> StoreError {
        StoreError::Damaged {
            url: self.url().to_string(),
            what,
        }
    }
}

/// The place after `previous`, checked.
fn next_sequence(previous: Option<&ChainEntry>) -> Result<u64, StoreError> {
    match previous {
        None => Ok(1),
        Some(p) => p.sequence.checked_add(1).ok_or_else(|| StoreError::Encode {
            what: "chain entry".into(),
            reason: format!("sequence {} cannot be followed", p.sequence),
        }),
    }
}

/// An entry's bytes, checked to be entry `sequence`.
fn parse_entry(bytes: &[u8], sequence: u64) -> Result<ReadEntry, String> {
    if bytes.is_empty() {
        return Err("is empty (a crash while it was written?)".into());
    }
    let entry: ChainEntry =
        serde_json::from_slice(bytes).map_err(|e| format!("is not a chain entry ({e})"))?;
    if entry.sequence != sequence {
        return Err(format!("says it is entry {}", entry.sequence));
    }
    Ok(ReadEntry {
        entry,
        sha256: sha256_hex(bytes),
    })
}

pub(crate) fn encode(what: &str, value: &impl Serialize) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::Encode {
        what: what.into(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        assert_eq!(chain_sequence(&chain_key(42)), Some(42));
        assert_eq!(chain_key(7), "_patchtrail/chain/000000000007.json");
        assert_eq!(
            claimed_run_id(&claim_key("20260301-1-r-01")),
            Some("20260301-1-r-01")
        );
        for bad in [
            "_patchtrail/chain/x.json",
            "_patchtrail/chain/000000000000.json",
            "_patchtrail/chain/+00000000001.json",
            "_patchtrail/chain/1.json",
        ] {
            assert_eq!(chain_sequence(bad), None, "{bad}");
        }
    }

    #[tokio::test]
    async fn create_only_objects_are_never_overwritten_and_answer_by_content() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store =
            Store::open(dir.path().to_str().expect("utf8"), &Default::default()).expect("store");
        assert_eq!(
            store.create("a", b"1".to_vec()).await.expect("first"),
            Created::Written
        );
        assert_eq!(
            store.create("a", b"1".to_vec()).await.expect("same bytes"),
            Created::Written,
            "a retry of one's own write is recognised"
        );
        assert_eq!(
            store.create("a", b"2".to_vec()).await.expect("other bytes"),
            Created::Exists(bytes::Bytes::from_static(b"1"))
        );
        assert_eq!(&store.get("a").await.expect("get")[..], b"1");
    }

    #[test]
    fn entries_are_checked() {
        assert!(parse_entry(b"", 1).is_err());
        assert!(parse_entry(b"{\"sequence\":1", 1).is_err());
        let entry = ChainEntry {
            sequence: 2,
            run_id: "r".into(),
            manifest_key: "runs/r.json".into(),
            manifest_sha256: "0".repeat(64),
            committed_at: Utc::now(),
        };
        let bytes = encode("chain entry", &entry).expect("encode");
        assert!(
            parse_entry(&bytes, 3).is_err(),
            "an entry under another number"
        );
        assert_eq!(parse_entry(&bytes, 2).expect("entry").entry, entry);
    }
}
