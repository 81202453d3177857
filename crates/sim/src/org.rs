//! An organization: the management account and its members, the regions enabled for them, and
//! one simulated fleet per (account, region) scope, each with API rates of its own (AWS's limits
//! are per account and region).
//!
//! Who calls is read from the SigV4 credential: an access key handed out by `sts:AssumeRole`
//! names the member account it was issued for, any other key is the management account's. The
//! region is the credential scope's. Wire shapes, from AWS's published models and examples:
//! Organizations `ListAccounts` (awsJson 1.1, botocore `organizations/2016-11-28`: `MaxResults`
//! 1–20, `Status` and, since 2025, `State`; the model's `ListAccounts` example), STS `AssumeRole`
//! (awsQuery, the model's `AssumeRole` example), EC2 `DescribeRegions` (`regionInfo` items with
//! `optInStatus`; the EC2 model).

use crate::hash::{combine, of_str};
use crate::wire::{WireResponse, xml_escape};
use crate::{Rates, Sim, SimConfig, ec2, sts};
use chrono::{NaiveDate, Utc};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

/// One account of the organization as `ListAccounts` shows it.
#[derive(Debug, Clone)]
pub struct Member {
    pub id: String,
    pub name: String,
    /// `ACTIVE` or `SUSPENDED`.
    pub state: &'static str,
}

/// A session `sts:AssumeRole` opened: its credentials act in `account` as `role`.
#[derive(Debug, Clone)]
pub struct Session {
    pub account: String,
    pub role: String,
    pub name: String,
    pub partition: String,
}

impl Session {
    /// `AssumedRoleId`: the role's unique id and the session name.
    pub fn assumed_role_id(&self) -> String {
        format!("AROA{}:{}", alphanumeric(of_str(&self.role), 16), self.name)
    }
}

/// Who signed a request.
#[derive(Debug, Clone)]
pub enum Caller {
    /// Credentials the simulator did not issue: the management account's own.
    Management {
        account: String,
        partition: String,
    },
    Assumed(Session),
}

impl Caller {
    pub fn account(&self) -> &str {
        match self {
            Caller::Management { account, .. } => account,
            Caller::Assumed(s) => &s.account,
        }
    }

    /// The caller's ARN, as `GetCallerIdentity` and IAM's denial messages name it.
    pub fn arn(&self) -> String {
        match self {
            Caller::Management { account, partition } => {
                format!("arn:{partition}:iam::{account}:user/patchtrail-sim")
            }
            Caller::Assumed(s) => format!(
                "arn:{}:sts::{}:assumed-role/{}/{}",
                s.partition, s.account, s.role, s.name
            ),
        }
    }
}

/// Regions that are disabled until an account opts in (EC2 `optInStatus`); AWS's list as of 2025.
const OPT_IN_REGIONS: [&str; 15] = [
    "af-south-1",
    "ap-east-1",
    "ap-south-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-7",
    "ca-west-1",
    "eu-central-2",
    "eu-south-1",
    "eu-south-2",
    "il-central-1",
    "me-central-1",
    "me-south-1",
    "mx-central-1",
];

/// The organization's facts every scope answers from: accounts, enabled regions, sessions.
pub struct Directory {
    pub management: String,
    /// Every account `ListAccounts` shows, the management account first.
    pub members: Vec<Member>,
    /// Regions enabled for every account. Empty: one region, and a request signed for any
    /// region is answered by it (a simulator of one scope, as before organizations).
    pub regions: Vec<String>,
    deny_assume: Vec<String>,
    partition: String,
    sessions: Mutex<HashMap<String, Session>>,
}

impl Directory {
    pub fn new(config: &SimConfig) -> Directory {
        let mut members = vec![Member {
            id: config.account_id.clone(),
            name: "Management".into(),
            state: "ACTIVE",
        }];
        // Member ids derive from the seed; one more account is suspended (ListAccounts shows it,
        // AssumeRole into it is refused).
        let mut n = 0u64;
        while (members.len() as u64) < config.accounts.max(1) + 1 {
            n += 1;
            let id = format!(
                "{:012}",
                combine(config.seed, &[0xacc0, n]) % 1_000_000_000_000
            );
            if members.iter().any(|m| m.id == id) {
                continue;
            }
            let suspended = members.len() as u64 == config.accounts.max(1);
            members.push(Member {
                name: if suspended {
                    "closed-sandbox".into()
                } else {
                    format!("member-{:02}", members.len())
                },
                state: if suspended { "SUSPENDED" } else { "ACTIVE" },
                id,
            });
        }
        Directory {
            management: config.account_id.clone(),
            members,
            regions: config.regions.clone(),
            deny_assume: config.deny_assume.clone(),
            partition: config.partition.clone(),
            sessions: Mutex::new(HashMap::new()),
        }
    }

