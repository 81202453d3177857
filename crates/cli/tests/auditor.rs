//! The auditor's questions (docs/semantics.md §8) on a history small enough to answer by hand:
//! every expected figure below was worked out from the runs written here, not by patchtrail.
//! (The randomized comparison with the independent oracle is tests/oracle/test_findings.py.)

mod common;

use common::*;
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;

const ACCOUNT: &str = "111111111111";

fn patch(kb: &str, severity: &str, classification: &str, state: &str, cves: Option<&str>) -> Value {
    json!({"kb_id": kb, "title": format!("Update {kb}"), "classification": classification,
           "severity": severity, "state": state, "installed_time": null, "cve_ids": cves})
}

fn instance(id: &str, env: &str, scan: &str, patches: Vec<Value>) -> Value {
    json!({"instance_id": id, "name": format!("{env}-{id}"), "last_scan_time": scan,
           "tags": json!({"Environment": env, "CheckPatch": "true"}).to_string(), "patches": patches})
}

/// Four weekly-ish runs (the fourth after a gap), 06:00 UTC:
/// - i-0a KB1 critical, missing runs 1–3 (CVE-2026-0001), installed in run 4: fixed late.
/// - i-0a KB2 high, installed, missing in run 2 only (CVE-2026-0002, CVE-2026-0001), installed again.
/// - i-0a KB5 low, missing in run 3, gone from the list in run 4: no_longer_reported.
/// - i-0a KB6 high, missing from run 2 on (CVE-2026-0003): still open at the end, breached.
/// - i-0b (dev) KB3 medium, missing throughout: open, within its 90 days, waived.
/// - i-0c (staging) KB4 critical, missing in run 1; in run 2 its scan is stale (not reporting:
///   the finding goes on); missing in run 3; absent from run 4: instance_gone.
fn history(dir: &Path) -> String {
    let runs = [
        (
            "2026-01-05",
            vec![
                instance(
                    "i-0000000000000000a",
                    "prod",
                    "2026-01-05T03:00:00Z",
                    vec![
                        patch(
                            "KB1",
                            "Critical",
                            "SecurityUpdates",
                            "Missing",
                            Some("CVE-2026-0001"),
                        ),
                        patch("KB2", "Important", "SecurityUpdates", "Installed", None),
                        patch("KB6", "Important", "SecurityUpdates", "Installed", None),
                    ],
                ),
                instance(
                    "i-0000000000000000b",
                    "dev",
                    "2026-01-05T03:00:00Z",
                    vec![patch("KB3", "Moderate", "SecurityUpdates", "Missing", None)],
                ),
                instance(
                    "i-0000000000000000c",
                    "staging",
                    "2026-01-05T03:00:00Z",
                    vec![patch(
                        "KB4",
                        "Critical",
                        "Security",
                        "Missing",
                        Some("cve-2026-0004 "),
                    )],
                ),
            ],
        ),
        (
            "2026-01-12",
            vec![
                instance(
                    "i-0000000000000000a",
                    "prod",
                    "2026-01-12T03:00:00Z",
                    vec![
                        patch(
                            "KB1",
                            "Critical",
                            "SecurityUpdates",
                            "Missing",
                            Some("CVE-2026-0001"),
                        ),
                        patch(
                            "KB2",
                            "Important",
                            "SecurityUpdates",
                            "Missing",
                            Some("CVE-2026-0002,CVE-2026-0001"),
                        ),
                        patch(
                            "KB6",
                            "Important",
                            "SecurityUpdates",
                            "Missing",
                            Some("CVE-2026-0003"),
                        ),
                    ],
                ),
                instance(
                    "i-0000000000000000b",
                    "dev",
                    "2026-01-12T03:00:00Z",
                    vec![patch("KB3", "Moderate", "SecurityUpdates", "Missing", None)],
                ),
                instance(
                    "i-0000000000000000c",
                    "staging",
                    "2025-12-20T03:00:00Z",
                    vec![patch("KB4", "Critical", "Security", "Installed", None)],
                ),
            ],
        ),
        (
            "2026-01-19",
            vec![
                instance(
                    "i-0000000000000000a",
                    "prod",
                    "2026-01-19T03:00:00Z",
                    vec![
                        patch(
                            "KB1",
                            "Critical",
                            "SecurityUpdates",
                            "Missing",
                            Some("CVE-2026-0001"),
                        ),
                        patch("KB2", "Important", "SecurityUpdates", "Installed", None),
                        patch("KB5", "Low", "Security", "Missing", None),
                        patch(
                            "KB6",
                            "Important",
                            "SecurityUpdates",
                            "Failed",
                            Some("CVE-2026-0003"),
                        ),
                    ],
                ),
                instance(
                    "i-0000000000000000b",
                    "dev",
                    "2026-01-19T03:00:00Z",
                    vec![patch("KB3", "Moderate", "SecurityUpdates", "Missing", None)],
                ),
                instance(
                    "i-0000000000000000c",
                    "staging",
                    "2026-01-19T03:00:00Z",
                    vec![patch(
                        "KB4",
                        "Critical",
                        "Security",
                        "Missing",
                        Some("CVE-2026-0004"),
                    )],
                ),
            ],
        ),
        (
            "2026-02-23",
            vec![
                instance(
                    "i-0000000000000000a",
                    "prod",
                    "2026-02-23T03:00:00Z",
                    vec![
                        patch("KB1", "Critical", "SecurityUpdates", "Installed", None),
                        patch("KB2", "Important", "SecurityUpdates", "Installed", None),
                        patch(
                            "KB6",
                            "Important",
                            "SecurityUpdates",
                            "Missing",
                            Some("CVE-2026-0003"),
                        ),
                    ],
                ),
                instance(
                    "i-0000000000000000b",
                    "dev",
                    "2026-02-23T03:00:00Z",
                    vec![patch("KB3", "Moderate", "SecurityUpdates", "Missing", None)],
                ),
            ],
        ),
    ];
    let lines: Vec<String> = runs
        .into_iter()
        .map(|(day, instances)| {
            json!({"snapshot_time": format!("{day}T06:00:00Z"), "account_id": ACCOUNT,
                   "region": "us-east-1", "instances": instances})
            .to_string()
        })
        .collect();
    let input = dir.join("history.jsonl");
    std::fs::write(&input, lines.join("\n") + "\n").expect("write input");
    let store = dir.join("store").to_str().expect("utf-8").to_string();
    ok(Command::new(patchtrail_bin())
        .args(["import", input.to_str().expect("utf-8"), "--store", &store])
        .output()
        .expect("import"));
    store
}

const WAIVERS: &str = r#"
[[waiver]]
id = "DEV"
tag = "Environment=dev"
reason = "rebuilt weekly"
approver = "ciso@example.com"
expires = 2026-12-31

[[waiver]]
id = "OLD"
cve = "cve-2026-0003"
reason = "vendor fix pending"
approver = "cab@example.com"
expires = "2026-02-01"

[[waiver]]
kb = "KB999"
reason = "never matches"
approver = "cab@example.com"
expires = 2026-12-31
"#;

/// `{"notes": [...], "rows": [...]}` or a bare array, as (notes, rows).
fn run_json(args: &[&str]) -> (Vec<String>, Vec<Value>) {
    let out = ok(Command::new(patchtrail_bin())
        .args(args)
        .args(["--format", "json"])
        .output()
        .expect("run"));
    let v: Value = serde_json::from_str(&out).expect("json");
    match v {
        Value::Array(rows) => (Vec::new(), rows),
        Value::Object(mut o) => (
            o.remove("notes")
                .and_then(|n| serde_json::from_value(n).ok())
                .unwrap_or_default(),
            o.remove("rows")
                .and_then(|r| r.as_array().cloned())
                .unwrap_or_default(),
        ),
        other => panic!("unexpected JSON: {other}"),
    }
}

fn find<'a>(rows: &'a [Value], instance: &str, kb: &str) -> &'a Value {
    rows.iter()
        .find(|r| r["instance_id"] == instance && r["kb_id"] == kb)
        .unwrap_or_else(|| panic!("no finding {instance} {kb} in {rows:?}"))
}

