-- name: top-talkers
-- title: Top talkers
-- description: Principals ranked by secret reads in the period (denied and failed attempts included), with successful reads, denied attempts, distinct secrets, and first and last read; the first limit principals with at least min_reads reads.
-- params: limit:int=20, min_reads:int=1
-- control: SOC 2 CC7.2; ISO 27001 A.8.16
-- chart: bar label=actor_name,actor_id value=secret_reads
WITH pairs AS (
  -- first level of a two-level distinct count: one row per principal and secret
  SELECT actor_id, resource_id,
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
    AND date >= to_char($from, '%Y-%m-%d') AND date <= to_char($to, '%Y-%m-%d')
  GROUP BY actor_id, resource_id
),
principals AS (
  SELECT actor_id,
         max(actor_name) AS actor_name,
         max(actor_type) AS actor_type,
         sum(reads) AS secret_reads,
         sum(successful_reads) AS successful_reads,
         sum(denied) AS denied,
         count(resource_id) AS distinct_secrets,
         min(first_read) AS first_read,
         max(last_read) AS last_read
  FROM pairs
  GROUP BY actor_id
  HAVING sum(reads) >= CAST($min_reads AS BIGINT)
)
SELECT row_number() OVER (ORDER BY secret_reads DESC, actor_id) AS rank,
       actor_id,
       actor_name,
       actor_type,
       secret_reads,
       successful_reads,
       denied,
       distinct_secrets,
       first_read,
       last_read
FROM principals
ORDER BY secret_reads DESC, actor_id
LIMIT CAST($limit AS BIGINT)
