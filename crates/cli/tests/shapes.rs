//! Real shapes the reports must survive (issue 25, item 7): what SSM sends beyond the tidy
//! examples of its model, each with its source in the simulator (`crates/sim/src/patches.rs`,
//! `crates/sim/src/ssm.rs`) and in `tests/fixtures/real-shapes.json`:
//! - apt titles `name.arch:version` whose version carries the package's own epoch
//!   (`openssh-server.amd64:1:8.9p1-3ubuntu0.…`): the version is everything after `KBId:`;
//! - Amazon Linux 2 severity `None` (YUM's reading of a notice without a severity);
//! - `UnreportedNotApplicableCount` -1;
//! - patch states without some, or any, of their count members;
//! - Windows `NotApplicable` and `InstalledOther` rows with an empty title, classification and
//!   severity.
//!
//! The simulator is read by boto3 and by `patchtrail collect`; what is stored is compared with
//! what boto3 read, and every report runs over it.

mod common;

use common::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;

const SEED: &str = "25";
const INSTANCES: &str = "120";
/// Simulated dates of the two collections.
const FIRST: &str = "2026-03-02";
const SECOND: &str = "2026-03-23";
/// The simulator's dates are months before the collections: only a long stale age leaves the
/// scans to decide compliance and findings.
const STALE: &str = "100000";

/// Every count member of `InstancePatchState` and the column it is stored in.
const COUNTS: [(&str, &str); 12] = [
    ("InstalledCount", "installed_count"),
    ("InstalledOtherCount", "installed_other_count"),
    (
        "InstalledPendingRebootCount",
        "installed_pending_reboot_count",
    ),
    ("InstalledRejectedCount", "installed_rejected_count"),
    ("MissingCount", "missing_count"),
    ("FailedCount", "failed_count"),
    (
        "UnreportedNotApplicableCount",
        "unreported_not_applicable_count",
    ),
    ("NotApplicableCount", "not_applicable_count"),
    (
        "AvailableSecurityUpdateCount",
        "available_security_update_count",
    ),
    ("CriticalNonCompliantCount", "critical_non_compliant_count"),
    ("SecurityNonCompliantCount", "security_non_compliant_count"),
    ("OtherNonCompliantCount", "other_non_compliant_count"),
];

/// The counts the Rust SDK reads as plain integers (`i32`, absent → 0: aws-sdk-ssm's
/// `InstancePatchStateBuilder::build` does `unwrap_or_default()`); the collector reads these from
/// the answer's body instead (`crates/collect/src/aws.rs`, `WireCounts`).
const SDK_DEFAULTED: [&str; 5] = [
    "installed_count",
    "installed_other_count",
    "missing_count",
    "failed_count",
    "not_applicable_count",
];

/// boto3's reading of the simulator (every classification, no filter): the tagged instances,
/// every patch row as sent, and per patch state the count members it carries (absent ones
/// absent).
const WALK: &str = r#"
import json, sys
import boto3
from botocore.config import Config
cfg = Config(retries={"mode": "standard", "max_attempts": 10})
ec2 = boto3.client("ec2", config=cfg)
ssm = boto3.client("ssm", config=cfg)
ids = []
for page in ec2.get_paginator("describe_instances").paginate(
        Filters=[{"Name": "tag-key", "Values": ["CheckPatch"]}]):
    for r in page["Reservations"]:
        for i in r["Instances"]:
            if i["State"]["Name"] != "terminated":
                ids.append(i["InstanceId"])
patches, unmanaged = [], []
for iid in ids:
    try:
        for page in ssm.get_paginator("describe_instance_patches").paginate(InstanceId=iid):
            for p in page["Patches"]:
                patches.append({"instance_id": iid, "kb_id": p["KBId"], "title": p["Title"],
                                "classification": p["Classification"], "severity": p["Severity"],
                                "state": p["State"]})
    except ssm.exceptions.InvalidInstanceId:
        unmanaged.append(iid)
