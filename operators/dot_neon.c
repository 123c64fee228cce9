/*
 * operators/dot_neon.c: the AArch64 kernels, with the dot-product extension
 * (sdot: 16 int8 multiply-adds into 4 int32 lanes per instruction, ARMv8.2+
 * phones) or without it (smull + sadalp, 8 per pair of instructions).
 *
 * Workload as dot_x86.c's: a GEMV that streams ggml-layout weight rows once
 * (decode) and, with sdot, a GEMM over panels packed as 4 rows x 4 k per
 * 16-byte vector, multiplied by one 4-byte group of an activation row with
 * the by-lane form of sdot (vdotq_laneq_s32), so a loaded activation vector
 * serves 4 k-groups. sdot is signed x signed, so q4_0 weights unpack to
 * q - 8 and no offset is needed. The plain-NEON build's GEMM is matmul.c's
 * generic one with a NEON int8 dot.
 *
 * Everything here must reproduce quant.c's references: integer block sums
 * exactly, the quantizer bit for bit (vmaxnm / vminnm ignore NaNs as fmaxf /
 * fminf do; vcvtnq rounds to nearest even as nearbyintf does).
 */
#include "op_kernels_int.h"

#if defined(OP_ISA_NEON_ANY)

#include <arm_neon.h>
#include <string.h>

_Static_assert(OP_GEMM_NC == 4, "the NEON tile is 4 columns wide");

#define F16_MAX 65504.0f
#define ALWAYS_INLINE inline __attribute__((always_inline))

/* ---- q8_0 quantizer ------------------------------------------------------- */

static ALWAYS_INLINE op_f16 quantize_block(const float *x, int8_t *qs, int32_t *sum)
{
	float32x4_t v[8];
	float32x4_t m = vdupq_n_f32(0.0f);
	for (int i = 0; i < 8; i++) {
		v[i] = vld1q_f32(x + 4 * i);
		m = vmaxnmq_f32(m, vabsq_f32(v[i]));
	}
	float amax = vmaxnmvq_f32(m);
	float d = amax / 127.0f;
	d = d < F16_MAX ? d : F16_MAX;
	op_f16 dh = op_f32_to_f16(d);
	float ds = op_f16_to_f32(dh);
	float id = ds != 0.0f ? 1.0f / ds : 0.0f;
	const float32x4_t lo = vdupq_n_f32(-127.0f), hi = vdupq_n_f32(127.0f);
	int16x8_t h[4];
	for (int i = 0; i < 4; i++) {
		float32x4_t a = vminnmq_f32(vmaxnmq_f32(vmulq_n_f32(v[2 * i], id), lo), hi);
		float32x4_t b = vminnmq_f32(vmaxnmq_f32(vmulq_n_f32(v[2 * i + 1], id), lo), hi);
		h[i] = vcombine_s16(vqmovn_s32(vcvtnq_s32_f32(a)), vqmovn_s32(vcvtnq_s32_f32(b)));
	}
	int8x16_t q0 = vcombine_s8(vqmovn_s16(h[0]), vqmovn_s16(h[1]));
	int8x16_t q1 = vcombine_s8(vqmovn_s16(h[2]), vqmovn_s16(h[3]));
	vst1q_s8(qs, q0);
	vst1q_s8(qs + 16, q1);
	if (sum) /* pairwise widening sums: no overflow (32 * 127) */
		*sum = vaddvq_s32(vpaddlq_s16(vaddq_s16(vpaddlq_s8(q0), vpaddlq_s8(q1))));
	return dh;
}

void op_isa_quantize_q8(const float *x, int64_t nb, int8_t *qs, op_f16 *d, int32_t *sums)
{
	for (int64_t b = 0; b < nb; b++)
		d[b] = quantize_block(x + b * OP_QK, qs + b * OP_QK, sums ? &sums[b] : NULL);
}

/* ---- float dot products ------------------------------------------------- */

