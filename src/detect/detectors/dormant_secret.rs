use super::*;
use crate::detect::finding::{numbers, round};
use crate::detect::{DetectorSettings, Param};

/// VG014 dormant-secret-reactivated.
const DORMANT_DAYS: Param = Param {
    name: "dormant_days",
    default: 90.0,
    doc: "days without reads that make a secret dormant",
};
const MAX_LOOKBACK_DAYS: Param = Param {
    name: "max_lookback_days",
    default: 365.0,
    doc: "how far back the last read is looked up",
};

pub struct DormantSecret;

const DOC: &str = "\
What: a secret that nobody read for dormant_days (default 90) is read again.
Why: forgotten secrets (old integrations, departed teams) keep working credentials; an attacker
who finds one in a repository or a wiki uses it long after its owners stopped (Elastic's rare-user
rationale, Panther/ESCU rare-usage hunts).
Method: the last successful read of each secret read in the window, looked up over
max_lookback_days before the window (a secret last read earlier than that is not known).
Tuning: dormant_days, max_lookback_days.
False positives: quarterly and yearly jobs (allowlist them by actor or resource).";

const SQL: &str = "
WITH win AS (
  SELECT resource_id, min(event_time) AS first_read, max(event_time) AS last_read, count(*) AS reads,
         first_value(actor_id ORDER BY event_time) AS actor_id,
         first_value(actor_name ORDER BY event_time) AS actor_name,
         count(DISTINCT arrow_cast(actor_id, 'Utf8')) AS readers
  FROM secret_reads
  WHERE outcome = 'success' AND resource_id IS NOT NULL AND actor_id IS NOT NULL
    AND event_time >= $from AND event_time < $to
  GROUP BY resource_id),
prev AS (
  -- from the hourly rollups: the lookback's hours, not its events
  SELECT e.resource_id, max(e.last_time) AS last_before, sum(e.events) AS reads_before
  FROM (SELECT resource_id AS wanted FROM win) w JOIN event_counts e ON e.resource_id = w.wanted
  WHERE e.is_secret_read AND e.outcome = 'success'
    AND e.last_time >= $hist_from AND e.first_time < $from
  GROUP BY e.resource_id)
SELECT w.*, p.last_before, p.reads_before
FROM win w JOIN prev p ON p.resource_id = w.resource_id
WHERE p.last_before < $dormant_before
ORDER BY w.first_read, w.resource_id";

#[async_trait::async_trait]
impl Detector for DormantSecret {
    fn code(&self) -> &'static str {
        "VG014"
    }
    fn name(&self) -> &'static str {
        "dormant-secret-reactivated"
    }
    fn summary(&self) -> &'static str {
        "a secret nobody read for months is read again"
    }
    fn doc(&self) -> &'static str {
        DOC
    }
    fn default_severity(&self) -> Severity {
        Severity::Medium
    }
    fn params(&self) -> &'static [Param] {
        &[DORMANT_DAYS, MAX_LOOKBACK_DAYS]
    }
    async fn detect(
        &self,
        d: &DetectContext<'_>,
        s: &DetectorSettings,
    ) -> Result<Vec<Finding>, QueryError> {
        let mut params = bounds(d, s.days_nanos(MAX_LOOKBACK_DAYS));
        params.push((
            "dormant_before",
            rows::ts(d.window.from - s.days_nanos(DORMANT_DAYS)),
        ));
        let mut out = Vec::new();
        for r in query(d, SQL, params).await? {
            let actor = rows::text(&r, "actor_id");
            let resource = rows::text(&r, "resource_id");
            let idle = days_between(&r, "last_before", "first_read");
            let mut f = finding(
                self,
                self.default_severity(),
                &actor,
                rows::s(&r, "actor_name"),
                vec![resource.clone()],
                rows::s(&r, "first_read").unwrap_or(""),
                rows::s(&r, "last_read").unwrap_or(""),
                Some(&resource),
            );
            f.score = (idle / (2.0 * s.get(DORMANT_DAYS))).clamp(0.5, 1.0);
            f.observed = numbers([
                ("reads", int(rows::n(&r, "reads"))),
                ("readers", int(rows::n(&r, "readers"))),
            ]);
            f.baseline = numbers([
                ("days_idle", round(idle, 1)),
                ("last_read_before", rows::text(&r, "last_before").into()),
            ]);
            f.explanation = format!(
                "{} read {resource}, which nobody had read for {idle:.0} days (last read {}).",
                who(&r),
                rows::text(&r, "last_before")
            );
            out.push(f);
        }
        Ok(out)
    }
}
