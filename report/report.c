/*
 * report/report.c: the HTML + SVG report of a run (see report.h). Workload:
 * up to ~100k candidates; everything is read once into arrays, each plot is
 * one pass over them. The SVG is written directly, with a small axis helper
 * ("nice" ticks at 1, 2, 5 x 10^k).
 */
#include "report.h"
#include "db_runs.h"
#include "genome.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

typedef struct cand {
	const db_candidate *k;
	double v[REPORT_MAX_OBJ]; /* objective values as stored (not negated) */
	bool ok;                /* every objective present */
	bool front;
} cand;

typedef struct rep {
	FILE *o;
	int nobj;
	const report_objective *obj;
	cand *c;
	size_t nc;
	int64_t front_gen;
	double noise; /* the run's measured seed noise of val_bpb (NaN: none) */
} rep;

/* ---- helpers --------------------------------------------------------------------- */

/* s as HTML text or a quoted attribute value (either quote), also inside
 * SVG: & < > " ' as references, control characters other than tab and
 * newline dropped, and bytes that are not UTF-8 as U+FFFD, so that no
 * string from a database, an evaluator or a config can open an element or
 * leave an attribute. */
static void esc(FILE *o, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	while (p && *p) {
		unsigned char c = *p;
		if (c < 0x80) {
			switch (c) {
			case '<': fputs("&lt;", o); break;
			case '>': fputs("&gt;", o); break;
			case '&': fputs("&amp;", o); break;
			case '"': fputs("&quot;", o); break;
			case '\'': fputs("&#39;", o); break;
			default:
				if (c >= 0x20 || c == '\n' || c == '\t')
					fputc(c, o);
			}
			p++;
			continue;
		}
		/* a UTF-8 sequence: its length from the lead byte, every
		 * continuation byte 10xxxxxx, no overlong or surrogate form */
		int n = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
		bool ok = n > 0;
		for (int i = 1; ok && i < n; i++)
			ok = (p[i] & 0xc0) == 0x80;
		if (ok && n == 3)
			ok = !(c == 0xe0 && p[1] < 0xa0) && !(c == 0xed && p[1] >= 0xa0);
		if (ok && n == 4)
			ok = !(c == 0xf0 && p[1] < 0x90) && !(c == 0xf4 && p[1] >= 0x90);
		if (ok) {
			fwrite(p, 1, (size_t)n, o);
			p += n;
		} else {
			fputs("\xef\xbf\xbd", o); /* U+FFFD */
			p++;
		}
	}
}

/* The first n characters of s, escaped (hash prefixes). */
static void esc_prefix(FILE *o, const char *s, size_t n)
{
	char b[65];
	snprintf(b, sizeof b, "%.*s", (int)(n < sizeof b - 1 ? n : sizeof b - 1), s ? s : "");
	esc(o, b);
}

static void fmt_num(char *b, size_t n, double v)
{
	double a = fabs(v);
	if (a != 0 && (a >= 1e7 || a < 1e-3))
		snprintf(b, n, "%.3g", v);
	else if (a >= 1000)
		snprintf(b, n, "%.0f", v);
	else
		snprintf(b, n, "%.4g", v);
}

/* Operator colours: families share a hue (attention blues, convolutions
 * oranges, recurrences greens, linear attention purple, SwiGLU grey). */
static const char *op_color(const char *op)
{
	static const struct { const char *name, *color; } tab[] = {
		{"gqa", "#1f77b4"},       {"mha", "#4a98d3"},    {"swa", "#7fb8e6"},
		{"swa-mha", "#a9d0f0"},   {"shortconv", "#ff7f0e"}, {"hyena-x", "#f5a35c"},
		{"hyena-y", "#d9630b"},   {"hyena-se", "#ffbb78"}, {"recurrence", "#2ca02c"},
		{"linattn", "#9467bd"},   {"swiglu", "#c7c7c7"},  {"glu", "#a5a5a5"},
	};
	for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
		if (!strcmp(op, tab[i].name))
			return tab[i].color;
	/* anything else: a colour from the name */
	static const char *extra[] = {"#8c564b", "#e377c2", "#bcbd22", "#17becf", "#d62728"};
	unsigned h = 0;
	for (const char *p = op; *p; p++)
		h = h * 31u + (unsigned char)*p;
	return extra[h % 5];
}

/* Ticks at 1, 2, 5 x 10^k covering [lo, hi]. */
static int ticks(double lo, double hi, double *t, int max)
{
	if (!(hi > lo)) {
		t[0] = lo;
		return 1;
	}
	double raw = (hi - lo) / 5, p = pow(10, floor(log10(raw))), step = p;
	if (raw / p > 5)
		step = 10 * p;
	else if (raw / p > 2)
		step = 5 * p;
	else if (raw / p > 1)
		step = 2 * p;
	int n = 0;
	for (double v = ceil(lo / step) * step; v <= hi + step * 1e-9 && n < max; v += step)
		t[n++] = fabs(v) < step * 1e-9 ? 0 : v;
	return n;
}

typedef struct frame {
	double x0, y0, w, h;      /* plot area in SVG units */
	double xlo, xhi, ylo, yhi;
} frame;

static double fx(const frame *f, double v) { return f->x0 + (v - f->xlo) / (f->xhi - f->xlo) * f->w; }
static double fy(const frame *f, double v) { return f->y0 + f->h - (v - f->ylo) / (f->yhi - f->ylo) * f->h; }

static void pad_range(double *lo, double *hi)
{
	if (!(*hi > *lo)) {
		double d = fabs(*lo) > 0 ? fabs(*lo) * 0.1 : 1;
		*lo -= d;
		*hi += d;
		return;
	}
	double d = (*hi - *lo) * 0.05;
	*lo -= d;
	*hi += d;
}

