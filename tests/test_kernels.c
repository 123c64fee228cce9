/*
 * tests/test_kernels.c: the kernel layer (operators/op_kernels.h) against
 * independent references.
 *
 *  - f16: all 65536 halves against a formula in double, every midpoint
 *    between neighbouring halves (ties to even) and its neighbours, and a
 *    million floats against a brute-force nearest-half search; hardware and
 *    portable conversions must agree bit for bit.
 *  - quantizers: the compiled q8_0 quantizer equals the reference byte for
 *    byte; reconstruction error within |d|/2 of the stored scale (q4_0: |d|
 *    for the elements ggml clamps at 15) on random and adversarial rows;
 *    hand-worked blocks pin the nibble layout and the rounding.
 *  - op_vec_dot against op_vec_dot_ref and against a double dot of the
 *    dequantized rows, within the bound op_kernels.h states; with unit
 *    scales the float result is an exact integer, so the integer block sums
 *    must match exactly.
 *  - op_matmul against a double product of the dequantized operands (and
 *    op_matmul_ref against the same) over the N x M x K grid, every dtype,
 *    1 and 2 threads, bit-identical across thread counts.
 *  - the pool: every thread runs every job once, writes are visible after
 *    op_pool_run, wake-up after the workers went to sleep, pinning.
 *  - the probes return plausible numbers.
 *
 * The kernel sources are compiled into this program with the flags of the
 * path under test (tests/meson.build): the same file tests the AVX-512,
 * AVX2, scalar and (under qemu) NEON paths. It exits 77 (skipped) when the
 * CPU lacks an instruction set the build was compiled for.
 */
#define _GNU_SOURCE /* sched_getaffinity */

#include "op_kernels.h"
#include "tl.h"
#include "tl_test.h"

#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__linux__)
#include <sched.h>
#endif

static const enum op_dtype all_types[] = {OP_F32, OP_F16, OP_Q8_0, OP_Q4_0};

static uint32_t bits_of(float f)
{
	uint32_t u;
	memcpy(&u, &f, sizeof u);
	return u;
}

static float float_of(uint32_t u)
{
	float f;
	memcpy(&f, &u, sizeof f);
	return f;
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p) {
		fprintf(stderr, "test_kernels: out of memory (%zu bytes)\n", n);
		abort();
	}
	return p;
}

/* ---- f16 ----------------------------------------------------------------- */

/* The value of a finite half, from the definition. */
static double half_value(uint16_t h)
{
	int e = (h >> 10) & 0x1f, m = h & 0x3ff;
	double v = e == 0 ? ldexp(m, -24) : ldexp(1024 + m, e - 25);
	return (h & 0x8000) ? -v : v;
}

/* Nearest half by binary search over the positive finite halves (monotone in
 * their codes), ties to the even code; >= 65520 is infinity. NaN excluded. */
static uint16_t half_nearest(float f)
{
	uint16_t sign = signbit(f) ? 0x8000 : 0;
	double a = fabs((double)f);
	if (a >= 65520.0)
		return sign | 0x7c00;
	unsigned lo = 0, hi = 0x7bff; /* find the largest code with value <= a */
	while (lo < hi) {
		unsigned mid = (lo + hi + 1) / 2;
		if (half_value((uint16_t)mid) <= a)
			lo = mid;
		else
			hi = mid - 1;
	}
	if (lo == 0x7bff) /* between 65504 and 65520: nearest is 65504 */
		return sign | 0x7bff;
	double dl = a - half_value((uint16_t)lo), dh = half_value((uint16_t)(lo + 1)) - a;
	unsigned r = dl < dh ? lo : dh < dl ? lo + 1 : (lo & 1 ? lo + 1 : lo);
	return (uint16_t)(sign | r);
}

