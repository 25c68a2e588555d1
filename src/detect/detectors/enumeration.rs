use std::collections::BTreeMap;

use super::*;
use crate::detect::finding::numbers;
use crate::detect::{DetectorSettings, Param};

/// VG009 enumeration.
const MIN_SECRETS: Param = Param {
    name: "min_secrets",
    default: 20.0,
    doc: "distinct secrets in one window",
};
const WINDOW_MINUTES: Param = Param {
    name: "window_minutes",
    default: 10.0,
    doc: "length of the window",
};
const LOOKBACK_DAYS: Param = Param {
    name: "lookback_days",
    default: 30.0,
    doc: "history for the principal's own busiest window",
};

pub struct Enumeration;

const DOC: &str = "\
What: a principal reads many distinct secrets within a few minutes (default 20 in 10 minutes),
more than twice its own busiest such window in the lookback.
Why: an attacker with a foothold lists and reads everything reachable; Elastic (cardinality 20 in
6 minutes), Panther (15 in 30 minutes) and Sigma value_count rules look for this breadth.
Method: distinct secrets per principal in windows of window_minutes, evaluated at two offsets
(half a window apart) so that a sweep across a boundary is still counted whole. The lookback is
read from the hourly rollups first (distinct secrets per hour bound every window inside the
hour); only the hours that could hold half the sweep are counted from events, so the finding
names the busiest window exactly when it can and otherwise the bound it proved.
Tuning: min_secrets, window_minutes, lookback_days; allowlist deployers that read a whole
environment on each release.
False positives: deploy pipelines, secret-sync operators (External Secrets, CSI drivers).";

const SQL: &str = "
WITH bucketed AS (
  SELECT actor_id, actor_name, arrow_cast(resource_id, 'Utf8') AS resource_id, event_time,
         (CAST(event_time AS BIGINT) - $offset) / $width AS bucket
  FROM secret_reads
  WHERE actor_id IS NOT NULL AND resource_id IS NOT NULL AND event_time >= $from AND event_time < $to)
SELECT actor_id, max(actor_name) AS actor_name, bucket, count(DISTINCT resource_id) AS secrets,
       count(*) AS reads, min(event_time) AS first_read, max(event_time) AS last_read,
       array_agg(DISTINCT resource_id) AS resources
FROM bucketed
GROUP BY actor_id, bucket
HAVING count(DISTINCT resource_id) >= $min_secrets
ORDER BY actor_id, first_read";

/// Distinct secrets per hour of each swept principal in the lookback, from the hourly rollups:
/// a window inside an hour cannot hold more, so only the hours that reach half a sweep need
/// their events counted (the history of a busy estate is 10 M events, its rollups a few hundred
/// thousand rows).
const HOURS: &str = "
SELECT actor_id, hour, count(DISTINCT resource_id) AS secrets
FROM event_counts
WHERE is_secret_read AND resource_id IS NOT NULL AND actor_id IN (vigil_swept)
  AND last_time >= $hist_from AND first_time < $from
GROUP BY actor_id, hour";

/// The busiest window of each principal within the given time ranges (`vigil_ranges` is
/// replaced by their condition).
const WINDOWS: &str = "
WITH bucketed AS (
  SELECT actor_id, resource_id, CAST(event_time AS BIGINT) / $width AS bucket
  FROM secret_reads
  WHERE resource_id IS NOT NULL AND event_time >= $lo AND event_time < $hi AND (vigil_ranges)),
per AS (SELECT actor_id, bucket, count(DISTINCT resource_id) AS secrets FROM bucketed GROUP BY actor_id, bucket)
SELECT actor_id, max(secrets) AS max_secrets FROM per GROUP BY actor_id";

/// Above this many hours to count for one principal, its whole lookback is counted instead (one
/// range instead of a long OR).
const MAX_RANGES: usize = 200;

/// Busiest hours of a principal counted from events even when they cannot reach half a sweep.
const BUSIEST_HOURS: usize = 3;

/// Hours of a principal counted first (its latest that could hold half a sweep): a principal
/// that swept as widely before is usually settled by them, reading a few days' files.
const FIRST_ROUND_HOURS: usize = 8;

