//! Sends ASFF findings to AWS Security Hub: `securityhub:BatchImportFindings` (REST-JSON,
//! `POST /findings/import`, body `{"Findings": [...]}`; botocore's model of the 2018-10-26 API).
//! Each batch goes from the account it names, in its region (Security Hub refuses findings
//! whose `AwsAccountId` is not the caller's for the default product): the caller's own account
//! with its credentials, any other through the member role, as collect reaches it.
//!
//! The request is signed with SigV4 by the AWS SDK's own signer (`aws-sigv4`) and the SDK's
//! credential chain, rather than through the generated Security Hub client: that client's model
//! (every ASFF resource detail) would add minutes to every build and megabytes to the binary for
//! one call. Calls are paced to the API's rate (10 per second per account and region, burst 30);
//! throttling and server errors are retried with backoff; the findings a call answers as
//! `FailedFindings` are sent once more, and those that fail again are reported, never dropped.

use crate::scopes::{ScopePlan, assumed_role, partition_of};
use crate::{AwsFleet, CallError, CollectError, CollectOptions};
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_types::SdkConfig;
use patchtrail_model::{FindingsBatch, dns_suffix, partition_of_region};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// A finding Security Hub refused, twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedFinding {
    pub account_id: String,
    pub region: String,
    pub id: String,
    pub code: String,
    pub message: String,
}

/// What an import did.
#[derive(Debug, Default)]
pub struct ImportReport {
    pub imported: usize,
    pub calls: usize,
    pub failed: Vec<FailedFinding>,
}

/// The least time between two calls: 10 per second (the API's steady rate).
const CALL_INTERVAL: Duration = Duration::from_millis(100);
/// Attempts of one call that is throttled or meets a server error.
const ATTEMPTS: u32 = 6;

/// Security Hub's endpoint in `region`: `AWS_ENDPOINT_URL_SECURITYHUB`, else `AWS_ENDPOINT_URL`
/// (the SDK's standard variables), else AWS's (`securityhub.<region>.amazonaws.com`, `.com.cn`
/// in China).
fn endpoint(base: &SdkConfig, region: &str) -> String {
    if let Ok(url) = std::env::var("AWS_ENDPOINT_URL_SECURITYHUB")
        && !url.is_empty()
    {
        return url.trim_end_matches('/').to_string();
    }
    if let Some(url) = base.endpoint_url() {
        return url.trim_end_matches('/').to_string();
    }
    let suffix = dns_suffix(partition_of_region(region));
    format!("https://securityhub.{region}.{suffix}")
}

fn call_error(code: impl Into<String>, message: impl Into<String>) -> CollectError {
    CollectError::Aws {
        operation: "securityhub:BatchImportFindings",
        error: CallError {
            code: code.into(),
            message: message.into(),
        },
    }
}

/// Sends `batches`; `plan` says how to reach accounts other than the caller's (its role name,
/// external id and session name).
pub async fn import_findings(
    base: &SdkConfig,
    plan: &ScopePlan,
    batches: Vec<FindingsBatch>,
) -> Result<ImportReport, CollectError> {
    let (own_account, caller_arn) =
        AwsFleet::new(base, &CollectOptions::default(), Arc::default())?
            .identity()
            .await?;
    let partition = partition_of(&caller_arn)?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| call_error("ClientError", e.to_string()))?;
    // Refused before anything is sent: findings of another account without a role to send them.
    if plan.role_name.is_none()
        && let Some(other) = batches.iter().find(|b| b.account_id != own_account)
    {
        return Err(CollectError::BadInput {
            input: format!("account {}", other.account_id),
            fix: format!(
                "its findings must be sent from that account, not the caller's ({own_account}): give --role-name, the role patchtrail assumes there (deploy/patchtrail-member-role.yaml), or --account {own_account}"
            ),
        });
    }
    let mut sender = Sender {
        base,
        plan,
        own_account: &own_account,
        partition,
        http,
        credentials: HashMap::new(),
        last_call: None,
        report: ImportReport::default(),
    };
    for batch in batches {
        let (account_id, region) = (batch.account_id.clone(), batch.region.clone());
        let mut pending = batch.findings;
        // A call that fails as a whole (the role refused, Security Hub not enabled, access
        // denied, throttled past every retry) fails the findings it had not yet taken, named;
        // the other batches are still sent.
        if let Err(e) = sender.send_batch(&account_id, &region, &mut pending).await {
            let (code, message) = match &e {
                CollectError::Aws { error, .. } => (error.code.clone(), error.message.clone()),
                other => ("Error".to_string(), other.to_string()),
            };
            tracing::warn!(account = %account_id, region = %region, %code, "a BatchImportFindings call failed");
            for finding in pending {
                sender.report.failed.push(FailedFinding {
                    account_id: account_id.clone(),
                    region: region.clone(),
                    id: finding["Id"].as_str().unwrap_or_default().to_string(),
                    code: code.clone(),
                    message: message.clone(),
                });
            }
        }
    }
    let report = sender.report;
    Ok(report)
}

