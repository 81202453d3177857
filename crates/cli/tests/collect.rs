//! `patchtrail collect` against the simulator: every format stores every patch exactly once and
//! is read back by DuckDB and pyarrow; bad input fails cleanly; interrupted runs stay invisible.

mod common;

use common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// (instance, kb) → (state, installed epoch), as boto3 read it.
fn boto3_rows(walk: &Value) -> BTreeMap<(String, String), (String, Option<i64>)> {
    boto3_view(walk)
        .into_iter()
        .map(|(key, view)| (key, (view.0, view.1)))
        .collect()
}

fn duckdb_rows(read: &Value) -> BTreeMap<(String, String), (String, Option<i64>)> {
    read["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            let s = |i: usize| r[i].as_str().unwrap_or_default().to_string();
            ((s(0), s(1)), (s(2), r[3].as_i64()))
        })
        .collect()
}

#[test]
fn every_format_stores_every_patch_exactly_once_and_duckdb_and_pyarrow_read_it() {
    let sim = start_sim(&["--instances", "220", "--seed", "13"]);
    let walk = py_json(&sim.url, "sim_walk.py", &[]);
    let expected = boto3_rows(&walk);
    let patch_count = walk["patches"].as_array().map(Vec::len).unwrap_or(0);
    assert!(patch_count > 1000);
    let dir = tempfile::tempdir().expect("tempdir");
    for format in ["parquet", "jsonl", "seed"] {
        let store = dir.path().join(format);
        let store_arg = store.to_str().expect("utf8");
        ok(patchtrail(
            &sim.url,
            &["collect", "--store", store_arg, "--format", format],
        ));
        let read = py_json(&sim.url, "read_store.py", &[store_arg, format]);
        assert_eq!(
            read["duckdb"]["rows"].as_u64(),
            Some(patch_count as u64),
            "{format}: DuckDB row count"
        );
        assert_eq!(
            duckdb_rows(&read),
            expected,
            "{format}: the rows boto3 reads"
        );
        if format != "seed" {
            assert_eq!(
                read["duckdb"]["distinct"], read["duckdb"]["rows"],
                "{format}: no duplicates"
            );
            assert_eq!(
                read["pyarrow"]["rows"].as_u64(),
                Some(patch_count as u64),
                "{format}: pyarrow row count"
            );
            assert_eq!(
                read["pyarrow"]["instances"].as_u64(),
                walk["instances"].as_array().map(|a| a.len() as u64),
                "{format}: one instance row per tagged instance"
            );
        }
        if format == "parquet" {
            let types = &read["pyarrow"]["types"];
            assert_eq!(types["snapshot_time"], "timestamp[us, tz=UTC]");
            assert_eq!(types["installed_time"], "timestamp[us, tz=UTC]");
            assert_eq!(types["kb_id"], "string");
            assert_eq!(types["year"], "int32", "hive partition column");
            assert_eq!(
                read["duckdb"]["types"]["installed_time"],
                "TIMESTAMP WITH TIME ZONE"
            );
        }
        let manifests = manifests(&store);
        assert_eq!(manifests.len(), 1, "{format}: one committed run");
        let manifest = read_json(&manifests[0]);
        assert_eq!(
            manifest["counts"]["patches"].as_u64(),
            Some(patch_count as u64)
        );
        assert_eq!(manifest["format"], format);
        for object in manifest["objects"].as_array().expect("objects") {
            let key = object["key"].as_str().expect("key");
            let bytes = std::fs::read(store.join(key)).unwrap_or_else(|e| panic!("{key}: {e}"));
            assert_eq!(
                object["size"].as_u64(),
                Some(bytes.len() as u64),
                "{key} size"
            );
        }
    }
}

