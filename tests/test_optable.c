/*
 * tests/test_optable.c: operator tables and the predictor (profiler/optable.h).
 *
 *  - layer keys of hand-written arch lines (own weights, shared weights,
 *    shared features), and that a sharing key's owner is its configuration
 *    owning everything;
 *  - the plan: every key of a space's samples appears in the profiling
 *    archs at least `instances` times, each arch parses, sharing layers
 *    follow their owner, token mixers alternate with channel mixers;
 *  - a synthetic device whose per-layer costs are known exactly (functions of
 *    the key and the shape, attention growing with depth; weight, state and
 *    activation bytes per key; fixed costs; peak RSS = c + weights + states +
 *    alpha x the largest activation need): the table built from its runs
 *    holds exactly those costs, the fixed costs and alpha are recovered,
 *    the predictor reproduces every random genome's TTFT, decode and RSS,
 *    interpolates a middle depth exactly (costs linear in depth), and the
 *    JSON round trip predicts the same;
 *  - with 3% noise on every layer time the predictions stay within 5%;
 *  - errors: a layer with no entry, a shape outside the table, another space;
 *  - accuracy statistics against a hand-computed case.
 * Argument: the source root (for examples/spaces/lfm2-like-small.json).
 */
#include "genome.h"
#include "op_arch.h"
#include "optable.h"
#include "tl_test.h"

#include <stdlib.h>

static char root[1024];

/* ---- the synthetic device ------------------------------------------------------ */

