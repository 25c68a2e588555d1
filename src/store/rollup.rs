//! Hourly rollups: beside each data file, a small Parquet file that counts its events per hour,
//! principal, secret, action and outcome.
//!
//! Reports and baselines mostly ask "how many, first and last, per principal and secret": over a
//! month of history that is millions of events but only tens of thousands of (hour, principal,
//! secret, action, outcome) groups (5 M generated events: 228 k groups). The rollup of a data file
//! is computed from the same sorted batch when the file is written and is listed in the same
//! commit, with its own SHA-256, so it is exactly as durable and as verifiable as the data; sums
//! over several files' rollups are right because an event is stored once (dedupe). A data file
//! without a rollup (written by an older vigil) is simply counted from its events at query time
//! (`query::counts_table`).

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanBuilder, Int64Builder, RecordBatch, StringArray,
    StringBuilder, TimestampNanosecondBuilder,
};
use datafusion::arrow::datatypes::TimestampNanosecondType;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::error::ArrowError;

/// Directory of the rollups, beside `events/`: `rollups/hourly/source=S/date=D/<same name>`.
pub const ROLLUPS_DIR: &str = "rollups";
const HOURLY: &str = "rollups/hourly";
pub const NANOS_PER_HOUR: i64 = 3_600_000_000_000;

/// The start of the UTC hour holding `t` (the `hour` of its rollup row); saturates at the
/// smallest timestamp instead of overflowing.
pub fn hour_start(t: i64) -> i64 {
    t.saturating_sub(t.rem_euclid(NANOS_PER_HOUR))
}

/// The grouping columns, in file order (after `hour`).
pub const KEY_COLUMNS: [&str; 7] = [
    "actor_id",
    "actor_type",
    "resource_id",
    "resource_type",
    "action",
    "outcome",
    "is_secret_read",
];

/// Store-relative path of the rollup of the data file at `data` (`events/...`).
pub fn path_for(data: &str) -> String {
    match data.strip_prefix(super::EVENTS_DIR) {
        Some(rest) => format!("{HOURLY}{rest}"),
        None => format!("{HOURLY}/{data}"),
    }
}

fn utc() -> DataType {
    DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()))
}

/// Schema of a rollup file (the partition columns `source` and `date` are in its path). Every
/// column is nullable so that a count made at query time from events has the same schema.
pub fn file_schema() -> SchemaRef {
    let s = |n: &str| Field::new(n, DataType::Utf8, true);
    Arc::new(Schema::new(vec![
        Field::new("hour", utc(), true),
        s("actor_id"),
        s("actor_type"),
        s("resource_id"),
        s("resource_type"),
        s("action"),
        s("outcome"),
        Field::new("is_secret_read", DataType::Boolean, true),
        s("actor_name"),
        s("resource_name"),
        Field::new("events", DataType::Int64, true),
        Field::new("first_time", utc(), true),
        Field::new("last_time", utc(), true),
    ]))
}

/// Rows of a rollup file and the events they count (the sum of `events`): `vigil verify` checks
/// them against the commit, so a rollup that disagrees with its data file is named even when
/// its hash is the one recorded.
pub fn totals(path: &std::path::Path) -> Result<(u64, u64), String> {
    use datafusion::arrow::datatypes::Int64Type;
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use datafusion::parquet::arrow::ProjectionMask;
    let f = std::fs::File::open(path).map_err(|e| e.to_string())?;
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
        let counts = batch
            .column(0)
            .as_primitive_opt::<Int64Type>()
            .ok_or("column events is not Int64")?;
        rows += counts.len() as u64;
        events += counts
            .iter()
            .flatten()
            .map(|n| n.max(0) as u64)
            .sum::<u64>();
    }
    Ok((rows, events))
}

#[derive(Debug, Clone, Copy)]
struct Group<'a> {
    actor_name: Option<&'a str>,
    resource_name: Option<&'a str>,
    events: i64,
    first: i64,
    last: i64,
}

type Key<'a> = (
    Option<&'a str>,
    &'a str,
    Option<&'a str>,
    &'a str,
    &'a str,
    &'a str,
    bool,
);

/// The grouping columns of a batch (events or rollup rows: the same names).
struct KeyColumns<'a> {
    actor_id: &'a StringArray,
    actor_type: &'a StringArray,
    resource_id: &'a StringArray,
    resource_type: &'a StringArray,
    action: &'a StringArray,
    outcome: &'a StringArray,
    secret_read: &'a datafusion::arrow::array::BooleanArray,
}

impl<'a> KeyColumns<'a> {
    fn of(batch: &'a RecordBatch) -> Result<Self, ArrowError> {
        Ok(KeyColumns {
            actor_id: strings(batch, "actor_id")?,
            actor_type: strings(batch, "actor_type")?,
            resource_id: strings(batch, "resource_id")?,
            resource_type: strings(batch, "resource_type")?,
            action: strings(batch, "action")?,
            outcome: strings(batch, "outcome")?,
            secret_read: batch
                .column_by_name("is_secret_read")
                .and_then(|c| c.as_boolean_opt())
                .ok_or_else(|| ArrowError::SchemaError("no is_secret_read column".into()))?,
        })
    }

