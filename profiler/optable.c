/*
 * profiler/optable.c: operator latency tables and the predictor (see
 * optable.h).
 */
#include "optable.h"

#include <cJSON.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char group_names[OP_NGROUPS] = {'C', 'B', 'V', 'A'};

/* ---- keys ------------------------------------------------------------------------ */

int prof_layer_key(const op_arch *a, int i, char *buf, size_t n, tl_err *err)
{
	const op_layer *l = &a->layers[i];
	tl_sb sb = {0};
	tl_sb_printf(&sb, "%s.%s.%s.%s.%s h=%u kv=%u hd=%u len=%u inner=%u state=%u qkn=%u rope=%u",
	             op_feat_name(l->feat), op_struct_name(l->structure), op_mask_name(l->mask),
	             op_nonlin_name(l->nonlin), op_chmix_name(l->chmix), l->heads, l->kv_heads, l->head_dim,
	             l->len, l->inner, l->state, l->qk_norm, l->rope);
	for (int g = 0; g < OP_NGROUPS; g++) {
		if (l->xowner[g] < 0)
			continue;
		const char *ch = op_chmix_name(l->proj_chmix[g]);
		if (l->xowner[g] != i)
			tl_sb_printf(&sb, " %c=xsh%u/%s/conv%u", group_names[g], l->width[g], ch, l->conv[g]);
		else
			tl_sb_printf(&sb, " %c=%u/%s/conv%u/%s", group_names[g], l->width[g], ch, l->conv[g],
			             l->wowner[g] == i ? "w" : "wsh");
	}
	char *s = tl_sb_take(&sb);
	if (s == NULL)
		return tl_err_set(err, TL_ENOMEM, "operator table: out of memory");
	size_t len = strlen(s);
	if (len + 1 > n) {
		free(s);
		return tl_err_set(err, TL_EINVAL, "operator table: layer %d: key longer than %zu "
		                  "characters", i, n - 1);
	}
	memcpy(buf, s, len + 1);
	free(s);
	return 0;
}

int prof_key_is_mixer(const char *key)
{
	const char *dot = strchr(key, '.');
	return !(dot && strncmp(dot + 1, "diagonal.", 9) == 0);
}

static bool key_shares(const char *key)
{
	return strstr(key, "/wsh") != NULL || strstr(key, "=xsh") != NULL;
}

/* The key of the layer a sharing layer takes from: the same configuration
 * owning everything. */
static void key_owner(const char *key, char *out, size_t n)
{
	size_t o = 0;
	for (const char *p = key; *p && o + 1 < n;) {
		if (strncmp(p, "/wsh", 4) == 0 && (p[4] == ' ' || p[4] == '\0')) {
			out[o++] = '/';
			if (o + 1 < n)
				out[o++] = 'w';
			p += 4;
		} else if (strncmp(p, "=xsh", 4) == 0) {
			/* "=xsh<w>/<ch>/conv<k>" -> "=<w>/<ch>/conv<k>/w" */
			out[o++] = '=';
			p += 4;
			while (*p && *p != ' ' && o + 1 < n)
				out[o++] = *p++;
			if (o + 2 < n) {
				out[o++] = '/';
				out[o++] = 'w';
			}
		} else {
			out[o++] = *p++;
		}
	}
	out[o] = '\0';
}

/* The arch line of key at layer index i, with sharing resolved to layer
 * owner (ignored when the key shares nothing). */
static int key_line(tl_sb *sb, const char *key, int i, int owner)
{
	tl_sb_printf(sb, "\nL%d ", i);
	for (const char *p = key; *p;) {
		if (strncmp(p, "/wsh", 4) == 0 && (p[4] == ' ' || p[4] == '\0')) {
			tl_sb_printf(sb, "/w%d", owner);
			p += 4;
		} else if (*p == '/' && p[1] == 'w' && (p[2] == ' ' || p[2] == '\0')) {
			tl_sb_printf(sb, "/w%d", i);
			p += 2;
		} else if (strncmp(p, "=xsh", 4) == 0) {
			tl_sb_printf(sb, "=from%d", owner);
			p += 4;
			while (*p && *p != ' ')
				p++;
		} else {
			tl_sb_printf(sb, "%c", *p++);
		}
	}
	return 0;
}

static void arch_header(const op_arch *a, char *out, size_t n)
{
	bool rope = false;
	for (int i = 0; i < a->n_layers; i++)
		rope |= a->layers[i].rope != 0;
	if (rope)
		snprintf(out, n, "arch/1 d=%u vocab=%u tied=%u rope_theta=%u", a->d_model, a->vocab,
		         a->tied, a->rope_theta);
	else
		snprintf(out, n, "arch/1 d=%u vocab=%u tied=%u", a->d_model, a->vocab, a->tied);
}

/* Compare headers on d, vocab and tied (the rope theta of an arch without
 * rope layers is not written). */
static bool header_same(const char *x, const char *y)
{
	const char *rx = strstr(x, " rope_theta"), *ry = strstr(y, " rope_theta");
	size_t nx = rx ? (size_t)(rx - x) : strlen(x), ny = ry ? (size_t)(ry - y) : strlen(y);
	while (nx && x[nx - 1] == ' ')
		nx--;
	while (ny && y[ny - 1] == ' ')
		ny--;
	return nx == ny && strncmp(x, y, nx) == 0;
}

