//! The store: Hive-partitioned Parquet files made visible by a hash-chained commit log.
//!
//! ```text
//! <store>/events/source=<s>/date=<YYYY-MM-DD>/<seq>-<n>.parquet
//! <store>/_commits/<seq>.json
//! <store>/_checkpoints/<seq>.json
//! <store>/rejects/<YYYY-MM-DD>/<seq>.jsonl
//! <store>/findings/date=<YYYY-MM-DD>/<seq>.parquet
//! <store>/state/
//! ```

pub mod checkpoint;
pub mod chunk;
pub mod cleanup;
pub mod commit;
pub mod compact;
pub mod dedupe;
pub mod digest;
pub mod encoders;
pub mod files;
pub mod held;
pub mod inputs;
pub mod publish;
pub mod remote;
pub mod rollup;
pub mod state;
pub mod transaction;
pub mod verify;
pub mod writer;

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use thiserror::Error;

pub use commit::{read_log, CommitLog, Tally};

pub const EVENTS_DIR: &str = "events";
pub const REJECTS_DIR: &str = "rejects";
/// Where the findings history lives (`crate::findings`).
pub const FINDINGS_DIR: &str = "findings";
/// Where files no commit lists are set aside (see [`cleanup::set_aside_orphans`]).
pub const QUARANTINE_DIR: &str = "_quarantine";

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("writing parquet file {path}: {message}")]
    Parquet { path: PathBuf, message: String },
    #[error("the store {0} is locked by another vigil process; wait for it to finish (a `vigil serve` holds the lock for as long as it runs: let it do the ingesting)")]
    Locked(PathBuf),
    #[error("the store is damaged ({0}); run vigil verify")]
    Damaged(String),
    #[error("the commit log of {store} is damaged before its end ({why}); run vigil verify and restore the store before writing to it")]
    LogDamaged { store: PathBuf, why: String },
    /// A store on object storage could not be opened (one sentence, no credential).
    #[error("{0}")]
    Remote(String),
    /// Another writer made the commit this one was about to make (object storage has no lock:
    /// the commit is created only if its number is free).
    #[error("another writer made commit {seq} of {store} first: nothing this run wrote became part of the store; run it again (what it read is still unconsumed)")]
    Conflict { store: String, seq: u64 },
}

impl StoreError {
    pub fn io(path: &Path, source: std::io::Error) -> StoreError {
        StoreError::Io {
            path: path.to_owned(),
            error: source,
        }
    }
}

/// A store directory.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    checkpoint_every: u64,
    /// The lock this process holds for as long as it runs (`vigil serve`): every transaction
    /// of this handle shares it instead of taking it anew.
    held: Option<Arc<File>>,
    /// `root` made absolute once (the object paths of a local store's scans start from it).
    absolute_root: PathBuf,
    /// Set for a store on object storage: `root` is then the local cache of its commit log,
    /// where writers stage their files before a commit uploads them.
    remote: Option<Arc<remote::Remote>>,
}

/// Right to write to a store, held until dropped (or, for a store handle that holds its lock,
/// until the last handle is dropped): an exclusive file lock on a local store; on object
/// storage nothing (no lock exists there: the conditional creation of each commit decides
/// between writers, see [`publish`]).
#[derive(Debug)]
pub struct WriteLock {
    _file: Option<Arc<File>>,
}

impl Store {
    pub fn new(root: impl Into<PathBuf>) -> Store {
        let root: PathBuf = root.into();
        Store {
            absolute_root: std::path::absolute(&root).unwrap_or_else(|_| root.clone()),
            root,
            checkpoint_every: checkpoint::DEFAULT_CHECKPOINT_EVERY,
            held: None,
            remote: None,
        }
    }

    /// This store's data read from object storage (see [`remote`]).
    pub fn with_remote(mut self, remote: remote::Remote) -> Store {
        self.remote = Some(Arc::new(remote));
        self
    }

    pub fn remote(&self) -> Option<&remote::Remote> {
        self.remote.as_deref()
    }

    /// The store as messages name it: its directory, or its URL on object storage.
    pub fn name(&self) -> String {
        match &self.remote {
            Some(r) => r.url.to_string(),
            None => self.root.display().to_string(),
        }
    }

    /// How the files a commit `seq` adds are named (`<stem>.jsonl`, `<stem>-<n>.parquet`):
    /// the zero-padded number; on object storage followed by a token of this writer, since
    /// two writers racing for one number would otherwise overwrite each other's files before
    /// either knew it lost.
    pub fn file_stem(&self, seq: u64) -> String {
        match &self.remote {
            Some(r) => format!("{seq:06}-{}", r.writer),
            None => format!("{seq:06}"),
        }
    }