static void axes(FILE *o, const frame *f, const char *xl, const char *yl)
{
	double t[16];
	char b[32];
	fprintf(o, "<rect x='%.1f' y='%.1f' width='%.1f' height='%.1f' fill='#fff' stroke='#999'/>\n",
	        f->x0, f->y0, f->w, f->h);
	int n = ticks(f->xlo, f->xhi, t, 16);
	for (int i = 0; i < n; i++) {
		double x = fx(f, t[i]);
		fmt_num(b, sizeof b, t[i]);
		fprintf(o, "<line x1='%.1f' y1='%.1f' x2='%.1f' y2='%.1f' stroke='#eee'/>"
		        "<text x='%.1f' y='%.1f' class='tick' text-anchor='middle'>%s</text>\n",
		        x, f->y0, x, f->y0 + f->h, x, f->y0 + f->h + 14, b);
	}
	n = ticks(f->ylo, f->yhi, t, 16);
	for (int i = 0; i < n; i++) {
		double y = fy(f, t[i]);
		fmt_num(b, sizeof b, t[i]);
		fprintf(o, "<line x1='%.1f' y1='%.1f' x2='%.1f' y2='%.1f' stroke='#eee'/>"
		        "<text x='%.1f' y='%.1f' class='tick' text-anchor='end'>%s</text>\n",
		        f->x0, y, f->x0 + f->w, y, f->x0 - 4, y + 4, b);
	}
	fprintf(o, "<text x='%.1f' y='%.1f' class='lab' text-anchor='middle'>", f->x0 + f->w / 2,
	        f->y0 + f->h + 32);
	esc(o, xl);
	fprintf(o, "</text><text class='lab' text-anchor='middle' transform='translate(%.1f %.1f) "
	        "rotate(-90)'>", f->x0 - 52, f->y0 + f->h / 2);
	esc(o, yl);
	fputs("</text>\n", o);
}

/* ---- sections -------------------------------------------------------------------- */

static void scatter(rep *R, int a, int b)
{
	FILE *o = R->o;
	frame f = {70, 20, 400, 280, INFINITY, -INFINITY, INFINITY, -INFINITY};
	size_t nok = 0;
	for (size_t i = 0; i < R->nc; i++) {
		if (!R->c[i].ok)
			continue;
		nok += strcmp(R->c[i].k->origin, "elite") != 0; /* elites repeat a genome */
		f.xlo = fmin(f.xlo, R->c[i].v[a]);
		f.xhi = fmax(f.xhi, R->c[i].v[a]);
		f.ylo = fmin(f.ylo, R->c[i].v[b]);
		f.yhi = fmax(f.yhi, R->c[i].v[b]);
	}
	if (nok == 0)
		return;
	pad_range(&f.xlo, &f.xhi);
	pad_range(&f.ylo, &f.yhi);
	size_t stride = nok > REPORT_MAX_POINTS ? (nok + REPORT_MAX_POINTS - 1) / REPORT_MAX_POINTS : 1;
	fprintf(o, "<figure><svg class='plot' viewBox='0 0 490 340' width='490' height='340' "
	        "role='img' aria-label='Pareto scatter'>\n");
	char xl[96], yl[96];
	snprintf(xl, sizeof xl, "%s (%s)", R->obj[a].metric, R->obj[a].maximize ? "max" : "min");
	snprintf(yl, sizeof yl, "%s (%s)", R->obj[b].metric, R->obj[b].maximize ? "max" : "min");
	axes(o, &f, xl, yl);
	size_t k = 0;
	for (size_t i = 0; i < R->nc; i++) {
		const cand *c = &R->c[i];
		if (!c->ok || c->front || strcmp(c->k->origin, "elite") == 0)
			continue;
		if (k++ % stride)
			continue;
		bool feas = c->k->feasible == 1;
		fprintf(o, "<circle cx='%.1f' cy='%.1f' r='2.2' class='%s'/>\n", fx(&f, c->v[a]),
		        fy(&f, c->v[b]), feas ? "pt" : "inf");
	}
	/* the frontier, joined in x order */
	int nf = 0;
	for (size_t i = 0; i < R->nc; i++)
		nf += R->c[i].front && R->c[i].ok;
	size_t *fi = malloc((size_t)(nf ? nf : 1) * sizeof *fi);
	if (fi) {
		int m = 0;
		for (size_t i = 0; i < R->nc; i++)
			if (R->c[i].front && R->c[i].ok)
				fi[m++] = i;
		for (int i = 1; i < m; i++) /* insertion sort by x */
			for (int j = i; j > 0 && R->c[fi[j]].v[a] < R->c[fi[j - 1]].v[a]; j--) {
				size_t t = fi[j];
				fi[j] = fi[j - 1];
				fi[j - 1] = t;
			}
		if (R->nobj == 2 && m > 1) {
			fputs("<polyline class='fl' points='", o);
			for (int i = 0; i < m; i++)
				fprintf(o, "%.1f,%.1f ", fx(&f, R->c[fi[i]].v[a]), fy(&f, R->c[fi[i]].v[b]));
			fputs("'/>\n", o);
		}
		/* the seed noise as a bar through each frontier point */
		int nax = !strcmp(R->obj[a].metric, "val_bpb") ? 0 : !strcmp(R->obj[b].metric, "val_bpb") ? 1 : -1;
		for (int i = 0; i < m && nax >= 0 && isfinite(R->noise); i++) {
			const cand *c = &R->c[fi[i]];
			if (nax == 0)
				fprintf(o, "<line class='nb' x1='%.1f' y1='%.1f' x2='%.1f' y2='%.1f'/>\n",
				        fx(&f, c->v[a] - R->noise), fy(&f, c->v[b]), fx(&f, c->v[a] + R->noise),
				        fy(&f, c->v[b]));
			else
				fprintf(o, "<line class='nb' x1='%.1f' y1='%.1f' x2='%.1f' y2='%.1f'/>\n",
				        fx(&f, c->v[a]), fy(&f, c->v[b] - R->noise), fx(&f, c->v[a]),
				        fy(&f, c->v[b] + R->noise));
		}
		for (int i = 0; i < m; i++) {
			const cand *c = &R->c[fi[i]];
			char x[32], y[32];
			fmt_num(x, sizeof x, c->v[a]);
			fmt_num(y, sizeof y, c->v[b]);
			fprintf(o, "<circle cx='%.1f' cy='%.1f' r='4' class='fr'><title>",
			        fx(&f, c->v[a]), fy(&f, c->v[b]));
			esc_prefix(o, c->k->genome_hash, 12);
			fputs(": ", o);
			esc(o, R->obj[a].metric);
			fprintf(o, " %s, ", x);
			esc(o, R->obj[b].metric);
			fprintf(o, " %s</title></circle>\n", y);
		}
		free(fi);
	}
	fputs("</svg><figcaption>", o);
	esc(o, R->obj[a].metric);
	fputs(" vs ", o);
	esc(o, R->obj[b].metric);
	fprintf(o, ": %zu evaluated genomes%s (grey feasible, red "
	        "infeasible), the frontier of generation %lld in blue",
	        nok,
	        stride > 1 ? ", every other point thinned out to keep the file small" : "",
	        (long long)R->front_gen + 1);
	if (isfinite(R->noise) &&
	    (!strcmp(R->obj[a].metric, "val_bpb") || !strcmp(R->obj[b].metric, "val_bpb")))
		fprintf(o, "; bars: &plusmn; the run's measured seed noise of val_bpb (%.4f bpb, the "
		        "median |paired difference| of its fidelity study): frontier points closer than "
		        "that are not told apart by the training", R->noise);
	fputs(".</figcaption></figure>\n", o);
}

