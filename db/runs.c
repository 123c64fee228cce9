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

static void copy_col(sqlite3_stmt *st, int i, char *dst, size_t n)
{
	const unsigned char *s = sqlite3_column_text(st, i);
	tl_strlcpy(dst, s ? (const char *)s : "", n);
}

static char *dup_col(sqlite3_stmt *st, int i)
{
	const unsigned char *s = sqlite3_column_text(st, i);
	if (s == NULL)
		return NULL;
	size_t n = strlen((const char *)s);
	char *d = malloc(n + 1);
	if (d)
		memcpy(d, s, n + 1);
	return d;
}

static void bind_s(sqlite3_stmt *st, int i, const char *s)
{
	if (s)
		sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(st, i);
}

static void bind_id(sqlite3_stmt *st, int i, int64_t v)
{
	if (v > 0)
		sqlite3_bind_int64(st, i, v);
	else
		sqlite3_bind_null(st, i);
}

/* SQLite REAL has no infinity in JSON or in pandas-friendly form: the
 * crowding distance of a front's ends is stored as 1e308. */
static void bind_d(sqlite3_stmt *st, int i, double v)
{
	if (isnan(v))
		sqlite3_bind_null(st, i);
	else
		sqlite3_bind_double(st, i, isinf(v) ? (v > 0 ? 1e308 : -1e308) : v);
}

void db_run_clear(db_run *r)
{
	free(r->config);
	memset(r, 0, sizeof *r);
}

int db_run_create(db_conn *db, const char *name, const char *config_json,
                  const char *config_hash, const char *mode, uint64_t seed, int64_t generations,
                  int64_t population, const char *version, int64_t *id, tl_err *err)
{
	sqlite3_stmt *st;
	if (db_prepare(db, &st,
	               "INSERT INTO runs (name, config, config_hash, mode, seed, generations, "
	               "population, tailor_version) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
	               "run create", err) < 0)
		return TL_EDB;
	bind_s(st, 1, name);
	bind_s(st, 2, config_json);
	bind_s(st, 3, config_hash);
	bind_s(st, 4, mode);
	sqlite3_bind_int64(st, 5, (int64_t)seed);
	bind_id(st, 6, generations);
	bind_id(st, 7, population);
	bind_s(st, 8, version);
	if (db_step_done(db, &st, "run create", err) < 0)
		return TL_EDB;
	*id = sqlite3_last_insert_rowid(db->h);
	return 0;
}

#define RUN_COLS                                                                          \
	"id, name, config, config_hash, mode, seed, status, generation, generations, "     \
	"population, pid, host, heartbeat_at, created_at, started_at, finished_at, error"

static void read_run(sqlite3_stmt *st, db_run *r, bool with_config)
{
	memset(r, 0, sizeof *r);
	r->id = sqlite3_column_int64(st, 0);
	copy_col(st, 1, r->name, sizeof r->name);
	r->config = with_config ? dup_col(st, 2) : NULL;
	copy_col(st, 3, r->config_hash, sizeof r->config_hash);
	copy_col(st, 4, r->mode, sizeof r->mode);
	r->seed = (uint64_t)sqlite3_column_int64(st, 5);
	copy_col(st, 6, r->status, sizeof r->status);
	r->generation = sqlite3_column_int64(st, 7);
	r->generations = sqlite3_column_int64(st, 8);
	r->population = sqlite3_column_int64(st, 9);
	r->pid = sqlite3_column_int64(st, 10);
	copy_col(st, 11, r->host, sizeof r->host);
	copy_col(st, 12, r->heartbeat_at, sizeof r->heartbeat_at);
	copy_col(st, 13, r->created_at, sizeof r->created_at);
	copy_col(st, 14, r->started_at, sizeof r->started_at);
	copy_col(st, 15, r->finished_at, sizeof r->finished_at);
	copy_col(st, 16, r->error, sizeof r->error);
}

int db_run_get(db_conn *db, int64_t id, db_run *out, tl_err *err)
{
	sqlite3_stmt *st;
	memset(out, 0, sizeof *out);
	if (db_prepare(db, &st, "SELECT " RUN_COLS " FROM runs WHERE id = ?1", "run get", err) < 0)
		return TL_EDB;
	sqlite3_bind_int64(st, 1, id);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		read_run(st, out, true);
		sqlite3_finalize(st);
		return 0;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_fail(db, rc, "run get", err);
	return tl_err_set(err, TL_ENOTFOUND, "run %lld: no such run (see 'tailor run list')",
	                  (long long)id);
}

