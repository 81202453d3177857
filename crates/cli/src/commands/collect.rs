//! `patchtrail collect`: validate everything, then collect one snapshot and commit it.

use crate::cli::{CollectArgs, LogFormat, ScopeArgs, Ui};
use crate::failure::{EXIT_PARTIAL, Failure};
use crate::progress::ProgressView;
use crate::signals::stop_on_signal;
use patchtrail_collect::{
    Accounts, AwsFleet, CollectOptions, Progress, Regions, RunControl, SchedulerInput,
    ScopeOutcome, ScopePlan, SnapshotReport, StopSignal, TagSelector, check_region, collect_plan,
    collect_snapshot, discover_targets, parse_accounts_file, parse_classifications, resolve_scopes,
    run_to_resume,
};
use patchtrail_model::StoreFormat;
use patchtrail_store::{AwsAccess, Store};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What to collect and where, after validation.
struct Plan {
    store_url: String,
    options: CollectOptions,
    scopes: ScopePlan,
    control: RunControl,
}

/// `--format`, `--resume` and `--time-limit` (over the input's, if any): the format of a new run,
/// which run to continue, and whether a stop suspends it.
fn run_control(
    args: &CollectArgs,
    format: Option<StoreFormat>,
    input: Option<RunControl>,
) -> Result<RunControl, Failure> {
    let input = input.unwrap_or_default();
    let resume = match &args.resume {
        Some(id) => Some(run_to_resume(id, "--resume")?),
        None => input.resume,
    };
    Ok(RunControl {
        format: format.unwrap_or(input.format),
        snapshot_time: None,
        resume,
        suspend_on_stop: args.time_limit.is_some() || input.suspend_on_stop,
    })
}

/// The accounts and regions of `--accounts`/`--accounts-file`/`--organization` and `--regions`.
fn scope_plan(args: &ScopeArgs) -> Result<ScopePlan, Failure> {
    let accounts = if args.organization {
        Accounts::Organization
    } else if let Some(path) = &args.accounts_file {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Failure::bad_input(format!(
                "--accounts-file {}: cannot read it ({e}); give a text file with one account id per line",
                path.display()
            ))
        })?;
        Accounts::List(parse_accounts_file(&path.display().to_string(), &text)?)
    } else if args.accounts.is_empty() {
        Accounts::Own
    } else {
        Accounts::List(args.accounts.iter().map(|a| a.trim().to_string()).collect())
    };
    let regions = match args.regions.as_slice() {
        [] => Regions::Configured,
        [all] if all.eq_ignore_ascii_case("all") => Regions::Enabled,
        list => Regions::List(list.iter().map(|r| r.trim().to_string()).collect()),
    };
    let plan = ScopePlan {
        accounts,
        regions,
        role_name: args.role_name.clone(),
        external_id: args.external_id.clone(),
        session_name: args.role_session_name.clone(),
        max_scopes: args.max_scopes as usize,
    };
    plan.check()?;
    Ok(plan)
}

