//! One ingest run: inputs → records → rows → one commit, with exact accounting.
//!
//! Each file is read from where the store's checkpoints say the last run stopped
//! (`checkpoints`). Every record read ends as stored, merged, duplicate or rejected, per
//! source, or held for the next run (`store::held`). Rows go through the uid index (dedupe
//! against the store and the run) into the partition writer; rejects go to the rejects file.
//! Nothing is visible until the commit, with the new checkpoints and held state, is written at
//! the end.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use thiserror::Error;

use super::checkpoints::{Checkpoints, Start};
use super::inputs::{self, InputFile, Skipped};
use super::objects::{self, ConsumedObjects, ObjectInput, Prefetch};
use super::parallel::{self, End, Prepped};
use super::rejects::{RejectEntry, RejectSink};
use super::source::{
    decode, new_source, prepare, recognize, HeldOut, ParseOptions, Parsed, Prepared, Recognized,
    RecordMeta, Reject, Released, Source,
};
use super::splitter::{Position, RawRecord, Splitter};
use crate::event::{Event, SourceKind};
use crate::fsutil::create_dir_all_durable;
use crate::object_storage::{ObjectError, ObjectReader, ObjectUrl};
use crate::store::chunk::{BuiltRows, RowChunk};
use crate::store::dedupe::UidIndex;
use crate::store::held::Carried;
use crate::store::inputs::{content_hash, FileCheckpoint, InputCheckpoint, ObjectCheckpoint};
use crate::store::transaction::{Changes, Transaction};
use crate::store::writer::PartitionWriter;
use crate::store::{CommitLog, Store, StoreError, Tally};
use crate::timerange::rfc3339;

/// One input ready for its records to be read: a file (perhaps resumed) or an object.
struct Reading<'r> {
    /// How it is named in rows, rejects and summaries.
    display: &'r str,
    reader: Box<dyn io::BufRead + Send>,
    /// Where `reader` is in the content.
    at: Position,
    /// The source the input, or `--source`, forces.
    forced: Option<SourceKind>,
    /// The source its checkpoint names, for a resumed file.
    resumed_source: Option<SourceKind>,
    gzip_problem: Option<&'r (String, String)>,
    /// Still being written: its last line may not be whole yet.
    live: bool,
    /// The progress bar's position before this input.
    start_pos: u64,
    /// Bytes on disk (or in the bucket): what the progress bar counts for it.
    size: u64,
    /// Whether record offsets are bytes on disk too (not decompressed gzip).
    offsets_on_disk: bool,
    /// Its reading can stop between two records and resume there next run (a plain file:
    /// not gzip, not a stream, not an object, whose checkpoints say only "read whole").
    resumable: bool,
}

/// What reading an input came to.
enum Outcome {
    /// Not an input of events (labels, a digest, empty): why.
    Skipped(String),
    /// Nothing to checkpoint: rejected whole, or only an unfinished last line.
    Nothing,
    Read {
        kind: SourceKind,
        records: u64,
        end: End,
        /// Some record was not rejected.
        accepted: bool,
    },
}

/// Records looked at to recognize a file's format before giving up.
const RECOGNIZE_RECORDS: usize = 16;
/// Tally name for files whose format was not recognized.
pub const UNKNOWN_SOURCE: &str = "unknown";

#[derive(Debug, Error)]
pub enum IngestError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{path}: {error}")]
    Input { path: String, error: io::Error },
    #[error("no input files found in {0}")]
    NoInputs(String),
    #[error(transparent)]
    Object(#[from] crate::object_storage::ObjectError),
}

/// What to ingest.
#[derive(Debug, Clone)]
pub enum InputSpec {
    Path(PathBuf),
    Stdin,
    /// Every object under `s3://bucket/prefix` (or the one object it names).
    Object(crate::object_storage::ObjectUrl),
}

#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// Parse every file as this source instead of detecting it.
    pub source: Option<SourceKind>,
    /// Commit nothing if any record is rejected.
    pub strict: bool,
    pub max_record_bytes: usize,
    pub parse: ParseOptions,
    pub progress: bool,
    /// `ingest_time` of every row, nanoseconds.
    pub now: i64,
    /// Event uids the dedupe index keeps in memory at most ([`crate::store::dedupe::DEFAULT_BUDGET`]).
    pub dedupe_budget: usize,
    /// `[ingest] hold_for`, nanoseconds: a file changed more recently than this is still being
    /// written, and a last line without its end waits for the next run.
    pub hold_for: i64,
    /// Drop the records the previous ingest held instead of reading them (`--discard-held`,
    /// for a damaged held-state file).
    pub discard_held: bool,
    /// `[object_store]`: how `s3://` inputs are reached.
    pub object_store: crate::object_storage::ObjectStoreSettings,
    /// Read about this many records at most (`[serve] commit_records`): a plain file is left
    /// between two records, to be resumed there by the next run; a gzip file or an object is
    /// read whole, and none is started once the budget is spent. `IngestReport::more` says
    /// that inputs were left.
    pub max_records: Option<u64>,
}

