//! Records an ingest held when its input ended (a Vault request waiting for its response, a
//! Kubernetes stage waiting for the final one), carried to the next ingest.
//!
//! They are kept as the rows they would be alone (secret values already removed, like every
//! row) in one JSON lines file per commit, `state/held/<seq>.jsonl`, listed in that commit with
//! its SHA-256: the held state changes with the offsets that produced it, in the same commit.
//! The live state is the newest ingest commit's (`Commit::is_ingest`); a commit carrying
//! nothing has none. Files of older states are deleted by the next writer.

use std::collections::HashSet;
use std::fs;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{CommitLog, Store, StoreError};
use crate::event::{Event, SourceKind};
use crate::fsutil::{create_dir_all_durable, write_atomic};

pub const HELD_DIR: &str = "state/held";

/// The held-state file of a commit.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HeldFile {
    pub path: String,
    pub records: u64,
    pub bytes: u64,
    pub sha256: String,
}

/// One held record: the key its source holds it under, the input it came from (by name, to
/// know whether that input is still being written) and the row it is alone.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Carried {
    pub source: SourceKind,
    pub key: String,
    pub file: String,
    #[serde(deserialize_with = "owned_event")]
    pub event: Event,
}

/// An event read through an owned JSON value: its format name is a `&'static str`, which
/// serde would otherwise borrow from the input.
fn owned_event<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Event, D::Error> {
    let value = serde_json::Value::deserialize(d)?;
    Event::deserialize(value).map_err(serde::de::Error::custom)
}

/// The held-state file the store's newest ingest commit left, if any.
pub fn live(log: &CommitLog) -> Option<&HeldFile> {
    log.state.held.as_ref()
}

/// Writes the held state of commit `seq` (nothing when nothing is held).
pub fn write(store: &Store, seq: u64, held: &[Carried]) -> Result<Option<HeldFile>, StoreError> {
    if held.is_empty() {
        return Ok(None);
    }
    let mut bytes = Vec::new();
    for c in held {
        serde_json::to_writer(&mut bytes, c).expect("a held record serializes");
        bytes.push(b'\n');
    }
    let dir = store.root().join(HELD_DIR);
    create_dir_all_durable(&dir).map_err(|e| StoreError::io(&dir, e))?;
    let path = dir.join(format!("{}.jsonl", store.file_stem(seq)));
    write_atomic(&path, &bytes).map_err(|e| StoreError::io(&path, e))?;
    Ok(Some(HeldFile {
        path: store.relative(&path),
        records: held.len() as u64,
        bytes: bytes.len() as u64,
        sha256: hex::encode(Sha256::digest(&bytes)),
    }))
}

/// Reads a held-state file back, refusing one whose bytes are not those its commit names.
pub fn read(store: &Store, file: &HeldFile) -> Result<Vec<Carried>, StoreError> {
    let path = store.shown(&file.path);
    let bytes = super::files::open(store, &file.path)
        .and_then(|f| f.read_all())
        .map_err(|e| StoreError::io(&path, e))?;
    if hex::encode(Sha256::digest(&bytes)) != file.sha256 {
        return Err(StoreError::Damaged(format!(
            "{} does not match the SHA-256 its commit records",
            file.path
        )));
    }
    bytes
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .enumerate()
        .map(|(i, line)| {
            serde_json::from_slice(line)
                .map_err(|e| StoreError::Damaged(format!("{} line {}: {e}", file.path, i + 1)))
        })
        .collect()
}

/// Deletes held-state files other than the live one (older states, and a state staged by a
/// run that never committed); returns how many.
pub fn remove_stale(store: &Store, log: &CommitLog) -> Result<u64, StoreError> {
    let dir = store.root().join(HELD_DIR);
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(StoreError::io(&dir, e)),
    };
    let keep: HashSet<String> = live(log).map(|h| h.path.clone()).into_iter().collect();
    let mut removed = 0;
    for entry in entries {
        let path = entry.map_err(|e| StoreError::io(&dir, e))?.path();
        if keep.contains(&store.relative(&path)) {
            continue;
        }
        fs::remove_file(&path).map_err(|e| StoreError::io(&path, e))?;
        removed += 1;
    }
    Ok(removed)
}