fn plan(args: &CollectArgs) -> Result<Plan, Failure> {
    let explicit_format = args
        .format
        .as_deref()
        .map(str::parse::<StoreFormat>)
        .transpose()
        .map_err(Failure::bad_input)?;
    let mut options = CollectOptions {
        concurrency: args.concurrency as usize,
        max_tps: args.max_tps,
        max_attempts: args.max_attempts,
        hybrid: !args.no_hybrid,
        ..CollectOptions::default()
    };
    if let Some(tps) = args.max_tps
        && !(tps.is_finite() && tps > 0.0)
    {
        return Err(Failure::bad_input(format!(
            "--max-tps {tps}: give a positive number of requests per second"
        )));
    }
    if let Some(json) = &args.input_json {
        if args.store.store.is_some() {
            return Err(Failure::bad_input(
                "--input-json with --store: the input names the bucket and path already; drop --store",
            ));
        }
        let input = SchedulerInput::parse(json)?.resolve()?;
        if input.plan_only {
            return Err(Failure::bad_input(
                "--input-json with \"action\": \"plan\": listing scopes is the Lambda's step; use collect --dry-run",
            ));
        }
        options.tag = input.tag;
        options.classifications = input.classifications;
        // Scopes on the command line win over the input's.
        let scopes = scope_plan(&args.scopes)?;
        return Ok(Plan {
            store_url: input.store_url,
            options,
            scopes: if scopes.is_multi() {
                scopes
            } else {
                input.scopes
            },
            control: run_control(args, explicit_format, Some(input.control))?,
        });
    }
    options.tag = TagSelector::parse(args.tag_key.as_deref(), &args.tag)?;
    options.classifications =
        parse_classifications(&args.classification, args.all_classifications)?;
    Ok(Plan {
        store_url: args.store.url().to_string(),
        options,
        scopes: scope_plan(&args.scopes)?,
        control: run_control(args, explicit_format, None)?,
    })
}

/// Whether the environment points the SDK somewhere else than AWS's public endpoints.
fn endpoint_overridden(config: &aws_types::SdkConfig) -> bool {
    config.endpoint_url().is_some()
        || [
            "AWS_ENDPOINT_URL",
            "AWS_ENDPOINT_URL_SSM",
            "AWS_ENDPOINT_URL_EC2",
            "AWS_ENDPOINT_URL_STS",
        ]
        .iter()
        .any(|k| std::env::var(k).is_ok_and(|v| !v.is_empty()))
}

/// The SDK configuration from the standard chain, with `--region` on top.
pub async fn load_aws_config(region: Option<&str>) -> Result<aws_types::SdkConfig, Failure> {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(r) = region {
        loader = loader.region(aws_types::region::Region::new(r.to_string()));
    }
    let config = loader.load().await;
    let region = config
        .region()
        .map(|r| r.to_string())
        .ok_or(patchtrail_collect::CollectError::NoRegion)?;
    check_region(&region, endpoint_overridden(&config))?;
    Ok(config)
}

/// A validated collection: what, where, and the AWS configuration to do it with.
pub struct Prepared {
    plan: Plan,
    config: aws_types::SdkConfig,
}

/// Validates every input and resolves the AWS configuration; nothing is written yet.
pub async fn prepare(args: &CollectArgs) -> Result<Prepared, Failure> {
    let plan = plan(args)?;
    let config = load_aws_config(args.region.as_deref()).await?;
    if let Regions::List(regions) = &plan.scopes.regions {
        for r in regions {
            check_region(r, endpoint_overridden(&config))?;
        }
    }
    Ok(Prepared { plan, config })
}

impl Prepared {
    pub fn store_url(&self) -> &str {
        &self.plan.store_url
    }

    pub fn region(&self) -> &str {
        self.config.region().map(|r| r.as_ref()).unwrap_or_default()
    }

    pub fn config(&self) -> &aws_types::SdkConfig {
        &self.config
    }

    pub fn options(&self) -> &CollectOptions {
        &self.plan.options
    }

    /// Opens the store and fails early on a missing bucket, denied access or unwritable folder.
    pub async fn open_store(&self) -> Result<Store, Failure> {
        // The bucket may live in another region than the fleet (`--region`): use its own.
        let access = AwsAccess::from_sdk_config(&self.config)
            .for_bucket_of(&self.plan.store_url, None)
            .await;
        let store = Store::open(&self.plan.store_url, &access)?;
        store.check_writable().await?;
        Ok(store)
    }

