/*
 * db/migrations.c: the schema, as the list of forward migrations that builds
 * it (see db_int.h for the rules, docs/schema.md for the meaning of every
 * column). db_open applies the ones a file lacks, all in one transaction.
 *
 * The `--` comments inside CREATE statements are kept by SQLite in
 * sqlite_schema, so an analyst typing `.schema candidates` in sqlite3 sees
 * units and meanings next to the columns. Every line of a CREATE therefore
 * ends with "\n": a comment without its newline would swallow the rest.
 *
 * Conventions of the schema (why, briefly):
 *  - STRICT tables (SQLite >= 3.37): a value of the wrong type is an error,
 *    not silently stored, so analysts' dtypes are what the docs say.
 *  - Times are TEXT, ISO-8601 UTC with milliseconds ("2025-01-31T12:00:00.123Z"),
 *    which sorts as text and parses with pandas.to_datetime(utc=True).
 *  - JSON is TEXT checked with json_valid, so json_extract always works.
 *  - Booleans are INTEGER 0/1 with a CHECK.
 *  - Units are in the column names (_ms, _bytes, _tok_s, _c).
 *  - Measurements and quality results outlive the runs that asked for them
 *    (they are keyed by genome and reused): deleting a run nulls their run_id
 *    and candidate_id instead of deleting them.
 */
#include "db_int.h"

#include <sys/stat.h>

/* The SQL below is laid out as SQL, not as C. */
/* clang-format off */
#define NOW "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"

