/*
 * tests/bench_kernels.c: figures for the kernel layer on this machine (built
 * by meson, not a test: it takes about a minute and its numbers depend on
 * the machine and its load).
 *
 *     build/tests/bench_kernels [--threads N] [--bw-bytes BYTES] [--quick]
 *
 * For 1 thread and for N threads (default: 2) it prints
 *  - the probes: streaming read and copy bandwidth over a buffer of 4x the
 *    LLC (at least 1 GiB), the same over a 16 MiB buffer (the size of one
 *    weight matrix below, which the LLC may hold), FMA and int8-dot peaks;
 *  - the pool: cost of an empty op_pool_run, back to back and after the
 *    workers went to sleep;
 *  - GEMV (decode) q4_0 / q8_0, M = K = 4096: weight bytes streamed per
 *    second, hot (the same matrix every call, so it may sit in the LLC) and
 *    cold (rotating over matrices totalling twice the LLC: from DRAM);
 *  - GEMM (prefill) q4_0 / q8_0, N = 512, M = K = 1024..4096: int8
 *    multiply-adds per second against the probed dot peak;
 *  - the matmuls of one LFM2-350M-shaped token (decode) and of a 512-token
 *    prompt (prefill), summed: an upper bound on tok/s from the matmuls alone,
 *    to hold against llama.cpp's tg128 / pp512 on the same machine;
 *  - the same token's matmuls as a decode step runs them: every matrix its
 *    own, in the runtime layout (op_wmat), one after the other, so the
 *    weights stream from memory (or the LLC where it holds 200 MB) as they
 *    do in the model: GB/s against the read probe, the decode roofline.
 * The GEMV lines are given for plain rows (op_matmul) and for the runtime
 * layout (op_wmat_matmul, what the model runs; the same call where the build
 * has no interleaved layout).
 * Times are the best of repeated calls (clock_gettime(CLOCK_MONOTONIC)):
 * other work on the machine only ever slows a call down; the GEMV and GEMM
 * lines also give the median, so a busy machine shows.
 */
#include "op_kernels.h"
#include "tl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

#define MAX_REPS 4096

/* Best and median seconds per call of fn over at least `min_reps` calls and
 * about `budget` seconds (after one warm-up call). */
typedef void (*bench_fn)(void *ctx, int rep);

static double time_calls(bench_fn fn, void *ctx, int min_reps, double budget, double *median)
{
	static double t[MAX_REPS];
	fn(ctx, 0);
	int n = 0;
	double start = now_s();
	while (n < MAX_REPS && (n < min_reps || now_s() - start < budget)) {
		double t0 = now_s();
		fn(ctx, n);
		t[n++] = now_s() - t0;
	}
	qsort(t, (size_t)n, sizeof t[0], cmp_double);
	if (median)
		*median = t[n / 2];
	return t[0];
}

/* ---- weights ------------------------------------------------------------- */

static void *make_weights(tl_rng *rng, enum op_dtype wt, int64_t M, int64_t K)
{
	size_t rb = op_row_bytes(wt, K);
	uint8_t *W = malloc(rb * (size_t)M);
	float *row = malloc((size_t)K * sizeof(float));
	if (!W || !row) {
		free(W);
		free(row);
		return NULL;
	}
	for (int64_t m = 0; m < M; m++) {
		for (int64_t k = 0; k < K; k++)
			row[k] = (float)tl_rng_normal(rng) * 0.02f;
		op_quantize_row(wt, row, W + (size_t)m * rb, K);
	}
	free(row);
	return W;
}

typedef struct mm_ctx {
	op_pool *pool;
	enum op_dtype wt;
	void **W;      /* nW matrices, used in rotation */
	int nW;
	int64_t M, K, N;
	float *X, *Y;
	void *scratch;
	bool wmat;     /* W in the runtime layout: op_wmat_matmul */
} mm_ctx;

static void mm_call(void *arg, int rep)
{
	mm_ctx *c = arg;
	if (c->wmat)
		op_wmat_matmul(c->pool, c->wt, c->W[rep % c->nW], c->M, c->K, c->X, c->N, c->Y,
		               c->scratch);
	else
		op_matmul(c->pool, c->wt, c->W[rep % c->nW], c->M, c->K, c->X, c->N, c->Y, c->scratch);
}