    fn key(&self, i: usize) -> Key<'a> {
        (
            opt(self.actor_id, i),
            self.actor_type.value(i),
            opt(self.resource_id, i),
            self.resource_type.value(i),
            self.action.value(i),
            self.outcome.value(i),
            self.secret_read.is_valid(i) && self.secret_read.value(i),
        )
    }
}

fn strings<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a StringArray, ArrowError> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_string_opt::<i32>())
        .ok_or_else(|| ArrowError::SchemaError(format!("no string column {name}")))
}

fn opt(a: &StringArray, i: usize) -> Option<&str> {
    a.is_valid(i).then(|| a.value(i))
}

/// The larger of two optional names (`max` in SQL: NULL only when both are).
fn max_name<'a>(a: Option<&'a str>, b: Option<&'a str>) -> Option<&'a str> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

/// The hourly rollup of a batch of events in the data file schema, sorted by `event_time`
/// (as the writer sorts it). Rows come out by hour, then by key, so the file is deterministic.
pub fn hourly(batch: &RecordBatch) -> Result<RecordBatch, ArrowError> {
    let times = batch
        .column_by_name("event_time")
        .and_then(|c| c.as_primitive_opt::<TimestampNanosecondType>())
        .ok_or_else(|| ArrowError::SchemaError("no event_time column".into()))?;
    let keys = KeyColumns::of(batch)?;
    let actor_name = strings(batch, "actor_name")?;
    let resource_name = strings(batch, "resource_name")?;

    let mut out = Builders::default();
    let mut groups: HashMap<Key, Group> = HashMap::new();
    let mut current_hour = None;
    for i in 0..batch.num_rows() {
        let t = times.value(i);
        let hour = hour_start(t);
        if current_hour != Some(hour) {
            if let Some(h) = current_hour {
                out.append_hour(h, &mut groups);
            }
            current_hour = Some(hour);
        }
        let g = groups.entry(keys.key(i)).or_insert(Group {
            actor_name: None,
            resource_name: None,
            events: 0,
            first: t,
            last: t,
        });
        g.actor_name = max_name(g.actor_name, opt(actor_name, i));
        g.resource_name = max_name(g.resource_name, opt(resource_name, i));
        g.events += 1;
        g.first = g.first.min(t);
        g.last = g.last.max(t);
    }
    if let Some(h) = current_hour {
        out.append_hour(h, &mut groups);
    }
    out.finish()
}

/// One rollup from rollups of disjoint sets of events (the chunks of one compacted file): rows
/// with the same hour and key are summed, so the result is what [`hourly`] gives for all of
/// their events at once, in the same order.
pub fn merge(parts: &[RecordBatch]) -> Result<RecordBatch, ArrowError> {
    use datafusion::arrow::datatypes::Int64Type;
    let mut groups: std::collections::BTreeMap<(i64, Key), Group> = Default::default();
    for part in parts {
        let time = |name: &str| {
            part.column_by_name(name)
                .and_then(|c| c.as_primitive_opt::<TimestampNanosecondType>())
                .ok_or_else(|| ArrowError::SchemaError(format!("no timestamp column {name}")))
        };
        let (hour, first, last) = (time("hour")?, time("first_time")?, time("last_time")?);
        let events = part
            .column_by_name("events")
            .and_then(|c| c.as_primitive_opt::<Int64Type>())
            .ok_or_else(|| ArrowError::SchemaError("no events column".into()))?;
        let keys = KeyColumns::of(part)?;
        let actor_name = strings(part, "actor_name")?;
        let resource_name = strings(part, "resource_name")?;
        for i in 0..part.num_rows() {
            let g = groups.entry((hour.value(i), keys.key(i))).or_insert(Group {
                actor_name: None,
                resource_name: None,
                events: 0,
                first: first.value(i),
                last: last.value(i),
            });
            g.actor_name = max_name(g.actor_name, opt(actor_name, i));
            g.resource_name = max_name(g.resource_name, opt(resource_name, i));
            g.events += events.value(i);
            g.first = g.first.min(first.value(i));
            g.last = g.last.max(last.value(i));
        }
    }
    let mut out = Builders::default();
    for ((hour, key), g) in &groups {
        out.append(*hour, *key, g);
    }
    out.finish()
}

#[derive(Default)]
struct Builders {
    hour: TimestampNanosecondBuilder,
    keys: [StringBuilder; 6],
    secret_read: BooleanBuilder,
    actor_name: StringBuilder,
    resource_name: StringBuilder,
    events: Int64Builder,
    first: TimestampNanosecondBuilder,
    last: TimestampNanosecondBuilder,
}

impl Builders {
    fn append_hour(&mut self, hour: i64, groups: &mut HashMap<Key, Group>) {
        let mut rows: Vec<_> = groups.drain().collect();
        rows.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        for (key, g) in rows {
            self.append(hour, key, &g);
        }
    }

