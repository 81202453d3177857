//! The Lambda handler: an EventBridge Scheduler event in, one committed run per scope out.
//!
//! The event is the seed's `{"s3_bucket": "...", "s3_path": "..."}` plus optional patchtrail
//! options (`tag_key`, `tags`, `classifications`, `all_classifications`, `format`) and scopes
//! (`accounts`/`organization`/`account_id`, `regions`/`region`, `role_name`, `external_id`).
//! With `"action": "plan"` it lists the scopes instead: the organization state machine's first
//! step, which then invokes it once per scope and last with `"action": "outcome"`
//! (deploy/patchtrail-organization.yaml; the state machine's `work` folder and what goes there are
//! in [`organization`]). With
//! `"resumable": true` (one scope) a run that the deadline stops is suspended, not lost: the
//! answer `{"status": "suspended", "resume": RUN_ID}` asks to be invoked again with that `resume`,
//! and the run commits once, in the invocation that completes it. The handler is
//! a plain async function over [`Deps`] (SDK configuration and S3 access built once in `main`), so
//! tests call it directly with recorded events. Errors say whether a retry can help: the error
//! type starts with `Retryable.` or `Fatal.`, and input or permission problems are `Fatal`.

use chrono::{DateTime, Utc};
pub mod export;
pub mod organization;

use organization::{Step, Work};
use patchtrail_collect::{
    AwsFleet, CollectError, CollectOptions, Progress, ResolvedInput, RunControl, SchedulerInput,
    ScopeOutcome, ScopePlan, StopSignal, collect_plan, collect_snapshot, resolve_scopes,
};
use patchtrail_store::{AwsAccess, Store, StoreError};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// What the handler needs from its environment, built once per container.
#[derive(Clone)]
pub struct Deps {
    pub aws: aws_types::SdkConfig,
    pub s3: AwsAccess,
}

impl Deps {
    /// From the standard AWS chain (the Lambda's role, region and any endpoint overrides).
    pub async fn from_env() -> Deps {
        let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let s3 = AwsAccess::from_sdk_config(&aws);
        Deps { aws, s3 }
    }
}

/// A failed invocation, and whether EventBridge Scheduler / Lambda should try it again.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct HandlerError {
    pub retryable: bool,
    pub kind: &'static str,
    pub message: String,
}

impl HandlerError {
    fn fatal(kind: &'static str, message: impl Into<String>) -> HandlerError {
        HandlerError {
            retryable: false,
            kind,
            message: message.into(),
        }
    }

    /// `Retryable.<Kind>` or `Fatal.<Kind>`: the error type Lambda reports.
    pub fn error_type(&self) -> String {
        format!(
            "{}.{}",
            if self.retryable { "Retryable" } else { "Fatal" },
            self.kind
        )
    }
}

impl From<CollectError> for HandlerError {
    fn from(e: CollectError) -> HandlerError {
        let retryable =
            e.is_retryable() || matches!(e, CollectError::Stopped | CollectError::Suspended { .. });
        let kind = match &e {
            // An SCP or a region not enabled (`organization` records the scope as denied).
            e if e.is_forbidden_by_organization() => "Denied",
            CollectError::BadInput { .. }
            | CollectError::NoRegion
            | CollectError::UnknownRegion(_) => "BadInput",
            CollectError::NoCredentials(_)
            | CollectError::ExpiredCredentials(_)
            | CollectError::InvalidCredentials(_) => "Credentials",
            CollectError::Aws { .. } => "Aws",
            CollectError::Store(_) => "Store",
            CollectError::Stopped | CollectError::Suspended { .. } => "Timeout",
        };
        HandlerError {
            retryable,
            kind,
            message: e.to_string(),
        }
    }
}

impl From<StoreError> for HandlerError {
    fn from(e: StoreError) -> HandlerError {
        HandlerError {
            retryable: e.is_retryable(),
            kind: "Store",
            message: e.to_string(),
        }
    }
}

impl From<HandlerError> for lambda_runtime::Diagnostic {
    fn from(e: HandlerError) -> lambda_runtime::Diagnostic {
        lambda_runtime::Diagnostic {
            error_type: e.error_type(),
            error_message: e.message,
        }
    }
}

/// How long before the function's deadline the run stops so that it can suspend (upload what
/// it holds, record its checkpoint) and report: at most this, and a fifth of the time there is.
/// A suspend took 0.15 s at 5,000 instances and 0.24 s at 20,000 into S3 on loopback
/// (`scripts/bench-collect --only suspend`, bench/README.md): 10 s leaves a real endpoint's upload
/// latency its room; a suspend that still outlasts it ends in `Sandbox.Timedout`, which the
/// organization state machine retries.
const DEADLINE_MARGIN: Duration = Duration::from_secs(10);

/// When to stop, out of the time left before the deadline.
fn stop_after(left: Duration) -> Duration {
    left.saturating_sub(DEADLINE_MARGIN.min(left / 5))
}