/* The plain rows W (M x K) in the runtime layout (a new buffer). */
static void *to_wmat(enum op_dtype wt, const void *W, int64_t M, int64_t K)
{
	void *P = malloc(op_wmat_bytes(wt, M, K));
	if (P)
		op_wmat_pack(wt, W, 0, M, M, K, P);
	return P;
}

/* Best (and median) seconds of one op_matmul; W rotates over nW copies. */
static double time_matmul_l(op_pool *pool, enum op_dtype wt, void **W, int nW, int64_t M,
                            int64_t K, int64_t N, tl_rng *rng, double budget, double *median,
                            bool wmat)
{
	mm_ctx c = {pool, wt, W, nW, M, K, N, NULL, NULL, NULL, wmat};
	c.X = malloc((size_t)(N * K) * sizeof(float));
	c.Y = malloc((size_t)(N * M) * sizeof(float));
	size_t sb = op_matmul_scratch_bytes(wt, K, N);
	c.scratch = malloc(sb ? sb : 1);
	double t = NAN;
	if (c.X && c.Y && c.scratch) {
		for (int64_t i = 0; i < N * K; i++)
			c.X[i] = (float)tl_rng_normal(rng);
		t = time_calls(mm_call, &c, N == 1 ? 20 : 3, budget, median);
	}
	free(c.X);
	free(c.Y);
	free(c.scratch);
	return t;
}

static double time_matmul(op_pool *pool, enum op_dtype wt, void **W, int nW, int64_t M,
                          int64_t K, int64_t N, tl_rng *rng, double budget, double *median)
{
	return time_matmul_l(pool, wt, W, nW, M, K, N, rng, budget, median, false);
}

/* ---- pool ---------------------------------------------------------------- */

static void empty_job(void *arg, int ith, int nth) {}

static void pool_overhead(op_pool *pool, double *hot_us, double *wake_us)
{
	const int calls = 100000;
	for (int i = 0; i < 1000; i++)
		op_pool_run(pool, empty_job, NULL);
	double t0 = now_s();
	for (int i = 0; i < calls; i++)
		op_pool_run(pool, empty_job, NULL);
	*hot_us = (now_s() - t0) / calls * 1e6;
	/* after 20 ms idle the workers sleep: the first call pays the wake-up */
	double worst = 0, sum = 0;
	for (int i = 0; i < 10; i++) {
		struct timespec ts = {0, 20 * 1000 * 1000};
		nanosleep(&ts, NULL);
		t0 = now_s();
		op_pool_run(pool, empty_job, NULL);
		double t = now_s() - t0;
		sum += t;
		worst = t > worst ? t : worst;
	}
	*wake_us = sum / 10 * 1e6;
}

/* ---- LFM2-350M-shaped token ---------------------------------------------- */

/* The projections of LFM2-350M (DESIGN.md §3): d = 1024, 16 blocks, 10 conv
 * blocks (in_proj d -> 3d, out_proj d -> d), 6 GQA blocks (q d -> d, k and v
 * d -> 512, o d -> d), every block a SwiGLU (w1, w3 d -> 4608, w2
 * 4608 -> d), and the tied LM head (65536 x d). {M, K, count}. */
static const struct { int64_t M, K; int count; } lfm2_shapes[] = {
	{3072, 1024, 10}, {1024, 1024, 10},                 /* conv */
	{1024, 1024, 6}, {512, 1024, 12}, {1024, 1024, 6},  /* attention q, k+v, o */
	{4608, 1024, 32}, {1024, 4608, 16},                 /* SwiGLU */
	{65536, 1024, 1},                                   /* LM head */
};

/* Seconds of all the matmuls of one step with N activation rows (the LM head
 * only for the last row, as a decoder computes it). Each shape is timed once
 * and weighted by its count; weights are distinct per shape. */
