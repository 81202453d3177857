//! The committed history: which runs exist (from object names alone), and the manifests of the
//! runs a reader needs, fetched concurrently.
//!
//! Manifest names carry the run's date, account and region (`runs/year=/month=/day=/<run_id>.json`),
//! so choosing the snapshots in force at an instant needs only a listing and the manifests of the
//! latest candidate day per scope: the cost of a report follows the runs it reads, not the age of
//! the store. A manifest counts only when its chain entry names it (see [`crate::chain`]).

use crate::chain::ChainEntry;
use crate::layout::MANIFEST_PREFIXES;
use crate::{Store, StoreError};
use chrono::{DateTime, NaiveDate, Utc};
use futures::{StreamExt, TryStreamExt, stream};
use object_store::ObjectStoreExt;
use patchtrail_model::RunManifest;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};

/// Objects fetched at once when reading manifests.
const FETCH_CONCURRENCY: usize = 16;

/// A manifest as stored: its key, the SHA-256 of its bytes, and its content.
#[derive(Debug, Clone)]
pub struct StoredManifest {
    pub key: String,
    pub sha256: String,
    pub manifest: RunManifest,
}

/// A run known by its manifest's name only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRef {
    pub key: String,
    pub run_id: String,
    pub date: NaiveDate,
    pub account_id: String,
    pub region: String,
}

impl RunRef {
    /// Parses `[_patchtrail/]runs/year=/month=/day=/<YYYYMMDD>-<account>-<region>-<seq>.json`.
    pub fn parse(key: &str) -> Option<RunRef> {
        let rest = MANIFEST_PREFIXES.iter().find_map(|p| key.strip_prefix(p))?;
        let run_id = rest.rsplit('/').next()?.strip_suffix(".json")?;
        let (day, rest) = run_id.split_once('-')?;
        let date = NaiveDate::parse_from_str(day, "%Y%m%d").ok()?;
        let (scope, seq) = rest.rsplit_once('-')?;
        seq.parse::<u32>().ok()?;
        let (account, region) = scope.split_once('-')?;
        Some(RunRef {
            key: key.to_string(),
            run_id: run_id.to_string(),
            date,
            account_id: account.into(),
            region: region.into(),
        })
    }

    fn scope(&self) -> (&str, &str) {
        (&self.account_id, &self.region)
    }
}

/// Which committed runs a reader needs.
#[derive(Debug, Clone)]
pub enum Selection {
    /// Every run (verify, ad-hoc SQL, timelines).
    All,
    /// Per scope, the run in force at each instant (§5.2 of docs/semantics.md).
    AsOf(Vec<DateTime<Utc>>),
    /// Runs whose snapshot time lies in the range, both ends included.
    Range(Option<DateTime<Utc>>, Option<DateTime<Utc>>),
}

/// Which scopes a reader keeps: the runs of these accounts and these regions (an empty list
/// keeps any). Scopes are read from run names, so other scopes' manifests are never fetched.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeFilter {
    pub accounts: Vec<String>,
    pub regions: Vec<String>,
}

impl ScopeFilter {
    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty() && self.regions.is_empty()
    }

    pub fn admits(&self, account_id: &str, region: &str) -> bool {
        (self.accounts.is_empty() || self.accounts.iter().any(|a| a == account_id))
            && (self.regions.is_empty() || self.regions.iter().any(|r| r == region))
    }
}

/// What reading the history found.
#[derive(Debug, Default)]
pub struct History {
    /// The selected committed runs, oldest first (by snapshot time, then run id).
    pub runs: Vec<StoredManifest>,
    /// Every committed-looking run by name (the selection came from these).
    pub refs: Vec<RunRef>,
    /// Objects under a manifest folder that are not valid manifests: `(key, why)`.
    pub unreadable: Vec<(String, String)>,
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A manifest read and checked against the chain: `Ok(None)` when no chain entry commits it.
pub(crate) type Checked = Result<Option<StoredManifest>, String>;

impl Store {
    /// Keys (relative to the root) of every object under `prefix`.
    pub async fn list_keys(&self, prefix: &str) -> Result<Vec<(String, u64)>, StoreError> {
        let path = self.path(prefix);
        let found: Vec<object_store::ObjectMeta> = self
            .objects
            .list(Some(&path))
            .try_collect()
            .await
            .map_err(|e| StoreError::classify(self.url(), "list", prefix, e))?;
        Ok(found
            .into_iter()
            .map(|m| (self.key_of(&m.location), m.size))
            .collect())
    }

