/*
 * db/runs.c: runs, generations and candidates (see db_runs.h). Workload: a
 * handful of statements per evaluation (seconds apart) and per generation;
 * nothing here is hot.
 */
#include "db_int.h"
#include "db_runs.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define NOW "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"

void db_run_clear(db_run *r)
{
	free(r->config);
	memset(r, 0, sizeof *r);
}

int db_run_create(db_conn *db, const char *name, const char *config_json,
                  const char *config_hash, const char *mode, uint64_t seed, int64_t generations,
                  int64_t population, const char *version, int64_t *id, tl_err *err)
{
	return db_insert(db,
	                 "INSERT INTO runs (name, config, config_hash, mode, seed, generations, "
	                 "population, tailor_version) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
	                 DB_ARGS(DB_TEXT(name), DB_TEXT(config_json), DB_TEXT(config_hash),
	                         DB_TEXT(mode), DB_I64(seed), DB_ID(generations), DB_ID(population),
	                         DB_TEXT(version)),
	                 "run create", id, err);
}

#define RUN_COLS                                                                          \
	"id, name, config, config_hash, mode, seed, status, generation, generations, "     \
	"population, pid, host, heartbeat_at, created_at, started_at, finished_at, error"

/* A row of RUN_COLS, the config left out (list) or not (get). */
static void read_run_cols(sqlite3_stmt *st, db_run *r)
{
	r->id = sqlite3_column_int64(st, 0);
	db_col_text(st, 1, r->name, sizeof r->name);
	db_col_text(st, 3, r->config_hash, sizeof r->config_hash);
	db_col_text(st, 4, r->mode, sizeof r->mode);
	r->seed = (uint64_t)sqlite3_column_int64(st, 5);
	db_col_text(st, 6, r->status, sizeof r->status);
	r->generation = sqlite3_column_int64(st, 7);
	r->generations = sqlite3_column_int64(st, 8);
	r->population = sqlite3_column_int64(st, 9);
	r->pid = sqlite3_column_int64(st, 10);
	db_col_text(st, 11, r->host, sizeof r->host);
	db_col_text(st, 12, r->heartbeat_at, sizeof r->heartbeat_at);
	db_col_text(st, 13, r->created_at, sizeof r->created_at);
	db_col_text(st, 14, r->started_at, sizeof r->started_at);
	db_col_text(st, 15, r->finished_at, sizeof r->finished_at);
	db_col_text(st, 16, r->error, sizeof r->error);
}

static int read_run_listed(sqlite3_stmt *st, void *elem, tl_err *err)
{
	read_run_cols(st, elem);
	return 0;
}

static int read_run_full(sqlite3_stmt *st, void *elem, tl_err *err)
{
	db_run *r = elem;
	read_run_cols(st, r);
	if (db_col_dup(st, 2, &r->config) < 0)
		return tl_err_set(err, TL_ENOMEM, "run %lld: out of memory", (long long)r->id);
	return 0;
}

int db_run_get(db_conn *db, int64_t id, db_run *out, tl_err *err)
{
	memset(out, 0, sizeof *out);
	int ret = db_get(db, "SELECT " RUN_COLS " FROM runs WHERE id = ?1", DB_ARGS(DB_I64(id)),
	                 "run get", read_run_full, out, err);
	if (ret < 0)
		db_run_clear(out);
	if (ret != 0)
		return ret < 0 ? ret : 0;
	return tl_err_set(err, TL_ENOTFOUND, "run %lld: no such run (see 'tailor run list')",
	                  (long long)id);
}

static const db_rowtype run_rows = {sizeof(db_run), read_run_listed, NULL};

int db_run_list(db_conn *db, db_run **out, size_t *n, tl_err *err)
{
	return db_collect(db, "SELECT " RUN_COLS " FROM runs ORDER BY id DESC", NULL, 0, "run list",
	                  &run_rows, (void **)out, n, err);
}

