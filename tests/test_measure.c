/*
 * tests/test_measure.c: a small search whose device metric is measured for
 * real on `local` through the measuring room (profiler/measure.h, through
 * the engine's device pool), no `tailor` binary:
 *  - every evaluated candidate links (candidate_evals) to a stored
 *    measurement, and that measurement's decode_ms_p50 and peak RSS are
 *    exactly the values the engine ranked it on (candidates.objectives);
 *  - each measurement has its raw repeat stored (measurement_repeats);
 *  - the canary of each run is in the device's canary history, and the
 *    second run's first canary is compared with the first run's
 *    (event canary.history or canary.shift).
 * The harness is compiled once into a build cache of the test's own.
 */
#include "db.h"
#include "db_query.h"
#include "db_runs.h"
#include "evolve.h"
#include "tl_test.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *root = ".";

static char *config(void)
{
	static char buf[4096];
	snprintf(buf, sizeof buf,
	         "{\"name\": \"measure\", \"space\": \"%s/examples/spaces/lfm2-like-small.json\", "
	         "\"population\": 4, \"generations\": 2, \"seed\": 5, \"devices\": [\"local\"], "
	         "\"objectives\": [{\"metric\": \"decode_ms@local\"}, "
	         "{\"metric\": \"params\", \"direction\": \"max\"}], "
	         "\"constraints\": [{\"metric\": \"peak_rss_mb@local\", \"max\": 4096}], "
	         "\"bench\": {\"prompt\": 8, \"gen\": 4, \"threads\": 1, \"repeat\": 2, "
	         "\"quant\": \"q8_0\", \"timeout_s\": 120}, "
	         "\"canary\": {\"genome\": \"%s/examples/canary-small.txt\", \"every\": 1, "
	         "\"max_drift\": 10}}",
	         root, root);
	return buf;
}

typedef struct row {
	int64_t cand, meas, reps;
	double dec, rss_mb;
	char objectives[1024];
	char used[16];
} row;

typedef struct rows {
	row r[64];
	int n;
} rows;

static int collect(void *ctx, int ncol, const char *const *names, const char *const *vals,
                   const int *types)
{
	rows *rs = ctx;
	(void)names;
	(void)types;
	if (rs->n >= 64 || ncol != 7)
		return 0;
	row *r = &rs->r[rs->n++];
	r->cand = vals[0] ? atoll(vals[0]) : 0;
	r->meas = vals[1] ? atoll(vals[1]) : 0;
	r->dec = vals[2] ? strtod(vals[2], NULL) : NAN;
	r->rss_mb = vals[3] ? strtod(vals[3], NULL) / (1024.0 * 1024.0) : NAN;
	snprintf(r->objectives, sizeof r->objectives, "%s", vals[4] ? vals[4] : "");
	r->reps = vals[5] ? atoll(vals[5]) : 0;
	snprintf(r->used, sizeof r->used, "%s", vals[6] ? vals[6] : "");
	return 0;
}

static int count_fn(void *ctx, int ncol, const char *const *names, const char *const *vals,
                    const int *types)
{
	(void)ncol;
	(void)names;
	(void)types;
	*(int64_t *)ctx = vals[0] ? atoll(vals[0]) : -1;
	return 0;
}

static int64_t count(db_conn *db, const char *sql, int64_t run)
{
	int64_t n = -1;
	tl_err err = TL_ERR_INIT;
	CHECK_MSG(db_query_stream(db, sql, &run, 1, count_fn, &n, &err) == 0, "%s: %s", sql, err.msg);
	return n;
}

static void run_once(db_conn *db, int64_t *id)
{
	ev_config cfg;
	tl_err err = TL_ERR_INIT;
	CHECK_MSG(ev_config_parse(&cfg, config(), "test config", NULL, &err) == 0, "%s", err.msg);
	CHECK_MSG(ev_run_create(db, &cfg, id, &err) == 0, "%s", err.msg);
	ev_config_free(&cfg);
	ev_ops ops = {0}; /* no seam: the engine measures through the profiler */
	bool finished = false;
	CHECK_MSG(ev_run_drive(db, *id, &ops, &finished, &err) == 0, "run: %s", err.msg);
	CHECK(finished);
}

