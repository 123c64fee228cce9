/*
 * operators/op_mix.h: the token-mixing structures of the inference runtime,
 * f32 activations (DESIGN.md §3 and §4, "train materialized, infer
 * recurrent").
 *
 * Every structure comes in two forms over the same per-layer state:
 *  - prefill: a whole chunk of T tokens at positions pos0 .. pos0+T-1, after
 *    pos0 earlier positions already folded into the state (pos0 = 0 for the
 *    first chunk of a prompt);
 *  - step: one token, the decode loop's hot path.
 * Running a prompt as one prefill, as several chunked prefills, or as T steps
 * gives the same outputs and the same final state (up to f32 rounding of a
 * different summation order); tests/test_mix.c holds both forms equal to the
 * materialized y = T(x) x of DESIGN.md §3, computed in double precision.
 *
 *   structure            state                               functions
 *   dense (attention)    KV cache, [pos][kv][hd] (ring)      op_attn_prefill/_step
 *   low-rank (lin. attn) per KV head S (hd x hd) and z (hd)  op_linattn_prefill/_step
 *   semi-separable       per head H (N x P)                  op_ssm_prefill/_step
 *   scaled Toeplitz      last L-1 rows of u = B.V            op_shortconv_prefill/_step
 *   featurizer conv      last K-1 rows of the input          op_fconv_prefill/_step
 *   diagonal (GLU)       none                                op_glu
 * plus op_rmsnorm (pre-norm and per-head QK-norm) and op_rope.
 *
 * Ownership and memory. Nothing here allocates. Every state lives in memory
 * the caller owns (the model carves it from one arena) and sizes with the
 * matching *_bytes() function; a state of all zero bytes is the empty state
 * (reset = memset 0). The KV cache is a small descriptor (op_kv_cache) over
 * caller memory, one for K and one for V, so that a layer that shares
 * another layer's K and/or V (cross-layer KV sharing, genome_xshare) is
 * handed the owner's cache and passes NULL for what it does not compute.
 * Chunked prefills (linear attention, recurrence) need caller scratch sized
 * by *_scratch_bytes().
 *
 * Bytes against genome/stats.c. stats counts `elem_bytes` per cached element
 * for everything; here the KV cache is f32 or f16 (op_kv_cache_bytes counts
 * 4 or 2), while the fixed states (linear attention, recurrence, conv
 * buffers) are always f32, i.e. they equal stats' counts at elem_bytes = 4.
 * tests/test_mix.c checks the sum over a decoded genome against
 * genome_stats_compute.
 *
 * Enums mirror genome/genome.h (operators/ may not include it); the values
 * are equal so a genome integer can be passed through, and tests/test_mix.c
 * asserts that they stay equal.
 *
 * Threading: no global state; calls on distinct states may run in
 * parallel. One call runs on the calling thread; attention can also be
 * split over a pool by KV heads or query tiles (op_attn_append once, then
 * op_attn_prefill_range / op_attn_step_range or the pool job
 * op_attn_job_run), with the same bits as the whole call. (The recurrences
 * loop over independent heads and the convs over independent channels, laid
 * out for the same kind of split.)
 *
 * Numerics: single-precision arithmetic as written (the meson build passes
 * -ffp-contract=off, so no FMA is fused behind our back; SIMD paths write
 * their FMAs out); where a form repeats the other's arithmetic (attention's
 * per-query core, the convs) the forms agree bit for bit under that flag.
 * Attention has a SIMD path (AVX-512, AVX2+F16C+FMA or NEON, chosen at
 * compile time; plain C otherwise) and a scalar reference, op_attn_*_ref:
 * each agrees with itself across forms, and the two agree to f32 rounding.
 *
 * Usage, one GQA layer (decode after a prompt of P tokens):
 *     op_attn_cfg cfg = {.heads = 16, .kv_heads = 8, .head_dim = 64,
 *                        .mask = OP_MASK_NONE, .len = 0, .nonlin = OP_NL_SOFTMAX};
 *     int64_t cap = op_attn_cache_positions(cfg.mask, cfg.len, ctx);
 *     size_t kb = op_kv_cache_bytes(OP_KV_F16, 8, 64, cap);
 *     op_kv_cache kc, vc;
 *     op_kv_cache_init(&kc, arena_take(kb), OP_KV_F16, 8, 64, cap);
 *     op_kv_cache_init(&vc, arena_take(kb), OP_KV_F16, 8, 64, cap);
 *     op_rmsnorm(q, q, qnorm_w, P * 16, 64, 1e-5f);   // per-head QK-norm
 *     op_rmsnorm(k, k, knorm_w, P * 8, 64, 1e-5f);
 *     op_rope(q, P, 16, 64, 0, 1e6f);
 *     op_rope(k, P, 8, 64, 0, 1e6f);
 *     if (op_attn_prefill(y, q, k, v, &kc, &vc, &cfg, P, 0, &err) < 0) ...
 *     ... then per new token at position pos:
 *     if (op_attn_step(y1, q1, k1, v1, &kc, &vc, &cfg, pos, &err) < 0) ...
 */
