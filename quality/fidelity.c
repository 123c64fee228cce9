/*
 * quality/fidelity.c: how far a cheap quality signal can be trusted (see
 * quality.h, "fidelity"). A study trains each genome at every budget of a
 * ladder (one WSD training that continues from checkpoints, so the ladder
 * costs about its largest budget plus the decays) and again at the lowest
 * budget with other seeds; then it measures the seed-noise floor (paired
 * differences), the rank agreement between every two budgets (Kendall's
 * tau-b and Spearman's rho, each with a percentile bootstrap interval over
 * genomes), and the first budget whose ranking agrees with the highest's to
 * tau >= 0.8.
 *
 * Statistics in double precision; ties: tau-b (Kendall 1945), Spearman on
 * average ranks (Pearson correlation of the ranks). The bootstrap resamples
 * genomes with replacement (PCG32 from the study's seed); a resample whose
 * values are all tied on one side has no correlation and is skipped.
 */
#include "quality.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

double qual_kendall_tau_b(const double *x, const double *y, int n)
{
	double conc = 0, disc = 0, tx = 0, ty = 0;
	for (int i = 0; i < n; i++)
		for (int j = i + 1; j < n; j++) {
			double a = x[i] - x[j], b = y[i] - y[j];
			if (a == 0 && b == 0)
				continue; /* tied in both: in neither denominator term */
			if (a == 0)
				tx++;
			else if (b == 0)
				ty++;
			else if ((a > 0) == (b > 0))
				conc++;
			else
				disc++;
		}
	double d = sqrt((conc + disc + tx) * (conc + disc + ty));
	return d > 0 ? (conc - disc) / d : NAN;
}

/* Average ranks (1-based) of x into r. */
static void ranks(const double *x, int n, double *r)
{
	for (int i = 0; i < n; i++) {
		int less = 0, eq = 0;
		for (int j = 0; j < n; j++) {
			less += x[j] < x[i];
			eq += x[j] == x[i];
		}
		r[i] = less + (eq + 1) / 2.0;
	}
}

