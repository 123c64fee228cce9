/*
 * operators/quant.c: half-precision conversions, the q8_0 / q4_0 block formats
 * (ggml's layouts), their reference quantizers, and the reference dot products
 * that specify what every SIMD path must compute.
 *
 * Workload: quantization runs once per weight tensor (when the harness makes
 * weights from a seed) and once per activation row inside op_matmul (through
 * op_isa_quantize_q8, which must match op_quantize_row_ref bit for bit);
 * op_vec_dot serves single rows (attention over a quantized KV cache, tests).
 * The scalar (no SIMD) build also takes its op_isa_* primitives from here.
 *
 * Nothing here may be compiled with fast-math: the references are the
 * specification, and the quantizers must round identically in every build.
 */
#include "op_kernels_int.h"

#include <assert.h>
#include <math.h>
#include <string.h>

#if defined(__F16C__)
#include <immintrin.h>
#endif

/* ---- half precision ------------------------------------------------------ */

static inline uint32_t f32_bits(float f)
{
	uint32_t u;
	memcpy(&u, &f, sizeof u);
	return u;
}

static inline float f32_from_bits(uint32_t u)
{
	float f;
	memcpy(&f, &u, sizeof f);
	return f;
}

float op_f16_to_f32_ref(op_f16 h)
{
	uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
	uint32_t exp = (h >> 10) & 0x1fu;
	uint32_t mant = h & 0x3ffu;
	if (exp == 0x1f) /* inf, NaN: a signalling NaN is quieted as the hardware does */
		return f32_from_bits(sign | 0x7f800000u | (mant << 13) | (mant ? 0x400000u : 0));
	if (exp == 0) {
		/* zero or subnormal: mant * 2^-24, exact in float */
		float f = (float)mant * 0x1p-24f;
		return f32_from_bits(sign | f32_bits(f));
	}
	return f32_from_bits(sign | ((exp + 112u) << 23) | (mant << 13));
}

op_f16 op_f32_to_f16_ref(float f)
{
	uint32_t x = f32_bits(f);
	uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
	x &= 0x7fffffffu;
	if (x > 0x7f800000u) /* NaN: quiet, keep the top 9 payload bits */
		return (op_f16)(sign | 0x7e00u | ((x >> 13) & 0x3ffu));
	if (x >= 0x477ff000u) /* >= 65520 rounds past 65504 (ties to even): inf */
		return (op_f16)(sign | 0x7c00u);
	uint32_t e = x >> 23;
	if (e < 113) {
		/* below the smallest normal half 2^-14: a multiple of 2^-24. The
		 * float is m * 2^(e - 150) (m with its implicit bit), that is
		 * m * 2^(e - 126) units of 2^-24, i.e. m >> (126 - e) rounded. */
		if (e < 102) /* < 2^-25 (or a float subnormal): rounds to zero */
			return sign;
		uint32_t m = (x & 0x7fffffu) | 0x800000u;
		uint32_t shift = 126 - e; /* 14..24 */
		uint32_t r = m >> shift;
		uint32_t rem = m & ((1u << shift) - 1);
		uint32_t half = 1u << (shift - 1);
		if (rem > half || (rem == half && (r & 1u)))
			r++; /* may carry into the smallest normal: still the right code */
		return (op_f16)(sign | r);
	}
	uint32_t r = ((e - 112) << 10) | ((x >> 13) & 0x3ffu);
	uint32_t rem = x & 0x1fffu;
	if (rem > 0x1000u || (rem == 0x1000u && (r & 1u)))
		r++; /* a carry out of the mantissa bumps the exponent, as it should */
	return (op_f16)(sign | r);
}

#if defined(__F16C__)
float op_f16_to_f32(op_f16 h) { return _cvtsh_ss(h); }
op_f16 op_f32_to_f16(float f) { return _cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT); }
#elif defined(__aarch64__) && defined(__ARM_FP16_FORMAT_IEEE)
/* fcvt: IEEE half, round to nearest even (FPCR default), NaNs quieted. */
float op_f16_to_f32(op_f16 h)
{
	__fp16 v;
	memcpy(&v, &h, sizeof v);
	return (float)v;
}
op_f16 op_f32_to_f16(float f)
{
	__fp16 v = (__fp16)f;
	op_f16 h;
	memcpy(&h, &v, sizeof h);
	return h;
}
#else
float op_f16_to_f32(op_f16 h) { return op_f16_to_f32_ref(h); }
op_f16 op_f32_to_f16(float f) { return op_f32_to_f16_ref(f); }
#endif

