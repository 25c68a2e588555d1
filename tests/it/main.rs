//! vigil's integration tests: one binary (DataFusion links once), one module per concern.
//! Every test drives the real `vigil` binary against real files and a real store.

/// Hostile and odd input: every case asserts what was stored, what was rejected and why.
mod bad_input;
/// Commit-log checkpoints: opening from the newest, verify holding each against the commits.
mod checkpoints;
/// Helpers: run the binary with a fixed clock, read results back through `vigil sql`.
mod common;
/// `vigil compact`: rows kept, files sorted, rollups exact, grace period, verify.
mod compact;
/// The contract every source passes: schema, UTC times, accounting identity, a bad record counted.
mod contract;
/// Crash safety with injected faults and SIGKILL (needs `--features fault-injection`).
#[cfg(feature = "fault-injection")]
mod crash;
/// Detectors on a hand-made history and on generated data with planted anomalies.
mod detect;
/// The findings history: recorded once, verdicts, verify, the outbox's alert state taken over.
mod findings;
/// `vigil generate`: determinism and labels that match the stored rows.
mod generate;
/// Golden snapshots of normalized rows per source.
mod golden;
/// Growing and rotating files: only what was appended is read, half-written lines wait.
mod incremental;
/// Report mail through a real SMTP server (aiosmtpd): STARTTLS + AUTH, refusals, outage.
mod mail;
/// Inputs from object storage (moto's S3 server): same rows as files, only new objects again,
/// failures in one sentence without a credential.
mod objects;
/// `vigil report`: every shipped report, parameters, HTML, outbox.
mod reports;
/// Hourly rollups and table `event_counts`: exact for any period, verified, optional.
mod rollup;
/// Secret values (sentinels) never reach the store, the rejects file or the output.
mod secrets;
/// `vigil serve`: tailing with rotation, SIGTERM and kill -9, alerts once, health and metrics.
mod serve;
/// `vigil sql`: read-only, output formats, options anywhere.
mod sql;
/// Re-ingest, dedupe, --strict, and the store read by another engine (DuckDB).
mod store;
/// The top-level modules form no cycle.
mod structure;
/// `vigil verify`: tamper evidence, torn commits.
mod verify;
