/*
 * operators/mix_attn.c: the dense structure, T[i][j] = softmax_j(q_i.k_j /
 * sqrt(hd)) (or sigmoid, unnormalised), causal, GQA, with the masks none /
 * window / block, over a KV cache in f32 or f16.
 *
 * Workload: decode is one query per head against up to ctx cached keys, a
 * stream over the whole cache (memory-bound: bytes of K and V per token are
 * the cost); prefill is T queries against pos0 + T keys (compute-bound). Both
 * walk the cache once per GQA group, with all the group's query heads side by
 * side, so a K or V row is read (and converted from f16) once per group
 * rather than once per query head. The softmax is streaming (running max and
 * sum, one pass), so nothing is allocated and no score vector is kept.
 *
 * Two implementations of the same function:
 *  - the reference (op_attn_*_ref, attn_group): scalar, one key at a time,
 *    the specification the fast path is tested against;
 *  - the fast path (op_attn_prefill / op_attn_step / the ranges), SIMD where
 *    the build has it (MIX_ISA_* in mix_int.h: AVX-512, AVX2+F16C+FMA, NEON;
 *    plain C otherwise). Per KV head g it takes a tile of query rows (prefill:
 *    ATTN_TILE_ROWS, a few queries x the G heads that read g; decode: the G
 *    heads, for all KV heads of the call in the same pass, so the cache is
 *    read position after position as one stream) through the keys in blocks
 *    of ATTN_KB positions:
 *      scores  S = q.k * scale for every row and key of the block: each K row
 *              is loaded (f16 -> f32) once for 4 rows, fused multiply-adds,
 *              4 keys' partial sums reduced together;
 *      softmax per row: block max, one rescale of the running sum and of y
 *              by exp(m_old - m_new), p = exp(s - m) vectorised over the block;
 *      values  y_r = y_r * corr_r + sum_j p_rj v_j: each V row chunk loaded
 *              once for up to 8 rows, y in registers across the block's keys.
 *    Blocks are aligned to absolute positions (multiples of ATTN_KB) and a
 *    row only ever sees its own keys, in increasing order; so the arithmetic
 *    for one (query, head) does not depend on the tile it is in, on the
 *    thread that runs it, on the ring's layout or on the prefill / step form:
 *    all of those agree bit for bit (tests/test_mix.c), and differ from the
 *    reference by f32 rounding only (block-wise softmax, FMA, a polynomial
 *    exp of ~1 ulp in the SIMD builds).
 *
 * Threads: op_attn_append writes the caches once; the attention of what it
 * appended only reads them, so KV heads (op_attn_*_range) or (KV head,
 * query tile) units (op_attn_job_run) can run on different threads.
 */
#include "op_mix.h"
#include "mix_int.h"

#include <math.h>
#include <string.h>

static size_t kv_elem_bytes(int type)
{
	return type == OP_KV_F16 ? 2 : 4;
}

size_t op_kv_cache_bytes(int type, int kv_heads, int head_dim, int64_t cap)
{
	return (size_t)cap * (size_t)kv_heads * (size_t)head_dim * kv_elem_bytes(type);
}

int64_t op_attn_cache_positions(int mask, int len, int64_t ctx)
{
	if (mask == OP_MASK_NONE || len <= 0)
		return ctx;
	return ctx < len ? ctx : len;
}

void op_kv_cache_init(op_kv_cache *c, void *mem, int type, int kv_heads, int head_dim,
                      int64_t cap)
{
	c->data = mem;
	c->type = type;
	c->kv_heads = kv_heads;
	c->head_dim = head_dim;
	c->cap = cap;
	c->n = 0;
}

void op_kv_cache_reset(op_kv_cache *c)
{
	c->n = 0;
}

/* Elements per position. */
static size_t kv_row(const op_kv_cache *c)
{
	return (size_t)c->kv_heads * (size_t)c->head_dim;
}

void op_kv_cache_append(op_kv_cache *c, const float *x, int T)
{
	// x is (T, kv_heads, head_dim); written at slots (n + t) % cap
	size_t row = kv_row(c);
	for (int t = 0; t < T; t++, c->n++) {
		size_t off = (size_t)(c->n % c->cap) * row;
		const float *xt = x + (size_t)t * row;
		if (c->type == OP_KV_F16)
			mix_f32_row_to_f16((uint16_t *)c->data + off, xt, row);
		else
			memcpy((float *)c->data + off, xt, row * sizeof(float));
	}
}

/* Is position pos in the cache? */
static int kv_holds(const op_kv_cache *c, int64_t pos)
{
	return pos >= 0 && pos < c->n && pos >= c->n - c->cap;
}

int op_kv_cache_read(float *out, const op_kv_cache *c, int64_t pos, tl_err *err)
{
	// out is (kv_heads, head_dim)
	if (!kv_holds(c, pos))
		return tl_err_set(err, TL_EINVAL,
		                  "kv cache read: position %lld: not held (holds %lld..%lld)",
		                  (long long)pos, (long long)(c->n > c->cap ? c->n - c->cap : 0),
		                  (long long)c->n - 1);
	size_t row = kv_row(c), off = (size_t)(pos % c->cap) * row;
	if (c->type == OP_KV_F16)
		mix_f16_row_to_f32(out, (const uint16_t *)c->data + off, row);
	else
		memcpy(out, (const float *)c->data + off, row * sizeof(float));
	return 0;
}

/* First key position query position i may see. */
static int64_t attn_lo(const op_attn_cfg *cfg, int64_t i)
{
	switch (cfg->mask) {
	case OP_MASK_WINDOW:
		return i - cfg->len + 1 > 0 ? i - cfg->len + 1 : 0;
	case OP_MASK_BLOCK:
		return i / cfg->len * cfg->len;
	default:
		return 0;
	}
}

/* ---- reference: scalar, one key at a time ---------------------------------- */

/* Row g of position pos as f32: a pointer into an f32 cache, or the row
 * converted into buf for an f16 cache. */
static const float *kv_get(const op_kv_cache *c, int64_t pos, int g, float *buf)
{
	size_t off = (size_t)(pos % c->cap) * kv_row(c) + (size_t)g * c->head_dim;
	if (c->type != OP_KV_F16)
		return (const float *)c->data + off;
	const uint16_t *s = (const uint16_t *)c->data + off;
	for (int e = 0; e < c->head_dim; e++)
		buf[e] = mix_f16_to_f32(s[e]);
	return buf;
}

/*
 * The core: the G query heads that read KV head g, at one query position,
 * over key positions lo..hi (all held by both caches).
 *   y, q are (G, hd), the rows of those heads (contiguous in (T, H, hd)).
 * Softmax: per head a running max m and sum l; when a score raises the max,
 * the sum and the accumulated y are rescaled by exp(m_old - m_new), so every
 * exponent is <= 0 (no overflow) and y = sum_j e^(s_j - m) v_j / l at the end.
 */
