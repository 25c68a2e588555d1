//! The hourly rollup of a data file: its events counted per hour, principal, secret, action and
//! outcome (table `event_counts`), with the largest principal and secret name of each group.

use foldhash::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanBuilder, Int64Builder, RecordBatch, StringArray,
    StringBuilder, TimestampNanosecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::error::ArrowError;

use super::{finish_utc, hour_runs, opt, strings, times, utc};

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
pub fn of_batch(batch: &RecordBatch) -> Result<RecordBatch, ArrowError> {
    let times = times(batch, "event_time")?;
    let keys = KeyColumns::of(batch)?;
    let actor_name = strings(batch, "actor_name")?;
    let resource_name = strings(batch, "resource_name")?;

    let mut out = Builders::default();
    let mut groups: HashMap<Key, Group> = HashMap::default();
    for (hour, rows) in hour_runs(times.values()) {
        for i in rows {
            let t = times.value(i);
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
        out.append_hour(hour, &mut groups);
    }
    out.finish()
}

/// One rollup from rollups of disjoint sets of events (the chunks of one compacted file): rows
/// with the same hour and key are summed, so the result is what [`of_batch`] gives for all of
/// their events at once, in the same order.
pub fn merge(parts: &[RecordBatch]) -> Result<RecordBatch, ArrowError> {
    let mut groups: std::collections::BTreeMap<(i64, Key), Group> = Default::default();
    for part in parts {
        let (hour, first, last) = (
            times(part, "hour")?,
            times(part, "first_time")?,
            times(part, "last_time")?,
        );
        let events = super::counts(part)?;
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
        let mut columns: Vec<ArrayRef> = vec![finish_utc(&mut self.hour)];
        for k in &mut self.keys {
            columns.push(Arc::new(k.finish()));
        }
        columns.push(Arc::new(self.secret_read.finish()));
        columns.push(Arc::new(self.actor_name.finish()));
        columns.push(Arc::new(self.resource_name.finish()));
        columns.push(Arc::new(self.events.finish()));
        columns.push(finish_utc(&mut self.first));
        columns.push(finish_utc(&mut self.last));
        RecordBatch::try_new(file_schema(), columns)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Kind, NANOS_PER_HOUR};
    use super::*;
    use crate::event::{Action, ActorType, Event, EventBatchBuilder, Outcome, SourceKind};
    use datafusion::arrow::datatypes::TimestampNanosecondType;

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
        let r = of_batch(&b.finish().unwrap()).unwrap();
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
            of_batch(&first_half.finish().unwrap()).unwrap(),
            of_batch(&second_half.finish().unwrap()).unwrap(),
        ];
        assert_eq!(parts[0].num_rows() + parts[1].num_rows(), 5);
        assert_eq!(merge(&parts).unwrap(), r);
        assert_eq!(
            Kind::Hourly.path_for("events/source=vault/date=2026-03-02/000001-0000.parquet"),
            "rollups/hourly/source=vault/date=2026-03-02/000001-0000.parquet"
        );
    }
}
