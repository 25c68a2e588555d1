//! Which `event_uid`s the store already holds, so a record is stored once.
//!
//! Uids are grouped by source and by the minute (slot) of their event's time: copies of a
//! record share its time (give or take the milliseconds between two Vault audit devices, see
//! `NEAR_EDGE`), so a record can only be a duplicate of one in its own slot or, near its edge,
//! the next. A slot
//! is loaded on first use from the `event_time` and `event_uid` columns of the committed files
//! whose time range covers it (row groups outside it skipped by their statistics), and kept as
//! 128-bit hashes (16 bytes per event) rather than strings. Slots rather than days keep the
//! memory of a service that runs for days near the events of the last minutes: at 1,000
//! events/s a day holds 86 M uids (about 2.5 GiB), a slot 60 k.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::ops::Range;
use std::path::Path;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::TimestampNanosecondType;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::arrow::ProjectionMask;
use datafusion::parquet::file::reader::ChunkReader;
use datafusion::parquet::file::statistics::Statistics;

use super::chunk::RowKey;
use super::writer::PartitionWriter;
use super::{CommitLog, Store, StoreError};
use crate::event::{utc_date, Event, SourceKind};
use crate::timerange::{parse_instant, NANOS_PER_DAY, NANOS_PER_MINUTE, NANOS_PER_SECOND};

/// Two independent 64-bit SipHashes: a false "duplicate" needs a 128-bit collision.
pub(crate) fn uid_hash(uid: &str) -> u128 {
    let mut a = DefaultHasher::new();
    uid.hash(&mut a);
    let mut b = DefaultHasher::new();
    0x5eed_u16.hash(&mut b);
    uid.hash(&mut b);
    (u128::from(a.finish()) << 64) | u128::from(b.finish())
}

/// The span of event time whose uids are loaded, kept and dropped together. A minute: at 40,000
/// events/s a slot holds 2.4 M uids (about 80 MiB), and a slot read back from a day's sorted
/// files costs one row group. Late sources (CloudTrail delivers within about 15 minutes) keep
/// a few slots in use at once.
const SLOT_NANOS: i64 = NANOS_PER_MINUTE;

/// Copies of a record written by two Vault audit devices carry the time each device formatted
/// them, microseconds to milliseconds apart: a record this close to the edge of its slot is
/// also looked for in the slot next to it.
const NEAR_EDGE: i64 = 10 * NANOS_PER_SECOND;

/// What a slot costs beyond its uids (its table and map entry), counted in uids so that many
/// sparse slots also reach the budget.
const SLOT_COST: usize = 4;

/// Uids kept in memory (16 bytes each plus the table's slack, about 70 MiB) before slots are
/// dropped: the one used longest ago first, and never one used among the last `budget / 2`
/// insertions (the slots being written; a steady 1,000 events/s keeps two or three). A dropped
/// slot is read back from disk if it is touched again.
pub const DEFAULT_BUDGET: usize = 2_000_000;

/// The uid sets of the slots a run touches, within a memory budget.
pub struct UidIndex {
    slots: HashMap<(SourceKind, i64), Slot>,
    /// Slots dropped from memory since the last commit: reloading one must also read the files
    /// written for it since.
    evicted: HashSet<(SourceKind, i64)>,
    budget: usize,
    /// Uids in memory, plus `SLOT_COST` per slot.
    held: usize,
    clock: u64,
    /// No slot is dropped before this insertion: the last attempt found them all in use.
    next_eviction: u64,
    /// A uid was added since it was built or last committed.
    changed: bool,
    /// The head of the log it holds the uids of, once known: a caller keeps it from one run to
    /// the next only while nobody else committed.
    head: Option<String>,
}

struct Slot {
    uids: foldhash::HashSet<u128>,
    last_use: u64,
}

impl UidIndex {
    pub fn new(budget: usize) -> UidIndex {
        UidIndex {
            slots: HashMap::new(),
            evicted: HashSet::new(),
            budget,
            held: 0,
            clock: 0,
            next_eviction: 0,
            changed: false,
            head: None,
        }
    }

    /// Whether it still holds the uids of the store whose log is `log`: every commit after the
    /// one it was kept at adds no events of another run (findings, verdicts and compactions
    /// add none). An ingest another writer committed meanwhile (on object storage, where no
    /// lock keeps it out) makes it stale: reloading from the log is then the only right answer.
    pub fn is_current(&self, log: &CommitLog) -> bool {
        let Some(head) = self.head.as_deref() else {
            return false;
        };
        let since = if head.is_empty() {
            // Kept at an empty store: the log must still start at its first commit.
            log.commits
                .first()
                .is_none_or(|c| c.commit.seq == 1)
                .then_some(0)
        } else {
            log.commits
                .iter()
                .position(|c| c.hash == head)
                .map(|i| i + 1)
        };
        since.is_some_and(|i| log.commits[i..].iter().all(|c| !c.commit.is_ingest()))
    }

