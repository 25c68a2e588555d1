use super::*;
use crate::detect::finding::numbers;
use crate::detect::{DetectorSettings, Param};

/// VG016 cross-environment.
const LOOKBACK_DAYS: Param = Param {
    name: "lookback_days",
    default: 30.0,
    doc: "history in which a known crossing is low severity",
};

pub struct CrossEnvironment;

const DOC: &str = "\
What: a principal of one environment successfully reads a secret of another (a staging service
reading a prod secret), environments as [[environments]] in vigil.toml assigns them (or by the
names prod, staging, dev, ... when none are configured). Denied attempts do not fire.
Why: environment boundaries are the first blast-radius control; a crossing is a too-wide policy
or a stolen credential walking sideways.
Severity: high when the pair (principal, secret) is new in the lookback, else low (a standing
crossing the cross-environment report lists every week).
Tuning: [[environments]]; lookback_days.
False positives: shared platform secrets (CA bundles) read by every environment; allowlist them by
resource.";

const SQL: &str = "
WITH win AS (
  SELECT actor_id, actor_name, actor_role, resource_id, resource_name, tenant,
         min(event_time) AS first_read, max(event_time) AS last_read, count(*) AS reads
  FROM secret_reads
  WHERE outcome = 'success' AND actor_id IS NOT NULL AND resource_id IS NOT NULL
    AND event_time >= $from AND event_time < $to
  GROUP BY actor_id, actor_name, actor_role, resource_id, resource_name, tenant),
envs AS (
  SELECT *, vigil_actor_env(actor_id, actor_name, actor_role) AS actor_env,
         vigil_resource_env(resource_id, resource_name, tenant) AS resource_env
  FROM win),
crossing AS (
  SELECT actor_id, max(actor_name) AS actor_name, actor_env, resource_id, resource_env,
         min(first_read) AS first_read, max(last_read) AS last_read, sum(reads) AS reads
  FROM envs
  WHERE actor_env IS NOT NULL AND resource_env IS NOT NULL AND actor_env <> resource_env
  GROUP BY actor_id, actor_env, resource_id, resource_env),
prev AS (
  -- from the hourly rollups: the lookback's (hour, principal, secret) groups, not its events
  SELECT DISTINCT e.actor_id, e.resource_id
  FROM (SELECT DISTINCT actor_id AS wanted FROM crossing) w JOIN event_counts e ON e.actor_id = w.wanted
  WHERE e.is_secret_read AND e.outcome = 'success'
    AND e.last_time >= $hist_from AND e.first_time < $from)
SELECT c.*, p.actor_id IS NOT NULL AS seen_before
FROM crossing c LEFT JOIN prev p ON p.actor_id = c.actor_id AND p.resource_id = c.resource_id
ORDER BY c.first_read, c.actor_id, c.resource_id";

#[async_trait::async_trait]
impl Detector for CrossEnvironment {
    fn code(&self) -> &'static str {
        "VG016"
    }
    fn name(&self) -> &'static str {
        "cross-environment"
    }
    fn summary(&self) -> &'static str {
        "a principal of one environment reads another environment's secret"
    }
    fn doc(&self) -> &'static str {
        DOC
    }
    fn default_severity(&self) -> Severity {
        Severity::High
    }
    fn params(&self) -> &'static [Param] {
        &[LOOKBACK_DAYS]
    }
    async fn detect(
        &self,
        d: &DetectContext<'_>,
        s: &DetectorSettings,
    ) -> Result<Vec<Finding>, QueryError> {
        let mut out = Vec::new();
        for r in query(d, SQL, bounds(d, s.days_nanos(LOOKBACK_DAYS))).await? {
            let actor = rows::text(&r, "actor_id");
            let resource = rows::text(&r, "resource_id");
            let seen = rows::flag(&r, "seen_before").unwrap_or(false);
            let severity = if seen {
                Severity::Low
            } else {
                self.default_severity()
            };
            let (ae, re) = (rows::text(&r, "actor_env"), rows::text(&r, "resource_env"));
            let mut f = finding(
                self,
                severity,
                &actor,
                rows::s(&r, "actor_name"),
                vec![resource.clone()],
                rows::s(&r, "first_read").unwrap_or(""),
                rows::s(&r, "last_read").unwrap_or(""),
                Some(&resource),
            );
            f.score = if seen { 0.5 } else { 0.9 };
            f.observed = numbers([
                ("reads", int(rows::n(&r, "reads"))),
                ("actor_env", ae.clone().into()),
                ("resource_env", re.clone().into()),
            ]);
            f.baseline = numbers([("pair_seen_in_lookback", int(if seen { 1.0 } else { 0.0 }))]);
            f.explanation = format!(
                "{} ({ae}) read {resource} ({re}){}.",
                who(&r),
                if seen {
                    ", as it already did in the lookback"
                } else {
                    " for the first time"
                }
            );
            out.push(f);
        }
        Ok(out)
    }
}
