/*
 * operators/op_kernels_int.h: private interface between the kernel layer's
 * files (quant.c, matmul.c, dot_x86.c, dot_neon.c, probe.c). Not installed,
 * not for the other operator files: they use op_kernels.h.
 *
 * Exactly one OP_ISA_* macro is defined, from the compiler's target macros,
 * and exactly one file provides the op_isa_* functions for it: dot_x86.c for
 * AVX512 / AVX2, dot_neon.c for the two NEON paths, quant.c and matmul.c
 * (scalar sections) otherwise.
 */
#ifndef OP_KERNELS_INT_H
#define OP_KERNELS_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "op_kernels.h"

#if defined(__AVX512F__) && defined(__AVX512VNNI__) && defined(__AVX512BW__) && \
	defined(__AVX512VL__)
#define OP_ISA_AVX512 1
#define OP_ISA_NAME "avx512-vnni"
#elif defined(__AVX2__) && defined(__FMA__) && defined(__F16C__) && defined(__AVXVNNI__)
/* AVX2 with the VEX-encoded vpdpbusd (Alder Lake and later laptops) */
#define OP_ISA_AVX2 1
#define OP_ISA_AVX2_VNNI 1
#define OP_ISA_NAME "avx2-vnni"
#elif defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
/* (every AVX2 CPU has F16C; a build without -mf16c takes the scalar path) */
#define OP_ISA_AVX2 1
#define OP_ISA_NAME "avx2"
#elif defined(__ARM_NEON) && defined(__aarch64__) && defined(__ARM_FEATURE_DOTPROD)
#define OP_ISA_NEON_DOT 1
#define OP_ISA_NEON_ANY 1
#define OP_ISA_NAME "neon-dotprod"
#elif defined(__ARM_NEON) && defined(__aarch64__)
#define OP_ISA_NEON 1
#define OP_ISA_NEON_ANY 1
#define OP_ISA_NAME "neon"
#else
#define OP_ISA_SCALAR 1
#define OP_ISA_NAME "scalar"
#endif

/* Complete unrolling of the small constant loops over accumulator arrays:
 * without it gcc -O2 keeps such arrays on the stack and the kernels run at
 * store-forwarding speed. */
#define OP_UNROLL _Pragma("GCC unroll 16")

/* How far ahead the GEMV prefetches its weight stream (see dot_x86.c). */
#ifndef OP_PREFETCH_BYTES
#define OP_PREFETCH_BYTES 8192
#endif

#define OP_ALIGN 64 /* alignment of every internal buffer: a cache line, a zmm */

static inline size_t op_pad(size_t n, size_t a) { return (n + a - 1) / a * a; }

static inline void *op_align_ptr(void *p)
{
	uintptr_t u = (uintptr_t)p;
	return (void *)((u + OP_ALIGN - 1) & ~(uintptr_t)(OP_ALIGN - 1));
}

/* ---- per-ISA primitives (one definition per build) ------------------------ */

/* Quantize nb blocks of 32 floats with the q8_0 reference semantics
 * (op_quantize_row_ref), bit for bit: quants to qs[32*nb], f16 scales to d[nb],
 * and when sums is not NULL the sum of each block's quants to sums[nb]. */
void op_isa_quantize_q8(const float *x, int64_t nb, int8_t *qs, op_f16 *d, int32_t *sums);

float op_isa_dot_f32(const float *w, const float *x, int64_t n);
float op_isa_dot_f16(const op_f16 *w, const float *x, int64_t n);
float op_isa_dot_q8_0(const op_block_q8_0 *w, const op_block_q8_0 *x, int64_t nb);
float op_isa_dot_q4_0(const op_block_q4_0 *w, const op_block_q8_0 *x, int64_t nb);

/* ---- GEMV (N == 1), quant weights ----------------------------------------- */

/* The activation row is prepared once per call in an ISA-specific layout
 * (quantized to q8_0, then arranged for the kernel) of op_isa_gemv_xbytes
 * bytes at an OP_ALIGN-aligned address; op_isa_gemv then computes
 * y[r - r0] = W[r] · x for rows r0 <= r < r1. */
size_t op_isa_gemv_xbytes(enum op_dtype wt, int64_t K);
void op_isa_gemv_prepare(enum op_dtype wt, const float *x, int64_t K, void *xq);
void op_isa_gemv(enum op_dtype wt, const void *W, size_t row_bytes, int64_t r0, int64_t r1,
                 int64_t K, const void *xq, float *y);

