/*
 * operators/op_kernels.h: the numeric core of the inference runtime (prefix op_).
 *
 * Every matrix product of the on-device build goes through this layer:
 *  - op_f16 and its conversions (F16C / ARM fcvt when compiled in, scalar otherwise);
 *  - block-quantized rows in exactly ggml's formats (q8_0, q4_0), so a figure
 *    measured here compares with llama.cpp on the same model;
 *  - dot products of one weight row with one activation row, with a scalar
 *    reference (the specification) and SIMD paths chosen at compile time;
 *  - a small thread pool (the caller is thread 0, workers spin briefly then sleep);
 *  - op_matmul: Y = X · W^T, a GEMV for decode (N == 1, memory bound) and a
 *    tiled int8 GEMM for prefill (N > 1, compute bound);
 *  - probes of the machine (streaming bandwidth, FMA and int8-dot peaks) for
 *    `tailor bench --bandwidth`.
 *
 * The SIMD path is fixed when this code is compiled (see op_kernels_isa()):
 * a build for a device uses that device's toolchain and flags (-march=native on
 * a laptop, -march=armv8.2-a+dotprod for a phone). There is no run-time
 * dispatch, so a binary must only run on the CPU it was compiled for.
 *
 * Ownership: every buffer is owned by the caller; nothing here keeps a pointer
 * after a call returns, except op_pool, which owns its threads until
 * op_pool_free. Functions that can fail return 0 or a negative TL_E* code and
 * take a caller-owned tl_err * last; the kernels themselves cannot fail (their
 * preconditions are documented and checked with assert in debug builds).
 *
 * Usage (decode step: one activation row through a q4_0 layer, 2 threads):
 *
 *     op_pool *pool = NULL;
 *     tl_err err = TL_ERR_INIT;
 *     if (op_pool_create(&pool, 2, &err) < 0) ...;
 *     // W: M rows of K weights, quantized once
 *     void *W = malloc(M * op_row_bytes(OP_Q4_0, K));
 *     for (int64_t m = 0; m < M; m++)
 *         op_quantize_row(OP_Q4_0, w_f32 + m * K,
 *                         (char *)W + m * op_row_bytes(OP_Q4_0, K), K);
 *     void *scratch = malloc(op_matmul_scratch_bytes(OP_Q4_0, K, 1));
 *     op_matmul(pool, OP_Q4_0, W, M, K, x, 1, y, scratch);   // y[M] = W x
 *     op_pool_free(pool);
 */
#ifndef OP_KERNELS_H
#define OP_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "tl.h"

/* ---- half precision ------------------------------------------------------ */

/* IEEE 754 binary16, stored as its bit pattern. */
typedef uint16_t op_f16;

/* Conversions with round-to-nearest-even, infinities, NaNs (quieted, upper
 * payload bits kept) and subnormals handled exactly as F16C's vcvtps2ph /
 * vcvtph2ps and ARM's fcvt do. Finite floats of magnitude >= 65520 become
 * infinities. The _ref versions are the portable bit-manipulation
 * implementations; the plain names use the hardware instruction when the
 * build has one. Both are tested exhaustively against each other. */
float op_f16_to_f32(op_f16 h);
op_f16 op_f32_to_f16(float f);
float op_f16_to_f32_ref(op_f16 h);
op_f16 op_f32_to_f16_ref(float f);

/* ---- quantized blocks (exactly ggml's layouts, ggml-common.h) ------------- */

#define OP_QK 32 /* weights per quant block, both formats */

/* q8_0: 32 weights, x = d * q. 34 bytes per 32 weights = 8.5 bits per weight.
 * The quantizers here never produce q = -128 (|q| <= 127); the SIMD dot
 * products rely on that (sign trick), as ggml's do. */
typedef struct op_block_q8_0 {
	op_f16 d;           /* scale */
	int8_t qs[OP_QK];   /* quants, element i is qs[i] */
} op_block_q8_0;
_Static_assert(sizeof(op_block_q8_0) == sizeof(op_f16) + OP_QK, "q8_0 block is 34 bytes");

