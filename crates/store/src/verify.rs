//! `verify`: the commit chain link by link, every committed object against its manifest (size,
//! SHA-256), and every other object told apart: an interrupted run's leftovers, pages written by
//! the seed's own workflow, or foreign files (named in notes: reports never read them).

use crate::chain::{
    CHAIN_PREFIX, CLAIMS_PREFIX, CREATE_ONLY_PROBE_PREFIX, HEAD_HINT, PENDING_PREFIX, ReadEntry,
    chain_key, chain_sequence, pending_key,
};
use crate::checkpoint::{CHECKPOINTS_PREFIX, suspended_at};
use crate::history::sha256_hex;
use crate::layout::{MANIFEST_PREFIXES, seed_page_tag, seed_run_tag};
use crate::{Store, StoreError};
use chrono::{DateTime, NaiveDate, Utc};
use patchtrail_model::RunManifest;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Where `verify --repair` moves a torn newest chain entry.
pub const REPAIRED_PREFIX: &str = "_patchtrail/repaired/";
/// How long nothing may have been claimed, checkpointed or prepared for a commit before
/// `verify --repair` touches the chain's end.
pub const REPAIR_QUIET: chrono::TimeDelta = chrono::TimeDelta::minutes(10);

/// One problem found in the store: each makes `verify` fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// A manifest lists the object, but it is gone.
    Missing { run_id: String, key: String },
    /// The object's size or SHA-256 differs from its manifest.
    Altered {
        run_id: String,
        key: String,
        reason: String,
    },
    /// A link of the commit chain does not hold (a gap, a fork, a changed or missing manifest).
    BrokenChain { sequence: u64, reason: String },
    /// An object in a manifest or chain folder that is not readable as one.
    UnreadableManifest { key: String, reason: String },
    /// A chain entry or manifest that a versioned bucket shows deleted or overwritten.
    Rewritten { key: String, reason: String },
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Finding::Missing { run_id, key } => {
                write!(f, "missing    {key} (listed by run {run_id})")
            }
            Finding::Altered {
                run_id,
                key,
                reason,
            } => write!(f, "altered    {key} (run {run_id}): {reason}"),
            Finding::BrokenChain { sequence, reason } => {
                write!(f, "chain      entry {sequence}: {reason}")
            }
            Finding::UnreadableManifest { key, reason } => write!(f, "manifest   {key}: {reason}"),
            Finding::Rewritten { key, reason } => write!(f, "versions   {key} {reason}"),
        }
    }
}

/// Objects that no committed run lists, sorted by what they are.
#[derive(Debug, Default)]
pub struct Unlisted {
    /// Claimed runs that never committed (interrupted, or lost to a crash): their objects.
    pub abandoned: BTreeMap<String, Vec<String>>,
    /// Seed-layout pages no patchtrail run wrote: the seed workflow's own snapshots, by day,
    /// with each page's write time.
    pub seed_days: BTreeMap<NaiveDate, Vec<(String, DateTime<Utc>)>>,
    /// Data objects nobody accounts for.
    pub foreign: Vec<String>,
}

/// `year=YYYY/month=MM/day=DD/instanceid=<id>/<name>` → (date, instance id).
pub fn seed_page_key(key: &str) -> Option<(NaiveDate, String)> {
    let parts: Vec<&str> = key.split('/').collect();
    let [y, m, d, i, _name] = parts.as_slice() else {
        return None;
    };
    let num = |p: &str, k: &str| p.strip_prefix(k).and_then(|v| v.parse::<u32>().ok());
    let date =
        NaiveDate::from_ymd_opt(num(y, "year=")? as i32, num(m, "month=")?, num(d, "day=")?)?;
    Some((date, i.strip_prefix("instanceid=")?.to_string()))
}

/// Whether a key holds history data (as opposed to manifests, claims, reports or probes).
fn is_data_key(key: &str) -> bool {
    key.starts_with("patches/")
        || key.starts_with("instances/")
        || key.starts_with("_patchtrail/instances/")
}

