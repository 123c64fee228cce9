/*
 * genome/genome.c: the rules of the genome (what is valid), its canonical
 * form, decoding to an architecture, and the content hash.
 *
 * The catalog (which featurizer class goes with which structure, mask,
 * nonlinearity and channel mixing) is the table `catalog` below; every other
 * function reads it, so adding an operator family is one row plus its sizes.
 */
#include "genome.h"
#include "genome_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- names ----------------------------------------------------------------- */

static const char *const struct_names[GS_COUNT] = {"diagonal", "lowrank", "semisep",
                                                   "toeplitz", "dense"};
static const char *const feat_names[GF_COUNT] = {"qkv", "bch", "cbva", "glu"};
static const char *const mask_names[GM_COUNT] = {"none", "window", "block"};
static const char *const nonlin_names[GN_COUNT] = {"none", "softmax", "silu", "sigmoid",
                                                   "posfeat"};
static const char *const chmix_names[GC_COUNT] = {"diagonal", "heads", "dense"};
const char *const genome_group_names[GENOME_NGROUPS] = {"C", "B", "V", "A"};

#define NAME_OR(tab, n, i) ((i) >= 0 && (i) < (n) ? (tab)[i] : "?")
const char *genome_struct_name(int s) { return NAME_OR(struct_names, GS_COUNT, s); }
const char *genome_feat_name(int f) { return NAME_OR(feat_names, GF_COUNT, f); }
const char *genome_mask_name(int m) { return NAME_OR(mask_names, GM_COUNT, m); }
const char *genome_nonlin_name(int n) { return NAME_OR(nonlin_names, GN_COUNT, n); }
const char *genome_chmix_name(int c) { return NAME_OR(chmix_names, GC_COUNT, c); }

int genome_name_lookup(int kind, const char *name)
{
	static const char *const *tabs[5] = {feat_names, struct_names, mask_names, nonlin_names,
	                                     chmix_names};
	static const int ns[5] = {GF_COUNT, GS_COUNT, GM_COUNT, GN_COUNT, GC_COUNT};
	if (kind < 0 || kind > 4)
		return -1;
	for (int i = 0; i < ns[kind]; i++)
		if (strcmp(tabs[kind][i], name) == 0)
			return i;
	return -1;
}

/* ---- the catalog ------------------------------------------------------------ */

/* For each featurizer class: the structure it drives, and bitmasks of the
 * masks, nonlinearities and (operator) channel mixings it may take. */
static const struct {
	uint8_t groups;    /* bitmask of feature groups computed */
	uint8_t structs;   /* bitmask of structures */
	uint8_t masks[GS_COUNT];   /* per structure: allowed masks */
	uint8_t nonlins[GS_COUNT]; /* per structure: allowed nonlinearities */
	uint8_t chmix;     /* the operator channel mixing (one value) */
} catalog[GF_COUNT] = {
	[GF_QKV] = {
		.groups = 1 << GG_C | 1 << GG_B | 1 << GG_V,
		.structs = 1 << GS_DENSE | 1 << GS_LOWRANK,
		.masks = {[GS_DENSE] = 1 << GM_NONE | 1 << GM_WINDOW | 1 << GM_BLOCK,
		          [GS_LOWRANK] = 1 << GM_NONE},
		.nonlins = {[GS_DENSE] = 1 << GN_SOFTMAX | 1 << GN_SIGMOID,
		            [GS_LOWRANK] = 1 << GN_POSFEAT | 1 << GN_NONE},
		.chmix = GC_HEADS,
	},
	[GF_BCH] = {
		.groups = 1 << GG_C | 1 << GG_B | 1 << GG_V,
		.structs = 1 << GS_TOEPLITZ,
		.masks = {[GS_TOEPLITZ] = 1 << GM_NONE},
		.nonlins = {[GS_TOEPLITZ] = 1 << GN_NONE},
		.chmix = GC_DIAGONAL,
	},
	[GF_CBVA] = {
		.groups = 1 << GG_C | 1 << GG_B | 1 << GG_V | 1 << GG_A,
		.structs = 1 << GS_SEMISEP,
		.masks = {[GS_SEMISEP] = 1 << GM_NONE},
		.nonlins = {[GS_SEMISEP] = 1 << GN_NONE | 1 << GN_SILU},
		.chmix = GC_HEADS,
	},
	[GF_GLU] = {
		.groups = 1 << GG_C | 1 << GG_V,
		.structs = 1 << GS_DIAGONAL,
		.masks = {[GS_DIAGONAL] = 1 << GM_NONE},
		.nonlins = {[GS_DIAGONAL] = 1 << GN_SILU | 1 << GN_SIGMOID | 1 << GN_NONE},
		.chmix = GC_DIAGONAL,
	},
};

