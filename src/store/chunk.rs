//! Rows built into Arrow columns on a parsing thread, ahead of the ingest thread.
//!
//! A parsing thread that makes whole rows alone (a Vault response, a CloudTrail, Azure or
//! Secret Manager entry) appends each to the columns of its batch's chunk as soon as it is
//! made, and drops the `Event` on the thread that allocated it. The ingest thread then only
//! decides which rows to keep (pairing, dedupe) from each row's [`RowKey`] and hands the
//! partition writer row numbers, not values: no string is copied or freed there (it copied ~30
//! per row into the partition's builders, and freeing strings allocated on another thread was
//! 5 % of a Vault ingest's CPU alone).

use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::error::ArrowError;

use super::dedupe::uid_hash;
use super::writer::approx_size;
use crate::event::{Event, EventBatchBuilder, SourceKind};

/// Column of `request_id` in the file schema (the Vault pairing key).
const REQUEST_ID: usize = 5;

/// What the ingest thread decides a row's fate by, without reading its columns.
#[derive(Debug, Clone, Copy)]
pub struct RowKey {
    pub source: SourceKind,
    pub event_time: i64,
    /// [`uid_hash`] of the row's `event_uid`.
    pub uid: u128,
    /// What the row takes in memory ([`approx_size`]), for the writer's budget.
    pub bytes: usize,
}

/// Rows of one batch of records, in the file schema (their `ingest_time` is set when they are
/// written), and the key of each.
pub struct RowChunk {
    pub batch: RecordBatch,
    pub keys: Vec<RowKey>,
}

impl RowChunk {
    /// The Vault request id of row `row`, if it has one.
    pub fn request_id(&self, row: usize) -> Option<&str> {
        let ids = self.batch.column(REQUEST_ID).as_string::<i32>();
        ids.is_valid(row).then(|| ids.value(row))
    }
}

/// Rows `first .. first + count` of the batch's chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuiltRows {
    pub first: u32,
    pub count: u32,
}

impl BuiltRows {
    pub fn range(self) -> std::ops::Range<usize> {
        self.first as usize..(self.first + self.count) as usize
    }
}

/// Builds the chunk of one batch on a parsing thread.
pub struct ChunkBuilder {
    builder: EventBatchBuilder,
    keys: Vec<RowKey>,
    keep_raw: bool,
}

impl ChunkBuilder {
    pub fn new(keep_raw: bool) -> ChunkBuilder {
        ChunkBuilder {
            builder: EventBatchBuilder::new(0),
            keys: Vec::new(),
            keep_raw,
        }
    }

    /// Appends `rows` (dropping their raw text unless the store keeps it).
    pub fn push(&mut self, rows: impl IntoIterator<Item = Event>) -> BuiltRows {
        let first = self.keys.len() as u32;
        for mut e in rows {
            self.append(&mut e);
        }
        BuiltRows {
            first,
            count: self.keys.len() as u32 - first,
        }
    }

    /// One row from an event the caller keeps (a parsing thread builds every row into the same
    /// one): as [`push`](Self::push), without taking it.
    pub fn push_ref(&mut self, e: &mut Event) -> BuiltRows {
        let first = self.keys.len() as u32;
        self.append(e);
        BuiltRows { first, count: 1 }
    }

    fn append(&mut self, e: &mut Event) {
        if !self.keep_raw {
            e.raw_event = None;
        }
        self.keys.push(RowKey {
            source: e.source,
            event_time: e.event_time,
            uid: uid_hash(&e.event_uid),
            bytes: approx_size(e),
        });
        self.builder.push(e);
    }

    /// The chunk of the rows pushed since the last call, if any.
    pub fn finish(&mut self) -> Result<Option<Arc<RowChunk>>, ArrowError> {
        if self.keys.is_empty() {
            return Ok(None);
        }
        let batch = self.builder.finish()?;
        // The next batch's rows are much like these: room for them up front.
        self.builder = EventBatchBuilder::sized_like(0, &batch);
        Ok(Some(Arc::new(RowChunk {
            batch,
            keys: std::mem::take(&mut self.keys),
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(uid: &str, request_id: Option<&str>) -> Event {
        let mut e = Event::new(SourceKind::Vault, "vault_audit", uid.into(), 7);
        e.request_id = request_id.map(str::to_owned);
        e.raw_event = Some(r#"{"secret":"raw"}"#.into());
        e
    }

    #[test]
    fn a_chunk_keeps_each_row_s_key_and_request_id_and_drops_raw_text_unless_kept() {
        let mut b = ChunkBuilder::new(false);
        let first = b.push([event("vault:c:a", Some("a"))]);
        let second = b.push([event("vault:c:b", None), event("vault:c:c", Some("c"))]);
        assert_eq!((first.range(), second.range()), (0..1, 1..3));
        let chunk = b.finish().unwrap().unwrap();
        assert_eq!(chunk.batch.schema(), crate::event::file_schema());
        assert_eq!(
            (0..3).map(|r| chunk.request_id(r)).collect::<Vec<_>>(),
            [Some("a"), None, Some("c")]
        );
        assert_eq!(chunk.keys[2].uid, uid_hash("vault:c:c"));
        assert_eq!(chunk.keys[1].event_time, 7);
        let raw = chunk.batch.column_by_name("raw_event").unwrap();
        assert_eq!(raw.null_count(), 3);
        // Nothing pushed since: no chunk.
        assert!(b.finish().unwrap().is_none());

        let mut kept = ChunkBuilder::new(true);
        kept.push([event("vault:c:d", None)]);
        let chunk = kept.finish().unwrap().unwrap();
        assert_eq!(
            chunk
                .batch
                .column_by_name("raw_event")
                .unwrap()
                .null_count(),
            0
        );
    }
}