static const char migration_1_sql[] =
	"PRAGMA application_id = 1952541036;\n"

	/* ---- devices ---------------------------------------------------- */
	"CREATE TABLE devices (\n"
	"  id INTEGER PRIMARY KEY, -- 1 is the built-in device 'local'\n"
	"  name TEXT NOT NULL UNIQUE -- [A-Za-z0-9][A-Za-z0-9._-]{0,63}\n"
	"    CHECK (length(name) BETWEEN 1 AND 64\n"
	"           AND name NOT GLOB '*[^A-Za-z0-9._-]*'\n"
	"           AND substr(name, 1, 1) GLOB '[A-Za-z0-9]'),\n"
	"  transport TEXT NOT NULL CHECK (transport IN ('local', 'ssh', 'adb')),\n"
	"  host TEXT, -- ssh: the device; adb: the lab host the phone hangs off\n"
	"  port INTEGER CHECK (port BETWEEN 1 AND 65535), -- NULL: 22\n"
	"  user TEXT, -- ssh login; NULL: the current user\n"
	"  key_path TEXT, -- private key file, referenced, never copied\n"
	"  use_agent INTEGER NOT NULL DEFAULT 0 CHECK (use_agent IN (0, 1)),\n"
	"  known_hosts TEXT, -- known_hosts file; NULL: ~/.ssh/known_hosts\n"
	"  adb_serial TEXT, -- adb: serial of the phone on the lab host\n"
	"  arch TEXT, -- e.g. x86_64, aarch64 (probed)\n"
	"  toolchain_cc TEXT, -- compiler command for builds\n"
	"  toolchain_flags TEXT, -- extra compiler flags\n"
	"  compile_on_device INTEGER NOT NULL DEFAULT 0\n"
	"    CHECK (compile_on_device IN (0, 1)),\n"
	"  run_prefix TEXT, -- prepended to the harness command (taskset, nice)\n"
	"  threads INTEGER CHECK (threads >= 1), -- NULL: the harness default\n"
	"  labels TEXT NOT NULL DEFAULT '[]' -- JSON array of strings\n"
	"    CHECK (json_valid(labels) AND json_type(labels) = 'array'),\n"
	"  enabled INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),\n"
	"  status TEXT NOT NULL DEFAULT 'unknown'\n"
	"    CHECK (status IN ('unknown', 'online', 'offline', 'busy')),\n"
	"  fail_streak INTEGER NOT NULL DEFAULT 0 CHECK (fail_streak >= 0),\n"
	"  last_seen TEXT, -- last successful contact, UTC\n"
	"  facts TEXT -- JSON object of probed facts (cpu, cores, memory, os...)\n"
	"    CHECK (facts IS NULL OR (json_valid(facts) AND json_type(facts) = 'object')),\n"
	"  created_at TEXT NOT NULL DEFAULT (" NOW "),\n"
	"  updated_at TEXT NOT NULL DEFAULT (" NOW "),\n"
	"  CHECK (transport <> 'ssh' OR host IS NOT NULL)\n"
	") STRICT;\n"
	"INSERT INTO devices (id, name, transport) VALUES (1, 'local', 'local');\n"
	/* Runs and measurements refer to 'local' without asking whether it
	 * exists; these keep it there and keep it what its name says. */
	"CREATE TRIGGER devices_keep_local BEFORE DELETE ON devices\n"
	"WHEN OLD.name = 'local'\n"
	"BEGIN SELECT RAISE(ABORT, 'device local always exists and cannot be removed'); END;\n"
	"CREATE TRIGGER devices_keep_local_name BEFORE UPDATE OF name, transport ON devices\n"
	"WHEN OLD.name = 'local' AND (NEW.name IS NOT 'local' OR NEW.transport IS NOT 'local')\n"
	"BEGIN SELECT RAISE(ABORT, 'device local keeps its name and transport'); END;\n"
	/* updated_at follows every change unless the writer set it itself
	 * (recursive triggers are off, so the inner UPDATE does not re-fire). */
	"CREATE TRIGGER devices_updated_at AFTER UPDATE ON devices\n"
	"WHEN NEW.updated_at IS OLD.updated_at\n"
	"BEGIN UPDATE devices SET updated_at = " NOW " WHERE id = NEW.id; END;\n"

	/* ---- runs ------------------------------------------------------- */
	"CREATE TABLE runs (\n"
	"  id INTEGER PRIMARY KEY,\n"
	"  name TEXT, -- label given at start (not unique)\n"
	"  config TEXT NOT NULL -- the whole search config, JSON object\n"
	"    CHECK (json_valid(config) AND json_type(config) = 'object'),\n"
	"  config_hash TEXT, -- sha256 hex of the canonical config\n"
	"  mode TEXT NOT NULL DEFAULT 'nsga2' CHECK (mode IN ('nsga2', 'random')),\n"
	"  seed INTEGER NOT NULL, -- 64-bit; seeds >= 2^63 read as negative\n"
	"  status TEXT NOT NULL DEFAULT 'created'\n"
	"    CHECK (status IN ('created', 'running', 'stopping', 'stopped',\n"
	"                      'finished', 'failed')),\n"
	"  generation INTEGER NOT NULL DEFAULT 0 CHECK (generation >= 0), -- current\n"
	"  generations INTEGER CHECK (generations >= 1), -- planned; NULL: until stopped\n"
	"  population INTEGER CHECK (population >= 1), -- candidates per generation\n"
	"  tailor_version TEXT, -- version of the tailor that started it\n"
	"  host TEXT, -- host name of the machine running it\n"
	"  pid INTEGER CHECK (pid >= 1), -- process id while running\n"
	"  heartbeat_at TEXT, -- last sign of life of the running process, UTC\n"
	"  created_at TEXT NOT NULL DEFAULT (" NOW "),\n"
	"  started_at TEXT,\n"
	"  finished_at TEXT,\n"
	"  error TEXT -- one line, when status = 'failed'\n"
	") STRICT;\n"
	"CREATE INDEX runs_name ON runs (name);\n"

	/* ---- generations ------------------------------------------------ */
	"CREATE TABLE generations (\n"
	"  run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,\n"
	"  generation INTEGER NOT NULL CHECK (generation >= 0),\n"
	"  evaluated INTEGER NOT NULL DEFAULT 0 CHECK (evaluated >= 0),\n"
	"  feasible INTEGER NOT NULL DEFAULT 0 CHECK (feasible >= 0),\n"
	"  frontier_size INTEGER NOT NULL DEFAULT 0 CHECK (frontier_size >= 0),\n"
	"  hypervolume REAL, -- of the feasible rank-0 set, normalized objectives\n"
	"  reference_point TEXT -- JSON object: objective -> reference value\n"
	"    CHECK (reference_point IS NULL OR\n"
	"           (json_valid(reference_point) AND json_type(reference_point) = 'object')),\n"
	"  started_at TEXT NOT NULL DEFAULT (" NOW "),\n"
	"  finished_at TEXT,\n"
	"  PRIMARY KEY (run_id, generation)\n"
	") STRICT;\n"

	/* ---- genomes ---------------------------------------------------- */
	"CREATE TABLE genomes (\n"
	"  hash TEXT PRIMARY KEY -- sha256 hex (64 lowercase) of the decoded arch\n"
	"    CHECK (length(hash) = 64 AND hash NOT GLOB '*[^0-9a-f]*'),\n"
	"  text TEXT NOT NULL, -- canonical genome text\n"
	"  json TEXT CHECK (json IS NULL OR json_valid(json)), -- genome as JSON\n"
	"  space_hash TEXT, -- hash of the search space it was drawn from\n"
	"  params INTEGER CHECK (params >= 0), -- trainable parameters\n"
	"  kv_bytes_per_token INTEGER CHECK (kv_bytes_per_token >= 0),\n"
	"  state_bytes INTEGER CHECK (state_bytes >= 0), -- fixed recurrent state\n"
	"  flops_prefill_per_token INTEGER CHECK (flops_prefill_per_token >= 0),\n"
	"  flops_decode_per_token INTEGER CHECK (flops_decode_per_token >= 0),\n"
	"  created_at TEXT NOT NULL DEFAULT (" NOW ")\n"
	") STRICT;\n"

	/* ---- candidates ------------------------------------------------- */
	"CREATE TABLE candidates (\n"
	"  id INTEGER PRIMARY KEY,\n"
	"  run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,\n"
	"  generation INTEGER NOT NULL CHECK (generation >= 0),\n"
	"  genome_hash TEXT NOT NULL REFERENCES genomes (hash),\n"
	"  parent1_id INTEGER REFERENCES candidates (id) ON DELETE SET NULL,\n"
	"  parent2_id INTEGER REFERENCES candidates (id) ON DELETE SET NULL,\n"
	"  origin TEXT NOT NULL\n"
	"    CHECK (origin IN ('sample', 'mutate', 'cross', 'elite', 'seed',\n"
	"                      'random', 'repair')),\n"
	"  status TEXT NOT NULL DEFAULT 'pending'\n"
	"    CHECK (status IN ('pending', 'evaluating', 'done', 'failed', 'skipped')),\n"
	"  rank INTEGER CHECK (rank >= 0), -- non-domination front, 0 = best\n"
	"  crowding REAL, -- crowding distance within its front; Inf at the ends\n"
	"  feasible INTEGER CHECK (feasible IN (0, 1)), -- meets every constraint\n"
	"  violation REAL CHECK (violation >= 0), -- total constraint violation\n"
	"  objectives TEXT -- JSON object: objective name -> value\n"
	"    CHECK (objectives IS NULL OR\n"
	"           (json_valid(objectives) AND json_type(objectives) = 'object')),\n"
	"  error TEXT, -- one line, when status = 'failed'\n"
	"  created_at TEXT NOT NULL DEFAULT (" NOW "),\n"
	"  evaluated_at TEXT,\n"
	"  CHECK (parent2_id IS NULL OR parent1_id IS NOT NULL),\n"
	"  UNIQUE (run_id, generation, genome_hash)\n"
	") STRICT;\n"
	/* UNIQUE (run_id, generation, genome_hash) already indexes lookups by
	 * (run_id) and (run_id, generation). The parent indexes keep deleting a
	 * run linear: each deleted candidate looks up its children. */
	"CREATE INDEX candidates_genome ON candidates (genome_hash);\n"
	"CREATE INDEX candidates_parent1 ON candidates (parent1_id);\n"
	"CREATE INDEX candidates_parent2 ON candidates (parent2_id);\n"

	/* ---- measurements ----------------------------------------------- */
	"CREATE TABLE measurements (\n"
	"  id INTEGER PRIMARY KEY,\n"
	"  genome_hash TEXT NOT NULL REFERENCES genomes (hash),\n"
	"  candidate_id INTEGER REFERENCES candidates (id) ON DELETE SET NULL,\n"
	"  run_id INTEGER REFERENCES runs (id) ON DELETE SET NULL,\n"
	"  device_id INTEGER NOT NULL REFERENCES devices (id),\n"
	"  build_hash TEXT, -- content hash of the build (sources, flags, toolchain)\n"
	"  quant TEXT, -- weight format of the build, e.g. f32, q8_0\n"
	"  prompt_len INTEGER CHECK (prompt_len >= 0), -- P, tokens prefilled\n"
	"  gen_len INTEGER CHECK (gen_len >= 0), -- N, tokens decoded\n"
	"  depth INTEGER CHECK (depth >= 0), -- D, context depth before the prompt\n"
	"  threads INTEGER CHECK (threads >= 1),\n"
	"  protocol TEXT -- JSON object: warm-up, repeats, cv threshold, cool-down...\n"
	"    CHECK (protocol IS NULL OR (json_valid(protocol) AND json_type(protocol) = 'object')),\n"
	"  protocol_hash TEXT, -- hash of protocol + P, N, D, threads, quant\n"
	"  device_fingerprint TEXT -- JSON object: cpu, governor, kernel... at measure time\n"
	"    CHECK (device_fingerprint IS NULL OR\n"
	"           (json_valid(device_fingerprint) AND json_type(device_fingerprint) = 'object')),\n"
	"  repeats INTEGER CHECK (repeats >= 0), -- repeats behind the medians\n"
	"  ttft_ms REAL CHECK (ttft_ms >= 0), -- median time to first token\n"
	"  prefill_tok_s REAL CHECK (prefill_tok_s >= 0),\n"
	"  decode_ms_p50 REAL CHECK (decode_ms_p50 >= 0), -- per token\n"
	"  decode_ms_p95 REAL CHECK (decode_ms_p95 >= 0), -- per token\n"
	"  decode_tok_s REAL CHECK (decode_tok_s >= 0),\n"
	"  peak_rss_bytes INTEGER CHECK (peak_rss_bytes >= 0), -- VmHWM\n"
	"  weight_bytes INTEGER CHECK (weight_bytes >= 0),\n"
	"  cache_bytes INTEGER CHECK (cache_bytes >= 0), -- KV + state at P + N + D\n"
	"  cv REAL CHECK (cv >= 0), -- coefficient of variation of decode_ms_p50 over repeats\n"
	"  remeasured INTEGER NOT NULL DEFAULT 0 -- extra rounds taken because cv was too high\n"
	"    CHECK (remeasured >= 0),\n"
	"  status TEXT NOT NULL CHECK (status IN ('ok', 'failed')),\n"
	"  error TEXT, -- one line, when status = 'failed'\n"
	"  created_at TEXT NOT NULL DEFAULT (" NOW ")\n"
	") STRICT;\n"
	"CREATE INDEX measurements_lookup ON measurements (genome_hash, device_id, protocol_hash);\n"
	"CREATE INDEX measurements_candidate ON measurements (candidate_id);\n"
	"CREATE INDEX measurements_run ON measurements (run_id);\n"
	"CREATE INDEX measurements_device ON measurements (device_id);\n"

	"CREATE TABLE measurement_repeats (\n"
	"  id INTEGER PRIMARY KEY,\n"
	"  measurement_id INTEGER NOT NULL REFERENCES measurements (id) ON DELETE CASCADE,\n"
	"  repeat_index INTEGER NOT NULL CHECK (repeat_index >= 0),\n"
	"  raw TEXT NOT NULL CHECK (json_valid(raw)), -- the harness's JSON output, whole\n"
	"  ttft_ms REAL CHECK (ttft_ms >= 0),\n"
	"  prefill_tok_s REAL CHECK (prefill_tok_s >= 0),\n"
	"  decode_ms_p50 REAL CHECK (decode_ms_p50 >= 0),\n"
	"  decode_ms_p95 REAL CHECK (decode_ms_p95 >= 0),\n"
	"  decode_tok_s REAL CHECK (decode_tok_s >= 0),\n"
	"  peak_rss_bytes INTEGER CHECK (peak_rss_bytes >= 0),\n"
	"  temp_before_c REAL, -- hottest thermal zone before the repeat; NULL: none\n"
	"  temp_after_c REAL,\n"
	"  created_at TEXT NOT NULL DEFAULT (" NOW "),\n"
	"  UNIQUE (measurement_id, repeat_index)\n"
	") STRICT;\n"

	/* ---- quality ---------------------------------------------------- */
	"CREATE TABLE quality (\n"
	"  id INTEGER PRIMARY KEY,\n"
	"  genome_hash TEXT NOT NULL REFERENCES genomes (hash),\n"
	"  candidate_id INTEGER REFERENCES candidates (id) ON DELETE SET NULL,\n"
	"  run_id INTEGER REFERENCES runs (id) ON DELETE SET NULL,\n"
	"  evaluator TEXT NOT NULL\n"
	"    CHECK (evaluator IN ('analytic', 'train', 'mad', 'command')),\n"
	"  settings TEXT -- JSON object: the evaluator's settings\n"
	"    CHECK (settings IS NULL OR (json_valid(settings) AND json_type(settings) = 'object')),\n"
	"  settings_hash TEXT NOT NULL CHECK (length(settings_hash) >= 1),\n"
	"  metric TEXT NOT NULL CHECK (length(metric) >= 1), -- e.g. val_bpb, mad.recall\n"
	"  value REAL, -- NULL: not a number (diverged) or failed, see error\n"
	"  error TEXT,\n"
	"  created_at TEXT NOT NULL DEFAULT (" NOW "),\n"
	"  UNIQUE (genome_hash, evaluator, settings_hash, metric)\n"
	") STRICT;\n"
	"CREATE INDEX quality_candidate ON quality (candidate_id);\n"
	"CREATE INDEX quality_run ON quality (run_id);\n"

	/* ---- events ----------------------------------------------------- */
	"CREATE TABLE events (\n"
	"  id INTEGER PRIMARY KEY, -- increases with time\n"
	"  run_id INTEGER REFERENCES runs (id) ON DELETE CASCADE,\n"
	"  device_id INTEGER REFERENCES devices (id) ON DELETE SET NULL,\n"
	"  candidate_id INTEGER REFERENCES candidates (id) ON DELETE SET NULL,\n"
	"  level TEXT NOT NULL CHECK (level IN ('info', 'warn', 'error')),\n"
	"  kind TEXT NOT NULL CHECK (length(kind) >= 1), -- e.g. run.start, device.offline\n"
	"  message TEXT NOT NULL, -- one line for people\n"
	"  data TEXT CHECK (data IS NULL OR json_valid(data)), -- JSON details\n"
	"  created_at TEXT NOT NULL DEFAULT (" NOW ")\n"
	") STRICT;\n"
	"CREATE INDEX events_run ON events (run_id);\n"
	"CREATE INDEX events_device ON events (device_id);\n"
	"CREATE INDEX events_candidate ON events (candidate_id);\n"

	/* ---- views ------------------------------------------------------ */
	"CREATE VIEW run_summary AS\n"
	"SELECT r.id, r.name, r.mode, r.status, r.generation, r.generations,\n"
	"  (SELECT count(*) FROM candidates c WHERE c.run_id = r.id) AS candidates,\n"
	"  (SELECT count(*) FROM candidates c\n"
	"     WHERE c.run_id = r.id AND c.status = 'done') AS candidates_done,\n"
	"  (SELECT count(*) FROM candidates c\n"
	"     WHERE c.run_id = r.id AND c.status = 'failed') AS candidates_failed,\n"
	"  (SELECT count(DISTINCT c.genome_hash) FROM candidates c\n"
	"     WHERE c.run_id = r.id) AS genomes,\n"
	"  (SELECT count(*) FROM measurements m WHERE m.run_id = r.id) AS measurements,\n"
	"  (SELECT min(e.created_at) FROM events e WHERE e.run_id = r.id) AS first_event_at,\n"
	"  (SELECT max(e.created_at) FROM events e WHERE e.run_id = r.id) AS last_event_at,\n"
	"  r.created_at, r.started_at, r.finished_at, r.error\n"
	"FROM runs r;\n"

	"CREATE VIEW frontier AS\n"
	"SELECT c.run_id, c.generation, c.id AS candidate_id, c.genome_hash,\n"
	"  c.origin, c.crowding, c.objectives, g.params, g.text,\n"
	"  (c.generation = r.generation) AS latest\n"
	"FROM candidates c\n"
	"JOIN genomes g ON g.hash = c.genome_hash\n"
	"JOIN runs r ON r.id = c.run_id\n"
	"WHERE c.rank = 0 AND c.feasible = 1;\n"

	"PRAGMA user_version = 1;\n";
