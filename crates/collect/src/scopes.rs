//! Organization scale: which (account, region) scopes one command collects, the credentials of
//! each, and collecting them side by side.
//!
//! A scope is what AWS's API limits and patchtrail's runs are per (DESIGN "Scopes"). Accounts
//! come from a list or from `organizations:ListAccounts` (ACTIVE ones); the caller's own account
//! is read with its own credentials, every other through `sts:AssumeRole` into a role of the same
//! name in each. Regions come from a list or from `ec2:DescribeRegions` of each account (the
//! regions enabled for it). A scope that cannot be reached (AssumeRole refused, region not
//! enabled) is a failure of its own: the others are collected and committed all the same.

use crate::aws::call_error;
use crate::{
    AwsFleet, CallError, CollectError, CollectOptions, Progress, RunControl, SnapshotReport,
    StopSignal, collect_snapshot,
};
use aws_credential_types::Credentials;
use aws_credential_types::provider::{
    ProvideCredentials, SharedCredentialsProvider, future as credentials_future,
};
use aws_types::SdkConfig;
use aws_types::region::Region;
use futures::{StreamExt, stream};
use patchtrail_store::Store;
use std::sync::Arc;

/// Where the accounts come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accounts {
    /// The caller's own account.
    Own,
    /// These account ids.
    List(Vec<String>),
    /// Every ACTIVE account of the caller's organization.
    Organization,
}

/// Where each account's regions come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Regions {
    /// The region of the configuration (`--region`, `AWS_REGION`, the profile).
    Configured,
    List(Vec<String>),
    /// The regions enabled for the account (`ec2:DescribeRegions`).
    Enabled,
}

/// Which scopes to collect and how to reach them: validated options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopePlan {
    pub accounts: Accounts,
    pub regions: Regions,
    /// Role assumed in every account but the caller's own.
    pub role_name: Option<String>,
    pub external_id: Option<String>,
    pub session_name: String,
    /// Scopes collected at once.
    pub max_scopes: usize,
}

/// Scopes collected at once unless told otherwise (`--max-scopes`).
pub const DEFAULT_MAX_SCOPES: usize = 8;
/// The assumed roles' session name unless told otherwise (`--role-session-name`).
pub const DEFAULT_SESSION_NAME: &str = "patchtrail";

impl Default for ScopePlan {
    fn default() -> Self {
        ScopePlan {
            accounts: Accounts::Own,
            regions: Regions::Configured,
            role_name: None,
            external_id: None,
            session_name: DEFAULT_SESSION_NAME.into(),
            max_scopes: DEFAULT_MAX_SCOPES,
        }
    }
}

fn bad(input: impl Into<String>, fix: impl Into<String>) -> CollectError {
    CollectError::BadInput {
        input: input.into(),
        fix: fix.into(),
    }
}

/// An AWS account id: exactly 12 digits.
pub fn check_account_id(id: &str) -> Result<(), CollectError> {
    if id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(bad(
            format!("account id '{id}'"),
            "give 12-digit AWS account ids, e.g. --accounts 111111111111,222222222222",
        ))
    }
}

/// Account ids from a file: one per line (or comma-separated), `#` starts a comment.
pub fn parse_accounts_file(name: &str, text: &str) -> Result<Vec<String>, CollectError> {
    let ids: Vec<String> = text
        .lines()
        .map(|l| l.split('#').next().unwrap_or_default())
        .flat_map(|l| l.split([',', ' ', '\t']))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if ids.is_empty() {
        return Err(bad(
            format!("--accounts-file {name}"),
            "the file names no account; write one 12-digit account id per line",
        ));
    }
    // Each id is checked with the plan's (ScopePlan::check).
    Ok(ids)
}

