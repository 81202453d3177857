//! Shared helpers of the black-box tests: the `patchtrail` binary, simulator and moto processes
//! on loopback, and the Python checkers (boto3, DuckDB, pyarrow) from the project's venv.
//!
//! Servers are reached only through the standard AWS environment variables, set on the child
//! processes (never on the test process).
#![allow(dead_code)]

use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn patchtrail_bin() -> &'static str {
    env!("CARGO_BIN_EXE_patchtrail")
}

/// The repository root. Cargo and nextest set `CARGO_MANIFEST_DIR` when they run a test: read
/// then, a test binary built in another checkout that shares the target folder (CI's cache) looks
/// in this one, not in the checkout it was compiled in.
pub fn repo_root() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .join("../..")
        .canonicalize()
        .expect("repo root")
}

/// The venv's python (scripts/test creates it; PATCHTRAIL_PYTHON overrides).
pub fn python() -> PathBuf {
    if let Ok(p) = std::env::var("PATCHTRAIL_PYTHON") {
        return PathBuf::from(p);
    }
    let p = repo_root().join(".venv/bin/python");
    assert!(
        p.exists(),
        "{} is missing: run scripts/test, which installs the Python checkers",
        p.display()
    );
    p
}

pub fn venv_bin(name: &str) -> PathBuf {
    python().parent().expect("venv bin folder").join(name)
}

/// Sets the standard AWS variables that point SDKs at `endpoint`, and clears anything from the
/// developer's own AWS setup that could leak in.
pub fn aws_env<'a>(cmd: &'a mut Command, endpoint: &str) -> &'a mut Command {
    for var in [
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_DEFAULT_PROFILE",
        "AWS_ENDPOINT_URL_SSM",
        "AWS_ENDPOINT_URL_EC2",
        "AWS_ENDPOINT_URL_STS",
        "AWS_ENDPOINT_URL_S3",
        "AWS_ENDPOINT_URL_SECURITYHUB",
        "PATCHTRAIL_STORE",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
}

/// A child process killed when dropped.
pub struct Server {
    pub child: Child,
    pub url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `cmd` with its stdout piped and waits for its first line, `listening on URL`.
fn start_listening(mut cmd: Command, what: &str) -> Server {
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {what}: {e}"));
    let stdout = child.stdout.take().expect("stdout");
    let mut first = String::new();
    BufReader::new(stdout)
        .read_line(&mut first)
        .unwrap_or_else(|e| panic!("read {what}'s first line: {e}"));
    let url = first
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("{what}: unexpected first line: {first:?}"))
        .to_string();
    Server { child, url }
}

/// `patchtrail sim` with extra arguments; waits for its `listening on` line.
pub fn start_sim(args: &[&str]) -> Server {
    let mut cmd = Command::new(patchtrail_bin());
    cmd.arg("sim").args(args).stderr(Stdio::inherit());
    start_listening(cmd, "patchtrail sim")
}

/// tests/py/faulty_s3_proxy.py in front of `upstream`: a `rate` share of PUTs (seeded) answered
/// with 503 SlowDown, or with `error` (`[STATUS, CODE, MESSAGE]`) when given.
pub fn start_s3_proxy(upstream: &str, rate: &str, seed: &str, error: &[&str]) -> Server {
    let mut args = vec![rate, seed];
    args.extend_from_slice(error);
    start_s3_proxy_with(upstream, &args)
}

/// tests/py/faulty_s3_proxy.py in front of `upstream` with any of its arguments (its usage).
pub fn start_s3_proxy_with(upstream: &str, args: &[&str]) -> Server {
    let mut cmd = Command::new(python());
    cmd.arg(repo_root().join("tests/py/faulty_s3_proxy.py"))
        .arg(upstream)
        .args(args);
    start_listening(cmd, "faulty_s3_proxy.py")
}

/// `curl -s -X METHOD URL`'s output: a test proxy's control endpoints (`/_stats`, `/_arm`).
pub fn curl(method: &str, url: &str) -> String {
    text(
        &Command::new("curl")
            .args(["-s", "-X", method, url])
            .output()
            .expect("curl")
            .stdout,
    )
}

