//! The contract every input format implements, and the registry of formats.
//!
//! Adding a source takes: a parser module implementing [`Source`]; a `SourceKind` variant with
//! its name (`event.rs`: the command line, the config and every message take their lists of
//! sources from `SourceKind::ALL`); and its arm in [`new_source`], [`recognize`], [`prepare`]
//! and [`parses_alone`], which the compiler asks for (the matches are exhaustive). Fixtures,
//! goldens and a generator renderer come with it for tests and benchmarks.

use std::sync::Arc;

use serde_json::Value;

use super::splitter::{RawRecord, SplitProblem};
use super::{azure, cloudtrail, gcp, k8s, vault};
use crate::event::{Event, SourceKind};
use crate::store::chunk::{BuiltRows, ChunkBuilder, RowChunk};

/// Settings a parser needs from the configuration.
#[derive(Debug, Clone)]
pub struct ParseOptions {
    /// Keep the (redacted) original record in `raw_event`.
    pub keep_raw: bool,
    /// Name of the Vault cluster, part of Vault `event_uid`s and `resource_id`s.
    pub vault_cluster: String,
    /// Name of the Kubernetes cluster for log-backend and webhook events (AKS and GKE name
    /// their own).
    pub k8s_cluster: String,
}

impl Default for ParseOptions {
    fn default() -> Self {
        ParseOptions {
            keep_raw: true,
            vault_cluster: "default".into(),
            k8s_cluster: "default".into(),
        }
    }
}

/// Where a record came from, for `raw_location` and rejects.
#[derive(Debug, Clone)]
pub struct RecordMeta {
    /// The record's line in its file (its first line, for a pretty-printed one).
    pub line: u64,
    /// Its index in the envelope's array, for an element of one.
    pub element: Option<u64>,
    /// Text before the JSON on the record's line, if any.
    pub prefix: Option<String>,
    /// Where the record sat in its file (a top-level value, or an element of an envelope).
    pub container: super::splitter::Container,
    /// The input file, as named in messages.
    pub file: Arc<str>,
}

impl RecordMeta {
    pub fn for_record(file: &Arc<str>, rec: &RawRecord) -> RecordMeta {
        RecordMeta {
            line: rec.line,
            element: rec.element,
            prefix: rec.prefix.clone(),
            container: rec.container,
            file: Arc::clone(file),
        }
    }

    /// `file#line` or `file#line[element]`: made when a row needs it, not for every record
    /// (most Vault requests are merged into their response's row and never need one).
    pub fn location(&self) -> String {
        let mut s = String::new();
        self.location_into(&mut s);
        s
    }

    /// [`location`](Self::location), written over what `out` held.
    pub fn location_into(&self, out: &mut String) {
        let mut digits = itoa::Buffer::new();
        super::refill::text(out, &[&self.file, "#", digits.format(self.line)]);
        if let Some(e) = self.element {
            out.push('[');
            out.push_str(digits.format(e));
            out.push(']');
        }
    }
}

/// What a parsing thread made of one record ahead of the run, using no state of the run.
#[derive(Debug)]
pub enum Prepared {
    /// The record decoded as JSON, or why it does not: for [`Source::parse`].
    Decoded(Result<Value, Reject>),
    /// A row a source's fast path built from the text alone (a Vault response), for
    /// [`Source::settle_prepared`].
    Row(Box<Event>),
    /// The same, built into the batch's chunk on a parsing thread.
    Built(BuiltRows),
    /// A record its source settles by a key without parsing it (a Vault request, held as text
    /// under its id), for [`Source::settle_prepared`].
    Keyed(String),
    /// A record of a source that keeps no state from one record to the next, parsed whole on
    /// a parsing thread ([`parses_alone`]): the ingest thread only accounts for it.
    Parsed(Result<Parsed, Reject>),
}

/// Whether `record`, of a file read as `kind`, is parsed without any state of the run, so on
/// the parsing threads: CloudTrail, Azure and Secret Manager entries are (their parsers keep
/// nothing between records); Vault and Kubernetes pair or merge records, and a GKE entry in a
/// Cloud Logging export is routed to the Kubernetes parser ([`refine`]).
pub fn parses_alone(kind: SourceKind, record: &Value) -> bool {
    match kind {
        SourceKind::CloudTrail | SourceKind::Azure => true,
        SourceKind::Gcp => !gcp::is_gke(record),
        SourceKind::Vault | SourceKind::K8s => false,
    }
}

