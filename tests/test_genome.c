/*
 * tests/test_genome.c: the genome room against independent figures.
 *  - presets: parameter counts equal the published ones (LFM2 model cards,
 *    Llama 3.2 1B), KV bytes per token equal the hand-computed ones, and
 *    cross-layer KV sharing removes exactly one layer's share;
 *  - an independent parameter count (a state_dict-like tensor list built
 *    from the arch, shared tensors deduplicated by name) agrees with the
 *    analytics on random genomes;
 *  - FLOPs of a small hand-worked model;
 *  - properties over TAILOR_PROPERTY_N (default 100,000) samples, mutations
 *    and crossovers: every result a member of its space, text and JSON
 *    round-trip exactly, the hash stable under re-encoding and invariant
 *    under class and group renumbering;
 *  - error messages name the input and the JSON path.
 *
 * argv[1] is the source root (for examples/).
 */
#include "genome.h"
#include "tl_test.h"

#include <stdlib.h>
#include <time.h>

static const char *root = ".";

static int load(genome *g, const char *rel)
{
	char path[1024];
	tl_err err = TL_ERR_INIT;
	snprintf(path, sizeof path, "%s/%s", root, rel);
	int rc = genome_load(g, path, &err);
	CHECK_MSG(rc == 0, "load %s: %s", rel, err.msg);
	return rc;
}

static genome_space *load_space(const char *rel)
{
	char path[1024];
	tl_err err = TL_ERR_INIT;
	genome_space *s = NULL;
	snprintf(path, sizeof path, "%s/%s", root, rel);
	int rc = genome_space_load(&s, path, &err);
	CHECK_MSG(rc == 0, "load space %s: %s", rel, err.msg);
	return s;
}

static void stats_of(const genome *g, genome_stats *st, int elem, int64_t ctx)
{
	static genome_arch a;
	tl_err err = TL_ERR_INIT;
	memset(st, 0, sizeof *st);
	int rc = genome_decode(&a, g, &err);
	CHECK_MSG(rc == 0, "decode: %s", err.msg);
	if (rc == 0)
		genome_stats_compute(st, &a, elem, ctx);
}

static void test_presets(void)
{
	static const struct {
		const char *file;
		int64_t params, kv1;
	} want[] = {
		{"examples/genomes/lfm2-350m.json", 354483968, 6144},
		{"examples/genomes/lfm2-1.2b.json", 1170340608, 6144},
		{"examples/genomes/lfm2-2.6b.json", 2569272320, 8192},
		{"examples/genomes/llama-3.2-1b.json", 1235814400, 16384},
	};
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
		genome g;
		genome_stats st;
		if (load(&g, want[i].file) < 0)
			continue;
		stats_of(&g, &st, 1, 4096);
		CHECK_MSG(st.params == want[i].params, "%s: %lld params, want %lld", want[i].file,
		          (long long)st.params, (long long)want[i].params);
		CHECK_MSG(st.kv_bytes_per_token == want[i].kv1, "%s: kv %lld, want %lld", want[i].file,
		          (long long)st.kv_bytes_per_token, (long long)want[i].kv1);
		/* f16 doubles it */
		genome_stats st2;
		stats_of(&g, &st2, 2, 4096);
		CHECK(st2.kv_bytes_per_token == 2 * want[i].kv1);
	}
	/* The other presets load and are in the expected range. */
	genome g;
	genome_stats st;
	if (load(&g, "examples/genomes/transformer-pp-350m.json") == 0) {
		stats_of(&g, &st, 1, 4096);
		CHECK_MSG(st.params > 330e6 && st.params < 370e6, "Transformer++ %lld",
		          (long long)st.params);
		CHECK(st.n_by_struct[GS_DENSE] == 16 && st.n_by_struct[GS_DIAGONAL] == 16);
	}
	if (load(&g, "examples/genomes/hyena-edge-350m.json") == 0) {
		stats_of(&g, &st, 1, 4096);
		/* two thirds of 16 GQA layers replaced: 11 convs, 5 attention */
		CHECK(st.n_by_struct[GS_TOEPLITZ] == 11 && st.n_by_struct[GS_DENSE] == 5);
	}
}

/* Two GQA layers of LFM2-350M share K and V: the cache loses one layer's
 * share (2 * 8 * 64 = 1024 bytes per token at 1 byte) and the parameters
 * lose one K and one V projection plus one K-norm. */
