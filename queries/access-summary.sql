-- name: access-summary
-- title: Secret access summary
-- description: Per secret and principal, the secret reads in the period (denied and failed attempts included): how many, how many succeeded, how many were denied, how many failed otherwise (not found, errors), the first and last, and the sources that logged them.
-- control: PCI DSS 10.2.1; PCI DSS 10.2.2; SOC 2 CC6.1; ISO 27001 A.8.15
-- per_day: SELECT date_trunc('day', hour) AS day, sum(events) AS secret_reads FROM event_counts WHERE is_secret_read AND last_time >= $from AND first_time < $to AND date >= to_char($from, '%Y-%m-%d') AND date <= to_char($to, '%Y-%m-%d') GROUP BY 1
WITH per_source AS (
  -- one pass over the period's hourly counts of secret reads, per secret, principal and source
  SELECT resource_id, actor_id, source,
         max(resource_name) AS resource_name,
         max(resource_type) AS resource_type,
         max(actor_name) AS actor_name,
         max(actor_type) AS actor_type,
         sum(events) AS reads,
         coalesce(sum(events) FILTER (WHERE outcome = 'success'), 0) AS successful_reads,
         coalesce(sum(events) FILTER (WHERE outcome = 'denied'), 0) AS denied,
         min(first_time) AS first_read,
         max(last_time) AS last_read
  FROM event_counts
  WHERE is_secret_read
    -- exactly the period: the hours at its edges are recounted from the events
    AND last_time >= $from AND first_time < $to
    -- the same period on the date partitions, so files outside it are never opened
    AND date >= to_char($from, '%Y-%m-%d') AND date <= to_char($to, '%Y-%m-%d')
  GROUP BY resource_id, actor_id, source
)
SELECT resource_id,
       max(resource_name) AS resource_name,
       max(resource_type) AS resource_type,
       actor_id,
       max(actor_name) AS actor_name,
       max(actor_type) AS actor_type,
       sum(reads) AS reads,
       sum(successful_reads) AS successful_reads,
       sum(denied) AS denied,
       sum(reads) - sum(successful_reads) - sum(denied) AS failed,
       min(first_read) AS first_read,
       max(last_read) AS last_read,
       string_agg(source, ', ' ORDER BY source) AS sources
FROM per_source
GROUP BY resource_id, actor_id
ORDER BY resource_id, actor_id
