use std::collections::BTreeMap;

use super::*;
use crate::detect::finding::{numbers, p_value, round};
use crate::detect::{DetectorSettings, Param};

/// VG006 unusual-hour.
const LOOKBACK_DAYS: Param = Param {
    name: "lookback_days",
    default: 28.0,
    doc: "history the profile is learned from",
};
const P_MIN: Param = Param {
    name: "p_min",
    default: 0.002,
    doc: "smoothed hour-of-day probability below which an hour is unusual",
};
const MIN_ACTIVE_DAYS: Param = Param {
    name: "min_active_days",
    default: 10.0,
    doc: "days with reads a principal needs",
};
const MIN_READS: Param = Param {
    name: "min_reads",
    default: 50.0,
    doc: "reads a principal needs",
};
const P_VALUE: Param = Param {
        name: "p_value",
        default: 0.01,
        doc: "the hour's reads must also be this unlikely given the reads the profile expects at that hour on an active day (Poisson tail)",
    };

pub struct UnusualHour;

const DOC: &str = "\
What: a principal reads secrets in an hour of the week (its own time zone, DST-correct) that its
learned profile says it almost never uses.
Why: workloads run on schedules and people keep habits; a nightly job at 14:00 or an analyst at
03:00 on a Sunday stands out against their own history (Elastic ML time_of_week, by entity).
Method: histogram of the principal's secret reads by local hour of day over the lookback,
smoothed with half of each neighbouring hour and a Laplace term alpha = 0.1;
P(hour) = (c(h) + (c(h-1) + c(h+1)) / 2 + alpha) / (2 * total + 24 * alpha). Fires when
P < p_min and the principal read at that hour of day on at most max_days_at_hour days of the
lookback (a share test alone flagged every quiet hour of workers with one busy nightly hour). (Hour of week would separate weekends, but with a few weeks of history a sparse 24x7
workload leaves hour-of-week cells empty by chance.)
The hour's reads must also be unlikely: Poisson tail of the reads observed against the reads
the profile expects in that hour on an active day (P(hour) x reads per active day) below p_value,
so one read in a rare hour by someone who reads a hundred times a day stays quiet, a nightly job
reading at 14:00 or a burst at 03:00 does not.
Cold start: a principal needs min_active_days days with reads and min_reads reads in the
lookback; below that it stays quiet.
Tuning: lookback_days (28), p_min (0.002), min_active_days (10), min_reads (50),
max_days_at_hour (2), p_value (0.01).
False positives: a shift change, the first on-call week of a new engineer.";

/// Hourly secret-read counts of the window's principals over the lookback (one row per
/// principal and hour), from the hourly rollups (`event_counts`): the lookback's hours, not its
/// events. Names come from [`WINDOW_NAMES`]: a `max(actor_name)` here cost a quarter of the
/// query at 10 M events.
pub const HOURLY_HISTORY: &str = "
SELECT e.actor_id, e.hour, sum(e.events) AS n
FROM (SELECT DISTINCT actor_id AS wanted FROM secret_reads
      WHERE event_time >= $from AND event_time < $to AND actor_id IS NOT NULL) w
JOIN event_counts e ON e.actor_id = w.wanted
WHERE e.is_secret_read AND e.last_time >= $hist_from AND e.first_time < $from
GROUP BY e.actor_id, e.hour";

/// The window's principals and the name each goes by (for per-principal time zones).
const WINDOW_NAMES: &str = "
SELECT actor_id, max(actor_name) AS actor_name FROM secret_reads
WHERE actor_id IS NOT NULL AND event_time >= $from AND event_time < $to
GROUP BY actor_id";

const WINDOW: &str = "
SELECT actor_id, max(actor_name) AS actor_name, max(actor_type) AS actor_type,
       date_trunc('hour', event_time) AS hour, count(*) AS reads,
       min(event_time) AS first_read, max(event_time) AS last_read,
       array_agg(DISTINCT resource_id) AS resources
FROM secret_reads
WHERE actor_id IS NOT NULL AND event_time >= $from AND event_time < $to
GROUP BY actor_id, date_trunc('hour', event_time)
ORDER BY hour, actor_id";

/// A principal's hour-of-week profile in its own time zone.
#[derive(Debug, Default, Clone)]
pub struct Profile {
    pub counts: Vec<f64>,
    pub total: f64,
    pub active_days: usize,
    /// Clock hours with reads, per local hour of day: the days the principal used that hour.
    pub days_at_hour: Vec<u32>,
    /// Counts per UTC hour start (nanos), for seasonal baselines.
    pub hourly: BTreeMap<i64, f64>,
}

