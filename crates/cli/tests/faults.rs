//! History that cannot lie (issue 21): the faults real stores make, made for real. A proxy in
//! front of moto's S3 loses answers after applying writes, ignores `If-None-Match`, and kills the
//! writer right after its N-th write landed; strace takes hard links and rename-without-replace
//! away from a folder; hostile names, damaged runs and input AWS never sends. Every check of the
//! chain is read independently (tests/py/chain_check.py, boto3 or plain file reads).

mod common;

use common::*;
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// `patchtrail collect` with EC2, SSM and STS at the simulator and S3 at `s3`.
fn collect(sim: &str, s3: &str, store: &str, extra: &[&str]) -> Command {
    let mut cmd = Command::new(patchtrail_bin());
    aws_env(&mut cmd, sim);
    cmd.env("AWS_ENDPOINT_URL_S3", s3)
        .args(["collect", "--store", store, "-q"])
        .args(extra);
    cmd
}

/// Any other command with S3 at `s3`.
fn at(s3: &str, args: &[&str]) -> Output {
    patchtrail(s3, args)
}

/// The chain as boto3 reads it (straight from moto, never through a proxy).
fn chain(moto: &str, store: &str) -> Value {
    py_json(moto, "chain_check.py", &[store])
}

fn assert_whole(moto: &str, store: &str) -> Value {
    let c = chain(moto, store);
    assert_eq!(
        c["twice"],
        Value::Array(vec![]),
        "a run committed twice: {c}"
    );
    assert_eq!(c["gaps"], Value::Array(vec![]), "a gap: {c}");
    assert_eq!(c["bad_manifests"], Value::Array(vec![]), "{c}");
    let verify = at(moto, &["verify", "--store", store]);
    assert_eq!(
        verify.status.code(),
        Some(0),
        "verify:\n{}{}",
        text(&verify.stdout),
        text(&verify.stderr)
    );
    c
}

