/*
 * operators/matmul.c: Y[N][M] = X[N][K] · W[M][K]^T, the product every
 * projection of the inference build goes through, and its double-precision
 * reference.
 *
 * Workload (DESIGN.md §4; LFM2-350M as the yardstick: d = 1024, SwiGLU
 * 4608, 16 blocks):
 *  - decode: N == 1, 100-200 calls per token, M and K from 1024 to ~11k.
 *    A GEMV: the activation is quantized once (a few microseconds), W is
 *    streamed exactly once, rows split among threads in contiguous ranges, so
 *    the time is the weight bytes over the memory (or LLC) bandwidth.
 *  - prefill: N = prompt length (hundreds), the same shapes. A GEMM: X is
 *    quantized to q8_0 by all threads, then each thread takes (panel of W,
 *    range of X rows) work items; a panel of OP_GEMM_PR rows times
 *    OP_GEMM_KB blocks of K is packed into an L1-resident buffer (unsigned
 *    bytes in the ISA's dot-instruction layout, f32 scales), and the
 *    register-tiled micro-kernel (op_isa_gemm_tile) reuses each packed weight
 *    vector over several X rows and each X group over the panel's rows. The
 *    loop over K chunks is outermost so a K chunk of all of X stays in L2
 *    while the panels go by; partial sums go through Y.
 * f32 and f16 weights (reference runs, small layers) use the float dot
 * products in both cases; they are correct, not tuned.
 *
 * The scalar build (and the plain-NEON build, for the GEMM) take the generic
 * GEMV and pack/tile pair at the end of this file.
 */
#include "op_kernels_int.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#if defined(OP_ISA_NEON)
#include <arm_neon.h>
#endif

/* Rows are split among threads at multiples of this, so two threads never
 * write the same cache line of y (16 floats = 64 bytes). */
#define ROW_GRAIN 16

static inline int64_t split_at(int64_t n, int ith, int nth, int64_t grain)
{
	int64_t units = (n + grain - 1) / grain;
	int64_t u = units * ith / nth;
	int64_t r = u * grain;
	return r < n ? r : n;
}

/* Below this many X rows, one GEMV per row: packing W costs about as much as
 * streaming it through the GEMV, so the GEMM only wins from a few rows on
 * (measured with bench_kernels' "small" line: M = K = 4096, q4_0 and q8_0). */
#define GEMM_MIN_N 3

/* ---- scratch ------------------------------------------------------------- */

static bool is_quant(enum op_dtype wt) { return wt == OP_Q8_0 || wt == OP_Q4_0; }

size_t op_matmul_scratch_bytes(enum op_dtype wt, int64_t K, int64_t N)
{
	if (!is_quant(wt) || N <= 0)
		return 0;
	if (N < GEMM_MIN_N) {
		size_t b = op_isa_gemv_xbytes(wt, K);
#if OP_WMAT_ROWS > 1
		if (op_wmat_xbytes(K) > b)
			b = op_wmat_xbytes(K);
#endif
		return b + OP_ALIGN;
	}
	return (size_t)((N + OP_GEMM_NC - 1) / OP_GEMM_NC) * op_xgroup_bytes(K) + OP_ALIGN;
}

/* ---- float weights ------------------------------------------------------- */

typedef struct fjob {
	enum op_dtype wt;
	const uint8_t *W;
	size_t row_bytes;
	int64_t M, K, N;
	const float *X;
	float *Y;
} fjob;

/* Columns in chunks of this many so the chunk of X (FCHUNK * K floats) stays
 * in L2 while each W row is reused over it from L1. */
#define FCHUNK 8

static void fjob_run(void *arg, int ith, int nth)
{
	const fjob *j = arg;
	int64_t r0 = split_at(j->M, ith, nth, ROW_GRAIN), r1 = split_at(j->M, ith + 1, nth, ROW_GRAIN);
	for (int64_t c0 = 0; c0 < j->N; c0 += FCHUNK) {
		int64_t c1 = c0 + FCHUNK < j->N ? c0 + FCHUNK : j->N;
		for (int64_t r = r0; r < r1; r++) {
			const void *w = j->W + (size_t)r * j->row_bytes;
			for (int64_t c = c0; c < c1; c++) {
				const float *x = j->X + c * j->K;
				j->Y[c * j->M + r] = j->wt == OP_F32 ? op_isa_dot_f32(w, x, j->K)
				                                     : op_isa_dot_f16(w, x, j->K);
			}
		}
	}
}