static void test_f16(tl_rng *rng)
{
	int bad = 0;
	for (uint32_t h = 0; h < 65536; h++) {
		float a = op_f16_to_f32((op_f16)h), b = op_f16_to_f32_ref((op_f16)h);
		int e = (h >> 10) & 0x1f, m = h & 0x3ff;
		uint32_t want;
		if (e == 31)
			want = ((h & 0x8000u) << 16) | 0x7f800000u | ((uint32_t)m << 13) | (m ? 0x400000u : 0);
		else
			want = bits_of((float)half_value((uint16_t)h));
		if (bits_of(a) != want || bits_of(b) != want) {
			if (bad++ < 5)
				CHECK_MSG(0, "f16 -> f32 of 0x%04x: hw %08x ref %08x want %08x", h, bits_of(a),
				          bits_of(b), want);
		}
		/* round trip: every half survives f16 -> f32 -> f16, NaNs stay NaN */
		uint16_t ra = op_f32_to_f16(a), rb = op_f32_to_f16_ref(a);
		uint16_t wantr = (uint16_t)((e == 31 && m) ? (h | 0x200) : h);
		if (ra != wantr || rb != wantr) {
			if (bad++ < 5)
				CHECK_MSG(0, "round trip 0x%04x: hw %04x ref %04x", h, ra, rb);
		}
	}
	CHECK_EQ_INT(bad, 0);

	/* midpoints between neighbours, and the floats on either side */
	bad = 0;
	for (uint32_t h = 0; h <= 0x7bff; h++) {
		double lo = half_value((uint16_t)h), hi = h == 0x7bff ? 65536.0 : half_value((uint16_t)(h + 1));
		float mid = (float)((lo + hi) / 2); /* exact: 12 significant bits at most */
		uint16_t tie = (uint16_t)(h & 1 ? h + 1 : h);
		struct { float f; uint16_t want; } cases[4] = {
			{(float)lo, (uint16_t)h},
			{mid, tie},
			{nextafterf(mid, 0.0f), (uint16_t)h},
			{nextafterf(mid, INFINITY), (uint16_t)(h + 1)},
		};
		for (int c = 0; c < 4; c++) {
			for (int s = 0; s < 2; s++) {
				float f = s ? -cases[c].f : cases[c].f;
				uint16_t want = (uint16_t)(cases[c].want | (s ? 0x8000 : 0));
				uint16_t a = op_f32_to_f16(f), b = op_f32_to_f16_ref(f);
				if (a != want || b != want) {
					if (bad++ < 5)
						CHECK_MSG(0, "f32 -> f16 of %a: hw %04x ref %04x want %04x", (double)f,
						          a, b, want);
				}
			}
		}
	}
	CHECK_EQ_INT(bad, 0);

	/* specials */
	CHECK_EQ_INT(op_f32_to_f16(INFINITY), 0x7c00);
	CHECK_EQ_INT(op_f32_to_f16_ref(-INFINITY), 0xfc00);
	CHECK_EQ_INT(op_f32_to_f16_ref(65519.99f), 0x7bff);
	CHECK_EQ_INT(op_f32_to_f16_ref(FLT_MAX), 0x7c00);
	CHECK_EQ_INT(op_f32_to_f16_ref(FLT_TRUE_MIN), 0x0000);
	CHECK_EQ_INT(op_f32_to_f16_ref(-0.0f), 0x8000);
	CHECK_EQ_INT(op_f32_to_f16_ref(0x1p-24f), 0x0001);
	CHECK_EQ_INT(op_f32_to_f16_ref(0x1.8p-24f), 0x0002); /* tie between 1 and 2: even */
	CHECK_EQ_INT(op_f32_to_f16_ref(0x1.8p-25f), 0x0001);
	CHECK_EQ_INT(op_f32_to_f16_ref(float_of(0x7f800001u)), 0x7e00); /* sNaN quieted */
	CHECK_EQ_INT(op_f32_to_f16(float_of(0xffc12345u)), 0xfe09);

	/* a million floats: bit patterns, ordinary magnitudes, tiny ones */
	bad = 0;
	for (int i = 0; i < 1000000; i++) {
		float f;
		switch (i % 3) {
		case 0: f = float_of(tl_rng_u32(rng)); break;
		case 1: f = (float)((tl_rng_double(rng) * 2 - 1) * 70000.0); break;
		default: f = (float)ldexp(tl_rng_double(rng) * 2 - 1, -(int)tl_rng_bounded(rng, 30)); break;
		}
		uint16_t a = op_f32_to_f16(f), b = op_f32_to_f16_ref(f);
		bool ok = a == b;
		if (!isnan(f))
			ok = ok && a == half_nearest(f);
		else
			ok = ok && (a & 0x7c00) == 0x7c00 && (a & 0x3ff) != 0;
		if (!ok && bad++ < 5)
			CHECK_MSG(0, "f32 -> f16 of %a (%08x): hw %04x ref %04x want %04x", (double)f,
			          bits_of(f), a, b, isnan(f) ? 0 : half_nearest(f));
	}
	CHECK_EQ_INT(bad, 0);
}

/* ---- quantizers ---------------------------------------------------------- */

enum row_kind { ROW_NORMAL, ROW_ZEROS, ROW_HUGE_ONE, ROW_NEGATIVE, ROW_SUBNORMAL, ROW_TINY,
	ROW_TIES, ROW_MIXED_SCALE, ROW_KINDS };

static void make_row(tl_rng *rng, enum row_kind kind, float *x, int64_t n)
{
	for (int64_t i = 0; i < n; i++) {
		double g = tl_rng_normal(rng);
		switch (kind) {
		case ROW_NORMAL: x[i] = (float)g; break;
		case ROW_ZEROS: x[i] = 0.0f; break;
		case ROW_HUGE_ONE: x[i] = (float)(0.01 * g); break;
		case ROW_NEGATIVE: x[i] = (float)-fabs(g * 3); break;
		case ROW_SUBNORMAL: x[i] = (float)(g * 1e-40); break;
		case ROW_TINY: x[i] = (float)(g * 1e-6); break; /* scale is an f16 subnormal */
		case ROW_TIES: x[i] = (i % 3 == 0) ? 4.0f : (i % 3 == 1) ? -4.0f : 2.0f; break;
		case ROW_MIXED_SCALE: x[i] = (float)(g * pow(10.0, (double)((i / 32) % 9) - 4)); break;
		default: x[i] = 0.0f; break;
		}
	}
	/* huge, yet inside both formats' range (q4_0: 8 * 65504) */
	if (kind == ROW_HUGE_ONE && n > 0)
		x[tl_rng_bounded(rng, (uint32_t)n)] = 5e5f;
}

