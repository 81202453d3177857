//! Reports over a demo history (weekly snapshots of a simulated fleet), each cross-checked
//! against an independent computation: DuckDB SQL over the same files, or the simulator itself
//! read through boto3.

mod common;

use common::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

const SEED: &str = "42";
const INSTANCES: &str = "60";

/// A demo history of 6 weekly snapshots, 2026-10-19 … 2026-11-23 at 06:00 UTC.
fn demo_history(dir: &Path) -> PathBuf {
    let store = dir.join("demo");
    let out = Command::new(patchtrail_bin())
        .args([
            "demo",
            "--store",
            store.to_str().expect("utf8"),
            "--instances",
            INSTANCES,
            "--weeks",
            "6",
            "--until",
            "2026-11-23",
            "--seed",
            SEED,
        ])
        .output()
        .expect("run demo");
    let stdout = ok(out);
    assert!(stdout.contains("report.html"), "{stdout}");
    store
}

fn report(store: &Path, args: &[&str]) -> Value {
    let out = Command::new(patchtrail_bin())
        .args(args)
        .args(["--store", store.to_str().expect("utf8"), "--format", "json"])
        .output()
        .expect("run");
    serde_json::from_str(&ok(out)).expect("json report")
}

/// (instance, kb) → state, as boto3 reads the simulator on `date`.
fn sim_states(date: &str) -> BTreeMap<(String, String), String> {
    // The demo's fleet: its instances and the hybrid nodes it adds (max(3, instances / 20)).
    let sim = start_sim(&[
        "--instances",
        INSTANCES,
        "--hybrid",
        "3",
        "--seed",
        SEED,
        "--date",
        date,
    ]);
    let walk = py_json(&sim.url, "sim_walk.py", &[]);
    walk["patches"]
        .as_array()
        .expect("patches")
        .iter()
        .map(|p| {
            (
                (
                    p["instance_id"].as_str().unwrap_or("").into(),
                    p["kb_id"].as_str().unwrap_or("").into(),
                ),
                p["state"].as_str().unwrap_or("").into(),
            )
        })
        .collect()
}

#[test]
fn diff_finds_exactly_the_changes_the_simulator_made() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = demo_history(dir.path());
    let (before, after) = (sim_states("2026-10-26"), sim_states("2026-11-16"));
    // Instances whose patch lists both snapshots hold (docs/semantics.md §6.2): fresh scans.
    let reporting = |date: &str| -> BTreeSet<String> {
        report(&store, &["report", "summary", "--as-of", date])
            .as_array()
            .expect("rows")
            .iter()
            .filter(|r| {
                matches!(
                    r["compliance"].as_str(),
                    Some("compliant" | "non_compliant")
                )
            })
            .map(|r| r["instance_id"].as_str().unwrap_or("").to_string())
            .collect()
    };
    let (rep_before, rep_after) = (reporting("2026-10-26"), reporting("2026-11-16"));
    // The rule, written here from the state names boto3 reads (only the changes into
    // Missing, Installed and Failed are checked).
    let mut expected = BTreeSet::new();
    for ((instance, kb), state) in &after {
        if !rep_before.contains(instance) || !rep_after.contains(instance) {
            continue;
        }
        let was = before
            .get(&(instance.clone(), kb.clone()))
            .map(String::as_str);
        let change = match (was, state.as_str()) {
            (Some("Missing"), "Missing")
            | (Some("Installed" | "InstalledOther"), "Installed" | "InstalledOther")
            | (Some("Failed"), "Failed") => continue,
            (
                Some(
                    "Installed" | "InstalledOther" | "InstalledPendingReboot" | "InstalledRejected",
                ),
                "Missing",
            ) => "regressed",
            (_, "Missing") => "newly_missing",
            (Some("InstalledPendingReboot"), "Installed" | "InstalledOther") => "reboot_completed",
            (_, "Installed" | "InstalledOther") => "newly_installed",
            (_, "Failed") => "newly_failed",
            _ => continue,
        };
        expected.insert((instance.clone(), kb.clone(), change.to_string()));
    }
    assert!(
        expected.len() > 20,
        "the simulated fleet changed: {}",
        expected.len()
    );
    let ours = report(
        &store,
        &[
            "report",
            "diff",
            "--from",
            "2026-10-26",
            "--to",
            "2026-11-16",
        ],
    );
    let found: BTreeSet<(String, String, String)> = ours
        .as_array()
        .expect("rows")
        .iter()
        .filter(|r| r["kb_id"].is_string())
        .filter(|r| {
            matches!(
                r["to_state"].as_str(),
                Some("Missing" | "Installed" | "InstalledOther" | "Failed")
            ) && r["change"] != "version_changed"
        })
        .map(|r| {
            (
                r["instance_id"].as_str().unwrap_or("").into(),
                r["kb_id"].as_str().unwrap_or("").into(),
                r["change"].as_str().unwrap_or("").into(),
            )
        })
        .collect();
    assert_eq!(found, expected);
}

