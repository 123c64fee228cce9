/*
 * tests/test_util.c: util/ against independent references.
 *  - PCG32 against the reference implementation's published demo output
 *    (pcg-c-basic, pcg32-demo, seed 42 stream 54: state, first six outputs,
 *    65 coin flips and the first dice rolls of round 1).
 *  - Bounded draws against a chi-square test; the same test applied to the
 *    naive `r % bound` must reject it, so the test is shown able to fail.
 *  - advance(n) against n single steps; floats and normals against their
 *    distributions' moments.
 *  - The error value: first error wins, one line, prefix, sub-code.
 */
#include "tl.h"

#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include "tl_test.h"

#include <stdlib.h>

static double chi_square(const uint64_t *obs, int k, double expected)
{
	double x = 0;
	for (int i = 0; i < k; i++) {
		double d = (double)obs[i] - expected;
		x += d * d / expected;
	}
	return x;
}

static void test_pcg_reference(void)
{
	tl_rng rng;
	tl_rng_seed(&rng, 42, 54);
	/* The demo dumps the state after seeding: inc 109 (= 54*2+1). */
	CHECK(rng.inc == 109u);
	CHECK(rng.state == 1753877967969059832ULL);

	static const uint32_t want[6] = {0xa15c02b7, 0x7b47f409, 0xba1d3330,
	                                 0x83d2f293, 0xbfa4784b, 0xcbed606e};
	for (int i = 0; i < 6; i++) {
		uint32_t got = tl_rng_u32(&rng);
		CHECK_MSG(got == want[i], "output %d: 0x%08x, want 0x%08x", i, got, want[i]);
	}
	const char *coins = "HHTTTHTHHHTHTTTHHHHHTTTHHHTHTHTHTTHTTTHHHHHHTTTTHHTTTTTHTTTTTTTHT";
	char got_coins[66] = {0};
	for (int i = 0; i < 65; i++)
		got_coins[i] = tl_rng_bounded(&rng, 2) ? 'H' : 'T';
	CHECK_EQ_STR(got_coins, coins);
	static const int rolls[19] = {3, 4, 1, 1, 2, 2, 3, 2, 4, 3, 2, 4, 3, 3, 5, 2, 3, 1, 3};
	for (int i = 0; i < 19; i++) {
		int r = (int)tl_rng_bounded(&rng, 6) + 1;
		CHECK_MSG(r == rolls[i], "roll %d: %d, want %d", i, r, rolls[i]);
	}
}

static void test_pcg_streams_and_advance(void)
{
	tl_rng a, b;
	tl_rng_seed(&a, 42, 54);
	tl_rng_seed(&b, 42, 55);
	int same = 0;
	for (int i = 0; i < 1000; i++)
		same += tl_rng_u32(&a) == tl_rng_u32(&b);
	CHECK_MSG(same < 5, "streams 54 and 55 agree on %d of 1000 outputs", same);

	static const uint64_t deltas[] = {0, 1, 2, 3, 17, 1000, 123457};
	for (size_t d = 0; d < sizeof deltas / sizeof deltas[0]; d++) {
		tl_rng_seed(&a, 7, 3);
		b = a;
		for (uint64_t i = 0; i < deltas[d]; i++)
			(void)tl_rng_u32(&a);
		tl_rng_advance(&b, deltas[d]);
		CHECK_MSG(a.state == b.state, "advance(%llu) differs from stepping",
		          (unsigned long long)deltas[d]);
	}
	/* The period is 2^64: advancing by 2^64 - 1 then one step returns. */
	tl_rng_seed(&a, 9, 9);
	b = a;
	tl_rng_advance(&b, UINT64_MAX);
	(void)tl_rng_u32(&b);
	CHECK(a.state == b.state);
}

/* Chi-square for draws in [0, bound), bound = 3 * 2^30, bucketed by the top
 * bits into 12 buckets. Modulo bias would put twice the mass on [0, 2^30). */
