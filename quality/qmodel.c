/*
 * quality/qmodel.c: the trainer's model: parameters in the runtime's tensor
 * order, the training forward (f32, every structure materialized at training
 * lengths) and its backward pass, layer by layer.
 *
 * The forward is the math of operators/model.c and operators/mix_*.c, written
 * again for a batch of whole sequences (positions 0..T-1, empty states):
 *   x = E[tok];  per layer i:  xn = rmsnorm(x) * g_i;
 *     features F_g = proj_g(xn) [-> causal depthwise conv] [-> per-head
 *     RMSNorm, RoPE on C, B of qkv layers]; a shared group reads its owner's F;
 *     y = structure(F);  x += y . Wout^T
 *   logits = rmsnorm(x) * g_f . E^T (tied head); loss = mean cross-entropy.
 * tests/test_quality.c holds it to the runtime (same weights file, same
 * logits) and every backward to central finite differences.
 *
 * Workload: a step at width 128, depth 8, 8 x 256 tokens is ~3 GFLOP of
 * products (qual_gemm) plus O(T^2) attention; activations of every layer are
 * kept for the backward (a few MB per layer at that size).
 *
 * Threads: every pool job below splits units (rows, (sequence, head) pairs,
 * channel blocks) so that each output element has one writer that sums its
 * terms in a fixed order: bit-identical results for any thread count.
 */
#include "quality.h"
#include "qual_int.h"
#include "op_model.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TENSORS (2 + OP_MAX_LAYERS * 16)

typedef struct qtensor {
	int64_t off, rows, cols;
	bool decay;
	int init;     /* 0 random (std), 1 ones */
	float std;
} qtensor;

typedef struct qlayer {
	/* parameter offsets (the owner's for shared weights), -1 none */
	int64_t norm, proj[OP_NGROUPS], qkn[OP_NGROUPS], fconv[OP_NGROUPS], kernel, out;
	/* activations, (N rows = batch * T) */
	float *xin, *rinv, *xn;
	float *P[OP_NGROUPS];   /* projected features (owned groups)            */
	float *Fc[OP_NGROUPS];  /* after the featurizer conv (== P without one)  */
	float *qr[OP_NGROUPS];  /* QK-norm inverse RMS per (row, head)            */
	float *F[OP_NGROUPS];   /* final features (== Fc without QK-norm / RoPE)  */
	float *dF[OP_NGROUPS];  /* their gradients                               */
	float *y;               /* (N, inner) structure output                   */
	float *aux;             /* dense: probabilities; toeplitz: z            */
} qlayer;

struct qual_model {
	op_arch a;
	qual_model_cfg cfg;
	int64_t d, V, Nmax;
	qtensor t[MAX_TENSORS];
	int nt;
	int64_t embed, fnorm;
	qlayer L[OP_MAX_LAYERS];
	float *params, *grads;
	int64_t np;
	void *amem;
	/* scratch */
	float *x, *dx, *dxn, *dy, *tmp, *wt, *yt;
	float *hx, *hxn, *hr, *logits, *dlogits, *rowloss;
	float *rope_cos, *rope_sin, *pe;
	float *scr;       /* per-unit structure scratch */
	int64_t scr_unit; /* floats per unit            */
	int64_t max_w, max_inner;
	/* last forward */
	const int32_t *tok, *tgt;
	int32_t *tokbuf, *tgtbuf;
	int B, T;
	int64_t count;
};

qual_model_cfg qual_model_cfg_default(void)
{
	qual_model_cfg c = {.max_batch = 8, .seq_len = 256, .seed = 1, .init_std = 0.02f,
	                    .norm_eps = 1e-5f, .autoencode = false};
	return c;
}

static int64_t group_blocks(const op_layer *l, int g)
{
	if (l->feat == OP_FEAT_QKV)
		return g == OP_G_C ? l->heads : l->kv_heads;
	if (l->feat == OP_FEAT_CBVA)
		return l->heads;
	return 1;
}

/* ---- layout ---------------------------------------------------------------------- */

static int64_t add_tensor(qual_model *m, int64_t rows, int64_t cols, bool decay, int init,
                          float std)
{
	qtensor *t = &m->t[m->nt++];
	t->off = m->np;
	t->rows = rows;
	t->cols = cols;
	t->decay = decay;
	t->init = init;
	t->std = std;
	m->np += rows * cols;
	return t->off;
}

static void layout_params(qual_model *m)
{
	const op_arch *a = &m->a;
	int64_t d = a->d_model;
	float s = m->cfg.init_std;
	m->np = 0;
	m->nt = 0;
	m->embed = add_tensor(m, a->vocab, d, true, 0, s);
	m->fnorm = add_tensor(m, 1, d, false, 1, 0);
	for (int i = 0; i < a->n_layers; i++) {
		const op_layer *l = &a->layers[i];
		qlayer *q = &m->L[i];
		q->norm = add_tensor(m, 1, d, false, 1, 0);
		for (int g = 0; g < OP_NGROUPS; g++) {
			q->proj[g] = q->qkn[g] = q->fconv[g] = -1;
			if (l->xowner[g] != i)
				continue;
			if (l->wowner[g] != i) {
				const qlayer *o = &m->L[l->wowner[g]];
				q->proj[g] = o->proj[g];
				q->qkn[g] = o->qkn[g];
				q->fconv[g] = o->fconv[g];
				continue;
			}
			int64_t W = l->width[g];
			if (l->proj_chmix[g] == OP_CH_DENSE)
				q->proj[g] = add_tensor(m, W, d, true, 0, s);
			else if (l->proj_chmix[g] == OP_CH_DIAGONAL)
				q->proj[g] = add_tensor(m, 1, W, false, 1, 0);
			else
				q->proj[g] = add_tensor(m, W, d / group_blocks(l, g), true, 0, s);
		}
		for (int g = 0; g < OP_NGROUPS; g++) {
			if (l->xowner[g] != i || l->wowner[g] != i)
				continue;
			if (l->qk_norm && (g == OP_G_C || g == OP_G_B))
				q->qkn[g] = add_tensor(m, 1, l->head_dim, false, 1, 0);
			if (l->conv[g])
				q->fconv[g] = add_tensor(m, l->width[g], l->conv[g], false, 0,
				                         1.0f / sqrtf(3.0f * (float)l->conv[g]));
		}
		q->kernel = -1;
		if (l->structure == OP_TOEPLITZ && l->len > 1)
			q->kernel = add_tensor(m, l->inner, l->len, false, 0,
			                       1.0f / sqrtf(3.0f * (float)l->len));
		q->out = add_tensor(m, d, l->inner, true, 0,
		                    s / sqrtf(2.0f * (float)a->n_layers));
	}
}

static void init_params(qual_model *m)
{
	uint64_t stream = 1;
	for (int j = 0; j < m->nt; j++) {
		const qtensor *t = &m->t[j];
		for (int64_t r = 0; r < t->rows; r++) {
			float *row = m->params + t->off + r * t->cols;
			tl_rng rng;
			tl_rng_seed(&rng, m->cfg.seed, stream + (uint64_t)r);
			for (int64_t k = 0; k < t->cols; k++)
				row[k] = t->init == 1 ? 1.0f
				                      : (tl_rng_float(&rng) - 0.5f) * t->std * 3.4641016f;
		}
		stream += (uint64_t)t->rows;
	}
}

/* A bump allocator over one block: pass 1 counts (base NULL), pass 2 cuts. */
typedef struct arena {
	char *base;
	size_t off;
} arena;