/* ---- GEMV ---------------------------------------------------------------- */

typedef struct gemv_job {
	enum op_dtype wt;
	const void *W;
	size_t row_bytes;
	int64_t M, K;
	const void *xq;
	float *y;
} gemv_job;

static void gemv_run(void *arg, int ith, int nth)
{
	const gemv_job *j = arg;
	int64_t r0 = split_at(j->M, ith, nth, ROW_GRAIN), r1 = split_at(j->M, ith + 1, nth, ROW_GRAIN);
	if (r1 > r0)
		op_isa_gemv(j->wt, j->W, j->row_bytes, r0, r1, j->K, j->xq, j->y + r0);
}

/* ---- GEMM ---------------------------------------------------------------- */

typedef struct gemm_job {
	enum op_dtype wt;
	const void *W;
	size_t row_bytes;
	int64_t M, K, N;
	const float *X;
	float *Y;
	op_xpack xp;       /* quantized X, groups of OP_GEMM_NC rows */
	int64_t ngroups;   /* ceil(N / OP_GEMM_NC) */
	int64_t npanels;   /* ceil(M / OP_GEMM_PR) */
	int64_t nchunks;   /* the groups are cut in this many ranges */
	bool wmat;         /* W in the interleaved layout (op_wmat) */
} gemm_job;

/* Phase 1: quantize the rows of X into the grouped layout, whole groups per
 * thread (the columns of a group share cache lines). Blocks are quantized
 * QCHUNK at a time into a stack buffer (one call, so the CPU overlaps the
 * blocks' scalar divisions), then scattered as 4-byte groups. */
#define QCHUNK 16

static void gemm_quantize_run(void *arg, int ith, int nth)
{
	const gemm_job *j = arg;
	int64_t g0 = j->ngroups * ith / nth, g1 = j->ngroups * (ith + 1) / nth;
	int64_t nb = j->K / OP_QK;
	int32_t off = op_isa_gemm_offset(j->wt);
	int8_t q[QCHUNK * OP_QK];
	op_f16 dh[QCHUNK];
	int32_t sums[QCHUNK];
	for (int64_t gi = g0; gi < g1; gi++) {
		for (int jc = 0; jc < OP_GEMM_NC; jc++) {
			int64_t c = gi * OP_GEMM_NC + jc;
			for (int64_t b0 = 0; b0 < nb; b0 += QCHUNK) {
				int64_t n = nb - b0 < QCHUNK ? nb - b0 : QCHUNK;
				if (c < j->N) {
					op_isa_quantize_q8(j->X + c * j->K + b0 * OP_QK, n, q, dh, sums);
				} else { /* padding column: zero quants, scale and bias */
					memset(q, 0, sizeof q);
					memset(dh, 0, sizeof dh);
					memset(sums, 0, sizeof sums);
				}
				for (int64_t b = 0; b < n; b++) {
					uint8_t *rec = (uint8_t *)op_xblock(&j->xp, gi, b0 + b);
					for (int g = 0; g < 8; g++)
						memcpy(rec + (g * OP_GEMM_NC + jc) * 4, q + b * OP_QK + g * 4, 4);
					float d = op_f16_to_f32(dh[b]);
					int32_t bias = -off * sums[b];
					memcpy(rec + OP_XBLOCK_D + jc * 4, &d, 4);
					memcpy(rec + OP_XBLOCK_BIAS + jc * 4, &bias, 4);
				}
			}
		}
	}
}

/* Start loading the next panel's K chunk while this one is packed and used:
 * a chunk is 32 rows x 288-544 bytes, short streams that the hardware
 * prefetchers do not pick up, so without this the packing waits on memory
 * row by row (it is most of the time of a GEMM with few X rows). */
static void prefetch_panel(const gemm_job *j, int64_t p, int64_t b0, int64_t nb)
{
	int64_t r0 = p * OP_GEMM_PR;
#if OP_WMAT_ROWS > 1
	if (j->wmat) {
		size_t rec = op_wmat_rec_bytes(j->wt);
		int64_t nbk = j->K / OP_QK;
		for (int64_t G = r0 / OP_WMAT_ROWS; G < (r0 + OP_GEMM_PR) / OP_WMAT_ROWS &&
		                                    G * OP_WMAT_ROWS < j->M; G++) {
			const uint8_t *a = (const uint8_t *)j->W + (size_t)(G * nbk + b0) * rec;
			for (size_t off = 0; off < (size_t)nb * rec; off += 64)
				__builtin_prefetch(a + off);
		}
		return;
	}
#endif
	size_t blk = op_row_bytes(j->wt, OP_QK);
	for (int64_t r = r0; r < r0 + OP_GEMM_PR && r < j->M; r++) {
		const uint8_t *a = (const uint8_t *)j->W + (size_t)r * j->row_bytes + (size_t)b0 * blk;
		for (size_t off = 0; off < (size_t)nb * blk; off += 64)
			__builtin_prefetch(a + off);
	}
}

