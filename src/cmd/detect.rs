//! `vigil detect` and `vigil detectors`.

use std::io::{IsTerminal, Write};

use anyhow::{bail, Context};

use super::{exit, Globals};
use crate::alert::deliver;
use crate::cli::{DetectArgs, DetectorsArgs, FindingsFormat};
use crate::detect::{self, DetectContext, Finding, Severity};
use crate::findings::triage;
use crate::query::session;
use crate::report::format::terminal_safe;
use crate::timerange::rfc3339;

pub async fn run(g: &Globals, args: DetectArgs) -> anyhow::Result<u8> {
    let fail_on = args
        .fail_on
        .as_deref()
        .map(Severity::parse)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--fail-on: {e}"))?;
    let (window, _) =
        super::report::time_range(&args.time, std::time::Duration::from_secs(86_400))?;
    if !g.store.exists() {
        bail!(
            "no store at {} (run vigil ingest first, or pass --store DIR)",
            g.store.root().display()
        );
    }
    let ctx = session(&g.store, &g.config.query).await?;
    let d = DetectContext::new(&ctx, window, &g.config.query, &g.config.detect);
    let only = (!args.only.is_empty()).then_some(args.only.as_slice());
    let mut findings = detect::run(&d, only).await?;
    if !g.quiet {
        for n in d.take_notes() {
            eprintln!("note: {n}");
        }
    }
    if g.verbose {
        for (code, took, n) in d.timings.lock().map(|t| t.clone()).unwrap_or_default() {
            eprintln!(
                "{code}: {:.3} s, {n} finding{}",
                took.as_secs_f64(),
                if n == 1 { "" } else { "s" }
            );
        }
    }
    drop(ctx);
    let period = format!("{} to {}", rfc3339(window.from), rfc3339(window.to));
    // Recording, and writing the alerts to the outbox, under the store's lock; printing and
    // sending after it, so a slow SMTP server or a pager never holds up an ingest.
    let mut queued = None;
    let (plan, benign) = if args.dry_run {
        let now = crate::clock::now_nanos().map_err(anyhow::Error::msg)?;
        let log = g.store.log()?;
        let history =
            crate::query::findings_table::session(&g.store, &log, g.config.query.memory_limit)
                .await?;
        let verdicts = triage::benign_verdicts(&history, now)
            .await
            .map_err(anyhow::Error::msg)?;
        let benign: Vec<(usize, triage::Verdict)> = findings
            .iter()
            .enumerate()
            .filter_map(|(i, f)| Some((i, triage::covering(f, &verdicts)?.clone())))
            .collect();
        (None, benign)
    } else {
        let quiet = g.quiet;
        let recorded = deliver::record_and_queue(
            &g.store,
            &g.config,
            &findings,
            &period,
            args.notify,
            LOCK_WAIT,
            || {
                if !quiet {
                    eprintln!(
                        "note: another vigil process is writing to the store; waiting up to {} s for it to finish",
                        LOCK_WAIT.as_secs()
                    );
                }
            },
        )
        .await
        .context("recording the findings (--dry-run looks without recording)")?;
        if !g.quiet {
            for w in &recorded.warnings {
                eprintln!("warning: {w}");
            }
            if recorded.migrated > 0 {
                eprintln!(
                    "note: took over {} alert record(s) from the outbox into the findings history",
                    recorded.migrated
                );
            }
        }
        let mut plan = recorded.plan;
        queued = recorded.queued;
        let benign = std::mem::take(&mut plan.benign);
        (Some(plan), benign)
    };
    if !benign.is_empty() {
        if !g.quiet {
            let mut verdicts: Vec<String> = benign
                .iter()
                .map(|(_, v)| terminal_safe(&v.describe()))
                .collect();
            verdicts.sort();
            verdicts.dedup();
            eprintln!(
                "note: left out {} finding(s) that benign verdicts cover: {}",
                benign.len(),
                verdicts.join("; ")
            );
        }
        let left_out: std::collections::HashSet<usize> = benign.iter().map(|(i, _)| *i).collect();
        findings = findings
            .into_iter()
            .enumerate()
            .filter(|(i, _)| !left_out.contains(i))
            .map(|(_, f)| f)
            .collect();
    }
    let format = args.format.unwrap_or(if std::io::stdout().is_terminal() {
        FindingsFormat::Table
    } else {
        FindingsFormat::Jsonl
    });
    let mut out = std::io::stdout().lock();
    write_findings(&mut out, &findings, format)?;
    out.flush()?;
    if !g.quiet {
        eprintln!(
            "{} finding{} in {period}",
            findings.len(),
            if findings.len() == 1 { "" } else { "s" }
        );
        if findings.is_empty() {
            if let Some(span) = empty_window(g, window) {
                eprintln!("note: the window holds no events; {span}");
            }
        }
        if let Some(p) = &plan {
            if p.recorded + p.known > 0 {
                eprintln!(
                    "findings history: {} recorded, {} recorded by an earlier run (vigil findings list)",
                    p.recorded, p.known
                );
            }
        }
    }
    let mut code = match fail_on {
        Some(level) if findings.iter().any(|f| f.severity >= level) => exit::FLAGGED,
        _ => exit::OK,
    };
    if let (Some(q), Some(plan)) = (&queued, &plan) {
        code = code.max(send_alerts(g, q, plan)?);
    }
    Ok(code)
}

