//! History that survives concurrency, interruption and hostile input: concurrent collects on a
//! folder and on moto's S3, a forked or broken chain named by `verify`, `kill -9` at several
//! points of a run in every format, signals in every phase, read-only SQL, and a seeded
//! fault-injection suite (simulator faults and throttling, S3 503s, kills).

mod common;

use common::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `patchtrail collect` with EC2, SSM and STS at the simulator and S3 (if any) at `s3`.
fn collect(sim: &str, s3: Option<&str>, store: &str, extra: &[&str]) -> Command {
    let mut cmd = Command::new(patchtrail_bin());
    aws_env(&mut cmd, sim);
    if let Some(s3) = s3 {
        cmd.env("AWS_ENDPOINT_URL_S3", s3);
    }
    cmd.args(["collect", "--store", store, "-q"]).args(extra);
    cmd
}

/// Any read command (report, verify, sql) with S3 (if any) at `s3`.
fn read(s3: Option<&str>, args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(patchtrail_bin());
    aws_env(&mut cmd, s3.unwrap_or("http://127.0.0.1:9"));
    cmd.args(args).output().expect("run patchtrail")
}

fn json(out: std::process::Output) -> Value {
    serde_json::from_str(&ok(out)).expect("json")
}

/// Run ids of the snapshots `trend` reports (none in a store without committed runs).
fn trend_runs(s3: Option<&str>, store: &str) -> Vec<String> {
    let out = read(
        s3,
        &["report", "trend", "--store", store, "--format", "json"],
    );
    if out.status.code() == Some(2) && text(&out.stderr).contains("no committed runs") {
        return Vec::new();
    }
    let rows = json(read(
        s3,
        &["report", "trend", "--store", store, "--format", "json"],
    ));
    rows.as_array()
        .expect("rows")
        .iter()
        .map(|r| r["run_id"].as_str().unwrap_or("").to_string())
        .collect()
}