/// Where a parsing thread builds rows straight into its batch's columns: the batch's chunk,
/// and one event that every row is built into in turn ([`super::refill`]).
pub struct RowSink<'a> {
    pub chunk: &'a mut ChunkBuilder,
    pub scratch: &'a mut Event,
}

/// The stateless part of reading one record of a file of `kind`; runs on the parsing threads.
/// With a `sink`, a row the fast path builds goes into its chunk ([`Prepared::Built`]).
pub fn prepare(
    kind: SourceKind,
    opts: &ParseOptions,
    record: &RawRecord,
    meta: &RecordMeta,
    sink: Option<RowSink<'_>>,
) -> Prepared {
    let fast = match kind {
        SourceKind::Vault => vault::prepare(record, opts, meta, sink),
        _ => None,
    };
    fast.unwrap_or_else(|| Prepared::Decoded(decode(record)))
}

/// The record's text as JSON, or why not.
pub fn decode(rec: &RawRecord) -> Result<Value, Reject> {
    match &rec.problem {
        Some(SplitProblem::TooLong { len }) => {
            return Err(Reject::new(
                "line_too_long",
                format!("record of {len} bytes is longer than max_line_bytes"),
            ))
        }
        Some(SplitProblem::NotJson) => {
            return Err(Reject::new("invalid_json", "no JSON object on this line"))
        }
        None => {}
    }
    let Some(text) = utf8(&rec.bytes) else {
        let at = std::str::from_utf8(&rec.bytes).map_or_else(|e| e.valid_up_to(), |_| 0);
        return Err(Reject::new(
            "invalid_utf8",
            format!("invalid UTF-8 at byte {at} of the record"),
        ));
    };
    serde_json::from_str(text).map_err(|e| {
        let text = e.to_string();
        let reason = if text.contains("recursion limit") {
            "too_deep"
        } else {
            "invalid_json"
        };
        // serde counts lines inside the record; say where in the record, not "line 1".
        let what = text.split(" at line ").next().unwrap_or(&text);
        let detail = if e.line() <= 1 {
            format!("{what} at byte {} of the record", e.column())
        } else {
            format!(
                "{what} at line {} column {} of the record",
                e.line(),
                e.column()
            )
        };
        Reject::new(reason, detail)
    })
}

/// The record's text, if it is UTF-8: checked whole, with SIMD (std's check was 3 % of a Vault
/// ingest's CPU), so that parsing a `str` need not check every string in it again.
pub fn utf8(bytes: &[u8]) -> Option<&str> {
    simdutf8::basic::from_utf8(bytes).ok()
}

/// What a parser made of one record.
#[derive(Debug)]
pub enum Parsed {
    /// Rows to store (one per target), and how many records held earlier they complete.
    Rows { rows: Vec<Event>, merged: u64 },
    /// Kept by the parser until a later record completes it (a Vault request before its
    /// response); it ends as merged, or as a row when [`Source::finish`] runs. `released` are
    /// rows of records held earlier that will not be completed now (one row per record);
    /// `merged` counts records held earlier that this one replaces (a Kubernetes stage).
    Held {
        released: Vec<Released>,
        merged: u64,
    },
    /// The same record was already seen in this run (counted as a duplicate).
    Duplicate,
    /// Rows a parsing thread built into the batch's chunk ([`crate::store::chunk`]).
    Built { rows: BuiltRows, merged: u64 },
}

impl Parsed {
    pub fn rows(rows: Vec<Event>) -> Parsed {
        Parsed::Rows { rows, merged: 0 }
    }
}

/// A record held earlier, let go without being completed: its row, or why it has none.
#[derive(Debug)]
pub enum Released {
    Row(Box<Event>),
    Rejected {
        reject: Reject,
        record: RawRecord,
        file: Arc<str>,
    },
}

/// Why a record was not stored: a stable reason code and a human detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    /// `invalid_json`, `missing_field:<f>`, `type_mismatch:<f>`, `bad_timestamp`, ...
    pub reason: String,
    pub detail: String,
}

impl Reject {
    pub fn new(reason: impl Into<String>, detail: impl Into<String>) -> Reject {
        Reject {
            reason: reason.into(),
            detail: detail.into(),
        }
    }

