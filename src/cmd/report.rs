//! `vigil report list | run NAME...`

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use super::{exit, Globals};
use crate::cli::{ListFormat, ReportCommand, ReportRunArgs, TimeArgs};
use crate::mail::{self, Delivered};
use crate::query::session;
use crate::report::{self, catalog, extension, Format, Report, ReportRun};
use crate::timerange::{self, rfc3339, TimeRange};

pub async fn run(g: &Globals, cmd: ReportCommand) -> anyhow::Result<u8> {
    match cmd {
        ReportCommand::List(args) => list(args.format),
        ReportCommand::Run(args) => run_reports(g, args).await,
    }
}

fn list(format: ListFormat) -> anyhow::Result<u8> {
    let reports = catalog::shipped().map_err(anyhow::Error::msg)?;
    let mut out = std::io::stdout().lock();
    if format == ListFormat::Json {
        let list: Vec<serde_json::Value> = reports
            .iter()
            .map(|r| {
                serde_json::json!({
                    "name": r.name,
                    "title": r.title,
                    "description": r.description,
                    "control": r.control,
                    "params": r.params.iter().map(|p| serde_json::json!({
                        "name": p.name,
                        "type": p.ty.to_string(),
                        "default": p.default,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        serde_json::to_writer_pretty(&mut out, &list)?;
        writeln!(out)?;
        return Ok(exit::OK);
    }
    let width = reports.iter().map(|r| r.name.len()).max().unwrap_or(0);
    for r in &reports {
        writeln!(out, "{:width$}  {}", r.name, r.title)?;
        writeln!(out, "{:width$}  {}", "", r.description)?;
        if !r.params.is_empty() {
            let p: Vec<String> = r
                .params
                .iter()
                .map(|p| format!("{}:{}={}", p.name, p.ty, p.default))
                .collect();
            writeln!(out, "{:width$}  params: {}", "", p.join(", "))?;
        }
        if let Some(c) = &r.control {
            writeln!(out, "{:width$}  control: {c}", "")?;
        }
    }
    out.flush()?;
    Ok(exit::OK)
}

/// The period of a command's time arguments; `default_since` when none is given.
pub fn time_range(
    t: &TimeArgs,
    default_since: std::time::Duration,
) -> anyhow::Result<(TimeRange, i64)> {
    if t.at.is_some() && t.from.is_some() && t.to.is_some() {
        anyhow::bail!("--at has no effect with both --from and --to; give one of them, or --since");
    }
    let now = match &t.at {
        Some(at) => timerange::parse_instant(at).map_err(|e| anyhow::anyhow!("--at: {e}"))?,
        None => crate::clock::now_nanos().map_err(anyhow::Error::msg)?,
    };
    let range = timerange::resolve(
        t.since.as_deref(),
        t.from.as_deref(),
        t.to.as_deref(),
        now,
        default_since,
    )
    .map_err(anyhow::Error::msg)?;
    Ok((range, now))
}

/// Format for a file named `path` when none is given.
fn format_for_path(path: &Path) -> Option<Format> {
    match path.extension()?.to_str()? {
        "html" | "htm" => Some(Format::Html),
        "csv" => Some(Format::Csv),
        "json" => Some(Format::Json),
        "jsonl" | "ndjson" => Some(Format::Jsonl),
        "md" => Some(Format::Markdown),
        "txt" => Some(Format::Table),
        _ => None,
    }
}

/// Writes `bytes` to a file the user named, replacing it atomically; a symlink is not followed.
fn write_output(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if meta.file_type().is_symlink() || meta.is_dir() {
            bail!(
                "--out {}: is a symlink or a directory; give a regular file path",
                path.display()
            );
        }
    }
    crate::fsutil::write_atomic(path, bytes).with_context(|| format!("writing {}", path.display()))
}

/// `width`: the terminal's, when the result goes there (tables fit it).
fn render(
    run: &ReportRun,
    format: Format,
    generated: &str,
    width: Option<u16>,
) -> anyhow::Result<Vec<u8>> {
    let mut buf = Vec::new();
    report::write_run(&mut buf, run, format, generated, width)?;
    Ok(buf)
}

async fn run_reports(g: &Globals, args: ReportRunArgs) -> anyhow::Result<u8> {
    let all = catalog::shipped().map_err(anyhow::Error::msg)?;
    let mut selected: Vec<&Report> = Vec::new();
    for name in &args.names {
        let r = catalog::find(&all, name).map_err(anyhow::Error::msg)?;
        if !selected.iter().any(|s| s.name == r.name) {
            selected.push(r);
        }
    }
    let params = report::parse_params(&args.params, &selected)?;
    let (range, now) = time_range(&args.time, std::time::Duration::from_secs(7 * 86_400))?;
    let recipients = args
        .email
        .as_deref()
        .map(mail::parse_recipients)
        .transpose()?;
    if !g.store.exists() {
        bail!(
            "no store at {} (run vigil ingest first, or pass --store DIR)",
            g.store.root().display()
        );
    }
    let ctx = session(&g.store, &g.config.query).await?;
    let limits = g.config.query.limits();
    let evidence = report::evidence(&g.store.log()?, range);
    let mut runs = Vec::new();
    for r in &selected {
        let mut run = report::run(&ctx, r, range, &params, limits).await?;
        run.evidence = evidence.clone();
        runs.push(run);
    }
    let generated = rfc3339(now);
    let several = runs.len() > 1;

    // Output: a file, or stdout unless the result only goes by mail.
    let format = args
        .format
        .or_else(|| args.out.as_deref().and_then(format_for_path))
        .unwrap_or_else(|| Format::default_for(std::io::stdout().is_terminal()));
    if let Some(out) = &args.out {
        write_files(out, &runs, format, &generated)?;
    } else if recipients.is_none() || args.format.is_some() {
        let mut stdout = std::io::stdout().lock();
        if several && format == Format::Html {
            stdout.write_all(page(&runs, &generated)?.as_bytes())?;
        } else if several && matches!(format, Format::Csv | Format::Json | Format::Jsonl) {
            bail!(
                "several reports in {} need --out DIR (one file per report), or --format table, markdown or html",
                extension(format)
            );
        } else {
            for (i, run) in runs.iter().enumerate() {
                if i > 0 {
                    writeln!(stdout)?;
                }
                stdout.write_all(&render(run, format, &generated, report::terminal_width())?)?;
            }
        }
        stdout.flush()?;
    }
    if !g.quiet {
        for run in &runs {
            eprintln!(
                "{}: {} row{} ({})",
                run.report.name,
                run.rows(),
                if run.rows() == 1 { "" } else { "s" },
                run.period()
            );
        }
    }
    match recipients {
        Some(to) => send(g, &runs, to, &generated),
        None => Ok(exit::OK),
    }
}

fn page(runs: &[ReportRun], generated: &str) -> anyhow::Result<String> {
    Ok(report::mail::page(runs, generated)?)
}

fn write_files(
    out: &Path,
    runs: &[ReportRun],
    format: Format,
    generated: &str,
) -> anyhow::Result<()> {
    if runs.len() == 1 {
        write_output(out, &render(&runs[0], format, generated, None)?)?;
        eprintln!("wrote {}", out.display());
    } else if format == Format::Html {
        write_output(out, page(runs, generated)?.as_bytes())?;
        eprintln!("wrote {} ({} reports)", out.display(), runs.len());
    } else {
        std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
        for run in runs {
            let path: PathBuf = out.join(format!("{}.{}", run.report.name, extension(format)));
            write_output(&path, &render(run, format, generated, None)?)?;
            eprintln!("wrote {}", path.display());
        }
    }
    Ok(())
}

fn send(g: &Globals, runs: &[ReportRun], to: Vec<String>, generated: &str) -> anyhow::Result<u8> {
    let outbox = g.config.outbox(g.store.root());
    let smtp = g.config.smtp.as_ref();
    let flushed = mail::flush_pending(smtp, &outbox)?;
    if flushed.sent > 0 && !g.quiet {
        eprintln!(
            "sent {} message(s) that were waiting in {}",
            flushed.sent,
            outbox.join("pending").display()
        );
    }
    let message = report::mail::message(runs, to, generated, Format::Csv, None)?;
    match mail::deliver(smtp, &outbox, &message)? {
        Delivered::Sent => {
            if !g.quiet {
                eprintln!("mailed to {}", message.to.join(", "));
            }
            Ok(exit::OK)
        }
        Delivered::Written(path) => {
            if !g.quiet {
                eprintln!(
                    "no [smtp] in vigil.toml: message written to {}",
                    path.display()
                );
            }
            Ok(exit::OK)
        }
        Delivered::Queued { path, reason } => {
            eprintln!("error: the report was not mailed: {reason}; it waits in {} and is sent by the next run that mails", path.display());
            Ok(exit::ERROR)
        }
    }
}
