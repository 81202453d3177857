//! `patchtrail report|sql|verify|athena-ddl`: reading the history.

use crate::cli::{
    AthenaDdlArgs, EvidenceArgs, FindingsArgs, JudgmentArgs, OutputArgs, ReportKind,
    ScopeFilterArgs, SqlArgs, StoreAccess, TimeArgs, VerifyArgs,
};
use crate::failure::{EXIT_FINDINGS, Failure};
use patchtrail_query::{
    EvidenceRequest, Kev, Lang, LoadedHistory, OutputFormat, Report, Selection, SlaPolicy, Waivers,
    as_of_instant, athena_ddl, end_of, evidence_pack, parse_tz, render_table, start_of,
};
use patchtrail_store::{AwsAccess, Store, StoreKind};
use std::io::{IsTerminal, Write};
use std::process::ExitCode;

/// AWS settings for `url`: none for local stores; for S3, the standard chain with the bucket's
/// region (`--region`, or looked up from the bucket).
pub async fn store_access(url: &str, region: Option<&str>) -> AwsAccess {
    if !url.starts_with("s3://") {
        return AwsAccess::default();
    }
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    AwsAccess::from_sdk_config(&config)
        .for_bucket_of(url, region)
        .await
}

/// Opens `--store` for reading; a local folder must exist.
pub async fn open_store(access: &StoreAccess) -> Result<Store, Failure> {
    let url = access.store.url();
    if !url.contains("://") && !std::path::Path::new(url).exists() {
        return Err(Failure::bad_input(format!(
            "--store {url}: no such folder; point --store at a history (patchtrail collect writes ./patchtrail-data)"
        )));
    }
    Ok(Store::open(
        url,
        &store_access(url, access.region.as_deref()).await,
    )?)
}

/// Opens `--store` for writing (creating a local folder), failing early when it cannot take a run.
pub async fn open_writable_store(access: &StoreAccess) -> Result<Store, Failure> {
    let url = access.store.url();
    let store = Store::open(url, &store_access(url, access.region.as_deref()).await)?;
    store.check_writable().await?;
    Ok(store)
}

async fn load(
    store: &StoreAccess,
    selection: Selection,
    scopes: &ScopeFilterArgs,
    lang: Lang,
) -> Result<LoadedHistory, Failure> {
    let store = open_store(store).await?;
    let mut history =
        LoadedHistory::load_with(&store, &selection, &scopes.filter(), scopes.damage()).await?;
    history.lang = lang;
    for warning in &history.warnings {
        eprintln!("warning: {warning}");
    }
    Ok(history)
}

fn format_for(output: &OutputArgs) -> Result<OutputFormat, Failure> {
    if let Some(f) = &output.format {
        return Ok(f.parse()?);
    }
    let by_extension = output
        .output
        .as_ref()
        .and_then(|p| p.extension())
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    Ok(match by_extension.as_deref() {
        Some("csv") => OutputFormat::Csv,
        Some("json") => OutputFormat::Json,
        Some("jsonl") => OutputFormat::Jsonl,
        Some("md") => OutputFormat::Markdown,
        Some("html" | "htm") => OutputFormat::Html,
        Some("xlsx") => OutputFormat::Xlsx,
        _ if output.output.is_none() && std::io::stdout().is_terminal() => OutputFormat::Table,
        _ => OutputFormat::Csv,
    })
}

/// Writes the report where `--output` says, in the chosen format.
pub fn emit(report: &Report, output: &OutputArgs) -> Result<(), Failure> {
    let format = format_for(output)?;
    let bytes = render_table(report, format, output.table.as_deref())?;
    match &output.output {
        Some(path) => {
            std::fs::write(path, &bytes).map_err(|e| {
                Failure::bad_input(format!(
                    "--output {}: cannot write it ({e})",
                    path.display()
                ))
            })?;
            eprintln!("wrote {} ({} bytes)", path.display(), bytes.len());
        }
        None => {
            if format.is_binary() && std::io::stdout().is_terminal() {
                return Err(Failure::bad_input(
                    "--format xlsx is binary: pass --output report.xlsx",
                ));
            }
            super::write_stdout(&bytes)?;
        }
    }
    Ok(())
}

/// Reads a judgment file (policy or waivers) given on the command line.
fn read_judgment(flag: &str, path: &std::path::Path) -> Result<(String, String), Failure> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::bad_input(format!("{flag} {name}: cannot read it ({e})")))?;
    Ok((name, text))
}

