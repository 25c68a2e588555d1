use std::collections::BTreeMap;

use super::unusual_hour::{hour_of_week, profiles};
use super::*;
use crate::detect::finding::{numbers, round};
use crate::detect::{DetectorSettings, Param};

/// VG005 off-hours-human.
pub struct OffHoursHuman;

const DOC: &str = "\
What: a person (or an account root user, which only people use) reads secrets outside working time ([calendar]: their time zone, business hours,
workdays, holidays; DST-correct), unless that hour of the day is normal for them (at least
max_share_pct of their reads over the lookback fall in that local hour of the day, any weekday: an
on-call engineer or a night shift).
One finding per person and local day.
Why: people's credentials used at 03:00 on a Sunday are a common sign of theft; the users of every
SIEM ask for business-hours rules that respect time zones and holidays.
Example: oidc-bob reads secret/prod/payments/db at 02:37 UTC from an address outside the VPN.
Tuning: [calendar] in vigil.toml (principal_timezones above all), max_share_pct, lookback_days.
False positives: travel, on-call weeks before the history shows them.";

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
            Param {
                name: "lookback_days",
                default: 28.0,
                doc: "history that shows a person's normal hours",
            },
            Param {
                name: "max_share_pct",
                default: 5.0,
                doc: "an hour of the week holding this share of their reads is normal for them",
            },
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
        let profiles = profiles(d, s.days_nanos("lookback_days")).await?;
        // Group the off-hours hours of each person by local day.
        let mut days: BTreeMap<(String, String), Vec<(Row, usize)>> = BTreeMap::new();
        for r in hours {
            let actor = rows::text(&r, "actor_id");
            let Some(hour) =
                rows::s(&r, "hour").and_then(|h| crate::timerange::parse_instant(h).ok())
            else {
                continue;
            };
            let how = hour_of_week(d, hour, &actor, rows::s(&r, "actor_name"));
            if let Some(p) = profiles.get(&actor) {
                if p.total > 0.0 && 100.0 * hour_of_day_share(p, how) >= s.get("max_share_pct") {
                    continue;
                }
            }
            let day = d
                .config
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
            let mut resources: Vec<String> = hs
                .iter()
                .flat_map(|(r, _)| rows::list(r, "resources"))
                .collect();
            resources.sort();
            resources.dedup();
            let t0 = rows::s(first, "first_read").unwrap_or("");
            let local = crate::timerange::parse_instant(t0)
                .map(|t| d.config.calendar.local_label(t, Some(&actor), name))
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
                t0,
                rows::s(last, "last_read").unwrap_or(""),
                Some(&day),
            );
            f.cold_start = p.is_none_or(|p| p.total < 20.0);
            f.score = (1.0 - share / s.get("max_share_pct").max(0.01)).clamp(0.5, 1.0);
            f.observed = numbers([
                ("reads", int(reads)),
                ("secrets", int(resources.len() as f64)),
                ("src_ip", rows::text(first, "src_ip").into()),
            ]);
            f.baseline = numbers([
                ("share_of_reads_this_hour_of_day_pct", round(share, 2)),
                ("reads_in_lookback", int(p.map(|p| p.total).unwrap_or(0.0))),
            ]);
            f.explanation = format!(
                "{} read {} secret{} outside working time, first at {local}{}; {:.1} % of their reads in the last {:.0} days fell in that hour of the day.",
                who(first), resources.len(), if resources.len() == 1 { "" } else { "s" },
                rows::s(first, "src_ip").map(|ip| format!(" from {ip}")).unwrap_or_default(),
                share, s.get("lookback_days")
            );
            out.push(f);
        }
        Ok(out)
    }
}

/// Share of a principal's reads in the local hour of day of hour-of-week `how`, all weekdays.
fn hour_of_day_share(p: &super::unusual_hour::Profile, how: usize) -> f64 {
    let hod = how % 24;
    let n: f64 = (0..7).map(|day| p.counts[day * 24 + hod]).sum();
    n / p.total.max(1.0)
}
