-- name: off-hours-access
-- title: Off-hours secret access
-- description: Secret reads (denied attempts included) by people (and account root users) outside business hours in the period, as the [calendar] of vigil.toml defines them (each principal's time zone, business hours, workdays, holidays); include_workloads=true adds workloads. One row per principal and secret: off-hours reads, successful, denied, first and last, and the local time of the first.
-- params: include_workloads:bool=false
-- control: SOC 2 CC7.2; ISO 27001 A.8.16
WITH per_minute AS (
  -- business hours are set in minutes, so every read of one principal in one UTC minute gets the
  -- same verdict: the calendar then runs once per minute bucket instead of once per event
  SELECT actor_id, actor_name, resource_id,
         date_trunc('minute', event_time) AS minute,
         max(actor_type) AS actor_type,
         max(resource_name) AS resource_name,
         count(*) AS reads,
         count(*) FILTER (WHERE outcome = 'success') AS successful_reads,
         count(*) FILTER (WHERE outcome = 'denied') AS denied,
         min(event_time) AS first_read,
         max(event_time) AS last_read
  FROM secret_reads
  WHERE event_time >= $from AND event_time < $to
    AND date >= to_char($from, '%Y-%m-%d') AND date <= to_char($to, '%Y-%m-%d')
    AND (actor_type IN ('human', 'root')
         OR (actor_type = 'workload' AND CAST($include_workloads AS BOOLEAN)))
  GROUP BY actor_id, actor_name, resource_id, date_trunc('minute', event_time)
),
off_hours AS (
  SELECT * FROM per_minute
  WHERE vigil_off_hours(first_read, actor_id, actor_name)
)
SELECT actor_id,
       max(actor_name) AS actor_name,
       max(actor_type) AS actor_type,
       resource_id,
       max(resource_name) AS resource_name,
       sum(reads) AS reads,
       sum(successful_reads) AS successful_reads,
       sum(denied) AS denied,
       min(first_read) AS first_read,
       vigil_local_time(min(first_read), actor_id,
                        first_value(actor_name ORDER BY first_read, actor_name)) AS first_read_local,
       max(last_read) AS last_read
FROM off_hours
GROUP BY actor_id, resource_id
ORDER BY actor_id, resource_id