/// `--waivers`, and the file's text.
fn waivers(judgments: &JudgmentArgs) -> Result<(Waivers, Option<String>), Failure> {
    match &judgments.waivers {
        None => Ok((Waivers::default(), None)),
        Some(path) => {
            let (name, text) = read_judgment("--waivers", path)?;
            Ok((Waivers::parse(&name, &text)?, Some(text)))
        }
    }
}

/// `--kev`, and the file's text.
fn kev(judgments: &JudgmentArgs) -> Result<(Kev, Option<String>), Failure> {
    match &judgments.kev {
        None => Ok((Kev::default(), None)),
        Some(path) => {
            let (name, text) = read_judgment("--kev", path)?;
            Ok((Kev::parse(&name, &text)?, Some(text)))
        }
    }
}

/// `--policy`, and the file's text.
pub(crate) fn policy_from(
    path: Option<&std::path::Path>,
) -> Result<(SlaPolicy, Option<String>), Failure> {
    match path {
        None => Ok((SlaPolicy::default(), None)),
        Some(path) => {
            let (name, text) = read_judgment("--policy", path)?;
            Ok((SlaPolicy::parse(&name, &text)?, Some(text)))
        }
    }
}

/// The instant and label of `--as-of` (the end of that day in `tz`), or now.
fn as_of(
    as_of: Option<&String>,
    time: &TimeArgs,
    lang: Lang,
) -> Result<(chrono::DateTime<chrono::Utc>, String), Failure> {
    let tz = parse_tz(&time.tz)?;
    Ok(match as_of {
        Some(d) => (
            as_of_instant(d, "--as-of", tz, chrono::Utc::now())?,
            d.clone(),
        ),
        None => (chrono::Utc::now(), lang.now().to_string()),
    })
}

/// What a report over findings (§8) reads: every run up to the instant (a finding may have
/// begun in any of them), the instant and its label, and the waivers with their file's text.
pub(crate) struct Findings {
    pub history: LoadedHistory,
    pub instant: chrono::DateTime<chrono::Utc>,
    pub label: String,
    pub waivers: Waivers,
    waivers_text: Option<String>,
    pub kev: Kev,
    kev_text: Option<String>,
}

pub(crate) async fn findings_history(args: &FindingsArgs, lang: Lang) -> Result<Findings, Failure> {
    let (instant, label) = as_of(args.as_of.as_ref(), &args.time, lang)?;
    let (waivers, waivers_text) = waivers(&args.judgments)?;
    let (kev, kev_text) = kev(&args.judgments)?;
    let history = load(
        &args.store,
        Selection::Range(None, Some(instant)),
        &args.scope,
        lang,
    )
    .await?;
    Ok(Findings {
        history,
        instant,
        label,
        waivers,
        waivers_text,
        kev,
        kev_text,
    })
}

