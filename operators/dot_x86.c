/*
 * operators/dot_x86.c: the x86 kernels (AVX-512 VNNI and AVX2/FMA builds):
 * the q8_0 activation quantizer, the single-row dot products behind
 * op_vec_dot, and the GEMV / GEMM kernels behind op_matmul.
 *
 * Workload and the choices it drives:
 *  - GEMV (decode) streams ggml-layout weight rows once: it must keep up
 *    with the memory (or LLC) bandwidth, so the per-block work is kept to a
 *    handful of instructions. With AVX-512 two blocks share one zmm: a single
 *    64-byte load brings both blocks (scales and quants), vpermw
 *    spreads them, and vpdpbusd takes the quants as *unsigned* bytes (q4:
 *    q in 0..15; q8: q + 128) against the signed activation; the offset
 *    (8 or 128 times the activation's block sum) is subtracted by starting
 *    the accumulator at a precomputed bias. The activation is prepared once
 *    per call in the matching lane order, with per-lane scale patterns.
 *  - GEMM (prefill) packs a panel of weight rows so that one 64-byte vector
 *    holds 16 rows x 4 consecutive k (vpdpbusd's unit), broadcasts 4 bytes
 *    of an activation row, and keeps a 32-row x 6-column tile of int32 block
 *    sums and float results in registers: per block and tile, 96 vpdpbusd
 *    against 12 conversions and 24 float ops.
 *  - AVX2 with AVX-VNNI (-mavxvnni) uses the 256-bit vpdpbusd the same way
 *    as the AVX-512 GEMM does (unsigned weights, bias), 8 rows per vector.
 *  - Plain AVX2 has no unsigned-by-signed dot without saturation: vpmaddubsw sums
 *    two u8*s8 products into int16 with saturation, which is safe for q4
 *    weights (15 * 127 * 2 < 32767, and up to 8 of those sums fit in int16
 *    before vpmaddwd) and for q8 with the sign trick (|w| * sign(x, w),
 *    127 * 127 * 2 < 32767, since quants are never -128).
 *
 * Everything here must reproduce quant.c's references: integer block sums
 * exactly, and the quantizer bit for bit.
 */
#include "op_kernels_int.h"

#if defined(OP_ISA_AVX512) || defined(OP_ISA_AVX2)

#include <assert.h>
#include <immintrin.h>
#include <string.h>

#define F16_MAX 65504.0f
#define ALWAYS_INLINE inline __attribute__((always_inline))

static inline int32_t load_i32(const void *p)
{
	int32_t v;
	memcpy(&v, p, sizeof v);
	return v;
}

static inline float f16_to_f32(op_f16 h) { return _cvtsh_ss(h); }

/* Software prefetch of the weight stream, OP_PREFETCH_BYTES ahead: the
 * hardware prefetchers alone lose track of the GEMV's row streams (rows of
 * 2-5 KB, two at a time); measured on a Xeon (AVX-512) with a q4_0
 * 4096 x 4096 GEMV over matrices past the LLC: 6.3 GB/s without, 19 GB/s
 * with, flat from 4 to 16 KB ahead. Prefetches past the end of W are
 * harmless (they never fault). */
#ifndef OP_PREFETCH_HINT
#define OP_PREFETCH_HINT _MM_HINT_T0
#endif
static inline void prefetch(const void *p)
{
	_mm_prefetch((const char *)p + OP_PREFETCH_BYTES, OP_PREFETCH_HINT);
}

static inline float hsum256_ps(__m256 v)
{
	__m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}

/* ---- q8_0 quantizer ------------------------------------------------------- */

/* Bit-identical to quant.c's quantize_block_q8_ref: the same amax (max is
 * exact; max_ps returns its second operand when the first is NaN, so NaNs
 * are ignored as fmaxf ignores them), the same IEEE divisions and half
 * conversions (vector or scalar, the results are the same), x * id rounded
 * to nearest even by vcvtps2dq (MXCSR default), clamped to +-127 in float
 * first so huge values saturate the same way. */

/* Per-lane partial |x| maxima of a block (the horizontal step comes later). */
static ALWAYS_INLINE __m256 block_absmax8(const float *x)
{
	const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
	__m256 m = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(x), absmask), _mm256_setzero_ps());
	m = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(x + 8), absmask), m);
	m = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(x + 16), absmask), m);
	return _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(x + 24), absmask), m);
}

/* The quants of a block, given 1/d broadcast in vid; stores 32 bytes. */
static ALWAYS_INLINE void block_apply(const float *x, __m256 vid, int8_t *qs, int32_t *sum)
{
	const __m256 lo = _mm256_set1_ps(-127.0f), hi = _mm256_set1_ps(127.0f);
	/* max(v, lo) gives lo for a NaN v, as fmaxf(NaN, -127) does */
	__m256 v0 = _mm256_min_ps(_mm256_max_ps(_mm256_mul_ps(_mm256_loadu_ps(x), vid), lo), hi);
	__m256 v1 = _mm256_min_ps(_mm256_max_ps(_mm256_mul_ps(_mm256_loadu_ps(x + 8), vid), lo), hi);
	__m256 v2 = _mm256_min_ps(_mm256_max_ps(_mm256_mul_ps(_mm256_loadu_ps(x + 16), vid), lo), hi);
	__m256 v3 = _mm256_min_ps(_mm256_max_ps(_mm256_mul_ps(_mm256_loadu_ps(x + 24), vid), lo), hi);
	__m256i i0 = _mm256_cvtps_epi32(v0), i1 = _mm256_cvtps_epi32(v1);
	__m256i i2 = _mm256_cvtps_epi32(v2), i3 = _mm256_cvtps_epi32(v3);
	if (sum) { /* the values are in -127..127 already: no saturation below */
		__m256i s8 = _mm256_add_epi32(_mm256_add_epi32(i0, i1), _mm256_add_epi32(i2, i3));
		__m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s8), _mm256_extracti128_si256(s8, 1));
		s4 = _mm_add_epi32(s4, _mm_unpackhi_epi64(s4, s4));
		s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 1));
		*sum = _mm_cvtsi128_si32(s4);
	}
	/* packs work per 128-bit lane: the permute restores element order */
	i0 = _mm256_packs_epi32(i0, i1);
	i2 = _mm256_packs_epi32(i2, i3);
	i0 = _mm256_packs_epi16(i0, i2);
	i0 = _mm256_permutevar8x32_epi32(i0, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
	_mm256_storeu_si256((__m256i *)qs, i0);
}

/* One block: the scale in scalar arithmetic. */
static ALWAYS_INLINE op_f16 quantize_block(const float *x, int8_t *qs, int32_t *sum)
{
	__m256 m = block_absmax8(x);
	__m128 h = _mm_max_ps(_mm256_extractf128_ps(m, 1), _mm256_castps256_ps128(m));
	h = _mm_max_ps(h, _mm_movehl_ps(h, h));
	h = _mm_max_ss(h, _mm_movehdup_ps(h));
	float amax = _mm_cvtss_f32(h);
	float d = amax / 127.0f;
	d = d < F16_MAX ? d : F16_MAX;
	op_f16 dh = _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
	float ds = f16_to_f32(dh);
	float id = ds != 0.0f ? 1.0f / ds : 0.0f;
	block_apply(x, _mm256_set1_ps(id), qs, sum);
	return dh;
}

/* Eight blocks: the horizontal maxima by a transposing reduction and the
 * scales in one vector each (the scalar chain of divisions and conversions
 * was the cost of the single-block version: ~60 cycles a block). */
static ALWAYS_INLINE void quantize_blocks8(const float *x, int8_t *qs, op_f16 *d, int32_t *sums)
{
	__m256 m[8];
	for (int b = 0; b < 8; b++)
		m[b] = block_absmax8(x + b * OP_QK);
	__m256 t[4], u[2];
	for (int i = 0; i < 4; i++)
		t[i] = _mm256_max_ps(_mm256_unpacklo_ps(m[2 * i], m[2 * i + 1]),
		                     _mm256_unpackhi_ps(m[2 * i], m[2 * i + 1]));
	for (int i = 0; i < 2; i++)
		u[i] = _mm256_max_ps(_mm256_shuffle_ps(t[2 * i], t[2 * i + 1], _MM_SHUFFLE(1, 0, 1, 0)),
		                     _mm256_shuffle_ps(t[2 * i], t[2 * i + 1], _MM_SHUFFLE(3, 2, 3, 2)));
	/* lane b of amax = block b's max |x| */
	__m256 amax = _mm256_max_ps(_mm256_permute2f128_ps(u[0], u[1], 0x20),
	                            _mm256_permute2f128_ps(u[0], u[1], 0x31));
	__m256 dv = _mm256_min_ps(_mm256_div_ps(amax, _mm256_set1_ps(127.0f)), _mm256_set1_ps(F16_MAX));
	__m128i dh = _mm256_cvtps_ph(dv, _MM_FROUND_TO_NEAREST_INT);
	_mm_storeu_si128((__m128i *)d, dh);
	__m256 ds = _mm256_cvtph_ps(dh);
	__m256 nz = _mm256_cmp_ps(ds, _mm256_setzero_ps(), _CMP_NEQ_OQ);
	__m256 id = _mm256_and_ps(_mm256_div_ps(_mm256_set1_ps(1.0f), ds), nz);
	for (int b = 0; b < 8; b++)
		block_apply(x + b * OP_QK, _mm256_permutevar8x32_ps(id, _mm256_set1_epi32(b)),
		            qs + b * OP_QK, sums ? &sums[b] : NULL);
}