/// `[ingest] hold_for` unless configured.
pub const DEFAULT_HOLD_FOR: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// What a run did.
#[derive(Debug, Clone, Serialize)]
pub struct IngestReport {
    /// Sequence number of the commit written, if any.
    pub commit: Option<u64>,
    /// SHA-256 of that commit: the store's new head, to keep for `vigil verify --expect-head`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head: Option<String>,
    pub counts: BTreeMap<String, Tally>,
    pub total: Tally,
    pub files_read: u64,
    pub files_written: u64,
    pub skipped: Vec<SkippedInput>,
    /// Files whose last record has no end yet: read from there next time.
    pub waiting: Vec<WaitingInput>,
    pub rejects_file: Option<String>,
    /// The first rejects (all are in the rejects file).
    pub rejects: Vec<RejectEntry>,
    /// True when `--strict` found rejects and nothing was committed.
    pub strict_aborted: bool,
    pub warnings: Vec<String>,
    /// Records the previous ingest held that `--discard-held` dropped.
    #[serde(skip_serializing_if = "crate::store::commit::is_zero")]
    pub held_discarded: u64,
    /// `max_records` stopped the run with input left to read.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub more: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct SkippedInput {
    pub path: String,
    pub why: String,
}

/// A last record left for the next run: the line it starts on, and its bytes so far.
#[derive(Debug, Clone, Serialize)]
pub struct WaitingInput {
    pub path: String,
    pub line: u64,
    pub bytes: u64,
}

impl From<Skipped> for SkippedInput {
    fn from(s: Skipped) -> Self {
        SkippedInput {
            path: s.path,
            why: s.why,
        }
    }
}

/// Runs one ingest into `store`.
pub fn ingest(
    store: &Store,
    specs: &[InputSpec],
    opts: &IngestOptions,
) -> Result<IngestReport, IngestError> {
    let mut tx = Transaction::begin_soon(store, opts.now)?;
    let warnings = tx.take_warnings();
    let mut spooled = None;
    let mut files = Vec::new();
    let mut skipped: Vec<SkippedInput> = Vec::new();
    let paths: Vec<PathBuf> = specs
        .iter()
        .filter_map(|s| {
            if let InputSpec::Path(p) = s {
                Some(p.clone())
            } else {
                None
            }
        })
        .collect();
    let (found, walk_skipped) = inputs::expand(&paths).map_err(|e| IngestError::Input {
        path: "input".into(),
        error: e,
    })?;
    skipped.extend(walk_skipped.into_iter().map(SkippedInput::from));
    if specs.iter().any(|s| matches!(s, InputSpec::Stdin)) {
        let path = spool_stdin(store)?;
        files.push(InputFile {
            path: path.clone(),
            display: "stdin".into(),
            stream: true,
            source: None,
        });
        spooled = Some(path);
    }
    files.extend(found);
    let urls: Vec<ObjectUrl> = specs
        .iter()
        .filter_map(|s| match s {
            InputSpec::Object(u) => Some(u.clone()),
            _ => None,
        })
        .collect();
    let (found_objects, objects_skipped) = objects::expand(&urls, &opts.object_store)?;
    skipped.extend(objects_skipped.into_iter().map(SkippedInput::from));
    if files.is_empty() && found_objects.is_empty() && skipped.is_empty() {
        let names: Vec<String> = paths
            .iter()
            .map(|p| p.display().to_string())
            .chain(urls.iter().map(ObjectUrl::to_string))
            .collect();
        return Err(IngestError::NoInputs(names.join(", ")));
    }
    let result = ingest_into(
        &mut tx,
        warnings,
        &files,
        &found_objects,
        skipped,
        opts,
        &mut None,
    );
    if let Some(p) = spooled {
        let _ = std::fs::remove_file(p);
    }
    result
}

/// Runs one ingest of `files` and `objects` (already found; `skipped` what finding them passed
/// over) into `store`: for a caller that finds its inputs itself (`vigil serve`).
///
/// `kept` is the dedupe index of the caller's previous run, for a process that holds the
/// store's write lock across its runs: loading the uids of the slots in use again at every
/// commit costs more than the commit at high rates. It is handed back after a run that
/// committed (or that recorded no uid), and left `None` after any other, so that a uid of rows
/// that were not committed never makes a later record a "duplicate".
pub fn ingest_found(
    store: &Store,
    files: &[InputFile],
    objects: &[ObjectInput],
    skipped: Vec<SkippedInput>,
    opts: &IngestOptions,
    kept: &mut Option<UidIndex>,
) -> Result<IngestReport, IngestError> {
    let mut tx = Transaction::begin_soon(store, opts.now)?;
    let warnings = tx.take_warnings();
    ingest_into(&mut tx, warnings, files, objects, skipped, opts, kept)
}

