//! HashiCorp Vault / OpenBao audit device entries (file, socket and syslog devices).
//!
//! Every API call writes a `request` entry and then a `response` entry with the same
//! `request.id`; the response repeats the request, so it alone makes a complete row and the
//! request is counted as merged into it. A request whose response never arrives is stored on
//! its own with outcome `unknown` (or `denied` when the request entry already carries the
//! denial) and the uid suffix `:request`: at the end of the run, or, when its file is still
//! being written and the request is recent, by a later run (the run carries it meanwhile).

use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

mod entry;
mod scan;

use super::fields::{required_str, JsonStr, Obj};
use super::held::{Held, Recent, MAX_HELD};
use super::source::{
    HeldOut, ParseOptions, Parsed, Prepared, RecordMeta, Reject, Released, RowSink, Source,
};
use super::splitter::RawRecord;
use crate::event::{Event, SourceKind};
use crate::store::chunk::RowChunk;

/// A Vault audit entry has `time`, a `type` and a `request` or `auth` object.
pub fn recognizes(v: &Value) -> bool {
    let Some(obj) = v.as_object() else {
        return false;
    };
    let typed = obj
        .get("type")
        .and_then(Value::as_str)
        .is_some_and(|t| t.ends_with("request") || t.ends_with("response"));
    typed
        && obj.contains_key("time")
        && (obj.get("request").is_some_and(Value::is_object) || obj.contains_key("auth"))
}

pub struct VaultSource {
    opts: ParseOptions,
    /// Requests waiting for their response, by id.
    held: Held<HeldRequest>,
    /// Request ids whose response was stored recently: a later copy of the request (from a
    /// second audit device) is a duplicate, not a lone request.
    completed: Recent,
}

/// A request entry kept as text: most are completed by their response and never need parsing.
#[allow(
    clippy::large_enum_variant,
    reason = "nearly every held request is Text"
)]
enum HeldRequest {
    Text {
        record: RawRecord,
        meta: RecordMeta,
    },
    /// Parsed already (a request read the exact way, or one carried from the previous run),
    /// with the file it came from.
    Parsed(Box<Event>, Arc<str>),
}

impl VaultSource {
    pub fn new(opts: ParseOptions) -> Self {
        VaultSource {
            opts,
            held: Held::new(MAX_HELD),
            completed: Recent::new(4 * MAX_HELD),
        }
    }

    /// A response: its row, absorbing the request held for it.
    fn complete(&mut self, event: Event) -> Parsed {
        let merged = self.absorb(event.request_id.as_deref());
        Parsed::Rows {
            rows: vec![event],
            merged,
        }
    }

    /// A response's request `id` is answered: the request held for it, if any, is merged
    /// (returns how many), and a later copy of it is a duplicate.
    fn absorb(&mut self, id: Option<&str>) -> u64 {
        let Some(id) = id else {
            return 0;
        };
        let merged = u64::from(self.held.remove(id).is_some());
        self.completed.insert(id);
        merged
    }

    fn hold(&mut self, id: String, request: HeldRequest) -> Parsed {
        let (_, released) = self.held.insert(id, request);
        Parsed::Held {
            released: released.map(|r| self.release(r)).into_iter().collect(),
            merged: 0,
        }
    }

    /// A held request that will not be completed: parsed now, stored on its own.
    fn release(&self, request: HeldRequest) -> Released {
        match request {
            HeldRequest::Parsed(e, _) => Released::Row(e),
            HeldRequest::Text { record, meta } => {
                let parsed = serde_json::from_slice::<Value>(&record.bytes)
                    .map_err(|e| Reject::new("invalid_json", e.to_string()))
                    .and_then(|mut v| entry::from_value(&mut v, &self.opts, &meta, true));
                match parsed {
                    Ok(mut e) => {
                        e.event_uid.push_str(":request");
                        Released::Row(Box::new(e))
                    }
                    Err(reject) => Released::Rejected {
                        reject,
                        record,
                        file: meta.file,
                    },
                }
            }
        }
    }
}

/// The two fields a request entry is recognised by, read without building the whole record.
#[derive(Deserialize)]
struct Peek<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<JsonStr<'a>>,
    #[serde(borrow)]
    request: Option<Obj<PeekRequest<'a>>>,
}

#[derive(Deserialize)]
struct PeekRequest<'a> {
    #[serde(borrow)]
    id: Option<JsonStr<'a>>,
}

/// How far into an entry its `type` is looked for before parsing (anything later is found by
/// the parse).
const TYPE_WITHIN: usize = 256;

