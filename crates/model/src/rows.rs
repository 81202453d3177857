//! One row per (snapshot, instance, patch) and one per (snapshot, instance).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// One patch of one instance in one snapshot: a row of the `patches` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PatchRecord {
    pub run_id: String,
    pub snapshot_time: DateTime<Utc>,
    pub account_id: String,
    pub region: String,
    pub instance_id: String,
    pub kb_id: String,
    pub title: String,
    pub classification: String,
    pub severity: String,
    /// CamelCase as the service sends it (`Installed`, `Missing`, ...), see [`crate::normalise_patch_state`].
    pub state: String,
    /// `None` when the patch is not installed (the wire says 0 or year 1 then).
    pub installed_time: Option<DateTime<Utc>>,
    /// Comma-separated CVE ids exactly as SSM reports them; `None` when absent.
    pub cve_ids: Option<String>,
    /// AWS's `ReleaseDate` of the patch (`DescribeAvailablePatches`, docs/semantics.md §1.3);
    /// `None` where AWS has none or it was not asked.
    #[serde(default)]
    pub release_date: Option<DateTime<Utc>>,
    /// `InstalledTime` exactly as the API sent it (0 or year 1 for a patch not installed), for the
    /// seed layout, whose pages hold the answer as it was; not a column of the tables.
    #[serde(skip)]
    pub installed_time_sent: Option<DateTime<Utc>>,
}

impl PatchRecord {
    /// docs/semantics.md §3.3.
    pub fn is_critical(&self) -> bool {
        crate::is_critical(&self.severity, &self.classification)
    }

    /// docs/semantics.md §3.3.
    pub fn is_security(&self) -> bool {
        crate::is_security(&self.classification)
    }
}

/// How collecting one instance ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Patches and patch state were read.
    #[default]
    Ok,
    /// SSM does not manage the instance (`InvalidInstanceId`): recorded, not fatal.
    Unmanaged,
    /// A call failed after retries; `error_code` / `error_message` say why.
    Error,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Unmanaged => "unmanaged",
            Outcome::Error => "error",
        }
    }
}

/// One instance in one snapshot: a row of the `instances` table.
///
/// EC2 metadata, the SSM patch-state summary (`DescribeInstancePatchStates`) and the outcome of
/// collecting it. The summary fields are `None` for unmanaged instances or when SSM has no state.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct InstanceRecord {
    pub run_id: String,
    pub snapshot_time: DateTime<Utc>,
    pub account_id: String,
    pub region: String,
    pub instance_id: String,
    pub name: Option<String>,
    /// EC2 state name: running, stopped, ...
    pub ec2_state: Option<String>,
    /// EC2 `platformDetails` (`Windows`, `Linux/UNIX`, `Red Hat Enterprise Linux`, ...).
    pub platform: Option<String>,
    pub instance_type: Option<String>,
    pub launch_time: Option<DateTime<Utc>>,
    /// All EC2 tags as a JSON object string (`{"Name":"web-1","CheckPatch":"true"}`); `{}` for
    /// a hybrid node (`DescribeInstanceInformation` selects by tag but does not return tags).
    pub tags: String,
    /// What SSM calls the node: `EC2Instance`, or `ManagedInstance` for a hybrid (`mi-`) node.
    /// The fields from here to `ip_address` come from `DescribeInstanceInformation`; all are
    /// `None` when SSM does not list the node or the call was not possible.
    pub resource_type: Option<String>,
    /// Agent health: `Online`, `ConnectionLost` or `Inactive`.
    pub ping_status: Option<String>,
    /// When the agent last reported; for an agent that is offline, since when.
    pub last_ping_time: Option<DateTime<Utc>>,
    pub agent_version: Option<String>,
    /// `Windows`, `Linux` or `MacOS`.
    pub platform_type: Option<String>,
    /// OS name and version as the agent reports them (`Amazon Linux`, `2023`).
    pub platform_name: Option<String>,
    pub platform_version: Option<String>,
    pub computer_name: Option<String>,
    pub ip_address: Option<String>,
    pub baseline_id: Option<String>,
    pub patch_group: Option<String>,
    /// `Scan` or `Install`.
    pub operation: Option<String>,
    pub operation_start_time: Option<DateTime<Utc>>,
    /// End of the last patch operation: the time of the last scan.
    pub last_scan_time: Option<DateTime<Utc>>,
    pub installed_count: Option<i64>,
    pub installed_other_count: Option<i64>,
    pub installed_pending_reboot_count: Option<i64>,
    pub installed_rejected_count: Option<i64>,
    pub missing_count: Option<i64>,
    pub failed_count: Option<i64>,
    pub not_applicable_count: Option<i64>,
    pub critical_non_compliant_count: Option<i64>,
    pub security_non_compliant_count: Option<i64>,
    pub other_non_compliant_count: Option<i64>,
    /// Patches the agent could not tell applicable or not; `-1` when SSM does not know.
    pub unreported_not_applicable_count: Option<i64>,
    /// Security updates available but not approved by the baseline (Windows).
    pub available_security_update_count: Option<i64>,
    /// `RebootIfNeeded` or `NoReboot`.
    pub reboot_option: Option<String>,
    /// Last install operation run with `NoReboot`.
    pub last_no_reboot_install_time: Option<DateTime<Utc>>,
    /// The patch baseline snapshot the last operation used.
    pub snapshot_id: Option<String>,
    /// S3 URL of the install override list of the last operation.
    pub install_override_list: Option<String>,
    /// Owner information of the maintenance window that ran the last operation.
    pub owner_information: Option<String>,
    pub outcome: Outcome,
    /// Why an `unmanaged` instance was not collected (docs/semantics.md §4.5): `terminated`,
    /// `not_registered`, `agent_offline` or `not_permitted`; `None` otherwise or when unknown.
    pub unmanaged_reason: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    /// `DescribeInstancePatches` pages read for this instance.
    pub patch_pages: i64,
    /// Patch rows stored for this instance (after the classification filter).
    pub patch_rows: i64,
}

/// The on-disk format of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreFormat {
    /// Three Hive-partitioned Parquet tables (the default).
    #[default]
    Parquet,
    /// The same three tables as JSON lines.
    Jsonl,
    /// Exactly the seed workflow's keys and `{"Patches":[...]}` bodies, one object per API page.
    Seed,
}

impl StoreFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            StoreFormat::Parquet => "parquet",
            StoreFormat::Jsonl => "jsonl",
            StoreFormat::Seed => "seed",
        }
    }
}

impl fmt::Display for StoreFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for StoreFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "parquet" => Ok(StoreFormat::Parquet),
            "jsonl" => Ok(StoreFormat::Jsonl),
            "seed" => Ok(StoreFormat::Seed),
            other => Err(format!(
                "unknown format '{other}': use parquet, jsonl or seed"
            )),
        }
    }
}

/// Everything collected for one instance: its row and its patch rows, grouped by API page
/// (the seed format stores one object per page).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct InstanceSnapshot {
    pub instance: InstanceRecord,
    pub pages: Vec<Vec<PatchRecord>>,
}

impl InstanceSnapshot {
    pub fn patches(&self) -> impl Iterator<Item = &PatchRecord> {
        self.pages.iter().flatten()
    }
}
