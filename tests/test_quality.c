/*
 * tests/test_quality.c: the trainer against independent references.
 *  - every gradient against central finite differences of the loss: per
 *    tensor, along a random direction and at single elements, on small
 *    genomes that hold every structure (dense softmax and sigmoid GQA with
 *    window and block masks, low-rank with and without the feature map,
 *    semi-separable with and without silu, Toeplitz short conv, Hyena-X and
 *    Hyena-SE featurizer convs, SwiGLU / GLU / bilinear), every projection
 *    kind (dense, diagonal, per-head), QK-norm, RoPE, the tied head and
 *    embedding, weight sharing and feature (KV) sharing, and the MAD
 *    autoencoder head;
 *  - the training forward against the runtime's inference forward
 *    (operators/model.c): the same weights through a tailor-weights/1 file,
 *    the logits of every position;
 *  - bit-identical losses, gradients and trained weights for 1, 2 and 3
 *    threads;
 *  - AdamW, the schedule and clipping against a scalar transcription;
 *  - the MAD generators' published shapes and invariants;
 *  - a short training run whose loss falls.
 * argv[1]: the source root (for data/tinyshakespeare.txt).
 */
#include "op_model.h"
#include "quality.h"
#include "tl_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *root = ".";

/* Every structure and featurizer option, two genomes (8 classes at most). */
static const char *const genomes[] = {
	/* GQA+RoPE+QK-norm, sliding window, linear attention (posfeat), recurrence
	 * (silu), LFM2 short conv, Hyena-X, Hyena-SE, SwiGLU */
	"tailor-genome/1 d=16 vocab=11 ffn_multiple=1 rope_theta=10000 tied=1 | 0.0.0.0.0 "
	"1.0.0.0.0 2.0.0.0.0 3.0.0.0.0 4.0.0.0.0 5.0.0.0.0 6.0.0.0.0 7.0.0.0.0 | c0 op=0.4.0.1.1 "
	"h=4 kv=2 hd=4 qkn=1 rope=1 C=0.2.1.1 B=0.2.1.2 V=0.2.1.2 | c1 op=0.4.1.1.1 h=4 kv=2 hd=4 "
	"len=3 qkn=1 rope=1 C=0.2.1.1 B=0.2.1.2 V=0.2.1.2 | c2 op=0.1.0.4.1 h=4 kv=4 hd=4 qkn=0 "
	"rope=0 C=0.2.1.1 B=0.2.1.1 V=0.2.1.1 | c3 op=2.2.0.2.1 h=4 hd=4 C=0.2.1.1 B=0.2.1.1 "
	"V=0.2.1.1 A=0.2.1.1 | c4 op=1.3.0.0.0 len=3 C=0.2.1.1 B=0.2.1.1 V=0.2.1.1 | c5 "
	"op=1.3.0.0.0 len=1 C=3.2.1.1 B=3.2.1.1 V=3.2.1.1 | c6 op=1.3.0.0.0 len=4 C=2.2.1.1 "
	"B=2.2.1.1 V=2.2.1.1 | c7 op=3.0.0.2.0 ffn=96 C=0.2.1.1 V=0.2.1.1",
	/* block-local sigmoid attention with per-head and diagonal projections,
	 * linear attention without feature map, GLU, bilinear, recurrence with
	 * expanded state, GQA with weight sharing (all, CB, V) and KV sharing */
	"tailor-genome/1 d=16 vocab=11 ffn_multiple=1 rope_theta=10000 tied=1 | 0.0.0.0.0 "
	"1.0.0.0.0 2.0.0.0.0 3.0.0.0.0 4.0.0.0.0 5.1.1.0.0 5.1.1.0.0 5.0.0.1.1 5.0.0.1.1 "
	"5.2.2.0.0 5.2.2.2.3 5.2.2.2.3 6.3.3.0.0 6.3.3.0.0 | c0 op=0.4.2.3.1 h=4 kv=4 hd=4 len=3 "
	"qkn=0 rope=1 C=0.1.1.1 B=0.1.1.1 V=0.0.1.1 | c1 op=0.1.0.0.1 h=2 kv=2 hd=8 C=0.2.1.1 "
	"B=0.2.1.1 V=0.2.1.1 | c2 op=3.0.0.3.0 ffn=64 C=0.2.1.1 V=0.2.1.1 | c3 op=3.0.0.0.0 "
	"ffn=32 C=0.2.1.1 V=0.2.1.1 | c4 op=2.2.0.0.1 h=2 hd=4 C=0.2.2.1 B=0.2.2.1 V=0.2.1.1 "
	"A=0.2.1.1 | c5 op=0.4.0.1.1 h=4 kv=2 hd=4 qkn=1 rope=1 C=0.2.1.1 B=2.2.1.2 V=0.2.1.2 | "
	"c6 op=1.3.0.0.0 len=2 C=0.2.1.1 B=2.2.1.1 V=0.2.1.1",
};
#define N_GENOMES (int)(sizeof genomes / sizeof genomes[0])

