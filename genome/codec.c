/*
 * genome/codec.c: the text and JSON forms of a genome. Both round-trip:
 * parse(to_text(g)) == g and parse(to_json(g)) == g for a canonical g.
 *
 * Parsers take untrusted input (command lines, files, the database), so
 * every number is range-checked before it is narrowed, every token is
 * bounded, and an error names the input, the place and the reason in one
 * line. Fuzz targets: tests/fuzz/fuzz_genome_text.c, tests/fuzz/fuzz_genome_json.c.
 */
#include "genome.h"
#include "genome_int.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TEXT_MAGIC "tailor-genome/1"
#define JSON_FORMAT "tailor-genome"

static bool name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n >= GENOME_NAME_MAX)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("._+-", *s))
			return false;
	return true;
}

/* ---- writing -------------------------------------------------------------- */

static void text_class(tl_sb *sb, const genome *g, int ci)
{
	const genome_class *c = &g->classes[ci];
	tl_sb_printf(sb, " | c%d op=%u.%u.%u.%u.%u", ci, c->feat, c->structure, c->mask,
	                 c->nonlin, c->chmix);
	if (genome_class_uses(c, GZ_HEADS))
		tl_sb_printf(sb, " h=%u", c->heads);
	if (genome_class_uses(c, GZ_KV))
		tl_sb_printf(sb, " kv=%u", c->kv_heads);
	if (genome_class_uses(c, GZ_HD))
		tl_sb_printf(sb, " hd=%u", c->head_dim);
	if (genome_class_uses(c, GZ_LEN))
		tl_sb_printf(sb, " len=%u", c->len);
	if (genome_class_uses(c, GZ_FFN))
		tl_sb_printf(sb, " ffn=%u", c->ffn);
	if (genome_class_uses(c, GZ_QKN))
		tl_sb_printf(sb, " qkn=%u", c->qk_norm);
	if (genome_class_uses(c, GZ_ROPE))
		tl_sb_printf(sb, " rope=%u", c->rope);
	for (int k = 0; k < GENOME_NGROUPS; k++)
		if (genome_feat_has_group(c->feat, k))
			tl_sb_printf(sb, " %s=%u.%u.%u.%u", genome_group_names[k], c->fg[k].conv,
			                 c->fg[k].chmix, c->fg[k].expand, c->fg[k].repeat);
}

char *genome_to_text(const genome *g)
{
	tl_sb sb = {0};
	tl_sb_printf(&sb, TEXT_MAGIC);
	if (g->name[0])
		tl_sb_printf(&sb, " name=%s", g->name);
	tl_sb_printf(&sb, " d=%u vocab=%u ffn_multiple=%u rope_theta=%u tied=%u |", g->d_model,
	                 g->vocab, g->ffn_multiple, g->rope_theta, g->tied);
	for (int i = 0; i < g->n_layers; i++) {
		const genome_layer *l = &g->layers[i];
		tl_sb_printf(&sb, " %u.%u.%u.%u.%u", l->cls, l->wgroup, l->wstrategy, l->xgroup,
		                 l->xstrategy);
	}
	for (int ci = 0; ci < g->n_classes; ci++)
		text_class(&sb, g, ci);
	return tl_sb_take(&sb);
}

static cJSON *int_array(const int *v, int n)
{
	cJSON *a = cJSON_CreateArray();
	for (int i = 0; a && i < n; i++)
		cJSON_AddItemToArray(a, cJSON_CreateNumber(v[i]));
	return a;
}

