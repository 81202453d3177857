//! `patchtrail doctor`: the preflight a new user runs before the first collect, and an operator
//! runs when something breaks. One harmless call per permission the collector needs, a probe of
//! the store, the fleet the tag selects, and an estimate of a collect's duration.
//! Exit 0 only when a collect would succeed.

use crate::cli::{CollectArgs, DoctorArgs};
use crate::commands::collect::prepare;
use crate::failure::{EXIT_ACCESS, EXIT_FAILURE, Failure};
use patchtrail_collect::{AwsFleet, CollectError, Progress};
use patchtrail_store::BucketProtection;
use serde::Serialize;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One check: what was tried, whether it worked, what was found, and what to do if not.
#[derive(Debug, Serialize)]
struct Check {
    check: &'static str,
    ok: bool,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    fix: Option<String>,
    /// Wall time of the check's AWS or storage calls, in milliseconds.
    millis: u64,
}

#[derive(Debug, Default, Serialize)]
struct Findings {
    account: Option<String>,
    arn: Option<String>,
    region: String,
    store: String,
    tagged_instances: Option<usize>,
    /// Tagged instances SSM has a patch state for (managed and scanned at least once).
    instances_with_patch_state: Option<usize>,
    estimated_collect_seconds: Option<f64>,
    /// The SSM rate the estimate assumes (`--assume-tps`).
    assumed_tps: Option<f64>,
    /// Among the first 50 tagged instances: managed nodes whose agent is Online, and not.
    agents_online: Option<usize>,
    agents_not_online: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bucket: Option<BucketProtection>,
    checks: Vec<Check>,
}

impl Findings {
    fn push<T>(
        &mut self,
        check: &'static str,
        started: Instant,
        result: Result<T, String>,
        detail: impl FnOnce(&T) -> String,
    ) -> Option<T> {
        let millis = started.elapsed().as_millis() as u64;
        match result {
            Ok(value) => {
                self.checks.push(Check {
                    check,
                    ok: true,
                    detail: detail(&value),
                    fix: None,
                    millis,
                });
                Some(value)
            }
            Err(message) => {
                let (detail, fix) = match message.split_once(": ") {
                    Some((what, fix))
                        if message.contains("allow the IAM action")
                            || message.contains("run `aws") =>
                    {
                        (what.to_string(), Some(fix.to_string()))
                    }
                    _ => (message, None),
                };
                self.checks.push(Check {
                    check,
                    ok: false,
                    detail,
                    fix,
                    millis,
                });
                None
            }
        }
    }
}

fn collect_args(args: &DoctorArgs) -> CollectArgs {
    CollectArgs {
        store: args.store.clone(),
        format: None,
        tag_key: args.tag_key.clone(),
        tag: args.tag.clone(),
        classification: Vec::new(),
        all_classifications: false,
        region: args.region.clone(),
        concurrency: patchtrail_collect::DEFAULT_CONCURRENCY as u32,
        max_tps: None,
        max_attempts: 3,
        input_json: None,
        dry_run: false,
        no_hybrid: false,
        time_limit: None,
        resume: None,
        scopes: Default::default(),
    }
}

fn message(e: CollectError) -> String {
    Failure::from(e).message
}

