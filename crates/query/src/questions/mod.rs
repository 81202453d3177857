//! The questions the reports answer, each producing a [`crate::report::Report`] computed on
//! Arrow arrays (no SQL engine): the state as of a date (`summary`), the changes between two
//! (`diff`), the trend (`trend`), the history of an instance or a patch (`timelines`), all from
//! the instance states of `states`; the auditor's findings, SLA and exposure (`findings`); the
//! dashboard that combines them; the charts drawn from a report's own tables; and the provenance
//! every report ends with. Which snapshots a question reads (§5) is decided here, before any
//! column is decoded.

pub(crate) mod charts;
pub(crate) mod dashboard;
pub(crate) mod diff;
pub(crate) mod findings;
pub(crate) mod provenance;
pub(crate) mod states;
pub(crate) mod summary;
pub(crate) mod timelines;
pub(crate) mod trend;

use crate::QueryError;
use crate::history::{LoadedHistory, RunInfo};
use crate::report::{Column, text_column, time_column};
use chrono::{DateTime, Utc};

/// The maps the questions look up per row (KB ids, instances, patch keys): hashed with aHash
/// (already built for Arrow) rather than SipHash, whose resistance to chosen keys a report over
/// the store's own rows does not need and whose cost showed in profiles.
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, ahash::RandomState>;
pub(crate) type FastSet<K> = std::collections::HashSet<K, ahash::RandomState>;

/// Calls `visit` with `decode(run)` for each of `runs`, in their order, while the runs after it
/// decode on other threads (one per core, each taking every n-th run): a question that reads many
/// snapshots uses every core to decode them, and its own work overlaps it. A decoder hands its run
/// over only when it is visited next, so at most one decoded run per core waits beside the one
/// visited: memory is bounded by the cores, not by the runs. The first error, of a decode or a
/// visit, stops the others and is returned.
pub(crate) fn in_order<R: Copy + Send + Sync, T: Send>(
    runs: &[R],
    decode: impl Fn(R) -> Result<T, QueryError> + Sync,
    mut visit: impl FnMut(T) -> Result<(), QueryError>,
) -> Result<(), QueryError> {
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .clamp(1, runs.len().max(1));
    std::thread::scope(|scope| {
        let decode = &decode;
        let (decoders, decoded): (Vec<_>, Vec<_>) = (0..threads)
            .map(|first| {
                let (send, receive) = std::sync::mpsc::sync_channel(0);
                let decoder = scope.spawn(move || {
                    for &run in runs.iter().skip(first).step_by(threads) {
                        let one = decode(run);
                        let failed = one.is_err();
                        if send.send(one).is_err() || failed {
                            break;
                        }
                    }
                });
                (decoder, receive)
            })
            .unzip();
        let mut outcome = Ok(());
        for k in 0..runs.len() {
            let next = decoded[k % threads]
                .recv()
                .map_err(|_| QueryError::Engine("a snapshot decoder stopped".into()));
            if let Err(e) = next.and_then(|one| one).and_then(&mut visit) {
                outcome = Err(e);
                break;
            }
        }
        // The decoders still running stop at their next send.
        drop(decoded);
        for decoder in decoders {
            decoder
                .join()
                .map_err(|_| QueryError::Engine("a snapshot decoder stopped".into()))?;
        }
        outcome
    })
}

/// The columns that name each of `runs`: its snapshot time, run id, account and region.
pub(crate) fn run_columns(runs: &[&RunInfo]) -> Vec<Column> {
    vec![
        time_column(
            "snapshot_time",
            false,
            runs.iter()
                .map(|r| Some(r.snapshot_time.timestamp_micros())),
        ),
        text_column(
            "run_id",
            false,
            runs.iter().map(|r| Some(r.run_id.as_str())),
        ),
        text_column(
            "account_id",
            false,
            runs.iter().map(|r| Some(r.account_id.as_str())),
        ),
        text_column(
            "region",
            false,
            runs.iter().map(|r| Some(r.region.as_str())),
        ),
    ]
}

impl LoadedHistory {
    pub(crate) fn require_runs(&self) -> Result<(), QueryError> {
        if self.first_day.is_none() && !self.scopes.is_empty() {
            let mut filter = Vec::new();
            if !self.scopes.accounts.is_empty() {
                filter.push(format!("--account {}", self.scopes.accounts.join(",")));
            }
            if !self.scopes.regions.is_empty() {
                filter.push(format!("--region {}", self.scopes.regions.join(",")));
            }
            return Err(QueryError::NoScope {
                store: self.store_url.clone(),
                filter: filter.join(" "),
            });
        }
        if self.first_day.is_none() {
            return Err(QueryError::EmptyStore {
                store: self.store_url.clone(),
            });
        }
        Ok(())
    }

    /// The snapshots in force at `instant` (§5.2), or a message naming the first one.
    pub fn require_as_of(
        &self,
        instant: DateTime<Utc>,
        label: &str,
    ) -> Result<Vec<&RunInfo>, QueryError> {
        self.require_runs()?;
        let chosen = self.snapshots_as_of(instant);
        if chosen.is_empty() {
            let first = self.first_day.map(|d| d.to_string()).unwrap_or_default();
            return Err(QueryError::BeforeFirst {
                date: label.to_string(),
                first,
            });
        }
        Ok(chosen)
    }

    pub(crate) fn describe(runs: &[&RunInfo]) -> String {
        runs.iter()
            .map(|r| {
                format!(
                    "{} ({})",
                    r.snapshot_time.format("%Y-%m-%d %H:%M UTC"),
                    r.run_id
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(what: &str) -> QueryError {
        QueryError::Engine(what.into())
    }

    #[test]
    fn runs_are_visited_in_their_order_whichever_decoder_finishes_first() {
        let runs: Vec<u64> = (0..40).collect();
        let mut seen = Vec::new();
        // Early runs decode slowest, so later ones are ready first.
        let decode = |r: u64| {
            std::thread::sleep(std::time::Duration::from_micros((40 - r) * 200));
            Ok(r * 10)
        };
        in_order(&runs, decode, |v| {
            seen.push(v);
            Ok(())
        })
        .expect("no run fails");
        assert_eq!(seen, runs.iter().map(|r| r * 10).collect::<Vec<_>>());
    }

    #[test]
    fn the_first_error_stops_the_visits_and_is_returned() {
        let runs: Vec<u64> = (0..40).collect();
        let mut seen = Vec::new();
        let decode = |r: u64| if r == 7 { Err(failed("run 7")) } else { Ok(r) };
        let outcome = in_order(&runs, decode, |v| {
            seen.push(v);
            Ok(())
        });
        assert!(matches!(outcome, Err(QueryError::Engine(w)) if w == "run 7"));
        assert_eq!(seen, (0..7).collect::<Vec<_>>());

        let mut seen = Vec::new();
        let outcome = in_order(&runs, Ok, |v| {
            seen.push(v);
            if v == 3 {
                Err(failed("visit 3"))
            } else {
                Ok(())
            }
        });
        assert!(matches!(outcome, Err(QueryError::Engine(w)) if w == "visit 3"));
        assert_eq!(seen, (0..4).collect::<Vec<_>>());
    }
}