static void attn_group(float *y, const float *q, const op_kv_cache *kc, const op_kv_cache *vc,
                       int g, int G, int hd, int64_t lo, int64_t hi, float scale, int nonlin)
{
	// y, q are (G, hd); keys and values are positions lo..hi of kc, vc at head g
	float m[OP_ATTN_MAX_GROUP], l[OP_ATTN_MAX_GROUP];
	float kbuf[OP_ATTN_MAX_HD], vbuf[OP_ATTN_MAX_HD];
	for (int r = 0; r < G; r++) {
		m[r] = -INFINITY;
		l[r] = 0.0f;
	}
	memset(y, 0, (size_t)G * hd * sizeof(float));
	for (int64_t j = lo; j <= hi; j++) {
		const float *kj = kv_get(kc, j, g, kbuf);
		const float *vj = kv_get(vc, j, g, vbuf);
		for (int r = 0; r < G; r++) {
			const float *qr = q + (size_t)r * hd;
			float *yr = y + (size_t)r * hd;
			float s = 0.0f;
			for (int e = 0; e < hd; e++)
				s += qr[e] * kj[e];
			s *= scale;
			float p;
			if (nonlin == OP_NL_SIGMOID) {
				p = mix_sigmoid(s);
			} else {
				if (s > m[r]) {
					float corr = expf(m[r] - s); /* 0 on the first key */
					l[r] *= corr;
					for (int e = 0; e < hd; e++)
						yr[e] *= corr;
					m[r] = s;
				}
				p = expf(s - m[r]);
				l[r] += p;
			}
			for (int e = 0; e < hd; e++)
				yr[e] += p * vj[e];
		}
	}
	if (nonlin == OP_NL_SIGMOID)
		return;
	for (int r = 0; r < G; r++) {
		/* l >= 1 (the max key contributes e^0) when lo <= hi */
		float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;
		float *yr = y + (size_t)r * hd;
		for (int e = 0; e < hd; e++)
			yr[e] *= inv;
	}
}

/* Queries [t0, t1) of a chunk at pos0 (rows of y, q (T, H, hd)), KV heads
 * [kv0, kv1), by the reference. */
static void attn_core_ref(float *y, const float *q, const op_kv_cache *kc, const op_kv_cache *vc,
                          const op_attn_cfg *cfg, int64_t pos0, int kv0, int kv1, int t0, int t1)
{
	int H = cfg->heads, KV = cfg->kv_heads, hd = cfg->head_dim, G = H / KV;
	float scale = 1.0f / sqrtf((float)hd);
	size_t qrow = (size_t)H * hd;
	for (int t = t0; t < t1; t++) {
		int64_t i = pos0 + t, lo = attn_lo(cfg, i);
		for (int g = kv0; g < kv1; g++) {
			size_t off = (size_t)t * qrow + (size_t)g * G * hd;
			attn_group(y + off, q + off, kc, vc, g, G, hd, lo, i, scale, cfg->nonlin);
		}
	}
}

/* ---- fast path ----------------------------------------------------------------- */

/* Keys per block (positions jb .. jb + ATTN_KB - 1, jb a multiple of it). */
#define ATTN_KB 16
/* Query rows per tile of a prefill: ATTN_TILE_ROWS / G queries (at least
 * one) of G heads each, so K and V rows are reused from L1 by all of them. */
#define ATTN_TILE_ROWS 8
/* Rows of a tile at most: a whole group when G > ATTN_TILE_ROWS. */
#define ATTN_MAX_ROWS (OP_ATTN_MAX_GROUP > ATTN_TILE_ROWS ? OP_ATTN_MAX_GROUP : ATTN_TILE_ROWS)
/* Rows the score kernel holds in registers (x 4 keys accumulators), rows the
 * value kernel holds (one accumulator each). */
#if defined(MIX_ISA_AVX2)
#define QK_ROWS 2 /* 16 ymm registers */
#else
#define QK_ROWS 4
#endif
#define PV_ROWS 8
#define PV_ACC 8 /* accumulators of the value kernel */
/* Software prefetch of the K and V rows of the tile's heads this many
 * blocks ahead, into L2 (__builtin_prefetch locality 2: prefetcht1). The
 * hardware prefetchers follow the position-major stream well on the x86
 * machine this was tuned on (no measurable difference, -D to experiment);
 * it is kept for rows longer than a page (many KV heads, f32), where they
 * stop at page boundaries. */
#ifndef ATTN_PREFETCH_BLOCKS
#define ATTN_PREFETCH_BLOCKS 2
#endif
#ifndef ATTN_PF_LOC
#define ATTN_PF_LOC 2
#endif
/* row_max / row_sum below handle a block row of 16 lanes */
_Static_assert(ATTN_KB == 16, "the block reductions assume 16 keys per block");

#if defined(__GNUC__)
#define ATTN_INLINE inline __attribute__((always_inline))
#define ATTN_UNROLL _Pragma("GCC unroll 16")
#define ATTN_PREFETCH(p) __builtin_prefetch((p), 0, ATTN_PF_LOC)
#else
#define ATTN_INLINE inline
#define ATTN_UNROLL
#define ATTN_PREFETCH(p) ((void)(p))
#endif

/* Vectors of VW floats: loads of a chunk of a row (f32, or f16 converted;
 * _n: the first n < VW lanes, the rest zero), stores, arithmetic. */
#if defined(MIX_ISA_AVX512)
#define VW 16
typedef __m512 vf;
static ATTN_INLINE __mmask16 v_mask(int n) { return (__mmask16)((1u << n) - 1u); }
static ATTN_INLINE vf v_zero(void) { return _mm512_setzero_ps(); }
static ATTN_INLINE vf v_set1(float x) { return _mm512_set1_ps(x); }
static ATTN_INLINE vf v_load(const float *p) { return _mm512_loadu_ps(p); }
static ATTN_INLINE vf v_load_n(const float *p, int n)
{
	return _mm512_maskz_loadu_ps(v_mask(n), p);
}
static ATTN_INLINE vf v_load_h(const uint16_t *p)
{
	return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
}
static ATTN_INLINE vf v_load_h_n(const uint16_t *p, int n)
{
	return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(v_mask(n), p));
}
static ATTN_INLINE void v_store(float *p, vf x) { _mm512_storeu_ps(p, x); }
static ATTN_INLINE void v_store_n(float *p, vf x, int n) { _mm512_mask_storeu_ps(p, v_mask(n), x); }
static ATTN_INLINE vf v_fma(vf a, vf b, vf c) { return _mm512_fmadd_ps(a, b, c); }
static ATTN_INLINE vf v_mul(vf a, vf b) { return _mm512_mul_ps(a, b); }
static ATTN_INLINE vf v_sub(vf a, vf b) { return _mm512_sub_ps(a, b); }

/* dst[0..3] = (sum of the lanes of a_i) * scale. */
static ATTN_INLINE void v_reduce4(float *dst, vf a0, vf a1, vf a2, vf a3, float scale)
{
	/* 128-bit quarters: x01 = [a0 q0+q2, a0 q1+q3, a1 q0+q2, a1 q1+q3] */
	__m512 x01 = _mm512_add_ps(_mm512_shuffle_f32x4(a0, a1, 0x44),
	                           _mm512_shuffle_f32x4(a0, a1, 0xee));
	__m512 x23 = _mm512_add_ps(_mm512_shuffle_f32x4(a2, a3, 0x44),
	                           _mm512_shuffle_f32x4(a2, a3, 0xee));
	/* quarter i: 4 partial sums of a_i */
	__m512 x = _mm512_add_ps(_mm512_shuffle_f32x4(x01, x23, 0x88),
	                         _mm512_shuffle_f32x4(x01, x23, 0xdd));
	x = _mm512_add_ps(x, _mm512_permute_ps(x, 0x4e));
	x = _mm512_add_ps(x, _mm512_permute_ps(x, 0xb1));
	__m128 s = _mm512_castps512_ps128(
		_mm512_permutexvar_ps(_mm512_set_epi32(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 12, 8, 4, 0), x));
	_mm_storeu_ps(dst, _mm_mul_ps(s, _mm_set1_ps(scale)));
}

