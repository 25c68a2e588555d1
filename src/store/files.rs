//! A store's files opened for reading wherever the store is: a local file, or the bytes of an
//! object in the bucket of a store on object storage. What `verify` reads through.

use std::fs::File;
use std::io::{self, Read};

use bytes::Bytes;
use datafusion::parquet::errors::Result as ParquetResult;
use datafusion::parquet::file::reader::{ChunkReader, Length};

use super::Store;
use crate::object_storage::{ObjectError, ObjectInfo};

/// One file of the store, open.
pub enum StoreFile {
    Local(File),
    /// A whole object: the store's files are written whole and read whole here (verify reads
    /// every byte anyway), a data file being up to ~100 MB.
    Remote(Bytes),
}

/// Opens the store-relative file `rel`; a missing one is an `io::ErrorKind::NotFound` error.
pub fn open(store: &Store, rel: &str) -> io::Result<StoreFile> {
    match store.remote() {
        None => File::open(store.absolute(rel)).map(StoreFile::Local),
        Some(remote) => {
            let object = ObjectInfo::key_only(remote.bucket.key(rel));
            match remote.bucket.get(&object) {
                Ok(bytes) => Ok(StoreFile::Remote(bytes)),
                // (Callers name the file: the URL once.)
                Err(ObjectError::NotFound { .. }) => {
                    Err(io::Error::new(io::ErrorKind::NotFound, "no such object"))
                }
                Err(e) => Err(io::Error::other(e.to_string())),
            }
        }
    }
}

/// The store-relative paths of every file of a store on object storage, with their sizes
/// (`None` for a local store, whose folders are walked instead).
pub fn remote_listing(store: &Store) -> Result<Option<Vec<(String, u64)>>, super::StoreError> {
    let Some(remote) = store.remote() else {
        return Ok(None);
    };
    let base = remote.bucket.key("");
    let objects = remote
        .bucket
        .list_folder("")
        .map_err(|e| super::StoreError::Remote(e.to_string()))?;
    Ok(Some(
        objects
            .into_iter()
            .filter_map(|o| {
                o.key
                    .strip_prefix(base.as_str())
                    .map(|rel| (rel.to_owned(), o.size))
            })
            .collect(),
    ))
}

impl StoreFile {
    /// SHA-256 (hex) and length of the whole file.
    pub fn sha256(&mut self) -> io::Result<(String, u64)> {
        match self {
            StoreFile::Local(f) => crate::fsutil::sha256_of(f),
            StoreFile::Remote(b) => {
                use sha2::{Digest, Sha256};
                Ok((hex::encode(Sha256::digest(&b[..])), b.len() as u64))
            }
        }
    }

    /// The whole file.
    pub fn read_all(self) -> io::Result<Vec<u8>> {
        match self {
            StoreFile::Local(mut f) => {
                let mut out = Vec::new();
                f.read_to_end(&mut out)?;
                Ok(out)
            }
            StoreFile::Remote(b) => Ok(b.to_vec()),
        }
    }
}

impl Length for StoreFile {
    fn len(&self) -> u64 {
        match self {
            StoreFile::Local(f) => Length::len(f),
            StoreFile::Remote(b) => b.len() as u64,
        }
    }
}

impl ChunkReader for StoreFile {
    type T = Box<dyn Read + Send>;

    fn get_read(&self, start: u64) -> ParquetResult<Self::T> {
        Ok(match self {
            StoreFile::Local(f) => Box::new(f.get_read(start)?),
            StoreFile::Remote(b) => Box::new(b.get_read(start)?),
        })
    }

    fn get_bytes(&self, start: u64, length: usize) -> ParquetResult<Bytes> {
        match self {
            StoreFile::Local(f) => f.get_bytes(start, length),
            StoreFile::Remote(b) => b.get_bytes(start, length),
        }
    }
}
