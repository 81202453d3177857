//! The organization state machine of deploy/patchtrail-organization.yaml, as CloudFormation renders
//! it (DefinitionSubstitutions put in by text replacement), checked by asl-validator and executed
//! by moto's Step Functions interpreter with this crate's real Lambda binary behind its tasks
//! (tests/py/run_organization_sfn.py: a loopback Lambda Invoke and Runtime API), against the
//! simulated organization and moto S3 behind a proxy that refuses uploads without a checksum, as an
//! Object Lock bucket does.
//!
//! moto never fails a Distributed Map (a failed child becomes `null`, `ToleratedFailurePercentage`
//! is ignored) and has no payload limit, so nothing here relies on it for those: a scope is
//! committed only if the outcome step finds the record its own invocation wrote, and the harness
//! measures every state's input and output against the 256 KiB AWS allows.

use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use patchtrail_lambda::{Deps, handle};
use patchtrail_query::{LoadedHistory, Selection};
use patchtrail_sim::{Directory, SimConfig};
use patchtrail_store::{AwsAccess, Store};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// What AWS Step Functions allows a state's input or output to be (Developer Guide, "Step
/// Functions service quotas": 256 KiB of UTF-8).
const PAYLOAD_LIMIT: u64 = 256 * 1024;

/// The repository root. Cargo and nextest set `CARGO_MANIFEST_DIR` when they run a test: read
/// then, a test binary built in another checkout that shares the target folder (CI's cache) looks
/// in this one, not in the checkout it was compiled in.
fn repo_root() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
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

fn harness() -> PathBuf {
    repo_root().join("tests/py/run_organization_sfn.py")
}

fn template() -> PathBuf {
    repo_root().join("deploy/patchtrail-organization.yaml")
}

fn text_of(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs one execution with `input`, the function's `timeout` (seconds) and extra harness
/// arguments; the history it wrote is copied into `download`.
fn execute(sim_url: &str, input: &Value, timeout: u32, download: &Path, extra: &[&str]) -> Value {
    let out = Command::new(python())
        .arg(harness())
        .arg(template())
        .arg(env!("CARGO_BIN_EXE_patchtrail-lambda"))
        .arg(sim_url)
        .arg(input.to_string())
        .args(["--timeout", &timeout.to_string()])
        .arg("--download")
        .arg(download)
        .args(extra)
        .output()
        .expect("run the state machine harness (installed by scripts/test)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "harness failed:\n{}", text_of(&out));
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("no JSON ({e}): {stdout}"))
}

async fn run(sim_url: String, input: Value, timeout: u32, store: PathBuf, extra: &[&str]) -> Value {
    let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        execute(&sim_url, &input, timeout, &store, &extra)
    })
    .await
    .expect("harness thread")
}

fn scope_of(v: &Value) -> (String, String) {
    (
        v["account_id"].as_str().unwrap_or_default().to_string(),
        v["region"].as_str().unwrap_or_default().to_string(),
    )
}

fn scopes_of(list: &Value) -> Vec<(String, String)> {
    list.as_array()
        .expect("a list of scopes")
        .iter()
        .map(scope_of)
        .collect()
}

fn active_accounts(config: &SimConfig) -> Vec<String> {
    Directory::new(config)
        .members
        .iter()
        .filter(|m| m.state == "ACTIVE")
        .map(|m| m.id.clone())
        .collect()
}

fn organization_input(regions: &[&str]) -> Value {
    json!({
        "s3_bucket": "org-history/", "s3_path": "patchtrail", "format": "parquet",
        "organization": true, "regions": regions, "role_name": "PatchtrailRead",
    })
}

/// Every committed run of the downloaded history, verified (the manifest chain holds).
async fn committed_runs(store_dir: &Path) -> BTreeSet<(String, String)> {
    let store =
        Store::open(store_dir.to_str().expect("utf-8"), &AwsAccess::default()).expect("store");
    let verify = store.verify(None).await.expect("verify");
    assert!(verify.findings.is_empty(), "{:?}", verify.findings);
    let history = LoadedHistory::load(&store, &Selection::AsOf(vec![chrono::Utc::now()]))
        .await
        .expect("history");
    let runs: Vec<(String, String)> = history
        .runs
        .iter()
        .map(|r| (r.account_id.clone(), r.region.clone()))
        .collect();
    assert_eq!(verify.runs, runs.len(), "one run in force per scope");
    runs.into_iter().collect()
}

/// Every upload went through the Object Lock proxy with a checksum, none refused.
fn assert_checksummed(run: &Value) {
    assert_eq!(run["s3"]["refused"], 0, "{run}");
    assert!(run["s3"]["uploads"].as_u64().unwrap_or(0) > 0, "{run}");
}

fn assert_payloads_fit(run: &Value) {
    let largest = run["payload"]["bytes"].as_u64().expect("measured");
    assert!(
        largest < PAYLOAD_LIMIT,
        "a state's payload is {largest} bytes, over 256 KiB: {}",
        run["payload"]
    );
    assert!(
        run["payload"]["measured"].as_u64().unwrap_or(0) > 0,
        "{run}"
    );
}

// ------------------------------------------------------------------ the definition AWS receives