/* Migration 2 (the device lab, issue 5): what the registry and the SSH/adb
 * transports need beyond migration 1, and the kind of a failed measurement.
 * Additive only: nullable columns, so queries naming their columns keep
 * working. */
static const char migration_2_sql[] =
	"ALTER TABLE devices ADD COLUMN host_key TEXT; -- fingerprint accepted by tailor device trust (SHA256:...)\n"
	"ALTER TABLE devices ADD COLUMN work_root TEXT; -- where per-run work dirs are made; NULL: $HOME/.cache/tailor or /tmp (adb: /data/local/tmp)\n"
	"ALTER TABLE devices ADD COLUMN adb_path TEXT; -- adb command on the lab host; NULL: adb\n"
	"ALTER TABLE devices ADD COLUMN timeout_s INTEGER -- connect and read timeout, s; NULL: 10\n"
	"  CHECK (timeout_s IS NULL OR timeout_s BETWEEN 1 AND 3600);\n"
	"ALTER TABLE measurements ADD COLUMN failure TEXT -- kind of failure when status = 'failed'\n"
	"  CHECK (failure IS NULL OR failure IN ('build', 'connect', 'transfer', 'timeout',\n"
	"                                        'harness', 'output', 'lost', 'offline', 'busy'));\n"
	"PRAGMA user_version = 2;\n";
