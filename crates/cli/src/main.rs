//! `patchtrail`: thin glue from the command line to the library crates, and from their outcomes
//! to exit codes and one-line error messages.

mod cli;
mod commands;
mod failure;
mod progress;
mod signals;

use clap::Parser;
use cli::{Cli, Command, LogFormat, Ui};
use patchtrail_query::Lang;
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

/// glibc serves every allocation below its mmap threshold from heaps it seldom gives back, and
/// raises that threshold (up to 32 MiB) each time a large buffer is freed: the collector's
/// Parquet parts and batches then stay resident after use. A fixed 64 KiB threshold returns them
/// to the system when freed: peak RSS of a 20,000-instance collect ~90 → ~80 MiB, no measurable
/// cost in time (bench/README.md). Other allocators (musl, macOS, Windows) are left as they are.
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const MMAP_THRESHOLD: libc::c_int = 64 * 1024;
        // SAFETY: mallopt only sets a tunable of glibc's allocator; called before any thread starts.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        }
    }
}

fn init_logging(cli: &Cli) {
    let default = match (cli.quiet, cli.verbose, cli.log_format) {
        (true, _, _) => "error",
        (false, 0, LogFormat::Text) => "warn",
        (false, 0, LogFormat::Json) | (false, 1, _) => "info",
        (false, _, _) => "debug",
    };
    let filter = EnvFilter::try_from_env("PATCHTRAIL_LOG").unwrap_or_else(|_| {
        EnvFilter::new(format!(
            "{default},aws_smithy_runtime=error,aws_config=error,hyper=warn"
        ))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.with_target(false).compact().init(),
    }
}

/// A closed stdout (`patchtrail report … | head -1`) ends the command quietly, as ripgrep and
/// git do: `println!` panics when stdout is a pipe nobody reads any more, and that is the
/// reader's choice, not a crash. SIGPIPE's default action is not used instead because it
/// would also kill a run writing to a socket whose peer went away. Every other panic keeps the
/// default report.
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(0);
        }
        default(info);
    }));
}

fn main() -> ExitCode {
    tune_allocator();
    quiet_on_closed_stdout();
    let cli = Cli::parse();
    init_logging(&cli);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let lang = match cli.lang.as_deref().map_or_else(Lang::from_env, Lang::parse) {
        Ok(lang) => lang,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(failure::EXIT_BAD_INPUT);
        }
    };
    let ui = Ui {
        log_format: cli.log_format,
        quiet: cli.quiet,
        lang,
    };
    let result = runtime.block_on(async {
        match &cli.command {
            Command::Collect(args) => commands::collect::run(args, ui).await,
            Command::Sim(args) => commands::sim::run(args).await,
            Command::Demo(args) => commands::demo::run(args, lang).await,
            Command::Report(args) => commands::report::report(&args.report, lang).await,
            Command::Sql(args) => commands::report::sql(args, lang).await,
            Command::Verify(args) => commands::report::verify(args).await,
            Command::Evidence(args) => commands::report::evidence(args, lang).await,
            Command::AthenaDdl(args) => commands::report::athena(args),
            Command::Doctor(args) => commands::doctor::run(args).await,
            Command::Import(args) => commands::import::run(args).await,
            Command::Export(args) => commands::export::run(&args.export, lang).await,
            Command::Schedule(args) => commands::schedule::run(args, ui).await,
            Command::Completions { shell } => commands::completions::completions(*shell),
            Command::Man => commands::completions::man(),
        }
    });
    match result {
        Ok(code) => code,
        Err(failure) => {
            eprintln!("error: {}", failure.message);
            ExitCode::from(failure.exit_code)
        }
    }
}