static int arch_from_text(op_arch *a, const char *text)
{
	genome g;
	tl_err err = TL_ERR_INIT;
	int rc = genome_parse(&g, text, "test genome", &err);
	if (rc == 0)
		rc = qual_arch_of(a, &g, &err);
	CHECK_MSG(rc == 0, "%s", err.msg);
	return rc;
}

static void random_batch(int32_t *tok, int32_t *tgt, int n, int vocab, uint64_t seed)
{
	tl_rng r;
	tl_rng_seed(&r, seed, 3);
	for (int i = 0; i < n; i++) {
		tok[i] = (int32_t)tl_rng_bounded(&r, (uint32_t)vocab);
		tgt[i] = i % 5 == 4 ? QUAL_IGNORE : (int32_t)tl_rng_bounded(&r, (uint32_t)vocab);
	}
}

static double loss_at(qual_model *m, op_pool *pool, const int32_t *tok, const int32_t *tgt, int B,
                      int T)
{
	double loss = 0;
	tl_err err = TL_ERR_INIT;
	CHECK_MSG(qual_model_forward(m, pool, tok, tgt, B, T, &loss, NULL, &err) == 0, "%s", err.msg);
	return loss;
}

/* Finite differences of every tensor's gradient. */
static void check_grads(const op_arch *a, bool autoencode, const char *what, op_pool *pool)
{
	enum { B = 2, T = 7 };
	qual_model_cfg mc = qual_model_cfg_default();
	mc.max_batch = B;
	mc.seq_len = T;
	mc.seed = 5;
	mc.init_std = 0.3f; /* larger weights: larger gradients above f32 noise */
	mc.autoencode = autoencode;
	qual_model *m = NULL;
	tl_err err = TL_ERR_INIT;
	if (qual_model_create(&m, a, &mc, &err) < 0) {
		CHECK_MSG(0, "%s: %s", what, err.msg);
		return;
	}
	int32_t tok[B * T], tgt[B * T];
	random_batch(tok, tgt, B * T, (int)a->vocab, 9);
	float *p = qual_model_params(m);
	/* gains away from 1 and conv taps of both signs, so nothing is special */
	tl_rng r;
	tl_rng_seed(&r, 77, 1);
	int64_t np = qual_model_nparams(m);
	for (int64_t k = 0; k < np; k++)
		p[k] += 0.1f * (tl_rng_float(&r) - 0.5f);
	loss_at(m, pool, tok, tgt, B, T);
	qual_model_backward(m, pool);
	float *g0 = malloc((size_t)np * sizeof(float));
	memcpy(g0, qual_model_grads(m), (size_t)np * sizeof(float));
	int64_t off, rows, cols;
	bool decay;
	int worst_j = -1, nt = 0;
	double worst = 0;
	for (int j = 0; qual_model_tensor(m, j, &off, &rows, &cols, &decay); j++) {
		int64_t n = rows * cols;
		nt++;
		/* a random direction over the tensor */
		float *u = malloc((size_t)n * sizeof(float));
		double an = 0, nu = 0;
		for (int64_t k = 0; k < n; k++) {
			u[k] = tl_rng_float(&r) - 0.5f;
			nu += (double)u[k] * u[k];
		}
		for (int64_t k = 0; k < n; k++) {
			u[k] = (float)(u[k] / sqrt(nu));
			an += (double)g0[off + k] * u[k];
		}
		const float eps = 2e-3f;
		float *save = malloc((size_t)n * sizeof(float));
		memcpy(save, p + off, (size_t)n * sizeof(float));
		for (int64_t k = 0; k < n; k++)
			p[off + k] = save[k] + eps * u[k];
		double lp = loss_at(m, pool, tok, tgt, B, T);
		for (int64_t k = 0; k < n; k++)
			p[off + k] = save[k] - eps * u[k];
		double lm = loss_at(m, pool, tok, tgt, B, T);
		memcpy(p + off, save, (size_t)n * sizeof(float));
		double fd = (lp - lm) / (2.0 * eps);
		double rel = fabs(fd - an) / (fabs(an) + 1e-3);
		if (rel > worst) {
			worst = rel;
			worst_j = j;
		}
		if (getenv("QUAL_FD_VERBOSE"))
			fprintf(stderr, "    %s tensor %d (%lldx%lld): an %.6g fd %.6g rel %.2e\n", what, j,
			        (long long)rows, (long long)cols, an, fd, rel);
		CHECK_MSG(fabs(fd - an) <= 6e-5 + 1e-2 * fabs(an),
		          "%s: tensor %d (%lld x %lld): directional derivative %.6g, finite "
		          "differences %.6g", what, j, (long long)rows, (long long)cols, an, fd);
		/* and two single elements */
		for (int e = 0; e < 2; e++) {
			int64_t k = (int64_t)tl_rng_bounded(&r, (uint32_t)n);
			/* one element moves the loss little: a larger step over f32 noise */
			const float ee = 5e-3f;
			float s = p[off + k];
			p[off + k] = s + ee;
			double l1 = loss_at(m, pool, tok, tgt, B, T);
			p[off + k] = s - ee;
			double l2 = loss_at(m, pool, tok, tgt, B, T);
			p[off + k] = s;
			double fe = (l1 - l2) / (2.0 * ee), ae = g0[off + k];
			CHECK_MSG(fabs(fe - ae) <= 6e-5 + 1e-2 * fabs(ae),
			          "%s: tensor %d element %lld: gradient %.6g, finite differences %.6g",
			          what, j, (long long)k, ae, fe);
		}
		free(save);
		free(u);
	}
	fprintf(stderr, "  grads %-28s %3d tensors, worst relative error %.2e (tensor %d)\n", what, nt,
	        worst, worst_j);
	free(g0);
	qual_model_free(m);
}

