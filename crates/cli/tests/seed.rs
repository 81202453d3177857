//! The seed's own history (issue 22): the seed article's Step Functions definition, run unchanged in
//! moto's interpreter against the simulator, writes the same pages `collect --format seed` writes;
//! a store that workflow wrote answers diff, history and trend with the same change names as the
//! same patch lists in patchtrail's own format (docs/semantics.md §4.7); `import --from-seed`
//! moves it into patchtrail's format keeping its dates.

mod common;

use common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

/// Every page under `root` (hidden `_patchtrail/` left out): instance folder → parsed bodies,
/// sorted; and every page's file name.
fn pages(root: &Path) -> (BTreeMap<String, Vec<String>>, Vec<String>) {
    fn walk(
        root: &Path,
        dir: &Path,
        out: &mut BTreeMap<String, Vec<String>>,
        names: &mut Vec<String>,
    ) {
        for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
            let p = e.path();
            let rel = p
                .strip_prefix(root)
                .expect("under")
                .to_string_lossy()
                .to_string();
            if rel.starts_with("_patchtrail") {
                continue;
            }
            if p.is_dir() {
                walk(root, &p, out, names);
            } else {
                let body: Value = serde_json::from_slice(&std::fs::read(&p).expect("page"))
                    .unwrap_or_else(|e| panic!("{rel} is not JSON: {e}"));
                let (folder, name) = rel.rsplit_once('/').expect("a folder");
                out.entry(folder.to_string())
                    .or_default()
                    .push(body.to_string());
                names.push(name.to_string());
            }
        }
    }
    let (mut out, mut names) = (BTreeMap::new(), Vec::new());
    walk(root, root, &mut out, &mut names);
    for bodies in out.values_mut() {
        bodies.sort();
    }
    (out, names)
}