static float *take(arena *ar, int64_t nfloats)
{
	void *p = ar->base ? ar->base + ar->off : NULL;
	ar->off += ((size_t)nfloats * sizeof(float) + 63) & ~(size_t)63;
	return p;
}

static int64_t struct_scratch(const op_layer *l, int64_t T)
{
	/* floats per unit: dense: a row of dP; lowrank: phi(K), d phi(K), phi(Q);
	 * semisep: cum and d cum in double (4 floats per position) */
	switch (l->structure) {
	case OP_DENSE: return T;
	case OP_LOWRANK: return 3 * T * l->head_dim + l->head_dim;
	case OP_SEMISEP: return 4 * T;
	default: return 0;
	}
}

static void layout_acts(qual_model *m, arena *ar)
{
	const op_arch *a = &m->a;
	int64_t N = m->Nmax, d = m->d, T = m->cfg.seq_len, Bm = m->cfg.max_batch;
	int64_t max_w = 0, max_inner = 0, max_mat = a->vocab * d, max_rows = a->vocab, su = 0;
	int64_t max_units = 0;
	for (int i = 0; i < a->n_layers; i++) {
		const op_layer *l = &a->layers[i];
		qlayer *q = &m->L[i];
		q->xin = take(ar, N * d);
		q->rinv = take(ar, N);
		q->xn = take(ar, N * d);
		for (int g = 0; g < OP_NGROUPS; g++) {
			q->P[g] = q->Fc[g] = q->F[g] = q->dF[g] = q->qr[g] = NULL;
			if (l->width[g] > max_w)
				max_w = l->width[g];
			if (l->xowner[g] != i)
				continue;
			int64_t W = l->width[g];
			q->P[g] = take(ar, N * W);
			q->Fc[g] = l->conv[g] ? take(ar, N * W) : q->P[g];
			bool qk = l->feat == OP_FEAT_QKV && (g == OP_G_C || g == OP_G_B);
			bool has_qkn = qk && q->qkn[g] >= 0;
			if (has_qkn)
				q->qr[g] = take(ar, N * group_blocks(l, g));
			q->F[g] = (has_qkn || (qk && l->rope)) ? take(ar, N * W) : q->Fc[g];
			q->dF[g] = take(ar, N * W);
			if (W * d > max_mat)
				max_mat = W * d;
			if (W > max_rows)
				max_rows = W;
		}
		q->y = take(ar, N * l->inner);
		q->aux = NULL;
		if (l->structure == OP_DENSE)
			q->aux = take(ar, Bm * l->heads * T * T);
		else if (l->structure == OP_TOEPLITZ)
			q->aux = take(ar, N * l->inner);
		if (l->inner > max_inner)
			max_inner = l->inner;
		if (l->inner * d > max_mat)
			max_mat = l->inner * d;
		if (l->inner > max_rows)
			max_rows = l->inner;
		int64_t s = struct_scratch(l, T);
		if (s > su)
			su = s;
		int64_t units = Bm * (l->heads > l->kv_heads ? l->heads : l->kv_heads);
		if (units > max_units)
			max_units = units;
	}
	if (d > max_rows)
		max_rows = d;
	m->max_w = max_w;
	m->max_inner = max_inner;
	int64_t wide = max_w > max_inner ? max_w : max_inner;
	if (wide < d)
		wide = d;
	m->x = take(ar, N * d);
	m->dx = take(ar, N * d);
	m->dxn = take(ar, N * d);
	m->dy = take(ar, N * wide);
	m->tmp = take(ar, N * wide);
	m->wt = take(ar, max_mat);
	m->yt = take(ar, N * (max_rows > wide ? max_rows : wide));
	m->hx = take(ar, N * d);
	m->hxn = take(ar, N * d);
	m->hr = take(ar, N);
	m->logits = take(ar, N * a->vocab);
	m->dlogits = take(ar, N * a->vocab);
	m->rowloss = take(ar, N);
	int64_t half = 1;
	for (int i = 0; i < a->n_layers; i++)
		if (a->layers[i].head_dim / 2 > half)
			half = a->layers[i].head_dim / 2;
	m->rope_cos = take(ar, T * half);
	m->rope_sin = take(ar, T * half);
	m->pe = take(ar, T * d);
	m->scr_unit = su;
	m->scr = take(ar, (max_units > 0 ? max_units : 1) * (su > 0 ? su : 1));
	m->tokbuf = (int32_t *)take(ar, N);
	m->tgtbuf = (int32_t *)take(ar, N);
}

int qual_model_create(qual_model **out, const op_arch *a, const qual_model_cfg *cfg,
                      tl_err *err)
{
	*out = NULL;
	if (cfg->max_batch < 1 || cfg->seq_len < 1 || cfg->seq_len > 65536)
		return tl_err_set(err, TL_EINVAL, "trainer: batch %d and sequence %d must be >= 1 "
		                  "(sequence <= 65536)", cfg->max_batch, cfg->seq_len);
	int rope_hd = 0;
	for (int i = 0; i < a->n_layers; i++) {
		const op_layer *l = &a->layers[i];
		if (!(l->feat == OP_FEAT_QKV && l->rope))
			continue;
		if (l->head_dim % 2 || (rope_hd && l->head_dim != rope_hd))
			return tl_err_set(err, TL_EINVAL, "trainer: layer %d: RoPE needs an even head dim, "
			                  "the same in every RoPE layer (%d here)", i, l->head_dim);
		rope_hd = l->head_dim;
	}
	qual_model *m = calloc(1, sizeof *m);
	if (m == NULL)
		return tl_err_set(err, TL_ENOMEM, "trainer: out of memory");
	m->a = *a;
	m->cfg = *cfg;
	m->d = a->d_model;
	m->V = a->vocab;
	m->Nmax = (int64_t)cfg->max_batch * cfg->seq_len;
	layout_params(m);
	m->params = malloc((size_t)m->np * sizeof(float));
	m->grads = calloc((size_t)m->np, sizeof(float));
	arena ar = {0};
	layout_acts(m, &ar);
	size_t abytes = ar.off;
	if (posix_memalign(&m->amem, 64, abytes ? abytes : 64) != 0)
		m->amem = NULL;
	if (m->params == NULL || m->grads == NULL || m->amem == NULL) {
		qual_model_free(m);
		return tl_err_set(err, TL_ENOMEM, "trainer: out of memory for %lld parameters and %zu "
		                  "bytes of activations (lower --batch or the sequence length)",
		                  (long long)m->np, abytes);
	}
	memset(m->amem, 0, abytes);
	ar = (arena){m->amem, 0};
	layout_acts(m, &ar);
	init_params(m);
	/* the fixed position code of the autoencoder's decoder (MAD compression) */
	int64_t d = m->d;
	for (int t = 0; t < cfg->seq_len; t++)
		for (int64_t c = 0; c < d; c++) {
			int64_t k = c < d / 2 ? c : c - d / 2;
			double f = pow(10000.0, -2.0 * (double)k / (double)d);
			m->pe[t * d + c] = (float)(c < d / 2 ? sin(t * f) : cos(t * f));
		}
	*out = m;
	return 0;
}

void qual_model_free(qual_model *m)
{
	if (m == NULL)
		return;
	free(m->params);
	free(m->grads);
	free(m->amem);
	free(m);
}

const op_arch *qual_model_arch(const qual_model *m)
{
	return &m->a;
}

float *qual_model_params(qual_model *m)
{
	return m->params;
}

float *qual_model_grads(qual_model *m)
{
	return m->grads;
}

