use super::*;
use crate::detect::finding::numbers;
use crate::detect::{DetectorSettings, Param};

/// VG017 sensitive-change.
pub struct SensitiveChange;

const DOC: &str = "\
What: a destructive or protective change (delete, purge, policy change, rotation cancelled, key
disabled or scheduled for deletion) by a principal that made no such change on that store
(tenant) in the lookback (default 14 days).
Why: deleting secrets and loosening policies is how attackers cover tracks and widen access;
the change itself is routine for a few administrators, so novelty of the actor is what matters
(Elastic \"Azure Key Vault Modified\" with new terms over 14 days, Sigma Key Vault and Kubernetes
rules).
Tuning: lookback_days; allowlist Terraform pipelines by actor.
False positives: a new administrator, infrastructure re-deploys.";

const SQL: &str = "
WITH win AS (
  SELECT actor_id, max(actor_name) AS actor_name, tenant, min(event_time) AS first_seen,
         max(event_time) AS last_seen, count(*) AS changes,
         array_agg(DISTINCT operation) AS operations, array_agg(DISTINCT resource_id) AS resources
  FROM events
  WHERE actor_id IS NOT NULL AND outcome = 'success' AND event_time >= $from AND event_time < $to
    AND (action IN ('delete', 'policy')
         OR operation IN ('CancelRotateSecret', 'DisableKey', 'ScheduleKeyDeletion', 'SecretPurge',
                          'KeyPurge', 'DestroySecretVersion', 'SetIamPolicy', 'VaultPatch', 'VaultPut'))
  GROUP BY actor_id, tenant),
prev AS (
  SELECT DISTINCT actor_id, tenant
  FROM (SELECT DISTINCT actor_id AS wanted FROM win) w JOIN events ON actor_id = w.wanted
  WHERE event_time >= $hist_from AND event_time < $from
    AND (action IN ('delete', 'policy')
         OR operation IN ('CancelRotateSecret', 'DisableKey', 'ScheduleKeyDeletion', 'SecretPurge',
                          'KeyPurge', 'DestroySecretVersion', 'SetIamPolicy', 'VaultPatch', 'VaultPut')))
SELECT w.* FROM win w
LEFT JOIN prev p ON p.actor_id = w.actor_id AND p.tenant IS NOT DISTINCT FROM w.tenant
WHERE p.actor_id IS NULL
ORDER BY w.first_seen, w.actor_id";

#[async_trait::async_trait]
impl Detector for SensitiveChange {
    fn code(&self) -> &'static str {
        "VG017"
    }
    fn name(&self) -> &'static str {
        "sensitive-change"
    }
    fn summary(&self) -> &'static str {
        "a delete, policy change or disabled rotation by a principal that does not usually make one"
    }
    fn doc(&self) -> &'static str {
        DOC
    }
    fn default_severity(&self) -> Severity {
        Severity::High
    }
    fn params(&self) -> &'static [Param] {
        &[Param {
            name: "lookback_days",
            default: 14.0,
            doc: "history in which the principal made such changes",
        }]
    }
    async fn detect(
        &self,
        d: &DetectContext<'_>,
        s: &DetectorSettings,
    ) -> Result<Vec<Finding>, QueryError> {
        let store_days = store_history_days(d).await?;
        let cold = store_days < s.get("lookback_days");
        if cold {
            d.note(format!(
                "VG017 on its static rule: the store holds {store_days:.1} days before the window (less than lookback_days = {}), so every sensitive change is reported, at medium",
                s.get("lookback_days")
            ));
        }
        let mut out = Vec::new();
        for r in query(d, SQL, bounds(d, s.days_nanos("lookback_days"))).await? {
            let actor = rows::text(&r, "actor_id");
            let tenant = rows::text(&r, "tenant");
            let ops = rows::list(&r, "operations").join(", ");
            let resources = rows::list(&r, "resources");
            let mut f = finding(
                self,
                self.default_severity(),
                &actor,
                rows::s(&r, "actor_name"),
                resources.clone(),
                rows::s(&r, "first_seen").unwrap_or(""),
                rows::s(&r, "last_seen").unwrap_or(""),
                Some(&tenant),
            );
            if cold {
                f.severity = Severity::Medium;
                f.cold_start = true;
            }
            f.score = if cold { 0.6 } else { 0.8 };
            f.observed = numbers([
                ("changes", int(rows::n(&r, "changes"))),
                ("operations", ops.clone().into()),
            ]);
            f.baseline = numbers([("such_changes_in_lookback", int(0.0))]);
            f.explanation = format!(
                "{} made {} sensitive change{} ({ops}) on {tenant}, and made none there in the previous {:.0} days.",
                who(&r), rows::n(&r, "changes"), if rows::n(&r, "changes") == 1.0 { "" } else { "s" }, store_days.min(s.get("lookback_days"))
            );
            out.push(f);
        }
        Ok(out)
    }
}
