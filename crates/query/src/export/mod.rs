//! Findings (docs/semantics.md §8) where security teams already triage: OCSF 1.1.0 events for
//! Amazon Security Lake and SIEMs (`ocsf`), ASFF for AWS Security Hub (`asff`), docs/semantics.md
//! §9. Both render the very findings `report sla` lists as of one instant, with the same stable
//! ids, so that a weekly export updates and closes what the previous one opened instead of
//! adding to it. Nothing here talks to AWS: `patchtrail_collect::security_hub` sends what `asff`
//! builds.

pub mod asff;
pub mod ocsf;

use crate::QueryError;
use crate::columns::{RunParts, Stored, count, micros, opt_i64, opt_text, text};
use crate::history::LoadedHistory;
use crate::judgments::{SlaPolicy, Waiver, Waivers};
use crate::kev::Kev;
use crate::questions::findings::Finding;
use chrono::{DateTime, NaiveDate, Utc};
pub(crate) use patchtrail_model::partition_of_region;
use std::collections::HashMap;

/// The findings as of one instant, ready to render as OCSF or ASFF.
#[derive(Debug, Clone)]
pub struct Export {
    /// The as-of instant: the findings are those a report as of it lists.
    pub instant: DateTime<Utc>,
    pub findings: Vec<ExportedFinding>,
    /// The standard the SLA verdicts apply (§9.1): the default policy's, or the policy file's.
    pub standard: Standard,
    /// `patchtrail <version>`.
    pub tool_version: &'static str,
}

/// The standard an SLA verdict is against: OCSF's `compliance.standards` and `requirements`,
/// ASFF's `Compliance.RelatedRequirements`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Standard {
    pub name: String,
    pub requirement: String,
}

/// One finding (§8.1) with what an export says of it. Times are microseconds since the epoch
/// (UTC), as the reports hold them.
#[derive(Debug, Clone)]
pub struct ExportedFinding {
    /// Stable across exports (§9.1): the same finding always has the same id.
    pub uid: String,
    pub account_id: String,
    pub region: String,
    pub instance_id: String,
    pub name: Option<String>,
    /// The instance's tags in the finding's `last_seen` snapshot, sorted by key.
    pub tags: Vec<(String, String)>,
    pub kb_id: String,
    pub title: String,
    pub severity_level: &'static str,
    pub classification: String,
    pub cves: Vec<String>,
    pub first_seen: i64,
    pub last_seen: i64,
    pub resolved_at: Option<i64>,
    /// `installed`, `not_applicable`, another class, `no_longer_reported`, `instance_gone`, or
    /// None while open.
    pub resolution: Option<&'static str>,
    pub release_date: Option<i64>,
    pub clock: &'static str,
    pub limit_days: Option<i64>,
    pub due_at: Option<i64>,
    /// §8.3: `breached`, `open`, `fixed_in_time`, `fixed_late`, `resolved_other`.
    pub status: &'static str,
    /// The waiver that holds at the instant, if one does.
    pub waiver: Option<Waiver>,
    pub kev_cves: Vec<String>,
    pub kev_due_date: Option<NaiveDate>,
    /// Whether one of its KEV entries is known to be used in ransomware campaigns.
    pub kev_ransomware: Option<bool>,
    /// The instance's patch state in the snapshot of its scope in force at the instant, as
    /// `ssm:DescribeInstancePatchStates` gave it; None when the instance is not there.
    pub patch_summary: Option<PatchSummary>,
}

/// An instance's patch state summary (its `instances` row): what ASFF's `PatchSummary` holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PatchSummary {
    pub baseline_id: Option<String>,
    pub installed: Option<i64>,
    pub installed_other: Option<i64>,
    pub installed_pending_reboot: Option<i64>,
    pub installed_rejected: Option<i64>,
    pub missing: Option<i64>,
    pub failed: Option<i64>,
    /// `Scan` or `Install`.
    pub operation: Option<String>,
    pub operation_start: Option<i64>,
    /// The end of the operation: the instance's last scan.
    pub operation_end: Option<i64>,
    pub reboot_option: Option<String>,
}

impl ExportedFinding {
    /// Whether the finding no longer stands at the instant (fixed, resolved otherwise, or its
    /// instance gone).
    pub fn closed(&self) -> bool {
        self.resolution.is_some()
    }

    /// When the history last said something of it: the snapshot that saw it end, else the last
    /// that saw it outstanding.
    pub fn observed_at(&self) -> i64 {
        self.resolved_at.unwrap_or(self.last_seen)
    }

