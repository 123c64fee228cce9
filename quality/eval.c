/*
 * quality/eval.c: the built-in evaluators. `train` trains the proxy on a
 * byte-level corpus for a token budget and scores the held-out tail; `mad`
 * trains a fresh proxy per MAD task and scores test accuracy.
 *
 * Workload: one training step = forward + backward + AdamW over B x T
 * tokens; everything is allocated once per evaluation. Randomness: PCG32
 * streams of the seed, one per purpose (weights, batches, each MAD task's
 * train and test sets), so a seed fixes the result bit for bit, whatever the
 * thread count.
 */
#include "quality.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum {
	STREAM_BATCH = 100,
	STREAM_MAD_TRAIN = 1000,
	STREAM_MAD_TEST = 2000,
	STREAM_MAD_ORDER = 3000,
};

qual_train_cfg qual_train_cfg_default(void)
{
	qual_train_cfg c = {
		.width = 128,
		.tokens = 1 << 20,
		.batch = 8,
		.seq = 256,
		.seed = 1,
		.opt = {.lr = 2e-3, .min_lr = 2e-4, .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8,
		        .weight_decay = 0.1, .clip = 1.0},
		.warmup_frac = 0.05,
		.val_frac = 0.1,
		.val_tokens = 65536,
		.mad_epochs = 1,
		.decay_frac = 0.2,
	};
	return c;
}

void qual_result_free(qual_result *r)
{
	if (r == NULL)
		return;
	free(r->curve);
	r->curve = NULL;
	r->n_curve = 0;
}


static void result_init(qual_result *r)
{
	memset(r, 0, sizeof *r);
	r->val_loss = r->val_bpb = r->train_loss = NAN;
	for (int t = 0; t < QUAL_MAD_TASKS; t++)
		r->mad_acc[t] = NAN;
}

static int curve_add(qual_result *r, const qual_point *p, tl_err *err)
{
	if ((r->n_curve & (r->n_curve - 1)) == 0) { /* grow at powers of two */
		qual_point *c = realloc(r->curve, (size_t)(r->n_curve ? 2 * r->n_curve : 16) *
		                                      sizeof *c);
		if (c == NULL)
			return tl_err_set(err, TL_ENOMEM, "train: out of memory");
		r->curve = c;
	}
	r->curve[r->n_curve++] = *p;
	return 0;
}

/* Model, optimiser state and the proxy for one evaluation. */
typedef struct trainer {
	qual_model *m;
	float *mom, *vel;
	uint8_t *decay;
	int64_t np;
	qual_optim_cfg opt;
} trainer;

static void trainer_free(trainer *t)
{
	qual_model_free(t->m);
	free(t->mom);
	free(t->vel);
	free(t->decay);
	memset(t, 0, sizeof *t);
}

static int trainer_init(trainer *t, qual_result *r, const genome *g, int vocab, int batch, int seq,
                        bool autoencode, const qual_train_cfg *cfg, int64_t steps, tl_err *err)
{
	memset(t, 0, sizeof *t);
	genome pg;
	op_arch *a = malloc(sizeof *a);
	genome_arch *ga = malloc(sizeof *ga);
	int rc = 0;
	if (a == NULL || ga == NULL) {
		rc = tl_err_set(err, TL_ENOMEM, "train: out of memory");
		goto out;
	}
	if ((rc = qual_proxy_genome(&pg, g, cfg->width, vocab, err)) < 0 ||
	    (rc = qual_arch_of(a, &pg, err)) < 0 || (rc = genome_decode(ga, &pg, err)) < 0)
		goto out;
	char *text = genome_arch_describe(ga);
	if (text) {
		tl_sha256_hex(text, strlen(text), r->arch_hash);
		free(text);
	}
	qual_model_cfg mc = qual_model_cfg_default();
	mc.max_batch = batch;
	mc.seq_len = seq;
	mc.seed = cfg->seed;
	mc.autoencode = autoencode;
	if ((rc = qual_model_create(&t->m, a, &mc, err)) < 0)
		goto out;
	t->np = qual_model_nparams(t->m);
	t->mom = calloc((size_t)t->np, sizeof(float));
	t->vel = calloc((size_t)t->np, sizeof(float));
	t->decay = calloc((size_t)t->np, 1);
	if (t->mom == NULL || t->vel == NULL || t->decay == NULL) {
		rc = tl_err_set(err, TL_ENOMEM, "train: out of memory for the optimiser state");
		goto out;
	}
	int64_t off, rows, cols;
	bool dec;
	for (int j = 0; qual_model_tensor(t->m, j, &off, &rows, &cols, &dec); j++)
		memset(t->decay + off, dec ? 1 : 0, (size_t)(rows * cols));
	t->opt = cfg->opt;
	t->opt.steps = steps;
	if (t->opt.warmup <= 0)
		t->opt.warmup = (int64_t)(cfg->warmup_frac * (double)steps);
	r->params = t->np;
out:
	free(a);
	free(ga);
	if (rc < 0)
		trainer_free(t);
	return rc;
}

