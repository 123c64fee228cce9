/*
 * evolve/qeval.c: the search's quality metrics from the quality room's
 * evaluators (train: byte-level LM on a corpus; mad: the MAD tasks; command:
 * an external evaluator, e.g. a Slurm job). One evaluation per genome; the
 * trainer gets its own thread pool of quality.threads threads.
 */
#include "evolve.h"
#include "quality.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int ev_quality_eval(const ev_config *c, const genome *g, double *vals, tl_err *err)
{
	return ev_quality_eval_stoppable(c, g, vals, NULL, NULL, err);
}

static int quality_eval(const ev_config *c, const genome *g, int level, double *vals,
                        bool (*stop)(void *ud), void *stop_ud, tl_err *err);

int ev_quality_eval_stoppable(const ev_config *c, const genome *g, double *vals,
                              bool (*stop)(void *ud), void *stop_ud, tl_err *err)
{
	return quality_eval(c, g, c->quality.n_levels > 0 ? 0 : -1, vals, stop, stop_ud, err);
}

int ev_quality_eval_level(const ev_config *c, const genome *g, int level, double *vals,
                          bool (*stop)(void *ud), void *stop_ud, tl_err *err)
{
	if (level < 0 || level >= c->quality.n_levels)
		return tl_err_set(err, TL_EINVAL, "quality: level %d of %d", level, c->quality.n_levels);
	return quality_eval(c, g, level, vals, stop, stop_ud, err);
}

/* level -1: the config's single budget; else multi-fidelity level. */
static int quality_eval(const ev_config *c, const genome *g, int level, double *vals,
                        bool (*stop)(void *ud), void *stop_ud, tl_err *err)
{
	const ev_quality *q = &c->quality;
	int nm = c->n_obj + c->n_con;
	int rc = 0;
	if (q->kind == EV_QUAL_COMMAND) {
		qual_metric *m = NULL;
		int n = 0;
		qual_cmd_cfg cc = {q->argv, q->timeout_s, q->settings};
		if ((rc = qual_eval_command(&m, &n, g, &cc, err)) < 0)
			return rc;
		for (int i = 0; i < nm && rc == 0; i++) {
			const ev_metric *mt = i < c->n_obj ? &c->obj[i].m : &c->con[i - c->n_obj].m;
			if (!mt->quality)
				continue;
			int j = 0;
			while (j < n && strcmp(m[j].name, mt->base) != 0)
				j++;
			if (j == n)
				rc = tl_err_set(err, TL_EPARSE, "quality command: its metrics lack '%s' (it "
				                "returned %d metric%s)", mt->base, n, n == 1 ? "" : "s");
			else
				vals[i] = m[j].value;
		}
		free(m);
		return rc;
	}
	qual_train_cfg t = qual_train_cfg_default();
	t.stop = stop;
	t.stop_ud = stop_ud;
	if (q->width)
		t.width = q->width;
	if (q->tokens)
		t.tokens = q->tokens;
	if (q->val_tokens)
		t.val_tokens = q->val_tokens;
	if (q->batch)
		t.batch = q->batch;
	if (q->seq)
		t.seq = q->seq;
	if (q->lr > 0) {
		t.opt.lr = q->lr;
		t.opt.min_lr = q->lr / 10;
	}
	t.seed = q->seed;
	t.threads = q->threads;
	t.corpus = q->corpus[0] ? q->corpus : NULL;
	t.mad_tasks = q->mad_tasks;
	if (q->epochs)
		t.mad_epochs = q->epochs;
	char dir[4200];
	if (level >= 0) {
		/* one WSD training per genome, continued level after level: the
		 * warm-up is fixed in steps by the lowest budget */
		if ((rc = qual_ckpt_dir(dir, sizeof dir, err)) < 0)
			return rc;
		t.schedule = QUAL_SCHED_WSD;
		t.tokens = q->budgets[level];
		t.ckpt_dir = dir;
		t.opt.warmup = (int64_t)(t.warmup_frac * (double)(q->budgets[0] / ((int64_t)t.batch * t.seq)));
		if (t.opt.warmup < 1)
			t.opt.warmup = 1;
	}
	op_pool *pool = NULL;
	if ((rc = op_pool_create(&pool, q->threads > 0 ? q->threads : 1, err)) < 0)
		return rc;
	qual_result r;
	memset(&r, 0, sizeof r);
	rc = q->kind == EV_QUAL_TRAIN ? qual_eval_train(&r, g, &t, pool, err)
	                              : qual_eval_mad(&r, g, &t, pool, err);
	op_pool_free(pool);
	if (rc < 0)
		return rc;
	for (int i = 0; i < nm; i++) {
		const ev_metric *mt = i < c->n_obj ? &c->obj[i].m : &c->con[i - c->n_obj].m;
		if (!mt->quality)
			continue;
		if (!strcmp(mt->base, "val_bpb"))
			vals[i] = r.val_bpb;
		else if (!strcmp(mt->base, "val_loss"))
			vals[i] = r.val_loss;
		else if (!strcmp(mt->base, "train_loss"))
			vals[i] = r.train_loss;
		else if (!strcmp(mt->base, "mad_mean")) {
			double s = 0;
			int k = 0;
			for (int j = 0; j < QUAL_MAD_TASKS; j++)
				if (!isnan(r.mad_acc[j])) {
					s += r.mad_acc[j];
					k++;
				}
			vals[i] = k ? s / k : NAN;
		} else {
			int task = qual_mad_task_lookup(mt->base + 4);
			vals[i] = task >= 0 ? r.mad_acc[task] : NAN;
		}
	}
	qual_result_free(&r);
	return 0;
}