/* The same weights in the runtime: logits of every position. */
static void check_runtime(const op_arch *a, const char *what, op_pool *pool)
{
	enum { T = 9 };
	qual_model_cfg mc = qual_model_cfg_default();
	mc.max_batch = 1;
	mc.seq_len = T;
	mc.seed = 11;
	mc.init_std = 0.2f;
	qual_model *m = NULL;
	tl_err err = TL_ERR_INIT;
	if (qual_model_create(&m, a, &mc, &err) < 0) {
		CHECK_MSG(0, "%s: %s", what, err.msg);
		return;
	}
	float *p = qual_model_params(m);
	tl_rng r;
	tl_rng_seed(&r, 78, 1);
	for (int64_t k = 0; k < qual_model_nparams(m); k++)
		p[k] += 0.1f * (tl_rng_float(&r) - 0.5f);
	int32_t tok[T], tgt[T];
	random_batch(tok, tgt, T, (int)a->vocab, 21);
	loss_at(m, pool, tok, tgt, 1, T);
	char path[] = "/tmp/tailor-test-quality-XXXXXX";
	int fd = mkstemp(path);
	CHECK(fd >= 0);
	if (fd >= 0)
		close(fd);
	CHECK_MSG(qual_model_save_weights(m, path, &err) == 0, "%s", err.msg);
	op_model_cfg rc = op_model_cfg_default();
	rc.wtype = OP_F32;
	rc.kv_type = OP_KV_F32;
	rc.ctx = T;
	rc.chunk = T;
	rc.weights_path = path;
	op_model *rm = NULL;
	if (op_model_create(&rm, a, &rc, pool, &err) < 0) {
		CHECK_MSG(0, "%s: runtime: %s", what, err.msg);
		unlink(path);
		qual_model_free(m);
		return;
	}
	float *lg = malloc(a->vocab * sizeof(float));
	const float *ref = qual_model_logits(m);
	double worst = 0, scale = 0;
	for (int64_t k = 0; k < (int64_t)T * a->vocab; k++)
		if (fabs(ref[k]) > scale)
			scale = fabs(ref[k]);
	for (int t = 0; t < T; t++) {
		/* the prefill of the first t+1 tokens (parallel forms) ... */
		op_model_reset(rm);
		CHECK_MSG(op_model_prefill(rm, tok, t + 1, lg, &err) == 0, "%s", err.msg);
		for (uint32_t v = 0; v < a->vocab; v++) {
			double e = fabs(lg[v] - ref[(int64_t)t * a->vocab + v]) / scale;
			if (e > worst)
				worst = e;
		}
	}
	/* ... and one decode step at a time (recurrent forms) */
	op_model_reset(rm);
	for (int t = 0; t < T; t++) {
		if (t == 0)
			CHECK(op_model_prefill(rm, tok, 1, lg, &err) == 0);
		else
			CHECK(op_model_decode(rm, tok[t], lg, &err) == 0);
		for (uint32_t v = 0; v < a->vocab; v++) {
			double e = fabs(lg[v] - ref[(int64_t)t * a->vocab + v]) / scale;
			if (e > worst)
				worst = e;
		}
	}
	CHECK_MSG(worst < 1e-5, "%s: training and runtime logits differ by %.3g of their scale",
	          what, worst);
	fprintf(stderr, "  runtime %-28s max |logit difference| / max |logit| = %.2e\n", what, worst);
	free(lg);
	op_model_free(rm);
	unlink(path);
	qual_model_free(m);
}