/// What the lookback says about one swept principal.
#[derive(Debug, Clone, Default)]
struct History {
    /// Its busiest hour's distinct secrets (0: no reads in the lookback).
    max_per_hour: i64,
    /// Its busiest window among the hours that could reach `threshold`.
    max_counted: i64,
    /// Windows below this many distinct secrets were not all counted.
    threshold: i64,
    /// The most distinct secrets of an hour whose events were not counted.
    uncounted_per_hour: i64,
    /// No hour left out could beat `max_counted`: it is the busiest window.
    exact: bool,
}

#[async_trait::async_trait]
impl Detector for Enumeration {
    fn code(&self) -> &'static str {
        "VG009"
    }
    fn name(&self) -> &'static str {
        "enumeration"
    }
    fn summary(&self) -> &'static str {
        "a principal reads many distinct secrets within minutes"
    }
    fn doc(&self) -> &'static str {
        DOC
    }
    fn default_severity(&self) -> Severity {
        Severity::High
    }
    fn look_every(&self, s: &DetectorSettings) -> Option<i64> {
        Some(
            s.minutes_nanos(WINDOW_MINUTES)
                .max(crate::timerange::NANOS_PER_MINUTE),
        )
    }
    fn params(&self) -> &'static [Param] {
        &[MIN_SECRETS, WINDOW_MINUTES, LOOKBACK_DAYS]
    }
    async fn detect(
        &self,
        d: &DetectContext<'_>,
        s: &DetectorSettings,
    ) -> Result<Vec<Finding>, QueryError> {
        let width = s.minutes_nanos(WINDOW_MINUTES).max(1);
        let mut hits: Vec<Row> = Vec::new();
        for offset in [0, width / 2] {
            let mut params = bounds(d, 0);
            params.push(("offset", rows::int(offset as f64)));
            params.push(("width", rows::int(width as f64)));
            params.push(("min_secrets", rows::int(s.get(MIN_SECRETS))));
            hits.extend(query(d, SQL, params).await?);
        }
        if hits.is_empty() {
            return Ok(Vec::new());
        }
        let days = store_history_days(d).await?.min(s.get(LOOKBACK_DAYS));
        // Per principal, keep the widest sweep among overlapping windows.
        hits.sort_by(|a, b| {
            (
                rows::text(a, "actor_id"),
                -rows::n(a, "secrets") as i64,
                rows::time(a, "first_read"),
            )
                .cmp(&(
                    rows::text(b, "actor_id"),
                    -rows::n(b, "secrets") as i64,
                    rows::time(b, "first_read"),
                ))
        });
        let mut kept: Vec<Row> = Vec::new();
        for h in hits {
            let overlaps = kept.iter().any(|k| {
                rows::s(k, "actor_id") == rows::s(&h, "actor_id")
                    && rows::time(k, "first_read") <= rows::time(&h, "last_read")
                    && rows::time(&h, "first_read") <= rows::time(k, "last_read")
            });
            if !overlaps {
                kept.push(h);
            }
        }
        // A sweep of n fires when no earlier window reached n/2: per principal, the smallest
        // kept sweep says which hours can matter, the largest whether any still alerts.
        let mut sweeps: BTreeMap<String, (i64, i64)> = Default::default();
        for r in &kept {
            let n = rows::n(r, "secrets") as i64;
            let half = (n + 1) / 2;
            let t = sweeps.entry(rows::text(r, "actor_id")).or_insert((half, n));
            *t = (t.0.min(half), t.1.max(n));
        }
        let hist = history(d, s, width, &sweeps).await?;
        let mut out = Vec::new();
        for r in kept {
            let actor = rows::text(&r, "actor_id");
            let n = rows::n(&r, "secrets");
            let h = hist.get(&actor).cloned().unwrap_or_default();
            // Every window that could reach n/2 was counted: none did, or this is no sweep.
            if n <= 2.0 * h.max_counted as f64 {
                continue;
            }
            let resources = rows::list(&r, "resources");
            let mut f = finding(
                self,
                self.default_severity(),
                &actor,
                rows::s(&r, "actor_name"),
                resources,
                rows::s(&r, "first_read").unwrap_or(""),
                rows::s(&r, "last_read").unwrap_or(""),
                None,
            );
            f.cold_start = h.max_per_hour == 0;
            f.score = (1.0 - s.get(MIN_SECRETS) / (2.0 * n)).clamp(0.5, 1.0);
            f.observed = numbers([
                ("distinct_secrets", int(n)),
                ("reads", int(rows::n(&r, "reads"))),
            ]);
            let minutes = s.get(WINDOW_MINUTES);
            let mut baseline = vec![
                ("max_distinct_secrets_per_hour", int(h.max_per_hour as f64)),
                ("window_minutes", int(minutes)),
            ];
            let busiest = if h.exact {
                baseline.push(("max_distinct_secrets_per_window", int(h.max_counted as f64)));
                format!(
                    "its busiest {minutes:.0}-minute window in the last {days:.0} days had {}",
                    h.max_counted
                )
            } else {
                format!(
                    "none of its {minutes:.0}-minute windows in the last {days:.0} days had {} or more (its busiest hour had {})",
                    h.threshold, h.max_per_hour
                )
            };
            f.baseline = baseline
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect();
            f.explanation = format!(
                "{} read {n} distinct secrets within {minutes:.0} minutes; {busiest}.",
                who(&r)
            );
            out.push(f);
        }
        Ok(out)
    }
}