/// What an import holds while it sends: who it is, the accounts' credentials, when it last
/// called, and what came of it.
struct Sender<'a> {
    base: &'a SdkConfig,
    plan: &'a ScopePlan,
    own_account: &'a str,
    partition: &'a str,
    http: reqwest::Client,
    credentials: HashMap<String, Cached>,
    last_call: Option<tokio::time::Instant>,
    report: ImportReport,
}

impl Sender<'_> {
    /// Sends `pending` (findings of `account` in `region`), twice for those the first call
    /// refuses; on return `pending` holds what was not taken (nothing when it succeeds).
    async fn send_batch(
        &mut self,
        account: &str,
        region: &str,
        pending: &mut Vec<Value>,
    ) -> Result<(), CollectError> {
        if !self.credentials.contains_key(account) {
            let provider = match self.plan.role_name.as_deref() {
                Some(role) if account != self.own_account => {
                    assumed_role(self.base, self.partition, account, role, self.plan)
                        .await
                        .map_err(|error| CollectError::Aws {
                            operation: "sts:AssumeRole",
                            error,
                        })?
                }
                _ => self
                    .base
                    .credentials_provider()
                    .ok_or_else(|| CollectError::NoCredentials("no credentials provider".into()))?,
            };
            let cached = Cached {
                provider,
                held: None,
            };
            self.credentials.insert(account.to_string(), cached);
        }
        let url = format!("{}/findings/import", endpoint(self.base, region));
        for round in 0..2 {
            if pending.is_empty() {
                break;
            }
            if let Some(at) = self.last_call {
                tokio::time::sleep_until(at + CALL_INTERVAL).await;
            }
            self.last_call = Some(tokio::time::Instant::now());
            let body = serde_json::to_vec(&FindingsBatch::body_of(pending))
                .map_err(|e| call_error("ClientError", e.to_string()))?;
            let Some(cached) = self.credentials.get_mut(account) else {
                return Ok(());
            };
            let answer = send(&self.http, cached, &url, region, body).await?;
            self.report.calls += 1;
            self.report.imported += answer.success;
            let refused: HashMap<String, (String, String)> = answer
                .failed
                .into_iter()
                .map(|(id, code, message)| (id, (code, message)))
                .collect();
            let mut again = Vec::new();
            for finding in pending.drain(..) {
                let id = finding["Id"].as_str().unwrap_or_default().to_string();
                let Some((code, message)) = refused.get(&id) else {
                    continue;
                };
                if round == 0 {
                    again.push(finding);
                } else {
                    self.report.failed.push(FailedFinding {
                        account_id: account.to_string(),
                        region: region.to_string(),
                        id,
                        code: code.clone(),
                        message: message.clone(),
                    });
                }
            }
            *pending = again;
        }
        Ok(())
    }
}

/// An account's credentials provider and the credentials it last gave, reused until they are
/// about to expire (a provider asked for every call would ask SSO or STS every time).
struct Cached {
    provider: SharedCredentialsProvider,
    held: Option<aws_credential_types::Credentials>,
}

impl Cached {
    async fn credentials(&mut self) -> Result<aws_credential_types::Credentials, CollectError> {
        let soon = SystemTime::now() + Duration::from_secs(300);
        if let Some(c) = &self.held
            && c.expiry().is_none_or(|e| e > soon)
        {
            return Ok(c.clone());
        }
        let fresh = self
            .provider
            .provide_credentials()
            .await
            .map_err(|e| CollectError::NoCredentials(crate::aws::one_line_chain(&e)))?;
        self.held = Some(fresh.clone());
        Ok(fresh)
    }
}

