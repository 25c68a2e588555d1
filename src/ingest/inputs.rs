//! Finding input files (directories recursively, symlink loops broken), fingerprinting them and
//! opening them with transparent gzip.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;
use sha2::{Digest, Sha256};

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const READ_BUFFER: usize = 256 * 1024;

/// An input file to read, as named on the command line or found in a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputFile {
    pub path: PathBuf,
    /// How the file is named in rows, rejects and summaries.
    pub display: String,
}

/// Something the walk could not use, with why (not fatal: reported in the summary).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub path: String,
    pub why: String,
}

/// Expands paths into files: directories recursively in name order, hidden entries inside
/// directories skipped, symlinks followed once (a loop is reported, not followed).
pub fn expand(paths: &[PathBuf]) -> io::Result<(Vec<InputFile>, Vec<Skipped>)> {
    let mut files = Vec::new();
    let mut skipped = Vec::new();
    let mut seen_dirs = HashSet::new();
    for p in paths {
        let meta = fs::metadata(p)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", p.display())))?;
        if meta.is_dir() {
            walk(p, &mut seen_dirs, &mut files, &mut skipped)?;
        } else {
            files.push(InputFile {
                path: p.clone(),
                display: p.display().to_string(),
            });
        }
    }
    Ok((files, skipped))
}

fn walk(
    dir: &Path,
    seen: &mut HashSet<PathBuf>,
    files: &mut Vec<InputFile>,
    skipped: &mut Vec<Skipped>,
) -> io::Result<()> {
    let canonical = fs::canonicalize(dir)?;
    if !seen.insert(canonical) {
        skipped.push(Skipped {
            path: dir.display().to_string(),
            why: "directory already visited (symlink loop)".into(),
        });
        return Ok(());
    }
    let mut entries: Vec<_> = fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().to_lowercase();
        if name.starts_with('.') {
            continue;
        }
        // Documentation beside the logs is not a log; a file named on the command line still is read.
        if name.ends_with(".md") || name.starts_with("readme") || name.starts_with("license") {
            skipped.push(Skipped {
                path: path.display().to_string(),
                why: "documentation, not a log (by name)".into(),
            });
            continue;
        }
        // So is configuration (the vigil.toml that vigil generate writes beside its logs).
        if name.ends_with(".toml") {
            skipped.push(Skipped {
                path: path.display().to_string(),
                why: "configuration, not a log (by name)".into(),
            });
            continue;
        }
        match fs::metadata(&path) {
            Ok(m) if m.is_dir() => walk(&path, seen, files, skipped)?,
            Ok(m) if m.is_file() => files.push(InputFile {
                display: path.display().to_string(),
                path,
            }),
            Ok(_) => skipped.push(Skipped {
                path: path.display().to_string(),
                why: "not a regular file".into(),
            }),
            Err(e) => skipped.push(Skipped {
                path: path.display().to_string(),
                why: format!("cannot read: {e}"),
            }),
        }
    }
    Ok(())
}

/// What a first pass over a file found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    /// `blake3:<hex>` of the bytes on disk. (BLAKE3, not SHA-256: it runs on every byte of
    /// every input, and at ~4× SHA-256's speed it took ingest's hashing from ~10 % of its CPU
    /// to ~3 %. The data files' own hashes stay SHA-256, as the commit format and outside tools expect.)
    pub digest: String,
    /// `sha256:<hex>` as well, when asked for: stores written before BLAKE3 fingerprints hold
    /// those, and a file ingested then must still be recognized.
    pub legacy: Option<String>,
    pub bytes: u64,
    pub gzip: bool,
    /// Why the gzip stream is unusable (`gzip_truncated`, `gzip_corrupt`) and the detail.
    pub gzip_problem: Option<(String, String)>,
}

/// Whether a file starts with the gzip magic bytes (the name does not matter).
pub fn is_gzip(path: &Path) -> io::Result<bool> {
    let mut magic = [0u8; 2];
    let n = read_up_to(&mut File::open(path)?, &mut magic)?;
    Ok(n == 2 && magic == GZIP_MAGIC)
}

/// Hashes a file and, when it is gzip, decompresses it once to prove the stream complete, so a
/// truncated file is rejected before any of its records is stored.
pub fn fingerprint(path: &Path, legacy: bool) -> io::Result<Fingerprint> {
    let mut f = File::open(path)?;
    let mut magic = [0u8; 2];
    let n = read_up_to(&mut f, &mut magic)?;
    let gzip = n == 2 && magic == GZIP_MAGIC;
    let f = File::open(path)?;
    let mut hashing = HashingReader {
        inner: BufReader::with_capacity(READ_BUFFER, f),
        hasher: blake3::Hasher::new(),
        legacy: legacy.then(Sha256::new),
        bytes: 0,
    };
    let mut gzip_problem = None;
    if gzip {
        let mut dec = MultiGzDecoder::new(&mut hashing);
        if let Err(e) = io::copy(&mut dec, &mut io::sink()) {
            gzip_problem = Some(classify_gzip_error(&e));
        }
        // Hash whatever the decoder left unread.
        io::copy(&mut hashing, &mut io::sink())?;
    } else {
        io::copy(&mut hashing, &mut io::sink())?;
    }
    Ok(Fingerprint {
        digest: format!("blake3:{}", hashing.hasher.finalize().to_hex()),
        legacy: hashing
            .legacy
            .map(|h| format!("sha256:{}", hex::encode(h.finalize()))),
        bytes: hashing.bytes,
        gzip,
        gzip_problem,
    })
}

fn classify_gzip_error(e: &io::Error) -> (String, String) {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        (
            "gzip_truncated".into(),
            "the gzip stream ends before its end marker (file cut short)".into(),
        )
    } else {
        (
            "gzip_corrupt".into(),
            format!("the gzip stream is corrupt: {e}"),
        )
    }
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

struct HashingReader<R> {
    inner: R,
    hasher: blake3::Hasher,
    legacy: Option<Sha256>,
    bytes: u64,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        if let Some(h) = &mut self.legacy {
            h.update(&buf[..n]);
        }
        self.bytes += n as u64;
        Ok(n)
    }
}

/// Opens a file for reading records, decompressing gzip.
pub fn open(path: &Path, gzip: bool) -> io::Result<Box<dyn BufRead + Send>> {
    let f = File::open(path)?;
    Ok(if gzip {
        Box::new(BufReader::with_capacity(
            READ_BUFFER,
            MultiGzDecoder::new(BufReader::with_capacity(READ_BUFFER, f)),
        ))
    } else {
        Box::new(BufReader::with_capacity(READ_BUFFER, f))
    })
}
