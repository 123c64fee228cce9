/*
 * quality/optim.c: AdamW (Loshchilov & Hutter, decoupled weight decay) with
 * linear warm-up, a cosine decay to a floor, and clipping of the global
 * gradient norm.
 *
 * Workload: a few passes over the parameters per step (O(params), memory
 * bound); the gradient norm is a sum of per-block partial sums added in block
 * order, so it does not depend on the thread count.
 */
#include "quality.h"
#include "qual_int.h"

#include <math.h>
#include <stdlib.h>

double qual_lr_at(const qual_optim_cfg *c, int64_t step)
{
	if (c->warmup > 0 && step < c->warmup)
		return c->lr * (double)(step + 1) / (double)c->warmup;
	if (c->schedule == QUAL_SCHED_WSD) {
		if (step < c->decay_from)
			return c->lr;
		int64_t n = c->steps - c->decay_from;
		double f = n > 0 ? (double)(step - c->decay_from + 1) / (double)n : 1.0;
		if (f > 1.0)
			f = 1.0;
		return c->lr + (c->min_lr - c->lr) * f;
	}
	int64_t span = c->steps - c->warmup;
	if (span <= 0)
		return c->lr;
	double f = (double)(step - c->warmup) / (double)span;
	if (f > 1.0)
		f = 1.0;
	return c->min_lr + 0.5 * (c->lr - c->min_lr) * (1.0 + cos(M_PI * f));
}

#define NORM_BLOCK 4096 /* values per partial sum of the gradient norm */

typedef struct adam_job {
	const qual_optim_cfg *c;
	float *p, *m, *v;
	const float *g;
	const uint8_t *decay;
	int64_t n;
	double *partial;   /* one per block */
	float lr, gscale, bc1, bc2;
} adam_job;

static void norm_run(void *arg, int ith, int nth)
{
	const adam_job *j = arg;
	int64_t nb = (j->n + NORM_BLOCK - 1) / NORM_BLOCK, lo, hi;
	qual_split(nb, ith, nth, &lo, &hi);
	for (int64_t b = lo; b < hi; b++) {
		double s = 0.0;
		int64_t e = (b + 1) * NORM_BLOCK < j->n ? (b + 1) * NORM_BLOCK : j->n;
		for (int64_t i = b * NORM_BLOCK; i < e; i++)
			s += (double)j->g[i] * j->g[i];
		j->partial[b] = s;
	}
}

static void adam_run(void *arg, int ith, int nth)
{
	const adam_job *j = arg;
	const qual_optim_cfg *c = j->c;
	int64_t lo, hi;
	qual_split(j->n, ith, nth, &lo, &hi);
	float b1 = (float)c->beta1, b2 = (float)c->beta2, eps = (float)c->eps;
	float wd = (float)(j->lr * c->weight_decay);
	for (int64_t i = lo; i < hi; i++) {
		float g = j->g[i] * j->gscale;
		j->m[i] = b1 * j->m[i] + (1.0f - b1) * g;
		j->v[i] = b2 * j->v[i] + (1.0f - b2) * g * g;
		float mh = j->m[i] / j->bc1, vh = j->v[i] / j->bc2;
		if (j->decay[i])
			j->p[i] -= wd * j->p[i];
		j->p[i] -= j->lr * mh / (sqrtf(vh) + eps);
	}
}

double qual_adamw_step(const qual_optim_cfg *c, int64_t step, float *p, const float *g, float *m,
                       float *v, const uint8_t *decay, int64_t n, op_pool *pool)
{
	int64_t nb = (n + NORM_BLOCK - 1) / NORM_BLOCK;
	double stack[64];
	double *partial = nb <= 64 ? stack : malloc((size_t)nb * sizeof(double));
	adam_job j = {.c = c, .p = p, .m = m, .v = v, .g = g, .decay = decay, .n = n,
	              .partial = partial};
	double norm = 0.0;
	if (partial) {
		op_pool_run(pool, norm_run, &j);
		for (int64_t b = 0; b < nb; b++)
			norm += partial[b];
		if (partial != stack)
			free(partial);
	}
	norm = sqrt(norm);
	j.gscale = (c->clip > 0 && norm > c->clip) ? (float)(c->clip / norm) : 1.0f;
	j.lr = (float)qual_lr_at(c, step);
	j.bc1 = (float)(1.0 - pow(c->beta1, (double)(step + 1)));
	j.bc2 = (float)(1.0 - pow(c->beta2, (double)(step + 1)));
	op_pool_run(pool, adam_run, &j);
	return norm;
}
