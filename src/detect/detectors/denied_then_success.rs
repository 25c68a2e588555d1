use super::denial_rate::{tail, DenialRates};
use super::*;

use crate::detect::finding::{numbers, p_value, round};
use crate::detect::{DetectorSettings, Param};

/// VG012 denied-then-success.
const MIN_DENIED: Param = Param {
    name: "min_denied",
    default: 3.0,
    doc: "denied reads before the success",
};
const WITHIN_MINUTES: Param = Param {
    name: "within_minutes",
    default: 60.0,
    doc: "length of a run of denials, and time from its last denial to the success",
};
const P_VALUE: Param = Param {
    name: "p_value",
    default: 1e-5,
    doc: "Poisson tail probability of the run below which it is a probe",
};
const LOOKBACK_DAYS: Param = Param {
    name: "lookback_days",
    default: 28.0,
    doc: "history the principal's usual denial rate is learned from",
};

pub struct DeniedThenSuccess;

const DOC: &str = "\
What: a principal is denied at least min_denied secret reads within within_minutes, and then,
within within_minutes of the last of those denials, reads a secret successfully.
Why: probing followed by success is a credential or policy that was found to work: the moment
an attacker gets in (Sigma's temporal_ordered example, Panther's AccessDenied follow-ups).
Method: for every denial, the denials of the same principal in the within_minutes before it
(a run); a run of min_denied or more followed by a success within within_minutes fires when
it is also improbable for this principal: lambda = its denials at the same UTC hour of day in
the lookback per within_minutes (over the history the store holds, at most lookback_days), p = P(X >= run |
Poisson(lambda)) < p_value. A principal never denied before has lambda = 0 and fires on the run
alone. (Counting a whole day's denials made 72 high findings a day on 10 M generated events:
busy workloads are denied ~1 % of the time, a few times an hour.)
Tuning: min_denied (3), within_minutes (60), p_value (1e-5), lookback_days (28).
False positives: a permission fixed by an administrator while the caller retried.";

/// `{within}` is the run length in nanoseconds, written into the text because window frame
/// bounds cannot be placeholders (it is a number from the validated settings).
const SQL: &str = "
WITH denials AS (
  SELECT actor_id, actor_name, event_time,
         count(*) OVER (PARTITION BY actor_id ORDER BY CAST(event_time AS BIGINT)
                        RANGE BETWEEN {within} PRECEDING AND CURRENT ROW) AS run,
         min(event_time) OVER (PARTITION BY actor_id ORDER BY CAST(event_time AS BIGINT)
                        RANGE BETWEEN {within} PRECEDING AND CURRENT ROW) AS run_start
  FROM secret_reads
  WHERE outcome = 'denied' AND actor_id IS NOT NULL
    AND event_time >= $from_early AND event_time < $to),
probes AS (
  SELECT actor_id, actor_name, event_time AS probe_time, run, run_start FROM denials
  WHERE run >= $min_denied AND event_time >= $from),
hits AS (
  SELECT p.actor_id, p.actor_name, p.run, p.run_start, s.event_uid, s.event_time AS success_time,
         s.resource_id
  FROM probes p JOIN secret_reads s ON s.actor_id = p.actor_id
  WHERE s.outcome = 'success' AND s.event_time > p.probe_time
    AND CAST(s.event_time AS BIGINT) <= CAST(p.probe_time AS BIGINT) + $within
    AND s.event_time >= $from AND s.event_time < $to_late)
SELECT actor_id, max(actor_name) AS actor_name, min(run_start) AS first_denied, max(run) AS denied,
       min(success_time) AS first_success, count(DISTINCT arrow_cast(event_uid, 'Utf8')) AS reads,
       array_agg(DISTINCT resource_id) AS resources
FROM hits
GROUP BY actor_id
ORDER BY first_denied, actor_id";

#[async_trait::async_trait]
impl Detector for DeniedThenSuccess {
    fn code(&self) -> &'static str {
        "VG012"
    }
    fn name(&self) -> &'static str {
        "denied-then-success"
    }
    fn summary(&self) -> &'static str {
        "denied secret reads followed by a successful one"
    }
    fn doc(&self) -> &'static str {
        DOC
    }
    fn default_severity(&self) -> Severity {
        Severity::High
    }
    fn params(&self) -> &'static [Param] {
        &[MIN_DENIED, WITHIN_MINUTES, P_VALUE, LOOKBACK_DAYS]
    }
    async fn detect(
        &self,
        d: &DetectContext<'_>,
        s: &DetectorSettings,
    ) -> Result<Vec<Finding>, QueryError> {
        let within = s.minutes_nanos(WITHIN_MINUTES);
        let mut params = bounds(d, 0);
        params.push(("from_early", rows::ts(d.window.from.saturating_sub(within))));
        params.push(("min_denied", rows::int(s.get(MIN_DENIED))));
        params.push(("within", rows::int(within as f64)));
        // A success just after the window still completes a probe that happened inside it.
        params.push(("to_late", rows::ts(d.window.to.saturating_add(within))));
        let mut out = Vec::new();
        let sql = SQL.replace("{within}", &within.max(0).to_string());
        let found = query(d, &sql, params).await?;
        if found.is_empty() {
            return Ok(out);
        }
        let rates = DenialRates::load(d, s.get(LOOKBACK_DAYS), s.get(WITHIN_MINUTES)).await?;
        for r in found {
            let actor = rows::text(&r, "actor_id");
            let run = rows::n(&r, "denied");
            let lambda = rates.lambda(
                &actor,
                rows::s(&r, "first_denied").unwrap_or(""),
                rows::s(&r, "first_success").unwrap_or(""),
            );
            let p = tail(lambda, run);
            if p >= s.get(P_VALUE) {
                continue;
            }
            let resources = rows::list(&r, "resources");
            let mut f = finding(
                self,
                self.default_severity(),
                &actor,
                rows::s(&r, "actor_name"),
                resources.clone(),
                rows::s(&r, "first_denied").unwrap_or(""),
                rows::s(&r, "first_success").unwrap_or(""),
                None,
            );
            f.score = 0.9;
            f.observed = numbers([
                ("denied", int(rows::n(&r, "denied"))),
                ("successful_reads", int(rows::n(&r, "reads"))),
            ]);
            f.baseline = numbers([
                ("min_denied", int(s.get(MIN_DENIED))),
                ("within_minutes", int(s.get(WITHIN_MINUTES))),
                ("typical_denied_per_run_window", round(lambda, 3)),
                ("p", p_value(p)),
            ]);
            f.explanation = format!(
                "{} was denied {} secret reads, then read {} successfully at {}.",
                who(&r),
                rows::n(&r, "denied"),
                resources.join(", "),
                rows::text(&r, "first_success")
            );
            out.push(f);
        }
        Ok(out)
    }
}