static void test_kv_sharing(void)
{
	genome g;
	genome_stats base, shared;
	if (load(&g, "examples/genomes/lfm2-350m.json") < 0)
		return;
	stats_of(&g, &base, 1, 4096);
	int first = -1, second = -1;
	for (int i = 0; i < g.n_layers; i++)
		if (g.classes[g.layers[i].cls].feat == GF_QKV) {
			if (first < 0)
				first = i;
			else if (second < 0)
				second = i;
		}
	CHECK(first == 4 && second == 10);
	g.layers[first].xgroup = g.layers[second].xgroup = 1;
	g.layers[first].xstrategy = g.layers[second].xstrategy = GX_BV;
	tl_err err = TL_ERR_INIT;
	CHECK_MSG(genome_check(&g, &err) == 0, "%s", err.msg);
	stats_of(&g, &shared, 1, 4096);
	CHECK_EQ_INT(shared.kv_bytes_per_token, base.kv_bytes_per_token - 1024);
	CHECK_EQ_INT(base.params - shared.params, 2 * 1024 * 512 + 64);

	/* Sharing only V: half of it. */
	g.layers[first].xstrategy = g.layers[second].xstrategy = GX_V;
	stats_of(&g, &shared, 1, 4096);
	CHECK_EQ_INT(shared.kv_bytes_per_token, base.kv_bytes_per_token - 512);

	/* Featurizer-weight sharing of two conv layers: the second layer's
	 * in-projection (3 d^2) is counted once; the cache is unchanged. */
	load(&g, "examples/genomes/lfm2-350m.json");
	g.layers[0].wgroup = g.layers[2].wgroup = 1;
	g.layers[0].wstrategy = g.layers[2].wstrategy = GW_ALL;
	stats_of(&g, &shared, 1, 4096);
	CHECK_EQ_INT(base.params - shared.params, 3LL * 1024 * 1024);
	CHECK_EQ_INT(shared.kv_bytes_per_token, base.kv_bytes_per_token);
	g.layers[0].wstrategy = g.layers[2].wstrategy = GW_CB;
	stats_of(&g, &shared, 1, 4096);
	CHECK_EQ_INT(base.params - shared.params, 2LL * 1024 * 1024);

	/* Members of one group must be one class. */
	g.layers[1].wgroup = 1;
	g.layers[1].wstrategy = GW_CB;
	CHECK(genome_check(&g, &err) == TL_EINVAL);
	CHECK_CONTAINS(err.msg, "layer 1: featurizer-sharing group 1");
}

/* An independent parameter count: list every weight tensor the way a
 * framework's state_dict would name it ("L<owner>.<group>.proj" ...), drop
 * duplicates, and add up their sizes. */
typedef struct tensor {
	char name[48];
	int64_t n;
} tensor;

static int64_t state_dict_params(const genome_arch *a)
{
	static tensor t[4096];
	int nt = 0;
	int64_t d = a->d_model;
#define ADD(nm, count)                                                        \
	do {                                                                      \
		bool dup = false;                                                     \
		for (int z = 0; z < nt; z++)                                          \
			dup |= strcmp(t[z].name, (nm)) == 0;                              \
		if (!dup && nt < 4096) {                                              \
			snprintf(t[nt].name, sizeof t[nt].name, "%s", (nm));              \
			t[nt++].n = (count);                                              \
		}                                                                     \
	} while (0)
	ADD("embed", a->vocab * d);
	if (!a->tied)
		ADD("head", a->vocab * d);
	ADD("final_norm", d);
	for (int i = 0; i < a->n_layers; i++) {
		const genome_arch_layer *l = &a->layers[i];
		char nm[48];
		snprintf(nm, sizeof nm, "L%d.norm", i);
		ADD(nm, d);
		snprintf(nm, sizeof nm, "L%d.out", i);
		ADD(nm, (int64_t)l->inner * d);
		if (l->structure == GS_TOEPLITZ && l->len > 1) {
			snprintf(nm, sizeof nm, "L%d.kernel", i);
			ADD(nm, (int64_t)l->inner * l->len);
		}
		for (int k = 0; k < GENOME_NGROUPS; k++) {
			if (l->xowner[k] != i)
				continue; /* features come from another layer: no weights */
			int own = l->wowner[k];
			int64_t w = l->width[k], blocks = 1;
			if (l->proj_chmix[k] == GC_HEADS)
				blocks = (l->feat == GF_QKV && k != 0) ? l->kv_heads : l->heads;
			int64_t proj = l->proj_chmix[k] == GC_DIAGONAL ? w : d * w / blocks;
			snprintf(nm, sizeof nm, "L%d.g%d.proj", own, k);
			ADD(nm, proj);
			if (l->conv[k]) {
				snprintf(nm, sizeof nm, "L%d.g%d.conv", own, k);
				ADD(nm, w * l->conv[k]);
			}
			if (l->qk_norm && k <= 1) {
				snprintf(nm, sizeof nm, "L%d.g%d.norm", own, k);
				ADD(nm, l->head_dim);
			}
		}
	}
#undef ADD
	int64_t sum = 0;
	for (int z = 0; z < nt; z++)
		sum += t[z].n;
	return sum;
}

