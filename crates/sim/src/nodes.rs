//! `ssm:DescribeInstanceInformation`: the managed nodes and their agents' health.
//!
//! Shapes from the SSM API reference and the botocore model (see `shared/reference/aws-wire.md`):
//! `Filters` (`InstanceIds`, `PingStatus`, `PlatformTypes`, `ResourceType`, `AgentVersion`,
//! `tag-key`, `tag:<key>`, ...) or the legacy `InstanceInformationFilterList` (`key`/`valueSet`),
//! never both; `MaxResults` 5–50, 10 by default; stopped and terminated nodes are not returned;
//! an agent that stopped reporting is `ConnectionLost` with its last ping kept. Hybrid nodes
//! (`mi-`, `ResourceType` `ManagedInstance`, `SourceType` `AWS::SSM::ManagedInstance`, with an
//! `ActivationId`) follow the EC2 instances in the list, as in the API reference's examples.
//! A `ResourceType` filter takes exactly one of `EC2Instance` / `ManagedInstance`: the service's
//! errors for more values or others are quoted in boto/boto3#3027 and aws/aws-sdk#130.

use crate::Sim;
use crate::fleet::{Ec2Instance, Fleet, Os, SsmProfile};
use crate::hash::{below, combine, of_str};
use crate::patches::last_scan;
use crate::ssm::{page_offset, page_size, validation};
use crate::wire::WireResponse;
use chrono::{Duration, NaiveDate};
use serde_json::{Map, Value, json};

const FILTER_KEYS: [&str; 10] = [
    "InstanceIds",
    "AgentVersion",
    "PingStatus",
    "PlatformTypes",
    "ActivationIds",
    "IamRole",
    "ResourceType",
    "AssociationStatus",
    "SourceIds",
    "SourceTypes",
];

/// The newest agent version; about a fifth of the fleet runs an older one.
const LATEST_AGENT: &str = "3.3.1142.0";

/// One node as `DescribeInstanceInformation` reports it.
struct Node<'a> {
    instance: &'a Ec2Instance,
    seed: u64,
    ping_status: &'static str,
    agent_version: &'static str,
}

impl Node<'_> {
    fn profile(&self) -> &SsmProfile {
        &self.instance.profile
    }

    fn resource_type(&self) -> &'static str {
        if self.instance.hybrid {
            "ManagedInstance"
        } else {
            "EC2Instance"
        }
    }

    fn source_type(&self) -> &'static str {
        if self.instance.hybrid {
            "AWS::SSM::ManagedInstance"
        } else {
            "AWS::EC2::Instance"
        }
    }

    fn activation_id(&self, seed: u64) -> Option<String> {
        self.instance.hybrid.then(|| {
            let h = combine(seed, &[0xac7, below(self.profile().id_hash, 3)]);
            format!(
                "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
                h >> 32,
                (h >> 16) & 0xffff,
                h & 0xfff,
                (h >> 4) & 0xfff,
                h & 0xffff_ffff_ffff
            )
        })
    }

    /// The value a filter key is matched against.
    fn values(&self, key: &str) -> Vec<String> {
        let i = self.instance;
        match key {
            "InstanceIds" | "SourceIds" => vec![i.instance_id.clone()],
            "AgentVersion" => vec![self.agent_version.to_string()],
            "PingStatus" => vec![self.ping_status.to_string()],
            "PlatformTypes" => vec![platform_type(self.profile().os).to_string()],
            "ResourceType" => vec![self.resource_type().into()],
            "SourceTypes" => vec![self.source_type().into()],
            "ActivationIds" => self.activation_id(self.seed).into_iter().collect(),
            "AssociationStatus" => vec!["Success".into()],
            "IamRole" => vec!["AmazonSSMRoleForInstancesQuickSetup".into()],
            "tag-key" => i.tags.iter().map(|(k, _)| k.clone()).collect(),
            key => match key.strip_prefix("tag:") {
                Some(tag) => i
                    .tags
                    .iter()
                    .filter(|(k, _)| k == tag)
                    .map(|(_, v)| v.clone())
                    .collect(),
                None => Vec::new(),
            },
        }
    }

    fn json(&self, seed: u64, date: NaiveDate) -> Value {
        let p = self.profile();
        let i = self.instance;
        let (name, version) = platform(p.os);
        let last_ping = match p.agent_lost_on {
            Some(lost) if lost <= date => last_scan(p, lost),
            _ => last_scan(p, date) + Duration::minutes(30),
        };
        let octets = combine(seed, &[p.id_hash, 0x1b]);
        let ip = format!(
            "10.0.{}.{}",
            below(octets, 250),
            1 + below(octets >> 8, 250)
        );
        let computer = match (i.hybrid, p.os.is_windows()) {
            (true, _) => i
                .tags
                .iter()
                .find(|(k, _)| k == "Name")
                .map(|(_, v)| format!("{v}.corp.example"))
                .unwrap_or_default(),
            (false, true) => format!("EC2AMAZ-{:07X}", below(p.id_hash, 0xFFF_FFFF)),
            (false, false) => format!("ip-{}.ec2.internal", ip.replace('.', "-")),
        };
        let ip = if i.hybrid {
            ip.replacen("10.0.", "192.168.", 1)
        } else {
            ip
        };
        let mut out = json!({
            "InstanceId": i.instance_id,
            "PingStatus": self.ping_status,
            "LastPingDateTime": last_ping.timestamp() as f64,
            "AgentVersion": self.agent_version,
            "IsLatestVersion": self.agent_version == LATEST_AGENT,
            "PlatformType": platform_type(p.os),
            "PlatformName": name,
            "PlatformVersion": version,
            "ResourceType": self.resource_type(),
            "IamRole": if i.hybrid { "SSMServiceRole" } else { "AmazonSSMRoleForInstancesQuickSetup" },
            "RegistrationDate": (i.launch_day.and_hms_opt(0, 5, 0).unwrap_or_default().and_utc().timestamp()) as f64,
            "ComputerName": computer,
            "IPAddress": ip,
            "AssociationStatus": "Success",
            "SourceId": i.instance_id,
            "SourceType": self.source_type(),
        });
        if let Some(activation) = self.activation_id(seed) {
            out["ActivationId"] = Value::String(activation);
        }
        out
    }
}