int db_run_set_status(db_conn *db, int64_t id, const char *status, const char *error,
                      int64_t pid, const char *host, tl_err *err)
{
	return db_write(db,
	                "UPDATE runs SET status = ?2, error = ?3,\n"
	                " started_at = CASE WHEN ?2 = 'running' THEN coalesce(started_at, " NOW ")"
	                " ELSE started_at END,\n"
	                " pid = CASE WHEN ?2 = 'running' THEN ?4 WHEN ?2 IN ('finished', 'stopped',"
	                " 'failed') THEN NULL ELSE pid END,\n"
	                " host = CASE WHEN ?2 = 'running' THEN ?5 ELSE host END,\n"
	                " heartbeat_at = " NOW ",\n"
	                " finished_at = CASE WHEN ?2 IN ('finished', 'stopped', 'failed') THEN " NOW
	                " ELSE NULL END\n"
	                "WHERE id = ?1",
	                DB_ARGS(DB_I64(id), DB_TEXT(status), DB_TEXT(error), DB_ID(pid),
	                        DB_TEXT(host)),
	                "run status", err);
}

int db_run_set_generation(db_conn *db, int64_t id, int64_t generation, tl_err *err)
{
	return db_write(db, "UPDATE runs SET generation = ?2 WHERE id = ?1",
	                DB_ARGS(DB_I64(id), DB_I64(generation)), "run generation", err);
}

int db_run_heartbeat(db_conn *db, int64_t id, tl_err *err)
{
	return db_write(db, "UPDATE runs SET heartbeat_at = " NOW " WHERE id = ?1",
	                DB_ARGS(DB_I64(id)), "run heartbeat", err);
}

/* ---- candidates ------------------------------------------------------------ */

static void cand_clear(void *elem)
{
	db_candidate *c = elem;
	free(c->text);
	free(c->objectives);
}

void db_candidates_free(db_candidate *c, size_t n)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		cand_clear(&c[i]);
	free(c);
}

int db_candidate_add(db_conn *db, int64_t run_id, int64_t generation, const char *hash,
                     const char *text, int64_t params, const char *operators,
                     int64_t parent1, int64_t parent2,
                     const char *origin, const char *status, const char *objectives,
                     int feasible, double violation, int64_t *id, tl_err *err)
{
	if (db_genome_ensure(db, hash, text, params, err) < 0)
		return TL_EDB;
	if (operators &&
	    db_write(db, "UPDATE genomes SET operators = ?2 WHERE hash = ?1 AND operators IS NULL",
	             DB_ARGS(DB_TEXT(hash), DB_TEXT(operators)), "genome operators", err) < 0)
		return TL_EDB;
	sqlite3_stmt *st;
	if (db_prepare_args(db, &st,
	                    "INSERT INTO candidates (run_id, generation, genome_hash, parent1_id, "
	                    "parent2_id, origin, status, objectives, feasible, violation, "
	                    "evaluated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, "
	                    "CASE WHEN ?7 = 'done' THEN " NOW " END)",
	                    DB_ARGS(DB_I64(run_id), DB_I64(generation), DB_TEXT(hash), DB_ID(parent1),
	                            DB_ID(parent2), DB_TEXT(origin), DB_TEXT(status),
	                            DB_TEXT(objectives), DB_I64_OPT(feasible),
	                            DB_REAL_BIG(violation)),
	                    "candidate add", err) < 0)
		return TL_EDB;
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT)
		return tl_err_set(err, TL_EEXIST, "candidate add: run %lld generation %lld already holds "
		                  "genome %.12s", (long long)run_id, (long long)generation, hash);
	if (rc != SQLITE_DONE)
		return db_fail(db, rc, "candidate add", err);
	if (id)
		*id = sqlite3_last_insert_rowid(db->h);
	return 0;
}

#define CAND_COLS                                                                           \
	"c.id, c.generation, c.genome_hash, g.text, c.parent1_id, c.parent2_id, c.origin, "  \
	"c.status, c.rank, c.crowding, c.feasible, c.violation, c.objectives, c.error"
#define CAND_FROM " FROM candidates c JOIN genomes g ON g.hash = c.genome_hash "

