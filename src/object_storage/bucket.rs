//! One bucket of an S3-compatible object store, used from synchronous code.
//!
//! The HTTP client needs a tokio runtime, and ingest runs on plain threads (sometimes inside a
//! caller's runtime, where blocking on another one would panic). So the bucket owns a small
//! runtime: a listing blocks on it from a fresh thread, and an object's bytes are streamed by a
//! task on it into a bounded channel that the reading thread drains; the connection pool lives
//! on that one runtime for the bucket's whole life.

use std::io::{self, Read};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path as ObjectPath;
use object_store::{
    BackoffConfig, ClientConfigKey, GetOptions, ObjectStore, ObjectStoreExt, PutMode, PutOptions,
    RetryConfig,
};

use super::error::{Context, ObjectError};
use super::settings::{endpoint_host, http_allowed, ObjectStoreSettings};
use super::url::ObjectUrl;

/// Chunks of an object in flight between the runtime and the reader (each up to a few hundred
/// KiB as the server sends them): the read side never holds more than this many.
const CHUNKS_IN_FLIGHT: usize = 8;

/// An object as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
    /// Empty when the server gives none.
    pub etag: String,
    /// When the object was last written (nanoseconds since the epoch; 0 when unknown).
    pub modified: i64,
}

impl ObjectInfo {
    /// An object known by its key only (read whatever its version).
    pub fn key_only(key: String) -> ObjectInfo {
        ObjectInfo {
            key,
            size: 0,
            etag: String::new(),
            modified: 0,
        }
    }

    fn from_meta(m: object_store::ObjectMeta) -> ObjectInfo {
        ObjectInfo {
            key: m.location.to_string(),
            size: m.size,
            etag: m.e_tag.unwrap_or_default(),
            modified: m.last_modified.timestamp_nanos_opt().unwrap_or(0),
        }
    }
}

/// Uploads in flight at once when a commit publishes its files: enough to hide S3's
/// per-request latency, few enough that a 2-core host keeps up.
const UPLOADS_IN_FLIGHT: usize = 8;

/// Files larger than this go up in parts (S3 multipart upload) rather than in one request.
const UPLOAD_PART_BYTES: usize = 16 << 20;

pub struct Bucket {
    url: ObjectUrl,
    store: Arc<AmazonS3>,
    endpoint: String,
    secrets: Arc<[String]>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Bucket {
    /// Credentials and region from the environment (as the AWS tools read them) under
    /// `settings`. Nothing is requested yet.
    pub fn connect(url: &ObjectUrl, settings: &ObjectStoreSettings) -> Result<Bucket, ObjectError> {
        let (store, endpoint, secrets) = client(url, settings)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("vigil-objects")
            .enable_all()
            .build()
            .map_err(|e| ObjectError::Config(format!("starting the object store client: {e}")))?;
        Ok(Bucket {
            url: url.clone(),
            store: Arc::new(store),
            endpoint,
            secrets,
            runtime: Some(runtime),
        })
    }

    /// A client of the same bucket for DataFusion's scans of a store kept there: they run on
    /// the caller's runtime, so they get a client (and connection pool) of their own.
    pub fn scan_client(
        url: &ObjectUrl,
        settings: &ObjectStoreSettings,
    ) -> Result<Arc<dyn ObjectStore>, ObjectError> {
        Ok(Arc::new(client(url, settings)?.0))
    }

    pub fn url(&self) -> &ObjectUrl {
        &self.url
    }

    /// The server as messages name it (`AWS S3 (<region>)` or the endpoint URL).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn context<'a>(&'a self, url: &'a str) -> Context<'a> {
        Context {
            url,
            bucket: &self.url.bucket,
            endpoint: &self.endpoint,
            secrets: &self.secrets,
        }
    }

