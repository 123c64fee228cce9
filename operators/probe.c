/*
 * operators/probe.c: what the machine can do, measured the way the kernels
 * use it, for `tailor bench --bandwidth` and for judging the kernels against
 * their rooflines (bench_kernels prints these next to the GEMV / GEMM rates).
 *
 *  - streaming read: the GEMV streams each weight byte once, so its roofline
 *    is the read bandwidth of all threads together over a buffer that does
 *    not fit in the caches;
 *  - copy, as a second opinion STREAM users recognise;
 *  - FMA and int8-dot peaks: register-only loops of the exact instruction the
 *    float and int8 kernels are built on, with enough independent chains to
 *    cover the instruction's latency; the GEMM's roofline is the dot peak.
 *
 * Every probe runs on all pool threads at once and times the whole
 * op_pool_run (so a slow thread shows), best of several runs. Each takes tens
 * of milliseconds (bandwidth: a few passes over the buffer).
 */
#include "op_kernels_int.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#if defined(OP_ISA_AVX512) || defined(OP_ISA_AVX2)
#include <immintrin.h>
#elif defined(OP_ISA_NEON_ANY)
#include <arm_neon.h>
#endif


size_t op_probe_llc_bytes(void)
{
#if defined(_SC_LEVEL3_CACHE_SIZE)
	long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
	if (l3 > 0)
		return (size_t)l3;
#endif
#if defined(_SC_LEVEL2_CACHE_SIZE)
	long l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
	if (l2 > 0)
		return (size_t)l2;
#endif
	return 0;
}

/* ---- bandwidth ----------------------------------------------------------- */

typedef struct bw_job {
	uint8_t *buf;
	size_t bytes;     /* multiple of 64 * threads: slices are whole lines */
	int mode;         /* 0 first touch, 1 read, 2 copy */
	uint64_t sink[OP_POOL_MAX_THREADS];
} bw_job;

/* Sum of the slice as 64-bit lanes, with the widest vector loads the build
 * has, four independent accumulators (so the adds never limit) and the
 * GEMV's software prefetch distance: the roofline the GEMV is held to is
 * what a loop that streams the same way can get. */
#define PREFETCH(a) __builtin_prefetch((const char *)(a) + OP_PREFETCH_BYTES)
static uint64_t read_slice(const uint8_t *p, size_t n)
{
#if defined(OP_ISA_AVX512)
	__m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
	size_t i = 0;
	for (; i + 256 <= n; i += 256) {
		PREFETCH(p + i);
		PREFETCH(p + i + 64);
		PREFETCH(p + i + 128);
		PREFETCH(p + i + 192);
		a0 = _mm512_add_epi64(a0, _mm512_load_si512((const void *)(p + i)));
		a1 = _mm512_add_epi64(a1, _mm512_load_si512((const void *)(p + i + 64)));
		a2 = _mm512_add_epi64(a2, _mm512_load_si512((const void *)(p + i + 128)));
		a3 = _mm512_add_epi64(a3, _mm512_load_si512((const void *)(p + i + 192)));
	}
	for (; i < n; i += 64)
		a0 = _mm512_add_epi64(a0, _mm512_load_si512((const void *)(p + i)));
	uint64_t out[8], s = 0; /* unsigned: the sums wrap, by design */
	_mm512_storeu_si512((void *)out,
	                    _mm512_add_epi64(_mm512_add_epi64(a0, a1), _mm512_add_epi64(a2, a3)));
	for (int k = 0; k < 8; k++)
		s += out[k];
	return s;
#elif defined(OP_ISA_AVX2)
	__m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
	size_t i = 0;
	for (; i + 128 <= n; i += 128) {
		PREFETCH(p + i);
		PREFETCH(p + i + 64);
		a0 = _mm256_add_epi64(a0, _mm256_load_si256((const __m256i *)(p + i)));
		a1 = _mm256_add_epi64(a1, _mm256_load_si256((const __m256i *)(p + i + 32)));
		a2 = _mm256_add_epi64(a2, _mm256_load_si256((const __m256i *)(p + i + 64)));
		a3 = _mm256_add_epi64(a3, _mm256_load_si256((const __m256i *)(p + i + 96)));
	}
	for (; i < n; i += 32)
		a0 = _mm256_add_epi64(a0, _mm256_load_si256((const __m256i *)(p + i)));
	__m256i s = _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3));
	uint64_t out[4];
	_mm256_storeu_si256((__m256i *)out, s);
	return out[0] + out[1] + out[2] + out[3];