static uint64_t fnv(const char *s)
{
	uint64_t h = 1469598103934665603ULL;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

static const double FIX_PRE = 3.25, FIX_DEC = 0.75, RSS_C = 5e6, RSS_ALPHA = 0.8;

static double syn_pre(const char *key, const prof_shape *s)
{
	uint64_t h = fnv(key);
	double v = (1 + (double)(h % 97)) * 0.01 * (double)s->prompt / 100.0;
	if (strstr(key, ".dense."))
		v += 1e-6 * (double)s->prompt * (double)(s->depth + s->prompt);
	return v;
}

static double syn_dec(const char *key, const prof_shape *s)
{
	uint64_t h = fnv(key);
	double v = (1 + (double)(h % 89)) * 0.003;
	if (strstr(key, ".dense."))
		v += 1e-5 * ((double)s->depth + (double)s->prompt + 0.5 * (double)s->gen);
	return v;
}

static double syn_w(const char *key)
{
	return 1e5 * (double)(1 + fnv(key) % 50);
}
static double syn_s(const char *key, const prof_shape *s)
{
	return 1e3 * (double)(1 + fnv(key) % 7) * (double)(s->depth + s->prompt + s->gen) / 100.0;
}
static double syn_a(const char *key)
{
	return 1e4 * (double)(1 + (fnv(key) >> 8) % 31);
}

typedef struct syn_run {
	double pre[OP_MAX_LAYERS], dec[OP_MAX_LAYERS], w[OP_MAX_LAYERS], s[OP_MAX_LAYERS],
	    a[OP_MAX_LAYERS];
	prof_obs obs;
} syn_run;

static uint64_t noise_state = 88172645463325252ULL;
static double noise(double amp)
{
	if (amp == 0)
		return 1;
	noise_state ^= noise_state << 13;
	noise_state ^= noise_state >> 7;
	noise_state ^= noise_state << 17;
	return 1 + amp * (2.0 * (double)(noise_state >> 11) / 9007199254740992.0 - 1);
}

/* What the synthetic device measures for arch a at shape s. */
static void syn_measure(syn_run *r, const op_arch *a, const prof_shape *s, double amp)
{
	char key[PROF_KEY_MAX];
	tl_err err = TL_ERR_INIT;
	double ttft = FIX_PRE, dec = FIX_DEC, ws = 0, act = 0;
	for (int i = 0; i < a->n_layers; i++) {
		CHECK(prof_layer_key(a, i, key, sizeof key, &err) == 0);
		r->pre[i] = syn_pre(key, s) * noise(amp);
		r->dec[i] = syn_dec(key, s) * noise(amp);
		r->w[i] = syn_w(key);
		r->s[i] = syn_s(key, s);
		r->a[i] = syn_a(key);
		ttft += r->pre[i];
		dec += r->dec[i];
		ws += r->w[i] + r->s[i];
		if (r->a[i] > act)
			act = r->a[i];
	}
	r->obs = (prof_obs){ttft, dec, RSS_C + ws + RSS_ALPHA * act, r->pre, r->dec, r->w, r->s, r->a};
}

/* The exact figures of a at s. */
static void syn_truth(double *ttft, double *dec, double *rss, const op_arch *a, const prof_shape *s)
{
	syn_run r;
	syn_measure(&r, a, s, 0);
	*ttft = r.obs.ttft_ms;
	*dec = r.obs.decode_ms;
	*rss = r.obs.peak_rss_bytes;
}

/* ---- genomes of the space ----------------------------------------------------------- */

static int sample_arch(op_arch *a, const genome_space *sp, tl_rng *rng)
{
	genome g;
	static genome_arch ga;
	tl_err err = TL_ERR_INIT;
	if (genome_sample(&g, sp, rng, &err) < 0 || genome_decode(&ga, &g, &err) < 0)
		return -1;
	char *text = genome_arch_describe(&ga);
	int rc = text ? op_arch_parse(a, text, "sample", &err) : -1;
	free(text);
	return rc;
}

/* ---- tests --------------------------------------------------------------------------- */

static void test_keys(void)
{
	const char *text =
		"arch/1 d=64 vocab=256 tied=1 rope_theta=10000\n"
		"L0 qkv.dense.none.softmax.heads h=4 kv=2 hd=16 len=0 inner=64 state=0 qkn=1 rope=1 "
		"C=64/dense/conv0/w0 B=32/dense/conv0/w0 V=32/dense/conv0/w0\n"
		"L1 glu.diagonal.none.silu.diagonal h=1 kv=1 hd=0 len=0 inner=128 state=0 qkn=0 rope=0 "
		"C=128/dense/conv0/w1 V=128/dense/conv0/w1\n"
		"L2 qkv.dense.none.softmax.heads h=4 kv=2 hd=16 len=0 inner=64 state=0 qkn=1 rope=1 "
		"C=64/dense/conv0/w0 B=from0 V=from0\n"
		"L3 glu.diagonal.none.silu.diagonal h=1 kv=1 hd=0 len=0 inner=128 state=0 qkn=0 rope=0 "
		"C=128/dense/conv0/w1 V=128/dense/conv0/w1\n";
	op_arch a;
	tl_err err = TL_ERR_INIT;
	char k[PROF_KEY_MAX];
	CHECK(op_arch_parse(&a, text, "t", &err) == 0);
	CHECK(prof_layer_key(&a, 0, k, sizeof k, &err) == 0);
	CHECK_EQ_STR(k, "qkv.dense.none.softmax.heads h=4 kv=2 hd=16 len=0 inner=64 state=0 qkn=1 "
	                "rope=1 C=64/dense/conv0/w B=32/dense/conv0/w V=32/dense/conv0/w");
	CHECK(prof_key_is_mixer(k));
	CHECK(prof_layer_key(&a, 2, k, sizeof k, &err) == 0);
	CHECK_EQ_STR(k, "qkv.dense.none.softmax.heads h=4 kv=2 hd=16 len=0 inner=64 state=0 qkn=1 "
	                "rope=1 C=64/dense/conv0/wsh B=xsh32/dense/conv0 V=xsh32/dense/conv0");
	CHECK(prof_layer_key(&a, 3, k, sizeof k, &err) == 0);
	CHECK_EQ_STR(k, "glu.diagonal.none.silu.diagonal h=1 kv=1 hd=0 len=0 inner=128 state=0 qkn=0 "
	                "rope=0 C=128/dense/conv0/wsh V=128/dense/conv0/wsh");
	CHECK(!prof_key_is_mixer(k));
	CHECK(prof_layer_key(&a, 0, k, 20, &err) == TL_EINVAL);

	/* the plan of this arch: the sharers follow an owner, and parse */
	prof_keyset ks = {0};
	CHECK(prof_keyset_add_arch(&ks, &a, &err) == 0);
	CHECK_EQ_INT(ks.n, 4);
	char **archs = NULL;
	size_t n = 0;
	CHECK(prof_plan(&archs, &n, &ks, 2, 4, &err) == 0);
	CHECK(n >= 1);
	int seen[4] = {0};
	for (size_t i = 0; i < n; i++) {
		op_arch p;
		CHECK_MSG(op_arch_parse(&p, archs[i], "plan", &err) == 0, "%s\n%s", err.msg, archs[i]);
		for (int l = 0; l < p.n_layers; l++) {
			CHECK(prof_layer_key(&p, l, k, sizeof k, &err) == 0);
			for (size_t q = 0; q < ks.n; q++)
				seen[q] += strcmp(k, ks.keys[q]) == 0;
		}
		free(archs[i]);
	}
	free(archs);
	for (int q = 0; q < 4; q++)
		CHECK_MSG(seen[q] >= 2, "key %d seen %d times", q, seen[q]);
	/* another space's arch is refused */
	op_arch b = a;
	b.d_model = 128;
	CHECK(prof_keyset_add_arch(&ks, &b, &err) == TL_EINVAL);
	prof_keyset_free(&ks);
}

static void test_synthetic(void)
{
	char path[1200];
	snprintf(path, sizeof path, "%s/examples/spaces/lfm2-like-small.json", root);
	genome_space *sp = NULL;
	tl_err err = TL_ERR_INIT;
	if (genome_space_load(&sp, path, &err) < 0) {
		CHECK_MSG(0, "%s", err.msg);
		return;
	}
	tl_rng rng;
	tl_rng_seed(&rng, 1, 7);
	prof_keyset ks = {0};
	static op_arch a;
	for (int i = 0; i < 1500; i++) {
		CHECK(sample_arch(&a, sp, &rng) == 0);
		CHECK(prof_keyset_add_arch(&ks, &a, &err) == 0);
	}
	int sharers = 0;
	for (size_t k = 0; k < ks.n; k++)
		sharers += strstr(ks.keys[k], "sh") != NULL;
	printf("keys: %zu (%d sharing) from %lld archs of %.1f layers\n", ks.n, sharers,
	       (long long)ks.archs, (double)ks.layers / (double)ks.archs);
	CHECK(ks.n > 20);
	CHECK(sharers > 0);

	char **archs = NULL;
	size_t n = 0;
	const int instances = 3;
	CHECK(prof_plan(&archs, &n, &ks, instances, 0, &err) == 0);
	prof_shape shapes[3] = {{64, 16, 0}, {64, 16, 1024}, {128, 16, 1024}};
	prof_table *t = NULL;
	CHECK(prof_table_create(&t, &ks, shapes, 3, &err) == 0);
	int64_t *count = calloc(ks.n, sizeof *count);
	static syn_run r;
	int alternate_ok = 1;
	for (size_t i = 0; i < n; i++) {
		static op_arch p;
		CHECK_MSG(op_arch_parse(&p, archs[i], "plan", &err) == 0, "%s", err.msg);
		for (size_t s = 0; s < 3; s++) {
			syn_measure(&r, &p, &shapes[s], 0);
			CHECK(prof_table_observe(t, s, &p, &r.obs, &err) == 0);
		}
		char key[PROF_KEY_MAX];
		for (int l = 0; l < p.n_layers; l++) {
			CHECK(prof_layer_key(&p, l, key, sizeof key, &err) == 0);
			for (size_t q = 0; q < ks.n; q++)
				count[q] += strcmp(key, ks.keys[q]) == 0;
			/* a channel mixer never follows a channel mixer unless it
			 * shares (its owner precedes it) */
			if (l > 0 && !prof_key_is_mixer(key) && !strstr(key, "sh")) {
				char prev[PROF_KEY_MAX];
				CHECK(prof_layer_key(&p, l - 1, prev, sizeof prev, &err) == 0);
				if (!prof_key_is_mixer(prev) && !strstr(prev, "sh"))
					alternate_ok = 0;
			}
		}
	}
	CHECK(alternate_ok);
	for (size_t q = 0; q < ks.n; q++)
		CHECK_MSG(count[q] >= instances, "key %s: %lld instances", ks.keys[q],
		          (long long)count[q]);
	free(count);
	printf("plan: %zu archs\n", n);
	CHECK(prof_table_finish(t, &err) == 0);

	/* the entries are the device's costs, exactly */
	int exact = 1;
	for (size_t k = 0; k < prof_table_n_keys(t); k++)
		for (size_t s = 0; s < 3; s++) {
			prof_entry e;
			prof_table_entry(t, k, s, &e);
			if (fabs(e.prefill_ms - syn_pre(e.key, &shapes[s])) > 1e-12 ||
			    fabs(e.decode_ms - syn_dec(e.key, &shapes[s])) > 1e-12 ||
			    e.weight_bytes != syn_w(e.key) || e.state_bytes != syn_s(e.key, &shapes[s]) ||
			    e.act_bytes != syn_a(e.key) || e.instances < instances)
				exact = 0;
		}
	CHECK(exact);
	for (size_t s = 0; s < 3; s++) {
		prof_fixed f;
		prof_table_fixed(t, s, &f);
		CHECK_NEAR(f.prefill_ms, FIX_PRE, 1e-9, 1e-12);
		CHECK_NEAR(f.decode_ms, FIX_DEC, 1e-9, 1e-12);
		CHECK_NEAR(f.rss_alpha, RSS_ALPHA, 1e-6, 1e-9);
		CHECK_NEAR(f.rss_bytes, RSS_C, 1e-3, 1e-9);
		CHECK_EQ_INT(f.runs, (int64_t)n);
	}

	/* JSON round trip */
	char *json = prof_table_json(t);
	prof_table *t2 = NULL;
	CHECK(json && prof_table_from_json(&t2, json, "json", &err) == 0);
	char *json2 = t2 ? prof_table_json(t2) : NULL;
	CHECK(json2 && strcmp(json, json2) == 0);
	free(json2);

	/* random genomes (another stream): predictions reproduce the device */
	tl_rng_seed(&rng, 2, 7);
	int predicted = 0, worst_ok = 1, missing = 0;
	prof_shape mid = {64, 16, 512}; /* between depths 0 and 1024 */
	for (int i = 0; i < 200; i++) {
		CHECK(sample_arch(&a, sp, &rng) == 0);
		prof_pred p, p2;
		int rc = prof_predict(t, &a, &shapes[1], &p, &err);
		if (rc < 0) {
			CHECK_MSG(strstr(err.msg, "no entry") != NULL, "%s", err.msg);
			missing++;
			continue;
		}
		if (p.approximated)
			continue;
		predicted++;
		double tt, td, tr;
		syn_truth(&tt, &td, &tr, &a, &shapes[1]);
		if (fabs(p.ttft_ms - tt) > 1e-9 * tt || fabs(p.decode_ms - td) > 1e-9 * td ||
		    fabs(p.peak_rss_bytes - tr) > 1e-6 * tr)
			worst_ok = 0;
		CHECK(prof_predict(t2, &a, &shapes[1], &p2, &err) == 0);
		/* (cJSON prints numbers to about 1e-15) */
		CHECK_NEAR(p2.ttft_ms, p.ttft_ms, 0, 1e-12);
		CHECK_NEAR(p2.decode_ms, p.decode_ms, 0, 1e-12);
		CHECK_NEAR(p2.peak_rss_bytes, p.peak_rss_bytes, 0, 1e-12);
		/* at a middle depth: every cost is linear in depth, so the
		 * interpolation is exact */
		CHECK(prof_predict(t, &a, &mid, &p2, &err) == 0);
		syn_truth(&tt, &td, &tr, &a, &mid);
		CHECK_NEAR(p2.ttft_ms, tt, 0, 1e-9);
		CHECK_NEAR(p2.decode_ms, td, 0, 1e-9);
		CHECK_NEAR(p2.peak_rss_bytes, tr, 0, 1e-9);
		CHECK(strstr(p2.note, "interpolated") != NULL);
		/* beyond the shapes: refused */
		prof_shape far = {64, 16, 4096};
		err = (tl_err)TL_ERR_INIT;
		CHECK(prof_predict(t, &a, &far, &p2, &err) == TL_EINVAL);
		CHECK(strstr(err.msg, "outside the table's shapes") != NULL);
	}
	printf("predicted %d genomes exactly (%d with a key not in the table)\n", predicted, missing);
	CHECK(predicted >= 150);
	CHECK(worst_ok);

	/* errors: a layer the table does not know; another space */
	{
		static op_arch b;
		b = a;
		b.layers[0].inner += 32;
		b.layers[0].width[OP_G_V] += 32;
		prof_pred p;
		err = (tl_err)TL_ERR_INIT;
		int rc = prof_predict(t, &b, &shapes[0], &p, &err);
		CHECK(rc == TL_EINVAL);
		CHECK_MSG(strstr(err.msg, "layer 0") && strstr(err.msg, "profile-ops"), "%s", err.msg);
		b = a;
		b.vocab = 999;
		err = (tl_err)TL_ERR_INIT;
		CHECK(prof_predict(t, &b, &shapes[0], &p, &err) == TL_EINVAL);
		CHECK_MSG(strstr(err.msg, "vocab=999") != NULL, "%s", err.msg);
	}
	free(json);
	prof_table_free(t2);
	prof_table_free(t);

	/* noise: 3% on every layer time, 3 repeats per arch */
	{
		prof_table *tn = NULL;
		CHECK(prof_table_create(&tn, &ks, shapes, 1, &err) == 0);
		for (int rep = 0; rep < 3; rep++)
			for (size_t i = 0; i < n; i++) {
				static op_arch p;
				CHECK(op_arch_parse(&p, archs[i], "plan", &err) == 0);
				syn_measure(&r, &p, &shapes[0], 0.03);
				CHECK(prof_table_observe(tn, 0, &p, &r.obs, &err) == 0);
			}
		CHECK(prof_table_finish(tn, &err) == 0);
		tl_rng_seed(&rng, 3, 7);
		double pt[100], mt[100], pd[100], md[100];
		size_t m = 0;
		for (int i = 0; i < 100; i++) {
			CHECK(sample_arch(&a, sp, &rng) == 0);
			prof_pred p;
			if (prof_predict(tn, &a, &shapes[0], &p, &err) < 0 || p.approximated)
				continue;
			double tr;
			syn_truth(&mt[m], &md[m], &tr, &a, &shapes[0]);
			pt[m] = p.ttft_ms;
			pd[m] = p.decode_ms;
			m++;
		}
		prof_accuracy at, ad;
		prof_accuracy_compute(&at, pt, mt, m);
		prof_accuracy_compute(&ad, pd, md, m);
		printf("3%% noise: TTFT rmspe %.4f within5 %.2f; decode rmspe %.4f within5 %.2f\n",
		       at.rmspe, at.within5, ad.rmspe, ad.within5);
		CHECK(m > 50);
		CHECK(at.rmspe < 0.02 && ad.rmspe < 0.02);
		CHECK(at.within5 == 1.0 && ad.within5 == 1.0);
		prof_table_free(tn);
	}
	for (size_t i = 0; i < n; i++)
		free(archs[i]);
	free(archs);
	prof_keyset_free(&ks);
	genome_space_free(sp);
}

static void test_accuracy(void)
{
	/* errors +10%, -5%, +2%, -20%; a NaN pair and a zero measurement skipped */
	double pred[] = {110, 95, 102, 80, NAN, 5};
	double meas[] = {100, 100, 100, 100, 100, 0};
	prof_accuracy a;
	prof_accuracy_compute(&a, pred, meas, 6);
	CHECK_EQ_INT(a.n, 4);
	/* sqrt((0.01 + 0.0025 + 0.0004 + 0.04) / 4) */
	CHECK_NEAR(a.rmspe, sqrt(0.0529 / 4), 1e-12, 1e-12);
	CHECK_NEAR(a.bias, (0.10 - 0.05 + 0.02 - 0.20) / 4, 1e-12, 1e-12);
	CHECK_NEAR(a.max_abs, 0.20, 1e-12, 1e-12);
	CHECK(a.within5 == 0.5);  /* -5% and +2% */
	CHECK(a.within10 == 0.75); /* and +10% */
	prof_accuracy_compute(&a, pred, meas, 0);
	CHECK(a.n == 0 && isnan(a.rmspe));
}

int main(int argc, char **argv)
{
	snprintf(root, sizeof root, "%s", argc > 1 ? argv[1] : ".");
	test_keys();
	test_synthetic();
	test_accuracy();
	return tl_test_end();
}