fn render(partition: &str) -> String {
    let out = Command::new(python())
        .arg(harness())
        .args(["--render", "--partition", partition])
        .arg(template())
        .output()
        .expect("render the definition");
    assert!(out.status.success(), "{}", text_of(&out));
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// tests/js's asl-validator (npm ci by scripts/test) on a definition.
fn asl_validator(definition: &str, dir: &Path) -> Output {
    let path = dir.join("definition.json");
    std::fs::write(&path, definition).expect("write definition");
    Command::new(repo_root().join("tests/js/node_modules/.bin/asl-validator"))
        .arg("--json-path")
        .arg(&path)
        .output()
        .expect("run asl-validator (npm ci in tests/js, done by scripts/test)")
}

/// What asl-validator and cfn-lint do not look at, checked against the Step Functions Developer
/// Guide: "ItemReader (Map)" (Resource `s3:getObject` or `s3:listObjectsV2`, `ReaderConfig`
/// with `InputType` CSV, JSON, JSONL, MANIFEST or PARQUET, `Arguments` Bucket and Key or Prefix),
/// "ResultWriter (Map)" (Resource `s3:putObject`, `Arguments` Bucket and Prefix, `WriterConfig`
/// OutputType and Transformation) and "Transforming data with JSONata" (a JSONata state, and its
/// Catch, has no InputPath, Parameters, ResultSelector, ResultPath or OutputPath).
fn spec_problems(doc: &Value, partition: &str) -> Vec<String> {
    const JSONPATH_ONLY: [&str; 5] = [
        "InputPath",
        "Parameters",
        "ResultSelector",
        "ResultPath",
        "OutputPath",
    ];
    fn keys(v: &Value) -> Vec<&str> {
        v.as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default()
    }
    fn walk(states: &Value, jsonata: bool, partition: &str, out: &mut Vec<String>) {
        for (name, state) in states.as_object().into_iter().flatten() {
            let jsonata = match state["QueryLanguage"].as_str() {
                Some(q) => q == "JSONata",
                None => jsonata,
            };
            if jsonata {
                for k in keys(state)
                    .into_iter()
                    .filter(|k| JSONPATH_ONLY.contains(k))
                {
                    out.push(format!(
                        "{name}: {k} is a JSONPath field in a JSONata state"
                    ));
                }
                for catcher in state["Catch"].as_array().into_iter().flatten() {
                    for k in keys(catcher) {
                        if !["ErrorEquals", "Next", "Output", "Assign", "Comment"].contains(&k) {
                            out.push(format!(
                                "{name}: Catch field {k} is not a JSONata catcher's"
                            ));
                        }
                    }
                }
            }
            let s3 = |action: &str| format!("arn:{partition}:states:::s3:{action}");
            let reader = &state["ItemReader"];
            if !reader.is_null() {
                for k in keys(reader) {
                    if !["Resource", "ReaderConfig", "Arguments", "Parameters"].contains(&k)
                        || (jsonata && k == "Parameters")
                    {
                        out.push(format!("{name}: ItemReader field {k}"));
                    }
                }
                let resource = reader["Resource"].as_str().unwrap_or("");
                let args = &reader["Arguments"];
                if resource == s3("getObject") {
                    let input = reader["ReaderConfig"]["InputType"].as_str().unwrap_or("");
                    if !["CSV", "JSON", "JSONL", "MANIFEST", "PARQUET"].contains(&input) {
                        out.push(format!("{name}: ItemReader InputType {input:?}"));
                    }
                    if args["Bucket"].is_null() || args["Key"].is_null() {
                        out.push(format!(
                            "{name}: ItemReader s3:getObject needs Bucket and Key"
                        ));
                    }
                } else if resource != s3("listObjectsV2") {
                    out.push(format!("{name}: ItemReader Resource {resource:?}"));
                }
            }
            let writer = &state["ResultWriter"];
            if !writer.is_null() {
                for k in keys(writer) {
                    if !["Resource", "Arguments", "WriterConfig", "Parameters"].contains(&k)
                        || (jsonata && k == "Parameters")
                    {
                        out.push(format!("{name}: ResultWriter field {k}"));
                    }
                }
                if writer["Resource"].as_str() != Some(&s3("putObject")) {
                    out.push(format!(
                        "{name}: ResultWriter Resource {}",
                        writer["Resource"]
                    ));
                }
                let args = &writer["Arguments"];
                if args["Bucket"].is_null()
                    || keys(args).iter().any(|k| !["Bucket", "Prefix"].contains(k))
                {
                    out.push(format!("{name}: ResultWriter Arguments {args}"));
                }
                for k in keys(&writer["WriterConfig"]) {
                    if !["OutputType", "Transformation"].contains(&k) {
                        out.push(format!("{name}: ResultWriter WriterConfig field {k}"));
                    }
                }
            }
            let processor = if state["ItemProcessor"].is_null() {
                &state["Iterator"]
            } else {
                &state["ItemProcessor"]
            };
            walk(&processor["States"], jsonata, partition, out);
            for branch in state["Branches"].as_array().into_iter().flatten() {
                walk(&branch["States"], jsonata, partition, out);
            }
        }
    }
    let mut out = Vec::new();
    let jsonata = doc["QueryLanguage"] == "JSONata";
    walk(&doc["States"], jsonata, partition, &mut out);
    out
}

#[test]
fn the_map_blocks_validators_skip_follow_the_specification() {
    for partition in ["aws", "aws-us-gov", "aws-cn"] {
        let doc: Value = serde_json::from_str(&render(partition)).expect("JSON");
        assert_eq!(
            spec_problems(&doc, partition),
            Vec::<String>::new(),
            "{partition}"
        );
    }
    // Each slip asl-validator and cfn-lint let through is caught here.
    let doc: Value = serde_json::from_str(&render("aws")).expect("JSON");
    type Slip = (&'static str, fn(&mut Value));
    let slips: [Slip; 5] = [
        ("Parameters instead of Arguments", |d| {
            let reader = &mut d["States"]["CollectScopes"]["ItemReader"];
            reader["Parameters"] = reader["Arguments"].take();
            reader.as_object_mut().map(|o| o.remove("Arguments"));
        }),
        ("a bogus InputType", |d| {
            d["States"]["CollectScopes"]["ItemReader"]["ReaderConfig"]["InputType"] = json!("XML")
        }),
        ("a bogus Resource", |d| {
            d["States"]["CollectScopes"]["ResultWriter"]["Resource"] =
                json!("arn:aws:states:::s3:putObjects")
        }),
        ("a JSONPath field in a JSONata Catch", |d| {
            d["States"]["CollectScopes"]["Catch"][0]["ResultPath"] = json!("$.error")
        }),
        ("a stray ResultWriter argument", |d| {
            d["States"]["CollectScopes"]["ResultWriter"]["Arguments"]["Key"] = json!("x")
        }),
    ];
    for (slip, apply) in slips {
        let mut bad = doc.clone();
        apply(&mut bad);
        assert!(
            !spec_problems(&bad, "aws").is_empty(),
            "{slip} went unnoticed"
        );
    }
}

#[test]
fn the_definition_cloudformation_renders_is_valid_asl_in_every_partition() {
    let dir = tempfile::tempdir().expect("tempdir");
    for partition in ["aws", "aws-us-gov", "aws-cn"] {
        let definition = render(partition);
        let out = asl_validator(&definition, dir.path());
        assert!(out.status.success(), "{partition}: {}", text_of(&out));
        let doc: Value = serde_json::from_str(&definition).expect("JSON");
        let map = &doc["States"]["CollectScopes"];
        // Numbers arrive as JSONata expressions, never as quoted numbers.
        assert_eq!(map["MaxConcurrency"], "{% 3 %}");
        assert_eq!(map["ToleratedFailurePercentage"], "{% 100 %}");
        assert!(doc["TimeoutSeconds"].is_u64(), "{}", doc["TimeoutSeconds"]);
        for resource in [
            &doc["States"]["ListScopes"]["Resource"],
            &map["ItemReader"]["Resource"],
            &map["ResultWriter"]["Resource"],
        ] {
            assert!(
                resource
                    .as_str()
                    .unwrap_or("")
                    .starts_with(&format!("arn:{partition}:states:::")),
                "{resource}"
            );
        }
        assert!(
            !definition.contains("arn:aws:") || partition == "aws",
            "{partition}: {definition}"
        );
        // A scope killed at the function's timeout (Sandbox.Timedout) is tried again.
        let scope_retries = map["ItemProcessor"]["States"]["CollectScope"]["Retry"].to_string();
        assert!(
            scope_retries.contains("Sandbox.Timedout") && scope_retries.contains("States.Timeout"),
            "{scope_retries}"
        );
        // Every Lambda task retries Lambda's transient service errors as the Developer Guide's
        // "Handle transient Lambda service exceptions" does (6 attempts, backoff 2), with jitter.
        let tasks = [
            &doc["States"]["ListScopes"],
            &map["ItemProcessor"]["States"]["CollectScope"],
            &doc["States"]["RecordOutcome"],
        ];
        for task in tasks {
            let retriers = task["Retry"].as_array().expect("Retry");
            let lambda = retriers
                .iter()
                .find(|r| r["ErrorEquals"].to_string().contains("Lambda."))
                .unwrap_or_else(|| panic!("no retry of Lambda's errors: {task}"));
            for error in [
                "Lambda.ClientExecutionTimeoutException",
                "Lambda.ServiceException",
                "Lambda.AWSLambdaException",
                "Lambda.SdkClientException",
                "Lambda.TooManyRequestsException",
            ] {
                assert!(
                    lambda["ErrorEquals"]
                        .as_array()
                        .is_some_and(|e| e.contains(&json!(error))),
                    "{error}: {lambda}"
                );
            }
            assert_eq!(
                (
                    &lambda["MaxAttempts"],
                    &lambda["BackoffRate"],
                    &lambda["JitterStrategy"]
                ),
                (&json!(6), &json!(2), &json!("FULL")),
                "{lambda}"
            );
            assert!(
                task["TimeoutSeconds"].as_u64().is_some_and(|t| t > 900),
                "{task}"
            );
        }
    }
    // The validator does refuse what CloudFormation made of the old `MaxConcurrency: ${X}`.
    let quoted = render("aws").replace("\"{% 3 %}\"", "\"3\"");
    let out = asl_validator(&quoted, dir.path());
    assert!(
        !out.status.success(),
        "a quoted number passed: {}",
        text_of(&out)
    );
    assert!(
        text_of(&out).contains("MaxConcurrency"),
        "{}",
        text_of(&out)
    );
}

#[test]
fn a_child_execution_reading_a_variable_of_its_parent_is_refused() {
    // moto runs the Map's children in-process, where they can read the parent's variables; on AWS
    // they are executions of their own and cannot. The harness refuses such a definition.
    let text = std::fs::read_to_string(template()).expect("template");
    let from_item = "$merge([$states.input.request, $states.input.scope";
    assert!(text.contains(from_item));
    let dir = tempfile::tempdir().expect("tempdir");
    let changed = dir.path().join("organization.yaml");
    std::fs::write(
        &changed,
        text.replace(from_item, "$merge([$request, $states.input.scope"),
    )
    .expect("write");
    let out = Command::new(python())
        .arg(harness())
        .arg("--render")
        .arg(&changed)
        .output()
        .expect("render");
    assert!(!out.status.success(), "{}", text_of(&out));
    assert!(
        text_of(&out).contains("CollectScopes's child executions read $request"),
        "{}",
        text_of(&out)
    );
}

// ------------------------------------------------------------------ executions

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
    let active = active_accounts(&config);
    let denied = active[2].clone();
    config.deny_assume = vec![denied.clone()];
    let sim = patchtrail_sim::start(config, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("simulator");
    let dir = tempfile::tempdir().expect("tempdir");
    let run = run(
        sim.url(),
        organization_input(&["all"]),
        900,
        dir.path().join("store"),
        &[],
    )
    .await;

    // The refused account fails the execution as a whole, after every other scope committed.
    assert_eq!(run["status"], "FAILED", "{run}");
    assert_eq!(run["error"], "patchtrail.ScopesFailed", "{run}");
    assert!(
        run["cause"]
            .as_str()
            .unwrap_or("")
            .contains(&format!("1 accounts unreachable: {denied}")),
        "{run}"
    );
    assert_eq!(run["map_runs"], 1, "a Distributed Map: {run}");
    let outcome = &run["outcome"];
    assert_eq!(outcome["status"], "failed", "{outcome}");
    assert_eq!(outcome["failed"], json!([]), "{outcome}");
    let unreachable: Vec<String> = scopes_of(&outcome["unreachable"])
        .into_iter()
        .map(|s| s.0)
        .collect();
    assert_eq!(unreachable, vec![denied.clone()]);
    let expected: BTreeSet<(String, String)> = active
        .iter()
        .filter(|a| **a != denied)
        .flat_map(|a| regions.iter().map(move |r| (a.clone(), r.to_string())))
        .collect();
    let committed = scopes_of(&outcome["committed"]);
    assert_eq!(
        committed.len(),
        expected.len(),
        "each scope once: {outcome}"
    );
    assert_eq!(committed.iter().cloned().collect::<BTreeSet<_>>(), expected);
    assert_eq!(outcome["planned"], expected.len());
    // One invocation plans, one per scope collects it, one records the outcome.
    assert_eq!(
        run["lambda_invocations"],
        2 + expected.len() as u64,
        "{run}"
    );
    assert_eq!((&run["suspended"], &run["late"]), (&0.into(), &0.into()));
    assert_checksummed(&run);
    assert_payloads_fit(&run);

    // The history holds exactly those runs, and a report as of now covers every scope.
    let store_dir = dir.path().join("store");
    assert_eq!(committed_runs(&store_dir).await, expected);
    let store =
        Store::open(store_dir.to_str().expect("utf-8"), &AwsAccess::default()).expect("store");
    let history = LoadedHistory::load(&store, &Selection::AsOf(vec![chrono::Utc::now()]))
        .await
        .expect("history");
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
    let instances: u64 = outcome["committed"]
        .as_array()
        .expect("committed")
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

/// Issue 34, item 5: a timeout of the execution cannot be caught and writes no outcome, so no
/// scope starts past ScopeStartHours and the outcome names the scopes left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scopes_past_the_execution_deadline_are_not_started_and_the_outcome_names_them() {
    let config = SimConfig {
        instances: 5,
        seed: 41,
        accounts: 2,
        regions: vec!["us-east-1".into()],
        ..SimConfig::default()
    };
    let accounts = active_accounts(&config);
    let sim = patchtrail_sim::start(config, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("simulator");
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store");
    // 0 hours (CloudFormation's MinValue is 1): every scope arrives past the deadline.
    let run = run(
        sim.url(),
        organization_input(&["us-east-1"]),
        900,
        store.clone(),
        &["--scope-start-hours", "0"],
    )
    .await;
    assert_eq!(run["status"], "FAILED", "{run}");
    assert_eq!(run["error"], "patchtrail.ScopesFailed", "{run}");
    let outcome = &run["outcome"];
    assert_eq!(outcome["status"], "failed", "an outcome was written: {run}");
    let expected: BTreeSet<(String, String)> = accounts
        .iter()
        .map(|a| (a.clone(), "us-east-1".to_string()))
        .collect();
    assert_eq!(
        scopes_of(&outcome["failed"])
            .into_iter()
            .collect::<BTreeSet<_>>(),
        expected
    );
    for failed in outcome["failed"].as_array().into_iter().flatten() {
        let error = failed["error"].as_str().unwrap_or("");
        assert!(
            error.starts_with("Fatal.Deadline: scope ") && error.contains("was not started"),
            "{outcome}"
        );
    }
    assert!(
        std::fs::read_dir(store.join("runs")).map_or(true, |mut d| d.next().is_none()),
        "nothing collected"
    );
    // Each scope was invoked once and refused at once (a Fatal error is not retried).
    assert_eq!(
        run["lambda_invocations"],
        1 + accounts.len() as u64 + 1,
        "{run}"
    );

    // A suspended run is not continued past the deadline: it stays at its checkpoint, named.
    let moto = start_moto();
    boto3(
        &moto,
        "s3.create_bucket(Bucket='hist'); s3.create_bucket(Bucket='work')",
    );
    let deps = deps(&sim.url(), Some(&moto.url)).await;
    let suspended = format!("20261206-{}-us-east-1-01", accounts[0]);
    let event = |deadline: Value| {
        json!({"s3_bucket": "hist", "s3_path": "p", "account_id": accounts[0], "region": "us-east-1",
               "role_name": "PatchtrailRead", "resumable": true, "resume": suspended,
               "work": "s3://work/exec-9", "execution_deadline": deadline})
    };
    let past = (chrono::Utc::now() - chrono::Duration::minutes(1)).to_rfc3339();
    let refused = handle(&deps, event(json!(past)), None)
        .await
        .expect_err("past the deadline");
    assert_eq!(refused.error_type(), "Fatal.Deadline", "{refused}");
    assert!(
        refused
            .message
            .contains(&format!("its run {suspended} stays suspended")),
        "{refused}"
    );
    boto3(
        &moto,
        &format!(
            "body = s3.get_object(Bucket='work', Key='exec-9/failed/{}/us-east-1.json')['Body'].read(); assert b'Fatal.Deadline' in body, body",
            accounts[0]
        ),
    );
    let malformed = handle(&deps, event(json!("next tuesday")), None)
        .await
        .expect_err("not a time");
    assert_eq!(malformed.error_type(), "Fatal.BadInput", "{malformed}");
    sim.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scope_that_fails_inside_the_map_fails_the_execution_and_is_named() {
    // Every role can be assumed; one account's role lacks a permission in one region (no
    // identity-based policy allows it), so its scope is planned and its collection fails inside
    // the Map, as on AWS.
    let regions = ["us-east-1", "ap-northeast-1"];
    let mut config = SimConfig {
        instances: 10,
        seed: 23,
        accounts: 3,
        regions: regions.iter().map(|r| r.to_string()).collect(),
        ..SimConfig::default()
    };
    let active = active_accounts(&config);
    let denied = (active[1].clone(), "ap-northeast-1".to_string());
    config.fail_scopes = vec![denied.clone()];
    let sim = patchtrail_sim::start(config, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("simulator");
    let dir = tempfile::tempdir().expect("tempdir");
    let run = run(
        sim.url(),
        organization_input(&["all"]),
        900,
        dir.path().join("store"),
        &[],
    )
    .await;

    assert_eq!(run["status"], "FAILED", "{run}");
    assert_eq!(run["error"], "patchtrail.ScopesFailed", "{run}");
    let cause = run["cause"].as_str().unwrap_or("");
    assert!(
        cause.starts_with(&format!(
            "1 of {} scopes not committed: {}/{} (Fatal.",
            active.len() * regions.len(),
            denied.0,
            denied.1
        )),
        "{run}"
    );
    let outcome = &run["outcome"];
    assert_eq!(outcome["status"], "failed", "{outcome}");
    assert_eq!(scopes_of(&outcome["failed"]), vec![denied.clone()]);
    assert!(
        outcome["failed"][0]["error"]
            .as_str()
            .unwrap_or("")
            .contains("allow the IAM action ec2:DescribeInstances"),
        "the scope's own error: {outcome}"
    );
    assert_eq!(outcome["denied"], json!([]), "{outcome}");
    assert_eq!(outcome["unreachable"], json!([]));
    let others: BTreeSet<(String, String)> = active
        .iter()
        .flat_map(|a| regions.iter().map(move |r| (a.clone(), r.to_string())))
        .filter(|s| *s != denied)
        .collect();
    let committed = scopes_of(&outcome["committed"]);
    assert_eq!(committed.len(), others.len(), "each once: {outcome}");
    assert_eq!(committed.into_iter().collect::<BTreeSet<_>>(), others);
    assert_eq!(committed_runs(&dir.path().join("store")).await, others);
    // The failed scope was invoked once (its error is not retryable), like every other.
    assert_eq!(
        run["lambda_invocations"],
        2 + 1 + others.len() as u64,
        "{run}"
    );
    assert_checksummed(&run);
    sim.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scopes_the_organization_forbids_are_denied_and_the_execution_succeeds() {
    // A region-deny SCP refuses one account one region, and a region the input names is not
    // enabled in any account (its credentials are refused there: EC2's AuthFailure): with
    // `Regions` wider than the SCP allows, every weekly run would otherwise fail (issue 34).
    let regions = ["us-east-1", "ap-northeast-1"];
    let mut config = SimConfig {
        instances: 10,
        seed: 29,
        accounts: 2,
        regions: regions.iter().map(|r| r.to_string()).collect(),
        ..SimConfig::default()
    };
    let active = active_accounts(&config);
    let scp = (active[1].clone(), "ap-northeast-1".to_string());
    config.deny_scopes = vec![scp.clone()];
    let sim = patchtrail_sim::start(config, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("simulator");
    let dir = tempfile::tempdir().expect("tempdir");
    let asked = ["us-east-1", "ap-northeast-1", "af-south-1"];
    let run = run(
        sim.url(),
        organization_input(&asked),
        900,
        dir.path().join("store"),
        &[],
    )
    .await;

    assert_eq!(run["status"], "SUCCEEDED", "{run}");
    let outcome = &run["outcome"];
    assert_eq!(outcome["status"], "committed", "{outcome}");
    assert_eq!(outcome["failed"], json!([]), "{outcome}");
    let mut expected_denied: Vec<(String, String)> = active
        .iter()
        .map(|a| (a.clone(), "af-south-1".to_string()))
        .chain([scp.clone()])
        .collect();
    expected_denied.sort();
    let mut denied = scopes_of(&outcome["denied"]);
    denied.sort();
    assert_eq!(denied, expected_denied, "{outcome}");
    let says = |scope: &(String, String)| {
        outcome["denied"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|l| l["account_id"] == scope.0.as_str() && l["region"] == scope.1.as_str())
            .and_then(|l| l["denied"].as_str())
            .unwrap_or("")
            .to_string()
    };
    assert!(says(&scp).contains("service control policy"), "{outcome}");
    assert!(
        says(&expected_denied[0]).contains("AuthFailure")
            || says(&expected_denied[0]).contains("credentials"),
        "{outcome}"
    );
    let committed: BTreeSet<(String, String)> = active
        .iter()
        .flat_map(|a| regions.iter().map(move |r| (a.clone(), r.to_string())))
        .filter(|s| *s != scp)
        .collect();
    assert_eq!(
        scopes_of(&outcome["committed"])
            .into_iter()
            .collect::<BTreeSet<_>>(),
        committed
    );
    assert_eq!(committed_runs(&dir.path().join("store")).await, committed);
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
        text_of(&out)
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
        latency: Duration::from_millis(20),
        ..SimConfig::default()
    };
    let sim = patchtrail_sim::start(config, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("simulator");
    let dir = tempfile::tempdir().expect("tempdir");
    let store_dir = dir.path().join("store");
    let run = run(
        sim.url(),
        organization_input(&["us-east-1"]),
        4,
        store_dir.clone(),
        &[],
    )
    .await;

    assert_eq!(run["status"], "SUCCEEDED", "{run}");
    assert_eq!(
        run["late"], 0,
        "every invocation answered before its deadline: {run}"
    );
    assert_eq!(run["outcome"]["status"], "committed", "{run}");
    let committed = run["outcome"]["committed"]
        .as_array()
        .expect("scopes")
        .clone();
    assert_eq!(committed.len(), 2, "{run}");
    let suspended = run["suspended"].as_u64().unwrap_or(0);
    assert!(
        suspended >= 2,
        "each scope needed more than one invocation: {run}"
    );
    assert_eq!(
        run["lambda_invocations"].as_u64(),
        Some(1 + 2 + suspended + 1),
        "one plan, per scope its suspended invocations and the one that commits, one outcome: {run}"
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

/// Regions enabled in every account without opting in (EC2 DescribeRegions' opt-in-not-required).
const REGIONS_17: [&str; 17] = [
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-south-1",
    "ap-southeast-1",
    "ap-southeast-2",
    "ca-central-1",
    "eu-central-1",
    "eu-north-1",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "sa-east-1",
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
];

/// One organization run over `accounts` x `regions` empty fleets (each invocation is quick; the
/// sizes are measured on the real execution of the definition): (scopes, the harness's answer).
async fn organization_at_scale(accounts: u64, regions: &[&str]) -> (usize, Value) {
    let config = SimConfig {
        instances: 0,
        hybrid: 0,
        seed: 31,
        accounts,
        regions: regions.iter().map(|r| r.to_string()).collect(),
        ..SimConfig::default()
    };
    let scopes = active_accounts(&config).len() * regions.len();
    let sim = patchtrail_sim::start(config, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("simulator");
    let dir = tempfile::tempdir().expect("tempdir");
    let started = Instant::now();
    let run = run(
        sim.url(),
        organization_input(&["all"]),
        900,
        dir.path().join("store"),
        &["--workers", "4", "--max-concurrency", "4"],
    )
    .await;
    eprintln!(
        "{scopes} scopes in {:.0} s; largest payload {}",
        started.elapsed().as_secs_f64(),
        run["payload"]
    );
    assert_eq!(run["status"], "SUCCEEDED", "{}", run["cause"]);
    assert_eq!(run["outcome"]["planned"], scopes);
    assert_eq!(
        run["outcome"]["committed"].as_array().map(Vec::len),
        Some(scopes)
    );
    assert_payloads_fit(&run);
    assert!(
        run["payload"]["measured"].as_u64().unwrap_or(0) > 2 * scopes as u64,
        "every child's states were measured: {}",
        run["payload"]
    );
    sim.stop().await.expect("stop");
    (scopes, run)
}

/// The largest state payload does not grow with the organization (ItemReader and ResultWriter
/// keep the scopes' list and results in S3, never in a state): measured on real executions of
/// about 20 and 200 scopes, it stays within a few bytes (counts gain digits). The 2,000-scope
/// run, 18-20 minutes in moto's single-threaded interpreter, is a bench:
/// `scripts/bench-organization`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_largest_state_payload_does_not_grow_with_the_scopes() {
    let regions = &REGIONS_17[..10];
    let (few, small) = organization_at_scale(2, regions).await;
    let (many, large) = organization_at_scale(20, regions).await;
    assert!(few >= 10 && many >= 8 * few, "{few} and {many} scopes");
    let bytes = |run: &Value| run["payload"]["bytes"].as_u64().expect("measured");
    assert!(
        bytes(&large) <= bytes(&small) + PAYLOAD_GROWTH_SLACK,
        "the largest payload grew from {} bytes at {few} scopes to {} at {many}: {} / {}",
        bytes(&small),
        bytes(&large),
        small["payload"],
        large["payload"]
    );
}

/// Bytes the largest payload may gain from ~20 to ~200 scopes: numbers that gain a digit
/// (counts, sizes), nothing that lists the scopes.
const PAYLOAD_GROWTH_SLACK: u64 = 64;

/// The 2,000-scope run (118 accounts x 17 regions): a bench, run by `scripts/bench-organization`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a bench (18-20 min): scripts/bench-organization runs it"]
async fn two_thousand_scopes_keep_every_state_under_256_kib() {
    let (scopes, _) = organization_at_scale(118, &REGIONS_17).await;
    assert!(scopes >= 2_000, "{scopes}");
}

// ------------------------------------------------------------------ the handler, step by step

/// A moto server (S3) on a free loopback port, killed when dropped.
struct Moto {
    child: Child,
    url: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_moto() -> Moto {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port");
    // moto's own server with S3's atomic conditional writes (tests/py/moto_s3_server.py says why).
    let child = Command::new(python())
        .arg(repo_root().join("tests/py/moto_s3_server.py"))
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start moto_server (installed by scripts/test)");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "moto_server did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    Moto {
        child,
        url: format!("http://127.0.0.1:{port}"),
    }
}

/// Runs a boto3 snippet against moto S3 (`s3` is the client).
fn boto3(moto: &Moto, code: &str) {
    let script = format!(
        "import boto3, json\ns3 = boto3.client('s3', endpoint_url='{}', region_name='us-east-1', aws_access_key_id='t', aws_secret_access_key='t')\n{code}",
        moto.url
    );
    let out = Command::new(python())
        .args(["-c", &script])
        .output()
        .expect("python");
    assert!(out.status.success(), "{}", text_of(&out));
}

/// The handler's dependencies as main builds them, pointed at loopback.
async fn deps(sim_url: &str, s3_url: Option<&str>) -> Deps {
    let credentials = Credentials::new("testing", "testing", None, None, "test");
    let aws = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_types::region::Region::new("us-east-1"))
        .endpoint_url(sim_url)
        .credentials_provider(credentials.clone())
        .load()
        .await;
    let s3 = AwsAccess {
        region: Some("us-east-1".into()),
        credentials: Some(SharedCredentialsProvider::new(credentials)),
        endpoint: s3_url.map(str::to_string),
    };
    Deps { aws, s3 }
}

#[tokio::test]
async fn member_roles_are_named_in_the_callers_partition() {
    // A simulated organization in the China partition: its STS refuses role ARNs of another
    // partition, as STS does, so a member account is only reached with arn:aws-cn:iam::...
    let config = SimConfig {
        instances: 1,
        accounts: 2,
        regions: vec!["cn-north-1".into()],
        region: "cn-north-1".into(),
        partition: "aws-cn".into(),
        ..SimConfig::default()
    };
    let active = active_accounts(&config);
    let sim = patchtrail_sim::start(config, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("simulator");
    let deps = deps(&sim.url(), None).await;
    let plan = handle(
        &deps,
        json!({"s3_bucket": "h/", "s3_path": "p", "action": "plan", "organization": true,
               "regions": ["cn-north-1"], "role_name": "PatchtrailRead"}),
        None,
    )
    .await
    .expect("a plan");
    assert_eq!(
        plan["failed"],
        json!([]),
        "every member role assumed: {plan}"
    );
    let accounts: BTreeSet<String> = scopes_of(&plan["scopes"])
        .into_iter()
        .map(|s| s.0)
        .collect();
    assert_eq!(accounts, active.into_iter().collect());
    sim.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outcome_names_every_scope_without_a_committed_run_whatever_the_map_said() {
    // The steps the state machine runs, called directly: a plan, one scope committed, one failed
    // inside the Map with nothing recorded but the Map's FAILED results, the rest never run
    // because the Map stopped at its tolerated failure share.
    let regions = ["us-east-1", "us-west-2"];
    let config = SimConfig {
        instances: 3,
        seed: 37,
        accounts: 2,
        regions: regions.iter().map(|r| r.to_string()).collect(),
        ..SimConfig::default()
    };
    let sim = patchtrail_sim::start(config, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("simulator");
    let moto = start_moto();
    boto3(
        &moto,
        "s3.create_bucket(Bucket='hist'); s3.create_bucket(Bucket='work')",
    );
    let deps = deps(&sim.url(), Some(&moto.url)).await;
    let request = json!({"s3_bucket": "hist/", "s3_path": "p", "format": "jsonl",
                         "organization": true, "regions": regions, "role_name": "PatchtrailRead"});
    let with = |extra: Value| {
        let mut event = request.clone();
        event
            .as_object_mut()
            .expect("object")
            .extend(extra.as_object().expect("object").clone());
        event
    };
    let plan = handle(
        &deps,
        with(json!({"action": "plan", "work": "s3://work/exec-7"})),
        None,
    )
    .await
    .expect("plan");
    assert_eq!(
        plan["items"],
        json!({"Bucket": "work", "Key": "exec-7/scopes.json"})
    );
    let planned = plan["scopes"].as_u64().expect("count") as usize;
    assert_eq!(planned, 4, "two accounts, two regions: {plan}");
    // The first scope commits (and records it) as CollectScope's invocation does.
    let first = json!({"account_id": "123456789012", "region": "us-east-1"});
    let answer = handle(
        &deps,
        with(
            json!({"account_id": "123456789012", "region": "us-east-1", "resumable": true,
                    "work": "s3://work/exec-7"}),
        ),
        None,
    )
    .await
    .expect("a committed scope");
    assert_eq!(answer["status"], "ok", "{answer}");
    // Its answer lost after the commit (Lambda.ServiceException), Step Functions invokes it again
    // without `resume`: the run already committed is the answer, not a second run (issue 34).
    let again = handle(
        &deps,
        with(
            json!({"account_id": "123456789012", "region": "us-east-1", "resumable": true,
                    "work": "s3://work/exec-7"}),
        ),
        None,
    )
    .await
    .expect("the retried scope");
    assert_eq!(
        again["scopes"][0]["run_id"], answer["scopes"][0]["run_id"],
        "{again} {answer}"
    );
    let manifests = Store::open("s3://hist/p", &deps.s3)
        .expect("history")
        .list_keys("runs/")
        .await
        .expect("list");
    assert_eq!(manifests.len(), 1, "one run: {manifests:?}");
    // The second one failed in a way only the Map's results know (its child timed out): a
    // FAILED file and the manifest, in the format of "ResultWriter (Map)".
    boto3(
        &moto,
        r#"
child_input = json.dumps({"request": {}, "scope": {"account_id": "123456789012", "region": "us-west-2"}, "work": "s3://work/exec-7"})
failed = [{"Error": "States.Timeout", "Cause": "The task timed out.", "Input": child_input, "InputDetails": {"Included": True},
           "Name": "c2", "Status": "FAILED", "ExecutionArn": "arn:aws:states:us-east-1:123456789012:execution:m/CollectScopes:c2"}]
s3.put_object(Bucket='work', Key='exec-7/map/run-1/FAILED_0.json', Body=json.dumps(failed))
manifest = {"DestinationBucket": "work", "MapRunArn": "arn:aws:states:us-east-1:123456789012:mapRun:m/CollectScopes:run-1",
            "ResultFiles": {"FAILED": [{"Key": "exec-7/map/run-1/FAILED_0.json", "Size": 1}], "PENDING": [], "SUCCEEDED": []}}
s3.put_object(Bucket='work', Key='exec-7/map/run-1/manifest.json', Body=json.dumps(manifest))
"#,
    );
    let map = json!({"MapRunArn": "arn:aws:states:us-east-1:123456789012:mapRun:m/CollectScopes:run-1",
                     "ResultWriterDetails": {"Bucket": "work", "Key": "exec-7/map/run-1/manifest.json"}});
    let outcome_event = with(
        json!({"action": "outcome", "execution": "exec-7", "work": "s3://work/exec-7", "map": map}),
    );
    let answer = handle(&deps, outcome_event.clone(), None)
        .await
        .expect("an outcome");
    assert_eq!(answer["status"], "failed", "{answer}");
    assert_eq!(
        (
            &answer["planned"],
            &answer["committed"],
            &answer["failed"],
            &answer["unreachable"]
        ),
        (&json!(4), &json!(1), &json!(3), &json!(0)),
        "{answer}"
    );
    assert_eq!(
        answer["outcome"],
        "s3://hist/p/_patchtrail/organization-runs/exec-7.json"
    );
    // The record in the history, read back with boto3's eyes through the store.
    let history = Store::open("s3://hist/p", &deps.s3).expect("history");
    let record: Value = serde_json::from_slice(
        &history
            .get("_patchtrail/organization-runs/exec-7.json")
            .await
            .expect("the outcome object"),
    )
    .expect("JSON");
    assert_eq!(scopes_of(&record["committed"]), vec![scope_of(&first)]);
    let failed = record["failed"].as_array().expect("failed");
    assert_eq!(failed.len(), 3);
    let timed_out = failed
        .iter()
        .find(|f| scope_of(f) == ("123456789012".into(), "us-west-2".into()))
        .expect("the timed-out scope");
    assert_eq!(timed_out["error"], "States.Timeout: The task timed out.");
    assert!(
        failed
            .iter()
            .filter(|f| f["error"] != timed_out["error"])
            .all(|f| f["error"]
                .as_str()
                .unwrap_or("")
                .starts_with("no committed run")),
        "{record}"
    );
    // A retried outcome step finds its own record and answers the same.
    let again = handle(&deps, outcome_event, None)
        .await
        .expect("the same outcome");
    assert_eq!(again, answer);
    // The Map's own failure (its tolerated share exceeded) is named too, for another execution.
    let answer = handle(
        &deps,
        with(json!({"action": "outcome", "execution": "exec-8", "work": "s3://work/exec-7",
                    "map": {"Error": "States.ExceedToleratedFailureThreshold", "Cause": "The specified tolerated failure threshold was exceeded"}})),
        None,
    )
    .await
    .expect("an outcome");
    assert!(
        answer["cause"]
            .as_str()
            .unwrap_or("")
            .contains("the Map failed with States.ExceedToleratedFailureThreshold"),
        "{answer}"
    );
    // Its Catch passed only Error and Cause, yet the child's own error is named: the outcome
    // listed the Map Run's results in the execution's folder.
    let record: Value = serde_json::from_slice(
        &history
            .get("_patchtrail/organization-runs/exec-8.json")
            .await
            .expect("the outcome object"),
    )
    .expect("JSON");
    let timed_out = record["failed"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|f| scope_of(f) == ("123456789012".into(), "us-west-2".into()))
        .expect("the timed-out scope");
    assert_eq!(
        timed_out["error"], "States.Timeout: The task timed out.",
        "{record}"
    );
    sim.stop().await.expect("stop");
}

#[test]
fn each_committed_scope_exports_its_findings_to_security_hub_from_its_own_account() {
    // `"export": ["security-hub"]`: after each scope commits, its findings go to Security Hub
    // (moto's, reached through the SDK's standard variable for that service, as on AWS an
    // interface endpoint would be) from the scope's own account.
    let moto = start_moto();
    // SAFETY: set before the runtime and any other thread of this test process start (nextest
    // runs each test in its own process).
    unsafe { std::env::set_var("AWS_ENDPOINT_URL_SECURITYHUB", &moto.url) };
    boto3(&moto, "s3.create_bucket(Bucket='hist')");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let answer = runtime.block_on(async {
        let config = SimConfig {
            instances: 12,
            seed: 5,
            accounts: 2,
            regions: vec!["us-east-1".into()],
            // Scans of today: fresh as of the export's now (older ones say nothing, §4.1).
            date: chrono::Utc::now().date_naive(),
            ..SimConfig::default()
        };
        let accounts = active_accounts(&config);
        let sim = patchtrail_sim::start(config, "127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("simulator");
        let deps = deps(&sim.url(), Some(&moto.url)).await;
        let answer = handle(
            &deps,
            json!({"s3_bucket": "hist/", "s3_path": "p", "format": "jsonl", "accounts": accounts,
                   "regions": ["us-east-1"], "role_name": "PatchtrailRead",
                   "export": ["security-hub"]}),
            None,
        )
        .await
        .expect("committed scopes");
        sim.stop().await.expect("stop");
        answer
    });
    let lines = answer["scopes"].as_array().expect("scopes");
    assert_eq!(lines.len(), 2, "{answer}");
    let mut imported = 0;
    for line in lines {
        let sent = &line["security_hub"];
        assert_eq!(sent["failed"], json!([]), "{answer}");
        let n = sent["imported"].as_u64().unwrap_or(0);
        assert!(n > 0, "every scope has findings to send: {answer}");
        imported += n;
    }
    // What Security Hub holds: every finding once, each from the account it names, each valid
    // against botocore's model.
    let mut cmd = Command::new(python());
    cmd.arg(repo_root().join("tests/py/securityhub_check.py"))
        .args(["list", "-", "-"])
        .env("AWS_ENDPOINT_URL", &moto.url)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_DEFAULT_REGION", "us-east-1");
    let out = cmd.output().expect("python");
    assert!(out.status.success(), "{}", text_of(&out));
    let held: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(held["error_count"], 0, "{held:#}");
    assert_eq!(held["count"].as_u64(), Some(imported), "{held:#}");
    assert_eq!(held["distinct_ids"], held["count"], "{held:#}");
    let senders: BTreeSet<&str> = held["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter_map(|f| f["AwsAccountId"].as_str())
        .collect();
    assert_eq!(senders.len(), 2, "both accounts' findings: {held:#}");
}
