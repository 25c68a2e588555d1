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

/// Typed columns of a query result, for detectors that read many rows: a missing column or one
/// of another type is an error naming it, never a silent zero.
pub mod typed {
    use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
    use datafusion::arrow::compute::cast;
    use datafusion::arrow::datatypes::{DataType, TimeUnit};
    use datafusion::error::DataFusionError;

    use crate::query::QueryError;

    fn column(batch: &RecordBatch, name: &str, to: &DataType) -> Result<ArrayRef, QueryError> {
        let col = batch.column_by_name(name).ok_or_else(|| {
            QueryError::DataFusion(DataFusionError::Internal(format!(
                "detector query has no column {name}"
            )))
        })?;
        cast(col, to).map_err(|e| QueryError::DataFusion(DataFusionError::from(e)))
    }

    /// Column `name` as strings (`None` for nulls).
    pub fn strings(batch: &RecordBatch, name: &str) -> Result<Vec<Option<String>>, QueryError> {
        let a = column(batch, name, &DataType::Utf8)?;
        let a = a.as_string::<i32>();
        Ok((0..a.len())
            .map(|i| a.is_valid(i).then(|| a.value(i).to_owned()))
            .collect())
    }

    /// Column `name` as UTC nanoseconds (`None` for nulls).
    pub fn nanos(batch: &RecordBatch, name: &str) -> Result<Vec<Option<i64>>, QueryError> {
        let a = column(
            batch,
            name,
            &DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
        )?;
        let a = a.as_primitive::<datafusion::arrow::datatypes::TimestampNanosecondType>();
        Ok((0..a.len())
            .map(|i| a.is_valid(i).then(|| a.value(i)))
            .collect())
    }

    /// Column `name` as lists of strings (a null list is empty, null items are left out).
    pub fn string_lists(batch: &RecordBatch, name: &str) -> Result<Vec<Vec<String>>, QueryError> {
        let item = datafusion::arrow::datatypes::Field::new("item", DataType::Utf8, true);
        let a = column(batch, name, &DataType::List(std::sync::Arc::new(item)))?;
        let a = a.as_list::<i32>();
        Ok((0..a.len())
            .map(|i| {
                if a.is_null(i) {
                    return Vec::new();
                }
                let v = a.value(i);
                let v = v.as_string::<i32>();
                (0..v.len())
                    .filter(|j| v.is_valid(*j))
                    .map(|j| v.value(j).to_owned())
                    .collect()
            })
            .collect())
    }

    /// Column `name` as integers (`None` for nulls).
    pub fn ints(batch: &RecordBatch, name: &str) -> Result<Vec<Option<i64>>, QueryError> {
        let a = column(batch, name, &DataType::Int64)?;
        let a = a.as_primitive::<datafusion::arrow::datatypes::Int64Type>();
        Ok((0..a.len())
            .map(|i| a.is_valid(i).then(|| a.value(i)))
            .collect())
    }
}

/// Runs `sql` with named parameters bound and returns its record batches.
pub async fn batches(
    ctx: &SessionContext,
    sql: &str,
    params: Vec<(&str, ScalarValue)>,
    limits: Limits,
) -> Result<Vec<datafusion::arrow::array::RecordBatch>, QueryError> {
    let df = query::plan(ctx, sql, Some(ParamValues::from(params))).await?;
    query::collect(df, limits).await
}
