//! SSM over awsJson1_1: `DescribeInstancePatches` and `DescribeInstancePatchStates`
//! (`DescribeInstanceInformation` is in `nodes`, `DescribeAvailablePatches` in `available`).
//!
//! Validation follows the real service, not only its model: `MaxResults` above 50 on
//! DescribeInstancePatches is a `ValidationException`, states are CamelCase, and timestamps are
//! epoch-second numbers (the Rust SDK rejects strings there).

use crate::Sim;
use crate::fleet::SsmProfile;
use crate::hash::{combine, of_str, unit};
use crate::patches::{InstancePatch, PatchState, instance_patches, last_scan};
use crate::wire::WireResponse;
use chrono::NaiveDate;
use serde_json::{Map, Value, json};

const FILTER_KEYS: [&str; 4] = ["Classification", "KBId", "Severity", "State"];

pub(crate) fn validation(message: String) -> WireResponse {
    WireResponse::json_error(
        400,
        "ValidationException",
        &format!("1 validation error detected: {message}"),
    )
}

pub(crate) fn range_error(field: &str, value: i64, min: i64, max: i64) -> Option<WireResponse> {
    if value < min {
        Some(validation(format!(
            "Value '{value}' at '{field}' failed to satisfy constraint: Member must have value greater than or equal to {min}"
        )))
    } else if value > max {
        Some(validation(format!(
            "Value '{value}' at '{field}' failed to satisfy constraint: Member must have value less than or equal to {max}"
        )))
    } else {
        None
    }
}

/// `^i-(\w{8}|\w{17})$|^mi-\w{17}$`
pub fn valid_instance_id(id: &str) -> bool {
    let word = |s: &str| s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    match (id.strip_prefix("i-"), id.strip_prefix("mi-")) {
        (Some(rest), _) => (rest.len() == 8 || rest.len() == 17) && word(rest),
        (_, Some(rest)) => rest.len() == 17 && word(rest),
        _ => false,
    }
}

fn invalid_id_message(id: &str) -> WireResponse {
    validation(format!(
        "Value '{id}' at 'instanceId' failed to satisfy constraint: Member must satisfy regular expression pattern: (^i-(\\w{{8}}|\\w{{17}})$)|(^mi-\\w{{17}}$)"
    ))
}

/// Reads an optional integer member.
pub(crate) fn optional_int(
    body: &Map<String, Value>,
    member: &str,
) -> Result<Option<i64>, WireResponse> {
    match body.get(member) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_i64().map(Some).ok_or_else(|| {
            WireResponse::json_error(
                400,
                "SerializationException",
                &format!("{member} must be an integer"),
            )
        }),
    }
}

/// `MaxResults`, checked against the operation's range `min..=max`; `default` when absent.
pub(crate) fn page_size(
    body: &Map<String, Value>,
    (min, max): (i64, i64),
    default: usize,
) -> Result<usize, WireResponse> {
    match optional_int(body, "MaxResults")? {
        Some(n) => match range_error("maxResults", n, min, max) {
            Some(e) => Err(e),
            None => Ok(n as usize),
        },
        None => Ok(default),
    }
}

/// The offset a `NextToken` continues from (0 without one), if it belongs to this request.
pub(crate) fn page_offset(
    sim: &Sim,
    body: &Map<String, Value>,
    fingerprint: u64,
) -> Result<usize, WireResponse> {
    match optional_str(body, "NextToken")? {
        None | Some("") => Ok(0),
        Some(t) => sim
            .token_offset(t, fingerprint)
            .map(|o| o as usize)
            .ok_or_else(|| {
                WireResponse::json_error(
                    400,
                    "InvalidNextToken",
                    "The specified token isn't valid.",
                )
            }),
    }
}

pub(crate) fn optional_str<'a>(
    body: &'a Map<String, Value>,
    member: &str,
) -> Result<Option<&'a str>, WireResponse> {
    match body.get(member) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(WireResponse::json_error(
            400,
            "SerializationException",
            &format!("{member} must be a string"),
        )),
    }
}

struct PatchFilter {
    key: String,
    values: Vec<String>,
}

