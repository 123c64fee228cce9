/*
 * tests/test_mix.c: the token-mixing structures (operators/op_mix.h) against
 * their materialized form, DESIGN.md §4: "train materialized, infer
 * recurrent ... a test holds the two views equal on random inputs".
 *
 * For every structure the reference builds the matrix T(x) of DESIGN.md §3
 * explicitly, in double precision, and computes y = T x naively; the
 * runtime's prefill form, its step form and mixtures of the two (prefill a
 * prefix then decode; chunked prefills at pos0 > 0; random interleavings)
 * must all match it on random inputs of odd sizes (T in 1, 3, 7, 17, 33, and
 * 70 where a chunked prefill crosses OP_MIX_CHUNK), and the final states
 * must match the reference state.
 *
 * Tolerances, per element: |got - ref| <= atol * (1 + max|ref|) + rtol * |ref|
 * (atol scaled by the array's magnitude so sums with cancellation are fair):
 *   f32 vs the double reference            atol 2e-6, rtol 2e-5 (tol_f32)
 *   f16 KV cache vs the f16-rounded ref     the same (same arithmetic after
 *                                           the rounding, which the test's
 *                                           independent h16() reproduces)
 *   f16 KV cache vs the unrounded ref       atol 5e-3, rtol 5e-3 (tol_f16),
 *                                           at unit-scale logits (the large-
 *                                           logit case amplifies the rounding)
 *   form vs form (decode vs prefill)        atol 1e-6, rtol 1e-5 (tol_form);
 *                                           attention and convs are bitwise.
 * Also: RMSNorm and RoPE against double references, f16 conversion against
 * an independent rounding and exhaustively on all 65536 halves, the ring
 * buffer after many wraps against the full cache, KV sharing, error paths,
 * state bytes against genome/stats.c, and checks that the comparisons do
 * fail on a wrong answer.
 */
#include "op_mix.h"
#include "op_kernels.h"
#include "genome.h"
#include "tl.h"
#include "tl_test.h"

#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Static_assert((int)OP_MASK_NONE == GM_NONE && (int)OP_MASK_WINDOW == GM_WINDOW &&
                       (int)OP_MASK_BLOCK == GM_BLOCK,
               "op_mask mirrors genome_mask");
_Static_assert((int)OP_NL_NONE == GN_NONE && (int)OP_NL_SOFTMAX == GN_SOFTMAX &&
                       (int)OP_NL_SILU == GN_SILU && (int)OP_NL_SIGMOID == GN_SIGMOID &&
                       (int)OP_NL_POSFEAT == GN_POSFEAT,
               "op_nonlin mirrors genome_nonlin");

typedef struct tol {
	double atol, rtol;
} tol;
static const tol tol_f32 = {2e-6, 2e-5};
static const tol tol_f16 = {5e-3, 5e-3};
static const tol tol_form = {1e-6, 1e-5};

static const int Ts[] = {1, 3, 7, 17, 33};
#define NTS ((int)(sizeof Ts / sizeof Ts[0]))

/* ---- helpers ---------------------------------------------------------------- */

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p) {
		fprintf(stderr, "test_mix: out of memory\n");
		abort();
	}
	return p;
}

static float *randn(tl_rng *r, size_t n, double scale)
{
	float *x = xmalloc(n * sizeof(float));
	for (size_t i = 0; i < n; i++)
		x[i] = (float)(tl_rng_normal(r) * scale);
	return x;
}

/* Within tolerance of a double reference? Prints the first miss. */
static bool near_d(const char *what, const float *got, const double *ref, size_t n, tol t)
{
	double mx = 0;
	for (size_t i = 0; i < n; i++)
		if (fabs(ref[i]) > mx)
			mx = fabs(ref[i]);
	for (size_t i = 0; i < n; i++) {
		double d = fabs((double)got[i] - ref[i]);
		if (!(d <= t.atol * (1 + mx) + t.rtol * fabs(ref[i]))) {
			fprintf(stderr, "     %s: [%zu] got %.9g, ref %.9g (|diff| %.3g, max|ref| %.3g)\n",
			        what, i, got[i], ref[i], d, mx);
			return false;
		}
	}
	return true;
}

static bool near_f(const char *what, const float *got, const float *ref, size_t n, tol t)
{
	double *r = xmalloc(n * sizeof(double));
	for (size_t i = 0; i < n; i++)
		r[i] = ref[i];
	bool ok = near_d(what, got, r, n, t);
	free(r);
	return ok;
}

static bool same_bits(const char *what, const float *got, const float *ref, size_t n)
{
	if (memcmp(got, ref, n * sizeof(float)) == 0)
		return true;
	for (size_t i = 0; i < n; i++)
		if (memcmp(&got[i], &ref[i], sizeof(float))) {
			fprintf(stderr, "     %s: [%zu] got %.9g, want exactly %.9g\n", what, i, got[i],
			        ref[i]);
			break;
		}
	return false;
}

/* Reference rounding to IEEE half, round to nearest even, in double: the
 * value with 11 significant bits (fewer below 2^-14, none below 2^-24). */
static double h16(double x)
{
	if (isnan(x))
		return x;
	double ax = fabs(x);
	if (ax >= 65520.0)
		return copysign(INFINITY, x);
	int e;
	frexp(ax, &e); /* ax = f 2^e, f in [0.5, 1) */
	int q = e - 11;
	if (q < -24)
		q = -24;
	return copysign(ldexp(nearbyint(ldexp(ax, -q)), q), x);
}

static double d_sigmoid(double x)
{
	return 1.0 / (1.0 + exp(-x));
}

static double d_softplus(double x)
{
	return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x));
}

/* Schedules: how a sequence of T tokens is fed. Entry s > 0: a prefill of s
 * tokens; s < 0: -s single steps. */
enum { SCHED_FULL, SCHED_STEPS, SCHED_HALF, SCHED_CHUNKS, SCHED_MIXED, SCHED_N };
static const char *sched_names[SCHED_N] = {"prefill", "steps", "prefill+steps", "chunks",
                                           "mixed"};

static int make_sched(int *s, int kind, int T, tl_rng *r)
{
	int n = 0, left = T;
	switch (kind) {
	case SCHED_FULL:
		s[n++] = T;
		break;
	case SCHED_STEPS:
		s[n++] = -T;
		break;
	case SCHED_HALF:
		if (T / 2)
			s[n++] = T / 2;
		s[n++] = -(T - T / 2);
		break;
	default:
		while (left > 0) {
			int c = 1 + (int)tl_rng_bounded(r, 6);
			if (c > left)
				c = left;
			s[n++] = (kind == SCHED_MIXED && tl_rng_bounded(r, 2)) ? -c : c;
			left -= c;
		}
	}
	return n;
}

/* ---- f16 ------------------------------------------------------------------- */

static void test_f16(void)
{
	/* every half -> float: decode by hand and compare bit-exactly */
	op_kv_cache c;
	uint16_t *mem = xmalloc(65536 * sizeof(uint16_t));
	for (int i = 0; i < 65536; i++)
		mem[i] = (uint16_t)i;
	op_kv_cache_init(&c, mem, OP_KV_F16, 1, 256, 256);
	c.n = 256;
	float row[256];
	tl_err err = TL_ERR_INIT;
	int bad = 0;
	for (int p = 0; p < 256; p++) {
		CHECK(op_kv_cache_read(row, &c, p, &err) == 0);
		for (int e = 0; e < 256; e++) {
			int h = p * 256 + e, ex = (h >> 10) & 31, m = h & 1023;
			double v = ex == 0 ? ldexp(m, -24) : ex == 31 ? (m ? NAN : INFINITY)
			                                              : ldexp(1024 + m, ex - 25);
			if (h & 0x8000)
				v = -v;
			bool ok = isnan(v) ? isnan(row[e]) : ((double)row[e] == v &&
			                                        !signbit(row[e]) == !signbit(v));
			if (!ok && bad++ < 3)
				fprintf(stderr, "     half 0x%04x: got %.9g want %.9g\n", h, row[e], v);
		}
	}
	CHECK_MSG(bad == 0, "%d halves decoded wrongly", bad);

	/* float -> half: midpoints (ties to even), just around them, the
	 * subnormal and overflow edges, and random floats of every scale */
	float *x = xmalloc(256 * sizeof(float));
	tl_rng r;
	tl_rng_seed(&r, 16, 1);
	bad = 0;
	for (int round = 0; round < 1200; round++) {
		for (int e = 0; e < 256; e++) {
			int kind = (int)tl_rng_bounded(&r, 4);
			uint32_t h = tl_rng_bounded(&r, 0x7bff); /* finite, below max */
			double v;
			double a = (h >> 10) ? ldexp(1024 + (h & 1023), (int)(h >> 10) - 25)
			                     : ldexp(h & 1023, -24);
			double b = ((h + 1) >> 10) ? ldexp(1024 + ((h + 1) & 1023), (int)((h + 1) >> 10) - 25)
			                           : ldexp((h + 1) & 1023, -24);
			double mid = (a + b) / 2;
			if (kind == 0)
				v = mid;
			else if (kind == 1)
				v = nextafterf((float)mid, tl_rng_bounded(&r, 2) ? INFINITY : -INFINITY);
			else if (kind == 2)
				v = ldexp(tl_rng_double(&r) + 0.5, (int)tl_rng_bounded(&r, 50) - 30);
			else
				v = tl_rng_normal(&r) * 1e4;
			if (tl_rng_bounded(&r, 2))
				v = -v;
			x[e] = (float)v;
		}
		if (round == 0) { /* edges */
			float edge[] = {0.0f, -0.0f, 65504.0f, 65519.99f, 65520.0f, 1e30f, -1e30f,
			                0x1p-24f, 0x1p-25f, 0x1.000002p-25f, 0x1.8p-24f, 0x1p-14f,
			                0x1.ffcp-15f, 1e-40f, INFINITY, -INFINITY, NAN};
			memcpy(x, edge, sizeof edge);
		}
		op_kv_cache_init(&c, mem, OP_KV_F16, 1, 256, 1);
		op_kv_cache_append(&c, x, 1);
		CHECK(op_kv_cache_read(row, &c, 0, &err) == 0);
		for (int e = 0; e < 256; e++) {
			double want = h16(x[e]);
			bool ok = isnan(want) ? isnan(row[e]) : ((double)row[e] == want &&
			                                          !signbit(row[e]) == !signbit(want));
			if (!ok && bad++ < 3)
				fprintf(stderr, "     f16(%a): got %a want %a\n", x[e], row[e], want);
		}
	}
	CHECK_MSG(bad == 0, "%d floats rounded to half wrongly", bad);
	free(x);
	free(mem);
}