fn ingest_into(
    tx: &mut Transaction<'_>,
    warnings: Vec<String>,
    files: &[InputFile],
    objects: &[ObjectInput],
    mut skipped: Vec<SkippedInput>,
    opts: &IngestOptions,
    kept: &mut Option<UidIndex>,
) -> Result<IngestReport, IngestError> {
    let store = tx.store();
    // Taken: an error anywhere below leaves none kept. On a local store the caller's lock keeps
    // other writers out; on object storage nothing does, so it is used only while no other
    // writer's ingest came after it.
    let head = tx.log().head().map(|c| c.hash.clone());
    let uids = kept
        .take()
        .filter(|u| store.remote().is_none() || u.is_current(tx.log()))
        .unwrap_or_else(|| UidIndex::new(opts.dedupe_budget));
    let mut run = Run::new(store, tx.log(), tx.seq(), opts, uids)?;
    run.restore_held()?;
    run.ingest_files(files, objects, &mut skipped)?;
    let (changes, mut report, uids) = run.finish(skipped, warnings)?;
    match changes {
        Some(changes) => {
            let done = tx.commit(changes, opts.now)?;
            report.commit = Some(done.seq);
            report.head = Some(done.head.clone());
            report.warnings.extend(tx.take_warnings());
            *kept = Some(uids.committed(&done.head));
        }
        None if !uids.changed() => *kept = Some(uids.at(head.as_deref())),
        None => {}
    }
    Ok(report)
}

fn spool_stdin(store: &Store) -> Result<PathBuf, IngestError> {
    let dir = store.root().join("tmp");
    create_dir_all_durable(&dir).map_err(|e| StoreError::io(&dir, e))?;
    let path = dir.join(format!("stdin-{}.spool", std::process::id()));
    let mut out = File::create(&path).map_err(|e| StoreError::io(&path, e))?;
    io::copy(&mut io::stdin().lock(), &mut out).map_err(|e| IngestError::Input {
        path: "stdin".into(),
        error: e,
    })?;
    Ok(path)
}

struct Run<'a> {
    store: &'a Store,
    log: &'a CommitLog,
    opts: &'a IngestOptions,
    seq: u64,
    sources: HashMap<SourceKind, Box<dyn Source>>,
    counts: BTreeMap<String, Tally>,
    pending: HashMap<SourceKind, u64>,
    uids: UidIndex,
    writer: PartitionWriter,
    consumed: Vec<InputCheckpoint>,
    checkpoints: Checkpoints,
    consumed_objects: ConsumedObjects,
    waiting: Vec<WaitingInput>,
    /// Held records left for the next run.
    carried: Vec<Carried>,
    /// Records the previous run held that `--discard-held` dropped.
    held_discarded: u64,
    /// What restoring them had to say.
    held_warning: Option<String>,
    /// The newest event time stored per source.
    newest: HashMap<SourceKind, i64>,
    /// Whether each input (by name) is still being written.
    still_written: HashMap<Arc<str>, bool>,
    rejects: RejectSink,
    progress: ProgressBar,
    files_read: u64,
    /// The source the file being read is forced to (its own, else `--source`).
    forced: Option<SourceKind>,
    /// Records left to read under `max_records`.
    left: Option<u64>,
    /// Inputs left unread or read in part because of `max_records`: the next run follows at
    /// once, and every record held at the end waits for it (its completion may be in what is
    /// left, whatever its age).
    more: bool,
}

impl<'a> Run<'a> {
    fn new(
        store: &'a Store,
        log: &'a CommitLog,
        seq: u64,
        opts: &'a IngestOptions,
        uids: UidIndex,
    ) -> Result<Self, IngestError> {
        let progress = if opts.progress {
            ProgressBar::new(0)
        } else {
            ProgressBar::hidden()
        };
        progress.set_style(
            ProgressStyle::with_template(
                "{spinner} {bytes}/{total_bytes} {bytes_per_sec} {wide_msg}",
            )
            .expect("valid progress template"),
        );
        Ok(Run {
            store,
            log,
            opts,
            seq,
            sources: HashMap::new(),
            counts: BTreeMap::new(),
            pending: HashMap::new(),
            uids,
            writer: PartitionWriter::new(store.clone(), seq, opts.now),
            consumed: Vec::new(),
            checkpoints: Checkpoints::from_log(log),
            consumed_objects: ConsumedObjects::from_log(log),
            waiting: Vec::new(),
            carried: Vec::new(),
            held_discarded: 0,
            held_warning: None,
            newest: HashMap::new(),
            still_written: HashMap::new(),
            rejects: RejectSink::new(store, seq, opts.now)?,
            progress,
            files_read: 0,
            forced: opts.source,
            left: opts.max_records,
            more: false,
        })
    }

