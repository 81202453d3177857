//! Organization scale against the simulated organization: one command collects every ACTIVE
//! account in every enabled region, each (account, region) committed as its own run; a refused
//! role fails its account alone; reports cover and filter the scopes. What was stored is compared
//! with what boto3 reads from the same organization (tests/py/sim_org.py, DuckDB over the files).

mod common;

use common::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

const SIM: [&str; 8] = [
    "--instances",
    "30",
    "--accounts",
    "3",
    "--regions",
    "us-east-1,ap-northeast-1",
    "--seed",
    "5",
];

/// (account, region) → the tagged instance ids boto3 found there.
fn boto3_scopes(walk: &Value) -> BTreeMap<(String, String), BTreeSet<String>> {
    walk["scopes"]
        .as_object()
        .expect("scopes")
        .iter()
        .map(|(key, scope)| {
            let (account, region) = key.split_once('/').expect("ACCOUNT/REGION");
            assert_eq!(scope["identity"], account, "credentials of {key}");
            let ids = scope["instances"]
                .as_array()
                .expect("instances")
                .iter()
                .filter_map(|i| i.as_str().map(str::to_string))
                .collect();
            ((account.to_string(), region.to_string()), ids)
        })
        .collect()
}

#[test]
fn an_organization_is_collected_one_run_per_scope_and_a_refused_role_fails_alone() {
    // boto3's view of the whole organization first, every role assumable.
    let sim = start_sim(&SIM);
    let walk = py_json(&sim.url, "sim_org.py", &["PatchtrailRead"]);
    let accounts = walk["accounts"].as_array().expect("accounts");
    assert_eq!(accounts.len(), 4, "3 accounts and a suspended one: {walk}");
    let active: Vec<&str> = accounts
        .iter()
        .filter(|a| a["state"] == "ACTIVE")
        .filter_map(|a| a["id"].as_str())
        .collect();
    assert_eq!(active.len(), 3);
    assert_eq!(walk["not_opted_in"], serde_json::json!(["af-south-1"]));
    let expected = boto3_scopes(&walk);
    assert_eq!(expected.len(), 6, "3 accounts × 2 regions: {expected:?}");
    // Each scope is a fleet of its own: no instance id in two scopes.
    let all: Vec<&String> = expected.values().flatten().collect();
    assert_eq!(all.len(), all.iter().collect::<BTreeSet<_>>().len());
    drop(sim);

    // The same organization with one member's role refused.
    let denied = active
        .iter()
        .find(|a| **a != walk["management"])
        .expect("a member");
    let mut args = SIM.to_vec();
    args.extend(["--deny-assume", denied]);
    let sim = start_sim(&args);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store");
    let s = store.to_str().expect("utf-8 path");
    let out = patchtrail(
        &sim.url,
        &[
            "collect",
            "--store",
            s,
            "--organization",
            "--role-name",
            "PatchtrailRead",
            "--regions",
            "all",
            "--max-scopes",
            "3",
        ],
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let summary = text(&out.stdout);
    assert!(summary.contains("Committed 4 of 5 scopes"), "{summary}");
    assert!(
        summary.contains(&format!("{denied}  -")) && summary.contains("sts:AssumeRole was denied"),
        "{summary}"
    );

    // One committed run per reachable scope, named by it; the refused account has none.
    let committed = manifests(&store);
    let scopes: BTreeSet<(String, String)> = committed
        .iter()
        .map(|m| {
            let m = read_json(m);
            (
                m["account_id"].as_str().unwrap_or_default().to_string(),
                m["region"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let reachable: BTreeSet<(String, String)> = expected
        .keys()
        .filter(|(a, _)| a != denied)
        .cloned()
        .collect();
    assert_eq!(committed.len(), 4);
    assert_eq!(scopes, reachable);

    // Every scope's instances are the ones boto3 found there, read back by DuckDB.
    let read = py_json(&sim.url, "sim_org.py", &["PatchtrailRead", "--store", s]);
    let mut stored: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for row in read["stored"].as_array().expect("stored rows") {
        let cell = |i: usize| row[i].as_str().unwrap_or_default().to_string();
        assert!(
            cell(3).contains(&format!("-{}-{}-", cell(0), cell(1))),
            "{row}"
        );
        stored
            .entry((cell(0), cell(1)))
            .or_default()
            .insert(cell(2));
    }
    let want: BTreeMap<_, _> = expected
        .into_iter()
        .filter(|((a, _), _)| a != denied)
        .collect();
    assert_eq!(stored, want);

    // Reports cover every scope, per account, and filter by account and region.
    let summary_json = |extra: &[&str]| -> Vec<Value> {
        let mut args = vec!["report", "summary", "--store", s, "--format", "json"];
        args.extend_from_slice(extra);
        serde_json::from_str(&ok(patchtrail(&sim.url, &args))).expect("json")
    };
    let by_account = summary_json(&["--table", "by_account"]);
    let instances_of = |account: &str| -> u64 {
        want.iter()
            .filter(|((a, _), _)| a == account)
            .map(|(_, ids)| ids.len() as u64)
            .sum()
    };
    assert_eq!(by_account.len(), 2);
    for row in &by_account {
        let account = row["account_id"].as_str().expect("account_id");
        assert_eq!(row["regions"], 2, "{row}");
        assert_eq!(
            row["instances"].as_u64(),
            Some(instances_of(account)),
            "{row}"
        );
    }
    let (account, region) = reachable.iter().next().expect("a scope").clone();
    let filtered = summary_json(&["--account", &account, "--region", &region]);
    let ids: BTreeSet<String> = filtered
        .iter()
        .filter(|r| r["account_id"] == account.as_str() && r["region"] == region.as_str())
        .filter_map(|r| r["instance_id"].as_str().map(str::to_string))
        .collect();
    assert_eq!(filtered.len(), ids.len());
    assert_eq!(Some(&ids), want.get(&(account.clone(), region.clone())));
    let none = patchtrail(
        &sim.url,
        &["report", "summary", "--store", s, "--account", denied],
    );
    assert_eq!(none.status.code(), Some(2));
    assert!(
        text(&none.stderr).contains(&format!("no committed run of --account {denied}")),
        "{}",
        text(&none.stderr)
    );
}

#[test]
fn accounts_other_than_the_callers_need_a_role_and_bad_ids_are_refused_before_anything_runs() {
    let sim = start_sim(&SIM);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store");
    let s = store.to_str().expect("utf-8 path");
    let cases: [(&[&str], &str); 4] = [
        (&["--organization"], "give --role-name"),
        (&["--accounts", "12345"], "account id '12345'"),
        (
            &["--organization", "--role-name", "arn:aws:iam::1:role/x"],
            "--role-name",
        ),
        (
            &["--regions", "ap-northeast-1,", "--role-name", "R"],
            "--regions",
        ),
    ];
    for (extra, message) in cases {
        let mut args = vec!["collect", "--store", s];
        args.extend_from_slice(extra);
        let out = patchtrail(&sim.url, &args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {stderr}");
        assert!(stderr.contains(message), "{extra:?}: {stderr}");
        assert_eq!(
            stderr.trim().lines().count(),
            1,
            "{extra:?}: one line: {stderr}"
        );
        assert!(manifests(&store).is_empty());
    }
    // An opt-in region the accounts have not enabled fails its scope, not the others.
    let out = patchtrail(
        &sim.url,
        &["collect", "--store", s, "--regions", "us-east-1,af-south-1"],
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let summary = text(&out.stdout);
    assert!(
        summary.contains("af-south-1") && summary.contains("AuthFailure"),
        "{summary}"
    );
    assert_eq!(manifests(&store).len(), 1);
    // A region named twice is one scope, committed once.
    ok(patchtrail(
        &sim.url,
        &[
            "collect",
            "--store",
            s,
            "--regions",
            "ap-northeast-1,ap-northeast-1",
        ],
    ));
    assert_eq!(manifests(&store).len(), 2);
}
