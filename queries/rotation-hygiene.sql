-- name: rotation-hygiene
-- title: Secret rotation hygiene
-- description: Every secret or key seen up to the end of the period (read, written, rotated or deleted), with its last successful write or rotation in all stored history up to then, who made it, whole days since, and stale = true when that is more than max_age_days before the end of the period or when no write or rotation was ever seen, unless a successful deletion came after its last successful use; plus its secret reads in the period.
-- params: max_age_days:int=90
-- control: ISO 27001 A.5.17; SOC 2 CC6.1
WITH secrets AS (
  SELECT resource_id,
         max(resource_name) AS resource_name,
         max(resource_type) AS resource_type,
         max(source) AS source,
         min(event_time) AS first_seen,
         max(event_time) FILTER (WHERE action IN ('write', 'rotate') AND outcome = 'success')
           AS last_changed,
         first_value(action ORDER BY event_time DESC, event_uid DESC)
           FILTER (WHERE action IN ('write', 'rotate') AND outcome = 'success') AS last_change,
         first_value(actor_id ORDER BY event_time DESC, event_uid DESC)
           FILTER (WHERE action IN ('write', 'rotate') AND outcome = 'success') AS last_changed_by,
         max(event_time) FILTER (WHERE action = 'rotate' AND outcome = 'success') AS last_rotated,
         max(event_time) FILTER (WHERE action = 'delete' AND outcome = 'success') AS last_deleted,
         max(event_time) FILTER (WHERE action <> 'delete' AND outcome = 'success') AS last_used,
         count(*) FILTER (WHERE is_secret_read AND event_time >= $from) AS reads_in_period
  FROM events
  WHERE resource_id IS NOT NULL
    AND resource_type <> 'none'
    AND (is_secret_read OR action IN ('write', 'rotate', 'delete'))
    AND event_time < $to
    AND date <= to_char($to, '%Y-%m-%d')
  GROUP BY resource_id
)
SELECT resource_id,
       resource_name,
       resource_type,
       source,
       first_seen,
       last_changed,
       last_change,
       last_changed_by,
       last_rotated,
       date_part('day', $to - last_changed) AS days_since_change,
       last_deleted,
       CASE
         WHEN last_deleted IS NOT NULL AND (last_used IS NULL OR last_deleted >= last_used) THEN false
         WHEN last_changed IS NULL THEN true
         -- max_age_days as a nanosecond duration (DataFusion 55 has no integer * interval)
         ELSE $to - last_changed > arrow_cast(CAST($max_age_days AS BIGINT) * 86400000000000,
                                              'Duration(Nanosecond)')
       END AS stale,
       reads_in_period
FROM secrets
ORDER BY stale DESC, last_changed NULLS FIRST, resource_id
