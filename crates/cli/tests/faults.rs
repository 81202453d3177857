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

fn proxy(upstream: &str, args: &[&str]) -> Server {
    start_s3_proxy_with(upstream, args)
}

/// A proxy in front of `upstream` that faults, once, every PUT whose path matches `only` (all of
/// them: rate 1) and holds each fault's answer until the test releases it (`--hold`).
struct Held {
    proxy: Server,
    dir: tempfile::TempDir,
}

impl Held {
    fn new(upstream: &str, only: &str, extra: &[&str]) -> Held {
        let dir = tempfile::tempdir().expect("hold");
        let mut args = vec!["1", "1", "--once", "--only", only, "--hold"];
        args.push(dir.path().to_str().expect("utf8"));
        args.extend_from_slice(extra);
        Held {
            proxy: proxy(upstream, &args),
            dir,
        }
    }

    /// Waits until the `n`-th fault has reached the proxy.
    fn reached(&self, n: u32, what: &str) {
        wait_for(&self.dir.path().join(format!("applied-{n}")), what);
    }

    /// Lets the `n`-th fault's answer go.
    fn release(&self, n: u32) {
        std::fs::write(self.dir.path().join(format!("release-{n}")), b"").expect("release");
    }
}

/// Observation 1: S3 applies a run's create-only entry and its answer is lost; another run
/// commits meanwhile; the retry is refused (412) for the run's own write. The run is committed
/// once, at its own entry, and the other run after it.
#[test]
fn a_lost_answer_to_a_chain_entry_with_a_commit_in_between_commits_once() {
    let moto = start_moto();
    py_json(&moto.url, "s3_bucket.py", &["lost-answer"]);
    let held = Held::new(
        &moto.url,
        "/_patchtrail/chain/000000000001\\.json",
        &["--after-apply"],
    );
    let lossy = &held.proxy;
    let sim = start_sim(&["--instances", "6", "--seed", "3"]);
    let store = "s3://lost-answer/h";
    let first = collect(&sim.url, &lossy.url, store, &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("first collect");
    // Entry 1 has landed and its answer is held: another run commits now, after it.
    held.reached(1, "the first entry");
    ok(collect(&sim.url, &lossy.url, store, &[])
        .output()
        .expect("second collect"));
    held.release(1);
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
    // (A folder that creates exclusively, where a crash can leave one: strace takes hard links
    // and rename without replace away; the claims are aged past repair's quiet period.)
    let entry = Path::new(&store).join("_patchtrail/chain/000000000004.json");
    std::fs::write(&entry, b"").expect("crash leftover");
    refused(
        &run(&["report", "trend", "--store", &store]),
        "an empty entry",
    );
    age_claims(Path::new(&store));
    let verify = exclusive(&["verify", "--store", &store]);
    assert_eq!(verify.status.code(), Some(5));
    assert!(text(&verify.stdout).contains("verify --repair"));
    ok(exclusive(&["verify", "--store", &store, "--repair"]));
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

// Issue 31: repair that never destroys history, and damage no reader can miss.

/// `patchtrail ARGS` in a folder that has neither hard links nor rename without replace (strace
/// takes both away), so that every create is exclusive and a crash could tear an entry.
fn exclusive(args: &[&str]) -> Output {
    Command::new("strace")
        .args(["-f", "-qq", "-o", "/dev/null"])
        .args(["-e", "inject=link,linkat:error=EPERM"])
        .args(["-e", "inject=renameat2:error=EINVAL"])
        .arg(patchtrail_bin())
        .args(args)
        .output()
        .expect("strace (installed by scripts/test)")
}

/// Every file under `dir`, with its bytes.
fn snapshot(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else {
                let key = p.strip_prefix(dir).expect("under").display().to_string();
                out.insert(key, std::fs::read(&p).expect("read"));
            }
        }
    }
    out
}

/// Makes every claim look older than repair's quiet period (as a store no one wrote to lately).
fn age_claims(store: &Path) {
    let old = std::time::SystemTime::now() - Duration::from_secs(3600);
    for e in std::fs::read_dir(store.join("_patchtrail/claims"))
        .expect("claims")
        .flatten()
    {
        std::fs::File::options()
            .write(true)
            .open(e.path())
            .and_then(|f| f.set_modified(old))
            .expect("age a claim");
    }
}

