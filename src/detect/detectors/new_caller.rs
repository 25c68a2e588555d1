use super::*;
use crate::detect::finding::{numbers, round};
use crate::detect::{DetectorSettings, Param};

/// VG001 new-caller-for-secret.
pub struct NewCaller;

const DOC: &str = "\
What: a principal successfully reads a secret it has not read in the lookback (default 30 days).
Why: stolen credentials and over-broad policies show up as a known identity touching a secret it
never needed; the Elastic \"First Time Seen GetSecretValue\" rule and Microsoft's new-entity model
are the anchors.
Example: role analytics-etl reads prod/payments/db for the first time at 03:10.
Scoring: novelty is weighed by how stable the secret's set of callers is: lambda = callers that
appeared during the history per day; score = exp(-lambda). Only secrets with score >= min_score
(0.9: fewer than one new caller per ten days) are reported; 0.97 and above is high. A secret with
more than max_callers callers is noisy and gives low.
Cold start: quiet (and says so) while the store holds less than min_history_days before the
window; a secret first read less than min_history_days ago is new itself and its callers are not
reported.
Tuning: lookback_days, min_history_days, max_callers; allowlist deploy roles by actor.
False positives: new services, re-created roles with new ids, secrets rotated into a new name.";

const SQL: &str = "
WITH win AS (
  SELECT actor_id, resource_id, max(actor_name) AS actor_name, min(event_time) AS first_read,
         max(event_time) AS last_read, count(*) AS reads
  FROM secret_reads
  WHERE outcome = 'success' AND actor_id IS NOT NULL AND resource_id IS NOT NULL
    AND event_time >= $from AND event_time < $to
  GROUP BY actor_id, resource_id),
hist AS (
  -- from the hourly rollups: the lookback's (hour, principal, secret) groups, not its events
  SELECT resource_id, actor_id, min(first_time) AS first_seen
  FROM event_counts
  WHERE is_secret_read AND outcome = 'success' AND actor_id IS NOT NULL AND resource_id IS NOT NULL
    AND last_time >= $hist_from AND first_time < $from
  GROUP BY resource_id, actor_id),
secrets AS (
  SELECT resource_id, min(first_seen) AS secret_first_seen, count(*) AS callers,
         sum(CASE WHEN CAST(first_seen AS BIGINT) >= CAST(secret_min AS BIGINT) + $settle
             THEN 1 ELSE 0 END) AS new_callers
  FROM (SELECT resource_id, first_seen, min(first_seen) OVER (PARTITION BY resource_id) AS secret_min FROM hist)
  GROUP BY resource_id)
SELECT w.actor_id, w.resource_id, w.actor_name, w.first_read, w.last_read, w.reads,
       s.secret_first_seen, s.callers, s.new_callers
FROM win w
LEFT JOIN hist h ON h.actor_id = w.actor_id AND h.resource_id = w.resource_id
LEFT JOIN secrets s ON s.resource_id = w.resource_id
WHERE h.actor_id IS NULL
ORDER BY w.first_read, w.actor_id, w.resource_id";

#[async_trait::async_trait]
impl Detector for NewCaller {
    fn code(&self) -> &'static str {
        "VG001"
    }
    fn name(&self) -> &'static str {
        "new-caller-for-secret"
    }
    fn summary(&self) -> &'static str {
        "a principal reads a secret it never read in the lookback"
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
                name: "lookback_days",
                default: 30.0,
                doc: "history compared with the window",
            },
            Param {
                name: "min_history_days",
                default: 14.0,
                doc: "history a secret needs before novelty counts",
            },
            Param {
                name: "max_callers",
                default: 60.0,
                doc: "secrets with more callers are too noisy: low severity",
            },
            Param {
                name: "min_score",
                default: 0.9,
                doc: "report only secrets this stable: exp(-new callers per day)",
            },
        ]
    }
    async fn detect(
        &self,
        d: &DetectContext<'_>,
        s: &DetectorSettings,
    ) -> Result<Vec<Finding>, QueryError> {
        let lookback = s.days_nanos("lookback_days");
        let store_days = store_history_days(d).await?;
        if store_days < s.get("min_history_days") {
            d.note(format!(
                "VG001 quiet: the store holds {store_days:.1} days before the window; novelty needs {} (min_history_days)",
                s.get("min_history_days")
            ));
            return Ok(Vec::new());
        }
        let mut params = bounds(d, lookback);
        // Callers first seen within a day of the secret itself were there from the start: not "new".
        params.push(("settle", rows::int(DAY as f64)));
        // The qualifying pairs, grouped by principal in order of their first new read: one
        // principal reading thirty secrets it never read is one story (and one alert), not
        // thirty; an off-hours burst or an enumeration made thirty findings here before.
        let mut groups: Vec<(String, Vec<NewPair>)> = Vec::new();
        // The allowlist applies to each secret before grouping: an accepted pair must neither
        // appear in the alert nor set its severity.
        let allow = crate::detect::allowlist::Allowlist::from_config(d.config);
        let now = crate::clock::now_nanos().unwrap_or(i64::MAX);
        for r in query(d, SQL, params).await? {
            let days = history_days(d, rows::s(&r, "secret_first_seen"));
            let callers = rows::n(&r, "callers");
            let new_callers = rows::n(&r, "new_callers");
            let lambda = if days > 0.0 {
                new_callers / days.max(1.0)
            } else {
                0.0
            };
            let score = (-lambda).exp();
            // A secret that keeps gaining callers makes a new one unremarkable.
            if score < s.get("min_score") {
                continue;
            }
            // A secret first read less than min_history_days ago is new itself: its first
            // callers are expected, not news.
            if days < s.get("min_history_days") {
                continue;
            }
            let severity = if callers > s.get("max_callers") {
                Severity::Low
            } else if score >= 0.97 {
                Severity::High
            } else {
                self.default_severity()
            };
            let actor = rows::text(&r, "actor_id");
            let resource = rows::text(&r, "resource_id");
            let first_read = rows::s(&r, "first_read").unwrap_or("");
            let alone = finding(
                self,
                severity,
                &actor,
                rows::s(&r, "actor_name"),
                vec![resource.clone()],
                first_read,
                rows::s(&r, "last_read").unwrap_or(""),
                Some(&resource),
            );
            if allow.suppresses(&alone, now) {
                continue;
            }
            let pair = NewPair {
                resource,
                who: who(&r),
                actor_name: rows::s(&r, "actor_name").map(str::to_owned),
                first_read: first_read.to_owned(),
                last_read: rows::s(&r, "last_read").unwrap_or("").to_owned(),
                reads: rows::n(&r, "reads"),
                callers,
                lambda,
                days,
                score,
                severity,
            };
            match groups.iter_mut().find(|(a, _)| *a == actor) {
                Some((_, pairs)) => pairs.push(pair),
                None => groups.push((actor, vec![pair])),
            }
        }
        let lookback_days = s.get("lookback_days");
        Ok(groups
            .into_iter()
            .map(|(actor, pairs)| self.grouped(&actor, &pairs, lookback_days))
            .collect())
    }
}