    /// §8.3's columns neither format has an attribute for, as (name, text), the empty ones left
    /// out: ASFF's `ProductFields` and OCSF's `unmapped` carry them under their own prefixes.
    pub fn sla_columns(&self) -> Vec<(&'static str, String)> {
        let waiver = self.waiver.as_ref();
        [
            ("instance_id", Some(self.instance_id.clone())),
            ("kb_id", Some(self.kb_id.clone())),
            ("classification", Some(self.classification.clone())),
            ("sla_status", Some(self.status.to_string())),
            ("clock", Some(self.clock.to_string())),
            ("limit_days", self.limit_days.map(|d| d.to_string())),
            ("due_at", self.due_at.map(rfc3339)),
            ("release_date", self.release_date.map(rfc3339)),
            ("resolved_at", self.resolved_at.map(rfc3339)),
            ("resolution", self.resolution.map(str::to_string)),
            ("kev_cves", Some(self.kev_cves.join(","))),
            ("kev_due_date", self.kev_due_date.map(|d| d.to_string())),
            ("kev_ransomware", self.kev_ransomware.map(ransomware_text)),
            ("waiver", waiver.map(|w| w.id.clone())),
            ("waiver_approver", waiver.map(|w| w.approver.clone())),
            ("waiver_expires", waiver.map(|w| w.expires.to_string())),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.filter(|v| !v.trim().is_empty()).map(|v| (k, v)))
        .collect()
    }

    /// The ARN of its instance: EC2's for `i-`, Systems Manager's managed instance for `mi-`.
    pub fn resource_arn(&self) -> String {
        let partition = partition_of_region(&self.region);
        if self.instance_id.starts_with("mi-") {
            format!(
                "arn:{partition}:ssm:{}:{}:managed-instance/{}",
                self.region, self.account_id, self.instance_id
            )
        } else {
            format!(
                "arn:{partition}:ec2:{}:{}:instance/{}",
                self.region, self.account_id, self.instance_id
            )
        }
    }
}

/// §9.1: a finding's id, the same in every export: the SHA-256 of its instance (account,
/// region, id), patch and first snapshot, so that no text of the store's rows shapes it.
fn finding_uid(f: &Finding) -> String {
    let (account, region, instance) = &f.instance;
    let key = format!(
        "{account}\0{region}\0{instance}\0{}\0{}",
        f.kb_id, f.first_seen
    );
    format!(
        "patchtrail-finding-{}",
        patchtrail_store::sha256_hex(key.as_bytes())
    )
}

/// A tags text (a JSON object) as sorted key/value pairs; other values are left out.
fn tag_pairs(tags: &str) -> Vec<(String, String)> {
    let map: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(tags).unwrap_or_default();
    let mut pairs: Vec<(String, String)> = map
        .into_iter()
        .filter_map(|(k, v)| v.as_str().map(|v| (k, v.to_string())))
        .collect();
    pairs.sort();
    pairs
}

impl SlaPolicy {
    /// The standard this policy's verdicts are against (§9.1).
    pub fn standard(&self) -> Standard {
        match &self.source {
            None => Standard {
                name: "PCI DSS v4.0.1".into(),
                requirement: "6.3.3".into(),
            },
            Some(s) => Standard {
                name: format!("patchtrail SLA policy {}", s.path),
                requirement: format!("sha256 {}", s.sha256),
            },
        }
    }
}