int prof_keyset_add_arch(prof_keyset *ks, const op_arch *a, tl_err *err)
{
	char hdr[160], key[PROF_KEY_MAX];
	arch_header(a, hdr, sizeof hdr);
	if (ks->archs == 0 || (strstr(hdr, "rope_theta") && !strstr(ks->header, "rope_theta")))
		tl_strlcpy(ks->header, hdr, sizeof ks->header);
	else if (!header_same(hdr, ks->header))
		return tl_err_set(err, TL_EINVAL, "operator table: '%s' differs from '%s': a table "
		                  "covers one d_model and vocabulary (profile a space with one width)",
		                  hdr, ks->header);
	for (int i = 0; i < a->n_layers; i++) {
		if (prof_layer_key(a, i, key, sizeof key, err) < 0)
			return err->code;
		size_t k = 0;
		while (k < ks->n && strcmp(ks->keys[k], key) != 0)
			k++;
		if (k == ks->n) {
			if (ks->n == ks->cap) {
				size_t cap = ks->cap ? ks->cap * 2 : 32;
				char **nk = realloc(ks->keys, cap * sizeof *nk);
				if (nk)
					ks->keys = nk;
				int64_t *nc = nk ? realloc(ks->count, cap * sizeof *nc) : NULL;
				if (nc == NULL)
					return tl_err_set(err, TL_ENOMEM, "operator table: out of memory");
				ks->count = nc;
				ks->cap = cap;
			}
			if ((ks->keys[k] = strdup(key)) == NULL)
				return tl_err_set(err, TL_ENOMEM, "operator table: out of memory");
			ks->count[k] = 0;
			ks->n++;
		}
		ks->count[k]++;
	}
	ks->archs++;
	ks->layers += a->n_layers;
	return 0;
}

void prof_keyset_free(prof_keyset *ks)
{
	for (size_t i = 0; i < ks->n; i++)
		free(ks->keys[i]);
	free(ks->keys);
	free(ks->count);
	memset(ks, 0, sizeof *ks);
}

/* ---- the plan ---------------------------------------------------------------------- */

/* A queue of units: a key, preceded by its owner's key when it shares. */
typedef struct unit {
	const char *key;
	char owner[PROF_KEY_MAX]; /* "" when it shares nothing */
} unit;

typedef struct uqueue {
	unit *u;
	size_t n, at;
	bool wrapped;
} uqueue;

static int uqueue_build(uqueue *q, const prof_keyset *ks, int mixers, int instances)
{
	size_t m = 0;
	for (size_t k = 0; k < ks->n; k++)
		m += prof_key_is_mixer(ks->keys[k]) == mixers;
	q->u = calloc(m * (size_t)instances + 1, sizeof *q->u);
	if (q->u == NULL)
		return TL_ENOMEM;
	for (int r = 0; r < instances; r++)
		for (size_t k = 0; k < ks->n; k++) {
			if (prof_key_is_mixer(ks->keys[k]) != mixers)
				continue;
			unit *u = &q->u[q->n++];
			u->key = ks->keys[k];
			if (key_shares(u->key))
				key_owner(u->key, u->owner, sizeof u->owner);
		}
	return 0;
}

/* Place the next unit: its owner (when it shares) and itself. */
static void place(tl_sb *sb, uqueue *q, int *nl)
{
	unit *u = &q->u[q->at];
	int owner = *nl;
	if (u->owner[0]) {
		key_line(sb, u->owner, (*nl)++, 0);
	}
	key_line(sb, u->key, (*nl)++, owner);
	if (++q->at == q->n) {
		q->at = 0;
		q->wrapped = true;
	}
}

int prof_plan(char ***archs, size_t *n, const prof_keyset *ks, int instances, int layers,
              tl_err *err)
{
	*archs = NULL;
	*n = 0;
	if (ks->n == 0 || ks->archs == 0)
		return tl_err_set(err, TL_EINVAL, "operator table: no layer to profile");
	if (instances < 1)
		return tl_err_set(err, TL_EINVAL, "operator table: instances %d: at least 1", instances);
	if (layers <= 0) {
		layers = (int)((ks->layers + ks->archs / 2) / ks->archs);
		layers += layers % 2;
	}
	if (layers < 2)
		layers = 2;
	if (layers > OP_MAX_LAYERS - 4)
		layers = OP_MAX_LAYERS - 4;
	uqueue mq = {0}, cq = {0};
	size_t cap = 0;
	char **out = NULL;
	int rc = 0;
	if (uqueue_build(&mq, ks, 1, instances) < 0 || uqueue_build(&cq, ks, 0, instances) < 0) {
		rc = tl_err_set(err, TL_ENOMEM, "operator table: out of memory");
		goto done;
	}
	while (!((mq.n == 0 || mq.wrapped) && (cq.n == 0 || cq.wrapped))) {
		tl_sb sb = {0};
		int nl = 0;
		tl_sb_printf(&sb, "%s", ks->header);
		/* a unit that shares takes two slots of its kind, so a mixer and a
		 * channel mixer still alternate only roughly there */
		while (nl < layers) {
			if (mq.n)
				place(&sb, &mq, &nl);
			if (cq.n && nl < layers + 2)
				place(&sb, &cq, &nl);
		}
		tl_sb_printf(&sb, "\n");
		char *text = tl_sb_take(&sb);
		if (*n == cap) {
			cap = cap ? cap * 2 : 8;
			char **na = realloc(out, cap * sizeof *na);
			if (na == NULL) {
				free(text);
				rc = tl_err_set(err, TL_ENOMEM, "operator table: out of memory");
				goto done;
			}
			out = na;
		}
		if (text == NULL) {
			rc = tl_err_set(err, TL_ENOMEM, "operator table: out of memory");
			goto done;
		}
		out[(*n)++] = text;
	}
done:
	free(mq.u);
	free(cq.u);
	if (rc < 0) {
		for (size_t i = 0; i < *n; i++)
			free(out[i]);
		free(out);
		*n = 0;
		return rc;
	}
	*archs = out;
	return 0;
}