#[test]
fn sla_findings_bounds_and_waivers_match_the_hand_computed_answers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = history(dir.path());
    let waivers = dir.path().join("waivers.toml");
    std::fs::write(&waivers, WAIVERS).expect("waivers");
    let w = waivers.to_str().expect("utf-8");
    let base = ["report", "sla", "--store", &store, "--as-of", "2026-02-28"];
    let (notes, rows) = run_json(&[&base[..], &["--waivers", w]].concat());
    assert_eq!(rows.len(), 6, "{rows:#?}");

    // T = the end of 2026-02-28 UTC; times are the runs' 06:00 UTC.
    let expect = |instance: &str, kb: &str, fields: Value| {
        let row = find(&rows, instance, kb);
        for (k, v) in fields.as_object().expect("object") {
            assert_eq!(&row[k], v, "{instance} {kb} {k}: {row:#}");
        }
    };
    expect(
        "i-0000000000000000a",
        "KB1",
        json!({"severity_level": "critical", "first_seen": "2026-01-05T06:00:00Z",
        "last_seen": "2026-01-19T06:00:00Z", "previous_snapshot": null, "resolved_at": "2026-02-23T06:00:00Z",
        "resolution": "installed", "days_open": 49.0, "days_open_min": 14.0, "days_open_max": null,
        "limit_days": 30, "status": "fixed_late", "cve_ids": "CVE-2026-0001", "waived_by": null}),
    );
    expect(
        "i-0000000000000000a",
        "KB2",
        json!({"previous_snapshot": "2026-01-05T06:00:00Z", "first_seen": "2026-01-12T06:00:00Z",
        "resolved_at": "2026-01-19T06:00:00Z", "days_open": 7.0, "days_open_min": 0.0, "days_open_max": 14.0,
        "status": "fixed_in_time", "cve_ids": "CVE-2026-0001,CVE-2026-0002"}),
    );
    expect(
        "i-0000000000000000a",
        "KB5",
        json!({"severity_level": "low", "resolution": "no_longer_reported",
        "resolved_at": "2026-02-23T06:00:00Z", "days_open": 35.0, "limit_days": 180, "status": "resolved_other",
        "cve_ids": null}),
    );
    // Open at T: 2026-01-12T06:00 → 2026-02-28T23:59:59.999999 is a microsecond short of 47.75
    // days, shown 47.7; at most from 2026-01-05T06:00, a microsecond short of 54.75; certainly
    // from first_seen to last_seen (2026-02-23), 42 days: no snapshot saw it after that (§8.2).
    expect(
        "i-0000000000000000a",
        "KB6",
        json!({"last_seen": "2026-02-23T06:00:00Z", "resolved_at": null, "resolution": null,
        "days_open": 47.7, "days_open_min": 42.0, "days_open_max": 54.7, "status": "breached",
        "waived_by": null, "expired_waiver": "OLD"}),
    );
    // The first note says how far T lies past the newest snapshot: 5.75 days less 1 µs.
    assert!(
        notes.first().is_some_and(|n| n.contains(
            "the newest snapshot in force was taken 2026-02-23 06:00 UTC, 5.7 days earlier"
        )),
        "{notes:?}"
    );
    expect(
        "i-0000000000000000b",
        "KB3",
        json!({"severity_level": "medium", "days_open": 54.7, "days_open_min": 49.0, "days_open_max": null,
        "limit_days": 90, "status": "open", "waived_by": "DEV", "name": "dev-i-0000000000000000b"}),
    );
    // The stale scan of 2026-01-12 does not interrupt KB4; the instance is gone at T.
    expect(
        "i-0000000000000000c",
        "KB4",
        json!({"first_seen": "2026-01-05T06:00:00Z", "last_seen": "2026-01-19T06:00:00Z",
        "resolution": "instance_gone", "resolved_at": null, "days_open": 14.0, "days_open_max": null,
        "status": "resolved_other", "cve_ids": "CVE-2026-0004"}),
    );
    // Breached first, then fixed late, open and fixed in time.
    let order: Vec<&str> = rows
        .iter()
        .map(|r| r["kb_id"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(&order[..4], ["KB6", "KB1", "KB3", "KB2"], "{order:?}");

    let sha = {
        let out = Command::new("sha256sum")
            .arg(&waivers)
            .output()
            .expect("sha256sum");
        text(&out.stdout)
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string()
    };
    assert!(notes.iter().any(|n| n.contains(&sha)), "{notes:?}");
    assert!(
        notes.iter().any(|n| n.contains("SLA policy the default")),
        "{notes:?}"
    );

    let (_, scopes) = run_json(&[&base[..], &["--waivers", w, "--table", "by_scope"]].concat());
    assert_eq!(
        scopes,
        [
            json!({"account_id": ACCOUNT, "region": "us-east-1", "breached": 1, "fixed_late": 1, "open": 0,
                "fixed_in_time": 1, "resolved_other": 2, "waived": 1})
        ]
    );
    let (_, table) = run_json(&[&base[..], &["--waivers", w, "--table", "waivers"]].concat());
    let states: Vec<(&str, i64, &str)> = table
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap_or(""),
                r["findings"].as_i64().unwrap_or(-1),
                r["state"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            ("DEV", 1, "active"),
            ("OLD", 1, "expired"),
            ("W3", 0, "unused")
        ]
    );

    // §8.5: KB2 (high) fixed in January after 7 days, KB1 (critical) in February after 49.
    let (_, fixed) = run_json(&[&base[..], &["--table", "remediation"]].concat());
    assert_eq!(
        fixed,
        [
            json!({"month": "2026-01", "severity_level": "high", "fixed": 1, "median_days": 7.0, "p90_days": 7.0}),
            json!({"month": "2026-02", "severity_level": "critical", "fixed": 1, "median_days": 49.0, "p90_days": 49.0}),
        ]
    );
    // Open at each snapshot (per level: count, median age): KB2 is not open at the snapshot
    // that saw it installed, KB4 not after its instance was gone.
    let (_, ages) = run_json(&[&base[..], &["--table", "open_age"]].concat());
    let got: Vec<(String, String, i64, f64)> = ages
        .iter()
        .map(|r| {
            (
                r["snapshot_time"].as_str().unwrap_or("")[..10].to_string(),
                r["severity_level"].as_str().unwrap_or("").to_string(),
                r["open"].as_i64().unwrap_or(-1),
                r["median_days"].as_f64().unwrap_or(-1.0),
            )
        })
        .collect();
    let want: Vec<(String, String, i64, f64)> = [
        ("2026-01-05", "critical", 2, 0.0),
        ("2026-01-05", "medium", 1, 0.0),
        ("2026-01-12", "critical", 2, 7.0),
        ("2026-01-12", "high", 2, 0.0),
        ("2026-01-12", "medium", 1, 7.0),
        ("2026-01-19", "critical", 2, 14.0),
        ("2026-01-19", "high", 1, 7.0),
        ("2026-01-19", "low", 1, 0.0),
        ("2026-01-19", "medium", 1, 14.0),
        ("2026-02-23", "high", 1, 42.0),
        ("2026-02-23", "medium", 1, 49.0),
    ]
    .iter()
    .map(|(d, l, n, m)| (d.to_string(), l.to_string(), *n, *m))
    .collect();
    assert_eq!(got, want);

    // A policy changes what it names: critical 60 days makes KB1 (49 days) in time.
    let policy = dir.path().join("sla.toml");
    std::fs::write(&policy, "[severity]\nCritical = 60\n").expect("policy");
    let (notes, rows) =
        run_json(&[&base[..], &["--policy", policy.to_str().expect("utf-8")]].concat());
    assert_eq!(
        find(&rows, "i-0000000000000000a", "KB1")["status"],
        "fixed_in_time"
    );
    assert_eq!(find(&rows, "i-0000000000000000a", "KB1")["limit_days"], 60);
    assert!(notes.iter().any(|n| n.contains("critical 60")), "{notes:?}");

    // As of 2026-01-12, only two snapshots count: KB1 is open, a microsecond short of 7.75 days.
    let (_, early) = run_json(&["report", "sla", "--store", &store, "--as-of", "2026-01-12"]);
    assert_eq!(find(&early, "i-0000000000000000a", "KB1")["status"], "open");
    assert_eq!(find(&early, "i-0000000000000000a", "KB1")["days_open"], 7.7);
    assert!(
        early.iter().all(|r| r["kb_id"] != "KB5"),
        "KB5 was first missing later"
    );
}

#[test]
fn exposure_names_instances_days_and_the_blind_spot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = history(dir.path());
    let base = [
        "report",
        "exposure",
        "--store",
        &store,
        "--as-of",
        "2026-02-28",
    ];
    let (_, rows) = run_json(&[&base[..], &["--cve", "CVE-2026-0001"]].concat());
    let got: Vec<(&str, &str, Value, Value)> = rows
        .iter()
        .map(|r| {
            (
                r["kb_id"].as_str().unwrap_or(""),
                r["resolution"].as_str().unwrap_or(""),
                r["days_exposed"].clone(),
                r["fixed_at"].clone(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "KB1",
                "installed",
                json!(49.0),
                json!("2026-02-23T06:00:00Z")
            ),
            (
                "KB2",
                "installed",
                json!(7.0),
                json!("2026-01-19T06:00:00Z")
            )
        ]
    );
    let (_, cves) = run_json(&[&base[..], &["--table", "cves"]].concat());
    let ranked: Vec<(&str, Value, Value, Value)> = cves
        .iter()
        .map(|r| {
            (
                r["cve_id"].as_str().unwrap_or(""),
                r["instances"].clone(),
                r["instance_days"].clone(),
                r["still_exposed"].clone(),
            )
        })
        .collect();
    assert_eq!(
        ranked,
        [
            ("CVE-2026-0001", json!(1), json!(56.0), json!(0)),
            ("CVE-2026-0003", json!(1), json!(47.7), json!(1)),
            ("CVE-2026-0004", json!(1), json!(14.0), json!(0)),
            ("CVE-2026-0002", json!(1), json!(7.0), json!(0))
        ]
    );
    let (_, blind) = run_json(&[&base[..], &["--table", "without_cve_ids"]].concat());
    let by_level: Vec<(&str, Value)> = blind
        .iter()
        .map(|r| {
            (
                r["severity_level"].as_str().unwrap_or(""),
                r["findings"].clone(),
            )
        })
        .collect();
    assert_eq!(by_level, [("low", json!(1)), ("medium", json!(1))]);
    // Per snapshot, who was exposed to CVE-2026-0003 (KB6 on i-…a from the second snapshot on;
    // its Failed row counts, it is outstanding).
    let (_, timeline) = run_json(&[
        "report",
        "history",
        "--store",
        &store,
        "--cve",
        "cve-2026-0003",
    ]);
    let counts: Vec<i64> = timeline
        .iter()
        .map(|r| r["exposed_instances"].as_i64().unwrap_or(-1))
        .collect();
    assert_eq!(counts, [0, 1, 1, 1]);
    // A CVE nobody was exposed to is an answer, not an error.
    let (_, none) = run_json(&[&base[..], &["--cve", "CVE-1999-0001"]].concat());
    assert!(none.is_empty());
}