#[test]
fn machine_formats_keep_their_documented_columns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = demo_history(dir.path());
    let s = store.to_str().expect("utf8");
    let header = |args: &[&str]| -> Vec<String> {
        let out = ok(Command::new(patchtrail_bin())
            .args(args)
            .args(["--store", s, "--format", "csv"])
            .output()
            .expect("run"));
        out.lines()
            .next()
            .unwrap_or("")
            .split(',')
            .map(str::to_string)
            .collect()
    };
    let has = |h: &[String], cols: &[&str]| cols.iter().all(|c| h.iter().any(|x| x == c));
    assert!(has(
        &header(&["report", "summary"]),
        &["instance_id", "installed", "missing", "failed"]
    ));
    assert!(has(
        &header(&["report", "trend"]),
        &[
            "snapshot_time",
            "instances",
            "noncompliant_instances",
            "missing"
        ]
    ));
    assert!(has(
        &header(&[
            "report",
            "diff",
            "--from",
            "2026-10-19",
            "--to",
            "2026-11-23"
        ]),
        &["instance_id", "kb_id", "change", "from_state", "to_state"]
    ));
    let jsonl = ok(Command::new(patchtrail_bin())
        .args(["report", "trend", "--store", s, "--format", "jsonl"])
        .output()
        .expect("run"));
    assert_eq!(jsonl.lines().count(), 6);
    for line in jsonl.lines() {
        let row: Value = serde_json::from_str(line).expect("jsonl row");
        assert!(row["noncompliant_instances"].is_u64(), "{row}");
    }
    let sql = ok(Command::new(patchtrail_bin())
        .args(["sql", "SELECT state, count(*) AS n FROM patches WHERE year = 2026 GROUP BY state ORDER BY state", "--store", s, "--format", "csv"])
        .output()
        .expect("run"));
    assert!(
        sql.starts_with("state,n\n") && sql.contains("Missing,"),
        "{sql}"
    );
}

#[test]
fn html_opens_in_headless_chromium_and_xlsx_in_openpyxl() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = demo_history(dir.path());
    let html = store.join("report.html");
    let page = std::fs::read_to_string(&html).expect("demo report");
    for needle in [
        "<svg",
        "Compliance over time",
        "Missing patches by severity",
        "Missing patches per instance",
        "non_compliant",
    ] {
        assert!(page.contains(needle), "{needle}");
    }
    assert!(
        !page.contains("src=\"http") && !page.contains("href=\"http") && !page.contains("<script"),
        "self-contained, no network"
    );

    // One unit per chart: instances over time, patches over time.
    assert_one_unit(&page, "Compliance over time", true);
    assert_one_unit(&page, "Missing and failed patches", false);
    screenshots(&html, "report", &dir.path().join("chromium"));

    let xlsx = dir.path().join("summary.xlsx");
    ok(Command::new(patchtrail_bin())
        .args([
            "report",
            "summary",
            "--store",
            store.to_str().expect("utf8"),
            "--output",
            xlsx.to_str().expect("utf8"),
        ])
        .output()
        .expect("run"));
    let book = py_json(
        "http://127.0.0.1:9",
        "check_outputs.py",
        &["xlsx", xlsx.to_str().expect("utf8")],
    );
    assert_eq!(
        book.as_object()
            .map(|o| o.keys().cloned().collect::<Vec<_>>()),
        Some(vec![
            "by_account".to_string(),
            "fleet".to_string(),
            "instances".to_string(),
            "missing_by_severity".to_string(),
            "provenance".to_string(),
            "runs_used".to_string(),
            "top_missing".to_string()
        ])
    );
    let sheet = &book["instances"];
    assert_eq!(sheet["freeze"], "A2", "frozen header");
    assert!(
        sheet["filter"].as_str().unwrap_or("").starts_with("A1:"),
        "autofilter"
    );
    assert_eq!(sheet["header"][2], "instance_id");
    assert!(sheet["rows"].as_u64().unwrap_or(0) > 30);
    let installed = sheet["header"]
        .as_array()
        .and_then(|h| h.iter().position(|c| c == "installed"))
        .expect("an installed column");
    assert!(
        sheet["first"][installed].is_number(),
        "counts are numbers: {}",
        sheet["first"]
    );
}

