//! The principal rollup of a data file: its events counted per hour and principal, with what the
//! log says the principal is (table `principal_counts`): tenant, type, auth role and groups
//! (Vault policies, Kubernetes groups).
//!
//! Peer groups (`crate::peer_groups`) are derived from these attributes, and the first and last
//! time each principal was seen come with them; the whole history of a 250-principal estate is a
//! few thousand rows a day, so the detectors and `vigil sql` read what every principal is
//! without scanning events.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use foldhash::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Int64Builder, ListArray, ListBuilder, RecordBatch, StringArray,
    StringBuilder, TimestampNanosecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::error::ArrowError;

use super::{counts, finish_utc, hour_runs, opt, strings, times, utc};

/// The grouping columns, in file order (after `hour`).
pub const KEY_COLUMNS: [&str; 5] = [
    "actor_id",
    "tenant",
    "actor_type",
    "actor_role",
    "actor_groups",
];

pub fn file_schema() -> SchemaRef {
    let s = |n: &str| Field::new(n, DataType::Utf8, true);
    Arc::new(Schema::new(vec![
        Field::new("hour", utc(), true),
        s("actor_id"),
        s("tenant"),
        s("actor_type"),
        s("actor_role"),
        Field::new(
            "actor_groups",
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
            true,
        ),
        s("actor_name"),
        Field::new("events", DataType::Int64, true),
        Field::new("first_time", utc(), true),
        Field::new("last_time", utc(), true),
    ]))
}

/// The groups of one row, borrowed from the list column: compared and hashed by their items,
/// so grouping needs no copy per event.
#[derive(Clone, Copy)]
struct Groups<'a> {
    items: &'a StringArray,
    start: usize,
    end: usize,
}

impl<'a> Groups<'a> {
    fn iter(&self) -> impl Iterator<Item = Option<&'a str>> + '_ {
        (self.start..self.end).map(|i| opt(self.items, i))
    }
}

impl PartialEq for Groups<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.end - self.start == other.end - other.start && self.iter().eq(other.iter())
    }
}
impl Eq for Groups<'_> {}
impl Hash for Groups<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (self.end - self.start).hash(state);
        for g in self.iter() {
            g.hash(state);
        }
    }
}
impl Ord for Groups<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.iter().cmp(other.iter())
    }
}
impl PartialOrd for Groups<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

type Key<'a> = (
    Option<&'a str>,
    Option<&'a str>,
    Option<&'a str>,
    Option<&'a str>,
    Option<Groups<'a>>,
);

struct KeyColumns<'a> {
    strings: [&'a StringArray; 4],
    groups: &'a ListArray,
    items: &'a StringArray,
}

impl<'a> KeyColumns<'a> {
    fn of(batch: &'a RecordBatch) -> Result<Self, ArrowError> {
        let groups = batch
            .column_by_name("actor_groups")
            .and_then(|c| c.as_list_opt::<i32>())
            .ok_or_else(|| ArrowError::SchemaError("no list column actor_groups".into()))?;
        let items = groups
            .values()
            .as_string_opt::<i32>()
            .ok_or_else(|| ArrowError::SchemaError("actor_groups holds no strings".into()))?;
        Ok(KeyColumns {
            strings: [
                strings(batch, KEY_COLUMNS[0])?,
                strings(batch, KEY_COLUMNS[1])?,
                strings(batch, KEY_COLUMNS[2])?,
                strings(batch, KEY_COLUMNS[3])?,
            ],
            groups,
            items,
        })
    }

    fn key(&self, i: usize) -> Key<'a> {
        let [id, tenant, kind, role] = self.strings;
        let offsets = self.groups.value_offsets();
        let groups = self.groups.is_valid(i).then(|| Groups {
            items: self.items,
            start: offsets[i] as usize,
            end: offsets[i + 1] as usize,
        });
        (
            opt(id, i),
            opt(tenant, i),
            opt(kind, i),
            opt(role, i),
            groups,
        )
    }
}

#[derive(Debug, Clone, Copy)]
struct Group<'a> {
    actor_name: Option<&'a str>,
    events: i64,
    first: i64,
    last: i64,
}

impl<'a> Group<'a> {
    const EMPTY: Group<'static> = Group {
        actor_name: None,
        events: 0,
        first: i64::MAX,
        last: i64::MIN,
    };

    fn add(&mut self, name: Option<&'a str>, events: i64, first: i64, last: i64) {
        // The largest name, as `max` in SQL (NULL only when every one is).
        self.actor_name = match (self.actor_name, name) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, None) => a,
            (None, b) => b,
        };
        self.events += events;
        self.first = self.first.min(first);
        self.last = self.last.max(last);
    }
}