    /// Who signed with `access_key`.
    pub fn caller(&self, access_key: Option<&str>) -> Caller {
        let sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        match access_key.and_then(|k| sessions.get(k)) {
            Some(s) => Caller::Assumed(s.clone()),
            None => Caller::Management {
                account: self.management.clone(),
                partition: self.partition.clone(),
            },
        }
    }

    fn active(&self, account: &str) -> bool {
        self.members
            .iter()
            .any(|m| m.id == account && m.state == "ACTIVE")
    }

    /// The regions enabled for every account (the home region when none are configured).
    pub fn enabled_regions<'a>(&'a self, home: &'a str) -> Vec<&'a str> {
        if self.regions.is_empty() {
            vec![home]
        } else {
            self.regions.iter().map(String::as_str).collect()
        }
    }

    /// `sts:AssumeRole`: credentials for a role of an active member, unless refused.
    pub fn assume_role(
        &self,
        caller: &Caller,
        params: &BTreeMap<String, String>,
        request_id: &str,
    ) -> WireResponse {
        let role_arn = params
            .get("RoleArn")
            .map(String::as_str)
            .unwrap_or_default();
        let session = params
            .get("RoleSessionName")
            .map(String::as_str)
            .unwrap_or_default();
        let parsed = role_arn
            .strip_prefix(&format!("arn:{}:iam::", self.partition))
            .and_then(|rest| rest.split_once(":role/"))
            .filter(|(account, role)| {
                account.len() == 12
                    && account.bytes().all(|b| b.is_ascii_digit())
                    && !role.is_empty()
            });
        let session_ok = (2..=64).contains(&session.len())
            && session
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c));
        let Some((account, role_path)) = parsed.filter(|_| session_ok) else {
            return sts::error(
                400,
                "Sender",
                "ValidationError",
                &format!(
                    "1 validation error detected: RoleArn '{role_arn}' or RoleSessionName '{session}' failed to satisfy constraint"
                ),
                request_id,
            );
        };
        if !self.active(account) || self.deny_assume.iter().any(|d| d == account) {
            return sts::error(
                403,
                "Sender",
                "AccessDenied",
                &format!(
                    "User: {} is not authorized to perform: sts:AssumeRole on resource: {role_arn}",
                    caller.arn()
                ),
                request_id,
            );
        }
        let duration = params
            .get("DurationSeconds")
            .and_then(|d| d.parse::<i64>().ok())
            .unwrap_or(3600)
            .clamp(900, 43_200);
        let role = role_path
            .rsplit('/')
            .next()
            .unwrap_or(role_path)
            .to_string();
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let key_hash = combine(
            of_str(account),
            &[of_str(&role), of_str(session), sessions.len() as u64],
        );
        let access_key = format!("ASIA{}", alphanumeric(key_hash, 16));
        let secret = alphanumeric(key_hash ^ 0x5ec7, 40);
        let opened = Session {
            account: account.to_string(),
            role: role.clone(),
            name: session.to_string(),
            partition: self.partition.clone(),
        };
        let role_id = opened.assumed_role_id();
        sessions.insert(access_key.clone(), opened);
        drop(sessions);
        let expiration = (Utc::now() + chrono::Duration::seconds(duration))
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        WireResponse::xml(
            200,
            format!(
                "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><AssumeRoleResult>\
<Credentials><AccessKeyId>{access_key}</AccessKeyId><SecretAccessKey>{secret}</SecretAccessKey>\
<SessionToken>FwoGZXIvYXdzEPT{}</SessionToken><Expiration>{expiration}</Expiration></Credentials>\
<AssumedRoleUser><Arn>arn:{}:sts::{account}:assumed-role/{}/{}</Arn><AssumedRoleId>{}</AssumedRoleId></AssumedRoleUser>\
</AssumeRoleResult><ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata></AssumeRoleResponse>",
                alphanumeric(key_hash ^ 0x70c, 64),
                self.partition,
                xml_escape(&role),
                xml_escape(session),
                xml_escape(&role_id),
            ),
        )
    }

    /// Organizations `ListAccounts`, `MaxResults` (1–20, default 20) per page; only the
    /// management account may ask.
    pub fn list_accounts(&self, sim: &Sim, caller: &Caller, body: &[u8]) -> WireResponse {
        if caller.account() != self.management {
            return WireResponse::json_error(
                400,
                "AccessDeniedException",
                "You don't have permissions to access this resource.",
            );
        }
        let request: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        let page = match request.get("MaxResults").map(|m| m.as_u64()) {
            None => 20,
            Some(Some(m)) if (1..=20).contains(&m) => m,
            Some(_) => {
                return WireResponse::json_error(
                    400,
                    "InvalidInputException",
                    "You provided a value that does not match the required pattern: MaxResults must be between 1 and 20.",
                );
            }
        };
        let fingerprint = of_str("organizations:ListAccounts");
        let start = match request.get("NextToken").and_then(|t| t.as_str()) {
            None => 0,
            Some(token) => match sim.token_offset(token, fingerprint) {
                Some(offset) => offset,
                None => {
                    return WireResponse::json_error(
                        400,
                        "InvalidInputException",
                        "The provided NextToken is not valid.",
                    );
                }
            },
        };
        let end = (start + page).min(self.members.len() as u64);
        let org = format!(
            "o-{}",
            alphanumeric(of_str(&self.management), 10).to_lowercase()
        );
        let accounts: Vec<serde_json::Value> = self.members[start as usize..end as usize]
            .iter()
            .map(|m| {
                serde_json::json!({
                    "Id": m.id,
                    "Arn": format!("arn:{}:organizations::{}:account/{org}/{}", self.partition, self.management, m.id),
                    "Email": format!("aws+{}@example.com", m.id),
                    "Name": m.name,
                    "Status": m.state,
                    "State": m.state,
                    "JoinedMethod": if m.id == self.management { "INVITED" } else { "CREATED" },
                    "JoinedTimestamp": 1_700_000_000 + (of_str(&m.id) % 50_000_000),
                })
            })
            .collect();
        let mut out = serde_json::json!({ "Accounts": accounts });
        if end < self.members.len() as u64 {
            out["NextToken"] = sim.next_token(fingerprint, end).into();
        }
        WireResponse::json(out)
    }

    /// EC2 `DescribeRegions`: the enabled regions; with `AllRegions=true` also an opt-in region
    /// the accounts have not enabled. `RegionName.N` narrows the answer.
    pub fn describe_regions(
        &self,
        home: &str,
        params: &BTreeMap<String, String>,
        request_id: &str,
    ) -> WireResponse {
        let enabled = self.enabled_regions(home);
        let mut regions: Vec<(&str, &str)> = enabled
            .iter()
            .map(|r| {
                let status = if OPT_IN_REGIONS.contains(r) {
                    "opted-in"
                } else {
                    "opt-in-not-required"
                };
                (*r, status)
            })
            .collect();
        if params.get("AllRegions").is_some_and(|v| v == "true")
            && let Some(r) = OPT_IN_REGIONS.iter().find(|r| !enabled.contains(r))
        {
            regions.push((r, "not-opted-in"));
        }
        let named: Vec<&String> = params
            .iter()
            .filter(|(k, _)| k.starts_with("RegionName."))
            .map(|(_, v)| v)
            .collect();
        if let Some(unknown) = named
            .iter()
            .find(|n| !regions.iter().any(|(r, _)| *r == n.as_str()))
        {
            return ec2::error(
                400,
                "InvalidParameterValue",
                &format!("Invalid region: {unknown}"),
                request_id,
            );
        }
        let items: String = regions
            .iter()
            .filter(|(r, _)| named.is_empty() || named.iter().any(|n| n.as_str() == *r))
            .map(|(r, status)| {
                format!(
                    "<item><regionName>{r}</regionName><regionEndpoint>ec2.{r}.amazonaws.com</regionEndpoint><optInStatus>{status}</optInStatus></item>"
                )
            })
            .collect();
        WireResponse::xml(
            200,
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<DescribeRegionsResponse xmlns=\"{}\"><requestId>{request_id}</requestId><regionInfo>{items}</regionInfo></DescribeRegionsResponse>",
                ec2::XMLNS
            ),
        )
    }
}

