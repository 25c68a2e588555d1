-- name: secret-changes
-- title: Secret changes
-- description: Audit trail of every write, rotation, deletion and policy change in the period, one row per event and attempts included: when, who, from where, what operation on which resource, and the outcome. Writes and deletions of objects that are not secrets or keys (other Kubernetes objects, other AWS services) are left out; policy changes are kept whatever they target.
-- control: PCI DSS 10.2.1.5; PCI DSS 10.2.2; ISO 27001 A.5.17; ISO 27001 A.8.15
-- per_day: SELECT date_trunc('day', hour) AS day, sum(events) AS changes FROM event_counts WHERE action IN ('write', 'rotate', 'delete', 'policy') AND (resource_type <> 'none' OR action = 'policy') AND last_time >= $from AND first_time < $to AND date >= to_char($from, '%Y-%m-%d') AND date <= to_char($to, '%Y-%m-%d') GROUP BY 1
SELECT event_time,
       actor_id,
       actor_name,
       actor_type,
       source,
       action,
       operation,
       resource_type,
       resource_id,
       resource_name,
       resource_version,
       outcome,
       status_code,
       coalesce(src_ip, src_host) AS origin,
       event_uid
FROM events
WHERE action IN ('write', 'rotate', 'delete', 'policy')
  AND (resource_type <> 'none' OR action = 'policy')
  AND event_time >= $from AND event_time < $to
  AND date >= to_char($from, '%Y-%m-%d') AND date <= to_char($to, '%Y-%m-%d')
ORDER BY event_time, event_uid