static void hv_plot(rep *R, const db_generation *g, size_t n)
{
	FILE *o = R->o;
	if (n == 0)
		return;
	frame f = {70, 20, 400, 220, 0, (double)n + 1, INFINITY, -INFINITY};
	for (size_t i = 0; i < n; i++)
		if (!isnan(g[i].hypervolume)) {
			f.ylo = fmin(f.ylo, g[i].hypervolume);
			f.yhi = fmax(f.yhi, g[i].hypervolume);
		}
	if (!isfinite(f.ylo))
		return;
	f.ylo = 0;
	pad_range(&f.ylo, &f.yhi);
	f.ylo = 0;
	fputs("<figure><svg class='plot' viewBox='0 0 490 280' width='490' height='280' role='img' "
	      "aria-label='hypervolume per generation'>\n", o);
	axes(o, &f, "generation", "hypervolume (normalized)");
	fputs("<polyline class='hv' points='", o);
	for (size_t i = 0; i < n; i++)
		if (!isnan(g[i].hypervolume))
			fprintf(o, "%.1f,%.1f ", fx(&f, (double)g[i].generation + 1), fy(&f, g[i].hypervolume));
	fputs("'/>\n", o);
	for (size_t i = 0; i < n; i++)
		if (!isnan(g[i].hypervolume))
			fprintf(o, "<circle cx='%.1f' cy='%.1f' r='3' class='hvp'><title>generation %lld: "
			        "hypervolume %.6g, frontier %lld</title></circle>\n",
			        fx(&f, (double)g[i].generation + 1), fy(&f, g[i].hypervolume),
			        (long long)g[i].generation + 1, g[i].hypervolume,
			        (long long)g[i].frontier_size);
	fputs("</svg><figcaption>Hypervolume of the feasible first front per generation "
	      "(objectives normalized by generation 1, reference point 1.1; docs/config.md)."
	      "</figcaption></figure>\n", o);
}

static void op_plot(rep *R, const db_opshare *s, size_t n)
{
	FILE *o = R->o;
	if (n == 0)
		return;
	int64_t ng = s[n - 1].generation + 1;
	/* the operators, in order of first appearance */
	char ops[32][32];
	int nops = 0;
	for (size_t i = 0; i < n; i++) {
		int j = 0;
		while (j < nops && strcmp(ops[j], s[i].op))
			j++;
		if (j == nops && nops < 32)
			snprintf(ops[nops++], 32, "%s", s[i].op);
	}
	double W = 400, H = 220, x0 = 70, y0 = 20, bw = W / (double)ng;
	fprintf(o, "<figure><svg class='plot' viewBox='0 0 600 280' width='600' height='280' "
	        "role='img' aria-label='operator share per generation'>\n");
	frame f = {x0, y0, W, H, 0, (double)ng, 0, 1};
	axes(o, &f, "generation", "share of layers");
	double *acc = calloc((size_t)ng, sizeof *acc);
	if (acc) {
		for (int j = 0; j < nops; j++)
			for (size_t i = 0; i < n; i++) {
				if (strcmp(s[i].op, ops[j]) != 0)
					continue;
				int64_t g = s[i].generation;
				double y1 = acc[g], y2 = acc[g] + s[i].share;
				fprintf(o, "<rect x='%.2f' y='%.2f' width='%.2f' height='%.2f' fill='%s'>"
				        "<title>generation %lld: ",
				        x0 + (double)g * bw, y0 + H - y2 * H, bw * 0.92, (y2 - y1) * H,
				        op_color(ops[j]), (long long)g + 1);
				esc(o, ops[j]);
				fprintf(o, " %.1f%%</title></rect>\n", 100 * s[i].share);
				acc[g] = y2;
			}
		free(acc);
	}
	for (int j = 0; j < nops; j++)
	{
		fprintf(o, "<rect x='490' y='%d' width='12' height='12' fill='%s'/><text x='508' y='%d' "
		        "class='tick'>", 24 + 18 * j, op_color(ops[j]), 34 + 18 * j);
		esc(o, ops[j]);
		fputs("</text>\n", o);
	}
	fputs("</svg><figcaption>Share of each operator among the layers of the population, per "
	      "generation (as in STAR's operator-evolution figure).</figcaption></figure>\n", o);
}

