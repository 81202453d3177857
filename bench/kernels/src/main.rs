//! Issue 24's alternative design, measured on one report before deciding (bench/README.md,
//! "Ship it"): `patchtrail report summary` (docs/semantics.md §6.1) computed in plain Rust over
//! the Arrow arrays of the committed Parquet files, with no SQL engine. The runs in force come
//! from the store crate (the selection the reports make, §5.2, with the same object checks), the
//! rules from `patchtrail_model`; the arithmetic is `reports.rs`'s SQL written as loops.
//!
//! It computes the summary's five tables, prints the main one as CSV (the columns
//! `report summary --format csv` prints) and the other four as JSON on stderr, so that
//! bench/reports.py times it beside the product and DuckDB and checks that it agrees with the
//! product on every instance and every total. A prototype: Parquet stores only, no `--platform`,
//! no charts, no renderers.
//!
//! usage: summary-kernels STORE AS_OF_RFC3339 [STALE_DAYS]

use arrow_array::cast::AsArray;
use arrow_array::types::TimestampMicrosecondType;
use arrow_array::{Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use futures::{StreamExt, TryStreamExt};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use patchtrail_model::{StateClass, is_critical, is_security, severity_level};
use patchtrail_store::{AwsAccess, ScopeFilter, Selection, Store, StoredManifest};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;
use std::io::Write as _;

/// The patch columns the summary reads.
const PATCH_COLUMNS: [&str; 6] = [
    "instance_id",
    "kb_id",
    "title",
    "classification",
    "severity",
    "state",
];

/// The instance columns the summary reads besides [`TEXT_COLUMNS`].
const INSTANCE_VALUES: [&str; 8] = [
    "snapshot_time",
    "resource_type",
    "last_ping_time",
    "last_scan_time",
    "critical_non_compliant_count",
    "security_non_compliant_count",
    "other_non_compliant_count",
    "patch_pages",
];

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Err(e) = run(&args).await {
        eprintln!("summary-kernels: {e}");
        std::process::exit(2);
    }
}

async fn run(args: &[String]) -> Result<(), String> {
    let [store, as_of, rest @ ..] = args else {
        return Err("usage: summary-kernels STORE AS_OF_RFC3339 [STALE_DAYS]".into());
    };
    let instant = DateTime::parse_from_rfc3339(as_of)
        .map_err(|e| format!("AS_OF '{as_of}': {e} (write e.g. 2026-06-01T23:59:59Z)"))?
        .with_timezone(&Utc);
    let stale_days: i64 = match rest.first() {
        Some(s) => s
            .parse()
            .map_err(|_| format!("STALE_DAYS '{s}': write a whole number of days"))?,
        None => 14,
    };
    let aws = AwsAccess {
        region: None,
        credentials: None,
        endpoint: None,
    };
    let store = Store::open(store, &aws).map_err(|e| e.to_string())?;
    let runs = in_force(&store, instant).await?;
    let mut snapshots = Vec::new();
    for run in &runs {
        snapshots.push(Snapshot::read(&store, run).await?);
    }
    let summary = Summary::compute(&snapshots, stale_days * 86_400_000_000)?;
    let mut out = std::io::stdout().lock();
    out.write_all(summary.instances_csv().as_bytes())
        .map_err(|e| format!("stdout: {e}"))?;
    eprintln!("{}", summary.other_tables());
    Ok(())
}

/// Per scope, the run in force at `instant` (§5.2): collected by then, the latest by snapshot
/// time. Damage (§1.5) refuses the answer, as the product does by default.
async fn in_force(store: &Store, instant: DateTime<Utc>) -> Result<Vec<StoredManifest>, String> {
    let history = store
        .select_history(
            &Selection::AsOf(vec![instant]),
            &ScopeFilter::default(),
            &BTreeSet::new(),
        )
        .await
        .map_err(|e| e.to_string())?;
    if let Some(d) = history.damaged.first() {
        return Err(format!("the history is damaged: {}", d.why));
    }
    let mut latest: BTreeMap<(String, String), StoredManifest> = BTreeMap::new();
    for run in history.runs {
        let m = &run.manifest;
        if m.finished_at <= instant {
            latest.insert((m.account_id.clone(), m.region.clone()), run);
        }
    }
    if latest.is_empty() {
        return Err(format!(
            "no snapshot in force at {instant}: pass a later AS_OF (after the first run finished)"
        ));
    }
    Ok(latest.into_values().collect())
}