void op_isa_quantize_q8(const float *x, int64_t nb, int8_t *qs, op_f16 *d, int32_t *sums)
{
	int64_t b = 0;
	for (; b + 8 <= nb; b += 8)
		quantize_blocks8(x + b * OP_QK, qs + b * OP_QK, d + b, sums ? sums + b : NULL);
	for (; b < nb; b++)
		d[b] = quantize_block(x + b * OP_QK, qs + b * OP_QK, sums ? &sums[b] : NULL);
}

/* ---- float dot products ------------------------------------------------- */

float op_isa_dot_f32(const float *w, const float *x, int64_t n)
{
	int64_t i = 0;
#if defined(OP_ISA_AVX512)
	__m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
	for (; i + 64 <= n; i += 64) {
		a0 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i), _mm512_loadu_ps(x + i), a0);
		a1 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i + 16), _mm512_loadu_ps(x + i + 16), a1);
		a2 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i + 32), _mm512_loadu_ps(x + i + 32), a2);
		a3 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i + 48), _mm512_loadu_ps(x + i + 48), a3);
	}
	for (; i + 16 <= n; i += 16)
		a0 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i), _mm512_loadu_ps(x + i), a0);
	if (i < n) { /* masked tail: the lanes past n load as zero */
		__mmask16 k = (__mmask16)((1u << (n - i)) - 1);
		a1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(k, w + i), _mm512_maskz_loadu_ps(k, x + i), a1);
	}
	return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
#else
	__m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
	for (; i + 32 <= n; i += 32) {
		a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(x + i), a0);
		a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 8), _mm256_loadu_ps(x + i + 8), a1);
		a2 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 16), _mm256_loadu_ps(x + i + 16), a2);
		a3 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 24), _mm256_loadu_ps(x + i + 24), a3);
	}
	for (; i + 8 <= n; i += 8)
		a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(x + i), a0);
	float s = hsum256_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
	for (; i < n; i++) /* scalar tail */
		s += w[i] * x[i];
	return s;
#endif
}

float op_isa_dot_f16(const op_f16 *w, const float *x, int64_t n)
{
	int64_t i = 0;
#if defined(OP_ISA_AVX512)
	__m512 a0 = _mm512_setzero_ps(), a1 = a0;
	for (; i + 32 <= n; i += 32) {
		__m512 w0 = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(w + i)));
		__m512 w1 = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(w + i + 16)));
		a0 = _mm512_fmadd_ps(w0, _mm512_loadu_ps(x + i), a0);
		a1 = _mm512_fmadd_ps(w1, _mm512_loadu_ps(x + i + 16), a1);
	}
	for (; i + 16 <= n; i += 16)
		a0 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(w + i))),
		                     _mm512_loadu_ps(x + i), a0);
	if (i < n) {
		__mmask16 k = (__mmask16)((1u << (n - i)) - 1);
		__m512 wt = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(k, w + i));
		a1 = _mm512_fmadd_ps(wt, _mm512_maskz_loadu_ps(k, x + i), a1);
	}
	return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
#else
	__m256 a0 = _mm256_setzero_ps(), a1 = a0;
	for (; i + 16 <= n; i += 16) {
		__m256 w0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + i)));
		__m256 w1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + i + 8)));
		a0 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x + i), a0);
		a1 = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x + i + 8), a1);
	}
	float s = hsum256_ps(_mm256_add_ps(a0, a1));
	for (; i < n; i++)
		s += f16_to_f32(w[i]) * x[i];
	return s;
#endif
}

/* ---- quantized dot products (ggml layouts on both sides) ------------------ */

/* Integer dot of 32 signed bytes: 8 int32 partial sums. */
static ALWAYS_INLINE __m256i dot32_i8(__m256i w, __m256i x)
{
	/* sign trick: |w| is unsigned, the sign moves to x (never -128) */
	__m256i u = _mm256_sign_epi8(w, w), s = _mm256_sign_epi8(x, w);
#if defined(OP_ISA_AVX512)
	return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s);
#elif defined(OP_ISA_AVX2_VNNI)
	return _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), u, s);
#else
	return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
#endif
}

/* 32 quants of a q4_0 block as signed bytes q - 8, element order. */
static ALWAYS_INLINE __m256i unpack_q4(const uint8_t *qs)
{
	__m128i t = _mm_loadu_si128((const __m128i *)qs);
	__m256i v = _mm256_set_m128i(_mm_srli_epi16(t, 4), t);
	v = _mm256_and_si256(v, _mm256_set1_epi8(0x0f));
	return _mm256_sub_epi8(v, _mm256_set1_epi8(8));
}

float op_isa_dot_q8_0(const op_block_q8_0 *w, const op_block_q8_0 *x, int64_t nb)
{
	__m256 a0 = _mm256_setzero_ps(), a1 = a0;
	int64_t b = 0;
	for (; b + 2 <= nb; b += 2) {
		__m256i p0 = dot32_i8(_mm256_loadu_si256((const __m256i *)w[b].qs),
		                      _mm256_loadu_si256((const __m256i *)x[b].qs));
		__m256i p1 = dot32_i8(_mm256_loadu_si256((const __m256i *)w[b + 1].qs),
		                      _mm256_loadu_si256((const __m256i *)x[b + 1].qs));
		a0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p0),
		                     _mm256_set1_ps(f16_to_f32(w[b].d) * f16_to_f32(x[b].d)), a0);
		a1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p1),
		                     _mm256_set1_ps(f16_to_f32(w[b + 1].d) * f16_to_f32(x[b + 1].d)), a1);
	}
	for (; b < nb; b++) {
		__m256i p = dot32_i8(_mm256_loadu_si256((const __m256i *)w[b].qs),
		                     _mm256_loadu_si256((const __m256i *)x[b].qs));
		a0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p),
		                     _mm256_set1_ps(f16_to_f32(w[b].d) * f16_to_f32(x[b].d)), a0);
	}
	return hsum256_ps(_mm256_add_ps(a0, a1));
}

float op_isa_dot_q4_0(const op_block_q4_0 *w, const op_block_q8_0 *x, int64_t nb)
{
	__m256 a0 = _mm256_setzero_ps(), a1 = a0;
	int64_t b = 0;
	for (; b + 2 <= nb; b += 2) {
		__m256i p0 = dot32_i8(unpack_q4(w[b].qs), _mm256_loadu_si256((const __m256i *)x[b].qs));
		__m256i p1 = dot32_i8(unpack_q4(w[b + 1].qs),
		                      _mm256_loadu_si256((const __m256i *)x[b + 1].qs));
		a0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p0),
		                     _mm256_set1_ps(f16_to_f32(w[b].d) * f16_to_f32(x[b].d)), a0);
		a1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p1),
		                     _mm256_set1_ps(f16_to_f32(w[b + 1].d) * f16_to_f32(x[b + 1].d)), a1);
	}
	for (; b < nb; b++) {
		__m256i p = dot32_i8(unpack_q4(w[b].qs), _mm256_loadu_si256((const __m256i *)x[b].qs));
		a0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p),
		                     _mm256_set1_ps(f16_to_f32(w[b].d) * f16_to_f32(x[b].d)), a0);
	}
	return hsum256_ps(_mm256_add_ps(a0, a1));
}

#if defined(OP_ISA_AVX512)
/* ======================= AVX-512 VNNI GEMV ================================ */

/* Prepared activation: one 192-byte record per pair of blocks (A, B):
 *   qs[64]    int8 quants in the lane order the weights unpack to;
 *   bias[16]  int32: -off * sum(block quants) in one lane of each block;
 *   dpat[16]  float: the activation scale of the block each lane belongs to.
 * q4_0 weights unpack (vpermw of the nibble bytes, then >> 0 or 4) to the
 * 128-bit lanes [A 0..15 | B 0..15 | A 16..31 | B 16..31]; q8_0 weights are
 * loaded as [A 0..31 | B 0..31]. An odd last block pairs with a zero block. */
typedef struct xpair {
	int8_t qs[64];
	int32_t bias[16];
	float dpat[16];
} xpair;
_Static_assert(sizeof(xpair) == 192, "xpair is three cache lines");

size_t op_isa_gemv_xbytes(enum op_dtype wt, int64_t K)
{
	return (size_t)((K / OP_QK + 1) / 2) * sizeof(xpair);
}

