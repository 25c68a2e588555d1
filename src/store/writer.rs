//! Buffers events per (source, date) partition and writes them as sorted, zstd Parquet files.
//!
//! Files are written under a temp name, fsynced and renamed; they become part of the store only
//! when the commit that lists them is written.

use foldhash::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{AsArray, RecordBatch, TimestampNanosecondArray, UInt32Array};
use datafusion::arrow::compute::{concat_batches, interleave_record_batch, take_record_batch};
use datafusion::arrow::datatypes::{SchemaRef, TimestampNanosecondType};
use datafusion::arrow::error::ArrowError;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::metadata::{KeyValue, SortingColumn};
use datafusion::parquet::file::properties::{WriterProperties, WriterPropertiesBuilder};
use datafusion::parquet::schema::types::ColumnPath;

use super::chunk::RowChunk;
use super::commit::{DataFile, RollupFile};
use super::digest::ContentDigest;
use super::encoders::Encoders;
use super::{rollup, Store, StoreError, EVENTS_DIR};
use crate::event::{utc_date, Event, EventBatchBuilder, SourceKind, SCHEMA_VERSION};
use crate::fsutil::{create_dir_all_durable, publish, temp_path, HashingFile};
use crate::timerange::rfc3339;

/// A partition's buffer is written out once it holds about this much.
const FLUSH_BYTES: usize = 24 << 20;
/// All buffers together stay under this; the largest is written out first.
const TOTAL_BYTES: usize = 64 << 20;
use crate::timerange::NANOS_PER_DAY;
/// Rows per Parquet row group.
const ROW_GROUP_ROWS: usize = 128 * 1024;

struct Buffer {
    /// Rows pushed as events.
    builder: EventBatchBuilder,
    /// Rows taken from chunks built on parsing threads ([`PartitionWriter::push_built`]).
    parts: Vec<RecordBatch>,
    /// The chunk rows are being taken from now, and which.
    taking: Option<(Arc<RowChunk>, Vec<u32>)>,
    bytes: usize,
}

impl Buffer {
    fn new(ingest_time: i64) -> Buffer {
        Buffer {
            builder: EventBatchBuilder::new(ingest_time),
            parts: Vec::new(),
            taking: None,
            bytes: 0,
        }
    }

    fn take_row(&mut self, chunk: &Arc<RowChunk>, row: usize) -> Result<(), ArrowError> {
        match &mut self.taking {
            Some((c, rows)) if Arc::ptr_eq(c, chunk) => rows.push(row as u32),
            _ => {
                self.settle_taking()?;
                self.taking = Some((Arc::clone(chunk), vec![row as u32]));
            }
        }
        Ok(())
    }

    /// Turns the rows taken from the current chunk into a part: a slice (no copy) when they
    /// are a run of at least half of it, a copy otherwise, so a partition keeps at most about
    /// twice the bytes it counts alive (the writer settles every partition's rows of a chunk
    /// once the next chunk comes: [`PartitionWriter::push_built`]).
    fn settle_taking(&mut self) -> Result<(), ArrowError> {
        let Some((chunk, rows)) = self.taking.take() else {
            return Ok(());
        };
        let first = rows[0] as usize;
        let run = rows
            .iter()
            .enumerate()
            .all(|(i, r)| *r as usize == first + i);
        let part = if run && 2 * rows.len() >= chunk.batch.num_rows() {
            chunk.batch.slice(first, rows.len())
        } else {
            take_record_batch(&chunk.batch, &UInt32Array::from(rows))?
        };
        self.parts.push(part);
        Ok(())
    }

    /// Every row buffered, as parts of one file.
    fn finish(mut self) -> Result<Vec<RecordBatch>, ArrowError> {
        self.settle_taking()?;
        if !self.builder.is_empty() {
            self.parts.push(self.builder.finish()?);
        }
        Ok(self.parts)
    }
}

/// A partition: the source and the UTC day number of `event_time`.
type PartitionKey = (SourceKind, i64);

/// One file for an encoder thread to join, sort, encode and publish, with its rollups.
struct Job {
    path: PathBuf,
    relative: String,
    source: String,
    date: String,
    /// The file's rows, in parts to be joined (and sorted) by the encoder.
    parts: Vec<RecordBatch>,
    ingest_time: i64,
}