pub async fn run(args: &DoctorArgs) -> Result<ExitCode, Failure> {
    if !(args.assume_tps.is_finite() && args.assume_tps > 0.0) {
        return Err(Failure::bad_input(format!(
            "--assume-tps {}: give a positive number of requests per second",
            args.assume_tps
        )));
    }
    let collect = collect_args(args);
    let prepared = prepare(&collect).await?;
    let mut f = Findings {
        region: prepared.region().to_string(),
        store: prepared.store_url().to_string(),
        ..Findings::default()
    };
    let fleet = AwsFleet::new(
        prepared.config(),
        prepared.options(),
        Arc::new(Progress::default()),
    )
    .map_err(Failure::from)?;

    let t = Instant::now();
    let identity = f.push(
        "identity (sts:GetCallerIdentity)",
        t,
        fleet.identity().await.map_err(message),
        |(a, arn)| format!("account {a}, {arn}"),
    );
    if let Some((account, arn)) = &identity {
        f.account = Some(account.clone());
        f.arn = Some(arn.clone());
    }

    let t = Instant::now();
    let tag = &prepared.options().tag;
    let discovered = f.push(
        "ec2:DescribeInstances",
        t,
        fleet.discover(tag).await.map_err(message),
        |found| format!("{} instance(s) carry tag {}", found.len(), tag.key),
    );
    let discovery_ms = f.checks.last().map_or(0, |c| c.millis);
    let mut latency = Vec::new();
    if let Some(found) = &discovered {
        f.tagged_instances = Some(found.len());
        let ids: Vec<String> = found
            .iter()
            .take(50)
            .map(|i| i.instance_id.clone())
            .collect();
        let t = Instant::now();
        let states = fleet.patch_states(&ids).await.map_err(|e| {
            message(CollectError::Aws {
                operation: "ssm:DescribeInstancePatchStates",
                error: e,
            })
        });
        latency.push(t.elapsed());
        let sampled = ids.len();
        let states = f.push("ssm:DescribeInstancePatchStates", t, states, |s| {
            format!(
                "{} of the first {sampled} tagged instance(s) have a patch state",
                s.len()
            )
        });
        if let Some(states) = &states {
            f.instances_with_patch_state = Some(if sampled == 0 {
                0
            } else {
                (states.len() * found.len()).div_ceil(sampled)
            });
        }
        // Agent health: advisory, since without ssm:DescribeInstanceInformation a collect still
        // reads patches (and leaves agent health and OS columns empty).
        let t = Instant::now();
        match fleet.nodes(&ids).await {
            Ok(health) => {
                let lost = health
                    .values()
                    .filter(|n| n.ping_status.as_deref() != Some("Online"))
                    .count();
                f.agents_online = Some(health.len() - lost);
                f.agents_not_online = Some(lost);
                f.checks.push(Check {
                    check: "ssm:DescribeInstanceInformation (agent health)",
                    ok: true,
                    detail: format!(
                        "{} of the first {} tagged instance(s) are managed nodes; {lost} agent(s) not Online",
                        health.len(),
                        ids.len()
                    ),
                    fix: (lost > 0).then(|| {
                        "agents not Online stop scanning: their patch state ages and reports show them as unknown after --stale-days".to_string()
                    }),
                    millis: t.elapsed().as_millis() as u64,
                });
            }
            Err(e) => f.checks.push(Check {
                check: "ssm:DescribeInstanceInformation (agent health)",
                ok: true,
                detail: format!("not known ({})", e.code),
                fix: Some(
                    "allow ssm:DescribeInstanceInformation: without it a collect leaves agent health, OS and unmanaged reasons empty"
                        .into(),
                ),
                millis: t.elapsed().as_millis() as u64,
            }),
        }
        // Release dates: advisory too; without them SLA limits counted from release count from
        // first detection (docs/semantics.md §8.3).
        let t = Instant::now();
        let release_check = "ssm:DescribeAvailablePatches (release dates)";
        f.checks.push(match fleet.available_probe().await {
            Ok(_) => Check {
                check: release_check,
                ok: true,
                detail: "allowed: a collect records AWS's release date of Windows and Amazon Linux 2 patches".into(),
                fix: None,
                millis: t.elapsed().as_millis() as u64,
            },
            Err(e) => Check {
                check: release_check,
                ok: true,
                detail: format!("not known ({})", e.code),
                fix: Some(
                    "allow ssm:DescribeAvailablePatches: without it a collect stores no release dates, and SLA limits counted from release count from first detection"
                        .into(),
                ),
                millis: t.elapsed().as_millis() as u64,
            },
        });
        let probe = states
            .as_ref()
            .and_then(|s| ids.iter().find(|id| s.contains_key(*id)))
            .or(ids.first())
            .cloned();
        let mut pages_per_instance = 1.0;
        if let Some(id) = probe {
            let t = Instant::now();
            let patches = fleet
                .patches(&id, &prepared.options().classifications)
                .await
                .or_else(|e| {
                    if e.code == "InvalidInstanceId" {
                        Ok(Vec::new())
                    } else {
                        Err(e)
                    }
                })
                .map_err(|e| {
                    message(CollectError::Aws {
                        operation: "ssm:DescribeInstancePatches",
                        error: e,
                    })
                });
            let elapsed = t.elapsed();
            if let Some(pages) = f.push("ssm:DescribeInstancePatches", t, patches, |p| {
                format!(
                    "{id}: {} patch(es) in {} page(s)",
                    p.iter().map(Vec::len).sum::<usize>(),
                    p.len()
                )
            }) {
                pages_per_instance = pages.len().max(1) as f64;
                latency.push(elapsed / pages.len().max(1) as u32);
            }
        } else {
            f.checks.push(Check {
                check: "ssm:DescribeInstancePatches",
                ok: true,
                detail: "no tagged instance to ask about".into(),
                fix: None,
                millis: 0,
            });
        }
        // Calls a collect makes: discovery, one patch-state call per 50, and the patch pages of
        // each instance. Its pace tunes itself, so what bounds it is the slower of SSM's rate
        // (assumed) and the measured latency with as many calls in flight as it allows.
        let per_call =
            latency.iter().map(Duration::as_secs_f64).sum::<f64>() / latency.len().max(1) as f64;
        let n = found.len() as f64;
        let calls = (n / 50.0).ceil() + n * pages_per_instance;
        let by_rate = calls / args.assume_tps.max(0.1);
        let by_latency = calls * per_call / patchtrail_collect::DEFAULT_CONCURRENCY as f64;
        f.estimated_collect_seconds = Some(discovery_ms as f64 / 1000.0 + by_rate.max(by_latency));
        f.assumed_tps = Some(args.assume_tps);
    }

    let t = Instant::now();
    let store = prepared.open_store().await.map_err(|e| e.message);
    let probe = match &store {
        Ok(store) => store.probe().await.map_err(|e| Failure::from(e).message),
        Err(e) => Err(e.clone()),
    };
    f.push(
        "store (list, write and read back _patchtrail/doctor-probe)",
        t,
        probe,
        |p| {
            format!(
                "{} committed run(s) listed; a probe object was written and read back; a second create of one object was refused (create-only by {})",
                p.runs, p.create_only
            )
        },
    );
    if let Ok(store) = &store {
        let t = Instant::now();
        let protection = store.bucket_protection().await;
        let millis = t.elapsed().as_millis() as u64;
        // Versioning and Object Lock protect evidence; a collect works without them, so they
        // advise rather than fail, unless the settings cannot even be read.
        match protection {
            Ok(Some(p)) => {
                f.checks.push(Check {
                check: "bucket protection (versioning, Object Lock)",
                ok: true,
                detail: format!(
                    "versioning {}, Object Lock {}",
                    p.versioning,
                    if p.object_lock { "on" } else { "off" }
                ),
                fix: p.advice().map(str::to_string),
                millis,
            });
                f.bucket = Some(p);
            }
            Ok(None) => {}
            Err(e) => f.checks.push(Check {
                check: "bucket protection (versioning, Object Lock)",
                ok: true,
                detail: format!("not known: {}", Failure::from(e).message),
                fix: Some("allow s3:GetBucketVersioning and s3:GetBucketObjectLockConfiguration to see it".into()),
                millis,
            }),
        }
    }

    let ok = f.checks.iter().all(|c| c.ok);
    if args.format == "json" {
        println!(
            "{}",
            serde_json::to_string_pretty(&f).map_err(|e| Failure::other(e.to_string()))?
        );
    } else {
        print_text(&f);
    }
    if ok {
        return Ok(ExitCode::SUCCESS);
    }
    let denied = f
        .checks
        .iter()
        .any(|c| !c.ok && (c.detail.contains("denied") || c.detail.contains("credentials")));
    Ok(ExitCode::from(if denied {
        EXIT_ACCESS
    } else {
        EXIT_FAILURE
    }))
}

