//! `bootstrap` for provided.al2023: SDK configuration built once, then one handler call per event.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use patchtrail_lambda::{Deps, handle};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    // JSON logs to CloudWatch; PATCHTRAIL_LOG (or RUST_LOG) sets the level.
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PATCHTRAIL_LOG").unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new("info,aws_config=warn,aws_smithy_runtime=warn")
            }),
        )
        .without_time()
        .init();
    let deps = Deps::from_env().await;
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        let deps = deps.clone();
        async move {
            let deadline = chrono::DateTime::from_timestamp_millis(event.context.deadline as i64);
            handle(&deps, event.payload, deadline).await
        }
    }))
    .await
}
