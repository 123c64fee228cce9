/*
 * db/measurements.c: the `genomes` row a measurement needs, and measurements
 * with their raw repeats (docs/schema.md). A measurement and its repeats are
 * written in one transaction, so a reader never sees a summary without the
 * repeats behind it. Failed measurements are rows too (status 'failed', the
 * reason in `error`, its kind in `failure`): nothing recorded is lost.
 * Besides the medians, a measurement keeps the spread of the repeats behind
 * them (p95, min, max, CV; schema version 4).
 *
 * Workload: one insert per measurement (seconds to minutes apart per device).
 */
#include "db_int.h"

#include <math.h>
#include <string.h>

int db_genome_ensure(db_conn *db, const char *hash, const char *text, int64_t params,
                     tl_err *err)
{
	sqlite3_stmt *st;
	if (db_prepare(db, &st,
	               "INSERT OR IGNORE INTO genomes (hash, text, params) VALUES (?1, ?2, ?3)",
	               "genome add", err) < 0)
		return TL_EDB;
	sqlite3_bind_text(st, 1, hash, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 2, text, -1, SQLITE_TRANSIENT);
	if (params >= 0)
		sqlite3_bind_int64(st, 3, params);
	return db_step_done(db, &st, "genome add", err);
}

void db_measurement_init(db_measurement *m)
{
	memset(m, 0, sizeof *m);
	m->prompt_len = m->gen_len = m->depth = m->threads = m->repeats = -1;
	m->peak_rss_bytes = m->weight_bytes = m->cache_bytes = -1;
	m->ttft_ms = m->prefill_tok_s = m->decode_ms_p50 = m->decode_ms_p95 = NAN;
	m->decode_tok_s = m->cv = NAN;
	m->ttft_ms_rep_p95 = m->ttft_ms_rep_min = m->ttft_ms_rep_max = m->ttft_cv = NAN;
	m->decode_ms_rep_p95 = m->decode_ms_rep_min = m->decode_ms_rep_max = NAN;
	m->peak_rss_rep_min = m->peak_rss_rep_max = -1;
	m->status = "failed";
}

void db_repeat_init(db_repeat *r)
{
	memset(r, 0, sizeof *r);
	r->ttft_ms = r->prefill_tok_s = r->decode_ms_p50 = r->decode_ms_p95 = NAN;
	r->decode_tok_s = r->temp_before_c = r->temp_after_c = NAN;
	r->peak_rss_bytes = -1;
}

