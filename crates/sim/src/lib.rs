//! A loopback simulator of the EC2, SSM and STS wire protocols, with a seeded, evolving fleet.
//!
//! No public emulator implements the SSM patch APIs, yet every test, the demo and the benchmarks
//! need a fleet to collect from. The simulator answers the calls a patch collector makes
//! (`ec2:DescribeInstances`, `ssm:DescribeInstancePatches`, `ssm:DescribeInstancePatchStates`,
//! `ssm:DescribeInstanceInformation`, `sts:GetCallerIdentity`, and for organizations
//! `sts:AssumeRole`, `organizations:ListAccounts`, `ec2:DescribeRegions`) on one HTTP endpoint, byte-compatible with what the official SDKs
//! parse, including the real service's quirks. Its fleet is a pure function of a seed and a
//! simulated date, so answers are reproducible; load shaping (rate limits, latency, faults) makes
//! it a test bench for collectors.

mod available;
mod ec2;
mod fleet;
mod hash;
mod limits;
mod nodes;
mod org;
mod patches;
mod server;
mod ssm;
mod sts;
mod wire;

pub use fleet::{Ec2Instance, Fleet, Os, SsmProfile};
pub use limits::{OperationStats, Rates};
pub use org::{Caller, Directory, Member, Org};
pub use patches::{InstancePatch, PatchState, instance_patches};
pub use server::{RunningSim, start};
pub use wire::WireResponse;

use chrono::NaiveDate;
use std::sync::Mutex;
use std::time::Duration;

/// Everything that shapes a simulator; the same config and date always give the same answers.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub seed: u64,
    /// Size of the EC2 fleet (instances are generated on demand).
    pub instances: u64,
    /// Hybrid (`mi-`) nodes registered with SSM besides the EC2 fleet.
    pub hybrid: u64,
    /// The simulated date: patch states are those of each instance's last scan on or before it.
    pub date: NaiveDate,
    pub account_id: String,
    pub region: String,
    /// Token-bucket rate per SSM API, requests per second.
    pub ssm_tps: Option<f64>,
    /// Token-bucket rate for DescribeInstances, requests per second.
    pub ec2_tps: Option<f64>,
    /// Added to every answer.
    pub latency: Duration,
    /// Share of requests answered with a 500/503 fault.
    pub fault_rate: f64,
    /// Speak the API model instead of the real wire (`INSTALLED`, `Windows`): for testing
    /// clients that must accept both.
    pub model_enums: bool,
    pub unmanaged_rate: f64,
    pub untagged_rate: f64,
    /// IAM actions (`ssm:DescribeInstancePatchStates`) answered with the service's access-denied
    /// error, as for an identity whose policy lacks them.
    pub deny_actions: Vec<String>,
    /// How long a `NextToken` stays valid; older ones get the service's invalid-token error.
    /// AWS documents no lifetime for these APIs' tokens (many services say 24 hours), so
    /// `None` (never) by default, and tokens stay byte-identical across runs.
    pub token_ttl: Option<Duration>,
    /// Accounts of the organization, the management account (`account_id`) included; the
    /// others' ids derive from the seed, and one more, suspended, account is listed.
    pub accounts: u64,
    /// Regions of every account with a fleet of their own (what `DescribeRegions` lists); empty: one region
    /// (`region`), answering requests signed for any region.
    pub regions: Vec<String>,
    /// Accounts into which `sts:AssumeRole` is refused (`AccessDenied`).
    pub deny_assume: Vec<String>,
    /// (account, region) scopes where every EC2 and SSM call is refused, as a service control
    /// policy that denies a region refuses them (`... with an explicit deny in a service control
    /// policy`): the role is assumed, the scope is listed, its collection fails.
    pub deny_scopes: Vec<(String, String)>,
    /// (account, region) scopes where every EC2 and SSM call is refused for want of an
    /// identity-based policy (`... because no identity-based policy allows ...`): a member role
    /// missing a permission there, which a person must fix.
    pub fail_scopes: Vec<(String, String)>,
    /// The partition of every ARN the simulator hands out and accepts (`aws`, `aws-cn`,
    /// `aws-us-gov`): `sts:AssumeRole` refuses a role ARN of another partition, as STS does.
    pub partition: String,
    /// Rates of the real shapes whose frequency is unknown (changeable while serving,
    /// `PUT /_sim/shapes`).
    pub shapes: Shapes,
}