/// Handles one scheduled invocation; `deadline` is the invocation's deadline, if known.
pub async fn handle(
    deps: &Deps,
    event: Value,
    deadline: Option<DateTime<Utc>>,
) -> Result<Value, HandlerError> {
    let (event, step) = Step::split(event)?;
    let input: SchedulerInput = serde_json::from_value(event.clone()).map_err(|e| {
        HandlerError::fatal(
            "BadInput",
            format!("the schedule's input is not a patchtrail input ({e}): {event}"),
        )
    })?;
    let resolved = input.resolve()?;
    let work = step
        .work
        .as_deref()
        .map(|url| Work::open(url, deps))
        .transpose()?;
    if let (Some((execution, map)), Some(work)) = (step.outcome, &work) {
        let history = Store::open(&resolved.store_url, &deps.s3)?;
        return work.outcome(&history, &execution, map).await;
    }
    if resolved.plan_only {
        return plan(deps, &resolved.scopes, work.as_ref()).await;
    }
    // A scope's first invocation retried after a lost answer: its run is already history.
    if let (Some(work), Some(scope)) = (&work, &step.scope)
        && resolved.control.resume.is_none()
        && let Some(line) = work.recorded(scope).await?
    {
        tracing::info!(%line, "this scope was recorded by an earlier invocation of the execution");
        return Ok(json!({"status": "ok", "scopes": [line]}));
    }
    if let (Some(work), Some(scope), Some(until)) = (&work, &step.scope, step.execution_deadline)
        && Utc::now() >= until
    {
        let late = past_execution_deadline(scope, until, resolved.control.resume.as_deref());
        return work.record(Some(scope), Err(late)).await;
    }
    let result = collect(deps, resolved, deadline).await;
    match &work {
        Some(work) => work.record(step.scope.as_ref(), result).await,
        None => result,
    }
}

/// The error of a scope invoked after its execution's deadline: it is not started (or, with
/// `resume`, not continued), so that the Map drains and the outcome names it before the
/// execution's timeout. `Fatal`: Step Functions does not retry it.
fn past_execution_deadline(
    (account, region): &(String, String),
    until: DateTime<Utc>,
    resume: Option<&str>,
) -> HandlerError {
    let what = match resume {
        None => format!("scope {account}/{region} was not started"),
        Some(run_id) => format!(
            "scope {account}/{region} was not continued: its run {run_id} stays suspended at its checkpoint (`patchtrail collect --resume {run_id}` finishes it within 24 hours of its start)"
        ),
    };
    HandlerError::fatal(
        "Deadline",
        format!(
            "{what}: the execution passed {}, after which no scope starts, so that its outcome is written before the execution times out; spread the scopes over more concurrency or a longer ScopeStartHours (deploy/README.md, \"Sizing against the 24-hour limit\")",
            until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ),
    )
}

/// Collects the input's scopes, each committed as its own run.
async fn collect(
    deps: &Deps,
    resolved: ResolvedInput,
    deadline: Option<DateTime<Utc>>,
) -> Result<Value, HandlerError> {
    let options = CollectOptions {
        tag: resolved.tag,
        classifications: resolved.classifications,
        ..CollectOptions::default()
    };
    let store = Store::open(&resolved.store_url, &deps.s3)?;
    store.check_writable().await?;
    let stop = StopSignal::default();
    let timer = deadline.map(|d| {
        let stop = stop.clone();
        let wait = stop_after((d - Utc::now()).to_std().unwrap_or(Duration::ZERO));
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            tracing::warn!("the invocation's deadline is near: stopping before commit");
            stop.stop();
        })
    });
    let control = &resolved.control;
    // The export, when asked, must end where the collect would have stopped.
    let until = deadline.map(|d| {
        tokio::time::Instant::now()
            + stop_after((d - Utc::now()).to_std().unwrap_or(Duration::ZERO))
    });
    let export = resolved
        .export_security_hub
        .then_some(export::ExportPlan { until });
    let export = export.as_ref();
    let result = if resolved.scopes.is_multi() {
        collect_many(
            deps,
            &store,
            &options,
            &resolved.scopes,
            control,
            &stop,
            export,
        )
        .await
    } else {
        collect_one(deps, &store, &options, control, &stop, export).await
    };
    if let Some(t) = timer {
        t.abort();
    }
    result
}

/// The answer of an invocation whose run the deadline suspended: invoke again with `resume`.
/// A run that the whole invocation did not advance by one instance would loop for ever: that
/// is a timeout (the fleet cannot even be listed in the time there is).
fn suspended(e: CollectError, store: &Store) -> Result<Value, HandlerError> {
    match e {
        CollectError::Suspended {
            run_id,
            checkpoint,
            instances,
            added,
        } if added > 0 => {
            tracing::info!(run_id, checkpoint, instances, added, "run suspended");
            Ok(json!({
                "status": "suspended",
                "resume": run_id,
                "checkpoint": checkpoint,
                "instances": instances,
                "store": store.url(),
            }))
        }
        e => Err(e.into()),
    }
}