    fn ingest_files(
        &mut self,
        files: &[InputFile],
        objects: &[ObjectInput],
        skipped: &mut Vec<SkippedInput>,
    ) -> Result<(), IngestError> {
        let total: u64 = files
            .iter()
            .filter_map(|f| std::fs::metadata(&f.path).ok())
            .map(|m| m.len())
            .chain(objects.iter().map(|o| o.info.size))
            .sum();
        self.progress.set_length(total);
        for file in files {
            if self.left == Some(0) {
                self.more = true;
                break;
            }
            self.progress.set_message(file.display.clone());
            if let Some(why) = self.ingest_file(file)? {
                skipped.push(SkippedInput {
                    path: file.display.clone(),
                    why,
                });
            }
        }
        let mut ahead = Prefetch::new(
            objects,
            |o| self.consumed_objects.read_by(o).is_none(),
            self.opts.object_store.max_in_flight,
        );
        for (i, object) in objects.iter().enumerate() {
            if self.left == Some(0) {
                self.more = true;
                break;
            }
            let prefetched = ahead.take(i);
            self.progress.set_message(object.url.clone());
            if let Some(why) = self.ingest_object(object, prefetched)? {
                skipped.push(SkippedInput {
                    path: object.url.clone(),
                    why,
                });
            }
        }
        // What is still held waits for the next run if it may yet be completed there, and is
        // stored alone (or rejected) now if not.
        let kinds: Vec<SourceKind> = self.sources.keys().copied().collect();
        for kind in kinds {
            for HeldOut {
                key,
                file,
                released,
            } in self.parser(kind).drain_held()
            {
                match released {
                    Released::Row(mut event) if self.carries(kind, &file, event.event_time) => {
                        if !self.opts.parse.keep_raw {
                            event.raw_event = None;
                        }
                        *self.pending.entry(kind).or_default() -= 1;
                        self.tally(kind).held += 1;
                        // By absolute path: the next run may start in another directory.
                        let file = std::fs::canonicalize(&*file)
                            .map_or_else(|_| file.to_string(), |p| p.display().to_string());
                        self.carried.push(Carried {
                            source: kind,
                            key,
                            file,
                            event: *event,
                        });
                    }
                    released => self.release(kind, released)?,
                }
            }
        }
        self.progress.finish_and_clear();
        Ok(())
    }

    /// Whether a record held at the end of the run waits for the next: it is less than
    /// `hold_for` old, by the wall clock and by the newest event of its source, and its input is
    /// still being written. Otherwise its completion is not coming (an audit device writes a
    /// response within moments of its request), and it is stored alone now: history read
    /// after the fact never waits.
    fn carries(&mut self, kind: SourceKind, file: &Arc<str>, time: i64) -> bool {
        // What `max_records` left is read by the next run, at once.
        if self.more {
            return true;
        }
        let hold_for = self.opts.hold_for;
        let newest = self.newest.get(&kind).copied().unwrap_or(time);
        let since = newest
            .max(crate::clock::wall_nanos())
            .saturating_sub(hold_for);
        if hold_for <= 0 || time < since {
            return false;
        }
        *self
            .still_written
            .entry(Arc::clone(file))
            .or_insert_with(|| inputs::is_live_on_disk(Path::new(&**file), hold_for))
    }

    /// Holds again the records the previous run carried.
    fn restore_held(&mut self) -> Result<(), IngestError> {
        let Some(file) = crate::store::held::live(self.log) else {
            return Ok(());
        };
        if self.opts.discard_held {
            // Not read at all: a damaged file may hold anything, and forged events must not
            // reach the store. The commit records how many were dropped.
            self.held_discarded = file.records;
            self.held_warning = Some(format!(
                "--discard-held: dropped {} record(s) the last ingest held ({}); they are not in the store",
                file.records, file.path
            ));
            return Ok(());
        }
        let held = crate::store::held::read(self.store, file).map_err(|e| match e {
            StoreError::Damaged(why) => StoreError::Damaged(format!(
                "{why}; `vigil ingest --discard-held` goes on without those {} record(s)",
                file.records
            )),
            e => e,
        })?;
        for c in held {
            let kind = c.source;
            self.note_time(kind, c.event.event_time);
            self.tally(kind).resumed += 1;
            *self.pending.entry(kind).or_default() += 1;
            // (Only a lower cap than the previous run's lets one go.)
            if let Some(released) = self.parser(kind).restore(c.key, c.event, Arc::from(c.file)) {
                self.release(kind, released)?;
            }
        }
        Ok(())
    }

    fn note_time(&mut self, kind: SourceKind, time: i64) {
        let newest = self.newest.entry(kind).or_insert(time);
        *newest = (*newest).max(time);
    }

