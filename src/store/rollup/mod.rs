//! Rollups: beside each data file, small Parquet files that count its events per hour and key.
//!
//! Reports and baselines mostly ask "how many, first and last, per principal and secret" or "from
//! which addresses and clients": over a month of history that is millions of events but only tens
//! of thousands of groups (5 M generated events: 228 k hourly groups; 1,565 client groups a day
//! for 333 k events). A data file's rollups are computed from the same sorted batch when the file
//! is written and are listed in the same commit, each with its own SHA-256, so they are exactly
//! as durable and as verifiable as the data; sums over several files' rollups are right because
//! an event is stored once (dedupe). A data file without a rollup of some kind (written by an
//! older vigil) is simply counted from its events at query time (`query::counts_table`).
//!
//! Two kinds, one directory each under `rollups/`:
//! - [`Kind::Hourly`] (`hourly`): per hour, principal, secret, action, outcome and whether it is
//!   a secret read; table `event_counts`.
//! - [`Kind::Clients`] (`clients`): per hour, principal, source address and user agent; table
//!   `client_counts`, the history of the first-seen network and user-agent detectors.
//! - [`Kind::Principals`] (`principals`): per hour and principal, with its tenant, type, auth
//!   role and groups; table `principal_counts`, what peer groups are derived from.

mod clients;
mod hourly;
mod principals;

use datafusion::arrow::array::{Array, AsArray, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::array::{PrimitiveArray, TimestampNanosecondBuilder};
use datafusion::arrow::datatypes::TimestampNanosecondType;
use datafusion::arrow::datatypes::{DataType, Int64Type, SchemaRef, TimeUnit};
use datafusion::arrow::error::ArrowError;

/// Directory of the rollups, beside `events/`: `rollups/<kind>/source=S/date=D/<same name>`.
pub const ROLLUPS_DIR: &str = "rollups";
pub use crate::timerange::NANOS_PER_HOUR;

/// A kind of rollup: what it groups by and where its files go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Hourly,
    Clients,
    Principals,
}

impl Kind {
    /// Every kind, in the order a data file's rollups are written.
    pub const ALL: [Kind; 3] = [Kind::Hourly, Kind::Clients, Kind::Principals];

    fn dir(self) -> &'static str {
        match self {
            Kind::Hourly => "rollups/hourly",
            Kind::Clients => "rollups/clients",
            Kind::Principals => "rollups/principals",
        }
    }

    /// Store-relative path of this rollup of the data file at `data` (`events/...`).
    pub fn path_for(self, data: &str) -> String {
        match data.strip_prefix(super::EVENTS_DIR) {
            Some(rest) => format!("{}{rest}", self.dir()),
            None => format!("{}/{data}", self.dir()),
        }
    }

    /// Schema of a rollup file (the partition columns `source` and `date` are in its path):
    /// `hour`, the key columns, the name columns, `events`, `first_time`, `last_time`. Every
    /// column is nullable so that a count made at query time from events has the same schema.
    pub fn file_schema(self) -> SchemaRef {
        match self {
            Kind::Hourly => hourly::file_schema(),
            Kind::Clients => clients::file_schema(),
            Kind::Principals => principals::file_schema(),
        }
    }

    /// The grouping columns (after `hour`), named as in `events`.
    pub fn key_columns(self) -> &'static [&'static str] {
        match self {
            Kind::Hourly => &hourly::KEY_COLUMNS,
            Kind::Clients => &clients::KEY_COLUMNS,
            Kind::Principals => &principals::KEY_COLUMNS,
        }
    }

    /// Columns of `events` kept per group as their largest value (`max` in SQL).
    pub fn name_columns(self) -> &'static [&'static str] {
        match self {
            Kind::Hourly => &["actor_name", "resource_name"],
            Kind::Clients => &[],
            Kind::Principals => &["actor_name"],
        }
    }

    /// The rollup of a batch of events in the data file schema, sorted by `event_time` (as the
    /// writer sorts it). Rows come out by hour, then by key, so the file is deterministic.
    pub fn of_batch(self, batch: &RecordBatch) -> Result<RecordBatch, ArrowError> {
        match self {
            Kind::Hourly => hourly::of_batch(batch),
            Kind::Clients => clients::of_batch(batch),
            Kind::Principals => principals::of_batch(batch),
        }
    }

    /// One rollup from rollups of disjoint sets of events (the chunks of one compacted file):
    /// rows with the same hour and key are summed, so the result is what [`Kind::of_batch`]
    /// gives for all of their events at once, in the same order.
    pub fn merge(self, parts: &[RecordBatch]) -> Result<RecordBatch, ArrowError> {
        match self {
            Kind::Hourly => hourly::merge(parts),
            Kind::Clients => clients::merge(parts),
            Kind::Principals => principals::merge(parts),
        }
    }
}