void op_isa_gemv_prepare(enum op_dtype wt, const float *x, int64_t K, void *xq)
{
	xpair *xp = xq;
	int64_t nb = K / OP_QK;
	/* quantize 8 blocks at a time (the vector scale arithmetic), then lay
	 * the pairs out */
	int8_t q[8][OP_QK];
	op_f16 dh[8];
	int32_t s[8];
	for (int64_t b0 = 0; b0 < nb; b0 += 8) {
		int n = nb - b0 < 8 ? (int)(nb - b0) : 8;
		memset(q, 0, sizeof q);
		memset(dh, 0, sizeof dh);
		memset(s, 0, sizeof s);
		op_isa_quantize_q8(x + b0 * OP_QK, n, q[0], dh, s);
		for (int h = 0; h < n; h += 2) {
			/* an odd last block pairs with the zero block after it */
			float d[2] = {f16_to_f32(dh[h]), h + 1 < n ? f16_to_f32(dh[h + 1]) : 0.0f};
			const int8_t *qa = q[h], *qb = q[h + 1];
			int32_t sa = s[h], sb = h + 1 < n ? s[h + 1] : 0;
			xpair *o = &xp[(b0 + h) / 2];
			memset(o->bias, 0, sizeof o->bias);
			if (wt == OP_Q4_0) {
				memcpy(o->qs, qa, 16);
				memcpy(o->qs + 16, qb, 16);
				memcpy(o->qs + 32, qa + 16, 16);
				memcpy(o->qs + 48, qb + 16, 16);
				o->bias[0] = -8 * sa;
				o->bias[4] = -8 * sb;
				for (int l = 0; l < 16; l++)
					o->dpat[l] = d[(l >> 2) & 1];
			} else {
				memcpy(o->qs, qa, 32);
				memcpy(o->qs + 32, qb, 32);
				o->bias[0] = -128 * sa;
				o->bias[8] = -128 * sb;
				for (int l = 0; l < 16; l++)
					o->dpat[l] = d[l >> 3];
			}
		}
	}
}

/* vpermw indices (16-bit words of the loaded pair). q4_0 pair = 36 bytes:
 * word 0 scale A, words 1..8 nibbles A, word 9 scale B, words 10..17 nibbles B. */
static const uint16_t q4_idx_qs[32] = {
	1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 14, 15, 16, 17,
	1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 14, 15, 16, 17};
static const uint16_t q4_shift[32] = {
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4};
static const uint16_t q4_idx_d[16] = {0, 0, 0, 0, 9, 9, 9, 9, 0, 0, 0, 0, 9, 9, 9, 9};
/* q8_0 pair = 68 bytes: scale A at word 0, scale B at word 17. */
static const uint16_t q8_idx_d[32] = {0, 0, 0, 0, 0, 0, 0, 0, 17, 17, 17, 17, 17, 17, 17, 17};

typedef struct q4_consts {
	__m512i idx_qs, shift, low4;
	__m256i idx_d;
} q4_consts;

/* One q4_0 pair, loaded (L: its 36 bytes at the start) into acc. */
static ALWAYS_INLINE __m512 gemv_q4_pair(const q4_consts *k, __m512i L, const xpair *x, __m512 acc)
{
	__m512i q = _mm512_permutexvar_epi16(k->idx_qs, L);
	q = _mm512_and_si512(_mm512_srlv_epi16(q, k->shift), k->low4);
	__m512i ia = _mm512_dpbusd_epi32(_mm512_load_si512((const void *)x->bias), q,
	                                 _mm512_load_si512((const void *)x->qs));
	__m256i dh = _mm256_permutexvar_epi16(k->idx_d, _mm512_castsi512_si256(L));
	__m512 s = _mm512_mul_ps(_mm512_cvtph_ps(dh), _mm512_load_ps(x->dpat));
	return _mm512_fmadd_ps(_mm512_cvtepi32_ps(ia), s, acc);
}

/* A q4_0 row against the activation. Pairs are 36 bytes: all but the last
 * full pair are read with a plain 64-byte load that stays inside the row
 * (the excess is permuted away); the last pair(s) with masked loads. Masked
 * loads are avoided in the stream because they run far slower when the line
 * is not in the cache (measured: 5.7 vs 15 GB/s on a matrix past the LLC). */
static ALWAYS_INLINE void gemv_q4_rows2(const q4_consts *k, const uint8_t *w0, const uint8_t *w1,
                                        const xpair *xp, int64_t np, bool odd, __m512 *a0,
                                        __m512 *a1, bool two)
{
	const __mmask64 full = (1ULL << 36) - 1, half = (1ULL << 18) - 1;
	int64_t p = 0;
	for (; p + 1 < np; p++) {
		prefetch(w0 + p * 36);
		if (two)
			prefetch(w1 + p * 36);
		*a0 = gemv_q4_pair(k, _mm512_loadu_si512((const void *)(w0 + p * 36)), &xp[p], *a0);
		if (two)
			*a1 = gemv_q4_pair(k, _mm512_loadu_si512((const void *)(w1 + p * 36)), &xp[p], *a1);
	}
	if (p < np) {
		*a0 = gemv_q4_pair(k, _mm512_maskz_loadu_epi8(full, w0 + p * 36), &xp[p], *a0);
		if (two)
			*a1 = gemv_q4_pair(k, _mm512_maskz_loadu_epi8(full, w1 + p * 36), &xp[p], *a1);
	}
	if (odd) {
		*a0 = gemv_q4_pair(k, _mm512_maskz_loadu_epi8(half, w0 + np * 36), &xp[np], *a0);
		if (two)
			*a1 = gemv_q4_pair(k, _mm512_maskz_loadu_epi8(half, w1 + np * 36), &xp[np], *a1);
	}
}

/* One q8_0 pair: quants loaded as two ymm (the second masked off for an odd
 * last block), scales through vpermw of a masked 36-byte load. */
static ALWAYS_INLINE __m512 gemv_q8_pair(__m512i idx_d, const uint8_t *w, bool has_b,
                                         const xpair *x, __m512 acc)
{
	__m256i qa = _mm256_loadu_si256((const __m256i *)(w + 2));
	__m256i qb = has_b ? _mm256_loadu_si256((const __m256i *)(w + 36)) : _mm256_setzero_si256();
	__m512i q = _mm512_inserti64x4(_mm512_castsi256_si512(qa), qb, 1);
	q = _mm512_xor_si512(q, _mm512_set1_epi8((char)0x80)); /* q + 128 as unsigned */
	__m512i ia = _mm512_dpbusd_epi32(_mm512_load_si512((const void *)x->bias), q,
	                                 _mm512_load_si512((const void *)x->qs));
	__m512i L = _mm512_maskz_loadu_epi8(has_b ? (1ULL << 36) - 1 : (1ULL << 2) - 1, w);
	__m256i dh = _mm512_castsi512_si256(_mm512_permutexvar_epi16(idx_d, L));
	__m512 s = _mm512_mul_ps(_mm512_cvtph_ps(dh), _mm512_load_ps(x->dpat));
	return _mm512_fmadd_ps(_mm512_cvtepi32_ps(ia), s, acc);
}

void op_isa_gemv(enum op_dtype wt, const void *W, size_t row_bytes, int64_t r0, int64_t r1,
                 int64_t K, const void *xq, float *y)
{
	const xpair *xp = xq;
	int64_t nb = K / OP_QK, np = nb / 2;
	bool odd = nb & 1;
	const uint8_t *base = (const uint8_t *)W;
	if (wt == OP_Q4_0) {
		q4_consts k;
		k.idx_qs = _mm512_loadu_si512((const void *)q4_idx_qs);
		k.shift = _mm512_loadu_si512((const void *)q4_shift);
		k.low4 = _mm512_set1_epi8(0x0f);
		k.idx_d = _mm256_loadu_si256((const __m256i *)q4_idx_d);
		int64_t r = r0;
		/* two rows at a time: independent chains, one activation read */
		for (; r + 2 <= r1; r += 2) {
			const uint8_t *w0 = base + (size_t)r * row_bytes;
			__m512 a0 = _mm512_setzero_ps(), a1 = a0;
			gemv_q4_rows2(&k, w0, w0 + row_bytes, xp, np, odd, &a0, &a1, true);
			y[r - r0] = _mm512_reduce_add_ps(a0);
			y[r + 1 - r0] = _mm512_reduce_add_ps(a1);
		}
		if (r < r1) {
			__m512 a0 = _mm512_setzero_ps(), a1 = a0;
			gemv_q4_rows2(&k, base + (size_t)r * row_bytes, NULL, xp, np, odd, &a0, &a1, false);
			y[r - r0] = _mm512_reduce_add_ps(a0);
		}
		return;
	}
	assert(wt == OP_Q8_0);
	__m512i idx_d = _mm512_loadu_si512((const void *)q8_idx_d);
	int64_t r = r0;
	for (; r + 2 <= r1; r += 2) {
		const uint8_t *w0 = base + (size_t)r * row_bytes, *w1 = w0 + row_bytes;
		__m512 a0 = _mm512_setzero_ps(), a1 = a0;
		for (int64_t p = 0; p < np; p++) {
			prefetch(w0 + p * 68);
			prefetch(w1 + p * 68);
			prefetch(w0 + p * 68 + 64);
			prefetch(w1 + p * 68 + 64);
			a0 = gemv_q8_pair(idx_d, w0 + p * 68, true, &xp[p], a0);
			a1 = gemv_q8_pair(idx_d, w1 + p * 68, true, &xp[p], a1);
		}
		if (odd) {
			a0 = gemv_q8_pair(idx_d, w0 + np * 68, false, &xp[np], a0);
			a1 = gemv_q8_pair(idx_d, w1 + np * 68, false, &xp[np], a1);
		}
		y[r - r0] = _mm512_reduce_add_ps(a0);
		y[r + 1 - r0] = _mm512_reduce_add_ps(a1);
	}
	for (; r < r1; r++) {
		const uint8_t *w0 = base + (size_t)r * row_bytes;
		__m512 a0 = _mm512_setzero_ps();
		for (int64_t p = 0; p < np; p++) {
			prefetch(w0 + p * 68);
			prefetch(w0 + p * 68 + 64);
			a0 = gemv_q8_pair(idx_d, w0 + p * 68, true, &xp[p], a0);
		}
		if (odd)
			a0 = gemv_q8_pair(idx_d, w0 + np * 68, false, &xp[np], a0);
		y[r - r0] = _mm512_reduce_add_ps(a0);
	}
}