static void test_flops_by_hand(void)
{
	/* One MHA layer (h 2, hd 4, d 8, no window) + one SwiGLU (ffn 128/64
	 * of d = 16 inner), vocab 10, untied. Decode at depth 3 sees 4 keys. */
	const char *text =
		"tailor-genome/1 d=8 vocab=10 ffn_multiple=1 rope_theta=10000 tied=0 | 1.0.0.0.0 "
		"0.0.0.0.0 | c0 op=3.0.0.2.0 ffn=128 C=0.2.1.1 V=0.2.1.1 | c1 op=0.4.0.1.1 h=2 kv=2 "
		"hd=4 qkn=0 rope=1 C=0.2.1.1 B=0.2.1.1 V=0.2.1.1";
	genome g;
	tl_err err = TL_ERR_INIT;
	CHECK_MSG(genome_parse(&g, text, "hand", &err) == 0, "%s", err.msg);
	genome_stats st;
	stats_of(&g, &st, 4, 3);
	/* params: embed 80 + head 80 + final norm 8
	 * attention: norm 8 + q,k,v 3*8*8 + out 8*8 = 264
	 * swiglu: norm 8 + gate,up 2*8*16 + down 16*8 = 392 */
	CHECK_EQ_INT(st.params, 80 + 80 + 8 + 264 + 392);
	/* decode: 2*(projections 256 + attention 2*2*4*4 = 64 + swiglu 384)
	 * + head 2*80 = 2*704 + 160 */
	CHECK_NEAR(st.flops_decode_per_token, 2.0 * (256 + 64 + 384) + 160, 0, 0);
	/* prefill over 3 tokens: mean keys 2 -> attention 2*2*4*2 = 32 per
	 * token; head once for the prompt: 160/3 */
	CHECK_NEAR(st.flops_prefill_per_token, 2.0 * (256 + 32 + 384) + 160.0 / 3, 1e-9, 0);
	/* f32 KV: 2 * 8 channels * 4 bytes per token, no fixed state */
	CHECK_EQ_INT(st.kv_bytes_per_token, 64);
	CHECK_EQ_INT(st.state_bytes, 0);
	CHECK_EQ_INT(st.cache_bytes, 64 * 3);
}

/* Swap class ids a and b everywhere. */
static void swap_classes(genome *g, int a, int b)
{
	genome_class t = g->classes[a];
	g->classes[a] = g->classes[b];
	g->classes[b] = t;
	for (int i = 0; i < g->n_layers; i++) {
		if (g->layers[i].cls == a)
			g->layers[i].cls = (uint8_t)b;
		else if (g->layers[i].cls == b)
			g->layers[i].cls = (uint8_t)a;
	}
}

static void test_hash_identity(void)
{
	genome g, h;
	char h1[65], h2[65];
	tl_err err = TL_ERR_INIT;
	if (load(&g, "examples/genomes/lfm2-350m.json") < 0)
		return;
	genome_hash(&g, h1, &err);
	h = g;
	swap_classes(&h, 0, 2);
	genome_hash(&h, h2, &err);
	CHECK_EQ_STR(h1, h2);
	/* an unused class does not change the architecture */
	h = g;
	h.classes[h.n_classes] = h.classes[1];
	h.classes[h.n_classes].ffn = 0;
	h.classes[h.n_classes].fg[0].conv = 4;
	h.n_classes++;
	CHECK(genome_check(&h, &err) == 0);
	genome_hash(&h, h2, &err);
	CHECK_EQ_STR(h1, h2);
	/* the name is a label, not architecture */
	h = g;
	snprintf(h.name, sizeof h.name, "renamed");
	genome_hash(&h, h2, &err);
	CHECK_EQ_STR(h1, h2);
	/* group numbers are names: 7 and 1 are the same grouping */
	h = g;
	h.layers[4].xgroup = h.layers[10].xgroup = 7;
	h.layers[4].xstrategy = h.layers[10].xstrategy = GX_BV;
	genome k = g;
	k.layers[4].xgroup = k.layers[10].xgroup = 1;
	k.layers[4].xstrategy = k.layers[10].xstrategy = GX_BV;
	genome_hash(&h, h1, &err);
	genome_hash(&k, h2, &err);
	CHECK_EQ_STR(h1, h2);
	/* ... but a real change is a different architecture */
	char h3[65];
	h = g;
	h.classes[0].ffn = 296;
	genome_hash(&g, h1, &err);
	genome_hash(&h, h3, &err);
	CHECK(strcmp(h1, h3) != 0);
	/* a gene the structure ignores (len without a window) is not */
	h = g;
	h.classes[2].len = 77;
	genome_hash(&h, h3, &err);
	CHECK_EQ_STR(h1, h3);
	/* and rope_theta matters only with RoPE */
	h = g;
	h.rope_theta = 10000;
	genome_hash(&h, h3, &err);
	CHECK(strcmp(h1, h3) != 0);
}