/// Writes the data files of one commit. Rows are buffered per partition on the caller's thread
/// (or taken by row number from chunks parsing threads built); joining, sorting, digests,
/// Parquet encoding, hashing and fsync run on encoder threads ([`Encoders`]).
pub struct PartitionWriter {
    store: Store,
    seq: u64,
    ingest_time: i64,
    buffers: HashMap<PartitionKey, Buffer>,
    buffered_bytes: usize,
    next_file: u64,
    /// Files written (or being written) per partition, for [`PartitionWriter::written_files`].
    written: HashMap<PartitionKey, Vec<PathBuf>>,
    encoders: Option<Encoders<Job, DataFile>>,
    /// The chunk rows are being taken from, and the partitions taking them.
    taking: (Option<Arc<RowChunk>>, Vec<PartitionKey>),
}

impl PartitionWriter {
    pub fn new(store: Store, seq: u64, ingest_time: i64) -> Self {
        let for_encoders = store.clone();
        let encoders = Encoders::new(move |job: Job| {
            let batch =
                join_parts(job.parts, job.ingest_time).map_err(|e| StoreError::Parquet {
                    path: job.path.clone(),
                    message: e.to_string(),
                })?;
            let mut file = write_parquet(&for_encoders, &job.path, &job.relative, batch)?;
            file.path = job.relative;
            file.source = job.source;
            file.date = job.date;
            Ok(file)
        });
        PartitionWriter {
            store,
            seq,
            ingest_time,
            buffers: HashMap::default(),
            buffered_bytes: 0,
            next_file: 0,
            written: HashMap::default(),
            encoders: Some(encoders),
            taking: (None, Vec::new()),
        }
    }

    pub fn push(&mut self, e: &Event) -> Result<(), StoreError> {
        let key = (e.source, e.event_time.div_euclid(NANOS_PER_DAY));
        self.buffer(key).builder.push(e);
        self.account(key, approx_size(e))
    }

    /// Buffers row `row` of a chunk a parsing thread built.
    pub fn push_built(&mut self, chunk: &Arc<RowChunk>, row: usize) -> Result<(), StoreError> {
        if !self
            .taking
            .0
            .as_ref()
            .is_some_and(|c| Arc::ptr_eq(c, chunk))
        {
            // A new chunk: the rows partitions took from the last one become parts now, so no
            // partition pins a whole chunk for a row or two (a log out of time order spreads a
            // chunk over many days).
            for key in std::mem::take(&mut self.taking.1) {
                if let Some(buf) = self.buffers.get_mut(&key) {
                    buf.settle_taking()
                        .map_err(|e| self.arrow_error(key.0, &e))?;
                }
            }
            self.taking.0 = Some(Arc::clone(chunk));
        }
        let k = &chunk.keys[row];
        let key = (k.source, k.event_time.div_euclid(NANOS_PER_DAY));
        if !self.taking.1.contains(&key) {
            self.taking.1.push(key);
        }
        self.buffer(key)
            .take_row(chunk, row)
            .map_err(|e| self.arrow_error(key.0, &e))?;
        self.account(key, k.bytes)
    }

    /// The buffer of partition `key`, made when it has none.
    fn buffer(&mut self, key: PartitionKey) -> &mut Buffer {
        let ingest_time = self.ingest_time;
        self.buffers
            .entry(key)
            .or_insert_with(|| Buffer::new(ingest_time))
    }

    fn arrow_error(&self, source: SourceKind, e: &ArrowError) -> StoreError {
        StoreError::Parquet {
            path: self.store.root().join(source.as_str()),
            message: e.to_string(),
        }
    }

    /// Counts `size` more bytes in the partition `key` and writes out what is over budget.
    fn account(&mut self, key: PartitionKey, size: usize) -> Result<(), StoreError> {
        let buf = self
            .buffers
            .get_mut(&key)
            .expect("the row was just buffered");
        buf.bytes += size;
        self.buffered_bytes += size;
        if buf.bytes >= FLUSH_BYTES {
            self.flush(key)?;
        }
        while self.buffered_bytes >= TOTAL_BYTES {
            let largest = self
                .buffers
                .iter()
                .max_by_key(|(_, b)| b.bytes)
                .map(|(k, _)| *k);
            match largest {
                Some(k) => self.flush(k)?,
                None => break,
            }
        }
        Ok(())
    }

    /// The files this writer has written for the partition of `source` and `day` (days since
    /// the epoch), all rows pushed for it included: its buffer is written out and the call
    /// waits until the encoder has finished them, so they can be read back.
    pub fn written_files(
        &mut self,
        source: SourceKind,
        day: i64,
    ) -> Result<Vec<PathBuf>, StoreError> {
        let key = (source, day);
        self.flush(key)?;
        if self.written.contains_key(&key) {
            self.encoders.as_ref().expect("the writer is open").wait()?;
        }
        Ok(self.written.get(&key).cloned().unwrap_or_default())
    }