/// Every report's HTML draws its own charts (docs/semantics.md §6), from its own tables.
#[test]
fn every_report_draws_its_charts_in_html() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = demo_history(dir.path());
    let s = store.to_str().expect("utf8");
    let html = |args: &[&str]| {
        ok(Command::new(patchtrail_bin())
            .args(args)
            .args(["--store", s, "--format", "html"])
            .output()
            .expect("run"))
    };
    let summary = html(&["report", "summary", "--as-of", "2026-11-20"]);
    for caption in [
        "Instances by compliance",
        "Missing patches by severity",
        "Most missed patches",
    ] {
        assert!(summary.contains(caption), "summary lacks {caption}");
    }
    assert!(summary.matches("<svg").count() >= 3);
    let trend = html(&["report", "trend"]);
    assert!(trend.contains("Compliance over time") && trend.contains("<polyline"));
    assert_one_unit(&trend, "Compliance over time", true);
    assert_one_unit(&trend, "Missing and failed patches", false);
    let diff = html(&[
        "report",
        "diff",
        "--from",
        "2026-10-26",
        "--to",
        "2026-11-16",
    ]);
    assert!(diff.contains("Changes by kind") && diff.contains("newly_installed"));
    // Each report's page reads well on a laptop and a phone (the dashboard: see above).
    for (name, page) in [("summary", &summary), ("trend", &trend), ("diff", &diff)] {
        let file = dir.path().join(format!("{name}.html"));
        std::fs::write(&file, page).expect("write");
        screenshots(&file, name, &dir.path().join("chromium"));
    }
}

/// The widths every HTML report is laid out at: a laptop and a phone.
const WIDTHS: [u32; 2] = [1280, 390];

/// Measures, in the page as Chromium lays it out, what makes a report hard to read: how wide the
/// page is against its viewport (a page wider than its viewport scrolls sideways), every SVG
/// text whose box leaves its chart's box (drawn cut), and every two labels of one axis (class
/// `xl` or `yl`) whose boxes meet. Posted as JSON to the wrapper page that frames the report.
const LAYOUT_SCRIPT: &str = r#"
addEventListener('load', () => {
  const root = document.documentElement;
  const out = { innerWidth, clientWidth: root.clientWidth, scrollWidth: root.scrollWidth,
                scrollHeight: root.scrollHeight, svgs: 0, texts: 0, outside: [], overlaps: [] };
  const slack = 0.5;
  const inside = (a, b) => a.left >= b.left - slack && a.right <= b.right + slack
    && a.top >= b.top - slack && a.bottom <= b.bottom + slack;
  const meet = (a, b) => a.left < b.right - slack && b.left < a.right - slack
    && a.top < b.bottom - slack && b.top < a.bottom - slack;
  const chart = (svg) => svg.closest('figure')?.querySelector('figcaption')?.textContent ?? '?';
  for (const svg of document.querySelectorAll('svg')) {
    out.svgs++;
    const box = svg.getBoundingClientRect();
    const axes = { xl: [], yl: [] };
    for (const t of svg.querySelectorAll('text')) {
      out.texts++;
      const r = t.getBoundingClientRect();
      const label = t.lastChild?.textContent ?? '';
      if (!inside(r, box)) out.outside.push(`${chart(svg)}: ${label}`);
      for (const axis of Object.keys(axes)) if (t.classList.contains(axis)) axes[axis].push([label, r]);
    }
    for (const [axis, list] of Object.entries(axes))
      for (let i = 0; i < list.length; i++)
        for (let j = i + 1; j < list.length; j++)
          if (meet(list[i][1], list[j][1]))
            out.overlaps.push(`${chart(svg)} ${axis}: ${list[i][0]} / ${list[j][0]}`);
  }
  parent.postMessage(JSON.stringify(out), '*');
});
"#;

/// Headless Chromium, started as it works on these machines (docs: shared tooling notes), with
/// its own profile; asserts it succeeded with no console error and returns its stdout.
fn run_chromium(profile: &Path, args: &[String]) -> String {
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .output()
        .expect("run chromium");
    let log = text(&out.stderr);
    assert!(out.status.success(), "chromium failed: {log}");
    let console: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(":CONSOLE") || l.contains("Uncaught"))
        .collect();
    assert!(console.is_empty(), "console errors: {console:?}");
    text(&out.stdout)
}

