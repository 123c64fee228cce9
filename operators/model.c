/*
 * operators/model.c: the model's weights, state and forward pass (see
 * op_model.h).
 *
 * Workload: decode issues, per token and per layer, a pre-norm, one to four
 * projections (fused into one matrix product when the layer owns all its
 * projections), the structure's step, an output projection and a residual
 * add; everything memory-bound, so weights are streamed once per token and
 * nothing is allocated after op_model_create. Prefill runs the same layers
 * on chunks of up to cfg.chunk tokens with matrix-matrix products.
 *
 * Feature sharing (cross-layer KV sharing): a layer that takes K and/or V
 * from an earlier layer reads that layer's cache (dense attention) or its
 * retained feature rows of the current chunk (linear attention), so shared
 * features are stored once.
 */
#include "op_model.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct layer_w {
	float *norm;                  /* (d) pre-norm gain                         */
	void *proj[OP_NGROUPS];       /* projection of each group, see ptype       */
	enum op_dtype ptype[OP_NGROUPS];
	float *qknorm[OP_NGROUPS];    /* (hd) for C and B with QK-norm              */
	float *fconv[OP_NGROUPS];     /* (width, k) featurizer conv                  */
	float *kernel;                /* (inner, len) Toeplitz kernel, len > 1     */
	void *out;                    /* (d rows of inner) output projection       */
	enum op_dtype otype;
	bool fused;                   /* proj[] of computed groups contiguous, dense,
	                               * one dtype: one matmul for all of them      */
	int64_t fused_rows;
} layer_w;

typedef struct layer_s {
	op_kv_cache kc, vc;           /* dense: own K / V caches                    */
	float *lin;                   /* low-rank state                             */
	float *lin_pre;               /* copy before this chunk, for full sharers   */
	float *ssm;                   /* semi-separable state                        */
	float *conv;                  /* Toeplitz (len-1) rows                       */
	float *fconv[OP_NGROUPS];     /* featurizer conv rows                        */
	float *keep[OP_NGROUPS];      /* (chunk, width) retained features for sharers */
} layer_s;

struct op_model {
	op_arch a;
	op_model_cfg cfg;
	op_pool *pool;
	int64_t pos;
	/* weights */
	void *wmem;
	size_t wbytes;
	struct fill_job *tensors;     /* every weight tensor, in layout order      */
	int n_tensors;
	void *embed;                  /* (vocab rows of d) in etype                */
	enum op_dtype etype;
	float *final_norm;
	layer_w lw[OP_MAX_LAYERS];
	/* state */
	void *smem;
	size_t sbytes;
	layer_s ls[OP_MAX_LAYERS];
	bool has_sharer[OP_MAX_LAYERS][OP_NGROUPS];
	/* activations */
	void *amem;
	size_t abytes;
	float *x, *xn, *feat, *grp[OP_NGROUPS], *tmp, *y, *o, *logits, *mix_scratch;
	void *mm_scratch;
	/* per-layer accounting (op_model_layer_bytes) and timing */
	size_t layer_wbytes[OP_MAX_LAYERS], layer_sbytes[OP_MAX_LAYERS];
	double *layer_ms; /* NULL, or n_layers + 1 accumulators (op_model_time_layers) */
};

op_model_cfg op_model_cfg_default(void)
{
	op_model_cfg c = {
		.wtype = OP_Q4_0,
		.kv_type = OP_KV_F16,
		.ctx = 4096,
		.chunk = 256,
		.seed = 1,
		.init_std = 0.02f,
		.norm_eps = 1e-5f,
	};
	return c;
}

/* ---- sizes --------------------------------------------------------------------- */

/* The stored type of a matrix with rows of K: quantized types need K to be a
 * whole number of blocks; other matrices stay f32. */
static enum op_dtype mat_type(enum op_dtype want, int64_t K)
{
	if ((want == OP_Q8_0 || want == OP_Q4_0) && K % OP_QK != 0)
		return OP_F32;
	return want;
}

/* Bytes of a matrix in the runtime layout (op_wmat: quantized rows
 * interleaved for the build's kernels where it has such a layout). */
static size_t mat_bytes(enum op_dtype t, int64_t rows, int64_t K)
{
	return op_wmat_bytes(t, rows, K);
}

static int64_t group_blocks(const op_layer *l, int g)
{
	if (l->feat == OP_FEAT_QKV)
		return g == OP_G_C ? l->heads : l->kv_heads;
	if (l->feat == OP_FEAT_CBVA)
		return l->heads;
	return 1;
}

/* Bytes of group g's projection as layer l stores it. */
static size_t proj_bytes(const op_arch *a, const op_layer *l, int g, enum op_dtype t)
{
	int64_t w = l->width[g], d = a->d_model;
	switch (l->proj_chmix[g]) {
	case OP_CH_DIAGONAL: return (size_t)w * sizeof(float);
	case OP_CH_HEADS: return (size_t)(d * w / group_blocks(l, g)) * sizeof(float);
	default: return mat_bytes(t, w, d);
	}
}

static size_t align64(size_t n)
{
	return (n + 63) & ~(size_t)63;
}

/* A bump allocator over one block: pass 1 counts (base NULL), pass 2 cuts. */
typedef struct arena {
	char *base;
	size_t off;
} arena;

static void *take(arena *ar, size_t n)
{
	void *p = ar->base ? ar->base + ar->off : NULL;
	ar->off += align64(n);
	return p;
}

/* ---- weight generation ----------------------------------------------------------- */

/* One matrix to fill: rows of K values, uniform in [-r, r] (std `std`),
 * stored as `type`; `ones` for norm gains. Each row has its own PCG stream
 * (the seed and a global row number), so the weights do not depend on the
 * thread count. */
typedef struct fill_job {
	void *dst;
	enum op_dtype type;
	int64_t rows, K;
	float std;
	bool ones;
	uint64_t stream0;
} fill_job;

typedef struct fill_task {
	fill_job *jobs;
	int n_jobs;
	uint64_t seed;
	int64_t max_k;
	float *rowbuf;  /* nth * max_k */
	uint8_t *grpbuf; /* nth * FILL_GROUP_BYTES(max_k): a group of plain rows */
} fill_task;

