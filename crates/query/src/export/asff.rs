//! The findings in the AWS Security Finding Format (ASFF, `SchemaVersion` 2018-10-08), for
//! `securityhub:BatchImportFindings` (docs/semantics.md §9.3). Field names, types and limits
//! follow the Security Hub API reference (`AwsSecurityFinding`) and botocore's model of it,
//! which the tests check every finding against.
//!
//! One ASFF finding per §8 finding, with its stable id: an export updates what an earlier one
//! imported (`UpdatedAt` is the export's instant, later than any earlier export's), and a
//! finding that closed is archived (`RecordState` `ARCHIVED`, `Compliance.Status` `PASSED` when
//! fixed) instead of left active. Security Hub deletes archived findings 90 days after their
//! last update, so findings that closed more than `closed_days` before the instant are left out
//! instead of being sent again every week.

use super::{Export, ExportedFinding, partition_of_region, rfc3339};
pub use patchtrail_model::FindingsBatch;
use serde_json::{Map, Value, json};

/// BatchImportFindings' limits (Security Hub API reference).
pub const MAX_FINDINGS_PER_CALL: usize = 100;
/// A request's body (6 MB) and one finding (240 KB), in bytes.
pub const MAX_BYTES_PER_CALL: usize = 6 * 1000 * 1000;
pub const MAX_BYTES_PER_FINDING: usize = 240 * 1000;
const TITLE_CHARS: usize = 256;
const DESCRIPTION_CHARS: usize = 1024;
const PRODUCT_FIELD_VALUE_CHARS: usize = 2048;
const TAG_VALUE_CHARS: usize = 256;
const TAG_KEY_CHARS: usize = 128;
/// `Resources[].Details.Other` and `ProductFields` keys (the API reference: 128 characters).
const PRODUCT_FIELD_KEY_CHARS: usize = 128;

/// One finding for Security Hub, and the account and region it must be sent from and to.
#[derive(Debug, Clone)]
pub struct AsffFinding {
    pub account_id: String,
    pub region: String,
    pub id: String,
    pub finding: Value,
}

/// `text` cut to `limit` characters, ending with `…` when cut.
fn cut(text: &str, limit: usize) -> String {
    if text.chars().count() <= limit {
        return text.to_string();
    }
    let mut out: String = text.chars().take(limit - 1).collect();
    out.push('…');
    out
}

/// ASFF's `Severity.Label` for a §3.1 level. `unspecified` is `INFORMATIONAL`, as Patch
/// Manager's own findings in Security Hub label an `UNSPECIFIED` patch.
fn severity_label(level: &str) -> &'static str {
    match level {
        "critical" => "CRITICAL",
        "high" => "HIGH",
        "medium" => "MEDIUM",
        "low" => "LOW",
        _ => "INFORMATIONAL",
    }
}

/// Which findings an export sends.
#[derive(Debug, Clone, Copy)]
pub struct AsffOptions {
    /// Leave out findings closed more than this many days before the instant.
    pub closed_days: u32,
}

impl Default for AsffOptions {
    fn default() -> Self {
        AsffOptions { closed_days: 90 }
    }
}

impl Export {
    /// Every finding as ASFF (§9.3), oldest instance first.
    pub fn asff(&self, options: AsffOptions) -> Vec<AsffFinding> {
        let now = self.instant.timestamp_micros();
        let horizon =
            now.saturating_sub(i64::from(options.closed_days).saturating_mul(86_400_000_000));
        self.findings
            .iter()
            .filter(|f| !f.closed() || f.observed_at() >= horizon)
            .map(|f| AsffFinding {
                account_id: f.account_id.clone(),
                region: f.region.clone(),
                id: f.uid.clone(),
                finding: self.asff_finding(f),
            })
            .collect()
    }

