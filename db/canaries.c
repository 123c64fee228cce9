/*
 * db/canaries.c: each device's canary history (see db.h, docs/schema.md
 * table canaries, schema version 5). A run measures its canary genome on
 * every device at its start and every few generations; the rows are kept
 * across runs (a run's deletion only nulls run_id), so a device's drift can
 * be followed over weeks.
 *
 * Workload: one insert per device every few generations; reads of one
 * device's rows by `tailor device show` and the report (tens to a few
 * hundred rows, through the index on (device_id, canary_hash, id)).
 */
#include "db_int.h"

int db_canary_add(db_conn *db, const db_canary *c, int64_t *id, tl_err *err)
{
	tl_err e = TL_ERR_INIT;
	if (id)
		*id = 0;
	int ret = db_insert(
	    db,
	    "INSERT INTO canaries (device_id, canary_hash, build_hash, run_id, "
	    "generation, measurement_id, decode_ms, ttft_ms, peak_rss_mb) "
	    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
	    DB_ARGS(DB_I64(c->device_id), DB_TEXT(c->canary_hash), DB_TEXT_OPT(c->build_hash),
	            DB_ID(c->run_id), DB_I64(c->generation), DB_ID(c->measurement_id),
	            DB_REAL(c->decode_ms), DB_REAL(c->ttft_ms), DB_REAL(c->peak_rss_mb)),
	    "canary add", id, &e);
	if (ret == 0)
		return 0;
	/* SQLite's "FOREIGN KEY constraint failed" says not which: name them */
	if (e.sub == SQLITE_CONSTRAINT_FOREIGNKEY)
		return tl_err_setsub(
		    err, ret, e.sub,
		    "canary add: device %lld, run %lld, measurement %lld: one of them "
		    "is not in the database",
		    (long long)c->device_id, (long long)c->run_id, (long long)c->measurement_id);
	return tl_err_setsub(err, ret, e.sub, "%s", e.msg);
}

static int read_canary(sqlite3_stmt *st, void *elem, tl_err *err)
{
	db_canary *c = elem;
	c->id = sqlite3_column_int64(st, 0);
	c->device_id = sqlite3_column_int64(st, 1);
	db_col_text(st, 2, c->canary_hash, sizeof c->canary_hash);
	db_col_text(st, 3, c->build_hash, sizeof c->build_hash);
	c->run_id = sqlite3_column_int64(st, 4);
	c->generation = sqlite3_column_int64(st, 5);
	c->measurement_id = sqlite3_column_int64(st, 6);
	c->decode_ms = db_col_real(st, 7);
	c->ttft_ms = db_col_real(st, 8);
	c->peak_rss_mb = db_col_real(st, 9);
	db_col_text(st, 10, c->created_at, sizeof c->created_at);
	return 0;
}

static const db_rowtype canary_rows = {sizeof(db_canary), read_canary, NULL};

int db_canary_history(db_conn *db, int64_t device_id, const char *canary_hash, size_t limit,
                      db_canary **out, size_t *n, tl_err *err)
{
	/* The newest `limit` by id, then put back in order; LIMIT -1 is none. */
	return db_collect(db,
	                  "SELECT * FROM (SELECT id, device_id, canary_hash, build_hash, run_id, "
	                  "generation, measurement_id, decode_ms, ttft_ms, peak_rss_mb, created_at "
	                  "FROM canaries WHERE device_id = ?1 AND (?2 IS NULL OR canary_hash = ?2) "
	                  "ORDER BY id DESC LIMIT ?3) ORDER BY id",
	                  DB_ARGS(DB_I64(device_id), DB_TEXT(canary_hash),
	                          DB_I64(limit > 0 && limit <= INT64_MAX ? (int64_t)limit : -1)),
	                  "canary history", &canary_rows, (void **)out, n, err);
}