/* Reconstruction bounds, against the scale stored in the block (see
 * op_quantize_row): q8_0 |x - x^| <= ds/2 when ds is a normal half; when the
 * ideal scale amax/127 is only representable as a subnormal half, the
 * rounding of the scale itself adds up to 127 * |d - ds|. q4_0 likewise,
 * except the elements past 7.5 steps (clamped at q = 15), bounded by their
 * distance to 7 steps. The 2^-14 slack covers the float rounding of x * (1/d)
 * and of the reconstruction. */
static int check_quant_bounds(enum op_dtype t, const float *x, const void *row, int64_t n)
{
	float *xh = xmalloc((size_t)n * sizeof(float));
	op_dequantize_row(t, row, xh, n);
	int bad = 0;
	for (int64_t b = 0; b < n / 32; b++) {
		const float *xb = x + b * 32;
		double amax = 0, max = 0;
		for (int i = 0; i < 32; i++)
			if (fabs(xb[i]) > amax) {
				amax = fabs(xb[i]);
				max = xb[i];
			}
		double ds, d;
		if (t == OP_Q8_0) {
			ds = op_f16_to_f32(((const op_block_q8_0 *)row)[b].d);
			d = amax / 127;
		} else {
			ds = op_f16_to_f32(((const op_block_q4_0 *)row)[b].d);
			d = max / -8;
		}
		double slack = fabs(ds) * 0x1p-14 + 1e-45;
		double extra = fabs(ds) < 0x1p-14 ? 127 * fabs(d - ds) : 0;
		for (int i = 0; i < 32; i++) {
			double err = fabs((double)xb[i] - (double)xh[b * 32 + i]);
			double bound = fabs(ds) / 2;
			if (t == OP_Q4_0 && ds != 0 && xb[i] / ds > 7.5)
				bound = fabs(ds) * (xb[i] / ds - 7);
			if (!(err <= bound + extra + slack)) {
				if (bad++ < 3)
					CHECK_MSG(0, "%s block %lld elem %d: x %.9g x^ %.9g d %.9g err %.3g > %.3g",
					          op_dtype_name(t), (long long)b, i, (double)xb[i],
					          (double)xh[b * 32 + i], ds, err, bound + extra + slack);
			}
		}
	}
	free(xh);
	return bad;
}