    /// Runs `f` on the bucket's runtime from a thread of its own (see the module doc).
    fn block_on<T: Send>(&self, f: impl std::future::Future<Output = T> + Send) -> T {
        let rt = self
            .runtime
            .as_ref()
            .expect("runtime lives as long as the bucket");
        std::thread::scope(|s| {
            s.spawn(|| rt.block_on(f))
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    }

    /// The objects under the URL's prefix, in key order; the object itself when the URL names
    /// one.
    pub fn list(&self) -> Result<Vec<ObjectInfo>, ObjectError> {
        let url = self.url.to_string();
        let mut objects = self.list_prefix(&self.url.prefix, None, &url)?;
        if objects.is_empty() && !self.url.prefix.is_empty() {
            // Not a folder: perhaps one object.
            let path = key_path(&self.url.prefix);
            let store = Arc::clone(&self.store);
            match self.block_on(async move {
                store
                    .get_opts(
                        &path,
                        GetOptions {
                            head: true,
                            ..Default::default()
                        },
                    )
                    .await
            }) {
                Ok(r) => objects.push(ObjectInfo::from_meta(r.meta)),
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(ObjectError::from_store(&e, &self.context(&url))),
            }
        }
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(objects)
    }

    /// The objects in the folder `sub` below the URL's prefix (none when it does not exist),
    /// in key order.
    pub fn list_folder(&self, sub: &str) -> Result<Vec<ObjectInfo>, ObjectError> {
        self.list_folder_after(sub, None)
    }

    /// As [`Bucket::list_folder`], only the objects whose name sorts after `after` (S3 lists
    /// from there: a folder of a million keys costs one request for the last few).
    pub fn list_folder_after(
        &self,
        sub: &str,
        after: Option<&str>,
    ) -> Result<Vec<ObjectInfo>, ObjectError> {
        let key = self.key(sub);
        let url = self.url.object(&key);
        let offset = after.map(|name| format!("{key}/{name}"));
        let mut objects = self.list_prefix(&key, offset.as_deref(), &url)?;
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(objects)
    }

    /// The key of `relative` (a `/`-separated path below the URL's prefix).
    pub fn key(&self, relative: &str) -> String {
        if self.url.prefix.is_empty() {
            relative.to_owned()
        } else {
            format!("{}/{relative}", self.url.prefix)
        }
    }

    fn list_prefix(
        &self,
        prefix: &str,
        offset: Option<&str>,
        url: &str,
    ) -> Result<Vec<ObjectInfo>, ObjectError> {
        let prefix = (!prefix.is_empty()).then(|| key_path(prefix));
        let offset = offset.map(key_path);
        let store = Arc::clone(&self.store);
        let listed = self.block_on(async move {
            let mut found = Vec::new();
            let mut stream = match &offset {
                Some(o) => store.list_with_offset(prefix.as_ref(), o),
                None => store.list(prefix.as_ref()),
            };
            while let Some(meta) = stream.next().await {
                found.push(meta?);
            }
            Ok::<_, object_store::Error>(found)
        });
        Ok(listed
            .map_err(|e| ObjectError::from_store(&e, &self.context(url)))?
            .into_iter()
            .map(ObjectInfo::from_meta)
            .collect())
    }

    /// The URL, path and options of a GET of `object` as listed (its ETag, when the listing
    /// gave one, must still match).
    fn request(&self, object: &ObjectInfo) -> (String, ObjectPath, GetOptions) {
        let options = GetOptions {
            if_match: (!object.etag.is_empty()).then(|| object.etag.clone()),
            ..Default::default()
        };
        (self.url.object(&object.key), key_path(&object.key), options)
    }

    /// The whole of a small object (a commit, a checkpoint), as listed: a later version is an
    /// error, not a silent mix.
    pub fn get(&self, object: &ObjectInfo) -> Result<Bytes, ObjectError> {
        let (url, path, options) = self.request(object);
        let store = Arc::clone(&self.store);
        self.block_on(async move { store.get_opts(&path, options).await?.bytes().await })
            .map_err(|e| ObjectError::from_store(&e, &self.context(&url)))
    }

    /// Creates the object `relative` with `bytes` only if no object has that key (S3's
    /// `If-None-Match: *`): of two writers racing for one key, exactly one succeeds. `Ok(None)`
    /// when the key was taken; else the new object's ETag.
    pub fn create(&self, relative: &str, bytes: Bytes) -> Result<Option<String>, ObjectError> {
        let key = self.key(relative);
        let (url, path) = (self.url.object(&key), key_path(&key));
        let store = Arc::clone(&self.store);
        let options = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self.block_on(async move { store.put_opts(&path, bytes.into(), options).await }) {
            Ok(put) => Ok(Some(put.e_tag.unwrap_or_default())),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(None),
            Err(e) => Err(ObjectError::from_store(&e, &self.context(&url))),
        }
    }

    /// Writes the object `relative` with `bytes`, over any object of that key.
    pub fn put(&self, relative: &str, bytes: Bytes) -> Result<(), ObjectError> {
        let key = self.key(relative);
        let (url, path) = (self.url.object(&key), key_path(&key));
        let store = Arc::clone(&self.store);
        self.block_on(async move { store.put(&path, bytes.into()).await })
            .map(|_| ())
            .map_err(|e| ObjectError::from_store(&e, &self.context(&url)))
    }

    /// Uploads local files to the objects `relative` names, several at a time, each streamed
    /// (in parts when large, so memory stays a few parts whatever the file's size). The first
    /// failure is returned once the uploads in flight have ended; files already up stay.
    pub fn upload(&self, files: &[(String, std::path::PathBuf)]) -> Result<(), ObjectError> {
        let jobs: Vec<(String, ObjectPath, std::path::PathBuf)> = files
            .iter()
            .map(|(rel, local)| {
                let key = self.key(rel);
                (self.url.object(&key), key_path(&key), local.clone())
            })
            .collect();
        let store: Arc<dyn ObjectStore> = Arc::clone(&self.store) as Arc<dyn ObjectStore>;
        let failed = self.block_on(async move {
            let results = futures::stream::iter(jobs)
                .map(|(url, path, local)| {
                    let store = Arc::clone(&store);
                    async move {
                        upload_file(store, path, &local)
                            .await
                            .map_err(|e| (url, local, e))
                    }
                })
                .buffer_unordered(UPLOADS_IN_FLIGHT)
                .collect::<Vec<_>>()
                .await;
            results.into_iter().find_map(Result::err)
        });
        match failed {
            None => Ok(()),
            Some((url, _, UploadError::Store(e))) => {
                Err(ObjectError::from_store(&e, &self.context(&url)))
            }
            Some((url, local, UploadError::Local(e))) => Err(ObjectError::Other {
                url,
                detail: format!("reading {}: {e}", local.display()),
            }),
        }
    }

    /// Whether the object `relative` exists (a HEAD request).
    pub fn exists(&self, relative: &str) -> Result<bool, ObjectError> {
        let key = self.key(relative);
        let (url, path) = (self.url.object(&key), key_path(&key));
        let store = Arc::clone(&self.store);
        match self.block_on(async move { store.head(&path).await }) {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(ObjectError::from_store(&e, &self.context(&url))),
        }
    }

    /// Deletes the objects `relative` names (one that is already gone is no error).
    pub fn delete(&self, relatives: &[String]) -> Result<(), ObjectError> {
        for rel in relatives {
            let key = self.key(rel);
            let (url, path) = (self.url.object(&key), key_path(&key));
            let store = Arc::clone(&self.store);
            match self.block_on(async move { store.delete(&path).await }) {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(ObjectError::from_store(&e, &self.context(&url))),
            }
        }
        Ok(())
    }

    /// Copies the object `from` to `to` (both relative), over any object there.
    pub fn copy(&self, from: &str, to: &str) -> Result<(), ObjectError> {
        let (from_key, to_key) = (self.key(from), self.key(to));
        let url = self.url.object(&from_key);
        let (from, to) = (key_path(&from_key), key_path(&to_key));
        let store = Arc::clone(&self.store);
        self.block_on(async move { store.copy(&from, &to).await })
            .map_err(|e| ObjectError::from_store(&e, &self.context(&url)))
    }

    /// Starts streaming the object as listed, and returns at once: the request runs on the
    /// bucket's runtime, so several objects can be in flight while an earlier one is read
    /// (what hides S3's first-byte latency). A later version (another ETag) is an error, not
    /// a silent mix of two versions; errors, typed, come out of the reader.
    pub fn reader(&self, object: &ObjectInfo) -> ObjectReader {
        let (url, path, options) = self.request(object);
        let store = Arc::clone(&self.store);
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, ObjectError>>(CHUNKS_IN_FLIGHT);
        let (secrets, endpoint, bucket) = (
            Arc::clone(&self.secrets),
            self.endpoint.clone(),
            self.url.bucket.clone(),
        );
        let rt = self
            .runtime
            .as_ref()
            .expect("runtime lives as long as the bucket");
        // A reader dropped early closes the channel, and the task ends at its next send.
        rt.spawn(async move {
            let cx = Context {
                url: &url,
                bucket: &bucket,
                endpoint: &endpoint,
                secrets: &secrets,
            };
            let mut stream = match store.get_opts(&path, options).await {
                Ok(r) => r.into_stream(),
                Err(e) => {
                    let _ = tx.send(Err(ObjectError::from_store(&e, &cx))).await;
                    return;
                }
            };
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| ObjectError::from_store(&e, &cx));
                let failed = chunk.is_err();
                if tx.send(chunk).await.is_err() || failed {
                    break;
                }
            }
        });
        ObjectReader {
            rx,
            chunk: Bytes::new(),
            read: 0,
            size: object.size,
        }
    }
}

