//! `vigil sql [QUERY]`

use std::io::{IsTerminal, Read, Write};

use anyhow::{bail, Context};

use super::{exit, Globals};
use crate::cli::SqlArgs;
use crate::query::{run_sql, session};
use crate::report::{write_batches, Format};

pub async fn run(g: &Globals, args: SqlArgs) -> anyhow::Result<u8> {
    let sql = match (args.query, args.file) {
        (Some(q), _) => q,
        (None, Some(path)) => {
            std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?
        }
        (None, None) if !std::io::stdin().is_terminal() => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading the query from stdin")?;
            text
        }
        (None, None) => {
            bail!("give a query: vigil sql \"SELECT count(*) FROM events\" (or --file F.sql)")
        }
    };
    if !g.store.exists() {
        bail!(
            "no store at {} (run vigil ingest first, or pass --store DIR)",
            g.store.root().display()
        );
    }
    let ctx = session(&g.store).await?;
    let batches = run_sql(&ctx, sql.trim().trim_end_matches(';')).await?;
    let format = args
        .format
        .unwrap_or_else(|| Format::default_for(std::io::stdout().is_terminal()));
    let mut out = std::io::stdout().lock();
    write_batches(&mut out, &batches, format)?;
    out.flush()?;
    Ok(exit::OK)
}