static void test_quant(tl_rng *rng)
{
	static const int64_t nbs[] = {1, 2, 3, 7, 33};
	for (size_t s = 0; s < sizeof nbs / sizeof nbs[0]; s++) {
		int64_t n = nbs[s] * 32;
		float *x = xmalloc((size_t)n * sizeof(float));
		void *r0 = xmalloc(op_row_bytes(OP_Q8_0, n)), *r1 = xmalloc(op_row_bytes(OP_Q8_0, n));
		for (int kind = 0; kind < ROW_KINDS; kind++) {
			for (int rep = 0; rep < 4; rep++) {
				make_row(rng, (enum row_kind)kind, x, n);
				for (int ti = 2; ti < 4; ti++) {
					enum op_dtype t = all_types[ti];
					op_quantize_row(t, x, r0, n);
					op_quantize_row_ref(t, x, r1, n);
					CHECK_MSG(memcmp(r0, r1, op_row_bytes(t, n)) == 0,
					          "%s kind %d n %lld: compiled quantizer differs from the reference",
					          op_dtype_name(t), kind, (long long)n);
					CHECK_MSG(check_quant_bounds(t, x, r1, n) == 0, "%s kind %d n %lld",
					          op_dtype_name(t), kind, (long long)n);
				}
			}
		}
		free(x);
		free(r0);
		free(r1);
	}

	/* hand-worked q8_0 block: amax 127 gives d = 1; ties round to even */
	float x[32];
	for (int i = 0; i < 32; i++)
		x[i] = 0.0f;
	x[0] = 127.0f; x[1] = -127.0f; x[2] = 63.5f; x[3] = 62.5f; x[4] = -0.5f; x[5] = 1.5f;
	x[6] = -2.5f; x[7] = 0.49f;
	op_block_q8_0 q8;
	op_quantize_row(OP_Q8_0, x, &q8, 32);
	CHECK_EQ_INT(q8.d, 0x3c00);
	static const int8_t want8[8] = {127, -127, 64, 62, 0, 2, -2, 0};
	for (int i = 0; i < 8; i++)
		CHECK_EQ_INT(q8.qs[i], want8[i]);

	/* hand-worked q4_0 block: x[i] = i - 16, the largest magnitude is x[0] =
	 * -16, so d = 2, q = x/2 + 8.5 truncated: x0 -> 0, x16 -> 8, x15 -> 8,
	 * x31 = 15 -> 16 clamped to 15. Low nibbles are elements 0..15. */
	for (int i = 0; i < 32; i++)
		x[i] = (float)(i - 16);
	op_block_q4_0 q4;
	op_quantize_row(OP_Q4_0, x, &q4, 32);
	CHECK_EQ_INT(q4.d, op_f32_to_f16(2.0f));
	CHECK_EQ_INT(q4.qs[0], 0x80);
	CHECK_EQ_INT(q4.qs[15], 0xf8);
	CHECK_EQ_INT(q4.qs[1], 0x91); /* x1 = -15 -> 1; x17 = 1 -> 9 */
	/* ties of magnitude: the first one (sign included) sets the scale */
	for (int i = 0; i < 32; i++)
		x[i] = i == 3 ? 4.0f : i == 5 ? -4.0f : 1.0f;
	op_quantize_row(OP_Q4_0, x, &q4, 32);
	CHECK_EQ_INT(q4.d, op_f32_to_f16(-0.5f));

	/* saturation instead of NaN: a scale clamped at 65504 */
	for (int i = 0; i < 32; i++)
		x[i] = i == 0 ? 1e30f : 1.0f;
	op_quantize_row(OP_Q8_0, x, &q8, 32);
	float back[32];
	op_dequantize_row(OP_Q8_0, &q8, back, 32);
	CHECK(isfinite(back[0]) && back[0] == 65504.0f * 127);
	x[0] = -1e30f;
	op_quantize_row(OP_Q4_0, x, &q4, 32);
	op_dequantize_row(OP_Q4_0, &q4, back, 32);
	CHECK(isfinite(back[0]) && back[0] == -65504.0f * 8);

	/* f16 rows: the compiled conversion, element by element */
	float y[37];
	op_f16 h[37];
	for (int i = 0; i < 37; i++)
		y[i] = (float)tl_rng_normal(rng) * 1000;
	op_quantize_row(OP_F16, y, h, 37);
	for (int i = 0; i < 37; i++)
		CHECK_EQ_INT(h[i], op_f32_to_f16_ref(y[i]));
	CHECK_EQ_INT(op_row_bytes(OP_Q4_0, 4096), 4096 / 32 * 18);
	CHECK_EQ_INT(op_row_bytes(OP_Q8_0, 4096), 4096 / 32 * 34);
	CHECK_EQ_INT(op_row_bytes(OP_F16, 7), 14);
}

/* ---- dot products -------------------------------------------------------- */

/* Quantize (or copy) a float row to the weight dtype / matching activation. */
static void to_dtype(enum op_dtype t, const float *x, void *row, int64_t n)
{
	op_quantize_row_ref(t, x, row, n);
}

/* Double dot of the dequantized rows, and S = sum |w^ x^|. */
static void exact_dot(enum op_dtype wt, const void *w, const void *x, int64_t n, double *dot,
                      double *S)
{
	float *a = xmalloc((size_t)n * sizeof(float)), *b = xmalloc((size_t)n * sizeof(float));
	op_dequantize_row(wt, w, a, n);
	if (wt == OP_Q8_0 || wt == OP_Q4_0)
		op_dequantize_row(OP_Q8_0, x, b, n);
	else
		memcpy(b, x, (size_t)n * sizeof(float));
	*dot = 0;
	*S = 0;
	for (int64_t i = 0; i < n; i++) {
		*dot += (double)a[i] * b[i];
		*S += fabs((double)a[i] * b[i]);
	}
	free(a);
	free(b);
}

static void test_dot_random(tl_rng *rng)
{
	static const int64_t qn[] = {32, 64, 96, 128, 160, 224, 256, 288, 480, 512, 544, 1024, 4096, 8224};
	static const int64_t fn[] = {0, 1, 3, 7, 15, 16, 17, 31, 32, 33, 63, 65, 127, 129, 255, 257,
		1023, 1025, 4096, 8225};
	for (int ti = 0; ti < 4; ti++) {
		enum op_dtype wt = all_types[ti];
		bool q = wt == OP_Q8_0 || wt == OP_Q4_0;
		const int64_t *ns = q ? qn : fn;
		size_t count = q ? sizeof qn / sizeof qn[0] : sizeof fn / sizeof fn[0];
		for (size_t s = 0; s < count; s++) {
			int64_t n = ns[s];
			for (int rep = 0; rep < 3; rep++) {
				float *wf = xmalloc((size_t)n * sizeof(float)), *xf = xmalloc((size_t)n * sizeof(float));
				make_row(rng, rep == 2 ? ROW_MIXED_SCALE : ROW_NORMAL, wf, n);
				make_row(rng, rep == 1 ? ROW_NEGATIVE : ROW_NORMAL, xf, n);
				void *w = xmalloc(op_row_bytes(wt, n) + 1);
				void *x = q ? xmalloc(op_row_bytes(OP_Q8_0, n) + 1) : NULL;
				to_dtype(wt, wf, w, n);
				if (q)
					op_quantize_row_ref(OP_Q8_0, xf, x, n);
				const void *xa = q ? x : (const void *)xf;
				double dot, S;
				exact_dot(wt, w, xa, n, &dot, &S);
				float got = op_vec_dot(wt, w, xa, n), ref = op_vec_dot_ref(wt, w, xa, n);
				/* the bounds of op_kernels.h (with a little room for the
				 * reference's own rounding to float) */
				double tol = q ? ((double)n / 32 + 4) * 0x1p-23 * S : ((double)n + 4) * 0x1p-24 * S;
				tol += 1e-37;
				CHECK_MSG(fabs(got - ref) <= tol, "%s n %lld: dot %.9g ref %.9g tol %.3g",
				          op_dtype_name(wt), (long long)n, (double)got, (double)ref, tol);
				CHECK_MSG(fabs(got - dot) <= tol, "%s n %lld: dot %.9g exact %.9g tol %.3g",
				          op_dtype_name(wt), (long long)n, (double)got, dot, tol);
				CHECK_MSG(fabs(ref - dot) <= 0x1p-22 * S + 1e-37, "%s n %lld: ref %.9g exact %.9g",
				          op_dtype_name(wt), (long long)n, (double)ref, dot);
				free(wf);
				free(xf);
				free(w);
				free(x);
			}
		}
	}
}

