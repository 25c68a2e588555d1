//! What a `vigil detect` run records and alerts, decided against the findings history (under
//! the store's write lock, so two runs cannot both decide to send the same alert):
//!
//! - a finding a benign verdict covers (every key its alert would carry was judged benign, and
//!   the verdict has not expired) is left out of the output like an allowlisted one, recorded as
//!   `benign` under that verdict, and said in a note;
//! - a finding already recorded adds nothing, unless it is still `new` and this run alerts, or
//!   it is a grouped finding that gained a part (the new part is news);
//! - with `--notify`: below `[alerts] min_severity` it is `new`; when every key its alert would
//!   carry was alerted within `suppress_for` it is `suppressed`; otherwise it is `alerted`, in
//!   this run's message.

use std::collections::{HashMap, HashSet};

use datafusion::prelude::SessionContext;

use super::{query, ts, FindingRow, Status};
use crate::detect::{Finding, Severity};

/// The alert settings a run with `--notify` applies.
#[derive(Debug, Clone, Copy)]
pub struct Alerting {
    pub min_severity: Severity,
    /// `[alerts] suppress_for`, nanoseconds.
    pub suppress_for: i64,
}

/// A benign verdict in force.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// The finding key the analyst judged.
    pub key: String,
    pub by: Option<String>,
    pub reason: Option<String>,
    pub until: Option<i64>,
}

impl Verdict {
    /// `judged benign by alice on ...: nightly batch job (until ...)`.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "{} was judged benign by {}",
            self.key,
            self.by.as_deref().unwrap_or("an analyst")
        );
        if let Some(r) = &self.reason {
            s.push_str(&format!(": {r}"));
        }
        match self.until {
            Some(t) => s.push_str(&format!(" (until {})", crate::timerange::rfc3339(t))),
            None => s.push_str(" (no expiry)"),
        }
        s
    }
}

/// The decision for one run.
#[derive(Debug, Default)]
pub struct Plan {
    /// The id of this run's alert.
    pub alert_id: String,
    /// Rows to append (their `commit_seq` is set when they are staged).
    pub rows: Vec<FindingRow>,
    /// Indices (into the run's findings) of those to send now.
    pub send: Vec<usize>,
    /// Indices of those a benign verdict covers, with the verdict: left out of the output.
    pub benign: Vec<(usize, Verdict)>,
    /// Findings recorded for the first time.
    pub recorded: usize,
    /// Findings this run found that the history already had.
    pub known: usize,
    /// Left out of the alert: sent within `suppress_for`.
    pub suppressed: usize,
    /// Left out of the alert: below `min_severity`.
    pub below_threshold: usize,
    /// Known findings an earlier run already alerted, suppressed, or an analyst decided.
    pub decided: usize,
}

/// Benign verdicts in force at `now`, by every key they cover (a grouped finding's verdict
/// covers each of its parts). Only verdicts replace a verdict, so the newest benign row of each
/// finding is its verdict; only those rows are read.
pub async fn benign_verdicts(
    history: &SessionContext,
    now: i64,
) -> Result<HashMap<String, Verdict>, String> {
    let rows = latest(
        query(
            history,
            "SELECT * FROM finding_history WHERE status = 'benign'",
        )
        .await?,
    );
    let mut out = HashMap::new();
    for r in rows.into_values() {
        if r.status_until.is_some_and(|t| t <= now) {
            continue;
        }
        let verdict = Verdict {
            key: r.key.clone(),
            by: r.status_by.clone(),
            reason: r.status_reason.clone(),
            until: r.status_until,
        };
        for k in r.part_keys.iter().chain(std::iter::once(&r.key)) {
            out.insert(k.clone(), verdict.clone());
        }
    }
    Ok(out)
}

/// The newest row (highest `commit_seq`) of each finding among `rows`.
fn latest(rows: Vec<FindingRow>) -> HashMap<(String, i64, i64), FindingRow> {
    let mut out: HashMap<(String, i64, i64), FindingRow> = HashMap::new();
    for r in rows {
        match out.get(&r.id()) {
            Some(have) if have.commit_seq >= r.commit_seq => {}
            _ => {
                out.insert(r.id(), r);
            }
        }
    }
    out
}

/// The verdict covering every key of `f`'s alert, if one does.
pub fn covering<'v>(f: &Finding, verdicts: &'v HashMap<String, Verdict>) -> Option<&'v Verdict> {
    if !f.alert_keys().iter().all(|k| verdicts.contains_key(k)) {
        return None;
    }
    verdicts
        .get(&f.key)
        .or_else(|| f.alert_keys().first().and_then(|k| verdicts.get(k)))
}

