//! The findings as OCSF 1.1.0 events (docs/semantics.md §9.2): Vulnerability Finding (2002) for
//! each finding whose rows name CVEs, one vulnerability per CVE; Compliance Finding (2003) for
//! every finding, its SLA verdict. Attribute names, types and requirements follow the schema at
//! tag v1.1.0 of github.com/ocsf/ocsf-schema (with the `cloud` profile, which 1.1.0's base event
//! carries); the tests check every event against that schema as JSON Schema.
//!
//! Amazon Security Lake takes a custom source as Parquet, one event class per source, under
//! `region=<region>/accountId=<account>/eventDay=<YYYYMMDD>/`: `parquet_files` writes that
//! layout, with a declared Arrow schema per class (`integer_t` as int32, `long_t` and
//! `timestamp_t` as int64 milliseconds, objects as structs, `unmapped` as a map of strings, as
//! AWS's own OCSF 1.1.0 samples store them) so that every export has the same column types.

use super::{Export, ExportedFinding, millis, partition_of_region, rfc3339};
use crate::QueryError;
use arrow_array::RecordBatch;
use arrow_schema::{DataType, Field, Fields, Schema};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The OCSF version every event declares.
pub const OCSF_VERSION: &str = "1.1.0";

/// An OCSF event class this export writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Class {
    VulnerabilityFinding,
    ComplianceFinding,
}

impl Class {
    pub const ALL: [Class; 2] = [Class::VulnerabilityFinding, Class::ComplianceFinding];

    pub fn uid(self) -> i32 {
        match self {
            Class::VulnerabilityFinding => 2002,
            Class::ComplianceFinding => 2003,
        }
    }

    /// The class's name in the schema (`vulnerability_finding`): file and source names.
    pub fn file_name(self) -> &'static str {
        match self {
            Class::VulnerabilityFinding => "vulnerability_finding",
            Class::ComplianceFinding => "compliance_finding",
        }
    }

    fn caption(self) -> &'static str {
        match self {
            Class::VulnerabilityFinding => "Vulnerability Finding",
            Class::ComplianceFinding => "Compliance Finding",
        }
    }
}

/// One event and the scope and day it belongs to (Security Lake's partitions).
#[derive(Debug, Clone)]
pub struct Event {
    pub class: Class,
    pub account_id: String,
    pub region: String,
    /// `time`, milliseconds since the epoch.
    pub time: i64,
    pub event: Value,
}

/// §9.2: a finding's lifecycle as of the instant: closed (3 Close), seen in one snapshot only
/// (1 Create), or seen again (2 Update).
fn activity(f: &ExportedFinding) -> (i64, &'static str) {
    if f.closed() {
        (3, "Close")
    } else if f.first_seen == f.last_seen {
        (1, "Create")
    } else {
        (2, "Update")
    }
}

/// OCSF `severity_id` and its caption for a §3.1 level (`unspecified` is 0 Unknown).
fn severity(level: &str) -> (i64, &'static str) {
    match level {
        "critical" => (5, "Critical"),
        "high" => (4, "High"),
        "medium" => (3, "Medium"),
        "low" => (2, "Low"),
        _ => (0, "Unknown"),
    }
}

/// The finding's `status_id`: 3 Suppressed under a waiver that holds, 4 Resolved when closed,
/// else 1 New.
fn finding_status(f: &ExportedFinding) -> (i64, &'static str) {
    if f.closed() {
        (4, "Resolved")
    } else if f.waiver.is_some() {
        (3, "Suppressed")
    } else {
        (1, "New")
    }
}

/// The compliance verdict of §8.3's status: within the SLA 1 Pass, outstanding and not yet due
/// 2 Warning, past it 3 Fail, ended otherwise 0 Unknown (no verdict).
fn compliance_status(status: &str) -> (i64, &'static str) {
    match status {
        "fixed_in_time" => (1, "Pass"),
        "open" => (2, "Warning"),
        "breached" | "fixed_late" => (3, "Fail"),
        _ => (0, "Unknown"),
    }
}

impl Export {
    /// Every event, by class, then scope, then time.
    pub fn ocsf_events(&self) -> Vec<Event> {
        let mut events = Vec::new();
        for f in &self.findings {
            if !f.cves.is_empty() {
                events.push(self.event(f, Class::VulnerabilityFinding));
            }
            events.push(self.event(f, Class::ComplianceFinding));
        }
        events.sort_by(|a, b| {
            (a.class, &a.account_id, &a.region, a.time).cmp(&(
                b.class,
                &b.account_id,
                &b.region,
                b.time,
            ))
        });
        events
    }