    fn asff_finding(&self, f: &ExportedFinding) -> Value {
        let partition = partition_of_region(&f.region);
        let product_arn = format!(
            "arn:{partition}:securityhub:{}:{}:product/{}/default",
            f.region, f.account_id, f.account_id
        );
        let instance = f.name.as_deref().map_or_else(
            || f.instance_id.clone(),
            |n| format!("{} ({n})", f.instance_id),
        );
        // One line: Security Hub's consoles show the title as a line of text.
        let title = cut(
            &one_line(&format!(
                "{} {} on {}",
                f.kb_id,
                outstanding_word(f),
                instance
            )),
            TITLE_CHARS,
        );
        let description = cut(&description(f, &self.standard.name), DESCRIPTION_CHARS);
        // ASFF's taxonomy (namespace/category/classifier): every finding is a missing patch,
        // and one that names CVEs a vulnerability too.
        let mut types = vec!["Software and Configuration Checks/Patch Management"];
        if !f.cves.is_empty() {
            types.push("Software and Configuration Checks/Vulnerabilities/CVE");
        }
        // Tag keys and values are non-empty strings in ASFF (`.*\S.*`): EC2 allows an empty
        // value, which is left out rather than refused with the whole finding.
        let mut tags = Map::new();
        for (k, v) in &f.tags {
            if k.trim().is_empty() || v.trim().is_empty() {
                continue;
            }
            tags.insert(cut(k, TAG_KEY_CHARS), Value::from(cut(v, TAG_VALUE_CHARS)));
        }
        let mut resource = json!({
            "Type": if f.instance_id.starts_with("mi-") { "Other" } else { "AwsEc2Instance" },
            "Id": f.resource_arn(),
            "Partition": asff_partition(partition),
            "Region": f.region,
        });
        if !tags.is_empty() {
            resource["Tags"] = Value::Object(tags);
        }
        let mut finding = json!({
            "SchemaVersion": "2018-10-08",
            "Id": f.uid,
            "ProductArn": product_arn,
            "GeneratorId": "patchtrail/patch-sla",
            "AwsAccountId": f.account_id,
            "Region": f.region,
            "Types": types,
            "FirstObservedAt": rfc3339(f.first_seen),
            "LastObservedAt": rfc3339(f.last_seen),
            "CreatedAt": rfc3339(f.first_seen),
            "UpdatedAt": self.instant.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "Severity": { "Label": severity_label(f.severity_level), "Original": f.severity_level },
            "FindingProviderFields": {
                "Severity": { "Label": severity_label(f.severity_level), "Original": f.severity_level },
                "Types": types,
            },
            "Title": title,
            "Description": description,
            "Remediation": { "Recommendation": {
                "Text": cut(&format!("Install {} on {} (Systems Manager Patch Manager: Install operation), or record an accepted risk in a waiver file.", f.kb_id, f.instance_id), 512),
            }},
            "Resources": [resource],
            "Compliance": {
                "Status": compliance_status(f),
                "RelatedRequirements": [cut(&format!("{} {}", self.standard.name, self.standard.requirement), 256)],
            },
            "Workflow": { "Status": workflow_status(f) },
            "RecordState": if f.closed() { "ARCHIVED" } else { "ACTIVE" },
            "ProductFields": product_fields(f),
        });
        if !f.cves.is_empty() {
            finding["Vulnerabilities"] = Value::Array(
                f.cves
                    .iter()
                    .map(|cve| json!({ "Id": cve, "FixAvailable": "YES" }))
                    .collect(),
            );
        }
        if let Some(summary) = patch_summary(f) {
            finding["PatchSummary"] = summary;
        }
        if let Some(note) = waiver_note(f) {
            finding["Note"] = note;
        }
        finding
    }
}

/// `text` with its control characters (line breaks among them) as spaces.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// ASFF's `Resource.Partition` names the isolated partitions otherwise than ARNs do (botocore's
/// model: `aws-us-iso`, `aws-us-iso-b`).
fn asff_partition(arn_partition: &str) -> &str {
    match arn_partition {
        "aws-iso" => "aws-us-iso",
        "aws-iso-b" => "aws-us-iso-b",
        other => other,
    }
}

fn outstanding_word(f: &ExportedFinding) -> &'static str {
    if f.closed() { "was missing" } else { "missing" }
}

/// §9.3: FAILED while outstanding, PASSED once fixed, NOT_AVAILABLE when it ended otherwise
/// (no longer reported, instance gone): the history cannot say it was fixed.
fn compliance_status(f: &ExportedFinding) -> &'static str {
    match f.status {
        "breached" | "open" => "FAILED",
        "fixed_in_time" | "fixed_late" => "PASSED",
        _ => "NOT_AVAILABLE",
    }
}

