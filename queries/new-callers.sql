-- name: new-callers
-- title: New callers of secrets
-- description: Principal and secret pairs whose first successful read in all stored history falls in the period (no successful read of that secret by that principal before the period's start): first and last read and successful reads in the period.
-- control: SOC 2 CC7.2; ISO 27001 A.8.16
WITH pairs AS (
  -- one pass over all successful reads up to the end of the period, keyed by pair
  SELECT actor_id, resource_id,
         max(actor_name) AS actor_name,
         max(actor_type) AS actor_type,
         max(resource_name) AS resource_name,
         max(resource_type) AS resource_type,
         min(first_time) AS first_read,
         max(last_time) AS last_read,
         sum(events) AS reads
  FROM event_counts
  WHERE is_secret_read AND outcome = 'success'
    AND actor_id IS NOT NULL AND resource_id IS NOT NULL
    -- all history up to the end of the period (the last hour recounted from the events)
    AND first_time < $to
    AND date <= to_char($to, '%Y-%m-%d')
  GROUP BY actor_id, resource_id
)
SELECT actor_id,
       actor_name,
       actor_type,
       resource_id,
       resource_name,
       resource_type,
       first_read,
       last_read,
       reads
FROM pairs
WHERE first_read >= $from
ORDER BY first_read, actor_id, resource_id