    fn event(&self, f: &ExportedFinding, class: Class) -> Event {
        let (activity_id, activity_name) = activity(f);
        let (severity_id, severity_name) = severity(f.severity_level);
        let (status_id, status_name) = finding_status(f);
        let time = millis(f.observed_at());
        let version = self
            .tool_version
            .strip_prefix("patchtrail ")
            .unwrap_or(self.tool_version);
        let title = format!(
            "{} outstanding on {}",
            f.kb_id,
            f.name.as_deref().map_or_else(
                || f.instance_id.clone(),
                |n| format!("{} ({n})", f.instance_id)
            )
        );
        let mut event = json!({
            "activity_id": activity_id,
            "activity_name": activity_name,
            "category_uid": 2,
            "category_name": "Findings",
            "class_uid": class.uid(),
            "class_name": class.caption(),
            "type_uid": i64::from(class.uid()) * 100 + activity_id,
            "type_name": format!("{}: {activity_name}", class.caption()),
            "severity_id": severity_id,
            "severity": severity_name,
            "status_id": status_id,
            "status": status_name,
            "time": time,
            "message": format!("{}: {}", f.title, f.status),
            "metadata": {
                "version": OCSF_VERSION,
                "profiles": ["cloud"],
                "product": { "name": "patchtrail", "vendor_name": "patchtrail", "version": version },
                "log_name": class.file_name(),
                "original_time": rfc3339(f.observed_at()),
            },
            "cloud": {
                "provider": "AWS",
                "region": f.region,
                "account": { "uid": f.account_id, "type_id": 10, "type": "AWS Account" },
            },
            "finding_info": {
                "uid": f.uid,
                "title": title,
                "desc": f.title,
                "types": ["Missing patch"],
                "created_time": millis(f.first_seen),
                "first_seen_time": millis(f.first_seen),
                "last_seen_time": millis(f.last_seen),
                "modified_time": time,
            },
            "resource": resource(f),
            "unmapped": unmapped(f),
        });
        if let Some(w) = &f.waiver {
            event["comment"] = Value::from(format!(
                "Waiver {} by {} until {}: {}",
                w.id, w.approver, w.expires, w.reason
            ));
        }
        let kb_article = json!({
            "uid": f.kb_id,
            "title": f.title,
            "severity": f.severity_level,
            "classification": f.classification,
        });
        match class {
            Class::VulnerabilityFinding => {
                event["vulnerabilities"] = Value::Array(
                    f.cves
                        .iter()
                        .map(|cve| {
                            json!({
                                "cve": { "uid": cve },
                                "title": f.title,
                                "severity": severity_name,
                                "kb_article_list": [kb_article],
                                "first_seen_time": millis(f.first_seen),
                                "last_seen_time": millis(f.last_seen),
                                "is_fix_available": true,
                                "references": [format!("https://nvd.nist.gov/vuln/detail/{cve}")],
                            })
                        })
                        .collect(),
                );
            }
            Class::ComplianceFinding => {
                let (compliance_id, compliance_name) = compliance_status(f.status);
                event["compliance"] = json!({
                    "standards": [self.standard.name],
                    "requirements": [self.standard.requirement],
                    "control": "Security patches installed within the SLA",
                    "status_id": compliance_id,
                    "status": compliance_name,
                    "status_detail": f.status,
                });
                event["remediation"] = json!({
                    "desc": format!("Install {} on {}.", f.kb_id, f.instance_id),
                    "kb_article_list": [kb_article],
                });
            }
        }
        Event {
            class,
            account_id: f.account_id.clone(),
            region: f.region.clone(),
            time,
            event,
        }
    }
}

/// The instance the finding is on: its ARN, name, and its tags as `key=value` labels.
fn resource(f: &ExportedFinding) -> Value {
    let kind = if f.instance_id.starts_with("mi-") {
        "AWS::SSM::ManagedInstance"
    } else {
        "AWS::EC2::Instance"
    };
    let mut r = json!({
        "uid": f.resource_arn(),
        "type": kind,
        "region": f.region,
        "cloud_partition": partition_of_region(&f.region),
        "labels": f.tags.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
    });
    if let Some(name) = &f.name {
        r["name"] = Value::from(name.as_str());
    }
    r
}

/// What OCSF has no attribute for: §8.3's columns, under `patchtrail.`.
fn unmapped(f: &ExportedFinding) -> Value {
    let m: Map<String, Value> = f
        .sla_columns()
        .into_iter()
        .map(|(k, v)| (format!("patchtrail.{k}"), Value::from(v)))
        .collect();
    Value::Object(m)
}

/// Events as JSON lines.
pub fn json_lines(events: &[&Event]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in events {
        // A Value always serializes.
        out.extend(serde_json::to_vec(&e.event).unwrap_or_default());
        out.push(b'\n');
    }
    out
}

fn text(name: &str) -> Field {
    Field::new(name, DataType::Utf8, true)
}
fn int(name: &str) -> Field {
    Field::new(name, DataType::Int32, true)
}
fn long(name: &str) -> Field {
    Field::new(name, DataType::Int64, true)
}
fn object(name: &str, fields: Vec<Field>) -> Field {
    Field::new(name, DataType::Struct(Fields::from(fields)), true)
}
fn list(name: &str, item: DataType) -> Field {
    Field::new(name, DataType::new_list(item, true), true)
}
fn texts(name: &str) -> Field {
    list(name, DataType::Utf8)
}
fn objects(name: &str, fields: Vec<Field>) -> Field {
    list(name, DataType::Struct(Fields::from(fields)))
}
fn required(field: Field) -> Field {
    field.with_nullable(false)
}