static double lfm2_step(op_pool *pool, enum op_dtype wt, int64_t N, tl_rng *rng, double *bytes)
{
	double total = 0;
	*bytes = 0;
	for (size_t s = 0; s < sizeof lfm2_shapes / sizeof lfm2_shapes[0]; s++) {
		int64_t M = lfm2_shapes[s].M, K = lfm2_shapes[s].K;
		int64_t n = M == 65536 ? 1 : N;
		void *W = make_weights(rng, wt, M, K);
		if (!W)
			return NAN;
		total += lfm2_shapes[s].count * time_matmul(pool, wt, &W, 1, M, K, n, rng, 0.15, NULL);
		*bytes += lfm2_shapes[s].count * (double)op_row_bytes(wt, K) * (double)M;
		free(W);
	}
	return total;
}

/* One decode token's matmuls as the model runs them: every matrix of every
 * block its own (runtime layout), called in order; best and median seconds
 * per token over `reps` tokens after one warm-up token. */
static int lfm2_stream(op_pool *pool, enum op_dtype wt, tl_rng *rng, int reps, double *best,
                       double *median, double *bytes)
{
	int nmat = 0;
	for (size_t s = 0; s < sizeof lfm2_shapes / sizeof lfm2_shapes[0]; s++)
		nmat += lfm2_shapes[s].count;
	void **P = calloc((size_t)nmat, sizeof *P);
	int64_t *Ms = calloc((size_t)nmat, sizeof *Ms), *Ks = calloc((size_t)nmat, sizeof *Ks);
	float *X = malloc(4608 * sizeof(float)), *Y = malloc(65536 * sizeof(float));
	void *scratch = malloc(op_matmul_scratch_bytes(wt, 4608, 1));
	double *t = calloc((size_t)reps, sizeof *t);
	int rc = -1, n = 0;
	*bytes = 0;
	if (!P || !Ms || !Ks || !X || !Y || !scratch || !t)
		goto out;
	for (int64_t i = 0; i < 4608; i++)
		X[i] = (float)tl_rng_normal(rng);
	for (size_t s = 0; s < sizeof lfm2_shapes / sizeof lfm2_shapes[0]; s++)
		for (int c = 0; c < lfm2_shapes[s].count; c++, n++) {
			Ms[n] = lfm2_shapes[s].M;
			Ks[n] = lfm2_shapes[s].K;
			void *W = make_weights(rng, wt, Ms[n], Ks[n]);
			P[n] = W ? to_wmat(wt, W, Ms[n], Ks[n]) : NULL;
			free(W);
			if (!P[n])
				goto out;
			*bytes += (double)op_row_bytes(wt, Ks[n]) * (double)Ms[n];
		}
	for (int r = -1; r < reps; r++) {
		double t0 = now_s();
		for (int i = 0; i < nmat; i++)
			op_wmat_matmul(pool, wt, P[i], Ms[i], Ks[i], X, 1, Y, scratch);
		if (r >= 0)
			t[r] = now_s() - t0;
	}
	qsort(t, (size_t)reps, sizeof *t, cmp_double);
	*best = t[0];
	*median = t[reps / 2];
	rc = 0;
out:
	for (int i = 0; P && i < n; i++)
		free(P[i]);
	free(P);
	free(Ms);
	free(Ks);
	free(X);
	free(Y);
	free(scratch);
	free(t);
	return rc;
}