/// How long `vigil detect` waits for the store's write lock (an ingest running) before giving
/// up: longer than a scheduled ingest of a day's logs takes.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(600);

/// Sends what waits in the outbox and says what became of this run's alert.
fn send_alerts(
    g: &Globals,
    queued: &crate::alert::Queued,
    plan: &triage::Plan,
) -> anyhow::Result<u8> {
    let sent = crate::alert::send(&g.config, g.store.root()).context("sending alerts")?;
    let mut code = exit::OK;
    let this_run = usize::from(!plan.send.is_empty());
    if !g.quiet {
        let earlier = sent
            .mail
            .sent_names
            .iter()
            .filter(|n| !queued.pending.contains(n))
            .count();
        if earlier > 0 {
            eprintln!("sent {earlier} alert message(s) that were waiting in the outbox");
        }
        if queued.alerts > this_run {
            eprintln!(
                "note: queued {} alert(s) that an interrupted run recorded and never queued",
                queued.alerts - this_run
            );
        }
        eprintln!(
            "alerts: {} new, {} already sent within [alerts] suppress_for, {} below [alerts] min_severity{}",
            plan.send.len(),
            plan.suppressed,
            plan.below_threshold,
            if plan.decided > 0 {
                format!(", {} handled by an earlier run", plan.decided)
            } else {
                String::new()
            }
        );
        for p in &queued.written {
            eprintln!("no [smtp] in vigil.toml: alert written to {}", p.display());
        }
    }
    if let Some(w) = &sent.webhook {
        if w.posted > 0 && !g.quiet {
            eprintln!("webhook: posted {} message(s)", w.posted);
        }
        if let Some(e) = &w.error {
            eprintln!(
                "error: {e}; {} webhook message(s) wait in {} and are posted by the next run",
                w.waiting,
                w.dir.display()
            );
            code = exit::ERROR;
        }
    }
    if let Some(reason) = &sent.mail.error {
        let waiting = queued
            .pending
            .iter()
            .filter(|n| !sent.mail.sent_names.contains(n))
            .count();
        let what = if waiting > 0 {
            "the alert was not sent"
        } else {
            "an alert message waiting in the outbox was not sent"
        };
        eprintln!(
            "error: {what}: {reason}; {} message(s) wait in {} and are sent by the next run",
            sent.mail.still_pending,
            g.config.outbox(g.store.root()).join("pending").display()
        );
        code = exit::ERROR;
    }
    Ok(code)
}