impl ScopePlan {
    /// Whether the plan names one (account, region) at most.
    pub fn is_single(&self) -> bool {
        let one_account = match &self.accounts {
            Accounts::Own => true,
            Accounts::List(ids) => ids.len() == 1,
            Accounts::Organization => false,
        };
        let one_region = match &self.regions {
            Regions::Configured => true,
            Regions::List(regions) => regions.len() == 1,
            Regions::Enabled => false,
        };
        one_account && one_region
    }

    /// Whether this is more than the one scope of the configuration.
    pub fn is_multi(&self) -> bool {
        self.accounts != Accounts::Own || self.regions != Regions::Configured
    }

    /// Checks the plan's parts against each other.
    pub fn check(&self) -> Result<(), CollectError> {
        if let Accounts::List(ids) = &self.accounts {
            ids.iter().try_for_each(|id| check_account_id(id))?;
        }
        if let Regions::List(regions) = &self.regions
            && let Some(r) = regions.iter().find(|r| r.trim().is_empty())
        {
            return Err(bad(
                format!("--regions '{r}'"),
                "list region codes separated by commas, e.g. --regions ap-northeast-1,us-east-1, or --regions all",
            ));
        }
        if let Some(role) = &self.role_name
            && (role.is_empty() || role.starts_with("arn:") || role.len() > 64)
        {
            return Err(bad(
                format!("--role-name '{role}'"),
                "give the role's name (not its ARN), the same in every account, e.g. --role-name PatchtrailRead",
            ));
        }
        if self.max_scopes == 0 {
            return Err(bad("--max-scopes 0", "give at least 1"));
        }
        Ok(())
    }
}

/// One (account, region) to collect, with the configuration that reaches it.
#[derive(Clone)]
pub struct Scope {
    pub account_id: String,
    pub region: String,
    pub config: SdkConfig,
}

/// A scope (or a whole account, `region` None) that could not be collected.
#[derive(Debug)]
pub struct ScopeFailure {
    pub account_id: String,
    pub region: Option<String>,
    pub error: CollectError,
}

/// What came of one scope.
pub struct ScopeOutcome {
    pub account_id: String,
    pub region: Option<String>,
    pub result: Result<SnapshotReport, CollectError>,
}

/// Credentials of a role, asked of STS again whenever the SDK's cache finds them expiring (a
/// large scope can outlast one session). The first ones, asked to prove the role can be
/// assumed, are handed out first rather than asked for twice.
#[derive(Debug)]
struct RoleCredentials {
    sts: aws_sdk_sts::Client,
    role_arn: String,
    session_name: String,
    external_id: Option<String>,
    primed: std::sync::Mutex<Option<Credentials>>,
}

impl RoleCredentials {
    async fn assume(&self) -> Result<Credentials, CallError> {
        let out = self
            .sts
            .assume_role()
            .role_arn(&self.role_arn)
            .role_session_name(&self.session_name)
            .set_external_id(self.external_id.clone())
            .send()
            .await
            .map_err(call_error)?;
        let c = out.credentials().ok_or_else(|| CallError {
            code: "ResponseError".into(),
            message: "AssumeRole answered without credentials".into(),
        })?;
        let expiry = std::time::SystemTime::try_from(*c.expiration()).ok();
        Ok(Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_string()),
            expiry,
            "patchtrail-assume-role",
        ))
    }
}

impl ProvideCredentials for RoleCredentials {
    fn provide_credentials<'a>(&'a self) -> credentials_future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        credentials_future::ProvideCredentials::new(async move {
            let primed = self.primed.lock().unwrap_or_else(|e| e.into_inner()).take();
            // Handed out only while fresh: a scope may begin long after its role was first
            // assumed (a large organization under a concurrency cap).
            let fresh_until = std::time::SystemTime::now() + std::time::Duration::from_secs(300);
            if let Some(first) = primed.filter(|c| c.expiry().is_none_or(|e| e > fresh_until)) {
                return Ok(first);
            }
            self.assume().await.map_err(|e| {
                aws_credential_types::provider::error::CredentialsError::provider_error(format!(
                    "sts:AssumeRole {}: {e}",
                    self.role_arn
                ))
            })
        })
    }
}

