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
    if let Some(h) = &args.expect_head {
        if h.len() != 64 || !h.chars().all(|c| c.is_ascii_hexdigit()) {
            bail!("--expect-head takes the 64 hex digits of a head printed by vigil verify, not `{h}`");
        }
    }
    let v = verify(&g.store, args.expect_head.as_deref())?;
    let mut out = std::io::stdout().lock();
    for p in &v.problems {
        writeln!(out, "INVALID: {p}")?;
    }
    writeln!(out, "head {}", v.head.as_deref().unwrap_or("none"))?;
    if !g.quiet {
        for c in &v.since_expected {
            eprintln!("note: {c}");
        }
        if v.quarantined > 0 {
            eprintln!(
                "note: {} file(s) in _quarantine/ were set aside by a writer because no commit lists them (an interrupted ingest, or a deleted commit: compare with --expect-head); delete them once you know which",
                v.quarantined
            );
        }
        if v.without_rollups > 0 {
            eprintln!(
                "note: {} data file(s) were written by an older vigil without every rollup; reports and detection count their events instead, more slowly (vigil compact adds the rollups to the files of the current schema version)",
                v.without_rollups
            );
        }
        let tidied_by = if g.store.remote().is_some() {
            "vigil compact sets it aside in _quarantine/ once older than its --grace"
        } else {
            "the next ingest sets it aside in _quarantine/, or deletes it if it is a temp file"
        };
        for l in &v.leftovers {
            eprintln!("note: {l} is left over from an interrupted write ({tidied_by})");
        }
        let verdict = if v.problems.is_empty() {
            "valid"
        } else {
            "INVALID"
        };
        let rehashed = if v.content_checked > 0 {
            format!(" (the rows of {} file(s) hashed again)", v.content_checked)
        } else {
            String::new()
        };
        let checkpoints = if v.checkpoints > 0 {
            format!(", {} checkpoint(s)", v.checkpoints)
        } else {
            String::new()
        };
        eprintln!(
            "{verdict}: {} commit(s){checkpoints}, {} data file(s), {} row(s) checked{rehashed}, {} problem(s)",
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