/* A group of rows of the runtime layout as plain rows, f32 at most. */
#define FILL_GROUP_ROWS 16
#define FILL_GROUP_BYTES(max_k) ((size_t)FILL_GROUP_ROWS * (size_t)(max_k) * sizeof(float))

/* Each thread takes whole groups of the runtime layout: the rows are drawn
 * and quantized into a small buffer, then packed into place. */
static void fill_rows(void *arg, int ith, int nth)
{
	fill_task *t = arg;
	float *buf = t->rowbuf + (size_t)ith * (size_t)t->max_k;
	uint8_t *grp = t->grpbuf + (size_t)ith * FILL_GROUP_BYTES(t->max_k);
	for (int j = 0; j < t->n_jobs; j++) {
		fill_job *job = &t->jobs[j];
		size_t rb = op_row_bytes(job->type, job->K);
		int64_t gr = op_wmat_group_rows(job->type);
		int64_t ng = (job->rows + gr - 1) / gr;
		for (int64_t G = ith; G < ng; G += nth)
		for (int64_t r = G * gr; r < (G + 1) * gr && r < job->rows; r++) {
			if (job->ones) {
				for (int64_t k = 0; k < job->K; k++)
					buf[k] = 1.0f;
			} else {
				tl_rng rng;
				tl_rng_seed(&rng, t->seed, job->stream0 + (uint64_t)r);
				float scale = job->std * 1.7320508f * 2.0f; /* uniform std = range/sqrt(12) */
				for (int64_t k = 0; k < job->K; k++)
					buf[k] = (tl_rng_float(&rng) - 0.5f) * scale;
			}
			op_quantize_row(job->type, buf, grp + (size_t)(r - G * gr) * rb, job->K);
			if (r + 1 == (G + 1) * gr || r + 1 == job->rows)
				op_wmat_pack(job->type, grp, G * gr, r + 1 - G * gr, job->rows, job->K,
				             job->dst);
		}
	}
}

/* ---- weight files ------------------------------------------------------------------ */

/* A weights file (tailor-weights/1), little-endian:
 *   "TLWEIGHT"            8 bytes
 *   version               u32 = 1
 *   tensors               u32
 *   layout                32 bytes: SHA-256 of (dtype u32, rows i64, K i64)
 *                         of every tensor, d_model, vocab and layers
 *   per tensor, in the model's layout order:
 *     dtype u32, pad u32, rows i64, K i64, then rows * op_row_bytes(dtype, K)
 *     bytes of plain rows (ggml's q8_0 / q4_0 blocks, or f32)
 * The file holds plain rows, whatever the build's kernels prefer, so one
 * file serves every device; they are packed on load. */
#define WFILE_MAGIC "TLWEIGHT"
#define WFILE_VERSION 1u

typedef struct wtensor_hdr {
	uint32_t dtype, pad;
	int64_t rows, K;
} wtensor_hdr;

static void wfile_hash(uint64_t d_model, uint64_t vocab, int n_layers, const op_wfile_tensor *t,
                       int n, unsigned char out[32])
{
	tl_sha256 h;
	tl_sha256_init(&h);
	uint64_t dims[3] = {d_model, vocab, (uint64_t)n_layers};
	tl_sha256_update(&h, dims, sizeof dims);
	for (int j = 0; j < n; j++) {
		wtensor_hdr th = {(uint32_t)t[j].dtype, 0, t[j].rows, t[j].K};
		tl_sha256_update(&h, &th, sizeof th);
	}
	tl_sha256_final(&h, out);
}

int op_weights_write(const char *path, uint64_t d_model, uint64_t vocab, int n_layers,
                     const op_wfile_tensor *t, int n, op_wfile_row_fn row_fn, void *ctx,
                     tl_err *err)
{
	FILE *f = fopen(path, "wb");
	if (f == NULL)
		return tl_err_setsub(err, TL_EIO, errno, "weights %s: cannot create: %s", path,
		                     strerror(errno));
	uint32_t hdr[2] = {WFILE_VERSION, (uint32_t)n};
	unsigned char lh[32];
	wfile_hash(d_model, vocab, n_layers, t, n, lh);
	bool ok = fwrite(WFILE_MAGIC, 8, 1, f) == 1 && fwrite(hdr, sizeof hdr, 1, f) == 1 &&
	          fwrite(lh, 32, 1, f) == 1;
	size_t max_rb = 0;
	for (int j = 0; j < n; j++) {
		size_t rb = op_row_bytes(t[j].dtype, t[j].K);
		if (rb > max_rb)
			max_rb = rb;
	}
	void *row = malloc(max_rb ? max_rb : 1);
	if (row == NULL) {
		fclose(f);
		remove(path);
		return tl_err_set(err, TL_ENOMEM, "weights %s: out of memory", path);
	}
	for (int j = 0; ok && j < n; j++) {
		wtensor_hdr th = {(uint32_t)t[j].dtype, 0, t[j].rows, t[j].K};
		ok = fwrite(&th, sizeof th, 1, f) == 1;
		size_t rb = op_row_bytes(t[j].dtype, t[j].K);
		for (int64_t r = 0; ok && r < t[j].rows; r++) {
			row_fn(ctx, j, r, row);
			ok = fwrite(row, rb, 1, f) == 1;
		}
	}
	free(row);
	int e = errno;
	if (fclose(f) != 0 && ok) {
		ok = false;
		e = errno;
	}
	if (!ok) {
		remove(path);
		return tl_err_setsub(err, TL_EIO, e, "weights %s: write failed: %s", path, strerror(e));
	}
	return 0;
}

/* The model's tensors as the file describes them (caller frees). */
static op_wfile_tensor *model_wfile_tensors(const op_model *m)
{
	op_wfile_tensor *t = malloc((size_t)(m->n_tensors ? m->n_tensors : 1) * sizeof *t);
	for (int j = 0; t && j < m->n_tensors; j++)
		t[j] = (op_wfile_tensor){m->tensors[j].type, m->tensors[j].rows, m->tensors[j].K};
	return t;
}