/// The run id a table object or manifest is named after, among `claimed`.
fn owner<'a>(key: &str, claimed: &'a BTreeSet<String>) -> Option<&'a String> {
    let name = key.rsplit('/').next()?;
    let stem = name.split('.').next()?;
    claimed.iter().find(|id| {
        stem == id.as_str()
            || stem
                .strip_prefix(id.as_str())
                .is_some_and(|rest| rest.starts_with('-'))
    })
}

impl Store {
    /// Sorts `present` objects that `listed` (the committed runs' objects) does not hold.
    pub async fn unlisted(
        &self,
        present: &[(String, u64, DateTime<Utc>)],
        listed: &BTreeSet<String>,
    ) -> Result<Unlisted, StoreError> {
        let claimed: BTreeSet<String> = self.claimed_runs().await?.into_iter().collect();
        let tags: HashMap<String, &String> =
            claimed.iter().map(|id| (seed_run_tag(id), id)).collect();
        let mut out = Unlisted::default();
        for (key, _, modified) in present.iter().filter(|(k, _, _)| !listed.contains(k)) {
            if key.starts_with(CHAIN_PREFIX) || key.starts_with(CLAIMS_PREFIX) {
                continue;
            }
            if let Some((date, _)) = seed_page_key(key) {
                match seed_page_tag(key).and_then(|t| tags.get(t)) {
                    Some(run_id) => out
                        .abandoned
                        .entry((*run_id).clone())
                        .or_default()
                        .push(key.clone()),
                    None => out
                        .seed_days
                        .entry(date)
                        .or_default()
                        .push((key.clone(), *modified)),
                }
                continue;
            }
            let is_manifest = MANIFEST_PREFIXES.iter().any(|p| key.starts_with(p));
            if !is_manifest && !is_data_key(key) {
                continue;
            }
            match owner(key, &claimed) {
                Some(run_id) => out
                    .abandoned
                    .entry(run_id.clone())
                    .or_default()
                    .push(key.clone()),
                None if is_manifest => {} // reported by the chain walk
                None => out.foreign.push(key.clone()),
            }
        }
        Ok(out)
    }
}

#[derive(Debug, Default)]
pub struct VerifyReport {
    pub runs: usize,
    pub objects: usize,
    pub bytes: u64,
    pub findings: Vec<Finding>,
    /// What is in the store besides committed runs, and is not a problem: one line each.
    pub notes: Vec<String>,
    /// The newest chain entry: its witness (`<sequence>:<sha256>`) is worth keeping elsewhere.
    pub head: Option<ReadEntry>,
    /// Days of pages the seed workflow wrote with no manifest or chain entry: read by reports,
    /// never verified.
    pub unchained_days: usize,
}

impl VerifyReport {
    /// What `patchtrail verify` prints (and an evidence pack keeps): notes, findings, the head
    /// witness and a closing line, one string each.
    pub fn lines(&self, store_url: &str) -> Vec<String> {
        let mut out: Vec<String> = self
            .notes
            .iter()
            .map(|n| format!("note       {n}"))
            .collect();
        out.extend(self.findings.iter().map(ToString::to_string));
        let summary = format!(
            "{} runs, {} objects ({} bytes hashed) in {store_url}",
            self.runs, self.objects, self.bytes
        );
        let unchained = match self.unchained_days {
            0 => String::new(),
            n => format!(
                "; {n} day(s) of seed-workflow pages are unchained and were not verified (the notes name them)"
            ),
        };
        if self.runs == 0 && self.findings.is_empty() {
            out.push(format!(
                "no committed runs in {store_url}: nothing to verify{unchained}"
            ));
            return out;
        }
        if let Some(head) = &self.head {
            out.push(format!(
                "head       {w} (keep it elsewhere; `patchtrail verify --expect-head {w}` finds a truncated chain)",
                w = head.witness()
            ));
        }
        if self.findings.is_empty() {
            out.push(format!(
                "verified {summary}: every object matches its manifest and the manifest chain is intact{unchained}"
            ));
        } else {
            out.push(format!(
                "{} finding(s) in {summary}{unchained}",
                self.findings.len()
            ));
        }
        out
    }
}