    /// Where DataFusion finds this store's files: the local file system, or the bucket.
    pub fn object_store_url(&self) -> datafusion::execution::object_store::ObjectStoreUrl {
        use datafusion::execution::object_store::ObjectStoreUrl;
        match &self.remote {
            Some(r) => ObjectStoreUrl::parse(format!("s3://{}", r.url.bucket))
                .expect("a bucket name makes a URL"),
            None => ObjectStoreUrl::local_filesystem(),
        }
    }

    /// The object path of a store-relative file, for DataFusion's scans.
    pub fn object_path(&self, relative: &str) -> std::io::Result<object_store::path::Path> {
        match &self.remote {
            Some(r) => Ok(r.object_path(relative)),
            None => object_store::path::Path::from_absolute_path(self.absolute_root.join(relative))
                .map_err(std::io::Error::other),
        }
    }

    /// This store with its writer lock taken for as long as the returned handle (or a clone)
    /// lives: a long-running writer keeps other writers out between its transactions, which
    /// then never wait for the lock. Its transactions must run one at a time: the lock no
    /// longer keeps them apart.
    pub fn holding_lock(&self) -> Result<Store, StoreError> {
        let lock = self.lock()?;
        Ok(Store {
            held: lock._file,
            ..self.clone()
        })
    }

    /// A checkpoint of the commit log every `n` commits written here (0: none).
    pub fn with_checkpoint_every(mut self, n: u64) -> Store {
        self.checkpoint_every = n;
        self
    }

    pub fn checkpoint_every(&self) -> u64 {
        self.checkpoint_every
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn exists(&self) -> bool {
        self.root.join(commit::COMMITS_DIR).is_dir()
    }

    pub fn log(&self) -> Result<CommitLog, StoreError> {
        let log = read_log(&self.root)?;
        // A store on object storage caches the commits from its oldest checkpoint on; when no
        // checkpoint can be used, the log is read from the first commit: fetch the rest.
        if self.remote.is_some() && log.damaged_before_end() {
            remote::fetch_all_commits(self, false)?;
            return read_log(&self.root);
        }
        Ok(log)
    }

    /// Creates the store directory if needed and takes the writer lock (on object storage,
    /// only the directory where writes are staged).
    pub fn lock(&self) -> Result<WriteLock, StoreError> {
        if let Some(file) = &self.held {
            return Ok(WriteLock {
                _file: Some(Arc::clone(file)),
            });
        }
        crate::fsutil::create_dir_all_durable(&self.root)
            .map_err(|e| StoreError::io(&self.root, e))?;
        if self.remote.is_some() {
            return Ok(WriteLock { _file: None });
        }
        let path = self.root.join(".lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| StoreError::io(&path, e))?;
        match file.try_lock() {
            Ok(()) => Ok(WriteLock {
                _file: Some(Arc::new(file)),
            }),
            Err(fs::TryLockError::WouldBlock) => Err(StoreError::Locked(self.root.clone())),
            Err(fs::TryLockError::Error(e)) => Err(StoreError::io(&path, e)),
        }
    }

    /// Store-relative, `/`-separated path.
    pub fn relative(&self, path: &Path) -> String {
        let rel = path.strip_prefix(&self.root).unwrap_or(path);
        rel.components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/")
    }

    pub fn absolute(&self, relative: &str) -> PathBuf {
        self.root.join(relative)
    }

    /// A store-relative file as messages name it: its path, or its URL on object storage.
    pub fn shown(&self, relative: &str) -> PathBuf {
        match &self.remote {
            Some(r) => PathBuf::from(format!(
                "{}/{relative}",
                r.url.to_string().trim_end_matches('/')
            )),
            None => self.absolute(relative),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cause is in the message, not also returned as the source: printed once.
    #[test]
    fn an_io_error_names_its_path_and_cause_once() {
        let e = StoreError::io(
            Path::new("/s/_commits/1.json"),
            std::io::Error::from_raw_os_error(28),
        );
        let chain: Vec<String> = anyhow::Error::from(e)
            .chain()
            .map(|c| c.to_string())
            .collect();
        assert_eq!(chain.len(), 1, "{chain:?}");
        assert!(
            chain[0].starts_with("/s/_commits/1.json: No space left on device"),
            "{chain:?}"
        );
    }
}
