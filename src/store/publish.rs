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
use crate::object_storage::{ObjectError, ObjectInfo};
use crate::timerange::NANOS_PER_HOUR;

/// A writer none of whose staged files changed for this long has stopped: its files in the
/// cache are deleted.
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

/// Makes commit `seq` (its bytes `commit`) with the files `staged` it adds: uploads them, then
/// creates the commit object if the number is free, and keeps a copy of it in the cache.
/// Returns warnings: once the commit exists, a failure to cache it costs the next open a fetch.
///
/// What it deletes on a failure is only what no commit can name: after a failed upload, and
/// after a conflict proved by reading the commit another writer made. When the outcome is
/// unknown (a timeout, an error while creating, a commit that cannot be read back) the
/// uploaded files stay: the commit may exist; if it does not, compaction sets them aside.
pub fn publish(
    store: &Store,
    seq: u64,
    commit: &[u8],
    staged: &[String],
) -> Result<Vec<String>, StoreError> {
    let r = remote(store);
    let files: Vec<(String, PathBuf)> = staged
        .iter()
        .map(|rel| (rel.clone(), store.absolute(rel)))
        .collect();
    if let Err(e) = r.bucket.upload(&files) {
        clear_staged(store, staged);
        // Best effort: a file left is an orphan, set aside by a later compaction.
        let _ = r.bucket.delete(staged);
        return Err(failed(e));
    }
    crate::fault::crash_point("before_commit");
    crate::fault::hold_point("hold_before_commit");
    let name = commit_file_name(seq);
    let rel = format!("{COMMITS_DIR}/{name}");
    let created = r.bucket.create(&rel, Bytes::copy_from_slice(commit));
    clear_staged(store, staged);
    let etag = match created.map_err(failed)? {
        Some(etag) => etag,
        // Taken: by another writer, or by this very request, retried after its answer was
        // lost (the client retries a PUT the server failed): only the bytes tell.
        None => match r.bucket.get(&ObjectInfo::key_only(r.bucket.key(&rel))) {
            Ok(found) if found[..] == commit[..] => String::new(),
            Ok(_) => {
                let _ = r.bucket.delete(staged);
                return Err(StoreError::Conflict {
                    store: r.url.to_string(),
                    seq,
                });
            }
            Err(e) => return Err(failed(e)),
        },
    };
    // The commit exists: the cache's copy, as an open would fetch it (and known by its ETag,
    // so that it is not fetched again).
    let local = store.root().join(COMMITS_DIR).join(&name);
    let mut warnings = Vec::new();
    match crate::fsutil::write_atomic(&local, commit) {
        Ok(()) if !etag.is_empty() => super::remote::remember(store, COMMITS_DIR, &name, &etag),
        Ok(()) => {}
        Err(e) => warnings.push(format!(
            "commit {seq} is made; keeping its copy in the cache failed ({}: {e}), so the next command fetches it",
            local.display()
        )),
    }
    Ok(warnings)
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

/// Deletes what writers that stopped left staged in the cache: the files of a writer (known by
/// the token in their names) none of whose staged files changed in the last hour. Other
/// processes may be staging in the same cache right now, and a long ingest stages its first
/// files long before its commit, still writing newer ones as it goes.
pub fn clear_stale_staging(store: &Store) {
    fn walk(dir: &std::path::Path, out: &mut Vec<(PathBuf, String, std::time::SystemTime)>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            match entry.file_type() {
                Ok(t) if t.is_dir() => walk(&path, out),
                Ok(t) if t.is_file() => {
                    let Ok(modified) = entry.metadata().and_then(|m| m.modified()) else {
                        continue;
                    };
                    let name = entry.file_name().to_string_lossy().into_owned();
                    // `<seq>-<token>[-<n>].<ext>`; a name without one stands alone.
                    let writer = name
                        .split(['-', '.'])
                        .nth(1)
                        .filter(|t| t.len() == 8 && t.bytes().all(|b| b.is_ascii_hexdigit()))
                        .map_or_else(|| name.clone(), str::to_owned);
                    out.push((path, writer, modified));
                }
                _ => {}
            }
        }
    }
    let mut staged = Vec::new();
    for dir in LISTED_DIRS {
        walk(&store.root().join(dir), &mut staged);
    }
    let mut newest: std::collections::HashMap<&str, std::time::SystemTime> = Default::default();
    for (_, writer, modified) in &staged {
        let t = newest.entry(writer.as_str()).or_insert(*modified);
        *t = (*t).max(*modified);
    }
    for (path, writer, _) in &staged {
        let stopped = newest[writer.as_str()]
            .elapsed()
            .is_ok_and(|age| age.as_secs() > STALE_STAGING_SECS);
        if stopped {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The age below which compaction never sets aside an object no commit lists, whatever its
/// `--grace`: a writer uploads its files before it creates its commit (an upload of many files
/// takes minutes), and a multipart upload is stamped with its start.
const ORPHAN_MIN_AGE: i64 = NANOS_PER_HOUR;

/// Sets aside, under `_quarantine/` (same relative paths), the objects of the store's listed
/// folders that no commit names and that were written more than `age` (nanoseconds, at least
/// [`ORPHAN_MIN_AGE`]) ago: copied, then deleted. Returns their store-relative paths.
///
/// The folders are listed first and the log read after: a commit another writer makes in
/// between names files the listing holds, and they are not orphans. Their age is measured
/// against this host's real clock, as the server stamped them (never the clock `VIGIL_NOW`
/// sets): S3 refuses requests signed more than 15 minutes off its own time, so the two clocks
/// agree within that.
pub fn set_aside_orphans(store: &Store, age: i64) -> Result<Vec<String>, StoreError> {
    let floor = if crate::fault::switch("orphans_at_grace") {
        0
    } else {
        ORPHAN_MIN_AGE
    };
    let older_than = crate::clock::wall_nanos().saturating_sub(age.max(floor));
    let r = remote(store);
    let base = r.bucket.key("");
    let mut old = Vec::new();
    for dir in LISTED_DIRS {
        for object in r.bucket.list_folder(dir).map_err(failed)? {
            if let Some(rel) = object.key.strip_prefix(base.as_str()) {
                if object.modified > 0 && object.modified < older_than {
                    old.push(rel.to_owned());
                }
            }
        }
    }
    if old.is_empty() {
        return Ok(old);
    }
    super::remote::refresh(store)?;
    let log = store.log()?;
    let mut referenced: HashSet<String> = log.state.referenced_paths();
    referenced.extend(super::held::live(&log).map(|h| h.path.clone()));
    let orphans: Vec<String> = old
        .into_iter()
        .filter(|rel| !referenced.contains(rel))
        .collect();
    for rel in &orphans {
        let target = format!("{}/{rel}", super::QUARANTINE_DIR);
        r.bucket.copy(rel, &target).map_err(failed)?;
        r.bucket.delete(std::slice::from_ref(rel)).map_err(failed)?;
    }
    Ok(orphans)
}
