//! Reading, splitting and the stateless part of parsing one file, on threads of their own.
//!
//! The ingest thread keeps what needs the run's state (pairing Vault requests with responses,
//! dedupe, accounting, the partition writer); everything a record needs alone runs here, ahead
//! of it: a reader thread splits the input into records and deals them out in batches, round
//! robin, to parsing threads, which the ingest thread reads back in the same order. Channels are
//! bounded, so memory stays a few batches per thread whichever side is slower.

use std::io::{self, BufRead};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::Scope;

use super::source::{
    new_source, parses_alone, prepare, ParseOptions, Parsed, Prepared, RecordMeta, RowSink, Source,
};
use super::splitter::{Position, RawRecord, Splitter};
use crate::event::{Event, SourceKind};
use crate::store::chunk::{ChunkBuilder, RowChunk};

/// Records per batch: large enough that channel traffic and the per-batch work (a chunk of Arrow
/// columns, a part of a file to join) are noise (1,024 rather than 256: a Vault ingest 5 %
/// faster), small enough to keep a few batches per thread in flight.
const BATCH_RECORDS: usize = 1024;
/// Batches waiting in each channel.
const QUEUED: usize = 2;

/// One record with what a parsing thread made of it.
pub struct Prepped {
    pub rec: RawRecord,
    pub meta: RecordMeta,
    pub prepared: Prepared,
}

/// Records in input order; `error` ends the file (an I/O or decompression error after them).
pub struct Batch {
    pub items: Vec<Prepped>,
    /// The rows the parsing thread built for these records ([`Prepared::Built`], and
    /// `Parsed::Built` for the entries of sources parsed alone), if any.
    pub chunk: Option<Arc<RowChunk>>,
    pub error: Option<io::Error>,
    /// On the last batch of a file read to its end: where its records end.
    pub end: Option<End>,
}

/// Where the records of a file read to its end stop ([`Splitter::end`]), and the bytes of a
/// last record left waiting for the rest of its line.
#[derive(Debug, Clone, Copy)]
pub struct End {
    pub at: Position,
    pub waiting: u64,
    /// A record limit ended the file's reading before its end.
    pub cut: bool,
}

/// What the reader thread deals out: records, and how the file ended after them.
type Dealt = (Vec<RawRecord>, Option<io::Error>, Option<End>);

/// Parsing threads: one per core (the ingest thread waits on them much of the time).
fn workers() -> usize {
    std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(2, 8)
}

/// Starts the reader and parsing threads of one file inside `scope`; the batches come back in
/// input order. Dropping the iterator stops the threads at their next send.
pub fn spawn<'scope, R>(
    scope: &'scope Scope<'scope, '_>,
    records: Splitter<R>,
    kind: SourceKind,
    opts: &'scope ParseOptions,
    file: Arc<str>,
) -> InOrder
where
    R: BufRead + Send + 'scope,
{
    let n = workers();
    let mut inputs = Vec::with_capacity(n);
    let mut outputs = Vec::with_capacity(n);
    for _ in 0..n {
        let (in_tx, in_rx) = sync_channel::<Dealt>(QUEUED);
        let (out_tx, out_rx) = sync_channel::<Batch>(QUEUED);
        let file = Arc::clone(&file);
        std::thread::Builder::new()
            .name("vigil-parse".into())
            .spawn_scoped(scope, move || {
                parse_batches(in_rx, out_tx, kind, opts, &file)
            })
            .expect("spawning a parsing thread");
        inputs.push(in_tx);
        outputs.push(out_rx);
    }
    std::thread::Builder::new()
        .name("vigil-read".into())
        .spawn_scoped(scope, move || read_batches(records, inputs))
        .expect("spawning the reader thread");
    InOrder { outputs, next: 0 }
}

fn read_batches<R: BufRead>(mut records: Splitter<R>, inputs: Vec<SyncSender<Dealt>>) {
    for turn in 0.. {
        let mut batch = Vec::with_capacity(BATCH_RECORDS);
        let mut error = None;
        let mut ended = false;
        while batch.len() < BATCH_RECORDS {
            match records.next() {
                Some(Ok(rec)) => batch.push(rec),
                Some(Err(e)) => {
                    error = Some(e);
                    break;
                }
                None => {
                    ended = true;
                    break;
                }
            }
        }
        let last = ended || error.is_some();
        let end = ended.then(|| End {
            at: records.end(),
            waiting: records.waiting(),
            cut: records.cut(),
        });
        if (!batch.is_empty() || last)
            && inputs[turn % inputs.len()]
                .send((batch, error, end))
                .is_err()
        {
            return;
        }
        if last {
            return;
        }
    }
}

fn parse_batches(
    input: Receiver<Dealt>,
    output: SyncSender<Batch>,
    kind: SourceKind,
    opts: &ParseOptions,
    file: &Arc<str>,
) {
    // This thread's parser of a source that keeps no state between records (made on first use).
    let mut alone: Option<Box<dyn Source>> = None;
    let mut built = ChunkBuilder::new(opts.keep_raw);
    // The event every fast-path row is built into before its columns take it.
    let mut scratch = Event::new(kind, "", String::new(), 0);
    for (records, error, end) in input {
        let items = records
            .into_iter()
            .map(|rec| {
                let meta = RecordMeta::for_record(file, &rec);
                let sink = RowSink {
                    chunk: &mut built,
                    scratch: &mut scratch,
                };
                let prepared = match prepare(kind, opts, &rec, &meta, Some(sink)) {
                    Prepared::Decoded(Ok(value)) if parses_alone(kind, &value) => {
                        let parser = alone.get_or_insert_with(|| new_source(kind, opts));
                        Prepared::Parsed(parser.parse(value, &meta).map(|parsed| match parsed {
                            // A record without rows stays as it was (counted as a duplicate).
                            Parsed::Rows { rows, merged } if !rows.is_empty() => Parsed::Built {
                                rows: built.push(rows),
                                merged,
                            },
                            other => other,
                        }))
                    }
                    // A fast-path row is built into the chunk already (the sink above).
                    other => other,
                };
                Prepped {
                    rec,
                    meta,
                    prepared,
                }
            })
            .collect();
        let chunk = built
            .finish()
            .expect("rows are built in the schema they are read with");
        if output
            .send(Batch {
                items,
                chunk,
                error,
                end,
            })
            .is_err()
        {
            return;
        }
    }
}

/// The parsing threads' batches, read back in the order the reader dealt them.
pub struct InOrder {
    outputs: Vec<Receiver<Batch>>,
    next: usize,
}

impl Iterator for InOrder {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        // The reader deals batches round robin and stops after the last, so the first thread
        // with nothing more to give marks the end of the file. (A thread that panicked also
        // ends it early; the scope then re-raises the panic and nothing is committed.)
        let batch = self.outputs[self.next % self.outputs.len()].recv().ok()?;
        self.next += 1;
        Some(batch)
    }
}