static int read_cand(sqlite3_stmt *st, void *elem, tl_err *err)
{
	db_candidate *c = elem;
	c->id = sqlite3_column_int64(st, 0);
	c->generation = sqlite3_column_int64(st, 1);
	db_col_text(st, 2, c->genome_hash, sizeof c->genome_hash);
	c->parent1 = sqlite3_column_int64(st, 4);
	c->parent2 = sqlite3_column_int64(st, 5);
	db_col_text(st, 6, c->origin, sizeof c->origin);
	db_col_text(st, 7, c->status, sizeof c->status);
	c->rank = sqlite3_column_type(st, 8) == SQLITE_NULL ? -1 : sqlite3_column_int(st, 8);
	c->crowding = sqlite3_column_type(st, 9) == SQLITE_NULL ? NAN : sqlite3_column_double(st, 9);
	if (c->crowding >= 1e308)
		c->crowding = INFINITY;
	c->feasible = sqlite3_column_type(st, 10) == SQLITE_NULL ? -1 : sqlite3_column_int(st, 10);
	c->violation = sqlite3_column_type(st, 11) == SQLITE_NULL ? NAN : sqlite3_column_double(st, 11);
	db_col_text(st, 13, c->error, sizeof c->error);
	if (db_col_dup(st, 3, &c->text) < 0 || db_col_dup(st, 12, &c->objectives) < 0)
		return tl_err_set(err, TL_ENOMEM, "candidate %lld: out of memory", (long long)c->id);
	return 0;
}

static const db_rowtype cand_rows = {sizeof(db_candidate), read_cand, cand_clear};

int db_candidates_of(db_conn *db, int64_t run_id, int64_t generation, db_candidate **out,
                     size_t *n, tl_err *err)
{
	return db_collect(db,
	                  "SELECT " CAND_COLS CAND_FROM
	                  "WHERE c.run_id = ?1 AND c.generation = ?2 ORDER BY c.id",
	                  DB_ARGS(DB_I64(run_id), DB_I64(generation)), "candidates", &cand_rows,
	                  (void **)out, n, err);
}

int db_candidate_find_done(db_conn *db, int64_t run_id, const char *hash, db_candidate *out,
                           bool *found, tl_err *err)
{
	*found = false;
	memset(out, 0, sizeof *out);
	int ret = db_get(db,
	                 "SELECT " CAND_COLS CAND_FROM
	                 "WHERE c.run_id = ?1 AND c.genome_hash = ?2 AND c.status = 'done' "
	                 "ORDER BY c.id LIMIT 1",
	                 DB_ARGS(DB_I64(run_id), DB_TEXT(hash)), "candidate lookup", read_cand, out,
	                 err);
	if (ret < 0) {
		cand_clear(out);
		memset(out, 0, sizeof *out);
		return ret;
	}
	*found = ret == 1;
	return 0;
}

int db_run_has_genome(db_conn *db, int64_t run_id, const char *hash, bool *has, tl_err *err)
{
	int64_t one = 0;
	int ret = db_get(db, "SELECT 1 FROM candidates WHERE run_id = ?1 AND genome_hash = ?2 LIMIT 1",
	                 DB_ARGS(DB_I64(run_id), DB_TEXT(hash)), "candidate lookup", db_read_i64,
	                 &one, err);
	*has = ret == 1;
	return ret < 0 ? ret : 0;
}

int db_candidate_set_result(db_conn *db, int64_t id, const char *status, const char *objectives,
                            int feasible, double violation, const char *error, tl_err *err)
{
	return db_write(db,
	                "UPDATE candidates SET status = ?2, objectives = ?3, feasible = ?4, "
	                "violation = ?5, error = ?6, evaluated_at = " NOW " WHERE id = ?1",
	                DB_ARGS(DB_I64(id), DB_TEXT(status), DB_TEXT(objectives),
	                        DB_I64_OPT(feasible), DB_REAL_BIG(violation), DB_TEXT(error)),
	                "candidate result", err);
}

