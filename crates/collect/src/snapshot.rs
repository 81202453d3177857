//! One collection run from start to commit: the seed's state machine, done properly.
//!
//! identity → discovery (all pages) → patch states (50 ids a call) → patches per instance
//! (bounded concurrency, streamed into the store as they arrive) → manifest. Per-instance
//! failures are recorded in the run, never fatal; only failures that make the whole run
//! meaningless (no credentials, discovery failed, store unusable) abort it, before any commit.

use crate::aws::{AwsFleet, CallError, Ec2Instance, Patch, PatchStateSummary};
use crate::pacing::{Progress, StopSignal};
use crate::{CollectError, CollectOptions};
use chrono::{DateTime, SubsecRound, Utc};
use futures::{StreamExt, stream};
use patchtrail_model::{InstanceRecord, InstanceSnapshot, Outcome, PatchRecord, StoreFormat};
use patchtrail_store::{CommittedRun, RunStart, Store};
use std::collections::HashMap;
use std::sync::Arc;

/// The instant a snapshot represents, and who it was collected from.
struct RunIdentity {
    run_id: String,
    snapshot_time: DateTime<Utc>,
    account_id: String,
    region: String,
}

/// A committed run and the per-instance errors it recorded.
#[derive(Debug)]
pub struct SnapshotReport {
    pub committed: CommittedRun,
    /// `(instance id, error)` for instances whose collection failed after retries.
    pub errors: Vec<(String, CallError)>,
}

fn instance_record(
    id: &RunIdentity,
    ec2: &Ec2Instance,
    state: Option<&PatchStateSummary>,
    outcome: Outcome,
    error: Option<&CallError>,
    pages: &[Vec<PatchRecord>],
) -> InstanceRecord {
    let tags = serde_json::to_string(&ec2.tags).unwrap_or_else(|_| "{}".into());
    InstanceRecord {
        run_id: id.run_id.clone(),
        snapshot_time: id.snapshot_time,
        account_id: id.account_id.clone(),
        region: id.region.clone(),
        instance_id: ec2.instance_id.clone(),
        name: ec2.tags.get("Name").cloned(),
        ec2_state: ec2.state.clone(),
        platform: ec2.platform_details.clone(),
        instance_type: ec2.instance_type.clone(),
        launch_time: ec2.launch_time,
        tags,
        baseline_id: state.map(|s| s.baseline_id.clone()),
        patch_group: state.map(|s| s.patch_group.clone()),
        operation: state.map(|s| s.operation.clone()),
        operation_start_time: state.and_then(|s| s.operation_start_time),
        last_scan_time: state.and_then(|s| s.operation_end_time),
        installed_count: state.map(|s| s.installed),
        installed_other_count: state.map(|s| s.installed_other),
        installed_pending_reboot_count: state.and_then(|s| s.installed_pending_reboot),
        installed_rejected_count: state.and_then(|s| s.installed_rejected),
        missing_count: state.map(|s| s.missing),
        failed_count: state.map(|s| s.failed),
        not_applicable_count: state.map(|s| s.not_applicable),
        critical_non_compliant_count: state.and_then(|s| s.critical_non_compliant),
        security_non_compliant_count: state.and_then(|s| s.security_non_compliant),
        other_non_compliant_count: state.and_then(|s| s.other_non_compliant),
        outcome,
        error_code: error.map(|e| e.code.clone()),
        error_message: error.map(|e| e.message.clone()),
        patch_pages: pages.len() as i64,
        patch_rows: pages.iter().map(|p| p.len() as i64).sum(),
    }
}

fn patch_record(id: &RunIdentity, instance_id: &str, p: Patch) -> PatchRecord {
    PatchRecord {
        run_id: id.run_id.clone(),
        snapshot_time: id.snapshot_time,
        account_id: id.account_id.clone(),
        region: id.region.clone(),
        instance_id: instance_id.to_string(),
        kb_id: p.kb_id,
        title: p.title,
        classification: p.classification,
        severity: p.severity,
        state: p.state,
        installed_time: p.installed_time,
        cve_ids: p.cve_ids,
    }
}

/// Runs `work` on each item as its own task (so that signing and parsing spread over all
/// cores), as many at once as `limit()` says when each is started, yielding results as they
/// finish.
fn windowed<I, T, Fut>(
    items: I,
    limit: impl Fn() -> usize,
    work: impl FnMut(I::Item) -> Fut,
) -> impl futures::Stream<Item = Result<T, tokio::task::JoinError>>
where
    I: Iterator,
    Fut: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let running = futures::stream::FuturesUnordered::new();
    stream::unfold(
        (items, running, work, limit),
        |(mut items, mut running, mut work, limit)| async move {
            while running.len() < limit().max(1) {
                match items.next() {
                    Some(item) => running.push(tokio::spawn(work(item))),
                    None => break,
                }
            }
            let done = running.next().await?;
            Some((done, (items, running, work, limit)))
        },
    )
}

