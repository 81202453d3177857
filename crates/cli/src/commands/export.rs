//! `patchtrail export ocsf|security-hub`: the findings as of a date, where security teams
//! triage (docs/semantics.md §9). The store is only read.

use super::report::{Findings, findings_history, policy_from};
use crate::cli::{ExportKind, FindingsArgs, OcsfFormat};
use crate::failure::{EXIT_PARTIAL, Failure};
use patchtrail_collect::ScopePlan;
use patchtrail_collect::security_hub::import_findings;
use patchtrail_query::Lang;
use patchtrail_query::export::Export;
use patchtrail_query::export::asff::{AsffOptions, FindingsBatch, batches};
use patchtrail_query::export::ocsf::{Class, json_lines, parquet_files};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub async fn run(kind: &ExportKind, lang: Lang) -> Result<ExitCode, Failure> {
    match kind {
        ExportKind::Ocsf {
            out,
            format,
            policy,
            findings,
        } => {
            let export = export(findings, policy.as_deref(), lang).await?;
            ocsf(&export, out, *format)
        }
        ExportKind::SecurityHub {
            dry_run,
            closed_days,
            policy,
            role_name,
            external_id,
            role_session_name,
            findings,
        } => {
            let export = export(findings, policy.as_deref(), lang).await?;
            let asff = export.asff(AsffOptions {
                closed_days: *closed_days,
            });
            let total = asff.len();
            let (batches, unsent) = batches(asff);
            for (id, why) in &unsent {
                eprintln!("finding {id} not sent: {why}");
            }
            let code = if unsent.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_PARTIAL)
            };
            if let Some(dir) = dry_run {
                let files: BTreeMap<String, Vec<u8>> = numbered(&batches)
                    .into_iter()
                    .map(|(name, b)| {
                        // Compact, as sent: the size the limits were checked on.
                        let body = serde_json::to_vec(&b.body()).unwrap_or_default();
                        (name, body)
                    })
                    .collect();
                write_files(dir, &files, "--dry-run")?;
                eprintln!(
                    "wrote {} BatchImportFindings request(s) of {total} finding(s) as of {} into {} (nothing sent)",
                    files.len(),
                    export.instant.to_rfc3339(),
                    dir.display()
                );
                return Ok(code);
            }
            if batches.is_empty() {
                eprintln!("no findings to send as of {}", export.instant.to_rfc3339());
                return Ok(code);
            }
            let region = batches[0].region.clone();
            let config = aws_config(&region).await?;
            let plan = ScopePlan {
                role_name: role_name.clone(),
                external_id: external_id.clone(),
                session_name: role_session_name.clone(),
                ..ScopePlan::default()
            };
            let report = import_findings(&config, &plan, batches).await?;
            eprintln!(
                "imported {} of {total} finding(s) into Security Hub in {} call(s)",
                report.imported, report.calls
            );
            if report.failed.is_empty() {
                return Ok(code);
            }
            for f in &report.failed {
                eprintln!(
                    "refused: finding {} ({} {}): {}: {}",
                    f.id, f.account_id, f.region, f.code, f.message
                );
            }
            Err(Failure {
                message: format!(
                    "Security Hub refused {} finding(s) (listed above): check that Security Hub is enabled in those accounts and regions and that securityhub:BatchImportFindings is allowed on their default product, then export again",
                    report.failed.len()
                ),
                exit_code: EXIT_PARTIAL,
            })
        }
    }
}

/// The findings as of `--as-of`, with the policy, waivers and KEV catalog given.
async fn export(args: &FindingsArgs, policy: Option<&Path>, lang: Lang) -> Result<Export, Failure> {
    let (policy, _) = policy_from(policy)?;
    let Findings {
        history,
        instant,
        label,
        waivers,
        kev,
        ..
    } = findings_history(args, lang).await?;
    for warning in &history.warnings {
        eprintln!("warning: {warning}");
    }
    for note in history.notes() {
        eprintln!("note: {note}");
    }
    Ok(history.export(
        instant,
        &label,
        args.stale.stale_days,
        &policy,
        &waivers,
        &kev,
    )?)
}

/// The SDK configuration of the standard chain; its region (for STS) is `region` when none is
/// configured.
async fn aws_config(region: &str) -> Result<aws_types::SdkConfig, Failure> {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    if config.region().is_some() {
        return Ok(config);
    }
    Ok(config
        .to_builder()
        .region(aws_types::region::Region::new(region.to_string()))
        .build())
}

/// Each batch's file name: `batch-<account>-<region>-<n>.json`, numbered per scope.
fn numbered(batches: &[FindingsBatch]) -> Vec<(String, &FindingsBatch)> {
    let mut counts: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    batches
        .iter()
        .map(|b| {
            let n = counts
                .entry((b.account_id.as_str(), b.region.as_str()))
                .or_default();
            *n += 1;
            (
                format!("batch-{}-{}-{:04}.json", b.account_id, b.region, n),
                b,
            )
        })
        .collect()
}

fn ocsf(export: &Export, out: &Path, format: OcsfFormat) -> Result<ExitCode, Failure> {
    let events = export.ocsf_events();
    let stamp = export.instant.format("%Y%m%dT%H%M%SZ");
    let files = match format {
        OcsfFormat::Parquet => parquet_files(&events, &format!("patchtrail-{stamp}"))?,
        OcsfFormat::Jsonl => Class::ALL
            .iter()
            .map(|class| {
                let of_class: Vec<_> = events.iter().filter(|e| e.class == *class).collect();
                (
                    format!("{}-{stamp}.jsonl", class.file_name()),
                    json_lines(&of_class),
                )
            })
            .collect(),
    };
    write_files(out, &files, "--out")?;
    let count = |class: Class| events.iter().filter(|e| e.class == class).count();
    eprintln!(
        "wrote {} OCSF {} event(s) ({} Vulnerability Finding, {} Compliance Finding) for {} finding(s) as of {} into {} ({} file(s))",
        events.len(),
        patchtrail_query::export::ocsf::OCSF_VERSION,
        count(Class::VulnerabilityFinding),
        count(Class::ComplianceFinding),
        export.findings.len(),
        export.instant.to_rfc3339(),
        out.display(),
        files.len()
    );
    Ok(ExitCode::SUCCESS)
}

/// Writes `files` (relative paths) under `dir`, each whole or not at all (written aside, then
/// renamed); refuses before writing anything when one exists already.
fn write_files(dir: &Path, files: &BTreeMap<String, Vec<u8>>, flag: &str) -> Result<(), Failure> {
    let paths: Vec<(PathBuf, &Vec<u8>)> = files.iter().map(|(k, v)| (dir.join(k), v)).collect();
    if let Some((taken, _)) = paths.iter().find(|(p, _)| p.exists()) {
        return Err(Failure::bad_input(format!(
            "{flag} {}: {} exists already (an export with the same as-of); pass another folder or remove it",
            dir.display(),
            taken.display()
        )));
    }
    let fail = |p: &Path, e: std::io::Error| {
        Failure::other(format!(
            "{flag} {}: cannot write {} ({e})",
            dir.display(),
            p.display()
        ))
    };
    for (path, bytes) in paths {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| fail(parent, e))?;
        }
        let aside = path.with_extension("partial");
        std::fs::write(&aside, bytes).map_err(|e| fail(&aside, e))?;
        std::fs::rename(&aside, &path).map_err(|e| fail(&path, e))?;
    }
    Ok(())
}
