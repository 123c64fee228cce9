/*
 * evolve/moo.c: non-dominated sorting, crowding, survival, tournament and
 * hypervolume (see moo.h). Workload: populations of tens to a few hundred
 * points per generation, a handful of objectives; everything here is cheap
 * next to one evaluation, so the code favours being obviously right and
 * deterministic (total orders everywhere) over asymptotics.
 */
#include "moo.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

bool moo_dominates(const moo_point *a, const moo_point *b, int m)
{
	bool fa = a->viol <= 0.0, fb = b->viol <= 0.0;
	if (fa != fb)
		return fa;
	if (!fa)
		return a->viol < b->viol;
	bool better = false;
	for (int k = 0; k < m; k++) {
		if (a->obj[k] > b->obj[k])
			return false;
		if (a->obj[k] < b->obj[k])
			better = true;
	}
	return better;
}

int moo_rank(const moo_point *pts, int n, int m, int *rank)
{
	if (n <= 0)
		return 0;
	/* count[i]: how many points dominate i; dominated-by lists as a bit
	 * matrix (row i: the points i dominates) */
	size_t words = ((size_t)n + 63) / 64;
	uint64_t *dom = calloc((size_t)n * words, sizeof *dom);
	int *count = calloc((size_t)n, sizeof *count);
	int *cur = malloc((size_t)n * sizeof *cur), *next = malloc((size_t)n * sizeof *next);
	if (!dom || !count || !cur || !next) {
		free(dom);
		free(count);
		free(cur);
		free(next);
		return -1;
	}
	for (int i = 0; i < n; i++)
		for (int j = i + 1; j < n; j++) {
			if (moo_dominates(&pts[i], &pts[j], m)) {
				dom[(size_t)i * words + (size_t)j / 64] |= 1ULL << (j % 64);
				count[j]++;
			} else if (moo_dominates(&pts[j], &pts[i], m)) {
				dom[(size_t)j * words + (size_t)i / 64] |= 1ULL << (i % 64);
				count[i]++;
			}
		}
	int nc = 0, fronts = 0;
	for (int i = 0; i < n; i++)
		if (count[i] == 0) {
			rank[i] = 0;
			cur[nc++] = i;
		}
	while (nc > 0) {
		int nn = 0;
		fronts++;
		for (int a = 0; a < nc; a++) {
			const uint64_t *row = dom + (size_t)cur[a] * words;
			for (size_t w = 0; w < words; w++)
				for (uint64_t bits = row[w]; bits; bits &= bits - 1) {
					int j = (int)(w * 64 + (size_t)__builtin_ctzll(bits));
					if (--count[j] == 0) {
						rank[j] = fronts;
						next[nn++] = j;
					}
				}
		}
		memcpy(cur, next, (size_t)nn * sizeof *cur);
		nc = nn;
	}
	free(dom);
	free(count);
	free(cur);
	free(next);
	return fronts;
}

/* qsort context (the C library's qsort has none): set before each sort. */
typedef struct sort_ctx {
	const moo_point *pts;
	int k;
} sort_ctx;

static int cmp_obj(const void *a, const void *b, void *arg)
{
	const sort_ctx *c = arg;
	int i = *(const int *)a, j = *(const int *)b;
	double x = c->pts[i].obj[c->k], y = c->pts[j].obj[c->k];
	if (x < y)
		return -1;
	if (x > y)
		return 1;
	return (i > j) - (i < j);
}

/* Insertion sort with a comparator and context: fronts are small, and it is
 * stable and portable (no qsort_r). */
static void sort_idx(int *v, int n, int (*cmp)(const void *, const void *, void *), void *arg)
{
	for (int i = 1; i < n; i++) {
		int x = v[i], j = i - 1;
		while (j >= 0 && cmp(&v[j], &x, arg) > 0) {
			v[j + 1] = v[j];
			j--;
		}
		v[j + 1] = x;
	}
}

void moo_crowding(const moo_point *pts, int n, int m, const int *rank, double *crowd)
{
	int *idx = malloc((size_t)(n > 0 ? n : 1) * sizeof *idx);
	for (int i = 0; i < n; i++)
		crowd[i] = 0.0;
	if (idx == NULL)
		return;
	int maxr = -1;
	for (int i = 0; i < n; i++)
		if (rank[i] > maxr)
			maxr = rank[i];
	for (int r = 0; r <= maxr; r++) {
		int k = 0;
		for (int i = 0; i < n; i++)
			if (rank[i] == r)
				idx[k++] = i;
		if (k == 0)
			continue;
		for (int o = 0; o < m; o++) {
			sort_ctx c = {pts, o};
			sort_idx(idx, k, cmp_obj, &c);
			double lo = pts[idx[0]].obj[o], hi = pts[idx[k - 1]].obj[o];
			crowd[idx[0]] = INFINITY;
			crowd[idx[k - 1]] = INFINITY;
			if (!(hi > lo))
				continue;
			for (int a = 1; a + 1 < k; a++)
				if (!isinf(crowd[idx[a]]))
					crowd[idx[a]] += (pts[idx[a + 1]].obj[o] - pts[idx[a - 1]].obj[o]) / (hi - lo);
		}
	}
	free(idx);
}