#elif defined(OP_ISA_NEON_ANY)
	uint64x2_t a0 = vdupq_n_u64(0), a1 = a0, a2 = a0, a3 = a0;
	size_t i = 0;
	for (; i + 64 <= n; i += 64) {
		PREFETCH(p + i);
		a0 = vaddq_u64(a0, vld1q_u64((const uint64_t *)(const void *)(p + i)));
		a1 = vaddq_u64(a1, vld1q_u64((const uint64_t *)(const void *)(p + i + 16)));
		a2 = vaddq_u64(a2, vld1q_u64((const uint64_t *)(const void *)(p + i + 32)));
		a3 = vaddq_u64(a3, vld1q_u64((const uint64_t *)(const void *)(p + i + 48)));
	}
	uint64x2_t s = vaddq_u64(vaddq_u64(a0, a1), vaddq_u64(a2, a3));
	return vgetq_lane_u64(s, 0) + vgetq_lane_u64(s, 1);
#else
	uint64_t a[4] = {0, 0, 0, 0};
	for (size_t i = 0; i + 32 <= n; i += 32)
		for (int j = 0; j < 4; j++) {
			uint64_t v;
			memcpy(&v, p + i + 8 * j, sizeof v);
			a[j] += v;
		}
	return a[0] + a[1] + a[2] + a[3];
#endif
}

static void bw_run(void *arg, int ith, int nth)
{
	bw_job *j = arg;
	size_t lines = j->bytes / 64;
	size_t s0 = lines * (size_t)ith / (size_t)nth * 64, s1 = lines * (size_t)(ith + 1) / (size_t)nth * 64;
	if (j->mode == 0) {
		memset(j->buf + s0, ith + 1, s1 - s0);
	} else if (j->mode == 1) {
		j->sink[ith] += read_slice(j->buf + s0, s1 - s0);
	} else {
		/* copy: first half -> second half, this thread's share of each */
		size_t half = j->bytes / 2 / 64;
		size_t c0 = half * (size_t)ith / (size_t)nth * 64, c1 = half * (size_t)(ith + 1) / (size_t)nth * 64;
		memcpy(j->buf + half * 64 + c0, j->buf + c0, c1 - c0);
	}
}

int op_probe_bandwidth(op_pool *pool, size_t bytes, int passes, double *read_gbs,
                       double *copy_gbs, tl_err *err)
{
	*read_gbs = 0.0;
	*copy_gbs = 0.0;
	int nth = op_pool_size(pool);
	size_t unit = 128 * (size_t)nth;
	bytes = bytes / unit * unit;
	if (bytes == 0 || passes < 1)
		return tl_err_set(err, TL_EINVAL, "bandwidth probe: %zu bytes, %d passes: too small",
		                  bytes, passes);
	bw_job *j = calloc(1, sizeof *j);
	uint8_t *buf = aligned_alloc(OP_ALIGN, bytes);
	int rc = 0;
	if (!j || !buf) {
		rc = tl_err_set(err, TL_ENOMEM, "bandwidth probe: %zu bytes: out of memory", bytes);
		goto free_bufs;
	}
	j->buf = buf;
	j->bytes = bytes;
	j->mode = 0;
	op_pool_run(pool, bw_run, j);
	for (int mode = 1; mode <= 2; mode++) {
		double best = 0.0;
		j->mode = mode;
		op_pool_run(pool, bw_run, j); /* warm-up: page tables, frequency */
		for (int k = 0; k < passes; k++) {
			double t0 = tl_now_s();
			op_pool_run(pool, bw_run, j);
			double t = tl_now_s() - t0;
			/* copy moves half the buffer: read it once, write it once */
			double gbs = (double)bytes / t * 1e-9;
			if (gbs > best)
				best = gbs;
		}
		if (mode == 1)
			*read_gbs = best;
		else
			*copy_gbs = best;
	}
	/* Keep the sums observable so the loads cannot be optimized away. */
	uint64_t s = 0;
	for (int i = 0; i < nth; i++)
		s += j->sink[i];
	if (s == 42)
		*read_gbs += 0.0;
free_bufs:
	free(buf);
	free(j);
	return rc;
}

/* ---- FMA and int8-dot peaks ---------------------------------------------- */

