//! The organization state machine of deploy/patchtrail-organization.yaml, unchanged, executed by
//! moto's Step Functions interpreter with this crate's real Lambda binary behind its tasks
//! (tests/py/run_organization_sfn.py: a loopback Lambda Invoke and Runtime API), against the
//! simulated organization (several accounts and regions, one role refused) and moto S3; and
//! scopes that outlast one invocation, continued invocation after invocation until they commit.

use patchtrail_query::{LoadedHistory, Selection};
use patchtrail_sim::{Directory, SimConfig};
use patchtrail_store::{AwsAccess, Store};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repo root")
}

/// The venv's python (scripts/test creates it; PATCHTRAIL_PYTHON overrides).
fn python() -> PathBuf {
    std::env::var("PATCHTRAIL_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo_root().join(".venv/bin/python"))
}

/// Runs one execution with `input` and the function's `timeout` (seconds); the history it wrote
/// is copied into `download`.
fn execute(sim_url: &str, input: &Value, timeout: u32, download: &Path) -> Value {
    let out = Command::new(python())
        .arg(repo_root().join("tests/py/run_organization_sfn.py"))
        .arg(repo_root().join("deploy/patchtrail-organization.yaml"))
        .arg(env!("CARGO_BIN_EXE_patchtrail-lambda"))
        .arg(sim_url)
        .arg(input.to_string())
        .args(["--timeout", &timeout.to_string()])
        .arg("--download")
        .arg(download)
        .output()
        .expect("run the state machine harness (installed by scripts/test)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "harness failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("no JSON ({e}): {stdout}"))
}

fn scope_of(v: &Value) -> (String, String) {
    (
        v["account_id"].as_str().unwrap_or_default().to_string(),
        v["region"].as_str().unwrap_or_default().to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_organization_state_machine_commits_every_scope_once_with_the_real_lambda() {
    let regions = ["us-east-1", "ap-northeast-1"];
    let mut config = SimConfig {
        instances: 25,
        seed: 21,
        accounts: 3,
        regions: regions.iter().map(|r| r.to_string()).collect(),
        ..SimConfig::default()
    };
    let members = Directory::new(&config).members;
    let active: Vec<String> = members
        .iter()
        .filter(|m| m.state == "ACTIVE")
        .map(|m| m.id.clone())
        .collect();
    let denied = active[2].clone();
    config.deny_assume = vec![denied.clone()];
    let sim = patchtrail_sim::start(config, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("simulator");
    let input = serde_json::json!({
        "s3_bucket": "org-history/", "s3_path": "patchtrail", "format": "parquet",
        "organization": true, "regions": ["all"], "role_name": "PatchtrailRead",
    });

    let dir = tempfile::tempdir().expect("tempdir");
    let url = sim.url();
    let run = tokio::task::spawn_blocking({
        let (input, store) = (input.clone(), dir.path().join("store"));
        move || execute(&url, &input, 900, &store)
    })
    .await
    .expect("harness thread");

    // The refused account fails the execution as a whole, after every other scope committed.
    assert_eq!(run["status"], "FAILED", "{run}");
    assert_eq!(run["error"], "patchtrail.ScopesFailed", "{run}");
    assert_eq!(run["map_runs"], 1, "a Distributed Map: {run}");
    let outcome = &run["outcome"];
    assert_eq!(outcome["status"], "committed", "{outcome}");
    let unreachable: Vec<String> = outcome["unreachable"]
        .as_array()
        .expect("unreachable")
        .iter()
        .map(|u| scope_of(u).0)
        .collect();
    assert_eq!(unreachable, vec![denied.clone()]);
    let committed: Vec<&Value> = outcome["scopes"]
        .as_array()
        .expect("scopes")
        .iter()
        .collect();
    let scopes: BTreeSet<(String, String)> = committed.iter().map(|s| scope_of(s)).collect();
    let expected: BTreeSet<(String, String)> = active
        .iter()
        .filter(|a| **a != denied)
        .flat_map(|a| regions.iter().map(move |r| (a.clone(), r.to_string())))
        .collect();
    assert_eq!(scopes, expected, "{outcome}");
    assert_eq!(
        committed.len(),
        expected.len(),
        "each scope once: {outcome}"
    );
    // One invocation lists the scopes, one per scope collects it.
    assert_eq!(
        run["lambda_invocations"],
        1 + expected.len() as u64,
        "{run}"
    );
    assert_eq!((&run["suspended"], &run["late"]), (&0.into(), &0.into()));

    // The history holds exactly those runs, committed (the manifest chain verifies), and a
    // report as of now covers every scope, per account.
    let store = Store::open(
        dir.path().join("store").to_str().expect("utf-8"),
        &AwsAccess::default(),
    )
    .expect("store");
    let verify = store.verify(None).await.expect("verify");
    assert!(verify.findings.is_empty(), "{:?}", verify.findings);
    assert_eq!(verify.runs, expected.len());
    let history = LoadedHistory::load(&store, &Selection::AsOf(vec![chrono::Utc::now()]))
        .await
        .expect("history");
    let in_force: BTreeSet<(String, String)> = history
        .runs
        .iter()
        .map(|r| (r.account_id.clone(), r.region.clone()))
        .collect();
    assert_eq!(in_force, expected);
    let summary = history
        .summary(chrono::Utc::now(), "now", 14, None)
        .await
        .expect("summary");
    let by_account = summary
        .tables
        .iter()
        .find(|t| t.name == "by_account")
        .expect("by_account");
    assert_eq!(by_account.rows(), 2, "two reachable accounts");
    let instances: u64 = committed
        .iter()
        .map(|s| s["counts"]["instances"].as_u64().unwrap_or(0))
        .sum();
    let fleet = summary
        .tables
        .iter()
        .find(|t| t.name == "fleet")
        .expect("fleet");
    let total = patchtrail_query::cell_text(fleet).expect("cells")[0][0].clone();
    assert_eq!(total, instances.to_string());
    sim.stop().await.expect("stop");
}

/// boto3's walk of the simulated organization and, with `store`, DuckDB's read of its instance
/// rows (tests/py/sim_org.py, independent of patchtrail).
fn sim_org(sim_url: &str, store: &Path) -> Value {
    let out = Command::new(python())
        .arg(repo_root().join("tests/py/sim_org.py"))
        .args(["PatchtrailRead", "--store"])
        .arg(store)
        .env("AWS_ENDPOINT_URL", sim_url)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .output()
        .expect("run sim_org.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "sim_org.py failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("no JSON ({e}): {stdout}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scope_that_outlasts_one_invocation_is_continued_until_its_run_commits_once() {
    // A 4-second function against 15 patch reads a second: every scope takes several invocations
    // (about 40 instances each).
    let config = SimConfig {
        instances: 150,
        seed: 29,
        accounts: 2,
        regions: vec!["us-east-1".into()],
        ssm_tps: Some(15.0),
        latency: std::time::Duration::from_millis(20),
        ..SimConfig::default()
    };
    let sim = patchtrail_sim::start(config, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("simulator");
    let input = serde_json::json!({
        "s3_bucket": "org-history/", "s3_path": "patchtrail", "format": "parquet",
        "organization": true, "regions": ["us-east-1"], "role_name": "PatchtrailRead",
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let store_dir = dir.path().join("store");
    let url = sim.url();
    let run = tokio::task::spawn_blocking({
        let (input, store) = (input.clone(), store_dir.clone());
        move || execute(&url, &input, 4, &store)
    })
    .await
    .expect("harness thread");

    assert_eq!(run["status"], "SUCCEEDED", "{run}");
    assert_eq!(
        run["late"], 0,
        "every invocation answered before its deadline: {run}"
    );
    let committed = run["outcome"]["scopes"].as_array().expect("scopes").clone();
    assert_eq!(committed.len(), 2, "{run}");
    let suspended = run["suspended"].as_u64().unwrap_or(0);
    assert!(
        suspended >= 2,
        "each scope needed more than one invocation: {run}"
    );
    assert_eq!(
        run["lambda_invocations"].as_u64(),
        Some(1 + 2 + suspended),
        "one plan, then per scope its suspended invocations and the one that commits: {run}"
    );
    // Every run went through checkpoints, numbered from 1, the last one marking it complete.
    for scope in &committed {
        let run_id = scope["run_id"].as_str().expect("run id");
        let folder = store_dir.join("_patchtrail/checkpoints").join(run_id);
        let mut checkpoints: Vec<String> = std::fs::read_dir(&folder)
            .expect("checkpoints of the run")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|name| !name.starts_with("attempt-"))
            .collect();
        checkpoints.sort();
        assert!(checkpoints.len() >= 3, "{run_id}: {checkpoints:?}");
        assert_eq!(checkpoints[0], "0001.json");
        let last: Value = serde_json::from_slice(
            &std::fs::read(folder.join(checkpoints.last().expect("last"))).expect("read"),
        )
        .expect("checkpoint JSON");
        assert!(last["finished_at"].is_string(), "{last}");
        assert_eq!(last["counts"], scope["counts"]);
    }

    // One committed run per scope, holding exactly the instances boto3 finds there, each once.
    let store =
        Store::open(store_dir.to_str().expect("utf-8"), &AwsAccess::default()).expect("store");
    let verify = store.verify(None).await.expect("verify");
    assert!(verify.findings.is_empty(), "{:?}", verify.findings);
    assert!(verify.notes.is_empty(), "no leftovers: {:?}", verify.notes);
    assert_eq!(verify.runs, 2);
    let walk = sim_org(&sim.url(), &store_dir);
    let mut stored: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for row in walk["stored"].as_array().expect("stored rows") {
        let cell = |i: usize| row[i].as_str().unwrap_or_default().to_string();
        stored
            .entry(format!("{}/{}", cell(0), cell(1)))
            .or_default()
            .push(cell(2));
    }
    let found: std::collections::BTreeMap<String, Vec<String>> = walk["scopes"]
        .as_object()
        .expect("scopes")
        .iter()
        .map(|(scope, v)| {
            let ids = v["instances"]
                .as_array()
                .expect("ids")
                .iter()
                .filter_map(|i| i.as_str().map(str::to_string))
                .collect();
            (scope.clone(), ids)
        })
        .collect();
    assert_eq!(
        stored, found,
        "DuckDB's rows (sorted, duplicates kept) = boto3's ids"
    );
    for scope in &committed {
        let key = format!(
            "{}/{}",
            scope["account_id"].as_str().unwrap_or(""),
            scope["region"].as_str().unwrap_or("")
        );
        assert_eq!(
            scope["counts"]["instances"].as_u64(),
            Some(found[&key].len() as u64),
            "{scope}"
        );
    }
    sim.stop().await.expect("stop");
}