/// The scopes of the input: `{"scopes": [{account_id, region}], "failed": [{account_id, region,
/// error}]}`, or with a working folder (the organization state machine), both written there and
/// `{"scopes": N, "unreachable": M, "items": {"Bucket", "Key"}}` answered. Accounts whose role
/// cannot be assumed are listed as failed, not fanned out.
async fn plan(deps: &Deps, scopes: &ScopePlan, work: Option<&Work>) -> Result<Value, HandlerError> {
    let (scopes, failures) = resolve_scopes(&deps.aws, scopes).await?;
    let items: Vec<Value> = scopes
        .iter()
        .map(|s| json!({"account_id": s.account_id, "region": s.region}))
        .collect();
    let failed: Vec<Value> = failures
        .into_iter()
        .map(|f| ScopeOutcome::from(f).to_json())
        .collect();
    match work {
        Some(work) => work.write_plan(items, failed).await,
        None => Ok(json!({"scopes": items, "failed": failed})),
    }
}

/// The caller's own account and region, as the seed collected.
async fn collect_one(
    deps: &Deps,
    store: &Store,
    options: &CollectOptions,
    control: &RunControl,
    stop: &StopSignal,
    export: Option<&export::ExportPlan>,
) -> Result<Value, HandlerError> {
    let progress = Arc::new(Progress::default());
    let fleet = AwsFleet::new(&deps.aws, options, progress.clone())?;
    let report = match collect_snapshot(&fleet, store, options, control, &progress, stop).await {
        Ok(report) => report,
        Err(e) => return suspended(e, store),
    };
    let m = &report.committed.manifest;
    let mut summary = json!({
        "status": if report.errors.is_empty() { "ok" } else { "partial" },
        "run_id": m.run_id,
        "snapshot_time": m.snapshot_time,
        "store": store.url(),
        "format": m.format,
        "manifest": report.committed.manifest_key,
        "head": report.committed.entry.witness(),
        "counts": m.counts,
        "errors": report.errors.iter().map(|(id, e)| json!({"instance_id": id, "code": e.code, "message": e.message})).collect::<Vec<_>>(),
    });
    tracing::info!(run_id = %m.run_id, head = %report.committed.entry.witness(), instances = m.counts.instances, patches = m.counts.patches, errors = report.errors.len(), "run committed");
    if let Some(export) = export {
        let scope = (m.account_id.as_str(), m.region.as_str());
        summary["security_hub"] =
            export::security_hub(deps, store, scope, &ScopePlan::default(), export).await;
    }
    Ok(summary)
}

/// Every scope of the input (one, when the state machine invokes per scope), each committed as
/// its own run; fails only when no scope committed.
async fn collect_many(
    deps: &Deps,
    store: &Store,
    options: &CollectOptions,
    plan: &ScopePlan,
    control: &RunControl,
    stop: &StopSignal,
    export: Option<&export::ExportPlan>,
) -> Result<Value, HandlerError> {
    let progress = Arc::new(Progress::default());
    let mut outcomes =
        collect_plan(&deps.aws, plan, store, options, control, &progress, stop).await?;
    if let [
        ScopeOutcome {
            result: Err(CollectError::Suspended { .. }),
            ..
        },
    ] = outcomes.as_slice()
        && let Some(Err(e)) = outcomes.pop().map(|o| o.result)
    {
        return suspended(e, store);
    }
    let partial = outcomes.iter().any(ScopeOutcome::failed);
    let mut lines: Vec<Value> = outcomes.iter().map(ScopeOutcome::to_json).collect();
    if let Some(export) = export {
        for (line, outcome) in lines.iter_mut().zip(&outcomes) {
            if let (Ok(_), Some(region)) = (&outcome.result, &outcome.region) {
                let scope = (outcome.account_id.as_str(), region.as_str());
                line["security_hub"] = export::security_hub(deps, store, scope, plan, export).await;
            }
        }
    }
    if outcomes.iter().all(|o| o.result.is_err()) {
        return Err(match outcomes.into_iter().find_map(|o| o.result.err()) {
            Some(e) => e.into(),
            None => HandlerError::fatal(
                "BadInput",
                "the input names no (account, region) to collect",
            ),
        });
    }
    tracing::info!(scopes = lines.len(), partial, "scopes committed");
    Ok(json!({
        "status": if partial { "partial" } else { "ok" },
        "store": store.url(),
        "scopes": lines,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_stops_in_time_to_suspend_whatever_the_timeout() {
        let s = Duration::from_secs;
        assert_eq!(stop_after(s(900)), s(890), "15 minutes: 10 s to spare");
        assert_eq!(
            stop_after(s(4)),
            Duration::from_millis(3_200),
            "a fifth of a short one"
        );
        assert_eq!(
            stop_after(Duration::ZERO),
            Duration::ZERO,
            "a deadline already past"
        );
    }
}