/* ---- tables ------------------------------------------------------------------------- */

typedef struct dvec {
	double *v;
	size_t n, cap;
} dvec;

static int dvec_push(dvec *d, double x)
{
	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 8;
		double *nv = realloc(d->v, cap * sizeof *nv);
		if (nv == NULL)
			return TL_ENOMEM;
		d->v = nv;
		d->cap = cap;
	}
	d->v[d->n++] = x;
	return 0;
}

typedef struct kentry {
	char *key;
	int64_t instances;
	dvec *pre, *dec, *state; /* per shape: the samples                   */
	dvec wb, ab;             /* weight and activation bytes (any shape)  */
	/* finished, per shape: */
	double *prefill, *decode, *cv, *sbytes;
	double wbytes, abytes;
} kentry;

typedef struct runrec {
	size_t shape;
	double ttft, decode, rss, ws, act;
	int *keys;
	int nl;
} runrec;

struct prof_table {
	char header[160];
	prof_shape *shapes;
	size_t n_shapes;
	kentry *k;
	size_t nk, capk;
	runrec *runs;
	size_t nr, capr;
	prof_fixed *fixed;
	char *ref_arch;          /* the reference model (prof_table_set_ref)   */
	double *ref_ttft, *ref_decode; /* its figures per shape              */
	bool finished;
};

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double median_of(const double *v, size_t n)
{
	if (n == 0)
		return NAN;
	double *c = malloc(n * sizeof *c);
	if (c == NULL)
		return NAN;
	memcpy(c, v, n * sizeof *c);
	qsort(c, n, sizeof *c, cmp_d);
	double m = n % 2 ? c[n / 2] : 0.5 * (c[n / 2 - 1] + c[n / 2]);
	free(c);
	return m;
}

static int add_key(prof_table *t, const char *key, tl_err *err)
{
	if (t->nk == t->capk) {
		size_t cap = t->capk ? t->capk * 2 : 32;
		kentry *nk = realloc(t->k, cap * sizeof *nk);
		if (nk == NULL)
			return tl_err_set(err, TL_ENOMEM, "operator table: out of memory");
		t->k = nk;
		t->capk = cap;
	}
	kentry *e = &t->k[t->nk];
	memset(e, 0, sizeof *e);
	size_t S = t->n_shapes;
	e->key = strdup(key);
	e->pre = calloc(S, sizeof *e->pre);
	e->dec = calloc(S, sizeof *e->dec);
	e->state = calloc(S, sizeof *e->state);
	e->prefill = calloc(S, sizeof(double));
	e->decode = calloc(S, sizeof(double));
	e->cv = calloc(S, sizeof(double));
	e->sbytes = calloc(S, sizeof(double));
	t->nk++;
	if (!e->key || !e->pre || !e->dec || !e->state || !e->prefill || !e->decode || !e->cv ||
	    !e->sbytes)
		return tl_err_set(err, TL_ENOMEM, "operator table: out of memory");
	for (size_t s = 0; s < S; s++)
		e->prefill[s] = e->decode[s] = e->cv[s] = e->sbytes[s] = NAN;
	e->wbytes = e->abytes = NAN;
	return 0;
}

static long find_key(const prof_table *t, const char *key)
{
	for (size_t k = 0; k < t->nk; k++)
		if (strcmp(t->k[k].key, key) == 0)
			return (long)k;
	return -1;
}

int prof_table_create(prof_table **out, const prof_keyset *ks, const prof_shape *shapes,
                      size_t n, tl_err *err)
{
	*out = NULL;
	if (n < 1 || n > PROF_MAX_SHAPES)
		return tl_err_set(err, TL_EINVAL, "operator table: %zu shapes (1..%d)", n,
		                  PROF_MAX_SHAPES);
	prof_table *t = calloc(1, sizeof *t);
	if (t == NULL || (t->shapes = calloc(n, sizeof *t->shapes)) == NULL ||
	    (t->fixed = calloc(n, sizeof *t->fixed)) == NULL) {
		prof_table_free(t);
		return tl_err_set(err, TL_ENOMEM, "operator table: out of memory");
	}
	memcpy(t->shapes, shapes, n * sizeof *shapes);
	t->n_shapes = n;
	tl_strlcpy(t->header, ks ? ks->header : "", sizeof t->header);
	for (size_t k = 0; ks && k < ks->n; k++)
		if (add_key(t, ks->keys[k], err) < 0) {
			prof_table_free(t);
			return err->code;
		}
	*out = t;
	return 0;
}