    fn append(&mut self, hour: i64, key: Key, g: &Group) {
        let (aid, atype, rid, rtype, action, outcome, read) = key;
        self.hour.append_value(hour);
        self.keys[0].append_option(aid);
        self.keys[1].append_value(atype);
        self.keys[2].append_option(rid);
        self.keys[3].append_value(rtype);
        self.keys[4].append_value(action);
        self.keys[5].append_value(outcome);
        self.secret_read.append_value(read);
        self.actor_name.append_option(g.actor_name);
        self.resource_name.append_option(g.resource_name);
        self.events.append_value(g.events);
        self.first.append_value(g.first);
        self.last.append_value(g.last);
    }

    fn finish(mut self) -> Result<RecordBatch, ArrowError> {
        let ts = |b: &mut TimestampNanosecondBuilder| -> ArrayRef {
            Arc::new(b.finish().with_timezone("UTC"))
        };
        let mut columns: Vec<ArrayRef> = vec![ts(&mut self.hour)];
        for k in &mut self.keys {
            columns.push(Arc::new(k.finish()));
        }
        columns.push(Arc::new(self.secret_read.finish()));
        columns.push(Arc::new(self.actor_name.finish()));
        columns.push(Arc::new(self.resource_name.finish()));
        columns.push(Arc::new(self.events.finish()));
        columns.push(ts(&mut self.first));
        columns.push(ts(&mut self.last));
        RecordBatch::try_new(file_schema(), columns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Action, ActorType, Event, EventBatchBuilder, Outcome, SourceKind};

    fn read(t: i64, actor: &str, name: &str, secret: &str, outcome: Outcome) -> Event {
        let mut e = Event::new(SourceKind::Vault, "vault_audit", format!("u{t}{actor}"), t);
        e.action = Action::Read;
        e.is_secret_read = true;
        e.outcome = outcome;
        e.actor_type = ActorType::Workload;
        e.actor_id = Some(actor.into());
        e.actor_name = Some(name.into());
        e.resource_id = Some(secret.into());
        e
    }

    #[test]
    fn counts_per_hour_and_key_with_first_last_and_largest_name() {
        let h = NANOS_PER_HOUR;
        let input = [
            read(10 * h + 5, "a", "alpha", "s1", Outcome::Success),
            read(10 * h + 7, "a", "alpha-2", "s1", Outcome::Success),
            read(10 * h + 9, "a", "alpha", "s1", Outcome::Denied),
            read(11 * h, "a", "alpha", "s1", Outcome::Success),
            read(11 * h + 1, "b", "beta", "s1", Outcome::Success),
        ];
        let mut b = EventBatchBuilder::new(0);
        for e in &input {
            b.push(e);
        }
        let r = hourly(&b.finish().unwrap()).unwrap();
        assert_eq!(r.num_rows(), 4);
        let events = r
            .column_by_name("events")
            .unwrap()
            .as_primitive::<datafusion::arrow::datatypes::Int64Type>();
        // Within an hour, rows sort by key: "denied" before "success".
        assert_eq!(events.values().to_vec(), vec![1, 2, 1, 1]);
        let outcome = r.column_by_name("outcome").unwrap().as_string::<i32>();
        assert_eq!(outcome.value(0), "denied");
        assert_eq!(outcome.value(1), "success");
        let name = r.column_by_name("actor_name").unwrap().as_string::<i32>();
        assert_eq!(name.value(1), "alpha-2");
        let first = r
            .column_by_name("first_time")
            .unwrap()
            .as_primitive::<TimestampNanosecondType>();
        let last = r
            .column_by_name("last_time")
            .unwrap()
            .as_primitive::<TimestampNanosecondType>();
        assert_eq!((first.value(1), last.value(1)), (10 * h + 5, 10 * h + 7));
        let hour = r
            .column_by_name("hour")
            .unwrap()
            .as_primitive::<TimestampNanosecondType>();
        assert_eq!(hour.values().to_vec(), vec![10 * h, 10 * h, 11 * h, 11 * h]);
        // The rollups of two parts that split a group, merged, are the rollup of the whole.
        let (mut first_half, mut second_half) =
            (EventBatchBuilder::new(0), EventBatchBuilder::new(0));
        for (i, e) in input.iter().enumerate() {
            if i < 1 {
                &mut first_half
            } else {
                &mut second_half
            }
            .push(e);
        }
        let parts = [
            hourly(&first_half.finish().unwrap()).unwrap(),
            hourly(&second_half.finish().unwrap()).unwrap(),
        ];
        assert_eq!(parts[0].num_rows() + parts[1].num_rows(), 5);
        assert_eq!(merge(&parts).unwrap(), r);
        assert_eq!(
            path_for("events/source=vault/date=2026-03-02/000001-0000.parquet"),
            "rollups/hourly/source=vault/date=2026-03-02/000001-0000.parquet"
        );
    }
}