float op_isa_dot_f32(const float *w, const float *x, int64_t n)
{
	float32x4_t a0 = vdupq_n_f32(0.0f), a1 = a0, a2 = a0, a3 = a0;
	int64_t i = 0;
	for (; i + 16 <= n; i += 16) {
		a0 = vfmaq_f32(a0, vld1q_f32(w + i), vld1q_f32(x + i));
		a1 = vfmaq_f32(a1, vld1q_f32(w + i + 4), vld1q_f32(x + i + 4));
		a2 = vfmaq_f32(a2, vld1q_f32(w + i + 8), vld1q_f32(x + i + 8));
		a3 = vfmaq_f32(a3, vld1q_f32(w + i + 12), vld1q_f32(x + i + 12));
	}
	for (; i + 4 <= n; i += 4)
		a0 = vfmaq_f32(a0, vld1q_f32(w + i), vld1q_f32(x + i));
	float s = vaddvq_f32(vaddq_f32(vaddq_f32(a0, a1), vaddq_f32(a2, a3)));
	for (; i < n; i++) /* scalar tail */
		s += w[i] * x[i];
	return s;
}

float op_isa_dot_f16(const op_f16 *w, const float *x, int64_t n)
{
	float32x4_t a0 = vdupq_n_f32(0.0f), a1 = a0;
	int64_t i = 0;
	for (; i + 8 <= n; i += 8) {
		float16x8_t h = vreinterpretq_f16_u16(vld1q_u16(w + i));
		a0 = vfmaq_f32(a0, vcvt_f32_f16(vget_low_f16(h)), vld1q_f32(x + i));
		a1 = vfmaq_f32(a1, vcvt_high_f32_f16(h), vld1q_f32(x + i + 4));
	}
	float s = vaddvq_f32(vaddq_f32(a0, a1));
	for (; i < n; i++)
		s += op_f16_to_f32(w[i]) * x[i];
	return s;
}

/* ---- int8 dot of 32 elements --------------------------------------------- */

/* w0/w1 and x0/x1: elements 0..15 and 16..31. Returns 4 int32 partial sums. */
static ALWAYS_INLINE int32x4_t dot32(int8x16_t w0, int8x16_t w1, int8x16_t x0, int8x16_t x1)
{
#if defined(OP_ISA_NEON_DOT)
	return vdotq_s32(vdotq_s32(vdupq_n_s32(0), w0, x0), w1, x1);
#else
	/* products fit int16 (127 * 127), sadalp widens pairs into int32 */
	int32x4_t acc = vpaddlq_s16(vmull_s8(vget_low_s8(w0), vget_low_s8(x0)));
	acc = vpadalq_s16(acc, vmull_high_s8(w0, x0));
	acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(w1), vget_low_s8(x1)));
	return vpadalq_s16(acc, vmull_high_s8(w1, x1));
#endif
}

/* q4_0 nibbles as signed q - 8: lo = elements 0..15, hi = 16..31. */
static ALWAYS_INLINE void unpack_q4(const uint8_t *qs, int8x16_t *lo, int8x16_t *hi)
{
	uint8x16_t v = vld1q_u8(qs);
	const int8x16_t eight = vdupq_n_s8(8);
	*lo = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(v, vdupq_n_u8(0x0f))), eight);
	*hi = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(v, 4)), eight);
}

float op_isa_dot_q8_0(const op_block_q8_0 *w, const op_block_q8_0 *x, int64_t nb)
{
	float32x4_t a0 = vdupq_n_f32(0.0f), a1 = a0;
	int64_t b = 0;
	for (; b + 2 <= nb; b += 2) {
		int32x4_t p0 = dot32(vld1q_s8(w[b].qs), vld1q_s8(w[b].qs + 16), vld1q_s8(x[b].qs),
		                     vld1q_s8(x[b].qs + 16));
		int32x4_t p1 = dot32(vld1q_s8(w[b + 1].qs), vld1q_s8(w[b + 1].qs + 16),
		                     vld1q_s8(x[b + 1].qs), vld1q_s8(x[b + 1].qs + 16));
		a0 = vfmaq_n_f32(a0, vcvtq_f32_s32(p0), op_f16_to_f32(w[b].d) * op_f16_to_f32(x[b].d));
		a1 = vfmaq_n_f32(a1, vcvtq_f32_s32(p1),
		                 op_f16_to_f32(w[b + 1].d) * op_f16_to_f32(x[b + 1].d));
	}
	for (; b < nb; b++) {
		int32x4_t p = dot32(vld1q_s8(w[b].qs), vld1q_s8(w[b].qs + 16), vld1q_s8(x[b].qs),
		                    vld1q_s8(x[b].qs + 16));
		a0 = vfmaq_n_f32(a0, vcvtq_f32_s32(p), op_f16_to_f32(w[b].d) * op_f16_to_f32(x[b].d));
	}
	return vaddvq_f32(vaddq_f32(a0, a1));
}