char *genome_to_json(const genome *g, bool pretty)
{
	cJSON *root = cJSON_CreateObject(), *classes, *layers;
	char *out = NULL;
	if (root == NULL)
		return NULL;
	cJSON_AddStringToObject(root, "format", JSON_FORMAT);
	cJSON_AddNumberToObject(root, "version", GENOME_FORMAT_VERSION);
	if (g->name[0])
		cJSON_AddStringToObject(root, "name", g->name);
	cJSON_AddNumberToObject(root, "d_model", g->d_model);
	cJSON_AddNumberToObject(root, "vocab", g->vocab);
	cJSON_AddNumberToObject(root, "ffn_multiple", g->ffn_multiple);
	cJSON_AddNumberToObject(root, "rope_theta", g->rope_theta);
	cJSON_AddBoolToObject(root, "tied", g->tied);
	classes = cJSON_AddArrayToObject(root, "classes");
	for (int ci = 0; classes && ci < g->n_classes; ci++) {
		const genome_class *c = &g->classes[ci];
		cJSON *o = cJSON_CreateObject();
		if (o == NULL)
			break;
		cJSON_AddItemToArray(classes, o);
		cJSON_AddStringToObject(o, "label", genome_class_label(c));
		int op[5] = {c->feat, c->structure, c->mask, c->nonlin, c->chmix};
		cJSON_AddItemToObject(o, "op", int_array(op, 5));
		if (genome_class_uses(c, GZ_HEADS))
			cJSON_AddNumberToObject(o, "heads", c->heads);
		if (genome_class_uses(c, GZ_KV))
			cJSON_AddNumberToObject(o, "kv_heads", c->kv_heads);
		if (genome_class_uses(c, GZ_HD))
			cJSON_AddNumberToObject(o, "head_dim", c->head_dim);
		if (genome_class_uses(c, GZ_LEN))
			cJSON_AddNumberToObject(o, "len", c->len);
		if (genome_class_uses(c, GZ_FFN))
			cJSON_AddNumberToObject(o, "ffn", c->ffn);
		if (genome_class_uses(c, GZ_QKN))
			cJSON_AddNumberToObject(o, "qk_norm", c->qk_norm);
		if (genome_class_uses(c, GZ_ROPE))
			cJSON_AddNumberToObject(o, "rope", c->rope);
		cJSON *f = cJSON_AddObjectToObject(o, "features");
		for (int k = 0; f && k < GENOME_NGROUPS; k++) {
			if (!genome_feat_has_group(c->feat, k))
				continue;
			int v[4] = {c->fg[k].conv, c->fg[k].chmix, c->fg[k].expand, c->fg[k].repeat};
			cJSON_AddItemToObject(f, genome_group_names[k], int_array(v, 4));
		}
	}
	layers = cJSON_AddArrayToObject(root, "layers");
	for (int i = 0; layers && i < g->n_layers; i++) {
		const genome_layer *l = &g->layers[i];
		char s[32];
		snprintf(s, sizeof s, "%u.%u.%u.%u.%u", l->cls, l->wgroup, l->wstrategy, l->xgroup,
		         l->xstrategy);
		cJSON_AddItemToArray(layers, cJSON_CreateString(s));
	}
	out = pretty ? cJSON_Print(root) : cJSON_PrintUnformatted(root);
	cJSON_Delete(root);
	return out;
}

/* ---- shared parsing helpers ------------------------------------------------ */

/* Parse exactly n dot-separated unsigned integers, each <= max. Returns the
 * index of the first bad field (or n if the count is wrong) as a negative
 * number minus one, or 0. */
static int parse_dotted(const char *s, unsigned *v, int n, unsigned max)
{
	const char *p = s;
	for (int i = 0; i < n; i++) {
		if (!isdigit((unsigned char)*p))
			return -(i + 1);
		unsigned long x = 0;
		while (isdigit((unsigned char)*p)) {
			x = x * 10 + (unsigned)(*p - '0');
			if (x > max)
				return -(i + 1);
			p++;
		}
		v[i] = (unsigned)x;
		if (i < n - 1) {
			if (*p != '.')
				return -(n + 1);
			p++;
		}
	}
	return *p == '\0' ? 0 : -(n + 1);
}

/* Operator genome from "3.0.0.2.0" or "glu.diagonal.none.silu.diagonal". */
static int parse_op(const char *s, unsigned op[5])
{
	if (parse_dotted(s, op, 5, 255) == 0)
		return 0;
	char buf[96];
	if (strlen(s) >= sizeof buf)
		return -1;
	tl_strlcpy(buf, s, sizeof buf);
	char *save = NULL, *tok = strtok_r(buf, ".", &save);
	for (int i = 0; i < 5; i++) {
		if (tok == NULL)
			return -1;
		int v = genome_name_lookup(i, tok);
		if (v < 0)
			return -1;
		op[i] = (unsigned)v;
		tok = strtok_r(NULL, ".", &save);
	}
	return tok == NULL ? 0 : -1;
}

static void set_layer(genome_layer *l, const unsigned v[5])
{
	l->cls = (uint8_t)v[0];
	l->wgroup = (uint8_t)v[1];
	l->wstrategy = (uint8_t)v[2];
	l->xgroup = (uint8_t)v[3];
	l->xstrategy = (uint8_t)v[4];
}

static void set_op(genome_class *c, const unsigned op[5])
{
	c->feat = (uint8_t)op[0];
	c->structure = (uint8_t)op[1];
	c->mask = (uint8_t)op[2];
	c->nonlin = (uint8_t)op[3];
	c->chmix = (uint8_t)op[4];
}

