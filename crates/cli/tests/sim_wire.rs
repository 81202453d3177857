//! The simulator against the official SDKs: boto3 (botocore's models) and the Rust SDK, unmodified,
//! reach it only through `AWS_ENDPOINT_URL`.

mod common;

use common::*;
use serde_json::Value;
use std::collections::BTreeSet;

fn as_u64(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

#[test]
fn boto3_parses_every_answer_and_errors_surface_as_the_modeled_exceptions() {
    let sim = start_sim(&["--instances", "300", "--seed", "5"]);
    let walk = py_json(&sim.url, "sim_walk.py", &[]);
    let instances = walk["instances"].as_array().expect("instances");
    assert!(
        instances.len() > 200,
        "most of the 300 carry CheckPatch: {}",
        instances.len()
    );
    assert!(instances.len() < 300, "some instances are untagged");
    assert!(
        as_u64(&walk["ec2_pages"]) >= 3,
        "DescribeInstances paged at 100"
    );
    assert_eq!(walk["account"], "123456789012");
    let states: BTreeSet<&str> = instances
        .iter()
        .filter_map(|i| i["state"].as_str())
        .collect();
    assert!(
        states.contains("running") && states.contains("stopped"),
        "{states:?}"
    );
    // The real wire's lowercase platform, which the model spells Windows.
    assert!(
        instances
            .iter()
            .any(|i| i["platform"] == "windows" && i["platform_details"] == "Windows")
    );
    let unmanaged = walk["unmanaged"].as_array().expect("unmanaged");
    assert!(
        !unmanaged.is_empty(),
        "some tagged instances are not managed by SSM"
    );
    let max_pages = walk["pages"]
        .as_object()
        .expect("pages")
        .values()
        .map(as_u64)
        .max()
        .unwrap_or(0);
    assert!(
        max_pages >= 3,
        "some instances need several pages of 50: {max_pages}"
    );
    let patches = walk["patches"].as_array().expect("patches");
    let patch_states: BTreeSet<&str> = patches.iter().filter_map(|p| p["state"].as_str()).collect();
    assert!(
        patch_states.is_superset(&BTreeSet::from(["Installed", "Missing", "Failed"])),
        "CamelCase states: {patch_states:?}"
    );
    assert!(patches.iter().all(|p| {
        ["Security", "CriticalUpdates", "SecurityUpdates"]
            .contains(&p["classification"].as_str().unwrap_or(""))
    }));
    assert!(
        patches.iter().any(|p| p["cve_ids"].is_string()),
        "CVE ids reported for missing patches"
    );
    assert!(
        patches
            .iter()
            .filter(|p| p["state"] == "Installed")
            .all(|p| p["installed_epoch"].is_u64())
    );
    // Every managed instance has a patch state, except nodes never scanned, which list no patch.
    let with_state = walk["states"].as_object().expect("states");
    let never_scanned: Vec<&str> = instances
        .iter()
        .filter_map(|i| i["instance_id"].as_str())
        .filter(|id| !unmanaged.iter().any(|u| u == id) && !with_state.contains_key(*id))
        .collect();
    assert!(
        !never_scanned.is_empty() && never_scanned.len() * 20 < instances.len(),
        "a few never-scanned nodes: {never_scanned:?}"
    );
    for id in &never_scanned {
        assert!(
            !patches.iter().any(|p| p["instance_id"] == *id),
            "{id} has no patch state, so it lists no patch"
        );
    }
    assert_eq!(
        with_state.len() + never_scanned.len(),
        instances.len() - unmanaged.len()
    );

    let managed = instances
        .iter()
        .filter_map(|i| i["instance_id"].as_str())
        .find(|id| !unmanaged.iter().any(|u| u == id))
        .expect("a managed instance");
    let unmanaged_id = unmanaged[0].as_str().expect("id");
    let probe = py_json(&sim.url, "sim_probe.py", &["errors", unmanaged_id, managed]);
    let expect = |case: &str, code: &str, status: u64| {
        assert_eq!(probe[case]["code"], code, "{case}: {}", probe[case]);
        assert_eq!(probe[case]["status"], status, "{case}: {}", probe[case]);
    };
    expect("max_results_100", "ValidationException", 400);
    expect("unmanaged", "InvalidInstanceId", 400);
    expect("bad_token", "InvalidNextToken", 400);
    expect("bad_filter", "InvalidFilter", 400);
    expect("bad_id", "ValidationException", 400);
    expect("states_51", "ValidationException", 400);
    expect("ec2_max_results_3", "InvalidParameterValue", 400);
    expect("ec2_bad_token", "InvalidPaginationToken", 400);
    expect("ec2_bad_filter", "InvalidParameterValue", 400);
    expect("ec2_unknown_id", "InvalidInstanceID.NotFound", 400);
    assert!(
        probe["max_results_100"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("less than or equal to 50")
    );
    assert_eq!(probe["unmanaged_is_modeled_exception"], true);
    assert_eq!(probe["bad_token_is_modeled_exception"], true);
}

fn jsonl_rows(store: &std::path::Path, table: &str) -> Vec<Value> {
    let mut rows = Vec::new();
    for entry in walk_files(&store.join(table)) {
        for line in std::fs::read_to_string(&entry).expect("read part").lines() {
            rows.push(serde_json::from_str(line).expect("jsonl row"));
        }
    }
    rows
}

fn walk_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk_files(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

fn epoch(v: &Value) -> Option<i64> {
    v.as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.timestamp())
}

fn stored_view(store: &std::path::Path) -> PatchView {
    jsonl_rows(store, "patches")
        .iter()
        .map(|p| {
            let s = |k: &str| p[k].as_str().unwrap_or_default().to_string();
            (
                (s("instance_id"), s("kb_id")),
                (
                    s("state"),
                    epoch(&p["installed_time"]),
                    s("classification"),
                    s("severity"),
                    s("title"),
                    p["cve_ids"].as_str().map(str::to_string),
                ),
            )
        })
        .collect()
}

#[test]
fn the_rust_sdk_and_boto3_read_the_same_fleet_field_for_field() {
    let sim = start_sim(&["--instances", "250", "--seed", "11"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("h");
    let store_arg = store.to_str().expect("utf8 path");
    ok(patchtrail(
        &sim.url,
        &[
            "collect",
            "--store",
            store_arg,
            "--format",
            "jsonl",
            "--all-classifications",
        ],
    ));
    let walk = py_json(&sim.url, "sim_walk.py", &["--all-classifications"]);

    let stored = stored_view(&store);
    let rows = jsonl_rows(&store, "patches");
    assert_eq!(rows.len(), stored.len(), "no patch stored twice");
    assert_eq!(
        stored,
        boto3_view(&walk),
        "every patch, every field, as boto3 reads it"
    );

    let instances = jsonl_rows(&store, "instances");
    assert_eq!(
        instances.len(),
        walk["instances"].as_array().map(Vec::len).unwrap_or(0)
    );
    let unmanaged: BTreeSet<String> = instances
        .iter()
        .filter(|i| i["outcome"] == "unmanaged")
        .filter_map(|i| i["instance_id"].as_str().map(str::to_string))
        .collect();
    let boto_unmanaged: BTreeSet<String> = walk["unmanaged"]
        .as_array()
        .expect("unmanaged")
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    assert_eq!(unmanaged, boto_unmanaged);
    for i in instances.iter().filter(|i| i["outcome"] == "ok") {
        let id = i["instance_id"].as_str().expect("id");
        let s = &walk["states"][id];
        assert_eq!(i["baseline_id"], s["baseline_id"], "{id}");
        assert_eq!(i["patch_group"], s["patch_group"], "{id}");
        assert_eq!(i["operation"], s["operation"], "{id}");
        assert_eq!(
            epoch(&i["last_scan_time"]),
            s["last_scan_epoch"].as_i64(),
            "{id}"
        );
        for (ours, theirs) in [
            ("installed_count", "installed"),
            ("missing_count", "missing"),
            ("failed_count", "failed"),
            ("not_applicable_count", "not_applicable"),
            ("critical_non_compliant_count", "critical_non_compliant"),
        ] {
            assert_eq!(i[ours], s[theirs], "{id} {ours}");
        }
        assert_eq!(i["patch_pages"], walk["pages"][id], "{id} pages");
        let boto_instance = walk["instances"]
            .as_array()
            .and_then(|a| a.iter().find(|b| b["instance_id"] == id))
            .expect("in walk");
        assert_eq!(i["ec2_state"], boto_instance["state"]);
        assert_eq!(i["platform"], boto_instance["platform_details"]);
        assert_eq!(i["name"], boto_instance["tags"]["Name"]);
    }
}

#[test]
fn the_same_seed_and_date_give_identical_bytes() {
    let a = start_sim(&["--instances", "50", "--seed", "9", "--date", "2026-05-04"]);
    let b = start_sim(&["--instances", "50", "--seed", "9", "--date", "2026-05-04"]);
    let c = start_sim(&["--instances", "50", "--seed", "9", "--date", "2026-06-01"]);
    let walk = py_json(&a.url, "sim_walk.py", &[]);
    let unmanaged: Vec<&Value> = walk["unmanaged"]
        .as_array()
        .map(|v| v.iter().collect())
        .unwrap_or_default();
    let id = walk["instances"]
        .as_array()
        .and_then(|all| {
            all.iter()
                .filter_map(|i| i["instance_id"].as_str())
                .find(|id| !unmanaged.iter().any(|u| u == id))
        })
        .expect("a managed instance")
        .to_string();
    let digest = |url: &str| py_json(url, "sim_probe.py", &["raw", &id])["sha256"].clone();
    assert_eq!(
        digest(&a.url),
        digest(&b.url),
        "same seed and date, same bytes"
    );
    assert_eq!(digest(&a.url), digest(&a.url), "asking twice, same bytes");
    assert_ne!(
        digest(&a.url),
        digest(&c.url),
        "the fleet evolves with the date"
    );
}

#[test]
fn throttling_follows_the_token_bucket_and_uses_each_services_error() {
    let sim = start_sim(&[
        "--instances",
        "30",
        "--seed",
        "3",
        "--ssm-tps",
        "20",
        "--ec2-tps",
        "2",
    ]);
    let walk_id = "i-0123456789abcdef0"; // any well-formed id: SSM answers for ids it never created
    let r = py_json(&sim.url, "sim_probe.py", &["throttle", "400", walk_id]);
    let sent = as_u64(&r["sent"]) as f64;
    let throttled = as_u64(&r["throttled"]) as f64;
    let elapsed = r["elapsed"].as_f64().expect("elapsed");
    // A full bucket of 20, refilled at 20 per second while the calls went on.
    let expected_served = (20.0 + 20.0 * elapsed).min(sent);
    let served = sent - throttled;
    assert!(
        (served - expected_served).abs() <= expected_served * 0.15 + 3.0,
        "served {served} of {sent} in {elapsed:.2}s; the bucket allows {expected_served:.1}"
    );
    assert!(
        throttled > sent / 2.0,
        "calls outran the bucket: {throttled} of {sent} throttled"
    );
    assert_eq!(r["ssm_error"]["code"], "ThrottlingException");
    assert_eq!(r["ssm_error"]["status"], 400);
    assert_eq!(r["ssm_error"]["message"], "Rate exceeded");
    assert_eq!(r["ec2_error"]["code"], "RequestLimitExceeded");
    assert_eq!(r["ec2_error"]["status"], 503);
}

#[test]
fn a_self_paced_collect_walks_a_throttled_faulty_fleet_without_losing_a_page() {
    let clean = start_sim(&["--instances", "120", "--seed", "21"]);
    let rough = start_sim(&[
        "--instances",
        "120",
        "--seed",
        "21",
        "--ssm-tps",
        "40",
        "--ec2-tps",
        "5",
        "--fault-rate",
        "0.05",
    ]);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("h");
    let out = ok(patchtrail(
        &rough.url,
        &[
            "collect",
            "--store",
            store.to_str().expect("utf8"),
            "--format",
            "jsonl",
            "--concurrency",
            "16",
        ],
    ));
    assert!(out.contains("0 errors"), "{out}");
    let walk = py_json(&clean.url, "sim_walk.py", &[]);
    assert_eq!(
        stored_view(&store),
        boto3_view(&walk),
        "the throttled, faulty walk lost nothing"
    );
    let stats: Value = py_stats(&rough.url);
    let throttled: u64 = stats
        .as_array()
        .expect("stats")
        .iter()
        .map(|s| as_u64(&s["throttled"]))
        .sum();
    let faults: u64 = stats
        .as_array()
        .expect("stats")
        .iter()
        .map(|s| as_u64(&s["faults"]))
        .sum();
    assert!(
        throttled > 0 && faults > 0,
        "the run met throttling ({throttled}) and faults ({faults})"
    );
}

/// `PUT /_sim/limits` changes the token-bucket rates of a running simulator (the rate bench halves
/// them mid-run): the new rate throttles a burst it would have served, and nonsense is refused.
#[test]
fn simulator_rates_change_while_it_runs() {
    let sim = start_sim(&["--instances", "10", "--seed", "3"]);
    let script = r#"
import json, sys, urllib.request, urllib.error, boto3
url = sys.argv[1]
def put(body):
    req = urllib.request.Request(url + "/_sim/limits", data=body.encode(), method="PUT")
    try:
        return urllib.request.urlopen(req).status
    except urllib.error.HTTPError as e:
        return e.code
ssm = boto3.client("ssm", endpoint_url=url, region_name="us-east-1", aws_access_key_id="x",
                   aws_secret_access_key="x", config=boto3.session.Config(retries={"max_attempts": 1}))
def burst():
    throttled = 0
    for _ in range(30):
        try:
            ssm.describe_instance_patch_states(InstanceIds=["i-0123456789abcdef0"])
        except ssm.exceptions.ClientError as e:
            throttled += e.response["Error"]["Code"] == "ThrottlingException"
    return throttled
out = {"before": burst(), "put": put('{"ssm_tps": 0.01, "ec2_tps": null}')}
out["limits"] = json.load(urllib.request.urlopen(url + "/_sim/limits"))
out["after"] = burst()
out["bad"] = [put('{"ssm_tps": -1}'), put('{"ssm_tps": "fast"}'), put("nonsense")]
print(json.dumps(out))
"#;
    let out = std::process::Command::new(python())
        .args(["-c", script, &sim.url])
        .output()
        .expect("python");
    let v: Value = serde_json::from_slice(&ok_bytes(out)).expect("json");
    assert_eq!(v["before"], 0, "no limit, no throttle: {v}");
    assert_eq!(v["put"], 200, "{v}");
    assert_eq!(
        v["limits"],
        serde_json::json!({"ssm_tps": 0.01, "ec2_tps": null})
    );
    // A bucket of one token, refilled once in 100 s, serves one or two of 30 calls.
    assert!(as_u64(&v["after"]) >= 28, "{v}");
    assert_eq!(v["bad"], serde_json::json!([400, 400, 400]), "{v}");
}

fn py_stats(url: &str) -> Value {
    let script = format!(
        "import urllib.request,sys; sys.stdout.write(urllib.request.urlopen('{url}/_sim/stats').read().decode())"
    );
    let out = std::process::Command::new(python())
        .args(["-c", &script])
        .output()
        .expect("python");
    serde_json::from_slice(&ok_bytes(out)).expect("stats json")
}

fn ok_bytes(output: std::process::Output) -> Vec<u8> {
    assert!(output.status.success(), "{}", text(&output.stderr));
    output.stdout
}

#[test]
fn model_spellings_are_switchable_and_the_collector_normalises_them() {
    let sim = start_sim(&["--instances", "60", "--seed", "8", "--model-enums"]);
    let walk = py_json(&sim.url, "sim_walk.py", &[]);
    let states: BTreeSet<&str> = walk["patches"]
        .as_array()
        .expect("patches")
        .iter()
        .filter_map(|p| p["state"].as_str())
        .collect();
    assert!(
        states.contains("INSTALLED") && states.contains("MISSING"),
        "{states:?}"
    );
    assert!(
        walk["instances"]
            .as_array()
            .expect("instances")
            .iter()
            .any(|i| i["platform"] == "Windows")
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("h");
    ok(patchtrail(
        &sim.url,
        &[
            "collect",
            "--store",
            store.to_str().expect("utf8"),
            "--format",
            "jsonl",
        ],
    ));
    let stored: BTreeSet<String> = stored_view(&store).values().map(|v| v.0.clone()).collect();
    assert!(
        stored.contains("Installed") && stored.contains("Missing"),
        "one documented spelling: {stored:?}"
    );
    assert!(
        stored
            .iter()
            .all(|s| !s.contains('_') && !s.chars().all(|c| c.is_ascii_uppercase())),
        "{stored:?}"
    );
}

/// `ssm:DescribeInstanceInformation` as boto3 reads it: managed nodes that EC2 lists as running
/// (stopped and terminated ones are not returned), agent health, both filter forms, paging, and
/// the service's errors.
#[test]
fn describe_instance_information_lists_managed_running_nodes_with_agent_health() {
    let sim = start_sim(&["--instances", "400", "--seed", "21"]);
    let facts = py_json(&sim.url, "sim_nodes.py", &[]);
    let nodes = facts["nodes"].as_u64().unwrap_or(0);
    assert_eq!(
        facts["unique"].as_u64(),
        Some(nodes),
        "no node twice across pages"
    );
    assert_eq!(
        facts["ec2_states_of_nodes"],
        serde_json::json!(["running"]),
        "{facts}"
    );
    let running = facts["running_in_ec2"].as_u64().unwrap_or(0);
    assert!(
        nodes > 10 && nodes < running,
        "most running instances are managed: {facts}"
    );
    assert_eq!(
        facts["ping_statuses"],
        serde_json::json!(["ConnectionLost", "Online"])
    );
    assert_eq!(facts["lost_all_lost"], true);
    assert_eq!(facts["windows_only"], serde_json::json!(["Windows"]));
    assert!(facts["tagged"].as_u64().unwrap_or(0) < nodes);
    assert_eq!(facts["by_id"], true);
    assert_eq!(facts["last_ping_is_datetime"], true);
    for field in [
        "AgentVersion",
        "ComputerName",
        "IPAddress",
        "IsLatestVersion",
        "PlatformName",
        "PlatformVersion",
        "ResourceType",
        "SourceId",
        "SourceType",
    ] {
        assert!(
            facts["fields"]
                .as_array()
                .is_some_and(|f| f.iter().any(|x| x == field)),
            "{field}: {facts}"
        );
    }
    assert_eq!(facts["both_forms"], "InvalidInstanceInformationFilterValue");
    assert_eq!(facts["bad_key"], "InvalidFilterKey");
    assert_eq!(facts["max_results_60"], "ValidationException");
    assert_eq!(facts["bad_token"], "InvalidNextToken");
}

/// With `--token-ttl-ms`, a NextToken older than its lifetime gets each service's invalid-token
/// error (SSM `InvalidNextToken`, EC2 `InvalidPaginationToken`), as boto3 reads them; a fresh
/// one pages on.
#[test]
fn next_tokens_expire_after_their_lifetime() {
    let sim = start_sim(&["--instances", "40", "--seed", "3", "--token-ttl-ms", "300"]);
    let tokens = py_json(&sim.url, "sim_tokens.py", &["300"]);
    assert_eq!(
        tokens,
        serde_json::json!({
            "ec2:DescribeInstances": {"fresh": null, "expired": "InvalidPaginationToken"},
            "ssm:DescribeInstanceInformation": {"fresh": null, "expired": "InvalidNextToken"},
        })
    );
}