int db_candidate_set_rank(db_conn *db, int64_t id, int rank, double crowding, tl_err *err)
{
	return db_write(db, "UPDATE candidates SET rank = ?2, crowding = ?3 WHERE id = ?1",
	                DB_ARGS(DB_I64(id), DB_I64_OPT(rank), DB_REAL_BIG(crowding)),
	                "candidate rank", err);
}

int db_candidate_set_objectives(db_conn *db, int64_t id, const char *objectives, tl_err *err)
{
	return db_write(db, "UPDATE candidates SET objectives = ?2 WHERE id = ?1 AND status = 'done'",
	                DB_ARGS(DB_I64(id), DB_TEXT(objectives)), "candidate objectives", err);
}

int db_generation_put(db_conn *db, int64_t run_id, int64_t generation, int64_t evaluated,
                      int64_t feasible, int64_t frontier_size, double hypervolume,
                      const char *reference_point, bool finished, tl_err *err)
{
	return db_write(db,
	                "INSERT INTO generations (run_id, generation, evaluated, feasible, "
	                "frontier_size, hypervolume, reference_point, finished_at) "
	                "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, CASE WHEN ?8 THEN " NOW " END) "
	                "ON CONFLICT (run_id, generation) DO UPDATE SET evaluated = ?3, "
	                "feasible = ?4, frontier_size = ?5, hypervolume = ?6, reference_point = ?7, "
	                "finished_at = CASE WHEN ?8 THEN " NOW " END",
	                DB_ARGS(DB_I64(run_id), DB_I64(generation), DB_I64(evaluated),
	                        DB_I64(feasible), DB_I64(frontier_size), DB_REAL_BIG(hypervolume),
	                        DB_TEXT(reference_point), DB_BOOL(finished)),
	                "generation", err);
}

int db_generation_finished(db_conn *db, int64_t run_id, int64_t generation, bool *finished,
                           tl_err *err)
{
	int64_t f = 0;
	int ret = db_get(db,
	                 "SELECT finished_at IS NOT NULL FROM generations WHERE run_id = ?1 AND "
	                 "generation = ?2",
	                 DB_ARGS(DB_I64(run_id), DB_I64(generation)), "generation", db_read_i64, &f,
	                 err);
	*finished = ret == 1 && f != 0;
	return ret < 0 ? ret : 0;
}

/* ---- for reports ------------------------------------------------------------- */

int db_candidates_all(db_conn *db, int64_t run_id, db_candidate **out, size_t *n, tl_err *err)
{
	return db_collect(db, "SELECT " CAND_COLS CAND_FROM "WHERE c.run_id = ?1 ORDER BY c.id",
	                  DB_ARGS(DB_I64(run_id)), "candidates", &cand_rows, (void **)out, n, err);
}

static int read_generation(sqlite3_stmt *st, void *elem, tl_err *err)
{
	db_generation *g = elem;
	g->generation = sqlite3_column_int64(st, 0);
	g->evaluated = sqlite3_column_int64(st, 1);
	g->feasible = sqlite3_column_int64(st, 2);
	g->frontier_size = sqlite3_column_int64(st, 3);
	g->hypervolume = sqlite3_column_type(st, 4) == SQLITE_NULL ? NAN : sqlite3_column_double(st, 4);
	return 0;
}

static const db_rowtype generation_rows = {sizeof(db_generation), read_generation, NULL};

int db_generations_of(db_conn *db, int64_t run_id, db_generation **out, size_t *n, tl_err *err)
{
	return db_collect(db,
	                  "SELECT generation, evaluated, feasible, frontier_size, hypervolume "
	                  "FROM generations WHERE run_id = ?1 AND finished_at IS NOT NULL "
	                  "ORDER BY generation",
	                  DB_ARGS(DB_I64(run_id)), "generations", &generation_rows, (void **)out, n,
	                  err);
}

static int read_opshare(sqlite3_stmt *st, void *elem, tl_err *err)
{
	db_opshare *o = elem;
	o->generation = sqlite3_column_int64(st, 0);
	db_col_text(st, 1, o->op, sizeof o->op);
	o->layers = sqlite3_column_int64(st, 2);
	o->share = sqlite3_column_double(st, 3);
	return 0;
}