static void set_fgene(genome_fgene *f, const unsigned v[4])
{
	f->conv = (uint16_t)v[0];
	f->chmix = (uint8_t)v[1];
	f->expand = (uint8_t)v[2];
	f->repeat = (uint8_t)v[3];
}

static int group_index(const char *name)
{
	for (int k = 0; k < GENOME_NGROUPS; k++)
		if (strcmp(name, genome_group_names[k]) == 0)
			return k;
	return -1;
}

/* Sizes not given take their canonical defaults; genome_check then reports
 * a used size that is missing (e.g. heads 0). */
static void class_defaults(genome_class *c)
{
	memset(c, 0, sizeof *c);
	c->heads = 1;
	c->kv_heads = 0; /* 0 = same as heads, resolved after parsing */
}

static void class_finish(genome_class *c)
{
	if (c->kv_heads == 0)
		c->kv_heads = c->heads;
}

/* After parsing: check, then canonical form; errors get the source. */
static int finish(genome *out, const char *source, tl_err *err)
{
	for (int ci = 0; ci < out->n_classes; ci++)
		class_finish(&out->classes[ci]);
	if (genome_check(out, err) < 0) {
		tl_err_prefix(err, "%s", source);
		return TL_EINVAL;
	}
	genome_canonicalize(out);
	return 0;
}

/* ---- text ---------------------------------------------------------------------- */

#define MAX_TOKEN 96