static void bind_i(sqlite3_stmt *st, int i, int64_t v)
{
	if (v >= 0)
		sqlite3_bind_int64(st, i, v);
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

static void bind_d(sqlite3_stmt *st, int i, double v)
{
	if (isfinite(v))
		sqlite3_bind_double(st, i, v);
	else
		sqlite3_bind_null(st, i);
}

static void bind_s(sqlite3_stmt *st, int i, const char *s)
{
	if (s)
		sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(st, i);
}

int db_measurement_add(db_conn *db, const db_measurement *m, const db_repeat *reps, size_t n,
                       int64_t *id, tl_err *err)
{
	sqlite3_stmt *st;
	int ret;
	if (id)
		*id = 0;
	if (db_begin(db, err) < 0)
		return TL_EDB;
	ret = db_prepare(db, &st,
	                 "INSERT INTO measurements (genome_hash, candidate_id, run_id, device_id, "
	                 "build_hash, quant, prompt_len, gen_len, depth, threads, protocol, "
	                 "protocol_hash, device_fingerprint, repeats, ttft_ms, prefill_tok_s, "
	                 "decode_ms_p50, decode_ms_p95, decode_tok_s, peak_rss_bytes, weight_bytes, "
	                 "cache_bytes, cv, remeasured, status, error, failure, ttft_ms_rep_p95, "
	                 "ttft_ms_rep_min, ttft_ms_rep_max, ttft_cv, decode_ms_rep_p95, "
	                 "decode_ms_rep_min, decode_ms_rep_max, peak_rss_rep_min, peak_rss_rep_max) "
	                 "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, "
	                 "?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, "
	                 "?31, ?32, ?33, ?34, ?35, ?36)",
	                 "measurement add", err);
	if (ret < 0)
		goto rollback;
	bind_s(st, 1, m->genome_hash);
	bind_id(st, 2, m->candidate_id);
	bind_id(st, 3, m->run_id);
	bind_id(st, 4, m->device_id);
	bind_s(st, 5, m->build_hash);
	bind_s(st, 6, m->quant);
	bind_i(st, 7, m->prompt_len);
	bind_i(st, 8, m->gen_len);
	bind_i(st, 9, m->depth);
	bind_id(st, 10, m->threads);
	bind_s(st, 11, m->protocol);
	bind_s(st, 12, m->protocol_hash);
	bind_s(st, 13, m->device_fingerprint);
	bind_i(st, 14, m->repeats);
	bind_d(st, 15, m->ttft_ms);
	bind_d(st, 16, m->prefill_tok_s);
	bind_d(st, 17, m->decode_ms_p50);
	bind_d(st, 18, m->decode_ms_p95);
	bind_d(st, 19, m->decode_tok_s);
	bind_i(st, 20, m->peak_rss_bytes);
	bind_i(st, 21, m->weight_bytes);
	bind_i(st, 22, m->cache_bytes);
	bind_d(st, 23, m->cv);
	sqlite3_bind_int64(st, 24, m->remeasured > 0 ? m->remeasured : 0);
	bind_s(st, 25, m->status);
	bind_s(st, 26, m->error);
	bind_s(st, 27, m->failure);
	bind_d(st, 28, m->ttft_ms_rep_p95);
	bind_d(st, 29, m->ttft_ms_rep_min);
	bind_d(st, 30, m->ttft_ms_rep_max);
	bind_d(st, 31, m->ttft_cv);
	bind_d(st, 32, m->decode_ms_rep_p95);
	bind_d(st, 33, m->decode_ms_rep_min);
	bind_d(st, 34, m->decode_ms_rep_max);
	bind_i(st, 35, m->peak_rss_rep_min);
	bind_i(st, 36, m->peak_rss_rep_max);
	if ((ret = db_step_done(db, &st, "measurement add", err)) < 0)
		goto rollback;
	int64_t mid = sqlite3_last_insert_rowid(db->h);
	for (size_t i = 0; i < n; i++) {
		const db_repeat *r = &reps[i];
		ret = db_prepare(db, &st,
		                 "INSERT INTO measurement_repeats (measurement_id, repeat_index, raw, "
		                 "ttft_ms, prefill_tok_s, decode_ms_p50, decode_ms_p95, decode_tok_s, "
		                 "peak_rss_bytes, temp_before_c, temp_after_c) VALUES (?1, ?2, ?3, ?4, "
		                 "?5, ?6, ?7, ?8, ?9, ?10, ?11)",
		                 "measurement add", err);
		if (ret < 0)
			goto rollback;
		sqlite3_bind_int64(st, 1, mid);
		sqlite3_bind_int64(st, 2, (int64_t)i);
		bind_s(st, 3, r->raw);
		bind_d(st, 4, r->ttft_ms);
		bind_d(st, 5, r->prefill_tok_s);
		bind_d(st, 6, r->decode_ms_p50);
		bind_d(st, 7, r->decode_ms_p95);
		bind_d(st, 8, r->decode_tok_s);
		bind_i(st, 9, r->peak_rss_bytes);
		bind_d(st, 10, r->temp_before_c);
		bind_d(st, 11, r->temp_after_c);
		if ((ret = db_step_done(db, &st, "measurement add", err)) < 0)
			goto rollback;
	}
	if ((ret = db_commit(db, err)) < 0)
		goto rollback;
	if (id)
		*id = mid;
	return 0;
rollback:
	db_rollback(db);
	return ret;
}
