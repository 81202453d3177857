//! Claims and the commit chain: how several writers share one store without losing a run.
//!
//! Two objects are only ever *created*, never overwritten (`PutMode::Create`, which S3's
//! `If-None-Match: *` and the local filesystem both honour), so that concurrent writers serialise
//! on them instead of overwriting each other:
//! - a **claim** `_patchtrail/claims/<run_id>.json` reserves a run id before any data is written;
//!   claims are never reused, so two collects never write the same object names;
//! - a **chain entry** `_patchtrail/chain/<sequence>.json` commits a manifest. Entries are numbered
//!   1, 2, 3…; a writer appends entry N+1 naming its manifest, whose `previous` is entry N's
//!   manifest. When another writer took N+1 first, the loser re-reads the head, rewrites its own
//!   (not yet committed) manifest and tries N+2. The chain is therefore linear by construction.
//!
//! A manifest is committed exactly when the chain entry of its `sequence` names it with its SHA-256.

use crate::history::sha256_hex;
use crate::{Store, StoreError};
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use object_store::{PutMode, PutOptions};
use serde::{Deserialize, Serialize};

pub const CHAIN_PREFIX: &str = "_patchtrail/chain/";
pub const CLAIMS_PREFIX: &str = "_patchtrail/claims/";
/// The sequence of the last commit a writer saw: where the search for the head starts.
const HEAD_HINT: &str = "_patchtrail/chain-head";

/// How many times a writer re-reads the head after losing a race before it gives up.
const APPEND_ATTEMPTS: u32 = 64;
/// Tries of one create-only write that fails for a transient reason (a 503, a timeout).
const CREATE_ATTEMPTS: u32 = 6;

/// One link of the commit chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainEntry {
    pub sequence: u64,
    pub run_id: String,
    pub manifest_key: String,
    pub manifest_sha256: String,
    pub committed_at: DateTime<Utc>,
}

/// What a claim records: who reserved the run id, and when.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claim {
    pub run_id: String,
    pub claimed_at: DateTime<Utc>,
    pub host: String,
    pub pid: u32,
}

pub fn chain_key(sequence: u64) -> String {
    format!("{CHAIN_PREFIX}{sequence:012}.json")
}

/// The sequence number of a chain key, if it is one.
pub fn chain_sequence(key: &str) -> Option<u64> {
    key.strip_prefix(CHAIN_PREFIX)?
        .strip_suffix(".json")?
        .parse()
        .ok()
}

pub fn claim_key(run_id: &str) -> String {
    format!("{CLAIMS_PREFIX}{run_id}.json")
}

/// The run id a claim key reserves.
pub fn claimed_run_id(key: &str) -> Option<&str> {
    key.strip_prefix(CLAIMS_PREFIX)?.strip_suffix(".json")
}

impl Store {
    /// Creates `key` only if it does not exist: `Ok(false)` when someone else has it.
    ///
    /// A transient failure is retried; when a retry then finds the object, it reads it back: if
    /// it holds exactly `bytes`, the earlier attempt did create it (its answer was lost) and this
    /// is ours. The bytes of claims and chain entries carry a time to the nanosecond, so two
    /// writers never hold equal bytes.
    pub async fn put_if_absent(&self, key: &str, bytes: Vec<u8>) -> Result<bool, StoreError> {
        let mut attempt = 0;
        loop {
            let options = PutOptions {
                mode: PutMode::Create,
                ..PutOptions::default()
            };
            match self
                .objects
                .put_opts(&self.path(key), bytes.clone().into(), options)
                .await
            {
                Ok(_) => return Ok(true),
                Err(object_store::Error::AlreadyExists { .. }) if attempt == 0 => return Ok(false),
                Err(object_store::Error::AlreadyExists { .. }) => {
                    return Ok(self
                        .get(key)
                        .await
                        .is_ok_and(|found| found[..] == bytes[..]));
                }
                Err(e) => {
                    let error = StoreError::classify(self.url(), "create", key, e);
                    attempt += 1;
                    if !error.is_retryable() || attempt >= CREATE_ATTEMPTS {
                        return Err(error);
                    }
                    tracing::debug!(key, attempt, error = %error, "create-only write failed; trying again");
                    tokio::time::sleep(std::time::Duration::from_millis(50 << attempt.min(5)))
                        .await;
                }
            }
        }
    }