/* One arch per class of a genome: layer i of genome k alone, for messages. */
static void per_structure(op_pool *pool)
{
	for (int k = 0; k < N_GENOMES; k++) {
		op_arch a;
		if (arch_from_text(&a, genomes[k]) < 0)
			continue;
		char what[64];
		snprintf(what, sizeof what, "genome %d (%d layers)", k, a.n_layers);
		check_grads(&a, false, what, pool);
		check_runtime(&a, what, pool);
	}
	op_arch a;
	if (arch_from_text(&a, genomes[0]) == 0)
		check_grads(&a, true, "genome 0, autoencoder head", pool);
}

/* Bit-identical results for 1, 2 and 3 threads. */
static void check_threads(void)
{
	op_arch a;
	if (arch_from_text(&a, genomes[0]) < 0)
		return;
	enum { B = 3, T = 16 };
	int32_t tok[B * T], tgt[B * T];
	random_batch(tok, tgt, B * T, (int)a.vocab, 5);
	float *ref = NULL;
	double ref_loss = 0;
	for (int nth = 1; nth <= 3; nth++) {
		op_pool *pool = NULL;
		tl_err err = TL_ERR_INIT;
		CHECK(op_pool_create(&pool, nth, &err) == 0);
		qual_model_cfg mc = qual_model_cfg_default();
		mc.max_batch = B;
		mc.seq_len = T;
		qual_model *m = NULL;
		CHECK(qual_model_create(&m, &a, &mc, &err) == 0);
		double loss = loss_at(m, pool, tok, tgt, B, T);
		qual_model_backward(m, pool);
		int64_t np = qual_model_nparams(m);
		if (nth == 1) {
			ref = malloc((size_t)np * sizeof(float));
			memcpy(ref, qual_model_grads(m), (size_t)np * sizeof(float));
			ref_loss = loss;
		} else {
			CHECK_MSG(loss == ref_loss, "%d threads: loss %.9g vs %.9g", nth, loss, ref_loss);
			CHECK_MSG(memcmp(ref, qual_model_grads(m), (size_t)np * sizeof(float)) == 0,
			          "%d threads: gradients differ from 1 thread", nth);
		}
		qual_model_free(m);
		op_pool_free(pool);
	}
	free(ref);
}