/// A page that frames `src` at `width` × `height` CSS pixels: headless Chromium keeps its
/// window at least 500 pixels wide, so a phone's width is only had in a frame. With `listen`,
/// it writes what the framed page posts into its own `<pre id="layout">`.
fn frame(src: &str, width: u32, height: u32, listen: bool) -> String {
    let script = if listen {
        "<pre id=\"layout\"></pre><script>addEventListener('message', e => { document.getElementById('layout').textContent = e.data; });</script>"
    } else {
        ""
    };
    format!(
        "<!DOCTYPE html><html><body style=\"margin:0\"><iframe src=\"{src}\" width=\"{width}\" height=\"{height}\" style=\"border:0;display:block\"></iframe>{script}</body></html>"
    )
}

/// The layout of report `html` at `width` CSS pixels (what LAYOUT_SCRIPT measures), read back
/// from Chromium's `--dump-dom` of a wrapper page.
fn layout(html: &Path, width: u32, work: &Path) -> Value {
    let page = std::fs::read_to_string(html).expect("report");
    assert!(page.contains("</body>"), "an HTML page");
    std::fs::create_dir_all(work).expect("mkdir");
    let measured = page.replacen(
        "</body>",
        &format!("<script>{LAYOUT_SCRIPT}</script></body>"),
        1,
    );
    std::fs::write(work.join("measured.html"), measured).expect("write");
    let wrapper = work.join(format!("layout-{width}.html"));
    std::fs::write(&wrapper, frame("measured.html", width, 900, true)).expect("write");
    let dom = run_chromium(
        &work.join("profile"),
        &[
            format!("--window-size={},900", width.max(500)),
            "--virtual-time-budget=10000".into(),
            "--dump-dom".into(),
            format!("file://{}", wrapper.display()),
        ],
    );
    let json = dom
        .split("<pre id=\"layout\">")
        .nth(1)
        .and_then(|rest| rest.split("</pre>").next())
        .unwrap_or("")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&amp;", "&");
    serde_json::from_str(&json)
        .unwrap_or_else(|e| panic!("no layout measured at {width} px ({e}): {dom:.2000}"))
}

/// Asserts that report `html` reads well at every width of WIDTHS (no sideways scrolling, no
/// chart text cut at its chart's edge, no two labels of an axis over each other), and takes
/// Chromium's screenshot of it at each into `target/test-artifacts/<name>-<width>.png`.
fn screenshots(html: &Path, name: &str, work: &Path) -> Vec<PathBuf> {
    let mut shots = Vec::new();
    for width in WIDTHS {
        let dir = work.join(format!("{name}-{width}"));
        let found = layout(html, width, &dir);
        let at = format!("{name} at {width} px: {found}");
        assert_eq!(found["innerWidth"], width, "{at}");
        let px = |key: &str| found[key].as_u64().unwrap_or_else(|| panic!("{key}: {at}"));
        assert!(px("svgs") > 0 && px("texts") > 0, "{at}");
        assert!(
            px("scrollWidth") <= px("clientWidth"),
            "the page scrolls sideways: {at}"
        );
        assert_eq!(
            found["outside"],
            serde_json::json!([]),
            "chart text drawn cut: {at}"
        );
        assert_eq!(
            found["overlaps"],
            serde_json::json!([]),
            "axis labels overlap: {at}"
        );

        let shot = repo_root()
            .join("target/test-artifacts")
            .join(format!("{name}-{width}.png"));
        std::fs::create_dir_all(shot.parent().expect("folder")).expect("mkdir");
        let _ = std::fs::remove_file(&shot);
        let height = found["scrollHeight"]
            .as_u64()
            .unwrap_or(2000)
            .clamp(900, 8000) as u32;
        let src = format!("file://{}", html.display());
        let wrapper = dir.join("shot.html");
        std::fs::write(&wrapper, frame(&src, width, height, false)).expect("write");
        run_chromium(
            &dir.join("profile"),
            &[
                // The screenshot is the window's size, cut to `width` when the window is wider.
                format!("--window-size={width},{height}"),
                "--hide-scrollbars".into(),
                format!("--screenshot={}", shot.display()),
                format!("file://{}", wrapper.display()),
            ],
        );
        let png = std::fs::read(&shot).expect("screenshot");
        assert!(
            png.starts_with(b"\x89PNG") && png.len() > 20_000,
            "a real screenshot: {} bytes",
            png.len()
        );
        shots.push(shot);
    }
    shots
}

