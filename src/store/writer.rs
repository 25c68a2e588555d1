//! Buffers events per (source, date) partition and writes them as sorted, zstd Parquet files.
//!
//! Files are written under a temp name, fsynced and renamed; they become part of the store only
//! when the commit that lists them is written.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::compute::{sort_to_indices, take_record_batch};
use datafusion::arrow::datatypes::TimestampNanosecondType;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::metadata::{KeyValue, SortingColumn};
use datafusion::parquet::file::properties::WriterProperties;
use sha2::{Digest, Sha256};

use super::commit::DataFile;
use super::fsutil::{create_dir_all_durable, publish, temp_path};
use super::{Store, StoreError, EVENTS_DIR};
use crate::event::{Event, EventBatchBuilder, SCHEMA_VERSION};
use crate::ingest::timestamp::format_nanos;

/// A partition's buffer is written out once it holds about this much.
const FLUSH_BYTES: usize = 64 << 20;
/// All buffers together stay under this; the largest is written out first.
const TOTAL_BYTES: usize = 256 << 20;
/// Rows per Parquet row group.
const ROW_GROUP_ROWS: usize = 128 * 1024;

struct Buffer {
    builder: EventBatchBuilder,
    bytes: usize,
}

/// Writes the data files of one commit.
pub struct PartitionWriter {
    store: Store,
    seq: u64,
    ingest_time: i64,
    buffers: HashMap<(String, String), Buffer>,
    buffered_bytes: usize,
    next_file: u64,
    written: Vec<DataFile>,
}

impl PartitionWriter {
    pub fn new(store: Store, seq: u64, ingest_time: i64) -> Self {
        PartitionWriter {
            store,
            seq,
            ingest_time,
            buffers: HashMap::new(),
            buffered_bytes: 0,
            next_file: 0,
            written: Vec::new(),
        }
    }

    pub fn push(&mut self, e: &Event) -> Result<(), StoreError> {
        let key = (e.source.as_str().to_owned(), e.date());
        let ingest_time = self.ingest_time;
        let buf = self.buffers.entry(key.clone()).or_insert_with(|| Buffer {
            builder: EventBatchBuilder::new(ingest_time),
            bytes: 0,
        });
        buf.builder.push(e);
        let size = approx_size(e);
        buf.bytes += size;
        self.buffered_bytes += size;
        if buf.bytes >= FLUSH_BYTES {
            self.flush(&key)?;
        }
        while self.buffered_bytes >= TOTAL_BYTES {
            let largest = self
                .buffers
                .iter()
                .max_by_key(|(_, b)| b.bytes)
                .map(|(k, _)| k.clone());
            match largest {
                Some(k) => self.flush(&k)?,
                None => break,
            }
        }
        Ok(())
    }

    /// Writes every buffer and returns the files written, in write order.
    pub fn finish(mut self) -> Result<Vec<DataFile>, StoreError> {
        let mut keys: Vec<_> = self.buffers.keys().cloned().collect();
        keys.sort();
        for k in keys {
            self.flush(&k)?;
        }
        Ok(self.written)
    }

    /// Drops what is buffered and deletes the files written so far (a run that commits nothing).
    pub fn abandon(self) {
        for f in &self.written {
            let _ = std::fs::remove_file(self.store.absolute(&f.path));
        }
    }

    fn flush(&mut self, key: &(String, String)) -> Result<(), StoreError> {
        let Some(mut buf) = self.buffers.remove(key) else {
            return Ok(());
        };
        self.buffered_bytes -= buf.bytes;
        if buf.builder.is_empty() {
            return Ok(());
        }
        let (source, date) = key;
        let batch = buf.builder.finish().map_err(|e| StoreError::Parquet {
            path: PathBuf::from(source),
            message: e.to_string(),
        })?;
        let dir = self
            .store
            .root()
            .join(EVENTS_DIR)
            .join(format!("source={source}"))
            .join(format!("date={date}"));
        create_dir_all_durable(&dir).map_err(|e| StoreError::io(&dir, e))?;
        let path = dir.join(format!("{:06}-{:04}.parquet", self.seq, self.next_file));
        self.next_file += 1;
        let mut file = write_parquet(&path, batch)?;
        file.path = self.store.relative(&path);
        file.source = source.clone();
        file.date = date.clone();
        self.written.push(file);
        Ok(())
    }
}

fn approx_size(e: &Event) -> usize {
    // Fixed columns plus the variable text that dominates.
    256 + e.raw_event.as_ref().map_or(0, String::len)
        + e.event_uid.len()
        + e.resource_id.as_ref().map_or(0, String::len)
}

/// Writes through to a file while hashing and counting the bytes.
struct HashingFile {
    file: File,
    hasher: Sha256,
    bytes: u64,
}

impl Write for HashingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        crate::fault::write_result()?;
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// Sorts a batch by `event_time` and writes it durably to `path`.
fn write_parquet(path: &Path, batch: RecordBatch) -> Result<DataFile, StoreError> {
    let perr = |e: &dyn std::fmt::Display| StoreError::Parquet {
        path: path.to_owned(),
        message: e.to_string(),
    };
    let time_idx = batch
        .schema()
        .index_of("event_time")
        .map_err(|e| perr(&e))?;
    let indices = sort_to_indices(batch.column(time_idx), None, None).map_err(|e| perr(&e))?;
    let batch = take_record_batch(&batch, &indices).map_err(|e| perr(&e))?;
    let times = batch
        .column(time_idx)
        .as_primitive::<TimestampNanosecondType>();
    let (min, max) = (times.value(0), times.value(times.len() - 1));

    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(3).expect("valid zstd level"),
        ))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_sorting_columns(Some(vec![SortingColumn {
            column_idx: time_idx as i32,
            descending: false,
            nulls_first: false,
        }]))
        .set_key_value_metadata(Some(vec![KeyValue::new(
            "vigil.schema_version".into(),
            SCHEMA_VERSION.to_string(),
        )]))
        .build();
    let tmp = temp_path(path);
    let file = File::create(&tmp).map_err(|e| StoreError::io(&tmp, e))?;
    let sink = HashingFile {
        file,
        hasher: Sha256::new(),
        bytes: 0,
    };
    let mut writer = ArrowWriter::try_new(sink, Arc::clone(&batch.schema()), Some(props))
        .map_err(|e| perr(&e))?;
    writer.write(&batch).map_err(|e| perr(&e))?;
    let sink = writer.into_inner().map_err(|e| perr(&e))?;
    super::fsutil::sync_file(&sink.file).map_err(|e| StoreError::io(&tmp, e))?;
    let sha256 = hex::encode(sink.hasher.finalize());
    let bytes = sink.bytes;
    drop(sink.file);
    publish(&tmp, path).map_err(|e| StoreError::io(path, e))?;
    crate::fault::crash_point("after_data_rename");
    Ok(DataFile {
        path: String::new(),
        source: String::new(),
        date: String::new(),
        rows: batch.num_rows() as u64,
        bytes,
        sha256,
        min_time: format_nanos(min),
        max_time: format_nanos(max),
    })
}
