//! A store kept on object storage (`--store s3://bucket/prefix`), read in place.
//!
//! The layout is the local one, so a store copied to a bucket (`aws s3 sync ./store
//! s3://bucket/prefix`) is read where it lies, by vigil as by Athena or Trino. Opening it copies
//! the small metadata to a local cache, `$XDG_CACHE_HOME/vigil/stores/<digest of the URL>/`: the
//! commits (only those not cached yet, or whose size changed) and the checkpoints. The commit
//! log is then read, hash chain and all, exactly as for a local store; the data, rollup and
//! findings files are never copied: queries read them from the bucket, ranges at a time.
//!
//! Reading only, in this version: commands that write (ingest, compact, detect that records,
//! findings verdicts, serve) stop with a sentence before they touch anything. `vigil verify`
//! works: it fetches every commit, lists the bucket once, and reads every file it checks.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use object_store::ObjectStore;
use sha2::{Digest, Sha256};

use super::{checkpoint, commit, Store, StoreError, FINDINGS_DIR};
use crate::object_storage::{Bucket, ObjectInfo, ObjectStoreSettings, ObjectUrl};

/// Where a store on object storage lives, the client its scans read through, and the bucket
/// its commits and (for verify) files are fetched from.
pub struct Remote {
    pub url: ObjectUrl,
    pub client: Arc<dyn ObjectStore>,
    pub bucket: Bucket,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote").field("url", &self.url).finish()
    }
}

impl Remote {
    /// The object path of `relative` (a store-relative, `/`-separated path).
    pub fn object_path(&self, relative: &str) -> object_store::path::Path {
        if self.url.prefix.is_empty() {
            object_store::path::Path::from(relative)
        } else {
            object_store::path::Path::from(format!("{}/{relative}", self.url.prefix))
        }
    }
}

/// Opens the store at `url`: brings the local copy of its commit log up to date and returns a
/// store that reads its data from the bucket.
pub fn open(url: &ObjectUrl, settings: &ObjectStoreSettings) -> Result<Store, StoreError> {
    let failed = |e: crate::object_storage::ObjectError| StoreError::Remote(e.to_string());
    let bucket = Bucket::connect(url, settings).map_err(failed)?;
    let cache = cache_dir(url)?;
    // The checkpoints first: opening reads from the newest usable one (falling back to older
    // ones), so only the commits from the oldest kept checkpoint on are needed. Commit names
    // are zero-padded, so S3's key order is their order and the listing starts there: a store
    // of a million commits costs a request or two, not a thousand.
    let checkpoints = bucket
        .list_folder(checkpoint::CHECKPOINTS_DIR)
        .map_err(failed)?;
    let oldest_checkpoint = checkpoints.iter().filter_map(|o| seq_of(&o.key)).min();
    let after = oldest_checkpoint.map(|seq| commit::commit_file_name(seq.saturating_sub(1)));
    let commits = bucket
        .list_folder_after(commit::COMMITS_DIR, after.as_deref())
        .map_err(failed)?;
    if commits.is_empty()
        && bucket
            .list_folder(commit::COMMITS_DIR)
            .map_err(failed)?
            .is_empty()
    {
        return Err(StoreError::Remote(format!(
            "{url}: no vigil store there (no {}/ under it); a store is copied there whole, e.g. aws s3 sync ./vigil-store {url}",
            commit::COMMITS_DIR
        )));
    }
    mirror(
        &bucket,
        &commits,
        &cache.join(commit::COMMITS_DIR),
        after.as_deref(),
    )?;
    mirror(
        &bucket,
        &checkpoints,
        &cache.join(checkpoint::CHECKPOINTS_DIR),
        None,
    )?;
    // A checkpoint is trusted for a store with findings only if it lists them: opening looks
    // for the folder, which the cache stands in for.
    let findings = cache.join(FINDINGS_DIR);
    let has_findings = !bucket.list_folder(FINDINGS_DIR).map_err(failed)?.is_empty();
    match (has_findings, findings.is_dir()) {
        (true, false) => {
            std::fs::create_dir_all(&findings).map_err(|e| StoreError::io(&findings, e))?
        }
        (false, true) => {
            std::fs::remove_dir_all(&findings).map_err(|e| StoreError::io(&findings, e))?
        }
        _ => {}
    }
    let client = Bucket::scan_client(url, settings).map_err(failed)?;
    Ok(Store::new(cache).with_remote(Remote {
        url: url.clone(),
        client,
        bucket,
    }))
}

