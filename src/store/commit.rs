//! The commit log: the only list of what the store holds.
//!
//! `_commits/<seq>.json` files, numbered from 1, each naming the data and rejects files it added
//! with their SHA-256, the inputs it consumed, its counts, and the SHA-256 of the previous commit
//! file. Readers take their file list from here and never from a directory listing, so files of
//! an interrupted ingest stay invisible. Every so many commits one also names a checkpoint of
//! the state after it (`checkpoint`), and readers start from the newest such checkpoint.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::checkpoint::{self, CheckpointRef};
use super::held::HeldFile;
use super::inputs::InputCheckpoint;
use super::state::State;
use super::StoreError;
use crate::fsutil::write_atomic;

pub const COMMITS_DIR: &str = "_commits";

/// A data file added by a commit.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DataFile {
    /// Relative to the store root, `/`-separated.
    pub path: String,
    pub source: String,
    pub date: String,
    pub rows: u64,
    pub bytes: u64,
    pub sha256: String,
    pub min_time: String,
    pub max_time: String,
    /// The file's hourly rollup (`store::rollup`); absent in commits of older versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollup: Option<RollupFile>,
    /// The file's client rollup (`store::rollup::Kind::Clients`); absent in commits of older
    /// versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clients: Option<RollupFile>,
    /// The file's principal rollup (`store::rollup::Kind::Principals`); absent in commits of
    /// older versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principals: Option<RollupFile>,
    /// Digest of the rows the file holds, whatever their order (`store::digest`): what lets
    /// verify check a compaction after the files it replaced are gone. Absent in commits of
    /// older versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
}

impl DataFile {
    /// The file's rollup of `kind`, when its commit lists one.
    pub fn rollup_of(&self, kind: super::rollup::Kind) -> Option<&RollupFile> {
        match kind {
            super::rollup::Kind::Hourly => self.rollup.as_ref(),
            super::rollup::Kind::Clients => self.clients.as_ref(),
            super::rollup::Kind::Principals => self.principals.as_ref(),
        }
    }

    pub fn set_rollup(&mut self, kind: super::rollup::Kind, file: RollupFile) {
        match kind {
            super::rollup::Kind::Hourly => self.rollup = Some(file),
            super::rollup::Kind::Clients => self.clients = Some(file),
            super::rollup::Kind::Principals => self.principals = Some(file),
        }
    }

    /// Whether every kind of rollup this vigil writes is listed.
    pub fn has_all_rollups(&self) -> bool {
        super::rollup::Kind::ALL
            .iter()
            .all(|k| self.rollup_of(*k).is_some())
    }
}

/// A rollup written with a data file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RollupFile {
    pub path: String,
    pub rows: u64,
    pub bytes: u64,
    pub sha256: String,
}

/// The rejects file written with a commit.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RejectsFile {
    pub path: String,
    pub records: u64,
    pub bytes: u64,
    pub sha256: String,
}

/// The findings a commit records (`findings/date=<D>/<seq>.parquet`, see `crate::findings`): the
/// same shape as a rollup's entry.
pub type FindingsFile = RollupFile;

/// A data file a commit takes out of the store (compaction replaced it); its rollups go with it.
/// The file itself is deleted only after a grace period, so queries that listed it finish.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RemovedFile {
    pub path: String,
    /// The SHA-256 the adding commit recorded: the removal names exactly that file.
    pub sha256: String,
    pub rows: u64,
    /// Why: `compaction`.
    pub reason: String,
    /// The files of the same commit that hold its rows now.
    pub replaced_by: Vec<String>,
}

/// Record accounting of one source in one run:
/// `read + resumed = stored + merged + duplicates + rejected + held`.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Tally {
    pub read: u64,
    pub stored: u64,
    pub merged: u64,
    pub duplicates: u64,
    pub rejected: u64,
    /// Rows written (batch targets exploded), at least `stored`.
    pub rows: u64,
    /// Records held by the previous run and carried into this one (`store::held`); absent in
    /// commits of older versions.
    #[serde(default)]
    pub resumed: u64,
    /// Records held at the end of this run, carried to the next.
    #[serde(default)]
    pub held: u64,
}

impl Tally {
    pub fn balanced(&self) -> bool {
        self.read + self.resumed
            == self.stored + self.merged + self.duplicates + self.rejected + self.held
    }

