//! Compaction: the small data files of a partition rewritten as a few large ones, in one commit.
//!
//! Every ingest writes its own files, and a partition's buffer is written out every ~24 MiB, so
//! a day ingested by a cron job every few minutes, or in bulk with `keep_raw`, ends up in tens or
//! hundreds of files of a few thousand rows. Queries pay per file and per row group (footer,
//! dictionaries, decompression contexts): on 5 M events, reports ran 30–50 % slower over 548
//! files of 9 k rows than over 186 files of 27 k rows. `vigil compact` merges the small files of
//! each partition in `event_time` order into files of up to [`TARGET_ROWS`] rows, each with its
//! rollups (`rollup::Kind::ALL`), and commits them together with the removal of the files they replace: a
//! reader sees the old files or the new ones, never both and never neither. Inputs are
//! checked against the hashes their commits recorded before they are rewritten (a copy must not
//! launder a changed file), and `vigil verify` checks that each day's rows removed and added are
//! equal. Files of an older vigil that lack a kind of
//! rollup are rewritten with all of them (alone if need be), so compaction also brings an old
//! store's `event_counts`, `client_counts` and `principal_counts` up to speed: after an upgrade that adds a kind,
//! the first compaction rewrites every file of the current schema once. Replaced files stay on disk for a grace
//! period, so queries that listed them finish, and a later compact or ingest deletes them.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::path::PathBuf;

use datafusion::arrow::array::{AsArray, RecordBatch, TimestampNanosecondArray};
use datafusion::arrow::compute::interleave_record_batch;
use datafusion::arrow::datatypes::{SchemaRef, TimestampNanosecondType};
use datafusion::parquet::arrow::arrow_reader::{
    ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder,
};
use serde::Serialize;

use super::commit::{DataFile, RemovedFile};
use super::digest::ContentDigest;
use super::transaction::{Changes, Transaction};
use super::writer::{data_props, parquet_error, DurableParquet, SCHEMA_VERSION_KEY};
use super::{rollup, CommitLog, Store, StoreError, EVENTS_DIR};
use crate::event::{EventBatchBuilder, SCHEMA_VERSION};
use crate::timerange::parse_instant;
use crate::timerange::rfc3339;

/// Rows per compacted file at most (8 row groups).
pub const TARGET_ROWS: u64 = 1 << 20;
/// Files with fewer rows than this are merged; larger ones are left as they are, so compacting
/// twice changes nothing.
pub const SMALL_ROWS: u64 = TARGET_ROWS / 2;
/// Rows per merged batch.
const CHUNK_ROWS: usize = 8192;
/// Rows held by all the readers of one merge together (each holds one batch).
const MERGE_WINDOW_ROWS: usize = 64 * 1024;
/// Rollup rows of chunks kept before they are summed into one.
const ROLLUP_PARTS_ROWS: usize = 128 * 1024;

#[derive(Debug, Clone)]
pub struct CompactOptions {
    /// "Now": the commit's time and the end of the grace period.
    pub now: i64,
    /// How long the files this compaction replaces stay on disk after its commit.
    pub grace_nanos: i64,
    /// Only these sources (empty: all).
    pub sources: Vec<String>,
}

/// What a compaction did.
#[derive(Debug, Default, Serialize)]
pub struct CompactReport {
    /// The commit made, if any partition had small files to merge.
    pub commit: Option<u64>,
    pub partitions: u64,
    pub files_before: u64,
    pub files_after: u64,
    pub rows: u64,
    pub bytes_before: u64,
    pub bytes_after: u64,
    /// Replaced files (data and rollup) deleted because their grace period was over.
    pub deleted: u64,
    pub warnings: Vec<String>,
}

