//! The organization state machine's side of the Lambda (deploy/patchtrail-organization.yaml).
//!
//! Step Functions caps every state's input and output at 256 KiB (AWS Step Functions Developer
//! Guide, "Step Functions service quotas", payload size), so nothing that grows with the number of
//! scopes travels through the state machine. Each execution has a working folder in S3, the
//! `work` of the event (`s3://<work bucket>/<execution name>`):
//!
//! - `scopes.json`: the planned scopes, a JSON array the Distributed Map reads with its
//!   `ItemReader` (`ReaderConfig.InputType: JSON`, "ItemReader (Map)" in the same guide);
//!   `plan.json`: the plan's counts and the accounts that could not be reached.
//! - `committed/<account>/<region>.json`: written by a scope's invocation once its run is
//!   committed (its run id and counts); `failed/<account>/<region>.json`: written by an invocation
//!   that fails, with its error; `denied/<account>/<region>.json`: by one the organization
//!   forbids (a service control policy's explicit deny, a region not enabled), which then
//!   succeeds: such a scope is named as denied, and does not fail the execution.
//! - `map/<Map Run id>/`: the Map's `ResultWriter` output (`manifest.json` and the
//!   `SUCCEEDED_n.json`, `FAILED_n.json`, `PENDING_n.json` files of "ResultWriter (Map)"), in the
//!   execution's own folder, so that the outcome finds it by listing even when the Map failed and
//!   its Catch passed on only `Error` and `Cause`.
//!
//! The last step (`"action": "outcome"`) compares the plan with those records: a scope is
//! committed only if its own invocation recorded the commit, whatever the Map reported, so a
//! child execution that failed, timed out, was never started (the Map stopped at its
//! `ToleratedFailurePercentage`) or vanished is named as failed, with the best error known (the
//! invocation's own, else the child's `Error`/`Cause` from the Map's FAILED results). The outcome
//! object goes into the history, next to the runs, with the store's checksummed, create-only
//! writes; the answer is small and says whether the execution must fail.

use crate::{Deps, HandlerError};
use chrono::{DateTime, Utc};
use patchtrail_store::{Created, Store};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// The planned scopes, read by the Map's `ItemReader`.
const ITEMS: &str = "scopes.json";
const PLAN: &str = "plan.json";
const COMMITTED: &str = "committed/";
const FAILED: &str = "failed/";
/// Scopes the organization forbids (an SCP's explicit deny, a region not enabled): named in the
/// outcome as denied, not failed.
const DENIED: &str = "denied/";
/// The Map's ResultWriter output, in the execution's folder (the template's `Prefix`).
const MAP_RESULTS: &str = "map/";
/// Where the outcome objects go, relative to the history's root.
pub const OUTCOMES: &str = "_patchtrail/organization-runs/";
/// Scopes named in the execution's failure cause; the outcome object names them all.
const NAMED_IN_CAUSE: usize = 5;

/// What the organization state machine adds to the collector's input.
#[derive(Debug, Default)]
pub struct Step {
    /// The execution's working folder (`work`).
    pub work: Option<String>,
    /// `"action": "outcome"`: the execution's name and the Map's output (or caught error).
    pub outcome: Option<(String, Value)>,
    /// The one scope of a per-scope invocation (`account_id`, `region`).
    pub scope: Option<(String, String)>,
    /// `execution_deadline`: after it, no scope of the execution is started or continued (the
    /// template's `ScopeStartHours` after the execution began), so that the Map drains and the
    /// outcome is written before the execution's own timeout, which nothing can catch.
    pub execution_deadline: Option<DateTime<Utc>>,
}

fn bad_input(message: String) -> HandlerError {
    HandlerError {
        retryable: false,
        kind: "BadInput",
        message,
    }
}

