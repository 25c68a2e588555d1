//! `vigil backtest`: replays the detectors over a past range, window after window as time moves
//! forward (each window judged only against the history before it), and with labels scores them.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, Context};
use serde::Deserialize;

use super::{exit, Globals};
use crate::cli::BacktestArgs;
use crate::detect::{self, DetectContext, Finding, Severity};
use crate::query::session;
use crate::timerange::{parse_duration, parse_instant, rfc3339, TimeRange};

#[derive(Debug, Deserialize)]
struct Labels {
    anomalies: Vec<Label>,
}

#[derive(Debug, Deserialize)]
struct Label {
    kind: String,
    actor_id: String,
    start: String,
    end: String,
    /// What was planted (written by `vigil generate`; optional).
    #[serde(default)]
    note: String,
}

const HOUR: i64 = crate::timerange::NANOS_PER_HOUR;

/// The labels' matching rule (docs/generator.md): same actor, and the finding's window overlaps
/// [start − 1h, end + 1h].
fn matches(f: &Finding, l: &Label) -> bool {
    let (Ok(ls), Ok(le)) = (parse_instant(&l.start), parse_instant(&l.end)) else {
        return false;
    };
    let (Ok(fs), Ok(fe)) = (parse_instant(&f.window_start), parse_instant(&f.window_end)) else {
        return false;
    };
    f.actor_id == l.actor_id && fs <= le + HOUR && fe >= ls - HOUR
}