fn wait_for(path: &Path, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !path.exists() {
        assert!(Instant::now() < deadline, "{what} never happened");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn curl(method: &str, url: &str) -> String {
    text(
        &Command::new("curl")
            .args(["-s", "-X", method, url])
            .output()
            .expect("curl")
            .stdout,
    )
}

fn proxy(upstream: &str, args: &[&str]) -> Server {
    start_s3_proxy_with(upstream, args)
}

/// Observation 1: S3 applies a run's create-only entry and its answer is lost; another run
/// commits meanwhile; the retry is refused (412) for the run's own write. The run is committed
/// once, at its own entry, and the other run after it.
#[test]
fn a_lost_answer_to_a_chain_entry_with_a_commit_in_between_commits_once() {
    let moto = start_moto();
    py_json(&moto.url, "s3_bucket.py", &["lost-answer"]);
    let hold = tempfile::tempdir().expect("tempdir");
    let lossy = proxy(
        &moto.url,
        &[
            "1.0",
            "1",
            "--after-apply",
            "--once",
            "--only",
            "/_patchtrail/chain/000000000001\\.json",
            "--hold",
            hold.path().to_str().expect("utf8"),
        ],
    );
    let sim = start_sim(&["--instances", "6", "--seed", "3"]);
    let store = "s3://lost-answer/h";
    let first = collect(&sim.url, &lossy.url, store, &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("first collect");
    // Entry 1 has landed and its answer is held: another run commits now, after it.
    wait_for(&hold.path().join("applied-1"), "the first entry");
    ok(collect(&sim.url, &lossy.url, store, &[])
        .output()
        .expect("second collect"));
    std::fs::write(hold.path().join("release-1"), b"").expect("release");
    ok(first.wait_with_output().expect("first"));

    let c = assert_whole(&moto.url, store);
    assert_eq!(c["entries"], 2, "two runs, two entries: {c}");
}

/// Observation 2: a store that lets a second create of one object through (it ignores
/// `If-None-Match`) is refused before anything is written, and `doctor` says so.
#[test]
fn a_store_without_create_only_writes_is_refused_before_anything_is_written() {
    let moto = start_moto();
    py_json(&moto.url, "s3_bucket.py", &["no-conditional"]);
    let naive = proxy(&moto.url, &["0", "1", "--ignore-if-none-match"]);
    let sim = start_sim(&["--instances", "4", "--seed", "5"]);
    let store = "s3://no-conditional/h";
    let out = collect(&sim.url, &naive.url, store, &[])
        .output()
        .expect("collect");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("does not honour create-only writes"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    let c = chain(&moto.url, store);
    assert_eq!(
        (&c["entries"], &c["claims"]),
        (&Value::from(0), &Value::Array(vec![])),
        "nothing written: {c}"
    );
    let mut doctor = Command::new(patchtrail_bin());
    aws_env(&mut doctor, &sim.url);
    let doctor = doctor
        .env("AWS_ENDPOINT_URL_S3", &naive.url)
        .args(["doctor", "--store", store])
        .output()
        .expect("doctor");
    assert_ne!(doctor.status.code(), Some(0), "doctor is not ready");
    assert!(
        text(&doctor.stdout).contains("does not honour create-only writes"),
        "{}",
        text(&doctor.stdout)
    );
    // The same bucket through an honest path takes the run.
    ok(collect(&sim.url, &moto.url, store, &[])
        .output()
        .expect("collect"));
    assert_whole(&moto.url, store);
}

/// Observation 8: a checkpoint whose answer is lost still suspends the run (exit 6, not a false
/// "continued by another process"); a resume under the wrong region writes nothing.
#[test]
fn a_lost_checkpoint_answer_suspends_and_a_wrong_scope_resume_writes_nothing() {
    let moto = start_moto();
    py_json(&moto.url, "s3_bucket.py", &["lost-checkpoint"]);
    let lossy = proxy(
        &moto.url,
        &[
            "1.0",
            "1",
            "--after-apply",
            "--once",
            "--only",
            "/_patchtrail/checkpoints/[^/]+/[0-9]{4}\\.json",
        ],
    );
    let sim = start_sim(&[
        "--instances",
        "60",
        "--seed",
        "9",
        "--ssm-tps",
        "10",
        "--latency-ms",
        "20",
    ]);
    let store = "s3://lost-checkpoint/h";
    let out = collect(&sim.url, &lossy.url, store, &["--time-limit", "2s"])
        .output()
        .expect("collect");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "suspended: {stderr}");
    let run_id = run_to_resume(&stderr).expect("the run to resume");

    let attempts = |moto: &str| -> usize {
        let listed = py_json(moto, "chain_check.py", &[store]);
        assert!(listed.is_object());
        let mut cmd = Command::new(python());
        aws_env(&mut cmd, moto);
        let out = ok(cmd
            .args([
                "-c",
                "import boto3,sys;print(sum(1 for p in boto3.client('s3').get_paginator('list_objects_v2').paginate(Bucket='lost-checkpoint',Prefix='h/_patchtrail/checkpoints/') for o in p.get('Contents',[])))",
            ])
            .output()
            .expect("python"));
        out.trim().parse().expect("a count")
    };
    let before = attempts(&moto.url);
    let wrong = collect(
        &sim.url,
        &moto.url,
        store,
        &["--resume", &run_id, "--region", "eu-west-1"],
    )
    .output()
    .expect("resume");
    assert_eq!(wrong.status.code(), Some(2), "{}", text(&wrong.stderr));
    assert_eq!(
        attempts(&moto.url),
        before,
        "a wrong-scope resume writes nothing"
    );

    loop {
        let next = collect(&sim.url, &moto.url, store, &["--resume", &run_id])
            .output()
            .expect("resume");
        match next.status.code() {
            Some(0) => break,
            Some(6) => continue,
            code => panic!("exit {code:?}: {}", text(&next.stderr)),
        }
    }
    let c = assert_whole(&moto.url, store);
    assert_eq!(c["runs"], Value::from(vec![run_id]), "{c}");
}

/// One sweep: for every write of an undisturbed run of `command`, a trial whose writer is killed
/// right after that write landed, then `recover` until the history is whole. Returns
/// (trials, kills, runs lost, double commits).
struct Sweep<'a> {
    moto: &'a str,
    proxy: &'a str,
    store: &'a str,
}

impl Sweep<'_> {
    fn stats(&self) -> Value {
        serde_json::from_str(&curl("GET", &format!("{}/_stats", self.proxy))).expect("stats")
    }

    /// Runs `cmd` with a kill armed at its `n`-th PUT; its stdout (what it reported) and whether
    /// it was killed.
    fn killed_at(&self, mut cmd: Command, n: u64, dir: &Path) -> (String, bool) {
        let pidfile = dir.join(format!("pid-{n}"));
        let _ = std::fs::remove_file(&pidfile);
        curl(
            "POST",
            &format!(
                "{}/_arm?kill_at={n}&pidfile={}",
                self.proxy,
                pidfile.display()
            ),
        );
        let child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        let tmp = dir.join(format!("pid-{n}.tmp"));
        std::fs::write(&tmp, child.id().to_string()).expect("pid");
        std::fs::rename(&tmp, &pidfile).expect("pid");
        let out = child.wait_with_output().expect("wait");
        // Disarm, whatever happened.
        curl("POST", &format!("{}/_arm?kill_at=0&pidfile=-", self.proxy));
        (text(&out.stdout), out.status.code().is_none())
    }
}

/// The fault suite (issue 21): a kill at every object write of `collect`, `collect --resume` and
/// `import`, through the proxy that also loses answers. After each kill the store is recovered
/// the way a user would (collect again, resume, import again) and read back independently:
/// no run is lost (everything a process reported committed is in history, once), none is
/// committed twice, verify passes. The figures are printed.
#[test]
fn a_kill_at_every_write_loses_no_run_and_commits_none_twice() {
    let moto = start_moto();
    py_json(&moto.url, "s3_bucket.py", &["sweep"]);
    // 10 % of the chain entries and checkpoints land and lose their answer, besides the kills.
    let lossy = proxy(
        &moto.url,
        &[
            "0.10",
            "21",
            "--after-apply",
            "--once",
            "--only",
            "/_patchtrail/(chain|checkpoints)/",
        ],
    );
    // 40 instances (33 tagged, 36 patch pages) at 12 patch reads a second: a run takes about
    // 2 s, so a 1 s limit suspends.
    let sim = start_sim(&[
        "--instances",
        "40",
        "--seed",
        "11",
        "--ssm-tps",
        "12",
        "--latency-ms",
        "5",
    ]);
    let dir = tempfile::tempdir().expect("tempdir");
    let sweep = Sweep {
        moto: &moto.url,
        proxy: &lossy.url,
        store: "s3://sweep/h",
    };
    let (mut trials, mut kills, mut lost, mut twice) = (0u64, 0u64, 0usize, 0usize);
    let mut reported: Vec<String> = Vec::new();
    let check = |reported: &[String], lost: &mut usize, twice: &mut usize| {
        let c = assert_whole(sweep.moto, sweep.store);
        let runs: Vec<String> = c["runs"]
            .as_array()
            .expect("runs")
            .iter()
            .filter_map(|r| r.as_str().map(str::to_string))
            .collect();
        *lost = reported.iter().filter(|r| !runs.contains(r)).count();
        *twice = c["twice"].as_array().map_or(0, Vec::len);
        assert_eq!((*lost, *twice), (0, 0), "{c}");
    };
    let json_run = |stdout: &str| -> Option<String> {
        stdout
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find_map(|v| v["run_id"].as_str().map(str::to_string))
    };
    let json_collect = |extra: &[&str]| {
        let mut cmd = collect(&sim.url, sweep.proxy, sweep.store, extra);
        cmd.args(["--log-format", "json", "--max-attempts", "10"]);
        cmd
    };

    // collect: how many writes an undisturbed run makes, then a kill after each of them.
    let puts = sweep.stats()["puts"].as_u64().unwrap_or(0);
    let clean = ok(json_collect(&[]).output().expect("clean collect"));
    reported.extend(json_run(&clean));
    let writes = sweep.stats()["puts"].as_u64().unwrap_or(0) - puts;
    for n in 1..=writes {
        trials += 1;
        let (stdout, killed) = sweep.killed_at(json_collect(&[]), n, dir.path());
        kills += u64::from(killed);
        reported.extend(json_run(&stdout));
        // Recovery: the next collect (it also finishes what the killed one left half-written).
        reported.extend(json_run(&ok(json_collect(&[]).output().expect("recover"))));
        check(&reported, &mut lost, &mut twice);
    }

    // collect --resume: each trial suspends a run, then kills its continuation at write n.
    let suspend = || -> String {
        let out = json_collect(&["--time-limit", "1s"])
            .output()
            .expect("suspend");
        assert_eq!(out.status.code(), Some(6), "{}", text(&out.stderr));
        text(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find_map(|v| v["resume"].as_str().map(str::to_string))
            .or_else(|| run_to_resume(&text(&out.stderr)))
            .expect("the run to resume")
    };
    let run_id = suspend();
    let puts = sweep.stats()["puts"].as_u64().unwrap_or(0);
    let out = json_collect(&["--resume", &run_id])
        .output()
        .expect("clean resume");
    assert!(
        matches!(out.status.code(), Some(0 | 6)),
        "{}",
        text(&out.stderr)
    );
    let resume_writes = sweep.stats()["puts"].as_u64().unwrap_or(0) - puts;
    reported.extend(json_run(&text(&out.stdout)));
    for n in 1..=resume_writes {
        trials += 1;
        let run_id = suspend();
        let (stdout, killed) = sweep.killed_at(json_collect(&["--resume", &run_id]), n, dir.path());
        kills += u64::from(killed);
        reported.extend(json_run(&stdout));
        loop {
            let out = json_collect(&["--resume", &run_id])
                .output()
                .expect("resume");
            match out.status.code() {
                Some(0) => {
                    reported.extend(json_run(&text(&out.stdout)));
                    break;
                }
                Some(6) => continue,
                code => panic!("resume exit {code:?}: {}", text(&out.stderr)),
            }
        }
        check(&reported, &mut lost, &mut twice);
    }

    // import: three runs a file; import prints each run id once committed.
    let lines: String = (0..3)
        .map(|d| {
            format!(
                "{{\"snapshot_time\":\"2026-0{}-01T00:00:00Z\",\"account_id\":\"999999999999\",\"region\":\"eu-west-1\",\"instances\":[{{\"instance_id\":\"i-0123456789abcdef{d}\",\"last_scan_time\":\"2026-01-01T00:00:00Z\",\"patches\":[{{\"kb_id\":\"KB{d}\",\"title\":\"t\",\"classification\":\"Security\",\"severity\":\"Critical\",\"state\":\"Missing\"}}]}}]}}\n",
                d + 1
            )
        })
        .collect();
    let file = dir.path().join("runs.jsonl");
    std::fs::write(&file, lines).expect("import file");
    let import = || {
        let mut cmd = Command::new(patchtrail_bin());
        aws_env(&mut cmd, sweep.proxy);
        cmd.args(["import", "--store", sweep.store]).arg(&file);
        cmd
    };
    let puts = sweep.stats()["puts"].as_u64().unwrap_or(0);
    reported.extend(
        ok(import().output().expect("import"))
            .lines()
            .map(str::to_string),
    );
    let import_writes = sweep.stats()["puts"].as_u64().unwrap_or(0) - puts;
    for n in 1..=import_writes {
        trials += 1;
        let (stdout, killed) = sweep.killed_at(import(), n, dir.path());
        kills += u64::from(killed);
        reported.extend(stdout.lines().map(str::to_string));
        // Recovery: what verify says to do (it recreates a manifest the import did not live to
        // write); a new import would too, with its first commit.
        ok(at(
            sweep.moto,
            &["verify", "--store", sweep.store, "--repair"],
        ));
        check(&reported, &mut lost, &mut twice);
    }

    let faults = sweep.stats()["faults"].as_u64().unwrap_or(0);
    eprintln!(
        "fault suite: {trials} trials ({writes} collect, {resume_writes} resume, {import_writes} import writes swept), {kills} kills, {faults} lost answers; runs lost {lost}, double commits {twice}"
    );
    assert!(kills > 0 && faults > 0, "the faults happened");
    assert_eq!((lost, twice), (0, 0));
}

/// A folder store where links fail (vfat, SMB, some FUSE mounts), and one where rename without
/// replace fails too: strace injects the errors into the real binary's system calls.
#[test]
fn folders_without_hard_links_still_commit_once() {
    let sim = start_sim(&["--instances", "8", "--seed", "13"]);
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, inject, mechanism) in [
        (
            "no-links",
            vec!["-e", "inject=link,linkat:error=EPERM"],
            "rename without replace",
        ),
        (
            "no-links-no-noreplace",
            vec![
                "-e",
                "inject=link,linkat:error=EPERM",
                "-e",
                "inject=renameat2:error=EINVAL",
            ],
            "exclusive create",
        ),
    ] {
        let store = dir.path().join(name);
        let s = store.to_str().expect("utf8");
        let traced = |args: &[&str]| {
            let mut cmd = Command::new("strace");
            aws_env(&mut cmd, &sim.url);
            cmd.args(["-f", "-qq", "-o", "/dev/null"])
                .args(&inject)
                .arg(patchtrail_bin())
                .args(args)
                .output()
                .expect("strace (installed by scripts/test)")
        };
        for _ in 0..2 {
            ok(traced(&["collect", "--store", s, "-q"]));
        }
        let doctor = traced(&["doctor", "--store", s]);
        assert!(
            text(&doctor.stdout).contains(mechanism),
            "{name}: {}",
            text(&doctor.stdout)
        );
        let c = py_json(&sim.url, "chain_check.py", &[s]);
        assert_eq!(c["entries"], 2, "{name}: {c}");
        assert_eq!(c["twice"], Value::Array(vec![]));
        ok(Command::new(patchtrail_bin())
            .args(["verify", "--store", s])
            .output()
            .expect("verify"));
    }
}

/// A small history imported into a folder: (store path, run ids oldest first).
fn imported(dir: &Path) -> (String, Vec<String>) {
    let store = dir.join("h");
    let file = dir.join("in.jsonl");
    let lines: String = (1..=3)
        .map(|d| {
            format!(
                "{{\"snapshot_time\":\"2026-03-0{d}T00:00:00Z\",\"account_id\":\"111111111111\",\"region\":\"us-east-1\",\"instances\":[{{\"instance_id\":\"i-00000000000000001\",\"last_scan_time\":\"2026-03-0{d}T00:00:00Z\",\"patches\":[{{\"kb_id\":\"KB1\",\"title\":\"t\",\"classification\":\"Security\",\"severity\":\"Critical\",\"state\":\"{}\"}}]}}]}}\n",
                if d == 3 { "Installed" } else { "Missing" }
            )
        })
        .collect();
    std::fs::write(&file, lines).expect("input");
    let out = ok(Command::new(patchtrail_bin())
        .args(["import", "--store", store.to_str().expect("utf8")])
        .arg(&file)
        .output()
        .expect("import"));
    (
        store.to_str().expect("utf8").to_string(),
        out.lines().map(str::to_string).collect(),
    )
}

fn run(args: &[&str]) -> Output {
    Command::new(patchtrail_bin())
        .args(args)
        .output()
        .expect("run patchtrail")
}

/// Observations 5, 6 and 10 at the command line: a truncated chain, an empty newest entry, a
/// missing data object and a changed manifest make reports exit 5 naming `verify`, never answer
/// from an older run; `--skip-damaged` answers without the damaged run and says so.
#[test]
fn reports_refuse_a_damaged_store_and_say_what_they_skip() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, runs) = imported(dir.path());
    let summary = |extra: &[&str]| {
        let mut args = vec!["report", "summary", "--store", &store, "--format", "json"];
        args.extend_from_slice(extra);
        run(&args)
    };
    let newest = |out: &Output| -> String {
        let v: Value = serde_json::from_slice(&out.stdout).expect("json");
        let rows = if v.is_array() { &v } else { &v["rows"] };
        rows[0]["run_id"].as_str().unwrap_or_default().to_string()
    };
    assert_eq!(newest(&summary(&[])), runs[2]);
    let refused = |out: &Output, what: &str| {
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(5), "{what}: {stderr}");
        assert!(stderr.contains("patchtrail verify"), "{what}: {stderr}");
        assert!(
            out.stdout.is_empty(),
            "{what}: no rows from a damaged store"
        );
    };

    // A data object of the newest run is gone.
    let manifest: Value = serde_json::from_slice(
        &std::fs::read(
            Path::new(&store).join(format!("runs/year=2026/month=03/day=03/{}.json", runs[2])),
        )
        .expect("manifest"),
    )
    .expect("json");
    let object = Path::new(&store).join(manifest["objects"][0]["key"].as_str().expect("key"));
    let held = std::fs::read(&object).expect("object");
    std::fs::remove_file(&object).expect("remove");
    let out = summary(&[]);
    refused(&out, "a missing object");
    assert!(text(&out.stderr).contains(&runs[2]), "names the run");
    let skipped = summary(&["--skip-damaged"]);
    assert_eq!(skipped.status.code(), Some(0), "{}", text(&skipped.stderr));
    let v: Value = serde_json::from_slice(&skipped.stdout).expect("json");
    assert!(
        v["notes"][0]
            .as_str()
            .unwrap_or_default()
            .contains(&runs[2]),
        "the output says what it left out: {v}"
    );
    assert_eq!(
        newest(&skipped),
        runs[1],
        "as if the run had never committed"
    );
    for format in ["csv", "markdown", "table", "jsonl"] {
        let out = run(&[
            "report",
            "summary",
            "--store",
            &store,
            "--format",
            format,
            "--skip-damaged",
        ]);
        assert!(
            text(&out.stdout).contains(&format!(
                "left out as damaged (--skip-damaged), run patchtrail verify: run {}",
                runs[2]
            )),
            "{format}: {}",
            text(&out.stdout)
        );
    }
    std::fs::write(&object, held).expect("restore");

    // A manifest changed after it committed: refused, not silently replaced by the one before.
    let path = Path::new(&store).join(format!("runs/year=2026/month=03/day=03/{}.json", runs[2]));
    let original = std::fs::read_to_string(&path).expect("manifest");
    std::fs::write(
        &path,
        original.replacen("\"instances\":", "\"instances\": ", 1),
    )
    .expect("edit");
    refused(&summary(&[]), "a changed manifest");
    std::fs::write(&path, &original).expect("restore");
    assert_eq!(newest(&summary(&[])), runs[2]);

    // An empty newest entry (a crash while it was written): reports and commits refuse and
    // name the repair, which loses nothing.
    let entry = Path::new(&store).join("_patchtrail/chain/000000000004.json");
    std::fs::write(&entry, b"").expect("crash leftover");
    refused(
        &run(&["report", "trend", "--store", &store]),
        "an empty entry",
    );
    let verify = run(&["verify", "--store", &store]);
    assert_eq!(verify.status.code(), Some(5));
    assert!(text(&verify.stdout).contains("verify --repair"));
    ok(run(&["verify", "--store", &store, "--repair"]));
    assert_eq!(newest(&summary(&[])), runs[2]);

    // The newest entry removed: a truncated chain.
    let head = text(&run(&["verify", "--store", &store]).stdout)
        .lines()
        .find_map(|l| {
            l.strip_prefix("head       ")
                .map(|w| w.split_whitespace().next().unwrap_or("").to_string())
        })
        .expect("verify prints the head witness");
    std::fs::remove_file(Path::new(&store).join("_patchtrail/chain/000000000003.json"))
        .expect("truncate");
    refused(&summary(&[]), "a truncated chain");
    let verify = run(&["verify", "--store", &store]);
    assert_eq!(verify.status.code(), Some(5));
    assert!(
        text(&verify.stdout).contains("truncation"),
        "{}",
        text(&verify.stdout)
    );
    std::fs::write(Path::new(&store).join("_patchtrail/chain-head"), b"2").expect("hide it");
    let hidden = run(&["verify", "--store", &store, "--expect-head", &head]);
    assert_eq!(hidden.status.code(), Some(5), "{}", text(&hidden.stdout));
    assert!(text(&hidden.stdout).contains("the head you kept"));
}