static bool same(const genome *a, const genome *b)
{
	return memcmp(a, b, sizeof *a) == 0;
}

/* Text and JSON round-trip and hash stability for one genome. */
static void roundtrip(const genome *g, const char *what)
{
	tl_err err = TL_ERR_INIT;
	char h0[65], h1[65], h2[65];
	genome t, j;
	char *txt = genome_to_text(g), *js = genome_to_json(g, false);
	CHECK(txt && js);
	if (!txt || !js)
		goto out;
	CHECK_MSG(genome_parse(&t, txt, "text", &err) == 0, "%s: %s", what, err.msg);
	CHECK_MSG(genome_parse(&j, js, "json", &err) == 0, "%s: %s", what, err.msg);
	CHECK_MSG(same(&t, g), "%s: text round trip differs: %s", what, txt);
	CHECK_MSG(same(&j, g), "%s: JSON round trip differs: %s", what, js);
	CHECK(genome_hash(g, h0, &err) == 0 && genome_hash(&t, h1, &err) == 0 &&
	      genome_hash(&j, h2, &err) == 0);
	CHECK(strcmp(h0, h1) == 0 && strcmp(h0, h2) == 0);
out:
	free(txt);
	free(js);
}

static int64_t params_of(const genome *g, int64_t *independent)
{
	static genome_arch a;
	genome_stats st;
	genome_decode(&a, g, NULL);
	genome_stats_compute(&st, &a, 2, 1024);
	*independent = state_dict_params(&a);
	return st.params;
}

static void test_properties(const char *space_file, long n, uint64_t seed)
{
	genome_space *s = load_space(space_file);
	if (s == NULL)
		return;
	tl_rng rng;
	tl_rng_seed(&rng, seed, 11);
	genome pop[16];
	int npop = 0;
	long bad = 0, rt_checked = 0, shared_seen = 0, changed[3] = {0}, tries[3] = {0};
	long arch_changed = 0, fz_class_genes = 0;
	tl_err err = TL_ERR_INIT;
	clock_t t0 = clock();
	for (long i = 0; i < n; i++) {
		genome g, m, a, b;
		tl_err_clear(&err);
		if (genome_sample(&g, s, &rng, &err) < 0) {
			CHECK_MSG(0, "%s: sample %ld: %s", space_file, i, err.msg);
			break;
		}
		if (genome_space_check(s, &g, &err) < 0) {
			bad++;
			CHECK_MSG(0, "%s: sample %ld not a member: %s", space_file, i, err.msg);
		}
		for (int l = 0; l < g.n_layers; l++)
			shared_seen += g.layers[l].wgroup || g.layers[l].xgroup;

		int level = (int)(i % 3);
		m = g;
		tries[level]++;
		int mrc = genome_mutate(&m, s, level, &rng, &err);
		if (mrc == 0 && level == 2 && m.d_model == g.d_model && !same(&m, &g))
			fz_class_genes++;
		if (mrc == 0 && !same(&m, &g)) {
			char hg[65], hm[65];
			changed[level]++;
			genome_hash(&g, hg, NULL);
			genome_hash(&m, hm, NULL);
			arch_changed += strcmp(hg, hm) != 0;
		}
		if (genome_space_check(s, &m, &err) < 0) {
			bad++;
			CHECK_MSG(0, "%s: mutation %ld not a member: %s", space_file, i, err.msg);
		}
		const genome *p2 = npop ? &pop[tl_rng_bounded(&rng, (uint32_t)npop)] : &m;
		if (genome_cross(&a, &b, &g, p2, s, &rng, &err) < 0 ||
		    genome_space_check(s, &a, &err) < 0 || genome_space_check(s, &b, &err) < 0) {
			bad++;
			CHECK_MSG(0, "%s: crossover %ld: %s", space_file, i, err.msg);
		}
		pop[i % 16] = m;
		if (npop < 16)
			npop++;

		/* round trips: every genome made, re-encoded both ways */
		roundtrip(&g, "sample");
		roundtrip(&m, "mutant");
		roundtrip(&a, "child");
		rt_checked += 3;
		if (i % 97 == 0) {
			int64_t ind, p = params_of(&g, &ind);
			CHECK_MSG(p == ind, "%s: params %lld, independent count %lld", space_file,
			          (long long)p, (long long)ind);
		}
		if (bad > 10)
			break;
	}
	double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
	fprintf(stderr,
	        "%s: %ld samples, %ld mutations, %ld crossovers, %ld round trips in %.1f s; "
	        "mutations that changed the genome: backbone %ld/%ld operator %ld/%ld featurizer "
	        "%ld/%ld; that changed the architecture %ld; layers with sharing %ld\n",
	        space_file, n, n, n, rt_checked, secs, changed[0], tries[0], changed[1], tries[1],
	        changed[2], tries[2], arch_changed, shared_seen);
	CHECK(arch_changed > n * 95 / 100);
	/* featurizer mutations reach class genes, not only d_model */
	CHECK_MSG(fz_class_genes > tries[2] / 3, "featurizer mutations of class genes: %ld of %ld",
	          fz_class_genes, tries[2]);
	CHECK(shared_seen > 0);
	/* each level does something in these spaces */
	CHECK(changed[0] > tries[0] * 9 / 10);
	CHECK(changed[1] > tries[1] * 9 / 10);
	CHECK(changed[2] > tries[2] * 9 / 10);
	genome_space_free(s);
}