/* The KV cache's halves are the kernel layer's halves (op_kernels.h), bit
 * for bit, NaNs included: a cache written here can be read there. */
static void test_f16_kernels(tl_rng *r)
{
	uint16_t *mem = xmalloc(65536 * sizeof(uint16_t));
	float *row = xmalloc(65536 * sizeof(float));
	for (int i = 0; i < 65536; i++)
		mem[i] = (uint16_t)i;
	op_kv_cache c;
	op_kv_cache_init(&c, mem, OP_KV_F16, 1, 65536, 1);
	c.n = 1;
	tl_err err = TL_ERR_INIT;
	CHECK(op_kv_cache_read(row, &c, 0, &err) == 0);
	int bad = 0;
	for (int i = 0; i < 65536; i++) {
		float k = op_f16_to_f32_ref((op_f16)i);
		if (memcmp(&k, &row[i], sizeof k) && bad++ < 3)
			fprintf(stderr, "     half 0x%04x: %a here, %a in op_kernels\n", i, row[i], k);
	}
	CHECK_MSG(bad == 0, "%d halves decode differently from op_f16_to_f32_ref", bad);
	for (int i = 0; i < 65536; i++) { /* every float pattern class */
		uint32_t bits = tl_rng_u32(r);
		memcpy(&row[i], &bits, sizeof bits);
		if (i % 4 == 0)
			row[i] = (float)(tl_rng_normal(r) * ldexp(1, (int)tl_rng_bounded(r, 60) - 40));
	}
	c.n = 0;
	op_kv_cache_append(&c, row, 1);
	bad = 0;
	for (int i = 0; i < 65536; i++) {
		op_f16 k = op_f32_to_f16_ref(row[i]);
		if (k != mem[i] && bad++ < 3)
			fprintf(stderr, "     f16(%a): 0x%04x here, 0x%04x in op_kernels\n", row[i], mem[i],
			        k);
	}
	CHECK_MSG(bad == 0, "%d floats encode differently from op_f32_to_f16_ref", bad);
	free(mem);
	free(row);
}

/* ---- RMSNorm, RoPE, GLU ----------------------------------------------------- */

static void test_rmsnorm(tl_rng *r)
{
	const int Cs[] = {1, 3, 17, 33, 64};
	for (int ci = 0; ci < 5; ci++)
		for (int wi = 0; wi < 2; wi++) {
			int T = 7, C = Cs[ci];
			float *x = randn(r, (size_t)T * C, 3.0), *w = wi ? randn(r, C, 1.0) : NULL;
			float *y = xmalloc((size_t)T * C * sizeof(float));
			double *ref = xmalloc((size_t)T * C * sizeof(double));
			for (int t = 0; t < T; t++) {
				double ss = 0;
				for (int c = 0; c < C; c++)
					ss += (double)x[t * C + c] * x[t * C + c];
				double rs = 1.0 / sqrt(ss / C + 1e-5);
				for (int c = 0; c < C; c++)
					ref[t * C + c] = x[t * C + c] * rs * (w ? w[c] : 1.0);
			}
			char what[64];
			snprintf(what, sizeof what, "rmsnorm C=%d w=%d", C, wi);
			op_rmsnorm(y, x, w, T, C, 1e-5f);
			CHECK_MSG(near_d(what, y, ref, (size_t)T * C, tol_f32), "%s", what);
			op_rmsnorm(x, x, w, T, C, 1e-5f); /* in place */
			CHECK_MSG(same_bits(what, x, y, (size_t)T * C), "%s in place", what);
			free(x);
			free(w);
			free(y);
			free(ref);
		}
}

static void test_rope(tl_rng *r)
{
	/* the convention by hand: hd 4, position 1, theta 10000: pair (0, 2)
	 * turns by 1 rad, pair (1, 3) by 10000^(-1/2) = 0.01 rad */
	float x[4] = {1, 0, 0, 0}, x2[4] = {0, 1, 0, 0};
	op_rope(x, 1, 1, 4, 1, 10000.0f);
	op_rope(x2, 1, 1, 4, 1, 10000.0f);
	CHECK_NEAR(x[0], cos(1.0), 1e-7, 0);
	CHECK_NEAR(x[2], sin(1.0), 1e-7, 0);
	CHECK(x[1] == 0 && x[3] == 0);
	CHECK_NEAR(x2[1], cos(0.01), 1e-7, 0);
	CHECK_NEAR(x2[3], sin(0.01), 1e-7, 0);

	const int hds[] = {2, 6, 64};
	const int64_t pos0s[] = {0, 5, 32760, 1 << 20};
	const float thetas[] = {10000.0f, 1e6f};
	for (int a = 0; a < 3; a++)
		for (int b = 0; b < 4; b++)
			for (int c = 0; c < 2; c++) {
				int T = 7, H = 3, hd = hds[a], half = hd / 2;
				size_t n = (size_t)T * H * hd;
				float *v = randn(r, n, 1.0);
				double *ref = xmalloc(n * sizeof(double));
				for (int t = 0; t < T; t++)
					for (int h = 0; h < H; h++)
						for (int i = 0; i < half; i++) {
							/* angle = pos / theta^(2i/hd), computed via exp/log */
							double ang = (double)(pos0s[b] + t) *
							             exp(-(2.0 * i / hd) * log((double)thetas[c]));
							size_t o = ((size_t)t * H + h) * hd;
							double x1 = v[o + i], x2v = v[o + i + half];
							ref[o + i] = x1 * cos(ang) - x2v * sin(ang);
							ref[o + i + half] = x2v * cos(ang) + x1 * sin(ang);
						}
				op_rope(v, T, H, hd, pos0s[b], thetas[c]);
				char what[80];
				snprintf(what, sizeof what, "rope hd=%d pos0=%lld theta=%g", hd,
				         (long long)pos0s[b], thetas[c]);
				CHECK_MSG(near_d(what, v, ref, n, tol_f32), "%s", what);
				free(v);
				free(ref);
			}
}

static void test_glu(tl_rng *r)
{
	const int acts[] = {OP_NL_SILU, OP_NL_SIGMOID, OP_NL_NONE};
	const int ns[] = {1, 7, 33};
	for (int a = 0; a < 3; a++)
		for (int k = 0; k < 3; k++) {
			int n = ns[k];
			float *g = randn(r, n, 4.0), *u = randn(r, n, 1.0);
			float *y = xmalloc(n * sizeof(float));
			double *ref = xmalloc(n * sizeof(double));
			/* T is diagonal: T[i][i] = act(C_i); y = T V */
			for (int i = 0; i < n; i++) {
				double gi = g[i];
				double s = acts[a] == OP_NL_SILU    ? gi * d_sigmoid(gi)
				           : acts[a] == OP_NL_SIGMOID ? d_sigmoid(gi)
				                                      : gi;
				ref[i] = s * u[i];
			}
			char what[48];
			snprintf(what, sizeof what, "glu act=%d n=%d", acts[a], n);
			op_glu(y, g, u, n, acts[a]);
			CHECK_MSG(near_d(what, y, ref, n, tol_f32), "%s", what);
			op_glu(g, g, u, n, acts[a]); /* in place */
			CHECK_MSG(same_bits(what, g, y, n), "%s in place", what);
			free(g);
			free(u);
			free(y);
			free(ref);
		}
}

/* ---- dense attention -------------------------------------------------------- */

static bool attn_allowed(int mask, int len, int i, int j)
{
	if (j > i)
		return false;
	if (mask == OP_MASK_WINDOW)
		return j > i - len;
	if (mask == OP_MASK_BLOCK)
		return j / len == i / len;
	return true;
}

/* y (T, H, hd) = T(x) V with T[i][j] = softmax_j / sigmoid(q_i.k_j / sqrt(hd))
 * built explicitly per head; f16: K and V as the cache rounds them. */
static void ref_attn(double *y, const float *q, const float *k, const float *v,
                     const op_attn_cfg *cfg, int T, bool f16)
{
	int H = cfg->heads, KV = cfg->kv_heads, hd = cfg->head_dim, G = H / KV;
	double *Tm = xmalloc((size_t)T * T * sizeof(double));
	double scale = 1.0 / sqrt((double)hd);
	for (int h = 0; h < H; h++) {
		int g = h / G;
		for (int i = 0; i < T; i++) {
			double mx = -INFINITY, sum = 0;
			for (int j = 0; j < T; j++) {
				Tm[i * T + j] = NAN;
				if (!attn_allowed(cfg->mask, cfg->len, i, j))
					continue;
				double s = 0;
				for (int e = 0; e < hd; e++) {
					double kk = k[((size_t)j * KV + g) * hd + e];
					s += (double)q[((size_t)i * H + h) * hd + e] * (f16 ? h16(kk) : kk);
				}
				Tm[i * T + j] = s * scale;
				if (s * scale > mx)
					mx = s * scale;
			}
			for (int j = 0; j < T; j++) {
				double s = Tm[i * T + j];
				if (isnan(s))
					Tm[i * T + j] = 0;
				else if (cfg->nonlin == OP_NL_SIGMOID)
					Tm[i * T + j] = d_sigmoid(s);
				else
					sum += (Tm[i * T + j] = exp(s - mx));
			}
			if (cfg->nonlin != OP_NL_SIGMOID)
				for (int j = 0; j < T; j++)
					Tm[i * T + j] /= sum;
		}
		for (int i = 0; i < T; i++)
			for (int e = 0; e < hd; e++) {
				double acc = 0;
				for (int j = 0; j < T; j++) {
					double vv = v[((size_t)j * KV + g) * hd + e];
					acc += Tm[i * T + j] * (f16 ? h16(vv) : vv);
				}
				y[((size_t)i * H + h) * hd + e] = acc;
			}
	}
	free(Tm);
}