/* Max and sum of lanes a..b of a block's row of ATTN_KB (= VW) floats. */
static ATTN_INLINE float row_max(const float *s, int a, int b)
{
	return _mm512_mask_reduce_max_ps((__mmask16)(v_mask(b + 1) & ~v_mask(a)), _mm512_loadu_ps(s));
}
static ATTN_INLINE float row_sum(const float *s, int a, int b)
{
	return _mm512_mask_reduce_add_ps((__mmask16)(v_mask(b + 1) & ~v_mask(a)), _mm512_loadu_ps(s));
}

/* e^x for x <= 0 (Cephes expf's reduction and polynomial, ~1 ulp); 0 below
 * about -104 (scalef gives the subnormals in between). */
static ATTN_INLINE vf v_exp(vf x)
{
	x = _mm512_max_ps(x, _mm512_set1_ps(-104.0f));
	__m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
	                                _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
	__m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
	r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
	__m512 p = _mm512_set1_ps(1.9875691500e-4f);
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
	p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r);
	p = _mm512_add_ps(p, _mm512_set1_ps(1.0f));
	return _mm512_scalef_ps(p, n);
}

/* sigmoid without overflow: e = e^-|x|, 1 / (1 + e) for x >= 0, e / (1 + e) else. */
static ATTN_INLINE vf v_sigmoid(vf x)
{
	__m512 e = v_exp(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_abs_ps(x)));
	__m512 d = _mm512_add_ps(_mm512_set1_ps(1.0f), e);
	__mmask16 pos = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_GE_OQ);
	return _mm512_mask_blend_ps(pos, _mm512_div_ps(e, d), _mm512_div_ps(_mm512_set1_ps(1.0f), d));
}

#elif defined(MIX_ISA_AVX2)
#define VW 8
typedef __m256 vf;
static ATTN_INLINE __m256i v_maski(int n)
{
	return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
static ATTN_INLINE vf v_zero(void) { return _mm256_setzero_ps(); }
static ATTN_INLINE vf v_set1(float x) { return _mm256_set1_ps(x); }
static ATTN_INLINE vf v_load(const float *p) { return _mm256_loadu_ps(p); }
static ATTN_INLINE vf v_load_n(const float *p, int n) { return _mm256_maskload_ps(p, v_maski(n)); }
static ATTN_INLINE vf v_load_h(const uint16_t *p)
{
	return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}
static ATTN_INLINE vf v_load_h_n(const uint16_t *p, int n)
{
	uint16_t b[8] = {0};
	memcpy(b, p, (size_t)n * sizeof *p);
	return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)b));
}
static ATTN_INLINE void v_store(float *p, vf x) { _mm256_storeu_ps(p, x); }
static ATTN_INLINE void v_store_n(float *p, vf x, int n) { _mm256_maskstore_ps(p, v_maski(n), x); }
static ATTN_INLINE vf v_fma(vf a, vf b, vf c) { return _mm256_fmadd_ps(a, b, c); }
static ATTN_INLINE vf v_mul(vf a, vf b) { return _mm256_mul_ps(a, b); }
static ATTN_INLINE vf v_sub(vf a, vf b) { return _mm256_sub_ps(a, b); }

static ATTN_INLINE void v_reduce4(float *dst, vf a0, vf a1, vf a2, vf a3, float scale)
{
	/* h = [a0 0..3, a1 0..3, a2 0..3, a3 0..3 | the same of lanes 4..7] */
	__m256 h = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
	__m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
	_mm_storeu_ps(dst, _mm_mul_ps(s, _mm_set1_ps(scale)));
}

/* Max and sum of lanes a..b of a block's row of ATTN_KB (= 2 VW) floats. */
static ATTN_INLINE float row_max(const float *s, int a, int b)
{
	__m256 ninf = _mm256_set1_ps(-INFINITY);
	__m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), av = _mm256_set1_epi32(a - 1);
	__m256i bv = _mm256_set1_epi32(b + 1), lane8 = _mm256_add_epi32(lane, _mm256_set1_epi32(8));
	__m256 in0 = _mm256_castsi256_ps(_mm256_and_si256(_mm256_cmpgt_epi32(lane, av),
	                                                  _mm256_cmpgt_epi32(bv, lane)));
	__m256 in1 = _mm256_castsi256_ps(_mm256_and_si256(_mm256_cmpgt_epi32(lane8, av),
	                                                  _mm256_cmpgt_epi32(bv, lane8)));
	__m256 x = _mm256_max_ps(_mm256_blendv_ps(ninf, _mm256_loadu_ps(s), in0),
	                         _mm256_blendv_ps(ninf, _mm256_loadu_ps(s + 8), in1));
	__m128 h = _mm_max_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
	h = _mm_max_ps(h, _mm_movehl_ps(h, h));
	h = _mm_max_ss(h, _mm_movehdup_ps(h));
	return _mm_cvtss_f32(h);
}
static ATTN_INLINE float row_sum(const float *s, int a, int b)
{
	__m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), av = _mm256_set1_epi32(a - 1);
	__m256i bv = _mm256_set1_epi32(b + 1), lane8 = _mm256_add_epi32(lane, _mm256_set1_epi32(8));
	__m256 in0 = _mm256_castsi256_ps(_mm256_and_si256(_mm256_cmpgt_epi32(lane, av),
	                                                  _mm256_cmpgt_epi32(bv, lane)));
	__m256 in1 = _mm256_castsi256_ps(_mm256_and_si256(_mm256_cmpgt_epi32(lane8, av),
	                                                  _mm256_cmpgt_epi32(bv, lane8)));
	__m256 x = _mm256_add_ps(_mm256_and_ps(_mm256_loadu_ps(s), in0),
	                         _mm256_and_ps(_mm256_loadu_ps(s + 8), in1));
	__m128 h = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
	h = _mm_add_ps(h, _mm_movehl_ps(h, h));
	h = _mm_add_ss(h, _mm_movehdup_ps(h));
	return _mm_cvtss_f32(h);
}

/* e^x for x <= 0, as the AVX-512 version; 0 below -87 (no subnormals). */
static ATTN_INLINE vf v_exp(vf x0)
{
	__m256 x = _mm256_max_ps(x0, _mm256_set1_ps(-87.0f));
	__m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
	                           _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
	__m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
	r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
	__m256 p = _mm256_set1_ps(1.9875691500e-4f);
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
	p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r);
	p = _mm256_add_ps(p, _mm256_set1_ps(1.0f));
	__m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
	p = _mm256_mul_ps(p, _mm256_castsi256_ps(e));
	return _mm256_and_ps(p, _mm256_cmp_ps(x0, _mm256_set1_ps(-87.0f), _CMP_GE_OQ));
}

static ATTN_INLINE vf v_sigmoid(vf x)
{
	__m256 ax = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x);
	__m256 e = v_exp(_mm256_sub_ps(_mm256_setzero_ps(), ax));
	__m256 d = _mm256_add_ps(_mm256_set1_ps(1.0f), e);
	__m256 pos = _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_GE_OQ);
	return _mm256_blendv_ps(_mm256_div_ps(e, d), _mm256_div_ps(_mm256_set1_ps(1.0f), d), pos);
}