impl Profile {
    /// Smoothed probability of the local hour of day of hour-of-week `how`, over all weekdays:
    /// (c(h) + (c(h-1) + c(h+1)) / 2 + alpha) / (2 * total + 24 * alpha), alpha = 0.1. Hour of
    /// day rather than hour of week: with weeks of history, a sparse 24x7 workload leaves many
    /// hour-of-week cells empty by chance, but no hour of the day.
    pub fn p(&self, how: usize) -> f64 {
        let hod = |h: usize| -> f64 { (0..7).map(|d| self.counts[d * 24 + h % 24]).sum() };
        let h = how % 24;
        let alpha = 0.1;
        let smoothed = hod(h) + (hod(h + 23) + hod(h + 1)) / 2.0 + alpha;
        smoothed / (2.0 * self.total + 24.0 * alpha)
    }

    /// Reads in the local hour of day of `how`, all weekdays.
    pub fn hour_of_day_count(&self, how: usize) -> f64 {
        (0..7).map(|d| self.counts[d * 24 + how % 24]).sum()
    }
}

/// Hour of the week, Monday 00:00 = 0, in the principal's zone.
pub fn hour_of_week(
    d: &DetectContext<'_>,
    nanos: i64,
    actor_id: &str,
    actor_name: Option<&str>,
) -> usize {
    use chrono::{Datelike, Timelike};
    let l = d.query.calendar.local(nanos, Some(actor_id), actor_name);
    l.weekday().num_days_from_monday() as usize * 24 + l.hour() as usize
}

/// Profiles of the principals active in the window, from their history.
/// Hour profiles by principal.
pub type Profiles = BTreeMap<String, Profile>;

/// Profiles of the principals active in the window, shared by the detectors of one run.
pub async fn profiles(
    d: &DetectContext<'_>,
    lookback: i64,
) -> Result<std::sync::Arc<Profiles>, QueryError> {
    let mut cache = d.cache.profiles.lock().await;
    if let Some(p) = cache.get(&lookback) {
        return Ok(p.clone());
    }
    let p = std::sync::Arc::new(compute_profiles(d, lookback).await?);
    cache.insert(lookback, p.clone());
    Ok(p)
}

async fn compute_profiles(d: &DetectContext<'_>, lookback: i64) -> Result<Profiles, QueryError> {
    let mut out: BTreeMap<String, Profile> = BTreeMap::new();
    let mut days: BTreeMap<String, std::collections::BTreeSet<i64>> = BTreeMap::new();
    let names: BTreeMap<String, Option<String>> = query(d, WINDOW_NAMES, bounds(d, lookback))
        .await?
        .into_iter()
        .map(|r| {
            (
                rows::text(&r, "actor_id"),
                rows::s(&r, "actor_name").map(str::to_owned),
            )
        })
        .collect();
    for r in query(d, HOURLY_HISTORY, bounds(d, lookback)).await? {
        let actor = rows::text(&r, "actor_id");
        let Some(hour) = rows::time(&r, "hour") else {
            continue;
        };
        let n = rows::n(&r, "n");
        let name = names.get(&actor).and_then(|n| n.as_deref());
        let how = hour_of_week(d, hour, &actor, name);
        let p = out.entry(actor.clone()).or_insert_with(|| Profile {
            counts: vec![0.0; 168],
            days_at_hour: vec![0; 24],
            ..Profile::default()
        });
        p.counts[how] += n;
        p.days_at_hour[how % 24] += 1;
        p.total += n;
        p.hourly.insert(hour, n);
        days.entry(actor).or_default().insert(hour.div_euclid(DAY));
    }
    for (actor, set) in days {
        if let Some(p) = out.get_mut(&actor) {
            p.active_days = set.len();
        }
    }
    Ok(out)
}

/// True when the principal's own profile makes hour-of-week `how` unusual.
pub fn unusual(p: Option<&Profile>, how: usize, s: &DetectorSettings) -> Option<f64> {
    let p = p?;
    if p.active_days < s.get(MIN_ACTIVE_DAYS) as usize || p.total < s.get(MIN_READS) {
        return None;
    }
    // A rare share is not enough: a nightly job makes every other hour a small share of a
    // large total, yet a worker that reads a little at 04:00 most days is doing its usual.
    if f64::from(p.days_at_hour[how % 24]) > s.get(MAX_DAYS_AT_HOUR) {
        return None;
    }
    let prob = p.p(how);
    (prob < s.get(P_MIN)).then_some(prob)
}

pub const PROFILE_PARAMS: [Param; 6] = [
    LOOKBACK_DAYS,
    P_MIN,
    MIN_ACTIVE_DAYS,
    MIN_READS,
    MAX_DAYS_AT_HOUR,
    P_VALUE,
];

/// Shared with the off-hours burst (VG008), which uses the same profile test.
pub const MAX_DAYS_AT_HOUR: Param = Param {
    name: "max_days_at_hour",
    default: 2.0,
    doc:
        "an hour of day the principal used on more days than this in the lookback is never unusual",
};

