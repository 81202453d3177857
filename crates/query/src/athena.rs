//! `CREATE EXTERNAL TABLE` statements for Athena over the stored layout, with partition projection
//! on year/month/day so that no crawler or `MSCK REPAIR` is needed.

use arrow_schema::{DataType, Schema};
use patchtrail_model::{StoreFormat, instances_schema, patches_schema};

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

/// How a table's files are read.
#[derive(Clone, Copy)]
enum Storage {
    Parquet,
    /// JSON lines: timestamps are RFC 3339 text, declared as strings (cast with `from_iso8601_timestamp`).
    Jsonl,
}

fn table(name: &str, schema: &Schema, location: &str, storage: Storage) -> String {
    let columns: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| {
            let t = match (storage, f.data_type()) {
                (Storage::Jsonl, DataType::Timestamp(_, _)) => "string",
                (_, other) => athena_type(other),
            };
            format!("  `{}` {t}", f.name())
        })
        .collect();
    let stored = match storage {
        Storage::Parquet => "STORED AS PARQUET",
        Storage::Jsonl => "ROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe'",
    };
    format!(
        "CREATE EXTERNAL TABLE IF NOT EXISTS {name} (\n{}\n)\nPARTITIONED BY (`year` int, `month` int, `day` int)\n{stored}\nLOCATION '{location}'\n{};\n",
        columns.join(",\n"),
        projection(location)
    )
}

fn runs_table(location: &str) -> String {
    format!(
        "CREATE EXTERNAL TABLE IF NOT EXISTS runs (\n  `run_id` string,\n  `sequence` bigint,\n  `snapshot_time` string,\n  `started_at` string,\n  `finished_at` string,\n  \
         `account_id` string,\n  `region` string,\n  `format` string,\n  \
         `counts` struct<instances:bigint,managed:bigint,unmanaged:bigint,errors:bigint,patches:bigint,pages:bigint,missing:bigint,missing_critical:bigint,missing_security:bigint,failed:bigint>,\n  \
         `objects` array<struct<key:string,size:bigint,sha256:string,rows:bigint>>\n)\n\
         PARTITIONED BY (`year` int, `month` int, `day` int)\nROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe'\nLOCATION '{location}'\n{};\n",
        projection(location)
    )
}

/// The seed workflow's own pages: `{"Patches":[...]}` under `year=/month=/day=/instanceid=<id>/`.
/// Athena reads the `instanceid=` folders below each day; `"$path"` names the instance.
fn seed_pages_table(root: &str) -> String {
    let location = format!("{root}/");
    format!(
        "CREATE EXTERNAL TABLE IF NOT EXISTS seed_pages (\n  `Patches` array<struct<Title:string,KbId:string,Classification:string,Severity:string,State:string,InstalledTime:string,CVEIds:string>>\n)\n\
         PARTITIONED BY (`year` int, `month` int, `day` int)\nROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe'\nLOCATION '{location}'\n{};\n",
        projection(&location)
    )
}

/// DDL for the tables of the store at `root` (`s3://bucket/prefix`) written in `format`.
pub fn athena_ddl(root: &str, format: StoreFormat) -> String {
    let root = root.trim_end_matches('/');
    let header = format!(
        "-- patchtrail tables for Athena; run each statement in the database of your choice.\n\
         -- Only objects a committed run lists are history (an interrupted run's objects, or those of an\n\
         -- attempt to continue a suspended run that did not make it into the run, may carry its run id):\n\
         --   SELECT ... FROM patches WHERE \"$path\" IN\n\
         --     (SELECT '{root}/' || o.key FROM runs CROSS JOIN UNNEST(objects) AS t(o))\n"
    );
    let at = |path: &str| format!("{root}/{path}/");
    match format {
        StoreFormat::Parquet => format!(
            "{header}\n{}\n{}\n{}",
            table(
                "patches",
                &patches_schema(),
                &at("patches"),
                Storage::Parquet
            ),
            table(
                "instances",
                &instances_schema(),
                &at("instances"),
                Storage::Parquet
            ),
            runs_table(&at("runs"))
        ),
        StoreFormat::Jsonl => format!(
            "{header}-- JSON lines: timestamps are RFC 3339 strings; use from_iso8601_timestamp(col).\n\n{}\n{}\n{}",
            table("patches", &patches_schema(), &at("patches"), Storage::Jsonl),
            table(
                "instances",
                &instances_schema(),
                &at("instances"),
                Storage::Jsonl
            ),
            runs_table(&at("runs"))
        ),
        StoreFormat::Seed => format!(
            "{header}-- The seed layout: one row per page; UNNEST(Patches) for one row per patch, and\n\
             -- regexp_extract(\"$path\", 'instanceid=([^/]+)', 1) for the instance id. Pages of interrupted runs\n\
             -- are in the same folders: join on the committed runs' instances table to keep history only.\n\n{}\n{}\n{}",
            seed_pages_table(root),
            table(
                "instances",
                &instances_schema(),
                &at("_patchtrail/instances"),
                Storage::Jsonl
            ),
            runs_table(&at("_patchtrail/runs"))
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::athena_ddl;
    use patchtrail_model::StoreFormat;

    #[test]
    fn ddl_names_every_column_and_projects_partitions() {
        let ddl = athena_ddl("s3://bucket/prefix/", StoreFormat::Parquet);
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

    #[test]
    fn each_format_gets_its_own_tables() {
        let jsonl = athena_ddl("s3://b/p", StoreFormat::Jsonl);
        assert!(jsonl.contains("`installed_time` string") && !jsonl.contains("PARQUET"));
        let seed = athena_ddl("s3://b/p", StoreFormat::Seed);
        assert!(seed.contains("CREATE EXTERNAL TABLE IF NOT EXISTS seed_pages"));
        assert!(seed.contains("LOCATION 's3://b/p/_patchtrail/runs/'"));
        assert!(seed.contains("LOCATION 's3://b/p/_patchtrail/instances/'"));
    }
}
