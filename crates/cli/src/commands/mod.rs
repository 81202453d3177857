//! One module per subcommand.

pub mod collect;
pub mod completions;
pub mod demo;
pub mod doctor;
pub mod import;
pub mod report;
pub mod schedule;
pub mod sim;
