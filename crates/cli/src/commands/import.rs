//! `patchtrail import`: commit snapshots given as JSON lines (one run per line) through the same
//! writers a collect uses. For backfilling history from another source (an export, another
//! tool's archive), and for building histories in tests without an AWS fleet.

use crate::cli::ImportArgs;
use crate::commands::report::{open_writable_store, store_access};
use crate::failure::Failure;
use chrono::{DateTime, SubsecRound, Utc};
use patchtrail_model::{
    InstanceRecord, InstanceSnapshot, PatchRecord, RunConfig, SEED_CLASSIFICATIONS, SEED_TAG_KEY,
    StoreFormat, normalise_patch_state,
};
use patchtrail_store::{RowContext, RunStart, Store};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeSet;
use std::process::ExitCode;

/// Patch rows per page in the seed layout (the API's page size).
const PAGE_ROWS: usize = 50;

/// One line of the input.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportedRun {
    snapshot_time: DateTime<Utc>,
    /// When the snapshot was complete (§1.4); default: `snapshot_time`.
    #[serde(default)]
    finished_at: Option<DateTime<Utc>>,
    account_id: String,
    region: String,
    instances: Vec<Map<String, Value>>,
}

fn valid_instance_id(id: &str) -> bool {
    let hex = |s: &str, n: usize| s.len() == n && s.chars().all(|c| c.is_ascii_alphanumeric());
    id.strip_prefix("i-")
        .is_some_and(|r| hex(r, 8) || hex(r, 17))
        || id.strip_prefix("mi-").is_some_and(|r| hex(r, 17))
}

/// A time kept to the microsecond, the tables' unit (§1.4): finer input is truncated, so that
/// a value and the day partition it is filed under never disagree.
fn micros(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(6)
}

/// One run of the input, checked: its start, finish and instances.
struct ParsedRun {
    start: RunStart,
    finished_at: DateTime<Utc>,
    snapshots: Vec<InstanceSnapshot>,
}