#elif defined(MIX_ISA_NEON)
#define VW 4
typedef float32x4_t vf;
static ATTN_INLINE vf v_zero(void) { return vdupq_n_f32(0.0f); }
static ATTN_INLINE vf v_set1(float x) { return vdupq_n_f32(x); }
static ATTN_INLINE vf v_load(const float *p) { return vld1q_f32(p); }
static ATTN_INLINE vf v_load_n(const float *p, int n)
{
	float b[4] = {0};
	memcpy(b, p, (size_t)n * sizeof *p);
	return vld1q_f32(b);
}
static ATTN_INLINE vf v_load_h(const uint16_t *p)
{
	return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p)));
}
static ATTN_INLINE vf v_load_h_n(const uint16_t *p, int n)
{
	uint16_t b[4] = {0};
	memcpy(b, p, (size_t)n * sizeof *p);
	return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(b)));
}
static ATTN_INLINE void v_store(float *p, vf x) { vst1q_f32(p, x); }
static ATTN_INLINE void v_store_n(float *p, vf x, int n)
{
	float b[4];
	vst1q_f32(b, x);
	memcpy(p, b, (size_t)n * sizeof *p);
}
static ATTN_INLINE vf v_fma(vf a, vf b, vf c) { return vfmaq_f32(c, a, b); }
static ATTN_INLINE vf v_mul(vf a, vf b) { return vmulq_f32(a, b); }
static ATTN_INLINE vf v_sub(vf a, vf b) { return vsubq_f32(a, b); }

static ATTN_INLINE void v_reduce4(float *dst, vf a0, vf a1, vf a2, vf a3, float scale)
{
	float32x4_t s = vpaddq_f32(vpaddq_f32(a0, a1), vpaddq_f32(a2, a3));
	vst1q_f32(dst, vmulq_n_f32(s, scale));
}

/* Max and sum of lanes a..b of a block's row of ATTN_KB (= 4 VW) floats. */
static ATTN_INLINE uint32x4_t row_lanes(int k, int a, int b)
{
	static const uint32_t idx[4] = {0, 1, 2, 3};
	uint32x4_t lane = vaddq_u32(vld1q_u32(idx), vdupq_n_u32((uint32_t)k));
	return vandq_u32(vcgeq_u32(lane, vdupq_n_u32((uint32_t)a)),
	                 vcleq_u32(lane, vdupq_n_u32((uint32_t)b)));
}
static ATTN_INLINE float row_max(const float *s, int a, int b)
{
	float32x4_t ninf = vdupq_n_f32(-INFINITY), x = ninf;
	for (int k = 0; k < ATTN_KB; k += 4)
		x = vmaxq_f32(x, vbslq_f32(row_lanes(k, a, b), vld1q_f32(s + k), ninf));
	return vmaxvq_f32(x);
}
static ATTN_INLINE float row_sum(const float *s, int a, int b)
{
	float32x4_t x = vdupq_n_f32(0.0f);
	for (int k = 0; k < ATTN_KB; k += 4)
		x = vaddq_f32(x, vreinterpretq_f32_u32(vandq_u32(row_lanes(k, a, b),
		                                                 vreinterpretq_u32_f32(vld1q_f32(s + k)))));
	return vaddvq_f32(x);
}

static ATTN_INLINE vf v_exp(vf x0)
{
	float32x4_t x = vmaxq_f32(x0, vdupq_n_f32(-87.0f));
	float32x4_t n = vrndnq_f32(vmulq_n_f32(x, 1.44269504088896341f));
	float32x4_t r = vfmsq_f32(x, n, vdupq_n_f32(0.693359375f));
	r = vfmsq_f32(r, n, vdupq_n_f32(-2.12194440e-4f));
	float32x4_t p = vdupq_n_f32(1.9875691500e-4f);
	p = vfmaq_f32(vdupq_n_f32(1.3981999507e-3f), p, r);
	p = vfmaq_f32(vdupq_n_f32(8.3334519073e-3f), p, r);
	p = vfmaq_f32(vdupq_n_f32(4.1665795894e-2f), p, r);
	p = vfmaq_f32(vdupq_n_f32(1.6666665459e-1f), p, r);
	p = vfmaq_f32(vdupq_n_f32(5.0000001201e-1f), p, r);
	p = vfmaq_f32(r, p, vmulq_f32(r, r));
	p = vaddq_f32(p, vdupq_n_f32(1.0f));
	int32x4_t e = vshlq_n_s32(vaddq_s32(vcvtq_s32_f32(n), vdupq_n_s32(127)), 23);
	p = vmulq_f32(p, vreinterpretq_f32_s32(e));
	uint32x4_t keep = vcgeq_f32(x0, vdupq_n_f32(-87.0f));
	return vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(p), keep));
}

static ATTN_INLINE vf v_sigmoid(vf x)
{
	float32x4_t e = v_exp(vnegq_f32(vabsq_f32(x)));
	float32x4_t d = vaddq_f32(vdupq_n_f32(1.0f), e);
	uint32x4_t pos = vcgeq_f32(x, vdupq_n_f32(0.0f));
	return vbslq_f32(pos, vdivq_f32(vdupq_n_f32(1.0f), d), vdivq_f32(e, d));
}

#else /* scalar: "vectors" of one float, the arithmetic of the reference */
#define VW 1
typedef float vf;
static ATTN_INLINE vf v_zero(void) { return 0.0f; }
static ATTN_INLINE vf v_set1(float x) { return x; }
static ATTN_INLINE vf v_load(const float *p) { return *p; }
static ATTN_INLINE vf v_load_n(const float *p, int n) { (void)n; return *p; }
static ATTN_INLINE vf v_load_h(const uint16_t *p) { return mix_f16_to_f32(*p); }
static ATTN_INLINE vf v_load_h_n(const uint16_t *p, int n) { (void)n; return mix_f16_to_f32(*p); }
static ATTN_INLINE void v_store(float *p, vf x) { *p = x; }
static ATTN_INLINE void v_store_n(float *p, vf x, int n) { (void)n; *p = x; }
/* not fused: -ffp-contract=off keeps a * b + c two roundings, as the reference */
static ATTN_INLINE vf v_fma(vf a, vf b, vf c) { return a * b + c; }
static ATTN_INLINE vf v_mul(vf a, vf b) { return a * b; }
static ATTN_INLINE vf v_sub(vf a, vf b) { return a - b; }
static ATTN_INLINE void v_reduce4(float *dst, vf a0, vf a1, vf a2, vf a3, float scale)
{
	dst[0] = a0 * scale;
	dst[1] = a1 * scale;
	dst[2] = a2 * scale;
	dst[3] = a3 * scale;
}
static ATTN_INLINE float row_max(const float *s, int a, int b)
{
	float mx = s[a];
	for (int i = a + 1; i <= b; i++)
		mx = s[i] > mx ? s[i] : mx;
	return mx;
}
static ATTN_INLINE float row_sum(const float *s, int a, int b)
{
	float sum = 0.0f;
	for (int i = a; i <= b; i++)
		sum += s[i];
	return sum;
}
static ATTN_INLINE vf v_exp(vf x) { return expf(x); }
static ATTN_INLINE vf v_sigmoid(vf x) { return mix_sigmoid(x); }
#endif

