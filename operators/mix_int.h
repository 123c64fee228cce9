/*
 * operators/mix_int.h: helpers private to the token-mixing files (mix_*.c):
 * scalar activations, IEEE half conversion (single values and rows) and the
 * compile-time choice of SIMD path (MIX_ISA_*). Everything is static inline
 * so each file gets its own copy and nothing leaks into the link namespace.
 */
#ifndef MIX_INT_H
#define MIX_INT_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* The SIMD path of the mix files, fixed at compile time from the compiler's
 * target macros like the kernel layer's (op_kernels_int.h; no run-time
 * dispatch): exactly one MIX_ISA_* is defined. AVX-512 needs BW and VL for
 * the masked 16-bit loads of f16 row tails; both x86 paths need F16C and
 * FMA. */
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && \
	defined(__F16C__) && defined(__FMA__)
#define MIX_ISA_AVX512 1
#define MIX_ISA_NAME "avx512"
#include <immintrin.h>
#elif defined(__AVX2__) && defined(__F16C__) && defined(__FMA__)
#define MIX_ISA_AVX2 1
#define MIX_ISA_NAME "avx2"
#include <immintrin.h>
#elif defined(__ARM_NEON) && defined(__aarch64__)
#define MIX_ISA_NEON 1
#define MIX_ISA_NAME "neon"
#include <arm_neon.h>
#else
#define MIX_ISA_SCALAR 1
#define MIX_ISA_NAME "scalar"
#endif

/* sigmoid without overflow: exp of a non-positive argument only. */
static inline float mix_sigmoid(float x)
{
	if (x >= 0.0f)
		return 1.0f / (1.0f + expf(-x));
	float e = expf(x);
	return e / (1.0f + e);
}

static inline float mix_silu(float x)
{
	return x * mix_sigmoid(x);
}

/* softplus(x) = log(1 + e^x) = max(x, 0) + log1p(e^-|x|): no overflow. */
static inline float mix_softplus(float x)
{
	return (x > 0.0f ? x : 0.0f) + log1pf(expf(-fabsf(x)));
}

/* elu(x) + 1: x + 1 for x > 0, e^x otherwise (positive everywhere). */
static inline float mix_posfeat(float x)
{
	return x > 0.0f ? x + 1.0f : expf(x);
}

/* IEEE binary16 -> binary32, exact (every half is a float); NaNs come out
 * quiet with their payload, as F16C's vcvtph2ps and ARM's fcvt do (and
 * op_kernels.h's op_f16_to_f32). */
static inline float mix_f16_to_f32(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
	uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu, bits;
	if (e == 0) { /* zero or subnormal: m * 2^-24 */
		float f = (float)m * 0x1p-24f;
		return sign ? -f : f;
	}
	if (e == 31)
		bits = sign | 0x7f800000u | (m << 13) | (m ? 0x400000u : 0); /* inf, quiet nan */
	else
		bits = sign | ((e + 112) << 23) | (m << 13);
	float f;
	memcpy(&f, &bits, sizeof f);
	return f;
}

/* IEEE binary32 -> binary16, round to nearest even; overflow to inf, nan
 * stays nan (quiet, upper payload bits kept), as vcvtps2ph does. */
static inline uint16_t mix_f32_to_f16(float f)
{
	uint32_t x;
	memcpy(&x, &f, sizeof x);
	uint32_t sign = (x >> 16) & 0x8000u, ax = x & 0x7fffffffu;
	if (ax >= 0x7f800000u) /* inf or nan */
		return (uint16_t)(sign | 0x7c00u | (ax > 0x7f800000u ? 0x200u | ((ax >> 13) & 0x3ffu) : 0));
	if (ax >= 0x477ff000u) /* >= 65520, the midpoint above 65504: inf */
		return (uint16_t)(sign | 0x7c00u);
	if (ax < 0x38800000u) { /* below 2^-14: half subnormal m * 2^-24 */
		uint32_t s = 126u - (ax >> 23); /* >= 14 */
		if (s > 24)                     /* < 2^-25 (or exactly, a tie to 0) */
			return (uint16_t)sign;
		uint32_t mant = (ax & 0x7fffffu) | 0x800000u;
		uint32_t m = mant >> s, rem = mant & ((1u << s) - 1), half = 1u << (s - 1);
		if (rem > half || (rem == half && (m & 1u)))
			m++; /* may carry into the smallest normal: right encoding */
		return (uint16_t)(sign | m);
	}
	uint32_t h = (((ax >> 23) - 112u) << 10) | ((ax >> 13) & 0x3ffu);
	uint32_t rem = ax & 0x1fffu;
	if (rem > 0x1000u || (rem == 0x1000u && (h & 1u)))
		h++; /* a carry into the exponent is right too (below 65520) */
	return (uint16_t)(sign | h);
}

/* Rows of halves <-> floats, the conversions above with the hardware's
 * instruction where the build has one (F16C vcvtph2ps / vcvtps2ph with
 * round-to-nearest-even, AArch64 fcvtl / fcvtn): bit for bit the same
 * results, NaNs included (tests/test_mix.c checks every half and 65536
 * random float patterns through the KV cache). */
static inline void mix_f16_row_to_f32(float *dst, const uint16_t *src, size_t n)
{
	size_t i = 0;
#if defined(MIX_ISA_AVX512)
	for (; i + 16 <= n; i += 16)
		_mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(src + i))));
#elif defined(MIX_ISA_AVX2)
	for (; i + 8 <= n; i += 8)
		_mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
#elif defined(MIX_ISA_NEON)
	for (; i + 4 <= n; i += 4)
		vst1q_f32(dst + i, vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(src + i))));
#endif
	for (; i < n; i++)
		dst[i] = mix_f16_to_f32(src[i]);
}

static inline void mix_f32_row_to_f16(uint16_t *dst, const float *src, size_t n)
{
	size_t i = 0;
#if defined(MIX_ISA_AVX512) || defined(MIX_ISA_AVX2)
	for (; i + 8 <= n; i += 8)
		_mm_storeu_si128((__m128i *)(dst + i),
		                 _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
#elif defined(MIX_ISA_NEON)
	for (; i + 4 <= n; i += 4)
		vst1_u16(dst + i, vreinterpret_u16_f16(vcvt_f16_f32(vld1q_f32(src + i))));
#endif
	for (; i < n; i++)
		dst[i] = mix_f32_to_f16(src[i]);
}

#endif /* MIX_INT_H */
