//! The client rollup of a data file: its events counted per hour, principal, source address and
//! user agent (table `client_counts`).
//!
//! The first-seen network (VG003) and user-agent (VG004) detectors compare a window's callers
//! with every address and client each principal used over weeks of history; on generated data
//! a day of 333 k events has 1,565 such groups, so that history costs what the principals cost,
//! not what the events cost.

use std::collections::BTreeMap;

use foldhash::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, Int64Builder, RecordBatch, StringArray, StringBuilder, TimestampNanosecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::error::ArrowError;

use super::{counts, finish_utc, hour_runs, opt, strings, times, utc};

/// The grouping columns, in file order (after `hour`).
pub const KEY_COLUMNS: [&str; 3] = ["actor_id", "src_ip", "user_agent"];

pub fn file_schema() -> SchemaRef {
    let s = |n: &str| Field::new(n, DataType::Utf8, true);
    Arc::new(Schema::new(vec![
        Field::new("hour", utc(), true),
        s("actor_id"),
        s("src_ip"),
        s("user_agent"),
        Field::new("events", DataType::Int64, true),
        Field::new("first_time", utc(), true),
        Field::new("last_time", utc(), true),
    ]))
}

type Key<'a> = (Option<&'a str>, Option<&'a str>, Option<&'a str>);

#[derive(Debug, Clone, Copy)]
struct Group {
    events: i64,
    first: i64,
    last: i64,
}

impl Group {
    fn add(&mut self, events: i64, first: i64, last: i64) {
        self.events += events;
        self.first = self.first.min(first);
        self.last = self.last.max(last);
    }
}

struct KeyColumns<'a>([&'a StringArray; 3]);

impl<'a> KeyColumns<'a> {
    fn of(batch: &'a RecordBatch) -> Result<Self, ArrowError> {
        Ok(KeyColumns([
            strings(batch, KEY_COLUMNS[0])?,
            strings(batch, KEY_COLUMNS[1])?,
            strings(batch, KEY_COLUMNS[2])?,
        ]))
    }

    fn key(&self, i: usize) -> Key<'a> {
        (opt(self.0[0], i), opt(self.0[1], i), opt(self.0[2], i))
    }
}

const EMPTY: Group = Group {
    events: 0,
    first: i64::MAX,
    last: i64::MIN,
};

/// See [`super::Kind::of_batch`].
pub fn of_batch(batch: &RecordBatch) -> Result<RecordBatch, ArrowError> {
    let times = times(batch, "event_time")?;
    let keys = KeyColumns::of(batch)?;
    let mut out = Builders::default();
    let mut groups: HashMap<Key, Group> = HashMap::default();
    for (hour, rows) in hour_runs(times.values()) {
        for i in rows {
            let t = times.value(i);
            groups.entry(keys.key(i)).or_insert(EMPTY).add(1, t, t);
        }
        out.append_hour(hour, &mut groups);
    }
    out.finish()
}

/// See [`super::Kind::merge`].
pub fn merge(parts: &[RecordBatch]) -> Result<RecordBatch, ArrowError> {
    let mut groups: BTreeMap<(i64, Key), Group> = BTreeMap::new();
    for part in parts {
        let (hour, first, last) = (
            times(part, "hour")?,
            times(part, "first_time")?,
            times(part, "last_time")?,
        );
        let events = counts(part)?;
        let keys = KeyColumns::of(part)?;
        for i in 0..part.num_rows() {
            groups
                .entry((hour.value(i), keys.key(i)))
                .or_insert(EMPTY)
                .add(events.value(i), first.value(i), last.value(i));
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
    keys: [StringBuilder; 3],
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

    fn append(&mut self, hour: i64, (actor, ip, agent): Key, g: &Group) {
        self.hour.append_value(hour);
        self.keys[0].append_option(actor);
        self.keys[1].append_option(ip);
        self.keys[2].append_option(agent);
        self.events.append_value(g.events);
        self.first.append_value(g.first);
        self.last.append_value(g.last);
    }

    fn finish(mut self) -> Result<RecordBatch, ArrowError> {
        let mut columns: Vec<ArrayRef> = vec![finish_utc(&mut self.hour)];
        for k in &mut self.keys {
            columns.push(Arc::new(k.finish()));
        }
        columns.push(Arc::new(self.events.finish()));
        columns.push(finish_utc(&mut self.first));
        columns.push(finish_utc(&mut self.last));
        RecordBatch::try_new(file_schema(), columns)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::batch;
    use super::super::{Kind, NANOS_PER_HOUR};
    use super::*;
    use crate::event::{Event, SourceKind};
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::{Int64Type, TimestampNanosecondType};

    fn call(t: i64, actor: &str, ip: Option<&str>, agent: Option<&str>) -> Event {
        let mut e = Event::new(SourceKind::Vault, "vault_audit", format!("u{t}{actor}"), t);
        e.actor_id = Some(actor.into());
        e.src_ip = ip.map(str::to_owned);
        e.user_agent = agent.map(str::to_owned);
        e
    }

    #[test]
    fn counts_per_hour_principal_address_and_agent_and_merges_exactly() {
        let h = NANOS_PER_HOUR;
        let input = [
            call(10 * h + 5, "a", Some("10.0.0.1"), Some("curl/8")),
            call(10 * h + 7, "a", Some("10.0.0.1"), Some("curl/8")),
            call(10 * h + 9, "a", Some("10.0.0.2"), Some("curl/8")),
            call(10 * h + 9, "a", None, None),
            call(11 * h, "a", Some("10.0.0.1"), Some("curl/8")),
            call(11 * h + 1, "b", Some("10.0.0.1"), Some("vault-cli")),
        ];
        let r = of_batch(&batch(&input)).unwrap();
        let events = r
            .column_by_name("events")
            .unwrap()
            .as_primitive::<Int64Type>();
        // Within an hour, rows sort by key, NULL first.
        assert_eq!(events.values().to_vec(), vec![1, 2, 1, 1, 1]);
        let ip = r.column_by_name("src_ip").unwrap().as_string::<i32>();
        assert!(ip.is_null(0));
        assert_eq!((ip.value(1), ip.value(2)), ("10.0.0.1", "10.0.0.2"));
        let first = r
            .column_by_name("first_time")
            .unwrap()
            .as_primitive::<TimestampNanosecondType>();
        let last = r
            .column_by_name("last_time")
            .unwrap()
            .as_primitive::<TimestampNanosecondType>();
        assert_eq!((first.value(1), last.value(1)), (10 * h + 5, 10 * h + 7));
        // Split anywhere, the merged parts are the rollup of the whole.
        for cut in 1..input.len() {
            let parts = [
                of_batch(&batch(&input[..cut])).unwrap(),
                of_batch(&batch(&input[cut..])).unwrap(),
            ];
            assert_eq!(merge(&parts).unwrap(), r, "cut at {cut}");
        }
        assert_eq!(
            Kind::Clients.path_for("events/source=vault/date=2026-03-02/000001-0000.parquet"),
            "rollups/clients/source=vault/date=2026-03-02/000001-0000.parquet"
        );
    }
}