impl Step {
    /// Takes the state machine's fields out of `event`, leaving the collector's input.
    pub fn split(mut event: Value) -> Result<(Value, Step), HandlerError> {
        let Some(fields) = event.as_object_mut() else {
            return Err(bad_input(format!(
                "the input is not a JSON object: {event}; send {{\"s3_bucket\": \"...\", \"s3_path\": \"...\"}}"
            )));
        };
        let mut step = Step::default();
        match fields.remove("work") {
            None => {}
            Some(Value::String(url)) if url.starts_with("s3://") => step.work = Some(url),
            Some(other) => {
                return Err(bad_input(format!(
                    "work {other} in the input: give the execution's working folder as an s3://bucket/prefix string (the organization state machine does)"
                )));
            }
        }
        if let Some(value) = fields.remove("execution_deadline") {
            let time = value
                .as_str()
                .and_then(|text| DateTime::parse_from_rfc3339(text).ok())
                .ok_or_else(|| {
                    bad_input(format!(
                        "execution_deadline {value} in the input: give an RFC 3339 time (the state machine's ItemSelector computes it from the execution's start)"
                    ))
                })?;
            step.execution_deadline = Some(time.to_utc());
        }
        if fields.get("action").and_then(Value::as_str) == Some("outcome") {
            fields.remove("action");
            let execution = match fields.remove("execution") {
                Some(Value::String(name)) if !name.is_empty() && !name.contains('/') => name,
                other => {
                    return Err(bad_input(format!(
                        "execution {} in an outcome request: give the execution's name ($states.context.Execution.Name)",
                        other.unwrap_or(Value::Null)
                    )));
                }
            };
            let map = fields.remove("map").unwrap_or(Value::Null);
            if step.work.is_none() {
                return Err(bad_input(
                    "an outcome request without work: give the execution's working folder (s3://bucket/prefix)".into(),
                ));
            }
            step.outcome = Some((execution, map));
        }
        if let (Some(Value::String(account)), Some(Value::String(region))) =
            (fields.get("account_id"), fields.get("region"))
        {
            step.scope = Some((account.clone(), region.clone()));
        }
        Ok((event, step))
    }
}

/// An execution's working folder: `prefix` in `bucket`, read and written through a store at
/// the bucket's root (the Map's results lie beside the folder, under `map/`).
pub struct Work {
    store: Store,
    bucket: String,
    prefix: String,
}

fn scope_key(folder: &str, account: &str, region: &str) -> String {
    format!("{folder}{account}/{region}.json")
}

fn scope_of(line: &Value) -> Option<(String, String)> {
    Some((
        line.get("account_id")?.as_str()?.to_string(),
        line.get("region")?.as_str()?.to_string(),
    ))
}

fn parse(bytes: &[u8], what: &str) -> Result<Value, HandlerError> {
    serde_json::from_slice(bytes).map_err(|e| HandlerError {
        retryable: false,
        kind: "Store",
        message: format!("{what} is not JSON ({e}): it was not written by patchtrail; look at it"),
    })
}

impl Work {
    pub fn open(url: &str, deps: &Deps) -> Result<Work, HandlerError> {
        let (bucket, prefix) = url
            .strip_prefix("s3://")
            .and_then(|rest| rest.split_once('/'))
            .map(|(b, p)| (b.to_string(), p.trim_matches('/').to_string()))
            .filter(|(b, p)| !b.is_empty() && !p.is_empty())
            .ok_or_else(|| {
                bad_input(format!(
                    "work '{url}': give the execution's working folder as s3://bucket/folder (the Distributed Map reads its items from S3)"
                ))
            })?;
        let store = Store::open(&format!("s3://{bucket}"), &deps.s3)?;
        Ok(Work {
            store,
            bucket,
            prefix,
        })
    }