#[test]
fn bad_policies_and_waivers_exit_2_naming_the_file_and_the_fix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = history(dir.path());
    let bad = dir.path().join("bad.toml");
    for (flag, content, needle) in [
        (
            "--policy",
            "[severity]\nurgent = 3\n",
            "not a severity level",
        ),
        (
            "--waivers",
            "[[waiver]]\nkb = \"KB1\"\napprover = \"a\"\nexpires = 2027-01-01\n",
            "reason is required",
        ),
        (
            "--policy",
            "[severity]\nhigh = 60\nImportant = 40\n",
            "both set level high",
        ),
        (
            "--waivers",
            "[[waiver]]\ncve = \"CVE-2026-0001, CVE-2026-0002\"\nreason = \"r\"\napprover = \"a\"\nexpires = 2027-01-01\n",
            "give one CVE id",
        ),
    ] {
        std::fs::write(&bad, content).expect("write");
        let out = Command::new(patchtrail_bin())
            .args([
                "report",
                "sla",
                "--store",
                &store,
                flag,
                bad.to_str().expect("utf-8"),
            ])
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(2), "{content}: {}", text_of(&out));
        let err = text(&out.stderr);
        assert!(err.contains("bad.toml") && err.contains(needle), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    }
    // Arguments a careful auditor could mistype: a CVE that is not one, a date not yet begun.
    for (args, needle) in [
        (vec!["exposure", "--cve", "=1+1"], "--cve =1+1"),
        (
            vec!["exposure", "--cve", "CVE-2026-0001,CVE-26-1"],
            "--cve CVE-26-1",
        ),
        (vec!["history", "--cve", "log4shell"], "--cve log4shell"),
        (vec!["sla", "--as-of", "2999-01-01"], "in the future"),
    ] {
        let out = Command::new(patchtrail_bin())
            .arg("report")
            .args(&args)
            .args(["--store", &store])
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text_of(&out));
        let err = text(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    }
    // A well-formed id no snapshot names: exit 0, and a note saying so (not a silent `[]`).
    let (notes, rows) = run_json(&[
        "report",
        "exposure",
        "--store",
        &store,
        "--as-of",
        "2026-02-28",
        "--cve",
        "cve-2031-0404",
    ]);
    assert!(rows.is_empty(), "{rows:?}");
    assert!(
        notes
            .iter()
            .any(|n| n.starts_with("CVE-2031-0404: no snapshot in force by 2026-02-28")),
        "{notes:?}"
    );
}

#[test]
fn the_demo_shows_a_breach_an_exposure_and_a_waiver_and_runs_again_in_its_folder() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("demo");
    let s = store.to_str().expect("utf-8");
    for _ in 0..2 {
        ok(Command::new(patchtrail_bin())
            .args(["demo", "--store", s, "--instances", "40", "--weeks", "8"])
            .output()
            .expect("demo"));
    }
    let waivers = store.join("waivers.toml");
    let w = waivers.to_str().expect("utf-8");
    let as_of = ["--as-of", "2026-11-23", "--store", s, "--waivers", w];
    let (_, rows) = run_json(&[&["report", "sla"][..], &as_of].concat());
    assert!(
        rows.iter()
            .any(|r| r["status"] == "breached" && r["waived_by"].is_null())
    );
    let (_, table) = run_json(&[&["report", "sla", "--table", "waivers"][..], &as_of].concat());
    let state = |id: &str| {
        table
            .iter()
            .find(|r| r["id"] == id)
            .map(|r| (r["state"].clone(), r["findings"].as_i64().unwrap_or(0) > 0))
    };
    assert_eq!(
        state("RISK-101"),
        Some((json!("active"), true)),
        "{table:?}"
    );
    assert_eq!(
        state("RISK-087"),
        Some((json!("expired"), true)),
        "{table:?}"
    );
    let (_, exposed) = run_json(&[&["report", "exposure"][..], &as_of].concat());
    assert!(
        exposed
            .iter()
            .any(|r| r["cve_id"].as_str().is_some_and(|c| c.starts_with("CVE-")))
    );
    let html = std::fs::read_to_string(store.join("report.html")).expect("report.html");
    for caption in [
        "Findings by SLA status",
        "CVEs by instance-days of exposure",
        "RISK-101",
    ] {
        assert!(html.contains(caption), "report.html lacks {caption}");
    }
}

/// The shell command of each numbered step of the pack's README.txt (its indented line), by
/// step number; steps without one (9) are left out.
fn readme_checks(readme: &str) -> std::collections::BTreeMap<u32, String> {
    let mut steps = std::collections::BTreeMap::new();
    let mut step = 0;
    for line in readme.lines() {
        if let Some((n, _)) = line.split_once(". ")
            && let Ok(n) = n.parse::<u32>()
        {
            step = n;
        } else if let Some(code) = line.strip_prefix("     ")
            && step > 0
        {
            steps
                .entry(step)
                .or_insert_with(String::new)
                .push_str(&format!("{}\n", code.trim_start()));
        }
    }
    steps
}

fn bash(dir: &Path, script: &str) -> std::process::Output {
    bash_with(dir, script, &[])
}

fn bash_with(dir: &Path, script: &str, env: &[(&str, &str)]) -> std::process::Output {
    Command::new("bash")
        .args(["-euo", "pipefail", "-c", script])
        .current_dir(dir)
        .envs(env.iter().copied())
        .output()
        .expect("bash")
}

/// A copy of the unpacked pack to forge, and a helper that writes its SHA256SUMS again.
fn forge(pack: &Path, name: &str) -> std::path::PathBuf {
    let copy = pack.with_file_name(name);
    let cp = Command::new("cp")
        .args([
            "-r",
            pack.to_str().expect("utf-8"),
            copy.to_str().expect("utf-8"),
        ])
        .output()
        .expect("cp");
    assert!(cp.status.success(), "{}", text_of(&cp));
    copy
}

fn write_sums_again(dir: &Path) {
    let run = bash(
        dir,
        "t=$(mktemp); find . -type f ! -path ./SHA256SUMS | sed 's|^\\./||' | LC_ALL=C sort | while read -r f; do sha256sum \"$f\"; done > \"$t\"; mv \"$t\" SHA256SUMS",
    );
    assert!(run.status.success(), "{}", text_of(&run));
}

fn sha256_of(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

fn chain_file(dir: &Path, sequence: u64) -> std::path::PathBuf {
    dir.join(format!("store/_patchtrail/chain/{sequence:012}.json"))
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).expect("read")).expect("json")
}

/// Writes `value` as the manifest entry `sequence` commits, and the entry with its new SHA-256:
/// a rewrite consistent with itself, as a forger with the pack in hand would make it.
fn rewrite_run(dir: &Path, sequence: u64, manifest: &Value) {
    let mut entry = read_json(&chain_file(dir, sequence));
    let key = entry["manifest_key"].as_str().expect("key").to_string();
    let bytes = serde_json::to_vec(manifest).expect("json");
    entry["manifest_sha256"] = json!(sha256_of(&bytes));
    std::fs::write(dir.join("store").join(&key), bytes).expect("manifest");
    std::fs::write(
        chain_file(dir, sequence),
        serde_json::to_vec(&entry).expect("json"),
    )
    .expect("entry");
}

