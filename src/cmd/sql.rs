//! `vigil sql [QUERY]`

use std::io::{IsTerminal, Read, Write};

use anyhow::{bail, Context};

use super::shell;

use super::{exit, Globals};
use crate::cli::SqlArgs;
use crate::query::{run_sql, session};
use crate::report::{write_batches_fitted, Format};

pub async fn run(g: &Globals, args: SqlArgs) -> anyhow::Result<u8> {
    let sql = match (args.query, args.file) {
        (Some(q), _) => q,
        (None, Some(path)) => {
            std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?
        }
        (None, None) if args.shell => return shell(g).await,
        (None, None) if !std::io::stdin().is_terminal() => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading the query from stdin")?;
            text
        }
        (None, None) => return shell(g).await,
    };
    open_store_check(g)?;
    let ctx = session(&g.store, &g.config.query).await?;
    let batches = run_sql(
        &ctx,
        sql.trim().trim_end_matches(';'),
        g.config.query.limits(),
    )
    .await?;
    let format = args
        .format
        .unwrap_or_else(|| Format::default_for(std::io::stdout().is_terminal()));
    let mut out = std::io::stdout().lock();
    write_batches_fitted(&mut out, &batches, format, crate::report::terminal_width())?;
    out.flush()?;
    Ok(exit::OK)
}

fn open_store_check(g: &Globals) -> anyhow::Result<()> {
    if !g.store.exists() {
        bail!(
            "no store at {} (run vigil ingest first, or pass --store DIR)",
            g.store.root().display()
        );
    }
    Ok(())
}

async fn shell(g: &Globals) -> anyhow::Result<u8> {
    open_store_check(g)?;
    let ctx = session(&g.store, &g.config.query).await?;
    shell::run(&ctx, g.config.query.limits()).await?;
    Ok(exit::OK)
}