    /// One collection, committed, with its summary printed; exit 3 when instances failed.
    pub async fn collect_once(
        &self,
        store: &Store,
        ui: Ui,
        stop: &StopSignal,
    ) -> Result<ExitCode, Failure> {
        if self.plan.scopes.is_multi() {
            return self.collect_scopes(store, ui, stop).await;
        }
        let progress = Arc::new(Progress::default());
        let fleet = AwsFleet::new(&self.config, &self.plan.options, progress.clone())?;
        let started = Instant::now();
        let view =
            ProgressView::start(progress.clone(), ui.log_format == LogFormat::Text, ui.quiet);
        let report = collect_snapshot(
            &fleet,
            store,
            &self.plan.options,
            &self.plan.control,
            &progress,
            stop,
        )
        .await;
        drop(view);
        let report = report?;
        print_summary(&report, store, started.elapsed(), ui);
        Ok(if report.errors.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(EXIT_PARTIAL)
        })
    }
}

impl Prepared {
    /// Every scope of the plan, each committed as its own run; exit 3 when a scope or an
    /// instance failed (the committed scopes stay committed).
    async fn collect_scopes(
        &self,
        store: &Store,
        ui: Ui,
        stop: &StopSignal,
    ) -> Result<ExitCode, Failure> {
        let started = Instant::now();
        let progress = Arc::new(Progress::default());
        let view =
            ProgressView::start(progress.clone(), ui.log_format == LogFormat::Text, ui.quiet);
        let outcomes = collect_plan(
            &self.config,
            &self.plan.scopes,
            store,
            &self.plan.options,
            &self.plan.control,
            &progress,
            stop,
        )
        .await;
        drop(view);
        let outcomes = outcomes?;
        let failed = outcomes.iter().any(ScopeOutcome::failed);
        print_scopes(&outcomes, store, started.elapsed(), ui);
        if outcomes.iter().all(|o| o.result.is_err()) {
            // Nothing committed: the command failed as a whole, with the first scope's reason.
            return Err(match outcomes.into_iter().find_map(|o| o.result.err()) {
                Some(e) => e.into(),
                None => Failure::bad_input(
                    "--accounts/--organization and --regions name no (account, region) to collect: check the account list and the regions enabled for them",
                ),
            });
        }
        Ok(if failed {
            ExitCode::from(EXIT_PARTIAL)
        } else {
            ExitCode::SUCCESS
        })
    }
}

/// One line per scope (text), or one JSON object with a `scopes` array.
fn print_scopes(outcomes: &[ScopeOutcome], store: &Store, elapsed: Duration, ui: Ui) {
    if ui.log_format == LogFormat::Json {
        let scopes: Vec<serde_json::Value> = outcomes.iter().map(ScopeOutcome::to_json).collect();
        println!(
            "{}",
            serde_json::json!({
                "store": store.url(),
                "scopes": scopes,
                "duration_seconds": elapsed.as_secs_f64(),
            })
        );
        return;
    }
    let lines: Vec<patchtrail_query::ScopeLine> = outcomes
        .iter()
        .map(|o| patchtrail_query::ScopeLine {
            account_id: o.account_id.clone(),
            region: o.region.clone(),
            outcome: match &o.result {
                Ok(r) => Ok((
                    r.committed.manifest.run_id.clone(),
                    r.committed.manifest.counts.clone(),
                )),
                Err(e) => Err(e.to_string()),
            },
        })
        .collect();
    print!(
        "{}",
        ui.lang
            .scopes_summary(&lines, store.url(), elapsed.as_secs_f64())
    );
}

/// `--dry-run` over several scopes: how many instances each would collect.
async fn dry_run_scopes(prepared: &Prepared) -> Result<ExitCode, Failure> {
    let (scopes, failures) = resolve_scopes(&prepared.config, &prepared.plan.scopes).await?;
    println!("{:<12}  {:<15} INSTANCES", "ACCOUNT", "REGION");
    let mut failed = !failures.is_empty();
    for scope in &scopes {
        let fleet = AwsFleet::new(
            &scope.config,
            &prepared.plan.options,
            Arc::new(Progress::default()),
        )?;
        match discover_targets(&fleet, &prepared.plan.options).await {
            Ok(targets) => println!(
                "{:<12}  {:<15} {}",
                scope.account_id,
                scope.region,
                targets.len()
            ),
            Err(e) => {
                failed = true;
                println!("{:<12}  {:<15} failed: {e}", scope.account_id, scope.region);
            }
        }
    }
    for f in &failures {
        println!(
            "{:<12}  {:<15} failed: {}",
            f.account_id,
            f.region.as_deref().unwrap_or("-"),
            f.error
        );
    }
    println!(
        "{} scopes (dry run: nothing collected or written)",
        scopes.len()
    );
    Ok(if failed {
        ExitCode::from(EXIT_PARTIAL)
    } else {
        ExitCode::SUCCESS
    })
}