#[async_trait::async_trait]
impl Detector for UnusualHour {
    fn code(&self) -> &'static str {
        "VG006"
    }
    fn name(&self) -> &'static str {
        "unusual-hour"
    }
    fn summary(&self) -> &'static str {
        "a principal reads secrets at an hour of the week it almost never uses"
    }
    fn doc(&self) -> &'static str {
        DOC
    }
    fn default_severity(&self) -> Severity {
        Severity::Low
    }
    fn params(&self) -> &'static [Param] {
        &PROFILE_PARAMS
    }
    async fn detect(
        &self,
        d: &DetectContext<'_>,
        s: &DetectorSettings,
    ) -> Result<Vec<Finding>, QueryError> {
        let profiles = profiles(d, s.days_nanos(LOOKBACK_DAYS)).await?;
        let mut out = Vec::new();
        for r in query(d, WINDOW, bounds(d, 0)).await? {
            let actor = rows::text(&r, "actor_id");
            let Some(hour) = rows::time(&r, "hour") else {
                continue;
            };
            let how = hour_of_week(d, hour, &actor, rows::s(&r, "actor_name"));
            let p = profiles.get(&actor);
            let Some(prob) = unusual(p, how, s) else {
                continue;
            };
            let p = p.expect("unusual needs a profile");
            // One read in a rare hour is what a person who reads a hundred times a day does
            // now and then (P = 0.04 for p_hour = 3e-4): the count must be unlikely too.
            let expected = prob * p.total / p.active_days.max(1) as f64;
            let count_p = super::denial_rate::tail(expected, rows::n(&r, "reads"));
            if count_p >= s.get(P_VALUE) {
                continue;
            }
            let resources = rows::list(&r, "resources");
            let local = d
                .query
                .calendar
                .local_label(hour, Some(&actor), rows::s(&r, "actor_name"));
            let mut f = finding(
                self,
                self.default_severity(),
                &actor,
                rows::s(&r, "actor_name"),
                resources,
                rows::s(&r, "first_read").unwrap_or(""),
                rows::s(&r, "last_read").unwrap_or(""),
                Some(&format!("how{how}")),
            );
            f.score = (1.0 - prob / s.get(P_MIN)).clamp(0.0, 1.0);
            f.observed = numbers([
                ("reads", int(rows::n(&r, "reads"))),
                ("local_hour", int((how % 24) as f64)),
            ]);
            f.baseline = numbers([
                ("reads_this_hour_of_day", int(p.hour_of_day_count(how))),
                (
                    "days_at_this_hour",
                    int(f64::from(p.days_at_hour[how % 24])),
                ),
                ("reads_total", int(p.total)),
                ("active_days", int(p.active_days as f64)),
                ("p_hour", p_value(prob)),
                ("expected_reads_this_hour", round(expected, 4)),
                ("p_value", p_value(count_p)),
                (
                    "share_pct",
                    round(100.0 * p.hour_of_day_count(how) / p.total.max(1.0), 2),
                ),
            ]);
            let expected_text = if expected < 0.1 {
                format!("{expected:.1e}")
            } else {
                format!("{expected:.2}")
            };
            f.explanation = format!(
                "{} read {} secret{} in the hour starting {local}; in {} reads over {} active days it read {} times at that hour of the day (p = {:.1e}; {expected_text} reads expected in such an hour, p = {:.1e} for {}).",
                who(&r), rows::n(&r, "reads"), if rows::n(&r, "reads") == 1.0 { "" } else { "s" },
                p.total, p.active_days, p.hour_of_day_count(how), prob, count_p, rows::n(&r, "reads")
            );
            out.push(f);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::DetectConfig;

    /// A worker with one busy nightly hour (02:00) and a little reading at 04:00 every day.
    fn worker(days_at_four: u32) -> Profile {
        let mut p = Profile {
            counts: vec![0.0; 168],
            days_at_hour: vec![0; 24],
            active_days: 28,
            ..Profile::default()
        };
        p.counts[2] = 10_000.0;
        p.days_at_hour[2] = 28;
        p.counts[4] = 30.0;
        p.days_at_hour[4] = days_at_four;
        p.total = 10_030.0;
        p
    }

    #[test]
    fn a_small_share_of_an_hour_used_most_days_is_not_unusual() {
        let s = crate::detect::params::settings(&DetectConfig::default(), &UnusualHour);
        // The share of 04:00 is below p_min either way; only the days decide.
        assert!(worker(28).p(4) < s.get(P_MIN));
        assert_eq!(unusual(Some(&worker(28)), 4, &s), None);
        assert!(unusual(Some(&worker(1)), 4, &s).is_some());
        // An hour never used stays unusual.
        assert!(unusual(Some(&worker(28)), 10, &s).is_some());
    }
}
