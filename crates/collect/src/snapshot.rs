//! One collection run from start to commit: the seed's state machine, done properly.
//!
//! identity → discovery, a page at a time (EC2's tagged instances, then SSM's tagged hybrid
//! nodes) → patch states and node records (agent health, OS) of each page, 50 ids a call →
//! patches per instance (as many at once as the learnt pace needs, streamed into the store as
//! they arrive) → manifest. Discovery and patch states run a page ahead of the patch reads in
//! a task of their own, so that memory stays flat however large the fleet. Per-instance
//! failures are recorded in the run, never fatal; only failures that make the whole run
//! meaningless (no credentials, discovery failed, an action denied, store unusable) abort it,
//! before any commit.

use crate::aws::{
    AwsFleet, CallError, Discovery, Ec2Instance, HybridDiscovery, NodeInfo, Patch,
    PatchStateSummary,
};
use crate::pacing::{Progress, StopSignal};
use crate::releases::Catalog;
use crate::seen::IdSet;
use crate::{CollectError, CollectOptions};
use chrono::{DateTime, SubsecRound, Utc};
use futures::{Stream, StreamExt, stream};
use patchtrail_model::{InstanceRecord, InstanceSnapshot, Outcome, PatchRecord, StoreFormat};
use patchtrail_store::{CommittedRun, Continued, RunStart, RunWriter, Store};
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

/// How a collection's run begins (its format and snapshot time, or a run to continue) and what a
/// stop does to it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunControl {
    /// The format of a new run (a continued run keeps its own).
    pub format: StoreFormat,
    /// The instant the snapshot represents (default: now); the demo passes simulated dates.
    pub snapshot_time: Option<DateTime<Utc>>,
    /// Continue this suspended run (with its own snapshot time and options) instead of
    /// beginning one.
    pub resume: Option<String>,
    /// On a stop, suspend the run (a checkpoint another process continues from, see
    /// `patchtrail_store::Checkpoint`) instead of leaving it uncommitted for good. A continued
    /// run is always suspended on a stop: it is resumable already.
    pub suspend_on_stop: bool,
}

/// A run id to continue, as `input` gave it, checked for its shape.
pub fn run_to_resume(run_id: &str, input: &str) -> Result<String, CollectError> {
    let run_id = run_id.trim();
    if patchtrail_store::is_run_id(run_id) {
        Ok(run_id.to_string())
    } else {
        Err(CollectError::BadInput {
            input: format!("{input} '{run_id}'"),
            fix: "give the run id a suspended collect printed, such as 20260301-123456789012-ap-northeast-1-01".into(),
        })
    }
}

