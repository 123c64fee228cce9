/*
 * db/optables.c: operator latency tables, their entries, and predictions
 * (see db_optables.h, docs/schema.md). A table and its entries are written
 * in one transaction, so a reader never sees a table without its rows.
 * References a caller can get wrong (a device, a genome, a table, a
 * measurement that is not there) are checked before the insert, so the
 * error names the missing row instead of SQLite's bare "FOREIGN KEY
 * constraint failed"; the foreign keys stay the last line.
 *
 * Workload: one table per `tailor device profile-ops` (hundreds to a few
 * thousand entries, minutes apart at most); one prediction per genome and
 * shape in a search; reads of the newest table once per run and device.
 */
#include "db_int.h"
#include "db_optables.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void bind_s(sqlite3_stmt *st, int i, const char *s)
{
	if (s)
		sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(st, i);
}

/* -1 (any negative): NULL. */
static void bind_i(sqlite3_stmt *st, int i, int64_t v)
{
	if (v >= 0)
		sqlite3_bind_int64(st, i, v);
	else
		sqlite3_bind_null(st, i);
}

/* Ids and thread counts: 0 (or less): NULL. */
static void bind_id(sqlite3_stmt *st, int i, int64_t v)
{
	if (v > 0)
		sqlite3_bind_int64(st, i, v);
	else
		sqlite3_bind_null(st, i);
}

/* NaN (and infinities, which no column here means): NULL. */
static void bind_d(sqlite3_stmt *st, int i, double v)
{
	if (isfinite(v))
		sqlite3_bind_double(st, i, v);
	else
		sqlite3_bind_null(st, i);
}

/* Whether `sql` (one bound id or text in ?1) finds a row: 1 yes, 0 no, or
 * TL_EDB. */
static int row_exists(db_conn *db, const char *sql, int64_t id, const char *text,
                      const char *op, tl_err *err)
{
	sqlite3_stmt *st;
	if (db_prepare(db, &st, sql, op, err) < 0)
		return TL_EDB;
	if (text)
		sqlite3_bind_text(st, 1, text, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_int64(st, 1, id);
	int rc = sqlite3_step(st);
	int ret = rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : db_fail(db, rc, op, err);
	sqlite3_finalize(st);
	return ret;
}

/* ---- tables ----------------------------------------------------------- */

void db_optable_clear(db_optable *t)
{
	if (t == NULL)
		return;
	free(t->space_hash);
	free(t->space_name);
	free(t->quant);
	free(t->kv);
	free(t->protocol);
	free(t->protocol_hash);
	free(t->build_hash);
	free(t->device_fingerprint);
	free(t->table_json);
	free(t->created_at);
	memset(t, 0, sizeof *t);
}

void db_optables_free(db_optable *t, size_t n)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		db_optable_clear(&t[i]);
	free(t);
}