/// The series names in the legend of the chart captioned `caption` in `page` (none when the
/// page has no such chart).
fn legend(page: &str, caption: &str) -> Vec<String> {
    let Some(at) = page.find(&format!("<figcaption>{caption}</figcaption>")) else {
        return Vec::new();
    };
    let figure = &page[at..at + page[at..].find("</figure>").unwrap_or(0)];
    figure
        .split("<span><i ")
        .skip(1)
        .map(|s| {
            s.split_once("</i>")
                .map(|(_, rest)| rest.split("</span>").next().unwrap_or(""))
                .unwrap_or("")
                .to_string()
        })
        .collect()
}

/// One unit per chart: the chart `caption` of `page` draws lines, all of instances or all of
/// something else as `instances` says.
fn assert_one_unit(page: &str, caption: &str, instances: bool) {
    let lines = legend(page, caption);
    assert!(!lines.is_empty(), "no chart {caption}");
    assert!(
        lines.iter().all(|l| l.ends_with("instances") == instances),
        "{caption} mixes units: {lines:?}"
    );
}

/// `--lang ja`: titles, headings, column headers, chart labels and sheet names in Japanese, in
/// every format for people; CSV and JSON byte-identical to English; the collect summary too.
#[test]
fn japanese_for_people_and_stable_english_for_machines() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = demo_history(dir.path());
    let s = store.to_str().expect("utf8");
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let mut cmd = Command::new(patchtrail_bin());
        for var in ["PATCHTRAIL_LANG", "LC_ALL", "LC_MESSAGES", "LANG"] {
            cmd.env_remove(var);
        }
        cmd.envs(env.iter().copied());
        ok(cmd.args(args).args(["--store", s]).output().expect("run"))
    };
    let summary = ["report", "summary", "--as-of", "2026-11-20"];

    let html_path = dir.path().join("summary-ja.html");
    let p = html_path.to_str().expect("utf8");
    run(
        &[&summary[..], &["--lang", "ja", "--output", p]].concat(),
        &[],
    );
    let page = std::fs::read_to_string(&html_path).expect("html");
    for needle in [
        "<html lang=\"ja\">",
        "2026-11-20 時点のパッチ適用状況",
        "準拠状況別のインスタンス数",
        "重要度別の未適用パッチ",
        ">非準拠<",
        "<th>インスタンス ID</th>",
        "<th>未適用（緊急）</th>",
        "フリート合計",
    ] {
        assert!(
            page.contains(needle),
            "`{needle}` missing from the Japanese HTML"
        );
    }
    // Cell values stay the defined terms of docs/semantics.md.
    assert!(page.contains(">non_compliant<"));
    // The glyphs need a Japanese font to be drawn (scripts/test installs one).
    let fonts = Command::new("fc-list")
        .args([":lang=ja", "family"])
        .output()
        .expect("fc-list (fontconfig, with Chromium)");
    assert!(
        !text(&fonts.stdout).trim().is_empty(),
        "no Japanese font: the screenshot would show boxes"
    );
    screenshots(&html_path, "report-ja", &dir.path().join("chromium-ja"));

    // Machine formats: the same bytes whatever the language.
    for format in ["csv", "json", "jsonl"] {
        let en = run(&[&summary[..], &["--format", format]].concat(), &[]);
        let ja = run(
            &[&summary[..], &["--format", format, "--lang", "ja"]].concat(),
            &[],
        );
        assert_eq!(en, ja, "--format {format} must not change with --lang");
    }

    // The language from the environment, and --lang over it.
    let table = [&summary[..], &["--format", "table"]].concat();
    let title = |out: String| out.lines().next().unwrap_or_default().to_string();
    assert_eq!(
        title(run(&table, &[("PATCHTRAIL_LANG", "ja")])),
        "2026-11-20 時点のパッチ適用状況"
    );
    assert_eq!(
        title(run(&table, &[("LANG", "ja_JP.UTF-8")])),
        "2026-11-20 時点のパッチ適用状況"
    );
    assert_eq!(
        title(run(
            &[&table[..], &["--lang", "en"]].concat(),
            &[("LANG", "ja_JP.UTF-8")]
        )),
        "Patch compliance as of 2026-11-20"
    );

    // A language patchtrail does not speak is bad input, named with its fix.
    for (args, env, names) in [
        (vec!["--lang", "fr"], vec![], "--lang fr"),
        (
            vec![],
            vec![("PATCHTRAIL_LANG", "fr")],
            "PATCHTRAIL_LANG=fr",
        ),
    ] {
        let mut cmd = Command::new(patchtrail_bin());
        let out = cmd
            .envs(env)
            .args(summary)
            .args(&args)
            .args(["--store", s])
            .output()
            .expect("run");
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.starts_with(&format!("error: {names}: ")) && stderr.contains("en or ja"),
            "{stderr}"
        );
    }

    // XLSX: Japanese sheet names and headers, as openpyxl reads them.
    let xlsx = dir.path().join("summary-ja.xlsx");
    run(
        &[
            &summary[..],
            &["--lang", "ja", "--output", xlsx.to_str().expect("utf8")],
        ]
        .concat(),
        &[],
    );
    let book = py_json(
        "http://127.0.0.1:9",
        "check_outputs.py",
        &["xlsx", xlsx.to_str().expect("utf8")],
    );
    let sheets: BTreeSet<String> = book
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    assert_eq!(
        sheets,
        [
            "アカウント別",
            "インスタンス",
            "フリート合計",
            "重要度別の未適用",
            "未適用の多いパッチ",
            "来歴",
            "使用した実行"
        ]
        .map(String::from)
        .into()
    );
    assert_eq!(book["インスタンス"]["header"][2], "インスタンス ID");

    // The collect summary.
    let sim = start_sim(&["--instances", "12", "--seed", "3"]);
    let collected = ok(patchtrail(
        &sim.url,
        &[
            "collect",
            "--store",
            dir.path().join("ja-collect").to_str().expect("utf8"),
            "--lang",
            "ja",
        ],
    ));
    assert!(
        collected.contains("をコミットしました") && collected.contains("台（正常 "),
        "{collected}"
    );
}