bool genome_feat_has_group(int feat, int grp)
{
	return feat >= 0 && feat < GF_COUNT && grp >= 0 && grp < GENOME_NGROUPS &&
	       (catalog[feat].groups >> grp & 1);
}

bool genome_op_allowed(int feat, int structure, int mask, int nonlin, int chmix)
{
	if (feat < 0 || feat >= GF_COUNT || structure < 0 || structure >= GS_COUNT ||
	    mask < 0 || mask >= GM_COUNT || nonlin < 0 || nonlin >= GN_COUNT || chmix < 0 ||
	    chmix >= GC_COUNT)
		return false;
	return (catalog[feat].structs >> structure & 1) &&
	       (catalog[feat].masks[structure] >> mask & 1) &&
	       (catalog[feat].nonlins[structure] >> nonlin & 1) && catalog[feat].chmix == chmix;
}

bool genome_wshare_covers(int strategy, int grp)
{
	switch (strategy) {
	case GW_ALL: return true;
	case GW_CB: return grp == GG_C || grp == GG_B;
	case GW_V: return grp == GG_V;
	}
	return false;
}

bool genome_xshare_covers(int strategy, int grp)
{
	switch (strategy) {
	case GX_BV: return grp == GG_B || grp == GG_V;
	case GX_B: return grp == GG_B;
	case GX_V: return grp == GG_V;
	}
	return false;
}

/* Which size genes a class uses (the rest are zero in canonical form). */
bool genome_class_uses(const genome_class *c, int size)
{
	switch (size) {
	case GZ_HEADS: return c->feat == GF_QKV || c->feat == GF_CBVA;
	case GZ_KV: return c->feat == GF_QKV;
	case GZ_HD: return c->feat == GF_QKV || c->feat == GF_CBVA;
	case GZ_LEN:
		return c->feat == GF_BCH || (c->feat == GF_QKV && c->structure == GS_DENSE &&
		                             c->mask != GM_NONE);
	case GZ_FFN: return c->feat == GF_GLU;
	case GZ_QKN: return c->feat == GF_QKV;
	case GZ_ROPE: return c->feat == GF_QKV;
	}
	return false;
}

/* Width of a feature group before expansion. */
uint32_t genome_natural_width(const genome *g, const genome_class *c, int grp)
{
	switch (c->feat) {
	case GF_QKV:
		return (uint32_t)(grp == GG_C ? c->heads : c->kv_heads) * c->head_dim;
	case GF_BCH:
		return g->d_model;
	case GF_CBVA:
		return grp == GG_A ? c->heads : (uint32_t)c->heads * c->head_dim;
	case GF_GLU:
		return genome_glu_inner(g, c);
	}
	return 0;
}

uint32_t genome_glu_inner(const genome *g, const genome_class *c)
{
	uint64_t w = ((uint64_t)c->ffn * g->d_model + 63) / 64;
	uint64_t m = g->ffn_multiple ? g->ffn_multiple : 1;
	w = (w + m - 1) / m * m;
	return w > UINT32_MAX ? UINT32_MAX : (uint32_t)w;
}

/* The number of heads a group's projection is split into (GC_HEADS). */
static uint32_t group_blocks(const genome_class *c, int grp)
{
	if (c->feat == GF_QKV)
		return grp == GG_C ? c->heads : c->kv_heads;
	if (c->feat == GF_CBVA)
		return c->heads;
	return 1;
}

/* Expected repeat of a group: how many query heads read one copy of it. */
static unsigned expected_repeat(const genome_class *c, int grp)
{
	if (c->feat == GF_QKV && (grp == GG_B || grp == GG_V) && c->kv_heads)
		return c->heads / c->kv_heads;
	return 1;
}