fn write_findings(
    out: &mut dyn Write,
    findings: &[Finding],
    format: FindingsFormat,
) -> anyhow::Result<()> {
    match format {
        FindingsFormat::Json => {
            serde_json::to_writer_pretty(&mut *out, findings)?;
            writeln!(out)?;
        }
        FindingsFormat::Jsonl => {
            for f in findings {
                serde_json::to_writer(&mut *out, f)?;
                writeln!(out)?;
            }
        }
        FindingsFormat::Table => {
            if findings.is_empty() {
                writeln!(out, "(no findings)")?;
                return Ok(());
            }
            let mut t = comfy_table::Table::new();
            t.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
            t.set_header([
                "severity",
                "code",
                "detector",
                "principal",
                "start",
                "explanation",
            ]);
            for f in findings {
                t.add_row([
                    f.severity.to_string(),
                    f.code.to_owned(),
                    f.detector.to_owned(),
                    terminal_safe(&detect::display_name(&f.actor_id, f.actor_name.as_deref())),
                    f.window_start.clone(),
                    terminal_safe(&f.explanation),
                ]);
            }
            writeln!(out, "{t}")?;
        }
        FindingsFormat::Markdown => {
            writeln!(out, "| severity | code | detector | principal | start | explanation |\n|---|---|---|---|---|---|")?;
            for f in findings {
                let cell = |s: &str| terminal_safe(s).replace('|', "\\|");
                writeln!(
                    out,
                    "| {} | {} | {} | {} | {} | {} |",
                    f.severity,
                    f.code,
                    f.detector,
                    cell(&detect::display_name(&f.actor_id, f.actor_name.as_deref())),
                    f.window_start,
                    cell(&f.explanation)
                )?;
            }
        }
    }
    Ok(())
}

pub fn detectors(args: DetectorsArgs) -> anyhow::Result<u8> {
    let all = detect::all();
    let mut out = std::io::stdout().lock();
    match args.code {
        None => {
            for d in &all {
                writeln!(
                    out,
                    "{}  {:<31} {:<8} {}",
                    d.code(),
                    d.name(),
                    d.default_severity(),
                    d.summary()
                )?;
            }
            writeln!(out, "\nvigil detectors CODE explains one; tune them in vigil.toml under [detectors.CODE].")?;
        }
        Some(code) => {
            let Some(d) = all
                .iter()
                .find(|d| d.code().eq_ignore_ascii_case(&code) || d.name() == code)
            else {
                bail!(
                    "no detector '{code}'; the detectors are {}",
                    all.iter().map(|d| d.code()).collect::<Vec<_>>().join(", ")
                );
            };
            writeln!(
                out,
                "{} {} (default severity {})\n\n{}\n",
                d.code(),
                d.name(),
                d.default_severity(),
                d.doc()
            )?;
            if d.params().is_empty() {
                writeln!(out, "Parameters: none besides enabled and severity.")?;
            } else {
                writeln!(
                    out,
                    "Parameters ([detectors.{}] in vigil.toml; also enabled, severity):",
                    d.code()
                )?;
                for p in d.params() {
                    writeln!(out, "  {} = {}    {}", p.name, p.default, p.doc)?;
                }
            }
        }
    }
    out.flush()?;
    Ok(exit::OK)
}

/// When no data file of the store meets `window` (from the commit log's time ranges, no file
/// opened): where the store's events are instead, so that "0 findings" over the wrong period
/// (`--since 24h` on an archive) is not read as "all is well".
fn empty_window(g: &Globals, window: crate::timerange::TimeRange) -> Option<String> {
    use crate::timerange::parse_instant;
    let log = g.store.log().ok()?;
    // A file whose range does not parse is never pruned on time by queries: nothing to say.
    let ranges: Vec<(i64, i64)> = log
        .files()
        .map(|f| {
            Some((
                parse_instant(&f.min_time).ok()?,
                parse_instant(&f.max_time).ok()?,
            ))
        })
        .collect::<Option<_>>()?;
    if ranges
        .iter()
        .any(|(lo, hi)| *hi >= window.from && *lo < window.to)
    {
        return None;
    }
    let first = ranges.iter().map(|r| r.0).min();
    let last = ranges.iter().map(|r| r.1).max();
    Some(match (first, last) {
        (Some(a), Some(b)) => format!(
            "the store's events run from {} to {} (pass --from/--to, or --at with --since)",
            rfc3339(a),
            rfc3339(b)
        ),
        _ => "the store holds no events yet".to_owned(),
    })
}
