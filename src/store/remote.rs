//! A store kept on object storage (`--store s3://bucket/prefix`), read in place.
//!
//! The layout is the local one, so a store copied to a bucket (`aws s3 sync ./store
//! s3://bucket/prefix`) is read where it lies, by vigil as by Athena or Trino. Opening it copies
//! the small metadata to a local cache, `$XDG_CACHE_HOME/vigil/stores/<digest of the URL>/`: the
//! commits (only those not cached yet, or whose size changed) and the checkpoints. The commit
//! log is then read, hash chain and all, exactly as for a local store; the data, rollup and
//! findings files are never copied: queries read them from the bucket, ranges at a time.
//!
//! Writers (ingest, compact, detect recording findings, findings verdicts, the service) stage
//! their files in the cache and publish them with their commit (see [`super::publish`]).
//! `vigil verify` fetches every commit, lists the bucket once, and reads every file it checks.

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
    /// This process's token in the names of the files it writes (`Store::file_stem`).
    pub writer: String,
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
            crate::object_storage::key_path(relative)
        } else {
            crate::object_storage::key_path(&format!("{}/{relative}", self.url.prefix))
        }
    }
}

/// Whether opening a store where there is none is an error (a reader) or a new, empty store
/// (a writer: the first ingest creates it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Open {
    Existing,
    OrCreate,
}

/// Opens the store at `url`: brings the local copy of its commit log up to date and returns a
/// store that reads its data from the bucket.
pub fn open(
    url: &ObjectUrl,
    settings: &ObjectStoreSettings,
    how: Open,
) -> Result<Store, StoreError> {
    let failed = |e: crate::object_storage::ObjectError| StoreError::Remote(e.to_string());
    let bucket = Bucket::connect(url, settings).map_err(failed)?;
    let cache = cache_dir(url, bucket.endpoint())?;
    // The checkpoints first: opening reads from the newest usable one (falling back to older
    // ones), so only the commits from the oldest kept checkpoint on are needed. Commit names
    // are zero-padded, so S3's key order is their order and the listing starts there: a store
    // of a million commits costs a request or two, not a thousand.
    let checkpoints = bucket
        .list_folder(checkpoint::CHECKPOINTS_DIR)
        .map_err(failed)?;
    let oldest_checkpoint = checkpoints.iter().filter_map(|o| seq_of(&o.key)).min();
    let mut after = oldest_checkpoint.map(|seq| commit::commit_file_name(seq.saturating_sub(1)));
    let mut commits = bucket
        .list_folder_after(commit::COMMITS_DIR, after.as_deref())
        .map_err(failed)?;
    // A checkpoint is written before its commit: one whose commit has not arrived (a copy in
    // progress, a crash) must not hide the commits before it.
    if oldest_checkpoint.is_some()
        && commits.first().and_then(|c| seq_of(&c.key)) != oldest_checkpoint
    {
        after = None;
        commits = bucket.list_folder(commit::COMMITS_DIR).map_err(failed)?;
    }
    if commits.is_empty() && how == Open::Existing {
        return Err(StoreError::Remote(format!(
            "{url}: no vigil store there (no {}/ under it); a store is copied there whole, e.g. aws s3 sync ./vigil-store {url}",
            commit::COMMITS_DIR
        )));
    }
    let mut index = EtagIndex::load(&cache);
    mirror(
        &bucket,
        &commits,
        &cache,
        commit::COMMITS_DIR,
        after.as_deref(),
        &mut index,
        false,
    )?;
    mirror(
        &bucket,
        &checkpoints,
        &cache,
        checkpoint::CHECKPOINTS_DIR,
        None,
        &mut index,
        false,
    )?;
    // A checkpoint is trusted for a store with findings only if it lists them: opening looks
    // for the folder, which the cache stands in for.
    let findings = cache.join(FINDINGS_DIR);
    let has_findings = !bucket.list_folder(FINDINGS_DIR).map_err(failed)?.is_empty();
    match (has_findings, findings.is_dir()) {
        (true, false) => {
            std::fs::create_dir_all(&findings).map_err(|e| StoreError::io(&findings, e))?
        }
        // (Not while a writer sharing this cache stages a first findings file in it.)
        (false, true) if !holds_files(&findings) => {
            std::fs::remove_dir_all(&findings).map_err(|e| StoreError::io(&findings, e))?
        }
        _ => {}
    }
    // (When no checkpoint can be used, `Store::log` fetches the commits before them.)
    index.save(&cache);
    let client = Bucket::scan_client(url, settings).map_err(failed)?;
    Ok(Store::new(cache).with_remote(Remote {
        url: url.clone(),
        client,
        bucket,
        writer: writer_token(),
    }))
}

