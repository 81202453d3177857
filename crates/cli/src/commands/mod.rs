//! One module per subcommand.

pub mod collect;
pub mod completions;
pub mod demo;
pub mod doctor;
pub mod export;
pub mod import;
pub mod report;
pub mod schedule;
pub mod sim;

use crate::failure::Failure;
use std::io::Write;

/// When a command ran, as its provenance states it: `SOURCE_DATE_EPOCH` when set (the
/// reproducible-builds convention: the same store, options and clock give the same bytes, which
/// is how an evidence pack is made again to compare), else the wall clock.
pub fn run_time() -> Result<chrono::DateTime<chrono::Utc>, Failure> {
    let Ok(given) = std::env::var("SOURCE_DATE_EPOCH") else {
        return Ok(chrono::Utc::now());
    };
    given
        .trim()
        .parse::<i64>()
        .ok()
        .and_then(|secs| chrono::DateTime::from_timestamp(secs, 0))
        .ok_or_else(|| {
            Failure::bad_input(format!(
                "SOURCE_DATE_EPOCH='{given}': not a count of seconds since 1970-01-01 UTC; unset it to use the clock, or give one such as 1772323200"
            ))
        })
}

/// Writes a command's whole output to stdout. A reader that closed the pipe (`| head -1`) has
/// what it wanted: that ends the command quietly, never as an error (see also main's
/// `quiet_on_closed_stdout` for `println!`).
pub fn write_stdout(bytes: &[u8]) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.map_err(|e| Failure::other(format!("cannot write to stdout: {e}"))),
    }
}