#[test]
fn an_evidence_pack_checks_out_with_sha256sum_and_jq_alone_and_tampering_shows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = history(dir.path());
    let waivers = dir.path().join("waivers.toml");
    std::fs::write(&waivers, WAIVERS).expect("waivers");
    // A policy file with the waiver file's name: both go in.
    let policy_dir = dir.path().join("policy");
    std::fs::create_dir(&policy_dir).expect("mkdir");
    let policy = policy_dir.join("waivers.toml");
    std::fs::write(&policy, "[severity]\ncritical = 30\n").expect("policy");
    let zip = dir.path().join("pack.zip");
    // The head a commit printed before the audit, given back to the pack.
    let verified = ok(Command::new(patchtrail_bin())
        .args(["verify", "--store", &store])
        .output()
        .expect("verify"));
    let earlier = verified
        .lines()
        .find_map(|l| l.strip_prefix("head"))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("a head witness in {verified}"))
        .to_string();
    let args = [
        "evidence",
        "--store",
        &store,
        "--as-of",
        "2026-02-28",
        "--tz",
        "Asia/Tokyo",
        "--waivers",
        waivers.to_str().expect("utf-8"),
        "--policy",
        policy.to_str().expect("utf-8"),
        "--expect-head",
        &earlier,
        "--out",
        zip.to_str().expect("utf-8"),
    ];
    let out = ok(Command::new(patchtrail_bin())
        .args(args)
        .output()
        .expect("evidence"));
    assert!(out.contains("4 runs, 6 findings"), "{out}");
    let printed = |label: &str| -> String {
        out.lines()
            .find_map(|l| l.strip_prefix(label))
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no {label} line in {out}"))
            .to_string()
    };
    let (pack_sha, head) = (printed("sha256 "), printed("head "));
    assert_eq!(pack_sha, sha256_of(&std::fs::read(&zip).expect("zip")));
    // Never overwritten.
    let again = Command::new(patchtrail_bin())
        .args(args)
        .output()
        .expect("evidence");
    assert_eq!(again.status.code(), Some(2), "{}", text_of(&again));

    let unpacked = dir.path().join("unpacked");
    let unzip = Command::new("unzip")
        .args([
            "-q",
            zip.to_str().expect("utf-8"),
            "-d",
            unpacked.to_str().expect("utf-8"),
        ])
        .output()
        .expect("unzip (installed by scripts/test)");
    assert!(unzip.status.success(), "{}", text_of(&unzip));
    let pack = unpacked.join("evidence");
    let readme = std::fs::read_to_string(pack.join("README.txt")).expect("README.txt");
    assert!(
        readme
            .lines()
            .next()
            .is_some_and(|l| l.contains("time zone Asia/Tokyo")),
        "{readme}"
    );
    assert!(
        readme.contains(&format!("--expect-head: {earlier}")),
        "{readme}"
    );
    let steps = readme_checks(&readme);
    assert_eq!(
        steps.keys().copied().collect::<Vec<_>>(),
        (1..=8).collect::<Vec<_>>(),
        "{readme}"
    );
    let zip_path = zip.to_str().expect("utf-8").to_string();
    let env = [
        ("PACK", zip_path.as_str()),
        ("PACK_SHA256", pack_sha.as_str()),
        ("HEAD", head.as_str()),
        ("EARLIER", earlier.as_str()),
    ];
    let passes = |dir: &Path, step: u32| bash_with(dir, &steps[&step], &env).status.success();
    for (n, step) in &steps {
        let run = bash_with(&pack, step, &env);
        assert!(run.status.success(), "step {n}: {step}\n{}", text_of(&run));
    }
    // Step 4 followed the whole chain, step 8 checked eight data objects (a patches and an
    // instances object of each run the reports read).
    let entries = std::fs::read_dir(pack.join("store/_patchtrail/chain"))
        .expect("chain")
        .count();
    assert!(
        text(&bash_with(&pack, &steps[&4], &env).stdout)
            .contains(&format!("entries 1 to {entries}")),
    );
    assert_eq!(
        text(&bash_with(&pack, &steps[&8], &env).stdout)
            .matches(": OK")
            .count(),
        8
    );
    for file in [
        "reports/summary.xlsx",
        "reports/exposure.html",
        "reports/exposure-cves.csv",
        "reports/sla-waivers.csv",
        "runs.csv",
        "verify.txt",
        "judgments/waivers/waivers.toml",
        "judgments/policy/waivers.toml",
    ] {
        assert!(pack.join(file).is_file(), "{file}");
    }
    let sla = std::fs::read_to_string(pack.join("reports/sla.csv")).expect("sla.csv");
    assert!(sla.contains(",breached,") && sla.contains("DEV"), "{sla}");
    let verify = std::fs::read_to_string(pack.join("verify.txt")).expect("verify.txt");
    assert!(verify.contains("verified 4 runs"), "{verify}");

    // Forgeries, each on its own copy of the pack, each caught by the step named.
    // An added file: step 1 (sha256sum -c alone never looks at files it does not list).
    let added = forge(&pack, "added");
    std::fs::write(added.join("reports/extra.csv"), "instance_id\ni-0forged\n").expect("add");
    assert!(passes(&added, 2) && !passes(&added, 1));

    // A report changed and SHA256SUMS written again: steps 1 and 2 pass, the pack is another
    // file than the one whose SHA-256 was given (step 3).
    let resummed = forge(&pack, "resummed");
    let csv = resummed.join("reports/sla.csv");
    let changed = std::fs::read_to_string(&csv)
        .expect("csv")
        .replace(",breached,", ",fixed_in_time,");
    std::fs::write(&csv, changed).expect("write");
    write_sums_again(&resummed);
    assert!(passes(&resummed, 1) && passes(&resummed, 2));
    let forged_zip = dir.path().join("forged.zip");
    let rezip = Command::new("python3")
        .args([
            "-c",
            "import os, sys, zipfile\nz = zipfile.ZipFile(sys.argv[2], 'w')\nfor d, _, fs in os.walk(sys.argv[1]):\n    for f in fs:\n        p = os.path.join(d, f)\n        z.write(p, os.path.join('evidence', os.path.relpath(p, sys.argv[1])))\nz.close()",
            resummed.to_str().expect("utf-8"),
            forged_zip.to_str().expect("utf-8"),
        ])
        .output()
        .expect("python3");
    assert!(rezip.status.success(), "{}", text_of(&rezip));
    let forged_path = forged_zip.to_str().expect("utf-8");
    let step3 = bash_with(
        &resummed,
        &steps[&3],
        &[("PACK", forged_path), ("PACK_SHA256", pack_sha.as_str())],
    );
    assert!(!step3.status.success(), "{}", text_of(&step3));

    // A run rewritten in the middle of the chain, consistently (data, manifest, chain entry,
    // SHA256SUMS): the next manifest's link breaks (step 4), and a head kept from before it no
    // longer matches (step 6) when it named that entry.
    let middle = forge(&pack, "middle");
    let mut m1 = read_json(
        &middle.join("store").join(
            read_json(&chain_file(&middle, 1))["manifest_key"]
                .as_str()
                .expect("key"),
        ),
    );
    m1["counts"]["instances"] = json!(1);
    rewrite_run(&middle, 1, &m1);
    write_sums_again(&middle);
    assert!(passes(&middle, 1) && passes(&middle, 2) && passes(&middle, 5));
    assert!(!passes(&middle, 4));
    let earlier_1 = format!(
        "1:{}",
        sha256_of(&std::fs::read(chain_file(&pack, 1)).expect("entry"))
    );
    let step6 = |dir: &Path, w: &str| {
        bash_with(dir, &steps[&6], &[("EARLIER", w)])
            .status
            .success()
    };
    assert!(step6(&pack, &earlier_1) && !step6(&middle, &earlier_1));

    // The newest run rewritten consistently: every link holds, the head differs (step 5).
    let newest = forge(&pack, "newest");
    let last = entries as u64;
    let mut mn = read_json(
        &newest.join("store").join(
            read_json(&chain_file(&newest, last))["manifest_key"]
                .as_str()
                .expect("key"),
        ),
    );
    mn["counts"]["instances"] = json!(1);
    rewrite_run(&newest, last, &mn);
    write_sums_again(&newest);
    assert!(passes(&newest, 1) && passes(&newest, 2) && passes(&newest, 4));
    assert!(!passes(&newest, 5));

    // A forged run added after the newest, linked properly, in runs.csv and SHA256SUMS: the
    // chain links up (step 4) and runs.csv agrees (step 7), but it ends at another head (step 5).
    let appended = forge(&pack, "appended");
    let prev_entry = read_json(&chain_file(&appended, last));
    let prev_key = prev_entry["manifest_key"]
        .as_str()
        .expect("key")
        .to_string();
    let prev_bytes = std::fs::read(appended.join("store").join(&prev_key)).expect("manifest");
    let mut forged = read_json(&appended.join("store").join(&prev_key));
    let forged_key = prev_key.replace(".json", "-forged.json");
    forged["sequence"] = json!(last + 1);
    forged["run_id"] = json!("forged-run");
    forged["previous"] = json!({"key": prev_key, "sha256": sha256_of(&prev_bytes)});
    let forged_bytes = serde_json::to_vec(&forged).expect("json");
    std::fs::write(appended.join("store").join(&forged_key), &forged_bytes).expect("manifest");
    let mut entry = prev_entry.clone();
    entry["sequence"] = json!(last + 1);
    entry["run_id"] = json!("forged-run");
    entry["manifest_key"] = json!(forged_key);
    entry["manifest_sha256"] = json!(sha256_of(&forged_bytes));
    std::fs::write(
        chain_file(&appended, last + 1),
        serde_json::to_vec(&entry).expect("json"),
    )
    .expect("entry");
    let runs = appended.join("runs.csv");
    let mut rows = std::fs::read_to_string(&runs).expect("runs.csv");
    rows.push_str(&format!(
        "forged-run,{ACCOUNT},us-east-1,2026-02-27T06:00:00Z,2026-02-27T06:05:00Z,{forged_key},{},{}\n",
        sha256_of(&forged_bytes),
        last + 1
    ));
    std::fs::write(&runs, rows).expect("runs.csv");
    write_sums_again(&appended);
    for step in [1, 2, 4, 7] {
        assert!(passes(&appended, step), "step {step} of the appended pack");
    }
    assert!(!passes(&appended, 5));

    // runs.csv naming another manifest hash than the chain's: step 7.
    let recsv = forge(&pack, "recsv");
    let runs = recsv.join("runs.csv");
    let rows = std::fs::read_to_string(&runs).expect("runs.csv");
    let sha = rows
        .lines()
        .nth(1)
        .and_then(|l| l.split(',').nth(6))
        .expect("a manifest sha")
        .to_string();
    std::fs::write(&runs, rows.replacen(&sha, &"0".repeat(64), 1)).expect("runs.csv");
    write_sums_again(&recsv);
    assert!(passes(&recsv, 1) && passes(&recsv, 2) && !passes(&recsv, 7));

    // A changed data object fails step 8 (and step 2).
    let data_copy = forge(&pack, "data");
    let data = walk(&data_copy.join("store/patches"))
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "parquet"))
        .expect("a data object");
    let mut bytes = std::fs::read(&data).expect("read");
    bytes[10] ^= 1;
    std::fs::write(&data, bytes).expect("tamper");
    assert!(!passes(&data_copy, 8) && !passes(&data_copy, 2));
}