/* Chunk c (n lanes, n == VW or the tail) of a K or V row. */
static ATTN_INLINE vf kv_load(const void *row, bool f16, int c, int n)
{
	if (f16)
		return n == VW ? v_load_h((const uint16_t *)row + c) : v_load_h_n((const uint16_t *)row + c, n);
	return n == VW ? v_load((const float *)row + c) : v_load_n((const float *)row + c, n);
}

/* S[r * ATTN_KB + i] = (q_r . k_i) * scale for NR rows and the 4 keys k[0..3]. */
static ATTN_INLINE void qk_4(float *S, const float *const *q, int NR, const void *const *k,
                             bool f16, int hd, float scale)
{
	vf acc[QK_ROWS][4];
	ATTN_UNROLL
	for (int r = 0; r < NR; r++)
		ATTN_UNROLL
		for (int i = 0; i < 4; i++)
			acc[r][i] = v_zero();
	int c = 0;
	for (; c + VW <= hd; c += VW) {
		vf kv[4];
		ATTN_UNROLL
		for (int i = 0; i < 4; i++)
			kv[i] = kv_load(k[i], f16, c, VW);
		ATTN_UNROLL
		for (int r = 0; r < NR; r++) {
			vf qv = v_load(q[r] + c);
			ATTN_UNROLL
			for (int i = 0; i < 4; i++)
				acc[r][i] = v_fma(qv, kv[i], acc[r][i]);
		}
	}
	if (c < hd) {
		int n = hd - c;
		vf kv[4];
		ATTN_UNROLL
		for (int i = 0; i < 4; i++)
			kv[i] = kv_load(k[i], f16, c, n);
		ATTN_UNROLL
		for (int r = 0; r < NR; r++) {
			vf qv = v_load_n(q[r] + c, n);
			ATTN_UNROLL
			for (int i = 0; i < 4; i++)
				acc[r][i] = v_fma(qv, kv[i], acc[r][i]);
		}
	}
	ATTN_UNROLL
	for (int r = 0; r < NR; r++)
		v_reduce4(S + (size_t)r * ATTN_KB, acc[r][0], acc[r][1], acc[r][2], acc[r][3], scale);
}

/* Scores of R rows against the 4-key groups of block lanes [i0, i1]. */
static void qk_block(float *S, const float *const *q, int R, const void *const *k, int i0, int i1,
                     bool f16, int hd, float scale)
{
	for (int i = i0 & ~3; i <= i1; i += 4)
		for (int r = 0; r < R; r += QK_ROWS) {
			int nr = R - r < QK_ROWS ? R - r : QK_ROWS;
			float *s = S + (size_t)r * ATTN_KB + i;
			const float *const *qr = q + r;
#define QK_CASE(NR)                                            \
	if (f16)                                                   \
		qk_4(s, qr, NR, k + i, true, hd, scale);               \
	else                                                       \
		qk_4(s, qr, NR, k + i, false, hd, scale);              \
	break
			switch (nr) {
			case 1: QK_CASE(1);
#if QK_ROWS > 2
			case 3: QK_CASE(3);
			case 4: QK_CASE(4);
#endif
			default: QK_CASE(2);
			}
#undef QK_CASE
		}
}

/* y_r = y_r * corr[r] + sum_{i=i0..i1} P[r * ATTN_KB + i] v_i on chunk c (n
 * lanes) of NR rows. */
static ATTN_INLINE void pv_chunk(float *const *y, int NR, const float *P, const float *corr,
                                 const void *const *v, int i0, int i1, bool f16, int c, int n)
{
	vf acc[PV_ROWS];
	ATTN_UNROLL
	for (int r = 0; r < NR; r++)
		acc[r] = v_mul(n == VW ? v_load(y[r] + c) : v_load_n(y[r] + c, n), v_set1(corr[r]));
	for (int i = i0; i <= i1; i++) {
		vf vv = kv_load(v[i], f16, c, n);
		ATTN_UNROLL
		for (int r = 0; r < NR; r++)
			acc[r] = v_fma(v_set1(P[(size_t)r * ATTN_KB + i]), vv, acc[r]);
	}
	ATTN_UNROLL
	for (int r = 0; r < NR; r++) {
		if (n == VW)
			v_store(y[r] + c, acc[r]);
		else
			v_store_n(y[r] + c, acc[r], n);
	}
}

/* The same on CH full chunks c .. c + CH * VW - 1 at once: NR * CH
 * independent accumulations, enough to cover the FMA latency when NR is
 * small (decode). Every element still adds its keys in order: the same bits
 * as chunk by chunk. */
static ATTN_INLINE void pv_span(float *const *y, int NR, int CH, const float *P,
                                const float *corr, const void *const *v, int i0, int i1,
                                bool f16, int c)
{
	vf acc[PV_ACC];
	ATTN_UNROLL
	for (int r = 0; r < NR; r++)
		ATTN_UNROLL
		for (int h = 0; h < CH; h++)
			acc[r * CH + h] = v_mul(v_load(y[r] + c + h * VW), v_set1(corr[r]));
	for (int i = i0; i <= i1; i++) {
		ATTN_UNROLL
		for (int h = 0; h < CH; h++) {
			vf vv = kv_load(v[i], f16, c + h * VW, VW);
			ATTN_UNROLL
			for (int r = 0; r < NR; r++)
				acc[r * CH + h] = v_fma(v_set1(P[(size_t)r * ATTN_KB + i]), vv, acc[r * CH + h]);
		}
	}
	ATTN_UNROLL
	for (int r = 0; r < NR; r++)
		ATTN_UNROLL
		for (int h = 0; h < CH; h++)
			v_store(y[r] + c + h * VW, acc[r * CH + h]);
}

static ATTN_INLINE void pv_rows(float *const *y, int NR, const float *P, const float *corr,
                                const void *const *v, int i0, int i1, bool f16, int hd)
{
	int c = 0;
	/* chunks per pass: NR * CH <= PV_ACC accumulators */
	enum { CH1 = PV_ACC, CH2 = PV_ACC / 2, CH4 = PV_ACC / 4 };
	if (NR == 1)
		for (; c + CH1 * VW <= hd; c += CH1 * VW)
			pv_span(y, NR, CH1, P, corr, v, i0, i1, f16, c);
	else if (NR == 2)
		for (; c + CH2 * VW <= hd; c += CH2 * VW)
			pv_span(y, NR, CH2, P, corr, v, i0, i1, f16, c);
	else if (NR <= 4)
		for (; c + CH4 * VW <= hd; c += CH4 * VW)
			pv_span(y, NR, CH4, P, corr, v, i0, i1, f16, c);
	for (; c + VW <= hd; c += VW)
		pv_chunk(y, NR, P, corr, v, i0, i1, f16, c, VW);
	if (c < hd)
		pv_chunk(y, NR, P, corr, v, i0, i1, f16, c, hd - c);
}

static void pv_block(float *const *y, int R, const float *P, const float *corr,
                     const void *const *v, int i0, int i1, bool f16, int hd)
{
	for (int r = 0; r < R; r += PV_ROWS) {
		int nr = R - r < PV_ROWS ? R - r : PV_ROWS;
		const float *p = P + (size_t)r * ATTN_KB;
#define PV_CASE2(NR)                                           \
	if (f16)                                                   \
		pv_rows(y + r, NR, p, corr + r, v, i0, i1, true, hd);  \
	else                                                       \
		pv_rows(y + r, NR, p, corr + r, v, i0, i1, false, hd); \
	break
		switch (nr) {
		case 1: PV_CASE2(1);
		case 2: PV_CASE2(2);
		case 3: PV_CASE2(3);
		case 4: PV_CASE2(4);
		case 5: PV_CASE2(5);
		case 6: PV_CASE2(6);
		case 7: PV_CASE2(7);
		default: PV_CASE2(8);
		}
#undef PV_CASE2
	}
}

