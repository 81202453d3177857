//! `patchtrail sim`: serve the simulated fleet until SIGINT or SIGTERM.

use crate::cli::SimArgs;
use crate::failure::Failure;
use crate::signals::shutdown_signal;
use patchtrail_sim::SimConfig;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

fn check_rate(name: &str, rate: Option<f64>) -> Result<(), Failure> {
    match rate {
        Some(r) if !(r.is_finite() && r > 0.0) => Err(Failure::bad_input(format!(
            "{name} {r}: give a positive number of requests per second"
        ))),
        _ => Ok(()),
    }
}

pub async fn run(args: &SimArgs) -> Result<ExitCode, Failure> {
    check_rate("--ssm-tps", args.ssm_tps)?;
    check_rate("--ec2-tps", args.ec2_tps)?;
    if !(0.0..=1.0).contains(&args.fault_rate) {
        return Err(Failure::bad_input(format!(
            "--fault-rate {}: give a share between 0 and 1",
            args.fault_rate
        )));
    }
    if !(0.0..=1.0).contains(&args.unmanaged_rate) {
        return Err(Failure::bad_input(format!(
            "--unmanaged-rate {}: give a share between 0 and 1",
            args.unmanaged_rate
        )));
    }
    for id in std::iter::once(&args.account_id).chain(&args.deny_assume) {
        if !(id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit())) {
            return Err(Failure::bad_input(format!(
                "account id '{id}': give the 12 digits of an AWS account id"
            )));
        }
    }
    let config = SimConfig {
        seed: args.seed,
        instances: args.instances,
        hybrid: args.hybrid,
        date: args.date,
        account_id: args.account_id.clone(),
        ssm_tps: args.ssm_tps,
        ec2_tps: args.ec2_tps,
        latency: Duration::from_millis(args.latency_ms),
        fault_rate: args.fault_rate,
        model_enums: args.model_enums,
        unmanaged_rate: args.unmanaged_rate,
        deny_actions: args.deny_action.clone(),
        token_ttl: args.token_ttl_ms.map(Duration::from_millis),
        accounts: args.accounts,
        regions: args.regions.clone(),
        deny_assume: args.deny_assume.clone(),
        ..SimConfig::default()
    };
    let running = patchtrail_sim::start(config, args.addr)
        .await
        .map_err(|e| {
            Failure::bad_input(format!(
                "--addr {}: cannot listen there ({e}); pick another address or port 0",
                args.addr
            ))
        })?;
    println!("listening on {}", running.url());
    if args.accounts > 1 || !args.regions.is_empty() {
        let directory = &running.org.directory;
        let regions = directory
            .enabled_regions(&running.sim.config.region)
            .join(",");
        for m in &directory.members {
            eprintln!("account {} {} {} regions {regions}", m.id, m.state, m.name);
        }
    }
    let _ = std::io::stdout().flush();
    tracing::info!(instances = args.instances, seed = args.seed, date = %args.date, "simulator serving");
    shutdown_signal().await;
    running
        .stop()
        .await
        .map_err(|e| Failure::other(format!("simulator did not stop cleanly: {e}")))?;
    eprintln!("simulator stopped");
    Ok(ExitCode::SUCCESS)
}
