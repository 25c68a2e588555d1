//! What a commit remembers of each input it read: where reading stopped, and how to know the
//! input again.
//!
//! A file is known by the hash of its first bytes (`head`, up to [`HEAD_BYTES`]; a shorter file
//! by all of its bytes), as log shippers do: unlike a hash of the whole file it survives a rename
//! and stays the same while the file grows. The checkpoint keeps the offset just after the last
//! record consumed, and the hash of the bytes before it (`tail`): a file resumes there only if
//! both hashes match, so a different file that happens to start alike is read from its start
//! (and the dedupe index drops what was stored already). Offsets count the bytes of the content:
//! decompressed bytes for gzip, which is how a log rotated and compressed is recognised.
//!
//! Checkpoints are written in the commit that stores the rows they account for, so a crash
//! never separates the two. Stores written before checkpoints hold whole-file fingerprints
//! ([`InputCheckpoint::Whole`]); those are still honoured.

use serde::{Deserialize, Serialize};

/// Bytes of an input's start that identify it.
pub const HEAD_BYTES: usize = 4096;
/// Bytes before the offset whose hash must match for a file to resume there.
pub const TAIL_BYTES: usize = 4096;

/// One input a commit read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "Repr", into = "Repr")]
pub enum InputCheckpoint {
    File(FileCheckpoint),
    /// An object of an object store (reserved for object-storage inputs: read whole, known by
    /// key and ETag).
    Object(ObjectCheckpoint),
    /// A whole-file fingerprint, as versions before checkpoints wrote them.
    Whole(WholeFile),
}

/// Where reading a file stopped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileCheckpoint {
    /// As named on the command line or found in a directory (informative: files are matched by
    /// `head`, not by name).
    pub path: String,
    /// `blake3:<hex>` of the first `head_len` bytes of content.
    pub head: String,
    pub head_len: u64,
    /// Byte offset in the content just after the last record consumed.
    pub offset: u64,
    /// 1-based line number at `offset`.
    pub line: u64,
    /// Records of the file before `offset`.
    pub index: u64,
    /// `blake3:<hex>` of the up to [`TAIL_BYTES`] bytes of content before `offset`.
    pub tail: String,
    /// Device and inode when read (0 where the platform has none).
    pub dev: u64,
    pub inode: u64,
    /// Size on disk and modification time (RFC 3339) when read.
    pub size: u64,
    pub mtime: String,
    pub gzip: bool,
    /// The source its records were parsed as.
    pub source: String,
    /// Records this commit read from it.
    pub records: u64,
}

/// An object read whole.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectCheckpoint {
    pub key: String,
    pub etag: String,
    pub size: u64,
    pub records: u64,
}

/// A fingerprint of a whole input, as versions before checkpoints wrote them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WholeFile {
    pub path: String,
    /// `blake3:<hex>` of the bytes on disk (compressed bytes for gzip); `sha256:<hex>` in
    /// commits of still older versions.
    pub fingerprint: String,
    pub bytes: u64,
    pub records: u64,
}

/// The shape on disk: checkpoints carry a `kind`, old fingerprints do not.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Repr {
    Tagged(Tagged),
    Whole(WholeFile),
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum Tagged {
    File(FileCheckpoint),
    Object(ObjectCheckpoint),
}

impl From<Repr> for InputCheckpoint {
    fn from(r: Repr) -> Self {
        match r {
            Repr::Tagged(Tagged::File(f)) => InputCheckpoint::File(f),
            Repr::Tagged(Tagged::Object(o)) => InputCheckpoint::Object(o),
            Repr::Whole(w) => InputCheckpoint::Whole(w),
        }
    }
}

impl From<InputCheckpoint> for Repr {
    fn from(c: InputCheckpoint) -> Self {
        match c {
            InputCheckpoint::File(f) => Repr::Tagged(Tagged::File(f)),
            InputCheckpoint::Object(o) => Repr::Tagged(Tagged::Object(o)),
            InputCheckpoint::Whole(w) => Repr::Whole(w),
        }
    }
}

/// `blake3:<hex>` of `bytes`.
pub fn content_hash(bytes: &[u8]) -> String {
    format!("blake3:{}", blake3::hash(bytes).to_hex())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_fingerprints_and_checkpoints_read_back_as_written() {
        let old = r#"{"path":"a.log","fingerprint":"sha256:00","bytes":10,"records":1}"#;
        let c: InputCheckpoint = serde_json::from_str(old).unwrap();
        assert!(matches!(&c, InputCheckpoint::Whole(w) if w.fingerprint == "sha256:00"));
        assert_eq!(serde_json::to_string(&c).unwrap(), old);
        let file = InputCheckpoint::File(FileCheckpoint {
            path: "audit.log".into(),
            head: content_hash(b"{}"),
            head_len: 2,
            offset: 2,
            line: 1,
            index: 1,
            tail: content_hash(b"{}"),
            dev: 1,
            inode: 2,
            size: 2,
            mtime: "2026-12-03T00:00:00Z".into(),
            gzip: false,
            source: "vault".into(),
            records: 1,
        });
        let text = serde_json::to_string(&file).unwrap();
        assert!(
            text.starts_with(r#"{"kind":"file","path":"audit.log""#),
            "{text}"
        );
        assert_eq!(
            serde_json::from_str::<InputCheckpoint>(&text).unwrap(),
            file
        );
        let object =
            r#"{"kind":"object","key":"logs/a.json.gz","etag":"\"e1\"","size":9,"records":3}"#;
        let o: InputCheckpoint = serde_json::from_str(object).unwrap();
        assert!(matches!(o, InputCheckpoint::Object(ref x) if x.etag == "\"e1\""));
    }
}