/* Unit (or power-of-two) scales: every partial sum is an integer (or a
 * multiple of a power of two) below 2^24, so any summation order is exact and
 * the integer block sums are compared exactly. */
static void test_dot_exact(tl_rng *rng)
{
	static const int64_t ns[] = {32, 64, 96, 224, 544, 1024, 8224};
	for (size_t s = 0; s < sizeof ns / sizeof ns[0]; s++) {
		int64_t n = ns[s], nb = n / 32;
		op_block_q8_0 *w8 = xmalloc((size_t)nb * sizeof *w8), *x8 = xmalloc((size_t)nb * sizeof *x8);
		op_block_q4_0 *w4 = xmalloc((size_t)nb * sizeof *w4);
		for (int pattern = 0; pattern < 5; pattern++) {
			/* sum bounds: q8 |w| <= 127 with |x| <= 127 for n <= 1024
			 * (16.5M < 2^24), |x| <= 15 beyond; q4 |q - 8| <= 8, |x| <= 127 */
			int xmax = n <= 1024 ? 127 : 15;
			int64_t want8 = 0, want4 = 0;
			for (int64_t b = 0; b < nb; b++) {
				/* pattern 4: scales 2^-3 and 2^2 (product 0.5) in every block */
				w8[b].d = pattern == 4 ? op_f32_to_f16(0.125f) : op_f32_to_f16(1.0f);
				x8[b].d = pattern == 4 ? op_f32_to_f16(4.0f) : op_f32_to_f16(1.0f);
				w4[b].d = w8[b].d;
				for (int i = 0; i < 32; i++) {
					int wv, xv, q4v;
					switch (pattern) {
					case 0: wv = 127; xv = xmax; q4v = 0; break;
					case 1: wv = 127; xv = -xmax; q4v = 15; break;
					case 2: wv = (i & 1) ? -127 : 127; xv = (i & 2) ? -xmax : xmax; q4v = (i & 1) ? 0 : 15; break;
					default:
						wv = (int)tl_rng_range(rng, -127, 127);
						xv = (int)tl_rng_range(rng, -xmax, xmax);
						q4v = (int)tl_rng_bounded(rng, 16);
						break;
					}
					w8[b].qs[i] = (int8_t)wv;
					x8[b].qs[i] = (int8_t)xv;
					if (i < 16)
						w4[b].qs[i] = (uint8_t)q4v;
					else
						w4[b].qs[i - 16] |= (uint8_t)(q4v << 4);
					want8 += (int64_t)wv * xv;
					want4 += (int64_t)(q4v - 8) * xv;
				}
			}
			double scale = pattern == 4 ? 0.5 : 1.0;
			float g8 = op_vec_dot(OP_Q8_0, w8, x8, n), r8 = op_vec_dot_ref(OP_Q8_0, w8, x8, n);
			float g4 = op_vec_dot(OP_Q4_0, w4, x8, n), r4 = op_vec_dot_ref(OP_Q4_0, w4, x8, n);
			CHECK_MSG((double)g8 == (double)want8 * scale && (double)r8 == (double)want8 * scale,
			          "q8_0 exact n %lld pattern %d: simd %.1f ref %.1f want %lld", (long long)n,
			          pattern, (double)g8, (double)r8, (long long)want8);
			CHECK_MSG((double)g4 == (double)want4 * scale && (double)r4 == (double)want4 * scale,
			          "q4_0 exact n %lld pattern %d: simd %.1f ref %.1f want %lld", (long long)n,
			          pattern, (double)g4, (double)r4, (long long)want4);
		}
		free(w8);
		free(x8);
		free(w4);
	}
}

/* ---- matmul -------------------------------------------------------------- */

