//! Command-line interface (clap derive). Only `cmd/` sees these types.

use std::path::PathBuf;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::event::SourceKind;
use crate::report::Format;

#[derive(Debug, Parser)]
#[command(name = "vigil", version, about = "Who read which secret, and is any of it unusual?", long_about = None)]
pub struct Cli {
    /// Store directory [default: ./vigil-data, or [store] path in vigil.toml]
    #[arg(long, global = true, env = "VIGIL_STORE", value_name = "DIR")]
    pub store: Option<PathBuf>,
    /// Config file [default: ./vigil.toml when present]
    #[arg(long, global = true, env = "VIGIL_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print only errors on stderr
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Print more on stderr (the time each detector takes)
    #[arg(short, long, global = true)]
    pub verbose: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read audit logs (files, directories, .gz, or - for stdin) into the store
    Ingest(IngestArgs),
    /// Run a read-only SQL query over tables `events`, `event_counts` (hourly counts),
    /// `client_counts` (per address and user agent), `principal_counts` (per principal and its
    /// attributes), `findings` (each recorded finding with its latest status) and
    /// `finding_history` (every status) and views `secret_reads`, `principals` (with their peer
    /// groups), `ocsf_api_activity`; without a query on a terminal, an interactive shell
    Sql(SqlArgs),
    /// List the compliance reports, or run them over a period (table, csv, json, markdown, html;
    /// to a file or by email)
    #[command(subcommand)]
    Report(ReportCommand),
    /// Run the detectors over a window against the history before it; print the findings
    Detect(DetectArgs),
    /// The findings history: list what detection recorded with its status, acknowledge a
    /// finding, or judge one benign (later runs then leave its key out)
    #[command(subcommand)]
    Findings(FindingsCommand),
    /// List the detectors, or explain one (vigil detectors VG007)
    Detectors(DetectorsArgs),
    /// Replay the detectors over past history, window by window, and score them against labels
    Backtest(BacktestArgs),
    /// Recompute the commit hash chain and every file hash; exit 1 on any problem
    Verify(VerifyArgs),
    /// Merge each day's small data files into few large ones (faster queries), in one commit;
    /// replaced files are deleted after a grace period
    Compact(CompactArgs),
    /// Write realistic synthetic audit logs with labelled anomalies (deterministic per seed)
    Generate(GenerateArgs),
    /// Run unattended: read what the [[serve.inputs]] of vigil.toml append and commit it, run
    /// the detectors over every hour once it has closed and send the alerts, answer /healthz
    /// and /metrics; stops on SIGTERM or SIGINT, reloads vigil.toml on SIGHUP
    #[command(after_help = "The least vigil.toml it runs with:\n\n  \
        [[serve.inputs]]\n  \
        path = \"/var/log/vault/audit.log*\"   # a file, a directory or a file-name pattern\n\n\
        /healthz and /metrics answer on 127.0.0.1:9464 ([serve] listen). Every key: README, \
        \"Running vigil as a service\".")]
    Serve(ServeArgs),
    /// Ingest the bundled sample data into a fresh demo store (./vigil-demo unless --store or
    /// VIGIL_STORE names one) and show what vigil sees
    Demo(DemoArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Log lines on stderr as text for people or JSON objects for log collectors
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// `--source` of ingest: a source, or `auto` (recognized per input from its content).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceChoice(pub Option<SourceKind>);

/// A source's name, from the one list of sources (`SourceKind::ALL`): what `--help` offers
/// and what is accepted are the same names.
fn source_kind() -> impl TypedValueParser<Value = SourceKind> {
    PossibleValuesParser::new(SourceKind::ALL.map(SourceKind::as_str))
        .map(|name| SourceKind::parse(&name).expect("every possible value is a source"))
}

fn source_or_auto() -> impl TypedValueParser<Value = SourceChoice> {
    PossibleValuesParser::new(
        std::iter::once("auto").chain(SourceKind::ALL.map(SourceKind::as_str)),
    )
    .map(|name| SourceChoice(SourceKind::parse(&name)))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SummaryFormat {
    /// Human summary on stderr
    Text,
    /// The accounting as one JSON object on stdout
    Json,
}

#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Files or directories to read; `-` reads stdin; `s3://bucket/prefix` reads the objects
    /// under a prefix (or one object), new or changed ones only on later runs
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<String>,
    /// Format of every input (default: recognized per file from its content)
    #[arg(long, default_value = "auto", value_parser = source_or_auto())]
    pub source: SourceChoice,
    /// Commit nothing if any record is rejected
    #[arg(long)]
    pub strict: bool,
    /// Drop the records the last ingest held for this one (a Vault request waiting for its
    /// response), unread: for a held-state file that is damaged; they are lost, and counted
    #[arg(long)]
    pub discard_held: bool,
    /// How to print the accounting
    #[arg(long, value_enum, default_value = "text")]
    pub format: SummaryFormat,
}

#[derive(Debug, Args)]
pub struct SqlArgs {
    /// The query (or use --file, or pipe it on stdin)
    pub query: Option<String>,
    /// Read the query from a file
    #[arg(long, short = 'f', value_name = "FILE", conflicts_with = "query")]
    pub file: Option<PathBuf>,
    /// Output format [default: table on a terminal, jsonl otherwise]
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Open the interactive shell even when stdin is not a terminal (it reads statements from
    /// stdin); without a query on a terminal the shell opens anyway
    #[arg(long, conflicts_with_all = ["query", "file"])]
    pub shell: bool,
}

#[derive(Debug, Args)]
pub struct DemoArgs {}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// A head hash printed by an earlier verify and kept outside the store: detects commits
    /// removed from the end
    #[arg(long, value_name = "SHA256")]
    pub expect_head: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ListFormat {
    /// Aligned text
    Text,
    /// One JSON array: name, title, description, control, params (name, type, default)
    Json,
}

#[derive(Debug, Args)]
pub struct ReportListArgs {
    #[arg(long, value_enum, default_value = "text")]
    pub format: ListFormat,
}

#[derive(Debug, Args)]
pub struct CompactArgs {
    /// Only partitions of these sources; default all
    #[arg(long, value_delimiter = ',', value_name = "SOURCE", value_parser = source_kind())]
    pub source: Vec<SourceKind>,
    /// How long replaced files stay on disk for queries that already listed them (0s: delete
    /// them now); a later compact or ingest deletes them. On object storage, files no commit
    /// lists are set aside once older than this and than an hour (a writer may still be
    /// uploading newer ones)
    #[arg(long, default_value = "1h", value_name = "DURATION")]
    pub grace: String,
    /// How to print what was done
    #[arg(long, value_enum, default_value = "text")]
    pub format: SummaryFormat,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Format to write
    #[arg(long, default_value = "vault", value_parser = source_kind())]
    pub source: SourceKind,
    /// Input records to write (a Vault or Kubernetes call is two records; the planted
    /// anomalies are written in any case, about 170 calls)
    #[arg(long, default_value_t = 100_000)]
    pub events: u64,
    /// Principals of the estate: services and people four to one, ten services a team
    #[arg(long, default_value_t = 250, value_parser = clap::value_parser!(u32).range(40..=100_000))]
    pub principals: u32,
    /// Seed of the generator: the same seed writes the same bytes
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Length of the period in days
    #[arg(long, default_value_t = 31, value_parser = clap::value_parser!(u32).range(1..=3660))]
    pub days: u32,
    /// First day of the period (UTC)
    #[arg(long, default_value = "2026-03-02", value_name = "YYYY-MM-DD")]
    pub start: String,
    /// Directory for `<source>-audit.log` and `labels.json`
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// List the reports with their parameters and controls
    List(ReportListArgs),
    /// Run one or more reports over a period
    Run(ReportRunArgs),
}

/// `--since D`, or `--from T --to T`, and `--at T`.
#[derive(Debug, Args, Clone)]
pub struct TimeArgs {
    /// Period ending now (or at --at): 24h, 7d, 4w ...
    #[arg(long, value_name = "DURATION", conflicts_with = "from")]
    pub since: Option<String>,
    /// Start of the period (RFC 3339 or a date), included
    #[arg(long, value_name = "T")]
    pub from: Option<String>,
    /// End of the period (RFC 3339 or a date), excluded [default: now]
    #[arg(long, value_name = "T")]
    pub to: Option<String>,
    /// What "now" is for this command (RFC 3339 or a date): run over past data as if it were then
    #[arg(long, value_name = "T")]
    pub at: Option<String>,
}

#[derive(Debug, Args)]
pub struct ReportRunArgs {
    /// Report names (see `vigil report list`)
    #[arg(required = true, value_name = "NAME")]
    pub names: Vec<String>,
    #[command(flatten)]
    pub time: TimeArgs,
    /// A report parameter, name=value (repeatable)
    #[arg(long = "param", value_name = "NAME=VALUE")]
    pub params: Vec<String>,
    /// Output format [default: table on a terminal, jsonl otherwise]
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Write to this file instead of stdout (several reports: one HTML page, or for other
    /// formats a directory with one file per report)
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Mail the result to these addresses (comma-separated): HTML body, plain-text part, CSV
    /// attached; through [smtp] in vigil.toml, else written to the outbox as .eml
    #[arg(long, value_name = "TO[,TO]")]
    pub email: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FindingsFormat {
    Table,
    Json,
    Jsonl,
    Markdown,
}

#[derive(Debug, Args)]
pub struct DetectArgs {
    #[command(flatten)]
    pub time: TimeArgs,
    /// Only these detectors (comma-separated codes, e.g. VG001,VG009)
    #[arg(long, value_delimiter = ',', value_name = "CODES")]
    pub only: Vec<String>,
    /// Output format [default: table on a terminal, jsonl otherwise]
    #[arg(long, value_enum)]
    pub format: Option<FindingsFormat>,
    /// Exit 1 when a finding at or above this severity exists (info, low, medium, high, critical)
    #[arg(long, value_name = "SEVERITY")]
    pub fail_on: Option<String>,
    /// Send the findings at or above [alerts] min_severity that were not sent within
    /// [alerts] suppress_for: one email per run (and the webhook when configured)
    #[arg(long)]
    pub notify: bool,
    /// Record nothing in the findings history (which needs the store's write lock) and send
    /// nothing: for a look at a window, or a store you may only read
    #[arg(long, conflicts_with = "notify")]
    pub dry_run: bool,
}

#[derive(Debug, Subcommand)]
pub enum FindingsCommand {
    /// Recorded findings with their latest status, newest first
    List(FindingsListArgs),
    /// Mark every finding with KEY as seen by an analyst
    Ack(FindingsAckArgs),
    /// Judge every finding with KEY benign: later runs leave that key out, like an allowlist
    /// entry, until the verdict expires, and say so in a note
    Benign(FindingsBenignArgs),
}

#[derive(Debug, Args)]
pub struct FindingsListArgs {
    /// Only findings whose latest status is one of these (new, alerted, suppressed,
    /// acknowledged, benign; comma-separated)
    #[arg(long, value_delimiter = ',', value_name = "STATUS")]
    pub status: Vec<String>,
    /// Findings recorded in this period up to now: 24h, 7d, 4w ...
    #[arg(long, value_name = "DURATION", default_value = "7d")]
    pub since: String,
    /// Only findings with this key
    #[arg(long, value_name = "KEY")]
    pub key: Option<String>,
    /// Output format [default: table on a terminal, jsonl otherwise]; json and jsonl carry
    /// every column
    #[arg(long, value_enum)]
    pub format: Option<Format>,
}

#[derive(Debug, Args)]
pub struct FindingsAckArgs {
    /// The finding key (`vigil findings list` shows it): `<code>:<actor_id>[:<resource_id>]`
    pub key: String,
    /// Why, for the history
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    /// Who decides [default: $USER]
    #[arg(long, value_name = "NAME")]
    pub by: Option<String>,
}

#[derive(Debug, Args)]
pub struct FindingsBenignArgs {
    /// The finding key (`vigil findings list` shows it): `<code>:<actor_id>[:<resource_id>]`
    pub key: String,
    /// Why the access is fine (kept in the history and shown when a run leaves the key out)
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
    /// When the verdict ends: a duration from now (30d), a date (the end of that day, UTC) or
    /// an RFC 3339 time [default: never]
    #[arg(long, value_name = "T")]
    pub expires: Option<String>,
    /// Who decides [default: $USER]
    #[arg(long, value_name = "NAME")]
    pub by: Option<String>,
}

#[derive(Debug, Args)]
pub struct DetectorsArgs {
    /// A detector code (VG001) or name (new-caller-for-secret) to explain
    pub code: Option<String>,
}

#[derive(Debug, Args)]
pub struct BacktestArgs {
    /// Start of the replay (RFC 3339 or a date)
    #[arg(long, value_name = "T")]
    pub from: String,
    /// End of the replay, excluded
    #[arg(long, value_name = "T")]
    pub to: String,
    /// Ground truth (the labels.json that vigil generate writes) for precision and recall
    #[arg(long, value_name = "FILE")]
    pub labels: Option<PathBuf>,
    /// Length of each replayed window: time moves forward by this much at each step
    #[arg(long, default_value = "1h", value_name = "DURATION")]
    pub step: String,
    /// Only these detectors (comma-separated codes)
    #[arg(long, value_delimiter = ',', value_name = "CODES")]
    pub only: Vec<String>,
    /// Print the per-detector table as JSON on stdout
    #[arg(long)]
    pub json: bool,
    /// Also list the findings behind the totals (one line each; with --json, under `findings_list`)
    #[arg(long)]
    pub list: bool,
}
