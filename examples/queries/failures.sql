-- What failed, and why: failed measurements by device and kind, newest first.
SELECT d.name AS device, m.failure, count(*) AS n, max(m.created_at) AS last,
       max(m.error) AS example
FROM measurements m JOIN devices d ON d.id = m.device_id
WHERE m.status = 'failed'
GROUP BY d.name, m.failure
ORDER BY last DESC;
