//! The SQL engine behind the reports and `patchtrail sql`: Apache DataFusion over the tables the
//! history registers (`patches`, `instances`, `runs`), with the semantic rules as functions.

pub(crate) mod functions;

use crate::QueryError;
use crate::history::{LoadedHistory, RunInfo};
use crate::report::{Report, Table};
use datafusion::arrow::datatypes::SchemaRef;

/// A SQL string literal.
pub(crate) fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

pub(crate) fn run_list(runs: &[&RunInfo]) -> String {
    let ids: Vec<String> = runs.iter().map(|r| quote(&r.run_id)).collect();
    if ids.is_empty() {
        "(NULL)".into()
    } else {
        format!("({})", ids.join(","))
    }
}

impl LoadedHistory {
    pub async fn query(&self, name: &str, sql: &str) -> Result<Table, QueryError> {
        let frame = self
            .ctx
            .sql(sql)
            .await
            .map_err(|e| QueryError::Engine(e.to_string()))?;
        let schema: SchemaRef = frame.schema().inner().clone();
        let batches = frame
            .collect()
            .await
            .map_err(|e| QueryError::Engine(e.to_string()))?;
        Ok(Table {
            name: name.to_string(),
            schema,
            batches,
        })
    }

    /// Registers a computed table under `name`, so that a follow-up query reads its rows instead
    /// of computing them again from the store.
    pub(crate) fn keep(&self, name: &str, table: &Table) -> Result<(), QueryError> {
        let engine = |e: datafusion::error::DataFusionError| QueryError::Engine(e.to_string());
        let mem = datafusion::datasource::MemTable::try_new(
            table.schema.clone(),
            vec![table.batches.clone()],
        )
        .map_err(engine)?;
        self.ctx.deregister_table(name).map_err(engine)?;
        self.ctx
            .register_table(name, std::sync::Arc::new(mem))
            .map_err(engine)?;
        Ok(())
    }

    /// Ad-hoc SQL over `patches`, `instances` and `runs`: queries only. DDL, DML, `COPY … TO`
    /// and `SET` are refused, so that no one can write files or register tables through it.
    pub async fn sql(&self, sql: &str) -> Result<Report, QueryError> {
        let options = datafusion::execution::context::SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        let frame =
            self.ctx
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