int db_optable_add(db_conn *db, const db_optable *t, const db_optable_entry *e, size_t n,
                   int64_t *id, tl_err *err)
{
	sqlite3_stmt *st = NULL;
	int ret;

	if (id)
		*id = 0;
	if (db_begin(db, err) < 0)
		return TL_EDB;
	ret = row_exists(db, "SELECT 1 FROM devices WHERE id = ?1", t->device_id, NULL,
	                 "op table add", err);
	if (ret < 0)
		goto rollback;
	if (ret == 0) {
		ret = tl_err_set(err, TL_ENOTFOUND, "op table add: device %" PRId64 ": no such device",
		                 t->device_id);
		goto rollback;
	}
	ret = db_prepare(db, &st,
	                 "INSERT INTO op_tables (device_id, space_hash, space_name, quant, kv, "
	                 "threads, protocol, protocol_hash, build_hash, device_fingerprint, n_keys, "
	                 "n_archs, seconds, table_json) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, "
	                 "?10, ?11, ?12, ?13, ?14)",
	                 "op table add", err);
	if (ret < 0)
		goto rollback;
	sqlite3_bind_int64(st, 1, t->device_id);
	bind_s(st, 2, t->space_hash);
	bind_s(st, 3, t->space_name);
	bind_s(st, 4, t->quant);
	bind_s(st, 5, t->kv);
	bind_id(st, 6, t->threads);
	bind_s(st, 7, t->protocol);
	bind_s(st, 8, t->protocol_hash);
	bind_s(st, 9, t->build_hash);
	bind_s(st, 10, t->device_fingerprint);
	/* Required counts are bound as given: a negative one meets the CHECK. */
	sqlite3_bind_int64(st, 11, t->n_keys);
	sqlite3_bind_int64(st, 12, t->n_archs);
	bind_d(st, 13, t->seconds);
	bind_s(st, 14, t->table_json);
	if ((ret = db_step_done(db, &st, "op table add", err)) < 0)
		goto rollback;
	int64_t tid = sqlite3_last_insert_rowid(db->h);

	/* One statement for every entry, reset between rows. */
	ret = db_prepare(db, &st,
	                 "INSERT INTO op_table_entries (table_id, layer_key, prompt_len, gen_len, "
	                 "depth, prefill_ms, decode_ms, weight_bytes, state_bytes, instances, cv) "
	                 "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
	                 "op table add", err);
	if (ret < 0)
		goto rollback;
	for (size_t i = 0; i < n; i++) {
		const db_optable_entry *x = &e[i];
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
		sqlite3_bind_int64(st, 1, tid);
		bind_s(st, 2, x->layer_key);
		sqlite3_bind_int64(st, 3, x->prompt_len);
		sqlite3_bind_int64(st, 4, x->gen_len);
		sqlite3_bind_int64(st, 5, x->depth);
		bind_d(st, 6, x->prefill_ms);
		bind_d(st, 7, x->decode_ms);
		bind_i(st, 8, x->weight_bytes);
		bind_i(st, 9, x->state_bytes);
		sqlite3_bind_int64(st, 10, x->instances);
		bind_d(st, 11, x->cv);
		int rc = sqlite3_step(st);
		if (rc != SQLITE_DONE) {
			char op[160];
			snprintf(op, sizeof op,
			         "op table add: entry %zu (%.60s, P %" PRId64 " N %" PRId64 " D %" PRId64
			         ")",
			         i, x->layer_key ? x->layer_key : "(null)", x->prompt_len, x->gen_len,
			         x->depth);
			ret = db_fail(db, rc, op, err);
			goto rollback;
		}
	}
	sqlite3_finalize(st);
	st = NULL;
	if ((ret = db_commit(db, err)) < 0)
		goto rollback;
	if (id)
		*id = tid;
	return 0;

rollback:
	sqlite3_finalize(st);
	db_rollback(db);
	return ret;
}

/* The columns read_optable expects, table_json last (left out by list). */
#define OPTABLE_COLS                                                                      \
	"id, device_id, space_hash, space_name, quant, kv, threads, protocol, protocol_hash, " \
	"build_hash, device_fingerprint, n_keys, n_archs, seconds, created_at"

/* Column i as a malloc'd string in *dst (NULL for SQL NULL). TL_ENOMEM. */
static int dup_col(sqlite3_stmt *st, int i, char **dst)
{
	const unsigned char *s = sqlite3_column_text(st, i);
	*dst = NULL;
	if (s == NULL)
		return 0;
	size_t len = (size_t)sqlite3_column_bytes(st, i);
	*dst = malloc(len + 1);
	if (*dst == NULL)
		return TL_ENOMEM;
	memcpy(*dst, s, len + 1);
	return 0;
}

/* A row of OPTABLE_COLS (and table_json when with_json) into *t, which
 * the caller zeroed. On TL_ENOMEM the strings read so far stay in *t for
 * db_optable_clear. */