static void strips(rep *R)
{
	FILE *o = R->o;
	int nf = 0, maxl = 1;
	genome *g = malloc(sizeof *g);
	if (g == NULL)
		return;
	for (size_t i = 0; i < R->nc; i++) {
		tl_err err = TL_ERR_INIT;
		if (!R->c[i].front || !R->c[i].k->text || genome_parse(g, R->c[i].k->text, "r", &err))
			continue;
		nf++;
		if (g->n_layers > maxl)
			maxl = g->n_layers;
	}
	if (nf == 0) {
		free(g);
		return;
	}
	double cw = fmin(14, 560.0 / maxl), rh = 16;
	fprintf(o, "<figure><svg class='plot' viewBox='0 0 %.0f %.0f' width='%.0f' height='%.0f' "
	        "role='img' aria-label='frontier genomes'>\n", 120 + cw * maxl, rh * nf + 10,
	        120 + cw * maxl, rh * nf + 10);
	int row = 0;
	char seen[32][32];
	int nseen = 0;
	for (size_t i = 0; i < R->nc; i++) {
		tl_err err = TL_ERR_INIT;
		if (!R->c[i].front || !R->c[i].k->text || genome_parse(g, R->c[i].k->text, "r", &err))
			continue;
		fprintf(o, "<text x='0' y='%.1f' class='tick'>", row * rh + 12);
		esc_prefix(o, R->c[i].k->genome_hash, 12);
		fputs("</text>\n", o);
		for (int l = 0; l < g->n_layers; l++) {
			const char *lab = genome_class_label(&g->classes[g->layers[l].cls]);
			fprintf(o, "<rect x='%.1f' y='%.1f' width='%.1f' height='%.1f' fill='%s' stroke='#fff'>"
			        "<title>layer %d: ", 100 + l * cw, row * rh + 2, cw, rh - 3, op_color(lab), l);
			esc(o, lab);
			fputs("</title></rect>\n", o);
			int j = 0;
			while (j < nseen && strcmp(seen[j], lab))
				j++;
			if (j == nseen && nseen < 32)
				snprintf(seen[nseen++], 32, "%s", lab);
		}
		row++;
	}
	fputs("</svg><figcaption>The frontier's genomes, one cell per layer:", o);
	for (int j = 0; j < nseen; j++)
	{
		fprintf(o, " <span class='sw' style='background:%s'></span>", op_color(seen[j]));
		esc(o, seen[j]);
	}
	fputs("</figcaption></figure>\n", o);
	free(g);
}

static void details(rep *R)
{
	FILE *o = R->o;
	fputs("<table><tr><th>genome</th><th>generation</th><th>origin</th><th>parents</th>", o);
	cJSON *first = NULL;
	for (size_t i = 0; i < R->nc && !first; i++)
		if (R->c[i].front && R->c[i].k->objectives)
			first = cJSON_Parse(R->c[i].k->objectives);
	const cJSON *m;
	cJSON_ArrayForEach(m, first) {
		fputs("<th>", o);
		esc(o, m->string);
		fputs("</th>", o);
	}
	fputs("<th>genome text</th></tr>\n", o);
	for (size_t i = 0; i < R->nc; i++) {
		const db_candidate *k = R->c[i].k;
		if (!R->c[i].front)
			continue;
		fputs("<tr><td class='mono'>", o);
		esc_prefix(o, k->genome_hash, 12);
		fprintf(o, "</td><td>%lld</td><td>", (long long)k->generation + 1);
		esc(o, k->origin);
		fputs("</td><td>", o);
		if (k->parent1)
			fprintf(o, "%lld", (long long)k->parent1);
		if (k->parent2)
			fprintf(o, ", %lld", (long long)k->parent2);
		fputs("</td>", o);
		cJSON *obj = k->objectives ? cJSON_Parse(k->objectives) : NULL;
		cJSON_ArrayForEach(m, first) {
			const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, m->string);
			char b[32] = "";
			if (cJSON_IsNumber(v))
				fmt_num(b, sizeof b, v->valuedouble);
			fprintf(o, "<td class='num'>%s</td>", b);
		}
		cJSON_Delete(obj);
		fputs("<td><details><summary>text</summary><code>", o);
		esc(o, k->text);
		fputs("</code></details></td></tr>\n", o);
	}
	cJSON_Delete(first);
	fputs("</table>\n", o);
}

/* A number in a table cell; NaN: empty. */
static void num_cell(FILE *o, double v)
{
	char b[32] = "";
	if (isfinite(v))
		fmt_num(b, sizeof b, v);
	fprintf(o, "<td class='num'>%s</td>", b);
}

/* (pred - meas) / meas; NaN when either is missing or meas is not > 0. */
static double rel_err(double pred, double meas)
{
	return isfinite(pred) && isfinite(meas) && meas > 0 ? (pred - meas) / meas : NAN;
}

static void pct_cell(FILE *o, double r)
{
	if (isfinite(r))
		fprintf(o, "<td class='num'>%+.1f%%</td>", 100 * r);
	else
		fputs("<td></td>", o);
}

static int pvm_cmp(const void *a, const void *b)
{
	const db_pvm *x = *(const db_pvm *const *)a, *y = *(const db_pvm *const *)b;
	int c = strcmp(x->device, y->device);
	if (c == 0)
		c = strcmp(x->genome_hash, y->genome_hash);
	if (c == 0)
		c = (x->candidate_id > y->candidate_id) - (x->candidate_id < y->candidate_id);
	return c;
}

/* One RMSPE row over the kept rows s[0..n) (all of one device, or all). */
static void rmspe_row(FILE *o, const db_pvm *const *s, size_t n, const bool *keep,
                      const db_pvm *base, const char *device)
{
	double ss = 0;
	size_t m = 0;
	for (size_t i = 0; i < n; i++) {
		double r = rel_err(s[i]->pred_decode_ms, s[i]->meas_decode_ms);
		if (keep[s[i] - base] && isfinite(r)) {
			ss += r * r;
			m++;
		}
	}
	fputs("<tr><th colspan='2'>RMSPE of decode ms", o);
	if (device) {
		fputs(", ", o);
		esc(o, device);
	}
	fputs("</th>", o);
	if (m > 0)
		fprintf(o, "<td class='num' colspan='3'>%.1f%% over %zu genome%s</td>",
		        100 * sqrt(ss / (double)m), m, m == 1 ? "" : "s");
	else
		fputs("<td colspan='3'>no decode latency on both sides</td>", o);
	fputs("<td colspan='3'></td></tr>\n", o);
}

/* The predictor against the measurements of the run (db_run_pvm, by
 * candidate id): one row per genome and device (an elite repeats its
 * genome's row: the first candidate's is kept), at most
 * REPORT_MAX_TABLE_ROWS listed, the RMSPE of decode_ms over all of them, and
 * per device when there are several. */
