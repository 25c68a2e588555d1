-- name: dormant-principals
-- title: Dormant principals
-- description: Principals seen in the stored history whose last activity (any event) is more than N days (param days) before the end of the period, as candidates for credential removal: first and last seen, whole days idle at the end of the period, events and secret reads in all history up to it.
-- params: days:int=30
-- control: SOC 2 CC6.2; ISO 27001 A.5.15; ISO 27001 A.5.17
WITH per_source AS (
  -- two steps: group by principal and source first, so that the list of sources is an
  -- aggregate over a few rows (string_agg DISTINCT over every event cost 4x DuckDB's time)
  SELECT actor_id, source,
         max(actor_name) AS actor_name,
         max(actor_type) AS actor_type,
         min(first_time) AS first_seen,
         max(last_time) AS last_seen,
         sum(events) AS events,
         coalesce(sum(events) FILTER (WHERE is_secret_read), 0) AS secret_reads
  FROM event_counts
  WHERE actor_id IS NOT NULL
    -- all history up to the end of the period (the last hour recounted from the events)
    AND first_time < $to
    AND date <= to_char($to, '%Y-%m-%d')
  GROUP BY actor_id, source
),
principals AS (
  SELECT actor_id,
         max(actor_name) AS actor_name,
         max(actor_type) AS actor_type,
         min(first_seen) AS first_seen,
         max(last_seen) AS last_seen,
         sum(events) AS events,
         sum(secret_reads) AS secret_reads,
         string_agg(source, ', ' ORDER BY source) AS sources
  FROM per_source
  GROUP BY actor_id
)
SELECT actor_id,
       actor_name,
       actor_type,
       first_seen,
       last_seen,
       date_part('day', $to - last_seen) AS days_idle,
       events,
       secret_reads,
       sources
FROM principals
-- N days as a nanosecond duration (DataFusion 55 has no integer * interval)
WHERE $to - last_seen > arrow_cast(CAST($days AS BIGINT) * 86400000000000, 'Duration(Nanosecond)')
ORDER BY last_seen, actor_id