    /// Writes the plan and answers where the Map finds its items.
    pub async fn write_plan(
        &self,
        items: Vec<Value>,
        unreachable: Vec<Value>,
    ) -> Result<Value, HandlerError> {
        let count = items.len();
        self.store
            .put(
                &self.key(ITEMS),
                serde_json::to_vec(&items).unwrap_or_default(),
            )
            .await?;
        let plan = json!({"scopes": count, "unreachable": unreachable});
        self.store
            .put(
                &self.key(PLAN),
                serde_json::to_vec(&plan).unwrap_or_default(),
            )
            .await?;
        Ok(json!({
            "scopes": count,
            "unreachable": plan["unreachable"].as_array().map_or(0, Vec::len),
            "items": {"Bucket": self.bucket, "Key": self.key(ITEMS)},
        }))
    }

    /// The bucket-relative key of `key` in this folder.
    fn key(&self, key: &str) -> String {
        format!("{}/{key}", self.prefix)
    }

    /// What an earlier invocation of this execution recorded for `scope` (its commit, or that the
    /// organization denies it), if any. The working folder is the execution's, so (execution,
    /// account, region) is the idempotency key of a scope: an invocation retried after its answer
    /// was lost (`Lambda.ServiceException` after the commit) answers the run already committed
    /// instead of collecting the scope again as a new run.
    pub async fn recorded(
        &self,
        (account, region): &(String, String),
    ) -> Result<Option<Value>, HandlerError> {
        for folder in [COMMITTED, DENIED] {
            let key = self.key(&scope_key(folder, account, region));
            if let Some(body) = self.store.get_opt(&key).await? {
                return parse(&body, &key).map(Some);
            }
        }
        Ok(None)
    }

    /// Records what a scope's invocation came to: each committed run (`answer.scopes` lines
    /// with a `run_id`), each scope it could not commit, or its error. A commit whose record
    /// cannot be written fails the invocation: the outcome would not know of it.
    pub async fn record(
        &self,
        scope: Option<&(String, String)>,
        result: Result<Value, HandlerError>,
    ) -> Result<Value, HandlerError> {
        let answer = match result {
            Ok(answer) => answer,
            Err(e) if e.kind == "Denied" && scope.is_some() => {
                let Some((account, region)) = scope else {
                    return Err(e);
                };
                let line = json!({"account_id": account, "region": region, "denied": e.message});
                self.put_line(DENIED, account, region, &line).await?;
                return Ok(json!({"scopes": [line]}));
            }
            Err(e) => {
                if let Some((account, region)) = scope {
                    let line = json!({"account_id": account, "region": region, "error": format!("{}: {}", e.error_type(), e.message)});
                    if let Err(w) = self.put_line(FAILED, account, region, &line).await {
                        tracing::warn!(error = %w, "could not record the scope's failure");
                    }
                }
                return Err(e);
            }
        };
        for line in answer["scopes"].as_array().into_iter().flatten() {
            let Some((account, region)) = scope_of(line) else {
                continue;
            };
            let folder = if line.get("run_id").is_some() {
                COMMITTED
            } else {
                FAILED
            };
            if let Err(e) = self.put_line(folder, &account, &region, line).await {
                return Err(HandlerError {
                    retryable: false,
                    kind: "Store",
                    message: format!(
                        "scope {account}/{region}: {line} committed, but its record in s3://{}/{} could not be written ({e}); the organization outcome will list it as failed",
                        self.bucket, self.prefix
                    ),
                });
            }
        }
        Ok(answer)
    }

    async fn put_line(
        &self,
        folder: &str,
        account: &str,
        region: &str,
        line: &Value,
    ) -> Result<(), HandlerError> {
        let key = self.key(&scope_key(folder, account, region));
        Ok(self
            .store
            .put(&key, serde_json::to_vec(line).unwrap_or_default())
            .await?)
    }

    /// The lines recorded under `folder`, by scope.
    async fn lines(&self, folder: &str) -> Result<BTreeMap<(String, String), Value>, HandlerError> {
        let keys: Vec<String> = self
            .store
            .list_keys(&self.key(folder))
            .await?
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        let bodies = self.store.get_many(&keys).await?;
        let mut lines = BTreeMap::new();
        for (key, body) in keys.iter().zip(bodies) {
            let line = parse(&body, key)?;
            if let Some(scope) = scope_of(&line) {
                lines.insert(scope, line);
            }
        }
        Ok(lines)
    }