states = {}
for k in range(0, len(ids), 50):
    for page in ssm.get_paginator("describe_instance_patch_states").paginate(InstanceIds=ids[k:k + 50]):
        for s in page["InstancePatchStates"]:
            states[s["InstanceId"]] = {m: v for m, v in s.items() if m.endswith("Count")}
json.dump({"instances": ids, "unmanaged": unmanaged, "patches": patches, "states": states}, sys.stdout)
"#;

fn walk(url: &str) -> Value {
    let mut cmd = Command::new(python());
    aws_env(&mut cmd, url);
    let stdout = ok(cmd.arg("-c").arg(WALK).output().expect("run python"));
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("the walk printed no JSON ({e})"))
}

/// `PUT` to the simulator's control API (`/_sim/date`, `/_sim/shapes`); returns the body.
fn sim_put(url: &str, path: &str, body: &str) -> String {
    let addr = url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).expect("connect to the simulator");
    write!(
        stream,
        "PUT {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    assert!(answer.starts_with("HTTP/1.1 200"), "{path}: {answer}");
    answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

/// Rows of `patchtrail sql --format json`.
fn sql(store: &str, query: &str) -> Vec<Value> {
    let out = ok(Command::new(patchtrail_bin())
        .args(["sql", "--store", store, "--format", "json", query])
        .output()
        .expect("run patchtrail sql"));
    match serde_json::from_str(&out) {
        Ok(Value::Array(rows)) => rows,
        other => panic!("sql printed no rows: {other:?}: {out}"),
    }
}

/// A report in JSON; its rows (`{"notes": ..., "rows": [...]}` or a bare array).
fn report(endpoint: &str, store: &str, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["report"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--store", store, "--format", "json", "--stale-days", STALE]);
    let out = ok(patchtrail(endpoint, &all));
    let value: Value = serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("{args:?} printed no JSON ({e}): {out}"));
    match value {
        Value::Array(rows) => rows,
        Value::Object(mut m) => match m.remove("rows") {
            Some(Value::Array(rows)) => rows,
            _ => panic!("{args:?}: no rows in {m:?}"),
        },
        other => panic!("{args:?}: {other}"),
    }
}

fn collect(endpoint: &str, store: &str) {
    ok(patchtrail(
        endpoint,
        &["collect", "--store", store, "--all-classifications"],
    ));
}

/// The current instant, for `--from`/`--to` between two collections.
fn now() -> String {
    std::thread::sleep(std::time::Duration::from_millis(20));
    let t = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    std::thread::sleep(std::time::Duration::from_millis(20));
    t
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or_default()
}

/// The version of a title as §6.5 defines it: what follows `KBId:`.
fn version<'a>(kb: &str, title: &'a str) -> Option<&'a str> {
    title.strip_prefix(kb)?.strip_prefix(':')
}

/// (instance, kb) → patch row.
fn by_patch(rows: &[Value]) -> BTreeMap<(String, String), &Value> {
    rows.iter()
        .map(|r| {
            (
                (s(r, "instance_id").to_string(), s(r, "kb_id").to_string()),
                r,
            )
        })
        .collect()
}

/// Per stored instance with a patch state, the count columns that differ from what boto3 read
/// (`null` for a member SSM did not send): `(instance, column, stored, sent)`.
fn count_mismatches(stored: &[Value], states: &Value) -> Vec<(String, String, Value, Value)> {
    let mut out = Vec::new();
    for row in stored {
        let id = s(row, "instance_id");
        let Some(sent) = states.get(id) else {
            continue;
        };
        for (member, column) in COUNTS {
            let want = sent.get(member).cloned().unwrap_or(Value::Null);
            if row[column] != want {
                out.push((
                    id.to_string(),
                    column.to_string(),
                    row[column].clone(),
                    want,
                ));
            }
        }
    }
    out
}

