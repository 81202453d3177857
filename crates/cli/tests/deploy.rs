//! The deployment: CloudFormation lint, least privilege derived from a recorded run, the policy
//! documents without drift, and the Lambda handler on recorded Scheduler events.

mod common;

use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use common::*;
use patchtrail_lambda::{Deps, handle};
use patchtrail_store::AwsAccess;
use serde_json::Value;
use std::collections::BTreeSet;
use std::process::Command;

#[test]
fn cfn_lint_passes_without_errors_or_warnings() {
    let out = Command::new(venv_bin("cfn-lint"))
        .arg(repo_root().join("deploy/patchtrail.yaml"))
        .arg(repo_root().join("deploy/patchtrail-organization.yaml"))
        .arg(repo_root().join("deploy/patchtrail-member-role.yaml"))
        .output()
        .expect("run cfn-lint");
    assert!(
        out.status.success(),
        "cfn-lint:\n{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_eq!(text(&out.stdout).trim(), "", "no findings");
}

fn policy_actions() -> BTreeSet<String> {
    let out = Command::new(python())
        .arg(repo_root().join("deploy/check_policies.py"))
        .arg("--actions")
        .output()
        .expect("run check_policies");
    let stdout = ok(out);
    let actions: Vec<String> = serde_json::from_str(&stdout).expect("a JSON list of actions");
    actions
        .into_iter()
        .filter(|a| !a.starts_with("logs:"))
        .collect()
}

/// The S3 action a recorded request needs.
fn s3_action(request: &Value) -> Option<&'static str> {
    let method = request["method"].as_str()?;
    let path = request["url"]
        .as_str()
        .or(request["path"].as_str())
        .unwrap_or("");
    let query = path.split_once('?').map(|(_, q)| q).unwrap_or("");
    let key_part = path
        .split('?')
        .next()
        .unwrap_or("")
        .trim_start_matches("http://")
        .split('/')
        .nth(2)
        .unwrap_or("");
    match method {
        "GET" if query.contains("list-type") || key_part.is_empty() => Some("s3:ListBucket"),
        "GET" | "HEAD" => Some("s3:GetObject"),
        "PUT" | "POST" => Some("s3:PutObject"),
        "DELETE" => Some("s3:DeleteObject"),
        _ => None,
    }
}

#[test]
fn the_role_allows_exactly_the_actions_a_recorded_run_calls() {
    let moto = start_moto();
    let sim = start_sim(&["--instances", "40", "--seed", "12"]);
    py_json(&moto.url, "moto_fleet.py", &["recorded", "0", "0"]);
    let recorder = |verb: &str| {
        let script = format!(
            "import urllib.request; urllib.request.urlopen(urllib.request.Request('{}/moto-api/recorder/{verb}', method='POST')).read()",
            moto.url
        );
        ok(Command::new(python())
            .args(["-c", &script])
            .output()
            .expect("recorder"));
    };
    recorder("start-recording");
    for _ in 0..2 {
        let mut cmd = Command::new(patchtrail_bin());
        aws_env(&mut cmd, &sim.url);
        cmd.env("AWS_ENDPOINT_URL_S3", &moto.url);
        ok(cmd
            .args(["collect", "--store", "s3://recorded/patchtrail"])
            .output()
            .expect("collect"));
    }
    recorder("stop-recording");
    let script = format!(
        "import urllib.request,sys; sys.stdout.write(urllib.request.urlopen('{}/moto-api/recorder/download-recording').read().decode())",
        moto.url
    );
    let recording = ok(Command::new(python())
        .args(["-c", &script])
        .output()
        .expect("download"));
    let mut called: BTreeSet<String> = recording
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|r| s3_action(&r).map(str::to_string))
        .collect();
    let stats: Value = {
        let script = format!(
            "import urllib.request,sys; sys.stdout.write(urllib.request.urlopen('{}/_sim/stats').read().decode())",
            sim.url
        );
        serde_json::from_str(&ok(Command::new(python())
            .args(["-c", &script])
            .output()
            .expect("stats")))
        .expect("stats json")
    };
    called.extend(
        stats
            .as_array()
            .expect("stats")
            .iter()
            .filter_map(|s| s["operation"].as_str().map(str::to_string)),
    );
    assert!(
        called.contains("ssm:DescribeInstancePatches") && called.contains("s3:PutObject"),
        "{called:?}"
    );
    assert_eq!(
        policy_actions(),
        called,
        "the role allows exactly what a run calls"
    );
}