static double bounded_chi2(tl_rng *rng, bool naive)
{
	const uint32_t bound = 3u << 30;
	uint64_t obs[12] = {0};
	const int n = 1200000;
	for (int i = 0; i < n; i++) {
		uint32_t v = naive ? tl_rng_u32(rng) % bound : tl_rng_bounded(rng, bound);
		CHECK(v < bound);
		obs[v >> 28]++;
	}
	return chi_square(obs, 12, n / 12.0);
}

static void test_bounded_unbiased(void)
{
	tl_rng rng;
	tl_rng_seed(&rng, 2024, 1);
	/* df = 11; the 0.1% critical value is 31.26. */
	double x = bounded_chi2(&rng, false);
	CHECK_MSG(x < 31.26, "chi-square %.2f for tl_rng_bounded", x);
	double y = bounded_chi2(&rng, true);
	CHECK_MSG(y > 31.26, "chi-square %.2f did not detect modulo bias", y);

	/* A small bound: a die, df = 5, 0.1% critical value 20.52. */
	uint64_t die[6] = {0};
	for (int i = 0; i < 600000; i++)
		die[tl_rng_bounded(&rng, 6)]++;
	double z = chi_square(die, 6, 100000.0);
	CHECK_MSG(z < 20.52, "chi-square %.2f for a die", z);

	CHECK(tl_rng_bounded(&rng, 1) == 0);
	CHECK(tl_rng_bounded(&rng, 0) == 0);
	for (int i = 0; i < 10000; i++) {
		int64_t r = tl_rng_range(&rng, -3, 4);
		CHECK(r >= -3 && r <= 4);
	}
	int64_t wide = tl_rng_range(&rng, INT64_MIN, INT64_MAX);
	(void)wide;
	CHECK(tl_rng_range(&rng, 5, 5) == 5);
}

static void test_floats_and_normals(void)
{
	tl_rng rng;
	tl_rng_seed(&rng, 1, 2);
	double sum = 0, fmin = 1, fmax = 0;
	const int n = 1000000;
	for (int i = 0; i < n; i++) {
		float f = tl_rng_float(&rng);
		double d = tl_rng_double(&rng);
		CHECK(f >= 0.0f && f < 1.0f);
		CHECK(d >= 0.0 && d < 1.0);
		sum += d;
		if (f < fmin) fmin = f;
		if (f > fmax) fmax = f;
	}
	/* mean of U(0,1) is 1/2 with standard error 1/sqrt(12 n) = 2.9e-4 */
	CHECK_NEAR(sum / n, 0.5, 5 * 2.9e-4, 0);
	CHECK(fmin < 1e-5 && fmax > 1 - 1e-5);

	double s1 = 0, s2 = 0, s4 = 0;
	for (int i = 0; i < n; i++) {
		double x = tl_rng_normal(&rng);
		s1 += x;
		s2 += x * x;
		s4 += x * x * x * x;
	}
	/* mean 0 (se 1e-3), variance 1 (se sqrt(2/n) = 1.4e-3), kurtosis 3 */
	CHECK_NEAR(s1 / n, 0.0, 5e-3, 0);
	CHECK_NEAR(s2 / n, 1.0, 7e-3, 0);
	CHECK_NEAR(s4 / n, 3.0, 0.05, 0);
}

static void test_shuffle(void)
{
	tl_rng rng;
	tl_rng_seed(&rng, 5, 5);
	/* Each of the 6 orders of 3 elements is equally likely. */
	uint64_t counts[6] = {0};
	for (int t = 0; t < 60000; t++) {
		int v[3] = {0, 1, 2};
		tl_rng_shuffle(&rng, v, 3, sizeof v[0]);
		counts[v[0] * 2 + (v[1] > v[2])]++;
	}
	CHECK_MSG(chi_square(counts, 6, 10000.0) < 20.52, "shuffle not uniform");
}