/// Decides what a run that found `found` at `now` records and sends; `alerting` when it
/// notifies. `alert_id` names this run's message.
pub async fn plan(
    history: &SessionContext,
    found: &[Finding],
    now: i64,
    alerting: Option<Alerting>,
    alert_id: &str,
) -> Result<Plan, String> {
    let mut plan = Plan {
        alert_id: alert_id.to_owned(),
        ..Plan::default()
    };
    let verdicts = benign_verdicts(history, now).await?;
    let known = known(history, found).await?;
    let recent = match alerting {
        Some(a) => recently_alerted(history, now.saturating_sub(a.suppress_for)).await?,
        None => HashMap::new(),
    };
    let mut sending: HashSet<String> = HashSet::new();
    let mut seen: HashSet<(String, i64, i64)> = HashSet::new();
    for (i, f) in found.iter().enumerate() {
        let mut fresh = FindingRow::of(f, now, Status::New)?;
        // Detectors give each finding of a window its own key; one twice would get two rows
        // of one commit, and an arbitrary status.
        if !seen.insert(fresh.id()) {
            continue;
        }
        let before = known.get(&fresh.id());
        if let Some(b) = before {
            plan.known += 1;
            fresh.detected_at = b.detected_at;
        } else {
            plan.recorded += 1;
        }
        // Still to decide: never decided, or a grouped finding with a part it did not have (a
        // secret read late in the window is news).
        let open = before.is_none_or(|b| {
            b.status == Status::New || fresh.part_keys.iter().any(|k| !b.part_keys.contains(k))
        });
        if let Some(v) = covering(f, &verdicts) {
            if open {
                // The verdict stands for this finding too: it is benign, not open.
                let mut row = fresh.with_status(Status::Benign, now);
                row.status_by = v.by.clone();
                row.status_reason = v.reason.clone();
                row.status_until = v.until;
                plan.rows.push(row);
            }
            plan.benign.push((i, v.clone()));
            continue;
        }
        let Some(a) = alerting else {
            if before.is_none() {
                plan.rows.push(fresh);
            }
            continue;
        };
        if !open {
            plan.decided += 1;
            continue;
        }
        if f.severity < a.min_severity {
            plan.below_threshold += 1;
            if before.is_none() {
                plan.rows.push(fresh);
            }
        } else if let Some(at) = already_sent(f, &recent, &sending) {
            plan.suppressed += 1;
            let mut row = fresh.with_status(Status::Suppressed, now);
            row.status_reason = Some(match at {
                Some(t) => format!(
                    "sent at {} (within [alerts] suppress_for)",
                    crate::timerange::rfc3339(t)
                ),
                None => "sent in this run's alert".to_owned(),
            });
            plan.rows.push(row);
        } else {
            sending.extend(f.alert_keys().iter().cloned());
            let mut row = fresh.with_status(Status::Alerted, now);
            row.alert_id = Some(alert_id.to_owned());
            plan.rows.push(row);
            plan.send.push(i);
        }
    }
    Ok(plan)
}

/// The latest rows of the findings of `found` that the history has.
async fn known(
    history: &SessionContext,
    found: &[Finding],
) -> Result<HashMap<(String, i64, i64), FindingRow>, String> {
    let starts: Vec<i64> = found
        .iter()
        .filter_map(|f| crate::timerange::parse_instant(&f.window_start).ok())
        .collect();
    let (Some(lo), Some(hi)) = (starts.iter().min(), starts.iter().max()) else {
        return Ok(HashMap::new());
    };
    let rows = query(
        history,
        &format!(
            "SELECT * FROM finding_history WHERE window_start >= {} AND window_start <= {}",
            ts(*lo),
            ts(*hi)
        ),
    )
    .await?;
    Ok(latest(rows))
}

/// Keys alerted at or after `since`, with the newest time each was.
async fn recently_alerted(
    history: &SessionContext,
    since: i64,
) -> Result<HashMap<String, i64>, String> {
    let rows = query(
        history,
        &format!(
            "SELECT * FROM finding_history WHERE status = 'alerted' AND status_at >= {}",
            ts(since)
        ),
    )
    .await?;
    let mut out: HashMap<String, i64> = HashMap::new();
    for r in rows {
        for k in r.part_keys.iter().chain(std::iter::once(&r.key)) {
            let e = out.entry(k.clone()).or_insert(r.status_at);
            *e = (*e).max(r.status_at);
        }
    }
    Ok(out)
}

