//! One module per subcommand.

pub mod collect;
pub mod completions;
pub mod demo;
pub mod doctor;
pub mod import;
pub mod report;
pub mod schedule;
pub mod sim;

use crate::failure::Failure;
use std::io::Write;

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