#[test]
fn policy_documents_do_not_drift() {
    let out = Command::new(python())
        .arg(repo_root().join("deploy/check_policies.py"))
        .output()
        .expect("run");
    ok(out);
    let readme = std::fs::read_to_string(repo_root().join("README.md")).expect("README");
    let block = readme
        .split("Minimal IAM policy")
        .nth(1)
        .and_then(|s| s.split("```json").nth(1))
        .and_then(|s| s.split("```").next())
        .expect("the README's policy block");
    let in_readme: Value = serde_json::from_str(block).expect("README policy is JSON");
    let shipped = read_json(&repo_root().join("deploy/iam/patchtrail-cli-policy.json"));
    assert_eq!(
        in_readme, shipped,
        "README's minimal IAM policy is deploy/iam/patchtrail-cli-policy.json"
    );
}

fn event(name: &str) -> Value {
    read_json(&repo_root().join("crates/lambda/tests/events").join(name))
}

#[tokio::test]
async fn the_lambda_handler_commits_a_run_from_a_recorded_scheduler_event() {
    let moto = start_moto();
    let sim = start_sim(&["--instances", "30", "--seed", "14"]);
    py_json(&moto.url, "moto_fleet.py", &["patch-history", "0", "0"]);
    let credentials = Credentials::new("testing", "testing", None, None, "test");
    // The Lambda's dependencies as main builds them, pointed at loopback: EC2, SSM and STS from
    // the simulator, S3 from moto.
    let aws = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_types::region::Region::new("us-east-1"))
        .endpoint_url(&sim.url)
        .credentials_provider(credentials.clone())
        .load()
        .await;
    let s3 = AwsAccess {
        region: Some("us-east-1".into()),
        credentials: Some(SharedCredentialsProvider::new(credentials)),
        endpoint: Some(moto.url.clone()),
    };
    let deps = Deps { aws, s3 };

    let summary = handle(&deps, event("scheduler-parquet.json"), None)
        .await
        .expect("a committed run");
    assert!(
        ["ok", "partial"].contains(&summary["status"].as_str().unwrap_or("")),
        "{summary}"
    );
    assert_eq!(summary["format"], "parquet");
    let read = py_json(&moto.url, "read_s3.py", &["patch-history", "patchtrail"]);
    assert_eq!(read["manifests"].as_array().map(Vec::len), Some(1));
    assert_eq!(read["manifests"][0]["run_id"], summary["run_id"]);
    assert_eq!(read["patch_rows"], summary["counts"]["patches"]);

    let seed = handle(&deps, event("scheduler-seed-input.json"), None)
        .await
        .expect("the seed's own input");
    assert_eq!(seed["format"], "seed");
    let read = py_json(&moto.url, "read_s3.py", &["patch-history", "seed-report"]);
    assert!(
        read["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .any(|k| k.as_str().unwrap_or("").starts_with("year="))
    );

    let bad = handle(&deps, event("scheduler-bad-format.json"), None)
        .await
        .expect_err("format csv is refused");
    assert_eq!(bad.error_type(), "Fatal.BadInput", "{bad}");
    let missing = handle(
        &deps,
        serde_json::json!({"s3_bucket": "no-such-bucket/", "s3_path": "x"}),
        None,
    )
    .await
    .expect_err("no bucket");
    assert!(
        !missing.retryable && missing.message.contains("does not exist"),
        "{missing}"
    );
}