static int parse_text(genome *out, const char *s, const char *src, tl_err *err)
{
	/* Sections: header | layers | class | class ... */
	int section = 0, ci = -1, tokno = 0;
	bool seen_header_key[8] = {0};
	bool class_seen_op = false;
	unsigned seen_class_keys = 0;
	unsigned groups_given[GENOME_MAX_CLASSES] = {0};
	const char *p = s;

	/* The same defaults as the JSON form (docs/genome.md). */
	out->ffn_multiple = 1;
	out->rope_theta = 1000000;
	out->tied = 1;

	while (*p) {
		while (isspace((unsigned char)*p))
			p++;
		if (!*p)
			break;
		const char *start = p;
		while (*p && !isspace((unsigned char)*p) && *p != '|')
			p++;
		if (p == start) { /* a '|' */
			p++;
			if (!seen_header_key[0])
				return tl_err_set(err, TL_EPARSE, "%s: expected '" TEXT_MAGIC "' first",
				                  src);
			if (section == 2 && ci == -2)
				return tl_err_set(err, TL_EPARSE, "%s: empty class section after c%d", src,
				                  out->n_classes - 1);
			if (section == 2 && !class_seen_op)
				return tl_err_set(err, TL_EPARSE, "%s: class %d: missing op=", src, ci);
			if (section < 2)
				section++;
			if (section == 2) {
				/* a new class starts with its c<N> token */
				class_seen_op = false;
				seen_class_keys = 0;
				ci = -2;
			}
			continue;
		}
		size_t n = (size_t)(p - start);
		tokno++;
		if (n >= MAX_TOKEN)
			return tl_err_set(err, TL_EPARSE, "%s: token %d: longer than %d characters", src,
			                  tokno, MAX_TOKEN - 1);
		char tok[MAX_TOKEN];
		memcpy(tok, start, n);
		tok[n] = '\0';

		if (section == 0) {
			if (tokno == 1) {
				if (strcmp(tok, TEXT_MAGIC) != 0)
					/* not echoed: the input may be any file */
					return tl_err_set(err, TL_EPARSE,
					                  "%s: line 1: not a genome (its text starts with '"
					                  TEXT_MAGIC "', its JSON form with '{')", src);
				seen_header_key[0] = true;
				continue;
			}
			static const char *const keys[] = {"name", "d", "vocab", "ffn_multiple",
			                                   "rope_theta", "tied"};
			char *eq = strchr(tok, '=');
			if (eq == NULL)
				return tl_err_set(err, TL_EPARSE,
				                  "%s: header: '%s' is not key=value (did you forget the '|' "
				                  "before the layers?)", src, tok);
			*eq = '\0';
			const char *val = eq + 1;
			int k = -1;
			for (int i = 0; i < 6; i++)
				if (strcmp(tok, keys[i]) == 0)
					k = i;
			if (k < 0)
				return tl_err_set(err, TL_EPARSE,
				                  "%s: header: unknown key '%s' (name, d, vocab, ffn_multiple, "
				                  "rope_theta, tied)", src, tok);
			if (seen_header_key[k + 1])
				return tl_err_set(err, TL_EPARSE, "%s: header: '%s' given twice", src, tok);
			seen_header_key[k + 1] = true;
			if (k == 0) {
				if (!name_ok(val))
					return tl_err_set(err, TL_EPARSE,
					                  "%s: header: name '%s': use 1..63 letters, digits, '.', "
					                  "'_', '+' or '-'", src, val);
				tl_strlcpy(out->name, val, sizeof out->name);
				continue;
			}
			unsigned v;
			if (parse_dotted(val, &v, 1, 0xffffffffu) != 0)
				return tl_err_set(err, TL_EPARSE,
				                  "%s: header: %s='%s' is not an integer 0..4294967295", src,
				                  tok, val);
			switch (k) {
			case 1: out->d_model = v; break;
			case 2: out->vocab = v; break;
			case 3: out->ffn_multiple = v; break;
			case 4: out->rope_theta = v; break;
			case 5:
				if (v > 1)
					return tl_err_set(err, TL_EPARSE, "%s: header: tied=%u (0 or 1)", src, v);
				out->tied = (uint8_t)v;
				break;
			}
		} else if (section == 1) {
			unsigned v[5];
			if (out->n_layers >= GENOME_MAX_LAYERS)
				return tl_err_set(err, TL_EPARSE, "%s: more than %d layers", src,
				                  GENOME_MAX_LAYERS);
			int r = parse_dotted(tok, v, 5, 255);
			if (r != 0)
				return tl_err_set(err, TL_EPARSE,
				                  "%s: layer %u: '%s' is not class.fgroup.fstrategy.ggroup."
				                  "gstrategy (5 integers 0..255)", src, out->n_layers, tok);
			set_layer(&out->layers[out->n_layers++], v);
		} else {
			if (ci == -2) {
				unsigned v;
				if (tok[0] != 'c' || parse_dotted(tok + 1, &v, 1, 255) != 0)
					return tl_err_set(err, TL_EPARSE,
					                  "%s: class section starts with '%s', expected c%d", src,
					                  tok, out->n_classes);
				if (v != out->n_classes)
					return tl_err_set(err, TL_EPARSE,
					                  "%s: class '%s' out of order, expected c%d", src, tok,
					                  out->n_classes);
				if (out->n_classes >= GENOME_MAX_CLASSES)
					return tl_err_set(err, TL_EPARSE, "%s: more than %d classes", src,
					                  GENOME_MAX_CLASSES);
				ci = out->n_classes++;
				class_defaults(&out->classes[ci]);
				continue;
			}
			genome_class *c = &out->classes[ci];
			char *eq = strchr(tok, '=');
			if (eq == NULL)
				return tl_err_set(err, TL_EPARSE, "%s: class %d: '%s' is not key=value", src,
				                  ci, tok);
			*eq = '\0';
			const char *val = eq + 1;
			static const char *const ckeys[] = {"op", "h", "kv", "hd", "len", "ffn", "qkn",
			                                    "rope", "C", "B", "V", "A"};
			int k = -1;
			for (int i = 0; i < 12; i++)
				if (strcmp(tok, ckeys[i]) == 0)
					k = i;
			if (k < 0)
				return tl_err_set(err, TL_EPARSE,
				                  "%s: class %d: unknown key '%s' (op, h, kv, hd, len, ffn, "
				                  "qkn, rope, C, B, V, A)", src, ci, tok);
			if (seen_class_keys >> k & 1)
				return tl_err_set(err, TL_EPARSE, "%s: class %d: '%s' given twice", src, ci,
				                  tok);
			seen_class_keys |= 1u << k;
			if (k == 0) {
				unsigned op[5];
				if (parse_op(val, op) != 0)
					return tl_err_set(err, TL_EPARSE,
					                  "%s: class %d: op='%s' is not feat.structure.mask."
					                  "nonlin.chmix (integers or names)", src, ci, val);
				set_op(c, op);
				class_seen_op = true;
			} else if (k >= 8) {
				unsigned v[4];
				if (parse_dotted(val, v, 4, 65535) != 0 || v[1] > 255 || v[2] > 255 ||
				    v[3] > 255)
					return tl_err_set(err, TL_EPARSE,
					                  "%s: class %d: %s='%s' is not conv.chmix.expand.repeat",
					                  src, ci, tok, val);
				set_fgene(&c->fg[k - 8], v);
				groups_given[ci] |= 1u << (k - 8);
			} else {
				unsigned v;
				if (parse_dotted(val, &v, 1, 65535) != 0)
					return tl_err_set(err, TL_EPARSE,
					                  "%s: class %d: %s='%s' is not an integer 0..65535", src,
					                  ci, tok, val);
				switch (k) {
				case 1: c->heads = (uint16_t)v; break;
				case 2: c->kv_heads = (uint16_t)v; break;
				case 3: c->head_dim = (uint16_t)v; break;
				case 4: c->len = (uint16_t)v; break;
				case 5: c->ffn = (uint16_t)v; break;
				case 6: c->qk_norm = (uint8_t)(v > 255 ? 255 : v); break;
				case 7: c->rope = (uint8_t)(v > 255 ? 255 : v); break;
				}
			}
		}
	}
	if (!seen_header_key[0])
		return tl_err_set(err, TL_EPARSE, "%s: empty genome", src);
	if (section < 2 || ci == -2)
		return tl_err_set(err, TL_EPARSE,
		                  "%s: incomplete: expected header | layers | c0 ... (see docs/genome.md)",
		                  src);
	if (!class_seen_op)
		return tl_err_set(err, TL_EPARSE, "%s: class %d: missing op=", src, ci);
	if (!seen_header_key[2] || !seen_header_key[3])
		return tl_err_set(err, TL_EPARSE, "%s: header: d= and vocab= are required", src);
	/* Every group the featurizer computes must be written out. */
	for (int i = 0; i < out->n_classes; i++) {
		genome_class *c = &out->classes[i];
		for (int k = 0; k < GENOME_NGROUPS; k++) {
			bool has = genome_feat_has_group(c->feat, k);
			bool given = groups_given[i] >> k & 1;
			if (given && !has)
				return tl_err_set(err, TL_EPARSE,
				                  "%s: class %d: %s= given, but a %s featurizer has no %s group",
				                  src, i, genome_group_names[k], genome_feat_name(c->feat),
				                  genome_group_names[k]);
			if (has && !given)
				return tl_err_set(err, TL_EPARSE,
				                  "%s: class %d: missing %s=conv.chmix.expand.repeat (a %s "
				                  "featurizer computes it)", src, i, genome_group_names[k],
				                  genome_feat_name(c->feat));
		}
	}
	return 0;
}