/* ================= AVX-512 VNNI GEMV, interleaved weights ================== */

/* The weights in op_wmat's layout: one record per (16-row group, block), so
 * a row group's blocks are one contiguous stream and every vpdpbusd
 * multiplies 16 rows by 4 activation bytes (broadcast from memory). Per
 * q4_0 record (288 bytes): 4 loads, 12 nibble ops, 8 vpdpbusd and 6 for the
 * scales, against ~40 for the same weights row by row (gemv_q4_pair): the
 * rows-at-a-time kernel above is compute bound at about 17 GB/s per core, this
 * one at about 28 (hot in the cache), and from memory it streams at the read
 * probe's pace (see wmat_groups). */

static ALWAYS_INLINE __m512i bcast4(const int8_t *p)
{
	return _mm512_set1_epi32(load_i32(p));
}

/* NG row groups side by side (NG independent streams, each activation
 * broadcast used NG times): out[i] = the 16 results of group i, whose
 * records start at rec + i * stride. More than one group in flight is what
 * lets the integer work overlap the memory stream (measured on the LFM2-350M
 * matmuls past the LLC, 2 threads, q4_0: 20 GB/s with one group, 23 with two,
 * 26-28 with four or eight, as fast as the read probe; 1 thread: 10, 13, 14). */
#ifndef OP_WMAT_NG
#define OP_WMAT_NG 4
#endif
static ALWAYS_INLINE void wmat_groups(enum op_dtype wt, int NG, const uint8_t *rec, size_t stride,
                                      int64_t nb, const int8_t *qs, const float *d,
                                      const int32_t *bias, __m512 *out)
{
	const __m512i low4 = _mm512_set1_epi8(0x0f);
	__m512 acc[OP_WMAT_NG];
	OP_UNROLL
	for (int i = 0; i < NG; i++)
		acc[i] = _mm512_setzero_ps();
	const size_t R = op_wmat_rec_bytes(wt);
	const int lines = (int)((R + 63) / 64);
	for (int64_t b = 0; b < nb; b++, rec += R) {
		OP_UNROLL
		for (int i = 0; i < NG; i++)
			for (int l = 0; l < lines; l++)
				prefetch(rec + i * stride + 64 * l);
		const int8_t *xb = qs + b * OP_QK;
		__m512 dx = _mm512_set1_ps(wt == OP_Q4_0 ? d[b] * 0.0625f : d[b]);
		__m512i i0[OP_WMAT_NG], i1[OP_WMAT_NG];
		OP_UNROLL
		for (int i = 0; i < NG; i++) {
			i0[i] = _mm512_set1_epi32(bias[b]);
			i1[i] = _mm512_setzero_si512();
		}
		if (wt == OP_Q4_0) {
			/* low nibbles are elements 4j.., high ones 16 + 4j..; the high
			 * nibbles are used in place (16 x their value): 16 i0 + i1 is
			 * exactly 16 x the block sum, and d / 16 exact */
			OP_UNROLL
			for (int j = 0; j < 4; j++) {
				__m512i xl = bcast4(xb + 4 * j), xh = bcast4(xb + 16 + 4 * j);
				OP_UNROLL
				for (int i = 0; i < NG; i++) {
					__m512i v = _mm512_loadu_si512(
						(const void *)(rec + i * stride + OP_WMAT_SCALES + 64 * j));
					i0[i] = _mm512_dpbusd_epi32(i0[i], _mm512_and_si512(v, low4), xl);
					i1[i] = _mm512_dpbusd_epi32(i1[i], _mm512_andnot_si512(low4, v), xh);
				}
			}
		} else {
			OP_UNROLL
			for (int g = 0; g < 8; g += 2) {
				__m512i xa = bcast4(xb + 4 * g), xc = bcast4(xb + 4 * g + 4);
				OP_UNROLL
				for (int i = 0; i < NG; i++) {
					const uint8_t *q = rec + i * stride + OP_WMAT_SCALES + 64 * g;
					i0[i] = _mm512_dpbusd_epi32(i0[i], _mm512_loadu_si512((const void *)q), xa);
					i1[i] = _mm512_dpbusd_epi32(i1[i], _mm512_loadu_si512((const void *)(q + 64)),
					                            xc);
				}
			}
		}
		OP_UNROLL
		for (int i = 0; i < NG; i++) {
			__m512 s = _mm512_mul_ps(
				_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(rec + i * stride))), dx);
			__m512i t = wt == OP_Q4_0 ? _mm512_add_epi32(_mm512_slli_epi32(i0[i], 4), i1[i])
			                          : _mm512_add_epi32(i0[i], i1[i]);
			acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(t), s, acc[i]);
		}
	}
	OP_UNROLL
	for (int i = 0; i < NG; i++)
		out[i] = acc[i];
}

static ALWAYS_INLINE void wmat_gemv_t(enum op_dtype wt, const uint8_t *P, int64_t nb, int64_t G0,
                                      int64_t G1, int64_t M, const int8_t *qs, const float *d,
                                      const int32_t *bias, float *y)
{
	size_t stride = (size_t)nb * op_wmat_rec_bytes(wt);
	__m512 acc[OP_WMAT_NG];
	int64_t G = G0;
	for (; G + OP_WMAT_NG <= G1; G += OP_WMAT_NG) {
		wmat_groups(wt, OP_WMAT_NG, P + (size_t)G * stride, stride, nb, qs, d, bias, acc);
		for (int i = 0; i < OP_WMAT_NG; i++) {
			int64_t valid = M - (G + i) * OP_WMAT_ROWS;
			__mmask16 m = valid >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << valid) - 1);
			_mm512_mask_storeu_ps(y + (G + i - G0) * OP_WMAT_ROWS, m, acc[i]);
		}
	}
	for (; G < G1; G++) {
		wmat_groups(wt, 1, P + (size_t)G * stride, stride, nb, qs, d, bias, acc);
		int64_t valid = M - G * OP_WMAT_ROWS;
		__mmask16 m = valid >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << valid) - 1);
		_mm512_mask_storeu_ps(y + (G - G0) * OP_WMAT_ROWS, m, acc[0]);
	}
}

void op_isa_wmat_gemv(enum op_dtype wt, const void *P, int64_t K, int64_t G0, int64_t G1,
                      int64_t M, const void *xq, float *y)
{
	int64_t nb = K / OP_QK;
	const int8_t *qs = xq;
	const float *d = op_wmat_xd(xq, K);
	const int32_t *bias = op_wmat_xbias(xq, K);
	if (wt == OP_Q4_0)
		wmat_gemv_t(OP_Q4_0, P, nb, G0, G1, M, qs, d, bias, y);
	else
		wmat_gemv_t(OP_Q8_0, P, nb, G0, G1, M, qs, d, bias, y);
}

/* ======================= AVX-512 VNNI GEMM ================================ */

/* Packed panel, per block: for k-group g (4 k) 0..7, for row group rg 0..1,
 * 64 bytes = 16 rows x 4 unsigned bytes (q4: q; q8: q + 128); then per row
 * group 16 float scales (0 for rows past M, which zeroes them). */
#define PK_GROUP 128                  /* one k-group, both row groups */
#define PK_SCALES (8 * PK_GROUP)      /* scales follow the 8 groups */
#define PK_BLOCK (PK_SCALES + 2 * 64) /* 1152 bytes per block */

int op_isa_gemm_offset(enum op_dtype wt) { return wt == OP_Q4_0 ? 8 : 128; }
size_t op_isa_gemm_pack_bytes(void) { return (size_t)OP_GEMM_KB * PK_BLOCK; }

/* 32 unsigned quants of block b of a row, element order. */
static ALWAYS_INLINE __m256i row_block_u8(enum op_dtype wt, const uint8_t *row, int64_t b, float *d)
{
	if (wt == OP_Q4_0) {
		const op_block_q4_0 *blk = (const op_block_q4_0 *)row + b;
		*d = f16_to_f32(blk->d);
		__m128i t = _mm_loadu_si128((const __m128i *)blk->qs);
		return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(t, 4), t), _mm256_set1_epi8(0x0f));
	}
	const op_block_q8_0 *blk = (const op_block_q8_0 *)row + b;
	*d = f16_to_f32(blk->d);
	return _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)blk->qs),
	                        _mm256_set1_epi8((char)0x80));
}

/* One row group (16 rows) of one block: the rows' 32-byte blocks are
 * transposed as 16 x 8 dwords into 8 vectors of 16 rows x 1 dword: rows i and
 * i + 8 share a zmm, then the classic 8 x 8 unpack transpose runs in both
 * 256-bit halves at once and vpermt2q puts the 128-bit pieces in row order.
 * (The scalar scatter this replaces cost ~30 cycles per row and block, which
 * dominated a GEMM with few activation rows.) */