/// Item 1: repair sets aside only what a crash leaves. A garbled newest entry that committed a
/// run (the head hint names it; with the hint lowered, its manifest does) is kept, named, with the
/// way to restore it; so is one met while a writer may be at work, and the second of two torn
/// entries in a row. Only a torn newest entry that provably committed nothing, in a folder that
/// creates exclusively, is set aside, and every committed run stays.
#[test]
fn repair_sets_aside_only_a_torn_entry_that_committed_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, runs) = imported(dir.path());
    let root = Path::new(&store);
    let entry = |n: u64| root.join(format!("_patchtrail/chain/{n:012}.json"));
    let repair = |what: &str| -> String {
        let out = exclusive(&["verify", "--store", &store, "--repair"]);
        let stdout = text(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(5),
            "{what}: {stdout}{}",
            text(&out.stderr)
        );
        stdout
    };
    let verify_code = || run(&["verify", "--store", &store]).status.code();

    // A torn entry while a writer may be at work (the claims are minutes old): kept.
    std::fs::write(entry(4), b"").expect("torn");
    let before = snapshot(root);
    let out = repair("a young claim");
    assert!(
        out.contains("kept chain entry 4") && out.contains("a writer was at work"),
        "{out}"
    );
    assert_eq!(snapshot(root), before, "nothing moved");
    std::fs::remove_file(entry(4)).expect("undo");
    age_claims(root);

    // A committed newest entry garbled: the head hint names it, so it committed a run.
    let committed = std::fs::read(entry(3)).expect("entry 3");
    std::fs::write(entry(3), b"{\"sequence\":3").expect("garble");
    let before = snapshot(root);
    let out = repair("a committed entry");
    assert!(out.contains("kept chain entry 3"), "{out}");
    assert!(
        out.contains("restore it") || out.contains("rebuild it"),
        "{out}"
    );
    assert_eq!(
        snapshot(root),
        before,
        "nothing moved, the hint not lowered"
    );
    // The hint lowered too: the run's manifest still says it is entry 3.
    std::fs::write(root.join("_patchtrail/chain-head"), b"2").expect("lower");
    let out = repair("a committed entry, hint lowered");
    assert!(
        out.contains(&format!("{}.json says it is entry 3", runs[2])),
        "{out}"
    );
    assert!(entry(3).exists(), "kept");
    std::fs::write(entry(3), &committed).expect("restore");
    std::fs::write(root.join("_patchtrail/chain-head"), b"3").expect("restore");
    assert_eq!(verify_code(), Some(0));

    // A torn entry after the head, nothing naming its place: a crash's leftover, set aside.
    std::fs::write(entry(4), b"{\"seq").expect("torn");
    let out = exclusive(&["verify", "--store", &store, "--repair"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains("set aside chain entry 4"),
        "{}",
        text(&out.stdout)
    );
    assert!(!entry(4).exists());
    let v = ok(run(&["verify", "--store", &store]));
    assert!(v.contains("verified 3 runs"), "{v}");

    // Two torn entries in a row: the newest goes, then the one before it stays (a crash tears
    // at most one; the next is created only by a writer that read it).
    std::fs::write(entry(4), b"").expect("torn");
    std::fs::write(entry(5), b"").expect("torn");
    let out = exclusive(&["verify", "--store", &store, "--repair"]);
    assert!(
        text(&out.stdout).contains("set aside chain entry 5"),
        "{}",
        text(&out.stdout)
    );
    let out = repair("the second of two torn entries");
    assert!(
        out.contains("kept chain entry 4") && out.contains("set aside already"),
        "{out}"
    );
    assert!(entry(4).exists());
    std::fs::remove_file(entry(4)).expect("undo");

    // The same garbled committed entry in a folder with hard links: every create is whole there.
    std::fs::write(entry(3), b"").expect("garble");
    let out = run(&["verify", "--store", &store, "--repair"]);
    assert_eq!(out.status.code(), Some(5));
    assert!(
        text(&out.stdout).contains("creates every object whole"),
        "{}",
        text(&out.stdout)
    );
    std::fs::write(entry(3), &committed).expect("restore");
    let v = ok(run(&["verify", "--store", &store]));
    assert!(v.contains("verified 3 runs"), "every run stayed: {v}");
}

