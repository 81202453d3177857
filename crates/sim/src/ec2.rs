//! EC2 over the ec2 query protocol: `DescribeInstances` with filters and `nextToken` paging.
//!
//! Quirk kept from the real service: `platform` is `windows` in lowercase (the model says
//! `Windows`), so SDK enums see an unknown value and collectors must read `platformDetails`.

use crate::Sim;
use crate::fleet::{Ec2Instance, Fleet};
use crate::hash::{combine, of_str};
use crate::wire::{WireResponse, xml_escape};
use chrono::NaiveDate;
use std::collections::{BTreeMap, HashSet};
use std::fmt::Write;

pub const XMLNS: &str = "http://ec2.amazonaws.com/doc/2016-11-15/";

pub fn error(status: u16, code: &str, message: &str, request_id: &str) -> WireResponse {
    WireResponse::xml(
        status,
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{}</Code><Message>{}</Message></Error></Errors><RequestID>{}</RequestID></Response>",
            xml_escape(code),
            xml_escape(message),
            request_id
        ),
    )
}

/// A `Filter.N` of the request.
struct Filter {
    name: String,
    values: Vec<String>,
}

/// EC2 filter values accept `*` and `?` wildcards.
fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

const FILTER_NAMES: [&str; 6] = [
    "tag-key",
    "tag-value",
    "instance-state-name",
    "instance-id",
    "platform-details",
    "instance-type",
];

impl Filter {
    fn valid(&self) -> bool {
        FILTER_NAMES.contains(&self.name.as_str()) || self.name.starts_with("tag:")
    }

    fn admits(&self, i: &Ec2Instance, state: &str) -> bool {
        let any = |text: &str| self.values.iter().any(|v| glob(v, text));
        match self.name.as_str() {
            "tag-key" => i.tags.iter().any(|(k, _)| any(k)),
            "tag-value" => i.tags.iter().any(|(_, v)| any(v)),
            "instance-state-name" => any(state),
            "instance-id" => any(&i.instance_id),
            "platform-details" => any(i.profile.os.platform_details()),
            "instance-type" => any(i.instance_type),
            name => match name.strip_prefix("tag:") {
                Some(key) => i.tags.iter().any(|(k, v)| k == key && any(v)),
                None => false,
            },
        }
    }
}

struct Request {
    filters: Vec<Filter>,
    instance_ids: Vec<String>,
    max_results: Option<String>,
    next_token: Option<String>,
}

fn parse(params: &BTreeMap<String, String>) -> Request {
    let mut filters: BTreeMap<u32, Filter> = BTreeMap::new();
    let mut instance_ids = Vec::new();
    for (k, v) in params {
        let parts: Vec<&str> = k.split('.').collect();
        match parts.as_slice() {
            ["Filter", n, "Name"] => {
                if let Ok(n) = n.parse() {
                    filters
                        .entry(n)
                        .or_insert_with(|| Filter {
                            name: String::new(),
                            values: Vec::new(),
                        })
                        .name = v.clone();
                }
            }
            ["Filter", n, "Value", _] => {
                if let Ok(n) = n.parse() {
                    filters
                        .entry(n)
                        .or_insert_with(|| Filter {
                            name: String::new(),
                            values: Vec::new(),
                        })
                        .values
                        .push(v.clone());
                }
            }
            ["InstanceId", _] => instance_ids.push(v.clone()),
            _ => {}
        }
    }
    Request {
        filters: filters.into_values().collect(),
        instance_ids,
        max_results: params.get("MaxResults").cloned(),
        next_token: params.get("NextToken").cloned().filter(|t| !t.is_empty()),
    }
}

/// EC2 `instanceState` (code, name) on `date`, codes as in the EC2 API reference's
/// `InstanceState`: pending on its launch day, shutting-down on the day it is terminated,
/// terminated the day after (still listed), stopped or running otherwise.
fn state_of(i: &Ec2Instance, date: NaiveDate) -> (u32, &'static str) {
    if let Some(t) = i.terminated_on {
        if date == t {
            return (32, "shutting-down");
        }
        if date > t {
            return (48, "terminated");
        }
    }
    if date == i.launch_day {
        (0, "pending")
    } else if i.profile.is_stopped(date) {
        (80, "stopped")
    } else {
        (16, "running")
    }
}