/* Byte offsets in the cache c of the rows of positions jb + i, i <
 * ATTN_KB; lanes outside [i0, i1] get the row of jb + i0 (their positions
 * may not be held; the score kernel reads whole groups of 4 lanes). */
static void kv_block_offsets(size_t *off, const op_kv_cache *c, int64_t jb, int i0, int i1)
{
	size_t stride = kv_row(c) * kv_elem_bytes(c->type);
	int64_t s = (jb + i0) % c->cap;
	for (int i = i0; i <= i1; i++) {
		off[i] = (size_t)s * stride;
		if (++s == c->cap)
			s = 0;
	}
	for (int i = 0; i < i0; i++)
		off[i] = off[i0];
	for (int i = i1 + 1; i < ATTN_KB; i++)
		off[i] = off[i0];
}

/* Prefetch (into L2) the rows of KV heads g0..g1-1 of positions j .. j + n - 1:
 * a contiguous span per position. */
static void kv_prefetch(const op_kv_cache *c, int g0, int g1, int64_t j, int n)
{
	size_t es = kv_elem_bytes(c->type), stride = kv_row(c) * es;
	size_t bytes = (size_t)(g1 - g0) * c->head_dim * es;
	const char *base = (const char *)c->data + (size_t)g0 * c->head_dim * es;
	int64_t s = j % c->cap;
	for (int i = 0; i < n; i++) {
		const char *p = base + (size_t)s * stride;
		for (size_t o = 0; o < bytes; o += 64)
			ATTN_PREFETCH(p + o);
		ATTN_PREFETCH(p + bytes - 1);
		if (++s == c->cap)
			s = 0;
	}
}

/* Queries t0..t1-1 of a chunk at pos0 (query t at position pos0 + t) for
 * KV heads g0..g1-1, all G query heads of each: rows r = ((g - g0) * nq + t)
 * * G + h, (g1 - g0) * (t1 - t0) * G <= ATTN_MAX_ROWS. Several KV heads in one
 * pass over the positions (decode) read each position's K and V rows of
 * those heads together, a contiguous stream; the arithmetic of a row is the
 * same however many heads or queries share its tile. */
static void attn_tile(float *y, const float *q, const op_kv_cache *kc, const op_kv_cache *vc,
                      const op_attn_cfg *cfg, int64_t pos0, int g0, int g1, int t0, int t1)
{
	int H = cfg->heads, hd = cfg->head_dim, G = H / cfg->kv_heads;
	int nq = t1 - t0, RG = nq * G, R = (g1 - g0) * RG; /* rows per KV head, in all */
	bool softmax = cfg->nonlin != OP_NL_SIGMOID;
	bool kf16 = kc->type == OP_KV_F16, vf16 = vc->type == OP_KV_F16;
	float scale = 1.0f / sqrtf((float)hd);
	size_t qrow = (size_t)H * hd;
	float S[ATTN_MAX_ROWS * ATTN_KB];
	float m[ATTN_MAX_ROWS], l[ATTN_MAX_ROWS], corr[ATTN_MAX_ROWS];
	const float *qr[ATTN_MAX_ROWS];
	float *yr[ATTN_MAX_ROWS];
	const void *kr[ATTN_KB], *vr[ATTN_KB];
	size_t koff[ATTN_KB], voff[ATTN_KB];
	int64_t lo_q[ATTN_TILE_ROWS];
	int qa[ATTN_TILE_ROWS], qb[ATTN_TILE_ROWS];

	for (int r = 0; r < R; r++) {
		int g = g0 + r / RG, t = r % RG / G, h = r % G;
		size_t off = (size_t)(t0 + t) * qrow + ((size_t)g * G + (size_t)h) * hd;
		qr[r] = q + off;
		yr[r] = y + off;
		memset(yr[r], 0, (size_t)hd * sizeof(float));
		m[r] = -INFINITY;
		l[r] = 0.0f;
	}
	memset(S, 0, (size_t)R * ATTN_KB * sizeof(float));
	for (int t = 0; t < nq; t++)
		lo_q[t] = attn_lo(cfg, pos0 + t0 + t);
	int64_t first = lo_q[0], last = pos0 + t1 - 1;
	for (int64_t jb = first / ATTN_KB * ATTN_KB; jb <= last; jb += ATTN_KB) {
		int64_t je = jb + ATTN_KB - 1;
		/* each query's keys in this block, lanes qa..qb; the queries with
		 * some are contiguous (lo and the position both grow with t) */
		int ta = -1, tb = -1;
		for (int t = 0; t < nq; t++) {
			int64_t a = lo_q[t] > jb ? lo_q[t] : jb, i = pos0 + t0 + t, b = i < je ? i : je;
			if (a > b)
				continue;
			qa[t] = (int)(a - jb);
			qb[t] = (int)(b - jb);
			if (ta < 0)
				ta = t;
			tb = t;
		}
		if (ta < 0)
			continue;
		int i0 = qa[ta], i1 = qb[tb];
		for (int t = ta; t <= tb; t++) {
			if (qa[t] < i0)
				i0 = qa[t];
			if (qb[t] > i1)
				i1 = qb[t];
		}
		int64_t jp = jb + ATTN_PREFETCH_BLOCKS * ATTN_KB;
		if (jp <= last) {
			int np = last - jp + 1 < ATTN_KB ? (int)(last - jp + 1) : ATTN_KB;
			kv_prefetch(kc, g0, g1, jp, np);
			kv_prefetch(vc, g0, g1, jp, np);
		}
		kv_block_offsets(koff, kc, jb, i0, i1);
		kv_block_offsets(voff, vc, jb, i0, i1);
		for (int g = g0; g < g1; g++) {
			int rg = (g - g0) * RG; /* this head's first row */
			const char *kb = (const char *)kc->data + (size_t)g * hd * kv_elem_bytes(kc->type);
			const char *vb = (const char *)vc->data + (size_t)g * hd * kv_elem_bytes(vc->type);
			for (int i = 0; i < ATTN_KB; i++) {
				kr[i] = kb + koff[i];
				vr[i] = vb + voff[i];
			}
			int r0 = rg + ta * G, nr = (tb - ta + 1) * G;
			qk_block(S + (size_t)r0 * ATTN_KB, qr + r0, nr, kr, i0, i1, kf16, hd, scale);
			/* softmax statistics, p over the block's lanes (in S) */
			for (int r = r0; r < r0 + nr; r++) {
				int t = (r - rg) / G, a = qa[t], b = qb[t];
				float *s = S + (size_t)r * ATTN_KB;
				corr[r] = 1.0f;
				if (softmax) {
					float mx = row_max(s, a, b);
					if (mx > m[r]) {
						corr[r] = expf(m[r] - mx); /* 0 on the first block */
						l[r] *= corr[r];
						m[r] = mx;
					}
					vf mv = v_set1(m[r]);
					for (int i = a / VW * VW; i <= b; i += VW)
						v_store(s + i, v_exp(v_sub(v_load(s + i), mv)));
					l[r] += row_sum(s, a, b);
				} else {
					for (int i = a / VW * VW; i <= b; i += VW)
						v_store(s + i, v_sigmoid(v_load(s + i)));
				}
			}
			/* values, by runs of queries with the same lanes */
			for (int t = ta; t <= tb;) {
				int u = t + 1;
				while (u <= tb && qa[u] == qa[t] && qb[u] == qb[t])
					u++;
				int ra = rg + t * G;
				pv_block(yr + ra, (u - t) * G, S + (size_t)ra * ATTN_KB, corr + ra, vr, qa[t],
				         qb[t], vf16, hd);
				t = u;
			}
		}
	}
	if (!softmax)
		return;
	for (int r = 0; r < R; r++) {
		float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;
		vf iv = v_set1(inv);
		int c = 0;
		for (; c + VW <= hd; c += VW)
			v_store(yr[r] + c, v_mul(v_load(yr[r] + c), iv));
		if (c < hd)
			v_store_n(yr[r] + c, v_mul(v_load_n(yr[r] + c, hd - c), iv), hd - c);
	}
}

