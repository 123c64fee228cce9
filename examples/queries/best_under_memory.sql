-- The best model under a memory budget on each device: among genomes measured
-- successfully, the fastest decode whose peak RSS stays under 512 MiB, one row
-- per device (ties: the larger model).
SELECT device, genome, decode_ms, peak_rss_mib, params
FROM (
  SELECT d.name AS device, substr(m.genome_hash, 1, 12) AS genome,
         round(m.decode_ms_p50, 3) AS decode_ms,
         round(m.peak_rss_bytes / 1048576.0, 1) AS peak_rss_mib, g.params,
         row_number() OVER (PARTITION BY m.device_id
                            ORDER BY m.decode_ms_p50, g.params DESC) AS pick
  FROM measurements m
  JOIN devices d ON d.id = m.device_id
  JOIN genomes g ON g.hash = m.genome_hash
  WHERE m.status = 'ok' AND m.peak_rss_bytes < 512 * 1048576
)
WHERE pick = 1
ORDER BY device;