static ALWAYS_INLINE void pack_group16(enum op_dtype wt, const uint8_t *W, size_t row_bytes,
                                       int64_t M, int64_t r0, int64_t b, uint8_t *out, float *dv)
{
	__m256i R[16];
	for (int i = 0; i < 16; i++) {
		if (r0 + i < M) {
			R[i] = row_block_u8(wt, W + (size_t)(r0 + i) * row_bytes, b, &dv[i]);
		} else {
			R[i] = _mm256_setzero_si256();
			dv[i] = 0.0f;
		}
	}
	__m512i Z[8], t[8], u[8];
	for (int i = 0; i < 8; i++)
		Z[i] = _mm512_inserti64x4(_mm512_castsi256_si512(R[i]), R[i + 8], 1);
	for (int i = 0; i < 4; i++) {
		t[2 * i] = _mm512_unpacklo_epi32(Z[2 * i], Z[2 * i + 1]);
		t[2 * i + 1] = _mm512_unpackhi_epi32(Z[2 * i], Z[2 * i + 1]);
	}
	for (int h = 0; h < 2; h++) { /* rows 0-3 (h = 0) and 4-7 (h = 1) of each half */
		__m512i *tt = t + 4 * h, *uu = u + 4 * h;
		uu[0] = _mm512_unpacklo_epi64(tt[0], tt[2]);
		uu[1] = _mm512_unpackhi_epi64(tt[0], tt[2]);
		uu[2] = _mm512_unpacklo_epi64(tt[1], tt[3]);
		uu[3] = _mm512_unpackhi_epi64(tt[1], tt[3]);
	}
	/* u[g] holds dword g (128-bit lanes 0, 2) and g + 4 (lanes 1, 3) of rows
	 * 0-3 / 8-11; u[g + 4] the same of rows 4-7 / 12-15 */
	const __m512i lo = _mm512_setr_epi64(0, 1, 8, 9, 4, 5, 12, 13);
	const __m512i hi = _mm512_setr_epi64(2, 3, 10, 11, 6, 7, 14, 15);
	for (int g = 0; g < 4; g++) {
		_mm512_store_si512((void *)(out + g * PK_GROUP), _mm512_permutex2var_epi64(u[g], lo, u[g + 4]));
		_mm512_store_si512((void *)(out + (g + 4) * PK_GROUP),
		                   _mm512_permutex2var_epi64(u[g], hi, u[g + 4]));
	}
}

void op_isa_gemm_pack(enum op_dtype wt, const void *W, size_t row_bytes, int64_t M, int64_t r0,
                      int64_t b0, int64_t nb, void *buf)
{
	uint8_t *out = buf;
	for (int64_t b = 0; b < nb; b++) {
		uint8_t *blk = out + b * PK_BLOCK;
		for (int rg = 0; rg < 2; rg++) {
			float *dv = (float *)(blk + PK_SCALES + rg * 64);
			if (wt == OP_Q4_0)
				pack_group16(OP_Q4_0, W, row_bytes, M, r0 + rg * 16, b0 + b, blk + rg * 64, dv);
			else
				pack_group16(OP_Q8_0, W, row_bytes, M, r0 + rg * 16, b0 + b, blk + rg * 64, dv);
		}
	}
}

void op_isa_wmat_gemm_pack(enum op_dtype wt, const void *P, int64_t M, int64_t K, int64_t r0,
                           int64_t b0, int64_t nb, void *buf)
{
	uint8_t *out = buf;
	int64_t nbk = K / OP_QK;
	size_t rec = op_wmat_rec_bytes(wt);
	const __m512i low4 = _mm512_set1_epi8(0x0f);
	for (int rg = 0; rg < 2; rg++) {
		int64_t G = r0 / OP_WMAT_ROWS + rg;
		bool have = G * OP_WMAT_ROWS < M;
		const uint8_t *src = (const uint8_t *)P + (size_t)(G * nbk + b0) * rec;
		for (int64_t b = 0; b < nb; b++, src += rec) {
			uint8_t *blk = out + b * PK_BLOCK;
			float *dv = (float *)(blk + PK_SCALES + rg * 64);
			if (!have) {
				for (int g = 0; g < 8; g++)
					_mm512_store_si512((void *)(blk + g * PK_GROUP + rg * 64), _mm512_setzero_si512());
				_mm512_store_ps(dv, _mm512_setzero_ps());
				continue;
			}
			_mm512_store_ps(dv, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)src)));
			if (wt == OP_Q4_0) {
				for (int j = 0; j < 4; j++) {
					__m512i v = _mm512_loadu_si512((const void *)(src + OP_WMAT_SCALES + 64 * j));
					_mm512_store_si512((void *)(blk + j * PK_GROUP + rg * 64),
					                   _mm512_and_si512(v, low4));
					_mm512_store_si512((void *)(blk + (j + 4) * PK_GROUP + rg * 64),
					                   _mm512_and_si512(_mm512_srli_epi16(v, 4), low4));
				}
			} else {
				for (int g = 0; g < 8; g++)
					_mm512_store_si512((void *)(blk + g * PK_GROUP + rg * 64),
					                   _mm512_loadu_si512((const void *)(src + OP_WMAT_SCALES + 64 * g)));
			}
		}
	}
}

/* The micro-kernel: a 32-row x 6-column tile over nb packed blocks, the
 * activation group read through one pointer at constant offsets. Registers:
 * 12 int32 block sums, 12 float results, 2 weight vectors, the broadcasts
 * folded into vpdpbusd's memory operand. */
static ALWAYS_INLINE void tile_kernel(const uint8_t *buf, int64_t nb, const uint8_t *xrec,
                                      float *Y, int64_t ldy, int64_t r0, int nrows, int ncols,
                                      bool accumulate)
{
	enum { NC = OP_GEMM_NC };
	__m512 f0[NC], f1[NC];
	__mmask16 m0 = nrows >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << nrows) - 1);
	__mmask16 m1 = nrows >= 32 ? (__mmask16)0xffff
	               : nrows > 16 ? (__mmask16)((1u << (nrows - 16)) - 1) : (__mmask16)0;
	OP_UNROLL
	for (int j = 0; j < NC; j++) {
		const float *yr = Y + j * ldy + r0;
		f0[j] = accumulate && j < ncols ? _mm512_maskz_loadu_ps(m0, yr) : _mm512_setzero_ps();
		f1[j] = accumulate && j < ncols ? _mm512_maskz_loadu_ps(m1, yr + 16) : _mm512_setzero_ps();
	}
	for (int64_t b = 0; b < nb; b++) {
		const uint8_t *blk = buf + b * PK_BLOCK;
		const uint8_t *xr = xrec + b * OP_XBLOCK_BYTES;
		__m512i i0[NC], i1[NC];
		OP_UNROLL
		for (int j = 0; j < NC; j++)
			i0[j] = i1[j] = _mm512_set1_epi32(load_i32(xr + OP_XBLOCK_BIAS + 4 * j));
		OP_UNROLL
		for (int g = 0; g < 8; g++) {
			__m512i w0 = _mm512_load_si512((const void *)(blk + g * PK_GROUP));
			__m512i w1 = _mm512_load_si512((const void *)(blk + g * PK_GROUP + 64));
			OP_UNROLL
			for (int j = 0; j < NC; j++) {
				__m512i xv = _mm512_set1_epi32(load_i32(xr + (g * NC + j) * 4));
				i0[j] = _mm512_dpbusd_epi32(i0[j], w0, xv);
				i1[j] = _mm512_dpbusd_epi32(i1[j], w1, xv);
			}
		}
		__m512 d0 = _mm512_load_ps((const float *)(blk + PK_SCALES));
		__m512 d1 = _mm512_load_ps((const float *)(blk + PK_SCALES + 64));
		OP_UNROLL
		for (int j = 0; j < NC; j++) {
			float dxs;
			memcpy(&dxs, xr + OP_XBLOCK_D + 4 * j, 4);
			__m512 dx = _mm512_set1_ps(dxs);
			f0[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(i0[j]), _mm512_mul_ps(d0, dx), f0[j]);
			f1[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(i1[j]), _mm512_mul_ps(d1, dx), f1[j]);
		}
	}
	OP_UNROLL
	for (int j = 0; j < NC; j++) {
		if (j < ncols) {
			float *yr = Y + j * ldy + r0;
			_mm512_mask_storeu_ps(yr, m0, f0[j]);
			_mm512_mask_storeu_ps(yr + 16, m1, f1[j]);
		}
	}
}

void op_isa_gemm_tile(const void *buf, int64_t nb, const op_xpack *x, int64_t b0, int64_t g0,
                      int64_t g1, float *Y, int64_t ldy, int64_t r0, int nrows, bool accumulate)
{
	for (int64_t gi = g0; gi < g1; gi++) {
		int64_t c = gi * OP_GEMM_NC;
		int ncols = x->N - c < OP_GEMM_NC ? (int)(x->N - c) : OP_GEMM_NC;
		tile_kernel(buf, nb, op_xblock(x, gi, b0), Y + c * ldy, ldy, r0, nrows, ncols,
		            accumulate);
	}
}

#else /* OP_ISA_AVX2 */
/* ============================ AVX2 GEMV ==================================== */

/* Prepared activation: qs[K] in element order, then for each block the
 * float scale, then (q4_0 only) for each block 8 int32 lanes with
 * -8 * sum(quants) in lane 0. */