static void layout_hash(const op_model *m, unsigned char out[32])
{
	op_wfile_tensor *t = model_wfile_tensors(m);
	if (t == NULL) { /* out of memory: a hash no file has */
		memset(out, 0xff, 32);
		return;
	}
	wfile_hash(m->a.d_model, m->a.vocab, m->a.n_layers, t, m->n_tensors, out);
	free(t);
}

/* Rows of the model's tensors, unpacked from the runtime layout. */
static void model_row(void *ctx, int j, int64_t r, void *out)
{
	const op_model *m = ctx;
	const fill_job *t = &m->tensors[j];
	op_wmat_unpack_row(t->type, t->dst, t->rows, t->K, r, out);
}

int op_model_save_weights(const op_model *m, const char *path, tl_err *err)
{
	op_wfile_tensor *t = model_wfile_tensors(m);
	if (t == NULL)
		return tl_err_set(err, TL_ENOMEM, "weights %s: out of memory", path);
	int rc = op_weights_write(path, m->a.d_model, m->a.vocab, m->a.n_layers, t, m->n_tensors,
	                          model_row, (void *)m, err);
	free(t);
	return rc;
}

static int load_weights(op_model *m, const char *path, tl_err *err)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return tl_err_setsub(err, TL_EIO, errno, "weights %s: cannot open: %s", path,
		                     strerror(errno));
	int rc = 0;
	char magic[8];
	uint32_t hdr[2];
	unsigned char lh[32], want[32];
	uint8_t *grp = NULL;
	if (fread(magic, 8, 1, f) != 1 || memcmp(magic, WFILE_MAGIC, 8) != 0) {
		rc = tl_err_set(err, TL_EPARSE, "weights %s: not a tailor weights file (no %s header)",
		                path, WFILE_MAGIC);
		goto out;
	}
	if (fread(hdr, sizeof hdr, 1, f) != 1 || fread(lh, 32, 1, f) != 1) {
		rc = tl_err_set(err, TL_EPARSE, "weights %s: truncated header", path);
		goto out;
	}
	if (hdr[0] != WFILE_VERSION) {
		rc = tl_err_set(err, TL_EVERSION, "weights %s: version %u, this runtime reads %u", path,
		                hdr[0], WFILE_VERSION);
		goto out;
	}
	layout_hash(m, want);
	if (hdr[1] != (uint32_t)m->n_tensors || memcmp(lh, want, 32) != 0) {
		/* name the first tensor that differs when the count matches */
		rc = tl_err_set(err, TL_EINVAL,
		                "weights %s: saved for another architecture or weight type (%u tensors, "
		                "this model has %d with other shapes or dtypes): save them from this "
		                "arch and --quant", path, hdr[1], m->n_tensors);
		goto out;
	}
	size_t max_rb = 0;
	for (int j = 0; j < m->n_tensors; j++) {
		size_t rb = op_row_bytes(m->tensors[j].type, m->tensors[j].K);
		if (rb > max_rb)
			max_rb = rb;
	}
	grp = malloc(FILL_GROUP_ROWS * (max_rb ? max_rb : 1));
	if (grp == NULL) {
		rc = tl_err_set(err, TL_ENOMEM, "weights %s: out of memory", path);
		goto out;
	}
	for (int j = 0; j < m->n_tensors; j++) {
		const fill_job *t = &m->tensors[j];
		wtensor_hdr th;
		if (fread(&th, sizeof th, 1, f) != 1 || th.dtype != (uint32_t)t->type ||
		    th.rows != t->rows || th.K != t->K) {
			rc = tl_err_set(err, TL_EPARSE, "weights %s: tensor %d of %d: truncated or not "
			                "the %s %lld x %lld the header promised", path, j, m->n_tensors,
			                op_dtype_name(t->type), (long long)t->rows, (long long)t->K);
			goto out;
		}
		size_t rb = op_row_bytes(t->type, t->K);
		int64_t gr = op_wmat_group_rows(t->type);
		for (int64_t r0 = 0; r0 < t->rows; r0 += gr) {
			int64_t n = t->rows - r0 < gr ? t->rows - r0 : gr;
			if (fread(grp, rb, (size_t)n, f) != (size_t)n) {
				rc = tl_err_set(err, TL_EPARSE, "weights %s: tensor %d of %d: truncated at row "
				                "%lld of %lld", path, j, m->n_tensors, (long long)r0,
				                (long long)t->rows);
				goto out;
			}
			op_wmat_pack(t->type, grp, r0, n, t->rows, t->K, t->dst);
		}
	}
	if (fgetc(f) != EOF)
		rc = tl_err_set(err, TL_EPARSE, "weights %s: trailing bytes after the last tensor", path);
out:
	free(grp);
	fclose(f);
	return rc;
}

/* ---- create ------------------------------------------------------------------------- */