float op_isa_dot_q4_0(const op_block_q4_0 *w, const op_block_q8_0 *x, int64_t nb)
{
	float32x4_t a0 = vdupq_n_f32(0.0f);
	for (int64_t b = 0; b < nb; b++) {
		int8x16_t lo, hi;
		unpack_q4(w[b].qs, &lo, &hi);
		int32x4_t p = dot32(lo, hi, vld1q_s8(x[b].qs), vld1q_s8(x[b].qs + 16));
		a0 = vfmaq_n_f32(a0, vcvtq_f32_s32(p), op_f16_to_f32(w[b].d) * op_f16_to_f32(x[b].d));
	}
	return vaddvq_f32(a0);
}

/* ---- GEMV ----------------------------------------------------------------- */

/* Prepared activation: qs[K] in element order, then one float scale per block. */
static size_t gemv_d_off(int64_t K) { return op_pad((size_t)K, OP_ALIGN); }

size_t op_isa_gemv_xbytes(enum op_dtype wt, int64_t K)
{
	return gemv_d_off(K) + (size_t)(K / OP_QK) * sizeof(float);
}

void op_isa_gemv_prepare(enum op_dtype wt, const float *x, int64_t K, void *xq)
{
	int8_t *qs = xq;
	float *d = (float *)((uint8_t *)xq + gemv_d_off(K));
	for (int64_t b = 0; b < K / OP_QK; b++)
		d[b] = op_f16_to_f32(quantize_block(x + b * OP_QK, qs + b * OP_QK, NULL));
}

static ALWAYS_INLINE float32x4_t gemv_block(enum op_dtype wt, const uint8_t *row, int64_t b,
                                            int8x16_t x0, int8x16_t x1, float dx, float32x4_t acc)
{
	int8x16_t w0, w1;
	float dw;
	if (wt == OP_Q4_0) {
		const op_block_q4_0 *blk = (const op_block_q4_0 *)row + b;
		unpack_q4(blk->qs, &w0, &w1);
		dw = op_f16_to_f32(blk->d);
	} else {
		const op_block_q8_0 *blk = (const op_block_q8_0 *)row + b;
		w0 = vld1q_s8(blk->qs);
		w1 = vld1q_s8(blk->qs + 16);
		dw = op_f16_to_f32(blk->d);
	}
	return vfmaq_n_f32(acc, vcvtq_f32_s32(dot32(w0, w1, x0, x1)), dw * dx);
}

static ALWAYS_INLINE void gemv_rows(enum op_dtype wt, const uint8_t *base, size_t row_bytes,
                                    int64_t r0, int64_t r1, int64_t K, const int8_t *qs,
                                    const float *d, float *y)
{
	int64_t nb = K / OP_QK, r = r0;
	/* two rows at a time: independent chains, one activation load */
	for (; r + 2 <= r1; r += 2) {
		const uint8_t *w0 = base + (size_t)r * row_bytes, *w1 = w0 + row_bytes;
		float32x4_t a0 = vdupq_n_f32(0.0f), a1 = a0;
		for (int64_t b = 0; b < nb; b++) {
			/* software prefetch of the weight stream, as on x86 (dot_x86.c) */
			size_t at = (size_t)b * (wt == OP_Q4_0 ? sizeof(op_block_q4_0) : sizeof(op_block_q8_0));
			__builtin_prefetch(w0 + at + OP_PREFETCH_BYTES);
			__builtin_prefetch(w1 + at + OP_PREFETCH_BYTES);
			int8x16_t x0 = vld1q_s8(qs + b * OP_QK), x1 = vld1q_s8(qs + b * OP_QK + 16);
			a0 = gemv_block(wt, w0, b, x0, x1, d[b], a0);
			a1 = gemv_block(wt, w1, b, x0, x1, d[b], a1);
		}
		y[r - r0] = vaddvq_f32(a0);
		y[r + 1 - r0] = vaddvq_f32(a1);
	}
	for (; r < r1; r++) {
		const uint8_t *w0 = base + (size_t)r * row_bytes;
		float32x4_t a0 = vdupq_n_f32(0.0f);
		for (int64_t b = 0; b < nb; b++)
			a0 = gemv_block(wt, w0, b, vld1q_s8(qs + b * OP_QK), vld1q_s8(qs + b * OP_QK + 16),
			                d[b], a0);
		y[r - r0] = vaddvq_f32(a0);
	}
}