/* Phase 2: each thread takes a contiguous range of work items, an item being
 * (panel of W rows, range of column groups), panel-major so that consecutive
 * items reuse one packed panel. */
static void gemm_compute_run(void *arg, int ith, int nth)
{
	const gemm_job *j = arg;
	int64_t nitems = j->npanels * j->nchunks;
	int64_t i0 = nitems * ith / nth, i1 = nitems * (ith + 1) / nth;
	if (i0 >= i1)
		return;
	/* The packed panel lives on this thread's stack: a few KiB, hot in L1. */
	_Alignas(OP_ALIGN) uint8_t buf[OP_GEMM_PR * OP_GEMM_KB * (OP_QK + 8)];
	assert(sizeof buf >= op_isa_gemm_pack_bytes());
	int64_t nbk = j->K / OP_QK;
	for (int64_t b0 = 0; b0 < nbk; b0 += OP_GEMM_KB) {
		int64_t nb = nbk - b0 < OP_GEMM_KB ? nbk - b0 : OP_GEMM_KB;
		int64_t packed = -1;
		for (int64_t it = i0; it < i1; it++) {
			int64_t p = it / j->nchunks, ch = it % j->nchunks;
			int64_t r0 = p * OP_GEMM_PR;
			int nrows = (int)(j->M - r0 < OP_GEMM_PR ? j->M - r0 : OP_GEMM_PR);
			if (p != packed) {
				prefetch_panel(j, p + 1, b0, nb);
#if OP_WMAT_ROWS > 1
				if (j->wmat)
					op_isa_wmat_gemm_pack(j->wt, j->W, j->M, j->K, r0, b0, nb, buf);
				else
#endif
					op_isa_gemm_pack(j->wt, j->W, j->row_bytes, j->M, r0, b0, nb, buf);
				packed = p;
			}
			int64_t g0 = j->ngroups * ch / j->nchunks, g1 = j->ngroups * (ch + 1) / j->nchunks;
			op_isa_gemm_tile(buf, nb, &j->xp, b0, g0, g1, j->Y, j->M, r0, nrows, b0 > 0);
		}
	}
}

static void gemm_run(op_pool *pool, enum op_dtype wt, const void *W, size_t row_bytes, int64_t M,
                     int64_t K, const float *X, int64_t N, float *Y, void *xq, bool wmat);

void op_matmul(op_pool *pool, enum op_dtype wt, const void *W, int64_t M, int64_t K,
               const float *X, int64_t N, float *Y, void *scratch)
{
	assert(M >= 0 && K >= 0 && N >= 0);
	if (M == 0 || N == 0)
		return;
	size_t row_bytes = op_row_bytes(wt, K);
	if (!is_quant(wt)) {
		fjob j = {wt, W, row_bytes, M, K, N, X, Y};
		op_pool_run(pool, fjob_run, &j);
		return;
	}
	assert(K % OP_QK == 0 && scratch != NULL);
	void *xq = op_align_ptr(scratch);
	if (K == 0) {
		memset(Y, 0, (size_t)(M * N) * sizeof(float));
		return;
	}
	if (N < GEMM_MIN_N) {
		/* Quantizing one row takes a couple of microseconds: cheaper on the
		 * caller than a second pool round trip. */
		for (int64_t n = 0; n < N; n++) {
			op_isa_gemv_prepare(wt, X + n * K, K, xq);
			gemv_job j = {wt, W, row_bytes, M, K, xq, Y + n * M};
			op_pool_run(pool, gemv_run, &j);
		}
		return;
	}
	gemm_run(pool, wt, W, row_bytes, M, K, X, N, Y, xq, false);
}