/// The shapes of one boto3 walk, each asserted present.
fn assert_every_shape(w: &Value) {
    let patches = w["patches"].as_array().expect("patches");
    let states = w["states"].as_object().expect("states");
    let count = |p: &dyn Fn(&Value) -> bool| patches.iter().filter(|r| p(r)).count();
    let apt_epochs = count(&|r| {
        let kb = s(r, "kb_id");
        kb.ends_with(".amd64") && version(kb, s(r, "title")).is_some_and(|v| v.contains(':'))
    });
    let blank = |state: &'static str| {
        move |r: &Value| {
            r["state"] == state
                && s(r, "kb_id").starts_with("KB")
                && [s(r, "title"), s(r, "classification"), s(r, "severity")] == ["", "", ""]
        }
    };
    let none = count(&|r| r["severity"] == "None");
    let unknown = states
        .values()
        .filter(|c| c.get("UnreportedNotApplicableCount") == Some(&Value::from(-1)))
        .count();
    let bare = states
        .values()
        .filter(|c| c.as_object().is_some_and(|m| m.is_empty()))
        .count();
    let old = states
        .values()
        .filter(|c| {
            c.get("InstalledCount").is_some() && c.get("CriticalNonCompliantCount").is_none()
        })
        .count();
    let shapes = [
        ("apt titles whose version has an epoch", apt_epochs),
        ("severity None", none),
        ("UnreportedNotApplicableCount -1", unknown),
        ("patch states without any count", bare),
        ("patch states without the later counts", old),
        (
            "blank Windows NotApplicable rows",
            count(&blank("NotApplicable")),
        ),
        (
            "blank Windows InstalledOther rows",
            count(&blank("InstalledOther")),
        ),
    ];
    for (name, n) in shapes {
        assert!(n > 0, "the simulator sends no {name}: {shapes:?}");
    }
}

