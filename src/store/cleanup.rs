//! Tidying a store before a write: files no commit lists are set aside, and files a compaction
//! replaced are deleted once their grace period is over. Only a writer holding the lock does
//! either (see `transaction`).

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use super::{CommitLog, Store, StoreError, WriteLock};
use crate::timerange::parse_instant;

/// How long replaced files stay when the commit does not say: longer than the default query
/// timeout (2 min) and a day's `vigil detect`, so readers that listed them finish. Readers hold
/// no lease: a command that runs longer (a month's backtest) can lose files under it.
pub const DEFAULT_GRACE_NANOS: i64 = 60 * 60 * 1_000_000_000;
/// Sets aside the data files no commit references, in `_quarantine/` (same relative
/// paths), and deletes temp files (never complete). Such files are what an ingest killed
/// before its commit leaves, but also what a deleted newest commit leaves: the two cannot be
/// told apart, so nothing complete is deleted.
pub fn set_aside_orphans(
    store: &Store,
    log: &CommitLog,
    _lock: &WriteLock,
) -> Result<Vec<PathBuf>, StoreError> {
    let referenced: HashSet<String> = log
        .commits
        .iter()
        .flat_map(|c| {
            c.commit
                .files
                .iter()
                .flat_map(|f| {
                    std::iter::once(f.path.clone()).chain(
                        super::rollup::Kind::ALL
                            .iter()
                            .filter_map(|k| f.rollup_of(*k).map(|r| r.path.clone())),
                    )
                })
                .chain(c.commit.rejects.iter().map(|r| r.path.clone()))
        })
        .collect();
    let mut removed = Vec::new();
    for top in [
        super::EVENTS_DIR,
        super::REJECTS_DIR,
        super::rollup::ROLLUPS_DIR,
    ] {
        let dir = store.root().join(top);
        if dir.is_dir() {
            collect_orphans(store, &dir, &referenced, &mut removed)?;
        }
    }
    let mut set_aside = Vec::new();
    for path in removed {
        if path.to_string_lossy().ends_with(super::fsutil::TEMP_SUFFIX) {
            fs::remove_file(&path).map_err(|e| StoreError::io(&path, e))?;
            continue;
        }
        let mut target = store
            .root()
            .join(super::QUARANTINE_DIR)
            .join(store.relative(&path));
        while target.exists() {
            let mut name = target.as_os_str().to_owned();
            name.push(".again");
            target = PathBuf::from(name);
        }
        if let Some(parent) = target.parent() {
            super::fsutil::create_dir_all_durable(parent).map_err(|e| StoreError::io(parent, e))?;
        }
        fs::rename(&path, &target).map_err(|e| StoreError::io(&path, e))?;
        set_aside.push(path);
    }
    Ok(set_aside)
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
/// (`keep_removed_until`, else the commit's time + [`DEFAULT_GRACE_NANOS`]) is over at `now`.
/// Only a path an earlier commit added, with the same hash, under `events/`, is ever deleted:
/// a forged commit cannot make vigil delete other files. Returns how many files were deleted.
pub fn delete_replaced(
    store: &Store,
    log: &CommitLog,
    now: i64,
    _lock: &WriteLock,
) -> Result<u64, StoreError> {
    let mut added: HashMap<&str, &str> = HashMap::new();
    let mut deleted = 0;
    for c in &log.commits {
        let c = &c.commit;
        if !c.removed.is_empty() {
            let until = c
                .keep_removed_until
                .as_deref()
                .and_then(|t| parse_instant(t).ok())
                .or_else(|| {
                    parse_instant(&c.created)
                        .ok()
                        .map(|t| t.saturating_add(DEFAULT_GRACE_NANOS))
                });
            if until.is_some_and(|t| t <= now) {
                for r in &c.removed {
                    if !is_data_path(&r.path)
                        || added.get(r.path.as_str()) != Some(&r.sha256.as_str())
                    {
                        continue;
                    }
                    let rollups = super::rollup::Kind::ALL.map(|k| k.path_for(&r.path));
                    for rel in std::iter::once(&r.path).chain(&rollups) {
                        let path = store.absolute(rel);
                        match fs::remove_file(&path) {
                            Ok(()) => deleted += 1,
                            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                            Err(e) => return Err(StoreError::io(&path, e)),
                        }
                    }
                }
            }
        }
        for f in &c.files {
            added.insert(&f.path, &f.sha256);
        }
    }
    Ok(deleted)
}

/// `events/.../<name>.parquet` with no `..`, `.` or empty component.
fn is_data_path(p: &str) -> bool {
    p.starts_with("events/")
        && p.ends_with(".parquet")
        && !p.contains('\\')
        && p.split('/').all(|c| !c.is_empty() && c != "." && c != "..")
}
