/*
 * operators/arch.c: parse the architecture text a build carries (see
 * op_arch.h). The text comes from the host, but a device must not crash on
 * a damaged file: every number is range-checked, every owner reference must
 * point at an earlier layer, and an error names the line.
 */
#include "op_arch.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const feat_names[] = {"qkv", "bch", "cbva", "glu"};
static const char *const struct_names[] = {"diagonal", "lowrank", "semisep", "toeplitz", "dense"};
static const char *const mask_names[] = {"none", "window", "block"};
static const char *const nonlin_names[] = {"none", "softmax", "silu", "sigmoid", "posfeat"};
static const char *const chmix_names[] = {"diagonal", "heads", "dense"};
static const char group_names[OP_NGROUPS] = {'C', 'B', 'V', 'A'};

const char *op_struct_name(int s)
{
	return s >= 0 && s < OP_STRUCT_COUNT ? struct_names[s] : "?";
}
const char *op_feat_name(int v)
{
	return v >= 0 && v < OP_FEAT_COUNT ? feat_names[v] : "?";
}
const char *op_mask_name(int v)
{
	return v >= 0 && v < OP_MASK_COUNT ? mask_names[v] : "?";
}
const char *op_nonlin_name(int v)
{
	return v >= 0 && v < OP_NL_COUNT ? nonlin_names[v] : "?";
}
const char *op_chmix_name(int v)
{
	return v >= 0 && v < OP_CH_COUNT ? chmix_names[v] : "?";
}

static int lookup(const char *const *tab, int n, const char *s, size_t len)
{
	for (int i = 0; i < n; i++)
		if (strlen(tab[i]) == len && strncmp(tab[i], s, len) == 0)
			return i;
	return -1;
}

/* "key=<unsigned>" with the value <= max. */
static int kv_uint(const char *tok, const char *key, unsigned long max, unsigned long *out)
{
	size_t kl = strlen(key);
	if (strncmp(tok, key, kl) != 0 || tok[kl] != '=' || !isdigit((unsigned char)tok[kl + 1]))
		return -1;
	char *end;
	unsigned long v = strtoul(tok + kl + 1, &end, 10);
	if (*end != '\0' || v > max)
		return -1;
	*out = v;
	return 0;
}

static int parse_header(op_arch *a, char *line)
{
	char *save = NULL, *tok = strtok_r(line, " ", &save);
	unsigned long v;
	if (tok == NULL || strcmp(tok, "arch/1") != 0)
		return -1;
	if ((tok = strtok_r(NULL, " ", &save)) == NULL || kv_uint(tok, "d", 65536, &v) || v < 1)
		return -1;
	a->d_model = (uint32_t)v;
	if ((tok = strtok_r(NULL, " ", &save)) == NULL || kv_uint(tok, "vocab", 1u << 22, &v) || v < 2)
		return -1;
	a->vocab = (uint32_t)v;
	if ((tok = strtok_r(NULL, " ", &save)) == NULL || kv_uint(tok, "tied", 1, &v))
		return -1;
	a->tied = (uint8_t)v;
	if ((tok = strtok_r(NULL, " ", &save)) != NULL) {
		if (kv_uint(tok, "rope_theta", 0xffffffffUL, &v) || v < 1)
			return -1;
		a->rope_theta = (uint32_t)v;
		if (strtok_r(NULL, " ", &save) != NULL)
			return -1;
	}
	return 0;
}

/* One group token: X=from<n> or X=<width>/<chmix>/conv<k>/w<n>. */
static int parse_group(op_layer *l, int i, const char *tok)
{
	int g = -1;
	for (int k = 0; k < OP_NGROUPS; k++)
		if (tok[0] == group_names[k] && tok[1] == '=')
			g = k;
	if (g < 0 || l->xowner[g] != -2)
		return -1; /* unknown or repeated group */
	const char *p = tok + 2;
	char *end;
	if (strncmp(p, "from", 4) == 0) {
		long o = strtol(p + 4, &end, 10);
		if (*end || !isdigit((unsigned char)p[4]) || o < 0 || o >= i)
			return -1;
		l->xowner[g] = (int16_t)o;
		l->wowner[g] = -1;
		return 0;
	}
	unsigned long w = strtoul(p, &end, 10);
	if (!isdigit((unsigned char)*p) || *end != '/' || w < 1 || w > (1u << 20))
		return -1;
	p = end + 1;
	const char *slash = strchr(p, '/');
	if (slash == NULL)
		return -1;
	int ch = lookup(chmix_names, OP_CH_COUNT, p, (size_t)(slash - p));
	if (ch < 0 || strncmp(slash + 1, "conv", 4) != 0)
		return -1;
	p = slash + 5;
	unsigned long k = strtoul(p, &end, 10);
	if (!isdigit((unsigned char)*p) || *end != '/' || k > 64 || k == 1)
		return -1;
	p = end + 1;
	if (*p != 'w' || !isdigit((unsigned char)p[1]))
		return -1;
	long o = strtol(p + 1, &end, 10);
	if (*end || o < 0 || o > i)
		return -1;
	l->width[g] = (uint32_t)w;
	l->proj_chmix[g] = (uint8_t)ch;
	l->conv[g] = (uint16_t)k;
	l->xowner[g] = (int16_t)i;
	l->wowner[g] = (int16_t)o;
	return 0;
}

