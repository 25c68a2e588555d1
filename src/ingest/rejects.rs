//! The rejects file: one JSON line per record that was not stored, with where and why.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::redact::scrub_reject_text;
use super::splitter::RawRecord;
use crate::event::utc_date;
use crate::fsutil::{create_dir_all_durable, publish, temp_path, HashingFile};
use crate::store::commit::RejectsFile;
use crate::store::{Store, StoreError, REJECTS_DIR};

/// Rejects kept in memory to print; all of them go to the rejects file.
const REJECTS_SHOWN: usize = 20;

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

/// Streams rejects to a temp file published with the commit.
pub struct RejectSink {
    path: PathBuf,
    relative: String,
    out: Option<(BufWriter<HashingFile>, u64)>,
    /// The first rejects, to print (all of them are in the file).
    pub shown: Vec<RejectEntry>,
}

impl RejectSink {
    pub fn new(store: &Store, seq: u64, now: i64) -> Result<Self, StoreError> {
        let relative = format!(
            "{REJECTS_DIR}/{}/{}.jsonl",
            utc_date(now),
            store.file_stem(seq)
        );
        Ok(RejectSink {
            path: store.absolute(&relative),
            relative,
            out: None,
            shown: Vec::new(),
        })
    }

    pub fn push(&mut self, entry: RejectEntry) -> Result<(), StoreError> {
        if self.out.is_none() {
            let dir = self.path.parent().unwrap_or(Path::new("."));
            create_dir_all_durable(dir).map_err(|e| StoreError::io(dir, e))?;
            let tmp = temp_path(&self.path);
            let file = File::create(&tmp).map_err(|e| StoreError::io(&tmp, e))?;
            self.out = Some((BufWriter::new(HashingFile::new(file)), 0));
        }
        let (out, n) = self.out.as_mut().expect("opened above");
        let mut line = serde_json::to_vec(&entry).expect("a reject serializes");
        line.push(b'\n');
        out.write_all(&line)
            .map_err(|e| StoreError::io(&self.path, e))?;
        *n += entry.records;
        if self.shown.len() < REJECTS_SHOWN {
            self.shown.push(entry);
        }
        Ok(())
    }

    pub fn publish(self) -> Result<Option<RejectsFile>, StoreError> {
        let Some((out, records)) = self.out else {
            return Ok(None);
        };
        let tmp = temp_path(&self.path);
        let inner = out
            .into_inner()
            .map_err(|e| StoreError::io(&tmp, e.into_error()))?;
        let (sha256, bytes) = inner.finish().map_err(|e| StoreError::io(&tmp, e))?;
        publish(&tmp, &self.path).map_err(|e| StoreError::io(&self.path, e))?;
        Ok(Some(RejectsFile {
            path: self.relative,
            records,
            bytes,
            sha256,
        }))
    }

    pub fn discard(self) {
        if self.out.is_some() {
            let _ = std::fs::remove_file(temp_path(&self.path));
        }
    }
}
