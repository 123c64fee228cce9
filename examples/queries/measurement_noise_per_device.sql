-- Measurement noise per device: the spread of repeated measurements of the
-- same genome under the same protocol (decode_ms_cv of measurement_stats), and
-- the harness's own within-run cv, averaged per device.
SELECT device,
       count(*) AS groups,
       round(avg(decode_ms_cv), 4) AS mean_cv_between_runs,
       round(max(decode_ms_cv), 4) AS worst_cv_between_runs,
       (SELECT round(avg(m.cv), 4) FROM measurements m
        WHERE m.device_id = s.device_id AND m.status = 'ok') AS mean_cv_within_run
FROM measurement_stats s
WHERE measurements > 1
GROUP BY device_id
ORDER BY mean_cv_between_runs DESC;