/* The schedule and AdamW against a transcription of their definitions. */
static void check_optim(void)
{
	qual_optim_cfg c = {.lr = 1e-2, .min_lr = 1e-4, .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8,
	                    .weight_decay = 0.1, .clip = 1.0, .warmup = 10, .steps = 100};
	CHECK_NEAR(qual_lr_at(&c, 0), 1e-2 * 1 / 10.0, 1e-12, 1e-9);
	CHECK_NEAR(qual_lr_at(&c, 9), 1e-2, 1e-12, 1e-9);
	CHECK_NEAR(qual_lr_at(&c, 55), 1e-4 + 0.5 * (1e-2 - 1e-4) * (1 + cos(M_PI * 45.0 / 90.0)),
	           1e-12, 1e-9);
	CHECK_NEAR(qual_lr_at(&c, 99), 1e-4 + 0.5 * (1e-2 - 1e-4) * (1 + cos(M_PI * 89.0 / 90.0)),
	           1e-12, 1e-9);
	float p[3] = {1.0f, -2.0f, 0.5f}, g[3] = {3.0f, 4.0f, 0.0f}, m[3] = {0}, v[3] = {0};
	uint8_t dec[3] = {1, 0, 1};
	double norm = qual_adamw_step(&c, 0, p, g, m, v, dec, 3, NULL);
	CHECK_NEAR(norm, 5.0, 1e-9, 1e-9);
	/* clipped to norm 1: g' = (0.6, 0.8, 0); first step of Adam moves by
	 * lr * g'/|g'| elementwise = lr * sign, after decoupled decay */
	double lr = qual_lr_at(&c, 0);
	CHECK_NEAR(p[0], 1.0 * (1 - lr * 0.1) - lr * 0.6 / (0.6 + 1e-8), 1e-6, 0);
	CHECK_NEAR(p[1], -2.0 - lr * 0.8 / (0.8 + 1e-8), 1e-6, 0);
	CHECK_NEAR(p[2], 0.5 * (1 - lr * 0.1), 1e-6, 0);
}

static void check_mad(void)
{
	tl_rng r;
	tl_rng_seed(&r, 1, 1);
	for (int t = 0; t < QUAL_MAD_TASKS; t++) {
		qual_mad_spec s = qual_mad_baseline(t);
		CHECK(qual_mad_task_lookup(qual_mad_task_name(t)) == t);
		int32_t *in = malloc((size_t)s.seq_len * sizeof(int32_t));
		int32_t *tg = malloc((size_t)s.seq_len * sizeof(int32_t));
		for (int rep = 0; rep < 200; rep++) {
			bool train = rep % 2;
			qual_mad_instance(t, &s, train, &r, in, tg);
			int probes = 0;
			for (int i = 0; i < s.seq_len; i++) {
				CHECK(in[i] >= 0 && in[i] < s.vocab);
				CHECK(tg[i] == QUAL_IGNORE || (tg[i] >= 0 && tg[i] < s.vocab));
				probes += tg[i] != QUAL_IGNORE;
			}
			CHECK_MSG(probes > 0, "task %s: an instance without targets", qual_mad_task_name(t));
			/* recall tasks: a test target is the value that followed the same
			 * key earlier */
			if (!train && t == QUAL_MAD_RECALL)
				for (int i = 1; i < s.seq_len; i++) {
					if (tg[i] == QUAL_IGNORE)
						continue;
					int key = in[i], found = -1;
					for (int j = 0; j + 1 < i; j++)
						if (in[j] == key && j % 2 == 0)
							found = in[j + 1];
					CHECK_MSG(found == tg[i], "recall: target %d of key %d, earlier value %d",
					          tg[i], key, found);
				}
			if (t == QUAL_MAD_SELCOPY) {
				/* the targets are the non-blank tokens before the copy token */
				int k = 0, ok = 1, n = s.n_copy;
				for (int i = 0; i < s.seq_len - n - 1; i++)
					if (in[i] != s.vocab - 2) {
						if (tg[s.seq_len - n + k] != in[i])
							ok = 0;
						k++;
					}
				CHECK(ok && k == n && in[s.seq_len - n - 1] == s.vocab - 1);
			}
		}
		free(in);
		free(tg);
	}
	qual_mad_spec s = qual_mad_baseline(QUAL_MAD_RECALL);
	CHECK_EQ_INT(s.vocab, 16);
	CHECK_EQ_INT(s.seq_len, 127);
	CHECK_EQ_INT(s.train_examples, 12800);
	CHECK_EQ_INT(s.test_examples, 1280);
	/* in-context recall as mad-lab's generator makes it (vocab 16, seq_len
	 * 128, multi-query): 64 key-value pairs shifted to 127 inputs, keys 0-7
	 * at even positions, values 8-15 at odd ones, one value per key in a
	 * sequence; training targets every next token; test targets exactly the
	 * values of keys seen before, the last position (the probe) always */
	for (int rep = 0; rep < 100; rep++) {
		int32_t in[127], tg[127], val[8];
		bool train = rep % 2;
		qual_mad_instance(QUAL_MAD_RECALL, &s, train, &r, in, tg);
		for (int k = 0; k < 8; k++)
			val[k] = -1;
		int bad = 0;
		for (int i = 0; i < 127; i++) {
			if (i % 2 == 0) {
				bad += in[i] < 0 || in[i] >= 8;
				bool seen = val[in[i]] >= 0;
				if (i + 1 < 127) {
					bad += val[in[i]] >= 0 && val[in[i]] != in[i + 1];
					val[in[i]] = in[i + 1];
				}
				int32_t want = train ? (i + 1 < 127 ? in[i + 1] : tg[i]) : seen ? val[in[i]]
				                                                               : QUAL_IGNORE;
				bad += tg[i] != want;
			} else {
				bad += in[i] < 8 || in[i] >= 16;
				bad += train ? (i + 1 < 127 && tg[i] != in[i + 1]) : tg[i] != QUAL_IGNORE;
			}
		}
		bad += tg[126] == QUAL_IGNORE || tg[126] < 8 || tg[126] >= 16;
		CHECK_MSG(bad == 0, "recall instance %d (%s): %d departures from mad-lab's layout", rep,
		          train ? "train" : "test", bad);
	}
}

