//! The DataFusion session over the store, and read-only user SQL.

pub mod counts_table;
pub mod findings_table;
pub mod table;
pub mod udf;

use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::{ArrayRef, AsArray, RecordBatch};
use datafusion::common::ParamValues;
use datafusion::dataframe::DataFrame;
use datafusion::error::DataFusionError;
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::sql::parser::{DFParser, Statement as DFStatement};
use datafusion::sql::sqlparser::ast::Statement;
use futures::StreamExt;
use thiserror::Error;

use crate::calendar::Calendar;
use crate::environments::Environments;
use crate::peer_groups::PeerGroups;
use crate::store::rollup::Kind;
use crate::store::{Store, StoreError};
use counts_table::CountsTable;
use table::EventsTable;

#[derive(Debug, Error)]
pub enum QueryError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("vigil sql is read-only: {0}")]
    Refused(String),
    #[error("{0}")]
    UnknownTable(String),
    #[error("the query ran longer than {} s, the limit set by [query] timeout in vigil.toml; narrow it (a time range, a LIMIT) or raise the limit", .0.as_secs_f64())]
    Timeout(Duration),
    #[error("the query needs more memory than the {} MiB set by [query] memory_limit in vigil.toml; narrow it or raise the limit ({detail})", .limit >> 20)]
    Memory { limit: usize, detail: String },
    #[error(transparent)]
    DataFusion(#[from] DataFusionError),
}

/// Views registered beside `events`, for people and for interop. `ocsf_api_activity` shapes each
/// row as an OCSF 1.1 API Activity event (class 6003): nested `actor`, `api`, `src_endpoint`,
/// `resources` as OCSF names them. `principals` is every principal with what the logs say it is
/// and its peer groups.
const VIEWS: [(&str, &str); 3] = [
    ("secret_reads", "SELECT * FROM events WHERE is_secret_read"),
    ("ocsf_api_activity", OCSF_VIEW),
    ("principals", PRINCIPALS_VIEW),
];

/// One row per principal and set of attributes (a principal whose policies changed has a row
/// for each set), from the principal rollups.
const PRINCIPALS_VIEW: &str = "SELECT
  source, actor_id, max(actor_name) AS actor_name, actor_type, tenant, actor_role, actor_groups,
  vigil_peer_groups(source, actor_id, max(actor_name), actor_role, tenant, actor_groups) AS peer_groups,
  sum(events) AS events, min(first_time) AS first_seen, max(last_time) AS last_seen
FROM principal_counts
GROUP BY source, actor_id, actor_type, tenant, actor_role, actor_groups";

const OCSF_VIEW: &str = "SELECT
  6003 AS class_uid, 6 AS category_uid,
  CASE action WHEN 'write' THEN 1 WHEN 'read' THEN 2 WHEN 'list' THEN 2 WHEN 'decrypt' THEN 2
    WHEN 'rotate' THEN 3 WHEN 'policy' THEN 3 WHEN 'delete' THEN 4 ELSE 99 END AS activity_id,
  600300 + CASE action WHEN 'write' THEN 1 WHEN 'read' THEN 2 WHEN 'list' THEN 2 WHEN 'decrypt' THEN 2
    WHEN 'rotate' THEN 3 WHEN 'policy' THEN 3 WHEN 'delete' THEN 4 ELSE 99 END AS type_uid,
  event_time AS time,
  1 AS severity_id,
  CASE outcome WHEN 'success' THEN 'Success' WHEN 'unknown' THEN 'Unknown' ELSE 'Failure' END AS status,
  CASE outcome WHEN 'success' THEN 1 WHEN 'unknown' THEN 0 ELSE 2 END AS status_id,
  status_code, error_message AS status_detail,
  named_struct('uid', event_uid, 'original_uid', source_event_id, 'correlation_uid', request_id,
    'version', '1.1.0', 'log_name', source_format,
    'product', named_struct('name', 'vigil', 'vendor_name', 'vigil')) AS metadata,
  named_struct(
    'user', named_struct('uid', actor_id, 'name', actor_name, 'type', actor_type,
      'credential_uid', credential_id, 'groups', actor_groups),
    'session', named_struct('issuer', actor_role, 'is_mfa', mfa),
    'invoked_by', via_service) AS actor,
  named_struct('operation', operation, 'service', named_struct('name', service),
    'request', named_struct('uid', request_id),
    'response', named_struct('error', status_code, 'message', error_message)) AS api,
  named_struct('ip', src_ip, 'domain', src_host) AS src_endpoint,
  named_struct('user_agent', user_agent) AS http_request,
  named_struct('code', http_status) AS http_response,
  make_array(named_struct('uid', resource_id, 'name', resource_name, 'type', resource_type,
    'version', resource_version)) AS resources,
  named_struct('provider', source, 'region', region, 'account', named_struct('uid', tenant)) AS cloud,
  raw_event AS raw_data,
  is_secret_read, source, date