int db_run_list(db_conn *db, db_run **out, size_t *n, tl_err *err)
{
	sqlite3_stmt *st;
	*out = NULL;
	*n = 0;
	if (db_prepare(db, &st, "SELECT " RUN_COLS " FROM runs ORDER BY id DESC", "run list", err) < 0)
		return TL_EDB;
	size_t cap = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (*n == cap) {
			cap = cap ? 2 * cap : 16;
			db_run *p = realloc(*out, cap * sizeof *p);
			if (p == NULL) {
				sqlite3_finalize(st);
				return tl_err_set(err, TL_ENOMEM, "run list: out of memory");
			}
			*out = p;
		}
		read_run(st, &(*out)[(*n)++], false);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_fail(db, rc, "run list", err);
	return 0;
}

int db_run_set_status(db_conn *db, int64_t id, const char *status, const char *error,
                      int64_t pid, const char *host, tl_err *err)
{
	sqlite3_stmt *st;
	if (db_prepare(db, &st,
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
	               "run status", err) < 0)
		return TL_EDB;
	sqlite3_bind_int64(st, 1, id);
	bind_s(st, 2, status);
	bind_s(st, 3, error);
	bind_id(st, 4, pid);
	bind_s(st, 5, host);
	return db_step_done(db, &st, "run status", err);
}

int db_run_set_generation(db_conn *db, int64_t id, int64_t generation, tl_err *err)
{
	sqlite3_stmt *st;
	if (db_prepare(db, &st, "UPDATE runs SET generation = ?2 WHERE id = ?1", "run generation",
	               err) < 0)
		return TL_EDB;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, generation);
	return db_step_done(db, &st, "run generation", err);
}

int db_run_heartbeat(db_conn *db, int64_t id, tl_err *err)
{
	sqlite3_stmt *st;
	if (db_prepare(db, &st, "UPDATE runs SET heartbeat_at = " NOW " WHERE id = ?1",
	               "run heartbeat", err) < 0)
		return TL_EDB;
	sqlite3_bind_int64(st, 1, id);
	return db_step_done(db, &st, "run heartbeat", err);
}

/* ---- candidates ------------------------------------------------------------ */

void db_candidates_free(db_candidate *c, size_t n)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		free(c[i].text);
		free(c[i].objectives);
	}
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
	sqlite3_stmt *st;
	if (operators) {
		if (db_prepare(db, &st, "UPDATE genomes SET operators = ?2 WHERE hash = ?1 AND "
		               "operators IS NULL", "genome operators", err) < 0)
			return TL_EDB;
		bind_s(st, 1, hash);
		bind_s(st, 2, operators);
		if (db_step_done(db, &st, "genome operators", err) < 0)
			return TL_EDB;
	}
	if (db_prepare(db, &st,
	               "INSERT INTO candidates (run_id, generation, genome_hash, parent1_id, "
	               "parent2_id, origin, status, objectives, feasible, violation, evaluated_at) "
	               "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, "
	               "CASE WHEN ?7 = 'done' THEN " NOW " END)",
	               "candidate add", err) < 0)
		return TL_EDB;
	sqlite3_bind_int64(st, 1, run_id);
	sqlite3_bind_int64(st, 2, generation);
	bind_s(st, 3, hash);
	bind_id(st, 4, parent1);
	bind_id(st, 5, parent2);
	bind_s(st, 6, origin);
	bind_s(st, 7, status);
	bind_s(st, 8, objectives);
	if (feasible >= 0)
		sqlite3_bind_int(st, 9, feasible);
	bind_d(st, 10, violation);
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

static void read_cand(sqlite3_stmt *st, db_candidate *c)
{
	memset(c, 0, sizeof *c);
	c->id = sqlite3_column_int64(st, 0);
	c->generation = sqlite3_column_int64(st, 1);
	copy_col(st, 2, c->genome_hash, sizeof c->genome_hash);
	c->text = dup_col(st, 3);
	c->parent1 = sqlite3_column_int64(st, 4);
	c->parent2 = sqlite3_column_int64(st, 5);
	copy_col(st, 6, c->origin, sizeof c->origin);
	copy_col(st, 7, c->status, sizeof c->status);
	c->rank = sqlite3_column_type(st, 8) == SQLITE_NULL ? -1 : sqlite3_column_int(st, 8);
	c->crowding = sqlite3_column_type(st, 9) == SQLITE_NULL ? NAN : sqlite3_column_double(st, 9);
	if (c->crowding >= 1e308)
		c->crowding = INFINITY;
	c->feasible = sqlite3_column_type(st, 10) == SQLITE_NULL ? -1 : sqlite3_column_int(st, 10);
	c->violation = sqlite3_column_type(st, 11) == SQLITE_NULL ? NAN : sqlite3_column_double(st, 11);
	c->objectives = dup_col(st, 12);
	copy_col(st, 13, c->error, sizeof c->error);
}

