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

/* Whether `sql` (one bound value in ?1) finds a row: 1 yes, 0 no, or
 * TL_EDB. */
static int row_exists(db_conn *db, const char *sql, db_arg key, const char *op, tl_err *err)
{
	int64_t one;
	return db_get(db, sql, &key, 1, op, db_read_i64, &one, err);
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
	int64_t tid = 0;
	int ret;

	if (id)
		*id = 0;
	if (db_begin(db, err) < 0)
		return TL_EDB;
	ret = row_exists(db, "SELECT 1 FROM devices WHERE id = ?1", (db_arg)DB_I64(t->device_id),
	                 "op table add", err);
	if (ret < 0)
		goto rollback;
	if (ret == 0) {
		ret = tl_err_set(err, TL_ENOTFOUND, "op table add: device %" PRId64 ": no such device",
		                 t->device_id);
		goto rollback;
	}
	/* Required counts are bound as given: a negative one meets the CHECK. */
	ret = db_insert(db,
	                "INSERT INTO op_tables (device_id, space_hash, space_name, quant, kv, "
	                "threads, protocol, protocol_hash, build_hash, device_fingerprint, n_keys, "
	                "n_archs, seconds, table_json) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, "
	                "?10, ?11, ?12, ?13, ?14)",
	                DB_ARGS(DB_I64(t->device_id), DB_TEXT(t->space_hash), DB_TEXT(t->space_name),
	                        DB_TEXT(t->quant), DB_TEXT(t->kv), DB_ID(t->threads),
	                        DB_TEXT(t->protocol), DB_TEXT(t->protocol_hash),
	                        DB_TEXT(t->build_hash), DB_TEXT(t->device_fingerprint),
	                        DB_I64(t->n_keys), DB_I64(t->n_archs), DB_REAL(t->seconds),
	                        DB_TEXT(t->table_json)),
	                "op table add", &tid, err);
	if (ret < 0)
		goto rollback;

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
		if ((ret = db_bind(db, st,
		                   DB_ARGS(DB_I64(tid), DB_TEXT(x->layer_key), DB_I64(x->prompt_len),
		                           DB_I64(x->gen_len), DB_I64(x->depth), DB_REAL(x->prefill_ms),
		                           DB_REAL(x->decode_ms), DB_I64_OPT(x->weight_bytes),
		                           DB_I64_OPT(x->state_bytes), DB_I64(x->instances),
		                           DB_REAL(x->cv)),
		                   "op table add", err)) < 0)
			goto rollback;
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

/* A row of OPTABLE_COLS (and table_json when with_json) into *t, which
 * the caller zeroed. On TL_ENOMEM the strings read so far stay in *t for
 * db_optable_clear. */
static int read_optable(sqlite3_stmt *st, db_optable *t, bool with_json, tl_err *err)
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
		bad |= db_col_dup(st, s[i].col, s[i].dst);
	if (bad)
		return tl_err_set(err, TL_ENOMEM, "op table %" PRId64 ": out of memory", t->id);
	return 0;
}

static int read_optable_full(sqlite3_stmt *st, void *elem, tl_err *err)
{
	return read_optable(st, elem, true, err);
}

static int read_optable_listed(sqlite3_stmt *st, void *elem, tl_err *err)
{
	return read_optable(st, elem, false, err);
}

static void optable_clear(void *elem)
{
	db_optable_clear(elem);
}

/* At most one table row of `sql` into *out: 1 found, 0 not, or a negative
 * code (*out cleared). */
static int get_one(db_conn *db, const char *sql, const db_arg *args, size_t nargs,
                   db_optable *out, const char *op, tl_err *err)
{
	memset(out, 0, sizeof *out);
	int ret = db_get(db, sql, args, nargs, op, read_optable_full, out, err);
	if (ret < 0)
		db_optable_clear(out);
	return ret;
}

