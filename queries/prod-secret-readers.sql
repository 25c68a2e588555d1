-- name: prod-secret-readers
-- title: Who read production secrets
-- description: Principals that read (or tried to read) secrets of one environment (default prod, as [[environments]] in vigil.toml assigns it) in the period, per principal and secret: reads, successful reads, denied attempts, first and last.
-- params: env:string=prod
-- control: PCI DSS 10.2.1; SOC 2 CC6.1; SOC 2 CC6.3; ISO 27001 A.5.15
WITH pairs AS (
  -- one pass over the period's secret reads; the environment rules then run once per group, not per event
  SELECT actor_id, resource_id, resource_name, tenant,
         max(actor_name) AS actor_name,
         max(actor_type) AS actor_type,
         max(resource_type) AS resource_type,
         count(*) AS reads,
         count(*) FILTER (WHERE outcome = 'success') AS successful_reads,
         count(*) FILTER (WHERE outcome = 'denied') AS denied,
         min(event_time) AS first_read,
         max(event_time) AS last_read
  FROM secret_reads
  WHERE event_time >= $from AND event_time < $to
    AND date >= to_char($from, '%Y-%m-%d') AND date <= to_char($to, '%Y-%m-%d')
  GROUP BY actor_id, resource_id, resource_name, tenant
),
in_env AS (
  SELECT * FROM pairs
  WHERE vigil_resource_env(resource_id, resource_name, tenant) = CAST($env AS VARCHAR)
)
SELECT actor_id,
       max(actor_name) AS actor_name,
       max(actor_type) AS actor_type,
       resource_id,
       max(resource_name) AS resource_name,
       max(resource_type) AS resource_type,
       sum(reads) AS reads,
       sum(successful_reads) AS successful_reads,
       sum(denied) AS denied,
       min(first_read) AS first_read,
       max(last_read) AS last_read
FROM in_env
GROUP BY actor_id, resource_id
ORDER BY actor_id, resource_id
