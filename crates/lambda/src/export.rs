//! After a run commits, its scope's findings into AWS Security Hub, when the input asks
//! (`"export": ["security-hub"]`, docs/semantics.md §9.3): what `patchtrail export security-hub`
//! sends for that account and region as of the commit, with the default SLA policy. The findings
//! go from the scope's own account (the member role in other accounts, as the collect reached
//! it). The run is history whatever the export does: a failed export is named in the answer,
//! and the next week's export sends every finding again, as of its own time.

use crate::Deps;
use chrono::Utc;
use patchtrail_collect::ScopePlan;
use patchtrail_collect::security_hub::import_findings;
use patchtrail_query::export::asff::{AsffOptions, batches};
use patchtrail_query::{
    DEFAULT_STALE_DAYS, Damage, Kev, LoadedHistory, ScopeFilter, Selection, SlaPolicy, Waivers,
};
use patchtrail_store::Store;
use serde_json::{Value, json};

/// Refused findings an answer names (it travels through Step Functions, whose payloads are
/// limited to 256 KiB); the log names them all.
const NAMED: usize = 20;

/// When the export must have ended: the invocation's own stop point, so that the answer (and
/// the organization's record of the committed scope) is given before Lambda's deadline; a
/// timed-out invocation would be retried and collect the scope again.
#[derive(Debug, Clone, Copy)]
pub struct ExportPlan {
    pub until: Option<tokio::time::Instant>,
}

/// Exports the findings of `(account, region)` in `store` as of now; the answer's
/// `security_hub` member: `{"imported", "calls", "failed_count", "failed": [first 20]}` or
/// `{"error": ...}`.
pub async fn security_hub(
    deps: &Deps,
    store: &Store,
    (account, region): (&str, &str),
    plan: &ScopePlan,
    export: &ExportPlan,
) -> Value {
    let sent = send(deps, store, account, region, plan);
    let outcome = match export.until {
        Some(until) => tokio::time::timeout_at(until, sent)
            .await
            .unwrap_or_else(|_| {
                Err("stopped at the invocation's deadline; the next run exports every finding again".into())
            }),
        None => sent.await,
    };
    match outcome {
        Ok(answer) => answer,
        Err(error) => {
            tracing::error!(account, region, %error, "the Security Hub export failed");
            json!({ "error": error })
        }
    }
}

async fn send(
    deps: &Deps,
    store: &Store,
    account: &str,
    region: &str,
    plan: &ScopePlan,
) -> Result<Value, String> {
    let now = Utc::now();
    let scope = ScopeFilter {
        accounts: vec![account.to_string()],
        regions: vec![region.to_string()],
    };
    let history = LoadedHistory::load_with(
        store,
        &Selection::Range(None, Some(now)),
        &scope,
        Damage::Refuse,
    )
    .await
    .map_err(|e| e.to_string())?;
    let export = history
        .export(
            now,
            "now",
            DEFAULT_STALE_DAYS,
            &SlaPolicy::default(),
            &Waivers::default(),
            &Kev::default(),
        )
        .map_err(|e| e.to_string())?;
    let (batches, unsent) = batches(export.asff(AsffOptions::default()));
    let report = import_findings(&deps.aws, plan, batches)
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(
        account,
        region,
        imported = report.imported,
        failed = report.failed.len(),
        "findings exported to Security Hub"
    );
    for f in &report.failed {
        tracing::warn!(id = %f.id, code = %f.code, message = %f.message, "finding refused by Security Hub");
    }
    let named = |message: &str| message.chars().take(200).collect::<String>();
    Ok(json!({
        "imported": report.imported,
        "calls": report.calls,
        "unsent": unsent.len(),
        "failed_count": report.failed.len(),
        "failed": report.failed.iter().take(NAMED).map(|f| json!({
            "id": f.id, "code": f.code, "message": named(&f.message),
        })).collect::<Vec<_>>(),
    }))
}