/// The object path of an S3 key as it is: `ObjectPath::from` would percent-encode non-ASCII
/// and `%#?*[]{}~` characters, so `s3://b/équipe/` would name keys that do not exist. A key
/// that cannot be taken as it is (a `.` or `..` segment, a control character) is encoded,
/// which keeps it from climbing out of its prefix.
pub fn key_path(key: &str) -> ObjectPath {
    ObjectPath::parse(key).unwrap_or_else(|_| ObjectPath::from(key))
}

/// The S3 client for `url` under `settings`, the endpoint messages name, and the credential
/// values every message is scrubbed of.
fn client(
    url: &ObjectUrl,
    settings: &ObjectStoreSettings,
) -> Result<(AmazonS3, String, Arc<[String]>), ObjectError> {
    // As `AmazonS3Builder::from_env`, but an empty variable counts as unset (an empty
    // endpoint makes the client panic).
    let mut builder = AmazonS3Builder::new();
    for (key, value) in std::env::vars_os() {
        let (Some(key), Some(value)) = (key.to_str(), value.to_str()) else {
            continue;
        };
        if key.starts_with("AWS_") && !value.trim().is_empty() {
            if let Ok(k) = key.to_ascii_lowercase().parse::<AmazonS3ConfigKey>() {
                builder = builder.with_config(k, value);
            }
        }
    }
    builder = builder.with_bucket_name(&url.bucket);
    if let Some(e) = &settings.endpoint {
        builder = builder.with_endpoint(e);
    }
    if let Some(r) = &settings.region {
        builder = builder.with_region(r);
    }
    let endpoint = builder
        .get_config_value(&AmazonS3ConfigKey::S3Endpoint)
        .or_else(|| builder.get_config_value(&AmazonS3ConfigKey::Endpoint));
    if let Some(e) = endpoint.as_deref().filter(|e| endpoint_host(e).is_none()) {
        return Err(ObjectError::Config(format!(
            "the object store endpoint '{e}' (AWS_ENDPOINT_URL or [object_store] endpoint) is not an http:// or https:// URL"
        )));
    }
    let allow_http = match &endpoint {
        Some(e) => http_allowed(e, settings.allow_http).map_err(ObjectError::Config)?,
        None => false,
    };
    let builder_region = builder.get_config_value(&AmazonS3ConfigKey::Region);
    let secrets: Arc<[String]> = [
        AmazonS3ConfigKey::AccessKeyId,
        AmazonS3ConfigKey::SecretAccessKey,
        AmazonS3ConfigKey::Token,
    ]
    .iter()
    .filter_map(|k| builder.get_config_value(k))
    .collect();
    let store = builder
        // A wrong endpoint fails in seconds, not after S3's default of minutes of retries.
        // (Set key by key: the client options the environment gave, a proxy say, stay.)
        .with_config(
            AmazonS3ConfigKey::Client(ClientConfigKey::ConnectTimeout),
            "5s",
        )
        .with_config(AmazonS3ConfigKey::Client(ClientConfigKey::Timeout), "60s")
        .with_allow_http(allow_http)
        .with_retry(RetryConfig {
            backoff: BackoffConfig::default(),
            max_retries: 3,
            retry_timeout: Duration::from_secs(20),
        })
        .build()
        .map_err(|e| {
            ObjectError::Config(format!(
                "{url}: {}",
                super::error::scrub(&e.to_string(), &secrets)
            ))
        })?;
    let endpoint = endpoint.unwrap_or_else(|| {
        let region = builder_region.unwrap_or_else(|| "us-east-1".to_owned());
        format!("AWS S3 ({region})")
    });
    Ok((store, endpoint, secrets))
}

