//! Query results as rows of named cells: detectors read a few values per row of small
//! aggregates.
//!
//! Rows are read straight from the Arrow result, and every lookup names a column the query
//! has: asking for a column it does not have, or a number from a text column, is a bug in the
//! detector and panics with both names (the detection run reports it as the detector's error)
//! instead of reading as a silent zero. Timestamps keep their nanoseconds beside their text, so
//! times compare as times ([`time`]), not as RFC 3339 text whose fraction length varies.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type, TimeUnit, TimestampNanosecondType};
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::error::DataFusionError;
use datafusion::prelude::SessionContext;

use crate::query::{self, Limits, QueryError};
use crate::timerange::rfc3339;

/// One value of a result row.
#[derive(Debug, Clone, PartialEq)]
enum Cell {
    Null,
    Text(String),
    Number(f64),
    Flag(bool),
    /// UTC nanoseconds, and the text findings show (RFC 3339, fraction digits as needed).
    Time(i64, String),
    List(Vec<String>),
}

/// One row of a detector query's result.
#[derive(Debug, Clone)]
pub struct Row {
    columns: Arc<[String]>,
    cells: Vec<Cell>,
}

impl Row {
    fn cell(&self, key: &str) -> &Cell {
        match self.columns.iter().position(|c| c == key) {
            Some(i) => &self.cells[i],
            None => panic!(
                "detector query result has no column `{key}` (it has {})",
                self.columns.join(", ")
            ),
        }
    }
}

/// Runs `sql` with named parameters bound (`$from`, `$to`, ...) and returns its rows.
pub async fn rows(
    ctx: &SessionContext,
    sql: &str,
    params: Vec<(&str, ScalarValue)>,
    limits: Limits,
) -> Result<Vec<Row>, QueryError> {
    let mut out = Vec::new();
    for batch in batches(ctx, sql, params, limits).await? {
        out.extend(from_batch(&batch)?);
    }
    Ok(out)
}

fn from_batch(batch: &RecordBatch) -> Result<Vec<Row>, QueryError> {
    let columns: Arc<[String]> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let cells = batch
        .columns()
        .iter()
        .map(cells)
        .collect::<Result<Vec<_>, _>>()?;
    Ok((0..batch.num_rows())
        .map(|i| Row {
            columns: Arc::clone(&columns),
            cells: cells.iter().map(|c| c[i].clone()).collect(),
        })
        .collect())
}

fn arrow_error(e: datafusion::arrow::error::ArrowError) -> QueryError {
    QueryError::DataFusion(DataFusionError::from(e))
}

/// The cells of one result column.
fn cells(col: &ArrayRef) -> Result<Vec<Cell>, QueryError> {
    let valid = |i: usize| col.is_valid(i);
    let n = col.len();
    let out = match col.data_type() {
        DataType::Null => vec![Cell::Null; n],
        DataType::Boolean => {
            let a = col.as_boolean();
            (0..n)
                .map(|i| {
                    if valid(i) {
                        Cell::Flag(a.value(i))
                    } else {
                        Cell::Null
                    }
                })
                .collect()
        }
        t if t.is_numeric() => {
            let a = cast(col, &DataType::Float64).map_err(arrow_error)?;
            let a = a.as_primitive::<Float64Type>();
            (0..n)
                .map(|i| {
                    if valid(i) {
                        Cell::Number(a.value(i))
                    } else {
                        Cell::Null
                    }
                })
                .collect()
        }
        DataType::Timestamp(_, _) => {
            let a = cast(
                col,
                &DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
            )
            .map_err(arrow_error)?;
            let a = a.as_primitive::<TimestampNanosecondType>();
            (0..n)
                .map(|i| {
                    if valid(i) {
                        Cell::Time(a.value(i), rfc3339(a.value(i)))
                    } else {
                        Cell::Null
                    }
                })
                .collect()
        }
        DataType::List(_) | DataType::LargeList(_) => {
            let item = datafusion::arrow::datatypes::Field::new("item", DataType::Utf8, true);
            let a = cast(col, &DataType::List(Arc::new(item))).map_err(arrow_error)?;
            let a = a.as_list::<i32>();
            (0..n)
                .map(|i| {
                    if !valid(i) {
                        return Cell::Null;
                    }
                    let v = a.value(i);
                    let v = v.as_string::<i32>();
                    Cell::List(
                        (0..v.len())
                            .filter(|j| v.is_valid(*j))
                            .map(|j| v.value(j).to_owned())
                            .collect(),
                    )
                })
                .collect()
        }
        _ => {
            let a = cast(col, &DataType::Utf8).map_err(arrow_error)?;
            let a = a.as_string::<i32>();
            (0..n)
                .map(|i| {
                    if valid(i) {
                        Cell::Text(a.value(i).to_owned())
                    } else {
                        Cell::Null
                    }
                })
                .collect()
        }
    };
    Ok(out)
}