fn instance_xml(
    out: &mut String,
    i: &Ec2Instance,
    date: NaiveDate,
    region: &str,
    model_enums: bool,
    account: &str,
) {
    let (code, state) = state_of(i, date);
    let _ = write!(
        out,
        "<item><reservationId>{}</reservationId><ownerId>{account}</ownerId><groupSet/><instancesSet><item>\
<instanceId>{}</instanceId><imageId>{}</imageId><instanceState><code>{code}</code><name>{state}</name></instanceState>\
<privateDnsName>ip-10-0-{}-{}.{region}.compute.internal</privateDnsName><instanceType>{}</instanceType>\
<launchTime>{}T00:00:00.000Z</launchTime><placement><availabilityZone>{region}a</availabilityZone><tenancy>default</tenancy></placement>",
        i.reservation_id,
        i.instance_id,
        i.image_id,
        i.index / 250 % 256,
        i.index % 250 + 4,
        i.instance_type,
        i.launch_day.format("%Y-%m-%d"),
    );
    if i.profile.os.is_windows() {
        out.push_str(if model_enums {
            "<platform>Windows</platform>"
        } else {
            "<platform>windows</platform>"
        });
    }
    let _ = write!(
        out,
        "<architecture>x86_64</architecture><platformDetails>{}</platformDetails><tagSet>",
        xml_escape(i.profile.os.platform_details())
    );
    for (k, v) in &i.tags {
        let _ = write!(
            out,
            "<item><key>{}</key><value>{}</value></item>",
            xml_escape(k),
            xml_escape(v)
        );
    }
    out.push_str("</tagSet></item></instancesSet></item>");
}

