/*
 * tests/test_engine.c: the run engine (evolve/engine.c) with a measuring
 * function of our own, on a database in memory:
 *  - metrics on two devices are measured in parallel (two measurements at
 *    once, never two at once on one device), each genome once per device;
 *  - stored results are the measuring function's values;
 *  - a run stopped part way (ops.stop) and resumed ends exactly like an
 *    uninterrupted run: same candidates, same objectives, same frontier;
 *  - a measurement that fails marks that candidate failed and the run goes on.
 */
#include "db.h"
#include "db_runs.h"
#include "evolve.h"
#include "tl_test.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

static const char *root = ".";

typedef struct ctx {
	atomic_int active, max_active, per_dev_active[2], bad_overlap, calls[2];
	int stop_after;     /* stop once this many measurements were taken (0: never) */
	atomic_int taken;
	const char *fail_hash_prefix; /* a genome whose measurement fails */
	int canary_n;                 /* the canary genome (d_model 333) slows down 6% per measurement */
} ctx;

static double value_of(const genome *g, int dev)
{
	/* a deterministic "latency": depends on the genome and the device */
	double v = 1.0 + dev;
	for (int l = 0; l < g->n_layers; l++)
		v += 0.1 * (g->layers[l].cls + 1);
	return v + 0.001 * g->d_model;
}

static int measure(void *vc, const char *device, const genome *g, const char *arch_text,
                   const ev_bench *b, ev_measured *out, tl_err *err)
{
	ctx *c = vc;
	int d = device[0] == 'b';
	int now = atomic_fetch_add(&c->active, 1) + 1;
	int m = atomic_load(&c->max_active);
	while (now > m && !atomic_compare_exchange_weak(&c->max_active, &m, now))
		;
	if (atomic_fetch_add(&c->per_dev_active[d], 1) != 0)
		atomic_fetch_add(&c->bad_overlap, 1);
	struct timespec ts = {0, 3 * 1000 * 1000};
	nanosleep(&ts, NULL);
	atomic_fetch_add(&c->calls[d], 1);
	atomic_fetch_add(&c->taken, 1);
	atomic_fetch_sub(&c->per_dev_active[d], 1);
	atomic_fetch_sub(&c->active, 1);
	(void)arch_text;
	(void)b;
	char h[65];
	if (c->fail_hash_prefix && genome_hash(g, h, err) == 0 &&
	    !strncmp(h, c->fail_hash_prefix, strlen(c->fail_hash_prefix)))
		return tl_err_set(err, TL_EFAIL, "device %s: harness crashed (test)", device);
	double v = value_of(g, d);
	if (g->d_model == 96 && g->n_layers == 2) /* the canary below */
		v *= 1.0 + 0.06 * (c->canary_n++ / 2);
	*out = (ev_measured){v * 10, v, 5 + v, 100 / v, 1000 / v, 0, 0, false, ""};
	return 0;
}

static bool stop_fn(void *vc)
{
	ctx *c = vc;
	return c->stop_after > 0 && atomic_load(&c->taken) >= c->stop_after;
}

static char *config(void)
{
	static char buf[2048];
	snprintf(buf, sizeof buf,
	         "{\"name\": \"engine\", \"space\": \"%s/examples/spaces/tiny.json\", "
	         "\"population\": 8, \"generations\": 4, \"seed\": 3, \"devices\": [\"a\", \"b\"], "
	         "\"objectives\": [{\"metric\": \"decode_ms@a\"}, {\"metric\": \"decode_ms@b\"}, "
	         "{\"metric\": \"params\", \"direction\": \"max\"}], "
	         "\"constraints\": [{\"metric\": \"peak_rss_mb@b\", \"max\": 100}]}",
	         root);
	return buf;
}

/* Candidates of the run as one string (generation, hash, origin, status,
 * objectives, rank, feasible): what must not depend on interruptions. */
static char *dump(db_conn *db, int64_t run)
{
	db_candidate *k = NULL;
	size_t n = 0;
	tl_err err = TL_ERR_INIT;
	CHECK(db_candidates_all(db, run, &k, &n, &err) == 0);
	size_t cap = 1 << 20, len = 0;
	char *s = malloc(cap);
	s[0] = '\0';
	for (size_t i = 0; i < n && len + 512 < cap; i++)
		len += (size_t)snprintf(s + len, cap - len, "%lld %.16s %s %s %s %d %d\n",
		                        (long long)k[i].generation, k[i].genome_hash, k[i].origin,
		                        k[i].status, k[i].objectives ? k[i].objectives : "-", k[i].rank,
		                        k[i].feasible);
	db_candidates_free(k, n);
	return s;
}

