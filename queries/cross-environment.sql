-- name: cross-environment
-- title: Cross-environment secret access
-- description: Successful secret reads in the period (denied attempts too with include_denied=true) where the principal's environment and the secret's environment, as [[environments]] in vigil.toml assigns them, are both known and differ (say a staging service reading a prod secret), per principal, principal environment, secret and secret environment: reads, successful, denied, first and last.
-- params: include_denied:bool=false
-- control: SOC 2 CC6.1; SOC 2 CC7.2; ISO 27001 A.5.15
WITH groups AS (
  -- one pass over the period's secret reads; the environment rules then run once per group, not per event
  SELECT actor_id, actor_name, actor_role, resource_id, resource_name, tenant,
         max(actor_type) AS actor_type,
         count(*) AS reads,
         count(*) FILTER (WHERE outcome = 'success') AS successful_reads,
         count(*) FILTER (WHERE outcome = 'denied') AS denied,
         min(event_time) AS first_read,
         max(event_time) AS last_read
  FROM secret_reads
  WHERE event_time >= $from AND event_time < $to
    AND date >= to_char($from, '%Y-%m-%d') AND date <= to_char($to, '%Y-%m-%d')
    AND (outcome = 'success' OR CAST($include_denied AS BOOLEAN))
  GROUP BY actor_id, actor_name, actor_role, resource_id, resource_name, tenant
),
with_env AS (
  SELECT *,
         vigil_actor_env(actor_id, actor_name, actor_role) AS actor_env,
         vigil_resource_env(resource_id, resource_name, tenant) AS resource_env
  FROM groups
)
SELECT actor_id,
       max(actor_name) AS actor_name,
       max(actor_type) AS actor_type,
       actor_env,
       resource_id,
       max(resource_name) AS resource_name,
       resource_env,
       sum(reads) AS reads,
       sum(successful_reads) AS successful_reads,
       sum(denied) AS denied,
       min(first_read) AS first_read,
       max(last_read) AS last_read
FROM with_env
WHERE actor_env IS NOT NULL AND resource_env IS NOT NULL AND actor_env <> resource_env
GROUP BY actor_id, actor_env, resource_id, resource_env
ORDER BY actor_id, actor_env, resource_id, resource_env