/* Feed q, k, v through fresh caches of `cap` positions by schedule. */
static int run_attn(float *y, const float *q, const float *k, const float *v,
                    const op_attn_cfg *cfg, int type, int64_t cap, int T, const int *sched,
                    int nsched, tl_err *err)
{
	int H = cfg->heads, KV = cfg->kv_heads, hd = cfg->head_dim;
	size_t qrow = (size_t)H * hd, kvrow = (size_t)KV * hd;
	size_t bytes = op_kv_cache_bytes(type, KV, hd, cap);
	void *km = xmalloc(bytes), *vm = xmalloc(bytes);
	op_kv_cache kc, vc;
	op_kv_cache_init(&kc, km, type, KV, hd, cap);
	op_kv_cache_init(&vc, vm, type, KV, hd, cap);
	int t = 0, rc = 0;
	for (int s = 0; s < nsched && rc == 0; s++) {
		if (sched[s] > 0) {
			int n = sched[s];
			rc = op_attn_prefill(y + t * qrow, q + t * qrow, k + t * kvrow, v + t * kvrow, &kc,
			                     &vc, cfg, n, t, err);
			t += n;
		} else {
			for (int i = 0; i < -sched[s] && rc == 0; i++, t++)
				rc = op_attn_step(y + t * qrow, q + t * qrow, k + t * kvrow, v + t * kvrow,
				                  &kc, &vc, cfg, t, err);
		}
	}
	if (rc == 0 && (t != T || kc.n != T || vc.n != T))
		rc = tl_err_set(err, TL_EFAIL, "schedule covered %d of %d tokens", t, T);
	free(km);
	free(vm);
	return rc;
}

static void test_attn(tl_rng *r)
{
	const int shapes[][3] = {{3, 1, 5}, {3, 3, 7}, {4, 2, 6}}; /* H, KV, hd */
	const int masks[][2] = {{OP_MASK_NONE, 0},   {OP_MASK_WINDOW, 1}, {OP_MASK_WINDOW, 4},
	                        {OP_MASK_WINDOW, 40}, {OP_MASK_BLOCK, 1},  {OP_MASK_BLOCK, 4},
	                        {OP_MASK_BLOCK, 6}};
	int sched[64];
	int runs = 0;
	for (int si = 0; si < 3; si++)
		for (int mi = 0; mi < 7; mi++)
			for (int nl = 0; nl < 2; nl++)
				for (int ti = 0; ti < NTS; ti++) {
					op_attn_cfg cfg = {shapes[si][0], shapes[si][1], shapes[si][2],
					                   masks[mi][0], masks[mi][1],
					                   nl ? OP_NL_SIGMOID : OP_NL_SOFTMAX};
					int T = Ts[ti], H = cfg.heads, KV = cfg.kv_heads, hd = cfg.head_dim;
					/* one case with large scores: an exp without the running
					 * max would overflow */
					double sc = (si == 0 && ti == NTS - 1) ? 12.0 : 1.0;
					size_t nq = (size_t)T * H * hd, nk = (size_t)T * KV * hd;
					float *q = randn(r, nq, sc), *k = randn(r, nk, sc), *v = randn(r, nk, 1.0);
					double *ref = xmalloc(nq * sizeof(double));
					double *ref16 = xmalloc(nq * sizeof(double));
					float *y = xmalloc(nq * sizeof(float)), *y0 = xmalloc(nq * sizeof(float));
					ref_attn(ref, q, k, v, &cfg, T, false);
					ref_attn(ref16, q, k, v, &cfg, T, true);
					for (int type = 0; type < 2; type++) {
						/* caches: full; for masks also the exact ring and a
						 * ring of len + 2 */
						int64_t caps[3] = {T, op_attn_cache_positions(cfg.mask, cfg.len, T),
						                   op_attn_cache_positions(cfg.mask, cfg.len, T) + 2};
						int ncaps = cfg.mask == OP_MASK_NONE ? 1 : 3;
						for (int ci = 0; ci < ncaps; ci++)
							for (int sk = 0; sk < SCHED_N; sk++) {
								int ns = make_sched(sched, sk, T, r);
								tl_err err = TL_ERR_INIT;
								char what[160];
								snprintf(what, sizeof what,
								         "attn H=%d KV=%d hd=%d mask=%d len=%d %s %s T=%d "
								         "cap=%lld %s",
								         H, KV, hd, cfg.mask, cfg.len,
								         nl ? "sigmoid" : "softmax", type ? "f16" : "f32", T,
								         (long long)caps[ci], sched_names[sk]);
								int rc = run_attn(y, q, k, v, &cfg, type, caps[ci], T, sched,
								                  ns, &err);
								CHECK_MSG(rc == 0, "%s: %s", what, err.msg);
								if (rc)
									continue;
								runs++;
								/* the materialized view */
								CHECK_MSG(near_d(what, y, type ? ref16 : ref, nq, tol_f32),
								          "%s", what);
								/* the f16 rounding itself, at moderate logits (with
								 * scores of ~100 it moves the softmax by more) */
								if (type && sc == 1.0)
									CHECK_MSG(near_d(what, y, ref, nq, tol_f16), "%s vs f32",
									          what);
								/* every form, every cache size: the same bits as
								 * one full prefill on a full cache */
								if (ci == 0 && sk == SCHED_FULL)
									memcpy(y0, y, nq * sizeof(float));
								else
									CHECK_MSG(same_bits(what, y, y0, nq), "%s = prefill",
									          what);
							}
					}
					free(q);
					free(k);
					free(v);
					free(ref);
					free(ref16);
					free(y);
					free(y0);
				}
	CHECK(runs > 3000);
}

/* Many wraps of a ring, compared with a full cache, by prefill in tiles,
 * steps and random mixtures. */
static void test_attn_ring(tl_rng *r)
{
	const int masks[][2] = {{OP_MASK_WINDOW, 5}, {OP_MASK_BLOCK, 5}, {OP_MASK_WINDOW, 1}};
	int sched[256];
	for (int mi = 0; mi < 3; mi++)
		for (int type = 0; type < 2; type++) {
			op_attn_cfg cfg = {3, 1, 5, masks[mi][0], masks[mi][1], OP_NL_SOFTMAX};
			int T = 200;
			size_t nq = (size_t)T * 3 * 5, nk = (size_t)T * 5;
			float *q = randn(r, nq, 1), *k = randn(r, nk, 1), *v = randn(r, nk, 1);
			float *yfull = xmalloc(nq * sizeof(float)), *y = xmalloc(nq * sizeof(float));
			double *ref = xmalloc(nq * sizeof(double));
			ref_attn(ref, q, k, v, &cfg, T, type == 1);
			tl_err err = TL_ERR_INIT;
			CHECK(run_attn(yfull, q, k, v, &cfg, type, T, T, (int[]){T}, 1, &err) == 0);
			CHECK_MSG(near_d("ring ref", yfull, ref, nq, tol_f32), "full cache vs reference");
			for (int ci = 0; ci < 2; ci++)
				for (int sk = 0; sk < SCHED_N; sk++) {
					int64_t cap = cfg.len + 3 * ci; /* 40 to 200 wraps */
					int ns = make_sched(sched, sk, T, r);
					char what[96];
					snprintf(what, sizeof what, "ring mask=%d len=%d cap=%lld type=%d %s",
					         cfg.mask, cfg.len, (long long)cap, type, sched_names[sk]);
					int rc = run_attn(y, q, k, v, &cfg, type, cap, T, sched, ns, &err);
					CHECK_MSG(rc == 0, "%s: %s", what, err.msg);
					CHECK_MSG(rc == 0 && same_bits(what, y, yfull, nq), "%s = full cache",
					          what);
				}
			free(q);
			free(k);
			free(v);
			free(yfull);
			free(y);
			free(ref);
		}
}

/* A second layer reading the first layer's caches (cross-layer KV sharing):
 * both K and V shared, or K shared with its own V. */
