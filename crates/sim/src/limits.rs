//! Load shaping: a token bucket per API, seeded fault injection, and per-operation counters.

use crate::SimConfig;
use crate::hash::{combine, unit};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// A token bucket: holds up to `burst` tokens, refills at `rate` per second, starts full.
#[derive(Debug)]
pub struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    pub fn new(rate: f64, now: Instant) -> Bucket {
        let burst = rate.max(1.0);
        Bucket {
            rate,
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// Refills at `rate` from `now` on; a limit cut to half keeps at most half the burst.
    pub fn set_rate(&mut self, rate: f64, now: Instant) {
        if rate != self.rate {
            self.refill(now);
            self.rate = rate;
            self.burst = rate.max(1.0);
            self.tokens = self.tokens.min(self.burst);
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.last = now;
    }

    /// Takes a token if one is there.
    pub fn try_take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Counters of one operation.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct OperationStats {
    pub operation: String,
    pub requests: u64,
    pub throttled: u64,
    pub faults: u64,
    pub errors: u64,
}

/// What the load shapers decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Serve,
    Throttle,
    Fault { nth: u64 },
}

/// Token-bucket rates, requests per second per operation; `None` is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize)]
pub struct Rates {
    pub ssm_tps: Option<f64>,
    pub ec2_tps: Option<f64>,
}

pub struct Limits {
    seed: u64,
    rates: Mutex<Rates>,
    fault_rate: f64,
    requests: AtomicU64,
    buckets: Mutex<BTreeMap<String, Bucket>>,
    stats: Mutex<BTreeMap<String, OperationStats>>,
}

impl Limits {
    pub fn new(config: &SimConfig) -> Limits {
        Limits {
            seed: config.seed,
            rates: Mutex::new(Rates {
                ssm_tps: config.ssm_tps,
                ec2_tps: config.ec2_tps,
            }),
            fault_rate: config.fault_rate,
            requests: AtomicU64::new(0),
            buckets: Mutex::new(BTreeMap::new()),
            stats: Mutex::new(BTreeMap::new()),
        }
    }

    /// Decides the fate of one request to `operation` (`ssm:DescribeInstancePatches`, ...).
    pub fn admit(&self, operation: &str) -> Verdict {
        let nth = self.requests.fetch_add(1, Ordering::Relaxed);
        let rates = self.rates();
        let rate = if operation.starts_with("ssm:") {
            rates.ssm_tps
        } else if operation.starts_with("ec2:") {
            rates.ec2_tps
        } else {
            None
        };
        let verdict = if self.fault_rate > 0.0
            && unit(combine(self.seed, &[0xfa17, nth])) < self.fault_rate
        {
            Verdict::Fault { nth }
        } else if let Some(rate) = rate {
            let now = Instant::now();
            let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
            let bucket = buckets
                .entry(operation.to_string())
                .or_insert_with(|| Bucket::new(rate, now));
            bucket.set_rate(rate, now);
            if bucket.try_take(now) {
                Verdict::Serve
            } else {
                Verdict::Throttle
            }
        } else {
            Verdict::Serve
        };
        let mut stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        let entry = stats
            .entry(operation.to_string())
            .or_insert_with(|| OperationStats {
                operation: operation.to_string(),
                ..Default::default()
            });
        entry.requests += 1;
        match verdict {
            Verdict::Throttle => entry.throttled += 1,
            Verdict::Fault { .. } => entry.faults += 1,
            Verdict::Serve => {}
        }
        verdict
    }

    pub fn rates(&self) -> Rates {
        *self.rates.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes the rates while serving, as when AWS lowers an account's limits mid-run; each
    /// bucket keeps the tokens it has (up to its new burst).
    pub fn set_rates(&self, rates: Rates) {
        *self.rates.lock().unwrap_or_else(|e| e.into_inner()) = rates;
    }

    /// Counts an answered request that was an error (validation, unknown instance, ...).
    pub fn count_error(&self, operation: &str) {
        let mut stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = stats.get_mut(operation) {
            entry.errors += 1;
        }
    }

    pub fn stats(&self) -> Vec<OperationStats> {
        self.stats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bucket_arithmetic() {
        let t0 = Instant::now();
        let mut b = Bucket::new(10.0, t0);
        // A full bucket of 10, then nothing until time passes.
        assert_eq!((0..15).filter(|_| b.try_take(t0)).count(), 10);
        // Half a second refills five tokens.
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!((0..15).filter(|_| b.try_take(t1)).count(), 5);
        // Halved to 5 a second: a second refills five.
        b.set_rate(5.0, t1);
        let t2 = t1 + Duration::from_secs(1);
        assert_eq!((0..15).filter(|_| b.try_take(t2)).count(), 5);
    }

    #[test]
    fn faults_follow_the_seeded_rate() {
        let config = SimConfig {
            fault_rate: 0.2,
            ..SimConfig::default()
        };
        let limits = Limits::new(&config);
        let faults = (0..10_000)
            .filter(|_| matches!(limits.admit("ssm:X"), Verdict::Fault { .. }))
            .count();
        assert!(
            (1_700..2_300).contains(&faults),
            "{faults} faults in 10000 at 20 %"
        );
    }
}
