use std::collections::BTreeMap;

use super::denial_rate::tail;
use super::unusual_hour::{hour_of_week, profiles};
use super::*;
use crate::detect::finding::{numbers, round};
use crate::detect::{DetectorSettings, Param};

/// VG005 off-hours-human.
const LOOKBACK_DAYS: Param = Param {
    name: "lookback_days",
    default: 28.0,
    doc: "history that shows a person's normal hours",
};
const MAX_SHARE_PCT: Param = Param {
    name: "max_share_pct",
    default: 5.0,
    doc: "an hour of the week holding this share of their reads is normal for them",
};
const MIN_HISTORY_DAYS: Param = Param {
    name: "min_history_days",
    default: 7.0,
    doc: "days of history before someone's off-hours habit can keep them quiet",
};
const USUAL_DAYS_PCT: Param = Param {
    name: "usual_days_pct",
    default: 25.0,
    doc: "off-hours reads on this share of the days of their history are usual",
};
const P_VALUE: Param = Param {
    name: "p_value",
    default: 1e-3,
    doc: "a day's off-hours reads this unlikely for someone who usually works off-hours still fire",
};
const MAX_HOUR_PROBABILITY: Param = Param {
    name: "max_hour_probability",
    default: 0.01,
    doc: "fire only when a reading day has reads in that local hour with at most this probability",
};
const SINGLE_READ_PROBABILITY: Param = Param {
    name: "single_read_probability",
    default: 0.001,
    doc: "the same for a day with a single off-hours read",
};
const PRIOR_DAYS: Param = Param {
    name: "prior_days",
    default: 10.0,
    doc: "weight (in days) of the estate's people against the person's own days",
};

pub struct OffHoursHuman;