/// A cheap look at an entry's text on a parsing thread: a response becomes its row in one
/// typed parse (built into the `sink`'s chunk when there is one), a request only needs its id
/// (it is held as text until its response arrives). `None` sends the entry to the exact path
/// in [`VaultSource::parse`].
pub fn prepare(
    record: &RawRecord,
    opts: &ParseOptions,
    meta: &RecordMeta,
    mut sink: Option<RowSink<'_>>,
) -> Option<Prepared> {
    if record.problem.is_some() {
        return None;
    }
    // Most entries say which they are near their start (Vault writes `time`, then `type`):
    // look there only, with a searcher built once, rather than through the whole entry.
    static RESPONSE: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\"type\":\"response\""));
    let head = &record.bytes[..record.bytes.len().min(TYPE_WITHIN)];
    if RESPONSE.find(head).is_some() {
        if let Some(row) = fast_row(record, opts, meta, &mut sink, true) {
            return Some(row);
        }
    }
    // An entry or request written as an array is no Vault entry: the exact path rejects it.
    let peek: Obj<Peek> = serde_json::from_str(super::source::utf8(&record.bytes)?).ok()?;
    let peek = peek.0;
    let kind = peek.kind?;
    if kind.ends_with("response") {
        return fast_row(record, opts, meta, &mut sink, false);
    }
    let id = peek.request?.0.id?;
    if !kind.ends_with("request") || id.is_empty() {
        return None;
    }
    Some(Prepared::Keyed(id.0.into_owned()))
}

/// A response entry's row by the fast path: built into the sink's chunk when there is one,
/// else as an event. `None` when the exact path must read the entry, or (`only_response`)
/// when its `type` turns out not to name a response.
fn fast_row(
    record: &RawRecord,
    opts: &ParseOptions,
    meta: &RecordMeta,
    sink: &mut Option<RowSink<'_>>,
    only_response: bool,
) -> Option<Prepared> {
    let wanted = |e: &Event| {
        !only_response
            || e.attributes
                .get("entry_type")
                .is_some_and(|t| t.ends_with("response"))
    };
    match sink {
        Some(RowSink { chunk, scratch }) => {
            entry::from_text_into(scratch, &record.bytes, opts, meta, false)?;
            wanted(scratch).then(|| Prepared::Built(chunk.push_ref(scratch)))
        }
        None => {
            let event = entry::from_text(&record.bytes, opts, meta, false)?;
            wanted(&event).then(|| Prepared::Row(Box::new(event)))
        }
    }
}

enum EntryType {
    Request,
    Response,
}

impl Source for VaultSource {
    fn kind(&self) -> SourceKind {
        SourceKind::Vault
    }

    fn settle_prepared(
        &mut self,
        prepared: Prepared,
        record: RawRecord,
        meta: RecordMeta,
        chunk: Option<&RowChunk>,
    ) -> Parsed {
        match prepared {
            Prepared::Row(event) => self.complete(*event),
            Prepared::Built(rows) => {
                let chunk = chunk.expect("built rows come with their chunk");
                let merged = self.absorb(chunk.request_id(rows.first as usize));
                Parsed::Built { rows, merged }
            }
            Prepared::Keyed(id) => {
                if self.completed.contains(&id) || self.held.contains(&id) {
                    return Parsed::Duplicate;
                }
                self.hold(id, HeldRequest::Text { record, meta })
            }
            Prepared::Decoded(_) | Prepared::Parsed(_) => {
                unreachable!("a decoded Vault entry goes to parse")
            }
        }
    }

    fn parse(&mut self, mut record: Value, meta: &RecordMeta) -> Result<Parsed, Reject> {
        if !record.is_object() {
            return Err(Reject::new(
                "not_an_object",
                "a Vault audit entry is a JSON object",
            ));
        }
        let entry_type = match required_str(&record, "type")? {
            t if t.ends_with("response") => EntryType::Response,
            t if t.ends_with("request") => EntryType::Request,
            other => {
                return Err(Reject::new(
                    "unsupported_record",
                    format!("unknown Vault entry type `{other}`"),
                ))
            }
        };
        let mut event = entry::from_value(
            &mut record,
            &self.opts,
            meta,
            matches!(entry_type, EntryType::Request),
        )?;
        let id = event.request_id.clone();
        match (entry_type, id) {
            (EntryType::Response, _) => Ok(self.complete(event)),
            (EntryType::Request, Some(id)) => {
                if self.completed.contains(&id) || self.held.contains(&id) {
                    return Ok(Parsed::Duplicate);
                }
                event.event_uid.push_str(":request");
                Ok(self.hold(
                    id,
                    HeldRequest::Parsed(Box::new(event), Arc::clone(&meta.file)),
                ))
            }
            (EntryType::Request, None) => Ok(Parsed::rows(vec![event])),
        }
    }

    fn drain_held(&mut self) -> Vec<HeldOut> {
        let held = self.held.drain();
        held.into_iter()
            .map(|(key, r)| {
                let file = match &r {
                    HeldRequest::Text { meta, .. } => Arc::clone(&meta.file),
                    HeldRequest::Parsed(_, file) => Arc::clone(file),
                };
                HeldOut {
                    key,
                    file,
                    released: self.release(r),
                }
            })
            .collect()
    }

    fn restore(&mut self, key: String, event: Event, file: Arc<str>) -> Option<Released> {
        let (_, released) = self
            .held
            .insert(key, HeldRequest::Parsed(Box::new(event), file));
        released.map(|r| self.release(r))
    }
}