#[test]
fn an_evidence_pack_names_its_provenance_and_is_made_again_byte_for_byte() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = history(dir.path());
    let kev = dir.path().join("kev.json");
    std::fs::write(&kev, KEV).expect("kev");
    let make = |name: &str, epoch: &str| -> std::process::Output {
        let out = dir.path().join(name);
        Command::new(patchtrail_bin())
            .args([
                "evidence",
                "--store",
                &store,
                "--as-of",
                "2026-02-28",
                "--tz",
                "Asia/Tokyo",
                "--kev",
                kev.to_str().expect("utf-8"),
                "--out",
                out.to_str().expect("utf-8"),
            ])
            .env("SOURCE_DATE_EPOCH", epoch)
            .output()
            .expect("evidence")
    };
    // 2026-03-01T00:00:00Z; a second apart on the wall clock, the same clock given.
    ok(make("first.zip", "1772323200"));
    std::thread::sleep(std::time::Duration::from_millis(1_100));
    ok(make("second.zip", "1772323200"));
    let read = |name: &str| std::fs::read(dir.path().join(name)).expect("pack");
    assert!(
        read("first.zip") == read("second.zip"),
        "two packs of one store, options and clock differ"
    );

    // Each report's provenance names the report, the zone, the commit and when it ran.
    let unpacked = dir.path().join("unpacked");
    let unzip = Command::new("unzip")
        .args([
            "-q",
            dir.path().join("first.zip").to_str().expect("utf-8"),
            "-d",
        ])
        .arg(&unpacked)
        .output()
        .expect("unzip (installed by scripts/test)");
    assert!(unzip.status.success(), "{}", text_of(&unzip));
    let mut titles = std::collections::BTreeSet::new();
    for report in ["summary", "sla", "exposure"] {
        let csv = std::fs::read_to_string(
            unpacked.join(format!("evidence/reports/{report}-provenance.csv")),
        )
        .expect("provenance csv");
        let item = |name: &str| {
            csv.lines()
                .find_map(|l| l.strip_prefix(&format!("{name},")))
                .unwrap_or_else(|| panic!("no {name} in {csv}"))
                .to_string()
        };
        assert_eq!(item("time_zone"), "Asia/Tokyo");
        assert_eq!(item("generated_at"), "2026-03-01T00:00:00.000000Z");
        assert!(item("tool").contains("(commit "), "{csv}");
        assert!(item("kev").contains("version 2026.03.20"), "{csv}");
        titles.insert(item("report"));
    }
    // Each names its own report.
    assert_eq!(titles.len(), 3, "{titles:?}");
    assert!(titles.contains("Patch SLA as of 2026-02-28"), "{titles:?}");
    // The KEV catalog applied goes in as given.
    assert_eq!(
        std::fs::read_to_string(unpacked.join("evidence/judgments/kev/kev.json")).expect("kev"),
        KEV
    );
    let readme = std::fs::read_to_string(unpacked.join("evidence/README.txt")).expect("README");
    assert!(
        readme.contains("at 2026-03-01T00:00:00.000000Z"),
        "{readme}"
    );

    // A clock that is not one is refused, and no pack is written.
    let bad = make("bad.zip", "yesterday");
    assert_eq!(bad.status.code(), Some(2), "{}", text_of(&bad));
    assert!(text_of(&bad).contains("SOURCE_DATE_EPOCH='yesterday'"));
    assert!(!dir.path().join("bad.zip").exists());
}

#[test]
fn text_from_aws_reaches_a_person_as_text_in_every_format() {
    // Whoever can tag an instance names it: an escape sequence that retitles the terminal and
    // clears the screen, HTML, a right-to-left override, and a formula in full-width signs.
    let hostile = "\u{1b}]0;pwned\u{7}\u{1b}[2J<img src=x onerror=alert(1)>\u{202E}txt.exe";
    let formula = "＝HYPERLINK(\"http://x\")";
    let dir = tempfile::tempdir().expect("tempdir");
    let mut a = instance(
        "i-00000000000000001",
        "prod",
        "2026-01-05T03:00:00Z",
        vec![],
    );
    a["name"] = json!(hostile);
    let mut b = instance(
        "i-00000000000000002",
        "prod",
        "2026-01-05T03:00:00Z",
        vec![],
    );
    b["name"] = json!(formula);
    let line = json!({"snapshot_time": "2026-01-05T06:00:00Z", "account_id": ACCOUNT,
                      "region": "us-east-1", "instances": [a, b]});
    let input = dir.path().join("hostile.jsonl");
    std::fs::write(&input, line.to_string() + "\n").expect("write");
    let store = dir.path().join("store");
    let store = store.to_str().expect("utf-8");
    ok(Command::new(patchtrail_bin())
        .args(["import", input.to_str().expect("utf-8"), "--store", store])
        .output()
        .expect("import"));
    let raw = |format: &str| -> Vec<u8> {
        let out = Command::new(patchtrail_bin())
            .args([
                "report",
                "summary",
                "--store",
                store,
                "--as-of",
                "2026-01-06",
            ])
            .args(["--format", format])
            .output()
            .expect("report");
        assert!(out.status.success(), "{format}: {}", text_of(&out));
        out.stdout
    };
    let shown = |format: &str| String::from_utf8(raw(format)).expect("utf-8");
    let overridden = |s: &str| s.contains('\u{202E}');

    // The terminal gets no control character, and sees each one.
    let table = shown("table");
    assert!(
        !table.contains(['\u{1b}', '\u{7}']) && !overridden(&table),
        "{table:?}"
    );
    assert!(
        table.contains("␛]0;pwned␇␛[2J") && table.contains("[U+202E]txt.exe"),
        "{table}"
    );
    // Markdown shows the HTML as text.
    let md = shown("markdown");
    assert!(
        !md.contains("<img") && md.contains("&lt;img src=x onerror=alert(1)&gt;"),
        "{md}"
    );
    assert!(
        !md.contains('\u{1b}') && !overridden(&md) && md.contains("[U+202E]"),
        "{md}"
    );
    // CSV: no formula, full-width or not, and the override visible.
    let csv = shown("csv");
    assert!(
        csv.contains("'＝HYPERLINK") && !overridden(&csv) && csv.contains("[U+202E]"),
        "{csv}"
    );
    // HTML: escaped by its template, the override visible.
    let html = shown("html");
    assert!(!html.contains("<img src=x") && !overridden(&html) && html.contains("[U+202E]txt.exe"));
    // JSON keeps the exact value, the override written as an escape.
    let json_text = shown("json");
    assert!(
        !overridden(&json_text) && json_text.contains("\\u202e"),
        "{json_text}"
    );
    let (_, rows) = run_json(&[
        "report",
        "summary",
        "--store",
        store,
        "--as-of",
        "2026-01-06",
    ]);
    let names: Vec<&str> = rows.iter().filter_map(|r| r["name"].as_str()).collect();
    assert!(
        names.contains(&hostile) && names.contains(&formula),
        "{names:?}"
    );
    // XLSX: the workbook's strings show the override too.
    let book = dir.path().join("summary.xlsx");
    std::fs::write(&book, raw("xlsx")).expect("xlsx");
    let strings = Command::new("unzip")
        .args(["-p", book.to_str().expect("utf-8"), "xl/sharedStrings.xml"])
        .output()
        .expect("unzip");
    let strings = text(&strings.stdout);
    assert!(
        !overridden(&strings) && strings.contains("[U+202E]txt.exe"),
        "{strings}"
    );
}

/// CISA's feed shape (catalogVersion, dateReleased, vulnerabilities of cveID, dateAdded, dueDate,
/// knownRansomwareCampaignUse), generated here, never fetched.
const KEV: &str = r#"{"title": "CISA Catalog of Known Exploited Vulnerabilities",
  "catalogVersion": "2026.03.20", "dateReleased": "2026-03-20T17:00:00.0000Z", "count": 2,
  "vulnerabilities": [
    {"cveID": "CVE-2026-1111", "vendorProject": "Example", "product": "Server", "vulnerabilityName": "x",
     "dateAdded": "2026-02-24", "shortDescription": "x", "requiredAction": "Apply updates.",
     "dueDate": "2026-03-10", "knownRansomwareCampaignUse": "Known", "notes": "", "cwes": []},
    {"cveID": "CVE-2026-2222", "dateAdded": "2026-03-01", "dueDate": "2026-12-31",
     "knownRansomwareCampaignUse": "Unknown"}]}"#;

