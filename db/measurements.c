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
	return db_write(db, "INSERT OR IGNORE INTO genomes (hash, text, params) VALUES (?1, ?2, ?3)",
	                DB_ARGS(DB_TEXT(hash), DB_TEXT(text), DB_I64_OPT(params)), "genome add",
	                err);
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

int db_measurement_add(db_conn *db, const db_measurement *m, const db_repeat *reps, size_t n,
                       int64_t *id, tl_err *err)
{
	int64_t mid = 0;
	int ret;
	if (id)
		*id = 0;
	if (db_begin(db, err) < 0)
		return TL_EDB;
	ret = db_insert(
	    db,
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
	    DB_ARGS(DB_TEXT(m->genome_hash), DB_ID(m->candidate_id), DB_ID(m->run_id),
	            DB_ID(m->device_id), DB_TEXT(m->build_hash), DB_TEXT(m->quant),
	            DB_I64_OPT(m->prompt_len), DB_I64_OPT(m->gen_len), DB_I64_OPT(m->depth),
	            DB_ID(m->threads), DB_TEXT(m->protocol), DB_TEXT(m->protocol_hash),
	            DB_TEXT(m->device_fingerprint), DB_I64_OPT(m->repeats), DB_REAL(m->ttft_ms),
	            DB_REAL(m->prefill_tok_s), DB_REAL(m->decode_ms_p50), DB_REAL(m->decode_ms_p95),
	            DB_REAL(m->decode_tok_s), DB_I64_OPT(m->peak_rss_bytes),
	            DB_I64_OPT(m->weight_bytes), DB_I64_OPT(m->cache_bytes), DB_REAL(m->cv),
	            DB_I64(m->remeasured > 0 ? m->remeasured : 0), DB_TEXT(m->status),
	            DB_TEXT(m->error), DB_TEXT(m->failure), DB_REAL(m->ttft_ms_rep_p95),
	            DB_REAL(m->ttft_ms_rep_min), DB_REAL(m->ttft_ms_rep_max), DB_REAL(m->ttft_cv),
	            DB_REAL(m->decode_ms_rep_p95), DB_REAL(m->decode_ms_rep_min),
	            DB_REAL(m->decode_ms_rep_max), DB_I64_OPT(m->peak_rss_rep_min),
	            DB_I64_OPT(m->peak_rss_rep_max)),
	    "measurement add", &mid, err);
	for (size_t i = 0; ret == 0 && i < n; i++) {
		const db_repeat *r = &reps[i];
		ret = db_write(db,
		               "INSERT INTO measurement_repeats (measurement_id, repeat_index, raw, "
		               "ttft_ms, prefill_tok_s, decode_ms_p50, decode_ms_p95, decode_tok_s, "
		               "peak_rss_bytes, temp_before_c, temp_after_c) VALUES (?1, ?2, ?3, ?4, "
		               "?5, ?6, ?7, ?8, ?9, ?10, ?11)",
		               DB_ARGS(DB_I64(mid), DB_I64(i), DB_TEXT(r->raw), DB_REAL(r->ttft_ms),
		                       DB_REAL(r->prefill_tok_s), DB_REAL(r->decode_ms_p50),
		                       DB_REAL(r->decode_ms_p95), DB_REAL(r->decode_tok_s),
		                       DB_I64_OPT(r->peak_rss_bytes), DB_REAL(r->temp_before_c),
		                       DB_REAL(r->temp_after_c)),
		               "measurement add", err);
	}
	if (ret == 0)
		ret = db_commit(db, err);
	if (ret < 0) {
		db_rollback(db);
		return ret;
	}
	if (id)
		*id = mid;
	return 0;
}
