//! `patchtrail demo`: the main job on the embedded default. A simulated fleet is served in-process
//! and collected once a simulated week into a local Parquet store, each snapshot dated by its
//! simulated date, so the history spans weeks.

use crate::cli::DemoArgs;
use crate::failure::Failure;
use aws_credential_types::Credentials;
use chrono::{Duration, NaiveTime};
use patchtrail_collect::{
    AwsFleet, CollectOptions, Progress, RunControl, StopSignal, collect_snapshot,
};
use patchtrail_model::StoreFormat;
use patchtrail_query::{
    Lang, LoadedHistory, OutputFormat, Selection, Waivers, dashboard, end_of, render,
};
use patchtrail_sim::SimConfig;
use patchtrail_store::{AwsAccess, Store};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

/// Entries a demo store may hold; anything else means the folder is not ours to empty.
const DEMO_ENTRIES: [&str; 6] = [
    "_patchtrail",
    "patches",
    "instances",
    "runs",
    "report.html",
    "waivers.toml",
];

/// The demo's accepted risks (docs/semantics.md §8.6): one that holds at the report's date and
/// one that expired before it, so the report shows both.
fn demo_waivers(until: chrono::NaiveDate) -> String {
    format!(
        "# Accepted risks, applied at report time (docs/semantics.md §8.6).\n\
         [[waiver]]\n\
         id = \"RISK-101\"\n\
         tag = \"Environment=dev\"\n\
         reason = \"Development servers are rebuilt from patched images every sprint\"\n\
         approver = \"security-lead@example.com\"\n\
         expires = {active}\n\n\
         [[waiver]]\n\
         id = \"RISK-087\"\n\
         tag = \"Environment=staging\"\n\
         reason = \"Staging freeze for the year-end release\"\n\
         approver = \"cab@example.com\"\n\
         expires = {expired}\n",
        active = until + Duration::days(90),
        expired = until - Duration::days(21),
    )
}

/// Empties an earlier demo's data, refusing to touch a folder that holds anything else.
fn prepare_folder(dir: &Path) -> Result<(), Failure> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    let names: Vec<String> = entries
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    if let Some(foreign) = names.iter().find(|n| !DEMO_ENTRIES.contains(&n.as_str())) {
        return Err(Failure::bad_input(format!(
            "--store {}: the folder holds '{foreign}', which the demo did not write; pass --store with a new or empty folder",
            dir.display()
        )));
    }
    for name in names {
        let path = dir.join(&name);
        let removed = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        removed.map_err(|e| {
            Failure::other(format!(
                "cannot clear the earlier demo's {}: {e}",
                path.display()
            ))
        })?;
    }
    Ok(())
}

pub async fn run(args: &DemoArgs, lang: Lang) -> Result<ExitCode, Failure> {
    let dir = Path::new(&args.store);
    prepare_folder(dir)?;
    let first = args.until - Duration::weeks(i64::from(args.weeks) - 1);
    let sim = patchtrail_sim::start(
        SimConfig {
            seed: args.seed,
            instances: args.instances,
            // A few on-premises servers, as a mixed fleet has.
            hybrid: (args.instances / 20).max(3),
            date: first,
            ..SimConfig::default()
        },
        ([127, 0, 0, 1], 0).into(),
    )
    .await
    .map_err(|e| Failure::other(format!("cannot start the simulated fleet on loopback: {e}")))?;

    // The demo talks to its own in-process simulator, so it sets endpoint and credentials itself.
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_types::region::Region::new("us-east-1"))
        .endpoint_url(sim.url())
        .credentials_provider(Credentials::new(
            "demo",
            "demo",
            None,
            None,
            "patchtrail-demo",
        ))
        .load()
        .await;
    let mut options = CollectOptions::default();
    if args.all_classifications {
        options.classifications.clear();
    }
    let progress = Arc::new(Progress::default());
    let fleet = AwsFleet::new(&config, &options, progress.clone())?;
    let store = Store::open(&args.store, &AwsAccess::default())?;

    println!(
        "Simulated fleet of {} instances at {}; collecting {} weekly snapshots:",
        args.instances,
        sim.url(),
        args.weeks
    );
    for week in 0..args.weeks {
        let date = first + Duration::weeks(i64::from(week));
        sim.sim.set_date(date);
        let at = date
            .and_time(NaiveTime::from_hms_opt(6, 0, 0).unwrap_or(NaiveTime::MIN))
            .and_utc();
        let report = collect_snapshot(
            &fleet,
            &store,
            &options,
            &RunControl {
                format: StoreFormat::Parquet,
                snapshot_time: Some(at),
                ..RunControl::default()
            },
            &progress,
            &StopSignal::default(),
        )
        .await?;
        let c = &report.committed.manifest.counts;
        println!(
            "  {date}  {:>4} instances ({} unmanaged)  {:>6} patches  {:>5} missing ({} critical)  {:>3} failed",
            c.instances, c.unmanaged, c.patches, c.missing, c.missing_critical, c.failed
        );
    }
    sim.stop()
        .await
        .map_err(|e| Failure::other(format!("simulator did not stop cleanly: {e}")))?;
    println!(
        "History written to {} (parquet, {} committed runs).",
        store.url(),
        args.weeks
    );

    // The report's "as of" is the end of the last simulated day, the instant its label names.
    let until = args.until.to_string();
    let as_of = end_of(&until, "--until", chrono_tz::UTC)?;
    let mut history = LoadedHistory::load(&store, &Selection::All).await?;
    history.lang = lang;
    let waivers_path = dir.join("waivers.toml");
    let waivers_text = demo_waivers(args.until);
    std::fs::write(&waivers_path, &waivers_text)
        .map_err(|e| Failure::other(format!("cannot write {}: {e}", waivers_path.display())))?;
    let waivers = Waivers::parse(&waivers_path.display().to_string(), &waivers_text)?;
    let html = render(
        &dashboard(&history, as_of, &until, &waivers).await?,
        OutputFormat::Html,
    )?;
    let report = dir.join("report.html");
    std::fs::write(&report, html)
        .map_err(|e| Failure::other(format!("cannot write {}: {e}", report.display())))?;
    let report = report.canonicalize().unwrap_or(report);
    println!("Report: {}", report.display());
    println!(
        "Next:   patchtrail report summary --store {}   (or diff, history, trend, sla, exposure, sql)",
        args.store
    );
    println!(
        "        patchtrail report sla --store {} --as-of {until} --waivers {}",
        args.store,
        waivers_path.display()
    );
    Ok(ExitCode::SUCCESS)
}