#[test]
fn sla_counts_from_release_dates_and_kev_due_dates() {
    // Four weekly runs, 06:00 UTC, 2026-03-02 .. 03-23. Worked by hand from §8.3:
    // - 01 KB10 critical, released 02-10 18:00, missing throughout: the default counts critical
    //   from release, due 03-12 18:00; open at the end of 03-23 past it: breached (21.75 days
    //   after first_seen, which would still be open counted from first_seen).
    // - 01 KB11 high, released 01-01: the default counts high from first_seen: due 04-01 06:00.
    // - 02 KB12 critical without a release date: from first_seen, due 04-01 06:00, open.
    // - 02 KB13 medium, CVE-2026-1111 (KEV due 03-10), fixed in run 3 (03-16 06:00): due the end
    //   of 03-10, before medium's 90 days: fixed_late by the clock kev.
    // - 02 KB14 low, CVE-2026-2222 (KEV due 12-31, later than low's 180 days): first_seen.
    let dir = tempfile::tempdir().expect("tempdir");
    let released = |p: &mut Value, at: &str| p["release_date"] = json!(at);
    let runs: Vec<String> = ["02", "09", "16", "23"]
        .iter()
        .enumerate()
        .map(|(n, day)| {
            let scan = format!("2026-03-{day}T03:00:00Z");
            let mut kb10 = patch("KB10", "Critical", "SecurityUpdates", "Missing", None);
            released(&mut kb10, "2026-02-10T18:00:00Z");
            let mut kb11 = patch("KB11", "Important", "SecurityUpdates", "Missing", None);
            released(&mut kb11, "2026-01-01T00:00:00Z");
            let kb13 = if n < 2 {
                patch(
                    "KB13",
                    "Moderate",
                    "SecurityUpdates",
                    "Missing",
                    Some("CVE-2026-1111"),
                )
            } else {
                patch("KB13", "Moderate", "SecurityUpdates", "Installed", None)
            };
            json!({"snapshot_time": format!("2026-03-{day}T06:00:00Z"), "account_id": ACCOUNT,
               "region": "us-east-1", "instances": [
            instance("i-00000000000000001", "prod", &scan, vec![kb10, kb11]),
            instance("i-00000000000000002", "prod", &scan, vec![
                patch("KB12", "Critical", "SecurityUpdates", "Missing", None),
                kb13,
                patch("KB14", "Low", "SecurityUpdates", "Missing", Some("cve-2026-2222")),
            ])]})
            .to_string()
        })
        .collect();
    let input = dir.path().join("runs.jsonl");
    std::fs::write(&input, runs.join("\n") + "\n").expect("write");
    let store = dir.path().join("store");
    let store = store.to_str().expect("utf-8");
    ok(Command::new(patchtrail_bin())
        .args(["import", input.to_str().expect("utf-8"), "--store", store])
        .output()
        .expect("import"));
    let kev = dir.path().join("kev.json");
    std::fs::write(&kev, KEV).expect("kev");
    let kev = kev.to_str().expect("utf-8");
    let asked = ["--store", store, "--as-of", "2026-03-23", "--kev", kev];
    let (notes, rows) = run_json(&[&["report", "sla"][..], &asked].concat());
    let row = |kb: &str| {
        let id = if kb == "KB10" || kb == "KB11" {
            "i-00000000000000001"
        } else {
            "i-00000000000000002"
        };
        find(&rows, id, kb).clone()
    };
    let shows = |kb: &str, status: &str, clock: &str, limit: i64, due: &str| {
        let r = row(kb);
        assert_eq!(
            (
                r["status"].as_str(),
                r["clock"].as_str(),
                r["limit_days"].as_i64(),
                r["due_at"].as_str()
            ),
            (Some(status), Some(clock), Some(limit), Some(due)),
            "{kb}: {r}"
        );
    };
    shows("KB10", "breached", "released", 30, "2026-03-12T18:00:00Z");
    shows("KB11", "open", "first_seen", 30, "2026-04-01T06:00:00Z");
    shows("KB12", "open", "first_seen", 30, "2026-04-01T06:00:00Z");
    shows(
        "KB13",
        "fixed_late",
        "kev",
        90,
        "2026-03-10T23:59:59.999999Z",
    );
    shows("KB14", "open", "first_seen", 180, "2026-08-29T06:00:00Z");
    assert_eq!(row("KB10")["release_date"], "2026-02-10T18:00:00Z");
    assert_eq!(row("KB12")["release_date"], Value::Null);
    let kev_of = |kb: &str| {
        let r = row(kb);
        (
            r["kev_cves"].clone(),
            r["kev_due_date"].clone(),
            r["kev_ransomware"].clone(),
        )
    };
    assert_eq!(
        kev_of("KB13"),
        (json!("CVE-2026-1111"), json!("2026-03-10"), json!("Known"))
    );
    assert_eq!(
        kev_of("KB14"),
        (
            json!("CVE-2026-2222"),
            json!("2026-12-31"),
            json!("Unknown")
        )
    );
    assert_eq!(kev_of("KB12"), (Value::Null, Value::Null, Value::Null));
    assert!(
        notes
            .iter()
            .any(|n| n.contains("KEV catalog") && n.contains("version 2026.03.20")),
        "{notes:?}"
    );
    // The provenance names the catalog too.
    let (_, items) = run_json(&[&["report", "sla", "--table", "provenance"][..], &asked].concat());
    assert!(items.iter().any(|i| i["item"] == "kev"), "{items:?}");

    // A policy that counts high from release: KB11 (released 01-01) was due 01-15.
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        "[severity]\nhigh = { days = 14, from = \"released\" }\n",
    )
    .expect("policy");
    let (_, rows) = run_json(
        &[
            &["report", "sla", "--policy", policy.to_str().expect("utf-8")][..],
            &asked[..4],
        ]
        .concat(),
    );
    let r = find(&rows, "i-00000000000000001", "KB11");
    assert_eq!(
        (r["status"].as_str(), r["clock"].as_str()),
        (Some("breached"), Some("released")),
        "{r}"
    );
    // Without the catalog, KB13 counts from first_seen and was fixed in time.
    let r = find(&rows, "i-00000000000000002", "KB13");
    assert_eq!(
        (r["status"].as_str(), r["clock"].as_str()),
        (Some("fixed_in_time"), Some("first_seen")),
        "{r}"
    );

    // A catalog that is not one is refused, naming the file and the entry.
    let bad = dir.path().join("bad-kev.json");
    std::fs::write(&bad, r#"{"vulnerabilities": [{"cveID": "CVE-2026-1111", "dateAdded": "2026-02-24", "dueDate": "next week"}]}"#).expect("bad");
    let out = Command::new(patchtrail_bin())
        .args([
            "report",
            "sla",
            "--store",
            store,
            "--kev",
            bad.to_str().expect("utf-8"),
        ])
        .output()
        .expect("sla");
    assert_eq!(out.status.code(), Some(2), "{}", text_of(&out));
    let err = text_of(&out);
    assert!(
        err.contains("bad-kev.json") && err.contains("CVE-2026-1111: dueDate"),
        "{err}"
    );
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
}

#[test]
fn every_report_states_its_instants_its_runs_and_how_they_were_collected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = history(dir.path());
    let asked = [
        "--store",
        &store,
        "--as-of",
        "2026-02-28",
        "--tz",
        "Asia/Tokyo",
    ];
    let (_, items) =
        run_json(&[&["report", "summary", "--table", "provenance"][..], &asked].concat());
    let item = |name: &str| {
        items
            .iter()
            .find(|r| r["item"] == name)
            .map(|r| r["value"].as_str().unwrap_or("").to_string())
            .unwrap_or_default()
    };
    // The end of 2026-02-28 in Tokyo, in UTC.
    assert_eq!(item("as_of"), "2026-02-28T14:59:59.999999Z");
    assert_eq!(item("time_zone"), "Asia/Tokyo");
    assert_eq!(item("stale_days"), "14");
    assert!(item("tool").starts_with("patchtrail "), "{items:?}");
    // As of then, the summary read the fourth run only; the SLA every run in force.
    let (_, used) =
        run_json(&[&["report", "summary", "--table", "runs_used"][..], &asked].concat());
    assert_eq!(used.len(), 1, "{used:?}");
    let run = &used[0];
    assert_eq!(run["source"], "imported");
    let manifest = Path::new(&store).join(run["manifest_key"].as_str().unwrap_or_default());
    let sha = Command::new("sha256sum")
        .arg(&manifest)
        .output()
        .expect("sha256sum");
    assert_eq!(
        text(&sha.stdout).split_whitespace().next(),
        run["manifest_sha256"].as_str()
    );
    let (_, used) = run_json(&[&["report", "sla", "--table", "runs_used"][..], &asked].concat());
    assert_eq!(used.len(), 4);

    // A collected run and an imported one of the same scope: the diff says their settings differ.
    let sim = start_sim(&["--instances", "10", "--seed", "3"]);
    let mixed = dir.path().join("mixed");
    let m = mixed.to_str().expect("utf-8");
    ok(patchtrail(&sim.url, &["collect", "--store", m]));
    let later = chrono::Utc::now() + chrono::Duration::seconds(2);
    let line = json!({"snapshot_time": later.to_rfc3339(), "account_id": "123456789012",
        "region": "us-east-1", "instances": [instance("i-0000000000000000d", "prod",
        &(later - chrono::Duration::hours(1)).to_rfc3339(), vec![])]});
    let input = dir.path().join("later.jsonl");
    std::fs::write(&input, line.to_string() + "\n").expect("write");
    ok(Command::new(patchtrail_bin())
        .args(["import", input.to_str().expect("utf-8"), "--store", m])
        .output()
        .expect("import"));
    let (from, to) = (
        (later - chrono::Duration::seconds(1)).to_rfc3339(),
        (later + chrono::Duration::seconds(1)).to_rfc3339(),
    );
    let (notes, _) = run_json(&["report", "diff", "--store", m, "--from", &from, "--to", &to]);
    assert!(
        notes.iter().any(|n| n.contains("different settings")
            && n.contains("classifications Security,CriticalUpdates,SecurityUpdates")),
        "{notes:?}"
    );
    let (_, used) = run_json(&[
        "report",
        "diff",
        "--store",
        m,
        "--from",
        &from,
        "--to",
        &to,
        "--table",
        "runs_used",
    ]);
    let sources: Vec<&str> = used
        .iter()
        .map(|r| r["source"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(sources, ["collected", "imported"]);
}

fn text_of(out: &std::process::Output) -> String {
    format!("{}{}", text(&out.stdout), text(&out.stderr))
}

/// Runs `patchtrail` (no AWS) and returns its output.
fn run(args: &[&str]) -> std::process::Output {
    Command::new(patchtrail_bin())
        .args(args)
        .output()
        .expect("run patchtrail")
}

/// The event of `class` (a file name's class) for `kb`, from JSON lines in `dir`.
fn ocsf_event(dir: &Path, class: &str, instance: &str, kb: &str) -> Option<Value> {
    let file = walk(dir).into_iter().find(|p| {
        p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with(class))
    })?;
    std::fs::read_to_string(file)
        .ok()?
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|e| {
            e["unmapped"]["patchtrail.instance_id"] == instance
                && e["finding_info"]["title"]
                    .as_str()
                    .is_some_and(|t| t.starts_with(&format!("{kb} ")))
        })
}