/// A head witness a user kept: `<sequence>:<sha256>` of a chain entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Witness {
    pub sequence: u64,
    pub sha256: String,
}

impl std::str::FromStr for Witness {
    type Err = String;

    fn from_str(s: &str) -> Result<Witness, String> {
        let bad = || {
            format!(
                "'{s}' is not a head witness: give the `<sequence>:<sha256>` a commit or verify printed, such as 42:3f7a…(64 hex digits)"
            )
        };
        let (seq, sha) = s.trim().split_once(':').ok_or_else(bad)?;
        let sequence: u64 = seq.parse().map_err(|_| bad())?;
        let sha256 = sha.to_ascii_lowercase();
        if sequence == 0 || sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        Ok(Witness { sequence, sha256 })
    }
}

impl Store {
    /// Checks the whole store (see the module docs); with `expect_head`, also that the chain
    /// still holds the entry a user kept as a witness of an earlier head.
    pub async fn verify(&self, expect_head: Option<&Witness>) -> Result<VerifyReport, StoreError> {
        let mut report = VerifyReport::default();
        let present_meta = self.list_meta("").await?;
        let present: BTreeMap<&str, u64> = present_meta
            .iter()
            .map(|(k, s, _)| (k.as_str(), *s))
            .collect();

        // The chain: entries 1..=N, each naming a manifest whose `previous` is the one before.
        let mut sequences = Vec::new();
        let mut foreign_chain_names = Vec::new();
        for (key, _, _) in &present_meta {
            if key.starts_with(CHAIN_PREFIX) {
                match chain_sequence(key) {
                    Some(s) => sequences.push(s),
                    None if key.starts_with(CREATE_ONLY_PROBE_PREFIX) => {}
                    None => foreign_chain_names.push(key.clone()),
                }
            }
        }
        sequences.sort_unstable();
        let last = sequences.last().copied().unwrap_or(0);
        let hint = self.head_hint().await?;
        let truncated = hint > last;
        if truncated {
            report.findings.push(Finding::BrokenChain {
                sequence: hint,
                reason: format!(
                    "{HEAD_HINT} names entry {hint}, but the chain ends at entry {last}: entries at its end were removed (truncation); restore them from a backup or the bucket's versions (`verify --repair` never lowers the hint, so this stays a finding until they are back)"
                ),
            });
        }
        let mut committed: BTreeMap<String, RunManifest> = BTreeMap::new();
        let mut previous: Option<(String, String)> = None;
        let mut expected = 1;
        for sequence in sequences {
            if sequence != expected {
                report.findings.push(Finding::BrokenChain {
                    sequence,
                    reason: format!(
                        "entries {expected}..{} are missing: the chain has a gap",
                        sequence - 1
                    ),
                });
                previous = None;
            }
            expected = sequence + 1;
            let entry = match self.chain_entry(sequence).await {
                Ok(Some(entry)) => entry,
                Ok(None) => continue,
                Err(StoreError::Damaged { what, .. }) => {
                    let fix = if sequence != last {
                        "later entries follow it, so it is not a crash's leftover: restore it from a backup or the bucket's versions".to_string()
                    } else {
                        self.torn_head_evidence(last).await?.unwrap_or_else(|| {
                            "a commit torn by a crash, which committed nothing: `patchtrail verify --repair` sets it aside (docs/commit-protocol.md)".into()
                        })
                    };
                    report.findings.push(Finding::BrokenChain {
                        sequence,
                        reason: format!("{what}; {fix}"),
                    });
                    previous = None;
                    continue;
                }
                Err(e) => return Err(e),
            };
            if sequence == last {
                report.head = Some(entry.clone());
            }
            let entry = entry.entry;
            let bytes = match self.get_opt(&entry.manifest_key).await? {
                Some(b) => b,
                None => {
                    let pending = self
                        .size_of(&pending_key(&entry.run_id, sequence))
                        .await?
                        .is_some();
                    report.findings.push(Finding::BrokenChain {
                        sequence,
                        reason: format!(
                            "its manifest {} (run {}) is gone{}",
                            entry.manifest_key,
                            entry.run_id,
                            if pending {
                                ": its committer died before writing it; `patchtrail verify --repair` recreates it from its pending copy"
                            } else {
                                ""
                            }
                        ),
                    });
                    previous = Some((entry.manifest_key, entry.manifest_sha256));
                    continue;
                }
            };
            let sha = sha256_hex(&bytes);
            if sha != entry.manifest_sha256 {
                report.findings.push(Finding::BrokenChain {
                    sequence,
                    reason: format!("manifest {} was changed after it committed (SHA-256 differs from the chain entry)", entry.manifest_key),
                });
            }
            let manifest: RunManifest = match serde_json::from_slice(&bytes) {
                Ok(m) => m,
                Err(e) => {
                    report.findings.push(Finding::UnreadableManifest {
                        key: entry.manifest_key.clone(),
                        reason: e.to_string(),
                    });
                    continue;
                }
            };
            let link = manifest
                .previous
                .as_ref()
                .map(|p| (p.key.clone(), p.sha256.clone()));
            if manifest.sequence != sequence || manifest.run_id != entry.run_id {
                report.findings.push(Finding::BrokenChain {
                    sequence,
                    reason: format!(
                        "manifest {} says it is entry {} of run {}",
                        entry.manifest_key, manifest.sequence, manifest.run_id
                    ),
                });
            } else if link != previous {
                let said = link.map_or("no previous manifest".to_string(), |(k, _)| {
                    format!("previous manifest {k}")
                });
                report.findings.push(Finding::BrokenChain {
                    sequence,
                    reason: format!(
                        "run {} names {said}, which is not entry {} of the chain (a fork)",
                        manifest.run_id,
                        sequence - 1
                    ),
                });
            }
            if let Some(earlier) = committed.get(&entry.manifest_key) {
                report.findings.push(Finding::BrokenChain {
                    sequence,
                    reason: format!(
                        "run {} is committed twice (entries {} and {sequence})",
                        entry.run_id, earlier.sequence
                    ),
                });
            }
            previous = Some((entry.manifest_key.clone(), sha));
            committed.insert(entry.manifest_key.clone(), manifest);
        }
        report.runs = committed.len();
        self.find_place_thieves(&present_meta, &committed, &mut report)
            .await?;
        report.findings.extend(
            self.rewritten_history()
                .await?
                .into_iter()
                .map(|(key, reason)| Finding::Rewritten { key, reason }),
        );
        if let Some(witness) = expect_head {
            self.check_witness(witness, &mut report).await?;
        }

        // Every object of every committed run.
        let mut listed: BTreeSet<String> = committed.keys().cloned().collect();
        for manifest in committed.values() {
            for object in &manifest.objects {
                listed.insert(object.key.clone());
                report.objects += 1;
                let Some(size) = present.get(object.key.as_str()) else {
                    report.findings.push(Finding::Missing {
                        run_id: manifest.run_id.clone(),
                        key: object.key.clone(),
                    });
                    continue;
                };
                if *size != object.size {
                    report.findings.push(Finding::Altered {
                        run_id: manifest.run_id.clone(),
                        key: object.key.clone(),
                        reason: format!("size {size}, manifest says {}", object.size),
                    });
                    continue;
                }
                let bytes = self.get(&object.key).await?;
                report.bytes += bytes.len() as u64;
                if sha256_hex(&bytes) != object.sha256 {
                    report.findings.push(Finding::Altered {
                        run_id: manifest.run_id.clone(),
                        key: object.key.clone(),
                        reason: "SHA-256 differs from the manifest".into(),
                    });
                }
            }
        }

        // Everything else.
        let unlisted = self.unlisted(&present_meta, &listed).await?;
        let names: Vec<&str> = present_meta.iter().map(|(k, _, _)| k.as_str()).collect();
        let committed_ids: BTreeSet<&str> = committed.values().map(|m| m.run_id.as_str()).collect();
        for (run_id, keys) in &unlisted.abandoned {
            let n = keys.len();
            report.notes.push(if committed_ids.contains(run_id.as_str()) {
                format!(
                    "run {run_id} is committed; {n} object(s) of an attempt to continue it that did not make it into the run are not history"
                )
            } else if let Some(checkpoint) = suspended_at(&names, run_id) {
                format!(
                    "run {run_id} is suspended at its checkpoint {checkpoint}: {n} object(s) so far, history once it is continued (patchtrail collect --resume {run_id})"
                )
            } else if truncated {
                format!(
                    "run {run_id} was claimed and is not in the chain: it never committed, or it committed in the entries removed from the chain's end (the truncation above); {n} object(s) of it are not history until those entries are restored"
                )
            } else {
                format!(
                    "run {run_id} was claimed but never committed: {n} object(s) of it are not history"
                )
            });
        }
        for name in self.skipped_names() {
            report.notes.push(format!(
                "an object whose name cannot be read was left out (not patchtrail's): {name}"
            ));
        }
        for (day, pages) in &unlisted.seed_days {
            report.notes.push(format!("{day}: {} page(s) written by the seed workflow: unchained (no manifest, no chain entry), so not verified; reports read them in place as one snapshot (docs/semantics.md §1.2)", pages.len()));
        }
        report.unchained_days = unlisted.seed_days.len();
        // Foreign objects cannot change what reports read (they read only what committed
        // manifests list): they are named, not counted as damage.
        let mut foreign = unlisted.foreign;
        foreign.extend(
            present_meta
                .iter()
                .map(|(k, _, _)| k)
                .filter(|key| {
                    MANIFEST_PREFIXES.iter().any(|p| key.starts_with(p))
                        && !listed.contains(*key)
                        && !unlisted.abandoned.values().flatten().any(|k| k == *key)
                })
                .cloned(),
        );
        foreign.extend(foreign_chain_names);
        foreign.sort();
        report.notes.extend(foreign.into_iter().map(|key| {
            format!("{key}: a foreign object, which no run of this store names (not history)")
        }));
        Ok(report)
    }
}