int db_candidates_of(db_conn *db, int64_t run_id, int64_t generation, db_candidate **out,
                     size_t *n, tl_err *err)
{
	sqlite3_stmt *st;
	*out = NULL;
	*n = 0;
	if (db_prepare(db, &st,
	               "SELECT " CAND_COLS " FROM candidates c JOIN genomes g ON g.hash = c.genome_hash "
	               "WHERE c.run_id = ?1 AND c.generation = ?2 ORDER BY c.id",
	               "candidates", err) < 0)
		return TL_EDB;
	sqlite3_bind_int64(st, 1, run_id);
	sqlite3_bind_int64(st, 2, generation);
	size_t cap = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (*n == cap) {
			cap = cap ? 2 * cap : 32;
			db_candidate *p = realloc(*out, cap * sizeof *p);
			if (p == NULL) {
				sqlite3_finalize(st);
				return tl_err_set(err, TL_ENOMEM, "candidates: out of memory");
			}
			*out = p;
		}
		read_cand(st, &(*out)[(*n)++]);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_fail(db, rc, "candidates", err);
	return 0;
}

int db_candidate_find_done(db_conn *db, int64_t run_id, const char *hash, db_candidate *out,
                           bool *found, tl_err *err)
{
	sqlite3_stmt *st;
	*found = false;
	if (db_prepare(db, &st,
	               "SELECT " CAND_COLS " FROM candidates c JOIN genomes g ON g.hash = c.genome_hash "
	               "WHERE c.run_id = ?1 AND c.genome_hash = ?2 AND c.status = 'done' "
	               "ORDER BY c.id LIMIT 1",
	               "candidate lookup", err) < 0)
		return TL_EDB;
	sqlite3_bind_int64(st, 1, run_id);
	bind_s(st, 2, hash);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		read_cand(st, out);
		*found = true;
		rc = SQLITE_DONE;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_fail(db, rc, "candidate lookup", err);
	return 0;
}

int db_run_has_genome(db_conn *db, int64_t run_id, const char *hash, bool *has, tl_err *err)
{
	sqlite3_stmt *st;
	*has = false;
	if (db_prepare(db, &st,
	               "SELECT 1 FROM candidates WHERE run_id = ?1 AND genome_hash = ?2 LIMIT 1",
	               "candidate lookup", err) < 0)
		return TL_EDB;
	sqlite3_bind_int64(st, 1, run_id);
	bind_s(st, 2, hash);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*has = true;
		rc = SQLITE_DONE;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_fail(db, rc, "candidate lookup", err);
	return 0;
}

int db_candidate_set_result(db_conn *db, int64_t id, const char *status, const char *objectives,
                            int feasible, double violation, const char *error, tl_err *err)
{
	sqlite3_stmt *st;
	if (db_prepare(db, &st,
	               "UPDATE candidates SET status = ?2, objectives = ?3, feasible = ?4, "
	               "violation = ?5, error = ?6, evaluated_at = " NOW " WHERE id = ?1",
	               "candidate result", err) < 0)
		return TL_EDB;
	sqlite3_bind_int64(st, 1, id);
	bind_s(st, 2, status);
	bind_s(st, 3, objectives);
	if (feasible >= 0)
		sqlite3_bind_int(st, 4, feasible);
	bind_d(st, 5, violation);
	bind_s(st, 6, error);
	return db_step_done(db, &st, "candidate result", err);
}

int db_candidate_set_rank(db_conn *db, int64_t id, int rank, double crowding, tl_err *err)
{
	sqlite3_stmt *st;
	if (db_prepare(db, &st, "UPDATE candidates SET rank = ?2, crowding = ?3 WHERE id = ?1",
	               "candidate rank", err) < 0)
		return TL_EDB;
	sqlite3_bind_int64(st, 1, id);
	if (rank >= 0)
		sqlite3_bind_int(st, 2, rank);
	bind_d(st, 3, crowding);
	return db_step_done(db, &st, "candidate rank", err);
}

