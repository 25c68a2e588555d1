use super::*;
use crate::detect::finding::{numbers, round};
use crate::detect::{DetectorSettings, Param};

/// VG015 dormant-principal-reactivated.
pub struct DormantPrincipal;

const DOC: &str = "\
What: a principal silent for dormant_days (default 30) reads secrets again.
Why: credentials of people who left, or of decommissioned services, that come back to life are
a classic sign of misuse (Elastic Rare User: \"dormant user account\").
Method: the principal's last event of any kind before the window, over max_lookback_days.
Tuning: dormant_days, max_lookback_days.
False positives: people back from long leave, seasonal jobs.";

const SQL: &str = "
WITH win AS (
  SELECT actor_id, max(actor_name) AS actor_name, min(event_time) AS first_read,
         max(event_time) AS last_read, count(*) AS reads, array_agg(DISTINCT resource_id) AS resources
  FROM secret_reads
  WHERE actor_id IS NOT NULL AND event_time >= $from AND event_time < $to
  GROUP BY actor_id),
prev AS (
  -- from the hourly rollups: the lookback's hours, not its events
  SELECT e.actor_id, max(e.last_time) AS last_before, sum(e.events) AS events_before
  FROM (SELECT actor_id AS wanted FROM win) w JOIN event_counts e ON e.actor_id = w.wanted
  WHERE e.last_time >= $hist_from AND e.first_time < $from
  GROUP BY e.actor_id)
SELECT w.*, p.last_before, p.events_before
FROM win w JOIN prev p ON p.actor_id = w.actor_id
WHERE p.last_before < $dormant_before
ORDER BY w.first_read, w.actor_id";

#[async_trait::async_trait]
impl Detector for DormantPrincipal {
    fn code(&self) -> &'static str {
        "VG015"
    }
    fn name(&self) -> &'static str {
        "dormant-principal-reactivated"
    }
    fn summary(&self) -> &'static str {
        "a principal silent for weeks reads secrets again"
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
                name: "dormant_days",
                default: 30.0,
                doc: "days without events that make a principal dormant",
            },
            Param {
                name: "max_lookback_days",
                default: 365.0,
                doc: "how far back the last event is looked up",
            },
        ]
    }
    async fn detect(
        &self,
        d: &DetectContext<'_>,
        s: &DetectorSettings,
    ) -> Result<Vec<Finding>, QueryError> {
        let mut params = bounds(d, s.days_nanos("max_lookback_days"));
        params.push((
            "dormant_before",
            rows::ts(d.window.from - s.days_nanos("dormant_days")),
        ));
        let mut out = Vec::new();
        for r in query(d, SQL, params).await? {
            let actor = rows::text(&r, "actor_id");
            let idle = days_between(&r, "last_before", "first_read");
            let resources = rows::list(&r, "resources");
            let mut f = finding(
                self,
                self.default_severity(),
                &actor,
                rows::s(&r, "actor_name"),
                resources,
                rows::s(&r, "first_read").unwrap_or(""),
                rows::s(&r, "last_read").unwrap_or(""),
                None,
            );
            f.score = (idle / (2.0 * s.get("dormant_days"))).clamp(0.5, 1.0);
            f.observed = numbers([("reads", int(rows::n(&r, "reads")))]);
            f.baseline = numbers([
                ("days_idle", round(idle, 1)),
                ("last_event_before", rows::text(&r, "last_before").into()),
            ]);
            f.explanation = format!(
                "{} read secrets after {idle:.0} days without any activity (last seen {}).",
                who(&r),
                rows::text(&r, "last_before")
            );
            out.push(f);
        }
        Ok(out)
    }
}