#ifndef OP_MIX_H
#define OP_MIX_H

#include <stddef.h>
#include <stdint.h>

#include "tl.h"

/* Mirrors of genome/genome.h's enum genome_mask and genome_nonlin. */
enum op_mask {
	OP_MASK_NONE = 0,   /* causal, full                                   */
	OP_MASK_WINDOW = 1, /* causal band: keys j with i - len < j <= i      */
	OP_MASK_BLOCK = 2,  /* keys j with j / len == i / len and j <= i     */
};
enum op_nonlin {
	OP_NL_NONE = 0,
	OP_NL_SOFTMAX = 1,
	OP_NL_SILU = 2,
	OP_NL_SIGMOID = 3,
	OP_NL_POSFEAT = 4, /* elu(x) + 1 */
};
/* Element type of a KV cache. f16 is IEEE binary16 stored as uint16_t,
 * rounded to nearest even on the way in. */
enum op_kv_type {
	OP_KV_F32 = 0,
	OP_KV_F16 = 1,
};

/* Sizes the attention supports (genome ranges: head_dim <= 1024,
 * heads <= 256): the reference keeps one converted K/V row and the running
 * softmax statistics of one GQA group on the stack; the fast path about
 * 25 KB of scores and statistics for up to 256 query rows. */
#define OP_ATTN_MAX_HD 1024
#define OP_ATTN_MAX_GROUP 256
/* Tokens per chunk of the chunked prefills (linear attention, recurrence):
 * the intra-chunk part is O(chunk^2) per head, the state is read and written
 * once per chunk. 32 keeps a chunk's features in L1 for head dims <= 64. */
#define OP_MIX_CHUNK 32

/* ---- norms, positions, gates ---------------------------------------------- */

/* RMSNorm of each row: y = x / sqrt(mean(x^2) + eps) * w; w (C) may be NULL
 * (no gain). x, y (T, C); y may equal x. With C = head_dim and T = tokens *
 * heads this is the per-head QK-norm. */
void op_rmsnorm(float *y, const float *x, const float *w, int T, int C, float eps);

/* Rotary positions in place, HF/NeoX "rotate_half" convention (Llama, LFM2):
 * for token t at position p = pos0 + t and i < hd/2, the pair
 * (x[i], x[i + hd/2]) is rotated by angle p * theta^(-2i/hd). x (T, heads, hd),
 * hd even. The angle and its cos/sin are computed in double, so this is
 * within f32 rounding of the exact rotation at any position (HF computes the
 * angle in f32, which drifts by ~1e-3 rad at 32K positions). */
void op_rope(float *x, int T, int heads, int hd, int64_t pos0, float theta);

/* Diagonal structure (SwiGLU / GLU / bilinear): y = act(g) * u elementwise,
 * act OP_NL_SILU, OP_NL_SIGMOID or OP_NL_NONE. y may equal g or u. */
void op_glu(float *y, const float *g, const float *u, size_t n, int act);

/* ---- dense: softmax / sigmoid attention with a KV cache ------------------- */

/* One of K or V of one attention layer. Layout [slot][kv_heads][head_dim]
 * where position p lives in slot p % cap: a full cache (cap >= every
 * position) never wraps; a windowed or block layer may use a ring of
 * cap >= len positions and then holds only the last cap positions. */
typedef struct op_kv_cache {
	void *data;    /* caller memory, op_kv_cache_bytes(); float or uint16_t */
	int type;      /* enum op_kv_type                                       */
	int kv_heads;  /* KV heads                                              */
	int head_dim;  /* channels per head                                     */
	int64_t cap;   /* positions (slots) the memory holds, >= 1              */
	int64_t n;     /* positions appended so far; holds [max(0, n-cap), n)   */
} op_kv_cache;

/* Bytes of one cache (K or V): cap * kv_heads * head_dim * (4 or 2). */
size_t op_kv_cache_bytes(int type, int kv_heads, int head_dim, int64_t cap);
/* Positions a layer's cache needs for a context of ctx tokens: ctx when
 * unmasked, min(ctx, len) for window and block masks (genome/stats.c counts
 * the same). A ring of exactly len positions makes windowed prefill go one
 * token at a time (see op_attn_prefill); len + chunk - 1 lets chunks through
 * whole. */
