//! Merging small findings files. Every detection run and every verdict adds one small file; a
//! run every hour makes 8,760 a year, and reading the history costs one file open each (733
//! files: 0.9 s per `vigil findings list` in a debug build). Once `MERGE_AT` small files have
//! piled up, the next writer merges them into one, in a commit of its own that removes them
//! (deleted after the usual grace period, like compacted data files), keeping every row and its
//! `commit_seq`, so the latest status of every finding is unchanged. Files past `SMALL_FILE`
//! are left alone, so no row is rewritten more than a few times.

use crate::store::commit::{FindingsFile, RemovedFile};
use crate::store::state::State;
use crate::store::{Store, StoreError};

/// How many small findings files make a merge due.
pub const MERGE_AT: usize = 32;

/// Files at least this large are not merged again.
pub const SMALL_FILE: u64 = 4 << 20;

/// The small findings files of `state`, when there are enough to merge.
pub fn due(state: &State) -> Option<Vec<FindingsFile>> {
    let small: Vec<FindingsFile> = state
        .findings
        .iter()
        .filter(|f| f.bytes < SMALL_FILE)
        .cloned()
        .collect();
    (small.len() >= MERGE_AT).then_some(small)
}

/// Writes the rows of `files` into the findings file of commit `seq` made at `now`; returns it
/// and the removals the commit must carry.
pub fn merge(
    store: &Store,
    seq: u64,
    now: i64,
    files: &[FindingsFile],
) -> Result<(FindingsFile, Vec<RemovedFile>), StoreError> {
    let relative = super::file_name(store, seq, now);
    let sources: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
    let merged =
        crate::store::writer::merge_tables(store, &sources, relative, super::row::schema())?;
    let removed = files
        .iter()
        .map(|f| RemovedFile {
            path: f.path.clone(),
            sha256: f.sha256.clone(),
            rows: f.rows,
            reason: "compaction".to_owned(),
            replaced_by: vec![merged.path.clone()],
        })
        .collect();
    Ok((merged, removed))
}