/// Parses and checks one line into a run (§1.4, §1.6).
fn parse_line(line: &str, format: StoreFormat) -> Result<ParsedRun, String> {
    let mut run: ImportedRun = serde_json::from_str(line).map_err(|e| e.to_string())?;
    run.snapshot_time = micros(run.snapshot_time);
    let finished_at = micros(run.finished_at.unwrap_or(run.snapshot_time));
    if finished_at < run.snapshot_time {
        return Err(format!(
            "finished_at {finished_at} is before snapshot_time {}: a snapshot finishes after it starts",
            run.snapshot_time
        ));
    }
    if run.account_id.is_empty() || run.account_id.contains(['-', '/']) {
        return Err(format!(
            "account_id '{}' must be an AWS account id such as 123456789012",
            run.account_id
        ));
    }
    if run.region.is_empty() || run.region.contains('/') {
        return Err(format!(
            "region '{}' must be a region name such as ap-northeast-1",
            run.region
        ));
    }
    let context = |map: &mut Map<String, Value>| {
        map.insert("run_id".into(), Value::String(String::new()));
        map.insert("snapshot_time".into(), serde_json::json!(run.snapshot_time));
        map.insert("account_id".into(), Value::String(run.account_id.clone()));
        map.insert("region".into(), Value::String(run.region.clone()));
    };
    let mut snapshots = Vec::with_capacity(run.instances.len());
    let mut seen_instances = std::collections::HashSet::new();
    for mut map in run.instances.clone() {
        let patches = match map.remove("patches") {
            Some(Value::Array(p)) => p,
            None | Some(Value::Null) => Vec::new(),
            Some(_) => return Err("an instance's \"patches\" must be an array".into()),
        };
        context(&mut map);
        map.entry("tags")
            .or_insert_with(|| Value::String("{}".into()));
        map.entry("outcome")
            .or_insert_with(|| Value::String("ok".into()));
        map.insert(
            "patch_pages".into(),
            Value::from(patches.len().div_ceil(PAGE_ROWS)),
        );
        map.insert("patch_rows".into(), Value::from(patches.len()));
        let mut instance: InstanceRecord =
            serde_json::from_value(Value::Object(map)).map_err(|e| format!("an instance: {e}"))?;
        if !valid_instance_id(&instance.instance_id) {
            return Err(format!(
                "instance id '{}' is not an EC2 (i-…) or managed-node (mi-…) id",
                instance.instance_id
            ));
        }
        if !seen_instances.insert(instance.instance_id.clone()) {
            return Err(format!(
                "instance {} is listed twice in one run (AWS lists an instance once): merge its entries",
                instance.instance_id
            ));
        }
        instance.snapshot_time = micros(instance.snapshot_time);
        for t in [
            &mut instance.launch_time,
            &mut instance.last_ping_time,
            &mut instance.operation_start_time,
            &mut instance.last_scan_time,
            &mut instance.last_no_reboot_install_time,
        ] {
            *t = t.map(micros);
        }
        if let Some(scan) = instance.last_scan_time
            && scan > finished_at
        {
            return Err(format!(
                "instance {}: last_scan_time {scan} is after the run's finished_at {finished_at} (a scan is read after it ends): fix the time, or give the run a later finished_at",
                instance.instance_id
            ));
        }
        let mut kb_ids = std::collections::HashSet::new();
        let mut rows = Vec::with_capacity(patches.len());
        for patch in patches {
            let Value::Object(mut p) = patch else {
                return Err("a patch must be an object".into());
            };
            context(&mut p);
            p.insert(
                "instance_id".into(),
                Value::String(instance.instance_id.clone()),
            );
            let mut row: PatchRecord = serde_json::from_value(Value::Object(p))
                .map_err(|e| format!("a patch of {}: {e}", instance.instance_id))?;
            if !kb_ids.insert(row.kb_id.clone()) {
                return Err(format!(
                    "patch {} is listed twice for instance {} (AWS lists a patch once per instance): keep one",
                    row.kb_id, instance.instance_id
                ));
            }
            row.state = normalise_patch_state(&row.state);
            row.installed_time = row.installed_time.map(micros);
            row.release_date = row.release_date.map(micros);
            rows.push(row);
        }
        let pages = rows
            .chunks(PAGE_ROWS)
            .map(<[PatchRecord]>::to_vec)
            .collect();
        snapshots.push(InstanceSnapshot { instance, pages });
    }
    let start = RunStart {
        snapshot_time: run.snapshot_time,
        started_at: run.snapshot_time,
        account_id: run.account_id,
        region: run.region,
        format,
        config: RunConfig {
            tag_key: String::new(),
            tag_values: Vec::new(),
            hybrid: false,
            classifications: Vec::new(),
            patch_states: true,
            origin: Some("import".into()),
        },
    };
    Ok(ParsedRun {
        start,
        finished_at,
        snapshots,
    })
}

/// Stamps a row with the run id the store gave the run.
fn stamp(mut snapshot: InstanceSnapshot, run_id: &str) -> InstanceSnapshot {
    snapshot.instance.run_id = run_id.to_string();
    for row in snapshot.pages.iter_mut().flatten() {
        row.run_id = run_id.to_string();
    }
    snapshot
}

pub async fn run(args: &ImportArgs) -> Result<ExitCode, Failure> {
    let format: StoreFormat = args.format.parse().map_err(Failure::bad_input)?;
    if let Some(url) = &args.from_seed {
        return from_seed(args, url, format).await;
    }
    let Some(file) = &args.file else {
        return Err(Failure::bad_input(
            "import: give a JSON-lines file (or - for stdin), or --from-seed URL",
        ));
    };
    let text = if file.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())
            .map_err(|e| Failure::bad_input(format!("cannot read stdin: {e}")))?
    } else {
        std::fs::read_to_string(file).map_err(|e| {
            Failure::bad_input(format!(
                "{}: cannot read it ({e}); give a JSON-lines file, or - for stdin",
                file.display()
            ))
        })?
    };
    // Every line is checked before anything is written.
    let mut runs = Vec::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let parsed = parse_line(line, format).map_err(|e| {
            Failure::bad_input(format!(
                "{} line {}: {e} (see `patchtrail import --help` for the shape)",
                file.display(),
                n + 1
            ))
        })?;
        runs.push(parsed);
    }
    let store = open_writable_store(&args.store).await?;
    let mut head = None;
    for run in runs {
        let mut writer = store.begin_run(run.start).await?;
        let run_id = writer.run_id().to_string();
        for snapshot in run.snapshots {
            writer.add(stamp(snapshot, &run_id)).await?;
        }
        let committed = writer.commit(run.finished_at).await?;
        println!("{}", committed.manifest.run_id);
        head = Some(committed.entry.witness());
    }
    print_head_witness(head.as_deref());
    Ok(ExitCode::SUCCESS)
}