/* Y and S = |W^| |X^|^T in double, from the dequantized operands, one pass. */
static void matmul_double(const float *What, const float *Xhat, int64_t M, int64_t K, int64_t N,
                          double *Y, double *S)
{
	for (int64_t n = 0; n < N; n++)
		for (int64_t m = 0; m < M; m++) {
			double y = 0, s = 0;
			for (int64_t k = 0; k < K; k++) {
				double p = (double)What[m * K + k] * Xhat[n * K + k];
				y += p;
				s += fabs(p);
			}
			Y[n * M + m] = y;
			S[n * M + m] = s;
		}
}

/* Each SIMD path ships its interleaved weight layout (op_wmat): the group
 * is one vector of the build's dot instruction. */
static void test_wmat_groups(void)
{
	const char *isa = op_kernels_isa();
	int want = !strcmp(isa, "avx512-vnni")                           ? 16
	           : !strcmp(isa, "avx2-vnni") || !strcmp(isa, "avx2") ? 8
	                                                                  : 1;
	CHECK_MSG(op_wmat_group_rows(OP_Q4_0) == want && op_wmat_group_rows(OP_Q8_0) == want,
	          "%s: op_wmat groups of %d rows, want %d", isa, op_wmat_group_rows(OP_Q4_0), want);
	CHECK(op_wmat_group_rows(OP_F32) == 1 && op_wmat_group_rows(OP_F16) == 1);
}

static void test_matmul(tl_rng *rng, op_pool *pool2)
{
	static const int64_t Ns[] = {1, 2, 3, 7, 17, 33, 64};
	static const int64_t Ms[] = {1, 3, 7, 17, 33, 64, 257};
	static const int64_t Ks[] = {32, 96, 352, 4096}; /* 352: 11 blocks, odd, > 8 */
	const int64_t maxN = 64, maxM = 257, maxK = 4096;
	float *Wf = xmalloc((size_t)(maxM * maxK) * sizeof(float));
	float *X = xmalloc((size_t)(maxN * maxK) * sizeof(float));
	float *What = xmalloc((size_t)(maxM * maxK) * sizeof(float));
	float *Xhat = xmalloc((size_t)(maxN * maxK) * sizeof(float));
	double *Yd = xmalloc((size_t)(maxN * maxM) * sizeof(double));
	double *S = xmalloc((size_t)(maxN * maxM) * sizeof(double));
	void *qtmp = xmalloc(op_row_bytes(OP_Q8_0, maxK));
	for (size_t ki = 0; ki < sizeof Ks / sizeof Ks[0]; ki++) {
		int64_t K = Ks[ki];
		for (size_t mi = 0; mi < sizeof Ms / sizeof Ms[0]; mi++) {
			int64_t M = Ms[mi];
			for (int ti = 0; ti < 4; ti++) {
				enum op_dtype wt = all_types[ti];
				bool q = wt == OP_Q8_0 || wt == OP_Q4_0;
				size_t rb = op_row_bytes(wt, K);
				uint8_t *W = xmalloc(rb * (size_t)M);
				/* rows of different magnitudes, some blocks with a spike */
				for (int64_t m = 0; m < M; m++) {
					make_row(rng, m % 5 == 4 ? ROW_MIXED_SCALE : ROW_NORMAL, Wf + m * K, K);
					to_dtype(wt, Wf + m * K, W + (size_t)m * rb, K);
					op_dequantize_row(wt, W + (size_t)m * rb, What + m * K, K);
				}
				/* the runtime layout: packed in two pieces (a first group
				 * apart, as threads pack them), every row read back exactly */
				size_t pb = op_wmat_bytes(wt, M, K);
				uint8_t *P = xmalloc(pb);
				memset(P, 0xa5, pb);
				int64_t gr = op_wmat_group_rows(wt), cut = M > gr ? gr : M;
				op_wmat_pack(wt, W, 0, cut, M, K, P);
				op_wmat_pack(wt, W + (size_t)cut * rb, cut, M - cut, M, K, P);
				CHECK(pb >= (size_t)M * rb && pb < (size_t)(M + gr) * rb);
				{
					float *row = xmalloc((size_t)K * sizeof(float));
					int bad = 0;
					uint8_t *plain = xmalloc(rb);
					for (int64_t m = 0; m < M; m++) {
						op_wmat_row(wt, P, M, K, m, row);
						bad += memcmp(row, What + m * K, (size_t)K * sizeof(float)) != 0;
						op_wmat_unpack_row(wt, P, M, K, m, plain);
						bad += memcmp(plain, W + (size_t)m * rb, rb) != 0;
					}
					free(plain);
					CHECK_MSG(bad == 0, "wmat_row %s M %lld K %lld: %d rows differ",
					          op_dtype_name(wt), (long long)M, (long long)K, bad);
					free(row);
				}
				for (size_t ni = 0; ni < 7; ni++) {
					int64_t N = Ns[ni];
					for (int64_t n = 0; n < N; n++) {
						make_row(rng, n % 3 == 2 ? ROW_NEGATIVE : ROW_NORMAL, X + n * K, K);
						if (q) { /* the activation as the kernels see it */
							op_quantize_row_ref(OP_Q8_0, X + n * K, qtmp, K);
							op_dequantize_row(OP_Q8_0, qtmp, Xhat + n * K, K);
						} else {
							memcpy(Xhat + n * K, X + n * K, (size_t)K * sizeof(float));
						}
					}
					matmul_double(What, Xhat, M, K, N, Yd, S);
					size_t ny = (size_t)(N * M);
					float *Y1 = xmalloc((ny + 16) * sizeof(float)), *Y2 = xmalloc((ny + 16) * sizeof(float));
					size_t sb = op_matmul_scratch_bytes(wt, K, N);
					void *scratch = sb ? xmalloc(sb) : NULL; /* exact size: ASan sees overruns */
					for (size_t i = 0; i < ny + 16; i++)
						Y1[i] = Y2[i] = NAN;
					if (N <= 3) { /* op_matmul_ref is the same double computation */
						float *Yr = xmalloc(ny * sizeof(float));
						tl_err err = TL_ERR_INIT;
						CHECK(op_matmul_ref(wt, W, M, K, X, N, Yr, &err) == 0);
						int bad = 0;
						for (size_t i = 0; i < ny; i++)
							bad += Yr[i] != (float)Yd[i];
						CHECK_MSG(bad == 0, "op_matmul_ref %s N %lld M %lld K %lld: %d differ",
						          op_dtype_name(wt), (long long)N, (long long)M, (long long)K, bad);
						free(Yr);
					}
					for (int pass = 0; pass < 2; pass++) {
					if (pass == 0) {
						op_matmul(NULL, wt, W, M, K, X, N, Y1, scratch);
						op_matmul(pool2, wt, W, M, K, X, N, Y2, scratch);
					} else {
						/* the same product on the runtime layout */
						for (size_t i = 0; i < ny + 16; i++)
							Y1[i] = Y2[i] = NAN;
						op_wmat_matmul(NULL, wt, P, M, K, X, N, Y1, scratch);
						op_wmat_matmul(pool2, wt, P, M, K, X, N, Y2, scratch);
					}
					int bad = 0;
					for (size_t i = 0; i < ny; i++) {
						/* the bound of op_kernels.h, plus the final rounding */
						double tol = q ? ((double)K / 32 + 4) * 0x1p-23 * S[i]
						               : ((double)K + 4) * 0x1p-24 * S[i];
						tol += 1e-30;
						bool ok = fabs((double)Y1[i] - Yd[i]) <= tol &&
						          bits_of(Y1[i]) == bits_of(Y2[i]);
						if (!ok && bad++ < 3)
							CHECK_MSG(0, "matmul %s N %lld M %lld K %lld: Y[%lld][%lld] = %.9g "
							          "(2 threads %.9g) exact %.9g tol %.3g", op_dtype_name(wt),
							          (long long)N, (long long)M, (long long)K,
							          (long long)(i / (size_t)M), (long long)(i % (size_t)M),
							          (double)Y1[i], (double)Y2[i], Yd[i], tol);
					}
					for (size_t i = ny; i < ny + 16; i++)
						if (!isnan(Y1[i]) || !isnan(Y2[i]))
							bad++;
					CHECK_MSG(bad == 0, "%s %s N %lld M %lld K %lld: %d bad",
					          pass ? "wmat_matmul" : "matmul", op_dtype_name(wt),
					          (long long)N, (long long)M, (long long)K, bad);
					}
					free(Y1);
					free(Y2);
					free(scratch);
				}
				free(W);
				free(P);
			}
		}
	}
	free(Wf);
	free(X);
	free(What);
	free(Xhat);
	free(Yd);
	free(S);
	free(qtmp);
}

