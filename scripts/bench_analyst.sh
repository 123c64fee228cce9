#!/usr/bin/env bash
# scripts/bench_analyst.sh [TAILOR] [DB]: the analyst benchmark of issue 9.
# Builds a synthetic results database (5 runs, 100,000 candidates of which
# 20,000 distinct genomes, 1,000,000 measurements on 4 devices) with plain
# SQL, then times `tailor frontier`, a `run_summary` query and `tailor
# report` on the largest run. A benchmark: it prints times, it asserts
# nothing.
set -euo pipefail
T=${1:-build-release/cli/tailor}
DB=${2:-/tmp/tailor-bench-analyst.db}
rm -f "$DB" "$DB-wal" "$DB-shm"
"$T" --db "$DB" db migrate > /dev/null
start=$(date +%s.%N)
sqlite3 "$DB" <<'SQL'
PRAGMA journal_mode = WAL;
PRAGMA synchronous = OFF;
BEGIN;
INSERT INTO devices (id, name, transport, host) VALUES
  (2, 'laptop', 'ssh', 'laptop.lab'), (3, 'phone-a', 'ssh', 'a.lab'), (4, 'phone-b', 'ssh', 'b.lab');
INSERT INTO runs (id, name, config, mode, seed, status, generation, generations, population)
SELECT r, 'synthetic-' || r,
  '{"objectives":[{"metric":"decode_ms@laptop","direction":"min"},{"metric":"params_nonembed","direction":"max"}]}',
  'nsga2', r, 'finished', 199, 200, 100
FROM (WITH RECURSIVE k(r) AS (SELECT 1 UNION ALL SELECT r + 1 FROM k WHERE r < 5) SELECT r FROM k);
INSERT INTO genomes (hash, text, params, operators)
SELECT printf('%064x', g), 'tailor-genome/1 synthetic ' || g, 1000000 + (g * 7919) % 9000000,
  json_object('gqa', g % 5, 'shortconv', 8 - g % 5, 'swiglu', 8)
FROM (WITH RECURSIVE k(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM k WHERE g < 20000) SELECT g FROM k);
-- run 1: 200 generations x 100 = 20,000 candidates; runs 2-5 the same: 100,000
INSERT INTO candidates (run_id, generation, genome_hash, origin, status, rank, crowding, feasible, violation, objectives)
SELECT 1 + i / 20000, (i % 20000) / 100, printf('%064x', 1 + (i * 13) % 20000),
  CASE WHEN i % 100 < 50 THEN 'elite' ELSE 'mutate' END, 'done',
  CASE WHEN i % 37 = 0 THEN 0 ELSE 1 + i % 7 END, 1.0 / (1 + i % 11), 1, 0,
  json_object('decode_ms@laptop', 5.0 + (i * 7 % 1000) / 100.0, 'params_nonembed', 1000000 + (i * 7919) % 9000000)
FROM (WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM k WHERE i < 99999) SELECT i FROM k);
INSERT INTO generations (run_id, generation, evaluated, feasible, frontier_size, hypervolume, finished_at)
SELECT 1 + i / 200, i % 200, 100, 100, 3, (i % 200) / 200.0, '2026-01-01T00:00:00.000Z'
FROM (WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM k WHERE i < 999) SELECT i FROM k);
INSERT INTO measurements (genome_hash, candidate_id, run_id, device_id, protocol_hash, repeats,
  ttft_ms, prefill_tok_s, decode_ms_p50, decode_ms_p95, decode_tok_s, peak_rss_bytes, cv, status)
SELECT printf('%064x', 1 + (i * 13) % 20000), 1 + i % 100000, 1 + (i % 100000) / 20000, 1 + i % 4,
  'p' || (i % 3), 5, 100 + i % 50, 500, 5 + i % 10, 6 + i % 10, 100, 100000000 + i % 1000, 0.01 * (i % 5),
  CASE WHEN i % 50 = 0 THEN 'failed' ELSE 'ok' END
FROM (WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM k WHERE i < 999999) SELECT i FROM k);
COMMIT;
ANALYZE;
SQL
echo "synthetic database: $(sqlite3 "$DB" "SELECT (SELECT count(*) FROM candidates) || ' candidates, ' || (SELECT count(*) FROM measurements) || ' measurements'") in $(echo "$(date +%s.%N) - $start" | bc) s ($(du -h "$DB" | cut -f1))"
t() { # label, command...
	local s e
	s=$(date +%s.%N)
	"${@:2}" > /dev/null
	e=$(date +%s.%N)
	printf '%-40s %6.0f ms\n' "$1" "$(echo "($e - $s) * 1000" | bc)"
}
for i in 1 2 3; do
	t "tailor frontier 1" "$T" --db "$DB" frontier 1
	t "tailor query 'SELECT * FROM run_summary'" "$T" --db "$DB" query "SELECT * FROM run_summary"
	t "tailor report 1 -o report.html" "$T" --db "$DB" report 1 -o /tmp/tailor-bench-report.html
done
echo "report: $(du -h /tmp/tailor-bench-report.html | cut -f1)"