    /// Errors of the Map's child executions from its ResultWriter output, by scope: `Error: Cause`
    /// of each FAILED entry, and for PENDING ones that they never ran. Nothing when the Map wrote
    /// no results (it failed before, or they are not in this folder).
    async fn map_failures(&self, map: &Value) -> BTreeMap<(String, String), String> {
        let details = &map["ResultWriterDetails"];
        let manifests: Vec<(String, String)> =
            match (details["Bucket"].as_str(), details["Key"].as_str()) {
                (Some(bucket), Some(key)) => vec![(bucket.to_string(), key.to_string())],
                // The Map failed (its Catch passes only Error and Cause): every manifest a Map
                // Run of this execution wrote into its folder.
                _ => match self.store.list_keys(&self.key(MAP_RESULTS)).await {
                    Ok(keys) => keys
                        .into_iter()
                        .map(|(k, _)| k)
                        .filter(|k| k.ends_with("/manifest.json"))
                        .map(|k| (self.bucket.clone(), k))
                        .collect(),
                    Err(e) => {
                        tracing::warn!(error = %e, "the Map's results could not be listed");
                        Vec::new()
                    }
                },
            };
        let mut failures = BTreeMap::new();
        for (bucket, key) in manifests {
            let Some(manifest) = self
                .read_result(&bucket, &key)
                .await
                .and_then(|m| serde_json::from_slice::<Value>(&m).ok())
            else {
                tracing::warn!(bucket, key, "the Map's result manifest could not be read");
                continue;
            };
            for (status, files) in result_files(&manifest) {
                for file in files {
                    match self.read_result(&bucket, &file).await {
                        Some(body) => failures.extend(child_failures(status, &body)),
                        None => {
                            tracing::warn!(
                                bucket,
                                file,
                                "a result file of the Map could not be read"
                            )
                        }
                    }
                }
            }
        }
        failures
    }

    /// An object the Map wrote, by its bucket and key, if it is in the working bucket.
    async fn read_result(&self, bucket: &str, key: &str) -> Option<bytes::Bytes> {
        if bucket != self.bucket {
            return None;
        }
        self.store.get(key).await.ok()
    }