void prof_table_free(prof_table *t)
{
	if (t == NULL)
		return;
	for (size_t k = 0; k < t->nk; k++) {
		kentry *e = &t->k[k];
		for (size_t s = 0; s < t->n_shapes; s++) {
			if (e->pre)
				free(e->pre[s].v);
			if (e->dec)
				free(e->dec[s].v);
			if (e->state)
				free(e->state[s].v);
		}
		free(e->key);
		free(e->pre);
		free(e->dec);
		free(e->state);
		free(e->wb.v);
		free(e->ab.v);
		free(e->prefill);
		free(e->decode);
		free(e->cv);
		free(e->sbytes);
	}
	for (size_t r = 0; r < t->nr; r++)
		free(t->runs[r].keys);
	free(t->runs);
	free(t->k);
	free(t->shapes);
	free(t->fixed);
	free(t->ref_arch);
	free(t->ref_ttft);
	free(t->ref_decode);
	free(t);
}

int prof_table_set_ref(prof_table *t, const char *arch_text, const double *ttft,
                       const double *decode, tl_err *err)
{
	free(t->ref_arch);
	free(t->ref_ttft);
	free(t->ref_decode);
	t->ref_arch = strdup(arch_text);
	t->ref_ttft = malloc(t->n_shapes * sizeof(double));
	t->ref_decode = malloc(t->n_shapes * sizeof(double));
	if (!t->ref_arch || !t->ref_ttft || !t->ref_decode)
		return tl_err_set(err, TL_ENOMEM, "operator table: out of memory");
	memcpy(t->ref_ttft, ttft, t->n_shapes * sizeof(double));
	memcpy(t->ref_decode, decode, t->n_shapes * sizeof(double));
	return 0;
}

const char *prof_table_ref(const prof_table *t, size_t shape, double *ttft, double *decode)
{
	if (t->ref_arch == NULL || shape >= t->n_shapes)
		return NULL;
	*ttft = t->ref_ttft[shape];
	*decode = t->ref_decode[shape];
	return t->ref_arch;
}

int prof_table_observe(prof_table *t, size_t shape, const op_arch *a, const prof_obs *o,
                       tl_err *err)
{
	char hdr[160], key[PROF_KEY_MAX];
	if (shape >= t->n_shapes)
		return tl_err_set(err, TL_EINVAL, "operator table: shape %zu of %zu", shape,
		                  t->n_shapes);
	arch_header(a, hdr, sizeof hdr);
	if (t->header[0] == '\0')
		tl_strlcpy(t->header, hdr, sizeof t->header);
	else if (!header_same(hdr, t->header))
		return tl_err_set(err, TL_EINVAL, "operator table: '%s' is not the table's '%s'", hdr,
		                  t->header);
	if (t->nr == t->capr) {
		size_t cap = t->capr ? t->capr * 2 : 16;
		runrec *nr = realloc(t->runs, cap * sizeof *nr);
		if (nr == NULL)
			return tl_err_set(err, TL_ENOMEM, "operator table: out of memory");
		t->runs = nr;
		t->capr = cap;
	}
	runrec *r = &t->runs[t->nr];
	memset(r, 0, sizeof *r);
	r->keys = malloc((size_t)a->n_layers * sizeof *r->keys);
	if (r->keys == NULL)
		return tl_err_set(err, TL_ENOMEM, "operator table: out of memory");
	t->nr++;
	r->shape = shape;
	r->ttft = o->ttft_ms;
	r->decode = o->decode_ms;
	r->rss = o->peak_rss_bytes;
	r->nl = a->n_layers;
	for (int i = 0; i < a->n_layers; i++) {
		if (prof_layer_key(a, i, key, sizeof key, err) < 0)
			return err->code;
		long k = find_key(t, key);
		if (k < 0) {
			if (add_key(t, key, err) < 0)
				return err->code;
			k = (long)t->nk - 1;
		}
		kentry *e = &t->k[k];
		r->keys[i] = (int)k;
		e->instances++;
		if (dvec_push(&e->pre[shape], o->layer_prefill_ms[i]) < 0 ||
		    dvec_push(&e->dec[shape], o->layer_decode_ms[i]) < 0 ||
		    dvec_push(&e->state[shape], o->state_bytes[i]) < 0 ||
		    dvec_push(&e->wb, o->weight_bytes[i]) < 0 || dvec_push(&e->ab, o->act_bytes[i]) < 0)
			return tl_err_set(err, TL_ENOMEM, "operator table: out of memory");
		r->ws += o->weight_bytes[i] + o->state_bytes[i];
		if (o->act_bytes[i] > r->act)
			r->act = o->act_bytes[i];
	}
	t->finished = false;
	return 0;
}

static double cv_of(const double *v, size_t n)
{
	if (n < 2)
		return NAN;
	double m = 0, ss = 0;
	for (size_t i = 0; i < n; i++)
		m += v[i];
	m /= (double)n;
	for (size_t i = 0; i < n; i++)
		ss += (v[i] - m) * (v[i] - m);
	return m > 0 ? sqrt(ss / (double)(n - 1)) / m : NAN;
}