/* ---- GEMM (N > 1), quant weights ------------------------------------------ */

/* Tiling constants per ISA: a panel of OP_GEMM_PR rows of W times
 * OP_GEMM_KB blocks of K (32 * OP_GEMM_KB elements) is packed into an
 * L1-resident buffer; the micro-kernel multiplies it with OP_GEMM_NC
 * activation rows ("columns" of the product) at a time. */
#if defined(OP_ISA_AVX512)
#define OP_GEMM_PR 32 /* two zmm of 16 int32 lanes */
#define OP_GEMM_NC 6  /* 2 x 6 int32 + 2 x 6 float accumulators: 24 of 32 zmm */
#elif defined(OP_ISA_AVX2)
#define OP_GEMM_PR 16 /* two ymm of 8 lanes */
#define OP_GEMM_NC 4
#elif defined(OP_ISA_NEON_DOT)
#define OP_GEMM_PR 8  /* two q registers of 4 lanes */
#define OP_GEMM_NC 4  /* one 16-byte load = one k-group of all 4 columns */
#else
#define OP_GEMM_PR 4
#define OP_GEMM_NC 4
#endif
#define OP_GEMM_KB 16

/* Quantized activations for the GEMM, in groups of OP_GEMM_NC rows of X
 * (the columns of one micro-tile; the last group is padded with zero
 * columns). Within a group, one record of OP_XBLOCK_BYTES per block of 32:
 *   qs[8][NC][4]  int8: k-group g (4 consecutive k) of column j at (g*NC + j)*4,
 *                 so a tile reads one pointer with constant offsets and a
 *                 16-byte load gets one k-group of 4 columns;
 *   d[NC]         float scales;
 *   bias[NC]      int32: -off * (sum of the block's quants), off =
 *                 op_isa_gemm_offset(wt): kernels that turn signed weights
 *                 into unsigned bytes (q + off) for an unsigned-by-signed dot
 *                 instruction start the block's accumulator at bias. */
#define OP_XBLOCK_BYTES (40 * OP_GEMM_NC)
#define OP_XBLOCK_D (32 * OP_GEMM_NC)
#define OP_XBLOCK_BIAS (36 * OP_GEMM_NC)

typedef struct op_xpack {
	enum op_dtype wt;    /* the weights' dtype (selects the offset) */
	const uint8_t *base; /* group 0 */
	size_t group_bytes;  /* bytes between groups */
	int64_t N;           /* real columns (rows of X) */
} op_xpack;

static inline size_t op_xgroup_bytes(int64_t K)
{
	return op_pad((size_t)(K / OP_QK) * OP_XBLOCK_BYTES, OP_ALIGN);
}
/* Record of block b of group gi. */
static inline const uint8_t *op_xblock(const op_xpack *x, int64_t gi, int64_t b)
{
	return x->base + (size_t)gi * x->group_bytes + (size_t)b * OP_XBLOCK_BYTES;
}

int op_isa_gemm_offset(enum op_dtype wt);
size_t op_isa_gemm_pack_bytes(void);
/* Pack rows r0 .. r0 + OP_GEMM_PR - 1 (rows >= M as zeros with scale 0),
 * blocks b0 .. b0 + nb - 1 of W. */
void op_isa_gemm_pack(enum op_dtype wt, const void *W, size_t row_bytes, int64_t M, int64_t r0,
                      int64_t b0, int64_t nb, void *buf);
/* Y[c][r0 + i] (+)= the packed panel times the columns of groups g0 .. g1 - 1
 * (columns >= x->N are not stored), rows i < nrows (<= OP_GEMM_PR);
 * accumulate false overwrites Y. The packed blocks are blocks b0 .. b0 +
 * nb - 1 of K. */
void op_isa_gemm_tile(const void *buf, int64_t nb, const op_xpack *x, int64_t b0, int64_t g0,
                      int64_t g1, float *Y, int64_t ldy, int64_t r0, int nrows, bool accumulate);

/* ---- weight matrices in the runtime layout (op_kernels.h, op_wmat) ------- */