static void test_budget(void)
{
	genome_space *s = load_space("examples/spaces/lfm2-like.json");
	if (s == NULL)
		return;
	tl_rng rng;
	tl_rng_seed(&rng, 3, 3);
	for (int i = 0; i < 200; i++) {
		genome g;
		genome_stats st;
		tl_err err = TL_ERR_INIT;
		CHECK_MSG(genome_sample(&g, s, &rng, &err) == 0, "%s", err.msg);
		stats_of(&g, &st, 1, 1);
		CHECK_MSG(fabs((double)st.params - 354483968.0) <= 0.02 * 354483968.0,
		          "params %lld outside budget", (long long)st.params);
	}
	/* The LFM2-350M preset is itself a member of its own search space once
	 * its classes are laid out like the space's. */
	genome_space_free(s);
}

static void test_determinism(void)
{
	genome_space *s = load_space("examples/spaces/tiny.json");
	if (s == NULL)
		return;
	tl_rng r1, r2;
	tl_rng_seed(&r1, 99, 1);
	tl_rng_seed(&r2, 99, 1);
	for (int i = 0; i < 50; i++) {
		genome a, b;
		genome_sample(&a, s, &r1, NULL);
		genome_sample(&b, s, &r2, NULL);
		CHECK(same(&a, &b));
		genome_mutate(&a, s, -1, &r1, NULL);
		genome_mutate(&b, s, -1, &r2, NULL);
		CHECK(same(&a, &b));
	}
	genome_space_free(s);
}

static void expect_space_error(const char *json, const char *want)
{
	genome_space *s = NULL;
	tl_err err = TL_ERR_INIT;
	int rc = genome_space_parse(&s, json, "space.json", &err);
	CHECK_MSG(rc < 0, "accepted: %s", json);
	CHECK_MSG(strcmp(err.msg, want) == 0 || strstr(err.msg, want) != NULL,
	          "got \"%s\", want \"%s\"", err.msg, want);
	CHECK(strchr(err.msg, '\n') == NULL);
	genome_space_free(s);
}

#define SPACE_HEAD "{\"d_model\":256,\"vocab\":256,\"depth\":{\"min\":2,\"max\":8},\"classes\":["
#define SWIGLU "{\"op\":\"glu.diagonal.none.silu.diagonal\",\"ffn\":256},"

