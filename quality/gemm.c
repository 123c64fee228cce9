/*
 * quality/gemm.c: the trainer's one matrix product, C = [C +] A.B in f32
 * (see qual_int.h for the contract and why it is deterministic).
 *
 * Workload: the trainer's forward (X.W^T with W transposed once per step),
 * its input gradients (dY.W) and weight gradients (dY^T.X): at width 128,
 * depth 8, 2K tokens a step, about 90% of a step's FLOPs. The kernel keeps a
 * 4 x 2V block of C in registers (V = the vector width) and streams rows of
 * B; the compiler's vector extension maps it to AVX-512, AVX2 or NEON. No
 * reduction is vectorised (that would reorder sums): lanes are columns.
 */
#include "qual_int.h"

#include <string.h>

#if defined(__AVX512F__)
#define VW 16
#elif defined(__AVX__) || defined(__ARM_NEON)
#define VW 8
#else
#define VW 4
#endif
typedef float vf __attribute__((vector_size(VW * sizeof(float))));

static inline vf vload(const float *p)
{
	vf v;
	memcpy(&v, p, sizeof v);
	return v;
}

static inline void vstore(float *p, vf v)
{
	memcpy(p, &v, sizeof v);
}

/* Rows [r0, r0+nr) of C, nr <= 4. */
static void gemm_rows(float *C, const float *A, const float *B, int64_t r0, int nr, int64_t Q,
                      int64_t P, int accumulate)
{
	int64_t p = 0;
	for (; p + 2 * VW <= P; p += 2 * VW) {
		vf acc[4][2];
		memset(acc, 0, sizeof acc);
		for (int64_t k = 0; k < Q; k++) {
			const float *b = B + k * P + p;
			vf b0 = vload(b), b1 = vload(b + VW);
			for (int r = 0; r < nr; r++) {
				float a = A[(r0 + r) * Q + k];
				acc[r][0] += a * b0;
				acc[r][1] += a * b1;
			}
		}
		for (int r = 0; r < nr; r++) {
			float *c = C + (r0 + r) * P + p;
			if (accumulate) {
				vstore(c, vload(c) + acc[r][0]);
				vstore(c + VW, vload(c + VW) + acc[r][1]);
			} else {
				vstore(c, acc[r][0]);
				vstore(c + VW, acc[r][1]);
			}
		}
	}
	for (; p + VW <= P; p += VW) {
		vf acc[4];
		memset(acc, 0, sizeof acc);
		for (int64_t k = 0; k < Q; k++) {
			vf b0 = vload(B + k * P + p);
			for (int r = 0; r < nr; r++)
				acc[r] += A[(r0 + r) * Q + k] * b0;
		}
		for (int r = 0; r < nr; r++) {
			float *c = C + (r0 + r) * P + p;
			vstore(c, accumulate ? vload(c) + acc[r] : acc[r]);
		}
	}
	for (; p < P; p++)
		for (int r = 0; r < nr; r++) {
			float acc = 0.0f;
			for (int64_t k = 0; k < Q; k++)
				acc += A[(r0 + r) * Q + k] * B[k * P + p];
			float *c = C + (r0 + r) * P + p;
			*c = accumulate ? *c + acc : acc;
		}
}

typedef struct gemm_job {
	float *C;
	const float *A, *B;
	int64_t N, Q, P;
	int accumulate;
} gemm_job;

static void gemm_run(void *arg, int ith, int nth)
{
	const gemm_job *j = arg;
	int64_t blocks = (j->N + 3) / 4, lo, hi;
	qual_split(blocks, ith, nth, &lo, &hi);
	for (int64_t b = lo; b < hi; b++) {
		int64_t r0 = b * 4;
		int nr = (int)(j->N - r0 < 4 ? j->N - r0 : 4);
		gemm_rows(j->C, j->A, j->B, r0, nr, j->Q, j->P, j->accumulate);
	}
}

void qual_gemm(op_pool *pool, float *C, const float *A, const float *B, int64_t N, int64_t Q,
               int64_t P, int accumulate)
{
	// C is (N, P), A is (N, Q), B is (Q, P)
	gemm_job j = {C, A, B, N, Q, P, accumulate};
	if (pool && N * Q * P >= 65536)
		op_pool_run(pool, gemm_run, &j);
	else
		gemm_run(&j, 0, 1);
}

void qual_transpose(float *out, const float *in, int64_t rows, int64_t cols)
{
	// in is (rows, cols), out is (cols, rows); 32 x 32 tiles
	for (int64_t r0 = 0; r0 < rows; r0 += 32)
		for (int64_t c0 = 0; c0 < cols; c0 += 32)
			for (int64_t r = r0; r < rows && r < r0 + 32; r++)
				for (int64_t c = c0; c < cols && c < c0 + 32; c++)
					out[c * rows + r] = in[r * cols + c];
}