/* q4_0: 32 weights, x = d * (q - 8) with q in 0..15. 18 bytes per 32 weights =
 * 4.5 bits per weight. Low nibble of qs[i] is element i, high nibble element
 * i + 16. */
typedef struct op_block_q4_0 {
	op_f16 d;               /* scale */
	uint8_t qs[OP_QK / 2];  /* nibbles */
} op_block_q4_0;
_Static_assert(sizeof(op_block_q4_0) == sizeof(op_f16) + OP_QK / 2, "q4_0 block is 18 bytes");

/* Element type of a weight row. Rows of OP_Q8_0 / OP_Q4_0 have a length that
 * is a multiple of OP_QK. */
enum op_dtype { OP_F32 = 0, OP_F16 = 1, OP_Q8_0 = 2, OP_Q4_0 = 3 };

/* "f32", "f16", "q8_0", "q4_0" (NULL for an unknown value). */
const char *op_dtype_name(enum op_dtype t);
/* Bytes of a row of n elements (n a multiple of OP_QK for the quant types). */
size_t op_row_bytes(enum op_dtype t, int64_t n);

/* Quantize n floats into a row of dtype t (for OP_F32 a copy, for OP_F16 a
 * conversion). The reference quantization, per block of 32:
 *   q8_0: d = f16(amax / 127), q = clamp(rne(x / d), -127, 127)
 *   q4_0: m = the element of largest magnitude (first on ties, sign kept),
 *         d = f16(m / -8), q = clamp((int)(x / d + 8.5), 0, 15)
 * (x / d is computed as x * (1/d) in float, rne is round-half-to-even in the
 * default floating-point environment.) Unlike ggml, q is computed from the
 * f16-rounded scale that is stored, so |x - x^| <= |d|/2 holds against the
 * stored d (q4_0: except the elements ggml also clamps at q = 15, whose error
 * is up to |d|). The scale is clamped to the largest finite half (65504), so
 * rows with |x| > 8.3e6 (q8_0) or 5.2e5 (q4_0) saturate instead of producing
 * infinities; NaN inputs give unspecified quants. The SIMD versions produce
 * bit-identical rows. */
void op_quantize_row(enum op_dtype t, const float *x, void *row, int64_t n);
void op_quantize_row_ref(enum op_dtype t, const float *x, void *row, int64_t n);
/* The inverse: x^ = d * q (q8_0), d * (q - 8) (q4_0), exact conversions. */
void op_dequantize_row(enum op_dtype t, const void *row, float *x, int64_t n);

/* ---- dot products -------------------------------------------------------- */

/* Dot product of a weight row w (dtype wt, n elements) with an activation row
 * x: for OP_Q8_0 and OP_Q4_0 x is a q8_0 row (op_quantize_row(OP_Q8_0, ...)),
 * and the result is sum over blocks of d_w * d_x * (integer block sum); for
 * OP_F32 and OP_F16, x is n floats. n is a multiple of OP_QK for the quant
 * types and any n >= 0 for the others.
 *
 * op_vec_dot_ref is the specification: exact integer block sums, each scaled
 * in float as (float)isum * (d_w * d_x), accumulated in double; float rows
 * accumulate w*x in double. op_vec_dot is the compiled SIMD path; its integer
 * block sums are exact, and it differs from the reference only by float
 * rounding of the accumulation: |dot - ref| <= (n/32 + 2) * 2^-23 * S for
 * the quant types, (n + 2) * 2^-24 * S for float rows, S = sum |w_i x_i| of
 * the dequantized rows. */
float op_vec_dot(enum op_dtype wt, const void *w, const void *x, int64_t n);
float op_vec_dot_ref(enum op_dtype wt, const void *w, const void *x, int64_t n);

/* The compiled kernel path: "avx512-vnni", "avx2-vnni" (AVX2 with AVX-VNNI),
 * "avx2", "neon-dotprod", "neon" or "scalar". */
const char *op_kernels_isa(void);

/* ---- thread pool --------------------------------------------------------- */

typedef struct op_pool op_pool;

/* A job runs on every thread of the pool: fn(arg, ith, nth), ith in [0, nth).
 * Threads split the work by ith/nth themselves (e.g. rows ith*M/nth ..). */