static void test_space_errors(void)
{
	expect_space_error(SPACE_HEAD SWIGLU "{\"op\":\"bch.toeplitz.none.none.diagonal\",\"len\":3},"
	                   "{\"op\":\"qkv.dense.none.softmax.heads\",\"heads\":16,\"kv_heads\":[8,3],"
	                   "\"head_dim\":64}]}",
	                   "space.json: classes[2].kv_heads: 3 does not divide heads 16");
	expect_space_error(SPACE_HEAD SWIGLU "{\"op\":\"qkv.dense.none.softmax.heads\",\"heads\":[8,16],"
	                   "\"kv_heads\":5,\"head_dim\":64}]}",
	                   "space.json: classes[1].kv_heads: 5 does not divide heads [8, 16]");
	expect_space_error("{\"d_model\": 256,\n \"vocab\": }", "space.json: line 2 column 11: not valid JSON");
	expect_space_error(SPACE_HEAD SWIGLU "{\"op\":\"4294967299.0.0.2.0\",\"ffn\":8}]}",
	                   "space.json: classes[1].op: expected feat.structure.mask.nonlin.chmix");
	expect_space_error(SPACE_HEAD SWIGLU "{\"op\":\"bch.toeplitz.none.none.diagonal\",\"len\":3,"
	                   "\"len\":4}]}", "space.json: classes[1].len: key given twice");
	expect_space_error(SPACE_HEAD SWIGLU "{\"op\":\"qkv.toeplitz.none.none.heads\",\"heads\":2,"
	                   "\"head_dim\":8}]}",
	                   "space.json: classes[1].op: no combination is in the catalog");
	expect_space_error(SPACE_HEAD SWIGLU "{\"op\":\"bch.toeplitz.none.none.diagonal\"}]}",
	                   "space.json: classes[1].len: missing");
	expect_space_error(SPACE_HEAD SWIGLU "{\"op\":\"bch.toeplitz.none.none.diagonal\",\"len\":3,"
	                   "\"heds\":4}]}",
	                   "space.json: classes[1].heds: unknown key");
	expect_space_error(SPACE_HEAD SWIGLU "{\"op\":\"bch.toeplitz.none.none.diagonal\",\"len\":"
	                   "{\"min\":5,\"max\":2}}]}",
	                   "space.json: classes[1].len: min 5 is above max 2");
	expect_space_error(SPACE_HEAD "{\"op\":\"bch.toeplitz.none.none.diagonal\",\"len\":3}]}",
	                   "an interleaved layout needs a mixer class and a channel class");
	/* An impossible budget loads (it is a property of genomes, not of the
	 * space's shape) and sampling then says why nothing fits: */
	genome_space *s = NULL;
	tl_err err = TL_ERR_INIT;
	int rc = genome_space_parse(&s, "{\"d_model\":256,\"vocab\":256,\"depth\":4,\"param_budget\":100,"
	                            "\"classes\":[" SWIGLU "{\"op\":\"bch.toeplitz.none.none.diagonal\","
	                            "\"len\":3}]}", "space.json", &err);
	CHECK_MSG(rc == 0, "%s", err.msg);
	if (rc == 0) {
		genome g;
		tl_rng rng;
		tl_rng_seed(&rng, 1, 1);
		CHECK(genome_sample(&g, s, &rng, &err) == TL_EINVAL);
		CHECK_CONTAINS(err.msg, "outside the budget 100");
	}
	genome_space_free(s);
}

/* A preset joins a space without changing its architecture. */
static void test_adopt(void)
{
	genome_space *s = load_space("examples/spaces/lfm2-like.json");
	genome g;
	if (s == NULL || load(&g, "examples/genomes/lfm2-350m.json") < 0) {
		genome_space_free(s);
		return;
	}
	tl_err err = TL_ERR_INIT;
	char h0[65], h1[65];
	tl_rng rng;
	tl_rng_seed(&rng, 4, 4);
	genome_hash(&g, h0, &err);
	CHECK(genome_space_check(s, &g, &err) == TL_EINVAL); /* 3 classes, space has 5 */
	CHECK_CONTAINS(err.msg, "3 classes, the space has 5");
	tl_err_clear(&err);
	CHECK_MSG(genome_space_adopt(&g, s, &rng, &err) == 0, "%s", err.msg);
	CHECK(g.n_classes == 5);
	CHECK(genome_space_check(s, &g, &err) == 0);
	genome_hash(&g, h1, &err);
	CHECK_EQ_STR(h0, h1);
	/* and it breeds: a mutant is a member with another architecture */
	genome m = g;
	CHECK(genome_mutate(&m, s, -1, &rng, &err) == 0);
	CHECK(genome_space_check(s, &m, &err) == 0);
	genome_hash(&m, h1, &err);
	CHECK(strcmp(h0, h1) != 0);
	CHECK(m.name[0] == '\0');
	/* a model whose operators the space lacks is refused with the class */
	genome_space *t = load_space("examples/spaces/tiny.json");
	genome l;
	if (t && load(&l, "examples/genomes/llama-3.2-1b.json") == 0) {
		tl_err_clear(&err);
		CHECK(genome_space_adopt(&l, t, &rng, &err) == TL_EINVAL);
		CHECK_CONTAINS(err.msg, "has no counterpart in the space");
	}
	genome_space_free(t);
	genome_space_free(s);

	/* Matching searches all assignments: the plain GQA class must take the
	 * space class that allows only plain GQA, leaving the one that allows
	 * windows to the windowed class, whatever order the genome lists them. */
	genome_space *w = NULL;
	CHECK(genome_space_parse(&w, "{\"d_model\":64,\"vocab\":32,\"depth\":4,\"layout\":\"free\","
	      "\"classes\":[{\"op\":{\"feat\":\"qkv\",\"structure\":\"dense\",\"mask\":[\"none\","
	      "\"window\"],\"nonlin\":\"softmax\",\"chmix\":\"heads\"},\"heads\":2,\"head_dim\":8,"
	      "\"len\":16},{\"op\":\"qkv.dense.none.softmax.heads\",\"heads\":2,\"head_dim\":8}]}",
	      "w.json", &err) == 0);
	genome two;
	CHECK(genome_parse(&two, "tailor-genome/1 d=64 vocab=32 | 0.0.0.0.0 1.0.0.0.0 0.0.0.0.0 "
	      "1.0.0.0.0 | c0 op=0.4.0.1.1 h=2 kv=2 hd=8 qkn=0 rope=1 C=0.2.1.1 B=0.2.1.1 V=0.2.1.1 "
	      "| c1 op=0.4.1.1.1 h=2 kv=2 hd=8 len=16 qkn=0 rope=1 C=0.2.1.1 B=0.2.1.1 V=0.2.1.1",
	      "two", &err) == 0);
	if (w) {
		genome_hash(&two, h0, &err);
		CHECK_MSG(genome_space_adopt(&two, w, &rng, &err) == 0, "%s", err.msg);
		genome_hash(&two, h1, &err);
		CHECK_EQ_STR(h0, h1);
	}
	genome_space_free(w);
}