static int64_t start_run(db_conn *db)
{
	ev_config cfg;
	tl_err err = TL_ERR_INIT;
	int64_t id = 0;
	CHECK_MSG(ev_config_parse(&cfg, config(), "test config", NULL, &err) == 0, "%s", err.msg);
	CHECK_MSG(ev_run_create(db, &cfg, &id, &err) == 0, "%s", err.msg);
	ev_config_free(&cfg);
	return id;
}

/* bench.protocol: kept as given when valid; refused with the JSON path. */
static void test_bench_protocol(void)
{
	char buf[2048];
	ev_config cfg;
	tl_err err = TL_ERR_INIT;
	snprintf(buf, sizeof buf,
	         "{\"space\": \"%s/examples/spaces/tiny.json\", \"devices\": [\"a\"], "
	         "\"objectives\": [{\"metric\": \"decode_ms@a\"}], \"bench\": {\"protocol\": "
	         "{\"repeats\": 7, \"thermal\": {\"max_temp_c\": 60}}}}",
	         root);
	CHECK_MSG(ev_config_parse(&cfg, buf, "p.json", NULL, &err) == 0, "%s", err.msg);
	CHECK_EQ_STR(cfg.bench.protocol, "{\"repeats\":7,\"thermal\":{\"max_temp_c\":60}}");
	ev_config_free(&cfg);
	snprintf(buf, sizeof buf,
	         "{\"space\": \"%s/examples/spaces/tiny.json\", \"devices\": [\"a\"], "
	         "\"objectives\": [{\"metric\": \"decode_ms@a\"}], \"bench\": {\"protocol\": "
	         "{\"repeats\": 7, \"thermal\": {\"max_tmp_c\": 60}}}}",
	         root);
	tl_err_clear(&err);
	CHECK(ev_config_parse(&cfg, buf, "p.json", NULL, &err) < 0);
	CHECK_CONTAINS(err.msg, "p.json: bench: protocol: $.thermal.max_tmp_c: unknown key");
}

/* Metric names reach tables, SQL column names and HTML: a name pattern, the
 * same for a command evaluator's names (issue 14). */
static void test_metric_names(void)
{
	static const char *const bad[] = {"a</title><script>x</script>", "val bpb", "q'1",
	                                  "x@a@b", "@a", "m\\n"};
	char buf[2048];
	ev_config cfg;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		tl_err err = TL_ERR_INIT;
		snprintf(buf, sizeof buf,
		         "{\"space\": \"%s/examples/spaces/tiny.json\", \"devices\": [\"a\"], "
		         "\"quality\": {\"evaluator\": \"command\", \"command\": [\"true\"]}, "
		         "\"objectives\": [{\"metric\": \"%s\"}]}",
		         root, bad[i]);
		CHECK_MSG(ev_config_parse(&cfg, buf, "m.json", NULL, &err) < 0, "'%s' accepted", bad[i]);
		CHECK_CONTAINS(err.msg, "a metric name is letters");
	}
	tl_err err = TL_ERR_INIT;
	snprintf(buf, sizeof buf,
	         "{\"space\": \"%s/examples/spaces/tiny.json\", \"devices\": [\"a\"], "
	         "\"quality\": {\"evaluator\": \"command\", \"command\": [\"true\"]}, "
	         "\"objectives\": [{\"metric\": \"my-score.v2_x\"}, {\"metric\": \"decode_ms@a\"}]}",
	         root);
	CHECK_MSG(ev_config_parse(&cfg, buf, "m.json", NULL, &err) == 0, "%s", err.msg);
	ev_config_free(&cfg);
}

/* Multi-fidelity ranking compares at the highest level both reached: A
 * (level 1) is better than B at level 1's budget but worse at level 0's,
 * the only one B has: B must dominate A, as it would not if A's level-1
 * values were set against B's level-0 ones. */