/* Lay out (or count) the weights. jobs may be NULL when counting. */
static void layout_weights(op_model *m, arena *ar, fill_job *jobs, int *n_jobs)
{
	const op_arch *a = &m->a;
	const op_model_cfg *c = &m->cfg;
	int64_t d = a->d_model;
	uint64_t stream = 1;
	int nj = 0;
#define JOB(ptr, t, rows_, K_, ones_)                                                      \
	do {                                                                               \
		if (jobs)                                                                  \
			jobs[nj] = (fill_job){(ptr), (t), (rows_), (K_), c->init_std, (ones_), \
			                      stream};                                         \
		nj++;                                                                      \
		stream += (uint64_t)(rows_);                                               \
	} while (0)

	m->etype = mat_type(c->wtype, d);
	m->embed = take(ar, mat_bytes(m->etype, a->vocab, d));
	JOB(m->embed, m->etype, a->vocab, d, false);
	m->final_norm = take(ar, (size_t)d * sizeof(float));
	JOB(m->final_norm, OP_F32, 1, d, true);
	for (int i = 0; i < a->n_layers; i++) {
		const op_layer *l = &a->layers[i];
		layer_w *w = &m->lw[i];
		size_t off0 = ar->off;
		memset(w, 0, sizeof *w);
		w->norm = take(ar, (size_t)d * sizeof(float));
		JOB(w->norm, OP_F32, 1, d, true);
		/* Projections this layer owns, contiguous in group order so that
		 * a layer owning all of them runs one matrix product. */
		bool fusable = true;
		enum op_dtype t0 = mat_type(c->wtype, d);
		for (int g = 0; g < OP_NGROUPS; g++) {
			if (l->xowner[g] != i)
				continue; /* feature from another layer: no projection here */
			/* (the runtime layout of a fused matrix is its parts' end to
			 * end only when every part is whole groups of rows) */
			if (l->wowner[g] != i || l->proj_chmix[g] != OP_CH_DENSE ||
			    l->width[g] % op_wmat_group_rows(t0) != 0)
				fusable = false;
		}
		size_t fused_off = ar->off;
		for (int g = 0; g < OP_NGROUPS; g++) {
			if (l->xowner[g] != i)
				continue;
			if (l->wowner[g] != i) {
				/* shared weights: the owner laid them out already */
				const layer_w *o = &m->lw[l->wowner[g]];
				w->proj[g] = o->proj[g];
				w->ptype[g] = o->ptype[g];
				w->qknorm[g] = o->qknorm[g];
				w->fconv[g] = o->fconv[g];
				continue;
			}
			enum op_dtype t = l->proj_chmix[g] == OP_CH_DENSE ? t0 : OP_F32;
			w->ptype[g] = t;
			size_t pb = proj_bytes(a, l, g, t);
			/* fused groups are packed without alignment gaps */
			if (fusable) {
				w->proj[g] = ar->base ? ar->base + ar->off : NULL;
				ar->off += pb;
			} else {
				w->proj[g] = take(ar, pb);
			}
			if (l->proj_chmix[g] == OP_CH_DENSE)
				JOB(w->proj[g], t, l->width[g], d, false);
			else if (l->proj_chmix[g] == OP_CH_DIAGONAL)
				JOB(w->proj[g], OP_F32, 1, l->width[g], false);
			else /* block-diagonal: width rows of d / blocks inputs */
				JOB(w->proj[g], OP_F32, l->width[g], d / group_blocks(l, g), false);
		}
		if (fusable) {
			ar->off = fused_off + align64(ar->off - fused_off);
			w->fused = true;
			for (int g = 0; g < OP_NGROUPS; g++)
				if (l->xowner[g] == i)
					w->fused_rows += l->width[g];
		}
		for (int g = 0; g < OP_NGROUPS; g++) {
			if (l->xowner[g] != i || l->wowner[g] != i)
				continue;
			if (l->qk_norm && (g == OP_G_C || g == OP_G_B)) {
				w->qknorm[g] = take(ar, (size_t)l->head_dim * sizeof(float));
				JOB(w->qknorm[g], OP_F32, 1, l->head_dim, true);
			}
			if (l->conv[g]) {
				w->fconv[g] = take(ar, (size_t)l->width[g] * l->conv[g] * sizeof(float));
				JOB(w->fconv[g], OP_F32, l->width[g], l->conv[g], false);
			}
		}
		if (l->structure == OP_TOEPLITZ && l->len > 1) {
			w->kernel = take(ar, (size_t)l->inner * l->len * sizeof(float));
			JOB(w->kernel, OP_F32, l->inner, l->len, false);
		}
		w->otype = mat_type(c->wtype, l->inner);
		w->out = take(ar, mat_bytes(w->otype, d, l->inner));
		JOB(w->out, w->otype, d, l->inner, false);
		m->layer_wbytes[i] = ar->off - off0;
	}
#undef JOB
	*n_jobs = nj;
}

static op_attn_cfg attn_cfg(const op_layer *l)
{
	op_attn_cfg c = {
		.heads = l->heads,
		.kv_heads = l->kv_heads,
		.head_dim = l->head_dim,
		.mask = l->mask,
		.len = l->len ? l->len : 1,
		.nonlin = l->nonlin,
	};
	return c;
}

static op_linattn_cfg lin_cfg(const op_layer *l)
{
	op_linattn_cfg c = {l->heads, l->kv_heads, l->head_dim, l->nonlin};
	return c;
}

static op_ssm_cfg ssm_cfg(const op_layer *l)
{
	op_ssm_cfg c = {l->heads, (int)l->state, l->head_dim, l->nonlin};
	return c;
}

static void layout_state(op_model *m, arena *ar)
{
	const op_arch *a = &m->a;
	const op_model_cfg *c = &m->cfg;
	memset(m->has_sharer, 0, sizeof m->has_sharer);
	for (int i = 0; i < a->n_layers; i++)
		for (int g = 0; g < OP_NGROUPS; g++)
			if (a->layers[i].xowner[g] >= 0 && a->layers[i].xowner[g] != i)
				m->has_sharer[a->layers[i].xowner[g]][g] = true;
	for (int i = 0; i < a->n_layers; i++) {
		const op_layer *l = &a->layers[i];
		layer_s *s = &m->ls[i];
		size_t off0 = ar->off;
		memset(s, 0, sizeof *s);
		if (l->structure == OP_DENSE) {
			/* Rings of a windowed layer hold len + chunk - 1 positions so
			 * prefill chunks go through whole (see op_attn_prefill). */
			int64_t cap = op_attn_cache_positions(l->mask, l->len, c->ctx);
			if (l->mask == OP_MASK_WINDOW && cap < c->ctx) {
				cap = l->len + c->chunk - 1;
				if (cap > c->ctx)
					cap = c->ctx;
			}
			if (l->xowner[OP_G_B] == i) {
				void *mem = take(ar, op_kv_cache_bytes(c->kv_type, l->kv_heads, l->head_dim, cap));
				if (ar->base)
					op_kv_cache_init(&s->kc, mem, c->kv_type, l->kv_heads, l->head_dim, cap);
			}
			if (l->xowner[OP_G_V] == i) {
				void *mem = take(ar, op_kv_cache_bytes(c->kv_type, l->kv_heads, l->head_dim, cap));
				if (ar->base)
					op_kv_cache_init(&s->vc, mem, c->kv_type, l->kv_heads, l->head_dim, cap);
			}
		} else if (l->structure == OP_LOWRANK) {
			op_linattn_cfg lc = lin_cfg(l);
			bool full_share = l->xowner[OP_G_B] != i && l->xowner[OP_G_B] == l->xowner[OP_G_V];
			if (!full_share)
				s->lin = take(ar, op_linattn_state_bytes(&lc));
			/* A layer others fully share with keeps its state from before
			 * the chunk, so a sharer's prefill sees the same history. */
			if (m->has_sharer[i][OP_G_B] || m->has_sharer[i][OP_G_V])
				s->lin_pre = take(ar, 2 * op_linattn_state_bytes(&lc));
		} else if (l->structure == OP_SEMISEP) {
			op_ssm_cfg sc = ssm_cfg(l);
			s->ssm = take(ar, op_ssm_state_bytes(&sc));
		} else if (l->structure == OP_TOEPLITZ && l->len > 1) {
			s->conv = take(ar, op_shortconv_state_bytes((int)l->inner, l->len));
		}
		for (int g = 0; g < OP_NGROUPS; g++) {
			if (l->xowner[g] != i)
				continue;
			if (l->conv[g])
				s->fconv[g] = take(ar, op_fconv_state_bytes((int)l->width[g], l->conv[g]));
			if (m->has_sharer[i][g])
				s->keep[g] = take(ar, (size_t)c->chunk * l->width[g] * sizeof(float));
		}
		m->layer_sbytes[i] = ar->off - off0;
	}
}