static void gemm_run(op_pool *pool, enum op_dtype wt, const void *W, size_t row_bytes, int64_t M,
                     int64_t K, const float *X, int64_t N, float *Y, void *xq, bool wmat)
{
	gemm_job j = {wt, W, row_bytes, M, K, N, X, Y, {wt, xq, op_xgroup_bytes(K), N}, 0, 0, 1, wmat};
	j.ngroups = (N + OP_GEMM_NC - 1) / OP_GEMM_NC;
	j.npanels = (M + OP_GEMM_PR - 1) / OP_GEMM_PR;
	/* Enough items for every thread (two each, so uneven panels even out),
	 * but ranges of at least 16 X rows so a packed panel is reused enough. */
	int nth = op_pool_size(pool);
	while (j.npanels * j.nchunks < 2 * nth && j.ngroups * OP_GEMM_NC / (j.nchunks * 2) >= 16)
		j.nchunks *= 2;
	op_pool_run(pool, gemm_quantize_run, &j);
	op_pool_run(pool, gemm_compute_run, &j);
}

/* ---- weight matrices in the runtime layout ------------------------------- */

int op_wmat_group_rows(enum op_dtype wt)
{
	return is_quant(wt) ? OP_WMAT_ROWS : 1;
}

size_t op_wmat_bytes(enum op_dtype wt, int64_t M, int64_t K)
{
	int64_t g = op_wmat_group_rows(wt);
	return (size_t)((M + g - 1) / g * g) * op_row_bytes(wt, K);
}

void op_wmat_pack(enum op_dtype wt, const void *rows, int64_t r0, int64_t n, int64_t M, int64_t K,
                  void *P)
{
	size_t rb = op_row_bytes(wt, K);
	int64_t gr = op_wmat_group_rows(wt);
	if (n == 0)
		return;
	assert(r0 % gr == 0 && r0 + n <= M && (n % gr == 0 || r0 + n == M));
	if (gr == 1) {
		memcpy((uint8_t *)P + (size_t)r0 * rb, rows, (size_t)n * rb);
		return;
	}
#if OP_WMAT_ROWS > 1
	int64_t nb = K / OP_QK;
	size_t rec = op_wmat_rec_bytes(wt);
	for (int64_t G = r0 / gr; G * gr < r0 + n; G++) {
		for (int64_t b = 0; b < nb; b++) {
			uint8_t *o = (uint8_t *)P + (size_t)(G * nb + b) * rec;
			memset(o, 0, rec);
			for (int i = 0; i < OP_WMAT_ROWS; i++) {
				int64_t r = G * gr + i;
				if (r >= r0 + n)
					break;
				const uint8_t *row = (const uint8_t *)rows + (size_t)(r - r0) * rb;
				if (wt == OP_Q4_0) {
					const op_block_q4_0 *blk = (const op_block_q4_0 *)row + b;
					memcpy(o + 2 * i, &blk->d, 2);
					for (int j = 0; j < 4; j++)
						memcpy(o + OP_WMAT_SCALES + OP_WMAT_VEC * j + 4 * i, blk->qs + 4 * j, 4);
				} else {
					const op_block_q8_0 *blk = (const op_block_q8_0 *)row + b;
					memcpy(o + 2 * i, &blk->d, 2);
					for (int g = 0; g < 8; g++)
						for (int k = 0; k < 4; k++)
							o[OP_WMAT_SCALES + OP_WMAT_VEC * g + 4 * i + k] =
								(uint8_t)(blk->qs[4 * g + k] + OP_WMAT_Q8_OFF);
				}
			}
		}
	}
#endif
}

void op_wmat_row(enum op_dtype wt, const void *P, int64_t M, int64_t K, int64_t r, float *x)
{
	assert(r >= 0 && r < M);
	(void)M;
	int64_t gr = op_wmat_group_rows(wt);
	if (gr == 1) {
		op_dequantize_row(wt, (const uint8_t *)P + (size_t)r * op_row_bytes(wt, K), x, K);
		return;
	}
#if OP_WMAT_ROWS > 1
	int64_t nb = K / OP_QK, G = r / gr;
	int i = (int)(r % gr);
	size_t rec = op_wmat_rec_bytes(wt);
	for (int64_t b = 0; b < nb; b++) {
		const uint8_t *o = (const uint8_t *)P + (size_t)(G * nb + b) * rec;
		op_f16 dh;
		memcpy(&dh, o + 2 * i, 2);
		float d = op_f16_to_f32(dh);
		float *xb = x + b * OP_QK;
		if (wt == OP_Q4_0) {
			for (int j = 0; j < 4; j++)
				for (int k = 0; k < 4; k++) {
					uint8_t v = o[OP_WMAT_SCALES + OP_WMAT_VEC * j + 4 * i + k];
					xb[4 * j + k] = d * (float)((v & 0x0f) - 8);
					xb[16 + 4 * j + k] = d * (float)((v >> 4) - 8);
				}
		} else {
			for (int g = 0; g < 8; g++)
				for (int k = 0; k < 4; k++)
					xb[4 * g + k] =
						d * (float)op_wmat_q8(o[OP_WMAT_SCALES + OP_WMAT_VEC * g + 4 * i + k]);
		}
	}
#endif
}