/// tests/py/faulty_hub_proxy.py in front of a Security Hub endpoint (moto), with its options.
pub fn start_hub_proxy(upstream: &str, args: &[&str]) -> Server {
    let mut cmd = Command::new(python());
    cmd.arg(repo_root().join("tests/py/faulty_hub_proxy.py"))
        .arg(upstream)
        .args(args);
    start_listening(cmd, "faulty_hub_proxy.py")
}

/// tests/py/replay_server.py serving the answers of a fixture under tests/fixtures.
pub fn start_replay(fixture: &str) -> Server {
    let mut cmd = Command::new(python());
    cmd.arg(repo_root().join("tests/py/replay_server.py"))
        .arg(repo_root().join("tests/fixtures").join(fixture));
    start_listening(cmd, "replay_server.py")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A moto server on a free loopback port.
pub fn start_moto() -> Server {
    let port = free_port();
    // moto's own server with S3's atomic conditional writes (tests/py/moto_s3_server.py says why).
    let child = Command::new(python())
        .arg(repo_root().join("tests/py/moto_s3_server.py"))
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .env(
            "MOTO_RECORDER_FILEPATH",
            std::env::temp_dir().join(format!("patchtrail-moto-recording-{port}")),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start moto_server (installed by scripts/test)");
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "moto_server did not start on port {port}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Server { child, url }
}

/// Runs `patchtrail` with AWS variables pointing at `endpoint`.
pub fn patchtrail(endpoint: &str, args: &[&str]) -> Output {
    let mut cmd = Command::new(patchtrail_bin());
    aws_env(&mut cmd, endpoint);
    cmd.args(args).output().expect("run patchtrail")
}

/// The first row of `patchtrail sql --format csv` over a local store, as CSV text.
pub fn sql_row(store: &str, sql: &str) -> String {
    let out = ok(Command::new(patchtrail_bin())
        .args(["sql", "--store", store, "--format", "csv", sql])
        .output()
        .expect("run patchtrail sql"));
    out.lines()
        .nth(1)
        .unwrap_or_else(|| panic!("no row from {sql}: {out}"))
        .to_string()
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts success and returns stdout.
pub fn ok(output: Output) -> String {
    assert!(
        output.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        text(&output.stdout),
        text(&output.stderr)
    );
    text(&output.stdout)
}

/// The run a suspended collect names in its message (`... --resume RUN_ID`).
pub fn run_to_resume(stderr: &str) -> Option<String> {
    stderr
        .split_whitespace()
        .skip_while(|w| *w != "--resume")
        .nth(1)
        .map(|w| w.trim_end_matches(['`', ')']).to_string())
}

/// Runs a checker script from tests/py and parses its JSON output.
pub fn py_json(endpoint: &str, script: &str, args: &[&str]) -> Value {
    let mut cmd = Command::new(python());
    aws_env(&mut cmd, endpoint);
    let output = cmd
        .arg(repo_root().join("tests/py").join(script))
        .args(args)
        .output()
        .expect("run python");
    let stdout = ok(output);
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{script} printed no JSON ({e}): {stdout}"))
}

/// Committed manifests under a local store.
pub fn manifests(store: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "json")
                && p.to_string_lossy().contains("runs/")
            {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(store, &mut out);
    out.sort();
    out
}

pub fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).expect("read json")).expect("parse json")
}

/// (instance, kb) → (state, installed epoch, classification, severity, title, cve ids)
pub type PatchView =
    BTreeMap<(String, String), (String, Option<i64>, String, String, String, Option<String>)>;

pub fn boto3_view(walk: &Value) -> PatchView {
    walk["patches"]
        .as_array()
        .expect("patches")
        .iter()
        .map(|p| {
            let s = |k: &str| p[k].as_str().unwrap_or_default().to_string();
            (
                (s("instance_id"), s("kb_id")),
                (
                    s("state"),
                    p["installed_epoch"].as_i64(),
                    s("classification"),
                    s("severity"),
                    s("title"),
                    p["cve_ids"].as_str().map(str::to_string),
                ),
            )
        })
        .collect()
}