/* Activations for layers [i0, i1) (the whole model: 0, n_layers). */
static void layout_activations_of(op_model *m, arena *ar, int i0, int i1)
{
	const op_arch *a = &m->a;
	int64_t T = m->cfg.chunk, d = a->d_model;
	int64_t max_feat = 0, max_w = 0, max_inner = 0;
	size_t max_mix = 0, max_mm = 0;
	for (int i = i0; i < i1; i++) {
		const op_layer *l = &a->layers[i];
		int64_t f = 0;
		for (int g = 0; g < OP_NGROUPS; g++) {
			if (l->width[g] > max_w)
				max_w = l->width[g];
			if (l->xowner[g] == i)
				f += l->width[g];
		}
		if (f > max_feat)
			max_feat = f;
		if (l->inner > max_inner)
			max_inner = l->inner;
		size_t s = 0;
		if (l->structure == OP_LOWRANK) {
			op_linattn_cfg lc = lin_cfg(l);
			s = op_linattn_scratch_bytes(&lc) + op_linattn_state_bytes(&lc);
		} else if (l->structure == OP_SEMISEP) {
			op_ssm_cfg sc = ssm_cfg(l);
			s = op_ssm_scratch_bytes(&sc);
		}
		if (s > max_mix)
			max_mix = s;
		size_t mm = op_matmul_scratch_bytes(m->lw[i].fused ? m->lw[i].ptype[OP_G_C] : m->cfg.wtype,
		                                    d, T);
		size_t mo = op_matmul_scratch_bytes(m->lw[i].otype, l->inner, T);
		if (mm > max_mm)
			max_mm = mm;
		if (mo > max_mm)
			max_mm = mo;
	}
	size_t mh = op_matmul_scratch_bytes(m->etype, d, 1);
	if (mh > max_mm)
		max_mm = mh;
	for (int t = OP_F32; t <= OP_Q4_0; t++) {
		size_t s = op_matmul_scratch_bytes((enum op_dtype)t, max_inner > d ? max_inner : d, T);
		if (s > max_mm)
			max_mm = s;
	}
	m->x = take(ar, (size_t)(T * d) * sizeof(float));
	m->xn = take(ar, (size_t)(T * d) * sizeof(float));
	m->feat = take(ar, (size_t)(T * max_feat) * sizeof(float));
	for (int g = 0; g < OP_NGROUPS; g++)
		m->grp[g] = take(ar, (size_t)(T * max_w) * sizeof(float));
	m->tmp = take(ar, (size_t)(T * max_w) * sizeof(float));
	m->y = take(ar, (size_t)(T * max_inner) * sizeof(float));
	m->o = take(ar, (size_t)(T * d) * sizeof(float));
	m->logits = take(ar, (size_t)a->vocab * sizeof(float));
	m->mix_scratch = take(ar, max_mix);
	m->mm_scratch = take(ar, max_mm);
}

static void layout_activations(op_model *m, arena *ar)
{
	layout_activations_of(m, ar, 0, m->a.n_layers);
}

static void *alloc_block(size_t n)
{
	void *p = NULL;
	if (n == 0)
		n = 64;
	if (posix_memalign(&p, 64, n) != 0)
		return NULL;
	return p;
}