const char *genome_class_label(const genome_class *c)
{
	bool fconv = false;
	for (int k = 0; k < GENOME_NGROUPS; k++)
		if (genome_feat_has_group(c->feat, k) && c->fg[k].conv)
			fconv = true;
	switch (c->feat) {
	case GF_QKV:
		if (c->structure == GS_LOWRANK)
			return "linattn";
		if (c->mask == GM_WINDOW)
			return c->kv_heads == c->heads ? "swa-mha" : "swa";
		if (c->mask == GM_BLOCK)
			return "block-attn";
		return c->kv_heads == c->heads ? "mha" : "gqa";
	case GF_BCH:
		if (fconv)
			return c->len > 1 ? "hyena-se" : "hyena-x";
		return "shortconv";
	case GF_CBVA:
		return "recurrence";
	case GF_GLU:
		return c->nonlin == GN_SILU ? "swiglu" : c->nonlin == GN_SIGMOID ? "glu" : "bilinear";
	}
	return "?";
}

/* ---- validity ----------------------------------------------------------------- */

static int check_class(const genome *g, int ci, tl_err *err)
{
	const genome_class *c = &g->classes[ci];
	if (c->feat >= GF_COUNT)
		return tl_err_set(err, TL_EINVAL, "class %d: featurizer class %d out of range (0..%d)",
		                  ci, c->feat, GF_COUNT - 1);
	if (!genome_op_allowed(c->feat, c->structure, c->mask, c->nonlin, c->chmix))
		return tl_err_set(err, TL_EINVAL,
		                  "class %d: operator %d.%d.%d.%d.%d (%s.%s.%s.%s.%s) is not in the "
		                  "catalog (see docs/genome.md, 'The catalog')",
		                  ci, c->feat, c->structure, c->mask, c->nonlin, c->chmix,
		                  genome_feat_name(c->feat), genome_struct_name(c->structure),
		                  genome_mask_name(c->mask), genome_nonlin_name(c->nonlin),
		                  genome_chmix_name(c->chmix));
	/* 128 heads at most: the GQA repeat (heads / kv) is kept in 8 bits */
	if (genome_class_uses(c, GZ_HEADS) && (c->heads < 1 || c->heads > 128))
		return tl_err_set(err, TL_EINVAL, "class %d: heads %u out of range (1..128)", ci,
		                  c->heads);
	if (genome_class_uses(c, GZ_KV)) {
		if (c->kv_heads < 1 || c->kv_heads > c->heads)
			return tl_err_set(err, TL_EINVAL, "class %d: kv_heads %u out of range (1..heads %u)",
			                  ci, c->kv_heads, c->heads);
		if (c->heads % c->kv_heads)
			return tl_err_set(err, TL_EINVAL, "class %d: kv_heads %u does not divide heads %u",
			                  ci, c->kv_heads, c->heads);
	}
	if (genome_class_uses(c, GZ_HD)) {
		if (c->head_dim < 1 || c->head_dim > 1024)
			return tl_err_set(err, TL_EINVAL, "class %d: head_dim %u out of range (1..1024)",
			                  ci, c->head_dim);
		if (c->rope && c->head_dim % 2)
			return tl_err_set(err, TL_EINVAL,
			                  "class %d: head_dim %u is odd (RoPE rotates pairs; use an even "
			                  "head_dim or rope=0)", ci, c->head_dim);
	}
	if (genome_class_uses(c, GZ_LEN)) {
		unsigned lo = 1, hi = c->feat == GF_BCH ? 256 : 65535;
		if (c->len < lo || c->len > hi)
			return tl_err_set(err, TL_EINVAL, "class %d: len %u out of range (%u..%u)", ci,
			                  c->len, lo, hi);
	}
	if (genome_class_uses(c, GZ_FFN) && (c->ffn < 1 || c->ffn > 4096))
		return tl_err_set(err, TL_EINVAL,
		                  "class %d: ffn %u out of range (1..4096, in 64ths of d_model)", ci,
		                  c->ffn);
	if (c->qk_norm > 1 || c->rope > 1)
		return tl_err_set(err, TL_EINVAL, "class %d: qkn and rope are 0 or 1", ci);

	for (int k = 0; k < GENOME_NGROUPS; k++) {
		if (!genome_feat_has_group(c->feat, k))
			continue;
		const genome_fgene *f = &c->fg[k];
		const char *gn = genome_group_names[k];
		if (f->conv == 1 || f->conv > 64)
			return tl_err_set(err, TL_EINVAL,
			                  "class %d: %s.conv %u out of range (0 for none, or 2..64)", ci,
			                  gn, f->conv);
		if (f->conv && (c->feat == GF_GLU || k == GG_A))
			return tl_err_set(err, TL_EINVAL,
			                  "class %d: %s.conv %u: %s features take no short conv", ci, gn,
			                  f->conv, k == GG_A ? "decay (A)" : "SwiGLU");
		if (f->chmix >= GC_COUNT)
			return tl_err_set(err, TL_EINVAL, "class %d: %s.chmix %u out of range (0..2)", ci,
			                  gn, f->chmix);
		bool expandable = c->feat == GF_BCH || (c->feat == GF_CBVA && (k == GG_C || k == GG_B));
		if (f->expand < 1 || f->expand > 8 || (!expandable && f->expand != 1))
			return tl_err_set(err, TL_EINVAL, "class %d: %s.expand %u out of range (%s)", ci,
			                  gn, f->expand, expandable ? "1..8" : "must be 1 for this group");
		if (f->repeat != expected_repeat(c, k))
			return tl_err_set(err, TL_EINVAL,
			                  "class %d: %s.repeat %u must be %u (heads / kv_heads for K and V, "
			                  "else 1)", ci, gn, f->repeat, expected_repeat(c, k));
		uint64_t width = (uint64_t)genome_natural_width(g, c, k) * f->expand;
		if (width == 0 || width > (1u << 20))
			return tl_err_set(err, TL_EINVAL, "class %d: %s width %llu out of range (1..2^20)",
			                  ci, gn, (unsigned long long)width);
		if (f->chmix == GC_DIAGONAL && width != g->d_model)
			return tl_err_set(err, TL_EINVAL,
			                  "class %d: %s.chmix diagonal needs width %llu == d_model %u "
			                  "(use dense, 2)", ci, gn, (unsigned long long)width, g->d_model);
		if (f->chmix == GC_HEADS) {
			uint32_t b = group_blocks(c, k);
			if (b < 2)
				return tl_err_set(err, TL_EINVAL,
				                  "class %d: %s.chmix heads needs more than one head (use "
				                  "dense, 2)", ci, gn);
			if (g->d_model % b || width % b)
				return tl_err_set(err, TL_EINVAL,
				                  "class %d: %s.chmix heads: %u heads do not divide d_model %u "
				                  "and width %llu", ci, gn, b, g->d_model,
				                  (unsigned long long)width);
		}
	}
	/* Groups that must agree in width. */
	if (c->feat == GF_BCH && (c->fg[GG_C].expand != c->fg[GG_B].expand ||
	                          c->fg[GG_B].expand != c->fg[GG_V].expand))
		return tl_err_set(err, TL_EINVAL,
		                  "class %d: C, B and V expand must be equal for a gated conv (%u, %u, %u)",
		                  ci, c->fg[GG_C].expand, c->fg[GG_B].expand, c->fg[GG_V].expand);
	if (c->feat == GF_CBVA && c->fg[GG_C].expand != c->fg[GG_B].expand)
		return tl_err_set(err, TL_EINVAL,
		                  "class %d: C and B expand must be equal for a recurrence (%u, %u)", ci,
		                  c->fg[GG_C].expand, c->fg[GG_B].expand);
	return 0;
}

