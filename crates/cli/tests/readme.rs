//! README.ja.md stays in step with README.md: the same commands in the same order (only comments
//! may be translated), the same sections, and both start with the two commands a newcomer needs.

mod common;

use common::repo_root;

/// A fenced block: its info string and its lines with comments removed.
#[derive(Debug, PartialEq)]
struct Block {
    info: String,
    lines: Vec<String>,
}

/// A line without its comment: a whole `#` line in a shell block is dropped, a trailing ` # …`
/// is cut.
fn without_comment(info: &str, line: &str) -> Option<String> {
    if info != "sh" && info != "toml" {
        return Some(line.trim_end().to_string());
    }
    if line.trim_start().starts_with('#') {
        return None;
    }
    let code = match line.find(" #") {
        Some(i) => &line[..i],
        None => line,
    };
    Some(code.trim_end().to_string())
}

fn blocks(markdown: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut open: Option<Block> = None;
    for line in markdown.lines() {
        match (&mut open, line.strip_prefix("```")) {
            (None, Some(info)) => {
                open = Some(Block {
                    info: info.trim().to_string(),
                    lines: Vec::new(),
                })
            }
            (Some(_), Some(_)) => out.extend(open.take()),
            (Some(block), None) => {
                if let Some(code) = without_comment(&block.info, line) {
                    block.lines.push(code);
                }
            }
            (None, None) => {}
        }
    }
    out
}

/// The heading levels in order (`##` → 2), outside code blocks.
fn heading_levels(markdown: &str) -> Vec<usize> {
    let mut in_code = false;
    let mut out = Vec::new();
    for line in markdown.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
        } else if !in_code && line.starts_with('#') {
            out.push(line.chars().take_while(|c| *c == '#').count());
        }
    }
    out
}

#[test]
fn the_japanese_readme_has_the_same_commands_and_sections() {
    let read = |name: &str| {
        std::fs::read_to_string(repo_root().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    let (en, ja) = (read("README.md"), read("README.ja.md"));
    let (en_blocks, ja_blocks) = (blocks(&en), blocks(&ja));
    assert!(en_blocks.len() >= 5, "README.md has its command blocks");
    assert_eq!(
        en_blocks.len(),
        ja_blocks.len(),
        "the same number of code blocks"
    );
    for (i, (e, j)) in en_blocks.iter().zip(&ja_blocks).enumerate() {
        assert_eq!(e, j, "code block {} differs beyond its comments", i + 1);
    }
    assert_eq!(
        en_blocks[0].lines,
        ["cargo run -- demo", "scripts/test"],
        "both READMEs start with the demo and the test suite"
    );
    for (name, text) in [("README.md", &en), ("README.ja.md", &ja)] {
        let first = text
            .lines()
            .skip_while(|l| !l.starts_with("```"))
            .nth(1)
            .unwrap_or_default();
        assert!(
            first.starts_with("cargo run -- demo"),
            "{name}: the first command is the demo"
        );
    }
    assert_eq!(
        heading_levels(&en),
        heading_levels(&ja),
        "the same sections, in the same order"
    );
    assert!(
        en.contains("README.ja.md") && ja.contains("(README.md)"),
        "each links the other"
    );
}
