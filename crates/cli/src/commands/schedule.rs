//! `patchtrail schedule`: the collector on an EventBridge Scheduler expression, for a server,
//! a container or systemd. Runs never overlap; a failed run is logged and the next one runs as
//! scheduled; SIGTERM stops it after the object being written, leaving no half-written run.

use crate::cli::{ScheduleArgs, Ui};
use crate::commands::collect;
use crate::failure::Failure;
use crate::signals::stop_on_signal;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use patchtrail_collect::StopSignal;
use patchtrail_schedule::Schedule;
use std::process::ExitCode;
use std::time::Duration;

fn show(t: DateTime<Utc>, tz: Tz) -> String {
    format!(
        "{} ({})",
        t.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S %Z"),
        t.format("%Y-%m-%dT%H:%M:%SZ")
    )
}

/// Sleeps until `at`, waking every second to honour a stop request; false when stopped.
async fn wait_until(at: DateTime<Utc>, stop: &StopSignal) -> bool {
    loop {
        if stop.is_stopped() {
            return false;
        }
        let left = (at - Utc::now()).to_std().unwrap_or(Duration::ZERO);
        if left.is_zero() {
            return true;
        }
        tokio::time::sleep(left.min(Duration::from_secs(1))).await;
    }
}

pub async fn run(args: &ScheduleArgs, ui: Ui) -> Result<ExitCode, Failure> {
    let tz: Tz = args.timezone.parse().map_err(|_| {
        Failure::bad_input(format!(
            "--timezone {}: use an IANA time zone name such as UTC or Asia/Tokyo",
            args.timezone
        ))
    })?;
    let now = Utc::now();
    if let Some(expr) = &args.explain {
        let schedule = Schedule::parse(expr)?;
        let runs = schedule.upcoming(now, now, tz, 5);
        if runs.is_empty() {
            println!("{expr} has no run after {}", show(now, tz));
        }
        for t in runs {
            println!("{}", show(t, tz));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let expr = args
        .every
        .as_deref()
        .ok_or_else(|| Failure::bad_input("schedule: pass --every EXPR (or --explain EXPR)"))?;
    let schedule = Schedule::parse(expr)?;
    if args.collect.resume.is_some() || args.collect.time_limit.is_some() {
        return Err(Failure::bad_input(
            "schedule with --resume or --time-limit: they apply to one collect; a scheduled run takes its snapshot whole (run collect --resume RUN_ID for a suspended run)",
        ));
    }
    let prepared = collect::prepare(&args.collect).await?;
    let store = prepared.open_store().await?;
    let stop = StopSignal::default();
    let _listener = stop_on_signal(stop.clone());

    let anchor = Utc::now();
    let mut next = match schedule {
        Schedule::Rate(_) => Some(anchor),
        _ => schedule.next_after(anchor, anchor, tz),
    };
    let upcoming: Vec<String> = next
        .into_iter()
        .chain(schedule.upcoming(next.unwrap_or(anchor), anchor, tz, 2))
        .map(|t| show(t, tz))
        .collect();
    println!(
        "schedule {expr} in {tz}, writing to {}; next runs: {}",
        prepared.store_url(),
        upcoming.join(", ")
    );
    let mut runs = 0u64;
    while let Some(at) = next {
        if !wait_until(at, &stop).await {
            break;
        }
        runs += 1;
        tracing::info!(run = runs, "scheduled run starting");
        match prepared.collect_once(&store, ui, &stop).await {
            Ok(code) => tracing::info!(run = runs, ?code, "scheduled run finished"),
            Err(_) if stop.is_stopped() => break,
            Err(failure) => {
                eprintln!(
                    "error: scheduled run {runs} failed: {} (the next run goes ahead as scheduled)",
                    failure.message
                );
            }
        }
        if stop.is_stopped() {
            break;
        }
        next = schedule.next_after(Utc::now().max(at), anchor, tz);
        match next {
            Some(t) => println!("next run at {}", show(t, tz)),
            None => println!("{expr} has no further runs"),
        }
    }
    println!("scheduler stopped after {runs} run(s)");
    Ok(ExitCode::SUCCESS)
}