    /// Reads one file, or what was appended to it since the last run; returns why it was
    /// skipped, if it was.
    fn ingest_file(&mut self, file: &InputFile) -> Result<Option<String>, IngestError> {
        let input_err = |e: io::Error| IngestError::Input {
            path: file.display.clone(),
            error: e,
        };
        // Gzip is proved whole here, before any record is read: a damaged stream stores nothing.
        let id = inputs::identify(&file.path).map_err(input_err)?;
        let start_pos = self.progress.position();
        // A stream (stdin) is read whole: it has no place to resume and is gone after the run.
        let start = if file.stream || id.gzip_problem.is_some() {
            Start::Fresh
        } else {
            self.checkpoints.start(&file.path, &id).map_err(input_err)?
        };
        let (reader, resumed) = match start {
            Start::Done { seq } => {
                self.progress.inc(id.size);
                return Ok(Some(if seq == self.seq {
                    "same content as another input of this run".into()
                } else {
                    format!("already ingested (commit {seq})")
                }));
            }
            Start::Resume { checkpoint, reader } => (reader, Some(checkpoint)),
            Start::Fresh => (inputs::open(&file.path, id.gzip).map_err(input_err)?, None),
        };
        self.files_read += 1;
        let at = resumed.as_ref().map_or(Position::START, |c| Position {
            offset: c.offset,
            line: c.line,
            index: c.index,
        });
        if !id.gzip {
            self.progress.inc(at.offset);
        }
        // A file written to lately is still being written: its last line may not be whole yet.
        // Gzip files and streams are complete by nature.
        let live = !file.stream && inputs::is_live(id.gzip, id.mtime, self.opts.hold_for);
        let outcome = self.read_input(Reading {
            display: &file.display,
            reader,
            at,
            forced: file.source.or(self.opts.source),
            resumed_source: resumed.as_ref().and_then(|c| SourceKind::parse(&c.source)),
            gzip_problem: id.gzip_problem.as_ref(),
            live,
            start_pos,
            size: id.size,
            offsets_on_disk: !id.gzip,
            resumable: !id.gzip && !file.stream,
        })?;
        let (kind, n, end) = match outcome {
            Outcome::Skipped(why) => return Ok(Some(why)),
            Outcome::Nothing => return Ok(None),
            Outcome::Read {
                kind,
                records,
                end,
                accepted,
            } => {
                if file.stream || records == 0 || !(accepted || resumed.is_some()) {
                    // Read again next time from where it was: not progress, so it neither
                    // spends `max_records` nor asks for a run right away (a file rejected
                    // whole would otherwise be read in a loop, and hold up the inputs after it).
                    return Ok(None);
                }
                self.spend(records, end.cut);
                (kind, records, end)
            }
        };
        let tail = match &id.end_tail {
            Some(t) if end.at.offset == id.content_len => t.clone(),
            _ => inputs::tail_hash(&file.path, id.gzip, end.at.offset).map_err(input_err)?,
        };
        let checkpoint = FileCheckpoint {
            path: file.display.clone(),
            head: content_hash(&id.head),
            head_len: id.head.len() as u64,
            offset: end.at.offset,
            line: end.at.line,
            index: end.at.index,
            tail,
            dev: id.dev,
            inode: id.inode,
            size: id.size,
            mtime: rfc3339(id.mtime),
            gzip: id.gzip,
            source: kind.as_str().to_owned(),
            records: n,
        };
        self.checkpoints.record(checkpoint.clone(), self.seq);
        self.consumed.push(InputCheckpoint::File(checkpoint));
        Ok(None)
    }

    /// Reads one object whole, unless this version of it was read before; returns why it was
    /// skipped, if it was.
    fn ingest_object(
        &mut self,
        object: &ObjectInput,
        prefetched: Option<ObjectReader>,
    ) -> Result<Option<String>, IngestError> {
        let start_pos = self.progress.position();
        if let Some(seq) = self.consumed_objects.read_by(object) {
            self.progress.inc(object.info.size);
            return Ok(Some(if seq == self.seq {
                "same object as another input of this run".into()
            } else {
                format!("already ingested (commit {seq})")
            }));
        }
        let first = prefetched.unwrap_or_else(|| object.bucket.reader(&object.info));
        let opened = objects::open(object, first).map_err(|e| match e {
            objects::OpenError::Store(e) => IngestError::Object(e),
            objects::OpenError::Read(error) => IngestError::Input {
                path: object.url.clone(),
                error,
            },
        })?;
        self.files_read += 1;
        let outcome = self.read_input(Reading {
            display: &object.url,
            reader: opened.reader,
            at: Position::START,
            forced: object.source.or(self.opts.source),
            resumed_source: None,
            gzip_problem: opened.gzip_problem.as_ref(),
            live: false,
            start_pos,
            size: object.info.size,
            offsets_on_disk: !opened.gzip,
            resumable: false,
        })?;
        let (records, why) = match outcome {
            // A digest, labels or an empty object: an object never changes, so it is
            // remembered too, and not fetched again by every run (CloudTrail writes a digest
            // an hour per region).
            Outcome::Skipped(why) => (0, Some(why)),
            Outcome::Nothing => return Ok(None),
            Outcome::Read {
                records, accepted, ..
            } if records > 0 && accepted => {
                self.spend(records, false);
                (records, None)
            }
            Outcome::Read { .. } => return Ok(None),
        };
        let checkpoint = ObjectCheckpoint {
            key: object.url.clone(),
            etag: object.info.etag.clone(),
            size: object.info.size,
            records,
        };
        self.consumed_objects.record(&checkpoint, self.seq);
        self.consumed.push(InputCheckpoint::Object(checkpoint));
        Ok(why)
    }