typedef void (*op_pool_fn)(void *arg, int ith, int nth);

/* Create a pool of nthreads (1..OP_POOL_MAX_THREADS) threads: nthreads - 1
 * workers plus the thread that calls op_pool_run. *out is owned by the caller
 * and freed with op_pool_free. */
#define OP_POOL_MAX_THREADS 256
int op_pool_create(op_pool **out, int nthreads, tl_err *err);
/* Stop and join the workers. Accepts NULL. */
void op_pool_free(op_pool *pool);
/* Number of threads (1 for a NULL pool). */
int op_pool_size(const op_pool *pool);
/* Run fn on all threads (the caller is thread 0) and return when every
 * thread has returned from fn; everything the threads wrote is then visible
 * to the caller. Workers spin for OP_POOL_SPIN_NS after a job before they
 * sleep on a condition variable, so back-to-back calls (a decode step issues
 * 100-200) cost well under a few microseconds each (bench_kernels measures
 * it). A NULL pool runs fn(arg, 0, 1). Not reentrant: one caller at a time,
 * and fn must not call op_pool_run on the same pool. */
void op_pool_run(op_pool *pool, op_pool_fn fn, void *arg);
/* Pin thread i of the pool (0 = the calling thread, which is pinned at once)
 * to CPU cpus[i % n] with sched_setaffinity. Returns TL_EINVAL where the
 * system has no affinity call, TL_EIO when the kernel refuses. */
int op_pool_pin(op_pool *pool, const int *cpus, int n, tl_err *err);

/* ---- matrix products ----------------------------------------------------- */

/* Y[N][M] = X[N][K] · W[M][K]^T.
 *  W: M rows of K elements of dtype wt, row-major, rows op_row_bytes(wt, K)
 *     apart (K a multiple of OP_QK for the quant types);
 *  X: N rows of K floats; Y: N rows of M floats (overwritten).
 *  For the quant types each row of X is quantized to q8_0 on the fly (the
 *  reference quantizer, bit for bit) and the products are integer dot
 *  products scaled per block, as op_vec_dot computes them; every Y element
 *  is within the op_vec_dot bound of the exact product of the dequantized
 *  operands, and the result does not depend on the number of threads (bit
 *  for bit).
 *  scratch: op_matmul_scratch_bytes(wt, K, N) bytes owned by the caller (any
 *  alignment; may be NULL when that size is 0); it holds the quantized X.
 *  pool: may be NULL (single thread). X, Y, W and scratch must not overlap.
 * N == 1 (decode) is a GEMV that splits W's rows among the threads and streams
 * W once (so does N == 2, one GEMV per row); N >= 3 (prefill) packs panels of
 * W into an L1-sized buffer and runs a register-tiled int8 GEMM over all the
 * rows of X. f32 / f16 weights use float dot products (correct, not tuned). */
void op_matmul(op_pool *pool, enum op_dtype wt, const void *W, int64_t M, int64_t K,
               const float *X, int64_t N, float *Y, void *scratch);
size_t op_matmul_scratch_bytes(enum op_dtype wt, int64_t K, int64_t N);

/* Reference: each X row is quantized with op_quantize_row_ref(OP_Q8_0) for
 * the quant types, both operands are dequantized, and every product is
 * accumulated in double. Single-threaded; allocates two rows of K floats
 * (returns TL_ENOMEM if that fails). */
int op_matmul_ref(enum op_dtype wt, const void *W, int64_t M, int64_t K,
                  const float *X, int64_t N, float *Y, tl_err *err);

/* ---- weight matrices in the runtime layout (op_wmat) --------------------- */