    /// The index, known to hold the uids of the log whose head is `head` (`None`: empty log).
    pub fn at(mut self, head: Option<&str>) -> UidIndex {
        self.head = Some(head.unwrap_or("").to_owned());
        self
    }

    /// Whether a uid was added since it was built or since [`UidIndex::committed`].
    pub fn changed(&self) -> bool {
        self.changed
    }

    /// Uids in memory, for the service's metrics.
    pub fn uids_in_memory(&self) -> usize {
        self.slots.values().map(|s| s.uids.len()).sum()
    }

    /// The index after the run that added its new uids committed: it holds what the store
    /// holds, and a slot dropped from memory reloads from committed files alone.
    pub fn committed(mut self, head: &str) -> UidIndex {
        self.changed = false;
        self.evicted.clear();
        self.at(Some(head))
    }

    /// Records the event's uid in its (source, slot); false when it was already there (a
    /// duplicate), or in the next or previous slot when the event is within `NEAR_EDGE` of it.
    pub fn insert(
        &mut self,
        store: &Store,
        log: &CommitLog,
        writer: &mut PartitionWriter,
        e: &Event,
    ) -> Result<bool, StoreError> {
        self.insert_hash(
            store,
            log,
            writer,
            e.source,
            e.event_time,
            uid_hash(&e.event_uid),
        )
    }

    /// [`UidIndex::insert`] for a row known by its key (uid already hashed, on a parsing
    /// thread).
    pub fn insert_key(
        &mut self,
        store: &Store,
        log: &CommitLog,
        writer: &mut PartitionWriter,
        key: &RowKey,
    ) -> Result<bool, StoreError> {
        self.insert_hash(store, log, writer, key.source, key.event_time, key.uid)
    }

    fn insert_hash(
        &mut self,
        store: &Store,
        log: &CommitLog,
        writer: &mut PartitionWriter,
        source: SourceKind,
        event_time: i64,
        hash: u128,
    ) -> Result<bool, StoreError> {
        let slot = event_time.div_euclid(SLOT_NANOS);
        self.clock += 1;
        let into_slot = event_time - slot.saturating_mul(SLOT_NANOS);
        let neighbour = if into_slot < NEAR_EDGE {
            Some(slot - 1)
        } else if SLOT_NANOS - into_slot <= NEAR_EDGE {
            Some(slot + 1)
        } else {
            None
        };
        if let Some(n) = neighbour {
            if self
                .slot(store, log, writer, source, n)?
                .uids
                .contains(&hash)
            {
                return Ok(false);
            }
        }
        let new = self
            .slot(store, log, writer, source, slot)?
            .uids
            .insert(hash);
        if new {
            self.changed = true;
            self.held += 1;
        }
        if self.held > self.budget && self.clock >= self.next_eviction {
            self.evict();
        }
        Ok(new)
    }

    /// The uids of one (source, slot), loaded if they are not in memory, marked as used now.
    fn slot(
        &mut self,
        store: &Store,
        log: &CommitLog,
        writer: &mut PartitionWriter,
        source: SourceKind,
        slot: i64,
    ) -> Result<&mut Slot, StoreError> {
        let key = (source, slot);
        if !self.slots.contains_key(&key) {
            let start = slot.saturating_mul(SLOT_NANOS);
            let span = start..start.saturating_add(SLOT_NANOS);
            let mut uids = load_slot(store, log, source.as_str(), span.clone())?;
            if self.evicted.contains(&key) {
                let day = start.div_euclid(NANOS_PER_DAY);
                for path in writer.written_files(source, day)? {
                    let f = File::open(&path).map_err(|e| StoreError::io(&path, e))?;
                    read_uids(f, &path, span.clone(), &mut uids)?;
                }
            }
            self.held += uids.len() + SLOT_COST;
            self.slots.insert(
                key,
                Slot {
                    uids,
                    last_use: self.clock,
                },
            );
        }
        let s = self.slots.get_mut(&key).expect("loaded above");
        s.last_use = self.clock;
        Ok(s)
    }

    /// Drops the slots used longest ago until the budget holds, none used among the last
    /// `budget / 2` insertions: dropping a slot still written to would read it back at once.
    fn evict(&mut self) {
        let in_use = (self.budget / 2) as u64;
        while self.held > self.budget {
            let oldest = self
                .slots
                .iter()
                .filter(|(_, s)| self.clock - s.last_use >= in_use)
                .min_by_key(|(_, s)| s.last_use)
                .map(|(k, _)| *k);
            let Some(k) = oldest else {
                // All in use: look again once more insertions went by, not at every one.
                self.next_eviction = self.clock + in_use.max(1) / 4 + 1;
                return;
            };
            if let Some(s) = self.slots.remove(&k) {
                self.held -= s.uids.len() + SLOT_COST;
                self.evicted.insert(k);
            }
        }
    }
}