static void test_err(void)
{
	tl_err err = TL_ERR_INIT;
	CHECK(!tl_err_isset(&err));
	int rc = tl_err_set(&err, TL_EIO, "open: %s: %s", "a\nb.txt", "no such file");
	CHECK(rc == TL_EIO);
	CHECK(tl_err_isset(&err));
	CHECK_EQ_STR(err.msg, "open: a b.txt: no such file");
	rc = tl_err_setsub(&err, TL_EDB, 5, "later failure");
	CHECK(rc == TL_EDB);             /* returns its own code ... */
	CHECK(err.code == TL_EIO);       /* ... but the first error wins */
	CHECK_EQ_STR(err.msg, "open: a b.txt: no such file");
	tl_err_prefix(&err, "space.json");
	CHECK_EQ_STR(err.msg, "space.json: open: a b.txt: no such file");
	tl_err_clear(&err);
	CHECK(!tl_err_isset(&err));
	tl_err_setsub(&err, TL_EDB, 2067, "db insert: x: UNIQUE constraint failed");
	CHECK(err.sub == 2067 && err.code == TL_EDB);
	CHECK_EQ_STR(tl_err_name(TL_EDB), "db");
	CHECK(tl_err_set(NULL, TL_EFAIL, "nothing") == TL_EFAIL);

	/* A message longer than the buffer is cut, still terminated. */
	tl_err_clear(&err);
	char big[2000];
	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	tl_err_set(&err, TL_EFAIL, "%s", big);
	CHECK(strlen(err.msg) == TL_ERR_MSG_MAX - 1);
}

static void test_parse(void)
{
	tl_err err = TL_ERR_INIT;
	int64_t v;
	uint64_t u;
	double d;
	CHECK(tl_parse_i64(&v, "42", 0, 100, "--seed", &err) == 0 && v == 42);
	CHECK(tl_parse_i64(&v, "-7", -10, 10, "--x", &err) == 0 && v == -7);
	CHECK(tl_parse_i64(&v, "12abc", 0, 100, "--seed", &err) == TL_EUSAGE);
	CHECK_CONTAINS(err.msg, "--seed: '12abc': not an integer");
	tl_err_clear(&err);
	CHECK(tl_parse_i64(&v, "101", 0, 100, "--n", &err) == TL_EUSAGE);
	CHECK_CONTAINS(err.msg, "out of range (allowed 0..100)");
	tl_err_clear(&err);
	CHECK(tl_parse_i64(&v, "", 0, 100, "--n", &err) == TL_EUSAGE);
	tl_err_clear(&err);
	CHECK(tl_parse_i64(&v, "99999999999999999999", INT64_MIN, INT64_MAX, "--n", &err) ==
	      TL_EUSAGE);
	tl_err_clear(&err);
	CHECK(tl_parse_u64(&u, "18446744073709551615", "--seed", &err) == 0 && u == UINT64_MAX);
	CHECK(tl_parse_u64(&u, "-1", "--seed", &err) == TL_EUSAGE);
	tl_err_clear(&err);
	CHECK(tl_parse_double(&d, "1.5e3", "--x", &err) == 0 && d == 1500.0);
	CHECK(tl_parse_double(&d, "nan", "--x", &err) == TL_EUSAGE);
	tl_err_clear(&err);

	char buf[4];
	CHECK(tl_strlcpy(buf, "abcdef", sizeof buf) == 6);
	CHECK_EQ_STR(buf, "abc");

	char *text = NULL;
	size_t len = 0;
	CHECK(tl_file_read(&text, &len, "/nonexistent/tailor-test", 0, &err) == TL_EIO);
	CHECK_CONTAINS(err.msg, "read: /nonexistent/tailor-test: No such file");
	tl_err_clear(&err);
	CHECK(tl_file_read(&text, &len, "/proc/self/status", 0, &err) == 0);
	CHECK(text != NULL && len > 0 && strstr(text, "VmHWM") != NULL);
	free(text);
	CHECK(tl_file_read(&text, &len, "/", 0, &err) == TL_EIO);
	CHECK_CONTAINS(err.msg, "is a directory");
}