/* A model's quantized matrices are stored once, at load, in the layout the
 * build's kernels read fastest; op_wmat_matmul then does what op_matmul does
 * on plain rows, within the same bound, thread-count independent.
 *
 * The layout: on AVX-512 and AVX2 builds, q8_0 and q4_0 rows are interleaved
 * in groups of R rows, one vector of the dot instruction per group (R = 16
 * with zmm, 8 with ymm; the last group padded with zero rows): for each
 * group, for each block of 32 columns, one record of the R rows' f16 scales
 * followed by their quants arranged as R rows x 4 bytes per 4R-byte vector
 * (q4_0: vector j holds each row's bytes qs[4j..4j+3], whose low nibbles are
 * elements 4j.. and high nibbles 16 + 4j..; q8_0: vector g holds elements
 * 4g..4g+3 of each row, as unsigned bytes q + 128 where the build has
 * vpdpbusd, as signed q on plain AVX2). The bytes per weight are ggml's (18 /
 * 34 per block of a row); a GEMV reads them as one stream and multiplies R
 * rows per instruction, and the prefill GEMM's packing is a nibble split.
 * Every other dtype, and every other build (NEON, scalar), keeps plain rows
 * (op_wmat_group_rows() == 1), and op_wmat_matmul is op_matmul.
 *
 * op_wmat_pack takes n consecutive plain rows (row_bytes apart) that are rows
 * r0 .. r0 + n - 1 of an M-row matrix and writes them into P; r0 is a
 * multiple of op_wmat_group_rows(), and n is too unless r0 + n == M. Groups
 * can be packed by different threads. */
int op_wmat_group_rows(enum op_dtype wt);
size_t op_wmat_bytes(enum op_dtype wt, int64_t M, int64_t K);
void op_wmat_pack(enum op_dtype wt, const void *rows, int64_t r0, int64_t n, int64_t M, int64_t K,
                  void *P);
/* Row r of the matrix, dequantized (exactly op_dequantize_row of the plain row). */
void op_wmat_row(enum op_dtype wt, const void *P, int64_t M, int64_t K, int64_t r, float *x);
/* Row r as the plain row it was packed from (op_row_bytes(wt, K) bytes). */
void op_wmat_unpack_row(enum op_dtype wt, const void *P, int64_t M, int64_t K, int64_t r,
                        void *row);
/* Y[N][M] = X[N][K] · W^T for W in the runtime layout; scratch of
 * op_matmul_scratch_bytes(wt, K, N). The contract of op_matmul. */
void op_wmat_matmul(op_pool *pool, enum op_dtype wt, const void *P, int64_t M, int64_t K,
                    const float *X, int64_t N, float *Y, void *scratch);

/* ---- probes (tailor bench --bandwidth) ----------------------------------- */

/* Streaming bandwidth over a buffer of `bytes` (allocated here, first touched
 * by the thread that reads it; choose it much larger than the last-level
 * cache, see op_probe_llc_bytes): every pool thread takes a contiguous slice.
 *  read_gbs: bytes loaded per second (1e9 B/s) by a vector-load loop that
 *            sums the slice (no stores);
 *  copy_gbs: memcpy of the first half of the buffer into the second half,
 *            counted as STREAM counts Copy: bytes read + bytes written.
 * Each figure is the best of `passes` timed passes (after one untimed warm-up
 * pass), timed from before op_pool_run to after it returns. */
int op_probe_bandwidth(op_pool *pool, size_t bytes, int passes, double *read_gbs,
                       double *copy_gbs, tl_err *err);
/* Last-level cache size from sysconf, 0 when the system does not say. */
size_t op_probe_llc_bytes(void);
/* Peak float FMA rate: every thread runs independent chains of vector FMAs
 * (the widest FMA the build has; scalar fmaf otherwise) on registers, no
 * memory traffic. gflops counts an FMA as 2 flops. Best of 3 runs. */
void op_probe_peak_fma(op_pool *pool, double *gflops);
/* Peak int8 dot rate of the compiled integer dot path (the instruction
 * sequence the GEMM uses: vpdpbusd zmm, vpdpbusd ymm (AVX-VNNI),
 * vpmaddubsw + vpmaddwd + vpaddd ymm, sdot, smull + sadalp, or scalar),
 * every thread on registers. gops counts int8 multiply-adds (one multiply
 * and one add = 1 op) per second, 1e9/s. Best of 3 runs. */
void op_probe_peak_dot(op_pool *pool, double *gops);

#endif /* OP_KERNELS_H */