/// The lookback of each swept principal (`sweeps`: principal -> half its smallest sweep, its
/// largest sweep): distinct secrets per hour from the rollups, then windows counted from events
/// only in the hours that could reach half a sweep, latest first: the first
/// [`FIRST_ROUND_HOURS`] of each principal, and the rest only for a principal that one of its
/// sweeps would still alert on.
async fn history(
    d: &DetectContext<'_>,
    s: &DetectorSettings,
    width: i64,
    sweeps: &BTreeMap<String, (i64, i64)>,
) -> Result<BTreeMap<String, History>, QueryError> {
    use crate::detect::finding::sql_str;
    let lookback = s.days_nanos(LOOKBACK_DAYS);
    let (lo, hi) = (d.window.from.saturating_sub(lookback), d.window.from);
    let swept: Vec<String> = sweeps.keys().map(|a| sql_str(a)).collect();
    let mut per_hour: BTreeMap<String, Vec<(i64, i64)>> = Default::default();
    let sql = HOURS.replace("vigil_swept", &swept.join(", "));
    for batch in rows::batches(d.ctx, &sql, bounds(d, lookback), d.limits).await? {
        let actors = typed::strings(&batch, "actor_id")?;
        let hours = typed::nanos(&batch, "hour")?;
        let secrets = typed::ints(&batch, "secrets")?;
        for ((a, h), n) in actors.into_iter().zip(hours).zip(secrets) {
            if let (Some(a), Some(h), Some(n)) = (a, h, n) {
                per_hour.entry(a).or_default().push((h, n));
            }
        }
    }
    // A window that divides the hour lies inside one; a longer or uneven one spans `reach`
    // hours on either side, and the sum of their counts bounds it.
    let reach = if HOUR % width == 0 {
        0
    } else {
        (width + HOUR - 1) / HOUR
    };
    let mut out = BTreeMap::new();
    // Per principal, the hours to count, latest first.
    let mut todo: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for (actor, (threshold, _)) in sweeps {
        let mut hours = per_hour.remove(actor).unwrap_or_default();
        hours.sort_unstable();
        let bound = |h: i64| -> i64 {
            hours
                .iter()
                .filter(|(k, _)| (k - h).abs() <= reach * HOUR)
                .map(|(_, n)| n)
                .sum()
        };
        let max_per_hour = hours.iter().map(|(_, n)| *n).max().unwrap_or(0);
        // Hours that could hold half a sweep, and the latest few of its busiest hours: when a
        // window there holds all of its hour, that is the busiest window, named exactly.
        let mut candidates: Vec<(i64, i64)> = hours
            .iter()
            .filter(|(h, _)| bound(*h) >= *threshold)
            .copied()
            .collect();
        let busiest = hours.iter().rev().filter(|(_, n)| *n == max_per_hour);
        for (h, n) in busiest.take(BUSIEST_HOURS) {
            if !candidates.iter().any(|c| c.0 == *h) {
                candidates.push((*h, *n));
            }
        }
        // Latest first: the first round then reads the last days' files only.
        candidates.sort_unstable_by_key(|c| std::cmp::Reverse(c.0));
        out.insert(
            actor.clone(),
            History {
                max_per_hour,
                max_counted: 0,
                threshold: *threshold,
                uncounted_per_hour: max_per_hour,
                exact: false,
            },
        );
        todo.insert(actor.clone(), candidates.into_iter().map(|c| c.0).collect());
        per_hour.insert(actor.clone(), hours);
    }
    let mut counted: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for round in 0..2 {
        let mut conditions = Vec::new();
        // The span of this round's hours: the files outside it are not opened.
        let (mut first, mut last) = (hi, lo);
        for (actor, hours) in &mut todo {
            let h = &out[actor];
            // After the first round, only a principal one of whose sweeps still alerts.
            if round > 0 && sweeps[actor].1 <= 2 * h.max_counted {
                continue;
            }
            let take = if round == 0 {
                FIRST_ROUND_HOURS.min(hours.len())
            } else {
                hours.len()
            };
            let now: Vec<i64> = hours.drain(..take).collect();
            if now.is_empty() {
                continue;
            }
            let whole = round > 0 && now.len() > MAX_RANGES;
            if whole {
                (first, last) = (lo, hi);
            }
            for h in &now {
                first = first.min(h - reach * HOUR);
                last = last.max(h + (reach + 1) * HOUR);
            }
            conditions.push(ranges_condition(actor, &now, reach, (lo, hi), whole));
            counted.entry(actor.clone()).or_default().extend(now);
        }
        if conditions.is_empty() {
            continue;
        }
        let sql = WINDOWS.replace("vigil_ranges", &conditions.join(" OR "));
        let params = vec![
            ("width", rows::int(width as f64)),
            ("lo", rows::ts(first.max(lo))),
            ("hi", rows::ts(last.min(hi))),
        ];
        for batch in rows::batches(d.ctx, &sql, params, d.limits).await? {
            let actors = typed::strings(&batch, "actor_id")?;
            let max = typed::ints(&batch, "max_secrets")?;
            for (a, m) in actors.into_iter().zip(max) {
                if let (Some(h), Some(m)) = (a.and_then(|a| out.get_mut(&a)), m) {
                    h.max_counted = h.max_counted.max(m);
                }
            }
        }
    }
    // The counted maximum is the busiest window when no hour left out could beat it: once
    // every candidate is counted, each window left out holds fewer than `threshold` secrets,
    // and a window inside an hour no more than its hour.
    for (actor, h) in &mut out {
        let done = counted.get(actor).map(Vec::as_slice).unwrap_or(&[]);
        h.uncounted_per_hour = per_hour[actor]
            .iter()
            .filter(|(k, _)| !done.contains(k))
            .map(|(_, n)| *n)
            .max()
            .unwrap_or(0);
        let all_candidates = todo[actor].is_empty();
        h.exact = (all_candidates && h.max_counted >= h.threshold)
            || (reach == 0 && h.max_counted >= h.uncounted_per_hour);
    }
    Ok(out)
}