int genome_check(const genome *g, tl_err *err)
{
	if (g->d_model < 8 || g->d_model > 65536)
		return tl_err_set(err, TL_EINVAL, "d_model %u out of range (8..65536)", g->d_model);
	if (g->vocab < 2 || g->vocab > (1u << 22))
		return tl_err_set(err, TL_EINVAL, "vocab %u out of range (2..4194304)", g->vocab);
	if (g->ffn_multiple < 1 || g->ffn_multiple > 4096)
		return tl_err_set(err, TL_EINVAL, "ffn_multiple %u out of range (1..4096)",
		                  g->ffn_multiple);
	if (g->rope_theta < 1)
		return tl_err_set(err, TL_EINVAL, "rope_theta %u out of range (1..4294967295)",
		                  g->rope_theta);
	if (g->tied > 1)
		return tl_err_set(err, TL_EINVAL, "tied %u must be 0 or 1", g->tied);
	if (g->n_classes < 1 || g->n_classes > GENOME_MAX_CLASSES)
		return tl_err_set(err, TL_EINVAL, "%u classes, allowed 1..%d", g->n_classes,
		                  GENOME_MAX_CLASSES);
	if (g->n_layers < 1 || g->n_layers > GENOME_MAX_LAYERS)
		return tl_err_set(err, TL_EINVAL, "%u layers, allowed 1..%d", g->n_layers,
		                  GENOME_MAX_LAYERS);
	for (int ci = 0; ci < g->n_classes; ci++)
		if (check_class(g, ci, err) < 0)
			return TL_EINVAL;

	for (int i = 0; i < g->n_layers; i++) {
		const genome_layer *l = &g->layers[i];
		if (l->cls >= g->n_classes)
			return tl_err_set(err, TL_EINVAL, "layer %d: class %u does not exist (0..%u)", i,
			                  l->cls, g->n_classes - 1);
		if (l->wstrategy >= GW_COUNT)
			return tl_err_set(err, TL_EINVAL,
			                  "layer %d: featurizer-sharing strategy %u out of range (0..%d)", i,
			                  l->wstrategy, GW_COUNT - 1);
		if (l->xstrategy >= GX_COUNT)
			return tl_err_set(err, TL_EINVAL,
			                  "layer %d: feature-sharing strategy %u out of range (0..%d)", i,
			                  l->xstrategy, GX_COUNT - 1);
		if ((l->wgroup == 0) != (l->wstrategy == 0))
			return tl_err_set(err, TL_EINVAL,
			                  "layer %d: featurizer-sharing group %u with strategy %u (a group "
			                  "needs a strategy and a strategy a group)", i, l->wgroup,
			                  l->wstrategy);
		if ((l->xgroup == 0) != (l->xstrategy == 0))
			return tl_err_set(err, TL_EINVAL,
			                  "layer %d: feature-sharing group %u with strategy %u (a group "
			                  "needs a strategy and a strategy a group)", i, l->xgroup,
			                  l->xstrategy);
		if (l->xgroup && g->classes[l->cls].feat != GF_QKV)
			return tl_err_set(err, TL_EINVAL,
			                  "layer %d: feature sharing applies to attention-like (qkv) "
			                  "classes only, class %u is %s", i, l->cls,
			                  genome_class_label(&g->classes[l->cls]));
		/* The first member of each group fixes its class and strategy. */
		for (int j = 0; j < i; j++) {
			const genome_layer *m = &g->layers[j];
			if (l->wgroup && m->wgroup == l->wgroup &&
			    (m->cls != l->cls || m->wstrategy != l->wstrategy))
				return tl_err_set(err, TL_EINVAL,
				                  "layer %d: featurizer-sharing group %u joins layer %d of "
				                  "class %u strategy %u with class %u strategy %u (members "
				                  "share one class and one strategy)", i, l->wgroup, j,
				                  m->cls, m->wstrategy, l->cls, l->wstrategy);
			if (l->xgroup && m->xgroup == l->xgroup &&
			    (m->cls != l->cls || m->xstrategy != l->xstrategy))
				return tl_err_set(err, TL_EINVAL,
				                  "layer %d: feature-sharing group %u joins layer %d of class "
				                  "%u strategy %u with class %u strategy %u (members share "
				                  "one class and one strategy)", i, l->xgroup, j, m->cls,
				                  m->xstrategy, l->cls, l->xstrategy);
		}
	}
	return 0;
}