/// One run's tables, the columns the summary reads.
struct Snapshot {
    run_id: String,
    finished_at: i64,
    patch_states: bool,
    patches: Vec<RecordBatch>,
    instances: Vec<RecordBatch>,
}

impl Snapshot {
    async fn read(store: &Store, run: &StoredManifest) -> Result<Snapshot, String> {
        let m = &run.manifest;
        let objects: Vec<(String, Bytes)> = futures::stream::iter(&m.objects)
            .map(|o| async move {
                let bytes = store.get(&o.key).await.map_err(|e| e.to_string())?;
                if bytes.len() as u64 != o.size {
                    return Err(format!(
                        "run {}: {} has {} bytes where its manifest says {}",
                        m.run_id,
                        o.key,
                        bytes.len(),
                        o.size
                    ));
                }
                Ok((o.key.clone(), bytes))
            })
            .buffered(16)
            .try_collect()
            .await?;
        let mut snapshot = Snapshot {
            run_id: m.run_id.clone(),
            finished_at: m.finished_at.timestamp_micros(),
            patch_states: m.config.patch_states,
            patches: Vec::new(),
            instances: Vec::new(),
        };
        for (key, bytes) in objects {
            let (columns, into): (Vec<&str>, _) = if key.contains("instances/") {
                let columns = TEXT_COLUMNS.iter().chain(&INSTANCE_VALUES);
                (columns.copied().collect(), &mut snapshot.instances)
            } else if key.contains("patches/") {
                (PATCH_COLUMNS.to_vec(), &mut snapshot.patches)
            } else {
                continue;
            };
            if !key.ends_with(".parquet") {
                return Err(format!("{key}: the prototype reads Parquet stores only"));
            }
            into.extend(read_parquet(&key, bytes, &columns)?);
        }
        Ok(snapshot)
    }
}

fn read_parquet(key: &str, bytes: Bytes, columns: &[&str]) -> Result<Vec<RecordBatch>, String> {
    let bad = |e: &dyn std::fmt::Display| format!("{key}: {e}");
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(|e| bad(&e))?;
    let mask = ProjectionMask::columns(builder.parquet_schema(), columns.iter().copied());
    builder
        .with_projection(mask)
        .build()
        .map_err(|e| bad(&e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(&e))
}

fn text<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a StringArray, String> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_string_opt::<i32>())
        .ok_or_else(|| format!("column {name} is missing or not text"))
}

fn micros<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a TimestampMicrosecondArray, String> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>())
        .ok_or_else(|| format!("column {name} is missing or not a timestamp"))
}

fn count<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a Int64Array, String> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_primitive_opt())
        .ok_or_else(|| format!("column {name} is missing or not a count"))
}

fn opt_text(a: &StringArray, i: usize) -> Option<&str> {
    a.is_valid(i).then(|| a.value(i))
}

fn opt_i64<T: arrow_array::ArrowPrimitiveType<Native = i64>>(
    a: &arrow_array::PrimitiveArray<T>,
    i: usize,
) -> Option<i64> {
    a.is_valid(i).then(|| a.value(i))
}

/// Patches per class (§2.1) of one instance in one run, and what `reports.rs` counts beside.
#[derive(Default, Clone, Copy)]
struct Counts {
    classes: [i64; 8],
    missing_critical: i64,
    missing_security: i64,
    noncompliant: i64,
}

/// One row of the summary's main table (`instance_states` in reports.rs).
struct Row<'a> {
    text: [Option<&'a str>; 14],
    last_ping_time: Option<i64>,
    last_scan_time: Option<i64>,
    snapshot_time: Option<i64>,
    scan_age_days: Option<f64>,
    node_type: &'static str,
    counts: Counts,
    compliance: &'static str,
    aws_compliance: Option<&'static str>,
}

/// The text columns of [`Row::text`], and their places in it.
const TEXT_COLUMNS: [&str; 14] = [
    "account_id",
    "region",
    "instance_id",
    "name",
    "ec2_state",
    "platform",
    "platform_name",
    "platform_version",
    "ping_status",
    "agent_version",
    "outcome",
    "error_code",
    "unmanaged_reason",
    "run_id",
];
const ACCOUNT: usize = 0;
const REGION: usize = 1;
const INSTANCE: usize = 2;
const NAME: usize = 3;
const EC2_STATE: usize = 4;
const PLATFORM: usize = 5;
const PLATFORM_NAME: usize = 6;
const PLATFORM_VERSION: usize = 7;
const PING_STATUS: usize = 8;
const AGENT_VERSION: usize = 9;
const OUTCOME: usize = 10;
const ERROR_CODE: usize = 11;
const UNMANAGED_REASON: usize = 12;
const RUN_ID: usize = 13;