static const db_rowtype opshare_rows = {sizeof(db_opshare), read_opshare, NULL};

int db_operator_shares(db_conn *db, int64_t run_id, db_opshare **out, size_t *n, tl_err *err)
{
	return db_collect(db,
	                  "SELECT generation, operator, layers, share FROM generation_operators "
	                  "WHERE run_id = ?1 ORDER BY generation, operator",
	                  DB_ARGS(DB_I64(run_id)), "operator shares", &opshare_rows, (void **)out, n,
	                  err);
}

/* ---- what a candidate was ranked on -------------------------------------------------- */

int db_candidate_eval_set(db_conn *db, int64_t candidate_id, int64_t device_id,
                          int64_t measurement_id, int64_t prediction_id, const char *used,
                          tl_err *err)
{
	tl_err e = TL_ERR_INIT;
	int ret = db_write(db,
	                   "INSERT OR REPLACE INTO candidate_evals (candidate_id, device_id, "
	                   "measurement_id, prediction_id, used) VALUES (?1, ?2, ?3, ?4, ?5)",
	                   DB_ARGS(DB_I64(candidate_id), DB_I64(device_id), DB_ID(measurement_id),
	                           DB_ID(prediction_id), DB_TEXT(used)),
	                   "candidate eval", &e);
	if (ret == 0)
		return 0;
	/* SQLite's "FOREIGN KEY constraint failed" says not which: name them */
	if (e.sub == SQLITE_CONSTRAINT_FOREIGNKEY)
		return tl_err_setsub(err, ret, e.sub,
		                     "candidate eval: candidate %lld, device %lld, measurement %lld, "
		                     "prediction %lld: one of them is not in the database",
		                     (long long)candidate_id, (long long)device_id,
		                     (long long)measurement_id, (long long)prediction_id);
	return tl_err_setsub(err, ret, e.sub, "%s", e.msg);
}

static int read_eval(sqlite3_stmt *st, void *elem, tl_err *err)
{
	db_candidate_eval *e = elem;
	e->candidate_id = sqlite3_column_int64(st, 0);
	e->device_id = sqlite3_column_int64(st, 1);
	e->measurement_id = sqlite3_column_int64(st, 2);
	e->prediction_id = sqlite3_column_int64(st, 3);
	db_col_text(st, 4, e->used, sizeof e->used);
	return 0;
}

static const db_rowtype eval_rows = {sizeof(db_candidate_eval), read_eval, NULL};

int db_candidate_evals_of(db_conn *db, int64_t candidate_id, db_candidate_eval **out, size_t *n,
                          tl_err *err)
{
	return db_collect(db,
	                  "SELECT candidate_id, device_id, measurement_id, prediction_id, used FROM "
	                  "candidate_evals WHERE candidate_id = ?1 ORDER BY device_id",
	                  DB_ARGS(DB_I64(candidate_id)), "candidate evals", &eval_rows, (void **)out,
	                  n, err);
}

static int read_pvm(sqlite3_stmt *st, void *elem, tl_err *err)
{
	db_pvm *p = elem;
	p->candidate_id = sqlite3_column_int64(st, 0);
	p->generation = sqlite3_column_int64(st, 1);
	db_col_text(st, 2, p->genome_hash, sizeof p->genome_hash);
	db_col_text(st, 3, p->device, sizeof p->device);
	p->pred_ttft_ms = db_col_real(st, 4);
	p->meas_ttft_ms = db_col_real(st, 5);
	p->pred_decode_ms = db_col_real(st, 6);
	p->meas_decode_ms = db_col_real(st, 7);
	p->pred_peak_rss_mb = db_col_real(st, 8);
	p->meas_peak_rss_mb = db_col_real(st, 9);
	return 0;
}

static const db_rowtype pvm_rows = {sizeof(db_pvm), read_pvm, NULL};

