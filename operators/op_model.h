/*
 * operators/op_model.h: a whole model: weights, per-layer state, and the
 * forward pass in its two views: prefill of a chunk of tokens (matrix-matrix
 * products, parallel forms of the structures) and decode of one token
 * (matrix-vector products, recurrent forms with their state).
 *
 * Every LIV layer is pre-norm residual: x += out_proj(mix(featurize(norm(x)))).
 * Weights are generated on the device from a seed (latency and memory do not
 * depend on trained values; DESIGN.md §4) or loaded from a weights file
 * (op_model_save_weights writes one; a trainer can too).
 *
 * Memory: three allocations, each cut by a size table: weights, state (KV
 * caches, recurrent states, conv buffers) and activations (sized for the
 * largest prefill chunk). op_model_bytes reports each, so the harness can
 * compare peak RSS with what the architecture needs.
 *
 * Usage:
 *     op_model_cfg cfg = op_model_cfg_default();
 *     cfg.wtype = OP_Q4_0; cfg.ctx = 4096;
 *     op_model *m = NULL;
 *     if (op_model_create(&m, &arch, &cfg, pool, &err) < 0) ...
 *     op_model_prefill(m, tokens, n, logits, &err);     // logits of the last token
 *     int next = op_argmax(logits, arch.vocab);
 *     op_model_decode(m, next, logits, &err);
 *     op_model_free(m);
 */
#ifndef OP_MODEL_H
#define OP_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "op_arch.h"
#include "op_kernels.h"
#include "op_mix.h"
#include "tl.h"

typedef struct op_model_cfg {
	enum op_dtype wtype; /* projection weights: OP_F32, OP_Q8_0, OP_Q4_0        */
	int kv_type;         /* enum op_kv_type: OP_KV_F16 (default) or OP_KV_F32 */
	int64_t ctx;         /* positions the caches hold (prompt + generated)      */
	int chunk;           /* largest prefill chunk in tokens (activations)       */
	uint64_t seed;       /* weights are drawn from PCG32(seed)                  */
	const char *weights_path; /* NULL: draw them; else load this file
	                      * (op_model_save_weights) instead                    */
	float init_std;      /* scale of the random weights                         */
	float norm_eps;      /* RMSNorm epsilon (1e-5 as LFM2, Llama)               */
} op_model_cfg;

op_model_cfg op_model_cfg_default(void);

typedef struct op_model op_model;

typedef struct op_model_bytes {
	size_t weights;      /* all weight tensors as stored (quantized where asked) */
	size_t state;        /* KV caches, recurrent states, conv buffers            */
	size_t activations;  /* scratch for a prefill chunk and the logits           */
} op_model_bytes;

/* Build the model: allocate, generate weights (split across the pool).
 * Errors: TL_EINVAL for an arch the runtime cannot run with these settings
 * (e.g. a quantized matrix whose row length is not a multiple of 32 is kept
 * in f32 instead, not an error), TL_ENOMEM when memory runs out. */
int op_model_create(op_model **out, const op_arch *a, const op_model_cfg *cfg, op_pool *pool,
                    tl_err *err);
void op_model_free(op_model *m);
/* Write the weights to path (tailor-weights/1: plain q8_0 / q4_0 / f32 rows
 * in the model's tensor order, with a hash of the layout, see model.c); a
 * model created with cfg.weights_path = path loads them back bit for bit.
 * Loading checks the layout (same arch and weight type) and names the
 * tensor where a file is truncated. TL_EIO when the file cannot be written
 * (nothing is left behind). */
int op_model_save_weights(const op_model *m, const char *path, tl_err *err);

/* The file writer itself, for producers of weights other than a runtime
 * model (the trainer): tensors t[0..n) in the model's layout order (as
 * op_model_create lays them out for the arch), each row supplied as plain
 * bytes (op_row_bytes(dtype, K)) by row_fn(ctx, tensor, row, out). A file
 * written here loads into op_model_create exactly when the tensors match. */
typedef struct op_wfile_tensor {
	enum op_dtype dtype;
	int64_t rows, K;
} op_wfile_tensor;
typedef void (*op_wfile_row_fn)(void *ctx, int tensor, int64_t row, void *out);
int op_weights_write(const char *path, uint64_t d_model, uint64_t vocab, int n_layers,
                     const op_wfile_tensor *t, int n, op_wfile_row_fn row_fn, void *ctx,
                     tl_err *err);
op_model_bytes op_model_get_bytes(const op_model *m);
/* What layer i holds by itself: the weights it owns (shared projections
 * are counted at their owner), its state at the model's context, and the
 * activations a model of this layer alone would need (a model's are those
 * of its most demanding layer, as every buffer is sized by the widest layer
 * using it). The operator tables (profiler/optable.h) store these per
 * layer configuration. TL_EINVAL when i is not a layer, TL_ENOMEM. */
int op_model_layer_bytes(const op_model *m, int i, op_model_bytes *out);
/* Time every layer of the following prefills and decodes: ms[i] (i <
 * n_layers) accumulates layer i's wall time in milliseconds and
 * ms[n_layers] everything else of the forward pass (embedding, final norm,
 * LM head). The caller zeroes ms; NULL stops timing. A clock read per layer
 * (tens of ns) is the only cost. */
void op_model_time_layers(op_model *m, double *ms);

/* Forget the sequence: empty caches and states. */
void op_model_reset(op_model *m);
/* Positions processed so far. */
int64_t op_model_pos(const op_model *m);

/* Prefill n tokens at the current position (in chunks of cfg.chunk); write
 * the logits of the last token into logits (vocab). TL_EINVAL when the
 * context would overflow cfg.ctx (nothing is processed then) or a token is
 * out of range. */
int op_model_prefill(op_model *m, const int32_t *tokens, int64_t n, float *logits, tl_err *err);
/* Decode one token at the current position: logits (vocab). */
int op_model_decode(op_model *m, int32_t token, float *logits, tl_err *err);
/* Advance the state as if n tokens had been processed, without computing
 * them (fills KV caches with those of a repeated token, cheaply): used to
 * measure decode at a context depth without paying for the prefill. Caches
 * hold real K/V rows, so attention reads real memory at that depth. */
int op_model_fill_depth(op_model *m, int64_t n, tl_err *err);

/* Greedy sampling: index of the largest logit (the first on ties). */
int32_t op_argmax(const float *logits, int n);

#endif