int64_t qual_model_nparams(const qual_model *m)
{
	return m->np;
}

bool qual_model_tensor(const qual_model *m, int j, int64_t *offset, int64_t *rows, int64_t *cols,
                       bool *decay)
{
	if (j < 0 || j >= m->nt)
		return false;
	*offset = m->t[j].off;
	*rows = m->t[j].rows;
	*cols = m->t[j].cols;
	*decay = m->t[j].decay;
	return true;
}

const float *qual_model_logits(const qual_model *m)
{
	return m->logits;
}

/* ---- weights file (tailor-weights/1, see operators/model.c) ------------------------- */

/* Rows of the trainer's f32 tensors. */
static void qual_row(void *ctx, int j, int64_t r, void *out)
{
	const qual_model *m = ctx;
	memcpy(out, m->params + m->t[j].off + r * m->t[j].cols, (size_t)m->t[j].cols * sizeof(float));
}

int qual_model_save_weights(const qual_model *m, const char *path, tl_err *err)
{
	/* the runtime's writer: the trainer's tensors follow the runtime's
	 * layout order, every one f32 */
	op_wfile_tensor *t = malloc((size_t)(m->nt ? m->nt : 1) * sizeof *t);
	if (t == NULL)
		return tl_err_set(err, TL_ENOMEM, "weights %s: out of memory", path);
	for (int j = 0; j < m->nt; j++)
		t[j] = (op_wfile_tensor){OP_F32, m->t[j].rows, m->t[j].cols};
	int rc = op_weights_write(path, m->a.d_model, m->a.vocab, m->a.n_layers, t, m->nt, qual_row,
	                          (void *)m, err);
	free(t);
	return rc;
}

/* ---- pieces: norms ------------------------------------------------------------------ */

typedef struct norm_job {
	float *y, *rinv, *dx, *dw;
	const float *x, *w, *dy, *rin;
	int64_t N, C;
	float eps;
} norm_job;

static void norm_fwd_run(void *arg, int ith, int nth)
{
	const norm_job *j = arg;
	int64_t lo, hi;
	qual_split(j->N, ith, nth, &lo, &hi);
	for (int64_t n = lo; n < hi; n++) {
		const float *x = j->x + n * j->C;
		float *y = j->y + n * j->C;
		float ss = 0.0f;
		for (int64_t c = 0; c < j->C; c++)
			ss += x[c] * x[c];
		float r = 1.0f / sqrtf(ss / (float)j->C + j->eps);
		j->rinv[n] = r;
		for (int64_t c = 0; c < j->C; c++)
			y[c] = x[c] * r * j->w[c];
	}
}

/* y = rmsnorm(x) * w for N rows of C; rinv keeps 1/rms. */
static void norm_fwd(op_pool *pool, float *y, float *rinv, const float *x, const float *w,
                     int64_t N, int64_t C, float eps)
{
	norm_job j = {.y = y, .rinv = rinv, .x = x, .w = w, .N = N, .C = C, .eps = eps};
	op_pool_run(pool, norm_fwd_run, &j);
}

static void norm_bwd_dx(void *arg, int ith, int nth)
{
	const norm_job *j = arg;
	int64_t lo, hi, C = j->C;
	qual_split(j->N, ith, nth, &lo, &hi);
	for (int64_t n = lo; n < hi; n++) {
		const float *x = j->x + n * C, *dy = j->dy + n * C;
		float *dx = j->dx + n * C;
		float r = j->rin[n], dot = 0.0f;
		for (int64_t c = 0; c < C; c++)
			dot += dy[c] * j->w[c] * x[c];
		float k = dot * r * r * r / (float)C;
		for (int64_t c = 0; c < C; c++)
			dx[c] += dy[c] * j->w[c] * r - x[c] * k;
	}
}

static void norm_bwd_dw(void *arg, int ith, int nth)
{
	const norm_job *j = arg;
	int64_t lo, hi, C = j->C;
	qual_split(C, ith, nth, &lo, &hi);
	for (int64_t c = lo; c < hi; c++) {
		float acc = 0.0f;
		for (int64_t n = 0; n < j->N; n++)
			acc += j->dy[n * C + c] * j->x[n * C + c] * j->rin[n];
		j->dw[c] += acc;
	}
}

/* dx += d rmsnorm, dw += d gain. dx may be NULL (gain only) and not alias x. */
static void norm_bwd(op_pool *pool, float *dx, float *dw, const float *dy, const float *x,
                     const float *rinv, const float *w, int64_t N, int64_t C)
{
	norm_job j = {.dx = dx, .dw = dw, .dy = dy, .x = x, .rin = rinv, .w = w, .N = N, .C = C};
	if (dx)
		op_pool_run(pool, norm_bwd_dx, &j);
	op_pool_run(pool, norm_bwd_dw, &j);
}

/* ---- pieces: projections -------------------------------------------------------------- */

typedef struct proj_job {
	const op_layer *l;
	int g;
	int64_t N, d, W;
	const float *xn, *w, *dy;
	float *y, *dxn, *dw;
} proj_job;

/* diagonal and block-diagonal projections, forward and input gradient */
static void proj_small_fwd(void *arg, int ith, int nth)
{
	const proj_job *j = arg;
	int64_t lo, hi, d = j->d, W = j->W;
	qual_split(j->N, ith, nth, &lo, &hi);
	for (int64_t n = lo; n < hi; n++) {
		const float *xn = j->xn + n * d;
		float *y = j->y + n * W;
		if (j->l->proj_chmix[j->g] == OP_CH_DIAGONAL) {
			for (int64_t c = 0; c < W; c++)
				y[c] = xn[c] * j->w[c];
			continue;
		}
		int64_t nb = group_blocks(j->l, j->g), bi = d / nb, bo = W / nb;
		for (int64_t b = 0; b < nb; b++)
			for (int64_t r = 0; r < bo; r++) {
				const float *row = j->w + (b * bo + r) * bi, *xin = xn + b * bi;
				float acc = 0.0f;
				for (int64_t k = 0; k < bi; k++)
					acc += row[k] * xin[k];
				y[b * bo + r] = acc;
			}
	}
}

static void proj_small_dx(void *arg, int ith, int nth)
{
	const proj_job *j = arg;
	int64_t lo, hi, d = j->d, W = j->W;
	qual_split(j->N, ith, nth, &lo, &hi);
	for (int64_t n = lo; n < hi; n++) {
		const float *dy = j->dy + n * W;
		float *dx = j->dxn + n * d;
		if (j->l->proj_chmix[j->g] == OP_CH_DIAGONAL) {
			for (int64_t c = 0; c < W; c++)
				dx[c] += dy[c] * j->w[c];
			continue;
		}
		int64_t nb = group_blocks(j->l, j->g), bi = d / nb, bo = W / nb;
		for (int64_t b = 0; b < nb; b++)
			for (int64_t k = 0; k < bi; k++) {
				float acc = 0.0f;
				for (int64_t r = 0; r < bo; r++)
					acc += dy[b * bo + r] * j->w[(b * bo + r) * bi + k];
				dx[b * bi + k] += acc;
			}
	}
}