    pub fn missing(field: &str) -> Reject {
        Reject::new(
            format!("missing_field:{field}"),
            format!("required field `{field}` is missing"),
        )
    }

    pub fn type_mismatch(field: &str, expected: &str) -> Reject {
        Reject::new(
            format!("type_mismatch:{field}"),
            format!("field `{field}` is not {expected}"),
        )
    }

    pub fn bad_timestamp(field: &str, why: String) -> Reject {
        Reject::new("bad_timestamp", format!("field `{field}`: {why}"))
    }
}

/// One input format.
pub trait Source {
    fn kind(&self) -> SourceKind;
    /// Settles a record that [`prepare`] made into a [`Prepared::Row`] or [`Prepared::Keyed`]
    /// (or a parsing thread into [`Prepared::Built`], whose rows are in `chunk`); only sources
    /// whose `prepare` makes those are asked.
    fn settle_prepared(
        &mut self,
        prepared: Prepared,
        _record: RawRecord,
        _meta: RecordMeta,
        _chunk: Option<&RowChunk>,
    ) -> Parsed {
        unreachable!(
            "{} prepares no rows or keys ahead, yet was given {prepared:?}",
            self.kind()
        )
    }
    /// Normalizes one record (a JSON object) into rows.
    fn parse(&mut self, record: Value, meta: &RecordMeta) -> Result<Parsed, Reject>;
    /// What becomes of records still held at the end of the run (one entry per held record).
    /// Everything held, oldest first: the key each waits under, the file it came from, and
    /// what it is alone (its row, or why it cannot be stored). The run stores it now or carries
    /// the row to the next run ([`Source::restore`]).
    fn drain_held(&mut self) -> Vec<HeldOut> {
        Vec::new()
    }
    /// Holds again a row carried from the previous run under `key`, as if its record had just
    /// been read from `file`; returns a record the holding let go to make room, if any.
    fn restore(&mut self, key: String, _event: Event, _file: Arc<str>) -> Option<Released> {
        unreachable!("{} holds nothing, yet was given {key} to hold", self.kind())
    }
}

/// A record a source held when the input ended.
pub struct HeldOut {
    pub key: String,
    pub file: Arc<str>,
    pub released: Released,
}

/// What a record's content says it is (format recognition; not anomaly detection).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recognized {
    Source(SourceKind),
    /// A CloudTrail digest file: not events, skipped as a whole.
    CloudTrailDigest,
    /// The ground truth `vigil generate` writes beside its logs.
    Labels,
}

/// Recognizes a record's format from its content.
pub fn recognize(record: &Value) -> Option<Recognized> {
    if cloudtrail::is_digest(record) {
        return Some(Recognized::CloudTrailDigest);
    }
    if record.get("anomalies").is_some_and(Value::is_array) && record.get("seed").is_some() {
        return Some(Recognized::Labels);
    }
    if vault::recognizes(record) {
        return Some(Recognized::Source(SourceKind::Vault));
    }
    if cloudtrail::recognizes(record) {
        return Some(Recognized::Source(SourceKind::CloudTrail));
    }
    if k8s::recognizes(record) {
        return Some(Recognized::Source(SourceKind::K8s));
    }
    if gcp::recognizes(record) {
        return Some(Recognized::Source(SourceKind::Gcp));
    }
    if azure::recognizes(record) {
        return Some(Recognized::Source(SourceKind::Azure));
    }
    None
}

pub fn new_source(kind: SourceKind, opts: &ParseOptions) -> Box<dyn Source> {
    match kind {
        SourceKind::Vault => Box::new(vault::VaultSource::new(opts.clone())),
        SourceKind::CloudTrail => Box::new(cloudtrail::CloudTrailSource::new(opts.clone())),
        SourceKind::Gcp => Box::new(gcp::GcpSource::new(opts.clone())),
        SourceKind::Azure => Box::new(azure::AzureSource::new(opts.clone())),
        SourceKind::K8s => Box::new(k8s::K8sSource::new(opts.clone())),
    }
}

/// Cloud Logging exports mix Secret Manager and GKE entries in one file, so for those two
/// sources each record is routed by its own content.
pub fn refine(kind: SourceKind, record: &Value) -> SourceKind {
    match kind {
        SourceKind::Gcp if gcp::is_gke(record) => SourceKind::K8s,
        SourceKind::K8s if gcp::recognizes(record) => SourceKind::Gcp,
        other => other,
    }
}