#[test]
fn the_simulators_real_shapes_are_stored_as_sent_and_every_report_survives_them() {
    let sim = start_sim(&["--instances", INSTANCES, "--seed", SEED, "--date", FIRST]);
    // Patch states without any count: their rate is unknown, so the simulator sends them only
    // when asked.
    let shapes = sim_put(&sim.url, "/_sim/shapes", r#"{"absent_counts_rate": 0.05}"#);
    assert!(shapes.contains("0.05"), "{shapes}");
    let first = walk(&sim.url);
    assert_every_shape(&first);

    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("h");
    let st = store.to_str().expect("utf8");
    collect(&sim.url, st);
    let between = now();

    // Every patch row as boto3 read it, strings as sent (§1.3): empty Windows fields, `None`.
    let stored = sql(
        st,
        "SELECT instance_id, kb_id, title, classification, severity, state, \
         patch_version(kb_id, title) AS version, severity_level(severity) AS level FROM patches",
    );
    let sent = first["patches"].as_array().expect("patches");
    let (ours, theirs) = (by_patch(&stored), by_patch(sent));
    assert_eq!(
        ours.keys().collect::<BTreeSet<_>>(),
        theirs.keys().collect::<BTreeSet<_>>(),
        "every patch once"
    );
    let mut epochs = 0;
    for (key, b) in &theirs {
        let r = ours[key];
        for field in ["title", "classification", "severity", "state"] {
            assert_eq!(r[field], b[field], "{key:?} {field}");
        }
        let (kb, title) = (s(b, "kb_id"), s(b, "title"));
        // §6.5: the version is everything after `KBId:`, an apt epoch included.
        assert_eq!(r["version"].as_str(), version(kb, title), "{key:?}");
        if kb.ends_with(".amd64") {
            let v = version(kb, title).expect("an apt title is KBId:version");
            assert!(!v.is_empty(), "{title}");
            if v.contains(':') {
                epochs += 1;
                assert_ne!(
                    r["version"].as_str(),
                    title.rsplit(':').next(),
                    "the whole version, not what follows the last colon"
                );
            }
        }
        if b["severity"] == "None" {
            assert_eq!(r["level"], "unspecified", "§3.1: {key:?}");
        }
    }
    assert!(epochs > 0);

    // Counts: -1 and absent members do not break the collection; each is stored as sent, null
    // when absent (the five of SDK_DEFAULTED too).
    let columns: Vec<&str> = COUNTS.iter().map(|(_, c)| *c).collect();
    let instances = sql(
        st,
        &format!(
            "SELECT instance_id, outcome, last_scan_time, {} FROM instances",
            columns.join(", ")
        ),
    );
    let states = &first["states"];
    let with_state = instances
        .iter()
        .filter(|r| states.get(s(r, "instance_id")).is_some())
        .count();
    assert_eq!(
        with_state,
        states.as_object().map_or(0, |m| m.len()),
        "every patch state boto3 read is stored"
    );
    assert!(
        instances
            .iter()
            .any(|r| r["unreported_not_applicable_count"] == -1)
    );
    let mismatches = count_mismatches(&instances, states);
    assert!(
        mismatches.is_empty(),
        "stored, as SSM sent (instance, column, stored, sent): {mismatches:?}"
    );

    // A second snapshot three weeks later: packages moved to new versions.
    sim_put(&sim.url, "/_sim/date", SECOND);
    let second = walk(&sim.url);
    assert_every_shape(&second);
    collect(&sim.url, st);
    let after = now();

    let summary = report(&sim.url, st, &["summary", "--as-of", &after]);
    let reported: BTreeSet<&str> = summary.iter().map(|r| s(r, "instance_id")).collect();
    for id in second["instances"].as_array().expect("instances") {
        assert!(
            reported.contains(id.as_str().unwrap_or("?")),
            "{id} in the summary"
        );
    }
    // §4.3: no verdict of AWS's own where a NonCompliantCount is missing.
    let second_states = &second["states"];
    for row in &summary {
        let Some(sent) = second_states.get(s(row, "instance_id")) else {
            continue;
        };
        let partial = ["Critical", "Security", "Other"]
            .iter()
            .any(|k| sent.get(format!("{k}NonCompliantCount")).is_none());
        if partial {
            assert!(row["aws_compliance"].is_null(), "{row}");
        }
    }

    let diff = report(&sim.url, st, &["diff", "--from", &between, "--to", &after]);
    let (was, now_sent) = (
        by_patch(first["patches"].as_array().expect("patches")),
        by_patch(second["patches"].as_array().expect("patches")),
    );
    let mut moved = 0;
    for row in diff.iter().filter(|r| r["change"] == "version_changed") {
        let key = (
            s(row, "instance_id").to_string(),
            s(row, "kb_id").to_string(),
        );
        let kb = key.1.as_str();
        assert_eq!(
            row["from_version"].as_str(),
            version(kb, s(was[&key], "title")),
            "{row}"
        );
        assert_eq!(
            row["to_version"].as_str(),
            version(kb, s(now_sent[&key], "title")),
            "{row}"
        );
        if kb.ends_with(".amd64") && s(row, "to_version").contains(':') {
            moved += 1;
        }
    }
    assert!(
        moved > 0,
        "apt packages with an epoch moved to new versions"
    );

    // The auditor's reports: a finding whose first row (§8.1: its title, severity and
    // classification are those of its first row) has severity `None` is of level unspecified.
    let sla = report(&sim.url, st, &["sla", "--as-of", &after]);
    assert!(!sla.is_empty());
    let mut unspecified = 0;
    for row in &sla {
        let key = (
            s(row, "instance_id").to_string(),
            s(row, "kb_id").to_string(),
        );
        let first_row = [was.get(&key), now_sent.get(&key)]
            .into_iter()
            .flatten()
            .find(|p| p["title"] == row["title"]);
        if let Some(p) = first_row
            && p["severity"] == "None"
        {
            assert_eq!(row["severity_level"], "unspecified", "{row}");
            unspecified += 1;
        }
    }
    assert!(unspecified > 0, "findings of severity None");
    let exposure = report(&sim.url, st, &["exposure", "--as-of", &after]);
    assert!(!exposure.is_empty());
}

/// Collects the recorded fixture `tests/fixtures/real-shapes.json` from the replay server and
/// checks the store and the summary with `replay_check.py` (the fixture's values, by the
/// semantics); then collects it again and runs diff, sla and exposure over the two snapshots.
/// Returns the store and what `replay_check.py` found.
fn replay_real_shapes(dir: &Path) -> (String, Value) {
    let replay = start_replay("real-shapes.json");
    let store = dir.join("h");
    let st = store.to_str().expect("utf8").to_string();
    collect(&replay.url, &st);
    let summary = ok(patchtrail(
        &replay.url,
        &[
            "report",
            "summary",
            "--store",
            &st,
            "--stale-days",
            STALE,
            "--format",
            "json",
        ],
    ));
    let summary_file = dir.join("summary.json");
    std::fs::write(&summary_file, summary).expect("write summary");
    let fixture = repo_root().join("tests/fixtures/real-shapes.json");
    let checked = py_json(
        &replay.url,
        "replay_check.py",
        &[
            fixture.to_str().expect("utf8"),
            &st,
            summary_file.to_str().expect("utf8"),
        ],
    );
    let between = now();
    collect(&replay.url, &st);
    let after = now();
    let diff = report(
        &replay.url,
        &st,
        &["diff", "--from", &between, "--to", &after],
    );
    assert!(
        diff.is_empty(),
        "the same answers twice change nothing: {diff:?}"
    );
    assert!(!report(&replay.url, &st, &["sla"]).is_empty());
    assert!(!report(&replay.url, &st, &["exposure"]).is_empty());
    (st, checked)
}

#[test]
fn recorded_real_shapes_replay_through_the_collector_and_the_reports() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (st, checked) = replay_real_shapes(dir.path());
    assert_eq!(checked["patches"], 11, "{checked}");
    // Everything is stored and reported as the semantics say, the counts too.
    assert_eq!(checked["mismatches"], serde_json::json!([]), "{checked}");
    let versions = sql(
        &st,
        "SELECT DISTINCT kb_id, patch_version(kb_id, title) AS version, severity, \
         severity_level(severity) AS level FROM patches ORDER BY kb_id",
    );
    let of = |kb: &str| {
        versions
            .iter()
            .find(|r| r["kb_id"] == kb)
            .unwrap_or_else(|| panic!("{kb}: {versions:?}"))
    };
    assert_eq!(of("openssh-server.amd64")["version"], "1:8.2p1-4ubuntu0.13");
    assert_eq!(of("vim.amd64")["version"], "2:8.1.2269-1ubuntu5.31");
    assert_eq!(of("tzdata.amd64")["version"], "2024a-0ubuntu0.20.04");
    assert_eq!(of("glibc.x86_64")["level"], "unspecified");
    assert_eq!(of("glibc.x86_64")["severity"], "None");
    assert!(of("KB2305420")["version"].is_null());
    let counts = sql(
        &st,
        "SELECT DISTINCT instance_id, unreported_not_applicable_count AS unreported, \
         installed_pending_reboot_count AS pending, critical_non_compliant_count AS critical \
         FROM instances ORDER BY instance_id",
    );
    let row = |id: &str| {
        counts
            .iter()
            .find(|r| r["instance_id"] == id)
            .unwrap_or_else(|| panic!("{id}: {counts:?}"))
    };
    assert_eq!(row("i-0123456789abc0002")["unreported"], -1);
    for id in ["i-0123456789abc0001", "i-0123456789abc0003"] {
        assert!(row(id)["unreported"].is_null() && row(id)["pending"].is_null());
        assert!(row(id)["critical"].is_null());
    }
}

/// The counts SSM did not send are stored as null (§1.3: stored as sent), not as the 0 the Rust
/// SDK defaults five of them to: the recorded Ubuntu node's patch state carries none of them.
#[test]
fn absent_counts_are_stored_as_null_not_as_zero() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (st, _) = replay_real_shapes(dir.path());
    let rows = sql(
        &st,
        &format!(
            "SELECT DISTINCT {} FROM instances WHERE instance_id = 'i-0123456789abc0001'",
            SDK_DEFAULTED.join(", ")
        ),
    );
    assert_eq!(rows.len(), 1, "{rows:?}");
    for column in SDK_DEFAULTED {
        assert!(rows[0][column].is_null(), "{column}: {rows:?}");
    }
}
