/*
 * quality/qual_int.h: private helpers of the quality room (not a public
 * header): the f32 matrix product the trainer uses, a static split of work
 * over the pool, and the elementwise functions the training forward shares
 * with the runtime's definitions (operators/mix_int.h is private to
 * operators/, so the few formulas are written again here, identically).
 *
 * Determinism whatever the thread count: every output element is computed
 * by exactly one thread, in a fixed order of its own terms, and the file is
 * compiled with -ffp-contract=off, so a SIMD lane and the scalar tail round
 * the same way. A thread split changes who computes an element, never how.
 */
#ifndef QUAL_INT_H
#define QUAL_INT_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "op_kernels.h"

/* C (N x P) = [C +] A (N x Q) . B (Q x P), all row-major and dense. Rows of C
 * are split over the pool; each element is sum_k A[n][k] B[k][p] summed
 * k = 0..Q-1 from 0, then added to C when accumulate. */
void qual_gemm(op_pool *pool, float *C, const float *A, const float *B, int64_t N, int64_t Q,
               int64_t P, int accumulate);
/* out (cols x rows) = in (rows x cols)^T. */
void qual_transpose(float *out, const float *in, int64_t rows, int64_t cols);

/* Range [lo, hi) of n units for thread ith of nth (contiguous blocks). */
static inline void qual_split(int64_t n, int ith, int nth, int64_t *lo, int64_t *hi)
{
	*lo = n * ith / nth;
	*hi = n * (ith + 1) / nth;
}

static inline float qual_sigmoid(float x)
{
	if (x >= 0.0f)
		return 1.0f / (1.0f + expf(-x));
	float e = expf(x);
	return e / (1.0f + e);
}

static inline float qual_silu(float x)
{
	return x * qual_sigmoid(x);
}

static inline float qual_softplus(float x)
{
	return (x > 0.0f ? x : 0.0f) + log1pf(expf(-fabsf(x)));
}

static inline float qual_posfeat(float x)
{
	return x > 0.0f ? x + 1.0f : expf(x);
}

#endif
