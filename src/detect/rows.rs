//! Query results as JSON rows: detectors read a few named values per row of small aggregates.

use datafusion::common::{ParamValues, ScalarValue};
use datafusion::prelude::SessionContext;
use serde_json::{Map, Value};

use crate::query::{self, Limits, QueryError};

pub type Row = Map<String, Value>;

/// Runs `sql` with named parameters bound (`$from`, `$to`, ...) and returns its rows.
pub async fn rows(
    ctx: &SessionContext,
    sql: &str,
    params: Vec<(&str, ScalarValue)>,
    limits: Limits,
) -> Result<Vec<Row>, QueryError> {
    let df = query::plan(ctx, sql, Some(ParamValues::from(params))).await?;
    let batches = query::collect(df, limits).await?;
    let mut buf = Vec::new();
    crate::report::write_batches(&mut buf, &batches, crate::report::Format::Jsonl).map_err(
        |e| QueryError::DataFusion(datafusion::error::DataFusionError::External(Box::new(e))),
    )?;
    Ok(buf
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .filter_map(|l| serde_json::from_slice::<Map<String, Value>>(l).ok())
        .collect())
}

pub fn ts(nanos: i64) -> ScalarValue {
    ScalarValue::TimestampNanosecond(Some(nanos), Some("UTC".into()))
}

pub fn int(v: f64) -> ScalarValue {
    ScalarValue::Int64(Some(v as i64))
}

pub fn s<'a>(row: &'a Row, key: &str) -> Option<&'a str> {
    row.get(key).and_then(Value::as_str)
}

pub fn n(row: &Row, key: &str) -> f64 {
    row.get(key).and_then(Value::as_f64).unwrap_or(0.0)
}

pub fn text(row: &Row, key: &str) -> String {
    s(row, key).unwrap_or("").to_owned()
}

/// A list column as strings, sorted and without repeats (findings list resources in a stable
/// order whatever order the aggregation produced).
pub fn list(row: &Row, key: &str) -> Vec<String> {
    let mut out: Vec<String> = row
        .get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out.dedup();
    out
}