/* ---- canonical form --------------------------------------------------------------- */

static void renumber(genome *g, bool features)
{
	uint8_t map[256] = {0}, next = 1;
	int count[256] = {0};
	for (int i = 0; i < g->n_layers; i++)
		count[features ? g->layers[i].xgroup : g->layers[i].wgroup]++;
	for (int i = 0; i < g->n_layers; i++) {
		genome_layer *l = &g->layers[i];
		uint8_t *grp = features ? &l->xgroup : &l->wgroup;
		uint8_t *str = features ? &l->xstrategy : &l->wstrategy;
		if (*grp == 0 || *str == 0 || count[*grp] < 2) {
			*grp = 0;
			*str = 0;
			continue;
		}
		if (map[*grp] == 0)
			map[*grp] = next++;
		*grp = map[*grp];
	}
}

void genome_canonicalize(genome *g)
{
	if (g->n_classes > GENOME_MAX_CLASSES)
		g->n_classes = GENOME_MAX_CLASSES;
	if (g->n_layers > GENOME_MAX_LAYERS)
		g->n_layers = GENOME_MAX_LAYERS;
	for (int ci = 0; ci < g->n_classes; ci++) {
		genome_class *c = &g->classes[ci];
		if (c->feat >= GF_COUNT)
			continue;
		if (!genome_class_uses(c, GZ_HEADS))
			c->heads = 1;
		if (!genome_class_uses(c, GZ_KV))
			c->kv_heads = c->heads;
		if (!genome_class_uses(c, GZ_HD))
			c->head_dim = 0;
		if (!genome_class_uses(c, GZ_LEN))
			c->len = 0;
		if (!genome_class_uses(c, GZ_FFN))
			c->ffn = 0;
		if (!genome_class_uses(c, GZ_QKN))
			c->qk_norm = 0;
		if (!genome_class_uses(c, GZ_ROPE))
			c->rope = 0;
		for (int k = 0; k < GENOME_NGROUPS; k++)
			if (!genome_feat_has_group(c->feat, k))
				memset(&c->fg[k], 0, sizeof c->fg[k]);
	}
	/* A feature-sharing group across classes or strategies is invalid and
	 * left for genome_check to report; renumbering only removes no-ops. */
	renumber(g, false);
	renumber(g, true);
	/* Strategies of group members follow the first member only when they
	 * already agree; a disagreement is an error genome_check reports. */
	memset(g->layers + g->n_layers, 0,
	       sizeof g->layers[0] * (size_t)(GENOME_MAX_LAYERS - g->n_layers));
	memset(g->classes + g->n_classes, 0,
	       sizeof g->classes[0] * (size_t)(GENOME_MAX_CLASSES - g->n_classes));
}