/// Debian's chromium (scripts/test installs it).
fn chromium() -> &'static str {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("chromium is installed by scripts/test")
}

#[test]
fn athena_ddl_parses_as_trino_sql_and_matches_the_parquet_schema() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = demo_history(dir.path());
    let ddl = ok(Command::new(patchtrail_bin())
        .args(["athena-ddl", "--store", "s3://my-bucket/patchtrail"])
        .output()
        .expect("run"));
    let ddl_file = dir.path().join("tables.sql");
    std::fs::write(&ddl_file, &ddl).expect("write");
    let first = |table: &str| -> String {
        let m = read_json(&manifests(&store)[0]);
        let key = m["objects"]
            .as_array()
            .and_then(|o| {
                o.iter()
                    .find(|o| o["key"].as_str().unwrap_or("").starts_with(table))
            })
            .expect("object")["key"]
            .as_str()
            .expect("key")
            .to_string();
        store.join(key).to_string_lossy().into_owned()
    };
    let check = py_json(
        "http://127.0.0.1:9",
        "check_outputs.py",
        &[
            "ddl",
            ddl_file.to_str().expect("utf8"),
            &first("patches/"),
            &first("instances/"),
        ],
    );
    assert_eq!(
        check["tables"],
        serde_json::json!(["instances", "patches", "runs"])
    );
    assert_eq!(check["mismatches"], serde_json::json!([]));
    for (format, tables) in [
        ("jsonl", ["instances", "patches", "runs"]),
        ("seed", ["instances", "runs", "seed_pages"]),
    ] {
        let ddl = ok(Command::new(patchtrail_bin())
            .args([
                "athena-ddl",
                "--store",
                "s3://my-bucket/patchtrail",
                "--format",
                format,
            ])
            .output()
            .expect("run"));
        let file = dir.path().join(format!("{format}.sql"));
        std::fs::write(&file, &ddl).expect("write");
        let parsed = py_json(
            "http://127.0.0.1:9",
            "check_outputs.py",
            &["ddl-tables", file.to_str().expect("utf8")],
        );
        assert_eq!(parsed["tables"], serde_json::json!(tables), "{format}");
    }
    let refused = Command::new(patchtrail_bin())
        .args(["athena-ddl", "--store", "./local"])
        .output()
        .expect("run");
    assert_eq!(refused.status.code(), Some(2));
}