static void pvm_table(rep *R, const db_pvm *p, size_t n)
{
	FILE *o = R->o;
	if (n == 0)
		return;
	bool *keep = calloc(n, sizeof *keep);
	const db_pvm **s = malloc(n * sizeof *s);
	if (keep == NULL || s == NULL) {
		free(keep);
		free(s);
		return;
	}
	/* sorted by device, genome, candidate: the first of each pair is kept */
	for (size_t i = 0; i < n; i++)
		s[i] = &p[i];
	qsort(s, n, sizeof *s, pvm_cmp);
	size_t nk = 0, ndev = 0;
	for (size_t i = 0; i < n; i++) {
		bool newdev = i == 0 || strcmp(s[i]->device, s[i - 1]->device) != 0;
		ndev += newdev;
		keep[s[i] - p] = newdev || strcmp(s[i]->genome_hash, s[i - 1]->genome_hash) != 0;
		nk += keep[s[i] - p];
	}
	fputs("<h2>Predicted vs measured</h2>\n<table><tr><th>genome</th><th>device</th>"
	      "<th>decode ms predicted</th><th>decode ms measured</th><th>error</th>"
	      "<th>peak RSS MiB predicted</th><th>peak RSS MiB measured</th><th>error</th></tr>\n",
	      o);
	size_t shown = 0;
	for (size_t i = 0; i < n && shown < REPORT_MAX_TABLE_ROWS; i++) {
		if (!keep[i])
			continue;
		shown++;
		fputs("<tr><td class='mono'>", o);
		esc_prefix(o, p[i].genome_hash, 12);
		fputs("</td><td>", o);
		esc(o, p[i].device);
		fputs("</td>", o);
		num_cell(o, p[i].pred_decode_ms);
		num_cell(o, p[i].meas_decode_ms);
		pct_cell(o, rel_err(p[i].pred_decode_ms, p[i].meas_decode_ms));
		num_cell(o, p[i].pred_peak_rss_mb);
		num_cell(o, p[i].meas_peak_rss_mb);
		pct_cell(o, rel_err(p[i].pred_peak_rss_mb, p[i].meas_peak_rss_mb));
		fputs("</tr>\n", o);
	}
	rmspe_row(o, s, n, keep, p, NULL);
	for (size_t i = 0, j; ndev > 1 && i < n; i = j) {
		for (j = i + 1; j < n && !strcmp(s[j]->device, s[i]->device); j++)
			;
		rmspe_row(o, s + i, j - i, keep, p, s[i]->device);
	}
	fprintf(o, "</table>\n<p class='cap'>Genomes of the run that were both predicted from an "
	        "operator table and measured (view predicted_vs_measured), each once per device; "
	        "error: (predicted &minus; measured) / measured; RMSPE: the root mean square of "
	        "the decode errors.%s</p>\n",
	        nk > shown ? " Only the first rows are listed; the RMSPE is over all of them." : "");
	free(keep);
	free(s);
}

