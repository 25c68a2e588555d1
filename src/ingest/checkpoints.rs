//! The inputs a store has read, as its commits' checkpoints tell (`store::inputs`), and where a
//! file about to be read starts: nowhere (read to its end before), at a checkpoint, or at 0.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;
use std::path::Path;

use super::inputs::{self, Identity};
use crate::store::inputs::{FileCheckpoint, InputCheckpoint};
use crate::store::CommitLog;

/// Where reading a file starts.
pub enum Start {
    /// Read to its end already, by commit `seq`.
    Done { seq: u64 },
    /// Read past what commit `seq` consumed; `reader` is at the checkpoint's offset.
    Resume {
        checkpoint: FileCheckpoint,
        reader: Box<dyn io::BufRead + Send>,
    },
    /// Never read (or no longer the file a checkpoint describes): from its start.
    Fresh,
}

#[derive(Default)]
pub struct Checkpoints {
    /// Head length → head hash → the newest checkpoint with it, and its commit.
    by_head: BTreeMap<u64, HashMap<String, (FileCheckpoint, u64)>>,
    /// Whole-file fingerprints of older versions → commit.
    whole: HashMap<String, u64>,
    /// Their sizes: only a file of one of these sizes can be one of them.
    whole_sizes: HashSet<u64>,
    /// Some are SHA-256 (older still).
    whole_sha256: bool,
}

impl Checkpoints {
    pub fn from_log(log: &CommitLog) -> Checkpoints {
        let mut c = Checkpoints::default();
        for logged in &log.state.inputs {
            match &logged.input {
                InputCheckpoint::File(f) => c.record(f.clone(), logged.seq),
                InputCheckpoint::Whole(w) => {
                    c.whole.insert(w.fingerprint.clone(), logged.seq);
                    c.whole_sizes.insert(w.bytes);
                    c.whole_sha256 |= w.fingerprint.starts_with("sha256:");
                }
                InputCheckpoint::Object(_) => {}
            }
        }
        c
    }

    /// Remembers a checkpoint written (or about to be written) by commit `seq`.
    pub fn record(&mut self, checkpoint: FileCheckpoint, seq: u64) {
        self.by_head
            .entry(checkpoint.head_len)
            .or_default()
            .insert(checkpoint.head.clone(), (checkpoint, seq));
    }

    /// The checkpoint of the file that starts as `head` does, preferring the longest head (a
    /// file once shorter than the head window is known by all of its bytes then).
    fn find(&self, head: &[u8]) -> Option<&(FileCheckpoint, u64)> {
        // One incremental hash over the head, finalized at each length some checkpoint has.
        let mut hasher = blake3::Hasher::new();
        let mut hashed = 0usize;
        let mut found = None;
        for (len, heads) in self.by_head.range(..=head.len() as u64) {
            let len = *len as usize;
            hasher.update(&head[hashed..len]);
            hashed = len;
            let hash = format!("blake3:{}", hasher.finalize().to_hex());
            if let Some(hit) = heads.get(&hash) {
                found = Some(hit);
            }
        }
        found
    }

    /// The newest checkpoint of the file identified as `id`, whether or not it still fits it.
    pub fn of(&self, id: &Identity) -> Option<&FileCheckpoint> {
        self.find(&id.head).map(|(cp, _)| cp)
    }

    /// Where to start reading the file at `path`, identified as `id`.
    pub fn start(&self, path: &Path, id: &Identity) -> io::Result<Start> {
        if let Some((cp, seq)) = self.find(&id.head) {
            // A length below the offset: the file was truncated (copytruncate) or replaced,
            // and what it holds now is new.
            if id.content_len == cp.offset {
                let tail = match &id.end_tail {
                    Some(t) => t.clone(),
                    None => inputs::tail_hash(path, id.gzip, cp.offset)?,
                };
                if tail == cp.tail {
                    return Ok(Start::Done { seq: *seq });
                }
            } else if id.content_len > cp.offset {
                if let Some(reader) = inputs::open_at(path, id.gzip, cp.offset, &cp.tail)? {
                    return Ok(Start::Resume {
                        checkpoint: cp.clone(),
                        reader,
                    });
                }
            }
            return Ok(Start::Fresh);
        }
        if self.whole_sizes.contains(&id.size) {
            let (blake3, sha256) = inputs::whole_file_fingerprints(path, self.whole_sha256)?;
            if let Some(seq) = std::iter::once(&blake3)
                .chain(&sha256)
                .find_map(|d| self.whole.get(d))
            {
                return Ok(Start::Done { seq: *seq });
            }
        }
        Ok(Start::Fresh)
    }
}