/// Item 2: the newest entry deleted (a truncation): repair never lowers the head hint, so verify
/// goes on failing and readers go on refusing.
#[test]
fn repair_never_launders_a_truncation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, runs) = imported(dir.path());
    let root = Path::new(&store);
    std::fs::remove_file(root.join("_patchtrail/chain/000000000003.json")).expect("truncate");
    std::fs::remove_file(root.join(format!("runs/year=2026/month=03/day=03/{}.json", runs[2])))
        .expect("and its manifest");
    let before = run(&["verify", "--store", &store]);
    assert_eq!(before.status.code(), Some(5));
    let repaired = run(&["verify", "--store", &store, "--repair"]);
    assert_eq!(
        repaired.status.code(),
        Some(5),
        "{}",
        text(&repaired.stdout)
    );
    assert!(text(&repaired.stdout).contains("truncation"));
    assert!(!text(&repaired.stdout).contains("claimed but never committed"));
    assert_eq!(
        std::fs::read_to_string(root.join("_patchtrail/chain-head")).expect("hint"),
        "3",
        "the hint is never lowered"
    );
    let summary = run(&["report", "summary", "--store", &store]);
    assert_eq!(summary.status.code(), Some(5), "{}", text(&summary.stderr));
}

/// A three-run history imported as JSON lines (one scope; KB1 missing, missing, installed), whose
/// data objects can be edited in place: (store, run ids, the newest run's data object).
fn imported_jsonl(dir: &Path) -> (String, Vec<String>, std::path::PathBuf) {
    imported(dir); // writes in.jsonl (and a Parquet store beside, unused here)
    let store = dir.join("j");
    let s = store.to_str().expect("utf8").to_string();
    // The same lines, into a JSON-lines store.
    let file = dir.join("in.jsonl");
    let out = ok(Command::new(patchtrail_bin())
        .args(["import", "--store", &s, "--format", "jsonl"])
        .arg(&file)
        .output()
        .expect("import"));
    let runs: Vec<String> = out.lines().map(str::to_string).collect();
    let manifest =
        read_json(&store.join(format!("runs/year=2026/month=03/day=03/{}.json", runs[2])));
    let object = manifest["objects"]
        .as_array()
        .expect("objects")
        .iter()
        .filter_map(|o| o["key"].as_str())
        .find(|k| k.starts_with("patches/"))
        .expect("a patches object");
    let object = store.join(object);
    (s, runs, object)
}