static void test_mf_rank(void)
{
	/* rows: A, B, C; objectives (2, minimized) at level 0 and level 1 */
	const double l0[] = {1.0, 5, 0.8, 5, 1.2, 4}, l1[] = {0.5, 5, NAN, NAN, 0.6, 4};
	const double *v[2] = {l0, l1};
	const int level[] = {1, 0, 1};
	const double viol[] = {0, 0, 0};
	int rank[3];
	double crowd[3];
	CHECK(ev_mf_rank(3, 2, v, level, viol, rank, crowd) == 0);
	CHECK_MSG(rank[1] == 0 && rank[2] == 0 && rank[0] == 1, "ranks A %d B %d C %d (want 1 0 0)",
	          rank[0], rank[1], rank[2]);
	/* a front of two: both ends, infinite crowding */
	CHECK(isinf(crowd[1]) && isinf(crowd[2]));
	/* all at level 1: A dominates nothing of C, and the fronts are level 1's */
	const int top[] = {1, 1, 1};
	const double l1b[] = {0.5, 5, 0.4, 6, 0.6, 4};
	const double *vb[2] = {l0, l1b};
	CHECK(ev_mf_rank(3, 2, vb, top, viol, rank, crowd) == 0);
	CHECK(rank[0] == 0 && rank[1] == 0 && rank[2] == 0);
}