#[test]
fn ocsf_events_are_valid_ocsf_1_1_0_and_security_lake_reads_their_types() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = history(dir.path());
    let waivers = dir.path().join("waivers.toml");
    std::fs::write(&waivers, WAIVERS).expect("waivers");
    let (jsonl, parquet) = (dir.path().join("jsonl"), dir.path().join("parquet"));
    for (format, out) in [("jsonl", &jsonl), ("parquet", &parquet)] {
        let args = [
            "export",
            "ocsf",
            "--store",
            &store,
            "--as-of",
            "2026-02-28",
            "--waivers",
            waivers.to_str().expect("utf-8"),
            "--format",
            format,
            "--out",
            out.to_str().expect("utf-8"),
        ];
        let done = run(&args);
        assert!(done.status.success(), "{}", text_of(&done));
        // Once written, the same export is refused rather than overwritten.
        let again = run(&args);
        assert_eq!(again.status.code(), Some(2), "{}", text_of(&again));
        assert!(
            text(&again.stderr).contains("exists already"),
            "{}",
            text_of(&again)
        );
    }

    // The six findings of the SLA test above, worked by hand: four name CVEs.
    let event = |class: &str, instance: &str, kb: &str| {
        ocsf_event(&jsonl, class, instance, kb)
            .unwrap_or_else(|| panic!("no {class} event for {instance} {kb}"))
    };
    let (a, b, c) = (
        "i-0000000000000000a",
        "i-0000000000000000b",
        "i-0000000000000000c",
    );
    let expect = |e: &Value, fields: &[(&str, Value)]| {
        for (pointer, want) in fields {
            assert_eq!(e.pointer(pointer), Some(want), "{pointer} in {e:#}");
        }
    };
    // KB1: fixed, late: closed at 2026-02-23T06:00Z, a failed verdict.
    let kb1 = event("compliance_finding", a, "KB1");
    expect(
        &kb1,
        &[
            ("/class_uid", json!(2003)),
            ("/activity_id", json!(3)),
            ("/type_uid", json!(200303)),
            ("/status_id", json!(4)),
            ("/severity_id", json!(5)),
            ("/time", json!(1_771_826_400_000_i64)),
            (
                "/finding_info/first_seen_time",
                json!(1_767_592_800_000_i64),
            ),
            ("/finding_info/last_seen_time", json!(1_768_802_400_000_i64)),
            ("/compliance/status_id", json!(3)),
            ("/compliance/status_detail", json!("fixed_late")),
            ("/compliance/standards", json!(["PCI DSS v4.0.1"])),
            (
                "/resource/uid",
                json!(format!("arn:aws:ec2:us-east-1:{ACCOUNT}:instance/{a}")),
            ),
            ("/cloud/account/uid", json!(ACCOUNT)),
        ],
    );
    let kb1_vulnerability = event("vulnerability_finding", a, "KB1");
    assert_eq!(
        kb1_vulnerability["finding_info"]["uid"],
        kb1["finding_info"]["uid"]
    );
    expect(
        &kb1_vulnerability,
        &[
            ("/class_uid", json!(2002)),
            ("/vulnerabilities/0/cve/uid", json!("CVE-2026-0001")),
        ],
    );
    // KB2 names two CVEs: one vulnerability each; fixed in time.
    let kb2 = event("vulnerability_finding", a, "KB2");
    let cves: Vec<&Value> = kb2["vulnerabilities"]
        .as_array()
        .expect("vulnerabilities")
        .iter()
        .map(|v| &v["cve"]["uid"])
        .collect();
    assert_eq!(cves, [&json!("CVE-2026-0001"), &json!("CVE-2026-0002")]);
    expect(
        &event("compliance_finding", a, "KB2"),
        &[("/compliance/status_id", json!(1))],
    );
    // KB6: open and breached, seen again since it began: an update, a failure, not waived (its
    // waiver expired).
    expect(
        &event("compliance_finding", a, "KB6"),
        &[
            ("/activity_id", json!(2)),
            ("/status_id", json!(1)),
            ("/compliance/status_id", json!(3)),
            ("/unmapped/patchtrail.sla_status", json!("breached")),
        ],
    );
    // KB3: open within its limit and waived: suppressed, the waiver named.
    let kb3 = event("compliance_finding", b, "KB3");
    expect(
        &kb3,
        &[
            ("/status_id", json!(3)),
            ("/compliance/status_id", json!(2)),
            ("/unmapped/patchtrail.waiver", json!("DEV")),
        ],
    );
    assert!(
        kb3["comment"]
            .as_str()
            .is_some_and(|c| c.contains("ciso@example.com"))
    );
    assert!(
        ocsf_event(&jsonl, "vulnerability_finding", b, "KB3").is_none(),
        "KB3 names no CVE"
    );
    // KB4 (instance gone) and KB5 (no longer reported): closed without a verdict.
    for (instance, kb) in [(c, "KB4"), (a, "KB5")] {
        expect(
            &event("compliance_finding", instance, kb),
            &[
                ("/activity_id", json!(3)),
                ("/compliance/status_id", json!(0)),
            ],
        );
    }

    // OCSF's own schema and DuckDB, reading the Parquet tree as Security Lake does.
    let check = py_json(
        "http://127.0.0.1:9",
        "ocsf_check.py",
        &[
            jsonl.to_str().expect("utf-8"),
            parquet.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(check["error_count"], 0, "{check:#}");
    assert_eq!(check["events"]["compliance_finding"], 6, "{check}");
    assert_eq!(check["events"]["vulnerability_finding"], 4, "{check}");
    assert_eq!(check["parquet_rows"]["compliance_finding"], 6, "{check}");
    let types = &check["types"]["compliance_finding"];
    for (column, want) in [
        ("time", "BIGINT"),
        ("class_uid", "INTEGER"),
        ("type_uid", "BIGINT"),
        ("severity_id", "INTEGER"),
        ("unmapped", "MAP(VARCHAR, VARCHAR)"),
    ] {
        assert_eq!(types[column], want, "{column}: {types:#}");
    }
    assert!(
        types["compliance"]
            .as_str()
            .is_some_and(|t| t.starts_with("STRUCT(standards VARCHAR[]")),
        "{types:#}"
    );

    // The checker sees a broken event: one without its finding's id, one with an attribute
    // OCSF does not define, and one whose time is text.
    let broken = dir.path().join("broken");
    std::fs::create_dir(&broken).expect("mkdir");
    let mut first = kb1.clone();
    first["finding_info"]
        .as_object_mut()
        .expect("finding_info")
        .remove("uid");
    let mut second = kb1.clone();
    second["patch_sla"] = json!("breached");
    let mut third = kb1;
    third["time"] = json!("2026-02-23");
    let lines: Vec<String> = [first, second, third]
        .iter()
        .map(Value::to_string)
        .collect();
    std::fs::write(broken.join("compliance_finding-x.jsonl"), lines.join("\n")).expect("write");
    let check = py_json(
        "http://127.0.0.1:9",
        "ocsf_check.py",
        &[
            broken.to_str().expect("utf-8"),
            broken.to_str().expect("utf-8"),
        ],
    );
    let errors = check["errors"].to_string();
    for (line, what) in [(1, "uid"), (2, "patch_sla"), (3, "time")] {
        assert!(
            errors.contains(&format!("compliance_finding-x.jsonl:{line}")) && errors.contains(what),
            "line {line} ({what}): {check:#}"
        );
    }
}

#[test]
fn security_hub_exports_update_and_archive_findings_without_duplicates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = history(dir.path());
    let waivers = dir.path().join("waivers.toml");
    std::fs::write(&waivers, WAIVERS).expect("waivers");
    let w = waivers.to_str().expect("utf-8");
    let moto = start_moto();
    let export = |as_of: &str, extra: &[&str]| {
        let args = [
            &[
                "export",
                "security-hub",
                "--store",
                &store,
                "--as-of",
                as_of,
                "--waivers",
                w,
            ][..],
            extra,
        ]
        .concat();
        patchtrail(&moto.url, &args)
    };
    // The findings are account 111111111111's; the caller (moto's default) is another account:
    // without a role to send them from their own account, nothing is sent.
    let refused = export("2026-01-19", &[]);
    assert_eq!(refused.status.code(), Some(2), "{}", text_of(&refused));
    assert!(
        text(&refused.stderr).contains("--role-name"),
        "{}",
        text_of(&refused)
    );

    // The request bodies, as --dry-run writes them, against botocore's model.
    let dry = dir.path().join("dry");
    let out = export(
        "2026-01-19",
        &[
            "--role-name",
            "PatchtrailExport",
            "--dry-run",
            dry.to_str().expect("utf-8"),
        ],
    );
    assert!(out.status.success(), "{}", text_of(&out));
    let files: Vec<String> = walk(&dry)
        .iter()
        .map(|p| p.to_str().expect("utf-8").to_string())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let args: Vec<&str> = ["files"]
        .into_iter()
        .chain(files.iter().map(String::as_str))
        .collect();
    let dry_check = py_json(&moto.url, "securityhub_check.py", &args);
    assert_eq!(dry_check["error_count"], 0, "{dry_check:#}");
    assert_eq!(dry_check["count"], 6, "{dry_check:#}");
    // The model check sees a label outside the enum, a member ASFF does not have, and a missing
    // required member.
    let mut body: Value =
        serde_json::from_str(&std::fs::read_to_string(&files[0]).expect("read")).expect("json");
    let findings = body["Findings"].as_array_mut().expect("findings");
    findings[0]["Severity"]["Label"] = json!("SEVERE");
    findings[1]["PatchSla"] = json!("late");
    findings[2]
        .as_object_mut()
        .expect("finding")
        .remove("GeneratorId");
    let tampered = dir.path().join("tampered.json");
    std::fs::write(&tampered, body.to_string()).expect("write");
    let caught = py_json(
        &moto.url,
        "securityhub_check.py",
        &["files", tampered.to_str().expect("utf-8")],
    );
    let errors = caught["errors"].to_string();
    assert_eq!(caught["error_count"], 3, "{caught:#}");
    for what in ["SEVERE", "PatchSla", "GeneratorId: required"] {
        assert!(errors.contains(what), "{what}: {caught:#}");
    }

    // Two weekly exports into Security Hub: the second updates the first's findings.
    let sent = |as_of: &str| {
        let out = export(as_of, &["--role-name", "PatchtrailExport"]);
        assert!(out.status.success(), "{}", text_of(&out));
        let held = py_json(
            &moto.url,
            "securityhub_check.py",
            &["list", ACCOUNT, "PatchtrailExport"],
        );
        assert_eq!(held["error_count"], 0, "{held:#}");
        held
    };
    let first = sent("2026-01-19");
    let second = sent("2026-02-28");
    assert_eq!(second["count"], 6, "nothing duplicated: {second:#}");
    assert_eq!(second["distinct_ids"], 6, "{second:#}");
    let by_kb = |held: &Value, kb: &str| -> Value {
        held["findings"]
            .as_array()
            .expect("findings")
            .iter()
            .find(|f| f["ProductFields"]["patchtrail/kb_id"] == kb)
            .cloned()
            .unwrap_or_else(|| panic!("no {kb} in {held:#}"))
    };
    // KB1: open on 2026-01-19 (due 2026-02-04), fixed late by 2026-02-28: archived, passed.
    let (kb1_then, kb1_now) = (by_kb(&first, "KB1"), by_kb(&second, "KB1"));
    assert_eq!(kb1_then["Id"], kb1_now["Id"]);
    assert_eq!(
        (&kb1_then["RecordState"], &kb1_then["Compliance"]),
        (&json!("ACTIVE"), &json!("FAILED"))
    );
    assert_eq!(
        (&kb1_now["RecordState"], &kb1_now["Compliance"]),
        (&json!("ARCHIVED"), &json!("PASSED"))
    );
    assert_eq!(
        kb1_now["ProductFields"]["patchtrail/sla_status"],
        "fixed_late"
    );
    assert!(kb1_now["UpdatedAt"].as_str() > kb1_then["UpdatedAt"].as_str());
    assert_eq!(kb1_now["CreatedAt"], "2026-01-05T06:00:00.000Z");
    assert_eq!(kb1_now["Vulnerabilities"], json!(["CVE-2026-0001"]));
    // KB6 still open, breached; KB3 open and waived; KB4's instance gone, KB5 no longer
    // reported: archived without a pass.
    let kb6 = by_kb(&second, "KB6");
    assert_eq!(
        (&kb6["RecordState"], &kb6["Compliance"]),
        (&json!("ACTIVE"), &json!("FAILED"))
    );
    assert_eq!(
        by_kb(&second, "KB3")["ProductFields"]["patchtrail/waiver"],
        "DEV"
    );
    // The instance's patch state in the snapshot in force (its last scan), none once it is gone.
    assert_eq!(
        kb6["PatchSummary"]["OperationEndTime"], "2026-02-23T03:00:00.000Z",
        "{kb6:#}"
    );
    assert!(
        kb6["PatchSummary"].get("MissingCount").is_none(),
        "not given, not sent as 0"
    );
    // (moto keeps members a re-import leaves out: the request itself says KB4's is gone.)
    let later = dir.path().join("later");
    let out = export(
        "2026-02-28",
        &[
            "--role-name",
            "PatchtrailExport",
            "--dry-run",
            later.to_str().expect("utf-8"),
        ],
    );
    assert!(out.status.success(), "{}", text_of(&out));
    let body = read_json(&walk(&later)[0]);
    let kb4 = body["Findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|f| f["ProductFields"]["patchtrail/kb_id"] == "KB4")
        .expect("KB4");
    assert!(kb4.get("PatchSummary").is_none(), "{kb4:#}");
    assert!(
        by_kb(&first, "KB4")["PatchSummary"].is_object(),
        "{first:#}"
    );
    for kb in ["KB4", "KB5"] {
        let f = by_kb(&second, kb);
        assert_eq!(
            (&f["RecordState"], &f["Compliance"]),
            (&json!("ARCHIVED"), &json!("NOT_AVAILABLE")),
            "{kb}"
        );
    }
    // The same as-of again adds nothing.
    assert_eq!(sent("2026-02-28")["count"], 6);
}

#[test]
fn hostile_text_keeps_every_asff_finding_within_security_hubs_limits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let long = "\u{202e}<script>x</script>\n=cmd|'/c calc'!A0 ".repeat(4_000);
    let tags =
        json!({"Name": long, "Owner": "", "": "empty key", "CheckPatch": "true"}).to_string();
    let run = json!({"snapshot_time": "2026-03-02T06:00:00Z", "account_id": ACCOUNT, "region": "us-east-1",
        "instances": [{"instance_id": "i-00000000000000001", "name": long, "last_scan_time": "2026-03-02T03:00:00Z",
            "tags": tags, "patches": [{"kb_id": "KB9", "title": long, "classification": "SecurityUpdates",
            "severity": "Critical", "state": "Missing", "installed_time": null,
            "cve_ids": "CVE-2026-1111"}]}]});
    let input = dir.path().join("hostile.jsonl");
    std::fs::write(&input, format!("{run}\n")).expect("write");
    let store = dir.path().join("store");
    let s = store.to_str().expect("utf-8");
    ok(run_import(&input, s));
    let dry = dir.path().join("dry");
    let out = Command::new(patchtrail_bin())
        .args([
            "export",
            "security-hub",
            "--store",
            s,
            "--as-of",
            "2026-03-03",
        ])
        .args(["--dry-run", dry.to_str().expect("utf-8")])
        .output()
        .expect("export");
    assert!(out.status.success(), "{}", text_of(&out));
    let files: Vec<String> = walk(&dry)
        .iter()
        .map(|p| p.to_str().expect("utf-8").to_string())
        .collect();
    let args: Vec<&str> = ["files"]
        .into_iter()
        .chain(files.iter().map(String::as_str))
        .collect();
    let check = py_json("http://127.0.0.1:9", "securityhub_check.py", &args);
    assert_eq!(check["error_count"], 0, "{check:#}");
    let f = &check["findings"][0];
    assert!(f["Bytes"].as_u64().is_some_and(|b| b < 240_000), "{f}");
    let title = f["Title"].as_str().expect("title");
    assert_eq!(title.chars().count(), 256);
    assert!(title.ends_with('…') && !title.contains('\n'), "{title}");
}