/// §9.3: NEW while open, SUPPRESSED under a waiver that holds, RESOLVED once closed. (Security
/// Hub takes an imported workflow status for new findings only; later changes are the team's,
/// through BatchUpdateFindings: `RecordState` and `Compliance.Status` carry ours.)
fn workflow_status(f: &ExportedFinding) -> &'static str {
    if f.closed() {
        "RESOLVED"
    } else if f.waiver.is_some() {
        "SUPPRESSED"
    } else {
        "NEW"
    }
}

fn description(f: &ExportedFinding, standard: &str) -> String {
    let mut text = format!(
        "{}: {} ({}, {}) outstanding on {} in {} {} since the snapshot of {}.",
        f.status,
        f.title,
        f.classification,
        f.severity_level,
        f.instance_id,
        f.account_id,
        f.region,
        rfc3339(f.first_seen),
    );
    match (f.due_at, f.clock) {
        (Some(due), "kev") => text.push_str(&format!(
            " Due {} (CISA KEV due date of {}).",
            rfc3339(due),
            f.kev_cves.join(", ")
        )),
        (Some(due), clock) => text.push_str(&format!(
            " Due {} ({}, {} days from {}).",
            rfc3339(due),
            standard,
            f.limit_days.unwrap_or_default(),
            clock
        )),
        (None, _) => {}
    }
    if let (Some(at), Some(how)) = (f.resolved_at, f.resolution) {
        text.push_str(&format!(" Ended {} ({how}).", rfc3339(at)));
    }
    if !f.cves.is_empty() {
        text.push_str(&format!(" CVEs: {}.", f.cves.join(", ")));
    }
    text
}

/// The §8.3 columns Security Hub has no field for, as `patchtrail/<name>`.
fn product_fields(f: &ExportedFinding) -> Value {
    let fields: Map<String, Value> = f
        .sla_columns()
        .into_iter()
        .map(|(k, v)| {
            (
                cut(&format!("patchtrail/{k}"), PRODUCT_FIELD_KEY_CHARS),
                Value::from(cut(&v, PRODUCT_FIELD_VALUE_CHARS)),
            )
        })
        .collect();
    Value::Object(fields)
}

/// The instance's patch state as of the export (`PatchSummary`: its `Id` is the patch
/// baseline, as Patch Manager's own findings name it), when the instance is in the snapshot in
/// force. Counts AWS did not give are left out, never sent as 0.
fn patch_summary(f: &ExportedFinding) -> Option<Value> {
    let s = f.patch_summary.as_ref()?;
    let mut out = Map::new();
    out.insert(
        "Id".into(),
        Value::from(cut(
            s.baseline_id
                .as_deref()
                .filter(|b| !b.trim().is_empty())
                .unwrap_or("unknown baseline"),
            256,
        )),
    );
    for (name, value) in [
        ("InstalledCount", s.installed),
        ("InstalledOtherCount", s.installed_other),
        ("InstalledPendingReboot", s.installed_pending_reboot),
        ("InstalledRejectedCount", s.installed_rejected),
        ("MissingCount", s.missing),
        ("FailedCount", s.failed),
    ] {
        if let Some(n) = value {
            out.insert(name.into(), Value::from(n.clamp(0, 100_000)));
        }
    }
    for (name, value) in [
        ("OperationStartTime", s.operation_start),
        ("OperationEndTime", s.operation_end),
    ] {
        if let Some(t) = value {
            out.insert(name.into(), Value::from(rfc3339(t)));
        }
    }
    for (name, value) in [
        ("Operation", s.operation.as_deref()),
        ("RebootOption", s.reboot_option.as_deref()),
    ] {
        if let Some(v) = value.filter(|v| !v.trim().is_empty()) {
            out.insert(name.into(), Value::from(cut(v, 256)));
        }
    }
    Some(Value::Object(out))
}

/// A waiver that holds, as the finding's `Note` (who accepted the risk, why, until when).
fn waiver_note(f: &ExportedFinding) -> Option<Value> {
    let w = f.waiver.as_ref()?;
    Some(json!({
        "Text": cut(&format!("Waiver {} until {}: {}", w.id, w.expires, w.reason), 512),
        "UpdatedBy": cut(&w.approver, 512),
        "UpdatedAt": rfc3339(f.observed_at()),
    }))
}

