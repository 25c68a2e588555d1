//! Command-line interface (clap derive). Only `cmd/` sees these types.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

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
    #[arg(short, long, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read audit logs (files, directories, .gz, or - for stdin) into the store
    Ingest(IngestArgs),
    /// Run a read-only SQL query over table `events` (and view `secret_reads`)
    Sql(SqlArgs),
    /// Recompute the commit hash chain and every file hash; exit 1 on any problem
    Verify(VerifyArgs),
    /// Write realistic synthetic audit logs with labelled anomalies (deterministic per seed)
    Generate(GenerateArgs),
    /// Ingest the bundled sample data into a fresh demo store (./vigil-demo unless --store or
    /// VIGIL_STORE names one) and show what vigil sees
    Demo(DemoArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SourceArg {
    Auto,
    Vault,
    Cloudtrail,
    Gcp,
    Azure,
    K8s,
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
    /// Files or directories to read; `-` reads stdin
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<String>,
    /// Format of every input (default: recognized per file from its content)
    #[arg(long, value_enum, default_value = "auto")]
    pub source: SourceArg,
    /// Commit nothing if any record is rejected
    #[arg(long)]
    pub strict: bool,
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

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Format to write: vault, cloudtrail, gcp, azure or k8s
    #[arg(long, default_value = "vault")]
    pub source: String,
    /// Input records to write (a Vault or Kubernetes call is two records; the planted
    /// anomalies are written in any case, about 130 calls)
    #[arg(long, default_value_t = 100_000)]
    pub events: u64,
    /// Seed of the generator: the same seed writes the same bytes
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Length of the period in days
    #[arg(long, default_value_t = 14, value_parser = clap::value_parser!(u32).range(1..=3660))]
    pub days: u32,
    /// First day of the period (UTC)
    #[arg(long, default_value = "2026-03-02", value_name = "YYYY-MM-DD")]
    pub start: String,
    /// Directory for `<source>-audit.log` and `labels.json`
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}
