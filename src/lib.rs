//! vigil: who read which secret, and is any of it unusual?
//!
//! Secret-manager audit logs in, one normalized Parquet history out, queried with DataFusion.

/// Alert emails and webhook posts for findings, through the durable outbox.
pub mod alert;
/// Working time (time zone, business hours, holidays) for off-hours decisions.
pub mod calendar;
/// Command-line definition (clap).
pub mod cli;
/// The one place that reads the wall clock.
pub mod clock;
/// One handler per subcommand.
pub mod cmd;
/// `vigil.toml`: typed, validated settings.
pub mod config;
/// Detectors, findings, allowlists: what is unusual in a window against its history.
pub mod detect;
/// Environments (prod, staging, ...) of secrets and principals.
pub mod environments;
/// The normalized event and its Arrow schema.
pub mod event;
/// Fault injection for crash tests (active only with the `fault-injection` feature).
pub mod fault;
/// The findings history: every finding recorded, its status, analysts' verdicts.
pub mod findings;
/// Durable local file writes (temp name, fsync, rename, fsync of the directory).
pub mod fsutil;
/// Synthetic audit logs with labelled anomalies (`vigil generate`).
pub mod generate;
/// Shell-style wildcards for config patterns.
pub mod glob;
/// Input files, record splitting, one parser per source, the ingest run.
pub mod ingest;
/// Mail for reports and alerts: SMTP (lettre) and the outbox.
pub mod mail;
/// Networks: CIDR ranges and private address space.
pub mod net;
/// S3 and S3-compatible object storage: buckets, credentials, error sentences.
pub mod object_storage;
pub mod peer_groups;
/// DataFusion session over the store; read-only user SQL.
pub mod query;
/// Output formats for query results (the only code that prints data).
pub mod report;
/// `vigil serve`: the unattended service.
pub mod serve;
/// Parquet files, the commit log, dedupe.
pub mod store;
/// `--since` / `--from` / `--to` / `--at`.
pub mod timerange;