/// Fleet totals (`FLEET_TOTALS` in reports.rs).
#[derive(Default)]
struct Totals {
    instances: i64,
    by_compliance: BTreeMap<&'static str, i64>,
    stopped: i64,
    hybrid: i64,
    agent_offline: i64,
    disagree_with_aws: i64,
    classes: [i64; 8],
    missing_critical: i64,
    missing_security: i64,
}

impl Totals {
    fn add(&mut self, row: &Row) {
        self.instances += 1;
        *self.by_compliance.entry(row.compliance).or_default() += 1;
        self.stopped += i64::from(row.text[EC2_STATE] == Some("stopped"));
        self.hybrid += i64::from(row.node_type == "hybrid");
        self.agent_offline += i64::from(matches!(
            row.text[PING_STATUS],
            Some("ConnectionLost" | "Inactive")
        ));
        self.disagree_with_aws +=
            i64::from(row.aws_compliance.is_some_and(|a| a != row.compliance));
        for (sum, n) in self.classes.iter_mut().zip(row.counts.classes) {
            *sum += n;
        }
        self.missing_critical += row.counts.missing_critical;
        self.missing_security += row.counts.missing_security;
    }
}

struct Summary<'a> {
    instances: Vec<Row<'a>>,
    fleet: Totals,
    by_account: Vec<(&'a str, usize, Totals)>,
    missing_by_severity: Vec<(&'static str, i64)>,
    top_missing: Vec<(&'a str, &'a str, usize)>,
}

/// A missing patch, for the severity and top-missing tables.
struct Missing<'a> {
    run: usize,
    instance_id: &'a str,
    kb_id: &'a str,
    title: &'a str,
    severity: &'a str,
}

/// [`Counts`] by (run, instance id).
type PatchCounts<'a> = HashMap<(usize, &'a str), Counts>;

/// Per (run, instance), its patches per class and what the summary counts beside (reports.rs's
/// `patch_counts`); and every missing patch, for the severity and top-missing tables.
fn patch_counts(snapshots: &[Snapshot]) -> Result<(PatchCounts<'_>, Vec<Missing<'_>>), String> {
    let mut counts = PatchCounts::new();
    let mut missing = Vec::new();
    for (run, snapshot) in snapshots.iter().enumerate() {
        for batch in &snapshot.patches {
            let (ids, states) = (text(batch, "instance_id")?, text(batch, "state")?);
            let (severities, classifications) =
                (text(batch, "severity")?, text(batch, "classification")?);
            let (kbs, titles) = (text(batch, "kb_id")?, text(batch, "title")?);
            for i in 0..batch.num_rows() {
                let class = StateClass::of(states.value(i));
                let c = counts.entry((run, ids.value(i))).or_default();
                c.classes[class as usize] += 1;
                c.noncompliant += i64::from(class.makes_noncompliant());
                if class == StateClass::Missing {
                    let (severity, classification) =
                        (severities.value(i), classifications.value(i));
                    c.missing_critical += i64::from(is_critical(severity, classification));
                    c.missing_security += i64::from(is_security(classification));
                    missing.push(Missing {
                        run,
                        instance_id: ids.value(i),
                        kb_id: kbs.value(i),
                        title: titles.value(i),
                        severity,
                    });
                }
            }
        }
    }
    Ok((counts, missing))
}