    /// Keys, sizes and write times of every object under `prefix`.
    pub async fn list_meta(
        &self,
        prefix: &str,
    ) -> Result<Vec<(String, u64, DateTime<Utc>)>, StoreError> {
        let path = self.path(prefix);
        let found: Vec<object_store::ObjectMeta> = self
            .objects
            .list(Some(&path))
            .try_collect()
            .await
            .map_err(|e| StoreError::classify(self.url(), "list", prefix, e))?;
        Ok(found
            .into_iter()
            .map(|m| (self.key_of(&m.location), m.size, m.last_modified))
            .collect())
    }

    /// Objects of the seed layout (`year=…/month=…/day=…/instanceid=…/…`) at the root, with
    /// their write times; one listing of the root's folders first, so other layouts pay nothing.
    pub async fn seed_layout_pages(&self) -> Result<Vec<(String, u64, DateTime<Utc>)>, StoreError> {
        let top = self
            .objects
            .list_with_delimiter(Some(&self.root))
            .await
            .map_err(|e| StoreError::classify(self.url(), "list", "", e))?;
        let mut out = Vec::new();
        for dir in top.common_prefixes {
            let key = self.key_of(&dir);
            if key.starts_with("year=") {
                out.extend(self.list_meta(&key).await?);
            }
        }
        Ok(out)
    }

    pub async fn get(&self, key: &str) -> Result<bytes::Bytes, StoreError> {
        let result = self
            .objects
            .get(&self.path(key))
            .await
            .map_err(|e| StoreError::classify(self.url(), "read", key, e))?;
        result
            .bytes()
            .await
            .map_err(|e| StoreError::classify(self.url(), "read", key, e))
    }

    /// Reads several objects at once, in the order given.
    pub async fn get_many(&self, keys: &[String]) -> Result<Vec<bytes::Bytes>, StoreError> {
        stream::iter(keys)
            .map(|k| self.get(k))
            .buffered(FETCH_CONCURRENCY)
            .try_collect()
            .await
    }

    /// The size of an object, or `None` when it is absent.
    pub async fn size_of(&self, key: &str) -> Result<Option<u64>, StoreError> {
        match self.objects.head(&self.path(key)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(StoreError::classify(self.url(), "read", key, e)),
        }
    }

