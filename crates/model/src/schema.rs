//! Arrow schemas of the `patches` and `instances` tables (the Parquet files' schemas).
//!
//! Partition columns (year, month, day) live in the Hive path, not in the files.

use arrow_schema::{DataType, Field, Schema, TimeUnit};
use std::sync::Arc;

fn utc_micros() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn common_fields() -> Vec<Field> {
    vec![
        Field::new("run_id", DataType::Utf8, false),
        Field::new("snapshot_time", utc_micros(), false),
        Field::new("account_id", DataType::Utf8, false),
        Field::new("region", DataType::Utf8, false),
        Field::new("instance_id", DataType::Utf8, false),
    ]
}

pub fn patches_schema() -> Arc<Schema> {
    let mut fields = common_fields();
    fields.extend([
        Field::new("kb_id", DataType::Utf8, false),
        Field::new("title", DataType::Utf8, false),
        Field::new("classification", DataType::Utf8, false),
        Field::new("severity", DataType::Utf8, false),
        Field::new("state", DataType::Utf8, false),
        Field::new("installed_time", utc_micros(), true),
        Field::new("cve_ids", DataType::Utf8, true),
        Field::new("release_date", utc_micros(), true),
    ]);
    Arc::new(Schema::new(fields))
}

pub fn instances_schema() -> Arc<Schema> {
    let mut fields = common_fields();
    let text = |n: &str| Field::new(n, DataType::Utf8, true);
    let time = |n: &str| Field::new(n, utc_micros(), true);
    let count = |n: &str| Field::new(n, DataType::Int64, true);
    fields.extend([
        text("name"),
        text("ec2_state"),
        text("platform"),
        text("instance_type"),
        time("launch_time"),
        Field::new("tags", DataType::Utf8, false),
        text("resource_type"),
        text("ping_status"),
        time("last_ping_time"),
        text("agent_version"),
        text("platform_type"),
        text("platform_name"),
        text("platform_version"),
        text("computer_name"),
        text("ip_address"),
        text("baseline_id"),
        text("patch_group"),
        text("operation"),
        time("operation_start_time"),
        time("last_scan_time"),
        count("installed_count"),
        count("installed_other_count"),
        count("installed_pending_reboot_count"),
        count("installed_rejected_count"),
        count("missing_count"),
        count("failed_count"),
        count("not_applicable_count"),
        count("critical_non_compliant_count"),
        count("security_non_compliant_count"),
        count("other_non_compliant_count"),
        count("unreported_not_applicable_count"),
        count("available_security_update_count"),
        text("reboot_option"),
        time("last_no_reboot_install_time"),
        text("snapshot_id"),
        text("install_override_list"),
        text("owner_information"),
        Field::new("outcome", DataType::Utf8, false),
        text("unmanaged_reason"),
        text("error_code"),
        text("error_message"),
        Field::new("patch_pages", DataType::Int64, false),
        Field::new("patch_rows", DataType::Int64, false),
    ]);
    Arc::new(Schema::new(fields))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{InstanceRecord, PatchRecord};

    /// The JSONL format serialises the row structs; their field names must be the schema's.
    fn json_keys<T: serde::Serialize>(row: &T) -> Vec<String> {
        match serde_json::to_value(row).expect("row serialises") {
            serde_json::Value::Object(map) => map.keys().cloned().collect(),
            other => panic!("row is not an object: {other}"),
        }
    }

    fn schema_names(schema: &Schema) -> Vec<String> {
        let mut names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        names.sort();
        names
    }

    #[test]
    fn row_structs_and_schemas_name_the_same_columns() {
        let patch = PatchRecord {
            run_id: String::new(),
            snapshot_time: chrono::Utc::now(),
            account_id: String::new(),
            region: String::new(),
            instance_id: String::new(),
            kb_id: String::new(),
            title: String::new(),
            classification: String::new(),
            severity: String::new(),
            state: String::new(),
            installed_time: None,
            cve_ids: None,
            release_date: None,
            installed_time_sent: None,
        };
        let mut keys = json_keys(&patch);
        keys.sort();
        assert_eq!(keys, schema_names(&patches_schema()));

        let mut keys = json_keys(&InstanceRecord::default());
        keys.sort();
        assert_eq!(keys, schema_names(&instances_schema()));
    }
}