static void test_attn_shared(tl_rng *r)
{
	int sched[64];
	const int masks[][2] = {{OP_MASK_NONE, 0}, {OP_MASK_WINDOW, 4}, {OP_MASK_BLOCK, 3}};
	for (int mi = 0; mi < 3; mi++)
		for (int own_v = 0; own_v < 2; own_v++)
			for (int sk = 0; sk < SCHED_N; sk++) {
				op_attn_cfg cfg = {4, 2, 3, masks[mi][0], masks[mi][1], OP_NL_SOFTMAX};
				int T = 33, H = 4, KV = 2, hd = 3, maxchunk = 6;
				size_t nq = (size_t)T * H * hd, nk = (size_t)T * KV * hd;
				float *q1 = randn(r, nq, 1), *q2 = randn(r, nq, 1), *k = randn(r, nk, 1);
				float *v = randn(r, nk, 1), *v2 = randn(r, nk, 1);
				float *y1 = xmalloc(nq * sizeof(float)), *y2 = xmalloc(nq * sizeof(float));
				double *ref = xmalloc(nq * sizeof(double));
				/* a shared ring must hold the chunk plus the window */
				int64_t cap = cfg.mask == OP_MASK_NONE ? T : cfg.len + maxchunk - 1;
				size_t bytes = op_kv_cache_bytes(OP_KV_F32, KV, hd, cap);
				void *m1 = xmalloc(bytes), *m2 = xmalloc(bytes), *m3 = xmalloc(bytes);
				op_kv_cache kc, vc, vc2;
				op_kv_cache_init(&kc, m1, OP_KV_F32, KV, hd, cap);
				op_kv_cache_init(&vc, m2, OP_KV_F32, KV, hd, cap);
				op_kv_cache_init(&vc2, m3, OP_KV_F32, KV, hd, cap);
				int ns = make_sched(sched, sk, T, r), t = 0, rc = 0;
				tl_err err = TL_ERR_INIT;
				size_t qrow = (size_t)H * hd, kvrow = (size_t)KV * hd;
				const float *vown = own_v ? v2 : NULL;
				op_kv_cache *vcs = own_v ? &vc2 : &vc;
				for (int s = 0; s < ns && rc == 0; s++) {
					int n = sched[s] > 0 ? sched[s] : 1, reps = sched[s] > 0 ? 1 : -sched[s];
					for (int i = 0; i < reps && rc == 0; i++, t += n) {
						rc = op_attn_prefill(y1 + t * qrow, q1 + t * qrow, k + t * kvrow,
						                     v + t * kvrow, &kc, &vc, &cfg, n, t, &err);
						if (rc == 0)
							rc = op_attn_prefill(y2 + t * qrow, q2 + t * qrow, NULL,
							                     vown ? vown + t * kvrow : NULL, &kc, vcs,
							                     &cfg, n, t, &err);
					}
				}
				char what[96];
				snprintf(what, sizeof what, "shared mask=%d own_v=%d %s", cfg.mask, own_v,
				         sched_names[sk]);
				/* a chunk longer than the ring allows is refused, the rest
				 * must match the reference */
				int longest = 0;
				for (int s = 0; s < ns; s++)
					if (sched[s] > longest)
						longest = sched[s];
				if (cfg.mask != OP_MASK_NONE && longest > maxchunk) {
					CHECK_MSG(rc == TL_EINVAL, "%s: a too long chunk passed", what);
					CHECK_CONTAINS(err.msg, "a shared ring needs cap >= len + T - 1");
				} else {
					CHECK_MSG(rc == 0 && t == T, "%s: %s", what, err.msg);
					ref_attn(ref, q2, k, own_v ? v2 : v, &cfg, T, false);
					CHECK_MSG(rc == 0 && near_d(what, y2, ref, nq, tol_f32), "%s", what);
				}
				free(q1);
				free(q2);
				free(k);
				free(v);
				free(v2);
				free(y1);
				free(y2);
				free(ref);
				free(m1);
				free(m2);
				free(m3);
			}
}

/* Contract violations are reported, not computed around. */
static void test_attn_errors(void)
{
	float q[3 * 4] = {0}, k[3 * 4] = {0}, y[3 * 4];
	float mem1[64], mem2[64];
	op_kv_cache kc, vc;
	op_attn_cfg cfg = {1, 1, 4, OP_MASK_WINDOW, 2, OP_NL_SOFTMAX};
	tl_err err = TL_ERR_INIT;
	/* a shared ring of exactly the window cannot serve a 3-token chunk */
	op_kv_cache_init(&kc, mem1, OP_KV_F32, 1, 4, 2);
	op_kv_cache_init(&vc, mem2, OP_KV_F32, 1, 4, 2);
	CHECK(op_attn_prefill(y, q, k, k, &kc, &vc, &cfg, 3, 0, &err) == 0); /* tiles of 1 */
	CHECK(kc.n == 3);
	tl_err_clear(&err);
	CHECK(op_attn_prefill(y, q, NULL, NULL, &kc, &vc, &cfg, 3, 0, &err) == TL_EINVAL);
	CHECK_CONTAINS(err.msg, "shared K cache");
	/* but a step after the owner's step can */
	tl_err_clear(&err);
	CHECK(op_attn_step(y, q, k, k, &kc, &vc, &cfg, 3, &err) == 0);
	CHECK(op_attn_step(y, q, NULL, NULL, &kc, &vc, &cfg, 3, &err) == 0);
	/* appending at the wrong position */
	tl_err_clear(&err);
	CHECK(op_attn_step(y, q, k, k, &kc, &vc, &cfg, 7, &err) == TL_EINVAL);
	CHECK_CONTAINS(err.msg, "holds 4 positions, chunk starts at 7");
	/* a full cache too small */
	tl_err_clear(&err);
	cfg.mask = OP_MASK_NONE;
	op_kv_cache_init(&kc, mem1, OP_KV_F32, 1, 4, 2);
	op_kv_cache_init(&vc, mem2, OP_KV_F32, 1, 4, 2);
	CHECK(op_attn_prefill(y, q, k, k, &kc, &vc, &cfg, 3, 0, &err) == TL_EINVAL);
	CHECK_CONTAINS(err.msg, "the chunk needs 3");
	CHECK(kc.n == 0);
	/* shapes */
	tl_err_clear(&err);
	op_attn_cfg bad = {3, 2, 4, OP_MASK_NONE, 0, OP_NL_SOFTMAX};
	CHECK(op_attn_step(y, q, k, k, &kc, &vc, &bad, 0, &err) == TL_EINVAL);
	CHECK_CONTAINS(err.msg, "kv_heads must divide heads");
	tl_err_clear(&err);
	bad = (op_attn_cfg){1, 1, 4, OP_MASK_NONE, 0, OP_NL_SILU};
	CHECK(op_attn_step(y, q, k, k, &kc, &vc, &bad, 0, &err) == TL_EINVAL);
	tl_err_clear(&err);
	bad = (op_attn_cfg){1, 1, 4, OP_MASK_BLOCK, 0, OP_NL_SOFTMAX};
	CHECK(op_attn_step(y, q, k, k, &kc, &vc, &bad, 0, &err) == TL_EINVAL);
	tl_err_clear(&err);
	CHECK(op_kv_cache_read(y, &kc, 5, &err) == TL_EINVAL);
	CHECK_CONTAINS(err.msg, "not held");
}

/* ---- attention: fast path against the reference, ranges, threads ------------ */

/* As run_attn, by the reference functions (ref) or the fast ones. */
static int run_attn_by(float *y, const float *q, const float *k, const float *v,
                       const op_attn_cfg *cfg, int type, int64_t cap, int T, const int *sched,
                       int nsched, bool ref, tl_err *err)
{
	int H = cfg->heads, KV = cfg->kv_heads, hd = cfg->head_dim;
	size_t qrow = (size_t)H * hd, kvrow = (size_t)KV * hd;
	size_t bytes = op_kv_cache_bytes(type, KV, hd, cap);
	void *km = xmalloc(bytes), *vm = xmalloc(bytes);
	op_kv_cache kc, vc;
	op_kv_cache_init(&kc, km, type, KV, hd, cap);
	op_kv_cache_init(&vc, vm, type, KV, hd, cap);
	int t = 0, rc = 0;
	for (int s = 0; s < nsched && rc == 0; s++) {
		if (sched[s] > 0) {
			int n = sched[s];
			rc = (ref ? op_attn_prefill_ref : op_attn_prefill)(y + t * qrow, q + t * qrow,
			                                                   k + t * kvrow, v + t * kvrow,
			                                                   &kc, &vc, cfg, n, t, err);
			t += n;
		} else {
			for (int i = 0; i < -sched[s] && rc == 0; i++, t++)
				rc = (ref ? op_attn_step_ref : op_attn_step)(y + t * qrow, q + t * qrow,
				                                             k + t * kvrow, v + t * kvrow, &kc,
				                                             &vc, cfg, t, err);
		}
	}
	if (rc == 0 && (t != T || kc.n != T || vc.n != T))
		rc = tl_err_set(err, TL_EFAIL, "schedule covered %d of %d tokens", t, T);
	free(km);
	free(vm);
	return rc;
}

/* The SIMD path on odd head dims (vector tails), groups of 1 to 12 heads (one
 * query per tile, several, a tile smaller than a group), lengths that cross
 * key blocks, every mask: fast and reference both within tolerance of the
 * double reference; each path bit-identical across forms and ring sizes. */