    /// Recognizes the format of one input (file or object) and reads its records.
    fn read_input(&mut self, input: Reading<'_>) -> Result<Outcome, IngestError> {
        let Reading {
            display,
            reader,
            at,
            forced,
            resumed_source,
            gzip_problem,
            live,
            start_pos,
            size,
            offsets_on_disk,
            resumable,
        } = input;
        let input_err = |e: io::Error| match ObjectError::from_io(&e) {
            Some(o) => IngestError::Object(o.clone()),
            None => IngestError::Input {
                path: display.to_owned(),
                error: e,
            },
        };
        let mut records = Splitter::resuming(reader, self.opts.max_record_bytes, at);
        self.still_written.insert(Arc::from(display), live);
        if live {
            records = records.wait_for_tail();
        }
        if let (Some(left), true) = (self.left, resumable) {
            // Never fewer than it takes to recognize the format.
            records = records.at_most(left.max(RECOGNIZE_RECORDS as u64));
        }

        // Recognize the format from the first records that parse (a resumed file keeps the
        // source its checkpoint names).
        let mut lookahead: Vec<RawRecord> = Vec::new();
        self.forced = forced;
        let mut recognized = forced.or(resumed_source).map(Recognized::Source);
        while recognized.is_none() && lookahead.len() < RECOGNIZE_RECORDS {
            match records.next() {
                None => break,
                Some(Err(_)) if gzip_problem.is_some() => break,
                Some(Err(e)) => return Err(input_err(e)),
                Some(Ok(rec)) => {
                    if let Ok(v) = decode(&rec) {
                        recognized = recognize(&v);
                    }
                    lookahead.push(rec);
                }
            }
        }
        let kind = match recognized {
            Some(Recognized::Labels) => {
                self.progress.set_position(start_pos + size);
                return Ok(Outcome::Skipped(
                    "vigil generate labels (ground truth, not events)".into(),
                ));
            }
            Some(Recognized::CloudTrailDigest) => {
                self.progress.set_position(start_pos + size);
                return Ok(Outcome::Skipped(
                    "CloudTrail digest file (hashes, not events)".into(),
                ));
            }
            Some(Recognized::Source(k)) => Some(k),
            None => None,
        };
        let tally_name = kind.map_or(UNKNOWN_SOURCE, SourceKind::as_str);
        if let Some((reason, detail)) = gzip_problem {
            // Nothing from a damaged gzip input is stored; it counts as one rejected record.
            self.reject_file(display, tally_name, reason, detail.clone())?;
            return Ok(Outcome::Nothing);
        }
        let Some(kind) = kind else {
            if lookahead.is_empty() {
                if records.waiting() > 0 {
                    self.note_waiting(display, records.end(), records.waiting());
                    return Ok(Outcome::Nothing);
                }
                return Ok(Outcome::Skipped("empty file".into()));
            }
            let detail = format!(
                "no record looks like any supported source ({}); use --source to force one",
                SourceKind::names()
            );
            self.reject_file(display, UNKNOWN_SOURCE, "unknown_format", detail)?;
            return Ok(Outcome::Nothing);
        };
        let rejected_before = self.counts.get(kind.as_str()).map_or(0, |t| t.rejected);
        let file_name: Arc<str> = Arc::from(display);
        let parse_opts: &'a ParseOptions = &self.opts.parse;
        let mut n = 0u64;
        for rec in lookahead {
            n += 1;
            let meta = RecordMeta::for_record(&file_name, &rec);
            let prepared = prepare(kind, parse_opts, &rec, &meta, None);
            self.handle_record(
                kind,
                Prepped {
                    rec,
                    meta,
                    prepared,
                },
                None,
            )?;
        }
        let end = std::thread::scope(|scope| -> Result<Option<End>, IngestError> {
            let batches = parallel::spawn(scope, records, kind, parse_opts, Arc::clone(&file_name));
            let mut end = None;
            for batch in batches {
                for item in batch.items {
                    n += 1;
                    if n.is_multiple_of(4096) && offsets_on_disk {
                        self.progress.set_position(start_pos + item.rec.offset);
                    }
                    self.handle_record(kind, item, batch.chunk.as_ref())?;
                }
                if let Some(e) = batch.error {
                    return Err(input_err(e));
                }
                end = end.or(batch.end);
            }
            Ok(end)
        })?;
        self.progress.set_position(start_pos + size);
        let end =
            end.ok_or_else(|| input_err(io::Error::other("a parsing thread stopped early")))?;
        if end.waiting > 0 {
            self.note_waiting(display, end.at, end.waiting);
        }

        // An input counts as read up to its end only if some of it was accepted: one
        // rejected whole, say parsed as the wrong source, can be ingested again. (What a
        // resumed file rejects was after records that were accepted.)
        let rejected = self.counts.get(kind.as_str()).map_or(0, |t| t.rejected) - rejected_before;
        Ok(Outcome::Read {
            kind,
            records: n,
            end,
            accepted: n > rejected,
        })
    }

