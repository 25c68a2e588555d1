//! Writing a store on object storage.
//!
//! Object storage has no lock and no rename, so a write works differently from a local one,
//! with the same outcome for readers:
//! - Writers stage their files in the store's local cache (the directory `Store::root` names),
//!   under names that carry a token of the writer (`Store::file_stem`): two writers racing for
//!   one commit number never overwrite each other's files.
//! - [`publish`] uploads them, then creates the commit object only if its number is free
//!   (S3's `If-None-Match: *`). Of two writers racing for commit N exactly one succeeds; the
//!   other stops with [`StoreError::Conflict`] and deletes what it uploaded. Until the commit
//!   exists nothing uploaded is listed anywhere, so readers never see it.
//! - The checkpoint a commit names is uploaded after it (a loser must not replace the
//!   winner's); a crash in between leaves the newest checkpoint missing, which readers pass
//!   over and the next writer puts back ([`restore_checkpoint`]).
//! - Files no commit lists (a writer that crashed between uploading and committing) are set
//!   aside by `vigil compact` only once older than its grace period, since a writer racing it
//!   may be uploading them still ([`set_aside_orphans`]): listing the whole store costs a
//!   request per thousand objects, too much for every write.

use std::collections::HashSet;
use std::path::PathBuf;

use bytes::Bytes;

use super::commit::{commit_file_name, COMMITS_DIR};
use super::held::HELD_DIR;
use super::remote::Remote;
use super::transaction::Changes;
use super::{CommitLog, Store, StoreError};
use crate::object_storage::ObjectError;

/// Staged files in the cache older than this are what a crashed writer left (no upload takes
/// so long), and are deleted.
const STALE_STAGING_SECS: u64 = 3600;

/// The folders of the store whose files a commit lists, where orphans can be.
const LISTED_DIRS: [&str; 5] = [
    super::EVENTS_DIR,
    super::REJECTS_DIR,
    super::FINDINGS_DIR,
    super::rollup::ROLLUPS_DIR,
    HELD_DIR,
];

fn remote(store: &Store) -> &Remote {
    store
        .remote()
        .expect("publishing is for a store on object storage")
}

fn failed(e: ObjectError) -> StoreError {
    StoreError::Remote(e.to_string())
}

/// Every store-relative file `changes` adds, as staged.
pub fn staged_files(changes: &Changes) -> Vec<String> {
    let mut out = Vec::new();
    for f in &changes.files {
        out.push(f.path.clone());
        for kind in super::rollup::Kind::ALL {
            if let Some(r) = f.rollup_of(kind) {
                out.push(r.path.clone());
            }
        }
    }
    out.extend(changes.rejects.iter().map(|r| r.path.clone()));
    out.extend(changes.held.iter().map(|h| h.path.clone()));
    out.extend(changes.findings.iter().map(|f| f.path.clone()));
    out
}

/// Makes commit `seq` (its bytes `commit`) with the files `staged` it adds: uploads them,
/// creates the commit object if the number is free, and keeps a copy of it in the cache. On a
/// conflict or a failure nothing becomes visible (what was uploaded is deleted, as far as the
/// bucket lets), and the staged copies are gone from the cache either way.
pub fn publish(
    store: &Store,
    seq: u64,
    commit: &[u8],
    staged: &[String],
) -> Result<(), StoreError> {
    let r = remote(store);
    let result = publish_staged(store, r, seq, commit, staged);
    clear_staged(store, staged);
    if result.is_err() {
        // Best effort: a file left is an orphan, set aside by a later compaction.
        let _ = r.bucket.delete(staged);
    }
    result
}

fn publish_staged(
    store: &Store,
    r: &Remote,
    seq: u64,
    commit: &[u8],
    staged: &[String],
) -> Result<(), StoreError> {
    let files: Vec<(String, PathBuf)> = staged
        .iter()
        .map(|rel| (rel.clone(), store.absolute(rel)))
        .collect();
    r.bucket.upload(&files).map_err(failed)?;
    crate::fault::crash_point("before_commit");
    crate::fault::hold_point("hold_before_commit");
    let name = commit_file_name(seq);
    let etag = r
        .bucket
        .create(
            &format!("{COMMITS_DIR}/{name}"),
            Bytes::copy_from_slice(commit),
        )
        .map_err(failed)?
        .ok_or_else(|| StoreError::Conflict {
            store: r.url.to_string(),
            seq,
        })?;
    // The cache's copy, as an open would fetch it (and known by its ETag, so it is not).
    let local = store.root().join(COMMITS_DIR).join(&name);
    crate::fsutil::write_atomic(&local, commit).map_err(|e| StoreError::io(&local, e))?;
    super::remote::remember(store, COMMITS_DIR, &name, &etag);
    Ok(())
}

