use statrs::distribution::{DiscreteCDF, Poisson};

use super::unusual_hour::{hour_of_week, profiles, unusual, Profile};
use super::*;
use crate::detect::finding::{numbers, p_value, round};
use crate::detect::{DetectorSettings, Param};

/// VG007 read-burst.
const LOOKBACK_DAYS: Param = Param {
    name: "lookback_days",
    default: 28.0,
    doc: "history the baseline is learned from",
};
const P_VALUE: Param = Param {
    name: "p_value",
    default: 1e-4,
    doc: "Poisson tail probability below which a count is a burst",
};
const MIN_COUNT: Param = Param {
    name: "min_count",
    default: 20.0,
    doc: "reads in the hour, at least",
};
const RATIO: Param = Param {
    name: "ratio",
    default: 3.0,
    doc: "times the baseline, at least",
};
const ROUTINE_DAYS: Param = Param {
    name: "routine_days",
    default: 3.0,
    doc: "days of the last 7 with a third of the count at that hour that make it routine",
};
const MIN_HISTORY_DAYS: Param = Param {
    name: "min_history_days",
    default: 14.0,
    doc: "history before the statistical test applies",
};
const STATIC_COUNT: Param = Param {
    name: "static_count",
    default: 100.0,
    doc: "reads in an hour that fire without history (and ratio x the busiest hour so far)",
};
const P_MIN: Param = Param {
    name: "p_min",
    default: 0.002,
    doc: "off-hours by profile: smoothed hour-of-day probability",
};
const MIN_ACTIVE_DAYS: Param = Param {
    name: "min_active_days",
    default: 10.0,
    doc: "off-hours by profile: days with reads needed",
};
const MIN_READS: Param = Param {
    name: "min_reads",
    default: 50.0,
    doc: "off-hours by profile: reads needed",
};

pub struct ReadBurst;
/// VG008 off-hours-burst: a burst in an hour that is off hours for the principal.
pub struct OffHoursBurst;