static void proj_small_dw(void *arg, int ith, int nth)
{
	const proj_job *j = arg;
	int64_t lo, hi, d = j->d, W = j->W;
	if (j->l->proj_chmix[j->g] == OP_CH_DIAGONAL) {
		qual_split(W, ith, nth, &lo, &hi);
		for (int64_t c = lo; c < hi; c++) {
			float acc = 0.0f;
			for (int64_t n = 0; n < j->N; n++)
				acc += j->dy[n * W + c] * j->xn[n * d + c];
			j->dw[c] += acc;
		}
		return;
	}
	int64_t nb = group_blocks(j->l, j->g), bi = d / nb, bo = W / nb;
	qual_split(W, ith, nth, &lo, &hi);
	for (int64_t row = lo; row < hi; row++) {
		int64_t b = row / bo;
		for (int64_t k = 0; k < bi; k++) {
			float acc = 0.0f;
			for (int64_t n = 0; n < j->N; n++)
				acc += j->dy[n * W + row] * j->xn[n * d + b * bi + k];
			j->dw[row * bi + k] += acc;
		}
	}
}

/* ---- pieces: causal depthwise conv (featurizer and Toeplitz) -------------------------- */

typedef struct conv_job {
	int64_t B, T, W;
	int L;
	const float *x, *b, *g, *w; /* input u = x (.* b), gate g (NULL none) */
	float *z, *y;               /* z: ungated conv (may be NULL), y: output */
	const float *dy;
	float *dx, *db, *dg, *dw;   /* gradients (+=) */
} conv_job;

static inline float conv_u(const conv_job *j, int64_t i)
{
	return j->b ? j->x[i] * j->b[i] : j->x[i];
}

static void conv_fwd_run(void *arg, int ith, int nth)
{
	const conv_job *j = arg;
	int64_t lo, hi, W = j->W;
	int L = j->L;
	qual_split(W, ith, nth, &lo, &hi);
	for (int64_t bb = 0; bb < j->B; bb++)
		for (int64_t t = 0; t < j->T; t++) {
			int64_t row = bb * j->T + t;
			for (int64_t c = lo; c < hi; c++) {
				const float *wc = j->w + c * L;
				float acc = 0.0f;
				for (int k = 0; k < L; k++) {
					int64_t s = t - (L - 1) + k;
					if (s >= 0)
						acc += wc[k] * conv_u(j, (bb * j->T + s) * W + c);
				}
				if (j->z)
					j->z[row * W + c] = acc;
				j->y[row * W + c] = j->g ? j->g[row * W + c] * acc : acc;
			}
		}
}

static void conv_bwd_run(void *arg, int ith, int nth)
{
	const conv_job *j = arg;
	int64_t lo, hi, W = j->W, T = j->T;
	int L = j->L;
	qual_split(W, ith, nth, &lo, &hi);
	for (int64_t c = lo; c < hi; c++) {
		const float *wc = j->w + c * L;
		/* gradient of the taps: sum over sequences and positions in order */
		for (int k = 0; k < L; k++) {
			float acc = 0.0f;
			for (int64_t bb = 0; bb < j->B; bb++)
				for (int64_t t = 0; t < T; t++) {
					int64_t s = t - (L - 1) + k;
					if (s < 0)
						continue;
					int64_t row = bb * T + t;
					float dz = j->g ? j->dy[row * W + c] * j->g[row * W + c]
					                : j->dy[row * W + c];
					acc += dz * conv_u(j, (bb * T + s) * W + c);
				}
			j->dw[c * L + k] += acc;
		}
		for (int64_t bb = 0; bb < j->B; bb++)
			for (int64_t s = 0; s < T; s++) {
				int64_t row = bb * T + s;
				if (j->dg)
					j->dg[row * W + c] += j->dy[row * W + c] * j->z[row * W + c];
				float du = 0.0f;
				for (int k = 0; k < L; k++) {
					int64_t t = s + (L - 1) - k;
					if (t >= T)
						continue;
					int64_t r2 = bb * T + t;
					float dz = j->g ? j->dy[r2 * W + c] * j->g[r2 * W + c] : j->dy[r2 * W + c];
					du += wc[k] * dz;
				}
				int64_t i = row * W + c;
				if (j->b) {
					j->dx[i] += du * j->b[i];
					j->db[i] += du * j->x[i];
				} else {
					j->dx[i] += du;
				}
			}
	}
}

/* ---- pieces: QK-norm and RoPE ----------------------------------------------------------- */

typedef struct qk_job {
	qual_model *m;
	int64_t N, nh, hd;
	const float *x, *w, *dy;
	float *y, *r, *dx, *dw;
	bool rope;
	int T;
} qk_job;

static void rope_apply(const qual_model *m, float *v, int64_t t, int64_t hd, int dir)
{
	int64_t half = hd / 2;
	for (int64_t i = 0; i < half; i++) {
		float c = m->rope_cos[t * half + i], s = dir * m->rope_sin[t * half + i];
		float a = v[i], b = v[i + half];
		v[i] = a * c - b * s;
		v[i + half] = b * c + a * s;
	}
}

static void qk_fwd_run(void *arg, int ith, int nth)
{
	const qk_job *j = arg;
	int64_t lo, hi, hd = j->hd;
	qual_split(j->N * j->nh, ith, nth, &lo, &hi);
	for (int64_t u = lo; u < hi; u++) {
		const float *x = j->x + u * hd;
		float *y = j->y + u * hd;
		if (j->w) {
			float ss = 0.0f;
			for (int64_t c = 0; c < hd; c++)
				ss += x[c] * x[c];
			float r = 1.0f / sqrtf(ss / (float)hd + j->m->cfg.norm_eps);
			j->r[u] = r;
			for (int64_t c = 0; c < hd; c++)
				y[c] = x[c] * r * j->w[c];
		} else if (y != x) {
			memcpy(y, x, (size_t)hd * sizeof(float));
		}
		if (j->rope)
			rope_apply(j->m, y, (u / j->nh) % j->T, hd, 1);
	}
}

/* in place on dy: RoPE^T, then the QK-norm's input gradient (gain gradient
 * in a second job over channels) */
static void qk_bwd_run(void *arg, int ith, int nth)
{
	const qk_job *j = arg;
	int64_t lo, hi, hd = j->hd;
	qual_split(j->N * j->nh, ith, nth, &lo, &hi);
	for (int64_t u = lo; u < hi; u++) {
		float *dy = j->dx + u * hd;
		if (j->rope)
			rope_apply(j->m, dy, (u / j->nh) % j->T, hd, -1);
	}
}

static void qk_bwd_dx_run(void *arg, int ith, int nth)
{
	const qk_job *j = arg;
	int64_t lo, hi, hd = j->hd;
	qual_split(j->N * j->nh, ith, nth, &lo, &hi);
	for (int64_t u = lo; u < hi; u++) {
		float *dy = j->dx + u * hd;
		const float *x = j->x + u * hd;
		float r = j->r[u], dot = 0.0f;
		for (int64_t c = 0; c < hd; c++)
			dot += dy[c] * j->w[c] * x[c];
		float k = dot * r * r * r / (float)hd;
		for (int64_t c = 0; c < hd; c++)
			dy[c] = dy[c] * j->w[c] * r - x[c] * k;
	}
}

static void qk_bwd_dw_run(void *arg, int ith, int nth)
{
	const qk_job *j = arg;
	int64_t lo, hi, hd = j->hd, U = j->N * j->nh;
	qual_split(hd, ith, nth, &lo, &hi);
	for (int64_t c = lo; c < hi; c++) {
		float acc = 0.0f;
		for (int64_t u = 0; u < U; u++)
			acc += j->dx[u * hd + c] * j->x[u * hd + c] * j->r[u];
		j->dw[c] += acc;
	}
}

/* ---- structures ---------------------------------------------------------------------- */

