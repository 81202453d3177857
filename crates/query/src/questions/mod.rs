//! The questions the reports answer, each producing a [`crate::report::Report`]: the state as of
//! a date (`summary`), the changes between two (`diff`) and the trend (`trend`), on Arrow arrays
//! from the instance states of `states`; the history of an instance or a patch (`snapshots`, in
//! SQL); the auditor's findings, SLA and exposure (`findings`); the dashboard that
//! combines them; the charts drawn from a report's own tables; and the provenance every report
//! ends with.

pub(crate) mod charts;
pub(crate) mod dashboard;
pub(crate) mod diff;
pub(crate) mod findings;
pub(crate) mod provenance;
pub(crate) mod snapshots;
pub(crate) mod states;
pub(crate) mod summary;
pub(crate) mod trend;
