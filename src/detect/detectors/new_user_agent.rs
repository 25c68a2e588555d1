use super::*;
use crate::detect::finding::numbers;
use crate::detect::{DetectorSettings, Param};

/// VG004 new-user-agent.
pub struct NewUserAgent;

const DOC: &str = "\
What: a principal reads secrets with a client (user-agent family: the product before the first
'/' or space, e.g. aws-cli, boto3, kubectl, curl) it did not use in the lookback. A new scripting
or attack tool (curl, wget, python-requests, Go-http-client, TruffleHog, Postman, kali) is high.
Why: a workload's client library does not change by itself; a human role suddenly scripted with
curl, or a TruffleHog user agent, is how secret harvesting looks (Elastic's scripting-client
rules, Sigma TruffleHog, GuardDuty user-agent findings).
Cold start: principals with fewer than min_events calls with a user agent in the lookback stay
quiet.
Tuning: lookback_days, min_events.
False positives: SDK upgrades that rename the product, new tooling rolled out.";

const SQL: &str = "
WITH win_ua AS (
  SELECT actor_id, user_agent, max(actor_name) AS actor_name, min(event_time) AS first_seen,
         max(event_time) AS last_seen, count(*) AS events, array_agg(DISTINCT resource_id) AS resources
  FROM secret_reads
  WHERE actor_id IS NOT NULL AND user_agent IS NOT NULL AND event_time >= $from AND event_time < $to
  GROUP BY actor_id, user_agent),
win AS (
  SELECT actor_id, vigil_ua_family(user_agent) AS family, max(actor_name) AS actor_name,
         min(first_seen) AS first_seen, max(last_seen) AS last_seen, sum(events) AS events,
         min(user_agent) AS user_agent, flatten(array_agg(resources)) AS resources
  FROM win_ua GROUP BY actor_id, vigil_ua_family(user_agent)),
hist_ua AS (
  SELECT actor_id, user_agent, sum(n) AS n FROM vigil_client_history
  WHERE user_agent IS NOT NULL
  GROUP BY actor_id, user_agent),
hist AS (SELECT actor_id, vigil_ua_family(user_agent) AS family, sum(n) AS n FROM hist_ua GROUP BY actor_id, vigil_ua_family(user_agent)),
actors AS (SELECT actor_id, sum(n) AS events, count(*) AS families FROM hist GROUP BY actor_id)
SELECT w.*, a.events AS hist_events, a.families AS hist_families
FROM win w
JOIN actors a ON a.actor_id = w.actor_id
LEFT JOIN hist h ON h.actor_id = w.actor_id AND h.family = w.family
WHERE h.actor_id IS NULL AND a.events >= $min_events
ORDER BY w.first_seen, w.actor_id, w.family";

/// Client families that scripts and secret-harvesting tools announce.
const SCRIPTING: [&str; 10] = [
    "curl",
    "wget",
    "python-requests",
    "go-http-client",
    "trufflehog",
    "postman",
    "postmanruntime",
    "kali",
    "python-urllib",
    "httpie",
];

#[async_trait::async_trait]
impl Detector for NewUserAgent {
    fn code(&self) -> &'static str {
        "VG004"
    }
    fn name(&self) -> &'static str {
        "new-user-agent"
    }
    fn summary(&self) -> &'static str {
        "a principal reads secrets with a client it never used in the lookback"
    }
    fn doc(&self) -> &'static str {
        DOC
    }
    fn default_severity(&self) -> Severity {
        Severity::Low
    }
    fn params(&self) -> &'static [Param] {
        &FIRST_SEEN_PARAMS
    }
    async fn detect(
        &self,
        d: &DetectContext<'_>,
        s: &DetectorSettings,
    ) -> Result<Vec<Finding>, QueryError> {
        let mut params = bounds(d, s.days_nanos(LOOKBACK_DAYS));
        params.push(("min_events", rows::int(s.get(MIN_EVENTS))));
        let mut out = Vec::new();
        let history = client_history(d, s.days_nanos(LOOKBACK_DAYS)).await?;
        let days = store_history_days(d).await?.min(s.get(LOOKBACK_DAYS));
        let sql = SQL.replace("vigil_client_history", &history);
        for r in query(d, &sql, params).await? {
            let actor = rows::text(&r, "actor_id");
            let family = rows::text(&r, "family");
            let scripting = SCRIPTING.iter().any(|t| family.contains(t));
            let severity = if scripting {
                Severity::High
            } else {
                self.default_severity()
            };
            let resources = rows::list(&r, "resources");
            let mut f = finding(
                self,
                severity,
                &actor,
                rows::s(&r, "actor_name"),
                resources,
                rows::s(&r, "first_seen").unwrap_or(""),
                rows::s(&r, "last_seen").unwrap_or(""),
                Some(&family),
            );
            f.score = if scripting { 0.9 } else { 0.6 };
            f.observed = numbers([
                ("user_agent", rows::text(&r, "user_agent").into()),
                ("family", family.clone().into()),
                ("reads", int(rows::n(&r, "events"))),
            ]);
            f.baseline = numbers([
                ("known_families", int(rows::n(&r, "hist_families"))),
                ("events", int(rows::n(&r, "hist_events"))),
            ]);
            f.explanation = format!(
                "{} read secrets with {family}, a client it did not use in {:.0} days{}.",
                who(&r),
                days,
                if scripting {
                    " (a scripting or secret-harvesting tool)"
                } else {
                    ""
                }
            );
            out.push(f);
        }
        Ok(out)
    }
}