/* ---- pool ---------------------------------------------------------------- */

typedef struct count_job {
	int calls[8];
	int nth_seen[8];
	int64_t data[8][16]; /* each thread's own cache line(s) */
} count_job;

static void count_fn(void *arg, int ith, int nth)
{
	count_job *j = arg;
	j->calls[ith]++;
	j->nth_seen[ith] = nth;
	for (int i = 0; i < 16; i++)
		j->data[ith][i] += ith + i;
}

static void test_pool(void)
{
	op_pool *p = NULL;
	tl_err err = TL_ERR_INIT;
	CHECK_EQ_INT(op_pool_create(&p, 0, &err), TL_EINVAL);
	CHECK(p == NULL);
	CHECK_CONTAINS(err.msg, "thread pool");
	op_pool_free(NULL);
	CHECK_EQ_INT(op_pool_size(NULL), 1);

	for (int nth = 1; nth <= 3; nth++) {
		tl_err_clear(&err);
		CHECK_EQ_INT(op_pool_create(&p, nth, &err), 0);
		CHECK_EQ_INT(op_pool_size(p), nth);
		count_job j;
		memset(&j, 0, sizeof j);
		const int calls = 2000;
		for (int c = 0; c < calls; c++) {
			op_pool_run(p, count_fn, &j);
			if (c == calls / 2) { /* let the workers fall asleep, then wake them */
				struct timespec ts = {0, 5 * 1000 * 1000};
				nanosleep(&ts, NULL);
			}
		}
		for (int i = 0; i < nth; i++) {
			CHECK_EQ_INT(j.calls[i], calls);
			CHECK_EQ_INT(j.nth_seen[i], nth);
			CHECK_EQ_INT(j.data[i][5], (int64_t)calls * (i + 5));
		}
		CHECK_EQ_INT(j.calls[nth], 0);
		op_pool_free(p);
		p = NULL;
	}

#if defined(__linux__)
	/* pinning: thread 0 is the caller, so restore its affinity afterwards */
	cpu_set_t saved;
	if (sched_getaffinity(0, sizeof saved, &saved) == 0) {
		int first = -1;
		for (int c = 0; c < CPU_SETSIZE && first < 0; c++)
			if (CPU_ISSET(c, &saved))
				first = c;
		CHECK_EQ_INT(op_pool_create(&p, 2, &err), 0);
		int cpus[1] = {first};
		CHECK_EQ_INT(op_pool_pin(p, cpus, 1, &err), 0);
		int bad[1] = {-1};
		CHECK_EQ_INT(op_pool_pin(p, bad, 1, &err), TL_EINVAL);
		count_job j;
		memset(&j, 0, sizeof j);
		op_pool_run(p, count_fn, &j);
		CHECK_EQ_INT(j.calls[1], 1);
		op_pool_free(p);
		p = NULL;
		sched_setaffinity(0, sizeof saved, &saved);
	}
#endif
}

