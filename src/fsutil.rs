//! Durable file writes: temp name, fsync, rename, fsync of the directory.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

/// Suffix of files being written; never `.parquet` or `.json`, so nothing mistakes them for data.
pub const TEMP_SUFFIX: &str = ".tmp";

/// Writes `bytes` to `path` atomically and durably.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = temp_path(path);
    let mut f = File::create(&tmp)?;
    crate::fault::write_result()?;
    f.write_all(bytes)?;
    sync_file(&f)?;
    drop(f);
    publish(&tmp, path)
}

/// The temp name used while `path` is being written.
pub fn temp_path(path: &Path) -> std::path::PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(TEMP_SUFFIX);
    path.with_file_name(name)
}

/// Renames a fully written and fsynced temp file into place and makes the rename durable.
pub fn publish(tmp: &Path, path: &Path) -> io::Result<()> {
    fs::rename(tmp, path)?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// fsync of a file's data and metadata. A failure is never retried: after a failed fsync the
/// kernel may have dropped the dirty pages, so the write is treated as lost (PostgreSQL's lesson).
pub fn sync_file(f: &File) -> io::Result<()> {
    crate::fault::fsync_result()?;
    f.sync_all()
}

pub fn sync_dir(dir: &Path) -> io::Result<()> {
    // `Path::parent` of a bare relative name is the empty path: the current directory.
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    File::open(dir)?.sync_all()
}

/// Creates a directory and its parents, syncing each new level's parent.
pub fn create_dir_all_durable(dir: &Path) -> io::Result<()> {
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_dir_all_durable(parent)?;
    }
    match fs::create_dir(dir) {
        Ok(()) => sync_dir(dir.parent().unwrap_or(Path::new("."))),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// A file being written that hashes (SHA-256) and counts what goes through it, so the commit can
/// record a file's hash without reading it back.
pub struct HashingFile {
    file: File,
    hasher: sha2::Sha256,
    bytes: u64,
}

impl HashingFile {
    pub fn new(file: File) -> HashingFile {
        use sha2::Digest;
        HashingFile {
            file,
            hasher: sha2::Sha256::new(),
            bytes: 0,
        }
    }

    /// fsyncs the file and returns its SHA-256 (hex) and length.
    pub fn finish(self) -> io::Result<(String, u64)> {
        use sha2::Digest;
        sync_file(&self.file)?;
        Ok((hex::encode(self.hasher.finalize()), self.bytes))
    }
}

impl Write for HashingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        use sha2::Digest;
        crate::fault::write_result()?;
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// SHA-256 (hex) and size of everything `f` yields.
pub(crate) fn sha256_of(f: &mut impl std::io::Read) -> std::io::Result<(String, u64)> {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf)?;
        if k == 0 {
            break;
        }
        hasher.update(&buf[..k]);
        n += k as u64;
    }
    Ok((hex::encode(hasher.finalize()), n))
}