static size_t gemv_d_off(int64_t K) { return op_pad((size_t)K, OP_ALIGN); }
static size_t gemv_bias_off(int64_t K)
{
	return gemv_d_off(K) + op_pad((size_t)(K / OP_QK) * sizeof(float), OP_ALIGN);
}

size_t op_isa_gemv_xbytes(enum op_dtype wt, int64_t K)
{
	return gemv_bias_off(K) + (size_t)(K / OP_QK) * 32;
}

void op_isa_gemv_prepare(enum op_dtype wt, const float *x, int64_t K, void *xq)
{
	int8_t *qs = xq;
	float *d = (float *)((uint8_t *)xq + gemv_d_off(K));
	int32_t *bias = (int32_t *)((uint8_t *)xq + gemv_bias_off(K));
	op_f16 dh[8];
	int32_t sum[8];
	for (int64_t b0 = 0; b0 < K / OP_QK; b0 += 8) {
		int64_t n = K / OP_QK - b0 < 8 ? K / OP_QK - b0 : 8;
		op_isa_quantize_q8(x + b0 * OP_QK, n, qs + b0 * OP_QK, dh, sum);
		for (int64_t b = 0; b < n; b++) {
			d[b0 + b] = f16_to_f32(dh[b]);
			memset(bias + (b0 + b) * 8, 0, 32);
			bias[(b0 + b) * 8] = -8 * sum[b];
		}
	}
}

/* q4_0 block against the activation: q (0..15) unsigned times x signed,
 * vpmaddubsw pairs cannot saturate (15 * 127 * 2), the bias removes 8 * sum. */
static ALWAYS_INLINE __m256 gemv_q4_block(const op_block_q4_0 *w, const int8_t *xq,
                                          const int32_t *bias, float dx, __m256 acc)
{
	__m128i t = _mm_loadu_si128((const __m128i *)w->qs);
	__m256i q = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(t, 4), t), _mm256_set1_epi8(0x0f));
#if defined(OP_ISA_AVX2_VNNI)
	__m256i i = _mm256_dpbusd_avx_epi32(_mm256_loadu_si256((const __m256i *)bias), q,
	                                    _mm256_loadu_si256((const __m256i *)xq));
#else
	__m256i p = _mm256_maddubs_epi16(q, _mm256_loadu_si256((const __m256i *)xq));
	__m256i i = _mm256_add_epi32(_mm256_madd_epi16(p, _mm256_set1_epi16(1)),
	                             _mm256_loadu_si256((const __m256i *)bias));
#endif
	return _mm256_fmadd_ps(_mm256_cvtepi32_ps(i), _mm256_set1_ps(f16_to_f32(w->d) * dx), acc);
}

static ALWAYS_INLINE __m256 gemv_q8_block(const op_block_q8_0 *w, const int8_t *xq, float dx,
                                          __m256 acc)
{
	__m256i p = dot32_i8(_mm256_loadu_si256((const __m256i *)w->qs),
	                     _mm256_loadu_si256((const __m256i *)xq));
	return _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(f16_to_f32(w->d) * dx), acc);
}

void op_isa_gemv(enum op_dtype wt, const void *W, size_t row_bytes, int64_t r0, int64_t r1,
                 int64_t K, const void *xq, float *y)
{
	const int8_t *qs = xq;
	const float *d = (const float *)((const uint8_t *)xq + gemv_d_off(K));
	const int32_t *bias = (const int32_t *)((const uint8_t *)xq + gemv_bias_off(K));
	int64_t nb = K / OP_QK;
	const uint8_t *base = W;
	int64_t r = r0;
	/* two rows at a time: independent chains, one activation read */
	for (; r + 2 <= r1; r += 2) {
		__m256 a0 = _mm256_setzero_ps(), a1 = a0;
		if (wt == OP_Q4_0) {
			const op_block_q4_0 *w0 = (const op_block_q4_0 *)(base + (size_t)r * row_bytes);
			const op_block_q4_0 *w1 = (const op_block_q4_0 *)(base + (size_t)(r + 1) * row_bytes);
			for (int64_t b = 0; b < nb; b++) {
				prefetch(&w0[b]);
				prefetch(&w1[b]);
				a0 = gemv_q4_block(&w0[b], qs + b * OP_QK, bias + b * 8, d[b], a0);
				a1 = gemv_q4_block(&w1[b], qs + b * OP_QK, bias + b * 8, d[b], a1);
			}
		} else {
			const op_block_q8_0 *w0 = (const op_block_q8_0 *)(base + (size_t)r * row_bytes);
			const op_block_q8_0 *w1 = (const op_block_q8_0 *)(base + (size_t)(r + 1) * row_bytes);
			for (int64_t b = 0; b < nb; b++) {
				prefetch(&w0[b]);
				prefetch(&w1[b]);
				a0 = gemv_q8_block(&w0[b], qs + b * OP_QK, d[b], a0);
				a1 = gemv_q8_block(&w1[b], qs + b * OP_QK, d[b], a1);
			}
		}
		y[r - r0] = hsum256_ps(a0);
		y[r + 1 - r0] = hsum256_ps(a1);
	}
	for (; r < r1; r++) {
		__m256 a0 = _mm256_setzero_ps();
		if (wt == OP_Q4_0) {
			const op_block_q4_0 *w0 = (const op_block_q4_0 *)(base + (size_t)r * row_bytes);
			for (int64_t b = 0; b < nb; b++) {
				prefetch(&w0[b]);
				a0 = gemv_q4_block(&w0[b], qs + b * OP_QK, bias + b * 8, d[b], a0);
			}
		} else {
			const op_block_q8_0 *w0 = (const op_block_q8_0 *)(base + (size_t)r * row_bytes);
			for (int64_t b = 0; b < nb; b++) {
				prefetch(&w0[b]);
				a0 = gemv_q8_block(&w0[b], qs + b * OP_QK, d[b], a0);
			}
		}
		y[r - r0] = hsum256_ps(a0);
	}
}

/* ================= AVX2 GEMV, interleaved weights ========================== */

/* The weights in op_wmat's layout, 8 rows per group: one ymm per k-group of
 * the group's rows, so every dot instruction multiplies 8 rows by 4
 * activation bytes (a broadcast), and a row group's blocks are one stream.
 * Per q4_0 record (144 bytes = 8 rows x 18): 4 loads and 12 nibble ops, then
 * with AVX-VNNI 8 vpdpbusd, without it 8 vpmaddubsw summed in int16 (16
 * products of at most 15 * 127 per lane: 30480 < 32767) and one vpmaddwd;
 * against ~12 instructions per row and block row by row (gemv_q4_block).
 * q8_0 without VNNI uses the sign trick per vector (|w| unsigned times
 * x * sign(w), pairs <= 2 * 127 * 127), as dot32_i8 does. */
/* Four groups in flight (32 rows, 4 streams), as on AVX-512: measured with
 * bench_kernels_avx2* --quick on a Xeon with AVX-512 and AVX-VNNI, AVX2
 * builds, 2 threads, LFM2-350M decode matmuls streamed in order (the
 * "stream" line), q4_0 / q8_0 GB/s: AVX2 NG 2 16.0 / 20.0, NG 4 18.0 / 22.7;
 * AVX-VNNI NG 2 18.3 / 21.1, NG 4 19.4 / 22.4 (read probe 22.5-24.7). */
#ifndef OP_WMAT_NG
#define OP_WMAT_NG 4
#endif

static ALWAYS_INLINE __m256i bcast4(const int8_t *p) { return _mm256_set1_epi32(load_i32(p)); }

/* NG row groups side by side: out[i] = the 8 results of group i, whose
 * records start at rec + i * stride. */
