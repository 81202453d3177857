//! The deployment: CloudFormation lint, least privilege derived from a recorded run, every role's
//! policy checked against what it must allow (and the checker shown to refuse drift), the READMEs'
//! `aws` commands against the AWS CLI's models, uploads into an Object Lock bucket, and the Lambda
//! handler on recorded Scheduler events.

mod common;

use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use common::*;
use patchtrail_lambda::{Deps, handle};
use patchtrail_store::AwsAccess;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::process::{Command, Output};

#[test]
fn cfn_lint_passes_without_errors_or_warnings() {
    let out = Command::new(venv_bin("cfn-lint"))
        .arg(repo_root().join("deploy/patchtrail.yaml"))
        .arg(repo_root().join("deploy/patchtrail-organization.yaml"))
        .arg(repo_root().join("deploy/patchtrail-member-role.yaml"))
        .arg(repo_root().join("deploy/patchtrail-delegation-policy.yaml"))
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
        // DeleteObjects (`POST ?delete`) is authorized as s3:DeleteObject on each key.
        "POST"
            if query
                .split('&')
                .any(|p| p == "delete" || p.starts_with("delete=")) =>
        {
            Some("s3:DeleteObject")
        }
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

/// check_policies.py on the shipped templates, with one of them replaced by `replace` applied
/// to its text.
fn check_policies_with(file: &str, option: &str, replace: (&str, &str)) -> Output {
    let text = std::fs::read_to_string(repo_root().join("deploy").join(file)).expect("template");
    assert!(
        text.contains(replace.0),
        "{file} no longer holds {:?}",
        replace.0
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let changed = dir.path().join(file);
    std::fs::write(&changed, text.replace(replace.0, replace.1)).expect("write");
    Command::new(python())
        .arg(repo_root().join("deploy/check_policies.py"))
        .arg(option)
        .arg(&changed)
        .output()
        .expect("run check_policies")
}

#[test]
fn every_role_is_checked_against_what_it_must_allow() {
    let refused = |file: &str, option: &str, replace: (&str, &str), expected: &str| {
        let out = check_policies_with(file, option, replace);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{file} {replace:?}: {stderr}");
        assert!(stderr.contains(expected), "{file}: {stderr}");
    };
    let org = "patchtrail-organization.yaml";
    // The state machine's role, against what its definition needs.
    refused(
        org,
        "--org-template",
        (
            "Resource: !Sub 'arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:stateMachine:${AWS::StackName}-organization'",
            "Resource: '*'",
        ),
        "StateMachineRole allows states:StartExecution on",
    );
    refused(
        org,
        "--org-template",
        ("                  - s3:ListMultipartUploadParts\n", ""),
        "StateMachineRole lacks s3:ListMultipartUploadParts",
    );
    // The schedule's role, against its target and dead-letter queue.
    refused(
        org,
        "--org-template",
        (
            "              - Sid: DeadLetter\n                Effect: Allow\n                Action: sqs:SendMessage\n                Resource: !GetAtt ScheduleDeadLetterQueue.Arn\n",
            "",
        ),
        "SchedulerRole lacks sqs:SendMessage",
    );
    // A role no rule covers.
    refused(
        org,
        "--org-template",
        (
            "  # ---------------------------------------------------------------- schedule\n",
            "  SpareRole:\n    Type: AWS::IAM::Role\n    Properties:\n      AssumeRolePolicyDocument: {Version: '2012-10-17', Statement: [{Effect: Allow, Principal: {Service: lambda.amazonaws.com}, Action: sts:AssumeRole}]}\n      Policies: [{PolicyName: p, PolicyDocument: {Version: '2012-10-17', Statement: [{Effect: Allow, Action: s3:GetObject, Resource: '*'}]}}]\n",
        ),
        "no rule of check_policies.py covers role SpareRole",
    );
    // The member role trusting the collector's role ARN, which must exist first and breaks when
    // the collector role is recreated.
    refused(
        "patchtrail-member-role.yaml",
        "--member-template",
        (
            "Principal: {AWS: !Sub 'arn:${AWS::Partition}:iam::${CollectorAccountId}:root'}",
            "Principal: {AWS: !Sub 'arn:${AWS::Partition}:iam::${CollectorAccountId}:role/${CollectorRoleName}'}",
        ),
        "the member role must trust the collector account's root",
    );
    // A state machine that writes into the history itself (the Object Lock checksum is then
    // Step Functions' to send) needs a rule first.
    let out = check_policies_with(
        org,
        "--org-template",
        (
            "          Outcome:\n",
            "          Extra:\n            Type: Task\n            Resource: arn:aws:states:::aws-sdk:s3:putObject\n            Arguments: {Bucket: b, Key: k, Body: x}\n            Next: Outcome\n          Outcome:\n",
        ),
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr)
            .contains("no rule for task resource arn:aws:states:::aws-sdk:s3:putObject"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn the_readmes_aws_commands_exist_and_fit_the_templates() {
    let out = Command::new(python())
        .arg(repo_root().join("tests/py/check_aws_commands.py"))
        .arg(repo_root())
        .args(["deploy/README.md", "README.md", "README.ja.md"])
        .output()
        .expect("run check_aws_commands.py");
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert!(out.status.success(), "{report}\n{}", text(&out.stderr));
    assert!(report["commands"].as_u64().unwrap_or(0) >= 20, "{report}");
    let readme = std::fs::read_to_string(repo_root().join("deploy/README.md")).expect("README");
    // Both set-ups, each step in its order.
    for steps in [
        &[
            "### Set-up A",
            "activate-organizations-access",
            "deploy/patchtrail-organization.yaml",
            "create-stack-set",
            "create-stack-instances",
            "start-execution",
        ][..],
        &[
            "### Set-up B",
            "activate-organizations-access",
            "register-delegated-administrator",
            "deploy/patchtrail-delegation-policy.yaml",
            "deploy/patchtrail-member-role.yaml --stack-name",
            "deploy/patchtrail-organization.yaml",
            "create-stack-set --stack-set-name patchtrail-member-role --call-as DELEGATED_ADMIN",
            "create-stack-instances --stack-set-name patchtrail-member-role --call-as DELEGATED_ADMIN",
        ][..],
    ] {
        let mut at = 0;
        for step in steps {
            at += readme[at..]
                .find(step)
                .unwrap_or_else(|| panic!("deploy/README.md: {step:?} missing or out of order"));
        }
    }
    assert!(
        readme.contains("### One-time smoke deploy"),
        "the checklist"
    );
}

#[test]
fn collect_uploads_every_object_with_a_checksum_as_object_lock_requires() {
    let moto = start_moto();
    let sim = start_sim(&["--instances", "20", "--seed", "16"]);
    py_json(&moto.url, "moto_fleet.py", &["locked-history", "0", "0"]);
    let proxy = start_s3_proxy(&moto.url, "0", "1", &["--object-lock"]);
    let count = |what: &str| -> u64 {
        let script = format!(
            "import urllib.request,sys; sys.stdout.write(urllib.request.urlopen('{}/_{what}').read().decode())",
            proxy.url
        );
        ok(Command::new(python())
            .args(["-c", &script])
            .output()
            .expect("count"))
        .trim()
        .parse()
        .expect("a number")
    };
    // The proxy refuses an upload without a checksum, as S3 does in such a bucket.
    let script = format!(
        "import boto3, botocore.config\ns3 = boto3.client('s3', endpoint_url='{}', config=botocore.config.Config(request_checksum_calculation='when_required'))\ntry:\n    s3.put_object(Bucket='locked-history', Key='probe', Body=b'x')\n    print('accepted')\nexcept s3.exceptions.ClientError as e:\n    print(e.response['Error']['Code'])",
        proxy.url
    );
    let mut cmd = Command::new(python());
    aws_env(&mut cmd, &proxy.url);
    let answer = ok(cmd.args(["-c", &script]).output().expect("boto3"));
    assert_eq!(answer.trim(), "InvalidRequest");
    assert_eq!(count("refused"), 1);

    let mut cmd = Command::new(patchtrail_bin());
    aws_env(&mut cmd, &sim.url);
    cmd.env("AWS_ENDPOINT_URL_S3", &proxy.url);
    ok(cmd
        .args(["collect", "--store", "s3://locked-history/patchtrail"])
        .output()
        .expect("collect"));
    assert_eq!(count("refused"), 1, "no upload of collect was refused");
    assert!(
        count("uploads") >= 3,
        "data, manifest and chain went through"
    );
    let read = py_json(&moto.url, "read_s3.py", &["locked-history", "patchtrail"]);
    assert_eq!(
        read["manifests"].as_array().map(Vec::len),
        Some(1),
        "{read}"
    );
}

fn template(name: &str) -> Value {
    let out = Command::new(python())
        .arg(repo_root().join("tests/py/template_json.py"))
        .arg(repo_root().join("deploy").join(name))
        .output()
        .expect("run template_json.py");
    serde_json::from_str(&ok(out)).expect("template JSON")
}

/// The resources of `t` of type `kind`.
fn of_type<'a>(t: &'a Value, kind: &str) -> Vec<(&'a String, &'a Value)> {
    t["Resources"]
        .as_object()
        .expect("Resources")
        .iter()
        .filter(|(_, r)| r["Type"] == kind)
        .collect()
}

#[test]
fn the_organization_stack_alarms_dead_letters_and_reserves_no_concurrency_by_default() {
    let t = template("patchtrail-organization.yaml");
    let alarms = of_type(&t, "AWS::CloudWatch::Alarm");
    let alarm = |namespace: &str, metric: &str| {
        alarms
            .iter()
            .find(|(_, a)| {
                a["Properties"]["Namespace"] == namespace && a["Properties"]["MetricName"] == metric
            })
            .unwrap_or_else(|| panic!("no alarm on {namespace} {metric}"))
            .1
            .clone()
    };
    for (namespace, metric, dimension) in [
        ("AWS/States", "ExecutionsFailed", "StateMachineArn"),
        ("AWS/States", "ExecutionsTimedOut", "StateMachineArn"),
        ("AWS/Lambda", "Errors", "FunctionName"),
        ("AWS/Lambda", "Throttles", "FunctionName"),
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName"),
    ] {
        let a = alarm(namespace, metric);
        assert_eq!(a["Properties"]["Dimensions"][0]["Name"], dimension, "{a}");
        assert_eq!(
            a["Properties"]["AlarmActions"],
            json!([{"Ref": "AlarmTopic"}]),
            "{metric} notifies the topic: {a}"
        );
    }
    assert_eq!(of_type(&t, "AWS::SNS::Topic").len(), 1);
    let subscription = &of_type(&t, "AWS::SNS::Subscription")[0].1;
    assert_eq!(subscription["Condition"], "HasAlarmEmail");
    let schedule = &of_type(&t, "AWS::Scheduler::Schedule")[0].1["Properties"]["Target"];
    assert_eq!(
        schedule["DeadLetterConfig"]["Arn"],
        json!({"Fn::GetAtt": ["ScheduleDeadLetterQueue", "Arn"]})
    );
    // The working bucket outlives the stack (S3 refuses to delete a bucket that holds objects, and
    // it always holds WorkRetentionDays of work), and the README says so.
    let work = &t["Resources"]["WorkBucket"];
    assert_eq!(
        (&work["DeletionPolicy"], &work["UpdateReplacePolicy"]),
        (&json!("Retain"), &json!("Retain"))
    );
    let readme = std::fs::read_to_string(repo_root().join("deploy/README.md")).expect("README");
    assert!(
        !readme.contains("Deleted with the stack")
            && readme.contains("aws s3 rb s3://WORK_BUCKET --force"),
        "deploy/README.md must say the working bucket is kept and how to remove it"
    );
    // ToleratedFailurePercentage is an integer in the Map state (ASL): a decimal is refused.
    let tolerated = &t["Parameters"]["ToleratedFailurePercentage"];
    let pattern = tolerated["AllowedPattern"]
        .as_str()
        .expect("an AllowedPattern");
    let check = Command::new("python3")
        .args([
            "-c",
            "import re, sys\np = re.compile(sys.argv[1])\nok = [v for v in sys.argv[2:] if p.fullmatch(v)]\nprint(','.join(ok))",
            pattern,
            "0",
            "7",
            "100",
            "12.5",
            "101",
            "-1",
            "007",
            "",
        ])
        .output()
        .expect("python3");
    assert_eq!(text(&check.stdout).trim(), "0,7,100", "{pattern}");
    // No reservation by default: Lambda refuses one that leaves under 100 unreserved, and young
    // accounts have a limit of 10 or 50 (CREATE_FAILED, the whole stack rolled back); when set,
    // the function takes it.
    assert_eq!(t["Parameters"]["ReservedConcurrency"]["Default"], 0);
    assert_eq!(
        t["Conditions"]["HasReservedConcurrency"],
        json!({"Fn::Not": [{"Fn::Equals": [{"Ref": "ReservedConcurrency"}, "0"]}]})
    );
    let function = &of_type(&t, "AWS::Lambda::Function")[0].1["Properties"];
    assert_eq!(
        function["ReservedConcurrentExecutions"],
        json!({"Fn::If": ["HasReservedConcurrency", {"Ref": "ReservedConcurrency"}, {"Ref": "AWS::NoValue"}]}),
        "{function}"
    );
    // No NoEcho parameter ends up in the schedule's input, where GetSchedule shows it anyway.
    let input = schedule["Input"].to_string();
    for (name, p) in t["Parameters"].as_object().expect("Parameters") {
        if p["NoEcho"] == true {
            assert!(
                !input.contains(&format!("${{{name}}}")),
                "{name} is NoEcho but in the schedule input"
            );
        }
    }
}

#[test]
fn the_history_bucket_offers_sse_kms_with_a_bucket_key_access_logs_and_object_lock() {
    let t = template("patchtrail.yaml");
    let bucket = &t["Resources"]["HistoryBucket"]["Properties"];
    let encryption = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0].to_string();
    for part in ["aws:kms", "KmsKeyArn", "BucketKeyEnabled", "AES256"] {
        assert!(encryption.contains(part), "{part}: {encryption}");
    }
    assert!(
        bucket["LoggingConfiguration"]
            .to_string()
            .contains("AccessLogBucketName"),
        "{bucket}"
    );
    assert!(
        bucket["ObjectLockConfiguration"]
            .to_string()
            .contains("COMPLIANCE"),
        "{bucket}"
    );
}

#[test]
fn the_test_venv_holds_exactly_the_locked_versions() {
    let lock = std::fs::read_to_string(repo_root().join("requirements-test.lock")).expect("lock");
    let out = Command::new(python())
        .args(["-m", "pip", "freeze"])
        .output()
        .expect("pip freeze");
    let installed: BTreeSet<String> = ok(out).lines().map(|l| l.to_lowercase()).collect();
    let locked: Vec<String> = lock
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(str::to_lowercase)
        .collect();
    for pin in &locked {
        assert!(pin.contains("=="), "{pin} is not pinned");
        assert!(installed.contains(pin), "{pin} is not what the venv holds");
    }
    // Every package requirements-test.txt names is pinned.
    let wanted =
        std::fs::read_to_string(repo_root().join("requirements-test.txt")).expect("requirements");
    for line in wanted
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
    {
        let Some(name) = line
            .split(['>', '=', '<', '[', ' '])
            .next()
            .filter(|n| !n.is_empty())
        else {
            continue;
        };
        assert!(
            locked
                .iter()
                .any(|p| p.starts_with(&format!("{}==", name.to_lowercase()))),
            "{name} of requirements-test.txt is not in requirements-test.lock"
        );
    }
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