pub fn ts(nanos: i64) -> ScalarValue {
    ScalarValue::TimestampNanosecond(Some(nanos), Some("UTC".into()))
}

pub fn int(v: f64) -> ScalarValue {
    ScalarValue::Int64(Some(v as i64))
}

/// A text column's value (a timestamp's RFC 3339 text); `None` when null.
pub fn s<'a>(row: &'a Row, key: &str) -> Option<&'a str> {
    match row.cell(key) {
        Cell::Null => None,
        Cell::Text(t) | Cell::Time(_, t) => Some(t),
        other => panic!("detector query column `{key}` is {other:?}, not text"),
    }
}

/// A numeric column's value, 0 when null (an aggregate over no rows).
pub fn n(row: &Row, key: &str) -> f64 {
    match row.cell(key) {
        Cell::Null => 0.0,
        Cell::Number(v) => *v,
        other => panic!("detector query column `{key}` is {other:?}, not a number"),
    }
}

/// A timestamp column's value in UTC nanoseconds; `None` when null.
pub fn time(row: &Row, key: &str) -> Option<i64> {
    match row.cell(key) {
        Cell::Null => None,
        Cell::Time(t, _) => Some(*t),
        other => panic!("detector query column `{key}` is {other:?}, not a timestamp"),
    }
}

/// A boolean column's value; `None` when null.
pub fn flag(row: &Row, key: &str) -> Option<bool> {
    match row.cell(key) {
        Cell::Null => None,
        Cell::Flag(b) => Some(*b),
        other => panic!("detector query column `{key}` is {other:?}, not a boolean"),
    }
}

pub fn text(row: &Row, key: &str) -> String {
    s(row, key).unwrap_or("").to_owned()
}

/// A list column as strings, sorted and without repeats (findings list resources in a stable
/// order whatever order the aggregation produced).
pub fn list(row: &Row, key: &str) -> Vec<String> {
    let mut out = match row.cell(key) {
        Cell::Null => Vec::new(),
        Cell::List(items) => items.clone(),
        other => panic!("detector query column `{key}` is {other:?}, not a list"),
    };
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

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{
        BooleanArray, Int64Array, ListBuilder, StringBuilder, StringViewArray,
        TimestampNanosecondArray,
    };

    fn row() -> Row {
        let mut list = ListBuilder::new(StringBuilder::new());
        list.values().append_value("b");
        list.values().append_value("a");
        list.values().append_value("b");
        list.append(true);
        let batch = RecordBatch::try_from_iter([
            (
                "actor_id",
                Arc::new(StringViewArray::from(vec!["alice"])) as ArrayRef,
            ),
            (
                "reads",
                Arc::new(Int64Array::from(vec![Some(7)])) as ArrayRef,
            ),
            (
                "none",
                Arc::new(Int64Array::from(vec![None::<i64>])) as ArrayRef,
            ),
            ("seen", Arc::new(BooleanArray::from(vec![true])) as ArrayRef),
            (
                "first",
                Arc::new(
                    TimestampNanosecondArray::from(vec![1_772_805_900_500_000_000])
                        .with_timezone("UTC"),
                ) as ArrayRef,
            ),
            ("resources", Arc::new(list.finish()) as ArrayRef),
        ])
        .unwrap();
        from_batch(&batch).unwrap().remove(0)
    }

    #[test]
    fn cells_keep_their_types() {
        let r = row();
        assert_eq!(s(&r, "actor_id"), Some("alice"));
        assert_eq!(n(&r, "reads"), 7.0);
        assert_eq!(n(&r, "none"), 0.0);
        assert_eq!(flag(&r, "seen"), Some(true));
        assert_eq!(time(&r, "first"), Some(1_772_805_900_500_000_000));
        assert_eq!(s(&r, "first"), Some("2026-03-06T14:05:00.500Z"));
        assert_eq!(list(&r, "resources"), ["a", "b"]);
    }

    #[test]
    #[should_panic(expected = "no column `reeds`")]
    fn a_missing_column_is_loud() {
        n(&row(), "reeds");
    }

    #[test]
    #[should_panic(expected = "not a number")]
    fn a_number_read_from_text_is_loud() {
        n(&row(), "actor_id");
    }
}