/// Eight hex digits unlikely to be another process's: from the process id, the time and the
/// per-process random seed of the standard library's hash maps.
fn writer_token() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    format!("{:08x}", h.finish() as u32)
}

/// Records that the cache's `<folder>/<name>` is the bucket's object of `etag` (a file this
/// process wrote to both), so the next open does not fetch it again.
pub fn remember(store: &Store, folder: &str, name: &str, etag: &str) {
    let mut index = EtagIndex::load(store.root());
    index.0.insert(format!("{folder}/{name}"), etag.to_owned());
    index.save(store.root());
}

/// Brings every commit of the store into the cache: those the open left out (from before the
/// oldest checkpoint), and with `refetch` every one anew whatever the cache holds (verify
/// replays the whole log from the bucket's bytes, never from a copy).
pub fn fetch_all_commits(store: &Store, refetch: bool) -> Result<(), StoreError> {
    fetch_commits(store, None, refetch)
}

/// Lists the commits in the bucket named after `after` (all of them when `None`) and brings
/// them into the cache (`refetch`: every one anew).
fn fetch_commits(store: &Store, after: Option<&str>, refetch: bool) -> Result<(), StoreError> {
    let Some(remote) = store.remote() else {
        return Ok(());
    };
    let commits = remote
        .bucket
        .list_folder_after(commit::COMMITS_DIR, after)
        .map_err(|e| StoreError::Remote(e.to_string()))?;
    if commits.is_empty() {
        return Ok(());
    }
    let mut index = EtagIndex::load(store.root());
    mirror(
        &remote.bucket,
        &commits,
        store.root(),
        commit::COMMITS_DIR,
        after,
        &mut index,
        refetch,
    )?;
    index.save(store.root());
    Ok(())
}

/// Fetches the commits made since the cache was last brought up to date (one listing, from the
/// newest cached commit on): a writer begins from the newest log, so it loses a race for its
/// commit number only to a writer that commits while it works, not to one that committed while
/// it was, say, running its detectors.
pub fn refresh(store: &Store) -> Result<(), StoreError> {
    if store.remote().is_none() {
        return Ok(());
    }
    let dir = store.root().join(commit::COMMITS_DIR);
    let newest = std::fs::read_dir(&dir)
        .map_err(|e| StoreError::io(&dir, e))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| seq_of(n).is_some())
        .max();
    fetch_commits(store, newest.as_deref(), false)
}

/// `$XDG_CACHE_HOME/vigil/stores/<first 16 hex digits of SHA-256 of the endpoint and URL>`:
/// the same bucket name on two servers (AWS and a MinIO) is two stores.
fn cache_dir(url: &ObjectUrl, endpoint: &str) -> Result<PathBuf, StoreError> {
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
    let digest = Sha256::digest(format!("{endpoint}\n{url}").as_bytes());
    let name: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    Ok(base.join("vigil").join("stores").join(name))
}

/// Whether a file lies anywhere under `dir`.
fn holds_files(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries.flatten().any(|e| {
            e.file_type()
                .is_ok_and(|t| t.is_file() || (t.is_dir() && holds_files(&e.path())))
        })
    })
}

/// The sequence number a commit or checkpoint object is named by.
fn seq_of(key: &str) -> Option<u64> {
    key.rsplit('/').next()?.strip_suffix(".json")?.parse().ok()
}