const DOC: &str = "\
What: a person (or an account root user, which only people use) reads secrets outside working time ([calendar]: their time zone, business hours,
workdays, holidays; DST-correct), unless that is normal for them: at least max_share_pct of their
reads over the lookback fall in that local hour of the day (a night shift), or they read secrets
outside working time on at least usual_days_pct of the days of at least min_history_days of
history and the local day's off-hours reads so far are not many more than on their usual such day
(workdays and days off apart; Poisson tail at least p_value: an on-call engineer; a burst still
fires). A thief who keeps to a
quarter of the nights for weeks becomes usual here: VG006 and VG007 still see the hours and counts.
Peers: an off-hours hour is also judged against the estate's people. Of the person's reading
days (workdays and days off apart), the share with reads in that local hour is estimated with
prior_days of all people's reading days weighed in: (own days with the hour + prior_days x
people's share) / (own days + prior_days). Only a day whose rarest off-hours hour has at most
max_hour_probability (a single read: single_read_probability) fires, so an evening read in an estate whose people read in the evening is
quiet, a read at 03:00 that nobody makes is not (and a habitual reader's burst still fires).
One finding per person and local day.
Why: people's credentials used at 03:00 on a Sunday are a common sign of theft; the users of every
SIEM ask for business-hours rules that respect time zones and holidays.
Example: oidc-bob reads secret/prod/payments/db at 02:37 UTC from an address outside the VPN.
Tuning: [calendar] in vigil.toml (principal_timezones above all), max_share_pct, lookback_days,
max_hour_probability, single_read_probability, prior_days.
False positives: travel, on-call weeks before the history shows them.";

/// People's reading hours in the lookback (one row per person and UTC hour with reads): the
/// estate's people are each person's peers for when secrets are read.
const PEOPLE_HOURS: &str = "
SELECT actor_id, max(actor_name) AS actor_name, hour
FROM event_counts
WHERE actor_type IN ('human', 'root') AND is_secret_read AND actor_id IS NOT NULL
  AND last_time >= $hist_from AND first_time < $from
GROUP BY actor_id, hour";

const SQL: &str = "
SELECT actor_id, max(actor_name) AS actor_name, date_trunc('hour', event_time) AS hour,
       count(*) AS reads, min(event_time) AS first_read, max(event_time) AS last_read,
       array_agg(DISTINCT resource_id) AS resources, min(src_ip) AS src_ip
FROM secret_reads
WHERE actor_type IN ('human', 'root') AND actor_id IS NOT NULL AND event_time >= $from AND event_time < $to
  AND vigil_off_hours(event_time, actor_id, actor_name)
GROUP BY actor_id, date_trunc('hour', event_time)
ORDER BY hour, actor_id";

#[async_trait::async_trait]
impl Detector for OffHoursHuman {
    fn code(&self) -> &'static str {
        "VG005"
    }
    fn name(&self) -> &'static str {
        "off-hours-human"
    }
    fn summary(&self) -> &'static str {
        "a person reads secrets outside their working time"
    }
    fn doc(&self) -> &'static str {
        DOC
    }
    fn default_severity(&self) -> Severity {
        Severity::Medium
    }
    fn params(&self) -> &'static [Param] {
        &[
            LOOKBACK_DAYS,
            MAX_SHARE_PCT,
            MIN_HISTORY_DAYS,
            USUAL_DAYS_PCT,
            P_VALUE,
            MAX_HOUR_PROBABILITY,
            SINGLE_READ_PROBABILITY,
            PRIOR_DAYS,
        ]
    }
    async fn detect(
        &self,
        d: &DetectContext<'_>,
        s: &DetectorSettings,
    ) -> Result<Vec<Finding>, QueryError> {
        let hours = query(d, SQL, bounds(d, 0)).await?;
        if hours.is_empty() {
            return Ok(Vec::new());
        }
        let profiles = profiles(d, s.days_nanos(LOOKBACK_DAYS)).await?;
        let hours_of = ReadingHours::of_people(d, s.days_nanos(LOOKBACK_DAYS)).await?;
        // Group the off-hours hours of each person by local day.
        let mut days: BTreeMap<(String, String), Vec<(Row, usize)>> = BTreeMap::new();
        for r in hours {
            let actor = rows::text(&r, "actor_id");
            let Some(hour) = rows::time(&r, "hour") else {
                continue;
            };
            let how = hour_of_week(d, hour, &actor, rows::s(&r, "actor_name"));
            if let Some(p) = profiles.get(&actor) {
                if p.total > 0.0 && 100.0 * hour_of_day_share(p, how) >= s.get(MAX_SHARE_PCT) {
                    continue;
                }
            }
            let day = d
                .query
                .calendar
                .local(hour, Some(&actor), rows::s(&r, "actor_name"))
                .date_naive()
                .to_string();
            days.entry((actor, day)).or_default().push((r, how));
        }
        let mut out = Vec::new();
        for ((actor, day), hs) in days {
            let first = &hs[0].0;
            let last = &hs[hs.len() - 1].0;
            let name = rows::s(first, "actor_name");
            let reads: f64 = hs.iter().map(|(r, _)| rows::n(r, "reads")).sum();
            let habit = profiles
                .get(&actor)
                .map(|p| off_hours_habit(d, p, &actor, name, s.days_nanos(LOOKBACK_DAYS)));
            // The whole local day so far: with hourly runs the window is one hour of it.
            let date = chrono::NaiveDate::parse_from_str(&day, "%Y-%m-%d").ok();
            let workday = date.is_none_or(|t| d.query.calendar.is_workday(t));
            let day_reads = reads
                + habit
                    .as_ref()
                    .zip(date)
                    .and_then(|(h, t)| h.per_day.get(&t))
                    .copied()
                    .unwrap_or(0.0);
            // A weekend or holiday is off-hours all day: compared with their other such days.
            let usual = habit.as_ref().map_or(0.0, |h| h.usual_day(workday));
            let p_value = tail(usual, day_reads);
            if let Some(h) = &habit {
                if h.days as f64 >= s.get(MIN_HISTORY_DAYS)
                    && 100.0 * h.days_with as f64 / h.days as f64 >= s.get(USUAL_DAYS_PCT)
                    && p_value >= s.get(P_VALUE)
                {
                    continue;
                }
            }
            // How often a reading day of this person has reads in the rarest of today's
            // off-hours local hours: their own days, weighed with the estate's people's.
            let (rarest_hour, probability) = hs
                .iter()
                .map(|(_, how)| {
                    let h = how % 24;
                    (
                        h,
                        hours_of.probability(&actor, workday, h, s.get(PRIOR_DAYS)),
                    )
                })
                .fold((0, f64::INFINITY), |a, b| if b.1 < a.1 { b } else { a });
            // Far more off-hours reads than their usual such day still fire (an on-call
            // engineer's burst); for someone with no off-hours habit that is VG007's question.
            let burst = usual > 0.0 && p_value < s.get(P_VALUE);
            // One read is weak evidence: it fires only in an hour nearly nobody reads in.
            let limit = if reads < 2.0 {
                s.get(SINGLE_READ_PROBABILITY)
            } else {
                s.get(MAX_HOUR_PROBABILITY)
            };
            if probability > limit && !burst {
                continue;
            }
            let mut resources: Vec<String> = hs
                .iter()
                .flat_map(|(r, _)| rows::list(r, "resources"))
                .collect();
            resources.sort();
            resources.dedup();
            let local = rows::time(first, "first_read")
                .map(|t| d.query.calendar.local_label(t, Some(&actor), name))
                .unwrap_or_default();
            let p = profiles.get(&actor);
            let share = p
                .map(|p| 100.0 * p.counts[hs[0].1] / p.total.max(1.0))
                .unwrap_or(0.0);
            let mut f = finding(
                self,
                self.default_severity(),
                &actor,
                name,
                resources.clone(),
                rows::s(first, "first_read").unwrap_or(""),
                rows::s(last, "last_read").unwrap_or(""),
                Some(&day),
            );
            f.cold_start = p.is_none_or(|p| p.total < 20.0);
            f.score = (1.0 - share / s.get(MAX_SHARE_PCT).max(0.01)).clamp(0.5, 1.0);
            f.observed = numbers([
                ("reads", int(reads)),
                ("secrets", int(resources.len() as f64)),
                ("src_ip", rows::text(first, "src_ip").into()),
            ]);
            let h = habit.unwrap_or_default();
            f.baseline = numbers([
                ("share_of_reads_this_hour_of_day_pct", round(share, 2)),
                ("reads_in_lookback", int(p.map(|p| p.total).unwrap_or(0.0))),
                ("history_days", int(h.days as f64)),
                ("days_with_off_hours_reads", int(h.days_with as f64)),
                (
                    "off_hours_reads_on_such_a_day",
                    round(h.usual_day(workday), 2),
                ),
                ("off_hours_reads_today", int(day_reads)),
                ("p_value", p_value.into()),
                ("local_hour", int(rarest_hour as f64)),
                ("reading_days_with_this_hour", round(probability, 4)),
                (
                    "people_reading_days_with_this_hour",
                    round(hours_of.population(workday, rarest_hour), 4),
                ),
            ]);
            let history = if h.days == 0 {
                "they read no secret at all, at any hour, in the lookback before".to_owned()
            } else if h.days_with == 0 {
                format!(
                    "they read no secret off-hours in the {} day{} of history before",
                    h.days,
                    if h.days == 1 { "" } else { "s" }
                )
            } else {
                format!(
                    "in the {} day{} of history before, they read secrets off-hours on {} day{} ({:.1} reads on such a {}; {} today), and {:.1} % of their reads fell in that hour of the day",
                    h.days, if h.days == 1 { "" } else { "s" },
                    h.days_with, if h.days_with == 1 { "" } else { "s" },
                    h.usual_day(workday), if workday { "workday" } else { "day off" }, day_reads, share
                )
            };
            f.explanation = format!(
                "{} read {} secret{}{} outside working time, first at {local}{}; {history}.",
                who(first),
                resources.len(),
                if resources.len() == 1 { "" } else { "s" },
                if reads > resources.len() as f64 {
                    format!(" ({reads} reads)")
                } else {
                    String::new()
                },
                rows::s(first, "src_ip")
                    .map(|ip| format!(" from {ip}"))
                    .unwrap_or_default(),
            );
            out.push(f);
        }
        Ok(out)
    }
}