int prof_table_finish(prof_table *t, tl_err *err)
{
	size_t S = t->n_shapes;
	for (size_t k = 0; k < t->nk; k++) {
		kentry *e = &t->k[k];
		for (size_t s = 0; s < S; s++) {
			if (e->dec[s].n == 0)
				return tl_err_set(err, TL_EINVAL, "operator table: layer '%s': no instance "
				                  "measured at prompt %lld, gen %lld, depth %lld", e->key,
				                  (long long)t->shapes[s].prompt, (long long)t->shapes[s].gen,
				                  (long long)t->shapes[s].depth);
			e->prefill[s] = median_of(e->pre[s].v, e->pre[s].n);
			e->decode[s] = median_of(e->dec[s].v, e->dec[s].n);
			e->cv[s] = cv_of(e->dec[s].v, e->dec[s].n);
			e->sbytes[s] = median_of(e->state[s].v, e->state[s].n);
		}
		e->wbytes = median_of(e->wb.v, e->wb.n);
		e->abytes = median_of(e->ab.v, e->ab.n);
	}
	for (size_t s = 0; s < S; s++) {
		dvec fp = {0}, fd = {0};
		double sx = 0, sy = 0, sxx = 0, sxy = 0;
		size_t nrss = 0;
		int64_t runs = 0;
		for (size_t r = 0; r < t->nr; r++) {
			const runrec *R = &t->runs[r];
			if (R->shape != s)
				continue;
			runs++;
			double sp = 0, sd = 0;
			for (int i = 0; i < R->nl; i++) {
				sp += t->k[R->keys[i]].prefill[s];
				sd += t->k[R->keys[i]].decode[s];
			}
			if (dvec_push(&fp, R->ttft - sp) < 0 || dvec_push(&fd, R->decode - sd) < 0) {
				free(fp.v);
				free(fd.v);
				return tl_err_set(err, TL_ENOMEM, "operator table: out of memory");
			}
			if (isfinite(R->rss)) {
				double x = R->act, y = R->rss - R->ws;
				sx += x;
				sy += y;
				sxx += x * x;
				sxy += x * y;
				nrss++;
			}
		}
		if (runs == 0) {
			free(fp.v);
			free(fd.v);
			return tl_err_set(err, TL_EINVAL, "operator table: no run at prompt %lld, gen %lld, "
			                  "depth %lld", (long long)t->shapes[s].prompt,
			                  (long long)t->shapes[s].gen, (long long)t->shapes[s].depth);
		}
		prof_fixed *f = &t->fixed[s];
		f->runs = runs;
		f->prefill_ms = median_of(fp.v, fp.n);
		f->decode_ms = median_of(fd.v, fd.n);
		free(fp.v);
		free(fd.v);
		/* y = c + alpha x by least squares; alpha 1 (every activation
		 * byte touched) when the runs do not tell (one run, or the same
		 * activation need in all) */
		f->rss_alpha = 1;
		f->rss_bytes = NAN;
		if (nrss > 0) {
			double n = (double)nrss, var = sxx - sx * sx / n;
			if (nrss >= 3 && var > 1e-6 * (sxx > 1 ? sxx : 1)) {
				double alpha = (sxy - sx * sy / n) / var;
				if (alpha >= 0 && alpha <= 1.5)
					f->rss_alpha = alpha;
			}
			f->rss_bytes = (sy - f->rss_alpha * sx) / n;
		}
	}
	t->finished = true;
	return 0;
}

/* ---- reading --------------------------------------------------------------------------- */

size_t prof_table_n_keys(const prof_table *t)
{
	return t->nk;
}
size_t prof_table_n_shapes(const prof_table *t)
{
	return t->n_shapes;
}
prof_shape prof_table_shape(const prof_table *t, size_t s)
{
	return t->shapes[s];
}
const char *prof_table_header(const prof_table *t)
{
	return t->header;
}

void prof_table_entry(const prof_table *t, size_t key, size_t shape, prof_entry *out)
{
	const kentry *e = &t->k[key];
	out->key = e->key;
	out->instances = e->instances;
	out->prefill_ms = e->prefill[shape];
	out->decode_ms = e->decode[shape];
	out->decode_cv = e->cv[shape];
	out->weight_bytes = e->wbytes;
	out->state_bytes = e->sbytes[shape];
	out->act_bytes = e->abytes;
}

void prof_table_fixed(const prof_table *t, size_t shape, prof_fixed *out)
{
	*out = t->fixed[shape];
}

/* ---- JSON -------------------------------------------------------------------------------- */

static cJSON *num_or_null(double v)
{
	return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull();
}

char *prof_table_json(const prof_table *t)
{
	cJSON *j = cJSON_CreateObject();
	if (j == NULL)
		return NULL;
	cJSON_AddStringToObject(j, "format", PROF_OPTABLE_FORMAT);
	cJSON_AddStringToObject(j, "header", t->header);
	cJSON *sh = cJSON_AddArrayToObject(j, "shapes");
	for (size_t s = 0; sh && s < t->n_shapes; s++) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddItemToArray(sh, o);
		cJSON_AddNumberToObject(o, "prompt", (double)t->shapes[s].prompt);
		cJSON_AddNumberToObject(o, "gen", (double)t->shapes[s].gen);
		cJSON_AddNumberToObject(o, "depth", (double)t->shapes[s].depth);
		cJSON_AddItemToObject(o, "fixed_prefill_ms", num_or_null(t->fixed[s].prefill_ms));
		cJSON_AddItemToObject(o, "fixed_decode_ms", num_or_null(t->fixed[s].decode_ms));
		cJSON_AddItemToObject(o, "rss_bytes", num_or_null(t->fixed[s].rss_bytes));
		cJSON_AddItemToObject(o, "rss_alpha", num_or_null(t->fixed[s].rss_alpha));
		cJSON_AddNumberToObject(o, "runs", (double)t->fixed[s].runs);
	}
	if (t->ref_arch) {
		cJSON *ref = cJSON_AddObjectToObject(j, "reference");
		cJSON_AddStringToObject(ref, "arch", t->ref_arch);
		cJSON *rt = cJSON_AddArrayToObject(ref, "ttft_ms");
		cJSON *rd = cJSON_AddArrayToObject(ref, "decode_ms");
		for (size_t s = 0; rt && rd && s < t->n_shapes; s++) {
			cJSON_AddItemToArray(rt, num_or_null(t->ref_ttft[s]));
			cJSON_AddItemToArray(rd, num_or_null(t->ref_decode[s]));
		}
	}
	cJSON *ks = cJSON_AddArrayToObject(j, "keys");
	for (size_t k = 0; ks && k < t->nk; k++) {
		const kentry *e = &t->k[k];
		cJSON *o = cJSON_CreateObject();
		cJSON_AddItemToArray(ks, o);
		cJSON_AddStringToObject(o, "key", e->key);
		cJSON_AddNumberToObject(o, "instances", (double)e->instances);
		cJSON_AddItemToObject(o, "weight_bytes", num_or_null(e->wbytes));
		cJSON_AddItemToObject(o, "act_bytes", num_or_null(e->abytes));
		const char *names[4] = {"prefill_ms", "decode_ms", "decode_cv", "state_bytes"};
		const double *vals[4] = {e->prefill, e->decode, e->cv, e->sbytes};
		for (int f = 0; f < 4; f++) {
			cJSON *arr = cJSON_AddArrayToObject(o, names[f]);
			for (size_t s = 0; arr && s < t->n_shapes; s++)
				cJSON_AddItemToArray(arr, num_or_null(vals[f][s]));
		}
	}
	char *out = cJSON_PrintUnformatted(j);
	cJSON_Delete(j);
	return out;
}

