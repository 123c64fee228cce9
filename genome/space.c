/*
 * genome/space.c: search spaces (JSON), membership, and the variation
 * operators of the search: sampling, mutation at the three levels, two-point
 * crossover on the backbone, and repair.
 *
 * Class i of every genome drawn from a space is an instance of the space's
 * class i, so a class id means the same operator family in every genome of a
 * population and a backbone crossover mixes like with like.
 *
 * Every value a space allows is kept as a sorted list (a "domain") of at most
 * DOM_MAX integers; ranges {"min","max","step"} are expanded at load time.
 * Sampling draws uniformly from each domain and rejects combinations that
 * genome_check refuses; load time draws a few hundred times per class so a
 * space that can never produce a valid class is refused with a message
 * rather than hanging a run.
 */
#include "genome.h"
#include "genome_int.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DOM_MAX 256
#define MAX_OPS 64

typedef struct dom {
	int n;
	int64_t v[DOM_MAX]; /* sorted, unique */
} dom;

enum { ROLE_ANY = 0, ROLE_MIXER = 1, ROLE_CHANNEL = 2 };
enum { LAYOUT_FREE = 0, LAYOUT_INTERLEAVED = 1 };

typedef struct space_class {
	char name[32];
	int role;
	int n_ops;
	uint8_t ops[MAX_OPS][5]; /* the catalog-valid operator genomes allowed */
	dom heads, kv, hd, len, ffn, qkn, rope;
	bool kv_is_heads;        /* kv_heads not given: multi-head (kv = heads) */
	dom fconv[GENOME_NGROUPS], fchmix[GENOME_NGROUPS], fexpand[GENOME_NGROUPS];
} space_class;

struct genome_space {
	char source[256];
	char hash[65];
	char name[64];
	dom d_model, vocab;
	uint32_t ffn_multiple, rope_theta;
	uint8_t tied;
	dom depth;            /* allowed layer counts (even ones when interleaved) */
	int depth_min, depth_max;
	int layout;
	int64_t budget;       /* 0: none */
	double tolerance;     /* fraction of the budget */
	bool share_w, share_x;
	double share_prob;
	int n_classes;
	space_class classes[GENOME_MAX_CLASSES];
};

/* ---- domains ------------------------------------------------------------------- */