fn platform_type(os: Os) -> &'static str {
    if os.is_windows() { "Windows" } else { "Linux" }
}

/// `PlatformName` and `PlatformVersion` as the agent reports them.
fn platform(os: Os) -> (&'static str, &'static str) {
    match os {
        Os::WindowsServer2019 => ("Microsoft Windows Server 2019 Datacenter", "10.0.17763"),
        Os::WindowsServer2022 => ("Microsoft Windows Server 2022 Datacenter", "10.0.20348"),
        Os::AmazonLinux2 => ("Amazon Linux", "2"),
        Os::AmazonLinux2023 => ("Amazon Linux", "2023"),
        Os::Rhel9 => ("Red Hat Enterprise Linux", "9.4"),
        Os::Ubuntu2204 => ("Ubuntu", "22.04"),
    }
}

/// The node of `instance` on `date`, if SSM lists it: managed, existing, not stopped. A
/// hybrid node stays listed when its server is off: its agent is then `ConnectionLost`.
fn node(seed: u64, instance: &Ec2Instance, date: NaiveDate) -> Option<Node<'_>> {
    let p = &instance.profile;
    let listed = p.managed
        && Fleet::exists_on(instance, date)
        && instance.terminated_on.is_none_or(|t| date < t)
        && (instance.hybrid || !p.is_stopped(date));
    let lost = p.agent_lost_on.is_some_and(|d| d <= date) || p.is_stopped(date);
    listed.then(|| Node {
        instance,
        seed,
        ping_status: if lost { "ConnectionLost" } else { "Online" },
        agent_version: if below(combine(seed, &[p.id_hash, 0xa6e]), 5) == 0 {
            "3.2.2303.0"
        } else {
            LATEST_AGENT
        },
    })
}