int main(int argc, char **argv)
{
	int nthreads = 2;
	size_t bw_bytes = 0;
	bool quick = false;
	tl_err err = TL_ERR_INIT;
	for (int i = 1; i < argc; i++) {
		int64_t v;
		if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
			if (tl_parse_i64(&v, argv[++i], 1, OP_POOL_MAX_THREADS, "--threads", &err) < 0)
				goto usage;
			nthreads = (int)v;
		} else if (!strcmp(argv[i], "--bw-bytes") && i + 1 < argc) {
			if (tl_parse_i64(&v, argv[++i], 1 << 20, INT64_MAX, "--bw-bytes", &err) < 0)
				goto usage;
			bw_bytes = (size_t)v;
		} else if (!strcmp(argv[i], "--quick")) {
			quick = true;
		} else {
			goto usage;
		}
	}
	if (bw_bytes == 0) {
		size_t llc = op_probe_llc_bytes();
		bw_bytes = 4 * llc > ((size_t)1 << 30) ? 4 * llc : (size_t)1 << 30;
		if (quick)
			bw_bytes = (size_t)256 << 20;
	}
	printf("kernel path: %s; LLC %.0f MiB; bandwidth buffer %.0f MiB\n", op_kernels_isa(),
	       (double)op_probe_llc_bytes() / (1 << 20), (double)bw_bytes / (1 << 20));
	tl_rng rng;
	tl_rng_seed(&rng, 1, 2);

	const int64_t D = 4096;
	/* "cold" GEMV: rotate over matrices totalling twice the LLC (at least
	 * 256 MiB), so a cyclic pass finds nothing in the cache */
	enum op_dtype qt[2] = {OP_Q4_0, OP_Q8_0};
	size_t llc2 = 2 * op_probe_llc_bytes();
	if (llc2 < ((size_t)256 << 20))
		llc2 = (size_t)256 << 20;
	int nrot[2];
	void **gemv_w[2] = {NULL, NULL};
	for (int t = 0; t < 2; t++) {
		size_t mb = op_row_bytes(qt[t], D) * (size_t)D;
		nrot[t] = quick ? 2 : (int)((llc2 + mb - 1) / mb);
		if (nrot[t] > 256)
			nrot[t] = 256;
		gemv_w[t] = calloc((size_t)nrot[t], sizeof *gemv_w[t]);
		if (!gemv_w[t]) {
			fprintf(stderr, "bench_kernels: out of memory\n");
			return 1;
		}
		for (int i = 0; i < nrot[t]; i++)
			if (!(gemv_w[t][i] = make_weights(&rng, qt[t], D, D))) {
				fprintf(stderr, "bench_kernels: out of memory\n");
				return 1;
			}
	}

	int counts[2] = {1, nthreads};
	for (int ci = 0; ci < (nthreads > 1 ? 2 : 1); ci++) {
		int nth = counts[ci];
		op_pool *pool = NULL;
		if (op_pool_create(&pool, nth, &err) < 0) {
			fprintf(stderr, "bench_kernels: %s\n", err.msg);
			return 1;
		}
		printf("\n=== %d thread%s\n", nth, nth > 1 ? "s" : "");
		double rd = 0, cp = 0, rd16 = 0, cp16 = 0, fl = 0, dot = 0;
		if (op_probe_bandwidth(pool, bw_bytes, 3, &rd, &cp, &err) < 0 ||
		    op_probe_bandwidth(pool, (size_t)16 << 20, 20, &rd16, &cp16, &err) < 0) {
			fprintf(stderr, "bench_kernels: %s\n", err.msg);
			op_pool_free(pool);
			return 1;
		}
		op_probe_peak_fma(pool, &fl);
		op_probe_peak_dot(pool, &dot);
		printf("probe  read %.1f GB/s, copy %.1f GB/s (%.0f MiB); 16 MiB: read %.1f GB/s, "
		       "copy %.1f GB/s\n", rd, cp, (double)bw_bytes / (1 << 20), rd16, cp16);
		printf("probe  fma %.1f GFLOP/s, int8 dot %.1f GOPS (multiply-adds)\n", fl, dot);
		double hot = 0, wake = 0;
		pool_overhead(pool, &hot, &wake);
		printf("pool   op_pool_run: %.2f us back to back, %.1f us waking sleeping workers\n",
		       hot, wake);

		for (int t = 0; t < 2; t++) {
			double bytes = (double)op_row_bytes(qt[t], D) * D;
			int count = nrot[t];
			double mh, mc;
			double th = time_matmul(pool, qt[t], &gemv_w[t][0], 1, D, D, 1, &rng, 1.0, &mh);
			double tc = time_matmul(pool, qt[t], gemv_w[t], count, D, D, 1, &rng, 1.0, &mc);
			printf("gemv   %s %lldx%lld (%.1f MB): hot %.0f us (median %.0f) = %.1f GB/s (%.0f%% of "
			       "16 MiB read); cold (%d matrices) %.0f us (median %.0f) = %.1f GB/s (%.0f%% of "
			       "read)\n", op_dtype_name(qt[t]), (long long)D, (long long)D, bytes * 1e-6,
			       th * 1e6, mh * 1e6, bytes / th * 1e-9, 100 * bytes / th * 1e-9 / rd16, count,
			       tc * 1e6, mc * 1e6, bytes / tc * 1e-9, 100 * bytes / tc * 1e-9 / rd);
			/* the runtime layout, hot (op_wmat_group_rows rows per group) */
			void *P = to_wmat(qt[t], gemv_w[t][0], D, D);
			if (P) {
				double mw, tw = time_matmul_l(pool, qt[t], &P, 1, D, D, 1, &rng, 1.0, &mw, true);
				printf("wgemv  %s %lldx%lld runtime layout (%d-row groups): hot %.0f us (median "
				       "%.0f) = %.1f GB/s (%.0f%% of 16 MiB read)\n", op_dtype_name(qt[t]),
				       (long long)D, (long long)D, op_wmat_group_rows(qt[t]), tw * 1e6, mw * 1e6,
				       bytes / tw * 1e-9, 100 * bytes / tw * 1e-9 / rd16);
				free(P);
			}
		}
		for (int t = 0; t < 2; t++) {
			/* small N (speculative decoding, short prompts): per-row cost */
			printf("small  %s M=K=4096, us per X row:", op_dtype_name(qt[t]));
			for (int64_t n = 1; n <= 64; n *= 2) {
				double tm = time_matmul(pool, qt[t], &gemv_w[t][0], 1, D, D, n, &rng, 0.3, NULL);
				printf(" N=%lld %.0f", (long long)n, tm / (double)n * 1e6);
			}
			printf("\n");
		}
		for (int t = 0; t < 2; t++) {
			for (int64_t n = 1024; n <= 4096; n *= 2) {
				if (quick && n > 1024)
					break;
				void *W = make_weights(&rng, qt[t], n, n);
				double med;
				double tm = time_matmul(pool, qt[t], &W, 1, n, n, 512, &rng, 1.5, &med);
				double gops = (double)n * n * 512 / tm * 1e-9;
				printf("gemm   %s N=512 M=K=%lld: %.2f ms (median %.2f) = %.1f GOPS (%.0f%% of dot "
				       "peak)\n", op_dtype_name(qt[t]), (long long)n, tm * 1e3, med * 1e3, gops,
				       100 * gops / dot);
				free(W);
			}
		}
		for (int t = 0; t < 2; t++) {
			double wbytes = 0;
			double tg = lfm2_step(pool, qt[t], 1, &rng, &wbytes);
			double pp = lfm2_step(pool, qt[t], 512, &rng, &wbytes);
			printf("lfm2   %s LFM2-350M-shaped matmuls (%.0f MB of weights): decode %.2f ms/token "
			       "= %.0f tok/s, %.1f GB/s; prefill 512 %.1f ms = %.0f tok/s\n",
			       op_dtype_name(qt[t]), wbytes * 1e-6, tg * 1e3, 1 / tg, wbytes / tg * 1e-9,
			       pp * 1e3, 512 / pp);
		}
		for (int t = 0; t < 2; t++) {
			double best, med, wbytes;
			if (lfm2_stream(pool, qt[t], &rng, quick ? 10 : 30, &best, &med, &wbytes) < 0) {
				fprintf(stderr, "bench_kernels: out of memory\n");
				return 1;
			}
			printf("stream %s LFM2-350M decode matmuls in order, runtime layout (%.0f MB): %.2f ms "
			       "(median %.2f) = %.1f GB/s (median %.1f) = %.0f%% of read\n",
			       op_dtype_name(qt[t]), wbytes * 1e-6, best * 1e3, med * 1e3, wbytes / best * 1e-9,
			       wbytes / med * 1e-9, 100 * wbytes / med * 1e-9 / rd);
		}
		op_pool_free(pool);
	}
	for (int t = 0; t < 2; t++) {
		for (int i = 0; i < nrot[t]; i++)
			free(gemv_w[t][i]);
		free(gemv_w[t]);
	}
	return 0;
usage:
	fprintf(stderr, "usage: bench_kernels [--threads N] [--bw-bytes BYTES] [--quick]%s%s\n",
	        err.msg[0] ? ": " : "", err.msg);
	return 2;
}
