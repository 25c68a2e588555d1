//! Inputs in object storage: the objects under `s3://bucket/prefix`, each read whole and known
//! again by URL, ETag and size (an object does not grow; a new version has a new ETag).

use std::collections::{HashMap, VecDeque};
use std::io::{self, BufRead, BufReader, Cursor, Read};
use std::sync::Arc;

use flate2::read::MultiGzDecoder;

use super::inputs::{classify_gzip_error, not_a_log, Skipped};
use crate::event::SourceKind;
use crate::object_storage::{
    Bucket, ObjectError, ObjectInfo, ObjectReader, ObjectStoreSettings, ObjectUrl,
};
use crate::store::inputs::{InputCheckpoint, ObjectCheckpoint};
use crate::store::CommitLog;

/// A gzip object up to this size is held in memory to prove it whole before its records are
/// read (CloudTrail writes objects of kilobytes); a larger one is fetched twice instead.
const PROVE_IN_MEMORY: u64 = 64 << 20;
const READ_BUFFER: usize = 256 * 1024;
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// One object to read.
pub struct ObjectInput {
    /// `s3://bucket/key`: how it is named in rows, rejects and checkpoints.
    pub url: String,
    pub info: ObjectInfo,
    pub bucket: Arc<Bucket>,
    /// The format it is read as, whatever its content looks like; `None` leaves it to
    /// `--source`, then recognition.
    pub source: Option<SourceKind>,
}

/// The objects under each URL, in key order. Folder markers, hidden names and documentation
/// are passed over as in directories.
pub fn expand(
    urls: &[ObjectUrl],
    settings: &ObjectStoreSettings,
) -> Result<(Vec<ObjectInput>, Vec<Skipped>), ObjectError> {
    let mut found = Vec::new();
    let mut skipped = Vec::new();
    for url in urls {
        let bucket = Arc::new(Bucket::connect(url, settings)?);
        for info in bucket.list()? {
            let object_url = url.object(&info.key);
            let name = info.key.rsplit('/').next().unwrap_or("").to_lowercase();
            if info.key.ends_with('/') || name.is_empty() {
                continue;
            }
            if name.starts_with('.') {
                continue;
            }
            if let Some(why) = not_a_log(&name) {
                skipped.push(Skipped {
                    path: object_url,
                    why: why.into(),
                });
                continue;
            }
            found.push(ObjectInput {
                url: object_url,
                info,
                bucket: Arc::clone(&bucket),
                source: None,
            });
        }
    }
    Ok((found, skipped))
}

/// The objects earlier commits read, by URL.
#[derive(Default)]
pub struct ConsumedObjects {
    by_url: HashMap<String, (String, u64, u64)>,
}

impl ConsumedObjects {
    pub fn from_log(log: &CommitLog) -> ConsumedObjects {
        let mut c = ConsumedObjects::default();
        for logged in &log.state.inputs {
            if let InputCheckpoint::Object(o) = &logged.input {
                c.record(o, logged.seq);
            }
        }
        c
    }

    pub fn record(&mut self, o: &ObjectCheckpoint, seq: u64) {
        self.by_url
            .insert(o.key.clone(), (o.etag.clone(), o.size, seq));
    }

    /// The commit that read this very version of the object, if one did.
    pub fn read_by(&self, input: &ObjectInput) -> Option<u64> {
        let (etag, size, seq) = self.by_url.get(&input.url)?;
        (*etag == input.info.etag && *size == input.info.size && !etag.is_empty()).then_some(*seq)
    }
}

/// The requests for the objects to read, kept up to `max_in_flight` ahead of the one being
/// read (each holds a few chunks at most until it is read): S3 answers a GET after tens of
/// milliseconds, and CloudTrail objects are kilobytes.
pub struct Prefetch<'a> {
    objects: &'a [ObjectInput],
    /// Indexes of the objects to fetch (not read before), in order.
    wanted: Vec<usize>,
    next: usize,
    ahead: VecDeque<(usize, ObjectReader)>,
    max_in_flight: usize,
}

impl<'a> Prefetch<'a> {
    pub fn new(
        objects: &'a [ObjectInput],
        wanted: impl Fn(&ObjectInput) -> bool,
        max_in_flight: usize,
    ) -> Prefetch<'a> {
        Prefetch {
            wanted: (0..objects.len())
                .filter(|&i| wanted(&objects[i]))
                .collect(),
            objects,
            next: 0,
            ahead: VecDeque::new(),
            max_in_flight,
        }
    }

    /// The request for object `i`, if it is wanted, after topping the queue up.
    pub fn take(&mut self, i: usize) -> Option<ObjectReader> {
        while self.ahead.len() < self.max_in_flight && self.next < self.wanted.len() {
            let j = self.wanted[self.next];
            let o = &self.objects[j];
            self.ahead.push_back((j, o.bucket.reader(&o.info)));
            self.next += 1;
        }
        match self.ahead.front() {
            Some((j, _)) if *j == i => self.ahead.pop_front().map(|(_, r)| r),
            _ => None,
        }
    }
}

/// An object opened for its records.
pub struct Opened {
    pub reader: Box<dyn BufRead + Send>,
    pub gzip: bool,
    /// Why a gzip object is unusable (`gzip_truncated`, `gzip_corrupt`) and the detail.
    pub gzip_problem: Option<(String, String)>,
}

/// Opens an object from `first` (its request, perhaps started ahead), decompressing gzip. A
/// gzip object is proved whole before any record is read, as a file is: a damaged one stores
/// nothing.
pub fn open(input: &ObjectInput, first: ObjectReader) -> Result<Opened, OpenError> {
    let mut first = BufReader::with_capacity(READ_BUFFER, first);
    let gzip = first.fill_buf()?.starts_with(&GZIP_MAGIC);
    if !gzip {
        return Ok(Opened {
            reader: Box::new(first),
            gzip,
            gzip_problem: None,
        });
    }
    if input.info.size <= PROVE_IN_MEMORY {
        let mut bytes = Vec::with_capacity(input.info.size as usize);
        first.read_to_end(&mut bytes)?;
        let problem = prove(Cursor::new(&bytes[..]));
        return Ok(Opened {
            reader: Box::new(BufReader::with_capacity(
                READ_BUFFER,
                MultiGzDecoder::new(Cursor::new(bytes)),
            )),
            gzip,
            gzip_problem: problem,
        });
    }
    let problem = prove(first);
    let again = input.bucket.reader(&input.info);
    Ok(Opened {
        reader: Box::new(BufReader::with_capacity(
            READ_BUFFER,
            MultiGzDecoder::new(BufReader::with_capacity(READ_BUFFER, again)),
        )),
        gzip,
        gzip_problem: problem,
    })
}

/// Decompresses a gzip stream to its end; what is wrong with it, if anything.
fn prove(compressed: impl Read) -> Option<(String, String)> {
    let mut dec = MultiGzDecoder::new(compressed);
    match io::copy(&mut dec, &mut io::sink()) {
        Ok(_) => None,
        Err(e) => Some(classify_gzip_error(&e)),
    }
}

/// Why an object could not be opened: the store refused, or its bytes stopped coming.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Store(ObjectError),
    #[error(transparent)]
    Read(io::Error),
}

impl From<io::Error> for OpenError {
    fn from(e: io::Error) -> Self {
        match ObjectError::from_io(&e) {
            Some(o) => OpenError::Store(o.clone()),
            None => OpenError::Read(e),
        }
    }
}
