/*
 * tests/test_arch.c: the runtime's reading of an architecture (operators/
 * arch.c) against the genome room's decode, field by field: for every preset
 * and for random genomes of the example spaces, genome_arch_describe ->
 * op_arch_parse must give back the decoded architecture. Damaged texts are
 * refused with a line number, never a crash.
 */
#include "genome.h"
#include "op_arch.h"
#include "tl_test.h"

#include <stdlib.h>

static const char *root = ".";

static void compare(const genome_arch *g, const op_arch *o, const char *what)
{
	CHECK_MSG(g->d_model == o->d_model && g->vocab == o->vocab && g->tied == o->tied &&
	          g->n_layers == o->n_layers, "%s: header differs", what);
	for (int i = 0; i < g->n_layers && i < o->n_layers; i++) {
		const genome_arch_layer *a = &g->layers[i];
		const op_layer *b = &o->layers[i];
		bool same = a->feat == b->feat && a->structure == b->structure && a->mask == b->mask &&
		            a->nonlin == b->nonlin && a->chmix == b->chmix && a->heads == b->heads &&
		            a->kv_heads == b->kv_heads && a->head_dim == b->head_dim && a->len == b->len &&
		            a->inner == b->inner && a->state == b->state && a->qk_norm == b->qk_norm &&
		            a->rope == b->rope;
		for (int k = 0; k < GENOME_NGROUPS; k++) {
			same = same && a->xowner[k] == b->xowner[k] && a->width[k] == b->width[k];
			if (a->xowner[k] == i)
				same = same && a->wowner[k] == b->wowner[k] && a->conv[k] == b->conv[k] &&
				       a->proj_chmix[k] == b->proj_chmix[k];
		}
		CHECK_MSG(same, "%s: layer %d differs", what, i);
	}
	bool any_rope = false;
	for (int i = 0; i < g->n_layers; i++)
		any_rope |= g->layers[i].rope != 0;
	CHECK(o->rope_theta == (any_rope ? g->rope_theta : 0));
}

static void roundtrip(const genome *g, const char *what)
{
	static genome_arch a;
	static op_arch o;
	tl_err err = TL_ERR_INIT;
	if (genome_decode(&a, g, &err) < 0) {
		CHECK_MSG(0, "%s: %s", what, err.msg);
		return;
	}
	char *text = genome_arch_describe(&a);
	CHECK(text != NULL);
	if (text == NULL)
		return;
	CHECK_MSG(op_arch_parse(&o, text, what, &err) == 0, "%s: %s", what, err.msg);
	compare(&a, &o, what);
	/* Damage the text: every truncation is refused or parses to a prefix,
	 * and a flipped character never crashes. */
	size_t n = strlen(text);
	char *copy = malloc(n + 1);
	for (size_t cut = 0; copy && cut < n; cut += 1 + n / 40) {
		memcpy(copy, text, cut);
		copy[cut] = '\0';
		tl_err e = TL_ERR_INIT;
		if (op_arch_parse(&o, copy, "cut", &e) == 0)
			CHECK(o.n_layers <= a.n_layers);
		else
			CHECK(strstr(e.msg, "cut: ") == e.msg);
	}
	for (size_t at = 0; copy && at < n; at += 1 + n / 60) {
		memcpy(copy, text, n + 1);
		copy[at] = copy[at] == '9' ? 'x' : '9';
		tl_err e = TL_ERR_INIT;
		(void)op_arch_parse(&o, copy, "flip", &e);
	}
	free(copy);
	free(text);
}

int main(int argc, char **argv)
{
	if (argc > 1)
		root = argv[1];
	static const char *presets[] = {"lfm2-350m", "lfm2-1.2b", "lfm2-2.6b", "llama-3.2-1b",
	                                "transformer-pp-350m", "hyena-edge-350m"};
	for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++) {
		char path[1024];
		genome g;
		tl_err err = TL_ERR_INIT;
		snprintf(path, sizeof path, "%s/examples/genomes/%s.json", root, presets[i]);
		CHECK_MSG(genome_load(&g, path, &err) == 0, "%s", err.msg);
		roundtrip(&g, presets[i]);
	}
	static const char *spaces[] = {"tiny.json", "lfm2-like.json"};
	for (size_t s = 0; s < 2; s++) {
		char path[1024];
		genome_space *sp = NULL;
		tl_err err = TL_ERR_INIT;
		snprintf(path, sizeof path, "%s/examples/spaces/%s", root, spaces[s]);
		CHECK_MSG(genome_space_load(&sp, path, &err) == 0, "%s", err.msg);
		if (sp == NULL)
			continue;
		tl_rng rng;
		tl_rng_seed(&rng, 17, s);
		for (int i = 0; i < 1000; i++) {
			genome g;
			if (genome_sample(&g, sp, &rng, &err) == 0)
				roundtrip(&g, spaces[s]);
		}
		genome_space_free(sp);
	}
	op_arch o;
	tl_err err = TL_ERR_INIT;
	CHECK(op_arch_parse(&o, "", "empty", &err) == TL_EPARSE);
	tl_err_clear(&err);
	CHECK(op_arch_parse(&o, "arch/1 d=8 vocab=10 tied=1\nL0 qkv.dense.none.softmax.heads h=2 "
	                    "kv=2 hd=4 len=0 inner=8 state=0 qkn=0 rope=0 C=8/dense/conv0/w0 "
	                    "B=from0 V=8/dense/conv0/w0\n", "self", &err) == TL_EPARSE);
	CHECK_CONTAINS(err.msg, "self: line 2:");
	return tl_test_end();
}