fn run_import(input: &Path, store: &str) -> std::process::Output {
    Command::new(patchtrail_bin())
        .args(["import", input.to_str().expect("utf-8"), "--store", store])
        .output()
        .expect("import")
}

#[test]
fn security_hub_throttling_is_waited_out_and_refused_findings_are_retried_then_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = history(dir.path());
    // A second region, where Security Hub is not enabled: its call fails as a whole.
    let west = json!({"snapshot_time": "2026-02-23T06:00:00Z", "account_id": ACCOUNT,
        "region": "us-west-2", "instances": [instance("i-0000000000000000w", "prod",
        "2026-02-23T03:00:00Z", vec![patch("KB7", "Critical", "Security", "Missing", None)])]});
    let input = dir.path().join("west.jsonl");
    std::fs::write(&input, format!("{west}\n")).expect("write");
    ok(run_import(&input, &store));
    let moto = start_moto();
    let args = |extra: &[&str]| -> Vec<String> {
        [
            &[
                "export",
                "security-hub",
                "--store",
                &store,
                "--as-of",
                "2026-02-28",
            ][..],
            &["--role-name", "PatchtrailExport"][..],
            extra,
        ]
        .concat()
        .iter()
        .map(|a| a.to_string())
        .collect()
    };
    // The ids, from the request bodies.
    let dry = dir.path().join("dry");
    ok(patchtrail(
        &moto.url,
        &args_str(&args(&["--dry-run", dry.to_str().expect("utf-8")])),
    ));
    let body = read_json(&walk(&dry)[0]);
    let id_of = |kb: &str| -> String {
        body["Findings"]
            .as_array()
            .expect("findings")
            .iter()
            .find(|f| f["ProductFields"]["patchtrail/kb_id"] == kb)
            .and_then(|f| f["Id"].as_str())
            .expect("id")
            .to_string()
    };
    let (once, always) = (id_of("KB6"), id_of("KB3"));
    // Two throttled calls, KB6 refused once, KB3 refused every time, and the answer to the
    // first call that Security Hub applies lost: it is sent again with the same ids.
    let proxy = start_hub_proxy(
        &moto.url,
        &[
            "--throttle",
            "2",
            "--refuse",
            &format!("{once}:1"),
            "--refuse",
            &format!("{always}:always"),
            "--disabled",
            "us-west-2",
            "--lose",
            "1",
        ],
    );
    let mut cmd = Command::new(patchtrail_bin());
    aws_env(&mut cmd, &moto.url).env("AWS_ENDPOINT_URL_SECURITYHUB", &proxy.url);
    let out = cmd.args(args(&[])).output().expect("export");
    assert_eq!(out.status.code(), Some(3), "{}", text_of(&out));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!("refused: finding {always}")),
        "{stderr}"
    );
    assert!(!stderr.contains(&format!("finding {once}")), "{stderr}");
    // The disabled region's finding is named with Security Hub's error; the other region's
    // calls went on.
    assert!(
        stderr.contains("us-west-2): InvalidAccessException: Account is not subscribed"),
        "{stderr}"
    );
    assert!(
        stderr.contains("Security Hub refused 2 finding(s)"),
        "{stderr}"
    );
    let held = py_json(
        &moto.url,
        "securityhub_check.py",
        &["list", ACCOUNT, "PatchtrailExport"],
    );
    let ids: Vec<&str> = held["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter_map(|f| f["Id"].as_str())
        .collect();
    assert_eq!(ids.len(), 5, "{held:#}");
    assert_eq!(held["distinct_ids"], 5, "nothing imported twice: {held:#}");
    let stats: Value =
        serde_json::from_str(&curl("GET", &format!("{}/_stats", proxy.url))).expect("stats");
    assert_eq!(
        (&stats["throttled"], &stats["lost"], &stats["disabled"]),
        (&json!(2), &json!(1), &json!(1)),
        "{stats}"
    );
    assert!(
        ids.contains(&once.as_str()) && !ids.contains(&always.as_str()),
        "{ids:?}"
    );
}

fn args_str(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}
