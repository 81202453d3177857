//! One collection run from start to commit: the seed's state machine, done properly.
//!
//! identity → discovery, a page at a time → patch states of each page (50 ids a call) →
//! patches per instance (as many at once as the learnt pace needs, streamed into the store as
//! they arrive) → manifest. Discovery and patch states run a page ahead of the patch reads in
//! a task of their own, so that memory stays flat however large the fleet. Per-instance
//! failures are recorded in the run, never fatal; only failures that make the whole run
//! meaningless (no credentials, discovery failed, an action denied, store unusable) abort it,
//! before any commit.

use crate::aws::{AwsFleet, CallError, Discovery, Ec2Instance, Patch, PatchStateSummary};
use crate::pacing::{Progress, StopSignal};
use crate::{CollectError, CollectOptions, TagSelector};
use chrono::{DateTime, SubsecRound, Utc};
use futures::{Stream, StreamExt, stream};
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
) -> impl Stream<Item = Result<T, tokio::task::JoinError>>
where
    I: Stream + Unpin,
    Fut: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let running = futures::stream::FuturesUnordered::new();
    stream::unfold(
        (items.fuse(), running, work, limit),
        |(mut items, mut running, mut work, limit)| async move {
            while running.len() < limit().max(1) {
                match items.next().await {
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
        stream::iter(chunks),
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

/// An instance ready for its patches, with its patch-state summary (absent: SSM does not
/// manage it; an error: the call for its batch failed).
type Target = (Ec2Instance, Option<Result<PatchStateSummary, CallError>>);

/// Aborts the task it holds when dropped: a run that ends early stops its discovery.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Discovery pages with their patch states, a page ahead of whoever reads them.
fn discover_ahead(
    fleet: &AwsFleet,
    tag: &TagSelector,
    concurrency: usize,
) -> (
    tokio::sync::mpsc::Receiver<Result<Vec<Target>, CollectError>>,
    AbortOnDrop,
) {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let mut discovery = Discovery::new(fleet.clone(), tag);
    let fleet = fleet.clone();
    let task = tokio::spawn(async move {
        loop {
            let page = match discovery.next_page().await {
                Ok(Some(page)) => page,
                Ok(None) => return,
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            };
            let mut states = all_patch_states(&fleet, &page, concurrency).await;
            let targets = page
                .into_iter()
                .map(|ec2| {
                    let state = states.remove(&ec2.instance_id);
                    (ec2, state)
                })
                .collect();
            if tx.send(Ok(targets)).await.is_err() {
                return;
            }
        }
    });
    (rx, AbortOnDrop(task))
}

fn is_denied(e: &CallError) -> bool {
    crate::ACCESS_DENIED_CODES.contains(&e.code.as_str())
}

/// A denied action denies it for every instance: the run stops with the action named.
fn denied_states(targets: &[Target]) -> Result<(), CollectError> {
    match targets.iter().find_map(|(_, state)| match state {
        Some(Err(e)) if is_denied(e) => Some(e),
        _ => None,
    }) {
        Some(e) => Err(CollectError::Aws {
            operation: "ssm:DescribeInstancePatchStates",
            error: e.clone(),
        }),
        None => Ok(()),
    }
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
    let concurrency = options.concurrency.max(1);
    let (mut pages, _discovery) = discover_ahead(fleet, &options.tag, concurrency);
    // The first page before anything is written: a denied action leaves no trace.
    let first = stop
        .or_stop(pages.recv())
        .await
        .ok_or_else(stopped)?
        .transpose()?
        .unwrap_or_default();
    denied_states(&first)?;
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
    // Pages as they come, then as many instances under way as the learnt pace needs at the
    // measured latency. A failed discovery or a denial travels as an item and ends the run,
    // uncommitted, when it comes out.
    let targets = stream::once(async { Ok(first) })
        .chain(stream::unfold(pages, |mut pages| async move {
            pages.recv().await.map(|page| (page, pages))
        }))
        .flat_map(|page| {
            let items: Vec<Result<Target, CollectError>> =
                match page.and_then(|p| denied_states(&p).map(|()| p)) {
                    Ok(p) => {
                        Progress::add(&progress.instances_total, p.len() as u64);
                        p.into_iter().map(Ok).collect()
                    }
                    Err(e) => vec![Err(e)],
                };
            stream::iter(items)
        });
    let classifications = Arc::new(options.classifications.clone());
    let results = windowed(
        Box::pin(targets),
        || fleet.window(concurrency),
        |target: Result<Target, CollectError>| {
            let (fleet, classifications) = (fleet.clone(), classifications.clone());
            async move {
                let (ec2, state) = target?;
                let result = fleet.patches(&ec2.instance_id, &classifications).await;
                Ok::<_, CollectError>((ec2, state, result))
            }
        },
    );
    let mut results = std::pin::pin!(results);

    let mut errors = Vec::new();
    while let Some(joined) = stop.or_stop(results.next()).await.ok_or_else(stopped)? {
        let (ec2, state, result) = joined.map_err(|e| CollectError::Aws {
            operation: "ssm:DescribeInstancePatches",
            error: CallError {
                code: "TaskFailed".into(),
                message: e.to_string(),
            },
        })??;
        // Stop between objects: what is written is whole, and without a manifest it is not history.
        if stop.is_stopped() {
            return Err(CollectError::Stopped);
        }
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
            Err(e) if is_denied(&e) => {
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
