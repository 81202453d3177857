//! One module per subcommand.

pub mod collect;
pub mod demo;
pub mod sim;