typedef struct mix_job {
	qual_model *m;
	const op_layer *l;
	qlayer *q;
	int B, T;
	const float *f[OP_NGROUPS];
	float *df[OP_NGROUPS];
	const float *dy;
} mix_job;

static inline bool allowed(const op_layer *l, int64_t i, int64_t j)
{
	if (j > i)
		return false;
	if (l->mask == OP_MASK_WINDOW)
		return j > i - (l->len ? l->len : 1);
	if (l->mask == OP_MASK_BLOCK) {
		int64_t L = l->len ? l->len : 1;
		return j / L == i / L;
	}
	return true;
}

static inline int64_t first_key(const op_layer *l, int64_t i)
{
	int64_t L = l->len ? l->len : 1;
	if (l->mask == OP_MASK_WINDOW)
		return i - L + 1 > 0 ? i - L + 1 : 0;
	if (l->mask == OP_MASK_BLOCK)
		return i / L * L;
	return 0;
}

static void dense_fwd(const mix_job *j, int64_t b, int g)
{
	const op_layer *l = j->l;
	int64_t T = j->T, H = l->heads, KV = l->kv_heads, hd = l->head_dim, G = H / KV;
	float scale = 1.0f / sqrtf((float)hd);
	const float *Q = j->f[OP_G_C], *K = j->f[OP_G_B], *Vv = j->f[OP_G_V];
	for (int64_t r = 0; r < G; r++) {
		int64_t h = g * G + r;
		float *Pm = j->q->aux + (b * H + h) * T * T;
		for (int64_t i = 0; i < T; i++) {
			const float *qi = Q + ((b * T + i) * H + h) * hd;
			float *p = Pm + i * T;
			int64_t lo = first_key(l, i);
			float mx = -INFINITY;
			for (int64_t t = 0; t < T; t++)
				p[t] = 0.0f;
			for (int64_t t = lo; t <= i; t++) {
				const float *kt = K + ((b * T + t) * KV + g) * hd;
				float s = 0.0f;
				for (int64_t c = 0; c < hd; c++)
					s += qi[c] * kt[c];
				s *= scale;
				p[t] = s;
				if (s > mx)
					mx = s;
			}
			if (l->nonlin == OP_NL_SOFTMAX) {
				float sum = 0.0f;
				for (int64_t t = lo; t <= i; t++) {
					p[t] = expf(p[t] - mx);
					sum += p[t];
				}
				for (int64_t t = lo; t <= i; t++)
					p[t] /= sum;
			} else {
				for (int64_t t = lo; t <= i; t++)
					p[t] = qual_sigmoid(p[t]);
			}
			float *yi = j->q->y + ((b * T + i) * H + h) * hd;
			for (int64_t c = 0; c < hd; c++)
				yi[c] = 0.0f;
			for (int64_t t = lo; t <= i; t++) {
				const float *vt = Vv + ((b * T + t) * KV + g) * hd;
				for (int64_t c = 0; c < hd; c++)
					yi[c] += p[t] * vt[c];
			}
		}
	}
}

static void dense_bwd(const mix_job *j, int64_t b, int g, float *dp)
{
	const op_layer *l = j->l;
	int64_t T = j->T, H = l->heads, KV = l->kv_heads, hd = l->head_dim, G = H / KV;
	float scale = 1.0f / sqrtf((float)hd);
	const float *Q = j->f[OP_G_C], *K = j->f[OP_G_B], *Vv = j->f[OP_G_V];
	float *dQ = j->df[OP_G_C], *dK = j->df[OP_G_B], *dV = j->df[OP_G_V];
	for (int64_t r = 0; r < G; r++) {
		int64_t h = g * G + r;
		const float *Pm = j->q->aux + (b * H + h) * T * T;
		for (int64_t i = 0; i < T; i++) {
			const float *p = Pm + i * T, *dyi = j->dy + ((b * T + i) * H + h) * hd;
			const float *qi = Q + ((b * T + i) * H + h) * hd;
			float *dqi = dQ + ((b * T + i) * H + h) * hd;
			int64_t lo = first_key(l, i);
			float dot = 0.0f;
			for (int64_t t = lo; t <= i; t++) {
				const float *vt = Vv + ((b * T + t) * KV + g) * hd;
				float s = 0.0f;
				for (int64_t c = 0; c < hd; c++)
					s += dyi[c] * vt[c];
				dp[t] = s;
				dot += p[t] * s;
			}
			for (int64_t t = lo; t <= i; t++) {
				float ds = l->nonlin == OP_NL_SOFTMAX ? p[t] * (dp[t] - dot)
				                                      : dp[t] * p[t] * (1.0f - p[t]);
				ds *= scale;
				const float *kt = K + ((b * T + t) * KV + g) * hd;
				float *dkt = dK + ((b * T + t) * KV + g) * hd;
				float *dvt = dV + ((b * T + t) * KV + g) * hd;
				for (int64_t c = 0; c < hd; c++) {
					dqi[c] += ds * kt[c];
					dkt[c] += ds * qi[c];
					dvt[c] += p[t] * dyi[c];
				}
			}
		}
	}
}

static inline float lin_phi(float x, int nl)
{
	return nl == OP_NL_POSFEAT ? qual_posfeat(x) : x;
}

static inline float lin_dphi(float x, int nl)
{
	return nl == OP_NL_POSFEAT ? (x > 0.0f ? 1.0f : expf(x)) : 1.0f;
}

#define LIN_EPS 1e-6f /* OP_LINATTN_EPS */