/* Interleaved groups (op_kernels.h, op_wmat): OP_WMAT_ROWS rows per group,
 * one vector of the build's dot instruction per k-group (4 consecutive k) of
 * the group's rows: 16 rows on AVX-512 (zmm), 8 on AVX2 (ymm); 1 elsewhere
 * (plain rows, op_matmul). A record (one
 * group, one block of 32 columns) is the rows' f16 scales (OP_WMAT_SCALES
 * bytes), then the quants as OP_WMAT_VEC-byte vectors: q4_0 vector j holds
 * each row's bytes qs[4j..4j+3] (low nibbles elements 4j.., high nibbles
 * 16 + 4j..); q8_0 vector g holds elements 4g..4g+3 of each row, as unsigned
 * bytes q + 128 where the dot instruction is unsigned x signed (vpdpbusd:
 * OP_WMAT_Q8_OFF 128) and as signed q otherwise (OP_WMAT_Q8_OFF 0). The
 * per-ISA file provides op_isa_wmat_gemv and op_isa_wmat_gemm_pack;
 * matmul.c the packing, the row accessors and the activation. */
#if defined(OP_ISA_AVX512)
#define OP_WMAT_ROWS 16
#define OP_WMAT_Q8_OFF 128
#elif defined(OP_ISA_AVX2_VNNI)
#define OP_WMAT_ROWS 8
#define OP_WMAT_Q8_OFF 128
#elif defined(OP_ISA_AVX2)
#define OP_WMAT_ROWS 8
#define OP_WMAT_Q8_OFF 0 /* vpmaddubsw with the sign trick takes signed weights */
#else /* NEON (sdot: 4 rows per q register) keeps plain rows for now */
#define OP_WMAT_ROWS 1
#endif

#if OP_WMAT_ROWS > 1
#define OP_WMAT_SCALES (2 * OP_WMAT_ROWS) /* bytes of a record's f16 scales */
#define OP_WMAT_VEC (4 * OP_WMAT_ROWS)    /* bytes of one k-group of the rows */
static inline size_t op_wmat_rec_bytes(enum op_dtype wt)
{
	return OP_WMAT_SCALES + (size_t)(wt == OP_Q4_0 ? 4 : 8) * OP_WMAT_VEC;
}
/* A stored q8_0 quant back to its signed value. */
static inline int8_t op_wmat_q8(uint8_t v)
{
	return (int8_t)(uint8_t)(v - OP_WMAT_Q8_OFF);
}
/* The activation for op_isa_wmat_gemv (matmul.c prepares it): quants[K]
 * (padded to OP_ALIGN), then nb float scales, then nb int32 biases (-off *
 * block sum: off 8 for q4_0, OP_WMAT_Q8_OFF for q8_0). op_wmat_xbytes bytes
 * at an OP_ALIGN address. */
size_t op_wmat_xbytes(int64_t K);
void op_wmat_prepare(enum op_dtype wt, const float *x, int64_t K, void *xq);
static inline const float *op_wmat_xd(const void *xq, int64_t K)
{
	return (const float *)((const uint8_t *)xq + op_pad((size_t)K, OP_ALIGN));
}
static inline const int32_t *op_wmat_xbias(const void *xq, int64_t K)
{
	return (const int32_t *)((const uint8_t *)op_wmat_xd(xq, K) +
	                         op_pad((size_t)(K / OP_QK) * 4, OP_ALIGN));
}
/* y[r] for the rows of groups G0 .. G1 - 1 that are < M (y indexed from
 * row G0 * OP_WMAT_ROWS). */
void op_isa_wmat_gemv(enum op_dtype wt, const void *P, int64_t K, int64_t G0, int64_t G1,
                      int64_t M, const void *xq, float *y);
/* op_isa_gemm_pack's panel (rows r0 .. r0 + OP_GEMM_PR - 1, blocks b0 ..
 * b0 + nb - 1) from the interleaved layout. */
void op_isa_wmat_gemm_pack(enum op_dtype wt, const void *P, int64_t M, int64_t K, int64_t r0,
                           int64_t b0, int64_t nb, void *buf);
#endif

/* Which file provides what: the ISA files provide the dot products and the
 * q8 quantizer (scalar build: quant.c), the GEMV (scalar build: matmul.c)
 * and the GEMM pack/tile pair where they have a tiled kernel (scalar and
 * plain NEON builds: matmul.c's generic pair over unpacked int8). */
#if defined(OP_ISA_AVX512) || defined(OP_ISA_AVX2) || defined(OP_ISA_NEON_DOT)
#define OP_HAVE_ISA_GEMM 1
#endif

#endif /* OP_KERNELS_INT_H */