/// In which local hours of the day people read secrets, per reading day (a local day with at
/// least one read), workdays and days off apart: for each person, and for all the estate's
/// people together (the prior: a person with few days of history is judged by everyone's).
#[derive(Debug, Default)]
struct ReadingHours {
    /// (person, workday) -> (reading days, reading days with reads in each local hour).
    own: std::collections::HashMap<(String, bool), (f64, [f64; 24])>,
    /// workday -> the same over all people.
    all: [(f64, [f64; 24]); 2],
}

impl ReadingHours {
    async fn of_people(d: &DetectContext<'_>, lookback: i64) -> Result<ReadingHours, QueryError> {
        use chrono::Timelike;
        let cal = &d.query.calendar;
        // (person, local day) -> local hours with reads.
        let mut days: BTreeMap<(String, chrono::NaiveDate), [bool; 24]> = BTreeMap::new();
        for r in query(d, PEOPLE_HOURS, bounds(d, lookback)).await? {
            let actor = rows::text(&r, "actor_id");
            let Some(hour) = rows::time(&r, "hour") else {
                continue;
            };
            // The middle of the hour: zones with half-hour offsets cut UTC hours.
            let local = cal.local(
                hour + 1_800_000_000_000,
                Some(&actor),
                rows::s(&r, "actor_name"),
            );
            days.entry((actor, local.date_naive()))
                .or_insert([false; 24])[local.hour() as usize] = true;
        }
        let mut out = ReadingHours::default();
        for ((actor, day), hours) in days {
            let workday = cal.is_workday(day);
            let own = out.own.entry((actor, workday)).or_insert((0.0, [0.0; 24]));
            let all = &mut out.all[usize::from(workday)];
            own.0 += 1.0;
            all.0 += 1.0;
            for (h, read) in hours.iter().enumerate() {
                if *read {
                    own.1[h] += 1.0;
                    all.1[h] += 1.0;
                }
            }
        }
        Ok(out)
    }

