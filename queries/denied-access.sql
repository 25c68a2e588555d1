-- name: denied-access
-- title: Denied access attempts
-- description: Requests refused for lack of permission in the period (outcome denied, every action, not only secret reads), per principal, source, action, operation and resource: attempts, first and last, and the status code and error message of the first attempt.
-- control: PCI DSS 10.2.1; PCI DSS 10.2.2; SOC 2 CC7.2; ISO 27001 A.8.16
-- per_day: SELECT date_trunc('day', hour) AS day, sum(events) AS denied_attempts FROM event_counts WHERE outcome = 'denied' AND last_time >= $from AND first_time < $to AND date >= to_char($from, '%Y-%m-%d') AND date <= to_char($to, '%Y-%m-%d') GROUP BY 1
SELECT actor_id,
       max(actor_name) AS actor_name,
       max(actor_type) AS actor_type,
       source,
       action,
       operation,
       resource_id,
       max(resource_name) AS resource_name,
       count(*) AS attempts,
       min(event_time) AS first_attempt,
       max(event_time) AS last_attempt,
       first_value(status_code ORDER BY event_time, event_uid) AS status_code,
       first_value(error_message ORDER BY event_time, event_uid) AS error_message,
       first_value(coalesce(src_ip, src_host) ORDER BY event_time, event_uid) AS origin
FROM events
WHERE outcome = 'denied'
  AND event_time >= $from AND event_time < $to
  AND date >= to_char($from, '%Y-%m-%d') AND date <= to_char($to, '%Y-%m-%d')
GROUP BY actor_id, source, action, operation, resource_id
ORDER BY attempts DESC, actor_id, source, action, operation, resource_id
