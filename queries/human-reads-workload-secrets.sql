-- name: human-reads-workload-secrets
-- title: People reading workload secrets
-- description: Secret reads (denied attempts included) by people (and account root users) in the period on secrets that belong to workloads, per person and secret; a secret is a workload secret when a workload read it successfully at any time before the end of the period (all stored history up to it), and the report names how many workloads did and one of them.
-- control: SOC 2 CC6.1; SOC 2 CC6.3; ISO 27001 A.5.15
WITH workload_pairs AS (
  -- every (secret, workload) pair with a successful read up to the end of the period
  SELECT resource_id, actor_id
  FROM event_counts
  WHERE is_secret_read AND actor_type = 'workload' AND outcome = 'success'
    AND resource_id IS NOT NULL AND actor_id IS NOT NULL
    AND first_time < $to
    AND date <= to_char($to, '%Y-%m-%d')
  GROUP BY resource_id, actor_id
),
workload_secrets AS (
  SELECT resource_id,
         count(*) AS workload_readers,
         min(actor_id) AS example_workload
  FROM workload_pairs
  GROUP BY resource_id
),
human_reads AS (
  SELECT actor_id, resource_id,
         max(actor_name) AS actor_name,
         max(resource_name) AS resource_name,
         max(resource_type) AS resource_type,
         sum(events) AS reads,
         coalesce(sum(events) FILTER (WHERE outcome = 'success'), 0) AS successful_reads,
         coalesce(sum(events) FILTER (WHERE outcome = 'denied'), 0) AS denied,
         min(first_time) AS first_read,
         max(last_time) AS last_read
  FROM event_counts
  WHERE is_secret_read AND actor_type IN ('human', 'root') AND resource_id IS NOT NULL
    AND last_time >= $from AND first_time < $to
    AND date >= to_char($from, '%Y-%m-%d') AND date <= to_char($to, '%Y-%m-%d')
  GROUP BY actor_id, resource_id
)
SELECT h.actor_id,
       h.actor_name,
       h.resource_id,
       h.resource_name,
       h.resource_type,
       h.reads,
       h.successful_reads,
       h.denied,
       h.first_read,
       h.last_read,
       w.workload_readers,
       w.example_workload
FROM human_reads h
JOIN workload_secrets w ON w.resource_id = h.resource_id
ORDER BY h.actor_id, h.resource_id