fn verify_passes(s3: Option<&str>, store: &str) -> String {
    let out = read(s3, &["verify", "--store", store]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "verify failed:\n{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

fn wait_all(children: Vec<Child>) -> Vec<std::process::Output> {
    children
        .into_iter()
        .map(|c| c.wait_with_output().expect("wait"))
        .collect()
}

fn chain_of(manifests: &[Value]) -> (BTreeSet<String>, BTreeSet<u64>) {
    (
        manifests
            .iter()
            .map(|m| m["run_id"].as_str().unwrap_or("").to_string())
            .collect(),
        manifests
            .iter()
            .map(|m| m["sequence"].as_u64().unwrap_or(0))
            .collect(),
    )
}

/// Regression: two collects on one store took the same run id, overwrote each other's objects
/// and forked the chain.
#[test]
fn concurrent_collects_on_one_folder_commit_one_linear_chain() {
    let sim = start_sim(&["--instances", "120", "--seed", "5", "--latency-ms", "5"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("history");
    let s = store.to_str().expect("utf8");
    let children: Vec<Child> = (0..4)
        .map(|_| {
            collect(&sim.url, None, s, &["--concurrency", "4"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .collect();
    for out in wait_all(children) {
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let manifests: Vec<Value> = manifests(&store).iter().map(|p| read_json(p)).collect();
    let (ids, sequences) = chain_of(&manifests);
    assert_eq!(ids.len(), 4, "four runs, four run ids: {ids:?}");
    assert_eq!(sequences, (1..=4).collect(), "one chain, no fork");
    assert!(verify_passes(None, s).contains("chain is intact"));
    assert_eq!(trend_runs(None, s).len(), 4);
}

#[test]
fn concurrent_collects_on_moto_s3_commit_one_linear_chain() {
    let moto = start_moto();
    let sim = start_sim(&["--instances", "60", "--seed", "8", "--latency-ms", "5"]);
    py_json(&moto.url, "s3_bucket.py", &["chain-history"]);
    // moto checks If-None-Match and then writes, so two of its threads can both create one key;
    // S3 cannot. The proxy (no faults) makes moto's create-only writes atomic, as S3's are.
    let s3 = start_s3_proxy(&moto.url, "0", "1", &[]);
    let store = "s3://chain-history/fleet";
    let children: Vec<Child> = (0..3)
        .map(|_| {
            collect(&sim.url, Some(&s3.url), store, &[])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .collect();
    for out in wait_all(children) {
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let listed = py_json(&moto.url, "read_s3.py", &["chain-history", "fleet"]);
    let manifests: Vec<Value> = listed["manifests"].as_array().expect("manifests").clone();
    let (ids, sequences) = chain_of(&manifests);
    assert_eq!(ids.len(), 3, "{ids:?}");
    assert_eq!(sequences, (1..=3).collect());
    assert!(verify_passes(Some(&moto.url), store).contains("3 runs"));
    assert_eq!(trend_runs(Some(&moto.url), store).len(), 3);
}

/// Three runs written with `patchtrail import`, minimal but real.
fn imported_store(dir: &Path, format: &str) -> std::path::PathBuf {
    let store = dir.join(format!("imported-{format}"));
    let lines: Vec<String> = (1..=3)
        .map(|d| {
            format!(
                r#"{{"snapshot_time":"2026-03-0{d}T06:00:00Z","account_id":"111111111111","region":"us-east-1","instances":[{{"instance_id":"i-0123456789abcdef0","last_scan_time":"2026-03-0{d}T01:00:00Z","patches":[{{"kb_id":"KB1","title":"t","classification":"SecurityUpdates","severity":"Critical","state":"Missing","installed_time":null,"cve_ids":null}}]}}]}}"#
            )
        })
        .collect();
    let input = dir.join(format!("runs-{format}.jsonl"));
    std::fs::write(&input, lines.join("\n")).expect("write input");
    let out = Command::new(patchtrail_bin())
        .args([
            "import",
            input.to_str().expect("utf8"),
            "--store",
            store.to_str().expect("utf8"),
            "--format",
            format,
        ])
        .output()
        .expect("import");
    assert_eq!(ok(out).lines().count(), 3);
    store
}

#[test]
fn verify_names_a_forked_a_gapped_and_a_rewritten_chain() {
    let dir = tempfile::tempdir().expect("tempdir");
    let verify = |store: &Path| {
        let out = Command::new(patchtrail_bin())
            .args(["verify", "--store", store.to_str().expect("utf8")])
            .output()
            .expect("verify");
        (out.status.code(), text(&out.stdout))
    };
    let chain = |store: &Path, n: u64| store.join(format!("_patchtrail/chain/{n:012}.json"));

    // A fork: run 3 names run 1 as its predecessor, and its chain entry was made to match.
    let store = imported_store(dir.path(), "parquet");
    assert_eq!(verify(&store).0, Some(0));
    let paths = manifests(&store);
    let (first, third) = (read_json(&paths[0]), &paths[2]);
    let mut m = read_json(third);
    let first_bytes = std::fs::read(&paths[0]).expect("read");
    use sha2::Digest;
    m["previous"] = serde_json::json!({"key": paths[0].strip_prefix(&store).expect("key").to_str(), "sha256": hex::encode(sha2::Sha256::digest(&first_bytes))});
    assert_eq!(first["sequence"], 1);
    let bytes = format!("{}\n", serde_json::to_string(&m).expect("json"));
    std::fs::write(third, &bytes).expect("rewrite");
    let mut entry = read_json(&chain(&store, 3));
    entry["manifest_sha256"] = Value::String(hex::encode(sha2::Sha256::digest(bytes.as_bytes())));
    std::fs::write(chain(&store, 3), entry.to_string()).expect("rewrite entry");
    let (code, out) = verify(&store);
    assert_eq!(code, Some(5), "{out}");
    assert!(out.contains("entry 3") && out.contains("fork"), "{out}");

    // A gap: entry 2 deleted.
    let store = imported_store(dir.path(), "jsonl");
    std::fs::remove_file(chain(&store, 2)).expect("delete");
    let (code, out) = verify(&store);
    assert_eq!(code, Some(5), "{out}");
    assert!(out.contains("gap"), "{out}");

    // A manifest rewritten after it committed.
    let store = imported_store(dir.path(), "seed");
    let paths = manifests(&store);
    let mut m = read_json(&paths[1]);
    m["counts"]["missing"] = Value::from(0);
    std::fs::write(&paths[1], format!("{m}\n")).expect("rewrite");
    let (code, out) = verify(&store);
    assert_eq!(code, Some(5), "{out}");
    assert!(out.contains("changed after it committed"), "{out}");
}

/// Kills a collect after `after`, unless it finished first; returns whether it was killed.
fn kill_after(mut child: Child, after: Duration) -> bool {
    let deadline = Instant::now() + after;
    while Instant::now() < deadline {
        if child.try_wait().expect("poll").is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let killed = child.try_wait().expect("poll").is_none();
    let _ = child.kill();
    let _ = child.wait();
    killed
}

/// After any interruption: verify passes, and reports list the committed runs: every one seen
/// before, at most one more (the interrupted run, if it committed before the kill), none twice.
/// `verify` after a kill: it passes, or the kill fell between a run's chain entry and its manifest
/// (docs/commit-protocol.md, "Crashes": the entry names a manifest its committer died before
/// writing, and its pending copy holds it). That is the one torn state a kill may leave; the next
/// commit heals it, and so does `verify --repair`, tried here: after it, verify passes.
fn verify_passes_or_heals(s3: Option<&str>, store: &str) {
    let out = read(s3, &["verify", "--store", store]);
    if out.status.code() == Some(0) {
        return;
    }
    let said = text(&out.stdout);
    let findings: Vec<&str> = said
        .lines()
        .filter(|l| {
            !l.starts_with("note ") && !l.starts_with("head ") && !l.contains(" finding(s) in ")
        })
        .collect();
    assert!(
        !findings.is_empty()
            && findings
                .iter()
                .all(|l| l.contains("its committer died before writing it")),
        "verify failed, and not on a torn commit:\n{said}{}",
        text(&out.stderr)
    );
    let repaired = read(s3, &["verify", "--repair", "--store", store]);
    assert!(
        text(&repaired.stdout).contains("repaired"),
        "verify --repair did not heal the torn commit:\n{}{}",
        text(&repaired.stdout),
        text(&repaired.stderr)
    );
    verify_passes(s3, store);
}

/// The torn commit `verify_passes_or_heals` accepts, made on purpose: the newest entry names a
/// manifest that is gone while its pending copy holds it. verify names it (exit 5), `--repair`
/// recreates the manifest from the copy, and verify then passes with every run.
#[test]
fn repair_recreates_a_manifest_its_committer_died_before_writing() {
    let sim = start_sim(&["--instances", "20", "--seed", "5"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store");
    let s = store.to_str().expect("utf8");
    let mut before = Vec::new();
    for _ in 0..2 {
        ok(collect(&sim.url, None, s, &[]).output().expect("collect"));
        before = history_is_whole(None, s, &before);
    }
    assert_eq!(before.len(), 2);
    let entry: Value = serde_json::from_slice(
        &std::fs::read(store.join("_patchtrail/chain/000000000002.json")).expect("entry 2"),
    )
    .expect("json");
    let manifest = store.join(entry["manifest_key"].as_str().expect("manifest_key"));
    let run = entry["run_id"].as_str().expect("run_id");
    let pending = store.join(format!("_patchtrail/pending/{run}/000000000002.json"));
    let bytes = std::fs::read(&manifest).expect("manifest");
    std::fs::remove_file(&manifest).expect("the committer died before the manifest");
    // States no crash leaves, where repair must recreate nothing: no pending copy at all, and a
    // pending copy whose bytes are not what the entry committed.
    let repair_changes_nothing = |what: &str| {
        let out = read(None, &["verify", "--repair", "--store", s]);
        assert!(
            !text(&out.stdout).contains("recreated manifest"),
            "{what}: {}",
            text(&out.stdout)
        );
        assert!(!manifest.exists(), "{what}: a manifest was made up");
        let still = read(None, &["verify", "--store", s]);
        assert_eq!(
            still.status.code(),
            Some(5),
            "{what}: {}",
            text(&still.stdout)
        );
    };
    repair_changes_nothing("no pending copy");
    std::fs::create_dir_all(pending.parent().expect("parent")).expect("mkdir");
    let mut forged = bytes.clone();
    forged.extend_from_slice(b" ");
    std::fs::write(&pending, &forged).expect("a forged pending copy");
    repair_changes_nothing("a pending copy of other bytes");
    std::fs::write(&pending, &bytes).expect("the genuine pending copy");
    let torn = read(None, &["verify", "--store", s]);
    assert_eq!(torn.status.code(), Some(5), "{}", text(&torn.stdout));
    assert!(text(&torn.stdout).contains("its committer died before writing it"));
    assert_eq!(history_is_whole(None, s, &before), before);
    assert!(manifest.is_file(), "the manifest is back");
}

fn history_is_whole(s3: Option<&str>, store: &str, before: &[String]) -> Vec<String> {
    verify_passes_or_heals(s3, store);
    let runs = trend_runs(s3, store);
    let unique: BTreeSet<&String> = runs.iter().collect();
    assert_eq!(unique.len(), runs.len(), "a run listed twice: {runs:?}");
    assert!(
        before.iter().all(|r| runs.contains(r)),
        "a committed run vanished: {before:?} -> {runs:?}"
    );
    assert!(
        runs.len() <= before.len() + 1,
        "more runs than were started: {runs:?}"
    );
    runs
}

/// Regression: a killed `--format seed` run's pages were read as a seed-workflow snapshot.
#[test]
fn a_run_killed_at_any_point_is_invisible_in_every_format() {
    let sim = start_sim(&["--instances", "150", "--seed", "12", "--latency-ms", "15"]);
    let dir = tempfile::tempdir().expect("tempdir");
    for format in ["parquet", "jsonl", "seed"] {
        let store = dir.path().join(format);
        let s = store.to_str().expect("utf8");
        ok(collect(&sim.url, None, s, &["--format", format])
            .output()
            .expect("first run"));
        let mut runs = history_is_whole(None, s, &[]);
        assert_eq!(runs.len(), 1);
        for millis in [100, 400, 900, 1600] {
            let child = collect(
                &sim.url,
                None,
                s,
                &["--format", format, "--concurrency", "2"],
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
            kill_after(child, Duration::from_millis(millis));
            runs = history_is_whole(None, s, &runs);
        }
        ok(collect(&sim.url, None, s, &["--format", format])
            .output()
            .expect("after the kills"));
        let after = history_is_whole(None, s, &runs);
        assert_eq!(
            after.len(),
            runs.len() + 1,
            "the collect after the kills committed"
        );
    }
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([format!("-{name}"), child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

/// Regression: a stop was only seen between instances, so SIGTERM during discovery or the
/// patch-state phase waited for the phase to end.
#[test]
fn sigterm_stops_every_phase_and_a_second_ctrl_c_quits_at_once() {
    // 400 ms a call: identity, discovery and patch states each take a while.
    let sim = start_sim(&["--instances", "400", "--seed", "3", "--latency-ms", "400"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("h");
    let s = store.to_str().expect("utf8");
    for (after_ms, signals) in [
        (200, &["TERM"][..]),
        (900, &["TERM"][..]),
        (300, &["INT", "INT"][..]),
    ] {
        let mut child = collect(&sim.url, None, s, &[])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        std::thread::sleep(Duration::from_millis(after_ms));
        let sent = Instant::now();
        for name in signals {
            signal(&child, name);
            std::thread::sleep(Duration::from_millis(50));
        }
        let stderr = BufReader::new(child.stderr.take().expect("stderr"))
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
            .join("\n");
        let status = child.wait().expect("wait");
        assert_eq!(status.code(), Some(130), "{stderr}");
        assert!(
            sent.elapsed() < Duration::from_millis(1500),
            "stopped after {:?}: {stderr}",
            sent.elapsed()
        );
        assert!(manifests(&store).is_empty(), "nothing committed");
    }
}

#[test]
fn sql_runs_queries_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = imported_store(dir.path(), "parquet");
    let s = store.to_str().expect("utf8");
    let target = dir.path().join("written.csv");
    for statement in [
        format!("COPY (SELECT 1) TO '{}'", target.display()),
        "CREATE EXTERNAL TABLE etc (line VARCHAR) STORED AS CSV LOCATION '/etc/'".to_string(),
        "CREATE TABLE t AS SELECT 1".to_string(),
        "INSERT INTO patches SELECT * FROM patches".to_string(),
        "SET datafusion.execution.batch_size = 1".to_string(),
        "DROP VIEW patches".to_string(),
    ] {
        let out = Command::new(patchtrail_bin())
            .args(["sql", &statement, "--store", s])
            .output()
            .expect("sql");
        assert_eq!(
            out.status.code(),
            Some(2),
            "{statement}: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr).contains("read-only"),
            "{}",
            text(&out.stderr)
        );
        assert_eq!(
            text(&out.stderr).trim().lines().count(),
            1,
            "one line: {}",
            text(&out.stderr)
        );
    }
    assert!(!target.exists(), "COPY wrote a file");
    let out = ok(Command::new(patchtrail_bin())
        .args([
            "sql",
            "SELECT state_class(state) AS c, count(*) AS n FROM patches GROUP BY 1",
            "--store",
            s,
            "--format",
            "csv",
        ])
        .output()
        .expect("sql"));
    assert_eq!(out.trim(), "c,n\nmissing,3");
}

/// The seeded fault suite: every trial collects through a simulator that fails 5 % of calls and
/// throttles past its rate, into moto's S3 behind a proxy that answers 10 % of PUTs with 503,
/// and is killed at a seeded moment (or finishes). After each: verify passes, reports list
/// exactly the committed runs, none partial; at the end a collect succeeds.
#[test]
fn fault_suite_keeps_history_whole() {
    const TRIALS: u64 = 10;
    let moto = start_moto();
    py_json(&moto.url, "s3_bucket.py", &["fault-history"]);
    let proxy = start_s3_proxy(&moto.url, "0.10", "7", &[]);
    let proxy_url = proxy.url.clone();
    let sim = start_sim(&[
        "--instances",
        "50",
        "--seed",
        "17",
        "--fault-rate",
        "0.05",
        "--ssm-tps",
        "40",
        "--latency-ms",
        "5",
    ]);
    let store = "s3://fault-history/h";
    let s3 = Some(proxy_url.as_str());
    let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
    let (mut runs, mut killed) = (Vec::new(), 0);
    for _ in 0..TRIALS {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let after = Duration::from_millis(rng % 6000);
        let child = collect(
            &sim.url,
            s3,
            store,
            &["--concurrency", "8", "--max-attempts", "10"],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
        killed += u32::from(kill_after(child, after));
        runs = history_is_whole(s3, store, &runs);
    }
    ok(collect(&sim.url, s3, store, &["--max-attempts", "10"])
        .output()
        .expect("final collect"));
    let after = history_is_whole(s3, store, &runs);
    assert_eq!(
        after.len(),
        runs.len() + 1,
        "a collect after the trials commits"
    );
    let faults = ureq_get(&format!("{proxy_url}/_faults"));
    let stats = ureq_get(&format!("{}/_sim/stats", sim.url));
    eprintln!(
        "fault suite: {TRIALS} trials, {killed} killed, {} committed; S3 503s injected: {faults}; simulator: {stats}",
        runs.len()
    );
    assert!(
        faults.trim().parse::<u64>().unwrap_or(0) > 0,
        "the proxy injected faults"
    );
}

/// A GET on loopback with curl (no HTTP client in the test's dependencies).
fn ureq_get(url: &str) -> String {
    text(
        &Command::new("curl")
            .args(["-s", url])
            .output()
            .expect("curl")
            .stdout,
    )
}