int db_generation_put(db_conn *db, int64_t run_id, int64_t generation, int64_t evaluated,
                      int64_t feasible, int64_t frontier_size, double hypervolume,
                      const char *reference_point, bool finished, tl_err *err)
{
	sqlite3_stmt *st;
	if (db_prepare(db, &st,
	               "INSERT INTO generations (run_id, generation, evaluated, feasible, "
	               "frontier_size, hypervolume, reference_point, finished_at) "
	               "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, CASE WHEN ?8 THEN " NOW " END) "
	               "ON CONFLICT (run_id, generation) DO UPDATE SET evaluated = ?3, "
	               "feasible = ?4, frontier_size = ?5, hypervolume = ?6, reference_point = ?7, "
	               "finished_at = CASE WHEN ?8 THEN " NOW " END",
	               "generation", err) < 0)
		return TL_EDB;
	sqlite3_bind_int64(st, 1, run_id);
	sqlite3_bind_int64(st, 2, generation);
	sqlite3_bind_int64(st, 3, evaluated);
	sqlite3_bind_int64(st, 4, feasible);
	sqlite3_bind_int64(st, 5, frontier_size);
	bind_d(st, 6, hypervolume);
	bind_s(st, 7, reference_point);
	sqlite3_bind_int(st, 8, finished ? 1 : 0);
	return db_step_done(db, &st, "generation", err);
}

int db_generation_finished(db_conn *db, int64_t run_id, int64_t generation, bool *finished,
                           tl_err *err)
{
	sqlite3_stmt *st;
	*finished = false;
	if (db_prepare(db, &st,
	               "SELECT finished_at IS NOT NULL FROM generations WHERE run_id = ?1 AND "
	               "generation = ?2",
	               "generation", err) < 0)
		return TL_EDB;
	sqlite3_bind_int64(st, 1, run_id);
	sqlite3_bind_int64(st, 2, generation);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*finished = sqlite3_column_int(st, 0) != 0;
		rc = SQLITE_DONE;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_fail(db, rc, "generation", err);
	return 0;
}

/* ---- for reports ------------------------------------------------------------- */

int db_candidates_all(db_conn *db, int64_t run_id, db_candidate **out, size_t *n, tl_err *err)
{
	sqlite3_stmt *st;
	*out = NULL;
	*n = 0;
	if (db_prepare(db, &st,
	               "SELECT " CAND_COLS " FROM candidates c JOIN genomes g ON g.hash = c.genome_hash "
	               "WHERE c.run_id = ?1 ORDER BY c.id",
	               "candidates", err) < 0)
		return TL_EDB;
	sqlite3_bind_int64(st, 1, run_id);
	size_t cap = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (*n == cap) {
			cap = cap ? 2 * cap : 256;
			db_candidate *p = realloc(*out, cap * sizeof *p);
			if (p == NULL) {
				sqlite3_finalize(st);
				return tl_err_set(err, TL_ENOMEM, "candidates: out of memory");
			}
			*out = p;
		}
		read_cand(st, &(*out)[(*n)++]);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_fail(db, rc, "candidates", err);
	return 0;
}

int db_generations_of(db_conn *db, int64_t run_id, db_generation **out, size_t *n, tl_err *err)
{
	sqlite3_stmt *st;
	*out = NULL;
	*n = 0;
	if (db_prepare(db, &st,
	               "SELECT generation, evaluated, feasible, frontier_size, hypervolume "
	               "FROM generations WHERE run_id = ?1 AND finished_at IS NOT NULL "
	               "ORDER BY generation",
	               "generations", err) < 0)
		return TL_EDB;
	sqlite3_bind_int64(st, 1, run_id);
	size_t cap = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (*n == cap) {
			cap = cap ? 2 * cap : 64;
			db_generation *p = realloc(*out, cap * sizeof *p);
			if (p == NULL) {
				sqlite3_finalize(st);
				return tl_err_set(err, TL_ENOMEM, "generations: out of memory");
			}
			*out = p;
		}
		db_generation *g = &(*out)[(*n)++];
		g->generation = sqlite3_column_int64(st, 0);
		g->evaluated = sqlite3_column_int64(st, 1);
		g->feasible = sqlite3_column_int64(st, 2);
		g->frontier_size = sqlite3_column_int64(st, 3);
		g->hypervolume = sqlite3_column_type(st, 4) == SQLITE_NULL ? NAN
		                                                           : sqlite3_column_double(st, 4);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_fail(db, rc, "generations", err);
	return 0;
}

