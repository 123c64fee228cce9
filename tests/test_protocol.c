/*
 * tests/test_protocol.c: the measurement protocol (profiler/protocol.h).
 *
 *  - statistics against hand-computed cases (odd and even counts, ties, a
 *    single value, NaN skipped, the nearest-rank p95 at n = 19, 20, 21, 40,
 *    the sample CV of a textbook set);
 *  - settings: defaults, overrides, strict keys and types with the JSON path
 *    in the message, the canonical JSON round trip and its hash;
 *  - the loop with a synthetic device (a deterministic sequence of decode
 *    latencies), a fake clock and a fake thermometer: warm-ups discarded,
 *    re-measurement triggered exactly when the round's CV is above the
 *    threshold and bounded, the minimum measuring time and its cap, the
 *    delay, the thermal gate's wait, recorded temperatures and its maximum
 *    wait, a failing run.
 * Runs in milliseconds (nothing sleeps: the clock is fake).
 */
#include "protocol.h"
#include "tl_test.h"

#include <stdlib.h>

/* ---- statistics ------------------------------------------------------------------ */

static void test_stats(void)
{
	prof_stats s;
	double odd[] = {3, 1, 2};
	prof_stats_compute(&s, odd, 3);
	CHECK_EQ_INT(s.n, 3);
	CHECK(s.median == 2 && s.min == 1 && s.max == 3 && s.mean == 2);
	CHECK(s.p95 == 3);                 /* rank ceil(2.85) = 3 */
	CHECK_NEAR(s.sd, 1.0, 1e-15, 0);   /* sqrt((1 + 0 + 1) / 2) */
	CHECK_NEAR(s.cv, 0.5, 1e-15, 0);

	double even[] = {4, 1, 3, 2};
	prof_stats_compute(&s, even, 4);
	CHECK(s.median == 2.5 && s.mean == 2.5 && s.p95 == 4);
	CHECK_NEAR(s.sd, 1.2909944487358056, 1e-15, 1e-15); /* sqrt(5/3) */
	CHECK_NEAR(s.cv, 0.5163977794943222, 1e-15, 1e-15);

	double ties[] = {5, 5, 5, 5, 5};
	prof_stats_compute(&s, ties, 5);
	CHECK(s.median == 5 && s.p95 == 5 && s.min == 5 && s.max == 5);
	CHECK(s.sd == 0 && s.cv == 0);

	double ties2[] = {1, 2, 2, 9};
	prof_stats_compute(&s, ties2, 4);
	CHECK(s.median == 2 && s.p95 == 9);

	double one[] = {7};
	prof_stats_compute(&s, one, 1);
	CHECK(s.n == 1 && s.median == 7 && s.p95 == 7 && s.min == 7 && s.max == 7);
	CHECK(isnan(s.sd) && isnan(s.cv)); /* undefined for one value */

	/* textbook: mean 5, sum of squares 32, sample variance 32/7 */
	double book[] = {2, 4, 4, 4, 5, 5, 7, 9};
	prof_stats_compute(&s, book, 8);
	CHECK(s.mean == 5 && s.median == 4.5);
	CHECK_NEAR(s.sd, 2.1380899352993952, 1e-15, 1e-15);
	CHECK_NEAR(s.cv, 0.42761798705987904, 1e-15, 1e-15);

	/* nearest rank: 1..19 -> 19 (the max), 1..20 -> 19, 1..21 -> 20, 1..40 -> 38 */
	double seq[40];
	for (int i = 0; i < 40; i++)
		seq[39 - i] = i + 1; /* descending: the sort matters */
	size_t ns[] = {19, 20, 21, 40};
	double want[] = {19, 19, 20, 38};
	for (int k = 0; k < 4; k++) {
		prof_stats_compute(&s, seq + 40 - ns[k], ns[k]); /* the values 1..n */
		CHECK_MSG(s.p95 == want[k], "n=%zu: p95 %g, want %g", ns[k], s.p95, want[k]);
	}
	prof_stats_compute(&s, seq + 20, 20);
	CHECK(s.median == 10.5);

	double withnan[] = {1, NAN, 3};
	prof_stats_compute(&s, withnan, 3);
	CHECK(s.n == 2 && s.median == 2 && s.max == 3);

	prof_stats_compute(&s, NULL, 0);
	CHECK(s.n == 0 && isnan(s.median) && isnan(s.p95) && isnan(s.cv));
	double nans[] = {NAN, NAN};
	prof_stats_compute(&s, nans, 2);
	CHECK(s.n == 0 && isnan(s.mean));

	double zero[] = {0, 0};
	prof_stats_compute(&s, zero, 2);
	CHECK(s.mean == 0 && isnan(s.cv));
}