/* Migration 3 (analysts, issue 9): the layer composition of each genome
 * (so populations can be summarized by operator in SQL) and the views of
 * docs/schema.md. */
static const char migration_3_sql[] =
	"ALTER TABLE genomes ADD COLUMN operators TEXT -- JSON object: operator label -> layers, e.g. {\"gqa\": 6, \"shortconv\": 10, \"swiglu\": 16}\n"
	"  CHECK (operators IS NULL OR (json_valid(operators) AND json_type(operators) = 'object'));\n"

	"CREATE VIEW generation_stats AS\n"
	"SELECT g.run_id, g.generation,\n"
	"  (SELECT count(*) FROM candidates c\n"
	"     WHERE c.run_id = g.run_id AND c.generation = g.generation) AS candidates,\n"
	"  g.evaluated, g.feasible, g.frontier_size, g.hypervolume,\n"
	"  (SELECT count(*) FROM candidates c WHERE c.run_id = g.run_id\n"
	"     AND c.generation = g.generation AND c.status = 'failed') AS failed,\n"
	"  g.started_at, g.finished_at\n"
	"FROM generations g;\n"

	"CREATE VIEW generation_operators AS\n"
	"SELECT c.run_id, c.generation, o.key AS operator, sum(o.value) AS layers,\n"
	"  CAST(sum(o.value) AS REAL) / (SELECT sum(o2.value) FROM candidates c2\n"
	"     JOIN genomes g2 ON g2.hash = c2.genome_hash, json_each(g2.operators) o2\n"
	"     WHERE c2.run_id = c.run_id AND c2.generation = c.generation) AS share\n"
	"FROM candidates c JOIN genomes g ON g.hash = c.genome_hash, json_each(g.operators) o\n"
	"GROUP BY c.run_id, c.generation, o.key;\n"

	"CREATE VIEW device_summary AS\n"
	"SELECT d.id AS device_id, d.name, d.transport, d.arch, d.enabled, d.status,\n"
	"  d.fail_streak, d.last_seen,\n"
	"  count(m.id) AS measurements,\n"
	"  coalesce(sum(m.status = 'ok'), 0) AS measurements_ok,\n"
	"  coalesce(sum(m.status = 'failed'), 0) AS measurements_failed,\n"
	"  avg(CASE WHEN m.status = 'ok' THEN m.cv END) AS mean_cv,\n"
	"  max(m.created_at) AS last_measured_at\n"
	"FROM devices d LEFT JOIN measurements m ON m.device_id = d.id\n"
	"GROUP BY d.id;\n"

	"CREATE VIEW measurement_stats AS\n"
	"SELECT m.genome_hash, m.device_id, d.name AS device, m.protocol_hash, m.quant,\n"
	"  m.prompt_len, m.gen_len, m.depth, m.threads,\n"
	"  count(*) AS measurements, sum(m.status = 'ok') AS ok,\n"
	"  avg(m.ttft_ms) AS ttft_ms_mean, min(m.ttft_ms) AS ttft_ms_min, max(m.ttft_ms) AS ttft_ms_max,\n"
	"  avg(m.decode_ms_p50) AS decode_ms_mean, min(m.decode_ms_p50) AS decode_ms_min,\n"
	"  max(m.decode_ms_p50) AS decode_ms_max,\n"
	"  CASE WHEN count(m.decode_ms_p50) > 1 THEN sqrt(max(0.0, (avg(m.decode_ms_p50 * m.decode_ms_p50)\n"
	"    - avg(m.decode_ms_p50) * avg(m.decode_ms_p50)) * count(m.decode_ms_p50)\n"
	"    / (count(m.decode_ms_p50) - 1))) / avg(m.decode_ms_p50) END AS decode_ms_cv,\n"
	"  max(m.peak_rss_bytes) AS peak_rss_bytes_max\n"
	"FROM measurements m JOIN devices d ON d.id = m.device_id\n"
	"GROUP BY m.genome_hash, m.device_id, m.protocol_hash;\n"
	"PRAGMA user_version = 3;\n";