/// Item 5: readers check what they read. The manifest in force with its `sequence` edited, not
/// JSON, a committed manifest deleted mid-chain, and a data object altered at the same size each
/// make every reader refuse (exit 5, naming verify), where they answered from an older run or
/// from the altered bytes with exit 0.
#[test]
fn readers_refuse_a_damaged_manifest_or_data_object() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, runs, object) = imported_jsonl(dir.path());
    let root = Path::new(&store);
    let csv_summary = || {
        let out = run(&["report", "summary", "--store", &store, "--format", "csv"]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    let sound = csv_summary();
    let refused = |args: &[&str], what: &str| {
        let out = run(args);
        let stderr = text(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(5),
            "{what}: {stderr}{}",
            text(&out.stdout)
        );
        assert!(stderr.contains("patchtrail verify"), "{what}: {stderr}");
        stderr
    };
    let summary = ["report", "summary", "--store", &store];
    let manifest = root.join(format!("runs/year=2026/month=03/day=03/{}.json", runs[2]));
    let original = std::fs::read_to_string(&manifest).expect("manifest");

    let edited = original.replacen("\"sequence\":3", "\"sequence\":2", 1);
    assert_ne!(edited, original);
    std::fs::write(&manifest, &edited).expect("edit");
    refused(&summary, "sequence edited");
    std::fs::write(&manifest, b"not json").expect("garble");
    refused(&summary, "not JSON");
    std::fs::write(&manifest, &original).expect("restore");
    assert_eq!(csv_summary(), sound);

    let middle = root.join(format!("runs/year=2026/month=03/day=02/{}.json", runs[1]));
    let held = std::fs::read(&middle).expect("manifest 2");
    std::fs::remove_file(&middle).expect("delete mid-chain");
    let why = refused(&summary, "a manifest deleted mid-chain");
    assert!(why.contains("manifest was removed"), "{why}");
    std::fs::write(&middle, held).expect("restore");

    // Installed → Missing at the same size: the newest snapshot would read non-compliant.
    let data = std::fs::read_to_string(&object).expect("data");
    let altered = data.replacen("\"Installed\"", "\"Missing\"  ", 1);
    assert_eq!(altered.len(), data.len());
    assert_ne!(altered, data);
    std::fs::write(&object, altered).expect("alter");
    for args in [
        &summary[..],
        &["sql", "--store", &store, "SELECT count(*) FROM patches"][..],
        &[
            "report",
            "diff",
            "--store",
            &store,
            "--from",
            "2026-03-02",
            "--to",
            "2026-03-03",
        ][..],
    ] {
        let why = refused(args, "an altered data object");
        assert!(why.contains("SHA-256 differs"), "{why}");
    }
    std::fs::write(&object, data).expect("restore");
    assert_eq!(csv_summary(), sound);
}

/// Item 7: a report while a commit is in flight. The proxy holds the run's manifest PUT (the
/// entry and the pending copy are written, the manifest not yet): a report then answers from the
/// chain before that commit (exit 0, never "damaged"), and once the manifest lands it reads the
/// new run. Item 8: `verify --repair` meanwhile changes nothing and the commit completes.
#[test]
fn a_report_and_a_repair_racing_a_commit_never_call_it_damage() {
    let moto = start_moto();
    py_json(&moto.url, "s3_bucket.py", &["racing"]);
    let held = Held::new(&moto.url, "/runs/", &[]);
    let slow = &held.proxy;
    let store = "s3://racing/h";
    let dir = tempfile::tempdir().expect("tempdir");
    let line = |d: u32| {
        format!(
            "{{\"snapshot_time\":\"2026-03-0{d}T00:00:00Z\",\"account_id\":\"111111111111\",\"region\":\"us-east-1\",\"instances\":[{{\"instance_id\":\"i-00000000000000001\",\"last_scan_time\":\"2026-03-0{d}T00:00:00Z\",\"patches\":[]}}]}}\n"
        )
    };
    let first = dir.path().join("first.jsonl");
    std::fs::write(&first, line(1)).expect("input");
    let second = dir.path().join("second.jsonl");
    std::fs::write(&second, line(2)).expect("input");
    let import = |endpoint: &str, file: &Path| {
        let mut cmd = Command::new(patchtrail_bin());
        aws_env(&mut cmd, endpoint);
        cmd.args(["import", "--store", store]).arg(file);
        cmd
    };
    // The first run's manifest is held and released at once (the proxy faults each path once).
    let mut first_import = import(&slow.url, &first)
        .stdout(Stdio::piped())
        .spawn()
        .expect("import");
    held.reached(1, "the first manifest PUT");
    held.release(1);
    assert!(first_import.wait().expect("import").success());

    let importing = import(&slow.url, &second)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("import");
    held.reached(2, "the second manifest PUT");
    let report = at(
        &moto.url,
        &["report", "summary", "--store", store, "--format", "json"],
    );
    assert_eq!(report.status.code(), Some(0), "{}", text(&report.stderr));
    assert!(
        text(&report.stdout).contains("20260301-"),
        "{}",
        text(&report.stdout)
    );
    assert!(
        !text(&report.stdout).contains("20260302-"),
        "not yet history"
    );
    let repair = at(&moto.url, &["verify", "--store", store, "--repair"]);
    assert!(
        !text(&repair.stdout).contains("set aside"),
        "{}",
        text(&repair.stdout)
    );
    held.release(2);
    let out = importing.wait_with_output().expect("import");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let committed = text(&out.stdout).trim().to_string();
    assert!(
        text(&out.stderr).contains("chain head 2:"),
        "import prints its head witness: {}",
        text(&out.stderr)
    );
    let report = ok(at(
        &moto.url,
        &["report", "summary", "--store", store, "--format", "json"],
    ));
    assert!(report.contains(&committed), "{report}");
    assert_whole(&moto.url, store);
}

/// Item 4: stores that fake create-only writes are refused before anything is written: one that
/// checks for the object and writes it a moment later (two racing creates both succeed), and one
/// that honours `If-None-Match` on the old fixed probe key only.
#[test]
fn stores_that_fake_create_only_writes_are_refused() {
    let moto = start_moto();
    let sim = start_sim(&["--instances", "4", "--seed", "5"]);
    for (bucket, args) in [
        (
            "check-then-write",
            vec!["0", "1", "--check-then-write", "0.3"],
        ),
        (
            "probe-key-only",
            vec![
                "0",
                "1",
                "--honour-if-none-match-only",
                "/_patchtrail/create-only-probe$",
            ],
        ),
    ] {
        py_json(&moto.url, "s3_bucket.py", &[bucket]);
        let fake = proxy(&moto.url, &args);
        let store = format!("s3://{bucket}/h");
        let out = collect(&sim.url, &fake.url, &store, &[])
            .output()
            .expect("collect");
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bucket}: {stderr}");
        assert!(
            stderr.contains("does not honour create-only writes"),
            "{bucket}: {stderr}"
        );
        let c = chain(&moto.url, &store);
        assert_eq!(
            (&c["entries"], &c["claims"]),
            (&Value::from(0), &Value::Array(vec![])),
            "{bucket}: nothing written: {c}"
        );
    }
}

