-- name: open-findings
-- title: Open findings
-- description: Findings vigil recorded up to the end of the period that no analyst has acknowledged or judged benign (latest status new, alerted or suppressed), most severe first, then oldest: how many days each has been open at the end of the period, whether it was recorded in the period, and the key to give to vigil findings ack or benign.
-- control: SOC 2 CC7.3; ISO 27001 A.5.25; PCI DSS 10.7.2
SELECT severity,
       code,
       detector,
       actor_id,
       actor_name,
       resources,
       window_start,
       status,
       detected_at,
       round((to_unixtime($to) - to_unixtime(detected_at)) / 86400.0, 1) AS open_days,
       detected_at >= $from AS new_in_period,
       explanation,
       key
FROM findings
WHERE status IN ('new', 'alerted', 'suppressed')
  AND detected_at < $to
ORDER BY CASE severity WHEN 'critical' THEN 0 WHEN 'high' THEN 1 WHEN 'medium' THEN 2
                       WHEN 'low' THEN 3 WHEN 'info' THEN 4 ELSE 5 END,
         detected_at, key, window_start