static double jnum(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* The run's newest fidelity study (`tailor quality fidelity --run`): each
 * genome's val_bpb per budget as a line, its other seeds at the lowest
 * budget as hollow points (the seed spread), then the agreement of every
 * budget with the highest. Nothing when the run has none. */
static int fidelity_section(rep *R, db_conn *db, int64_t run_id, tl_err *err)
{
	FILE *o = R->o;
	char **ev = NULL;
	size_t nev = 0;
	int rc = db_run_events_data(db, run_id, "quality.fidelity", &ev, &nev, err);
	if (rc < 0 || nev == 0) {
		db_strings_free(ev, nev);
		return rc;
	}
	cJSON *st = cJSON_Parse(ev[nev - 1]);
	const cJSON *bud = cJSON_GetObjectItemCaseSensitive(st, "budgets");
	const cJSON *gen = cJSON_GetObjectItemCaseSensitive(st, "genomes");
	int nb = cJSON_GetArraySize(bud), ng = cJSON_GetArraySize(gen);
	if (st == NULL || nb < 2 || ng < 1 || nb > QUAL_REPORT_MAX_BUDGETS) {
		cJSON_Delete(st);
		db_strings_free(ev, nev);
		return 0;
	}
	double b[QUAL_REPORT_MAX_BUDGETS];
	for (int i = 0; i < nb; i++) {
		const cJSON *x = cJSON_GetArrayItem(bud, i);
		b[i] = cJSON_IsNumber(x) && x->valuedouble >= 1 ? x->valuedouble : 1;
	}
	frame f = {70, 20, 400, 220, log2(b[0]) - 0.5, log2(b[nb - 1]) + 0.5, INFINITY, -INFINITY};
	const cJSON *g;
	cJSON_ArrayForEach(g, gen)
	{
		const cJSON *v;
		cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(g, "val_bpb"))
		if (cJSON_IsNumber(v)) {
			f.ylo = fmin(f.ylo, v->valuedouble);
			f.yhi = fmax(f.yhi, v->valuedouble);
		}
		cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(g, "seeds_val_bpb"))
		if (cJSON_IsNumber(v)) {
			f.ylo = fmin(f.ylo, v->valuedouble);
			f.yhi = fmax(f.yhi, v->valuedouble);
		}
	}
	fputs("<h2>Quality fidelity</h2>\n", o);
	if (isfinite(f.ylo)) {
		pad_range(&f.ylo, &f.yhi);
		fputs("<figure><svg class='plot' viewBox='0 0 490 280' width='490' height='280' "
		      "role='img' aria-label='val_bpb per training budget'>\n", o);
		axes(o, &f, "training budget, log2 of tokens", "val_bpb");
		cJSON_ArrayForEach(g, gen)
		{
			const cJSON *h = cJSON_GetObjectItemCaseSensitive(g, "hash");
			const char *hs = cJSON_IsString(h) ? h->valuestring : "";
			fputs("<polyline class='fid' points='", o);
			int k = 0;
			const cJSON *v;
			cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(g, "val_bpb"))
			{
				if (cJSON_IsNumber(v) && k < nb)
					fprintf(o, "%.1f,%.1f ", fx(&f, log2(b[k])), fy(&f, v->valuedouble));
				k++;
			}
			fputs("'><title>", o);
			esc_prefix(o, hs, 12);
			fputs("</title></polyline>\n", o);
			int s = 0;
			cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(g, "seeds_val_bpb"))
			{
				if (s++ > 0 && cJSON_IsNumber(v)) {
					fprintf(o, "<circle cx='%.1f' cy='%.1f' r='3' class='fids'><title>", fx(&f, log2(b[0])),
					        fy(&f, v->valuedouble));
					esc_prefix(o, hs, 12);
					fprintf(o, " seed %d: %.4f</title></circle>\n", s, v->valuedouble);
				}
			}
		}
		fputs("</svg><figcaption>Each line a genome's held-out bits per byte after each "
		      "training budget", o);
		for (int i = 0; i < nb; i++)
			fprintf(o, "%s%.0f", i ? ", " : " (", b[i]);
		fputs(" tokens); hollow points: the same genome trained with other seeds at the lowest "
		      "budget.</figcaption></figure>\n", o);
	}
	double noise = jnum(st, "noise_median"), sigma = jnum(st, "noise_sigma");
	fprintf(o, "<p>%d genomes, %d seed(s), %.0f s of training. ", ng, (int)jnum(st, "seeds"),
	        jnum(st, "seconds"));
	if (isfinite(noise))
		fprintf(o, "Seed noise at the lowest budget: median |paired difference| %.4f bpb "
		        "(sigma %.4f). ", noise, sigma);
	double enough = jnum(st, "enough_budget");
	if (isfinite(enough))
		fprintf(o, "The first budget ranking as the highest does (Kendall tau &ge; 0.8): %.0f "
		        "tokens.</p>\n", enough);
	else
		fputs("No lower budget ranks as the highest does (Kendall tau &ge; 0.8).</p>\n", o);
	fputs("<table><tr><th>budget (tokens)</th><th>spread</th><th>spread / noise</th>"
	      "<th>tau vs highest [95%]</th><th>rho vs highest [95%]</th></tr>\n", o);
	const cJSON *spread = cJSON_GetObjectItemCaseSensitive(st, "spread");
	const cJSON *ag = cJSON_GetObjectItemCaseSensitive(st, "agreement");
	for (int i = 0; i < nb; i++) {
		double sp = cJSON_IsNumber(cJSON_GetArrayItem(spread, i))
		                ? cJSON_GetArrayItem(spread, i)->valuedouble
		                : NAN;
		fprintf(o, "<tr><td class='num'>%.0f</td>", b[i]);
		num_cell(o, sp);
		num_cell(o, isfinite(noise) && noise > 0 ? sp / noise : NAN);
		const cJSON *a = NULL, *x;
		cJSON_ArrayForEach(x, ag)
		if (jnum(x, "a") == b[i] && jnum(x, "b") == b[nb - 1])
			a = x;
		if (a)
			fprintf(o, "<td class='num'>%.2f [%.2f, %.2f]</td><td class='num'>%.2f [%.2f, "
			        "%.2f]</td></tr>\n",
			        jnum(a, "tau"), jnum(a, "tau_lo"), jnum(a, "tau_hi"), jnum(a, "rho"),
			        jnum(a, "rho_lo"), jnum(a, "rho_hi"));
		else
			fputs("<td>-</td><td>-</td></tr>\n", o);
	}
	fputs("</table>\n", o);
	cJSON_Delete(st);
	db_strings_free(ev, nev);
	return 0;
}

/* What the run's device figures were measured on: each device's CPU,
 * cores, OS, kernel and compiler (from its newest measurement's
 * fingerprint), and its measurements in the run. */
static int devices_table(rep *R, db_conn *db, int64_t run_id, tl_err *err)
{
	FILE *o = R->o;
	db_run_device *dev = NULL;
	size_t n = 0;
	int rc = db_run_devices(db, run_id, &dev, &n, err);
	if (rc == 0 && n > 0) {
		fputs("<h2>Devices</h2>\n<table><tr><th>device</th><th>transport</th><th>CPU</th>"
		      "<th>cores</th><th>arch</th><th>OS</th><th>kernel</th><th>compiler</th>"
		      "<th>measurements</th><th>failed</th></tr>\n",
		      o);
		for (size_t d = 0; d < n; d++) {
			const char *cells[] = {dev[d].name, dev[d].transport, dev[d].cpu};
			fputs("<tr>", o);
			for (size_t c = 0; c < 3; c++) {
				fputs("<td>", o);
				esc(o, cells[c][0] ? cells[c] : "-");
				fputs("</td>", o);
			}
			if (dev[d].cores > 0)
				fprintf(o, "<td class='num'>%lld</td>", (long long)dev[d].cores);
			else
				fputs("<td>-</td>", o);
			const char *rest[] = {dev[d].arch, dev[d].os, dev[d].kernel, dev[d].toolchain};
			for (size_t c = 0; c < 4; c++) {
				fputs("<td>", o);
				esc(o, rest[c][0] ? rest[c] : "-");
				fputs("</td>", o);
			}
			fprintf(o, "<td class='num'>%lld</td><td class='num'>%lld</td></tr>\n",
			        (long long)dev[d].n_ok, (long long)dev[d].n_failed);
		}
		fputs("</table>\n", o);
	}
	free(dev);
	return rc;
}

/* Why evaluations failed: the candidates' errors, and the failed
 * measurements by device and kind (a device that went away, a harness that
 * crashed), the most frequent first. Nothing when nothing failed. */
