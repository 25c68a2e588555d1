//! Commit-log checkpoints, as Delta Lake keeps them: every so many commits the writer stores
//! the state after the commit it is making (`store::state`) in `_checkpoints/<seq>.json`, and
//! names that file with its SHA-256 in the commit itself. The checkpoint is thereby in the hash
//! chain: editing it breaks the hash its commit records, editing the commit breaks the next
//! commit's `prev`.
//!
//! Opening a store reads the newest checkpoint its commit vouches for, then only the commits
//! after it; a checkpoint that is missing, unreadable or does not match its commit's hash is
//! passed over with a warning (an older one, or the whole log, is read instead), so a damaged
//! checkpoint costs time, not rows (unless a commit before it is damaged too: the fuller read
//! then stops there, as it would without checkpoints). `vigil verify` replays every commit and compares each
//! checkpoint with the state the commits give.
//!
//! The checkpoint is written before its commit, like the data files: a crash in between leaves
//! a file no commit names, which readers ignore and the next writer replaces or removes. Only
//! the newest [`CHECKPOINTS_KEPT`] checkpoints stay on disk: a superseded one serves nobody but
//! a reader whose newest one is damaged.

use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::commit::{commit_file_name, Commit, LoggedCommit};
use super::state::State;
use super::StoreError;
use crate::fsutil::{create_dir_all_durable, write_atomic};

pub const CHECKPOINTS_DIR: &str = "_checkpoints";

/// Commits between checkpoints unless `[store] checkpoint_every` says otherwise. Opening a
/// store normally reads fewer commits than this after the checkpoint (~100 small JSON files, a few
/// milliseconds), and a writer copies the state this often.
pub const DEFAULT_CHECKPOINT_EVERY: u64 = 100;
/// A checkpoint is also due once the commits since the last one reach this size (big commits,
/// such as an ingest of thousands of CloudTrail files, are as costly to read as many small ones).
pub const CHECKPOINT_AFTER_BYTES: u64 = 8 << 20;

/// Checkpoints kept on disk: the newest and two before it (older ones are deleted by the writer
/// that supersedes them; verify needs only the newest).
pub const CHECKPOINTS_KEPT: usize = 3;

/// The checkpoint a commit names.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CheckpointRef {
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
}

/// The checkpoint file of commit `seq`, relative to the store root.
pub fn relative_path(seq: u64) -> String {
    format!("{CHECKPOINTS_DIR}/{}", commit_file_name(seq))
}

/// Writes the state after commit `state.seq` durably; the commit must name the result.
pub fn write(root: &Path, state: &State) -> Result<CheckpointRef, StoreError> {
    let dir = root.join(CHECKPOINTS_DIR);
    create_dir_all_durable(&dir).map_err(|e| StoreError::io(&dir, e))?;
    let (bytes, named) = encode(state);
    let path = root.join(&named.path);
    write_atomic(&path, &bytes).map_err(|e| StoreError::io(&path, e))?;
    Ok(named)
}

/// The checkpoint of the state after commit `state.seq`, and how its commit names it.
pub fn encode(state: &State) -> (Vec<u8>, CheckpointRef) {
    let mut bytes = serde_json::to_vec(state).expect("a state serializes");
    bytes.push(b'\n');
    let named = CheckpointRef {
        path: relative_path(state.seq),
        bytes: bytes.len() as u64,
        sha256: hex::encode(Sha256::digest(&bytes)),
    };
    (bytes, named)
}

/// The sequence numbers of the checkpoint files present, ascending (temp files and other names
/// are not checkpoints).
pub fn list(root: &Path) -> Result<Vec<u64>, StoreError> {
    let dir = root.join(CHECKPOINTS_DIR);
    // Not there, or not a directory: no checkpoint to read (the commits are).
    let Some(entries) = read_dir_if_any(&dir)? else {
        return Ok(Vec::new());
    };
    let mut seqs = Vec::new();
    for entry in entries {
        let name = entry.map_err(|e| StoreError::io(&dir, e))?.file_name();
        if let Some(seq) = name
            .to_string_lossy()
            .strip_suffix(".json")
            .and_then(|s| s.parse::<u64>().ok())
        {
            seqs.push(seq);
        }
    }
    seqs.sort_unstable();
    Ok(seqs)
}