/// Compacts every partition of `store` that holds two or more small files or a file without
/// every kind of rollup.
pub fn compact(store: &Store, opts: &CompactOptions) -> Result<CompactReport, StoreError> {
    let mut tx = Transaction::begin_soon(store, opts.now)?;
    let mut report = CompactReport {
        warnings: tx.take_warnings(),
        ..Default::default()
    };
    if store.remote().is_some() {
        // Files no commit lists, written before the grace period began (and at least an
        // hour ago): what a writer left that stopped between its uploads and its commit (a
        // newer one may be a racing writer's, still uploading).
        let orphans = super::publish::set_aside_orphans(store, opts.grace_nanos)?;
        if !orphans.is_empty() {
            report.warnings.push(format!(
                "set aside {} object(s) that no commit lists in {}/ (left by a writer that stopped before its commit, or by a deleted commit: see vigil verify; delete them once you know which)",
                orphans.len(),
                super::QUARANTINE_DIR
            ));
        }
    }
    let seq = tx.seq();
    let mut out = Outputs {
        store,
        seq,
        next: 0,
        written: Vec::new(),
        opened: Vec::new(),
    };
    let removed = match merge_partitions(store, tx.log(), opts, &mut out, &mut report) {
        Ok(removed) => removed,
        Err(e) => {
            out.abandon();
            return Err(e);
        }
    };
    if removed.is_empty() {
        report.deleted = tx.deleted();
        return Ok(report);
    }
    report.bytes_after = out.written.iter().map(|f| f.bytes).sum();
    // The grace period runs from the commit, not from the start of a long compaction.
    let committed = crate::clock::now_nanos().unwrap_or(opts.now).max(opts.now);
    let changes = Changes {
        files: out.written.clone(),
        removed,
        keep_removed_until: Some(committed.saturating_add(opts.grace_nanos.max(0))),
        ..Default::default()
    };
    let done = tx.commit(changes, committed)?;
    report.commit = Some(done.seq);
    report.deleted = tx.deleted();
    report.warnings.extend(tx.take_warnings());
    Ok(report)
}

/// Merges the small files of every partition that needs it; returns the files removed.
fn merge_partitions(
    store: &Store,
    log: &CommitLog,
    opts: &CompactOptions,
    out: &mut Outputs,
    report: &mut CompactReport,
) -> Result<Vec<RemovedFile>, StoreError> {
    let reference = EventBatchBuilder::new(0)
        .finish()
        .map_err(|e| parquet_error(store.root(), &e))?
        .schema();
    let mut partitions: BTreeMap<(&str, &str), Vec<&DataFile>> = BTreeMap::new();
    for f in log.files() {
        // A file written before a kind of rollup existed is rewritten even alone, to get it.
        let wanted = f.rows < SMALL_ROWS || !f.has_all_rollups();
        if wanted && (opts.sources.is_empty() || opts.sources.contains(&f.source)) {
            partitions
                .entry((f.source.as_str(), f.date.as_str()))
                .or_default()
                .push(f);
        }
    }
    let mut removed = Vec::new();
    for ((source, date), files) in partitions {
        let mut mergeable = Vec::new();
        for f in files {
            if current_schema(store, f, &reference)? {
                mergeable.push(f);
            } else {
                report.warnings.push(format!(
                    "{} has another schema version or other columns than this vigil writes and is left as it is (if no older vigil wrote it, run vigil verify)",
                    f.path
                ));
            }
        }
        if mergeable.len() < 2 && mergeable.iter().all(|f| f.has_all_rollups()) {
            continue;
        }
        // Rewriting a file that was changed on disk would launder the change: its copy would
        // carry a new, valid hash. Every input must be exactly what its commit recorded.
        for f in &mergeable {
            ensure_unchanged(store, f)?;
        }
        let first_output = out.written.len();
        let rows = merge_partition(store, source, date, &mergeable, &reference, out)?;
        let before: u64 = mergeable.iter().map(|f| f.rows).sum();
        if rows != before {
            return Err(StoreError::Parquet {
                path: store.absolute(&mergeable[0].path),
                message: format!("compaction read {rows} rows from files that hold {before}"),
            });
        }
        check_content(&mergeable, &out.written[first_output..])?;
        let replaced_by: Vec<String> = out.written[first_output..]
            .iter()
            .map(|f| f.path.clone())
            .collect();
        report.partitions += 1;
        report.rows += rows;
        report.files_before += mergeable.len() as u64;
        report.files_after += replaced_by.len() as u64;
        for f in &mergeable {
            report.bytes_before += f.bytes;
            removed.push(RemovedFile {
                path: f.path.clone(),
                sha256: f.sha256.clone(),
                rows: f.rows,
                reason: "compaction".into(),
                replaced_by: replaced_by.clone(),
            });
        }
    }
    Ok(removed)
}

