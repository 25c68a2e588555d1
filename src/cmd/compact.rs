//! `vigil compact [--source S] [--grace 15m]`

use std::io::Write;

use anyhow::{bail, Context};

use super::{exit, Globals};
use crate::cli::{CompactArgs, SummaryFormat};
use crate::store::compact::{compact, CompactOptions};

pub fn run(g: &Globals, args: CompactArgs) -> anyhow::Result<u8> {
    if !g.store.exists() {
        bail!(
            "no store at {} (pass --store DIR)",
            g.store.root().display()
        );
    }
    let grace = crate::timerange::parse_duration(&args.grace)
        .map_err(|e| anyhow::anyhow!("--grace: {e}"))?;
    let opts = CompactOptions {
        now: crate::clock::now_nanos().map_err(anyhow::Error::msg)?,
        grace_nanos: i64::try_from(grace.as_nanos()).unwrap_or(i64::MAX),
        sources: args.source.iter().map(|s| s.as_str().to_owned()).collect(),
    };
    let r = compact(&g.store, &opts).with_context(|| format!("compact {}", g.store.name()))?;
    match args.format {
        SummaryFormat::Json => {
            let mut out = std::io::stdout().lock();
            serde_json::to_writer(&mut out, &r)?;
            writeln!(out)?;
        }
        SummaryFormat::Text if !g.quiet => {
            for w in &r.warnings {
                eprintln!("warning: {w}");
            }
            let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
            match r.commit {
                Some(seq) => eprintln!(
                    "commit {seq}: {} partition(s), {} file(s) -> {}, {} row(s), {:.1} MiB -> {:.1} MiB",
                    r.partitions,
                    r.files_before,
                    r.files_after,
                    r.rows,
                    mib(r.bytes_before),
                    mib(r.bytes_after)
                ),
                None => eprintln!("nothing to compact: no partition holds two or more small files"),
            }
            if r.deleted > 0 {
                eprintln!(
                    "deleted {} replaced file(s) (data and rollups) whose grace period is over",
                    r.deleted
                );
            } else if r.commit.is_some() {
                eprintln!(
                    "the replaced files stay until the grace period ({}) is over; the next compact or ingest deletes them",
                    args.grace
                );
            }
        }
        SummaryFormat::Text => {}
    }
    Ok(exit::OK)
}