/// `len` characters of [A-Z0-9] drawn from `h`.
fn alphanumeric(h: u64, len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    (0..len)
        .map(|i| ALPHABET[(combine(h, &[i as u64]) % 32) as usize] as char)
        .collect()
}

/// The organization being served: one [`Sim`] per scope, made when first asked.
pub struct Org {
    config: SimConfig,
    pub directory: Arc<Directory>,
    /// The management account in the first region: the simulator of one scope.
    pub home: Arc<Sim>,
    scopes: Mutex<BTreeMap<(String, String), Arc<Sim>>>,
}

impl Org {
    pub fn new(mut config: SimConfig) -> Org {
        if let Some(first) = config.regions.first()
            && !config.regions.contains(&config.region)
        {
            config.region = first.clone();
        }
        let directory = Arc::new(Directory::new(&config));
        let home = Arc::new(Sim::in_directory(config.clone(), directory.clone()));
        Org {
            config,
            directory,
            home,
            scopes: Mutex::new(BTreeMap::new()),
        }
    }

    /// The simulator of `(account, region)`; `None` when the region is an opt-in region the
    /// accounts have not enabled. The home scope keeps the configured seed (its answers are those
    /// of a one-scope simulator); every other scope's fleet derives from the seed, its account
    /// and its region. A region outside the configured ones that needs no opt-in is enabled, as
    /// in every AWS account, and holds no instances.
    pub fn scope(&self, account: &str, region: Option<&str>) -> Option<Arc<Sim>> {
        let mut empty = false;
        let region = match region {
            Some(r) if !self.directory.regions.is_empty() => {
                if !self.directory.regions.iter().any(|e| e == r) {
                    if OPT_IN_REGIONS.contains(&r) {
                        return None;
                    }
                    empty = true;
                }
                r
            }
            _ => self.config.region.as_str(),
        };
        if account == self.config.account_id && region == self.config.region {
            return Some(self.home.clone());
        }
        let mut scopes = self.scopes.lock().unwrap_or_else(|e| e.into_inner());
        let sim = scopes
            .entry((account.to_string(), region.to_string()))
            .or_insert_with(|| {
                let config = SimConfig {
                    seed: combine(self.config.seed, &[of_str(account), of_str(region)]),
                    account_id: account.to_string(),
                    region: region.to_string(),
                    instances: if empty { 0 } else { self.config.instances },
                    hybrid: if empty { 0 } else { self.config.hybrid },
                    ..self.config.clone()
                };
                let sim = Sim::in_directory(config, self.directory.clone());
                sim.set_date(self.home.date());
                sim.set_rates(self.home.rates());
                sim.set_shapes(self.home.shapes());
                Arc::new(sim)
            });
        Some(sim.clone())
    }