static void check_run(db_conn *db, int64_t run)
{
	rows rs = {.n = 0};
	tl_err err = TL_ERR_INIT;
	const char *sql =
	    "SELECT c.id, e.measurement_id, m.decode_ms_p50, m.peak_rss_bytes, c.objectives, "
	    "(SELECT COUNT(*) FROM measurement_repeats r WHERE r.measurement_id = m.id), e.used "
	    "FROM candidates c JOIN candidate_evals e ON e.candidate_id = c.id "
	    "JOIN measurements m ON m.id = e.measurement_id "
	    "WHERE c.run_id = ?1 AND c.status = 'done' ORDER BY c.id";
	CHECK_MSG(db_query_stream(db, sql, &run, 1, collect, &rs, &err) == 0, "%s", err.msg);
	int64_t done = count(db, "SELECT COUNT(*) FROM candidates WHERE run_id = ?1 AND "
	                         "status = 'done'", run);
	CHECK_MSG(done >= 4, "run %lld: %lld candidates done", (long long)run, (long long)done);
	CHECK_MSG(rs.n == done, "run %lld: %d of %lld done candidates link to a measurement",
	          (long long)run, rs.n, (long long)done);
	for (int i = 0; i < rs.n; i++) {
		row *r = &rs.r[i];
		cJSON *o = cJSON_Parse(r->objectives);
		const cJSON *dv = cJSON_GetObjectItemCaseSensitive(o, "decode_ms@local");
		const cJSON *rv = cJSON_GetObjectItemCaseSensitive(o, "peak_rss_mb@local");
		CHECK_MSG(cJSON_IsNumber(dv) && dv->valuedouble == r->dec,
		          "candidate %lld: ranked on decode %.17g, measurement %lld says %.17g",
		          (long long)r->cand, cJSON_IsNumber(dv) ? dv->valuedouble : NAN,
		          (long long)r->meas, r->dec);
		CHECK_MSG(cJSON_IsNumber(rv) && fabs(rv->valuedouble - r->rss_mb) < 1e-9,
		          "candidate %lld: ranked on rss %.17g MiB, measurement %lld says %.17g",
		          (long long)r->cand, cJSON_IsNumber(rv) ? rv->valuedouble : NAN,
		          (long long)r->meas, r->rss_mb);
		CHECK_MSG(r->reps == 1, "measurement %lld: %lld repeat rows (in-process: 1)",
		          (long long)r->meas, (long long)r->reps);
		CHECK(strcmp(r->used, "measured") == 0);
		cJSON_Delete(o);
	}
	/* the canary: one history row per generation of the run */
	CHECK(count(db, "SELECT COUNT(*) FROM canaries WHERE run_id = ?1", run) == 2);
}

int main(int argc, char **argv)
{
	if (argc > 1)
		root = argv[1];
	char dir[] = "/tmp/test_measure.XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	char cache[256], path[256];
	snprintf(cache, sizeof cache, "%s/cache", dir);
	snprintf(path, sizeof path, "%s/t.db", dir);
	if (getenv("TAILOR_TEST_CACHE")) /* a cache shared with other tests */
		snprintf(cache, sizeof cache, "%s", getenv("TAILOR_TEST_CACHE"));
	setenv("TAILOR_CACHE", cache, 1);
	db_conn *db = NULL;
	tl_err err = TL_ERR_INIT;
	CHECK_MSG(db_open(&db, path, 0, &err) == 0, "%s", err.msg);
	int64_t a = 0, b = 0;
	run_once(db, &a);
	check_run(db, a);
	run_once(db, &b);
	check_run(db, b);
	/* the second run's first canary compared with the first run's */
	CHECK(count(db, "SELECT COUNT(*) FROM events WHERE run_id = ?1 AND kind IN "
	                "('canary.history', 'canary.shift')", b) == 1);
	CHECK(count(db, "SELECT COUNT(*) FROM events WHERE run_id = ?1 AND kind IN "
	                "('canary.history', 'canary.shift')", a) == 0);
	db_close(db);
	char cmd[600];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "test_measure: could not remove %s\n", dir);
	return tl_test_end();
}