/// An instant as provenance states it.
fn instant_text(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// What a report was asked, for its provenance table: the instants and the flags behind it.
type Asked = Vec<(&'static str, String)>;

pub async fn report(kind: &ReportKind, lang: Lang) -> Result<ExitCode, Failure> {
    let stale_item = |days: u32| ("stale_days", days.to_string());
    let (mut report, output, scopes, history, mut asked, in_force_by): (
        Report,
        &OutputArgs,
        &ScopeFilterArgs,
        LoadedHistory,
        Asked,
        Option<chrono::DateTime<chrono::Utc>>,
    ) = match kind {
        ReportKind::Summary {
            as_of,
            platform,
            scope,
            time,
            stale,
            store,
            output,
        } => {
            let (instant, label) = self::as_of(as_of.as_ref(), time, lang)?;
            let history = load(store, Selection::AsOf(vec![instant]), scope, lang).await?;
            let report = history
                .summary(instant, &label, stale.stale_days, platform.as_deref())
                .await?;
            let mut asked = vec![
                ("as_of", instant_text(instant)),
                ("time_zone", time.tz.clone()),
                stale_item(stale.stale_days),
            ];
            asked.extend(platform.clone().map(|p| ("platform", p)));
            (report, output, scope, history, asked, Some(instant))
        }
        ReportKind::Diff {
            from,
            to,
            scope,
            stale,
            time,
            store,
            output,
        } => {
            let tz = parse_tz(&time.tz)?;
            let (a, b) = (end_of(from, "--from", tz)?, end_of(to, "--to", tz)?);
            let history = load(store, Selection::AsOf(vec![a, b]), scope, lang).await?;
            let report = history.diff(a, from, b, to, stale.stale_days).await?;
            let asked = vec![
                ("from", instant_text(a)),
                ("to", instant_text(b)),
                ("time_zone", time.tz.clone()),
                stale_item(stale.stale_days),
            ];
            (report, output, scope, history, asked, Some(b))
        }
        ReportKind::History {
            instance,
            kb,
            cve,
            scope,
            stale,
            store,
            output,
        } => {
            let history = load(store, Selection::All, scope, lang).await?;
            let (report, subject) = match (instance, kb, cve) {
                (Some(id), _, _) => (
                    history.instance_history(id, stale.stale_days).await?,
                    ("instance", id),
                ),
                (None, Some(kb), _) => (history.kb_history(kb).await?, ("kb", kb)),
                (None, None, Some(cve)) => (
                    history.cve_history(cve, stale.stale_days).await?,
                    ("cve", cve),
                ),
                (None, None, None) => {
                    return Err(Failure::bad_input(
                        "report history: pass --instance ID, --kb KBID or --cve CVE-ID",
                    ));
                }
            };
            let asked = vec![(subject.0, subject.1.clone()), stale_item(stale.stale_days)];
            (report, output, scope, history, asked, None)
        }
        ReportKind::Sla {
            policy,
            findings,
            output,
        } => {
            let (policy, _) = policy_from(policy.as_deref())?;
            let f = findings_history(findings, lang).await?;
            let (history, instant, label) = (f.history, f.instant, f.label);
            let report = history
                .sla(
                    instant,
                    &label,
                    findings.stale.stale_days,
                    &policy,
                    &f.waivers,
                    &f.kev,
                )
                .await?;
            let mut asked =
                findings_asked(findings, instant, &f.waivers, ("policy", policy.describe()));
            asked.extend(f.kev.describe().map(|k| ("kev", k)));
            let scope = &findings.scope;
            (report, output, scope, history, asked, Some(instant))
        }
        ReportKind::Exposure {
            cve,
            findings,
            output,
        } => {
            let f = findings_history(findings, lang).await?;
            let (history, instant, label) = (f.history, f.instant, f.label);
            let report = history
                .exposure(
                    instant,
                    &label,
                    findings.stale.stale_days,
                    cve,
                    &f.waivers,
                    &f.kev,
                )
                .await?;
            let mut asked = findings_asked(findings, instant, &f.waivers, ("cves", cve.join(",")));
            asked.extend(f.kev.describe().map(|k| ("kev", k)));
            let scope = &findings.scope;
            (report, output, scope, history, asked, Some(instant))
        }
        ReportKind::Trend {
            from,
            to,
            scope,
            time,
            stale,
            store,
            output,
        } => {
            let tz = parse_tz(&time.tz)?;
            let from = from
                .as_deref()
                .map(|d| start_of(d, "--from", tz))
                .transpose()?;
            let to = to.as_deref().map(|d| end_of(d, "--to", tz)).transpose()?;
            let history = load(store, Selection::Range(from, to), scope, lang).await?;
            let report = history.trend(from, to, stale.stale_days).await?;
            let mut asked: Asked = Vec::new();
            asked.extend(from.map(|f| ("from", instant_text(f))));
            asked.extend(to.map(|t| ("to", instant_text(t))));
            asked.push(("time_zone", time.tz.clone()));
            asked.push(stale_item(stale.stale_days));
            (report, output, scope, history, asked, None)
        }
    };
    let filter = scopes.filter();
    if !filter.is_empty() {
        report.subtitle = format!(
            "{} · {}",
            report.subtitle,
            lang.scope_note(&filter.accounts, &filter.regions)
        );
    }
    asked.insert(0, ("report", report.title.clone()));
    asked.push(("tool", format!("patchtrail {}", crate::cli::VERSION)));
    asked.push(("generated_at", instant_text(super::run_time()?)));
    history
        .attach_provenance(&mut report, &asked, in_force_by)
        .await?;
    emit(&report, output)?;
    Ok(ExitCode::SUCCESS)
}

/// The instant, time zone, stale days, `extra` and the waivers of a report over findings.
fn findings_asked(
    args: &FindingsArgs,
    instant: chrono::DateTime<chrono::Utc>,
    waivers: &Waivers,
    extra: (&'static str, String),
) -> Asked {
    let mut asked = vec![
        ("as_of", instant_text(instant)),
        ("time_zone", args.time.tz.clone()),
        ("stale_days", args.stale.stale_days.to_string()),
        extra,
    ];
    asked.extend(waivers.describe().map(|w| ("waivers", w)));
    asked
}

#[cfg(not(feature = "sql"))]
pub async fn sql(_args: &SqlArgs, _lang: Lang) -> Result<ExitCode, Failure> {
    Err(Failure::bad_input(
        "patchtrail sql: this patchtrail was built without its SQL engine (cargo feature `sql`); every report works without it, and `cargo install patchtrail` (default features) or a release archive has it",
    ))
}

#[cfg(feature = "sql")]
pub async fn sql(args: &SqlArgs, lang: Lang) -> Result<ExitCode, Failure> {
    let report = load(
        &args.store,
        Selection::All,
        &ScopeFilterArgs::default(),
        lang,
    )
    .await?
    .sql(&args.query)
    .await?;
    emit(&report, &args.output)?;
    Ok(ExitCode::SUCCESS)
}

pub async fn verify(args: &VerifyArgs) -> Result<ExitCode, Failure> {
    let store = open_store(&args.store).await?;
    if args.repair {
        for line in store.repair().await? {
            println!("repaired   {line}");
        }
    }
    let report = store.verify(args.expect_head.as_ref()).await?;
    for line in report.lines(store.url()) {
        println!("{line}");
    }
    Ok(if report.findings.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FINDINGS)
    })
}

pub async fn evidence(args: &EvidenceArgs, lang: Lang) -> Result<ExitCode, Failure> {
    if args.out.exists() {
        return Err(Failure::bad_input(format!(
            "--out {}: the file exists; an evidence pack is never overwritten, pass a new name",
            args.out.display()
        )));
    }
    let (policy, policy_text) = policy_from(args.policy.as_deref())?;
    let Findings {
        history,
        instant,
        label,
        waivers,
        waivers_text,
        kev,
        kev_text,
    } = findings_history(&args.findings, lang).await?;
    let store = open_store(&args.findings.store).await?;
    let pack = evidence_pack(
        &history,
        &store,
        &EvidenceRequest {
            instant,
            label: &label,
            stale_days: args.findings.stale.stale_days,
            policy: &policy,
            policy_text: policy_text.as_deref(),
            waivers: &waivers,
            waivers_text: waivers_text.as_deref(),
            kev: &kev,
            kev_text: kev_text.as_deref(),
            with_data: !args.without_data,
            tool: &format!("patchtrail {}", crate::cli::VERSION),
            generated_at: super::run_time()?,
            pack_damaged: args.pack_damaged,
            expect_head: args.expect_head.as_ref(),
            tz: &args.findings.time.tz,
        },
    )
    .await?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&args.out)
        .map_err(|e| {
            Failure::bad_input(format!(
                "--out {}: cannot create it ({e})",
                args.out.display()
            ))
        })?;
    file.write_all(&pack.zip)
        .and_then(|()| file.sync_all())
        .map_err(|e| Failure::other(format!("cannot write {}: {e}", args.out.display())))?;
    println!(
        "wrote {} ({} files, {} runs, {} findings, {} bytes)",
        args.out.display(),
        pack.files,
        pack.runs,
        pack.findings,
        pack.zip.len()
    );
    println!(
        "sha256 {}  (give it to the auditor apart from the file; evidence/README.txt says how to check the rest)",
        patchtrail_store::sha256_hex(&pack.zip)
    );
    println!(
        "head {}  (the chain head the pack ends at: give it with the sha256)",
        pack.head
    );
    Ok(ExitCode::SUCCESS)
}

pub fn athena(args: &AthenaDdlArgs) -> Result<ExitCode, Failure> {
    let store = args.store.as_deref().unwrap_or_default();
    let root = match Store::open(store, &AwsAccess::default()) {
        Ok(s) if matches!(s.kind(), StoreKind::S3 { .. }) => store.to_string(),
        _ => {
            return Err(Failure::bad_input(format!(
                "--store '{store}': Athena reads S3; pass --store s3://bucket/prefix (the location patchtrail collect writes to)"
            )));
        }
    };
    let format = args.format.parse().map_err(Failure::bad_input)?;
    print!("{}", athena_ddl(&root, format));
    Ok(ExitCode::SUCCESS)
}
