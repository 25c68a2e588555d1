//! Reading audit logs: input files, record splitting, one parser per source, the ingest run.

pub mod azure;
pub mod checkpoints;
pub mod cloudtrail;
pub mod fields;
pub mod gcp;
pub mod held;
pub mod inputs;
pub mod k8s;
pub mod objects;
pub mod parallel;
pub mod redact;
pub mod refill;
pub mod rejects;
pub mod run;
pub mod source;
pub mod splitter;
pub mod timestamp;
pub mod vault;

pub use run::{ingest, IngestError, IngestOptions, IngestReport, InputSpec};
pub use source::ParseOptions;