static void test_attn_fast(tl_rng *r)
{
	const int hds[] = {1, 3, 7, 17, 33, 64, 65};
	const int groups[][2] = {{1, 1}, {2, 1}, {6, 2}, {9, 3}, {12, 1}}; /* H, KV */
	const int masks[][2] = {{OP_MASK_NONE, 0}, {OP_MASK_WINDOW, 5}, {OP_MASK_WINDOW, 19},
	                        {OP_MASK_BLOCK, 7}, {OP_MASK_BLOCK, 16}};
	const int lens[] = {1, 5, 16, 17, 40};
	int sched[64];
	int runs = 0;
	fprintf(stderr, "attention fast path: %s\n", op_attn_isa());
	for (int hi = 0; hi < 7; hi++)
		for (int gi = 0; gi < 5; gi++)
			for (int li = 0; li < 5; li++) {
				int mi = (hi + gi + li) % 5, nl = (hi + li) % 4 == 3; /* a spread, not all */
				op_attn_cfg cfg = {groups[gi][0], groups[gi][1], hds[hi], masks[mi][0],
				                   masks[mi][1], nl ? OP_NL_SIGMOID : OP_NL_SOFTMAX};
				int T = lens[li], H = cfg.heads, KV = cfg.kv_heads, hd = cfg.head_dim;
				double sc = li == 4 && hi < 3 ? 10.0 : 1.0; /* large logits too */
				size_t nq = (size_t)T * H * hd, nk = (size_t)T * KV * hd;
				float *q = randn(r, nq, sc), *k = randn(r, nk, 1.0), *v = randn(r, nk, 1.0);
				double *ref = xmalloc(nq * sizeof(double));
				float *y = xmalloc(nq * sizeof(float)), *y0 = xmalloc(nq * sizeof(float));
				float *yr = xmalloc(nq * sizeof(float)), *yr0 = xmalloc(nq * sizeof(float));
				for (int type = 0; type < 2; type++) {
					ref_attn(ref, q, k, v, &cfg, T, type == OP_KV_F16);
					int64_t pos = op_attn_cache_positions(cfg.mask, cfg.len, T);
					int64_t caps[2] = {T, cfg.mask == OP_MASK_NONE ? T : pos + 1};
					for (int ci = 0; ci < 2; ci++)
						for (int sk = 0; sk < SCHED_N; sk++) {
							int ns = make_sched(sched, sk, T, r);
							tl_err err = TL_ERR_INIT;
							char what[160];
							snprintf(what, sizeof what,
							         "fast attn H=%d KV=%d hd=%d mask=%d len=%d %s %s T=%d "
							         "cap=%lld %s", H, KV, hd, cfg.mask, cfg.len,
							         nl ? "sigmoid" : "softmax", type ? "f16" : "f32", T,
							         (long long)caps[ci], sched_names[sk]);
							int rc = run_attn_by(y, q, k, v, &cfg, type, caps[ci], T, sched, ns,
							                     false, &err);
							CHECK_MSG(rc == 0, "%s: %s", what, err.msg);
							rc |= run_attn_by(yr, q, k, v, &cfg, type, caps[ci], T, sched, ns,
							                  true, &err);
							CHECK_MSG(rc == 0, "%s (ref): %s", what, err.msg);
							if (rc)
								continue;
							runs++;
							CHECK_MSG(near_d(what, y, ref, nq, tol_f32), "%s", what);
							CHECK_MSG(near_d(what, yr, ref, nq, tol_f32), "%s (ref)", what);
							/* fast against the scalar reference directly */
							CHECK_MSG(near_f(what, y, yr, nq, tol_f32), "%s vs ref", what);
							if (ci == 0 && sk == SCHED_FULL) {
								memcpy(y0, y, nq * sizeof(float));
								memcpy(yr0, yr, nq * sizeof(float));
							} else {
								CHECK_MSG(same_bits(what, y, y0, nq), "%s = prefill", what);
								CHECK_MSG(same_bits(what, yr, yr0, nq), "%s = prefill (ref)",
								          what);
							}
						}
				}
				free(q);
				free(k);
				free(v);
				free(ref);
				free(y);
				free(y0);
				free(yr);
				free(yr0);
			}
	CHECK(runs > 1000);
}

/* Decode deep into a cache (many blocks, a ring that wraps mid-block) and a
 * long prefill, LFM2's shape (GQA 16 / 8, hd 64): fast vs reference. */
static void test_attn_deep(tl_rng *r)
{
	const int masks[][2] = {{OP_MASK_NONE, 0}, {OP_MASK_WINDOW, 100}};
	for (int mi = 0; mi < 2; mi++)
		for (int type = 0; type < 2; type++) {
			op_attn_cfg cfg = {16, 8, 64, masks[mi][0], masks[mi][1], OP_NL_SOFTMAX};
			int T = 300, P = 230, H = 16, KV = 8, hd = 64;
			size_t qrow = (size_t)H * hd, nq = (size_t)T * qrow, nk = (size_t)T * KV * hd;
			float *q = randn(r, nq, 2.0), *k = randn(r, nk, 1.0), *v = randn(r, nk, 1.0);
			float *y = xmalloc(nq * sizeof(float)), *yr = xmalloc(nq * sizeof(float));
			int64_t cap = cfg.mask == OP_MASK_NONE ? T : cfg.len + 7;
			int sched[2] = {P, -(T - P)};
			tl_err err = TL_ERR_INIT;
			CHECK(run_attn_by(y, q, k, v, &cfg, type, cap, T, sched, 2, false, &err) == 0);
			CHECK(run_attn_by(yr, q, k, v, &cfg, type, cap, T, sched, 2, true, &err) == 0);
			char what[64];
			snprintf(what, sizeof what, "deep mask=%d type=%d", cfg.mask, type);
			CHECK_MSG(near_f(what, y, yr, nq, tol_f32), "%s", what);
			/* the decode steps alone, tighter: max |diff| relative to max |y| */
			double mx = 0, md = 0;
			for (size_t i = (size_t)P * qrow; i < nq; i++) {
				double a = fabs((double)yr[i]), d = fabs((double)y[i] - yr[i]);
				if (a > mx)
					mx = a;
				if (d > md)
					md = d;
			}
			CHECK_MSG(md <= 1e-5 * (1 + mx), "%s: decode max|diff| %.3g (max|y| %.3g)", what,
			          md, mx);
			free(q);
			free(k);
			free(v);
			free(y);
			free(yr);
		}
}

/* Thread splits: op_attn_append once, then the attention by KV-head ranges
 * (every partition of 0..KV into contiguous ranges, run in reverse order),
 * by op_attn_job_run for 1..5 threads (run one after the other) and on a
 * real pool: all bit-identical to op_attn_prefill / op_attn_step. A range
 * writes only its own heads. */
static void test_attn_ranges(tl_rng *r)
{
	const int shapes[][3] = {{8, 4, 17}, {16, 8, 64}, {3, 1, 5}, {6, 3, 33}}; /* H, KV, hd */
	const int masks[][2] = {{OP_MASK_NONE, 0}, {OP_MASK_WINDOW, 6}, {OP_MASK_BLOCK, 5}};
	op_pool *pool = NULL;
	tl_err perr = TL_ERR_INIT;
	CHECK_MSG(op_pool_create(&pool, 3, &perr) == 0, "%s", perr.msg);
	for (int si = 0; si < 4; si++)
		for (int mi = 0; mi < 3; mi++)
			for (int type = 0; type < 2; type++) {
				op_attn_cfg cfg = {shapes[si][0], shapes[si][1], shapes[si][2], masks[mi][0],
				                   masks[mi][1], mi == 2 && si == 0 ? OP_NL_SIGMOID
				                                                    : OP_NL_SOFTMAX};
				int H = cfg.heads, KV = cfg.kv_heads, hd = cfg.head_dim, G = H / KV;
				int P = 19, T = 23, N = P + T + 2; /* prefix, a chunk, two steps */
				size_t qrow = (size_t)H * hd, kvrow = (size_t)KV * hd, nq = (size_t)N * qrow;
				float *q = randn(r, nq, 1), *k = randn(r, (size_t)N * kvrow, 1);
				float *v = randn(r, (size_t)N * kvrow, 1);
				float *yw = xmalloc(nq * sizeof(float)), *y = xmalloc(nq * sizeof(float));
				/* a ring that holds the window plus a chunk, or everything */
				int64_t cap = cfg.mask == OP_MASK_WINDOW ? cfg.len + T - 1 : N;
				size_t bytes = op_kv_cache_bytes(type, KV, hd, cap);
				void *m1 = xmalloc(bytes), *m2 = xmalloc(bytes);
				op_kv_cache kc, vc;
				tl_err err = TL_ERR_INIT;
				char what[96];
				snprintf(what, sizeof what, "ranges H=%d KV=%d hd=%d mask=%d type=%d", H, KV, hd,
				         cfg.mask, type);
				/* whole calls */
				op_kv_cache_init(&kc, m1, type, KV, hd, cap);
				op_kv_cache_init(&vc, m2, type, KV, hd, cap);
				int rc = op_attn_prefill(yw, q, k, v, &kc, &vc, &cfg, P, 0, &err);
				rc |= op_attn_prefill(yw + P * qrow, q + P * qrow, k + P * kvrow, v + P * kvrow,
				                      &kc, &vc, &cfg, T, P, &err);
				for (int t = P + T; t < N; t++)
					rc |= op_attn_step(yw + t * qrow, q + t * qrow, k + t * kvrow,
					                   v + t * kvrow, &kc, &vc, &cfg, t, &err);
				CHECK_MSG(rc == 0, "%s: %s", what, err.msg);
				/* splits: ways 0 .. 2^(KV-1)-1 are the partitions into ranges
				 * (bit b set: a range ends after head b), then the job for
				 * nth = 1..5, then the pool */
				int nways = 1 << (KV - 1);
				for (int w = 0; w < nways + 6 && rc == 0; w++) {
					op_kv_cache_init(&kc, m1, type, KV, hd, cap);
					op_kv_cache_init(&vc, m2, type, KV, hd, cap);
					for (size_t i = 0; i < nq; i++)
						y[i] = NAN;
					int spans[3][2] = {{0, P}, {P, T}, {P + T, 1}};
					for (int c = 0; c < 4 && rc == 0; c++) {
						int t0 = c < 3 ? spans[c][0] : P + T + 1, n = c < 3 ? spans[c][1] : 1;
						int a = op_attn_append(&kc, &vc, k + t0 * kvrow, v + t0 * kvrow, &cfg,
						                       n, t0, &err);
						CHECK_MSG(a == n, "%s: append %d of %d: %s", what, a, n, err.msg);
						if (a != n) {
							rc = -1;
							break;
						}
						float *yc = y + t0 * qrow;
						const float *qc = q + t0 * qrow;
						if (w < nways) {
							/* ranges from the last to the first */
							int ends[64], ne = 0;
							for (int b = 0; b < KV - 1; b++)
								if (w >> b & 1)
									ends[ne++] = b + 1;
							ends[ne++] = KV;
							for (int e = ne - 1; e >= 0; e--) {
								int kv0 = e ? ends[e - 1] : 0, kv1 = ends[e];
								rc |= n == 1 ? op_attn_step_range(yc, qc, &kc, &vc, &cfg, t0,
								                                  kv0, kv1, &err)
								             : op_attn_prefill_range(yc, qc, &kc, &vc, &cfg, n,
								                                     t0, kv0, kv1, &err);
								/* only heads kv0*G .. kv1*G-1 written so far for
								 * this chunk: the rest of the first query's row
								 * is still NaN */
								if (e == ne - 1 && kv0 > 0)
									CHECK_MSG(isnan(yc[(size_t)(kv0 * G - 1) * hd]) &&
									              !isnan(yc[(size_t)kv0 * G * hd]),
									          "%s: range %d..%d wrote outside", what, kv0, kv1);
							}
						} else if (w < nways + 5) {
							int nth = w - nways + 1;
							op_attn_job job = {yc, qc, &kc, &vc, &cfg, n, t0};
							for (int ith = nth - 1; ith >= 0; ith--)
								op_attn_job_run(&job, ith, nth);
						} else {
							op_attn_job job = {yc, qc, &kc, &vc, &cfg, n, t0};
							op_pool_run(pool, op_attn_job_run, &job);
						}
					}
					CHECK_MSG(rc == 0, "%s way %d: %s", what, w, err.msg);
					CHECK_MSG(rc == 0 && same_bits(what, y, yw, nq), "%s: way %d = whole calls",
					          what, w);
				}
				free(q);
				free(k);
				free(v);
				free(yw);
				free(y);
				free(m1);
				free(m2);
			}
	op_pool_free(pool);

	/* errors */
	float q[8 * 4] = {0}, k[4 * 4] = {0}, y[8 * 4];
	float mem1[4 * 4 * 4], mem2[4 * 4 * 4];
	op_kv_cache kc, vc;
	op_attn_cfg cfg = {2, 1, 4, OP_MASK_WINDOW, 2, OP_NL_SOFTMAX};
	tl_err err = TL_ERR_INIT;
	op_kv_cache_init(&kc, mem1, OP_KV_F32, 1, 4, 2);
	op_kv_cache_init(&vc, mem2, OP_KV_F32, 1, 4, 2);
	/* a ring of exactly the window: a first tile of two positions (query
	 * 1 still sees key 0), then one at a time */
	CHECK_EQ_INT(op_attn_append(&kc, &vc, k, k, &cfg, 3, 0, &err), 2);
	CHECK_EQ_INT(op_attn_append(&kc, &vc, k + 8, k + 8, &cfg, 1, 2, &err), 1);
	CHECK_EQ_INT(op_attn_append(&kc, &vc, k, k, &cfg, 0, 3, &err), 0);
	CHECK(kc.n == 3 && vc.n == 3);
	CHECK(op_attn_step_range(y, q, &kc, &vc, &cfg, 2, 0, 1, &err) == 0);
	/* the range reads what is held only */
	tl_err_clear(&err);
	CHECK(op_attn_prefill_range(y, q, &kc, &vc, &cfg, 3, 0, 0, 1, &err) == TL_EINVAL);
	tl_err_clear(&err);
	CHECK(op_attn_step_range(y, q, &kc, &vc, &cfg, 3, 0, 1, &err) == TL_EINVAL);
	tl_err_clear(&err);
	CHECK(op_attn_step_range(y, q, &kc, &vc, &cfg, 2, 0, 2, &err) == TL_EINVAL);
	CHECK_CONTAINS(err.msg, "KV heads 0..1");
	tl_err_clear(&err);
	CHECK(op_attn_step_range(y, q, &kc, &vc, &cfg, 2, 1, 0, &err) == TL_EINVAL);
	/* the append checks what op_attn_prefill checks, before writing */
	tl_err_clear(&err);
	CHECK(op_attn_append(&kc, &vc, k, k, &cfg, 1, 7, &err) == TL_EINVAL);
	CHECK_CONTAINS(err.msg, "holds 3 positions, chunk starts at 7");
	tl_err_clear(&err);
	CHECK(op_attn_append(&kc, &kc, k, k, &cfg, 1, 3, &err) == TL_EINVAL);
	CHECK(kc.n == 3);
	tl_err_clear(&err);
	cfg.mask = OP_MASK_NONE;
	CHECK(op_attn_append(&kc, &vc, k, k, &cfg, 1, 3, &err) == TL_EINVAL);
	CHECK_CONTAINS(err.msg, "the chunk needs 4");
	CHECK(kc.n == 3 && vc.n == 3);
	CHECK(op_attn_append(&kc, &vc, NULL, NULL, &cfg, 1, 2, &err) == TL_EINVAL);
}