impl PatchFilter {
    fn admits(&self, p: &InstancePatch) -> bool {
        let v = &self.values;
        match self.key.as_str() {
            "Classification" => v.iter().any(|x| x == p.classification()),
            "Severity" => v.iter().any(|x| x == p.severity()),
            "State" => v.iter().any(|x| p.state.matches(x)),
            "KBId" => {
                let kb = p.patch.kb_id();
                v.contains(&kb)
            }
            _ => false,
        }
    }
}

/// A `PatchOrchestratorFilter` list as the SSM model constrains it (at most 5 filters, keys of 1
/// to 128 characters, at most 20 values of 1 to 256): `(Key, Values)` pairs. Shared by
/// `DescribeInstancePatches` and `DescribeAvailablePatches`, which check their own keys.
pub(crate) fn orchestrator_filters(
    body: &Map<String, Value>,
) -> Result<Vec<(String, Vec<String>)>, WireResponse> {
    let list = match body.get("Filters") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(list)) => list,
        Some(_) => {
            return Err(WireResponse::json_error(
                400,
                "SerializationException",
                "Filters must be a list",
            ));
        }
    };
    if list.len() > 5 {
        return Err(validation(format!(
            "Value at 'filters' failed to satisfy constraint: Member must have length less than or equal to 5 (got {})",
            list.len()
        )));
    }
    let mut out = Vec::new();
    for (i, f) in list.iter().enumerate() {
        let key = f.get("Key").and_then(Value::as_str).unwrap_or_default();
        if key.is_empty() || key.len() > 128 {
            return Err(validation(format!(
                "Value '{key}' at 'filters.{}.member.key' failed to satisfy constraint: Member must have length between 1 and 128",
                i + 1
            )));
        }
        let values: Vec<String> = f
            .get("Values")
            .and_then(Value::as_array)
            .map(|vs| {
                vs.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        if values.len() > 20 {
            return Err(validation(format!(
                "Value at 'filters.{}.member.values' failed to satisfy constraint: Member must have length less than or equal to 20",
                i + 1
            )));
        }
        if values.iter().any(|v| v.is_empty() || v.len() > 256) {
            return Err(validation(format!(
                "Value at 'filters.{}.member.values' failed to satisfy constraint: Member must have length between 1 and 256",
                i + 1
            )));
        }
        out.push((key.to_string(), values));
    }
    Ok(out)
}

fn parse_filters(body: &Map<String, Value>) -> Result<Vec<PatchFilter>, WireResponse> {
    let mut filters = Vec::new();
    for (i, (key, values)) in orchestrator_filters(body)?.into_iter().enumerate() {
        if !FILTER_KEYS.contains(&key.as_str()) {
            return Err(WireResponse::json_error(
                400,
                "InvalidFilter",
                &format!(
                    "The filter key {key} is not valid. Valid keys are: Classification, KBId, Severity, State"
                ),
            ));
        }
        if values.is_empty() {
            return Err(validation(format!(
                "Value at 'filters.{}.member.values' failed to satisfy constraint: Member must have length between 1 and 256",
                i + 1
            )));
        }
        filters.push(PatchFilter { key, values });
    }
    Ok(filters)
}

fn epoch(t: chrono::DateTime<chrono::Utc>) -> f64 {
    t.timestamp() as f64
}

/// `InstalledTime` of a patch Windows has not installed: 0001-01-01T00:00:00Z in epoch seconds.
const NEVER_INSTALLED_WINDOWS: f64 = -62_135_596_800.0;

fn patch_json(p: &InstancePatch, model_spelling: bool) -> Value {
    let mut m = Map::new();
    m.insert("Title".into(), Value::String(p.title()));
    m.insert("KBId".into(), Value::String(p.patch.kb_id()));
    m.insert(
        "Classification".into(),
        Value::String(p.classification().into()),
    );
    m.insert("Severity".into(), Value::String(p.severity().into()));
    m.insert(
        "State".into(),
        Value::String(p.state.wire(model_spelling).into()),
    );
    // Not installed: 0 on Linux, 0001-01-01 on Windows, as observed on the wire (boto3#2069);
    // 0.0 on a Windows row without metadata (turbot/steampipe-mod-aws-compliance#759).
    let never = if p.patch.os.is_windows() && !p.blank {
        NEVER_INSTALLED_WINDOWS
    } else {
        0.0
    };
    m.insert(
        "InstalledTime".into(),
        json!(p.installed_at.map(epoch).unwrap_or(never)),
    );
    // Documented as reported for missing and failed patches only.
    if matches!(p.state, PatchState::Missing | PatchState::Failed)
        && let Some(cves) = p.patch.cve_ids()
    {
        m.insert("CVEIds".into(), Value::String(cves));
    }
    Value::Object(m)
}

pub fn describe_instance_patches(
    sim: &Sim,
    body: &Map<String, Value>,
    date: NaiveDate,
) -> WireResponse {
    instance_patches_page(sim, body, date).unwrap_or_else(|e| e)
}

fn instance_patches_page(
    sim: &Sim,
    body: &Map<String, Value>,
    date: NaiveDate,
) -> Result<WireResponse, WireResponse> {
    let instance_id = optional_str(body, "InstanceId")?.ok_or_else(|| {
        validation(
            "Value null at 'instanceId' failed to satisfy constraint: Member must not be null"
                .into(),
        )
    })?;
    if !valid_instance_id(instance_id) {
        return Err(invalid_id_message(instance_id));
    }
    let filters = parse_filters(body)?;
    let page_size = page_size(body, (10, 50), 50)?;
    let profile = sim.profile(instance_id);
    if !profile.managed {
        return Err(WireResponse::json_error(
            400,
            "InvalidInstanceId",
            &format!(
                "Instance {instance_id} is not managed by Systems Manager or does not belong to this account."
            ),
        ));
    }
    let filter_text = body
        .get("Filters")
        .map(Value::to_string)
        .unwrap_or_default();
    let fingerprint = combine(of_str(instance_id), &[of_str(&filter_text), 0xd1]);
    let offset = page_offset(sim, body, fingerprint)?;
    let scanned = if profile.never_scanned {
        Vec::new()
    } else {
        instance_patches(sim.config.seed, &profile, date)
    };
    let patches: Vec<InstancePatch> = scanned
        .into_iter()
        .filter(|p| filters.iter().all(|f| f.admits(p)))
        .collect();
    let end = (offset + page_size).min(patches.len());
    let page: Vec<Value> = patches
        .get(offset..end)
        .unwrap_or_default()
        .iter()
        .map(|p| patch_json(p, sim.config.model_enums))
        .collect();
    let mut out = json!({ "Patches": page });
    if end < patches.len() {
        out["NextToken"] = Value::String(sim.next_token(fingerprint, end as u64));
    }
    Ok(WireResponse::json(out))
}

/// Counts of one instance's patches, as `DescribeInstancePatchStates` reports them.
#[derive(Default)]
struct Counts {
    installed: i64,
    installed_other: i64,
    pending_reboot: i64,
    rejected: i64,
    missing: i64,
    failed: i64,
    not_applicable: i64,
    available_security_update: i64,
    critical: i64,
    security: i64,
    other: i64,
}

fn count(patches: &[InstancePatch]) -> Counts {
    let mut c = Counts::default();
    for p in patches {
        match p.state {
            PatchState::Installed => c.installed += 1,
            PatchState::InstalledOther => c.installed_other += 1,
            PatchState::InstalledPendingReboot => c.pending_reboot += 1,
            PatchState::InstalledRejected => c.rejected += 1,
            PatchState::Missing => c.missing += 1,
            PatchState::NotApplicable => c.not_applicable += 1,
            PatchState::Failed => c.failed += 1,
            PatchState::AvailableSecurityUpdate => c.available_security_update += 1,
        }
        if matches!(
            p.state,
            PatchState::Missing | PatchState::Failed | PatchState::AvailableSecurityUpdate
        ) {
            if p.patch.severity.eq_ignore_ascii_case("critical") {
                c.critical += 1;
            } else if matches!(p.patch.classification, "Security" | "SecurityUpdates") {
                c.security += 1;
            } else {
                c.other += 1;
            }
        }
    }
    c
}

/// Production runs a custom baseline of its own account (`pb-…`); the rest use AWS's predefined
/// baseline for the OS, which `DescribeInstancePatchStates` names by ARN (owned by an AWS account).
fn baseline_id(seed: u64, profile: &SsmProfile) -> String {
    let id = format!("pb-0{:016x}", combine(seed, &[profile.os as u64, 0xba5e]));
    if profile.environment == "prod" {
        id
    } else {
        format!("arn:aws:ssm:us-east-1:075727635805:patchbaseline/{id}")
    }
}

/// Every count member of `InstancePatchState`.
const COUNTS: [&str; 12] = [
    "InstalledCount",
    "InstalledOtherCount",
    "InstalledPendingRebootCount",
    "InstalledRejectedCount",
    "MissingCount",
    "FailedCount",
    "UnreportedNotApplicableCount",
    "NotApplicableCount",
    "AvailableSecurityUpdateCount",
    "CriticalNonCompliantCount",
    "SecurityNonCompliantCount",
    "OtherNonCompliantCount",
];

/// The members of `InstancePatchState` that an older SSM model did not have: the botocore model
/// bundled with Patch Manager's Linux code (pbo/botocore/data/ssm/2014-11-06/service-2.json, see
/// the `patches` module) has, besides the ids, times and `Operation`, only `InstalledCount`,
/// `InstalledOtherCount`, `InstalledRejectedCount`, `MissingCount`, `FailedCount` and
/// `NotApplicableCount`, so these came later. (The Rust SDK reads the counts among them as
/// `Option<i32>`, but `InstalledCount`, `InstalledOtherCount`, `MissingCount`, `FailedCount` and
/// `NotApplicableCount` as plain `i32`, 0 when absent.)
const LATER_MEMBERS: [&str; 8] = [
    "InstalledPendingRebootCount",
    "UnreportedNotApplicableCount",
    "AvailableSecurityUpdateCount",
    "CriticalNonCompliantCount",
    "SecurityNonCompliantCount",
    "OtherNonCompliantCount",
    "RebootOption",
    "LastNoRebootInstallOperationTime",
];

/// Share of nodes whose summary has none of [`LATER_MEMBERS`].
const OLD_SUMMARY_RATE: f64 = 0.04;

/// Share of Linux nodes whose `UnreportedNotApplicableCount` is `-1`.
const UNREPORTED_UNKNOWN_RATE: f64 = 0.10;

/// The real shapes of one node's patch-state summary, each drawn from the seed and the node.
///
/// - All of `InstancePatchState`'s counts are optional: the API reference
///   (docs.aws.amazon.com/systems-manager/latest/APIReference/API_InstancePatchState.html)
///   requires only `BaselineId`, `InstanceId`, `Operation`, `OperationEndTime`,
///   `OperationStartTime` and `PatchGroup`, as botocore's model does (its `required` list), so
///   an answer may carry no count at all. No captured answer without counts was found, so
///   neither where they occur nor how often is known: nodes without any count appear only at
///   the rate asked for at run time (`PUT /_sim/shapes {"absent_counts_rate": R}`, 0 by
///   default, since the project's boto3 checker `tests/py/sim_walk.py` indexes four of them).
/// - A summary recorded before the [`LATER_MEMBERS`] existed has none of them (4 % of nodes);
///   inferred from the model's history, not observed.
/// - `UnreportedNotApplicableCount` may be `-1`. No public source for the value was found (the
///   API reference documents only "patches beyond the supported limit of NotApplicableCount");
///   the summary the Linux code uploads (pbo/patch_common/package_compliance.py,
///   `_get_patch_summary_content`) has no `UnreportedNotApplicableCount`, so on Linux nodes the
///   value is the service's own, and `-1` (unknown) is sent for 10 % of them here.
struct SummaryShape {
    no_counts: bool,
    old: bool,
    unreported_unknown: bool,
}

fn summary_shape(sim: &Sim, profile: &SsmProfile) -> SummaryShape {
    let draw = |salt: u64| unit(combine(sim.config.seed, &[profile.id_hash, salt]));
    SummaryShape {
        no_counts: draw(0xab5e) < sim.shapes().absent_counts_rate,
        old: draw(0x01d5) < OLD_SUMMARY_RATE,
        unreported_unknown: !profile.os.is_windows() && draw(0x0dd1) < UNREPORTED_UNKNOWN_RATE,
    }
}

fn patch_state_json(sim: &Sim, instance_id: &str, profile: &SsmProfile, date: NaiveDate) -> Value {
    let seed = sim.config.seed;
    let c = count(&instance_patches(seed, profile, date));
    let end = last_scan(profile, date);
    let start = end - chrono::Duration::minutes(2 + (profile.id_hash % 13) as i64);
    let snapshot = crate::wire::request_id(seed, &[instance_id, &end.to_rfc3339()]);
    // Install runs of lagging nodes skip the reboot (`NoReboot`): the API reference's
    // `LastNoRebootInstallOperationTime` then says when; prod installs follow an override list
    // (an https or S3 path-style URL, as `InstallOverrideList` is documented).
    let no_reboot = profile.operation_install && !profile.diligent;
    let mut out = json!({
        "InstanceId": instance_id,
        "PatchGroup": format!("{}-{}", profile.environment, profile.os.short()),
        "BaselineId": baseline_id(seed, profile),
        "SnapshotId": snapshot,
        "InstalledCount": c.installed,
        "InstalledOtherCount": c.installed_other,
        "InstalledPendingRebootCount": c.pending_reboot,
        "InstalledRejectedCount": c.rejected,
        "MissingCount": c.missing,
        "FailedCount": c.failed,
        "UnreportedNotApplicableCount": 0,
        "NotApplicableCount": c.not_applicable,
        "AvailableSecurityUpdateCount": c.available_security_update,
        "OperationStartTime": epoch(start),
        "OperationEndTime": epoch(end),
        "Operation": if profile.operation_install { "Install" } else { "Scan" },
        "RebootOption": if no_reboot { "NoReboot" } else { "RebootIfNeeded" },
        "CriticalNonCompliantCount": c.critical,
        "SecurityNonCompliantCount": c.security,
        "OtherNonCompliantCount": c.other,
    });
    if no_reboot {
        out["LastNoRebootInstallOperationTime"] = json!(epoch(end));
    }
    if profile.operation_install && profile.environment == "prod" {
        out["InstallOverrideList"] = json!(format!(
            "https://s3.amazonaws.com/patch-overrides-{}/prod/{}.yaml",
            sim.config.account_id,
            profile.os.short()
        ));
    }
    let shape = summary_shape(sim, profile);
    if shape.unreported_unknown {
        out["UnreportedNotApplicableCount"] = json!(-1);
    }
    if let Value::Object(m) = &mut out {
        if shape.old {
            LATER_MEMBERS.iter().for_each(|k| _ = m.remove(*k));
        }
        if shape.no_counts {
            COUNTS.iter().for_each(|k| _ = m.remove(*k));
        }
    }
    out
}

pub fn describe_instance_patch_states(
    sim: &Sim,
    body: &Map<String, Value>,
    date: NaiveDate,
) -> WireResponse {
    patch_states_page(sim, body, date).unwrap_or_else(|e| e)
}

fn patch_states_page(
    sim: &Sim,
    body: &Map<String, Value>,
    date: NaiveDate,
) -> Result<WireResponse, WireResponse> {
    let ids: Vec<&str> = match body.get("InstanceIds") {
        None | Some(Value::Null) => {
            return Err(validation(
                "Value null at 'instanceIds' failed to satisfy constraint: Member must not be null"
                    .into(),
            ));
        }
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
        Some(_) => {
            return Err(WireResponse::json_error(
                400,
                "SerializationException",
                "InstanceIds must be a list",
            ));
        }
    };
    if ids.len() > 50 {
        return Err(validation(format!(
            "Value '[{}]' at 'instanceIds' failed to satisfy constraint: Member must have length less than or equal to 50",
            ids.len()
        )));
    }
    if let Some(bad) = ids.iter().find(|id| !valid_instance_id(id)) {
        return Err(invalid_id_message(bad));
    }
    let page_size = page_size(body, (10, 100), 50)?;
    let fingerprint = combine(of_str(&ids.join(",")), &[0x57a7e]);
    let offset = page_offset(sim, body, fingerprint)?;
    // Instances SSM does not manage, and nodes never scanned, are left out of the answer, as
    // the service does.
    let managed: Vec<(&str, SsmProfile)> = ids
        .iter()
        .map(|id| (*id, sim.profile(id)))
        .filter(|(_, p)| p.managed && !p.never_scanned)
        .collect();
    let end = (offset + page_size).min(managed.len());
    let states: Vec<Value> = managed
        .get(offset..end)
        .unwrap_or_default()
        .iter()
        .map(|(id, p)| patch_state_json(sim, id, p, date))
        .collect();
    let mut out = json!({ "InstancePatchStates": states });
    if end < managed.len() {
        out["NextToken"] = Value::String(sim.next_token(fingerprint, end as u64));
    }
    Ok(WireResponse::json(out))
}

/// Dispatches one awsJson1_1 request by its `X-Amz-Target` operation.
pub fn handle(sim: &Sim, operation: &str, body: &[u8], date: NaiveDate) -> WireResponse {
    let parsed: Value = match serde_json::from_slice(if body.is_empty() { b"{}" } else { body }) {
        Ok(v) => v,
        Err(e) => {
            return WireResponse::json_error(
                400,
                "SerializationException",
                &format!("body is not JSON: {e}"),
            );
        }
    };
    let Value::Object(map) = parsed else {
        return WireResponse::json_error(
            400,
            "SerializationException",
            "body must be a JSON object",
        );
    };
    match operation {
        "DescribeInstancePatches" => describe_instance_patches(sim, &map, date),
        "DescribeInstancePatchStates" => describe_instance_patch_states(sim, &map, date),
        "DescribeAvailablePatches" => crate::available::describe_available_patches(sim, &map, date),
        "DescribeInstanceInformation" => {
            crate::nodes::describe_instance_information(sim, &map, date)
        }
        other => WireResponse::json_error(
            400,
            "UnknownOperationException",
            &format!("The operation AmazonSSM.{other} is not simulated by patchtrail sim"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Shapes, SimConfig};

    /// The patch states of every managed, scanned node of the simulator's fleet.
    fn states(sim: &Sim) -> Vec<(SsmProfile, Map<String, Value>)> {
        (0..sim.fleet.nodes_len())
            .map(|p| sim.fleet.node_at(p))
            .filter(|n| n.profile.managed && !n.profile.never_scanned)
            .map(|n| {
                let state = patch_state_json(sim, &n.instance_id, &n.profile, sim.date());
                (n.profile, state.as_object().cloned().unwrap_or_default())
            })
            .collect()
    }

    #[test]
    fn patch_states_come_in_their_real_shapes() {
        let sim = Sim::new(SimConfig {
            instances: 600,
            seed: 4,
            ..SimConfig::default()
        });
        let all = states(&sim);
        let required = [
            "InstanceId",
            "PatchGroup",
            "BaselineId",
            "OperationStartTime",
            "OperationEndTime",
            "Operation",
        ];
        assert!(
            all.iter()
                .all(|(_, s)| required.iter().all(|k| s.contains_key(*k)))
        );
        let unknown: Vec<_> = all
            .iter()
            .filter(|(_, s)| s.get("UnreportedNotApplicableCount") == Some(&json!(-1)))
            .collect();
        assert!(!unknown.is_empty());
        assert!(unknown.iter().all(|(p, _)| !p.os.is_windows()));
        let old = all
            .iter()
            .filter(|(_, s)| !s.contains_key("CriticalNonCompliantCount"))
            .count();
        assert!(old > 5 && old * 10 < all.len(), "{old} of {}", all.len());
        for (_, s) in &all {
            assert!(
                s.contains_key("InstalledCount"),
                "no count is absent by default"
            );
            let later = LATER_MEMBERS.iter().filter(|k| s.contains_key(**k)).count();
            assert!(later == 0 || s.contains_key("CriticalNonCompliantCount"));
        }

        sim.set_shapes(Shapes {
            absent_counts_rate: 0.05,
        });
        let asked = states(&sim);
        let bare: Vec<_> = asked
            .iter()
            .filter(|(_, s)| !COUNTS.iter().any(|k| s.contains_key(*k)))
            .collect();
        assert!(
            bare.len() > 5 && bare.len() * 10 < asked.len(),
            "{}",
            bare.len()
        );
        assert!(
            bare.iter()
                .all(|(_, s)| required.iter().all(|k| s.contains_key(*k)))
        );
        // Every other answer is the same as without the knob.
        let same = asked
            .iter()
            .zip(&all)
            .filter(|((_, a), (_, b))| a == b)
            .count();
        assert_eq!(same + bare.len(), all.len());
    }

    #[test]
    fn instance_id_pattern() {
        assert!(valid_instance_id("i-0123456789abcdef0"));
        assert!(valid_instance_id("i-4f0c399cbe927b415"));
        assert!(valid_instance_id("i-12345678"));
        assert!(valid_instance_id("mi-0123456789abcdef0"));
        assert!(!valid_instance_id("i-123"));
        assert!(!valid_instance_id("x-0123456789abcdef0"));
        assert!(!valid_instance_id("i-0123456789abcdef!"));
    }
}