/* One step on (tok, tgt): returns the loss. */
static int trainer_step(trainer *t, op_pool *pool, int64_t step, const int32_t *tok,
                        const int32_t *tgt, int B, int T, double *loss, tl_err *err)
{
	if (qual_model_forward(t->m, pool, tok, tgt, B, T, loss, NULL, err) < 0)
		return TL_EINVAL;
	qual_model_backward(t->m, pool);
	qual_adamw_step(&t->opt, step, qual_model_params(t->m), qual_model_grads(t->m), t->mom,
	                t->vel, t->decay, t->np, pool);
	return 0;
}

static int64_t log_every(const qual_train_cfg *cfg, int64_t steps)
{
	if (cfg->log_every > 0)
		return cfg->log_every;
	int64_t e = steps / 50;
	return e < 1 ? 1 : e;
}

/* ---- train ----------------------------------------------------------------------- */

/* The checkpoints' key: everything that decides the trunk's state at a
 * given step, i.e. not the budget (TRAINER_STATE_VERSION changes when the
 * trainer's arithmetic does). */
#define TRAINER_STATE_VERSION 1
static void ckpt_key(char out[65], const char *arch_hash, const unsigned char *corpus,
                     size_t n, const qual_train_cfg *c, const qual_optim_cfg *o)
{
	char corpus_hash[65], text[1024];
	tl_sha256_hex(corpus, n, corpus_hash);
	qual_model_cfg mc = qual_model_cfg_default();
	snprintf(text, sizeof text,
	         "tailor-trunk/%d arch=%s corpus=%s val_frac=%.17g width=%d batch=%d seq=%d "
	         "seed=%llu init_std=%.9g eps=%.9g lr=%.17g beta1=%.17g beta2=%.17g "
	         "adam_eps=%.17g wd=%.17g clip=%.17g warmup=%lld",
	         TRAINER_STATE_VERSION, arch_hash, corpus_hash, c->val_frac, c->width, c->batch,
	         c->seq, (unsigned long long)c->seed, (double)mc.init_std, (double)mc.norm_eps, o->lr,
	         o->beta1, o->beta2, o->eps, o->weight_decay, o->clip, (long long)o->warmup);
	tl_sha256_hex(text, strlen(text), out);
}

