//! The committed history: which runs exist (from object names alone), and the manifests of the
//! runs a reader needs, fetched concurrently.
//!
//! Manifest names carry the run's date, account and region (`runs/year=/month=/day=/<run_id>.json`),
//! so choosing the snapshots in force at an instant needs only a listing and the manifests of the
//! latest candidate day per scope: the cost of a report follows the runs it reads, not the age of
//! the store. A manifest counts only when its chain entry names it (see [`crate::chain`]); a run that
//! would be read but no longer matches what committed it is *damaged* (docs/semantics.md §1.5), and
//! is reported as such rather than skipped, so that no report falls back to an older run unseen.

use crate::chain::{ChainEntry, ReadEntry, pending_key};
use crate::layout::MANIFEST_PREFIXES;
use crate::objects::FETCH_CONCURRENCY;
use crate::{Store, StoreError};
use chrono::{DateTime, NaiveDate, Utc};
use futures::{StreamExt, TryStreamExt, stream};
use patchtrail_model::RunManifest;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// How young a newest entry without its manifest must be to be taken for a commit in flight
/// (a committer creates the manifest right after the entry).
const IN_FLIGHT: chrono::TimeDelta = chrono::TimeDelta::minutes(2);
/// How long a reader waits, once, for a commit in flight to write its manifest.
const IN_FLIGHT_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

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
    /// What the selection would have read but is damaged (§1.5), the chain itself (truncated,
    /// an unreadable entry) included. Readers refuse to answer over these.
    pub damaged: Vec<Damaged>,
    /// The newest chain entry, when the chain's end is intact.
    pub head: Option<ReadEntry>,
}

/// Damage a reader met: of one run, or of the chain itself (`run_id` `None`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Damaged {
    pub run_id: Option<String>,
    pub why: String,
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A manifest read and checked against the chain.
#[derive(Debug, Clone)]
pub(crate) enum Checked {
    Committed(StoredManifest),
    /// Not history at the reader's cut: absent, or committed after the cut.
    NotCommitted,
    /// Not what an entry commits: changed, unreadable, forged, or its entry was removed.
    Damaged(String),
}

impl Store {
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

    /// Reads one manifest and checks it against the chain, cut at entry `cut` (the newest entry
    /// a reader takes; `u64::MAX` when the chain's end is damaged). The manifest's own word on
    /// its place is not trusted: the entry at that place must name this key and these bytes, or
    /// the manifest is damage (edited, forged, or one of two runs a broken store let take one
    /// place); only a manifest committed after the cut is left out as not yet history.
    pub(crate) async fn checked_manifest(
        &self,
        key: &str,
        cut: u64,
    ) -> Result<Checked, StoreError> {
        let Some(bytes) = self.get_opt(key).await? else {
            return Ok(Checked::NotCommitted);
        };
        let manifest: RunManifest = match serde_json::from_slice(&bytes) {
            Ok(m) => m,
            Err(e) => {
                return Ok(Checked::Damaged(format!(
                    "manifest {key} is not readable as one ({e}): it was changed after it committed"
                )));
            }
        };
        let sha256 = sha256_hex(&bytes);
        let sequence = manifest.sequence;
        let entry = match self.chain_entry(sequence).await {
            Ok(entry) => entry,
            Err(StoreError::Damaged { what, .. }) => return Ok(Checked::Damaged(what)),
            Err(e) => return Err(e),
        };
        Ok(match entry {
            Some(e) if e.entry.manifest_key == key && e.entry.manifest_sha256 == sha256 => {
                if sequence > cut {
                    Checked::NotCommitted
                } else {
                    Checked::Committed(StoredManifest {
                        key: key.to_string(),
                        sha256,
                        manifest,
                    })
                }
            }
            Some(e) if e.entry.manifest_key == key => Checked::Damaged(format!(
                "manifest {key} no longer hashes to what chain entry {sequence} committed (it was changed after it committed)"
            )),
            Some(e) => Checked::Damaged(format!(
                "manifest {key} says it is chain entry {sequence}, which commits {} (run {}): the manifest was changed, or two runs took one place",
                e.entry.manifest_key, e.entry.run_id
            )),
            None if sequence >= 1 && sequence <= cut => Checked::Damaged(format!(
                "chain entry {sequence} that committed manifest {key} is missing"
            )),
            None => Checked::Damaged(format!(
                "manifest {key} says it is chain entry {sequence}, which does not exist: no entry commits it (it was changed, or is not patchtrail's)"
            )),
        })
    }

