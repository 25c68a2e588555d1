use super::*;
use crate::detect::finding::{numbers, round};
use crate::detect::{DetectorSettings, Param};

/// VG015 dormant-principal-reactivated.
const DORMANT_DAYS: Param = Param {
    name: "dormant_days",
    default: 30.0,
    doc: "days without events that make a principal dormant",
};
const WORKLOAD_DORMANT_DAYS: Param = Param {
                name: "workload_dormant_days",
                default: 7.0,
                doc: "days without events that make a workload dormant, when also gap_ratio x its longest earlier silence",
            };
const GAP_RATIO: Param = Param {
    name: "gap_ratio",
    default: 10.0,
    doc: "how many times its longest earlier silence a workload's silence must be",
};
const MAX_LOOKBACK_DAYS: Param = Param {
    name: "max_lookback_days",
    default: 365.0,
    doc: "how far back the last event is looked up",
};

pub struct DormantPrincipal;

const DOC: &str = "\
What: a principal silent for dormant_days (default 30) reads secrets again; or a workload silent
for at least workload_dormant_days (default 7) and at least gap_ratio (default 10) times the
longest silence it had before in the history (services do not take holidays: a job that ran
every hour and was silent for three weeks is dormant by its own measure, whatever the calendar).
Why: credentials of people who left, or of decommissioned services, that come back to life are
a classic sign of misuse (Elastic Rare User: \"dormant user account\").
Method: the principal's last event of any kind before the window, over max_lookback_days.
Tuning: dormant_days, workload_dormant_days, gap_ratio, max_lookback_days.
False positives: people back from long leave, seasonal jobs.";

const SQL: &str = "
WITH win AS (
  SELECT actor_id, max(actor_name) AS actor_name, max(actor_type) AS actor_type, min(event_time) AS first_read,
         max(event_time) AS last_read, count(*) AS reads, array_agg(DISTINCT resource_id) AS resources
  FROM secret_reads
  WHERE actor_id IS NOT NULL AND event_time >= $from AND event_time < $to
  GROUP BY actor_id),
prev AS (
  -- from the principal rollups: the lookback's hours per principal, not its events
  SELECT e.actor_id, max(e.last_time) AS last_before, sum(e.events) AS events_before
  FROM (SELECT actor_id AS wanted FROM win) w JOIN principal_counts e ON e.actor_id = w.wanted
  WHERE e.last_time >= $hist_from AND e.first_time < $from
  GROUP BY e.actor_id),
quiet AS (
  SELECT w.*, p.last_before, p.events_before
  FROM win w JOIN prev p ON p.actor_id = w.actor_id
  WHERE p.last_before < $quiet_before),
-- the quiet principals' active hours before, for their longest earlier silence
hours AS (
  SELECT DISTINCT e.actor_id, e.hour
  FROM (SELECT actor_id AS wanted FROM quiet) q JOIN principal_counts e ON e.actor_id = q.wanted
  WHERE e.last_time >= $hist_from AND e.first_time < $from),
gaps AS (
  SELECT actor_id, max(gap) AS longest_gap
  FROM (SELECT actor_id, CAST(hour AS BIGINT) - CAST(lag(hour) OVER (PARTITION BY actor_id ORDER BY hour) AS BIGINT) AS gap
        FROM hours) g
  GROUP BY actor_id)
SELECT q.*, g.longest_gap
FROM quiet q LEFT JOIN gaps g ON g.actor_id = q.actor_id
ORDER BY q.first_read, q.actor_id";

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
            DORMANT_DAYS,
            WORKLOAD_DORMANT_DAYS,
            GAP_RATIO,
            MAX_LOOKBACK_DAYS,
        ]
    }
    async fn detect(
        &self,
        d: &DetectContext<'_>,
        s: &DetectorSettings,
    ) -> Result<Vec<Finding>, QueryError> {
        let mut params = bounds(d, s.days_nanos(MAX_LOOKBACK_DAYS));
        let quiet = s
            .days_nanos(DORMANT_DAYS)
            .min(s.days_nanos(WORKLOAD_DORMANT_DAYS));
        params.push(("quiet_before", rows::ts(d.window.from - quiet)));
        let mut out = Vec::new();
        for r in query(d, SQL, params).await? {
            let actor = rows::text(&r, "actor_id");
            let idle = days_between(&r, "last_before", "first_read");
            let longest = rows::n(&r, "longest_gap") / DAY as f64;
            let by_calendar = idle >= s.get(DORMANT_DAYS);
            let by_own_measure = rows::s(&r, "actor_type") == Some("workload")
                && idle >= s.get(WORKLOAD_DORMANT_DAYS)
                && idle >= s.get(GAP_RATIO) * longest;
            if !by_calendar && !by_own_measure {
                continue;
            }
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
            f.score = (idle / (2.0 * s.get(DORMANT_DAYS))).clamp(0.5, 1.0);
            f.observed = numbers([("reads", int(rows::n(&r, "reads")))]);
            f.baseline = numbers([
                ("days_idle", round(idle, 1)),
                ("last_event_before", rows::text(&r, "last_before").into()),
                ("longest_earlier_silence_days", round(longest, 2)),
            ]);
            f.explanation = if by_calendar {
                format!(
                    "{} read secrets after {idle:.0} days without any activity (last seen {}).",
                    who(&r),
                    rows::text(&r, "last_before")
                )
            } else {
                format!(
                    "{} read secrets after {idle:.1} days without any activity (last seen {}); before that it was never silent for more than {longest:.2} days.",
                    who(&r),
                    rows::text(&r, "last_before")
                )
            };
            out.push(f);
        }
        Ok(out)
    }
}