static void test_space_semantics(void)
{
	tl_err err = TL_ERR_INIT;
	genome_space *a = NULL, *b = NULL;
	/* the hash is of what is allowed, not of the file's formatting */
	CHECK(genome_space_parse(&a, "{\"d_model\":64,\"vocab\":32,\"depth\":{\"min\":4,\"max\":8,"
	                         "\"step\":4},\"classes\":[" "{\"op\":\"glu.diagonal.none.silu."
	                         "diagonal\",\"ffn\":128},{\"op\":\"qkv.dense.none.softmax.heads\","
	                         "\"heads\":[2,4],\"head_dim\":8}]}", "a", &err) == 0);
	CHECK(genome_space_parse(&b, "{ \"vocab\": 32, \"d_model\": 64, \"classes\": ["
	                         "{\"ffn\": 128, \"op\": [3,0,0,2,0]}, {\"head_dim\": 8,"
	                         "\"heads\": [4,2], \"op\": \"qkv.dense.none.softmax.heads\"}],"
	                         "\"depth\": [4, 8]}", "b", &err) == 0);
	if (a && b)
		CHECK_EQ_STR(genome_space_hash(a), genome_space_hash(b));
	if (a) {
		tl_rng rng;
		tl_rng_seed(&rng, 1, 2);
		int depth4 = 0, depth8 = 0;
		for (int i = 0; i < 300; i++) {
			genome g;
			CHECK(genome_sample(&g, a, &rng, &err) == 0);
			/* depth honours the step; kv_heads not given means MHA */
			CHECK(g.n_layers == 4 || g.n_layers == 8);
			depth4 += g.n_layers == 4;
			depth8 += g.n_layers == 8;
			CHECK(g.classes[1].kv_heads == g.classes[1].heads);
			genome m = g;
			CHECK(genome_mutate(&m, a, 0, &rng, &err) == 0);
			CHECK(m.n_layers == 4 || m.n_layers == 8);
		}
		CHECK(depth4 > 50 && depth8 > 50);
	}
	genome_space_free(a);
	genome_space_free(b);
	/* tied expansions have one gene, given on C */
	genome_space *c = NULL;
	CHECK(genome_space_parse(&c, "{\"d_model\":64,\"vocab\":32,\"depth\":2,\"classes\":["
	                         "{\"op\":\"glu.diagonal.none.silu.diagonal\",\"ffn\":128},"
	                         "{\"op\":\"bch.toeplitz.none.none.diagonal\",\"len\":3,"
	                         "\"features\":{\"C\":{\"expand\":[1,2]},\"B\":{\"expand\":2}}}]}",
	                         "s.json", &err) == TL_EINVAL);
	CHECK_CONTAINS(err.msg, "s.json: classes[1].features.B.expand: a gated conv has one expansion");
	genome_space_free(c);
	c = NULL;
	tl_err_clear(&err);
	CHECK_MSG(genome_space_parse(&c, "{\"d_model\":64,\"vocab\":32,\"depth\":2,\"classes\":["
	                             "{\"op\":\"glu.diagonal.none.silu.diagonal\",\"ffn\":128},"
	                             "{\"op\":\"bch.toeplitz.none.none.diagonal\",\"len\":3,"
	                             "\"features\":{\"C\":{\"expand\":2}}}]}", "s.json", &err) == 0,
	          "%s", err.msg);
	if (c) {
		genome g;
		tl_rng rng;
		tl_rng_seed(&rng, 1, 3);
		CHECK(genome_sample(&g, c, &rng, &err) == 0);
		CHECK(g.classes[1].fg[GG_B].expand == 2 && g.classes[1].fg[GG_V].expand == 2);
	}
	genome_space_free(c);
}

static void expect_genome_error(const char *in, const char *want)
{
	genome g;
	tl_err err = TL_ERR_INIT;
	CHECK_MSG(genome_parse(&g, in, "g.txt", &err) < 0, "accepted: %s", in);
	CHECK_MSG(strstr(err.msg, want) != NULL, "got \"%s\", want \"%s\"", err.msg, want);
}

