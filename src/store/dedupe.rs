//! Which `event_uid`s a date partition already holds, so a record is stored once.
//!
//! Loaded per (source, date) partition on first use from the committed files' `event_uid`
//! column, and kept as 128-bit hashes (16 bytes per event) rather than strings.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::hash::{DefaultHasher, Hash, Hasher};

use datafusion::arrow::array::{Array, AsArray};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::arrow::ProjectionMask;

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

#[derive(Default)]
pub struct UidIndex {
    partitions: HashMap<(SourceKind, i64), HashSet<u128>>,
}

const NANOS_PER_DAY: i64 = 86_400_000_000_000;

impl UidIndex {
    /// Records the event's uid in its (source, date) partition; false when it was already there
    /// (a duplicate).
    pub fn insert(
        &mut self,
        store: &Store,
        log: &CommitLog,
        e: &Event,
    ) -> Result<bool, StoreError> {
        let key = (e.source, e.event_time.div_euclid(NANOS_PER_DAY));
        let set = match self.partitions.entry(key) {
            std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                let date = utc_date(e.event_time);
                v.insert(load_partition(store, log, e.source.as_str(), &date)?)
            }
        };
        Ok(set.insert(uid_hash(&e.event_uid)))
    }
}

fn load_partition(
    store: &Store,
    log: &CommitLog,
    source: &str,
    date: &str,
) -> Result<HashSet<u128>, StoreError> {
    let mut set = HashSet::new();
    for file in log.files().filter(|f| f.source == source && f.date == date) {
        let path = store.absolute(&file.path);
        let err = |e: &dyn std::fmt::Display| StoreError::Parquet {
            path: path.clone(),
            message: e.to_string(),
        };
        let f = File::open(&path).map_err(|e| StoreError::io(&path, e))?;
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
    }
    Ok(set)
}