    pub fn add(&mut self, other: &Tally) {
        self.read += other.read;
        self.stored += other.stored;
        self.merged += other.merged;
        self.duplicates += other.duplicates;
        self.rejected += other.rejected;
        self.rows += other.rows;
        self.resumed += other.resumed;
        self.held += other.held;
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Commit {
    pub seq: u64,
    /// SHA-256 of the previous commit file, `None` for the first.
    pub prev: Option<String>,
    pub created: String,
    pub schema_version: u16,
    pub files: Vec<DataFile>,
    pub rejects: Option<RejectsFile>,
    /// Where reading each input stopped (`store::inputs`).
    pub inputs: Vec<InputCheckpoint>,
    pub counts: BTreeMap<String, Tally>,
    /// Files taken out by this commit; absent in commits that remove nothing (all of them before
    /// compaction existed), so their hashes are unchanged.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<RemovedFile>,
    /// Until when the removed files stay on disk for readers that listed them (the grace
    /// period of `vigil compact`); absent: `created` + the default grace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_removed_until: Option<String>,
    /// Records held at the end of this ingest for the next (`store::held`); absent when none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<HeldFile>,
    /// Records the previous ingest held that this one dropped unread (`--discard-held`, for a
    /// damaged held-state file); absent when none.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub held_discarded: u64,
    /// The findings rows this commit records (`crate::findings`): detection results and triage
    /// verdicts; absent in commits that record none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub findings: Option<FindingsFile>,
    /// The checkpoint of the state after this commit (`store::checkpoint`); absent in most
    /// commits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<CheckpointRef>,
}

/// For `skip_serializing_if`: counts that are absent when nothing happened.
pub(crate) fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Commit {
    /// Whether an ingest made it (it counts records, or dropped held ones): the held state is
    /// the newest ingest's.
    pub fn is_ingest(&self) -> bool {
        !self.counts.is_empty() || self.held_discarded > 0
    }
}

/// A commit as found on disk, with the hash of its file.
#[derive(Debug, Clone)]
pub struct LoggedCommit {
    pub commit: Commit,
    pub hash: String,
}

/// The readable prefix of the commit log, and what stopped it early.
#[derive(Debug, Clone, Default)]
pub struct CommitLog {
    /// What the store holds after the newest readable commit.
    pub state: State,
    /// The commits read: from the one whose checkpoint `state` started from (or from the first
    /// when no checkpoint could be used) to the newest readable one.
    pub commits: Vec<LoggedCommit>,
    /// Problems that ended the readable log (a torn newest commit, a broken chain), or made
    /// opening it read more than the newest checkpoint.
    pub warnings: Vec<String>,
    /// The log ends at a commit that reads well but does not chain (an edited, swapped or
    /// forged commit, never a crash: commits are renamed into place whole). Writers refuse such
    /// a store, since replacing that commit would delete the files it names.
    pub tampered: bool,
    /// The highest commit number in the directory listing this log was read from (readable or
    /// not).
    pub max_listed: u64,
    /// Commits, and their bytes, since the newest checkpoint (or the first commit): when the
    /// next checkpoint is due.
    pub since_checkpoint: u64,
    pub bytes_since_checkpoint: u64,
}

impl CommitLog {
    /// Whether a writer must stop: a commit after the readable log is kept on disk (commits
    /// after a bad one, or a bad one that is not torn). A torn newest commit is what a crash can
    /// leave; the next write replaces it.
    pub fn damaged_before_end(&self) -> bool {
        self.tampered || self.max_listed > self.next_seq()
    }

    pub fn head(&self) -> Option<&LoggedCommit> {
        self.commits.last()
    }

    pub fn next_seq(&self) -> u64 {
        self.head().map_or(1, |c| c.commit.seq + 1)
    }

    /// The data files the store holds now: every file added and not removed since.
    pub fn files(&self) -> impl Iterator<Item = &DataFile> {
        self.state.files.iter()
    }

    /// Appends a commit of `bytes` bytes read or written after the head, and `state`, the state
    /// after it (`None`: applied here).
    pub(super) fn push(&mut self, logged: LoggedCommit, bytes: u64, state: Option<State>) {
        match state {
            Some(s) => self.state = s,
            None => self.state.apply(&logged.commit),
        }
        if logged.commit.checkpoint.is_some() {
            self.since_checkpoint = 0;
            self.bytes_since_checkpoint = 0;
        } else {
            self.since_checkpoint += 1;
            self.bytes_since_checkpoint += bytes;
        }
        self.commits.push(logged);
    }

    /// Whether the next commit should carry a checkpoint, one every `every` commits (0: never).
    pub fn checkpoint_due(&self, every: u64) -> bool {
        every > 0
            && (self.since_checkpoint + 1 >= every
                || self.bytes_since_checkpoint >= super::checkpoint::CHECKPOINT_AFTER_BYTES)
    }
}

/// Whether unreadable commit bytes look like an interrupted write (empty, zero-filled, or JSON
/// that ends early) rather than an edit.
fn is_torn(bytes: &[u8], e: &serde_json::Error) -> bool {
    // A write torn at page boundaries leaves a valid start followed by zero pages; serde_json
    // never writes a raw NUL, so any NUL byte is such a tear.
    bytes.iter().all(|b| b.is_ascii_whitespace()) || bytes.contains(&0) || e.is_eof()
}

pub fn commit_file_name(seq: u64) -> String {
    format!("{seq:020}.json")
}

/// Reads the log in sequence order from its newest usable checkpoint (else from the first
/// commit), stopping at the first commit that is missing, unreadable or does not chain to its
/// predecessor.
pub fn read_log(root: &Path) -> Result<CommitLog, StoreError> {
    let dir = root.join(COMMITS_DIR);
    let mut log = CommitLog::default();
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(log),
        Err(e) => return Err(StoreError::io(&dir, e)),
    };
    let mut seqs: Vec<u64> = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| StoreError::io(&dir, e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if let Some(seq) = name
            .strip_suffix(".json")
            .and_then(|s| s.parse::<u64>().ok())
        {
            seqs.push(seq);
        }
    }
    seqs.sort_unstable();
    // One listing for the log and for "is anything kept after it": a second listing could see
    // commits that a concurrent ingest made meanwhile and take them for damage.
    log.max_listed = seqs.last().copied().unwrap_or(0);
    let mut prev_hash: Option<String> = None;
    let mut base = 0;
    let mut tried = Vec::new();
    let listed = checkpoint::list(root)?;
    // Checkpoints older than the oldest on disk were deleted by design (superseded).
    let oldest_kept = listed.first().copied().unwrap_or(0);
    let mut missing_checkpoint = None;
    for seq in listed.into_iter().rev() {
        // A checkpoint past the newest commit is one a crash left before its commit.
        if seq > log.max_listed {
            continue;
        }
        tried.push(seq);
        match checkpoint::load(root, seq)? {
            Ok((state, logged)) => {
                prev_hash = Some(logged.hash.clone());
                log.state = state;
                log.commits.push(logged);
                base = seq;
                break;
            }
            Err(why) => log.warnings.push(format!(
                "checkpoint {seq} cannot be used ({why}); read from an older checkpoint or the first commit instead (vigil verify names the damage)"
            )),
        }
    }
    for (i, seq) in seqs.iter().skip_while(|s| **s <= base).enumerate() {
        let expected = base + i as u64 + 1;
        let path = dir.join(commit_file_name(*seq));
        if *seq != expected {
            log.warnings.push(format!(
                "commit {expected} is missing; the store ends at commit {}",
                expected - 1
            ));
            break;
        }
        let bytes = fs::read(&path).map_err(|e| StoreError::io(&path, e))?;
        let commit: Commit = match serde_json::from_slice(&bytes) {
            Ok(c) => c,
            Err(e) => {
                log.warnings.push(format!(
                    "commit {seq} ({}) is unreadable ({e}); the store ends at commit {}",
                    path.display(),
                    seq - 1
                ));
                // A crash can leave a commit empty, zero-filled or cut short, never well-formed
                // JSON of the wrong shape: that is an edit, and its files are evidence.
                log.tampered |= !is_torn(&bytes, &e);
                break;
            }
        };
        if commit.seq != *seq || commit.prev != prev_hash {
            log.warnings.push(format!(
                "commit {seq} does not chain to commit {}; the store ends at commit {}",
                seq - 1,
                seq - 1
            ));
            log.tampered = true;
            break;
        }
        if commit.checkpoint.is_some() && !tried.contains(seq) && *seq >= oldest_kept {
            missing_checkpoint = Some(*seq);
        }
        let hash = hex::encode(Sha256::digest(&bytes));
        prev_hash = Some(hash.clone());
        log.push(LoggedCommit { commit, hash }, bytes.len() as u64, None);
    }
    if let Some(seq) = missing_checkpoint {
        log.warnings.push(format!(
            "checkpoint {seq} cannot be used (the file is missing); read from an older checkpoint or the first commit instead (vigil verify names the damage)"
        ));
    }
    Ok(log)
}

/// Writes a commit durably; the store changes at the rename of this file. Returns its hash and
/// size.
pub fn write_commit(root: &Path, commit: &Commit) -> Result<(String, u64), StoreError> {
    let dir = root.join(COMMITS_DIR);
    crate::fsutil::create_dir_all_durable(&dir).map_err(|e| StoreError::io(&dir, e))?;
    let bytes = encode(commit);
    let path = dir.join(commit_file_name(commit.seq));
    write_atomic(&path, &bytes).map_err(|e| StoreError::io(&path, e))?;
    Ok((hex::encode(Sha256::digest(&bytes)), bytes.len() as u64))
}

/// The bytes of a commit file.
pub fn encode(commit: &Commit) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(commit).expect("a commit serializes");
    bytes.push(b'\n');
    bytes
}