    /// Counts the records of an input read (and checkpointed) against `max_records`.
    fn spend(&mut self, records: u64, cut: bool) {
        self.left = self.left.map(|l| l.saturating_sub(records));
        self.more |= cut;
    }

    fn note_waiting(&mut self, display: &str, at: Position, bytes: u64) {
        self.waiting.push(WaitingInput {
            path: display.to_owned(),
            line: at.line,
            bytes,
        });
    }

    fn reject_file(
        &mut self,
        display: &str,
        tally: &str,
        reason: &str,
        detail: String,
    ) -> Result<(), IngestError> {
        let t = self.counts.entry(tally.to_owned()).or_default();
        t.read += 1;
        t.rejected += 1;
        let source = (tally != UNKNOWN_SOURCE).then_some(tally);
        self.rejects
            .push(RejectEntry::for_file(display, source, reason, detail, 1))?;
        // Not marked consumed: a file rejected whole is read again by the next run.
        Ok(())
    }

    fn parser(&mut self, kind: SourceKind) -> &mut Box<dyn Source> {
        let opts = &self.opts.parse;
        self.sources
            .entry(kind)
            .or_insert_with(|| new_source(kind, opts))
    }

    /// Settles one record; `chunk` holds the rows a parsing thread built for its batch.
    fn handle_record(
        &mut self,
        kind: SourceKind,
        item: Prepped,
        chunk: Option<&Arc<RowChunk>>,
    ) -> Result<(), IngestError> {
        let Prepped {
            rec,
            meta,
            prepared,
        } = item;
        let decoded = match prepared {
            Prepared::Decoded(decoded) => decoded,
            // Parsed on a parsing thread (a source that keeps no state, so `kind` is its own).
            Prepared::Parsed(parsed) => {
                self.tally(kind).read += 1;
                return match parsed {
                    Ok(parsed) => self.settle_parsed(kind, parsed, chunk),
                    Err(rej) => self.reject(kind, &meta.file, &rec, rej),
                };
            }
            ahead => {
                self.tally(kind).read += 1;
                let parsed =
                    self.parser(kind)
                        .settle_prepared(ahead, rec, meta, chunk.map(|c| c.as_ref()));
                return self.settle_parsed(kind, parsed, chunk);
            }
        };
        let value = match decoded {
            Ok(v) => v,
            Err(rej) => {
                self.tally(kind).read += 1;
                return self.reject(kind, &meta.file, &rec, rej);
            }
        };
        let kind = match self.forced {
            Some(forced) => forced,
            None => super::source::refine(kind, &value),
        };
        self.tally(kind).read += 1;
        match self.parser(kind).parse(value, &meta) {
            Ok(parsed) => self.settle_parsed(kind, parsed, None),
            Err(rej) => self.reject(kind, &meta.file, &rec, rej),
        }
    }

    /// Accounts for what a parser made of one record.
    fn settle_parsed(
        &mut self,
        kind: SourceKind,
        parsed: Parsed,
        chunk: Option<&Arc<RowChunk>>,
    ) -> Result<(), IngestError> {
        match parsed {
            Parsed::Built { rows, merged } => {
                *self.pending.entry(kind).or_default() -= merged;
                self.tally(kind).merged += merged;
                let chunk = chunk.expect("built rows come with their chunk");
                self.store_built(kind, chunk, rows)
            }
            Parsed::Rows { rows, merged } => {
                *self.pending.entry(kind).or_default() -= merged;
                self.tally(kind).merged += merged;
                self.store_rows(kind, rows)
            }
            Parsed::Held { released, merged } => {
                let pending = self.pending.entry(kind).or_default();
                *pending = *pending + 1 - merged;
                self.tally(kind).merged += merged;
                for r in released {
                    self.release(kind, r)?;
                }
                Ok(())
            }
            Parsed::Duplicate => {
                self.tally(kind).duplicates += 1;
                Ok(())
            }
        }
    }

    /// A held record let go without its completion: stored alone, or rejected.
    fn release(&mut self, kind: SourceKind, released: Released) -> Result<(), IngestError> {
        *self.pending.entry(kind).or_default() -= 1;
        match released {
            Released::Row(e) => self.store_rows(kind, vec![*e]),
            Released::Rejected {
                reject,
                record,
                file,
            } => self.reject(kind, &file, &record, reject),
        }
    }

