//! `patchtrail schedule` driven by a real `rate(1 minute)`: it runs, survives a failing run, and
//! stops cleanly on SIGTERM in the middle of a run, leaving no half-written run in history.

mod common;

use common::*;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn count_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| {
                    if e.path().is_dir() {
                        count_files(&e.path())
                    } else {
                        1
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn explain_prints_the_next_five_runs_and_bad_expressions_name_the_field() {
    let out = ok(Command::new(patchtrail_bin())
        .args([
            "schedule",
            "--explain",
            "cron(0 9 ? * MON *)",
            "--timezone",
            "Asia/Tokyo",
        ])
        .output()
        .expect("run"));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 5, "{out}");
    assert!(
        lines
            .iter()
            .all(|l| l.contains("09:00:00 JST") && l.contains("T00:00:00Z")),
        "{out}"
    );
    let bad = Command::new(patchtrail_bin())
        .args(["schedule", "--explain", "cron(0 25 ? * MON *)"])
        .output()
        .expect("run");
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        text(&bad.stderr).contains("field 2 (hours) '25' is out of range 0-23"),
        "{}",
        text(&bad.stderr)
    );
}

#[test]
fn a_rate_schedule_runs_survives_a_failure_and_stops_cleanly_on_sigterm() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let addr = format!("127.0.0.1:{port}");
    let healthy = start_sim(&["--addr", &addr, "--instances", "30", "--seed", "19"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("h");
    let mut cmd = Command::new(patchtrail_bin());
    aws_env(&mut cmd, &healthy.url);
    let mut child = cmd
        .args([
            "schedule",
            "--every",
            "rate(1 minute)",
            "--store",
            store.to_str().expect("utf8"),
            "--format",
            "seed",
            "--concurrency",
            "1",
            "--max-attempts",
            "1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start scheduler");
    let (tx, rx) = mpsc::channel::<String>();
    for stream in [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
    }
    let mut log = Vec::new();
    let read_log = |log: &mut Vec<String>| log.extend(rx.try_iter());

    // Run 1 starts at once and commits.
    wait_for("the first run to commit", Duration::from_secs(60), || {
        manifests(&store).len() == 1
    });
    // Run 2 meets no endpoint at all, fails, and the scheduler carries on.
    drop(healthy);
    wait_for("the second run to fail", Duration::from_secs(90), || {
        read_log(&mut log);
        log.iter().any(|l| l.contains("scheduled run 2 failed"))
    });
    assert!(
        child.try_wait().expect("poll").is_none(),
        "the scheduler survived the failed run"
    );
    // Run 3 is slow; SIGTERM arrives while it writes.
    let _slow = start_sim(&[
        "--addr",
        &addr,
        "--instances",
        "30",
        "--seed",
        "19",
        "--latency-ms",
        "300",
    ]);
    let today = chrono::Utc::now()
        .format("year=%Y/month=%m/day=%d")
        .to_string();
    let committed_pages = count_files(&store.join(&today));
    wait_for("the third run to write", Duration::from_secs(90), || {
        count_files(&store.join(&today)) > committed_pages + 3
    });
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(kill.success());
    let stopped_at = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("poll") {
            break status;
        }
        assert!(
            stopped_at.elapsed() < Duration::from_secs(15),
            "the scheduler did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    std::thread::sleep(Duration::from_millis(300));
    read_log(&mut log);
    assert!(
        status.success(),
        "clean exit: {status:?}\n{}",
        log.join("\n")
    );
    assert!(
        log.iter()
            .any(|l| l.contains("scheduler stopped after 3 run(s)")),
        "{}",
        log.join("\n")
    );
    assert_eq!(
        manifests(&store).len(),
        1,
        "the interrupted run left no manifest: it is not history"
    );
}