static void test_sha256(void)
{
	char hex[65];
	/* FIPS 180-4 examples (NIST CSRC "SHA256.pdf") */
	tl_sha256_hex("abc", 3, hex);
	CHECK_EQ_STR(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	const char *m2 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	tl_sha256_hex(m2, strlen(m2), hex);
	CHECK_EQ_STR(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
	tl_sha256_hex("", 0, hex);
	CHECK_EQ_STR(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	/* one million 'a', fed in uneven pieces to exercise the buffering */
	tl_sha256 s;
	unsigned char d[32];
	char a[997];
	memset(a, 'a', sizeof a);
	tl_sha256_init(&s);
	size_t left = 1000000;
	for (size_t piece = 1; left > 0; piece = piece % 900 + 13) {
		size_t n = piece < left ? piece : left;
		tl_sha256_update(&s, a, n);
		left -= n;
	}
	tl_sha256_final(&s, d);
	tl_hex(d, 32, hex);
	CHECK_EQ_STR(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

/* tl_proc_run: output, stdin, the stderr tail, the stdout cap (head or
 * tail), exit statuses, exec failure, and a timeout that kills the whole
 * process group without waiting for its orphans. */
static void test_proc(void)
{
	tl_err err = TL_ERR_INIT;
	tl_proc_out o;
	char *echo[] = {"sh", "-c", "printf hello; printf 'a\\nlast line\\n' >&2; exit 3", NULL};
	tl_proc p = {.argv = echo, .timeout_s = 10};
	CHECK(tl_proc_run(&p, &o, &err) == 0);
	CHECK(!strcmp(o.out, "hello") && o.out_len == 5 && !o.timed_out);
	CHECK(WIFEXITED(o.wait_status) && WEXITSTATUS(o.wait_status) == 3);
	CHECK(!strcmp(tl_proc_err_line(&o), "last line"));
	tl_proc_out_free(&o);
	/* stdin through, larger than a pipe buffer */
	size_t n = 300000;
	char *in = malloc(n);
	for (size_t i = 0; i < n; i++)
		in[i] = (char)('a' + i % 26);
	char *cat[] = {"cat", NULL};
	p = (tl_proc){.argv = cat, .in = in, .in_len = n, .timeout_s = 10};
	CHECK(tl_proc_run(&p, &o, &err) == 0);
	CHECK(o.out_len == n && memcmp(o.out, in, n) == 0 && !o.out_truncated);
	tl_proc_out_free(&o);
	/* caps: the head, or the tail; stderr's tail */
	p = (tl_proc){.shell = "printf 0123456789; printf abcdefghij >&2", .max_out = 4,
	              .err_tail = 3, .timeout_s = 10};
	CHECK(tl_proc_run(&p, &o, &err) == 0);
	CHECK(!strcmp(o.out, "0123") && o.out_truncated && !strcmp(o.err, "hij"));
	tl_proc_out_free(&o);
	p.out_keep_tail = true;
	CHECK(tl_proc_run(&p, &o, &err) == 0);
	CHECK(!strcmp(o.out, "6789") && o.out_truncated);
	tl_proc_out_free(&o);
	/* a program that does not exist: status 127 and a reason */
	char *nope[] = {"/nonexistent/tailor-no-such-program", NULL};
	p = (tl_proc){.argv = nope, .timeout_s = 10};
	CHECK(tl_proc_run(&p, &o, &err) == 0);
	CHECK(WIFEXITED(o.wait_status) && WEXITSTATUS(o.wait_status) == 127);
	CHECK(strstr(o.err, "cannot run /nonexistent/tailor-no-such-program") != NULL);
	tl_proc_out_free(&o);
	/* timeout: the group (a background sleeper holding the pipes too) is
	 * killed and the call returns at once */
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	p = (tl_proc){.shell = "sleep 30 & sleep 30", .timeout_s = 0.3};
	CHECK(tl_proc_run(&p, &o, &err) == 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double dt = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
	CHECK_MSG(o.timed_out && dt < 5.0, "timed out %d after %.2f s", o.timed_out, dt);
	CHECK(WIFSIGNALED(o.wait_status));
	tl_proc_out_free(&o);
	free(in);
}

int main(void)
{
	test_proc();
	test_sha256();
	test_pcg_reference();
	test_pcg_streams_and_advance();
	test_bounded_unbiased();
	test_floats_and_normals();
	test_shuffle();
	test_err();
	test_parse();
	return tl_test_end();
}