int64_t op_attn_cache_positions(int mask, int len, int64_t ctx);
/* Point c at mem and empty it. */
void op_kv_cache_init(op_kv_cache *c, void *mem, int type, int kv_heads, int head_dim,
                      int64_t cap);
/* Empty the cache (a new sequence); the memory is not touched. */
void op_kv_cache_reset(op_kv_cache *c);
/* Append T positions x (T, kv_heads, head_dim) at position c->n (converted
 * to the cache's type). The attention functions append for you; this is for
 * layers that only produce K/V. */
void op_kv_cache_append(op_kv_cache *c, const float *x, int T);
/* Read position pos back as f32 into out (kv_heads, head_dim). TL_EINVAL if
 * the position is not held. */
int op_kv_cache_read(float *out, const op_kv_cache *c, int64_t pos, tl_err *err);

typedef struct op_attn_cfg {
	int heads;     /* query heads H                                          */
	int kv_heads;  /* KV heads, divides H; query head h reads KV head
	                * h / (H / kv_heads)                                     */
	int head_dim;  /* hd <= OP_ATTN_MAX_HD; scores are scaled 1/sqrt(hd)    */
	int mask;      /* enum op_mask                                           */
	int len;       /* window or block length in tokens (>= 1) for a mask     */
	int nonlin;    /* OP_NL_SOFTMAX, or OP_NL_SIGMOID: y_i = sum_j
	                * sigmoid(q_i.k_j / sqrt(hd)) v_j, not normalised        */
} op_attn_cfg;

/* Causal attention of T queries at positions pos0 .. pos0+T-1.
 *   y (T, H, hd) out; q (T, H, hd) (already QK-normed and rotated);
 *   k, v (T, KV, hd) appended to kc / vc, or NULL when this layer shares
 *   that cache with an earlier layer that has already appended these
 *   positions (then c->n >= pos0 + T).
 * A cache being appended must have n == pos0. Keys come from the caches
 * (so an f16 cache gives prefill and step the same rounded keys). On a ring
 * smaller than what the chunk spans, the chunk is processed in tiles that
 * fit: tile [a, b] with b <= lo(a) + cap - 1, lo(a) the first key of query
 * a; a ring of exactly len therefore goes one token at a time (window) or
 * one block at a time (block). A shared ring must still hold every key of
 * the chunk's first query when this layer runs: cap >= len + T - 1
 * (window), so a model with a shared windowed ring prefills in chunks.
 * Errors (TL_EINVAL, before anything is written): sizes out of range or not
 * matching the caches, n != pos0, a cache too small for the positions. */
int op_attn_prefill(float *y, const float *q, const float *k, const float *v, op_kv_cache *kc,
                    op_kv_cache *vc, const op_attn_cfg *cfg, int T, int64_t pos0, tl_err *err);
/* One query at position pos (= prefill with T = 1): q, y (H, hd); k, v
 * (KV, hd) or NULL as above. */
int op_attn_step(float *y, const float *q, const float *k, const float *v, op_kv_cache *kc,
                 op_kv_cache *vc, const op_attn_cfg *cfg, int64_t pos, tl_err *err);

/* The scalar reference of the two functions above: one key at a time, no
 * SIMD (the specification the tests hold the fast path to). Same contract
 * and errors; the results differ from the fast path's by f32 rounding (the
 * fast path's softmax works on blocks of keys, uses FMA and, in SIMD builds,
 * a polynomial exp), while each path agrees with itself bit for bit across
 * forms (prefill, steps, chunks), ring sizes and thread splits. */
int op_attn_prefill_ref(float *y, const float *q, const float *k, const float *v,
                        op_kv_cache *kc, op_kv_cache *vc, const op_attn_cfg *cfg, int T,
                        int64_t pos0, tl_err *err);
int op_attn_step_ref(float *y, const float *q, const float *k, const float *v, op_kv_cache *kc,
                     op_kv_cache *vc, const op_attn_cfg *cfg, int64_t pos, tl_err *err);

/* The SIMD path the attention was compiled with: "avx512", "avx2", "neon"
 * or "scalar" (see mix_int.h). */
const char *op_attn_isa(void);