/// Fails when the new files of a partition do not hold exactly the rows of the files they
/// replace, as the content digests recorded for those say (when all of them have one: files of
/// older versions do not).
fn check_content(inputs: &[&DataFile], outputs: &[DataFile]) -> Result<(), StoreError> {
    let Some(before) = super::digest::sum_content(inputs.iter().copied())? else {
        return Ok(());
    };
    let after = super::digest::sum_content(outputs.iter())?;
    if after.as_ref() != Some(&before) {
        return Err(StoreError::Damaged(format!(
            "the rows of source={} date={} read from {} do not match the content digests their commits record; nothing was compacted",
            inputs[0].source,
            inputs[0].date,
            inputs
                .iter()
                .map(|f| f.path.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(())
}

/// Fails when a data file's bytes are not the ones its commit recorded.
fn ensure_unchanged(store: &Store, f: &DataFile) -> Result<(), StoreError> {
    let path = store.shown(&f.path);
    let (sha256, bytes) = super::files::open(store, &f.path)
        .and_then(|mut file| file.sha256())
        .map_err(|e| StoreError::io(&path, e))?;
    if sha256 != f.sha256 || bytes != f.bytes {
        return Err(StoreError::Damaged(format!(
            "{} is not the file its commit recorded (changed since it was written); nothing was compacted",
            f.path
        )));
    }
    Ok(())
}

/// Whether a data file has the columns and schema version this vigil writes (files of an older
/// schema are never merged with newer ones).
fn current_schema(store: &Store, f: &DataFile, reference: &SchemaRef) -> Result<bool, StoreError> {
    let path = store.shown(&f.path);
    let file = super::files::open(store, &f.path).map_err(|e| StoreError::io(&path, e))?;
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| StoreError::Parquet {
            path: path.clone(),
            message: e.to_string(),
        })?;
    let version = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .and_then(|kv| kv.iter().find(|k| k.key == SCHEMA_VERSION_KEY))
        .and_then(|k| k.value.clone());
    Ok(
        version.as_deref() == Some(SCHEMA_VERSION.to_string().as_str())
            && builder.schema().fields() == reference.fields(),
    )
}

fn open_reader(
    store: &Store,
    f: &DataFile,
    batch_rows: usize,
) -> Result<ParquetRecordBatchReader, StoreError> {
    let path = store.shown(&f.path);
    let perr = |e: &dyn std::fmt::Display| StoreError::Parquet {
        path: path.clone(),
        message: e.to_string(),
    };
    let file = super::files::open(store, &f.path).map_err(|e| StoreError::io(&path, e))?;
    ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| perr(&e))?
        .with_batch_size(batch_rows)
        .build()
        .map_err(|e| perr(&e))
}

/// The next non-empty batch of a reader.
fn next_batch(
    reader: &mut ParquetRecordBatchReader,
    path: &str,
) -> Result<Option<RecordBatch>, StoreError> {
    for batch in reader.by_ref() {
        let batch = batch.map_err(|e| StoreError::Parquet {
            path: PathBuf::from(path),
            message: e.to_string(),
        })?;
        if batch.num_rows() > 0 {
            return Ok(Some(batch));
        }
    }
    Ok(None)
}

fn times(batch: &RecordBatch) -> TimestampNanosecondArray {
    batch
        .column_by_name("event_time")
        .expect("data files have event_time")
        .as_primitive::<TimestampNanosecondType>()
        .clone()
}

/// Writes the rows of `files` (each sorted by `event_time`) to new files of the partition, in
/// `event_time` order; returns the rows written. Files whose time ranges do not overlap are
/// copied one after the other; overlapping ones are merged row by row.
fn merge_partition(
    store: &Store,
    source: &str,
    date: &str,
    files: &[&DataFile],
    schema: &SchemaRef,
    out: &mut Outputs,
) -> Result<u64, StoreError> {
    let range = |f: &DataFile| {
        let t = |s: &str| parse_instant(s).unwrap_or(i64::MIN);
        (t(&f.min_time), t(&f.max_time))
    };
    let mut files: Vec<&DataFile> = files.to_vec();
    files.sort_by_key(|f| (range(f), f.path.clone()));
    let mut target = out.open_partition(source, date, schema.clone());
    let mut i = 0;
    while i < files.len() {
        // A cluster: files whose ranges overlap, directly or through each other.
        let mut end = range(files[i]).1;
        let mut j = i + 1;
        while j < files.len() && range(files[j]).0 <= end {
            end = end.max(range(files[j]).1);
            j += 1;
        }
        let cluster = &files[i..j];
        if let [only] = cluster {
            let mut reader = open_reader(store, only, CHUNK_ROWS)?;
            while let Some(batch) = next_batch(&mut reader, &only.path)? {
                target.push(out, &batch)?;
            }
        } else {
            merge_sorted(store, cluster, &mut target, out)?;
        }
        i = j;
    }
    target.close(out)?;
    Ok(target.total_rows)
}

struct Cursor {
    reader: ParquetRecordBatchReader,
    path: String,
    batch: RecordBatch,
    times: TimestampNanosecondArray,
    row: usize,
    /// Index of `batch` among the batches of the chunk being built.
    slot: usize,
}

/// K-way merge of sorted files by `event_time` (ties: the file that starts first), in chunks
/// of `CHUNK_ROWS` rows built with `interleave`; each reader holds one batch, sized so that all
/// of them hold about `MERGE_WINDOW_ROWS` rows.
fn merge_sorted(
    store: &Store,
    files: &[&DataFile],
    target: &mut PartitionOutput,
    out: &mut Outputs,
) -> Result<(), StoreError> {
    let batch_rows = (MERGE_WINDOW_ROWS / files.len()).clamp(256, CHUNK_ROWS);
    let mut slots: Vec<RecordBatch> = Vec::new();
    let mut cursors: Vec<Option<Cursor>> = Vec::new();
    let mut heap = BinaryHeap::new();
    for f in files {
        let mut reader = open_reader(store, f, batch_rows)?;
        let cursor = match next_batch(&mut reader, &f.path)? {
            Some(batch) => {
                slots.push(batch.clone());
                let times = times(&batch);
                heap.push(Reverse((times.value(0), cursors.len())));
                Some(Cursor {
                    reader,
                    path: f.path.clone(),
                    batch,
                    times,
                    row: 0,
                    slot: slots.len() - 1,
                })
            }
            None => None,
        };
        cursors.push(cursor);
    }
    let mut indices: Vec<(usize, usize)> = Vec::with_capacity(CHUNK_ROWS);
    while let Some(Reverse((_, i))) = heap.pop() {
        let c = cursors[i].as_mut().expect("a cursor in the heap is live");
        indices.push((c.slot, c.row));
        c.row += 1;
        if c.row < c.batch.num_rows() {
            heap.push(Reverse((c.times.value(c.row), i)));
        } else if let Some(batch) = next_batch(&mut c.reader, &c.path)? {
            slots.push(batch.clone());
            c.slot = slots.len() - 1;
            c.times = times(&batch);
            c.batch = batch;
            c.row = 0;
            heap.push(Reverse((c.times.value(0), i)));
        } else {
            cursors[i] = None;
        }
        if indices.len() == CHUNK_ROWS || heap.is_empty() {
            let refs: Vec<&RecordBatch> = slots.iter().collect();
            let chunk =
                interleave_record_batch(&refs, &indices).map_err(|e| StoreError::Parquet {
                    path: store.absolute(&files[0].path),
                    message: e.to_string(),
                })?;
            target.push(out, &chunk)?;
            indices.clear();
            // Only the batches the cursors still read from are kept.
            slots.clear();
            for c in cursors.iter_mut().flatten() {
                slots.push(c.batch.clone());
                c.slot = slots.len() - 1;
            }
        }
    }
    Ok(())
}

/// The files written by one compaction, across partitions.
struct Outputs<'a> {
    store: &'a Store,
    seq: u64,
    next: u64,
    written: Vec<DataFile>,
    /// Every data file opened, finished or not.
    opened: Vec<PathBuf>,
}

impl Outputs<'_> {
    fn open_partition(&self, source: &str, date: &str, schema: SchemaRef) -> PartitionOutput {
        PartitionOutput {
            dir: self
                .store
                .root()
                .join(EVENTS_DIR)
                .join(format!("source={source}"))
                .join(format!("date={date}")),
            source: source.to_owned(),
            date: date.to_owned(),
            schema,
            current: None,
            total_rows: 0,
            last_time: i64::MIN,
        }
    }

    /// Deletes every file written or being written, with its rollups and temp files (a
    /// compaction that commits nothing).
    fn abandon(&mut self) {
        self.written.clear();
        for data in self.opened.drain(..) {
            super::writer::remove_with_rollups(self.store, &data);
        }
    }
}

/// The compacted files of one partition, written one after the other.
struct PartitionOutput {
    dir: PathBuf,
    source: String,
    date: String,
    schema: SchemaRef,
    current: Option<OpenFile>,
    total_rows: u64,
    last_time: i64,
}

struct OpenFile {
    file: DurableParquet,
    relative: String,
    rows: u64,
    min: i64,
    /// Per kind of rollup (`rollup::Kind::ALL`), the rollups of the chunks written so far,
    /// merged whenever they grow past [`ROLLUP_PARTS_ROWS`] rows and twice the last merge (so a
    /// file with many groups, say attacker-chosen user agents, is not merged again at every
    /// chunk: memory stays within twice the final rollup, merges are logarithmic in number).
    rollups: [Vec<RecordBatch>; rollup::Kind::ALL.len()],
    merged_rows: [usize; rollup::Kind::ALL.len()],
    content: ContentDigest,
}

impl PartitionOutput {
    /// Appends a batch sorted by `event_time` that continues the rows before it.
    fn push(&mut self, out: &mut Outputs, batch: &RecordBatch) -> Result<(), StoreError> {
        let mut offset = 0;
        while offset < batch.num_rows() {
            if self.current.is_none() {
                self.current = Some(self.open(out)?);
            }
            let current = self.current.as_mut().expect("opened above");
            let take = ((TARGET_ROWS - current.rows) as usize).min(batch.num_rows() - offset);
            let part = batch.slice(offset, take);
            let t = times(&part);
            let sorted = t.values().windows(2).all(|w| w[0] <= w[1]);
            if !sorted || t.value(0) < self.last_time {
                return Err(StoreError::Parquet {
                    path: self.dir.clone(),
                    message: "a data file is not sorted by event_time; nothing was compacted"
                        .into(),
                });
            }
            if current.rows == 0 {
                current.min = t.value(0);
            }
            self.last_time = t.value(t.len() - 1);
            current.file.write(&part)?;
            current
                .content
                .add_batch(&part)
                .map_err(|e| parquet_error(&self.dir, &e))?;
            let kinds = rollup::Kind::ALL.into_iter();
            for ((kind, parts), merged_rows) in kinds
                .zip(&mut current.rollups)
                .zip(&mut current.merged_rows)
            {
                let counts = kind
                    .of_batch(&part)
                    .map_err(|e| parquet_error(&self.dir, &e))?;
                parts.push(counts);
                let rows: usize = parts.iter().map(RecordBatch::num_rows).sum();
                if rows > ROLLUP_PARTS_ROWS.max(2 * *merged_rows) {
                    let merged = kind
                        .merge(parts)
                        .map_err(|e| parquet_error(&self.dir, &e))?;
                    *merged_rows = merged.num_rows();
                    *parts = vec![merged];
                }
            }
            current.rows += take as u64;
            self.total_rows += take as u64;
            offset += take;
            if current.rows == TARGET_ROWS {
                self.close(out)?;
            }
        }
        Ok(())
    }

    fn open(&self, out: &mut Outputs) -> Result<OpenFile, StoreError> {
        let path = self.dir.join(format!(
            "{}-{:04}.parquet",
            out.store.file_stem(out.seq),
            out.next
        ));
        out.next += 1;
        out.opened.push(path.clone());
        let time_idx = self
            .schema
            .index_of("event_time")
            .map_err(|e| parquet_error(&path, &e))?;
        let file = DurableParquet::create(&path, self.schema.clone(), data_props(time_idx))?;
        Ok(OpenFile {
            file,
            relative: out.store.relative(&path),
            rows: 0,
            min: 0,
            rollups: Default::default(),
            merged_rows: [0; rollup::Kind::ALL.len()],
            content: ContentDigest::default(),
        })
    }

    /// Publishes the open file and its rollups.
    fn close(&mut self, out: &mut Outputs) -> Result<(), StoreError> {
        let Some(f) = self.current.take() else {
            return Ok(());
        };
        let (sha256, bytes) = f.file.finish()?;
        let mut data = DataFile {
            path: f.relative.clone(),
            source: self.source.clone(),
            date: self.date.clone(),
            rows: f.rows,
            bytes,
            sha256,
            min_time: rfc3339(f.min),
            max_time: rfc3339(self.last_time),
            rollup: None,
            clients: None,
            principals: None,
            content: Some(f.content.to_string()),
        };
        // Listed before the rollup is written, so an error from here on deletes the data too.
        out.written.push(data.clone());
        crate::fault::crash_point("after_data_rename");
        for (kind, parts) in rollup::Kind::ALL.into_iter().zip(&f.rollups) {
            let counts = kind
                .merge(parts)
                .map_err(|e| parquet_error(&self.dir, &e))?;
            data.set_rollup(
                kind,
                super::writer::write_rollup(out.store, kind, &f.relative, &counts)?,
            );
        }
        *out.written.last_mut().expect("pushed above") = data;
        Ok(())
    }
}