static ALWAYS_INLINE void wmat_groups(enum op_dtype wt, int NG, const uint8_t *rec, size_t stride,
                                      int64_t nb, const int8_t *qs, const float *d,
                                      const int32_t *bias, __m256 *out)
{
	const __m256i low4 = _mm256_set1_epi8(0x0f);
#if !defined(OP_ISA_AVX2_VNNI)
	const __m256i ones = _mm256_set1_epi16(1);
#endif
	__m256 acc[OP_WMAT_NG];
	OP_UNROLL
	for (int i = 0; i < NG; i++)
		acc[i] = _mm256_setzero_ps();
	const size_t R = op_wmat_rec_bytes(wt);
	for (int64_t b = 0; b < nb; b++, rec += R) {
		OP_UNROLL
		for (int i = 0; i < NG; i++)
			for (size_t l = 0; l < R; l += 64)
				prefetch(rec + i * stride + l);
		const int8_t *xb = qs + b * OP_QK;
		__m256i ib = _mm256_set1_epi32(bias[b]);
		__m256i t[OP_WMAT_NG];
		if (wt == OP_Q4_0) {
#if defined(OP_ISA_AVX2_VNNI)
			/* high nibbles in place (16 x their value): 16 i0 + i1 is
			 * exactly 16 x the block sum, and d / 16 exact */
			__m256i i0[OP_WMAT_NG], i1[OP_WMAT_NG];
			OP_UNROLL
			for (int i = 0; i < NG; i++) {
				i0[i] = ib;
				i1[i] = _mm256_setzero_si256();
			}
			OP_UNROLL
			for (int j = 0; j < 4; j++) {
				__m256i xl = bcast4(xb + 4 * j), xh = bcast4(xb + 16 + 4 * j);
				OP_UNROLL
				for (int i = 0; i < NG; i++) {
					__m256i v = _mm256_loadu_si256(
						(const __m256i *)(rec + i * stride + OP_WMAT_SCALES + 32 * j));
					i0[i] = _mm256_dpbusd_avx_epi32(i0[i], _mm256_and_si256(v, low4), xl);
					i1[i] = _mm256_dpbusd_avx_epi32(i1[i], _mm256_andnot_si256(low4, v), xh);
				}
			}
			OP_UNROLL
			for (int i = 0; i < NG; i++)
				t[i] = _mm256_add_epi32(_mm256_slli_epi32(i0[i], 4), i1[i]);
#else
			__m256i s[OP_WMAT_NG];
			OP_UNROLL
			for (int i = 0; i < NG; i++)
				s[i] = _mm256_setzero_si256();
			OP_UNROLL
			for (int j = 0; j < 4; j++) {
				__m256i xl = bcast4(xb + 4 * j), xh = bcast4(xb + 16 + 4 * j);
				OP_UNROLL
				for (int i = 0; i < NG; i++) {
					__m256i v = _mm256_loadu_si256(
						(const __m256i *)(rec + i * stride + OP_WMAT_SCALES + 32 * j));
					__m256i lo = _mm256_and_si256(v, low4);
					__m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low4);
					s[i] = _mm256_add_epi16(s[i], _mm256_maddubs_epi16(lo, xl));
					s[i] = _mm256_add_epi16(s[i], _mm256_maddubs_epi16(hi, xh));
				}
			}
			OP_UNROLL
			for (int i = 0; i < NG; i++)
				t[i] = _mm256_add_epi32(_mm256_madd_epi16(s[i], ones), ib);
#endif
		} else {
			OP_UNROLL
			for (int i = 0; i < NG; i++)
				t[i] = ib;
			OP_UNROLL
			for (int g = 0; g < 8; g++) {
				__m256i xv = bcast4(xb + 4 * g);
				OP_UNROLL
				for (int i = 0; i < NG; i++) {
					__m256i w = _mm256_loadu_si256(
						(const __m256i *)(rec + i * stride + OP_WMAT_SCALES + 32 * g));
#if defined(OP_ISA_AVX2_VNNI)
					t[i] = _mm256_dpbusd_avx_epi32(t[i], w, xv);
#else
					__m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(xv, w));
					t[i] = _mm256_add_epi32(t[i], _mm256_madd_epi16(p, ones));
#endif
				}
			}
		}
#if defined(OP_ISA_AVX2_VNNI)
		__m256 dx = _mm256_set1_ps(wt == OP_Q4_0 ? d[b] * 0.0625f : d[b]);
#else
		__m256 dx = _mm256_set1_ps(d[b]);
#endif
		OP_UNROLL
		for (int i = 0; i < NG; i++) {
			__m256 sc = _mm256_mul_ps(
				_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(rec + i * stride))), dx);
			acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(t[i]), sc, acc[i]);
		}
	}
	OP_UNROLL
	for (int i = 0; i < NG; i++)
		out[i] = acc[i];
}

static ALWAYS_INLINE void store_group(float *y, int64_t valid, __m256 v)
{
	if (valid >= 8) {
		_mm256_storeu_ps(y, v);
	} else {
		_Alignas(32) float t[8];
		_mm256_store_ps(t, v);
		memcpy(y, t, (size_t)valid * sizeof(float));
	}
}

static ALWAYS_INLINE void wmat_gemv_t(enum op_dtype wt, const uint8_t *P, int64_t nb, int64_t G0,
                                      int64_t G1, int64_t M, const int8_t *qs, const float *d,
                                      const int32_t *bias, float *y)
{
	size_t stride = (size_t)nb * op_wmat_rec_bytes(wt);
	__m256 acc[OP_WMAT_NG];
	int64_t G = G0;
	for (; G + OP_WMAT_NG <= G1; G += OP_WMAT_NG) {
		wmat_groups(wt, OP_WMAT_NG, P + (size_t)G * stride, stride, nb, qs, d, bias, acc);
		for (int i = 0; i < OP_WMAT_NG; i++)
			store_group(y + (G + i - G0) * OP_WMAT_ROWS, M - (G + i) * OP_WMAT_ROWS, acc[i]);
	}
	for (; G < G1; G++) {
		wmat_groups(wt, 1, P + (size_t)G * stride, stride, nb, qs, d, bias, acc);
		store_group(y + (G - G0) * OP_WMAT_ROWS, M - G * OP_WMAT_ROWS, acc[0]);
	}
}

void op_isa_wmat_gemv(enum op_dtype wt, const void *P, int64_t K, int64_t G0, int64_t G1,
                      int64_t M, const void *xq, float *y)
{
	int64_t nb = K / OP_QK;
	const int8_t *qs = xq;
	const float *d = op_wmat_xd(xq, K);
	const int32_t *bias = op_wmat_xbias(xq, K);
	if (wt == OP_Q4_0)
		wmat_gemv_t(OP_Q4_0, P, nb, G0, G1, M, qs, d, bias, y);
	else
		wmat_gemv_t(OP_Q8_0, P, nb, G0, G1, M, qs, d, bias, y);
}

/* ============================ AVX2 GEMM ==================================== */

/* Packed panel, per block: for k-group g 0..7, for row group rg 0..1,
 * 32 bytes = 8 rows x 4 bytes (q4: unsigned q; q8: signed q, the sign trick
 * happens in the kernel); then 16 float scales. */
#define PK_GROUP 64
#define PK_SCALES (8 * PK_GROUP)
#define PK_BLOCK (PK_SCALES + 64) /* 576 bytes */

#if defined(OP_ISA_AVX2_VNNI)
/* vpdpbusd: unsigned weights (q4: q, q8: q + 128), as the AVX-512 GEMM */
int op_isa_gemm_offset(enum op_dtype wt) { return wt == OP_Q4_0 ? 8 : 128; }
#else
int op_isa_gemm_offset(enum op_dtype wt) { return wt == OP_Q4_0 ? 8 : 0; }
#endif
size_t op_isa_gemm_pack_bytes(void) { return (size_t)OP_GEMM_KB * PK_BLOCK; }

/* 32 bytes of block b of a row: q4_0 as unsigned q; q8_0 as signed q (the
 * sign trick happens in the kernel), or with AVX-VNNI as unsigned q + 128. */
static ALWAYS_INLINE __m256i row_block(enum op_dtype wt, const uint8_t *row, int64_t b, float *d)
{
	if (wt == OP_Q4_0) {
		const op_block_q4_0 *bl = (const op_block_q4_0 *)row + b;
		__m128i t = _mm_loadu_si128((const __m128i *)bl->qs);
		*d = f16_to_f32(bl->d);
		return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(t, 4), t), _mm256_set1_epi8(0x0f));
	}
	const op_block_q8_0 *bl = (const op_block_q8_0 *)row + b;
	*d = f16_to_f32(bl->d);
#if defined(OP_ISA_AVX2_VNNI)
	return _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)bl->qs), _mm256_set1_epi8((char)0x80));
#else
	return _mm256_loadu_si256((const __m256i *)bl->qs);
#endif
}

/* One row group (8 rows) of one block: the classic 8 x 8 dword transpose. */
static ALWAYS_INLINE void pack_group8(enum op_dtype wt, const uint8_t *W, size_t row_bytes,
                                      int64_t M, int64_t r0, int64_t b, uint8_t *out, float *dv)
{
	__m256i R[8], t[8], u[8];
	for (int i = 0; i < 8; i++) {
		if (r0 + i < M) {
			R[i] = row_block(wt, W + (size_t)(r0 + i) * row_bytes, b, &dv[i]);
		} else {
			R[i] = _mm256_setzero_si256();
			dv[i] = 0.0f;
		}
	}
	for (int i = 0; i < 4; i++) {
		t[2 * i] = _mm256_unpacklo_epi32(R[2 * i], R[2 * i + 1]);
		t[2 * i + 1] = _mm256_unpackhi_epi32(R[2 * i], R[2 * i + 1]);
	}
	for (int h = 0; h < 2; h++) {
		__m256i *tt = t + 4 * h, *uu = u + 4 * h;
		uu[0] = _mm256_unpacklo_epi64(tt[0], tt[2]);
		uu[1] = _mm256_unpackhi_epi64(tt[0], tt[2]);
		uu[2] = _mm256_unpacklo_epi64(tt[1], tt[3]);
		uu[3] = _mm256_unpackhi_epi64(tt[1], tt[3]);
	}
	for (int g = 0; g < 4; g++) {
		_mm256_store_si256((__m256i *)(out + g * PK_GROUP), _mm256_permute2x128_si256(u[g], u[g + 4], 0x20));
		_mm256_store_si256((__m256i *)(out + (g + 4) * PK_GROUP),
		                   _mm256_permute2x128_si256(u[g], u[g + 4], 0x31));
	}
}