/// `actor_id = A AND (event_time in one of the hours, with `reach` hours either side)`, or
/// its whole lookback when `whole`.
fn ranges_condition(
    actor: &str,
    hours: &[i64],
    reach: i64,
    (lo, hi): (i64, i64),
    whole: bool,
) -> String {
    use crate::detect::finding::sql_str;
    let ranges: Vec<(i64, i64)> = if whole {
        vec![(lo, hi)]
    } else {
        let mut sorted = hours.to_vec();
        sorted.sort_unstable();
        merge_ranges(
            sorted
                .iter()
                .map(|h| (h - reach * HOUR, h + (reach + 1) * HOUR)),
        )
    };
    let ranges: Vec<String> = ranges
        .iter()
        .map(|(a, b)| {
            format!(
                "(event_time >= TIMESTAMP {} AND event_time < TIMESTAMP {})",
                sql_str(&rfc3339((*a).max(lo))),
                sql_str(&rfc3339((*b).min(hi)))
            )
        })
        .collect();
    format!(
        "(actor_id = {} AND ({}))",
        sql_str(actor),
        ranges.join(" OR ")
    )
}

/// Sorted, overlapping or touching ranges merged.
fn merge_ranges(ranges: impl Iterator<Item = (i64, i64)>) -> Vec<(i64, i64)> {
    let mut out: Vec<(i64, i64)> = Vec::new();
    for (a, b) in ranges {
        match out.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}