int op_model_create(op_model **out, const op_arch *a, const op_model_cfg *cfg, op_pool *pool,
                    tl_err *err)
{
	*out = NULL;
	if (cfg->ctx < 1 || cfg->chunk < 1)
		return tl_err_set(err, TL_EINVAL, "model: ctx %lld and chunk %d must be >= 1",
		                  (long long)cfg->ctx, cfg->chunk);
	if (cfg->wtype != OP_F32 && cfg->wtype != OP_Q8_0 && cfg->wtype != OP_Q4_0 &&
	    cfg->wtype != OP_F16)
		return tl_err_set(err, TL_EINVAL, "model: unsupported weight type %d", cfg->wtype);
	op_model *m = calloc(1, sizeof *m);
	if (m == NULL)
		return tl_err_set(err, TL_ENOMEM, "model: out of memory");
	m->a = *a;
	m->cfg = *cfg;
	if (m->cfg.chunk > m->cfg.ctx)
		m->cfg.chunk = (int)m->cfg.ctx;
	m->pool = pool;

	/* weights: count, allocate, cut, fill */
	arena ar = {0};
	int n_jobs = 0;
	layout_weights(m, &ar, NULL, &n_jobs);
	m->wbytes = ar.off;
	m->wmem = alloc_block(m->wbytes);
	fill_job *jobs = calloc((size_t)n_jobs, sizeof *jobs);
	if (m->wmem == NULL || jobs == NULL) {
		free(jobs);
		op_model_free(m);
		return tl_err_set(err, TL_ENOMEM, "model: out of memory for %zu bytes of weights",
		                  ar.off);
	}
	ar = (arena){m->wmem, 0};
	layout_weights(m, &ar, jobs, &n_jobs);

	m->tensors = jobs;
	m->n_tensors = n_jobs;
	if (cfg->weights_path) {
		if (load_weights(m, cfg->weights_path, err) < 0) {
			op_model_free(m);
			return err->code;
		}
		goto weights_done;
	}
	int64_t max_k = 0;
	for (int j = 0; j < n_jobs; j++)
		if (jobs[j].K > max_k)
			max_k = jobs[j].K;
	int nth = pool ? op_pool_size(pool) : 1;
	fill_task ft = {jobs, n_jobs, cfg->seed, max_k, malloc((size_t)(nth * max_k) * sizeof(float)),
	                malloc((size_t)nth * FILL_GROUP_BYTES(max_k))};
	if (ft.rowbuf == NULL || ft.grpbuf == NULL) {
		free(ft.rowbuf);
		free(ft.grpbuf);
		op_model_free(m);
		return tl_err_set(err, TL_ENOMEM, "model: out of memory");
	}
	if (pool)
		op_pool_run(pool, fill_rows, &ft);
	else
		fill_rows(&ft, 0, 1);
	free(ft.rowbuf);
	free(ft.grpbuf);
weights_done:

	/* state and activations */
	ar = (arena){0};
	layout_state(m, &ar);
	m->sbytes = ar.off;
	m->smem = alloc_block(m->sbytes);
	ar = (arena){0};
	layout_activations(m, &ar);
	m->abytes = ar.off;
	m->amem = alloc_block(m->abytes);
	if (m->smem == NULL || m->amem == NULL) {
		size_t sb = m->sbytes, ab = m->abytes;
		op_model_free(m);
		return tl_err_set(err, TL_ENOMEM,
		                  "model: out of memory for %zu bytes of state (context %lld) and %zu of "
		                  "activations", sb, (long long)cfg->ctx, ab);
	}
	ar = (arena){m->smem, 0};
	layout_state(m, &ar);
	ar = (arena){m->amem, 0};
	layout_activations(m, &ar);
	op_model_reset(m);
	*out = m;
	return 0;
}

void op_model_free(op_model *m)
{
	if (m == NULL)
		return;
	free(m->wmem);
	free(m->tensors);
	free(m->smem);
	free(m->amem);
	free(m);
}

op_model_bytes op_model_get_bytes(const op_model *m)
{
	op_model_bytes b = {m->wbytes, m->sbytes, m->abytes};
	return b;
}

int op_model_layer_bytes(const op_model *m, int i, op_model_bytes *out)
{
	if (i < 0 || i >= m->a.n_layers)
		return TL_EINVAL;
	/* the activations a model of this layer alone would need: a model's
	 * are those of its most demanding layer (each buffer is sized by the
	 * widest layer that uses it) */
	op_model *tmp = malloc(sizeof *tmp); /* the counting pass writes (NULL) pointers */
	if (tmp == NULL)
		return TL_ENOMEM;
	memcpy(tmp, m, sizeof *tmp);
	arena ar = {0};
	layout_activations_of(tmp, &ar, i, i + 1);
	free(tmp);
	out->weights = m->layer_wbytes[i];
	out->state = m->layer_sbytes[i];
	out->activations = ar.off;
	return 0;
}

void op_model_time_layers(op_model *m, double *ms)
{
	m->layer_ms = ms;
}

int64_t op_model_pos(const op_model *m)
{
	return m->pos;
}

void op_model_reset(op_model *m)
{
	/* Zero the whole state block: recurrent states start at 0, conv
	 * buffers hold zeros before the first token (causal padding). */
	memset(m->smem, 0, m->sbytes);
	for (int i = 0; i < m->a.n_layers; i++) {
		if (m->ls[i].kc.data)
			op_kv_cache_reset(&m->ls[i].kc);
		if (m->ls[i].vc.data)
			op_kv_cache_reset(&m->ls[i].vc);
	}
	m->pos = 0;
}

/* ---- forward ------------------------------------------------------------------------ */

/* Y (T, rows) = X (T, K) . W^T for one stored matrix. */
static void matmul(op_model *m, enum op_dtype t, const void *W, int64_t rows, int64_t K,
                   const float *X, int64_t T, float *Y)
{
	op_wmat_matmul(m->pool, t, W, rows, K, X, T, Y, m->mm_scratch);
}

/* Group g's features for T rows of xn into dst (T, width). */
static void project(op_model *m, const op_layer *l, const layer_w *w, int g, int T, float *dst)
{
	int64_t d = m->a.d_model, W = l->width[g];
	const float *xn = m->xn;
	switch (l->proj_chmix[g]) {
	case OP_CH_DIAGONAL: {
		const float *s = w->proj[g];
		for (int t = 0; t < T; t++)
			for (int64_t c = 0; c < W; c++)
				dst[t * W + c] = xn[t * d + c] * s[c];
		break;
	}
	case OP_CH_HEADS: {
		/* block-diagonal: block b maps x[b*d/nb ..] to y[b*W/nb ..] */
		int64_t nb = group_blocks(l, g), bi = d / nb, bo = W / nb;
		const float *wb = w->proj[g];
		for (int t = 0; t < T; t++)
			for (int64_t b = 0; b < nb; b++)
				for (int64_t r = 0; r < bo; r++) {
					const float *row = wb + (b * bo + r) * bi;
					const float *xin = xn + t * d + b * bi;
					float acc = 0;
					for (int64_t k = 0; k < bi; k++)
						acc += row[k] * xin[k];
					dst[t * W + b * bo + r] = acc;
				}
		break;
	}
	default:
		matmul(m, w->ptype[g], w->proj[g], W, d, xn, T, dst);
	}
}

/* Dense attention of T rows over the pool: the caches are appended once,
 * here, then the threads split the KV heads (or query tiles) of what was
 * appended (op_attn_job_run); the same bits as op_attn_prefill / _step. */