static void lowrank_unit(const mix_job *j, int64_t b, int g, float *scr, bool bwd)
{
	const op_layer *l = j->l;
	int64_t T = j->T, H = l->heads, KV = l->kv_heads, hd = l->head_dim, G = H / KV;
	int nl = l->nonlin;
	const float *Q = j->f[OP_G_C], *K = j->f[OP_G_B], *Vv = j->f[OP_G_V];
	float *fk = scr, *dfk = scr + T * hd, *fq = scr + 2 * T * hd, *dfq = scr + 3 * T * hd;
	for (int64_t t = 0; t < T; t++)
		for (int64_t c = 0; c < hd; c++)
			fk[t * hd + c] = lin_phi(K[((b * T + t) * KV + g) * hd + c], nl);
	if (bwd)
		memset(dfk, 0, (size_t)(T * hd) * sizeof(float));
	for (int64_t r = 0; r < G; r++) {
		int64_t h = g * G + r;
		for (int64_t t = 0; t < T; t++)
			for (int64_t c = 0; c < hd; c++)
				fq[t * hd + c] = lin_phi(Q[((b * T + t) * H + h) * hd + c], nl);
		for (int64_t i = 0; i < T; i++) {
			const float *fqi = fq + i * hd;
			float *yi = j->q->y + ((b * T + i) * H + h) * hd;
			if (!bwd) {
				float den = 0.0f;
				for (int64_t c = 0; c < hd; c++)
					yi[c] = 0.0f;
				for (int64_t t = 0; t <= i; t++) {
					const float *vt = Vv + ((b * T + t) * KV + g) * hd;
					float s = 0.0f;
					for (int64_t c = 0; c < hd; c++)
						s += fqi[c] * fk[t * hd + c];
					for (int64_t c = 0; c < hd; c++)
						yi[c] += s * vt[c];
					den += s;
				}
				if (nl == OP_NL_POSFEAT) {
					float inv = 1.0f / (den + LIN_EPS);
					for (int64_t c = 0; c < hd; c++)
						yi[c] *= inv;
				}
				continue;
			}
			const float *dyi = j->dy + ((b * T + i) * H + h) * hd;
			float inv = 1.0f, dD = 0.0f;
			if (nl == OP_NL_POSFEAT) {
				float den = 0.0f;
				for (int64_t t = 0; t <= i; t++) {
					float s = 0.0f;
					for (int64_t c = 0; c < hd; c++)
						s += fqi[c] * fk[t * hd + c];
					den += s;
				}
				inv = 1.0f / (den + LIN_EPS);
				float dot = 0.0f;
				for (int64_t c = 0; c < hd; c++)
					dot += dyi[c] * yi[c];
				dD = -dot * inv;
			}
			for (int64_t c = 0; c < hd; c++)
				dfq[c] = 0.0f;
			for (int64_t t = 0; t <= i; t++) {
				const float *vt = Vv + ((b * T + t) * KV + g) * hd;
				float *dvt = j->df[OP_G_V] + ((b * T + t) * KV + g) * hd;
				float s = 0.0f, dv = 0.0f;
				for (int64_t c = 0; c < hd; c++)
					s += fqi[c] * fk[t * hd + c];
				for (int64_t c = 0; c < hd; c++)
					dv += dyi[c] * vt[c];
				float ds = dv * inv + dD;
				for (int64_t c = 0; c < hd; c++) {
					dvt[c] += s * dyi[c] * inv;
					dfq[c] += ds * fk[t * hd + c];
					dfk[t * hd + c] += ds * fqi[c];
				}
			}
			float *dqi = j->df[OP_G_C] + ((b * T + i) * H + h) * hd;
			const float *qi = Q + ((b * T + i) * H + h) * hd;
			for (int64_t c = 0; c < hd; c++)
				dqi[c] += dfq[c] * lin_dphi(qi[c], nl);
		}
	}
	if (bwd)
		for (int64_t t = 0; t < T; t++)
			for (int64_t c = 0; c < hd; c++) {
				int64_t idx = ((b * T + t) * KV + g) * hd + c;
				j->df[OP_G_B][idx] += dfk[t * hd + c] * lin_dphi(K[idx], nl);
			}
}

static void semisep_unit(const mix_job *j, int64_t b, int h, float *scr, bool bwd)
{
	const op_layer *l = j->l;
	int64_t T = j->T, NH = l->heads, Ns = l->state, P = l->head_dim;
	bool silu = l->nonlin == OP_NL_SILU;
	const float *C = j->f[OP_G_C], *Bm = j->f[OP_G_B], *Vv = j->f[OP_G_V], *A = j->f[OP_G_A];
	double *cum = (double *)scr, *dcum = cum + T;
	double acc = 0.0;
	for (int64_t t = 0; t < T; t++) {
		acc -= (double)qual_softplus(A[(b * T + t) * NH + h]);
		cum[t] = acc;
		dcum[t] = 0.0;
	}
	for (int64_t i = 0; i < T; i++) {
		const float *ci = C + ((b * T + i) * NH + h) * Ns;
		float *yi = j->q->y + ((b * T + i) * NH + h) * P;
		const float *dyi = bwd ? j->dy + ((b * T + i) * NH + h) * P : NULL;
		float *dci = bwd ? j->df[OP_G_C] + ((b * T + i) * NH + h) * Ns : NULL;
		if (!bwd)
			for (int64_t p = 0; p < P; p++)
				yi[p] = 0.0f;
		for (int64_t t = 0; t <= i; t++) {
			const float *bt = Bm + ((b * T + t) * NH + h) * Ns;
			const float *vt = Vv + ((b * T + t) * NH + h) * P;
			float s = 0.0f;
			for (int64_t n = 0; n < Ns; n++)
				s += (silu ? qual_silu(ci[n]) : ci[n]) * bt[n];
			float dec = (float)exp(cum[i] - cum[t]);
			float w = s * dec;
			if (!bwd) {
				for (int64_t p = 0; p < P; p++)
					yi[p] += w * vt[p];
				continue;
			}
			float dw = 0.0f;
			float *dvt = j->df[OP_G_V] + ((b * T + t) * NH + h) * P;
			float *dbt = j->df[OP_G_B] + ((b * T + t) * NH + h) * Ns;
			for (int64_t p = 0; p < P; p++) {
				dw += dyi[p] * vt[p];
				dvt[p] += w * dyi[p];
			}
			float gg = dw * dec;
			for (int64_t n = 0; n < Ns; n++) {
				float cn = silu ? qual_silu(ci[n]) : ci[n];
				float dsl = 1.0f;
				if (silu) {
					float sg = qual_sigmoid(ci[n]);
					dsl = sg * (1.0f + ci[n] * (1.0f - sg));
				}
				dci[n] += gg * bt[n] * dsl;
				dbt[n] += gg * cn;
			}
			dcum[i] += (double)(dw * w);
			dcum[t] -= (double)(dw * w);
		}
	}
	if (bwd) {
		double suf = 0.0;
		for (int64_t t = T - 1; t >= 0; t--) {
			suf += dcum[t];
			int64_t idx = (b * T + t) * NH + h;
			j->df[OP_G_A][idx] += (float)(suf * -(double)qual_sigmoid(A[idx]));
		}
	}
}

static void mix_run(void *arg, int ith, int nth, bool bwd)
{
	const mix_job *j = arg;
	const op_layer *l = j->l;
	int64_t lo, hi, N = (int64_t)j->B * j->T;
	switch (l->structure) {
	case OP_DENSE:
	case OP_LOWRANK: {
		qual_split((int64_t)j->B * l->kv_heads, ith, nth, &lo, &hi);
		for (int64_t u = lo; u < hi; u++) {
			int64_t b = u / l->kv_heads;
			int g = (int)(u % l->kv_heads);
			float *scr = j->m->scr + u * j->m->scr_unit;
			if (l->structure == OP_DENSE) {
				if (bwd)
					dense_bwd(j, b, g, scr);
				else
					dense_fwd(j, b, g);
			} else {
				lowrank_unit(j, b, g, scr, bwd);
			}
		}
		break;
	}
	case OP_SEMISEP:
		qual_split((int64_t)j->B * l->heads, ith, nth, &lo, &hi);
		for (int64_t u = lo; u < hi; u++)
			semisep_unit(j, u / l->heads, (int)(u % l->heads), j->m->scr + u * j->m->scr_unit,
			             bwd);
		break;
	case OP_DIAGONAL: {
		int64_t E = l->inner;
		qual_split(N, ith, nth, &lo, &hi);
		const float *Cg = j->f[OP_G_C], *U = j->f[OP_G_V];
		for (int64_t i = lo * E; i < hi * E; i++) {
			float c = Cg[i], a, da;
			if (l->nonlin == OP_NL_SILU) {
				float s = qual_sigmoid(c);
				a = c * s;
				da = s * (1.0f + c * (1.0f - s));
			} else if (l->nonlin == OP_NL_SIGMOID) {
				a = qual_sigmoid(c);
				da = a * (1.0f - a);
			} else {
				a = c;
				da = 1.0f;
			}
			if (!bwd) {
				j->q->y[i] = a * U[i];
			} else {
				j->df[OP_G_C][i] += j->dy[i] * U[i] * da;
				j->df[OP_G_V][i] += j->dy[i] * a;
			}
		}
		break;
	}
	default:
		break;
	}
}

static void mix_fwd_run(void *arg, int ith, int nth)
{
	mix_run(arg, ith, nth, false);
}

static void mix_bwd_run(void *arg, int ith, int nth)
{
	mix_run(arg, ith, nth, true);
}