/* ---- JSON ------------------------------------------------------------------------ */

/* Read an integer member into [lo, hi]; missing: `dflt` unless required. */
static int json_uint(const cJSON *obj, const char *key, const char *path, const char *src,
                     unsigned lo, unsigned hi, bool required, unsigned dflt, unsigned *out,
                     tl_err *err)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
	*out = dflt;
	if (it == NULL) {
		if (required)
			return tl_err_set(err, TL_EPARSE, "%s: %s%s: missing", src, path, key);
		return 0;
	}
	double v;
	if (cJSON_IsBool(it))
		v = cJSON_IsTrue(it) ? 1 : 0;
	else if (cJSON_IsNumber(it))
		v = it->valuedouble;
	else
		return tl_err_set(err, TL_EPARSE, "%s: %s%s: expected an integer", src, path, key);
	if (!(v >= lo && v <= hi) || v != (double)(unsigned long long)v)
		return tl_err_set(err, TL_EPARSE, "%s: %s%s: %g is not an integer in %u..%u", src, path,
		                  key, v, lo, hi);
	*out = (unsigned)v;
	return 0;
}

/* Array of n integers (each <= max) or a dotted string. */
static int json_dotted(const cJSON *it, unsigned *v, int n, unsigned max, const char *path,
                       const char *src, const char *what, tl_err *err)
{
	if (cJSON_IsString(it)) {
		if (parse_dotted(it->valuestring, v, n, max) == 0)
			return 0;
		return tl_err_set(err, TL_EPARSE, "%s: %s: '%.40s' is not %s", src, path,
		                  it->valuestring, what);
	}
	if (!cJSON_IsArray(it) || cJSON_GetArraySize(it) != n)
		return tl_err_set(err, TL_EPARSE, "%s: %s: expected %s (%d integers or a dotted string)",
		                  src, path, what, n);
	int i = 0;
	const cJSON *e;
	cJSON_ArrayForEach(e, it) {
		if (!cJSON_IsNumber(e) || !(e->valuedouble >= 0 && e->valuedouble <= max) ||
		    e->valuedouble != (double)(unsigned)e->valuedouble)
			return tl_err_set(err, TL_EPARSE, "%s: %s[%d]: expected an integer 0..%u", src,
			                  path, i, max);
		v[i++] = (unsigned)e->valuedouble;
	}
	return 0;
}