/* ---- decode ------------------------------------------------------------------- */

int genome_decode(genome_arch *out, const genome *g, tl_err *err)
{
	memset(out, 0, sizeof *out);
	if (genome_check(g, err) < 0)
		return TL_EINVAL;
	out->d_model = g->d_model;
	out->vocab = g->vocab;
	out->ffn_multiple = g->ffn_multiple;
	out->rope_theta = g->rope_theta;
	out->tied = g->tied;
	out->n_layers = g->n_layers;
	for (int i = 0; i < g->n_layers; i++) {
		const genome_layer *l = &g->layers[i];
		const genome_class *c = &g->classes[l->cls];
		genome_arch_layer *a = &out->layers[i];
		a->feat = c->feat;
		a->structure = c->structure;
		a->mask = c->mask;
		a->nonlin = c->nonlin;
		a->chmix = c->chmix;
		a->cls = l->cls;
		a->heads = genome_class_uses(c, GZ_HEADS) ? c->heads : 1;
		a->kv_heads = genome_class_uses(c, GZ_KV) ? c->kv_heads : a->heads;
		a->head_dim = genome_class_uses(c, GZ_HD) ? c->head_dim : 0;
		a->len = genome_class_uses(c, GZ_LEN) ? c->len : 0;
		a->qk_norm = genome_class_uses(c, GZ_QKN) ? c->qk_norm : 0;
		a->rope = genome_class_uses(c, GZ_ROPE) ? c->rope : 0;
		for (int k = 0; k < GENOME_NGROUPS; k++) {
			a->wowner[k] = a->xowner[k] = -1;
			if (!genome_feat_has_group(c->feat, k))
				continue;
			a->width[k] = genome_natural_width(g, c, k) * c->fg[k].expand;
			a->conv[k] = c->fg[k].conv;
			a->proj_chmix[k] = c->fg[k].chmix;
			a->wowner[k] = a->xowner[k] = (int16_t)i;
		}
		switch (c->feat) {
		case GF_QKV: a->inner = (uint32_t)c->heads * c->head_dim; break;
		case GF_BCH: a->inner = a->width[GG_V]; break;
		case GF_CBVA:
			a->inner = a->width[GG_V];
			a->state = (uint32_t)c->head_dim * c->fg[GG_C].expand;
			break;
		case GF_GLU: a->inner = genome_glu_inner(g, c); break;
		}
		/* Sharing: the first earlier member of the group owns. */
		for (int j = 0; j < i; j++) {
			const genome_layer *m = &g->layers[j];
			if (l->wgroup && m->wgroup == l->wgroup) {
				for (int k = 0; k < GENOME_NGROUPS; k++)
					if (a->wowner[k] >= 0 && genome_wshare_covers(l->wstrategy, k))
						a->wowner[k] = out->layers[j].wowner[k];
				break;
			}
		}
		for (int j = 0; j < i; j++) {
			const genome_layer *m = &g->layers[j];
			if (l->xgroup && m->xgroup == l->xgroup) {
				for (int k = 0; k < GENOME_NGROUPS; k++)
					if (a->xowner[k] >= 0 && genome_xshare_covers(l->xstrategy, k))
						a->xowner[k] = out->layers[j].xowner[k];
				break;
			}
		}
	}
	return 0;
}

