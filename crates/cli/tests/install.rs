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

/// The release configuration (`dist-workspace.toml`) plans an archive with a checksum for each
/// platform, both installers, and only the CLI; every archive or installer the README names is
/// one that a release really ships. `dist plan` runs offline.
#[test]
fn the_release_plan_ships_what_the_readme_names() {
    let out = Command::new(venv_bin("dist"))
        .args(["plan", "--output-format=json"])
        .current_dir(repo_root())
        .output()
        .expect("dist (requirements-test.txt installs it)");
    assert!(out.status.success(), "dist plan: {}", text(&out.stderr));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).expect("plan JSON");
    let artifacts = plan["artifacts"].as_object().expect("artifacts");
    for target in [
        "x86_64-unknown-linux-gnu",
        "aarch64-unknown-linux-gnu",
        "x86_64-apple-darwin",
        "aarch64-apple-darwin",
        "x86_64-pc-windows-msvc",
    ] {
        let windows = target.contains("windows");
        let name = format!(
            "patchtrail-{target}.{}",
            if windows { "zip" } else { "tar.xz" }
        );
        let archive = &artifacts[&name];
        assert_eq!(
            archive["checksum"],
            format!("{name}.sha256"),
            "{name}: {archive}"
        );
        let exe = if windows {
            "patchtrail.exe"
        } else {
            "patchtrail"
        };
        assert!(
            archive["assets"].as_array().is_some_and(|a| a
                .iter()
                .any(|x| x["kind"] == "executable" && x["path"] == exe)),
            "{name} holds {exe}: {archive}"
        );
    }
    for installer in ["patchtrail-installer.sh", "patchtrail-installer.ps1"] {
        assert!(artifacts.contains_key(installer), "{installer}");
    }
    assert!(
        artifacts.keys().all(|k| !k.contains("lambda")),
        "the Lambda ships through deploy/, not as an archive: {:?}",
        artifacts.keys()
    );
    for readme in ["README.md", "README.ja.md"] {
        let text = std::fs::read_to_string(repo_root().join(readme)).expect("readme");
        let named: Vec<&str> = text
            .split(|c: char| !(c.is_ascii_alphanumeric() || "-_.".contains(c)))
            .filter(|w| {
                w.starts_with("patchtrail-")
                    && [".tar.xz", ".zip", ".sh", ".ps1"]
                        .iter()
                        .any(|ext| w.ends_with(ext))
            })
            .collect();
        assert!(
            named.len() >= 7,
            "{readme} names the archives and installers: {named:?}"
        );
        for name in named {
            assert!(
                artifacts.contains_key(name),
                "{readme} names {name}, which no release ships"
            );
        }
    }
}