static int read_optable(sqlite3_stmt *st, db_optable *t, bool with_json, const char *op,
                        tl_err *err)
{
	struct {
		int col;
		char **dst;
	} s[] = {{2, &t->space_hash},     {3, &t->space_name},        {4, &t->quant},
	         {5, &t->kv},             {7, &t->protocol},          {8, &t->protocol_hash},
	         {9, &t->build_hash},     {10, &t->device_fingerprint}, {14, &t->created_at},
	         {15, &t->table_json}};
	size_t ns = sizeof s / sizeof s[0] - (with_json ? 0 : 1);
	t->id = sqlite3_column_int64(st, 0);
	t->device_id = sqlite3_column_int64(st, 1);
	t->threads = sqlite3_column_type(st, 6) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, 6);
	t->n_keys = sqlite3_column_int64(st, 11);
	t->n_archs = sqlite3_column_int64(st, 12);
	t->seconds = sqlite3_column_type(st, 13) == SQLITE_NULL ? NAN : sqlite3_column_double(st, 13);
	int bad = 0;
	for (size_t i = 0; i < ns; i++)
		bad |= dup_col(st, s[i].col, s[i].dst);
	if (bad)
		return tl_err_set(err, TL_ENOMEM, "%s: table %" PRId64 ": out of memory", op, t->id);
	return 0;
}

/* Run a statement expected to give at most one table row. 1 found, 0 not,
 * or a negative code (*out cleared). */
static int get_one(db_conn *db, sqlite3_stmt *st, db_optable *out, const char *op, tl_err *err)
{
	int rc = sqlite3_step(st);
	int ret = 0;
	if (rc == SQLITE_ROW) {
		ret = read_optable(st, out, true, op, err);
		if (ret < 0)
			db_optable_clear(out);
		else
			ret = 1;
	} else if (rc != SQLITE_DONE) {
		ret = db_fail(db, rc, op, err);
	}
	sqlite3_finalize(st);
	return ret;
}

int db_optable_get(db_conn *db, int64_t id, db_optable *out, tl_err *err)
{
	sqlite3_stmt *st;
	memset(out, 0, sizeof *out);
	if (db_prepare(db, &st, "SELECT " OPTABLE_COLS ", table_json FROM op_tables WHERE id = ?1",
	               "op table get", err) < 0)
		return TL_EDB;
	sqlite3_bind_int64(st, 1, id);
	int ret = get_one(db, st, out, "op table get", err);
	if (ret < 0)
		return ret;
	if (ret == 0)
		return tl_err_set(err, TL_ENOTFOUND, "op table %" PRId64 ": no such operator table",
		                  id);
	return 0;
}

int db_optable_latest(db_conn *db, int64_t device_id, const char *space_hash, const char *quant,
                      db_optable *out, tl_err *err)
{
	sqlite3_stmt *st;
	memset(out, 0, sizeof *out);
	if (db_prepare(db, &st,
	               "SELECT " OPTABLE_COLS ", table_json FROM op_tables WHERE device_id = ?1 "
	               "AND (?2 IS NULL OR space_hash = ?2) AND (?3 IS NULL OR quant = ?3) "
	               "ORDER BY id DESC LIMIT 1",
	               "op table latest", err) < 0)
		return TL_EDB;
	sqlite3_bind_int64(st, 1, device_id);
	bind_s(st, 2, space_hash);
	bind_s(st, 3, quant);
	int ret = get_one(db, st, out, "op table latest", err);
	if (ret < 0)
		return ret;
	if (ret == 0)
		return tl_err_set(err, TL_ENOTFOUND,
		                  "op table: device %" PRId64 ": no operator table%s%s%s%s", device_id,
		                  space_hash ? " for space " : "", space_hash ? space_hash : "",
		                  quant ? " with quant " : "", quant ? quant : "");
	return 0;
}