    pub async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        self.objects
            .put(&self.path(key), bytes.into())
            .await
            .map(|_| ())
            .map_err(|e| StoreError::classify(self.url(), "write", key, e))
    }

    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.objects
            .delete(&self.path(key))
            .await
            .map_err(|e| StoreError::classify(self.url(), "delete", key, e))
    }

    /// Every run by its manifest's name, and the names in manifest folders that are not runs.
    pub async fn run_refs(&self) -> Result<(Vec<RunRef>, Vec<(String, String)>), StoreError> {
        let mut refs = Vec::new();
        let mut unreadable = Vec::new();
        for prefix in MANIFEST_PREFIXES {
            for (key, _) in self.list_keys(prefix).await? {
                match RunRef::parse(&key) {
                    Some(r) => refs.push(r),
                    None => unreadable.push((
                        key,
                        "not a run manifest name (runs/year=…/<run_id>.json)".into(),
                    )),
                }
            }
        }
        Ok((refs, unreadable))
    }

    /// Reads one manifest and whether the chain commits it.
    pub(crate) async fn checked_manifest(&self, key: &str) -> Result<Checked, StoreError> {
        let bytes = match self.get(key).await {
            Ok(b) => b,
            Err(StoreError::NotFound { .. }) => return Ok(Ok(None)),
            Err(e) => return Err(e),
        };
        let manifest: RunManifest = match serde_json::from_slice(&bytes) {
            Ok(m) => m,
            Err(e) => return Ok(Err(format!("not a patchtrail manifest: {e}"))),
        };
        let sha256 = sha256_hex(&bytes);
        let committed = match self.chain_entry(manifest.sequence).await? {
            Some((
                ChainEntry {
                    manifest_key,
                    manifest_sha256,
                    ..
                },
                _,
            )) => manifest_key == key && manifest_sha256 == sha256,
            None => false,
        };
        Ok(Ok(committed.then(|| StoredManifest {
            key: key.to_string(),
            sha256,
            manifest,
        })))
    }

    /// Reads the manifests of `refs` concurrently, keeping the committed ones.
    async fn load_refs(
        &self,
        refs: &[&RunRef],
        cache: &mut HashMap<String, Checked>,
    ) -> Result<(), StoreError> {
        let todo: Vec<&str> = refs
            .iter()
            .map(|r| r.key.as_str())
            .filter(|k| !cache.contains_key(*k))
            .collect();
        let found: Vec<(String, Checked)> = stream::iter(todo)
            .map(|key| async move {
                Ok::<_, StoreError>((key.to_string(), self.checked_manifest(key).await?))
            })
            .buffer_unordered(FETCH_CONCURRENCY)
            .try_collect()
            .await?;
        cache.extend(found);
        Ok(())
    }

    /// Every committed run, oldest first.
    pub async fn history(&self) -> Result<History, StoreError> {
        self.select_history(&Selection::All, &ScopeFilter::default())
            .await
    }

    /// The committed runs of the scopes `scopes` admits that `selection` asks for, oldest
    /// first, reading only the manifests needed.
    pub async fn select_history(
        &self,
        selection: &Selection,
        scopes: &ScopeFilter,
    ) -> Result<History, StoreError> {
        let (mut refs, mut unreadable) = self.run_refs().await?;
        refs.retain(|r| scopes.admits(&r.account_id, &r.region));
        let mut cache: HashMap<String, Checked> = HashMap::new();
        let mut chosen: BTreeMap<String, StoredManifest> = BTreeMap::new();
        match selection {
            Selection::All => {
                self.load_refs(&refs.iter().collect::<Vec<_>>(), &mut cache)
                    .await?;
                for r in &refs {
                    if let Some(Ok(Some(m))) = cache.get(&r.key) {
                        chosen.insert(r.key.clone(), m.clone());
                    }
                }
            }
            Selection::Range(from, to) => {
                let wanted: Vec<&RunRef> = refs
                    .iter()
                    .filter(|r| {
                        from.is_none_or(|f| r.date >= f.date_naive())
                            && to.is_none_or(|t| r.date <= t.date_naive())
                    })
                    .collect();
                self.load_refs(&wanted, &mut cache).await?;
                for r in wanted {
                    if let Some(Ok(Some(m))) = cache.get(&r.key)
                        && from.is_none_or(|f| m.manifest.snapshot_time >= f)
                        && to.is_none_or(|t| m.manifest.snapshot_time <= t)
                    {
                        chosen.insert(r.key.clone(), m.clone());
                    }
                }
            }
            Selection::AsOf(instants) => {
                let mut scopes: BTreeMap<(&str, &str), Vec<&RunRef>> = BTreeMap::new();
                for r in &refs {
                    scopes.entry(r.scope()).or_default().push(r);
                }
                for instant in instants {
                    for candidates in scopes.values() {
                        if let Some(m) = self.in_force(candidates, *instant, &mut cache).await? {
                            chosen.insert(m.key.clone(), m);
                        }
                    }
                }
            }
        }
        for (key, checked) in &cache {
            if let Err(why) = checked {
                unreadable.push((key.clone(), why.clone()));
            }
        }
        let mut runs: Vec<StoredManifest> = chosen.into_values().collect();
        runs.sort_by(|a, b| {
            (a.manifest.snapshot_time, &a.manifest.run_id)
                .cmp(&(b.manifest.snapshot_time, &b.manifest.run_id))
        });
        unreadable.sort();
        Ok(History {
            runs,
            refs,
            unreadable,
        })
    }

    /// The run of one scope in force at `instant`: the latest day at or before it first, then
    /// earlier days only when that day holds no committed run old enough.
    async fn in_force(
        &self,
        candidates: &[&RunRef],
        instant: DateTime<Utc>,
        cache: &mut HashMap<String, Checked>,
    ) -> Result<Option<StoredManifest>, StoreError> {
        let mut days: BTreeMap<NaiveDate, Vec<&RunRef>> = BTreeMap::new();
        for r in candidates.iter().filter(|r| r.date <= instant.date_naive()) {
            days.entry(r.date).or_default().push(r);
        }
        for (_, day) in days.iter().rev() {
            self.load_refs(day, cache).await?;
            let best = day
                .iter()
                .filter_map(|r| match cache.get(&r.key) {
                    Some(Ok(Some(m))) if m.manifest.snapshot_time <= instant => Some(m),
                    _ => None,
                })
                .max_by(|a, b| {
                    (a.manifest.snapshot_time, &a.manifest.run_id)
                        .cmp(&(b.manifest.snapshot_time, &b.manifest.run_id))
                });
            if let Some(m) = best {
                return Ok(Some(m.clone()));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_refs_come_from_names() {
        let r = RunRef::parse(
            "runs/year=2026/month=03/day=01/20260301-123456789012-ap-northeast-1-03.json",
        )
        .expect("run");
        assert_eq!(r.run_id, "20260301-123456789012-ap-northeast-1-03");
        assert_eq!(
            (r.account_id.as_str(), r.region.as_str()),
            ("123456789012", "ap-northeast-1")
        );
        assert_eq!(r.date.to_string(), "2026-03-01");
        assert!(
            RunRef::parse(
                "_patchtrail/runs/year=2026/month=03/day=01/20260301-1-us-east-1-01.json"
            )
            .is_some()
        );
        assert!(RunRef::parse("runs/year=2026/month=03/day=01/notes.json").is_none());
    }
}