/* ---- formats ------------------------------------------------------------- */

const char *op_dtype_name(enum op_dtype t)
{
	switch (t) {
	case OP_F32: return "f32";
	case OP_F16: return "f16";
	case OP_Q8_0: return "q8_0";
	case OP_Q4_0: return "q4_0";
	}
	return NULL;
}

size_t op_row_bytes(enum op_dtype t, int64_t n)
{
	assert(n >= 0);
	switch (t) {
	case OP_F32: return (size_t)n * sizeof(float);
	case OP_F16: return (size_t)n * sizeof(op_f16);
	case OP_Q8_0: return (size_t)(n / OP_QK) * sizeof(op_block_q8_0);
	case OP_Q4_0: return (size_t)(n / OP_QK) * sizeof(op_block_q4_0);
	}
	return 0;
}

/* The largest finite half: scales are clamped to it so that an enormous
 * input saturates its quants instead of turning into inf * 0 = NaN. */
#define F16_MAX 65504.0f

/* One q8_0 block, reference semantics (see op_quantize_row). Shared by the
 * scalar build's op_isa_quantize_q8. */
static op_f16 quantize_block_q8_ref(const float *x, int8_t *qs)
{
	float amax = 0.0f;
	for (int i = 0; i < OP_QK; i++)
		amax = fmaxf(amax, fabsf(x[i]));
	float d = fminf(amax / 127.0f, F16_MAX);
	op_f16 dh = op_f32_to_f16(d);
	float ds = op_f16_to_f32(dh);
	float id = ds != 0.0f ? 1.0f / ds : 0.0f;
	for (int i = 0; i < OP_QK; i++) {
		/* nearbyintf: round half to even in the default environment, as the
		 * SIMD conversions (cvtps2dq, fcvtns) do */
		float v = nearbyintf(x[i] * id);
		v = fminf(fmaxf(v, -127.0f), 127.0f);
		qs[i] = (int8_t)v;
	}
	return dh;
}

static void quantize_row_q8_0_ref(const float *x, op_block_q8_0 *y, int64_t nb)
{
	for (int64_t b = 0; b < nb; b++)
		y[b].d = quantize_block_q8_ref(x + b * OP_QK, y[b].qs);
}

static void quantize_row_q4_0_ref(const float *x, op_block_q4_0 *y, int64_t nb)
{
	for (int64_t b = 0; b < nb; b++) {
		const float *xb = x + b * OP_QK;
		float amax = 0.0f, max = 0.0f;
		for (int i = 0; i < OP_QK; i++) {
			if (amax < fabsf(xb[i])) { /* first of equal magnitudes wins, as ggml */
				amax = fabsf(xb[i]);
				max = xb[i];
			}
		}
		float d = max / -8.0f;
		d = fminf(fmaxf(d, -F16_MAX), F16_MAX);
		op_f16 dh = op_f32_to_f16(d);
		float ds = op_f16_to_f32(dh);
		float id = ds != 0.0f ? 1.0f / ds : 0.0f;
		y[b].d = dh;
		for (int i = 0; i < OP_QK / 2; i++) {
			/* x/d + 8.5 is >= 0 up to rounding, so the int conversion is a
			 * floor; the clamps only catch rounding and saturated scales */
			float v0 = fminf(fmaxf(xb[i] * id + 8.5f, 0.0f), 15.0f);
			float v1 = fminf(fmaxf(xb[i + 16] * id + 8.5f, 0.0f), 15.0f);
			y[b].qs[i] = (uint8_t)((unsigned)v0 | ((unsigned)v1 << 4));
		}
	}
}

