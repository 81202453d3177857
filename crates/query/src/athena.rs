//! `CREATE EXTERNAL TABLE` statements for Athena over the stored layout, with partition projection
//! on year/month/day so that no crawler or `MSCK REPAIR` is needed.

use datafusion::arrow::datatypes::{DataType, Schema};
use patchtrail_model::{instances_schema, patches_schema};

fn athena_type(t: &DataType) -> &'static str {
    match t {
        DataType::Utf8 | DataType::LargeUtf8 => "string",
        DataType::Int64 => "bigint",
        DataType::Int32 => "int",
        DataType::Float64 => "double",
        DataType::Boolean => "boolean",
        DataType::Timestamp(_, _) => "timestamp",
        _ => "string",
    }
}

fn projection(location: &str) -> String {
    format!(
        "TBLPROPERTIES (\n  'projection.enabled' = 'true',\n  'projection.year.type' = 'integer', 'projection.year.range' = '2020,2100',\n  \
         'projection.month.type' = 'integer', 'projection.month.range' = '1,12', 'projection.month.digits' = '2',\n  \
         'projection.day.type' = 'integer', 'projection.day.range' = '1,31', 'projection.day.digits' = '2',\n  \
         'storage.location.template' = '{location}year=${{year}}/month=${{month}}/day=${{day}}/'\n)"
    )
}

fn parquet_table(name: &str, schema: &Schema, root: &str) -> String {
    let columns: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| format!("  `{}` {}", f.name(), athena_type(f.data_type())))
        .collect();
    let location = format!("{root}/{name}/");
    format!(
        "CREATE EXTERNAL TABLE IF NOT EXISTS {name} (\n{}\n)\nPARTITIONED BY (`year` int, `month` int, `day` int)\nSTORED AS PARQUET\nLOCATION '{location}'\n{};\n",
        columns.join(",\n"),
        projection(&location)
    )
}

/// DDL for the `patches`, `instances` and `runs` tables of the store at `root` (`s3://bucket/prefix`).
pub fn athena_ddl(root: &str) -> String {
    let root = root.trim_end_matches('/');
    let runs_location = format!("{root}/runs/");
    format!(
        "-- patchtrail tables for Athena; run each statement in the database of your choice.\n\
         -- Only objects listed by a run manifest are history: filter on committed run ids, e.g.\n\
         --   SELECT ... FROM patches WHERE run_id IN (SELECT run_id FROM runs)\n\n{}\n{}\n\
         CREATE EXTERNAL TABLE IF NOT EXISTS runs (\n  `run_id` string,\n  `snapshot_time` string,\n  `started_at` string,\n  `finished_at` string,\n  \
         `account_id` string,\n  `region` string,\n  `format` string,\n  \
         `counts` struct<instances:bigint,managed:bigint,unmanaged:bigint,errors:bigint,patches:bigint,pages:bigint,missing:bigint,missing_critical:bigint,missing_security:bigint,failed:bigint>\n)\n\
         PARTITIONED BY (`year` int, `month` int, `day` int)\nROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe'\nLOCATION '{runs_location}'\n{};\n",
        parquet_table("patches", &patches_schema(), root),
        parquet_table("instances", &instances_schema(), root),
        projection(&runs_location)
    )
}

#[cfg(test)]
mod tests {
    use super::athena_ddl;

    #[test]
    fn ddl_names_every_column_and_projects_partitions() {
        let ddl = athena_ddl("s3://bucket/prefix/");
        assert!(ddl.contains("LOCATION 's3://bucket/prefix/patches/'"));
        assert!(ddl.contains("'storage.location.template' = 's3://bucket/prefix/patches/year=${year}/month=${month}/day=${day}/'"));
        for column in [
            "`kb_id` string",
            "`installed_time` timestamp",
            "`missing_count` bigint",
            "`last_scan_time` timestamp",
        ] {
            assert!(ddl.contains(column), "{column}");
        }
        assert_eq!(ddl.matches("CREATE EXTERNAL TABLE").count(), 3);
    }
}
