//! The questions the reports answer, each producing a [`crate::report::Report`]: the state as of
//! a date (`summary`, on Arrow arrays), the changes between two, the history of an instance or a
//! patch, the trend (`snapshots`, in SQL); the auditor's findings, SLA and exposure (`findings`); the dashboard that
//! combines them; the charts drawn from a report's own tables; and the provenance every report
//! ends with.

pub(crate) mod charts;
pub(crate) mod dashboard;
pub(crate) mod findings;
pub(crate) mod provenance;
pub(crate) mod snapshots;
pub(crate) mod summary;
