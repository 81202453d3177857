//! `verify`: every committed run's objects against its manifest (size, SHA-256), the manifest hash
//! chain, and data objects that no run lists.

use crate::history::sha256_hex;
use crate::layout::MANIFEST_PREFIXES;
use crate::{Store, StoreError};
use std::collections::{BTreeMap, BTreeSet};

/// One problem found in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// A manifest lists the object, but it is gone.
    Missing { run_id: String, key: String },
    /// The object's size or SHA-256 differs from its manifest.
    Altered { run_id: String, key: String, reason: String },
    /// A data object no committed run lists (an interrupted run's leftovers, or foreign).
    Uncommitted { key: String },
    /// A manifest's link to its predecessor does not hold.
    BrokenChain { run_id: String, reason: String },
    /// An object in a manifest folder that is not a readable manifest.
    UnreadableManifest { key: String, reason: String },
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Finding::Missing { run_id, key } => write!(f, "missing    {key} (listed by run {run_id})"),
            Finding::Altered { run_id, key, reason } => write!(f, "altered    {key} (run {run_id}): {reason}"),
            Finding::Uncommitted { key } => write!(f, "extra      {key} (no committed run lists it)"),
            Finding::BrokenChain { run_id, reason } => write!(f, "chain      run {run_id}: {reason}"),
            Finding::UnreadableManifest { key, reason } => write!(f, "manifest   {key}: {reason}"),
        }
    }
}

#[derive(Debug, Default)]
pub struct VerifyReport {
    pub runs: usize,
    pub objects: usize,
    pub bytes: u64,
    pub findings: Vec<Finding>,
}

/// Whether a key holds history data (as opposed to manifests, reports or probes).
fn is_data_key(key: &str) -> bool {
    key.starts_with("patches/") || key.starts_with("instances/") || key.starts_with("_patchtrail/instances/") || key.starts_with("year=")
}

impl Store {
    pub async fn verify(&self) -> Result<VerifyReport, StoreError> {
        let history = self.history().await?;
        let mut report = VerifyReport { runs: history.runs.len(), ..VerifyReport::default() };
        for (key, reason) in history.unreadable {
            report.findings.push(Finding::UnreadableManifest { key, reason });
        }
        let present: BTreeMap<String, u64> = self.list_keys("").await?.into_iter().collect();
        let manifest_sha: BTreeMap<&str, &str> = history.runs.iter().map(|r| (r.key.as_str(), r.sha256.as_str())).collect();
        let mut listed = BTreeSet::new();
        let mut roots = 0;
        for run in &history.runs {
            let m = &run.manifest;
            match &m.previous {
                None => {
                    roots += 1;
                    if roots > 1 {
                        report.findings.push(Finding::BrokenChain {
                            run_id: m.run_id.clone(),
                            reason: "names no previous manifest, but it is not the first run".into(),
                        });
                    }
                }
                Some(prev) => match manifest_sha.get(prev.key.as_str()) {
                    None => report.findings.push(Finding::BrokenChain {
                        run_id: m.run_id.clone(),
                        reason: format!("its previous manifest {} is gone", prev.key),
                    }),
                    Some(actual) if *actual != prev.sha256 => report.findings.push(Finding::BrokenChain {
                        run_id: m.run_id.clone(),
                        reason: format!("its previous manifest {} was changed after it committed", prev.key),
                    }),
                    Some(_) => {}
                },
            }
            for object in &m.objects {
                listed.insert(object.key.clone());
                report.objects += 1;
                let Some(size) = present.get(&object.key) else {
                    report.findings.push(Finding::Missing { run_id: m.run_id.clone(), key: object.key.clone() });
                    continue;
                };
                if *size != object.size {
                    report.findings.push(Finding::Altered {
                        run_id: m.run_id.clone(),
                        key: object.key.clone(),
                        reason: format!("size {size}, manifest says {}", object.size),
                    });
                    continue;
                }
                let bytes = self.get(&object.key).await?;
                report.bytes += bytes.len() as u64;
                if sha256_hex(&bytes) != object.sha256 {
                    report.findings.push(Finding::Altered {
                        run_id: m.run_id.clone(),
                        key: object.key.clone(),
                        reason: "SHA-256 differs from the manifest".into(),
                    });
                }
            }
        }
        for key in present.keys() {
            let is_manifest = MANIFEST_PREFIXES.iter().any(|p| key.starts_with(p));
            if !is_manifest && is_data_key(key) && !listed.contains(key) {
                report.findings.push(Finding::Uncommitted { key: key.clone() });
            }
        }
        Ok(report)
    }
}