    /// Writes every buffer and returns the files written, in write order.
    pub fn finish(mut self) -> Result<Vec<DataFile>, StoreError> {
        let mut keys: Vec<_> = self.buffers.keys().copied().collect();
        keys.sort();
        for k in keys {
            self.flush(k)?;
        }
        self.join()
    }

    /// Drops what is buffered and deletes the files written so far, with their rollups and temp
    /// files, also when the encoder stopped on an error (a run that commits nothing).
    pub fn abandon(mut self) {
        self.buffers.clear();
        let _ = self.join();
        for data in self.written.values().flatten() {
            remove_with_rollups(&self.store, data);
        }
    }

    fn join(&mut self) -> Result<Vec<DataFile>, StoreError> {
        self.encoders
            .take()
            .map_or(Ok(Vec::new()), Encoders::finish)
    }

    fn flush(&mut self, key: PartitionKey) -> Result<(), StoreError> {
        let Some(buf) = self.buffers.remove(&key) else {
            return Ok(());
        };
        self.buffered_bytes -= buf.bytes;
        let (source, day) = key;
        let parts = buf.finish().map_err(|e| self.arrow_error(source, &e))?;
        if parts.iter().all(|p| p.num_rows() == 0) {
            return Ok(());
        }
        let date = utc_date(day * NANOS_PER_DAY);
        let dir = self
            .store
            .root()
            .join(EVENTS_DIR)
            .join(format!("source={source}"))
            .join(format!("date={date}"));
        create_dir_all_durable(&dir).map_err(|e| StoreError::io(&dir, e))?;
        let path = dir.join(format!(
            "{}-{:04}.parquet",
            self.store.file_stem(self.seq),
            self.next_file
        ));
        self.next_file += 1;
        let relative = self.store.relative(&path);
        let job = Job {
            relative,
            path: path.clone(),
            source: source.as_str().to_owned(),
            date,
            parts,
            ingest_time: self.ingest_time,
        };
        self.written.entry(key).or_default().push(path);
        self.encoders
            .as_mut()
            .expect("the writer is open")
            .send(job)
    }
}

/// Bytes the row takes in the Arrow builders: every text value plus its offset, and the fixed
/// columns. (It counted only the uid, resource and raw text before, and buffers held about
/// three times their budget.)
pub(crate) fn approx_size(e: &Event) -> usize {
    let opt = |s: &Option<String>| s.as_ref().map_or(0, String::len) + 4;
    let texts = [
        &e.source_event_id,
        &e.request_id,
        &e.tenant,
        &e.region,
        &e.status_code,
        &e.error_message,
        &e.actor_id,
        &e.actor_name,
        &e.actor_role,
        &e.actor_origin_id,
        &e.via_service,
        &e.credential_id,
        &e.src_ip,
        &e.src_host,
        &e.user_agent,
        &e.resource_id,
        &e.resource_name,
        &e.resource_version,
        &e.resource_scope,
        &e.raw_event,
    ];
    let lists: usize = e
        .actor_groups
        .iter()
        .chain(&e.parse_warnings)
        .map(|s| s.len() + 4)
        .sum();
    let attributes: usize = e
        .attributes
        .iter()
        .map(|(k, v)| k.len() + v.len() + 8)
        .sum();
    128 + e.event_uid.len()
        + e.service.len()
        + e.operation.len()
        + e.raw_location.len()
        + texts.into_iter().map(opt).sum::<usize>()
        + lists
        + attributes
}

/// The parts of one file as one batch in `event_time` order, every row's `ingest_time` set:
/// one copy of the rows (a join of parts already in order, or an interleave in sorted order).
fn join_parts(parts: Vec<RecordBatch>, ingest_time: i64) -> Result<RecordBatch, ArrowError> {
    let schema = crate::event::file_schema();
    let time_idx = schema.index_of("event_time")?;
    let times = |b: &RecordBatch| {
        b.column(time_idx)
            .as_primitive::<TimestampNanosecondType>()
            .values()
            .clone()
    };
    let mut sorted = true;
    let mut last = i64::MIN;
    for p in &parts {
        let t = times(p);
        sorted &= t.first().is_none_or(|first| *first >= last) && t.is_sorted();
        last = t.last().copied().unwrap_or(last);
    }
    let batch = if parts.len() == 1 && sorted {
        parts.into_iter().next().expect("one part")
    } else if sorted {
        concat_batches(&schema, &parts)?
    } else {
        // Audit logs are nearly in time order (a Vault response is written when its call
        // ends): a stable sort of (time, part, row) and one interleave.
        let mut order: Vec<(i64, usize, usize)> = Vec::new();
        for (i, p) in parts.iter().enumerate() {
            order.extend(times(p).iter().enumerate().map(|(r, t)| (*t, i, r)));
        }
        order.sort_by_key(|(t, _, _)| *t);
        let indices: Vec<(usize, usize)> = order.into_iter().map(|(_, i, r)| (i, r)).collect();
        let refs: Vec<&RecordBatch> = parts.iter().collect();
        interleave_record_batch(&refs, &indices)?
    };
    let ingest_idx = schema.index_of("ingest_time")?;
    let mut columns = batch.columns().to_vec();
    columns[ingest_idx] = Arc::new(
        TimestampNanosecondArray::from_value(ingest_time, batch.num_rows()).with_timezone("UTC"),
    );
    RecordBatch::try_new(schema, columns)
}

