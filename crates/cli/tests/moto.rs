//! Against moto, a third-party implementation of S3, EC2 and STS, with the simulator standing in
//! for SSM (moto lacks the patch APIs): a fleet above one DescribeInstances page is created with
//! boto3, collected into `s3://` in moto, and read back with boto3 and pyarrow.
//!
//! moto's run_instances is slow, so one test builds the fleet once and checks everything on it.

mod common;

use common::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::process::Command;

fn collect_env(cmd: &mut Command, moto: &str, sim: &str) {
    aws_env(cmd, moto);
    cmd.env("AWS_ENDPOINT_URL_SSM", sim);
}

fn ids(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .expect("ids")
        .iter()
        .filter_map(|i| i.as_str().map(str::to_string))
        .collect()
}

#[test]
fn a_moto_fleet_of_more_than_a_thousand_is_collected_into_s3_and_read_back() {
    let moto = start_moto();
    let sim = start_sim(&["--instances", "10", "--seed", "31"]);
    let fleet = py_json(&moto.url, "moto_fleet.py", &["history", "1100", "40"]);
    let tagged = ids(&fleet["tagged"]);
    assert_eq!(tagged.len(), 1100);

    // Parquet into s3://history/fleet, EC2 and STS from moto, SSM from the simulator.
    let mut cmd = Command::new(patchtrail_bin());
    collect_env(&mut cmd, &moto.url, &sim.url);
    let out = ok(cmd
        .args([
            "collect",
            "--store",
            "s3://history/fleet",
            "--concurrency",
            "16",
        ])
        .output()
        .expect("run"));
    assert!(out.contains("instances  1100"), "{out}");
    let read = py_json(&moto.url, "read_s3.py", &["history", "fleet"]);
    assert_eq!(read["manifests"].as_array().map(Vec::len), Some(1));
    let manifest = &read["manifests"][0];
    assert_eq!(
        manifest["account_id"], "123456789012",
        "account from moto's STS"
    );
    assert_eq!(
        ids(&read["instance_ids"]),
        tagged,
        "every tagged instance, past the first page, and only those"
    );
    assert_eq!(read["patch_rows"], read["patch_rows_by_instance"]);
    assert_eq!(read["patch_rows"], manifest["counts"]["patches"]);
    assert!(manifest["counts"]["patches"].as_u64().unwrap_or(0) > 10_000);
    let keys = ids(&read["keys"]);
    for object in manifest["objects"].as_array().expect("objects") {
        assert!(
            keys.contains(object["key"].as_str().expect("key")),
            "{object}"
        );
    }

    // The seed's Scheduler input, trailing slash and all, writes the seed's layout.
    let mut cmd = Command::new(patchtrail_bin());
    collect_env(&mut cmd, &moto.url, &sim.url);
    ok(cmd
        .args([
            "collect",
            "--input-json",
            r#"{"s3_bucket":"history/","s3_path":"seed-report"}"#,
        ])
        .output()
        .expect("run"));
    let read = py_json(&moto.url, "read_s3.py", &["history", "seed-report"]);
    let pages: Vec<String> = ids(&read["keys"])
        .into_iter()
        .filter(|k| !k.starts_with("_patchtrail/"))
        .collect();
    assert!(pages.len() >= 1000, "{} seed pages", pages.len());
    assert!(
        pages
            .iter()
            .all(|k| k.starts_with("year=") && k.contains("/instanceid=i-")),
        "{:?}",
        &pages[..3]
    );
    assert_eq!(read["manifests"][0]["format"], "seed");

    // A bucket that does not exist: one clear line, exit 2, nothing written anywhere.
    let mut cmd = Command::new(patchtrail_bin());
    collect_env(&mut cmd, &moto.url, &sim.url);
    let failed = cmd
        .args(["collect", "--store", "s3://no-such-bucket/x"])
        .output()
        .expect("run");
    assert_eq!(failed.status.code(), Some(2), "{}", text(&failed.stderr));
    let stderr = text(&failed.stderr);
    assert!(
        stderr.trim().lines().count() == 1 && stderr.contains("does not exist"),
        "{stderr}"
    );
}
