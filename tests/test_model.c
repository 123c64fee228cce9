/*
 * tests/test_model.c: the whole forward pass of operators/model.c on random
 * genomes of every structure.
 *  - one prefill of P tokens gives the same last logits as feeding the same
 *    tokens one decode step at a time, and as prefill of a first part then
 *    decode of the rest (the parallel and recurrent views agree end to end,
 *    including cross-layer feature and weight sharing);
 *  - chunked prefill (chunk smaller than the prompt) equals one chunk;
 *  - greedy generation is deterministic for a seed and independent of the
 *    thread count;
 *  - the state the model allocates equals the analytics' cache bytes for
 *    f32 state (genome_stats with 4-byte elements and f32 KV).
 * argv[1]: the source root (examples/).
 */
#include "genome.h"
#include "op_model.h"
#include "tl_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *root = ".";

static int build_arch(op_arch *o, const genome *g)
{
	static genome_arch a;
	tl_err err = TL_ERR_INIT;
	if (genome_decode(&a, g, &err) < 0)
		return -1;
	char *text = genome_arch_describe(&a);
	int rc = op_arch_parse(o, text, "arch", &err);
	CHECK_MSG(rc == 0, "%s", err.msg);
	free(text);
	return rc;
}

static double max_rel(const float *a, const float *b, int n)
{
	double m = 0, scale = 1e-6;
	for (int i = 0; i < n; i++)
		if (fabs(b[i]) > scale)
			scale = fabs(b[i]);
	for (int i = 0; i < n; i++) {
		double d = fabs((double)a[i] - b[i]) / scale;
		if (d > m)
			m = d;
	}
	return m;
}

static void check_genome(const genome *g, op_pool *p1, op_pool *p2, enum op_dtype wt, int kv,
                         const char *what)
{
	op_arch a;
	if (build_arch(&a, g) < 0)
		return;
	tl_err err = TL_ERR_INIT;
	op_model_cfg cfg = op_model_cfg_default();
	cfg.wtype = wt;
	cfg.kv_type = kv;
	cfg.ctx = 64;
	cfg.chunk = 64;
	cfg.seed = 7;
	op_model *full = NULL, *step = NULL, *chunked = NULL;
	CHECK_MSG(op_model_create(&full, &a, &cfg, p1, &err) == 0, "%s: %s", what, err.msg);
	CHECK_MSG(op_model_create(&step, &a, &cfg, p2, &err) == 0, "%s: %s", what, err.msg);
	cfg.chunk = 5;
	CHECK_MSG(op_model_create(&chunked, &a, &cfg, p1, &err) == 0, "%s: %s", what, err.msg);
	if (!full || !step || !chunked)
		goto out;
	int V = (int)a.vocab, P = 23;
	int32_t tok[64];
	tl_rng rng;
	tl_rng_seed(&rng, 3, 3);
	for (int i = 0; i < P; i++)
		tok[i] = (int32_t)tl_rng_bounded(&rng, (uint32_t)V);
	float *l1 = malloc(sizeof(float) * (size_t)V), *l2 = malloc(sizeof(float) * (size_t)V),
	      *l3 = malloc(sizeof(float) * (size_t)V);
	CHECK(op_model_prefill(full, tok, P, l1, &err) == 0);
	CHECK(op_model_prefill(chunked, tok, P, l3, &err) == 0);
	/* prefill 9, then decode the rest one at a time */
	CHECK(op_model_prefill(step, tok, 9, l2, &err) == 0);
	for (int i = 9; i < P; i++)
		CHECK(op_model_decode(step, tok[i], l2, &err) == 0);
	/* f32 everywhere: rounding only; quantized activations: the q8_0 of a
	 * chunk and of one row are the same rows, so also close */
	double tol = kv == OP_KV_F16 ? 2e-2 : 2e-3;
	double e12 = max_rel(l2, l1, V), e13 = max_rel(l3, l1, V);
	CHECK_MSG(e12 < tol, "%s (%s): prefill vs decode differ by %.3g", what, op_dtype_name(wt), e12);
	CHECK_MSG(e13 < tol, "%s (%s): chunked prefill differs by %.3g", what, op_dtype_name(wt), e13);
	/* greedy continuation agrees too */
	int32_t t1 = op_argmax(l1, V), t2 = op_argmax(l2, V);
	for (int i = 0; i < 8 && t1 == t2; i++) {
		CHECK(op_model_decode(full, t1, l1, &err) == 0);
		CHECK(op_model_decode(step, t2, l2, &err) == 0);
		t1 = op_argmax(l1, V);
		t2 = op_argmax(l2, V);
	}
	/* a context overflow is refused, not a crash */
	int32_t many[64] = {0};
	tl_err_clear(&err);
	CHECK(op_model_prefill(full, many, 64, l1, &err) == TL_EINVAL);
	CHECK_CONTAINS(err.msg, "exceed the context");
	free(l1);
	free(l2);
	free(l3);
out:
	op_model_free(full);
	op_model_free(step);
	op_model_free(chunked);
}