FROM events";

/// Names of the tables and views a query can use.
pub const TABLES: &str = "events, event_counts, client_counts, principal_counts, principals, secret_reads, ocsf_api_activity, findings, finding_history";

/// Lets `ctx` read the files of a store on object storage (a local store needs nothing).
pub fn register_object_store(ctx: &SessionContext, store: &Store) {
    if let Some(remote) = store.remote() {
        ctx.runtime_env().register_object_store(
            store.object_store_url().as_ref(),
            Arc::clone(&remote.client),
        );
    }
}

/// A session whose catalog holds table `events` (from the commit log), the views and the
/// functions of `udf`, with the memory limit of `[query]`.
pub async fn session(store: &Store, config: &QuerySettings) -> Result<SessionContext, QueryError> {
    let log = store.log()?;
    // A torn newest commit (a crash) is read past with a warning; a log damaged before its end,
    // or a commit edited to stop chaining, would silently hide every later event from queries,
    // reports and detection: refuse it.
    if log.damaged_before_end() {
        return Err(StoreError::Damaged(log.warnings.join("; ")).into());
    }
    for w in &log.warnings {
        eprintln!("warning: {w}");
    }
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_pool(Arc::new(FairSpillPool::new(config.memory_limit)))
        .build_arc()?;
    let session_config = SessionConfig::new().with_information_schema(true);
    let ctx = SessionContext::new_with_config_rt(session_config, runtime);
    register_object_store(&ctx, store);
    udf::register_all(&ctx, config);
    let events = Arc::new(EventsTable::from_log(store, &log)?);
    ctx.register_table("events", Arc::clone(&events) as _)?;
    ctx.register_table(
        "event_counts",
        Arc::new(CountsTable::new(Arc::clone(&events), Kind::Hourly)),
    )?;
    ctx.register_table(
        "client_counts",
        Arc::new(CountsTable::new(Arc::clone(&events), Kind::Clients)),
    )?;
    ctx.register_table(
        "principal_counts",
        Arc::new(CountsTable::new(events, Kind::Principals)),
    )?;
    for (name, sql) in VIEWS {
        let view = ctx.sql(sql).await?.into_view();
        ctx.register_table(name, view)?;
    }
    findings_table::register(&ctx, store, &log).await?;
    Ok(ctx)
}

/// Limits one query runs under.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub timeout: Duration,
    /// Also the cap on the size of a collected result.
    pub memory: usize,
}

/// What queries need of the configuration (assembled by `crate::config`): `[query]`'s limits,
/// and what the team says of its estate, which the `vigil_*` functions apply.
#[derive(Debug, Clone, PartialEq)]
pub struct QuerySettings {
    /// Memory one query may use before it spills and then fails.
    pub memory_limit: usize,
    pub timeout: Duration,
    pub calendar: Calendar,
    pub environments: Environments,
    /// `[[peer_groups]]`: principals a team says belong together (besides those derived).
    pub peer_groups: PeerGroups,
    /// `[canaries] resources`: wildcard patterns on `resource_id` / `resource_name`.
    pub canaries: Vec<String>,
}

impl Default for QuerySettings {
    fn default() -> Self {
        QuerySettings {
            memory_limit: 2 << 30,
            timeout: Duration::from_secs(120),
            calendar: Calendar::default(),
            environments: Environments::default(),
            peer_groups: PeerGroups::default(),
            canaries: Vec::new(),
        }
    }
}

impl QuerySettings {
    pub fn limits(&self) -> Limits {
        Limits {
            timeout: self.timeout,
            memory: self.memory_limit,
        }
    }
}