    fn tally(&mut self, kind: SourceKind) -> &mut Tally {
        // Called for every record: no allocation once the source has its entry.
        let name = kind.as_str();
        if !self.counts.contains_key(name) {
            self.counts.insert(name.to_owned(), Tally::default());
        }
        self.counts.get_mut(name).expect("inserted above")
    }

    fn reject(
        &mut self,
        kind: SourceKind,
        file: &str,
        rec: &RawRecord,
        rej: Reject,
    ) -> Result<(), IngestError> {
        self.tally(kind).rejected += 1;
        let entry = RejectEntry::for_record(file, rec, Some(kind.as_str()), rej.reason, rej.detail);
        self.rejects.push(entry)?;
        Ok(())
    }

    /// Stores the rows of one record; the record counts as stored if any row is new.
    fn store_rows(&mut self, kind: SourceKind, rows: Vec<Event>) -> Result<(), IngestError> {
        if let Some(newest) = rows.iter().map(|e| e.event_time).max() {
            self.note_time(kind, newest);
        }
        let mut new_rows = 0;
        for mut e in rows {
            if !self.opts.parse.keep_raw {
                e.raw_event = None;
            }
            if self
                .uids
                .insert(self.store, self.log, &mut self.writer, &e)?
            {
                self.writer.push(&e)?;
                new_rows += 1;
            }
        }
        self.count_stored(kind, new_rows);
        Ok(())
    }

    /// [`Run::store_rows`] for rows a parsing thread built: keyed by what it hashed, buffered
    /// by row number.
    fn store_built(
        &mut self,
        kind: SourceKind,
        chunk: &Arc<RowChunk>,
        rows: BuiltRows,
    ) -> Result<(), IngestError> {
        let keys = &chunk.keys[rows.range()];
        if let Some(newest) = keys.iter().map(|k| k.event_time).max() {
            self.note_time(kind, newest);
        }
        let mut new_rows = 0;
        for row in rows.range() {
            if self
                .uids
                .insert_key(self.store, self.log, &mut self.writer, &chunk.keys[row])?
            {
                self.writer.push_built(chunk, row)?;
                new_rows += 1;
            }
        }
        self.count_stored(kind, new_rows);
        Ok(())
    }

    /// A record's rows are stored: it counts as stored if any row is new.
    fn count_stored(&mut self, kind: SourceKind, new_rows: u64) {
        let t = self.tally(kind);
        if new_rows > 0 {
            t.stored += 1;
            t.rows += new_rows;
        } else {
            t.duplicates += 1;
        }
    }

    /// Closes the run's files: the changes to commit (none when there is nothing to commit or
    /// `--strict` found rejects, and then nothing staged is left) and the report without its
    /// commit.
    fn finish(
        self,
        skipped: Vec<SkippedInput>,
        mut warnings: Vec<String>,
    ) -> Result<(Option<Changes>, IngestReport, UidIndex), IngestError> {
        let Run {
            opts,
            counts,
            writer,
            consumed,
            rejects,
            files_read,
            pending,
            waiting,
            carried,
            store,
            seq,
            held_discarded,
            held_warning,
            more,
            uids,
            ..
        } = self;
        warnings.extend(held_warning);
        debug_assert!(
            pending.values().all(|p| *p == 0),
            "held records left unaccounted: {pending:?}"
        );
        let mut total = Tally::default();
        for t in counts.values() {
            total.add(t);
        }
        let shown = rejects.shown.clone();
        let strict_aborted = opts.strict && total.rejected > 0;
        let mut report = IngestReport {
            commit: None,
            head: None,
            counts,
            total,
            files_read,
            files_written: 0,
            skipped,
            waiting,
            rejects_file: None,
            rejects: shown,
            strict_aborted,
            warnings: Vec::new(),
            held_discarded,
            more,
        };
        // Nothing read, and everything carried in carried on: the store stays as it is.
        if strict_aborted || (total.read == 0 && total.held == total.resumed && held_discarded == 0)
        {
            writer.abandon();
            rejects.discard();
            report.warnings = warnings;
            return Ok((None, report, uids));
        }
        let files = writer.finish()?;
        let rejects_file = rejects.publish()?;
        let held = crate::store::held::write(store, seq, &carried)?;
        if report.counts.values().any(|t| !t.balanced()) {
            warnings.push(
                "internal accounting error: read + resumed != stored + merged + duplicates + rejected + held".into(),
            );
        }
        report.files_written = files.len() as u64;
        report.rejects_file = rejects_file.as_ref().map(|r| r.path.clone());
        report.warnings = warnings;
        let changes = Changes {
            files,
            rejects: rejects_file,
            inputs: consumed,
            counts: report.counts.clone(),
            held,
            held_discarded,
            ..Default::default()
        };
        Ok((Some(changes), report, uids))
    }
}