static int check_keys(const cJSON *obj, const char *const *allowed, int n, const char *path,
                      const char *src, tl_err *err)
{
	const cJSON *it;
	cJSON_ArrayForEach(it, obj) {
		bool ok = false;
		for (int i = 0; i < n; i++)
			if (it->string && strcmp(it->string, allowed[i]) == 0)
				ok = true;
		if (!ok)
			return tl_err_set(err, TL_EPARSE, "%s: %s%.60s: unknown key", src, path,
			                  it->string ? it->string : "?");
	}
	return 0;
}

/* Line and column of a byte offset, for JSON syntax errors. */
static void line_col(const char *s, size_t off, int *line, int *col)
{
	*line = 1;
	*col = 1;
	for (size_t i = 0; i < off && s[i]; i++) {
		if (s[i] == '\n') {
			(*line)++;
			*col = 1;
		} else {
			(*col)++;
		}
	}
}

/* Objects must not repeat a key (cJSON keeps both and lookups take the
 * first, which would silently ignore a user's second value). */
static int dup_check(const cJSON *node, const char *src, const char *path, int depth,
                     tl_err *err)
{
	const cJSON *a, *b;
	char sub[160];
	if (depth > 64)
		return tl_err_set(err, TL_EPARSE, "%s: %s: nested too deeply", src, path);
	int i = 0;
	cJSON_ArrayForEach(a, node) {
		if (cJSON_IsObject(node) && a->string) {
			for (b = a->next; b; b = b->next)
				if (b->string && strcmp(a->string, b->string) == 0)
					return tl_err_set(err, TL_EPARSE, "%s: %s%s%.40s: key given twice", src,
					                  path, *path ? "." : "", a->string);
			/* a path cut at sizeof sub is still a fine place name */
			if (snprintf(sub, sizeof sub, "%.100s%s%.40s", path, *path ? "." : "", a->string) < 0)
				sub[0] = '\0';
		} else {
			if (snprintf(sub, sizeof sub, "%.100s[%d]", path, i) < 0)
				sub[0] = '\0';
		}
		i++;
		if ((cJSON_IsObject(a) || cJSON_IsArray(a)) && dup_check(a, src, sub, depth + 1, err) < 0)
			return TL_EPARSE;
	}
	return 0;
}

cJSON *genome_json_parse(const char *s, const char *src, tl_err *err)
{
	const char *end = NULL;
	size_t len = strlen(s);
	cJSON *root = cJSON_ParseWithLengthOpts(s, len, &end, 0);
	if (root == NULL) {
		genome_json_syntax_error(s, src, err);
		return NULL;
	}
	while (end && end < s + len && isspace((unsigned char)*end))
		end++;
	if (end && end < s + len) {
		int line, col;
		line_col(s, (size_t)(end - s), &line, &col);
		tl_err_set(err, TL_EPARSE, "%s: line %d column %d: text after the JSON value", src,
		           line, col);
		cJSON_Delete(root);
		return NULL;
	}
	if (dup_check(root, src, "", 0, err) < 0) {
		cJSON_Delete(root);
		return NULL;
	}
	return root;
}

int genome_json_syntax_error(const char *s, const char *src, tl_err *err)
{
	int line, col;
	const char *at = cJSON_GetErrorPtr();
	size_t off = at && at >= s && at <= s + strlen(s) ? (size_t)(at - s) : 0;
	line_col(s, off, &line, &col);
	return tl_err_set(err, TL_EPARSE, "%s: line %d column %d: not valid JSON", src, line, col);
}

