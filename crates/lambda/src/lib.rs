//! The Lambda handler: an EventBridge Scheduler event in, one committed run out.
//!
//! The event is the seed's `{"s3_bucket": "...", "s3_path": "..."}` plus optional patchtrail
//! options (`tag_key`, `tags`, `classifications`, `all_classifications`, `format`). The handler is
//! a plain async function over [`Deps`] (SDK configuration and S3 access built once in `main`), so
//! tests call it directly with recorded events. Errors say whether a retry can help: the error
//! type starts with `Retryable.` or `Fatal.`, and input or permission problems are `Fatal`.

use chrono::{DateTime, Utc};
use patchtrail_collect::{
    AwsFleet, CollectError, CollectOptions, Progress, SchedulerInput, StopSignal, collect_snapshot,
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
        let retryable = e.is_retryable() || matches!(e, CollectError::Stopped);
        let kind = match &e {
            CollectError::BadInput { .. }
            | CollectError::NoRegion
            | CollectError::UnknownRegion(_) => "BadInput",
            CollectError::NoCredentials(_)
            | CollectError::ExpiredCredentials(_)
            | CollectError::InvalidCredentials(_) => "Credentials",
            CollectError::Aws { .. } => "Aws",
            CollectError::Store(_) => "Store",
            CollectError::Stopped => "Timeout",
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

/// How long before the function's deadline the run stops (uncommitted) so that it can report.
const DEADLINE_MARGIN: Duration = Duration::from_secs(10);

/// Handles one scheduled invocation; `deadline` is the invocation's deadline, if known.
pub async fn handle(
    deps: &Deps,
    event: Value,
    deadline: Option<DateTime<Utc>>,
) -> Result<Value, HandlerError> {
    let input: SchedulerInput = serde_json::from_value(event.clone()).map_err(|e| {
        HandlerError::fatal(
            "BadInput",
            format!("the schedule's input is not a patchtrail input ({e}): {event}"),
        )
    })?;
    let resolved = input.resolve()?;
    let options = CollectOptions {
        tag: resolved.tag,
        classifications: resolved.classifications,
        ..CollectOptions::default()
    };
    let store = Store::open(&resolved.store_url, &deps.s3)?;
    store.check_writable().await?;
    let progress = Arc::new(Progress::default());
    let fleet = AwsFleet::new(&deps.aws, &options, progress.clone())?;
    let stop = StopSignal::default();
    let timer = deadline.map(|d| {
        let stop = stop.clone();
        let wait = (d - Utc::now())
            .to_std()
            .unwrap_or(Duration::ZERO)
            .saturating_sub(DEADLINE_MARGIN);
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            tracing::warn!("the invocation's deadline is near: stopping before commit");
            stop.stop();
        })
    });
    let result = collect_snapshot(
        &fleet,
        &store,
        &options,
        resolved.format,
        None,
        &progress,
        &stop,
    )
    .await;
    if let Some(t) = timer {
        t.abort();
    }
    let report = result?;
    let m = &report.committed.manifest;
    let summary = json!({
        "status": if report.errors.is_empty() { "ok" } else { "partial" },
        "run_id": m.run_id,
        "snapshot_time": m.snapshot_time,
        "store": store.url(),
        "format": m.format,
        "manifest": report.committed.manifest_key,
        "counts": m.counts,
        "errors": report.errors.iter().map(|(id, e)| json!({"instance_id": id, "code": e.code, "message": e.message})).collect::<Vec<_>>(),
    });
    tracing::info!(run_id = %m.run_id, instances = m.counts.instances, patches = m.counts.patches, errors = report.errors.len(), "run committed");
    Ok(summary)
}