/* ---- describe and hash ------------------------------------------------------------ */

char *genome_arch_describe(const genome_arch *a)
{
	tl_sb sb = {0};
	bool any_rope = false;
	for (int i = 0; i < a->n_layers; i++)
		any_rope |= a->layers[i].rope != 0;
	tl_sb_printf(&sb, "arch/1 d=%u vocab=%u tied=%u", a->d_model, a->vocab, a->tied);
	if (any_rope)
		tl_sb_printf(&sb, " rope_theta=%u", a->rope_theta);
	for (int i = 0; i < a->n_layers; i++) {
		const genome_arch_layer *l = &a->layers[i];
		tl_sb_printf(&sb, "\nL%d %s.%s.%s.%s.%s h=%u kv=%u hd=%u len=%u inner=%u state=%u "
		                 "qkn=%u rope=%u", i, genome_feat_name(l->feat),
		                 genome_struct_name(l->structure), genome_mask_name(l->mask),
		                 genome_nonlin_name(l->nonlin), genome_chmix_name(l->chmix), l->heads,
		                 l->kv_heads, l->head_dim, l->len, l->inner, l->state, l->qk_norm,
		                 l->rope);
		for (int k = 0; k < GENOME_NGROUPS; k++) {
			if (l->xowner[k] < 0)
				continue;
			if (l->xowner[k] != i)
				tl_sb_printf(&sb, " %s=from%d", genome_group_names[k], l->xowner[k]);
			else
				tl_sb_printf(&sb, " %s=%u/%s/conv%u/w%d", genome_group_names[k],
				                 l->width[k], genome_chmix_name(l->proj_chmix[k]),
				                 l->conv[k], l->wowner[k]);
		}
	}
	tl_sb_printf(&sb, "\n");
	return tl_sb_take(&sb);
}

int genome_hash(const genome *g, char hex[65], tl_err *err)
{
	genome_arch *a = malloc(sizeof *a);
	hex[0] = '\0';
	if (a == NULL)
		return tl_err_set(err, TL_ENOMEM, "genome hash: out of memory");
	if (genome_decode(a, g, err) < 0) {
		free(a);
		return TL_EINVAL;
	}
	char *d = genome_arch_describe(a);
	free(a);
	if (d == NULL)
		return tl_err_set(err, TL_ENOMEM, "genome hash: out of memory");
	tl_sha256_hex(d, strlen(d), hex);
	free(d);
	return 0;
}