/// `role_name` in `account`, assumed now (so that a refused role fails before anything runs)
/// and again whenever its credentials expire, as `plan` names the session and external id.
async fn assume_primed(
    sts: aws_sdk_sts::Client,
    partition: &str,
    account: &str,
    role_name: &str,
    plan: &ScopePlan,
) -> Result<SharedCredentialsProvider, CallError> {
    let role = RoleCredentials {
        sts,
        role_arn: format!("arn:{partition}:iam::{account}:role/{role_name}"),
        session_name: plan.session_name.clone(),
        external_id: plan.external_id.clone(),
        primed: Default::default(),
    };
    let first = role.assume().await?;
    *role.primed.lock().unwrap_or_else(|e| e.into_inner()) = Some(first);
    Ok(SharedCredentialsProvider::new(role))
}

/// Credentials for acting in `account` through `role_name` (as [`resolve_scopes`] reaches
/// every account but the caller's).
pub(crate) async fn assumed_role(
    base: &SdkConfig,
    partition: &str,
    account: &str,
    role_name: &str,
    plan: &ScopePlan,
) -> Result<SharedCredentialsProvider, CallError> {
    assume_primed(
        aws_sdk_sts::Client::new(base),
        partition,
        account,
        role_name,
        plan,
    )
    .await
}

/// `base` acting in `region`, with `credentials` if given.
fn scoped(
    base: &SdkConfig,
    credentials: Option<&SharedCredentialsProvider>,
    region: &str,
) -> SdkConfig {
    let mut builder = base.to_builder().region(Region::new(region.to_string()));
    if let Some(c) = credentials {
        builder = builder.credentials_provider(c.clone());
    }
    builder.build()
}

/// Every ACTIVE account of the organization (`organizations:ListAccounts`, all pages). The
/// `State` field replaced `Status` in 2025; either says whether an account is active.
async fn organization_accounts(base: &SdkConfig) -> Result<Vec<String>, CollectError> {
    let client = aws_sdk_organizations::Client::new(base);
    let mut accounts = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let out = client
            .list_accounts()
            .set_next_token(token.clone())
            .send()
            .await
            .map_err(|e| CollectError::Aws {
                operation: "organizations:ListAccounts",
                error: call_error(e),
            })?;
        for a in out.accounts() {
            let state = a
                .state()
                .map(|s| s.as_str().to_string())
                .or_else(|| a.status().map(|s| s.as_str().to_string()))
                .unwrap_or_default();
            match a.id() {
                Some(id) if state == "ACTIVE" => accounts.push(id.to_string()),
                Some(id) => tracing::info!(
                    account = id,
                    state,
                    "skipping an account that is not ACTIVE"
                ),
                None => {}
            }
        }
        match out.next_token().filter(|t| !t.is_empty()) {
            Some(next) if token.as_deref() != Some(next) => token = Some(next.to_string()),
            _ => break,
        }
    }
    Ok(accounts)
}

/// The regions enabled for the account `config` acts in (`ec2:DescribeRegions`).
async fn enabled_regions(config: &SdkConfig) -> Result<Vec<String>, CollectError> {
    let out = aws_sdk_ec2::Client::new(config)
        .describe_regions()
        .send()
        .await
        .map_err(|e| CollectError::Aws {
            operation: "ec2:DescribeRegions",
            error: call_error(e),
        })?;
    let mut regions: Vec<String> = out
        .regions()
        .iter()
        .filter(|r| r.opt_in_status().is_none_or(|s| s != "not-opted-in"))
        .filter_map(|r| r.region_name().map(str::to_string))
        .collect();
    regions.sort();
    Ok(regions)
}