/// The ETag each cached file had when fetched (`<cache>/etags.json`, keyed `<folder>/<name>`):
/// a commit rewritten in the bucket with the same length (an edit, a torn commit replaced, a
/// store replaced by another) is fetched again, not trusted from the cache.
struct EtagIndex(std::collections::BTreeMap<String, String>);

impl EtagIndex {
    const FILE: &'static str = "etags.json";

    fn load(cache: &Path) -> EtagIndex {
        let map = std::fs::read(cache.join(Self::FILE))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        EtagIndex(map)
    }

    /// Best effort: a lost index costs refetching, never a wrong answer.
    fn save(&self, cache: &Path) {
        if let Ok(text) = serde_json::to_vec(&self.0) {
            let tmp = cache.join(format!("{}.{}.tmp", Self::FILE, std::process::id()));
            if std::fs::write(&tmp, text).is_ok() {
                let _ = std::fs::rename(&tmp, cache.join(Self::FILE));
            }
        }
    }
}

/// Makes `<cache>/<folder>` hold the `.json` objects listed directly in that folder: those
/// not cached, or cached with another size or ETag (all of them when `refetch`), fetched;
/// those gone from the bucket removed, but only up to the newest listed (a newer one another
/// process fetched after this listing is not gone) and, when the listing started after a
/// name, only past it.
fn mirror(
    bucket: &Bucket,
    objects: &[ObjectInfo],
    cache: &Path,
    folder: &str,
    after: Option<&str>,
    index: &mut EtagIndex,
    refetch: bool,
) -> Result<(), StoreError> {
    let dir = cache.join(folder);
    crate::fsutil::create_dir_all_durable(&dir).map_err(|e| StoreError::io(&dir, e))?;
    let folder_key = format!("{}/", bucket.key(folder));
    let mut wanted = std::collections::BTreeSet::new();
    for object in objects {
        // Only the folder's own files: `_commits/old/42.json` is not commit 42.
        let Some(name) = object
            .key
            .strip_prefix(folder_key.as_str())
            .filter(|n| !n.contains('/') && n.ends_with(".json"))
        else {
            continue;
        };
        wanted.insert(name.to_owned());
        let local = dir.join(name);
        let key = format!("{folder}/{name}");
        let cached = !refetch
            && std::fs::metadata(&local).is_ok_and(|m| m.len() == object.size)
            && (object.etag.is_empty() || index.0.get(&key) == Some(&object.etag));
        if !cached {
            let bytes = bucket
                .get(object)
                .map_err(|e| StoreError::Remote(e.to_string()))?;
            // A cache needs no fsync; a temp name of this process's own (two vigils opening
            // one store fill one cache), outside the folder the log is read from.
            let tmp = cache.join(format!("{name}.{}.tmp", std::process::id()));
            std::fs::write(&tmp, &bytes)
                .and_then(|()| std::fs::rename(&tmp, &local))
                .map_err(|e| StoreError::io(&local, e))?;
            index.0.insert(key, object.etag.clone());
        }
    }
    let newest = wanted.iter().next_back().cloned();
    for entry in std::fs::read_dir(&dir).map_err(|e| StoreError::io(&dir, e))? {
        let entry = entry.map_err(|e| StoreError::io(&dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let gone = !wanted.contains(&name)
            && newest.as_deref().is_some_and(|n| name.as_str() < n)
            && after.is_none_or(|a| name.as_str() > a);
        if gone {
            let path = entry.path();
            index.0.remove(&format!("{folder}/{name}"));
            // Another process may have removed it first.
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(StoreError::io(&path, e)),
            }
        }
    }
    // Temp files a crash left over an hour ago.
    for entry in std::fs::read_dir(cache)
        .map_err(|e| StoreError::io(cache, e))?
        .flatten()
    {
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().is_ok_and(|age| age.as_secs() > 3600));
        if old && entry.file_name().to_string_lossy().ends_with(".tmp") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    Ok(())
}
