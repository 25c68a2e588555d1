//! Which `event_uid`s a date partition already holds, so a record is stored once.
//!
//! Loaded per (source, date) partition on first use from the committed files' `event_uid`
//! column, and kept as 128-bit hashes (16 bytes per event) rather than strings.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::Path;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::arrow::ProjectionMask;

use super::writer::PartitionWriter;
use super::{CommitLog, Store, StoreError};
use crate::event::{utc_date, Event, SourceKind};

/// Two independent 64-bit SipHashes: a false "duplicate" needs a 128-bit collision.
fn uid_hash(uid: &str) -> u128 {
    let mut a = DefaultHasher::new();
    uid.hash(&mut a);
    let mut b = DefaultHasher::new();
    0x5eed_u16.hash(&mut b);
    uid.hash(&mut b);
    (u128::from(a.finish()) << 64) | u128::from(b.finish())
}

/// Uids kept in memory at most (16 bytes each plus the table's slack, about 70 MiB); past it
/// the partition used longest ago is dropped, and read back from disk if it is touched again.
pub const DEFAULT_BUDGET: usize = 2_000_000;

/// The uid sets of the partitions a run touches, within a memory budget.
pub struct UidIndex {
    partitions: HashMap<(SourceKind, i64), Partition>,
    /// Partitions dropped from memory during this run: reloading one must also read the files
    /// this run wrote for it.
    evicted: HashSet<(SourceKind, i64)>,
    budget: usize,
    /// Uids in memory.
    held: usize,
    clock: u64,
    /// A uid was added since it was built or last committed.
    changed: bool,
}

struct Partition {
    uids: foldhash::HashSet<u128>,
    last_use: u64,
}

use crate::timerange::NANOS_PER_DAY;

impl UidIndex {
    pub fn new(budget: usize) -> UidIndex {
        UidIndex {
            partitions: HashMap::new(),
            evicted: HashSet::new(),
            budget,
            held: 0,
            clock: 0,
            changed: false,
        }
    }

    /// Whether a uid was added since it was built or since [`UidIndex::committed`].
    pub fn changed(&self) -> bool {
        self.changed
    }

    /// The index after the run that added its new uids committed: it holds what the store
    /// holds, and a partition dropped from memory reloads from committed files alone.
    pub fn committed(mut self) -> UidIndex {
        self.changed = false;
        self.evicted.clear();
        self
    }

    /// Records the event's uid in its (source, date) partition; false when it was already there
    /// (a duplicate).
    pub fn insert(
        &mut self,
        store: &Store,
        log: &CommitLog,
        writer: &mut PartitionWriter,
        e: &Event,
    ) -> Result<bool, StoreError> {
        let day = e.event_time.div_euclid(NANOS_PER_DAY);
        let key = (e.source, day);
        self.clock += 1;
        if !self.partitions.contains_key(&key) {
            let date = utc_date(e.event_time);
            let mut uids = load_partition(store, log, e.source.as_str(), &date)?;
            if self.evicted.contains(&key) {
                for path in writer.written_files(e.source, day)? {
                    read_uids(&path, &mut uids)?;
                }
            }
            self.held += uids.len();
            self.partitions.insert(
                key,
                Partition {
                    uids,
                    last_use: self.clock,
                },
            );
            self.evict(key);
        }
        let part = self.partitions.get_mut(&key).expect("loaded above");
        part.last_use = self.clock;
        let new = part.uids.insert(uid_hash(&e.event_uid));
        if new {
            self.changed = true;
            self.held += 1;
            if self.held > self.budget {
                self.evict(key);
            }
        }
        Ok(new)
    }

    /// Drops the partitions used longest ago until the budget holds, never `current`.
    fn evict(&mut self, current: (SourceKind, i64)) {
        while self.held > self.budget {
            let oldest = self
                .partitions
                .iter()
                .filter(|(k, _)| **k != current)
                .min_by_key(|(_, p)| p.last_use)
                .map(|(k, _)| *k);
            let Some(k) = oldest else { return };
            if let Some(p) = self.partitions.remove(&k) {
                self.held -= p.uids.len();
                self.evicted.insert(k);
            }
        }
    }
}

fn load_partition(
    store: &Store,
    log: &CommitLog,
    source: &str,
    date: &str,
) -> Result<foldhash::HashSet<u128>, StoreError> {
    let mut set = foldhash::HashSet::default();
    for file in log.files().filter(|f| f.source == source && f.date == date) {
        read_uids(&store.absolute(&file.path), &mut set)?;
    }
    Ok(set)
}

/// Adds the uid hashes of one data file to `set`.
fn read_uids(path: &Path, set: &mut foldhash::HashSet<u128>) -> Result<(), StoreError> {
    let err = |e: &dyn std::fmt::Display| StoreError::Parquet {
        path: path.to_owned(),
        message: e.to_string(),
    };
    let f = File::open(path).map_err(|e| StoreError::io(path, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(f).map_err(|e| err(&e))?;
    let idx = builder
        .schema()
        .index_of("event_uid")
        .map_err(|e| err(&e))?;
    let mask = ProjectionMask::roots(builder.parquet_schema(), [idx]);
    for batch in builder.with_projection(mask).build().map_err(|e| err(&e))? {
        let batch = batch.map_err(|e| err(&e))?;
        let uids = batch.column(0).as_string::<i32>();
        for i in 0..uids.len() {
            set.insert(uid_hash(uids.value(i)));
        }
    }
    Ok(())
}
