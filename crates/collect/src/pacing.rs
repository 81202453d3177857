//! Pacing that tunes itself, stop signals, and live counters for progress displays.
//!
//! SSM publishes no API rates, so no flag can be right for every account. Each API gets a
//! [`RateController`] shared by all tasks: it paces calls at a rate learnt from the service's
//! throttling answers (a slow start, then additive increase and multiplicative decrease, as TCP
//! and the AWS SDKs' adaptive mode do), and sizes how many calls are in flight from the rate and
//! the service's least recent latency (Little's law). A throttled call is retried at the next
//! paced slot instead of sleeping through an exponential back-off: the SDK's own adaptive retry
//! left the collector idle half the time (issue 12: 1.95x the rate bound). `--max-tps` stays a
//! ceiling.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// The first rate tried, requests per second: low enough for any account, and slow start
/// leaves it within a second or two.
const START_RATE: f64 = 20.0;
/// The rate never goes below this, however often the service throttles.
const FLOOR_RATE: f64 = 0.5;
/// Slow start: each answered call adds this many requests per second, so the rate grows
/// e-fold every third of a second until the first throttle.
const SLOW_START_GAIN: f64 = 3.0;
/// A throttle cuts the rate to this share of what it was...
const DECREASE: f64 = 0.85;
/// ...and each second without one adds back this share of the rate at the last cut...
const INCREASE_PER_SECOND: f64 = 0.1;
/// ...until the rate passes it: then the limit may have risen, and the rate probes upward,
/// e-fold every second (slowly enough that it overshoots by little before a throttle says so).
const PROBE_GAIN: f64 = 1.0;
/// A slot missed by less than this (timer granularity) is caught up rather than lost.
const CATCH_UP: Duration = Duration::from_millis(10);
/// How long the least latency seen is trusted.
const LATENCY_MEMORY: Duration = Duration::from_secs(10);
/// Latency assumed until the first answer.
const FIRST_LATENCY: Duration = Duration::from_millis(100);

#[derive(Debug)]
struct Control {
    rate: f64,
    slow_start: bool,
    rate_at_cut: f64,
    /// Calls sent before the last cut were paced at the old rate: their throttles are old news.
    last_cut: Option<Instant>,
    /// The least time from a call's slot to its answer seen lately, and since when: the
    /// service's own latency, without the queueing our own calls cause (as BBR's min RTT).
    latency: Option<(Duration, Instant)>,
    /// Whether the last call waited for its slot: then the rate, not the demand, bounds the
    /// calls, and an answered call says the rate could go up.
    limiting: bool,
}

/// The self-tuning pace of one API in one account and region, shared by every task calling it.
#[derive(Debug)]
pub struct RateController {
    ceiling: Option<f64>,
    control: Mutex<Control>,
    /// The next free slot; the async mutex queues waiters first come, first served.
    next_slot: tokio::sync::Mutex<Instant>,
}

impl RateController {
    /// A controller that never paces faster than `ceiling` requests per second, if given.
    pub fn new(ceiling: Option<f64>) -> RateController {
        // A ceiling is a rate the user knows: start there.
        let rate = ceiling.map_or(START_RATE, |c| c.max(FLOOR_RATE));
        RateController {
            ceiling,
            control: Mutex::new(Control {
                rate,
                slow_start: true,
                rate_at_cut: rate,
                last_cut: None,
                latency: None,
                limiting: false,
            }),
            next_slot: tokio::sync::Mutex::new(Instant::now()),
        }
    }

    fn control(&self) -> std::sync::MutexGuard<'_, Control> {
        self.control.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current pace, requests per second.
    pub fn rate(&self) -> f64 {
        self.control().rate
    }

    /// How many calls to keep under way: enough to fill the rate at the service's latency,
    /// twice over so that some always wait for a slot (which is how the rate learns it may
    /// grow), at most `ceiling`. The least recent latency, not the average, so that calls
    /// queueing behind each other (on a busy machine) do not ask for ever more calls.
    pub fn window(&self, ceiling: usize) -> usize {
        let c = self.control();
        let latency = c.latency.map_or(FIRST_LATENCY, |(l, _)| l).as_secs_f64();
        let needed = (2.0 * c.rate * latency).ceil() as usize + 8;
        needed.clamp(1, ceiling.max(1))
    }

    /// Waits for this caller's slot and returns when it was: pass it back with the answer.
    pub async fn acquire(&self) -> Instant {
        let mut next = self.next_slot.lock().await;
        let now = Instant::now();
        let slot = (*next).max(now.checked_sub(CATCH_UP).unwrap_or(now));
        let waited = slot > now;
        if waited {
            tokio::time::sleep_until(slot).await;
        }
        let rate = {
            let mut c = self.control();
            c.limiting = waited;
            c.rate
        };
        *next = slot + Duration::from_secs_f64(1.0 / rate);
        slot.max(now)
    }

    /// An answer (not a throttle) to a call sent at `sent`.
    pub fn answered(&self, sent: Instant) {
        let now = Instant::now();
        let latency = now - sent;
        let mut c = self.control();
        // A minimum older than LATENCY_MEMORY is forgotten: the service may have slowed down.
        if c.latency
            .is_none_or(|(least, at)| latency <= least || now - at > LATENCY_MEMORY)
        {
            c.latency = Some((latency, now));
        }
        if !c.limiting {
            return;
        }
        // One answer every 1/rate seconds: a gain g per answer adds g x rate a second.
        let grown = if c.slow_start {
            c.rate + SLOW_START_GAIN
        } else if c.rate < c.rate_at_cut {
            c.rate + INCREASE_PER_SECOND * c.rate_at_cut / c.rate
        } else {
            c.rate + PROBE_GAIN
        };
        c.rate = self.ceiling.map_or(grown, |top| grown.min(top));
    }