    /// The chain's end as a reader takes it: the newest entry whose run is whole, and the damage
    /// found on the way (a truncated or gapped chain, an unreadable newest entry, a newest entry
    /// whose manifest is missing). A commit in flight, whose entry is created but whose manifest
    /// is not written yet, is waited for once, and if it is still in flight the cut is the entry
    /// before it: a report racing a weekly collect is never told the store is damaged.
    async fn chain_cut(
        &self,
        damaged: &mut Vec<Damaged>,
    ) -> Result<(Option<ReadEntry>, u64), StoreError> {
        let chain_damage = |why: String| Damaged { run_id: None, why };
        let head = match self.chain_head().await {
            Ok(head) => head,
            Err(StoreError::Damaged { what, .. }) => {
                damaged.push(chain_damage(what));
                return Ok((None, u64::MAX));
            }
            Err(e) => return Err(e),
        };
        let Some(head) = head else {
            return Ok((None, 0));
        };
        let entries = self.chain_sequences().await?;
        let last = head.entry.sequence;
        let present = entries.iter().filter(|&&s| s <= last).count() as u64;
        if present != last {
            damaged.push(chain_damage(format!(
                "the chain ends at entry {last} but holds {present} entries up to it: entries were removed from its middle (`patchtrail verify` names them)"
            )));
            return Ok((Some(head), u64::MAX));
        }
        let manifest = head.entry.manifest_key.clone();
        if self.size_of(&manifest).await?.is_some() {
            return Ok((Some(head), last));
        }
        if self.in_flight(&head.entry).await? {
            tokio::time::sleep(IN_FLIGHT_WAIT).await;
            if self.size_of(&manifest).await?.is_some() {
                return Ok((Some(head), last));
            }
            if self.in_flight(&head.entry).await? {
                // Still in flight: read the chain as it was before that commit.
                return match self.chain_entry(last - 1).await {
                    Ok(before) => Ok((before, last - 1)),
                    Err(StoreError::Damaged { what, .. }) => {
                        damaged.push(chain_damage(what));
                        Ok((None, u64::MAX))
                    }
                    Err(e) => Err(e),
                };
            }
        }
        damaged.push(Damaged {
            run_id: Some(head.entry.run_id.clone()),
            why: format!(
                "the newest chain entry ({last}) commits manifest {manifest}, which is missing (a commit interrupted between its two writes: the next collect, or `patchtrail verify --repair`, recreates it)"
            ),
        });
        Ok((Some(head), last))
    }

    /// Whether `entry`'s commit may still be under way: its pending copy is there and the entry
    /// is younger than [`IN_FLIGHT`] (a committer writes the manifest right after the entry).
    async fn in_flight(&self, entry: &ChainEntry) -> Result<bool, StoreError> {
        let young = Utc::now().signed_duration_since(entry.committed_at) < IN_FLIGHT;
        Ok(young
            && self
                .size_of(&pending_key(&entry.run_id, entry.sequence))
                .await?
                .is_some())
    }

    /// Reads the manifests of `refs` concurrently into `cache`.
    async fn load_refs(
        &self,
        refs: &[&RunRef],
        head: u64,
        cache: &mut HashMap<String, Checked>,
    ) -> Result<(), StoreError> {
        let todo: Vec<&str> = refs
            .iter()
            .map(|r| r.key.as_str())
            .filter(|k| !cache.contains_key(*k))
            .collect();
        let found: Vec<(String, Checked)> = stream::iter(todo)
            .map(|key| async move {
                Ok::<_, StoreError>((key.to_string(), self.checked_manifest(key, head).await?))
            })
            .buffer_unordered(FETCH_CONCURRENCY)
            .try_collect()
            .await?;
        cache.extend(found);
        Ok(())
    }

    /// Every committed run, oldest first.
    pub async fn history(&self) -> Result<History, StoreError> {
        self.select_history(&Selection::All, &ScopeFilter::default(), &BTreeSet::new())
            .await
    }

