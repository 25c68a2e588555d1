-- name: dormant-secrets
-- title: Dormant secrets
-- description: Secrets (by resource_id) that someone read or tried to read in the stored history but that nobody has read successfully for more than N days (param days) before the end of the period (counted from the first time the secret was seen when it never was): last successful read, who made it, whole days idle at the end of the period, and successful and denied reads in all history up to it.
-- params: days:int=30
-- control: ISO 27001 A.5.17; SOC 2 CC6.1
WITH secrets AS (
  SELECT resource_id,
         max(resource_name) AS resource_name,
         max(resource_type) AS resource_type,
         max(source) AS source,
         min(event_time) AS first_seen,
         max(event_time) FILTER (WHERE outcome = 'success') AS last_read,
         first_value(actor_id ORDER BY event_time DESC, event_uid DESC)
           FILTER (WHERE outcome = 'success') AS last_reader,
         first_value(actor_name ORDER BY event_time DESC, event_uid DESC)
           FILTER (WHERE outcome = 'success') AS last_reader_name,
         count(*) FILTER (WHERE outcome = 'success') AS successful_reads,
         count(*) FILTER (WHERE outcome = 'denied') AS denied
  FROM secret_reads
  WHERE resource_id IS NOT NULL
    AND event_time < $to
    AND date <= to_char($to, '%Y-%m-%d')
  GROUP BY resource_id
)
SELECT resource_id,
       resource_name,
       resource_type,
       source,
       first_seen,
       last_read,
       last_reader,
       last_reader_name,
       date_part('day', $to - coalesce(last_read, first_seen)) AS days_idle,
       successful_reads,
       denied
FROM secrets
-- N days as a nanosecond duration (DataFusion 55 has no integer * interval)
WHERE $to - coalesce(last_read, first_seen) > arrow_cast(CAST($days AS BIGINT) * 86400000000000, 'Duration(Nanosecond)')
ORDER BY coalesce(last_read, first_seen), resource_id
