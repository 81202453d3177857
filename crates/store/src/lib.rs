//! The history on object storage: Hive-partitioned layout, formats, manifest commit, reading back.
//!
//! One [`Store`] type covers local folders, S3 and memory through `object_store`, so the collector,
//! the reports and the tests use the same code whatever the backend. A run is a set of data
//! objects plus a manifest written last; only manifests make history.

mod bucket;
mod chain;
mod checkpoint;
mod encode;
mod history;
mod ids;
mod layout;
mod local;
mod location;
mod objects;
mod seed;
mod verify;
mod writer;

pub use bucket::BucketProtection;
pub use chain::{
    CHAIN_PREFIX, CLAIMS_PREFIX, ChainEntry, HEAD_HINT, ReadEntry, chain_key, chain_sequence,
    claim_key, claimed_run_id,
};
pub use checkpoint::{
    CHECKPOINTS_PREFIX, Checkpoint, Continued, RESUME_WINDOW, Suspended, checkpoint_key,
    suspended_at,
};
pub use encode::{SeedPatch, parse_seed_page, rows_to_batch, seed_page};
pub use history::{Damaged, History, RunRef, ScopeFilter, Selection, StoredManifest, sha256_hex};
pub use ids::InstanceIds;
pub use layout::{
    MANIFEST_PREFIXES, RunLayout, date_partition, is_run_id, name_uuid, run_id, seed_page_tag,
    seed_run_tag,
};
pub use local::CreateMechanism;
pub use location::{AwsAccess, Store, StoreKind, seed_input_url};
pub use objects::{Created, Listed, StoreProbe};
pub use seed::{RowContext, SeedDay};
pub use verify::{
    Finding, REPAIR_QUIET, REPAIRED_PREFIX, Unlisted, VerifyReport, Witness, seed_page_key,
};
pub use writer::{CommittedRun, InstanceError, RunStart, RunWriter};

/// What can go wrong with a store, each saying what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "--store '{url}' is not a usable location: {reason} (use a folder path, file:///path, s3://bucket/prefix or memory://)"
    )]
    BadUrl { url: String, reason: String },
    #[error(
        "cannot use folder '{path}' as the store: {source} (pass --store with a folder you can write to)"
    )]
    LocalFolder {
        path: String,
        source: std::io::Error,
    },
    #[error("S3 bucket of '{url}' does not exist: create it, or fix --store")]
    NoSuchBucket { url: String },
    #[error(
        "access denied to '{url}' ({operation} {key}): allow s3:ListBucket, s3:GetObject and s3:PutObject on the bucket and prefix"
    )]
    AccessDenied {
        url: String,
        operation: &'static str,
        key: String,
    },
    #[error(
        "cannot reach the S3 endpoint of '{url}' ({reason}): check the network, the region, and AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_S3 if set"
    )]
    Unreachable { url: String, reason: String },
    #[error(
        "the bucket of '{url}' encrypts with a KMS key this identity may not use ({action} was denied): allow kms:GenerateDataKey and kms:Decrypt on that key, in your IAM policy and the key's policy"
    )]
    KmsDenied { url: String, action: String },
    #[error(
        "object '{key}' in '{url}' is archived (an S3 Glacier or Deep Archive storage class, by a lifecycle rule): restore it first (aws s3api restore-object --bucket … --key … --restore-request Days=7), and keep the store's prefix out of archiving transitions"
    )]
    Archived { url: String, key: String },
    #[error("object '{key}' not found in '{url}'")]
    NotFound { url: String, key: String },
    #[error("could not {operation} '{key}' in '{url}': {reason}")]
    Object {
        url: String,
        operation: &'static str,
        key: String,
        reason: String,
    },
    #[error(
        "could not get {what} in '{url}': other writers kept taking it; try again (if it persists, check that only patchtrail writes under this store)"
    )]
    Contended { url: String, what: String },
    #[error(
        "run '{run_id}' has no checkpoint in '{url}': only a suspended run can be continued (check the run id, or collect without --resume to start a new run)"
    )]
    NoCheckpoint { url: String, run_id: String },
    #[error(
        "run '{run_id}' was continued from its checkpoint {sequence} by another process first; this one's objects stay out of it (continue the run again: it picks up from its latest checkpoint)"
    )]
    Superseded { run_id: String, sequence: u32 },
    #[error("could not encode {what}: {reason}")]
    Encode { what: String, reason: String },
    #[error(
        "the store '{url}' is damaged: {what}; run `patchtrail verify --store {url}` to see all of it (docs/commit-protocol.md says how to recover)"
    )]
    Damaged { url: String, what: String },
    #[error(
        "the store '{url}' does not honour create-only writes (a second create of one object replaced the first; S3 answers 412 to `If-None-Match: *`): two runs could take one place in the history and one would be lost; use Amazon S3 or a store that supports conditional writes"
    )]
    NoCreateOnly { url: String },
    #[error(
        "run '{run_id}' began at {snapshot_time}, more than 24 hours ago: a snapshot's values must be observed close together, so it can no longer be continued (nothing was written; collect a new run instead)"
    )]
    ResumeTooLate {
        run_id: String,
        snapshot_time: chrono::DateTime<chrono::Utc>,
    },
}

impl StoreError {
    /// Turns an object_store error into one that names the cause and the fix.
    pub(crate) fn classify(
        url: &str,
        operation: &'static str,
        key: &str,
        e: object_store::Error,
    ) -> StoreError {
        let text = e.to_string();
        let url = url.to_string();
        let key = key.to_string();
        if text.contains("NoSuchBucket") || text.contains("bucket does not exist") {
            StoreError::NoSuchBucket { url }
        } else if text.contains("InvalidObjectState") {
            // S3 answers 403 InvalidObjectState to a GET of an object in an archive class.
            StoreError::Archived { url, key }
        } else if let Some(action) = kms_action(&text) {
            StoreError::KmsDenied { url, action }
        } else if text.contains("AccessDenied")
            || text.contains("403 Forbidden")
            || text.contains("InvalidAccessKeyId")
        {
            StoreError::AccessDenied {
                url,
                operation,
                key,
            }
        } else if text.contains("error sending request")
            || text.contains("Connection refused")
            || text.contains("dns error")
        {
            StoreError::Unreachable {
                url,
                reason: if text.contains("dns error") {
                    "the host name does not resolve".into()
                } else {
                    "the connection failed".into()
                },
            }
        } else if matches!(e, object_store::Error::NotFound { .. }) {
            StoreError::NotFound { url, key }
        } else {
            StoreError::Object {
                url,
                operation,
                key,
                reason: one_line(&text),
            }
        }
    }

    /// Whether trying again may help (network trouble, throttling), as opposed to bad input.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            StoreError::Object { .. }
                | StoreError::Contended { .. }
                | StoreError::Superseded { .. }
                | StoreError::Unreachable { .. }
        )
    }
}

/// The KMS action named in an S3 refusal caused by the bucket's encryption key (S3 forwards
/// KMS's `AccessDenied`, "… is not authorized to perform: kms:GenerateDataKey on resource …",
/// or answers `KMS.DisabledException` / `KMS.NotFoundException` style codes).
fn kms_action(text: &str) -> Option<String> {
    if let Some(i) = text.find("kms:") {
        let action: String = text[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == ':')
            .collect();
        return Some(action);
    }
    text.contains("<Code>KMS.")
        .then(|| "the use of the bucket's KMS key".to_string())
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