void op_wmat_unpack_row(enum op_dtype wt, const void *P, int64_t M, int64_t K, int64_t r,
                        void *row)
{
	assert(r >= 0 && r < M);
	(void)M;
	size_t rb = op_row_bytes(wt, K);
	int64_t gr = op_wmat_group_rows(wt);
	if (gr == 1) {
		memcpy(row, (const uint8_t *)P + (size_t)r * rb, rb);
		return;
	}
#if OP_WMAT_ROWS > 1
	int64_t nb = K / OP_QK, G = r / gr;
	int i = (int)(r % gr);
	size_t rec = op_wmat_rec_bytes(wt);
	for (int64_t b = 0; b < nb; b++) {
		const uint8_t *o = (const uint8_t *)P + (size_t)(G * nb + b) * rec;
		if (wt == OP_Q4_0) {
			op_block_q4_0 *blk = (op_block_q4_0 *)row + b;
			memcpy(&blk->d, o + 2 * i, 2);
			for (int j = 0; j < 4; j++)
				memcpy(blk->qs + 4 * j, o + OP_WMAT_SCALES + OP_WMAT_VEC * j + 4 * i, 4);
		} else {
			op_block_q8_0 *blk = (op_block_q8_0 *)row + b;
			memcpy(&blk->d, o + 2 * i, 2);
			for (int g = 0; g < 8; g++)
				for (int k = 0; k < 4; k++)
					blk->qs[4 * g + k] =
						op_wmat_q8(o[OP_WMAT_SCALES + OP_WMAT_VEC * g + 4 * i + k]);
		}
	}
#endif
}

#if OP_WMAT_ROWS > 1
size_t op_wmat_xbytes(int64_t K)
{
	int64_t nb = K / OP_QK;
	return op_pad((size_t)K, OP_ALIGN) + op_pad((size_t)nb * 4, OP_ALIGN) + (size_t)nb * 4;
}

void op_wmat_prepare(enum op_dtype wt, const float *x, int64_t K, void *xq)
{
	int64_t nb = K / OP_QK;
	int8_t *qs = xq;
	float *d = (float *)op_wmat_xd(xq, K);
	int32_t *bias = (int32_t *)op_wmat_xbias(xq, K);
	int32_t off = wt == OP_Q4_0 ? 8 : OP_WMAT_Q8_OFF;
	op_f16 dh[8];
	int32_t sum[8];
	for (int64_t b0 = 0; b0 < nb; b0 += 8) {
		int64_t n = nb - b0 < 8 ? nb - b0 : 8;
		op_isa_quantize_q8(x + b0 * OP_QK, n, qs + b0 * OP_QK, dh, sum);
		for (int64_t b = 0; b < n; b++) {
			d[b0 + b] = op_f16_to_f32(dh[b]);
			bias[b0 + b] = -off * sum[b];
		}
	}
}

typedef struct wgemv_job {
	enum op_dtype wt;
	const void *P;
	int64_t M, K;
	const void *xq;
	float *y;
} wgemv_job;

static void wgemv_run(void *arg, int ith, int nth)
{
	const wgemv_job *j = arg;
	int64_t ng = (j->M + OP_WMAT_ROWS - 1) / OP_WMAT_ROWS;
	int64_t G0 = ng * ith / nth, G1 = ng * (ith + 1) / nth;
	if (G1 > G0)
		op_isa_wmat_gemv(j->wt, j->P, j->K, G0, G1, j->M, j->xq, j->y + G0 * OP_WMAT_ROWS);
}
#endif

