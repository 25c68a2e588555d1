use super::*;
use crate::detect::finding::numbers;
use crate::detect::{DetectorSettings, Param};

/// VG012 denied-then-success.
pub struct DeniedThenSuccess;

const DOC: &str = "\
What: a principal is denied secret reads (default at least 3) and then, within an hour of the
last denial, reads a secret successfully.
Why: probing followed by success is a credential or policy that was found to work: the moment
an attacker gets in (Sigma's temporal_ordered example, Panther's AccessDenied follow-ups).
Tuning: min_denied, within_minutes.
False positives: a permission fixed by an administrator while the caller retried.";

const SQL: &str = "
WITH denied AS (
  SELECT actor_id, max(actor_name) AS actor_name, min(event_time) AS first_denied,
         max(event_time) AS last_denied, count(*) AS denied, array_agg(DISTINCT resource_id) AS denied_resources
  FROM secret_reads
  WHERE outcome = 'denied' AND actor_id IS NOT NULL AND event_time >= $from AND event_time < $to
  GROUP BY actor_id
  HAVING count(*) >= $min_denied),
success AS (
  SELECT s.actor_id, min(s.event_time) AS first_success, count(*) AS reads,
         array_agg(DISTINCT s.resource_id) AS resources
  FROM denied d JOIN secret_reads s ON s.actor_id = d.actor_id
  WHERE s.outcome = 'success' AND s.event_time > d.first_denied
    AND CAST(s.event_time AS BIGINT) <= CAST(d.last_denied AS BIGINT) + $within
    AND s.event_time >= $from AND s.event_time < $to_late
  GROUP BY s.actor_id)
SELECT d.*, s.first_success, s.reads, s.resources
FROM denied d JOIN success s ON s.actor_id = d.actor_id
ORDER BY d.first_denied, d.actor_id";

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
        &[
            Param {
                name: "min_denied",
                default: 3.0,
                doc: "denied reads before the success",
            },
            Param {
                name: "within_minutes",
                default: 60.0,
                doc: "time from the last denial to the success",
            },
        ]
    }
    async fn detect(
        &self,
        d: &DetectContext<'_>,
        s: &DetectorSettings,
    ) -> Result<Vec<Finding>, QueryError> {
        let within = s.minutes_nanos("within_minutes");
        let mut params = bounds(d, 0);
        params.push(("min_denied", rows::int(s.get("min_denied"))));
        params.push(("within", rows::int(within as f64)));
        // A success just after the window still completes a probe that happened inside it.
        params.push(("to_late", rows::ts(d.window.to.saturating_add(within))));
        let mut out = Vec::new();
        for r in query(d, SQL, params).await? {
            let actor = rows::text(&r, "actor_id");
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
                ("min_denied", int(s.get("min_denied"))),
                ("within_minutes", int(s.get("within_minutes"))),
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