int db_run_pvm(db_conn *db, int64_t run_id, db_pvm **out, size_t *n, tl_err *err)
{
	return db_collect(db,
	                  "SELECT candidate_id, generation, genome_hash, device, pred_ttft_ms, "
	                  "meas_ttft_ms, pred_decode_ms, meas_decode_ms, "
	                  "pred_peak_rss_bytes / 1048576.0, meas_peak_rss_bytes / 1048576.0 "
	                  "FROM predicted_vs_measured WHERE run_id = ?1 ORDER BY candidate_id, device",
	                  DB_ARGS(DB_I64(run_id)), "predicted vs measured", &pvm_rows, (void **)out,
	                  n, err);
}

static int read_run_device(sqlite3_stmt *st, void *elem, tl_err *err)
{
	db_run_device *d = elem;
	d->id = sqlite3_column_int64(st, 0);
	db_col_text(st, 1, d->name, sizeof d->name);
	db_col_text(st, 2, d->transport, sizeof d->transport);
	db_col_text(st, 3, d->cpu, sizeof d->cpu);
	db_col_text(st, 4, d->arch, sizeof d->arch);
	db_col_text(st, 5, d->os, sizeof d->os);
	db_col_text(st, 6, d->kernel, sizeof d->kernel);
	db_col_text(st, 7, d->toolchain, sizeof d->toolchain);
	d->cores = sqlite3_column_int64(st, 8);
	d->n_ok = sqlite3_column_int64(st, 9);
	d->n_failed = sqlite3_column_int64(st, 10);
	return 0;
}

static const db_rowtype run_device_rows = {sizeof(db_run_device), read_run_device, NULL};

int db_run_devices(db_conn *db, int64_t run_id, db_run_device **out, size_t *n, tl_err *err)
{
	/* (a bare column beside max() is the max row's: SQLite's rule) */
	return db_collect(db,
	                  "WITH f AS (SELECT device_id, device_fingerprint AS j, max(id) FROM "
	                  "measurements WHERE run_id = ?1 AND device_fingerprint IS NOT NULL "
	                  "GROUP BY device_id) "
	                  "SELECT d.id, d.name, d.transport, json_extract(f.j, '$.cpu_model'), "
	                  "json_extract(f.j, '$.arch'), json_extract(f.j, '$.os'), "
	                  "json_extract(f.j, '$.kernel'), json_extract(f.j, '$.toolchain'), "
	                  "json_extract(f.j, '$.cores'), "
	                  "(SELECT count(*) FROM measurements m WHERE m.run_id = ?1 AND "
	                  "m.device_id = d.id AND m.status = 'ok'), "
	                  "(SELECT count(*) FROM measurements m WHERE m.run_id = ?1 AND "
	                  "m.device_id = d.id AND m.status = 'failed') "
	                  "FROM devices d LEFT JOIN f ON f.device_id = d.id WHERE d.id IN ("
	                  "SELECT device_id FROM measurements WHERE run_id = ?1 UNION "
	                  "SELECT e.device_id FROM candidate_evals e JOIN candidates c ON "
	                  "c.id = e.candidate_id WHERE c.run_id = ?1 UNION "
	                  "SELECT device_id FROM canaries WHERE run_id = ?1) ORDER BY d.id",
	                  DB_ARGS(DB_I64(run_id)), "run devices", &run_device_rows, (void **)out, n,
	                  err);
}

static int read_run_failure(sqlite3_stmt *st, void *elem, tl_err *err)
{
	db_run_failure *f = elem;
	db_col_text(st, 0, f->device, sizeof f->device);
	db_col_text(st, 1, f->kind, sizeof f->kind);
	db_col_text(st, 2, f->error, sizeof f->error);
	f->n = sqlite3_column_int64(st, 3);
	return 0;
}

static const db_rowtype run_failure_rows = {sizeof(db_run_failure), read_run_failure, NULL};

