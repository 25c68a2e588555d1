//! `vigil findings list | ack KEY | benign KEY`

use std::io::{IsTerminal, Write};

use anyhow::{bail, Context};

use super::{exit, Globals};
use crate::cli::{FindingsBenignArgs, FindingsCommand, FindingsListArgs};
use crate::detect::finding::sql_str;
use crate::findings::record::Recorder;
use crate::findings::verdict::{self, Verdict};
use crate::findings::{self, Status};
use crate::query::run_sql;
use crate::report::{write_batches_fitted, Format};
use crate::timerange::{parse_duration, parse_instant, rfc3339};

pub async fn run(g: &Globals, cmd: FindingsCommand) -> anyhow::Result<u8> {
    if !g.store.exists() {
        bail!(
            "no store at {} (run vigil ingest first, or pass --store DIR)",
            g.store.root().display()
        );
    }
    match cmd {
        FindingsCommand::List(args) => list(g, args).await,
        FindingsCommand::Ack(args) => {
            let by = analyst(args.by);
            give(
                g,
                &args.key,
                Verdict {
                    status: Status::Acknowledged,
                    by,
                    reason: args.reason,
                    until: None,
                },
            )
            .await
        }
        FindingsCommand::Benign(args) => benign(g, args).await,
    }
}

/// The columns `list` shows on a terminal; json and jsonl show every column.
const SHORT: &str = "status, severity, code, coalesce(actor_name, actor_id) AS principal, \
    window_start, key, detected_at, status_by, status_reason";

async fn list(g: &Globals, args: FindingsListArgs) -> anyhow::Result<u8> {
    let now = crate::clock::now_nanos().map_err(anyhow::Error::msg)?;
    let since = parse_duration(&args.since).map_err(|e| anyhow::anyhow!("--since: {e}"))?;
    let from = now.saturating_sub(i64::try_from(since.as_nanos()).unwrap_or(i64::MAX));
    let mut filters = vec![format!("detected_at >= {}", findings::ts(from))];
    if !args.status.is_empty() {
        let statuses = args
            .status
            .iter()
            .map(|s| Status::parse(s).map(|s| sql_str(s.as_str())))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| anyhow::anyhow!("--status: {e}"))?;
        filters.push(format!("status IN ({})", statuses.join(", ")));
    }
    if let Some(k) = &args.key {
        filters.push(format!("key = {}", sql_str(k)));
    }
    let format = args
        .format
        .unwrap_or_else(|| Format::default_for(std::io::stdout().is_terminal()));
    let columns = match format {
        Format::Json | Format::Jsonl => "*",
        _ => SHORT,
    };
    let sql = format!(
        "SELECT {columns} FROM findings WHERE {} ORDER BY detected_at DESC, \
         CASE severity WHEN 'critical' THEN 0 WHEN 'high' THEN 1 WHEN 'medium' THEN 2 WHEN 'low' THEN 3 ELSE 4 END, key, window_start",
        filters.join(" AND ")
    );
    let log = g.store.log()?;
    let ctx =
        crate::query::findings_table::session(&g.store, &log, g.config.query.memory_limit).await?;
    let batches = run_sql(&ctx, &sql, g.config.query.limits()).await?;
    let mut out = std::io::stdout().lock();
    write_batches_fitted(&mut out, &batches, format, crate::report::terminal_width())?;
    out.flush()?;
    if !g.quiet {
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        eprintln!(
            "{rows} finding(s) recorded since {}{}",
            rfc3339(from),
            if log.state.findings.is_empty() {
                " (none recorded yet: vigil detect records what it finds)"
            } else {
                ""
            }
        );
    }
    Ok(exit::OK)
}

async fn benign(g: &Globals, args: FindingsBenignArgs) -> anyhow::Result<u8> {
    if args.reason.trim().is_empty() {
        bail!("--reason must say why the access is fine: it is kept in the history and shown when a run leaves the key out");
    }
    let now = crate::clock::now_nanos().map_err(anyhow::Error::msg)?;
    let until = args
        .expires
        .as_deref()
        .map(|t| expiry(t, now))
        .transpose()
        .map_err(|e| anyhow::anyhow!("--expires: {e}"))?;
    if until.is_some_and(|t| t <= now) {
        bail!("--expires: the verdict would have expired already");
    }
    give(
        g,
        &args.key,
        Verdict {
            status: Status::Benign,
            by: analyst(args.by),
            reason: Some(args.reason),
            until,
        },
    )
    .await
}

/// `30d` from now, the end of a date (UTC), or an RFC 3339 time.
fn expiry(text: &str, now: i64) -> Result<i64, String> {
    if let Ok(d) = parse_duration(text) {
        return Ok(now.saturating_add(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)));
    }
    let t = parse_instant(text)?;
    // A bare date means the whole of that day, as in [[allowlist]] expires.
    Ok(
        if chrono::NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").is_ok() {
            t + crate::timerange::NANOS_PER_DAY
        } else {
            t
        },
    )
}

/// `--by`, else the login name.
fn analyst(by: Option<String>) -> String {
    by.or_else(|| std::env::var("USER").ok())
        .or_else(|| std::env::var("LOGNAME").ok())
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// How long a verdict waits for another writer (a detection run, an ingest).
const VERDICT_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

async fn give(g: &Globals, key: &str, verdict: Verdict) -> anyhow::Result<u8> {
    let quiet = g.quiet;
    let outbox = g.config.outbox(g.store.root());
    let mut r = Recorder::begin(&g.store, g.config.query.memory_limit, &outbox, VERDICT_WAIT, || {
        if !quiet {
            eprintln!(
                "note: another vigil process is writing to the store; waiting up to {} s for it to finish",
                VERDICT_WAIT.as_secs()
            );
        }
    })
    .context("recording the verdict")?;
    let now = r.now();
    for w in r.take_warnings() {
        eprintln!("warning: {w}");
    }
    let history = r.history().await?;
    let rows = verdict::rows(&history, key, &verdict, now)
        .await
        .map_err(anyhow::Error::msg)?;
    let n = rows.len();
    r.commit(rows).context("recording the verdict")?;
    if !g.quiet {
        if n == 0 {
            eprintln!(
                "every finding with key {key} is {} already",
                match verdict.status {
                    Status::Acknowledged => "acknowledged or judged benign",
                    _ => "judged benign with that reason and expiry",
                }
            );
        } else {
            eprintln!(
                "{n} finding(s) with key {key} marked {}{}",
                verdict.status,
                match (verdict.status, verdict.until) {
                    (Status::Benign, Some(t)) =>
                        format!("; later runs leave the key out until {}", rfc3339(t)),
                    (Status::Benign, None) =>
                        "; later runs leave the key out (no expiry)".to_owned(),
                    _ => String::new(),
                }
            );
        }
    }
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiries() {
        let now = parse_instant("2026-03-10T12:00:00Z").unwrap();
        assert_eq!(rfc3339(expiry("30d", now).unwrap()), "2026-04-09T12:00:00Z");
        assert_eq!(
            rfc3339(expiry("2026-03-12", now).unwrap()),
            "2026-03-13T00:00:00Z"
        );
        assert_eq!(
            rfc3339(expiry("2026-03-12T08:00:00Z", now).unwrap()),
            "2026-03-12T08:00:00Z"
        );
        assert!(expiry("soon", now).is_err());
    }
}