static int failures_tables(rep *R, db_conn *db, int64_t run_id, tl_err *err)
{
	FILE *o = R->o;
	bool head = false;
	int rc = 0;
	for (int pass = 0; pass < 2 && rc == 0; pass++) {
		db_run_failure *f = NULL;
		size_t n = 0;
		if ((rc = db_run_failures(db, run_id, pass == 1, REPORT_MAX_FAILURE_ROWS, &f, &n, err)) < 0 ||
		    n == 0) {
			free(f);
			continue;
		}
		if (!head)
			fputs("<h2>Failures</h2>\n", o);
		head = true;
		fputs(pass == 0 ? "<h3>Candidates</h3>\n<table><tr><th>count</th><th>error</th></tr>\n"
		                : "<h3>Measurements</h3>\n<table><tr><th>count</th><th>device</th>"
		                  "<th>kind</th><th>error</th></tr>\n",
		      o);
		for (size_t i = 0; i < n; i++) {
			fprintf(o, "<tr><td class='num'>%lld</td>", (long long)f[i].n);
			if (pass == 1) {
				fputs("<td>", o);
				esc(o, f[i].device);
				fputs("</td><td>", o);
				esc(o, f[i].kind[0] ? f[i].kind : "-");
				fputs("</td>", o);
			}
			fputs("<td class='mono'>", o);
			esc(o, f[i].error[0] ? f[i].error : "(no message)");
			fputs("</td></tr>\n", o);
		}
		fputs("</table>\n", o);
		free(f);
	}
	return rc;
}

/* Each device the run used: its canary history over every run (newest
 * REPORT_MAX_TABLE_ROWS), this run's rows highlighted, the change of decode
 * ms from the previous canary of the same genome on the device. Nothing when
 * no device has a canary. */
static int canary_tables(rep *R, db_conn *db, int64_t run_id, tl_err *err)
{
	FILE *o = R->o;
	db_run_device *dev = NULL;
	size_t ndev = 0;
	bool head = false;
	int rc = db_run_devices(db, run_id, &dev, &ndev, err);
	for (size_t d = 0; rc == 0 && d < ndev; d++) {
		db_canary *k = NULL;
		size_t n = 0;
		if ((rc = db_canary_history(db, dev[d].id, NULL, 0, &k, &n, err)) < 0 || n == 0) {
			free(k);
			continue;
		}
		if (!head)
			fputs("<h2>Canary history</h2>\n", o);
		head = true;
		fputs("<h3>", o);
		esc(o, dev[d].name);
		fputs("</h3>\n<table><tr><th>time (UTC)</th><th>run</th><th>generation</th><th>canary</th>"
		      "<th>decode ms</th><th>change</th><th>TTFT ms</th><th>peak RSS MiB</th></tr>\n",
		      o);
		size_t from = n > REPORT_MAX_TABLE_ROWS ? n - REPORT_MAX_TABLE_ROWS : 0;
		for (size_t i = from; i < n; i++) {
			size_t j = i;
			while (j > 0 && strcmp(k[j - 1].canary_hash, k[i].canary_hash))
				j--;
			double prev = j > 0 ? k[j - 1].decode_ms : NAN;
			char when[17];
			snprintf(when, sizeof when, "%.16s", k[i].created_at);
			if (strlen(when) > 10 && when[10] == 'T')
				when[10] = ' ';
			fprintf(o, "<tr%s><td>", k[i].run_id == run_id ? " class='this'" : "");
			esc(o, when);
			fputs("</td><td>", o);
			if (k[i].run_id)
				fprintf(o, "%lld", (long long)k[i].run_id);
			fprintf(o, "</td><td>%lld</td><td class='mono'>", (long long)k[i].generation + 1);
			esc_prefix(o, k[i].canary_hash, 12);
			fputs("</td>", o);
			num_cell(o, k[i].decode_ms);
			pct_cell(o, rel_err(k[i].decode_ms, prev));
			num_cell(o, k[i].ttft_ms);
			num_cell(o, k[i].peak_rss_mb);
			fputs("</tr>\n", o);
		}
		fprintf(o, "</table>\n<p class='cap'>The canary genome measured on this device by "
		        "every run, oldest first%s; rows of run %lld in bold. Change: decode ms against "
		        "the previous canary of the same genome.</p>\n",
		        from ? " (the newest rows)" : "", (long long)run_id);
		free(k);
	}
	free(dev);
	return rc;
}

/* ---- the report -------------------------------------------------------------------- */