impl Drop for Bucket {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which panics inside a caller's runtime; this does not.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// An object's bytes as they arrive; an object that ends short of its listed size is an error
/// (a connection cut mid-object must not read as a complete object). Errors are
/// [`ObjectError`]s inside the `io::Error` ([`ObjectError::from_io`] gets them back). Read from
/// plain threads only (it blocks).
pub struct ObjectReader {
    rx: tokio::sync::mpsc::Receiver<Result<Bytes, ObjectError>>,
    chunk: Bytes,
    read: u64,
    size: u64,
}

impl Read for ObjectReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.chunk.is_empty() {
            match self.rx.blocking_recv() {
                Some(chunk) => self.chunk = chunk.map_err(io::Error::other)?,
                // The sender is gone: the stream ended.
                None if self.read == self.size => return Ok(0),
                None => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "the object ended after {} of its {} bytes",
                            self.read, self.size
                        ),
                    ))
                }
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk[..n]);
        let _ = self.chunk.split_to(n);
        self.read += n as u64;
        Ok(n)
    }
}

enum UploadError {
    Local(io::Error),
    Store(object_store::Error),
}

/// Streams the local file `local` to `path`: one PUT when it fits in a part, else a multipart
/// upload (which S3 makes visible only whole, at its completion).
async fn upload_file(
    store: Arc<dyn ObjectStore>,
    path: ObjectPath,
    local: &std::path::Path,
) -> Result<(), UploadError> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut file = tokio::fs::File::open(local)
        .await
        .map_err(UploadError::Local)?;
    // Two parts in flight per file: with UPLOADS_IN_FLIGHT files, at most 16 parts (256 MiB)
    // of the largest files are held at once.
    let mut out = object_store::buffered::BufWriter::with_capacity(store, path, UPLOAD_PART_BYTES)
        .with_max_concurrency(2);
    let mut buf = vec![0u8; 1 << 20];
    let failed = loop {
        let n = match file.read(&mut buf).await {
            Ok(0) => break None,
            Ok(n) => n,
            Err(e) => break Some(UploadError::Local(e)),
        };
        if let Err(e) = out.write_all(&buf[..n]).await {
            break Some(UploadError::Store(store_error(e)));
        }
    };
    let failed = match failed {
        None => match out.shutdown().await {
            Ok(()) => return Ok(()),
            Err(e) => UploadError::Store(store_error(e)),
        },
        Some(e) => e,
    };
    // A multipart upload left open is invisible to listings (no sweep finds it) yet billed.
    let _ = out.abort().await;
    Err(failed)
}

/// The object store error inside an `io::Error` of the buffered writer.
fn store_error(e: io::Error) -> object_store::Error {
    match e
        .into_inner()
        .map(|inner| inner.downcast::<object_store::Error>())
    {
        Some(Ok(store)) => *store,
        Some(Err(other)) => object_store::Error::Generic {
            store: "S3",
            source: other,
        },
        None => object_store::Error::Generic {
            store: "S3",
            source: "write failed".into(),
        },
    }
}