    /// Compares the plan with what each scope recorded, writes the outcome object into the
    /// history and answers its summary.
    pub async fn outcome(
        &self,
        history: &Store,
        execution: &str,
        map: Value,
    ) -> Result<Value, HandlerError> {
        let items = self.key(ITEMS);
        let planned: Vec<Value> =
            serde_json::from_value(parse(&self.store.get(&items).await?, &items)?).map_err(
                |e| {
                    bad_input(format!(
                        "{items} in s3://{} is not the plan's list of scopes ({e})",
                        self.bucket
                    ))
                },
            )?;
        let plan_key = self.key(PLAN);
        let plan = parse(&self.store.get(&plan_key).await?, &plan_key)?;
        let committed_lines = self.lines(COMMITTED).await?;
        let failed_lines = self.lines(FAILED).await?;
        let denied_lines = self.lines(DENIED).await?;
        let from_map = self.map_failures(&map).await;
        let mut committed = Vec::new();
        let mut failed = Vec::new();
        let mut denied = Vec::new();
        for scope in planned.iter().filter_map(scope_of) {
            if let Some(line) = committed_lines.get(&scope) {
                committed.push(line.clone());
                continue;
            }
            if let Some(line) = denied_lines.get(&scope) {
                denied.push(line.clone());
                continue;
            }
            let error = failed_lines
                .get(&scope)
                .and_then(|l| l["error"].as_str().map(str::to_string))
                .or_else(|| from_map.get(&scope).cloned())
                .unwrap_or_else(|| {
                    "no committed run: the scope's child execution failed, timed out or never ran (see the Map Run)".into()
                });
            failed.push(json!({"account_id": scope.0, "region": scope.1, "error": error}));
        }
        let unreachable = plan["unreachable"].as_array().cloned().unwrap_or_default();
        // Denied scopes do not fail the execution, but an execution that committed nothing did
        // not collect: every scope denied reads as a broken set-up, not a quiet week.
        let ok = failed.is_empty()
            && unreachable.is_empty()
            && map.get("Error").is_none()
            && (!committed.is_empty() || planned.is_empty());
        let status = if ok { "committed" } else { "failed" };
        let record = json!({
            "execution": execution,
            "status": status,
            "planned": planned.len(),
            "committed": committed,
            "failed": failed,
            "denied": denied,
            "unreachable": unreachable,
            "map": map,
        });
        let key = format!("{OUTCOMES}{execution}.json");
        let bytes = serde_json::to_vec(&record).unwrap_or_default();
        // A retried step finds its own record (create answers Written); a different one is
        // another execution's.
        if let Created::Exists(_) = history.create(&key, bytes).await? {
            return Err(HandlerError {
                retryable: false,
                kind: "Store",
                message: format!(
                    "{key} in {} already holds another outcome of execution {execution}; it is kept as it is: look at both",
                    history.url()
                ),
            });
        }
        let location = format!("{}/{key}", history.url().trim_end_matches('/'));
        Ok(json!({
            "status": status,
            "outcome": location,
            "planned": planned.len(),
            "committed": committed.len(),
            "failed": failed.len(),
            "denied": denied.len(),
            "unreachable": unreachable.len(),
            "cause": cause(&record, &location),
        }))
    }
}

/// `(status, keys)` of the FAILED and PENDING result files a ResultWriter manifest lists
/// (`{"ResultFiles": {"FAILED": [{"Key", "Size"}], "PENDING": [...], "SUCCEEDED": [...]}}`).
fn result_files(manifest: &Value) -> Vec<(&'static str, Vec<String>)> {
    ["FAILED", "PENDING"]
        .into_iter()
        .map(|status| {
            let keys = manifest["ResultFiles"][status]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|f| f["Key"].as_str().map(str::to_string))
                .collect();
            (status, keys)
        })
        .collect()
}

/// The scopes of one result file's child executions and what became of them. Each entry's
/// `Input` is the child's input as JSON text (`{"request", "scope", "work"}`, the Map's
/// ItemSelector); a FAILED entry carries the child's `Error` and `Cause`.
fn child_failures(status: &str, body: &[u8]) -> Vec<((String, String), String)> {
    let entries: Vec<Value> = serde_json::from_slice(body).unwrap_or_default();
    entries
        .iter()
        .filter_map(|entry| {
            let input: Value = serde_json::from_str(entry["Input"].as_str()?).ok()?;
            let scope = scope_of(&input["scope"])?;
            let what = if status == "PENDING" {
                "never ran: the Map Run stopped first".to_string()
            } else {
                format!(
                    "{}: {}",
                    entry["Error"].as_str().unwrap_or("child execution failed"),
                    entry["Cause"].as_str().unwrap_or("")
                )
            };
            Some((scope, what))
        })
        .collect()
}

