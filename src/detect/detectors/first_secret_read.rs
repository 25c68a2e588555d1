use super::*;
use crate::detect::finding::{numbers, round};
use crate::detect::{DetectorSettings, Param};

/// VG002 first-secret-read-by-principal.
const LOOKBACK_DAYS: Param = Param {
    name: "lookback_days",
    default: 30.0,
    doc: "history compared with the window",
};

pub struct FirstSecretRead;

const DOC: &str = "\
What: a principal reads secrets in the window but read none in the lookback (default 30 days):
a new identity, or one that never needed secrets before.
Why: a freshly created user or role that goes straight for secrets, or a dormant identity put to
new use, is how persistence and privilege escalation look in audit logs (Elastic's first-time rule).
Example: user contractor-tmp, active for weeks in other APIs, reads prod/payments/db.
Cold start: quiet (and says so) while the store holds less history than the lookback, when
every principal would look new.
Tuning: lookback_days; allowlist provisioning pipelines by actor.
False positives: new services on their first deploy.";

const SQL: &str = "
WITH win AS (
  SELECT actor_id, max(actor_name) AS actor_name, min(event_time) AS first_read,
         max(event_time) AS last_read, count(*) AS reads,
         array_agg(DISTINCT resource_id) AS resources
  FROM secret_reads
  WHERE outcome = 'success' AND actor_id IS NOT NULL AND event_time >= $from AND event_time < $to
  GROUP BY actor_id),
readers AS (
  -- from the rollups: the lookback's hours, not its events
  SELECT DISTINCT actor_id FROM event_counts
  WHERE is_secret_read AND actor_id IS NOT NULL AND last_time >= $hist_from AND first_time < $from),
seen AS (
  SELECT actor_id, min(first_time) AS first_seen, sum(events) AS events FROM principal_counts
  WHERE actor_id IS NOT NULL AND last_time >= $hist_from AND first_time < $from
  GROUP BY actor_id)
SELECT w.*, s.first_seen, s.events
FROM win w
LEFT JOIN readers r ON r.actor_id = w.actor_id
LEFT JOIN seen s ON s.actor_id = w.actor_id
WHERE r.actor_id IS NULL
ORDER BY w.first_read, w.actor_id";

#[async_trait::async_trait]
impl Detector for FirstSecretRead {
    fn code(&self) -> &'static str {
        "VG002"
    }
    fn name(&self) -> &'static str {
        "first-secret-read-by-principal"
    }
    fn summary(&self) -> &'static str {
        "a principal reads secrets for the first time in the lookback"
    }
    fn doc(&self) -> &'static str {
        DOC
    }
    fn default_severity(&self) -> Severity {
        Severity::Low
    }
    fn params(&self) -> &'static [Param] {
        &[LOOKBACK_DAYS]
    }
    async fn detect(
        &self,
        d: &DetectContext<'_>,
        s: &DetectorSettings,
    ) -> Result<Vec<Finding>, QueryError> {
        let lookback = s.days_nanos(LOOKBACK_DAYS);
        let mut out = Vec::new();
        let store_days = store_history_days(d).await?;
        if store_days < s.get(LOOKBACK_DAYS) {
            d.note(format!(
                "VG002 quiet: the store holds {store_days:.1} days before the window; it needs the whole lookback ({} days) to call a principal new",
                s.get(LOOKBACK_DAYS)
            ));
            return Ok(Vec::new());
        }
        for r in query(d, SQL, bounds(d, lookback)).await? {
            let actor = rows::text(&r, "actor_id");
            let cold = false;
            let known = rows::s(&r, "first_seen").is_some();
            let severity = self.default_severity();
            let resources = rows::list(&r, "resources");
            let mut f = finding(
                self,
                severity,
                &actor,
                rows::s(&r, "actor_name"),
                resources.clone(),
                rows::s(&r, "first_read").unwrap_or(""),
                rows::s(&r, "last_read").unwrap_or(""),
                None,
            );
            f.cold_start = cold;
            f.score = if known { 0.7 } else { 0.6 };
            f.observed = numbers([
                ("reads", int(rows::n(&r, "reads"))),
                ("secrets", int(resources.len() as f64)),
            ]);
            f.baseline = numbers([
                ("secret_reads", int(0.0)),
                ("other_events", int(rows::n(&r, "events"))),
                (
                    "history_days",
                    round(store_days.min(s.get(LOOKBACK_DAYS)), 1),
                ),
            ]);
            f.explanation = if known {
                format!("{} read {} secret{} but read none in the previous {:.0} days ({} other events then).",
                    who(&r), resources.len(), if resources.len() == 1 { "" } else { "s" },
                    store_days.min(s.get(LOOKBACK_DAYS)), rows::n(&r, "events"))
            } else {
                format!("{} is new: no events at all in the previous {:.0} days, and it read {} secret{}.",
                    who(&r), store_days.min(s.get(LOOKBACK_DAYS)), resources.len(), if resources.len() == 1 { "" } else { "s" })
            };
            out.push(f);
        }
        Ok(out)
    }
}