    /// The service throttled a call sent at `sent`: slow down, once per round of calls.
    pub fn throttled(&self, sent: Instant) {
        let mut c = self.control();
        if c.last_cut.is_some_and(|cut| sent < cut) {
            return;
        }
        c.rate_at_cut = c.rate;
        c.rate = (c.rate * DECREASE).max(FLOOR_RATE);
        c.slow_start = false;
        c.last_cut = Some(Instant::now());
        tracing::debug!(rate = c.rate, "throttled: slowing down");
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
    /// Calls the service throttled (each retried at a slower pace).
    pub throttled: AtomicU64,
    /// The current pace of DescribeInstancePatches, requests per second.
    pub pace: AtomicU64,
    /// Scopes (account, region) to collect, and those finished, when there are several.
    pub scopes_total: AtomicU64,
    pub scopes_done: AtomicU64,
}

impl Progress {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn set(counter: &AtomicU64, n: u64) {
        counter.store(n, Ordering::Relaxed);
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
    async fn slots_are_spaced_at_the_rate() {
        let control = RateController::new(Some(10.0));
        let start = Instant::now();
        for _ in 0..5 {
            control.acquire().await;
        }
        // Slots at 0, 100, 200, 300, 400 ms.
        assert_eq!(start.elapsed(), Duration::from_millis(400));
    }

    #[tokio::test(start_paused = true)]
    async fn grows_only_while_the_rate_is_the_limit() {
        let control = RateController::new(None);
        // One call at a time, far apart: demand is the limit, nothing is learnt.
        for _ in 0..10 {
            let sent = control.acquire().await;
            tokio::time::sleep(Duration::from_secs(1)).await;
            control.answered(sent);
        }
        assert_eq!(control.rate(), START_RATE);
        // Back to back: each call waits for its slot, and slow start adds to the rate.
        for _ in 0..10 {
            let sent = control.acquire().await;
            control.answered(sent);
        }
        assert!(control.rate() > START_RATE + 20.0, "{}", control.rate());
    }

    #[tokio::test(start_paused = true)]
    async fn a_round_of_throttles_cuts_once_and_the_ceiling_holds() {
        let control = RateController::new(Some(30.0));
        assert_eq!(control.rate(), 30.0, "--max-tps is where the pace starts");
        let mut sent = Vec::new();
        for _ in 0..20 {
            let at = control.acquire().await;
            control.answered(at);
            sent.push(at);
        }
        assert_eq!(control.rate(), 30.0, "and never passes it");
        // Every call of the round is throttled; only the first throttle cuts.
        for at in &sent {
            control.throttled(*at);
        }
        assert_eq!(control.rate(), 30.0 * DECREASE);
        // A call sent after the cut and throttled cuts again.
        let at = control.acquire().await;
        control.throttled(at);
        assert_eq!(control.rate(), 30.0 * DECREASE * DECREASE);
        assert!(control.window(4) <= 4);
    }

    /// A closed loop against a token bucket written here (not the simulator's), in virtual
    /// time: the served rate must reach the bucket's rate, and follow it when it halves.
    #[tokio::test(start_paused = true)]
    async fn converges_to_a_token_bucket_and_follows_it_down() {
        use std::sync::Arc;
        struct Bucket {
            rate: f64,
            tokens: f64,
            last: Instant,
            served: u64,
        }
        let bucket = Arc::new(Mutex::new(Bucket {
            rate: 400.0,
            tokens: 400.0,
            last: Instant::now(),
            served: 0,
        }));
        let control = Arc::new(RateController::new(None));
        let latency = Duration::from_millis(150);
        let start = Instant::now();
        let deadline = start + Duration::from_secs(20);
        let mut tasks = Vec::new();
        for _ in 0..256 {
            let (bucket, control) = (bucket.clone(), control.clone());
            tasks.push(tokio::spawn(async move {
                while Instant::now() < deadline {
                    let sent = control.acquire().await;
                    let ok = {
                        let mut b = bucket.lock().unwrap_or_else(|e| e.into_inner());
                        let now = Instant::now();
                        b.tokens = (b.tokens + (now - b.last).as_secs_f64() * b.rate).min(b.rate);
                        b.last = now;
                        let ok = b.tokens >= 1.0;
                        if ok {
                            b.tokens -= 1.0;
                            b.served += 1;
                        }
                        ok
                    };
                    tokio::time::sleep(latency).await;
                    if ok {
                        control.answered(sent)
                    } else {
                        control.throttled(sent)
                    }
                }
            }));
        }
        let served_between = |from: u64, to: u64| {
            let b0 = bucket.clone();
            async move {
                tokio::time::sleep_until(start + Duration::from_secs(from)).await;
                let a = b0.lock().unwrap_or_else(|e| e.into_inner()).served;
                tokio::time::sleep_until(start + Duration::from_secs(to)).await;
                let b = b0.lock().unwrap_or_else(|e| e.into_inner()).served;
                (b - a) as f64 / (to - from) as f64
            }
        };
        let first = served_between(3, 10).await;
        bucket.lock().unwrap_or_else(|e| e.into_inner()).rate = 200.0;
        let second = served_between(12, 20).await;
        for t in tasks {
            let _ = t.await;
        }
        eprintln!("served {first}/s of 400, then {second}/s of 200");
        assert!(first > 0.97 * 400.0, "served {first}/s of 400");
        assert!(
            second > 0.97 * 200.0,
            "served {second}/s of 200 after halving"
        );
    }
}