pub async fn run(g: &Globals, args: BacktestArgs) -> anyhow::Result<u8> {
    let from = parse_instant(&args.from).map_err(|e| anyhow::anyhow!("--from: {e}"))?;
    let to = parse_instant(&args.to).map_err(|e| anyhow::anyhow!("--to: {e}"))?;
    let step = parse_duration(&args.step).map_err(|e| anyhow::anyhow!("--step: {e}"))?;
    let step = i64::try_from(step.as_nanos()).unwrap_or(i64::MAX);
    if step < 60_000_000_000 {
        bail!(
            "--step {} is too short: each window runs every detector; use 1m or more",
            args.step
        );
    }
    if from >= to {
        bail!("the range is empty: --from must be before --to");
    }
    // One window for the whole range at most (a huge step would overflow the arithmetic below).
    let step = step.min(to - from);
    let mut labels: Option<Labels> = match &args.labels {
        Some(p) => Some(
            serde_json::from_str(
                &std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
            )
            .with_context(|| format!("{} is not a labels file ({{\"anomalies\": [{{\"kind\", \"actor_id\", \"start\", \"end\"}}]}}, as vigil generate writes)", p.display()))?,
        ),
        None => None,
    };
    if let (Some(l), Some(p)) = (&labels, &args.labels) {
        for (i, a) in l.anomalies.iter().enumerate() {
            for (field, t) in [("start", &a.start), ("end", &a.end)] {
                if let Err(e) = parse_instant(t) {
                    bail!("{}: anomalies[{i}].{field}: {e}", p.display());
                }
            }
        }
    }
    if !g.store.exists() {
        bail!(
            "no store at {} (run vigil ingest first, or pass --store DIR)",
            g.store.root().display()
        );
    }
    let ctx = session(&g.store, &g.config.query).await?;
    let only = (!args.only.is_empty()).then_some(args.only.as_slice());
    let suppress = i64::try_from(g.config.alerts.suppress_for.as_nanos()).unwrap_or(i64::MAX);
    let mut findings: Vec<Finding> = Vec::new();
    // Alerts a team would have received: findings minus those suppressed by an earlier one.
    let mut last_alert: BTreeMap<String, i64> = BTreeMap::new();
    let mut alerts_per_day: BTreeMap<String, usize> = BTreeMap::new();
    // Per detector, the windows in which it said it was quiet or on a static rule (cold start).
    let mut cold_windows: BTreeMap<String, usize> = BTreeMap::new();
    let steps = ((to - from + step - 1) / step) as usize;
    let mut t = from;
    let mut done = 0;
    while t < to {
        let window = TimeRange {
            from: t,
            to: (t + step).min(to),
        };
        let d = DetectContext::new(&ctx, window, &g.config.query, &g.config.detect);
        for f in detect::run(&d, only).await? {
            let day = rfc3339(window.from)[..10].to_owned();
            let send = last_alert
                .get(&f.key)
                .is_none_or(|prev| window.from - prev >= suppress);
            if send && f.severity >= g.config.alerts.min_severity {
                last_alert.insert(f.key.clone(), window.from);
                *alerts_per_day.entry(day).or_default() += 1;
            }
            findings.push(f);
        }
        let cold: BTreeSet<String> = d
            .take_notes()
            .iter()
            .filter_map(|n| n.split_whitespace().next().map(str::to_owned))
            .collect();
        for code in cold {
            *cold_windows.entry(code).or_default() += 1;
        }
        t += step;
        done += 1;
        if g.stderr_is_terminal && !g.quiet {
            eprint!(
                "\rbacktest: {done}/{steps} windows, {} findings",
                findings.len()
            );
        }
    }
    if g.stderr_is_terminal && !g.quiet {
        eprintln!();
    }
    if !g.quiet {
        for (code, n) in &cold_windows {
            eprintln!(
                "note: {code} said it was quiet or on its static rule in {n} of {done} windows (too little history; vigil detect over such a window says why)"
            );
        }
    }
    // Only anomalies inside the replayed range can be found: the others are not scored, unless
    // a finding matches one anyway (a finding's window can reach before or after the range).
    if let Some(l) = &mut labels {
        let before = l.anomalies.len();
        l.anomalies.retain(|a| {
            let (s, e) = (
                parse_instant(&a.start).unwrap_or(i64::MIN),
                parse_instant(&a.end).unwrap_or(i64::MAX),
            );
            (e.saturating_add(HOUR) >= from && s.saturating_sub(HOUR) <= to)
                || findings.iter().any(|f| matches(f, a))
        });
        let outside = before - l.anomalies.len();
        if outside > 0 && !g.quiet {
            eprintln!(
                "note: {outside} of {before} labelled anomalies lie outside --from/--to and are not scored"
            );
        }
    }
    // A label counts as found only by a finding a team is told of (`[alerts] min_severity`):
    // an info finding that happens to match it was reported, not alerted.
    let min = g.config.alerts.min_severity;
    let alerted = |f: &Finding| f.severity >= min;
    let codes: BTreeMap<&str, &str> = detect::all()
        .iter()
        .map(|d| (d.name(), d.code()))
        .collect::<Vec<_>>()
        .into_iter()
        .collect();
    let mut rows = Vec::new();
    for (name, code) in &codes {
        if only.is_some_and(|o| !o.iter().any(|c| c == code)) {
            continue;
        }
        let mine: Vec<&Finding> = findings.iter().filter(|f| f.detector == *name).collect();
        let keys: BTreeSet<&str> = mine.iter().map(|f| f.key.as_str()).collect();
        let mut row = serde_json::json!({"code": code, "detector": name, "findings": mine.len(), "distinct_keys": keys.len()});
        if let Some(l) = &labels {
            // Findings that match no label of any kind: what a team would have read for nothing.
            let unmatched: Vec<&&Finding> = mine
                .iter()
                .filter(|f| !l.anomalies.iter().any(|a| matches(f, a)))
                .collect();
            row["unmatched"] = unmatched.len().into();
            row["unmatched_medium_plus"] = unmatched
                .iter()
                .filter(|f| f.severity >= Severity::Medium)
                .count()
                .into();
            let meant: Vec<&Label> = l.anomalies.iter().filter(|a| a.kind == *name).collect();
            let tp = mine
                .iter()
                .filter(|f| alerted(f) && meant.iter().any(|a| matches(f, a)))
                .count();
            let found = meant
                .iter()
                .filter(|a| mine.iter().any(|f| alerted(f) && matches(f, a)))
                .count();
            row["labels"] = meant.len().into();
            row["labels_found"] = found.into();
            row["precision"] = if mine.is_empty() {
                serde_json::Value::Null
            } else {
                (tp as f64 / mine.len() as f64).into()
            };
            row["recall"] = if meant.is_empty() {
                serde_json::Value::Null
            } else {
                (found as f64 / meant.len() as f64).into()
            };
        }
        rows.push(row);
    }
    let days = ((to - from) as f64 / crate::timerange::NANOS_PER_DAY as f64).max(1.0 / 24.0);
    let total_alerts: usize = alerts_per_day.values().sum();
    // Per label, the detectors that found it (empty: missed).
    let label_results: Option<Vec<serde_json::Value>> = labels.as_ref().map(|l| {
        l.anomalies
            .iter()
            .map(|a| {
                let by = |alert: bool| -> BTreeSet<&str> {
                    findings
                        .iter()
                        .filter(|f| alerted(f) == alert && matches(f, a))
                        .map(|f| f.detector)
                        .collect()
                };
                serde_json::json!({"kind": a.kind, "actor_id": a.actor_id, "start": a.start,
                    "note": a.note, "found_by": by(true), "below_alert_by": by(false)})
            })
            .collect()
    });
    let mut summary = serde_json::json!({
        "from": rfc3339(from), "to": rfc3339(to), "windows": done, "findings": findings.len(),
        "alerts": total_alerts, "alerts_per_day": total_alerts as f64 / days,
        "alerts_by_day": alerts_per_day, "detectors": rows,
        "labels_found_by_any": labels.as_ref().map(|l| l.anomalies.iter().filter(|a| findings.iter().any(|f| alerted(f) && matches(f, a))).count()),
        "labels": labels.as_ref().map(|l| l.anomalies.len()),
        "label_results": label_results,
    });
    if args.list {
        summary["findings_list"] = serde_json::to_value(&findings)?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
        return Ok(exit::OK);
    }
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
    let with_labels = labels.is_some();
    let mut header = vec!["code", "detector", "findings", "keys"];
    if with_labels {
        header.extend([
            "unmatched",
            "medium+",
            "labels",
            "found",
            "precision",
            "recall",
        ]);
    }
    t.set_header(header);
    let fmt = |v: &serde_json::Value| match v.as_f64() {
        Some(x) if v.is_f64() => format!("{x:.2}"),
        _ => {
            if v.is_null() {
                "-".into()
            } else {
                v.to_string()
            }
        }
    };
    for r in &rows {
        let mut cells = vec![
            r["code"].as_str().unwrap_or("").to_owned(),
            r["detector"].as_str().unwrap_or("").to_owned(),
            r["findings"].to_string(),
            r["distinct_keys"].to_string(),
        ];
        if with_labels {
            cells.extend([
                r["unmatched"].to_string(),
                r["unmatched_medium_plus"].to_string(),
                r["labels"].to_string(),
                r["labels_found"].to_string(),
                fmt(&r["precision"]),
                fmt(&r["recall"]),
            ]);
        }
        t.add_row(cells);
    }
    if args.list {
        for f in &findings {
            println!(
                "{} {} {} {} {}: {}",
                f.window_start, f.code, f.severity, f.actor_id, f.key, f.explanation
            );
        }
    }
    println!("{t}");
    for r in label_results.iter().flatten() {
        if r["found_by"].as_array().is_some_and(Vec::is_empty) {
            println!(
                "missed: {} at {} by {}{}",
                r["kind"].as_str().unwrap_or(""),
                r["start"].as_str().unwrap_or(""),
                r["actor_id"].as_str().unwrap_or(""),
                match r["note"].as_str() {
                    Some(n) if !n.is_empty() => format!(" ({n})"),
                    _ => String::new(),
                }
            );
        }
    }
    println!(
        "{} windows of {}, {} findings, {} alerts after suppression ({:.1} per day){}",
        done,
        args.step,
        findings.len(),
        total_alerts,
        total_alerts as f64 / days,
        match (&labels, summary["labels_found_by_any"].as_u64()) {
            (Some(l), Some(n)) => format!(
                "; {n} of {} labelled anomalies found by some detector",
                l.anomalies.len()
            ),
            _ => String::new(),
        }
    );
    Ok(exit::OK)
}