static int attn_pooled(op_model *m, float *y, const float *q, const float *k, const float *v,
                       op_kv_cache *kc, op_kv_cache *vc, const op_attn_cfg *ac, int T,
                       int64_t pos0, tl_err *err)
{
	size_t qrow = (size_t)ac->heads * ac->head_dim, kvrow = (size_t)ac->kv_heads * ac->head_dim;
	for (int t = 0; t < T;) {
		int n = op_attn_append(kc, vc, k ? k + (size_t)t * kvrow : NULL,
		                       v ? v + (size_t)t * kvrow : NULL, ac, T - t, pos0 + t, err);
		if (n < 0)
			return n;
		op_attn_job job = {y + (size_t)t * qrow, q + (size_t)t * qrow, kc, vc, ac, n, pos0 + t};
		op_pool_run(m->pool, op_attn_job_run, &job);
		t += n;
	}
	return 0;
}

/* The gate of a diagonal layer over the pool: an exp per element, the one
 * elementwise step of a decode that costs as much as a pool round trip. */
typedef struct glu_job {
	float *y;
	const float *g, *u;
	size_t n;
	int act;
} glu_job;

static void glu_run(void *arg, int ith, int nth)
{
	const glu_job *j = arg;
	size_t units = (j->n + 15) / 16;
	size_t a = units * (size_t)ith / (size_t)nth * 16, b = units * (size_t)(ith + 1) / (size_t)nth * 16;
	if (b > j->n)
		b = j->n;
	if (b > a)
		op_glu(j->y + a, j->g + a, j->u + a, b - a, j->act);
}

/* One layer on T rows at position pos0; m->x updated in place. */
static int layer_forward(op_model *m, int i, int T, int64_t pos0, tl_err *err)
{
	const op_arch *a = &m->a;
	const op_layer *l = &a->layers[i];
	const layer_w *w = &m->lw[i];
	layer_s *s = &m->ls[i];
	int64_t d = a->d_model;
	float *f[OP_NGROUPS] = {0};

	op_rmsnorm(m->xn, m->x, w->norm, T, (int)d, m->cfg.norm_eps);

	/* featurize: computed groups into m->grp[g] */
	if (w->fused) {
		int64_t rows = w->fused_rows;
		matmul(m, w->ptype[OP_G_C], w->proj[OP_G_C], rows, d, m->xn, T, m->feat);
		int64_t off = 0;
		for (int g = 0; g < OP_NGROUPS; g++) {
			if (l->xowner[g] != i)
				continue;
			int64_t W = l->width[g];
			for (int t = 0; t < T; t++)
				memcpy(m->grp[g] + t * W, m->feat + t * rows + off, (size_t)W * sizeof(float));
			off += W;
		}
	} else {
		for (int g = 0; g < OP_NGROUPS; g++)
			if (l->xowner[g] == i)
				project(m, l, w, g, T, m->grp[g]);
	}
	for (int g = 0; g < OP_NGROUPS; g++) {
		if (l->xowner[g] != i)
			continue;
		f[g] = m->grp[g];
		int W = (int)l->width[g];
		if (l->conv[g]) {
			if (T == 1)
				op_fconv_step(m->tmp, f[g], w->fconv[g], s->fconv[g], W, l->conv[g]);
			else
				op_fconv_prefill(m->tmp, f[g], w->fconv[g], s->fconv[g], T, W, l->conv[g]);
			memcpy(f[g], m->tmp, (size_t)T * W * sizeof(float));
		}
		if (l->feat == OP_FEAT_QKV && (g == OP_G_C || g == OP_G_B)) {
			int nh = g == OP_G_C ? l->heads : l->kv_heads;
			if (w->qknorm[g])
				op_rmsnorm(f[g], f[g], w->qknorm[g], T * nh, l->head_dim, m->cfg.norm_eps);
			if (l->rope)
				op_rope(f[g], T, nh, l->head_dim, pos0, (float)a->rope_theta);
		}
		if (m->ls[i].keep[g])
			memcpy(s->keep[g], f[g], (size_t)T * W * sizeof(float));
	}
	/* shared features retained by their owner for this chunk */
	for (int g = 0; g < OP_NGROUPS; g++)
		if (l->xowner[g] >= 0 && l->xowner[g] != i)
			f[g] = m->ls[l->xowner[g]].keep[g];

	float *y = m->y;
	int rc = 0;
	switch (l->structure) {
	case OP_DENSE: {
		op_attn_cfg ac = attn_cfg(l);
		op_kv_cache *kc = &m->ls[l->xowner[OP_G_B]].kc, *vc = &m->ls[l->xowner[OP_G_V]].vc;
		const float *k = l->xowner[OP_G_B] == i ? f[OP_G_B] : NULL;
		const float *v = l->xowner[OP_G_V] == i ? f[OP_G_V] : NULL;
		rc = attn_pooled(m, y, f[OP_G_C], k, v, kc, vc, &ac, T, pos0, err);
		break;
	}
	case OP_LOWRANK: {
		op_linattn_cfg lc = lin_cfg(l);
		size_t sb = op_linattn_state_bytes(&lc);
		bool full_share = l->xowner[OP_G_B] != i && l->xowner[OP_G_B] == l->xowner[OP_G_V];
		if (full_share) {
			layer_s *o = &m->ls[l->xowner[OP_G_B]];
			if (T == 1) {
				op_linattn_step_shared(y, f[OP_G_C], o->lin, &lc);
			} else {
				/* the owner's state before this chunk, run again on a copy */
				float *copy = (float *)((char *)o->lin_pre + sb);
				memcpy(copy, o->lin_pre, sb);
				op_linattn_prefill(y, f[OP_G_C], f[OP_G_B], f[OP_G_V], copy, &lc, T,
				                   m->mix_scratch);
			}
		} else {
			if (s->lin_pre)
				memcpy(s->lin_pre, s->lin, sb);
			if (T == 1)
				op_linattn_step(y, f[OP_G_C], f[OP_G_B], f[OP_G_V], s->lin, &lc);
			else
				op_linattn_prefill(y, f[OP_G_C], f[OP_G_B], f[OP_G_V], s->lin, &lc, T,
				                   m->mix_scratch);
		}
		break;
	}
	case OP_SEMISEP: {
		op_ssm_cfg sc = ssm_cfg(l);
		if (T == 1)
			op_ssm_step(y, f[OP_G_C], f[OP_G_B], f[OP_G_V], f[OP_G_A], s->ssm, &sc);
		else
			op_ssm_prefill(y, f[OP_G_C], f[OP_G_B], f[OP_G_V], f[OP_G_A], s->ssm, &sc, T,
			               m->mix_scratch);
		break;
	}
	case OP_TOEPLITZ:
		if (T == 1)
			op_shortconv_step(y, f[OP_G_C], f[OP_G_B], f[OP_G_V], w->kernel, s->conv,
			                  (int)l->inner, l->len);
		else
			op_shortconv_prefill(y, f[OP_G_C], f[OP_G_B], f[OP_G_V], w->kernel, s->conv, T,
			                     (int)l->inner, l->len);
		break;
	case OP_DIAGONAL: {
		glu_job gj = {y, f[OP_G_C], f[OP_G_V], (size_t)T * l->inner, l->nonlin};
		op_pool_run(m->pool, glu_run, &gj);
		break;
	}
	}
	if (rc < 0)
		return rc;
	matmul(m, w->otype, w->out, d, l->inner, y, T, m->o);
	for (int64_t k = 0; k < T * d; k++)
		m->x[k] += m->o[k];
	return 0;
}

