//! Every report against the independent oracle of `tests/oracle/` (Python, written from
//! docs/semantics.md alone, reading the store with pyarrow and json): random histories in each
//! store format, DST days, seed-workflow partitions and every class transition of §6.2.

mod common;

use common::*;
use std::process::Command;

#[test]
fn reports_equal_the_independent_oracle() {
    let out = Command::new(python())
        .args([
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/oracle",
        ])
        .current_dir(repo_root())
        .env("PATCHTRAIL_BIN", patchtrail_bin())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("run pytest (installed by scripts/test)");
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "the reports disagree with the oracle:\n{stdout}\n{}",
        text(&out.stderr)
    );
    // The summary line proves the property tests ran, not only the fixed cases.
    assert!(
        stdout.contains("oracle: 48 histories"),
        "the property tests did not all run:\n{stdout}"
    );
    assert!(!stdout.contains("skipped"), "{stdout}");
}