typedef struct peak_job {
	int64_t iters;
	volatile float fin[OP_POOL_MAX_THREADS];  /* keeps the chains alive */
	volatile int32_t iin[OP_POOL_MAX_THREADS];
} peak_job;

/* Twelve independent chains in twelve named variables. Twelve cover a 5-6
 * cycle latency at 2 per cycle; arrays of vectors are avoided on purpose:
 * gcc keeps them in memory or shuffles them between registers every
 * iteration, which halved the measured rate (282 instead of 429 int8 GOPS per
 * core on a Xeon with two vpdpbusd ports; sixteen named chains also measured
 * lower than twelve there). */
#define CHAINS 12
#define FOR_CHAINS(F) F(0) F(1) F(2) F(3) F(4) F(5) F(6) F(7) F(8) F(9) F(10) F(11)
#define DECL(c) VEC a##c = INIT(c);
#define STEP_(c) a##c = STEP(a##c);
#define SUM(c) s = ADD(s, a##c);

/* Lanes per FMA instruction of the build, and the float-chain operations. */
#if defined(OP_ISA_AVX512)
#define FMA_LANES 16
#define VEC __m512
#define INIT(c) _mm512_set1_ps((float)(c))
#define STEP(x) _mm512_fmadd_ps(x, va, vb)
#define ADD(x, y) _mm512_add_ps(x, y)
#define SETUP __m512 va = _mm512_set1_ps(a), vb = _mm512_set1_ps(b)
#define HSUM(v) _mm512_reduce_add_ps(v)
#elif defined(OP_ISA_AVX2)
#define FMA_LANES 8
#define VEC __m256
#define INIT(c) _mm256_set1_ps((float)(c))
#define STEP(x) _mm256_fmadd_ps(x, va, vb)
#define ADD(x, y) _mm256_add_ps(x, y)
#define SETUP __m256 va = _mm256_set1_ps(a), vb = _mm256_set1_ps(b)
#define HSUM(v) (_mm256_cvtss_f32(v) + _mm256_cvtss_f32(_mm256_permute_ps(v, 1)))
#elif defined(OP_ISA_NEON_ANY)
#define FMA_LANES 4
#define VEC float32x4_t
#define INIT(c) vdupq_n_f32((float)(c))
#define STEP(x) vfmaq_f32(vb, x, va)
#define ADD(x, y) vaddq_f32(x, y)
#define SETUP float32x4_t va = vdupq_n_f32(a), vb = vdupq_n_f32(b)
#define HSUM(v) vaddvq_f32(v)
#else
/* no FMA instruction assumed: a multiply and an add per "FMA" */
#define FMA_LANES 1
#define VEC float
#define INIT(c) ((float)(c))
#define STEP(x) ((x) * a + b)
#define ADD(x, y) ((x) + (y))
#define SETUP (void)0
#define HSUM(v) (v)
#endif

static void fma_run(void *arg, int ith, int nth)
{
	peak_job *j = arg;
	/* a < 1 and a small b keep every chain at a normal value (b / (1 - a));
	 * read through volatile so the compiler cannot fold the loop */
	float a = 0.999f + 0.0f * j->fin[ith], b = 1e-3f;
	SETUP;
	FOR_CHAINS(DECL)
	for (int64_t i = 0; i < j->iters; i++) {
		FOR_CHAINS(STEP_)
	}
	VEC s = INIT(0);
	FOR_CHAINS(SUM)
	j->fin[ith] = HSUM(s);
}

#undef VEC
#undef INIT
#undef STEP
#undef ADD
#undef SETUP
#undef HSUM