/* ---- forward ------------------------------------------------------------------------------ */

static void layer_fwd(qual_model *m, op_pool *pool, int i, int B, int T)
{
	const op_layer *l = &m->a.layers[i];
	qlayer *q = &m->L[i];
	int64_t N = (int64_t)B * T, d = m->d;
	float *p = m->params;
	memcpy(q->xin, m->x, (size_t)(N * d) * sizeof(float));
	norm_fwd(pool, q->xn, q->rinv, q->xin, p + q->norm, N, d, m->cfg.norm_eps);
	for (int g = 0; g < OP_NGROUPS; g++) {
		if (l->xowner[g] != i)
			continue;
		int64_t W = l->width[g];
		if (l->proj_chmix[g] == OP_CH_DENSE) {
			qual_transpose(m->wt, p + q->proj[g], W, d);
			qual_gemm(pool, q->P[g], q->xn, m->wt, N, d, W, 0);
		} else {
			proj_job pj = {l, g, N, d, W, q->xn, p + q->proj[g], NULL, q->P[g], NULL, NULL};
			op_pool_run(pool, proj_small_fwd, &pj);
		}
		if (l->conv[g]) {
			conv_job cj = {.B = B, .T = T, .W = W, .L = l->conv[g], .x = q->P[g],
			               .w = p + q->fconv[g], .y = q->Fc[g]};
			op_pool_run(pool, conv_fwd_run, &cj);
		}
		if (q->F[g] != q->Fc[g]) {
			int64_t nh = group_blocks(l, g);
			qk_job kj = {.m = m, .N = N, .nh = nh, .hd = l->head_dim, .x = q->Fc[g],
			             .w = q->qkn[g] >= 0 ? p + q->qkn[g] : NULL, .y = q->F[g],
			             .r = q->qr[g], .rope = l->rope != 0, .T = T};
			op_pool_run(pool, qk_fwd_run, &kj);
		}
	}
	mix_job mj = {.m = m, .l = l, .q = q, .B = B, .T = T};
	for (int g = 0; g < OP_NGROUPS; g++)
		if (l->xowner[g] >= 0)
			mj.f[g] = m->L[l->xowner[g]].F[g];
	if (l->structure == OP_TOEPLITZ) {
		if (l->len > 1) {
			conv_job cj = {.B = B, .T = T, .W = l->inner, .L = l->len, .x = mj.f[OP_G_B],
			               .b = mj.f[OP_G_V], .g = mj.f[OP_G_C], .w = p + q->kernel,
			               .z = q->aux, .y = q->y};
			op_pool_run(pool, conv_fwd_run, &cj);
		} else {
			for (int64_t k = 0; k < N * l->inner; k++) {
				q->aux[k] = mj.f[OP_G_B][k] * mj.f[OP_G_V][k];
				q->y[k] = mj.f[OP_G_C][k] * q->aux[k];
			}
		}
	} else {
		op_pool_run(pool, mix_fwd_run, &mj);
	}
	qual_transpose(m->wt, p + q->out, d, l->inner);
	qual_gemm(pool, m->x, q->y, m->wt, N, l->inner, d, 1);
}

typedef struct ce_job {
	qual_model *m;
	int64_t N;
} ce_job;

static void ce_run(void *arg, int ith, int nth)
{
	const ce_job *j = arg;
	qual_model *m = j->m;
	int64_t lo, hi, V = m->V;
	qual_split(j->N, ith, nth, &lo, &hi);
	for (int64_t n = lo; n < hi; n++) {
		const float *z = m->logits + n * V;
		float *dz = m->dlogits + n * V;
		int32_t t = m->tgt[n];
		if (t == QUAL_IGNORE) {
			memset(dz, 0, (size_t)V * sizeof(float));
			m->rowloss[n] = 0.0f;
			continue;
		}
		float mx = z[0];
		for (int64_t v = 1; v < V; v++)
			if (z[v] > mx)
				mx = z[v];
		float sum = 0.0f;
		for (int64_t v = 0; v < V; v++) {
			dz[v] = expf(z[v] - mx);
			sum += dz[v];
		}
		m->rowloss[n] = logf(sum) + mx - z[t];
		float inv = 1.0f / sum;
		for (int64_t v = 0; v < V; v++)
			dz[v] *= inv; /* softmax; scaled by 1/count in backward */
		dz[t] -= 1.0f;
	}
}

int qual_model_forward(qual_model *m, op_pool *pool, const int32_t *tokens,
                       const int32_t *targets, int B, int T, double *loss, int64_t *count,
                       tl_err *err)
{
	if (B < 1 || B > m->cfg.max_batch || T < 1 || T > m->cfg.seq_len)
		return tl_err_set(err, TL_EINVAL, "trainer: batch %d x %d tokens outside the model's "
		                  "%d x %d", B, T, m->cfg.max_batch, m->cfg.seq_len);
	int64_t N = (int64_t)B * T, d = m->d;
	for (int64_t n = 0; n < N; n++) {
		if (tokens[n] < 0 || tokens[n] >= m->V)
			return tl_err_set(err, TL_EINVAL, "trainer: token %lld is %d, outside the "
			                  "vocabulary 0..%lld", (long long)n, tokens[n], (long long)m->V - 1);
		if (targets[n] != QUAL_IGNORE && (targets[n] < 0 || targets[n] >= m->V))
			return tl_err_set(err, TL_EINVAL, "trainer: target %lld is %d, outside the "
			                  "vocabulary 0..%lld", (long long)n, targets[n], (long long)m->V - 1);
	}
	memcpy(m->tokbuf, tokens, (size_t)N * sizeof(int32_t));
	memcpy(m->tgtbuf, targets, (size_t)N * sizeof(int32_t));
	m->tok = m->tokbuf;
	m->tgt = m->tgtbuf;
	m->B = B;
	m->T = T;
	/* RoPE tables for this length (op_rope: angle in double, cos/sin to f32) */
	for (int i = 0; i < m->a.n_layers; i++) {
		const op_layer *l = &m->a.layers[i];
		if (!(l->feat == OP_FEAT_QKV && l->rope))
			continue;
		int64_t half = l->head_dim / 2;
		for (int64_t t = 0; t < T; t++)
			for (int64_t k = 0; k < half; k++) {
				double f = pow((double)m->a.rope_theta, -2.0 * (double)k / l->head_dim);
				m->rope_cos[t * half + k] = (float)cos((double)t * f);
				m->rope_sin[t * half + k] = (float)sin((double)t * f);
			}
		break; /* one head dim for every RoPE layer (checked at create) */
	}
	const float *E = m->params + m->embed;
	for (int64_t n = 0; n < N; n++)
		memcpy(m->x + n * d, E + (int64_t)tokens[n] * d, (size_t)d * sizeof(float));
	for (int i = 0; i < m->a.n_layers; i++)
		layer_fwd(m, pool, i, B, T);
	/* head input: the last state (LM), or the last position's plus a code */
	if (m->cfg.autoencode) {
		for (int b = 0; b < B; b++)
			for (int t = 0; t < T; t++)
				for (int64_t c = 0; c < d; c++)
					m->hx[((int64_t)b * T + t) * d + c] =
						m->x[((int64_t)b * T + T - 1) * d + c] + m->pe[(int64_t)t * d + c];
	} else {
		memcpy(m->hx, m->x, (size_t)(N * d) * sizeof(float));
	}
	norm_fwd(pool, m->hxn, m->hr, m->hx, m->params + m->fnorm, N, d, m->cfg.norm_eps);
	qual_transpose(m->wt, E, m->V, d);
	qual_gemm(pool, m->logits, m->hxn, m->wt, N, d, m->V, 0);
	ce_job cj = {m, N};
	op_pool_run(pool, ce_run, &cj);
	double sum = 0.0;
	int64_t cnt = 0;
	for (int64_t n = 0; n < N; n++)
		if (m->tgt[n] != QUAL_IGNORE) {
			sum += m->rowloss[n];
			cnt++;
		}
	m->count = cnt;
	*loss = cnt ? sum / (double)cnt : 0.0;
	if (count)
		*count = cnt;
	return 0;
}

