//! Reports over the patch history, computed on Arrow arrays, and renderers for people (terminal,
//! Markdown, HTML, Excel) and machines (CSV, JSON); with the feature `sql`, Apache DataFusion SQL
//! over the stored tables (`patchtrail sql`).
//!
//! One direction: `history` reads the committed runs and `columns` decodes what a question asks
//! for; `questions` ask them and each answers a [`Report`] value (`report`); `render` turns a
//! report into bytes; `evidence` packs several rendered reports; `export` renders the findings as
//! OCSF events and ASFF findings for security tooling. `lang`, `dates`, `judgments` and
//! `kev` are the shared vocabulary; `sql` serves `patchtrail sql` only.
//!
//! History nobody can read is not an audit trail: this crate answers "what was the state on D",
//! "what changed between D1 and D2", "how did it trend", and any SQL over `patches`,
//! `instances` and `runs`, reading only committed runs.

mod athena;
mod columns;
mod dates;
mod evidence;
pub mod export;
mod history;
mod judgments;
mod kev;
mod lang;
mod questions;
mod render;
mod report;
#[cfg(feature = "sql")]
mod sql;

pub use athena::athena_ddl;
pub use dates::{as_of_instant, end_of, parse_tz, start_of};
pub use evidence::{Evidence, EvidenceRequest, evidence_pack};
pub use history::{Damage, LoadedHistory, RunInfo};
pub use judgments::{Clock, Limit, SlaPolicy, Waiver, Waivers};
pub use kev::{Kev, KevEntry};
pub use lang::{Lang, ScopeLine};
pub use patchtrail_store::{ScopeFilter, Selection};
pub use questions::dashboard::dashboard;
pub use questions::states::DEFAULT_STALE_DAYS;
pub use render::{OutputFormat, render, render_table};
pub use report::{Chart, Report, Series, Table, cell_text, column_names};

use patchtrail_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "no committed runs in '{store}': collect one first (patchtrail collect), or try patchtrail demo"
    )]
    EmptyStore { store: String },
    #[error(
        "no committed run of {filter} in '{store}': check the ids, or list the scopes it holds with patchtrail sql \"SELECT DISTINCT account_id, region FROM runs\""
    )]
    NoScope { store: String, filter: String },
    #[error("no snapshot at or before {date}: the first one is {first}")]
    BeforeFirst { date: String, first: String },
    #[error("{input}: {fix}")]
    BadInput { input: String, fix: String },
    #[error("query failed: {0}")]
    Engine(String),
    #[error("cannot render the report: {0}")]
    Render(String),
    #[error(
        "the history in '{store}' is damaged: {what}. Run `patchtrail verify --store {store}` to see all of it, or pass --skip-damaged to report without the damaged runs"
    )]
    Damaged { store: String, what: String },
}