/* A number (null: NaN when nullable). */
static int jnum(double *out, const cJSON *o, const char *key, bool nullable, const char *src,
                const char *path, tl_err *err)
{
	const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
	if (cJSON_IsNumber(x)) {
		*out = x->valuedouble;
		return 0;
	}
	if (nullable && cJSON_IsNull(x)) {
		*out = NAN;
		return 0;
	}
	return tl_err_set(err, TL_EPARSE, "%s: %s.%s: %s", src, path, key,
	                  x ? "not a number" : "missing");
}

int prof_table_from_json(prof_table **out, const char *json, const char *source, tl_err *err)
{
	*out = NULL;
	cJSON *j = cJSON_Parse(json);
	prof_table *t = NULL;
	int rc = TL_EPARSE;
	char path[64];
	if (!cJSON_IsObject(j)) {
		tl_err_set(err, TL_EPARSE, "%s: not a JSON object", source);
		goto fail;
	}
	const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(j, "format");
	if (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, PROF_OPTABLE_FORMAT) != 0) {
		tl_err_set(err, TL_EVERSION, "%s: $.format: not '%s' (a table of another tailor: "
		           "profile the device again)", source, PROF_OPTABLE_FORMAT);
		rc = TL_EVERSION;
		goto fail;
	}
	const cJSON *hdr = cJSON_GetObjectItemCaseSensitive(j, "header");
	const cJSON *sh = cJSON_GetObjectItemCaseSensitive(j, "shapes");
	const cJSON *ks = cJSON_GetObjectItemCaseSensitive(j, "keys");
	int ns = cJSON_GetArraySize(sh);
	if (!cJSON_IsString(hdr) || !cJSON_IsArray(sh) || !cJSON_IsArray(ks) || ns < 1 ||
	    ns > PROF_MAX_SHAPES) {
		tl_err_set(err, TL_EPARSE, "%s: $: needs header, shapes (1..%d) and keys", source,
		           PROF_MAX_SHAPES);
		goto fail;
	}
	prof_shape shapes[PROF_MAX_SHAPES];
	prof_fixed fixed[PROF_MAX_SHAPES];
	for (int s = 0; s < ns; s++) {
		const cJSON *o = cJSON_GetArrayItem(sh, s);
		double p = 0, g = 0, d = 0, runs = 0;
		snprintf(path, sizeof path, "$.shapes[%d]", s);
		if (jnum(&p, o, "prompt", false, source, path, err) < 0 ||
		    jnum(&g, o, "gen", false, source, path, err) < 0 ||
		    jnum(&d, o, "depth", false, source, path, err) < 0 ||
		    jnum(&fixed[s].prefill_ms, o, "fixed_prefill_ms", true, source, path, err) < 0 ||
		    jnum(&fixed[s].decode_ms, o, "fixed_decode_ms", true, source, path, err) < 0 ||
		    jnum(&fixed[s].rss_bytes, o, "rss_bytes", true, source, path, err) < 0 ||
		    jnum(&fixed[s].rss_alpha, o, "rss_alpha", true, source, path, err) < 0 ||
		    jnum(&runs, o, "runs", false, source, path, err) < 0)
			goto fail;
		if (!(p >= 1 && g >= 1 && d >= 0)) {
			tl_err_set(err, TL_EPARSE, "%s: %s: prompt and gen >= 1, depth >= 0", source, path);
			goto fail;
		}
		shapes[s] = (prof_shape){(int64_t)p, (int64_t)g, (int64_t)d};
		fixed[s].runs = (int64_t)runs;
	}
	if ((rc = prof_table_create(&t, NULL, shapes, (size_t)ns, err)) < 0)
		goto fail;
	rc = TL_EPARSE;
	tl_strlcpy(t->header, hdr->valuestring, sizeof t->header);
	memcpy(t->fixed, fixed, (size_t)ns * sizeof *fixed);
	const cJSON *ref = cJSON_GetObjectItemCaseSensitive(j, "reference");
	if (ref) {
		const cJSON *ra = cJSON_GetObjectItemCaseSensitive(ref, "arch");
		const cJSON *rt = cJSON_GetObjectItemCaseSensitive(ref, "ttft_ms");
		const cJSON *rd = cJSON_GetObjectItemCaseSensitive(ref, "decode_ms");
		if (!cJSON_IsString(ra) || cJSON_GetArraySize(rt) != ns || cJSON_GetArraySize(rd) != ns) {
			tl_err_set(err, TL_EPARSE, "%s: $.reference: needs arch and %d ttft_ms and "
			           "decode_ms", source, ns);
			goto fail;
		}
		double vt[PROF_MAX_SHAPES], vd[PROF_MAX_SHAPES];
		for (int s = 0; s < ns; s++) {
			const cJSON *x = cJSON_GetArrayItem(rt, s), *y = cJSON_GetArrayItem(rd, s);
			vt[s] = cJSON_IsNumber(x) ? x->valuedouble : NAN;
			vd[s] = cJSON_IsNumber(y) ? y->valuedouble : NAN;
		}
		if ((rc = prof_table_set_ref(t, ra->valuestring, vt, vd, err)) < 0)
			goto fail;
		rc = TL_EPARSE;
	}
	int nk = cJSON_GetArraySize(ks);
	for (int k = 0; k < nk; k++) {
		const cJSON *o = cJSON_GetArrayItem(ks, k);
		const cJSON *key = cJSON_GetObjectItemCaseSensitive(o, "key");
		snprintf(path, sizeof path, "$.keys[%d]", k);
		if (!cJSON_IsString(key) || strlen(key->valuestring) >= PROF_KEY_MAX) {
			tl_err_set(err, TL_EPARSE, "%s: %s.key: missing or too long", source, path);
			goto fail;
		}
		if ((rc = add_key(t, key->valuestring, err)) < 0)
			goto fail;
		rc = TL_EPARSE;
		kentry *e = &t->k[t->nk - 1];
		double inst = 0;
		if (jnum(&inst, o, "instances", false, source, path, err) < 0 ||
		    jnum(&e->wbytes, o, "weight_bytes", true, source, path, err) < 0 ||
		    jnum(&e->abytes, o, "act_bytes", true, source, path, err) < 0)
			goto fail;
		e->instances = (int64_t)inst;
		const char *names[4] = {"prefill_ms", "decode_ms", "decode_cv", "state_bytes"};
		double *vals[4] = {e->prefill, e->decode, e->cv, e->sbytes};
		for (int f = 0; f < 4; f++) {
			const cJSON *arr = cJSON_GetObjectItemCaseSensitive(o, names[f]);
			if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) != ns) {
				tl_err_set(err, TL_EPARSE, "%s: %s.%s: not an array of %d values", source, path,
				           names[f], ns);
				goto fail;
			}
			for (int s = 0; s < ns; s++) {
				const cJSON *x = cJSON_GetArrayItem(arr, s);
				if (cJSON_IsNumber(x))
					vals[f][s] = x->valuedouble;
				else if (cJSON_IsNull(x))
					vals[f][s] = NAN;
				else {
					tl_err_set(err, TL_EPARSE, "%s: %s.%s[%d]: not a number", source, path,
					           names[f], s);
					goto fail;
				}
			}
		}
	}
	t->finished = true;
	cJSON_Delete(j);
	*out = t;
	return 0;