impl Store {
    /// Manifests no entry commits that say they hold a place another run's entry holds: two
    /// runs took one place, which only a store that lets a second create of one entry through
    /// allows (a check-then-write emulation of `If-None-Match`), and the run not in the chain is
    /// lost from history although its writer reported it committed.
    async fn find_place_thieves(
        &self,
        present: &[(String, u64, DateTime<Utc>)],
        committed: &BTreeMap<String, RunManifest>,
        report: &mut VerifyReport,
    ) -> Result<(), StoreError> {
        let strays: Vec<String> = present
            .iter()
            .map(|(k, _, _)| k)
            .filter(|k| {
                MANIFEST_PREFIXES.iter().any(|p| k.starts_with(p))
                    && crate::RunRef::parse(k).is_some()
                    && !committed.contains_key(*k)
            })
            .cloned()
            .collect();
        for (key, bytes) in strays.iter().zip(self.get_many(&strays).await?) {
            let Ok(manifest) = serde_json::from_slice::<RunManifest>(&bytes) else {
                continue;
            };
            if let Ok(Some(entry)) = self.chain_entry(manifest.sequence).await
                && entry.entry.manifest_key != *key
            {
                report.findings.push(Finding::BrokenChain {
                    sequence: manifest.sequence,
                    reason: format!(
                        "run {} (manifest {key}) says it committed as entry {}, which commits run {}: two runs took one place, so the store let a second create of one entry through (`patchtrail doctor` checks it); run {} is not history: collect or import it again on a store that honours create-only writes",
                        manifest.run_id, manifest.sequence, entry.entry.run_id, manifest.run_id
                    ),
                });
            }
        }
        Ok(())
    }

