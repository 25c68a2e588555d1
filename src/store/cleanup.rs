//! Tidying a store before a write: files no commit lists are set aside, and files a compaction
//! replaced are deleted once their grace period is over. Only a writer holding the lock does
//! either (see `transaction`); on object storage, see `publish` for orphans.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use super::state::State;
use super::{CommitLog, Store, StoreError, WriteLock};
use crate::timerange::parse_instant;

/// Sets aside the data files no commit references, in `_quarantine/` (same relative
/// paths), and deletes temp files (never complete). Such files are what an ingest killed
/// before its commit leaves, but also what a deleted newest commit leaves: the two cannot be
/// told apart, so nothing complete is deleted.
pub fn set_aside_orphans(
    store: &Store,
    log: &CommitLog,
    _lock: &WriteLock,
) -> Result<Vec<PathBuf>, StoreError> {
    let referenced = log.state.referenced_paths();
    let mut removed = Vec::new();
    for top in [
        super::EVENTS_DIR,
        super::REJECTS_DIR,
        super::FINDINGS_DIR,
        super::rollup::ROLLUPS_DIR,
    ] {
        let dir = store.root().join(top);
        if dir.is_dir() {
            collect_orphans(store, &dir, &referenced, &mut removed)?;
        }
    }
    let mut set_aside = Vec::new();
    for path in removed {
        if path.to_string_lossy().ends_with(crate::fsutil::TEMP_SUFFIX) {
            fs::remove_file(&path).map_err(|e| StoreError::io(&path, e))?;
            continue;
        }
        set_aside_file(store, &path)?;
        set_aside.push(path);
    }
    Ok(set_aside)
}

/// Moves a file of the store to the same relative path under `_quarantine/` (never over an
/// earlier one); returns where it was.
fn set_aside_file(store: &Store, path: &Path) -> Result<PathBuf, StoreError> {
    let mut target = store
        .root()
        .join(super::QUARANTINE_DIR)
        .join(store.relative(path));
    while target.exists() {
        let mut name = target.as_os_str().to_owned();
        name.push(".again");
        target = PathBuf::from(name);
    }
    if let Some(parent) = target.parent() {
        crate::fsutil::create_dir_all_durable(parent).map_err(|e| StoreError::io(parent, e))?;
    }
    fs::rename(path, &target).map_err(|e| StoreError::io(path, e))?;
    Ok(path.to_owned())
}

fn collect_orphans(
    store: &Store,
    dir: &Path,
    referenced: &HashSet<String>,
    out: &mut Vec<PathBuf>,
) -> Result<(), StoreError> {
    for entry in fs::read_dir(dir).map_err(|e| StoreError::io(dir, e))? {
        let entry = entry.map_err(|e| StoreError::io(dir, e))?;
        let path = entry.path();
        let ft = entry.file_type().map_err(|e| StoreError::io(&path, e))?;
        if ft.is_dir() {
            collect_orphans(store, &path, referenced, out)?;
        } else if ft.is_file() && !referenced.contains(&store.relative(&path)) {
            out.push(path);
        }
    }
    Ok(())
}

/// Deletes the data files (and rollups) that compactions replaced, once their grace period
/// is over at `now`, and forgets them in `state` (so the next checkpoint no longer lists them).
/// `State::apply` keeps only removals of files the store held, under `events/`, with the hash
/// they were added with. Returns how many files were deleted.
pub fn delete_replaced(
    store: &Store,
    state: &mut State,
    now: i64,
    _lock: &WriteLock,
) -> Result<u64, StoreError> {
    let mut deleted = 0;
    let mut done = HashSet::new();
    for p in &state.pending {
        if !parse_instant(&p.until).is_ok_and(|t| t <= now) {
            continue;
        }
        let rollups = super::rollup::Kind::ALL.map(|k| k.path_for(&p.file.path));
        if store.remote().is_some() {
            // Until a checkpoint forgets them, every write sees these removals again: one HEAD
            // tells whether they are done (rollups go first, the data file last).
            let rels: Vec<String> = rollups
                .iter()
                .chain(std::iter::once(&p.file.path))
                .cloned()
                .collect();
            match super::publish::delete_if_present(store, &p.file.path, &rels) {
                Ok(n) => deleted += n,
                Err(e) => {
                    state.drop_deleted(&done);
                    return Err(e);
                }
            }
            done.insert((p.seq, p.file.path.clone()));
            continue;
        }
        for rel in std::iter::once(&p.file.path).chain(&rollups) {
            let path = store.absolute(rel);
            match fs::remove_file(&path) {
                Ok(()) => deleted += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    state.drop_deleted(&done);
                    return Err(StoreError::io(&path, e));
                }
            }
        }
        done.insert((p.seq, p.file.path.clone()));
    }
    state.drop_deleted(&done);
    Ok(deleted)
}

/// Tidies `_checkpoints/` for the commit about to be made: deletes temp files and the
/// checkpoint a run staged for this very commit number and never committed (what a crash
/// leaves), and sets aside in `_quarantine/` checkpoints numbered after it: no crash leaves
/// those, deleted commits do, and they are the only list left of what those commits held.
/// Returns how many files were deleted and how many set aside.
pub fn tidy_checkpoints(
    store: &Store,
    log: &CommitLog,
    _lock: &WriteLock,
) -> Result<(u64, Vec<PathBuf>), StoreError> {
    let dir = store.root().join(super::checkpoint::CHECKPOINTS_DIR);
    let Some(entries) = super::checkpoint::read_dir_if_any(&dir)? else {
        return Ok((0, Vec::new()));
    };
    let mut deleted = 0;
    let mut set_aside = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| StoreError::io(&dir, e))?.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let seq = name
            .strip_suffix(".json")
            .and_then(|s| s.parse::<u64>().ok());
        if name.ends_with(crate::fsutil::TEMP_SUFFIX) || seq == Some(log.next_seq()) {
            fs::remove_file(&path).map_err(|e| StoreError::io(&path, e))?;
            deleted += 1;
        } else if seq.is_some_and(|s| s > log.next_seq()) {
            set_aside.push(set_aside_file(store, &path)?);
        }
    }
    Ok((deleted, set_aside))
}

/// Deletes the checkpoints older than the `keep` newest ones up to `newest`: readers use the
/// newest, and fall back to an older one only when it is damaged (or deleted under them, when
/// a writer makes `keep` checkpoints while they read). Returns how many.
pub fn remove_superseded_checkpoints(
    store: &Store,
    newest: u64,
    keep: usize,
    _lock: &WriteLock,
) -> Result<u64, StoreError> {
    let mut older: Vec<u64> = super::checkpoint::list(store.root())?
        .into_iter()
        .filter(|s| *s <= newest)
        .collect();
    older.reverse();
    let mut removed = 0;
    for seq in older.into_iter().skip(keep) {
        let rel = super::checkpoint::relative_path(seq);
        if store.remote().is_some() {
            super::publish::delete(store, std::slice::from_ref(&rel))?;
        }
        let path = store.absolute(&rel);
        match fs::remove_file(&path) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::io(&path, e)),
        }
    }
    Ok(removed)
}