fail:
	cJSON_Delete(j);
	prof_table_free(t);
	return rc < 0 ? rc : TL_EPARSE;
}

/* ---- the predictor -------------------------------------------------------------------------- */

/* Two shapes s0, s1 and a weight w (value = (1-w) v[s0] + w v[s1]) for x
 * among the shapes that pass `same` with sh, by x_of; exact hits first. */
typedef double (*xfun)(const prof_shape *s);
typedef bool (*sfun)(const prof_shape *a, const prof_shape *b);

static double x_decode(const prof_shape *s)
{
	return (double)s->depth + (double)s->prompt + 0.5 * (double)s->gen;
}
static double x_prefill(const prof_shape *s)
{
	return (double)s->prompt;
}
static double x_ctx(const prof_shape *s)
{
	return (double)(s->depth + s->prompt + s->gen);
}
static bool same_any(const prof_shape *a, const prof_shape *b)
{
	(void)a;
	(void)b;
	return true;
}
static bool same_depth(const prof_shape *a, const prof_shape *b)
{
	return a->depth == b->depth;
}
static double x_depth(const prof_shape *s)
{
	return (double)s->depth;
}
static bool same_prompt(const prof_shape *a, const prof_shape *b)
{
	return a->prompt == b->prompt;
}

static int bracket(const prof_table *t, const prof_shape *sh, xfun xf, sfun same, size_t *s0,
                   size_t *s1, double *w)
{
	double x = xf(sh);
	long lo = -1, hi = -1;
	for (size_t s = 0; s < t->n_shapes; s++) {
		if (!same(&t->shapes[s], sh))
			continue;
		double xs = xf(&t->shapes[s]);
		if (xs == x) {
			*s0 = *s1 = s;
			*w = 0;
			return 0;
		}
		if (xs < x && (lo < 0 || xs > xf(&t->shapes[lo])))
			lo = (long)s;
		if (xs > x && (hi < 0 || xs < xf(&t->shapes[hi])))
			hi = (long)s;
	}
	if (lo < 0 || hi < 0)
		return -1;
	*s0 = (size_t)lo;
	*s1 = (size_t)hi;
	double x0 = xf(&t->shapes[lo]), x1 = xf(&t->shapes[hi]);
	*w = (x - x0) / (x1 - x0);
	return 0;
}

