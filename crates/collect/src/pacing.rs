//! Client-side pacing (`--max-tps`) and live counters for progress displays.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// Spaces calls to one API at least `1/rate` seconds apart, across all tasks.
#[derive(Debug)]
pub struct Pacer {
    interval: Duration,
    next: Mutex<Instant>,
}

impl Pacer {
    pub fn new(rate: f64) -> Pacer {
        Pacer {
            interval: Duration::from_secs_f64(1.0 / rate.max(0.001)),
            next: Mutex::new(Instant::now()),
        }
    }

    /// Waits for this caller's slot.
    pub async fn wait(&self) {
        let slot = {
            let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
            let slot = (*next).max(Instant::now());
            *next = slot + self.interval;
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
}

/// Asks a running collection to stop at the next object boundary (SIGTERM, Ctrl-C), in every
/// phase: long waits (discovery, patch states, back-off) are raced against it.
#[derive(Debug, Clone)]
pub struct StopSignal(std::sync::Arc<tokio::sync::watch::Sender<bool>>);

impl Default for StopSignal {
    fn default() -> Self {
        StopSignal(std::sync::Arc::new(tokio::sync::watch::channel(false).0))
    }
}

impl StopSignal {
    pub fn stop(&self) {
        self.0.send_replace(true);
    }

    pub fn is_stopped(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once a stop is asked for.
    pub async fn stopped(&self) {
        let mut rx = self.0.subscribe();
        let _ = rx.wait_for(|stopped| *stopped).await;
    }

    /// Runs `work` unless a stop comes first (`None` then); what `work` was doing is dropped
    /// between awaits, before anything of the run is committed.
    pub async fn or_stop<T>(&self, work: impl std::future::Future<Output = T>) -> Option<T> {
        tokio::select! {
            biased;
            _ = self.stopped() => None,
            out = work => Some(out),
        }
    }
}

/// Counters a progress bar or log line reads while a collection runs.
#[derive(Debug, Default)]
pub struct Progress {
    pub instances_total: AtomicU64,
    pub instances_done: AtomicU64,
    pub pages: AtomicU64,
    pub patches: AtomicU64,
    pub unmanaged: AtomicU64,
    pub errors: AtomicU64,
    /// API calls made (one per operation, whatever its attempts).
    pub calls: AtomicU64,
    /// HTTP attempts, retries included.
    pub attempts: AtomicU64,
}

impl Progress {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// Attempts beyond the first of each call: throttling and transient faults, retried.
    pub fn retries(&self) -> u64 {
        Progress::get(&self.attempts).saturating_sub(Progress::get(&self.calls))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn pacer_spaces_calls() {
        let pacer = Pacer::new(10.0);
        let start = Instant::now();
        for _ in 0..5 {
            pacer.wait().await;
        }
        // Slots at 0, 100, 200, 300, 400 ms.
        assert_eq!(start.elapsed(), Duration::from_millis(400));
    }
}