void op_isa_gemv(enum op_dtype wt, const void *W, size_t row_bytes, int64_t r0, int64_t r1,
                 int64_t K, const void *xq, float *y)
{
	const int8_t *qs = xq;
	const float *d = (const float *)((const uint8_t *)xq + gemv_d_off(K));
	if (wt == OP_Q4_0)
		gemv_rows(OP_Q4_0, W, row_bytes, r0, r1, K, qs, d, y);
	else
		gemv_rows(OP_Q8_0, W, row_bytes, r0, r1, K, qs, d, y);
}

#if defined(OP_ISA_NEON_DOT)
/* ---- GEMM (sdot) ---------------------------------------------------------- */

/* Packed panel, per block: for k-group g 0..7, for row group rg 0..1, 16
 * bytes = 4 rows x 4 signed quants (q4: q - 8); then 8 float scales. */
#define PK_GROUP 32
#define PK_SCALES (8 * PK_GROUP)
#define PK_BLOCK (PK_SCALES + 32) /* 288 bytes */

int op_isa_gemm_offset(enum op_dtype wt) { return 0; }
size_t op_isa_gemm_pack_bytes(void) { return (size_t)OP_GEMM_KB * PK_BLOCK; }

/* 4 x 4 transpose of dwords: out[g] = dword g of rows a, b, c, d. */
static ALWAYS_INLINE void transpose4(int8x16_t a, int8x16_t b, int8x16_t c, int8x16_t d,
                                     int8_t *out)
{
	int32x4_t t0 = vtrn1q_s32(vreinterpretq_s32_s8(a), vreinterpretq_s32_s8(b));
	int32x4_t t1 = vtrn2q_s32(vreinterpretq_s32_s8(a), vreinterpretq_s32_s8(b));
	int32x4_t t2 = vtrn1q_s32(vreinterpretq_s32_s8(c), vreinterpretq_s32_s8(d));
	int32x4_t t3 = vtrn2q_s32(vreinterpretq_s32_s8(c), vreinterpretq_s32_s8(d));
	int64x2_t u0 = vreinterpretq_s64_s32(t0), u1 = vreinterpretq_s64_s32(t1);
	int64x2_t u2 = vreinterpretq_s64_s32(t2), u3 = vreinterpretq_s64_s32(t3);
	vst1q_s8(out + 0 * PK_GROUP, vreinterpretq_s8_s64(vtrn1q_s64(u0, u2)));
	vst1q_s8(out + 1 * PK_GROUP, vreinterpretq_s8_s64(vtrn1q_s64(u1, u3)));
	vst1q_s8(out + 2 * PK_GROUP, vreinterpretq_s8_s64(vtrn2q_s64(u0, u2)));
	vst1q_s8(out + 3 * PK_GROUP, vreinterpretq_s8_s64(vtrn2q_s64(u1, u3)));
}

void op_isa_gemm_pack(enum op_dtype wt, const void *W, size_t row_bytes, int64_t M, int64_t r0,
                      int64_t b0, int64_t nb, void *buf)
{
	uint8_t *out = buf;
	for (int64_t b = 0; b < nb; b++) {
		uint8_t *blk = out + b * PK_BLOCK;
		float *dv = (float *)(blk + PK_SCALES);
		for (int rg = 0; rg < 2; rg++) {
			int8x16_t lo[4], hi[4]; /* k 0..15 and 16..31 of four rows */
			for (int i = 0; i < 4; i++) {
				int64_t r = r0 + rg * 4 + i;
				if (r >= M) {
					lo[i] = hi[i] = vdupq_n_s8(0);
					dv[rg * 4 + i] = 0.0f;
					continue;
				}
				const uint8_t *row = (const uint8_t *)W + (size_t)r * row_bytes;
				if (wt == OP_Q4_0) {
					const op_block_q4_0 *bl = (const op_block_q4_0 *)row + b0 + b;
					unpack_q4(bl->qs, &lo[i], &hi[i]);
					dv[rg * 4 + i] = op_f16_to_f32(bl->d);
				} else {
					const op_block_q8_0 *bl = (const op_block_q8_0 *)row + b0 + b;
					lo[i] = vld1q_s8(bl->qs);
					hi[i] = vld1q_s8(bl->qs + 16);
					dv[rg * 4 + i] = op_f16_to_f32(bl->d);
				}
			}
			int8_t *o = (int8_t *)(blk + rg * 16);
			transpose4(lo[0], lo[1], lo[2], lo[3], o);
			transpose4(hi[0], hi[1], hi[2], hi[3], o + 4 * PK_GROUP);
		}
	}
}