static double lerp(const double *v, size_t s0, size_t s1, double w)
{
	return s0 == s1 ? v[s0] : (1 - w) * v[s0] + w * v[s1];
}

int prof_predict(const prof_table *t, const op_arch *a, const prof_shape *sh, prof_pred *out,
                 tl_err *err)
{
	char hdr[160], key[PROF_KEY_MAX], owner[PROF_KEY_MAX];
	memset(out, 0, sizeof *out);
	if (!t->finished)
		return tl_err_set(err, TL_EINVAL, "operator table: not finished");
	arch_header(a, hdr, sizeof hdr);
	if (!header_same(hdr, t->header))
		return tl_err_set(err, TL_EINVAL, "predict: the genome's '%s' is not the table's '%s' "
		                  "(profile the device for this genome's space)", hdr, t->header);
	size_t p0 = 0, p1 = 0, d0 = 0, d1 = 0, c0 = 0, c1 = 0;
	double pw = 0, dw = 0, cw = 0;
	if ((bracket(t, sh, x_prefill, same_depth, &p0, &p1, &pw) < 0 &&
	     bracket(t, sh, x_depth, same_prompt, &p0, &p1, &pw) < 0) ||
	    bracket(t, sh, x_decode, same_any, &d0, &d1, &dw) < 0 ||
	    bracket(t, sh, x_ctx, same_any, &c0, &c1, &cw) < 0) {
		tl_sb sb = {0};
		for (size_t s = 0; s < t->n_shapes; s++)
			tl_sb_printf(&sb, "%s%lld/%lld/%lld", s ? ", " : "", (long long)t->shapes[s].prompt,
			             (long long)t->shapes[s].gen, (long long)t->shapes[s].depth);
		char *list = tl_sb_take(&sb);
		tl_err_set(err, TL_EINVAL, "predict: prompt %lld, gen %lld, depth %lld is outside the "
		           "table's shapes (prompt/gen/depth: %s): predict at one of them or profile "
		           "this shape", (long long)sh->prompt, (long long)sh->gen, (long long)sh->depth,
		           list ? list : "?");
		free(list);
		return TL_EINVAL;
	}
	if (p0 != p1 || d0 != d1 || c0 != c1)
		snprintf(out->note, sizeof out->note, "interpolated between the table's shapes");
	double ttft = (1 - pw) * t->fixed[p0].prefill_ms + (p0 == p1 ? 0 : pw * t->fixed[p1].prefill_ms);
	double dec = (1 - dw) * t->fixed[d0].decode_ms + (d0 == d1 ? 0 : dw * t->fixed[d1].decode_ms);
	double ws = 0, act = 0;
	for (int i = 0; i < a->n_layers; i++) {
		if (prof_layer_key(a, i, key, sizeof key, err) < 0)
			return err->code;
		long k = find_key(t, key);
		if (k < 0 && key_shares(key)) {
			key_owner(key, owner, sizeof owner);
			k = find_key(t, owner);
			if (k >= 0) {
				out->approximated++;
				snprintf(out->note, sizeof out->note, "%d sharing layer(s) taken as their "
				         "owner's configuration (no entry of their own)", out->approximated);
			}
		}
		if (k < 0)
			return tl_err_set(err, TL_EINVAL, "predict: layer %d ('%s') has no entry in the "
			                  "table: profile the device again (tailor device profile-ops) with "
			                  "more --samples, or with this genome's space", i, key);
		const kentry *e = &t->k[k];
		ttft += lerp(e->prefill, p0, p1, pw);
		dec += lerp(e->decode, d0, d1, dw);
		ws += e->wbytes + lerp(e->sbytes, c0, c1, cw);
		if (e->abytes > act)
			act = e->abytes;
	}
	size_t cn = cw < 0.5 ? c0 : c1; /* the fixed memory of the nearer shape */
	out->ttft_ms = ttft;
	out->decode_ms = dec;
	out->peak_rss_bytes = t->fixed[cn].rss_bytes + ws + t->fixed[cn].rss_alpha * act;
	return 0;
}

/* ---- accuracy ---------------------------------------------------------------------------- */

void prof_accuracy_compute(prof_accuracy *out, const double *pred, const double *meas, size_t n)
{
	double ss = 0, sum = 0, mx = 0;
	size_t k = 0, w5 = 0, w10 = 0;
	for (size_t i = 0; i < n; i++) {
		if (!isfinite(pred[i]) || !isfinite(meas[i]) || meas[i] <= 0)
			continue;
		double e = (pred[i] - meas[i]) / meas[i];
		ss += e * e;
		sum += e;
		if (fabs(e) > mx)
			mx = fabs(e);
		w5 += fabs(e) <= 0.05;
		w10 += fabs(e) <= 0.10;
		k++;
	}
	out->n = k;
	out->rmspe = k ? sqrt(ss / (double)k) : NAN;
	out->bias = k ? sum / (double)k : NAN;
	out->max_abs = k ? mx : NAN;
	out->within5 = k ? (double)w5 / (double)k : NAN;
	out->within10 = k ? (double)w10 / (double)k : NAN;
}
