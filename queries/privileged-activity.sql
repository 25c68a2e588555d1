-- name: privileged-activity
-- title: Privileged and root activity
-- description: Everything done in the period by root or privileged identities (AWS root, Vault tokens carrying the root policy, Kubernetes members of system:masters) plus policy changes and deletions by anyone, per principal, privilege, source, action and operation: events, successes, denials, distinct resources, first and last.
-- control: PCI DSS 10.2.1.2; PCI DSS 10.2.2; SOC 2 CC6.3; ISO 27001 A.8.2
WITH privileged AS (
  SELECT actor_id, actor_name, actor_type, source, action, operation, resource_id, outcome, event_time,
         CASE
           WHEN actor_type = 'root' THEN 'root account'
           WHEN source = 'vault' AND array_has(actor_groups, 'root') THEN 'vault root token'
           WHEN source = 'k8s' AND array_has(actor_groups, 'system:masters') THEN 'k8s system:masters'
           WHEN action = 'policy' THEN 'policy change'
           ELSE 'deletion'
         END AS privilege
  FROM events
  WHERE event_time >= $from AND event_time < $to
    AND date >= to_char($from, '%Y-%m-%d') AND date <= to_char($to, '%Y-%m-%d')
    AND (actor_type = 'root'
         OR (source = 'vault' AND array_has(actor_groups, 'root'))
         OR (source = 'k8s' AND array_has(actor_groups, 'system:masters'))
         OR action IN ('policy', 'delete'))
),
per_resource AS (
  -- two-level count of distinct resources
  SELECT actor_id, privilege, source, action, operation, resource_id,
         max(actor_name) AS actor_name,
         max(actor_type) AS actor_type,
         count(*) AS events,
         count(*) FILTER (WHERE outcome = 'success') AS successful,
         count(*) FILTER (WHERE outcome = 'denied') AS denied,
         min(event_time) AS first_seen,
         max(event_time) AS last_seen
  FROM privileged
  GROUP BY actor_id, privilege, source, action, operation, resource_id
)
SELECT actor_id,
       max(actor_name) AS actor_name,
       max(actor_type) AS actor_type,
       privilege,
       source,
       action,
       operation,
       sum(events) AS events,
       sum(successful) AS successful,
       sum(denied) AS denied,
       count(resource_id) AS resources,
       min(resource_id) AS example_resource_id,
       min(first_seen) AS first_seen,
       max(last_seen) AS last_seen
FROM per_resource
GROUP BY actor_id, privilege, source, action, operation
ORDER BY actor_id, privilege, source, action, operation