static void embed_rows(op_model *m, const int32_t *tokens, int T)
{
	int64_t d = m->a.d_model;
	for (int t = 0; t < T; t++)
		op_wmat_row(m->etype, m->embed, m->a.vocab, d, tokens[t], m->x + t * d);
}

/* Logits of row `row` of m->x. */
static void head(op_model *m, int row, float *logits)
{
	int64_t d = m->a.d_model;
	op_rmsnorm(m->xn, m->x + (int64_t)row * d, m->final_norm, 1, (int)d, m->cfg.norm_eps);
	/* Tied head: the embedding matrix is the output projection. (An untied
	 * head would be one more vocab x d matrix; the runtime ties it until a
	 * trained untied model needs the other: the cost is the same.) */
	matmul(m, m->etype, m->embed, m->a.vocab, d, m->xn, 1, logits);
}

static double clock_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static int forward(op_model *m, const int32_t *tokens, int T, float *logits, tl_err *err)
{
	double *ms = m->layer_ms;
	int n = m->a.n_layers;
	double t0 = ms ? clock_ms() : 0;
	embed_rows(m, tokens, T);
	for (int i = 0; i < n; i++) {
		double t1 = ms ? clock_ms() : 0;
		if (ms)
			ms[n] += t1 - t0; /* the embedding, or the layer loop's own time */
		if (layer_forward(m, i, T, m->pos, err) < 0)
			return TL_EINVAL;
		if (ms) {
			t0 = clock_ms();
			ms[i] += t0 - t1;
		}
	}
	m->pos += T;
	if (logits)
		head(m, T - 1, logits);
	if (ms)
		ms[n] += clock_ms() - t0;
	return 0;
}

static int check_tokens(const op_model *m, const int32_t *tokens, int64_t n, tl_err *err)
{
	for (int64_t t = 0; t < n; t++)
		if (tokens[t] < 0 || (uint32_t)tokens[t] >= m->a.vocab)
			return tl_err_set(err, TL_EINVAL, "model: token %lld is %d, outside the vocabulary "
			                  "(0..%u)", (long long)t, tokens[t], m->a.vocab - 1);
	if (m->pos + n > m->cfg.ctx)
		return tl_err_set(err, TL_EINVAL,
		                  "model: %lld more tokens at position %lld exceed the context of %lld "
		                  "(give a larger context)", (long long)n, (long long)m->pos,
		                  (long long)m->cfg.ctx);
	return 0;
}

int op_model_prefill(op_model *m, const int32_t *tokens, int64_t n, float *logits, tl_err *err)
{
	if (n < 1)
		return tl_err_set(err, TL_EINVAL, "model: prefill of %lld tokens", (long long)n);
	if (check_tokens(m, tokens, n, err) < 0)
		return TL_EINVAL;
	for (int64_t at = 0; at < n; at += m->cfg.chunk) {
		int T = (int)(n - at < m->cfg.chunk ? n - at : m->cfg.chunk);
		if (forward(m, tokens + at, T, at + T == n ? logits : NULL, err) < 0)
			return TL_EINVAL;
	}
	return 0;
}

int op_model_decode(op_model *m, int32_t token, float *logits, tl_err *err)
{
	if (check_tokens(m, &token, 1, err) < 0)
		return TL_EINVAL;
	return forward(m, &token, 1, logits, err);
}

int op_model_fill_depth(op_model *m, int64_t n, tl_err *err)
{
	if (n < 0 || m->pos + n > m->cfg.ctx)
		return tl_err_set(err, TL_EINVAL,
		                  "model: depth %lld at position %lld exceeds the context of %lld",
		                  (long long)n, (long long)m->pos, (long long)m->cfg.ctx);
	/* Caches get real rows (small values, so attention has ordinary scores);
	 * recurrent states cost the same at any depth and are left as they are. */
	float *row = m->tmp;
	for (int i = 0; i < m->a.n_layers; i++) {
		layer_s *s = &m->ls[i];
		op_kv_cache *c[2] = {s->kc.data ? &s->kc : NULL, s->vc.data ? &s->vc : NULL};
		for (int h = 0; h < 2; h++) {
			if (c[h] == NULL)
				continue;
			int64_t W = (int64_t)c[h]->kv_heads * c[h]->head_dim;
			for (int64_t k = 0; k < W; k++)
				row[k] = 0.01f * (float)((k * 7 + i) % 13 - 6);
			for (int64_t t = 0; t < n; t++)
				op_kv_cache_append(c[h], row, 1);
		}
	}
	m->pos += n;
	return 0;
}

int32_t op_argmax(const float *logits, int n)
{
	int32_t best = 0;
	for (int i = 1; i < n; i++)
		if (logits[i] > logits[best])
			best = i;
	return best;
}
