//! Reads the patch state of a tagged EC2 fleet from AWS: the seed's Step Functions workflow,
//! re-implemented as an async, paginated, rate-aware collector.
//!
//! [`AwsFleet`] wraps the official SDK clients (built from the standard AWS configuration chain,
//! so `AWS_ENDPOINT_URL*` points it at a simulator or moto); [`collect_snapshot`] runs one
//! collection into a [`patchtrail_store::Store`] and commits it with a manifest.
//! [`security_hub`] is the other direction: findings sent to AWS Security Hub.

mod aws;
mod input;
mod options;
mod pacing;
mod regions;
mod releases;
mod scopes;
pub mod security_hub;
mod seen;
mod snapshot;

pub use aws::{AwsFleet, CallError, Ec2Instance, Patch, PatchStateSummary};
pub use input::{ResolvedInput, SchedulerInput};
pub use options::{CollectOptions, DEFAULT_CONCURRENCY, TagSelector, parse_classifications};
pub use pacing::{Progress, RateController, StopSignal};
pub use regions::check_region;
pub use scopes::{
    Accounts, DEFAULT_MAX_SCOPES, DEFAULT_SESSION_NAME, Regions, Scope, ScopeFailure, ScopeOutcome,
    ScopePlan, check_account_id, collect_plan, parse_accounts_file, resolve_scopes,
};
pub use snapshot::{RunControl, SnapshotReport, collect_snapshot, discover_targets, run_to_resume};

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
        "unknown AWS region '{0}': pass --region (or set AWS_REGION) with a region code such as us-east-1 or ap-northeast-1 (or set AWS_ENDPOINT_URL for a custom endpoint)"
    )]
    UnknownRegion(String),
    #[error(
        "no AWS credentials found ({0}): run `aws sso login` (or `aws configure`), set AWS_PROFILE, or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; -v shows where patchtrail looked"
    )]
    NoCredentials(String),
    #[error(
        "the AWS credentials have expired ({0}): run `aws sso login` again (with --profile if you use one), or refresh AWS_SESSION_TOKEN"
    )]
    ExpiredCredentials(String),
    #[error(
        "AWS rejected the credentials ({0}): refresh them (aws sso login) or check AWS_PROFILE / AWS_ACCESS_KEY_ID"
    )]
    InvalidCredentials(CallError),
    #[error("{}", aws_failure(operation, error))]
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
    #[error(
        "stopped before the run was complete: run {run_id} is suspended at its checkpoint {checkpoint} with {instances} instance(s), not history yet (`patchtrail collect --resume {run_id}` continues it)"
    )]
    Suspended {
        run_id: String,
        checkpoint: u32,
        /// Instances in the run so far.
        instances: u64,
        /// Of them, added by this process.
        added: u64,
    },
}

/// Error codes of each service for an action the identity's policy does not allow.
pub const ACCESS_DENIED_CODES: [&str; 4] = [
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "UnauthorizedAccess",
];

/// One line for a failed AWS call: an access denial names the IAM action to allow.
fn aws_failure(operation: &str, error: &CallError) -> String {
    if error.is_denied() && operation == "sts:AssumeRole" {
        format!(
            "sts:AssumeRole was denied ({error}): deploy the member role in that account (deploy/patchtrail-member-role.yaml, trusting this identity), check --role-name and --external-id, and allow sts:AssumeRole on that role to this identity"
        )
    } else if error.is_denied()
        && error
            .message
            .contains("explicit deny in a service control policy")
    {
        // IAM's wording for an SCP's refusal (IAM User Guide, "Troubleshoot access denied error
        // messages"): no policy of this identity can fix it.
        format!(
            "{operation} was denied by a service control policy ({}): the organization forbids this account or region; leave it out (--regions, --accounts) or change the SCP",
            error.code
        )
    } else if error.is_denied() {
        format!(
            "{operation} was denied ({}): allow the IAM action {operation} to this identity (deploy/iam/patchtrail-cli-policy.json lists every action patchtrail needs)",
            error.code
        )
    } else {
        format!("{operation} failed: {error}")
    }
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
        if text.contains("expired")
            && (text.contains("sso") || text.contains("token") || error.code == "ExpiredToken")
        {
            CollectError::ExpiredCredentials(if text.contains("sso") {
                "the SSO session".into()
            } else {
                error.code
            })
        } else if error.code == "ConstructionFailure"
            || text.contains("credential")
                && (text.contains("no ")
                    || text.contains("not enabled")
                    || text.contains("not loaded"))
            || text.contains("failed to load credentials")
            || text.contains("loading credentials")
        {
            let looked = if text.contains("imds")
                && (text.contains("denied")
                    || text.contains("forbidden")
                    || text.contains("disabled"))
            {
                "none in the environment or a profile, and no instance metadata service"
            } else {
                "none in the environment, a profile, the SSO cache, a web identity, a container or instance metadata"
            };
            CollectError::NoCredentials(looked.into())
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

    /// Whether the organization, not this identity's policies, keeps the scope from being read:
    /// an explicit deny in a service control policy (IAM's wording, "Troubleshoot access denied
    /// error messages"), or a region not enabled for the account, where credentials valid
    /// elsewhere are refused (EC2's `AuthFailure` or `OptInRequired`, the JSON services'
    /// `UnrecognizedClientException`). An organization run records such a scope as denied, not
    /// failed: a region-deny SCP would otherwise fail every run.
    pub fn is_forbidden_by_organization(&self) -> bool {
        const REGION_NOT_ENABLED: [&str; 3] = [
            "AuthFailure",
            "OptInRequired",
            "UnrecognizedClientException",
        ];
        match self {
            CollectError::Aws { error, .. } => {
                (error.is_denied()
                    && error
                        .message
                        .contains("explicit deny in a service control policy"))
                    || REGION_NOT_ENABLED.contains(&error.code.as_str())
            }
            CollectError::InvalidCredentials(error) => {
                REGION_NOT_ENABLED.contains(&error.code.as_str())
            }
            _ => false,
        }
    }
}
