//! One thin handler per subcommand: the only code that sees clap types.

mod backtest;
mod compact;
mod demo;
mod detect;
mod findings;
mod generate;
mod ingest;
mod report;
mod serve;
mod shell;
mod sql;
mod verify;

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;

use crate::cli::{Cli, Command};
use crate::config::{Config, DEFAULT_CONFIG, DEFAULT_STORE};
use crate::store::Store;

/// Exit codes scripts rely on.
pub mod exit {
    /// Ran, nothing to flag.
    pub const OK: u8 = 0;
    /// Ran and flagged something (records rejected, problems found, findings).
    pub const FLAGGED: u8 = 1;
    /// Could not run.
    pub const ERROR: u8 = 2;
}

/// Settings every command shares, resolved once.
pub struct Globals {
    pub config: Config,
    pub store: Store,
    /// The store was named by `--store` or `VIGIL_STORE` rather than defaulted.
    pub store_explicit: bool,
    pub quiet: bool,
    pub verbose: bool,
    pub stderr_is_terminal: bool,
    /// Where the configuration was read from (or would have been), and whether `--config`
    /// named it: `vigil serve` reads it again on SIGHUP.
    pub config_path: PathBuf,
    pub config_explicit: bool,
}

/// Runs the command and returns the process exit code.
pub fn run(cli: Cli) -> anyhow::Result<u8> {
    let config_path = cli
        .config
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG));
    let config = Config::load(&config_path, cli.config.is_some())?;
    let store_explicit = cli.store.is_some();
    let store_path = cli
        .store
        .clone()
        .or_else(|| config.store_path.clone())
        .unwrap_or_else(|| PathBuf::from(DEFAULT_STORE));
    let url = match store_path
        .to_str()
        .map(crate::object_storage::ObjectUrl::parse)
    {
        Some(Ok(url)) => url,
        Some(Err(e)) => anyhow::bail!("--store {e}"),
        None => None,
    };
    // A store on object storage is opened (its commit log fetched) only by commands that read
    // the store: listing detectors or reports, generating data or the demo need no network.
    let reads_store = !matches!(
        cli.command,
        Command::Detectors(_)
            | Command::Generate(_)
            | Command::Demo(_)
            | Command::Report(crate::cli::ReportCommand::List(_))
    );
    // The first ingest (or the service) creates a store; every other command needs one there.
    let how = match cli.command {
        Command::Ingest(_) | Command::Serve(_) => crate::store::remote::Open::OrCreate,
        _ => crate::store::remote::Open::Existing,
    };
    let store = match url {
        Some(url) if reads_store => crate::store::remote::open(&url, &config.object_store, how)?,
        _ => Store::new(store_path),
    }
    .with_checkpoint_every(config.checkpoint_every);
    let globals = Globals {
        config,
        store,
        store_explicit,
        quiet: cli.quiet,
        verbose: cli.verbose,
        stderr_is_terminal: std::io::stderr().is_terminal(),
        config_path,
        config_explicit: cli.config.is_some(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    match cli.command {
        Command::Ingest(args) => ingest::run(&globals, args),
        Command::Sql(args) => runtime.block_on(sql::run(&globals, args)),
        Command::Serve(args) => {
            let outcome = runtime.block_on(serve::run(globals, args));
            // A send of alerts the stop did not wait for (a mail server that does not answer)
            // must not keep the process: its message stays in the outbox.
            runtime.shutdown_timeout(std::time::Duration::from_millis(500));
            outcome
        }
        Command::Demo(args) => runtime.block_on(demo::run(&globals, args)),
        Command::Detect(args) => runtime.block_on(detect::run(&globals, args)),
        Command::Detectors(args) => detect::detectors(args),
        Command::Findings(cmd) => runtime.block_on(findings::run(&globals, cmd)),
        Command::Backtest(args) => runtime.block_on(backtest::run(&globals, args)),
        Command::Report(cmd) => runtime.block_on(report::run(&globals, cmd)),
        Command::Verify(args) => verify::run(&globals, args),
        Command::Compact(args) => compact::run(&globals, args),
        Command::Generate(args) => generate::run(&globals, args),
    }
}

/// True for errors from writing to a closed pipe (`vigil sql ... | head`), which end quietly.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// The error chain as one sentence. vigil's own errors put their cause in their message and do
/// not also return it as `source()`, so they never repeat; DataFusion's and the Parquet
/// crate's errors do (a Parquet error inside an external error inside a context), and a part
/// already said is skipped.
pub fn error_sentence(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for part in e.chain().map(|c| c.to_string()) {
        if out.contains(&part) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&part);
    }
    // DataFusion wraps its Parquet errors twice and names object-store paths without their
    // leading `/`; the object store's own message that follows has the real path.
    out = out.replace("Parquet error: Parquet error: ", "Parquet error: ");
    // Errors of DataFusion's reads from object storage carry the server's text, which may
    // repeat the access key id or a session token: never print a credential of the environment.
    for var in [
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_ACCESS_KEY_ID",
    ] {
        if let Some(value) = std::env::var(var).ok().filter(|v| v.len() >= 8) {
            out = out.replace(&value, &format!("[{var}]"));
        }
    }
    if out.contains("Object Store error") && out.contains("not found") {
        out.push_str(
            " (a file the store's commits list is missing: run vigil verify to see what else is)",
        );
    }
    out
}