/* ---- low-rank ---------------------------------------------------------------- */

static double d_phi(double x, int nl)
{
	return nl == OP_NL_POSFEAT ? (x > 0 ? x + 1 : exp(x)) : x;
}

static void ref_linattn(double *y, double *state, const float *q, const float *k, const float *v,
                        const op_linattn_cfg *cfg, int T)
{
	int H = cfg->heads, KV = cfg->kv_heads, hd = cfg->head_dim, G = H / KV, nl = cfg->nonlin;
	double *Tm = xmalloc((size_t)T * T * sizeof(double));
	for (int h = 0; h < H; h++) {
		int g = h / G;
		for (int i = 0; i < T; i++)
			for (int j = 0; j < T; j++) {
				double s = 0;
				for (int a = 0; a < hd && j <= i; a++)
					s += d_phi(q[((size_t)i * H + h) * hd + a], nl) *
					     d_phi(k[((size_t)j * KV + g) * hd + a], nl);
				Tm[i * T + j] = s; /* 0 above the diagonal */
			}
		for (int i = 0; i < T; i++) {
			double den = 0;
			for (int j = 0; j < T; j++)
				den += Tm[i * T + j];
			for (int b = 0; b < hd; b++) {
				double acc = 0;
				for (int j = 0; j < T; j++)
					acc += Tm[i * T + j] * v[((size_t)j * KV + g) * hd + b];
				y[((size_t)i * H + h) * hd + b] =
					nl == OP_NL_POSFEAT ? acc / (den + OP_LINATTN_EPS) : acc;
			}
		}
	}
	/* state per KV head: sum_j phi(k_j) (v_j, 1)^T */
	for (int g = 0; g < KV; g++)
		for (int a = 0; a < hd; a++)
			for (int b = 0; b <= hd; b++) {
				double acc = 0;
				for (int j = 0; j < T; j++)
					acc += d_phi(k[((size_t)j * KV + g) * hd + a], nl) *
					       (b < hd ? v[((size_t)j * KV + g) * hd + b] : 1.0);
				state[((size_t)g * hd + a) * (hd + 1) + b] = acc;
			}
	free(Tm);
}

static void test_linattn(tl_rng *r)
{
	const int shapes[][3] = {{3, 1, 5}, {3, 3, 7}, {2, 2, 1}};
	const int Tl[] = {1, 3, 7, 17, 33, 70};
	int sched[128];
	for (int si = 0; si < 3; si++)
		for (int nl = 0; nl < 2; nl++)
			for (int ti = 0; ti < 6; ti++) {
				op_linattn_cfg cfg = {shapes[si][0], shapes[si][1], shapes[si][2],
				                      nl ? OP_NL_NONE : OP_NL_POSFEAT};
				int T = Tl[ti], H = cfg.heads, KV = cfg.kv_heads, hd = cfg.head_dim;
				size_t nq = (size_t)T * H * hd, nk = (size_t)T * KV * hd;
				size_t sb = op_linattn_state_bytes(&cfg), sn = sb / sizeof(float);
				CHECK(sb == (size_t)KV * hd * (hd + 1) * 4);
				float *q = randn(r, nq, 1), *k = randn(r, nk, 1), *v = randn(r, nk, 1);
				float *y = xmalloc(nq * sizeof(float)), *y0 = xmalloc(nq * sizeof(float));
				float *st = xmalloc(sb), *st0 = xmalloc(sb);
				void *scratch = xmalloc(op_linattn_scratch_bytes(&cfg));
				double *ref = xmalloc(nq * sizeof(double)), *rst = xmalloc(sn * sizeof(double));
				ref_linattn(ref, rst, q, k, v, &cfg, T);
				for (int sk = 0; sk < SCHED_N; sk++) {
					int ns = make_sched(sched, sk, T, r), t = 0;
					memset(st, 0, sb);
					for (int s = 0; s < ns; s++) {
						size_t qo = (size_t)t * H * hd, ko = (size_t)t * KV * hd;
						if (sched[s] > 0) {
							op_linattn_prefill(y + qo, q + qo, k + ko, v + ko, st, &cfg,
							                   sched[s], scratch);
							t += sched[s];
						} else {
							for (int i = 0; i < -sched[s]; i++, t++)
								op_linattn_step(y + (size_t)t * H * hd,
								                q + (size_t)t * H * hd,
								                k + (size_t)t * KV * hd,
								                v + (size_t)t * KV * hd, st, &cfg);
						}
					}
					char what[128];
					snprintf(what, sizeof what, "linattn H=%d KV=%d hd=%d %s T=%d %s", H, KV, hd,
					         nl ? "none" : "posfeat", T, sched_names[sk]);
					CHECK(t == T);
					CHECK_MSG(near_d(what, y, ref, nq, tol_f32), "%s", what);
					CHECK_MSG(near_d(what, st, rst, sn, tol_f32), "%s: state", what);
					if (sk == SCHED_FULL) {
						memcpy(y0, y, nq * sizeof(float));
						memcpy(st0, st, sb);
					} else {
						CHECK_MSG(near_f(what, y, y0, nq, tol_form), "%s = prefill", what);
						CHECK_MSG(near_f(what, st, st0, sn, tol_form), "%s = prefill state",
						          what);
					}
				}
				/* a layer sharing K and V reads the owner's updated state */
				memset(st, 0, sb);
				float *y2 = xmalloc(nq * sizeof(float)), *yo = xmalloc(nq * sizeof(float));
				for (int t = 0; t < T; t++) {
					size_t qo = (size_t)t * H * hd, ko = (size_t)t * KV * hd;
					op_linattn_step(yo + qo, q + qo, k + ko, v + ko, st, &cfg);
					op_linattn_step_shared(y2 + qo, q + qo, st, &cfg);
				}
				CHECK_MSG(same_bits("linattn shared", y2, yo, nq), "linattn step_shared");
				free(y2);
				free(yo);
				free(q);
				free(k);
				free(v);
				free(y);
				free(y0);
				free(st);
				free(st0);
				free(scratch);
				free(ref);
				free(rst);
			}
}