    /// Whether the chain still holds the entry `witness` names, byte for byte.
    async fn check_witness(
        &self,
        witness: &Witness,
        report: &mut VerifyReport,
    ) -> Result<(), StoreError> {
        let found = match self.chain_entry(witness.sequence).await {
            Ok(Some(e)) if e.sha256 == witness.sha256 => return Ok(()),
            Ok(Some(e)) => format!("holds other bytes (SHA-256 {})", e.sha256),
            Ok(None) => "is gone".to_string(),
            Err(StoreError::Damaged { what, .. }) => what,
            Err(e) => return Err(e),
        };
        report.findings.push(Finding::BrokenChain {
            sequence: witness.sequence,
            reason: format!(
                "the head you kept ({}:{}) {found}: the chain was truncated or rewritten since",
                witness.sequence, witness.sha256
            ),
        });
        Ok(())
    }

    /// Recovers what a crash can leave (docs/commit-protocol.md, "Repair"), and nothing else:
    /// - a committed run whose committer died before writing its manifest gets it back from its
    ///   pending copy;
    /// - the newest chain entry, when it cannot be read and provably committed nothing
    ///   ([`Store::torn_head_evidence`] finds no evidence that it did), is set aside under
    ///   `_patchtrail/repaired/`: once, never an earlier entry;
    /// - the head hint is raised to the newest entry, never lowered (a hint past the end is a
    ///   truncation, which stays a finding).
    ///
    /// Recreating a manifest is safe at any time (the bytes must hash to what the entry
    /// commits, so every writer makes the same object); setting an entry aside is not, so it
    /// also waits until nothing has been claimed, checkpointed or prepared for a commit for
    /// [`REPAIR_QUIET`]. Returns what it did and what it kept, one line each.
    pub async fn repair(&self) -> Result<Vec<String>, StoreError> {
        let mut done = Vec::new();
        let sequences = self.chain_sequences().await?;
        if let Some(&last) = sequences.last()
            && let Err(StoreError::Damaged { what, .. }) = self.chain_entry(last).await
        {
            let kept = match self.torn_head_evidence(last).await? {
                Some(committed) => Some(committed),
                None => self.writer_at_work().await?,
            };
            done.push(match kept {
                Some(kept) => format!("kept chain entry {last} ({what}): {kept}"),
                None => self.set_aside(last, &what).await?,
            });
        }
        for sequence in self.chain_sequences().await? {
            let Some(read) = self.chain_entry(sequence).await.ok().flatten() else {
                continue;
            };
            if self.size_of(&read.entry.manifest_key).await?.is_none()
                && self.heal_manifest(&read.entry).await?
            {
                done.push(format!(
                    "recreated manifest {} of run {} (entry {sequence}) from its pending copy",
                    read.entry.manifest_key, read.entry.run_id
                ));
            }
        }
        if let Some(&last) = self.chain_sequences().await?.last()
            && self.head_hint().await? < last
            && self.chain_entry(last).await.is_ok()
        {
            self.put(HEAD_HINT, last.to_string().into_bytes()).await?;
            done.push(format!("{HEAD_HINT} raised to entry {last}"));
        }
        Ok(done)
    }

