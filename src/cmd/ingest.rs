//! `vigil ingest PATH... | -`

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;

use super::{exit, Globals};
use crate::cli::{IngestArgs, SummaryFormat};
use crate::event::SourceKind;
use crate::ingest::{ingest, IngestOptions, IngestReport, InputSpec};
use crate::object_storage::ObjectUrl;

pub fn run(g: &Globals, args: IngestArgs) -> anyhow::Result<u8> {
    let specs: Vec<InputSpec> = args
        .paths
        .iter()
        .map(|p| {
            Ok(if p == "-" {
                InputSpec::Stdin
            } else if let Some(url) = ObjectUrl::parse(p).map_err(anyhow::Error::msg)? {
                InputSpec::Object(url)
            } else {
                InputSpec::Path(PathBuf::from(p))
            })
        })
        .collect::<anyhow::Result<_>>()?;
    let mut opts = options(g, args.source.0, args.strict)?;
    opts.discard_held = args.discard_held;
    let report = ingest(&g.store, &specs, &opts)
        .with_context(|| format!("ingest into {}", g.store.name()))?;
    match args.format {
        SummaryFormat::Json => {
            let mut out = std::io::stdout().lock();
            serde_json::to_writer(&mut out, &report)?;
            writeln!(out)?;
        }
        SummaryFormat::Text if !g.quiet => {
            print_summary(&report, g)?;
            suggest_compaction(g);
        }
        SummaryFormat::Text => {}
    }
    Ok(if report.total.rejected > 0 {
        exit::FLAGGED
    } else {
        exit::OK
    })
}

pub fn options(
    g: &Globals,
    source: Option<SourceKind>,
    strict: bool,
) -> anyhow::Result<IngestOptions> {
    let now = crate::clock::now_nanos().map_err(anyhow::Error::msg)?;
    let mut opts = g.config.ingest_options(source, strict, now);
    opts.progress = g.stderr_is_terminal && !g.quiet;
    Ok(opts)
}

/// Days stored in this many files or more are worth compacting.
const CROWDED_FILES: usize = 8;

/// A note on stderr when some day partitions hold many files (each ingest and every ~24 MiB of
/// a day write one): queries pay per file, `vigil compact` merges them.
fn suggest_compaction(g: &Globals) {
    let Ok(log) = g.store.log() else {
        return;
    };
    let mut per_day: std::collections::HashMap<(&str, &str), usize> = Default::default();
    for f in log
        .files()
        .filter(|f| f.rows < crate::store::compact::SMALL_ROWS)
    {
        *per_day.entry((&f.source, &f.date)).or_default() += 1;
    }
    let crowded = per_day.values().filter(|&&n| n >= CROWDED_FILES).count();
    if crowded > 0 {
        eprintln!(
            "note: {crowded} day partition(s) hold {CROWDED_FILES} or more small files; `vigil compact` merges them into sorted files of up to 1 M rows (faster queries)"
        );
    }
}

/// The human summary, on stderr.
pub fn print_summary(r: &IngestReport, g: &Globals) -> std::io::Result<()> {
    let mut err = std::io::stderr().lock();
    for w in &r.warnings {
        writeln!(err, "warning: {w}")?;
    }
    let store = g.store.name();
    match (r.commit, r.strict_aborted) {
        (_, true) => writeln!(
            err,
            "--strict: {} record(s) rejected, nothing committed to {store}",
            r.total.rejected
        )?,
        (Some(seq), _) => writeln!(
            err,
            "committed {seq} to {store}: {} input file(s) read, {} data file(s) written; head {}",
            r.files_read,
            r.files_written,
            r.head.as_deref().unwrap_or("")
        )?,
        (None, _) => writeln!(err, "nothing new to ingest into {store}")?,
    }
    if !r.counts.is_empty() {
        writeln!(
            err,
            "{:<12} {:>9} {:>9} {:>9} {:>11} {:>9} {:>9}",
            "source", "read", "stored", "merged", "duplicates", "rejected", "rows"
        )?;
        for (name, t) in &r.counts {
            writeln!(
                err,
                "{name:<12} {:>9} {:>9} {:>9} {:>11} {:>9} {:>9}",
                t.read, t.stored, t.merged, t.duplicates, t.rejected, t.rows
            )?;
        }
        let t = &r.total;
        writeln!(
            err,
            "{:<12} {:>9} {:>9} {:>9} {:>11} {:>9} {:>9}",
            "total", t.read, t.stored, t.merged, t.duplicates, t.rejected, t.rows
        )?;
    }
    for s in &r.skipped {
        writeln!(err, "skipped {}: {}", s.path, s.why)?;
    }
    if r.total.held > 0 || r.total.resumed > 0 {
        writeln!(
            err,
            "held: {} record(s) carried in from the last run, {} carried to the next (Vault requests waiting for their response, Kubernetes stages for the final one)",
            r.total.resumed, r.total.held
        )?;
    }
    for w in &r.waiting {
        writeln!(
            err,
            "waiting {}: line {} has no end yet ({} bytes); it is read once complete, or as it is once the file has not changed for {}",
            w.path,
            w.line,
            w.bytes,
            config_duration(g.config.hold_for)
        )?;
    }
    if r.total.rejected > 0 {
        match &r.rejects_file {
            Some(path) => writeln!(
                err,
                "{} record(s) rejected, listed in {}:",
                r.total.rejected,
                g.store.shown(path).display()
            )?,
            None => writeln!(err, "{} record(s) rejected:", r.total.rejected)?,
        }
        for rej in &r.rejects {
            writeln!(err, "  {}  {}  {}", rej.location(), rej.reason, rej.detail)?;
        }
        let more = r
            .total
            .rejected
            .saturating_sub(r.rejects.iter().map(|x| x.records).sum());
        if more > 0 {
            writeln!(err, "  ... and {more} more")?;
        }
    }
    Ok(())
}

/// `15m`, `90s`: a duration as the configuration writes it.
fn config_duration(d: std::time::Duration) -> String {
    let s = d.as_secs();
    if s > 0 && s.is_multiple_of(3600) {
        format!("{}h", s / 3600)
    } else if s > 0 && s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}