/* ---- semi-separable ------------------------------------------------------------ */

static void ref_ssm(double *y, double *state, const float *C, const float *B, const float *V,
                    const float *A, const op_ssm_cfg *cfg, int T)
{
	int NH = cfg->heads, N = cfg->n, P = cfg->p;
	double *Tm = xmalloc((size_t)T * T * sizeof(double));
	double *la = xmalloc((size_t)T * sizeof(double));
	for (int h = 0; h < NH; h++) {
		for (int t = 0; t < T; t++)
			la[t] = -d_softplus(A[(size_t)t * NH + h]);
		/* T[i][j] = (c_i . B_j) a_i ... a_{j+1} */
		for (int i = 0; i < T; i++)
			for (int j = 0; j < T; j++) {
				double s = 0, ls = 0;
				if (j > i) {
					Tm[i * T + j] = 0;
					continue;
				}
				for (int n = 0; n < N; n++) {
					double c = C[((size_t)i * NH + h) * N + n];
					if (cfg->nonlin == OP_NL_SILU)
						c *= d_sigmoid(c);
					s += c * B[((size_t)j * NH + h) * N + n];
				}
				for (int m = j + 1; m <= i; m++)
					ls += la[m];
				Tm[i * T + j] = s * exp(ls);
			}
		for (int i = 0; i < T; i++)
			for (int p = 0; p < P; p++) {
				double acc = 0;
				for (int j = 0; j <= i; j++)
					acc += Tm[i * T + j] * V[((size_t)j * NH + h) * P + p];
				y[((size_t)i * NH + h) * P + p] = acc;
			}
		/* H_T = sum_j a_{T-1} ... a_{j+1} B_j^T V_j */
		for (int n = 0; n < N; n++)
			for (int p = 0; p < P; p++) {
				double acc = 0;
				for (int j = 0; j < T; j++) {
					double ls = 0;
					for (int m = j + 1; m < T; m++)
						ls += la[m];
					acc += exp(ls) * B[((size_t)j * NH + h) * N + n] *
					       V[((size_t)j * NH + h) * P + p];
				}
				state[((size_t)h * N + n) * P + p] = acc;
			}
	}
	free(Tm);
	free(la);
}

static void test_ssm(tl_rng *r)
{
	const int shapes[][3] = {{3, 5, 7}, {1, 1, 1}, {2, 4, 3}};
	const int Tl[] = {1, 3, 7, 17, 33, 70};
	int sched[128];
	for (int si = 0; si < 3; si++)
		for (int nl = 0; nl < 2; nl++)
			for (int ti = 0; ti < 6; ti++) {
				op_ssm_cfg cfg = {shapes[si][0], shapes[si][1], shapes[si][2],
				                  nl ? OP_NL_SILU : OP_NL_NONE};
				int T = Tl[ti], NH = cfg.heads, N = cfg.n, P = cfg.p;
				size_t ncb = (size_t)T * NH * N, nv = (size_t)T * NH * P;
				size_t sb = op_ssm_state_bytes(&cfg), sn = sb / sizeof(float);
				CHECK(sb == (size_t)NH * N * P * 4);
				float *C = randn(r, ncb, 1), *B = randn(r, ncb, 1), *V = randn(r, nv, 1);
				/* decays from ~0 to ~1, some near 1 so history matters */
				float *A = randn(r, (size_t)T * NH, 2.0);
				for (int i = 0; i < T * NH; i++)
					A[i] -= 2.0f;
				float *y = xmalloc(nv * sizeof(float)), *y0 = xmalloc(nv * sizeof(float));
				float *st = xmalloc(sb), *st0 = xmalloc(sb);
				void *scratch = xmalloc(op_ssm_scratch_bytes(&cfg));
				double *ref = xmalloc(nv * sizeof(double)), *rst = xmalloc(sn * sizeof(double));
				ref_ssm(ref, rst, C, B, V, A, &cfg, T);
				for (int sk = 0; sk < SCHED_N; sk++) {
					int ns = make_sched(sched, sk, T, r), t = 0;
					memset(st, 0, sb);
					for (int s = 0; s < ns; s++) {
						int n = sched[s] > 0 ? sched[s] : 1, reps = sched[s] > 0 ? 1 : -sched[s];
						for (int i = 0; i < reps; i++, t += n) {
							size_t co = (size_t)t * NH * N, vo = (size_t)t * NH * P;
							if (sched[s] > 0)
								op_ssm_prefill(y + vo, C + co, B + co, V + vo,
								               A + (size_t)t * NH, st, &cfg, n, scratch);
							else
								op_ssm_step(y + vo, C + co, B + co, V + vo,
								            A + (size_t)t * NH, st, &cfg);
						}
					}
					char what[128];
					snprintf(what, sizeof what, "ssm heads=%d N=%d P=%d %s T=%d %s", NH, N, P,
					         nl ? "silu" : "none", T, sched_names[sk]);
					CHECK(t == T);
					CHECK_MSG(near_d(what, y, ref, nv, tol_f32), "%s", what);
					CHECK_MSG(near_d(what, st, rst, sn, tol_f32), "%s: state", what);
					if (sk == SCHED_FULL) {
						memcpy(y0, y, nv * sizeof(float));
						memcpy(st0, st, sb);
					} else {
						CHECK_MSG(near_f(what, y, y0, nv, tol_form), "%s = prefill", what);
						CHECK_MSG(near_f(what, st, st0, sn, tol_form), "%s = prefill state",
						          what);
					}
				}
				free(C);
				free(B);
				free(V);
				free(A);
				free(y);
				free(y0);
				free(st);
				free(st0);
				free(scratch);
				free(ref);
				free(rst);
			}
}

/* ---- scaled Toeplitz and the featurizer conv ------------------------------------ */

/* The kernel tap at lag d >= 0 of channel c: K_d = w[c][L-1-d]. */
static double conv_tap(const float *w, int c, int L, int d, bool unit)
{
	if (d < 0 || d >= L)
		return 0;
	if (unit) /* L == 1 gated conv: no inner conv */
		return d == 0 ? 1.0 : 0.0;
	return w[(size_t)c * L + (L - 1 - d)];
}

/* y = T x per channel: gated (Toeplitz), T[i][j] = C_i K_{i-j} B_j applied to
 * V; featurizer (C = B = NULL), T[i][j] = K_{i-j} applied to x = V. */
static void ref_conv(double *y, const float *C, const float *B, const float *V, const float *w,
                     int T, int W, int L, bool unit)
{
	double *Tm = xmalloc((size_t)T * T * sizeof(double));
	for (int c = 0; c < W; c++) {
		for (int i = 0; i < T; i++)
			for (int j = 0; j < T; j++) {
				double t = conv_tap(w, c, L, i - j, unit);
				if (C)
					t *= (double)C[(size_t)i * W + c] * B[(size_t)j * W + c];
				Tm[i * T + j] = t;
			}
		for (int i = 0; i < T; i++) {
			double acc = 0;
			for (int j = 0; j < T; j++)
				acc += Tm[i * T + j] * V[(size_t)j * W + c];
			y[(size_t)i * W + c] = acc;
		}
	}
	free(Tm);
}