/* ---- dense attention split over threads ----------------------------------- *
 *
 * op_attn_prefill = op_attn_append (once, one thread) + the attention of the
 * appended positions, which only reads the caches and can be split: by KV
 * head (each with its H / KV query heads), or by query rows. Every split
 * gives the same bits as the whole call. A layer's call over a pool:
 *
 *     for (int t = 0; t < T;) {
 *         int n = op_attn_append(kc, vc, k ? k + t * KV * hd : NULL,
 *                                v ? v + t * KV * hd : NULL, &cfg, T - t, pos0 + t, &err);
 *         if (n < 0) ...error...
 *         op_attn_job job = {y + t * H * hd, q + t * H * hd, kc, vc, &cfg, n, pos0 + t};
 *         op_pool_run(pool, op_attn_job_run, &job);   // op_kernels.h
 *         t += n;
 *     }
 *
 * The loop matters only for a ring smaller than the chunk's span (see
 * op_attn_prefill's tiles); with a full cache, or a window ring of
 * len + T - 1 positions, the first append takes the whole chunk. */

/* Check the chunk of T queries at pos0 exactly as op_attn_prefill does
 * (same errors, nothing written on an error), append the positions of its
 * first tile to the caches given k / v (NULL: shared, already appended), and
 * return how many positions that tile has: T when the caches can hold the
 * whole chunk, >= 1 when T >= 1, 0 when T == 0. */
int op_attn_append(op_kv_cache *kc, op_kv_cache *vc, const float *k, const float *v,
                   const op_attn_cfg *cfg, int T, int64_t pos0, tl_err *err);
/* The attention of queries pos0 .. pos0+T-1 (y, q (T, H, hd)) for KV heads
 * [kv0, kv1) only: writes y of query heads kv0 * H/KV .. kv1 * H/KV - 1, and
 * nothing else. The caches must already hold every key these queries see
 * (what op_attn_append leaves); they are only read, so ranges may run in
 * parallel. TL_EINVAL as op_attn_prefill's checks for shared caches, or for a
 * range outside 0..KV. */
int op_attn_prefill_range(float *y, const float *q, const op_kv_cache *kc,
                          const op_kv_cache *vc, const op_attn_cfg *cfg, int T, int64_t pos0,
                          int kv0, int kv1, tl_err *err);
/* One query at pos (T = 1): q, y (H, hd). */
int op_attn_step_range(float *y, const float *q, const op_kv_cache *kc, const op_kv_cache *vc,
                       const op_attn_cfg *cfg, int64_t pos, int kv0, int kv1, tl_err *err);

/* A pool job (op_kernels.h's op_pool_fn): op_attn_job_run(job, ith, nth)
 * computes thread ith's share of the chunk's attention: contiguous KV heads
 * when nth divides KV (or T == 1), else (KV head, query tile) units dealt
 * round robin. Preconditions are op_attn_prefill_range's (the chunk was
 * appended with op_attn_append returning T); they are not checked here. */
typedef struct op_attn_job {
	float *y;                    /* (T, H, hd) out                        */
	const float *q;              /* (T, H, hd)                            */
	const op_kv_cache *kc, *vc;  /* holding the chunk's keys              */
	const op_attn_cfg *cfg;
	int T;                       /* queries, at positions pos0 ..         */
	int64_t pos0;
} op_attn_job;
void op_attn_job_run(void *job, int ith, int nth);

/* ---- low-rank: linear attention ------------------------------------------- */

typedef struct op_linattn_cfg {
	int heads;     /* query heads H                                          */
	int kv_heads;  /* KV heads, divides H (GQA grouping as attention)        */
	int head_dim;  /* hd                                                     */
	int nonlin;    /* OP_NL_POSFEAT: phi = elu + 1, normalised;
	                * OP_NL_NONE: phi = identity, not normalised             */
} op_linattn_cfg;

/* Normaliser epsilon: y = num / (den + OP_LINATTN_EPS). */
#define OP_LINATTN_EPS 1e-6f

/* State, f32, per KV head g: a (hd, hd+1) matrix whose column b < hd is
 * S[:, b] = sum_j phi(k_j) v_j[b] and whose last column is
 * z = sum_j phi(k_j), i.e. sum_j phi(k_j) (v_j, 1)^T. One product
 * phi(q)^T state gives numerator and denominator. kv * hd * (hd+1) * 4
 * bytes (stats: kv*hd*(hd+1) elements). */
size_t op_linattn_state_bytes(const op_linattn_cfg *cfg);
/* Scratch for the chunked prefill: phi of one chunk of K and Q rows. */
size_t op_linattn_scratch_bytes(const op_linattn_cfg *cfg);
/* y_i = sum_{j<=i} (phi(q_i).phi(k_j)) v_j [ / (sum_{j<=i} phi(q_i).phi(k_j) + eps) ]
 * over the state's history and the chunk. q, y (T, H, hd); k, v (T, KV, hd);
 * state updated in place. Chunked: per chunk of OP_MIX_CHUNK tokens the
 * state before the chunk plus a causal product inside it.
 * Feature sharing (K and V from another layer) means the same state: the
 * sharing layer reads the owner's state *before* the owner's update, so in
 * prefill it must be given a copy taken before the owner ran (or run step
 * by step after the owner, each step reading the updated state with
 * op_linattn_step_shared). */