    /// Share of all people's reading days (of the kind) with reads in local hour `h`.
    fn population(&self, workday: bool, h: usize) -> f64 {
        let (days, hours) = &self.all[usize::from(workday)];
        hours[h] / days.max(1.0)
    }

    /// The person's share of reading days (of the kind) with reads in local hour `h`, their own
    /// days weighed with `prior_days` of the population's.
    fn probability(&self, actor: &str, workday: bool, h: usize, prior_days: f64) -> f64 {
        let (days, hours) = self
            .own
            .get(&(actor.to_owned(), workday))
            .map(|(d, h)| (*d, *h))
            .unwrap_or((0.0, [0.0; 24]));
        (hours[h] + prior_days * self.population(workday, h)) / (days + prior_days).max(1e-9)
    }
}

/// How much a person reads secrets outside working time, from their hourly history.
#[derive(Debug, Default)]
struct OffHoursHabit {
    /// Days of history in the lookback: from their first read (at most the lookback) to the
    /// window, at least 1.
    days: u64,
    /// Local days with at least one off-hours read.
    days_with: u64,
    /// Off-hours reads per local day.
    per_day: BTreeMap<chrono::NaiveDate, f64>,
    /// Mean off-hours reads of the workdays, and of the days off, that had any (their usual
    /// evening or weekend, not diluted by days without).
    workday_mean: f64,
    day_off_mean: f64,
}

impl OffHoursHabit {
    fn usual_day(&self, workday: bool) -> f64 {
        if workday {
            self.workday_mean
        } else {
            self.day_off_mean
        }
    }
}

fn off_hours_habit(
    d: &DetectContext<'_>,
    p: &super::unusual_hour::Profile,
    actor: &str,
    name: Option<&str>,
    lookback: i64,
) -> OffHoursHabit {
    use crate::timerange::NANOS_PER_DAY as DAY;
    const HALF_HOUR: i64 = 1_800_000_000_000;
    let cal = &d.query.calendar;
    let start = p
        .hourly
        .keys()
        .next()
        .copied()
        .unwrap_or(d.window.from)
        .max(d.window.from - lookback);
    let days = ((d.window.from - start + DAY - 1) / DAY).max(1) as u64;
    let mut per_day: BTreeMap<chrono::NaiveDate, f64> = BTreeMap::new();
    for (&hour, &n) in &p.hourly {
        // An hour is off-hours when its middle is (zones with half-hour offsets cut hours).
        if hour >= start && cal.is_off_hours(hour + HALF_HOUR, Some(actor), name) {
            let day = cal.local(hour + HALF_HOUR, Some(actor), name).date_naive();
            *per_day.entry(day).or_default() += n;
        }
    }
    let mean = |workday: bool| {
        let (sum, n) = per_day
            .iter()
            .filter(|(day, _)| cal.is_workday(**day) == workday)
            .fold((0.0, 0usize), |(s, n), (_, r)| (s + r, n + 1));
        sum / n.max(1) as f64
    };
    OffHoursHabit {
        days,
        days_with: per_day.len() as u64,
        workday_mean: mean(true),
        day_off_mean: mean(false),
        per_day,
    }
}

/// Share of a principal's reads in the local hour of day of hour-of-week `how`, all weekdays.
fn hour_of_day_share(p: &super::unusual_hour::Profile, how: usize) -> f64 {
    let hod = how % 24;
    let n: f64 = (0..7).map(|day| p.counts[day * 24 + hod]).sum();
    n / p.total.max(1.0)
}
