//! The store: Hive-partitioned Parquet files made visible by a hash-chained commit log.
//!
//! ```text
//! <store>/events/source=<s>/date=<YYYY-MM-DD>/<seq>-<n>.parquet
//! <store>/_commits/<seq>.json
//! <store>/rejects/<YYYY-MM-DD>/<seq>.jsonl
//! <store>/state/
//! ```

pub mod commit;
pub mod compact;
pub mod dedupe;
pub mod digest;
pub mod fsutil;
pub mod rollup;
pub mod verify;
pub mod writer;

use std::collections::HashSet;
use std::fs::{self, File};
use std::path::{Path, PathBuf};

use thiserror::Error;

pub use commit::{read_log, CommitLog, Tally};

pub const EVENTS_DIR: &str = "events";
pub const REJECTS_DIR: &str = "rejects";
/// Where files no commit lists are set aside (see [`Store::remove_orphans`]).
pub const QUARANTINE_DIR: &str = "_quarantine";

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("writing parquet file {path}: {message}")]
    Parquet { path: PathBuf, message: String },
    #[error("the store {0} is locked by another vigil process; wait for it to finish")]
    Locked(PathBuf),
    #[error("the store is damaged ({0}); run vigil verify")]
    Damaged(String),
}

impl StoreError {
    pub fn io(path: &Path, source: std::io::Error) -> StoreError {
        StoreError::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// A store directory.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// Exclusive right to write to a store, held until dropped.
#[derive(Debug)]
pub struct WriteLock {
    _file: File,
}

impl Store {
    pub fn new(root: impl Into<PathBuf>) -> Store {
        Store { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn exists(&self) -> bool {
        self.root.join(commit::COMMITS_DIR).is_dir()
    }

    pub fn log(&self) -> Result<CommitLog, StoreError> {
        read_log(&self.root)
    }

    /// Creates the store directory if needed and takes the writer lock.
    pub fn lock(&self) -> Result<WriteLock, StoreError> {
        fsutil::create_dir_all_durable(&self.root).map_err(|e| StoreError::io(&self.root, e))?;
        let path = self.root.join(".lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| StoreError::io(&path, e))?;
        match file.try_lock() {
            Ok(()) => Ok(WriteLock { _file: file }),
            Err(fs::TryLockError::WouldBlock) => Err(StoreError::Locked(self.root.clone())),
            Err(fs::TryLockError::Error(e)) => Err(StoreError::io(&path, e)),
        }
    }

    /// Sets aside the data files no commit references, in `_quarantine/` (same relative
    /// paths), and deletes temp files (never complete). Such files are what an ingest killed
    /// before its commit leaves, but also what a deleted newest commit leaves: the two cannot be
    /// told apart, so nothing complete is deleted. Only called while holding the write lock.
    pub fn remove_orphans(
        &self,
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
                            rollup::Kind::ALL
                                .iter()
                                .filter_map(|k| f.rollup_of(*k).map(|r| r.path.clone())),
                        )
                    })
                    .chain(c.commit.rejects.iter().map(|r| r.path.clone()))
            })
            .collect();
        let mut removed = Vec::new();
        for top in [EVENTS_DIR, REJECTS_DIR, rollup::ROLLUPS_DIR] {
            let dir = self.root.join(top);
            if dir.is_dir() {
                self.collect_orphans(&dir, &referenced, &mut removed)?;
            }
        }
        let mut set_aside = Vec::new();
        for path in removed {
            if path.to_string_lossy().ends_with(fsutil::TEMP_SUFFIX) {
                fs::remove_file(&path).map_err(|e| StoreError::io(&path, e))?;
                continue;
            }
            let mut target = self.root.join(QUARANTINE_DIR).join(self.relative(&path));
            while target.exists() {
                let mut name = target.as_os_str().to_owned();
                name.push(".again");
                target = PathBuf::from(name);
            }
            if let Some(parent) = target.parent() {
                fsutil::create_dir_all_durable(parent).map_err(|e| StoreError::io(parent, e))?;
            }
            fs::rename(&path, &target).map_err(|e| StoreError::io(&path, e))?;
            set_aside.push(path);
        }
        Ok(set_aside)
    }

    fn collect_orphans(
        &self,
        dir: &Path,
        referenced: &HashSet<String>,
        out: &mut Vec<PathBuf>,
    ) -> Result<(), StoreError> {
        for entry in fs::read_dir(dir).map_err(|e| StoreError::io(dir, e))? {
            let entry = entry.map_err(|e| StoreError::io(dir, e))?;
            let path = entry.path();
            let ft = entry.file_type().map_err(|e| StoreError::io(&path, e))?;
            if ft.is_dir() {
                self.collect_orphans(&path, referenced, out)?;
            } else if ft.is_file() && !referenced.contains(&self.relative(&path)) {
                out.push(path);
            }
        }
        Ok(())
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
}