static bool dom_has(const dom *d, int64_t v)
{
	int lo = 0, hi = d->n - 1;
	while (lo <= hi) {
		int mid = (lo + hi) / 2;
		if (d->v[mid] == v)
			return true;
		if (d->v[mid] < v)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return false;
}

static int64_t dom_nearest(const dom *d, int64_t v)
{
	int64_t best = d->v[0];
	for (int i = 1; i < d->n; i++)
		if (llabs(d->v[i] - v) < llabs(best - v))
			best = d->v[i];
	return best;
}

static int64_t dom_draw(const dom *d, tl_rng *rng)
{
	return d->v[tl_rng_bounded(rng, (uint32_t)d->n)];
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

static int dom_add(dom *d, int64_t v, const char *src, const char *path, tl_err *err)
{
	for (int i = 0; i < d->n; i++)
		if (d->v[i] == v)
			return 0;
	if (d->n >= DOM_MAX)
		return tl_err_set(err, TL_EINVAL,
		                  "%s: %s: more than %d allowed values (use a larger step)", src, path,
		                  DOM_MAX);
	d->v[d->n++] = v;
	qsort(d->v, (size_t)d->n, sizeof d->v[0], cmp_i64);
	return 0;
}

static void dom_set1(dom *d, int64_t v)
{
	d->n = 1;
	d->v[0] = v;
}

static void dom_str(const dom *d, char *buf, size_t n)
{
	size_t off = 0;
	if (d->n == 1) {
		snprintf(buf, n, "%lld", (long long)d->v[0]);
		return;
	}
	off += (size_t)snprintf(buf, n, "[");
	for (int i = 0; i < d->n && off < n; i++)
		off += (size_t)snprintf(buf + off, n - off, "%s%lld", i ? ", " : "", (long long)d->v[i]);
	if (off < n)
		snprintf(buf + off, n - off, "]");
}

/* A JSON value as a domain: an integer, a list of integers, or an object
 * {"min": a, "max": b, "step": s} (step default 1). Names are allowed when
 * `names_kind` >= 0 (operator genes). */
static int json_dom(dom *d, const cJSON *it, const char *src, const char *path, int64_t lo,
                    int64_t hi, int names_kind, tl_err *err)
{
	d->n = 0;
	if (cJSON_IsNumber(it) || cJSON_IsBool(it) || cJSON_IsString(it)) {
		int64_t v;
		if (cJSON_IsString(it)) {
			int k = names_kind >= 0 ? genome_name_lookup(names_kind, it->valuestring) : -1;
			if (k < 0)
				return tl_err_set(err, TL_EINVAL, "%s: %s: '%.40s' is not an allowed name", src,
				                  path, it->valuestring);
			v = k;
		} else {
			double x = cJSON_IsBool(it) ? cJSON_IsTrue(it) : it->valuedouble;
			if (x != floor(x) || x < (double)lo || x > (double)hi)
				return tl_err_set(err, TL_EINVAL, "%s: %s: %g is not an integer in %lld..%lld",
				                  src, path, x, (long long)lo, (long long)hi);
			v = (int64_t)x;
		}
		return dom_add(d, v, src, path, err);
	}
	if (cJSON_IsArray(it)) {
		int i = 0;
		const cJSON *e;
		if (cJSON_GetArraySize(it) == 0)
			return tl_err_set(err, TL_EINVAL, "%s: %s: empty list (give at least one value)",
			                  src, path);
		cJSON_ArrayForEach(e, it) {
			char p2[128];
			dom one;
			snprintf(p2, sizeof p2, "%s[%d]", path, i++);
			if (cJSON_IsArray(e) || cJSON_IsObject(e))
				return tl_err_set(err, TL_EINVAL, "%s: %s: expected a value", src, p2);
			if (json_dom(&one, e, src, p2, lo, hi, names_kind, err) < 0)
				return TL_EINVAL;
			if (dom_add(d, one.v[0], src, path, err) < 0)
				return TL_EINVAL;
		}
		return 0;
	}
	if (cJSON_IsObject(it)) {
		const cJSON *mn = cJSON_GetObjectItemCaseSensitive(it, "min");
		const cJSON *mx = cJSON_GetObjectItemCaseSensitive(it, "max");
		const cJSON *st = cJSON_GetObjectItemCaseSensitive(it, "step");
		const cJSON *e;
		cJSON_ArrayForEach(e, it) {
			if (!e->string || (strcmp(e->string, "min") && strcmp(e->string, "max") &&
			                   strcmp(e->string, "step")))
				return tl_err_set(err, TL_EINVAL, "%s: %s.%.40s: unknown key (min, max, step)",
				                  src, path, e->string ? e->string : "?");
		}
		if (!cJSON_IsNumber(mn) || !cJSON_IsNumber(mx))
			return tl_err_set(err, TL_EINVAL, "%s: %s: a range needs numbers min and max", src,
			                  path);
		double a = mn->valuedouble, b = mx->valuedouble, s = st ? st->valuedouble : 1;
		if (st && !cJSON_IsNumber(st))
			return tl_err_set(err, TL_EINVAL, "%s: %s.step: expected a number", src, path);
		if (a != floor(a) || b != floor(b) || s != floor(s) || s < 1)
			return tl_err_set(err, TL_EINVAL, "%s: %s: min, max and step must be integers, step >= 1",
			                  src, path);
		if (a > b)
			return tl_err_set(err, TL_EINVAL, "%s: %s: min %g is above max %g", src, path, a, b);
		if (a < (double)lo || b > (double)hi)
			return tl_err_set(err, TL_EINVAL, "%s: %s: range %g..%g outside %lld..%lld", src,
			                  path, a, b, (long long)lo, (long long)hi);
		if ((b - a) / s + 1 > DOM_MAX)
			return tl_err_set(err, TL_EINVAL,
			                  "%s: %s: %g values, at most %d (use a larger step)", src, path,
			                  (b - a) / s + 1, DOM_MAX);
		for (double x = a; x <= b; x += s)
			d->v[d->n++] = (int64_t)x;
		return 0;
	}
	return tl_err_set(err, TL_EINVAL, "%s: %s: expected a value, a list or {min, max, step}",
	                  src, path);
}

/* Optional member: domain or a default single value. */
static int member_dom(dom *d, const cJSON *obj, const char *key, const char *src,
                      const char *prefix, int64_t lo, int64_t hi, int64_t dflt, bool required,
                      tl_err *err)
{
	char path[128];
	snprintf(path, sizeof path, "%s%s", prefix, key);
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
	if (it == NULL) {
		if (required)
			return tl_err_set(err, TL_EINVAL, "%s: %s: missing", src, path);
		dom_set1(d, dflt);
		return 0;
	}
	return json_dom(d, it, src, path, lo, hi, -1, err);
}

/* ---- loading ----------------------------------------------------------------------- */

static int keys_allowed(const cJSON *obj, const char *const *keys, int n, const char *src,
                        const char *prefix, tl_err *err)
{
	const cJSON *e;
	cJSON_ArrayForEach(e, obj) {
		bool ok = false;
		for (int i = 0; i < n; i++)
			if (e->string && strcmp(e->string, keys[i]) == 0)
				ok = true;
		if (!ok) {
			char list[256] = "";
			size_t off = 0;
			for (int i = 0; i < n && off < sizeof list; i++)
				off += (size_t)snprintf(list + off, sizeof list - off, "%s%s", i ? ", " : "",
				                        keys[i]);
			return tl_err_set(err, TL_EINVAL, "%s: %s%.40s: unknown key (allowed: %s)", src,
			                  prefix, e->string ? e->string : "?", list);
		}
	}
	return 0;
}

static int load_ops(space_class *sc, const cJSON *op, const char *src, const char *prefix,
                    tl_err *err)
{
	dom genes[5];
	char path[128];
	static const char *const names[5] = {"feat", "structure", "mask", "nonlin", "chmix"};
	snprintf(path, sizeof path, "%sop", prefix);
	if (op == NULL)
		return tl_err_set(err, TL_EINVAL, "%s: %s: missing (e.g. \"qkv.dense.none.softmax.heads\")",
		                  src, path);
	if (cJSON_IsString(op) || cJSON_IsArray(op)) {
		/* one operator genome: names or integers */
		unsigned v[5];
		char buf[96] = "";
		if (cJSON_IsString(op))
			tl_strlcpy(buf, op->valuestring, sizeof buf);
		int ok = -1;
		if (cJSON_IsString(op)) {
			/* reuse the genome text parser's forms via a tiny genome */
			char *save = NULL, *tok = strtok_r(buf, ".", &save);
			ok = 0;
			for (int i = 0; i < 5; i++) {
				int k = -1;
				if (tok) {
					char *end;
					long x = strtol(tok, &end, 10);
					if (*end == '\0' && end != tok)
						k = x >= 0 && x <= 255 ? (int)x : -1;
					else
						k = genome_name_lookup(i, tok);
				}
				if (k < 0 || k > 255) {
					ok = -1;
					break;
				}
				v[i] = (unsigned)k;
				tok = strtok_r(NULL, ".", &save);
			}
			if (tok)
				ok = -1;
		} else if (cJSON_GetArraySize(op) == 5) {
			int i = 0;
			const cJSON *e;
			ok = 0;
			cJSON_ArrayForEach(e, op) {
				if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble > 255 ||
				    e->valuedouble != floor(e->valuedouble))
					ok = -1;
				else
					v[i] = (unsigned)e->valuedouble;
				i++;
			}
		}
		if (ok < 0)
			return tl_err_set(err, TL_EINVAL,
			                  "%s: %s: expected feat.structure.mask.nonlin.chmix (names or "
			                  "integers), or an object of lists", src, path);
		for (int i = 0; i < 5; i++)
			dom_set1(&genes[i], v[i]);
	} else if (cJSON_IsObject(op)) {
		if (keys_allowed(op, names, 5, src, path, err) < 0)
			return TL_EINVAL;
		for (int i = 0; i < 5; i++) {
			char p2[160];
			snprintf(p2, sizeof p2, "%s.%s", path, names[i]);
			const cJSON *it = cJSON_GetObjectItemCaseSensitive(op, names[i]);
			if (it == NULL)
				return tl_err_set(err, TL_EINVAL, "%s: %s: missing", src, p2);
			if (json_dom(&genes[i], it, src, p2, 0, 255, i, err) < 0)
				return TL_EINVAL;
		}
	} else {
		return tl_err_set(err, TL_EINVAL, "%s: %s: expected a string, a list or an object", src,
		                  path);
	}
	if (genes[0].n != 1)
		return tl_err_set(err, TL_EINVAL,
		                  "%s: %s.feat: one featurizer class per space class (make another "
		                  "class for another family)", src, path);
	sc->n_ops = 0;
	for (int a = 0; a < genes[1].n; a++)
		for (int b = 0; b < genes[2].n; b++)
			for (int c = 0; c < genes[3].n; c++)
				for (int d = 0; d < genes[4].n; d++) {
					int f = (int)genes[0].v[0], s = (int)genes[1].v[a], m = (int)genes[2].v[b],
					    n = (int)genes[3].v[c], x = (int)genes[4].v[d];
					if (!genome_op_allowed(f, s, m, n, x) || sc->n_ops >= MAX_OPS)
						continue;
					uint8_t *o = sc->ops[sc->n_ops++];
					o[0] = (uint8_t)f;
					o[1] = (uint8_t)s;
					o[2] = (uint8_t)m;
					o[3] = (uint8_t)n;
					o[4] = (uint8_t)x;
				}
	if (sc->n_ops == 0)
		return tl_err_set(err, TL_EINVAL,
		                  "%s: %s: no combination is in the catalog (see docs/genome.md, 'The "
		                  "catalog'; e.g. qkv.dense.none.softmax.heads)", src, path);
	return 0;
}

static int load_class(genome_space *s, int ci, const cJSON *co, const char *src, tl_err *err)
{
	space_class *sc = &s->classes[ci];
	char prefix[64];
	snprintf(prefix, sizeof prefix, "classes[%d].", ci);
	if (!cJSON_IsObject(co))
		return tl_err_set(err, TL_EINVAL, "%s: classes[%d]: expected an object", src, ci);
	static const char *const keys[] = {"name", "role", "op", "heads", "kv_heads", "head_dim",
	                                   "len", "ffn", "qk_norm", "rope", "features"};
	if (keys_allowed(co, keys, 11, src, prefix, err) < 0)
		return TL_EINVAL;
	const cJSON *name = cJSON_GetObjectItemCaseSensitive(co, "name");
	if (name && (!cJSON_IsString(name) || strlen(name->valuestring) >= sizeof sc->name))
		return tl_err_set(err, TL_EINVAL, "%s: %sname: expected a string under 32 characters", src,
		                  prefix);
	snprintf(sc->name, sizeof sc->name, "%s", name ? name->valuestring : "");
	if (load_ops(sc, cJSON_GetObjectItemCaseSensitive(co, "op"), src, prefix, err) < 0)
		return TL_EINVAL;
	int feat = sc->ops[0][0];
	const cJSON *role = cJSON_GetObjectItemCaseSensitive(co, "role");
	sc->role = feat == GF_GLU ? ROLE_CHANNEL : ROLE_MIXER;
	if (role) {
		if (!cJSON_IsString(role) ||
		    (strcmp(role->valuestring, "mixer") && strcmp(role->valuestring, "channel") &&
		     strcmp(role->valuestring, "any")))
			return tl_err_set(err, TL_EINVAL, "%s: %srole: expected \"mixer\", \"channel\" or \"any\"",
			                  src, prefix);
		sc->role = !strcmp(role->valuestring, "mixer")     ? ROLE_MIXER
		           : !strcmp(role->valuestring, "channel") ? ROLE_CHANNEL
		                                                   : ROLE_ANY;
	}
	bool attn = feat == GF_QKV, heads_used = feat == GF_QKV || feat == GF_CBVA;
	bool len_used = feat == GF_BCH;
	for (int i = 0; i < sc->n_ops; i++)
		if (feat == GF_QKV && sc->ops[i][2] != GM_NONE)
			len_used = true;
	if (member_dom(&sc->heads, co, "heads", src, prefix, 1, 128, 1, heads_used, err) < 0 ||
	    member_dom(&sc->hd, co, "head_dim", src, prefix, 1, 1024, 0, heads_used, err) < 0 ||
	    member_dom(&sc->len, co, "len", src, prefix, 1, 65535, 0, len_used, err) < 0 ||
	    member_dom(&sc->ffn, co, "ffn", src, prefix, 1, 4096, 0, feat == GF_GLU, err) < 0 ||
	    member_dom(&sc->qkn, co, "qk_norm", src, prefix, 0, 1, 0, false, err) < 0 ||
	    member_dom(&sc->rope, co, "rope", src, prefix, 0, 1, attn ? 1 : 0, false, err) < 0)
		return TL_EINVAL;
	const cJSON *kv = cJSON_GetObjectItemCaseSensitive(co, "kv_heads");
	if (kv == NULL || !attn) {
		sc->kv = sc->heads; /* MHA unless told: kv follows heads */
		sc->kv_is_heads = true;
		if (kv && !attn)
			return tl_err_set(err, TL_EINVAL, "%s: %skv_heads: only attention-like (qkv) classes "
			                  "have KV heads", src, prefix);
	} else {
		char path[96];
		snprintf(path, sizeof path, "%skv_heads", prefix);
		if (json_dom(&sc->kv, kv, src, path, 1, 128, -1, err) < 0)
			return TL_EINVAL;
		for (int i = 0; i < sc->kv.n; i++) {
			int64_t k = sc->kv.v[i];
			bool divides = false;
			for (int j = 0; j < sc->heads.n; j++)
				divides |= sc->heads.v[j] % k == 0;
			if (!divides) {
				char hs[128];
				dom_str(&sc->heads, hs, sizeof hs);
				return tl_err_set(err, TL_EINVAL, "%s: %s: %lld does not divide heads %s", src,
				                  path, (long long)k, hs);
			}
		}
	}
	if (sc->heads.n > 0 && heads_used && feat == GF_QKV)
		for (int i = 0; i < sc->hd.n; i++) {
			bool rope_on = sc->rope.n == 1 && sc->rope.v[0] == 1;
			if (rope_on && sc->hd.v[i] % 2)
				return tl_err_set(err, TL_EINVAL,
				                  "%s: %shead_dim: %lld is odd (RoPE rotates pairs; use even "
				                  "head dims or rope 0)", src, prefix,
				                  (long long)sc->hd.v[i]);
		}
	if (feat == GF_BCH)
		for (int i = 0; i < sc->len.n; i++)
			if (sc->len.v[i] > 256)
				return tl_err_set(err, TL_EINVAL, "%s: %slen: %lld, a conv kernel is 1..256",
				                  src, prefix, (long long)sc->len.v[i]);

	/* featurizer genes per group */
	const cJSON *fe = cJSON_GetObjectItemCaseSensitive(co, "features");
	if (fe && !cJSON_IsObject(fe))
		return tl_err_set(err, TL_EINVAL, "%s: %sfeatures: expected an object", src, prefix);
	const cJSON *e;
	cJSON_ArrayForEach(e, fe) {
		int k = -1;
		for (int g = 0; g < GENOME_NGROUPS; g++)
			if (e->string && strcmp(e->string, genome_group_names[g]) == 0)
				k = g;
		if (k < 0 || !genome_feat_has_group(feat, k))
			return tl_err_set(err, TL_EINVAL, "%s: %sfeatures.%.8s: not a group of a %s featurizer",
			                  src, prefix, e->string ? e->string : "?", genome_feat_name(feat));
	}
	for (int k = 0; k < GENOME_NGROUPS; k++) {
		char p2[96];
		dom_set1(&sc->fconv[k], 0);
		dom_set1(&sc->fchmix[k], GC_DENSE);
		dom_set1(&sc->fexpand[k], 1);
		if (!genome_feat_has_group(feat, k))
			continue;
		const cJSON *g = fe ? cJSON_GetObjectItemCaseSensitive(fe, genome_group_names[k]) : NULL;
		if (g == NULL)
			continue;
		snprintf(p2, sizeof p2, "%sfeatures.%s.", prefix, genome_group_names[k]);
		if (!cJSON_IsObject(g))
			return tl_err_set(err, TL_EINVAL, "%s: %.90s: expected {conv, chmix, expand}", src, p2);
		static const char *const fk[] = {"conv", "chmix", "expand"};
		if (keys_allowed(g, fk, 3, src, p2, err) < 0 ||
		    member_dom(&sc->fconv[k], g, "conv", src, p2, 0, 64, 0, false, err) < 0 ||
		    member_dom(&sc->fchmix[k], g, "chmix", src, p2, 0, 2, GC_DENSE, false, err) < 0 ||
		    member_dom(&sc->fexpand[k], g, "expand", src, p2, 1, 8, 1, false, err) < 0)
			return TL_EINVAL;
		for (int i = 0; i < sc->fconv[k].n; i++)
			if (sc->fconv[k].v[i] == 1)
				return tl_err_set(err, TL_EINVAL, "%s: %sconv: 1 is not a conv (0 for none, or 2..64)",
				                  src, p2);
	}
	/* Groups whose widths must agree have one expansion gene, given on C:
	 * B and V of a gated conv, B of a recurrence follow it. */
	for (int k = GG_B; k <= GG_V; k++) {
		bool tied = feat == GF_BCH || (feat == GF_CBVA && k == GG_B);
		if (!tied)
			continue;
		const cJSON *g = fe ? cJSON_GetObjectItemCaseSensitive(fe, genome_group_names[k]) : NULL;
		if (g && cJSON_GetObjectItemCaseSensitive(g, "expand") &&
		    (sc->fexpand[k].n != sc->fexpand[GG_C].n ||
		     memcmp(sc->fexpand[k].v, sc->fexpand[GG_C].v,
		            sizeof sc->fexpand[k].v[0] * (size_t)sc->fexpand[k].n) != 0))
			return tl_err_set(err, TL_EINVAL,
			                  "%s: %sfeatures.%s.expand: a %s has one expansion for its groups; "
			                  "give it on C only", src, prefix, genome_group_names[k],
			                  feat == GF_BCH ? "gated conv" : "recurrence (C and B)");
		sc->fexpand[k] = sc->fexpand[GG_C];
	}
	return 0;
}

static int sample_class(genome_class *c, const genome *g, const space_class *sc, tl_rng *rng);

static void sb_dom(tl_sb *sb, const char *key, const dom *d)
{
	tl_sb_printf(sb, " %s=", key);
	for (int i = 0; i < d->n; i++)
		tl_sb_printf(sb, "%s%lld", i ? "," : "", (long long)d->v[i]);
}

/* What the space allows, in a fixed order and format: the hash of a space
 * is the hash of this, so formatting, key order and comments in the JSON
 * file do not change it, while any allowed value does. */
static char *space_describe(const genome_space *s)
{
	tl_sb sb = {0};
	tl_sb_printf(&sb, "space/1 layout=%d ffn_multiple=%u rope_theta=%u tied=%u budget=%lld "
	                 "tolerance=%.17g share_w=%d share_x=%d share_prob=%.17g",
	                 s->layout, s->ffn_multiple, s->rope_theta, s->tied, (long long)s->budget,
	                 s->budget ? s->tolerance : 0.0, s->share_w, s->share_x,
	                 s->share_w || s->share_x ? s->share_prob : 0.0);
	sb_dom(&sb, "d_model", &s->d_model);
	sb_dom(&sb, "vocab", &s->vocab);
	sb_dom(&sb, "depth", &s->depth);
	for (int ci = 0; ci < s->n_classes; ci++) {
		const space_class *c = &s->classes[ci];
		tl_sb_printf(&sb, "\nclass %d role=%d kv_is_heads=%d ops=", ci, c->role,
		                 c->kv_is_heads);
		for (int i = 0; i < c->n_ops; i++)
			tl_sb_printf(&sb, "%s%u.%u.%u.%u.%u", i ? "," : "", c->ops[i][0], c->ops[i][1],
			                 c->ops[i][2], c->ops[i][3], c->ops[i][4]);
		sb_dom(&sb, "heads", &c->heads);
		sb_dom(&sb, "kv", &c->kv);
		sb_dom(&sb, "hd", &c->hd);
		sb_dom(&sb, "len", &c->len);
		sb_dom(&sb, "ffn", &c->ffn);
		sb_dom(&sb, "qkn", &c->qkn);
		sb_dom(&sb, "rope", &c->rope);
		for (int k = 0; k < GENOME_NGROUPS; k++) {
			char key[16];
			snprintf(key, sizeof key, "%s.conv", genome_group_names[k]);
			sb_dom(&sb, key, &c->fconv[k]);
			snprintf(key, sizeof key, "%s.chmix", genome_group_names[k]);
			sb_dom(&sb, key, &c->fchmix[k]);
			snprintf(key, sizeof key, "%s.expand", genome_group_names[k]);
			sb_dom(&sb, key, &c->fexpand[k]);
		}
	}
	tl_sb_printf(&sb, "\n");
	return tl_sb_take(&sb);
}

int genome_space_parse(genome_space **out, const char *json, const char *source, tl_err *err)
{
	genome_space *s = NULL;
	cJSON *root = NULL;
	int rc = TL_EINVAL;

	*out = NULL;
	root = genome_json_parse(json, source, err);
	if (root == NULL)
		return TL_EPARSE;
	s = calloc(1, sizeof *s);
	if (s == NULL) {
		rc = tl_err_set(err, TL_ENOMEM, "%s: out of memory", source);
		goto fail;
	}
	snprintf(s->source, sizeof s->source, "%s", source);
	if (!cJSON_IsObject(root)) {
		tl_err_set(err, TL_EINVAL, "%s: expected a JSON object", source);
		goto fail;
	}
	static const char *const keys[] = {"name", "description", "d_model", "vocab",
	                                   "ffn_multiple", "rope_theta", "tied", "depth", "layout",
	                                   "param_budget", "param_tolerance", "sharing", "classes"};
	if (keys_allowed(root, keys, 13, source, "", err) < 0)
		goto fail;
	const cJSON *name = cJSON_GetObjectItemCaseSensitive(root, "name");
	if (name && !cJSON_IsString(name)) {
		tl_err_set(err, TL_EINVAL, "%s: name: expected a string", source);
		goto fail;
	}
	snprintf(s->name, sizeof s->name, "%s", name ? name->valuestring : "");
	dom one;
	if (member_dom(&s->d_model, root, "d_model", source, "", 8, 65536, 0, true, err) < 0 ||
	    member_dom(&s->vocab, root, "vocab", source, "", 2, 1 << 22, 0, true, err) < 0)
		goto fail;
	if (member_dom(&one, root, "ffn_multiple", source, "", 1, 4096, 1, false, err) < 0)
		goto fail;
	if (one.n != 1) {
		tl_err_set(err, TL_EINVAL, "%s: ffn_multiple: one value", source);
		goto fail;
	}
	s->ffn_multiple = (uint32_t)one.v[0];
	if (member_dom(&one, root, "rope_theta", source, "", 1, 4294967295LL, 1000000, false, err) < 0)
		goto fail;
	if (one.n != 1) {
		tl_err_set(err, TL_EINVAL, "%s: rope_theta: one value", source);
		goto fail;
	}
	s->rope_theta = (uint32_t)one.v[0];
	if (member_dom(&one, root, "tied", source, "", 0, 1, 1, false, err) < 0)
		goto fail;
	if (one.n != 1) {
		tl_err_set(err, TL_EINVAL, "%s: tied: one value", source);
		goto fail;
	}
	s->tied = (uint8_t)one.v[0];

	const cJSON *lay = cJSON_GetObjectItemCaseSensitive(root, "layout");
	s->layout = LAYOUT_INTERLEAVED;
	if (lay) {
		if (!cJSON_IsString(lay) ||
		    (strcmp(lay->valuestring, "free") && strcmp(lay->valuestring, "interleaved"))) {
			tl_err_set(err, TL_EINVAL, "%s: layout: expected \"interleaved\" or \"free\"", source);
			goto fail;
		}
		s->layout = strcmp(lay->valuestring, "free") ? LAYOUT_INTERLEAVED : LAYOUT_FREE;
	}
	dom depth;
	if (member_dom(&depth, root, "depth", source, "", 1, GENOME_MAX_LAYERS, 0, true, err) < 0)
		goto fail;
	s->depth.n = 0;
	for (int i = 0; i < depth.n; i++)
		if (s->layout == LAYOUT_FREE || depth.v[i] % 2 == 0)
			s->depth.v[s->depth.n++] = depth.v[i];
	if (s->depth.n == 0) {
		tl_err_set(err, TL_EINVAL,
		           "%s: depth: an interleaved layout needs an even number of layers (a mixer "
		           "and a channel mixer per block); no allowed value is even", source);
		goto fail;
	}
	s->depth_min = (int)s->depth.v[0];
	s->depth_max = (int)s->depth.v[s->depth.n - 1];

	const cJSON *bud = cJSON_GetObjectItemCaseSensitive(root, "param_budget");
	if (bud) {
		if (!cJSON_IsNumber(bud) || bud->valuedouble < 1 || bud->valuedouble > 1e13) {
			tl_err_set(err, TL_EINVAL, "%s: param_budget: expected a parameter count (1..1e13)",
			           source);
			goto fail;
		}
		s->budget = (int64_t)bud->valuedouble;
	}
	const cJSON *tol = cJSON_GetObjectItemCaseSensitive(root, "param_tolerance");
	s->tolerance = 0.02;
	if (tol) {
		if (!cJSON_IsNumber(tol) || tol->valuedouble <= 0 || tol->valuedouble >= 1) {
			tl_err_set(err, TL_EINVAL,
			           "%s: param_tolerance: expected a fraction of the budget in (0, 1), e.g. "
			           "0.02", source);
			goto fail;
		}
		if (!bud) {
			tl_err_set(err, TL_EINVAL, "%s: param_tolerance: given without param_budget", source);
			goto fail;
		}
		s->tolerance = tol->valuedouble;
	}
	const cJSON *sh = cJSON_GetObjectItemCaseSensitive(root, "sharing");
	s->share_prob = 0.15;
	if (sh) {
		static const char *const sk[] = {"featurizer", "features", "prob"};
		if (!cJSON_IsObject(sh)) {
			tl_err_set(err, TL_EINVAL, "%s: sharing: expected an object", source);
			goto fail;
		}
		if (keys_allowed(sh, sk, 3, source, "sharing.", err) < 0)
			goto fail;
		const cJSON *a = cJSON_GetObjectItemCaseSensitive(sh, "featurizer");
		const cJSON *b = cJSON_GetObjectItemCaseSensitive(sh, "features");
		const cJSON *p = cJSON_GetObjectItemCaseSensitive(sh, "prob");
		if ((a && !cJSON_IsBool(a)) || (b && !cJSON_IsBool(b))) {
			tl_err_set(err, TL_EINVAL, "%s: sharing: featurizer and features are true or false",
			           source);
			goto fail;
		}
		if (p && (!cJSON_IsNumber(p) || p->valuedouble < 0 || p->valuedouble > 1)) {
			tl_err_set(err, TL_EINVAL, "%s: sharing.prob: expected a probability 0..1", source);
			goto fail;
		}
		s->share_w = a && cJSON_IsTrue(a);
		s->share_x = b && cJSON_IsTrue(b);
		if (p)
			s->share_prob = p->valuedouble;
	}

	const cJSON *classes = cJSON_GetObjectItemCaseSensitive(root, "classes");
	if (!cJSON_IsArray(classes) || cJSON_GetArraySize(classes) < 1 ||
	    cJSON_GetArraySize(classes) > GENOME_MAX_CLASSES) {
		tl_err_set(err, TL_EINVAL, "%s: classes: expected a list of 1..%d classes", source,
		           GENOME_MAX_CLASSES);
		goto fail;
	}
	const cJSON *co;
	cJSON_ArrayForEach(co, classes) {
		if (load_class(s, s->n_classes, co, source, err) < 0)
			goto fail;
		s->n_classes++;
	}
	if (s->layout == LAYOUT_INTERLEAVED) {
		bool mixer = false, channel = false;
		for (int i = 0; i < s->n_classes; i++) {
			mixer |= s->classes[i].role != ROLE_CHANNEL;
			channel |= s->classes[i].role != ROLE_MIXER;
		}
		if (!mixer || !channel) {
			tl_err_set(err, TL_EINVAL,
			           "%s: classes: an interleaved layout needs a mixer class and a channel "
			           "class (or set \"layout\": \"free\")", source);
			goto fail;
		}
	}
	/* Each class must be able to produce a valid instance at some width. */
	tl_rng rng;
	tl_rng_seed(&rng, 0x5eed, 0x5ace);
	for (int ci = 0; ci < s->n_classes; ci++) {
		genome g = {.d_model = (uint32_t)s->d_model.v[0], .vocab = (uint32_t)s->vocab.v[0],
		            .ffn_multiple = s->ffn_multiple, .rope_theta = s->rope_theta,
		            .tied = s->tied, .n_classes = 1, .n_layers = 1};
		tl_err e2 = TL_ERR_INIT;
		bool ok = false;
		for (int t = 0; t < 400 && !ok; t++) {
			g.d_model = (uint32_t)dom_draw(&s->d_model, &rng);
			if (sample_class(&g.classes[0], &g, &s->classes[ci], &rng) == 0)
				ok = true;
		}
		if (!ok) {
			sample_class(&g.classes[0], &g, &s->classes[ci], &rng);
			genome_check(&g, &e2);
			/* the probe genome has this class as its class 0 */
			const char *why = strncmp(e2.msg, "class 0: ", 9) == 0 ? e2.msg + 9 : e2.msg;
			tl_err_set(err, TL_EINVAL, "%s: classes[%d]: no valid class can be drawn: %s",
			           source, ci, why);
			goto fail;
		}
	}
	char *canon = space_describe(s);
	if (canon == NULL) {
		rc = tl_err_set(err, TL_ENOMEM, "%s: out of memory", source);
		goto fail;
	}
	tl_sha256_hex(canon, strlen(canon), s->hash);
	free(canon);
	cJSON_Delete(root);
	*out = s;
	return 0;
fail:
	cJSON_Delete(root);
	free(s);
	return rc;
}

int genome_space_load(genome_space **out, const char *path, tl_err *err)
{
	char *text = NULL;
	*out = NULL;
	int rc = tl_file_read(&text, NULL, path, 4u << 20, err);
	if (rc < 0)
		return rc;
	rc = genome_space_parse(out, text, path, err);
	free(text);
	return rc;
}

void genome_space_free(genome_space *s)
{
	free(s);
}

const char *genome_space_hash(const genome_space *s)
{
	return s->hash;
}

int genome_space_n_classes(const genome_space *s)
{
	return s->n_classes;
}

/* ---- membership ------------------------------------------------------------------- */

static int role_at(const genome_space *s, int pos)
{
	if (s->layout == LAYOUT_FREE)
		return ROLE_ANY;
	return pos % 2 == 0 ? ROLE_MIXER : ROLE_CHANNEL;
}

static bool role_fits(int class_role, int pos_role)
{
	return pos_role == ROLE_ANY || class_role == ROLE_ANY || class_role == pos_role;
}

static bool op_allowed_in(const space_class *sc, const genome_class *c)
{
	for (int i = 0; i < sc->n_ops; i++)
		if (sc->ops[i][0] == c->feat && sc->ops[i][1] == c->structure &&
		    sc->ops[i][2] == c->mask && sc->ops[i][3] == c->nonlin && sc->ops[i][4] == c->chmix)
			return true;
	return false;
}

static int check_class_in(const space_class *sc, const genome_class *c, int ci, tl_err *err)
{
	if (!op_allowed_in(sc, c))
		return tl_err_set(err, TL_EINVAL, "class %d: operator %u.%u.%u.%u.%u not allowed by the space",
		                  ci, c->feat, c->structure, c->mask, c->nonlin, c->chmix);
	struct {
		int gene;
		const dom *d;
		unsigned v;
		const char *name;
	} sizes[] = {
		{GZ_HEADS, &sc->heads, c->heads, "heads"},  {GZ_KV, &sc->kv, c->kv_heads, "kv_heads"},
		{GZ_HD, &sc->hd, c->head_dim, "head_dim"}, {GZ_LEN, &sc->len, c->len, "len"},
		{GZ_FFN, &sc->ffn, c->ffn, "ffn"},         {GZ_QKN, &sc->qkn, c->qk_norm, "qk_norm"},
		{GZ_ROPE, &sc->rope, c->rope, "rope"},
	};
	if (sc->kv_is_heads && c->kv_heads != c->heads)
		return tl_err_set(err, TL_EINVAL,
		                  "class %d: kv_heads %u, the space's class has kv_heads = heads %u", ci,
		                  c->kv_heads, c->heads);
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
		if (genome_class_uses(c, sizes[i].gene) && !dom_has(sizes[i].d, sizes[i].v))
			return tl_err_set(err, TL_EINVAL, "class %d: %s %u not allowed by the space", ci,
			                  sizes[i].name, sizes[i].v);
	for (int k = 0; k < GENOME_NGROUPS; k++) {
		if (!genome_feat_has_group(c->feat, k))
			continue;
		const genome_fgene *f = &c->fg[k];
		if (!dom_has(&sc->fconv[k], f->conv) || !dom_has(&sc->fchmix[k], f->chmix) ||
		    !dom_has(&sc->fexpand[k], f->expand))
			return tl_err_set(err, TL_EINVAL, "class %d: %s=%u.%u.%u.%u not allowed by the space",
			                  ci, genome_group_names[k], f->conv, f->chmix, f->expand, f->repeat);
	}
	return 0;
}

static int budget_check(const genome_space *s, const genome *g, int64_t *params, tl_err *err)
{
	genome_arch *a = malloc(sizeof *a);
	genome_stats st;
	if (a == NULL)
		return tl_err_set(err, TL_ENOMEM, "genome: out of memory");
	if (genome_decode(a, g, err) < 0) {
		free(a);
		return TL_EINVAL;
	}
	genome_stats_compute(&st, a, 1, 1);
	free(a);
	*params = st.params;
	if (s->budget > 0 && fabs((double)st.params - (double)s->budget) > s->tolerance * (double)s->budget)
		return tl_err_set(err, TL_EINVAL,
		                  "%lld parameters, outside the budget %lld +- %.1f%%", (long long)st.params,
		                  (long long)s->budget, 100 * s->tolerance);
	return 0;
}

int genome_space_check(const genome_space *s, const genome *g, tl_err *err)
{
	if (genome_check(g, err) < 0)
		return TL_EINVAL;
	if (!dom_has(&s->d_model, g->d_model))
		return tl_err_set(err, TL_EINVAL, "d_model %u not allowed by the space", g->d_model);
	if (!dom_has(&s->vocab, g->vocab))
		return tl_err_set(err, TL_EINVAL, "vocab %u not allowed by the space", g->vocab);
	if (g->ffn_multiple != s->ffn_multiple || g->rope_theta != s->rope_theta || g->tied != s->tied)
		return tl_err_set(err, TL_EINVAL,
		                  "ffn_multiple/rope_theta/tied %u/%u/%u differ from the space's %u/%u/%u",
		                  g->ffn_multiple, g->rope_theta, g->tied, s->ffn_multiple, s->rope_theta,
		                  s->tied);
	if (g->n_classes != s->n_classes)
		return tl_err_set(err, TL_EINVAL, "%u classes, the space has %d", g->n_classes,
		                  s->n_classes);
	for (int ci = 0; ci < g->n_classes; ci++)
		if (check_class_in(&s->classes[ci], &g->classes[ci], ci, err) < 0)
			return TL_EINVAL;
	if (!dom_has(&s->depth, g->n_layers)) {
		char ds[160];
		dom_str(&s->depth, ds, sizeof ds);
		return tl_err_set(err, TL_EINVAL, "%u layers, the space allows %s", g->n_layers, ds);
	}
	for (int i = 0; i < g->n_layers; i++) {
		const genome_layer *l = &g->layers[i];
		if (!role_fits(s->classes[l->cls].role, role_at(s, i)))
			return tl_err_set(err, TL_EINVAL, "layer %d: class %u is a %s, position %d takes a %s",
			                  i, l->cls,
			                  s->classes[l->cls].role == ROLE_MIXER ? "mixer" : "channel mixer", i,
			                  role_at(s, i) == ROLE_MIXER ? "mixer" : "channel mixer");
		if (l->wgroup && !s->share_w)
			return tl_err_set(err, TL_EINVAL, "layer %d: featurizer sharing is off in the space", i);
		if (l->xgroup && !s->share_x)
			return tl_err_set(err, TL_EINVAL, "layer %d: feature sharing is off in the space", i);
	}
	int64_t params;
	return budget_check(s, g, &params, err);
}

/* ---- adopting a genome written elsewhere ---------------------------------- */

int genome_space_adopt(genome *g, const genome_space *s, tl_rng *rng, tl_err *err)
{
	if (g->n_classes > s->n_classes)
		return tl_err_set(err, TL_EINVAL, "%u classes, the space has only %d", g->n_classes,
		                  s->n_classes);
	genome out = *g;
	int map[GENOME_MAX_CLASSES];
	bool taken[GENOME_MAX_CLASSES] = {0};
	/* Find an assignment of the genome's classes to distinct space classes
	 * that allow each one as it is (operator genome and sizes): a depth-first
	 * search, at most 8! leaves. The space's classes left over are drawn at
	 * random (no layer uses them, so the architecture and its hash stay). */
	for (int ci = 0; ci < g->n_classes; ci++) {
		bool any = false;
		for (int sj = 0; sj < s->n_classes; sj++)
			any |= check_class_in(&s->classes[sj], &g->classes[ci], ci, NULL) == 0;
		if (!any)
			return tl_err_set(err, TL_EINVAL,
			                  "class %d (%s %u.%u.%u.%u.%u) has no counterpart in the space "
			                  "(no space class allows its operator and sizes)", ci,
			                  genome_class_label(&g->classes[ci]), g->classes[ci].feat,
			                  g->classes[ci].structure, g->classes[ci].mask,
			                  g->classes[ci].nonlin, g->classes[ci].chmix);
	}
	int ci = 0;
	map[0] = -1;
	while (ci >= 0 && ci < g->n_classes) {
		/* advance class ci to its next candidate */
		if (map[ci] >= 0)
			taken[map[ci]] = false;
		int sj = map[ci] + 1;
		while (sj < s->n_classes &&
		       (taken[sj] || check_class_in(&s->classes[sj], &g->classes[ci], ci, NULL) != 0))
			sj++;
		if (sj >= s->n_classes) {
			map[ci] = -1;
			ci--; /* backtrack */
			continue;
		}
		map[ci] = sj;
		taken[sj] = true;
		if (++ci < g->n_classes)
			map[ci] = -1;
	}
	if (ci < 0)
		return tl_err_set(err, TL_EINVAL,
		                  "its %u classes cannot be matched to distinct space classes", g->n_classes);
	for (ci = 0; ci < g->n_classes; ci++)
		out.classes[map[ci]] = g->classes[ci];
	out.n_classes = (uint8_t)s->n_classes;
	for (int sj = 0; sj < s->n_classes; sj++) {
		if (taken[sj])
			continue;
		int t = 0;
		while (t < 400 && sample_class(&out.classes[sj], &out, &s->classes[sj], rng) != 0)
			t++;
		if (t == 400)
			return tl_err_set(err, TL_EINVAL, "space class %d: no valid instance at d_model %u",
			                  sj, out.d_model);
	}
	for (int i = 0; i < out.n_layers; i++)
		out.layers[i].cls = (uint8_t)map[g->layers[i].cls];
	genome_canonicalize(&out);
	if (genome_space_check(s, &out, err) < 0)
		return TL_EINVAL;
	*g = out;
	return 0;
}

/* ---- sampling ---------------------------------------------------------------------- */

/* Draw class genes from a space class; 0 if genome_check accepts them. */
static int sample_class(genome_class *c, const genome *g, const space_class *sc, tl_rng *rng)
{
	memset(c, 0, sizeof *c);
	const uint8_t *op = sc->ops[tl_rng_bounded(rng, (uint32_t)sc->n_ops)];
	c->feat = op[0];
	c->structure = op[1];
	c->mask = op[2];
	c->nonlin = op[3];
	c->chmix = op[4];
	c->heads = (uint16_t)dom_draw(&sc->heads, rng);
	/* kv: uniform over the allowed values that divide heads */
	int64_t ok[DOM_MAX];
	int n = 0;
	for (int i = 0; i < sc->kv.n; i++)
		if (sc->kv.v[i] <= c->heads && c->heads % sc->kv.v[i] == 0)
			ok[n++] = sc->kv.v[i];
	c->kv_heads = n ? (uint16_t)ok[tl_rng_bounded(rng, (uint32_t)n)] : 0;
	if (sc->kv_is_heads)
		c->kv_heads = c->heads;
	c->head_dim = (uint16_t)dom_draw(&sc->hd, rng);
	c->len = (uint16_t)dom_draw(&sc->len, rng);
	c->ffn = (uint16_t)dom_draw(&sc->ffn, rng);
	c->qk_norm = (uint8_t)dom_draw(&sc->qkn, rng);
	c->rope = (uint8_t)dom_draw(&sc->rope, rng);
	for (int k = 0; k < GENOME_NGROUPS; k++) {
		if (!genome_feat_has_group(c->feat, k))
			continue;
		c->fg[k].conv = (uint16_t)dom_draw(&sc->fconv[k], rng);
		c->fg[k].chmix = (uint8_t)dom_draw(&sc->fchmix[k], rng);
		c->fg[k].expand = (uint8_t)dom_draw(&sc->fexpand[k], rng);
	}
	/* widths that must agree follow C */
	if (c->feat == GF_BCH)
		c->fg[GG_B].expand = c->fg[GG_V].expand = c->fg[GG_C].expand;
	if (c->feat == GF_CBVA)
		c->fg[GG_B].expand = c->fg[GG_C].expand;
	for (int k = 0; k < GENOME_NGROUPS; k++)
		if (genome_feat_has_group(c->feat, k))
			c->fg[k].repeat = (uint8_t)((c->feat == GF_QKV && k != GG_C && c->kv_heads)
			                                ? c->heads / c->kv_heads : 1);
	genome tmp = *g;
	tmp.n_classes = 1;
	tmp.n_layers = 1;
	tmp.layers[0] = (genome_layer){0};
	tmp.classes[0] = *c;
	genome_canonicalize(&tmp);
	*c = tmp.classes[0];
	return genome_check(&tmp, NULL) == 0 ? 0 : -1;
}

static int draw_class_for_role(const genome_space *s, int role, tl_rng *rng)
{
	int cand[GENOME_MAX_CLASSES], n = 0;
	for (int i = 0; i < s->n_classes; i++)
		if (role_fits(s->classes[i].role, role))
			cand[n++] = i;
	return n ? cand[tl_rng_bounded(rng, (uint32_t)n)] : 0;
}

static void draw_sharing(genome *g, const genome_space *s, int i, tl_rng *rng)
{
	genome_layer *l = &g->layers[i];
	l->wgroup = l->wstrategy = l->xgroup = l->xstrategy = 0;
	if (s->share_w && tl_rng_double(rng) < s->share_prob) {
		l->wgroup = (uint8_t)(1 + tl_rng_bounded(rng, 4));
		l->wstrategy = (uint8_t)(1 + tl_rng_bounded(rng, GW_COUNT - 1));
	}
	if (s->share_x && g->classes[l->cls].feat == GF_QKV && tl_rng_double(rng) < s->share_prob) {
		l->xgroup = (uint8_t)(1 + tl_rng_bounded(rng, 4));
		l->xstrategy = (uint8_t)(1 + tl_rng_bounded(rng, GX_COUNT - 1));
	}
}

int genome_sample(genome *out, const genome_space *s, tl_rng *rng, tl_err *err)
{
	tl_err last = TL_ERR_INIT;
	for (int attempt = 0; attempt < 1000; attempt++) {
		genome *g = out;
		memset(g, 0, sizeof *g);
		g->d_model = (uint32_t)dom_draw(&s->d_model, rng);
		g->vocab = (uint32_t)dom_draw(&s->vocab, rng);
		g->ffn_multiple = s->ffn_multiple;
		g->rope_theta = s->rope_theta;
		g->tied = s->tied;
		g->n_classes = (uint8_t)s->n_classes;
		bool ok = true;
		for (int ci = 0; ci < s->n_classes && ok; ci++) {
			int t = 0;
			while (t < 200 && sample_class(&g->classes[ci], g, &s->classes[ci], rng) != 0)
				t++;
			ok = t < 200;
		}
		if (!ok)
			continue;
		int depth = (int)dom_draw(&s->depth, rng);
		g->n_layers = (uint16_t)depth;
		for (int i = 0; i < depth; i++) {
			g->layers[i].cls = (uint8_t)draw_class_for_role(s, role_at(s, i), rng);
			draw_sharing(g, s, i, rng);
		}
		tl_err_clear(&last);
		if (genome_repair(g, s, &last) == 0)
			return 0;
	}
	memset(out, 0, sizeof *out);
	return tl_err_set(err, TL_EINVAL,
	                  "%s: no valid genome in 1000 draws (last: %s); widen the space or the "
	                  "parameter budget", s->source, last.msg);
}

/* ---- repair ---------------------------------------------------------------------- */

static void repair_class(genome_class *c, const genome *g, const space_class *sc)
{
	if (!op_allowed_in(sc, c)) {
		/* nearest allowed operator: most genes in common */
		int best = 0, best_same = -1;
		uint8_t cur[5] = {c->feat, c->structure, c->mask, c->nonlin, c->chmix};
		for (int i = 0; i < sc->n_ops; i++) {
			int same = 0;
			for (int j = 0; j < 5; j++)
				same += sc->ops[i][j] == cur[j];
			if (same > best_same) {
				best_same = same;
				best = i;
			}
		}
		c->feat = sc->ops[best][0];
		c->structure = sc->ops[best][1];
		c->mask = sc->ops[best][2];
		c->nonlin = sc->ops[best][3];
		c->chmix = sc->ops[best][4];
	}
	c->heads = (uint16_t)dom_nearest(&sc->heads, c->heads);
	c->head_dim = (uint16_t)dom_nearest(&sc->hd, c->head_dim);
	c->len = (uint16_t)dom_nearest(&sc->len, c->len);
	c->ffn = (uint16_t)dom_nearest(&sc->ffn, c->ffn);
	c->qk_norm = (uint8_t)dom_nearest(&sc->qkn, c->qk_norm);
	c->rope = (uint8_t)dom_nearest(&sc->rope, c->rope);
	if (c->feat == GF_QKV && sc->kv_is_heads) {
		c->kv_heads = c->heads;
	} else if (c->feat == GF_QKV) {
		/* nearest kv that divides heads; else move heads to one that has one */
		int64_t best = -1;
		for (int i = 0; i < sc->kv.n; i++)
			if (sc->kv.v[i] <= c->heads && c->heads % sc->kv.v[i] == 0 &&
			    (best < 0 || llabs(sc->kv.v[i] - c->kv_heads) < llabs(best - c->kv_heads)))
				best = sc->kv.v[i];
		if (best < 0) {
			for (int j = 0; j < sc->heads.n && best < 0; j++)
				for (int i = 0; i < sc->kv.n; i++)
					if (sc->kv.v[i] <= sc->heads.v[j] && sc->heads.v[j] % sc->kv.v[i] == 0) {
						c->heads = (uint16_t)sc->heads.v[j];
						best = sc->kv.v[i];
						break;
					}
		}
		c->kv_heads = (uint16_t)(best > 0 ? best : c->heads);
	} else {
		c->kv_heads = c->heads;
	}
	for (int k = 0; k < GENOME_NGROUPS; k++) {
		if (!genome_feat_has_group(c->feat, k)) {
			memset(&c->fg[k], 0, sizeof c->fg[k]);
			continue;
		}
		c->fg[k].conv = (uint16_t)dom_nearest(&sc->fconv[k], c->fg[k].conv);
		c->fg[k].chmix = (uint8_t)dom_nearest(&sc->fchmix[k], c->fg[k].chmix);
		c->fg[k].expand = (uint8_t)dom_nearest(&sc->fexpand[k], c->fg[k].expand);
	}
	if (c->feat == GF_BCH)
		c->fg[GG_B].expand = c->fg[GG_V].expand = c->fg[GG_C].expand;
	if (c->feat == GF_CBVA)
		c->fg[GG_B].expand = c->fg[GG_C].expand;
	for (int k = 0; k < GENOME_NGROUPS; k++)
		if (genome_feat_has_group(c->feat, k))
			c->fg[k].repeat = (uint8_t)((c->feat == GF_QKV && k != GG_C && c->kv_heads)
			                                ? c->heads / c->kv_heads : 1);
	(void)g;
}

static void repair_sharing(genome *g, const genome_space *s)
{
	for (int i = 0; i < g->n_layers; i++) {
		genome_layer *l = &g->layers[i];
		if (!s->share_w || l->wstrategy == 0 || l->wstrategy >= GW_COUNT)
			l->wgroup = l->wstrategy = 0;
		if (!s->share_x || l->xstrategy == 0 || l->xstrategy >= GX_COUNT ||
		    g->classes[l->cls].feat != GF_QKV)
			l->xgroup = l->xstrategy = 0;
		if (l->wgroup == 0)
			l->wstrategy = 0;
		if (l->xgroup == 0)
			l->xstrategy = 0;
		for (int j = 0; j < i; j++) {
			const genome_layer *m = &g->layers[j];
			if (l->wgroup && m->wgroup == l->wgroup &&
			    (m->cls != l->cls || m->wstrategy != l->wstrategy))
				l->wgroup = l->wstrategy = 0;
			if (l->xgroup && m->xgroup == l->xgroup &&
			    (m->cls != l->cls || m->xstrategy != l->xstrategy))
				l->xgroup = l->xstrategy = 0;
		}
	}
}

/* Meet the parameter budget by choosing the SwiGLU widths: coordinate
 * descent over the used GLU classes' allowed ffn values, minimising
 * |params - budget|. Parameters are affine in each class's inner width, so
 * each step is exact; two sweeps settle it for the spaces we use. */
static void fit_budget(genome *g, const genome_space *s)
{
	if (s->budget <= 0)
		return;
	bool used[GENOME_MAX_CLASSES] = {0};
	for (int i = 0; i < g->n_layers; i++)
		used[g->layers[i].cls] = true;
	genome_arch *a = malloc(sizeof *a);
	if (a == NULL)
		return;
	for (int sweep = 0; sweep < 2; sweep++) {
		for (int ci = 0; ci < g->n_classes; ci++) {
			if (!used[ci] || g->classes[ci].feat != GF_GLU)
				continue;
			const dom *d = &s->classes[ci].ffn;
			int64_t best_v = g->classes[ci].ffn;
			double best = -1;
			/* binary search on the sorted domain: params grow with ffn */
			int lo = 0, hi = d->n - 1;
			while (lo <= hi) {
				int mid = (lo + hi) / 2;
				g->classes[ci].ffn = (uint16_t)d->v[mid];
				genome_stats st;
				if (genome_decode(a, g, NULL) < 0)
					break;
				genome_stats_compute(&st, a, 1, 1);
				double diff = (double)st.params - (double)s->budget;
				if (best < 0 || fabs(diff) < best) {
					best = fabs(diff);
					best_v = d->v[mid];
				}
				if (diff < 0)
					lo = mid + 1;
				else
					hi = mid - 1;
			}
			g->classes[ci].ffn = (uint16_t)best_v;
		}
	}
	free(a);
}

int genome_repair(genome *g, const genome_space *s, tl_err *err)
{
	if (g->n_classes != s->n_classes)
		return tl_err_set(err, TL_EINVAL, "repair: genome has %u classes, the space %d (not "
		                  "repairable)", g->n_classes, s->n_classes);
	g->d_model = (uint32_t)dom_nearest(&s->d_model, g->d_model);
	g->vocab = (uint32_t)dom_nearest(&s->vocab, g->vocab);
	g->ffn_multiple = s->ffn_multiple;
	g->rope_theta = s->rope_theta;
	g->tied = s->tied;
	for (int ci = 0; ci < g->n_classes; ci++)
		repair_class(&g->classes[ci], g, &s->classes[ci]);

	/* depth and layout */
	/* nearest allowed depth, preferring to cut rather than invent layers */
	int n = g->n_layers, best = -1;
	for (int i = 0; i < s->depth.n; i++) {
		int v = (int)s->depth.v[i];
		if (best < 0 || abs(v - n) < abs(best - n) || (abs(v - n) == abs(best - n) && v < best))
			best = v;
	}
	n = best;
	for (int i = g->n_layers; i < n; i++) {
		/* grow by repeating the pattern of the first layers */
		g->layers[i] = g->n_layers > 0 ? g->layers[i % g->n_layers] : (genome_layer){0};
		g->layers[i].wgroup = g->layers[i].wstrategy = 0;
		g->layers[i].xgroup = g->layers[i].xstrategy = 0;
	}
	g->n_layers = (uint16_t)n;
	for (int i = 0; i < n; i++) {
		genome_layer *l = &g->layers[i];
		if (l->cls >= g->n_classes || !role_fits(s->classes[l->cls].role, role_at(s, i))) {
			for (int c = 0; c < s->n_classes; c++)
				if (role_fits(s->classes[c].role, role_at(s, i))) {
					l->cls = (uint8_t)c;
					break;
				}
		}
	}
	repair_sharing(g, s);
	genome_canonicalize(g);
	fit_budget(g, s);
	if (genome_space_check(s, g, err) < 0)
		return TL_EINVAL;
	return 0;
}

/* ---- mutation ---------------------------------------------------------------------- */

/* Step a value to a neighbour in its domain (half the time) or anywhere. */
static int64_t dom_mutate(const dom *d, int64_t cur, tl_rng *rng)
{
	if (d->n < 2)
		return cur;
	int idx = 0;
	for (int i = 0; i < d->n; i++)
		if (d->v[i] == cur)
			idx = i;
	if (tl_rng_bounded(rng, 2) == 0) {
		int j = idx + (tl_rng_bounded(rng, 2) ? 1 : -1);
		if (j < 0)
			j = 1;
		if (j >= d->n)
			j = d->n - 2;
		return d->v[j];
	}
	int j = (int)tl_rng_bounded(rng, (uint32_t)(d->n - 1));
	return d->v[j >= idx ? j + 1 : j];
}

static bool mutate_backbone(genome *g, const genome_space *s, tl_rng *rng)
{
	int kind = (int)tl_rng_bounded(rng, 4);
	int step = s->layout == LAYOUT_INTERLEAVED ? 2 : 1; /* keep mixer/channel alignment */
	int n = g->n_layers;
	switch (kind) {
	case 0: { /* another class at one position */
		int i = (int)tl_rng_bounded(rng, (uint32_t)n);
		int c = draw_class_for_role(s, role_at(s, i), rng);
		if (c == g->layers[i].cls)
			return false;
		g->layers[i].cls = (uint8_t)c;
		return true;
	}
	case 1: { /* sharing of one layer */
		if (!s->share_w && !s->share_x)
			return false;
		int i = (int)tl_rng_bounded(rng, (uint32_t)n);
		genome_layer before = g->layers[i];
		genome_layer *l = &g->layers[i];
		if (s->share_w && (!s->share_x || tl_rng_bounded(rng, 2))) {
			if (l->wgroup && tl_rng_bounded(rng, 2)) {
				l->wgroup = l->wstrategy = 0;
			} else {
				l->wgroup = (uint8_t)(1 + tl_rng_bounded(rng, 4));
				l->wstrategy = (uint8_t)(1 + tl_rng_bounded(rng, GW_COUNT - 1));
			}
		} else if (g->classes[l->cls].feat == GF_QKV) {
			if (l->xgroup && tl_rng_bounded(rng, 2)) {
				l->xgroup = l->xstrategy = 0;
			} else {
				l->xgroup = (uint8_t)(1 + tl_rng_bounded(rng, 4));
				l->xstrategy = (uint8_t)(1 + tl_rng_bounded(rng, GX_COUNT - 1));
			}
		}
		return memcmp(&before, l, sizeof before) != 0;
	}
	case 2: { /* grow to the next allowed depth: insert layers (pairs when interleaved) */
		int target = -1;
		for (int k = 0; k < s->depth.n && target < 0; k++)
			if (s->depth.v[k] > n)
				target = (int)s->depth.v[k];
		if (target < 0)
			return false;
		int add = target - n;
		int at = (int)tl_rng_bounded(rng, (uint32_t)(n / step + 1)) * step;
		memmove(&g->layers[at + add], &g->layers[at], sizeof g->layers[0] * (size_t)(n - at));
		for (int k = 0; k < add; k++) {
			g->layers[at + k] = (genome_layer){0};
			g->layers[at + k].cls = (uint8_t)draw_class_for_role(s, role_at(s, at + k), rng);
		}
		g->n_layers = (uint16_t)target;
		return true;
	}
	default: { /* shrink to the previous allowed depth: delete adjacent layers */
		int target = -1;
		for (int k = s->depth.n - 1; k >= 0 && target < 0; k--)
			if (s->depth.v[k] < n)
				target = (int)s->depth.v[k];
		if (target < 1)
			return false;
		int del = n - target;
		int at = (int)tl_rng_bounded(rng, (uint32_t)((n - del) / step + 1)) * step;
		memmove(&g->layers[at], &g->layers[at + del],
		        sizeof g->layers[0] * (size_t)(n - at - del));
		g->n_layers = (uint16_t)target;
		return true;
	}
	}
}

/* Classes some layer uses: mutating those changes the architecture. */
static void used_classes(const genome *g, bool used[GENOME_MAX_CLASSES])
{
	memset(used, 0, GENOME_MAX_CLASSES * sizeof used[0]);
	for (int i = 0; i < g->n_layers; i++)
		used[g->layers[i].cls] = true;
}

static bool mutate_operator(genome *g, const genome_space *s, tl_rng *rng)
{
	int cand[GENOME_MAX_CLASSES], n = 0;
	bool used[GENOME_MAX_CLASSES];
	used_classes(g, used);
	for (int pass = 0; pass < 2 && n == 0; pass++)
		for (int i = 0; i < s->n_classes; i++)
			if (s->classes[i].n_ops > 1 && (pass || used[i]))
				cand[n++] = i;
	if (n == 0)
		return false;
	int ci = cand[tl_rng_bounded(rng, (uint32_t)n)];
	const space_class *sc = &s->classes[ci];
	genome_class *c = &g->classes[ci];
	int pick = (int)tl_rng_bounded(rng, (uint32_t)sc->n_ops);
	const uint8_t *o = sc->ops[pick];
	if (o[0] == c->feat && o[1] == c->structure && o[2] == c->mask && o[3] == c->nonlin &&
	    o[4] == c->chmix)
		o = sc->ops[(pick + 1) % sc->n_ops];
	c->structure = o[1];
	c->mask = o[2];
	c->nonlin = o[3];
	c->chmix = o[4];
	/* a gene that becomes relevant takes an allowed value */
	if (genome_class_uses(c, GZ_LEN) && c->len == 0)
		c->len = (uint16_t)dom_draw(&sc->len, rng);
	return true;
}

static bool mutate_featurizer(genome *g, const genome_space *s, tl_rng *rng)
{
	/* Collect the genes with a choice: (class, gene id). Gene ids: 0..6
	 * sizes (GZ_*), 7+3k.. featurizer genes of group k; -1 is d_model. */
	int cls[128], gene[128], n = 0;
	bool used[GENOME_MAX_CLASSES];
	used_classes(g, used);
	if (s->d_model.n > 1) {
		cls[n] = -1;
		gene[n++] = -1;
	}
	/* class genes of used classes first; of unused ones only if the used
	 * classes have none (d_model, counted above, is not a class gene) */
	int n0 = n;
	for (int pass = 0; pass < 2 && n == n0; pass++)
	for (int ci = 0; ci < s->n_classes; ci++) {
		if (!pass && !used[ci])
			continue;
		const space_class *sc = &s->classes[ci];
		const genome_class *c = &g->classes[ci];
		const dom *sizes[GZ_COUNT] = {&sc->heads, &sc->kv, &sc->hd, &sc->len, &sc->ffn,
		                              &sc->qkn, &sc->rope};
		for (int z = 0; z < GZ_COUNT; z++)
			if (genome_class_uses(c, z) && sizes[z]->n > 1 && n < 128 &&
			    !(z == GZ_KV && sc->kv_is_heads)) {
				cls[n] = ci;
				gene[n++] = z;
			}
		for (int k = 0; k < GENOME_NGROUPS; k++) {
			if (!genome_feat_has_group(c->feat, k))
				continue;
			const dom *fd[3] = {&sc->fconv[k], &sc->fchmix[k], &sc->fexpand[k]};
			for (int j = 0; j < 3; j++)
				if (fd[j]->n > 1 && n < 128) {
					cls[n] = ci;
					gene[n++] = GZ_COUNT + 3 * k + j;
				}
		}
	}
	if (n == 0)
		return false;
	int pick = (int)tl_rng_bounded(rng, (uint32_t)n);
	if (cls[pick] < 0) {
		g->d_model = (uint32_t)dom_mutate(&s->d_model, g->d_model, rng);
		return true;
	}
	const space_class *sc = &s->classes[cls[pick]];
	genome_class *c = &g->classes[cls[pick]];
	int z = gene[pick];
	switch (z) {
	case GZ_HEADS: c->heads = (uint16_t)dom_mutate(&sc->heads, c->heads, rng); break;
	case GZ_KV: c->kv_heads = (uint16_t)dom_mutate(&sc->kv, c->kv_heads, rng); break;
	case GZ_HD: c->head_dim = (uint16_t)dom_mutate(&sc->hd, c->head_dim, rng); break;
	case GZ_LEN: c->len = (uint16_t)dom_mutate(&sc->len, c->len, rng); break;
	case GZ_FFN: c->ffn = (uint16_t)dom_mutate(&sc->ffn, c->ffn, rng); break;
	case GZ_QKN: c->qk_norm = (uint8_t)dom_mutate(&sc->qkn, c->qk_norm, rng); break;
	case GZ_ROPE: c->rope = (uint8_t)dom_mutate(&sc->rope, c->rope, rng); break;
	default: {
		int k = (z - GZ_COUNT) / 3, j = (z - GZ_COUNT) % 3;
		genome_fgene *f = &c->fg[k];
		if (j == 0)
			f->conv = (uint16_t)dom_mutate(&sc->fconv[k], f->conv, rng);
		else if (j == 1)
			f->chmix = (uint8_t)dom_mutate(&sc->fchmix[k], f->chmix, rng);
		else
			f->expand = (uint8_t)dom_mutate(&sc->fexpand[k], f->expand, rng);
		/* tied widths follow the group that moved */
		if (j == 2 && c->feat == GF_BCH)
			c->fg[GG_C].expand = c->fg[GG_B].expand = c->fg[GG_V].expand = f->expand;
		if (j == 2 && c->feat == GF_CBVA && k != GG_V && k != GG_A)
			c->fg[GG_C].expand = c->fg[GG_B].expand = f->expand;
	}
	}
	return true;
}

int genome_mutate(genome *g, const genome_space *s, int level, tl_rng *rng, tl_err *err)
{
	genome orig = *g, neutral;
	bool have_neutral = false;
	char h0[65], h1[65];
	if (genome_hash(&orig, h0, err) < 0)
		return TL_EINVAL;
	for (int attempt = 0; attempt < 64; attempt++) {
		int lv = level >= 0 && level <= 2 ? level : (int)tl_rng_bounded(rng, 3);
		/* a level with nothing to choose falls through to the others */
		bool changed = false;
		for (int t = 0; t < 3 && !changed; t++) {
			*g = orig;
			int l2 = (lv + t) % 3;
			changed = l2 == 0   ? mutate_backbone(g, s, rng)
			          : l2 == 1 ? mutate_operator(g, s, rng)
			                    : mutate_featurizer(g, s, rng);
		}
		if (!changed)
			continue;
		/* A change that repair undoes (e.g. a SwiGLU width the budget fit
		 * sets back) is not a mutation; one that leaves the architecture
		 * as it was (an unused class) is kept only if nothing else works:
		 * the search deduplicates by architecture, so it would be wasted. */
		if (genome_repair(g, s, NULL) < 0 || memcmp(g, &orig, sizeof orig) == 0)
			continue;
		g->name[0] = '\0'; /* a mutant is no longer the named model */
		if (genome_hash(g, h1, NULL) == 0 && strcmp(h0, h1) != 0)
			return 0;
		if (!have_neutral) {
			neutral = *g;
			have_neutral = true;
		}
	}
	if (have_neutral) {
		*g = neutral;
		return 0;
	}
	*g = orig;
	return tl_err_set(err, TL_EINVAL,
	                  "mutate: no valid mutation found in 64 attempts (the space leaves this "
	                  "genome no freedom)");
}

int genome_cross(genome *a, genome *b, const genome *p1, const genome *p2,
                 const genome_space *s, tl_rng *rng, tl_err *err)
{
	if (genome_space_check(s, p1, err) < 0 || genome_space_check(s, p2, err) < 0) {
		tl_err_prefix(err, "cross: a parent is not a member of the space");
		return TL_EINVAL;
	}
	int n = p1->n_layers < p2->n_layers ? p1->n_layers : p2->n_layers;
	int step = s->layout == LAYOUT_INTERLEAVED ? 2 : 1;
	int slots = n / step + 1;
	/* two distinct cut points, so that each child takes a real segment of
	 * its second parent (when the shorter parent has at least one slot) */
	int i = (int)tl_rng_bounded(rng, (uint32_t)slots) * step;
	int j = i;
	if (slots > 1)
		while (j == i)
			j = (int)tl_rng_bounded(rng, (uint32_t)slots) * step;
	if (i > j) {
		int t = i;
		i = j;
		j = t;
	}
	*a = *p1;
	*b = *p2;
	for (int k = i; k < j; k++) {
		a->layers[k] = p2->layers[k];
		b->layers[k] = p1->layers[k];
	}
	/* A child that cannot be repaired falls back to its first parent. */
	if (genome_repair(a, s, NULL) < 0)
		*a = *p1;
	if (genome_repair(b, s, NULL) < 0)
		*b = *p2;
	a->name[0] = b->name[0] = '\0';
	return 0;
}