/// See [`super::Kind::of_batch`].
pub fn of_batch(batch: &RecordBatch) -> Result<RecordBatch, ArrowError> {
    let times = times(batch, "event_time")?;
    let keys = KeyColumns::of(batch)?;
    let names = strings(batch, "actor_name")?;
    let mut out = Builders::default();
    let mut groups: HashMap<Key, Group> = HashMap::default();
    for (hour, rows) in hour_runs(times.values()) {
        for i in rows {
            let t = times.value(i);
            groups
                .entry(keys.key(i))
                .or_insert(Group::EMPTY)
                .add(opt(names, i), 1, t, t);
        }
        let mut rows: Vec<_> = groups.drain().collect();
        rows.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        for (key, g) in rows {
            out.append(hour, key, &g);
        }
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
        let names = strings(part, "actor_name")?;
        for i in 0..part.num_rows() {
            groups
                .entry((hour.value(i), keys.key(i)))
                .or_insert(Group::EMPTY)
                .add(
                    opt(names, i),
                    events.value(i),
                    first.value(i),
                    last.value(i),
                );
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
    keys: [StringBuilder; 4],
    groups: ListBuilder<StringBuilder>,
    actor_name: StringBuilder,
    events: Int64Builder,
    first: TimestampNanosecondBuilder,
    last: TimestampNanosecondBuilder,
}

impl Builders {
    fn append(&mut self, hour: i64, (id, tenant, kind, role, groups): Key, g: &Group) {
        self.hour.append_value(hour);
        for (b, v) in self.keys.iter_mut().zip([id, tenant, kind, role]) {
            b.append_option(v);
        }
        match groups {
            Some(list) => {
                for item in list.iter() {
                    self.groups.values().append_option(item);
                }
                self.groups.append(true);
            }
            None => self.groups.append(false),
        }
        self.actor_name.append_option(g.actor_name);
        self.events.append_value(g.events);
        self.first.append_value(g.first);
        self.last.append_value(g.last);
    }

    fn finish(mut self) -> Result<RecordBatch, ArrowError> {
        let mut columns: Vec<ArrayRef> = vec![finish_utc(&mut self.hour)];
        for k in &mut self.keys {
            columns.push(Arc::new(k.finish()));
        }
        columns.push(Arc::new(self.groups.finish()));
        columns.push(Arc::new(self.actor_name.finish()));
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
    use datafusion::arrow::datatypes::Int64Type;

    fn call(t: i64, actor: &str, groups: &[&str], role: Option<&str>) -> Event {
        let mut e = Event::new(SourceKind::Vault, "vault_audit", format!("u{t}{actor}"), t);
        e.actor_id = Some(actor.into());
        e.actor_name = Some(format!("{actor}-name"));
        e.tenant = Some("vault-1".into());
        e.actor_groups = groups.iter().map(|g| (*g).to_owned()).collect();
        e.actor_role = role.map(str::to_owned);
        e
    }

    #[test]
    fn counts_per_hour_and_principal_with_its_groups_and_merges_exactly() {
        let h = NANOS_PER_HOUR;
        let input = [
            call(10 * h + 5, "a", &["default", "payments"], Some("api")),
            call(10 * h + 7, "a", &["default", "payments"], Some("api")),
            // A policy added within the hour: another row.
            call(
                10 * h + 8,
                "a",
                &["default", "payments", "ledger"],
                Some("api"),
            ),
            call(10 * h + 9, "b", &[], None),
            call(11 * h, "a", &["default", "payments"], Some("api")),
        ];
        let r = of_batch(&batch(&input)).unwrap();
        let events = r
            .column_by_name("events")
            .unwrap()
            .as_primitive::<Int64Type>();
        assert_eq!(events.values().to_vec(), vec![2, 1, 1, 1]);
        let groups = r.column_by_name("actor_groups").unwrap().as_list::<i32>();
        let items = |i: usize| -> Vec<String> {
            let v = groups.value(i);
            let s = v.as_string::<i32>();
            (0..s.len()).map(|j| s.value(j).to_owned()).collect()
        };
        assert_eq!(items(0), ["default", "payments"]);
        assert_eq!(items(1), ["default", "payments", "ledger"]);
        assert!(items(2).is_empty());
        let role = r.column_by_name("actor_role").unwrap().as_string::<i32>();
        assert_eq!(role.value(0), "api");
        assert!(role.is_null(2));
        // Split anywhere, the merged parts are the rollup of the whole.
        for cut in 1..input.len() {
            let parts = [
                of_batch(&batch(&input[..cut])).unwrap(),
                of_batch(&batch(&input[cut..])).unwrap(),
            ];
            assert_eq!(merge(&parts).unwrap(), r, "cut at {cut}");
        }
        assert_eq!(
            Kind::Principals.path_for("events/source=vault/date=2026-03-02/000001-0000.parquet"),
            "rollups/principals/source=vault/date=2026-03-02/000001-0000.parquet"
        );
    }
}
