use super::*;
use crate::detect::finding::numbers;
use crate::detect::{DetectorSettings, Param};

/// VG013 canary-touched.
pub struct CanaryTouched;

const DOC: &str = "\
What: any request on a canary (decoy) secret: a resource matching [canaries] resources in
vigil.toml (wildcards on resource_id or resource_name), whatever the outcome.
Why: nobody legitimate reads a decoy, so every touch is worth waking someone (Panther
Decoy.Secret.Accessed). No baseline and no history needed.
Tuning: [canaries] resources = [\"*/canary/*\"]. Nothing fires without it.
False positives: an inventory or backup job that lists everything; allowlist it by actor.";

const SQL: &str = "
SELECT actor_id, max(actor_name) AS actor_name, resource_id, count(*) AS events,
       min(event_time) AS first_seen, max(event_time) AS last_seen,
       array_agg(DISTINCT operation) AS operations, array_agg(DISTINCT outcome) AS outcomes,
       min(src_ip) AS src_ip
FROM events
WHERE event_time >= $from AND event_time < $to AND resource_id IS NOT NULL
  AND vigil_is_canary(resource_id, resource_name)
GROUP BY actor_id, resource_id
ORDER BY first_seen, actor_id, resource_id";

#[async_trait::async_trait]
impl Detector for CanaryTouched {
    fn code(&self) -> &'static str {
        "VG013"
    }
    fn name(&self) -> &'static str {
        "canary-touched"
    }
    fn summary(&self) -> &'static str {
        "a decoy secret ([canaries]) was touched"
    }
    fn doc(&self) -> &'static str {
        DOC
    }
    fn default_severity(&self) -> Severity {
        Severity::Critical
    }
    /// A touched canary is news at once: every minute.
    fn look_every(&self, _s: &DetectorSettings) -> Option<i64> {
        Some(crate::timerange::NANOS_PER_MINUTE)
    }
    fn params(&self) -> &'static [Param] {
        &[]
    }
    async fn detect(
        &self,
        d: &DetectContext<'_>,
        _s: &DetectorSettings,
    ) -> Result<Vec<Finding>, QueryError> {
        if d.query.canaries.is_empty() {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for r in query(d, SQL, bounds(d, 0)).await? {
            let actor = rows::s(&r, "actor_id").unwrap_or("unknown").to_owned();
            let resource = rows::text(&r, "resource_id");
            let ops = rows::list(&r, "operations").join(", ");
            let mut f = finding(
                self,
                self.default_severity(),
                &actor,
                rows::s(&r, "actor_name"),
                vec![resource.clone()],
                rows::s(&r, "first_seen").unwrap_or(""),
                rows::s(&r, "last_seen").unwrap_or(""),
                Some(&resource),
            );
            f.score = 1.0;
            f.observed = numbers([
                ("events", int(rows::n(&r, "events"))),
                ("operations", ops.clone().into()),
                ("src_ip", rows::text(&r, "src_ip").into()),
            ]);
            f.explanation = format!(
                "{} touched the canary secret {resource} ({ops}; {}).",
                who(&r),
                rows::list(&r, "outcomes").join(", ")
            );
            out.push(f);
        }
        Ok(out)
    }
}