/// The partition (`aws`, `aws-cn`, `aws-us-gov`, ...) of an ARN, its second field: member roles
/// are named in the caller's own partition, since a role can only be assumed within its partition.
/// AWS IAM User Guide, "IAM identifiers" (ARN format `arn:partition:service:region:account-id:...`);
/// the caller's ARN is `sts:GetCallerIdentity`'s.
pub fn partition_of(arn: &str) -> Result<&str, CollectError> {
    match arn.split(':').collect::<Vec<_>>().as_slice() {
        ["arn", partition, ..] if !partition.is_empty() => Ok(partition),
        _ => Err(CollectError::Aws {
            operation: "sts:GetCallerIdentity",
            error: CallError {
                code: "ResponseError".into(),
                message: format!(
                    "the caller's ARN '{arn}' names no partition (expected arn:PARTITION:...)"
                ),
            },
        }),
    }
}

/// The scopes of `plan`, each with its configuration, and the accounts that could not be
/// reached. Fails as a whole only when the accounts themselves cannot be listed or the caller
/// is unknown.
pub async fn resolve_scopes(
    base: &SdkConfig,
    plan: &ScopePlan,
) -> Result<(Vec<Scope>, Vec<ScopeFailure>), CollectError> {
    let base_region = base
        .region()
        .map(|r| r.to_string())
        .ok_or(CollectError::NoRegion)?;
    let (own_account, caller_arn) =
        &AwsFleet::new(base, &CollectOptions::default(), Arc::default())?
            .identity()
            .await?;
    let partition = partition_of(caller_arn)?;
    let mut accounts = match &plan.accounts {
        Accounts::Own => vec![own_account.to_string()],
        Accounts::List(ids) => ids.clone(),
        Accounts::Organization => organization_accounts(base).await?,
    };
    let mut seen = std::collections::HashSet::new();
    accounts.retain(|a| seen.insert(a.clone()));
    if plan.role_name.is_none()
        && let Some(other) = accounts.iter().find(|a| a != &own_account)
    {
        return Err(bad(
            format!("account {other}"),
            format!(
                "it is not the caller's own account ({own_account}): give --role-name, the role patchtrail assumes in each account (deploy/patchtrail-member-role.yaml creates it)"
            ),
        ));
    }
    let sts = aws_sdk_sts::Client::new(base);
    let per_account = stream::iter(accounts)
        .map(|account| {
            let sts = sts.clone();
            let base_region = base_region.clone();
            async move {
                let credentials = if &account == own_account {
                    None
                } else {
                    let role = plan.role_name.as_deref().unwrap_or_default();
                    match assume_primed(sts, partition, &account, role, plan).await {
                        Ok(role) => Some(role),
                        Err(error) => {
                            return Err(ScopeFailure {
                                account_id: account,
                                region: None,
                                error: CollectError::Aws {
                                    operation: "sts:AssumeRole",
                                    error,
                                },
                            });
                        }
                    }
                };
                let mut regions = match &plan.regions {
                    Regions::Configured => vec![base_region.clone()],
                    Regions::List(list) => list.clone(),
                    Regions::Enabled => {
                        match enabled_regions(&scoped(base, credentials.as_ref(), &base_region))
                            .await
                        {
                            Ok(r) => r,
                            Err(error) => {
                                return Err(ScopeFailure {
                                    account_id: account,
                                    region: None,
                                    error,
                                });
                            }
                        }
                    }
                };
                // A region named twice is one scope.
                let mut seen = std::collections::HashSet::new();
                regions.retain(|r| seen.insert(r.clone()));
                Ok(regions
                    .into_iter()
                    .map(|region| Scope {
                        config: scoped(base, credentials.as_ref(), &region),
                        account_id: account.clone(),
                        region,
                    })
                    .collect::<Vec<_>>())
            }
        })
        .buffered(plan.max_scopes);
    let results: Vec<Result<Vec<Scope>, ScopeFailure>> = per_account.collect().await;
    let mut scopes = Vec::new();
    let mut failures = Vec::new();
    for r in results {
        match r {
            Ok(s) => scopes.extend(s),
            Err(f) => failures.push(f),
        }
    }
    Ok((scopes, failures))
}