void op_linattn_prefill(float *y, const float *q, const float *k, const float *v, float *state,
                        const op_linattn_cfg *cfg, int T, void *scratch);
/* One token: fold (k, v) into the state, then y = phi(q)^T state.
 * q, y (H, hd); k, v (KV, hd). */
void op_linattn_step(float *y, const float *q, const float *k, const float *v, float *state,
                     const op_linattn_cfg *cfg);
/* One token, reading a state another layer has already updated with this
 * token's (k, v): y = phi(q)^T state; the state is not changed. */
void op_linattn_step_shared(float *y, const float *q, const float *state,
                            const op_linattn_cfg *cfg);

/* ---- semi-separable: diagonal input-varying recurrence -------------------- */

typedef struct op_ssm_cfg {
	int heads;   /* heads                                                  */
	int n;       /* N: state rows per head (C and B width per head)        */
	int p;       /* P: value channels per head (head_dim)                  */
	int nonlin;  /* OP_NL_NONE, or OP_NL_SILU applied to C before use      */
} op_ssm_cfg;

/* State, f32: per head H (N, P); heads * N * P * 4 bytes (stats:
 * heads * state * head_dim elements). */
size_t op_ssm_state_bytes(const op_ssm_cfg *cfg);
/* Scratch for the chunked prefill: silu(C) of one chunk of one head. */
size_t op_ssm_scratch_bytes(const op_ssm_cfg *cfg);
/* Per head h, token t:
 *   a_t = exp(-softplus(A_t[h])),  H_t = a_t H_{t-1} + B_t^T V_t,  y_t = C_t H_t
 * i.e. T[i][j] = (C_i . B_j) a_i a_{i-1} ... a_{j+1} (DESIGN.md writes the
 * same product as A_{i-1}...A_{j+1}, indexing A_k as the step k -> k+1).
 * C, B (T, heads, N); V, y (T, heads, P); A (T, heads). Chunked (SSD form):
 * cumulative log-decays in double inside a chunk of OP_MIX_CHUNK tokens. */
void op_ssm_prefill(float *y, const float *C, const float *B, const float *V, const float *A,
                    float *state, const op_ssm_cfg *cfg, int T, void *scratch);
/* One token: C, B (heads, N); V, y (heads, P); A (heads). */
void op_ssm_step(float *y, const float *C, const float *B, const float *V, const float *A,
                 float *state, const op_ssm_cfg *cfg);

/* ---- scaled Toeplitz: gated short conv (LFM2, Hyena-Y) -------------------- */

/* State, f32: the last L-1 rows of u = B.V, (L-1, E), oldest first;
 * (L-1) * E * 4 bytes (stats: (len-1) * inner elements); 0 when L == 1. */
size_t op_shortconv_state_bytes(int E, int L);
/* u = B.V;  z_t[c] = sum_{k<L} w[c][k] u_{t-(L-1)+k}[c];  y = C.z
 * (PyTorch conv1d(groups=E, padding=L-1) truncated to T, as LFM2 runs it:
 * w[c][L-1] multiplies the current token; rows before the chunk come from
 * the state). C, B, V, y (T, E); w (E, L), unused (may be NULL) when L == 1
 * (z = u: no inner conv). y may equal C, not B or V. */
void op_shortconv_prefill(float *y, const float *C, const float *B, const float *V,
                          const float *w, float *state, int T, int E, int L);
/* One token: C, B, V, y (E); y may equal C, not B or V. */
void op_shortconv_step(float *y, const float *C, const float *B, const float *V, const float *w,
                       float *state, int E, int L);

/* ---- featurizer short conv (Hyena-X / Hyena-SE on C, B, V) ---------------- */

/* State, f32: the last K-1 input rows, (K-1, W); (K-1) * W * 4 bytes (stats:
 * (conv-1) * width elements). */
size_t op_fconv_state_bytes(int W, int K);
/* y_t[c] = sum_{k<K} w[c][k] x_{t-(K-1)+k}[c]: the same causal depthwise
 * conv on a feature group. x, y (T, W), y must not alias x; w (W, K). */
void op_fconv_prefill(float *y, const float *x, const float *w, float *state, int T, int W, int K);
/* One token: x, y (W), y must not alias x. */
void op_fconv_step(float *y, const float *x, const float *w, float *state, int W, int K);

#endif /* OP_MIX_H */