/* Migration 4 (the spread of a measurement, and operator latency tables):
 *  - measurements keep, next to the medians, the spread of the final round's
 *    repeats (p95 by nearest rank, min, max, CV; profiler/protocol.h
 *    prof_stats defines them), so a noisy number can be told from a steady
 *    one without reading measurement_repeats;
 *  - op_tables: a device profiled per layer configuration (`tailor device
 *    profile-ops`), the whole table as JSON (what the predictor loads) and
 *    one op_table_entries row per configuration and shape (for analysts);
 *  - predictions: a genome's latency predicted from a table, with the
 *    measurement it was checked against;
 *  - devices.protocol: a device's measurement-protocol overrides (a JSON
 *    object of protocol keys, e.g. a phone's thermal gate and delay),
 *    applied before the run's.
 * Additive only: nullable columns and new tables. */
static const char migration_4_sql[] =
	"ALTER TABLE measurements ADD COLUMN ttft_ms_rep_p95 REAL -- p95 (nearest rank) of ttft_ms over the repeats\n"
	"  CHECK (ttft_ms_rep_p95 IS NULL OR ttft_ms_rep_p95 >= 0);\n"
	"ALTER TABLE measurements ADD COLUMN ttft_ms_rep_min REAL -- smallest ttft_ms of the repeats\n"
	"  CHECK (ttft_ms_rep_min IS NULL OR ttft_ms_rep_min >= 0);\n"
	"ALTER TABLE measurements ADD COLUMN ttft_ms_rep_max REAL -- largest ttft_ms of the repeats\n"
	"  CHECK (ttft_ms_rep_max IS NULL OR ttft_ms_rep_max >= 0);\n"
	"ALTER TABLE measurements ADD COLUMN ttft_cv REAL -- coefficient of variation of ttft_ms over the repeats\n"
	"  CHECK (ttft_cv IS NULL OR ttft_cv >= 0);\n"
	"ALTER TABLE measurements ADD COLUMN decode_ms_rep_p95 REAL -- p95 (nearest rank) of the repeats' decode_ms_p50\n"
	"  CHECK (decode_ms_rep_p95 IS NULL OR decode_ms_rep_p95 >= 0);\n"
	"ALTER TABLE measurements ADD COLUMN decode_ms_rep_min REAL -- smallest decode_ms_p50 of the repeats\n"
	"  CHECK (decode_ms_rep_min IS NULL OR decode_ms_rep_min >= 0);\n"
	"ALTER TABLE measurements ADD COLUMN decode_ms_rep_max REAL -- largest decode_ms_p50 of the repeats\n"
	"  CHECK (decode_ms_rep_max IS NULL OR decode_ms_rep_max >= 0);\n"
	"ALTER TABLE measurements ADD COLUMN peak_rss_rep_min INTEGER -- smallest peak_rss_bytes of the repeats, bytes\n"
	"  CHECK (peak_rss_rep_min IS NULL OR peak_rss_rep_min >= 0);\n"
	"ALTER TABLE measurements ADD COLUMN peak_rss_rep_max INTEGER -- largest peak_rss_bytes of the repeats, bytes\n"
	"  CHECK (peak_rss_rep_max IS NULL OR peak_rss_rep_max >= 0);\n"

	/* ---- op_tables -------------------------------------------------- */
	"CREATE TABLE op_tables (\n"
	"  id INTEGER PRIMARY KEY,\n"
	"  device_id INTEGER NOT NULL REFERENCES devices (id), -- the device profiled\n"
	"  space_hash TEXT NOT NULL, -- hash of the search space whose layer configurations were profiled\n"
	"  space_name TEXT, -- its name, for people\n"
	"  quant TEXT NOT NULL, -- weight format of the builds, e.g. f32, q8_0\n"
	"  kv TEXT NOT NULL, -- KV cache format, e.g. f16, f32\n"
	"  threads INTEGER CHECK (threads >= 1), -- NULL: the harness default\n"
	"  protocol TEXT -- JSON object: the measurement protocol, as in measurements.protocol\n"
	"    CHECK (protocol IS NULL OR (json_valid(protocol) AND json_type(protocol) = 'object')),\n"
	"  protocol_hash TEXT, -- hash of the protocol, as the profiler computes it\n"
	"  build_hash TEXT, -- content hash of the profiling builds' sources, flags, toolchain\n"
	"  device_fingerprint TEXT -- JSON object: cpu, governor, kernel... at profiling time\n"
	"    CHECK (device_fingerprint IS NULL OR\n"
	"           (json_valid(device_fingerprint) AND json_type(device_fingerprint) = 'object')),\n"
	"  n_keys INTEGER NOT NULL CHECK (n_keys >= 0), -- layer configurations profiled\n"
	"  n_archs INTEGER NOT NULL CHECK (n_archs >= 0), -- profiling architectures built and measured\n"
	"  seconds REAL CHECK (seconds >= 0), -- wall time of the profiling, s\n"
	"  table_json TEXT NOT NULL -- JSON object: the whole table as the profiler writes it; what the predictor loads\n"
	"    CHECK (json_valid(table_json) AND json_type(table_json) = 'object'),\n"
	"  created_at TEXT NOT NULL DEFAULT (" NOW ")\n"
	") STRICT;\n"
	"CREATE INDEX op_tables_device ON op_tables (device_id, space_hash);\n"

	"CREATE TABLE op_table_entries (\n"
	"  table_id INTEGER NOT NULL REFERENCES op_tables (id) ON DELETE CASCADE,\n"
	"  layer_key TEXT NOT NULL, -- the layer configuration (operator and settings), as the profiler names it\n"
	"  prompt_len INTEGER NOT NULL CHECK (prompt_len >= 1), -- P, tokens prefilled\n"
	"  gen_len INTEGER NOT NULL CHECK (gen_len >= 1), -- N, tokens decoded\n"
	"  depth INTEGER NOT NULL CHECK (depth >= 0), -- D, context depth before the prompt\n"
	"  prefill_ms REAL CHECK (prefill_ms >= 0), -- one layer's time to prefill the P tokens, ms\n"
	"  decode_ms REAL CHECK (decode_ms >= 0), -- one layer's time per decoded token, ms\n"
	"  weight_bytes INTEGER CHECK (weight_bytes >= 0), -- weights one layer owns\n"
	"  state_bytes INTEGER CHECK (state_bytes >= 0), -- KV cache + recurrent state of one layer at P + N + D\n"
	"  instances INTEGER NOT NULL CHECK (instances >= 0), -- layer instances measured\n"
	"  cv REAL CHECK (cv >= 0), -- coefficient of variation of decode_ms over instances and repeats\n"
	"  PRIMARY KEY (table_id, layer_key, prompt_len, gen_len, depth)\n"
	") STRICT;\n"

	/* ---- predictions ------------------------------------------------ */
	"CREATE TABLE predictions (\n"
	"  id INTEGER PRIMARY KEY,\n"
	"  table_id INTEGER NOT NULL REFERENCES op_tables (id) ON DELETE CASCADE, -- the table used\n"
	"  genome_hash TEXT NOT NULL REFERENCES genomes (hash),\n"
	"  prompt_len INTEGER NOT NULL CHECK (prompt_len >= 1), -- P\n"
	"  gen_len INTEGER NOT NULL CHECK (gen_len >= 1), -- N\n"
	"  depth INTEGER NOT NULL CHECK (depth >= 0), -- D\n"
	"  ttft_ms REAL CHECK (ttft_ms >= 0), -- predicted time to first token, ms\n"
	"  decode_ms REAL CHECK (decode_ms >= 0), -- predicted latency of one decoded token, ms\n"
	"  peak_rss_bytes INTEGER CHECK (peak_rss_bytes >= 0), -- predicted peak resident memory, bytes\n"
	"  measurement_id INTEGER REFERENCES measurements (id) ON DELETE SET NULL, -- validated against; NULL: none\n"
	"  created_at TEXT NOT NULL DEFAULT (" NOW ")\n"
	") STRICT;\n"
	/* The indexes on table_id and measurement_id also keep deleting a table
	 * or a measurement linear (each deleted row looks up its referrers). */
	"CREATE INDEX predictions_table ON predictions (table_id);\n"
	"CREATE INDEX predictions_genome ON predictions (genome_hash);\n"
	"CREATE INDEX predictions_measurement ON predictions (measurement_id);\n"

	/* ---- devices.protocol ------------------------------------------- */
	/* A device's own measurement settings (a phone's thermal gate and
	 * delay, a board's repeats): applied over the defaults and before the
	 * command's or run's protocol and flags (docs/devices.md, "Measurement
	 * protocol"). Its "shapes", if any, never replace the command's. */
	"ALTER TABLE devices ADD COLUMN protocol TEXT -- JSON object of protocol keys: the device's overrides, applied before the run's; NULL: none\n"
	"  CHECK (protocol IS NULL OR (json_valid(protocol) AND json_type(protocol) = 'object'));\n"
	"PRAGMA user_version = 4;\n";