/// What one call answered: how many findings it took, and the refused ones (id, code, message).
struct Answer {
    success: usize,
    failed: Vec<(String, String, String)>,
}

/// One signed call, retried with backoff when throttled or when the service fails.
async fn send(
    http: &reqwest::Client,
    cached: &mut Cached,
    url: &str,
    region: &str,
    body: Vec<u8>,
) -> Result<Answer, CollectError> {
    let mut delay = Duration::from_millis(200);
    for attempt in 1..=ATTEMPTS {
        let credentials = cached.credentials().await?;
        let headers = sign(&credentials, url, region, &body)?;
        let mut request = http
            .post(url)
            .header("content-type", "application/json")
            .body(body.clone());
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let outcome = request.send().await;
        let (status, error_type, text) = match outcome {
            Ok(response) => {
                let status = response.status();
                let error_type = response
                    .headers()
                    .get("x-amzn-errortype")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                (
                    status,
                    error_type,
                    response.text().await.unwrap_or_default(),
                )
            }
            Err(e) if attempt < ATTEMPTS => {
                tracing::warn!(error = %e, "securityhub:BatchImportFindings: retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
                continue;
            }
            Err(e) => return Err(call_error("RequestError", e.to_string())),
        };
        if status.is_success() {
            return parse_answer(&text);
        }
        // restJson1: the error's type in `X-Amzn-ErrorType` (`Code:...`), else in the body.
        let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let code = error_type
            .as_deref()
            .or_else(|| json["Code"].as_str())
            .or_else(|| json["code"].as_str())
            .or_else(|| json["__type"].as_str())
            .map(|c| {
                let c = c.split(':').next().unwrap_or(c);
                c.rsplit('#').next().unwrap_or(c).to_string()
            })
            .unwrap_or_else(|| status.as_u16().to_string());
        let message = json["Message"]
            .as_str()
            .or_else(|| json["message"].as_str())
            .unwrap_or(&text)
            .chars()
            .take(300)
            .collect::<String>();
        let retryable = status.as_u16() == 429
            || status.is_server_error()
            || code.contains("Throttl")
            || code == "TooManyRequestsException";
        if retryable && attempt < ATTEMPTS {
            tokio::time::sleep(delay).await;
            delay *= 2;
            continue;
        }
        return Err(call_error(code, message));
    }
    Err(call_error(
        "Throttling",
        "still throttled after every retry",
    ))
}

fn parse_answer(text: &str) -> Result<Answer, CollectError> {
    let json: Value = serde_json::from_str(text)
        .map_err(|e| call_error("ResponseError", format!("not JSON ({e})")))?;
    let success = json["SuccessCount"]
        .as_u64()
        .ok_or_else(|| call_error("ResponseError", "no SuccessCount in the answer"))?;
    let failed = json["FailedFindings"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|f| {
                    let field = |k: &str| f[k].as_str().unwrap_or_default().to_string();
                    (field("Id"), field("ErrorCode"), field("ErrorMessage"))
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Answer {
        success: success as usize,
        failed,
    })
}

/// SigV4 headers for a POST of `body` to `url`, service `securityhub`.
fn sign(
    credentials: &aws_credential_types::Credentials,
    url: &str,
    region: &str,
    body: &[u8],
) -> Result<Vec<(String, String)>, CollectError> {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    let identity = credentials.clone().into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("securityhub")
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| call_error("SigningError", e.to_string()))?
        .into();
    let headers = [("content-type", "application/json")];
    let request = SignableRequest::new("POST", url, headers.into_iter(), SignableBody::Bytes(body))
        .map_err(|e| call_error("SigningError", e.to_string()))?;
    let (instructions, _) = sign(request, &params)
        .map_err(|e| call_error("SigningError", e.to_string()))?
        .into_parts();
    let (headers, _) = instructions.into_parts();
    Ok(headers
        .into_iter()
        .map(|h| (h.name().to_string(), h.value().to_string()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_name_the_refused_findings() {
        let a = parse_answer(
            r#"{"FailedCount":1,"SuccessCount":2,"FailedFindings":[{"Id":"x","ErrorCode":"InvalidInput","ErrorMessage":"bad"}]}"#,
        );
        let a = a.ok().map(|a| (a.success, a.failed));
        assert_eq!(
            a,
            Some((2, vec![("x".into(), "InvalidInput".into(), "bad".into())]))
        );
        assert!(parse_answer("{}").is_err());
    }
}