static int parse_json(genome *out, const char *s, const char *src, tl_err *err)
{
	int rc = TL_EPARSE;
	cJSON *root = genome_json_parse(s, src, err);
	if (root == NULL)
		return TL_EPARSE;
	if (!cJSON_IsObject(root)) {
		tl_err_set(err, TL_EPARSE, "%s: expected a JSON object", src);
		goto out_free;
	}
	static const char *const top[] = {"format", "version", "name", "description", "d_model",
	                                  "vocab", "ffn_multiple", "rope_theta", "tied", "classes",
	                                  "layers"};
	if (check_keys(root, top, 11, "", src, err) < 0)
		goto out_free;
	const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(root, "format");
	if (fmt && (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, JSON_FORMAT) != 0)) {
		tl_err_set(err, TL_EPARSE, "%s: format: expected \"" JSON_FORMAT "\"", src);
		goto out_free;
	}
	unsigned v;
	if (json_uint(root, "version", "", src, 0, 1000, false, GENOME_FORMAT_VERSION, &v, err) < 0)
		goto out_free;
	if (v != GENOME_FORMAT_VERSION) {
		tl_err_set(err, TL_EVERSION,
		           "%s: version: %u, this tailor reads version %d (upgrade tailor)", src, v,
		           GENOME_FORMAT_VERSION);
		rc = TL_EVERSION;
		goto out_free;
	}
	const cJSON *name = cJSON_GetObjectItemCaseSensitive(root, "name");
	if (name) {
		if (!cJSON_IsString(name) || !name_ok(name->valuestring)) {
			tl_err_set(err, TL_EPARSE,
			           "%s: name: use 1..63 letters, digits, '.', '_', '+' or '-'", src);
			goto out_free;
		}
		tl_strlcpy(out->name, name->valuestring, sizeof out->name);
	}
	unsigned dm, voc, fm, rt, tied;
	if (json_uint(root, "d_model", "", src, 0, 0xffffffffu, true, 0, &dm, err) < 0 ||
	    json_uint(root, "vocab", "", src, 0, 0xffffffffu, true, 0, &voc, err) < 0 ||
	    json_uint(root, "ffn_multiple", "", src, 0, 0xffffffffu, false, 1, &fm, err) < 0 ||
	    json_uint(root, "rope_theta", "", src, 0, 0xffffffffu, false, 1000000, &rt, err) < 0 ||
	    json_uint(root, "tied", "", src, 0, 1, false, 1, &tied, err) < 0)
		goto out_free;
	out->d_model = dm;
	out->vocab = voc;
	out->ffn_multiple = fm;
	out->rope_theta = rt;
	out->tied = (uint8_t)tied;

	const cJSON *classes = cJSON_GetObjectItemCaseSensitive(root, "classes");
	if (!cJSON_IsArray(classes) || cJSON_GetArraySize(classes) < 1 ||
	    cJSON_GetArraySize(classes) > GENOME_MAX_CLASSES) {
		tl_err_set(err, TL_EPARSE, "%s: classes: expected an array of 1..%d classes", src,
		           GENOME_MAX_CLASSES);
		goto out_free;
	}
	const cJSON *co;
	cJSON_ArrayForEach(co, classes) {
		unsigned given = 0;
		int ci = out->n_classes++;
		genome_class *c = &out->classes[ci];
		char path[64];
		snprintf(path, sizeof path, "classes[%d].", ci);
		class_defaults(c);
		if (!cJSON_IsObject(co)) {
			tl_err_set(err, TL_EPARSE, "%s: classes[%d]: expected an object", src, ci);
			goto out_free;
		}
		static const char *const ck[] = {"label", "op", "heads", "kv_heads", "head_dim",
		                                 "len", "ffn", "qk_norm", "rope", "features"};
		if (check_keys(co, ck, 10, path, src, err) < 0)
			goto out_free;
		const cJSON *op = cJSON_GetObjectItemCaseSensitive(co, "op");
		unsigned opv[5];
		char opath[80];
		snprintf(opath, sizeof opath, "%sop", path);
		if (op == NULL) {
			tl_err_set(err, TL_EPARSE, "%s: %s: missing", src, opath);
			goto out_free;
		}
		if (cJSON_IsString(op)) {
			if (parse_op(op->valuestring, opv) != 0) {
				tl_err_set(err, TL_EPARSE,
				           "%s: %s: '%.60s' is not feat.structure.mask.nonlin.chmix", src,
				           opath, op->valuestring);
				goto out_free;
			}
		} else if (json_dotted(op, opv, 5, 255, opath, src, "an operator genome", err) < 0) {
			goto out_free;
		}
		set_op(c, opv);
		unsigned h, kv, hd, len, ffn, qkn, rope;
		if (json_uint(co, "heads", path, src, 0, 65535, false, 1, &h, err) < 0 ||
		    json_uint(co, "kv_heads", path, src, 0, 65535, false, 0, &kv, err) < 0 ||
		    json_uint(co, "head_dim", path, src, 0, 65535, false, 0, &hd, err) < 0 ||
		    json_uint(co, "len", path, src, 0, 65535, false, 0, &len, err) < 0 ||
		    json_uint(co, "ffn", path, src, 0, 65535, false, 0, &ffn, err) < 0 ||
		    json_uint(co, "qk_norm", path, src, 0, 1, false, 0, &qkn, err) < 0 ||
		    json_uint(co, "rope", path, src, 0, 1, false, 0, &rope, err) < 0)
			goto out_free;
		c->heads = (uint16_t)h;
		c->kv_heads = (uint16_t)kv;
		c->head_dim = (uint16_t)hd;
		c->len = (uint16_t)len;
		c->ffn = (uint16_t)ffn;
		c->qk_norm = (uint8_t)qkn;
		c->rope = (uint8_t)rope;
		const cJSON *fe = cJSON_GetObjectItemCaseSensitive(co, "features");
		if (fe && !cJSON_IsObject(fe)) {
			tl_err_set(err, TL_EPARSE, "%s: %sfeatures: expected an object", src, path);
			goto out_free;
		}
		const cJSON *fg;
		cJSON_ArrayForEach(fg, fe) {
			int k = fg->string ? group_index(fg->string) : -1;
			char fpath[96];
			snprintf(fpath, sizeof fpath, "%sfeatures.%.8s", path, fg->string ? fg->string : "?");
			if (k < 0 || !genome_feat_has_group(c->feat, k)) {
				tl_err_set(err, TL_EPARSE, "%s: %s: not a feature group of a %s featurizer",
				           src, fpath, genome_feat_name(c->feat));
				goto out_free;
			}
			unsigned fv[4];
			if (json_dotted(fg, fv, 4, 65535, fpath, src, "conv.chmix.expand.repeat", err) < 0)
				goto out_free;
			if (fv[1] > 255 || fv[2] > 255 || fv[3] > 255) {
				tl_err_set(err, TL_EPARSE, "%s: %s: chmix, expand and repeat are 0..255", src,
				           fpath);
				goto out_free;
			}
			set_fgene(&c->fg[k], fv);
			given |= 1u << k;
		}
		for (int k = 0; k < GENOME_NGROUPS; k++)
			if (genome_feat_has_group(c->feat, k) && !(given >> k & 1)) {
				tl_err_set(err, TL_EPARSE,
				           "%s: %sfeatures.%s: missing (a %s featurizer computes it)", src, path,
				           genome_group_names[k], genome_feat_name(c->feat));
				goto out_free;
			}
	}

	const cJSON *layers = cJSON_GetObjectItemCaseSensitive(root, "layers");
	if (!cJSON_IsArray(layers) || cJSON_GetArraySize(layers) < 1 ||
	    cJSON_GetArraySize(layers) > GENOME_MAX_LAYERS) {
		tl_err_set(err, TL_EPARSE, "%s: layers: expected an array of 1..%d layers", src,
		           GENOME_MAX_LAYERS);
		goto out_free;
	}
	const cJSON *lo;
	cJSON_ArrayForEach(lo, layers) {
		char path[32];
		unsigned lv[5];
		snprintf(path, sizeof path, "layers[%u]", out->n_layers);
		if (json_dotted(lo, lv, 5, 255, path, src,
		                "class.fgroup.fstrategy.ggroup.gstrategy", err) < 0)
			goto out_free;
		set_layer(&out->layers[out->n_layers++], lv);
	}
	rc = 0;