/* Migration 5 (what a candidate was ranked on, and canary history):
 *  - candidate_evals: one row per candidate and device saying whether its
 *    device metrics came from a measurement or a prediction (evaluation
 *    "predict" and predict-then-measure), with both ids when it has both;
 *    written with INSERT OR REPLACE, so a resumed run that evaluates a
 *    candidate again replaces its row. The ids are SET NULL when their row
 *    goes (a prediction goes with its operator table), so `used` has no
 *    CHECK against them;
 *  - canaries: every canary measurement of a device, across runs, so drift
 *    can be followed over weeks and not only within one run;
 *  - views predicted_vs_measured (the predictor's relative error on the
 *    candidates that have both) and canary_history (names joined, the
 *    change from the previous canary of the same genome on the device).
 * Additive only: new tables and views. */
static const char migration_5_sql[] =
	/* ---- candidate_evals -------------------------------------------- */
	"CREATE TABLE candidate_evals (\n"
	"  candidate_id INTEGER NOT NULL REFERENCES candidates (id) ON DELETE CASCADE,\n"
	"  device_id INTEGER NOT NULL REFERENCES devices (id), -- the device the metrics are of\n"
	"  measurement_id INTEGER REFERENCES measurements (id) ON DELETE SET NULL, -- measured on it; NULL: not measured\n"
	"  prediction_id INTEGER REFERENCES predictions (id) ON DELETE SET NULL, -- predicted for it; NULL: not predicted\n"
	"  used TEXT NOT NULL CHECK (used IN ('measured', 'predicted')), -- which of the two the candidate was ranked on\n"
	"  created_at TEXT NOT NULL DEFAULT (" NOW "), -- when the row was (last) written\n"
	"  PRIMARY KEY (candidate_id, device_id)\n"
	") STRICT;\n"
	/* The primary key serves lookups by candidate; these keep deleting a
	 * measurement or an operator table (its predictions) linear. */
	"CREATE INDEX candidate_evals_measurement ON candidate_evals (measurement_id);\n"
	"CREATE INDEX candidate_evals_prediction ON candidate_evals (prediction_id);\n"

	/* ---- canaries --------------------------------------------------- */
	"CREATE TABLE canaries (\n"
	"  id INTEGER PRIMARY KEY, -- higher is newer\n"
	"  device_id INTEGER NOT NULL REFERENCES devices (id),\n"
	"  canary_hash TEXT NOT NULL -- arch hash of the canary genome (as genomes.hash)\n"
	"    CHECK (length(canary_hash) = 64 AND canary_hash NOT GLOB '*[^0-9a-f]*'),\n"
	"  build_hash TEXT, -- build key of the harness that measured it; NULL: unknown\n"
	"  run_id INTEGER REFERENCES runs (id) ON DELETE SET NULL, -- the run that measured it\n"
	"  generation INTEGER NOT NULL CHECK (generation >= 0), -- of that run, 0-based\n"
	"  measurement_id INTEGER REFERENCES measurements (id) ON DELETE SET NULL, -- the measurement behind it\n"
	"  decode_ms REAL CHECK (decode_ms >= 0), -- median per-token decode latency, ms\n"
	"  ttft_ms REAL CHECK (ttft_ms >= 0), -- median time to first token, ms\n"
	"  peak_rss_mb REAL CHECK (peak_rss_mb >= 0), -- peak resident memory, MiB\n"
	"  created_at TEXT NOT NULL DEFAULT (" NOW ")\n"
	") STRICT;\n"
	"CREATE INDEX canaries_device ON canaries (device_id, canary_hash, id);\n"
	"CREATE INDEX canaries_run ON canaries (run_id);\n"

	/* ---- views ------------------------------------------------------ */
	"CREATE VIEW predicted_vs_measured AS\n"
	"SELECT c.run_id, c.generation, e.candidate_id, c.genome_hash, e.device_id, d.name AS device,\n"
	"  e.used, e.measurement_id, e.prediction_id, p.prompt_len, p.gen_len, p.depth,\n"
	"  p.ttft_ms AS pred_ttft_ms, m.ttft_ms AS meas_ttft_ms,\n"
	"  p.decode_ms AS pred_decode_ms, m.decode_ms_p50 AS meas_decode_ms,\n"
	"  p.peak_rss_bytes AS pred_peak_rss_bytes, m.peak_rss_bytes AS meas_peak_rss_bytes,\n"
	"  (p.ttft_ms - m.ttft_ms) / m.ttft_ms AS ttft_rel_err,\n"
	"  (p.decode_ms - m.decode_ms_p50) / m.decode_ms_p50 AS decode_rel_err,\n"
	"  CAST(p.peak_rss_bytes - m.peak_rss_bytes AS REAL) / m.peak_rss_bytes AS peak_rss_rel_err\n"
	"FROM candidate_evals e\n"
	"JOIN candidates c ON c.id = e.candidate_id\n"
	"JOIN devices d ON d.id = e.device_id\n"
	"JOIN measurements m ON m.id = e.measurement_id\n"
	"JOIN predictions p ON p.id = e.prediction_id\n"
	"WHERE m.status = 'ok';\n"

	"CREATE VIEW canary_history AS\n"
	"SELECT k.id, k.device_id, d.name AS device, k.canary_hash, k.build_hash, k.run_id,\n"
	"  r.name AS run, k.generation, k.measurement_id, k.decode_ms, k.ttft_ms, k.peak_rss_mb,\n"
	"  k.decode_ms / lag(k.decode_ms) OVER (PARTITION BY k.device_id, k.canary_hash\n"
	"    ORDER BY k.id) - 1 AS decode_change,\n"
	"  k.created_at\n"
	"FROM canaries k\n"
	"JOIN devices d ON d.id = k.device_id\n"
	"LEFT JOIN runs r ON r.id = k.run_id;\n"
	"PRAGMA user_version = 5;\n";