/// Uploads the checkpoint `bytes` of commit `seq` (made) and keeps a copy in the cache.
pub fn put_checkpoint(store: &Store, seq: u64, bytes: Vec<u8>) -> Result<(), StoreError> {
    let rel = super::checkpoint::relative_path(seq);
    let local = store.absolute(&rel);
    remote(store)
        .bucket
        .put(&rel, Bytes::from(bytes.clone()))
        .map_err(failed)?;
    crate::fsutil::write_atomic(&local, &bytes).map_err(|e| StoreError::io(&local, e))
}

/// Puts back the checkpoint the newest commit names when the bucket does not have it (a
/// writer stopped between its commit and its checkpoint): the state the log gives after that
/// commit is the checkpoint, byte for byte when this vigil wrote it. Returns whether it did.
pub fn restore_checkpoint(store: &Store, log: &CommitLog) -> Result<bool, StoreError> {
    let Some(head) = log.head() else {
        return Ok(false);
    };
    let Some(named) = &head.commit.checkpoint else {
        return Ok(false);
    };
    if store.absolute(&named.path).exists() {
        return Ok(false);
    }
    let (bytes, again) = super::checkpoint::encode(&log.state);
    if again.sha256 != named.sha256 {
        return Ok(false);
    }
    put_checkpoint(store, head.commit.seq, bytes)?;
    Ok(true)
}

/// Deletes store-relative objects; returns how many were asked for.
pub fn delete(store: &Store, relatives: &[String]) -> Result<u64, StoreError> {
    remote(store).bucket.delete(relatives).map_err(failed)?;
    Ok(relatives.len() as u64)
}

/// Deletes `relatives` (in order) when the object `marker` still exists, the last of them;
/// returns how many were deleted (0 when it was gone already).
pub fn delete_if_present(
    store: &Store,
    marker: &str,
    relatives: &[String],
) -> Result<u64, StoreError> {
    if !remote(store).bucket.exists(marker).map_err(failed)? {
        return Ok(0);
    }
    delete(store, relatives)
}

/// Removes the cache's staged copies of files (uploaded, or given up).
pub fn clear_staged(store: &Store, staged: &[String]) {
    for rel in staged {
        let path = store.absolute(rel);
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_file(crate::fsutil::temp_path(&path));
    }
}

/// Deletes files staged in the cache more than an hour ago: what a writer that crashed left
/// (other processes may be staging in the same cache right now, so nothing newer).
pub fn clear_stale_staging(store: &Store) {
    fn walk(dir: &std::path::Path) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            match entry.file_type() {
                Ok(t) if t.is_dir() => walk(&path),
                Ok(t) if t.is_file() => {
                    let old = entry.metadata().and_then(|m| m.modified()).is_ok_and(|t| {
                        t.elapsed()
                            .is_ok_and(|age| age.as_secs() > STALE_STAGING_SECS)
                    });
                    if old {
                        let _ = std::fs::remove_file(&path);
                    }
                }
                _ => {}
            }
        }
    }
    for dir in LISTED_DIRS {
        walk(&store.root().join(dir));
    }
}

/// Sets aside, under `_quarantine/` (same relative paths), the objects of the store's listed
/// folders that no commit names and that were written more than `age` (nanoseconds) ago:
/// copied, then deleted. Returns their store-relative paths.
///
/// Their age is measured against this host's real clock, as the server stamped them (never
/// the clock `VIGIL_NOW` sets): S3 refuses requests signed more than 15 minutes off its own
/// time, so the two clocks agree within that.
pub fn set_aside_orphans(
    store: &Store,
    log: &CommitLog,
    age: i64,
) -> Result<Vec<String>, StoreError> {
    let older_than = crate::clock::wall_nanos().saturating_sub(age.max(0));
    let r = remote(store);
    let mut referenced: HashSet<String> = log.state.referenced_paths();
    referenced.extend(super::held::live(log).map(|h| h.path.clone()));
    let mut orphans = Vec::new();
    for dir in LISTED_DIRS {
        let base = r.bucket.key("");
        for object in r.bucket.list_folder(dir).map_err(failed)? {
            let Some(rel) = object.key.strip_prefix(base.as_str()) else {
                continue;
            };
            if !referenced.contains(rel) && object.modified > 0 && object.modified < older_than {
                orphans.push(rel.to_owned());
            }
        }
    }
    for rel in &orphans {
        let target = format!("{}/{rel}", super::QUARANTINE_DIR);
        r.bucket.copy(rel, &target).map_err(failed)?;
        r.bucket.delete(std::slice::from_ref(rel)).map_err(failed)?;
    }
    Ok(orphans)
}
