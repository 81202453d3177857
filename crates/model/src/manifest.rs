//! The run manifest: the commit record of one snapshot.
//!
//! It is written last. A run without a manifest is not part of history; a manifest lists every
//! object of its run with size and SHA-256 and carries the SHA-256 of the previous manifest, so
//! the manifests form a hash chain in which loss or tampering is detectable.

use crate::StoreFormat;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// 2: manifests carry their place in the commit chain (`sequence`), committed by a chain entry.
pub const MANIFEST_VERSION: u32 = 2;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunManifest {
    pub manifest_version: u32,
    pub run_id: String,
    /// Position in the store's commit chain (1 for the first run); the chain entry
    /// `_patchtrail/chain/<sequence>.json` that names this manifest is what commits it.
    #[serde(default)]
    pub sequence: u64,
    /// The instant the snapshot represents (partition date = its UTC date).
    pub snapshot_time: DateTime<Utc>,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub tool: String,
    pub account_id: String,
    pub region: String,
    pub format: StoreFormat,
    pub config: RunConfig,
    pub counts: RunCounts,
    /// Every data object of the run, keys relative to the store root.
    pub objects: Vec<ManifestObject>,
    /// The manifest of the previous chain entry (`sequence - 1`); `None` for the first run.
    pub previous: Option<PreviousManifest>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunConfig {
    /// Tag key that selects instances (`CheckPatch` by default).
    pub tag_key: String,
    /// Tag values that must match, empty for "any value".
    pub tag_values: Vec<String>,
    /// Classification filter; empty means all classifications.
    pub classifications: Vec<String>,
    /// Whether tagged hybrid (`mi-`) nodes were collected alongside EC2 (absent in runs
    /// written before hybrid nodes were collected: they were not).
    #[serde(default)]
    pub hybrid: bool,
    /// Whether the run collected patch states (`DescribeInstancePatchStates`): false for runs
    /// imported from the seed workflow's pages, which hold patch lists only (docs/semantics.md
    /// §4.7). Absent in older manifests: they did.
    #[serde(default = "collected")]
    pub patch_states: bool,
    /// How the run came to be: `collect` (from AWS, by the CLI or the Lambda), `import` (JSON
    /// lines given to `patchtrail import`) or `import-seed` (the seed workflow's pages, moved by
    /// `import --from-seed`). Absent in runs written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
}

fn collected() -> bool {
    true
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunCounts {
    pub instances: u64,
    pub managed: u64,
    pub unmanaged: u64,
    pub errors: u64,
    pub patches: u64,
    pub pages: u64,
    pub missing: u64,
    pub missing_critical: u64,
    pub missing_security: u64,
    pub failed: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestObject {
    pub key: String,
    pub size: u64,
    pub sha256: String,
    /// Rows in the object (patch rows for seed pages).
    pub rows: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviousManifest {
    pub key: String,
    pub sha256: String,
}