/* A short run of the train evaluator: the loss falls, and the run is the
 * same bits for 1 and 2 threads. */
static void check_train(void)
{
	genome g;
	tl_err err = TL_ERR_INIT;
	CHECK(genome_parse(&g, genomes[0], "g", &err) == 0);
	char corpus[1024];
	snprintf(corpus, sizeof corpus, "%s/data/tinyshakespeare.txt", root);
	double vl[2] = {0, 0};
	for (int nth = 1; nth <= 2; nth++) {
		op_pool *pool = NULL;
		CHECK(op_pool_create(&pool, nth, &err) == 0);
		qual_train_cfg c = qual_train_cfg_default();
		c.width = 32;
		c.batch = 4;
		c.seq = 32;
		c.tokens = 4 * 32 * 60;
		c.corpus = corpus;
		c.val_tokens = 4096;
		c.opt.lr = 3e-3;
		qual_result res;
		int rc = qual_eval_train(&res, &g, &c, pool, &err);
		CHECK_MSG(rc == 0, "%s", err.msg);
		if (rc == 0) {
			CHECK(res.n_curve >= 2);
			CHECK_MSG(res.curve[res.n_curve - 1].loss < res.curve[0].loss - 1.0,
			          "loss %.3f -> %.3f", res.curve[0].loss, res.curve[res.n_curve - 1].loss);
			CHECK(res.val_bpb > 0 && res.val_bpb < 5.0);
			vl[nth - 1] = res.val_loss;
			fprintf(stderr, "  train: %d thread(s): loss %.3f -> %.3f, val %.4f (%.3f bpb), "
			        "%.0f tok/s\n", nth, res.curve[0].loss, res.curve[res.n_curve - 1].loss,
			        res.val_loss, res.val_bpb, res.tokens_per_s);
			qual_result_free(&res);
		}
		op_pool_free(pool);
	}
	CHECK_MSG(vl[0] == vl[1], "val loss %.9g (1 thread) vs %.9g (2 threads)", vl[0], vl[1]);
	/* errors: a missing corpus, one line naming it */
	qual_train_cfg c = qual_train_cfg_default();
	c.corpus = "/nonexistent/corpus.txt";
	c.tokens = 1000;
	qual_result res;
	tl_err e2 = TL_ERR_INIT;
	CHECK(qual_eval_train(&res, &g, &c, NULL, &e2) < 0);
	CHECK_CONTAINS(e2.msg, "/nonexistent/corpus.txt");
}

/* The WSD schedule and checkpoints: training to budget B1 in one go equals,
 * bit for bit, training to B0 (saving the trunk) and then to B1 from the
 * checkpoint; the lr schedule is flat before the decay and ends at min_lr;
 * a damaged checkpoint is refused with its path; clean removes them. */