pub fn describe_instances(
    sim: &Sim,
    params: &BTreeMap<String, String>,
    date: NaiveDate,
    request_id: &str,
) -> WireResponse {
    let req = parse(params);
    let fail = |code: &str, message: String| error(400, code, &message, request_id);
    if let Some(bad) = req.filters.iter().find(|f| !f.valid()) {
        return fail(
            "InvalidParameterValue",
            format!("The filter '{}' is invalid", bad.name),
        );
    }
    let max_results = match &req.max_results {
        None => None,
        Some(text) => match text.parse::<i64>() {
            Ok(n) if n < 5 => {
                return fail(
                    "InvalidParameterValue",
                    format!(
                        "Value ( {n} ) for parameter maxResults is invalid. Expecting a value greater than 5."
                    ),
                );
            }
            Ok(n) if n > 1000 => {
                return fail(
                    "InvalidParameterValue",
                    format!(
                        "Value ( {n} ) for parameter maxResults is invalid. Expecting a value less than or equal to 1000."
                    ),
                );
            }
            Ok(n) => Some(n as usize),
            Err(_) => {
                return fail(
                    "InvalidParameterValue",
                    format!("Value ( {text} ) for parameter maxResults is invalid."),
                );
            }
        },
    };
    if max_results.is_some() && !req.instance_ids.is_empty() {
        return fail(
            "InvalidParameterCombination",
            "The parameter instancesSet cannot be used with the parameter maxResults".into(),
        );
    }
    let fleet: &Fleet = &sim.fleet;
    let wanted: HashSet<&str> = req.instance_ids.iter().map(String::as_str).collect();
    if let Some(bad) = wanted
        .iter()
        .find(|id| !id.starts_with("i-") || id.len() < 10)
    {
        return fail(
            "InvalidInstanceID.Malformed",
            format!("Invalid id: \"{bad}\""),
        );
    }
    let mut fingerprint_text = String::new();
    for f in &req.filters {
        let _ = write!(fingerprint_text, "{}={};", f.name, f.values.join(","));
    }
    let fingerprint = combine(of_str(&fingerprint_text), &[0xec2]);
    let mut index = match &req.next_token {
        None => 0,
        Some(t) => match sim.token_offset(t, fingerprint) {
            Some(o) => o,
            None => {
                return fail(
                    "InvalidPaginationToken",
                    format!("Invalid token: {t}. The token is not valid or has expired."),
                );
            }
        },
    };
    let page_size = max_results.unwrap_or(1000);
    let mut body = String::with_capacity(page_size.min(1000) * 900);
    let mut found = 0usize;
    let mut seen_ids = HashSet::new();
    while index < fleet.size && found < page_size {
        let i = fleet.instance(index);
        index += 1;
        if !Fleet::exists_on(&i, date) {
            continue;
        }
        if !wanted.is_empty() && !wanted.contains(i.instance_id.as_str()) {
            continue;
        }
        let (_, state) = state_of(&i, date);
        if req.filters.iter().all(|f| f.admits(&i, state)) {
            instance_xml(
                &mut body,
                &i,
                date,
                &sim.config.region,
                sim.config.model_enums,
                &sim.config.account_id,
            );
            seen_ids.insert(i.instance_id.clone());
            found += 1;
        }
    }
    if !wanted.is_empty() {
        let mut missing: Vec<&str> = wanted
            .iter()
            .filter(|id| !seen_ids.contains(**id))
            .copied()
            .collect();
        if !missing.is_empty() {
            missing.sort_unstable();
            return fail(
                "InvalidInstanceID.NotFound",
                format!("The instance IDs '{}' do not exist", missing.join(", ")),
            );
        }
    }
    let more = wanted.is_empty() && index < fleet.size;
    let token = if more {
        format!(
            "<nextToken>{}</nextToken>",
            sim.next_token(fingerprint, index)
        )
    } else {
        String::new()
    };
    WireResponse::xml(
        200,
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<DescribeInstancesResponse xmlns=\"{XMLNS}\"><requestId>{request_id}</requestId><reservationSet>{body}</reservationSet>{token}</DescribeInstancesResponse>"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::{glob, state_of};
    use crate::fleet::{Fleet, day};
    use chrono::Duration;

    #[test]
    fn instances_go_through_ec2_lifecycle_states() {
        let f = Fleet {
            seed: 7,
            size: 3000,
            hybrid: 0,
            unmanaged_rate: 0.0,
            untagged_rate: 0.0,
        };
        let terminated = (0..f.size)
            .map(|i| f.instance(i))
            .find(|i| i.terminated_on.is_some_and(|t| t > day(2026, 1, 1)))
            .expect("an instance terminated in 2026");
        let t = terminated.terminated_on.expect("terminated");
        let listed = |d| Fleet::exists_on(&terminated, d).then(|| state_of(&terminated, d));
        assert!(matches!(
            listed(t - Duration::days(1)),
            Some((_, "running" | "stopped" | "pending"))
        ));
        assert_eq!(listed(t), Some((32, "shutting-down")));
        assert_eq!(listed(t + Duration::days(1)), Some((48, "terminated")));
        assert_eq!(listed(t + Duration::days(2)), None, "gone from EC2");
        let launched = (0..f.size)
            .map(|i| f.instance(i))
            .find(|i| i.launch_day > day(2025, 6, 1) && i.terminated_on.is_none())
            .expect("a recent launch");
        assert_eq!(state_of(&launched, launched.launch_day), (0, "pending"));
        assert!(!Fleet::exists_on(
            &launched,
            launched.launch_day - Duration::days(1)
        ));
    }

    #[test]
    fn ec2_wildcards() {
        assert!(glob("CheckPatch", "CheckPatch"));
        assert!(glob("Check*", "CheckPatch"));
        assert!(glob("*Patch", "CheckPatch"));
        assert!(glob("Ch?ckPatch", "CheckPatch"));
        assert!(!glob("check*", "CheckPatch"));
        assert!(glob("*", ""));
        assert!(!glob("a", ""));
    }
}
