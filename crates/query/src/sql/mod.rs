//! `patchtrail sql`: Apache DataFusion over the tables the history registers (`patches`,
//! `instances`, `runs`), with the semantic rules as functions. No report uses it.

pub(crate) mod functions;

use crate::QueryError;
use crate::history::LoadedHistory;
use crate::report::{Report, Table};
use datafusion::arrow::datatypes::SchemaRef;

impl LoadedHistory {
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