#define HDR "tailor-genome/1 d=64 vocab=32 ffn_multiple=8 rope_theta=10000 tied=1 | "
static void test_genome_errors(void)
{
	expect_genome_error("", "g.txt: empty genome");
	expect_genome_error("hello", "g.txt: line 1: not a genome");
	expect_genome_error(HDR "0.0.0.0", "g.txt: layer 0: '0.0.0.0' is not class.fgroup");
	expect_genome_error(HDR "0.0.0.0.0", "incomplete");
	expect_genome_error(HDR "0.0.0.0.0 | c0 op=3.0.0.2.0 ffn=128 C=0.2.1.1",
	                    "g.txt: class 0: missing V=");
	expect_genome_error(HDR "1.0.0.0.0 | c0 op=3.0.0.2.0 ffn=128 C=0.2.1.1 V=0.2.1.1",
	                    "g.txt: layer 0: class 1 does not exist");
	expect_genome_error(HDR "0.0.0.0.0 | c0 op=0.4.0.1.1 h=16 kv=3 hd=4 qkn=1 rope=1 C=0.2.1.1 "
	                    "B=0.2.1.5 V=0.2.1.5",
	                    "g.txt: class 0: kv_heads 3 does not divide heads 16");
	expect_genome_error(HDR "0.0.0.0.0 | c0 op=0.3.0.1.1 h=2 kv=2 hd=4 C=0.2.1.1 B=0.2.1.1 "
	                    "V=0.2.1.1", "is not in the catalog");
	expect_genome_error(HDR "0.0.0.0.0 | c0 op=3.0.0.2.0 ffn=128 ffn=64 C=0.2.1.1 V=0.2.1.1",
	                    "'ffn' given twice");
	expect_genome_error(HDR "0.0.0.0.0 | c0 op=3.0.0.2.0 ffn=99999 C=0.2.1.1 V=0.2.1.1",
	                    "ffn='99999' is not an integer 0..65535");
	expect_genome_error("{\"d_model\":64,\"vocab\":32,\"classes\":[{\"op\":[3,0,0,2,0],\"ffn\":128,"
	                    "\"features\":{\"C\":[0,2,1,1],\"V\":[0,2,1,1],\"B\":[0,2,1,1]}}],"
	                    "\"layers\":[\"0.0.0.0.0\"]}",
	                    "g.txt: classes[0].features.B: not a feature group of a glu featurizer");
	expect_genome_error("{\"d_model\":64,\"vocab\":32,\"classes\":[{\"op\":[3,0,0,2,0],\"ffn\":-1}],"
	                    "\"layers\":[[0,0,0,0,0]]}",
	                    "g.txt: classes[0].ffn: -1 is not an integer in 0..65535");
	expect_genome_error("{\"version\":2,\"d_model\":64}", "this tailor reads version 1");
	expect_genome_error("{\"d_model\":64,", "g.txt: line 1 column");
	expect_genome_error("{\"d_model\":64,\"d_model\":128}", "g.txt: d_model: key given twice");
	expect_genome_error("{\"d_model\":64} {}", "g.txt: line 1 column 16: text after the JSON value");
	expect_genome_error(HDR "0.0.0.0.0 | c0 op=3.0.0.2.0 ffn=128 C=0.2.1.1 V=0.2.1.1 A=0.2.1.1",
	                    "g.txt: class 0: A= given, but a glu featurizer has no A group");
	/* names of the operator genes are accepted in JSON */
	genome g;
	tl_err err = TL_ERR_INIT;
	CHECK_MSG(genome_parse(&g, "{\"d_model\":64,\"vocab\":32,\"classes\":[{\"op\":"
	                       "\"glu.diagonal.none.silu.diagonal\",\"ffn\":128,\"features\":{\"C\":"
	                       "\"0.2.1.1\",\"V\":[0,2,1,1]}}],\"layers\":[\"0.0.0.0.0\"]}",
	                       "g.json", &err) == 0, "%s", err.msg);
}

int main(int argc, char **argv)
{
	if (argc > 1)
		root = argv[1];
	long n = 100000;
	const char *env = getenv("TAILOR_PROPERTY_N");
	int64_t v;
	if (env && tl_parse_i64(&v, env, 1, 100000000, "TAILOR_PROPERTY_N", NULL) == 0)
		n = (long)v;
	test_presets();
	test_kv_sharing();
	test_flops_by_hand();
	test_hash_identity();
	test_space_errors();
	test_genome_errors();
	test_budget();
	test_adopt();
	test_space_semantics();
	test_determinism();
	test_properties("examples/spaces/tiny.json", n, 1);
	test_properties("examples/spaces/lfm2-like.json", n / 20 > 0 ? n / 20 : 1, 2);
	return tl_test_end();
}