void op_isa_gemm_pack(enum op_dtype wt, const void *W, size_t row_bytes, int64_t M, int64_t r0,
                      int64_t b0, int64_t nb, void *buf)
{
	uint8_t *out = buf;
	for (int64_t b = 0; b < nb; b++) {
		uint8_t *blk = out + b * PK_BLOCK;
		for (int rg = 0; rg < 2; rg++) {
			float *dv = (float *)(blk + PK_SCALES) + rg * 8;
			if (wt == OP_Q4_0)
				pack_group8(OP_Q4_0, W, row_bytes, M, r0 + rg * 8, b0 + b, blk + rg * 32, dv);
			else
				pack_group8(OP_Q8_0, W, row_bytes, M, r0 + rg * 8, b0 + b, blk + rg * 32, dv);
		}
	}
}

/* The panel from the interleaved layout: row groups are the panel's two
 * halves, q4_0 vectors split into their nibbles (k-groups j and 4 + j), q8_0
 * vectors copied (stored with the GEMM's own offset, OP_WMAT_Q8_OFF). */
void op_isa_wmat_gemm_pack(enum op_dtype wt, const void *P, int64_t M, int64_t K, int64_t r0,
                           int64_t b0, int64_t nb, void *buf)
{
	uint8_t *out = buf;
	int64_t nbk = K / OP_QK;
	size_t rec = op_wmat_rec_bytes(wt);
	const __m256i low4 = _mm256_set1_epi8(0x0f);
	for (int rg = 0; rg < 2; rg++) {
		int64_t G = r0 / OP_WMAT_ROWS + rg;
		bool have = G * OP_WMAT_ROWS < M;
		const uint8_t *src = (const uint8_t *)P + (size_t)(G * nbk + b0) * rec;
		for (int64_t b = 0; b < nb; b++, src += rec) {
			uint8_t *blk = out + b * PK_BLOCK;
			float *dv = (float *)(blk + PK_SCALES) + rg * 8;
			if (!have) {
				for (int g = 0; g < 8; g++)
					_mm256_store_si256((__m256i *)(blk + g * PK_GROUP + rg * 32),
					                   _mm256_setzero_si256());
				_mm256_storeu_ps(dv, _mm256_setzero_ps());
				continue;
			}
			_mm256_storeu_ps(dv, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)src)));
			if (wt == OP_Q4_0) {
				for (int j = 0; j < 4; j++) {
					__m256i v = _mm256_loadu_si256((const __m256i *)(src + OP_WMAT_SCALES + 32 * j));
					_mm256_store_si256((__m256i *)(blk + j * PK_GROUP + rg * 32),
					                   _mm256_and_si256(v, low4));
					_mm256_store_si256((__m256i *)(blk + (j + 4) * PK_GROUP + rg * 32),
					                   _mm256_and_si256(_mm256_srli_epi16(v, 4), low4));
				}
			} else {
				for (int g = 0; g < 8; g++)
					_mm256_store_si256(
						(__m256i *)(blk + g * PK_GROUP + rg * 32),
						_mm256_loadu_si256((const __m256i *)(src + OP_WMAT_SCALES + 32 * g)));
			}
		}
	}
}

static ALWAYS_INLINE void tile_kernel(enum op_dtype wt, const uint8_t *buf, int64_t nb,
                                      const uint8_t *xrec, float *Y, int64_t ldy, int64_t r0,
                                      int nrows, int ncols, bool accumulate)
{
	enum { NC = OP_GEMM_NC };
	/* results stay in L1 (AVX2 has 16 registers, the block sums need them) */
	_Alignas(32) float f[NC][16];
	const __m256i ones = _mm256_set1_epi16(1);
	for (int j = 0; j < NC; j++)
		for (int i = 0; i < 16; i++)
			f[j][i] = accumulate && j < ncols && i < nrows ? Y[j * ldy + r0 + i] : 0.0f;
	for (int64_t b = 0; b < nb; b++) {
		const uint8_t *blk = buf + b * PK_BLOCK;
		const uint8_t *xr = xrec + b * OP_XBLOCK_BYTES;
		__m256i i0[NC], i1[NC];
#if defined(OP_ISA_AVX2_VNNI)
		(void)ones;
		OP_UNROLL
		for (int j = 0; j < NC; j++)
			i0[j] = i1[j] = _mm256_set1_epi32(load_i32(xr + OP_XBLOCK_BIAS + 4 * j));
		OP_UNROLL
		for (int g = 0; g < 8; g++) {
			__m256i w0 = _mm256_load_si256((const __m256i *)(blk + g * PK_GROUP));
			__m256i w1 = _mm256_load_si256((const __m256i *)(blk + g * PK_GROUP + 32));
			OP_UNROLL
			for (int j = 0; j < NC; j++) {
				__m256i xv = _mm256_set1_epi32(load_i32(xr + (g * NC + j) * 4));
				i0[j] = _mm256_dpbusd_avx_epi32(i0[j], w0, xv);
				i1[j] = _mm256_dpbusd_avx_epi32(i1[j], w1, xv);
			}
		}
#else
		if (wt == OP_Q4_0) {
			/* int16 pair sums of up to 8 groups fit: 8 * 2 * 15 * 127 < 32767 */
			__m256i s0[NC], s1[NC];
			OP_UNROLL
			for (int j = 0; j < NC; j++)
				s0[j] = s1[j] = _mm256_setzero_si256();
			OP_UNROLL
			for (int g = 0; g < 8; g++) {
				__m256i w0 = _mm256_load_si256((const __m256i *)(blk + g * PK_GROUP));
				__m256i w1 = _mm256_load_si256((const __m256i *)(blk + g * PK_GROUP + 32));
				OP_UNROLL
				for (int j = 0; j < NC; j++) {
					__m256i xv = _mm256_set1_epi32(load_i32(xr + (g * NC + j) * 4));
					s0[j] = _mm256_add_epi16(s0[j], _mm256_maddubs_epi16(w0, xv));
					s1[j] = _mm256_add_epi16(s1[j], _mm256_maddubs_epi16(w1, xv));
				}
			}
			OP_UNROLL
			for (int j = 0; j < NC; j++) {
				__m256i bias = _mm256_set1_epi32(load_i32(xr + OP_XBLOCK_BIAS + 4 * j));
				i0[j] = _mm256_add_epi32(_mm256_madd_epi16(s0[j], ones), bias);
				i1[j] = _mm256_add_epi32(_mm256_madd_epi16(s1[j], ones), bias);
			}
		} else {
			OP_UNROLL
			for (int j = 0; j < NC; j++)
				i0[j] = i1[j] = _mm256_setzero_si256();
			OP_UNROLL
			for (int g = 0; g < 8; g++) {
				__m256i w0 = _mm256_load_si256((const __m256i *)(blk + g * PK_GROUP));
				__m256i w1 = _mm256_load_si256((const __m256i *)(blk + g * PK_GROUP + 32));
				__m256i u0 = _mm256_sign_epi8(w0, w0), u1 = _mm256_sign_epi8(w1, w1);
				OP_UNROLL
				for (int j = 0; j < NC; j++) {
					__m256i xv = _mm256_set1_epi32(load_i32(xr + (g * NC + j) * 4));
					i0[j] = _mm256_add_epi32(i0[j], _mm256_madd_epi16(
						_mm256_maddubs_epi16(u0, _mm256_sign_epi8(xv, w0)), ones));
					i1[j] = _mm256_add_epi32(i1[j], _mm256_madd_epi16(
						_mm256_maddubs_epi16(u1, _mm256_sign_epi8(xv, w1)), ones));
				}
			}
		}
#endif
		__m256 d0 = _mm256_load_ps((const float *)(blk + PK_SCALES));
		__m256 d1 = _mm256_load_ps((const float *)(blk + PK_SCALES + 32));
		OP_UNROLL
		for (int j = 0; j < NC; j++) {
			float dxs;
			memcpy(&dxs, xr + OP_XBLOCK_D + 4 * j, 4);
			__m256 dx = _mm256_set1_ps(dxs);
			_mm256_store_ps(f[j], _mm256_fmadd_ps(_mm256_cvtepi32_ps(i0[j]), _mm256_mul_ps(d0, dx),
			                                      _mm256_load_ps(f[j])));
			_mm256_store_ps(f[j] + 8, _mm256_fmadd_ps(_mm256_cvtepi32_ps(i1[j]),
			                                          _mm256_mul_ps(d1, dx),
			                                          _mm256_load_ps(f[j] + 8)));
		}
	}
	for (int j = 0; j < ncols; j++)
		memcpy(Y + j * ldy + r0, f[j], (size_t)nrows * sizeof(float));
}

void op_isa_gemm_tile(const void *buf, int64_t nb, const op_xpack *x, int64_t b0, int64_t g0,
                      int64_t g1, float *Y, int64_t ldy, int64_t r0, int nrows, bool accumulate)
{
	/* rows past M were packed with scale 0 and are not stored */
	for (int64_t gi = g0; gi < g1; gi++) {
		int64_t c = gi * OP_GEMM_NC;
		int ncols = x->N - c < OP_GEMM_NC ? (int)(x->N - c) : OP_GEMM_NC;
		const uint8_t *xr = op_xblock(x, gi, b0);
		if (x->wt == OP_Q4_0)
			tile_kernel(OP_Q4_0, buf, nb, xr, Y + c * ldy, ldy, r0, nrows, ncols, accumulate);
		else
			tile_kernel(OP_Q8_0, buf, nb, xr, Y + c * ldy, ldy, r0, nrows, ncols, accumulate);
	}
}
#endif /* AVX2 */

#endif /* OP_ISA_AVX512 || OP_ISA_AVX2 */