/* Queries per tile for groups of G heads. */
static int attn_tile_queries(int G)
{
	return G >= ATTN_TILE_ROWS ? 1 : ATTN_TILE_ROWS / G;
}

/* Queries [t0, t1) of a chunk at pos0 (rows of y, q (T, H, hd)), KV heads
 * [kv0, kv1); the caches hold every key they need. */
static void attn_core(float *y, const float *q, const op_kv_cache *kc, const op_kv_cache *vc,
                      const op_attn_cfg *cfg, int64_t pos0, int kv0, int kv1, int t0, int t1)
{
	int G = cfg->heads / cfg->kv_heads, nq = attn_tile_queries(G);
	if (t1 - t0 == 1) {
		/* one query (decode): all the range's heads per pass, as many as
		 * the row arrays take */
		int hpt = ATTN_MAX_ROWS / G;
		for (int g = kv0; g < kv1; g += hpt)
			attn_tile(y, q, kc, vc, cfg, pos0, g, kv1 - g < hpt ? kv1 : g + hpt, t0, t1);
		return;
	}
	for (int g = kv0; g < kv1; g++)
		for (int t = t0; t < t1; t += nq)
			attn_tile(y, q, kc, vc, cfg, pos0, g, g + 1, t, t1 - t < nq ? t1 : t + nq);
}

/* ---- checks and the public functions ----------------------------------------- */

static int attn_check_cfg(const op_attn_cfg *cfg, const op_kv_cache *kc, const op_kv_cache *vc,
                          tl_err *err)
{
	if (cfg->heads < 1 || cfg->kv_heads < 1 || cfg->heads % cfg->kv_heads ||
	    cfg->heads / cfg->kv_heads > OP_ATTN_MAX_GROUP)
		return tl_err_set(err, TL_EINVAL, "attention: heads %d, kv_heads %d: %s", cfg->heads,
		                  cfg->kv_heads, "kv_heads must divide heads, at most 256 per group");
	if (cfg->head_dim < 1 || cfg->head_dim > OP_ATTN_MAX_HD)
		return tl_err_set(err, TL_EINVAL, "attention: head_dim %d: out of range (1..%d)",
		                  cfg->head_dim, OP_ATTN_MAX_HD);
	if (cfg->mask != OP_MASK_NONE && cfg->mask != OP_MASK_WINDOW && cfg->mask != OP_MASK_BLOCK)
		return tl_err_set(err, TL_EINVAL, "attention: mask %d: unknown", cfg->mask);
	if (cfg->mask != OP_MASK_NONE && cfg->len < 1)
		return tl_err_set(err, TL_EINVAL, "attention: len %d: a window or block needs len >= 1",
		                  cfg->len);
	if (cfg->nonlin != OP_NL_SOFTMAX && cfg->nonlin != OP_NL_SIGMOID)
		return tl_err_set(err, TL_EINVAL, "attention: nonlinearity %d: softmax or sigmoid only",
		                  cfg->nonlin);
	const op_kv_cache *cs[2] = {kc, vc};
	for (int i = 0; i < 2; i++)
		if (cs[i]->kv_heads != cfg->kv_heads || cs[i]->head_dim != cfg->head_dim ||
		    cs[i]->cap < 1 || (cs[i]->type != OP_KV_F32 && cs[i]->type != OP_KV_F16))
			return tl_err_set(err, TL_EINVAL,
			                  "attention: %s cache: shape %dx%d, cap %lld, type %d: %s",
			                  i ? "V" : "K", cs[i]->kv_heads, cs[i]->head_dim,
			                  (long long)cs[i]->cap, cs[i]->type,
			                  "does not match the layer (kv_heads x head_dim, cap >= 1)");
	return 0;
}

/* Can cache c serve a chunk of T queries from pos0? `append`: this call
 * writes the chunk into c; otherwise another layer already has. */
static int attn_check_cache(const op_attn_cfg *cfg, const op_kv_cache *c, const char *name,
                            bool append, int T, int64_t pos0, tl_err *err)
{
	int64_t end = pos0 + T; /* one past the last position */
	if (append) {
		if (c->n != pos0)
			return tl_err_set(err, TL_EINVAL,
			                  "attention: %s cache: holds %lld positions, chunk starts at %lld",
			                  name, (long long)c->n, (long long)pos0);
		/* the longest span of keys one query needs must fit the ring */
		int64_t need = end;
		if (cfg->mask != OP_MASK_NONE && cfg->len < need)
			need = cfg->len;
		if (c->cap < need)
			return tl_err_set(err, TL_EINVAL,
			                  "attention: %s cache: %lld positions, the chunk needs %lld",
			                  name, (long long)c->cap, (long long)need);
		return 0;
	}
	/* shared: already appended; the first query's keys must still be held */
	if (c->n < end || attn_lo(cfg, pos0) < c->n - c->cap)
		return tl_err_set(err, TL_EINVAL,
		                  "attention: shared %s cache: holds %lld..%lld, chunk %lld..%lld needs "
		                  "%lld..%lld (a shared ring needs cap >= len + T - 1)",
		                  name, (long long)(c->n > c->cap ? c->n - c->cap : 0),
		                  (long long)c->n - 1, (long long)pos0, (long long)end - 1,
		                  (long long)attn_lo(cfg, pos0), (long long)end - 1);
	return 0;
}

/* Everything op_attn_prefill checks, for a chunk of T queries at pos0 that
 * appends k / v when given (NULL: the cache is shared and already holds them). */
static int attn_check(const op_kv_cache *kc, const op_kv_cache *vc, bool app_k, bool app_v,
                      const op_attn_cfg *cfg, int T, int64_t pos0, tl_err *err)
{
	int rc;
	if ((rc = attn_check_cfg(cfg, kc, vc, err)) < 0)
		return rc;
	if (T < 0 || pos0 < 0)
		return tl_err_set(err, TL_EINVAL, "attention: chunk of %d tokens at %lld: negative", T,
		                  (long long)pos0);
	if ((rc = attn_check_cache(cfg, kc, "K", app_k, T, pos0, err)) < 0 ||
	    (rc = attn_check_cache(cfg, vc, "V", app_v, T, pos0, err)) < 0)
		return rc;
	if (kc == vc && (app_k || app_v))
		return tl_err_set(err, TL_EINVAL, "attention: K and V caches are the same object");
	return 0;
}

