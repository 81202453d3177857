//! `patchtrail sql`: Apache DataFusion over the tables the history registers (`patches`,
//! `instances`, `runs`), with the semantic rules as functions. No report uses it.

pub(crate) mod functions;

use crate::QueryError;
use crate::columns::Part;
use crate::history::{LoadedHistory, runs_batch};
use crate::report::{Report, Table};
use arrow_array::RecordBatch;
use arrow_schema::{Schema, SchemaRef};
use datafusion::datasource::MemTable;
use datafusion::datasource::file_format::json::JsonFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::prelude::{SessionConfig, SessionContext};
use object_store::ObjectStoreExt;
use object_store::memory::InMemory;
use object_store::path::Path;
use patchtrail_model::{instances_schema, patches_schema};
use std::sync::Arc;
use url::Url;

/// Where the session finds the objects: an in-memory store of the checked bytes.
const STORE_URL: &str = "patchtrail://store/";

/// One table's pieces: object keys per on-disk format, and rows built in memory.
#[derive(Default)]
struct Files {
    parquet: Vec<String>,
    jsonl: Vec<String>,
    rows: Vec<RecordBatch>,
}

fn df(e: impl std::fmt::Display) -> QueryError {
    QueryError::Engine(e.to_string())
}

async fn register_files(
    ctx: &SessionContext,
    name: &str,
    schema: SchemaRef,
    files: &Files,
) -> Result<Vec<String>, QueryError> {
    let mut parts = Vec::new();
    for (suffix, keys, parquet) in [
        ("parquet", &files.parquet, true),
        ("jsonl", &files.jsonl, false),
    ] {
        if keys.is_empty() {
            continue;
        }
        let urls = keys
            .iter()
            .map(|k| ListingTableUrl::parse(format!("{STORE_URL}{k}")))
            .collect::<Result<Vec<_>, _>>()
            .map_err(df)?;
        let options = if parquet {
            ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet")
        } else {
            ListingOptions::new(Arc::new(JsonFormat::default())).with_file_extension(".jsonl")
        };
        let config = ListingTableConfig::new_with_multi_paths(urls)
            .with_listing_options(options)
            .with_schema(schema.clone());
        let table = ListingTable::try_new(config).map_err(df)?;
        let table_name = format!("_{name}_{suffix}");
        ctx.register_table(&table_name, Arc::new(table))
            .map_err(df)?;
        parts.push(table_name);
    }
    Ok(parts)
}

fn register_rows(
    ctx: &SessionContext,
    name: &str,
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
) -> Result<String, QueryError> {
    let table = MemTable::try_new(schema, vec![batches]).map_err(df)?;
    ctx.register_table(name, Arc::new(table)).map_err(df)?;
    Ok(name.to_string())
}

/// `CREATE VIEW name` over the parts, with the Hive partition columns Athena would show.
async fn create_view(
    ctx: &SessionContext,
    name: &str,
    parts: &[String],
    schema: &Schema,
) -> Result<(), QueryError> {
    let parts = if parts.is_empty() {
        vec![register_rows(
            ctx,
            &format!("_{name}_empty"),
            Arc::new(schema.clone()),
            Vec::new(),
        )?]
    } else {
        parts.to_vec()
    };
    let union = parts
        .iter()
        .map(|p| format!("SELECT * FROM {p}"))
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    let sql = format!(
        "CREATE VIEW {name} AS SELECT *, CAST(date_part('year', snapshot_time) AS INT) AS year, \
         CAST(date_part('month', snapshot_time) AS INT) AS month, CAST(date_part('day', snapshot_time) AS INT) AS day \
         FROM ({union}) AS t"
    );
    ctx.sql(&sql).await.map_err(df)?;
    Ok(())
}

/// A session over the loaded runs: `patches`, `instances` and `runs`, each with the Hive
/// partition columns, and the semantic functions. The engine reads the checked bytes the history
/// holds, from memory; files are read lazily, so a query reads only the columns it names.
async fn session(history: &LoadedHistory) -> Result<SessionContext, QueryError> {
    let ctx = SessionContext::new_with_config(SessionConfig::new().with_information_schema(true));
    functions::register_all(&ctx);
    let objects = Arc::new(InMemory::new());
    let (mut patches, mut instances) = (Files::default(), Files::default());
    for run in &history.runs {
        let Some(parts) = history.parts.get(&run.run_id) else {
            continue;
        };
        for (files, pieces) in [
            (&mut patches, &parts.patches),
            (&mut instances, &parts.instances),
        ] {
            for piece in pieces {
                match piece {
                    Part::Parquet { key, bytes } | Part::Jsonl { key, bytes } => {
                        objects
                            .put(&Path::from(key.as_str()), bytes.clone().into())
                            .await
                            .map_err(df)?;
                        match piece {
                            Part::Parquet { .. } => files.parquet.push(key.clone()),
                            _ => files.jsonl.push(key.clone()),
                        }
                    }
                    Part::Rows(batch) => files.rows.push(batch.clone()),
                }
            }
        }
    }
    ctx.register_object_store(&Url::parse(STORE_URL).map_err(df)?, objects);
    for (name, schema, files) in [
        ("patches", patches_schema(), patches),
        ("instances", instances_schema(), instances),
    ] {
        let mut parts = register_files(&ctx, name, schema.clone(), &files).await?;
        if !files.rows.is_empty() {
            let rows = format!("_{name}_rows");
            parts.push(register_rows(&ctx, &rows, schema.clone(), files.rows)?);
        }
        create_view(&ctx, name, &parts, &schema).await?;
    }
    let runs = runs_batch(&history.runs)?;
    let schema = runs.schema();
    let part = register_rows(&ctx, "_runs", schema.clone(), vec![runs])?;
    create_view(&ctx, "runs", &[part], &schema).await?;
    Ok(ctx)
}

impl LoadedHistory {
    /// Ad-hoc SQL over `patches`, `instances` and `runs`: queries only. DDL, DML, `COPY … TO`
    /// and `SET` are refused, so that no one can write files or register tables through it.
    pub async fn sql(&self, sql: &str) -> Result<Report, QueryError> {
        let options = datafusion::execution::context::SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        let ctx = session(self).await?;
        let frame = ctx
            .sql_with_options(sql, options)
            .await
            .map_err(|e| QueryError::BadInput {
                input: "SQL".into(),
                fix: format!(
                    "{} (patchtrail sql runs read-only queries: SELECT, WITH, EXPLAIN)",
                    first_line(&e.to_string())
                ),
            })?;
        let schema: SchemaRef = frame.schema().inner().clone();
        let batches = frame
            .collect()
            .await
            .map_err(|e| QueryError::Engine(e.to_string()))?;
        Ok(Report {
            title: self.lang.query_title().into(),
            subtitle: sql.to_string(),
            lang: self.lang,
            as_of: None,
            tables: vec![Table {
                name: "result".into(),
                schema,
                batches,
            }],
            charts: Vec::new(),
            notes: self.notes(),
        })
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or(text)
}