const DOC_BURST: &str = "\
What: a principal reads far more secrets in one hour than its own seasonal baseline allows.
Why: bulk harvesting with stolen credentials, or a runaway job, is a burst against the
principal's normal rate (ElastAlert spike, Microsoft spike_fl, Sumo outlier).
Method: lambda = the principal's mean reads in the same hour of the week over the lookback
(its own time zone), shrunk toward its overall hourly mean: (sum of same-hour counts + overall
mean) / (weeks + 1). p = P(X >= observed | Poisson(lambda)) with statrs. Fires when p < p_value
AND observed >= min_count AND observed >= ratio * lambda.
Routine: an hour in which the principal read at least observed / ratio on routine_days (3) of
the 7 days before, at the same hour of the day, is its routine (a nightly job), not a burst.
Cold start: below min_history_days of history the principal gets a static rule instead: fires at
static_count reads in an hour that are also ratio times its busiest hour in the history there is
(a nightly job's usual 300 reads do not fire on day 9), marked cold_start.
Tuning: p_value (1e-4), min_count (20), ratio (3), lookback_days (28), static_count (100),
routine_days (3).
False positives: deploy storms, cache flushes; allowlist the deployer.";

const DOC_OFF: &str = "\
What: a read burst (VG007's test) in an hour that is off hours for the principal: outside the
calendar's business hours for a person, or an hour of the week its own profile almost never uses
(VG006's test) for anyone. One alert at higher severity; the plain burst and the off-hours read of
the same principal that day are folded into it.
Why: the headline case: a person's credentials draining secrets at 03:00 their time.
Tuning: the parameters of VG007 and VG006 (here under [detectors.VG008]).";

const WINDOW: &str = "
SELECT actor_id, max(actor_name) AS actor_name, max(actor_type) AS actor_type,
       date_trunc('hour', event_time) AS hour, count(*) AS reads,
       min(event_time) AS first_read, max(event_time) AS last_read,
       array_agg(DISTINCT resource_id) AS resources
FROM secret_reads
WHERE actor_id IS NOT NULL AND event_time >= $from AND event_time < $to
GROUP BY actor_id, date_trunc('hour', event_time)
HAVING count(*) >= $floor
ORDER BY hour, actor_id";

const PARAMS: [Param; 11] = [
    LOOKBACK_DAYS,
    P_VALUE,
    MIN_COUNT,
    RATIO,
    ROUTINE_DAYS,
    MIN_HISTORY_DAYS,
    STATIC_COUNT,
    P_MIN,
    MIN_ACTIVE_DAYS,
    MIN_READS,
    super::unusual_hour::MAX_DAYS_AT_HOUR,
];

/// One hour's test result.
struct Burst {
    /// The baseline: the Poisson mean, or on the static rule the busiest hour seen so far.
    lambda: f64,
    p: Option<f64>,
    cold: bool,
}

fn test(
    p: Option<&Profile>,
    hour: i64,
    x: f64,
    hist_days: f64,
    s: &DetectorSettings,
) -> Option<Burst> {
    if x < s.get(MIN_COUNT) {
        return None;
    }
    let weeks = (s.get(LOOKBACK_DAYS).min(hist_days) / 7.0).max(0.0);
    if hist_days < s.get(MIN_HISTORY_DAYS) || p.is_none() {
        // Too little history for a seasonal rate, but enough to know what the principal does
        // on its busiest hours: a batch job's every run is not a burst.
        let busiest = p
            .map(|p| p.hourly.values().copied().fold(0.0, f64::max))
            .unwrap_or(0.0);
        return (x >= s.get(STATIC_COUNT) && x >= s.get(RATIO) * busiest).then_some(Burst {
            lambda: busiest,
            p: None,
            cold: true,
        });
    }
    let p = p.expect("checked");
    let hours = (hist_days.min(s.get(LOOKBACK_DAYS)) * 24.0).max(1.0);
    let overall = p.total / hours;
    let same: f64 = p
        .hourly
        .iter()
        .filter(|(h, _)| **h != hour && (hour - **h).rem_euclid(7 * DAY) == 0)
        .map(|(_, n)| n)
        .sum();
    let lambda = ((same + overall) / (weeks.floor() + 1.0)).max(0.01);
    let tail = Poisson::new(lambda)
        .map(|d| d.sf((x - 1.0) as u64))
        .unwrap_or(0.0);
    // Its own routine by the hour of the day: a job that reads this much at this hour most
    // nights is doing its work, even while the same hour of the week has seen it once or twice
    // (a nightly job that started last week).
    let routine_nights = (1..=7)
        .filter(|k| {
            p.hourly.get(&(hour - k * DAY)).copied().unwrap_or(0.0) >= x / s.get(RATIO).max(1.0)
        })
        .count();
    if routine_nights as f64 >= s.get(ROUTINE_DAYS) {
        return None;
    }
    (tail < s.get(P_VALUE) && x >= s.get(RATIO) * lambda).then_some(Burst {
        lambda,
        p: Some(tail),
        cold: false,
    })
}

async fn bursts(
    det: &dyn Detector,
    d: &DetectContext<'_>,
    s: &DetectorSettings,
    off_hours_only: bool,
) -> Result<Vec<Finding>, QueryError> {
    let lookback = s.days_nanos(LOOKBACK_DAYS);
    let mut params = bounds(d, 0);
    params.push(("floor", rows::int(s.get(MIN_COUNT))));
    let candidates = query(d, WINDOW, params).await?;
    if candidates.is_empty() {
        return Ok(Vec::new());
    }
    let profiles = profiles(d, lookback).await?;
    let hist_days = store_history_days(d).await?;
    if hist_days < s.get(MIN_HISTORY_DAYS) {
        d.note(format!(
            "{} on its static rule: the store holds {hist_days:.1} days before the window (the Poisson test needs {})",
            det.code(),
            s.get(MIN_HISTORY_DAYS)
        ));
    }
    let mut out = Vec::new();
    for r in candidates {
        let actor = rows::text(&r, "actor_id");
        let name = rows::s(&r, "actor_name");
        let Some(hour) = rows::time(&r, "hour") else {
            continue;
        };
        let x = rows::n(&r, "reads");
        let how = hour_of_week(d, hour, &actor, name);
        let profile = profiles.get(&actor);
        let Some(b) = test(profile, hour, x, hist_days, s) else {
            continue;
        };
        let human = rows::s(&r, "actor_type") == Some("human");
        let calendar_off = human
            && d.query
                .calendar
                .is_off_hours(hour + HOUR / 2, Some(&actor), name);
        let profile_off = unusual(profile, how, s);
        let off = calendar_off || profile_off.is_some();
        if off_hours_only && !off {
            continue;
        }
        let severity = det.default_severity();
        let resources = rows::list(&r, "resources");
        let local = d.query.calendar.local_label(hour, Some(&actor), name);
        let mut f = finding(
            det,
            severity,
            &actor,
            name,
            resources.clone(),
            rows::s(&r, "first_read").unwrap_or(""),
            rows::s(&r, "last_read").unwrap_or(""),
            None,
        );
        f.cold_start = b.cold;
        // 0.9 at p = 1e-4, 0.999 at p = 1e-12.
        f.score = match b.p {
            Some(p) => 1.0 - p.max(0.0).powf(0.25),
            None => 0.6,
        };
        f.observed = numbers([("reads", int(x)), ("secrets", int(resources.len() as f64))]);
        f.baseline = match b.p {
            Some(p) => numbers([
                ("reads_per_hour", round(b.lambda, 2)),
                ("p_value", p_value(p)),
            ]),
            None => numbers([
                ("static_count", int(s.get(STATIC_COUNT))),
                ("history_days", round(hist_days, 1)),
                ("busiest_hour_reads", int(b.lambda)),
            ]),
        };
        if let Some(prob) = profile_off {
            f.baseline.insert("p_hour".into(), p_value(prob));
        }
        let why_off = match (calendar_off, profile_off.is_some()) {
            (true, true) => "outside business hours and at an hour it almost never uses",
            (true, false) => "outside business hours",
            (false, true) => "at an hour of the week it almost never uses",
            (false, false) => "",
        };
        f.explanation = match b.p {
            Some(p) if off_hours_only => format!(
                "{} read {x} secrets in the hour starting {local}, {why_off}; typical for this hour: {:.1}; p = {p:.1e}.",
                who(&r), b.lambda
            ),
            Some(p) => format!("{} read {x} secrets in the hour starting {local}; typical for this hour: {:.1}; p = {p:.1e}.", who(&r), b.lambda),
            None => format!(
                "{} read {x} secrets in the hour starting {local}{}; with only {hist_days:.0} days of history the static rule applies: at least {} per hour and {} times its busiest hour so far ({}).",
                who(&r), if off_hours_only { format!(", {why_off}") } else { String::new() }, s.get(STATIC_COUNT), s.get(RATIO), b.lambda
            ),
        };
        out.push(f);
    }
    Ok(out)
}

#[async_trait::async_trait]
impl Detector for ReadBurst {
    fn code(&self) -> &'static str {
        "VG007"
    }
    fn name(&self) -> &'static str {
        "read-burst"
    }
    fn summary(&self) -> &'static str {
        "a principal reads far more secrets in an hour than its seasonal baseline"
    }
    fn doc(&self) -> &'static str {
        DOC_BURST
    }
    fn default_severity(&self) -> Severity {
        Severity::Medium
    }
    fn params(&self) -> &'static [Param] {
        &PARAMS
    }
    async fn detect(
        &self,
        d: &DetectContext<'_>,
        s: &DetectorSettings,
    ) -> Result<Vec<Finding>, QueryError> {
        bursts(self, d, s, false).await
    }
}

#[async_trait::async_trait]
impl Detector for OffHoursBurst {
    fn code(&self) -> &'static str {
        "VG008"
    }
    fn name(&self) -> &'static str {
        "off-hours-burst"
    }
    fn summary(&self) -> &'static str {
        "a read burst in the principal's off hours (one alert, higher severity)"
    }
    fn doc(&self) -> &'static str {
        DOC_OFF
    }
    fn default_severity(&self) -> Severity {
        Severity::High
    }
    fn params(&self) -> &'static [Param] {
        &PARAMS
    }
    async fn detect(
        &self,
        d: &DetectContext<'_>,
        s: &DetectorSettings,
    ) -> Result<Vec<Finding>, QueryError> {
        bursts(self, d, s, true).await
    }
}