impl LoadedHistory {
    /// The findings as of `instant` (every one `report sla` lists), ready to export.
    pub fn export(
        &self,
        instant: DateTime<Utc>,
        label: &str,
        stale_days: u32,
        policy: &SlaPolicy,
        waivers: &Waivers,
        kev: &Kev,
    ) -> Result<Export, QueryError> {
        let mut findings = self.findings(instant, label, stale_days, policy, waivers, kev)?;
        let mut summaries = self.patch_summaries(instant)?;
        findings.sort_by(|a, b| {
            (&a.instance, &a.kb_id, a.first_seen).cmp(&(&b.instance, &b.kb_id, b.first_seen))
        });
        let findings = findings
            .into_iter()
            .map(|f| ExportedFinding {
                uid: finding_uid(&f),
                patch_summary: summaries.get(&f.instance).cloned(),
                tags: tag_pairs(&f.tags),
                waiver: f
                    .waived_by
                    .as_ref()
                    .and_then(|id| waivers.entries.iter().find(|w| &w.id == id).cloned()),
                cves: f.cves.iter().cloned().collect(),
                account_id: f.instance.0,
                region: f.instance.1,
                instance_id: f.instance.2,
                name: f.name,
                kb_id: f.kb_id,
                title: f.title,
                severity_level: f.severity_level,
                classification: f.classification,
                first_seen: f.first_seen,
                last_seen: f.last_seen,
                resolved_at: f.next_snapshot,
                resolution: f.resolution,
                release_date: f.released,
                clock: f.clock,
                limit_days: f.limit_days,
                due_at: f.due_at,
                status: f.status,
                kev_cves: f.kev_cves,
                kev_due_date: f.kev_due_date,
                kev_ransomware: f.kev_ransomware,
            })
            .collect();
        summaries.clear();
        Ok(Export {
            instant,
            findings,
            standard: policy.standard(),
            tool_version: concat!("patchtrail ", env!("CARGO_PKG_VERSION")),
        })
    }
}

impl LoadedHistory {
    /// Each instance's patch state summary in the snapshot of its scope in force at `instant`.
    fn patch_summaries(
        &self,
        instant: DateTime<Utc>,
    ) -> Result<HashMap<(String, String, String), PatchSummary>, QueryError> {
        // PatchSummary's counts, in the order its fields below take them.
        const COUNTS: [&str; 6] = [
            "installed_count",
            "installed_other_count",
            "installed_pending_reboot_count",
            "installed_rejected_count",
            "missing_count",
            "failed_count",
        ];
        const OTHERS: [&str; 8] = [
            "account_id",
            "region",
            "instance_id",
            "baseline_id",
            "operation",
            "operation_start_time",
            "last_scan_time",
            "reboot_option",
        ];
        let columns: Vec<&str> = OTHERS.iter().chain(&COUNTS).copied().collect();
        let none = RunParts::default();
        let mut out = HashMap::new();
        for run in self.snapshots_as_of(instant) {
            let parts = self.parts.get(&run.run_id).unwrap_or(&none);
            for batch in parts.read(Stored::Instances, &columns)? {
                let (account, region, id) = (
                    text(&batch, "account_id")?,
                    text(&batch, "region")?,
                    text(&batch, "instance_id")?,
                );
                let (baseline, operation, reboot) = (
                    text(&batch, "baseline_id")?,
                    text(&batch, "operation")?,
                    text(&batch, "reboot_option")?,
                );
                let counts = COUNTS
                    .iter()
                    .map(|c| count(&batch, c))
                    .collect::<Result<Vec<_>, _>>()?;
                let (start, end) = (
                    micros(&batch, "operation_start_time")?,
                    micros(&batch, "last_scan_time")?,
                );
                for i in 0..batch.num_rows() {
                    let n = |k: usize| opt_i64(counts[k], i);
                    let summary = PatchSummary {
                        baseline_id: opt_text(baseline, i).map(str::to_string),
                        installed: n(0),
                        installed_other: n(1),
                        installed_pending_reboot: n(2),
                        installed_rejected: n(3),
                        missing: n(4),
                        failed: n(5),
                        operation: opt_text(operation, i).map(str::to_string),
                        operation_start: opt_i64(start, i),
                        operation_end: opt_i64(end, i),
                        reboot_option: opt_text(reboot, i).map(str::to_string),
                    };
                    out.insert(
                        (
                            account.value(i).to_string(),
                            region.value(i).to_string(),
                            id.value(i).to_string(),
                        ),
                        summary,
                    );
                }
            }
        }
        Ok(out)
    }
}

/// §8.3's `kev_ransomware` text.
fn ransomware_text(known: bool) -> String {
    if known { "Known" } else { "Unknown" }.to_string()
}

/// Microseconds as milliseconds (OCSF's `timestamp_t`).
fn millis(micros: i64) -> i64 {
    micros.div_euclid(1000)
}

/// Microseconds as an RFC 3339 UTC instant with milliseconds (ASFF's timestamps).
fn rfc3339(micros: i64) -> String {
    DateTime::<Utc>::from_timestamp_micros(micros)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_sorted_pairs_and_non_text_values_are_left_out() {
        assert_eq!(
            tag_pairs(r#"{"b":"2","a":"1","n":3}"#),
            vec![("a".into(), "1".into()), ("b".into(), "2".into())]
        );
        assert!(tag_pairs("not json").is_empty());
    }
}