/// The entries of `dir`, `None` when it does not exist or is not a directory (then it holds no
/// checkpoint).
pub(super) fn read_dir_if_any(dir: &Path) -> Result<Option<fs::ReadDir>, StoreError> {
    match fs::read_dir(dir) {
        Ok(e) => Ok(Some(e)),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(StoreError::io(dir, e)),
    }
}

/// Why a checkpoint cannot be used, in a phrase.
pub type Unusable = String;

/// Reads checkpoint `seq` and the commit that names it: the state after that commit, and the
/// commit (to chain the later ones to). Checked: the commit reads and names this file, and the
/// file's SHA-256 is the one the commit records.
pub fn load(root: &Path, seq: u64) -> Result<Result<(State, LoggedCommit), Unusable>, StoreError> {
    let commit_path = root
        .join(super::commit::COMMITS_DIR)
        .join(commit_file_name(seq));
    let commit_bytes = match fs::read(&commit_path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Err(format!("commit {seq} is missing")))
        }
        Err(e) => return Err(StoreError::io(&commit_path, e)),
    };
    let commit: Commit = match serde_json::from_slice(&commit_bytes) {
        Ok(c) => c,
        Err(e) => return Ok(Err(format!("commit {seq} is unreadable ({e})"))),
    };
    let Some(named) = commit
        .checkpoint
        .as_ref()
        .filter(|c| c.path == relative_path(seq))
    else {
        return Ok(Err(format!("commit {seq} does not name it")));
    };
    let path = root.join(&named.path);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Err("the file is missing".into()))
        }
        Err(e) => return Err(StoreError::io(&path, e)),
    };
    if hex::encode(Sha256::digest(&bytes)) != named.sha256 {
        return Ok(Err(format!(
            "its SHA-256 is not the one commit {seq} records (the file was changed)"
        )));
    }
    let mut state: State = match serde_json::from_slice(&bytes) {
        Ok(s) => s,
        Err(e) => return Ok(Err(format!("it is unreadable ({e})"))),
    };
    if !state.lists_findings && root.join(super::FINDINGS_DIR).is_dir() {
        return Ok(Err(
            "it was written by an older vigil, which leaves out the findings files".into(),
        ));
    }
    if state.seq != seq || commit.seq != seq {
        return Ok(Err(format!(
            "it holds the state after commit {}",
            state.seq
        )));
    }
    state.reindex();
    let hash = hex::encode(Sha256::digest(&commit_bytes));
    Ok(Ok((state, LoggedCommit { commit, hash })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::commit::write_commit;

    /// A checkpoint an older vigil wrote (it does not list findings files) is not used in a
    /// store that has findings: it would hide them, and get them set aside as orphans.
    #[test]
    fn a_checkpoint_that_does_not_list_findings_is_not_used_where_there_are_findings() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let mut state = State::default();
        state.seq = 1;
        let named = write(root, &state).unwrap();
        let commit: Commit = serde_json::from_value(serde_json::json!({
            "seq": 1, "prev": null, "created": "2026-03-10T00:00:00Z", "schema_version": 1,
            "files": [], "rejects": null, "inputs": [], "counts": {},
            "checkpoint": named,
        }))
        .unwrap();
        write_commit(root, &commit).unwrap();
        assert!(load(root, 1).unwrap().is_ok(), "no findings: usable");
        std::fs::create_dir_all(root.join(crate::store::FINDINGS_DIR)).unwrap();
        let why = load(root, 1).unwrap().err().unwrap();
        assert!(why.contains("older vigil"), "{why}");
    }
}