int report_write(db_conn *db, int64_t run_id, const report_config *cfg, FILE *o, tl_err *err)
{
	rep R;
	memset(&R, 0, sizeof R);
	R.o = o;
	db_run run;
	db_candidate *k = NULL;
	size_t nk = 0;
	db_generation *gens = NULL;
	size_t ngen = 0;
	db_opshare *ops = NULL;
	size_t nops = 0;
	db_pvm *pvm = NULL;
	size_t npvm = 0;
	int rc = 0;
	if ((rc = db_run_get(db, run_id, &run, err)) < 0)
		return rc;
	static const report_config none = {NULL, 0, NULL};
	if (cfg == NULL)
		cfg = &none;
	R.obj = cfg->obj;
	R.nobj = cfg->n_obj < REPORT_MAX_OBJ ? cfg->n_obj : REPORT_MAX_OBJ;
	if ((rc = db_candidates_all(db, run_id, &k, &nk, err)) < 0 ||
	    (rc = db_generations_of(db, run_id, &gens, &ngen, err)) < 0 ||
	    (rc = db_operator_shares(db, run_id, &ops, &nops, err)) < 0 ||
	    (rc = db_run_pvm(db, run_id, &pvm, &npvm, err)) < 0)
		goto out;
	R.c = calloc(nk ? nk : 1, sizeof *R.c);
	if (R.c == NULL) {
		rc = tl_err_set(err, TL_ENOMEM, "report: out of memory");
		goto out;
	}
	R.nc = nk;
	R.noise = NAN;
	{ /* the newest fidelity study's seed noise */
		char **ev = NULL;
		size_t nev = 0;
		tl_err ne = TL_ERR_INIT;
		if (db_run_events_data(db, run_id, "quality.fidelity", &ev, &nev, &ne) == 0 && nev > 0) {
			cJSON *st = cJSON_Parse(ev[nev - 1]);
			double v = jnum(st, "noise_median");
			if (isfinite(v) && v > 0)
				R.noise = v;
			cJSON_Delete(st);
		}
		db_strings_free(ev, nev);
	}
	R.front_gen = -1;
	for (size_t i = 0; i < nk; i++)
		if (k[i].rank >= 0 && k[i].generation > R.front_gen)
			R.front_gen = k[i].generation;
	for (size_t i = 0; i < nk; i++) {
		cand *c = &R.c[i];
		c->k = &k[i];
		cJSON *v = k[i].objectives && !strcmp(k[i].status, "done") ? cJSON_Parse(k[i].objectives)
		                                                           : NULL;
		c->ok = v != NULL;
		for (int j = 0; j < R.nobj && c->ok; j++) {
			const cJSON *x = cJSON_GetObjectItemCaseSensitive(v, R.obj[j].metric);
			c->ok = cJSON_IsNumber(x);
			if (c->ok)
				c->v[j] = x->valuedouble;
		}
		cJSON_Delete(v);
		c->front = k[i].generation == R.front_gen && k[i].rank == 0 && k[i].feasible == 1;
	}
	fprintf(o, "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>\n"
	        "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; "
	        "style-src 'unsafe-inline'; img-src data:\">\n<title>tailor run %lld",
	        (long long)run_id);
	if (run.name[0]) {
		fputs(": ", o);
		esc(o, run.name);
	}
	fputs("</title>\n<style>\n"
	      "body{font:14px/1.4 system-ui,sans-serif;margin:24px auto;max-width:1100px;color:#222}\n"
	      "h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}\n"
	      "figure{display:inline-block;margin:8px 16px 8px 0;vertical-align:top}\n"
	      "figcaption{font-size:12px;color:#555;max-width:480px}\n"
	      ".tick{font-size:10px;fill:#444}.lab{font-size:12px;fill:#222}\n"
	      ".pt{fill:#9a9a9a;fill-opacity:.55}.inf{fill:#e45756;fill-opacity:.45}\n"
	      ".fr{fill:#1f5fbf;stroke:#fff}.fl{fill:none;stroke:#1f5fbf;stroke-width:1.5}\n"
	      ".hv{fill:none;stroke:#1f5fbf;stroke-width:2}.hvp{fill:#1f5fbf}\n"
	      ".fid{fill:none;stroke:#1f5fbf;stroke-opacity:.55;stroke-width:1.5}"
	      ".fids{fill:none;stroke:#d2452c;stroke-width:1.5}.nb{stroke:#1f5fbf;stroke-width:1.5;"
	      "stroke-opacity:.6}\n"
	      "table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ddd;padding:3px 6px}\n"
	      "td.num{text-align:right;font-variant-numeric:tabular-nums}.mono,code{font-family:monospace}\n"
	      "code{font-size:11px;word-break:break-all}\n"
	      ".sw{display:inline-block;width:10px;height:10px;margin:0 3px 0 8px}\n"
	      "dl{display:grid;grid-template-columns:max-content auto;gap:2px 12px}dt{color:#666}\n"
	      "h3{font-size:14px;margin:14px 0 4px}.cap{font-size:12px;color:#555;max-width:760px}\n"
	      "tr.this td{background:#eef4ff;font-weight:600}\n"
	      "</style></head><body>\n", o);
	fprintf(o, "<h1>tailor run %lld", (long long)run_id);
	if (run.name[0]) {
		fputs(": ", o);
		esc(o, run.name);
	}
	int done = 0, failed = 0, feas = 0;
	for (size_t i = 0; i < nk; i++) {
		done += !strcmp(k[i].status, "done") && strcmp(k[i].origin, "elite") != 0;
		failed += !strcmp(k[i].status, "failed");
		feas += k[i].feasible == 1 && strcmp(k[i].origin, "elite") != 0;
	}
	fputs("</h1>\n<dl><dt>status</dt><dd>", o);
	esc(o, run.status);
	fputs("</dd><dt>mode</dt><dd>", o);
	esc(o, run.mode);
	fprintf(o, "</dd><dt>generations"
	        "</dt><dd>%lld of %lld, population %lld</dd><dt>evaluated</dt><dd>%d genomes (%d "
	        "feasible, %d failed)</dd><dt>objectives</dt><dd>",
	        (long long)run.generation + 1, (long long)run.generations,
	        (long long)run.population, done, feas, failed);
	for (int j = 0; j < R.nobj; j++) {
		esc(o, R.obj[j].metric);
		fprintf(o, " (%s)%s", R.obj[j].maximize ? "max" : "min", j + 1 < R.nobj ? ", " : "");
	}
	fputs("</dd><dt>started</dt><dd>", o);
	esc(o, run.started_at[0] ? run.started_at : "-");
	fputs("</dd><dt>finished</dt><dd>", o);
	esc(o, run.finished_at[0] ? run.finished_at : "-");
	if (run.error[0]) {
		fputs("</dd><dt>error</dt><dd class='mono'>", o);
		esc(o, run.error);
	}
	fputs("</dd></dl>\n", o);
	if ((rc = devices_table(&R, db, run_id, err)) < 0)
		goto out;
	fputs("<h2>Pareto fronts</h2>\n", o);
	for (int i = 0; i < R.nobj; i++)
		for (int j = i + 1; j < R.nobj; j++)
			scatter(&R, i, j);
	fputs("<h2>Progress</h2>\n", o);
	hv_plot(&R, gens, ngen);
	op_plot(&R, ops, nops);
	if ((rc = fidelity_section(&R, db, run_id, err)) < 0)
		goto out;
	fputs("<h2>The frontier</h2>\n", o);
	strips(&R);
	details(&R);
	pvm_table(&R, pvm, npvm);
	if ((rc = canary_tables(&R, db, run_id, err)) < 0 ||
	    (rc = failures_tables(&R, db, run_id, err)) < 0)
		goto out;
	fputs("<details><summary>The run's config</summary><pre><code>", o);
	esc(o, cfg->text ? cfg->text : run.config);
	fputs("</code></pre></details>\n<p style='color:#888;font-size:11px'>Written by tailor "
	      "report.</p></body></html>\n", o);
	if (ferror(o))
		rc = tl_err_set(err, TL_EIO, "report: write failed");
out:
	db_run_clear(&run);
	db_candidates_free(k, nk);
	free(gens);
	free(ops);
	free(pvm);
	free(R.c);
	return rc;
}