/* int8 multiply-adds per chain step of the compiled dot path, and the step. */
#if defined(OP_ISA_AVX512)
#define DOT_MACS 64 /* vpdpbusd zmm */
#define VEC __m512i
#define INIT(c) _mm512_set1_epi32(c + seed)
#define STEP(x) _mm512_dpbusd_epi32(x, va, vb)
#define ADD(x, y) _mm512_add_epi32(x, y)
#define SETUP __m512i va = _mm512_set1_epi8(seed), vb = _mm512_set1_epi8(2)
#elif defined(OP_ISA_AVX2_VNNI)
#define DOT_MACS 32 /* vpdpbusd ymm (AVX-VNNI) */
#define VEC __m256i
#define INIT(c) _mm256_set1_epi32(c + seed)
#define STEP(x) _mm256_dpbusd_avx_epi32(x, va, vb)
#define ADD(x, y) _mm256_add_epi32(x, y)
#define SETUP __m256i va = _mm256_set1_epi8(seed), vb = _mm256_set1_epi8(2)
#elif defined(OP_ISA_AVX2)
#define DOT_MACS 32 /* vpmaddubsw + vpmaddwd + vpaddd ymm */
#define VEC __m256i
#define INIT(c) _mm256_set1_epi32(c + seed)
#define STEP(x) _mm256_add_epi32(x, _mm256_madd_epi16(_mm256_maddubs_epi16(va, vb), ones))
#define ADD(x, y) _mm256_add_epi32(x, y)
#define SETUP __m256i va = _mm256_set1_epi8(seed), vb = _mm256_set1_epi8(2), ones = _mm256_set1_epi16(1)
#elif defined(OP_ISA_NEON_DOT)
#define DOT_MACS 16 /* sdot v.4s */
#define VEC int32x4_t
#define INIT(c) vdupq_n_s32(c + seed)
#define STEP(x) vdotq_s32(x, va, vb)
#define ADD(x, y) vaddq_s32(x, y)
#define SETUP int8x16_t va = vdupq_n_s8(seed), vb = vdupq_n_s8(2)
#elif defined(OP_ISA_NEON)
#define DOT_MACS 8 /* smull + sadalp */
#define VEC int32x4_t
#define INIT(c) vdupq_n_s32(c + seed)
#define STEP(x) vpadalq_s16(x, vmull_s8(va, vb))
#define ADD(x, y) vaddq_s32(x, y)
#define SETUP int8x8_t va = vdup_n_s8(seed), vb = vdup_n_s8(2)
#else
/* each step multiplies the low byte of the chain's own value, so the
 * compiler cannot fold the loop into a closed form; unsigned: the chains
 * wrap around, by design */
#define DOT_MACS 1
#define VEC uint32_t
#define INIT(c) ((uint32_t)(c + seed))
#define STEP(x) ((x) + (uint32_t)((int32_t)(int8_t)(x) * (int32_t)seed))
#define ADD(x, y) ((x) + (y))
#define SETUP (void)0
#endif

static void dot_run(void *arg, int ith, int nth)
{
	peak_job *j = arg;
	/* through volatile: the chains start from values the compiler cannot know */
	int8_t seed = (int8_t)(1 + (j->iin[ith] & 3));
	SETUP;
	FOR_CHAINS(DECL)
	for (int64_t i = 0; i < j->iters; i++) {
		FOR_CHAINS(STEP_)
	}
	VEC s = INIT(0);
	FOR_CHAINS(SUM)
	/* the lanes wrap around by design: fold them unsigned */
	uint32_t out[sizeof s / 4], t = 0;
	memcpy(out, &s, sizeof s);
	for (size_t k = 0; k < sizeof s / 4; k++)
		t += out[k];
	j->iin[ith] = (int32_t)(t & 0x7fffffff);
}

/* Best of 3 runs of fn on every thread; returns (units per chain step *
 * CHAINS * iters * threads) / best time. */
static double best_rate(op_pool *pool, op_pool_fn fn, double units)
{
	peak_job *j = calloc(1, sizeof *j);
	if (!j)
		return 0.0;
	j->iters = 1 << 14;
	op_pool_run(pool, fn, j); /* warm-up */
	/* size the run to ~20 ms */
	double t0 = tl_now_s();
	op_pool_run(pool, fn, j);
	double t = tl_now_s() - t0;
	if (t < 1e-6)
		t = 1e-6;
	j->iters = (int64_t)((double)j->iters * 0.02 / t);
	if (j->iters < (1 << 14))
		j->iters = 1 << 14;
	double best = 0.0;
	for (int k = 0; k < 3; k++) {
		t0 = tl_now_s();
		op_pool_run(pool, fn, j);
		t = tl_now_s() - t0;
		double rate = units * CHAINS * (double)j->iters * op_pool_size(pool) / t;
		if (rate > best)
			best = rate;
	}
	free(j);
	return best;
}

void op_probe_peak_fma(op_pool *pool, double *gflops)
{
	*gflops = best_rate(pool, fma_run, 2.0 * FMA_LANES) * 1e-9;
}

void op_probe_peak_dot(op_pool *pool, double *gops)
{
	*gops = best_rate(pool, dot_run, DOT_MACS) * 1e-9;
}
