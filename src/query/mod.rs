//! The DataFusion session over the store, and read-only user SQL.

pub mod table;

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::error::DataFusionError;
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::sql::parser::{DFParser, Statement as DFStatement};
use datafusion::sql::sqlparser::ast::Statement;
use thiserror::Error;

use crate::store::{Store, StoreError};
use table::EventsTable;

/// Default memory for one query before it spills or fails.
pub const DEFAULT_MEMORY_LIMIT: usize = 2 << 30;

#[derive(Debug, Error)]
pub enum QueryError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("vigil sql is read-only: {0}")]
    Refused(String),
    #[error("{0}")]
    UnknownTable(String),
    #[error("{0}")]
    DataFusion(#[from] DataFusionError),
}

/// Views registered beside `events`, for people and for interop.
const VIEWS: [(&str, &str); 1] = [("secret_reads", "SELECT * FROM events WHERE is_secret_read")];

/// A session whose catalog holds table `events` (from the commit log) and the views.
pub async fn session(store: &Store) -> Result<SessionContext, QueryError> {
    let log = store.log()?;
    for w in &log.warnings {
        eprintln!("warning: {w}");
    }
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_pool(Arc::new(FairSpillPool::new(DEFAULT_MEMORY_LIMIT)))
        .build_arc()?;
    let config = SessionConfig::new().with_information_schema(true);
    let ctx = SessionContext::new_with_config_rt(config, runtime);
    ctx.register_table("events", Arc::new(EventsTable::from_log(store, &log)?))?;
    for (name, sql) in VIEWS {
        let view = ctx.sql(sql).await?.into_view();
        ctx.register_table(name, view)?;
    }
    Ok(ctx)
}

/// Refuses anything but a single query: no DDL, DML, `COPY`, `SET`, `EXPLAIN ANALYZE` writes or
/// file-path tables. Checked on the parsed statement before planning, and again by DataFusion's
/// own statement options while planning.
pub fn check_read_only(sql: &str) -> Result<(), QueryError> {
    let statements = DFParser::parse_sql(sql)?;
    if statements.len() != 1 {
        return Err(QueryError::Refused(format!(
            "give exactly one statement (found {})",
            statements.len()
        )));
    }
    let statement = match &statements[0] {
        DFStatement::Statement(s) => s.as_ref(),
        DFStatement::CreateExternalTable(_) => return Err(QueryError::Refused(
            "CREATE EXTERNAL TABLE is not allowed; only SELECT queries over events and its views"
                .into(),
        )),
        DFStatement::CopyTo(_) => {
            return Err(QueryError::Refused(
                "COPY is not allowed; use --format csv|json and redirect the output".into(),
            ))
        }
        DFStatement::Explain(_) | DFStatement::Reset(_) => {
            return Err(QueryError::Refused(
                "this statement is not allowed; only SELECT queries over events and its views"
                    .into(),
            ))
        }
    };
    match statement {
        Statement::Query(_) => Ok(()),
        Statement::Explain {
            statement,
            analyze: false,
            ..
        } if matches!(statement.as_ref(), Statement::Query(_)) => Ok(()),
        Statement::ShowTables { .. } | Statement::ShowColumns { .. } => Ok(()),
        other => {
            let text = other.to_string();
            let keyword = text
                .split_whitespace()
                .next()
                .unwrap_or("this statement")
                .to_uppercase();
            Err(QueryError::Refused(format!("{keyword} statements are not allowed; only SELECT queries over events and its views")))
        }
    }
}

/// Runs one read-only query and collects its batches.
pub async fn run_sql(ctx: &SessionContext, sql: &str) -> Result<Vec<RecordBatch>, QueryError> {
    check_read_only(sql)?;
    let options = datafusion::execution::context::SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    let df = ctx
        .sql_with_options(sql, options)
        .await
        .map_err(explain_error)?;
    Ok(df.collect().await?)
}

/// Turns planner errors users hit into sentences that say what to do.
fn explain_error(e: DataFusionError) -> QueryError {
    let text = e.to_string();
    if text.contains("table '") && text.contains("not found") {
        let name = text
            .split('\'')
            .nth(1)
            .unwrap_or("")
            .trim_start_matches("datafusion.public.");
        return QueryError::UnknownTable(format!(
            "table '{name}' not found; the tables are events and secret_reads (file paths cannot be queried)"
        ));
    }
    QueryError::DataFusion(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_and_settings_are_refused() {
        for sql in [
            "CREATE EXTERNAL TABLE x STORED AS CSV LOCATION '/etc/'",
            "COPY (SELECT 1) TO '/tmp/x'",
            "INSERT INTO events VALUES (1)",
            "SET datafusion.execution.batch_size = 1",
            "DROP TABLE events",
            "SELECT 1; DROP TABLE events",
        ] {
            let err = check_read_only(sql).unwrap_err();
            assert!(matches!(err, QueryError::Refused(_)), "{sql}: {err}");
        }
        check_read_only("SELECT count(*) FROM events WHERE source = 'vault'").unwrap();
        check_read_only("WITH a AS (SELECT 1) SELECT * FROM a").unwrap();
    }
}
