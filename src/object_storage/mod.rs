//! Object storage (S3 and S3-compatible servers) through the `object_store` crate: where the
//! logs of a cloud estate live. Inputs are read from it, and a store copied to a bucket is
//! read in place (`crate::store::remote`); writing the store there comes next.
//!
//! Credentials come the usual way (`AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` /
//! `AWS_SESSION_TOKEN`, web identity, container or instance metadata); `object_store` reads no
//! shared profile files (`~/.aws/credentials`). No credential ever appears in a message: every
//! error text is built here, from the S3 error code and message, with the credential values
//! scrubbed.

mod bucket;
mod error;
pub mod settings;
mod url;

pub use bucket::{key_path, Bucket, ObjectInfo, ObjectReader};
pub use error::ObjectError;
pub use settings::ObjectStoreSettings;
pub use url::ObjectUrl;