impl<'a> Summary<'a> {
    fn compute(snapshots: &'a [Snapshot], stale_micros: i64) -> Result<Summary<'a>, String> {
        let missing_class = StateClass::Missing as usize;
        let (counts, missing) = patch_counts(snapshots)?;

        let mut instances = Vec::new();
        for (run, snapshot) in snapshots.iter().enumerate() {
            for batch in &snapshot.instances {
                let texts = TEXT_COLUMNS.map(|n| text(batch, n));
                let mut columns = Vec::with_capacity(texts.len());
                for t in texts {
                    columns.push(t?);
                }
                let resource_type = text(batch, "resource_type")?;
                let patch_pages = count(batch, "patch_pages")?;
                let last_ping = micros(batch, "last_ping_time")?;
                let last_scan = micros(batch, "last_scan_time")?;
                let snapshot_time = micros(batch, "snapshot_time")?;
                let aws_counts = [
                    count(batch, "critical_non_compliant_count")?,
                    count(batch, "security_non_compliant_count")?,
                    count(batch, "other_non_compliant_count")?,
                ];
                for i in 0..batch.num_rows() {
                    let text: [Option<&str>; 14] = std::array::from_fn(|c| opt_text(columns[c], i));
                    let instance_id = text[INSTANCE].unwrap_or_default();
                    let c = counts.get(&(run, instance_id)).copied().unwrap_or_default();
                    let last_scan_time = opt_i64(last_scan, i);
                    let age = last_scan_time.map(|t| snapshot.finished_at - t);
                    let listed = !snapshot.patch_states && opt_i64(patch_pages, i) > Some(0);
                    let compliance = match text[OUTCOME] {
                        Some("error") => "error",
                        Some("unmanaged") => "unmanaged",
                        _ if !snapshot.patch_states => {
                            if c.noncompliant > 0 {
                                "non_compliant"
                            } else {
                                "unknown"
                            }
                        }
                        _ => match age {
                            None => "unknown",
                            Some(age) if age > stale_micros => "unknown",
                            _ if c.noncompliant > 0 => "non_compliant",
                            _ => "compliant",
                        },
                    };
                    let fresh = matches!(compliance, "compliant" | "non_compliant");
                    let aws: [Option<i64>; 3] = aws_counts.map(|a| opt_i64(a, i));
                    let aws_compliance = if !fresh || listed {
                        None
                    } else if aws.iter().map(|n| n.unwrap_or(0)).sum::<i64>() > 0 {
                        Some("non_compliant")
                    } else if aws.iter().all(Option::is_some) {
                        Some("compliant")
                    } else {
                        None
                    };
                    let hybrid = opt_text(resource_type, i) == Some("ManagedInstance")
                        || instance_id.starts_with("mi-");
                    instances.push(Row {
                        text,
                        last_ping_time: opt_i64(last_ping, i),
                        last_scan_time,
                        snapshot_time: opt_i64(snapshot_time, i),
                        scan_age_days: age.map(|a| (a as f64 / 86_400e6 * 10.0).round() / 10.0),
                        node_type: if hybrid { "hybrid" } else { "ec2" },
                        counts: c,
                        compliance,
                        aws_compliance,
                    });
                }
            }
        }
        let key = |r: &Row<'a>| {
            (
                std::cmp::Reverse(r.counts.missing_critical),
                std::cmp::Reverse(r.counts.classes[missing_class]),
                std::cmp::Reverse(r.counts.classes[StateClass::Failed as usize]),
                [r.text[ACCOUNT], r.text[REGION], r.text[INSTANCE]],
            )
        };
        instances.sort_by(|a, b| key(a).cmp(&key(b)));

        let mut fleet = Totals::default();
        let mut accounts: BTreeMap<&str, (BTreeSet<&str>, Totals)> = BTreeMap::new();
        let mut present = HashSet::new();
        for row in &instances {
            fleet.add(row);
            let account = accounts
                .entry(row.text[ACCOUNT].unwrap_or_default())
                .or_default();
            account.0.insert(row.text[REGION].unwrap_or_default());
            account.1.add(row);
            present.insert((
                row.text[RUN_ID].unwrap_or_default(),
                row.text[INSTANCE].unwrap_or_default(),
            ));
        }
        let mut by_account: Vec<_> = accounts
            .into_iter()
            .map(|(a, (regions, t))| (a, regions.len(), t))
            .collect();
        let non_compliant = |t: &Totals| t.by_compliance.get("non_compliant").copied().unwrap_or(0);
        by_account.sort_by(|a, b| {
            non_compliant(&b.2)
                .cmp(&non_compliant(&a.2))
                .then(a.0.cmp(b.0))
        });

        let mut severity: BTreeMap<&'static str, i64> = BTreeMap::new();
        // kb id -> (the greatest title, the (run, instance) pairs missing it)
        let mut top: HashMap<&str, (&str, HashSet<_>)> = HashMap::new();
        for m in missing
            .iter()
            .filter(|m| present.contains(&(snapshots[m.run].run_id.as_str(), m.instance_id)))
        {
            *severity.entry(severity_level(m.severity)).or_default() += 1;
            let kb = top.entry(m.kb_id).or_insert((m.title, HashSet::new()));
            kb.0 = kb.0.max(m.title);
            kb.1.insert((m.run, m.instance_id));
        }
        let mut missing_by_severity: Vec<_> = severity.into_iter().collect();
        missing_by_severity.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let mut top_missing: Vec<_> = top
            .into_iter()
            .map(|(kb, (title, on))| (kb, title, on.len()))
            .collect();
        top_missing.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(b.0)));
        top_missing.truncate(15);
        Ok(Summary {
            instances,
            fleet,
            by_account,
            missing_by_severity,
            top_missing,
        })
    }

    /// The main table as CSV, the columns `report summary --format csv` prints.
    fn instances_csv(&self) -> String {
        const HEADER: &str = "account_id,region,instance_id,name,node_type,ec2_state,platform,platform_name,platform_version,ping_status,last_ping_time,agent_version,last_scan_time,scan_age_days,installed,pending_reboot,rejected,missing,failed,not_applicable,available_security_update,missing_critical,missing_security,compliance,aws_compliance,agrees_with_aws,outcome,error_code,unmanaged_reason,snapshot_time,run_id";
        let mut out = String::with_capacity(self.instances.len() * 300);
        out.push_str(HEADER);
        out.push('\n');
        for r in &self.instances {
            let t = |c: usize| r.text[c].unwrap_or_default();
            let time = |m: Option<i64>| {
                m.and_then(DateTime::from_timestamp_micros)
                    .map(|t| t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
                    .unwrap_or_default()
            };
            let mut cells: Vec<String> = [ACCOUNT, REGION, INSTANCE, NAME]
                .map(|c| t(c).to_string())
                .into();
            cells.push(r.node_type.into());
            for c in [
                EC2_STATE,
                PLATFORM,
                PLATFORM_NAME,
                PLATFORM_VERSION,
                PING_STATUS,
            ] {
                cells.push(t(c).into());
            }
            cells.push(time(r.last_ping_time));
            cells.push(t(AGENT_VERSION).into());
            cells.push(time(r.last_scan_time));
            cells.push(r.scan_age_days.map(|d| d.to_string()).unwrap_or_default());
            cells.extend(r.counts.classes[..7].iter().map(i64::to_string));
            cells.push(r.counts.missing_critical.to_string());
            cells.push(r.counts.missing_security.to_string());
            cells.push(r.compliance.into());
            cells.push(r.aws_compliance.unwrap_or_default().into());
            cells.push(
                r.aws_compliance
                    .map(|a| (a == r.compliance).to_string())
                    .unwrap_or_default(),
            );
            for c in [OUTCOME, ERROR_CODE, UNMANAGED_REASON] {
                cells.push(t(c).into());
            }
            cells.push(time(r.snapshot_time));
            cells.push(t(RUN_ID).into());
            for (i, cell) in cells.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                if cell.contains([',', '"', '\n', '\r']) {
                    let _ = write!(out, "\"{}\"", cell.replace('"', "\"\""));
                } else {
                    out.push_str(cell);
                }
            }
            out.push('\n');
        }
        out
    }

    /// The other four tables, as JSON (bench/reports.py compares two of them with the product's).
    fn other_tables(&self) -> serde_json::Value {
        let totals = |t: &Totals| {
            let mut o = serde_json::json!({
                "instances": t.instances,
                "stopped": t.stopped,
                "hybrid": t.hybrid,
                "agent_offline": t.agent_offline,
                "disagree_with_aws": t.disagree_with_aws,
                "missing_critical": t.missing_critical,
                "missing_security": t.missing_security,
            });
            for (c, n) in t.by_compliance.iter() {
                o[*c] = (*n).into();
            }
            for (class, n) in StateClass::ALL.iter().zip(t.classes) {
                o[class.as_str()] = n.into();
            }
            o
        };
        serde_json::json!({
            "fleet": totals(&self.fleet),
            "by_account": self.by_account.iter().map(|(a, regions, t)| {
                let mut o = totals(t);
                o["account_id"] = (*a).into();
                o["regions"] = (*regions).into();
                o
            }).collect::<Vec<_>>(),
            "missing_by_severity": self.missing_by_severity,
            "top_missing": self.top_missing,
        })
    }
}
