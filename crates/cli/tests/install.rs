//! What a user installing a CLI expects: `--version` names the commit, shell completions that the
//! shell accepts, and a man page that groff renders.

mod common;

use common::*;
use std::io::Write;
use std::process::{Command, Stdio};

fn stdout_of(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run");
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
}

#[test]
fn version_names_the_commit() {
    let version = stdout_of(Command::new(patchtrail_bin()).arg("--version"));
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(repo_root())
        .output()
        .expect("git");
    let head = text(&head.stdout).trim().to_string();
    assert!(!head.is_empty(), "the tests run in a git checkout");
    assert_eq!(
        version.trim(),
        format!("patchtrail {} (commit {head})", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn bash_accepts_the_completion_script() {
    let script = stdout_of(Command::new(patchtrail_bin()).args(["completions", "bash"]));
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("patchtrail.bash");
    std::fs::write(&path, &script).expect("write");
    // Source it, then ask bash to complete `patchtrail rep` and `patchtrail report su`.
    let probe = format!(
        "source {p}; complete -p patchtrail; \
         COMP_WORDS=(patchtrail rep); COMP_CWORD=1; _patchtrail patchtrail rep patchtrail; echo \"${{COMPREPLY[@]}}\"; \
         COMP_WORDS=(patchtrail report su); COMP_CWORD=2; _patchtrail patchtrail su report; echo \"${{COMPREPLY[@]}}\"",
        p = path.display()
    );
    let out = stdout_of(Command::new("bash").args(["--norc", "-c", &probe]));
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].contains("-F _patchtrail") && lines[0].ends_with("patchtrail"),
        "{out}"
    );
    assert_eq!(lines[1].trim(), "report", "{out}");
    assert_eq!(lines[2].trim(), "summary", "{out}");
}

#[test]
fn groff_renders_the_man_page() {
    let page = stdout_of(Command::new(patchtrail_bin()).arg("man"));
    assert!(
        page.starts_with(".ie") || page.contains(".TH patchtrail 1"),
        "{page}"
    );
    let mut groff = Command::new("groff")
        .args(["-man", "-Tutf8", "-ww", "-P", "-cbou"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("groff (Debian's groff-base, which man needs)");
    groff
        .stdin
        .take()
        .expect("stdin")
        .write_all(page.as_bytes())
        .expect("feed groff");
    let out = groff.wait_with_output().expect("groff");
    let rendered = text(&out.stdout);
    let warnings = text(&out.stderr);
    assert!(
        out.status.success() && warnings.trim().is_empty(),
        "{warnings}"
    );
    for needle in ["NAME", "patchtrail", "SUBCOMMANDS", "doctor", "collect"] {
        assert!(rendered.contains(needle), "`{needle}` missing:\n{rendered}");
    }
}
