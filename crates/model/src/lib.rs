//! The patchtrail data contract (v1) as Rust types, with no I/O.
//!
//! Every other crate speaks these types: the collector produces them from AWS answers, the store
//! writes them as Parquet / JSONL / seed JSON and reads them back, the reports query them. Keeping
//! the row shapes, their Arrow schemas and the normalisation of AWS enum spellings in one place
//! is what keeps the three on-disk formats and the reports in agreement.

mod manifest;
mod normalise;
mod partition;
mod rows;
mod schema;
mod security_hub;
mod semantics;

pub use manifest::{
    MANIFEST_VERSION, ManifestObject, PreviousManifest, RunConfig, RunCounts, RunManifest,
};
pub use normalise::{
    KNOWN_CLASSIFICATIONS, SEED_CLASSIFICATIONS, SEED_TAG_KEY, is_known_classification,
    normalise_patch_state,
};
pub use partition::{dns_suffix, partition_of_region};
pub use rows::{InstanceRecord, InstanceSnapshot, Outcome, PatchRecord, StoreFormat};
pub use schema::{instances_schema, patches_schema};
pub use security_hub::FindingsBatch;
pub use semantics::{
    StateClass, change_name, cve_id, is_critical, is_security, patch_version, severity_level,
};