static void check_continue(void)
{
	genome g;
	tl_err err = TL_ERR_INIT;
	CHECK(genome_parse(&g, genomes[0], "g", &err) == 0);
	char corpus[1024], dir_a[] = "/tmp/tailor-ckpt-a-XXXXXX", dir_b[] = "/tmp/tailor-ckpt-b-XXXXXX";
	snprintf(corpus, sizeof corpus, "%s/data/tinyshakespeare.txt", root);
	CHECK(mkdtemp(dir_a) != NULL && mkdtemp(dir_b) != NULL);
	qual_optim_cfg o = {.lr = 1e-3, .min_lr = 1e-4, .warmup = 5, .steps = 50,
	                    .schedule = QUAL_SCHED_WSD, .decay_from = 40};
	CHECK(fabs(qual_lr_at(&o, 4) - 1e-3) < 1e-15 && fabs(qual_lr_at(&o, 39) - 1e-3) < 1e-15);
	CHECK(qual_lr_at(&o, 40) < 1e-3 && fabs(qual_lr_at(&o, 49) - 1e-4) < 1e-15);
	o.steps = 500; /* a longer budget: the same rates before its own decay */
	CHECK(fabs(qual_lr_at(&o, 39) - 1e-3) < 1e-15);
	op_pool *pool = NULL;
	CHECK(op_pool_create(&pool, 2, &err) == 0);
	qual_train_cfg c = qual_train_cfg_default();
	c.width = 32;
	c.batch = 4;
	c.seq = 32;
	c.corpus = corpus;
	c.val_tokens = 2048;
	c.opt.lr = 3e-3;
	c.opt.warmup = 4;
	c.schedule = QUAL_SCHED_WSD;
	const int64_t b0 = 4 * 32 * 20, b1 = 4 * 32 * 50;
	qual_result r0, r1, one;
	/* A: b0, then b1 continuing from b0's trunk (16 steps) */
	c.ckpt_dir = dir_a;
	c.tokens = b0;
	CHECK_MSG(qual_eval_train(&r0, &g, &c, pool, &err) == 0, "%s", err.msg);
	CHECK(r0.trunk_steps == 16 && r0.resumed_step == 0);
	c.tokens = b1;
	CHECK_MSG(qual_eval_train(&r1, &g, &c, pool, &err) == 0, "%s", err.msg);
	CHECK_MSG(r1.resumed_step == 16 && r1.trunk_steps == 40, "resumed %lld, trunk %lld",
	          (long long)r1.resumed_step, (long long)r1.trunk_steps);
	/* B: b1 in one go */
	c.ckpt_dir = dir_b;
	CHECK_MSG(qual_eval_train(&one, &g, &c, pool, &err) == 0, "%s", err.msg);
	CHECK(one.resumed_step == 0);
	CHECK_MSG(r1.val_loss == one.val_loss && r1.train_loss == one.train_loss,
	          "continued: val %.17g train %.17g; in one go: val %.17g train %.17g", r1.val_loss,
	          r1.train_loss, one.val_loss, one.train_loss);
	CHECK_MSG(r1.val_loss < r0.val_loss, "b1 %.4f not below b0 %.4f", r1.val_loss, r0.val_loss);
	fprintf(stderr, "  wsd: %lld tokens %.4f bpb; %lld tokens %.4f bpb continued, %.4f in one go\n",
	        (long long)b0, r0.val_bpb, (long long)b1, r1.val_bpb, one.val_bpb);
	/* the warm-up as a fraction is refused with checkpoints */
	qual_train_cfg c2 = c;
	c2.opt.warmup = 0;
	tl_err e2 = TL_ERR_INIT;
	qual_result rx;
	CHECK(qual_eval_train(&rx, &g, &c2, pool, &e2) == TL_EINVAL);
	CHECK_CONTAINS(e2.msg, "warm-up in steps");
	/* a damaged checkpoint: refused, naming it */
	char path[1200];
	snprintf(path, sizeof path, "%s/%s-40.ckpt", dir_b, one.ckpt_key);
	FILE *f = fopen(path, "r+b");
	CHECK(f != NULL);
	if (f) {
		fseek(f, 200, SEEK_SET);
		fputc(0x5a, f);
		fclose(f);
	}
	c.tokens = 4 * 32 * 60;
	tl_err e3 = TL_ERR_INIT;
	CHECK(qual_eval_train(&rx, &g, &c, pool, &e3) == TL_EPARSE);
	CHECK_CONTAINS(e3.msg, path);
	CHECK_CONTAINS(e3.msg, "checksum");
	int64_t files = 0, bytes = 0;
	CHECK(qual_ckpt_scan(dir_a, 0, false, &files, &bytes, &err) == 0 && files == 2 && bytes > 0);
	CHECK(qual_ckpt_scan(dir_a, 0, true, &files, &bytes, &err) == 0 && files == 2);
	CHECK(qual_ckpt_scan(dir_a, 0, false, &files, &bytes, &err) == 0 && files == 0);
	CHECK(qual_ckpt_scan(dir_b, 0, true, &files, &bytes, &err) == 0);
	rmdir(dir_a);
	rmdir(dir_b);
	qual_result_free(&r0);
	qual_result_free(&r1);
	qual_result_free(&one);
	op_pool_free(pool);
}