int db_operator_shares(db_conn *db, int64_t run_id, db_opshare **out, size_t *n, tl_err *err)
{
	sqlite3_stmt *st;
	*out = NULL;
	*n = 0;
	if (db_prepare(db, &st,
	               "SELECT generation, operator, layers, share FROM generation_operators "
	               "WHERE run_id = ?1 ORDER BY generation, operator",
	               "operator shares", err) < 0)
		return TL_EDB;
	sqlite3_bind_int64(st, 1, run_id);
	size_t cap = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (*n == cap) {
			cap = cap ? 2 * cap : 128;
			db_opshare *p = realloc(*out, cap * sizeof *p);
			if (p == NULL) {
				sqlite3_finalize(st);
				return tl_err_set(err, TL_ENOMEM, "operator shares: out of memory");
			}
			*out = p;
		}
		db_opshare *o = &(*out)[(*n)++];
		o->generation = sqlite3_column_int64(st, 0);
		copy_col(st, 1, o->op, sizeof o->op);
		o->layers = sqlite3_column_int64(st, 2);
		o->share = sqlite3_column_double(st, 3);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_fail(db, rc, "operator shares", err);
	return 0;
}

/* ---- quality ------------------------------------------------------------------------ */

int db_quality_get(db_conn *db, const char *hash, const char *evaluator,
                   const char *settings_hash, const char *metric, double *value, bool *found,
                   tl_err *err)
{
	sqlite3_stmt *st;
	*found = false;
	if (db_prepare(db, &st,
	               "SELECT value FROM quality WHERE genome_hash = ?1 AND evaluator = ?2 AND "
	               "settings_hash = ?3 AND metric = ?4 AND value IS NOT NULL",
	               "quality lookup", err) < 0)
		return TL_EDB;
	bind_s(st, 1, hash);
	bind_s(st, 2, evaluator);
	bind_s(st, 3, settings_hash);
	bind_s(st, 4, metric);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*value = sqlite3_column_double(st, 0);
		*found = true;
		rc = SQLITE_DONE;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_fail(db, rc, "quality lookup", err);
	return 0;
}

int db_quality_put(db_conn *db, const char *hash, int64_t run_id, int64_t candidate_id,
                   const char *evaluator, const char *settings, const char *settings_hash,
                   const char *metric, double value, const char *error, tl_err *err)
{
	sqlite3_stmt *st;
	if (db_prepare(db, &st,
	               "INSERT INTO quality (genome_hash, run_id, candidate_id, evaluator, settings, "
	               "settings_hash, metric, value, error) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) "
	               "ON CONFLICT (genome_hash, evaluator, settings_hash, metric) DO UPDATE SET "
	               "run_id = ?2, candidate_id = ?3, value = ?8, error = ?9",
	               "quality store", err) < 0)
		return TL_EDB;
	bind_s(st, 1, hash);
	bind_id(st, 2, run_id);
	bind_id(st, 3, candidate_id);
	bind_s(st, 4, evaluator);
	bind_s(st, 5, settings);
	bind_s(st, 6, settings_hash);
	bind_s(st, 7, metric);
	bind_d(st, 8, value);
	bind_s(st, 9, error);
	return db_step_done(db, &st, "quality store", err);
}

int db_candidates_retry_failed(db_conn *db, int64_t run_id, int64_t generation, int64_t *n,
                               tl_err *err)
{
	sqlite3_stmt *st;
	if (db_prepare(db, &st,
	               "UPDATE candidates SET status = 'pending', error = NULL WHERE run_id = ?1 AND "
	               "generation = ?2 AND status = 'failed'",
	               "candidate retry", err) < 0)
		return TL_EDB;
	sqlite3_bind_int64(st, 1, run_id);
	sqlite3_bind_int64(st, 2, generation);
	int rc = db_step_done(db, &st, "candidate retry", err);
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

int db_run_events_data(db_conn *db, int64_t run_id, const char *kind_prefix, char ***out,
                       size_t *n, tl_err *err)
{
	sqlite3_stmt *st;
	*out = NULL;
	*n = 0;
	if (db_prepare(db, &st,
	               "SELECT data FROM events WHERE run_id = ?1 AND substr(kind, 1, length(?2)) = ?2 "
	               "AND data IS NOT NULL ORDER BY id",
	               "events", err) < 0)
		return TL_EDB;
	sqlite3_bind_int64(st, 1, run_id);
	bind_s(st, 2, kind_prefix);
	size_t cap = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (*n == cap) {
			cap = cap ? 2 * cap : 16;
			char **p2 = realloc(*out, cap * sizeof *p2);
			if (p2 == NULL) {
				sqlite3_finalize(st);
				return tl_err_set(err, TL_ENOMEM, "events: out of memory");
			}
			*out = p2;
		}
		(*out)[(*n)++] = dup_col(st, 0);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_fail(db, rc, "events", err);
	return 0;
}