int qual_eval_train(qual_result *out, const genome *g, const qual_train_cfg *cfg, op_pool *pool,
                    tl_err *err)
{
	result_init(out);
	if (cfg->corpus == NULL)
		return tl_err_set(err, TL_EUSAGE, "train: no corpus file given");
	if (cfg->batch < 1 || cfg->seq < 2 || cfg->tokens < 1)
		return tl_err_set(err, TL_EINVAL, "train: batch %d, sequence %d and tokens %lld must "
		                  "be positive (sequence >= 2)", cfg->batch, cfg->seq,
		                  (long long)cfg->tokens);
	char *text = NULL;
	size_t n = 0;
	int rc = tl_file_read(&text, &n, cfg->corpus, 0, err);
	if (rc < 0) {
		tl_err_prefix(err, "train: corpus");
		return rc;
	}
	int64_t nval = (int64_t)((double)n * cfg->val_frac), ntrain = (int64_t)n - nval;
	int T = cfg->seq, B = cfg->batch;
	if (ntrain < T + 2 || nval < T + 2) {
		free(text);
		return tl_err_set(err, TL_EINVAL, "train: corpus %s: %zu bytes are too few for "
		                  "sequences of %d with %.0f%% held out (give a longer corpus)",
		                  cfg->corpus, n, T, cfg->val_frac * 100);
	}
	const unsigned char *bytes = (const unsigned char *)text;
	int64_t steps = cfg->tokens / ((int64_t)B * T);
	if (steps < 1)
		steps = 1;
	trainer tr;
	int32_t *tok = malloc((size_t)B * T * sizeof(int32_t));
	int32_t *tgt = malloc((size_t)B * T * sizeof(int32_t));
	if (tok == NULL || tgt == NULL) {
		rc = tl_err_set(err, TL_ENOMEM, "train: out of memory");
		goto out_buf;
	}
	bool wsd = cfg->schedule == QUAL_SCHED_WSD;
	if (wsd && cfg->ckpt_dir && cfg->opt.warmup <= 0) {
		rc = tl_err_set(err, TL_EINVAL, "train: a schedule that continues from checkpoints "
		                "needs its warm-up in steps (opt.warmup), not as a fraction of a budget");
		goto out_buf;
	}
	if ((rc = trainer_init(&tr, out, g, 256, B, T, false, cfg, steps, err)) < 0)
		goto out_buf;
	/* WSD: the trunk (constant lr after the warm-up), then the decay */
	int64_t trunk = steps;
	if (wsd) {
		int64_t nd = (int64_t)(cfg->decay_frac * (double)steps + 0.5);
		if (nd < 1 && steps > 1)
			nd = 1;
		if (nd > steps)
			nd = steps;
		trunk = steps - nd;
		tr.opt.schedule = QUAL_SCHED_WSD;
		tr.opt.decay_from = trunk;
	}
	out->trunk_steps = wsd ? trunk : steps;
	tl_rng rng;
	tl_rng_seed(&rng, cfg->seed, STREAM_BATCH);
	int64_t s0 = 0;
	qual_ckpt ck = {.n = tr.np, .params = qual_model_params(tr.m), .m = tr.mom, .v = tr.vel};
	if (wsd && cfg->ckpt_dir) {
		ckpt_key(ck.key, out->arch_hash, bytes, n, cfg, &tr.opt);
		tl_strlcpy(out->ckpt_key, ck.key, sizeof out->ckpt_key);
		if ((rc = qual_ckpt_find(cfg->ckpt_dir, ck.key, trunk, &ck.step, err)) < 0)
			goto out;
		if (ck.step > 0) {
			if ((rc = qual_ckpt_load(cfg->ckpt_dir, &ck, err)) < 0)
				goto out;
			rng = ck.rng;
			s0 = ck.step;
			out->resumed_step = s0;
		}
	}
	int64_t every = log_every(cfg, steps);
	double t0 = tl_now_s(), tail = 0;
	int64_t ntail = 0;
	for (int64_t s = s0; s < steps; s++) {
		if (s == trunk && wsd && cfg->ckpt_dir && trunk > s0) {
			/* the trunk's end: what a longer budget continues from */
			ck.step = trunk;
			ck.rng = rng;
			if ((rc = qual_ckpt_save(cfg->ckpt_dir, &ck, err)) < 0)
				goto out;
		}
		for (int b = 0; b < B; b++) {
			int64_t off = (int64_t)tl_rng_range(&rng, 0, ntrain - T - 1);
			for (int t = 0; t < T; t++) {
				tok[b * T + t] = bytes[off + t];
				tgt[b * T + t] = bytes[off + t + 1];
			}
		}
		double loss;
		if (cfg->stop && cfg->stop(cfg->stop_ud)) {
			rc = tl_err_set(err, TL_ESTOPPED, "train: stopped at step %lld of %lld",
			                (long long)s, (long long)steps);
			goto out;
		}
		if ((rc = trainer_step(&tr, pool, s, tok, tgt, B, T, &loss, err)) < 0)
			goto out;
		if (!isfinite(loss)) {
			rc = tl_err_set(err, TL_EFAIL, "train: loss diverged (%g) at step %lld of %lld "
			                "(lower the learning rate)", loss, (long long)s, (long long)steps);
			goto out;
		}
		/* the training loss: the last 10% of the steps, or WSD's decay */
		if (wsd ? s >= trunk || trunk == steps : s >= steps - (steps + 9) / 10) {
			tail += loss;
			ntail++;
		}
		if ((s + 1) % every == 0 || s == s0 || s + 1 == steps) {
			qual_point p = {-1, s + 1, (s + 1) * B * T, loss, qual_lr_at(&tr.opt, s), NAN};
			if ((rc = curve_add(out, &p, err)) < 0)
				goto out;
			if (cfg->progress)
				cfg->progress(cfg->progress_ud, &p, steps);
		}
	}
	out->seconds = tl_now_s() - t0;
	out->steps = steps;
	out->tokens = steps * B * T;
	out->tokens_per_s = out->seconds > 0 ? (double)(steps - s0) * B * T / out->seconds : 0;
	out->train_loss = tail / (double)(ntail ? ntail : 1);
	/* validation: consecutive windows of the held-out tail, in order */
	{
		int64_t nwin = (nval - 1) / T;
		if (cfg->val_tokens > 0 && nwin > cfg->val_tokens / T)
			nwin = cfg->val_tokens / T > 0 ? cfg->val_tokens / T : 1;
		double sum = 0;
		int64_t cnt = 0;
		for (int64_t w0 = 0; w0 < nwin; w0 += B) {
			int nb = (int)(nwin - w0 < B ? nwin - w0 : B);
			for (int b = 0; b < nb; b++) {
				int64_t off = ntrain + (w0 + b) * T;
				for (int t = 0; t < T; t++) {
					tok[b * T + t] = bytes[off + t];
					tgt[b * T + t] = bytes[off + t + 1];
				}
			}
			double loss;
			int64_t c;
			if ((rc = qual_model_forward(tr.m, pool, tok, tgt, nb, T, &loss, &c, err)) < 0)
				goto out;
			sum += loss * (double)c;
			cnt += c;
		}
		out->val_loss = sum / (double)cnt;
		out->val_bpb = out->val_loss / log(2.0);
		if (out->n_curve > 0)
			out->curve[out->n_curve - 1].val_loss = out->val_loss;
	}
out:
	trainer_free(&tr);
out_buf:
	free(tok);
	free(tgt);
	free(text);
	if (rc < 0)
		qual_result_free(out);
	return rc;
}

