//! A principal's usual rate of denied secret reads, per UTC hour of day, for the two denial
//! detectors (VG011 storms, VG012 denied-then-success).
//!
//! Per hour of day because busy workloads are denied about 1 % of the time and are busy at
//! their own hours: a nightly batch worker's usual denials at 02:00 are many times its daily
//! average, and a rate averaged over the day made its every busy quarter hour improbable (25
//! VG011 and 12 VG012 findings a day on 10 M generated events).

use std::collections::BTreeMap;

use statrs::distribution::{DiscreteCDF, Poisson};

use super::*;

/// Denied reads of the window's denied principals over the lookback, per UTC hour of day, from
/// the hourly rollups.
const DENIALS_BY_HOUR: &str = "
SELECT e.actor_id, CAST(date_part('hour', e.hour) AS BIGINT) AS hour_of_day, sum(e.events) AS denied
FROM (SELECT DISTINCT actor_id AS wanted FROM secret_reads
      WHERE outcome = 'denied' AND actor_id IS NOT NULL AND event_time >= $from AND event_time < $to) w
JOIN event_counts e ON e.actor_id = w.wanted
WHERE e.is_secret_read AND e.outcome = 'denied'
  AND e.last_time >= $hist_from AND e.first_time < $from
GROUP BY e.actor_id, CAST(date_part('hour', e.hour) AS BIGINT)";

pub(super) struct DenialRates {
    denied: BTreeMap<(String, i64), f64>,
    /// Windows of the detector's length in one hour of day over the history used.
    windows_per_hour_of_day: f64,
}

impl DenialRates {
    /// The rates over `lookback_days` (at most the history the store holds) for windows of
    /// `window_minutes`.
    pub(super) async fn load(
        d: &DetectContext<'_>,
        lookback_days: f64,
        window_minutes: f64,
    ) -> Result<DenialRates, QueryError> {
        let lookback = (lookback_days * DAY as f64) as i64;
        let denied = query(d, DENIALS_BY_HOUR, bounds(d, lookback))
            .await?
            .into_iter()
            .map(|r| {
                (
                    (
                        rows::text(&r, "actor_id"),
                        rows::n(&r, "hour_of_day") as i64,
                    ),
                    rows::n(&r, "denied"),
                )
            })
            .collect();
        let span_days = store_history_days(d).await?.min(lookback_days).max(0.0);
        Ok(DenialRates {
            denied,
            windows_per_hour_of_day: span_days * 60.0 / window_minutes.max(1.0),
        })
    }

    /// Usual denials of `actor` in one window at the hours of day from `start` to `end`
    /// (RFC 3339): the largest of those hours' rates.
    pub(super) fn lambda(&self, actor: &str, start: &str, end: &str) -> f64 {
        if self.windows_per_hour_of_day <= 0.0 {
            return 0.0;
        }
        let hour = |t: &str| {
            crate::timerange::parse_instant(t)
                .ok()
                .map(|n| n.div_euclid(HOUR))
        };
        let (Some(first), Some(last)) = (hour(start), hour(end)) else {
            return 0.0;
        };
        (first..=last.min(first + 24))
            .map(|h| {
                let key = (actor.to_owned(), h.rem_euclid(24));
                self.denied.get(&key).copied().unwrap_or(0.0)
            })
            .fold(0.0, f64::max)
            / self.windows_per_hour_of_day
    }
}

/// P(X >= n) for X ~ Poisson(lambda); 0 when lambda is 0 (never denied before: any run counts).
pub(super) fn tail(lambda: f64, n: f64) -> f64 {
    if lambda <= 0.0 {
        return 0.0;
    }
    Poisson::new(lambda).map_or(0.0, |dist| dist.sf((n as u64).saturating_sub(1)))
}
