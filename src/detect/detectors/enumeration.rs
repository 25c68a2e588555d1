use super::*;
use crate::detect::finding::numbers;
use crate::detect::{DetectorSettings, Param};

/// VG009 enumeration.
pub struct Enumeration;

const DOC: &str = "\
What: a principal reads many distinct secrets within a few minutes (default 20 in 10 minutes),
more than twice its own busiest such window in the lookback.
Why: an attacker with a foothold lists and reads everything reachable; Elastic (cardinality 20 in
6 minutes), Panther (15 in 30 minutes) and Sigma value_count rules look for this breadth.
Method: distinct secrets per principal in windows of window_minutes, evaluated at two offsets
(half a window apart) so that a sweep across a boundary is still counted whole.
Tuning: min_secrets, window_minutes, lookback_days; allowlist deployers that read a whole
environment on each release.
False positives: deploy pipelines, secret-sync operators (External Secrets, CSI drivers).";

const SQL: &str = "
WITH bucketed AS (
  SELECT actor_id, actor_name, arrow_cast(resource_id, 'Utf8') AS resource_id, event_time,
         (CAST(event_time AS BIGINT) - $offset) / $width AS bucket
  FROM secret_reads
  WHERE actor_id IS NOT NULL AND resource_id IS NOT NULL AND event_time >= $from AND event_time < $to)
SELECT actor_id, max(actor_name) AS actor_name, bucket, count(DISTINCT resource_id) AS secrets,
       count(*) AS reads, min(event_time) AS first_read, max(event_time) AS last_read,
       array_agg(DISTINCT resource_id) AS resources
FROM bucketed
GROUP BY actor_id, bucket
HAVING count(DISTINCT resource_id) >= $min_secrets
ORDER BY actor_id, first_read";

const HISTORY: &str = "
WITH bucketed AS (
  SELECT actor_id, resource_id, CAST(event_time AS BIGINT) / $width AS bucket
  FROM (SELECT DISTINCT actor_id AS wanted FROM secret_reads WHERE event_time >= $from AND event_time < $to) w
  JOIN secret_reads ON actor_id = w.wanted
  WHERE true
    AND resource_id IS NOT NULL AND event_time >= $hist_from AND event_time < $from),
per AS (SELECT actor_id, bucket, count(DISTINCT resource_id) AS secrets FROM bucketed GROUP BY actor_id, bucket)
SELECT actor_id, max(secrets) AS max_secrets FROM per GROUP BY actor_id";

#[async_trait::async_trait]
impl Detector for Enumeration {
    fn code(&self) -> &'static str {
        "VG009"
    }
    fn name(&self) -> &'static str {
        "enumeration"
    }
    fn summary(&self) -> &'static str {
        "a principal reads many distinct secrets within minutes"
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
                name: "min_secrets",
                default: 20.0,
                doc: "distinct secrets in one window",
            },
            Param {
                name: "window_minutes",
                default: 10.0,
                doc: "length of the window",
            },
            Param {
                name: "lookback_days",
                default: 30.0,
                doc: "history for the principal's own busiest window",
            },
        ]
    }
    async fn detect(
        &self,
        d: &DetectContext<'_>,
        s: &DetectorSettings,
    ) -> Result<Vec<Finding>, QueryError> {
        let width = s.minutes_nanos("window_minutes").max(1);
        let mut hits: Vec<Row> = Vec::new();
        for offset in [0, width / 2] {
            let mut params = bounds(d, 0);
            params.push(("offset", rows::int(offset as f64)));
            params.push(("width", rows::int(width as f64)));
            params.push(("min_secrets", rows::int(s.get("min_secrets"))));
            hits.extend(query(d, SQL, params).await?);
        }
        if hits.is_empty() {
            return Ok(Vec::new());
        }
        let days = store_history_days(d).await?.min(s.get("lookback_days"));
        let mut params = bounds(d, s.days_nanos("lookback_days"));
        params.push(("width", rows::int(width as f64)));
        let hist: std::collections::BTreeMap<String, f64> = query(d, HISTORY, params)
            .await?
            .into_iter()
            .map(|r| (rows::text(&r, "actor_id"), rows::n(&r, "max_secrets")))
            .collect();
        // Per principal, keep the widest sweep among overlapping windows.
        hits.sort_by(|a, b| {
            (
                rows::text(a, "actor_id"),
                -rows::n(a, "secrets") as i64,
                rows::text(a, "first_read"),
            )
                .cmp(&(
                    rows::text(b, "actor_id"),
                    -rows::n(b, "secrets") as i64,
                    rows::text(b, "first_read"),
                ))
        });
        let mut kept: Vec<Row> = Vec::new();
        for h in hits {
            let overlaps = kept.iter().any(|k| {
                rows::s(k, "actor_id") == rows::s(&h, "actor_id")
                    && rows::text(k, "first_read") <= rows::text(&h, "last_read")
                    && rows::text(&h, "first_read") <= rows::text(k, "last_read")
            });
            if !overlaps {
                kept.push(h);
            }
        }
        let mut out = Vec::new();
        for r in kept {
            let actor = rows::text(&r, "actor_id");
            let n = rows::n(&r, "secrets");
            let usual = hist.get(&actor).copied().unwrap_or(0.0);
            if n <= 2.0 * usual {
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
            f.cold_start = !hist.contains_key(&actor);
            f.score = (1.0 - s.get("min_secrets") / (2.0 * n)).clamp(0.5, 1.0);
            f.observed = numbers([
                ("distinct_secrets", int(n)),
                ("reads", int(rows::n(&r, "reads"))),
            ]);
            f.baseline = numbers([
                ("max_distinct_secrets_per_window", int(usual)),
                ("window_minutes", int(s.get("window_minutes"))),
            ]);
            f.explanation = format!(
                "{} read {n} distinct secrets within {:.0} minutes; its busiest {:.0}-minute window in the last {:.0} days had {usual}.",
                who(&r), s.get("window_minutes"), s.get("window_minutes"), days
            );
            out.push(f);
        }
        Ok(out)
    }
}