fn is_uuid(name: &str) -> bool {
    let parts: Vec<&str> = name.split('-').collect();
    parts.iter().map(|p| p.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
        && parts
            .iter()
            .all(|p| p.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The seed's definition (tests/fixtures/seed-state-machine.asl.json, copied from the article)
/// in moto's interpreter and `collect --format seed`, against one simulated fleet with a node that
/// was never scanned: the same keys (partition, instance, a UUID per page) and the same bodies.
#[test]
fn the_seed_workflow_and_collect_format_seed_write_the_same_pages() {
    // Seed 3: 13 tagged instances, one registered with SSM and never scanned.
    let sim = start_sim(&["--instances", "16", "--seed", "3", "--unmanaged-rate", "0"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let theirs = dir.path().join("seed-workflow");
    let mut cmd = Command::new(python());
    let out = ok(cmd
        .arg(repo_root().join("tests/py/run_seed_sfn.py"))
        .arg(&sim.url)
        .arg(&theirs)
        .output()
        .expect("the seed's state machine (installed by scripts/test)"));
    let run: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(run["status"], "SUCCEEDED", "{run}");

    let ours = dir.path().join("patchtrail");
    ok(patchtrail(
        &sim.url,
        &[
            "collect",
            "--store",
            ours.to_str().expect("utf8"),
            "--format",
            "seed",
            "-q",
        ],
    ));
    let ((a, a_names), (b, b_names)) = (pages(&theirs), pages(&ours));
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "the same year=/month=/day=/instanceid= folders"
    );
    for (folder, bodies) in &a {
        assert_eq!(Some(bodies), b.get(folder), "{folder}: the same pages");
    }
    assert!(
        a_names.iter().chain(&b_names).all(|n| is_uuid(n)),
        "a UUID per page: {a_names:?} {b_names:?}"
    );
    let empty = r#"{"Patches":[]}"#;
    assert!(
        b.values().flatten().any(|body| body == empty),
        "the never-scanned node's empty page is among them"
    );
}

/// A page of the seed's workflow, written with a chosen write time.
fn seed_page(
    root: &Path,
    day: &str,
    instance: &str,
    name: &str,
    patches: &[(&str, &str)],
    at: SystemTime,
) {
    let (y, rest) = day.split_at(4);
    let (m, d) = rest.split_at(2);
    let folder = root.join(format!("year={y}/month={m}/day={d}/instanceid={instance}"));
    std::fs::create_dir_all(&folder).expect("mkdir");
    let list: Vec<Value> = patches
        .iter()
        .map(|(kb, state)| {
            serde_json::json!({"Classification": "Security", "InstalledTime": "1970-01-01T00:00:00Z",
                               "KbId": kb, "Severity": "Critical", "State": state, "Title": format!("{kb} update")})
        })
        .collect();
    let path = folder.join(name);
    std::fs::write(&path, serde_json::json!({ "Patches": list }).to_string()).expect("page");
    std::fs::File::options()
        .write(true)
        .open(&path)
        .and_then(|f| f.set_modified(at))
        .expect("mtime");
}

type Lists<'a> = [(&'a str, &'a [(&'a str, &'a str)]); 4];

/// Two weeks of the same four instances: A installs a patch, reboots another into place and gains a
/// new missing one; B regresses; C has an empty list, then gains a missing patch; D holds only
/// installed patches both weeks.
const WEEK1: Lists = [
    (
        "i-0000000000000000a",
        &[("KB1", "Missing"), ("KB2", "Missing"), ("KB9", "Installed")],
    ),
    ("i-0000000000000000b", &[("KB3", "Installed")]),
    ("i-0000000000000000c", &[]),
    ("i-0000000000000000d", &[("KB5", "Installed")]),
];
const WEEK2: Lists = [
    (
        "i-0000000000000000a",
        &[
            ("KB1", "Installed"),
            ("KB2", "InstalledPendingReboot"),
            ("KB4", "Missing"),
            ("KB9", "Installed"),
        ],
    ),
    ("i-0000000000000000b", &[("KB3", "Missing")]),
    ("i-0000000000000000c", &[("KB6", "Missing")]),
    ("i-0000000000000000d", &[("KB5", "Installed")]),
];

fn at(days: u64, secs: u64) -> SystemTime {
    // 2026-03-01T00:00:00Z + days, + secs
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_772_323_200 + days * 86_400 + secs)
}

fn json_rows(store: &str, args: &[&str]) -> Vec<Value> {
    let out = ok(Command::new(patchtrail_bin())
        .args(["report"])
        .args(args)
        .args(["--store", store, "--format", "json"])
        .output()
        .expect("report"));
    serde_json::from_str::<Value>(&out)
        .expect("json")
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn changes(rows: &[Value]) -> Vec<(String, String, String)> {
    let mut out: Vec<(String, String, String)> = rows
        .iter()
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap_or("").to_string();
            (s("instance_id"), s("kb_id"), s("change"))
        })
        .collect();
    out.sort();
    out
}

/// A store the seed's workflow wrote, read in place and after `import --from-seed`, and the same
/// patch lists imported as patchtrail's own runs: diff and history name the same changes; the
/// compliance of the seed's snapshots follows §4.7.
#[test]
fn a_seed_written_store_answers_with_the_changes_of_patchtrails_own() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seed = dir.path().join("seed");
    for (week, lists, day) in [(0, &WEEK1, "20260301"), (7, &WEEK2, "20260308")] {
        for (i, (instance, patches)) in lists.iter().enumerate() {
            let name = format!(
                "{:08x}-0000-4000-8000-{:012x}",
                0xabcd_0000u32 + i as u32,
                week
            );
            seed_page(
                &seed,
                day,
                instance,
                &name,
                patches,
                at(week, 60 + i as u64 * 2),
            );
        }
    }
    let seed_s = seed.to_str().expect("utf8");

    // The same lists as patchtrail's own runs, scanned just before each snapshot.
    let own = dir.path().join("own");
    let file = dir.path().join("own.jsonl");
    let mut lines = String::new();
    for (week, lists) in [(0, &WEEK1), (7, &WEEK2)] {
        let day = 1 + week;
        let instances: Vec<Value> = lists
            .iter()
            .map(|(instance, patches)| {
                let patches: Vec<Value> = patches
                    .iter()
                    .map(|(kb, state)| serde_json::json!({"kb_id": kb, "title": format!("{kb} update"), "classification": "Security", "severity": "Critical", "state": state}))
                    .collect();
                serde_json::json!({"instance_id": instance, "last_scan_time": format!("2026-03-{day:02}T00:00:00Z"), "patches": patches})
            })
            .collect();
        lines.push_str(
            &serde_json::json!({"snapshot_time": format!("2026-03-{day:02}T00:01:00Z"), "account_id": "111111111111", "region": "us-east-1", "instances": instances})
                .to_string(),
        );
        lines.push('\n');
    }
    std::fs::write(&file, lines).expect("import file");
    let own_s = own.to_str().expect("utf8");
    ok(Command::new(patchtrail_bin())
        .args(["import", "--store", own_s])
        .arg(&file)
        .output()
        .expect("import"));

    let migrated = dir.path().join("migrated");
    let migrated_s = migrated.to_str().expect("utf8");
    let import_seed = || {
        Command::new(patchtrail_bin())
            .args([
                "import",
                "--from-seed",
                seed_s,
                "--seed-account",
                "111111111111",
                "--seed-region",
                "us-east-1",
                "--store",
                migrated_s,
            ])
            .output()
            .expect("import --from-seed")
    };
    let first = ok(import_seed());
    assert_eq!(first.lines().count(), 2, "a run per day: {first}");
    let again = import_seed();
    assert_eq!(
        ok(again).lines().count(),
        0,
        "days imported already are skipped"
    );

    let diff = ["diff", "--from", "2026-03-01", "--to", "2026-03-08"];
    let expected = changes(&json_rows(own_s, &diff));
    assert!(
        expected.contains(&(
            "i-0000000000000000a".into(),
            "KB1".into(),
            "newly_installed".into()
        )) && expected.contains(&(
            "i-0000000000000000a".into(),
            "KB2".into(),
            "installed_pending_reboot".into()
        )) && expected.contains(&(
            "i-0000000000000000a".into(),
            "KB4".into(),
            "newly_missing".into()
        )) && expected.contains(&(
            "i-0000000000000000b".into(),
            "KB3".into(),
            "regressed".into()
        )) && expected.contains(&(
            "i-0000000000000000c".into(),
            "KB6".into(),
            "newly_missing".into()
        )),
        "{expected:?}"
    );
    for store in [seed_s, migrated_s] {
        assert_eq!(changes(&json_rows(store, &diff)), expected, "{store}: diff");
        for instance in [
            "i-0000000000000000a",
            "i-0000000000000000b",
            "i-0000000000000000c",
        ] {
            let history = [
                "history",
                "--instance",
                instance,
                "--table",
                "patch_changes",
            ];
            assert_eq!(
                changes(&json_rows(store, &history)),
                changes(&json_rows(own_s, &history)),
                "{store} {instance}: history"
            );
        }
    }

    // §4.7: a missing patch is evidence of non-compliance; an empty or installed-only list is not
    // evidence of compliance.
    let compliance = |store: &str, as_of: &str| -> BTreeMap<String, String> {
        json_rows(store, &["summary", "--as-of", as_of])
            .iter()
            .map(|r| {
                (
                    r["instance_id"].as_str().unwrap_or("").to_string(),
                    r["compliance"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    };
    for store in [seed_s, migrated_s] {
        let week1 = compliance(store, "2026-03-01");
        assert_eq!(week1["i-0000000000000000a"], "non_compliant", "{store}");
        assert_eq!(
            week1["i-0000000000000000c"], "unknown",
            "{store}: an empty list"
        );
        assert_eq!(
            week1["i-0000000000000000d"], "unknown",
            "{store}: installed only"
        );
        let trend = json_rows(store, &["trend"]);
        let counts: Vec<(u64, u64)> = trend
            .iter()
            .map(|r| {
                (
                    r["noncompliant_instances"].as_u64().unwrap_or(99),
                    r["unknown_instances"].as_u64().unwrap_or(99),
                )
            })
            .collect();
        assert_eq!(counts, [(1, 3), (3, 1)], "{store}: trend");
    }
    // The migrated runs keep the seed's dates: started at each day's first page, finished at its last.
    let runs = json_rows(migrated_s, &["trend"]);
    let times: Vec<&str> = runs
        .iter()
        .filter_map(|r| r["snapshot_time"].as_str())
        .collect();
    assert_eq!(times, ["2026-03-01T00:01:00Z", "2026-03-08T00:01:00Z"]);
}