/* Rank statistics against hand-worked values; the fidelity summary of a
 * made-up study. */
static void check_fidelity_stats(void)
{
	const double x[] = {1, 2, 3, 4, 5}, y[] = {3, 4, 1, 2, 5};
	/* 6 concordant pairs, 4 discordant: (6 - 4) / 10; sum d^2 = 16: 1 - 96/120 */
	CHECK(fabs(qual_kendall_tau_b(x, y, 5) - 0.2) < 1e-15);
	CHECK(fabs(qual_spearman_rho(x, y, 5) - 0.2) < 1e-15);
	const double tx[] = {1, 1, 2, 3}, ty[] = {1, 2, 2, 3};
	/* tau-b: 4 concordant, one tie in x only, one in y only: 4 / sqrt(5 * 5);
	 * rho on average ranks (1.5 1.5 3 4) and (1 2.5 2.5 4): 3.75 / 4.5 */
	CHECK(fabs(qual_kendall_tau_b(tx, ty, 4) - 0.8) < 1e-15);
	CHECK(fabs(qual_spearman_rho(tx, ty, 4) - 3.75 / 4.5) < 1e-15);
	const double flat[] = {2, 2, 2, 2};
	CHECK(isnan(qual_kendall_tau_b(tx, flat, 4)) && isnan(qual_spearman_rho(tx, flat, 4)));
	/* 12 genomes: budget 2 is budget 1 plus noise; budget 0 reverses half */
	qual_fidelity f = {.n = 12, .nb = 3, .ns = 2, .budgets = {100, 200, 400}};
	double q[36], qs[24];
	tl_rng rng;
	tl_rng_seed(&rng, 5, 1);
	for (int i = 0; i < 12; i++) {
		double base = i * 0.1;
		q[i * 3 + 2] = base;
		q[i * 3 + 1] = base + 0.01 * ((double)tl_rng_bounded(&rng, 100) / 100.0 - 0.5);
		q[i * 3 + 0] = i < 6 ? -base : base;
		qs[i * 2] = q[i * 3];
		qs[i * 2 + 1] = q[i * 3] + (i % 2 ? 0.05 : -0.05);
	}
	f.q = q;
	f.qs = qs;
	tl_err err = TL_ERR_INIT;
	CHECK(qual_fidelity_stats(&f, 500, 3, &err) == 0);
	const qual_agreement *a12 = &f.agree[1 * 3 + 2], *a02 = &f.agree[0 * 3 + 2];
	CHECK_MSG(a12->tau > 0.95 && a12->tau_lo <= a12->tau && a12->tau <= a12->tau_hi,
	          "tau(1,2) %.3f [%.3f, %.3f]", a12->tau, a12->tau_lo, a12->tau_hi);
	CHECK_MSG(a02->tau < 0.8 && a02->tau_lo < a02->tau_hi, "tau(0,2) %.3f", a02->tau);
	CHECK(f.agree[0].tau == 1.0 && f.enough == 1);
	CHECK_MSG(fabs(f.noise_median - 0.05) < 1e-12 && fabs(f.noise_sigma - 0.05 / sqrt(2.0)) < 1e-12,
	          "noise %.6f, sigma %.6f", f.noise_median, f.noise_sigma);
	CHECK(fabs(f.spread[2] - 1.1) < 1e-12);
	free(f.agree);
}

int main(int argc, char **argv)
{
	if (argc > 1)
		root = argv[1];
	op_pool *pool = NULL;
	tl_err err = TL_ERR_INIT;
	CHECK(op_pool_create(&pool, 2, &err) == 0);
	per_structure(pool);
	op_pool_free(pool);
	check_threads();
	check_optim();
	check_mad();
	check_train();
	check_continue();
	check_fidelity_stats();
	return tl_test_end();
}