/// The head witness of the last commit an import made, on stderr (stdout lists the run ids):
/// what to keep elsewhere, and what it proves.
fn print_head_witness(witness: Option<&str>) {
    if let Some(w) = witness {
        eprintln!(
            "chain head {w} (keep it elsewhere: `patchtrail verify --expect-head {w}` shows that no run committed up to it was removed or rewritten since)"
        );
    }
}

/// `import --from-seed`: the seed workflow's snapshots under `url`, one run each, with their own
/// dates (started at the day's first page, finished at its last), the seed's classifications and
/// tag key, and no patch states (docs/semantics.md §4.7). Days already imported (a run of the
/// scope with that snapshot time) are skipped, so the command can be run again after the seed's
/// workflow wrote more.
async fn from_seed(args: &ImportArgs, url: &str, format: StoreFormat) -> Result<ExitCode, Failure> {
    let account = args.seed_account.as_deref().unwrap_or_default().trim();
    let region = args.seed_region.as_deref().unwrap_or_default().trim();
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Failure::bad_input(format!(
            "--seed-account '{account}': give the 12-digit account the seed's workflow collected"
        )));
    }
    if region.is_empty()
        || !region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(Failure::bad_input(format!(
            "--seed-region '{region}': give the region the seed's workflow collected, such as ap-northeast-1"
        )));
    }
    let source = Store::open(url, &store_access(url, None).await)?;
    let days = source.seed_workflow_days().await?;
    if days.is_empty() {
        return Err(Failure::bad_input(format!(
            "--from-seed {url}: no page of the seed's workflow there (year=YYYY/month=MM/day=DD/instanceid=<id>/<uuid>); point it at the bucket and path of the workflow's input (s3_bucket/s3_path)"
        )));
    }
    let store = open_writable_store(&args.store).await?;
    let imported: BTreeSet<DateTime<Utc>> = store
        .history()
        .await?
        .runs
        .iter()
        .map(|r| &r.manifest)
        .filter(|m| m.account_id == account && m.region == region)
        .map(|m| m.snapshot_time)
        .collect();
    let mut warnings = Vec::new();
    let mut head = None;
    for day in days {
        let started = micros(day.started);
        if imported.contains(&started) {
            eprintln!("skipped {}: imported already", day.date);
            continue;
        }
        let mut writer = store
            .begin_run(RunStart {
                snapshot_time: started,
                started_at: started,
                account_id: account.to_string(),
                region: region.to_string(),
                format,
                config: RunConfig {
                    tag_key: SEED_TAG_KEY.to_string(),
                    tag_values: Vec::new(),
                    classifications: SEED_CLASSIFICATIONS.iter().map(|c| c.to_string()).collect(),
                    hybrid: false,
                    patch_states: false,
                    origin: Some("import-seed".into()),
                },
            })
            .await?;
        let run_id = writer.run_id().to_string();
        let context = RowContext {
            run_id: &run_id,
            snapshot_time: started,
            account_id: account,
            region,
        };
        for snapshot in source.read_seed_day(&day, &context, &mut warnings).await? {
            writer.add(snapshot).await?;
        }
        let committed = writer.commit(micros(day.finished).max(started)).await?;
        println!("{run_id}");
        head = Some(committed.entry.witness());
    }
    print_head_witness(head.as_deref());
    for warning in warnings {
        eprintln!("warning: {warning}");
    }
    Ok(ExitCode::SUCCESS)
}