pub async fn run(args: &CollectArgs, ui: Ui) -> Result<ExitCode, Failure> {
    if args.dry_run {
        return dry_run(&prepare(args).await?).await;
    }
    // Listening from the start: a stop while the configuration loads ends the run before it
    // begins (exit 130), instead of the default action killing the process.
    let stop = StopSignal::default();
    let listener = stop_on_signal(stop.clone());
    let timer = args.time_limit.map(|limit| {
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(limit).await;
            tracing::warn!(?limit, "--time-limit reached: suspending the run");
            stop.stop();
        })
    });
    let result = async {
        let prepared = prepare(args).await?;
        let store = prepared.open_store().await?;
        prepared.collect_once(&store, ui, &stop).await
    }
    .await;
    listener.abort();
    if let Some(timer) = timer {
        timer.abort();
    }
    result
}

/// `--dry-run`: what would be collected; nothing is written.
async fn dry_run(prepared: &Prepared) -> Result<ExitCode, Failure> {
    if prepared.plan.scopes.is_multi() {
        return dry_run_scopes(prepared).await;
    }
    let fleet = AwsFleet::new(
        &prepared.config,
        &prepared.plan.options,
        Arc::new(Progress::default()),
    )?;
    let targets = discover_targets(&fleet, &prepared.plan.options).await?;
    println!("{:<21} {:<10} {:<26} NAME", "INSTANCE", "STATE", "PLATFORM");
    for t in &targets {
        println!(
            "{:<21} {:<10} {:<26} {}",
            t.instance_id,
            // A hybrid node has no EC2 state; its platform is its agent's OS.
            t.state
                .as_deref()
                .unwrap_or(if t.instance_id.starts_with("mi-") {
                    "hybrid"
                } else {
                    "-"
                }),
            t.platform_details.as_deref().unwrap_or("-"),
            t.tags.get("Name").map(String::as_str).unwrap_or("-")
        );
    }
    println!(
        "{} instances carry tag {} (dry run: nothing collected or written)",
        targets.len(),
        prepared.plan.options.tag.key
    );
    Ok(ExitCode::SUCCESS)
}

/// The closing summary: a few aligned lines for people, one JSON object for machines.
pub fn print_summary(report: &SnapshotReport, store: &Store, elapsed: Duration, ui: Ui) {
    let m = &report.committed.manifest;
    let c = &m.counts;
    if ui.log_format == LogFormat::Json {
        let summary = serde_json::json!({
            "run_id": m.run_id,
            "snapshot_time": m.snapshot_time,
            "store": store.url(),
            "format": m.format,
            "manifest": report.committed.manifest_key,
            "head": report.committed.entry.witness(),
            "counts": c,
            "duration_seconds": elapsed.as_secs_f64(),
            "errors": report.errors.iter().map(|(id, e)| serde_json::json!({"instance_id": id, "code": e.code, "message": e.message})).collect::<Vec<_>>(),
        });
        println!("{summary}");
        return;
    }
    let failures: Vec<(String, String)> = report
        .errors
        .iter()
        .map(|(id, e)| (id.clone(), e.to_string()))
        .collect();
    print!(
        "{}",
        ui.lang.collect_summary(
            m,
            &report.committed.manifest_key,
            &report.committed.entry.witness(),
            store.url(),
            elapsed.as_secs_f64(),
            &failures
        )
    );
}
