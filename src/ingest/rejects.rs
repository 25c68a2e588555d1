//! The rejects file: one JSON line per record that was not stored, with where and why.

use serde::Serialize;

use super::redact::scrub_reject_text;
use super::splitter::RawRecord;

/// Characters of a rejected record's text kept in the rejects file.
pub const REJECT_TEXT_CHARS: usize = 2048;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RejectEntry {
    pub file: String,
    pub line: Option<u64>,
    pub record_index: Option<u64>,
    pub element: Option<u64>,
    pub byte_offset: Option<u64>,
    pub source: Option<String>,
    pub reason: String,
    pub detail: String,
    /// The record's text, truncated, with secret-bearing values blanked.
    pub raw: String,
    /// Length of the record's text in bytes.
    pub raw_bytes: u64,
    /// Records covered by this entry (more than 1 when a whole file is rejected).
    pub records: u64,
}

impl RejectEntry {
    pub fn for_record(
        file: &str,
        rec: &RawRecord,
        source: Option<&str>,
        reason: String,
        detail: String,
    ) -> RejectEntry {
        let raw_bytes = match &rec.problem {
            Some(super::splitter::SplitProblem::TooLong { len }) => *len,
            _ => rec.bytes.len() as u64,
        };
        RejectEntry {
            file: file.to_owned(),
            line: Some(rec.line),
            record_index: Some(rec.index),
            element: rec.element,
            byte_offset: Some(rec.offset),
            source: source.map(str::to_owned),
            reason,
            detail,
            raw: scrub_reject_text(&rec.bytes, REJECT_TEXT_CHARS),
            raw_bytes,
            records: 1,
        }
    }

    pub fn for_file(
        file: &str,
        source: Option<&str>,
        reason: &str,
        detail: String,
        records: u64,
    ) -> RejectEntry {
        RejectEntry {
            file: file.to_owned(),
            line: None,
            record_index: None,
            element: None,
            byte_offset: None,
            source: source.map(str::to_owned),
            reason: reason.to_owned(),
            detail,
            raw: String::new(),
            raw_bytes: 0,
            records,
        }
    }

    /// `file#line` (and `[element]`) for messages.
    pub fn location(&self) -> String {
        match (self.line, self.element) {
            (Some(l), Some(e)) => format!("{}#{l}[{e}]", self.file),
            (Some(l), None) => format!("{}#{l}", self.file),
            _ => self.file.clone(),
        }
    }
}