/* ---- settings ---------------------------------------------------------------------- */

static void expect_err(const char *json, const char *needle)
{
	prof_protocol p;
	prof_protocol_init(&p);
	prof_protocol before = p;
	tl_err err = TL_ERR_INIT;
	int rc = prof_protocol_parse(&p, json, &err);
	CHECK_MSG(rc < 0, "accepted: %s", json);
	CHECK_MSG(strstr(err.msg, needle) != NULL, "%s: message '%s' lacks '%s'", json, err.msg,
	          needle);
	CHECK_MSG(strchr(err.msg, '\n') == NULL, "two lines: %s", err.msg);
	CHECK(memcmp(&p, &before, sizeof p) == 0); /* unchanged on failure */
}

static void test_settings(void)
{
	prof_protocol p, q;
	tl_err err = TL_ERR_INIT;
	prof_protocol_init(&p);
	CHECK(p.warmup == 1 && p.repeats == 5 && p.cv_threshold == 0.05 && p.max_remeasure == 2);
	CHECK(p.n_shapes == 2 && p.shapes[0].depth == 4096 && p.shapes[1].depth == 32768);
	CHECK(p.shapes[0].prompt == 512 && p.shapes[0].gen == 128);
	CHECK(prof_protocol_check(&p, &err) == 0);

	char *j = prof_protocol_json(&p);
	CHECK_EQ_STR(j, "{\"warmup\":1,\"repeats\":5,\"max_repeats\":50,\"min_time_s\":0,"
	                "\"cv_threshold\":0.05,\"max_remeasure\":2,\"delay_s\":0,"
	                "\"thermal\":{\"max_temp_c\":80,\"max_wait_s\":120,\"poll_s\":2},"
	                "\"threads\":0,\"pin\":\"\",\"shapes\":[{\"prompt\":512,\"gen\":128,"
	                "\"depth\":4096},{\"prompt\":512,\"gen\":128,\"depth\":32768}]}");
	/* the canonical text parses back to the same protocol */
	prof_protocol_init(&q);
	q.warmup = 9;
	q.n_shapes = 1;
	CHECK(prof_protocol_parse(&q, j, &err) == 0);
	CHECK(memcmp(&p, &q, sizeof p) == 0);
	char h1[65], h2[65];
	CHECK(prof_protocol_hash(&p, h1, &err) == 0);
	tl_sha256_hex(j, strlen(j), h2);
	CHECK_EQ_STR(h1, h2);
	free(j);

	/* overrides: absent keys keep their values; shapes replace the list */
	CHECK(prof_protocol_parse(&p,
	                          "{\"repeats\":10,\"cv_threshold\":0.02,\"thermal\":{\"max_temp_c\":"
	                          "65.5},\"pin\":\"taskset -c \\\"2-3\\\"\",\"shapes\":[{\"prompt\":"
	                          "64,\"gen\":16}]}",
	                          &err) == 0);
	CHECK(p.repeats == 10 && p.warmup == 1 && p.cv_threshold == 0.02);
	CHECK(p.max_temp_c == 65.5 && p.max_wait_s == 120);
	CHECK_EQ_STR(p.pin, "taskset -c \"2-3\"");
	CHECK(p.n_shapes == 1 && p.shapes[0].prompt == 64 && p.shapes[0].gen == 16 &&
	      p.shapes[0].depth == 0);
	j = prof_protocol_json(&p);
	CHECK_CONTAINS(j, "\"pin\":\"taskset -c \\\"2-3\\\"\"");
	CHECK_CONTAINS(j, "\"max_temp_c\":65.5");
	prof_protocol_init(&q);
	CHECK(prof_protocol_parse(&q, j, &err) == 0 && memcmp(&p, &q, sizeof p) == 0);
	CHECK(prof_protocol_hash(&q, h2, &err) == 0);
	CHECK(strcmp(h1, h2) != 0);
	free(j);
	/* repeats above the default cap raise it */
	prof_protocol_init(&p);
	CHECK(prof_protocol_parse(&p, "{\"repeats\":80}", &err) == 0 && p.max_repeats == 80);

	expect_err("{\"thermal\":{\"max_tmp_c\":70}}", "$.thermal.max_tmp_c: unknown key (known: "
	                                              "max_temp_c, max_wait_s, poll_s)");
	expect_err("{\"repeat\":3}", "$.repeat: unknown key");
	expect_err("{\"repeats\":\"3\"}", "$.repeats: must be an integer");
	expect_err("{\"repeats\":2.5}", "$.repeats: must be an integer");
	expect_err("{\"repeats\":0}", "$.repeats: 0: must be in 1..1000");
	expect_err("{\"cv_threshold\":-1}", "$.cv_threshold");
	expect_err("{\"shapes\":[{\"prompt\":1},{\"depth\":-4}]}", "$.shapes[1].depth");
	expect_err("{\"shapes\":[{\"prompt\":1,\"ctx\":4}]}", "$.shapes[0].ctx: unknown key");
	expect_err("{\"shapes\":[]}", "$.shapes: 0 entries");
	expect_err("{\"shapes\":{}}", "$.shapes: must be an array");
	expect_err("{\"thermal\":3}", "$.thermal: must be an object");
	expect_err("{\"pin\":3}", "$.pin: must be a string");
	expect_err("{\"repeats\":10,\"max_repeats\":5}", "max_repeats: 5: must be in repeats");
	expect_err("[1]", "$: must be a JSON object");
	expect_err("{\"warmup\":1,", "not valid JSON");

	tl_err e2 = TL_ERR_INIT;
	CHECK(prof_protocol_load(&p, "/nonexistent/protocol.json", &e2) == TL_EIO);
	CHECK_CONTAINS(e2.msg, "/nonexistent/protocol.json");
}