void op_wmat_matmul(op_pool *pool, enum op_dtype wt, const void *P, int64_t M, int64_t K,
                    const float *X, int64_t N, float *Y, void *scratch)
{
	if (op_wmat_group_rows(wt) == 1 || M == 0 || N == 0 || K == 0) {
		op_matmul(pool, wt, P, M, K, X, N, Y, scratch);
		return;
	}
#if OP_WMAT_ROWS > 1
	assert(K % OP_QK == 0 && scratch != NULL);
	void *xq = op_align_ptr(scratch);
	if (N < GEMM_MIN_N) {
		for (int64_t n = 0; n < N; n++) {
			op_wmat_prepare(wt, X + n * K, K, xq);
			wgemv_job j = {wt, P, M, K, xq, Y + n * M};
			op_pool_run(pool, wgemv_run, &j);
		}
		return;
	}
	gemm_run(pool, wt, P, op_row_bytes(wt, K), M, K, X, N, Y, xq, true);
#endif
}

/* ---- reference ----------------------------------------------------------- */

int op_matmul_ref(enum op_dtype wt, const void *W, int64_t M, int64_t K, const float *X,
                  int64_t N, float *Y, tl_err *err)
{
	int rc = 0;
	size_t row_bytes = op_row_bytes(wt, K);
	float *wrow = malloc((size_t)(K > 0 ? K : 1) * sizeof(float));
	float *xhat = malloc((size_t)(N * K > 0 ? N * K : 1) * sizeof(float));
	void *q = malloc(op_row_bytes(OP_Q8_0, K) + 1);
	if (!wrow || !xhat || !q) {
		rc = tl_err_set(err, TL_ENOMEM, "matmul reference: %lld x %lld: out of memory",
		                (long long)N, (long long)K);
		goto free_bufs;
	}
	for (int64_t n = 0; n < N; n++) {
		if (is_quant(wt)) {
			op_quantize_row_ref(OP_Q8_0, X + n * K, q, K);
			op_dequantize_row(OP_Q8_0, q, xhat + n * K, K);
		} else {
			memcpy(xhat + n * K, X + n * K, (size_t)K * sizeof(float));
		}
	}
	for (int64_t m = 0; m < M; m++) {
		op_dequantize_row(wt, (const uint8_t *)W + (size_t)m * row_bytes, wrow, K);
		for (int64_t n = 0; n < N; n++) {
			double s = 0.0;
			for (int64_t k = 0; k < K; k++)
				s += (double)wrow[k] * (double)xhat[n * K + k];
			Y[n * M + m] = (float)s;
		}
	}
free_bufs:
	free(q);
	free(xhat);
	free(wrow);
	return rc;
}

/* ---- generic kernels (scalar build; GEMM of the plain-NEON build) ---------- */

#if !defined(OP_HAVE_ISA_GEMM)
/* Unpack block b of a weight row into 32 signed quants (q - 8 for q4_0). */
static inline float unpack_block(enum op_dtype wt, const uint8_t *row, int64_t b, int8_t *q)
{
	if (wt == OP_Q8_0) {
		const op_block_q8_0 *blk = (const op_block_q8_0 *)row + b;
		memcpy(q, blk->qs, OP_QK);
		return op_f16_to_f32(blk->d);
	}
	const op_block_q4_0 *blk = (const op_block_q4_0 *)row + b;
	for (int i = 0; i < OP_QK / 2; i++) {
		q[i] = (int8_t)((blk->qs[i] & 0x0f) - 8);
		q[i + 16] = (int8_t)((blk->qs[i] >> 4) - 8);
	}
	return op_f16_to_f32(blk->d);
}

static inline int32_t dot32_i8(const int8_t *a, const int8_t *b)
{
#if defined(OP_ISA_NEON)
	int8x16_t a0 = vld1q_s8(a), a1 = vld1q_s8(a + 16);
	int8x16_t b0 = vld1q_s8(b), b1 = vld1q_s8(b + 16);
	int32x4_t acc = vdupq_n_s32(0);
	acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(a0), vget_low_s8(b0)));
	acc = vpadalq_s16(acc, vmull_high_s8(a0, b0));
	acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(a1), vget_low_s8(b1)));
	acc = vpadalq_s16(acc, vmull_high_s8(a1, b1));
	return vaddvq_s32(acc);
#else
	int32_t s = 0;
	for (int i = 0; i < OP_QK; i++)
		s += (int32_t)a[i] * (int32_t)b[i];
	return s;
#endif
}
#endif

#if !defined(OP_HAVE_ISA_GEMM)
/* Packed panel: for each block, OP_GEMM_PR rows of 32 signed quants, then
 * their OP_GEMM_PR float scales (0 for rows past M, which kills them). */
