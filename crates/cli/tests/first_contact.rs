//! First contact: every AWS and storage failure a new user can cause is one readable line that
//! names what failed and the fix, with the documented exit code, never a `Debug` dump. Table
//! driven, against the simulator (told to deny chosen IAM actions), moto and a fake AWS home.

mod common;

use common::*;
use std::path::Path;
use std::process::{Command, Output};

/// One case: how to run, the exit code, and what the single line must say.
struct Case {
    name: &'static str,
    output: Output,
    exit: i32,
    says: &'static [&'static str],
}

fn check(case: &Case) {
    let stderr = text(&case.output.stderr);
    assert_eq!(
        case.output.status.code(),
        Some(case.exit),
        "{}: exit code; stderr:\n{stderr}",
        case.name
    );
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{}: one line, got:\n{stderr}", case.name);
    let line = lines[0];
    assert!(line.starts_with("error: "), "{}: {line}", case.name);
    for dump in [
        "DispatchFailure(",
        "ConnectorError",
        " { ",
        "Some(",
        "source:",
    ] {
        assert!(
            !line.contains(dump),
            "{}: a Debug dump leaked: {line}",
            case.name
        );
    }
    for needle in case.says {
        assert!(
            line.contains(needle),
            "{}: `{needle}` missing from: {line}",
            case.name
        );
    }
}

/// `patchtrail` with no AWS configuration at all (an empty home, no IMDS).
fn bare(home: &Path, args: &[&str], extra: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(patchtrail_bin());
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("AWS_EC2_METADATA_DISABLED", "true");
    for (k, v) in extra {
        cmd.env(k, v);
    }
    cmd.args(args).output().expect("run patchtrail")
}

/// A home whose only AWS profile is an SSO profile whose cached token expired long ago.
fn expired_sso_home(dir: &Path) -> std::path::PathBuf {
    let home = dir.join("sso-home");
    let cache = home.join(".aws/sso/cache");
    std::fs::create_dir_all(&cache).expect("mkdir");
    std::fs::write(
        home.join(".aws/config"),
        "[profile dev]\nsso_session = corp\nsso_account_id = 123456789012\nsso_role_name = ReadOnly\nregion = ap-northeast-1\n\n\
         [sso-session corp]\nsso_start_url = https://corp.awsapps.com/start\nsso_region = ap-northeast-1\nsso_registration_scopes = sso:account:access\n",
    )
    .expect("config");
    // The SDK names the cached token file after the SHA-1 of the session name.
    std::fs::write(
        cache.join(format!("{}.json", sha1_hex(b"corp"))),
        r#"{"accessToken":"expired","expiresAt":"2020-01-01T00:00:00Z","region":"ap-northeast-1","startUrl":"https://corp.awsapps.com/start"}"#,
    )
    .expect("token");
    home
}

/// SHA-1 in hex (python's hashlib computes it: no crate needed for one file name).
fn sha1_hex(bytes: &[u8]) -> String {
    let out = Command::new(python())
        .args([
            "-c",
            "import hashlib,sys; print(hashlib.sha1(sys.argv[1].encode()).hexdigest())",
        ])
        .arg(String::from_utf8_lossy(bytes).as_ref())
        .output()
        .expect("python");
    text(&out.stdout).trim().to_string()
}

