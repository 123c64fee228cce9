-- How far the latency predictor was off in the newest run: every genome that
-- was both predicted and measured on a device (predict-then-measure), once per
-- device, with the relative errors in % ((predicted - measured) / measured),
-- worst decode error first. The RMSPE per device is in docs/schema.md.
WITH run AS (SELECT max(id) AS id FROM runs)
SELECT device, substr(genome_hash, 1, 12) AS genome, min(generation) + 1 AS generation,
       round(pred_decode_ms, 3) AS pred_decode_ms, round(meas_decode_ms, 3) AS meas_decode_ms,
       round(100 * decode_rel_err, 1) AS decode_err_pct,
       round(pred_ttft_ms, 1) AS pred_ttft_ms, round(meas_ttft_ms, 1) AS meas_ttft_ms,
       round(100 * ttft_rel_err, 1) AS ttft_err_pct,
       round(pred_peak_rss_bytes / 1048576.0, 1) AS pred_peak_rss_mib,
       round(meas_peak_rss_bytes / 1048576.0, 1) AS meas_peak_rss_mib,
       round(100 * peak_rss_rel_err, 1) AS peak_rss_err_pct,
       used
FROM predicted_vs_measured, run
WHERE run_id = run.id
GROUP BY device_id, genome_hash
ORDER BY abs(decode_rel_err) DESC NULLS LAST, device, genome;