    /// The committed runs of the scopes `scopes` admits that `selection` asks for, oldest
    /// first, reading only the manifests needed (and the chain's end, to know it is whole).
    /// Runs in `exclude` are taken as never committed (a reader skipping damaged runs).
    pub async fn select_history(
        &self,
        selection: &Selection,
        scopes: &ScopeFilter,
        exclude: &BTreeSet<String>,
    ) -> Result<History, StoreError> {
        let mut damaged = Vec::new();
        let (head, head_seq) = self.chain_cut(&mut damaged).await?;
        damaged.retain(|d| d.run_id.as_ref().is_none_or(|r| !exclude.contains(r)));
        let (mut refs, mut unreadable) = self.run_refs().await?;
        let manifests = refs.len() as u64;
        if damaged.is_empty() && manifests < head_seq {
            damaged.push(Damaged {
                run_id: None,
                why: format!(
                    "the chain commits {head_seq} runs but the store holds {manifests} run manifests: a committed run's manifest was removed (`patchtrail verify` names it)"
                ),
            });
        }
        refs.retain(|r| scopes.admits(&r.account_id, &r.region) && !exclude.contains(&r.run_id));
        let mut cache: HashMap<String, Checked> = HashMap::new();
        let mut wanted: Vec<&RunRef> = Vec::new();
        match selection {
            Selection::All => {
                wanted.extend(refs.iter());
                self.load_refs(&wanted, head_seq, &mut cache).await?;
            }
            Selection::Range(from, to) => {
                wanted.extend(refs.iter().filter(|r| {
                    from.is_none_or(|f| r.date >= f.date_naive())
                        && to.is_none_or(|t| r.date <= t.date_naive())
                }));
                self.load_refs(&wanted, head_seq, &mut cache).await?;
                wanted.retain(|r| match cache.get(&r.key) {
                    Some(Checked::Committed(m)) => {
                        from.is_none_or(|f| m.manifest.snapshot_time >= f)
                            && to.is_none_or(|t| m.manifest.snapshot_time <= t)
                    }
                    _ => true,
                });
            }
            Selection::AsOf(instants) => {
                let mut by_scope: BTreeMap<(&str, &str), Vec<&RunRef>> = BTreeMap::new();
                for r in &refs {
                    by_scope.entry(r.scope()).or_default().push(r);
                }
                for instant in instants {
                    for candidates in by_scope.values() {
                        let read = self
                            .in_force(candidates, *instant, head_seq, &mut cache)
                            .await?;
                        wanted.extend(read);
                    }
                }
            }
        }
        let mut chosen: BTreeMap<String, StoredManifest> = BTreeMap::new();
        for r in wanted {
            match cache.get(&r.key) {
                Some(Checked::Committed(m)) => {
                    chosen.insert(r.key.clone(), m.clone());
                }
                Some(Checked::Damaged(why)) => damaged.push(Damaged {
                    run_id: Some(r.run_id.clone()),
                    why: why.clone(),
                }),
                Some(Checked::NotCommitted) | None => {}
            }
        }
        let mut runs: Vec<StoredManifest> = chosen.into_values().collect();
        runs.sort_by(|a, b| {
            (a.manifest.snapshot_time, &a.manifest.run_id)
                .cmp(&(b.manifest.snapshot_time, &b.manifest.run_id))
        });
        unreadable.sort();
        unreadable.dedup();
        damaged.sort();
        damaged.dedup();
        Ok(History {
            runs,
            refs,
            unreadable,
            damaged,
            head,
        })
    }

    /// The run of one scope in force at `instant` (§5.2: collected by then, the greatest
    /// snapshot time), and every damaged run that could have been it: the manifests of the
    /// latest day at or before the instant first, then earlier days only when that day holds no
    /// run in force. Returns the refs a reader must take into account.
    async fn in_force<'a>(
        &self,
        candidates: &[&'a RunRef],
        instant: DateTime<Utc>,
        head: u64,
        cache: &mut HashMap<String, Checked>,
    ) -> Result<Vec<&'a RunRef>, StoreError> {
        let mut days: BTreeMap<NaiveDate, Vec<&'a RunRef>> = BTreeMap::new();
        for r in candidates.iter().filter(|r| r.date <= instant.date_naive()) {
            days.entry(r.date).or_default().push(*r);
        }
        let mut read: Vec<&'a RunRef> = Vec::new();
        for (_, day) in days.iter().rev() {
            self.load_refs(day, head, cache).await?;
            // A damaged run of a day this late might have been the one in force.
            read.extend(
                day.iter()
                    .filter(|r| matches!(cache.get(&r.key), Some(Checked::Damaged(_)))),
            );
            let best = day
                .iter()
                .filter(|r| match cache.get(&r.key) {
                    Some(Checked::Committed(m)) => m.manifest.finished_at <= instant,
                    _ => false,
                })
                .max_by(|a, b| {
                    let key = |r: &RunRef| match cache.get(&r.key) {
                        Some(Checked::Committed(m)) => {
                            Some((m.manifest.snapshot_time, m.manifest.run_id.clone()))
                        }
                        _ => None,
                    };
                    key(a).cmp(&key(b))
                });
            if let Some(best) = best {
                read.push(*best);
                return Ok(read);
            }
        }
        Ok(read)
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
