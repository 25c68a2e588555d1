use super::denial_rate::{tail, DenialRates};
use super::*;

use crate::detect::finding::{numbers, p_value, round};
use crate::detect::{DetectorSettings, Param};

/// VG011 denied-storm.
const MIN_DENIED: Param = Param {
    name: "min_denied",
    default: 20.0,
    doc: "denied reads in one window",
};
const MIN_SECRETS: Param = Param {
    name: "min_secrets",
    default: 5.0,
    doc: "distinct secrets denied in one window",
};
const WINDOW_MINUTES: Param = Param {
    name: "window_minutes",
    default: 15.0,
    doc: "length of the window",
};
const P_VALUE: Param = Param {
    name: "p_value",
    default: 1e-5,
    doc: "Poisson tail probability of the window's denials below which it is a storm",
};
const LOOKBACK_DAYS: Param = Param {
    name: "lookback_days",
    default: 28.0,
    doc: "history the principal's usual denial rate is learned from",
};

pub struct DeniedStorm;

const DOC: &str = "\
What: many denied secret reads by one principal in a short window (default 20 in 15 minutes),
or denials on several distinct secrets (default 5) in that window.
Why: probing for what a credential can reach produces a storm of AccessDenied; Panther alerts on
20 in 15 minutes for Kubernetes. A success after the storm is VG012.
Method: windows of window_minutes at two offsets; overlapping windows of a principal merge. A
window over min_denied or min_secrets fires when it is also improbable for this principal:
lambda = its denied reads at the same UTC hour of day in the lookback per window_minutes (over
the history the store holds, at most lookback_days, read from the hourly rollups), p = P(X >=
denials | Poisson(lambda)) < p_value. A principal never denied before has lambda = 0 and fires on
the thresholds alone. (Without it, 30 medium findings a day on 10 M generated events: busy
workloads are denied ~1 % of the time, several distinct secrets per quarter hour.)
Tuning: min_denied (20), min_secrets (5), window_minutes (15), p_value (1e-5), lookback_days (28).
False positives: a broken deploy retrying with a wrong role.";

const SQL: &str = "
WITH bucketed AS (
  SELECT actor_id, actor_name, resource_id, event_time,
         (CAST(event_time AS BIGINT) - $offset) / $width AS bucket
  FROM secret_reads
  WHERE outcome = 'denied' AND actor_id IS NOT NULL AND event_time >= $from AND event_time < $to)
SELECT actor_id, max(actor_name) AS actor_name, bucket, count(*) AS denied,
       count(DISTINCT arrow_cast(resource_id, 'Utf8')) AS secrets, min(event_time) AS first_denied,
       max(event_time) AS last_denied, array_agg(DISTINCT resource_id) AS resources
FROM bucketed
GROUP BY actor_id, bucket
HAVING count(*) >= $min_denied OR count(DISTINCT arrow_cast(resource_id, 'Utf8')) >= $min_secrets
ORDER BY actor_id, first_denied";

#[async_trait::async_trait]
impl Detector for DeniedStorm {
    fn code(&self) -> &'static str {
        "VG011"
    }
    fn name(&self) -> &'static str {
        "denied-storm"
    }
    fn summary(&self) -> &'static str {
        "a storm of denied secret reads by one principal"
    }
    fn doc(&self) -> &'static str {
        DOC
    }
    fn default_severity(&self) -> Severity {
        Severity::Medium
    }
    fn look_every(&self, s: &DetectorSettings) -> Option<i64> {
        Some(
            s.minutes_nanos(WINDOW_MINUTES)
                .max(crate::timerange::NANOS_PER_MINUTE),
        )
    }
    fn params(&self) -> &'static [Param] {
        &[
            MIN_DENIED,
            MIN_SECRETS,
            WINDOW_MINUTES,
            P_VALUE,
            LOOKBACK_DAYS,
        ]
    }
    async fn detect(
        &self,
        d: &DetectContext<'_>,
        s: &DetectorSettings,
    ) -> Result<Vec<Finding>, QueryError> {
        let width = s.minutes_nanos(WINDOW_MINUTES).max(1);
        let mut hits = Vec::new();
        for offset in [0, width / 2] {
            let mut params = bounds(d, 0);
            params.push(("offset", rows::int(offset as f64)));
            params.push(("width", rows::int(width as f64)));
            params.push(("min_denied", rows::int(s.get(MIN_DENIED))));
            params.push(("min_secrets", rows::int(s.get(MIN_SECRETS))));
            hits.extend(query(d, SQL, params).await?);
        }
        let mut out: Vec<Finding> = Vec::new();
        if hits.is_empty() {
            return Ok(out);
        }
        let rates = DenialRates::load(d, s.get(LOOKBACK_DAYS), s.get(WINDOW_MINUTES)).await?;
        hits.sort_by(|a, b| {
            (rows::text(a, "actor_id"), -rows::n(a, "denied") as i64)
                .cmp(&(rows::text(b, "actor_id"), -rows::n(b, "denied") as i64))
        });
        for r in hits {
            let actor = rows::text(&r, "actor_id");
            let (start, end) = (
                rows::text(&r, "first_denied"),
                rows::text(&r, "last_denied"),
            );
            // Overlap in time, not in RFC 3339 text ("…:00Z" sorts after "…:00.5Z").
            let at = |t: &str| crate::timerange::parse_instant(t).ok();
            if out.iter().any(|f| {
                f.actor_id == actor
                    && at(&f.window_start) <= at(&end)
                    && at(&start) <= at(&f.window_end)
            }) {
                continue;
            }
            let resources = rows::list(&r, "resources");
            let n = rows::n(&r, "denied");
            let lambda = rates.lambda(&actor, &start, &end);
            let p = tail(lambda, n);
            if p >= s.get(P_VALUE) {
                continue;
            }
            let mut f = finding(
                self,
                self.default_severity(),
                &actor,
                rows::s(&r, "actor_name"),
                resources.clone(),
                &start,
                &end,
                None,
            );
            f.score = (n / (2.0 * s.get(MIN_DENIED))).clamp(0.5, 1.0);
            f.observed = numbers([("denied", int(n)), ("secrets", int(resources.len() as f64))]);
            f.baseline = numbers([
                ("min_denied", int(s.get(MIN_DENIED))),
                ("window_minutes", int(s.get(WINDOW_MINUTES))),
                ("typical_denied_per_window", round(lambda, 3)),
                ("p", p_value(p)),
            ]);
            f.explanation = format!(
                "{} was denied {n} secret reads on {} secret{} within {:.0} minutes.",
                who(&r),
                resources.len(),
                if resources.len() == 1 { "" } else { "s" },
                s.get(WINDOW_MINUTES)
            );
            out.push(f);
        }
        Ok(out)
    }
}