/// Patch-state summaries of all instances, 50 ids a call; a failed call marks its ids.
async fn all_patch_states(
    fleet: &AwsFleet,
    instances: &[Ec2Instance],
    concurrency: usize,
) -> HashMap<String, Result<PatchStateSummary, CallError>> {
    let chunks: Vec<Vec<String>> = instances
        .chunks(50)
        .map(|c| c.iter().map(|i| i.instance_id.clone()).collect())
        .collect();
    let results: Vec<_> = windowed(
        chunks.into_iter(),
        || fleet.states_window(concurrency),
        |ids| {
            let fleet = fleet.clone();
            async move {
                let r = fleet.patch_states(&ids).await;
                (ids, r)
            }
        },
    )
    .collect()
    .await;
    let mut out = HashMap::new();
    for joined in results {
        let (ids, result) = match joined {
            Ok(done) => done,
            Err(e) => {
                tracing::warn!(error = %e, "a DescribeInstancePatchStates task failed");
                continue;
            }
        };
        match result {
            Ok(mut found) => {
                for id in ids {
                    if let Some(s) = found.remove(&id) {
                        out.insert(id, Ok(s));
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, instances = ids.len(), "DescribeInstancePatchStates failed for a batch");
                for id in ids {
                    out.insert(id, Err(e.clone()));
                }
            }
        }
    }
    out
}

/// Lists the instances a collection would read, without reading their patches.
pub async fn discover_targets(
    fleet: &AwsFleet,
    options: &CollectOptions,
) -> Result<Vec<Ec2Instance>, CollectError> {
    fleet.account_id().await?;
    fleet.discover(&options.tag).await
}

/// Collects one snapshot of the fleet into `store` and commits it.
///
/// `snapshot_time` defaults to now; the demo passes its simulated dates.
pub async fn collect_snapshot(
    fleet: &AwsFleet,
    store: &Store,
    options: &CollectOptions,
    format: StoreFormat,
    snapshot_time: Option<DateTime<Utc>>,
    progress: &Progress,
    stop: &StopSignal,
) -> Result<SnapshotReport, CollectError> {
    let started_at = Utc::now().trunc_subsecs(0);
    let snapshot_time = snapshot_time.unwrap_or(started_at).trunc_subsecs(0);
    let stopped = || CollectError::Stopped;
    let account_id = stop
        .or_stop(fleet.account_id())
        .await
        .ok_or_else(stopped)??;
    let instances = stop
        .or_stop(fleet.discover(&options.tag))
        .await
        .ok_or_else(stopped)??;
    Progress::add(&progress.instances_total, instances.len() as u64);
    tracing::info!(instances = instances.len(), tag = %options.tag.key, "discovered the tagged fleet");
    let concurrency = options.concurrency.max(1);
    let mut states = stop
        .or_stop(all_patch_states(fleet, &instances, concurrency))
        .await
        .ok_or_else(stopped)?;

    // A denied action denies it for every instance: stop with the action named, before writing.
    let denied = |e: &CallError| crate::ACCESS_DENIED_CODES.contains(&e.code.as_str());
    if let Some(Err(e)) = states.values().find(|r| r.as_ref().is_err_and(denied)) {
        return Err(CollectError::Aws {
            operation: "ssm:DescribeInstancePatchStates",
            error: e.clone(),
        });
    }
    let mut writer = store
        .begin_run(RunStart {
            snapshot_time,
            started_at,
            account_id: account_id.clone(),
            region: fleet.region().to_string(),
            format,
            config: options.run_config(),
        })
        .await?;
    let id = RunIdentity {
        run_id: writer.run_id().to_string(),
        snapshot_time,
        account_id,
        region: fleet.region().to_string(),
    };
    // As many instances under way as the learnt pace needs at the measured latency.
    let classifications = Arc::new(options.classifications.clone());
    let results = windowed(
        instances.into_iter(),
        || fleet.window(concurrency),
        |ec2| {
            let (fleet, classifications) = (fleet.clone(), classifications.clone());
            async move {
                let result = fleet.patches(&ec2.instance_id, &classifications).await;
                (ec2, result)
            }
        },
    );
    let mut results = std::pin::pin!(results);

    let mut errors = Vec::new();
    while let Some(joined) = stop.or_stop(results.next()).await.ok_or_else(stopped)? {
        let (ec2, result) = joined.map_err(|e| CollectError::Aws {
            operation: "ssm:DescribeInstancePatches",
            error: CallError {
                code: "TaskFailed".into(),
                message: e.to_string(),
            },
        })?;
        // Stop between objects: what is written is whole, and without a manifest it is not history.
        if stop.is_stopped() {
            return Err(CollectError::Stopped);
        }
        let state = states.remove(&ec2.instance_id);
        let (outcome, error, pages) = match result {
            Ok(pages) => {
                let pages: Vec<Vec<PatchRecord>> = pages
                    .into_iter()
                    .map(|page| {
                        page.into_iter()
                            .map(|p| patch_record(&id, &ec2.instance_id, p))
                            .collect()
                    })
                    .collect();
                match &state {
                    Some(Err(e)) => (Outcome::Error, Some(e.clone()), pages),
                    _ => (Outcome::Ok, None, pages),
                }
            }
            Err(e) if denied(&e) => {
                return Err(CollectError::Aws {
                    operation: "ssm:DescribeInstancePatches",
                    error: e,
                });
            }
            Err(e) if e.code == "InvalidInstanceId" => (Outcome::Unmanaged, None, Vec::new()),
            Err(e) => (Outcome::Error, Some(e), Vec::new()),
        };
        match outcome {
            Outcome::Unmanaged => Progress::add(&progress.unmanaged, 1),
            Outcome::Error => Progress::add(&progress.errors, 1),
            Outcome::Ok => {}
        }
        if let Some(e) = &error {
            tracing::warn!(instance = %ec2.instance_id, error = %e, "instance not fully collected");
            errors.push((ec2.instance_id.clone(), e.clone()));
        }
        let summary = state.as_ref().and_then(|s| s.as_ref().ok());
        let instance = instance_record(&id, &ec2, summary, outcome, error.as_ref(), &pages);
        Progress::add(&progress.patches, instance.patch_rows as u64);
        writer.add(InstanceSnapshot { instance, pages }).await?;
        Progress::add(&progress.instances_done, 1);
    }
    if stop.is_stopped() {
        return Err(CollectError::Stopped);
    }
    let committed = writer.commit(Utc::now().trunc_subsecs(0)).await?;
    Ok(SnapshotReport { committed, errors })
}
