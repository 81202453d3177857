//! Reads the patch state of a tagged EC2 fleet from AWS: the seed's Step Functions workflow,
//! re-implemented as an async, paginated, rate-aware collector.
//!
//! [`AwsFleet`] wraps the official SDK clients (built from the standard AWS configuration chain,
//! so `AWS_ENDPOINT_URL*` points it at a simulator or moto); [`collect_snapshot`] runs one
//! collection into a [`patchtrail_store::Store`] and commits it with a manifest.

mod aws;
mod input;
mod options;
mod pacing;
mod regions;
mod snapshot;

pub use aws::{AwsFleet, CallError, Ec2Instance, Patch, PatchStateSummary};
pub use input::{ResolvedInput, SchedulerInput};
pub use options::{CollectOptions, TagSelector, parse_classifications};
pub use pacing::{Pacer, Progress, StopSignal};
pub use regions::check_region;
pub use snapshot::{SnapshotReport, collect_snapshot, discover_targets};

use patchtrail_store::StoreError;

/// Why a collection could not run; each message names the input and the fix.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error("{input}: {fix}")]
    BadInput { input: String, fix: String },
    #[error(
        "no AWS region configured: pass --region, set AWS_REGION, or set a region in your AWS profile"
    )]
    NoRegion,
    #[error(
        "unknown AWS region '{0}': use a region code such as us-east-1 or ap-northeast-1 (or set AWS_ENDPOINT_URL for a custom endpoint)"
    )]
    UnknownRegion(String),
    #[error(
        "no usable AWS credentials ({0}): run `aws sso login`, set AWS_PROFILE, or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
    )]
    NoCredentials(String),
    #[error(
        "AWS rejected the credentials ({0}): refresh them (aws sso login) or check AWS_PROFILE / AWS_ACCESS_KEY_ID"
    )]
    InvalidCredentials(CallError),
    #[error("{operation} failed: {error}")]
    Aws {
        operation: &'static str,
        error: CallError,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "stopped before the run committed; nothing was added to history (run collect again to take the snapshot)"
    )]
    Stopped,
}

/// Error codes that mean the credentials are wrong rather than absent.
const CREDENTIAL_CODES: [&str; 5] = [
    "InvalidClientTokenId",
    "ExpiredToken",
    "SignatureDoesNotMatch",
    "UnrecognizedClientException",
    "AccessDenied",
];

impl CollectError {
    /// Maps the first call's failure (`sts:GetCallerIdentity`) to what it tells about setup.
    fn from_identity(error: CallError) -> CollectError {
        let text = error.message.to_ascii_lowercase();
        if error.code == "ConstructionFailure"
            || text.contains("credentials") && text.contains("no ")
            || text.contains("failed to load credentials")
        {
            CollectError::NoCredentials(error.message)
        } else if CREDENTIAL_CODES.contains(&error.code.as_str()) {
            CollectError::InvalidCredentials(error)
        } else {
            CollectError::Aws {
                operation: "sts:GetCallerIdentity",
                error,
            }
        }
    }

    /// Whether running again later may succeed (throttling, network, service faults), as
    /// opposed to input or permission problems that need a person.
    pub fn is_retryable(&self) -> bool {
        match self {
            CollectError::Aws { error, .. } => {
                matches!(
                    error.code.as_str(),
                    "DispatchFailure"
                        | "Timeout"
                        | "ResponseError"
                        | "ThrottlingException"
                        | "RequestLimitExceeded"
                        | "InternalServerError"
                        | "InternalError"
                        | "Unavailable"
                        | "ServiceUnavailable"
                )
            }
            CollectError::Store(e) => e.is_retryable(),
            _ => false,
        }
    }
}