#[test]
fn seed_format_writes_the_seeds_keys_and_bodies() {
    let sim = start_sim(&["--instances", "80", "--seed", "17"]);
    let walk = py_json(&sim.url, "sim_walk.py", &[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("seed");
    ok(patchtrail(
        &sim.url,
        &[
            "collect",
            "--store",
            store.to_str().expect("utf8"),
            "--format",
            "seed",
        ],
    ));
    let today = chrono::Utc::now().date_naive();
    let day = store.join(today.format("year=%Y/month=%m/day=%d").to_string());
    let mut pages_per_instance: BTreeMap<String, u64> = BTreeMap::new();
    for entry in std::fs::read_dir(&day).expect("day partition") {
        let folder = entry.expect("entry").path();
        let name = folder
            .file_name()
            .and_then(|n| n.to_str())
            .expect("name")
            .to_string();
        let instance = name
            .strip_prefix("instanceid=")
            .unwrap_or_else(|| panic!("unexpected folder {name}"))
            .to_string();
        for page in std::fs::read_dir(&folder).expect("pages") {
            let page = page.expect("page").path();
            let uuid = page.file_name().and_then(|n| n.to_str()).expect("uuid");
            assert!(
                uuid.len() == 36
                    && uuid.chars().filter(|c| *c == '-').count() == 4
                    && uuid.chars().all(|c| c == '-' || c.is_ascii_hexdigit()),
                "object name is a uuid: {uuid}"
            );
            let body: Value =
                serde_json::from_slice(&std::fs::read(&page).expect("read")).expect("json body");
            let top: Vec<&String> = body.as_object().expect("object").keys().collect();
            assert_eq!(top, vec!["Patches"], "body shape");
            for p in body["Patches"].as_array().expect("list") {
                let keys: Vec<&str> = p
                    .as_object()
                    .expect("patch")
                    .keys()
                    .map(String::as_str)
                    .collect();
                for required in [
                    "Classification",
                    "InstalledTime",
                    "KbId",
                    "Severity",
                    "State",
                    "Title",
                ] {
                    assert!(keys.contains(&required), "{required} in {keys:?}");
                }
                assert!(keys.iter().all(|k| {
                    [
                        "Classification",
                        "CveIds",
                        "InstalledTime",
                        "KbId",
                        "Severity",
                        "State",
                        "Title",
                    ]
                    .contains(k)
                }));
                let t = p["InstalledTime"].as_str().expect("ISO time");
                assert!(chrono::DateTime::parse_from_rfc3339(t).is_ok(), "{t}");
            }
            *pages_per_instance.entry(instance.clone()).or_default() += 1;
        }
    }
    let expected: BTreeMap<String, u64> = walk["pages"]
        .as_object()
        .expect("pages")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
        .collect();
    assert_eq!(
        pages_per_instance, expected,
        "one object per API page, per managed instance"
    );
    assert_eq!(manifests(&store).len(), 1);
    assert!(
        manifests(&store)[0]
            .to_string_lossy()
            .contains("_patchtrail/runs/"),
        "manifest hidden from Hive tables"
    );
}

/// Runs patchtrail with `env` on top of a scrubbed environment.
fn run_with(env: &[(&str, &str)], args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(patchtrail_bin());
    for var in [
        "AWS_PROFILE",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_ENDPOINT_URL",
        "PATCHTRAIL_STORE",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.args(args).output().expect("run patchtrail")
}

#[test]
fn bad_input_gets_one_clear_line_a_nonzero_exit_and_writes_nothing() {
    let sim = start_sim(&["--instances", "20"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let blocker = dir.path().join("a-file");
    std::fs::write(&blocker, b"not a folder").expect("write");
    let store = dir.path().join("store");
    let store_arg = store.to_str().expect("utf8");
    let under_file = format!("{}/sub", blocker.display());
    let sim_env: [(&str, &str); 4] = [
        ("AWS_ENDPOINT_URL", &sim.url),
        ("AWS_ACCESS_KEY_ID", "x"),
        ("AWS_SECRET_ACCESS_KEY", "x"),
        ("AWS_REGION", "us-east-1"),
    ];
    let no_creds: [(&str, &str); 2] = [("AWS_ENDPOINT_URL", &sim.url), ("AWS_REGION", "us-east-1")];
    let real_aws_region: [(&str, &str); 3] = [
        ("AWS_ACCESS_KEY_ID", "x"),
        ("AWS_SECRET_ACCESS_KEY", "x"),
        ("AWS_REGION", "us-east-99"),
    ];
    let cases: Vec<(&str, &[(&str, &str)], Vec<&str>, i32, &str)> = vec![
        (
            "tag without value",
            &sim_env,
            vec!["--tag", "CheckPatch"],
            2,
            "--tag 'CheckPatch'",
        ),
        (
            "classification case",
            &sim_env,
            vec!["--classification", "securityupdates"],
            2,
            "did you mean 'SecurityUpdates'",
        ),
        (
            "malformed input json",
            &sim_env,
            vec!["--input-json", "{\"s3_bucket\": "],
            2,
            "--input-json",
        ),
        (
            "unknown input key",
            &sim_env,
            vec!["--input-json", "{\"s3_bukket\":\"b/\"}"],
            2,
            "s3_bukket",
        ),
        (
            "unwritable folder",
            &sim_env,
            vec!["--store", &under_file],
            2,
            "cannot use folder",
        ),
        (
            "unknown scheme",
            &sim_env,
            vec!["--store", "gs://bucket/x"],
            2,
            "gs://",
        ),
        (
            "unknown region",
            &real_aws_region,
            vec![],
            2,
            "unknown AWS region 'us-east-99'",
        ),
        (
            "no region",
            &[("AWS_ACCESS_KEY_ID", "x"), ("AWS_SECRET_ACCESS_KEY", "x")],
            vec![],
            2,
            "no AWS region",
        ),
        (
            "no credentials",
            &no_creds,
            vec![],
            4,
            "no AWS credentials found",
        ),
        (
            "zero rate",
            &sim_env,
            vec!["--max-tps", "0"],
            2,
            "--max-tps",
        ),
    ];
    for (name, env, extra, code, needle) in cases {
        let mut args = vec!["collect", "--store", store_arg];
        if extra.first() == Some(&"--store") || extra.first() == Some(&"--input-json") {
            args.truncate(1);
        }
        args.extend(extra);
        let out = run_with(env, &args);
        let stderr = text(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(code),
            "{name}: exit code; stderr: {stderr}"
        );
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{name}: one line, got {stderr:?}");
        assert!(
            lines[0].starts_with("error: ") && lines[0].contains(needle),
            "{name}: {stderr}"
        );
        assert!(manifests(&store).is_empty(), "{name}: no run was committed");
    }
}

#[test]
fn an_interrupted_run_is_invisible_and_its_retry_does_not_duplicate_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("h");
    let store_arg = store.to_str().expect("utf8");
    let slow = start_sim(&["--instances", "300", "--seed", "23", "--latency-ms", "40"]);
    let mut cmd = Command::new(patchtrail_bin());
    aws_env(&mut cmd, &slow.url);
    let mut child = cmd
        .args([
            "collect",
            "--store",
            store_arg,
            "--format",
            "seed",
            "--concurrency",
            "2",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    // Kill it once it has written some pages, long before it can finish.
    let today = chrono::Utc::now()
        .date_naive()
        .format("year=%Y/month=%m/day=%d")
        .to_string();
    let day = store.join(&today);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::fs::read_dir(&day).map(|d| d.count()).unwrap_or(0) < 5 {
        assert!(
            std::time::Instant::now() < deadline,
            "the run wrote nothing in 30 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().expect("kill");
    let _ = child.wait();
    assert!(
        manifests(&store).is_empty(),
        "a killed run leaves no manifest"
    );
    let written_before = count_files(&day);
    assert!(written_before > 0);

    let fast = start_sim(&["--instances", "300", "--seed", "23"]);
    ok(patchtrail(
        &fast.url,
        &["collect", "--store", store_arg, "--format", "seed"],
    ));
    let committed = manifests(&store);
    assert_eq!(committed.len(), 1);
    let manifest = read_json(&committed[0]);
    assert!(
        manifest["run_id"].as_str().expect("id").ends_with("-02"),
        "the interrupted run keeps its claimed id; the retry takes the next"
    );
    let objects = manifest["objects"].as_array().expect("objects");
    let pages = objects
        .iter()
        .filter(|o| !o["key"].as_str().unwrap_or("").starts_with("_patchtrail/"))
        .count();
    assert_eq!(
        count_files(&day),
        pages + written_before,
        "the retry wrote its own pages next to the interrupted run's, overwriting none"
    );

    // Regression: the interrupted run's pages were read as a phantom seed-workflow snapshot.
    let trend = ok(patchtrail(
        &fast.url,
        &["report", "trend", "--store", store_arg, "--format", "json"],
    ));
    let trend: serde_json::Value = serde_json::from_str(&trend).expect("json");
    let rows = trend.as_array().expect("rows");
    assert_eq!(rows.len(), 1, "only the committed run is history: {trend}");
    assert_eq!(rows[0]["run_id"], manifest["run_id"]);
    let verify = ok(patchtrail(&fast.url, &["verify", "--store", store_arg]));
    assert!(
        verify.contains("-01 was claimed but never committed"),
        "{verify}"
    );

    // A second run the same day is a new run, chained to the first.
    ok(patchtrail(
        &fast.url,
        &["collect", "--store", store_arg, "--format", "seed"],
    ));
    let committed = manifests(&store);
    assert_eq!(committed.len(), 2);
    let third = committed
        .iter()
        .map(|p| read_json(p))
        .find(|m| m["run_id"].as_str().unwrap_or("").ends_with("-03"))
        .expect("run 03");
    let first_bytes = std::fs::read(&committed[0]).expect("first manifest");
    use sha2::Digest;
    assert_eq!(
        third["previous"]["sha256"].as_str(),
        Some(hex::encode(sha2::Sha256::digest(&first_bytes)).as_str())
    );
    assert_eq!(third["sequence"], 2);
}

fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| {
                    if e.path().is_dir() {
                        count_files(&e.path())
                    } else {
                        1
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

#[test]
fn dry_run_lists_the_targets_and_writes_nothing() {
    let sim = start_sim(&["--instances", "40", "--seed", "2"]);
    let walk = py_json(&sim.url, "sim_walk.py", &[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("h");
    let out = ok(patchtrail(
        &sim.url,
        &[
            "collect",
            "--dry-run",
            "--store",
            store.to_str().expect("utf8"),
        ],
    ));
    for i in walk["instances"].as_array().expect("instances") {
        assert!(
            out.contains(i["instance_id"].as_str().expect("id")),
            "{out}"
        );
    }
    assert!(out.contains(&format!(
        "{} instances carry tag CheckPatch",
        walk["instances"].as_array().map(Vec::len).unwrap_or(0)
    )));
    assert!(!store.exists(), "nothing written");
}

#[test]
fn json_logs_end_with_a_machine_readable_summary() {
    let sim = start_sim(&["--instances", "30", "--seed", "4"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("h");
    let out = ok(patchtrail(
        &sim.url,
        &[
            "--log-format",
            "json",
            "collect",
            "--store",
            store.to_str().expect("utf8"),
        ],
    ));
    let summary: Value = serde_json::from_str(out.trim()).expect("one JSON summary on stdout");
    assert_eq!(summary["format"], "parquet");
    assert!(summary["counts"]["instances"].as_u64().unwrap_or(0) > 10);
    assert!(
        summary["run_id"]
            .as_str()
            .unwrap_or("")
            .ends_with("-123456789012-us-east-1-01")
    );
}

/// The node columns of a parquet store, checked by `node_facts.py` against boto3's reading of
/// the same endpoint; returns its JSON.
fn node_facts(sim: &Server, store: &Path) -> Value {
    let facts = py_json(
        &sim.url,
        "node_facts.py",
        &[store.to_str().expect("utf8"), "CheckPatch"],
    );
    assert_eq!(facts["mismatches"], serde_json::json!([]), "{facts}");
    facts
}

#[test]
fn hybrid_nodes_agent_health_and_unmanaged_reasons_are_what_boto3_reads() {
    let sim = start_sim(&[
        "--instances",
        "400",
        "--hybrid",
        "30",
        "--seed",
        "21",
        "--unmanaged-rate",
        "0.1",
    ]);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("all");
    let s = store.to_str().expect("utf8");
    ok(patchtrail(&sim.url, &["collect", "--store", s]));
    let facts = node_facts(&sim, &store);
    assert!(facts["hybrid"].as_u64() > Some(10), "{facts}");
    assert!(facts["agent_offline"].as_u64() > Some(0), "{facts}");
    assert_eq!(
        facts["reasons"],
        serde_json::json!(["not_registered"]),
        "an unmanaged instance of the simulator is one SSM does not list: {facts}"
    );
    let manifest = read_json(&manifests(&store)[0]);
    assert_eq!(manifest["config"]["hybrid"], true);

    // --no-hybrid: EC2 only, as the seed collects.
    let ec2_only = dir.path().join("ec2");
    let e = ec2_only.to_str().expect("utf8");
    ok(patchtrail(
        &sim.url,
        &["collect", "--store", e, "--no-hybrid"],
    ));
    let row = sql_row(
        e,
        "SELECT count(*) AS n, sum(CASE WHEN instance_id LIKE 'mi-%' THEN 1 ELSE 0 END) AS hybrid FROM instances",
    );
    let n = facts["stored"].as_u64().unwrap_or(0) - facts["hybrid"].as_u64().unwrap_or(0);
    assert_eq!(row, format!("{n},0"));
}

#[test]
fn without_describe_instance_information_a_run_still_commits_its_ec2_patches() {
    let sim = start_sim(&[
        "--instances",
        "60",
        "--hybrid",
        "5",
        "--seed",
        "22",
        "--deny-action",
        "ssm:DescribeInstanceInformation",
    ]);
    let walk = py_json(&sim.url, "sim_walk.py", &[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("h");
    let s = store.to_str().expect("utf8");
    let out = patchtrail(&sim.url, &["collect", "--store", s]);
    assert!(
        [Some(0), Some(3)].contains(&out.status.code()),
        "{}",
        text(&out.stderr)
    );
    let warned = text(&out.stderr);
    assert_eq!(
        warned
            .matches("ssm:DescribeInstanceInformation is denied")
            .count(),
        1,
        "said once: {warned}"
    );
    let row = sql_row(
        s,
        "SELECT count(*) AS n, count(ping_status) AS pings, count(unmanaged_reason) AS reasons FROM instances",
    );
    let n = walk["instances"].as_array().map(Vec::len).unwrap_or(0);
    assert_eq!(row, format!("{n},0,0"));
}

#[test]
fn tokens_that_expire_while_the_collector_is_paused_restart_their_walks_and_lose_nothing() {
    // Tokens live 1 s, well above the gap between two pages of one walk even on a busy machine;
    // the collector is paused (SIGSTOP, as a laptop sleeps) twice for 2 s in the middle of its
    // walks, so the tokens it holds then have expired when it goes on. Every classification and
    // 30 ms per call: many instances need several pages, and dozens are under way at any moment.
    let sim = start_sim(&[
        "--instances",
        "600",
        "--seed",
        "23",
        "--ssm-tps",
        "100",
        "--latency-ms",
        "30",
        "--token-ttl-ms",
        "1000",
    ]);
    let walk = py_json(&sim.url, "sim_walk.py", &["--all-classifications"]);
    let expected = boto3_rows(&walk);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("h");
    let s = store.to_str().expect("utf8");
    let mut cmd = Command::new(patchtrail_bin());
    aws_env(&mut cmd, &sim.url);
    let child = cmd
        .args(["-v", "collect", "--store", s, "--all-classifications"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start collect");
    let pid = child.id().to_string();
    let signal = |sig: &str| {
        let status = Command::new("kill")
            .args([sig, &pid])
            .status()
            .expect("kill");
        assert!(status.success(), "kill {sig}");
    };
    for _ in 0..2 {
        std::thread::sleep(Duration::from_millis(1500));
        signal("-STOP");
        std::thread::sleep(Duration::from_millis(2000));
        signal("-CONT");
    }
    let out = child.wait_with_output().expect("collect ends");
    let log = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert!(
        log.contains("a NextToken was refused"),
        "the pauses outlived some tokens: {}",
        log.lines().rev().take(20).collect::<Vec<_>>().join("\n")
    );
    let read = py_json(&sim.url, "read_store.py", &[s, "parquet"]);
    assert_eq!(duckdb_rows(&read), expected, "every patch once, none lost");
    assert_eq!(
        read["duckdb"]["distinct"], read["duckdb"]["rows"],
        "no duplicates"
    );
}

/// AWS's documented answers (Windows and Linux patches, a patch-state summary with the fields
/// the collector once dropped, a lost agent, a hybrid node, an instance SSM does not know),
/// replayed by a server written apart from the simulator, are stored and reported as the
/// semantics say.
#[test]
fn documented_aws_answers_replay_through_the_collector_and_the_reports() {
    let replay = start_replay("aws-documented.json");
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("h");
    let s = store.to_str().expect("utf8");
    ok(patchtrail(
        &replay.url,
        &["collect", "--store", s, "--all-classifications"],
    ));
    let summary = ok(patchtrail(
        &replay.url,
        &[
            "report",
            "summary",
            "--store",
            s,
            "--stale-days",
            "100000",
            "--format",
            "json",
        ],
    ));
    let summary_file = dir.path().join("summary.json");
    std::fs::write(&summary_file, summary).expect("write summary");
    let fixture = repo_root().join("tests/fixtures/aws-documented.json");
    let checked = py_json(
        &replay.url,
        "replay_check.py",
        &[
            fixture.to_str().expect("utf8"),
            s,
            summary_file.to_str().expect("utf8"),
        ],
    );
    assert_eq!(checked["mismatches"], serde_json::json!([]), "{checked}");
    assert_eq!(checked["patches"], 6, "{checked}");
    assert_eq!(
        checked["compliance"],
        serde_json::json!({
            "i-1234567890abcdef0": "non_compliant",
            "i-0abcdef1234567890": "non_compliant",
            "i-0fedcba9876543210": "unmanaged",
            "mi-0123456789abcdef0": "compliant",
        }),
        "{checked}"
    );
}

/// A run stopped by `--time-limit` is suspended (exit 6) and continued by `--resume` in new
/// processes until it commits once: DuckDB then reads exactly the rows boto3 reads, each once,
/// and every instance once, in the table formats and in the seed's.
#[test]
fn a_run_suspended_at_its_time_limit_is_continued_until_it_commits_once() {
    // Patch reads at 15 a second: several 2-second attempts.
    let sim = start_sim(&[
        "--instances",
        "120",
        "--seed",
        "31",
        "--ssm-tps",
        "15",
        "--latency-ms",
        "30",
    ]);
    let walk = py_json(&sim.url, "sim_walk.py", &[]);
    let expected = boto3_rows(&walk);
    let mut instances: Vec<&str> = walk["instances"]
        .as_array()
        .expect("instances")
        .iter()
        .filter_map(|i| i["instance_id"].as_str())
        .collect();
    instances.sort_unstable();
    let dir = tempfile::tempdir().expect("tempdir");
    for format in ["parquet", "seed"] {
        let store = dir.path().join(format);
        let s = store.to_str().expect("utf8");
        let first = patchtrail(
            &sim.url,
            &[
                "collect",
                "--store",
                s,
                "--format",
                format,
                "--time-limit",
                "2s",
            ],
        );
        let stderr = text(&first.stderr);
        assert_eq!(first.status.code(), Some(6), "{format}: {stderr}");
        assert!(
            manifests(&store).is_empty(),
            "a suspended run is not history"
        );
        let run_id = run_to_resume(&stderr).expect("the message names the run to resume");
        let verify = ok(patchtrail(&sim.url, &["verify", "--store", s]));
        assert!(
            verify.contains(&format!("run {run_id} is suspended")),
            "{verify}"
        );

        let mut attempts = 1;
        loop {
            attempts += 1;
            assert!(attempts < 30, "{format}: the run never completed");
            // The options are the run's own: no --format here.
            let next = patchtrail(
                &sim.url,
                &[
                    "collect",
                    "--store",
                    s,
                    "--resume",
                    &run_id,
                    "--time-limit",
                    "2s",
                ],
            );
            match next.status.code() {
                Some(0) => break,
                Some(6) => continue,
                code => panic!("{format}: exit {code:?}: {}", text(&next.stderr)),
            }
        }
        assert!(
            attempts > 2,
            "{format}: the run should need several attempts"
        );
        let committed = manifests(&store);
        assert_eq!(committed.len(), 1, "{format}: one run");
        let manifest = read_json(&committed[0]);
        assert_eq!(manifest["run_id"], run_id.as_str());
        assert_eq!(manifest["counts"]["instances"], instances.len());
        ok(patchtrail(&sim.url, &["verify", "--store", s]));

        let read = py_json(&sim.url, "read_store.py", &[s, format]);
        assert_eq!(
            read["duckdb"]["rows"].as_u64(),
            Some(expected.len() as u64),
            "{format}: every row once"
        );
        assert_eq!(
            duckdb_rows(&read),
            expected,
            "{format}: the rows boto3 reads"
        );
        if format == "parquet" {
            let mut read_ids: Vec<&str> = read["instances"]
                .as_array()
                .expect("instances")
                .iter()
                .filter_map(|i| i[0].as_str())
                .collect();
            read_ids.sort_unstable();
            assert_eq!(read_ids, instances, "every instance once");
        }
        // Continuing a committed run answers it and commits nothing more.
        ok(patchtrail(
            &sim.url,
            &["collect", "--store", s, "--resume", &run_id],
        ));
        assert_eq!(manifests(&store).len(), 1);
    }
    let elsewhere = dir.path().join("empty");
    let bad = patchtrail(
        &sim.url,
        &[
            "collect",
            "--store",
            elsewhere.to_str().expect("utf8"),
            "--resume",
            "20260301-123456789012-us-east-1-01",
        ],
    );
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad.stderr));
    assert!(text(&bad.stderr).contains("has no checkpoint"));
}

#[test]
fn release_dates_are_those_aws_lists_and_a_denial_leaves_them_null() {
    // DescribeAvailablePatches answers for Windows Server and Amazon Linux 2 (its API reference);
    // the stored dates are compared by DuckDB and boto3 with what the service lists.
    let sim = start_sim(&["--instances", "120", "--seed", "21"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store");
    let s = store.to_str().expect("utf8");
    ok(patchtrail(&sim.url, &["collect", "--store", s]));
    let check = py_json(&sim.url, "release_check.py", &[s]);
    assert_eq!(check["disagreements"], 0, "{check}");
    let count = |k: &str| check["counts"][k].as_u64().unwrap_or(0);
    assert!(
        count("windows") > 50 && count("amazon_linux_2") > 10 && count("other") > 10,
        "{check}"
    );
    assert!(count("dated") >= count("windows"), "{check}");

    // Denied: the run still commits, with no release dates, and says why.
    let denied = start_sim(&[
        "--instances",
        "40",
        "--seed",
        "21",
        "--deny-action",
        "ssm:DescribeAvailablePatches",
    ]);
    let other = dir.path().join("denied");
    let o = other.to_str().expect("utf8");
    let out = patchtrail(&denied.url, &["collect", "--store", o]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("ssm:DescribeAvailablePatches"),
        "{}",
        text(&out.stderr)
    );
    // (asked of the first simulator, same seed: the denying one answers nobody)
    let check = py_json(&sim.url, "release_check.py", &[o]);
    assert_eq!(check["counts"]["dated"], 0, "{check}");
}