/* ---- the loop ------------------------------------------------------------------------ */

typedef struct fake {
	double now;          /* the clock, s                                 */
	const double *dec;   /* decode_ms_p50 of each run, in order          */
	size_t n_dec, calls;
	double run_s;        /* each run lasts this long on the fake clock    */
	const double *temps; /* successive thermometer readings (the last repeats) */
	size_t n_temps, reads;
	double slept;        /* total sleep requested                         */
	int sleeps;
	size_t fail_at;      /* 1-based call that fails; 0: none              */
} fake;

static int fake_run(void *ctx, prof_sample *s, tl_err *err)
{
	fake *f = ctx;
	f->calls++;
	if (f->fail_at && f->calls == f->fail_at)
		return tl_err_set(err, TL_EFAIL, "harness: exit status 1");
	size_t i = f->calls - 1 < f->n_dec ? f->calls - 1 : f->n_dec - 1;
	s->decode_ms_p50 = f->dec[i];
	s->ttft_ms = 100 + (double)f->calls;
	s->raw = malloc(16);
	if (s->raw)
		snprintf(s->raw, 16, "{\"run\":%zu}", f->calls);
	f->now += f->run_s;
	return 0;
}

static double fake_temp(void *ctx)
{
	fake *f = ctx;
	if (f->n_temps == 0)
		return NAN;
	size_t i = f->reads < f->n_temps ? f->reads : f->n_temps - 1;
	f->reads++;
	return f->temps[i];
}

static void fake_sleep(void *ctx, double s)
{
	fake *f = ctx;
	f->slept += s;
	f->sleeps++;
	f->now += s;
}

static double fake_now(void *ctx)
{
	return ((fake *)ctx)->now;
}

static prof_ops ops_of(fake *f)
{
	return (prof_ops){fake_run, fake_temp, fake_sleep, fake_now, f};
}

static prof_protocol proto(int warmup, int repeats, double cv, int max_rm)
{
	prof_protocol p;
	prof_protocol_init(&p);
	p.warmup = warmup;
	p.repeats = repeats;
	p.cv_threshold = cv;
	p.max_remeasure = max_rm;
	p.max_temp_c = 0; /* no gate unless a test sets one */
	return p;
}