/// Rates of the real answer shapes that no public capture shows the frequency of, so that the
/// simulator sends them only when asked (`ssm` module, `summary_shape`). The shapes whose
/// platform and rate are known are always sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Shapes {
    /// Share of managed nodes whose `DescribeInstancePatchStates` entry carries no count member
    /// at all (the model makes every count optional). 0 by default.
    #[serde(default)]
    pub absent_counts_rate: f64,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 1,
            instances: 200,
            hybrid: 0,
            date: NaiveDate::from_ymd_opt(2026, 11, 2).unwrap_or(NaiveDate::MIN),
            account_id: "123456789012".into(),
            region: "us-east-1".into(),
            ssm_tps: None,
            ec2_tps: None,
            latency: Duration::ZERO,
            fault_rate: 0.0,
            model_enums: false,
            unmanaged_rate: 0.03,
            untagged_rate: 0.15,
            deny_actions: Vec::new(),
            token_ttl: None,
            accounts: 1,
            regions: Vec::new(),
            deny_assume: Vec::new(),
            deny_scopes: Vec::new(),
            fail_scopes: Vec::new(),
            partition: "aws".into(),
            shapes: Shapes::default(),
        }
    }
}

/// The simulator's state: its config, its fleet, the simulated date and the load shapers.
pub struct Sim {
    pub config: SimConfig,
    pub fleet: Fleet,
    date: Mutex<NaiveDate>,
    shapes: Mutex<Shapes>,
    limits: limits::Limits,
    /// SSM node-list position of every id, built on the first lookup by id.
    positions: std::sync::OnceLock<std::collections::HashMap<String, u64>>,
    /// The clock `NextToken` stamps are read on.
    started: std::time::Instant,
    /// The organization this scope belongs to: accounts, regions, assumed-role sessions.
    pub directory: std::sync::Arc<Directory>,
}

impl Sim {
    /// The simulator of one scope, alone in an organization of its own.
    pub fn new(config: SimConfig) -> Sim {
        let directory = std::sync::Arc::new(Directory::new(&config));
        Sim::in_directory(config, directory)
    }

    /// The simulator of one scope (`config.account_id`, `config.region`) of an organization.
    pub fn in_directory(config: SimConfig, directory: std::sync::Arc<Directory>) -> Sim {
        let fleet = Fleet {
            seed: config.seed,
            size: config.instances,
            hybrid: config.hybrid,
            unmanaged_rate: config.unmanaged_rate,
            untagged_rate: config.untagged_rate,
        };
        Sim {
            date: Mutex::new(config.date),
            shapes: Mutex::new(config.shapes),
            limits: limits::Limits::new(&config),
            positions: std::sync::OnceLock::new(),
            started: std::time::Instant::now(),
            directory,
            fleet,
            config,
        }
    }

    pub fn date(&self) -> NaiveDate {
        *self.date.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set_date(&self, date: NaiveDate) {
        *self.date.lock().unwrap_or_else(|e| e.into_inner()) = date;
    }

    /// The shape rates now in force.
    pub fn shapes(&self) -> Shapes {
        *self.shapes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes the shape rates while serving (`PUT /_sim/shapes`).
    pub fn set_shapes(&self, shapes: Shapes) {
        *self.shapes.lock().unwrap_or_else(|e| e.into_inner()) = shapes;
    }

    /// What SSM knows of `instance_id` (any well-formed id, simulated or not).
    pub fn profile(&self, instance_id: &str) -> SsmProfile {
        SsmProfile::of(self.config.seed, instance_id, self.config.unmanaged_rate)
    }

    /// The `NextToken` of a page that ends at `offset` of the request with `fingerprint`:
    /// stamped with its issue time when tokens expire.
    pub fn next_token(&self, fingerprint: u64, offset: u64) -> String {
        match self.config.token_ttl {
            None => wire::PageToken::encode(fingerprint, offset),
            Some(_) => wire::PageToken::encode_stamped(
                fingerprint,
                offset,
                self.started.elapsed().as_millis() as u64,
            ),
        }
    }

    /// Where a `NextToken` continues; `None` when it is not this request's, or has expired.
    pub fn token_offset(&self, token: &str, fingerprint: u64) -> Option<u64> {
        let (offset, stamp) = wire::PageToken::decode(token, fingerprint)?;
        let now = self.started.elapsed().as_millis() as u64;
        match (self.config.token_ttl, stamp) {
            (Some(ttl), Some(issued)) if now.saturating_sub(issued) > ttl.as_millis() as u64 => {
                None
            }
            _ => Some(offset),
        }
    }

    /// Where `instance_id` stands in SSM's node list, if the fleet has it.
    pub fn position(&self, instance_id: &str) -> Option<u64> {
        let positions = self.positions.get_or_init(|| {
            (0..self.fleet.nodes_len())
                .map(|p| (self.fleet.node_at(p).instance_id, p))
                .collect()
        });
        positions.get(instance_id).copied()
    }

    /// The API rates now in force.
    pub fn rates(&self) -> Rates {
        self.limits.rates()
    }

    /// Changes the API rates while serving (`PUT /_sim/limits`).
    pub fn set_rates(&self, rates: Rates) {
        self.limits.set_rates(rates)
    }

    /// Requests, throttles and faults per operation so far.
    pub fn stats(&self) -> Vec<OperationStats> {
        self.limits.stats()
    }
}
