-- name: shared-secrets
-- title: Shared secrets
-- description: Secrets that at least min_principals distinct principals read successfully in the period: how many principals (people and workloads among them), successful reads, first and last, and the sorted list of the principals.
-- params: min_principals:int=3
-- control: SOC 2 CC6.1; ISO 27001 A.5.17
-- chart: bar label=resource_name value=principals
WITH pairs AS (
  -- first level of a two-level distinct count: one row per secret and principal
  SELECT resource_id, actor_id,
         max(resource_name) AS resource_name,
         max(resource_type) AS resource_type,
         max(actor_type) AS actor_type,
         sum(events) AS reads,
         min(first_time) AS first_read,
         max(last_time) AS last_read
  FROM event_counts
  WHERE is_secret_read AND outcome = 'success'
    AND resource_id IS NOT NULL AND actor_id IS NOT NULL
    -- exactly the period: the hours at its edges are recounted from the events
    AND last_time >= $from AND first_time < $to
    AND date >= to_char($from, '%Y-%m-%d') AND date <= to_char($to, '%Y-%m-%d')
  GROUP BY resource_id, actor_id
)
SELECT resource_id,
       max(resource_name) AS resource_name,
       max(resource_type) AS resource_type,
       count(*) AS principals,
       count(*) FILTER (WHERE actor_type = 'human') AS humans,
       count(*) FILTER (WHERE actor_type = 'workload') AS workloads,
       sum(reads) AS reads,
       min(first_read) AS first_read,
       max(last_read) AS last_read,
       array_agg(actor_id ORDER BY actor_id) AS principal_ids
FROM pairs
GROUP BY resource_id
HAVING count(*) >= CAST($min_principals AS BIGINT)
ORDER BY principals DESC, resource_id