#[test]
fn every_failure_a_new_user_can_cause_is_one_line_with_its_fix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let empty_home = dir.path().join("home");
    std::fs::create_dir_all(&empty_home).expect("mkdir");
    let store = dir.path().join("history");
    let s = store.to_str().expect("utf8");
    let mut cases = vec![
        Case {
            name: "no credentials",
            output: bare(
                &empty_home,
                &["collect", "--region", "ap-northeast-1", "--store", s],
                &[],
            ),
            exit: 4,
            says: &["no AWS credentials", "aws sso login", "AWS_PROFILE"],
        },
        Case {
            name: "expired SSO session",
            output: bare(
                &expired_sso_home(dir.path()),
                &["collect", "--store", s],
                &[("AWS_PROFILE", "dev")],
            ),
            exit: 4,
            says: &["expired", "aws sso login"],
        },
        Case {
            name: "unknown region",
            output: bare(
                &empty_home,
                &["collect", "--region", "mars-north-1", "--store", s],
                &[("AWS_ACCESS_KEY_ID", "x"), ("AWS_SECRET_ACCESS_KEY", "x")],
            ),
            exit: 2,
            says: &["mars-north-1", "--region"],
        },
        Case {
            name: "no region",
            output: bare(
                &empty_home,
                &["collect", "--store", s],
                &[("AWS_ACCESS_KEY_ID", "x"), ("AWS_SECRET_ACCESS_KEY", "x")],
            ),
            exit: 2,
            says: &["no AWS region", "--region"],
        },
    ];
    for action in [
        "ec2:DescribeInstances",
        "ssm:DescribeInstancePatchStates",
        "ssm:DescribeInstancePatches",
    ] {
        let sim = start_sim(&["--instances", "20", "--seed", "4", "--deny-action", action]);
        let out = patchtrail(&sim.url, &["collect", "--store", s, "-q"]);
        cases.push(Case {
            name: action,
            output: out,
            exit: 4,
            says: &["was denied", "allow the IAM action"],
        });
        let line = text(&cases.last().expect("case").output.stderr);
        assert!(line.contains(action), "{action} not named: {line}");
    }
    let moto = start_moto();
    cases.push(Case {
        name: "missing bucket",
        output: patchtrail(
            &moto.url,
            &[
                "report",
                "summary",
                "--store",
                "s3://no-such-bucket/history",
            ],
        ),
        exit: 2,
        says: &["no-such-bucket", "does not exist"],
    });
    cases.push(Case {
        name: "report on a folder that is not a history",
        output: Command::new(patchtrail_bin())
            .args([
                "report",
                "trend",
                "--store",
                dir.path().join("nothing-here").to_str().expect("utf8"),
            ])
            .output()
            .expect("run"),
        exit: 2,
        says: &["no such folder", "--store"],
    });
    // A bucket whose KMS key refuses this identity: S3 forwards KMS's AccessDenied on each PUT
    // (the message as S3 sends it; moto does not enforce KMS, so a proxy answers for it).
    let kms_bucket = py_json(&moto.url, "s3_bucket.py", &["kms-history"]);
    assert_eq!(kms_bucket["bucket"], "kms-history");
    let kms = start_s3_proxy(
        &moto.url,
        "1.0",
        "1",
        &[
            "403",
            "AccessDenied",
            "User: arn:aws:iam::123456789012:user/patchtrail-sim is not authorized to perform: kms:GenerateDataKey on resource: arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab because no identity-based policy allows the kms:GenerateDataKey action",
        ],
    );
    let sim = start_sim(&["--instances", "5", "--seed", "4"]);
    let mut cmd = Command::new(patchtrail_bin());
    aws_env(&mut cmd, &sim.url).env("AWS_ENDPOINT_URL_S3", &kms.url);
    cases.push(Case {
        name: "KMS key refuses the caller",
        output: cmd
            .args(["collect", "--store", "s3://kms-history/h", "-q"])
            .output()
            .expect("run"),
        exit: 4,
        says: &["KMS key", "kms:GenerateDataKey was denied", "key's policy"],
    });
    for case in &cases {
        check(case);
    }
    assert!(
        manifests(&store).is_empty(),
        "nothing was written by any failure"
    );
}

/// `patchtrail doctor --format json` with the fleet on `sim` and, when given, S3 on `s3`.
fn doctor(sim: &str, s3: Option<&str>, store: &str) -> (Option<i32>, serde_json::Value) {
    let mut cmd = Command::new(patchtrail_bin());
    aws_env(&mut cmd, sim);
    if let Some(s3) = s3 {
        cmd.env("AWS_ENDPOINT_URL_S3", s3);
    }
    let out = cmd
        .args(["doctor", "--store", store, "--format", "json"])
        .output()
        .expect("run doctor");
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "doctor printed no JSON ({e}): {}{}",
            text(&out.stdout),
            text(&out.stderr)
        )
    });
    (out.status.code(), json)
}

fn check_named<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["check"].as_str() == Some(name)))
        .unwrap_or_else(|| panic!("no check `{name}` in {report}"))
}