static int parse_layer(op_arch *a, int i, char *line)
{
	op_layer *l = &a->layers[i];
	char *save = NULL, *tok = strtok_r(line, " ", &save);
	char want[16];
	snprintf(want, sizeof want, "L%d", i);
	if (tok == NULL || strcmp(tok, want) != 0)
		return -1;
	/* operator: five names joined by dots */
	if ((tok = strtok_r(NULL, " ", &save)) == NULL)
		return -1;
	static const char *const *tabs[5] = {feat_names, struct_names, mask_names, nonlin_names,
	                                     chmix_names};
	static const int ns[5] = {OP_FEAT_COUNT, OP_STRUCT_COUNT, OP_MASK_COUNT, OP_NL_COUNT,
	                          OP_CH_COUNT};
	int op[5];
	const char *p = tok;
	for (int k = 0; k < 5; k++) {
		const char *dot = k < 4 ? strchr(p, '.') : p + strlen(p);
		if (dot == NULL || (op[k] = lookup(tabs[k], ns[k], p, (size_t)(dot - p))) < 0)
			return -1;
		p = dot + 1;
	}
	l->feat = (uint8_t)op[0];
	l->structure = (uint8_t)op[1];
	l->mask = (uint8_t)op[2];
	l->nonlin = (uint8_t)op[3];
	l->chmix = (uint8_t)op[4];
	static const char *const keys[8] = {"h", "kv", "hd", "len", "inner", "state", "qkn", "rope"};
	static const unsigned long max[8] = {128, 128, 1024, 65535, 1u << 20, 1u << 16, 1, 1};
	unsigned long v[8];
	for (int k = 0; k < 8; k++)
		if ((tok = strtok_r(NULL, " ", &save)) == NULL || kv_uint(tok, keys[k], max[k], &v[k]))
			return -1;
	l->heads = (uint16_t)v[0];
	l->kv_heads = (uint16_t)v[1];
	l->head_dim = (uint16_t)v[2];
	l->len = (uint16_t)v[3];
	l->inner = (uint32_t)v[4];
	l->state = (uint32_t)v[5];
	l->qk_norm = (uint8_t)v[6];
	l->rope = (uint8_t)v[7];
	if (l->heads < 1 || l->kv_heads < 1 || l->heads % l->kv_heads || l->inner < 1)
		return -1;
	for (int k = 0; k < OP_NGROUPS; k++)
		l->xowner[k] = -2; /* not seen yet */
	while ((tok = strtok_r(NULL, " ", &save)) != NULL)
		if (parse_group(l, i, tok) < 0)
			return -1;
	for (int k = 0; k < OP_NGROUPS; k++) {
		if (l->xowner[k] == -2) {
			l->xowner[k] = l->wowner[k] = -1;
		} else if (l->xowner[k] != i) {
			/* a shared feature: same width as its owner's, which must compute it */
			const op_layer *o = &a->layers[l->xowner[k]];
			if (o->xowner[k] != l->xowner[k])
				return -1;
			l->width[k] = o->width[k];
			l->conv[k] = o->conv[k];
			l->proj_chmix[k] = o->proj_chmix[k];
		} else if (l->wowner[k] != i) {
			/* shared weights must have the owner's shape */
			const op_layer *o = &a->layers[l->wowner[k]];
			if (o->xowner[k] != l->wowner[k] || o->width[k] != l->width[k] ||
			    o->conv[k] != l->conv[k] || o->proj_chmix[k] != l->proj_chmix[k])
				return -1;
		}
	}
	return 0;
}

int op_arch_parse(op_arch *out, const char *text, const char *source, tl_err *err)
{
	memset(out, 0, sizeof *out);
	const char *p = text;
	int lineno = 0;
	char line[1024];
	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);
		lineno++;
		if (n >= sizeof line)
			return tl_err_set(err, TL_EPARSE, "%s: line %d: longer than %zu characters", source,
			                  lineno, sizeof line - 1);
		memcpy(line, p, n);
		line[n] = '\0';
		p += n + (nl ? 1 : 0);
		if (n == 0)
			continue;
		int rc;
		if (lineno == 1) {
			rc = parse_header(out, line);
		} else {
			if (out->n_layers >= OP_MAX_LAYERS)
				return tl_err_set(err, TL_EPARSE, "%s: line %d: more than %d layers", source,
				                  lineno, OP_MAX_LAYERS);
			rc = parse_layer(out, out->n_layers, line);
			if (rc == 0)
				out->n_layers++;
		}
		if (rc < 0)
			return tl_err_set(err, TL_EPARSE,
			                  "%s: line %d: not a valid %s line (the file is written by "
			                  "tailor build; rebuild it)", source, lineno,
			                  lineno == 1 ? "'arch/1' header" : "layer");
	}
	if (lineno == 0)
		return tl_err_set(err, TL_EPARSE, "%s: empty architecture", source);
	if (out->n_layers == 0)
		return tl_err_set(err, TL_EPARSE, "%s: no layers", source);
	return 0;
}