/* Weights saved to a file load back bit for bit (same logits); a file for
 * another weight type, a truncated file and a file of something else are
 * refused with a line that names the file and the problem. */
static void check_weights_file(const genome *g, op_pool *pool, enum op_dtype wt)
{
	op_arch a;
	if (build_arch(&a, g) < 0)
		return;
	tl_err err = TL_ERR_INIT;
	char path[256], bad[256];
	snprintf(path, sizeof path, "/tmp/tailor-test-weights-%d.bin", (int)getpid());
	snprintf(bad, sizeof bad, "/tmp/tailor-test-weights-%d.bad", (int)getpid());
	op_model_cfg cfg = op_model_cfg_default();
	cfg.wtype = wt;
	cfg.ctx = 32;
	cfg.seed = 9;
	op_model *m1 = NULL, *m2 = NULL, *m3 = NULL;
	float *l1 = malloc(a.vocab * sizeof(float)), *l2 = malloc(a.vocab * sizeof(float));
	int32_t toks[12];
	for (int i = 0; i < 12; i++)
		toks[i] = (int32_t)((i * 7 + 3) % (int)a.vocab);
	CHECK_MSG(op_model_create(&m1, &a, &cfg, pool, &err) == 0, "%s", err.msg);
	CHECK_MSG(m1 && op_model_save_weights(m1, path, &err) == 0, "%s", err.msg);
	cfg.weights_path = path;
	cfg.seed = 12345; /* ignored when loading */
	CHECK_MSG(op_model_create(&m2, &a, &cfg, pool, &err) == 0, "%s", err.msg);
	if (m1 && m2 && l1 && l2) {
		CHECK(op_model_prefill(m1, toks, 12, l1, &err) == 0);
		CHECK(op_model_prefill(m2, toks, 12, l2, &err) == 0);
		CHECK_MSG(memcmp(l1, l2, a.vocab * sizeof(float)) == 0, "%s: loaded weights differ",
		          op_dtype_name(wt));
	}
	/* another weight type */
	cfg.wtype = wt == OP_F32 ? OP_Q8_0 : OP_F32;
	tl_err_clear(&err);
	CHECK(op_model_create(&m3, &a, &cfg, pool, &err) == TL_EINVAL && m3 == NULL);
	CHECK_CONTAINS(err.msg, "another architecture or weight type");
	CHECK_CONTAINS(err.msg, path);
	/* truncated: the first 100 bytes past the header */
	cfg.wtype = wt;
	size_t n = 0;
	char *bytes = NULL;
	CHECK(tl_file_read(&bytes, &n, path, (size_t)1 << 30, &err) == 0);
	FILE *f = fopen(bad, "wb");
	if (f && bytes && n > 200) {
		fwrite(bytes, 1, n - 100, f);
		fclose(f);
		cfg.weights_path = bad;
		tl_err_clear(&err);
		CHECK(op_model_create(&m3, &a, &cfg, pool, &err) < 0 && m3 == NULL);
		CHECK_CONTAINS(err.msg, "truncated");
	}
	f = fopen(bad, "wb");
	if (f) {
		fputs("tailor-genome/1 not weights\n", f);
		fclose(f);
		cfg.weights_path = bad;
		tl_err_clear(&err);
		CHECK(op_model_create(&m3, &a, &cfg, pool, &err) < 0 && m3 == NULL);
		CHECK_CONTAINS(err.msg, "not a tailor weights file");
	}
	cfg.weights_path = "/nonexistent/w.bin";
	tl_err_clear(&err);
	CHECK(op_model_create(&m3, &a, &cfg, pool, &err) == TL_EIO);
	CHECK_CONTAINS(err.msg, "/nonexistent/w.bin");
	free(bytes);
	remove(path);
	remove(bad);
	free(l1);
	free(l2);
	op_model_free(m1);
	op_model_free(m2);
}