out_free:
	cJSON_Delete(root);
	return rc;
}

int genome_parse(genome *out, const char *s, const char *source, tl_err *err)
{
	memset(out, 0, sizeof *out);
	const char *p = s;
	while (isspace((unsigned char)*p))
		p++;
	int rc = *p == '{' ? parse_json(out, p, source, err) : parse_text(out, p, source, err);
	if (rc < 0) {
		memset(out, 0, sizeof *out);
		return rc;
	}
	/* Text gives d= where JSON gives d_model; both land here. */
	rc = finish(out, source, err);
	if (rc < 0)
		memset(out, 0, sizeof *out);
	return rc;
}

int genome_load(genome *out, const char *path, tl_err *err)
{
	char *text = NULL;
	memset(out, 0, sizeof *out);
	size_t len = 0;
	int rc = tl_file_read(&text, &len, path, 16u << 20, err);
	if (rc < 0)
		return rc;
	if (len == 0) {
		free(text);
		return tl_err_set(err, TL_EPARSE, "%s: empty file (expected a genome)", path);
	}
	if (strlen(text) != len) { /* a NUL would end the text there, silently */
		size_t at = strlen(text);
		free(text);
		return tl_err_set(err, TL_EPARSE, "%s: byte %zu is a NUL: not a genome text (a binary "
		                  "file?)", path, at + 1);
	}
	rc = genome_parse(out, text, path, err);
	free(text);
	return rc;
}