/// When every key of `f`'s alert was sent recently (the newest time: `Some`) or is in this
/// run's message already (`None`): a grouped finding with one new part is sent again, since
/// the new part is news.
fn already_sent(
    f: &Finding,
    recent: &HashMap<String, i64>,
    sending: &HashSet<String>,
) -> Option<Option<i64>> {
    let mut newest = None;
    for k in f.alert_keys() {
        match recent.get(k) {
            Some(t) => newest = Some(newest.map_or(*t, |n: i64| n.max(*t))),
            None if sending.contains(k) => {}
            None => return None,
        }
    }
    Some(newest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(key: &str, parts: &[&str]) -> Finding {
        let mut f = Finding::for_tests(key);
        f.part_keys = parts.iter().map(|p| (*p).to_owned()).collect();
        f
    }

    #[test]
    fn a_grouped_finding_is_suppressed_only_when_every_part_was_sent() {
        let recent: HashMap<String, i64> =
            [("VG001:a:s1".to_owned(), 1), ("VG001:a:s2".to_owned(), 2)].into();
        let none = HashSet::new();
        // The same two secrets again, in a window that overlaps the last one: suppressed.
        assert_eq!(
            already_sent(
                &finding("VG001:a:s1", &["VG001:a:s1", "VG001:a:s2"]),
                &recent,
                &none
            ),
            Some(Some(2))
        );
        // A third secret joined the group: sent, though its first secret (the key) was sent.
        assert_eq!(
            already_sent(
                &finding("VG001:a:s1", &["VG001:a:s1", "VG001:a:s2", "VG001:a:s3"]),
                &recent,
                &none
            ),
            None
        );
        // The first secret slid out of the window: the rest were sent, nothing new.
        assert!(already_sent(&finding("VG001:a:s2", &["VG001:a:s2"]), &recent, &none).is_some());
        // A plain finding goes by its key; one already in this run's message is not sent twice.
        assert_eq!(already_sent(&finding("VG009:b", &[]), &recent, &none), None);
        let sending: HashSet<String> = ["VG009:b".to_owned()].into();
        assert_eq!(
            already_sent(&finding("VG009:b", &[]), &recent, &sending),
            Some(None)
        );
    }

    /// A history of `rows` as table `finding_history`.
    fn history(rows: &[FindingRow]) -> SessionContext {
        let batch = crate::findings::row::to_batch(rows).unwrap();
        let table =
            datafusion::datasource::MemTable::try_new(batch.schema(), vec![vec![batch]]).unwrap();
        let ctx = SessionContext::new();
        ctx.register_table("finding_history", std::sync::Arc::new(table))
            .unwrap();
        ctx
    }

    fn windowed(key: &str, parts: &[&str]) -> Finding {
        let mut f = finding(key, parts);
        f.window_start = "2026-03-02T10:00:00Z".into();
        f.window_end = "2026-03-02T11:00:00Z".into();
        f
    }

    #[tokio::test]
    async fn a_decided_finding_is_decided_again_only_when_it_gains_a_part() {
        let alerting = Some(Alerting {
            min_severity: Severity::Low,
            suppress_for: crate::timerange::NANOS_PER_HOUR,
        });
        let first = windowed("VG001:a:s1", &["VG001:a:s1", "VG001:a:s2"]);
        let mut sent = FindingRow::of(&first, 100, Status::Alerted).unwrap();
        sent.alert_id = Some("alert-1".into());
        sent.commit_seq = 1;
        let h = history(&[sent]);
        // The same finding again: known, nothing to record or send.
        let p = plan(&h, std::slice::from_ref(&first), 200, alerting, "alert-2")
            .await
            .unwrap();
        assert_eq!((p.known, p.rows.len(), p.send.len()), (1, 0, 0));
        // The same window with a third secret read late: news, sent with the new content.
        let mut grown = windowed("VG001:a:s1", &["VG001:a:s1", "VG001:a:s2", "VG001:a:s3"]);
        grown.explanation = "three secrets".into();
        let p = plan(&h, &[grown], 200, alerting, "alert-2").await.unwrap();
        assert_eq!((p.known, p.send.len()), (1, 1));
        assert_eq!(p.rows.len(), 1);
        let row = &p.rows[0];
        assert_eq!(
            (
                row.status,
                row.alert_id.as_deref(),
                row.explanation.as_str()
            ),
            (Status::Alerted, Some("alert-2"), "three secrets")
        );
        assert_eq!(row.detected_at, 100, "first recorded at 100");
        // Without --notify a known finding adds nothing; a finding twice in a run counts once.
        let other = windowed("VG009:b", &[]);
        let p = plan(&h, &[first, other.clone(), other], 200, None, "alert-2")
            .await
            .unwrap();
        assert_eq!((p.known, p.recorded, p.rows.len()), (1, 1, 1));
        assert_eq!(p.rows[0].status, Status::New);
    }

    #[test]
    fn a_benign_verdict_covers_a_group_only_when_it_covers_every_part() {
        let v = Verdict {
            key: "VG001:a:s1".into(),
            by: Some("alice".into()),
            reason: Some("deploy job".into()),
            until: None,
        };
        let verdicts: HashMap<String, Verdict> = [
            ("VG001:a:s1".to_owned(), v.clone()),
            ("VG001:a:s2".to_owned(), v.clone()),
        ]
        .into();
        assert_eq!(
            covering(
                &finding("VG001:a:s1", &["VG001:a:s1", "VG001:a:s2"]),
                &verdicts
            ),
            Some(&v)
        );
        assert_eq!(
            covering(
                &finding("VG001:a:s2", &["VG001:a:s2", "VG001:a:s3"]),
                &verdicts
            ),
            None
        );
        assert_eq!(covering(&finding("VG009:a", &[]), &verdicts), None);
        assert!(v
            .describe()
            .contains("judged benign by alice: deploy job (no expiry)"));
    }
}