static void test_conv(tl_rng *r)
{
	const int Ws[] = {1, 5, 13};
	const int Ls[] = {1, 2, 3, 4, 7};
	int sched[64];
	for (int gated = 0; gated < 2; gated++)
		for (int wi = 0; wi < 3; wi++)
			for (int li = 0; li < 5; li++)
				for (int ti = 0; ti < NTS; ti++) {
					int W = Ws[wi], L = Ls[li], T = Ts[ti];
					size_t n = (size_t)T * W;
					size_t sb = gated ? op_shortconv_state_bytes(W, L) : op_fconv_state_bytes(W, L);
					CHECK(sb == (size_t)(L - 1) * W * 4);
					float *C = randn(r, n, 1), *B = randn(r, n, 1), *V = randn(r, n, 1);
					float *w = randn(r, (size_t)W * L, 1);
					float *y = xmalloc(n * sizeof(float)), *y0 = xmalloc(n * sizeof(float));
					float *st = xmalloc(sb + 4), *want = xmalloc(sb + 4);
					double *ref = xmalloc(n * sizeof(double));
					bool unit = gated && L == 1;
					ref_conv(ref, gated ? C : NULL, gated ? B : NULL, V, w, T, W, L, unit);
					/* the state after T tokens: the last L-1 rows of u
					 * (zeros before the start) */
					for (int q = 0; q < L - 1; q++)
						for (int c = 0; c < W; c++) {
							int src = T - (L - 1) + q;
							size_t i = (size_t)src * W + c;
							want[(size_t)q * W + c] =
								src < 0 ? 0.0f : gated ? B[i] * V[i] : V[i];
						}
					for (int sk = 0; sk < SCHED_N; sk++) {
						int ns = make_sched(sched, sk, T, r), t = 0;
						memset(st, 0, sb + 4);
						for (int s = 0; s < ns; s++) {
							int m = sched[s] > 0 ? sched[s] : 1, reps = sched[s] > 0 ? 1 : -sched[s];
							for (int i = 0; i < reps; i++, t += m) {
								size_t o = (size_t)t * W;
								const float *wk = unit ? NULL : w;
								if (gated && sched[s] > 0)
									op_shortconv_prefill(y + o, C + o, B + o, V + o, wk, st, m, W,
									                     L);
								else if (gated)
									op_shortconv_step(y + o, C + o, B + o, V + o, wk, st, W, L);
								else if (sched[s] > 0)
									op_fconv_prefill(y + o, V + o, w, st, m, W, L);
								else
									op_fconv_step(y + o, V + o, w, st, W, L);
							}
						}
						char what[96];
						snprintf(what, sizeof what, "%s W=%d L=%d T=%d %s",
						         gated ? "shortconv" : "fconv", W, L, T, sched_names[sk]);
						CHECK(t == T);
						CHECK_MSG(near_d(what, y, ref, n, tol_f32), "%s", what);
						CHECK_MSG(same_bits(what, st, want, sb / 4), "%s: state", what);
						if (sk == SCHED_FULL)
							memcpy(y0, y, n * sizeof(float));
						else
							CHECK_MSG(same_bits(what, y, y0, n), "%s = prefill", what);
					}
					/* the gated conv may write its output over C */
					if (gated) {
						float *yc = xmalloc(n * sizeof(float));
						memcpy(yc, C, n * sizeof(float));
						memset(st, 0, sb + 4);
						op_shortconv_prefill(yc, yc, B, V, unit ? NULL : w, st, T, W, L);
						CHECK_MSG(same_bits("shortconv y=C", yc, y0, n), "shortconv W=%d L=%d T=%d y = C",
						          W, L, T);
						free(yc);
					}
					/* the check can fail: the kernel the other way round
					 * (w[c][0] on the current token) must not match */
					if (L >= 2 && W == 5 && T == 17 && !gated) {
						float *wr = xmalloc((size_t)W * L * sizeof(float));
						for (int c = 0; c < W; c++)
							for (int k = 0; k < L; k++)
								wr[(size_t)c * L + k] = w[(size_t)c * L + (L - 1 - k)];
						memset(st, 0, sb + 4);
						op_fconv_prefill(y, V, wr, st, T, W, L);
						fprintf(stderr, "(expected mismatch follows)\n");
						CHECK_MSG(!near_d("fconv reversed", y, ref, n, tol_f32),
						          "a reversed kernel passed W=%d L=%d T=%d", W, L, T);
						free(wr);
					}
					free(C);
					free(B);
					free(V);
					free(w);
					free(y);
					free(y0);
					free(st);
					free(want);
					free(ref);
				}
}

/* ---- the comparisons can fail ---------------------------------------------------- */

static void test_can_fail(tl_rng *r)
{
	/* a window one token too wide is caught by the materialized check */
	op_attn_cfg cfg = {3, 1, 5, OP_MASK_WINDOW, 4, OP_NL_SOFTMAX}, wide = cfg;
	wide.len = 5;
	int T = 17;
	size_t nq = (size_t)T * 15, nk = (size_t)T * 5;
	float *q = randn(r, nq, 1), *k = randn(r, nk, 1), *v = randn(r, nk, 1);
	float *y = xmalloc(nq * sizeof(float));
	double *ref = xmalloc(nq * sizeof(double));
	tl_err err = TL_ERR_INIT;
	ref_attn(ref, q, k, v, &cfg, T, false);
	CHECK(run_attn(y, q, k, v, &wide, OP_KV_F32, T, T, (int[]){T}, 1, &err) == 0);
	fprintf(stderr, "(expected mismatch follows)\n");
	CHECK(!near_d("window off by one", y, ref, nq, tol_f32));
	/* so is a one-ulp-scale error far above the tolerance */
	CHECK(run_attn(y, q, k, v, &cfg, OP_KV_F32, T, T, (int[]){T}, 1, &err) == 0);
	CHECK(near_d("window", y, ref, nq, tol_f32));
	y[nq / 2] += 1e-3f;
	fprintf(stderr, "(expected mismatch follows)\n");
	CHECK(!near_d("perturbed", y, ref, nq, tol_f32));
	free(q);
	free(k);
	free(v);
	free(y);
	free(ref);
}

/* ---- state bytes against genome/stats.c ------------------------------------------- */

/* What the model will allocate for arch `a` at context ctx: f32 states
 * (into *state) and K/V caches of `kv_type` (into *kv). */
static void arch_bytes(const genome_arch *a, int64_t ctx, int kv_type, int64_t *state,
                       int64_t *kv)
{
	*state = *kv = 0;
	for (int i = 0; i < a->n_layers; i++) {
		const genome_arch_layer *l = &a->layers[i];
		for (int g = 0; g < GENOME_NGROUPS; g++)
			if (l->xowner[g] == i && l->conv[g])
				*state += (int64_t)op_fconv_state_bytes((int)l->width[g], l->conv[g]);
		bool own_k = l->xowner[GG_B] == i, own_v = l->xowner[GG_V] == i;
		switch (l->structure) {
		case GS_DENSE: {
			int64_t cap = op_attn_cache_positions(l->mask, l->len, ctx);
			if (own_k)
				*kv += (int64_t)op_kv_cache_bytes(kv_type, l->kv_heads, l->head_dim, cap);
			if (own_v)
				*kv += (int64_t)op_kv_cache_bytes(kv_type, l->kv_heads, l->head_dim, cap);
			break;
		}
		case GS_LOWRANK:
			if (own_k || own_v) {
				op_linattn_cfg c = {l->heads, l->kv_heads, l->head_dim, l->nonlin};
				*state += (int64_t)op_linattn_state_bytes(&c);
			}
			break;
		case GS_SEMISEP: {
			op_ssm_cfg c = {l->heads, (int)l->state, l->head_dim, l->nonlin};
			*state += (int64_t)op_ssm_state_bytes(&c);
			break;
		}
		case GS_TOEPLITZ:
			*state += (int64_t)op_shortconv_state_bytes((int)l->inner, l->len);
			break;
		default:
			break;
		}
	}
}

static void test_stats_bytes(void)
{
	/* every mixer, featurizer convs, KV sharing of K and V, of K only and
	 * of V only, shared windowed caches, shared linear-attention state */
	const char *text =
		"tailor-genome/1 name=mixstats d=64 vocab=256 ffn_multiple=32 rope_theta=1000000 "
		"tied=1 | 0.0.0.1.1 0.0.0.1.1 1.0.0.0.0 2.0.0.2.2 2.0.0.2.2 3.0.0.3.1 3.0.0.3.1 "
		"3.0.0.0.0 4.0.0.0.0 5.0.0.0.0 6.0.0.0.0 7.0.0.0.0 2.0.0.4.3 2.0.0.4.3 1.0.0.5.1 "
		"1.0.0.5.1 "
		"| c0 op=0.4.0.1.1 h=4 kv=2 hd=16 qkn=1 rope=1 C=0.2.1.1 B=0.2.1.2 V=0.2.1.2 "
		"| c1 op=0.4.1.1.1 h=4 kv=2 hd=16 len=5 qkn=0 rope=1 C=0.2.1.1 B=3.2.1.2 V=0.2.1.2 "
		"| c2 op=0.4.2.3.1 h=4 kv=4 hd=16 len=6 qkn=0 rope=0 C=0.2.1.1 B=0.2.1.1 V=2.2.1.1 "
		"| c3 op=0.1.0.4.1 h=4 kv=2 hd=16 qkn=0 rope=0 C=0.2.1.1 B=0.2.1.2 V=0.2.1.2 "
		"| c4 op=2.2.0.2.1 h=2 hd=16 C=0.2.2.1 B=0.2.2.1 V=4.2.1.1 A=0.2.1.1 "
		"| c5 op=1.3.0.0.0 len=3 C=0.2.1.1 B=0.2.1.1 V=0.2.1.1 "
		"| c6 op=1.3.0.0.0 len=7 C=3.2.1.1 B=3.2.1.1 V=3.2.1.1 "
		"| c7 op=3.0.0.2.0 ffn=128 C=0.2.1.1 V=0.2.1.1";
	genome g;
	genome_arch a;
	tl_err err = TL_ERR_INIT;
	int rc = genome_parse(&g, text, "mixstats", &err);
	CHECK_MSG(rc == 0, "%s", err.msg);
	if (rc == 0)
		rc = genome_decode(&a, &g, &err);
	CHECK_MSG(rc == 0, "%s", err.msg);
	if (rc)
		return;
	const int64_t ctxs[] = {1, 3, 6, 100, 4096};
	for (int i = 0; i < 5; i++) {
		genome_stats s4, s2;
		genome_stats_compute(&s4, &a, 4, ctxs[i]);
		genome_stats_compute(&s2, &a, 2, ctxs[i]);
		int64_t st, kv32, kv16;
		arch_bytes(&a, ctxs[i], OP_KV_F32, &st, &kv32);
		arch_bytes(&a, ctxs[i], OP_KV_F16, &st, &kv16);
		CHECK_EQ_INT(st, s4.state_bytes);
		CHECK_EQ_INT(st + kv32, s4.cache_bytes);
		CHECK_EQ_INT(kv16, s2.cache_bytes - s2.state_bytes);
		CHECK(st > 0 && kv16 > 0);
	}
}

int main(void)
{
	tl_rng r;
	tl_rng_seed(&r, 20240611, 7);
	test_f16();
	test_f16_kernels(&r);
	test_rmsnorm(&r);
	test_rope(&r);
	test_glu(&r);
	test_attn(&r);
	test_attn_ring(&r);
	test_attn_shared(&r);
	test_attn_errors();
	test_attn_fast(&r);
	test_attn_deep(&r);
	test_attn_ranges(&r);
	test_linattn(&r);
	test_ssm(&r);
	test_conv(&r);
	test_can_fail(&r);
	test_stats_bytes();
	return tl_test_end();
}