    /// Moves the unreadable newest entry `last` to `_patchtrail/repaired/` (copied first, so
    /// nothing is lost if the delete is refused).
    async fn set_aside(&self, last: u64, what: &str) -> Result<String, StoreError> {
        let key = chain_key(last);
        let bytes = self.get(&key).await?;
        let aside = format!(
            "{REPAIRED_PREFIX}chain-{last:012}-{}.json",
            Utc::now().format("%Y%m%dT%H%M%S%.fZ")
        );
        self.create(&aside, bytes.to_vec()).await?;
        self.delete(&key).await?;
        Ok(format!(
            "set aside chain entry {last} ({what}) as {aside}: a crash tore it while it was written, so it committed nothing; the run it was committing is not history (continue it with `collect --resume` if it was suspended, else collect again)"
        ))
    }

    /// Why the unreadable newest entry `last` must be kept (it committed a run, or it is not
    /// what a crash leaves), with the way to restore it; `None` when it provably committed
    /// nothing. A crash can tear only an entry created exclusively in a folder, only before its
    /// committer saw the create succeed (so before its manifest, the head hint, and any later
    /// entry), and at most one: entry N+1 is created only by a writer that read entry N.
    pub(crate) async fn torn_head_evidence(&self, last: u64) -> Result<Option<String>, StoreError> {
        const RESTORE: &str = "restore it from a backup or the bucket's versions";
        let atomic = match self.creates_are_atomic().await {
            Ok(atomic) => atomic,
            // A store verify may only read (a read-only mount, a read-only role): no probe.
            Err(e) => {
                return Ok(Some(format!(
                    "whether a crash could have torn it cannot be told here (the create-only probe failed: {e}); run `patchtrail verify --repair` with write access, or {RESTORE}"
                )));
            }
        };
        if atomic {
            return Ok(Some(format!(
                "this store creates every object whole, so no crash leaves a torn entry: it was changed after it was written; {RESTORE}, or rebuild it (docs/commit-protocol.md, \"Rebuilding an entry\")"
            )));
        }
        let hint = self.head_hint().await?;
        if hint >= last {
            return Ok(Some(format!(
                "{HEAD_HINT} names entry {hint}, which a committer raises only after the entry's manifest is written, so entry {last} committed a run; {RESTORE}, or rebuild it (docs/commit-protocol.md, \"Rebuilding an entry\")"
            )));
        }
        let place = format!("/{last:012}.json");
        if let Some(key) = self
            .first_key(PENDING_PREFIX, |k| k.ends_with(&place))
            .await?
        {
            return Ok(Some(format!(
                "the pending copy {key} names place {last}: its committer may have created the entry and be writing it now, or have committed there; if no collect or import is running, rebuild the entry from that copy (docs/commit-protocol.md, \"Rebuilding an entry\"), or {RESTORE}"
            )));
        }
        let keys: Vec<String> = self
            .run_refs()
            .await?
            .0
            .into_iter()
            .map(|r| r.key)
            .collect();
        for (key, bytes) in keys.iter().zip(self.get_many(&keys).await?) {
            if serde_json::from_slice::<RunManifest>(&bytes).is_ok_and(|m| m.sequence == last) {
                return Ok(Some(format!(
                    "manifest {key} says it is entry {last}, and a manifest is written only after its entry: the entry committed that run; rebuild it from that manifest (docs/commit-protocol.md, \"Rebuilding an entry\"), or {RESTORE}"
                )));
            }
        }
        let after = format!("{REPAIRED_PREFIX}chain-{:012}-", last + 1);
        if let Some(key) = self
            .first_key(REPAIRED_PREFIX, |k| k.starts_with(&after))
            .await?
        {
            return Ok(Some(format!(
                "the entry after it was set aside already ({key}), and a crash tears at most one entry (the next is created only by a writer that read this one): this one was damaged later; {RESTORE}"
            )));
        }
        Ok(None)
    }