/// Brings every commit of the store into the cache, not only those from the oldest
/// checkpoint on: verify replays the whole log.
pub fn fetch_all_commits(store: &Store) -> Result<(), StoreError> {
    let Some(remote) = store.remote() else {
        return Ok(());
    };
    let commits = remote
        .bucket
        .list_folder(commit::COMMITS_DIR)
        .map_err(|e| StoreError::Remote(e.to_string()))?;
    mirror(
        &remote.bucket,
        &commits,
        &store.root().join(commit::COMMITS_DIR),
        None,
    )
}

/// `$XDG_CACHE_HOME/vigil/stores/<first 16 hex digits of SHA-256 of the URL>`.
fn cache_dir(url: &ObjectUrl) -> Result<PathBuf, StoreError> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))
        .ok_or_else(|| {
            StoreError::Remote(
                "neither XDG_CACHE_HOME nor HOME is set: no place for the store's local cache"
                    .into(),
            )
        })?;
    let digest = Sha256::digest(url.to_string().as_bytes());
    let name: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    Ok(base.join("vigil").join("stores").join(name))
}

/// The sequence number a commit or checkpoint object is named by.
fn seq_of(key: &str) -> Option<u64> {
    key.rsplit('/').next()?.strip_suffix(".json")?.parse().ok()
}

/// Makes `dir` hold exactly the `.json` objects listed (of those named after `after`, when
/// the listing started there): new ones (or ones whose size changed) fetched, those gone from
/// the bucket removed. Commits never change once written, so a store of 10,000 commits costs a
/// listing and the new commits, not 10,000 requests.
fn mirror(
    bucket: &Bucket,
    objects: &[ObjectInfo],
    dir: &Path,
    after: Option<&str>,
) -> Result<(), StoreError> {
    crate::fsutil::create_dir_all_durable(dir).map_err(|e| StoreError::io(dir, e))?;
    let mut wanted = std::collections::BTreeSet::new();
    for object in objects {
        let Some(name) = object
            .key
            .rsplit('/')
            .next()
            .filter(|n| n.ends_with(".json"))
        else {
            continue;
        };
        wanted.insert(name.to_owned());
        let local = dir.join(name);
        let cached = std::fs::metadata(&local).is_ok_and(|m| m.len() == object.size);
        if !cached {
            let bytes = bucket
                .get(object)
                .map_err(|e| StoreError::Remote(e.to_string()))?;
            // A cache needs no fsync; a temp name of this process's own, because two vigils
            // opening the same store fill one cache.
            let tmp = dir.join(format!("{name}.{}.tmp", std::process::id()));
            std::fs::write(&tmp, &bytes)
                .and_then(|()| std::fs::rename(&tmp, &local))
                .map_err(|e| StoreError::io(&local, e))?;
        }
    }
    for entry in std::fs::read_dir(dir).map_err(|e| StoreError::io(dir, e))? {
        let entry = entry.map_err(|e| StoreError::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        // Gone from the bucket (a checkpoint superseded there); another process's temp file
        // is left alone, and one left by a crash an hour ago is not.
        let stale = if name.ends_with(".json") {
            !wanted.contains(&name) && after.is_none_or(|a| name.as_str() > a)
        } else {
            entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t.elapsed().is_ok_and(|age| age.as_secs() > 3600))
        };
        if stale {
            let path = entry.path();
            // Another process may have removed it first.
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(StoreError::io(&path, e)),
            }
        }
    }
    Ok(())
}