void op_quantize_row_ref(enum op_dtype t, const float *x, void *row, int64_t n)
{
	switch (t) {
	case OP_F32:
		memcpy(row, x, (size_t)n * sizeof(float));
		return;
	case OP_F16: {
		op_f16 *h = row;
		for (int64_t i = 0; i < n; i++)
			h[i] = op_f32_to_f16_ref(x[i]);
		return;
	}
	case OP_Q8_0:
		assert(n % OP_QK == 0);
		quantize_row_q8_0_ref(x, row, n / OP_QK);
		return;
	case OP_Q4_0:
		assert(n % OP_QK == 0);
		quantize_row_q4_0_ref(x, row, n / OP_QK);
		return;
	}
}

void op_quantize_row(enum op_dtype t, const float *x, void *row, int64_t n)
{
	switch (t) {
	case OP_F16: {
		op_f16 *h = row;
		for (int64_t i = 0; i < n; i++)
			h[i] = op_f32_to_f16(x[i]);
		return;
	}
	case OP_Q8_0: {
		/* through the compiled quantizer, 8 blocks at a time (its fast path,
		 * which the tests then hold to the reference byte for byte) */
		assert(n % OP_QK == 0);
		op_block_q8_0 *y = row;
		int8_t qs[8 * OP_QK];
		op_f16 d[8];
		for (int64_t b0 = 0; b0 < n / OP_QK; b0 += 8) {
			int64_t nb = n / OP_QK - b0 < 8 ? n / OP_QK - b0 : 8;
			op_isa_quantize_q8(x + b0 * OP_QK, nb, qs, d, NULL);
			for (int64_t b = 0; b < nb; b++) {
				y[b0 + b].d = d[b];
				memcpy(y[b0 + b].qs, qs + b * OP_QK, OP_QK);
			}
		}
		return;
	}
	case OP_F32:
	case OP_Q4_0:
		op_quantize_row_ref(t, x, row, n);
		return;
	}
}

void op_dequantize_row(enum op_dtype t, const void *row, float *x, int64_t n)
{
	switch (t) {
	case OP_F32:
		memcpy(x, row, (size_t)n * sizeof(float));
		return;
	case OP_F16: {
		const op_f16 *h = row;
		for (int64_t i = 0; i < n; i++)
			x[i] = op_f16_to_f32(h[i]);
		return;
	}
	case OP_Q8_0: {
		const op_block_q8_0 *y = row;
		for (int64_t b = 0; b < n / OP_QK; b++) {
			float d = op_f16_to_f32(y[b].d);
			for (int i = 0; i < OP_QK; i++)
				x[b * OP_QK + i] = d * (float)y[b].qs[i];
		}
		return;
	}
	case OP_Q4_0: {
		const op_block_q4_0 *y = row;
		for (int64_t b = 0; b < n / OP_QK; b++) {
			float d = op_f16_to_f32(y[b].d);
			for (int i = 0; i < OP_QK / 2; i++) {
				x[b * OP_QK + i] = d * (float)((y[b].qs[i] & 0x0f) - 8);
				x[b * OP_QK + i + 16] = d * (float)((y[b].qs[i] >> 4) - 8);
			}
		}
		return;
	}
	}
}

/* ---- dot products -------------------------------------------------------- */

float op_vec_dot_ref(enum op_dtype wt, const void *w, const void *x, int64_t n)
{
	double sum = 0.0;
	switch (wt) {
	case OP_F32: {
		const float *a = w, *b = x;
		for (int64_t i = 0; i < n; i++)
			sum += (double)a[i] * (double)b[i];
		break;
	}
	case OP_F16: {
		const op_f16 *a = w;
		const float *b = x;
		for (int64_t i = 0; i < n; i++)
			sum += (double)op_f16_to_f32_ref(a[i]) * (double)b[i];
		break;
	}
	case OP_Q8_0: {
		const op_block_q8_0 *a = w, *b = x;
		for (int64_t k = 0; k < n / OP_QK; k++) {
			int32_t isum = 0;
			for (int i = 0; i < OP_QK; i++)
				isum += (int32_t)a[k].qs[i] * (int32_t)b[k].qs[i];
			float d = op_f16_to_f32_ref(a[k].d) * op_f16_to_f32_ref(b[k].d);
			sum += (double)((float)isum * d);
		}
		break;
	}
	case OP_Q4_0: {
		const op_block_q4_0 *a = w;
		const op_block_q8_0 *b = x;
		for (int64_t k = 0; k < n / OP_QK; k++) {
			int32_t isum = 0;
			for (int i = 0; i < OP_QK / 2; i++) {
				isum += ((int32_t)(a[k].qs[i] & 0x0f) - 8) * (int32_t)b[k].qs[i];
				isum += ((int32_t)(a[k].qs[i] >> 4) - 8) * (int32_t)b[k].qs[i + 16];
			}
			float d = op_f16_to_f32_ref(a[k].d) * op_f16_to_f32_ref(b[k].d);
			sum += (double)((float)isum * d);
		}
		break;
	}
	}
	return (float)sum;
}