/// A principal's first read of one secret in the window, with the secret's caller history.
struct NewPair {
    resource: String,
    who: String,
    actor_name: Option<String>,
    first_read: String,
    last_read: String,
    reads: f64,
    callers: f64,
    lambda: f64,
    days: f64,
    score: f64,
    severity: Severity,
}

impl NewCaller {
    /// One finding for all the secrets a principal read for the first time in the window: the
    /// highest severity and score among them; the baseline numbers are those of the most
    /// stable secret (the strongest evidence), the others are listed in `resources`.
    fn grouped(&self, actor: &str, pairs: &[NewPair], lookback_days: f64) -> Finding {
        let first = &pairs[0];
        let best = pairs
            .iter()
            .max_by(|a, b| {
                (a.severity, a.score)
                    .partial_cmp(&(b.severity, b.score))
                    .unwrap_or(std::cmp::Ordering::Equal)
            })
            .expect("a group has a pair");
        let severity = pairs
            .iter()
            .map(|p| p.severity)
            .max()
            .unwrap_or(first.severity);
        let start = pairs
            .iter()
            .map(|p| p.first_read.as_str())
            .min()
            .unwrap_or("");
        let end = pairs
            .iter()
            .map(|p| p.last_read.as_str())
            .max()
            .unwrap_or("");
        let mut f = finding(
            self,
            severity,
            actor,
            first.actor_name.as_deref(),
            pairs.iter().map(|p| p.resource.clone()).collect(),
            start,
            end,
            Some(&first.resource),
        );
        f.score = best.score;
        if pairs.len() > 1 {
            f.part_keys = pairs
                .iter()
                .map(|p| format!("{}:{actor}:{}", self.code(), p.resource))
                .collect();
        }
        let reads: f64 = pairs.iter().map(|p| p.reads).sum();
        f.observed = if pairs.len() == 1 {
            numbers([("reads", int(reads))])
        } else {
            numbers([
                ("reads", int(reads)),
                ("new_secrets", int(pairs.len() as f64)),
            ])
        };
        f.baseline = numbers([
            ("secret_callers", int(best.callers)),
            ("new_callers_per_day", round(best.lambda, 3)),
            ("history_days", round(best.days, 1)),
        ]);
        let days = best.days.min(lookback_days);
        let plural = |n: f64, one: &str| {
            if n == 1.0 {
                one.to_owned()
            } else {
                format!("{one}s")
            }
        };
        f.explanation = if pairs.len() == 1 {
            format!(
                "{} read {} for the first time in {days:.0} days; the secret had {} {} and gains {:.2} new ones per day.",
                first.who, first.resource, best.callers, plural(best.callers, "caller"), best.lambda
            )
        } else if best.resource == first.resource {
            format!(
                "{} read {} secrets for the first time in {days:.0} days, {} the first and the most settled of them: it had {} {} and gains {:.2} new ones per day.",
                first.who, pairs.len(), first.resource, best.callers, plural(best.callers, "caller"), best.lambda
            )
        } else {
            format!(
                "{} read {} secrets for the first time in {days:.0} days, {} the first; the most settled of them, {}, had {} {} and gains {:.2} new ones per day.",
                first.who, pairs.len(), first.resource, best.resource, best.callers, plural(best.callers, "caller"), best.lambda
            )
        };
        f
    }
}