impl From<ScopeFailure> for ScopeOutcome {
    fn from(f: ScopeFailure) -> ScopeOutcome {
        ScopeOutcome {
            account_id: f.account_id,
            region: f.region,
            result: Err(f.error),
        }
    }
}

impl ScopeOutcome {
    /// The scope was not committed, or was with instances that failed.
    pub fn failed(&self) -> bool {
        self.result.as_ref().map_or(true, |r| !r.errors.is_empty())
    }

    /// One scope's line of a machine-readable summary: its run, or its error.
    pub fn to_json(&self) -> serde_json::Value {
        match &self.result {
            Ok(r) => serde_json::json!({
                "account_id": self.account_id,
                "region": self.region,
                "run_id": r.committed.manifest.run_id,
                "manifest": r.committed.manifest_key,
                "head": r.committed.entry.witness(),
                "counts": r.committed.manifest.counts,
                "errors": r.errors.len(),
            }),
            Err(e) => serde_json::json!({
                "account_id": self.account_id,
                "region": self.region,
                "error": e.to_string(),
            }),
        }
    }
}

/// Collects every scope of `plan`, at most `plan.max_scopes` at once, each with its own fleet
/// (clients and pace: API limits are per account and region) and committed as its own run.
/// Outcomes, the unreachable accounts' included, in (account, region) order; an error only when
/// the scopes themselves cannot be listed.
pub async fn collect_plan(
    base: &SdkConfig,
    plan: &ScopePlan,
    store: &Store,
    options: &CollectOptions,
    control: &RunControl,
    progress: &Arc<Progress>,
    stop: &StopSignal,
) -> Result<Vec<ScopeOutcome>, CollectError> {
    let (scopes, failures) = resolve_scopes(base, plan).await?;
    if let Some(run_id) = &control.resume
        && scopes.len() + failures.len() != 1
    {
        return Err(bad(
            format!("--resume {run_id}"),
            "a run is one (account, region): name only that account and region",
        ));
    }
    Progress::add(&progress.scopes_total, scopes.len() as u64);
    let mut outcomes: Vec<ScopeOutcome> = stream::iter(scopes)
        .map(|scope| async move {
            let result = match AwsFleet::new(&scope.config, options, progress.clone()) {
                Ok(fleet) => {
                    collect_snapshot(&fleet, store, options, control, progress, stop).await
                }
                Err(e) => Err(e),
            };
            Progress::add(&progress.scopes_done, 1);
            ScopeOutcome {
                account_id: scope.account_id,
                region: Some(scope.region),
                result,
            }
        })
        .buffer_unordered(plan.max_scopes.max(1))
        .collect()
        .await;
    outcomes.extend(failures.into_iter().map(ScopeOutcome::from));
    outcomes.sort_by(|a, b| (&a.account_id, &a.region).cmp(&(&b.account_id, &b.region)));
    Ok(outcomes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_partition_is_the_second_field_of_the_callers_arn() {
        let of = |arn| {
            partition_of(arn)
                .map(str::to_string)
                .map_err(|e| e.to_string())
        };
        assert_eq!(
            of("arn:aws:sts::111111111111:assumed-role/r/s"),
            Ok("aws".into())
        );
        assert_eq!(
            of("arn:aws-us-gov:sts::111111111111:assumed-role/r/s"),
            Ok("aws-us-gov".into())
        );
        assert_eq!(
            of("arn:aws-cn:iam::111111111111:user/u"),
            Ok("aws-cn".into())
        );
        let e = of("").expect_err("no ARN");
        assert!(e.contains("names no partition"), "{e}");
        assert!(of("arn::sts::1:x").is_err());
    }
}