fn instance_record(
    id: &RunIdentity,
    target: &Target,
    outcome: Outcome,
    error: Option<&CallError>,
    pages: &[Vec<PatchRecord>],
) -> InstanceRecord {
    let ec2 = &target.ec2;
    let state = target.state.as_ref().and_then(|s| s.as_ref().ok());
    let node = match &target.node {
        Node::Listed(n) => Some(n),
        Node::NotListed | Node::Unknown => None,
    };
    let tags = serde_json::to_string(&ec2.tags).unwrap_or_else(|_| "{}".into());
    let unmanaged_reason = (outcome == Outcome::Unmanaged)
        .then(|| unmanaged_reason(ec2.state.as_deref(), &target.node))
        .flatten();
    InstanceRecord {
        run_id: id.run_id.clone(),
        snapshot_time: id.snapshot_time,
        account_id: id.account_id.clone(),
        region: id.region.clone(),
        instance_id: ec2.instance_id.clone(),
        name: ec2.tags.get("Name").cloned().or_else(|| {
            // A hybrid node's tags are not listed with it: its host name names it.
            node.filter(|n| n.resource_type.as_deref() == Some(HYBRID))
                .and_then(|n| n.computer_name.clone())
        }),
        ec2_state: ec2.state.clone(),
        platform: ec2.platform_details.clone(),
        instance_type: ec2.instance_type.clone(),
        launch_time: ec2.launch_time,
        tags,
        resource_type: node.and_then(|n| n.resource_type.clone()),
        ping_status: node.and_then(|n| n.ping_status.clone()),
        last_ping_time: node.and_then(|n| n.last_ping_time),
        agent_version: node.and_then(|n| n.agent_version.clone()),
        platform_type: node.and_then(|n| n.platform_type.clone()),
        platform_name: node.and_then(|n| n.platform_name.clone()),
        platform_version: node.and_then(|n| n.platform_version.clone()),
        computer_name: node.and_then(|n| n.computer_name.clone()),
        ip_address: node.and_then(|n| n.ip_address.clone()),
        baseline_id: state.map(|s| s.baseline_id.clone()),
        patch_group: state.map(|s| s.patch_group.clone()),
        operation: state.map(|s| s.operation.clone()),
        operation_start_time: state.and_then(|s| s.operation_start_time),
        last_scan_time: state.and_then(|s| s.operation_end_time),
        installed_count: state.and_then(|s| s.installed),
        installed_other_count: state.and_then(|s| s.installed_other),
        installed_pending_reboot_count: state.and_then(|s| s.installed_pending_reboot),
        installed_rejected_count: state.and_then(|s| s.installed_rejected),
        missing_count: state.and_then(|s| s.missing),
        failed_count: state.and_then(|s| s.failed),
        not_applicable_count: state.and_then(|s| s.not_applicable),
        critical_non_compliant_count: state.and_then(|s| s.critical_non_compliant),
        security_non_compliant_count: state.and_then(|s| s.security_non_compliant),
        other_non_compliant_count: state.and_then(|s| s.other_non_compliant),
        unreported_not_applicable_count: state.and_then(|s| s.unreported_not_applicable),
        available_security_update_count: state.and_then(|s| s.available_security_update),
        reboot_option: state.and_then(|s| s.reboot_option.clone()),
        last_no_reboot_install_time: state.and_then(|s| s.last_no_reboot_install_time),
        snapshot_id: state.and_then(|s| s.snapshot_id.clone()),
        install_override_list: state.and_then(|s| s.install_override_list.clone()),
        owner_information: state.and_then(|s| s.owner_information.clone()),
        outcome,
        unmanaged_reason: unmanaged_reason.map(str::to_string),
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
        release_date: p.release_date,
        installed_time_sent: p.installed_time_sent,
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

/// What SSM's node list says of an instance.
#[derive(Debug, Clone)]
enum Node {
    Listed(NodeInfo),
    /// SSM does not list it: not registered, stopped or gone.
    NotListed,
    /// `DescribeInstanceInformation` failed or is not allowed.
    Unknown,
}

/// Why SSM does not manage an instance (docs/semantics.md §4.5), from its EC2 state and SSM's
/// node list; `None` when the node list is not known.
fn unmanaged_reason(ec2_state: Option<&str>, node: &Node) -> Option<&'static str> {
    if matches!(ec2_state, Some("shutting-down" | "terminated")) {
        return Some("terminated");
    }
    match node {
        Node::Unknown => None,
        Node::NotListed => Some("not_registered"),
        Node::Listed(n) if n.ping_status.as_deref() == Some("Online") => Some("not_permitted"),
        Node::Listed(_) => Some("agent_offline"),
    }
}

/// An instance ready for its patches, with what SSM said of it in the page's batch calls.
struct Target {
    ec2: Ec2Instance,
    /// Patch-state summary (absent: SSM has none; an error: the call for its batch failed).
    state: Option<Result<PatchStateSummary, CallError>>,
    node: Node,
}

/// SSM's `ResourceType` of a hybrid-activation node.
const HYBRID: &str = "ManagedInstance";

/// A hybrid node as a target: no EC2 facts, its node record already known.
fn hybrid_target(node: NodeInfo) -> (Ec2Instance, Option<NodeInfo>) {
    let instance = Ec2Instance {
        instance_id: node.instance_id.clone(),
        state: None,
        platform_details: None,
        instance_type: None,
        launch_time: None,
        tags: Default::default(),
    };
    (instance, Some(node))
}

/// A page's instances with their patch states and node records (asked only for instances
/// whose record is not known yet), 50 ids a call; a failed call marks its ids.
async fn page_targets(
    fleet: &AwsFleet,
    page: Vec<(Ec2Instance, Option<NodeInfo>)>,
    concurrency: usize,
) -> Vec<Target> {
    let mut batches = Vec::new();
    let mut page = page.into_iter().peekable();
    while page.peek().is_some() {
        batches.push(page.by_ref().take(50).collect::<Vec<_>>());
    }
    let joined: Vec<_> = windowed(
        stream::iter(batches),
        || fleet.states_window(concurrency),
        |batch: Vec<(Ec2Instance, Option<NodeInfo>)>| {
            let fleet = fleet.clone();
            async move {
                let ids: Vec<String> = batch.iter().map(|(i, _)| i.instance_id.clone()).collect();
                let unknown: Vec<String> = batch
                    .iter()
                    .filter(|(_, n)| n.is_none())
                    .map(|(i, _)| i.instance_id.clone())
                    .collect();
                let (states, nodes) =
                    futures::join!(fleet.patch_states(&ids), fleet.nodes(&unknown));
                (batch, states, nodes)
            }
        },
    )
    .collect()
    .await;
    let mut targets = Vec::new();
    for done in joined {
        let (batch, states, nodes) = match done {
            Ok(done) => done,
            Err(e) => {
                tracing::warn!(error = %e, "a batch task failed");
                continue;
            }
        };
        if let Err(e) = &states {
            tracing::warn!(error = %e, instances = batch.len(), "DescribeInstancePatchStates failed for a batch");
        }
        if let Err(e) = &nodes
            && !e.is_denied()
        {
            tracing::warn!(error = %e, instances = batch.len(), "DescribeInstanceInformation failed for a batch: agent health and OS left empty");
        }
        let (mut states, mut nodes) = (states.map_err(Some), nodes.ok());
        for (ec2, known) in batch {
            let state = match &mut states {
                Ok(found) => found.remove(&ec2.instance_id).map(Ok),
                Err(e) => e.clone().map(Err),
            };
            let node = match (known, &mut nodes) {
                (Some(node), _) => Node::Listed(node),
                (None, Some(found)) => found
                    .remove(&ec2.instance_id)
                    .map_or(Node::NotListed, Node::Listed),
                (None, None) => Node::Unknown,
            };
            targets.push(Target { ec2, state, node });
        }
    }
    targets
}

/// Aborts the task it holds when dropped: a run that ends early stops its discovery.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Discovery pages with their patch states and node records, a page ahead of whoever reads
/// them: EC2's tagged instances, then (with `hybrid`) SSM's tagged hybrid nodes, but for those
/// in `skip` (already in the run being continued).
fn discover_ahead(
    fleet: &AwsFleet,
    options: &CollectOptions,
    skip: IdSet,
) -> (
    tokio::sync::mpsc::Receiver<Result<Vec<Target>, CollectError>>,
    AbortOnDrop,
) {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let mut discovery = Discovery::new(fleet.clone(), &options.tag);
    let hybrid = options
        .hybrid
        .then(|| HybridDiscovery::new(fleet.clone(), &options.tag));
    let concurrency = options.concurrency.max(1);
    let fleet = fleet.clone();
    let task = tokio::spawn(async move {
        let send = |page: Result<Vec<Target>, CollectError>| {
            let tx = tx.clone();
            async move { tx.send(page).await.is_ok() }
        };
        loop {
            let page = match discovery.next_page().await {
                Ok(Some(page)) => page
                    .into_iter()
                    .filter(|i| !skip.contains(&i.instance_id))
                    .map(|i| (i, None))
                    .collect(),
                Ok(None) => break,
                Err(e) => {
                    send(Err(e)).await;
                    return;
                }
            };
            if !send(Ok(page_targets(&fleet, page, concurrency).await)).await {
                return;
            }
        }
        let mut hybrid = match hybrid {
            None => return,
            Some(Ok(hybrid)) => hybrid,
            Some(Err(e)) => {
                send(Err(e)).await;
                return;
            }
        };
        loop {
            let page = match hybrid.next_page().await {
                Ok(Some(nodes)) => nodes
                    .into_iter()
                    .filter(|n| !skip.contains(&n.instance_id))
                    .map(hybrid_target)
                    .collect(),
                Ok(None) => return,
                Err(e) => {
                    send(Err(e)).await;
                    return;
                }
            };
            if !send(Ok(page_targets(&fleet, page, concurrency).await)).await {
                return;
            }
        }
    });
    (rx, AbortOnDrop(task))
}

/// A denied action denies it for every instance: the run stops with the action named.
fn denied_states(targets: &[Target]) -> Result<(), CollectError> {
    match targets.iter().find_map(|t| match &t.state {
        Some(Err(e)) if e.is_denied() => Some(e),
        _ => None,
    }) {
        Some(e) => Err(CollectError::Aws {
            operation: "ssm:DescribeInstancePatchStates",
            error: e.clone(),
        }),
        None => Ok(()),
    }
}

/// Lists the instances (and hybrid nodes) a collection would read, without reading their
/// patches. A hybrid node has no EC2 state; its platform is the OS its agent reports.
pub async fn discover_targets(
    fleet: &AwsFleet,
    options: &CollectOptions,
) -> Result<Vec<Ec2Instance>, CollectError> {
    fleet.account_id().await?;
    let mut found = fleet.discover(&options.tag).await?;
    if options.hybrid {
        let mut hybrid = HybridDiscovery::new(fleet.clone(), &options.tag)?;
        while let Some(nodes) = hybrid.next_page().await? {
            found.extend(nodes.into_iter().map(|n| {
                let (mut instance, node) = hybrid_target(n);
                instance.platform_details = node.and_then(|n| n.platform_name);
                instance
            }));
        }
    }
    Ok(found)
}

/// What the run being written is, and the writer: begun or continued.
struct Begun {
    writer: RunWriter,
    id: RunIdentity,
    /// Instances the run held when this process took it over.
    resumed_with: usize,
}

impl Begun {
    fn new(writer: RunWriter) -> Begun {
        let start = writer.start();
        let id = RunIdentity {
            run_id: writer.run_id().to_string(),
            snapshot_time: start.snapshot_time,
            account_id: start.account_id.clone(),
            region: start.region.clone(),
        };
        let resumed_with = writer.done().len();
        Begun {
            writer,
            id,
            resumed_with,
        }
    }
}

/// The report of a run committed by an earlier process (continuing a complete run).
fn already_committed(
    committed: CommittedRun,
    errors: Vec<patchtrail_store::InstanceError>,
) -> SnapshotReport {
    SnapshotReport {
        committed,
        errors: errors.into_iter().map(call_error).collect(),
    }
}

fn call_error(e: patchtrail_store::InstanceError) -> (String, CallError) {
    let error = CallError {
        code: e.code,
        message: e.message,
    };
    (e.instance_id, error)
}

/// A suspended run taken over: to continue with the run's own options, or committed already
/// (one per run: its size does not matter).
#[allow(clippy::large_enum_variant)]
enum Resumed {
    Continue(RunWriter, CollectOptions),
    Committed(SnapshotReport),
}

/// The suspended run to continue, checked against the scope of `fleet` before anything is
/// written; the run's own options replace `options` (a run keeps what it selects from start to
/// commit).
async fn continue_run(
    store: &Store,
    run_id: &str,
    account_id: &str,
    region: &str,
    options: &CollectOptions,
) -> Result<Resumed, CollectError> {
    let suspended = store.suspended_run(run_id).await?;
    let start = suspended.start();
    if (start.account_id.as_str(), start.region.as_str()) != (account_id, region) {
        return Err(CollectError::BadInput {
            input: format!("--resume {run_id}"),
            fix: format!(
                "the run collects account {} in region {}, not {account_id} in {region}: continue it with that account and region",
                start.account_id, start.region
            ),
        });
    }
    let options = options.following(&start.config);
    match store.take_over(suspended, Utc::now()).await? {
        Continued::Committed { run, errors } => {
            Ok(Resumed::Committed(already_committed(run, errors)))
        }
        Continued::Writer(writer) => Ok(Resumed::Continue(writer, options)),
    }
}

/// Collects one snapshot of the fleet into `store` and commits it (or, when `control` says so,
/// continues a suspended run, or suspends the run on a stop).
pub async fn collect_snapshot(
    fleet: &AwsFleet,
    store: &Store,
    options: &CollectOptions,
    control: &RunControl,
    progress: &Progress,
    stop: &StopSignal,
) -> Result<SnapshotReport, CollectError> {
    let started_at = Utc::now().trunc_subsecs(0);
    let snapshot_time = control.snapshot_time.unwrap_or(started_at).trunc_subsecs(0);
    let stopped = || CollectError::Stopped;
    let account_id = stop
        .or_stop(fleet.account_id())
        .await
        .ok_or_else(stopped)??;
    let region = fleet.region().to_string();
    let (begun, options) = match &control.resume {
        None => (None, options.clone()),
        Some(run_id) => match continue_run(store, run_id, &account_id, &region, options).await? {
            Resumed::Committed(report) => return Ok(report),
            Resumed::Continue(writer, options) => (Some(Begun::new(writer)), options),
        },
    };
    let options = &options;
    let skip: IdSet = begun
        .as_ref()
        .map(|b| b.writer.done().iter().collect())
        .unwrap_or_default();
    Progress::add(&progress.instances_total, skip.len() as u64);
    Progress::add(&progress.instances_done, skip.len() as u64);
    let concurrency = options.concurrency.max(1);
    let (mut pages, _discovery) = discover_ahead(fleet, options, skip);
    // The first page before anything is written: a denied action leaves no trace.
    let Some(first) = stop.or_stop(pages.recv()).await else {
        return Err(suspend_or_stop(begun, control).await);
    };
    let first = first.transpose()?.unwrap_or_default();
    denied_states(&first)?;
    let Begun {
        mut writer,
        id,
        resumed_with,
    } = match begun {
        Some(b) => b,
        None => Begun::new(
            store
                .begin_run(RunStart {
                    snapshot_time,
                    started_at,
                    account_id,
                    region,
                    format: control.format,
                    config: options.run_config(),
                })
                .await?,
        ),
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
                let target = target?;
                let mut result = fleet
                    .patches(&target.ec2.instance_id, &classifications)
                    .await;
                if let Ok(pages) = &mut result {
                    let node = match &target.node {
                        Node::Listed(n) => Some(n),
                        _ => None,
                    };
                    let catalog = Catalog::of(target.ec2.platform_details.as_deref(), node);
                    fleet.release_dates(catalog, pages).await;
                }
                Ok::<_, CollectError>((target, result))
            }
        },
    );
    let mut results = std::pin::pin!(results);

    loop {
        let joined = match stop.or_stop(results.next()).await {
            Some(Some(joined)) => joined,
            Some(None) => break,
            None => {
                let begun = Begun {
                    writer,
                    id,
                    resumed_with,
                };
                return Err(suspend_or_stop(Some(begun), control).await);
            }
        };
        let (target, result) = joined.map_err(|e| CollectError::Aws {
            operation: "ssm:DescribeInstancePatches",
            error: CallError {
                code: "TaskFailed".into(),
                message: e.to_string(),
            },
        })??;
        // Stop between objects: what is written is whole, and without a manifest it is not history.
        if stop.is_stopped() {
            let begun = Begun {
                writer,
                id,
                resumed_with,
            };
            return Err(suspend_or_stop(Some(begun), control).await);
        }
        let (outcome, error, pages) = match result {
            Ok(pages) => {
                let pages: Vec<Vec<PatchRecord>> = pages
                    .into_iter()
                    .map(|page| {
                        page.into_iter()
                            .map(|p| patch_record(&id, &target.ec2.instance_id, p))
                            .collect()
                    })
                    .collect();
                match &target.state {
                    Some(Err(e)) => (Outcome::Error, Some(e.clone()), pages),
                    _ => (Outcome::Ok, None, pages),
                }
            }
            Err(e) if e.is_denied() => {
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
            tracing::warn!(instance = %target.ec2.instance_id, error = %e, "instance not fully collected");
        }
        let instance = instance_record(&id, &target, outcome, error.as_ref(), &pages);
        Progress::add(&progress.patches, instance.patch_rows as u64);
        writer.add(InstanceSnapshot { instance, pages }).await?;
        Progress::add(&progress.instances_done, 1);
    }
    if stop.is_stopped() {
        let begun = Begun {
            writer,
            id,
            resumed_with,
        };
        return Err(suspend_or_stop(Some(begun), control).await);
    }
    tracing::debug!(
        instances = writer.done().len() - resumed_with,
        "instances added by this process"
    );
    let errors = writer.errors().iter().cloned().map(call_error).collect();
    // Complete now (§1.4), on the run's own clock: a run dated in the past (the demo's weeks)
    // finishes as long after its snapshot time as it took.
    let (snapshot_time, started_at) = (writer.start().snapshot_time, writer.start().started_at);
    let finished_at = (snapshot_time + (Utc::now() - started_at)).trunc_subsecs(0);
    let committed = writer.commit(finished_at.max(snapshot_time)).await?;
    Ok(SnapshotReport { committed, errors })
}

/// What a stop leaves: a suspended run when `control` asks for one and a run was begun (its
/// checkpoint recorded, or why that failed), else nothing committed.
async fn suspend_or_stop(begun: Option<Begun>, control: &RunControl) -> CollectError {
    let Some(Begun {
        writer,
        resumed_with,
        ..
    }) = begun.filter(|_| control.suspend_on_stop || control.resume.is_some())
    else {
        return CollectError::Stopped;
    };
    let run_id = writer.run_id().to_string();
    match writer.suspend().await {
        Ok(checkpoint) => CollectError::Suspended {
            run_id,
            checkpoint: checkpoint.sequence,
            instances: checkpoint.done.len() as u64,
            added: (checkpoint.done.len() - resumed_with) as u64,
        },
        Err(e) => e.into(),
    }
}