/// The execution's failure cause: counts and the first scopes, and where the rest are named.
fn cause(record: &Value, location: &str) -> String {
    let name = |l: &Value| {
        let scope = match l["region"].as_str() {
            Some(region) => format!("{}/{region}", l["account_id"].as_str().unwrap_or("?")),
            None => l["account_id"].as_str().unwrap_or("?").to_string(),
        };
        let error: String = l["error"]
            .as_str()
            .unwrap_or("")
            .chars()
            .take(200)
            .collect();
        format!("{scope} ({error})")
    };
    let list = |key: &str| {
        let all = record[key].as_array().cloned().unwrap_or_default();
        let mut names: Vec<String> = all.iter().take(NAMED_IN_CAUSE).map(name).collect();
        if all.len() > NAMED_IN_CAUSE {
            names.push(format!("and {} more", all.len() - NAMED_IN_CAUSE));
        }
        (all.len(), names.join("; "))
    };
    let (failed, failed_names) = list("failed");
    let (unreachable, unreachable_names) = list("unreachable");
    let mut parts = Vec::new();
    if failed > 0 {
        parts.push(format!(
            "{failed} of {} scopes not committed: {failed_names}",
            record["planned"]
        ));
    }
    if unreachable > 0 {
        parts.push(format!(
            "{unreachable} accounts unreachable: {unreachable_names}"
        ));
    }
    if let Some(error) = record["map"]["Error"].as_str() {
        parts.push(format!("the Map failed with {error}"));
    }
    let denied = record["denied"].as_array().map_or(0, Vec::len);
    if parts.is_empty() && record["committed"].as_array().is_some_and(Vec::is_empty) && denied > 0 {
        parts.push(format!(
            "no scope committed: all {denied} planned scopes were denied by the organization (SCP or region not enabled); set Regions to the regions it allows"
        ));
    }
    if parts.is_empty() {
        return if denied > 0 {
            format!(
                "every scope committed but {denied} the organization denies (SCP or region not enabled); the outcome {location} names them"
            )
        } else {
            format!("every scope committed; the outcome is {location}")
        };
    }
    format!(
        "{}; the outcome {location} names them all",
        parts.join("; ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denied_scopes_are_named_apart_and_an_execution_that_committed_nothing_says_so() {
        let denied = json!([{"account_id": "111111111111", "region": "af-south-1", "denied": "AuthFailure"}]);
        let some = json!({"planned": 3, "committed": [{"account_id": "1"}], "failed": [], "denied": denied, "unreachable": [], "map": {}});
        assert!(
            cause(&some, "s3://h/o.json")
                .starts_with("every scope committed but 1 the organization denies")
        );
        let none = json!({"planned": 1, "committed": [], "failed": [], "denied": denied, "unreachable": [], "map": {}});
        assert!(
            cause(&none, "s3://h/o.json")
                .starts_with("no scope committed: all 1 planned scopes were denied")
        );
    }

    /// A FAILED result file as "ResultWriter (Map)" of the Step Functions Developer Guide shows
    /// one: the child's metadata, its input as JSON text, its error and cause.
    const FAILED_FILE: &str = r#"[{
        "Cause": "{\"errorMessage\":\"ec2:DescribeInstances: UnauthorizedOperation\",\"errorType\":\"Fatal.Aws\"}",
        "Error": "Fatal.Aws",
        "ExecutionArn": "arn:aws:states:us-east-1:111111111111:execution:patchtrail-organization/CollectScopes:0c2bd6e5-3d25-3d27-9a39-6b6e1b0a7f35",
        "Input": "{\"request\":{\"s3_bucket\":\"h/\"},\"scope\":{\"account_id\":\"222222222222\",\"region\":\"ap-northeast-1\"},\"work\":\"s3://w/e\"}",
        "InputDetails": {"Included": true},
        "Name": "0c2bd6e5-3d25-3d27-9a39-6b6e1b0a7f35",
        "RedriveCount": 0,
        "RedriveStatus": "REDRIVABLE",
        "StartDate": "2026-12-01T03:00:05.125Z",
        "StateMachineArn": "arn:aws:states:us-east-1:111111111111:stateMachine:patchtrail-organization/CollectScopes",
        "Status": "FAILED",
        "StopDate": "2026-12-01T03:00:09.931Z"
    }]"#;

    #[test]
    fn a_failed_child_of_the_map_results_names_its_scope_and_error() {
        let manifest = json!({
            "DestinationBucket": "w",
            "MapRunArn": "arn:aws:states:us-east-1:111111111111:mapRun:patchtrail-organization/CollectScopes:0c2b",
            "ResultFiles": {"FAILED": [{"Key": "e/map/0c2b/FAILED_0.json", "Size": 100}], "PENDING": [], "SUCCEEDED": []}
        });
        assert_eq!(
            result_files(&manifest),
            vec![
                ("FAILED", vec!["e/map/0c2b/FAILED_0.json".to_string()]),
                ("PENDING", vec![])
            ]
        );
        let failures = child_failures("FAILED", FAILED_FILE.as_bytes());
        assert_eq!(failures.len(), 1);
        assert_eq!(
            failures[0].0,
            ("222222222222".into(), "ap-northeast-1".into())
        );
        assert!(
            failures[0].1.starts_with("Fatal.Aws: {\"errorMessage\""),
            "{}",
            failures[0].1
        );
        assert_eq!(
            child_failures("PENDING", FAILED_FILE.as_bytes())[0].1,
            "never ran: the Map Run stopped first"
        );
        assert!(child_failures("FAILED", b"not json").is_empty());
    }

    #[test]
    fn the_state_machine_fields_are_taken_out_of_the_input() {
        let (rest, step) = Step::split(json!({
            "s3_bucket": "h/", "account_id": "222222222222", "region": "us-east-1",
            "work": "s3://w/exec-1", "resumable": true,
            "execution_deadline": "2026-12-07T22:00:00.000Z"
        }))
        .expect("splits");
        assert_eq!(
            rest,
            json!({"s3_bucket": "h/", "account_id": "222222222222", "region": "us-east-1", "resumable": true})
        );
        assert_eq!(step.work.as_deref(), Some("s3://w/exec-1"));
        assert_eq!(
            step.scope,
            Some(("222222222222".into(), "us-east-1".into()))
        );
        assert!(step.outcome.is_none());
        assert_eq!(
            step.execution_deadline.map(|t| t.to_rfc3339()).as_deref(),
            Some("2026-12-07T22:00:00+00:00")
        );

        let (rest, step) = Step::split(json!({
            "s3_bucket": "h/", "action": "outcome", "execution": "weekly-1",
            "work": "s3://w/weekly-1", "map": {"MapRunArn": "arn"}
        }))
        .expect("splits");
        assert_eq!(rest, json!({"s3_bucket": "h/"}));
        assert_eq!(
            step.outcome,
            Some(("weekly-1".into(), json!({"MapRunArn": "arn"})))
        );

        let e = Step::split(json!({"s3_bucket": "h/", "work": 3})).expect_err("not a URL");
        assert!(e.message.starts_with("work 3 in the input"), "{e}");
        let e = Step::split(json!({"s3_bucket": "h/", "action": "outcome", "work": "s3://w/x"}))
            .expect_err("no execution");
        assert!(e.message.contains("execution null"), "{e}");
    }

    #[test]
    fn the_cause_names_the_first_failures_and_where_the_rest_are() {
        let failed: Vec<Value> = (0..7)
            .map(|i| json!({"account_id": format!("11111111111{i}"), "region": "us-east-1", "error": "Fatal.Aws: denied"}))
            .collect();
        let record = json!({"planned": 40, "failed": failed, "unreachable": [{"account_id": "333333333333", "region": null, "error": "sts:AssumeRole: AccessDenied"}], "map": {}});
        let text = cause(&record, "s3://h/p/_patchtrail/organization-runs/e.json");
        assert!(
            text.starts_with(
                "7 of 40 scopes not committed: 111111111110/us-east-1 (Fatal.Aws: denied); "
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "and 2 more; 1 accounts unreachable: 333333333333 (sts:AssumeRole: AccessDenied)"
            ),
            "{text}"
        );
        assert!(
            text.ends_with(
                "the outcome s3://h/p/_patchtrail/organization-runs/e.json names them all"
            ),
            "{text}"
        );
    }
}