float op_vec_dot(enum op_dtype wt, const void *w, const void *x, int64_t n)
{
	switch (wt) {
	case OP_F32: return op_isa_dot_f32(w, x, n);
	case OP_F16: return op_isa_dot_f16(w, x, n);
	case OP_Q8_0: assert(n % OP_QK == 0); return op_isa_dot_q8_0(w, x, n / OP_QK);
	case OP_Q4_0: assert(n % OP_QK == 0); return op_isa_dot_q4_0(w, x, n / OP_QK);
	}
	return 0.0f;
}

const char *op_kernels_isa(void) { return OP_ISA_NAME; }

/* ---- the scalar build's primitives ---------------------------------------- */

#if defined(OP_ISA_SCALAR)
void op_isa_quantize_q8(const float *x, int64_t nb, int8_t *qs, op_f16 *d, int32_t *sums)
{
	for (int64_t b = 0; b < nb; b++) {
		d[b] = quantize_block_q8_ref(x + b * OP_QK, qs + b * OP_QK);
		if (sums) {
			int32_t s = 0;
			for (int i = 0; i < OP_QK; i++)
				s += qs[b * OP_QK + i];
			sums[b] = s;
		}
	}
}

/* Four partial sums, as a 4-lane SIMD path would keep them: the same
 * rounding behaviour in every build, and independent chains for the CPU. */
float op_isa_dot_f32(const float *w, const float *x, int64_t n)
{
	float s[4] = {0, 0, 0, 0};
	int64_t i = 0;
	for (; i + 4 <= n; i += 4)
		for (int j = 0; j < 4; j++)
			s[j] += w[i + j] * x[i + j];
	for (; i < n; i++)
		s[0] += w[i] * x[i];
	return (s[0] + s[1]) + (s[2] + s[3]);
}

float op_isa_dot_f16(const op_f16 *w, const float *x, int64_t n)
{
	float s[4] = {0, 0, 0, 0};
	int64_t i = 0;
	for (; i + 4 <= n; i += 4)
		for (int j = 0; j < 4; j++)
			s[j] += op_f16_to_f32(w[i + j]) * x[i + j];
	for (; i < n; i++)
		s[0] += op_f16_to_f32(w[i]) * x[i];
	return (s[0] + s[1]) + (s[2] + s[3]);
}

float op_isa_dot_q8_0(const op_block_q8_0 *w, const op_block_q8_0 *x, int64_t nb)
{
	float sum = 0.0f;
	for (int64_t b = 0; b < nb; b++) {
		int32_t isum = 0;
		for (int i = 0; i < OP_QK; i++)
			isum += (int32_t)w[b].qs[i] * (int32_t)x[b].qs[i];
		sum += (float)isum * (op_f16_to_f32(w[b].d) * op_f16_to_f32(x[b].d));
	}
	return sum;
}

float op_isa_dot_q4_0(const op_block_q4_0 *w, const op_block_q8_0 *x, int64_t nb)
{
	float sum = 0.0f;
	for (int64_t b = 0; b < nb; b++) {
		int32_t isum = 0;
		for (int i = 0; i < OP_QK / 2; i++) {
			isum += ((int32_t)(w[b].qs[i] & 0x0f) - 8) * (int32_t)x[b].qs[i];
			isum += ((int32_t)(w[b].qs[i] >> 4) - 8) * (int32_t)x[b].qs[i + 16];
		}
		sum += (float)isum * (op_f16_to_f32(w[b].d) * op_f16_to_f32(x[b].d));
	}
	return sum;
}
#endif