#[test]
fn verify_passes_a_clean_store_and_names_every_tampering() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = demo_history(dir.path());
    let s = store.to_str().expect("utf8");
    let clean = Command::new(patchtrail_bin())
        .args(["verify", "--store", s])
        .output()
        .expect("run");
    assert!(clean.status.success(), "{}", text(&clean.stdout));
    assert!(text(&clean.stdout).contains("verified 6 runs"));

    let manifests = manifests(&store);
    let objects = |i: usize| {
        read_json(&manifests[i])["objects"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    let key = |o: &Value| o["key"].as_str().unwrap_or("").to_string();
    let altered = key(&objects(1)[0]);
    let mut bytes = std::fs::read(store.join(&altered)).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(store.join(&altered), bytes).expect("alter");
    let removed = key(&objects(2)[0]);
    std::fs::remove_file(store.join(&removed)).expect("remove");
    std::fs::write(
        store.join("patches/year=2026/month=11/day=09/stray.parquet"),
        b"junk",
    )
    .expect("extra");
    let mut first = std::fs::read_to_string(&manifests[0]).expect("manifest");
    first = first.replacen("\"instances\":", "\"instances\": ", 1);
    std::fs::write(&manifests[0], first).expect("edit manifest");

    let out = Command::new(patchtrail_bin())
        .args(["verify", "--store", s])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(5));
    let report = text(&out.stdout);
    assert!(
        report.contains(&format!("altered    {altered}")),
        "{report}"
    );
    assert!(
        report.contains(&format!("missing    {removed}")),
        "{report}"
    );
    assert!(
        report.contains(
            "note       patches/year=2026/month=11/day=09/stray.parquet: a foreign object"
        ),
        "{report}"
    );
    assert!(
        report.contains("was changed after it committed"),
        "{report}"
    );
}

#[test]
fn foreign_and_corrupt_objects_are_warnings_and_bad_dates_are_clear_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = demo_history(dir.path());
    let s = store.to_str().expect("utf8");
    std::fs::write(
        store.join("patches/year=2026/month=11/day=09/foreign.parquet"),
        b"not parquet",
    )
    .expect("foreign");
    std::fs::write(
        store.join("runs/year=2026/month=11/day=09/broken.json"),
        b"{ not json",
    )
    .expect("broken manifest");
    let out = Command::new(patchtrail_bin())
        .args(["report", "trend", "--store", s, "--format", "csv"])
        .output()
        .expect("run");
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        text(&out.stdout).lines().count(),
        7,
        "header and 6 snapshots"
    );
    assert!(stderr.contains("broken.json"), "{stderr}");
    assert!(
        !stderr.contains("foreign.parquet"),
        "reports never list data folders: {stderr}"
    );
    let verify = Command::new(patchtrail_bin())
        .args(["verify", "--store", s])
        .output()
        .expect("verify");
    // Foreign objects cannot change what reports read: verify names them, as notes.
    assert_eq!(verify.status.code(), Some(0), "{}", text(&verify.stdout));
    for foreign in ["foreign.parquet", "broken.json"] {
        assert!(
            text(&verify.stdout).contains(&format!("{foreign}: a foreign object")),
            "{}",
            text(&verify.stdout)
        );
    }

    let before = Command::new(patchtrail_bin())
        .args(["report", "summary", "--store", s, "--as-of", "2020-01-01"])
        .output()
        .expect("run");
    assert_eq!(before.status.code(), Some(2));
    assert!(
        text(&before.stderr)
            .contains("no snapshot at or before 2020-01-01: the first one is 2026-10-19"),
        "{}",
        text(&before.stderr)
    );

    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).expect("mkdir");
    let out = Command::new(patchtrail_bin())
        .args([
            "report",
            "summary",
            "--store",
            empty.to_str().expect("utf8"),
        ])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("no committed runs"),
        "{}",
        text(&out.stderr)
    );

    let bad_date = Command::new(patchtrail_bin())
        .args(["report", "summary", "--store", s, "--as-of", "23/11/2026"])
        .output()
        .expect("run");
    assert_eq!(bad_date.status.code(), Some(2));
    assert!(text(&bad_date.stderr).contains("YYYY-MM-DD"));
}