/* Append the first tile of the chunk (see op_attn_append); returns its
 * length. The chunk has been checked. */
static int attn_append_tile(op_kv_cache *kc, op_kv_cache *vc, const float *k, const float *v,
                            const op_attn_cfg *cfg, int T, int64_t pos0, tl_err *err)
{
	if (T == 0)
		return 0;
	/* tile [a, b]: after appending it, every ring being appended still
	 * holds lo(a) (lo is non-decreasing, so the whole tile's keys). A full
	 * cache takes the chunk in one tile. */
	int64_t a = pos0, lo_a = attn_lo(cfg, a), b = pos0 + T - 1;
	if (k && lo_a + kc->cap - 1 < b)
		b = lo_a + kc->cap - 1;
	if (v && lo_a + vc->cap - 1 < b)
		b = lo_a + vc->cap - 1;
	/* b >= a: attn_check_cache made cap >= a - lo(a) + 1 */
	if (b < a)
		return tl_err_set(err, TL_EFAIL, "attention: position %lld: internal: empty tile",
		                  (long long)a);
	int n = (int)(b - a + 1);
	if (k)
		op_kv_cache_append(kc, k, n);
	if (v)
		op_kv_cache_append(vc, v, n);
	return n;
}

int op_attn_append(op_kv_cache *kc, op_kv_cache *vc, const float *k, const float *v,
                   const op_attn_cfg *cfg, int T, int64_t pos0, tl_err *err)
{
	int rc = attn_check(kc, vc, k != NULL, v != NULL, cfg, T, pos0, err);
	return rc < 0 ? rc : attn_append_tile(kc, vc, k, v, cfg, T, pos0, err);
}

/* op_attn_prefill by the fast path or the reference: tile by tile, append
 * then attend. */
static int attn_prefill(float *y, const float *q, const float *k, const float *v,
                        op_kv_cache *kc, op_kv_cache *vc, const op_attn_cfg *cfg, int T,
                        int64_t pos0, bool ref, tl_err *err)
{
	// q, y are (T, H, hd); k, v are (T, KV, hd) or NULL (shared cache);
	// kc, vc are [cap][KV][hd] rings holding positions [n - cap, n)
	int rc = attn_check(kc, vc, k != NULL, v != NULL, cfg, T, pos0, err);
	if (rc < 0)
		return rc;
	size_t qrow = (size_t)cfg->heads * cfg->head_dim, kvrow = (size_t)cfg->kv_heads * cfg->head_dim;
	for (int t = 0; t < T;) {
		/* the rest of the chunk passes the checks the whole chunk passed */
		int n = attn_append_tile(kc, vc, k ? k + (size_t)t * kvrow : NULL,
		                         v ? v + (size_t)t * kvrow : NULL, cfg, T - t, pos0 + t, err);
		if (n < 0)
			return n;
		float *yt = y + (size_t)t * qrow;
		const float *qt = q + (size_t)t * qrow;
		if (ref)
			attn_core_ref(yt, qt, kc, vc, cfg, pos0 + t, 0, cfg->kv_heads, 0, n);
		else
			attn_core(yt, qt, kc, vc, cfg, pos0 + t, 0, cfg->kv_heads, 0, n);
		t += n;
	}
	return 0;
}

int op_attn_prefill(float *y, const float *q, const float *k, const float *v, op_kv_cache *kc,
                    op_kv_cache *vc, const op_attn_cfg *cfg, int T, int64_t pos0, tl_err *err)
{
	return attn_prefill(y, q, k, v, kc, vc, cfg, T, pos0, false, err);
}

int op_attn_step(float *y, const float *q, const float *k, const float *v, op_kv_cache *kc,
                 op_kv_cache *vc, const op_attn_cfg *cfg, int64_t pos, tl_err *err)
{
	// q, y are (H, hd); k, v are (KV, hd) or NULL (shared cache)
	int rc = attn_check_cfg(cfg, kc, vc, err);
	if (rc < 0)
		return rc;
	if (pos < 0)
		return tl_err_set(err, TL_EINVAL, "attention: position %lld: negative", (long long)pos);
	return attn_prefill(y, q, k, v, kc, vc, cfg, 1, pos, false, err);
}

int op_attn_prefill_ref(float *y, const float *q, const float *k, const float *v,
                        op_kv_cache *kc, op_kv_cache *vc, const op_attn_cfg *cfg, int T,
                        int64_t pos0, tl_err *err)
{
	return attn_prefill(y, q, k, v, kc, vc, cfg, T, pos0, true, err);
}

int op_attn_step_ref(float *y, const float *q, const float *k, const float *v, op_kv_cache *kc,
                     op_kv_cache *vc, const op_attn_cfg *cfg, int64_t pos, tl_err *err)
{
	int rc = attn_check_cfg(cfg, kc, vc, err);
	if (rc < 0)
		return rc;
	if (pos < 0)
		return tl_err_set(err, TL_EINVAL, "attention: position %lld: negative", (long long)pos);
	return attn_prefill(y, q, k, v, kc, vc, cfg, 1, pos, true, err);
}

int op_attn_prefill_range(float *y, const float *q, const op_kv_cache *kc,
                          const op_kv_cache *vc, const op_attn_cfg *cfg, int T, int64_t pos0,
                          int kv0, int kv1, tl_err *err)
{
	int rc = attn_check(kc, vc, false, false, cfg, T, pos0, err);
	if (rc < 0)
		return rc;
	if (kv0 < 0 || kv1 < kv0 || kv1 > cfg->kv_heads)
		return tl_err_set(err, TL_EINVAL, "attention: KV heads %d..%d: outside 0..%d", kv0,
		                  kv1 - 1, cfg->kv_heads - 1);
	attn_core(y, q, kc, vc, cfg, pos0, kv0, kv1, 0, T);
	return 0;
}

int op_attn_step_range(float *y, const float *q, const op_kv_cache *kc, const op_kv_cache *vc,
                       const op_attn_cfg *cfg, int64_t pos, int kv0, int kv1, tl_err *err)
{
	if (pos < 0)
		return tl_err_set(err, TL_EINVAL, "attention: position %lld: negative", (long long)pos);
	return op_attn_prefill_range(y, q, kc, vc, cfg, 1, pos, kv0, kv1, err);
}

void op_attn_job_run(void *arg, int ith, int nth)
{
	const op_attn_job *j = arg;
	const op_attn_cfg *cfg = j->cfg;
	int KV = cfg->kv_heads, T = j->T;
	if (T == 1 || KV % nth == 0) {
		/* contiguous KV heads: each thread streams its own heads' K and V */
		attn_core(j->y, j->q, j->kc, j->vc, cfg, j->pos0, (int)((int64_t)ith * KV / nth),
		          (int)((int64_t)(ith + 1) * KV / nth), 0, T);
		return;
	}
	/* (KV head, query tile) units dealt round robin: balanced although
	 * later queries see more keys */
	int nq = attn_tile_queries(cfg->heads / KV), nt = (T + nq - 1) / nq;
	for (int64_t u = ith; u < (int64_t)KV * nt; u += nth) {
		int g = (int)(u / nt), t = (int)(u % nt) * nq;
		attn_core(j->y, j->q, j->kc, j->vc, cfg, j->pos0, g, g + 1, t, T - t < nq ? T : t + nq);
	}
}

const char *op_attn_isa(void)
{
	return MIX_ISA_NAME;
}