double qual_spearman_rho(const double *x, const double *y, int n)
{
	if (n < 2)
		return NAN;
	double *rx = malloc(2 * (size_t)n * sizeof *rx);
	if (rx == NULL)
		return NAN;
	double *ry = rx + n;
	ranks(x, n, rx);
	ranks(y, n, ry);
	double mx = 0, my = 0;
	for (int i = 0; i < n; i++) {
		mx += rx[i];
		my += ry[i];
	}
	mx /= n;
	my /= n;
	double sxy = 0, sxx = 0, syy = 0;
	for (int i = 0; i < n; i++) {
		sxy += (rx[i] - mx) * (ry[i] - my);
		sxx += (rx[i] - mx) * (rx[i] - mx);
		syy += (ry[i] - my) * (ry[i] - my);
	}
	free(rx);
	return sxx > 0 && syy > 0 ? sxy / sqrt(sxx * syy) : NAN;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

int qual_rank_agreement(qual_agreement *out, const double *x, const double *y, int n,
                        int resamples, uint64_t seed)
{
	out->tau = qual_kendall_tau_b(x, y, n);
	out->rho = qual_spearman_rho(x, y, n);
	out->tau_lo = out->tau_hi = out->rho_lo = out->rho_hi = NAN;
	if (resamples < 10 || n < 3)
		return 0;
	double *t = malloc((size_t)resamples * 2 * sizeof *t);
	double *bx = malloc((size_t)n * 2 * sizeof *bx);
	if (t == NULL || bx == NULL) {
		free(t);
		free(bx);
		return TL_ENOMEM;
	}
	double *r = t + resamples, *by = bx + n;
	tl_rng rng;
	tl_rng_seed(&rng, seed, 77);
	int k = 0;
	for (int b = 0; b < resamples; b++) {
		for (int i = 0; i < n; i++) {
			uint32_t j = tl_rng_bounded(&rng, (uint32_t)n);
			bx[i] = x[j];
			by[i] = y[j];
		}
		double tb = qual_kendall_tau_b(bx, by, n), rb = qual_spearman_rho(bx, by, n);
		if (isnan(tb) || isnan(rb))
			continue;
		t[k] = tb;
		r[k] = rb;
		k++;
	}
	if (k >= 10) {
		qsort(t, (size_t)k, sizeof *t, cmp_double);
		qsort(r, (size_t)k, sizeof *r, cmp_double);
		int lo = (int)floor(0.025 * (k - 1)), hi = (int)ceil(0.975 * (k - 1));
		out->tau_lo = t[lo];
		out->tau_hi = t[hi];
		out->rho_lo = r[lo];
		out->rho_hi = r[hi];
	}
	free(t);
	free(bx);
	return 0;
}

void qual_fidelity_free(qual_fidelity *f)
{
	if (f == NULL)
		return;
	free(f->q);
	free(f->qs);
	free(f->agree);
	memset(f, 0, sizeof *f);
}

int qual_fidelity_stats(qual_fidelity *f, int resamples, uint64_t seed, tl_err *err)
{
	int n = f->n, nb = f->nb, ns = f->ns;
	free(f->agree);
	f->agree = calloc((size_t)nb * nb, sizeof *f->agree);
	double *x = malloc((size_t)n * 2 * sizeof *x);
	if (f->agree == NULL || x == NULL) {
		free(x);
		return tl_err_set(err, TL_ENOMEM, "fidelity: out of memory");
	}
	double *y = x + n;
	for (int a = 0; a < nb; a++)
		for (int b = 0; b < nb; b++) {
			for (int i = 0; i < n; i++) {
				x[i] = f->q[(size_t)i * nb + a];
				y[i] = f->q[(size_t)i * nb + b];
			}
			if (qual_rank_agreement(&f->agree[a * nb + b], x, y, n, a == b ? 0 : resamples,
			                        seed) < 0) {
				free(x);
				return tl_err_set(err, TL_ENOMEM, "fidelity: out of memory");
			}
		}
	/* the seed noise at the lowest budget: |q(seed s) - q(seed 1)| over
	 * genomes and seeds; sigma: the sd of one training's value */
	f->noise_median = f->noise_sigma = NAN;
	f->seed_agree = (qual_agreement){NAN, NAN, NAN, NAN, NAN, NAN};
	if (ns >= 2) {
		int m = 0;
		double ss = 0;
		double *d = malloc((size_t)n * (size_t)(ns - 1) * sizeof *d);
		if (d == NULL) {
			free(x);
			return tl_err_set(err, TL_ENOMEM, "fidelity: out of memory");
		}
		for (int i = 0; i < n; i++)
			for (int s = 1; s < ns; s++) {
				double diff = f->qs[(size_t)i * ns + s] - f->qs[(size_t)i * ns];
				d[m++] = fabs(diff);
				ss += diff * diff;
			}
		qsort(d, (size_t)m, sizeof *d, cmp_double);
		f->noise_median = m % 2 ? d[m / 2] : 0.5 * (d[m / 2 - 1] + d[m / 2]);
		f->noise_sigma = sqrt(ss / m / 2.0); /* Var(a - b) = 2 sigma^2 */
		free(d);
		for (int i = 0; i < n; i++) {
			x[i] = f->qs[(size_t)i * ns];
			y[i] = f->qs[(size_t)i * ns + 1];
		}
		qual_rank_agreement(&f->seed_agree, x, y, n, resamples, seed);
	}
	/* the spread of each budget's values, and the first budget whose ranking
	 * agrees with the highest's to tau >= 0.8 */
	f->enough = -1;
	for (int b = 0; b < nb; b++) {
		double lo = INFINITY, hi = -INFINITY;
		for (int i = 0; i < n; i++) {
			double v = f->q[(size_t)i * nb + b];
			lo = v < lo ? v : lo;
			hi = v > hi ? v : hi;
		}
		f->spread[b] = hi - lo;
		if (f->enough < 0 && b < nb - 1 && f->agree[b * nb + nb - 1].tau >= 0.8)
			f->enough = b;
	}
	free(x);
	return 0;
}

/* ---- the study ------------------------------------------------------------------------ */

typedef struct study_progress {
	const qual_fidelity_cfg *cfg;
	int64_t done_before, total; /* tokens */
	int64_t last;               /* tokens of the training in progress */
	double t0;
	int genome, budget, seed;
} study_progress;

static void on_step(void *ud, const qual_point *p, int64_t total_steps)
{
	study_progress *sp = ud;
	(void)total_steps;
	sp->last = p->tokens;
	if (sp->cfg->progress)
		sp->cfg->progress(sp->cfg->progress_ud, sp->genome, sp->budget, sp->seed,
		                  sp->done_before + sp->last, sp->total, tl_now_s() - sp->t0);
}

int qual_fidelity_run(qual_fidelity *f, const genome *gs, int n, const qual_fidelity_cfg *cfg,
                      op_pool *pool, tl_err *err)
{
	memset(f, 0, sizeof *f);
	int nb = cfg->n_budgets, ns = cfg->seeds < 1 ? 1 : cfg->seeds;
	if (n < 3 || nb < 2 || nb > QUAL_FIDELITY_MAX_BUDGETS)
		return tl_err_set(err, TL_EUSAGE,
		                  "fidelity: %d genomes and %d budgets: give at least 3 genomes and 2 "
		                  "to %d budgets",
		                  n, nb, QUAL_FIDELITY_MAX_BUDGETS);
	for (int b = 1; b < nb; b++)
		if (cfg->budgets[b] <= cfg->budgets[b - 1])
			return tl_err_set(err, TL_EUSAGE, "fidelity: budgets must increase (%lld after %lld)",
			                  (long long)cfg->budgets[b], (long long)cfg->budgets[b - 1]);
	f->n = n;
	f->nb = nb;
	f->ns = ns;
	memcpy(f->budgets, cfg->budgets, (size_t)nb * sizeof f->budgets[0]);
	f->q = malloc((size_t)n * nb * sizeof *f->q);
	f->qs = malloc((size_t)n * ns * sizeof *f->qs);
	if (f->q == NULL || f->qs == NULL) {
		qual_fidelity_free(f);
		return tl_err_set(err, TL_ENOMEM, "fidelity: out of memory");
	}
	/* tokens trained, for the ETA: each budget's training continues the
	 * last trunk (its new trunk steps plus its decay), the extra seeds B0 */
	study_progress sp = {.cfg = cfg, .t0 = tl_now_s()};
	int64_t per = 0, prev_trunk = 0;
	for (int b = 0; b < nb; b++) {
		int64_t decay = (int64_t)(cfg->train.decay_frac * (double)cfg->budgets[b] + 0.5);
		per += cfg->budgets[b] - prev_trunk;
		prev_trunk = cfg->budgets[b] - decay;
	}
	sp.total = (int64_t)n * (per + (int64_t)(ns - 1) * cfg->budgets[0]);
	int rc = 0;
	for (int i = 0; i < n && rc == 0; i++) {
		for (int s = 0; s < ns && rc == 0; s++) {
			for (int b = 0; b < (s == 0 ? nb : 1) && rc == 0; b++) {
				qual_train_cfg c = cfg->train;
				c.schedule = QUAL_SCHED_WSD;
				c.tokens = cfg->budgets[b];
				c.seed = cfg->train.seed + (uint64_t)s;
				c.progress = on_step;
				c.progress_ud = &sp;
				sp.genome = i;
				sp.budget = b;
				sp.seed = s;
				sp.last = 0;
				qual_result r;
				rc = qual_eval_train(&r, &gs[i], &c, pool, err);
				if (rc < 0) {
					tl_err_prefix(err, "fidelity: genome %d of %d, %lld tokens, seed %llu", i + 1,
					              n, (long long)c.tokens, (unsigned long long)c.seed);
					break;
				}
				/* what this training added (a continued one: from its checkpoint) */
				sp.done_before += (r.steps - r.resumed_step) * (int64_t)c.batch * c.seq;
				if (s == 0)
					f->q[(size_t)i * nb + b] = r.val_bpb;
				if (b == 0)
					f->qs[(size_t)i * ns + s] = r.val_bpb;
				if (cfg->result)
					rc = cfg->result(cfg->progress_ud, i, b, s, &c, &r, err);
				qual_result_free(&r);
			}
		}
	}
	f->seconds = tl_now_s() - sp.t0;
	if (rc == 0)
		rc = qual_fidelity_stats(f, cfg->resamples, cfg->train.seed, err);
	if (rc < 0)
		qual_fidelity_free(f);
	return rc;
}