/* The micro-kernel: 8 rows x 4 columns. One 16-byte load of the activation
 * record is one k-group of all 4 columns; sdot by lane j multiplies it into
 * column j's accumulators. */
static ALWAYS_INLINE void tile_kernel(const uint8_t *buf, int64_t nb, const uint8_t *xrec,
                                      float *Y, int64_t ldy, int64_t r0, int nrows, int ncols,
                                      bool accumulate)
{
	float32x4_t f0[4], f1[4];
	for (int j = 0; j < 4; j++) {
		float t[8] = {0, 0, 0, 0, 0, 0, 0, 0};
		if (accumulate && j < ncols)
			memcpy(t, Y + j * ldy + r0, (size_t)nrows * sizeof(float));
		f0[j] = vld1q_f32(t);
		f1[j] = vld1q_f32(t + 4);
	}
	for (int64_t b = 0; b < nb; b++) {
		const uint8_t *blk = buf + b * PK_BLOCK;
		const uint8_t *xr = xrec + b * OP_XBLOCK_BYTES;
		int32x4_t i0[4], i1[4];
		for (int j = 0; j < 4; j++)
			i0[j] = i1[j] = vdupq_n_s32(0);
		OP_UNROLL
		for (int g = 0; g < 8; g++) {
			int8x16_t w0 = vld1q_s8((const int8_t *)(blk + g * PK_GROUP));
			int8x16_t w1 = vld1q_s8((const int8_t *)(blk + g * PK_GROUP + 16));
			int8x16_t xv = vld1q_s8((const int8_t *)(xr + g * 16));
#define LANE(j)                                          \
	do {                                                 \
		i0[j] = vdotq_laneq_s32(i0[j], w0, xv, j);       \
		i1[j] = vdotq_laneq_s32(i1[j], w1, xv, j);       \
	} while (0)
			LANE(0);
			LANE(1);
			LANE(2);
			LANE(3);
#undef LANE
		}
		float32x4_t d0 = vld1q_f32((const float *)(blk + PK_SCALES));
		float32x4_t d1 = vld1q_f32((const float *)(blk + PK_SCALES + 16));
		float32x4_t dx = vld1q_f32((const float *)(xr + OP_XBLOCK_D));
		f0[0] = vfmaq_f32(f0[0], vcvtq_f32_s32(i0[0]), vmulq_laneq_f32(d0, dx, 0));
		f1[0] = vfmaq_f32(f1[0], vcvtq_f32_s32(i1[0]), vmulq_laneq_f32(d1, dx, 0));
		f0[1] = vfmaq_f32(f0[1], vcvtq_f32_s32(i0[1]), vmulq_laneq_f32(d0, dx, 1));
		f1[1] = vfmaq_f32(f1[1], vcvtq_f32_s32(i1[1]), vmulq_laneq_f32(d1, dx, 1));
		f0[2] = vfmaq_f32(f0[2], vcvtq_f32_s32(i0[2]), vmulq_laneq_f32(d0, dx, 2));
		f1[2] = vfmaq_f32(f1[2], vcvtq_f32_s32(i1[2]), vmulq_laneq_f32(d1, dx, 2));
		f0[3] = vfmaq_f32(f0[3], vcvtq_f32_s32(i0[3]), vmulq_laneq_f32(d0, dx, 3));
		f1[3] = vfmaq_f32(f1[3], vcvtq_f32_s32(i1[3]), vmulq_laneq_f32(d1, dx, 3));
	}
	for (int j = 0; j < ncols; j++) {
		float t[8];
		vst1q_f32(t, f0[j]);
		vst1q_f32(t + 4, f1[j]);
		memcpy(Y + j * ldy + r0, t, (size_t)nrows * sizeof(float));
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
#endif /* OP_ISA_NEON_DOT */

#endif /* OP_ISA_NEON_ANY */