/// Refuses anything but a single query (or `EXPLAIN` of one): no DDL, DML, `COPY`, `SET` or
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
        // EXPLAIN (ANALYZE) of a query: shows the plan (and runs the query, under the limits).
        DFStatement::Explain(e) => match e.statement.as_ref() {
            DFStatement::Statement(inner) if matches!(inner.as_ref(), Statement::Query(_)) => {
                return Ok(())
            }
            _ => {
                return Err(QueryError::Refused(
                    "EXPLAIN is allowed only of a SELECT query over events and its views".into(),
                ))
            }
        },
        DFStatement::Reset(_) => {
            return Err(QueryError::Refused(
                "this statement is not allowed; only SELECT queries over events and its views"
                    .into(),
            ))
        }
    };
    match statement {
        Statement::Query(_) => Ok(()),
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

/// Plans one read-only query, with `params` bound to its `$name` placeholders (values never
/// become SQL text).
pub async fn plan(
    ctx: &SessionContext,
    sql: &str,
    params: Option<ParamValues>,
) -> Result<DataFrame, QueryError> {
    check_read_only(sql)?;
    let options = datafusion::execution::context::SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    let df = ctx
        .sql_with_options(sql, options)
        .await
        .map_err(explain_error)?;
    match params {
        Some(p) => Ok(df.with_param_values(p).map_err(explain_error)?),
        None => Ok(df),
    }
}

/// A batch whose string views own just their strings. A view column of a result points into
/// the Parquet buffers it was decoded from, and its memory size counts those whole buffers: a
/// small result could keep them alive and fail the result-size limit.
fn compact_views(batch: RecordBatch) -> Result<RecordBatch, DataFusionError> {
    if !batch
        .columns()
        .iter()
        .any(|c| c.as_string_view_opt().is_some())
    {
        return Ok(batch);
    }
    let columns = batch
        .columns()
        .iter()
        .map(|c| match c.as_string_view_opt() {
            Some(v) => Arc::new(v.gc()) as ArrayRef,
            None => Arc::clone(c),
        })
        .collect();
    Ok(RecordBatch::try_new(batch.schema(), columns)?)
}

/// Runs a planned query to the end under `limits`: stops at the timeout, and when the result
/// itself outgrows the memory limit (the memory pool bounds the operators, not what is kept).
pub async fn collect(df: DataFrame, limits: Limits) -> Result<Vec<RecordBatch>, QueryError> {
    let work = async {
        let mut stream = df
            .execute_stream()
            .await
            .map_err(|e| resources(e, limits))?;
        let schema = stream.schema();
        let mut batches = Vec::new();
        let mut bytes = 0usize;
        while let Some(batch) = stream.next().await {
            let batch = compact_views(batch.map_err(|e| resources(e, limits))?)?;
            bytes += batch.get_array_memory_size();
            if bytes > limits.memory {
                return Err(QueryError::Memory {
                    limit: limits.memory,
                    detail: "the result alone is larger; add a LIMIT or aggregate".into(),
                });
            }
            batches.push(batch);
        }
        // An empty result still has columns: writers print the header.
        if batches.is_empty() {
            batches.push(RecordBatch::new_empty(schema));
        }
        Ok(batches)
    };
    // The deadline is kept by a thread of its own: the runtime's timer is driven by its worker
    // threads, which a CPU-bound query keeps busy, so a tokio timeout fired many seconds late.
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let timeout = limits.timeout;
    std::thread::spawn(move || {
        std::thread::sleep(timeout);
        let _ = tx.send(());
    });
    tokio::select! {
        r = work => r,
        _ = rx => Err(QueryError::Timeout(limits.timeout)),
    }
}

fn resources(e: DataFusionError, limits: Limits) -> QueryError {
    let text = e.to_string();
    if text.contains("Resources exhausted") || text.contains("ResourcesExhausted") {
        let first = text.lines().next().unwrap_or("").to_owned();
        return QueryError::Memory {
            limit: limits.memory,
            detail: first,
        };
    }
    QueryError::DataFusion(e)
}

/// Runs one read-only query and collects its batches.
pub async fn run_sql(
    ctx: &SessionContext,
    sql: &str,
    limits: Limits,
) -> Result<Vec<RecordBatch>, QueryError> {
    collect(plan(ctx, sql, None).await?, limits).await
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
            "table '{name}' not found; the tables are {TABLES} (file paths cannot be queried)"
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