#[test]
fn doctor_passes_against_the_simulator_and_names_a_denied_action() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store");
    let s = store.to_str().expect("utf8");

    let sim = start_sim(&["--instances", "40", "--seed", "9"]);
    let (code, report) = doctor(&sim.url, None, s);
    assert_eq!(
        code,
        Some(0),
        "doctor against a healthy simulator: {report}"
    );
    assert_eq!(report["account"], "123456789012");
    assert!(
        report["arn"]
            .as_str()
            .is_some_and(|a| a.starts_with("arn:aws:"))
    );
    // The tag's instance count, against what collect itself then finds.
    let collected = patchtrail(&sim.url, &["collect", "--store", s, "-q"]);
    assert!(collected.status.success(), "{}", text(&collected.stderr));
    let manifest = read_json(&manifests(&store)[0]);
    assert_eq!(
        report["tagged_instances"].as_u64(),
        manifest["counts"]["instances"].as_u64(),
        "doctor's tagged count matches the collect's: {manifest}"
    );
    // Under 50 tagged instances doctor asks about all of them, so its count is exact: the
    // instances the collect found with a last scan.
    let summary = patchtrail(
        &sim.url,
        &["report", "summary", "--store", s, "--format", "json"],
    );
    let rows: Vec<serde_json::Value> =
        serde_json::from_slice(&summary.stdout).expect("summary JSON");
    let scanned = rows
        .iter()
        .filter(|r| !r["last_scan_time"].is_null())
        .count();
    assert_eq!(
        report["instances_with_patch_state"].as_u64(),
        Some(scanned as u64),
        "{report}"
    );
    // At the assumed 20 req/s, at least one patch page per tagged instance bounds the estimate.
    assert_eq!(report["assumed_tps"].as_f64(), Some(20.0), "{report}");
    let tagged = report["tagged_instances"].as_f64().unwrap_or(0.0);
    assert!(
        report["estimated_collect_seconds"].as_f64() >= Some(tagged / 20.0) && tagged > 0.0,
        "{report}"
    );
    assert!(
        report["checks"]
            .as_array()
            .is_some_and(|c| c.iter().all(|c| c["ok"] == true))
    );

    for action in [
        "ec2:DescribeInstances",
        "ssm:DescribeInstancePatchStates",
        "ssm:DescribeInstancePatches",
    ] {
        let denied = start_sim(&["--instances", "10", "--seed", "9", "--deny-action", action]);
        let (code, report) = doctor(&denied.url, None, s);
        assert_eq!(code, Some(4), "{action} denied: {report}");
        let failed: Vec<_> = report["checks"]
            .as_array()
            .expect("checks")
            .iter()
            .filter(|c| c["ok"] == false)
            .collect();
        assert_eq!(failed.len(), 1, "only {action} fails: {report}");
        assert_eq!(failed[0]["check"], action);
        assert!(
            failed[0]["fix"]
                .as_str()
                .is_some_and(|f| f.contains(&format!("allow the IAM action {action}"))),
            "{report}"
        );
    }
    // Agent health is advisory: doctor passes without ssm:DescribeInstanceInformation.
    let online = report["agents_online"].as_u64().unwrap_or(0);
    let not_online = report["agents_not_online"].as_u64().unwrap_or(0);
    assert!(
        online > 0 && online + not_online <= report["tagged_instances"].as_u64().unwrap_or(0),
        "{report}"
    );
    let no_info = start_sim(&[
        "--instances",
        "10",
        "--seed",
        "9",
        "--deny-action",
        "ssm:DescribeInstanceInformation",
    ]);
    let (code, report) = doctor(&no_info.url, None, s);
    assert_eq!(code, Some(0), "{report}");
    let health = check_named(&report, "ssm:DescribeInstanceInformation (agent health)");
    assert!(
        health["detail"]
            .as_str()
            .is_some_and(|d| d.contains("AccessDenied")),
        "{report}"
    );
    // Release dates are advisory as well: doctor passes, naming the action to allow.
    let no_releases = start_sim(&[
        "--instances",
        "10",
        "--seed",
        "9",
        "--deny-action",
        "ssm:DescribeAvailablePatches",
    ]);
    let (code, report) = doctor(&no_releases.url, None, s);
    assert_eq!(code, Some(0), "{report}");
    let releases = check_named(&report, "ssm:DescribeAvailablePatches (release dates)");
    assert!(
        releases["fix"]
            .as_str()
            .is_some_and(|f| f.contains("allow ssm:DescribeAvailablePatches")),
        "{report}"
    );
    let runs_before = manifests(&store).len();
    assert_eq!(runs_before, 1, "doctor commits nothing");

    // On S3: the store probe, and the bucket's protection as boto3 reads it.
    let moto = start_moto();
    for (bucket, protection) in [
        ("doctor-plain", ""),
        ("doctor-versioned", "versioned"),
        ("doctor-locked", "object-lock"),
    ] {
        let expected = py_json(&moto.url, "s3_bucket.py", &[bucket, protection]);
        let (code, report) = doctor(&sim.url, Some(&moto.url), &format!("s3://{bucket}/h"));
        assert_eq!(code, Some(0), "{bucket}: {report}");
        assert_eq!(
            report["bucket"]["versioning"], expected["versioning"],
            "{bucket}"
        );
        assert_eq!(
            report["bucket"]["object_lock"], expected["object_lock"],
            "{bucket}"
        );
        let advice = &check_named(&report, "bucket protection (versioning, Object Lock)")["fix"];
        assert_eq!(
            advice.is_null(),
            protection == "object-lock",
            "{bucket}: {report}"
        );
    }
    let (code, report) = doctor(&sim.url, Some(&moto.url), "s3://doctor-missing/h");
    assert_eq!(code, Some(1), "{report}");
    let store_check = check_named(
        &report,
        "store (list, write and read back _patchtrail/doctor-probe)",
    );
    assert!(
        store_check["detail"]
            .as_str()
            .is_some_and(|d| d.contains("does not exist")),
        "{report}"
    );
}

/// `patchtrail … | head -1`: the reader closes stdout before the command is done writing. That
/// is the reader's choice, not a crash: exit 0, nothing on stderr (no panic message). The pipe's
/// read end is closed before the command starts, so every write meets it closed.
#[test]
fn a_closed_stdout_ends_a_command_quietly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("history");
    let s = store.to_str().expect("utf8");
    let demo = Command::new(patchtrail_bin())
        .args(["demo", "--store", s, "--weeks", "2", "--instances", "20"])
        .current_dir(dir.path())
        .output()
        .expect("demo");
    assert!(
        demo.status.success(),
        "{}",
        String::from_utf8_lossy(&demo.stderr)
    );
    for args in [
        vec!["man"],
        vec!["completions", "bash"],
        vec!["report", "summary", "--store", s, "--format", "csv"],
        vec!["verify", "--store", s],
    ] {
        let (reader, writer) = std::io::pipe().expect("pipe");
        drop(reader);
        let out = Command::new(patchtrail_bin())
            .args(&args)
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}
