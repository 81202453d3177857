//! After a run commits, its scope's findings into AWS Security Hub, when the input asks
//! (`"export": ["security-hub"]`, docs/semantics.md §9.3): what `patchtrail export security-hub`
//! sends for that account and region as of the commit, with the default SLA policy. The findings
//! go from the scope's own account (the member role in other accounts, as the collect reached
//! it). The run is history whatever the export does: a failed export is named in the answer,
//! and the next week's export sends every finding again, as of its own time.

use crate::Deps;
use chrono::Utc;
use patchtrail_collect::ScopePlan;
use patchtrail_collect::security_hub::{ImportBatch, import_findings};
use patchtrail_query::export::asff::{AsffOptions, batches};
use patchtrail_query::{
    DEFAULT_STALE_DAYS, Damage, Kev, LoadedHistory, ScopeFilter, Selection, SlaPolicy, Waivers,
};
use patchtrail_store::Store;
use serde_json::{Value, json};

/// Exports the findings of `(account, region)` in `store` as of now; the answer's
/// `security_hub` member: `{"imported", "calls", "failed": [...]}` or `{"error": ...}`.
pub async fn security_hub(
    deps: &Deps,
    store: &Store,
    account: &str,
    region: &str,
    plan: &ScopePlan,
) -> Value {
    match send(deps, store, account, region, plan).await {
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
    let (batches, too_large) = batches(export.asff(AsffOptions::default()));
    let batches: Vec<ImportBatch> = batches
        .into_iter()
        .map(|b| ImportBatch {
            account_id: b.account_id,
            region: b.region,
            findings: b.findings,
        })
        .collect();
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
    Ok(json!({
        "imported": report.imported,
        "calls": report.calls,
        "too_large": too_large,
        "failed": report.failed.iter().map(|f| json!({
            "id": f.id, "code": f.code, "message": f.message,
        })).collect::<Vec<_>>(),
    }))
}