#[test]
fn a_store_written_by_the_seed_workflow_is_readable() {
    let sim = start_sim(&["--instances", "40", "--seed", "6"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("seed");
    let s = store.to_str().expect("utf8");
    ok(patchtrail(
        &sim.url,
        &["collect", "--store", s, "--format", "seed"],
    ));
    // What the seed itself leaves: only the day partitions, no manifests, no instances table.
    std::fs::remove_dir_all(store.join("_patchtrail")).expect("strip patchtrail's own files");
    let walk = py_json(&sim.url, "sim_walk.py", &[]);
    let expected_missing = walk["patches"]
        .as_array()
        .expect("patches")
        .iter()
        .filter(|p| p["state"] == "Missing")
        .count();
    let trend = report(&store, &["report", "trend"]);
    assert_eq!(
        trend.as_array().map(Vec::len),
        Some(1),
        "one snapshot per day partition"
    );
    assert_eq!(trend[0]["missing"].as_u64(), Some(expected_missing as u64));
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let at = trend[0]["snapshot_time"].as_str().unwrap_or("");
    assert!(at.starts_with(&today), "{at}");
    // Regression: it was dated 00:00 UTC of its partition, hours before it was written.
    let written = chrono::DateTime::parse_from_rfc3339(at).expect("rfc 3339");
    let age = chrono::Utc::now().signed_duration_since(written);
    assert!(
        age < chrono::Duration::minutes(5) && age >= chrono::Duration::zero(),
        "dated by its first write: {at}"
    );
    // A seed-workflow store verifies as such: notes, no findings, and (issue 31, item 10) its
    // days are named unchained and never counted as verified.
    let verify = ok(Command::new(patchtrail_bin())
        .args(["verify", "--store", s])
        .output()
        .expect("verify"));
    assert!(
        verify.contains("written by the seed workflow: unchained"),
        "{verify}"
    );
    let last = verify.lines().last().unwrap_or_default();
    assert!(
        last.contains("1 day(s) of seed-workflow pages are unchained and were not verified"),
        "{verify}"
    );
    let summary = report(&store, &["report", "summary"]);
    let managed = walk["instances"].as_array().map(Vec::len).unwrap_or(0)
        - walk["unmanaged"].as_array().map(Vec::len).unwrap_or(0);
    assert_eq!(
        summary.as_array().map(Vec::len),
        Some(managed),
        "every instance with pages"
    );
}

/// The default demo is a mixed fleet: Linux packages with versions, hybrid nodes, lost agents,
/// a node never scanned and instances SSM does not manage, each reported as docs/semantics.md
/// says (§4.1 rules 2–4, §4.5, §4.6, §6.5).
#[test]
fn the_default_demo_shows_every_kind_of_node_the_semantics_names() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("demo");
    ok(Command::new(patchtrail_bin())
        .args(["demo", "--store", store.to_str().expect("utf8")])
        .output()
        .expect("run demo"));
    let rows = report(&store, &["report", "summary", "--stale-days", "14"]);
    let rows = rows.as_array().expect("rows");
    let any = |what: &str, test: &dyn Fn(&Value) -> bool| {
        assert!(rows.iter().any(test), "the demo has no {what}");
    };
    let age = |r: &Value| r["scan_age_days"].as_f64();
    any("hybrid node named by its host", &|r| {
        r["node_type"] == "hybrid"
            && r["instance_id"]
                .as_str()
                .is_some_and(|i| i.starts_with("mi-"))
            && r["name"]
                .as_str()
                .is_some_and(|n| n.ends_with(".corp.example"))
            && r["ec2_state"].is_null()
    });
    any("lost agent whose old scan counts as unknown", &|r| {
        r["ping_status"] == "ConnectionLost"
            && age(r).is_some_and(|a| a > 14.0)
            && r["compliance"] == "unknown"
    });
    any("managed node never scanned, unknown", &|r| {
        r["outcome"] == "ok"
            && r["ping_status"] == "Online"
            && r["last_scan_time"].is_null()
            && r["compliance"] == "unknown"
    });
    any("instance SSM does not know, with its reason", &|r| {
        r["compliance"] == "unmanaged" && r["unmanaged_reason"] == "not_registered"
    });
    for os in ["Amazon Linux", "Red Hat Enterprise Linux", "Ubuntu"] {
        any(os, &|r| r["platform_name"] == os);
    }
    let fleet = report(
        &store,
        &[
            "report",
            "summary",
            "--table",
            "fleet",
            "--platform",
            "linux",
        ],
    );
    let fleet = &fleet[0];
    assert!(fleet["instances"].as_u64() > Some(10), "{fleet}");
    assert!(
        fleet["instances"].as_u64() < Some(rows.len() as u64),
        "--platform linux leaves Windows out: {fleet}"
    );
    let versions = sql_row(
        store.to_str().expect("utf8"),
        "SELECT count(DISTINCT patch_version(kb_id, title)) AS versions FROM patches WHERE kb_id LIKE '%.x86_64'",
    );
    let n: u64 = versions.trim().parse().unwrap_or(0);
    assert!(n > 10, "Linux packages carry versions: {versions}");
}