/// The uid hashes of one source's committed events in `span`.
fn load_slot(
    store: &Store,
    log: &CommitLog,
    source: &str,
    span: Range<i64>,
) -> Result<foldhash::HashSet<u128>, StoreError> {
    let mut set = foldhash::HashSet::default();
    let date = utc_date(span.start);
    // A time that does not parse (none should) cannot rule a file out.
    let t = |s: &str, or: i64| parse_instant(s).unwrap_or(or);
    for file in log.files().filter(|f| {
        f.source == source
            && f.date == date
            && t(&f.min_time, i64::MIN) < span.end
            && t(&f.max_time, i64::MAX) >= span.start
    }) {
        let shown = store.shown(&file.path);
        let f = super::files::open(store, &file.path).map_err(|e| StoreError::io(&shown, e))?;
        read_uids(f, &shown, span.clone(), &mut set)?;
    }
    Ok(set)
}

/// Adds the uid hashes of the events of one data file in `span` to `set`.
fn read_uids<R: ChunkReader + 'static>(
    f: R,
    path: &Path,
    span: Range<i64>,
    set: &mut foldhash::HashSet<u128>,
) -> Result<(), StoreError> {
    let err = |e: &dyn std::fmt::Display| StoreError::Parquet {
        path: path.to_owned(),
        message: e.to_string(),
    };
    let builder = ParquetRecordBatchReaderBuilder::try_new(f).map_err(|e| err(&e))?;
    let schema = builder.schema().clone();
    let time_idx = schema.index_of("event_time").map_err(|e| err(&e))?;
    let uid_idx = schema.index_of("event_uid").map_err(|e| err(&e))?;
    // Statistics are per leaf column, which is not the Arrow index once a nested column
    // comes first.
    let time_leaf = builder
        .parquet_schema()
        .columns()
        .iter()
        .position(|c| c.path().string() == "event_time");
    // Files are sorted by event time: most row groups lie wholly outside the slot.
    let groups: Vec<usize> = (0..builder.metadata().num_row_groups())
        .filter(|&i| {
            let Some(leaf) = time_leaf else { return true };
            match builder.metadata().row_group(i).column(leaf).statistics() {
                Some(Statistics::Int64(s)) => match (s.min_opt(), s.max_opt()) {
                    (Some(&min), Some(&max)) => min < span.end && max >= span.start,
                    _ => true,
                },
                _ => true,
            }
        })
        .collect();
    let mask = ProjectionMask::roots(builder.parquet_schema(), [time_idx, uid_idx]);
    let reader = builder
        .with_row_groups(groups)
        .with_projection(mask)
        .build()
        .map_err(|e| err(&e))?;
    for batch in reader {
        let batch = batch.map_err(|e| err(&e))?;
        let (times, uids) = (batch.column(0), batch.column(1));
        let (times, uids) = if time_idx < uid_idx {
            (times, uids)
        } else {
            (uids, times)
        };
        let times = times.as_primitive::<TimestampNanosecondType>();
        let uids = uids.as_string::<i32>();
        for i in 0..uids.len() {
            if span.contains(&times.value(i)) {
                set.insert(uid_hash(uids.value(i)));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timerange::NANOS_PER_HOUR;

    fn at(i: &str, t: i64) -> Event {
        Event::new(SourceKind::Vault, "vault_audit", i.into(), t)
    }

    /// The service keeps its index across its own commits and the findings, verdicts and
    /// compactions it commits between them (reloading after each would read the day's files
    /// again); another run's ingest makes it stale.
    #[test]
    fn a_kept_index_is_current_until_another_run_ingests() {
        use crate::store::transaction::{Changes, Transaction};
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let ingest = || Changes {
            counts: [("vault".to_owned(), super::super::Tally::default())].into(),
            ..Changes::default()
        };
        let commit = |changes: Changes| {
            Transaction::begin(&store, 0)
                .unwrap()
                .commit(changes, 1)
                .unwrap()
        };
        assert!(UidIndex::new(10).at(None).is_current(&store.log().unwrap()));
        assert!(!UidIndex::new(10).is_current(&store.log().unwrap()));
        let mine = commit(ingest());
        let kept = UidIndex::new(10).committed(&mine.head);
        assert!(kept.is_current(&store.log().unwrap()));
        commit(Changes::default());
        assert!(
            kept.is_current(&store.log().unwrap()),
            "a commit of no events"
        );
        commit(ingest());
        assert!(
            !kept.is_current(&store.log().unwrap()),
            "another run's ingest"
        );
    }

    /// Copies a moment apart on both sides of a slot's edge (two Vault devices) are one record.
    #[test]
    fn copies_near_a_slot_edge_are_found_in_the_next_slot() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let log = CommitLog::default();
        let mut writer = PartitionWriter::new(store.clone(), 1, 0);
        let mut index = UidIndex::new(1_000);
        let edge = 1_780_000_000 / 600 * 600 * 1_000_000_000_i64;
        let mut insert = |uid: &str, t: i64| {
            index
                .insert(&store, &log, &mut writer, &at(uid, t))
                .unwrap()
        };
        assert!(insert("x", edge - 1_000));
        assert!(!insert("x", edge + 1_000));
        assert!(insert("y", edge + 5_000));
        assert!(!insert("y", edge - 5_000));
        // Farther than NEAR_EDGE from the edge: another record with the same uid.
        assert!(insert("z", edge - 2 * NEAR_EDGE));
        assert!(insert("z", edge + 2 * NEAR_EDGE));
    }

    /// Only the events of the span are read, whatever row groups they sit in, and a nested
    /// column before `event_time` does not confuse the statistics of its row groups.
    #[test]
    fn read_uids_keeps_the_span_across_row_groups() {
        use datafusion::arrow::array::{
            ArrayRef, ListBuilder, StringArray, StringBuilder, TimestampNanosecondArray,
        };
        use datafusion::arrow::record_batch::RecordBatch;
        use datafusion::parquet::arrow::ArrowWriter;
        use datafusion::parquet::file::properties::WriterProperties;
        use std::sync::Arc;

        let times: Vec<i64> = vec![
            -SLOT_NANOS - 1,
            -2,
            -1,
            0,
            1,
            SLOT_NANOS - 1,
            SLOT_NANOS,
            SLOT_NANOS + 1,
        ];
        let uids: Vec<String> = (0..times.len()).map(|i| format!("u{i}")).collect();
        let mut tags = ListBuilder::new(StringBuilder::new());
        for _ in &times {
            tags.values().append_value("t");
            tags.append(true);
        }
        let batch = RecordBatch::try_from_iter([
            ("tags", Arc::new(tags.finish()) as ArrayRef),
            (
                "event_uid",
                Arc::new(StringArray::from(uids.clone())) as ArrayRef,
            ),
            (
                "event_time",
                Arc::new(TimestampNanosecondArray::from(times.clone()).with_timezone("UTC"))
                    as ArrayRef,
            ),
        ])
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.parquet");
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(2))
            .build();
        let mut w = ArrowWriter::try_new(File::create(&path).unwrap(), batch.schema(), Some(props))
            .unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        for span in [0..SLOT_NANOS, -SLOT_NANOS..0] {
            let mut got = foldhash::HashSet::default();
            read_uids(File::open(&path).unwrap(), &path, span.clone(), &mut got).unwrap();
            let want: foldhash::HashSet<u128> = times
                .iter()
                .zip(&uids)
                .filter(|(t, _)| span.contains(t))
                .map(|(_, u)| uid_hash(u))
                .collect();
            assert_eq!(got, want, "{span:?}");
            assert_eq!(got.len(), if span.start == 0 { 3 } else { 2 });
        }
    }

    /// A day at ten events a second through a budget of 10,000 uids: memory stays near the
    /// budget (a slot holds 600), and copies of the last minute are duplicates.
    #[test]
    fn memory_stays_near_the_budget_over_a_day() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let log = CommitLog::default();
        let mut writer = PartitionWriter::new(store.clone(), 1, 0);
        let mut index = UidIndex::new(10_000);
        let start = 1_780_000_000 * 1_000_000_000_i64;
        let event = |i: i64| {
            Event::new(
                SourceKind::Vault,
                "vault_audit",
                format!("u{i}"),
                start + i * 100_000_000,
            )
        };
        let mut most = 0;
        for i in 0..24 * NANOS_PER_HOUR / 100_000_000 {
            assert!(index.insert(&store, &log, &mut writer, &event(i)).unwrap());
            if i % 100 == 99 && i > 600 {
                // A copy of an event of the last minute.
                let copy = event(i - 600 + i % 7);
                assert!(!index.insert(&store, &log, &mut writer, &copy).unwrap());
            }
            most = most.max(index.uids_in_memory());
        }
        // The budget, plus at most the slot being filled past it.
        let per_slot = (SLOT_NANOS / 100_000_000) as usize;
        assert!(most <= 10_000 + per_slot, "{most} uids held at most");
        assert!(index.uids_in_memory() >= 10_000 - 2 * per_slot);
    }
}