/// Writes a batch already in `event_time` order durably to `path` (`relative` in `store`), and its
/// rollups beside it.
fn write_parquet(
    store: &Store,
    path: &Path,
    relative: &str,
    batch: RecordBatch,
) -> Result<DataFile, StoreError> {
    let perr = |e: &dyn std::fmt::Display| StoreError::Parquet {
        path: path.to_owned(),
        message: e.to_string(),
    };
    let time_idx = batch
        .schema()
        .index_of("event_time")
        .map_err(|e| perr(&e))?;
    // `join_parts` put the rows in time order (the file declares it).
    debug_assert!(batch
        .column(time_idx)
        .as_primitive::<TimestampNanosecondType>()
        .values()
        .is_sorted());
    let times = batch
        .column(time_idx)
        .as_primitive::<TimestampNanosecondType>();
    let (min, max) = (times.value(0), times.value(times.len() - 1));

    let mut content = ContentDigest::default();
    content.add_batch(&batch).map_err(|e| perr(&e))?;
    let (sha256, bytes) = encode_durably(path, &batch, data_props(time_idx))?;
    crate::fault::crash_point("after_data_rename");
    let mut file = DataFile {
        path: String::new(),
        source: String::new(),
        date: String::new(),
        rows: batch.num_rows() as u64,
        bytes,
        sha256,
        min_time: rfc3339(min),
        max_time: rfc3339(max),
        rollup: None,
        clients: None,
        principals: None,
        content: Some(content.to_string()),
    };
    for kind in rollup::Kind::ALL {
        let counts = kind.of_batch(&batch).map_err(|e| perr(&e))?;
        file.set_rollup(kind, write_rollup(store, kind, relative, &counts)?);
    }
    Ok(file)
}

/// Writes `counts`, the rollup of `kind` of the data file at `data` (store-relative), durably
/// in its place.
pub(super) fn write_rollup(
    store: &Store,
    kind: rollup::Kind,
    data: &str,
    counts: &RecordBatch,
) -> Result<RollupFile, StoreError> {
    write_table(store, kind.path_for(data), counts)
}

/// Writes `batch` durably as the Parquet file `relative` (store-relative) and returns its entry
/// for a commit: how rollups and the findings history are staged.
pub(crate) fn write_table(
    store: &Store,
    relative: String,
    batch: &RecordBatch,
) -> Result<RollupFile, StoreError> {
    let path = store.absolute(&relative);
    if let Some(parent) = path.parent() {
        create_dir_all_durable(parent).map_err(|e| StoreError::io(parent, e))?;
    }
    let (sha256, bytes) = encode_durably(&path, batch, parquet_props().build())?;
    Ok(RollupFile {
        path: relative,
        rows: batch.num_rows() as u64,
        bytes,
        sha256,
    })
}

/// Writes the rows of the Parquet files `sources` (store-relative, all of `schema`) durably into
/// one file `relative`, batch by batch (memory stays that of one batch): how small findings
/// files are merged.
pub(crate) fn merge_tables(
    store: &Store,
    sources: &[&str],
    relative: String,
    schema: datafusion::arrow::datatypes::SchemaRef,
) -> Result<RollupFile, StoreError> {
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let path = store.absolute(&relative);
    if let Some(parent) = path.parent() {
        create_dir_all_durable(parent).map_err(|e| StoreError::io(parent, e))?;
    }
    let mut out = DurableParquet::create(&path, schema, parquet_props().build())?;
    let mut rows = 0u64;
    for source in sources {
        let src = store.shown(source);
        let file = super::files::open(store, source).map_err(|e| StoreError::io(&src, e))?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .and_then(|b| b.build())
            .map_err(|e| parquet_error(&src, &e))?;
        for batch in reader {
            let batch = batch.map_err(|e| parquet_error(&src, &e))?;
            rows += batch.num_rows() as u64;
            out.write(&batch)?;
        }
    }
    let (sha256, bytes) = out.finish()?;
    Ok(RollupFile {
        path: relative,
        rows,
        bytes,
        sha256,
    })
}