    /// Lists the runs, writes a probe object and reads it back: what `doctor` checks before a
    /// collect. Returns how many runs the store names.
    pub async fn probe(&self) -> Result<usize, StoreError> {
        let (refs, _) = self.run_refs().await?;
        let key = "_patchtrail/doctor-probe";
        let body = format!("patchtrail doctor probe {}", Utc::now().to_rfc3339()).into_bytes();
        self.put(key, body.clone()).await?;
        let back = self.get(key).await?;
        if back[..] != body[..] {
            return Err(StoreError::Object {
                url: self.url().to_string(),
                operation: "read",
                key: key.into(),
                reason: "the probe read back differs from what was written".into(),
            });
        }
        Ok(refs.len())
    }

    /// Reserves the first free run id among `candidates` (tried in order).
    pub(crate) async fn claim(
        &self,
        candidates: impl IntoIterator<Item = String>,
    ) -> Result<String, StoreError> {
        for run_id in candidates {
            let bytes = self.claim_bytes(&run_id)?;
            if self.put_if_absent(&claim_key(&run_id), bytes).await? {
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

    /// What a claim of `name` records: who made it, and when.
    pub(crate) fn claim_bytes(&self, name: &str) -> Result<Vec<u8>, StoreError> {
        let claim = Claim {
            run_id: name.to_string(),
            claimed_at: Utc::now(),
            host: std::env::var("HOSTNAME").unwrap_or_default(),
            pid: std::process::id(),
        };
        serde_json::to_vec(&claim).map_err(|e| StoreError::Encode {
            what: "claim".into(),
            reason: e.to_string(),
        })
    }

    /// Run ids ever claimed in this store.
    pub async fn claimed_runs(&self) -> Result<Vec<String>, StoreError> {
        self.claimed_runs_from("").await
    }

    /// Run ids claimed that sort at or after `from` (run ids start with their day, so a stem
    /// lists only that day's claims and later ones: a listing that does not grow with history).
    pub async fn claimed_runs_from(&self, from: &str) -> Result<Vec<String>, StoreError> {
        let prefix = self.path(CLAIMS_PREFIX);
        let offset = self.path(&format!("{CLAIMS_PREFIX}{from}"));
        let found: Vec<object_store::ObjectMeta> = self
            .objects
            .list_with_offset(Some(&prefix), &offset)
            .try_collect()
            .await
            .map_err(|e| StoreError::classify(self.url(), "list", CLAIMS_PREFIX, e))?;
        Ok(found
            .into_iter()
            .filter_map(|m| claimed_run_id(&self.key_of(&m.location)).map(str::to_string))
            .filter(|id| id.as_str() >= from)
            .collect())
    }

    /// Sequence numbers of the chain entries present (unsorted gaps are `verify`'s business).
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

    pub async fn chain_entry(
        &self,
        sequence: u64,
    ) -> Result<Option<(ChainEntry, String)>, StoreError> {
        let key = chain_key(sequence);
        match self.get(&key).await {
            Ok(bytes) => {
                let entry: ChainEntry =
                    serde_json::from_slice(&bytes).map_err(|e| StoreError::Object {
                        url: self.url().to_string(),
                        operation: "read",
                        key: key.clone(),
                        reason: format!("not a chain entry: {e}"),
                    })?;
                Ok(Some((entry, sha256_hex(&bytes))))
            }
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The newest chain entry, if any. The listing starts at the sequence the head hint names
    /// (written after each commit, possibly stale, never trusted alone), so it reads a few names
    /// however long the chain is.
    pub async fn chain_head(&self) -> Result<Option<ChainEntry>, StoreError> {
        let hint = match self.get(HEAD_HINT).await {
            Ok(bytes) => std::str::from_utf8(&bytes)
                .ok()
                .and_then(|t| t.trim().parse::<u64>().ok())
                .unwrap_or(0),
            Err(StoreError::NotFound { .. }) => 0,
            Err(e) => return Err(e),
        };
        let prefix = self.path(CHAIN_PREFIX);
        let offset = self.path(&chain_key(hint.saturating_sub(1)));
        let found: Vec<object_store::ObjectMeta> = self
            .objects
            .list_with_offset(Some(&prefix), &offset)
            .try_collect()
            .await
            .map_err(|e| StoreError::classify(self.url(), "list", CHAIN_PREFIX, e))?;
        let newest = found
            .iter()
            .filter_map(|m| chain_sequence(&self.key_of(&m.location)))
            .max();
        match newest {
            Some(seq) => Ok(self.chain_entry(seq).await?.map(|(e, _)| e)),
            // A hint past the end (entries removed): list from the start.
            None if hint > 1 => match self.chain_sequences().await?.last() {
                Some(&seq) => Ok(self.chain_entry(seq).await?.map(|(e, _)| e)),
                None => Ok(None),
            },
            None => Ok(None),
        }
    }

    /// Commits a manifest: writes it (as built by `build` for the given head), then appends the
    /// chain entry naming it; on a lost race, rebuilds against the new head and tries again.
    pub(crate) async fn append_to_chain(
        &self,
        run_id: &str,
        manifest_key: &str,
        build: impl Fn(u64, Option<&ChainEntry>) -> Result<Vec<u8>, StoreError>,
    ) -> Result<(ChainEntry, Vec<u8>), StoreError> {
        for attempt in 0..APPEND_ATTEMPTS {
            let head = self.chain_head().await?;
            if let Some(h) = head
                .as_ref()
                .filter(|h| h.run_id == run_id && h.manifest_key == manifest_key)
            {
                // Another process committed this very run: a continued run's last step, taken
                // again by a process that found it complete (`checkpoint`). Never twice.
                let bytes = self.get(manifest_key).await?;
                return Ok((h.clone(), bytes.to_vec()));
            }
            let sequence = head.as_ref().map_or(1, |h| h.sequence + 1);
            let bytes = build(sequence, head.as_ref())?;
            self.put(manifest_key, bytes.clone()).await?;
            let entry = ChainEntry {
                sequence,
                run_id: run_id.to_string(),
                manifest_key: manifest_key.to_string(),
                manifest_sha256: sha256_hex(&bytes),
                committed_at: Utc::now(),
            };
            let entry_bytes = serde_json::to_vec(&entry).map_err(|e| StoreError::Encode {
                what: "chain entry".into(),
                reason: e.to_string(),
            })?;
            if self
                .put_if_absent(&chain_key(sequence), entry_bytes)
                .await?
            {
                if let Err(e) = self.put(HEAD_HINT, sequence.to_string().into_bytes()).await {
                    tracing::debug!(error = %e, "could not update the chain head hint (only a shortcut)");
                }
                return Ok((entry, bytes));
            }
            tracing::info!(
                run_id,
                sequence,
                attempt,
                "another run committed first; chaining after it"
            );
            tokio::time::sleep(std::time::Duration::from_millis(
                5 + u64::from(attempt) * 7 % 50,
            ))
            .await;
        }
        Err(StoreError::Contended {
            url: self.url().to_string(),
            what: "a place in the commit chain".into(),
        })
    }
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
        assert_eq!(chain_sequence("_patchtrail/chain/x.json"), None);
    }

    #[tokio::test]
    async fn create_only_objects_are_never_overwritten() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store =
            Store::open(dir.path().to_str().expect("utf8"), &Default::default()).expect("store");
        assert!(
            store
                .put_if_absent("a", b"1".to_vec())
                .await
                .expect("first")
        );
        assert!(
            !store
                .put_if_absent("a", b"2".to_vec())
                .await
                .expect("second")
        );
        assert_eq!(&store.get("a").await.expect("get")[..], b"1");
    }
}