/// Observation 7: foreign files whose names hold a control character are noted and skipped by
/// verify and reports, which go on.
#[test]
fn foreign_names_with_control_characters_are_noted_not_fatal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _) = imported(dir.path());
    for name in [
        "runs/a\tb.json",
        "patches/c\td.parquet",
        "_patchtrail/chain/e\tf.json",
    ] {
        std::fs::write(Path::new(&store).join(name), b"x").expect("foreign");
    }
    let verify = run(&["verify", "--store", &store]);
    assert_eq!(verify.status.code(), Some(0), "{}", text(&verify.stdout));
    assert!(text(&verify.stdout).contains("a control character in its name"));
    let trend = run(&["report", "trend", "--store", &store, "--format", "csv"]);
    assert_eq!(trend.status.code(), Some(0), "{}", text(&trend.stderr));
    assert_eq!(text(&trend.stdout).lines().count(), 4, "header and 3 runs");
    assert!(text(&trend.stderr).contains("cannot be read"));
}

/// Observation 11: `import` refuses what AWS never sends, and writes nothing.
#[test]
fn import_refuses_what_aws_never_sends_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _) = imported(dir.path());
    let chain_before = py_json("http://127.0.0.1:9", "chain_check.py", &[&store]);
    let instance = |id: &str, patches: &str| {
        format!(
            "{{\"instance_id\":\"{id}\",\"last_scan_time\":\"2026-04-01T00:00:00Z\",\"patches\":[{patches}]}}"
        )
    };
    let patch = |kb: &str| {
        format!(
            "{{\"kb_id\":\"{kb}\",\"title\":\"t\",\"classification\":\"Security\",\"severity\":\"Critical\",\"state\":\"Missing\"}}"
        )
    };
    let line = |extra: &str, instances: &[String]| {
        format!(
            "{{\"snapshot_time\":\"2026-04-01T00:00:00Z\",{extra}\"account_id\":\"111111111111\",\"region\":\"us-east-1\",\"instances\":[{}]}}\n",
            instances.join(",")
        )
    };
    let a = "i-0000000000000000a";
    for (case, input, said) in [
        (
            "an instance twice",
            line(
                "",
                &[instance(a, &patch("KB1")), instance(a, &patch("KB2"))],
            ),
            "listed twice in one run",
        ),
        (
            "a patch twice",
            line(
                "",
                &[instance(a, &format!("{},{}", patch("KB1"), patch("KB1")))],
            ),
            "listed twice for instance",
        ),
        (
            "a scan after the finish",
            line(
                "\"finished_at\":\"2026-03-31T00:00:00Z\",",
                &[instance(a, &patch("KB1"))],
            ),
            "finished_at",
        ),
    ] {
        let file = dir.path().join("bad.jsonl");
        // A good line first: nothing of the file is written when any line is refused.
        std::fs::write(
            &file,
            format!("{}{input}", line("", &[instance(a, &patch("KB9"))])),
        )
        .expect("input");
        let out = run(&["import", "--store", &store, file.to_str().expect("utf8")]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{case}: {stderr}");
        assert!(
            stderr.contains(said) && stderr.contains("line 2"),
            "{case}: {stderr}"
        );
        assert_eq!(
            py_json("http://127.0.0.1:9", "chain_check.py", &[&store]),
            chain_before,
            "{case}: nothing written"
        );
    }
}
