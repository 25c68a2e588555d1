use super::*;
use crate::detect::finding::numbers;
use crate::detect::{DetectorSettings, Param};

/// VG010 bulk-retrieval.
pub struct BulkRetrieval;

const DOC: &str = "\
What: one request that fetches secrets in bulk: AWS BatchGetSecretValue (low; high with a
filter instead of named secrets: a catch-all), or a Kubernetes list of secrets across all
namespaces (critical when allowed, medium when denied).
Why: bulk APIs turn one stolen credential into every secret at once; Panther ships
CatchAll/DumpAllNamespaces rules, Elastic flags kubectl get secrets -A.
Tuning: severity overrides; allowlist the backup or sync job by actor.
False positives: secret-sync controllers, backup tools.";

const SQL: &str = "
SELECT actor_id, max(actor_name) AS actor_name, source, operation, request_id, max(outcome) AS outcome,
       max(target_count) AS targets, count(*) AS rows, min(event_time) AS first_seen, max(event_time) AS last_seen,
       array_agg(DISTINCT resource_id) AS resources, max(resource_scope) AS scope
FROM events
WHERE event_time >= $from AND event_time < $to AND actor_id IS NOT NULL
  AND ((source = 'cloudtrail' AND operation = 'BatchGetSecretValue')
       OR (source = 'k8s' AND action = 'list' AND resource_type = 'k8s_secret'
           AND (resource_scope IS NULL OR strpos(substr(resource_scope, 5), '/') = 0)))
GROUP BY actor_id, source, operation, request_id
ORDER BY first_seen, actor_id, request_id";

#[async_trait::async_trait]
impl Detector for BulkRetrieval {
    fn code(&self) -> &'static str {
        "VG010"
    }
    fn name(&self) -> &'static str {
        "bulk-retrieval"
    }
    fn summary(&self) -> &'static str {
        "a bulk or catch-all secret retrieval (BatchGetSecretValue, cluster-wide list of secrets)"
    }
    fn doc(&self) -> &'static str {
        DOC
    }
    fn default_severity(&self) -> Severity {
        Severity::Low
    }
    fn params(&self) -> &'static [Param] {
        &[]
    }
    async fn detect(
        &self,
        d: &DetectContext<'_>,
        _s: &DetectorSettings,
    ) -> Result<Vec<Finding>, QueryError> {
        let mut out = Vec::new();
        for r in query(d, SQL, bounds(d, 0)).await? {
            let actor = rows::text(&r, "actor_id");
            let k8s = rows::s(&r, "source") == Some("k8s");
            let allowed = rows::s(&r, "outcome") == Some("success");
            let catch_all = !k8s && rows::n(&r, "targets") == 0.0;
            let severity = match (k8s, allowed, catch_all) {
                (true, true, _) => Severity::Critical,
                (true, false, _) => Severity::Medium,
                (false, _, true) => Severity::High,
                (false, _, false) => self.default_severity(),
            };
            let mut resources: Vec<String> = rows::list(&r, "resources");
            if resources.is_empty() {
                resources = rows::s(&r, "scope")
                    .map(|s| vec![s.to_owned()])
                    .unwrap_or_default();
            }
            let request = rows::text(&r, "request_id");
            let mut f = finding(
                self,
                severity,
                &actor,
                rows::s(&r, "actor_name"),
                resources.clone(),
                rows::s(&r, "first_seen").unwrap_or(""),
                rows::s(&r, "last_seen").unwrap_or(""),
                Some(&request),
            );
            f.score = match severity {
                Severity::Critical => 1.0,
                Severity::High => 0.9,
                _ => 0.5,
            };
            f.observed = numbers([
                ("operation", rows::text(&r, "operation").into()),
                ("secrets_named", int(rows::n(&r, "targets"))),
                ("outcome", rows::text(&r, "outcome").into()),
            ]);
            f.explanation = if k8s {
                format!(
                    "{} listed secrets in every namespace of the cluster ({}).",
                    who(&r),
                    rows::text(&r, "outcome")
                )
            } else if catch_all {
                format!("{} called BatchGetSecretValue with a filter instead of named secrets: every matching secret at once.", who(&r))
            } else {
                format!(
                    "{} fetched {} secrets in one BatchGetSecretValue call.",
                    who(&r),
                    resources.len()
                )
            };
            out.push(f);
        }
        Ok(out)
    }
}