int db_optable_get(db_conn *db, int64_t id, db_optable *out, tl_err *err)
{
	int ret = get_one(db, "SELECT " OPTABLE_COLS ", table_json FROM op_tables WHERE id = ?1",
	                  DB_ARGS(DB_I64(id)), out, "op table get", err);
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
	int ret = get_one(db,
	                  "SELECT " OPTABLE_COLS ", table_json FROM op_tables WHERE device_id = ?1 "
	                  "AND (?2 IS NULL OR space_hash = ?2) AND (?3 IS NULL OR quant = ?3) "
	                  "ORDER BY id DESC LIMIT 1",
	                  DB_ARGS(DB_I64(device_id), DB_TEXT(space_hash), DB_TEXT(quant)), out,
	                  "op table latest", err);
	if (ret < 0)
		return ret;
	if (ret == 0)
		return tl_err_set(err, TL_ENOTFOUND,
		                  "op table: device %" PRId64 ": no operator table%s%s%s%s", device_id,
		                  space_hash ? " for space " : "", space_hash ? space_hash : "",
		                  quant ? " with quant " : "", quant ? quant : "");
	return 0;
}

static const db_rowtype optable_rows = {sizeof(db_optable), read_optable_listed, optable_clear};

int db_optable_list(db_conn *db, int64_t device_id, db_optable **out, size_t *n, tl_err *err)
{
	return db_collect(db,
	                  "SELECT " OPTABLE_COLS " FROM op_tables WHERE device_id = ?1 "
	                  "ORDER BY id DESC",
	                  DB_ARGS(DB_I64(device_id)), "op table list", &optable_rows, (void **)out, n,
	                  err);
}

int db_optable_remove(db_conn *db, int64_t id, tl_err *err)
{
	if (db_write(db, "DELETE FROM op_tables WHERE id = ?1", DB_ARGS(DB_I64(id)),
	             "op table remove", err) < 0)
		return TL_EDB;
	if (sqlite3_changes(db->h) == 0)
		return tl_err_set(err, TL_ENOTFOUND, "op table %" PRId64 ": no such operator table",
		                  id);
	return 0;
}

/* ---- predictions ------------------------------------------------------ */

int db_prediction_add(db_conn *db, const db_prediction *p, int64_t *id, tl_err *err)
{
	int ret;

	if (id)
		*id = 0;
	/* Name what is missing; without these checks the insert fails with
	 * "FOREIGN KEY constraint failed" and no word of which. */
	if (p->genome_hash != NULL) {
		ret = row_exists(db, "SELECT 1 FROM genomes WHERE hash = ?1",
		                 (db_arg)DB_TEXT(p->genome_hash), "prediction add", err);
		if (ret < 0)
			return ret;
		if (ret == 0)
			return tl_err_set(err, TL_ENOTFOUND,
			                  "prediction add: genome %s: not in the database (store it "
			                  "with db_genome_ensure first)",
			                  p->genome_hash);
	}
	ret = row_exists(db, "SELECT 1 FROM op_tables WHERE id = ?1", (db_arg)DB_I64(p->table_id),
	                 "prediction add", err);
	if (ret < 0)
		return ret;
	if (ret == 0)
		return tl_err_set(err, TL_ENOTFOUND,
		                  "prediction add: op table %" PRId64 ": no such operator table",
		                  p->table_id);
	if (p->measurement_id > 0) {
		ret = row_exists(db, "SELECT 1 FROM measurements WHERE id = ?1",
		                 (db_arg)DB_I64(p->measurement_id), "prediction add", err);
		if (ret < 0)
			return ret;
		if (ret == 0)
			return tl_err_set(err, TL_ENOTFOUND,
			                  "prediction add: measurement %" PRId64 ": no such measurement",
			                  p->measurement_id);
	}
	return db_insert(db,
	                 "INSERT INTO predictions (table_id, genome_hash, prompt_len, gen_len, depth, "
	                 "ttft_ms, decode_ms, peak_rss_bytes, measurement_id) VALUES (?1, ?2, ?3, ?4, "
	                 "?5, ?6, ?7, ?8, ?9)",
	                 DB_ARGS(DB_I64(p->table_id), DB_TEXT(p->genome_hash), DB_I64(p->prompt_len),
	                         DB_I64(p->gen_len), DB_I64(p->depth), DB_REAL(p->ttft_ms),
	                         DB_REAL(p->decode_ms), DB_I64_OPT(p->peak_rss_bytes),
	                         DB_ID(p->measurement_id)),
	                 "prediction add", id, err);
}