/* clang-format on */

const db_migration db_migrations[] = {
	{1, "initial schema", migration_1_sql},
	{2, "device lab: devices.host_key, work_root, adb_path, timeout_s; measurements.failure",
	 migration_2_sql},
	{3, "analysts: genomes.operators; views generation_stats, generation_operators, "
	    "device_summary, measurement_stats", migration_3_sql},
	{4, "spread and operator tables: measurements.ttft_ms_rep_p95 ... peak_rss_rep_max, "
	    "ttft_cv; tables op_tables, op_table_entries, predictions; devices.protocol",
	 migration_4_sql},
	{5, "ranked on and canaries: tables candidate_evals, canaries; views "
	    "predicted_vs_measured, canary_history", migration_5_sql},
};

const size_t db_migrations_count = sizeof db_migrations / sizeof db_migrations[0];

_Static_assert(sizeof db_migrations / sizeof db_migrations[0] == DB_SCHEMA_VERSION,
               "DB_SCHEMA_VERSION must be the number of the last migration");

/* ---- testing ---------------------------------------------------------- */

/* schema_migrations as db.c creates it (schema_migrations_sql there).
 * test_db migrates a file made here and compares its schema with a new
 * file's, so a difference between the two texts fails a test. */
static const char debug_schema_migrations_sql[] =
	"CREATE TABLE IF NOT EXISTS schema_migrations (\n"
	"  version INTEGER PRIMARY KEY, -- migration number, 1..\n"
	"  name TEXT NOT NULL, -- what the migration did\n"
	"  applied_at TEXT NOT NULL -- when, UTC ISO-8601\n"
	") STRICT;\n";