/// Item 4: two runs that claim one place (what a store that let a second create of one entry
/// through leaves): verify names it, and a reader for whom the lost run would be in force refuses.
#[test]
fn verify_names_two_runs_that_claim_one_place() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, runs) = imported(dir.path());
    let root = Path::new(&store);
    let winner = root.join(format!("runs/year=2026/month=03/day=03/{}.json", runs[2]));
    let lost_id = format!("{}-77", runs[2].rsplit_once('-').expect("run id").0);
    let mut lost = read_json(&winner);
    lost["run_id"] = Value::from(lost_id.clone());
    lost["snapshot_time"] = Value::from("2026-03-03T12:00:00Z");
    lost["finished_at"] = Value::from("2026-03-03T12:00:00Z");
    std::fs::write(
        root.join(format!("runs/year=2026/month=03/day=03/{lost_id}.json")),
        serde_json::to_vec(&lost).expect("json"),
    )
    .expect("plant");
    let out = run(&["verify", "--store", &store]);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains("two runs took one place"),
        "{}",
        text(&out.stdout)
    );
    let summary = run(&["report", "summary", "--store", &store]);
    assert_eq!(summary.status.code(), Some(5), "{}", text(&summary.stderr));
}

/// Item 6: an evidence pack of a store that verify rejects (damage outside the scope its
/// reports read) is refused; with --pack-damaged it is made, and its first page says so.
#[test]
fn evidence_refuses_a_store_verify_rejects_unless_told_to_pack_the_damage() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, runs) = imported(dir.path());
    let other = dir.path().join("other.jsonl");
    std::fs::write(
        &other,
        "{\"snapshot_time\":\"2026-03-01T00:00:00Z\",\"account_id\":\"222222222222\",\"region\":\"us-east-1\",\"instances\":[]}\n",
    )
    .expect("input");
    let out = ok(Command::new(patchtrail_bin())
        .args(["import", "--store", &store])
        .arg(&other)
        .output()
        .expect("import"));
    let damaged_run = out.trim().to_string();
    let manifest = read_json(
        &Path::new(&store).join(format!("runs/year=2026/month=03/day=01/{damaged_run}.json")),
    );
    let object = manifest["objects"][0]["key"].as_str().expect("key");
    std::fs::remove_file(Path::new(&store).join(object)).expect("damage");
    let pack = |name: &str, extra: &[&str]| {
        let mut args = vec![
            "evidence",
            "--store",
            &store,
            "--account",
            "111111111111",
            "--as-of",
            "2026-03-04",
            "--out",
        ];
        let path = dir.path().join(name);
        let path = path.to_str().expect("utf8").to_string();
        args.push(&path);
        args.extend_from_slice(extra);
        (run(&args), std::path::PathBuf::from(path))
    };
    let (refused, zip) = pack("refused.zip", &[]);
    assert_eq!(refused.status.code(), Some(5), "{}", text(&refused.stderr));
    assert!(text(&refused.stderr).contains("--pack-damaged"));
    assert!(!zip.exists(), "no pack written");
    let (made, zip) = pack("damaged.zip", &["--pack-damaged"]);
    assert_eq!(made.status.code(), Some(0), "{}", text(&made.stderr));
    let readme = Command::new("unzip")
        .args(["-p"])
        .arg(&zip)
        .arg("evidence/README.txt")
        .output()
        .expect("unzip");
    let readme = text(&readme.stdout);
    assert!(
        readme.starts_with("WARNING: THE STORE IS DAMAGED") && readme.contains(&damaged_run),
        "{readme}"
    );
    let runs_csv = Command::new("unzip")
        .args(["-p"])
        .arg(&zip)
        .arg("evidence/runs.csv")
        .output()
        .expect("unzip");
    assert!(
        text(&runs_csv.stdout).contains(&runs[2]),
        "the pack holds the scope's runs: {}",
        text(&runs_csv.stdout)
    );
}