/* ---- mad ------------------------------------------------------------------------------ */

static int mad_task(qual_result *out, const genome *g, int task, const qual_train_cfg *cfg,
                    op_pool *pool, tl_err *err)
{
	qual_mad_spec s = qual_mad_baseline(task);
	if (cfg->mad_train_examples > 0)
		s.train_examples = cfg->mad_train_examples;
	if (cfg->mad_test_examples > 0)
		s.test_examples = cfg->mad_test_examples;
	int T = s.seq_len, B = cfg->batch;
	int64_t ntr = s.train_examples, nte = s.test_examples;
	int64_t steps = cfg->tokens > 0 ? cfg->tokens / ((int64_t)B * T)
	                                : (int64_t)cfg->mad_epochs * ntr / B;
	if (steps < 1)
		steps = 1;
	int rc = 0;
	int32_t *tr_in = malloc((size_t)(ntr * T) * sizeof(int32_t));
	int32_t *tr_tg = malloc((size_t)(ntr * T) * sizeof(int32_t));
	int32_t *te_in = malloc((size_t)(nte * T) * sizeof(int32_t));
	int32_t *te_tg = malloc((size_t)(nte * T) * sizeof(int32_t));
	int32_t *tok = malloc((size_t)B * T * sizeof(int32_t));
	int32_t *tgt = malloc((size_t)B * T * sizeof(int32_t));
	int64_t *order = malloc((size_t)ntr * sizeof(int64_t));
	trainer tr = {0};
	if (!tr_in || !tr_tg || !te_in || !te_tg || !tok || !tgt || !order) {
		rc = tl_err_set(err, TL_ENOMEM, "mad %s: out of memory for %lld examples",
		                qual_mad_task_name(task), (long long)(ntr + nte));
		goto out;
	}
	tl_rng rtr, rte, ro;
	tl_rng_seed(&rtr, cfg->seed, STREAM_MAD_TRAIN + (uint64_t)task);
	tl_rng_seed(&rte, cfg->seed, STREAM_MAD_TEST + (uint64_t)task);
	tl_rng_seed(&ro, cfg->seed, STREAM_MAD_ORDER + (uint64_t)task);
	for (int64_t e = 0; e < ntr; e++)
		qual_mad_instance(task, &s, true, &rtr, tr_in + e * T, tr_tg + e * T);
	for (int64_t e = 0; e < nte; e++)
		qual_mad_instance(task, &s, false, &rte, te_in + e * T, te_tg + e * T);
	if ((rc = trainer_init(&tr, out, g, s.vocab, B, T, s.autoencode, cfg, steps, err)) < 0) {
		tl_err_prefix(err, "mad %s", qual_mad_task_name(task));
		goto out;
	}
	int64_t every = log_every(cfg, steps), pos = ntr;
	for (int64_t st = 0; st < steps; st++) {
		for (int b = 0; b < B; b++) {
			if (pos == ntr) { /* a new epoch: a fresh order */
				for (int64_t e = 0; e < ntr; e++)
					order[e] = e;
				tl_rng_shuffle(&ro, order, (size_t)ntr, sizeof order[0]);
				pos = 0;
			}
			int64_t e = order[pos++];
			memcpy(tok + b * T, tr_in + e * T, (size_t)T * sizeof(int32_t));
			memcpy(tgt + b * T, tr_tg + e * T, (size_t)T * sizeof(int32_t));
		}
		double loss;
		if (cfg->stop && cfg->stop(cfg->stop_ud)) {
			rc = tl_err_set(err, TL_ESTOPPED, "mad: stopped at step %lld of %lld",
			                (long long)st, (long long)steps);
			goto out;
		}
		if ((rc = trainer_step(&tr, pool, st, tok, tgt, B, T, &loss, err)) < 0)
			goto out;
		if ((st + 1) % every == 0 || st == 0 || st + 1 == steps) {
			qual_point p = {task, st + 1, (st + 1) * B * T, loss, qual_lr_at(&tr.opt, st), NAN};
			if ((rc = curve_add(out, &p, err)) < 0)
				goto out;
			if (cfg->progress)
				cfg->progress(cfg->progress_ud, &p, steps);
		}
	}
	out->steps += steps;
	out->tokens += steps * B * T;
	/* accuracy of the argmax at every probed position of the test split */
	int64_t correct = 0, total = 0;
	int64_t V = s.vocab;
	for (int64_t e0 = 0; e0 < nte; e0 += B) {
		int nb = (int)(nte - e0 < B ? nte - e0 : B);
		double loss;
		if ((rc = qual_model_forward(tr.m, pool, te_in + e0 * T, te_tg + e0 * T, nb, T, &loss,
		                             NULL, err)) < 0)
			goto out;
		const float *lg = qual_model_logits(tr.m);
		for (int64_t i = 0; i < (int64_t)nb * T; i++) {
			int32_t want = te_tg[e0 * T + i];
			if (want == QUAL_IGNORE)
				continue;
			const float *z = lg + i * V;
			int32_t best = 0;
			for (int64_t v = 1; v < V; v++)
				if (z[v] > z[best])
					best = (int32_t)v;
			correct += best == want;
			total++;
		}
	}
	out->mad_acc[task] = total ? (double)correct / (double)total : NAN;
out:
	trainer_free(&tr);
	free(tr_in);
	free(tr_tg);
	free(te_in);
	free(te_tg);
	free(tok);
	free(tgt);
	free(order);
	return rc;
}

int qual_eval_mad(qual_result *out, const genome *g, const qual_train_cfg *cfg, op_pool *pool,
                  tl_err *err)
{
	result_init(out);
	if (cfg->batch < 1)
		return tl_err_set(err, TL_EINVAL, "mad: batch %d must be >= 1", cfg->batch);
	unsigned mask = cfg->mad_tasks ? cfg->mad_tasks : (1u << QUAL_MAD_TASKS) - 1;
	double t0 = tl_now_s();
	for (int t = 0; t < QUAL_MAD_TASKS; t++) {
		if (!(mask & (1u << t)))
			continue;
		int rc = mad_task(out, g, t, cfg, pool, err);
		if (rc < 0) {
			qual_result_free(out);
			return rc;
		}
	}
	out->seconds = tl_now_s() - t0;
	out->tokens_per_s = out->seconds > 0 ? (double)out->tokens / out->seconds : 0;
	return 0;
}