/* ---- backward ----------------------------------------------------------------------------- */

/* dW (rows x K) += dY^T X with dY (N x rows), X (N x K) */
static void weight_grad(qual_model *m, op_pool *pool, float *dW, const float *dY, const float *X,
                        int64_t N, int64_t rows, int64_t K)
{
	qual_transpose(m->yt, dY, N, rows);
	qual_gemm(pool, dW, m->yt, X, rows, N, K, 1);
}

static void layer_bwd(qual_model *m, op_pool *pool, int i)
{
	const op_layer *l = &m->a.layers[i];
	qlayer *q = &m->L[i];
	int B = m->B, T = m->T;
	int64_t N = (int64_t)B * T, d = m->d, E = l->inner;
	float *p = m->params, *gr = m->grads;
	/* output projection: o = y Wout^T, dO = dx */
	weight_grad(m, pool, gr + q->out, m->dx, q->y, N, d, E);
	qual_gemm(pool, m->dy, m->dx, p + q->out, N, d, E, 0);
	/* structure */
	mix_job mj = {.m = m, .l = l, .q = q, .B = B, .T = T, .dy = m->dy};
	for (int g = 0; g < OP_NGROUPS; g++)
		if (l->xowner[g] >= 0) {
			mj.f[g] = m->L[l->xowner[g]].F[g];
			mj.df[g] = m->L[l->xowner[g]].dF[g];
		}
	if (l->structure == OP_TOEPLITZ) {
		if (l->len > 1) {
			conv_job cj = {.B = B, .T = T, .W = E, .L = l->len, .x = mj.f[OP_G_B],
			               .b = mj.f[OP_G_V], .g = mj.f[OP_G_C], .w = p + q->kernel,
			               .z = q->aux, .dy = m->dy, .dx = mj.df[OP_G_B], .db = mj.df[OP_G_V],
			               .dg = mj.df[OP_G_C], .dw = gr + q->kernel};
			op_pool_run(pool, conv_bwd_run, &cj);
		} else {
			for (int64_t k = 0; k < N * E; k++) {
				float dy = m->dy[k];
				mj.df[OP_G_C][k] += dy * q->aux[k];
				float du = dy * mj.f[OP_G_C][k];
				mj.df[OP_G_B][k] += du * mj.f[OP_G_V][k];
				mj.df[OP_G_V][k] += du * mj.f[OP_G_B][k];
			}
		}
	} else {
		op_pool_run(pool, mix_bwd_run, &mj);
	}
	/* featurizer of the groups this layer computes, in reverse */
	memset(m->dxn, 0, (size_t)(N * d) * sizeof(float));
	for (int g = OP_NGROUPS - 1; g >= 0; g--) {
		if (l->xowner[g] != i)
			continue;
		int64_t W = l->width[g];
		float *dF = q->dF[g];
		if (q->F[g] != q->Fc[g]) {
			int64_t nh = group_blocks(l, g);
			qk_job kj = {.m = m, .N = N, .nh = nh, .hd = l->head_dim, .x = q->Fc[g],
			             .w = q->qkn[g] >= 0 ? p + q->qkn[g] : NULL, .r = q->qr[g],
			             .dx = dF, .dw = q->qkn[g] >= 0 ? gr + q->qkn[g] : NULL,
			             .rope = l->rope != 0, .T = T};
			if (kj.rope)
				op_pool_run(pool, qk_bwd_run, &kj);
			if (kj.w) {
				op_pool_run(pool, qk_bwd_dw_run, &kj);
				op_pool_run(pool, qk_bwd_dx_run, &kj);
			}
		}
		float *dP = dF;
		if (l->conv[g]) {
			memset(m->tmp, 0, (size_t)(N * W) * sizeof(float));
			conv_job cj = {.B = B, .T = T, .W = W, .L = l->conv[g], .x = q->P[g],
			               .w = p + q->fconv[g], .dy = dF, .dx = m->tmp,
			               .dw = gr + q->fconv[g]};
			op_pool_run(pool, conv_bwd_run, &cj);
			dP = m->tmp;
		}
		if (l->proj_chmix[g] == OP_CH_DENSE) {
			weight_grad(m, pool, gr + q->proj[g], dP, q->xn, N, W, d);
			qual_gemm(pool, m->dxn, dP, p + q->proj[g], N, W, d, 1);
		} else {
			proj_job pj = {l, g, N, d, W, q->xn, p + q->proj[g], dP, NULL, m->dxn,
			               gr + q->proj[g]};
			op_pool_run(pool, proj_small_dw, &pj);
			op_pool_run(pool, proj_small_dx, &pj);
		}
	}
	norm_bwd(pool, m->dx, gr + q->norm, m->dxn, q->xin, q->rinv, p + q->norm, N, d);
}

void qual_model_backward(qual_model *m, op_pool *pool)
{
	int64_t N = (int64_t)m->B * m->T, d = m->d, V = m->V;
	memset(m->grads, 0, (size_t)m->np * sizeof(float));
	for (int i = 0; i < m->a.n_layers; i++)
		for (int g = 0; g < OP_NGROUPS; g++)
			if (m->L[i].dF[g])
				memset(m->L[i].dF[g], 0, (size_t)(N * m->a.layers[i].width[g]) * sizeof(float));
	float inv = m->count ? 1.0f / (float)m->count : 0.0f;
	for (int64_t k = 0; k < N * V; k++)
		m->dlogits[k] *= inv;
	float *E = m->params + m->embed, *dE = m->grads + m->embed;
	/* head: logits = hxn E^T */
	weight_grad(m, pool, dE, m->dlogits, m->hxn, N, V, d);
	qual_gemm(pool, m->tmp, m->dlogits, E, N, V, d, 0); /* d hxn */
	memset(m->dxn, 0, (size_t)(N * d) * sizeof(float));
	norm_bwd(pool, m->dxn, m->grads + m->fnorm, m->tmp, m->hx, m->hr, m->params + m->fnorm, N, d);
	if (m->cfg.autoencode) {
		memset(m->dx, 0, (size_t)(N * d) * sizeof(float));
		for (int b = 0; b < m->B; b++)
			for (int t = 0; t < m->T; t++)
				for (int64_t c = 0; c < d; c++)
					m->dx[((int64_t)b * m->T + m->T - 1) * d + c] +=
						m->dxn[((int64_t)b * m->T + t) * d + c];
	} else {
		memcpy(m->dx, m->dxn, (size_t)(N * d) * sizeof(float));
	}
	for (int i = m->a.n_layers - 1; i >= 0; i--)
		layer_bwd(m, pool, i);
	/* embedding rows, in token order */
	for (int64_t n = 0; n < N; n++) {
		float *row = dE + (int64_t)m->tok[n] * d;
		for (int64_t c = 0; c < d; c++)
			row[c] += m->dx[n * d + c];
	}
}