/// The manifest key of the oldest run of an S3 store, as `patchtrail sql` lists it.
fn oldest_manifest(s3: &str, store: &str) -> String {
    let sql = "SELECT manifest_key FROM runs ORDER BY snapshot_time";
    let csv = ok(at(s3, &["sql", "--store", store, "--format", "csv", sql]));
    csv.lines().nth(1).expect("a manifest key").to_string()
}

/// Item 11: an object a lifecycle rule moved to Glacier is named as archived, with the restore,
/// by readers and verify (S3 answers 403 InvalidObjectState, which read as "access denied").
#[test]
fn an_archived_object_is_named_with_its_restore() {
    let moto = start_moto();
    py_json(&moto.url, "s3_bucket.py", &["archived"]);
    let sim = start_sim(&["--instances", "3", "--seed", "7"]);
    let store = "s3://archived/h";
    ok(collect(&sim.url, &moto.url, store, &[])
        .output()
        .expect("collect"));
    let listing = py_json(&moto.url, "chain_check.py", &[store]);
    let run = listing["runs"][0].as_str().expect("a run").to_string();
    let manifest_key = oldest_manifest(&moto.url, store);
    assert!(manifest_key.contains(&run), "{manifest_key}");
    let archived = py_json(
        &moto.url,
        "s3_object.py",
        &["archive", "archived", &format!("h/{manifest_key}")],
    );
    assert_eq!(archived["storage_class"], "GLACIER");
    for args in [
        &["verify", "--store", store][..],
        &["report", "summary", "--store", store][..],
    ] {
        let out = at(&moto.url, args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(4), "{args:?}: {stderr}");
        assert!(
            stderr.contains("is archived") && stderr.contains("restore-object"),
            "{args:?}: {stderr}"
        );
    }
}

/// Item 9: in a versioned bucket, the collector's own s3:PutObject can replace the newest run's
/// manifest and entry consistently, and a delete leaves only a marker; verify reads the version
/// history of the chain and the manifests and names both.
#[test]
fn verify_names_history_a_versioned_bucket_shows_rewritten() {
    let moto = start_moto();
    py_json(&moto.url, "s3_bucket.py", &["kept", "versioned"]);
    let sim = start_sim(&["--instances", "3", "--seed", "9"]);
    let store = "s3://kept/h";
    for _ in 0..2 {
        ok(collect(&sim.url, &moto.url, store, &[])
            .output()
            .expect("collect"));
    }
    let clean = at(&moto.url, &["verify", "--store", store]);
    assert_eq!(clean.status.code(), Some(0), "{}", text(&clean.stdout));
    // A manifest written again (a second version), then the newest entry deleted (a marker).
    let manifest = oldest_manifest(&moto.url, store);
    let rewritten = py_json(
        &moto.url,
        "s3_object.py",
        &["rewrite", "kept", &format!("h/{manifest}")],
    );
    assert_eq!(rewritten["versions"], 2, "{rewritten}");
    let deleted = py_json(
        &moto.url,
        "s3_object.py",
        &["delete", "kept", "h/_patchtrail/chain/000000000002.json"],
    );
    assert_eq!(deleted["delete_markers"], 1, "{deleted}");
    let out = at(&moto.url, &["verify", "--store", store]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(5), "{stdout}");
    assert!(
        stdout.contains("versions   _patchtrail/chain/000000000002.json was deleted"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "delete-object --bucket kept --key h/_patchtrail/chain/000000000002.json --version-id"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("versions   {manifest} was overwritten")),
        "{stdout}"
    );
}