fn kb_article_fields() -> Vec<Field> {
    vec![
        text("uid"),
        text("title"),
        text("severity"),
        text("classification"),
    ]
}

/// The Arrow (Parquet) schema of a class's events: every attribute the events carry, with the
/// type OCSF gives it.
pub fn arrow_schema(class: Class) -> Schema {
    let mut fields = vec![
        required(int("activity_id")),
        text("activity_name"),
        required(int("category_uid")),
        text("category_name"),
        required(int("class_uid")),
        text("class_name"),
        required(long("type_uid")),
        text("type_name"),
        required(int("severity_id")),
        text("severity"),
        int("status_id"),
        text("status"),
        required(long("time")),
        text("message"),
        text("comment"),
        object(
            "metadata",
            vec![
                text("version"),
                texts("profiles"),
                object(
                    "product",
                    vec![text("name"), text("vendor_name"), text("version")],
                ),
                text("log_name"),
                text("original_time"),
            ],
        ),
        object(
            "cloud",
            vec![
                text("provider"),
                text("region"),
                object("account", vec![text("uid"), int("type_id"), text("type")]),
            ],
        ),
        object(
            "finding_info",
            vec![
                text("uid"),
                text("title"),
                text("desc"),
                texts("types"),
                long("created_time"),
                long("first_seen_time"),
                long("last_seen_time"),
                long("modified_time"),
            ],
        ),
        object(
            "resource",
            vec![
                text("uid"),
                text("type"),
                text("name"),
                text("region"),
                text("cloud_partition"),
                texts("labels"),
            ],
        ),
    ];
    match class {
        Class::VulnerabilityFinding => fields.push(objects(
            "vulnerabilities",
            vec![
                object("cve", vec![text("uid")]),
                text("title"),
                text("severity"),
                objects("kb_article_list", kb_article_fields()),
                long("first_seen_time"),
                long("last_seen_time"),
                Field::new("is_fix_available", DataType::Boolean, true),
                texts("references"),
            ],
        )),
        Class::ComplianceFinding => {
            fields.push(object(
                "compliance",
                vec![
                    texts("standards"),
                    texts("requirements"),
                    text("control"),
                    int("status_id"),
                    text("status"),
                    text("status_detail"),
                ],
            ));
            fields.push(object(
                "remediation",
                vec![
                    text("desc"),
                    objects("kb_article_list", kb_article_fields()),
                ],
            ));
        }
    }
    fields.push(Field::new_map(
        "unmapped",
        "entries",
        Field::new("keys", DataType::Utf8, false),
        Field::new("values", DataType::Utf8, true),
        false,
        true,
    ));
    Schema::new(fields)
}

/// Events of one class as one Parquet file. The events are decoded against the class's
/// declared schema in strict mode: an attribute the schema does not declare is an error here,
/// not a column that differs from one export to the next.
pub fn parquet(class: Class, events: &[&Event]) -> Result<Vec<u8>, QueryError> {
    let schema = Arc::new(arrow_schema(class));
    let fail = |e: &dyn std::fmt::Display| QueryError::Render(format!("OCSF Parquet: {e}"));
    let mut decoder = arrow_json::ReaderBuilder::new(schema.clone())
        .with_strict_mode(true)
        .with_batch_size(events.len().max(1))
        .build_decoder()
        .map_err(|e| fail(&e))?;
    let values: Vec<&Value> = events.iter().map(|e| &e.event).collect();
    decoder.serialize(&values).map_err(|e| fail(&e))?;
    let batch = decoder
        .flush()
        .map_err(|e| fail(&e))?
        .unwrap_or_else(|| RecordBatch::new_empty(schema.clone()));
    let mut out = Vec::new();
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::SNAPPY)
        .build();
    let mut writer = parquet::arrow::ArrowWriter::try_new(&mut out, schema, Some(props))
        .map_err(|e| fail(&e))?;
    writer.write(&batch).map_err(|e| fail(&e))?;
    writer.close().map_err(|e| fail(&e))?;
    Ok(out)
}

/// Security Lake's layout: per class, account, region and day of `time` (UTC), one Parquet
/// file `<class>/region=<r>/accountId=<a>/eventDay=<YYYYMMDD>/<name>.parquet`, by path.
pub fn parquet_files(
    events: &[Event],
    name: &str,
) -> Result<BTreeMap<String, Vec<u8>>, QueryError> {
    let mut groups: BTreeMap<(Class, &str, &str, String), Vec<&Event>> = BTreeMap::new();
    for e in events {
        let day = chrono::DateTime::from_timestamp_millis(e.time)
            .unwrap_or_default()
            .format("%Y%m%d")
            .to_string();
        groups
            .entry((e.class, e.region.as_str(), e.account_id.as_str(), day))
            .or_default()
            .push(e);
    }
    let mut files = BTreeMap::new();
    for ((class, region, account, day), events) in groups {
        let path = format!(
            "{}/region={region}/accountId={account}/eventDay={day}/{name}.parquet",
            class.file_name()
        );
        files.insert(path, parquet(class, &events)?);
    }
    Ok(files)
}
