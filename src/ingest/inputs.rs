//! Finding input files (directories recursively, symlink loops broken), identifying them and
//! opening them (at an offset, with transparent gzip).

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;
use sha2::{Digest, Sha256};

use crate::store::inputs::{content_hash, HEAD_BYTES, TAIL_BYTES};

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const READ_BUFFER: usize = 256 * 1024;

/// An input file to read, as named on the command line or found in a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputFile {
    pub path: PathBuf,
    /// How the file is named in rows, rejects and summaries.
    pub display: String,
    /// A stream spooled to a file (stdin): read whole, never resumed.
    pub stream: bool,
    /// The format this input is read as, whatever its content looks like (`vigil serve`'s
    /// per-input `source`); `None` leaves it to `IngestOptions::source`, then recognition.
    pub source: Option<crate::event::SourceKind>,
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
                stream: false,
                source: None,
            });
        }
    }
    Ok((files, skipped))
}

/// Why a file found beside the logs is not one, by its (lower-cased) name: documentation, or
/// configuration (the vigil.toml that `vigil generate` writes beside its logs).
pub fn not_a_log(name: &str) -> Option<&'static str> {
    if name.ends_with(".md") || name.starts_with("readme") || name.starts_with("license") {
        Some("documentation, not a log (by name)")
    } else if name.ends_with(".toml") {
        Some("configuration, not a log (by name)")
    } else {
        None
    }
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
        // A file named on the command line is read whatever its name.
        if let Some(why) = not_a_log(&name) {
            skipped.push(Skipped {
                path: path.display().to_string(),
                why: why.into(),
            });
            continue;
        }
        match fs::metadata(&path) {
            Ok(m) if m.is_dir() => walk(&path, seen, files, skipped)?,
            Ok(m) if m.is_file() => files.push(InputFile {
                display: path.display().to_string(),
                path,
                stream: false,
                source: None,
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

/// Whole-file fingerprints as versions before checkpoints wrote them: `blake3:<hex>` of the
/// bytes on disk, and `sha256:<hex>` as well when asked for (older still).
pub fn whole_file_fingerprints(path: &Path, sha256: bool) -> io::Result<(String, Option<String>)> {
    let mut hashing = HashingReader {
        inner: BufReader::with_capacity(READ_BUFFER, File::open(path)?),
        hasher: blake3::Hasher::new(),
        legacy: sha256.then(Sha256::new),
    };
    io::copy(&mut hashing, &mut io::sink())?;
    Ok((
        format!("blake3:{}", hashing.hasher.finalize().to_hex()),
        hashing
            .legacy
            .map(|h| format!("sha256:{}", hex::encode(h.finalize()))),
    ))
}

pub(super) fn classify_gzip_error(e: &io::Error) -> (String, String) {
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
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        if let Some(h) = &mut self.legacy {
            h.update(&buf[..n]);
        }
        Ok(n)
    }
}

/// What identifies an input before it is read: its first bytes of content, and what the file
/// system says of it. For gzip, the whole stream is decompressed once to prove it complete (a
/// truncated file stores nothing) and to know its length and last bytes.
#[derive(Debug, Clone)]
pub struct Identity {
    pub gzip: bool,
    /// Why the gzip stream is unusable (`gzip_truncated`, `gzip_corrupt`) and the detail.
    pub gzip_problem: Option<(String, String)>,
    /// The first [`HEAD_BYTES`] bytes of content (fewer in a shorter file).
    pub head: Vec<u8>,
    /// Bytes of content: the size for a plain file, the decompressed length for gzip.
    pub content_len: u64,
    /// For gzip, the hash of the last [`TAIL_BYTES`] of content (a plain file is read again).
    pub end_tail: Option<String>,
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime: i64,
    pub dev: u64,
    pub inode: u64,
}

pub fn identify(path: &Path) -> io::Result<Identity> {
    let mut f = File::open(path)?;
    let meta = f.metadata()?;
    let mut head = vec![0u8; HEAD_BYTES];
    let n = read_up_to(&mut f, &mut head)?;
    head.truncate(n);
    let gzip = n >= 2 && head[..2] == GZIP_MAGIC;
    let mtime = mtime_nanos(&meta);
    #[cfg(unix)]
    let (dev, inode) = {
        use std::os::unix::fs::MetadataExt;
        (meta.dev(), meta.ino())
    };
    #[cfg(not(unix))]
    let (dev, inode) = (0, 0);
    let mut id = Identity {
        gzip,
        gzip_problem: None,
        content_len: meta.len(),
        head,
        end_tail: None,
        size: meta.len(),
        mtime,
        dev,
        inode,
    };
    if gzip {
        let mut dec = MultiGzDecoder::new(BufReader::with_capacity(READ_BUFFER, File::open(path)?));
        let mut head = Vec::with_capacity(HEAD_BYTES);
        let mut tail = Tail::default();
        let mut buf = vec![0u8; READ_BUFFER];
        let mut len = 0u64;
        loop {
            match dec.read(&mut buf) {
                Ok(0) => break,
                Ok(k) => {
                    let take = (HEAD_BYTES - head.len()).min(k);
                    head.extend_from_slice(&buf[..take]);
                    tail.push(&buf[..k]);
                    len += k as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    id.gzip_problem = Some(classify_gzip_error(&e));
                    break;
                }
            }
        }
        id.head = head;
        id.content_len = len;
        id.end_tail = Some(content_hash(tail.bytes()));
    }
    Ok(id)
}

/// Whether a file is still being written: plain (gzip is written whole) and changed within
/// `hold_for` nanoseconds of the wall clock (as the file system stamps it, not the run's "now").
pub fn is_live(gzip: bool, mtime: i64, hold_for: i64) -> bool {
    !gzip && crate::clock::wall_nanos().saturating_sub(mtime) < hold_for
}

/// [`is_live`] for a file by name (one not read in this run); a file gone is not.
pub fn is_live_on_disk(path: &Path, hold_for: i64) -> bool {
    let Ok(mut f) = File::open(path) else {
        return false;
    };
    let mut magic = [0u8; 2];
    let gzip = read_up_to(&mut f, &mut magic).is_ok_and(|n| n == 2) && magic == GZIP_MAGIC;
    let mtime = f.metadata().map_or(0, |m| mtime_nanos(&m));
    is_live(gzip, mtime, hold_for)
}

/// Modification time in nanoseconds since the epoch (0 when the platform has none).
fn mtime_nanos(meta: &fs::Metadata) -> i64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// The last [`TAIL_BYTES`] bytes seen.
#[derive(Default)]
struct Tail {
    buf: Vec<u8>,
}

impl Tail {
    fn push(&mut self, bytes: &[u8]) {
        if bytes.len() >= TAIL_BYTES {
            self.buf.clear();
            self.buf
                .extend_from_slice(&bytes[bytes.len() - TAIL_BYTES..]);
            return;
        }
        self.buf.extend_from_slice(bytes);
        if self.buf.len() > 2 * TAIL_BYTES {
            self.buf.drain(..self.buf.len() - TAIL_BYTES);
        }
    }

    fn bytes(&self) -> &[u8] {
        &self.buf[self.buf.len().saturating_sub(TAIL_BYTES)..]
    }
}

/// Hash of the up to [`TAIL_BYTES`] bytes of content before `offset`.
pub fn tail_hash(path: &Path, gzip: bool, offset: u64) -> io::Result<String> {
    let (_, before) = position(path, gzip, offset)?;
    Ok(content_hash(&before))
}

/// Opens a file at `offset` of its content, if the bytes before it hash to `tail` (the file is
/// the one a checkpoint describes); `None` when they do not.
pub fn open_at(
    path: &Path,
    gzip: bool,
    offset: u64,
    tail: &str,
) -> io::Result<Option<Box<dyn BufRead + Send>>> {
    let (reader, before) = position(path, gzip, offset)?;
    let whole = before.len() as u64 == offset.min(TAIL_BYTES as u64);
    Ok((whole && content_hash(&before) == tail).then_some(reader))
}

/// A reader at `offset` of the content, and the up to [`TAIL_BYTES`] bytes before it (fewer
/// when the content ends first). A plain file seeks; gzip decompresses up to there.
fn position(
    path: &Path,
    gzip: bool,
    offset: u64,
) -> io::Result<(Box<dyn BufRead + Send>, Vec<u8>)> {
    let start = offset.saturating_sub(TAIL_BYTES as u64);
    let mut reader: Box<dyn BufRead + Send> = if gzip {
        let mut r = open(path, true)?;
        io::copy(&mut Read::by_ref(&mut r).take(start), &mut io::sink())?;
        r
    } else {
        let mut f = File::open(path)?;
        f.seek(SeekFrom::Start(start))?;
        Box::new(BufReader::with_capacity(READ_BUFFER, f))
    };
    let mut before = vec![0u8; (offset - start) as usize];
    let n = read_up_to(&mut reader, &mut before)?;
    before.truncate(n);
    Ok((reader, before))
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