bool moo_better(const int *rank, const double *crowd, int a, int b)
{
	if (rank[a] != rank[b])
		return rank[a] < rank[b];
	if (crowd[a] != crowd[b])
		return crowd[a] > crowd[b];
	return a < b;
}

typedef struct better_ctx {
	const int *rank;
	const double *crowd;
} better_ctx;

static int cmp_better(const void *a, const void *b, void *arg)
{
	const better_ctx *c = arg;
	int i = *(const int *)a, j = *(const int *)b;
	if (i == j)
		return 0;
	return moo_better(c->rank, c->crowd, i, j) ? -1 : 1;
}

void moo_select(int n, const int *rank, const double *crowd, int N, int *keep)
{
	int *idx = malloc((size_t)(n > 0 ? n : 1) * sizeof *idx);
	if (idx == NULL) { /* fall back to the first N; cannot fail otherwise */
		for (int i = 0; i < N; i++)
			keep[i] = i;
		return;
	}
	for (int i = 0; i < n; i++)
		idx[i] = i;
	better_ctx c = {rank, crowd};
	sort_idx(idx, n, cmp_better, &c);
	memcpy(keep, idx, (size_t)N * sizeof *keep);
	free(idx);
}

int moo_tournament(const int *rank, const double *crowd, int n, tl_rng *rng)
{
	if (n <= 1)
		return 0;
	int a = (int)tl_rng_bounded(rng, (uint32_t)n);
	int b = (int)tl_rng_bounded(rng, (uint32_t)(n - 1));
	if (b >= a)
		b++;
	return moo_better(rank, crowd, a, b) ? a : b;
}

/* ---- hypervolume ------------------------------------------------------------ */

static int cmp_dim(const void *a, const void *b, void *arg)
{
	int k = *(const int *)arg;
	const double *x = *(const double *const *)a, *y = *(const double *const *)b;
	if (x[k] < y[k])
		return -1;
	if (x[k] > y[k])
		return 1;
	return 0;
}

static void sort_rows(const double **v, int n, int k)
{
	for (int i = 1; i < n; i++) {
		const double *x = v[i];
		int j = i - 1;
		while (j >= 0 && cmp_dim(&v[j], &x, &k) > 0) {
			v[j + 1] = v[j];
			j--;
		}
		v[j + 1] = x;
	}
}

/* Rows v (already strictly inside ref), first d objectives. */
static double hv_rec(const double **v, int n, int d, const double *ref, const double **tmp)
{
	if (n == 0)
		return 0.0;
	if (d == 1) {
		double lo = v[0][0];
		for (int i = 1; i < n; i++)
			if (v[i][0] < lo)
				lo = v[i][0];
		return ref[0] - lo;
	}
	if (d == 2) {
		memcpy(tmp, v, (size_t)n * sizeof *tmp);
		sort_rows(tmp, n, 0);
		double area = 0.0, y = ref[1];
		for (int i = 0; i < n; i++)
			if (tmp[i][1] < y) {
				area += (ref[0] - tmp[i][0]) * (y - tmp[i][1]);
				y = tmp[i][1];
			}
		return area;
	}
	/* slice along objective d-1: between consecutive values the dominated
	 * region's cross-section is the (d-1)-volume of the points below */
	const double **s = malloc((size_t)n * sizeof *s);
	const double **t2 = malloc((size_t)n * sizeof *t2);
	if (!s || !t2) {
		free(s);
		free(t2);
		return -1.0;
	}
	memcpy(s, v, (size_t)n * sizeof *s);
	sort_rows(s, n, d - 1);
	double vol = 0.0;
	for (int i = 0; i < n; i++) {
		double z0 = s[i][d - 1], z1 = i + 1 < n ? s[i + 1][d - 1] : ref[d - 1];
		if (z1 > z0) {
			double a = hv_rec(s, i + 1, d - 1, ref, t2);
			if (a < 0) {
				vol = -1.0;
				break;
			}
			vol += a * (z1 - z0);
		}
	}
	free(s);
	free(t2);
	return vol;
}

double moo_hypervolume(const double *pts, int n, int m, const double *ref)
{
	const double **v = malloc((size_t)(n > 0 ? n : 1) * sizeof *v);
	const double **tmp = malloc((size_t)(n > 0 ? n : 1) * sizeof *tmp);
	if (!v || !tmp) {
		free(v);
		free(tmp);
		return -1.0;
	}
	int k = 0;
	for (int i = 0; i < n; i++) {
		const double *p = pts + (size_t)i * m;
		bool inside = true;
		for (int j = 0; j < m; j++)
			if (!(p[j] < ref[j]))
				inside = false;
		if (inside)
			v[k++] = p;
	}
	double hv = hv_rec(v, k, m, ref, tmp);
	free(v);
	free(tmp);
	return hv;
}