int db_debug_create(const char *path, int version, const char *sql, tl_err *err)
{
	sqlite3 *h = NULL;
	sqlite3_stmt *st = NULL;
	struct stat sb;
	const char *what = "open";
	int rc;

	if (version < 1 || version > DB_SCHEMA_VERSION)
		return tl_err_set(err, TL_EINVAL,
		                  "db debug create: %s: schema version %d is not in 1..%d", path,
		                  version, DB_SCHEMA_VERSION);
	if (stat(path, &sb) == 0)
		return tl_err_set(err, TL_EEXIST, "db debug create: %s: the file exists", path);
	rc = sqlite3_open_v2(path, &h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
	if (h == NULL)
		return tl_err_set(err, TL_ENOMEM, "db debug create: %s: out of memory", path);
	sqlite3_extended_result_codes(h, 1);
	if (rc != SQLITE_OK)
		goto fail;
	what = "setup";
	rc = sqlite3_exec(h, "PRAGMA foreign_keys = ON; PRAGMA journal_mode = WAL; BEGIN IMMEDIATE",
	                  NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		goto fail;
	rc = sqlite3_exec(h, debug_schema_migrations_sql, NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		goto fail;
	for (int v = 1; v <= version; v++) {
		const db_migration *m = &db_migrations[v - 1];
		what = m->name;
		rc = sqlite3_exec(h, m->sql, NULL, NULL, NULL);
		if (rc != SQLITE_OK)
			goto fail;
		rc = sqlite3_prepare_v2(h,
		                        "INSERT INTO schema_migrations (version, name, applied_at) "
		                        "VALUES (?1, ?2, " NOW ")",
		                        -1, &st, NULL);
		if (rc != SQLITE_OK)
			goto fail;
		sqlite3_bind_int(st, 1, m->version);
		sqlite3_bind_text(st, 2, m->name, -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
		if (rc != SQLITE_DONE)
			goto fail;
		sqlite3_finalize(st);
		st = NULL;
	}
	what = "fixture";
	if (sql != NULL && (rc = sqlite3_exec(h, sql, NULL, NULL, NULL)) != SQLITE_OK)
		goto fail;
	what = "commit";
	if ((rc = sqlite3_exec(h, "COMMIT", NULL, NULL, NULL)) != SQLITE_OK)
		goto fail;
	rc = sqlite3_close(h);
	if (rc != SQLITE_OK)
		return tl_err_setsub(err, TL_EDB, rc, "db debug create: %s: close: %s", path,
		                     sqlite3_errstr(rc));
	return 0;

fail:
	/* The message belongs to the failure: read it before finalizing. */
	tl_err_setsub(err, TL_EDB, sqlite3_extended_errcode(h), "db debug create: %s: %s: %s",
	              path, what, sqlite3_errmsg(h));
	sqlite3_finalize(st);
	sqlite3_close_v2(h); /* an open transaction is rolled back */
	return TL_EDB;
}