fn print_text(f: &Findings) {
    println!("patchtrail doctor");
    println!("  identity   {}", f.arn.as_deref().unwrap_or("-"));
    println!("  account    {}", f.account.as_deref().unwrap_or("-"));
    println!("  region     {}", f.region);
    println!("  store      {}", f.store);
    println!();
    for c in &f.checks {
        println!(
            "  [{}] {:<58} {:>6} ms  {}",
            if c.ok { " ok " } else { "FAIL" },
            c.check,
            c.millis,
            c.detail
        );
        if let Some(fix) = &c.fix {
            let label = if c.ok { "advice" } else { "fix" };
            println!("         {label}: {fix}");
        }
    }
    println!();
    if let (Some(tagged), Some(scanned)) = (f.tagged_instances, f.instances_with_patch_state) {
        println!(
            "  fleet      {tagged} tagged instance(s), about {scanned} with a patch state from SSM"
        );
    }
    if let (Some(online), Some(not)) = (f.agents_online, f.agents_not_online) {
        println!("  agents     {online} Online, {not} not Online (of the first 50 tagged)");
    }
    if let (Some(s), Some(tps)) = (f.estimated_collect_seconds, f.assumed_tps) {
        println!(
            "  estimate   a collect takes about {} at the measured latency if SSM allows {tps} req/s (--assume-tps)",
            human(s)
        );
    }
    let failed = f.checks.iter().filter(|c| !c.ok).count();
    if failed == 0 {
        println!("  verdict    ready: `patchtrail collect` would succeed");
    } else {
        println!("  verdict    {failed} check(s) failed: fix them before collecting");
    }
}

fn human(seconds: f64) -> String {
    if seconds < 1.0 {
        "under a second".into()
    } else if seconds < 90.0 {
        format!("{seconds:.0} s")
    } else {
        format!("{:.1} min", seconds / 60.0)
    }
}