/// Deletes a data file that no commit lists, its rollups and their temp files (a run that
/// commits nothing); errors are ignored, the next run sets aside what is left.
pub(super) fn remove_with_rollups(store: &Store, data: &Path) {
    let relative = store.relative(data);
    let rollups = rollup::Kind::ALL.map(|k| store.absolute(&k.path_for(&relative)));
    for path in std::iter::once(data).chain(rollups.iter().map(PathBuf::as_path)) {
        let _ = std::fs::remove_file(path);
        let _ = std::fs::remove_file(temp_path(path));
    }
}

/// Settings of a data file: sorted by `event_time` (column `time_idx`), tagged with the schema
/// version.
pub(super) fn data_props(time_idx: usize) -> WriterProperties {
    // A column whose values are unique per row gains nothing from a dictionary (every value is
    // in it, plus an index per row) and costs a hash and a compare per value when written.
    UNIQUE_COLUMNS
        .iter()
        .fold(parquet_props(), |props, name| {
            props.set_column_dictionary_enabled(ColumnPath::from(*name), false)
        })
        .set_sorting_columns(Some(vec![SortingColumn {
            column_idx: time_idx as i32,
            descending: false,
            nulls_first: false,
        }]))
        .set_key_value_metadata(Some(vec![KeyValue::new(
            SCHEMA_VERSION_KEY.into(),
            SCHEMA_VERSION.to_string(),
        )]))
        .build()
}

/// Columns whose values are (nearly) unique per row, written without a dictionary: a Vault
/// data file is 8 % smaller so, and its encoding ~5 % cheaper.
const UNIQUE_COLUMNS: [&str; 5] = [
    "event_uid",
    "source_event_id",
    "request_id",
    "raw_location",
    "raw_event",
];

/// Footer key of the schema version of a data file.
pub(super) const SCHEMA_VERSION_KEY: &str = "vigil.schema_version";

/// zstd level 1, row groups of `ROW_GROUP_ROWS`: the settings of every file the store writes.
/// Level 1 rather than 3: on a Vault ingest of 1 M entries it took 10 % less of the encoder
/// thread's CPU and the files came out no larger (42 MB against 43 MB), the columns being
/// dictionary and run-length encoded before zstd sees them.
pub(super) fn parquet_props() -> WriterPropertiesBuilder {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(1).expect("valid zstd level"),
        ))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
}

/// Writes `batch` as Parquet to a temp name, fsyncs, renames it to `path`; returns the file's
/// SHA-256 and size.
pub(super) fn encode_durably(
    path: &Path,
    batch: &RecordBatch,
    props: WriterProperties,
) -> Result<(String, u64), StoreError> {
    let mut file = DurableParquet::create(path, batch.schema(), props)?;
    file.write(batch)?;
    file.finish()
}

/// A Parquet file written batch by batch under a temp name (never read, never listed); `finish`
/// fsyncs it and renames it into place, and returns its SHA-256 and size.
pub(super) struct DurableParquet {
    path: PathBuf,
    tmp: PathBuf,
    writer: ArrowWriter<HashingFile>,
}

impl DurableParquet {
    pub(super) fn create(
        path: &Path,
        schema: SchemaRef,
        props: WriterProperties,
    ) -> Result<Self, StoreError> {
        let tmp = temp_path(path);
        let file = File::create(&tmp).map_err(|e| StoreError::io(&tmp, e))?;
        let writer = ArrowWriter::try_new(HashingFile::new(file), schema, Some(props))
            .map_err(|e| parquet_error(path, &e))?;
        Ok(DurableParquet {
            path: path.to_owned(),
            tmp,
            writer,
        })
    }

    pub(super) fn write(&mut self, batch: &RecordBatch) -> Result<(), StoreError> {
        self.writer
            .write(batch)
            .map_err(|e| parquet_error(&self.path, &e))
    }

    pub(super) fn finish(self) -> Result<(String, u64), StoreError> {
        let sink = self
            .writer
            .into_inner()
            .map_err(|e| parquet_error(&self.path, &e))?;
        let hashed = sink.finish().map_err(|e| StoreError::io(&self.tmp, e))?;
        publish(&self.tmp, &self.path).map_err(|e| StoreError::io(&self.path, e))?;
        Ok(hashed)
    }
}

pub(super) fn parquet_error(path: &Path, e: &dyn std::fmt::Display) -> StoreError {
    StoreError::Parquet {
        path: path.to_owned(),
        message: e.to_string(),
    }
}