/* ---- probes -------------------------------------------------------------- */

static void test_probes(op_pool *pool)
{
	tl_err err = TL_ERR_INIT;
	double rd = 0, cp = 0, fl = 0, ops = 0;
	CHECK_EQ_INT(op_probe_bandwidth(pool, 8u << 20, 1, &rd, &cp, &err), 0);
	CHECK(rd > 0.05 && cp > 0.05);
	op_probe_peak_fma(pool, &fl);
	op_probe_peak_dot(pool, &ops);
	CHECK(fl > 0.01 && ops > 0.01);
	fprintf(stderr, "probes (small, not a benchmark): read %.1f GB/s copy %.1f GB/s fma %.1f "
	        "GFLOP/s dot %.1f GOPS\n", rd, cp, fl, ops);
	CHECK_EQ_INT(op_probe_bandwidth(pool, 0, 1, &rd, &cp, &err), TL_EINVAL);
	CHECK_CONTAINS(err.msg, "bandwidth probe");
}

/* ---- main ---------------------------------------------------------------- */

/* Print how long the previous section took (the suite must stay fast under
 * ASan and under qemu: this shows where the time goes). */
static void section_done(const char *name)
{
	static double last;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	double now = (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
	if (name)
		fprintf(stderr, "  %-12s %6.2f s\n", name, now - last);
	last = now;
}

/* Exit 77 (meson: skipped) when this CPU lacks what the build assumes. */
static bool cpu_has_build_isa(void)
{
#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
	__builtin_cpu_init();
#if defined(__AVX2__)
	if (!__builtin_cpu_supports("avx2"))
		return false;
#endif
#if defined(__FMA__)
	if (!__builtin_cpu_supports("fma"))
		return false;
#endif
#if defined(__AVX512F__)
	if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw") ||
	    !__builtin_cpu_supports("avx512vl"))
		return false;
#endif
#if defined(__AVX512VNNI__)
	if (!__builtin_cpu_supports("avx512vnni"))
		return false;
#endif
#if defined(__AVXVNNI__) && !defined(__AVX512VNNI__)
	/* __builtin_cpu_supports has no name for AVX-VNNI in gcc 12: CPUID
	 * leaf 7 subleaf 1, EAX bit 4 */
	unsigned a, b, c, d;
	__asm__("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(7), "c"(1));
	if (!(a & (1u << 4)))
		return false;
#endif
#endif
	return true;
}

int main(void)
{
	if (!cpu_has_build_isa()) {
		fprintf(stderr, "test_kernels: this CPU lacks the instruction set of this build: skipped\n");
		return 77;
	}
	fprintf(stderr, "test_kernels: kernel path %s\n", op_kernels_isa());
	tl_rng rng;
	tl_rng_seed(&rng, 20240611, 7);
	op_pool *pool2 = NULL;
	tl_err err = TL_ERR_INIT;
	if (op_pool_create(&pool2, 2, &err) < 0) {
		fprintf(stderr, "test_kernels: %s\n", err.msg);
		return 1;
	}
	section_done(NULL);
	test_f16(&rng);
	section_done("f16");
	test_quant(&rng);
	section_done("quant");
	test_dot_random(&rng);
	test_dot_exact(&rng);
	section_done("vec_dot");
	test_wmat_groups();
	test_matmul(&rng, pool2);
	section_done("matmul");
	test_pool();
	section_done("pool");
	test_probes(pool2);
	section_done("probes");
	op_pool_free(pool2);
	return tl_test_end();
}