int main(int argc, char **argv)
{
	if (argc > 1)
		root = argv[1];
	tl_err err = TL_ERR_INIT;
	test_bench_protocol();
	test_metric_names();
	test_mf_rank();
	/* uninterrupted */
	db_conn *db1 = NULL, *db2 = NULL;
	CHECK(db_open(&db1, ":memory:", 0, &err) == 0);
	CHECK(db_open(&db2, ":memory:", 0, &err) == 0);
	if (!db1 || !db2)
		return tl_test_end();
	ctx c1;
	memset(&c1, 0, sizeof c1);
	ev_ops ops1 = {measure, NULL, stop_fn, &c1};
	int64_t r1 = start_run(db1);
	bool fin = false;
	CHECK_MSG(ev_run_drive(db1, r1, &ops1, &fin, &err) == 0 && fin, "%s", err.msg);
	CHECK_MSG(atomic_load(&c1.max_active) == 2, "max concurrent measurements %d",
	          atomic_load(&c1.max_active));
	CHECK_MSG(atomic_load(&c1.bad_overlap) == 0, "two measurements at once on one device");
	CHECK_MSG(atomic_load(&c1.calls[0]) == atomic_load(&c1.calls[1]), "calls a %d b %d",
	          atomic_load(&c1.calls[0]), atomic_load(&c1.calls[1]));
	/* each genome measured once per device: calls == distinct genomes */
	db_candidate *k = NULL;
	size_t n = 0;
	CHECK(db_candidates_all(db1, r1, &k, &n, &err) == 0);
	int distinct = 0, bad_values = 0;
	for (size_t i = 0; i < n; i++) {
		bool first = true;
		for (size_t j = 0; j < i; j++)
			if (!strcmp(k[j].genome_hash, k[i].genome_hash))
				first = false;
		distinct += first;
		genome g;
		if (genome_parse(&g, k[i].text, "t", &err) == 0 && k[i].objectives) {
			char want[128];
			snprintf(want, sizeof want, "\"decode_ms@a\":%g", value_of(&g, 0));
			bad_values += strstr(k[i].objectives, want) == NULL;
		}
	}
	CHECK_MSG(atomic_load(&c1.calls[0]) == distinct, "measured %d times for %d genomes",
	          atomic_load(&c1.calls[0]), distinct);
	CHECK_MSG(bad_values == 0, "%d stored values differ from the measurements", bad_values);
	db_candidates_free(k, n);

	/* stopped twice, resumed: the same run */
	ctx c2;
	memset(&c2, 0, sizeof c2);
	ev_ops ops2 = {measure, NULL, stop_fn, &c2};
	int64_t r2 = start_run(db2);
	int stops = 0;
	for (int limit = 7; !fin || stops == 0; limit += 13) {
		fin = false;
		c2.stop_after = limit;
		CHECK_MSG(ev_run_drive(db2, r2, &ops2, &fin, &err) == 0, "%s", err.msg);
		if (!fin) {
			stops++;
			db_run r;
			CHECK(db_run_get(db2, r2, &r, &err) == 0 && !strcmp(r.status, "stopped"));
			db_run_clear(&r);
		}
		if (limit > 10000)
			break;
	}
	CHECK_MSG(fin && stops >= 2, "finished %d after %d stops", fin, stops);
	char *d1 = dump(db1, r1), *d2 = dump(db2, r2);
	CHECK_MSG(strcmp(d1, d2) == 0, "stopped and resumed run differs:\n%.400s\n---\n%.400s", d1, d2);
	free(d1);
	free(d2);

	/* a failing measurement: that candidate failed, the run goes on */
	db_conn *db3 = NULL;
	CHECK(db_open(&db3, ":memory:", 0, &err) == 0);
	ctx c3;
	memset(&c3, 0, sizeof c3);
	/* fail the first genome of generation 0 of the uninterrupted run */
	db_candidate *k1 = NULL;
	size_t n1 = 0;
	CHECK(db_candidates_of(db1, r1, 0, &k1, &n1, &err) == 0 && n1 > 0);
	static char prefix[17];
	snprintf(prefix, sizeof prefix, "%.16s", n1 ? k1[0].genome_hash : "x");
	db_candidates_free(k1, n1);
	c3.fail_hash_prefix = prefix;
	ev_ops ops3 = {measure, NULL, NULL, &c3};
	int64_t r3 = start_run(db3);
	fin = false;
	CHECK_MSG(ev_run_drive(db3, r3, &ops3, &fin, &err) == 0 && fin, "%s", err.msg);
	db_candidates_of(db3, r3, 0, &k1, &n1, &err);
	int failed = 0;
	for (size_t i = 0; i < n1; i++)
		if (!strcmp(k1[i].status, "failed")) {
			failed++;
			CHECK_CONTAINS(k1[i].error, "harness crashed (test)");
		}
	CHECK_MSG(failed == 1, "%d failed candidates in generation 0", failed);
	db_candidates_free(k1, n1);
	/* the canary: measured at generations 0..3 on both devices; it drifts
	 * 0, 6, 12, 18% from its first value: two drift events per device */
	db_conn *db4 = NULL;
	CHECK(db_open(&db4, ":memory:", 0, &err) == 0);
	char cfg4[4096];
	snprintf(cfg4, sizeof cfg4, "%.*s, \"canary\": {\"genome\": \"%s\", \"every\": 1, "
	         "\"max_drift\": 0.1}}", (int)strlen(config()) - 1, config(),
	         "tailor-genome/1 d=96 vocab=64 ffn_multiple=32 rope_theta=10000 tied=1 | "
	         "0.0.0.0.0 0.0.0.0.0 | c0 op=3.0.0.2.0 ffn=128 C=0.2.1.1 V=0.2.1.1");
	ev_config cf4;
	int64_t r4 = 0;
	CHECK_MSG(ev_config_parse(&cf4, cfg4, "canary config", NULL, &err) == 0, "%s", err.msg);
	if (db4 && cf4.json) {
		CHECK(ev_run_create(db4, &cf4, &r4, &err) == 0);
		ev_config_free(&cf4);
		ctx c4;
		memset(&c4, 0, sizeof c4);
		ev_ops ops4 = {measure, NULL, NULL, &c4};
		fin = false;
		CHECK_MSG(ev_run_drive(db4, r4, &ops4, &fin, &err) == 0 && fin, "%s", err.msg);
		char **ev = NULL;
		size_t nev = 0;
		CHECK(db_run_events_data(db4, r4, "canary", &ev, &nev, &err) == 0);
		int drift = 0;
		for (size_t i = 0; i < nev; i++) {
			double dr = 0;
			const char *p = strstr(ev[i], "\"drift\":");
			if (p)
				dr = atof(p + 8);
			drift += dr > 0.1;
		}
		CHECK_MSG(nev == 8 && drift == 4, "canary events %zu (want 8), drifting %d (want 4)",
		          nev, drift);
		db_strings_free(ev, nev);
		/* driving the finished run again measures no canary twice */
		CHECK(ev_run_drive(db4, r4, &ops4, &fin, &err) == 0);
		CHECK(db_run_events_data(db4, r4, "canary", &ev, &nev, &err) == 0 && nev == 8);
		db_strings_free(ev, nev);
	}
	db_close(db1);
	db_close(db2);
	db_close(db3);
	db_close(db4);
	return tl_test_end();
}