int main(int argc, char **argv)
{
	if (argc > 1)
		root = argv[1];
	tl_err err = TL_ERR_INIT;
	op_pool *p1 = NULL, *p2 = NULL;
	CHECK(op_pool_create(&p1, 1, &err) == 0);
	CHECK(op_pool_create(&p2, 2, &err) == 0);
	char path[1024];
	snprintf(path, sizeof path, "%s/examples/spaces/tiny.json", root);
	genome_space *s = NULL;
	CHECK_MSG(genome_space_load(&s, path, &err) == 0, "%s", err.msg);
	if (s == NULL || p1 == NULL || p2 == NULL)
		return tl_test_end();
	tl_rng rng;
	tl_rng_seed(&rng, 5, 5);
	int n = 0, with_sharing = 0, by_struct[5] = {0};
	for (int i = 0; i < 40; i++) {
		genome g;
		if (genome_sample(&g, s, &rng, &err) < 0)
			continue;
		for (int l = 0; l < g.n_layers; l++) {
			with_sharing += g.layers[l].wgroup || g.layers[l].xgroup;
			by_struct[g.classes[g.layers[l].cls].structure]++;
		}
		char what[32];
		snprintf(what, sizeof what, "sample %d", i);
		check_genome(&g, p1, p2, OP_F32, OP_KV_F32, what);
		if (i % 4 == 0) {
			check_genome(&g, p1, p2, OP_Q8_0, OP_KV_F16, what);
			check_genome(&g, p1, p2, OP_Q4_0, OP_KV_F16, what);
		}
		n++;
	}
	/* Every kind of sharing the runtime supports, by hand: K and V shared
	 * between attention layers (also windowed, with a prompt longer than
	 * the window), V only, linear attention sharing its state fully and
	 * partly, and shared featurizer weights of two gated convs. */
	static const char *shared =
		"tailor-genome/1 d=64 vocab=50 ffn_multiple=8 | 1.0.0.1.1 0.0.0.0.0 1.0.0.1.1 0.0.0.0.0 "
		"2.0.0.2.1 0.0.0.0.0 2.0.0.2.1 0.0.0.0.0 1.0.0.3.3 0.0.0.0.0 1.0.0.3.3 0.0.0.0.0 "
		"2.0.0.4.2 0.0.0.0.0 2.0.0.4.2 0.0.0.0.0 3.1.1.0.0 0.0.0.0.0 3.1.1.0.0 0.0.0.0.0 "
		"4.0.0.5.1 0.0.0.0.0 4.0.0.5.1 0.0.0.0.0 "
		"| c0 op=3.0.0.2.0 ffn=128 C=0.2.1.1 V=0.2.1.1 "
		"| c1 op=0.4.0.1.1 h=4 kv=2 hd=16 qkn=1 rope=1 C=0.2.1.1 B=3.2.1.2 V=0.2.1.2 "
		"| c2 op=0.1.0.4.1 h=2 kv=2 hd=16 qkn=0 rope=0 C=0.2.1.1 B=0.2.1.1 V=0.2.1.1 "
		"| c3 op=1.3.0.0.0 len=3 C=3.2.1.1 B=0.2.1.1 V=0.2.1.1 "
		"| c4 op=0.4.1.1.1 h=4 kv=1 hd=16 len=8 qkn=0 rope=1 C=0.2.1.1 B=0.2.1.4 V=0.2.1.4";
	genome sg;
	CHECK_MSG(genome_parse(&sg, shared, "shared", &err) == 0, "%s", err.msg);
	check_genome(&sg, p1, p2, OP_F32, OP_KV_F32, "sharing");
	check_genome(&sg, p1, p2, OP_Q8_0, OP_KV_F16, "sharing");
	check_weights_file(&sg, p2, OP_Q4_0);
	check_weights_file(&sg, p2, OP_Q8_0);
	check_weights_file(&sg, p2, OP_F32);
	fprintf(stderr, "%d genomes, layers with sharing %d, structures %d/%d/%d/%d/%d\n", n,
	        with_sharing, by_struct[0], by_struct[1], by_struct[2], by_struct[3], by_struct[4]);
	genome_space_free(s);
	op_pool_free(p1);
	op_pool_free(p2);
	return tl_test_end();
}