    fn each_scope(&self, mut f: impl FnMut(&Sim)) {
        f(&self.home);
        let scopes = self.scopes.lock().unwrap_or_else(|e| e.into_inner());
        scopes.values().for_each(|s| f(s));
    }

    pub fn date(&self) -> NaiveDate {
        self.home.date()
    }

    /// Moves every scope's fleet to `date`.
    pub fn set_date(&self, date: NaiveDate) {
        self.each_scope(|s| s.set_date(date));
    }

    pub fn rates(&self) -> Rates {
        self.home.rates()
    }

    pub fn shapes(&self) -> crate::Shapes {
        self.home.shapes()
    }

    /// Changes the shape rates of every scope.
    pub fn set_shapes(&self, shapes: crate::Shapes) {
        self.each_scope(|s| s.set_shapes(shapes));
    }

    /// Changes the API rates of every scope (each keeps its own buckets).
    pub fn set_rates(&self, rates: Rates) {
        self.each_scope(|s| s.set_rates(rates));
    }

    /// Requests, throttles and faults per operation of every scope that was asked something.
    pub fn scope_stats(&self) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        self.each_scope(|s| {
            out.push(serde_json::json!({
                "account_id": s.config.account_id,
                "region": s.config.region,
                "stats": s.stats(),
            }))
        });
        out
    }

    /// Requests, throttles and faults per operation, summed over the scopes.
    pub fn stats(&self) -> Vec<crate::OperationStats> {
        let mut sum: BTreeMap<String, crate::OperationStats> = BTreeMap::new();
        let mut all = Vec::new();
        self.each_scope(|s| all.extend(s.stats()));
        for s in all {
            let e = sum
                .entry(s.operation.clone())
                .or_insert_with(|| crate::OperationStats {
                    operation: s.operation.clone(),
                    ..Default::default()
                });
            e.requests += s.requests;
            e.throttled += s.throttled;
            e.faults += s.faults;
            e.errors += s.errors;
        }
        sum.into_values().collect()
    }
}
