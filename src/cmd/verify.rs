//! `vigil verify [--expect-head HASH]`

use std::io::Write;

use anyhow::bail;

use super::{exit, Globals};
use crate::cli::VerifyArgs;
use crate::store::verify::verify;

pub fn run(g: &Globals, args: VerifyArgs) -> anyhow::Result<u8> {
    if !g.store.root().is_dir() {
        bail!(
            "no store at {} (pass --store DIR)",
            g.store.root().display()
        );
    }
    let v = verify(&g.store, args.expect_head.as_deref())?;
    let mut out = std::io::stdout().lock();
    for p in &v.problems {
        writeln!(out, "INVALID: {p}")?;
    }
    writeln!(out, "head {}", v.head.as_deref().unwrap_or("none"))?;
    if !g.quiet {
        for l in &v.leftovers {
            eprintln!(
                "note: {l} is left over from an interrupted ingest (the next ingest removes it)"
            );
        }
        let verdict = if v.problems.is_empty() {
            "valid"
        } else {
            "INVALID"
        };
        eprintln!(
            "{verdict}: {} commit(s), {} data file(s), {} row(s) checked, {} problem(s)",
            v.commits,
            v.files,
            v.rows,
            v.problems.len()
        );
    }
    Ok(if v.problems.is_empty() {
        exit::OK
    } else {
        exit::FLAGGED
    })
}
