//! `vigil serve`

use super::{exit, Globals};
use crate::cli::{LogFormat, ServeArgs};
use crate::serve::{self, ConfigSource};

pub async fn run(g: Globals, args: ServeArgs) -> anyhow::Result<u8> {
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(g.stderr_is_terminal)
        .with_target(false)
        .with_max_level(if g.verbose {
            tracing::Level::DEBUG
        } else if g.quiet {
            tracing::Level::WARN
        } else {
            tracing::Level::INFO
        });
    match args.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
    let source = ConfigSource {
        path: g.config_path.clone(),
        explicit: g.config_explicit,
    };
    serve::run(g.store, g.config, source).await?;
    Ok(exit::OK)
}