int db_optable_list(db_conn *db, int64_t device_id, db_optable **out, size_t *n, tl_err *err)
{
	sqlite3_stmt *st;
	db_optable *v = NULL;
	size_t len = 0, cap = 0;
	int rc, ret = 0;

	*out = NULL;
	*n = 0;
	if (db_prepare(db, &st,
	               "SELECT " OPTABLE_COLS " FROM op_tables WHERE device_id = ?1 "
	               "ORDER BY id DESC",
	               "op table list", err) < 0)
		return TL_EDB;
	sqlite3_bind_int64(st, 1, device_id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (len == cap) {
			size_t ncap = cap ? 2 * cap : 8;
			db_optable *nv = realloc(v, ncap * sizeof *nv);
			if (nv == NULL) {
				ret = tl_err_set(err, TL_ENOMEM, "op table list: device %" PRId64
				                 ": out of memory", device_id);
				goto fail;
			}
			v = nv;
			cap = ncap;
		}
		memset(&v[len], 0, sizeof v[len]);
		ret = read_optable(st, &v[len], false, "op table list", err);
		len++; /* counted even on failure, so that its strings are freed */
		if (ret < 0)
			goto fail;
	}
	if (rc != SQLITE_DONE) {
		ret = db_fail(db, rc, "op table list", err);
		goto fail;
	}
	sqlite3_finalize(st);
	*out = v;
	*n = len;
	return 0;

fail:
	sqlite3_finalize(st);
	db_optables_free(v, len);
	return ret;
}

int db_optable_remove(db_conn *db, int64_t id, tl_err *err)
{
	sqlite3_stmt *st;
	if (db_prepare(db, &st, "DELETE FROM op_tables WHERE id = ?1", "op table remove", err) < 0)
		return TL_EDB;
	sqlite3_bind_int64(st, 1, id);
	if (db_step_done(db, &st, "op table remove", err) < 0)
		return TL_EDB;
	if (sqlite3_changes(db->h) == 0)
		return tl_err_set(err, TL_ENOTFOUND, "op table %" PRId64 ": no such operator table",
		                  id);
	return 0;
}

/* ---- predictions ------------------------------------------------------ */

int db_prediction_add(db_conn *db, const db_prediction *p, int64_t *id, tl_err *err)
{
	sqlite3_stmt *st;
	int ret;

	if (id)
		*id = 0;
	/* Name what is missing; without these checks the insert fails with
	 * "FOREIGN KEY constraint failed" and no word of which. */
	if (p->genome_hash != NULL) {
		ret = row_exists(db, "SELECT 1 FROM genomes WHERE hash = ?1", 0, p->genome_hash,
		                 "prediction add", err);
		if (ret < 0)
			return ret;
		if (ret == 0)
			return tl_err_set(err, TL_ENOTFOUND,
			                  "prediction add: genome %s: not in the database (store it "
			                  "with db_genome_ensure first)",
			                  p->genome_hash);
	}
	ret = row_exists(db, "SELECT 1 FROM op_tables WHERE id = ?1", p->table_id, NULL,
	                 "prediction add", err);
	if (ret < 0)
		return ret;
	if (ret == 0)
		return tl_err_set(err, TL_ENOTFOUND,
		                  "prediction add: op table %" PRId64 ": no such operator table",
		                  p->table_id);
	if (p->measurement_id > 0) {
		ret = row_exists(db, "SELECT 1 FROM measurements WHERE id = ?1", p->measurement_id,
		                 NULL, "prediction add", err);
		if (ret < 0)
			return ret;
		if (ret == 0)
			return tl_err_set(err, TL_ENOTFOUND,
			                  "prediction add: measurement %" PRId64 ": no such measurement",
			                  p->measurement_id);
	}
	if (db_prepare(db, &st,
	               "INSERT INTO predictions (table_id, genome_hash, prompt_len, gen_len, depth, "
	               "ttft_ms, decode_ms, peak_rss_bytes, measurement_id) VALUES (?1, ?2, ?3, ?4, "
	               "?5, ?6, ?7, ?8, ?9)",
	               "prediction add", err) < 0)
		return TL_EDB;
	sqlite3_bind_int64(st, 1, p->table_id);
	bind_s(st, 2, p->genome_hash);
	sqlite3_bind_int64(st, 3, p->prompt_len);
	sqlite3_bind_int64(st, 4, p->gen_len);
	sqlite3_bind_int64(st, 5, p->depth);
	bind_d(st, 6, p->ttft_ms);
	bind_d(st, 7, p->decode_ms);
	bind_i(st, 8, p->peak_rss_bytes);
	bind_id(st, 9, p->measurement_id);
	if (db_step_done(db, &st, "prediction add", err) < 0)
		return TL_EDB;
	if (id)
		*id = sqlite3_last_insert_rowid(db->h);
	return 0;
}