int db_run_failures(db_conn *db, int64_t run_id, bool measurements, int max,
                    db_run_failure **out, size_t *n, tl_err *err)
{
	const char *sql =
	    measurements
	        ? "SELECT d.name, coalesce(m.failure, ''), coalesce(m.error, ''), count(*) FROM "
	          "measurements m JOIN devices d ON d.id = m.device_id WHERE m.run_id = ?1 AND "
	          "m.status = 'failed' GROUP BY 1, 2, 3 ORDER BY 4 DESC, 1, 2, 3 LIMIT ?2"
	        : "SELECT '', '', coalesce(error, ''), count(*) FROM candidates WHERE run_id = ?1 "
	          "AND status = 'failed' GROUP BY 3 ORDER BY 4 DESC, 3 LIMIT ?2";
	return db_collect(db, sql, DB_ARGS(DB_I64(run_id), DB_I64(max)), "run failures",
	                  &run_failure_rows, (void **)out, n, err);
}

/* ---- quality ------------------------------------------------------------------------ */

int db_quality_get(db_conn *db, const char *hash, const char *evaluator,
                   const char *settings_hash, const char *metric, double *value, bool *found,
                   tl_err *err)
{
	double v = NAN;
	int ret = db_get(db,
	                 "SELECT value FROM quality WHERE genome_hash = ?1 AND evaluator = ?2 AND "
	                 "settings_hash = ?3 AND metric = ?4 AND value IS NOT NULL",
	                 DB_ARGS(DB_TEXT(hash), DB_TEXT(evaluator), DB_TEXT(settings_hash),
	                         DB_TEXT(metric)),
	                 "quality lookup", db_read_double, &v, err);
	*found = ret == 1;
	if (ret == 1)
		*value = v;
	return ret < 0 ? ret : 0;
}

int db_quality_put(db_conn *db, const char *hash, int64_t run_id, int64_t candidate_id,
                   const char *evaluator, const char *settings, const char *settings_hash,
                   const char *metric, double value, const char *error, tl_err *err)
{
	return db_write(db,
	                "INSERT INTO quality (genome_hash, run_id, candidate_id, evaluator, settings, "
	                "settings_hash, metric, value, error) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, "
	                "?9) ON CONFLICT (genome_hash, evaluator, settings_hash, metric) DO UPDATE "
	                "SET run_id = ?2, candidate_id = ?3, value = ?8, error = ?9",
	                DB_ARGS(DB_TEXT(hash), DB_ID(run_id), DB_ID(candidate_id), DB_TEXT(evaluator),
	                        DB_TEXT(settings), DB_TEXT(settings_hash), DB_TEXT(metric),
	                        DB_REAL_BIG(value), DB_TEXT(error)),
	                "quality store", err);
}

int db_candidates_retry_failed(db_conn *db, int64_t run_id, int64_t generation, int64_t *n,
                               tl_err *err)
{
	int rc = db_write(db,
	                  "UPDATE candidates SET status = 'pending', error = NULL WHERE run_id = ?1 "
	                  "AND generation = ?2 AND status = 'failed'",
	                  DB_ARGS(DB_I64(run_id), DB_I64(generation)), "candidate retry", err);
	if (rc == 0 && n)
		*n = sqlite3_changes(db->h);
	return rc;
}

/* ---- events of a run ------------------------------------------------------------------ */

void db_strings_free(char **v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

static int read_string(sqlite3_stmt *st, void *elem, tl_err *err)
{
	if (db_col_dup(st, 0, elem) < 0)
		return tl_err_set(err, TL_ENOMEM, "events: out of memory");
	return 0;
}

static void string_clear(void *elem)
{
	free(*(char **)elem);
}

static const db_rowtype string_rows = {sizeof(char *), read_string, string_clear};

int db_run_events_data(db_conn *db, int64_t run_id, const char *kind_prefix, char ***out,
                       size_t *n, tl_err *err)
{
	return db_collect(db,
	                  "SELECT data FROM events WHERE run_id = ?1 AND substr(kind, 1, length(?2)) "
	                  "= ?2 AND data IS NOT NULL ORDER BY id",
	                  DB_ARGS(DB_I64(run_id), DB_TEXT(kind_prefix)), "events", &string_rows,
	                  (void **)out, n, err);
}