/// Why a finding over 240 KB is not sent (its texts are cut to their limits already).
pub const TOO_LARGE: &str = "over Security Hub's 240 KB per finding even with its texts cut: the rest is the instance's tags; export it as OCSF instead (patchtrail export ocsf)";
/// Why a finding without account or region is not sent (ASFF requires `AwsAccountId`).
pub const NO_SCOPE: &str = "it names no account or region (a page the seed workflow wrote, read in place): import those pages with `patchtrail import --from-seed URL --seed-account ID --seed-region REGION`, then export that store";

/// Groups `findings` into BatchImportFindings calls: per account and region (each sent from
/// its own account), at most 100 findings and 6 MB each. A finding that cannot be sent (over
/// 240 KB, or of no account) is returned apart: its id and why.
pub fn batches(findings: Vec<AsffFinding>) -> (Vec<FindingsBatch>, Vec<(String, &'static str)>) {
    let mut sorted = findings;
    sorted
        .sort_by(|a, b| (&a.account_id, &a.region, &a.id).cmp(&(&b.account_id, &b.region, &b.id)));
    let mut out: Vec<FindingsBatch> = Vec::new();
    let mut unsent = Vec::new();
    let mut bytes = 0;
    // `{"Findings":[` and `]}`.
    const FRAME: usize = 16;
    for f in sorted {
        if f.account_id.is_empty() || f.region.is_empty() {
            unsent.push((f.id, NO_SCOPE));
            continue;
        }
        let size = serde_json::to_vec(&f.finding).map_or(usize::MAX, |v| v.len());
        if size > MAX_BYTES_PER_FINDING {
            unsent.push((f.id, TOO_LARGE));
            continue;
        }
        let fits = out.last().is_some_and(|b| {
            b.account_id == f.account_id
                && b.region == f.region
                && b.findings.len() < MAX_FINDINGS_PER_CALL
                && bytes + size + 1 + FRAME <= MAX_BYTES_PER_CALL
        });
        if !fits {
            out.push(FindingsBatch {
                account_id: f.account_id,
                region: f.region,
                findings: Vec::new(),
            });
            bytes = 0;
        }
        bytes += size + 1;
        if let Some(b) = out.last_mut() {
            b.findings.push(f.finding);
        }
    }
    (out, unsent)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(id: &str, account: &str, bytes: usize) -> AsffFinding {
        AsffFinding {
            account_id: account.into(),
            region: "ap-northeast-1".into(),
            id: id.into(),
            finding: json!({ "Id": id, "Description": "x".repeat(bytes) }),
        }
    }

    #[test]
    fn batches_keep_to_100_findings_6_mb_and_one_account() {
        let mut many: Vec<_> = (0..250)
            .map(|i| finding(&format!("f{i:03}"), "111111111111", 10))
            .collect();
        many.push(finding("other", "222222222222", 10));
        let (batches, unsent) = batches(many);
        assert!(unsent.is_empty());
        let sizes: Vec<usize> = batches.iter().map(|b| b.findings.len()).collect();
        assert_eq!(sizes, vec![100, 100, 50, 1]);
        assert_eq!(batches[3].account_id, "222222222222");

        // 30 findings of 230 KB: 6 MB holds 26 of them.
        let big: Vec<_> = (0..30)
            .map(|i| finding(&format!("b{i:02}"), "111111111111", 230_000))
            .collect();
        let (batches, _) = super::batches(big);
        for b in &batches {
            let body = serde_json::to_vec(&b.body()).unwrap_or_default();
            assert!(body.len() <= MAX_BYTES_PER_CALL, "{} bytes", body.len());
        }
        assert_eq!(batches.iter().map(|b| b.findings.len()).sum::<usize>(), 30);
        assert!(batches.len() >= 2);

        let (_, unsent) = super::batches(vec![
            finding("huge", "111111111111", 250_000),
            finding("seed page", "", 10),
        ]);
        assert_eq!(
            unsent,
            vec![
                ("seed page".to_string(), NO_SCOPE),
                ("huge".to_string(), TOO_LARGE)
            ]
        );
    }

    #[test]
    fn cut_texts_end_with_an_ellipsis_within_the_limit() {
        assert_eq!(cut("abc", 3), "abc");
        let long = "日本語".repeat(200);
        let c = cut(&long, 256);
        assert_eq!(c.chars().count(), 256);
        assert!(c.ends_with('…'));
    }
}