/// The start of the UTC hour holding `t` (the `hour` of its rollup row); saturates at the
/// smallest timestamp instead of overflowing.
pub fn hour_start(t: i64) -> i64 {
    t.saturating_sub(t.rem_euclid(NANOS_PER_HOUR))
}

/// The runs of rows of `times` (sorted) that fall in one UTC hour: (hour start, row range).
fn hour_runs(times: &[i64]) -> Vec<(i64, std::ops::Range<usize>)> {
    let mut runs: Vec<(i64, std::ops::Range<usize>)> = Vec::new();
    for (i, t) in times.iter().enumerate() {
        let hour = hour_start(*t);
        match runs.last_mut() {
            Some((h, rows)) if *h == hour => rows.end = i + 1,
            _ => runs.push((hour, i..i + 1)),
        }
    }
    runs
}

/// Rows of a rollup file (of any kind) and the events they count (the sum of `events`): `vigil
/// verify` checks them against the commit, so a rollup that disagrees with its data file is
/// named even when its hash is the one recorded.
pub fn totals(f: super::files::StoreFile) -> Result<(u64, u64), String> {
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use datafusion::parquet::arrow::ProjectionMask;
    let builder = ParquetRecordBatchReaderBuilder::try_new(f).map_err(|e| e.to_string())?;
    let idx = builder
        .schema()
        .index_of("events")
        .map_err(|e| e.to_string())?;
    let mask = ProjectionMask::roots(builder.parquet_schema(), [idx]);
    let (mut rows, mut events) = (0u64, 0u64);
    for batch in builder
        .with_projection(mask)
        .build()
        .map_err(|e| e.to_string())?
    {
        let batch = batch.map_err(|e| e.to_string())?;
        let counts = counts(&batch).map_err(|e| e.to_string())?;
        rows += counts.len() as u64;
        events += counts
            .iter()
            .flatten()
            .map(|n| n.max(0) as u64)
            .sum::<u64>();
    }
    Ok((rows, events))
}

fn utc() -> DataType {
    DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()))
}

fn strings<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a StringArray, ArrowError> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_string_opt::<i32>())
        .ok_or_else(|| ArrowError::SchemaError(format!("no string column {name}")))
}

fn times<'a>(
    batch: &'a RecordBatch,
    name: &str,
) -> Result<&'a PrimitiveArray<TimestampNanosecondType>, ArrowError> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_primitive_opt::<TimestampNanosecondType>())
        .ok_or_else(|| ArrowError::SchemaError(format!("no timestamp column {name}")))
}

/// Column `events` of a rollup batch.
fn counts(batch: &RecordBatch) -> Result<&Int64Array, ArrowError> {
    batch
        .column_by_name("events")
        .and_then(|c| c.as_primitive_opt::<Int64Type>())
        .ok_or_else(|| ArrowError::SchemaError("no events column".into()))
}

fn opt(a: &StringArray, i: usize) -> Option<&str> {
    a.is_valid(i).then(|| a.value(i))
}

/// A timestamp builder's array in UTC.
fn finish_utc(b: &mut TimestampNanosecondBuilder) -> datafusion::arrow::array::ArrayRef {
    std::sync::Arc::new(b.finish().with_timezone("UTC"))
}

#[cfg(test)]
pub(super) mod tests {
    use crate::event::{Event, EventBatchBuilder};
    use datafusion::arrow::array::RecordBatch;

    /// `events` as one batch in the data file schema.
    pub fn batch(events: &[Event]) -> RecordBatch {
        let mut b = EventBatchBuilder::new(0);
        for e in events {
            b.push(e);
        }
        b.finish().unwrap()
    }
}