    /// The first key under `prefix` that `matches`.
    async fn first_key(
        &self,
        prefix: &str,
        matches: impl Fn(&str) -> bool,
    ) -> Result<Option<String>, StoreError> {
        Ok(self
            .list_keys(prefix)
            .await?
            .into_iter()
            .map(|(k, _)| k)
            .find(|k| matches(k)))
    }

    /// Why repair must not touch the chain's end now, if a writer may be at work: something was
    /// claimed, checkpointed or prepared for a commit less than [`REPAIR_QUIET`] ago (a bound,
    /// not a lock: a commit's pending copy also keeps its entry from being set aside, see
    /// [`Store::torn_head_evidence`]).
    async fn writer_at_work(&self) -> Result<Option<String>, StoreError> {
        let now = Utc::now();
        for prefix in [CLAIMS_PREFIX, CHECKPOINTS_PREFIX, PENDING_PREFIX] {
            for (key, _, modified) in self.list_meta(prefix).await? {
                let age = now.signed_duration_since(modified);
                if age < REPAIR_QUIET {
                    return Ok(Some(format!(
                        "a writer was at work {} s ago ({key}); run `verify --repair` again when no collect or import is writing, once nothing has been written for {} minutes",
                        age.num_seconds().max(0),
                        REPAIR_QUIET.num_minutes()
                    )));
                }
            }
        }
        Ok(None)
    }
}