static void test_loop(void)
{
	tl_err err = TL_ERR_INIT;
	prof_result r;

	/* warm-ups (wild values) discarded; round 1 CV 0.2 > 0.05: re-measured;
	 * round 2 CV 0.01: done */
	{
		const double d[] = {1000, 1, 10, 12, 8, 10, 10.1, 9.9};
		fake f = {.dec = d, .n_dec = 8, .run_s = 1};
		prof_protocol p = proto(2, 3, 0.05, 2);
		prof_ops o = ops_of(&f);
		CHECK(prof_measure(&r, &p, &o, &err) == 0);
		CHECK_EQ_INT(f.calls, 8);
		CHECK_EQ_INT(r.warmups, 2);
		CHECK_EQ_INT(r.n, 6);
		CHECK_EQ_INT(r.first, 3);
		CHECK_EQ_INT(r.rounds, 2);
		CHECK_EQ_INT(r.remeasured, 1);
		CHECK(r.cv_ok);
		CHECK_NEAR(r.round_cv[0], 0.2, 1e-12, 0);
		CHECK_NEAR(r.round_cv[1], 0.01, 1e-12, 0);
		CHECK(r.decode_ms_p50.median == 10 && r.decode_ms_p50.n == 3);
		CHECK(r.decode_ms_p50.min == 9.9 && r.decode_ms_p50.max == 10.1);
		CHECK(r.samples[0].decode_ms_p50 == 10 && r.samples[0].round == 0);
		CHECK(r.samples[5].round == 1);
		CHECK_EQ_STR(r.samples[0].raw, "{\"run\":3}"); /* the first measured run */
		CHECK(r.ttft_ms.median == 107); /* runs 6, 7, 8: ttft 106, 107, 108 */
		CHECK(isnan(r.samples[0].temp_before_c)); /* no thermometer readings */
		prof_result_free(&r);
	}
	/* bounded: always noisy, at most max_remeasure extra rounds */
	{
		const double d[] = {10, 15, 5};
		fake f = {.dec = d, .n_dec = 3, .run_s = 1};
		double seq[12];
		for (int i = 0; i < 12; i++)
			seq[i] = d[i % 3];
		f.dec = seq;
		f.n_dec = 12;
		prof_protocol p = proto(1, 3, 0.05, 2);
		prof_ops o = ops_of(&f);
		CHECK(prof_measure(&r, &p, &o, &err) == 0);
		CHECK_EQ_INT(f.calls, 1 + 9);
		CHECK_EQ_INT(r.rounds, 3);
		CHECK_EQ_INT(r.remeasured, 2);
		CHECK(!r.cv_ok);
		CHECK_EQ_INT(r.n, 9);
		CHECK_EQ_INT(r.first, 6);
		prof_result_free(&r);
		/* the same with max_remeasure 0: one round, flagged */
		f = (fake){.dec = seq, .n_dec = 12, .run_s = 1};
		p.max_remeasure = 0;
		CHECK(prof_measure(&r, &p, &o, &err) == 0);
		CHECK(r.rounds == 1 && r.remeasured == 0 && !r.cv_ok && r.n == 3);
		prof_result_free(&r);
		/* threshold 0: never re-measured, cv_ok */
		f = (fake){.dec = seq, .n_dec = 12, .run_s = 1};
		p = proto(0, 3, 0, 2);
		CHECK(prof_measure(&r, &p, &o, &err) == 0);
		CHECK(r.rounds == 1 && r.cv_ok && f.calls == 3);
		prof_result_free(&r);
	}
	/* the trigger is "above": a round whose CV equals the threshold stands.
	 * {9, 11}: mean 10, sd sqrt(2), cv 0.1414...; threshold just above / below */
	{
		const double d[] = {9, 11, 9, 11, 9, 11, 9, 11, 9, 11, 9, 11};
		for (int above = 0; above < 2; above++) {
			fake f = {.dec = d, .n_dec = 12, .run_s = 1};
			prof_protocol p = proto(0, 2, above ? 0.1414 : 0.1415, 5);
			prof_ops o = ops_of(&f);
			CHECK(prof_measure(&r, &p, &o, &err) == 0);
			CHECK_EQ_INT(r.remeasured, above ? 5 : 0);
			prof_result_free(&r);
		}
	}
	/* one repeat: CV undefined, never re-measured */
	{
		const double d[] = {10};
		fake f = {.dec = d, .n_dec = 1, .run_s = 1};
		prof_protocol p = proto(0, 1, 0.05, 2);
		prof_ops o = ops_of(&f);
		CHECK(prof_measure(&r, &p, &o, &err) == 0);
		CHECK(r.n == 1 && r.remeasured == 0 && r.cv_ok && isnan(r.decode_ms_p50.cv));
		prof_result_free(&r);
	}
	/* minimum measuring time: 2 repeats asked, 1 s runs, 5 s minimum: 5 runs;
	 * capped by max_repeats 4; warm-ups do not count */
	{
		const double d[] = {10};
		fake f = {.dec = d, .n_dec = 1, .run_s = 1};
		prof_protocol p = proto(3, 2, 0.05, 2);
		p.min_time_s = 5;
		prof_ops o = ops_of(&f);
		CHECK(prof_measure(&r, &p, &o, &err) == 0);
		CHECK_EQ_INT(r.n, 5);
		CHECK_EQ_INT(f.calls, 8);
		CHECK(r.samples[0].seconds == 1);
		prof_result_free(&r);
		f = (fake){.dec = d, .n_dec = 1, .run_s = 1};
		p.max_repeats = 4;
		CHECK(prof_measure(&r, &p, &o, &err) == 0);
		CHECK_EQ_INT(r.n, 4);
		prof_result_free(&r);
		/* 0.5 s runs: the tenth reaches 5 s */
		f = (fake){.dec = d, .n_dec = 1, .run_s = 0.5};
		p.max_repeats = 50;
		CHECK(prof_measure(&r, &p, &o, &err) == 0);
		CHECK_EQ_INT(r.n, 10);
		prof_result_free(&r);
	}
	/* the delay between runs: not before the first */
	{
		const double d[] = {10};
		fake f = {.dec = d, .n_dec = 1, .run_s = 1};
		prof_protocol p = proto(1, 3, 0, 0);
		p.delay_s = 2.5;
		prof_ops o = ops_of(&f);
		CHECK(prof_measure(&r, &p, &o, &err) == 0);
		CHECK(f.sleeps == 3 && f.slept == 7.5);
		prof_result_free(&r);
	}
	/* thermal gate: 90 before the first run -> poll every 2 s: 85, 79 (<= 80)
	 * -> the run starts at 79 after 4 s; after it 81 (read after the run); the
	 * next gate reads 81 > 80, waits 2 s, reads 70 */
	{
		const double d[] = {10};
		const double t[] = {90, 85, 79, 81, 81, 70, 72, 60};
		fake f = {.dec = d, .n_dec = 1, .run_s = 1, .temps = t, .n_temps = 8};
		prof_protocol p = proto(0, 2, 0, 0);
		p.max_temp_c = 80;
		p.poll_s = 2;
		prof_ops o = ops_of(&f);
		CHECK(prof_measure(&r, &p, &o, &err) == 0);
		CHECK_EQ_INT(r.n, 2);
		CHECK(r.samples[0].temp_before_c == 79 && r.samples[0].temp_after_c == 81);
		CHECK(r.samples[0].gate_wait_s == 4 && !r.samples[0].gate_gave_up);
		CHECK(r.samples[1].temp_before_c == 70 && r.samples[1].temp_after_c == 72);
		CHECK(r.samples[1].gate_wait_s == 2);
		CHECK(r.gate_wait_s == 6 && r.gate_gave_up == 0);
		CHECK(r.samples[0].seconds == 1); /* the gate's wait is not the run's time */
		prof_result_free(&r);
	}
	/* maximum wait: always 95; max_wait 5, poll 2: sleeps 2, 2, 1, then runs */
	{
		const double d[] = {10};
		const double t[] = {95};
		fake f = {.dec = d, .n_dec = 1, .run_s = 1, .temps = t, .n_temps = 1};
		prof_protocol p = proto(0, 1, 0, 0);
		p.max_temp_c = 80;
		p.max_wait_s = 5;
		p.poll_s = 2;
		prof_ops o = ops_of(&f);
		CHECK(prof_measure(&r, &p, &o, &err) == 0);
		CHECK(f.sleeps == 3 && f.slept == 5);
		CHECK(r.samples[0].gate_wait_s == 5 && r.samples[0].gate_gave_up);
		CHECK(r.gate_gave_up == 1 && r.samples[0].temp_before_c == 95);
		prof_result_free(&r);
		/* gate off (max_temp_c 0): no wait, temperatures still recorded */
		f = (fake){.dec = d, .n_dec = 1, .run_s = 1, .temps = t, .n_temps = 1};
		p.max_temp_c = 0;
		CHECK(prof_measure(&r, &p, &o, &err) == 0);
		CHECK(f.sleeps == 0 && r.samples[0].temp_before_c == 95 && !r.samples[0].gate_gave_up);
		prof_result_free(&r);
	}
	/* a failing run: the error, with where it happened; the result frees */
	{
		const double d[] = {10};
		fake f = {.dec = d, .n_dec = 1, .run_s = 1, .fail_at = 3};
		prof_protocol p = proto(1, 3, 0, 0);
		prof_ops o = ops_of(&f);
		tl_err e = TL_ERR_INIT;
		CHECK(prof_measure(&r, &p, &o, &e) == TL_EFAIL);
		CHECK_EQ_STR(e.msg, "round 1, run 2: harness: exit status 1");
		prof_result_free(&r);
		f = (fake){.dec = d, .n_dec = 1, .run_s = 1, .fail_at = 1};
		tl_err_clear(&e);
		CHECK(prof_measure(&r, &p, &o, &e) == TL_EFAIL);
		CHECK_EQ_STR(e.msg, "warm-up run 1: harness: exit status 1");
		prof_result_free(&r);
	}
}

int main(void)
{
	test_stats();
	test_settings();
	test_loop();
	return tl_test_end();
}