#define GEN_BLOCK_BYTES (OP_GEMM_PR * (OP_QK + 4))

int op_isa_gemm_offset(enum op_dtype wt) { return 0; }
size_t op_isa_gemm_pack_bytes(void) { return (size_t)OP_GEMM_KB * GEN_BLOCK_BYTES; }

void op_isa_gemm_pack(enum op_dtype wt, const void *W, size_t row_bytes, int64_t M, int64_t r0,
                      int64_t b0, int64_t nb, void *buf)
{
	uint8_t *out = buf;
	for (int64_t b = 0; b < nb; b++) {
		int8_t *q = (int8_t *)(out + b * GEN_BLOCK_BYTES);
		float *d = (float *)(out + b * GEN_BLOCK_BYTES + OP_GEMM_PR * OP_QK);
		for (int r = 0; r < OP_GEMM_PR; r++) {
			if (r0 + r < M) {
				d[r] = unpack_block(wt, (const uint8_t *)W + (size_t)(r0 + r) * row_bytes,
				                    b0 + b, q + r * OP_QK);
			} else {
				memset(q + r * OP_QK, 0, OP_QK);
				d[r] = 0.0f;
			}
		}
	}
}

void op_isa_gemm_tile(const void *buf, int64_t nb, const op_xpack *x, int64_t b0, int64_t g0,
                      int64_t g1, float *Y, int64_t ldy, int64_t r0, int nrows, bool accumulate)
{
	const uint8_t *in = buf;
	for (int64_t gi = g0; gi < g1; gi++) {
		for (int jc = 0; jc < OP_GEMM_NC && gi * OP_GEMM_NC + jc < x->N; jc++) {
			int64_t c = gi * OP_GEMM_NC + jc;
			for (int r = 0; r < nrows; r++) {
				float acc = accumulate ? Y[c * ldy + r0 + r] : 0.0f;
				for (int64_t b = 0; b < nb; b++) {
					const uint8_t *rec = op_xblock(x, gi, b0 + b);
					int8_t xq[OP_QK];
					float xd;
					for (int g = 0; g < 8; g++)
						memcpy(xq + g * 4, rec + (g * OP_GEMM_NC + jc) * 4, 4);
					memcpy(&xd, rec + OP_XBLOCK_D + jc * 4, 4);
					const int8_t *q = (const int8_t *)(in + b * GEN_BLOCK_BYTES) + r * OP_QK;
					const float *d = (const float *)(in + b * GEN_BLOCK_BYTES + OP_GEMM_PR * OP_QK);
					acc += (float)dot32_i8(q, xq) * (d[r] * xd);
				}
				Y[c * ldy + r0 + r] = acc;
			}
		}
	}
}
#endif

#if defined(OP_ISA_SCALAR)
/* GEMV activation: qs[K] then d[nb] floats. */
size_t op_isa_gemv_xbytes(enum op_dtype wt, int64_t K)
{
	return op_pad((size_t)K, OP_ALIGN) + (size_t)(K / OP_QK) * sizeof(float);
}

void op_isa_gemv_prepare(enum op_dtype wt, const float *x, int64_t K, void *xq)
{
	int8_t *qs = xq;
	float *d = (float *)((uint8_t *)xq + op_pad((size_t)K, OP_ALIGN));
	for (int64_t b = 0; b < K / OP_QK; b++) {
		op_f16 dh;
		op_isa_quantize_q8(x + b * OP_QK, 1, qs + b * OP_QK, &dh, NULL);
		d[b] = op_f16_to_f32(dh);
	}
}

void op_isa_gemv(enum op_dtype wt, const void *W, size_t row_bytes, int64_t r0, int64_t r1,
                 int64_t K, const void *xq, float *y)
{
	const int8_t *qs = xq;
	const float *d = (const float *)((const uint8_t *)xq + op_pad((size_t)K, OP_ALIGN));
	int8_t q[OP_QK];
	for (int64_t r = r0; r < r1; r++) {
		const uint8_t *row = (const uint8_t *)W + (size_t)r * row_bytes;
		float acc = 0.0f;
		for (int64_t b = 0; b < K / OP_QK; b++) {
			float dw = unpack_block(wt, row, b, q);
			acc += (float)dot32_i8(q, qs + b * OP_QK) * (dw * d[b]);
		}
		y[r - r0] = acc;
	}
}
#endif