/// Filters of either form, as (key, values).
fn parse_filters(body: &Map<String, Value>) -> Result<Vec<(String, Vec<String>)>, WireResponse> {
    let list = |member: &str, key: &str, values: &str| -> Vec<(String, Vec<String>)> {
        body.get(member)
            .and_then(Value::as_array)
            .map(|fs| {
                fs.iter()
                    .map(|f| {
                        let k = f.get(key).and_then(Value::as_str).unwrap_or_default();
                        let v = f
                            .get(values)
                            .and_then(Value::as_array)
                            .map(|vs| {
                                vs.iter()
                                    .filter_map(Value::as_str)
                                    .map(str::to_string)
                                    .collect()
                            })
                            .unwrap_or_default();
                        (k.to_string(), v)
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let modern = list("Filters", "Key", "Values");
    let legacy = list("InstanceInformationFilterList", "key", "valueSet");
    if !modern.is_empty() && !legacy.is_empty() {
        return Err(WireResponse::json_error(
            400,
            "InvalidInstanceInformationFilterValue",
            "Filters and InstanceInformationFilterList cannot be used together.",
        ));
    }
    let tag_keys_allowed = legacy.is_empty();
    for (key, values) in modern.iter().chain(&legacy) {
        let known = FILTER_KEYS.contains(&key.as_str())
            || (tag_keys_allowed && (key == "tag-key" || key.starts_with("tag:")));
        if !known {
            return Err(WireResponse::json_error(400, "InvalidFilterKey", ""));
        }
        if key == "ResourceType" {
            if values.len() > 1 {
                return Err(WireResponse::json_error(
                    400,
                    "InvalidInstanceInformationFilterValue",
                    "ResourceType filter may contain only one value.",
                ));
            }
            if values
                .iter()
                .any(|v| v != "EC2Instance" && v != "ManagedInstance")
            {
                return Err(WireResponse::json_error(
                    400,
                    "InvalidInstanceInformationFilterValue",
                    "ResourceType filter is invalid, valid values are EC2Instance, ManagedInstance",
                ));
            }
        }
        if values.is_empty() || values.len() > 100 {
            return Err(validation(format!(
                "Value at 'filters.member.values' failed to satisfy constraint: Member must have length between 1 and 100 (key {key})"
            )));
        }
    }
    Ok(if legacy.is_empty() { modern } else { legacy })
}

pub fn describe_instance_information(
    sim: &Sim,
    body: &Map<String, Value>,
    date: NaiveDate,
) -> WireResponse {
    page(sim, body, date).unwrap_or_else(|e| e)
}

fn page(
    sim: &Sim,
    body: &Map<String, Value>,
    date: NaiveDate,
) -> Result<WireResponse, WireResponse> {
    let filters = parse_filters(body)?;
    let page_size = page_size(body, (5, 50), 10)?;
    let filter_text = format!(
        "{}{}",
        body.get("Filters")
            .map(Value::to_string)
            .unwrap_or_default(),
        body.get("InstanceInformationFilterList")
            .map(Value::to_string)
            .unwrap_or_default()
    );
    let fingerprint = combine(of_str(&filter_text), &[0x1f0]);
    let offset = page_offset(sim, body, fingerprint)?;
    // The token holds the fleet index to go on from, so a whole walk reads the fleet once.
    let seed = sim.config.seed;
    let mut list = Vec::with_capacity(page_size);
    let mut next = None;
    // Asked by ids: only those ids' positions, in list order; otherwise the whole list.
    let positions: Box<dyn Iterator<Item = u64>> =
        match filters.iter().find(|(key, _)| key == "InstanceIds") {
            Some((_, ids)) => {
                let mut found: Vec<u64> = ids.iter().filter_map(|id| sim.position(id)).collect();
                found.sort_unstable();
                found.dedup();
                Box::new(found.into_iter().filter(move |p| *p >= offset as u64))
            }
            None => Box::new(offset as u64..sim.fleet.nodes_len()),
        };
    for index in positions {
        let instance = sim.fleet.node_at(index);
        let Some(n) = node(seed, &instance, date) else {
            continue;
        };
        if !filters
            .iter()
            .all(|(key, values)| n.values(key).iter().any(|v| values.contains(v)))
        {
            continue;
        }
        if list.len() == page_size {
            next = Some(index);
            break;
        }
        list.push(n.json(seed, date));
    }
    let mut out = json!({ "InstanceInformationList": list });
    if let Some(index) = next {
        out["NextToken"] = Value::String(sim.next_token(fingerprint, index));
    }
    Ok(WireResponse::json(out))
}
